/*
 * metrics.c — the counters behind GET /metrics, their exposition in the
 * Prometheus text format (0.0.4), and the access log (see metrics.h).
 *
 * NOTES ON THE DESIGN
 *
 * Requests are counted in a fixed table indexed by route pattern, method
 * and status class, each cell an atomic added to with relaxed order: the
 * hot path takes no lock and allocates nothing, and a scrape reads every
 * cell (a scrape is not a snapshot; Prometheus expects that). Latency
 * has one lock-free histogram per (route, method) (util/hist.h). Live
 * reads (long-poll, SSE) are counted but their duration is not observed:
 * it is how long the client chose to wait, and would drown the latency
 * of everything else on their route.
 *
 * What is not counted here is read at scrape time: the writer's
 * histograms and queue depth (store/writer.h), the store's sync times
 * (store/synctime.h), the store's sizes and
 * subscriptions (the stat op, on this thread's reader connection, never
 * the writer), the process's memory and descriptors (/proc/self).
 *
 * Invariants:
 *   1. A live reader is counted in exactly once (parley_metrics_live_begin
 *      sets r->live_kind) and out exactly once (parley_api_request_done,
 *      which the transport calls once per request).
 *   2. Every label value comes from a fixed table, so the number of
 *      series is bounded whatever clients send.
 *
 * Threads: counters from any thread; the scrape on an HTTP worker.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/app.h"
#include "api/metrics.h"
#include "parley/parley.h"
#include "store/synctime.h"
#include "util/hist.h"
#include "util/log.h"

#define METHODS 8 /* GET HEAD POST PUT PATCH DELETE OPTIONS other */
#define CLASSES 6 /* 1xx..5xx, none (the client left first) */

static const char *const method_names[METHODS] = {"GET",   "HEAD",   "POST",    "PUT",
                                                  "PATCH", "DELETE", "OPTIONS", "other"};
static const char *const class_names[CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "none"};
static const char *const live_names[PARLEY_LIVE_KINDS] = {"", "long_poll", "sse"};

struct parley_metrics {
    _Atomic uint64_t requests[PARLEY_API_ROUTES][METHODS][CLASSES]; /* finished requests */
    parley_hist_t latency[PARLEY_API_ROUTES][METHODS]; /* seconds, live reads excluded */
    _Atomic int64_t live[PARLEY_LIVE_KINDS];           /* live readers now, by kind */
    _Atomic int64_t connections;                       /* open connections now */
    _Atomic uint64_t replays;                          /* Idempotency-Key replays answered */
    _Atomic uint64_t given_up;                         /* webhook wakes given up */
    double start_s;                                    /* wall time of creation, seconds */
};

int parley_metrics_create(parley_metrics_t **out)
{
    parley_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return PARLEY_ENOMEM;
    for (int i = 0; i < PARLEY_API_ROUTES; i++)
        for (int j = 0; j < METHODS; j++)
            parley_hist_init(&m->latency[i][j], parley_hist_latency_us, parley_hist_latency_n);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    *out = m;
    return 0;
}

void parley_metrics_free(parley_metrics_t *m)
{
    free(m);
}

static parley_metrics_t *of(parley_req_t *r)
{
    return r->app ? r->app->metrics : NULL;
}

void parley_metrics_live_begin(parley_req_t *r, parley_live_kind_t kind)
{
    parley_metrics_t *m = of(r);
    if (!m || r->live_kind || kind <= PARLEY_LIVE_NONE || kind >= PARLEY_LIVE_KINDS)
        return;
    r->live_kind = kind;
    atomic_fetch_add_explicit(&m->live[kind], 1, memory_order_relaxed);
}

void parley_metrics_webhook_given_up(parley_metrics_t *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->given_up, 1, memory_order_relaxed);
}

void parley_metrics_replay(parley_req_t *r)
{
    parley_metrics_t *m = of(r);
    if (m)
        atomic_fetch_add_explicit(&m->replays, 1, memory_order_relaxed);
}

void parley_api_connection(int delta, void *arg)
{
    parley_app_t *app = arg;
    if (app->metrics)
        atomic_fetch_add_explicit(&app->metrics->connections, delta, memory_order_relaxed);
}

static int method_index(const char *m)
{
    for (int i = 0; i < METHODS - 1; i++)
        if (strcmp(m, method_names[i]) == 0)
            return i;
    return METHODS - 1;
}

