/*
 * documents.c — /v1/documents: versioned JSON documents over HTTP.
 *
 *   /v1/documents/{collection}        GET (list, newest change first), POST (server id)
 *   /v1/documents/{collection}/{id}   GET, HEAD, PUT, PATCH, DELETE
 *
 * Bodies are parsed and checked here (size, nesting, JSON), on the
 * connection's thread; the rules run on the writer (core/document.c, as a
 * core command), and the answer is rendered from the outcome after the
 * commit.
 * Documents live in the namespace of their owner: the caller, or the user
 * the admin acts for (Parley-User).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/params.h"
#include "api/resource.h"
#include "api/status.h"
#include "api/write.h"
#include "codec/canonjson.h"
#include "core/document.h"
#include "codec/id.h"
#include "parley/parley.h"

#define MAX_DEPTH 128 /* JSON nesting accepted in a document */

typedef struct doc_write {
    parley_command_t cmd;                       /* the core command (u.doc: the request) */
    json_t *body;                               /* parsed body (owned) */
    char owner[256];                            /* namespace */
    char collection[PARLEY_COLLECTION_MAX + 1]; /* collection */
    char id[PARLEY_DOC_ID_MAX + 1];             /* id */
} doc_write_t;

static void doc_write_free(void *arg)
{
    doc_write_t *dw = arg;
    json_decref(dw->body);
    free(dw);
}

static void etag_of(int64_t version, char *out, size_t n)
{
    snprintf(out, n, "\"%lld\"", (long long)version);
}

/* After the commit: the answer for the rule's outcome (ETag for a live
 * document, Location for a created one, the current document on 412). */
static void render_doc_write(void *ctx, const parley_outcome_t *o, parley_reply_t *rp)
{
    doc_write_t *dw = ctx;
    int status = parley_api_status(o, NULL);
    json_t *version = json_object_get(o->body, "version"); /* a live document's */
    char etag[32];
    if (version) {
        etag_of((int64_t)json_integer_value(version), etag, sizeof etag);
        parley_reply_header(rp, "ETag", etag);
    }
    if (status == 204) {
        parley_reply_empty(rp, 204);
    } else if (o->body && (!o->refusal || o->refusal == PARLEY_EPRECOND)) {
        if (o->refusal) {
            json_t *err = json_pack("{s:{s:s, s:s, s:{s:O}}}", "error", "code", o->code, "message",
                                    o->error, "details", "current", o->body);
            parley_reply_json(rp, status, err);
            json_decref(err);
        } else {
            if (o->done == PARLEY_DONE_CREATED) {
                char loc[512];
                snprintf(loc, sizeof loc, "/v1/documents/%s/%s",
                         json_string_value(json_object_get(o->body, "collection")),
                         json_string_value(json_object_get(o->body, "id")));
                parley_reply_header(rp, "Location", loc);
            }
            parley_reply_json(rp, status, o->body);
        }
    } else {
        json_t *details = o->refusal == PARLEY_ETOOBIG
                              ? json_pack("{s:I, s:s}", "limit_bytes",
                                          (json_int_t)dw->cmd.u.doc.max_bytes, "field", "data")
                              : NULL;
        char msg[200];
        if (o->refusal == PARLEY_ETOOBIG)
            snprintf(msg, sizeof msg,
                     "the document's data is over the limit of %zu bytes (--max-json-bytes, "
                     "counted as canonical JSON); make it smaller",
                     dw->cmd.u.doc.max_bytes);
        parley_reply_error(rp, status, o->code, o->refusal == PARLEY_ETOOBIG ? msg : o->error,
                           details);
        json_decref(details);
    }
}

/* If-Match / If-None-Match value: * or "<version>". 0, or PARLEY_EINVAL. */
static int parse_etag_version(const char *v, bool *any, int64_t *version)
{
    uint64_t n;
    char digits[24];
    size_t len = strlen(v);
    if (strcmp(v, "*") == 0) {
        *any = true;
        return 0;
    }
    if (len < 3 || len > 21 || v[0] != '"' || v[len - 1] != '"')
        return PARLEY_EINVAL;
    memcpy(digits, v + 1, len - 2);
    digits[len - 2] = '\0';
    if (parley_param_decimal(digits, INT64_MAX, &n))
        return PARLEY_EINVAL;
    *any = false;
    *version = (int64_t)n;
    return 0;
}

