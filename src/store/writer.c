/*
 * writer.c — group commit on one writer thread (see writer.h).
 *
 * NOTES ON THE DESIGN
 *
 * One thread owns the write connection. It sleeps until writes are queued,
 * takes everything queued (up to MAX_BATCH), and runs the batch:
 *
 *     BEGIN IMMEDIATE
 *       for each write:  SAVEPOINT req; apply(); RELEASE or ROLLBACK TO req
 *     COMMIT                       <- one fsync of the WAL for the batch
 *     done() for every write       <- responses leave only now
 *     on_commit                    <- live readers wake only now (the hub)
 *
 * Why no reply leaves before the fsync: a 2xx promises the client that the
 * write survives a crash. COMMIT with synchronous=FULL returns after the
 * WAL is on disk; until then the write could vanish, so its response waits.
 * Readers likewise see data only after the commit (their connections read
 * committed snapshots) and are woken only after it.
 *
 * The savepoint per write isolates failures: a write that is refused
 * (conflict, bad state) rolls back only its own statements, and its
 * neighbours in the batch still commit. Throughput is about batch size /
 * fsync time, latency one or two fsyncs.
 *
 * Wake sets (store/wakeset.h): each write names the streams it changed in
 * w->wake, and the tick in one set of its own. A batch copies its writes'
 * sets before their done() (which may free them) into as few sets as hold
 * them, starting a new one when the next write's set does not fit, so a
 * busy batch wakes only the readers of what it changed; a write or tick
 * that changed more streams than one set names wakes every live reader
 * (nothing is ever missed).
 *
 * What apply() may return, and what it does (is_storage_failure):
 *   0                         keep the write
 *   PARLEY_ESTORE             the store failed (I/O, corruption): the batch
 *                             fails and the writer stops (fail-stop below)
 *   PARLEY_EFULL              the disk is full: this write is answered 507,
 *                             its neighbours go on
 *   anything else (EINVAL,    the request's own failure, a value that could
 *   ECONFLICT, ENOMEM, ...)   not be built included: only its savepoint
 *                             rolls back; it answers from its own struct
 *   PARLEY_ERETRY             a transient conflict with another
 *                             transaction (PostgreSQL: serialization
 *                             failure or deadlock, other nodes writing the
 *                             same rows): the write rolls back to its
 *                             savepoint and is set aside; the batch goes
 *                             on and commits without it, then the write
 *                             runs again alone, in a transaction of its
 *                             own (up to RETRY_MAX rounds; still
 *                             conflicting, it is answered ERETRY: 503)
 *   PARLEY_EUNAVAIL           the database cannot be reached (PostgreSQL
 *                             down or restarting): the batch is rolled
 *                             back and answered EUNAVAIL (503, retry), and
 *                             the writer goes on: the next batch
 *                             reconnects. Not fail-stop: no fsync failed,
 *                             the database server keeps what it committed
 * If SQLite itself abandoned the transaction (no longer in one), nothing
 * of the batch can commit, whatever apply() said: the batch fails and the
 * writer stops.
 *
 * A COMMIT that fails because the database went away (PARLEY_EUNAVAIL)
 * has an unknown outcome: the batch is answered 503, never 2xx, so nothing
 * unacknowledged is claimed and nothing acknowledged is lost; a client
 * retrying with its Idempotency-Key gets the stored answer if the commit
 * did land.
 *
 * Metrics: a committed batch is observed once (after its COMMIT) in three
 * lock-free histograms, batch size, time in COMMIT and time from BEGIN,
 * and the queue depth is a count kept under the lock submit already takes
 * (parley_writer_histograms, parley_writer_stats: read by /metrics).
 *
 * Fail-stop: if COMMIT fails (an I/O error, a failed fsync), every write in
 * the batch is answered with an error, the writer refuses all further
 * writes and on_fatal() asks the server to exit. A failed fsync is never
 * retried: the kernel may already have dropped the dirty pages, so a retry
 * that "succeeds" could acknowledge data that is not on disk. A full disk
 * is different: the batch is rolled back and answered 507, and the writer
 * keeps going so that writes succeed again once space is freed.
 *
 * State machine of the thread:
 *
 *     IDLE --submit--> RUNNING (batch) --commit ok--> IDLE
 *                         |--commit failed--> FAILED (refuses, on_fatal)
 *     any --stop--> DRAINING (finishes the queue) --> STOPPED
 *
 * Invariants:
 *   1. done() is called exactly once for every write accepted by submit.
 *   2. No done(status 0) before the COMMIT that holds the write returned.
 *   3. Only this thread touches the writer connection.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parley/parley.h"
#include "store/writer.h"
#include "util/clock.h"
#include "util/hist.h"
#include "util/log.h"
#include "util/thread.h"

#define MAX_BATCH 4096
#define TICK_MS   1000
#define RETRY_MAX 5 /* rounds a write that keeps conflicting runs alone */

