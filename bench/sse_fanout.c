/* sse_fanout — the load generator of W5 (live fan-out) and W6 (idle
 * subscribers): many Server-Sent Events subscribers on one stream, and for
 * W5 a writer appending at a fixed rate, in one process.
 *
 *   sse_fanout fanout -p PORT -s SSE_PATH -a APPEND_PATH -n N -r RATE
 *                     -w WARMUP_S -d SECONDS [-b BYTES] [-c CONNECTING] [-W WRITERS]
 *                     [-P PROCS]
 *   sse_fanout idle   -p PORT -s SSE_PATH -n N -d SECONDS [-c CONNECTING]
 *
 * Subscribers: N keep-alive connections to 127.0.0.1:PORT, each sending
 * `GET SSE_PATH` (e.g. /v1/stream/x?offset=now&live=sse), opened at most
 * CONNECTING (200) at a time so the listen backlog never overflows. A
 * subscriber is ready once its 200 header and the first bytes of the event
 * stream have arrived (the server sends a control event at once).
 *
 * fanout: once every subscriber is ready, WRITERS (4) more connections
 * POST `{"k":K,"pad":"xxx…"}` (BYTES, default 256, application/json) to
 * APPEND_PATH, RATE appends a second in all (a timerfd; each tick sends on
 * a connection with nothing in flight, so a slow fsync does not lower the
 * rate; when all of them are busy the tick counts as late and its append
 * goes out on the next connection answered). The time each append was sent
 * and its 2xx received are kept by K. Every byte a subscriber receives goes
 * through a chunked-transfer decoder and a matcher for `"k":<digits>`, so
 * each message is seen once whatever the event framing or batching; its
 * receipt time is kept with K. Appends during WARMUP_S seconds are not
 * measured; then SECONDS seconds are, and the subscribers get up to 2 s to
 * receive the last ones. Latency from the append's 2xx to receipt (the W5
 * figure; a receipt before the 2xx counts as 0 and is counted as `early`),
 * and from the append's send, p50/p99/max over every (subscriber, message)
 * pair, plus the appends' own latency and the generator's CPU use.
 * One line: SSERESULT key=value ...
 *
 * idle: once every subscriber is ready, prints `READY open=N` and holds
 * the connections for SECONDS seconds (reading whatever arrives), then
 * prints IDLERESULT key=value ... (how many are still open).
 *
 * fanout runs in PROCS + 1 processes (PROCS, default 2): the parent is the
 * writer, and PROCS children each hold N / PROCS of the subscribers in
 * their own epoll loop, so neither the appends nor one process's loop
 * over a thousand sockets delays a receipt. The children write their
 * receipts (k, time) into memory shared with the parent (an anonymous
 * MAP_SHARED mapping made before the fork), which matches them against
 * the 2xx times it kept. All times are CLOCK_MONOTONIC, which is one clock
 * for every process on the machine. The generator's CPU is the sum of all
 * its processes over the measured window.
 *
 * idle: one process, epoll.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING, ST_HEAD, ST_BODY, ST_CLOSED };
enum { CH_SIZE, CH_SIZE_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF };

typedef struct {
    int fd;           /* the socket, -1 once closed */
    int state;        /* ST_* */
    int ready;        /* 1 once body bytes arrived */
    int chunked;      /* 1 if the body is chunked */
    int ch_state;     /* CH_* state of the chunked decoder */
    uint64_t ch_left; /* bytes left in the current chunk */
    int head_len;     /* bytes of the response head seen so far */
    char head[1024];  /* the response head (truncated past 1 KiB) */
    int m;            /* how much of the marker "k": is matched; 5 = in digits */
    uint64_t num;     /* the digits read so far */
} conn_t;

typedef struct {
    uint32_t k;   /* the message */
    int64_t t_ns; /* when a subscriber received it */
} sample_t;

static const char MARK[] = "\"k\":";

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "sse_fanout: %s: %s\n", what, strerror(errno));
    exit(1);
}

