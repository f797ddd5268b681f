/*
 * main.c — the `parley` command line. Parses arguments and calls the
 * library; everything else lives in libparley.
 *
 * Commands: `parley serve [options]` runs the server; `parley help
 * [COMMAND]`, `parley --help` and `parley --version` print and exit 0. An
 * unknown command or a bad option is a usage error: exit status 2.
 *
 * The options of `serve` are one table (serve_opts[]): each row is the flag,
 * the environment variable that sets it too, the kind of argument it takes,
 * the function that parses and stores a value, and its help text. getopt's
 * option list, the environment and `parley serve --help` all come from that
 * table, so they cannot disagree; man/parley.1 is checked against the help
 * by the black-box tests.
 *
 * Invariants:
 *   1. Every option has a variable: PARLEY_ and its flag in capitals, '-'
 *      as '_' (--long-poll-timeout is PARLEY_LONG_POLL_TIMEOUT).
 *   2. A flag wins over its variable: a variable is read only for options
 *      the command line does not give, so a bad variable behind a flag is
 *      never looked at. An empty variable counts as unset.
 *   3. Nothing is read from the environment before the command line has
 *      been checked, so `parley serve --help` works whatever the
 *      environment holds; a bad value (flag or variable) exits 2 with a
 *      message naming the flag or the variable.
 *
 * Threads: main thread only, before the server starts.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"

/* ---- values ----------------------------------------------------------- */

typedef struct serve_opt serve_opt_t;

/* Parse v and store it in *cfg; 0, or -1 if v is not a valid value. v is
 * NULL for a flag without an argument (ARG_NONE given on the command line). */
typedef int (*serve_set_fn)(const serve_opt_t *o, const char *v, parley_config_t *cfg);

/* What an option takes. */
typedef enum serve_arg {
    ARG_NONE, /* a switch: the flag takes nothing; its variable is 1/0,
                 true/false, yes/no or on/off */
    ARG_ONE,  /* one value; given twice, the last one counts */
    ARG_LIST, /* repeatable; its variable is a comma-separated list */
} serve_arg_t;

/* One option of `parley serve`. */
struct serve_opt {
    const char *flag;            /* long option, without "--" */
    const char *env;             /* environment variable that sets it too */
    serve_arg_t kind;            /* what it takes */
    const char *metavar;         /* the argument's name in the help, or NULL */
    serve_set_fn set;            /* parses a value into the config */
    size_t field;                /* offset in parley_config_t that set() writes */
    unsigned long long min, max; /* bounds of a number (set_uint, set_size) */
    const char *help;            /* help text; '\n' breaks the line */
    const char *section;         /* heading printed before this option, or NULL */
};

#define FIELD(f) offsetof(parley_config_t, f)

/* A decimal number in [min, max]: digits only (no sign, no blanks). */
static int parse_number(const char *v, unsigned long long min, unsigned long long max,
                        unsigned long long *out)
{
    if (v[0] < '0' || v[0] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

static int set_uint(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    unsigned long long n;
    if (parse_number(v, o->min, o->max, &n))
        return -1;
    *(unsigned *)((char *)cfg + o->field) = (unsigned)n;
    return 0;
}

static int set_size(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    unsigned long long n;
    if (parse_number(v, o->min, o->max, &n))
        return -1;
    *(size_t *)((char *)cfg + o->field) = (size_t)n;
    return 0;
}

static int set_u64(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    unsigned long long n;
    if (parse_number(v, o->min, o->max, &n))
        return -1;
    *(uint64_t *)((char *)cfg + o->field) = (uint64_t)n;
    return 0;
}

static int set_string(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    *(const char **)((char *)cfg + o->field) = v; /* argv or environ: lives for the process */
    return 0;
}

static int set_bool(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    bool *b = (bool *)((char *)cfg + o->field);
    if (!v || strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
        strcmp(v, "on") == 0)
        *b = true;
    else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0 ||
             strcmp(v, "off") == 0)
        *b = false;
    else
        return -1;
    return 0;
}

/* HOST:PORT, [HOST]:PORT for an IPv6 address. */
static int set_listen(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    static char host[256]; /* the config borrows it */
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof host)
        return -1;
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    unsigned long long port;
    if (parse_number(colon + 1, 0, 65535, &port))
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    cfg->listen_host = host;
    cfg->listen_port = (unsigned)port;
    return 0;
}

#define MAX_ORIGINS 32

static const char *origins[MAX_ORIGINS]; /* --allow-origin values (borrowed or strdup'd) */

/* Add an origin: "http://" or "https://", a host, an optional port; no
 * path, no trailing '/'. -1 if it is not one, or there are too many. */
static int set_origin(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    const char *host = strncmp(v, "http://", 7) == 0    ? v + 7
                       : strncmp(v, "https://", 8) == 0 ? v + 8
                                                        : NULL;
    if (!host || !*host || cfg->nallow_origins == MAX_ORIGINS)
        return -1;
    for (const char *c = host; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || strchr("/?#@\\*,", *c))
            return -1;
    origins[cfg->nallow_origins++] = v;
    cfg->allow_origins = origins;
    return 0;
}

/* A rate: "off", "0", "N", "N/s", "N/m" or "N/h". */
static int set_rate(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    parley_rate_t *out = (parley_rate_t *)((char *)cfg + o->field);
    if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0) {
        out->count = 0;
        out->period_s = 1; /* set, and off */
        return 0;
    }
    if (v[0] < '0' || v[0] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || n == 0 || n > 1000000000ul)
        return -1;
    unsigned period = 1;
    if (strcmp(end, "/m") == 0 || strcmp(end, "/min") == 0)
        period = 60;
    else if (strcmp(end, "/h") == 0)
        period = 3600;
    else if (*end && strcmp(end, "/s") != 0)
        return -1;
    out->count = (uint32_t)n;
    out->period_s = period;
    return 0;
}

