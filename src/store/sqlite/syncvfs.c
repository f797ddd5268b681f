/*
 * syncvfs.c — an SQLite VFS that times every sync (store/synctime.h).
 *
 * SQLite syncs inside COMMIT (the WAL, synchronous=FULL) and inside a
 * checkpoint (the WAL, then the database file), where Parley cannot put a
 * clock around the sync alone. This VFS, "parley-sync", wraps the default
 * VFS found when it is registered (so an LD_PRELOAD shim on the file calls
 * below it still sees every call): each file it opens carries the default
 * VFS's file after a small header, every method forwards to the default
 * one, and xSync is timed and observed as the WAL's or the database's sync
 * by the kind SQLite opened the file as. Nothing else changes: same files,
 * same locks, same errors (a failed sync is returned as it came, and the
 * writer stops as before).
 *
 * Invariants:
 *   1. A file's forwarding methods are the default file's own version:
 *      xOpen gives the wrapper the same iVersion (1, 2 or 3), so SQLite
 *      never calls a method the real file lacks.
 *   2. Registered once (pthread_once), never as the default VFS: only
 *      connections that name it (store_sqlite.c's) are timed.
 *
 * Threads: SQLite calls the methods from whichever thread uses the
 * connection; the histograms are lock-free.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

#include "store/sqlite/sqlite_internal.h"
#include "store/synctime.h"

#define VFS_NAME "parley-sync"

/* A file opened through this VFS: the header, then the real file. */
typedef struct sync_file {
    sqlite3_file base;       /* pMethods: this file's forwarding methods */
    parley_sync_file_t kind; /* which histogram its syncs go to */
    int timed;               /* 0 for files whose syncs are not counted (journals, temp) */
    sqlite3_file *real;      /* the default VFS's file, just after this header */
} sync_file_t;

static sqlite3_vfs *real_vfs;         /* the default VFS at registration */
static sqlite3_vfs sync_vfs;          /* this VFS */
static sqlite3_io_methods methods[3]; /* forwarding methods of iVersion 1, 2, 3 */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered = SQLITE_ERROR; /* the outcome of the registration */

#define REAL(f) (((sync_file_t *)(f))->real)

static int f_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    f->pMethods = NULL;
    return rc;
}
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags)
{
    sync_file_t *sf = (sync_file_t *)f;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = REAL(f)->pMethods->xSync(REAL(f), flags);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (sf->timed && rc == SQLITE_OK) {
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        parley_synctime_observe(sf->kind, us > 0 ? (uint64_t)us : 0);
    }
    return rc;
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}
static int f_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}
static int f_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}
static int f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void f_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    (void)vfs;
    sync_file_t *sf = (sync_file_t *)file;
    memset(sf, 0, sizeof *sf);
    sf->real = (sqlite3_file *)(sf + 1);
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out_flags);
    if (rc != SQLITE_OK || !sf->real->pMethods) {
        /* SQLite calls xClose only when pMethods is set: leave it NULL and
         * close the real file if it was half opened. */
        if (sf->real->pMethods)
            sf->real->pMethods->xClose(sf->real);
        return rc;
    }
    sf->kind = flags & SQLITE_OPEN_WAL ? PARLEY_SYNC_WAL : PARLEY_SYNC_DATABASE;
    sf->timed = (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_DB)) != 0;
    int version = sf->real->pMethods->iVersion;
    sf->base.pMethods = &methods[version >= 3 ? 2 : version == 2 ? 1 : 0];
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}
static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int v_full(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return real_vfs->xDlOpen(real_vfs, name);
}
static void v_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    real_vfs->xDlError(real_vfs, n, out);
}
static void (*v_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return real_vfs->xDlSym(real_vfs, h, sym);
}
static void v_dlclose(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    real_vfs->xDlClose(real_vfs, h);
}
static int v_random(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return real_vfs->xSleep(real_vfs, us);
}
static int v_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, out);
}
static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}
static int v_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static void do_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs)
        return;
    for (int v = 1; v <= 3; v++) {
        sqlite3_io_methods *m = &methods[v - 1];
        *m = (sqlite3_io_methods){
            .iVersion = v,
            .xClose = f_close,
            .xRead = f_read,
            .xWrite = f_write,
            .xTruncate = f_truncate,
            .xSync = f_sync,
            .xFileSize = f_size,
            .xLock = f_lock,
            .xUnlock = f_unlock,
            .xCheckReservedLock = f_check_lock,
            .xFileControl = f_control,
            .xSectorSize = f_sector,
            .xDeviceCharacteristics = f_device,
        };
        if (v >= 2) {
            m->xShmMap = f_shm_map;
            m->xShmLock = f_shm_lock;
            m->xShmBarrier = f_shm_barrier;
            m->xShmUnmap = f_shm_unmap;
        }
        if (v >= 3) {
            m->xFetch = f_fetch;
            m->xUnfetch = f_unfetch;
        }
    }
    sync_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(sync_file_t) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = VFS_NAME,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_random,
        .xSleep = v_sleep,
        .xCurrentTime = v_time,
        .xGetLastError = v_last_error,
        .xCurrentTimeInt64 =
            real_vfs->iVersion >= 2 && real_vfs->xCurrentTimeInt64 ? v_time64 : NULL,
    };
    registered = sqlite3_vfs_register(&sync_vfs, 0);
}

const char *parley_sqlite_sync_vfs(void)
{
    pthread_once(&once, do_register);
    return registered == SQLITE_OK ? VFS_NAME : NULL;
}
