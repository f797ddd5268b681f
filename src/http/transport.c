/*
 * transport.c — the HTTP transport: the libmicrohttpd daemon, the request
 * lifecycle, suspend/resume, responses. It implements the request
 * interface the API owns (api/request.h) and knows no route, no store, no
 * writer and no hub: every complete request goes to the route callback it
 * was started with (api/router.c), and a handler that defers suspends the
 * request and has it resumed by whoever it waits on (api/app.h).
 *
 * NOTES ON THE DESIGN
 *
 * Threads. libmicrohttpd runs a pool of worker threads (one per core by
 * default), each with its own epoll set; a connection stays on one worker
 * for its life. Handlers run on that worker. A handler that defers (a
 * write waiting for the writer, a live read parked in the hub) suspends
 * the connection, costing no thread and no polling, and it is resumed from
 * the other thread when there is something to say. Idle live connections
 * therefore cost only their socket and their request state.
 *
 * Request lifecycle: see the state machine in api/request.h. The body is
 * read completely before the handler runs, bounded by the route's limit; a
 * body over the limit is drained (so the client sees the 413 instead of a
 * reset while it is still uploading) unless it is absurdly large (a
 * declared length, or a chunked body once it passes DRAIN_FACTOR times the
 * limit), which closes the connection at once.
 *
 * The edge (check_head, run once the headers are in, before any handler):
 * a request whose framing is ambiguous (Content-Length together with
 * Transfer-Encoding, two Content-Lengths, a transfer coding other than
 * chunked: RFC 9112 6.1 and 6.3) is answered 400/501 and its connection
 * closed, so nothing behind it on the connection is ever served; request
 * headers over HEADER_LIMIT get a JSON 431; and every text of the request
 * (path, query keys and values, header names and values) must be valid
 * UTF-8 without control characters, else 400. Handlers and core code can
 * therefore build JSON from any of it. An answer given before the body is
 * read makes libmicrohttpd close the connection after it, and the client,
 * still sending, would see a reset instead of the answer: so a streamed
 * body's route that answers early (401, 411, 413, 507 before the upload is
 * read) has its answer held until the rest of the body has been read and
 * dropped, within the same DRAIN_FACTOR bound (queue, on_stream).
 *
 * Two libmicrohttpd 0.9.75 epoll-mode gaps are closed here (each with its
 * measurement at the function): a response cut short from the content
 * reader of a resumed connection is ended by shutting the socket down
 * (cut_short), because the reader's error return leaves the closed
 * connection unfreed; and a FIN read together with the last part of an
 * incomplete body is looked for after each part (peer_has_closed),
 * because the edge-triggered loop never reads again to see it.
 *
 * Shutdown is driven by the server (server/server.c): quiesce (no new
 * connections; answers say Connection: close), then the hub and the writer
 * answer every parked and queued request, then parley_http_stop(). No
 * connection is suspended when the daemon stops, as libmicrohttpd requires.
 *
 * Invariants:
 *   1. A connection is suspended only by its own worker (t_suspend), and
 *      is resumed exactly once per suspension: by t_resume (called by the
 *      writer's done callback, the hub's wake-up, or the worker itself when
 *      deferral failed) or by on_hangup after a successful claim.
 *   2. A request's memory is freed only in on_completed, which cannot run
 *      while the connection is suspended.
 *   3. A connection suspended with a hang-up claim has its socket in the
 *      watcher (http/watch.h) from before t_suspend returns (so before the
 *      suspender registers anywhere it can be resumed from) until it is
 *      resumed, and it is removed from the watcher before
 *      MHD_resume_connection(). The resume goes to whoever wins the claim:
 *      the suspender's resume, or the watcher when the claim callback
 *      (api/app.c: parley_hub_cancel()) returns true; then the request ends
 *      at once without its on_resume.
 */
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/request.h"
#include "http/budget.h"
#include "http/transport.h"
#include "http/watch.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/utf8.h"

#define MAX_HEADERS  24          /* response headers a handler may add */
#define STAGED_MAX   (16 * 1024) /* bytes of staged headers at most */
#define DRAIN_FACTOR 4           /* drain bodies up to this many times the limit */
#define HEADER_LIMIT (8 * 1024)  /* request line and headers accepted (431 above) */
/* Per-connection memory of libmicrohttpd: it bounds the header block it can
 * read (a block past about POOL_SIZE gets its own HTML 431, between
 * HEADER_LIMIT and there ours, in JSON; see README), and an idle SSE
 * connection keeps a good half of it resident: libmicrohttpd 0.9.75 reads
 * into half the pool and zeroes the unused part of that half when the
 * request is in, so those pages are touched. Measured per idle SSE reader
 * at 10,000 (bench W6): 22.8 KiB with a 32 KiB pool, 12.9 with 12 KiB,
 * 11.9 with 10 KiB, 10.6 with 8 KiB. An idle reader now gives the zeroed
 * pages back (release_pool()): 6.6 KiB in all with 10 KiB. */
#define POOL_SIZE (10 * 1024)
/* The libmicrohttpd release whose pool layout release_pool() relies on. */
#define POOL_LAYOUT_VERSION "0.9.75"

