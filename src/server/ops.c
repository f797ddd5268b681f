/*
 * ops.c — the operator's commands on a store: `parley backup`, `parley
 * restore`, `parley verify`, `parley export` and `parley import`, and the
 * backups a server takes on a schedule (ops.h).
 *
 * Backup. A read-only connection of its own (beside a running server: the
 * database is in WAL mode, readers never block the writer) copies one
 * consistent snapshot of the whole database with the store's copy_to op
 * (SQLite: VACUUM INTO) into a temporary file in the target's directory.
 * The copy is verified (store/verify.c: the integrity check and Parley's
 * invariants) before anything is installed; then the file write order that
 * every file Parley writes follows (RELIABILITY 6):
 *     write the temporary file, fsync it, rename it to the final name,
 *     fsync the directory.
 * So the final name holds either nothing (or the previous backup) or a
 * complete, verified, durable copy; a crash leaves at worst a stray
 * ".parley-backup-*" temporary file, which the next backup into the same
 * directory removes once it is a day old (TMP_STALE_S: a running backup
 * writes or reads its file all along, and none takes a day). Given a directory, the backup is
 * "parley-YYYYMMDDTHHMMSS.mmmZ.db" in it, and with keep N the oldest such
 * files beyond N are removed once the new one is in place.
 *
 * Restore. Into a stopped store only: the store's lock file (the one a
 * server holds for its whole life) is taken first, so the directory of a
 * running server is refused. FILE is verified first; a store that holds
 * data is refused unless --force (then its contents are discarded). The
 * file is copied to a temporary file beside the database, fsynced, the old
 * database's -wal and -shm are removed (their frames must never be applied
 * to the new file), and the copy is renamed over the database; then the
 * directory is fsynced.
 *
 * PostgreSQL has no file to copy: backup refuses and points to pg_dump and
 * point-in-time recovery.
 *
 * Export and import (store/transfer.c has the format). Export reads one
 * snapshot on a connection of its own (inspect, as verify: beside a live
 * server, on either backend) and writes JSON Lines to stdout. Import opens
 * the store as a server does (parley_store_open: on SQLite it takes the
 * lock file, so a running server's directory is refused; it creates and
 * migrates a missing store) and runs the whole input in one transaction
 * on the writer connection, committed only when every line was read and
 * accepted, rolled back otherwise.
 *
 * Threads: the commands run on the main thread; the schedule's thread only
 * runs backup_into().
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "parley/parley.h"
#include "server/ops.h"
#include "store/sqlite/store_sqlite.h"
#include "store/store.h"
#include "core/search.h"
#include "store/transfer.h"
#include "core/rebuild.h"
#include "core/subscription.h"
#include "store/verify.h"
#include "util/clock.h"
#include "util/log.h"

#define BACKUP_PREFIX "parley-" /* a timestamped backup: parley-<stamp>.db */
#define BACKUP_SUFFIX ".db"
#define BACKUP_STAMP  "YYYYMMDDTHHMMSS.mmmZ"
#define TMP_PREFIX    ".parley-backup-"
#define TMP_STALE_S   (24 * 3600) /* a temporary file this old is a crashed backup's */

/* ---- files ------------------------------------------------------------- */

/* The directory part of path ("." when none) into dir. */
static int dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    int n = !slash          ? snprintf(dir, cap, ".")
            : slash == path ? snprintf(dir, cap, "/")
                            : snprintf(dir, cap, "%.*s", (int)(slash - path), path);
    return n < 0 || (size_t)n >= cap ? PARLEY_EINVAL : 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) != 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* fsync tmp, rename it to final, fsync the directory that holds both. */
