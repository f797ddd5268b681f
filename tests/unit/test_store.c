/*
 * test_store.c — the storage interface's own suite (store/store.h), for any
 * backend.
 *
 * What it guarantees. A backend that passes keeps, through the ops table
 * alone (no SQL, no backend header is used here):
 *   1. every field of every row type: each round-trip case writes rows whose
 *      fields all differ from their zero value in at least one row of its
 *      table (large 64-bit numbers, "" vs set strings, NULL vs text, -1 vs
 *      a time, false vs true, binary bytes with NULs), reads them back with
 *      get and through the list/scan ops (a second, separate read path), and
 *      compares field by field — a dropped or truncated field names itself
 *      in the failure;
 *   2. the error paths callers rely on: PARLEY_ENOTFOUND for a missing row,
 *      PARLEY_EEXIST for a stream path taken or a key name taken (keys are
 *      insert-only: the first secret stays), PARLEY_ETOOBIG for a key that
 *      does not fit;
 *   3. list order and pagination as store.h documents them: newest first by
 *      the row's counter, "before" is an exclusive cursor (0 = from the
 *      newest), limit bounds a page, tombstones are left out, a callback's
 *      non-zero return stops the walk;
 *   4. the scans the maintenance tick runs: stream, session, snapshot,
 *      subscription lease and delivery expiry, with their boundary (a time
 *      equal to now has expired, as core/stream.c's is_expired decides) and
 *      their max;
 *   5. subscription links: snapshot takes each stream's tail (0 for a
 *      missing or deleted stream), ack advances to it but never backwards
 *      and never past the tail, first_pending is the first path with work;
 *   6. transactions (store.h's contract): a savepoint rolled back leaves the
 *      rest of the batch to commit; rollback_to after a failed statement
 *      returns 0 and the batch goes on; a reader sees only committed data,
 *      and a reader transaction keeps the snapshot it took at its first read
 *      however many commits land before it ends (on SQLite, as on
 *      PostgreSQL, the snapshot is taken by the first read, not by BEGIN).
 *
 * Which store. Each case opens the store named by the environment variable
 * PARLEY_TEST_STORE (a store URL, as `parley serve --store`); without it,
 * "sqlite:<a new temporary directory>/parley.db", so each case has a fresh,
 * empty store. To run the suite on another backend, build it in and run
 *     PARLEY_TEST_STORE='postgres://...' ./test_store
 * The named store need not be empty: every case names its rows (ids,
 * paths, owners, key and counter names) with a tag unique to the run and the
 * case, and judges the store-wide scans (expiry, due deliveries, patterns)
 * on its own rows only. The two answers that depend on the whole table —
 * the count idem_purge reports and the minimum sub_next_delivery returns —
 * are checked exactly on a fresh store and as bounds on a shared one.
 *
 * Writes go through the writer connection in autocommit unless a case is
 * about transactions; reads are checked on the writer and, where it matters
 * that the data was committed, on a reader connection.
 *
 * Threads: one, the test's; the writer and reader connections are used in
 * turn, never at once.
 */
#define _XOPEN_SOURCE 700 /* nftw, strdup */

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "parley/parley.h"
#include "store/store.h"
#include "store/synctime.h"
#include "store/transfer.h"

#define T0       1700000000000LL    /* a time base past 2^32 ms: truncation shows */
#define BIG      ((1ULL << 40) + 7) /* a position past 2^32 */
#define LIST_MAX 32                 /* rows a collector keeps */
#define SCAN_MAX 256                /* ids a store-wide scan may return */

/* ---- fixture: one store per case --------------------------------------- */

typedef struct fixture {
    char dir[256];         /* temporary directory we made, or "" */
    bool fresh;            /* the store was created empty for this case */
    parley_store_t *store; /* the store under test */
    parley_db_t *w;        /* its writer connection (borrowed) */
    parley_db_t *r;        /* a reader connection, opened on demand */
    char tag[40];          /* unique to the run and the case */
} fixture_t;

static fixture_t *fx_now; /* the running case's fixture, for T() */
static int case_no;       /* cases started in this run */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int store_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    fx_now = fx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(fx->tag, sizeof fx->tag, "%llx%x-%d",
             (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000,
             (unsigned)getpid() & 0xfff, ++case_no);
    const char *url = getenv("PARLEY_TEST_STORE");
    char made[320];
    if (!url || !*url) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fx->dir, sizeof fx->dir, "%s/parley-store-XXXXXX",
                 tmp && *tmp && strlen(tmp) < 200 ? tmp : "/tmp");
        if (!mkdtemp(fx->dir))
            return -1;
        snprintf(made, sizeof made, "sqlite:%s/parley.db", fx->dir);
        url = made;
        fx->fresh = true;
    }
    if (parley_store_open(url, &fx->store) != 0)
        return -1;
    fx->w = parley_store_writer(fx->store);
    return fx->w ? 0 : -1;
}

static int store_teardown(void **state)
{
    fixture_t *fx = *state;
    if (!fx)
        return 0;
    parley_db_close(fx->r);
    parley_store_close(fx->store);
    if (fx->dir[0])
        nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    fx_now = NULL;
    return 0;
}

/* The case's reader connection (opened once). */
static parley_db_t *reader(fixture_t *fx)
{
    if (!fx->r)
        assert_int_equal(parley_store_reader(fx->store, &fx->r), 0);
    return fx->r;
}

/* "<tag>-<name>": a row name no other case or run uses. Rotating static
 * buffers: valid for the next 15 calls. */
static const char *T(const char *fmt, ...)
{
    static char buf[16][256];
    static int next;
    char *out = buf[next++ % 16];
    int n = snprintf(out, 256, "%s-", fx_now->tag);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, 256 - (size_t)n, fmt, ap);
    va_end(ap);
    return out;
}

/* Copy s into a fixed-size field (asserts it fits). */
#define SET(field, s)                                                                              \
    do {                                                                                           \
        assert_true(strlen(s) < sizeof(field));                                                    \
        strcpy(field, s);                                                                          \
    } while (0)

/* ---- field comparison: a mismatch names the field ---------------------- */

static void eq_i(const char *field, int64_t got, int64_t want)
{
    if (got != want)
        fail_msg("field %s: got %lld, want %lld", field, (long long)got, (long long)want);
}

static void eq_s(const char *field, const char *got, const char *want)
{
    if (!got || !want) {
        if (got != want)
            fail_msg("field %s: got %s, want %s", field, got ? got : "NULL", want ? want : "NULL");
        return;
    }
    if (strcmp(got, want) != 0)
        fail_msg("field %s: got \"%s\", want \"%s\"", field, got, want);
}

#define EQI(got, want, f) eq_i(#f, (int64_t)(got)->f, (int64_t)(want)->f)
#define EQS(got, want, f) eq_s(#f, (got)->f, (want)->f)

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *dup_mem(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* Whether id is among ids[0..n). */
static bool has_id(char (*ids)[PARLEY_ROW_ID_MAX + 1], int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

/* Position of id among ids[0..n), -1 if absent. */
static int index_of(char (*ids)[PARLEY_ROW_ID_MAX + 1], int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return i;
    return -1;
}

/* ======================================================================== */
/* streams                                                                  */
/* ======================================================================== */

static void stream_eq(const parley_stream_t *g, const parley_stream_t *w)
{
    EQI(g, w, id);
    EQS(g, w, path);
    EQS(g, w, owner);
    EQS(g, w, content_type);
    EQI(g, w, created_ms);
    EQI(g, w, touched_ms);
    EQI(g, w, ttl_s);
    EQI(g, w, expires_ms);
    EQI(g, w, tail);
    EQI(g, w, closed);
    EQS(g, w, closer);
    EQI(g, w, closer_epoch);
    EQI(g, w, closer_seq);
    EQS(g, w, stream_seq);
    EQI(g, w, fork_src);
    EQI(g, w, fork_pos);
    EQI(g, w, refs);
    EQI(g, w, deleted);
}

/* A plain live stream at path. */
static void stream_init(parley_stream_t *st, const char *path)
{
    memset(st, 0, sizeof *st);
    SET(st->path, path);
    SET(st->content_type, "application/octet-stream");
    st->created_ms = st->touched_ms = T0;
    st->ttl_s = st->expires_ms = -1;
}

static int64_t stream_add(fixture_t *fx, const char *path, uint64_t tail, bool deleted)
{
    parley_stream_t st;
    stream_init(&st, path);
    st.tail = tail;
    st.deleted = deleted;
    assert_int_equal(parley_db_stream_create(fx->w, &st), 0);
    return st.id;
}

/* Two rows between them setting every field to a non-zero value; the
 * update case turns each into the other's mutable fields. */
typedef struct stream_row {
    const char *name;  /* what the row exercises */
    bool fork;         /* fork_src names a real source stream */
    parley_stream_t v; /* the row (path and fork_src filled in) */
} stream_row_t;

static const stream_row_t stream_rows[] = {
    {"every optional field set",
     true,
     {.owner = "alice",
      .content_type = "application/json; charset=utf-8",
      .created_ms = T0 + 1,
      .touched_ms = T0 + 2,
      .ttl_s = 3600,
      .expires_ms = T0 + 86400000,
      .tail = BIG,
      .closed = true,
      .closer = "producer-\xc3\xa9",
      .closer_epoch = (1ULL << 35) + 1,
      .closer_seq = (1ULL << 36) + 2,
      .stream_seq = "seq-000042",
      .fork_pos = BIG - 3,
      .refs = 3,
      .deleted = true}},
    {"every optional field absent",
     false,
     {.owner = "",
      .content_type = "text/plain",
      .created_ms = T0 + 10,
      .touched_ms = T0 + 20,
      .ttl_s = -1,
      .expires_ms = -1,
      .tail = 0,
      .closed = false,
      .closer = "",
      .closer_epoch = 0,
      .closer_seq = 0,
      .stream_seq = "",
      .fork_pos = 0,
      .refs = 0,
      .deleted = false}},
};
#define NSTREAM_ROWS (int)(sizeof stream_rows / sizeof stream_rows[0])

static void stream_row_make(fixture_t *fx, int i, parley_stream_t *st)
{
    *st = stream_rows[i].v;
    SET(st->path, T("s/row%d", i));
    if (stream_rows[i].fork)
        st->fork_src = stream_add(fx, T("s/src%d", i), 100, false);
}

static void store_stream_roundtrip_every_field(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < NSTREAM_ROWS; i++) {
        parley_stream_t st, got;
        stream_row_make(fx, i, &st);
        st.id = 0;
        assert_int_equal(parley_db_stream_create(fx->w, &st), 0);
        assert_true(st.id > 0);
        memset(&got, 0x5a, sizeof got);
        assert_int_equal(parley_db_stream_get(fx->w, st.path, &got), 0);
        stream_eq(&got, &st);
        memset(&got, 0x5a, sizeof got);
        assert_int_equal(parley_db_stream_get_id(reader(fx), st.id, &got), 0);
        stream_eq(&got, &st);
    }
}

static void store_stream_get_enotfound_missing(void **state)
{
    fixture_t *fx = *state;
    parley_stream_t got;
    assert_int_equal(parley_db_stream_get(fx->w, T("s/none"), &got), PARLEY_ENOTFOUND);
    int64_t id = stream_add(fx, T("s/gone"), 0, false);
    assert_int_equal(parley_db_stream_remove(fx->w, id), 0);
    assert_int_equal(parley_db_stream_get_id(fx->w, id, &got), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_stream_get(fx->w, T("s/gone"), &got), PARLEY_ENOTFOUND);
}

static void store_stream_insert_eexist_path_taken(void **state)
{
    fixture_t *fx = *state;
    stream_add(fx, T("s/taken"), 5, false);
    parley_stream_t st, got;
    stream_init(&st, T("s/taken"));
    assert_int_equal(parley_db_stream_create(fx->w, &st), PARLEY_EEXIST);
    assert_int_equal(parley_db_stream_get(fx->w, T("s/taken"), &got), 0);
    assert_int_equal(got.tail, 5); /* the first row stays */
}

static void store_stream_insert_new_id_after_remove(void **state)
{
    fixture_t *fx = *state;
    int64_t a = stream_add(fx, T("s/again"), 0, false);
    assert_int_equal(parley_db_stream_remove(fx->w, a), 0);
    int64_t b = stream_add(fx, T("s/again"), 0, false);
    assert_true(b > a); /* never reused: an old ETag cannot match */
}

typedef struct chunk {
    uint64_t start, end, unit_end; /* positions */
    const char *data;              /* bytes */
    size_t len;                    /* bytes in data */
} chunk_t;

typedef struct chunks {
    int n;          /* chunks seen */
    int stop_after; /* return non-zero after this many (0: never) */
    chunk_t c[16];  /* what the callback got (data copied) */
} chunks_t;

static int collect_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                         const void *data, size_t len)
{
    chunks_t *l = arg;
    if (l->n >= 16)
        return 1;
    l->c[l->n] = (chunk_t){start, end, unit_end, dup_mem(data, len), len};
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static void chunks_free(chunks_t *l)
{
    for (int i = 0; i < l->n; i++)
        free((char *)l->c[i].data);
    l->n = 0;
}

static void store_stream_remove_drops_chunks_and_producers(void **state)
{
    fixture_t *fx = *state;
    int64_t id = stream_add(fx, T("s/rm"), 0, false);
    uint64_t tail;
    assert_int_equal(parley_db_stream_append(fx->w, id, "abc", 3, 3, T0, NULL, -1, &tail), 0);
    parley_producer_state_t ps = {.exists = true, .epoch = 1, .last_seq = 1};
    assert_int_equal(parley_db_producer_put(fx->w, id, "p", &ps), 0);
    assert_int_equal(parley_db_stream_remove(fx->w, id), 0);
    chunks_t l = {0};
    assert_int_equal(parley_db_chunk_scan(fx->w, id, 0, collect_chunk, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(parley_db_producer_get(fx->w, id, "p", &ps), 0);
    assert_false(ps.exists);
}

/* An id no stream has (made and removed: ids are never reused). */
static int64_t missing_stream_id(fixture_t *fx)
{
    int64_t id = stream_add(fx, T("gone/%d", rand()), 0, false);
    assert_int_equal(parley_db_stream_remove(fx->w, id), 0);
    return id;
}

/* stream_append: the tail moves by units and the data lands at the old
 * tail; touched_ms and stream_seq follow; units 0 stores no chunk. */
static void store_stream_append_moves_tail_stores_chunk(void **state)
{
    fixture_t *fx = *state;
    int64_t id = stream_add(fx, T("a/s"), 7, false);
    uint64_t tail = 0;
    assert_int_equal(parley_db_stream_append(fx->w, id, "abc", 3, 3, T0 + 5, NULL, -1, &tail), 0);
    eq_i("tail", (int64_t)tail, 10);
    /* a JSON-style append: two messages in one chunk */
    assert_int_equal(parley_db_stream_append(fx->w, id, "1,2", 3, 2, T0 + 6, "s1", 10, &tail), 0);
    eq_i("tail", (int64_t)tail, 12);
    /* no data: only touched_ms and stream_seq move */
    assert_int_equal(parley_db_stream_append(fx->w, id, NULL, 0, 0, T0 + 7, "s2", -1, &tail), 0);
    eq_i("tail", (int64_t)tail, 12);
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get_id(reader(fx), id, &st), 0);
    eq_i("tail", (int64_t)st.tail, 12);
    eq_i("touched_ms", st.touched_ms, T0 + 7);
    eq_s("stream_seq", st.stream_seq, "s2");
    chunks_t l = {0};
    assert_int_equal(parley_db_chunk_scan(reader(fx), id, 0, collect_chunk, &l), 0);
    assert_int_equal(l.n, 2);
    eq_i("start", (int64_t)l.c[0].start, 7);
    eq_i("end", (int64_t)l.c[0].end, 10);
    eq_i("unit_end", (int64_t)l.c[0].unit_end, 10);
    assert_memory_equal(l.c[0].data, "abc", 3);
    eq_i("start", (int64_t)l.c[1].start, 10);
    eq_i("end", (int64_t)l.c[1].end, 12);
    eq_i("unit_end", (int64_t)l.c[1].unit_end, 12);
    assert_memory_equal(l.c[1].data, "1,2", 3);
    chunks_free(&l);
}

/* A large byte append may be split into rows; every row names the
 * append's end as its unit, and together they hold the bytes in order. */
typedef struct concat {
    unsigned char *buf; /* the bytes, by position */
    uint64_t next;      /* where the next row must start */
    uint64_t unit_end;  /* what every row must name */
    int rows;           /* rows seen */
    int bad;            /* rows with wrong bounds */
} concat_t;

static int concat_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                        const void *data, size_t len)
{
    concat_t *c = arg;
    if (end - start != len || unit_end != c->unit_end || start != c->next) {
        c->bad++;
        return 1;
    }
    memcpy(c->buf + start, data, len);
    c->next = end;
    c->rows++;
    return 0;
}

static void store_stream_append_large_bytes_keep_unit(void **state)
{
    fixture_t *fx = *state;
    size_t len = 3 * 65536 + 17;
    unsigned char *data = malloc(len), *back = calloc(1, len);
    assert_non_null(data);
    assert_non_null(back);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    int64_t id = stream_add(fx, T("a/big"), 0, false);
    uint64_t tail = 0;
    assert_int_equal(parley_db_stream_append(fx->w, id, data, len, len, T0, NULL, 0, &tail), 0);
    eq_i("tail", (int64_t)tail, (int64_t)len);
    concat_t c = {back, 0, len, 0, 0};
    assert_int_equal(parley_db_chunk_scan(reader(fx), id, 0, concat_chunk, &c), 0);
    assert_int_equal(c.bad, 0);
    assert_true(c.rows >= 1);
    eq_i("end", (int64_t)c.next, (int64_t)len);
    assert_memory_equal(back, data, len);
    free(data);
    free(back);
}

/* Every refusal writes nothing: closed, deleted, Stream-Seq not greater,
 * expect_tail moved; past the largest position; missing stream. */
typedef struct append_refusal {
    const char *name;    /* what it checks */
    bool closed;         /* the stream is closed */
    bool deleted;        /* soft-deleted */
    const char *seq;     /* Stream-Seq sent (stored is "m") */
    int64_t expect_tail; /* expect_tail sent */
    uint64_t tail;       /* the stream's tail */
    int want;            /* the error */
} append_refusal_t;

static const append_refusal_t append_refusals[] = {
    {"closed", true, false, NULL, -1, 5, PARLEY_ECONFLICT},
    {"deleted", false, true, NULL, -1, 5, PARLEY_ECONFLICT},
    {"seq equal", false, false, "m", -1, 5, PARLEY_ECONFLICT},
    {"seq lower", false, false, "l", -1, 5, PARLEY_ECONFLICT},
    {"tail moved", false, false, NULL, 4, 5, PARLEY_ECONFLICT},
    {"past the last position", false, false, NULL, -1, PARLEY_OFFSET_MAX - 1, PARLEY_ETOOBIG},
};

static void store_stream_append_refusals_write_nothing(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < sizeof append_refusals / sizeof append_refusals[0]; i++) {
        const append_refusal_t *c = &append_refusals[i];
        parley_stream_t st, got;
        stream_init(&st, T("a/r%zu", i));
        st.tail = c->tail;
        st.closed = c->closed;
        st.deleted = c->deleted;
        SET(st.stream_seq, "m");
        assert_int_equal(parley_db_stream_create(fx->w, &st), 0);
        uint64_t tail = 77;
        int rc = parley_db_stream_append(fx->w, st.id, "xy", 2, 2, T0 + 9, c->seq, c->expect_tail,
                                         &tail);
        if (rc != c->want)
            fail_msg("%s: %d, want %d", c->name, rc, c->want);
        eq_i("tail out untouched", (int64_t)tail, 77);
        assert_int_equal(parley_db_stream_get_id(fx->w, st.id, &got), 0);
        stream_eq(&got, &st);
        chunks_t l = {0};
        assert_int_equal(parley_db_chunk_scan(fx->w, st.id, 0, collect_chunk, &l), 0);
        assert_int_equal(l.n, 0);
    }
    uint64_t tail;
    assert_int_equal(
        parley_db_stream_append(fx->w, missing_stream_id(fx), "x", 1, 1, T0, NULL, -1, &tail),
        PARLEY_ENOTFOUND);
    /* a greater seq and the right expect_tail pass */
    int64_t id = stream_add(fx, T("a/ok"), 5, false);
    assert_int_equal(parley_db_stream_append(fx->w, id, "x", 1, 1, T0, "n", 5, &tail), 0);
    assert_int_equal(parley_db_stream_append(fx->w, id, "x", 1, 1, T0, "o", 6, &tail), 0);
    eq_i("tail", (int64_t)tail, 7);
}

