/*
 * metrics.h — what /metrics reports, counted where it happens, and the
 * access log.
 *
 * The transport reports every finished request (parley_api_request_done:
 * status, bytes, duration) and every connection that opens or closes
 * (parley_api_connection); handlers report Idempotency-Key replays and
 * live readers. Those are counted here in memory; the writer keeps its
 * own histograms (store/writer.h) and the store tells its sizes on
 * demand (the stat op, on a reader connection), so GET /metrics
 * (parley_api_metrics) gathers the lot when it is scraped.
 *
 * Cost on the hot path: a finished request is one relaxed atomic
 * addition on its (route, method, status class) counter and two on its
 * latency histogram, after a classification of its path by string
 * compares; no lock, no allocation. With --access-log, one line more
 * (util/log.h), built on the worker thread.
 *
 * Labels are bounded: the route is its pattern ("/v1/stream/{path}"),
 * never the path, the method one of eight, the status its class.
 *
 * Threads: every function from any thread once parley_metrics_create()
 * has returned; the struct lives as long as the server.
 */
#ifndef PARLEY_API_METRICS_H
#define PARLEY_API_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "api/request.h"

typedef struct parley_metrics parley_metrics_t;

/* What a live reader is (a gauge each). */
typedef enum parley_live_kind {
    PARLEY_LIVE_NONE = 0,  /* not a live read */
    PARLEY_LIVE_LONG_POLL, /* ?live=long-poll */
    PARLEY_LIVE_SSE,       /* ?live=sse */
    PARLEY_LIVE_KINDS,     /* number of kinds */
} parley_live_kind_t;

/* A new set of counters (all zero; the start time is now). */
int parley_metrics_create(parley_metrics_t **out);
/* Accepts NULL. */
void parley_metrics_free(parley_metrics_t *m);

/* r is now a live reader of this kind until it ends (the transport's
 * parley_api_request_done() counts it out). Once per request. */
void parley_metrics_live_begin(parley_req_t *r, parley_live_kind_t kind);
/* An Idempotency-Key replay was answered for r. */
void parley_metrics_replay(parley_req_t *r);
/* A webhook wake was given up (--webhook-max-age). m may be NULL; any thread. */
void parley_metrics_webhook_given_up(parley_metrics_t *m);

/*
 * The transport's hooks (arg is the parley_app_t). request_done: r has
 * ended (its response sent, or its client gone: status 0); bytes is the
 * body sent, us the time from its headers to its end. Runs on r's
 * worker thread, before the request is released. connection: +1 when a
 * connection opens, -1 when it closes.
 */
void parley_api_request_done(parley_req_t *r, int status, uint64_t bytes, uint64_t us, void *arg);
void parley_api_connection(int delta, void *arg);

/* GET /metrics (the router has checked who may read it). */
void parley_api_metrics(parley_req_t *r);

/* The route pattern of a path, a small index (0: no route), and its text. */
int parley_api_route_index(const char *path);
const char *parley_api_route_pattern(int index);
#define PARLEY_API_ROUTES 28 /* patterns parley_api_route_index() may return */

#endif