static int install(const char *tmp, const char *final)
{
    char dir[PATH_MAX];
    int rc = dir_of(final, dir, sizeof dir);
    if (rc == 0)
        rc = fsync_path(tmp, O_RDONLY);
    if (rc == 0 && rename(tmp, final) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_path(dir, O_RDONLY | O_DIRECTORY);
    return rc;
}

/* A new empty temporary file (0600) in dir: its path in tmp. */
static int make_tmp(const char *dir, char *tmp, size_t cap)
{
    int n = snprintf(tmp, cap, "%s/" TMP_PREFIX "XXXXXX", dir);
    if (n < 0 || (size_t)n >= cap)
        return PARLEY_EINVAL;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

/* Remove the temporary files of crashed backups in dir: ours by name,
 * untouched for TMP_STALE_S. Best effort; the number removed. */
static unsigned sweep_stale(const char *dir)
{
    DIR *d = opendir(dir);
    unsigned removed = 0;
    if (!d)
        return 0;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        struct stat sb;
        if (strncmp(e->d_name, TMP_PREFIX, sizeof TMP_PREFIX - 1) != 0 ||
            fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode) ||
            now - sb.st_mtime < TMP_STALE_S || now - sb.st_atime < TMP_STALE_S)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ---- verification ------------------------------------------------------- */

/*
 * Verify the database file `file`: 0 when clean, 1 when problems were
 * found (the report goes to `report`, or is kept and printed to stderr on
 * problems when report is NULL), 2 when it cannot be opened.
 */
static int verify_file(const char *file, FILE *report)
{
    char url[PATH_MAX + 16];
    parley_db_t *db = NULL;
    snprintf(url, sizeof url, "sqlite:%s", file);
    int rc = parley_store_inspect(url, &db);
    if (rc) {
        fprintf(stderr, "parley: cannot open %s: %s\n", file,
                rc == PARLEY_ENOTFOUND   ? "no such file"
                : rc == PARLEY_ECONFLICT ? "written by a newer parley"
                                         : parley_strerror(rc));
        return 2;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *out = report ? report : open_memstream(&buf, &len);
    long problems = 0;
    if (!out) {
        parley_db_close(db);
        return 2;
    }
    rc = parley_store_verify(db, out, &problems);
    parley_db_close(db);
    if (!report) {
        fclose(out);
        if (problems || rc)
            fputs(buf, stderr);
        free(buf);
    }
    return problems || rc ? 1 : 0;
}

/* ---- backup ------------------------------------------------------------- */

/* The name of a new timestamped backup in dir. */
static int stamped_name(const char *dir, char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(out, cap, "%s/" BACKUP_PREFIX "%04d%02d%02dT%02d%02d%02d.%03ldZ" BACKUP_SUFFIX,
                     dir, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000);
    return n < 0 || (size_t)n >= cap ? PARLEY_EINVAL : 0;
}

/* A file name that stamped_name makes. */
static bool is_stamped(const char *name)
{
    size_t n = strlen(name);
    return n == strlen(BACKUP_PREFIX BACKUP_STAMP BACKUP_SUFFIX) &&
           strncmp(name, BACKUP_PREFIX, strlen(BACKUP_PREFIX)) == 0 &&
           strcmp(name + n - strlen(BACKUP_SUFFIX), BACKUP_SUFFIX) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Remove the oldest timestamped backups in dir beyond keep; *removed. */
static int prune(const char *dir, unsigned keep, unsigned *removed)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    *removed = 0;
    if (!d)
        return -errno;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_stamped(e->d_name))
            continue;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 32;
            char **p = realloc(names, c2 * sizeof *p);
            if (!p) {
                rc = PARLEY_ENOMEM;
                goto out;
            }
            names = p;
            cap = c2;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = PARLEY_ENOMEM;
            goto out;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_names); /* the stamp sorts by time */
    for (size_t i = 0; n > keep && i < n - keep; i++) {
        if (unlinkat(dirfd(d), names[i], 0) != 0 && errno != ENOENT) {
            rc = -errno;
            goto out;
        }
        (*removed)++;
    }
    if (*removed)
        rc = fsync_path(dir, O_RDONLY | O_DIRECTORY);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

/*
 * Back up db into target (a file, or a directory: a timestamped file in
 * it, and keep > 0 prunes to keep files). The final path in made; *bytes
 * its size; *swept the crashed backups' temporary files removed from the
 * target's directory. 0, 1 (the copy failed verification: nothing
 * installed) or an error (why in *what).
 */
static int backup_into(parley_db_t *db, const char *target, unsigned keep, char *made, size_t cap,
                       long long *bytes, unsigned *swept, const char **what)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    bool into_dir = is_dir(target);
    int rc;
    *what = "";
    if (into_dir) {
        snprintf(dir, sizeof dir, "%s", target);
        rc = stamped_name(dir, made, cap);
    } else {
        rc = dir_of(target, dir, sizeof dir);
        if (rc == 0 && snprintf(made, cap, "%s", target) >= (int)cap)
            rc = PARLEY_EINVAL;
    }
    if (rc) {
        *what = "path too long";
        return rc;
    }
    *swept = sweep_stale(dir);
    rc = make_tmp(dir, tmp, sizeof tmp);
    if (rc) {
        *what = "creating a temporary file in the target's directory";
        return rc;
    }
    rc = parley_db_copy_to(db, tmp);
    if (rc) {
        *what = "copying the database";
        goto out_unlink;
    }
    int v = verify_file(tmp, NULL);
    if (v) {
        *what = "the copy failed verification (report above); nothing was installed";
        rc = 1;
        goto out_unlink;
    }
    struct stat sb;
    *bytes = stat(tmp, &sb) == 0 ? (long long)sb.st_size : -1;
    rc = install(tmp, made);
    if (rc) {
        *what = "installing the copy (fsync, rename, fsync of the directory)";
        goto out_unlink;
    }
    if (into_dir && keep) {
        unsigned removed = 0;
        rc = prune(dir, keep, &removed);
        if (rc)
            *what = "removing old backups";
    }
    return rc;

out_unlink:
    unlink(tmp);
    return rc;
}

int parley_backup(const char *store_url, const char *target, unsigned keep)
{
    if (!parley_store_can_copy(store_url)) {
        fprintf(stderr,
                "parley: backup copies an SQLite store's file; a PostgreSQL store is backed up "
                "with PostgreSQL's own tools: pg_dump for a logical copy, or continuous archiving "
                "and point-in-time recovery (pg_basebackup + WAL archiving)\n");
        return 2;
    }
    if (keep && !is_dir(target)) {
        fprintf(stderr, "parley: --keep needs FILE to be a directory (backups are timestamped "
                        "files in it)\n");
        return 2;
    }
    parley_db_t *db = NULL;
    int rc = parley_store_inspect(store_url, &db);
    if (rc) {
        fprintf(stderr, "parley: cannot open the store %s: %s\n", store_url + strlen("sqlite:"),
                rc == PARLEY_ENOTFOUND   ? "no database there"
                : rc == PARLEY_ECONFLICT ? "written by a newer parley"
                                         : parley_strerror(rc));
        return 2;
    }
    char made[PATH_MAX];
    long long bytes = 0;
    unsigned swept = 0;
    const char *what = "";
    rc = backup_into(db, target, keep, made, sizeof made, &bytes, &swept, &what);
    parley_db_close(db);
    if (swept)
        printf("removed %u temporary file%s of interrupted backups (%s*, a day old)\n", swept,
               swept == 1 ? "" : "s", TMP_PREFIX);
    if (rc) {
        fprintf(stderr, "parley: backup failed: %s%s%s\n", what, rc == 1 ? "" : ": ",
                rc == 1 ? "" : parley_strerror(rc));
        return 1;
    }
    printf("backup written and verified: %s (%lld bytes)\n", made, bytes);
    return 0;
}

/* ---- scheduled backups --------------------------------------------------- */

struct parley_backup_sched {
    parley_store_t *store; /* the server's store (borrowed) */
    char *dir;             /* where backups go (owned) */
    unsigned every_s;      /* seconds between backups */
    unsigned keep;         /* backups kept, 0 = all */
    pthread_t thread;      /* the backup thread */
    pthread_mutex_t lock;  /* guards stop */
    pthread_cond_t cond;   /* signalled by stop */
    bool stop;             /* the server is stopping */
};

static void backup_once(parley_backup_sched_t *b)
{
    parley_db_t *db = NULL;
    int rc = parley_store_reader(b->store, &db);
    if (rc) {
        parley_log_error("backup: cannot open a read connection: %s", parley_strerror(rc));
        return;
    }
    char made[PATH_MAX];
    long long bytes = 0;
    unsigned swept = 0;
    const char *what = "";
    rc = backup_into(db, b->dir, b->keep, made, sizeof made, &bytes, &swept, &what);
    parley_db_close(db);
    if (swept)
        parley_log_info("backup: removed %u temporary file%s of interrupted backups in %s", swept,
                        swept == 1 ? "" : "s", b->dir);
    if (rc)
        parley_log_error("backup into %s failed: %s%s%s", b->dir, what, rc == 1 ? "" : ": ",
                         rc == 1 ? "" : parley_strerror(rc));
    else
        parley_log_info("backup written and verified: %s (%lld bytes)", made, bytes);
}

static void *sched_main(void *arg)
{
    parley_backup_sched_t *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        struct timespec due;
        clock_gettime(CLOCK_MONOTONIC, &due);
        due.tv_sec += b->every_s;
        while (!b->stop && pthread_cond_timedwait(&b->cond, &b->lock, &due) != ETIMEDOUT)
            ;
        if (b->stop)
            break;
        pthread_mutex_unlock(&b->lock);
        backup_once(b);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

int parley_backup_sched_start(parley_store_t *store, const char *dir, unsigned every_s,
                              unsigned keep, parley_backup_sched_t **out)
{
    parley_backup_sched_t *b = calloc(1, sizeof *b);
    pthread_condattr_t ca;
    if (!b)
        return PARLEY_ENOMEM;
    b->store = store;
    b->every_s = every_s;
    b->keep = keep;
    b->dir = strdup(dir);
    if (!b->dir) {
        free(b);
        return PARLEY_ENOMEM;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;
        free(b->dir);
        free(b);
        return rc;
    }
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->thread, NULL, sched_main, b) != 0) {
        pthread_cond_destroy(&b->cond);
        pthread_mutex_destroy(&b->lock);
        free(b->dir);
        free(b);
        return PARLEY_ENOMEM;
    }
    *out = b;
    return 0;
}