enum { PMAX = 16 }; /* subscriber processes at most */

/* What the writer (parent) and the subscriber processes share. */
typedef struct {
    _Atomic uint32_t first_k;          /* the first measured message (UINT32_MAX before) */
    _Atomic int stop;                  /* the parent says: finish */
    _Atomic int ready[PMAX];           /* a child's subscribers are all ready */
    _Atomic int failed[PMAX];          /* a child could not subscribe */
    _Atomic uint64_t nsamples[PMAX];   /* receipts kept by each child */
    _Atomic uint64_t overflow[PMAX];   /* receipts not kept (its array full) */
    _Atomic uint64_t unmeasured[PMAX]; /* receipts of warm-up messages */
    _Atomic int open[PMAX];            /* its subscribers still open at the end */
    _Atomic int64_t cpu_ns[PMAX];      /* its CPU over the measured window */
} shared_t;

/* globals: the run's configuration and state */
static shared_t *g_sh;                  /* shared with the other processes */
static int g_proc;                      /* this process's slot in g_sh (children) */
static int g_port;                      /* the server's port */
static const char *g_sse;               /* the SSE path */
static const char *g_append;            /* the append path */
static int g_ep;                        /* the epoll fd */
static conn_t *g_conns;                 /* the subscribers */
static int g_n;                         /* how many */
static sample_t *g_samples;             /* receipts of measured messages */
static size_t g_nsamples, g_capsamples; /* used, allocated */

static int connect_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)
        die("connect");
    return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
    /* requests are small and the socket is fresh: one write suffices; a
     * short write is treated as an error */
    ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
    if (w != (ssize_t)len) {
        fprintf(stderr, "sse_fanout: short send (%zd of %zu)\n", w, len);
        exit(1);
    }
}

static void record(uint32_t k, int64_t t)
{
    if (k < atomic_load_explicit(&g_sh->first_k, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&g_sh->unmeasured[g_proc], 1, memory_order_relaxed);
        return;
    }
    if (g_nsamples == g_capsamples) {
        atomic_fetch_add_explicit(&g_sh->overflow[g_proc], 1, memory_order_relaxed);
        return;
    }
    g_samples[g_nsamples].k = k;
    g_samples[g_nsamples].t_ns = t;
    g_nsamples++;
    atomic_store_explicit(&g_sh->nsamples[g_proc], g_nsamples, memory_order_release);
}

/* The decoded event-stream bytes: find every "k":<digits>. */
static void scan(conn_t *c, const char *p, size_t n, int64_t t)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (c->m == 4) {
            if (ch >= '0' && ch <= '9') {
                c->num = c->num * 10 + (uint64_t)(ch - '0');
                c->m = 5;
                continue;
            }
            c->m = 0;
        } else if (c->m == 5) {
            if (ch >= '0' && ch <= '9') {
                c->num = c->num * 10 + (uint64_t)(ch - '0');
                continue;
            }
            record((uint32_t)c->num, t);
            c->m = 0;
            c->num = 0;
        }
        if (ch == MARK[c->m])
            c->m++;
        else
            c->m = (ch == MARK[0]) ? 1 : 0;
    }
}

/* Body bytes: undo chunked framing when there is one. */
static void body(conn_t *c, const char *p, size_t n, int64_t t)
{
    c->ready = 1;
    if (!c->chunked) {
        scan(c, p, n, t);
        return;
    }
    size_t i = 0;
    while (i < n) {
        char ch = p[i];
        switch (c->ch_state) {
        case CH_SIZE:
            if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')) {
                int v = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
                c->ch_left = c->ch_left * 16 + (uint64_t)v;
            } else if (ch == '\r') {
                c->ch_state = CH_SIZE_LF;
            } else {
                c->ch_state = CH_SIZE_EXT;
            }
            i++;
            break;
        case CH_SIZE_EXT:
            if (ch == '\r')
                c->ch_state = CH_SIZE_LF;
            i++;
            break;
        case CH_SIZE_LF:
            i++;
            c->ch_state = c->ch_left ? CH_DATA : CH_DATA_CR; /* 0: the end */
            break;
        case CH_DATA: {
            size_t take = n - i;
            if (take > c->ch_left)
                take = (size_t)c->ch_left;
            scan(c, p + i, take, t);
            i += take;
            c->ch_left -= take;
            if (c->ch_left == 0)
                c->ch_state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            i++;
            c->ch_state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            i++;
            c->ch_state = CH_SIZE;
            c->ch_left = 0;
            break;
        }
    }
}