static int set_burst(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    unsigned long long n;
    if (parse_number(v, 1, 1000000, &n))
        return -1;
    ((parley_rate_t *)((char *)cfg + o->field))->burst = (uint32_t)n;
    return 0;
}

static int set_rate_admin(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    if (strcmp(v, "address") == 0)
        cfg->rate_admin = PARLEY_RATE_ADMIN_ADDRESS;
    else if (strcmp(v, "none") == 0)
        cfg->rate_admin = PARLEY_RATE_ADMIN_NONE;
    else if (strcmp(v, "all") == 0)
        cfg->rate_admin = PARLEY_RATE_ADMIN_ALL;
    else
        return -1;
    return 0;
}

static int set_log_format(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    (void)o;
    if (strcmp(v, "text") == 0)
        cfg->log_json = false;
    else if (strcmp(v, "json") == 0)
        cfg->log_json = true;
    else
        return -1;
    return 0;
}

static const char *why_bad; /* a setter's reason for refusing a value, or NULL */

#define PUBLIC_URL_MAX 200 /* bytes of --public-url (URLs are built on it) */

/*
 * The origin clients see: http:// or https://, a host name, IPv4 address
 * or [IPv6] address, an optional port, an optional path prefix (a proxy
 * that serves Parley under /parley); no user, query or fragment. A
 * trailing '/' is dropped, so URLs are built as URL + "/v1/...".
 */
static int set_public_url(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    static char url[PUBLIC_URL_MAX + 1]; /* the config borrows it */
    (void)o;
    why_bad = "give the origin clients use, e.g. https://chat.example.com (http or https, a "
              "host, an optional port and path; no user, query or fragment; at most 200 bytes)";
    size_t n = strlen(v);
    const char *host = strncmp(v, "http://", 7) == 0    ? v + 7
                       : strncmp(v, "https://", 8) == 0 ? v + 8
                                                        : NULL;
    if (!host || n > PUBLIC_URL_MAX)
        return -1;
    const char *end = host + strcspn(host, "/");
    const char *port = NULL;
    if (*host == '[') { /* an IPv6 address */
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (!close || close == host + 1)
            return -1;
        for (const char *c = host + 1; c < close; c++)
            if (!strchr("0123456789abcdefABCDEF:.", *c))
                return -1;
        if (close + 1 < end && close[1] != ':')
            return -1;
        port = close + 1 < end ? close + 2 : NULL;
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));
        const char *hend = colon ? colon : end;
        if (hend == host)
            return -1;
        for (const char *c = host; c < hend; c++)
            if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') &&
                !(*c >= '0' && *c <= '9') && *c != '.' && *c != '-')
                return -1;
        port = colon ? colon + 1 : NULL;
    }
    if (port) {
        unsigned long long p;
        char digits[8];
        size_t pn = (size_t)(end - port);
        if (pn == 0 || pn >= sizeof digits)
            return -1;
        memcpy(digits, port, pn);
        digits[pn] = '\0';
        if (parse_number(digits, 1, 65535, &p))
            return -1;
    }
    for (const char *c = end; *c; c++) /* the path: printable, no query or fragment */
        if (*c <= ' ' || *c >= 0x7f || strchr("?#\\\"<>`{}|^", *c))
            return -1;
    memcpy(url, v, n + 1);
    while (n > (size_t)(end - v) && url[n - 1] == '/')
        url[--n] = '\0';
    cfg->public_url = url;
    why_bad = NULL;
    return 0;
}

/* A duration: N (seconds), Ns, Nm, Nh or Nd; at least 1 second, at most
 * 366 days. */
static int set_duration(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    if (v[0] < '0' || v[0] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned long long unit = strcmp(end, "") == 0 || strcmp(end, "s") == 0 ? 1
                              : strcmp(end, "m") == 0                       ? 60
                              : strcmp(end, "h") == 0                       ? 3600
                              : strcmp(end, "d") == 0                       ? 86400
                                                                            : 0;
    if (errno || !unit || n == 0 || n > 366ull * 86400 / unit)
        return -1;
    *(unsigned *)((char *)cfg + o->field) = (unsigned)(n * unit);
    return 0;
}

/* A duration, or 0 / off for none. */
static int set_duration_or_off(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0) {
        *(unsigned *)((char *)cfg + o->field) = 0;
        return 0;
    }
    return set_duration(o, v, cfg);
}

/* ---- the options ------------------------------------------------------ */

#define U32 0xffffffffull
#define SZ  ((unsigned long long)SIZE_MAX)