typedef enum {
    REQ_BODY,    /* reading the body */
    REQ_STREAM,  /* a streamed body: handing it to the sink */
    REQ_HANDLE,  /* body complete, handler not yet run */
    REQ_WAITING, /* suspended: writing or parked */
    REQ_RESUMED, /* resumed: on_resume must run */
    REQ_DONE,    /* response queued */
} req_state_t;

struct parley_http {
    parley_http_config_t cfg;  /* configuration (copied; strings borrowed) */
    struct MHD_Daemon *daemon; /* the HTTP daemon */
    atomic_bool stopping;      /* shutdown has begun */
    atomic_int inflight;       /* requests not yet completed */
    int quiesced_fd;           /* listening socket handed back by quiesce, or -1 */
    parley_watch_t *watch;     /* notices parked clients hanging up */
    parley_budget_t *budget;   /* readers' pending output */
    size_t page;               /* the memory page size, for release_pool() */
    bool pool_release;         /* libmicrohttpd is the release whose pool
                                  layout release_pool() knows */
};

/* Fields grouped by size (pointers, then 8-byte counters, then the small
 * ones), so padding costs nothing: every request has one, for its life. */
typedef struct http_req {
    parley_req_t base;            /* the interface (api/request.h); first */
    parley_http_t *srv;           /* the server */
    struct MHD_Connection *conn;  /* the connection */
    const char *method;           /* borrowed from libmicrohttpd */
    const char *path;             /* decoded URL path, borrowed */
    const char *allow_origin;     /* CORS: Access-Control-Allow-Origin, or NULL */
    struct MHD_Response *held;    /* an answer given before the body ended,
                                     queued once it has been read (see queue) */
    struct window_resp *window;   /* its windowed response, if any */
    parley_resume_fn on_resume;   /* what to run after a resume */
    parley_hangup_claim_fn claim; /* the suspender's hang-up claim, or NULL */
    parley_body_sink_fn sink;     /* the streamed body's consumer, once set */
    parley_buf_t body;            /* the request body */
    /* Response headers a handler staged, packed ("name\0value\0" per
     * header): allocated by the first parley_req_add_header() and freed as
     * soon as the response is queued (libmicrohttpd holds its own copies),
     * so a request that lives on (an SSE reader) keeps none of it. */
    parley_buf_t staged;
    parley_watch_entry_t watch; /* hang-up watch while suspended */
    size_t limit;               /* the route's body limit */
    uint64_t received;          /* body bytes received (kept or not) */
    uint64_t declared;          /* Content-Length, or UINT64_MAX if none */
    uint64_t sent;              /* body bytes handed to libmicrohttpd */
    int64_t start_us;           /* monotonic time its headers were in */
    _Atomic req_state_t state;  /* api/request.h; atomic: see on_stream */
    int status;                 /* the status queued, 0 before (for the done hook) */
    atomic_bool gone;           /* the client hung up while suspended */
    bool too_big;               /* body over the limit (drained) */
    bool close;                 /* answer with Connection: close */
    bool watched;               /* suspended with a hang-up watch */
    bool streamed;              /* the body goes to sink, not to body */
    bool sink_ended;            /* the sink was told the body is complete */
    bool body_ended;            /* the whole body has been received */
    bool http10;                /* an HTTP/1.0 request (no chunked answer) */
    bool pool_tried;            /* release_pool() ran for it */
    unsigned char nstaged;      /* headers in staged */
} http_req_t;

static const parley_req_ops_t http_req_ops;

/* The transport's request behind the interface. */
static http_req_t *H(parley_req_t *req)
{
    return (http_req_t *)req;
}

static const char expose_headers[] =
    "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, "
    "Stream-Expires-At, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, "
    "Producer-Received-Seq, Stream-SSE-Data-Encoding, ETag, Location, Content-Type, Allow, "
    "Idempotent-Replayed, Retry-After";

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- request accessors -------------------------------------------------- */

static void t_set_allow_origin(parley_req_t *req, const char *origin)
{
    http_req_t *r = H(req);
    r->allow_origin = origin;
}

static bool t_body_too_big(parley_req_t *req)
{
    http_req_t *r = H(req);
    return r->too_big;
}

static const char *t_method(parley_req_t *req)
{
    http_req_t *r = H(req);
    return r->method;
}

static const char *t_path(parley_req_t *req)
{
    http_req_t *r = H(req);
    return r->path;
}

static const char *t_header(parley_req_t *req, const char *name)
{
    http_req_t *r = H(req);
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

typedef struct query_scan {
    const char *name;  /* wanted key */
    const char *first; /* first value */
    int count;         /* occurrences */
    bool nul;          /* a value holds a NUL byte */
} query_scan_t;

static enum MHD_Result on_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                size_t key_size, const char *value, size_t value_size)
{
    query_scan_t *q = cls;
    (void)kind, (void)key_size;
    if (key && strcmp(key, q->name) == 0) {
        if (q->count++ == 0)
            q->first = value ? value : "";
        if (value && strlen(value) != value_size)
            q->nul = true;
    }
    return MHD_YES;
}

