/*
 * conversation.c — conversations and their message logs (see
 * conversation.h).
 *
 *   op        live and visible                       missing, deleted, other user's
 *   create    —                                      201, version 1, empty log
 *   patch     If-Match stale → 412 (+ current)       404
 *             merge patch on {title, metadata}: 200, version + 1
 *   delete    If-Match stale → 412 (+ current)       404
 *             sessions and their streams removed, log deleted (kept only
 *             as long as snapshots' forks read it), tombstone: 204
 *   message   201, seq = message_count + 1           404
 *
 * Bodies are checked here, on the writer, so that the rules have one home:
 * a conversation takes only title (a string or null) and metadata (an
 * object); a message only role, content, metadata, process, max_attempts.
 * An unknown field is a 400 that names it, so a typo never silently drops
 * data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "core/conversation.h"
#include "core/feed.h"
#include "codec/mergepatch.h"
#include "core/session.h"
#include "core/stream.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/log.h"

#define ACTIVITY_COUNTER "conversation_activity"
#define DELETE_BATCH     64 /* sessions removed per list query on delete */

void parley_conversation_stream_path(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, PARLEY_CONV_PATH_PREFIX "%s", id);
}

bool parley_conversation_visible(const parley_conv_t *c, const char *user, bool admin)
{
    return !c->deleted && (admin || strcmp(c->owner, user ? user : "") == 0);
}

bool parley_message_role_is_valid(const char *role)
{
    static const char *const roles[] = {"user", "assistant", "system", "tool"};
    for (size_t i = 0; role && i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i]) == 0)
            return true;
    return false;
}

json_t *parley_conversation_json(const parley_conv_t *c)
{
    json_error_t jerr;
    json_t *meta = json_loads(c->metadata ? c->metadata : "{}", 0, &jerr);
    if (!meta)
        return NULL;
    return json_pack("{s:s, s:o, s:o, s:s, s:I, s:o, s:o, s:I, s:o}", "id", c->id, "title",
                     c->title ? json_string(c->title) : json_null(), "metadata", meta, "owner",
                     c->owner, "version", (json_int_t)c->version, "created_at",
                     parley_clock_json(c->created_ms), "updated_at", parley_clock_json(c->updated_ms),
                     "message_count", (json_int_t)c->message_count, "last_message_at",
                     parley_clock_json(c->last_message_ms));
}

/* Emit an event to the owner's feed; its feeds join out's wake list. */
static int emit(parley_db_t *db, const char *owner, const char *type, json_t *fields, json_t *data,
                parley_outcome_t *out)
{
    int64_t ids[2];
    int n = 0;
    int rc = fields ? parley_feed_emit(db, owner, type, fields, data, ids, &n) : PARLEY_ENOMEM;
    for (int i = 0; i < n; i++)
        parley_outcome_notify(out, ids[i]);
    return rc;
}

static int emit_conv(parley_db_t *db, const parley_conv_t *c, const char *type,
                     parley_outcome_t *out)
{
    json_t *fields = json_pack("{s:s}", "conversation_id", c->id);
    json_t *data = c->deleted ? json_pack("{s:I}", "version", (json_int_t)c->version)
                              : parley_conversation_json(c);
    int rc = data ? emit(db, c->owner, type, fields, data, out) : PARLEY_ENOMEM;
    json_decref(fields);
    json_decref(data);
    return rc;
}

/* Set c's title and metadata from a checked object {title?, metadata?}.
 * 0, PARLEY_EINVAL (with *why) or PARLEY_ENOMEM. */
static int set_fields(parley_conv_t *c, json_t *obj, const char **why)
{
    json_t *title = json_object_get(obj, "title");
    json_t *meta = json_object_get(obj, "metadata");
    if (title && !json_is_string(title) && !json_is_null(title)) {
        *why = "title must be a string or null";
        return PARLEY_EINVAL;
    }
    if (meta && !json_is_object(meta) && !json_is_null(meta)) {
        *why = "metadata must be a JSON object";
        return PARLEY_EINVAL;
    }
    char *t = NULL, *m = NULL;
    size_t mlen;
    if (title && json_is_string(title) && !(t = strdup(json_string_value(title))))
        return PARLEY_ENOMEM;
    json_t *empty = json_object();
    int rc = parley_canonjson_dump(meta && json_is_object(meta) ? meta : empty, &m, &mlen);
    json_decref(empty);
    if (rc) {
        free(t);
        return rc;
    }
    parley_conv_clear(c);
    c->title = t;
    c->metadata = m;
    return 0;
}

static void refuse_body(parley_outcome_t *out, const char *why)
{
    parley_outcome_refuse(out, 400, "invalid_conversation", why, NULL);
}