static const serve_opt_t serve_opts[] = {
    {"listen", "PARLEY_LISTEN", ARG_ONE, "HOST:PORT", set_listen, 0, 0, 0,
     "address to listen on (default 127.0.0.1:4437;\n"
     "port 0 picks a free port; [::1]:PORT for IPv6)",
     "options:"},
    {"data", "PARLEY_DATA", ARG_ONE, "DIR", set_string, FIELD(data_dir), 0, 0,
     "data directory (default ./data): the store is\n"
     "sqlite:DIR/parley.db unless --store is given",
     NULL},
    {"store", "PARLEY_STORE", ARG_ONE, "URL", set_string, FIELD(store_url), 0, 0,
     "where the data lives: sqlite:PATH, an SQLite\n"
     "database file, or postgres://USER:PASS@HOST/DB\n"
     "(postgresql:// too), a PostgreSQL database\n"
     "(default sqlite:DIR/parley.db)",
     NULL},
    {"threads", "PARLEY_THREADS", ARG_ONE, "N", set_uint, FIELD(threads), 1, U32,
     "HTTP worker threads (default one per core)", NULL},
    {"long-poll-timeout", "PARLEY_LONG_POLL_TIMEOUT", ARG_ONE, "MS", set_uint, FIELD(long_poll_ms),
     1, U32, "long-poll wait before 204 (default 30000)", NULL},
    {"sse-recycle", "PARLEY_SSE_RECYCLE", ARG_ONE, "MS", set_uint, FIELD(sse_recycle_ms), 1, U32,
     "SSE connection lifetime (default 60000)", NULL},
    {"max-append-bytes", "PARLEY_MAX_APPEND_BYTES", ARG_ONE, "N", set_size, FIELD(max_append_bytes),
     1, SZ, "largest stream append body (default 8388608)", NULL},
    {"max-json-bytes", "PARLEY_MAX_JSON_BYTES", ARG_ONE, "N", set_size, FIELD(max_json_bytes), 1,
     SZ,
     "largest document data or message content\n"
     "(default 1572864; counted as canonical JSON;\n"
     "a body may hold 64 KiB more around it)",
     NULL},
    {"blob-max-bytes", "PARLEY_BLOB_MAX_BYTES", ARG_ONE, "N", set_u64, FIELD(blob_max_bytes), 1,
     0xffffffffffffull, "largest blob upload (default 104857600;\n413 blob_too_large)", NULL},
    {"blob-quota-bytes", "PARLEY_BLOB_QUOTA_BYTES", ARG_ONE, "N", set_u64, FIELD(blob_quota_bytes),
     0, 0xffffffffffffffull,
     "bytes of blobs one user may keep (default 0,\nno quota; 507 quota_exceeded)", NULL},
    {"blob-grace", "PARLEY_BLOB_GRACE", ARG_ONE, "DURATION", set_duration, FIELD(blob_grace_s), 0,
     0,
     "a blob nothing references is collected this\n"
     "long after its upload or its last reference\n"
     "(default 24h; N seconds, or Ns, Nm, Nh, Nd)",
     NULL},
    {"read-window", "PARLEY_READ_WINDOW", ARG_ONE, "N", set_size, FIELD(read_window_bytes), 16384,
     SZ,
     "pending output one reader may hold: a read is\n"
     "produced from the store this much at a time\n"
     "(default 262144, at least 16384)",
     NULL},
    {"read-budget", "PARLEY_READ_BUDGET", ARG_ONE, "N", set_size, FIELD(read_budget_bytes), 16384,
     SZ,
     "pending output of all readers together; past\n"
     "it, readers that stopped reading are\n"
     "disconnected (default 8388608, at least\n"
     "16384)",
     NULL},
    {"max-connections", "PARLEY_MAX_CONNECTIONS", ARG_ONE, "N", set_uint, FIELD(max_connections), 1,
     U32, "connection limit (default 65536)", NULL},
    {"idempotency-ttl", "PARLEY_IDEMPOTENCY_TTL", ARG_ONE, "S", set_uint, FIELD(idempotency_ttl_s),
     1, U32, "keep Idempotency-Key records S seconds\n(default 86400)", NULL},
    {"feed-retention", "PARLEY_FEED_RETENTION", ARG_ONE, "DURATION", set_duration,
     FIELD(feed_retention_s), 0, 0,
     "keep change feed events this long (default:\nall; N seconds, or Ns, Nm, Nh, Nd); older\n"
     "ones are removed by maintenance",
     NULL},
    {"session-max-attempts", "PARLEY_SESSION_MAX_ATTEMPTS", ARG_ONE, "N", set_uint,
     FIELD(session_max_attempts), 1, 100,
     "attempts of a session before it fails\n"
     "(default 3, at most 100; a message may ask for\n"
     "its own)",
     NULL},
    {"admin-key", "PARLEY_ADMIN_KEY", ARG_ONE, "KEY", set_string, FIELD(admin_key), 0, 0,
     "bearer token with admin rights (default none;\n"
     "the variable keeps it out of ps)",
     NULL},
    {"jwt-secret", "PARLEY_JWT_SECRET", ARG_ONE, "SECRET", set_string, FIELD(jwt_secret), 0, 0,
     "HS256 secret of user JWTs (default none; the\n"
     "variable keeps it out of ps)",
     NULL},
    {"allow-origin", "PARLEY_ALLOW_ORIGIN", ARG_LIST, "ORIGIN", set_origin, 0, 0, 0,
     "local mode: let the web page at ORIGIN (e.g.\n"
     "http://localhost:5173) call the server;\n"
     "repeatable; the variable is a comma-separated\n"
     "list (default none)",
     NULL},
    {"quiet", "PARLEY_QUIET", ARG_NONE, NULL, set_bool, FIELD(quiet), 0, 0,
     "no start-up line (default off; the variable is\n"
     "1 or 0)",
     NULL},
    {"public-url", "PARLEY_PUBLIC_URL", ARG_ONE, "URL", set_public_url, 0, 0, 0,
     "the origin clients see behind a proxy (e.g.\n"
     "https://chat.example.com): stream Locations,\n"
     "callback, JWKS and snapshot URLs use it\n"
     "(default none; they use the request's Host)",
     "operations:"},
    {"webhook-max-age", "PARLEY_WEBHOOK_MAX_AGE", ARG_ONE, "DURATION", set_duration_or_off,
     FIELD(webhook_max_age_s), 0, 0,
     "give a webhook wake up when its POSTs still\n"
     "fail this long after it was issued (default\n"
     "24h; N seconds, or Ns, Nm, Nh, Nd; 0 or off:\n"
     "retry forever)",
     NULL},
    {"snapshot-visit-interval", "PARLEY_SNAPSHOT_VISIT_INTERVAL", ARG_ONE, "DURATION",
     set_duration_or_off, FIELD(snapshot_visit_interval_s), 0, 0,
     "a viewer's reads of a snapshot count as one\n"
     "visit per this interval (default 30m; N\n"
     "seconds, or Ns, Nm, Nh, Nd; 0 or off: visits\n"
     "are not counted)",
     NULL},
    {"metrics-token", "PARLEY_METRICS_TOKEN", ARG_ONE, "TOKEN", set_string, FIELD(metrics_token), 0,
     0,
     "bearer token that may read /metrics, besides\n"
     "the admin key (default none; /metrics is open\n"
     "in local mode)",
     NULL},
    {"access-log", "PARLEY_ACCESS_LOG", ARG_NONE, NULL, set_bool, FIELD(access_log), 0, 0,
     "one line per request on stderr (default off;\n"
     "the variable is 1 or 0)",
     NULL},
    {"log-format", "PARLEY_LOG_FORMAT", ARG_ONE, "FORMAT", set_log_format, 0, 0, 0,
     "text, or json: every log line one JSON object\n"
     "(default text)",
     NULL},
    {"backup-every", "PARLEY_BACKUP_EVERY", ARG_ONE, "DURATION", set_duration,
     FIELD(backup_every_s), 0, 0,
     "take a backup this often (default none;\n"
     "N seconds, or Ns, Nm, Nh, Nd) on a thread of\n"
     "its own beside the writer; needs --backup-dir",
     "scheduled backups (SQLite; see parley backup):"},
    {"backup-dir", "PARLEY_BACKUP_DIR", ARG_ONE, "DIR", set_string, FIELD(backup_dir), 0, 0,
     "where they go (default none): parley-<UTC\n"
     "time>.db files, each verified and written\n"
     "atomically",
     NULL},
    {"backup-keep", "PARLEY_BACKUP_KEEP", ARG_ONE, "N", set_uint, FIELD(backup_keep), 0, 100000,
     "keep the newest N, remove older ones (default\n"
     "7; 0 keeps all)",
     NULL},
    {"rate-limit-writes", "PARLEY_RATE_LIMIT_WRITES", ARG_ONE, "RATE", set_rate,
     FIELD(rate_user_writes), 0, 0, "writes per user (default 50/s; off in local\nmode)",
     "rate limits (429 with Retry-After):"},
    {"rate-burst-writes", "PARLEY_RATE_BURST_WRITES", ARG_ONE, "N", set_burst,
     FIELD(rate_user_writes), 0, 0,
     "the most writes per user at once (default the\n"
     "RATE's count; 100 with the default RATE)",
     NULL},
    {"rate-limit-reads", "PARLEY_RATE_LIMIT_READS", ARG_ONE, "RATE", set_rate,
     FIELD(rate_user_reads), 0, 0, "reads per user (default 200/s; off in local\nmode)", NULL},
    {"rate-burst-reads", "PARLEY_RATE_BURST_READS", ARG_ONE, "N", set_burst, FIELD(rate_user_reads),
     0, 0,
     "the most reads per user at once (default the\n"
     "RATE's count; 400 with the default RATE)",
     NULL},
    {"rate-limit-addr-writes", "PARLEY_RATE_LIMIT_ADDR_WRITES", ARG_ONE, "RATE", set_rate,
     FIELD(rate_addr_writes), 0, 0, "writes per client address (default off)", NULL},
    {"rate-burst-addr-writes", "PARLEY_RATE_BURST_ADDR_WRITES", ARG_ONE, "N", set_burst,
     FIELD(rate_addr_writes), 0, 0,
     "the most writes per client address at once\n(default the RATE's count)", NULL},
    {"rate-limit-addr-reads", "PARLEY_RATE_LIMIT_ADDR_READS", ARG_ONE, "RATE", set_rate,
     FIELD(rate_addr_reads), 0, 0, "reads per client address (default off)", NULL},
    {"rate-burst-addr-reads", "PARLEY_RATE_BURST_ADDR_READS", ARG_ONE, "N", set_burst,
     FIELD(rate_addr_reads), 0, 0,
     "the most reads per client address at once\n(default the RATE's count)", NULL},
    {"rate-limit-admin", "PARLEY_RATE_LIMIT_ADMIN", ARG_ONE, "MODE", set_rate_admin, 0, 0, 0,
     "the limits the admin key meets: address\n"
     "(per-address limits only), none, or all\n"
     "(default address)",
     NULL},
};
#define N_SERVE_OPTS (sizeof serve_opts / sizeof serve_opts[0])
#define O_BASE       256 /* getopt value of serve_opts[i] is O_BASE + i */