static int t_query(parley_req_t *req, const char *name, const char **value)
{
    http_req_t *r = H(req);
    query_scan_t q = {name, NULL, 0, false};
    MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, on_query, &q);
    *value = q.first;
    return q.nul ? -1 : q.count;
}

static const struct sockaddr *t_client_addr(parley_req_t *req)
{
    http_req_t *r = H(req);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci ? ci->client_addr : NULL;
}

static const char *t_body(parley_req_t *req, size_t *len)
{
    http_req_t *r = H(req);
    *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

static bool t_shutting_down(parley_req_t *req)
{
    http_req_t *r = H(req);
    return atomic_load(&r->srv->stopping);
}

/* ---- responses ----------------------------------------------------------- */

static void t_add_header(parley_req_t *req, const char *name, const char *value)
{
    http_req_t *r = H(req);
    size_t nl = strlen(name) + 1, vl = strlen(value) + 1;
    /* Past MAX_HEADERS or STAGED_MAX (handlers stage a few short headers,
     * never this much), or out of memory: the header is dropped. */
    if (r->nstaged == MAX_HEADERS || parley_buf_reserve(&r->staged, nl + vl) != 0)
        return;
    parley_buf_append(&r->staged, name, nl);
    parley_buf_append(&r->staged, value, vl);
    r->nstaged++;
}

static void queue(http_req_t *r, int status, struct MHD_Response *resp, const char *content_type)
{
    if (!resp) {
        parley_log_error("http: cannot allocate a response");
        r->state = REQ_DONE;
        return;
    }
    if (r->close || atomic_load(&r->srv->stopping))
        MHD_add_response_header(resp, "Connection", "close");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "cross-origin");
    if (r->allow_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->allow_origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", expose_headers);
        if (strcmp(r->allow_origin, "*") != 0)
            MHD_add_response_header(resp, "Vary", "Origin");
    }
    if (content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    /* The response holds its own copies: the staged ones go now, not when
     * the request ends (an SSE reader would keep them for its life). */
    if (r->nstaged) {
        const char *p = r->staged.data;
        for (int i = 0; i < r->nstaged; i++) {
            const char *value = p + strlen(p) + 1;
            MHD_add_response_header(resp, p, value);
            p = value + strlen(value) + 1;
        }
        parley_buf_free(&r->staged);
        r->nstaged = 0;
    }
    r->status = status;
    r->state = REQ_DONE;
    if (r->streamed && !r->body_ended && !r->close &&
        (r->declared == UINT64_MAX || r->declared / DRAIN_FACTOR <= r->limit)) {
        r->held = resp; /* queued by on_stream once the body is read */
        return;
    }
    MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
}

/* Queue the answer held until the body was read (queue). */
static enum MHD_Result queue_held(http_req_t *r)
{
    struct MHD_Response *resp = r->held;
    r->held = NULL;
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void t_respond(parley_req_t *req, int status, const char *content_type, const void *body,
                      size_t len)
{
    http_req_t *r = H(req);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(len ? body : ""), MHD_RESPMEM_MUST_COPY);
    r->sent = len;
    queue(r, status, resp, content_type);
}

static void t_respond_buf(parley_req_t *req, int status, const char *content_type,
                          parley_buf_t *body)
{
    http_req_t *r = H(req);
    size_t len;
    char *data = parley_buf_steal(body, &len);
    struct MHD_Response *resp;
    if (data)
        resp = MHD_create_response_from_buffer_with_free_callback(len, data, free);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    r->sent = data ? len : 0;
    queue(r, status, resp, content_type);
}

static void t_respond_empty(parley_req_t *req, int status)
{
    http_req_t *r = H(req);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    queue(r, status, resp, NULL);
}

/*
 * A windowed response: the body is produced by refill() one window at a
 * time into pending, and handed to libmicrohttpd as it asks for it. The
 * window's size comes from the budget (http/budget.h), which is told how
 * much is still unsent after every step, so a client that stops reading
 * holds one window at most and can be disconnected.
 */
typedef struct window_resp {
    parley_http_t *srv;           /* the server */
    http_req_t *r;                /* the request, NULL once it completed (the
                                     response may outlive it; both ends run on
                                     the connection's thread) */
    parley_refill_fn refill;      /* produces the next window */
    void *arg;                    /* for refill */
    void (*free_fn)(void *);      /* frees arg */
    parley_buf_t pending;         /* the window: bytes produced, not yet sent */
    size_t sent;                  /* of pending */
    bool ended;                   /* refill() said PARLEY_BODY_END */
    int fd;                       /* the connection's socket (libmicrohttpd's;
                                     open whenever it calls on_window_read) */
    parley_budget_entry_t budget; /* this reader in the budget */
} window_resp_t;

/* libmicrohttpd's buffer for a windowed response (allocated with the
 * response, for its whole life). A body of unknown size goes out chunked
 * to an HTTP/1.1 client, each chunk built in the connection's own buffer
 * (libmicrohttpd 0.9.75 caps a chunk at 16 MiB, not at this block), so
 * the block is never used and gets the least libmicrohttpd accepts; only
 * an HTTP/1.0 client, which gets no chunked answer, reads through it. */
#define WINDOW_BLOCK         (4 * 1024)
#define WINDOW_BLOCK_HTTP10  256
#define WINDOW_BLOCK_CHUNKED 1
#define WINDOW_SLACK         1024 /* room for what refill() adds past its window */
#define READER_NOTSENT_LOWAT PARLEY_BUDGET_MIN_WINDOW /* unsent bytes the kernel may queue */

/*
 * Cut a windowed response short (the client hung up while it was parked,
 * or refill() failed): the connection must close, and its socket with it.
 *
 * Returning MHD_CONTENT_READER_END_WITH_ERROR does not do that reliably.
 * libmicrohttpd 0.9.75 marks the connection closed and calls on_completed,
 * but when the reader runs from its idle handler -- which is where the
 * reader of a resumed connection runs -- it leaves the loop without moving
 * the connection to its clean-up list, and in epoll mode nothing visits it
 * again until it happens to be the oldest connection of its worker when
 * an event wakes that worker: its socket stays open for seconds, or for
 * the 120 s connection timeout. Measured in the churn test: SSE readers
 * that reset while parked, resumed by the watcher, kept their descriptors
 * 3 s after the clients left.
 *
 * So shut the socket down and hand libmicrohttpd one byte instead: its
 * send fails and its ordinary failed-send path (the one a client closing
 * mid-response takes) closes and frees the connection on the worker's
 * next turn. The byte never reaches the client, which sees the connection
 * end without the response's proper end.
 */
static ssize_t cut_short(window_resp_t *s, char *buf, size_t max)
{
    if (s->fd < 0 || max == 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    shutdown(s->fd, SHUT_RDWR);
    buf[0] = '\n';
    return 1;
}

/*
 * Hand back to the kernel the pages of the connection's memory pool that
 * hold nothing any more, once its windowed response first parks (an idle
 * live reader: W6 in bench/README.md).
 *
 * libmicrohttpd 0.9.75 gives each connection a pool of POOL_SIZE bytes
 * (malloc'd: it is under 32 KiB) and reads a request into its first half.
 * When the answer starts it shrinks the read buffer to what it holds, and
 * shrinking zeroes the rest of that half, so those pages are resident for
 * the connection's life although nothing is in them; the answer's headers
 * and chunks are built just after the request, and the request's header
 * entries are taken from the pool's end. Measured per idle SSE reader at
 * 10,000: the pool was about 9 KiB of the 11 resident.
 *
 * What is released, and why it is safe:
 *   1. Only whole pages from the end of the request's head to the pool's
 *      end, and among them only pages that read as all zero: releasing a
 *      zero page of private anonymous memory (MADV_DONTNEED) changes
 *      nothing its owner can see, since it reads back as zeros and is
 *      faulted in again on the next write. Pages with the request, its
 *      header entries, or bytes the answer wrote are kept.
 *   2. The pool must start exactly at the request line, so that the range
 *      ends inside the pool: the connection received, in all, exactly the
 *      request's head and body (TCP_INFO's byte count). Then the request is
 *      the connection's first, with nothing before it (libmicrohttpd skips
 *      empty lines there) and nothing after it, and libmicrohttpd read it
 *      from the pool's start. Otherwise nothing is released.
 *   3. It runs on the connection's own thread, inside libmicrohttpd's call
 *      for the body, when the connection's output buffer has been sent
 *      (it asks for body only then), and no other thread touches the pool.
 *   4. Only with libmicrohttpd 0.9.75 (checked at start: the layout above
 *      is that release's), and once per request.
 */
static void release_pool(http_req_t *r)
{
    parley_http_t *srv = r->srv;
    const union MHD_ConnectionInfo *head =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (!head || !ci || !r->method ||
        getsockopt(ci->connect_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return;
    if (ti.tcpi_bytes_received != (uint64_t)head->header_size + r->received)
        return; /* see 2. */
    uintptr_t start = (uintptr_t)r->method;
    uintptr_t mask = (uintptr_t)srv->page - 1;
    uintptr_t lo = (start + head->header_size + mask) & ~mask;
    uintptr_t end = (start + POOL_SIZE) & ~mask;
    uintptr_t run = 0; /* start of the zero pages not yet released */
    for (uintptr_t p = lo; p + srv->page <= end; p += srv->page) {
        const uint64_t *w = (const uint64_t *)p;
        bool zero = true;
        for (size_t i = 0; zero && i < srv->page / sizeof *w; i++)
            zero = w[i] == 0;
        if (zero && !run)
            run = p;
        if (!zero && run) {
            (void)madvise((void *)run, p - run, MADV_DONTNEED);
            run = 0;
        }
    }
    if (run)
        (void)madvise((void *)run, end - run, MADV_DONTNEED);
}

static ssize_t on_window_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    window_resp_t *s = cls;
    parley_budget_t *budget = s->srv->budget;
    (void)pos;
    if (atomic_load(&s->r->gone))
        return cut_short(s, buf, max); /* hung up while parked */
    if (s->sent == s->pending.len) {
        parley_buf_free(&s->pending);
        s->sent = 0;
        if (s->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        for (;;) {
            size_t room = parley_budget_grant(budget, &s->budget);
            /* One allocation of exactly the window's size, not a chain of
             * doublings (which would leave every size behind in the
             * allocator); refill() may still grow it for framing. */
            if (!s->pending.data) {
                s->pending.data = malloc(room + WINDOW_SLACK);
                if (!s->pending.data)
                    return cut_short(s, buf, max);
                s->pending.cap = room + WINDOW_SLACK;
                s->pending.len = 0;
                s->pending.data[0] = '\0';
            }
            int rc = s->refill(s->arg, &s->pending, room);
            parley_budget_hold(budget, &s->budget, s->pending.len);
            if (rc < 0)
                return cut_short(s, buf, max); /* the client sees the response end early */
            if (rc == PARLEY_BODY_END) {
                s->ended = true;
                if (!s->pending.len)
                    return MHD_CONTENT_READER_END_OF_STREAM;
                break;
            }
            if (rc == PARLEY_BODY_PARKED) {
                if (s->r && !s->r->pool_tried && s->srv->pool_release) {
                    s->r->pool_tried = true;
                    release_pool(s->r); /* idle from here on, most likely */
                }
                parley_buf_free(&s->pending); /* an idle reader holds no window */
                return 0;                     /* suspended: its resume (or the watcher) wakes it */
            }
            if (s->pending.len)
                break;
        }
    }
    size_t n = s->pending.len - s->sent;
    if (n > max)
        n = max;
    memcpy(buf, s->pending.data + s->sent, n);
    s->sent += n;
    if (s->r)
        s->r->sent += n;
    parley_budget_hold(budget, &s->budget, s->pending.len - s->sent);
    if (s->sent == s->pending.len) {
        /* Drained: free the window now. A client that stops reading right
         * here must not keep it (the memory a window touched stays resident
         * until it is freed, and the budget counts only unsent bytes). */
        parley_buf_free(&s->pending);
        s->sent = 0;
    }
    return (ssize_t)n;
}

static void on_window_free(void *cls)
{
    window_resp_t *s = cls;
    parley_budget_remove(s->srv->budget, &s->budget);
    if (s->r) /* the request still lives: forget this response */
        s->r->window = NULL;
    if (s->free_fn)
        s->free_fn(s->arg);
    parley_buf_free(&s->pending);
    free(s);
}

static void t_respond_window(parley_req_t *req, int status, const char *content_type, uint64_t size,
                             parley_refill_fn refill, void *arg, void (*free_fn)(void *))
{
    http_req_t *r = H(req);
    window_resp_t *s = calloc(1, sizeof *s);
    if (!s) {
        if (free_fn)
            free_fn(arg);
        parley_req_error(req, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    s->srv = r->srv;
    s->r = r;
    s->refill = refill;
    s->arg = arg;
    s->free_fn = free_fn;
    /* A window plus what refill() may add past its room (SSE framing). */
    parley_buf_init(&s->pending, SIZE_MAX / 2);
    /* A body of unknown size goes out chunked (HTTP/1.1), which
     * libmicrohttpd builds in the connection's own buffer: the response's
     * block is then never used (but allocated and zeroed, for the
     * response's whole life). */
    size_t block = size != PARLEY_BODY_SIZE_UNKNOWN ? WINDOW_BLOCK
                   : r->http10                      ? WINDOW_BLOCK_HTTP10
                                                    : WINDOW_BLOCK_CHUNKED;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        size == PARLEY_BODY_SIZE_UNKNOWN ? MHD_SIZE_UNKNOWN : size, block, on_window_read, s,
        on_window_free);
    if (!resp) {
        if (free_fn)
            free_fn(arg);
        free(s);
        parley_req_error(req, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    if (s->fd >= 0) {
        /* The kernel's send buffer grows to megabytes (tcp_wmem) for a
         * client that does not read: its window would drain into the
         * kernel, where the budget cannot see it or take it back. Bound the
         * unsent bytes the kernel queues; what stays unsent is the
         * window's, counted by the budget (bytes in flight are not
         * limited, so a fast client over a long path is not slowed). */
        int lowat = READER_NOTSENT_LOWAT;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    }
    parley_budget_add(r->srv->budget, &s->budget, s->fd);
    r->window = s;
    queue(r, status, resp, content_type);
}

/* ---- deferral: suspend and resume ---------------------------------------- */

/* Watcher thread, its lock held: the client hung up. The resume is ours
 * only if the suspender gives the request up. */
static bool on_hangup_claim(parley_watch_entry_t *e)
{
    http_req_t *r = e->arg;
    return r->claim(&r->base);
}

/* Watcher thread, after a successful claim: resume so the request ends. */
static void on_hangup(parley_watch_entry_t *e)
{
    http_req_t *r = e->arg;
    atomic_store(&r->gone, true);
    r->state = REQ_RESUMED;
    MHD_resume_connection(r->conn);
}

/* Watch the suspended connection's socket for a hang-up (best effort: a
 * connection that cannot be watched is still resumed by its suspender). */
static void watch_suspended(http_req_t *r)
{
    r->watch.claim = on_hangup_claim;
    r->watch.gone = on_hangup;
    r->watch.arg = r;
    r->watch.fd = -1;
    r->watched = true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && parley_watch_add(r->srv->watch, &r->watch, ci->connect_fd))
        parley_log_warn("http: a parked connection cannot be watched for hang-ups");
}

static void t_suspend(parley_req_t *req, parley_resume_fn on_resume, parley_hangup_claim_fn claim)
{
    http_req_t *r = H(req);
    r->on_resume = on_resume;
    r->claim = claim;
    r->watched = false;
    r->state = REQ_WAITING;
    MHD_suspend_connection(r->conn);
    if (claim)
        watch_suspended(r); /* before anyone can resume it: see invariant 3 */
}

static void t_resume(parley_req_t *req)
{
    http_req_t *r = H(req);
    if (r->watched)
        parley_watch_remove(r->srv->watch, &r->watch);
    r->state = REQ_RESUMED;
    MHD_resume_connection(r->conn);
}

static void t_body_sink(parley_req_t *req, parley_body_sink_fn sink)
{
    http_req_t *r = H(req);
    r->sink = sink;
}

static const parley_req_ops_t http_req_ops = {
    .method = t_method,
    .path = t_path,
    .header = t_header,
    .query = t_query,
    .client_addr = t_client_addr,
    .body = t_body,
    .body_too_big = t_body_too_big,
    .set_allow_origin = t_set_allow_origin,
    .add_header = t_add_header,
    .respond = t_respond,
    .respond_buf = t_respond_buf,
    .respond_empty = t_respond_empty,
    .respond_window = t_respond_window,
    .suspend = t_suspend,
    .resume = t_resume,
    .shutting_down = t_shutting_down,
    .body_sink = t_body_sink,
};
/* ---- the edge: framing, size and text of a request's head ---------------- */

typedef struct head_scan {
    size_t bytes;           /* request line and header fields, as sent (about) */
    int clen;               /* Content-Length fields */
    bool clen_differ;       /* two Content-Lengths with different values */
    const char *clen_first; /* the first Content-Length value */
    int tenc;               /* Transfer-Encoding fields */
    bool tenc_other;        /* a transfer coding other than "chunked" */
    bool bad_text;          /* a name or value that is not UTF-8 text */
} head_scan_t;

/* Valid UTF-8 without control characters (HTAB allowed in header values). */
static bool is_text(const char *s, size_t n, bool tab_ok)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(tab_ok && c == '\t')) || c == 0x7f)
            return false;
    }
    return parley_utf8_is_valid(s, n);
}

static enum MHD_Result on_head_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size)
{
    head_scan_t *h = cls;
    if (!value)
        value = "";
    h->bytes += key_size + value_size + 4;
    if (kind == MHD_GET_ARGUMENT_KIND) {
        /* Decoded query text; a decoded %00 is 0x7f (on_unescape), which
         * the parameter checks refuse with their own message. */
        if (!parley_utf8_is_valid(key, key_size) || !parley_utf8_is_valid(value, value_size))
            h->bad_text = true;
        return MHD_YES;
    }
    if (!is_text(key, key_size, false) || !is_text(value, value_size, true))
        h->bad_text = true;
    if (strcasecmp(key, "Content-Length") == 0) {
        if (h->clen++ && strcmp(value, h->clen_first) != 0)
            h->clen_differ = true;
        else if (h->clen == 1)
            h->clen_first = value;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        h->tenc++;
        if (strcasecmp(value, "chunked") != 0)
            h->tenc_other = true;
    }
    return MHD_YES;
}

/*
 * Check a request's head once its headers are in. 0 if it may proceed;
 * otherwise the status to answer with and *code, *msg for the JSON error.
 */
static int check_head(struct MHD_Connection *conn, const char *url, const char *method,
                      const char **code, const char **msg)
{
    head_scan_t h = {0};
    h.bytes = strlen(url) + strlen(method) + 12;
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, on_head_value, &h);
    if (h.bytes > HEADER_LIMIT) {
        *code = "headers_too_large";
        *msg = "the request line and headers are over the limit of 8192 bytes";
        return 431;
    }
    if (h.clen && h.tenc) {
        *code = "bad_framing";
        *msg = "a request may not carry both Content-Length and Transfer-Encoding";
        return 400;
    }
    if (h.clen_differ) {
        *code = "bad_framing";
        *msg = "the request carries Content-Length more than once, with different values";
        return 400;
    }
    if (h.tenc > 1 || h.tenc_other) {
        *code = "unsupported_transfer_encoding";
        *msg = "the only transfer coding accepted on a request is a single 'chunked'";
        return 501;
    }
    if (h.bad_text || !is_text(method, strlen(method), false) ||
        !parley_utf8_is_valid(url, strlen(url))) {
        *code = "invalid_text";
        *msg = "the request's path, query and header values must be valid UTF-8 without "
               "control characters";
        return 400;
    }
    return 0;
}