/* The writer's view of a stream by path (as core reads it before an
 * append), asserting it is there. */
static parley_stream_t *writer_row(fixture_t *fx, const char *path)
{
    static parley_stream_t st;
    assert_int_equal(parley_db_stream_get(fx->w, path, &st), 0);
    return &st;
}

/*
 * The writer's reads of a stream row follow every change to it: the SQLite
 * writer keeps the rows it read in memory (rowcache.h) and appends through
 * them, so each other change (close, touch, refs, soft delete, remove and
 * a new stream at the same path) must reach what it answers next.
 */
static void store_stream_writer_rows_follow_every_change(void **state)
{
    fixture_t *fx = *state;
    const char *path = T("rc/a");
    int64_t id = stream_add(fx, path, 0, false);
    uint64_t tail = 0;
    eq_i("tail", (int64_t)writer_row(fx, path)->tail, 0);
    assert_int_equal(parley_db_stream_append(fx->w, id, "ab", 2, 2, T0 + 1, "s1", -1, &tail), 0);
    eq_i("tail", (int64_t)writer_row(fx, path)->tail, 2);
    eq_s("stream_seq", writer_row(fx, path)->stream_seq, "s1");
    assert_int_equal(parley_db_stream_append(fx->w, id, "cd", 2, 2, T0 + 2, "s1", -1, &tail),
                     PARLEY_ECONFLICT); /* Stream-Seq must grow */
    assert_int_equal(parley_db_stream_append(fx->w, id, "cd", 2, 2, T0 + 2, NULL, 3, &tail),
                     PARLEY_ECONFLICT); /* not at the expected tail */
    assert_int_equal(parley_db_stream_touch(fx->w, id, T0 + 50), 0);
    eq_i("touched_ms", writer_row(fx, path)->touched_ms, T0 + 50);
    parley_stream_ref_t ref;
    assert_int_equal(parley_db_stream_ref(fx->w, id, 1, &ref), 0);
    eq_i("refs", writer_row(fx, path)->refs, 1);
    assert_int_equal(parley_db_stream_close(fx->w, id, "p", 1, 2, T0 + 60, &tail), 0);
    assert_true(writer_row(fx, path)->closed);
    eq_s("closer", writer_row(fx, path)->closer, "p");
    assert_int_equal(parley_db_stream_append(fx->w, id, "x", 1, 1, T0 + 61, NULL, -1, &tail),
                     PARLEY_ECONFLICT);
    assert_int_equal(parley_db_stream_mark_deleted(fx->w, id), 0);
    assert_true(writer_row(fx, path)->deleted);

    /* removed, and a new stream at the same path: the new row, at 0 */
    assert_int_equal(parley_db_stream_remove(fx->w, id), 0);
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get(fx->w, path, &st), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_stream_get_id(fx->w, id, &st), PARLEY_ENOTFOUND);
    int64_t id2 = stream_add(fx, path, 0, false);
    assert_true(id2 != id);
    eq_i("id", writer_row(fx, path)->id, id2);
    eq_i("tail", (int64_t)writer_row(fx, path)->tail, 0);
    assert_false(writer_row(fx, path)->closed);
    assert_int_equal(parley_db_stream_append(fx->w, id2, "xyz", 3, 3, T0 + 70, NULL, -1, &tail), 0);
    eq_i("tail", (int64_t)tail, 3);
    assert_int_equal(parley_db_stream_get_id(reader(fx), id2, &st), 0);
    eq_i("tail", (int64_t)st.tail, 3);
}

/*
 * An append rolled back (to the request's savepoint, or the whole
 * transaction) is gone from the writer's reads too: the next append lands
 * where the committed tail is, and the chunks tile the stream.
 */
static void store_stream_writer_rows_roll_back(void **state)
{
    fixture_t *fx = *state;
    parley_db_t *w = fx->w;
    const char *path = T("rc/b");
    int64_t id = stream_add(fx, path, 0, false);
    uint64_t tail = 0;
    assert_int_equal(parley_db_begin(w), 0);
    assert_int_equal(parley_db_savepoint(w), 0);
    eq_i("tail", (int64_t)writer_row(fx, path)->tail, 0);
    assert_int_equal(parley_db_stream_append(w, id, "ab", 2, 2, T0 + 1, NULL, -1, &tail), 0);
    assert_int_equal(parley_db_release(w), 0);
    assert_int_equal(parley_db_savepoint(w), 0);
    assert_int_equal(parley_db_stream_append(w, id, "cd", 2, 2, T0 + 2, "q", -1, &tail), 0);
    eq_i("tail", (int64_t)writer_row(fx, path)->tail, 4);
    assert_int_equal(parley_db_rollback_to(w), 0);
    eq_i("tail after rollback_to", (int64_t)writer_row(fx, path)->tail, 2);
    eq_s("stream_seq after rollback_to", writer_row(fx, path)->stream_seq, "");
    assert_int_equal(parley_db_commit(w), 0);

    assert_int_equal(parley_db_begin(w), 0);
    assert_int_equal(parley_db_stream_append(w, id, "ef", 2, 2, T0 + 3, NULL, -1, &tail), 0);
    eq_i("tail", (int64_t)tail, 4);
    assert_int_equal(parley_db_rollback(w), 0);
    eq_i("tail after rollback", (int64_t)writer_row(fx, path)->tail, 2);

    assert_int_equal(parley_db_stream_append(w, id, "gh", 2, 2, T0 + 4, NULL, -1, &tail), 0);
    eq_i("tail", (int64_t)tail, 4);
    chunks_t l = {0};
    assert_int_equal(parley_db_chunk_scan(reader(fx), id, 0, collect_chunk, &l), 0);
    assert_int_equal(l.n, 2);
    eq_i("start", (int64_t)l.c[1].start, 2);
    eq_i("end", (int64_t)l.c[1].end, 4);
    assert_memory_equal(l.c[1].data, "gh", 2);
    chunks_free(&l);
}

/*
 * Appends in one transaction may move a tail the writer writes to the row
 * once, at the end (SQLite: rowcache.h): readers see the tail with the
 * commit, a later request that changes the row (close) sees every append
 * before it, and rolling that request back keeps them.
 */
static void store_stream_writer_tail_reaches_row_by_commit(void **state)
{
    fixture_t *fx = *state;
    parley_db_t *w = fx->w;
    const char *path = T("rc/c");
    int64_t id = stream_add(fx, path, 0, false);
    uint64_t tail = 0;
    parley_stream_t st;
    assert_int_equal(parley_db_begin(w), 0);
    for (int i = 0; i < 3; i++) { /* three requests, each appending */
        assert_int_equal(parley_db_savepoint(w), 0);
        eq_i("tail", (int64_t)writer_row(fx, path)->tail, 2 * i);
        assert_int_equal(
            parley_db_stream_append(w, id, "ab", 2, 2, T0 + i, i == 2 ? "z" : NULL, -1, &tail), 0);
        assert_int_equal(parley_db_release(w), 0);
    }
    /* a request that closes it (the row's own UPDATE), then is refused */
    assert_int_equal(parley_db_savepoint(w), 0);
    assert_int_equal(parley_db_stream_close(w, id, NULL, 0, 0, T0 + 9, &tail), 0);
    eq_i("close sees the appends", (int64_t)tail, 6);
    assert_true(writer_row(fx, path)->closed);
    assert_int_equal(parley_db_rollback_to(w), 0);
    assert_false(writer_row(fx, path)->closed);
    eq_i("tail after rollback_to", (int64_t)writer_row(fx, path)->tail, 6);
    /* one more append, then a request that removes it and makes it again */
    assert_int_equal(parley_db_savepoint(w), 0);
    assert_int_equal(parley_db_stream_append(w, id, "cd", 2, 2, T0 + 10, NULL, 6, &tail), 0);
    assert_int_equal(parley_db_release(w), 0);
    assert_int_equal(parley_db_stream_get_id(reader(fx), id, &st), 0);
    eq_i("reader before commit", (int64_t)st.tail, 0);
    assert_int_equal(parley_db_commit(w), 0);
    assert_int_equal(parley_db_stream_get_id(reader(fx), id, &st), 0);
    eq_i("reader after commit", (int64_t)st.tail, 8);
    eq_i("touched_ms", st.touched_ms, T0 + 10);
    eq_s("stream_seq", st.stream_seq, "z");
    assert_false(st.closed);

    assert_int_equal(parley_db_begin(w), 0);
    assert_int_equal(parley_db_savepoint(w), 0);
    assert_int_equal(parley_db_stream_append(w, id, "ef", 2, 2, T0 + 11, NULL, -1, &tail), 0);
    assert_int_equal(parley_db_release(w), 0);
    assert_int_equal(parley_db_savepoint(w), 0);
    assert_int_equal(parley_db_stream_remove(w, id), 0);
    int64_t id2 = stream_add(fx, path, 0, false);
    eq_i("id", writer_row(fx, path)->id, id2);
    eq_i("tail", (int64_t)writer_row(fx, path)->tail, 0);
    assert_int_equal(parley_db_rollback_to(w), 0);
    eq_i("id after rollback_to", writer_row(fx, path)->id, id);
    eq_i("tail after rollback_to", (int64_t)writer_row(fx, path)->tail, 10);
    assert_int_equal(parley_db_commit(w), 0);
    assert_int_equal(parley_db_stream_get(reader(fx), path, &st), 0);
    eq_i("id", st.id, id);
    eq_i("tail", (int64_t)st.tail, 10);
    chunks_t l = {0};
    assert_int_equal(parley_db_chunk_scan(reader(fx), id, 0, collect_chunk, &l), 0);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++) {
        eq_i("start", (int64_t)l.c[i].start, 2 * i);
        eq_i("end", (int64_t)l.c[i].end, 2 * i + 2);
    }
    chunks_free(&l);
}

/* One integer (or -1 for no row, -2 for NULL) from sql with ?1 = id, on a
 * connection of its own to the case's SQLite file. */
static int64_t file_int(fixture_t *fx, const char *sql, int64_t id)
{
    char file[300];
    snprintf(file, sizeof file, "%s/parley.db", fx->dir);
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(file, &conn, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    int rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(conn));
    sqlite3_bind_int64(st, 1, id);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(conn);
    return v;
}

/* SQLite: what an append changes (tail, touched_ms, stream_seq) is kept in
 * the narrow stream_tails row, not in the stream's wide row; the streams
 * view joins them, a create's id is the row's, and a removed stream leaves
 * neither row behind. */
static void store_stream_tail_in_narrow_row_sqlite(void **state)
{
    fixture_t *fx = *state;
    if (!fx->fresh)
        skip();
    parley_db_t *w = fx->w;
    const char *path = T("narrow/a");
    int64_t id = stream_add(fx, path, 0, false);
    int64_t id2 = stream_add(fx, T("narrow/b"), 0, false);
    eq_i("id read back", id2, file_int(fx, "SELECT max(id) FROM stream_rows WHERE ?1 > 0", 1));
    assert_true(id2 > id);
    uint64_t tail = 0;
    assert_int_equal(parley_db_begin(w), 0);
    assert_int_equal(parley_db_savepoint(w), 0);
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get_id(w, id, &st), 0); /* held by the writer */
    assert_int_equal(parley_db_stream_append(w, id, "ab", 2, 2, T0 + 1, "s1", -1, &tail), 0);
    assert_int_equal(parley_db_stream_append(w, id, "cd", 2, 2, T0 + 2, NULL, -1, &tail), 0);
    assert_int_equal(parley_db_release(w), 0);
    assert_int_equal(parley_db_commit(w), 0);
    eq_i("tail", file_int(fx, "SELECT tail FROM stream_tails WHERE id = ?1", id), 4);
    eq_i("touched_ms", file_int(fx, "SELECT touched_ms FROM stream_tails WHERE id = ?1", id),
         T0 + 2);
    eq_i("stream_seq", file_int(fx, "SELECT stream_seq = 's1' FROM stream_tails WHERE id = ?1", id),
         1);
    eq_i("the wide row has no tail",
         file_int(fx,
                  "SELECT count(*) FROM pragma_table_info('stream_rows') WHERE name IN "
                  "('tail', 'touched_ms', 'stream_seq') AND ?1 > 0",
                  1),
         0);
    eq_i("the view", file_int(fx, "SELECT tail FROM streams WHERE id = ?1", id), 4);
    /* a close through the view: its own columns, the tail untouched */
    assert_int_equal(parley_db_begin(w), 0);
    assert_int_equal(parley_db_stream_close(w, id, NULL, 0, 0, T0 + 5, &tail), 0);
    eq_i("close's tail", (int64_t)tail, 4);
    assert_int_equal(parley_db_commit(w), 0);
    eq_i("closed", file_int(fx, "SELECT closed FROM stream_rows WHERE id = ?1", id), 1);
    eq_i("close touches", file_int(fx, "SELECT touched_ms FROM streams WHERE id = ?1", id), T0 + 5);
    assert_int_equal(parley_db_begin(w), 0);
    assert_int_equal(parley_db_stream_remove(w, id), 0);
    assert_int_equal(parley_db_commit(w), 0);
    eq_i("no row left", file_int(fx, "SELECT count(*) FROM stream_rows WHERE id = ?1", id), 0);
    eq_i("no tail left", file_int(fx, "SELECT count(*) FROM stream_tails WHERE id = ?1", id), 0);
    eq_i("the other stays", file_int(fx, "SELECT count(*) FROM streams WHERE id = ?1", id2), 1);
}

/* stream_close records the closer once; closing again is a no-op. */
static void store_stream_close_once_keeps_first_closer(void **state)
{
    fixture_t *fx = *state;
    int64_t id = stream_add(fx, T("c/a"), 4, false);
    uint64_t tail = 0;
    assert_int_equal(parley_db_stream_close(fx->w, id, "p1", 3, 9, T0 + 1, &tail), 0);
    eq_i("tail", (int64_t)tail, 4);
    assert_int_equal(parley_db_stream_close(fx->w, id, "p2", 4, 1, T0 + 2, &tail), 0);
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get_id(reader(fx), id, &st), 0);
    assert_true(st.closed);
    eq_s("closer", st.closer, "p1");
    eq_i("closer_epoch", (int64_t)st.closer_epoch, 3);
    eq_i("closer_seq", (int64_t)st.closer_seq, 9);
    eq_i("touched_ms", st.touched_ms, T0 + 1);
    uint64_t t2;
    assert_int_equal(parley_db_stream_append(fx->w, id, "x", 1, 1, T0, NULL, -1, &t2),
                     PARLEY_ECONFLICT);

    int64_t b = stream_add(fx, T("c/b"), 0, false);
    assert_int_equal(parley_db_stream_close(fx->w, b, NULL, 5, 5, T0, &tail), 0);
    assert_int_equal(parley_db_stream_get_id(fx->w, b, &st), 0);
    assert_true(st.closed);
    eq_s("closer", st.closer, "");
    eq_i("closer_epoch", (int64_t)st.closer_epoch, 0);
    assert_int_equal(parley_db_stream_close(fx->w, missing_stream_id(fx), NULL, 0, 0, T0, &tail),
                     PARLEY_ENOTFOUND);
}

static void store_stream_touch_never_back(void **state)
{
    fixture_t *fx = *state;
    int64_t id = stream_add(fx, T("t/a"), 0, false); /* touched at T0 */
    parley_stream_t st;
    assert_int_equal(parley_db_stream_touch(fx->w, id, T0 + 50), 0);
    assert_int_equal(parley_db_stream_get_id(fx->w, id, &st), 0);
    eq_i("touched_ms", st.touched_ms, T0 + 50);
    assert_int_equal(parley_db_stream_touch(fx->w, id, T0 + 10), 0);
    assert_int_equal(parley_db_stream_get_id(fx->w, id, &st), 0);
    eq_i("touched_ms", st.touched_ms, T0 + 50);
    assert_int_equal(parley_db_stream_touch(fx->w, missing_stream_id(fx), T0), PARLEY_ENOTFOUND);
}

