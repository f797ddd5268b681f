/*
 * snapshot.c — snapshots (see snapshot.h).
 *
 *   create   source /v1/conversations/{id}: the conversation object, and a
 *            closed fork of its log at the tail (the log's refcount holds
 *            its data for the fork);
 *            source /v1/documents/{c}/{id}: the document representation
 *            (in the caller's namespace) at its current version;
 *            201, snapshot.created
 *   delete   the fork goes (releasing the log, which goes too if it was
 *            deleted and this was its last fork), then the row; 204,
 *            snapshot.deleted
 *   expire   after expires_at: the fork goes, the row stays (reads: 410)
 *
 * Invariants:
 *   1. A snapshot's content never changes: the fork is closed and its
 *      positions below the fork point are the log's, which never change.
 *   2. A row with a stream holds exactly one reference on the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "core/branch.h"
#include "core/conversation.h"
#include "core/document.h"
#include "core/feed.h"
#include "codec/id.h"
#include "core/blob.h"
#include "core/snapshot.h"
#include "core/stream.h"
#include "parley/parley.h"
#include "util/clock.h"

#define EXPIRE_BATCH 64 /* forks freed per maintenance tick */

void parley_snapshot_stream_path(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, PARLEY_SNAPSHOT_PATH_PREFIX "%s", id);
}

json_t *parley_snapshot_json(const parley_snap_t *s, const char *base)
{
    char url[PARLEY_ROW_ID_MAX + 20 + 256];
    snprintf(url, sizeof url, "%s/v1/snapshots/%s", base ? base : "", s->id);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:o, s:o}", "id", s->id, "url", url, "source",
                     s->source, "kind", s->kind, "title",
                     s->title ? json_string(s->title) : json_null(), "public", s->is_public,
                     "created_at", parley_clock_json(s->created_ms), "expires_at",
                     parley_clock_json(s->expires_ms));
}

bool parley_snapshot_is_owner(const parley_snap_t *s, const char *user, bool admin)
{
    return admin || (user && user[0] && strcmp(s->owner, user) == 0);
}

bool parley_snapshot_is_expired(const parley_snap_t *s, int64_t now_ms)
{
    return s->expires_ms >= 0 && now_ms >= s->expires_ms;
}

/* A snapshot's event. snapshot.created also carries title, public and
 * expires_at, so the row can be rebuilt from the feed (core/rebuild.c);
 * its frozen content is the source's state at that point of the feed. */
static int emit(parley_db_t *db, const parley_snap_t *s, const char *type, parley_outcome_t *out)
{
    json_t *fields = json_pack("{s:s}", "snapshot_id", s->id);
    json_t *data = json_pack("{s:s, s:s}", "source", s->source, "kind", s->kind);
    if (data && strcmp(type, "snapshot.created") == 0 &&
        (json_object_set_new(data, "title", s->title ? json_string(s->title) : json_null()) ||
         json_object_set_new(data, "public", json_boolean(s->is_public)) ||
         json_object_set_new(data, "expires_at", parley_clock_json(s->expires_ms)))) {
        json_decref(data);
        data = NULL;
    }
    int rc = fields && data ? parley_feed_emit(db, s->owner, type, fields, data, &out->wake)
                            : PARLEY_ENOMEM;
    json_decref(fields);
    json_decref(data);
    return rc;
}

static void refuse(parley_outcome_t *out, const char *why)
{
    parley_outcome_refuse(out, PARLEY_EINVAL, "invalid_snapshot", why, NULL);
}

/* The part of path after prefix when it is one valid name segment. */
static const char *one_segment(const char *path, const char *prefix, size_t max)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return NULL;
    const char *rest = path + n;
    return parley_id_is_valid_name(rest, max) && strlen(rest) <= max ? rest : NULL;
}