static void start_write(parley_req_t *r, parley_doc_op_t op, const char *collection, const char *id)
{
    doc_write_t *dw = calloc(1, sizeof *dw);
    if (!dw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    snprintf(dw->owner, sizeof dw->owner, "%s", parley_req_user(r));
    snprintf(dw->collection, sizeof dw->collection, "%s", collection);
    snprintf(dw->id, sizeof dw->id, "%s", id);
    dw->cmd.kind = PARLEY_CMD_DOCUMENT;
    dw->cmd.u.doc.op = op;
    dw->cmd.u.doc.max_bytes = parley_api_app(r)->cfg->max_json_bytes;
    dw->cmd.u.doc.owner = dw->owner;
    dw->cmd.u.doc.collection = dw->collection;
    dw->cmd.u.doc.id = dw->id;

    const char *im = parley_req_header(r, "If-Match");
    if (im) {
        if (parse_etag_version(im, &dw->cmd.u.doc.if_match_any, &dw->cmd.u.doc.if_match)) {
            doc_write_free(dw);
            parley_req_error(r, 400, "invalid_precondition",
                             "If-Match must be * or a version in quotes, e.g. If-Match: \"3\"");
            return;
        }
        dw->cmd.u.doc.has_if_match = true;
    }
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && op == PARLEY_DOC_PUT) {
        if (strcmp(inm, "*") != 0) {
            doc_write_free(dw);
            parley_req_error(r, 400, "invalid_precondition",
                             "on PUT, If-None-Match can only be * (create only)");
            return;
        }
        dw->cmd.u.doc.if_none_match_any = true;
    }
    if (op != PARLEY_DOC_DELETE) {
        size_t len;
        const char *body = parley_req_body(r, &len);
        const char *why = NULL;
        if (len == 0 || parley_canonjson_parse(body, len, MAX_DEPTH, &dw->body, &why)) {
            doc_write_free(dw);
            json_t *details = json_pack("{s:s}", "reason", why ? why : "the body is empty");
            char msg[256];
            snprintf(msg, sizeof msg, "the body must be one JSON %s: %s",
                     op == PARLEY_DOC_PATCH ? "merge patch" : "object",
                     why ? why : "the body is empty");
            json_t *err = json_pack("{s:{s:s, s:s, s:o}}", "error", "code", "invalid_json",
                                    "message", msg, "details", details);
            char *text = json_dumps(err, JSON_COMPACT);
            json_decref(err);
            parley_req_respond(r, 400, "application/json", text ? text : "{}",
                               text ? strlen(text) : 2);
            free(text);
            return;
        }
        if (op != PARLEY_DOC_PATCH && !json_is_object(dw->body)) {
            doc_write_free(dw);
            parley_req_error(r, 400, "invalid_document",
                             "a document must be a JSON object, e.g. {\"theme\":\"dark\"}");
            return;
        }
        dw->cmd.u.doc.body = dw->body;
    }
    parley_api_write(r, &dw->cmd, render_doc_write, dw, doc_write_free);
}

static void get_one(parley_req_t *r, const char *collection, const char *id, bool head)
{
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_doc_t d;
    memset(&d, 0, sizeof d);
    int rc = db ? parley_db_doc_get(db, parley_req_user(r), collection, id, &d) : PARLEY_EUNAVAIL;
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && d.deleted)) {
        parley_doc_clear(&d);
        parley_req_error(r, 404, "not_found", "no such document");
        return;
    }
    if (rc) {
        parley_api_store_failed(r, rc, "the document");
        return;
    }
    char etag[32];
    etag_of(d.version, etag, sizeof etag);
    parley_req_add_header(r, "ETag", etag);
    parley_req_add_header(r, "Cache-Control", "private, no-cache");
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && parley_param_etag_match(inm, etag)) {
        parley_doc_clear(&d);
        parley_req_respond_empty(r, 304);
        return;
    }
    json_t *rep = parley_document_json(&d);
    parley_doc_clear(&d);
    char *text = rep ? json_dumps(rep, JSON_COMPACT) : NULL;
    json_decref(rep);
    if (!text) {
        parley_req_error(r, 500, "storage_error", "the stored document could not be encoded");
        return;
    }
    if (head)
        parley_req_respond(r, 200, "application/json", "", 0);
    else
        parley_req_respond(r, 200, "application/json", text, strlen(text));
    free(text);
}

