/*
 * test_writer.c — unit tests for store/writer.c on a real SQLite store.
 *
 * Each case opens a fresh store in its own temporary directory, a hub and a
 * writer. Covered: group commit (writes submitted from several threads while
 * the writer is held busy commit in one batch, every done() runs exactly
 * once with status 0, and the data is all there for a reader); the
 * per-write savepoint (a refused write's rows roll back, its neighbours'
 * rows commit, it is still answered with status 0 and wakes nobody); no
 * done() and no hub wake-up before the COMMIT (a reader opened from done()
 * sees the write, a reader opened from apply() does not); stop drains the
 * queue and later submits are refused without a callback; fail-stop after
 * a storage error or a failed fsync (injected through a pass-through SQLite
 * VFS), in a batch and in the periodic tick; a full disk fails only what it
 * must and is not fatal; every error class an apply() can return, and
 * that only the store's own failure stops the writer; wake sets (a tick or
 * a write that changes more streams than a set names wakes every live
 * reader; a batch of writes wakes only what they changed); and the data
 * directory lock (PARLEY_ELOCKED), in this process and from another one.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/hub.h"
#include "parley/parley.h"
#include "store/store.h"
#include "store/writer.h"
#include "util/clock.h"

#define WAIT_MS 5000 /* bound on every wait for the writer */

/* ---- helpers: a one-shot gate ----------------------------------------- */

typedef struct gate {
    pthread_mutex_t lock; /* guards open */
    pthread_cond_t cond;  /* signalled when opened */
    bool open;            /* set once */
} gate_t;

/* The writer's commit callback, wired to the hub as the server does. */
/* Open the SQLite store in dir (its default file, as `--data dir` does). */
static int open_store_in(const char *dir, parley_store_t **out)
{
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/parley.db", dir);
    return parley_store_open(url, out);
}

static void wake_hub(void *arg, const parley_wakeset_t *wake)
{
    parley_hub_notify_set(arg, wake);
}

static void gate_init(gate_t *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->open = false;
}

