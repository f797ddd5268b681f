/*
 * conversations.c — /v1/conversations: conversations and their messages
 * over HTTP.
 *
 *   /v1/conversations                          GET (list, most recently active first), POST
 *   /v1/conversations/{id}                     GET, HEAD, PATCH (merge patch), DELETE
 *   /v1/conversations/{id}/messages            GET (?after=&limit=&branch=, in seq order), POST
 *   /v1/conversations/{id}/messages/{mid}/edit        POST: a sibling of a user message
 *   /v1/conversations/{id}/messages/{mid}/regenerate  POST: a sibling of an answer
 *   /v1/conversations/{id}/branches            GET (?limit=&cursor=, creation order)
 *   /v1/conversations/{id}/branches/{bid}      GET, PATCH {"active": true}
 *   /v1/conversations/{id}/stream              GET, HEAD: the log as a read-only JSON stream
 *                                              (main's, or ?branch='s)
 *   /v1/conversations/{id}/sessions            GET (?status=&limit=&cursor=, newest first)
 *   /v1/conversations/{id}/sessions/latest     GET
 *
 * Bodies are parsed and checked here, on the connection's thread
 * (parley_conversation_parse, parley_message_parse): a bad body is refused
 * with its 400 before anything is submitted. The rules run on the writer
 * (core/conversation.c; core/turn.c for a message and for a delete, which
 * also touch sessions) as a core command through parley_api_write, so
 * every POST and PATCH honours Idempotency-Key; the answer is rendered from
 * the outcome after the commit. Reads use the worker's read-only
 * connection; another user's conversation answers 404, as a missing one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/status.h"
#include "api/api.h"
#include "api/params.h"
#include "api/resource.h"
#include "api/write.h"
#include "core/branch.h"
#include "core/conversation.h"
#include "codec/id.h"
#include "core/message.h"
#include "core/session.h"
#include "core/turn.h"
#include "parley/parley.h"

#define MESSAGES_PAGE_BYTES (4u << 20)  /* a message page stops growing past this */
#define MESSAGES_BUF_MAX    (96u << 20) /* hard limit of a page's body */

enum conv_write_kind { CW_CONVERSATION, CW_MESSAGE, CW_BRANCH };

typedef struct conv_write {
    enum conv_write_kind kind;          /* which rule */
    parley_command_t cmd;               /* the core command: u.conv or u.post */
    json_t *body;                       /* parsed body (owned) */
    char user[PARLEY_OWNER_MAX + 1];    /* the caller */
    char id[PARLEY_ROW_ID_MAX + 1];     /* conversation id */
    char mid[PARLEY_ID_LEN + 1];        /* new message id */
    char sid[PARLEY_ID_LEN + 1];        /* new session id */
    char bid[PARLEY_ID_LEN + 1];        /* new branch id */
    char branch[PARLEY_ROW_ID_MAX + 1]; /* the branch named by the request, "" for none */
    char target[PARLEY_ROW_ID_MAX + 1]; /* the message edited or regenerated */
} conv_write_t;

static void conv_write_free(void *arg)
{
    conv_write_t *cw = arg;
    if (!cw)
        return;
    json_decref(cw->body);
    free(cw);
}

static void etag_of(int64_t version, char *out, size_t n)
{
    snprintf(out, n, "\"%lld\"", (long long)version);
}

/* After the commit: the answer for the rule's outcome; a conversation
 * gets its ETag, and Location when created (from the outcome, so a replay
 * names the conversation the first request made). */
static void render_conv_write(void *ctx, const parley_outcome_t *o, parley_reply_t *rp)
{
    conv_write_t *cw = ctx;
    if (cw->kind == CW_CONVERSATION && !o->refusal && json_is_object(o->body)) {
        char etag[32], loc[PARLEY_ROW_ID_MAX + 32];
        json_t *v = json_object_get(o->body, "version");
        etag_of(json_integer_value(v), etag, sizeof etag);
        parley_reply_header(rp, "ETag", etag);
        const char *id = json_string_value(json_object_get(o->body, "id"));
        if (o->done == PARLEY_DONE_CREATED && id) {
            snprintf(loc, sizeof loc, "/v1/conversations/%s", id);
            parley_reply_header(rp, "Location", loc);
        }
    }
    parley_resource_render(o, rp);
}