/* The client's X-Request-Id if it is a sane token (else NULL). */
static const char *request_id(parley_req_t *r)
{
    const char *id = parley_req_header(r, "X-Request-Id");
    if (!id || !*id || strlen(id) > 128)
        return NULL;
    for (const char *c = id; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || *c == '"' || *c == '\\')
            return NULL;
    return id;
}

static void client_addr(parley_req_t *r, char *out, size_t cap)
{
    const struct sockaddr *sa = parley_req_client_addr(r);
    out[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

void parley_api_request_done(parley_req_t *r, int status, uint64_t bytes, uint64_t us, void *arg)
{
    parley_app_t *app = arg;
    parley_metrics_t *m = app->metrics;
    const char *path = parley_req_path(r);
    const char *method = parley_req_method(r);
    int route = parley_api_route_index(path ? path : "");
    if (m) {
        int mi = method_index(method ? method : "");
        int ci = status >= 100 && status < 600 ? status / 100 - 1 : CLASSES - 1;
        atomic_fetch_add_explicit(&m->requests[route][mi][ci], 1, memory_order_relaxed);
        if (r->live_kind > PARLEY_LIVE_NONE && r->live_kind < PARLEY_LIVE_KINDS)
            atomic_fetch_sub_explicit(&m->live[r->live_kind], 1, memory_order_relaxed);
        else if (status)
            parley_hist_observe(&m->latency[route][mi], us);
    }
    r->live_kind = PARLEY_LIVE_NONE;
    if (app->cfg && app->cfg->access_log) {
        char remote[INET6_ADDRSTRLEN];
        client_addr(r, remote, sizeof remote);
        parley_log_access_t a = {
            .remote = remote,
            .method = method,
            .path = path,
            .route = parley_api_route_pattern(route),
            .status = status,
            .bytes = bytes,
            .duration_us = us,
            .user = r->user,
            .request_id = request_id(r),
        };
        parley_log_access(&a);
    }
}

/* ---- exposition ---------------------------------------------------------- */

static void family(parley_buf_t *b, const char *name, const char *type, const char *help)
{
    parley_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series; labels is "" or 'k="v",...' (no braces). */
static void put_hist(parley_buf_t *b, const char *name, const char *labels, const parley_hist_t *h,
                     double scale)
{
    parley_hist_snap_t s;
    parley_hist_read(h, &s);
    const char *sep = *labels ? "," : "";
    for (size_t i = 0; i < s.nbounds; i++)
        parley_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                          (double)s.bounds[i] * scale, (unsigned long long)s.cumulative[i]);
    parley_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                      (unsigned long long)s.cumulative[s.nbounds]);
    if (*labels) {
        parley_buf_printf(b, "%s_sum{%s} %.6f\n", name, labels, (double)s.sum * scale);
        parley_buf_printf(b, "%s_count{%s} %llu\n", name, labels,
                          (unsigned long long)s.cumulative[s.nbounds]);
    } else {
        parley_buf_printf(b, "%s_sum %.6f\n", name, (double)s.sum * scale);
        parley_buf_printf(b, "%s_count %llu\n", name, (unsigned long long)s.cumulative[s.nbounds]);
    }
}

/* Resident memory in bytes, or -1. */
static int64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, rss = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%lld %lld", &size, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

/* Open file descriptors, or -1. */
static int64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int64_t n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/*
 * The time the newest backup in dir was finished, in seconds since the
 * epoch (the modification time of the newest parley-<stamp>.db there: a
 * backup is renamed to that name only once verified and fsynced, whether
 * the server's schedule or `parley backup DIR` in another process made it);
 * 0 if there is none, -1 if dir cannot be read.
 */
static double last_backup_s(const char *dir)
{
    DIR *d = opendir(dir);
    double best = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        unsigned y, mo, dd, h, mi, s, ms;
        char z[3];
        struct stat st;
        if (strlen(e->d_name) != strlen("parley-YYYYMMDDTHHMMSS.mmmZ.db") ||
            sscanf(e->d_name, "parley-%4u%2u%2uT%2u%2u%2u.%3u%2s", &y, &mo, &dd, &h, &mi, &s, &ms,
                   z) != 8 ||
            strcmp(e->d_name + strlen(e->d_name) - 4, "Z.db") != 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
            continue;
        double t = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
        if (t > best)
            best = t;
    }
    closedir(d);
    return best;
}

static void put_requests(parley_buf_t *b, parley_metrics_t *m)
{
    family(b, "parley_http_requests_total", "counter",
           "HTTP requests finished, by route pattern, method and status class (none: the "
           "client left before an answer).");
    for (int i = 0; i < PARLEY_API_ROUTES; i++)
        for (int j = 0; j < METHODS; j++)
            for (int k = 0; k < CLASSES; k++) {
                uint64_t n = atomic_load_explicit(&m->requests[i][j][k], memory_order_relaxed);
                if (n)
                    parley_buf_printf(
                        b,
                        "parley_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} "
                        "%llu\n",
                        parley_api_route_pattern(i), method_names[j], class_names[k],
                        (unsigned long long)n);
            }
    family(b, "parley_http_request_duration_seconds", "histogram",
           "Time from a request's headers to the end of its response, by route pattern and "
           "method; live reads (long-poll, SSE) are not observed.");
    for (int i = 0; i < PARLEY_API_ROUTES; i++)
        for (int j = 0; j < METHODS; j++) {
            if (!parley_hist_count(&m->latency[i][j]))
                continue;
            char labels[160];
            snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\"",
                     parley_api_route_pattern(i), method_names[j]);
            put_hist(b, "parley_http_request_duration_seconds", labels, &m->latency[i][j], 1e-6);
        }
    family(b, "parley_http_connections", "gauge", "HTTP connections open now.");
    parley_buf_printf(b, "parley_http_connections %lld\n",
                      (long long)atomic_load_explicit(&m->connections, memory_order_relaxed));
}