static void gate_destroy(gate_t *g)
{
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

static void gate_open(gate_t *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Wait until the gate opens; false after ms milliseconds. */
static bool gate_wait(gate_t *g, int ms)
{
    struct timespec ts;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&g->lock);
    int rc = 0;
    while (!g->open && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&g->cond, &g->lock, &ts);
    bool open = g->open;
    pthread_mutex_unlock(&g->lock);
    return open;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- fault injection: a pass-through SQLite VFS ---------------------- */

/*
 * Registered as the default VFS, so the store's connections use it. It
 * forwards everything to the real VFS, except that a test can make the next
 * xSync fail (a failed fsync) or the next xWrite fail with SQLITE_FULL.
 */
static sqlite3_vfs *real_vfs;      /* the platform's VFS */
static atomic_int fail_next_sync;  /* 1: the next xSync fails */
static atomic_int fail_next_write; /* 1: the next xWrite fails as a full disk */
static atomic_int syncs_failed;    /* xSync calls that failed */
static atomic_int writes_failed;   /* xWrite calls that failed */

typedef struct fault_file {
    sqlite3_file base;  /* must be first: what SQLite sees */
    sqlite3_file *real; /* the real VFS's file, right after this struct */
} fault_file_t;

#define REAL(f) (((fault_file_t *)(f))->real)

static int f_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    int one = 1;
    if (atomic_compare_exchange_strong(&fail_next_write, &one, 0)) {
        atomic_fetch_add(&writes_failed, 1);
        return SQLITE_FULL;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
    int one = 1;
    if (atomic_compare_exchange_strong(&fail_next_sync, &one, 0)) {
        atomic_fetch_add(&syncs_failed, 1);
        return SQLITE_IOERR_FSYNC;
    }
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int f_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int f_lock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xLock(REAL(f), lock);
}

static int f_unlock(sqlite3_file *f, int lock)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int f_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int f_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int f_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int f_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int f_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}

static int f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_io = {
    3,
    f_close,
    f_read,
    f_write,
    f_truncate,
    f_sync,
    f_file_size,
    f_lock,
    f_unlock,
    f_check_reserved,
    f_file_control,
    f_sector_size,
    f_device_chars,
    f_shm_map,
    f_shm_lock,
    f_shm_barrier,
    f_shm_unmap,
    f_fetch,
    f_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    fault_file_t *f = (fault_file_t *)file;
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
    f->base.pMethods = f->real->pMethods ? &fault_io : NULL;
    return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
    return real_vfs->xSleep(real_vfs, us);
}

static int v_current_time(sqlite3_vfs *vfs, double *out)
{
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs fault_vfs;

static int fault_vfs_install(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs)
        return -1;
    fault_vfs.iVersion = 2;
    fault_vfs.szOsFile = (int)sizeof(fault_file_t) + real_vfs->szOsFile;
    fault_vfs.mxPathname = real_vfs->mxPathname;
    fault_vfs.zName = "parley-fault";
    fault_vfs.xOpen = v_open;
    fault_vfs.xDelete = v_delete;
    fault_vfs.xAccess = v_access;
    fault_vfs.xFullPathname = v_full_pathname;
    fault_vfs.xRandomness = v_randomness;
    fault_vfs.xSleep = v_sleep;
    fault_vfs.xCurrentTime = v_current_time;
    fault_vfs.xGetLastError = v_last_error;
    fault_vfs.xCurrentTimeInt64 = v_current_time64;
    return sqlite3_vfs_register(&fault_vfs, 1) == SQLITE_OK ? 0 : -1;
}

static void fault_reset(void)
{
    atomic_store(&fail_next_sync, 0);
    atomic_store(&fail_next_write, 0);
    atomic_store(&syncs_failed, 0);
    atomic_store(&writes_failed, 0);
}

/* ---- the fixture: a store, a hub and a writer in a temporary dir ------ */

#define POOL  1024 /* writes one case may use */
#define CROWD 301  /* live readers the wake-set cases park */

typedef struct twrite twrite_t;

/* A live reader parked in the hub, and what it saw when woken. */
typedef struct wprobe {
    parley_waiter_t w;     /* handed to the hub */
    parley_store_t *store; /* to open a reader from the callback */
    int64_t stream_id;     /* the stream waited on */
    uint64_t pos;          /* the chunk a DATA wake-up should find */
    atomic_int wakes;      /* wake callbacks so far */
    atomic_int why;        /* reason of the last wake */
    atomic_int visible;    /* chunk seen by a reader on DATA (-2: not checked) */
} wprobe_t;

/*
 * Everything the writer thread or the hub can reach lives here, not on a
 * test's stack, so that a failed assertion (which leaves the test function
 * early) never leaves them pointing at a dead frame: teardown stops the
 * writer and the hub before this is freed.
 */
typedef struct fixture {
    char dir[64];                 /* the temporary data directory */
    parley_store_t *store;        /* open on dir */
    parley_hub_t *hub;            /* the writer's hub */
    parley_writer_t *writer;      /* running on store */
    atomic_int fatal_calls;       /* on_fatal invocations */
    pthread_mutex_t lock;         /* guards completed */
    pthread_cond_t cond;          /* signalled on each done() */
    int completed;                /* done() calls so far */
    gate_t started;               /* a holding apply() has begun */
    gate_t release;               /* lets a holding apply() finish */
    twrite_t *pool;               /* POOL writes, handed out by tw_new() */
    int npool;                    /* writes handed out */
    wprobe_t probes[2];           /* live readers */
    parley_waiter_t crowd[CROWD]; /* more live readers (wake-set cases) */
    atomic_int crowd_data[CROWD]; /* DATA wake-ups of each */
} fixture_t;

/* A write and what happened to it. */
struct twrite {
    parley_write_t w;       /* handed to the writer */
    fixture_t *fx;          /* the test's world */
    bool hold;              /* apply: open fx->started, wait for fx->release */
    const char *create;     /* apply: insert a stream row with this path */
    int64_t stream_id;      /* apply: chunk goes here (0: no chunk) */
    uint64_t pos;           /* apply: chunk covers [pos, pos + 1) */
    int apply_rc;           /* apply: return this after the work */
    int conflicts;          /* apply: return PARLEY_ERETRY this many times first */
    bool check_in_apply;    /* apply: look for the chunk with a reader */
    bool check_in_done;     /* done: look for the chunk with a reader */
    bool fail_sync;         /* apply: make the batch's fsync fail */
    bool fail_write;        /* apply: make the batch's next write hit a full disk */
    bool drop_txn;          /* apply: end the batch's transaction behind the writer */
    bool cached;            /* apply: read the stream row first (the SQLite writer keeps it) */
    uint64_t new_tail;      /* apply: the stream's tail after the append */
    int64_t created_id;     /* id of the stream row inserted */
    int64_t wake_first;     /* apply: name streams wake_first.. to wake */
    int wake_count;         /* how many (0: none) */
    int visible_in_apply;   /* reader saw the chunk from apply (-1 unchecked) */
    int visible_in_done;    /* reader saw the chunk from done (-1 unchecked) */
    atomic_int apply_calls; /* apply invocations */
    atomic_int done_calls;  /* done invocations */
    atomic_int done_status; /* status passed to the last done */
};

static void on_fatal(void *arg)
{
    fixture_t *fx = arg;
    atomic_fetch_add(&fx->fatal_calls, 1);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_tmpdir(char *out, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, n, "%s/parley-unit-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    return mkdtemp(out) ? 0 : -1;
}

static int writer_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    pthread_mutex_init(&fx->lock, NULL);
    pthread_cond_init(&fx->cond, NULL);
    gate_init(&fx->started);
    gate_init(&fx->release);
    atomic_init(&fx->fatal_calls, 0);
    fault_reset();
    *state = fx;
    fx->pool = calloc(POOL, sizeof *fx->pool);
    if (!fx->pool || make_tmpdir(fx->dir, sizeof fx->dir))
        return -1;
    if (open_store_in(fx->dir, &fx->store) != 0)
        return -1;
    if (parley_hub_create(&fx->hub) != 0)
        return -1;
    if (parley_writer_start(fx->store, wake_hub, fx->hub, on_fatal, fx, &fx->writer) != 0)
        return -1;
    return 0;
}

static int writer_teardown(void **state)
{
    fixture_t *fx = *state;
    if (!fx)
        return 0;
    gate_open(&fx->release); /* never leave a holding apply() stuck */
    fault_reset();
    parley_writer_free(fx->writer); /* drains: every queued write is answered */
    if (fx->hub)
        parley_hub_destroy(fx->hub); /* wakes any probe still parked */
    parley_store_close(fx->store);
    if (fx->dir[0])
        remove_tree(fx->dir);
    gate_destroy(&fx->started);
    gate_destroy(&fx->release);
    pthread_mutex_destroy(&fx->lock);
    pthread_cond_destroy(&fx->cond);
    free(fx->pool);
    free(fx);
    return 0;
}

/* Wait until n done() calls in all; false on timeout. */
static bool wait_completed(fixture_t *fx, int n)
{
    struct timespec ts;
    deadline_in(&ts, WAIT_MS);
    pthread_mutex_lock(&fx->lock);
    int rc = 0;
    while (fx->completed < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&fx->cond, &fx->lock, &ts);
    bool ok = fx->completed >= n;
    pthread_mutex_unlock(&fx->lock);
    return ok;
}

static int completed(fixture_t *fx)
{
    pthread_mutex_lock(&fx->lock);
    int n = fx->completed;
    pthread_mutex_unlock(&fx->lock);
    return n;
}

/* Wait until the writer reports a failure; done(ESTORE) may come first. */
static bool wait_failed(fixture_t *fx)
{
    for (int i = 0; i < WAIT_MS / 10 && !parley_writer_failed(fx->writer); i++)
        sleep_ms(10);
    return parley_writer_failed(fx->writer);
}

/* ---- reading back through a reader connection ------------------------ */

static void chunk_text(uint64_t pos, char *out, size_t n)
{
    snprintf(out, n, "chunk-%llu", (unsigned long long)pos);
}

typedef struct find {
    uint64_t pos; /* chunk start looked for */
    bool found;   /* seen with the expected bytes */
} find_t;

static int on_find_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                         const void *data, size_t len)
{
    find_t *f = arg;
    char want[32];
    chunk_text(f->pos, want, sizeof want);
    (void)start;
    if (end == start + 1 && len == strlen(want) && memcmp(data, want, len) == 0) {
        f->found = true;
        return 1;
    }
    return 0; /* writes append at the tail: the label, not the position, names the write */
}

/* Whether a fresh reader connection sees the chunk: 1, 0, or -1 on error. */
static int chunk_visible(parley_store_t *store, int64_t stream_id, uint64_t pos)
{
    parley_db_t *rd = NULL;
    if (parley_store_reader(store, &rd) != 0)
        return -1;
    find_t f = {pos, false};
    int rc = parley_db_chunk_scan(rd, stream_id, 0, on_find_chunk, &f);
    parley_db_close(rd);
    return rc ? -1 : f.found;
}

/* Every chunk of a stream, as seen by a reader. */
typedef struct collect {
    unsigned char *seen; /* seen[pos] = 1 */
    uint64_t max;        /* size of seen */
    int count;           /* chunks seen */
    int bad;             /* chunks with unexpected bounds or bytes, or seen twice */
} collect_t;