void parley_backup_sched_stop(parley_backup_sched_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b->dir);
    free(b);
}

/* ---- verify --------------------------------------------------------------- */

int parley_verify(const char *store_url)
{
    parley_db_t *db = NULL;
    char shown[512]; /* the URL for messages: a password masked */
    parley_store_url_redact(strncmp(store_url, "sqlite:", 7) == 0 ? store_url + 7 : store_url,
                            shown, sizeof shown);
    int rc = parley_store_inspect(store_url, &db);
    if (rc) {
        fprintf(stderr, "parley: cannot open the store %s: %s\n", shown,
                rc == PARLEY_ENOTFOUND   ? "no database there"
                : rc == PARLEY_ECONFLICT ? "written by a newer parley (see above)"
                                         : parley_strerror(rc));
        return 2;
    }
    int64_t version = 0, mine = 0;
    if (parley_db_schema_version(db, &version, &mine) == 0 && version < mine) {
        /* The checks read this version's tables; verify never writes. */
        fprintf(stderr,
                "parley: the store %s is at schema version %lld; this parley needs version "
                "%lld: start this version's `parley serve` on it once to migrate it (verify "
                "opens the store read-only and does not migrate)\n",
                shown, (long long)version, (long long)mine);
        parley_db_close(db);
        return 2;
    }
    long problems = 0;
    rc = parley_store_verify_with(db, stdout, parley_rebuild_check, NULL, &problems);
    parley_db_close(db);
    return problems || rc ? 1 : 0;
}

