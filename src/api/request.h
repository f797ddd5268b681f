/*
 * request.h — one HTTP request as API handlers see it.
 *
 * The HTTP layer (transport.c) owns the libmicrohttpd daemon. For each request
 * it reads the headers and the whole body (up to the route's limit), then
 * calls the route's handler once. A handler either answers at once
 * (parley_req_respond...), or defers:
 *
 *   - parley_req_submit(): hand a write to the writer thread and suspend;
 *     when the write is durable (or has failed) the connection resumes and
 *     the request's on_resume callback builds the answer;
 *   - parley_req_park(): wait in the hub for a stream to change (long-poll);
 *     on a wake-up (data, timeout, shutdown) on_resume runs.
 *
 * State machine of a request (transport.c performs every transition):
 *
 *     HEADERS --body--> BODY --complete--> HANDLE --respond--> DONE
 *                                            |--submit--> WRITING --done--> RESUMED
 *                                            |--park----> PARKED  --wake--> RESUMED
 *     RESUMED --on_resume--> (respond → DONE | park → PARKED)
 *
 * Ownership: a request and everything it points to live until the
 * connection's response has completed; strings returned by the getters are
 * borrowed for that long. Threads: a request is touched by the HTTP worker
 * thread that owns its connection, except that the writer thread runs its
 * write's apply/done and the hub's threads its wake callback.
 */
#ifndef PARLEY_API_REQUEST_H
#define PARLEY_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/hub.h"
#include "store/store.h"
#include "store/writer.h"
#include "util/buf.h"

struct sockaddr;
typedef struct parley_req parley_req_t;
typedef struct parley_http parley_http_t;
typedef void (*parley_resume_fn)(parley_req_t *r);

/* The server-wide pieces a handler may use (all borrowed). */
typedef struct parley_ctx {
    const struct parley_config *cfg;      /* configuration */
    parley_store_t *store;                /* the store */
    parley_writer_t *writer;              /* the writer thread */
    parley_hub_t *hub;                    /* the fan-out hub */
    const struct parley_keyring *keyring; /* webhook signing key, token secret */
    struct parley_ratelimit *ratelimit;   /* request rate limits; NULL when all off */
} parley_ctx_t;

/* The context of the server handling r. */
const parley_ctx_t *parley_req_ctx(parley_req_t *r);

const char *parley_req_method(parley_req_t *r);
/* The decoded path, e.g. "/v1/stream/a/b". */
const char *parley_req_path(parley_req_t *r);
/* A request header (case-insensitive), or NULL. */
const char *parley_req_header(parley_req_t *r, const char *name);
/*
 * A decoded query argument: returns how many times name occurs (0 if
 * absent, *value = NULL), with *value the first occurrence; or -1 if an
 * occurrence holds a NUL byte (a decoded %00), which no parameter allows.
 */
int parley_req_query(parley_req_t *r, const char *name, const char **value);
/* The peer's address (struct sockaddr_in or _in6), or NULL if unknown. */
const struct sockaddr *parley_req_client_addr(parley_req_t *r);
/* The request body (NUL-terminated for convenience). */
const char *parley_req_body(parley_req_t *r, size_t *len);

/* The authenticated caller (see api/auth.h): the owning user id, and
 * whether it has admin rights. Borrowed for the request's life. */
const char *parley_req_user(parley_req_t *r);
bool parley_req_is_admin(parley_req_t *r);
/* Set by the router once the caller is authenticated. */
void parley_req_set_caller(parley_req_t *r, const char *user, bool admin);
/*
 * CORS: the Access-Control-Allow-Origin the response carries ("*", one
 * origin, borrowed for the request's life, or NULL for no CORS headers,
 * the default). Set by the router, which owns the policy.
 */
void parley_req_set_allow_origin(parley_req_t *r, const char *origin);
/* The body was over the route's limit (and was not kept). */
bool parley_req_body_too_big(parley_req_t *r);