/* ---- help ------------------------------------------------------------- */

static void overview(FILE *out)
{
    fprintf(out, "usage: parley serve [options]\n"
                 "       parley backup|restore|verify [options] [FILE]\n"
                 "       parley export|import [options]\n"
                 "       parley keys rotate|list [options]\n"
                 "       parley help [COMMAND]\n"
                 "       parley --help | --version\n"
                 "\n"
                 "Durable storage for chat apps: streams, conversations, sessions, documents.\n"
                 "\n"
                 "commands:\n"
                 "  serve           run the server until SIGTERM or SIGINT\n"
                 "  backup FILE     write a verified copy of the store (server running)\n"
                 "  restore FILE    install a backup into a stopped store\n"
                 "  verify [FILE]   check a store or a backup for damage\n"
                 "  export          write the store's objects to stdout as JSON Lines\n"
                 "  import          read an export from stdin into a store\n"
                 "  keys rotate|list  rotate or list the webhook signing keys\n"
                 "  help [COMMAND]  this overview, or the usage of COMMAND\n"
                 "\n"
                 "options:\n"
                 "  -h, --help      print this overview and exit\n"
                 "  -V, --version   print the version and exit\n"
                 "\n"
                 "`parley serve --help` lists the server's options; man parley is the manual.\n");
}

#define HELP_COL 30 /* width of the flag column in the option list */