static void store_stream_ref_counts_never_below_zero(void **state)
{
    fixture_t *fx = *state;
    int64_t src = stream_add(fx, T("r/src"), 0, false);
    parley_stream_t st;
    stream_init(&st, T("r/fork"));
    st.fork_src = src;
    assert_int_equal(parley_db_stream_create(fx->w, &st), 0);
    parley_stream_ref_t ref;
    assert_int_equal(parley_db_stream_ref(fx->w, st.id, +1, &ref), 0);
    eq_i("refs", ref.refs, 1);
    eq_i("fork_src", ref.fork_src, src);
    assert_false(ref.deleted);
    assert_int_equal(parley_db_stream_ref(fx->w, st.id, +1, &ref), 0);
    eq_i("refs", ref.refs, 2);
    assert_int_equal(parley_db_stream_mark_deleted(fx->w, st.id), 0);
    assert_int_equal(parley_db_stream_ref(fx->w, st.id, -1, &ref), 0);
    eq_i("refs", ref.refs, 1);
    assert_true(ref.deleted);
    assert_int_equal(parley_db_stream_ref(fx->w, src, -1, &ref), 0);
    eq_i("refs", ref.refs, 0); /* never below zero */
    eq_i("fork_src", ref.fork_src, 0);
    assert_int_equal(parley_db_stream_get_id(reader(fx), st.id, &st), 0);
    eq_i("stored refs", st.refs, 1);
    assert_int_equal(parley_db_stream_ref(fx->w, missing_stream_id(fx), 1, &ref), PARLEY_ENOTFOUND);
}

static void store_stream_mark_deleted_only_with_refs(void **state)
{
    fixture_t *fx = *state;
    int64_t id = stream_add(fx, T("m/a"), 0, false);
    parley_stream_t st;
    assert_int_equal(parley_db_stream_mark_deleted(fx->w, id), PARLEY_ECONFLICT);
    assert_int_equal(parley_db_stream_get_id(fx->w, id, &st), 0);
    assert_false(st.deleted);
    parley_stream_ref_t ref;
    assert_int_equal(parley_db_stream_ref(fx->w, id, +1, &ref), 0);
    assert_int_equal(parley_db_stream_mark_deleted(fx->w, id), 0);
    assert_int_equal(parley_db_stream_get_id(reader(fx), id, &st), 0);
    assert_true(st.deleted);
    assert_int_equal(parley_db_stream_mark_deleted(fx->w, missing_stream_id(fx)), PARLEY_ENOTFOUND);
}

/* Expiry: absolute and sliding, at the boundary, deleted streams skipped. */
typedef struct expiry_case {
    const char *name;   /* what it checks */
    int64_t touched_ms; /* sliding base */
    int64_t ttl_s;      /* -1: none */
    int64_t expires_ms; /* -1: none */
    bool deleted;       /* soft-deleted */
    bool expired;       /* expected at now = T0 + 10000 */
} expiry_case_t;

static const expiry_case_t expiry_cases[] = {
    {"absolute in the past", T0, -1, T0 + 9999, false, true},
    {"absolute at now", T0, -1, T0 + 10000, false, true},
    {"absolute in the future", T0, -1, T0 + 10001, false, false},
    {"sliding ended before now", T0, 9, -1, false, true},
    {"sliding ends at now", T0, 10, -1, false, true},
    {"sliding ends after now", T0 + 1, 10, -1, false, false},
    {"no expiry", T0, -1, -1, false, false},
    {"sliding not yet, absolute past", T0 + 5000, 3600, T0 + 1, false, true},
    {"deleted and past", T0, 1, T0 + 1, true, false},
};

static void store_stream_expired_absolute_and_sliding(void **state)
{
    fixture_t *fx = *state;
    int nc = (int)(sizeof expiry_cases / sizeof expiry_cases[0]);
    int64_t ids[16];
    for (int i = 0; i < nc; i++) {
        parley_stream_t st;
        stream_init(&st, T("s/exp%d", i));
        st.touched_ms = expiry_cases[i].touched_ms;
        st.ttl_s = expiry_cases[i].ttl_s;
        st.expires_ms = expiry_cases[i].expires_ms;
        st.deleted = expiry_cases[i].deleted;
        assert_int_equal(parley_db_stream_create(fx->w, &st), 0);
        ids[i] = st.id;
    }
    int64_t found[SCAN_MAX];
    int n = -1;
    assert_int_equal(parley_db_stream_expired(fx->w, T0 + 10000, found, SCAN_MAX, &n), 0);
    for (int i = 0; i < nc; i++) {
        bool seen = false;
        for (int j = 0; j < n; j++)
            seen = seen || found[j] == ids[i];
        if (seen != expiry_cases[i].expired)
            fail_msg("%s: expired %d, want %d", expiry_cases[i].name, seen,
                     expiry_cases[i].expired);
    }
    /* max bounds the answer */
    assert_int_equal(parley_db_stream_expired(fx->w, T0 + 10000, found, 2, &n), 0);
    assert_int_equal(n, 2);
}

typedef struct streams {
    int n;                         /* rows seen */
    int stop_after;                /* non-zero after this many (0: never) */
    parley_stream_t row[LIST_MAX]; /* copies */
} streams_t;

static int collect_stream(void *arg, const parley_stream_t *st)
{
    streams_t *l = arg;
    if (l->n >= LIST_MAX)
        return 1;
    l->row[l->n++] = *st;
    return l->stop_after && l->n >= l->stop_after;
}

static void store_stream_scan_prefix_in_path_order(void **state)
{
    fixture_t *fx = *state;
    const char *paths[] = {"p/b", "p/a/2", "p/a/10", "p/a", "q/a/1", "p/a/1", "p/a0"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        stream_add(fx, T("%s", paths[i]), i, false);
    stream_add(fx, T("p/a/3"), 0, true); /* deleted: not listed */
    parley_stream_t full;
    stream_row_make(fx, 0, &full);
    SET(full.path, T("p/a/9"));
    full.deleted = false;
    assert_int_equal(parley_db_stream_create(fx->w, &full), 0);

    streams_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(parley_db_stream_scan(reader(fx), T("p/a/"), collect_stream, l), 0);
    const char *want[] = {"p/a/1", "p/a/10", "p/a/2", "p/a/9"}; /* byte order */
    assert_int_equal(l->n, 4);
    for (int i = 0; i < 4; i++)
        eq_s("path", l->row[i].path, T("%s", want[i]));
    stream_eq(&l->row[3], &full); /* the scan's rows carry every field */

    memset(l, 0, sizeof *l);
    l->stop_after = 2;
    assert_int_equal(parley_db_stream_scan(reader(fx), T("p/"), collect_stream, l), 0);
    assert_int_equal(l->n, 2);
    eq_s("path", l->row[0].path, T("p/a"));
    eq_s("path", l->row[1].path, T("p/a/1"));
    free(l);
}

/* ======================================================================== */
/* chunks                                                                   */
/* ======================================================================== */

/* Appends as stored, relative to a base position past 2^32. */
typedef struct chunk_append {
    chunk_t c;      /* the chunk expected */
    uint64_t units; /* positions the append takes */
} chunk_append_t;

static const chunk_append_t chunk_rows[] = {
    {{0, 5, 5, "hello", 5}, 5},
    {{5, 9, 9, "\0\1\xff\0", 4}, 4}, /* binary, NULs inside and at the end */
    {{9, 11, 11, "1,2", 3}, 2},      /* two messages of one append */
    {{11, 17, 17, "{\"a\":", 6}, 6},
};
#define NCHUNKS    (int)(sizeof chunk_rows / sizeof chunk_rows[0])
#define CHUNK_BASE BIG

typedef struct chunk_scan_case {
    uint64_t from; /* scan from (relative) */
    int first;     /* index of the first chunk expected */
} chunk_scan_case_t;

static const chunk_scan_case_t chunk_scans[] = {
    {0, 0}, {4, 0}, {5, 1}, {8, 1}, {9, 2}, {10, 2}, {11, 3}, {16, 3}, {17, NCHUNKS},
};

static void store_chunk_scan_from_position_in_order(void **state)
{
    fixture_t *fx = *state;
    int64_t id = stream_add(fx, T("c/s"), CHUNK_BASE, false);
    int64_t other = stream_add(fx, T("c/other"), 0, false);
    uint64_t tail;
    assert_int_equal(parley_db_stream_append(fx->w, other, "zzz", 3, 3, T0, NULL, -1, &tail), 0);
    for (int i = 0; i < NCHUNKS; i++)
        assert_int_equal(parley_db_stream_append(fx->w, id, chunk_rows[i].c.data,
                                                 chunk_rows[i].c.len, chunk_rows[i].units, T0, NULL,
                                                 -1, &tail),
                         0);
    for (size_t k = 0; k < sizeof chunk_scans / sizeof chunk_scans[0]; k++) {
        chunks_t l = {0};
        assert_int_equal(parley_db_chunk_scan(reader(fx), id, CHUNK_BASE + chunk_scans[k].from,
                                              collect_chunk, &l),
                         0);
        int want_n = NCHUNKS - chunk_scans[k].first;
        if (l.n != want_n)
            fail_msg("from %llu: %d chunks, want %d", (unsigned long long)chunk_scans[k].from, l.n,
                     want_n);
        for (int i = 0; i < l.n; i++) {
            const chunk_t *w = &chunk_rows[chunk_scans[k].first + i].c;
            eq_i("start", (int64_t)l.c[i].start, (int64_t)(CHUNK_BASE + w->start));
            eq_i("end", (int64_t)l.c[i].end, (int64_t)(CHUNK_BASE + w->end));
            eq_i("unit_end", (int64_t)l.c[i].unit_end, (int64_t)(CHUNK_BASE + w->unit_end));
            eq_i("len", (int64_t)l.c[i].len, (int64_t)w->len);
            assert_memory_equal(l.c[i].data, w->data, w->len);
        }
        chunks_free(&l);
    }
    chunks_t l = {.stop_after = 1};
    assert_int_equal(parley_db_chunk_scan(fx->w, id, 0, collect_chunk, &l), 0);
    assert_int_equal(l.n, 1);
    chunks_free(&l);
}

/* Positions seen by a walk over many one-byte chunks. */
typedef struct chunk_walk {
    int n;          /* chunks seen */
    int stop_after; /* return non-zero after this many (0: never) */
    uint64_t next;  /* start the next chunk must have */
    int bad;        /* chunks out of order, skipped or with the wrong byte */
} chunk_walk_t;

static int walk_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end, const void *data,
                      size_t len)
{
    chunk_walk_t *w = arg;
    if (start != w->next || end != start + 1 || unit_end != end || len != 1 ||
        ((const unsigned char *)data)[0] != (unsigned char)start)
        w->bad++;
    w->next = end;
    w->n++;
    return w->stop_after && w->n >= w->stop_after;
}

/* A stream of many chunks is walked whole, in order, each chunk once,
 * from any position; a stop is honoured (a backend may read its chunks in
 * pages: the page seams must not drop or repeat one). */
static void store_chunk_scan_long_stream_every_chunk_once(void **state)
{
    fixture_t *fx = *state;
    enum { N = 300 };
    int64_t id = stream_add(fx, T("c/long"), 0, false);
    for (int i = 0; i < N; i++) {
        unsigned char b = (unsigned char)i;
        uint64_t tail = 0;
        assert_int_equal(parley_db_stream_append(fx->w, id, &b, 1, 1, T0, NULL, -1, &tail), 0);
        assert_int_equal(tail, (uint64_t)i + 1);
    }
    static const uint64_t froms[] = {0, 3, 4, 5, 11, 12, 13, 150, 298, 299, 300};
    for (size_t k = 0; k < sizeof froms / sizeof froms[0]; k++) {
        chunk_walk_t w = {.next = froms[k]};
        assert_int_equal(parley_db_chunk_scan(reader(fx), id, froms[k], walk_chunk, &w), 0);
        if (w.n != N - (int)froms[k] || w.bad)
            fail_msg("from %llu: %d chunks (%d bad), want %d", (unsigned long long)froms[k], w.n,
                     w.bad, N - (int)froms[k]);
    }
    for (int stop = 1; stop <= 40; stop += 13) {
        chunk_walk_t w = {.stop_after = stop};
        assert_int_equal(parley_db_chunk_scan(fx->w, id, 0, walk_chunk, &w), 0);
        assert_int_equal(w.n, stop);
        assert_int_equal(w.bad, 0);
    }
}

/* ======================================================================== */
/* producers                                                                */
/* ======================================================================== */

static void store_producer_roundtrip_and_replace(void **state)
{
    fixture_t *fx = *state;
    int64_t a = stream_add(fx, T("pr/a"), 0, false);
    int64_t b = stream_add(fx, T("pr/b"), 0, false);
    parley_producer_state_t ps = {.exists = true};
    assert_int_equal(parley_db_producer_get(fx->w, a, "p1", &ps), 0);
    assert_false(ps.exists);

    static const parley_producer_state_t puts[] = {
        {true, (1ULL << 40) + 1, (1ULL << 41) + 2}, /* large */
        {true, 2, 0},                               /* replaced, seq back to 0 */
    };
    for (size_t i = 0; i < sizeof puts / sizeof puts[0]; i++) {
        assert_int_equal(parley_db_producer_put(fx->w, a, "p1", &puts[i]), 0);
        parley_producer_state_t got = {0};
        assert_int_equal(parley_db_producer_get(reader(fx), a, "p1", &got), 0);
        assert_true(got.exists);
        EQI(&got, &puts[i], epoch);
        EQI(&got, &puts[i], last_seq);
    }
    /* keyed by (stream, producer) */
    assert_int_equal(parley_db_producer_get(fx->w, b, "p1", &ps), 0);
    assert_false(ps.exists);
    assert_int_equal(parley_db_producer_get(fx->w, a, "p2", &ps), 0);
    assert_false(ps.exists);
}

/* ======================================================================== */
/* idempotency                                                              */
/* ======================================================================== */

#define FP_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static void idem_expect(parley_db_t *db, const char *owner, const char *key, const char *fp,
                        int64_t created, const char *resp, size_t len)
{
    char gfp[65] = "";
    int64_t gcreated = 0;
    char *gresp = NULL;
    size_t glen = 0;
    assert_int_equal(parley_db_idem_get(db, owner, key, gfp, &gcreated, &gresp, &glen), 0);
    eq_s("fingerprint", gfp, fp);
    eq_i("created_ms", gcreated, created);
    eq_i("len", (int64_t)glen, (int64_t)len);
    assert_non_null(gresp);
    assert_memory_equal(gresp, resp, len);
    assert_int_equal(gresp[glen], '\0'); /* NUL-terminated */
    free(gresp);
}

static void store_idem_roundtrip_every_field(void **state)
{
    fixture_t *fx = *state;
    static const char resp[] = "HTTP/1.1 201\r\n\r\n{\"a\":1}\0after-nul";
    assert_int_equal(
        parley_db_idem_put(fx->w, T("u"), "k1", FP_A, T0 + 7, 0, resp, sizeof resp - 1), 0);
    idem_expect(reader(fx), T("u"), "k1", FP_A, T0 + 7, resp, sizeof resp - 1);
    assert_int_equal(parley_db_idem_put(fx->w, T("u"), "k-empty", FP_B, T0, 0, "", 0), 0);
    idem_expect(fx->w, T("u"), "k-empty", FP_B, T0, "", 0);
}

static void store_idem_get_enotfound_other_owner_or_key(void **state)
{
    fixture_t *fx = *state;
    char fp[65];
    int64_t created;
    char *resp = NULL;
    size_t len;
    assert_int_equal(parley_db_idem_put(fx->w, T("u"), "k", FP_A, T0, 0, "r", 1), 0);
    assert_int_equal(parley_db_idem_get(fx->w, T("v"), "k", fp, &created, &resp, &len),
                     PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_idem_get(fx->w, T("u"), "k2", fp, &created, &resp, &len),
                     PARLEY_ENOTFOUND);
    assert_null(resp);
}

/* A live record is never replaced (EEXIST, nothing written); one created
 * before expired_before_ms is. */
static void store_idem_put_eexist_live_replaces_expired(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(parley_db_idem_put(fx->w, T("u"), "k", FP_A, T0, 0, "first", 5), 0);
    assert_int_equal(parley_db_idem_put(fx->w, T("u"), "k", FP_B, T0 + 9, T0, "second!", 7),
                     PARLEY_EEXIST); /* created_ms == expired_before_ms is still live */
    idem_expect(fx->w, T("u"), "k", FP_A, T0, "first", 5);
    assert_int_equal(parley_db_idem_put(fx->w, T("u"), "k", FP_B, T0 + 9, T0 + 1, "second!", 7), 0);
    idem_expect(reader(fx), T("u"), "k", FP_B, T0 + 9, "second!", 7);
}

static void store_idem_purge_before_with_limit(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            parley_db_idem_put(fx->w, T("u"), T("old%d", i), FP_A, 1000 + i, 0, "x", 1), 0);
    assert_int_equal(parley_db_idem_put(fx->w, T("u"), "edge", FP_A, 2000, 0, "x", 1), 0);
    assert_int_equal(parley_db_idem_put(fx->w, T("u"), "new", FP_A, 3000, 0, "x", 1), 0);
    int n = -1;
    assert_int_equal(parley_db_idem_purge(fx->w, 2000, 2, &n), 0);
    assert_int_equal(n, 2); /* the limit */
    int total = 2;
    do {
        assert_int_equal(parley_db_idem_purge(fx->w, 2000, 2, &n), 0);
        total += n;
    } while (n > 0);
    if (fx->fresh)
        assert_int_equal(total, 3);
    char fp[65];
    int64_t created;
    char *resp = NULL;
    size_t len;
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            parley_db_idem_get(fx->w, T("u"), T("old%d", i), fp, &created, &resp, &len),
            PARLEY_ENOTFOUND);
    /* created_ms == before_ms is not "before": kept */
    idem_expect(fx->w, T("u"), "edge", FP_A, 2000, "x", 1);
    idem_expect(fx->w, T("u"), "new", FP_A, 3000, "x", 1);
}

/* ======================================================================== */
/* documents                                                                */
/* ======================================================================== */

