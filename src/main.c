/*
 * main.c — the `parley` command line. Parses arguments and calls the
 * library; everything else lives in libparley.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: parley serve [options]\n"
            "       parley --help | --version\n"
            "\n"
            "Durable storage for chat apps: streams, conversations, sessions, documents.\n"
            "\n"
            "serve options:\n"
            "  --listen HOST:PORT       address to listen on (default 127.0.0.1:4437;\n"
            "                           port 0 picks a free port)\n"
            "  --data DIR               data directory (default ./data): the store is\n"
            "                           sqlite:DIR/parley.db unless --store is given\n"
            "  --store URL              where the data lives (or PARLEY_STORE):\n"
            "                           sqlite:PATH, an SQLite database file\n"
            "  --threads N              HTTP worker threads (default: one per core)\n"
            "  --long-poll-timeout MS   long-poll wait before 204 (default 30000)\n"
            "  --sse-recycle MS         SSE connection lifetime (default 60000)\n"
            "  --max-append-bytes N     largest stream append body (default 8388608)\n"
            "  --read-window N          pending output one reader may hold: a read is\n"
            "                           produced from the store this much at a time\n"
            "                           (default 262144, at least 16384)\n"
            "  --read-budget N          pending output of all readers together; past it,\n"
            "                           readers that stopped reading are disconnected\n"
            "                           (default 8388608)\n"
            "  --max-connections N      connection limit (default 65536)\n"
            "  --max-json-bytes N       largest JSON body of a document (default 1572864)\n"
            "  --idempotency-ttl S      keep Idempotency-Key records S seconds (default 86400)\n"
            "  --session-max-attempts N attempts of a session before it fails (default 3;\n"
            "                           a message may ask for its own, 1..100)\n"
            "  --admin-key KEY          bearer token with admin rights (or PARLEY_ADMIN_KEY)\n"
            "  --jwt-secret SECRET      HS256 secret of user JWTs (or PARLEY_JWT_SECRET)\n"
            "  --allow-origin ORIGIN    local mode: let the web page at ORIGIN (e.g.\n"
            "                           http://localhost:5173) call the server; repeatable\n"
            "                           (or PARLEY_ALLOW_ORIGIN, a comma-separated list)\n"
            "  --quiet                  no start-up line\n"
            "\n"
            "rate limits (429 with Retry-After; each also PARLEY_RATE_..., e.g.\n"
            "PARLEY_RATE_LIMIT_WRITES; a flag wins over its variable):\n"
            "  --rate-limit-writes RATE       writes per user (default 50/s; off in local mode)\n"
            "  --rate-limit-reads RATE        reads per user (default 200/s; off in local mode)\n"
            "  --rate-limit-addr-writes RATE  writes per client address (default off)\n"
            "  --rate-limit-addr-reads RATE   reads per client address (default off)\n"
            "  --rate-burst-writes N, --rate-burst-reads N, --rate-burst-addr-writes N,\n"
            "  --rate-burst-addr-reads N      the most requests at once (default: the RATE's\n"
            "                                 count; 100 and 400 for the per-user defaults)\n"
            "  --rate-limit-admin MODE        the admin key meets: address (per-address limits\n"
            "                                 only, default), none, or all\n"
            "  RATE is N/s, N/m or N/h (N alone: per second), or off. GET and HEAD are\n"
            "  reads, other methods writes.\n"
            "\n"
            "With neither --admin-key nor --jwt-secret, Parley runs in local mode: no\n"
            "authentication, every request is the local user, loopback only: it answers\n"
            "only loopback Host names and refuses cross-origin web pages (see --allow-origin).\n");
}

static int parse_listen(const char *v, parley_config_t *cfg)
{
    static char host[256];
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof host)
        return -1;
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port > 65535)
        return -1;
    cfg->listen_host = host;
    cfg->listen_port = (unsigned)port;
    return 0;
}

#define MAX_ORIGINS 32

static const char *origins[MAX_ORIGINS]; /* --allow-origin values (borrowed or strdup'd) */

/* Add an origin: "http://" or "https://", a host, an optional port; no
 * path, no trailing '/'. -1 if it is not one, or there are too many. */
static int add_origin(const char *v, parley_config_t *cfg)
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

/* PARLEY_ALLOW_ORIGIN: a comma-separated list of origins. */
static int origins_from_env(const char *list, parley_config_t *cfg)
{
    char *copy = strdup(list); /* lives for the process: the config borrows it */
    if (!copy)
        return -1;
    for (char *save = NULL, *o = strtok_r(copy, ", ", &save); o; o = strtok_r(NULL, ", ", &save))
        if (add_origin(o, cfg))
            return -1;
    return 0;
}

static int parse_size(const char *v, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || end == v || n == 0)
        return -1;
    *out = (size_t)n;
    return 0;
}

static int parse_uint(const char *v, unsigned *out)
{
    size_t n;
    if (parse_size(v, &n) || n > 0xffffffffu)
        return -1;
    *out = (unsigned)n;
    return 0;
}

