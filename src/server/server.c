/*
 * server.c — the server: what include/parley/parley.h promises. It is the
 * composition root, the only place that sees every layer: it wires the
 * pieces together and runs them: the store (with its background work:
 * SQLite's checkpointer), the fan-out hub, the writer (with its
 * maintenance tick), the server's keys, webhook delivery, the application
 * the API answers for (parley_app_t, api/app.h) and the HTTP transport
 * with the API router. Nothing below includes anything from server/.
 *
 * Start-up order follows the dependencies (store → hub → the store's
 * background work → writer → keys → webhook delivery → HTTP); the start-up line is printed
 * once the port is bound.
 *
 * Shutdown (SIGINT/SIGTERM, or a fatal storage error):
 *   1. stop accepting connections (quiesce);
 *   2. close the hub: parked long-polls answer, SSE streams end;
 *   3. stop the writer: every queued write is committed and answered;
 *   4. wait for in-flight requests to finish sending (bounded);
 *   5. stop HTTP (and close the API's reader connections), then webhook delivery (after the writer,
 * which has answered its outcome writes), the store's background work (SQLite: a last checkpoint)
 * and the store (releasing the lock). The exit status says whether the stop was clean or a storage
 * failure.
 *
 * Threads: parley_server_run() blocks the calling thread, which only
 * waits for signals; parley_server_stop() and the fatal callbacks set flags.
 */
#include <errno.h>
#include <malloc.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/ratelimit.h"
#include "api/hub.h"
#include "api/metrics.h"
#include "codec/keyring.h"
#include "core/blob.h"
#include "core/maintenance.h"
#include "core/stream.h"
#include "core/subscription.h"
#include "api/app.h"
#include "api/visits.h"
#include "http/transport.h"
#include "server/ops.h"
#include "server/webhook.h"
#include "parley/parley.h"
#include "store/store.h"
#include "store/writer.h"
#include "util/clock.h"
#include "util/log.h"

/* One running server. */
typedef struct parley_server {
    parley_config_t cfg;            /* configuration (copied) */
    parley_app_t app;               /* what handlers see */
    parley_http_t *http;            /* the HTTP transport */
    parley_ratelimit_t *ratelimit;  /* request rate limits, or NULL */
    parley_keyring_t *keyring;      /* webhook signing key, callback-token secret */
    parley_webhook_t *webhook;      /* delivers webhook wakes */
    parley_backup_sched_t *backups; /* scheduled backups (--backup-every), or NULL */
    parley_metrics_t *metrics;      /* /metrics counters */
    atomic_bool maintainer;         /* this node runs maintenance and webhook delivery */
} parley_server_t;

static atomic_bool g_stop_requested; /* parley_server_stop() or a fatal error */
static atomic_bool g_fatal;          /* a storage failure stopped the server */

/* The writer's commit callback: wake the live readers of what changed. */
static void on_commit(void *arg, const parley_wakeset_t *wake)
{
    parley_hub_notify_set(arg, wake);
}

void parley_config_init(parley_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen_host = "127.0.0.1";
    cfg->listen_port = 4437;
    cfg->data_dir = "./data";
    cfg->long_poll_ms = 30000;
    cfg->sse_recycle_ms = 60000;
    cfg->max_append_bytes = 8u << 20;
    cfg->read_window_bytes = 256u << 10;
    cfg->read_budget_bytes = 8u << 20;
    cfg->max_connections = 65536;
    cfg->max_json_bytes = 1536 * 1024;
    cfg->idempotency_ttl_s = 86400;
    cfg->session_max_attempts = 3;
    cfg->backup_keep = 7;
    cfg->webhook_max_age_s = 86400;
    cfg->snapshot_visit_interval_s = 1800;
    cfg->blob_max_bytes = 100ull << 20;
    cfg->blob_grace_s = 86400;
}

bool parley_config_store_ok(const parley_config_t *cfg, const char **why)
{
    return !cfg->store_url || parley_store_url_ok(cfg->store_url, why);
}

void parley_server_stop(void)
{
    atomic_store(&g_stop_requested, true);
}

/* The store's remote callback: another node committed changes (or the
 * listener reconnected and wakes everything): same path as a local commit. */
static void on_remote(void *arg, const parley_wakeset_t *wake)
{
    parley_server_t *srv = arg;
    parley_hub_notify_set(srv->app.hub, wake);
}

static void on_fatal(void *arg)
{
    (void)arg;
    atomic_store(&g_fatal, true);
    atomic_store(&g_stop_requested, true);
}