static conv_write_t *new_write(parley_req_t *r, enum conv_write_kind kind, const char *id)
{
    conv_write_t *cw = calloc(1, sizeof *cw);
    if (!cw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return NULL;
    }
    cw->kind = kind;
    cw->cmd.kind = kind == CW_MESSAGE  ? PARLEY_CMD_MESSAGE
                   : kind == CW_BRANCH ? PARLEY_CMD_BRANCH
                                       : PARLEY_CMD_CONVERSATION;
    snprintf(cw->user, sizeof cw->user, "%s", parley_req_user(r));
    snprintf(cw->id, sizeof cw->id, "%s", id);
    return cw;
}

/* If-Match: "<version>" or *. 0 (has_if_match false for * or none), or
 * PARLEY_EINVAL after answering 400. */
static int if_match(parley_req_t *r, parley_conv_req_t *q)
{
    const char *v = parley_req_header(r, "If-Match");
    char digits[24];
    uint64_t n;
    if (!v || strcmp(v, "*") == 0)
        return 0;
    size_t len = strlen(v);
    if (len >= 3 && len <= 21 && v[0] == '"' && v[len - 1] == '"') {
        memcpy(digits, v + 1, len - 2);
        digits[len - 2] = '\0';
        if (parley_param_decimal(digits, INT64_MAX, &n) == 0) {
            q->has_if_match = true;
            q->if_match = (int64_t)n;
            return 0;
        }
    }
    parley_req_error(r, 400, "invalid_precondition",
                     "If-Match must be * or a version in quotes, e.g. If-Match: \"3\"");
    return PARLEY_EINVAL;
}

static void start_conv_write(parley_req_t *r, parley_conv_op_t op, const char *id)
{
    char newid[PARLEY_ID_LEN + 1];
    if (op == PARLEY_CONV_CREATE) {
        if (parley_resource_new_id(r, newid))
            return;
        id = newid;
    }
    conv_write_t *cw = new_write(r, CW_CONVERSATION, id);
    if (!cw)
        return;
    cw->cmd.u.conv.op = op;
    cw->cmd.u.conv.id = cw->id;
    cw->cmd.u.conv.user = cw->user;
    cw->cmd.u.conv.admin = parley_req_is_admin(r);
    if (op != PARLEY_CONV_CREATE && if_match(r, &cw->cmd.u.conv)) {
        conv_write_free(cw);
        return;
    }
    if (op != PARLEY_CONV_DELETE && parley_resource_body(r, op == PARLEY_CONV_CREATE, &cw->body)) {
        conv_write_free(cw);
        return;
    }
    parley_outcome_t o;
    if (parley_conversation_parse(op, cw->body, &o)) {
        parley_resource_refuse(r, &o);
        parley_outcome_clear(&o);
        conv_write_free(cw);
        return;
    }
    cw->cmd.u.conv.body = cw->body;
    parley_api_write(r, &cw->cmd, render_conv_write, cw, conv_write_free);
}

/* A branch id as given (a query value or a body member): true if it is
 * one; false after answering 400. */
static bool branch_name_ok(parley_req_t *r, const char *v)
{
    if (v && strlen(v) <= PARLEY_ID_LEN && parley_id_is_valid_name(v, PARLEY_ID_LEN))
        return true;
    parley_req_error(r, 400, "invalid_branch",
                     "branch must be a branch id: \"main\" or an id from .../branches");
    return false;
}

/* Take the optional "branch" member out of cw->body into cw->branch.
 * 0, or PARLEY_EINVAL after answering 400. */
static int take_branch(parley_req_t *r, conv_write_t *cw)
{
    json_t *b = json_is_object(cw->body) ? json_object_get(cw->body, "branch") : NULL;
    if (!b)
        return 0;
    if (!json_is_string(b) || !branch_name_ok(r, json_string_value(b))) {
        if (!json_is_string(b))
            branch_name_ok(r, NULL);
        return PARLEY_EINVAL;
    }
    snprintf(cw->branch, sizeof cw->branch, "%s", json_string_value(b));
    json_object_del(cw->body, "branch");
    return 0;
}

