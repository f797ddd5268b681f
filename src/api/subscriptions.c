/*
 * subscriptions.c — the reserved subscription APIs over HTTP
 * (/v1/stream/__ds/..., PROTOCOL.md §6-§7).
 *
 *   GET    /v1/stream/__ds/jwks.json                     public
 *   PUT    /v1/stream/__ds/subscriptions/{id}            admin: create or re-confirm
 *   GET    /v1/stream/__ds/subscriptions/{id}            admin
 *   DELETE /v1/stream/__ds/subscriptions/{id}            admin
 *   POST   /v1/stream/__ds/subscriptions/{id}/streams    admin: add explicit links
 *   DELETE /v1/stream/__ds/subscriptions/{id}/streams/{path}   admin
 *   POST   /v1/stream/__ds/subscriptions/{id}/claim      admin (a worker)
 *   POST   /v1/stream/__ds/subscriptions/{id}/callback   the wake's token
 *   POST   /v1/stream/__ds/subscriptions/{id}/ack        the wake's token
 *   POST   /v1/stream/__ds/subscriptions/{id}/release    the wake's token
 *
 * streams.c routes the "__ds" prefix here before any stream operation, so
 * no application stream can live under it. The HTTP layer lets the JWK Set
 * and the three token routes through without Parley credentials
 * (parley_api_subscriptions_is_public): a webhook receiver holds only the
 * token of its wake, and the core checks that token. Everything else needs
 * admin rights: the admin key, or any request in local mode.
 *
 * This file parses and normalizes bodies (paths lose leading and trailing
 * '/', explicit streams are sorted and made unique, the webhook URL is
 * judged by codec/urlpolicy.h) on the connection's thread, hands every
 * change to the writer as a core command through parley_api_write(), and
 * answers after the commit with the protocol's error shape {"error":
 * {"code": "FENCED", "message": ...}}.
 * A body member this server does not know is refused (400 INVALID_REQUEST
 * naming it), as everywhere in Parley.
 *
 * Threads: the connection's thread (the writer runs only the core
 * commands).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/status.h"
#include "api/api.h"
#include "api/params.h"
#include "api/resource.h"
#include "api/write.h"
#include "codec/canonjson.h"
#include "codec/glob.h"
#include "codec/id.h"
#include "core/stream.h"
#include "core/subscription.h"
#include "codec/urlpolicy.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/utf8.h"

#define SUB_PREFIX "/subscriptions/"
#define BODY_DEPTH 16 /* JSON nesting a subscription body may have */

enum sub_op { OP_PUT, OP_DELETE, OP_ADD, OP_REMOVE, OP_CLAIM, OP_REPORT };

/* One subscription write, parsed on the connection's thread. */
typedef struct sub_write {
    enum sub_op op;                         /* what to do */
    char id[PARLEY_ROW_ID_MAX + 1];         /* the subscription */
    char root_url[PARLEY_SUB_ROOT_MAX + 1]; /* the stream root as the caller sees it */
    const parley_keyring_t *kr;             /* the server's keys (borrowed) */
    json_t *body;                           /* the parsed body (owned) */
    char **owned;                           /* normalized strings (owned) */
    size_t nowned;                          /* entries in owned */
    const char **paths;                     /* explicit streams (into owned) */
    size_t npaths;                          /* entries in paths */
    parley_sub_spec_t spec;                 /* OP_PUT: the configuration */
    char path[PARLEY_PATH_MAX + 1];         /* OP_REMOVE: the stream */
    char worker[PARLEY_OWNER_MAX + 1];      /* OP_CLAIM: the worker's name */
    char *token;                            /* OP_REPORT: the bearer token (owned) */
    parley_sub_action_t action;             /* OP_REPORT: which report */
    parley_sub_ack_t *acks;                 /* OP_REPORT: offsets (strings in body) */
    parley_sub_report_t report;             /* OP_REPORT: the report */
    parley_command_t cmd;                   /* the core command, from the above (submit) */
} sub_write_t;