/* Writer maintenance, about once a second (core/maintenance.h). */
static int writer_tick(parley_db_t *db, void *arg, parley_wakeset_t *wake)
{
    parley_server_t *srv = arg;
    parley_maintenance_cfg_t cfg = {(int64_t)srv->cfg.idempotency_ttl_s,
                                    (int64_t)srv->cfg.feed_retention_s,
                                    (int64_t)srv->cfg.blob_grace_s};
    bool mine, changed = false;
    /* Every node, every tick: the signing keys an operator rotated (or
     * whose overlap ended) — a read of the few server_keys rows. */
    int rc = srv->keyring ? parley_subscription_keys_reload(db, parley_clock_now_ms(), srv->keyring,
                                                            &changed)
                          : 0;
    if (rc)
        parley_log_warn("cannot reload the webhook signing keys: %s", parley_strerror(rc));
    else if (changed)
        parley_log_info("webhook signing keys changed: deliveries are signed with %s",
                        parley_keyring_kid(srv->keyring));
    rc = parley_db_maintainer(db, &mine); /* nodes on one database take turns */
    atomic_store(&srv->maintainer, rc == 0 && mine);
    if (rc || !mine)
        return rc;
    return parley_maintenance_tick(db, &cfg, parley_clock_now_ms(), wake);
}

/* Writer thread, at start-up: the server's keys (made the first time). */
static int load_keys(parley_db_t *db, void *arg)
{
    parley_server_t *srv = arg;
    bool changed;
    int rc = parley_subscription_keys(db, parley_clock_now_ms(), &srv->keyring);
    if (rc == 0) /* keys rotated before this start */
        rc = parley_subscription_keys_reload(db, parley_clock_now_ms(), srv->keyring, &changed);
    if (rc == 0)
        rc = parley_blob_url_key(db, parley_clock_now_ms(), srv->app.blob_key);
    return rc;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            parley_log_warn("cannot raise the open-file limit: %s", strerror(errno));
    }
}

static bool is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "::1") == 0 || strncmp(host, "127.", 4) == 0;
}

