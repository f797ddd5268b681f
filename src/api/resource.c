/*
 * resource.c — shared HTTP plumbing of the JSON resources (see resource.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/params.h"
#include "api/resource.h"
#include "api/status.h"
#include "api/write.h"
#include "codec/canonjson.h"
#include "codec/id.h"
#include "parley/parley.h"

int parley_resource_body(parley_req_t *r, bool optional, json_t **out)
{
    size_t len;
    const char *body = parley_req_body(r, &len);
    const char *why = NULL;
    *out = NULL;
    if (len == 0 && optional)
        return 0;
    if (len == 0 || parley_canonjson_parse(body, len, PARLEY_RESOURCE_MAX_DEPTH, out, &why)) {
        char msg[256];
        snprintf(msg, sizeof msg, "the body must be one JSON object: %s",
                 why ? why : "the body is empty");
        json_t *err =
            json_pack("{s:{s:s, s:s, s:{s:s}}}", "error", "code", "invalid_json", "message", msg,
                      "details", "reason", why ? why : "the body is empty");
        parley_resource_send(r, 400, err);
        json_decref(err);
        return PARLEY_EINVAL;
    }
    return 0;
}

int parley_resource_page(parley_req_t *r, char letter, int *limit, uint64_t *before)
{
    const char *v = NULL, *cursor = NULL;
    uint64_t n;
    int count = parley_req_query(r, "limit", &v);
    *limit = PARLEY_RESOURCE_PAGE_DEFAULT;
    *before = 0;
    if (count != 0) {
        if (count != 1 || parley_param_decimal(v, UINT64_MAX / 2, &n) || n == 0) {
            parley_req_error(r, 400, "invalid_limit",
                             "limit must be a whole number from 1; values over 100 are clamped");
            return PARLEY_EINVAL;
        }
        *limit = n > PARLEY_RESOURCE_PAGE_MAX ? PARLEY_RESOURCE_PAGE_MAX : (int)n;
    }
    int nc = parley_req_query(r, "cursor", &cursor);
    if (nc < 0 || nc > 1 ||
        (nc == 1 && (cursor[0] != letter || parley_param_decimal(cursor + 1, INT64_MAX, before)))) {
        parley_req_error(r, 400, "invalid_cursor",
                         "cursor must be a next_cursor value from a previous page of this list");
        return PARLEY_EINVAL;
    }
    return 0;
}

void parley_resource_send(parley_req_t *r, int status, json_t *v)
{
    char *text = NULL;
    size_t len = 0;
    if (!v || parley_canonjson_dump(v, &text, &len)) {
        parley_req_error(r, 500, "internal_error", "the answer could not be encoded; retry");
        return;
    }
    parley_req_respond(r, status, "application/json", text, len);
    free(text);
}

void parley_resource_send_page(parley_req_t *r, json_t *items, bool more, char letter,
                               uint64_t next)
{
    char cursor[32];
    snprintf(cursor, sizeof cursor, "%c%llu", letter, (unsigned long long)next);
    json_t *page = json_pack("{s:o, s:o}", "items", items, "next_cursor",
                             more ? json_string(cursor) : json_null());
    parley_req_add_header(r, "Cache-Control", "private, no-cache");
    parley_resource_send(r, 200, page);
    json_decref(page);
}

/* Put v (borrowed) into rp as canonical JSON with status. */
static int reply_canon(parley_reply_t *rp, int status, json_t *v)
{
    char *text;
    size_t len;
    int rc = parley_canonjson_dump(v, &text, &len);
    if (rc)
        return rc;
    rp->status = status;
    snprintf(rp->content_type, sizeof rp->content_type, "application/json");
    parley_buf_reset(&rp->body);
    rc = parley_buf_append(&rp->body, text, len);
    free(text);
    return rc;
}

/* The error body of a refusal (new reference; NULL when memory runs out):
 * for a conflict, a failed precondition or a fenced caller the outcome's
 * body (the object as it is now) goes to error.details.current, for other
 * refusals to error.details. */
static json_t *refusal_json(const parley_outcome_t *o)
{
    json_t *details;
    bool current = o->refusal == PARLEY_ECONFLICT || o->refusal == PARLEY_EPRECOND ||
                   o->refusal == PARLEY_EFENCED;
    if (o->body && current)
        details = json_pack("{s:O}", "current", o->body);
    else if (json_is_object(o->body))
        details = json_incref(o->body);
    else
        details = json_object();
    return json_pack("{s:{s:s, s:s, s:o}}", "error", "code", o->code ? o->code : "refused",
                     "message", o->error ? o->error : "the request was refused", "details",
                     details);
}

void parley_resource_refuse(parley_req_t *r, const parley_outcome_t *o)
{
    json_t *err = refusal_json(o);
    parley_resource_send(r, parley_api_status(o, NULL), err);
    json_decref(err);
}

void parley_resource_render(const parley_outcome_t *o, parley_reply_t *rp)
{
    int status = parley_api_status(o, NULL);
    json_t *v = o->refusal ? refusal_json(o) : json_incref(o->body);
    if (!o->refusal && (status == 204 || !o->body)) {
        parley_reply_empty(rp, 204);
    } else if (!v || reply_canon(rp, status, v)) {
        rp->status = 0; /* out of memory: the write path answers 503 */
    }
    json_decref(v);
}

void parley_resource_method_not_allowed(parley_req_t *r, const char *allow, const char *message)
{
    char msg[160];
    snprintf(msg, sizeof msg, "this resource takes %s", allow);
    parley_req_add_header(r, "Allow", allow);
    parley_req_error(r, 405, "method_not_allowed", message ? message : msg);
}