static void free_write(void *arg)
{
    sub_write_t *sw = arg;
    if (!sw)
        return;
    json_decref(sw->body);
    for (size_t i = 0; i < sw->nowned; i++)
        free(sw->owned[i]);
    free(sw->owned);
    free(sw->paths);
    free(sw->token);
    free(sw->acks);
    free(sw);
}

/* ---- answers ---------------------------------------------------------------- */

/* The protocol's error object: code, message and extra's members. */
static json_t *error_json(const char *code, const char *message, json_t *extra)
{
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (e && json_is_object(extra))
        json_object_update(e, extra);
    return e ? json_pack("{s:o}", "error", e) : NULL;
}

static void fail(parley_req_t *r, int status, const char *code, const char *message)
{
    json_t *err = error_json(code, message, NULL);
    if (err)
        parley_resource_send(r, status, err);
    else
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
    json_decref(err);
}

/* Answer r now with an outcome. */
static void send_outcome(parley_req_t *r, const parley_outcome_t *o)
{
    int status = parley_api_status(o, NULL);
    if (o->refusal) {
        json_t *err = error_json(o->code, o->error, o->body);
        if (err)
            parley_resource_send(r, status, err);
        else
            fail(r, 503, "out_of_memory", "the server is out of memory; retry later");
        json_decref(err);
    } else if (status == 204 || !o->body) {
        parley_req_respond_empty(r, 204);
    } else {
        parley_req_add_header(r, "Cache-Control", "no-store");
        parley_resource_send(r, status, o->body);
    }
}

/* After the commit: the answer for the rule's outcome. */
static void render(void *ctx, const parley_outcome_t *o, parley_reply_t *rp)
{
    (void)ctx;
    int status = parley_api_status(o, NULL);
    if (o->refusal) {
        json_t *err = error_json(o->code, o->error, o->body);
        if (err)
            parley_reply_json(rp, status, err);
        json_decref(err); /* no err: status stays 0, answered 503 */
        return;
    }
    if (status == 204 || !o->body) {
        parley_reply_empty(rp, 204);
        return;
    }
    parley_reply_header(rp, "Cache-Control", "no-store");
    parley_reply_json(rp, status, o->body);
}

/* Hand sw (parsed) to the writer as its core command. */
static void submit(parley_req_t *r, sub_write_t *sw)
{
    static const parley_command_kind_t kinds[] = {
        [OP_PUT] = PARLEY_CMD_SUB_PUT,     [OP_DELETE] = PARLEY_CMD_SUB_DELETE,
        [OP_ADD] = PARLEY_CMD_SUB_ADD,     [OP_REMOVE] = PARLEY_CMD_SUB_REMOVE,
        [OP_CLAIM] = PARLEY_CMD_SUB_CLAIM, [OP_REPORT] = PARLEY_CMD_SUB_REPORT,
    };
    parley_command_sub_t *c = &sw->cmd.u.sub;
    sw->cmd.kind = kinds[sw->op];
    c->id = sw->id;
    c->spec = &sw->spec;
    c->view.root_url = sw->root_url;
    c->view.kid = parley_keyring_kid(sw->kr);
    c->paths = sw->paths;
    c->npaths = sw->npaths;
    c->path = sw->path;
    c->worker = sw->worker;
    c->action = sw->action;
    c->report = sw->report;
    c->kr = sw->kr;
    parley_api_write(r, &sw->cmd, render, sw, free_write);
}

/* ---- parsing ------------------------------------------------------------------ */

/* The stream root URL as clients see it: --public-url + /v1/stream when
 * set, else http://<Host>/v1/stream (a Host that is not a plain
 * host[:port] is replaced by "localhost"). */
static void root_url(parley_req_t *r, char *out, size_t cap)
{
    const char *public_url = parley_api_app(r)->cfg->public_url;
    if (public_url) {
        snprintf(out, cap, "%s/v1/stream", public_url);
        return;
    }
    const char *host = parley_req_header(r, "Host");
    bool ok = host && *host && strlen(host) < 256;
    for (const char *c = host; ok && *c; c++)
        ok = isalnum((unsigned char)*c) || strchr(".-:[]_", *c);
    snprintf(out, cap, "http://%s/v1/stream", ok ? host : "localhost");
}