static void serve_usage(FILE *out)
{
    fprintf(out, "usage: parley serve [options]\n"
                 "\n"
                 "Run the server until SIGTERM or SIGINT (a graceful shutdown, exit 0).\n"
                 "\n"
                 "Every option can also be set by an environment variable: PARLEY_ and its\n"
                 "name in capitals, '-' as '_' (--long-poll-timeout: PARLEY_LONG_POLL_TIMEOUT).\n"
                 "A flag wins over its variable.\n");
    for (size_t i = 0; i < N_SERVE_OPTS; i++) {
        const serve_opt_t *o = &serve_opts[i];
        if (o->section)
            fprintf(out, "\n%s\n", o->section);
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->flag, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(out, "  %-*s", HELP_COL, left);
        if (strlen(left) > HELP_COL)
            fprintf(out, "\n  %-*s", HELP_COL, "");
        for (const char *line = o->help; *line;) {
            size_t n = strcspn(line, "\n");
            fprintf(out, " %.*s\n", (int)n, line);
            line += n;
            if (*line == '\n') {
                line++;
                fprintf(out, "  %-*s", HELP_COL, "");
            }
        }
    }
    fprintf(out, "  RATE is N/s, N/m or N/h (N alone: per second), or off. GET and HEAD are\n"
                 "  reads, other methods writes.\n"
                 "\n"
                 "  -h, --help                     print this help and exit\n"
                 "  -V, --version                  print the version and exit\n"
                 "\n"
                 "With neither --admin-key nor --jwt-secret, Parley runs in local mode: no\n"
                 "authentication, every request is the local user, loopback only: it answers\n"
                 "only loopback Host names and refuses cross-origin web pages (see\n"
                 "--allow-origin).\n"
                 "\n"
                 "Exit status: 0 after a graceful shutdown, 1 if the server failed to start or\n"
                 "stopped after a storage failure, 2 for a bad option or variable.\n");
}

/* ---- serve ------------------------------------------------------------ */

/* Set o from its variable's value v (not empty). 0, or -1 if v is bad. A
 * list (the one there is: --allow-origin) is split at commas and blanks. */
static int set_from_env(const serve_opt_t *o, const char *v, parley_config_t *cfg)
{
    if (o->kind != ARG_LIST)
        return o->set(o, v, cfg);
    char *copy = strdup(v); /* lives for the process: the config borrows it */
    if (!copy)
        return -1;
    int n = 0;
    for (char *save = NULL, *e = strtok_r(copy, ", ", &save); e; e = strtok_r(NULL, ", ", &save)) {
        if (o->set(o, e, cfg))
            goto out_free_copy;
        n++;
    }
    if (n)
        return 0;
out_free_copy:
    cfg->nallow_origins = 0; /* no origin may point into the copy */
    free(copy);
    return -1;
}

/* One flag as given on the command line, applied after the environment. */
typedef struct given_opt {
    const serve_opt_t *opt; /* the option (a row of serve_opts) */
    const char *arg;        /* its argument (in argv), or NULL */
} given_opt_t;

