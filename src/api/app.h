/*
 * app.h — the application the API answers for: what every handler may use,
 * and the two ways a handler defers its answer.
 *
 * parley_app_t gathers the server-wide pieces handlers need (configuration,
 * store, writer, hub, keyring, rate limits) and the per-thread read-only
 * store connections. The server (server/server.c) fills it, the router
 * (api/router.c) attaches it to each request, and handlers reach it with
 * parley_api_app(r). The transport never sees it.
 *
 * NOTES ON THE DESIGN
 *
 * Deferral is built here from the transport's suspend/resume
 * (api/request.h), so the transport needs neither the writer nor the hub:
 *
 *   - parley_app_submit(): suspend, hand the write to the writer; its done
 *     callback calls parley_app_write_done(), which records the status and
 *     resumes (a refused submission resumes at once, on this thread);
 *   - parley_app_park(), parley_app_park_stream(): suspend with a hang-up
 *     claim, then register the request's hub waiter; the waiter's wake
 *     callback records why and resumes. A client hanging up meanwhile is
 *     claimed by cancelling the waiter, so exactly one party resumes.
 *
 * Invariants:
 *   1. A suspended request is resumed exactly once: by the writer's done
 *      callback, the hub's wake-up, this module when the writer or the hub
 *      refuses at once, or (hang-up) by the transport after a successful
 *      parley_hub_cancel().
 *   2. Reader connections are opened once per thread (at most
 *      PARLEY_APP_MAX_READERS) and closed only by parley_app_fini().
 *
 * Threads: the fields are set before the transport starts and read-only
 * afterwards; parley_app_reader() from HTTP worker threads;
 * parley_app_write_done() from the writer thread; wake callbacks from the
 * hub's threads.
 */
#ifndef PARLEY_API_APP_H
#define PARLEY_API_APP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/hub.h"
#include "api/request.h"
#include "store/store.h"
#include "store/writer.h"

#define PARLEY_APP_MAX_READERS 256 /* threads with a reader connection */

struct parley_config;
struct parley_keyring;
struct parley_ratelimit;
struct parley_metrics;
struct parley_visits;

/*
 * The last data event of a live stream, as SSE text, shared by its readers
 * (api/streams.c: sse_refill). A thousand SSE readers of one stream are
 * woken by each append; the first to look reads the new data from the
 * store and leaves the event here, and the others, at the same position
 * and the same hub generation (nothing committed since), copy it instead
 * of each running its own read transaction. Guarded by parley_app_t's
 * sse_lock.
 */
#define PARLEY_APP_SSE_SLOTS 64 /* streams cached at once (by id, direct-mapped) */
typedef struct parley_sse_slot {
    int64_t id;    /* the stream, 0 if the slot is empty */
    uint64_t gen;  /* hub generation read before the look-up that made it */
    uint64_t pos;  /* where the event starts */
    uint64_t tail; /* where it ends: the stream's tail at that look-up */
    char *text;    /* the data event, framed (owned; without the control event) */
    size_t len;    /* bytes in text */
} parley_sse_slot_t;

typedef struct parley_app {
    const struct parley_config *cfg;              /* configuration (borrowed) */
    parley_store_t *store;                        /* the store (borrowed) */
    parley_writer_t *writer;                      /* the writer thread (borrowed) */
    parley_hub_t *hub;                            /* the fan-out hub (borrowed) */
    const struct parley_keyring *keyring;         /* webhook signing key, token secret (borrowed) */
    struct parley_ratelimit *ratelimit;           /* request rate limits; NULL when all off */
    struct parley_metrics *metrics;               /* /metrics counters (owned by the server) */
    struct parley_visits *visits;                 /* snapshot visit limiter; NULL: not counted */
    unsigned char blob_key[32];                   /* signed blob URLs' HMAC key (core/blob.h) */
    pthread_mutex_t readers_lock;                 /* guards readers and nreaders */
    parley_db_t *readers[PARLEY_APP_MAX_READERS]; /* per-thread reader connections (owned) */
    int nreaders;                                 /* entries in readers */
    pthread_mutex_t sse_lock;                     /* guards sse */
    parley_sse_slot_t sse[PARLEY_APP_SSE_SLOTS];  /* live streams' last events */
} parley_app_t;

/* Prepare app's reader table (the other fields are the caller's). */
void parley_app_init(parley_app_t *app);
/* Close every reader connection. Only once no handler runs any more. */
void parley_app_fini(parley_app_t *app);

/* The application answering r (set by the router). */
static inline parley_app_t *parley_api_app(parley_req_t *r)
{
    return r->app;
}

/* This thread's read-only store connection (opened on first use), or NULL. */
parley_db_t *parley_app_reader(parley_app_t *app);

/*
 * Defer to the writer: w's done callback must call parley_app_write_done().
 * w's apply runs core only (api/write.c: parley_command_run).
 * on_resume runs on the connection's thread afterwards.
 */
void parley_app_submit(parley_req_t *r, parley_write_t *w, parley_resume_fn on_resume);
/* From a write's done callback (writer thread): wake the request. */
void parley_app_write_done(parley_req_t *r, int status);
/* The status passed to parley_app_write_done() (or the submission's error). */
int parley_app_write_status(parley_req_t *r);

/*
 * Long-poll: wait until stream_id changes or deadline_ms (monotonic)
 * passes. gen is the hub generation taken before the read that found
 * nothing. on_resume runs when woken; parley_app_wake_reason() says why
 * (PARLEY_WAKE_DATA also when something committed during the read).
 */
void parley_app_park(parley_req_t *r, int64_t stream_id, int64_t deadline_ms, uint64_t gen,
                     parley_resume_fn on_resume);
/*
 * SSE: from inside a refill() callback that has nothing to send, wait for
 * stream_id to change (or deadline_ms). Returns true: the caller returns
 * PARLEY_BODY_PARKED (the request is suspended, whether parked or already
 * resumed). parley_app_wake_reason() tells why refill() is called again.
 */
bool parley_app_park_stream(parley_req_t *r, int64_t stream_id, int64_t deadline_ms, uint64_t gen);
/* Why a parked request was resumed. */
parley_wake_t parley_app_wake_reason(parley_req_t *r);

#endif
