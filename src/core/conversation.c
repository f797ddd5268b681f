/*
 * conversation.c — conversations and their message logs (see
 * conversation.h).
 *
 *   op        live and visible                       missing, deleted, other user's
 *   create    —                                      201, version 1, empty log
 *   patch     If-Match stale → 412 (+ current)       404
 *             merge patch on {title, metadata}: 200, version + 1
 *   delete    (core/turn.c: sessions first, then parley_conversation_tombstone)
 *             log deleted (kept only as long as snapshots' forks read
 *             it), tombstone: 204
 *   message   parley_conversation_add_message: seq = message_count + 1
 *
 * Bodies are checked by parley_conversation_parse() on the connection's
 * thread, before the write is submitted: a conversation takes only title
 * (a string or null) and metadata (an object), and an unknown field is a
 * 400 that names it, so a typo never silently drops data. The rules here
 * take checked bodies; set_fields() still refuses a wrong type, so a body
 * that skipped the parse cannot store a bad row.
 *
 * This file knows nothing of sessions: what spans a message and a turn
 * (posting with "process": true, completing a turn, the delete cascade)
 * is core/turn.c's. Threads: see conversation.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "core/blob.h"
#include "core/conversation.h"
#include "core/feed.h"
#include "core/search.h"
#include "codec/mergepatch.h"
#include "core/stream.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/log.h"

void parley_conversation_stream_path(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, PARLEY_CONV_PATH_PREFIX "%s", id);
}

bool parley_conversation_visible(const parley_conv_t *c, const char *user, bool admin)
{
    return !c->deleted && (admin || strcmp(c->owner, user ? user : "") == 0);
}

json_t *parley_conversation_json(const parley_conv_t *c)
{
    json_error_t jerr;
    json_t *meta = json_loads(c->metadata ? c->metadata : "{}", 0, &jerr);
    if (!meta)
        return NULL;
    return json_pack(
        "{s:s, s:o, s:o, s:s, s:I, s:o, s:o, s:I, s:o}", "id", c->id, "title",
        c->title ? json_string(c->title) : json_null(), "metadata", meta, "owner", c->owner,
        "version", (json_int_t)c->version, "created_at", parley_clock_json(c->created_ms),
        "updated_at", parley_clock_json(c->updated_ms), "message_count",
        (json_int_t)c->message_count, "last_message_at", parley_clock_json(c->last_message_ms));
}

/* Emit an event to the owner's feed; its feeds join out's wake list. */
static int emit(parley_db_t *db, const char *owner, const char *type, json_t *fields, json_t *data,
                parley_outcome_t *out)
{
    return fields ? parley_feed_emit(db, owner, type, fields, data, &out->wake) : PARLEY_ENOMEM;
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

/* The types of title and metadata in obj: NULL when right, else why not. */
static const char *wrong_field(json_t *obj)
{
    json_t *title = json_object_get(obj, "title");
    json_t *meta = json_object_get(obj, "metadata");
    if (title && !json_is_string(title) && !json_is_null(title))
        return "title must be a string or null";
    if (meta && !json_is_object(meta) && !json_is_null(meta))
        return "metadata must be a JSON object";
    return NULL;
}

/* Set c's title and metadata from a checked object {title?, metadata?}.
 * 0, PARLEY_EINVAL (with *why) or PARLEY_ENOMEM. */
static int set_fields(parley_conv_t *c, json_t *obj, const char **why)
{
    json_t *title = json_object_get(obj, "title");
    json_t *meta = json_object_get(obj, "metadata");
    if ((*why = wrong_field(obj)))
        return PARLEY_EINVAL;
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
    parley_outcome_refuse(out, PARLEY_EINVAL, "invalid_conversation", why, NULL);
}

static int create(parley_db_t *db, const parley_conv_req_t *req, parley_outcome_t *out)
{
    const char *why = NULL;
    parley_conv_t c;
    int64_t now = parley_clock_now_ms();
    memset(&c, 0, sizeof c);
    if (req->body && !json_is_object(req->body))
        return PARLEY_EINVAL; /* parley_conversation_parse refuses it first */
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
    rc = parley_db_conv_insert(db, &c);
    if (rc == 0)
        rc = parley_stream_ensure_internal(db, path, c.owner, &sid);
    if (rc == 0)
        rc = emit_conv(db, &c, "conversation.created", out);
    if (rc == 0) {
        json_t *rep = parley_conversation_json(&c);
        rc = rep ? 0 : PARLEY_ENOMEM;
        parley_outcome_answer(out, PARLEY_DONE_CREATED, rep);
    }
    parley_conv_clear(&c);
    return rc;
}

static int patch(parley_db_t *db, parley_conv_t *c, const parley_conv_req_t *req,
                 parley_outcome_t *out)
{
    const char *why = NULL;
    if (!json_is_object(req->body))
        return PARLEY_EINVAL; /* parley_conversation_parse refuses it first */
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
    c->updated_ms = parley_clock_now_ms();
    rc = parley_db_conv_update(db, c, c->version);
    if (rc == PARLEY_ECONFLICT) { /* moved since read: the refusal a re-read gives */
        parley_outcome_refuse(out, PARLEY_EPRECOND, "precondition_failed",
                              "the conversation changed while this patch was applied; read it "
                              "again and retry",
                              NULL);
        return 0;
    }
    if (rc == 0)
        rc = emit_conv(db, c, "conversation.updated", out);
    if (rc == 0) {
        json_t *rep = parley_conversation_json(c);
        rc = rep ? 0 : PARLEY_ENOMEM;
        parley_outcome_answer(out, PARLEY_DONE_OK, rep);
    }
    return rc;
}

int parley_conversation_tombstone(parley_db_t *db, parley_conv_t *c, parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1];
    int64_t sid;
    parley_conversation_stream_path(c->id, path, sizeof path);
    int rc = parley_stream_delete_internal(db, path, &sid);
    if (rc == 0)
        parley_wakeset_add(&out->wake, sid);
    else if (rc != PARLEY_ENOTFOUND)
        return rc;
    /* A tombstone without the user's words: title and metadata go too. */
    parley_conv_clear(c);
    c->deleted = true;
    c->updated_ms = parley_clock_now_ms();
    rc = parley_db_conv_tombstone(db, c->id, c->updated_ms, &c->version);
    if (rc == 0)
        rc = emit_conv(db, c, "conversation.deleted", out);
    if (rc == 0)
        parley_outcome_answer(out, PARLEY_DONE_EMPTY, NULL);
    return rc;
}