static int on_collect_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                            const void *data, size_t len)
{
    collect_t *c = arg;
    char want[32];
    unsigned long long label = 0;
    char text[32];
    (void)unit_end;
    snprintf(text, sizeof text, "%.*s", len < sizeof text ? (int)len : 0, (const char *)data);
    c->count++;
    if (sscanf(text, "chunk-%llu", &label) != 1 || label >= c->max) {
        c->bad++;
        return 0;
    }
    chunk_text(label, want, sizeof want);
    if (end != start + 1 || strcmp(text, want) != 0 || c->seen[label]) {
        c->bad++;
        return 0;
    }
    c->seen[label] = 1;
    return 0;
}

static void read_all(fixture_t *fx, int64_t stream_id, collect_t *c)
{
    parley_db_t *rd = NULL;
    assert_int_equal(parley_store_reader(fx->store, &rd), 0);
    assert_int_equal(parley_db_begin(rd), 0);
    int rc = parley_db_chunk_scan(rd, stream_id, 0, on_collect_chunk, c);
    parley_db_commit(rd);
    parley_db_close(rd);
    assert_int_equal(rc, 0);
}

/* ---- test writes and live readers ------------------------------------- */

static twrite_t *tw_of(parley_write_t *w)
{
    return (twrite_t *)((char *)w - offsetof(twrite_t, w));
}

static int apply_test(parley_write_t *w, parley_db_t *db)
{
    twrite_t *t = tw_of(w);
    atomic_fetch_add(&t->apply_calls, 1);
    if (t->hold) {
        gate_open(&t->fx->started);
        gate_wait(&t->fx->release, WAIT_MS);
    }
    if (t->create) {
        parley_stream_t st;
        memset(&st, 0, sizeof st);
        snprintf(st.path, sizeof st.path, "%s", t->create);
        snprintf(st.content_type, sizeof st.content_type, "application/octet-stream");
        st.created_ms = st.touched_ms = parley_clock_now_ms();
        st.ttl_s = -1;
        st.expires_ms = -1;
        int rc = parley_db_stream_create(db, &st);
        if (rc)
            return rc;
        t->created_id = st.id;
    }
    if (t->stream_id) {
        char text[32];
        chunk_text(t->pos, text, sizeof text);
        uint64_t tail;
        parley_stream_t st;
        int rc = t->cached ? parley_db_stream_get_id(db, t->stream_id, &st) : 0;
        if (rc == 0)
            rc = parley_db_stream_append(db, t->stream_id, text, strlen(text), 1,
                                         parley_clock_now_ms(), NULL, -1, &tail);
        if (rc)
            return rc;
        t->new_tail = tail;
        parley_wakeset_add(&w->wake, t->stream_id);
    }
    for (int k = 0; k < t->wake_count; k++)
        parley_wakeset_add(&w->wake, t->wake_first + k);
    if (t->fail_sync)
        atomic_store(&fail_next_sync, 1);
    if (t->fail_write)
        atomic_store(&fail_next_write, 1);
    if (t->check_in_apply)
        t->visible_in_apply = chunk_visible(t->fx->store, t->stream_id, t->pos);
    if (t->drop_txn)
        parley_db_rollback(db); /* as SQLite does on its own after an I/O error */
    if (t->conflicts > 0) {
        t->conflicts--;
        return PARLEY_ERETRY; /* as PostgreSQL's deadlock or serialization failure */
    }
    return t->apply_rc;
}

static void done_test(parley_write_t *w, int status)
{
    twrite_t *t = tw_of(w);
    if (t->check_in_done)
        t->visible_in_done = chunk_visible(t->fx->store, t->stream_id, t->pos);
    atomic_store(&t->done_status, status);
    atomic_fetch_add(&t->done_calls, 1);
    fixture_t *fx = t->fx;
    pthread_mutex_lock(&fx->lock);
    fx->completed++;
    pthread_cond_broadcast(&fx->cond);
    pthread_mutex_unlock(&fx->lock);
}

/* A new write from the fixture's pool: a chunk [pos, pos + 1) of stream_id. */
static twrite_t *tw_new(fixture_t *fx, int64_t stream_id, uint64_t pos)
{
    assert_true(fx->npool < POOL);
    twrite_t *t = &fx->pool[fx->npool++];
    memset(t, 0, sizeof *t);
    t->w.apply = apply_test;
    t->w.done = done_test;
    t->fx = fx;
    t->stream_id = stream_id;
    t->pos = pos;
    t->visible_in_apply = -1;
    t->visible_in_done = -1;
    atomic_init(&t->apply_calls, 0);
    atomic_init(&t->done_calls, 0);
    atomic_init(&t->done_status, 12345);
    return t;
}

/* Submit and wait for the answer; returns the done() status. */
static int run_write(fixture_t *fx, twrite_t *t)
{
    int before = completed(fx);
    assert_int_equal(parley_writer_submit(fx->writer, &t->w), 0);
    assert_true(wait_completed(fx, before + 1));
    return atomic_load(&t->done_status);
}

/* Create a stream row through the writer; returns its id. */
static int64_t create_stream(fixture_t *fx, const char *path)
{
    twrite_t *t = tw_new(fx, 0, 0);
    t->create = path;
    assert_int_equal(run_write(fx, t), 0);
    assert_true(t->created_id > 0);
    return t->created_id;
}

/* Submit a write that holds the writer inside its apply(); returns it. */
static twrite_t *hold_writer(fixture_t *fx, int64_t stream_id, uint64_t pos)
{
    twrite_t *t = tw_new(fx, stream_id, pos);
    t->hold = true;
    assert_int_equal(parley_writer_submit(fx->writer, &t->w), 0);
    assert_true(gate_wait(&fx->started, WAIT_MS));
    return t;
}

/* Queue writes[0..n) behind a held writer, release it, wait for all. */
static void run_one_batch(fixture_t *fx, twrite_t **writes, int n)
{
    int base = completed(fx);
    for (int i = 0; i < n; i++)
        assert_int_equal(parley_writer_submit(fx->writer, &writes[i]->w), 0);
    gate_open(&fx->release);
    assert_true(wait_completed(fx, base + 1 + n));
}

static void on_wake_probe(parley_waiter_t *w, parley_wake_t why)
{
    wprobe_t *p = w->arg;
    if (why == PARLEY_WAKE_DATA)
        atomic_store(&p->visible, chunk_visible(p->store, p->stream_id, p->pos));
    atomic_store(&p->why, (int)why);
    atomic_fetch_add(&p->wakes, 1);
}

/* Park probe i on a stream; a DATA wake-up checks that chunk pos is visible. */
static wprobe_t *park_probe(fixture_t *fx, int i, int64_t stream_id, uint64_t pos)
{
    wprobe_t *p = &fx->probes[i];
    memset(p, 0, sizeof *p);
    p->w.stream_id = stream_id;
    p->w.on_wake = on_wake_probe;
    p->w.arg = p;
    p->store = fx->store;
    p->stream_id = stream_id;
    p->pos = pos;
    atomic_init(&p->wakes, 0);
    atomic_init(&p->why, -1);
    atomic_init(&p->visible, -2);
    assert_int_equal(parley_hub_wait(fx->hub, &p->w, parley_hub_generation(fx->hub)), 0);
    return p;
}