static int serve_main(int argc, char **argv)
{
    struct option longopts[N_SERVE_OPTS + 3];
    size_t n = 0;
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
    for (size_t i = 0; i < N_SERVE_OPTS; i++)
        longopts[n++] = (struct option){
            serve_opts[i].flag, serve_opts[i].kind == ARG_NONE ? no_argument : required_argument,
            NULL, O_BASE + (int)i};
    longopts[n] = (struct option){NULL, 0, NULL, 0};

    /* First the command line alone: --help, --version and unknown flags
     * answer before anything is parsed or read from the environment. */
    given_opt_t *given = calloc((size_t)argc, sizeof *given);
    bool flagged[N_SERVE_OPTS] = {false};
    size_t ngiven = 0;
    int rc = 2;
    if (!given) {
        fprintf(stderr, "parley: out of memory\n");
        return 1;
    }
    argv[0] = (char *)"parley"; /* getopt's messages start with it */
    optind = 2;                 /* argv[1] is "serve" */
    int c;
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        if (c == 'h') {
            serve_usage(stdout);
            rc = 0;
            goto out;
        }
        if (c == 'V') {
            printf("parley %s\n", PARLEY_VERSION);
            rc = 0;
            goto out;
        }
        if (c < O_BASE || c >= O_BASE + (int)N_SERVE_OPTS) { /* getopt said what */
            fprintf(stderr, "Run 'parley serve --help' for the options.\n");
            goto out;
        }
        given[ngiven++] = (given_opt_t){&serve_opts[c - O_BASE], optarg};
        flagged[c - O_BASE] = true;
    }
    if (optind < argc) {
        fprintf(stderr, "parley: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }

    parley_config_t cfg;
    parley_config_init(&cfg);
    for (size_t i = 0; i < N_SERVE_OPTS; i++) {
        const char *v = getenv(serve_opts[i].env);
        if (flagged[i] || !v || !*v)
            continue;
        why_bad = NULL;
        if (set_from_env(&serve_opts[i], v, &cfg)) {
            fprintf(stderr,
                    "parley: invalid value '%s' in %s%s%s (see --%s in parley serve --help)\n", v,
                    serve_opts[i].env, why_bad ? ": " : "", why_bad ? why_bad : "",
                    serve_opts[i].flag);
            goto out;
        }
    }
    for (size_t i = 0; i < ngiven; i++) {
        why_bad = NULL;
        if (given[i].opt->set(given[i].opt, given[i].arg, &cfg)) {
            fprintf(stderr, "parley: invalid value '%s' for --%s%s%s\n", given[i].arg,
                    given[i].opt->flag, why_bad ? ": " : "", why_bad ? why_bad : "");
            goto out;
        }
    }

    if (cfg.backup_every_s && !cfg.backup_dir) {
        fprintf(stderr, "parley: --backup-every needs --backup-dir (where the backups go)\n");
        goto out;
    }
    if (cfg.backup_dir && !cfg.backup_every_s) {
        fprintf(stderr, "parley: --backup-dir needs --backup-every (how often to back up)\n");
        goto out;
    }
    if (cfg.backup_every_s && cfg.store_url && strncmp(cfg.store_url, "sqlite:", 7) != 0) {
        fprintf(stderr, "parley: --backup-every backs up an SQLite store's file; back up a "
                        "PostgreSQL store with pg_dump or point-in-time recovery\n");
        goto out;
    }
    const char *why = NULL;
    if (!parley_config_store_ok(&cfg, &why)) {
        /* Only the scheme: a database URL may hold a password. */
        fprintf(stderr, "parley: invalid --store (scheme '%.*s'): %s\n",
                (int)strcspn(cfg.store_url, ":"), cfg.store_url, why);
        goto out;
    }
    free(given);
    given = NULL;
    rc = parley_server_run(&cfg) == 0 ? 0 : 1;
out:
    free(given);
    return rc;
}

/* ---- backup, restore, verify ------------------------------------------ */

static void backup_usage(FILE *out)
{
    fprintf(out, "usage: parley backup [--data DIR | --store URL] [--keep N] FILE\n"
                 "\n"
                 "Write a copy of the store to FILE while the server runs: one consistent\n"
                 "snapshot, verified (as parley verify) before it is reported done, written\n"
                 "to a temporary file beside FILE, fsynced, then renamed to FILE. If FILE is\n"
                 "a directory, the copy is DIR/parley-<UTC time>.db in it.\n"
                 "\n"
                 "options:\n"
                 "  --data DIR      data directory (default ./data; PARLEY_DATA): the\n"
                 "                  store is DIR/parley.db\n"
                 "  --store URL     the store (PARLEY_STORE): sqlite:PATH. A PostgreSQL\n"
                 "                  store is refused: use pg_dump or point-in-time recovery\n"
                 "  --keep N        FILE is a directory: keep its newest N backups, remove\n"
                 "                  older ones\n"
                 "  -h, --help      print this help and exit\n"
                 "\n"
                 "Exit status: 0 written and verified, 1 failed (nothing installed), 2 bad\n"
                 "usage or no store.\n");
}

static void restore_usage(FILE *out)
{
    fprintf(out, "usage: parley restore [--data DIR | --store URL] [--force] FILE\n"
                 "\n"
                 "Install the backup FILE as the store. The server must be stopped (the\n"
                 "directory of a running server is refused). FILE is verified first and a\n"
                 "corrupt one is refused; a store that holds data is refused unless --force.\n"
                 "The copy is written beside the store, fsynced, then renamed over it.\n"
                 "\n"
                 "options:\n"
                 "  --data DIR      data directory (default ./data; PARLEY_DATA)\n"
                 "  --store URL     the store (PARLEY_STORE): sqlite:PATH\n"
                 "  --force         replace a store that holds data (its contents are lost)\n"
                 "  -h, --help      print this help and exit\n"
                 "\n"
                 "Exit status: 0 restored, 1 refused or failed, 2 bad usage or unreadable FILE.\n");
}

static void verify_usage(FILE *out)
{
    fprintf(out, "usage: parley verify [--data DIR | --store URL | FILE]\n"
                 "\n"
                 "Check a store (also while the server runs) or a backup FILE: SQLite's\n"
                 "integrity check (on PostgreSQL: amcheck's index checks when the extension\n"
                 "is installed), then Parley's own invariants (streams' chunks and tails,\n"
                 "message seq, sessions, owners, snapshots, forks, idempotency records), and\n"
                 "the rebuild: the change feed and the message logs replayed into objects,\n"
                 "each compared with its stored row (objects with older events, or whose\n"
                 "history --feed-retention trimmed, are counted, not checked); all read in\n"
                 "one snapshot. Prints one line per check with counts, and each problem\n"
                 "found.\n"
                 "\n"
                 "options:\n"
                 "  --data DIR      data directory (default ./data; PARLEY_DATA)\n"
                 "  --store URL     the store (PARLEY_STORE): sqlite:PATH or postgres://...\n"
                 "  -h, --help      print this help and exit\n"
                 "\n"
                 "Exit status: 0 clean, 1 problems found, 2 bad usage or cannot open.\n");
}

static void export_usage(FILE *out)
{
    fprintf(out, "usage: parley export [--data DIR | --store URL] [--user ID] > FILE\n"
                 "\n"
                 "Write every object of the store to stdout as JSON Lines, read in one\n"
                 "consistent snapshot (also while the server runs): a header line, one line\n"
                 "per object with every stored field (ids, versions, timestamps, owners;\n"
                 "stream data with its offsets, as text or base64url; producers' state,\n"
                 "idempotency records, subscriptions, counters and the server's keys), in\n"
                 "dependency order, then an end line with the count. The file holds secrets\n"
                 "(the server's keys, stored responses): keep it as you keep backups.\n"
                 "\n"
                 "options:\n"
                 "  --data DIR      data directory (default ./data; PARLEY_DATA)\n"
                 "  --store URL     the store (PARLEY_STORE): sqlite:PATH or postgres://...\n"
                 "  --user ID       only the objects ID owns (and the counters); no\n"
                 "                  subscriptions or server keys\n"
                 "  -h, --help      print this help and exit\n"
                 "\n"
                 "Exit status: 0 written, 1 failed, 2 bad usage or cannot open the store.\n");
}

static void import_usage(FILE *out)
{
    fprintf(out, "usage: parley import [--data DIR | --store URL] < FILE\n"
                 "\n"
                 "Read what parley export wrote from stdin into the store (created if it\n"
                 "does not exist), in one transaction: all of it or nothing. Every id,\n"
                 "version, timestamp, offset and seq is kept. An object already in the\n"
                 "store with the same content is skipped, so importing twice changes\n"
                 "nothing; one with different content, a malformed or truncated line, or an\n"
                 "unknown kind refuses the whole input with the line number. An SQLite\n"
                 "store a server is running on is refused (stop it first); a PostgreSQL\n"
                 "store is written in one transaction beside running nodes.\n"
                 "\n"
                 "options:\n"
                 "  --data DIR      data directory (default ./data; PARLEY_DATA)\n"
                 "  --store URL     the store (PARLEY_STORE): sqlite:PATH or postgres://...\n"
                 "  -h, --help      print this help and exit\n"
                 "\n"
                 "Exit status: 0 imported, 1 refused or failed (nothing imported), 2 bad\n"
                 "usage or cannot open the store.\n");
}

/* What a store command was given. */
typedef struct store_cmd {
    const char *url;  /* the store URL (--store, --data, a variable or ./data) */
    const char *file; /* the FILE argument, or NULL */
    unsigned keep;    /* --keep N (backup) */
    bool force;       /* --force (restore) */
    const char *user; /* --user ID (export), or NULL */
} store_cmd_t;

/*
 * Parse `parley NAME [--data DIR | --store URL] [extra] [FILE]`. 0 to run,
 * otherwise the exit status (--help: 0 after printing). PARLEY_DATA and
 * PARLEY_STORE are read when neither flag is given, as serve does.
 */
static int store_cmd_parse(int argc, char **argv, void (*usage)(FILE *), bool file_required,
                           store_cmd_t *out)
{
    static char url[4200]; /* sqlite:<dir>/parley.db */
    const char *name = argv[1];
    bool is_backup = strcmp(name, "backup") == 0, is_restore = strcmp(name, "restore") == 0;
    bool is_export = strcmp(name, "export") == 0;
    bool no_file = is_export || strcmp(name, "import") == 0; /* stdout / stdin */
    enum { O_DATA = 1000, O_STORE, O_KEEP, O_FORCE, O_USER };
    struct option longopts[5] = {
        {"help", no_argument, NULL, 'h'},
        {"data", required_argument, NULL, O_DATA},
        {"store", required_argument, NULL, O_STORE},
    };
    if (is_backup)
        longopts[3] = (struct option){"keep", required_argument, NULL, O_KEEP};
    if (is_restore)
        longopts[3] = (struct option){"force", no_argument, NULL, O_FORCE};
    if (is_export)
        longopts[3] = (struct option){"user", required_argument, NULL, O_USER};
    const char *data = NULL, *store = NULL;
    *out = (store_cmd_t){0};
    argv[0] = (char *)"parley";
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        unsigned long long n;
        switch (c) {
        case 'h':
            usage(stdout);
            return -1;
        case O_DATA:
            data = optarg;
            break;
        case O_STORE:
            store = optarg;
            break;
        case O_KEEP:
            if (parse_number(optarg, 1, 100000, &n)) {
                fprintf(stderr, "parley: invalid value '%s' for --keep\n", optarg);
                return 2;
            }
            out->keep = (unsigned)n;
            break;
        case O_FORCE:
            out->force = true;
            break;
        case O_USER:
            if (!*optarg || strlen(optarg) > 255) {
                fprintf(stderr, "parley: invalid value for --user (1 to 255 bytes)\n");
                return 2;
            }
            out->user = optarg;
            break;
        default:
            fprintf(stderr, "Run 'parley %s --help' for the options.\n", name);
            return 2;
        }
    }
    if (optind < argc && !no_file)
        out->file = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "parley: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (file_required && !out->file) {
        fprintf(stderr, "parley %s: FILE is missing\n", name);
        usage(stderr);
        return 2;
    }
    if (data && store) {
        fprintf(stderr, "parley: give --data or --store, not both\n");
        return 2;
    }
    if (!file_required && out->file) { /* verify FILE */
        if (data || store) {
            fprintf(stderr, "parley: give FILE, --data or --store, not two of them\n");
            return 2;
        }
        snprintf(url, sizeof url, "sqlite:%s", out->file);
        out->url = url;
        return 0;
    }
    if (!data && !store) {
        const char *e = getenv("PARLEY_STORE");
        store = e && *e ? e : NULL;
        e = getenv("PARLEY_DATA");
        data = !store && e && *e ? e : "./data";
    }
    if (store) {
        const char *why = NULL;
        parley_config_t probe;
        parley_config_init(&probe);
        probe.store_url = store;
        if (!parley_config_store_ok(&probe, &why)) {
            fprintf(stderr, "parley: invalid --store (scheme '%.*s'): %s\n",
                    (int)strcspn(store, ":"), store, why);
            return 2;
        }
        out->url = store;
        return 0;
    }
    if (snprintf(url, sizeof url, "sqlite:%s/parley.db", data) >= (int)sizeof url) {
        fprintf(stderr, "parley: data directory path too long\n");
        return 2;
    }
    out->url = url;
    return 0;
}