int parley_conversation_find(parley_db_t *db, const parley_conv_req_t *req, parley_conv_t *c,
                             parley_outcome_t *out)
{
    int rc = parley_db_conv_get(db, req->id, c);
    if (rc == PARLEY_ENOTFOUND ||
        (rc == 0 && !parley_conversation_visible(c, req->user, req->admin))) {
        if (rc == 0)
            parley_conv_clear(c);
        parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found", "no such conversation", NULL);
        return 0;
    }
    if (rc)
        return rc;
    if (req->has_if_match && req->if_match != c->version) {
        parley_outcome_refuse(out, PARLEY_EPRECOND, "precondition_failed",
                              "the conversation has changed since that version; merge with the "
                              "current conversation (in error.details.current) and retry with "
                              "its version in If-Match",
                              parley_conversation_json(c));
        parley_conv_clear(c);
        return 0;
    }
    return 0;
}

int parley_conversation_parse(parley_conv_op_t op, json_t *body, parley_outcome_t *out)
{
    static const char *const allowed[] = {"title", "metadata", NULL};
    const char *why = NULL, *bad = NULL;
    parley_outcome_init(out);
    if (op == PARLEY_CONV_DELETE)
        return 0;
    if (op == PARLEY_CONV_CREATE && body && !json_is_object(body))
        why = "the body must be a JSON object: {\"title\": ..., \"metadata\": {...}}";
    else if (op == PARLEY_CONV_PATCH && !json_is_object(body))
        why = "a PATCH body is a JSON merge patch object, e.g. {\"title\": \"New\"}";
    if (why) {
        refuse_body(out, why);
        return PARLEY_EINVAL;
    }
    if (body && (bad = parley_canonjson_stranger(body, allowed))) {
        parley_outcome_refuse(out, PARLEY_EINVAL, "invalid_conversation",
                              "unknown field (see details.field): a conversation takes only "
                              "title and metadata",
                              json_pack("{s:s}", "field", bad));
        return PARLEY_EINVAL;
    }
    /* A merge patch's title or metadata replaces the stored one unless it
     * is null (which removes it) or an object (merged into it), so the
     * patch's own member types decide the merged result's, as on create. */
    if (body && (why = wrong_field(body))) {
        refuse_body(out, why);
        return PARLEY_EINVAL;
    }
    return 0;
}

