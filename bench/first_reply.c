/* first_reply — how long a server took to answer its first request.
 *
 *   first_reply PORT T0_US TIMEOUT_S PATH [PATH...]
 *
 * T0_US is the moment the server was started, in µs of CLOCK_REALTIME
 * (bash's $EPOCHREALTIME without the dot). For each PATH in turn,
 * first_reply sends `GET PATH` to 127.0.0.1:PORT on a new connection every
 * millisecond (a refused connection, a reset or a non-200 answer is
 * retried) until it gets a 200, and notes the time since T0. Prints one
 * line, FIRSTREPLY ms1=... ms2=... tries=..., and exits 1 if TIMEOUT_S
 * passes first.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One try: 1 if the answer was a 200. */
static int try_once(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        char req[1024], resp[64];
        int len = snprintf(req, sizeof req,
                           "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
                           path, port);
        if (send(fd, req, (size_t)len, MSG_NOSIGNAL) == len) {
            ssize_t got = 0, r;
            while (got < 12 && (r = recv(fd, resp + got, sizeof resp - 1 - (size_t)got, 0)) > 0)
                got += r;
            ok = got >= 12 && memcmp(resp, "HTTP/1.1 200", 12) == 0;
        }
    }
    close(fd);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: first_reply PORT T0_US TIMEOUT_S PATH [PATH...]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long long t0 = atoll(argv[2]);
    long long deadline = now_us() + (long long)(atof(argv[3]) * 1e6);
    long tries = 0;
    printf("FIRSTREPLY");
    for (int i = 4; i < argc; i++) {
        while (!try_once(port, argv[i])) {
            tries++;
            if (now_us() > deadline) {
                printf(" timeout=%s\n", argv[i]);
                return 1;
            }
            usleep(1000);
        }
        tries++;
        printf(" ms%d=%.1f", i - 3, (double)(now_us() - t0) / 1000.0);
    }
    printf(" tries=%ld\n", tries);
    return 0;
}
