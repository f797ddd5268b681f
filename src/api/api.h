/*
 * api.h — the HTTP API handlers, one entry point per resource.
 *
 * Each handler runs on an HTTP worker thread with a complete request
 * (headers and body) and answers through api/request.h: at once, after a
 * write is durable, or when a live read has something to say.
 */
#ifndef PARLEY_API_API_H
#define PARLEY_API_API_H

#include <stdbool.h>

#include "api/app.h"
#include "api/reply.h"
#include "core/stream.h"
#include "api/request.h"
#include "store/writer.h"

/* /v1/stream/{path}: the Durable Streams protocol. path is below the root. */
void parley_api_stream(parley_req_t *r, const char *path);

/* /v1/stream/__ds...: the reserved subscription APIs. rest follows "__ds". */
void parley_api_subscriptions(parley_req_t *r, const char *rest);

/* True for the __ds routes that carry no Parley credentials: the JWK Set
 * (public) and callback, ack and release (the wake's own token, checked by
 * the handler). path is the full request path. */
bool parley_api_subscriptions_is_public(const char *path);

/*
 * Read the stream at path (below the stream root) for r: catch-up,
 * long-poll or SSE per the query, or HEAD. Used by /v1/stream and by the
 * read-only views built on streams (/v1/events).
 */
void parley_api_stream_read(parley_req_t *r, const char *path, bool head);

/*
 * Parse an append's headers and body (Producer-*, Stream-Seq,
 * Stream-Closed, Content-Type) into q, and frame a JSON body off the writer
 * thread. NULL, or why the request is a 400 (static). Used by /v1/stream
 * and by the streams built on it (a session's output).
 */
const char *parley_api_stream_append_parse(parley_req_t *r, parley_stream_req_t *q);

/*
 * After the commit: a stream rule's outcome into rp (the status from
 * api/status.h with the stream overrides, the protocol's headers, the
 * error body for a refusal). Used by /v1/stream and a session's output.
 */
void parley_api_stream_render(const parley_outcome_t *o, parley_reply_t *rp);

/* /v1/events: the caller's change feed, a read-only JSON stream. */
void parley_api_events(parley_req_t *r);

/* /v1/documents/...: versioned JSON documents. rest is below /v1/documents/. */
void parley_api_documents(parley_req_t *r, const char *rest);

/* /v1/conversations...: conversations, messages, their logs and sessions.
 * rest is what follows /v1/conversations ("" or "/{id}..."). */
void parley_api_conversations(parley_req_t *r, const char *rest);

/*
 * Append one page of the message log *log (a conversation's, or a
 * snapshot's fork) to body as {"items": [...], "next_cursor": ...} per r's
 * ?after=, ?cursor= and ?limit=. db must be inside a read transaction.
 * 0, or after answering r with an error (body is then unused) PARLEY_EINVAL
 * (400) or the read's error (500).
 */
int parley_api_message_page(parley_req_t *r, parley_db_t *db, const parley_stream_t *log,
                            parley_buf_t *body);

/* /v1/sessions...: claim, session reads and actions, the token stream.
 * rest is what follows /v1/sessions. */
void parley_api_sessions(parley_req_t *r, const char *rest);

/* /v1/snapshots...: create, list, read, revoke. rest follows /v1/snapshots. */
void parley_api_snapshots(parley_req_t *r, const char *rest);

/* Blobs (api/blobs.c): /v1/blobs... (rest after "/v1/blobs"), and a blob a
 * snapshot references (/v1/snapshots/{sid}/blobs/{id}). */
void parley_api_blobs(parley_req_t *r, const char *rest);
void parley_api_snapshot_blob(parley_req_t *r, const char *sid, const char *id);
/* Whether a read may come without a token: a signed URL (sig=...) or a
 * snapshot's blob; the handler decides what it may see. */
bool parley_api_blobs_is_anonymous_read(parley_req_t *r, const char *method, const char *path);
/* The transport's body_streamed: POST /v1/blobs. */
bool parley_api_body_streamed(const char *method, const char *path, void *arg);

/* True for the reads anyone may try without a token (GET of one snapshot
 * or its messages); the handler decides who may see what. */
bool parley_api_snapshots_is_anonymous_read(const char *method, const char *path);

/*
 * The router (router.c): answer r, a complete request, with the right
 * handler (after CORS preflight, body limit and authentication). arg is
 * the application (parley_app_t), which the router attaches to r.
 * body_limit: the largest body a path takes (arg: the parley_app_t).
 */
void parley_api_route(parley_req_t *r, void *arg);
size_t parley_api_body_limit(const char *path, void *arg);

/* /healthz and /readyz. */
void parley_api_health(parley_req_t *r);

/* /console and /console/{file}: the embedded web console (console.c). */
bool parley_api_console_is_path(const char *path);
void parley_api_console(parley_req_t *r, const char *path);

#endif