int parley_conversation_apply(parley_db_t *db, const parley_conv_req_t *req, parley_outcome_t *out)
{
    parley_outcome_init(out);
    if (req->op == PARLEY_CONV_CREATE)
        return create(db, req, out);
    if (req->op != PARLEY_CONV_PATCH)
        return PARLEY_EINVAL; /* delete is parley_turn_delete_conversation (core/turn.h) */
    parley_conv_t c;
    int rc = parley_conversation_find(db, req, &c, out);
    if (rc || out->refusal)
        return rc;
    rc = patch(db, &c, req, out);
    parley_conv_clear(&c);
    return rc;
}

/* ---- messages ------------------------------------------------------------ */

/* A message as stored in a log (main's or a branch's): *m and its
 * canonical text *text (the caller frees both); 0 or -PARLEY_ENOMEM. */
static int message_build(const char *conv_id, const char *id, int64_t seq, const char *role,
                         json_t *content, json_t *metadata, const char *session_id, const char *at,
                         json_t **m, char **text, size_t *len)
{
    *m = json_pack("{s:s, s:s, s:I, s:s, s:O, s:o, s:o, s:s}", "id", id, "conversation_id", conv_id,
                   "seq", (json_int_t)seq, "role", role, "content", content, "metadata",
                   metadata ? json_deep_copy(metadata) : json_object(), "session_id",
                   session_id ? json_string(session_id) : json_null(), "created_at", at);
    if (!*m)
        return PARLEY_ENOMEM;
    int rc = parley_canonjson_dump(*m, text, len);
    if (rc) {
        json_decref(*m);
        *m = NULL;
    }
    return rc;
}