static bool wait_woken(wprobe_t *p)
{
    for (int i = 0; i < WAIT_MS / 10 && atomic_load(&p->wakes) == 0; i++)
        sleep_ms(10);
    return atomic_load(&p->wakes) > 0;
}

/* ---- (a) group commit ------------------------------------------------- */

enum { SUBMITTERS = 4, PER_SUBMITTER = 64, NBATCH = SUBMITTERS * PER_SUBMITTER };

typedef struct submitter {
    parley_writer_t *writer; /* where to submit */
    twrite_t **writes;       /* PER_SUBMITTER writes */
    int failures;            /* submits that did not return 0 */
} submitter_t;

static void *submit_main(void *arg)
{
    submitter_t *s = arg;
    for (int i = 0; i < PER_SUBMITTER; i++)
        if (parley_writer_submit(s->writer, &s->writes[i]->w) != 0)
            s->failures++;
    return NULL;
}

static void writer_batch_commits_many_writes_once(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "batch");

    /* Hold the writer inside a first write while the others queue up. */
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *writes[NBATCH];
    for (int i = 0; i < NBATCH; i++)
        writes[i] = tw_new(fx, sid, 1 + (uint64_t)i);
    submitter_t subs[SUBMITTERS];
    pthread_t threads[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        subs[i] = (submitter_t){fx->writer, writes + i * PER_SUBMITTER, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, submit_main, &subs[i]), 0);
    }
    for (int i = 0; i < SUBMITTERS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < SUBMITTERS; i++)
        assert_int_equal(subs[i].failures, 0);
    /* Nothing is answered while the first write's batch is still open. */
    assert_int_equal(atomic_load(&blocker->done_calls), 0);
    for (int i = 0; i < NBATCH; i++)
        assert_int_equal(atomic_load(&writes[i]->done_calls), 0);
    gate_open(&fx->release);

    assert_true(wait_completed(fx, 1 + 1 + NBATCH));
    parley_writer_stop(fx->writer); /* no late or second done() after this */

    assert_int_equal(atomic_load(&blocker->done_calls), 1);
    assert_int_equal(atomic_load(&blocker->done_status), 0);
    for (int i = 0; i < NBATCH; i++) {
        if (atomic_load(&writes[i]->done_calls) != 1 || atomic_load(&writes[i]->done_status) != 0)
            fail_msg("write %d: done called %d times, status %d", i,
                     atomic_load(&writes[i]->done_calls), atomic_load(&writes[i]->done_status));
        assert_int_equal(atomic_load(&writes[i]->apply_calls), 1);
    }
    assert_int_equal(completed(fx), 1 + 1 + NBATCH);

    /* The create, the blocker, then everything queued behind it at once. */
    parley_writer_stats_t st;
    parley_writer_stats(fx->writer, &st);
    assert_int_equal(st.writes, 2 + NBATCH);
    assert_true(st.commits < st.writes);
    assert_int_equal(st.commits, 3);
    assert_int_equal(st.max_batch, NBATCH);

    /* All data is there for a reader, exactly once each. */
    unsigned char seen[NBATCH + 1] = {0};
    collect_t c = {seen, NBATCH + 1, 0, 0};
    read_all(fx, sid, &c);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.count, NBATCH + 1);
    for (int i = 0; i <= NBATCH; i++)
        assert_int_equal(seen[i], 1);
    assert_false(parley_writer_failed(fx->writer));
    assert_int_equal(atomic_load(&fx->fatal_calls), 0);
}

/* ---- (b) a savepoint per write ---------------------------------------- */

static void writer_savepoint_rolls_back_refused_write_only(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "ok");
    int64_t other = create_stream(fx, "refused-target");

    /* Live readers on both streams: only committed changes may wake them. */
    wprobe_t *p_ok = park_probe(fx, 0, sid, 1);
    wprobe_t *p_other = park_probe(fx, 1, other, 2);

    parley_writer_stats_t before;
    parley_writer_stats(fx->writer, &before);

    twrite_t *blocker = hold_writer(fx, 0, 0);
    twrite_t *w1 = tw_new(fx, sid, 1);
    twrite_t *bad = tw_new(fx, other, 2); /* a stream row and a chunk, then refused */
    bad->create = "refused-row";
    bad->apply_rc = PARLEY_ECONFLICT;
    twrite_t *w3 = tw_new(fx, sid, 3);
    twrite_t *bad2 = tw_new(fx, other, 4); /* refused for another (non-storage) reason */
    bad2->apply_rc = PARLEY_EINVAL;
    twrite_t *w5 = tw_new(fx, sid, 5);
    twrite_t *batch[] = {w1, bad, w3, bad2, w5};
    run_one_batch(fx, batch, 5);

    /* Everyone is answered once with 0: a refusal is the write's own answer. */
    assert_int_equal(atomic_load(&blocker->done_status), 0);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(atomic_load(&batch[i]->done_calls), 1);
        assert_int_equal(atomic_load(&batch[i]->done_status), 0);
    }
    /* They ran in one batch, the one after the blocker's. */
    parley_writer_stats_t after;
    parley_writer_stats(fx->writer, &after);
    assert_int_equal(after.commits - before.commits, 2);
    assert_int_equal(after.max_batch, 5);

    /* The neighbours' chunks are committed; the refused ones are not. */
    assert_int_equal(chunk_visible(fx->store, sid, 1), 1);
    assert_int_equal(chunk_visible(fx->store, sid, 3), 1);
    assert_int_equal(chunk_visible(fx->store, sid, 5), 1);
    unsigned char seen[8] = {0};
    collect_t c = {seen, 8, 0, 0};
    read_all(fx, other, &c);
    assert_int_equal(c.count, 0);

    /* The refused write's stream row is gone too. */
    parley_db_t *rd = NULL;
    parley_stream_t st;
    assert_int_equal(parley_store_reader(fx->store, &rd), 0);
    int rc_refused = parley_db_stream_get(rd, "refused-row", &st);
    int rc_ok = parley_db_stream_get(rd, "ok", &st);
    parley_db_close(rd);
    assert_int_equal(rc_refused, PARLEY_ENOTFOUND);
    assert_int_equal(rc_ok, 0);
    assert_int_equal(st.id, sid);

    /* The committed stream's reader wakes; the refused writes wake nobody. */
    assert_true(wait_woken(p_ok));
    assert_int_equal(atomic_load(&p_ok->wakes), 1);
    assert_int_equal(atomic_load(&p_ok->why), PARLEY_WAKE_DATA);
    assert_int_equal(atomic_load(&p_other->wakes), 0);
    assert_true(parley_hub_cancel(fx->hub, &p_other->w));
    assert_false(parley_writer_failed(fx->writer));
}

