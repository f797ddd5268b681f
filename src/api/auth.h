/*
 * auth.h — who is calling: the admin key, a user's JWT, or local mode.
 *
 * Authorization: Bearer <token>, where the token is either the admin key
 * (--admin-key; the app's backend and its workers) or an HS256 JWT signed
 * with --jwt-secret by the app's own auth, whose `sub` is the user id.
 * With neither configured, Parley runs in local mode: every request is the
 * one local user ("@local"), with admin rights, and the server listens on
 * loopback only.
 *
 * The admin key alone is the principal "@admin": it reaches every user's
 * resources, and what it creates is owned by "@admin". With
 * `Parley-User: <user id>` the admin key acts as that user, exactly: it
 * sees and creates what the user would, no more (a backend serving a user
 * cannot leak another user's data by mistake).
 *
 * User ids (a JWT's sub, Parley-User) are 1-255 printable ASCII characters
 * without spaces and must not start with '@': that prefix is reserved for
 * Parley's own principals, so no token can ever name the admin.
 *
 * Where a request may come from (parley_auth_origin). With auth
 * configured, any origin may call (a browser still needs a token, and CORS
 * is "*" as the Durable Streams protocol expects). In local mode there is
 * no token to stop a web page, so:
 *   1. the Host header must name loopback: localhost, 127.0.0.0/8 or
 *      [::1], with any port (else 421): a DNS-rebinding page sends its own
 *      host name;
 *   2. a request with an Origin is refused (403) unless the origin is the
 *      server's own ("http://" + Host) or one named by --allow-origin,
 *      which then gets CORS headers naming exactly that origin.
 * A request without Origin is not cross-origin (browsers send Origin on
 * every cross-origin request and on every same-origin one but GET/HEAD).
 *
 * Secrets are compared in constant time. Thread-safe (no state).
 */
#ifndef PARLEY_API_AUTH_H
#define PARLEY_API_AUTH_H

#include <stdbool.h>

#include "parley/parley.h"

#define PARLEY_ADMIN_USER   "@admin"   /* owner of what the admin key creates */
#define PARLEY_LOCAL_USER   "@local"   /* the one user of local mode */
#define PARLEY_METRICS_USER "@metrics" /* the metrics token (reads /metrics only) */

typedef struct parley_principal {
    char user[256]; /* the user id that owns what this request creates */
    bool admin;     /* reaches every user's resources */
} parley_principal_t;

/*
 * Authenticate a request from its Authorization and Parley-User headers
 * (either may be NULL). 0 with *p filled, or PARLEY_EINVAL with a static
 * *why (for a 401) naming the rule that failed.
 */
int parley_auth_check(const parley_config_t *cfg, const char *authorization, const char *act_as,
                      parley_principal_t *p, const char **why);

/*
 * May a request with these Host and Origin headers (either may be NULL)
 * be served? 0 with *allow the Access-Control-Allow-Origin to answer with
 * ("*", origin itself, or NULL for none); or the status to refuse with
 * (421 or 403) and a static *why.
 */
int parley_auth_origin(const parley_config_t *cfg, const char *host, const char *origin,
                       const char **allow, const char **why);

/* True if host (a Host header: name or address, optional port) names the
 * loopback interface. */
bool parley_auth_host_is_loopback(const char *host);

/* True when neither an admin key nor a JWT secret is configured. */
bool parley_auth_local_mode(const parley_config_t *cfg);

/* Whether s is a user id a token or Parley-User may name: 1-255 printable
 * ASCII characters without spaces, not starting with '@'. Any thread. */
bool parley_auth_user_is_valid(const char *s);

/*
 * May this Authorization read /metrics? 0 in local mode, or for a bearer
 * token equal (in constant time) to the admin key or the metrics token,
 * with *who the caller ("@local", "@admin" or "@metrics", static);
 * else PARLEY_EINVAL with *why (static text) for the 401. A user's JWT is
 * refused: metrics describe every user's traffic. Any thread.
 */
int parley_auth_metrics(const parley_config_t *cfg, const char *authorization, const char **who,
                        const char **why);

#endif
