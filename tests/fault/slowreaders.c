/*
 * slowreaders.c — readers that stop reading, for the black-box tests
 * (tests/blackbox/42-readers.test.mjs).
 *
 *   parley_slowreaders PORT PATH COUNT [serial]
 *
 * Opens COUNT connections to 127.0.0.1:PORT with a small receive buffer
 * (so that the kernel holds little on either side and the server's own
 * memory is what is measured), sends "GET PATH" on each, reads each
 * response's headers and first body byte and then stops reading. With
 * "serial", each response has started before the next connection opens
 * (so the server sizes each first window knowing how many read before
 * it). Prints "ready" once every response has started. Then reads a
 * command from stdin:
 *
 *   drain   read every connection to its end and print, per connection,
 *           "<status> <content-length or -1> <body bytes> <eof|reset|timeout>",
 *           then "done"
 *
 * End of input closes every connection and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RCVBUF 4096

typedef struct conn {
    int fd;         /* the socket */
    int status;     /* HTTP status */
    long long clen; /* Content-Length, -1 if none */
    long long body; /* body bytes received */
} conn_t;

static void set_timeout(int fd, int secs)
{
    struct timeval tv = {secs, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Read the response headers; the body bytes that came with them count. */
static int read_headers(conn_t *c)
{
    char buf[8192];
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(c->fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            c->status = atoi(buf + 9);
            c->clen = -1;
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (cl && cl < end)
                c->clen = atoll(cl + 17);
            c->body = (long long)(len - (size_t)(end + 4 - buf));
            return 0;
        }
        if (len == sizeof buf - 1)
            return -1;
    }
}

/* Read a response's headers and its first body byte (so the server has
 * sized its first window). */
static int start(conn_t *c, int i)
{
    if (read_headers(c)) {
        fprintf(stderr, "connection %d: no response headers\n", i);
        return -1;
    }
    char first;
    if (c->body == 0 && c->clen != 0) {
        if (recv(c->fd, &first, 1, 0) != 1) {
            fprintf(stderr, "connection %d: no body\n", i);
            return -1;
        }
        c->body = 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "serial") == 0)) {
        fprintf(stderr, "usage: parley_slowreaders PORT PATH COUNT [serial]\n");
        return 2;
    }
    bool serial = argc == 5; /* each response starts before the next opens */
    int port = atoi(argv[1]);
    const char *path = argv[2];
    int count = atoi(argv[3]);
    conn_t *c = calloc((size_t)count, sizeof *c);
    if (!c)
        return 1;
    char req[4096];
    int rlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    for (int i = 0; i < count; i++) {
        c[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        int rcv = RCVBUF;
        setsockopt(c[i].fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
        set_timeout(c[i].fd, 20);
        if (c[i].fd < 0 || connect(c[i].fd, (struct sockaddr *)&a, sizeof a) < 0 ||
            send(c[i].fd, req, (size_t)rlen, 0) != rlen) {
            fprintf(stderr, "connection %d: %s\n", i, strerror(errno));
            return 1;
        }
        if (serial && start(&c[i], i))
            return 1;
    }
    for (int i = 0; !serial && i < count; i++)
        if (start(&c[i], i))
            return 1;
    printf("ready\n");
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "drain", 5) != 0)
            continue;
        static char buf[65536];
        for (int i = 0; i < count; i++) {
            const char *how = "eof";
            set_timeout(c[i].fd, 5);
            int big = 1 << 20;
            setsockopt(c[i].fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
            for (;;) {
                ssize_t n = recv(c[i].fd, buf, sizeof buf, 0);
                if (n > 0) {
                    c[i].body += n;
                    if (c[i].clen >= 0 && c[i].body >= c[i].clen)
                        break; /* complete (keep-alive: no EOF follows) */
                    continue;
                }
                if (n < 0)
                    how = errno == EAGAIN || errno == EWOULDBLOCK ? "timeout" : "reset";
                break;
            }
            printf("%d %lld %lld %s\n", c[i].status, c[i].clen, c[i].body, how);
        }
        printf("done\n");
        fflush(stdout);
    }
    for (int i = 0; i < count; i++)
        close(c[i].fd);
    free(c);
    return 0;
}