/* A rate: "off", "0", "N", "N/s", "N/m" or "N/h". */
static int parse_rate(const char *v, parley_rate_t *out)
{
    char *end;
    if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0) {
        out->count = 0;
        out->period_s = 1; /* set, and off */
        return 0;
    }
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || n == 0 || n > 1000000000ul || v[0] == '-')
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

static int parse_burst(const char *v, parley_rate_t *out)
{
    unsigned n;
    if (parse_uint(v, &n) || n > 1000000)
        return -1;
    out->burst = n;
    return 0;
}

static int parse_rate_admin(const char *v, parley_rate_admin_t *out)
{
    if (strcmp(v, "address") == 0)
        *out = PARLEY_RATE_ADMIN_ADDRESS;
    else if (strcmp(v, "none") == 0)
        *out = PARLEY_RATE_ADMIN_NONE;
    else if (strcmp(v, "all") == 0)
        *out = PARLEY_RATE_ADMIN_ALL;
    else
        return -1;
    return 0;
}

/* The rate-limit options: flag name, environment variable, what it sets. */
enum { RL_RATE, RL_BURST, RL_ADMIN };
typedef struct rate_opt {
    const char *flag; /* long option, without "--" */
    const char *env;  /* environment variable */
    int what;         /* RL_RATE, RL_BURST or RL_ADMIN */
    size_t field;     /* offset of the parley_rate_t in parley_config_t */
} rate_opt_t;

static const rate_opt_t rate_opts[] = {
    {"rate-limit-writes", "PARLEY_RATE_LIMIT_WRITES", RL_RATE,
     offsetof(parley_config_t, rate_user_writes)},
    {"rate-burst-writes", "PARLEY_RATE_BURST_WRITES", RL_BURST,
     offsetof(parley_config_t, rate_user_writes)},
    {"rate-limit-reads", "PARLEY_RATE_LIMIT_READS", RL_RATE,
     offsetof(parley_config_t, rate_user_reads)},
    {"rate-burst-reads", "PARLEY_RATE_BURST_READS", RL_BURST,
     offsetof(parley_config_t, rate_user_reads)},
    {"rate-limit-addr-writes", "PARLEY_RATE_LIMIT_ADDR_WRITES", RL_RATE,
     offsetof(parley_config_t, rate_addr_writes)},
    {"rate-burst-addr-writes", "PARLEY_RATE_BURST_ADDR_WRITES", RL_BURST,
     offsetof(parley_config_t, rate_addr_writes)},
    {"rate-limit-addr-reads", "PARLEY_RATE_LIMIT_ADDR_READS", RL_RATE,
     offsetof(parley_config_t, rate_addr_reads)},
    {"rate-burst-addr-reads", "PARLEY_RATE_BURST_ADDR_READS", RL_BURST,
     offsetof(parley_config_t, rate_addr_reads)},
    {"rate-limit-admin", "PARLEY_RATE_LIMIT_ADMIN", RL_ADMIN, 0},
};
#define N_RATE_OPTS (sizeof rate_opts / sizeof rate_opts[0])
#define O_RATE_BASE 512 /* getopt value of rate_opts[i] is O_RATE_BASE + i */

static int set_rate_opt(const rate_opt_t *o, const char *v, parley_config_t *cfg)
{
    parley_rate_t *rate = (parley_rate_t *)((char *)cfg + o->field);
    if (o->what == RL_RATE)
        return parse_rate(v, rate);
    if (o->what == RL_BURST)
        return parse_burst(v, rate);
    return parse_rate_admin(v, &cfg->rate_admin);
}