/* A document's fields, as ?fields= names them (bit i: doc_fields[i]). */
static const char *const doc_fields[] = {"id",         "collection", "version", "checksum",
                                         "created_at", "updated_at", "data",    NULL};
#define DOC_DATA (1u << 6) /* the data field's bit */

/* A page of documents being listed, and the fields kept. */
typedef struct doc_page {
    parley_page_t page; /* the page */
    unsigned mask;      /* fields kept */
} doc_page_t;

static int on_doc(void *arg, const parley_doc_t *d)
{
    doc_page_t *dp = arg;
    /* Without the data, the stored JSON is never parsed. */
    parley_doc_t light = *d;
    if (!(dp->mask & DOC_DATA)) {
        light.data = NULL;
        light.len = 0;
    }
    json_t *rep = parley_document_json(&light);
    parley_resource_fields_apply(rep, doc_fields, dp->mask);
    return parley_page_add(&dp->page, rep, d->chg);
}

/* Parse ?limit= (default 20, clamped to 100). 0 or PARLEY_EINVAL. */
static void list(parley_req_t *r, const char *collection)
{
    int limit;
    uint64_t before;
    doc_page_t dp;
    if (parley_resource_page(r, 'c', &limit, &before) ||
        parley_resource_fields(r, doc_fields, parley_resource_fields_all(doc_fields) & ~DOC_DATA,
                               &dp.mask))
        return;
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_page_init(&dp.page, limit);
    int rc = db ? parley_db_doc_list(db, parley_req_user(r), collection, (int64_t)before, limit + 1,
                                     on_doc, &dp)
                : PARLEY_EUNAVAIL;
    if (rc) {
        parley_page_clear(&dp.page);
        parley_api_store_failed(r, rc, "the collection");
        return;
    }
    parley_page_send(r, &dp.page, 'c');
}

void parley_api_documents(parley_req_t *r, const char *rest)
{
    char collection[PARLEY_COLLECTION_MAX + 2];
    char id[PARLEY_DOC_ID_MAX + 2];
    const char *m = parley_req_method(r);
    const char *slash = strchr(rest, '/');
    size_t clen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (clen > PARLEY_COLLECTION_MAX)
        clen = PARLEY_COLLECTION_MAX + 1;
    memcpy(collection, rest, clen);
    collection[clen] = '\0';
    if (!parley_id_is_valid_collection(collection)) {
        parley_req_error(r, 400, "invalid_collection",
                         "collection names are 1 to 64 characters of a-z, 0-9, '_' and '-'");
        return;
    }
    if (!slash || slash[1] == '\0') {
        if (strcmp(m, "GET") == 0) {
            list(r, collection);
        } else if (strcmp(m, "POST") == 0) {
            char newid[PARLEY_ID_LEN + 1];
            if (parley_id_new(newid)) {
                parley_req_error(r, 503, "unavailable", "no randomness available; retry");
                return;
            }
            start_write(r, PARLEY_DOC_PUT, collection, newid);
        } else {
            parley_req_add_header(r, "Allow", "GET, POST");
            parley_req_error(r, 405, "method_not_allowed",
                             "a collection takes GET (list) and POST (create)");
        }
        return;
    }
    const char *idp = slash + 1;
    if (strchr(idp, '/') || strlen(idp) > PARLEY_DOC_ID_MAX ||
        !parley_id_is_valid_name(idp, PARLEY_DOC_ID_MAX)) {
        parley_req_error(r, 400, "invalid_id",
                         "document ids are 1 to 128 characters of A-Z, a-z, 0-9, '_' and '-'");
        return;
    }
    snprintf(id, sizeof id, "%s", idp);
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        get_one(r, collection, id, strcmp(m, "HEAD") == 0);
    else if (strcmp(m, "PUT") == 0)
        start_write(r, PARLEY_DOC_PUT, collection, id);
    else if (strcmp(m, "PATCH") == 0)
        start_write(r, PARLEY_DOC_PATCH, collection, id);
    else if (strcmp(m, "DELETE") == 0)
        start_write(r, PARLEY_DOC_DELETE, collection, id);
    else {
        parley_req_add_header(r, "Allow", "GET, HEAD, PUT, PATCH, DELETE");
        parley_req_error(r, 405, "method_not_allowed",
                         "a document takes GET, HEAD, PUT, PATCH and DELETE");
    }
}
