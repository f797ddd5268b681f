/*
 * app.c — the application object: per-thread readers, and deferral to the
 * writer and the hub over the transport's suspend/resume. The design, the
 * invariants (one resume per suspension; readers closed only by
 * parley_app_fini) and the threads are in app.h.
 *
 * Ordering that the invariants rest on: park() suspends with its hang-up
 * claim before parley_hub_wait(), so the watcher can only race a waiter
 * that is already in the hub, and parley_hub_cancel() decides who resumes;
 * a refused wait (a commit since gen, or the hub closed) resumes from this
 * thread, never from two places.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "parley/parley.h"

static __thread parley_db_t *tl_reader; /* this thread's reader connection */

void parley_app_init(parley_app_t *app)
{
    pthread_mutex_init(&app->readers_lock, NULL);
    app->nreaders = 0;
    pthread_mutex_init(&app->sse_lock, NULL);
    memset(app->sse, 0, sizeof app->sse);
}

void parley_app_fini(parley_app_t *app)
{
    for (int i = 0; i < app->nreaders; i++)
        parley_db_close(app->readers[i]);
    app->nreaders = 0;
    pthread_mutex_destroy(&app->readers_lock);
    for (int i = 0; i < PARLEY_APP_SSE_SLOTS; i++)
        free(app->sse[i].text);
    memset(app->sse, 0, sizeof app->sse);
    pthread_mutex_destroy(&app->sse_lock);
}

parley_db_t *parley_app_reader(parley_app_t *app)
{
    if (tl_reader)
        return tl_reader;
    parley_db_t *db = NULL;
    if (parley_store_reader(app->store, &db))
        return NULL;
    pthread_mutex_lock(&app->readers_lock);
    if (app->nreaders < PARLEY_APP_MAX_READERS) {
        app->readers[app->nreaders++] = db;
        tl_reader = db;
    }
    pthread_mutex_unlock(&app->readers_lock);
    if (!tl_reader) {
        parley_db_close(db);
        return NULL;
    }
    return db;
}

/* ---- the writer ------------------------------------------------------------ */

void parley_app_submit(parley_req_t *r, parley_write_t *w, parley_resume_fn on_resume)
{
    parley_req_suspend(r, on_resume, NULL);
    int rc = parley_writer_submit(r->app->writer, w);
    if (rc) {
        r->write_status = rc;
        parley_req_resume(r);
    }
}

void parley_app_write_done(parley_req_t *r, int status)
{
    r->write_status = status;
    parley_req_resume(r);
}

int parley_app_write_status(parley_req_t *r)
{
    return r->write_status;
}

/* ---- the hub ---------------------------------------------------------------- */

/* Hub thread (or the closing thread): the stream changed, the deadline
 * passed or the server stops. */
static void on_wake(parley_waiter_t *w, parley_wake_t why)
{
    parley_req_t *r = w->arg;
    atomic_store(&r->wake_reason, (int)why);
    parley_req_resume(r);
}

/* Watcher thread: the client hung up. The resume is the transport's only
 * if the waiter is still in the hub. */
static bool on_hangup_claim(parley_req_t *r)
{
    if (!parley_hub_cancel(r->app->hub, &r->waiter))
        return false;
    atomic_store(&r->wake_reason, (int)PARLEY_WAKE_GONE);
    return true;
}

static void park(parley_req_t *r, int64_t stream_id, int64_t deadline_ms, uint64_t gen,
                 parley_resume_fn on_resume)
{
    memset(&r->waiter, 0, sizeof r->waiter);
    r->waiter.stream_id = stream_id;
    r->waiter.deadline_ms = deadline_ms;
    r->waiter.on_wake = on_wake;
    r->waiter.arg = r;
    /* Watched for a hang-up from before the hub can wake it. */
    parley_req_suspend(r, on_resume, on_hangup_claim);
    int rc = parley_hub_wait(r->app->hub, &r->waiter, gen);
    if (rc) {
        atomic_store(&r->wake_reason,
                     (int)(rc == PARLEY_ECONFLICT ? PARLEY_WAKE_DATA : PARLEY_WAKE_SHUTDOWN));
        parley_req_resume(r);
    }
}

void parley_app_park(parley_req_t *r, int64_t stream_id, int64_t deadline_ms, uint64_t gen,
                     parley_resume_fn on_resume)
{
    park(r, stream_id, deadline_ms, gen, on_resume);
}

bool parley_app_park_stream(parley_req_t *r, int64_t stream_id, int64_t deadline_ms, uint64_t gen)
{
    /* Whether parked or resumed at once, refill() must return
     * PARLEY_BODY_PARKED now: the request stays suspended until the
     * resume is processed. */
    park(r, stream_id, deadline_ms, gen, NULL);
    return true;
}

parley_wake_t parley_app_wake_reason(parley_req_t *r)
{
    return (parley_wake_t)atomic_load(&r->wake_reason);
}