static int create(parley_db_t *db, const parley_conv_req_t *req, parley_outcome_t *out)
{
    static const char *const allowed[] = {"title", "metadata", NULL};
    const char *why = NULL, *bad = NULL;
    parley_conv_t c;
    int64_t now = parley_clock_now_ms();
    memset(&c, 0, sizeof c);
    if (req->body && !json_is_object(req->body)) {
        refuse_body(out, "the body must be a JSON object: {\"title\": ..., \"metadata\": {...}}");
        return 0;
    }
    if (req->body && (bad = parley_canonjson_stranger(req->body, allowed))) {
        parley_outcome_refuse(out, 400, "invalid_conversation",
                              "unknown field (see details.field): a conversation takes only "
                              "title and metadata",
                              json_pack("{s:s}", "field", bad));
        return 0;
    }
    json_t *empty = json_object();
    int rc = set_fields(&c, req->body ? req->body : empty, &why);
    json_decref(empty);
    if (rc == PARLEY_EINVAL) {
        refuse_body(out, why);
        return 0;
    }
    if (rc)
        return rc;
    snprintf(c.id, sizeof c.id, "%s", req->id);
    snprintf(c.owner, sizeof c.owner, "%s", req->user);
    c.version = 1;
    c.created_ms = c.updated_ms = now;
    c.last_message_ms = -1;
    char path[PARLEY_PATH_MAX + 1];
    int64_t sid;
    parley_conversation_stream_path(c.id, path, sizeof path);
    rc = parley_db_counter_next(db, ACTIVITY_COUNTER, &c.activity);
    if (rc == 0)
        rc = parley_db_conv_put(db, &c);
    if (rc == 0)
        rc = parley_stream_ensure_internal(db, path, c.owner, &sid);
    if (rc == 0)
        rc = emit_conv(db, &c, "conversation.created", out);
    if (rc == 0) {
        json_t *rep = parley_conversation_json(&c);
        rc = rep ? 0 : PARLEY_ENOMEM;
        parley_outcome_ok(out, 201, rep);
    }
    parley_conv_clear(&c);
    return rc;
}

static int patch(parley_db_t *db, parley_conv_t *c, const parley_conv_req_t *req,
                 parley_outcome_t *out)
{
    static const char *const allowed[] = {"title", "metadata", NULL};
    const char *why = NULL, *bad = NULL;
    if (!json_is_object(req->body)) {
        refuse_body(out, "a PATCH body is a JSON merge patch object, e.g. {\"title\": \"New\"}");
        return 0;
    }
    if ((bad = parley_canonjson_stranger(req->body, allowed))) {
        parley_outcome_refuse(out, 400, "invalid_conversation",
                              "unknown field (see details.field): a conversation takes only "
                              "title and metadata",
                              json_pack("{s:s}", "field", bad));
        return 0;
    }
    json_t *cur = parley_conversation_json(c);
    if (!cur)
        return PARLEY_ENOMEM;
    json_t *target = json_pack("{s:O, s:O}", "title", json_object_get(cur, "title"), "metadata",
                               json_object_get(cur, "metadata"));
    json_decref(cur);
    json_t *merged = target ? parley_mergepatch_apply(target, req->body) : NULL;
    json_decref(target);
    if (!merged)
        return PARLEY_ENOMEM;
    int rc = set_fields(c, merged, &why);
    json_decref(merged);
    if (rc == PARLEY_EINVAL) {
        refuse_body(out, why);
        return 0;
    }
    if (rc)
        return rc;
    c->version++;
    c->updated_ms = parley_clock_now_ms();
    rc = parley_db_conv_put(db, c);
    if (rc == 0)
        rc = emit_conv(db, c, "conversation.updated", out);
    if (rc == 0) {
        json_t *rep = parley_conversation_json(c);
        rc = rep ? 0 : PARLEY_ENOMEM;
        parley_outcome_ok(out, 200, rep);
    }
    return rc;
}

typedef struct id_batch {
    char ids[DELETE_BATCH][PARLEY_ROW_ID_MAX + 1]; /* collected session ids */
    int n;                                         /* entries in ids */
} id_batch_t;

static int collect_session(void *arg, const parley_sess_t *s)
{
    id_batch_t *b = arg;
    snprintf(b->ids[b->n++], PARLEY_ROW_ID_MAX + 1, "%s", s->id);
    return b->n == DELETE_BATCH;
}