/* ---- (c) nothing is answered before the commit ------------------------ */

static void writer_done_after_commit_data_visible(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "visible");
    wprobe_t *probe = park_probe(fx, 0, sid, 0);

    enum { N = 5 };
    twrite_t *writes[N];
    int base = completed(fx);
    for (int i = 0; i < N; i++) {
        writes[i] = tw_new(fx, sid, (uint64_t)i);
        writes[i]->check_in_apply = true;
        writes[i]->check_in_done = true;
        assert_int_equal(parley_writer_submit(fx->writer, &writes[i]->w), 0);
    }
    assert_true(wait_completed(fx, base + N));
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&writes[i]->done_status), 0);
        /* Inside the open transaction nobody else sees the write... */
        assert_int_equal(writes[i]->visible_in_apply, 0);
        /* ...and by the time it is answered, everybody does. */
        assert_int_equal(writes[i]->visible_in_done, 1);
    }
    /* The live reader is woken after the commit too. */
    assert_true(wait_woken(probe));
    assert_int_equal(atomic_load(&probe->why), PARLEY_WAKE_DATA);
    assert_int_equal(atomic_load(&probe->visible), 1);
}

/* ---- (d) stop ------------------------------------------------------------ */

static void writer_stop_drains_queue_first(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "drain");
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *writes[10];
    for (int i = 0; i < 10; i++) {
        writes[i] = tw_new(fx, sid, 1 + (uint64_t)i);
        assert_int_equal(parley_writer_submit(fx->writer, &writes[i]->w), 0);
    }
    gate_open(&fx->release);
    parley_writer_stop(fx->writer); /* returns once the queue is empty */
    assert_int_equal(atomic_load(&blocker->done_calls), 1);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(atomic_load(&writes[i]->done_calls), 1);
        assert_int_equal(atomic_load(&writes[i]->done_status), 0);
        assert_int_equal(chunk_visible(fx->store, sid, 1 + (uint64_t)i), 1);
    }
}

static void writer_submit_closed_after_stop(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "closed");
    parley_writer_stop(fx->writer);
    int base = completed(fx);

    twrite_t *late = tw_new(fx, sid, 0);
    assert_int_equal(parley_writer_submit(fx->writer, &late->w), PARLEY_ECLOSED);
    parley_writer_stop(fx->writer); /* a second stop is harmless */
    assert_int_equal(parley_writer_submit(fx->writer, &late->w), PARLEY_ECLOSED);
    sleep_ms(20);
    assert_int_equal(atomic_load(&late->apply_calls), 0);
    assert_int_equal(atomic_load(&late->done_calls), 0);
    assert_int_equal(completed(fx), base);
    assert_int_equal(chunk_visible(fx->store, sid, 0), 0);
    /* Stopping is not failing. */
    assert_false(parley_writer_failed(fx->writer));
    assert_int_equal(atomic_load(&fx->fatal_calls), 0);
}

/* ---- storage failures ---------------------------------------------------- */

static void writer_storage_failure_fails_batch_stops(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "broken");
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *w1 = tw_new(fx, sid, 1);
    twrite_t *broken = tw_new(fx, sid, 2);
    broken->apply_rc = PARLEY_ESTORE;
    twrite_t *w3 = tw_new(fx, sid, 3);
    twrite_t *batch[] = {w1, broken, w3};
    run_one_batch(fx, batch, 3);

    /* The blocker's own batch committed; the failed batch answers ESTORE. */
    assert_int_equal(atomic_load(&blocker->done_status), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&batch[i]->done_calls), 1);
        assert_int_equal(atomic_load(&batch[i]->done_status), PARLEY_ESTORE);
    }
    /* Nothing of the failed batch is durable. */
    assert_int_equal(chunk_visible(fx->store, sid, 0), 1);
    assert_int_equal(chunk_visible(fx->store, sid, 1), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 3), 0);
    /* Fail-stop: on_fatal once, later writes refused without a callback. */
    assert_true(wait_failed(fx));
    assert_int_equal(atomic_load(&fx->fatal_calls), 1);
    twrite_t *late = tw_new(fx, sid, 9);
    assert_int_equal(parley_writer_submit(fx->writer, &late->w), PARLEY_ECLOSED);
    parley_writer_stop(fx->writer);
    assert_int_equal(atomic_load(&late->done_calls), 0);
}

/* A transient conflict (PARLEY_ERETRY) rolls back only that write; its
 * neighbours commit in their batch, then it runs again alone in a
 * transaction of its own and commits. */
static void writer_conflict_reruns_that_write_alone(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "conflicts");
    parley_writer_stats_t before;
    parley_writer_stats(fx->writer, &before);
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *w1 = tw_new(fx, sid, 1);
    twrite_t *busy = tw_new(fx, sid, 2);
    busy->conflicts = 2;
    twrite_t *w3 = tw_new(fx, sid, 3);
    twrite_t *batch[] = {w1, busy, w3};
    run_one_batch(fx, batch, 3);

    assert_int_equal(atomic_load(&blocker->done_status), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&batch[i]->done_calls), 1);
        assert_int_equal(atomic_load(&batch[i]->done_status), 0);
    }
    /* In the batch once, then alone twice (the second time it commits). */
    assert_int_equal(atomic_load(&busy->apply_calls), 3);
    assert_int_equal(atomic_load(&w1->apply_calls), 1);
    assert_int_equal(atomic_load(&w3->apply_calls), 1);
    parley_writer_stats_t after;
    parley_writer_stats(fx->writer, &after);
    /* blocker's batch, the batch of three, the rerun that committed (the
     * rerun that conflicted again committed an empty transaction) */
    assert_int_equal(after.commits - before.commits, 4);
    assert_int_equal(after.retries - before.retries, 2);
    for (uint64_t pos = 0; pos <= 3; pos++)
        assert_int_equal(chunk_visible(fx->store, sid, pos), 1);
    assert_false(parley_writer_failed(fx->writer));
    assert_int_equal(atomic_load(&fx->fatal_calls), 0);
}

/* A write that keeps conflicting is answered PARLEY_ERETRY (503: retry)
 * after the last rerun, with nothing of it committed; the writer goes on. */
static void writer_conflict_forever_answers_closed(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "conflicts-forever");
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *busy = tw_new(fx, sid, 1);
    busy->conflicts = 1000;
    twrite_t *w2 = tw_new(fx, sid, 2);
    twrite_t *batch[] = {busy, w2};
    run_one_batch(fx, batch, 2);

    assert_int_equal(atomic_load(&blocker->done_status), 0);
    assert_int_equal(atomic_load(&busy->done_calls), 1);
    assert_int_equal(atomic_load(&busy->done_status), PARLEY_ERETRY);
    assert_int_equal(atomic_load(&w2->done_status), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 1), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 2), 1);
    assert_false(parley_writer_failed(fx->writer));
    twrite_t *later = tw_new(fx, sid, 3);
    assert_int_equal(run_write(fx, later), 0);
}