static sub_write_t *new_write(parley_req_t *r, enum sub_op op, const char *id)
{
    sub_write_t *sw = calloc(1, sizeof *sw);
    if (!sw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return NULL;
    }
    sw->op = op;
    snprintf(sw->id, sizeof sw->id, "%s", id);
    root_url(r, sw->root_url, sizeof sw->root_url);
    sw->kr = parley_api_app(r)->keyring;
    return sw;
}

/* Keep s (malloc'd) with the write. */
static const char *keep(sub_write_t *sw, char *s)
{
    if (!s)
        return NULL;
    char **nv = realloc(sw->owned, (sw->nowned + 1) * sizeof *nv);
    if (!nv) {
        free(s);
        return NULL;
    }
    sw->owned = nv;
    sw->owned[sw->nowned++] = s;
    return s;
}

/* Parse the body as one JSON object into sw->body. 0, or PARLEY_EINVAL
 * (PARLEY_ENOMEM) after answering. */
static int parse_body(parley_req_t *r, sub_write_t *sw, bool optional)
{
    size_t len;
    const char *body = parley_req_body(r, &len);
    const char *why = NULL;
    if (len == 0 && optional) {
        sw->body = json_object();
        return sw->body ? 0
                        : (fail(r, 503, "out_of_memory", "out of memory; retry"), PARLEY_ENOMEM);
    }
    if (len == 0 || parley_canonjson_parse(body, len, BODY_DEPTH, &sw->body, &why) ||
        !json_is_object(sw->body)) {
        char msg[200];
        snprintf(msg, sizeof msg, "the body must be one JSON object%s%s", why ? ": " : "",
                 why ? why : "");
        fail(r, 400, "INVALID_REQUEST", msg);
        return PARLEY_EINVAL;
    }
    return 0;
}

/* Refuse members of obj not in allowed (NULL-terminated). 0, or
 * PARLEY_EINVAL after answering. */
static int only(parley_req_t *r, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(key, *a) == 0;
        if (!known) {
            /* At most 64 bytes of the name, cut on a character boundary
             * (a cut character would make the message invalid JSON text). */
            char msg[200];
            int keep = (int)parley_utf8_prefix(key, strlen(key), 64);
            snprintf(msg, sizeof msg, "unknown member \"%.*s\"", keep, key);
            fail(r, 400, "INVALID_REQUEST", msg);
            return PARLEY_EINVAL;
        }
    }
    return 0;
}

/*
 * A stream path from a body: leading and trailing '/' dropped, then the
 * rules of a stream path; Parley's own and the reserved paths are refused.
 * glob: a pattern (codec/glob.h) instead. Returns the normalized copy (kept
 * with the write), or NULL after answering.
 */
