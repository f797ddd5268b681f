/*
 * test_transport.c — unit tests for http/transport.c: the real
 * libmicrohttpd daemon on a loopback port picked by the kernel (port 0),
 * with a stub route in place of the API's router (the route and
 * body_limit callbacks of parley_http_config_t are the seam), driven by
 * raw sockets.
 *
 *   1. body limits: a body up to the limit reaches the route; one over it
 *      is drained and answered 413 on a connection that stays usable, up
 *      to DRAIN_FACTOR (4) times the limit; past that a declared length
 *      is answered 413 at once and the connection closed, and a chunked
 *      body closes the connection;
 *   2. a request suspended by its handler is answered only when another
 *      thread resumes it, many at once and in any order;
 *   3. a windowed (SSE) response sends the window its refill() filled,
 *      then parks with nothing sent until the resume, then ends;
 *   4. a client that resets its parked connection is noticed: the hang-up
 *      claim runs, the request completes and its response state is freed
 *      without any resume;
 *   5. quiesce: no new connection is served, an answer from then on says
 *      Connection: close, a parked request is still answered; stop with
 *      an idle keep-alive connection open closes it, and leaves no
 *      descriptor behind.
 *
 * Threads: the daemon's workers run the stub route; the watcher thread
 * runs the hang-up claim; the test's own threads resume.
 */
#define _GNU_SOURCE /* memmem */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/request.h"
#include "http/transport.h"
#include "parley/parley.h"
#include "util/buf.h"

#define BODY_LIMIT 1000       /* the stub's body limit, every path */
#define WINDOW     (64 << 10) /* read_window */
#define WAIT_MS    5000       /* longest wait for anything the server should do */

/* ---- the stub route ------------------------------------------------------------------ */

#define MAX_PARKED 16

typedef struct stub {
    pthread_mutex_t lock;             /* guards the fields below but the atomics */
    pthread_cond_t cond;              /* signalled when parked changes */
    parley_req_t *parked[MAX_PARKED]; /* suspended requests waiting for a resume */
    int nparked;                      /* entries in parked */
    size_t room;                      /* room of the first SSE refill */
    size_t filled;                    /* bytes the first SSE refill produced */
    atomic_int refills;               /* SSE refill calls */
    atomic_int claims;                /* hang-up claims that took a request back */
    atomic_int freed;                 /* windowed responses freed */
    atomic_bool saw_shutdown;         /* a resumed handler saw shutting_down */
} stub_t;

static stub_t stub = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void stub_reset(void)
{
    pthread_mutex_lock(&stub.lock);
    stub.nparked = 0;
    stub.room = stub.filled = 0;
    atomic_store(&stub.refills, 0);
    atomic_store(&stub.claims, 0);
    atomic_store(&stub.freed, 0);
    atomic_store(&stub.saw_shutdown, false);
    pthread_mutex_unlock(&stub.lock);
}

/* Publish r (already suspended) for the test to resume. */
static void stub_park(parley_req_t *r)
{
    pthread_mutex_lock(&stub.lock);
    assert_true(stub.nparked < MAX_PARKED);
    stub.parked[stub.nparked++] = r;
    pthread_cond_broadcast(&stub.cond);
    pthread_mutex_unlock(&stub.lock);
}

/* Take r back from the parked list: true if it was there (whoever takes
 * it owns its one resume), as the hub's cancel does. */
static bool stub_take(parley_req_t *r)
{
    bool found = false;
    pthread_mutex_lock(&stub.lock);
    for (int i = 0; i < stub.nparked; i++)
        if (stub.parked[i] == r) {
            stub.parked[i] = stub.parked[--stub.nparked];
            found = true;
            break;
        }
    pthread_mutex_unlock(&stub.lock);
    return found;
}

/* Wait until n requests are parked; false after WAIT_MS. */
static bool stub_wait_parked(int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&stub.lock);
    while (stub.nparked < n)
        if (pthread_cond_timedwait(&stub.cond, &stub.lock, &until) != 0)
            break;
    bool ok = stub.nparked >= n;
    pthread_mutex_unlock(&stub.lock);
    return ok;
}

/* Watcher thread: the client of a parked request hung up. */
static bool on_claim(parley_req_t *r)
{
    if (!stub_take(r))
        return false; /* a resume is already on its way */
    atomic_fetch_add(&stub.claims, 1);
    return true;
}