static int backup_main(int argc, char **argv)
{
    store_cmd_t sc;
    int rc = store_cmd_parse(argc, argv, backup_usage, true, &sc);
    return rc ? (rc < 0 ? 0 : rc) : parley_backup(sc.url, sc.file, sc.keep);
}

static int restore_main(int argc, char **argv)
{
    store_cmd_t sc;
    int rc = store_cmd_parse(argc, argv, restore_usage, true, &sc);
    return rc ? (rc < 0 ? 0 : rc) : parley_restore(sc.url, sc.file, sc.force);
}

static int verify_main(int argc, char **argv)
{
    store_cmd_t sc;
    int rc = store_cmd_parse(argc, argv, verify_usage, false, &sc);
    return rc ? (rc < 0 ? 0 : rc) : parley_verify(sc.url);
}

static int export_main(int argc, char **argv)
{
    store_cmd_t sc;
    int rc = store_cmd_parse(argc, argv, export_usage, false, &sc);
    return rc ? (rc < 0 ? 0 : rc) : parley_export(sc.url, sc.user);
}

static int import_main(int argc, char **argv)
{
    store_cmd_t sc;
    int rc = store_cmd_parse(argc, argv, import_usage, false, &sc);
    return rc ? (rc < 0 ? 0 : rc) : parley_import(sc.url);
}

