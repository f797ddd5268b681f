/*
 * document.c — versioned JSON documents (see document.h).
 *
 *   op      live document                  missing or tombstone
 *   PUT     If-None-Match:* → 412          If-Match → 412
 *           If-Match stale  → 412          create: version = old + 1 (or 1), 201
 *           replace: version + 1, 200
 *   PATCH   If-Match stale  → 412          404
 *           merge patch (RFC 7386); the result must be an object; 200
 *   DELETE  If-Match stale  → 412          404
 *           tombstone with version + 1; 204
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "core/blob.h"
#include "core/document.h"
#include "core/feed.h"
#include "codec/mergepatch.h"
#include "parley/parley.h"
#include "util/clock.h"

json_t *parley_document_json(const parley_doc_t *d)
{
    char created[40], updated[40];
    json_error_t err;
    json_t *data = json_loadb(d->data ? d->data : "{}", d->len ? d->len : 2,
                              JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!data)
        return NULL;
    parley_clock_format(d->created_ms, created, sizeof created);
    parley_clock_format(d->updated_ms, updated, sizeof updated);
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:o}", "id", d->id, "collection",
                     d->collection, "version", (json_int_t)d->version, "checksum", d->checksum,
                     "created_at", created, "updated_at", updated, "data", data);
}

static void refuse(parley_outcome_t *res, int err, const char *code, const char *error)
{
    parley_outcome_deny(res, err, error);
    res->code = code;
}

/* d (consumed) is the answer: its representation becomes res's body,
 * none for a tombstone. 0, or PARLEY_ESTORE if the stored data does not
 * read back. */
static int answer_doc(parley_outcome_t *res, parley_doc_t *d)
{
    int rc = 0;
    if (!d->deleted) {
        res->body = parley_document_json(d);
        rc = res->body ? 0 : PARLEY_ESTORE;
    }
    parley_doc_clear(d);
    return rc;
}

/* Store data (borrowed JSON object) as the new content of d. */
static int set_data(parley_doc_t *d, json_t *data)
{
    char *text;
    size_t len;
    int rc = parley_canonjson_dump(data, &text, &len);
    if (rc)
        return rc;
    free(d->data);
    d->data = text;
    d->len = len;
    parley_canonjson_sha256_hex(text, len, d->checksum);
    return 0;
}

/*
 * The event of a change to d. What rebuilds the document rides along
 * (core/rebuild.c replays it): a PUT's "content" (the whole new data), a
 * PATCH's "patch" (the merge patch as sent, applied to the previous
 * version); a delete needs neither (the tombstone holds no content).
 */
static int emit(parley_db_t *db, const parley_doc_t *d, const char *checksum, const char *type,
                const parley_doc_req_t *req, parley_outcome_t *res)
{
    json_t *fields = json_pack("{s:{s:s, s:s, s:I}}", "document", "collection", d->collection, "id",
                               d->id, "version", (json_int_t)d->version);
    json_t *data = json_pack("{s:s}", "checksum", checksum);
    if (data && req->op != PARLEY_DOC_DELETE &&
        json_object_set(data, req->op == PARLEY_DOC_PATCH ? "patch" : "content", req->body)) {
        json_decref(data);
        data = NULL;
    }
    int rc = fields && data ? parley_feed_emit(db, d->owner, type, fields, data, &res->wake)
                            : PARLEY_ENOMEM;
    json_decref(fields);
    json_decref(data);
    return rc;
}