static void doc_eq(const parley_doc_t *g, const parley_doc_t *w, bool with_deleted)
{
    EQS(g, w, owner);
    EQS(g, w, collection);
    EQS(g, w, id);
    EQI(g, w, version);
    if (with_deleted)
        EQI(g, w, deleted);
    EQI(g, w, len);
    assert_non_null(g->data);
    assert_memory_equal(g->data, w->data, w->len);
    EQS(g, w, checksum);
    EQI(g, w, created_ms);
    EQI(g, w, updated_ms);
    EQI(g, w, chg);
}

static const parley_doc_t doc_rows[] = {
    {.version = 3,
     .deleted = false,
     .data = "{\"title\":\"caf\xc3\xa9\",\"n\":[1,2,3]}",
     .checksum = FP_A,
     .created_ms = T0 + 1,
     .updated_ms = T0 + 2,
     .chg = (1LL << 40) + 5},
    {.version = (1LL << 33) + 1, /* a tombstone keeps its version */
     .deleted = true,
     .data = "null",
     .checksum = FP_B,
     .created_ms = T0 + 10,
     .updated_ms = T0 + 20,
     .chg = 6},
};

static parley_doc_t doc_make(int variant, const char *owner, const char *coll, const char *id)
{
    parley_doc_t d = doc_rows[variant];
    SET(d.owner, owner);
    SET(d.collection, coll);
    SET(d.id, id);
    d.len = strlen(d.data);
    return d;
}

static void store_doc_roundtrip_every_field(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 2; i++) {
        parley_doc_t d = doc_make(i, T("u"), "notes", T("d%d", i)), got;
        assert_int_equal(parley_db_doc_write(fx->w, &d, 0), 0);
        memset(&got, 0, sizeof got);
        assert_int_equal(parley_db_doc_get(reader(fx), d.owner, d.collection, d.id, &got), 0);
        doc_eq(&got, &d, true);
        assert_int_equal(got.data[got.len], '\0');
        parley_doc_clear(&got);
    }
}

static void store_doc_get_enotfound_missing(void **state)
{
    fixture_t *fx = *state;
    parley_doc_t d = doc_make(0, T("u"), "notes", "x"), got = {0};
    assert_int_equal(parley_db_doc_write(fx->w, &d, 0), 0);
    assert_int_equal(parley_db_doc_get(fx->w, T("v"), "notes", "x", &got), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_doc_get(fx->w, T("u"), "other", "x", &got), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_doc_get(fx->w, T("u"), "notes", "y", &got), PARLEY_ENOTFOUND);
    assert_null(got.data);
}

static void store_doc_write_tombstone_over_row(void **state)
{
    fixture_t *fx = *state;
    parley_doc_t d = doc_make(0, T("u"), "notes", "x"), got = {0};
    assert_int_equal(parley_db_doc_write(fx->w, &d, 0), 0);
    parley_doc_t d2 = doc_make(1, T("u"), "notes", "x"); /* tombstone over it */
    assert_int_equal(parley_db_doc_write(fx->w, &d2, d.version), 0);
    assert_int_equal(parley_db_doc_get(fx->w, T("u"), "notes", "x", &got), 0);
    doc_eq(&got, &d2, true);
    parley_doc_clear(&got);
}

typedef struct docs {
    int n;                      /* rows seen */
    int stop_after;             /* non-zero after this many (0: never) */
    parley_doc_t row[LIST_MAX]; /* copies (data owned) */
} docs_t;

static int collect_doc(void *arg, const parley_doc_t *d)
{
    docs_t *l = arg;
    if (l->n >= LIST_MAX)
        return 1;
    l->row[l->n] = *d;
    l->row[l->n].data = dup_mem(d->data, d->len);
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static void docs_reset(docs_t *l)
{
    for (int i = 0; i < l->n; i++)
        parley_doc_clear(&l->row[i]);
    memset(l, 0, sizeof *l);
}

/* A listing: (before, limit) -> the chg values expected, newest first. */
typedef struct page_case {
    int64_t before;  /* cursor (0 = from the newest) */
    int limit;       /* page size */
    int64_t want[6]; /* expected counters, 0-terminated */
} page_case_t;

/* Rows with counters 10..60; 40 is a tombstone (never listed). */
static const page_case_t pages[] = {
    {0, 10, {60, 50, 30, 20, 10}},
    {0, 2, {60, 50}},
    {50, 2, {30, 20}}, /* before is exclusive, the tombstone is skipped */
    {20, 2, {10}},
    {10, 2, {0}},
    {61, 1, {60}},
    {45, 10, {30, 20, 10}},
};

/* The rows of a list test are made in the order of their nominal values
 * 10, 20, ... 60 (pages[] above); the store assigns the real counters
 * (a[i] for the row of 10 * (i + 1)), so a nominal "before" cursor maps
 * to the real value that excludes the same rows. */
static int64_t page_before(const int64_t a[6], int64_t before)
{
    if (before == 0)
        return 0;
    int64_t k = before / 10;
    if (k > 6)
        return a[5] + 1;
    return before % 10 == 0 ? a[k - 1] : a[k - 1] + 1;
}

static void store_doc_list_newest_change_first_paged(void **state)
{
    fixture_t *fx = *state;
    parley_doc_t rows[6];
    int64_t a[6];
    for (int i = 0; i < 6; i++) {
        rows[i] = doc_make(0, T("u"), "notes", T("d%d", i));
        rows[i].deleted = i == 3;
        assert_int_equal(parley_db_doc_write(fx->w, &rows[i], 0), 0);
        a[i] = rows[i].chg;
    }
    parley_doc_t noise = doc_make(0, T("u"), "other", "n");
    assert_int_equal(parley_db_doc_write(fx->w, &noise, 0), 0);
    noise = doc_make(0, T("v"), "notes", "n");
    assert_int_equal(parley_db_doc_write(fx->w, &noise, 0), 0);

    docs_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    for (size_t k = 0; k < sizeof pages / sizeof pages[0]; k++) {
        assert_int_equal(parley_db_doc_list(reader(fx), T("u"), "notes",
                                            page_before(a, pages[k].before), pages[k].limit,
                                            collect_doc, l),
                         0);
        int i = 0;
        for (; pages[k].want[i]; i++) {
            if (i >= l->n)
                fail_msg("page %zu: %d rows, want more", k, l->n);
            int idx = (int)(pages[k].want[i] / 10) - 1;
            doc_eq(&l->row[i], &rows[idx], false); /* every field, by the list path */
            assert_false(l->row[i].deleted);
        }
        if (l->n != i)
            fail_msg("page %zu: %d rows, want %d", k, l->n, i);
        docs_reset(l);
    }
    l->stop_after = 1;
    assert_int_equal(parley_db_doc_list(fx->w, T("u"), "notes", 0, 10, collect_doc, l), 0);
    assert_int_equal(l->n, 1);
    docs_reset(l);
    free(l);
}

/* ======================================================================== */
/* conversations                                                            */
/* ======================================================================== */

static void conv_eq(const parley_conv_t *g, const parley_conv_t *w)
{
    EQS(g, w, id);
    EQS(g, w, owner);
    EQS(g, w, title);
    EQS(g, w, metadata);
    EQI(g, w, version);
    EQI(g, w, created_ms);
    EQI(g, w, updated_ms);
    EQI(g, w, message_count);
    EQI(g, w, last_message_ms);
    EQI(g, w, activity);
    EQI(g, w, deleted);
}

static const parley_conv_t conv_rows[] = {
    {.title = "Trip \xe2\x9c\x88 plans",
     .metadata = "{\"k\":\"v\",\"n\":1}",
     .version = (1LL << 33) + 2,
     .created_ms = T0 + 1,
     .updated_ms = T0 + 2,
     .message_count = (1LL << 34) + 3,
     .last_message_ms = T0 + 3,
     .activity = 77,
     .deleted = false},
    {.title = NULL, /* JSON null */
     .metadata = "{}",
     .version = 1,
     .created_ms = T0 + 10,
     .updated_ms = T0 + 20,
     .message_count = 0,
     .last_message_ms = -1,
     .activity = 78,
     .deleted = true},
};

static parley_conv_t conv_make(int variant, const char *id, const char *owner)
{
    parley_conv_t c = conv_rows[variant];
    SET(c.id, id);
    SET(c.owner, owner);
    return c;
}

static void store_conv_roundtrip_every_field(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 2; i++) {
        parley_conv_t c = conv_make(i, T("c%d", i), T("u")), got;
        assert_int_equal(parley_db_conv_insert(fx->w, &c), 0);
        assert_int_equal(parley_db_conv_get(reader(fx), c.id, &got), 0);
        conv_eq(&got, &c);
        parley_conv_clear(&got);
    }
}

static void store_conv_get_enotfound_missing(void **state)
{
    fixture_t *fx = *state;
    parley_conv_t got = {0};
    assert_int_equal(parley_db_conv_get(fx->w, T("none"), &got), PARLEY_ENOTFOUND);
    assert_null(got.title);
    assert_null(got.metadata);
}

typedef struct convs {
    int n;                       /* rows seen */
    int stop_after;              /* non-zero after this many (0: never) */
    parley_conv_t row[LIST_MAX]; /* copies (strings owned) */
} convs_t;

static int collect_conv(void *arg, const parley_conv_t *c)
{
    convs_t *l = arg;
    if (l->n >= LIST_MAX)
        return 1;
    l->row[l->n] = *c;
    l->row[l->n].title = dup_or_null(c->title);
    l->row[l->n].metadata = dup_or_null(c->metadata);
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static void convs_reset(convs_t *l)
{
    for (int i = 0; i < l->n; i++)
        parley_conv_clear(&l->row[i]);
    memset(l, 0, sizeof *l);
}

static void store_conv_list_most_active_first_paged(void **state)
{
    fixture_t *fx = *state;
    parley_conv_t rows[6];
    int64_t a[6];
    for (int i = 0; i < 6; i++) {
        rows[i] = conv_make(i % 2 == 0 ? 0 : 1, T("c%d", i), T("u"));
        rows[i].deleted = i == 3;
        assert_int_equal(parley_db_conv_insert(fx->w, &rows[i]), 0);
        a[i] = rows[i].activity;
    }
    parley_conv_t noise = conv_make(0, T("n"), T("v"));
    assert_int_equal(parley_db_conv_insert(fx->w, &noise), 0);

    convs_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    for (size_t k = 0; k < sizeof pages / sizeof pages[0]; k++) {
        assert_int_equal(parley_db_conv_list(reader(fx), T("u"), page_before(a, pages[k].before),
                                             pages[k].limit, collect_conv, l),
                         0);
        int i = 0;
        for (; pages[k].want[i]; i++) {
            if (i >= l->n)
                fail_msg("page %zu: %d rows, want more", k, l->n);
            conv_eq(&l->row[i], &rows[pages[k].want[i] / 10 - 1]);
        }
        if (l->n != i)
            fail_msg("page %zu: %d rows, want %d", k, l->n, i);
        convs_reset(l);
    }
    l->stop_after = 2;
    assert_int_equal(parley_db_conv_list(fx->w, T("u"), 0, 10, collect_conv, l), 0);
    assert_int_equal(l->n, 2);
    convs_reset(l);
    free(l);
}

/* ======================================================================== */
/* sessions                                                                 */
/* ======================================================================== */

static void sess_eq(const parley_sess_t *g, const parley_sess_t *w)
{
    EQS(g, w, id);
    EQS(g, w, conversation_id);
    EQS(g, w, owner);
    EQS(g, w, message_id);
    EQS(g, w, result_id);
    EQS(g, w, status);
    EQI(g, w, attempt);
    EQI(g, w, max_attempts);
    EQI(g, w, lease_ms);
    EQI(g, w, lease_expires_ms);
    EQS(g, w, error);
    EQS(g, w, request);
    EQS(g, w, input);
    EQI(g, w, created_ms);
    EQI(g, w, updated_ms);
    EQI(g, w, ord);
}

static const parley_sess_t sess_rows[] = {
    {.message_id = "msg-1",
     .result_id = "msg-2",
     .status = "processing",
     .attempt = 2,
     .max_attempts = (1LL << 33) + 5,
     .lease_ms = 30000,
     .lease_expires_ms = T0 + 30000,
     .error = "{\"code\":\"timeout\"}",
     .request = "{\"tool\":\"search\"}",
     .input = "{\"a\":[1,2]}",
     .created_ms = T0 + 1,
     .updated_ms = T0 + 2,
     .ord = (1LL << 40) + 9},
    {.message_id = "msg-3",
     .result_id = "",
     .status = "pending",
     .attempt = 1,
     .max_attempts = 3,
     .lease_ms = 0,
     .lease_expires_ms = -1,
     .error = NULL,
     .request = NULL,
     .input = NULL,
     .created_ms = T0 + 10,
     .updated_ms = T0 + 20,
     .ord = 4},
};

static parley_sess_t sess_make(int variant, const char *id, const char *conv)
{
    parley_sess_t s = sess_rows[variant];
    SET(s.id, id);
    SET(s.conversation_id, conv);
    SET(s.owner, "owner-x");
    return s;
}

static void store_sess_roundtrip_every_field(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 2; i++) {
        parley_sess_t s = sess_make(i, T("s%d", i), T("c")), got;
        assert_int_equal(parley_db_sess_insert(fx->w, &s), 0);
        assert_int_equal(parley_db_sess_get(reader(fx), s.id, &got), 0);
        sess_eq(&got, &s);
        parley_sess_clear(&got);
    }
}

static void store_sess_get_enotfound_missing_or_removed(void **state)
{
    fixture_t *fx = *state;
    parley_sess_t got = {0};
    assert_int_equal(parley_db_sess_get(fx->w, T("none"), &got), PARLEY_ENOTFOUND);
    parley_sess_t s = sess_make(0, T("s"), T("c"));
    assert_int_equal(parley_db_sess_insert(fx->w, &s), 0);
    assert_int_equal(parley_db_sess_remove(fx->w, s.id), 0);
    assert_int_equal(parley_db_sess_get(fx->w, s.id, &got), PARLEY_ENOTFOUND);
    assert_null(got.error);
}

typedef struct sesss {
    int n;                       /* rows seen */
    int stop_after;              /* non-zero after this many (0: never) */
    parley_sess_t row[LIST_MAX]; /* copies (strings owned) */
} sesss_t;

static int collect_sess(void *arg, const parley_sess_t *s)
{
    sesss_t *l = arg;
    if (l->n >= LIST_MAX)
        return 1;
    l->row[l->n] = *s;
    l->row[l->n].error = dup_or_null(s->error);
    l->row[l->n].request = dup_or_null(s->request);
    l->row[l->n].input = dup_or_null(s->input);
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static void sesss_reset(sesss_t *l)
{
    for (int i = 0; i < l->n; i++)
        parley_sess_clear(&l->row[i]);
    memset(l, 0, sizeof *l);
}

static void store_sess_list_newest_first_paged_by_status(void **state)
{
    fixture_t *fx = *state;
    parley_sess_t rows[6];
    int64_t a[6];
    for (int i = 0; i < 6; i++) {
        /* ord 40 is "done": it stands in for pages' tombstone */
        rows[i] = sess_make(i % 2, T("s%d", i), T("c"));
        SET(rows[i].status, i == 3 ? "done" : "pending");
        assert_int_equal(parley_db_sess_insert(fx->w, &rows[i]), 0);
        a[i] = rows[i].ord;
    }
    parley_sess_t noise = sess_make(0, T("n"), T("c-other"));
    assert_int_equal(parley_db_sess_insert(fx->w, &noise), 0);

    sesss_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    for (size_t k = 0; k < sizeof pages / sizeof pages[0]; k++) {
        assert_int_equal(parley_db_sess_list(reader(fx), T("c"), "pending",
                                             page_before(a, pages[k].before), pages[k].limit,
                                             collect_sess, l),
                         0);
        int i = 0;
        for (; pages[k].want[i]; i++) {
            if (i >= l->n)
                fail_msg("page %zu: %d rows, want more", k, l->n);
            sess_eq(&l->row[i], &rows[pages[k].want[i] / 10 - 1]);
        }
        if (l->n != i)
            fail_msg("page %zu: %d rows, want %d", k, l->n, i);
        sesss_reset(l);
    }
    /* without a status every session of the conversation */
    assert_int_equal(parley_db_sess_list(fx->w, T("c"), NULL, 0, 10, collect_sess, l), 0);
    assert_int_equal(l->n, 6);
    for (int i = 0; i < 6; i++)
        sess_eq(&l->row[i], &rows[5 - i]);
    sesss_reset(l);
    l->stop_after = 1;
    assert_int_equal(parley_db_sess_list(fx->w, T("c"), NULL, 0, 10, collect_sess, l), 0);
    assert_int_equal(l->n, 1);
    sesss_reset(l);
    free(l);
}

static void store_sess_expired_processing_lease_ended(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *status; /* state */
        int64_t lease_end;  /* -1: none */
        int order;          /* expected position, -1 if not expired */
    } rows[] = {
        {"processing", T0 + 500, 1},   {"processing", T0 + 1000, 2}, /* at now: expired */
        {"processing", T0 + 1001, -1}, {"pending", T0 + 1, -1},
        {"processing", -1, -1},        {"processing", T0 + 100, 0},
    };
    int nr = (int)(sizeof rows / sizeof rows[0]);
    for (int i = 0; i < nr; i++) {
        parley_sess_t s = sess_make(0, T("e%d", i), T("c"));
        SET(s.status, rows[i].status);
        s.lease_expires_ms = rows[i].lease_end;
        assert_int_equal(parley_db_sess_insert(fx->w, &s), 0);
    }
    char(*ids)[PARLEY_ROW_ID_MAX + 1] = calloc(SCAN_MAX, sizeof *ids);
    assert_non_null(ids);
    int n = -1;
    assert_int_equal(parley_db_sess_expired(fx->w, T0 + 1000, ids, SCAN_MAX, &n), 0);
    int last = -1;
    for (int want = 0; want < 3; want++) /* ours, in lease order */
        for (int i = 0; i < nr; i++)
            if (rows[i].order == want) {
                int at = index_of(ids, n, T("e%d", i));
                if (at < 0 || at < last)
                    fail_msg("e%d: at %d, after %d", i, at, last);
                last = at;
            }
    for (int i = 0; i < nr; i++)
        if (rows[i].order < 0 && has_id(ids, n, T("e%d", i)))
            fail_msg("e%d listed as expired", i);
    assert_int_equal(parley_db_sess_expired(fx->w, T0 + 1000, ids, 2, &n), 0);
    assert_int_equal(n, 2);
    free(ids);
}