static void post_message(parley_req_t *r, const char *id)
{
    conv_write_t *cw = new_write(r, CW_MESSAGE, id);
    if (!cw)
        return;
    if (parley_api_write_replay(r, render_conv_write, cw)) { /* a retry: nothing to parse */
        conv_write_free(cw);
        return;
    }
    if (parley_resource_new_id(r, cw->mid) || parley_resource_new_id(r, cw->sid) ||
        parley_resource_body(r, false, &cw->body) || take_branch(r, cw)) {
        conv_write_free(cw);
        return;
    }
    cw->cmd.u.post.branch = cw->branch[0] ? cw->branch : NULL;
    parley_outcome_t o;
    if (parley_message_parse(cw->body, parley_api_app(r)->cfg->session_max_attempts,
                             &cw->cmd.u.post.message, &o)) {
        parley_resource_refuse(r, &o);
        parley_outcome_clear(&o);
        conv_write_free(cw);
        return;
    }
    if (parley_resource_content_fits(r, cw->cmd.u.post.message.content,
                                     parley_api_app(r)->cfg->max_json_bytes, "content")) {
        conv_write_free(cw);
        return;
    }
    cw->cmd.u.post.conversation_id = cw->id;
    cw->cmd.u.post.user = cw->user;
    cw->cmd.u.post.admin = parley_req_is_admin(r);
    cw->cmd.u.post.message_id = cw->mid;
    cw->cmd.u.post.session_id = cw->sid;
    parley_api_write(r, &cw->cmd, render_conv_write, cw, conv_write_free);
}

/* POST .../messages/{mid}/edit or .../regenerate. */
static void post_branch_write(parley_req_t *r, const char *id, const char *mid, bool edit)
{
    conv_write_t *cw = new_write(r, CW_BRANCH, id);
    parley_outcome_t o;
    if (!cw)
        return;
    parley_turn_branch_req_t *q = &cw->cmd.u.branch;
    snprintf(cw->target, sizeof cw->target, "%s", mid);
    if (parley_resource_new_id(r, cw->mid) || parley_resource_new_id(r, cw->sid) ||
        parley_resource_new_id(r, cw->bid) || parley_resource_body(r, !edit, &cw->body))
        goto out_free;
    if (cw->body && !json_is_object(cw->body)) {
        parley_req_error(r, 400, "invalid_message",
                         edit ? "the body must be a JSON object: {\"content\": ...}"
                              : "the body must be a JSON object: {\"max_attempts\": 3}, or none");
        goto out_free;
    }
    if (take_branch(r, cw))
        goto out_free;
    q->max_attempts = parley_api_app(r)->cfg->session_max_attempts;
    if (edit) {
        if (!json_object_get(cw->body, "role"))
            json_object_set_new(cw->body, "role", json_string("user"));
        if (parley_message_parse(cw->body, q->max_attempts, &q->message, &o)) {
            parley_resource_refuse(r, &o);
            parley_outcome_clear(&o);
            goto out_free;
        }
        if (strcmp(q->message.role, "user") != 0) {
            parley_req_error(r, 400, "invalid_message",
                             "an edit is a user message: leave role out or give \"user\"");
            goto out_free;
        }
    } else if (cw->body) {
        const char *key;
        json_t *v;
        json_object_foreach(cw->body, key, v)
        {
            if (strcmp(key, "max_attempts") != 0 || !json_is_integer(v) ||
                json_integer_value(v) < 1 || json_integer_value(v) > PARLEY_SESSION_MAX_ATTEMPTS) {
                parley_req_error(r, 400, "invalid_message",
                                 "a regenerate body takes only branch and max_attempts (a whole "
                                 "number from 1 to 100)");
                goto out_free;
            }
            q->max_attempts = json_integer_value(v);
        }
    }
    q->op = edit ? PARLEY_TURN_EDIT : PARLEY_TURN_REGENERATE;
    q->conversation_id = cw->id;
    q->user = cw->user;
    q->admin = parley_req_is_admin(r);
    q->branch = cw->branch[0] ? cw->branch : NULL;
    q->message_id = cw->target;
    q->new_branch = cw->bid;
    q->new_message = cw->mid;
    q->session_id = cw->sid;
    parley_api_write(r, &cw->cmd, render_conv_write, cw, conv_write_free);
    return;
out_free:
    conv_write_free(cw);
}

