/*
 * api.h — the HTTP API handlers, one entry point per resource.
 *
 * Each handler runs on an HTTP worker thread with a complete request
 * (headers and body) and answers through http/request.h: at once, after a
 * write is durable, or when a live read has something to say.
 */
#ifndef PARLEY_API_API_H
#define PARLEY_API_API_H

#include "http/request.h"

/* /v1/stream/{path}: the Durable Streams protocol. path is below the root. */
void parley_api_stream(parley_req_t *r, const char *path);

/* /healthz and /readyz. */
void parley_api_health(parley_req_t *r);

#endif