static void put_writer(parley_buf_t *b, parley_writer_t *wr)
{
    parley_writer_stats_t st;
    parley_writer_hists_t h;
    parley_writer_stats(wr, &st);
    parley_writer_histograms(wr, &h);
    family(b, "parley_writer_batch_size", "histogram",
           "Writes per committed group-commit batch (one transaction, one fsync).");
    put_hist(b, "parley_writer_batch_size", "", h.batch_size, 1);
    family(b, "parley_writer_commit_seconds", "histogram",
           "Time in COMMIT per batch: the WAL write and its fsync (SQLite), or the wait for "
           "the server's WAL flush (PostgreSQL).");
    put_hist(b, "parley_writer_commit_seconds", "", h.commit_us, 1e-6);
    family(b, "parley_writer_transaction_seconds", "histogram",
           "Time per committed batch from BEGIN to the end of COMMIT.");
    put_hist(b, "parley_writer_transaction_seconds", "", h.txn_us, 1e-6);
    family(b, "parley_fsync_seconds", "histogram",
           "Time in each sync of the store's files, alone: SQLite's sync of its WAL (what "
           "makes a COMMIT durable) and of its database file (checkpoints); on PostgreSQL, "
           "file=\"wal\" is the COMMIT round trip, which holds the server's WAL flush.");
    for (int f = 0; f < PARLEY_SYNC_FILES; f++) {
        char labels[32];
        snprintf(labels, sizeof labels, "file=\"%s\"", parley_synctime_name((parley_sync_file_t)f));
        put_hist(b, "parley_fsync_seconds", labels, parley_synctime_hist((parley_sync_file_t)f),
                 1e-6);
    }
    family(b, "parley_writer_queue_depth", "gauge",
           "Writes queued for the writer and not yet in a batch.");
    parley_buf_printf(b, "parley_writer_queue_depth %llu\n", (unsigned long long)st.queued);
    family(b, "parley_writer_writes_total", "counter", "Writes committed (or refused) in batches.");
    parley_buf_printf(b, "parley_writer_writes_total %llu\n", (unsigned long long)st.writes);
    family(b, "parley_writer_conflict_retries_total", "counter",
           "Rounds of writes run again alone after a conflict with another transaction.");
    parley_buf_printf(b, "parley_writer_conflict_retries_total %llu\n",
                      (unsigned long long)st.retries);
}

