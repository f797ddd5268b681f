/*
 * parley.h — the public interface of the Parley server library.
 *
 * Parley is one process that serves durable, exactly-once storage for
 * interactive applications over HTTP. This header is everything a program
 * (the `parley` executable, the test suites) may call: the error codes, the
 * server configuration and the entry point that runs a server until it is
 * told to stop. Everything under src/ that is not declared here is internal.
 *
 * Threads: parley_server_run() blocks the calling thread; every other
 * function here is safe to call from any thread.
 */
#ifndef PARLEY_PARLEY_H
#define PARLEY_PARLEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARLEY_VERSION "0.1.0"

/*
 * Error codes. Every action in the library returns 0 on success or one of
 * these negated values; system errors are passed through as -errno, which
 * never collides with these (they start far above any errno value).
 */
enum parley_error {
    PARLEY_OK = 0,
    PARLEY_ENOMEM = -10001,    /* out of memory */
    PARLEY_EINVAL = -10002,    /* invalid argument or malformed input */
    PARLEY_ENOTFOUND = -10003, /* no such object */
    PARLEY_EEXIST = -10004,    /* already exists */
    PARLEY_ECONFLICT = -10005, /* state does not allow the operation */
    PARLEY_ETOOBIG = -10006,   /* over a configured limit */
    PARLEY_ESTORE = -10007,    /* the store failed (I/O, corruption) */
    PARLEY_ELOCKED = -10008,   /* data directory in use by another process */
    PARLEY_ECLOSED = -10009,   /* component is shutting down or has failed */
    PARLEY_EFULL = -10010,     /* storage is full */
    PARLEY_EUNAVAIL = -10011,  /* the database cannot be reached now (retry later) */
    PARLEY_ERETRY = -10012,    /* a transient conflict between transactions: run again */
    /* Refusals a rule decides (in a parley_outcome_t), beside the above: */
    PARLEY_EGONE = -10013,      /* the object existed and was deleted */
    PARLEY_EPRECOND = -10014,   /* a precondition (If-Match) does not hold */
    PARLEY_EFORBIDDEN = -10015, /* the caller may not do this */
    PARLEY_EFENCED = -10016,    /* a newer holder (epoch, lease) replaced the caller */
    PARLEY_EUNAUTH = -10017,    /* the caller's credential is missing, invalid or expired */
};

/* Text for an error code (PARLEY_E* or -errno). Static storage, never NULL. */
const char *parley_strerror(int err);

/*
 * One rate limit: a token bucket that refills `count` requests every
 * `period_s` seconds and holds at most `burst` (0 = `count`). count 0 turns
 * the limit off. period_s 0 means "not set": the server's default, which is
 * off in local mode (see README, "Rate limits").
 */
typedef struct parley_rate {
    uint32_t count;    /* requests per period; 0 = no limit */
    uint32_t period_s; /* the period in seconds (1, 60, 3600); 0 = not set */
    uint32_t burst;    /* bucket size: most requests at once; 0 = count */
} parley_rate_t;

/* How the admin key's own requests (principal "@admin") are limited. */
typedef enum parley_rate_admin {
    PARLEY_RATE_ADMIN_ADDRESS = 0, /* per-address limits only (default) */
    PARLEY_RATE_ADMIN_NONE,        /* exempt from every limit */
    PARLEY_RATE_ADMIN_ALL,         /* per-user limits too, as user "@admin" */
} parley_rate_admin_t;

/*
 * Server configuration. Fill with parley_config_init() and override fields.
 * Strings are borrowed: they must outlive parley_server_run().
 */
