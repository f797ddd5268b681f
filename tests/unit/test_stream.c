/*
 * test_stream.c — unit tests for core/stream.c, on a real SQLite store.
 *
 * Fork chains: a chain up to PARLEY_STREAM_FORK_DEPTH_MAX forks is made
 * and read back whole, and one more fork is a 400; a chain thousands of
 * forks deep stored directly (as a store written before the limit may
 * hold) is read, paged and refused as a fork source on a thread with a
 * small stack, which a walk that recursed once per level would overflow.
 * Ownership: creating a path another principal owns is a 409 for anyone,
 * the admin included, while the owner's own PUT stays idempotent.
 * Closed streams and producers: only the tuple that closed a stream is
 * answered 204 afterwards; any other producer request is a 409 with
 * Stream-Closed.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */

#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/stream.h"
#include "parley/parley.h"
#include "store/store.h"
#include "util/buf.h"

#define SMALL_STACK  (512 * 1024) /* bytes: far less than a recursive walk needs */
#define LEGACY_DEPTH 5000         /* forks in the chain stored without the limit */

typedef struct fixture {
    char dir[64];          /* temporary data directory */
    parley_store_t *store; /* the store */
    parley_db_t *db;       /* its writer connection */
} fixture_t;

/* Open the SQLite store in dir (its default file, as `--data dir` does). */
static int open_store_in(const char *dir, parley_store_t **out)
{
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/parley.db", dir);
    return parley_store_open(url, out);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void fixture_open(fixture_t *fx)
{
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/parley-test-stream-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(open_store_in(fx->dir, &fx->store), 0);
    fx->db = parley_store_writer(fx->store);
}

static void fixture_close(fixture_t *fx)
{
    parley_store_close(fx->store);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A request as api/streams.c would build it. */
static parley_stream_req_t request(const char *path, const char *owner, bool admin)
{
    parley_stream_req_t q;
    memset(&q, 0, sizeof q);
    q.path = path;
    q.owner = owner;
    q.admin = admin;
    q.ttl_s = -1;
    q.expires_ms = -1;
    return q;
}

/* The status the protocol answers an outcome with (api/status.c maps it
 * so; here it states what each rule must decide). */
static int status_of(const parley_outcome_t *o)
{
    switch (o->refusal) {
    case 0:
        return o->done == PARLEY_DONE_CREATED ? 201 : o->done == PARLEY_DONE_OK ? 200 : 204;
    case PARLEY_EINVAL:
        return 400;
    case PARLEY_EFENCED:
        return 403;
    case PARLEY_ENOTFOUND:
        return 404;
    case PARLEY_ECONFLICT:
        return 409;
    case PARLEY_EGONE:
        return 410;
    case PARLEY_ETOOBIG:
        return 413;
    default:
        return 500;
    }
}

/* Create a JSON stream at path (a fork of from when not NULL) holding
 * body; returns the status. */
static int create(fixture_t *fx, const char *path, const char *from, const char *body,
                  const char *owner, parley_outcome_t *res)
{
    parley_stream_req_t q = request(path, owner, owner[0] == '@');
    q.content_type = "application/json";
    q.fork_from = from;
    q.body = body;
    q.body_len = body ? strlen(body) : 0;
    if (q.body_len)
        parley_stream_frame_json(&q);
    parley_outcome_init(res);
    assert_int_equal(parley_db_savepoint(fx->db), 0);
    assert_int_equal(parley_stream_create(fx->db, &q, res), 0);
    assert_int_equal(res->refusal ? parley_db_rollback_to(fx->db) : parley_db_release(fx->db), 0);
    return status_of(res);
}

/* Read the whole stream at path as one JSON array text (caller frees). */
static char *read_all(parley_db_t *db, const char *path, size_t page)
{
    parley_stream_t meta;
    parley_buf_t out, all;
    parley_read_t rd;
    uint64_t from = 0;
    assert_int_equal(parley_db_stream_get(db, path, &meta), 0);
    parley_buf_init(&all, 64 << 20);
    assert_int_equal(parley_buf_putc(&all, '['), 0);
    do {
        parley_buf_init(&out, 64 << 20);
        assert_int_equal(parley_stream_read(db, &meta, from, page, &out, &rd), 0);
        assert_true(rd.next > from || rd.up_to_date);
        if (out.len) {
            if (all.len > 1)
                assert_int_equal(parley_buf_putc(&all, ','), 0);
            assert_int_equal(parley_buf_append(&all, out.data, out.len), 0);
        }
        parley_buf_free(&out);
        from = rd.next;
    } while (!rd.up_to_date);
    assert_int_equal(parley_buf_putc(&all, ']'), 0);
    assert_int_equal(parley_buf_putc(&all, '\0'), 0);
    return all.data;
}

/* "[0,1,...,n-1]" */
static char *numbers(int n)
{
    char *s = malloc((size_t)n * 8 + 3);
    size_t k = 0;
    assert_non_null(s);
    s[k++] = '[';
    for (int i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, i ? ",%d" : "%d", i);
    s[k++] = ']';
    s[k] = '\0';
    return s;
}

/* ---- the fork-depth limit ------------------------------------------------------- */

static void stream_fork_chain_at_the_limit_reads_and_one_more_is_400(void **state)
{
    (void)state;
    fixture_t fx;
    parley_outcome_t res;
    char path[32], prev[32], body[16];
    fixture_open(&fx);
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(create(&fx, "c/0", NULL, "0", "alice", &res), 201);
    for (int i = 1; i <= PARLEY_STREAM_FORK_DEPTH_MAX; i++) {
        snprintf(prev, sizeof prev, "c/%d", i - 1);
        snprintf(path, sizeof path, "c/%d", i);
        snprintf(body, sizeof body, "%d", i);
        if (create(&fx, path, prev, body, "alice", &res) != 201)
            fail_msg("fork %d of the chain: %d %s", i, status_of(&res), res.error ? res.error : "");
    }
    /* One more is too deep, and says so; nothing is made. */
    snprintf(prev, sizeof prev, "c/%d", PARLEY_STREAM_FORK_DEPTH_MAX);
    assert_int_equal(create(&fx, "c/over", prev, "0", "alice", &res), 400);
    assert_non_null(strstr(res.error, "too deep"));
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get(fx.db, "c/over", &st), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_stream_get(fx.db, prev, &st), 0);
    assert_int_equal(st.refs, 0); /* the refused fork took no reference */
    /* A fork from the middle of the chain is still fine. */
    assert_int_equal(create(&fx, "c/side", "c/10", NULL, "alice", &res), 201);
    assert_int_equal(parley_db_commit(fx.db), 0);

    char *got = read_all(fx.db, prev, 1 << 20);
    char *want = numbers(PARLEY_STREAM_FORK_DEPTH_MAX + 1);
    assert_string_equal(got, want);
    free(got);
    got = read_all(fx.db, prev, 1); /* one message per page */
    assert_string_equal(got, want);
    free(got);
    free(want);
    fixture_close(&fx);
}

/* ---- a deep chain stored before the limit ---------------------------------------- */

/* Store a chain of depth forks directly, as an old store may hold it:
 * "d/0" holds message 0, fork "d/i" of "d/(i-1)" at its tail holds i. */
static void store_legacy_chain(fixture_t *fx, int depth)
{
    parley_stream_t prev, st;
    char msg[16];
    assert_int_equal(parley_db_begin(fx->db), 0);
    for (int i = 0; i <= depth; i++) {
        memset(&st, 0, sizeof st);
        snprintf(st.path, sizeof st.path, "d/%d", i);
        snprintf(st.owner, sizeof st.owner, "alice");
        snprintf(st.content_type, sizeof st.content_type, "application/json");
        st.ttl_s = st.expires_ms = -1;
        if (i) {
            st.fork_src = prev.id;
            st.fork_pos = st.tail = prev.tail;
        }
        assert_int_equal(parley_db_stream_create(fx->db, &st), 0);
        int n = snprintf(msg, sizeof msg, "%d", i);
        assert_int_equal(parley_stream_append_row(fx->db, &st, msg, (size_t)n, -1), 0);
        if (i) {
            parley_stream_ref_t ref;
            assert_int_equal(parley_db_stream_ref(fx->db, prev.id, +1, &ref), 0);
        }
        prev = st;
    }
    assert_int_equal(parley_db_commit(fx->db), 0);
}

typedef struct deep_job {
    fixture_t *fx; /* the store with the chain */
    char top[32];  /* the deepest stream */
    bool done;     /* the job ran to its end */
} deep_job_t;

static void *deep_reads(void *arg)
{
    deep_job_t *j = arg;
    parley_outcome_t res;
    char *want = numbers(LEGACY_DEPTH + 1);
    char *got = read_all(j->fx->db, j->top, 1 << 20);
    assert_string_equal(got, want);
    free(got);
    got = read_all(j->fx->db, j->top, 1000); /* many pages, each a walk */
    assert_string_equal(got, want);
    free(got);
    free(want);
    /* Forking it is refused by the limit, sub-offset or not, without a
     * crash; so is forking anything deeper than the limit. */
    assert_int_equal(parley_db_begin(j->fx->db), 0);
    assert_int_equal(create(j->fx, "d/fork", j->top, NULL, "alice", &res), 400);
    parley_stream_req_t q = request("d/fork2", "alice", false);
    q.fork_from = "d/100";
    q.has_fork_offset = true;
    q.fork_offset = 50;
    q.fork_sub = 1;
    parley_outcome_init(&res);
    assert_int_equal(parley_db_savepoint(j->fx->db), 0);
    assert_int_equal(parley_stream_create(j->fx->db, &q, &res), 0);
    assert_int_equal(res.refusal, PARLEY_EINVAL);
    assert_int_equal(parley_db_rollback_to(j->fx->db), 0);
    assert_non_null(strstr(res.error, "too deep"));
    /* Within the limit, a sub-offset fork on the old chain still works. */
    q.path = "d/fork3";
    q.fork_from = "d/40";
    q.fork_offset = 30;
    parley_outcome_init(&res);
    assert_int_equal(parley_stream_create(j->fx->db, &q, &res), 0);
    assert_int_equal(res.done, PARLEY_DONE_CREATED);
    assert_int_equal(res.meta.fork_pos, 31);
    assert_int_equal(parley_db_commit(j->fx->db), 0);
    j->done = true;
    return NULL;
}

static void stream_legacy_deep_chain_reads_in_a_small_stack(void **state)
{
    (void)state;
    fixture_t fx;
    fixture_open(&fx);
    store_legacy_chain(&fx, LEGACY_DEPTH);
    deep_job_t job = {&fx, "", false};
    snprintf(job.top, sizeof job.top, "d/%d", LEGACY_DEPTH);
    pthread_attr_t attr;
    pthread_t th;
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstacksize(&attr, SMALL_STACK), 0);
    assert_int_equal(pthread_create(&th, &attr, deep_reads, &job), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
    assert_true(job.done);
    fixture_close(&fx);
}

/* ---- closed streams and producers ------------------------------------------------- */

/* POST to path as producer pid (NULL: no producer headers); returns the
 * status, with *res the outcome. */
static int post(fixture_t *fx, const char *path, const char *pid, uint64_t epoch, uint64_t seq,
                const char *body, bool close, parley_outcome_t *res)
{
    parley_stream_req_t q = request(path, "alice", false);
    q.content_type = "application/json";
    q.body = body;
    q.body_len = body ? strlen(body) : 0;
    q.closed = close;
    if (pid) {
        q.has_producer = true;
        q.producer_id = pid;
        q.producer_epoch = epoch;
        q.producer_seq = seq;
    }
    if (q.body_len)
        parley_stream_frame_json(&q);
    parley_outcome_init(res);
    assert_int_equal(parley_db_savepoint(fx->db), 0);
    assert_int_equal(parley_stream_append(fx->db, &q, res), 0);
    assert_int_equal(res->refusal ? parley_db_rollback_to(fx->db) : parley_db_release(fx->db), 0);
    return status_of(res);
}

static void stream_closed_by_a_producer_answers_only_its_closing_tuple(void **state)
{
    (void)state;
    static const struct {
        const char *pid;  /* producer, or NULL for none */
        uint64_t epoch;   /* Producer-Epoch */
        uint64_t seq;     /* Producer-Seq */
        const char *body; /* data, or NULL */
        bool close;       /* Stream-Closed: true */
        int status;       /* expected */
    } cases[] = {
        {"p1", 0, 1, NULL, true, 204},  /* the closing tuple again */
        {"p2", 0, 0, NULL, true, 409},  /* another producer closing */
        {"p2", 0, 0, "[1]", true, 409}, /* another producer's final append */
        {"p2", 0, 0, "[1]", false, 409},
        {"p1", 0, 0, NULL, true, 409}, /* p1, but not its closing seq */
        {"p1", 0, 0, "[1]", false, 409},
        {"p1", 0, 2, NULL, true, 409},
        {"p1", 1, 0, NULL, true, 409}, /* p1 in a new epoch */
        {NULL, 0, 0, NULL, true, 204}, /* a bare close stays idempotent */
        {NULL, 0, 0, "[1]", false, 409},
    };
    fixture_t fx;
    parley_outcome_t res;
    fixture_open(&fx);
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(create(&fx, "closed", NULL, NULL, "alice", &res), 201);
    assert_int_equal(post(&fx, "closed", "p1", 0, 0, "[0]", false, &res), 200);
    assert_int_equal(post(&fx, "closed", "p1", 0, 1, NULL, true, &res), 204);
    assert_true(res.echo.closed);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = post(&fx, "closed", cases[i].pid, cases[i].epoch, cases[i].seq, cases[i].body,
                       cases[i].close, &res);
        if (got != cases[i].status)
            fail_msg("case %zu (%s %llu/%llu): %d, want %d", i, cases[i].pid ? cases[i].pid : "-",
                     (unsigned long long)cases[i].epoch, (unsigned long long)cases[i].seq, got,
                     cases[i].status);
        assert_true(res.echo.closed); /* Stream-Closed: true, either way */
        if (got == 409 && cases[i].pid)
            assert_non_null(strstr(res.error, "sequence"));
    }
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get(fx.db, "closed", &st), 0);
    assert_int_equal(st.tail, 1); /* nothing more was stored */
    assert_int_equal(parley_db_commit(fx.db), 0);
    fixture_close(&fx);
}