/* Answer at once and close the connection (nothing after this request on
 * it is read: libmicrohttpd closes a connection answered before its body). */
static void refuse(http_req_t *r, int status, const char *code, const char *msg)
{
    r->state = REQ_HANDLE;
    r->close = true;
    parley_req_error(&r->base, status, code, msg);
}

/* ---- libmicrohttpd callbacks ---------------------------------------------- */

/* A new connection: no Nagle delay. A response goes out in several writes
 * (headers, then the body as libmicrohttpd asks for it, then the chunked
 * trailer); with Nagle on, a small last write waits for the client's
 * delayed ACK, which costs a small read tens of milliseconds. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    parley_http_t *srv = cls;
    (void)socket_context;
    if (srv->cfg.connection)
        srv->cfg.connection(code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1, srv->cfg.arg);
    if (code != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int one = 1;
    if (ci)
        (void)setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/*
 * Whether the client has closed its side of the connection (a FIN is
 * queued behind everything read so far), seen without reading anything.
 *
 * libmicrohttpd 0.9.75's epoll loop is edge-triggered and takes a read
 * that returns less than it asked for as "nothing more for now": it
 * waits for the next edge. When the client's FIN arrived together with
 * (or just before) the last bytes of a read, no edge follows, the end of
 * input is never seen and the connection sits in CLOSE-WAIT until the
 * 120 s connection timeout. Measured in the churn test: about 10 of 3,000
 * clients that half-close in the middle of a body, all among the first
 * ones, whose bytes and FIN were read in one go by a busy worker. So
 * on_request looks after each part of a body that is not yet the whole
 * declared length (a half-close there can only be an abandoned upload;
 * after a whole body it may be a client that still waits for the answer).
 */