static const char *body_path(parley_req_t *r, sub_write_t *sw, const char *what, json_t *v,
                             bool glob)
{
    const char *why = NULL;
    char msg[300];
    if (!json_is_string(v)) {
        snprintf(msg, sizeof msg, "%s must be a string", what);
        fail(r, 400, "INVALID_REQUEST", msg);
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    while (*s == '/')
        s++, n--;
    while (n && s[n - 1] == '/')
        n--;
    char *p = strndup(s, n);
    if (!p) {
        fail(r, 503, "out_of_memory", "out of memory; retry");
        return NULL;
    }
    bool ok = glob ? parley_glob_is_valid(p, &why) : parley_param_stream_path(p, &why);
    if (ok &&
        (parley_stream_path_reserved(p) || strcmp(p, "__ds") == 0 || strncmp(p, "__ds/", 5) == 0)) {
        ok = false;
        why = "paths starting with _parley/ or __ds/ are reserved";
    }
    if (!ok) {
        snprintf(msg, sizeof msg, "%s: %s", what, why);
        free(p);
        fail(r, 400, "INVALID_REQUEST", msg);
        return NULL;
    }
    const char *kept = keep(sw, p);
    if (!kept)
        fail(r, 503, "out_of_memory", "out of memory; retry");
    return kept;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* streams[] into sw->paths, sorted and unique. 0, or PARLEY_EINVAL
 * (PARLEY_ENOMEM) after answering. */
static int body_streams(parley_req_t *r, sub_write_t *sw, json_t *arr, bool required)
{
    size_t i;
    json_t *v;
    if (!arr && !required)
        return 0;
    if (!json_is_array(arr) || (required && json_array_size(arr) == 0)) {
        fail(r, 400, "INVALID_REQUEST", "streams must be an array of stream paths");
        return PARLEY_EINVAL;
    }
    if (json_array_size(arr) > PARLEY_SUB_MAX_STREAMS) {
        fail(r, 400, "INVALID_REQUEST", "streams may name at most 1000 streams per request");
        return PARLEY_EINVAL;
    }
    sw->paths = calloc(json_array_size(arr) + 1, sizeof *sw->paths);
    if (!sw->paths) {
        fail(r, 503, "out_of_memory", "out of memory; retry");
        return PARLEY_ENOMEM;
    }
    json_array_foreach(arr, i, v)
    {
        if (!(sw->paths[i] = body_path(r, sw, "streams[]", v, false)))
            return PARLEY_EINVAL; /* answered (400, or 503 out of memory) */
    }
    size_t n = json_array_size(arr), u = 0;
    qsort(sw->paths, n, sizeof *sw->paths, cmp_str);
    for (i = 0; i < n; i++)
        if (u == 0 || strcmp(sw->paths[u - 1], sw->paths[i]) != 0)
            sw->paths[u++] = sw->paths[i];
    sw->npaths = u;
    return 0;
}

/* ---- handlers ---------------------------------------------------------------- */

static const char *const put_members[] = {"type",        "pattern",      "streams",     "webhook",
                                          "wake_stream", "lease_ttl_ms", "description", NULL};

static void handle_put(parley_req_t *r, const char *id)
{
    sub_write_t *sw = new_write(r, OP_PUT, id);
    if (!sw)
        return;
    parley_sub_spec_t *sp = &sw->spec;
    json_t *b, *v;
    sp->pattern = sp->webhook_url = sp->wake_stream = sp->description = "";
    sp->lease_ttl_ms = PARLEY_SUB_LEASE_DEFAULT_MS;
    if (parse_body(r, sw, false) || only(r, (b = sw->body), put_members))
        goto out_free;
    v = json_object_get(b, "type");
    if (!json_is_string(v) || (strcmp(json_string_value(v), "webhook") != 0 &&
                               strcmp(json_string_value(v), "pull-wake") != 0)) {
        fail(r, 400, "INVALID_REQUEST", "type must be \"webhook\" or \"pull-wake\"");
        goto out_free;
    }
    sp->type = json_string_value(v);
    bool hook = strcmp(sp->type, "webhook") == 0;
    if ((v = json_object_get(b, "pattern")) && !json_is_null(v) &&
        !(sp->pattern = body_path(r, sw, "pattern", v, true)))
        goto out_free;
    if (body_streams(r, sw, json_object_get(b, "streams"), false))
        goto out_free;
    sp->streams = sw->paths;
    sp->nstreams = sw->npaths;
    if (!sp->pattern[0] && sp->nstreams == 0) {
        fail(r, 400, "INVALID_REQUEST", "give a pattern, streams, or both");
        goto out_free;
    }
    v = json_object_get(b, "webhook");
    if (hook) {
        const char *why = NULL;
        bool dev;
        json_t *url = json_object_get(v, "url");
        if (!json_is_object(v) || json_object_size(v) != 1 || !json_is_string(url)) {
            fail(r, 400, "INVALID_REQUEST", "webhook subscriptions need webhook: {\"url\": ...}");
            goto out_free;
        }
        int rc = parley_urlpolicy_check(json_string_value(url), &dev, &why);
        if (rc) {
            fail(r, rc == PARLEY_EINVAL ? 400 : 503,
                 rc == PARLEY_EINVAL ? "WEBHOOK_URL_REJECTED" : "out_of_memory",
                 rc == PARLEY_EINVAL ? why : "out of memory; retry");
            goto out_free;
        }
        sp->webhook_url = json_string_value(url);
    } else if (v && !json_is_null(v)) {
        fail(r, 400, "INVALID_REQUEST", "webhook is for webhook subscriptions");
        goto out_free;
    }
    v = json_object_get(b, "wake_stream");
    if (!hook) {
        if (!(sp->wake_stream = body_path(r, sw, "wake_stream", v, false)))
            goto out_free;
    } else if (v && !json_is_null(v)) {
        fail(r, 400, "INVALID_REQUEST", "wake_stream is for pull-wake subscriptions");
        goto out_free;
    }
    for (size_t i = 0; i < sp->nstreams; i++)
        if (!hook && strcmp(sp->streams[i], sp->wake_stream) == 0) {
            fail(r, 400, "INVALID_REQUEST",
                 "a subscription cannot link its own wake stream: its wake events would wake it");
            goto out_free;
        }
    if ((v = json_object_get(b, "lease_ttl_ms")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < PARLEY_SUB_LEASE_MIN_MS ||
            json_integer_value(v) > PARLEY_SUB_LEASE_MAX_MS) {
            fail(r, 400, "INVALID_REQUEST", "lease_ttl_ms must be an integer from 1000 to 600000");
            goto out_free;
        }
        sp->lease_ttl_ms = (int64_t)json_integer_value(v);
    }
    if ((v = json_object_get(b, "description")) && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) > PARLEY_SUB_DESC_MAX) {
            fail(r, 400, "INVALID_REQUEST", "description must be a string of at most 1024 bytes");
            goto out_free;
        }
        sp->description = json_string_value(v);
    }
    submit(r, sw);
    return;
out_free:
    free_write(sw);
}