typedef struct parley_config {
    const char *listen_host;          /* address to bind, default "127.0.0.1" */
    unsigned listen_port;             /* port, default 4437; 0 picks a free one */
    const char *data_dir;             /* data directory, default "./data" */
    const char *store_url;            /* store URL, "sqlite:PATH"; NULL (default):
                                         "sqlite:<data_dir>/parley.db" */
    unsigned threads;                 /* HTTP worker threads, default 0 = cores */
    unsigned long_poll_ms;            /* long-poll wait before 204, default 30000 */
    unsigned sse_recycle_ms;          /* SSE connection lifetime, default 60000 */
    size_t max_append_bytes;          /* stream append body limit, default 8 MiB */
    size_t read_window_bytes;         /* pending output per reader, 256 KiB */
    size_t read_budget_bytes;         /* pending output of all readers, 8 MiB */
    unsigned max_connections;         /* connection limit, default 65536 */
    size_t max_json_bytes;            /* JSON body limit (documents...), 1.5 MiB */
    unsigned idempotency_ttl_s;       /* Idempotency-Key records kept, 86400 */
    unsigned feed_retention_s;        /* change feed events kept, 0 = all */
    unsigned session_max_attempts;    /* attempts of a session before it fails, 3 */
    const char *admin_key;            /* bearer token with admin rights, or NULL */
    const char *jwt_secret;           /* HS256 secret for user tokens, or NULL */
    parley_rate_t rate_user_writes;   /* writes per user (non-GET/HEAD) */
    parley_rate_t rate_user_reads;    /* reads per user (GET/HEAD) */
    parley_rate_t rate_addr_writes;   /* writes per client address */
    parley_rate_t rate_addr_reads;    /* reads per client address */
    parley_rate_admin_t rate_admin;   /* which limits the admin key meets */
    const char *const *allow_origins; /* local mode: web origins allowed to call */
    size_t nallow_origins;            /* entries in allow_origins, default 0 */
    bool quiet;                       /* no start-up banner on stdout */
    unsigned backup_every_s;          /* seconds between scheduled backups, 0 = none */
    const char *backup_dir;           /* where scheduled backups go, or NULL */
    unsigned backup_keep;             /* scheduled backups kept, default 7; 0 = all */
    unsigned webhook_max_age_s; /* a wake's POSTs are given up after, default 86400; 0 never */
    const char *metrics_token;  /* bearer token that may read /metrics, or NULL */
    bool access_log;            /* one log line per request */
    bool log_json;              /* log lines as JSON objects (--log-format json) */
    uint64_t blob_max_bytes;    /* largest blob upload, default 100 MiB (413 blob_too_large) */
    uint64_t blob_quota_bytes;  /* bytes of blobs per user, default 0 = no quota (507) */
    unsigned blob_grace_s;      /* an unreferenced blob is collected after, default 86400 */
    const char *public_url;     /* origin clients see ("https://chat.example.com",
                                   maybe with a path prefix, no trailing '/'), or NULL:
                                   URLs are built from the request's Host */
    unsigned snapshot_visit_interval_s; /* a viewer's visits of a snapshot count once per
                                           this, default 1800; 0 = visits not counted */
} parley_config_t;

/* Fill *cfg with the documented defaults. */
void parley_config_init(parley_config_t *cfg);

/*
 * Whether cfg->store_url names a store this build can open (NULL, the
 * default, always can). If not, *why (static text) says what is wrong, e.g.
 * that this build has no PostgreSQL backend. Checks the URL only; opening
 * it may still fail. Any thread.
 */
bool parley_config_store_ok(const parley_config_t *cfg, const char **why);

/*
 * Run a server with *cfg until SIGINT/SIGTERM (or parley_server_stop()).
 * Blocks the calling thread. Prints one start-up line to stdout unless
 * cfg->quiet. Returns 0 after a graceful shutdown, or a negative error code
 * (a failed start, or a fail-stop after a storage error).
 */
int parley_server_run(const parley_config_t *cfg);

/* Ask a running server to shut down gracefully. Async-signal-safe. */
void parley_server_stop(void);

/*
 * The operator's commands (server/ops.c). Each prints its outcome (stdout)
 * or why it failed (stderr) and returns the process's exit status.
 *
 * parley_backup: a verified copy of the store at store_url (SQLite; beside
 * a running server) written atomically to target, a file or a directory
 * (a timestamped file in it; keep > 0 removes the oldest beyond keep).
 * 0 done, 1 failed, 2 cannot (PostgreSQL, no store, bad target).
 *
 * parley_restore: install the backup `file` as the store at store_url
 * (SQLite), which must not be in use by a server, and must hold no data
 * unless force. 0 done, 1 refused or failed, 2 cannot open file.
 *
 * parley_verify: the integrity check and Parley's invariants on the store
 * at store_url (a report on stdout). 0 clean, 1 problems found, 2 cannot
 * open it.
 *
 * parley_keys_rotate: store a new webhook signing key in the store at
 * store_url (beside running servers, which start signing with it within
 * about a second); the key it replaces stays in the JWK Set overlap_ms
 * longer. parley_keys_list: the signing keys and their state, on stdout.
 * 0 done, 1 failed, 2 cannot open the store.
 */
int parley_backup(const char *store_url, const char *target, unsigned keep);
int parley_restore(const char *store_url, const char *file, bool force);
int parley_verify(const char *store_url);
int parley_keys_rotate(const char *store_url, int64_t overlap_ms);
int parley_keys_list(const char *store_url);

/*
 * parley_export: every object of the store at store_url (only user's when
 * user is not NULL) as JSON Lines on stdout, read in one snapshot beside a
 * running server. 0 done, 1 failed, 2 cannot open the store.
 *
 * parley_import: JSON Lines from stdin into the store at store_url in one
 * transaction (SQLite: refused while a server runs on it). Objects already
 * there with the same content are skipped; a bad line or an object there
 * with other content refuses the whole input. 0 done, 1 refused or
 * failed (nothing imported), 2 cannot open the store.
 */
int parley_export(const char *store_url, const char *user);
int parley_import(const char *store_url);

#endif /* PARLEY_PARLEY_H */