int parley_server_run(const parley_config_t *cfg)
{
    parley_server_t *srv = calloc(1, sizeof *srv);
    sigset_t sigs;
    int rc;
    unsigned port = 0;
    const char *store_url = cfg->store_url;                  /* NULL: the default below */
    char default_url[PATH_MAX + sizeof "sqlite:/parley.db"]; /* sqlite:<data_dir>/parley.db */
    char store_desc[PATH_MAX + 64];                          /* "sqlite <file>" for the banner */
    if (!srv)
        return PARLEY_ENOMEM;
    srv->cfg = *cfg;
    /* Readers' windows (up to --read-window each) come and go by the
     * thousand. A fixed mmap threshold gives every block of 128 KiB or more
     * back to the system when it is freed; glibc's default raises the
     * threshold after the first such free, and the freed windows then stay
     * in the heap as resident garbage (measured: 1,000 readers of an 8 MiB
     * stream left 150 MiB behind, against 32 MiB with the fixed one). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    parley_log_set_json(cfg->log_json); /* before the first line */
    atomic_store(&g_stop_requested, false);
    atomic_store(&g_fatal, false);

    if (parley_auth_local_mode(cfg) && !is_loopback(cfg->listen_host)) {
        parley_log_error("refusing to listen on %s: no --admin-key or --jwt-secret is set, so "
                         "Parley runs in local mode and listens on loopback only",
                         cfg->listen_host);
        rc = PARLEY_EINVAL;
        goto out_free;
    }

    rc = parley_metrics_create(&srv->metrics);
    if (rc)
        goto out_free;
    srv->app.metrics = srv->metrics;

    rc = parley_api_ratelimit_create(cfg, &srv->ratelimit);
    if (rc) {
        parley_log_error("invalid rate limit: %s", parley_strerror(rc));
        goto out_free;
    }
    srv->app.ratelimit = srv->ratelimit;

    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* threads created below inherit it */

    if (!store_url && snprintf(default_url, sizeof default_url, "sqlite:%s/parley.db",
                               cfg->data_dir) >= (int)sizeof default_url) {
        parley_log_error("data directory path too long: %s", cfg->data_dir);
        rc = PARLEY_EINVAL;
        goto out_free;
    }
    if (!store_url)
        store_url = default_url;
    rc = parley_store_open(store_url, &srv->app.store);
    char shown[512]; /* the URL for log lines: a password masked */
    parley_store_url_redact(store_url, shown, sizeof shown);
    if (rc == PARLEY_ELOCKED) {
        parley_log_error("the store %s is in use by another parley process; stop it first or "
                         "pass a different --data or --store",
                         shown);
        goto out_free;
    }
    if (rc == PARLEY_ECONFLICT) {
        parley_log_error("refusing to open the store %s: it was written by a newer parley (see "
                         "above)",
                         shown);
        goto out_free;
    }
    if (rc == PARLEY_ESTORE) {
        parley_log_error("cannot open the store %s: the database failed its integrity check or "
                         "could not be read (see above); refusing to serve it",
                         shown);
        goto out_free;
    }
    if (rc) {
        parley_log_error("cannot open the store %s: %s", shown, parley_strerror(rc));
        goto out_free;
    }
    parley_store_describe(srv->app.store, store_desc, sizeof store_desc);
    parley_stream_touch_init(parley_clock_now_ms());
    rc = parley_hub_create(&srv->app.hub);
    if (rc)
        goto out_store;
    parley_store_hooks_t hooks = {.on_fatal = on_fatal, .on_remote = on_remote, .arg = srv};
    rc = parley_store_start(srv->app.store, &hooks); /* SQLite: the checkpointer */
    if (rc)
        goto out_hub;
    rc = parley_writer_start(srv->app.store, on_commit, srv->app.hub, on_fatal, srv,
                             &srv->app.writer);
    if (rc)
        goto out_store_stop;
    parley_writer_set_tick(srv->app.writer, writer_tick, srv);
    rc = parley_writer_call(srv->app.writer, load_keys, srv);
    if (rc) {
        parley_log_error("cannot load the webhook signing key: %s", parley_strerror(rc));
        goto out_writer;
    }
    srv->app.keyring = srv->keyring;
    rc =
        parley_api_visits_create(cfg->snapshot_visit_interval_s, srv->app.writer, &srv->app.visits);
    if (rc)
        goto out_writer;
    /* One node alone delivers from the start; nodes sharing a database
     * wait for the first maintenance tick to say which one it is. */
    atomic_store(&srv->maintainer, !parley_store_shared(srv->app.store));
    rc = parley_webhook_start(srv->app.store, srv->app.writer, srv->app.hub, srv->keyring,
                              cfg->public_url, &srv->maintainer,
                              (int64_t)cfg->webhook_max_age_s * 1000, srv->metrics, &srv->webhook);
    if (rc)
        goto out_writer;
    srv->app.cfg = &srv->cfg;
    parley_http_config_t hc = {
        .host = strcmp(cfg->listen_host, "localhost") == 0 ? "127.0.0.1" : cfg->listen_host,
        .port = cfg->listen_port,
        .threads = cfg->threads,
        .max_connections = cfg->max_connections,
        .read_window = cfg->read_window_bytes,
        .read_budget = cfg->read_budget_bytes,
        .route = parley_api_route,
        .body_limit = parley_api_body_limit,
        .body_streamed = parley_api_body_streamed,
        .done = parley_api_request_done,
        .connection = parley_api_connection,
        .arg = &srv->app,
    };
    parley_app_init(&srv->app); /* its readers live as long as the transport */
    rc = parley_http_start(&hc, &srv->http, &port);
    if (rc) {
        parley_app_fini(&srv->app);
        goto out_writer;
    }

    if (cfg->backup_every_s && cfg->backup_dir) {
        rc = parley_backup_sched_start(srv->app.store, cfg->backup_dir, cfg->backup_every_s,
                                       cfg->backup_keep, &srv->backups);
        if (rc) {
            parley_log_error("cannot start scheduled backups into %s: %s", cfg->backup_dir,
                             parley_strerror(rc));
            parley_http_stop(srv->http);
            parley_app_fini(&srv->app);
            goto out_writer;
        }
    }

    if (!cfg->quiet) {
        char banner[PATH_MAX + 512];
        snprintf(banner, sizeof banner, "parley %s listening on http://%s:%u (store %s; %s)",
                 PARLEY_VERSION, cfg->listen_host, port, store_desc,
                 parley_auth_local_mode(cfg)           ? "local mode: no auth, loopback only"
                 : cfg->jwt_secret && *cfg->jwt_secret ? "auth: admin key and user JWTs"
                                                       : "auth: admin key only");
        parley_log_line(stdout, banner); /* a JSON object with --log-format json */
    }

    while (!atomic_load(&g_stop_requested)) {
        struct timespec ts = {0, 100 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            parley_log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
    }

    /* Graceful shutdown (see the notes at the top). */
    parley_http_quiesce(srv->http);
    parley_hub_close(srv->app.hub);
    parley_writer_stop(srv->app.writer);
    for (int i = 0; i < 100 && parley_http_inflight(srv->http) > 0; i++)
        usleep(50 * 1000);
    parley_hub_close(srv->app.hub); /* anything that parked meanwhile */
    parley_http_stop(srv->http);
    parley_app_fini(&srv->app); /* no handler runs any more */
    rc = atomic_load(&g_fatal) ? PARLEY_ESTORE : 0;
    if (rc)
        parley_log_error("stopped after a storage failure; restart to recover");

out_writer:
    parley_backup_sched_stop(srv->backups); /* a backup under way finishes first */
    srv->backups = NULL;
    parley_writer_stop(srv->app.writer); /* before the webhook thread: outcomes answered */
    parley_webhook_stop(srv->webhook);
    parley_writer_free(srv->app.writer);
    parley_api_visits_free(srv->app.visits); /* after the writer: its visits are done */
    srv->app.visits = NULL;
    parley_keyring_free(srv->keyring);
out_store_stop:
    parley_store_stop(srv->app.store); /* after the writer: SQLite's last checkpoint */
out_hub:
    parley_hub_destroy(srv->app.hub);
out_store:
    parley_store_close(srv->app.store);
out_free:
    parley_ratelimit_free(srv->ratelimit);
    parley_metrics_free(srv->metrics);
    free(srv);
    return rc;
}