/* Freeze a conversation: payload {"conversation": ...} and the fork. */
static int freeze_conversation(parley_db_t *db, const parley_snapshot_req_t *req,
                               const char *conv_id, parley_snap_t *s, bool has_title,
                               parley_outcome_t *out)
{
    parley_conv_t c;
    int rc = parley_db_conv_get(db, conv_id, &c);
    if (rc == PARLEY_ENOTFOUND ||
        (rc == 0 && !parley_conversation_visible(&c, req->user, req->admin))) {
        if (rc == 0)
            parley_conv_clear(&c);
        parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found", "no such conversation", NULL);
        return 0;
    }
    if (rc)
        return rc;
    char log[PARLEY_PATH_MAX + 1];
    uint64_t pos;
    int64_t sid;
    parley_branch_set_t set;
    rc = parley_branch_load(db, c.id, &set);
    const char *bname = req->args.branch[0] ? req->args.branch : NULL;
    int bi = rc ? 0 : bname ? parley_branch_find(&set, bname) : set.active;
    if (rc == 0 && bi < 0) {
        parley_branch_set_clear(&set);
        parley_conv_clear(&c);
        parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found",
                              "no such branch in this conversation", NULL);
        return 0;
    }
    /* A conversation that never branched: its log, exactly as before. */
    parley_branch_stream_path(&set, bi, log, sizeof log);
    parley_snapshot_stream_path(s->id, s->stream, sizeof s->stream);
    if (rc == 0)
        rc = parley_stream_fork_internal(db, log, s->stream, s->owner, &pos, &sid);
    if (rc == 0 && bi == 0 && pos != (uint64_t)c.message_count)
        rc = PARLEY_EINVAL; /* the log and the row disagree: refuse */
    json_t *payload =
        rc == 0 ? json_pack("{s:o}", "conversation", parley_conversation_json(&c)) : NULL;
    if (payload && set.has_ledger &&
        json_object_set_new(payload, "branch", json_string(set.v[bi].id)))
        rc = PARLEY_ENOMEM;
    parley_branch_set_clear(&set);
    if (rc == 0 && !payload)
        rc = PARLEY_ENOMEM;
    if (rc == 0 && !has_title && c.title && !(s->title = strdup(c.title)))
        rc = PARLEY_ENOMEM;
    size_t len;
    if (rc == 0)
        rc = parley_canonjson_dump(payload, &s->payload, &len);
    json_decref(payload);
    parley_conv_clear(&c);
    return rc;
}

/* Freeze a document of the caller's namespace: payload {"document": ...}. */
static int freeze_document(parley_db_t *db, const parley_snapshot_req_t *req,
                           const char *collection, const char *id, parley_snap_t *s,
                           parley_outcome_t *out)
{
    parley_doc_t d;
    memset(&d, 0, sizeof d);
    int rc = parley_db_doc_get(db, req->user, collection, id, &d);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && d.deleted)) {
        parley_doc_clear(&d);
        parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found", "no such document", NULL);
        return 0;
    }
    if (rc)
        return rc;
    json_t *payload = json_pack("{s:o}", "document", parley_document_json(&d));
    parley_doc_clear(&d);
    if (!payload)
        return PARLEY_ENOMEM;
    size_t len;
    rc = parley_canonjson_dump(payload, &s->payload, &len);
    json_decref(payload);
    return rc;
}