/* ---- webhook signing keys ------------------------------------------------------ */

/* Open the store for `parley keys`: a connection that may write when
 * rw. NULL (after a message) when it cannot. */
static parley_db_t *keys_open(const char *store_url, bool rw)
{
    parley_db_t *db = NULL;
    char shown[512];
    parley_store_url_redact(strncmp(store_url, "sqlite:", 7) == 0 ? store_url + 7 : store_url,
                            shown, sizeof shown);
    int rc = rw ? parley_store_admin(store_url, &db) : parley_store_inspect(store_url, &db);
    if (rc)
        fprintf(stderr, "parley: cannot open the store %s: %s\n", shown,
                rc == PARLEY_ENOTFOUND ? "no database there (start the server once first)"
                : rc == PARLEY_ECONFLICT
                    ? "its schema is not this build's (start this parley's server once first)"
                    : parley_strerror(rc));
    return rc ? NULL : db;
}

int parley_keys_list(const char *store_url)
{
    parley_db_t *db = keys_open(store_url, false);
    if (!db)
        return 2;
    parley_sub_key_t *keys = calloc(PARLEY_SUB_KEYS_MAX, sizeof *keys);
    int n = 0;
    int64_t now = parley_clock_now_ms();
    int rc = keys ? parley_subscription_keys_list(db, now, keys, &n) : PARLEY_ENOMEM;
    parley_db_close(db);
    if (rc == 0 && n == 0)
        printf("no signing key yet (the server makes one at its first start)\n");
    for (int i = n - 1; rc == 0 && i >= 0; i--) { /* newest first */
        char created[40], until[40];
        parley_clock_format(keys[i].created_ms, created, sizeof created);
        parley_clock_format(keys[i].retires_ms, until, sizeof until);
        printf("%-48s created %s  %s%s\n", keys[i].kid, created,
               keys[i].active      ? "active: signs deliveries"
               : keys[i].published ? "in the JWK Set until "
                                   : "retired at ",
               keys[i].active ? "" : until);
    }
    if (keys)
        memset(keys, 0, PARLEY_SUB_KEYS_MAX * sizeof *keys);
    free(keys);
    if (rc) {
        fprintf(stderr, "parley: cannot read the keys: %s\n", parley_strerror(rc));
        return 1;
    }
    return 0;
}