/* The database cannot be reached (PARLEY_EUNAVAIL, PostgreSQL down): the
 * batch is rolled back and answered PARLEY_EUNAVAIL (503), and the writer is
 * not stopped: the next batch goes through. */
static void writer_unavailable_fails_batch_continues(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "unavailable");
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *w1 = tw_new(fx, sid, 1);
    twrite_t *down = tw_new(fx, sid, 2);
    down->apply_rc = PARLEY_EUNAVAIL;
    twrite_t *w3 = tw_new(fx, sid, 3);
    twrite_t *batch[] = {w1, down, w3};
    run_one_batch(fx, batch, 3);

    assert_int_equal(atomic_load(&blocker->done_status), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&batch[i]->done_calls), 1);
        assert_int_equal(atomic_load(&batch[i]->done_status), PARLEY_EUNAVAIL);
    }
    for (uint64_t pos = 1; pos <= 3; pos++)
        assert_int_equal(chunk_visible(fx->store, sid, pos), 0);
    assert_false(parley_writer_failed(fx->writer));
    assert_int_equal(atomic_load(&fx->fatal_calls), 0);
    twrite_t *later = tw_new(fx, sid, 4);
    assert_int_equal(run_write(fx, later), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 4), 1);
}

static void writer_full_disk_fails_only_that_write(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "full");
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *w1 = tw_new(fx, sid, 1);
    twrite_t *full = tw_new(fx, sid, 2);
    full->apply_rc = PARLEY_EFULL;
    twrite_t *w3 = tw_new(fx, sid, 3);
    twrite_t *batch[] = {w1, full, w3};
    run_one_batch(fx, batch, 3);

    assert_int_equal(atomic_load(&blocker->done_status), 0);
    assert_int_equal(atomic_load(&w1->done_status), 0);
    assert_int_equal(atomic_load(&full->done_status), PARLEY_EFULL);
    assert_int_equal(atomic_load(&w3->done_status), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 1), 1);
    assert_int_equal(chunk_visible(fx->store, sid, 2), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 3), 1);
    /* A full disk is not fatal: the writer goes on. */
    assert_false(parley_writer_failed(fx->writer));
    assert_int_equal(atomic_load(&fx->fatal_calls), 0);
    twrite_t *next = tw_new(fx, sid, 4);
    assert_int_equal(run_write(fx, next), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 4), 1);
}

static void writer_fsync_failure_fails_batch_stops(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "fsync");
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *w1 = tw_new(fx, sid, 1);
    twrite_t *w2 = tw_new(fx, sid, 2);
    w2->fail_sync = true; /* the COMMIT of this batch fails to sync */
    twrite_t *w3 = tw_new(fx, sid, 3);
    twrite_t *batch[] = {w1, w2, w3};
    run_one_batch(fx, batch, 3);

    assert_int_equal(atomic_load(&syncs_failed), 1);
    assert_int_equal(atomic_load(&blocker->done_status), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&batch[i]->done_calls), 1);
        assert_int_equal(atomic_load(&batch[i]->done_status), PARLEY_ESTORE);
    }
    /* Never retried: the writer stops for good. */
    assert_true(wait_failed(fx));
    assert_int_equal(atomic_load(&fx->fatal_calls), 1);
    twrite_t *late = tw_new(fx, sid, 4);
    assert_int_equal(parley_writer_submit(fx->writer, &late->w), PARLEY_ECLOSED);
    parley_writer_stop(fx->writer);
    assert_int_equal(atomic_load(&late->done_calls), 0);
    assert_int_equal(atomic_load(&fx->fatal_calls), 1);
}

static void writer_disk_full_commit_fails_batch_continues(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "disk-full");
    hold_writer(fx, sid, 0);
    twrite_t *w1 = tw_new(fx, sid, 1);
    w1->fail_write = true; /* the COMMIT cannot write the WAL */
    twrite_t *w2 = tw_new(fx, sid, 2);
    twrite_t *batch[] = {w1, w2};
    run_one_batch(fx, batch, 2);

    assert_int_equal(atomic_load(&writes_failed), 1);
    assert_int_equal(atomic_load(&w1->done_status), PARLEY_EFULL);
    assert_int_equal(atomic_load(&w2->done_status), PARLEY_EFULL);
    assert_int_equal(chunk_visible(fx->store, sid, 1), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 2), 0);
    /* Not fatal: once there is space again, writes succeed. */
    assert_false(parley_writer_failed(fx->writer));
    assert_int_equal(atomic_load(&fx->fatal_calls), 0);
    twrite_t *next = tw_new(fx, sid, 1);
    assert_int_equal(run_write(fx, next), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 1), 1);
}

/* The stream's tail as a fresh reader sees it (-1 on error). */
static int64_t tail_visible(parley_store_t *store, int64_t stream_id)
{
    parley_db_t *rd = NULL;
    parley_stream_t st;
    if (parley_store_reader(store, &rd) != 0)
        return -1;
    int rc = parley_db_stream_get_id(rd, stream_id, &st);
    parley_db_close(rd);
    return rc ? -1 : (int64_t)st.tail;
}

/*
 * The SQLite writer keeps the stream rows it reads and moves their tails in
 * memory until the commit (rowcache.h). A batch whose commit fails takes
 * its tails with it: the next append lands at the tail that was committed.
 * And a commit by another connection (here a bare SQLite connection moving
 * the tail) is seen by the writer's next transaction.
 */
