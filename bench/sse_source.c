/* sse_source — the no-op SSE source: what W5's load generator measures
 * when the server does nothing but fan out. It tells the generator's own
 * overhead (and the kernel's loopback) apart from Parley's.
 *
 *   sse_source PORT
 *
 * Listens on 127.0.0.1:PORT. Every GET becomes a subscriber: it is
 * answered `200`, `Content-Type: text/event-stream`, chunked, with a
 * control event at once, as Parley does at `offset=now`. Every POST (with
 * a Content-Length body) is answered `204` at once, and then its body is
 * sent to every subscriber as Parley frames it, in one chunk: a data event
 * `data:[BODY]` and a control event. No storage, no fsync. A subscriber
 * whose socket buffer is full is dropped (counted on stderr at exit).
 *
 * Single-threaded, epoll; stops on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;          /* the socket */
    int sub;         /* 1 once it is a subscriber */
    int len;         /* bytes buffered in req */
    char req[16384]; /* the request being read (head and body) */
} client_t;

static volatile sig_atomic_t g_stop; /* SIGTERM/SIGINT seen */
static void on_signal(int s)
{
    (void)s;
    g_stop = 1;
}

static client_t **g_subs;      /* the subscribers */
static int g_nsubs, g_capsubs; /* used, allocated */
static long g_dropped;         /* subscribers dropped on a full buffer */
static long g_offset;          /* messages so far, for the control events */
static int g_ep;               /* the epoll fd */

static void drop(client_t *c)
{
    epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->sub) {
        for (int i = 0; i < g_nsubs; i++)
            if (g_subs[i] == c) {
                g_subs[i] = g_subs[--g_nsubs];
                break;
            }
    }
    free(c);
}

static void broadcast(const char *body, int blen)
{
    char ev[20000];
    g_offset++;
    int n =
        snprintf(ev + 8, sizeof ev - 16,
                 "event: data\ndata:[%.*s]\n\nevent: control\n"
                 "data:{\"streamNextOffset\":\"0000000000000000_%016ld\",\"upToDate\":true}\n\n",
                 blen, body, g_offset);
    /* one chunk: size line, data, CRLF */
    char size[16];
    int sl = snprintf(size, sizeof size, "%x\r\n", n);
    memcpy(ev + 8 - sl, size, (size_t)sl);
    memcpy(ev + 8 + n, "\r\n", 2);
    const char *p = ev + 8 - sl;
    size_t len = (size_t)(sl + n + 2);
    for (int i = 0; i < g_nsubs;) {
        client_t *c = g_subs[i];
        if (send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len) {
            g_dropped++;
            drop(c); /* moves the last one to i */
            continue;
        }
        i++;
    }
}

static void on_client(client_t *c)
{
    for (;;) {
        if (c->len == (int)sizeof c->req - 1) {
            drop(c);
            return;
        }
        ssize_t r = recv(c->fd, c->req + c->len, sizeof c->req - 1 - (size_t)c->len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            drop(c);
            return;
        }
        c->len += (int)r;
        c->req[c->len] = 0;
        for (;;) {
            char *end = strstr(c->req, "\r\n\r\n");
            if (!end || c->sub)
                break;
            int head = (int)(end + 4 - c->req);
            if (strncmp(c->req, "GET ", 4) == 0) {
                static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: "
                                           "text/event-stream\r\nCache-Control: no-cache\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n";
                char first[256];
                int n = snprintf(
                    first + 8, sizeof first - 16,
                    "event: control\ndata:{\"streamNextOffset\":\"0000000000000000_%016ld\","
                    "\"upToDate\":true}\n\n",
                    g_offset);
                char out[512];
                int ol = snprintf(out, sizeof out, "%s%x\r\n%.*s\r\n", resp, n, n, first + 8);
                send(c->fd, out, (size_t)ol, MSG_NOSIGNAL);
                if (g_nsubs == g_capsubs) {
                    g_capsubs = g_capsubs ? 2 * g_capsubs : 1024;
                    g_subs = realloc(g_subs, (size_t)g_capsubs * sizeof *g_subs);
                    if (!g_subs)
                        exit(1);
                }
                g_subs[g_nsubs++] = c;
                c->sub = 1;
                c->len = 0;
                break;
            }
            long clen = 0;
            char *cl = strcasestr(c->req, "\r\ncontent-length:");
            if (cl && cl < end)
                clen = strtol(cl + 17, NULL, 10);
            if (c->len < head + clen)
                break; /* the body is still coming */
            static const char ok[] = "HTTP/1.1 204 No Content\r\n\r\n";
            send(c->fd, ok, sizeof ok - 1, MSG_NOSIGNAL);
            if (strncmp(c->req, "POST ", 5) == 0)
                broadcast(c->req + head, (int)clen);
            int used = head + (int)clen;
            memmove(c->req, c->req + used, (size_t)(c->len - used) + 1);
            c->len -= used;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sse_source PORT\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) {
        perror("sse_source: bind/listen");
        return 1;
    }
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, ls, &lev);
    struct epoll_event evs[1024];
    while (!g_stop) {
        int n = epoll_wait(g_ep, evs, 1024, 200);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    client_t *c = calloc(1, sizeof *c);
                    if (!c)
                        exit(1);
                    c->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev);
                }
            } else {
                on_client(evs[i].data.ptr);
            }
        }
    }
    if (g_dropped)
        fprintf(stderr, "sse_source: %ld subscribers dropped on a full buffer\n", g_dropped);
    return 0;
}