/* ======================================================================== */
/* snapshots                                                                */
/* ======================================================================== */

static void snap_eq(const parley_snap_t *g, const parley_snap_t *w)
{
    EQS(g, w, id);
    EQS(g, w, owner);
    EQS(g, w, source);
    EQS(g, w, kind);
    EQS(g, w, title);
    EQI(g, w, is_public);
    EQI(g, w, created_ms);
    EQI(g, w, expires_ms);
    EQS(g, w, stream);
    EQS(g, w, payload);
    EQI(g, w, ord);
}

static const parley_snap_t snap_rows[] = {
    {.source = "/v1/conversations/c-1",
     .kind = "conversation",
     .title = "Shared \xc3\xa9",
     .is_public = true,
     .created_ms = T0 + 1,
     .expires_ms = T0 + 1000,
     .stream = "_parley/snap/abc",
     .payload = "{\"conversation\":{\"id\":\"c-1\"}}",
     .ord = (1LL << 40) + 1},
    {.source = "/v1/documents/notes/d-1",
     .kind = "document",
     .title = NULL,
     .is_public = false,
     .created_ms = T0 + 10,
     .expires_ms = -1,
     .stream = "",
     .payload = "{\"document\":{}}",
     .ord = 2},
};

static parley_snap_t snap_make(int variant, const char *id, const char *owner)
{
    parley_snap_t s = snap_rows[variant];
    SET(s.id, id);
    SET(s.owner, owner);
    return s;
}

static void store_snap_roundtrip_every_field(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 2; i++) {
        parley_snap_t s = snap_make(i, T("n%d", i), T("u")), got;
        assert_int_equal(parley_db_snap_insert(fx->w, &s), 0);
        assert_int_equal(parley_db_snap_get(reader(fx), s.id, &got), 0);
        snap_eq(&got, &s);
        parley_snap_clear(&got);
    }
}

static void store_snap_get_enotfound_missing_or_removed(void **state)
{
    fixture_t *fx = *state;
    parley_snap_t got = {0};
    assert_int_equal(parley_db_snap_get(fx->w, T("none"), &got), PARLEY_ENOTFOUND);
    parley_snap_t s = snap_make(0, T("n"), T("u"));
    assert_int_equal(parley_db_snap_insert(fx->w, &s), 0);
    assert_int_equal(parley_db_snap_remove(fx->w, s.id), 0);
    assert_int_equal(parley_db_snap_get(fx->w, s.id, &got), PARLEY_ENOTFOUND);
    assert_null(got.payload);
}

typedef struct snaps {
    int n;                       /* rows seen */
    int stop_after;              /* non-zero after this many (0: never) */
    parley_snap_t row[LIST_MAX]; /* copies (strings owned) */
} snaps_t;

static int collect_snap(void *arg, const parley_snap_t *s)
{
    snaps_t *l = arg;
    if (l->n >= LIST_MAX)
        return 1;
    l->row[l->n] = *s;
    l->row[l->n].title = dup_or_null(s->title);
    l->row[l->n].payload = dup_or_null(s->payload);
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static void snaps_reset(snaps_t *l)
{
    for (int i = 0; i < l->n; i++)
        parley_snap_clear(&l->row[i]);
    memset(l, 0, sizeof *l);
}

static void store_snap_list_newest_first_paged(void **state)
{
    fixture_t *fx = *state;
    parley_snap_t rows[6];
    int64_t a[6];
    for (int i = 0; i < 6; i++) {
        rows[i] = snap_make(i % 2, T("n%d", i), i == 3 ? T("v") : T("u")); /* 40: not ours */
        assert_int_equal(parley_db_snap_insert(fx->w, &rows[i]), 0);
        a[i] = rows[i].ord;
    }
    snaps_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    for (size_t k = 0; k < sizeof pages / sizeof pages[0]; k++) {
        assert_int_equal(parley_db_snap_list(reader(fx), T("u"), page_before(a, pages[k].before),
                                             pages[k].limit, collect_snap, l),
                         0);
        int i = 0;
        for (; pages[k].want[i]; i++) {
            if (i >= l->n)
                fail_msg("page %zu: %d rows, want more", k, l->n);
            snap_eq(&l->row[i], &rows[pages[k].want[i] / 10 - 1]);
        }
        if (l->n != i)
            fail_msg("page %zu: %d rows, want %d", k, l->n, i);
        snaps_reset(l);
    }
    l->stop_after = 1;
    assert_int_equal(parley_db_snap_list(fx->w, T("u"), 0, 10, collect_snap, l), 0);
    assert_int_equal(l->n, 1);
    snaps_reset(l);
    free(l);
}

static void store_snap_expired_only_holding_a_stream(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        int64_t expires; /* -1: never */
        bool stream;     /* still holds a fork */
        int order;       /* expected position, -1 if not listed */
    } rows[] = {
        {T0 + 900, true, 1}, {T0 + 1000, true, 2}, {T0 + 1001, true, -1},
        {T0 + 1, false, -1}, {-1, true, -1},       {T0 + 5, true, 0},
    };
    int nr = (int)(sizeof rows / sizeof rows[0]);
    for (int i = 0; i < nr; i++) {
        parley_snap_t s = snap_make(0, T("x%d", i), T("u"));
        s.expires_ms = rows[i].expires;
        SET(s.stream, rows[i].stream ? "_parley/snap/f" : "");
        assert_int_equal(parley_db_snap_insert(fx->w, &s), 0);
    }
    char(*ids)[PARLEY_ROW_ID_MAX + 1] = calloc(SCAN_MAX, sizeof *ids);
    assert_non_null(ids);
    int n = -1;
    assert_int_equal(parley_db_snap_expired(fx->w, T0 + 1000, ids, SCAN_MAX, &n), 0);
    int last = -1;
    for (int want = 0; want < 3; want++)
        for (int i = 0; i < nr; i++)
            if (rows[i].order == want) {
                int at = index_of(ids, n, T("x%d", i));
                if (at < 0 || at < last)
                    fail_msg("x%d: at %d, after %d", i, at, last);
                last = at;
            }
    for (int i = 0; i < nr; i++)
        if (rows[i].order < 0 && has_id(ids, n, T("x%d", i)))
            fail_msg("x%d listed as expired", i);
    assert_int_equal(parley_db_snap_expired(fx->w, T0 + 1000, ids, 1, &n), 0);
    assert_int_equal(n, 1);
    free(ids);
}

/* ======================================================================== */
/* counters                                                                 */
/* ======================================================================== */

/* ======================================================================== */
/* subscriptions                                                            */
/* ======================================================================== */

static void sub_eq(const parley_sub_t *g, const parley_sub_t *w)
{
    EQS(g, w, id);
    EQS(g, w, type);
    EQS(g, w, pattern);
    EQS(g, w, webhook_url);
    EQS(g, w, wake_stream);
    EQS(g, w, description);
    EQI(g, w, lease_ttl_ms);
    EQS(g, w, config_hash);
    EQS(g, w, root_url);
    EQI(g, w, created_ms);
    EQI(g, w, generation);
    EQS(g, w, wake_id);
    EQS(g, w, holder);
    EQI(g, w, lease_expires_ms);
    EQI(g, w, delivery_due_ms);
    EQI(g, w, attempts);
}

static const parley_sub_t sub_rows[] = {
    {.type = "webhook",
     .pattern = "chats/*/events",
     .webhook_url = "https://hooks.example/parley?x=1",
     .wake_stream = "",
     .description = "nightly \xc3\xa9 digest",
     .lease_ttl_ms = 45000,
     .config_hash = FP_A,
     .root_url = "http://127.0.0.1:4437/v1/stream",
     .created_ms = T0 + 1,
     .generation = (1LL << 35) + 1,
     .wake_id = "w-000001",
     .holder = "",
     .lease_expires_ms = T0 + 45000,
     .delivery_due_ms = T0 + 2000,
     .attempts = 3},
    {.type = "pull-wake",
     .pattern = "",
     .webhook_url = "",
     .wake_stream = "_wake/worker",
     .description = "",
     .lease_ttl_ms = 1,
     .config_hash = FP_B,
     .root_url = "http://h/v1/stream",
     .created_ms = T0 + 10,
     .generation = 0,
     .wake_id = "",
     .holder = "worker-7",
     .lease_expires_ms = -1,
     .delivery_due_ms = -1,
     .attempts = 0},
};

static parley_sub_t *sub_make(int variant, const char *id)
{
    parley_sub_t *s = malloc(sizeof *s);
    assert_non_null(s);
    *s = sub_rows[variant];
    SET(s->id, id);
    return s;
}

static void store_sub_roundtrip_every_field(void **state)
{
    fixture_t *fx = *state;
    parley_sub_t *got = malloc(sizeof *got);
    assert_non_null(got);
    for (int i = 0; i < 2; i++) {
        parley_sub_t *s = sub_make(i, T("sub%d", i));
        assert_int_equal(parley_db_sub_put_config(fx->w, s), 0);
        assert_int_equal(parley_db_sub_get(reader(fx), s->id, got), 0);
        sub_eq(got, s);
        free(s);
    }
    free(got);
}

/* The stat op: the database's size (and SQLite's WAL), and subscriptions
 * counted by type, as /metrics reports them. */
static void store_stat_sizes_and_subscription_counts(void **state)
{
    fixture_t *fx = *state;
    parley_store_stat_t before, after;
    char desc[256];
    parley_store_describe(fx->store, desc, sizeof desc);
    bool pg = strncmp(desc, "postgres", 8) == 0;
    assert_int_equal(parley_db_stat(reader(fx), &before), 0);
    assert_true(before.db_bytes > 0);
    if (pg)
        assert_int_equal(before.wal_bytes, -1); /* the cluster's, not the database's */
    else
        assert_true(before.wal_bytes >= 0);
    assert_true(before.subs_webhook >= 0 && before.subs_pull_wake >= 0);
    const int variant[] = {0, 1, 1};
    for (int i = 0; i < 3; i++) {
        parley_sub_t *sub = sub_make(variant[i], T("stat%d", i));
        assert_int_equal(parley_db_sub_put_config(fx->w, sub), 0);
        free(sub);
    }
    assert_int_equal(parley_db_stat(reader(fx), &after), 0);
    assert_int_equal(after.subs_webhook, before.subs_webhook + 1);
    assert_int_equal(after.subs_pull_wake, before.subs_pull_wake + 2);
    assert_true(after.db_bytes > 0);
}

typedef struct links {
    int n;                           /* rows seen */
    int stop_after;                  /* non-zero after this many (0: never) */
    parley_sub_link_t row[LIST_MAX]; /* copies */
} links_t;

static int collect_link(void *arg, const parley_sub_link_t *l)
{
    links_t *ls = arg;
    if (ls->n >= LIST_MAX)
        return 1;
    ls->row[ls->n++] = *l;
    return ls->stop_after && ls->n >= ls->stop_after;
}

static parley_sub_link_t link_make(const char *sub, const char *path, uint64_t acked,
                                   int64_t wake_tail)
{
    parley_sub_link_t l = {.by_explicit = true, .acked = acked, .wake_tail = wake_tail};
    SET(l.sub_id, sub);
    SET(l.path, path);
    return l;
}

static void store_sub_get_enotfound_missing_or_removed(void **state)
{
    fixture_t *fx = *state;
    parley_sub_t *got = malloc(sizeof *got);
    assert_non_null(got);
    assert_int_equal(parley_db_sub_get(fx->w, T("none"), got), PARLEY_ENOTFOUND);
    parley_sub_t *s = sub_make(0, T("sub"));
    assert_int_equal(parley_db_sub_put_config(fx->w, s), 0);
    parley_sub_link_t l = link_make(s->id, T("x"), 0, -1);
    assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    assert_int_equal(parley_db_sub_remove(fx->w, s->id), 0);
    assert_int_equal(parley_db_sub_get(fx->w, s->id, got), PARLEY_ENOTFOUND);
    /* its links went with it */
    parley_sub_link_t gl;
    assert_int_equal(parley_db_sublink_get(fx->w, s->id, T("x"), &gl), PARLEY_ENOTFOUND);
    links_t *ls = calloc(1, sizeof *ls);
    assert_non_null(ls);
    assert_int_equal(parley_db_sublink_list(fx->w, NULL, T("x"), collect_link, ls), 0);
    assert_int_equal(ls->n, 0);
    free(ls);
    free(s);
    free(got);
}

typedef struct subs {
    int n;               /* our rows seen */
    int stop_after;      /* non-zero after this many (0: never) */
    parley_sub_t row[8]; /* copies of our rows */
} subs_t;

static int collect_own_sub(void *arg, const parley_sub_t *s)
{
    subs_t *l = arg;
    if (strncmp(s->id, fx_now->tag, strlen(fx_now->tag)) != 0)
        return 0; /* another case's row in a shared store */
    if (l->n >= 8)
        return 1;
    l->row[l->n++] = *s;
    return l->stop_after && l->n >= l->stop_after;
}

static void store_sub_with_pattern_only_patterned(void **state)
{
    fixture_t *fx = *state;
    parley_sub_t *a = sub_make(0, T("pat")), *b = sub_make(1, T("nopat"));
    assert_int_equal(parley_db_sub_put_config(fx->w, a), 0);
    assert_int_equal(parley_db_sub_put_config(fx->w, b), 0);
    subs_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(parley_db_sub_with_pattern(reader(fx), collect_own_sub, l), 0);
    assert_int_equal(l->n, 1);
    sub_eq(&l->row[0], a); /* every field, by the scan path */
    /* a callback's non-zero stops the walk */
    parley_sub_t *c = sub_make(0, T("pat2"));
    assert_int_equal(parley_db_sub_put_config(fx->w, c), 0);
    memset(l, 0, sizeof *l);
    l->stop_after = 1;
    assert_int_equal(parley_db_sub_with_pattern(fx->w, collect_own_sub, l), 0);
    assert_int_equal(l->n, 1);
    free(l);
    free(a);
    free(b);
    free(c);
}

/* Subscription scan rows: lease end and delivery due. */
typedef struct sub_scan_row {
    int64_t lease_end; /* -1: none */
    int64_t due;       /* -1: none */
    int lease_order;   /* position among lease expiries, -1: not listed */
    int due_order;     /* position among due deliveries, -1: not listed */
} sub_scan_row_t;

static const sub_scan_row_t sub_scan_rows[] = {
    {T0 + 700, -1, 1, -1},   {T0 + 1000, -1, 2, -1},       /* at now */
    {T0 + 1001, -1, -1, -1}, {T0 + 10, T0 + 5000, -1, -1}, /* delivery pending */
    {-1, T0 + 1000, -1, 1},  {-1, T0 + 400, -1, 0},
    {T0 + 5, -1, 0, -1},     {-1, T0 + 1001, -1, -1},
};
#define NSUB_SCAN (int)(sizeof sub_scan_rows / sizeof sub_scan_rows[0])

static void sub_scan_setup(fixture_t *fx)
{
    for (int i = 0; i < NSUB_SCAN; i++) {
        parley_sub_t *s = sub_make(0, T("ss%d", i));
        s->lease_expires_ms = sub_scan_rows[i].lease_end;
        s->delivery_due_ms = sub_scan_rows[i].due;
        assert_int_equal(parley_db_sub_put_config(fx->w, s), 0);
        free(s);
    }
}

static void sub_scan_check(char (*ids)[PARLEY_ROW_ID_MAX + 1], int n, bool lease)
{
    int last = -1;
    for (int want = 0; want < NSUB_SCAN; want++)
        for (int i = 0; i < NSUB_SCAN; i++) {
            int order = lease ? sub_scan_rows[i].lease_order : sub_scan_rows[i].due_order;
            if (order != want)
                continue;
            int at = index_of(ids, n, T("ss%d", i));
            if (at < 0 || at < last)
                fail_msg("ss%d: at %d, after %d", i, at, last);
            last = at;
        }
    for (int i = 0; i < NSUB_SCAN; i++) {
        int order = lease ? sub_scan_rows[i].lease_order : sub_scan_rows[i].due_order;
        if (order < 0 && has_id(ids, n, T("ss%d", i)))
            fail_msg("ss%d listed", i);
    }
}

static void store_sub_leases_expired_without_pending_delivery(void **state)
{
    fixture_t *fx = *state;
    sub_scan_setup(fx);
    char(*ids)[PARLEY_ROW_ID_MAX + 1] = calloc(SCAN_MAX, sizeof *ids);
    assert_non_null(ids);
    int n = -1;
    assert_int_equal(parley_db_sub_leases_expired(fx->w, T0 + 1000, ids, SCAN_MAX, &n), 0);
    sub_scan_check(ids, n, true);
    assert_int_equal(parley_db_sub_leases_expired(fx->w, T0 + 1000, ids, 2, &n), 0);
    assert_int_equal(n, 2);
    free(ids);
}

static void store_sub_deliveries_due_most_overdue_first(void **state)
{
    fixture_t *fx = *state;
    sub_scan_setup(fx);
    char(*ids)[PARLEY_ROW_ID_MAX + 1] = calloc(SCAN_MAX, sizeof *ids);
    assert_non_null(ids);
    int n = -1;
    assert_int_equal(parley_db_sub_deliveries_due(fx->w, T0 + 1000, ids, SCAN_MAX, &n), 0);
    sub_scan_check(ids, n, false);
    assert_int_equal(parley_db_sub_deliveries_due(fx->w, T0 + 1000, ids, 1, &n), 0);
    assert_int_equal(n, 1);
    free(ids);
}

static void store_sub_next_delivery_earliest_or_none(void **state)
{
    fixture_t *fx = *state;
    int64_t due = 0;
    if (fx->fresh) {
        assert_int_equal(parley_db_sub_next_delivery(fx->w, &due), 0);
        assert_int_equal(due, -1);
    }
    sub_scan_setup(fx);
    assert_int_equal(parley_db_sub_next_delivery(reader(fx), &due), 0);
    if (fx->fresh)
        assert_int_equal(due, T0 + 400);
    else
        assert_true(due >= 0 && due <= T0 + 400);
}

/* ======================================================================== */
/* subscription links                                                       */
/* ======================================================================== */

static void link_eq(const parley_sub_link_t *g, const parley_sub_link_t *w)
{
    EQS(g, w, sub_id);
    EQS(g, w, path);
    EQI(g, w, by_glob);
    EQI(g, w, by_explicit);
    EQI(g, w, acked);
    EQI(g, w, wake_tail);
}