int parley_snapshot_parse(parley_snapshot_req_t *req, parley_outcome_t *out)
{
    static const char *const allowed[] = {"source",     "title",  "public",
                                          "expires_in", "branch", NULL};
    parley_snapshot_args_t *a = &req->args;
    json_t *b = req->body;
    parley_outcome_init(out);
    memset(a, 0, sizeof *a);
    if (!json_is_object(b)) {
        refuse(out, "the body must be a JSON object: {\"source\": \"/v1/conversations/{id}\"}");
        return PARLEY_EINVAL;
    }
    const char *key = parley_canonjson_stranger(b, allowed);
    if (key) {
        parley_outcome_refuse(out, PARLEY_EINVAL, "invalid_snapshot",
                              "unknown field (see details.field): a snapshot takes source, "
                              "title, public, expires_in and branch",
                              json_pack("{s:s}", "field", key));
        return PARLEY_EINVAL;
    }
    json_t *source = json_object_get(b, "source");
    json_t *title = json_object_get(b, "title");
    json_t *pub = json_object_get(b, "public");
    json_t *expires = json_object_get(b, "expires_in");
    if (!json_is_string(source) || strlen(json_string_value(source)) > PARLEY_SOURCE_MAX) {
        refuse(out, "source is required: \"/v1/conversations/{id}\" or "
                    "\"/v1/documents/{collection}/{id}\"");
        return PARLEY_EINVAL;
    }
    if (title && !json_is_string(title) && !json_is_null(title)) {
        refuse(out, "title must be a string or null");
        return PARLEY_EINVAL;
    }
    if (pub && !json_is_boolean(pub)) {
        refuse(out, "public must be true or false");
        return PARLEY_EINVAL;
    }
    if (expires && !json_is_null(expires) &&
        (!json_is_integer(expires) || json_integer_value(expires) < 1 ||
         json_integer_value(expires) > PARLEY_SNAPSHOT_MAX_EXPIRES_S)) {
        refuse(out, "expires_in is a whole number of seconds from 1 (up to ten years)");
        return PARLEY_EINVAL;
    }
    json_t *branch = json_object_get(b, "branch");
    const char *src = json_string_value(source);
    const char *conv_id = one_segment(src, "/v1/conversations/", PARLEY_ROW_ID_MAX);
    if (branch && (!conv_id || !json_is_string(branch) ||
                   strlen(json_string_value(branch)) >= sizeof a->branch ||
                   !parley_id_is_valid_name(json_string_value(branch), PARLEY_ID_LEN))) {
        refuse(out, "branch goes only with a conversation source, and is a branch id (\"main\" "
                    "or an id from /v1/conversations/{id}/branches)");
        return PARLEY_EINVAL;
    }
    if (branch)
        snprintf(a->branch, sizeof a->branch, "%s", json_string_value(branch));
    if (conv_id) {
        snprintf(a->conversation_id, sizeof a->conversation_id, "%s", conv_id);
    } else if (strncmp(src, "/v1/documents/", 14) == 0) {
        const char *rest = src + 14;
        const char *slash = strchr(rest, '/');
        size_t clen = slash ? (size_t)(slash - rest) : 0;
        const char *id = slash ? slash + 1 : "";
        if (slash && clen <= PARLEY_COLLECTION_MAX) {
            memcpy(a->collection, rest, clen);
            a->collection[clen] = '\0';
        }
        if (!slash || clen > PARLEY_COLLECTION_MAX ||
            !parley_id_is_valid_collection(a->collection) ||
            !parley_id_is_valid_name(id, PARLEY_DOC_ID_MAX) || strlen(id) > PARLEY_DOC_ID_MAX) {
            refuse(out, "a document source is \"/v1/documents/{collection}/{id}\"");
            return PARLEY_EINVAL;
        }
        snprintf(a->document_id, sizeof a->document_id, "%s", id);
    } else {
        refuse(out, "source must be \"/v1/conversations/{id}\" or "
                    "\"/v1/documents/{collection}/{id}\"");
        return PARLEY_EINVAL;
    }
    a->source = src;
    a->has_title = title != NULL;
    a->title = json_is_string(title) ? json_string_value(title) : NULL;
    a->is_public = pub && json_is_true(pub);
    a->expires_s = expires && json_is_integer(expires) ? json_integer_value(expires) : -1;
    a->parsed = true;
    return 0;
}

