/*
 * powerloss.c — an LD_PRELOAD shim that keeps an undo journal of every
 * write not yet synced, so a test can simulate a power cut (RELIABILITY.md
 * item 2).
 *
 * kill -9 keeps the operating system's page cache: whatever the process
 * wrote reaches the disk eventually, synced or not, so killing the server
 * cannot show a missing fsync. A power cut loses what was not synced. This
 * shim records, per file, what each write since the file's last
 * fsync/fdatasync overwrote; after the server is killed, the test reads the
 * journal and puts the unsynced bytes back as a power cut could leave them
 * (tests/blackbox/lib/powerloss.mjs: all reverted, or torn sector by sector
 * between old, new and garbage).
 *
 * DESIGN. Files opened under $PARLEY_POWERLOSS_DIR (the data directory)
 * are tracked by descriptor, except SQLite's "-shm" index, which holds no
 * durable data (SQLite rebuilds it after a crash). For a tracked file:
 *   - pwrite/pwrite64/write first append an undo record to the journal
 *     ($PARLEY_POWERLOSS_JOURNAL) with the file's size and the bytes the
 *     write is about to overwrite, then perform the write;
 *   - ftruncate/ftruncate64 record the size and the bytes cut off;
 *   - fsync/fdatasync perform the sync, then append a sync record: from
 *     then on the file's earlier records are no longer undone.
 * When a sync leaves no file with unsynced records, the journal is emptied,
 * so it stays as small as the unsynced data.
 *
 * Invariants:
 *   1. Write-ahead: a write's undo record is in the journal before the write
 *      happens, so any write the server made is covered; a record whose
 *      write never happened restores the bytes that are there anyway.
 *   2. A sync record is written only after the real sync returned 0, and
 *      before the caller sees the return: nothing the server acknowledged
 *      after a sync can be undone by the journal.
 *   3. One mutex orders every tracked write, truncate, sync and journal
 *      append, so the journal's order is the order the file saw.
 *   4. The journal is written with plain write(2) and never synced: the
 *      test reads it after kill -9, from the page cache, never after a real
 *      power cut.
 *
 * Journal record (little-endian, packed):
 *   u8 kind ('W' write, 'T' truncate, 'S' sync)  u16 path length  path
 *   u64 offset (W: where; T: the new size)  u64 length (W: bytes written)
 *   u64 old size (the file's size before)  u64 pre length  pre bytes
 * A record cut short at the end of the journal is ignored by the reader.
 *
 * $PARLEY_POWERLOSS_NOSYNC_TRIGGER: while the file it names exists,
 * fsync and fdatasync return 0 without syncing or recording anything — a
 * disk that lies about flushing. The test uses it to prove that it catches
 * lost acknowledged writes.
 *
 * Any thread of the preloaded process.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536 /* descriptors above this are not tracked */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* invariant 3 */
static char *paths[MAX_FD];      /* tracked descriptor -> absolute path (owned) */
static unsigned pending[MAX_FD]; /* records since the descriptor's file's last sync */
static int journal_fd = -1;      /* the journal, opened O_APPEND on first use */
static int top_fd = -1;          /* highest descriptor ever tracked */
static int dirty_closed;         /* a file was closed with unsynced records */
static const char *watch_dir;    /* $PARLEY_POWERLOSS_DIR, or NULL: track nothing */
static size_t watch_len;         /* its length */

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

/*
 * Resolve the real functions. Runs as a constructor, and again from any
 * wrapper called before it (another library's constructor may open or
 * write a file first); running twice stores the same values. real_fdatasync
 * is set last: the wrappers test it.
 */
__attribute__((constructor)) static void init(void)
{
    watch_dir = getenv("PARLEY_POWERLOSS_DIR");
    if (watch_dir && !*watch_dir)
        watch_dir = NULL;
    watch_len = watch_dir ? strlen(watch_dir) : 0;
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_close = dlsym(RTLD_NEXT, "close");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    __atomic_store_n(&real_fdatasync, (int (*)(int))dlsym(RTLD_NEXT, "fdatasync"),
                     __ATOMIC_RELEASE);
}