static void writer_cached_rows_after_failed_commit_and_other_connection(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "cached");
    twrite_t *t0 = tw_new(fx, sid, 0);
    t0->cached = true;
    assert_int_equal(run_write(fx, t0), 0);
    assert_int_equal(t0->new_tail, 1);

    twrite_t *hold = hold_writer(fx, sid, 1);
    hold->cached = true; /* read after the gate: it appends as the others do */
    twrite_t *w1 = tw_new(fx, sid, 2);
    w1->cached = true;
    w1->fail_write = true; /* the COMMIT cannot write the WAL */
    twrite_t *w2 = tw_new(fx, sid, 3);
    w2->cached = true;
    twrite_t *batch[] = {w1, w2};
    run_one_batch(fx, batch, 2);
    assert_int_equal(atomic_load(&hold->done_status), 0);
    assert_int_equal(atomic_load(&w1->done_status), PARLEY_EFULL);
    assert_int_equal(atomic_load(&w2->done_status), PARLEY_EFULL);
    assert_int_equal(tail_visible(fx->store, sid), 2);

    twrite_t *next = tw_new(fx, sid, 4);
    next->cached = true;
    assert_int_equal(run_write(fx, next), 0);
    assert_int_equal(next->new_tail, 3);
    assert_int_equal(tail_visible(fx->store, sid), 3);
    assert_int_equal(chunk_visible(fx->store, sid, 4), 1);

    /* another connection commits a change to the row */
    char file[320];
    snprintf(file, sizeof file, "%s/parley.db", fx->dir);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open_v2(file, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(other, 5000);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE streams SET tail = tail + 10 WHERE id = %lld",
             (long long)sid);
    assert_int_equal(sqlite3_exec(other, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    twrite_t *after = tw_new(fx, sid, 5);
    after->cached = true;
    assert_int_equal(run_write(fx, after), 0);
    assert_int_equal(after->new_tail, 14);
    assert_int_equal(tail_visible(fx->store, sid), 14);
}

/*
 * Every class of error an apply() can return: what the write's done()
 * gets, whether its rows stay, and whether the writer stops. Only the
 * store's own failure stops it; a request that could not build a value
 * (EINVAL: text that is not UTF-8) or get memory (ENOMEM) is that
 * request's error.
 */
static const struct {
    const char *name; /* the class */
    int apply_rc;     /* what apply() returns after inserting its chunk */
    int done_status;  /* what done() gets */
    bool stops;       /* the writer fails (on_fatal, later submits refused) */
} error_classes[] = {
    {"ok", 0, 0, false},
    {"conflict", PARLEY_ECONFLICT, 0, false},
    {"invalid value", PARLEY_EINVAL, 0, false},
    {"out of memory", PARLEY_ENOMEM, 0, false},
    {"not found", PARLEY_ENOTFOUND, 0, false},
    {"exists", PARLEY_EEXIST, 0, false},
    {"too big", PARLEY_ETOOBIG, 0, false},
    {"closed", PARLEY_ECLOSED, 0, false},
    {"errno", -ENOENT, 0, false},
    {"disk full", PARLEY_EFULL, PARLEY_EFULL, false},
    {"store failed", PARLEY_ESTORE, PARLEY_ESTORE, true}, /* last: it stops the writer */
};

/*
 * A write whose transaction vanished under it (SQLite rolls back on its own
 * after some I/O errors and a full disk, and the apply may not have seen
 * it): the store's release / rollback_to say so, and nothing of the batch
 * is acknowledged, whatever the apply returned.
 */
static void lost_txn_case(fixture_t *fx, int apply_rc)
{
    int64_t sid = create_stream(fx, "lost");
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *w1 = tw_new(fx, sid, 1);
    twrite_t *dropper = tw_new(fx, sid, 2);
    dropper->drop_txn = true;
    dropper->apply_rc = apply_rc;
    twrite_t *w3 = tw_new(fx, sid, 3);
    twrite_t *batch[] = {w1, dropper, w3};
    run_one_batch(fx, batch, 3);

    assert_int_equal(atomic_load(&blocker->done_status), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&batch[i]->done_calls), 1);
        assert_int_equal(atomic_load(&batch[i]->done_status), PARLEY_ESTORE);
    }
    assert_int_equal(chunk_visible(fx->store, sid, 1), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 2), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 3), 0);
    assert_true(wait_failed(fx));
    assert_int_equal(atomic_load(&fx->fatal_calls), 1);
}

static void writer_lost_txn_after_success_fails_batch_stops(void **state)
{
    lost_txn_case(*state, 0); /* release reports the loss */
}

static void writer_lost_txn_after_refusal_fails_batch_stops(void **state)
{
    lost_txn_case(*state, PARLEY_EINVAL); /* rollback_to reports the loss */
}

static void writer_apply_error_classes(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "classes");
    for (size_t i = 0; i < sizeof error_classes / sizeof error_classes[0]; i++) {
        twrite_t *t = tw_new(fx, sid, 100 + i);
        t->apply_rc = error_classes[i].apply_rc;
        int st = run_write(fx, t);
        if (st != error_classes[i].done_status)
            fail_msg("%s: done status %d, expected %d", error_classes[i].name, st,
                     error_classes[i].done_status);
        /* The write's rows stay only if it succeeded. */
        assert_int_equal(chunk_visible(fx->store, sid, 100 + i), error_classes[i].apply_rc == 0);
        if (error_classes[i].stops) {
            assert_true(wait_failed(fx));
            assert_int_equal(atomic_load(&fx->fatal_calls), 1);
            twrite_t *late = tw_new(fx, sid, 999);
            assert_int_equal(parley_writer_submit(fx->writer, &late->w), PARLEY_ECLOSED);
            continue;
        }
        if (parley_writer_failed(fx->writer) || atomic_load(&fx->fatal_calls) != 0)
            fail_msg("%s: the writer stopped", error_classes[i].name);
        /* The writer goes on: the next write commits. */
        twrite_t *next = tw_new(fx, sid, 200 + i);
        assert_int_equal(run_write(fx, next), 0);
        assert_int_equal(chunk_visible(fx->store, sid, 200 + i), 1);
    }
}

/* Maintenance that writes a row and makes its own commit's fsync fail. */
static atomic_int tick_calls;

static int tick_fail_sync(parley_db_t *db, void *arg, parley_wakeset_t *wake)
{
    if (atomic_fetch_add(&tick_calls, 1) != 0)
        return 0;
    int rc = parley_db_key_put(db, "tick", (const unsigned char *)"tick", 4, 0);
    if (rc)
        return rc;
    atomic_store(&fail_next_sync, 1);
    return 0;
}

static void writer_tick_fsync_failure_stops(void **state)
{
    fixture_t *fx = *state;
    atomic_store(&tick_calls, 0);
    parley_writer_set_tick(fx->writer, tick_fail_sync, NULL);
    /* The first tick comes about a second after start; wait, bounded. */
    for (int i = 0; i < 300 && atomic_load(&syncs_failed) == 0; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&syncs_failed), 1);
    assert_true(atomic_load(&tick_calls) >= 1);

    /* A failed fsync is fatal wherever it happens: nothing may be
     * acknowledged after it, so a later write is refused or failed. */
    twrite_t *w = tw_new(fx, 777, 5);
    int base = completed(fx);
    int rc = parley_writer_submit(fx->writer, &w->w);
    if (rc == 0) {
        assert_true(wait_completed(fx, base + 1));
        assert_int_not_equal(atomic_load(&w->done_status), 0);
    } else {
        assert_int_equal(rc, PARLEY_ECLOSED);
    }
    assert_true(wait_failed(fx));
    assert_int_equal(atomic_load(&fx->fatal_calls), 1);
}

/* ---- wake sets --------------------------------------------------------- */

static void on_wake_crowd(parley_waiter_t *w, parley_wake_t why)
{
    if (why == PARLEY_WAKE_DATA)
        atomic_fetch_add((atomic_int *)w->arg, 1);
}