static void stream_producer_gap_says_sequence(void **state)
{
    (void)state;
    fixture_t fx;
    parley_outcome_t res;
    fixture_open(&fx);
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(create(&fx, "gap", NULL, NULL, "alice", &res), 201);
    assert_int_equal(post(&fx, "gap", "p", 0, 0, "[0]", false, &res), 200);
    assert_int_equal(post(&fx, "gap", "p", 0, 2, "[2]", false, &res), 409);
    assert_non_null(strstr(res.error, "sequence"));
    assert_true(res.echo.has_gap);
    assert_int_equal(res.echo.expected, 1);
    assert_int_equal(res.echo.received, 2);
    assert_int_equal(parley_db_commit(fx.db), 0);
    fixture_close(&fx);
}

/* ---- ownership of paths ------------------------------------------------------------ */

static void stream_create_on_a_path_someone_else_owns_is_409_for_anyone(void **state)
{
    (void)state;
    static const struct {
        const char *path;  /* an existing stream */
        const char *owner; /* who asks to create it again */
        int status;        /* expected */
    } cases[] = {
        {"u/alice", "alice", 200},  /* the owner's own PUT is idempotent */
        {"u/alice", "bob", 409},    /* another user */
        {"u/alice", "@admin", 409}, /* the admin is not handed alice's path */
        {"u/admin", "@admin", 200}, /* the admin's own */
        {"u/admin", "alice", 409},  /* nor a user the admin's */
        {"u/admin", "@local", 409},
    };
    fixture_t fx;
    parley_outcome_t res;
    fixture_open(&fx);
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(create(&fx, "u/alice", NULL, NULL, "alice", &res), 201);
    assert_int_equal(create(&fx, "u/admin", NULL, NULL, "@admin", &res), 201);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = create(&fx, cases[i].path, NULL, NULL, cases[i].owner, &res);
        if (got != cases[i].status)
            fail_msg("%s PUT by %s: %d, want %d", cases[i].path, cases[i].owner, got,
                     cases[i].status);
        if (got == 409) {
            assert_non_null(strstr(res.error, "in use"));
            assert_null(strstr(res.error, "alice")); /* whose it is stays unsaid */
            assert_null(strstr(res.error, "admin"));
        }
    }
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get(fx.db, "u/alice", &st), 0);
    assert_string_equal(st.owner, "alice");
    assert_false(parley_stream_is_admin_owned(&st));
    assert_int_equal(parley_db_stream_get(fx.db, "u/admin", &st), 0);
    assert_true(parley_stream_is_admin_owned(&st));
    assert_int_equal(parley_db_commit(fx.db), 0);
    fixture_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_fork_chain_at_the_limit_reads_and_one_more_is_400),
        cmocka_unit_test(stream_legacy_deep_chain_reads_in_a_small_stack),
        cmocka_unit_test(stream_closed_by_a_producer_answers_only_its_closing_tuple),
        cmocka_unit_test(stream_producer_gap_says_sequence),
        cmocka_unit_test(stream_create_on_a_path_someone_else_owns_is_409_for_anyone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