/* Buckets of the batch-size histogram (writes per committed batch). */
static const uint64_t batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

struct parley_writer {
    parley_store_t *store;             /* the store (borrowed) */
    parley_db_t *db;                   /* its writer connection (borrowed) */
    parley_writer_commit_fn on_commit; /* told what each commit changed */
    void *commit_arg;                  /* for on_commit */
    void (*on_fatal)(void *);          /* called once when a commit fails */
    void *fatal_arg;                   /* for on_fatal */
    parley_writer_tick_fn tick;        /* periodic maintenance, or NULL */
    void *tick_arg;                    /* for tick */
    pthread_t thread;                  /* the writer thread */
    pthread_mutex_t lock;              /* guards the fields below */
    pthread_cond_t cond;               /* signalled on submit and stop */
    parley_write_t *head, *tail;       /* FIFO of queued writes */
    bool stopping;                     /* drain and exit */
    bool joined;                       /* the thread has been (or is being) joined */
    bool failed;                       /* a commit failed: refuse writes */
    parley_writer_stats_t stats;       /* counters */
    size_t queued;                     /* writes in the FIFO (the queue depth) */
    parley_hist_t batch_hist;          /* writes per committed batch (no lock) */
    parley_hist_t commit_hist;         /* time in publish + COMMIT, us (no lock) */
    parley_hist_t txn_hist;            /* BEGIN to COMMIT done, us (no lock) */
    parley_wakeset_t wake[MAX_BATCH];  /* streams a batch changed, packed into sets */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Only the store may stop the writer: a request's own error (a value it
 * could not build, memory it could not get) is never a storage failure. */
static bool is_storage_failure(int rc)
{
    return rc == PARLEY_ESTORE || rc == PARLEY_EFULL || rc == PARLEY_EUNAVAIL;
}

/* Answer every write of a batch that cannot commit. */
static void fail_batch(parley_write_t *batch, int status)
{
    while (batch) {
        parley_write_t *next = batch->next;
        batch->done(batch, status);
        batch = next;
    }
}

/* Refuse every later write; the first call also tells the server. */
static void go_fatal(parley_writer_t *wr)
{
    pthread_mutex_lock(&wr->lock);
    bool first = !wr->failed;
    wr->failed = true;
    pthread_mutex_unlock(&wr->lock);
    if (first && wr->on_fatal)
        wr->on_fatal(wr->fatal_arg);
}

/* A batch that cannot commit: refuse later writes first (so no submit can
 * slip in between), then answer the batch. A full disk (507) and an
 * unreachable database (503) are answered without stopping the writer. */
static void fail_batch_fatal(parley_writer_t *wr, parley_write_t *batch, int status)
{
    if (status == PARLEY_EUNAVAIL) {
        fail_batch(batch, PARLEY_EUNAVAIL);
        return;
    }
    if (status != PARLEY_EFULL)
        go_fatal(wr);
    fail_batch(batch, status);
}

/* The status a failed batch is answered with. */
static int batch_status(int rc)
{
    return rc == PARLEY_EFULL || rc == PARLEY_EUNAVAIL ? rc : PARLEY_ESTORE;
}

/* Run one batch in one transaction. Returns the writes set aside after a
 * transient conflict (PARLEY_ERETRY), linked by next and not answered: the
 * caller runs them again. */