int parley_conversation_add_message(parley_db_t *db, parley_conv_t *c, const char *id,
                                    const char *role, json_t *content, json_t *metadata,
                                    const char *session_id, json_t **msg, char **text_out,
                                    size_t *len_out, parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1], at[40];
    parley_stream_t log;
    int64_t now = parley_clock_now_ms();
    int64_t seq = c->message_count + 1;
    char src[PARLEY_ROW_ID_MAX + 8];
    *msg = NULL;
    if (text_out)
        *text_out = NULL;
    /* The blobs it references (core/blob.h): refused before anything is
     * written when one is not the owner's; callers check out->refusal. */
    parley_blob_src_conversation(c->id, src, sizeof src);
    int rc = parley_blob_refs_apply(db, c->owner, src, false, content, metadata, out);
    if (rc || out->refusal)
        return rc;
    parley_conversation_stream_path(c->id, path, sizeof path);
    rc = parley_db_stream_get(db, path, &log);
    if (rc == 0 && (log.deleted || log.closed || log.tail != (uint64_t)c->message_count)) {
        parley_log_error("conversation %s: log at %llu, message_count %lld", c->id,
                         (unsigned long long)log.tail, (long long)c->message_count);
        return PARLEY_EINVAL; /* invariant 1 broken: refuse rather than write a gap */
    }
    if (rc && rc != PARLEY_ENOTFOUND)
        return rc;
    bool have_log = rc == 0; /* a new conversation's log is made by its first message */
    parley_clock_format(now, at, sizeof at);
    json_t *m = NULL;
    char *text;
    size_t len;
    rc = message_build(c->id, id, seq, role, content, metadata, session_id, at, &m, &text, &len);
    if (rc)
        return rc;
    int64_t sid = 0;
    if (have_log) { /* loaded already: append to it directly */
        rc = parley_stream_append_row(db, &log, text, len, c->message_count);
        if (rc == PARLEY_ECONFLICT) /* the log moved, closed or went: invariant 1 */
            rc = PARLEY_EINVAL;
        sid = log.id;
    } else {
        rc = parley_stream_append_internal(db, path, c->owner, text, len, &sid);
    }
    if (rc == 0 && text_out) { /* the caller's now */
        *text_out = text;
        *len_out = len;
    } else {
        free(text);
    }
    text = NULL;
    int64_t stored_seq = 0;
    if (rc == 0) {
        parley_wakeset_add(&out->wake, sid);
        rc = parley_db_conv_bump(db, c->id, now, &stored_seq, &c->version, &c->activity);
    }
    if (rc == 0 && stored_seq != seq) {
        parley_log_error("conversation %s: message_count moved to %lld, expected %lld", c->id,
                         (long long)stored_seq, (long long)seq);
        rc = PARLEY_EINVAL; /* invariant 1: refuse rather than number twice */
    }
    if (rc == PARLEY_ECONFLICT) /* deleted meanwhile */
        rc = PARLEY_EINVAL;
    if (rc == 0) {
        c->message_count = seq;
        c->last_message_ms = now;
        c->updated_ms = now;
        rc = parley_search_index(db, c->id, id, seq, content); /* same transaction */
    }
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
        if (text_out) {
            free(*text_out);
            *text_out = NULL;
        }
        return rc;
    }
    *msg = m;
    return 0;
}

int parley_conversation_add_branch_message(parley_db_t *db, parley_conv_t *c, const char *log_path,
                                           const char *branch, const char *id, const char *role,
                                           json_t *content, json_t *metadata,
                                           const char *session_id, json_t **msg,
                                           parley_outcome_t *out)
{
    char at[40];
    parley_stream_t log;
    int64_t now = parley_clock_now_ms(), count = 0;
    char src[PARLEY_ROW_ID_MAX + 8];
    *msg = NULL;
    /* The blobs it references, as on main (parley_conversation_add_message). */
    parley_blob_src_conversation(c->id, src, sizeof src);
    int rc = parley_blob_refs_apply(db, c->owner, src, false, content, metadata, out);
    if (rc || out->refusal)
        return rc;
    rc = parley_db_stream_get(db, log_path, &log);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && (log.deleted || log.closed)))
        return PARLEY_EINVAL; /* a branch's log is made with the branch */
    if (rc)
        return rc;
    int64_t seq = (int64_t)log.tail + 1;
    parley_clock_format(now, at, sizeof at);
    json_t *m = NULL;
    char *text;
    size_t len;
    rc = message_build(c->id, id, seq, role, content, metadata, session_id, at, &m, &text, &len);
    if (rc)
        return rc;
    rc = parley_stream_append_row(db, &log, text, len, (int64_t)log.tail);
    free(text);
    if (rc == PARLEY_ECONFLICT)
        rc = PARLEY_EINVAL;
    if (rc == 0) {
        parley_wakeset_add(&out->wake, log.id);
        rc = parley_db_conv_touch(db, c->id, now, &count, &c->version, &c->activity);
    }
    if (rc == PARLEY_ECONFLICT) /* deleted meanwhile */
        rc = PARLEY_EINVAL;
    if (rc == 0) {
        c->last_message_ms = now;
        c->updated_ms = now;
        /* Searchable like a message on main, whichever branch is active. */
        rc = parley_search_index(db, c->id, id, seq, content); /* same transaction */
    }
    if (rc == 0) {
        json_t *fields = json_pack("{s:s, s:s}", "conversation_id", c->id, "message_id", id);
        json_t *data =
            json_pack("{s:I, s:s, s:o, s:s}", "seq", (json_int_t)seq, "role", role, "session_id",
                      session_id ? json_string(session_id) : json_null(), "branch", branch);
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