/* PATCH .../branches/{bid} {"active": true}. */
static void patch_branch(parley_req_t *r, const char *id, const char *bid)
{
    conv_write_t *cw = new_write(r, CW_BRANCH, id);
    if (!cw)
        return;
    if (parley_resource_body(r, false, &cw->body)) {
        conv_write_free(cw);
        return;
    }
    if (!json_is_object(cw->body) || json_object_size(cw->body) != 1 ||
        !json_is_true(json_object_get(cw->body, "active"))) {
        parley_req_error(r, 400, "invalid_branch",
                         "a branch PATCH is {\"active\": true} (to leave a branch, activate "
                         "another)");
        conv_write_free(cw);
        return;
    }
    snprintf(cw->branch, sizeof cw->branch, "%s", bid);
    parley_turn_branch_req_t *q = &cw->cmd.u.branch;
    q->op = PARLEY_TURN_ACTIVATE;
    q->conversation_id = cw->id;
    q->user = cw->user;
    q->admin = parley_req_is_admin(r);
    q->branch = cw->branch;
    parley_api_write(r, &cw->cmd, render_conv_write, cw, conv_write_free);
}

/* ---- reads ---------------------------------------------------------------------- */

/* Read conversation id for the caller into *c. 0, or after answering
 * PARLEY_ENOTFOUND (404: missing or not the caller's) or the storage error
 * (500). */
static int get_visible(parley_req_t *r, parley_db_t *db, const char *id, parley_conv_t *c)
{
    int rc = db ? parley_db_conv_get(db, id, c) : PARLEY_EUNAVAIL;
    if (rc == 0 && parley_conversation_visible(c, parley_req_user(r), parley_req_is_admin(r)))
        return 0;
    if (rc == 0)
        parley_conv_clear(c);
    if (rc == 0 || rc == PARLEY_ENOTFOUND) {
        parley_req_error(r, 404, "not_found", "no such conversation");
        return PARLEY_ENOTFOUND;
    }
    parley_api_store_failed(r, rc, "the conversation");
    return rc;
}

static void get_one(parley_req_t *r, const char *id, bool head)
{
    parley_conv_t c;
    if (get_visible(r, parley_app_reader(parley_api_app(r)), id, &c))
        return;
    char etag[32];
    etag_of(c.version, etag, sizeof etag);
    parley_req_add_header(r, "ETag", etag);
    parley_req_add_header(r, "Cache-Control", "private, no-cache");
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && (strcmp(inm, etag) == 0 || strcmp(inm, "*") == 0)) {
        parley_conv_clear(&c);
        parley_req_respond_empty(r, 304);
        return;
    }
    json_t *rep = parley_conversation_json(&c);
    parley_conv_clear(&c);
    if (head) {
        json_decref(rep);
        parley_req_respond(r, 200, "application/json", "", 0);
        return;
    }
    parley_resource_send(r, 200, rep);
    json_decref(rep);
}

/* A conversation's fields, as ?fields= names them (bit i: conv_fields[i]). */
static const char *const conv_fields[] = {
    "id",         "title",      "metadata",      "owner",           "version",
    "created_at", "updated_at", "message_count", "last_message_at", NULL};
#define CONV_METADATA (1u << 2) /* the metadata field's bit */

/* A session's fields (bit i: sess_fields[i]). */
static const char *const sess_fields[] = {"id",
                                          "conversation_id",
                                          "message_id",
                                          "status",
                                          "attempt",
                                          "max_attempts",
                                          "lease_expires_at",
                                          "error",
                                          "request",
                                          "input",
                                          "result_message_id",
                                          "created_at",
                                          "updated_at",
                                          "stream",
                                          NULL};
#define SESS_BODIES ((1u << 7) | (1u << 8) | (1u << 9)) /* error, request, input */

/* A page being listed, and the fields kept. */
typedef struct light_page {
    parley_page_t page; /* the page */
    unsigned mask;      /* fields kept */
    bool all;           /* every field: nothing to drop */
} light_page_t;

static int on_conv(void *arg, const parley_conv_t *c)
{
    light_page_t *lp = arg;
    if (lp->all)
        return parley_page_add(&lp->page, parley_conversation_json(c), c->activity);
    parley_conv_t light = *c;
    if (!(lp->mask & CONV_METADATA))
        light.metadata = NULL; /* never parsed */
    json_t *rep = parley_conversation_json(&light);
    parley_resource_fields_apply(rep, conv_fields, lp->mask);
    return parley_page_add(&lp->page, rep, c->activity);
}