static void handle_get(parley_req_t *r, const char *id)
{
    char root[PARLEY_SUB_ROOT_MAX + 1];
    parley_outcome_t o;
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_outcome_init(&o);
    root_url(r, root, sizeof root);
    parley_sub_view_t view = {root, parley_keyring_kid(parley_api_app(r)->keyring)};
    int rc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
    if (rc) {
        parley_api_store_failed(r, rc, "the subscription");
        return;
    }
    rc = parley_subscription_get(db, id, &view, &o);
    parley_db_commit(db);
    if (rc)
        parley_api_store_failed(r, rc, "the subscription");
    else
        send_outcome(r, &o);
    parley_outcome_clear(&o);
}

static void handle_add(parley_req_t *r, const char *id)
{
    static const char *const members[] = {"streams", NULL};
    sub_write_t *sw = new_write(r, OP_ADD, id);
    if (!sw)
        return;
    if (parse_body(r, sw, false) || only(r, sw->body, members) ||
        body_streams(r, sw, json_object_get(sw->body, "streams"), true)) {
        free_write(sw);
        return;
    }
    submit(r, sw);
}

static void handle_remove(parley_req_t *r, const char *id, const char *path)
{
    sub_write_t *sw = new_write(r, OP_REMOVE, id);
    if (!sw)
        return;
    json_t *p = json_string(path);
    const char *norm = p ? body_path(r, sw, "stream path", p, false) : NULL;
    json_decref(p);
    if (!norm) {
        if (!p)
            fail(r, 503, "out_of_memory", "out of memory; retry");
        free_write(sw);
        return;
    }
    snprintf(sw->path, sizeof sw->path, "%s", norm);
    submit(r, sw);
}

static void handle_claim(parley_req_t *r, const char *id)
{
    static const char *const members[] = {"worker", NULL};
    sub_write_t *sw = new_write(r, OP_CLAIM, id);
    if (!sw)
        return;
    json_t *v;
    if (parse_body(r, sw, false) || only(r, sw->body, members))
        goto out_free;
    v = json_object_get(sw->body, "worker");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > PARLEY_OWNER_MAX) {
        fail(r, 400, "INVALID_REQUEST", "worker must be a string of 1 to 255 bytes");
        goto out_free;
    }
    snprintf(sw->worker, sizeof sw->worker, "%s", json_string_value(v));
    submit(r, sw);
    return;
out_free:
    free_write(sw);
}

