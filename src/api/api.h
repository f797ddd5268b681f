/*
 * api.h — the HTTP API handlers, one entry point per resource.
 *
 * Each handler runs on an HTTP worker thread with a complete request
 * (headers and body) and answers through http/request.h: at once, after a
 * write is durable, or when a live read has something to say.
 */
#ifndef PARLEY_API_API_H
#define PARLEY_API_API_H

#include <stdbool.h>

#include "http/request.h"

/* /v1/stream/{path}: the Durable Streams protocol. path is below the root. */
void parley_api_stream(parley_req_t *r, const char *path);

/*
 * Read the stream at path (below the stream root) for r: catch-up,
 * long-poll or SSE per the query, or HEAD. Used by /v1/stream and by the
 * read-only views built on streams (/v1/events).
 */
void parley_api_stream_read(parley_req_t *r, const char *path, bool head);

/* /v1/events: the caller's change feed, a read-only JSON stream. */
void parley_api_events(parley_req_t *r);

/* /v1/documents/...: versioned JSON documents. rest is below /v1/documents/. */
void parley_api_documents(parley_req_t *r, const char *rest);

/* /healthz and /readyz. */
void parley_api_health(parley_req_t *r);

#endif
