/*
 * ratelimit.c — request rate limits as the API applies them (see
 * ratelimit.h; the buckets are core/ratelimit.c).
 *
 * Keys. A user's key is its user id. An address's key is its IPv4
 * address (an IPv4-mapped IPv6 address counts as IPv4), or the /64 prefix
 * of an IPv6 address: one IPv6 host usually owns a whole /64, so keying by
 * the full address would let it make up fresh buckets at will. The key
 * starts with a tag byte so that an IPv4 address and a /64 never meet.
 * The address is the TCP peer's: behind a proxy it is the proxy's
 * (README, "Rate limits").
 *
 * Order. The address's bucket is charged first, then the user's; a
 * request refused by the user's limit has still cost its address a token
 * (it did reach the server).
 *
 * Threads: any HTTP worker thread; the limiter itself is thread-safe.
 */
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "api/app.h"
#include "api/auth.h"
#include "api/ratelimit.h"
#include "api/reply.h"

int parley_api_ratelimit_create(const parley_config_t *cfg, parley_ratelimit_t **out)
{
    parley_rate_rule_t rules[PARLEY_RATE_NCLASSES];
    const parley_rate_t user_writes = PARLEY_RATE_DEFAULT_USER_WRITES;
    const parley_rate_t user_reads = PARLEY_RATE_DEFAULT_USER_READS;
    bool local = parley_auth_local_mode(cfg);
    bool any = false;
    int rc;
    *out = NULL;
    rc = parley_ratelimit_rule(&cfg->rate_user_writes, &user_writes, local,
                               &rules[PARLEY_RATE_USER_WRITES]);
    if (rc == 0)
        rc = parley_ratelimit_rule(&cfg->rate_user_reads, &user_reads, local,
                                   &rules[PARLEY_RATE_USER_READS]);
    if (rc == 0)
        rc = parley_ratelimit_rule(&cfg->rate_addr_writes, NULL, local,
                                   &rules[PARLEY_RATE_ADDR_WRITES]);
    if (rc == 0)
        rc = parley_ratelimit_rule(&cfg->rate_addr_reads, NULL, local,
                                   &rules[PARLEY_RATE_ADDR_READS]);
    if (rc)
        return rc;
    for (int i = 0; i < PARLEY_RATE_NCLASSES; i++)
        any = any || parley_ratelimit_rule_is_on(&rules[i]);
    if (!any)
        return 0;
    return parley_ratelimit_create(rules, PARLEY_RATELIMIT_BUCKETS, NULL, out);
}

size_t parley_api_ratelimit_address_key(const struct sockaddr *sa, unsigned char key[9])
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key[0] = 4;
        memcpy(key + 1, &in->sin_addr, 4);
        return 5;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *a = in6->sin6_addr.s6_addr;
        if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
            key[0] = 4;
            memcpy(key + 1, a + 12, 4);
            return 5;
        }
        key[0] = 6;
        memcpy(key + 1, a, 8); /* the /64 */
        return 9;
    }
    return 0;
}

static const char *period_name(uint32_t period_s, char *buf, size_t len)
{
    if (period_s == 1)
        return "second";
    if (period_s == 60)
        return "minute";
    if (period_s == 3600)
        return "hour";
    snprintf(buf, len, "%u seconds", period_s);
    return buf;
}

/* Answer r 429 for a refusal by cls after waiting wait_ns. */
static void refuse(parley_req_t *r, const parley_rate_rule_t *rule, bool user, bool write,
                   int64_t wait_ns)
{
    char msg[256], per[32], retry[24];
    int64_t after = parley_ratelimit_retry_after_s(wait_ns);
    const char *scope = user ? "user" : "address";
    const char *kind = write ? "writes" : "reads";
    snprintf(msg, sizeof msg,
             "too many %s from this %s: the limit is %u per %s, in bursts of at most %lld; "
             "retry after %lld s",
             kind, scope, rule->count, period_name(rule->period_s, per, sizeof per),
             (long long)rule->burst, (long long)after);
    json_t *details =
        json_pack("{s:I, s:I, s:I, s:I, s:s, s:s}", "retry_after", (json_int_t)after, "limit",
                  (json_int_t)rule->count, "period_seconds", (json_int_t)rule->period_s, "burst",
                  (json_int_t)rule->burst, "scope", scope, "kind", kind);
    parley_reply_t rp;
    parley_reply_init(&rp);
    snprintf(retry, sizeof retry, "%lld", (long long)after);
    parley_reply_header(&rp, "Retry-After", retry);
    parley_reply_error(&rp, 429, "rate_limited", msg, details);
    parley_reply_send(r, &rp);
    parley_reply_free(&rp);
    json_decref(details);
}

bool parley_api_ratelimit_refuse(parley_req_t *r)
{
    parley_app_t *ctx = parley_api_app(r);
    parley_ratelimit_t *rl = ctx->ratelimit;
    if (!rl)
        return false;
    const char *path = parley_req_path(r);
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0)
        return false;
    const char *method = parley_req_method(r);
    bool write = strcasecmp(method, "GET") != 0 && strcasecmp(method, "HEAD") != 0;
    const char *user = parley_req_user(r);
    bool admin = strcmp(user, PARLEY_ADMIN_USER) == 0;
    parley_rate_admin_t mode = ctx->cfg->rate_admin;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    int64_t wait;
    parley_rate_class_t cls;

    if (!(admin && mode == PARLEY_RATE_ADMIN_NONE)) {
        unsigned char key[9];
        size_t len = parley_api_ratelimit_address_key(parley_req_client_addr(r), key);
        cls = write ? PARLEY_RATE_ADDR_WRITES : PARLEY_RATE_ADDR_READS;
        if (len && !parley_ratelimit_admit(rl, cls, key, len, now, &wait)) {
            refuse(r, parley_ratelimit_rule_of(rl, cls), false, write, wait);
            return true;
        }
    }
    if (*user && !(admin && mode != PARLEY_RATE_ADMIN_ALL)) {
        cls = write ? PARLEY_RATE_USER_WRITES : PARLEY_RATE_USER_READS;
        if (!parley_ratelimit_admit(rl, cls, user, strlen(user), now, &wait)) {
            refuse(r, parley_ratelimit_rule_of(rl, cls), true, write, wait);
            return true;
        }
    }
    return false;
}
