/* fsync_loop — the disk's ceiling for commits that are not batched.
 *
 *   fsync_loop FILE SECONDS [BYTES]
 *
 * Appends BYTES (default 1024) to FILE and fdatasyncs it, again and again,
 * for SECONDS, as a log that commits every record on its own would. Prints
 * one line: FSYNCRESULT ops_per_s=... p50_us=... p99_us=... ops=...
 * FILE is created (truncated if present) and removed at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_u32(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s FILE SECONDS [BYTES]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    double secs = atof(argv[2]);
    size_t len = argc > 3 ? (size_t)atol(argv[3]) : 1024;
    if (secs <= 0 || len == 0 || len > (1u << 20)) {
        fprintf(stderr, "fsync_loop: bad SECONDS or BYTES\n");
        return 2;
    }

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fsync_loop: open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *rec = malloc(len);
    size_t cap = 1 << 20, n = 0;
    unsigned *lat = malloc(cap * sizeof *lat);
    if (!rec || !lat)
        return 1;
    memset(rec, 'x', len);
    rec[len - 1] = '\n';

    off_t off = 0;
    double start = now_s(), end = start + secs, t = start;
    while (t < end) {
        double t0 = t;
        if (pwrite(fd, rec, len, off) != (ssize_t)len) {
            fprintf(stderr, "fsync_loop: write: %s\n", strerror(errno));
            return 1;
        }
        if (fdatasync(fd) != 0) {
            fprintf(stderr, "fsync_loop: fdatasync: %s\n", strerror(errno));
            return 1;
        }
        off += (off_t)len;
        t = now_s();
        if (n == cap) {
            cap *= 2;
            unsigned *grown = realloc(lat, cap * sizeof *lat);
            if (!grown)
                return 1;
            lat = grown;
        }
        lat[n++] = (unsigned)((t - t0) * 1e6);
    }
    close(fd);
    unlink(path);

    qsort(lat, n, sizeof *lat, cmp_u32);
    printf("FSYNCRESULT ops_per_s=%.1f p50_us=%u p99_us=%u ops=%zu\n", (double)n / (t - start),
           n ? lat[n / 2] : 0, n ? lat[(size_t)((double)n * 0.99)] : 0, n);
    free(lat);
    free(rec);
    return 0;
}
