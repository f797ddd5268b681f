/*
 * sessions.c — /v1/sessions: assistant turns over HTTP.
 *
 *   /v1/sessions/claim             POST (workers): the oldest pending session, or 204
 *   /v1/sessions/{id}              GET
 *   /v1/sessions/{id}/stream       GET, HEAD (owner or admin): catch-up, long-poll, SSE;
 *                                  POST (workers): append output, Durable Streams style
 *   /v1/sessions/{id}/{action}     POST: heartbeat, await, complete, fail (workers);
 *                                  input, cancel (the owner or a worker)
 *
 * Workers authenticate with the admin key; users with their JWT. A user's
 * request for a worker action is 403; another user's session is 404.
 * An action's body is checked here, on the connection's thread
 * (parley_session_parse: the 403, then the 400s), before the write is
 * submitted; complete runs core/turn.c's rule (it appends the reply to
 * the conversation), the other actions core/session.c's.
 *
 * Appending output is a Durable Streams append (Content-Type:
 * application/json, a JSON value or an array of them, optional
 * Producer-Id/Epoch/Seq for exactly-once chunks) to the session's internal
 * stream, run in the same savepoint as the check that the session is
 * processing — so after a cancel, a completion or a lease expiry, the
 * worker's next append is refused with 409 and nothing is written.
 * Session-Attempt: N fences a stale worker (409 stale_attempt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/status.h"
#include "api/api.h"
#include "api/params.h"
#include "api/resource.h"
#include "api/write.h"
#include "codec/id.h"
#include "core/branch.h"
#include "core/producer.h"
#include "core/session.h"
#include "core/stream.h"
#include "core/streamrules.h"
#include "core/turn.h"
#include "parley/parley.h"

typedef struct sess_write {
    parley_command_t cmd;             /* the core command (u.session: the action) */
    json_t *body;                     /* parsed body (owned), or NULL */
    char user[PARLEY_OWNER_MAX + 1];  /* the caller */
    char id[PARLEY_ROW_ID_MAX + 1];   /* the session */
    char reply_id[PARLEY_ID_LEN + 1]; /* complete: the assistant message's id */
} sess_write_t;

static void sess_write_free(void *arg)
{
    sess_write_t *sw = arg;
    if (!sw)
        return;
    json_decref(sw->body);
    free(sw);
}

/* After the commit: the answer for the action's outcome. */
static void render_sess_write(void *ctx, const parley_outcome_t *o, parley_reply_t *rp)
{
    (void)ctx;
    parley_resource_render(o, rp);
}

