/*
 * users.c — /v1/users/{from}/transfer: moving all of one user's data to
 * another (core/transfer.h), for the app's backend when an anonymous user
 * signs in.
 *
 *   POST /v1/users/{from}/transfer {"to": "<user>"}   200 {from, to, moved, dropped}
 *
 * The admin key only (acting as nobody: with Parley-User it is that user,
 * and a user may not give away or take another's data): 403 otherwise.
 * from is everything between /v1/users/ and /transfer (a user id may hold
 * a '/'); from and to must be valid user ids (1-255 printable characters,
 * no space, not starting with '@'), different (400 same_user). The move
 * runs on the writer as one command, in one transaction.
 *
 * Threads: an HTTP worker; the rule on the writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/resource.h"
#include "api/write.h"
#include "codec/canonjson.h"
#include "parley/parley.h"

typedef struct transfer_write {
    parley_command_t cmd;            /* u.transfer */
    json_t *body;                    /* parsed body (owned) */
    char from[PARLEY_OWNER_MAX + 1]; /* the user whose data moves */
    char to[PARLEY_OWNER_MAX + 1];   /* the user who gets it */
} transfer_write_t;

static void transfer_write_free(void *arg)
{
    transfer_write_t *tw = arg;
    if (!tw)
        return;
    json_decref(tw->body);
    free(tw);
}

static void render(void *ctx, const parley_outcome_t *o, parley_reply_t *rp)
{
    (void)ctx;
    parley_resource_render(o, rp);
}

static void bad(parley_req_t *r, const char *code, const char *msg)
{
    parley_req_error(r, 400, code, msg);
}

void parley_api_users(parley_req_t *r, const char *rest)
{
    static const char tail[] = "/transfer";
    static const char *const allowed[] = {"to", NULL};
    size_t n = strlen(rest), t = sizeof tail - 1;
    if (n <= t || strcmp(rest + n - t, tail) != 0) {
        parley_req_error(r, 404, "not_found", "no such route: see POST /v1/users/{from}/transfer");
        return;
    }
    if (strcmp(parley_req_method(r), "POST") != 0) {
        parley_resource_method_not_allowed(r, "POST", NULL);
        return;
    }
    if (!parley_req_is_admin(r)) {
        parley_req_error(r, 403, "forbidden",
                         "moving a user's data takes the admin key (without Parley-User)");
        return;
    }
    transfer_write_t *tw = calloc(1, sizeof *tw);
    if (!tw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    n -= t;
    if (n > PARLEY_OWNER_MAX) {
        transfer_write_free(tw);
        bad(r, "invalid_user", "from must be a user id of 1 to 255 characters");
        return;
    }
    memcpy(tw->from, rest, n);
    tw->from[n] = '\0';
    if (!parley_auth_user_is_valid(tw->from)) {
        transfer_write_free(tw);
        bad(r, "invalid_user",
            "from must be a user id: 1 to 255 printable characters without spaces, not starting "
            "with '@'");
        return;
    }
    if (parley_resource_body(r, false, &tw->body)) {
        transfer_write_free(tw);
        return;
    }
    const char *stranger =
        json_is_object(tw->body) ? parley_canonjson_stranger(tw->body, allowed) : NULL;
    json_t *to = json_object_get(tw->body, "to");
    if (!json_is_object(tw->body) || stranger || !json_is_string(to) ||
        json_string_length(to) > PARLEY_OWNER_MAX ||
        !parley_auth_user_is_valid(json_string_value(to))) {
        transfer_write_free(tw);
        bad(r, "invalid_transfer",
            stranger ? "unknown field: the body is {\"to\": \"<user id>\"}"
                     : "the body is {\"to\": \"<user id>\"}: 1 to 255 printable characters "
                       "without spaces, not starting with '@'");
        return;
    }
    snprintf(tw->to, sizeof tw->to, "%s", json_string_value(to));
    if (strcmp(tw->from, tw->to) == 0) {
        transfer_write_free(tw);
        bad(r, "same_user", "from and to are the same user: nothing to move");
        return;
    }
    tw->cmd.kind = PARLEY_CMD_TRANSFER;
    tw->cmd.u.transfer.from = tw->from;
    tw->cmd.u.transfer.to = tw->to;
    parley_api_write(r, &tw->cmd, render, tw, transfer_write_free);
}