static void store_sublink_roundtrip_every_field(void **state)
{
    fixture_t *fx = *state;
    parley_sub_link_t rows[2] = {
        {.by_glob = true, .by_explicit = false, .acked = BIG, .wake_tail = (1LL << 41) + 1},
        {.by_glob = false, .by_explicit = true, .acked = 0, .wake_tail = -1},
    };
    for (int i = 0; i < 2; i++) {
        SET(rows[i].sub_id, T("sub"));
        SET(rows[i].path, T("l/p%d", i));
        assert_int_equal(parley_db_sublink_put(fx->w, &rows[i]), 0);
        parley_sub_link_t got;
        assert_int_equal(parley_db_sublink_get(reader(fx), rows[i].sub_id, rows[i].path, &got), 0);
        link_eq(&got, &rows[i]);
    }
    /* replace: each takes the other's values */
    for (int i = 0; i < 2; i++) {
        parley_sub_link_t l = rows[1 - i], got;
        memcpy(l.path, rows[i].path, sizeof l.path);
        assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
        assert_int_equal(parley_db_sublink_get(fx->w, l.sub_id, l.path, &got), 0);
        link_eq(&got, &l);
    }
}

static void store_sublink_get_enotfound_missing_or_removed(void **state)
{
    fixture_t *fx = *state;
    parley_sub_link_t got;
    assert_int_equal(parley_db_sublink_get(fx->w, T("sub"), T("x"), &got), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_sublink_remove(fx->w, T("sub"), T("x")), 0); /* absent: fine */
    parley_sub_link_t l = link_make(T("sub"), T("x"), 3, -1);
    parley_sub_link_t k = link_make(T("sub"), T("y"), 4, -1);
    assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    assert_int_equal(parley_db_sublink_put(fx->w, &k), 0);
    assert_int_equal(parley_db_sublink_remove(fx->w, T("sub"), T("x")), 0);
    assert_int_equal(parley_db_sublink_get(fx->w, T("sub"), T("x"), &got), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_sublink_get(fx->w, T("sub"), T("y"), &got), 0);
}

static void store_sublink_list_by_sub_or_by_path(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *sub;  /* subscription suffix */
        const char *path; /* path suffix */
    } rows[] = {{"s1", "b"}, {"s1", "a/2"}, {"s2", "a/10"}, {"s1", "a/10"}, {"s0", "a/10"}};
    parley_sub_link_t put[5];
    for (int i = 0; i < 5; i++) {
        put[i] =
            link_make(T("%s", rows[i].sub), T("%s", rows[i].path), (uint64_t)i * 7, i % 2 ? i : -1);
        put[i].by_glob = i % 2;
        assert_int_equal(parley_db_sublink_put(fx->w, &put[i]), 0);
    }
    links_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(parley_db_sublink_list(reader(fx), T("s1"), NULL, collect_link, l), 0);
    int want_sub[] = {3, 1, 0}; /* a/10, a/2, b: path order */
    assert_int_equal(l->n, 3);
    for (int i = 0; i < 3; i++)
        link_eq(&l->row[i], &put[want_sub[i]]);
    memset(l, 0, sizeof *l);
    assert_int_equal(parley_db_sublink_list(fx->w, NULL, T("a/10"), collect_link, l), 0);
    int want_path[] = {4, 3, 2}; /* s0, s1, s2 */
    assert_int_equal(l->n, 3);
    for (int i = 0; i < 3; i++)
        link_eq(&l->row[i], &put[want_path[i]]);
    memset(l, 0, sizeof *l);
    l->stop_after = 1;
    assert_int_equal(parley_db_sublink_list(fx->w, T("s1"), NULL, collect_link, l), 0);
    assert_int_equal(l->n, 1);
    free(l);
}

/* Snapshot then ack: one row per link, against the streams below. */
typedef struct ack_case {
    const char *path;    /* path suffix */
    int stream;          /* 0: none, 1: live, 2: deleted */
    uint64_t tail;       /* the stream's tail at snapshot time */
    uint64_t acked;      /* the link's acked before */
    int64_t snap_tail;   /* expected wake_tail after snapshot */
    uint64_t tail_after; /* the path's stream has this tail before the ack (0: unchanged) */
    bool wipe;           /* put the link back with wake_tail -1 before the ack */
    uint64_t acked_want; /* acked after the ack */
} ack_case_t;

static const ack_case_t ack_cases[] = {
    {"live", 1, 50, 10, 50, 0, false, 50},    /* advances to the snapshot */
    {"grew", 1, 50, 10, 50, 90, false, 50},   /* not to the later tail */
    {"ahead", 1, 50, 70, 50, 0, false, 70},   /* never backwards */
    {"missing", 0, 0, 5, 0, 0, false, 5},     /* no stream: wake_tail 0 */
    {"deleted", 2, 40, 5, 0, 0, false, 5},    /* deleted: wake_tail 0 */
    {"shrunk", 1, 50, 10, 50, 30, false, 30}, /* never past the tail now */
    {"outside", 1, 50, 10, 50, 0, true, 10},  /* no wake in flight: untouched */
    {"big", 1, BIG, 1, (int64_t)BIG, 0, false, BIG},
};
#define NACK (int)(sizeof ack_cases / sizeof ack_cases[0])

static void store_sublink_snapshot_and_ack_follow_stream_tails(void **state)
{
    fixture_t *fx = *state;
    int64_t ids[NACK] = {0};
    for (int i = 0; i < NACK; i++) {
        if (ack_cases[i].stream)
            ids[i] = stream_add(fx, T("k/%s", ack_cases[i].path), ack_cases[i].tail,
                                ack_cases[i].stream == 2);
        parley_sub_link_t l =
            link_make(T("sub"), T("k/%s", ack_cases[i].path), ack_cases[i].acked, -1);
        assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    }
    /* another subscription's link on the same stream is not touched */
    parley_sub_link_t other = link_make(T("other"), T("k/live"), 1, -1);
    assert_int_equal(parley_db_sublink_put(fx->w, &other), 0);

    assert_int_equal(parley_db_sublink_snapshot(fx->w, T("sub")), 0);
    for (int i = 0; i < NACK; i++) {
        parley_sub_link_t got;
        assert_int_equal(parley_db_sublink_get(fx->w, T("sub"), T("k/%s", ack_cases[i].path), &got),
                         0);
        if (got.wake_tail != ack_cases[i].snap_tail)
            fail_msg("%s: wake_tail %lld, want %lld", ack_cases[i].path, (long long)got.wake_tail,
                     (long long)ack_cases[i].snap_tail);
        eq_i("acked", (int64_t)got.acked, (int64_t)ack_cases[i].acked); /* untouched */
        if (ack_cases[i].tail_after) {
            /* the path now names a stream with that tail (grown, or
             * deleted and made again shorter) */
            assert_int_equal(parley_db_stream_remove(fx->w, ids[i]), 0);
            ids[i] = stream_add(fx, T("k/%s", ack_cases[i].path), ack_cases[i].tail_after, false);
        }
        if (ack_cases[i].wipe) {
            got.wake_tail = -1;
            assert_int_equal(parley_db_sublink_put(fx->w, &got), 0);
        }
    }
    assert_int_equal(parley_db_sublink_ack_snapshot(fx->w, T("sub")), 0);
    for (int i = 0; i < NACK; i++) {
        parley_sub_link_t got;
        assert_int_equal(
            parley_db_sublink_get(reader(fx), T("sub"), T("k/%s", ack_cases[i].path), &got), 0);
        if (got.acked != ack_cases[i].acked_want)
            fail_msg("%s: acked %llu, want %llu", ack_cases[i].path, (unsigned long long)got.acked,
                     (unsigned long long)ack_cases[i].acked_want);
    }
    parley_sub_link_t got;
    assert_int_equal(parley_db_sublink_get(fx->w, T("other"), T("k/live"), &got), 0);
    link_eq(&got, &other);
}

static void store_sublink_first_pending_in_path_order(void **state)
{
    fixture_t *fx = *state;
    char path[PARLEY_PATH_MAX + 1];
    assert_int_equal(parley_db_sublink_first_pending(fx->w, T("sub"), path), PARLEY_ENOTFOUND);
    static const struct {
        const char *path; /* path suffix */
        int stream;       /* 0: none, 1: live, 2: deleted */
        uint64_t tail;    /* stream tail */
        uint64_t acked;   /* link acked */
    } rows[] = {
        {"f/a", 1, 10, 10}, /* caught up */
        {"f/b", 0, 0, 0},   /* no stream */
        {"f/c", 2, 10, 0},  /* deleted */
        {"f/e", 1, 9, 3},   /* pending */
        {"f/d", 1, 8, 2},   /* pending, first in path order */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (rows[i].stream)
            stream_add(fx, T("%s", rows[i].path), rows[i].tail, rows[i].stream == 2);
        parley_sub_link_t l = link_make(T("sub"), T("%s", rows[i].path), rows[i].acked, -1);
        assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    }
    assert_int_equal(parley_db_sublink_first_pending(reader(fx), T("sub"), path), 0);
    eq_s("path", path, T("f/d"));
    parley_sub_link_t l = link_make(T("sub"), T("f/d"), 8, -1);
    assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    assert_int_equal(parley_db_sublink_first_pending(fx->w, T("sub"), path), 0);
    eq_s("path", path, T("f/e"));
    l = link_make(T("sub"), T("f/e"), 9, -1);
    assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    assert_int_equal(parley_db_sublink_first_pending(fx->w, T("sub"), path), PARLEY_ENOTFOUND);
}

/* ======================================================================== */
/* server keys                                                              */
/* ======================================================================== */

static const unsigned char key_a[32] = {
    0x00, 0x01, 0xff, 0x00, 0x7f, 0x80, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0,
    0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00};

static void store_key_roundtrip_binary(void **state)
{
    fixture_t *fx = *state;
    unsigned char out[64];
    size_t len = 0;
    assert_int_equal(parley_db_key_put(fx->w, T("webhook"), key_a, sizeof key_a, T0), 0);
    assert_int_equal(parley_db_key_get(reader(fx), T("webhook"), out, sizeof out, &len), 0);
    assert_int_equal(len, sizeof key_a);
    assert_memory_equal(out, key_a, sizeof key_a);
    /* exactly the size fits */
    assert_int_equal(parley_db_key_get(fx->w, T("webhook"), out, sizeof key_a, &len), 0);
    assert_int_equal(len, sizeof key_a);
}

static void store_key_put_eexist_keeps_first(void **state)
{
    fixture_t *fx = *state;
    unsigned char other[16], out[64];
    size_t len = 0;
    memset(other, 0xee, sizeof other);
    assert_int_equal(parley_db_key_put(fx->w, T("k"), key_a, sizeof key_a, T0), 0);
    assert_int_equal(parley_db_key_put(fx->w, T("k"), other, sizeof other, T0 + 1), PARLEY_EEXIST);
    assert_int_equal(parley_db_key_get(fx->w, T("k"), out, sizeof out, &len), 0);
    assert_int_equal(len, sizeof key_a);
    assert_memory_equal(out, key_a, sizeof key_a);
}

static void store_key_get_enotfound_or_etoobig(void **state)
{
    fixture_t *fx = *state;
    unsigned char out[64];
    size_t len = 0;
    assert_int_equal(parley_db_key_get(fx->w, T("none"), out, sizeof out, &len), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_key_put(fx->w, T("k"), key_a, sizeof key_a, T0), 0);
    assert_int_equal(parley_db_key_get(fx->w, T("k"), out, sizeof key_a - 1, &len), PARLEY_ETOOBIG);
}

/* ======================================================================== */
/* transactions                                                             */
/* ======================================================================== */

static bool stream_exists(parley_db_t *db, const char *path)
{
    parley_stream_t st;
    int rc = parley_db_stream_get(db, path, &st);
    assert_true(rc == 0 || rc == PARLEY_ENOTFOUND);
    return rc == 0;
}

static void store_txn_savepoint_rollback_keeps_rest_of_batch(void **state)
{
    fixture_t *fx = *state;
    parley_db_t *w = fx->w;
    int64_t v;
    assert_int_equal(parley_db_begin(w), 0);
    /* request 1: kept */
    assert_int_equal(parley_db_savepoint(w), 0);
    stream_add(fx, T("t/a"), 0, false);
    parley_conv_t c1 = conv_make(0, T("c1"), T("u"));
    assert_int_equal(parley_db_conv_insert(w, &c1), 0);
    v = c1.activity;
    assert_int_equal(parley_db_release(w), 0);
    /* request 2: refused, every row it wrote goes (its counter too) */
    assert_int_equal(parley_db_savepoint(w), 0);
    stream_add(fx, T("t/b"), 0, false);
    parley_conv_t c = conv_make(0, T("c"), T("u"));
    assert_int_equal(parley_db_conv_insert(w, &c), 0);
    assert_int_equal(c.activity, v + 1);
    assert_int_equal(parley_db_rollback_to(w), 0);
    /* request 3: kept, and sees request 2 undone */
    assert_int_equal(parley_db_savepoint(w), 0);
    assert_false(stream_exists(w, T("t/b")));
    stream_add(fx, T("t/c"), 0, false);
    parley_conv_t c3 = conv_make(0, T("c3"), T("u"));
    assert_int_equal(parley_db_conv_insert(w, &c3), 0);
    assert_int_equal(c3.activity, v + 1);
    assert_int_equal(parley_db_release(w), 0);
    assert_int_equal(parley_db_commit(w), 0);

    parley_db_t *r = reader(fx);
    assert_true(stream_exists(r, T("t/a")));
    assert_false(stream_exists(r, T("t/b")));
    assert_true(stream_exists(r, T("t/c")));
    parley_conv_t got = {0};
    assert_int_equal(parley_db_conv_get(r, T("c"), &got), PARLEY_ENOTFOUND);
}

static void store_txn_rollback_to_after_failed_statement(void **state)
{
    fixture_t *fx = *state;
    parley_db_t *w = fx->w;
    assert_int_equal(parley_db_begin(w), 0);
    assert_int_equal(parley_db_savepoint(w), 0);
    stream_add(fx, T("t/a"), 0, false);
    assert_int_equal(parley_db_release(w), 0);

    assert_int_equal(parley_db_savepoint(w), 0);
    stream_add(fx, T("t/b"), 0, false);
    parley_stream_t dup;
    stream_init(&dup, T("t/a"));
    assert_int_equal(parley_db_stream_create(w, &dup), PARLEY_EEXIST); /* the failed statement */
    assert_int_equal(parley_db_key_put(w, T("k"), key_a, 4, T0), 0);
    assert_int_equal(parley_db_key_put(w, T("k"), key_a, 4, T0), PARLEY_EEXIST);
    assert_int_equal(parley_db_rollback_to(w), 0); /* the batch is still open */

    assert_int_equal(parley_db_savepoint(w), 0);
    assert_true(stream_exists(w, T("t/a")));
    assert_false(stream_exists(w, T("t/b")));
    assert_int_equal(parley_db_key_put(w, T("k"), key_a, sizeof key_a, T0), 0);
    assert_int_equal(parley_db_release(w), 0);
    assert_int_equal(parley_db_commit(w), 0);

    parley_db_t *r = reader(fx);
    assert_true(stream_exists(r, T("t/a")));
    assert_false(stream_exists(r, T("t/b")));
    unsigned char out[64];
    size_t len = 0;
    assert_int_equal(parley_db_key_get(r, T("k"), out, sizeof out, &len), 0);
    assert_int_equal(len, sizeof key_a); /* the later put, not the rolled-back one */
}

static void store_txn_rollback_discards_batch(void **state)
{
    fixture_t *fx = *state;
    parley_db_t *w = fx->w;
    assert_int_equal(parley_db_rollback(w), 0); /* no transaction: still safe */
    assert_int_equal(parley_db_begin(w), 0);
    stream_add(fx, T("t/a"), 0, false);
    assert_int_equal(parley_db_rollback(w), 0);
    assert_false(stream_exists(w, T("t/a")));
    assert_false(stream_exists(reader(fx), T("t/a")));
    assert_int_equal(parley_db_rollback(w), 0);
}

static void store_txn_commit_visible_to_reader(void **state)
{
    fixture_t *fx = *state;
    parley_db_t *w = fx->w, *r = reader(fx);
    assert_int_equal(parley_db_begin(w), 0);
    stream_add(fx, T("t/a"), 0, false);
    /* not committed: a reader does not see it */
    assert_int_equal(parley_db_begin(r), 0);
    assert_false(stream_exists(r, T("t/a")));
    assert_int_equal(parley_db_commit(r), 0);
    assert_false(stream_exists(r, T("t/a"))); /* nor outside a transaction */
    assert_int_equal(parley_db_commit(w), 0);
    /* committed: the next reader transaction sees it */
    assert_int_equal(parley_db_begin(r), 0);
    assert_true(stream_exists(r, T("t/a")));
    assert_int_equal(parley_db_commit(r), 0);
    /* and a reader opened after the commit */
    parley_db_t *r2 = NULL;
    assert_int_equal(parley_store_reader(fx->store, &r2), 0);
    assert_true(stream_exists(r2, T("t/a")));
    parley_db_close(r2);
}

/* ======================================================================== */
/* atomic chat-row ops: counters and versions the store assigns           */
/* ======================================================================== */

static void store_doc_write_cas_and_assigns_chg(void **state)
{
    fixture_t *fx = *state;
    parley_doc_t d = doc_make(0, T("u"), "notes", "w"), got = {0};
    d.version = 1;
    d.chg = -5;
    assert_int_equal(parley_db_doc_write(fx->w, &d, 0), 0);
    assert_true(d.chg > 0);
    int64_t first = d.chg;
    /* 0 means "must not exist": refused once it does */
    parley_doc_t again = doc_make(1, T("u"), "notes", "w");
    again.version = 1;
    assert_int_equal(parley_db_doc_write(fx->w, &again, 0), PARLEY_ECONFLICT);
    /* a stale expect_version is refused and writes nothing */
    again.version = 3;
    assert_int_equal(parley_db_doc_write(fx->w, &again, 2), PARLEY_ECONFLICT);
    assert_int_equal(parley_db_doc_get(fx->w, T("u"), "notes", "w", &got), 0);
    doc_eq(&got, &d, true);
    parley_doc_clear(&got);
    /* the current version passes; chg grows */
    again.version = 2;
    assert_int_equal(parley_db_doc_write(fx->w, &again, 1), 0);
    assert_true(again.chg > first);
    assert_int_equal(parley_db_doc_get(reader(fx), T("u"), "notes", "w", &got), 0);
    doc_eq(&got, &again, true);
    eq_i("chg", got.chg, again.chg);
    parley_doc_clear(&got);
}