/* Write all of buf to the journal; a failure aborts (the test would lie). */
static void journal_put(const void *buf, size_t n)
{
    if (journal_fd < 0) {
        const char *file = getenv("PARLEY_POWERLOSS_JOURNAL");
        if (!file || !*file)
            abort();
        journal_fd = real_open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (journal_fd < 0)
            abort();
    }
    const char *p = buf;
    while (n > 0) {
        ssize_t w = real_write(journal_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            abort();
        p += w;
        n -= (size_t)w;
    }
}

/* One record: header, then pre bytes (read from fd at pre_off, pre_len long). */
static void journal_record(char kind, int fd, uint64_t off, uint64_t len, uint64_t old_size,
                           uint64_t pre_off, uint64_t pre_len)
{
    const char *path = paths[fd];
    uint16_t plen = (uint16_t)strlen(path);
    unsigned char head[1 + 2 + 8 * 4];
    head[0] = (unsigned char)kind;
    memcpy(head + 1, &plen, 2);
    journal_put(head, 3);
    journal_put(path, plen);
    uint64_t nums[4] = {off, len, old_size, pre_len};
    journal_put(nums, sizeof nums);
    char chunk[65536];
    uint64_t done = 0;
    while (done < pre_len) {
        size_t want = pre_len - done < sizeof chunk ? (size_t)(pre_len - done) : sizeof chunk;
        ssize_t r = pread(fd, chunk, want, (off_t)(pre_off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            abort(); /* the size said these bytes exist */
        journal_put(chunk, (size_t)r);
        done += (uint64_t)r;
    }
}

static uint64_t size_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/*
 * Whether fd might be tracked, without the lock: an untracked descriptor
 * (a socket, a log) must not wait behind a tracked file's fsync. A
 * descriptor becomes tracked only in open, before the caller can use it.
 */
static bool maybe_tracked(int fd)
{
    return watch_dir && fd >= 0 && fd < MAX_FD && __atomic_load_n(&paths[fd], __ATOMIC_ACQUIRE);
}

/* Whether fd is a tracked file. Caller holds lock. */
static int tracked(int fd)
{
    return fd >= 0 && fd < MAX_FD && paths[fd] != NULL;
}

/* Record a write of n bytes at off on fd (caller holds lock). */
static void before_write(int fd, uint64_t off, uint64_t n)
{
    uint64_t size = size_of(fd);
    uint64_t pre = 0;
    if (off < size)
        pre = (off + n <= size ? n : size - off);
    journal_record('W', fd, off, n, size, off, pre);
    pending[fd]++;
}

static void remember(int fd, int dirfd, const char *path)
{
    if (fd < 0 || fd >= MAX_FD || !watch_dir || !path)
        return;
    char abs[2 * PATH_MAX + 2];
    if (path[0] == '/') {
        snprintf(abs, sizeof abs, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base))
                return;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t k = readlink(link, base, sizeof base - 1);
            if (k < 0)
                return;
            base[k] = '\0';
        }
        snprintf(abs, sizeof abs, "%s/%s", base, path);
    }
    size_t n = strlen(abs);
    if (strncmp(abs, watch_dir, watch_len) != 0 || (abs[watch_len] != '/' && abs[watch_len]))
        return;
    if (n > 4 && strcmp(abs + n - 4, "-shm") == 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    pthread_mutex_lock(&lock);
    free(paths[fd]);
    __atomic_store_n(&paths[fd], strdup(abs), __ATOMIC_RELEASE);
    pending[fd] = 0;
    if (fd > top_fd)
        top_fd = fd;
    pthread_mutex_unlock(&lock);
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (!real_fdatasync)
        init();
    int fd = real_open(path, flags, mode);
    remember(fd, AT_FDCWD, path);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (!real_fdatasync)
        init();
    int fd = real_open64(path, flags, mode);
    remember(fd, AT_FDCWD, path);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (!real_fdatasync)
        init();
    int fd = real_openat(dirfd, path, flags, mode);
    remember(fd, dirfd, path);
    return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    if (!real_fdatasync)
        init();
    int fd = real_openat64(dirfd, path, flags, mode);
    remember(fd, dirfd, path);
    return fd;
}

int close(int fd)
{
    if (!real_fdatasync)
        init();
    if (fd >= 0 && fd < MAX_FD && watch_dir) {
        /* Unsynced writes of a closed file stay unsynced: its records remain
         * in the journal under its path; only the descriptor is forgotten. */
        pthread_mutex_lock(&lock);
        if (paths[fd] && pending[fd])
            dirty_closed = 1;
        char *old = paths[fd];
        __atomic_store_n(&paths[fd], NULL, __ATOMIC_RELEASE);
        free(old);
        pending[fd] = 0;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    if (!real_fdatasync)
        init();
    if (!maybe_tracked(fd))
        return real_pwrite64(fd, buf, n, off);
    pthread_mutex_lock(&lock);
    if (tracked(fd) && n > 0)
        before_write(fd, (uint64_t)off, n);
    ssize_t rc = real_pwrite64(fd, buf, n, off);
    pthread_mutex_unlock(&lock);
    return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (!real_fdatasync)
        init();
    if (!maybe_tracked(fd))
        return real_pwrite(fd, buf, n, off);
    pthread_mutex_lock(&lock);
    if (tracked(fd) && n > 0)
        before_write(fd, (uint64_t)off, n);
    ssize_t rc = real_pwrite(fd, buf, n, off);
    pthread_mutex_unlock(&lock);
    return rc;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (!real_fdatasync)
        init();
    if (!maybe_tracked(fd))
        return real_write(fd, buf, n);
    pthread_mutex_lock(&lock);
    if (tracked(fd) && n > 0) {
        int fl = fcntl(fd, F_GETFL);
        off_t off = (fl >= 0 && (fl & O_APPEND)) ? (off_t)size_of(fd) : lseek(fd, 0, SEEK_CUR);
        if (off >= 0)
            before_write(fd, (uint64_t)off, n);
    }
    ssize_t rc = real_write(fd, buf, n);
    pthread_mutex_unlock(&lock);
    return rc;
}

static void before_truncate(int fd, uint64_t new_size)
{
    uint64_t size = size_of(fd);
    uint64_t pre = size > new_size ? size - new_size : 0;
    journal_record('T', fd, new_size, 0, size, new_size, pre);
    pending[fd]++;
}

int ftruncate64(int fd, off64_t len)
{
    if (!real_fdatasync)
        init();
    if (!maybe_tracked(fd))
        return real_ftruncate64(fd, len);
    pthread_mutex_lock(&lock);
    if (tracked(fd) && len >= 0)
        before_truncate(fd, (uint64_t)len);
    int rc = real_ftruncate64(fd, len);
    pthread_mutex_unlock(&lock);
    return rc;
}

int ftruncate(int fd, off_t len)
{
    if (!real_fdatasync)
        init();
    if (!maybe_tracked(fd))
        return real_ftruncate(fd, len);
    pthread_mutex_lock(&lock);
    if (tracked(fd) && len >= 0)
        before_truncate(fd, (uint64_t)len);
    int rc = real_ftruncate(fd, len);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Whether syncs are a lie right now ($PARLEY_POWERLOSS_NOSYNC_TRIGGER exists). */
static int lying(void)
{
    const char *trigger = getenv("PARLEY_POWERLOSS_NOSYNC_TRIGGER");
    struct stat st;
    return trigger && *trigger && stat(trigger, &st) == 0;
}

/* After a successful sync of fd: the sync record; the journal is emptied when nothing is pending.
 */
static void after_sync(int fd)
{
    journal_record('S', fd, 0, 0, size_of(fd), 0, 0);
    /* Every descriptor of the same file is synced too. */
    for (int i = 0; i <= top_fd; i++)
        if (paths[i] && (i == fd || strcmp(paths[i], paths[fd]) == 0))
            pending[i] = 0;
    /* A file closed with unsynced data keeps its records: the journal is
     * emptied only while no such file exists and every open one is synced. */
    if (dirty_closed)
        return;
    for (int i = 0; i <= top_fd; i++)
        if (paths[i] && pending[i])
            return;
    if (real_ftruncate(journal_fd, 0) != 0)
        abort();
}

static int sync_common(int fd, int (*real)(int))
{
    if (!watch_dir)
        return real(fd);
    if (lying())
        return 0;
    pthread_mutex_lock(&lock);
    int rc = real(fd);
    if (rc == 0 && tracked(fd))
        after_sync(fd);
    pthread_mutex_unlock(&lock);
    return rc;
}

int fsync(int fd)
{
    if (!real_fdatasync)
        init();
    return sync_common(fd, real_fsync);
}

int fdatasync(int fd)
{
    if (!real_fdatasync)
        init();
    return sync_common(fd, real_fdatasync);
}