static void close_conn(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = ST_CLOSED;
}

static int g_head_errors; /* subscriptions not answered 200 */

/* A subscriber is readable (or its connect finished). */
static void on_sub(conn_t *c, uint32_t events)
{
    static char buf[65536];
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            errno = err;
            g_head_errors++;
            close_conn(c);
            return;
        }
        char req[2048];
        int len =
            snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n",
                     g_sse, g_port);
        send_all(c->fd, req, (size_t)len);
        c->state = ST_HEAD;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    (void)events;
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            close_conn(c);
            return;
        }
        int64_t t = now_ns();
        size_t off = 0;
        if (c->state == ST_HEAD) {
            /* accumulate the head until the blank line */
            while (off < (size_t)r) {
                if (c->head_len < (int)sizeof c->head - 1)
                    c->head[c->head_len++] = buf[off];
                off++;
                if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0)
                    break;
            }
            c->head[c->head_len] = 0;
            if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0) {
                if (strncmp(c->head, "HTTP/1.1 200", 12) != 0) {
                    if (g_head_errors++ < 3)
                        fprintf(stderr, "sse_fanout: subscription answered: %.60s\n", c->head);
                    close_conn(c);
                    return;
                }
                c->chunked = strcasestr(c->head, "transfer-encoding: chunked") != NULL;
                c->state = ST_BODY;
            }
        }
        if (c->state == ST_BODY && off < (size_t)r)
            body(c, buf + off, (size_t)r - off, t);
    }
}

/* ------------------------------------------------------------ writer ---- */
enum { WMAX = 64 };

typedef struct {
    int fd;          /* the connection */
    int busy;        /* 1 while its append is unanswered */
    uint32_t k;      /* the append in flight */
    char resp[4096]; /* the response being read */
    int resp_len;    /* its length so far */
} wconn_t;

typedef struct {
    wconn_t c[WMAX]; /* the append connections */
    int nc;          /* how many */
    int pending;     /* ticks waiting for a free connection */
    uint32_t next_k; /* the next message */
    int64_t *t_send; /* by k: when the append was sent */
    int64_t *t_ack;  /* by k: when its 2xx arrived */
    uint32_t cap;    /* size of the two arrays */
    uint64_t late;   /* ticks that found every connection busy */
    uint64_t errors; /* non-2xx answers */
    int bytes;       /* body size */
} writer_t;

static writer_t W;

static int writer_busy(void)
{
    for (int i = 0; i < W.nc; i++)
        if (W.c[i].busy)
            return 1;
    return 0;
}

static void writer_send(wconn_t *wc)
{
    char body[8192], req[10000];
    uint32_t k = W.next_k;
    if (k >= W.cap)
        return; /* the arrays are full: stop appending */
    int hl = snprintf(body, sizeof body, "{\"k\":%u,\"pad\":\"", k);
    int pad = W.bytes - hl - 2;
    if (pad < 0)
        pad = 0;
    memset(body + hl, 'x', (size_t)pad);
    memcpy(body + hl + pad, "\"}", 2);
    int blen = hl + pad + 2;
    int len =
        snprintf(req, sizeof req,
                 "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\n\r\n",
                 g_append, g_port, blen);
    memcpy(req + len, body, (size_t)blen);
    W.t_send[k] = now_ns();
    send_all(wc->fd, req, (size_t)(len + blen));
    wc->busy = 1;
    wc->k = k;
    W.next_k++;
}