static void store_conv_insert_assigns_activity_eexist(void **state)
{
    fixture_t *fx = *state;
    parley_conv_t a = conv_make(0, T("ca"), T("u")), b = conv_make(1, T("cb"), T("u"));
    a.activity = b.activity = -1;
    assert_int_equal(parley_db_conv_insert(fx->w, &a), 0);
    assert_int_equal(parley_db_conv_insert(fx->w, &b), 0);
    assert_true(a.activity > 0);
    assert_true(b.activity > a.activity);
    parley_conv_t got;
    assert_int_equal(parley_db_conv_get(reader(fx), T("cb"), &got), 0);
    eq_i("activity", got.activity, b.activity);
    parley_conv_clear(&got);
    assert_int_equal(parley_db_conv_insert(fx->w, &a), PARLEY_EEXIST);
}

static void store_conv_update_cas_on_version(void **state)
{
    fixture_t *fx = *state;
    parley_conv_t c = conv_make(0, T("cu"), T("u")), got;
    assert_int_equal(parley_db_conv_insert(fx->w, &c), 0);
    int64_t v = c.version;
    parley_conv_t patch = c;
    patch.title = "new title";
    patch.metadata = "{\"k\":1}";
    patch.updated_ms = T0 + 99;
    assert_int_equal(parley_db_conv_update(fx->w, &patch, v + 1), PARLEY_ECONFLICT);
    assert_int_equal(parley_db_conv_update(fx->w, &patch, v), 0);
    eq_i("version", patch.version, v + 1);
    assert_int_equal(parley_db_conv_get(reader(fx), T("cu"), &got), 0);
    eq_s("title", got.title, "new title");
    eq_s("metadata", got.metadata, "{\"k\":1}");
    eq_i("version", got.version, v + 1);
    eq_i("updated_ms", got.updated_ms, T0 + 99);
    eq_i("message_count", got.message_count, c.message_count); /* untouched */
    eq_i("activity", got.activity, c.activity);
    parley_conv_clear(&got);
    /* the old version again: moved */
    assert_int_equal(parley_db_conv_update(fx->w, &patch, v), PARLEY_ECONFLICT);
    parley_conv_t none = {0};
    SET(none.id, T("none"));
    assert_int_equal(parley_db_conv_update(fx->w, &none, 1), PARLEY_ENOTFOUND);
    /* a tombstone is not updated */
    int64_t tv;
    assert_int_equal(parley_db_conv_tombstone(fx->w, T("cu"), T0, &tv), 0);
    assert_int_equal(parley_db_conv_update(fx->w, &patch, tv), PARLEY_ECONFLICT);
}

static void store_conv_bump_and_tombstone(void **state)
{
    fixture_t *fx = *state;
    parley_conv_t c = conv_make(0, T("cm"), T("u")), got;
    int64_t count0 = c.message_count;
    assert_int_equal(parley_db_conv_insert(fx->w, &c), 0);
    int64_t seq = 0, version = 0, activity = 0, last = c.activity;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(parley_db_conv_bump(fx->w, T("cm"), T0 + i, &seq, &version, &activity), 0);
        eq_i("seq", seq, count0 + i);
        eq_i("version", version, c.version + i);
        assert_true(activity > last);
        last = activity;
    }
    assert_int_equal(parley_db_conv_get(reader(fx), T("cm"), &got), 0);
    eq_i("message_count", got.message_count, count0 + 3);
    eq_i("last_message_ms", got.last_message_ms, T0 + 3);
    eq_i("updated_ms", got.updated_ms, T0 + 3);
    eq_i("activity", got.activity, last);
    parley_conv_clear(&got);

    assert_int_equal(parley_db_conv_tombstone(fx->w, T("cm"), T0 + 50, &version), 0);
    eq_i("version", version, c.version + 4);
    assert_int_equal(parley_db_conv_get(reader(fx), T("cm"), &got), 0);
    assert_true(got.deleted);
    assert_null(got.title);
    eq_s("metadata", got.metadata, "{}");
    eq_i("message_count", got.message_count, count0 + 3);
    eq_i("updated_ms", got.updated_ms, T0 + 50);
    parley_conv_clear(&got);
    assert_int_equal(parley_db_conv_bump(fx->w, T("cm"), T0, &seq, &version, &activity),
                     PARLEY_ECONFLICT);
    assert_int_equal(parley_db_conv_bump(fx->w, T("none"), T0, &seq, &version, &activity),
                     PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_conv_tombstone(fx->w, T("none"), T0, &version), PARLEY_ENOTFOUND);
}

/* conv_touch: a message on a branch moves version, activity and the
 * times, never message_count (the main branch's). */
static void store_conv_touch_keeps_count(void **state)
{
    fixture_t *fx = *state;
    parley_conv_t c = conv_make(0, T("ct"), T("u")), got;
    assert_int_equal(parley_db_conv_insert(fx->w, &c), 0);
    int64_t seq = 0, count = -1, version = 0, activity = 0;
    assert_int_equal(parley_db_conv_bump(fx->w, T("ct"), T0 + 1, &seq, &version, &activity), 0);
    int64_t last = activity;
    for (int i = 2; i <= 4; i++) {
        assert_int_equal(parley_db_conv_touch(fx->w, T("ct"), T0 + i, &count, &version, &activity),
                         0);
        eq_i("count", count, seq);
        eq_i("version", version, c.version + i);
        assert_true(activity > last);
        last = activity;
    }
    assert_int_equal(parley_db_conv_get(reader(fx), T("ct"), &got), 0);
    eq_i("message_count", got.message_count, seq);
    eq_i("last_message_ms", got.last_message_ms, T0 + 4);
    eq_i("updated_ms", got.updated_ms, T0 + 4);
    eq_i("activity", got.activity, last);
    parley_conv_clear(&got);
    assert_int_equal(parley_db_conv_tombstone(fx->w, T("ct"), T0 + 50, &version), 0);
    assert_int_equal(parley_db_conv_touch(fx->w, T("ct"), T0, &count, &version, &activity),
                     PARLEY_ECONFLICT);
    assert_int_equal(parley_db_conv_touch(fx->w, T("none"), T0, &count, &version, &activity),
                     PARLEY_ENOTFOUND);
}

static void store_sess_insert_update_cas(void **state)
{
    fixture_t *fx = *state;
    parley_sess_t a = sess_make(0, T("sa"), T("c")), b = sess_make(1, T("sb"), T("c")), got;
    assert_int_equal(parley_db_sess_insert(fx->w, &a), 0);
    assert_int_equal(parley_db_sess_insert(fx->w, &b), 0);
    assert_true(b.ord > a.ord && a.ord > 0);
    assert_int_equal(parley_db_sess_insert(fx->w, &a), PARLEY_EEXIST);

    parley_sess_t u = a;
    char old_status[PARLEY_STATUS_MAX + 1];
    SET(old_status, a.status);
    SET(u.status, "done-x");
    u.attempt = a.attempt + 1;
    u.lease_expires_ms = -1;
    u.updated_ms = T0 + 77;
    u.error = "{\"e\":1}";
    SET(u.result_id, "r1");
    /* wrong status, wrong attempt: refused, nothing written */
    assert_int_equal(parley_db_sess_update(fx->w, &u, "nope", a.attempt), PARLEY_ECONFLICT);
    assert_int_equal(parley_db_sess_update(fx->w, &u, old_status, a.attempt + 5), PARLEY_ECONFLICT);
    assert_int_equal(parley_db_sess_get(fx->w, T("sa"), &got), 0);
    eq_s("status", got.status, old_status);
    parley_sess_clear(&got);
    assert_int_equal(parley_db_sess_update(fx->w, &u, old_status, a.attempt), 0);
    assert_int_equal(parley_db_sess_get(reader(fx), T("sa"), &got), 0);
    eq_s("status", got.status, "done-x");
    eq_i("attempt", got.attempt, a.attempt + 1);
    eq_i("updated_ms", got.updated_ms, T0 + 77);
    eq_s("error", got.error, "{\"e\":1}");
    eq_s("result_id", got.result_id, "r1");
    eq_i("ord", got.ord, a.ord); /* untouched */
    parley_sess_clear(&got);
    assert_int_equal(parley_db_sess_update(fx->w, &u, old_status, a.attempt), PARLEY_ECONFLICT);
    SET(u.id, T("none"));
    assert_int_equal(parley_db_sess_update(fx->w, &u, "x", 1), PARLEY_ENOTFOUND);
}

static void store_sess_claim_next_oldest_once(void **state)
{
    fixture_t *fx = *state;
    parley_sess_t got;
    assert_int_equal(parley_db_sess_claim_next(fx->w, T("a"), T0, 1000, &got), PARLEY_ENOTFOUND);
    const char *convs[] = {"a", "b", "a"};
    for (int i = 0; i < 3; i++) {
        parley_sess_t s = sess_make(0, T("q%d", i), T("%s", convs[i]));
        SET(s.status, "pending");
        s.lease_expires_ms = -1;
        assert_int_equal(parley_db_sess_insert(fx->w, &s), 0);
    }
    /* of one conversation: its oldest */
    assert_int_equal(parley_db_sess_claim_next(fx->w, T("b"), T0 + 1, 500, &got), 0);
    eq_s("id", got.id, T("q1"));
    eq_s("status", got.status, "processing");
    eq_i("lease_ms", got.lease_ms, 500);
    eq_i("lease_expires_ms", got.lease_expires_ms, T0 + 501);
    eq_i("updated_ms", got.updated_ms, T0 + 1);
    parley_sess_clear(&got);
    assert_int_equal(parley_db_sess_claim_next(fx->w, T("b"), T0, 500, &got), PARLEY_ENOTFOUND);
    /* across conversations (the whole queue's head: a fresh store only),
     * else within "a": oldest first, each once */
    const char *conv = fx->fresh ? NULL : T("a");
    assert_int_equal(parley_db_sess_claim_next(fx->w, conv, T0, 1000, &got), 0);
    eq_s("id", got.id, T("q0"));
    parley_sess_clear(&got);
    assert_int_equal(parley_db_sess_claim_next(fx->w, conv, T0, 1000, &got), 0);
    eq_s("id", got.id, T("q2"));
    parley_sess_clear(&got);
    assert_int_equal(parley_db_sess_claim_next(fx->w, conv, T0, 1000, &got), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_sess_get(reader(fx), T("q2"), &got), 0);
    eq_s("status", got.status, "processing");
    parley_sess_clear(&got);
}

static void store_snap_insert_and_expire(void **state)
{
    fixture_t *fx = *state;
    parley_snap_t a = snap_make(0, T("na"), T("u")), b = snap_make(1, T("nb"), T("u")), got;
    assert_int_equal(parley_db_snap_insert(fx->w, &a), 0);
    assert_int_equal(parley_db_snap_insert(fx->w, &b), 0);
    assert_true(b.ord > a.ord && a.ord > 0);
    assert_int_equal(parley_db_snap_insert(fx->w, &a), PARLEY_EEXIST);
    assert_int_equal(parley_db_snap_expire(fx->w, T("na")), 0);
    assert_int_equal(parley_db_snap_get(reader(fx), T("na"), &got), 0);
    eq_s("payload", got.payload, "{}");
    eq_s("stream", got.stream, "");
    eq_i("ord", got.ord, a.ord);
    EQS(&got, &a, owner);
    parley_snap_clear(&got);
    assert_int_equal(parley_db_snap_expire(fx->w, T("none")), PARLEY_ENOTFOUND);
}

/* ======================================================================== */
/* atomic subscription ops: config, wake (fencing counter), CAS, acks      */
/* ======================================================================== */

/* put_config inserts every field, then changes only configuration. */
static void store_sub_put_config_keeps_delivery_state(void **state)
{
    fixture_t *fx = *state;
    parley_sub_t *s = sub_make(0, T("pc")), *cfg = sub_make(1, T("pc")), *got = malloc(sizeof *got);
    assert_non_null(got);
    assert_int_equal(parley_db_sub_put_config(fx->w, s), 0);
    assert_int_equal(parley_db_sub_get(reader(fx), s->id, got), 0);
    sub_eq(got, s);
    assert_int_equal(parley_db_sub_put_config(fx->w, cfg), 0);
    assert_int_equal(parley_db_sub_get(fx->w, s->id, got), 0);
    parley_sub_t want = *cfg;
    want.created_ms = s->created_ms; /* not configuration: kept */
    want.generation = s->generation;
    SET(want.wake_id, s->wake_id);
    SET(want.holder, s->holder);
    want.lease_expires_ms = s->lease_expires_ms;
    want.delivery_due_ms = s->delivery_due_ms;
    want.attempts = s->attempts;
    sub_eq(got, &want);
    free(s);
    free(cfg);
    free(got);
}

/* begin_wake: generation + 1 only from idle; a wake in flight is ECONFLICT. */
static void store_sub_begin_wake_only_from_idle(void **state)
{
    fixture_t *fx = *state;
    parley_sub_t *s = sub_make(1, T("bw")), *got = malloc(sizeof *got);
    assert_non_null(got);
    s->generation = 7;
    SET(s->holder, "");
    assert_int_equal(parley_db_sub_put_config(fx->w, s), 0);
    int64_t gen = 0;
    assert_int_equal(parley_db_sub_begin_wake(fx->w, s->id, "w1", T0 + 100, T0 + 5, &gen), 0);
    eq_i("generation", gen, 8);
    assert_int_equal(parley_db_sub_get(reader(fx), s->id, got), 0);
    eq_i("generation", got->generation, 8);
    eq_s("wake_id", got->wake_id, "w1");
    eq_i("lease_expires_ms", got->lease_expires_ms, T0 + 100);
    eq_i("delivery_due_ms", got->delivery_due_ms, T0 + 5);
    eq_i("attempts", got->attempts, 0);
    gen = 0;
    assert_int_equal(parley_db_sub_begin_wake(fx->w, s->id, "w2", -1, -1, &gen), PARLEY_ECONFLICT);
    eq_i("generation out untouched", gen, 0);
    assert_int_equal(parley_db_sub_get(fx->w, s->id, got), 0);
    eq_i("generation", got->generation, 8);
    eq_s("wake_id", got->wake_id, "w1");
    assert_int_equal(parley_db_sub_begin_wake(fx->w, T("none"), "w", -1, -1, &gen),
                     PARLEY_ENOTFOUND);
    free(s);
    free(got);
}

/* sub_update: written only at the expected generation and wake id. */
static void store_sub_update_fenced_by_generation_and_wake(void **state)
{
    fixture_t *fx = *state;
    parley_sub_t *s = sub_make(0, T("up")), *got = malloc(sizeof *got);
    assert_non_null(got);
    assert_int_equal(parley_db_sub_put_config(fx->w, s), 0);
    parley_sub_t u = *s;
    SET(u.holder, "w9");
    u.lease_expires_ms = T0 + 9;
    u.delivery_due_ms = -1;
    u.attempts = 4;
    assert_int_equal(parley_db_sub_update(fx->w, &u, s->generation - 1, s->wake_id),
                     PARLEY_ECONFLICT);
    assert_int_equal(parley_db_sub_update(fx->w, &u, s->generation, "other"), PARLEY_ECONFLICT);
    assert_int_equal(parley_db_sub_get(fx->w, s->id, got), 0);
    sub_eq(got, s); /* nothing written */
    assert_int_equal(parley_db_sub_update(fx->w, &u, s->generation, s->wake_id), 0);
    assert_int_equal(parley_db_sub_get(reader(fx), s->id, got), 0);
    sub_eq(got, &u);
    /* to idle: "" is the idle wake id */
    parley_sub_t idle = u;
    idle.wake_id[0] = idle.holder[0] = '\0';
    idle.lease_expires_ms = idle.delivery_due_ms = -1;
    idle.attempts = 0;
    assert_int_equal(parley_db_sub_update(fx->w, &idle, s->generation, s->wake_id), 0);
    assert_int_equal(parley_db_sub_update(fx->w, &idle, s->generation, ""), 0);
    assert_int_equal(parley_db_sub_get(fx->w, s->id, got), 0);
    sub_eq(got, &idle);
    SET(idle.id, T("none"));
    assert_int_equal(parley_db_sub_update(fx->w, &idle, 0, ""), PARLEY_ENOTFOUND);
    free(s);
    free(got);
}

/* sublink_advance: never back, never past the live stream's tail. */
typedef struct advance_case {
    const char *name; /* what it checks */
    uint64_t pos;     /* advance to */
    int want;         /* result */
    uint64_t acked;   /* acked after */
} advance_case_t;

static void store_sublink_advance_never_back_never_past_tail(void **state)
{
    fixture_t *fx = *state;
    static const advance_case_t cases[] = {
        {"forward", 5, 0, 5},
        {"same again", 5, 0, 5},
        {"back", 4, PARLEY_ECONFLICT, 5},
        {"to the tail", 10, 0, 10},
        {"past the tail", 11, PARLEY_ECONFLICT, 10},
    };
    stream_add(fx, T("adv/s"), 10, false);
    parley_sub_link_t l = link_make(T("sub"), T("adv/s"), 2, -1), got;
    assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parley_db_sublink_advance(fx->w, T("sub"), T("adv/s"), cases[i].pos);
        if (rc != cases[i].want)
            fail_msg("%s: %d, want %d", cases[i].name, rc, cases[i].want);
        assert_int_equal(parley_db_sublink_get(fx->w, T("sub"), T("adv/s"), &got), 0);
        eq_i(cases[i].name, (int64_t)got.acked, (int64_t)cases[i].acked);
    }
    /* a deleted or missing stream has tail 0: no advance past it */
    stream_add(fx, T("adv/d"), 10, true);
    l = link_make(T("sub"), T("adv/d"), 0, -1);
    assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    assert_int_equal(parley_db_sublink_advance(fx->w, T("sub"), T("adv/d"), 1), PARLEY_ECONFLICT);
    l = link_make(T("sub"), T("adv/none"), 0, -1);
    assert_int_equal(parley_db_sublink_put(fx->w, &l), 0);
    assert_int_equal(parley_db_sublink_advance(fx->w, T("sub"), T("adv/none"), 0), 0);
    assert_int_equal(parley_db_sublink_advance(fx->w, T("sub"), T("adv/none"), 1),
                     PARLEY_ECONFLICT);
    assert_int_equal(parley_db_sublink_advance(fx->w, T("other"), T("adv/s"), 1), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_sublink_get(reader(fx), T("sub"), T("adv/s"), &got), 0);
    eq_i("acked", (int64_t)got.acked, 10);
}

