/*
 * auth.c — authentication of requests (see auth.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/auth.h"
#include "core/jwt.h"
#include "util/clock.h"

bool parley_auth_local_mode(const parley_config_t *cfg)
{
    return !(cfg->admin_key && *cfg->admin_key) && !(cfg->jwt_secret && *cfg->jwt_secret);
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

int parley_auth_check(const parley_config_t *cfg, const char *authorization,
                      const char *act_as, parley_principal_t *p, const char **why)
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
