/*
 * thread.h — starting one of the server's own threads, named.
 *
 * Every long-lived thread Parley starts carries a name ("parley-writer",
 * "parley-ckpt", ...; at most 15 bytes, the kernel's limit), so `top -H`,
 * `ps -L`, /proc/PID/task/TID/comm, perf and gdb say which is which, and
 * the benchmarks find the writer by its name. libmicrohttpd names its own
 * worker threads ("MHD-worker").
 *
 * Threads: any.
 */
#ifndef PARLEY_UTIL_THREAD_H
#define PARLEY_UTIL_THREAD_H

#include <pthread.h>

/* pthread_create(t, NULL, fn, arg), then name the thread (best effort: a
 * name that cannot be set changes nothing). pthread_create's result: 0 or a
 * positive error number. */
int parley_thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg);

#endif