static bool peer_has_closed(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char c;
    return ci && recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/*
 * A streamed body (cfg.body_streamed): each part goes to the route's sink
 * as it arrives; a sink that suspended the request (its part is being
 * written) leaves the rest in libmicrohttpd's buffer, which offers it
 * again after the resume, so at most one read buffer and the sink's own
 * part are held. A call with no data after the headers is the end of the
 * body. Once the request is answered, the rest of the body is dropped.
 * libmicrohttpd may call this again after the sink suspended the request,
 * while the writer resumes it: r->state is atomic for that.
 */
static enum MHD_Result on_stream(http_req_t *r, const char *data, size_t *size)
{
    if (r->held) { /* answered early: read the body to its end, then answer */
        if (*size == 0) {
            r->body_ended = true;
            return queue_held(r);
        }
        r->received += *size;
        *size = 0;
        if (r->declared != UINT64_MAX && r->received < r->declared && peer_has_closed(r->conn))
            return MHD_NO; /* the rest can never come, nor the answer be read */
        /* A chunked body that keeps coming: answer now, and close. */
        return r->received / DRAIN_FACTOR > r->limit ? queue_held(r) : MHD_YES;
    }
    if (r->state == REQ_RESUMED) {
        if (atomic_load(&r->gone))
            return MHD_NO;
        r->state = REQ_HANDLE;
        r->on_resume(&r->base);
        if (r->state == REQ_HANDLE && !r->sink_ended && r->sink)
            r->state = REQ_STREAM;
    }
    if (r->state != REQ_STREAM) {
        *size = 0; /* answered: the rest is not read */
        return MHD_YES;
    }
    if (*size == 0) {
        r->sink_ended = true;
        r->body_ended = true;
        r->state = REQ_HANDLE;
        return r->sink(&r->base, NULL, 0) < 0 ? MHD_NO : MHD_YES;
    }
    long took = r->sink(&r->base, data, *size);
    if (took < 0 || (size_t)took > *size)
        return MHD_NO;
    r->received += (uint64_t)took;
    *size -= (size_t)took;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    parley_http_t *srv = cls;
    http_req_t *r = *con_cls;

    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->base.ops = &http_req_ops;
        r->srv = srv;
        r->conn = conn;
        r->method = method;
        r->path = url;
        r->http10 = strcmp(version, MHD_HTTP_VERSION_1_0) == 0;
        r->state = REQ_BODY;
        r->limit = srv->cfg.body_limit(url, srv->cfg.arg);
        r->declared = UINT64_MAX;
        r->start_us = mono_us();
        parley_buf_init(&r->body, r->limit);
        parley_buf_init(&r->staged, STAGED_MAX);
        *con_cls = r;
        atomic_fetch_add(&srv->inflight, 1);
        const char *code, *msg;
        int status = check_head(conn, url, method, &code, &msg);
        if (status) {
            refuse(r, status, code, msg);
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl)
            r->declared = strtoull(cl, NULL, 10);
        if (srv->cfg.body_streamed && srv->cfg.body_streamed(method, url, srv->cfg.arg)) {
            r->streamed = true;
            r->state = REQ_HANDLE;
            srv->cfg.route(&r->base, srv->cfg.arg);
            if (r->state == REQ_HANDLE && r->sink)
                r->state = REQ_STREAM;
            return MHD_YES;
        }
        if (cl) {
            uint64_t n = r->declared;
            if (n > r->limit && n / DRAIN_FACTOR > r->limit) {
                /* Too large to be worth draining: answer and close. */
                r->too_big = true;
                r->state = REQ_HANDLE;
                srv->cfg.route(&r->base, srv->cfg.arg);
            }
        }
        return MHD_YES;
    }

    if (r->streamed)
        return on_stream(r, upload_data, upload_data_size);
    if (*upload_data_size) {
        r->received += *upload_data_size;
        if (r->state == REQ_BODY && !r->too_big &&
            parley_buf_append(&r->body, upload_data, *upload_data_size) != 0) {
            r->too_big = true;
            parley_buf_free(&r->body);
        }
        *upload_data_size = 0;
        /* A body without a declared length (chunked) that keeps coming:
         * past DRAIN_FACTOR times the limit it is not worth draining. */
        if (r->too_big && r->received / DRAIN_FACTOR > r->limit)
            return MHD_NO; /* closes the connection */
        if (r->declared != UINT64_MAX && r->received < r->declared && peer_has_closed(conn))
            return MHD_NO; /* the rest of the body can never come: close */
        return MHD_YES;
    }

    switch (r->state) {
    case REQ_BODY:
        r->state = REQ_HANDLE;
        srv->cfg.route(&r->base, srv->cfg.arg);
        break;
    case REQ_RESUMED:
        if (atomic_load(&r->gone))
            return MHD_NO; /* the client hung up while parked: close */
        r->state = REQ_HANDLE;
        r->on_resume(&r->base);
        break;
    default:
        break;
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    parley_http_t *srv = cls;
    http_req_t *r = *con_cls;
    (void)conn;
    if (!r)
        return;
    if (r->window) { /* before the socket can close (the response may live on) */
        parley_budget_remove(srv->budget, &r->window->budget);
        r->window->r = NULL;
    }
    if (srv->cfg.done) {
        /* A response cut short (or never sent) tells no status. */
        int status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0;
        srv->cfg.done(&r->base, status, r->sent, (uint64_t)(mono_us() - r->start_us), srv->cfg.arg);
    }
    parley_req_release(&r->base);
    if (r->held)
        MHD_destroy_response(r->held);
    parley_buf_free(&r->staged);
    parley_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->inflight, 1);
}