int parley_keys_rotate(const char *store_url, int64_t overlap_ms)
{
    char kid[PARLEY_KEYRING_KID_MAX + 1], until[40];
    parley_db_t *db = keys_open(store_url, true);
    if (!db)
        return 2;
    int64_t now = parley_clock_now_ms();
    int rc = parley_subscription_keys_rotate(db, now, overlap_ms, kid);
    parley_db_close(db);
    if (rc) {
        fprintf(stderr, "parley: cannot store the new key: %s\n", parley_strerror(rc));
        return 1;
    }
    parley_clock_format(now + overlap_ms, until, sizeof until);
    printf("new signing key %s: servers sign with it within about a second; the keys it "
           "replaces stay in the JWK Set until %s\n",
           kid, until);
    return 0;
}

/* ---- restore --------------------------------------------------------------- */

static int count_row(void *arg, int n, const char *const *vals, const size_t *lens)
{
    (void)n;
    (void)vals;
    (void)lens;
    (*(long *)arg)++;
    return 1; /* one is enough */
}

/* Whether the database file holds data: a stream, a document, a
 * conversation, a snapshot or a subscription. A file that is not there, or
 * empty, holds none; one that cannot be read counts as holding data. */
static bool holds_data(const char *file)
{
    static const char *const tables[] = {"streams", "documents", "conversations", "snapshots",
                                         "subscriptions"};
    struct stat sb;
    if (stat(file, &sb) != 0 || sb.st_size == 0)
        return false;
    char url[PATH_MAX + 16];
    snprintf(url, sizeof url, "sqlite:%s", file);
    parley_db_t *db = NULL;
    if (parley_store_inspect(url, &db) != 0)
        return true;
    long rows = 0;
    for (size_t i = 0; i < sizeof tables / sizeof tables[0] && !rows; i++) {
        int rc = parley_db_table_scan(db, tables[i], "1", "1", count_row, &rows);
        if (rc < 0)
            rows = 1;
    }
    parley_db_close(db);
    return rows > 0;
}

/* Copy src into the existing empty file dst. */
static int copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
    if (in < 0)
        return -errno;
    out = open(dst, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (out < 0) {
        rc = -errno;
        goto out;
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = -errno;
                goto out;
            }
            off += w;
        }
    }
out:
    if (out >= 0 && close(out) != 0 && rc == 0)
        rc = -errno;
    close(in);
    return rc;
}

int parley_restore(const char *store_url, const char *file, bool force)
{
    if (strncmp(store_url, "sqlite:", 7) != 0) {
        fprintf(stderr, "parley: restore installs an SQLite store's file; restore a PostgreSQL "
                        "store with PostgreSQL's own tools (pg_restore, or point-in-time "
                        "recovery)\n");
        return 2;
    }
    const char *db_file = store_url + 7;
    char dir[PATH_MAX], tmp[PATH_MAX], side[PATH_MAX + 8];
    int lock_fd = -1, status = 1;
    if (dir_of(db_file, dir, sizeof dir) != 0) {
        fprintf(stderr, "parley: path too long: %s\n", db_file);
        return 2;
    }
    int v = verify_file(file, NULL);
    if (v == 2)
        return 2;
    if (v) {
        fprintf(stderr,
                "parley: refusing to restore %s: it failed verification (report "
                "above)\n",
                file);
        return 1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "parley: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int rc = parley_sqlite_lock(db_file, &lock_fd);
    if (rc == PARLEY_ELOCKED) {
        fprintf(stderr,
                "parley: refusing to restore into %s: a parley server is running on it "
                "(stop it first)\n",
                db_file);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "parley: cannot lock %s: %s\n", db_file, parley_strerror(rc));
        return 1;
    }
    if (holds_data(db_file) && !force) {
        fprintf(stderr,
                "parley: refusing to restore into %s: the store holds data; pass "
                "--force to replace it (its contents are discarded; back it up first)\n",
                db_file);
        goto out;
    }
    rc = make_tmp(dir, tmp, sizeof tmp);
    if (rc == 0) {
        rc = copy_file(file, tmp);
        if (rc)
            unlink(tmp);
    }
    if (rc) {
        fprintf(stderr, "parley: restore failed copying %s: %s\n", file, parley_strerror(rc));
        goto out;
    }
    /* The replaced database's WAL must never meet the new file. */
    for (int i = 0; i < 2 && rc == 0; i++) {
        snprintf(side, sizeof side, "%s%s", db_file, i ? "-shm" : "-wal");
        if (unlink(side) != 0 && errno != ENOENT)
            rc = -errno;
    }
    if (rc == 0)
        rc = install(tmp, db_file);
    if (rc) {
        unlink(tmp);
        fprintf(stderr, "parley: restore failed installing %s: %s\n", db_file, parley_strerror(rc));
        goto out;
    }
    printf("restored %s from %s (verified)\n", db_file, file);
    status = 0;
out:
    close(lock_fd);
    return status;
}

