/*
 * auth.c — authentication of requests (see auth.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/auth.h"
#include "codec/jwt.h"
#include "util/clock.h"

bool parley_auth_local_mode(const parley_config_t *cfg)
{
    return !(cfg->admin_key && *cfg->admin_key) && !(cfg->jwt_secret && *cfg->jwt_secret);
}

/* True if s[0..n) is a port: 1 to 5 digits (empty is no port: false). */
static bool is_port(const char *s, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool parley_auth_host_is_loopback(const char *host)
{
    char name[64];
    size_t n = strlen(host);
    const char *port = NULL;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (!close || (size_t)(close - host) != 4 || strncmp(host, "[::1]", 5) != 0)
            return false;
        port = close + 1;
    } else {
        const char *colon = strchr(host, ':');
        size_t len = colon ? (size_t)(colon - host) : n;
        if (len == 0 || len >= sizeof name)
            return false;
        memcpy(name, host, len);
        name[len] = '\0';
        struct in_addr a;
        if (strcasecmp(name, "localhost") != 0 &&
            !(inet_pton(AF_INET, name, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127))
            return false;
        port = host + len;
    }
    return *port == '\0' || (*port == ':' && is_port(port + 1, strlen(port + 1)));
}

/* Origin is "http://" followed by host exactly (the server's own page). */
static bool is_own_origin(const char *origin, const char *host)
{
    return host && strncasecmp(origin, "http://", 7) == 0 && strcasecmp(origin + 7, host) == 0;
}

int parley_auth_origin(const parley_config_t *cfg, const char *host, const char *origin,
                       const char **allow, const char **why)
{
    *allow = NULL;
    if (!parley_auth_local_mode(cfg)) {
        *allow = "*";
        return 0;
    }
    if (host && !parley_auth_host_is_loopback(host)) {
        *why = "local mode serves loopback host names only (localhost, 127.0.0.1, [::1]); "
               "configure --admin-key or --jwt-secret to serve other names";
        return 421;
    }
    if (!origin || is_own_origin(origin, host))
        return 0;
    for (size_t i = 0; i < cfg->nallow_origins; i++)
        if (strcasecmp(origin, cfg->allow_origins[i]) == 0) {
            *allow = origin;
            return 0;
        }
    *why = "cross-origin requests are refused in local mode; start the server with "
           "--allow-origin ORIGIN to let that web page use it";
    return 403;
}

static bool valid_user_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255 || s[0] == '@')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

bool parley_auth_user_is_valid(const char *s)
{
    return s && valid_user_id(s);
}

int parley_auth_check(const parley_config_t *cfg, const char *authorization, const char *act_as,
                      parley_principal_t *p, const char **why)
{
    p->admin = false;
    p->user[0] = '\0';
    if (parley_auth_local_mode(cfg)) {
        p->admin = true;
        snprintf(p->user, sizeof p->user, "%s", PARLEY_LOCAL_USER);
        return 0;
    }
    if (!authorization || !*authorization) {
        *why = "missing Authorization header: send 'Authorization: Bearer <token>'";
        return PARLEY_EINVAL;
    }
    if (strncasecmp(authorization, "Bearer ", 7) != 0) {
        *why = "the Authorization header must be 'Bearer <token>'";
        return PARLEY_EINVAL;
    }
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    if (cfg->admin_key && *cfg->admin_key && parley_jwt_secret_equal(token, cfg->admin_key)) {
        if (act_as && *act_as) {
            if (!valid_user_id(act_as)) {
                *why = "Parley-User must be 1 to 255 printable characters without spaces, not "
                       "starting with '@'";
                return PARLEY_EINVAL;
            }
            snprintf(p->user, sizeof p->user, "%s", act_as); /* exactly that user */
        } else {
            p->admin = true;
            snprintf(p->user, sizeof p->user, "%s", PARLEY_ADMIN_USER);
        }
        return 0;
    }
    if (!(cfg->jwt_secret && *cfg->jwt_secret)) {
        *why = "invalid token: this server accepts only its admin key";
        return PARLEY_EINVAL;
    }
    parley_jwt_claims_t claims;
    int rc = parley_jwt_verify(token, (const unsigned char *)cfg->jwt_secret,
                               strlen(cfg->jwt_secret), parley_clock_now_ms() / 1000, &claims, why);
    if (rc)
        return PARLEY_EINVAL;
    if (!valid_user_id(claims.sub)) {
        *why = "the token's sub must be 1 to 255 printable characters without spaces, not "
               "starting with '@'";
        return PARLEY_EINVAL;
    }
    snprintf(p->user, sizeof p->user, "%s", claims.sub);
    return 0;
}

int parley_auth_metrics(const parley_config_t *cfg, const char *authorization, const char **who,
                        const char **why)
{
    *who = PARLEY_LOCAL_USER;
    if (parley_auth_local_mode(cfg))
        return 0;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) {
        *why = "/metrics needs 'Authorization: Bearer <token>' with the admin key or the "
               "metrics token (--metrics-token)";
        return PARLEY_EINVAL;
    }
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    /* Both compared, in constant time, whichever matches. */
    bool admin =
        cfg->admin_key && *cfg->admin_key && parley_jwt_secret_equal(token, cfg->admin_key);
    bool scraper = cfg->metrics_token && *cfg->metrics_token &&
                   parley_jwt_secret_equal(token, cfg->metrics_token);
    *who = admin ? PARLEY_ADMIN_USER : PARLEY_METRICS_USER;
    if (admin || scraper)
        return 0;
    *why = "invalid token: /metrics takes the admin key or the metrics token (--metrics-token)";
    return PARLEY_EINVAL;
}