static void handle_report(parley_req_t *r, const char *id, parley_sub_action_t action)
{
    static const char *const members[] = {"wake_id", "generation", "acks", "done", NULL};
    static const char *const ack_members[] = {"stream", "path", "offset", NULL};
    sub_write_t *sw = new_write(r, OP_REPORT, id);
    if (!sw)
        return;
    parley_sub_report_t *rep = &sw->report;
    const char *auth = parley_req_header(r, "Authorization");
    json_t *v, *acks;
    size_t i;
    sw->action = action;
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        auth += 7;
        while (*auth == ' ')
            auth++;
        if (*auth && !(sw->token = strdup(auth))) {
            fail(r, 503, "out_of_memory", "out of memory; retry");
            goto out_free;
        }
    }
    if (!sw->token) {
        fail(r, 401, "TOKEN_INVALID", "send the wake's token as Authorization: Bearer <token>");
        goto out_free;
    }
    rep->token = sw->token;
    if (parse_body(r, sw, true) || only(r, sw->body, members))
        goto out_free;
    if ((v = json_object_get(sw->body, "wake_id")) && !json_is_string(v)) {
        fail(r, 400, "INVALID_REQUEST", "wake_id must be a string");
        goto out_free;
    }
    rep->wake_id = json_string_value(v);
    if ((v = json_object_get(sw->body, "generation")) && !json_is_integer(v)) {
        fail(r, 400, "INVALID_REQUEST", "generation must be an integer");
        goto out_free;
    }
    rep->has_generation = v != NULL;
    rep->generation = v ? (int64_t)json_integer_value(v) : 0;
    if ((v = json_object_get(sw->body, "done")) && !json_is_boolean(v)) {
        fail(r, 400, "INVALID_REQUEST", "done must be true or false");
        goto out_free;
    }
    rep->done = json_is_true(v);
    acks = json_object_get(sw->body, "acks");
    if (acks && action == PARLEY_SUB_RELEASE) {
        fail(r, 400, "INVALID_REQUEST", "release takes no acks; use ack with done: true");
        goto out_free;
    }
    if (acks && (!json_is_array(acks) || json_array_size(acks) > PARLEY_SUB_MAX_STREAMS)) {
        fail(r, 400, "INVALID_REQUEST", "acks must be an array of at most 1000 {stream, offset}");
        goto out_free;
    }
    if (acks && json_array_size(acks)) {
        sw->acks = calloc(json_array_size(acks), sizeof *sw->acks);
        if (!sw->acks) {
            fail(r, 503, "out_of_memory", "out of memory; retry");
            goto out_free;
        }
    }
    json_array_foreach(acks, i, v)
    {
        json_t *stream = json_object_get(v, "stream");
        json_t *off = json_object_get(v, "offset");
        if (!stream)
            stream = json_object_get(v, "path");
        if (!json_is_object(v) || only(r, v, ack_members) < 0) {
            if (!json_is_object(v))
                fail(r, 400, "INVALID_REQUEST", "each ack is {\"stream\": ..., \"offset\": ...}");
            goto out_free;
        }
        if (!json_is_string(off)) {
            fail(r, 400, "INVALID_REQUEST", "each ack needs an offset string");
            goto out_free;
        }
        if (!(sw->acks[i].stream = body_path(r, sw, "acks[].stream", stream, false)))
            goto out_free;
        sw->acks[i].offset = json_string_value(off);
    }
    rep->acks = sw->acks;
    rep->nacks = acks ? json_array_size(acks) : 0;
    submit(r, sw);
    return;
out_free:
    free_write(sw);
}

static void handle_jwks(parley_req_t *r)
{
    const char *m = parley_req_method(r);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        parley_resource_method_not_allowed(r, "GET, HEAD, OPTIONS", NULL);
        return;
    }
    const char *jwks = parley_keyring_jwks(parley_api_app(r)->keyring);
    parley_req_add_header(r, "Cache-Control", "public, max-age=300");
    if (strcmp(m, "HEAD") == 0) {
        parley_req_add_header(r, "Content-Type", "application/jwk-set+json");
        parley_req_respond_empty(r, 200);
        return;
    }
    parley_req_respond(r, 200, "application/jwk-set+json", jwks, strlen(jwks));
}

/* After "/subscriptions/": the id and what follows it ("", "/streams",
 * "/claim", ...). false if the id is not [A-Za-z0-9_-]{1,64}. */