static void list(parley_req_t *r)
{
    int limit;
    uint64_t before;
    light_page_t lp;
    unsigned all = parley_resource_fields_all(conv_fields);
    if (parley_resource_page(r, 'a', &limit, &before) ||
        parley_resource_fields(r, conv_fields, all & ~CONV_METADATA, &lp.mask))
        return;
    lp.all = lp.mask == all;
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_page_init(&lp.page, limit);
    int rc =
        db ? parley_db_conv_list(db, parley_req_user(r), (int64_t)before, limit + 1, on_conv, &lp)
           : PARLEY_EUNAVAIL;
    if (rc) {
        parley_page_clear(&lp.page);
        parley_api_store_failed(r, rc, "the conversations");
        return;
    }
    parley_page_send(r, &lp.page, 'a');
}

/* The page of parley_api_message_page, along branch bi of set when set
 * is not NULL (messages with siblings carry them). */
static int message_page(parley_req_t *r, parley_db_t *db, const parley_stream_t *log,
                        parley_branch_set_t *set, int bi, parley_buf_t *body)
{
    const char *after = NULL, *cursor = NULL;
    uint64_t from = 0, c = 0;
    int limit;
    int na = parley_req_query(r, "after", &after);
    int nc = parley_req_query(r, "cursor", &cursor);
    if (na < 0 || na > 1 || (na == 1 && parley_param_decimal(after, INT64_MAX, &from))) {
        parley_req_error(r, 400, "invalid_after", "after must be a message seq (0 for the start)");
        return PARLEY_EINVAL;
    }
    if (nc < 0 || nc > 1 ||
        (nc == 1 && (cursor[0] != 's' || parley_param_decimal(cursor + 1, INT64_MAX, &c)))) {
        parley_req_error(r, 400, "invalid_cursor",
                         "cursor must be a next_cursor value from a previous page of this list");
        return PARLEY_EINVAL;
    }
    if (na == 1 && nc == 1) {
        parley_req_error(r, 400, "invalid_cursor", "give after or cursor, not both");
        return PARLEY_EINVAL;
    }
    if (nc == 1)
        from = c;
    const char *lv = NULL;
    uint64_t n;
    int nl = parley_req_query(r, "limit", &lv);
    limit = PARLEY_RESOURCE_PAGE_DEFAULT;
    if (nl != 0) {
        if (nl != 1 || parley_param_decimal(lv, UINT64_MAX / 2, &n) || n == 0) {
            parley_req_error(r, 400, "invalid_limit",
                             "limit must be a whole number from 1; values over 100 are clamped");
            return PARLEY_EINVAL;
        }
        limit = n > PARLEY_RESOURCE_PAGE_MAX ? PARLEY_RESOURCE_PAGE_MAX : (int)n;
    }
    int count;
    uint64_t last;
    bool more;
    int rc = parley_buf_puts(body, "{\"items\":[");
    if (rc == 0 && from < log->tail && set)
        rc = parley_branch_read_page(db, set, bi, log, from, limit, MESSAGES_PAGE_BYTES, body,
                                     &count, &last, &more);
    else if (rc == 0 && from < log->tail)
        rc = parley_conversation_read_page(db, log, from, limit, MESSAGES_PAGE_BYTES, body, &count,
                                           &last, &more);
    else
        more = false, last = from;
    if (rc == 0 && more)
        rc = parley_buf_printf(body, "],\"next_cursor\":\"s%llu\"}", (unsigned long long)last);
    else if (rc == 0)
        rc = parley_buf_puts(body, "],\"next_cursor\":null}");
    if (rc)
        parley_api_store_failed(r, rc, "the messages");
    return rc;
}

int parley_api_message_page(parley_req_t *r, parley_db_t *db, const parley_stream_t *log,
                            parley_buf_t *body)
{
    return message_page(r, db, log, NULL, 0, body);
}

/* The ?branch= of a read: 0 with *name (NULL when absent), or
 * PARLEY_EINVAL after answering 400. */
static int branch_query(parley_req_t *r, const char **name)
{
    *name = NULL;
    int n = parley_req_query(r, "branch", name);
    if (n == 0)
        return 0;
    if (n != 1 || !branch_name_ok(r, *name)) {
        if (n != 1)
            branch_name_ok(r, NULL);
        return PARLEY_EINVAL;
    }
    return 0;
}