static int delete_conv(parley_db_t *db, parley_conv_t *c, parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1];
    int64_t sid;
    int rc;
    id_batch_t *b = malloc(sizeof *b);
    if (!b)
        return PARLEY_ENOMEM;
    do {
        b->n = 0;
        rc = parley_db_sess_list(db, c->id, NULL, 0, DELETE_BATCH, collect_session, b);
        for (int i = 0; rc == 0 && i < b->n; i++) {
            parley_session_stream_path(b->ids[i], path, sizeof path);
            rc = parley_stream_delete_internal(db, path, &sid);
            if (rc == 0)
                parley_outcome_notify(out, sid);
            else if (rc == PARLEY_ENOTFOUND)
                rc = 0;
            if (rc == 0)
                rc = parley_db_sess_remove(db, b->ids[i]);
        }
    } while (rc == 0 && b->n == DELETE_BATCH);
    free(b);
    if (rc)
        return rc;
    parley_conversation_stream_path(c->id, path, sizeof path);
    rc = parley_stream_delete_internal(db, path, &sid);
    if (rc == 0)
        parley_outcome_notify(out, sid);
    else if (rc != PARLEY_ENOTFOUND)
        return rc;
    /* A tombstone without the user's words: title and metadata go too. */
    parley_conv_clear(c);
    c->deleted = true;
    c->version++;
    c->updated_ms = parley_clock_now_ms();
    rc = parley_db_conv_put(db, c);
    if (rc == 0)
        rc = emit_conv(db, c, "conversation.deleted", out);
    if (rc == 0)
        parley_outcome_ok(out, 204, NULL);
    return rc;
}

int parley_conversation_apply(parley_db_t *db, const parley_conv_req_t *req, parley_outcome_t *out)
{
    parley_outcome_init(out);
    if (req->op == PARLEY_CONV_CREATE)
        return create(db, req, out);
    parley_conv_t c;
    int rc = parley_db_conv_get(db, req->id, &c);
    if (rc == PARLEY_ENOTFOUND ||
        (rc == 0 && !parley_conversation_visible(&c, req->user, req->admin))) {
        if (rc == 0)
            parley_conv_clear(&c);
        parley_outcome_refuse(out, 404, "not_found", "no such conversation", NULL);
        return 0;
    }
    if (rc)
        return rc;
    if (req->has_if_match && req->if_match != c.version) {
        parley_outcome_refuse(out, 412, "precondition_failed",
                              "the conversation has changed since that version; merge with the "
                              "current conversation (in error.details.current) and retry with "
                              "its version in If-Match",
                              parley_conversation_json(&c));
        parley_conv_clear(&c);
        return 0;
    }
    rc = req->op == PARLEY_CONV_PATCH ? patch(db, &c, req, out) : delete_conv(db, &c, out);
    parley_conv_clear(&c);
    return rc;
}

/* ---- messages ------------------------------------------------------------ */

int parley_conversation_add_message(parley_db_t *db, parley_conv_t *c, const char *id,
                                    const char *role, json_t *content, json_t *metadata,
                                    const char *session_id, json_t **msg, parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1], at[40];
    parley_stream_t log;
    int64_t now = parley_clock_now_ms();
    int64_t seq = c->message_count + 1;
    *msg = NULL;
    parley_conversation_stream_path(c->id, path, sizeof path);
    int rc = parley_db_stream_get(db, path, &log);
    if (rc == 0 && (log.deleted || log.closed || log.tail != (uint64_t)c->message_count)) {
        parley_log_error("conversation %s: log at %llu, message_count %lld", c->id,
                         (unsigned long long)log.tail, (long long)c->message_count);
        return PARLEY_EINVAL; /* invariant 1 broken: refuse rather than write a gap */
    }
    if (rc && rc != PARLEY_ENOTFOUND)
        return rc;
    bool have_log = rc == 0; /* a new conversation's log is made by its first message */
    parley_clock_format(now, at, sizeof at);
    json_t *m =
        json_pack("{s:s, s:s, s:I, s:s, s:O, s:o, s:o, s:s}", "id", id, "conversation_id", c->id,
                  "seq", (json_int_t)seq, "role", role, "content", content, "metadata",
                  metadata ? json_deep_copy(metadata) : json_object(), "session_id",
                  session_id ? json_string(session_id) : json_null(), "created_at", at);
    if (!m)
        return PARLEY_ENOMEM;
    char *text;
    size_t len;
    rc = parley_canonjson_dump(m, &text, &len);
    if (rc) {
        json_decref(m);
        return rc;
    }
    int64_t sid = 0;
    if (have_log) { /* loaded already: append to it directly */
        rc = parley_stream_append_row(db, &log, text, len);
        sid = log.id;
    } else {
        rc = parley_stream_append_internal(db, path, c->owner, text, len, &sid);
    }
    free(text);
    if (rc == 0) {
        parley_outcome_notify(out, sid);
        c->message_count = seq;
        c->last_message_ms = now;
        c->version++;
        c->updated_ms = now;
        rc = parley_db_counter_next(db, ACTIVITY_COUNTER, &c->activity);
    }
    if (rc == 0)
        rc = parley_db_conv_put(db, c);
    if (rc == 0) {
        json_t *fields = json_pack("{s:s, s:s}", "conversation_id", c->id, "message_id", id);
        json_t *data = json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)seq, "role", role,
                                 "session_id", session_id ? json_string(session_id) : json_null());
        rc = data ? emit(db, c->owner, "message.created", fields, data, out) : PARLEY_ENOMEM;
        json_decref(fields);
        json_decref(data);
    }
    if (rc) {
        json_decref(m);
        return rc;
    }
    *msg = m;
    return 0;
}

