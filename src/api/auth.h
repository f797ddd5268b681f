/*
 * auth.h — who is calling: the admin key, a user's JWT, or local mode.
 *
 * Authorization: Bearer <token>, where the token is either the admin key
 * (--admin-key; the app's backend and its workers) or an HS256 JWT signed
 * with --jwt-secret by the app's own auth, whose `sub` is the user id.
 * With neither configured, Parley runs in local mode: every request is the
 * one local user ("local"), with admin rights, and the server listens on
 * loopback only.
 *
 * The admin may act for a user by sending `Parley-User: <user id>`: what it
 * creates is then owned by that user, and the event feed it reads is that
 * user's. Without it the admin is the user "admin". Either way the admin
 * reaches every user's resources.
 *
 * Secrets are compared in constant time. Thread-safe (no state).
 */
#ifndef PARLEY_API_AUTH_H
#define PARLEY_API_AUTH_H

#include <stdbool.h>

#include "parley/parley.h"

typedef struct parley_principal {
    char user[256]; /* the user id that owns what this request creates */
    bool admin;     /* reaches every user's resources */
} parley_principal_t;

/*
 * Authenticate a request from its Authorization and Parley-User headers
 * (either may be NULL). 0 with *p filled, or PARLEY_EINVAL with a static
 * *why (for a 401) naming the rule that failed.
 */
int parley_auth_check(const parley_config_t *cfg, const char *authorization,
                      const char *act_as, parley_principal_t *p, const char **why);

/* True when neither an admin key nor a JWT secret is configured. */
bool parley_auth_local_mode(const parley_config_t *cfg);

#endif