static void on_resume(parley_req_t *r)
{
    if (parley_req_shutting_down(r))
        atomic_store(&stub.saw_shutdown, true);
    parley_req_respond(r, 200, "text/plain", "resumed", 7);
}

typedef struct sse {
    parley_req_t *r; /* its request */
    int step;        /* 0: fill a window, 1: park, 2: end */
} sse_t;

static int sse_refill(void *arg, parley_buf_t *out, size_t room)
{
    sse_t *s = arg;
    atomic_fetch_add(&stub.refills, 1);
    switch (s->step++) {
    case 0: /* fill the window with events of 64 bytes */
        while (out->len < room) {
            char ev[65];
            snprintf(ev, sizeof ev, "data: %056zu\n\n", out->len);
            if (parley_buf_append(out, ev, 64))
                return PARLEY_ENOMEM;
        }
        pthread_mutex_lock(&stub.lock);
        stub.room = room;
        stub.filled = out->len;
        pthread_mutex_unlock(&stub.lock);
        return PARLEY_BODY_MORE;
    case 1: /* nothing new: park, watched for a hang-up */
        parley_req_suspend(s->r, NULL, on_claim);
        stub_park(s->r);
        return PARLEY_BODY_PARKED;
    default:
        return parley_buf_puts(out, "data: end\n\n") ? PARLEY_ENOMEM : PARLEY_BODY_END;
    }
}

static void sse_free(void *arg)
{
    free(arg);
    atomic_fetch_add(&stub.freed, 1);
}

/*
 *   /body   answers 200 "got <n>" with the body's length, or 413 when it
 *           was over the limit (as api/router.c does)
 *   /defer  suspends without a hang-up claim; the resume answers 200
 *   /park   suspends with a hang-up claim; the resume answers 200
 *   /sse    a windowed response: a full window, then parked, then one
 *           more event after the resume
 */
static void route(parley_req_t *r, void *arg)
{
    (void)arg;
    const char *path = parley_req_path(r);
    if (parley_req_body_too_big(r)) {
        parley_req_error(r, 413, "payload_too_large", "request body is over the limit");
        return;
    }
    if (strcmp(path, "/defer") == 0 || strcmp(path, "/park") == 0) {
        parley_req_suspend(r, on_resume, path[1] == 'p' ? on_claim : NULL);
        stub_park(r);
    } else if (strcmp(path, "/sse") == 0) {
        sse_t *s = calloc(1, sizeof *s);
        assert_non_null(s);
        s->r = r;
        parley_req_respond_window(r, 200, "text/event-stream", PARLEY_BODY_SIZE_UNKNOWN, sse_refill,
                                  s, sse_free);
    } else {
        char text[32];
        size_t len;
        (void)parley_req_body(r, &len);
        snprintf(text, sizeof text, "got %zu", len);
        parley_req_respond(r, 200, "text/plain", text, strlen(text));
    }
}

static size_t body_limit(const char *path, void *arg)
{
    (void)path, (void)arg;
    return BODY_LIMIT;
}

/* ---- the server --------------------------------------------------------------------------- */

typedef struct fixture {
    parley_http_t *http; /* the transport */
    unsigned port;       /* its port */
} fixture_t;

/* Start the transport on a free port. */
static void start(fixture_t *fx)
{
    parley_http_config_t cfg = {
        .host = "127.0.0.1",
        .port = 0,
        .threads = 2,
        .max_connections = 64,
        .read_window = WINDOW,
        .read_budget = 16 * WINDOW,
        .route = route,
        .body_limit = body_limit,
    };
    stub_reset();
    assert_int_equal(parley_http_start(&cfg, &fx->http, &fx->port), 0);
    assert_true(fx->port > 0);
}

static int transport_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    start(fx);
    *state = fx;
    return 0;
}