static void on_tick(void)
{
    for (int i = 0; i < W.nc; i++)
        if (!W.c[i].busy) {
            writer_send(&W.c[i]);
            return;
        }
    W.late++;
    W.pending++;
}

static void on_writer(wconn_t *wc)
{
    for (;;) {
        ssize_t r =
            recv(wc->fd, wc->resp + wc->resp_len, sizeof wc->resp - 1 - (size_t)wc->resp_len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            fprintf(stderr, "sse_fanout: an append connection closed\n");
            exit(1);
        }
        int64_t t = now_ns();
        wc->resp_len += (int)r;
        wc->resp[wc->resp_len] = 0;
        char *end = strstr(wc->resp, "\r\n\r\n");
        if (!end)
            continue;
        size_t head = (size_t)(end + 4 - wc->resp);
        long clen = 0;
        char *cl = strcasestr(wc->resp, "\r\ncontent-length:");
        if (cl && cl < end)
            clen = strtol(cl + 17, NULL, 10);
        if ((long)wc->resp_len < (long)head + clen)
            continue; /* the body is still coming */
        if (wc->resp[9] != '2') {
            if (W.errors++ < 3)
                fprintf(stderr, "sse_fanout: append answered %.40s\n", wc->resp);
        }
        W.t_ack[wc->k] = t;
        wc->busy = 0;
        wc->resp_len = 0; /* one request at a time: nothing follows */
        if (W.pending) {
            W.pending--;
            writer_send(wc);
        }
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(const int64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n)
        i = n - 1;
    return v[i];
}

static volatile sig_atomic_t g_stop; /* SIGTERM/SIGINT seen */
static void on_signal(int s)
{
    (void)s;
    g_stop = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sse_fanout fanout|idle -p PORT -s SSE_PATH [-a APPEND_PATH] -n N"
            " [-r RATE] [-w WARMUP_S] -d SECONDS [-b BYTES] [-c CONNECTING] [-W WRITERS]"
            " [-P PROCS]\n");
    exit(2);
}

/* Open g_n subscriptions, at most `connecting` at a time, and wait until
 * each has its first event (60 s at most). 0, or 1 after a message. */
static int subscribe_all(int connecting)
{
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0)
        die("epoll_create1");
    g_conns = calloc((size_t)g_n, sizeof *g_conns);
    if (!g_conns)
        die("calloc");
    int opened = 0;
    int64_t deadline = now_ns() + 60 * 1000000000LL;
    struct epoll_event evs[1024];
    for (;;) {
        int live = 0, ready = 0, closed = 0;
        for (int i = 0; i < opened; i++) {
            if (g_conns[i].state == ST_CLOSED)
                closed++;
            else if (g_conns[i].ready)
                ready++;
            else
                live++;
        }
        if (closed) {
            fprintf(stderr, "sse_fanout: %d subscriptions failed\n", closed);
            return 1;
        }
        if (ready == g_n)
            return 0;
        while (opened < g_n && live < connecting) {
            conn_t *c = &g_conns[opened++];
            c->fd = connect_one();
            c->state = ST_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                die("epoll_ctl");
            live++;
        }
        if (now_ns() > deadline) {
            fprintf(stderr, "sse_fanout: only %d of %d subscribers ready after 60 s\n", ready, g_n);
            return 1;
        }
        int n = epoll_wait(g_ep, evs, 1024, 100);
        for (int i = 0; i < n; i++)
            on_sub(evs[i].data.ptr, evs[i].events);
    }
}

/* A subscriber process (fanout): its share of the subscribers, receipts
 * into its slice of the shared samples, until the parent says stop. */