/*
 * Percent-decode the URL path and query values. A decoded NUL (%00) would
 * silently cut a C string short ("a%00b" would name "a"), so it becomes
 * DEL (0x7f) instead, which every validator rejects as a control
 * character.
 */
static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    size_t n = MHD_http_unescape(s);
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0')
            s[i] = 0x7f;
    return n;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    /* A client that goes away mid-response (an SSE reader closing its tab,
     * an aborted long-poll) is normal, not worth a line per connection. */
    if (strstr(line, "Failed to send") || strstr(line, "closed by remote") ||
        strstr(line, "no longer available") || strstr(line, "Connection reset"))
        return;
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    parley_log_warn("http: %s", line);
}

/* ---- start and stop ------------------------------------------------------ */

static int start_daemon(parley_http_t *srv, unsigned *port_out)
{
    const parley_http_config_t *cfg = &srv->cfg;
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    const char *host = strcmp(cfg->host, "localhost") == 0 ? "127.0.0.1" : cfg->host;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        parley_log_error("cannot listen on '%s': give a numeric IPv4 or IPv6 address", cfg->host);
        return PARLEY_EINVAL;
    }
    unsigned threads = cfg->threads;
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 2;
    }
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)POOL_SIZE, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        srv, MHD_OPTION_END);
    if (!srv->daemon) {
        parley_log_error("cannot listen on %s:%u: %s", cfg->host, cfg->port,
                         strerror(errno ? errno : EADDRINUSE));
        return PARLEY_EINVAL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info ? info->port : cfg->port;
    return 0;
}