int parley_resource_content_fits(parley_req_t *r, json_t *v, size_t limit, const char *field)
{
    char *text = NULL;
    size_t len = 0;
    if (!v || !limit)
        return 0;
    int rc = parley_canonjson_dump(v, &text, &len);
    free(text);
    if (rc == PARLEY_ENOMEM) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return rc;
    }
    if (rc == 0 && len <= limit)
        return 0;
    if (rc != 0 && rc != PARLEY_ETOOBIG) {
        parley_req_error(r, 400, "invalid_json", "the value cannot be stored as JSON");
        return rc;
    }
    char msg[200];
    snprintf(msg, sizeof msg,
             "\"%s\" is over the limit of %zu bytes (as canonical JSON); make it smaller", field,
             limit);
    json_t *err =
        json_pack("{s:{s:s, s:s, s:{s:I, s:I, s:s}}}", "error", "code", "payload_too_large",
                  "message", msg, "details", "limit_bytes", (json_int_t)limit, "size_bytes",
                  (json_int_t)(rc ? 0 : len), "field", field);
    if (err)
        parley_resource_send(r, 413, err);
    else
        parley_req_error(r, 413, "payload_too_large", msg);
    json_decref(err);
    return PARLEY_ETOOBIG;
}

unsigned parley_resource_fields_all(const char *const *names)
{
    unsigned all = 0;
    for (int i = 0; i < 31 && names[i]; i++)
        all |= 1u << i;
    return all;
}

/* Answer r 400 invalid_fields: why, naming field when not NULL. */
static int fields_refused(parley_req_t *r, const char *const *names, const char *why,
                          const char *field, size_t flen)
{
    json_t *allowed = json_array();
    for (int i = 0; names[i]; i++)
        json_array_append_new(allowed, json_string(names[i]));
    json_t *details = json_pack("{s:o}", "allowed", allowed);
    if (details && field)
        json_object_set_new(details, "field", json_stringn(field, flen));
    json_t *err = json_pack("{s:{s:s, s:s, s:o}}", "error", "code", "invalid_fields", "message",
                            why, "details", details ? details : json_object());
    if (err)
        parley_resource_send(r, 400, err);
    else
        parley_req_error(r, 400, "invalid_fields", why);
    json_decref(err);
    return PARLEY_EINVAL;
}

int parley_resource_fields(parley_req_t *r, const char *const *names, unsigned summary,
                           unsigned *mask)
{
    const char *fields = NULL, *view = NULL;
    int nf = parley_req_query(r, "fields", &fields);
    int nv = parley_req_query(r, "view", &view);
    unsigned all = parley_resource_fields_all(names);
    *mask = all;
    if (nf < 0 || nf > 1 || nv < 0 || nv > 1)
        return fields_refused(r, names, "give ?fields= or ?view= at most once", NULL, 0);
    if (nf == 1 && nv == 1)
        return fields_refused(r, names, "give ?fields= or ?view=, not both", NULL, 0);
    if (nv == 1) {
        if (strcmp(view, "summary") == 0)
            *mask = summary;
        else if (strcmp(view, "full") != 0)
            return fields_refused(r, names, "view must be summary or full", NULL, 0);
        return 0;
    }
    if (nf == 0)
        return 0;
    *mask = 0;
    for (const char *p = fields;;) {
        size_t n = strcspn(p, ",");
        int i = 0;
        while (names[i] && (strlen(names[i]) != n || strncmp(names[i], p, n) != 0))
            i++;
        if (n == 0)
            return fields_refused(r, names, "fields is a comma-separated list of field names", NULL,
                                  0);
        if (!names[i])
            return fields_refused(
                r, names, "unknown field in ?fields= (see details.field and details.allowed)", p,
                n);
        *mask |= 1u << i;
        if (!p[n])
            break;
        p += n + 1;
    }
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], "id") == 0)
            *mask |= 1u << i;
    return 0;
}

void parley_resource_fields_apply(json_t *item, const char *const *names, unsigned mask)
{
    for (int i = 0; item && i < 31 && names[i]; i++)
        if (!(mask & (1u << i)))
            json_object_del(item, names[i]);
}

int parley_resource_new_id(parley_req_t *r, char *out)
{
    int rc = parley_id_new(out);
    if (rc)
        parley_req_error(r, 503, "unavailable", "no randomness available; retry");
    return rc;
}

const char *parley_resource_id_segment(const char *path, char *id)
{
    size_t n = strcspn(path, "/");
    if (n == 0 || n > PARLEY_ROW_ID_MAX)
        return NULL;
    memcpy(id, path, n);
    id[n] = '\0';
    return parley_id_is_valid_name(id, PARLEY_ROW_ID_MAX) ? path + n : NULL;
}

void parley_page_init(parley_page_t *p, int limit)
{
    p->items = json_array();
    p->limit = limit;
    p->count = 0;
    p->last = 0;
    p->more = false;
}

int parley_page_add(parley_page_t *p, json_t *rep, int64_t key)
{
    if (p->count == p->limit) {
        json_decref(rep);
        p->more = true;
        return 1;
    }
    if (rep)
        json_array_append_new(p->items, rep);
    p->last = key;
    p->count++;
    return 0;
}

void parley_page_send(parley_req_t *r, parley_page_t *p, char letter)
{
    parley_resource_send_page(r, p->items, p->more, letter, (uint64_t)p->last);
    p->items = NULL;
}

void parley_page_clear(parley_page_t *p)
{
    json_decref(p->items);
    p->items = NULL;
}