static void get_messages(parley_req_t *r, const char *id)
{
    const char *bname = NULL;
    if (branch_query(r, &bname))
        return;
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_conv_t c;
    parley_stream_t log;
    parley_buf_t body;
    char path[PARLEY_PATH_MAX + 1];
    int brc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
    if (brc) {
        parley_api_store_failed(r, brc, "the messages");
        return;
    }
    if (get_visible(r, db, id, &c)) {
        parley_db_commit(db);
        return;
    }
    parley_conv_clear(&c);
    parley_branch_set_t set;
    int bi = 0;
    int grc = parley_branch_load(db, id, &set);
    if (grc == 0 && (bi = bname ? parley_branch_find(&set, bname) : set.active) < 0) {
        parley_branch_set_clear(&set);
        parley_db_commit(db);
        parley_req_error(r, 404, "not_found", "no such branch in this conversation");
        return;
    }
    if (grc == 0 && bi == 0) {
        parley_conversation_stream_path(id, path, sizeof path);
        grc = parley_db_stream_get(db, path, &log);
    } else if (grc == 0) {
        grc = parley_branch_log(db, &set, bi, &log);
    }
    if (grc) {
        parley_branch_set_clear(&set);
        parley_db_commit(db);
        parley_api_store_failed(r, grc, "the messages");
        return;
    }
    parley_buf_init(&body, MESSAGES_BUF_MAX);
    int rc = message_page(r, db, &log, set.has_ledger ? &set : NULL, bi, &body);
    parley_branch_set_clear(&set);
    parley_db_commit(db);
    if (rc) {
        parley_buf_free(&body);
        return;
    }
    parley_req_add_header(r, "Cache-Control", "private, no-cache");
    parley_req_respond_buf(r, 200, "application/json", &body);
}

static void get_stream(parley_req_t *r, const char *id, bool head)
{
    parley_conv_t c;
    char path[PARLEY_PATH_MAX + 1];
    const char *bname = NULL;
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    if (branch_query(r, &bname) || get_visible(r, db, id, &c))
        return;
    parley_conv_clear(&c);
    parley_conversation_stream_path(id, path, sizeof path);
    if (bname && strcmp(bname, PARLEY_BRANCH_MAIN) != 0) { /* ?branch=: that branch's log */
        parley_branch_set_t set;
        int rc = parley_branch_load(db, id, &set);
        int bi = rc ? 0 : parley_branch_find(&set, bname);
        if (bi >= 0)
            parley_branch_stream_path(&set, bi, path, sizeof path);
        parley_branch_set_clear(&set);
        if (rc) {
            parley_api_store_failed(r, rc, "the branches");
            return;
        }
        if (bi < 0) {
            parley_req_error(r, 404, "not_found", "no such branch in this conversation");
            return;
        }
    }
    parley_api_stream_read(r, path, head);
}

static int on_sess(void *arg, const parley_sess_t *s)
{
    light_page_t *lp = arg;
    if (lp->all)
        return parley_page_add(&lp->page, parley_session_json(s), s->ord);
    parley_sess_t light = *s;
    if (!(lp->mask & (1u << 7)))
        light.error = NULL; /* never parsed */
    if (!(lp->mask & (1u << 8)))
        light.request = NULL;
    if (!(lp->mask & (1u << 9)))
        light.input = NULL;
    json_t *rep = parley_session_json(&light);
    parley_resource_fields_apply(rep, sess_fields, lp->mask);
    return parley_page_add(&lp->page, rep, s->ord);
}

/* The newest session of a conversation, as sessions/latest reads it. */
typedef struct latest {
    char etag[PARLEY_SESSION_ETAG_LEN + 1]; /* its ETag ("" when none was found) */
    parley_sess_t row;                      /* a copy of its row (strings owned) */
    bool found;                             /* a session was seen */
    bool oom;                               /* a copy of its texts failed */
} latest_t;

static int on_latest(void *arg, const parley_sess_t *s)
{
    latest_t *l = arg;
    parley_session_etag(s, l->etag);
    l->row = *s;
    l->row.error = s->error ? strdup(s->error) : NULL;
    l->row.request = s->request ? strdup(s->request) : NULL;
    l->row.input = s->input ? strdup(s->input) : NULL;
    l->oom = (s->error && !l->row.error) || (s->request && !l->row.request) ||
             (s->input && !l->row.input);
    l->found = true;
    return 1; /* one is enough */
}