int parley_http_start(const parley_http_config_t *cfg, parley_http_t **out, unsigned *port)
{
    parley_http_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return PARLEY_ENOMEM;
    srv->cfg = *cfg;
    srv->quiesced_fd = -1;
    long page = sysconf(_SC_PAGESIZE);
    srv->page = page > 0 ? (size_t)page : 4096;
    srv->pool_release = strcmp(MHD_get_version(), POOL_LAYOUT_VERSION) == 0;
    int rc = parley_watch_create(&srv->watch);
    if (rc) {
        free(srv);
        return rc;
    }
    rc = parley_budget_create(cfg->read_budget, cfg->read_window, &srv->budget);
    if (rc) {
        parley_watch_destroy(srv->watch);
        free(srv);
        return rc;
    }
    rc = start_daemon(srv, port);
    if (rc) {
        parley_budget_destroy(srv->budget);
        parley_watch_destroy(srv->watch);
        free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

/* libmicrohttpd hands the listening socket back to the caller here and
 * never closes it; it may be closed only after MHD_stop_daemon() (a worker
 * may still hold it), so parley_http_stop() does. */
void parley_http_quiesce(parley_http_t *srv)
{
    atomic_store(&srv->stopping, true);
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET && srv->quiesced_fd < 0)
        srv->quiesced_fd = fd;
}

int parley_http_inflight(parley_http_t *srv)
{
    return atomic_load(&srv->inflight);
}

void parley_http_stop(parley_http_t *srv)
{
    if (!srv)
        return;
    MHD_stop_daemon(srv->daemon);
    if (srv->quiesced_fd >= 0)
        close(srv->quiesced_fd);
    parley_watch_destroy(srv->watch);
    parley_budget_destroy(srv->budget);
    free(srv);
}