/* The store's figures (from this thread's reader; left out if it fails). */
static void put_store(parley_buf_t *b, parley_app_t *app, parley_metrics_t *m)
{
    parley_store_stat_t st = {-1, -1, -1, -1};
    parley_db_t *db = parley_app_reader(app);
    bool up = false;
    if (db && parley_db_begin(db) == 0) {
        up = parley_db_stat(db, &st) == 0;
        if (!up)
            st = (parley_store_stat_t){-1, -1, -1, -1};
        parley_db_commit(db);
    }
    family(b, "parley_store_up", "gauge",
           "1 if this scrape could read the store (PostgreSQL reachable), else 0; the store's "
           "figures below are left out when it is 0.");
    parley_buf_printf(b, "parley_store_up %d\n", up ? 1 : 0);
    family(b, "parley_live_subscribers", "gauge",
           "Live subscribers now, by kind: long-poll and SSE readers connected to this node; "
           "webhook and pull-wake subscriptions in the store.");
    for (int k = PARLEY_LIVE_LONG_POLL; k < PARLEY_LIVE_KINDS; k++)
        parley_buf_printf(b, "parley_live_subscribers{kind=\"%s\"} %lld\n", live_names[k],
                          (long long)atomic_load_explicit(&m->live[k], memory_order_relaxed));
    if (st.subs_webhook >= 0)
        parley_buf_printf(b, "parley_live_subscribers{kind=\"webhook\"} %lld\n",
                          (long long)st.subs_webhook);
    if (st.subs_pull_wake >= 0)
        parley_buf_printf(b, "parley_live_subscribers{kind=\"pull_wake\"} %lld\n",
                          (long long)st.subs_pull_wake);
    if (st.db_bytes >= 0) {
        family(b, "parley_store_database_bytes", "gauge",
               "Size of the database: SQLite's file, or pg_database_size on PostgreSQL.");
        parley_buf_printf(b, "parley_store_database_bytes %lld\n", (long long)st.db_bytes);
    }
    if (st.wal_bytes >= 0) {
        family(b, "parley_store_wal_bytes", "gauge", "Size of SQLite's write-ahead log file.");
        parley_buf_printf(b, "parley_store_wal_bytes %lld\n", (long long)st.wal_bytes);
    }
}

void parley_api_metrics(parley_req_t *r)
{
    parley_app_t *app = parley_api_app(r);
    parley_metrics_t *m = app->metrics;
    const char *method = parley_req_method(r);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        parley_req_add_header(r, "Allow", "GET, HEAD");
        parley_req_error(r, 405, "method_not_allowed", "use GET");
        return;
    }
    if (!m) {
        parley_req_error(r, 503, "unavailable", "metrics are not collected by this server");
        return;
    }
    parley_buf_t b;
    parley_buf_init(&b, 4u << 20);
    char store[64];
    parley_store_describe(app->store, store, sizeof store);
    store[strcspn(store, " ")] = '\0'; /* the backend's name only */
    family(&b, "parley_build_info", "gauge", "The running build; the value is always 1.");
    parley_buf_printf(&b, "parley_build_info{version=\"%s\",store=\"%s\"} 1\n", PARLEY_VERSION,
                      store);
    family(&b, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch, in seconds.");
    parley_buf_printf(&b, "process_start_time_seconds %.3f\n", m->start_s);
    int64_t rss = resident_bytes(), fds = open_fds();
    if (rss >= 0) {
        family(&b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        parley_buf_printf(&b, "process_resident_memory_bytes %lld\n", (long long)rss);
    }
    if (fds >= 0) {
        family(&b, "process_open_fds", "gauge", "Open file descriptors.");
        parley_buf_printf(&b, "process_open_fds %lld\n", (long long)fds);
    }
    put_requests(&b, m);
    family(&b, "parley_idempotency_replays_total", "counter",
           "Writes answered from a stored Idempotency-Key record (Idempotent-Replayed: true).");
    parley_buf_printf(&b, "parley_idempotency_replays_total %llu\n",
                      (unsigned long long)atomic_load_explicit(&m->replays, memory_order_relaxed));
    family(&b, "parley_webhook_given_up_total", "counter",
           "Webhook wakes whose POSTs kept failing past --webhook-max-age and were given up.");
    parley_buf_printf(&b, "parley_webhook_given_up_total %llu\n",
                      (unsigned long long)atomic_load_explicit(&m->given_up, memory_order_relaxed));
    put_writer(&b, app->writer);
    put_store(&b, app, m);
    if (app->cfg && app->cfg->backup_dir) {
        double t = last_backup_s(app->cfg->backup_dir);
        if (t >= 0) {
            family(&b, "parley_last_backup_timestamp_seconds", "gauge",
                   "When the newest verified backup in --backup-dir was finished, seconds since "
                   "the Unix epoch; 0 before the first.");
            parley_buf_printf(&b, "parley_last_backup_timestamp_seconds %.3f\n", t);
        }
    }
    parley_req_add_header(r, "Cache-Control", "no-store");
    if (strcmp(method, "HEAD") == 0) {
        parley_buf_free(&b);
        parley_req_add_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        parley_req_respond_empty(r, 200);
        return;
    }
    parley_req_respond_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}