static bool split_id(const char *rest, char *id, const char **tail)
{
    size_t n = strcspn(rest, "/");
    if (n == 0 || n > PARLEY_ROW_ID_MAX)
        return false;
    memcpy(id, rest, n);
    id[n] = '\0';
    *tail = rest + n;
    return parley_id_is_valid_name(id, PARLEY_ROW_ID_MAX);
}

/* Which report a tail names: 0 with *out, or PARLEY_ENOTFOUND. */
static int report_action(const char *tail, parley_sub_action_t *out)
{
    if (strcmp(tail, "/callback") == 0)
        *out = PARLEY_SUB_CALLBACK;
    else if (strcmp(tail, "/ack") == 0)
        *out = PARLEY_SUB_ACK;
    else if (strcmp(tail, "/release") == 0)
        *out = PARLEY_SUB_RELEASE;
    else
        return PARLEY_ENOTFOUND;
    return 0;
}

bool parley_api_subscriptions_is_public(const char *path)
{
    static const char root[] = "/v1/stream/__ds";
    char id[PARLEY_ROW_ID_MAX + 1];
    const char *tail;
    if (strncmp(path, root, sizeof root - 1) != 0)
        return false;
    path += sizeof root - 1;
    if (strcmp(path, "/jwks.json") == 0)
        return true;
    if (strncmp(path, SUB_PREFIX, sizeof SUB_PREFIX - 1) != 0)
        return false;
    parley_sub_action_t action;
    return split_id(path + sizeof SUB_PREFIX - 1, id, &tail) && report_action(tail, &action) == 0;
}

void parley_api_subscriptions(parley_req_t *r, const char *rest)
{
    const char *m = parley_req_method(r);
    char id[PARLEY_ROW_ID_MAX + 1];
    const char *tail;
    if (strcmp(rest, "/jwks.json") == 0) {
        handle_jwks(r);
        return;
    }
    if (strncmp(rest, SUB_PREFIX, sizeof SUB_PREFIX - 1) != 0 ||
        !split_id(rest + sizeof SUB_PREFIX - 1, id, &tail)) {
        fail(r, 404, "NOT_FOUND",
             "no such control route: /v1/stream/__ds/ holds jwks.json and "
             "subscriptions/{id} with ids of 1 to 64 of A-Z a-z 0-9 _ -");
        return;
    }
    parley_sub_action_t action;
    if (report_action(tail, &action) == 0) {
        if (strcmp(m, "POST") != 0)
            parley_resource_method_not_allowed(r, "POST, OPTIONS", NULL);
        else
            handle_report(r, id, action);
        return;
    }
    if (!parley_req_is_admin(r)) {
        fail(r, 403, "FORBIDDEN", "subscriptions are managed with the admin key");
        return;
    }
    if (*tail == '\0') {
        if (strcmp(m, "PUT") == 0)
            handle_put(r, id);
        else if (strcmp(m, "GET") == 0)
            handle_get(r, id);
        else if (strcmp(m, "DELETE") == 0) {
            sub_write_t *sw = new_write(r, OP_DELETE, id);
            if (sw)
                submit(r, sw);
        } else
            parley_resource_method_not_allowed(r, "GET, PUT, DELETE, OPTIONS", NULL);
    } else if (strcmp(tail, "/streams") == 0) {
        if (strcmp(m, "POST") == 0)
            handle_add(r, id);
        else
            parley_resource_method_not_allowed(r, "POST, OPTIONS", NULL);
    } else if (strncmp(tail, "/streams/", 9) == 0 && tail[9]) {
        if (strcmp(m, "DELETE") == 0)
            handle_remove(r, id, tail + 9);
        else
            parley_resource_method_not_allowed(r, "DELETE, OPTIONS", NULL);
    } else if (strcmp(tail, "/claim") == 0) {
        if (strcmp(m, "POST") == 0)
            handle_claim(r, id);
        else
            parley_resource_method_not_allowed(r, "POST, OPTIONS", NULL);
    } else {
        fail(r, 404, "NOT_FOUND", "no such subscription route");
    }
}
