/*
 * request.h — one HTTP request as API handlers see it: the interface the
 * transport implements.
 *
 * The API owns this interface; the HTTP transport (http/transport.c)
 * implements it (dependency inversion), so the API never includes the
 * transport and the transport knows no route, no store, no writer and no
 * hub. A transport's request embeds a parley_req_t as its first member and
 * points ops at its table; every parley_req_* call below is an inline
 * wrapper over one op.
 *
 * For each request the transport reads the headers and the whole body (up
 * to the route's limit), then calls the route once (api/router.c, which
 * sets app). A handler either answers at once (parley_req_respond...), or
 * defers with parley_req_suspend() and arranges for someone to call
 * parley_req_resume() later: the API does that for writes (api/app.h:
 * parley_app_submit() hands the write to the writer, whose done callback
 * resumes) and for live reads (parley_app_park(): a hub waiter whose wake
 * callback resumes).
 *
 * State machine of a request (the transport performs every transition; in
 * http/transport.c the function that does it is named on each arrow):
 *
 *     HEADERS --body (on_request)--> BODY --complete (on_request: route)--> HANDLE
 *     HANDLE  --respond (queue)--> DONE
 *     HANDLE  --suspend (t_suspend)--> WAITING
 *     WAITING --resume (t_resume, or on_hangup after a claim)--> RESUMED
 *     RESUMED --on_resume (on_request)--> HANDLE  (respond → DONE | suspend → WAITING)
 *     RESUMED --hang-up claimed (on_request)--> the connection closes
 *
 * A streamed body (parley_req_body_sink; http/transport.c on_stream): the
 * route runs once the headers are in, then
 *
 *     STREAM --part (sink)--> STREAM | WAITING (the sink suspended)
 *     RESUMED --on_resume, then the rest of the body--> STREAM
 *     STREAM --end of body (sink with no data)--> HANDLE
 *
 * A request suspended with a hang-up claim (parked live reads) is watched
 * for the client hanging up: the transport calls claim() on its watcher
 * thread, and if claim() returns true (the API took the request back from
 * whoever would have resumed it) the transport ends the request itself and
 * on_resume never runs.
 *
 * Invariants:
 *   1. Each parley_req_suspend() is followed by exactly one
 *      parley_req_resume() (or a successful hang-up claim), from any thread.
 *   2. A request and everything it points to live until the connection's
 *      response has completed; strings returned by the getters are borrowed
 *      for that long.
 *   3. The fields below ops belong to the API; the transport zeroes them
 *      when the request starts and never reads them.
 *
 * Threads: a request is touched by the HTTP worker thread that owns its
 * connection, except parley_req_resume() (any thread: the writer's done
 * callback, the hub's wake-up) and the API fields that thread sets before
 * resuming.
 */
#ifndef PARLEY_API_REQUEST_H
#define PARLEY_API_REQUEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/hub.h"
#include "util/buf.h"

struct sockaddr;
struct parley_app;
typedef struct parley_req parley_req_t;
typedef void (*parley_resume_fn)(parley_req_t *r);
/* Watcher thread: the client of a suspended request hung up. True if the
 * caller took the request back (nobody else will resume it). */
typedef bool (*parley_hangup_claim_fn)(parley_req_t *r);

enum {
    PARLEY_BODY_MORE = 0,   /* call again once this window is sent */
    PARLEY_BODY_PARKED = 1, /* suspended; call again after the resume */
    PARLEY_BODY_END = 2,    /* the body is complete after this window */
};
#define PARLEY_BODY_SIZE_UNKNOWN UINT64_MAX
typedef int (*parley_refill_fn)(void *arg, parley_buf_t *out, size_t room);
/*
 * A streamed body's consumer (routes whose body the transport does not
 * keep: parley_http_config_t.body_streamed). Called on the connection's
 * thread with the next bytes as they arrive (data borrowed for the call),
 * and once with NULL, 0 when the body is complete. Returns how many bytes
 * it took: fewer than len only after suspending the request (the rest is
 * offered again after the resume, whose on_resume runs first); or a
 * negative error, which closes the connection.
 */
typedef long (*parley_body_sink_fn)(parley_req_t *r, const char *data, size_t len);

