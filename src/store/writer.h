/*
 * writer.h — the writer thread: every write goes through one group commit.
 *
 * Handlers never touch the write connection. They fill a parley_write_t
 * (what to do, and what to call when it is durable), hand it to
 * parley_writer_submit() and suspend their HTTP connection. The writer
 * thread runs whole batches of writes in one transaction and answers them
 * only after that transaction is committed and synced.
 *
 * Ownership: a submitted write is borrowed by the writer until its done
 * callback runs; the caller must keep it valid until then and must not
 * touch it meanwhile.
 *
 * Threads: parley_writer_submit() from any thread; apply and done
 * callbacks run on the writer thread.
 */
#ifndef PARLEY_STORE_WRITER_H
#define PARLEY_STORE_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "store/wakeset.h"
#include "util/hist.h"

typedef struct parley_writer parley_writer_t;
typedef struct parley_write parley_write_t;

/*
 * apply: run the write inside its own savepoint. Return 0 to keep its
 * changes, PARLEY_ECONFLICT (or any other PARLEY_E* that is not a storage
 * failure, PARLEY_ENOMEM and PARLEY_EINVAL included) to roll back just
 * this write — its response is whatever it recorded in its own struct.
 * Only PARLEY_ESTORE (the writer stops), PARLEY_EFULL (this write gets
 * 507) or PARLEY_EUNAVAIL (the database cannot be reached: the batch gets
 * 503, the writer goes on) mean the storage failed. PARLEY_ERETRY (a
 * transient conflict with another transaction) rolls this write back and
 * runs apply again later, alone in a transaction of its own: apply must
 * start from its own inputs each time.
 *
 * done: called exactly once per submitted write, after the batch's fate is
 * known: status 0 when the batch committed (the write's recorded response
 * stands), PARLEY_EFULL when the disk is full, PARLEY_ECLOSED when the
 * database could not be reached or the write kept conflicting (nothing of
 * it is acknowledged; retry), PARLEY_ESTORE when the commit failed
 * (nothing of the batch is durable; the server stops).
 */
struct parley_write {
    int (*apply)(parley_write_t *w, parley_db_t *db); /* the work */
    void (*done)(parley_write_t *w, int status);      /* the answer */
    parley_wakeset_t wake;                            /* streams to wake, set by apply */
    parley_write_t *next;                             /* private: queue link */
    int status;                                       /* private: this write's outcome */
};

/* Maintenance the writer runs about once a second in its own transaction;
 * the streams it changed join wake (empty when the tick starts). */
typedef int (*parley_writer_tick_fn)(parley_db_t *db, void *arg, parley_wakeset_t *wake);

/*
 * What the writer tells after each commit: the streams it changed, as one
 * or more wake sets (a batch's writes are packed into as few sets as
 * hold them; a set with all = true wakes every live reader). The server
 * wires this to the fan-out hub. Writer thread.
 */
typedef void (*parley_writer_commit_fn)(void *arg, const parley_wakeset_t *wake);

/*
 * Start the writer thread on the store's writer connection. on_commit is
 * called after every commit that changed streams, after the batch's
 * answers. on_fatal is called once (on the writer thread) if a commit
 * fails: the server must stop, since nothing may be retried after a failed
 * fsync.
 */
int parley_writer_start(parley_store_t *store, parley_writer_commit_fn on_commit, void *commit_arg,
                        void (*on_fatal)(void *), void *fatal_arg, parley_writer_t **out);
/* Set the periodic maintenance (before any write is submitted). */
void parley_writer_set_tick(parley_writer_t *w, parley_writer_tick_fn fn, void *arg);

/*
 * Queue a write. 0 on success (done will be called), or PARLEY_ECLOSED if
 * the writer has stopped or failed (done will never be called).
 */
int parley_writer_submit(parley_writer_t *wr, parley_write_t *w);

/*
 * Finish every queued write and stop the thread. Later submits get
 * PARLEY_ECLOSED; the writer stays valid until parley_writer_free().
 */
void parley_writer_stop(parley_writer_t *wr);
/* Free a stopped writer. Accepts NULL. */
void parley_writer_free(parley_writer_t *wr);

/* True once a commit has failed. */
bool parley_writer_failed(parley_writer_t *wr);

/* Statistics for /metrics. */
typedef struct parley_writer_stats {
    uint64_t commits;   /* transactions committed */
    uint64_t writes;    /* writes answered */
    uint64_t commit_us; /* total time in COMMIT (microseconds) */
    uint64_t max_batch; /* largest batch so far */
    uint64_t retries;   /* rounds of writes run again alone after a conflict */
    uint64_t queued;    /* writes waiting in the queue now (not yet in a batch) */
} parley_writer_stats_t;
/* A copy of the counters, taken under the writer's lock. Any thread. */
void parley_writer_stats(parley_writer_t *wr, parley_writer_stats_t *out);

/*
 * The writer's histograms, observed once per committed batch without a
 * lock: batch_size (writes per batch), commit_us (publish + COMMIT, the
 * WAL write and its fsync on SQLite, the wait for the server's WAL flush
 * on PostgreSQL) and txn_us (BEGIN to the end of COMMIT: the whole batch).
 * Borrowed: valid until parley_writer_free(). Read them with
 * parley_hist_read() from any thread.
 */
typedef struct parley_writer_hists {
    const parley_hist_t *batch_size; /* writes per committed batch */
    const parley_hist_t *commit_us;  /* microseconds in COMMIT (fsync included) */
    const parley_hist_t *txn_us;     /* microseconds from BEGIN to committed */
} parley_writer_hists_t;
void parley_writer_histograms(parley_writer_t *wr, parley_writer_hists_t *out);

/*
 * Run fn(db, arg) on the writer thread, in a savepoint of a batch like any
 * write, and wait until that batch has committed. Returns fn's error (its
 * changes are then rolled back), the batch's failure, or PARLEY_ECLOSED.
 * For start-up work that must be durable before the server goes on. Any
 * thread but the writer's.
 */
int parley_writer_call(parley_writer_t *wr, int (*fn)(parley_db_t *db, void *arg), void *arg);

#endif