/* ---- export and import (store/transfer.c) ------------------------------------- */

/* The store's URL for messages: "sqlite:" dropped, a password masked. */
static void shown_url(const char *store_url, char *out, size_t cap)
{
    parley_store_url_redact(strncmp(store_url, "sqlite:", 7) == 0 ? store_url + 7 : store_url, out,
                            cap);
}

int parley_export(const char *store_url, const char *user)
{
    parley_db_t *db = NULL;
    char shown[512];
    int64_t objects = 0;
    shown_url(store_url, shown, sizeof shown);
    int rc = parley_store_inspect(store_url, &db);
    if (rc) {
        fprintf(stderr, "parley: cannot open the store %s: %s\n", shown,
                rc == PARLEY_ENOTFOUND   ? "no database there"
                : rc == PARLEY_ECONFLICT ? "written by a newer parley (see above)"
                                         : parley_strerror(rc));
        return 2;
    }
    rc = parley_db_begin(db); /* one snapshot for every kind */
    if (rc == 0) {
        rc = parley_store_export(db, user, stdout, stderr, &objects);
        parley_db_commit(db);
    }
    parley_db_close(db);
    if (fflush(stdout) != 0 && rc == 0)
        rc = -errno;
    if (rc) {
        fprintf(stderr, "parley: export failed: %s\n", parley_strerror(rc));
        return 1;
    }
    fprintf(stderr, "parley: exported %lld objects from %s%s%s\n", (long long)objects, shown,
            user ? " for user " : "", user ? user : "");
    return 0;
}

int parley_import(const char *store_url)
{
    parley_store_t *store = NULL;
    parley_import_stats_t st = {0};
    char shown[512];
    shown_url(store_url, shown, sizeof shown);
    int rc = parley_store_open(store_url, &store);
    if (rc == PARLEY_ELOCKED) {
        fprintf(stderr,
                "parley: refusing to import into %s: a parley server is running on it (stop it "
                "first; nothing was imported)\n",
                shown);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "parley: cannot open the store %s: %s\n", shown,
                rc == PARLEY_ECONFLICT ? "written by a newer parley (see above)"
                                       : parley_strerror(rc));
        return 2;
    }
    parley_db_t *db = parley_store_writer(store);
    rc = parley_db_begin(db);
    if (rc == 0) {
        rc = parley_store_import(db, stdin, stderr, &st);
        /* The index is the store's own (not exported): the conversations
         * the import wrote get their messages indexed in its transaction. */
        size_t i;
        json_t *id;
        json_array_foreach(st.conversations, i, id)
        {
            if (rc)
                break;
            rc = parley_search_reindex(db, json_string_value(id));
        }
        json_decref(st.conversations);
        if (rc == 0)
            rc = parley_db_commit(db);
        else
            parley_db_rollback(db);
    }
    parley_store_stop(store);
    parley_store_close(store);
    if (rc) {
        if (rc != PARLEY_EINVAL && rc != PARLEY_ECONFLICT)
            fprintf(stderr, "parley: import failed: %s; nothing was imported\n",
                    parley_strerror(rc));
        else
            fprintf(stderr, "parley: import refused; nothing was imported\n");
        return 1;
    }
    fprintf(stderr,
            "parley: imported %lld objects into %s (%lld already there with the same content, "
            "%lld lines)\n",
            (long long)st.inserted, shown, (long long)st.present, (long long)st.lines);
    return 0;
}