/* What a transport implements; see the wrappers below for each op. */
typedef struct parley_req_ops {
    const char *(*method)(parley_req_t *r);                              /* request method */
    const char *(*path)(parley_req_t *r);                                /* decoded path */
    const char *(*header)(parley_req_t *r, const char *name);            /* request header */
    int (*query)(parley_req_t *r, const char *name, const char **value); /* query arg */
    const struct sockaddr *(*client_addr)(parley_req_t *r);              /* peer address */
    const char *(*body)(parley_req_t *r, size_t *len);                   /* request body */
    bool (*body_too_big)(parley_req_t *r);                               /* body over the limit */
    void (*set_allow_origin)(parley_req_t *r, const char *origin);       /* CORS */
    void (*add_header)(parley_req_t *r, const char *name, const char *value); /* stage */
    void (*respond)(parley_req_t *r, int status, const char *content_type, const void *body,
                    size_t len); /* answer (copied) */
    void (*respond_buf)(parley_req_t *r, int status, const char *content_type,
                        parley_buf_t *body);            /* answer (taken over) */
    void (*respond_empty)(parley_req_t *r, int status); /* headers only */
    void (*respond_window)(parley_req_t *r, int status, const char *content_type, uint64_t size,
                           parley_refill_fn refill, void *arg,
                           void (*free_fn)(void *)); /* windowed body */
    void (*suspend)(parley_req_t *r, parley_resume_fn on_resume,
                    parley_hangup_claim_fn claim);                /* defer */
    void (*resume)(parley_req_t *r);                              /* end a deferral */
    bool (*shutting_down)(parley_req_t *r);                       /* quiesced */
    void (*body_sink)(parley_req_t *r, parley_body_sink_fn sink); /* take a streamed body */
} parley_req_ops_t;

/* The interface part of a request: a transport's request starts with it. */
struct parley_req {
    const parley_req_ops_t *ops; /* the transport's implementation */
    /* The API's (see invariant 3): */
    struct parley_app *app;    /* the application answering it (set by the router) */
    char *user;                /* the authenticated caller's user id (owned), NULL
                                  before; a heap copy sized to it, not an inline
                                  array: an idle SSE reader keeps its request */
    bool admin;                /* the caller reaches every user's resources */
    void *data;                /* handler state */
    void (*free_data)(void *); /* frees data; run by parley_req_release() */
    int write_status;          /* from the writer's done callback (api/app.h) */
    _Atomic int wake_reason;   /* why a parked request was resumed (parley_wake_t) */
    parley_waiter_t waiter;    /* hub registration while parked */
    int live_kind;             /* a live reader's kind (api/metrics.h), counted until it ends */
};

/* The transport, when the request ends: free the API's state. */
void parley_req_release(parley_req_t *r);

static inline const char *parley_req_method(parley_req_t *r)
{
    return r->ops->method(r);
}
/* The decoded path, e.g. "/v1/stream/a/b". */
static inline const char *parley_req_path(parley_req_t *r)
{
    return r->ops->path(r);
}
/* A request header (case-insensitive), or NULL. */
static inline const char *parley_req_header(parley_req_t *r, const char *name)
{
    return r->ops->header(r, name);
}
/*
 * A decoded query argument: returns how many times name occurs (0 if
 * absent, *value = NULL), with *value the first occurrence; or -1 if an
 * occurrence holds a NUL byte (a decoded %00), which no parameter allows.
 */
static inline int parley_req_query(parley_req_t *r, const char *name, const char **value)
{
    return r->ops->query(r, name, value);
}
/* The peer's address (struct sockaddr_in or _in6), or NULL if unknown. */
static inline const struct sockaddr *parley_req_client_addr(parley_req_t *r)
{
    return r->ops->client_addr(r);
}
/* The request body (NUL-terminated for convenience). */
static inline const char *parley_req_body(parley_req_t *r, size_t *len)
{
    return r->ops->body(r, len);
}
/* The body was over the route's limit (and was not kept). */
static inline bool parley_req_body_too_big(parley_req_t *r)
{
    return r->ops->body_too_big(r);
}

/* The authenticated caller (see api/auth.h): the owning user id, and
 * whether it has admin rights. Borrowed for the request's life. */