/* GET sessions/latest: ETag from the row; 304 before any JSON is built. */
static void get_latest(parley_req_t *r, parley_db_t *db, const char *id)
{
    latest_t l = {.found = false};
    int rc = parley_db_sess_list(db, id, NULL, 0, 1, on_latest, &l);
    if (rc == 0 && l.oom)
        rc = PARLEY_ENOMEM;
    if (rc) {
        if (l.found)
            parley_sess_clear(&l.row);
        parley_api_store_failed(r, rc, "the sessions");
        return;
    }
    if (!l.found) {
        parley_req_error(r, 404, "not_found", "this conversation has no session yet");
        return;
    }
    parley_req_add_header(r, "ETag", l.etag);
    parley_req_add_header(r, "Cache-Control", "private, no-cache");
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && parley_param_etag_match(inm, l.etag)) {
        parley_sess_clear(&l.row);
        parley_req_respond_empty(r, 304);
        return;
    }
    json_t *rep = parley_session_json(&l.row);
    parley_sess_clear(&l.row);
    if (!rep) {
        parley_api_store_failed(r, PARLEY_ENOMEM, "the session");
        return;
    }
    parley_resource_send(r, 200, rep);
    json_decref(rep);
}

static void get_sessions(parley_req_t *r, const char *id, bool latest)
{
    int limit = 1;
    uint64_t before = 0;
    const char *status = NULL;
    parley_session_state_t st;
    light_page_t lp;
    unsigned all = parley_resource_fields_all(sess_fields);
    if (!latest) {
        if (parley_resource_page(r, 'o', &limit, &before) ||
            parley_resource_fields(r, sess_fields, all & ~SESS_BODIES, &lp.mask))
            return;
        lp.all = lp.mask == all;
        int ns = parley_req_query(r, "status", &status);
        if (ns < 0 || ns > 1 || (ns == 1 && parley_session_state_parse(status, &st))) {
            parley_req_error(r, 400, "invalid_status",
                             "status must be one of pending, processing, awaiting_input, "
                             "completed, failed, cancelled");
            return;
        }
    }
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_conv_t c;
    if (get_visible(r, db, id, &c))
        return;
    parley_conv_clear(&c);
    if (latest) {
        get_latest(r, db, id);
        return;
    }
    parley_page_init(&lp.page, limit);
    int rc = parley_db_sess_list(db, id, status, (int64_t)before, limit + 1, on_sess, &lp);
    if (rc) {
        parley_page_clear(&lp.page);
        parley_api_store_failed(r, rc, "the sessions");
        return;
    }
    parley_page_send(r, &lp.page, 'o');
}

/* GET .../branches (bid NULL: the list) or .../branches/{bid}. */
static void get_branches(parley_req_t *r, const char *id, const char *bid)
{
    int limit = PARLEY_RESOURCE_PAGE_MAX;
    uint64_t from = 0, n;
    const char *lv = NULL, *cursor = NULL;
    if (!bid) {
        int nl = parley_req_query(r, "limit", &lv), nc = parley_req_query(r, "cursor", &cursor);
        if (nl != 0 && (nl != 1 || parley_param_decimal(lv, UINT64_MAX / 2, &n) || n == 0)) {
            parley_req_error(r, 400, "invalid_limit",
                             "limit must be a whole number from 1; values over 100 are clamped");
            return;
        }
        if (nl == 1)
            limit = n > PARLEY_RESOURCE_PAGE_MAX ? PARLEY_RESOURCE_PAGE_MAX : (int)n;
        if (nc != 0 && (nc != 1 || cursor[0] != 'b' ||
                        parley_param_decimal(cursor + 1, PARLEY_BRANCH_MAX + 1, &from))) {
            parley_req_error(
                r, 400, "invalid_cursor",
                "cursor must be a next_cursor value from a previous page of this list");
            return;
        }
    }
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_conv_t c;
    parley_branch_set_t set;
    int brc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
    if (brc) {
        parley_api_store_failed(r, brc, "the branches");
        return;
    }
    if (get_visible(r, db, id, &c)) {
        parley_db_commit(db);
        return;
    }
    parley_conv_clear(&c);
    int rc = parley_branch_load(db, id, &set);
    json_t *rep = NULL;
    if (rc == 0 && bid) {
        int bi = parley_branch_find(&set, bid);
        if (bi < 0) {
            parley_branch_set_clear(&set);
            parley_db_commit(db);
            parley_req_error(r, 404, "not_found", "no such branch in this conversation");
            return;
        }
        rep = parley_branch_json(db, &set, bi);
    } else if (rc == 0) {
        json_t *items = json_array();
        int i = (int)from;
        for (; items && i < set.n && (int)json_array_size(items) < limit; i++)
            json_array_append_new(items, parley_branch_json(db, &set, i));
        char next[24];
        snprintf(next, sizeof next, "b%d", i);
        rep =
            json_pack("{s:o, s:o, s:s}", "items", items, "next_cursor",
                      i < set.n ? json_string(next) : json_null(), "active", set.v[set.active].id);
    }
    parley_branch_set_clear(&set);
    parley_db_commit(db);
    if (rc || !rep) {
        json_decref(rep);
        parley_api_store_failed(r, rc ? rc : PARLEY_ENOMEM, "the branches");
        return;
    }
    parley_req_add_header(r, "Cache-Control", "private, no-cache");
    parley_resource_send(r, 200, rep);
    json_decref(rep);
}