int parley_snapshot_create(parley_db_t *db, const parley_snapshot_req_t *req, parley_outcome_t *out)
{
    const parley_snapshot_args_t *a = &req->args;
    parley_outcome_init(out);
    if (!a->parsed)
        return PARLEY_EINVAL; /* parley_snapshot_parse refuses a bad body first */

    parley_snap_t s;
    int64_t now = parley_clock_now_ms();
    int rc;
    memset(&s, 0, sizeof s);
    snprintf(s.id, sizeof s.id, "%s", req->id);
    snprintf(s.owner, sizeof s.owner, "%s", req->user);
    snprintf(s.source, sizeof s.source, "%s", a->source);
    s.is_public = a->is_public;
    s.created_ms = now;
    s.expires_ms = a->expires_s > 0 ? now + a->expires_s * 1000 : -1;
    if (a->title && !(s.title = strdup(a->title)))
        return PARLEY_ENOMEM;
    if (a->conversation_id[0]) {
        snprintf(s.kind, sizeof s.kind, "conversation");
        rc = freeze_conversation(db, req, a->conversation_id, &s, a->has_title, out);
    } else {
        snprintf(s.kind, sizeof s.kind, "document");
        rc = freeze_document(db, req, a->collection, a->document_id, &s, out);
    }
    if (rc == 0 && !out->refusal) {
        rc = parley_db_snap_insert(db, &s);
        if (rc == 0) { /* it keeps (and shows) the blobs its source references */
            char from[PARLEY_SOURCE_MAX + 8], to[PARLEY_ROW_ID_MAX + 8];
            if (a->conversation_id[0])
                parley_blob_src_conversation(a->conversation_id, from, sizeof from);
            else
                parley_blob_src_document(a->collection, a->document_id, from, sizeof from);
            parley_blob_src_snapshot(s.id, to, sizeof to);
            rc = parley_db_blob_ref_copy(db, s.owner, from, to);
        }
        if (rc == 0)
            rc = emit(db, &s, "snapshot.created", out);
        if (rc == 0) {
            json_t *rep = parley_snapshot_json(&s, req->base);
            rc = rep ? 0 : PARLEY_ENOMEM;
            parley_outcome_answer(out, PARLEY_DONE_CREATED, rep);
        }
    }
    parley_snap_clear(&s);
    return rc;
}

/* Free a snapshot's fork (releasing the log it reads). */
static int drop_fork(parley_db_t *db, parley_snap_t *s, parley_outcome_t *out)
{
    int64_t sid;
    if (!s->stream[0])
        return 0;
    int rc = parley_stream_delete_internal(db, s->stream, &sid);
    if (rc == 0)
        parley_wakeset_add(&out->wake, sid);
    s->stream[0] = '\0';
    return rc == PARLEY_ENOTFOUND ? 0 : rc;
}

int parley_snapshot_delete(parley_db_t *db, const char *id, const char *user, bool admin,
                           parley_outcome_t *out)
{
    parley_snap_t s;
    parley_outcome_init(out);
    int rc = parley_db_snap_get(db, id, &s);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && !parley_snapshot_is_owner(&s, user, admin))) {
        if (rc == 0)
            parley_snap_clear(&s);
        parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found", "no such snapshot", NULL);
        return 0;
    }
    if (rc)
        return rc;
    rc = drop_fork(db, &s, out);
    if (rc == 0)
        rc = parley_db_snap_remove(db, s.id);
    if (rc == 0) {
        char src[PARLEY_ROW_ID_MAX + 8];
        parley_blob_src_snapshot(s.id, src, sizeof src);
        rc = parley_db_blob_ref_drop(db, s.owner, src, parley_clock_now_ms());
    }
    if (rc == 0)
        rc = parley_db_visit_delete(db, s.id); /* its visit record is kept, marked deleted */
    if (rc == 0)
        rc = emit(db, &s, "snapshot.deleted", out);
    if (rc == 0)
        parley_outcome_answer(out, PARLEY_DONE_EMPTY, NULL);
    parley_snap_clear(&s);
    return rc;
}