static parley_write_t *run_batch(parley_writer_t *wr, parley_write_t *batch, size_t n)
{
    int nwake = 0; /* sets in wr->wake in use */
    int64_t t_begin = now_us();
    int rc = parley_db_begin(wr->db);
    if (rc) {
        fail_batch_fatal(wr, batch, batch_status(rc));
        return NULL;
    }
    for (parley_write_t *w = batch; w; w = w->next) {
        parley_wakeset_init(&w->wake);
        w->status = 0;
        /* lost: the batch's transaction is gone (release and rollback_to
         * say so; SQLite drops it on its own after an I/O error or a full
         * disk) or could not be restored to the savepoint. */
        bool lost = false;
        /* From the second request on, waiting for another transaction's
         * rows is bounded (a node's batches never wait for each other's
         * deadlock detection): past it, the request is set aside below. */
        rc = w == batch->next ? parley_db_batch_waits(wr->db) : 0;
        if (rc == 0)
            rc = parley_db_savepoint(wr->db);
        if (rc == 0) {
            int arc = w->apply(w, wr->db);
            if (arc == 0) {
                rc = parley_db_release(wr->db);
                lost = rc == PARLEY_ESTORE;
            } else {
                parley_wakeset_init(&w->wake);
                rc = is_storage_failure(arc) ? arc : 0;
                int rrc = parley_db_rollback_to(wr->db);
                if (rrc) {
                    lost = true;
                    if (!rc)
                        rc = rrc;
                }
                if (arc == PARLEY_ERETRY && !lost) {
                    /* Another transaction holds what this write needs:
                     * set it aside and run it again alone afterwards,
                     * never its neighbours with it. */
                    w->status = PARLEY_ERETRY;
                    continue;
                }
            }
        }
        if (rc == PARLEY_EFULL && !lost) {
            /* Only this write needed space it could not get: answer it
             * 507 now and let the rest of the batch go on. */
            parley_wakeset_init(&w->wake);
            w->status = PARLEY_EFULL;
            continue;
        }
        if (rc || lost) {
            /* The transaction is gone or broken: nothing in it commits. */
            parley_db_rollback(wr->db);
            fail_batch_fatal(wr, batch, batch_status(rc));
            return NULL;
        }
        /* Copy the write's set now (it may be freed by its done): into
         * the current set while it has room for all of it, else a new one,
         * so a busy batch never wakes more readers than it changed. */
        if (!parley_wakeset_empty(&w->wake)) {
            if (nwake == 0 || wr->wake[nwake - 1].n + w->wake.n > PARLEY_WAKESET_MAX)
                parley_wakeset_init(&wr->wake[nwake++]);
            parley_wakeset_merge(&wr->wake[nwake - 1], &w->wake);
        }
    }
    /* Other nodes sharing the database learn what the batch changed with
     * its commit (one set: merging past the max becomes `all`). */
    parley_wakeset_t published;
    parley_wakeset_init(&published);
    for (int i = 0; i < nwake; i++)
        parley_wakeset_merge(&published, &wr->wake[i]);
    int64_t t0 = now_us();
    rc = parley_wakeset_empty(&published) ? 0 : parley_db_publish(wr->db, &published);
    if (rc == 0)
        rc = parley_db_commit(wr->db);
    int64_t t1 = now_us();
    if (rc == PARLEY_EUNAVAIL) {
        parley_log_error("writer: commit failed: the database is unavailable; the batch is "
                         "answered 503 and the next one reconnects");
        parley_db_rollback(wr->db);
        fail_batch_fatal(wr, batch, rc);
        return NULL;
    }
    if (rc) {
        parley_log_error("writer: commit failed (%s); stopping: nothing more is acknowledged",
                         parley_strerror(rc));
        parley_db_rollback(wr->db);
        fail_batch_fatal(wr, batch, batch_status(rc));
        return NULL;
    }
    pthread_mutex_lock(&wr->lock);
    wr->stats.commits++;
    wr->stats.writes += n;
    wr->stats.commit_us += (uint64_t)(t1 - t0);
    if (n > wr->stats.max_batch)
        wr->stats.max_batch = n;
    pthread_mutex_unlock(&wr->lock);
    parley_hist_observe(&wr->batch_hist, n);
    parley_hist_observe(&wr->commit_hist, (uint64_t)(t1 - t0));
    parley_hist_observe(&wr->txn_hist, (uint64_t)(t1 - t_begin));
    /* Durable: answer everyone (but the writes set aside), then wake the
     * readers. */
    parley_write_t *again = NULL, **again_tail = &again;
    while (batch) {
        parley_write_t *next = batch->next;
        if (batch->status == PARLEY_ERETRY) {
            batch->next = NULL;
            *again_tail = batch;
            again_tail = &batch->next;
        } else {
            batch->done(batch, batch->status);
        }
        batch = next;
    }
    for (int i = 0; wr->on_commit && i < nwake; i++)
        wr->on_commit(wr->commit_arg, &wr->wake[i]);
    return again;
}

/* Run the writes a batch set aside, each alone in its own transaction, for
 * up to RETRY_MAX rounds with a short pause between rounds; a write still
 * conflicting after that is answered 503 (retry later). */