static void start_action(parley_req_t *r, parley_session_action_t action, const char *id)
{
    sess_write_t *sw = calloc(1, sizeof *sw);
    if (!sw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    snprintf(sw->user, sizeof sw->user, "%s", parley_req_user(r));
    snprintf(sw->id, sizeof sw->id, "%s", id ? id : "");
    if (parley_resource_new_id(r, sw->reply_id) || parley_resource_body(r, true, &sw->body)) {
        sess_write_free(sw);
        return;
    }
    sw->cmd.kind = PARLEY_CMD_SESSION;
    sw->cmd.u.session.action = action;
    sw->cmd.u.session.id = sw->id;
    sw->cmd.u.session.user = sw->user;
    sw->cmd.u.session.admin = parley_req_is_admin(r);
    sw->cmd.u.session.body = sw->body;
    sw->cmd.u.session.reply_id = sw->reply_id;
    parley_outcome_t o;
    if (parley_session_parse(&sw->cmd.u.session, &o)) {
        parley_resource_refuse(r, &o);
        parley_outcome_clear(&o);
        sess_write_free(sw);
        return;
    }
    /* complete's content becomes a message: the same limit as a posted one. */
    if (action == PARLEY_SESSION_COMPLETE &&
        parley_resource_content_fits(r, json_object_get(sw->body, "content"),
                                     parley_api_app(r)->cfg->max_json_bytes, "content")) {
        sess_write_free(sw);
        return;
    }
    parley_api_write(r, &sw->cmd, render_sess_write, sw, sess_write_free);
}

/* ---- appending output --------------------------------------------------------- */

typedef struct append_write {
    char user[PARLEY_OWNER_MAX + 1]; /* the caller */
    char id[PARLEY_ROW_ID_MAX + 1];  /* the session */
    parley_command_t cmd;            /* the core command (u.sess_append) */
} append_write_t;

/* After the commit: a refusal of the session check (it carries an error
 * code) is answered as the chat API's refusals are; the append's own
 * outcome as the stream protocol answers it. */
static void render_append(void *ctx, const parley_outcome_t *o, parley_reply_t *rp)
{
    (void)ctx;
    if (o->refusal && o->code)
        parley_resource_render(o, rp);
    else
        parley_api_stream_render(o, rp);
}

static void append_output(parley_req_t *r, const char *id)
{
    append_write_t *aw = calloc(1, sizeof *aw);
    if (!aw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    parley_command_sess_append_t *a = &aw->cmd.u.sess_append;
    parley_stream_req_t *q = &a->stream;
    const char *att = parley_req_header(r, "Session-Attempt");
    uint64_t n = 0;
    snprintf(aw->user, sizeof aw->user, "%s", parley_req_user(r));
    snprintf(aw->id, sizeof aw->id, "%s", id);
    aw->cmd.kind = PARLEY_CMD_SESSION_APPEND;
    a->id = aw->id;
    a->user = aw->user;
    a->admin = parley_req_is_admin(r);
    a->attempt = -1;
    q->ttl_s = q->expires_ms = -1;
    const char *why = parley_api_stream_append_parse(r, q);
    if (!why && q->closed)
        why = "a session's stream is closed by complete, fail or cancel, not by Stream-Closed";
    else if (!why && att && (parley_param_decimal(att, INT64_MAX, &n) || n == 0))
        why = "Session-Attempt must be the session's attempt number (from 1)";
    if (why) {
        free(aw);
        parley_req_error(r, 400, "bad_request", why);
        return;
    }
    if (att)
        a->attempt = (int64_t)n;
    parley_api_write(r, &aw->cmd, render_append, aw, free);
}

/* ---- reads ----------------------------------------------------------------------- */

/* Read session id for the caller into *s. 0, or after answering
 * PARLEY_ENOTFOUND (404) or the storage error (500). */
static int get_visible(parley_req_t *r, const char *id, parley_sess_t *s)
{
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    int rc = db ? parley_db_sess_get(db, id, s) : PARLEY_EUNAVAIL;
    if (rc == 0 && parley_session_visible(s, parley_req_user(r), parley_req_is_admin(r)))
        return 0;
    if (rc == 0)
        parley_sess_clear(s);
    if (rc == 0 || rc == PARLEY_ENOTFOUND) {
        parley_req_error(r, 404, "not_found", "no such session");
        return PARLEY_ENOTFOUND;
    }
    parley_api_store_failed(r, rc, "the session");
    return rc;
}

static void get_one(parley_req_t *r, const char *id)
{
    parley_sess_t s;
    char etag[PARLEY_SESSION_ETAG_LEN + 1];
    if (get_visible(r, id, &s))
        return;
    /* A poll of an unchanged session costs the row's read and a hash:
     * 304 before any JSON is built. */
    parley_session_etag(&s, etag);
    parley_req_add_header(r, "ETag", etag);
    parley_req_add_header(r, "Cache-Control", "private, no-cache");
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && parley_param_etag_match(inm, etag)) {
        parley_sess_clear(&s);
        parley_req_respond_empty(r, 304);
        return;
    }
    json_t *rep = parley_session_json(&s);
    char branch[PARLEY_ID_LEN + 1];
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    int rc =
        db ? parley_branch_session_branch(db, s.conversation_id, s.id, branch) : PARLEY_EUNAVAIL;
    parley_sess_clear(&s);
    if (rc || !rep) {
        json_decref(rep);
        parley_api_store_failed(r, rc ? rc : PARLEY_ENOMEM, "the session");
        return;
    }
    json_object_set_new(rep, "branch", json_string(branch)); /* where its answer goes */
    parley_resource_send(r, 200, rep);
    json_decref(rep);
}

static void get_stream(parley_req_t *r, const char *id, bool head)
{
    parley_sess_t s;
    char path[PARLEY_PATH_MAX + 1];
    if (get_visible(r, id, &s))
        return;
    parley_sess_clear(&s);
    parley_session_stream_path(id, path, sizeof path);
    parley_api_stream_read(r, path, head);
}

/* ---- routing ---------------------------------------------------------------------- */

void parley_api_sessions(parley_req_t *r, const char *rest)
{
    const char *m = parley_req_method(r);
    bool get = strcmp(m, "GET") == 0, head = strcmp(m, "HEAD") == 0;
    bool post = strcmp(m, "POST") == 0;
    if (strcmp(rest, "/claim") == 0) {
        if (post)
            start_action(r, PARLEY_SESSION_CLAIM, NULL);
        else
            parley_resource_method_not_allowed(r, "POST", "claim with POST");
        return;
    }
    char id[PARLEY_ROW_ID_MAX + 1];
    if (rest[0] != '/' || rest[1] == '/' || rest[1] == '\0') {
        parley_req_error(r, 404, "not_found",
                         "no such route: see /v1/sessions/claim and /v1/sessions/{id}");
        return;
    }
    const char *sub = parley_resource_id_segment(rest + 1, id);
    if (!sub) {
        parley_req_error(r, 404, "not_found", "no such session");
        return;
    }
    parley_session_action_t action;
    if (sub[0] == '\0') {
        if (get)
            get_one(r, id);
        else
            parley_resource_method_not_allowed(r, "GET", NULL);
    } else if (strcmp(sub, "/stream") == 0) {
        if (get || head)
            get_stream(r, id, head);
        else if (post)
            append_output(r, id);
        else
            parley_resource_method_not_allowed(r, "GET, HEAD, POST", NULL);
    } else if (sub[0] == '/' && parley_session_action_parse(sub + 1, &action) == 0 &&
               action != PARLEY_SESSION_CLAIM && action != PARLEY_SESSION_APPEND &&
               action != PARLEY_SESSION_EXPIRE) {
        if (post)
            start_action(r, action, id);
        else
            parley_resource_method_not_allowed(r, "POST", NULL);
    } else {
        parley_req_error(r, 404, "not_found",
                         "no such route: a session has /stream, /heartbeat, /await, /input, "
                         "/complete, /fail and /cancel");
    }
}