/* Park crowd reader i on stream_id. */
static void park_crowd(fixture_t *fx, int i, int64_t stream_id)
{
    parley_waiter_t *w = &fx->crowd[i];
    memset(w, 0, sizeof *w);
    w->stream_id = stream_id;
    w->on_wake = on_wake_crowd;
    w->arg = &fx->crowd_data[i];
    atomic_init(&fx->crowd_data[i], 0);
    assert_int_equal(parley_hub_wait(fx->hub, w, parley_hub_generation(fx->hub)), 0);
}

/* Readers of crowd[0..n) woken with DATA, once want of them are (bounded). */
static int crowd_woken(fixture_t *fx, int n, int want)
{
    int woken = 0;
    for (int t = 0; t < WAIT_MS / 10; t++) {
        woken = 0;
        for (int i = 0; i < n; i++)
            woken += atomic_load(&fx->crowd_data[i]) > 0;
        if (woken >= want)
            break;
        sleep_ms(10);
    }
    return woken;
}

/* Readers on streams 1..CROWD-1 and one on a stream nobody names. */
static void park_whole_crowd(fixture_t *fx)
{
    for (int i = 0; i < CROWD - 1; i++)
        park_crowd(fx, i, i + 1);
    park_crowd(fx, CROWD - 1, 1000000);
}

/* Maintenance that names streams 1..CROWD-1 as changed, once. */
static int tick_names_crowd(parley_db_t *db, void *arg, parley_wakeset_t *wake)
{
    (void)db;
    (void)arg;
    if (atomic_fetch_add(&tick_calls, 1) != 0)
        return 0;
    for (int64_t id = 1; id < CROWD; id++)
        parley_wakeset_add(wake, id);
    return 0;
}

static void writer_tick_overflow_wakes_every_reader(void **state)
{
    fixture_t *fx = *state;
    park_whole_crowd(fx);
    atomic_store(&tick_calls, 0);
    parley_writer_set_tick(fx->writer, tick_names_crowd, NULL);
    /* 300 streams are more than a wake set names: every live reader wakes
     * (the 300 named ones and the other), none is left waiting. */
    assert_int_equal(crowd_woken(fx, CROWD, CROWD), CROWD);
    assert_true(atomic_load(&tick_calls) >= 1);
}

static void writer_write_overflow_wakes_every_reader(void **state)
{
    fixture_t *fx = *state;
    park_whole_crowd(fx);
    twrite_t *t = tw_new(fx, 0, 0);
    t->wake_first = 1;
    t->wake_count = CROWD - 1;
    assert_int_equal(run_write(fx, t), 0);
    assert_int_equal(crowd_woken(fx, CROWD, CROWD), CROWD);
}

static void writer_batch_wakes_only_what_it_changed(void **state)
{
    fixture_t *fx = *state;
    int64_t sid = create_stream(fx, "held");
    for (int i = 0; i < 40; i++)
        park_crowd(fx, i, 1000 + i);
    park_crowd(fx, 40, 999999);
    /* Two writes of one batch name 20 streams each: 40 in all, more than
     * one set holds, yet each write's set fits, so only they wake. */
    twrite_t *blocker = hold_writer(fx, sid, 0);
    twrite_t *writes[2] = {tw_new(fx, 0, 0), tw_new(fx, 0, 0)};
    writes[0]->wake_first = 1000;
    writes[1]->wake_first = 1020;
    writes[0]->wake_count = writes[1]->wake_count = 20;
    run_one_batch(fx, writes, 2);
    assert_int_equal(atomic_load(&blocker->done_status), 0);
    assert_int_equal(crowd_woken(fx, 40, 40), 40);
    assert_int_equal(atomic_load(&fx->crowd_data[40]), 0);
}

/* ---- the data directory lock --------------------------------------------- */

static void writer_store_open_locked_same_process(void **state)
{
    fixture_t *fx = *state;
    /* flock belongs to the open file description: a second open of the
     * lock file conflicts even inside the process that holds it. */
    parley_store_t *second = (parley_store_t *)0x1;
    assert_int_equal(open_store_in(fx->dir, &second), PARLEY_ELOCKED);
    assert_ptr_equal(second, (parley_store_t *)0x1);

    /* The holder is unaffected by the refused open. */
    int64_t sid = create_stream(fx, "still-works");
    assert_int_equal(run_write(fx, tw_new(fx, sid, 0)), 0);
    assert_int_equal(chunk_visible(fx->store, sid, 0), 1);
}

static void writer_store_open_locked_other_process(void **state)
{
    fixture_t *fx = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        parley_store_t *s = NULL;
        int rc = open_store_in(fx->dir, &s);
        _exit(rc == PARLEY_ELOCKED ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void writer_store_open_after_close_unlocked(void **state)
{
    char dir[64];
    assert_int_equal(make_tmpdir(dir, sizeof dir), 0);
    parley_store_t *a = NULL, *b = NULL;
    int rc_a = open_store_in(dir, &a);
    int rc_b = open_store_in(dir, &b);
    parley_store_close(a);
    /* The lock goes with the store: the directory can be opened again. */
    int rc_c = open_store_in(dir, &b);
    parley_store_close(b);
    remove_tree(dir);
    assert_int_equal(rc_a, 0);
    assert_int_equal(rc_b, PARLEY_ELOCKED);
    assert_int_equal(rc_c, 0);
}

int main(void)
{
    if (fault_vfs_install() != 0) {
        fprintf(stderr, "cannot install the fault-injection VFS\n");
        return 1;
    }
#define W(fn) cmocka_unit_test_setup_teardown(fn, writer_setup, writer_teardown)
    const struct CMUnitTest writer_tests[] = {
        W(writer_batch_commits_many_writes_once),
        W(writer_savepoint_rolls_back_refused_write_only),
        W(writer_done_after_commit_data_visible),
        W(writer_stop_drains_queue_first),
        W(writer_submit_closed_after_stop),
        W(writer_storage_failure_fails_batch_stops),
        W(writer_conflict_reruns_that_write_alone),
        W(writer_conflict_forever_answers_closed),
        W(writer_unavailable_fails_batch_continues),
        W(writer_full_disk_fails_only_that_write),
        W(writer_fsync_failure_fails_batch_stops),
        W(writer_disk_full_commit_fails_batch_continues),
        W(writer_cached_rows_after_failed_commit_and_other_connection),
        W(writer_lost_txn_after_success_fails_batch_stops),
        W(writer_lost_txn_after_refusal_fails_batch_stops),
        W(writer_apply_error_classes),
        W(writer_tick_fsync_failure_stops),
        W(writer_tick_overflow_wakes_every_reader),
        W(writer_write_overflow_wakes_every_reader),
        W(writer_batch_wakes_only_what_it_changed),
        W(writer_store_open_locked_same_process),
        W(writer_store_open_locked_other_process),
        cmocka_unit_test(writer_store_open_after_close_unlocked),
    };
#undef W
    return cmocka_run_group_tests_name("writer", writer_tests, NULL, NULL);
}