static int transport_teardown(void **state)
{
    fixture_t *fx = *state;
    parley_req_t *left[MAX_PARKED];
    int n;
    /* A failed case may leave requests suspended, which the daemon may
     * not be stopped with: resume them first. */
    pthread_mutex_lock(&stub.lock);
    n = stub.nparked;
    memcpy(left, stub.parked, sizeof left);
    stub.nparked = 0;
    pthread_mutex_unlock(&stub.lock);
    for (int i = 0; i < n; i++)
        parley_req_resume(left[i]);
    parley_http_stop(fx->http);
    free(fx);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the transport has n requests in flight; false after WAIT_MS. */
static bool wait_inflight(fixture_t *fx, int n)
{
    for (int64_t end = now_ms() + WAIT_MS; now_ms() < end; usleep(2000))
        if (parley_http_inflight(fx->http) == n)
            return true;
    return parley_http_inflight(fx->http) == n;
}

static bool wait_count(atomic_int *v, int n)
{
    for (int64_t end = now_ms() + WAIT_MS; now_ms() < end; usleep(2000))
        if (atomic_load(v) == n)
            return true;
    return atomic_load(v) == n;
}

/* ---- the client ---------------------------------------------------------------------------- */

typedef struct client {
    int fd;            /* the connection */
    char buf[1 << 17]; /* bytes read and not yet consumed */
    size_t len;        /* of buf */
} client_t;

typedef struct response {
    int status;         /* HTTP status */
    bool close;         /* Connection: close */
    bool chunked;       /* Transfer-Encoding: chunked */
    char type[64];      /* Content-Type */
    char body[1 << 17]; /* the body (NUL-terminated) */
    size_t len;         /* of body */
} response_t;

static client_t *dial(fixture_t *fx)
{
    client_t *c = calloc(1, sizeof *c);
    struct sockaddr_in a;
    struct timeval tv = {WAIT_MS / 1000, 0};
    assert_non_null(c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)fx->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

static void hang_up(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* Reset the connection (RST, not FIN) and free c. */
static void reset(client_t *c)
{
    struct linger l = {1, 0};
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
    hang_up(c);
}

/* Send everything; 0, or -1 once the server has closed the connection. */
static int send_all(client_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void send_text(client_t *c, const char *text)
{
    assert_int_equal(send_all(c, text, strlen(text)), 0);
}

/* Read more into c->buf: bytes read, 0 at the end, -1 on a reset or the
 * timeout. */
static ssize_t fill(client_t *c)
{
    assert_true(c->len < sizeof c->buf);
    ssize_t n;
    do
        n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static void consume(client_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Take n bytes of body into out (if not NULL); -1 if the connection ends first. */
static int take(client_t *c, size_t n, char *out)
{
    while (c->len < n)
        if (fill(c) <= 0)
            return -1;
    if (out)
        memcpy(out, c->buf, n);
    consume(c, n);
    return 0;
}

/* A line ending in CRLF into out (without it); -1 if the connection ends first. */
static int take_line(client_t *c, char *out, size_t cap)
{
    char *eol;
    while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
        if (fill(c) <= 0)
            return -1;
    size_t n = (size_t)(eol - c->buf);
    assert_true(n < cap);
    memcpy(out, c->buf, n);
    out[n] = '\0';
    consume(c, n + 2);
    return 0;
}

/* Read a response's head into rp; -1 if the connection ends first. */
static int read_head(client_t *c, response_t *rp)
{
    char line[1024];
    memset(rp, 0, sizeof *rp);
    if (take_line(c, line, sizeof line) || sscanf(line, "HTTP/1.1 %d", &rp->status) != 1)
        return -1;
    for (;;) {
        if (take_line(c, line, sizeof line))
            return -1;
        if (!line[0])
            return 0;
        if (strcasecmp(line, "Connection: close") == 0)
            rp->close = true;
        else if (strcasecmp(line, "Transfer-Encoding: chunked") == 0)
            rp->chunked = true;
        else if (strncasecmp(line, "Content-Type: ", 14) == 0)
            snprintf(rp->type, sizeof rp->type, "%.63s", line + 14);
        else if (strncasecmp(line, "Content-Length: ", 16) == 0)
            rp->len = strtoul(line + 16, NULL, 10);
    }
}

/* Read one chunk of a chunked body onto rp->body: its size (0: the last),
 * or -1 if the connection ends first. */
static long read_chunk(client_t *c, response_t *rp)
{
    char line[64];
    if (take_line(c, line, sizeof line))
        return -1;
    size_t n = strtoul(line, NULL, 16);
    assert_true(rp->len + n < sizeof rp->body);
    if (take(c, n, rp->body + rp->len) || take_line(c, line, sizeof line))
        return -1;
    rp->len += n;
    rp->body[rp->len] = '\0';
    return (long)n;
}

/* Read a whole response; -1 if the connection ends first. */
static int read_response(client_t *c, response_t *rp)
{
    if (read_head(c, rp))
        return -1;
    if (!rp->chunked) {
        size_t n = rp->len;
        assert_true(n < sizeof rp->body);
        if (take(c, n, rp->body))
            return -1;
        rp->body[n] = '\0';
        return 0;
    }
    rp->len = 0;
    long n;
    while ((n = read_chunk(c, rp)) > 0)
        ;
    return n < 0 ? -1 : 0;
}

/* True if nothing arrives on c within ms. */
static bool quiet_for(client_t *c, int ms)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    return c->len == 0 && poll(&p, 1, ms) == 0;
}

/* True if the server ends the connection (FIN or reset) within WAIT_MS,
 * with nothing more to read before that. */
static bool ends(client_t *c)
{
    if (c->len)
        return false;
    ssize_t n = fill(c);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* ---- 1. body limits ----------------------------------------------------------------------- */

static void transport_body_limit_table(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        bool chunked; /* Transfer-Encoding: chunked, else Content-Length */
        size_t size;  /* body bytes */
        int status;   /* the answer, 0 when the connection just closes */
        bool stays;   /* the connection serves the next request */
    } cases[] = {
        {false, 0, 200, true},
        {false, BODY_LIMIT, 200, true},
        {false, BODY_LIMIT + 1, 413, true},
        {false, 4 * BODY_LIMIT + 3, 413, true},  /* drained: not four times over */
        {false, 4 * BODY_LIMIT + 4, 413, false}, /* answered at once, closed */
        {false, 1000 * BODY_LIMIT, 413, false},
        {true, BODY_LIMIT, 200, true},
        {true, BODY_LIMIT + 1, 413, true},
        {true, 4 * BODY_LIMIT + 3, 413, true},
        {true, 4 * BODY_LIMIT + 4, 0, false}, /* closed once it is four times over */
        {true, 1000 * BODY_LIMIT, 0, false},
    };
    char *body = malloc(1000 * BODY_LIMIT);
    assert_non_null(body);
    memset(body, 'x', 1000 * BODY_LIMIT);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        client_t *c = dial(fx);
        response_t *rp = malloc(sizeof *rp);
        char head[256], want[32];
        bool sent_all = true;
        assert_non_null(rp);
        if (!cases[i].chunked) {
            snprintf(head, sizeof head,
                     "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                     cases[i].size);
            send_text(c, head);
            /* The body, unless the answer comes first (then the server
             * reads no more of it). */
            if (cases[i].stays)
                send_all(c, body, cases[i].size);
        } else {
            send_text(c, "POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (size_t off = 0; off < cases[i].size && sent_all; off += 500) {
                size_t n = cases[i].size - off < 500 ? cases[i].size - off : 500;
                snprintf(head, sizeof head, "%zx\r\n", n);
                sent_all = send_all(c, head, strlen(head)) == 0 && send_all(c, body, n) == 0 &&
                           send_all(c, "\r\n", 2) == 0;
            }
            if (sent_all)
                sent_all = send_all(c, "0\r\n\r\n", 5) == 0;
        }
        if (cases[i].status) {
            if (read_response(c, rp))
                fail_msg("case %zu: no response", i);
            if (rp->status != cases[i].status)
                fail_msg("case %zu: status %d, expected %d", i, rp->status, cases[i].status);
            if (rp->status == 200) {
                snprintf(want, sizeof want, "got %zu", cases[i].size);
                assert_string_equal(rp->body, want);
            } else {
                assert_string_equal(rp->type, "application/json");
                assert_non_null(strstr(rp->body, "\"payload_too_large\""));
            }
        }
        if (cases[i].stays) {
            assert_false(rp->close);
            send_text(c, "GET /body HTTP/1.1\r\nHost: t\r\n\r\n");
            if (read_response(c, rp) || rp->status != 200)
                fail_msg("case %zu: the connection does not serve the next request", i);
        } else if (!ends(c)) {
            fail_msg("case %zu: the connection stays open", i);
        }
        free(rp);
        hang_up(c);
    }
    free(body);
    assert_true(wait_inflight(fx, 0));
}

/* ---- 2. suspend and resume ------------------------------------------------------------------- */

typedef struct resumer {
    parley_req_t **reqs; /* to resume, in this order */
    int n;               /* entries in reqs */
    int delay_ms;        /* wait before each */
} resumer_t;

static void *resume_thread(void *arg)
{
    resumer_t *rs = arg;
    for (int i = 0; i < rs->n; i++) {
        usleep((useconds_t)rs->delay_ms * 1000);
        if (stub_take(rs->reqs[i]))
            parley_req_resume(rs->reqs[i]);
    }
    return NULL;
}

#define DEFERRED 8

static void transport_suspend_resumed_from_other_thread(void **state)
{
    fixture_t *fx = *state;
    client_t *c[DEFERRED];
    parley_req_t *reqs[DEFERRED];
    response_t *rp = malloc(sizeof *rp);
    assert_non_null(rp);
    for (int i = 0; i < DEFERRED; i++) {
        c[i] = dial(fx);
        send_text(c[i], i % 2 ? "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n"
                              : "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    assert_true(stub_wait_parked(DEFERRED));
    assert_int_equal(parley_http_inflight(fx->http), DEFERRED);
    /* Suspended: nothing is answered, and no thread is held. */
    for (int i = 0; i < DEFERRED; i++)
        assert_true(quiet_for(c[i], i ? 1 : 200));
    pthread_mutex_lock(&stub.lock);
    for (int i = 0; i < DEFERRED; i++) /* newest first */
        reqs[i] = stub.parked[DEFERRED - 1 - i];
    pthread_mutex_unlock(&stub.lock);

    resumer_t rs = {reqs, DEFERRED, 5};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, resume_thread, &rs), 0);
    for (int i = 0; i < DEFERRED; i++) {
        if (read_response(c[i], rp))
            fail_msg("deferred request %d: no answer after the resume", i);
        assert_int_equal(rp->status, 200);
        assert_string_equal(rp->body, "resumed");
        assert_false(rp->close);
    }
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&stub.claims), 0);
    assert_true(wait_inflight(fx, 0));
    /* The connections are still good. */
    for (int i = 0; i < DEFERRED; i++) {
        send_text(c[i], "GET /body HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(read_response(c[i], rp), 0);
        assert_int_equal(rp->status, 200);
        hang_up(c[i]);
    }
    free(rp);
}

/* ---- 3. SSE: fill, park, resume ------------------------------------------------------------- */

static void transport_sse_fills_window_then_parks(void **state)
{
    fixture_t *fx = *state;
    client_t *c = dial(fx);
    response_t *rp = malloc(sizeof *rp);
    assert_non_null(rp);
    send_text(c, "GET /sse HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(read_head(c, rp), 0);
    assert_int_equal(rp->status, 200);
    assert_true(rp->chunked);
    assert_string_equal(rp->type, "text/event-stream");

    /* The whole first window arrives, then the response parks. */
    size_t room = 0, filled = 0;
    for (int64_t end = now_ms() + WAIT_MS; !filled && now_ms() < end; usleep(2000)) {
        pthread_mutex_lock(&stub.lock);
        room = stub.room;
        filled = stub.filled;
        pthread_mutex_unlock(&stub.lock);
    }
    assert_true(room > 0 && room <= WINDOW);
    assert_true(filled >= room && filled < room + 64);
    while (rp->len < filled)
        if (read_chunk(c, rp) <= 0)
            fail_msg("the window was cut short at %zu of %zu bytes", rp->len, filled);
    assert_int_equal(rp->len, filled);
    assert_true(stub_wait_parked(1));
    pthread_mutex_lock(&stub.lock);
    parley_req_t *r = stub.parked[0];
    pthread_mutex_unlock(&stub.lock);
    assert_memory_equal(rp->body, "data: 00000", 11);
    assert_int_equal(atomic_load(&stub.refills), 2); /* the fill, then the park */

    /* Parked: nothing more is sent, no refill runs. */
    assert_true(quiet_for(c, 200));
    assert_int_equal(atomic_load(&stub.refills), 2);
    assert_int_equal(parley_http_inflight(fx->http), 1);

    resumer_t rs = {&r, 1, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, resume_thread, &rs), 0);
    long n;
    while ((n = read_chunk(c, rp)) > 0)
        ;
    assert_int_equal(n, 0); /* the last chunk: the response ended properly */
    pthread_join(t, NULL);
    assert_string_equal(rp->body + filled, "data: end\n\n");
    assert_int_equal(atomic_load(&stub.refills), 3);
    assert_true(wait_count(&stub.freed, 1));
    assert_true(wait_inflight(fx, 0));
    assert_int_equal(atomic_load(&stub.claims), 0);
    hang_up(c);
    free(rp);
}

/* ---- 4. a parked client resets ----------------------------------------------------------------
 */

static void transport_parked_client_reset_noticed(void **state)
{
    fixture_t *fx = *state;
    static const char *const paths[] = {"/sse", "/park"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char req[64];
        stub_reset();
        client_t *c = dial(fx);
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", paths[i]);
        send_text(c, req);
        assert_true(stub_wait_parked(1));
        assert_int_equal(parley_http_inflight(fx->http), 1);
        reset(c);
        /* The watcher claims the request back and the transport ends it:
         * nobody resumes it. */
        if (!wait_count(&stub.claims, 1))
            fail_msg("%s: the reset of a parked client was not noticed", paths[i]);
        if (!wait_inflight(fx, 0))
            fail_msg("%s: the request did not complete after the reset", paths[i]);
        pthread_mutex_lock(&stub.lock);
        assert_int_equal(stub.nparked, 0);
        pthread_mutex_unlock(&stub.lock);
        if (paths[i][1] == 's') {
            assert_true(wait_count(&stub.freed, 1));
            assert_int_equal(atomic_load(&stub.refills), 2); /* never refilled again */
        }
    }
}

/* ---- 5. quiesce and stop ----------------------------------------------------------------------
 */

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void transport_quiesce_then_stop_with_connections_open(void **state)
{
    fixture_t *fx = *state;
    response_t *rp = malloc(sizeof *rp);
    assert_non_null(rp);
    /* The fixture's server is replaced by one started here, so the
     * descriptors can be counted around its whole life. */
    parley_http_stop(fx->http);
    fx->http = NULL;
    int fds_before = count_fds();
    start(fx);
    fixture_t *own = fx;

    client_t *idle = dial(own);
    send_text(idle, "GET /body HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(read_response(idle, rp), 0);
    assert_false(rp->close); /* kept alive, now idle */
    client_t *parked = dial(own);
    send_text(parked, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(stub_wait_parked(1));

    parley_http_quiesce(own->http);
    /* No new connection is served. */
    client_t *late = calloc(1, sizeof *late);
    assert_non_null(late);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)own->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    late->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(late->fd, (struct sockaddr *)&a, sizeof a) == 0) {
        send_all(late, "GET /body HTTP/1.1\r\nHost: t\r\n\r\n", 31);
        assert_true(quiet_for(late, 300));
    }
    hang_up(late);

    /* The parked request is still answered, with Connection: close, and
     * its handler sees the shutdown. */
    parley_req_t *r;
    pthread_mutex_lock(&stub.lock);
    r = stub.parked[0];
    pthread_mutex_unlock(&stub.lock);
    assert_true(stub_take(r));
    parley_req_resume(r);
    assert_int_equal(read_response(parked, rp), 0);
    assert_int_equal(rp->status, 200);
    assert_true(rp->close);
    assert_true(atomic_load(&stub.saw_shutdown));
    assert_true(ends(parked));
    hang_up(parked);
    assert_true(wait_inflight(own, 0));

    /* Stop with the idle keep-alive connection still open: it is closed,
     * and nothing of the server's is left open. */
    parley_http_stop(own->http);
    own->http = NULL;
    assert_true(ends(idle));
    hang_up(idle);
    assert_int_equal(count_fds(), fds_before);
    free(rp);
}

#define TRANSPORT_TEST(f) cmocka_unit_test_setup_teardown(f, transport_setup, transport_teardown)

int main(void)
{
    const struct CMUnitTest transport_tests[] = {
        TRANSPORT_TEST(transport_body_limit_table),
        TRANSPORT_TEST(transport_suspend_resumed_from_other_thread),
        TRANSPORT_TEST(transport_sse_fills_window_then_parks),
        TRANSPORT_TEST(transport_parked_client_reset_noticed),
        TRANSPORT_TEST(transport_quiesce_then_stop_with_connections_open),
    };
    return cmocka_run_group_tests_name("transport", transport_tests, NULL, NULL);
}
