/*
 * checkpointer.c — WAL checkpoints off the commit path (see checkpointer.h).
 *
 * State machine of the thread:
 *
 *     IDLE --hook: frames >= threshold--> CHECKPOINTING --done--> IDLE
 *     (hook: frames >= hard limit: the writer checkpoints, see the header)
 *       \--stop--> (one last checkpoint) --> STOPPED
 *     CHECKPOINTING --I/O error--> FAILED (on_fatal; no more checkpoints)
 *
 * The hook only records the WAL size and signals; it never blocks the
 * writer for longer than taking a mutex.
 *
 * Before its first wait the thread runs the part of the start-up integrity
 * check that open left out (parley_sqlite_quick_check: the stored bytes
 * and the free list), so the server serves at once whatever the store's
 * size; damage found stops the server through on_fatal, as a failed
 * checkpoint does. Stop cancels it (cancel).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "parley/parley.h"
#include "store/sqlite/checkpointer.h"
#include "store/sqlite/sqlite_internal.h"
#include "util/log.h"
#include "util/thread.h"

struct parley_checkpointer {
    parley_store_t *store;    /* the store (borrowed) */
    void (*on_fatal)(void *); /* called once on an I/O error */
    void *fatal_arg;          /* for on_fatal */
    pthread_t thread;         /* the checkpointer */
    pthread_mutex_t lock;     /* guards the fields below */
    pthread_cond_t cond;      /* signalled by the hook and stop */
    int frames;               /* WAL size after the last commit */
    bool stopping;            /* finish and exit */
    bool failed;              /* a checkpoint failed: do no more */
    unsigned long count;      /* checkpoints run */
    atomic_bool cancel;       /* stop asked: end the start-up check early */
};

/* Writer thread, after each commit. true: complete a checkpoint here. */
static bool on_wal(void *arg, int frames)
{
    parley_checkpointer_t *cp = arg;
    bool fatal = false, here = false;
    pthread_mutex_lock(&cp->lock);
    if (frames < 0) { /* the writer's own checkpoint failed */
        fatal = !cp->failed;
        cp->failed = true;
    } else {
        cp->frames = frames;
        if (frames >= PARLEY_CHECKPOINT_FRAMES)
            pthread_cond_signal(&cp->cond);
        here = !cp->failed && frames >= PARLEY_CHECKPOINT_HARD_FRAMES;
    }
    pthread_mutex_unlock(&cp->lock);
    if (fatal && cp->on_fatal)
        cp->on_fatal(cp->fatal_arg);
    return here;
}

static void run_checkpoint(parley_checkpointer_t *cp)
{
    int frames, done;
    int rc = parley_sqlite_checkpoint(cp->store, &frames, &done);
    pthread_mutex_lock(&cp->lock);
    cp->count++;
    if (rc == 0 && done >= frames)
        cp->frames = 0; /* all copied back: the next commit rewinds the WAL */
    bool first_failure = rc && rc != PARLEY_EFULL && !cp->failed;
    if (rc && rc != PARLEY_EFULL)
        cp->failed = true;
    pthread_mutex_unlock(&cp->lock);
    if (first_failure) {
        parley_log_error("checkpoint failed (%s); stopping: the database file cannot be trusted",
                         parley_strerror(rc));
        if (cp->on_fatal)
            cp->on_fatal(cp->fatal_arg);
    }
}

static void *checkpointer_main(void *arg)
{
    parley_checkpointer_t *cp = arg;
    if (parley_sqlite_quick_check(cp->store, &cp->cancel) != 0) {
        parley_log_error("store: the database file is damaged (see above); stopping: run "
                         "`parley verify`, then restore a backup");
        pthread_mutex_lock(&cp->lock);
        cp->failed = true;
        pthread_mutex_unlock(&cp->lock);
        if (cp->on_fatal)
            cp->on_fatal(cp->fatal_arg);
    }
    pthread_mutex_lock(&cp->lock);
    for (;;) {
        while (!cp->stopping && (cp->failed || cp->frames < PARLEY_CHECKPOINT_FRAMES))
            pthread_cond_wait(&cp->cond, &cp->lock);
        bool stop = cp->stopping;
        bool failed = cp->failed;
        pthread_mutex_unlock(&cp->lock);
        if (!failed)
            run_checkpoint(cp); /* on stop: a last one, so restarts replay little */
        pthread_mutex_lock(&cp->lock);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&cp->lock);
    return NULL;
}

int parley_checkpointer_start(parley_store_t *store, void (*on_fatal)(void *), void *fatal_arg,
                              parley_checkpointer_t **out)
{
    parley_checkpointer_t *cp = calloc(1, sizeof *cp);
    if (!cp)
        return PARLEY_ENOMEM;
    cp->store = store;
    cp->on_fatal = on_fatal;
    cp->fatal_arg = fatal_arg;
    atomic_init(&cp->cancel, false);
    pthread_mutex_init(&cp->lock, NULL);
    pthread_cond_init(&cp->cond, NULL);
    int rc = parley_thread_start(&cp->thread, "parley-ckpt", checkpointer_main, cp);
    if (rc) {
        pthread_mutex_destroy(&cp->lock);
        pthread_cond_destroy(&cp->cond);
        free(cp);
        return -rc;
    }
    parley_sqlite_wal_watch(store, on_wal, cp);
    *out = cp;
    return 0;
}

void parley_checkpointer_stop(parley_checkpointer_t *cp)
{
    if (!cp)
        return;
    atomic_store(&cp->cancel, true);
    pthread_mutex_lock(&cp->lock);
    cp->stopping = true;
    pthread_cond_signal(&cp->cond);
    pthread_mutex_unlock(&cp->lock);
    pthread_join(cp->thread, NULL);
    parley_sqlite_wal_watch(cp->store, NULL, NULL);
    pthread_mutex_destroy(&cp->lock);
    pthread_cond_destroy(&cp->cond);
    free(cp);
}

unsigned long parley_checkpointer_count(parley_checkpointer_t *cp)
{
    pthread_mutex_lock(&cp->lock);
    unsigned long n = cp->count;
    pthread_mutex_unlock(&cp->lock);
    return n;
}