/* ---- routing -------------------------------------------------------------------- */

void parley_api_conversations(parley_req_t *r, const char *rest)
{
    const char *m = parley_req_method(r);
    bool get = strcmp(m, "GET") == 0, head = strcmp(m, "HEAD") == 0;
    bool post = strcmp(m, "POST") == 0;
    if (rest[0] == '\0') {
        if (get)
            list(r);
        else if (post)
            start_conv_write(r, PARLEY_CONV_CREATE, NULL);
        else
            parley_resource_method_not_allowed(r, "GET, POST", NULL);
        return;
    }
    char id[PARLEY_ROW_ID_MAX + 1];
    const char *sub = rest[0] == '/' ? parley_resource_id_segment(rest + 1, id) : NULL;
    if (!sub) {
        parley_req_error(r, 404, "not_found", "no such conversation");
        return;
    }
    if (sub[0] == '\0') {
        if (get || head)
            get_one(r, id, head);
        else if (strcmp(m, "PATCH") == 0)
            start_conv_write(r, PARLEY_CONV_PATCH, id);
        else if (strcmp(m, "DELETE") == 0)
            start_conv_write(r, PARLEY_CONV_DELETE, id);
        else
            parley_resource_method_not_allowed(r, "GET, HEAD, PATCH, DELETE", NULL);
    } else if (strcmp(sub, "/messages") == 0) {
        if (get)
            get_messages(r, id);
        else if (post)
            post_message(r, id);
        else
            parley_resource_method_not_allowed(r, "GET, POST", NULL);
    } else if (strncmp(sub, "/messages/", 10) == 0 || strncmp(sub, "/branches/", 10) == 0) {
        /* .../messages/{mid}/edit|regenerate, .../branches/{bid} */
        char second[PARLEY_ROW_ID_MAX + 1];
        const char *tail = parley_resource_id_segment(sub + 10, second);
        bool msgs = sub[1] == 'm';
        if (!tail) {
            parley_req_error(r, 404, "not_found", msgs ? "no such message" : "no such branch");
        } else if (msgs && (strcmp(tail, "/edit") == 0 || strcmp(tail, "/regenerate") == 0)) {
            if (post)
                post_branch_write(r, id, second, strcmp(tail, "/edit") == 0);
            else
                parley_resource_method_not_allowed(r, "POST", NULL);
        } else if (!msgs && tail[0] == '\0') {
            if (get)
                get_branches(r, id, second);
            else if (strcmp(m, "PATCH") == 0)
                patch_branch(r, id, second);
            else
                parley_resource_method_not_allowed(r, "GET, PATCH", NULL);
        } else {
            parley_req_error(r, 404, "not_found",
                             "no such route: a message has /edit and /regenerate, a branch "
                             "none below it");
        }
    } else if (strcmp(sub, "/branches") == 0) {
        if (get)
            get_branches(r, id, NULL);
        else
            parley_resource_method_not_allowed(
                r, "GET", "branches are made by .../messages/{mid}/edit and .../regenerate");
    } else if (strcmp(sub, "/stream") == 0) {
        if (get || head)
            get_stream(r, id, head);
        else
            parley_resource_method_not_allowed(
                r, "GET, HEAD",
                "the conversation stream is read-only: append with POST .../messages");
    } else if (strcmp(sub, "/sessions") == 0 || strcmp(sub, "/sessions/latest") == 0) {
        if (get)
            get_sessions(r, id, strcmp(sub, "/sessions/latest") == 0);
        else
            parley_resource_method_not_allowed(r, "GET", NULL);
    } else {
        parley_req_error(r, 404, "not_found",
                         "no such route: a conversation has /messages, /branches, /stream, "
                         "/sessions and /sessions/latest");
    }
}
