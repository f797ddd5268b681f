/*
 * thread.c — starting one of the server's own threads, named (thread.h).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <string.h>

#include "util/thread.h"

int parley_thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc == 0 && name) {
        char short_name[16]; /* the kernel keeps 15 bytes and the NUL */
        strncpy(short_name, name, sizeof short_name - 1);
        short_name[sizeof short_name - 1] = '\0';
        (void)pthread_setname_np(*t, short_name);
    }
    return rc;
}