int parley_snapshot_visit(parley_db_t *db, const char *id, int64_t now_ms)
{
    parley_snap_t s;
    int rc = parley_db_snap_get(db, id, &s);
    if (rc == PARLEY_ENOTFOUND)
        return 0; /* revoked since it was read: nothing to count */
    if (rc)
        return rc;
    bool gone = parley_snapshot_is_expired(&s, now_ms);
    parley_snap_clear(&s);
    if (gone)
        return 0;
    rc = parley_db_visit_add(db, id, now_ms);
    return rc == PARLEY_ENOTFOUND ? 0 : rc; /* a record marked deleted stays as it is */
}

json_t *parley_snapshot_visits_json(parley_db_t *db, const char *id)
{
    int64_t count = 0, last_ms = -1;
    int rc = parley_db_visit_get(db, id, &count, &last_ms);
    if (rc == PARLEY_ENOTFOUND) {
        count = 0;
        last_ms = -1;
    } else if (rc) {
        return NULL;
    }
    return json_pack("{s:I, s:o}", "view_count", (json_int_t)count, "last_viewed_at",
                     parley_clock_json(last_ms));
}

int parley_snapshot_expire(parley_db_t *db, int64_t now_ms, parley_wakeset_t *wake)
{
    char(*ids)[PARLEY_ROW_ID_MAX + 1] = malloc(EXPIRE_BATCH * sizeof *ids);
    int n = 0;
    if (!ids)
        return PARLEY_ENOMEM;
    int rc = parley_db_snap_expired(db, now_ms, ids, EXPIRE_BATCH, &n);
    for (int i = 0; rc == 0 && i < n; i++) {
        parley_snap_t s;
        parley_outcome_t o;
        parley_outcome_init(&o);
        rc = parley_db_snap_get(db, ids[i], &s);
        if (rc == PARLEY_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc)
            break;
        rc = drop_fork(db, &s, &o);
        if (rc == 0) {
            rc = parley_db_snap_expire(db, s.id); /* payload {}: expired content is gone */
        }
        if (rc == 0) { /* and so are its blob references */
            char src[PARLEY_ROW_ID_MAX + 8];
            parley_blob_src_snapshot(s.id, src, sizeof src);
            rc = parley_db_blob_ref_drop(db, s.owner, src, now_ms);
        }
        parley_wakeset_merge(wake, &o.wake);
        parley_snap_clear(&s);
    }
    free(ids);
    return rc;
}

int parley_snapshot_content(parley_db_t *db, const parley_snap_t *s, size_t max_bytes,
                            json_t **content)
{
    json_error_t jerr;
    *content = NULL;
    json_t *c = json_loads(s->payload ? s->payload : "{}", 0, &jerr);
    if (!c)
        return PARLEY_ESTORE;
    if (strcmp(s->kind, "conversation") != 0) {
        *content = c;
        return 0;
    }
    parley_stream_t fork;
    int rc = parley_db_stream_get(db, s->stream, &fork);
    if (rc) {
        json_decref(c);
        return rc == PARLEY_ENOTFOUND ? PARLEY_ESTORE : rc;
    }
    parley_buf_t buf;
    int count;
    uint64_t last;
    bool more;
    parley_buf_init(&buf, max_bytes + (64u << 20));
    rc = parley_buf_putc(&buf, '[');
    if (rc == 0)
        rc = parley_conversation_read_page(db, &fork, 0, INT32_MAX, max_bytes, &buf, &count, &last,
                                           &more);
    if (rc == 0)
        rc = parley_buf_putc(&buf, ']');
    json_t *msgs = rc == 0 ? json_loadb(buf.data, buf.len, 0, &jerr) : NULL;
    parley_buf_free(&buf);
    if (!msgs) {
        json_decref(c);
        return rc ? rc : PARLEY_ESTORE;
    }
    json_object_set_new(c, "messages", msgs);
    if (more) {
        char cursor[32];
        snprintf(cursor, sizeof cursor, "s%llu", (unsigned long long)last);
        json_object_set_new(c, "next_cursor", json_string(cursor));
    }
    *content = c;
    return 0;
}