int parley_document_apply(parley_db_t *db, const parley_doc_req_t *req, parley_outcome_t *res)
{
    parley_doc_t cur;
    int64_t now = parley_clock_now_ms();
    memset(&cur, 0, sizeof cur);
    int rc = parley_db_doc_get(db, req->owner, req->collection, req->id, &cur);
    if (rc && rc != PARLEY_ENOTFOUND)
        return rc;
    bool exists = rc == 0;
    bool live = exists && !cur.deleted;

    if (live && req->has_if_match && !req->if_match_any && req->if_match != cur.version) {
        refuse(res, PARLEY_EPRECOND, "precondition_failed",
               "the document has changed since that version; merge with the current document "
               "(in this body) and retry with its version in If-Match");
        return answer_doc(res, &cur);
    }
    if (!live && req->has_if_match) {
        parley_doc_clear(&cur);
        if (req->op == PARLEY_DOC_PUT)
            refuse(res, PARLEY_EPRECOND, "precondition_failed",
                   "If-Match was given but the document does not exist");
        else
            refuse(res, PARLEY_ENOTFOUND, "not_found", "no such document");
        return 0;
    }
    if (!live && req->op != PARLEY_DOC_PUT) {
        parley_doc_clear(&cur);
        refuse(res, PARLEY_ENOTFOUND, "not_found", "no such document");
        return 0;
    }

    parley_doc_t d = cur;
    const char *type;
    char event_sum[sizeof cur.checksum] = ""; /* the event's checksum when not d's */
    switch (req->op) {
    case PARLEY_DOC_PUT:
        if (live && req->if_none_match_any) {
            refuse(res, PARLEY_EPRECOND, "precondition_failed",
                   "If-None-Match: * means create only, and the document exists");
            return answer_doc(res, &cur);
        }
        if (!json_is_object(req->body)) {
            parley_doc_clear(&cur);
            refuse(res, PARLEY_EINVAL, "invalid_document", "a document must be a JSON object");
            return 0;
        }
        d.data = NULL;
        d.len = 0;
        rc = set_data(&d, req->body);
        free(cur.data);
        if (rc)
            return rc;
        if (!live) {
            snprintf(d.owner, sizeof d.owner, "%s", req->owner);
            snprintf(d.collection, sizeof d.collection, "%s", req->collection);
            snprintf(d.id, sizeof d.id, "%s", req->id);
            d.version = exists ? cur.version + 1 : 1;
            d.created_ms = now;
            d.deleted = false;
            parley_outcome_done(res, PARLEY_DONE_CREATED);
            type = "document.created";
        } else {
            d.version = cur.version + 1;
            parley_outcome_done(res, PARLEY_DONE_OK);
            type = "document.updated";
        }
        break;
    case PARLEY_DOC_PATCH: {
        json_error_t jerr;
        json_t *target = json_loadb(cur.data, cur.len, 0, &jerr);
        json_t *merged = target ? parley_mergepatch_apply(target, req->body) : NULL;
        json_decref(target);
        if (!merged) {
            parley_doc_clear(&cur);
            return target ? PARLEY_ENOMEM : PARLEY_ESTORE;
        }
        if (!json_is_object(merged)) {
            json_decref(merged);
            parley_doc_clear(&cur);
            refuse(res, PARLEY_EINVAL, "invalid_document",
                   "the merge patch must leave a JSON object (send an object as the patch)");
            return 0;
        }
        d.data = NULL;
        d.len = 0;
        rc = set_data(&d, merged);
        json_decref(merged);
        free(cur.data);
        if (rc)
            return rc;
        d.version = cur.version + 1;
        parley_outcome_done(res, PARLEY_DONE_OK);
        type = "document.updated";
        break;
    }
    default: { /* DELETE */
        /* The tombstone keeps the version (so a re-created document goes
         * on counting) but not the content: a deleted document's data
         * would otherwise stay in the store for ever. The event still
         * carries the checksum of what was deleted. */
        memcpy(event_sum, cur.checksum, sizeof event_sum);
        json_t *empty = json_object();
        rc = empty ? set_data(&d, empty) : PARLEY_ENOMEM;
        json_decref(empty);
        if (rc) {
            parley_doc_clear(&d);
            return rc;
        }
        d.version = cur.version + 1;
        d.deleted = true;
        parley_outcome_done(res, PARLEY_DONE_EMPTY);
        type = "document.deleted";
        break;
    }
    }
    if (req->max_bytes && d.len > req->max_bytes) {
        /* The limit bounds the data as stored (canonical JSON), whatever
         * the body's shape; a merge patch can also grow a document past it. */
        parley_doc_clear(&d);
        refuse(res, PARLEY_ETOOBIG, "payload_too_large",
               "the document's data would be larger than the JSON limit (--max-json-bytes, "
               "counted as canonical JSON); make it smaller");
        return 0;
    }
    d.updated_ms = now;
    /* The version is decided on the row read above (locked for this
     * transaction); the store writes only if it is still that version. */
    rc = parley_db_doc_write(db, &d, exists ? cur.version : 0);
    if (rc == PARLEY_ECONFLICT) {
        parley_doc_clear(&d);
        refuse(res, PARLEY_EPRECOND, "precondition_failed",
               "the document changed while this write was applied; read it again and retry");
        return 0;
    }
    if (rc == 0) { /* the blobs it references now (core/blob.h) */
        char src[PARLEY_COLLECTION_MAX + PARLEY_DOC_ID_MAX + 8];
        json_t *v = d.deleted ? NULL : json_loadb(d.data, d.len, 0, NULL);
        parley_blob_src_document(d.collection, d.id, src, sizeof src);
        rc = d.deleted || v ? parley_blob_refs_apply(db, d.owner, src, true, v, NULL, res)
                            : PARLEY_ENOMEM;
        json_decref(v);
        if (rc == 0 && res->refusal) {
            parley_doc_clear(&d);
            return 0;
        }
    }
    if (rc == 0)
        rc = emit(db, &d, event_sum[0] ? event_sum : d.checksum, type, req, res);
    if (rc) {
        parley_doc_clear(&d);
        return rc;
    }
    return answer_doc(res, &d);
}