/* This thread's read-only store connection (opened on first use). */
parley_db_t *parley_req_reader(parley_req_t *r);

/* Per-request state for the handler: set once, freed with free_fn. */
void parley_req_set_data(parley_req_t *r, void *data, void (*free_fn)(void *));
void *parley_req_data(parley_req_t *r);

/* Queue a response header (copied). */
void parley_req_add_header(parley_req_t *r, const char *name, const char *value);

/* Answer with a body (copied). content_type may be NULL. */
void parley_req_respond(parley_req_t *r, int status, const char *content_type, const void *body,
                        size_t len);
/* Answer with a body taken over from a buffer (freed by the server). */
void parley_req_respond_buf(parley_req_t *r, int status, const char *content_type,
                            parley_buf_t *body);
/* Answer with the error body {"error":{"code","message","details":{}}}. */
void parley_req_error(parley_req_t *r, int status, const char *code, const char *message);
/* HEAD: answer headers only (no body, no Content-Length of a body). */
void parley_req_respond_empty(parley_req_t *r, int status);

/*
 * Answer with a body produced from the store a window at a time (catch-up,
 * long-poll data, SSE). refill() is called on the connection's thread each
 * time the previous window has been sent: it appends the next bytes to out
 * — about room bytes, the reader's share of the read budget; a little more
 * only for framing — and returns PARLEY_BODY_MORE, PARLEY_BODY_END (out
 * holds the last bytes, possibly none), PARLEY_BODY_PARKED (nothing now:
 * it parked with parley_req_park_stream() and is called again after the
 * wake-up), or a negative error, which aborts the response so the client
 * sees it cut short (never a silent truncation). size is the body's exact
 * length, or PARLEY_BODY_SIZE_UNKNOWN (chunked). free_fn(arg) runs when
 * the response ends. A window that is not drained is the client's fault:
 * see http/budget.h for how slow consumers are disconnected.
 */
enum {
    PARLEY_BODY_MORE = 0,   /* call again once this window is sent */
    PARLEY_BODY_PARKED = 1, /* parked; call again after the wake-up */
    PARLEY_BODY_END = 2,    /* the body is complete after this window */
};
#define PARLEY_BODY_SIZE_UNKNOWN UINT64_MAX
typedef int (*parley_refill_fn)(void *arg, parley_buf_t *out, size_t room);
void parley_req_respond_window(parley_req_t *r, int status, const char *content_type, uint64_t size,
                               parley_refill_fn refill, void *arg, void (*free_fn)(void *));

/*
 * Defer to the writer: w's done callback must call parley_req_write_done().
 * on_resume runs on the connection's thread afterwards.
 */
void parley_req_submit(parley_req_t *r, parley_write_t *w, parley_resume_fn on_resume);
/* From a write's done callback (writer thread): wake the request. */
void parley_req_write_done(parley_req_t *r, int status);
/* The status passed to parley_req_write_done(). */
int parley_req_write_status(parley_req_t *r);

/*
 * Long-poll: wait until stream_id changes or deadline_ms (monotonic)
 * passes. gen is the hub generation taken before the read that found
 * nothing. on_resume runs when woken; parley_req_wake_reason() says why
 * (PARLEY_WAKE_DATA also when something committed during the read).
 */
void parley_req_park(parley_req_t *r, int64_t stream_id, int64_t deadline_ms, uint64_t gen,
                     parley_resume_fn on_resume);
parley_wake_t parley_req_wake_reason(parley_req_t *r);

/*
 * SSE: from inside a refill() callback that has nothing to send, wait for
 * stream_id to change (or deadline_ms). Returns true if the caller should
 * return PARLEY_BODY_PARKED (parked); false if it must read again at once.
 * parley_req_wake_reason() tells why refill() is being called again.
 */
bool parley_req_park_stream(parley_req_t *r, int64_t stream_id, int64_t deadline_ms, uint64_t gen);

/* True once the server has begun shutting down. */
bool parley_req_shutting_down(parley_req_t *r);

#endif