int main(int argc, char **argv)
{
    enum {
        O_LISTEN = 256,
        O_DATA,
        O_THREADS,
        O_LP,
        O_SSE,
        O_MAXAPP,
        O_READWIN,
        O_READBUDGET,
        O_MAXCONN,
        O_QUIET,
        O_MAXJSON,
        O_IDEMTTL,
        O_ADMIN,
        O_JWT,
        O_MAXATTEMPTS,
        O_ALLOWORIGIN,
        O_STORE
    };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"listen", required_argument, NULL, O_LISTEN},
        {"data", required_argument, NULL, O_DATA},
        {"store", required_argument, NULL, O_STORE},
        {"threads", required_argument, NULL, O_THREADS},
        {"long-poll-timeout", required_argument, NULL, O_LP},
        {"sse-recycle", required_argument, NULL, O_SSE},
        {"max-append-bytes", required_argument, NULL, O_MAXAPP},
        {"read-window", required_argument, NULL, O_READWIN},
        {"read-budget", required_argument, NULL, O_READBUDGET},
        {"max-connections", required_argument, NULL, O_MAXCONN},
        {"quiet", no_argument, NULL, O_QUIET},
        {"max-json-bytes", required_argument, NULL, O_MAXJSON},
        {"idempotency-ttl", required_argument, NULL, O_IDEMTTL},
        {"admin-key", required_argument, NULL, O_ADMIN},
        {"jwt-secret", required_argument, NULL, O_JWT},
        {"session-max-attempts", required_argument, NULL, O_MAXATTEMPTS},
        {"allow-origin", required_argument, NULL, O_ALLOWORIGIN},
    };
    struct option all[sizeof opts / sizeof opts[0] + N_RATE_OPTS + 1];
    size_t nall = 0;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        all[nall++] = opts[i];
    for (size_t i = 0; i < N_RATE_OPTS; i++)
        all[nall++] =
            (struct option){rate_opts[i].flag, required_argument, NULL, O_RATE_BASE + (int)i};
    all[nall] = (struct option){NULL, 0, NULL, 0};
    parley_config_t cfg;
    parley_config_init(&cfg);
    /* Secrets from the environment keep them out of `ps`. */
    cfg.admin_key = getenv("PARLEY_ADMIN_KEY");
    cfg.jwt_secret = getenv("PARLEY_JWT_SECRET");
    const char *env_store = getenv("PARLEY_STORE");
    if (env_store && *env_store)
        cfg.store_url = env_store;
    for (size_t i = 0; i < N_RATE_OPTS; i++) {
        const char *v = getenv(rate_opts[i].env);
        if (v && *v && set_rate_opt(&rate_opts[i], v, &cfg)) {
            fprintf(stderr, "parley: invalid value '%s' for %s\n", v, rate_opts[i].env);
            return 2;
        }
    }

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("parley %s\n", PARLEY_VERSION);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "serve") != 0) {
        if (argc >= 2)
            fprintf(stderr, "parley: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    const char *env_origins = getenv("PARLEY_ALLOW_ORIGIN");
    if (env_origins && *env_origins && origins_from_env(env_origins, &cfg)) {
        fprintf(stderr,
                "parley: invalid PARLEY_ALLOW_ORIGIN '%s': give origins such as "
                "http://localhost:5173, separated by commas\n",
                env_origins);
        return 2;
    }
    bool origins_given = false; /* the first --allow-origin replaces the environment's */
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "hV", all, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("parley %s\n", PARLEY_VERSION);
            return 0;
        case O_LISTEN:
            bad = parse_listen(optarg, &cfg);
            break;
        case O_DATA:
            cfg.data_dir = optarg;
            break;
        case O_STORE:
            cfg.store_url = optarg;
            break;
        case O_THREADS:
            bad = parse_uint(optarg, &cfg.threads);
            break;
        case O_LP:
            bad = parse_uint(optarg, &cfg.long_poll_ms);
            break;
        case O_SSE:
            bad = parse_uint(optarg, &cfg.sse_recycle_ms);
            break;
        case O_MAXAPP:
            bad = parse_size(optarg, &cfg.max_append_bytes);
            break;
        case O_READWIN:
            bad = parse_size(optarg, &cfg.read_window_bytes) || cfg.read_window_bytes < 16384;
            break;
        case O_READBUDGET:
            bad = parse_size(optarg, &cfg.read_budget_bytes) || cfg.read_budget_bytes < 16384;
            break;
        case O_MAXCONN:
            bad = parse_uint(optarg, &cfg.max_connections);
            break;
        case O_QUIET:
            cfg.quiet = true;
            break;
        case O_MAXJSON:
            bad = parse_size(optarg, &cfg.max_json_bytes);
            break;
        case O_IDEMTTL:
            bad = parse_uint(optarg, &cfg.idempotency_ttl_s);
            break;
        case O_ADMIN:
            cfg.admin_key = optarg;
            break;
        case O_MAXATTEMPTS:
            bad = parse_uint(optarg, &cfg.session_max_attempts) || cfg.session_max_attempts > 100;
            break;
        case O_JWT:
            cfg.jwt_secret = optarg;
            break;
        case O_ALLOWORIGIN:
            if (!origins_given)
                cfg.nallow_origins = 0;
            origins_given = true;
            bad = add_origin(optarg, &cfg);
            break;
        default:
            if (c >= O_RATE_BASE && c < O_RATE_BASE + (int)N_RATE_OPTS) {
                bad = set_rate_opt(&rate_opts[c - O_RATE_BASE], optarg, &cfg);
                break;
            }
            usage(stderr);
            return 2;
        }
        if (bad) {
            const char *name = "option";
            for (const struct option *o = all; o->name; o++)
                if (o->val == c)
                    name = o->name;
            fprintf(stderr, "parley: invalid value '%s' for --%s\n", optarg, name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "parley: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    const char *why = NULL;
    if (!parley_config_store_ok(&cfg, &why)) {
        /* Only the scheme: a database URL may hold a password. */
        fprintf(stderr, "parley: invalid --store (scheme '%.*s'): %s\n",
                (int)strcspn(cfg.store_url, ":"), cfg.store_url, why);
        return 2;
    }
    int rc = parley_server_run(&cfg);
    return rc == 0 ? 0 : 1;
}
