/*
 * faultfs.c — an LD_PRELOAD shim that makes fsync(2) and fdatasync(2)
 * fail with EIO on demand, to test that Parley fails stop on a storage
 * error (RELIABILITY.md item 3).
 *
 * Control: while the file named by $PARLEY_FAULT_TRIGGER exists, every
 * fsync and fdatasync fails with EIO (without syncing). The test creates
 * the file at the moment it wants the disk to start failing. Nothing else
 * is intercepted.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int triggered(void)
{
    const char *path = getenv("PARLEY_FAULT_TRIGGER");
    struct stat st;
    return path && *path && stat(path, &st) == 0;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (triggered()) {
        errno = EIO;
        return -1;
    }
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (triggered()) {
        errno = EIO;
        return -1;
    }
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