static inline const char *parley_req_user(parley_req_t *r)
{
    return r->user ? r->user : "";
}
static inline bool parley_req_is_admin(parley_req_t *r)
{
    return r->admin;
}
/* Set by the router once the caller is authenticated (user is copied).
 * 0, or PARLEY_ENOMEM (the caller is then still unset). */
int parley_req_set_caller(parley_req_t *r, const char *user, bool admin);
/*
 * CORS: the Access-Control-Allow-Origin the response carries ("*", one
 * origin, borrowed for the request's life, or NULL for no CORS headers,
 * the default). Set by the router, which owns the policy.
 */
static inline void parley_req_set_allow_origin(parley_req_t *r, const char *origin)
{
    r->ops->set_allow_origin(r, origin);
}

/* Per-request state for the handler: set once, freed with free_fn. */
void parley_req_set_data(parley_req_t *r, void *data, void (*free_fn)(void *));
static inline void *parley_req_data(parley_req_t *r)
{
    return r->data;
}

/* Queue a response header (copied). */
static inline void parley_req_add_header(parley_req_t *r, const char *name, const char *value)
{
    r->ops->add_header(r, name, value);
}
/* Answer with a body (copied). content_type may be NULL. */
static inline void parley_req_respond(parley_req_t *r, int status, const char *content_type,
                                      const void *body, size_t len)
{
    r->ops->respond(r, status, content_type, body, len);
}
/* Answer with a body taken over from a buffer (freed by the server). */
static inline void parley_req_respond_buf(parley_req_t *r, int status, const char *content_type,
                                          parley_buf_t *body)
{
    r->ops->respond_buf(r, status, content_type, body);
}
/* HEAD: answer headers only (no body, no Content-Length of a body). */
static inline void parley_req_respond_empty(parley_req_t *r, int status)
{
    r->ops->respond_empty(r, status);
}
/* Answer with the error body {"error":{"code","message","details":{}}}. */
void parley_req_error(parley_req_t *r, int status, const char *code, const char *message);

/*
 * Answer with a body produced from the store a window at a time (catch-up,
 * long-poll data, SSE). refill() is called on the connection's thread each
 * time the previous window has been sent: it appends the next bytes to out
 * — about room bytes, the reader's share of the read budget; a little more
 * only for framing — and returns PARLEY_BODY_MORE, PARLEY_BODY_END (out
 * holds the last bytes, possibly none), PARLEY_BODY_PARKED (nothing now:
 * it suspended the request with parley_app_park_stream() and is called
 * again after the resume), or a negative error, which aborts the response
 * so the client sees it cut short (never a silent truncation). size is the
 * body's exact length, or PARLEY_BODY_SIZE_UNKNOWN (chunked). free_fn(arg)
 * runs when the response ends. A window that is not drained is the
 * client's fault: see http/budget.h for how slow consumers are
 * disconnected.
 */
static inline void parley_req_respond_window(parley_req_t *r, int status, const char *content_type,
                                             uint64_t size, parley_refill_fn refill, void *arg,
                                             void (*free_fn)(void *))
{
    r->ops->respond_window(r, status, content_type, size, refill, arg, free_fn);
}

/*
 * Defer the answer: the connection is suspended (no thread, no polling)
 * until parley_req_resume(); then on_resume runs on the connection's
 * thread (for a request without a windowed response; a windowed response
 * calls its refill() again instead). claim, if not NULL, asks the
 * transport to watch for the client hanging up meanwhile (see above).
 */
static inline void parley_req_suspend(parley_req_t *r, parley_resume_fn on_resume,
                                      parley_hangup_claim_fn claim)
{
    r->ops->suspend(r, on_resume, claim);
}
/* End the deferral begun by parley_req_suspend() (any thread, once). */
static inline void parley_req_resume(parley_req_t *r)
{
    r->ops->resume(r);
}

/*
 * A route whose body is streamed is called once its headers are in; it
 * answers at once (a refusal) or hands the body to sink, which then gets
 * it part by part (see parley_body_sink_fn). Connection's thread, from
 * the route only.
 */
static inline void parley_req_body_sink(parley_req_t *r, parley_body_sink_fn sink)
{
    r->ops->body_sink(r, sink);
}

/* True once the server has begun shutting down. */
static inline bool parley_req_shutting_down(parley_req_t *r)
{
    return r->ops->shutting_down(r);
}

#endif