static void run_retries(parley_writer_t *wr, parley_write_t *again)
{
    for (int round = 1; again && round <= RETRY_MAX; round++) {
        parley_write_t *left = NULL, **left_tail = &left;
        struct timespec pause = {0, round * 2000000L};
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&wr->lock);
        wr->stats.retries++;
        pthread_mutex_unlock(&wr->lock);
        while (again) {
            parley_write_t *w = again;
            again = w->next;
            w->next = NULL;
            parley_write_t *still = run_batch(wr, w, 1);
            if (still) {
                *left_tail = still;
                left_tail = &still->next;
            }
        }
        again = left;
    }
    if (again) {
        parley_log_warn("writer: a write kept conflicting with other transactions; answered "
                        "503");
        fail_batch(again, PARLEY_ERETRY);
    }
}

static void run_tick(parley_writer_t *wr)
{
    parley_wakeset_t wake;
    parley_wakeset_init(&wake);
    if (!wr->tick)
        return;
    int rc = parley_db_begin(wr->db);
    if (rc == 0) {
        /* The tick runs in a savepoint only so that its release tells
         * whether SQLite dropped the transaction on its own. */
        rc = parley_db_savepoint(wr->db);
        if (rc == 0)
            rc = wr->tick(wr->db, wr->tick_arg, &wake);
        if (rc == 0)
            rc = parley_db_release(wr->db); /* PARLEY_ESTORE: the transaction is gone */
        if (rc == 0 && !parley_wakeset_empty(&wake))
            rc = parley_db_publish(wr->db, &wake);
        if (rc == 0)
            rc = parley_db_commit(wr->db);
        if (rc == 0) {
            if (!parley_wakeset_empty(&wake) && wr->on_commit)
                wr->on_commit(wr->commit_arg, &wake);
            return;
        }
        parley_db_rollback(wr->db);
    }
    /* A full disk or an unreachable database only postpones maintenance;
     * any other storage failure (a failed fsync above all) stops the
     * writer like a failed batch. */
    if (rc != PARLEY_EFULL && rc != PARLEY_EUNAVAIL && is_storage_failure(rc)) {
        parley_log_error("writer: maintenance failed (%s); stopping: nothing more is "
                         "acknowledged",
                         parley_strerror(rc));
        go_fatal(wr);
    }
}

static void *writer_main(void *arg)
{
    parley_writer_t *wr = arg;
    int64_t next_tick = parley_clock_mono_ms() + TICK_MS;
    pthread_mutex_lock(&wr->lock);
    for (;;) {
        while (!wr->head && !wr->stopping) {
            int64_t now = parley_clock_mono_ms();
            if (now >= next_tick && !wr->failed) {
                pthread_mutex_unlock(&wr->lock);
                run_tick(wr);
                pthread_mutex_lock(&wr->lock);
                next_tick = parley_clock_mono_ms() + TICK_MS;
                continue;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait_ms = next_tick - now;
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&wr->cond, &wr->lock, &ts);
        }
        if (!wr->head && wr->stopping)
            break;
        /* Take up to MAX_BATCH writes off the queue. */
        parley_write_t *batch = wr->head, *last = batch;
        size_t n = 1;
        while (last->next && n < MAX_BATCH) {
            last = last->next;
            n++;
        }
        wr->head = last->next;
        wr->queued -= n;
        if (!wr->head)
            wr->tail = NULL;
        last->next = NULL;
        bool failed = wr->failed;
        pthread_mutex_unlock(&wr->lock);
        if (failed)
            fail_batch(batch, PARLEY_ESTORE);
        else
            run_retries(wr, run_batch(wr, batch, n));
        if (parley_clock_mono_ms() >= next_tick && !failed) {
            run_tick(wr);
            next_tick = parley_clock_mono_ms() + TICK_MS;
        }
        pthread_mutex_lock(&wr->lock);
    }
    pthread_mutex_unlock(&wr->lock);
    return NULL;
}