static void refuse_message(parley_outcome_t *out, const char *why)
{
    parley_outcome_refuse(out, 400, "invalid_message", why, NULL);
}

int parley_conversation_append(parley_db_t *db, const parley_message_req_t *req,
                               parley_outcome_t *out)
{
    static const char *const allowed[] = {"role",    "content",      "metadata",
                                          "process", "max_attempts", NULL};
    const char *bad = NULL;
    parley_outcome_init(out);
    json_t *b = req->body;
    if (!json_is_object(b)) {
        refuse_message(out,
                       "the body must be a JSON object: {\"role\": \"user\", \"content\": ...}");
        return 0;
    }
    if ((bad = parley_canonjson_stranger(b, allowed))) {
        parley_outcome_refuse(out, 400, "invalid_message",
                              "unknown field (see details.field): a message takes role, content, "
                              "metadata, process and max_attempts",
                              json_pack("{s:s}", "field", bad));
        return 0;
    }
    json_t *role = json_object_get(b, "role");
    json_t *content = json_object_get(b, "content");
    json_t *meta = json_object_get(b, "metadata");
    json_t *process = json_object_get(b, "process");
    json_t *attempts = json_object_get(b, "max_attempts");
    if (!json_is_string(role) || !parley_message_role_is_valid(json_string_value(role))) {
        refuse_message(out, "role must be one of \"user\", \"assistant\", \"system\", \"tool\"");
        return 0;
    }
    if (!content) {
        refuse_message(out, "content is required (any JSON value: a string, or a list of parts)");
        return 0;
    }
    if (meta && !json_is_object(meta) && !json_is_null(meta)) {
        refuse_message(out, "metadata must be a JSON object");
        return 0;
    }
    if (process && !json_is_boolean(process)) {
        refuse_message(out, "process must be true or false");
        return 0;
    }
    bool want_session = process && json_is_true(process);
    int64_t max_attempts = req->max_attempts;
    if (attempts) {
        if (!want_session || !json_is_integer(attempts) || json_integer_value(attempts) < 1 ||
            json_integer_value(attempts) > PARLEY_SESSION_MAX_ATTEMPTS) {
            refuse_message(out, "max_attempts is a whole number from 1 to 100, and only goes "
                                "with \"process\": true");
            return 0;
        }
        max_attempts = json_integer_value(attempts);
    }

    parley_conv_t c;
    int rc = parley_db_conv_get(db, req->conversation_id, &c);
    if (rc == PARLEY_ENOTFOUND ||
        (rc == 0 && !parley_conversation_visible(&c, req->user, req->admin))) {
        if (rc == 0)
            parley_conv_clear(&c);
        parley_outcome_refuse(out, 404, "not_found", "no such conversation", NULL);
        return 0;
    }
    if (rc)
        return rc;
    json_t *msg = NULL, *sess = NULL;
    rc = parley_conversation_add_message(db, &c, req->message_id, json_string_value(role), content,
                                         json_is_object(meta) ? meta : NULL,
                                         want_session ? req->session_id : NULL, &msg, out);
    if (rc == 0 && want_session)
        rc = parley_session_create(db, &c, req->session_id, req->message_id, max_attempts, &sess,
                                   out);
    parley_conv_clear(&c);
    if (rc) {
        json_decref(msg);
        return rc;
    }
    if (sess)
        json_object_set_new(msg, "session", sess);
    parley_outcome_ok(out, 201, msg);
    return 0;
}

/* ---- reading a log --------------------------------------------------------- */

int parley_conversation_read_page(parley_db_t *db, const parley_stream_t *log, uint64_t after,
                                  int limit, size_t max_bytes, parley_buf_t *out, int *count,
                                  uint64_t *last_seq, bool *more)
{
    uint64_t pos = after;
    *count = 0;
    *last_seq = after;
    *more = false;
    while (pos < log->tail) {
        if (*count >= limit || (*count > 0 && out->len >= max_bytes)) {
            *more = true;
            break;
        }
        if (*count > 0) {
            int rc = parley_buf_putc(out, ',');
            if (rc)
                return rc;
        }
        parley_read_t rd;
        /* A budget of one byte returns exactly one message. */
        int rc = parley_stream_read(db, log, pos, 1, out, &rd);
        if (rc)
            return rc;
        if (rd.count == 0 || rd.next <= pos)
            return PARLEY_ESTORE; /* the log has a hole: invariant 1 broken */
        pos = rd.next;
        (*count)++;
        *last_seq = pos;
    }
    return 0;
}