static void store_txn_reader_snapshot_isolated_from_later_commit(void **state)
{
    fixture_t *fx = *state;
    parley_db_t *w = fx->w, *r = reader(fx);
    int64_t id = stream_add(fx, T("t/a"), 10, false);
    parley_doc_t d = doc_make(0, T("u"), "notes", "x");
    assert_int_equal(parley_db_doc_write(w, &d, 0), 0);

    assert_int_equal(parley_db_begin(r), 0);
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get_id(r, id, &st), 0); /* the snapshot is taken */
    assert_int_equal(st.tail, 10);

    assert_int_equal(parley_db_begin(w), 0);
    uint64_t tail;
    assert_int_equal(parley_db_stream_append(w, id, "x", 1, 89, T0, NULL, -1, &tail), 0);
    assert_int_equal(tail, 99);
    stream_add(fx, T("t/b"), 0, false);
    parley_doc_t d2 = doc_make(1, T("u"), "notes", "x");
    assert_int_equal(parley_db_doc_write(w, &d2, d.version), 0);
    assert_int_equal(parley_db_commit(w), 0);

    /* the reader's transaction still sees the store as it was */
    assert_int_equal(parley_db_stream_get_id(r, id, &st), 0);
    assert_int_equal(st.tail, 10);
    assert_false(stream_exists(r, T("t/b")));
    parley_doc_t got = {0};
    assert_int_equal(parley_db_doc_get(r, T("u"), "notes", "x", &got), 0);
    assert_false(got.deleted);
    eq_i("version", got.version, doc_rows[0].version);
    parley_doc_clear(&got);
    assert_int_equal(parley_db_commit(r), 0);

    /* its next transaction sees the commit */
    assert_int_equal(parley_db_begin(r), 0);
    assert_int_equal(parley_db_stream_get_id(r, id, &st), 0);
    assert_int_equal(st.tail, 99);
    assert_true(stream_exists(r, T("t/b")));
    assert_int_equal(parley_db_doc_get(r, T("u"), "notes", "x", &got), 0);
    assert_true(got.deleted);
    parley_doc_clear(&got);
    assert_int_equal(parley_db_commit(r), 0);
}

/* ---- operations: sync times, export / import ------------------------------ */

static void store_commit_observes_wal_sync_time(void **state)
{
    fixture_t *fx = *state;
    const parley_hist_t *h = parley_synctime_hist(PARLEY_SYNC_WAL);
    uint64_t before = parley_hist_count(h);
    assert_int_equal(parley_db_begin(fx->w), 0);
    stream_add(fx, T("synced"), 0, false);
    assert_int_equal(parley_db_commit(fx->w), 0);
    assert_true(parley_hist_count(h) >= before + 1);
}

/* The store's export, read on the fixture's reader: a new string. (Not
 * inlined: GCC then takes the memstream's buffer for a dangling one.) */
__attribute__((noinline)) static char *export_text(fixture_t *fx, int64_t *objects)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    assert_int_equal(parley_db_begin(reader(fx)), 0);
    assert_int_equal(parley_store_export(reader(fx), NULL, out, stderr, objects), 0);
    parley_db_commit(reader(fx));
    fclose(out);
    return buf;
}

/* Import text through the writer in a transaction that is rolled back. */
static int import_text(fixture_t *fx, const char *text, parley_import_stats_t *st)
{
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(in);
    assert_int_equal(parley_db_begin(fx->w), 0);
    int rc = parley_store_import(fx->w, in, stderr, st);
    parley_db_rollback(fx->w);
    fclose(in);
    json_decref(st->conversations); /* the caller's (transfer.h) */
    st->conversations = NULL;
    return rc;
}

static void store_transfer_own_export_is_all_present_changed_refused(void **state)
{
    fixture_t *fx = *state;
    uint64_t tail = 0;
    assert_int_equal(parley_db_begin(fx->w), 0);
    int64_t id = stream_add(fx, T("moved"), 0, false);
    assert_int_equal(parley_db_stream_append(fx->w, id, "a\0\xff", 3, 3, T0, NULL, -1, &tail), 0);
    assert_int_equal(parley_db_commit(fx->w), 0);

    int64_t objects = 0;
    char *text = export_text(fx, &objects);
    assert_true(objects >= 2); /* the stream and its chunk at least */
    assert_non_null(strstr(text, "\"base64\":\"YQD_\""));
    parley_import_stats_t st;
    assert_int_equal(import_text(fx, text, &st), 0);
    assert_int_equal(st.inserted, 0);
    assert_int_equal(st.present, objects);

    /* The same stream with another tail: refused. */
    char path[256];
    snprintf(path, sizeof path, "\"path\":\"%s\"", T("moved"));
    char *at = strstr(text, path);
    assert_non_null(at);
    char *tail_at = strstr(at, "\"tail\":3");
    assert_non_null(tail_at);
    tail_at[strlen("\"tail\":")] = '4';
    assert_int_equal(import_text(fx, text, &st), PARLEY_ECONFLICT);
    free(text);
}

/* ======================================================================== */

#define S(fn) cmocka_unit_test_setup_teardown(fn, store_setup, store_teardown)

/* ---- search and moving a user's rows ------------------------------------ */

static int count_hit(void *arg, const parley_search_hit_t *h)
{
    int *n = arg;
    assert_true(h->snippet != NULL);
    (*n)++;
    return 0;
}

/* Hits of one word (a WORD term, or a prefix) for owner. */
static int hits(fixture_t *fx, const char *owner, const char *word, bool prefix)
{
    static parley_search_query_t q;
    memset(&q, 0, sizeof q);
    q.nterms = 1;
    q.terms[0].kind = prefix ? PARLEY_SEARCH_PREFIX : PARLEY_SEARCH_WORD;
    SET(q.terms[0].text, word);
    int n = 0;
    assert_int_equal(parley_db_search_query(reader(fx), owner, &q, 0, 100, count_hit, &n), 0);
    return n;
}

static void store_search_owner_title_tombstone_and_move(void **state)
{
    fixture_t *fx = *state;
    const char *ua = T("ua"), *ub = T("ub");
    char a[64], b[64];
    SET(a, T("ca"));
    SET(b, T("cb"));
    parley_conv_t ca = conv_make(0, a, ua), cb = conv_make(0, b, ub);
    ca.title = "Zebra crossing";
    cb.title = NULL;
    assert_int_equal(parley_db_conv_insert(fx->w, &ca), 0);
    assert_int_equal(parley_db_conv_insert(fx->w, &cb), 0);
    assert_int_equal(parley_db_search_put(fx->w, a, T("m1"), 1, "Penguin alpha"), 0);
    assert_int_equal(parley_db_search_put(fx->w, b, T("m2"), 1, "penguin beta"), 0);
    assert_int_equal(hits(fx, ua, "penguin", false), 1);
    assert_int_equal(hits(fx, ub, "penguin", false), 1);
    assert_int_equal(hits(fx, ua, "beta", false), 0);
    assert_int_equal(hits(fx, ua, "zebra", false), 1);
    assert_int_equal(hits(fx, ua, "zeb", true), 1);
    assert_int_equal(hits(fx, ub, "zebra", false), 0);

    parley_move_counts_t mv;
    assert_int_equal(parley_db_user_move(fx->w, ua, ub, &mv), 0);
    assert_int_equal(mv.moved[0], 1); /* parley_owned[0]: conversations */
    assert_int_equal(hits(fx, ua, "penguin", false), 0);
    assert_int_equal(hits(fx, ub, "penguin", false), 2);
    assert_int_equal(hits(fx, ub, "zebra", false), 1);
    assert_int_equal(parley_db_user_move(fx->w, ua, ub, &mv), 0);
    assert_int_equal(mv.moved[0], 0);

    int64_t version;
    assert_int_equal(parley_db_conv_tombstone(fx->w, a, T0 + 99, &version), 0);
    assert_int_equal(hits(fx, ub, "alpha", false), 0);
    assert_int_equal(hits(fx, ub, "zebra", false), 0);
    assert_int_equal(hits(fx, ub, "penguin", false), 1);

    char to[PARLEY_OWNER_MAX + 1], *answer = NULL;
    assert_int_equal(parley_db_transfer_get(fx->w, ua, to, &answer), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_transfer_put(fx->w, ua, ub, "{\"n\":1}", T0), 0);
    assert_int_equal(parley_db_transfer_put(fx->w, ua, ub, "{\"n\":2}", T0 + 1), 0);
    assert_int_equal(parley_db_transfer_get(fx->w, ua, to, &answer), 0);
    assert_string_equal(to, ub);
    assert_string_equal(answer, "{\"n\":2}");
    free(answer);
}

/* Messages indexed inside the writer's transaction: findable after its
 * commit and not before; a savepoint rolled back takes its message with
 * it; a message whose conversation is deleted later in the same
 * transaction never shows; more than a queue's worth (an import) are all
 * indexed. On SQLite the writer queues them until the commit
 * (search_sqlite.c); PostgreSQL indexes each at once: the same answers. */
static void store_search_in_transaction_follows_savepoints(void **state)
{
    fixture_t *fx = *state;
    char u[64], a[64], b[64], id[64], text[64];
    SET(u, T("u"));
    SET(a, T("ca"));
    SET(b, T("cb"));
    parley_conv_t ca = conv_make(0, a, u), cb = conv_make(0, b, u);
    ca.title = cb.title = NULL;
    assert_int_equal(parley_db_conv_insert(fx->w, &ca), 0);
    assert_int_equal(parley_db_conv_insert(fx->w, &cb), 0);
    assert_int_equal(parley_db_begin(fx->w), 0);
    assert_int_equal(parley_db_savepoint(fx->w), 0);
    assert_int_equal(parley_db_search_put(fx->w, a, T("m1"), 1, "walrus undone"), 0);
    assert_int_equal(parley_db_rollback_to(fx->w), 0);
    assert_int_equal(parley_db_savepoint(fx->w), 0);
    assert_int_equal(parley_db_search_put(fx->w, a, T("m2"), 1, "walrus kept"), 0);
    assert_int_equal(parley_db_release(fx->w), 0);
    assert_int_equal(parley_db_savepoint(fx->w), 0);
    assert_int_equal(parley_db_search_put(fx->w, b, T("m3"), 1, "walrus gone"), 0);
    assert_int_equal(parley_db_release(fx->w), 0);
    int64_t version;
    assert_int_equal(parley_db_savepoint(fx->w), 0);
    assert_int_equal(parley_db_conv_tombstone(fx->w, b, T0 + 5, &version), 0);
    assert_int_equal(parley_db_release(fx->w), 0);
    assert_int_equal(hits(fx, u, "walrus", false), 0); /* not committed yet */
    assert_int_equal(parley_db_commit(fx->w), 0);
    assert_int_equal(hits(fx, u, "walrus", false), 1);
    assert_int_equal(hits(fx, u, "kept", false), 1);
    assert_int_equal(hits(fx, u, "undone", false), 0);
    assert_int_equal(hits(fx, u, "gone", false), 0);

    /* A rolled-back transaction indexes nothing, and leaves nothing behind
     * for the next one. */
    assert_int_equal(parley_db_begin(fx->w), 0);
    assert_int_equal(parley_db_search_put(fx->w, a, T("m4"), 2, "narwhal"), 0);
    assert_int_equal(parley_db_rollback(fx->w), 0);
    assert_int_equal(parley_db_begin(fx->w), 0);
    assert_int_equal(parley_db_commit(fx->w), 0);
    assert_int_equal(hits(fx, u, "narwhal", false), 0);

    /* Many in one transaction (past the queue's limit): every one found. */
    enum { MANY = 4100 };
    assert_int_equal(parley_db_begin(fx->w), 0);
    for (int i = 0; i < MANY; i++) {
        snprintf(id, sizeof id, "%s-%d", T("n"), i);
        snprintf(text, sizeof text, "manatee w%d", i);
        assert_int_equal(parley_db_search_put(fx->w, a, id, 10 + i, text), 0);
    }
    assert_int_equal(parley_db_commit(fx->w), 0);
    assert_int_equal(hits(fx, u, "w0", false), 1);
    assert_int_equal(hits(fx, u, "w4099", false), 1);
    static parley_search_query_t q;
    memset(&q, 0, sizeof q);
    q.nterms = 1;
    SET(q.terms[0].text, "manatee");
    int n = 0, total = 0;
    for (int64_t off = 0; off < MANY + 100; off += 100) {
        n = 0;
        assert_int_equal(parley_db_search_query(reader(fx), u, &q, off, 100, count_hit, &n), 0);
        total += n;
    }
    assert_int_equal(total, MANY);
}

int main(void)
{
    const struct CMUnitTest streams[] = {
        S(store_stream_roundtrip_every_field),
        S(store_stream_append_moves_tail_stores_chunk),
        S(store_sub_put_config_keeps_delivery_state),
        S(store_sub_begin_wake_only_from_idle),
        S(store_sub_update_fenced_by_generation_and_wake),
        S(store_sublink_advance_never_back_never_past_tail),
        S(store_doc_write_cas_and_assigns_chg),
        S(store_conv_insert_assigns_activity_eexist),
        S(store_conv_update_cas_on_version),
        S(store_conv_bump_and_tombstone),
        S(store_conv_touch_keeps_count),
        S(store_sess_insert_update_cas),
        S(store_sess_claim_next_oldest_once),
        S(store_snap_insert_and_expire),
        S(store_stream_append_large_bytes_keep_unit),
        S(store_stream_append_refusals_write_nothing),
        S(store_stream_close_once_keeps_first_closer),
        S(store_stream_writer_rows_follow_every_change),
        S(store_stream_writer_rows_roll_back),
        S(store_stream_writer_tail_reaches_row_by_commit),
        S(store_stream_tail_in_narrow_row_sqlite),
        S(store_stream_touch_never_back),
        S(store_stream_ref_counts_never_below_zero),
        S(store_stream_mark_deleted_only_with_refs),
        S(store_stream_get_enotfound_missing),
        S(store_stream_insert_eexist_path_taken),
        S(store_stream_insert_new_id_after_remove),
        S(store_stream_remove_drops_chunks_and_producers),
        S(store_stream_expired_absolute_and_sliding),
        S(store_stream_scan_prefix_in_path_order),
    };
    const struct CMUnitTest chunks[] = {
        S(store_chunk_scan_from_position_in_order),
        S(store_chunk_scan_long_stream_every_chunk_once),
    };
    const struct CMUnitTest producers[] = {
        S(store_producer_roundtrip_and_replace),
    };
    const struct CMUnitTest idempotency[] = {
        S(store_idem_roundtrip_every_field),
        S(store_idem_get_enotfound_other_owner_or_key),
        S(store_idem_put_eexist_live_replaces_expired),
        S(store_idem_purge_before_with_limit),
    };
    const struct CMUnitTest documents[] = {
        S(store_doc_roundtrip_every_field),
        S(store_doc_get_enotfound_missing),
        S(store_doc_write_tombstone_over_row),
        S(store_doc_list_newest_change_first_paged),
    };
    const struct CMUnitTest conversations[] = {
        S(store_conv_roundtrip_every_field),
        S(store_search_owner_title_tombstone_and_move),
        S(store_search_in_transaction_follows_savepoints),
        S(store_conv_get_enotfound_missing),
        S(store_conv_list_most_active_first_paged),
    };
    const struct CMUnitTest sessions[] = {
        S(store_sess_roundtrip_every_field),
        S(store_sess_get_enotfound_missing_or_removed),
        S(store_sess_list_newest_first_paged_by_status),
        S(store_sess_expired_processing_lease_ended),
    };
    const struct CMUnitTest snapshots[] = {
        S(store_snap_roundtrip_every_field),
        S(store_snap_get_enotfound_missing_or_removed),
        S(store_snap_list_newest_first_paged),
        S(store_snap_expired_only_holding_a_stream),
    };
    const struct CMUnitTest counters[] = {};
    const struct CMUnitTest subscriptions[] = {
        S(store_sub_roundtrip_every_field),
        S(store_stat_sizes_and_subscription_counts),
        S(store_sub_get_enotfound_missing_or_removed),
        S(store_sub_with_pattern_only_patterned),
        S(store_sub_leases_expired_without_pending_delivery),
        S(store_sub_deliveries_due_most_overdue_first),
        S(store_sub_next_delivery_earliest_or_none),
    };
    const struct CMUnitTest sublinks[] = {
        S(store_sublink_roundtrip_every_field),
        S(store_sublink_get_enotfound_missing_or_removed),
        S(store_sublink_list_by_sub_or_by_path),
        S(store_sublink_snapshot_and_ack_follow_stream_tails),
        S(store_sublink_first_pending_in_path_order),
    };
    const struct CMUnitTest keys[] = {
        S(store_key_roundtrip_binary),
        S(store_key_put_eexist_keeps_first),
        S(store_key_get_enotfound_or_etoobig),
    };
    const struct CMUnitTest transactions[] = {
        S(store_txn_savepoint_rollback_keeps_rest_of_batch),
        S(store_txn_rollback_to_after_failed_statement),
        S(store_txn_rollback_discards_batch),
        S(store_txn_commit_visible_to_reader),
        S(store_txn_reader_snapshot_isolated_from_later_commit),
    };
    const struct CMUnitTest operations[] = {
        S(store_commit_observes_wal_sync_time),
        S(store_transfer_own_export_is_all_present_changed_refused),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("store_streams", streams, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_chunks", chunks, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_producers", producers, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_idempotency", idempotency, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_documents", documents, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_conversations", conversations, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_sessions", sessions, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_snapshots", snapshots, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_counters", counters, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_subscriptions", subscriptions, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_sublinks", sublinks, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_keys", keys, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_transactions", transactions, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_operations", operations, NULL, NULL);
    return failed ? 1 : 0;
}