int parley_writer_start(parley_store_t *store, parley_writer_commit_fn on_commit, void *commit_arg,
                        void (*on_fatal)(void *), void *fatal_arg, parley_writer_t **out)
{
    parley_writer_t *wr = calloc(1, sizeof *wr);
    if (!wr)
        return PARLEY_ENOMEM;
    wr->store = store;
    wr->db = parley_store_writer(store);
    wr->on_commit = on_commit;
    wr->commit_arg = commit_arg;
    wr->on_fatal = on_fatal;
    wr->fatal_arg = fatal_arg;
    parley_hist_init(&wr->batch_hist, batch_bounds, sizeof batch_bounds / sizeof batch_bounds[0]);
    parley_hist_init(&wr->commit_hist, parley_hist_latency_us, parley_hist_latency_n);
    parley_hist_init(&wr->txn_hist, parley_hist_latency_us, parley_hist_latency_n);
    pthread_mutex_init(&wr->lock, NULL);
    pthread_cond_init(&wr->cond, NULL);
    int rc = parley_thread_start(&wr->thread, "parley-writer", writer_main, wr);
    if (rc) {
        pthread_mutex_destroy(&wr->lock);
        pthread_cond_destroy(&wr->cond);
        free(wr);
        return -rc;
    }
    *out = wr;
    return 0;
}

void parley_writer_set_tick(parley_writer_t *wr, parley_writer_tick_fn fn, void *arg)
{
    pthread_mutex_lock(&wr->lock);
    wr->tick = fn;
    wr->tick_arg = arg;
    pthread_mutex_unlock(&wr->lock);
}

int parley_writer_submit(parley_writer_t *wr, parley_write_t *w)
{
    pthread_mutex_lock(&wr->lock);
    if (wr->stopping || wr->failed) {
        pthread_mutex_unlock(&wr->lock);
        return PARLEY_ECLOSED;
    }
    w->next = NULL;
    if (wr->tail)
        wr->tail->next = w;
    else
        wr->head = w;
    wr->tail = w;
    wr->queued++;
    pthread_cond_signal(&wr->cond);
    pthread_mutex_unlock(&wr->lock);
    return 0;
}

void parley_writer_stop(parley_writer_t *wr)
{
    pthread_mutex_lock(&wr->lock);
    bool joined = wr->joined;
    wr->stopping = true;
    wr->joined = true;
    pthread_cond_signal(&wr->cond);
    pthread_mutex_unlock(&wr->lock);
    if (!joined)
        pthread_join(wr->thread, NULL);
}

void parley_writer_free(parley_writer_t *wr)
{
    if (!wr)
        return;
    parley_writer_stop(wr);
    pthread_mutex_destroy(&wr->lock);
    pthread_cond_destroy(&wr->cond);
    free(wr);
}

bool parley_writer_failed(parley_writer_t *wr)
{
    pthread_mutex_lock(&wr->lock);
    bool f = wr->failed;
    pthread_mutex_unlock(&wr->lock);
    return f;
}

void parley_writer_stats(parley_writer_t *wr, parley_writer_stats_t *out)
{
    pthread_mutex_lock(&wr->lock);
    *out = wr->stats;
    out->queued = wr->queued;
    pthread_mutex_unlock(&wr->lock);
}

void parley_writer_histograms(parley_writer_t *wr, parley_writer_hists_t *out)
{
    out->batch_size = &wr->batch_hist;
    out->commit_us = &wr->commit_hist;
    out->txn_us = &wr->txn_hist;
}

typedef struct call {
    parley_write_t w;                      /* must be first */
    int (*fn)(parley_db_t *db, void *arg); /* the work */
    void *arg;                             /* for fn */
    int rc;                                /* fn's result, then the batch's */
    bool done;                             /* the batch's fate is known */
    pthread_mutex_t lock;                  /* guards rc and done */
    pthread_cond_t cond;                   /* signalled when done */
} call_t;

static int apply_call(parley_write_t *w, parley_db_t *db)
{
    call_t *c = (call_t *)w;
    c->rc = c->fn(db, c->arg);
    return c->rc;
}

static void call_done(parley_write_t *w, int status)
{
    call_t *c = (call_t *)w;
    pthread_mutex_lock(&c->lock);
    if (c->rc == 0)
        c->rc = status;
    c->done = true;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

int parley_writer_call(parley_writer_t *wr, int (*fn)(parley_db_t *db, void *arg), void *arg)
{
    call_t c;
    memset(&c, 0, sizeof c);
    c.w.apply = apply_call;
    c.w.done = call_done;
    c.fn = fn;
    c.arg = arg;
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    int rc = parley_writer_submit(wr, &c.w);
    if (rc == 0) {
        pthread_mutex_lock(&c.lock);
        while (!c.done)
            pthread_cond_wait(&c.cond, &c.lock);
        rc = c.rc;
        pthread_mutex_unlock(&c.lock);
    }
    pthread_mutex_destroy(&c.lock);
    pthread_cond_destroy(&c.cond);
    return rc;
}