static void child_main(int slot, int connecting)
{
    g_proc = slot;
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the writer (a watchdog kills it) */
    if (getppid() == 1)
        _exit(1);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (subscribe_all(connecting)) {
        atomic_store(&g_sh->failed[slot], 1);
        _exit(1);
    }
    atomic_store(&g_sh->ready[slot], 1);
    struct epoll_event evs[1024];
    double cpu0 = 0;
    int measuring = 0;
    while (!atomic_load(&g_sh->stop)) {
        if (!measuring && atomic_load(&g_sh->first_k) != UINT32_MAX) {
            measuring = 1;
            cpu0 = cpu_s();
        }
        int n = epoll_wait(g_ep, evs, 1024, 10);
        for (int i = 0; i < n; i++)
            on_sub(evs[i].data.ptr, evs[i].events);
    }
    int open = 0;
    for (int i = 0; i < g_n; i++)
        open += g_conns[i].state != ST_CLOSED;
    atomic_store(&g_sh->open[slot], open);
    atomic_store(&g_sh->cpu_ns[slot], measuring ? (int64_t)((cpu_s() - cpu0) * 1e9) : 0);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    int fanout = strcmp(argv[1], "fanout") == 0;
    if (!fanout && strcmp(argv[1], "idle") != 0)
        usage();
    int rate = 100, connecting = 200, procs = 2, opt;
    double warmup = 2, secs = 10;
    W.bytes = 256;
    W.nc = 4;
    optind = 2;
    while ((opt = getopt(argc, argv, "p:s:a:n:r:w:d:b:c:W:P:")) != -1) {
        switch (opt) {
        case 'p':
            g_port = atoi(optarg);
            break;
        case 's':
            g_sse = optarg;
            break;
        case 'a':
            g_append = optarg;
            break;
        case 'n':
            g_n = atoi(optarg);
            break;
        case 'r':
            rate = atoi(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 'd':
            secs = atof(optarg);
            break;
        case 'b':
            W.bytes = atoi(optarg);
            break;
        case 'c':
            connecting = atoi(optarg);
            break;
        case 'W':
            W.nc = atoi(optarg);
            break;
        case 'P':
            procs = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (g_port <= 0 || !g_sse || g_n <= 0 || secs <= 0 || (fanout && (!g_append || rate <= 0)) ||
        W.bytes < 16 || W.bytes > 4096 || connecting <= 0 || W.nc < 1 || W.nc > WMAX ||
        procs < 1 || procs > PMAX || procs > g_n)
        usage();

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)g_n + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)g_n + 64) {
            fprintf(stderr, "sse_fanout: open-file limit %lu is too low for %d connections\n",
                    (unsigned long)rl.rlim_cur, g_n);
            return 1;
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    if (!fanout) {
        static shared_t local;
        g_sh = &local;
        atomic_store(&g_sh->first_k, UINT32_MAX);
        int64_t t0 = now_ns();
        if (subscribe_all(connecting))
            return 1;
        double connect_s = (double)(now_ns() - t0) / 1e9;
        struct epoll_event evs[1024];
        printf("READY open=%d connect_s=%.2f\n", g_n, connect_s);
        fflush(stdout);
        int64_t end = now_ns() + (int64_t)(secs * 1e9);
        while (!g_stop && now_ns() < end) {
            int n = epoll_wait(g_ep, evs, 1024, 100);
            for (int i = 0; i < n; i++)
                on_sub(evs[i].data.ptr, evs[i].events);
        }
        int open = 0;
        for (int i = 0; i < g_n; i++)
            open += g_conns[i].state != ST_CLOSED;
        printf("IDLERESULT subscribers=%d open=%d closed=%d connect_s=%.2f\n", g_n, open,
               g_n - open, connect_s);
        return open == g_n ? 0 : 1;
    }

    /* ------------------------------------- subscriber processes ---- */
    int total = g_n;
    size_t per_proc_cap = (size_t)(total / procs + 1) * (size_t)(secs * rate + 16);
    size_t shared_bytes = sizeof(shared_t) + (size_t)procs * per_proc_cap * sizeof(sample_t);
    void *mem = mmap(NULL, shared_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap");
    g_sh = mem;
    sample_t *all_samples = (sample_t *)((char *)mem + sizeof(shared_t));
    atomic_store(&g_sh->first_k, UINT32_MAX);
    pid_t kids[PMAX];
    int64_t t0 = now_ns();
    fflush(stdout);
    for (int i = 0; i < procs; i++) {
        int lo = (int)((long)total * i / procs), hi = (int)((long)total * (i + 1) / procs);
        kids[i] = fork();
        if (kids[i] < 0)
            die("fork");
        if (kids[i] == 0) {
            g_n = hi - lo;
            g_samples = all_samples + (size_t)i * per_proc_cap;
            g_capsamples = per_proc_cap;
            int c = connecting / procs;
            child_main(i, c > 0 ? c : 1);
        }
    }
    g_n = total;
    for (;;) {
        int ready = 0;
        for (int i = 0; i < procs; i++) {
            if (atomic_load(&g_sh->failed[i]) || waitpid(kids[i], NULL, WNOHANG) == kids[i]) {
                fprintf(stderr, "sse_fanout: subscriber process %d failed\n", i);
                atomic_store(&g_sh->stop, 1);
                for (int j = 0; j < procs; j++)
                    kill(kids[j], SIGTERM);
                return 1;
            }
            ready += atomic_load(&g_sh->ready[i]);
        }
        if (ready == procs)
            break;
        if (g_stop) {
            atomic_store(&g_sh->stop, 1);
            for (int j = 0; j < procs; j++)
                kill(kids[j], SIGTERM);
            return 1;
        }
        usleep(10000);
    }
    double connect_s = (double)(now_ns() - t0) / 1e9;
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0)
        die("epoll_create1");
    struct epoll_event evs[1024];

    /* --------------------------------------------------- fan-out --- */
    W.cap = (uint32_t)((warmup + secs + 5) * rate) + 16;
    W.t_send = calloc(W.cap, sizeof *W.t_send);
    W.t_ack = calloc(W.cap, sizeof *W.t_ack);
    if (!W.t_send || !W.t_ack)
        die("malloc");
    for (int i = 0; i < W.nc; i++) {
        wconn_t *wc = &W.c[i];
        wc->fd = connect_one();
        /* wait for the connect */
        fd_set wf;
        FD_ZERO(&wf);
        FD_SET(wc->fd, &wf);
        struct timeval tv = {5, 0};
        if (select(wc->fd + 1, NULL, &wf, NULL, &tv) != 1)
            die("connect (writer)");
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = wc};
        epoll_ctl(g_ep, EPOLL_CTL_ADD, wc->fd, &wev);
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {0};
    its.it_interval.tv_nsec = 1000000000L / rate;
    its.it_value.tv_nsec = 1000000;
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &tfd};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, tfd, &tev);

    int64_t start = now_ns();
    int64_t measure_at = start + (int64_t)(warmup * 1e9);
    int64_t stop_at = measure_at + (int64_t)(secs * 1e9);
    int64_t grace_at = 0;
    double cpu0 = 0;
    int measuring = 0, appending = 1;
    uint32_t first_k = UINT32_MAX, last_k = 0;
    while (!g_stop) {
        int64_t t = now_ns();
        if (!measuring && t >= measure_at) {
            measuring = 1;
            first_k = W.next_k; /* those in flight were sent in the warm-up */
            atomic_store(&g_sh->first_k, first_k);
            cpu0 = cpu_s();
        }
        if (appending && t >= stop_at) {
            appending = 0;
            timerfd_settime(tfd, 0, &(struct itimerspec){0}, NULL);
            W.pending = 0;
        }
        if (!appending && !writer_busy()) {
            if (!grace_at) {
                grace_at = t + 2000000000LL;
                last_k = W.next_k; /* measured: first_k .. last_k - 1 */
            }
            /* done once every subscriber has everything, or after 2 s */
            uint64_t want = (uint64_t)g_n * (last_k - first_k), got = 0;
            for (int i = 0; i < procs; i++)
                got += atomic_load(&g_sh->nsamples[i]) + atomic_load(&g_sh->overflow[i]);
            if (got >= want || t >= grace_at)
                break;
        }
        int n = epoll_wait(g_ep, evs, 1024, 10);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p >= (void *)&W.c[0] && p < (void *)&W.c[WMAX]) {
                on_writer(p);
            } else if (p == &tfd) {
                uint64_t ticks;
                if (read(tfd, &ticks, sizeof ticks) == sizeof ticks && appending)
                    for (uint64_t j = 0; j < ticks; j++)
                        on_tick();
            }
        }
    }
    double cpu = cpu_s() - cpu0;
    double wall = (double)(now_ns() - measure_at) / 1e9;
    atomic_store(&g_sh->stop, 1);
    int open = 0;
    for (int i = 0; i < procs; i++) {
        int st = 0;
        if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "sse_fanout: subscriber process %d ended badly\n", i);
        open += atomic_load(&g_sh->open[i]);
        cpu += (double)atomic_load(&g_sh->cpu_ns[i]) / 1e9;
    }
    if (first_k == UINT32_MAX)
        first_k = last_k;

    /* ------------------------------------------------- results ----- */
    uint32_t appends = last_k > first_k ? last_k - first_k : 0;
    uint64_t expected = (uint64_t)g_n * appends;
    size_t nsamples = 0;
    for (int i = 0; i < procs; i++)
        nsamples += atomic_load(&g_sh->nsamples[i]);
    int64_t *from_ack = malloc((nsamples + 1) * sizeof *from_ack);
    int64_t *from_send = malloc((nsamples + 1) * sizeof *from_send);
    int64_t *app = malloc((appends + 1) * sizeof *app);
    if (!from_ack || !from_send || !app)
        die("malloc");
    size_t n = 0;
    uint64_t early = 0, unknown = 0;
    for (int p = 0; p < procs; p++) {
        const sample_t *sm = all_samples + (size_t)p * per_proc_cap;
        size_t cnt = atomic_load(&g_sh->nsamples[p]);
        for (size_t i = 0; i < cnt; i++) {
            uint32_t k = sm[i].k;
            if (k >= last_k || !W.t_ack[k]) {
                unknown++;
                continue;
            }
            int64_t d = sm[i].t_ns - W.t_ack[k];
            if (d < 0) {
                early++;
                d = 0;
            }
            from_ack[n] = d;
            from_send[n] = sm[i].t_ns - W.t_send[k];
            n++;
        }
    }
    for (uint32_t k = first_k; k < last_k; k++)
        app[k - first_k] = W.t_ack[k] - W.t_send[k];
    qsort(from_ack, n, sizeof *from_ack, cmp_i64);
    qsort(from_send, n, sizeof *from_send, cmp_i64);
    qsort(app, appends, sizeof *app, cmp_i64);
    printf(
        "SSERESULT subscribers=%d open=%d appends=%u rate_per_s=%.1f expected=%llu received=%zu "
        "missing=%lld early=%llu p50_us=%lld p99_us=%lld max_us=%lld send_p50_us=%lld "
        "send_p99_us=%lld append_p50_us=%lld append_p99_us=%lld append_errors=%llu late_ticks=%llu "
        "gen_cpu_pct=%.1f connect_s=%.2f procs=%d\n",
        g_n, open, appends, appends / (secs > 0 ? secs : 1), (unsigned long long)expected, n,
        (long long)expected - (long long)n, (unsigned long long)early,
        (long long)(pct(from_ack, n, 50) / 1000), (long long)(pct(from_ack, n, 99) / 1000),
        (long long)(n ? from_ack[n - 1] / 1000 : 0), (long long)(pct(from_send, n, 50) / 1000),
        (long long)(pct(from_send, n, 99) / 1000), (long long)(pct(app, appends, 50) / 1000),
        (long long)(pct(app, appends, 99) / 1000), (unsigned long long)W.errors,
        (unsigned long long)W.late, wall > 0 ? 100.0 * cpu / wall : 0, connect_s, procs);
    (void)unknown;
    return 0;
}
