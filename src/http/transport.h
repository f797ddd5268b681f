/*
 * transport.h — the HTTP transport's lifecycle (the request interface it
 * implements for the API is api/request.h).
 *
 * The transport reads each request's headers and body and hands the
 * complete request to route() on one of its worker threads; it knows no
 * path itself. body_limit() says, before the body is read, how large a
 * body the route accepts.
 *
 * Threads: start/quiesce/stop from the thread that runs the server; the
 * callbacks run on the HTTP worker threads.
 */
#ifndef PARLEY_HTTP_TRANSPORT_H
#define PARLEY_HTTP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/request.h"

typedef struct parley_http parley_http_t;

typedef struct parley_http_config {
    const char *host;                                  /* numeric address to bind (borrowed) */
    unsigned port;                                     /* port; 0 picks a free one */
    unsigned threads;                                  /* worker threads; 0 = one per core */
    unsigned max_connections;                          /* connection limit */
    size_t read_window;                                /* most pending output one reader holds */
    size_t read_budget;                                /* pending output of all readers together */
    void (*route)(parley_req_t *r, void *arg);         /* handle a complete request */
    size_t (*body_limit)(const char *path, void *arg); /* largest body for a path */
    /* Whether a request's body is streamed to its route (which is then
     * called once the headers are in, and takes the body through
     * parley_req_body_sink) instead of kept whole. NULL: never. */
    bool (*body_streamed)(const char *method, const char *path, void *arg);
    /* A request ended (before its release): the status sent (0: none, the
     * client left), body bytes sent, microseconds since its headers. NULL:
     * not told. On the request's worker thread. */
    void (*done)(parley_req_t *r, int status, uint64_t bytes, uint64_t us, void *arg);
    /* A connection opened (+1) or closed (-1). NULL: not told. Worker threads. */
    void (*connection)(int delta, void *arg);
    void *arg; /* for route, body_limit, done and connection */
} parley_http_config_t;

/* Start listening; *port is the port bound. 0 or PARLEY_EINVAL (the
 * address cannot be bound; logged). */
int parley_http_start(const parley_http_config_t *cfg, parley_http_t **out, unsigned *port);
/* Stop accepting connections; answers from now on close theirs. */
void parley_http_quiesce(parley_http_t *http);
/* Requests received and not yet completed. */
int parley_http_inflight(parley_http_t *http);
/* Stop the daemon (no connection may be suspended), free. Accepts NULL. */
void parley_http_stop(parley_http_t *http);

#endif