/* ---- keys ------------------------------------------------------------- */

static void keys_usage(FILE *out)
{
    fprintf(out,
            "usage: parley keys rotate [--data DIR | --store URL] [--key-overlap DURATION]\n"
            "       parley keys list [--data DIR | --store URL]\n"
            "\n"
            "The webhook signing keys (Ed25519; their public halves are the JWK Set at\n"
            "/v1/stream/__ds/jwks.json). `rotate` stores a new key beside running\n"
            "servers: every node signs deliveries with it within about a second, and\n"
            "the key it replaces stays in the JWK Set for the overlap, then is retired\n"
            "(gone from the JWK Set, never used again). `list` shows each key, newest\n"
            "first: active, in the JWK Set until a time, or retired.\n"
            "\n"
            "options:\n"
            "  --data DIR               data directory (default ./data; PARLEY_DATA)\n"
            "  --store URL              the store (PARLEY_STORE): sqlite:PATH or postgres://...\n"
            "  --key-overlap DURATION   how long the replaced key stays published: N\n"
            "                           seconds or Ns, Nm, Nh, Nd; 0 retires it at once (a\n"
            "                           leaked key). Default 24h (PARLEY_KEY_OVERLAP)\n"
            "  -h, --help               print this help and exit\n"
            "\n"
            "Exit status: 0 done, 1 failed, 2 bad usage or cannot open the store.\n");
}

/* A key overlap: N (seconds), Ns, Nm, Nh or Nd, 0 allowed, at most 366
 * days; into *ms. -1 when it is not one. */
static int parse_overlap(const char *v, int64_t *ms)
{
    if (v[0] < '0' || v[0] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned long long unit = strcmp(end, "") == 0 || strcmp(end, "s") == 0 ? 1
                              : strcmp(end, "m") == 0                       ? 60
                              : strcmp(end, "h") == 0                       ? 3600
                              : strcmp(end, "d") == 0                       ? 86400
                                                                            : 0;
    if (errno || !unit || n > 366ull * 86400 / unit)
        return -1;
    *ms = (int64_t)(n * unit) * 1000;
    return 0;
}

static int keys_main(int argc, char **argv)
{
    store_cmd_t sc;
    int64_t overlap_ms = 24 * 3600 * 1000LL;
    const char *ov = getenv("PARLEY_KEY_OVERLAP");
    if (argc < 3 || strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0) {
        keys_usage(argc < 3 ? stderr : stdout);
        return argc < 3 ? 2 : 0;
    }
    const char *sub = argv[2];
    bool rotate = strcmp(sub, "rotate") == 0;
    if (!rotate && strcmp(sub, "list") != 0) {
        fprintf(stderr, "parley keys: unknown subcommand '%s' (rotate or list)\n", sub);
        return 2;
    }
    /* --key-overlap is rotate's own: take it out, then parse the rest as
     * every store command does (argv[1] becomes the subcommand). */
    int n = 2;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (rotate && strcmp(a, "--key-overlap") == 0 && i + 1 < argc) {
            ov = argv[++i];
        } else if (rotate && strncmp(a, "--key-overlap=", 14) == 0) {
            ov = a + 14;
        } else {
            argv[n++] = argv[i];
        }
    }
    if (ov && *ov && parse_overlap(ov, &overlap_ms)) {
        fprintf(stderr,
                "parley: invalid value '%s' for --key-overlap (N seconds or Ns, Nm, Nh, "
                "Nd)\n",
                ov);
        return 2;
    }
    int rc = store_cmd_parse(n - 1, argv + 1, keys_usage, false, &sc);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (sc.file) {
        fprintf(stderr, "parley: unexpected argument '%s'\n", sc.file);
        return 2;
    }
    return rotate ? parley_keys_rotate(sc.url, overlap_ms) : parley_keys_list(sc.url);
}

/* ---- commands --------------------------------------------------------- */

/* A subcommand of `parley`. */
typedef struct command {
    const char *name;         /* as typed: `parley NAME` */
    int (*run)(int, char **); /* runs it; argv[1] is NAME; returns the exit status */
    void (*usage)(FILE *);    /* prints its usage (`parley NAME --help`) */
} command_t;

static const command_t commands[] = {
    {"serve", serve_main, serve_usage},       {"backup", backup_main, backup_usage},
    {"restore", restore_main, restore_usage}, {"verify", verify_main, verify_usage},
    {"export", export_main, export_usage},    {"import", import_main, import_usage},
    {"keys", keys_main, keys_usage},
};

static const command_t *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int unknown_command(const char *name)
{
    fprintf(stderr,
            "parley: unknown command '%s'; the commands are serve, backup, restore, verify, "
            "export, import, keys and help (see parley --help)\n",
            name);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        overview(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        overview(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("parley %s\n", PARLEY_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc > 3) {
            fprintf(stderr, "parley: unexpected argument '%s'\n", argv[3]);
            return 2;
        }
        if (argc == 3 && strcmp(argv[2], "help") != 0) {
            const command_t *c = find_command(argv[2]);
            if (!c)
                return unknown_command(argv[2]);
            c->usage(stdout);
            return 0;
        }
        overview(stdout);
        return 0;
    }
    const command_t *c = find_command(cmd);
    if (!c)
        return unknown_command(cmd);
    return c->run(argc, argv);
}
