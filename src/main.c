/*
 * main.c — the `parley` command line. Parses arguments and calls the
 * library; everything else lives in libparley.
 */
#include <errno.h>
#include <getopt.h>
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
            "  --data DIR               data directory (default ./data)\n"
            "  --threads N              HTTP worker threads (default: one per core)\n"
            "  --long-poll-timeout MS   long-poll wait before 204 (default 30000)\n"
            "  --sse-recycle MS         SSE connection lifetime (default 60000)\n"
            "  --max-append-bytes N     largest stream append body (default 8388608)\n"
            "  --read-window N          pending output one reader may hold: a read is\n"
            "                           produced from the store this much at a time\n"
            "                           (default 262144, at least 16384)\n"
            "  --read-budget N          pending output of all readers together; past it,\n"
            "                           readers that stopped reading are disconnected\n"
            "                           (default 16777216)\n"
            "  --max-connections N      connection limit (default 65536)\n"
            "  --max-json-bytes N       largest JSON body of a document (default 1572864)\n"
            "  --idempotency-ttl S      keep Idempotency-Key records S seconds (default 86400)\n"
            "  --session-max-attempts N attempts of a session before it fails (default 3;\n"
            "                           a message may ask for its own, 1..100)\n"
            "  --admin-key KEY          bearer token with admin rights (or PARLEY_ADMIN_KEY)\n"
            "  --jwt-secret SECRET      HS256 secret of user JWTs (or PARLEY_JWT_SECRET)\n"
            "  --quiet                  no start-up line\n"
            "\n"
            "With neither --admin-key nor --jwt-secret, Parley runs in local mode: no\n"
            "authentication, every request is the local user, loopback only.\n");
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
        O_MAXATTEMPTS
    };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"listen", required_argument, NULL, O_LISTEN},
        {"data", required_argument, NULL, O_DATA},
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
        {NULL, 0, NULL, 0},
    };
    parley_config_t cfg;
    parley_config_init(&cfg);
    /* Secrets from the environment keep them out of `ps`. */
    cfg.admin_key = getenv("PARLEY_ADMIN_KEY");
    cfg.jwt_secret = getenv("PARLEY_JWT_SECRET");

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
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
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
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            const char *name = "option";
            for (const struct option *o = opts; o->name; o++)
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
    int rc = parley_server_run(&cfg);
    return rc == 0 ? 0 : 1;
}
