/*
 * router.c — which handler answers a request: where it may come from
 * (local mode: loopback Host, no foreign Origin: 421/403; see auth.h),
 * CORS preflight, body limits (413), authentication (401), rate limits
 * (429), then the route table.
 *
 *   OPTIONS *                       CORS preflight (no token needed)
 *   /healthz, /readyz               probes (no token)
 *   /metrics                        Prometheus text (admin key or metrics token)
 *   /v1/stream/__ds/...             Durable Streams subscriptions
 *   /v1/stream/{path}               Durable Streams
 *   /v1/events                      the change feed
 *   /v1/documents/{collection}[/id] versioned documents
 *   /v1/conversations[/...]         conversations, messages, their sessions
 *   /v1/sessions/...                sessions: worker actions, token streams
 *   /v1/snapshots[/...]             snapshots (one may be read without a token)
 *   /v1/search                      search the caller's titles and messages
 *   /v1/users/{from}/transfer       move a user's data to another (admin)
 *   /console[/file]                 the web console's files (no token: they hold no data)
 *
 * Runs on an HTTP worker thread for each complete request. arg is the
 * application (parley_app_t, api/app.h); the router attaches it to the
 * request, where every handler finds it with parley_api_app().
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/metrics.h"
#include "api/ratelimit.h"
#include "api/resource.h"
#include "parley/parley.h"

size_t parley_api_body_limit(const char *path, void *arg)
{
    const parley_app_t *app = arg;
    const parley_config_t *cfg = app->cfg;
    if (strncmp(path, "/v1/stream/__ds/", 16) == 0)
        return cfg->max_json_bytes; /* subscription control bodies are JSON */
    if (strncmp(path, "/v1/stream/", 11) == 0)
        return cfg->max_append_bytes;
    /* A session's token stream is a stream: appends take the stream limit. */
    size_t n = strlen(path);
    if (strncmp(path, "/v1/sessions/", 13) == 0 && n > 20 && strcmp(path + n - 7, "/stream") == 0)
        return cfg->max_append_bytes;
    /* --max-json-bytes bounds the content (a document's data, a message's
     * content, checked where it is parsed); the body may also hold the
     * envelope around it. */
    return cfg->max_json_bytes + PARLEY_RESOURCE_ENVELOPE_BYTES;
}

/* ---- route patterns (the bounded label of /metrics) ---------------------- */

static const char *const route_patterns[PARLEY_API_ROUTES] = {
    "other",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/stream/__ds/jwks.json",
    "/v1/stream/__ds/subscriptions/{id}",
    "/v1/stream/__ds/subscriptions/{id}/{action}",
    "/v1/stream/{path}",
    "/v1/events",
    "/v1/documents/{collection}",
    "/v1/documents/{collection}/{id}",
    "/v1/conversations",
    "/v1/conversations/{id}",
    "/v1/conversations/{id}/messages",
    "/v1/conversations/{id}/stream",
    "/v1/conversations/{id}/sessions",
    "/v1/conversations/{id}/sessions/latest",
    "/v1/sessions/claim",
    "/v1/sessions/{id}",
    "/v1/sessions/{id}/stream",
    "/v1/sessions/{id}/{action}",
    "/v1/snapshots",
    "/v1/snapshots/{id}",
    "/v1/snapshots/{id}/messages",
    "/v1/blobs",
    "/v1/blobs/{id}",
    "/v1/blobs/{id}/url",
    "/v1/snapshots/{id}/blobs/{blob}",
    "/v1/search",
    "/v1/users/{id}/transfer",
};

/* Segments of s ("a/b/c": 3; "": 0). */
static int nsegs(const char *s)
{
    if (!*s)
        return 0;
    int n = 1;
    for (; *s; s++)
        n += *s == '/';
    return n;
}

/* Whether segment k (from 0) of s is word. */
static bool seg_is(const char *s, int k, const char *word)
{
    for (; k > 0 && s; k--) {
        s = strchr(s, '/');
        if (s)
            s++;
    }
    if (!s)
        return false;
    size_t n = strcspn(s, "/");
    return strlen(word) == n && strncmp(s, word, n) == 0;
}

int parley_api_route_index(const char *path)
{
    static const char *const fixed[] = {"/healthz", "/readyz", "/metrics"};
    for (int i = 0; i < 3; i++)
        if (strcmp(path, fixed[i]) == 0)
            return 1 + i;
    if (strncmp(path, "/v1/stream/", 11) == 0) {
        const char *p = path + 11;
        if (strncmp(p, "__ds", 4) != 0 || (p[4] != '\0' && p[4] != '/'))
            return 7;
        if (strcmp(p + 4, "/jwks.json") == 0)
            return 4;
        if (strncmp(p + 4, "/subscriptions/", 15) == 0) {
            int n = nsegs(p + 19);
            return n == 1 ? 5 : n >= 2 ? 6 : 0;
        }
        return 0;
    }
    if (strcmp(path, "/v1/events") == 0)
        return 8;
    if (strncmp(path, "/v1/documents/", 14) == 0) {
        int n = nsegs(path + 14);
        return n == 1 ? 9 : n == 2 ? 10 : 0;
    }
    if (strncmp(path, "/v1/conversations", 17) == 0) {
        const char *p = path + 17;
        if (!*p)
            return 11;
        if (*p != '/')
            return 0;
        int n = nsegs(++p);
        if (n == 1)
            return 12;
        if (n == 2)
            return seg_is(p, 1, "messages")   ? 13
                   : seg_is(p, 1, "stream")   ? 14
                   : seg_is(p, 1, "sessions") ? 15
                                              : 0;
        return n == 3 && seg_is(p, 1, "sessions") && seg_is(p, 2, "latest") ? 16 : 0;
    }
    if (strncmp(path, "/v1/sessions/", 13) == 0) {
        const char *p = path + 13;
        int n = nsegs(p);
        if (n == 1)
            return strcmp(p, "claim") == 0 ? 17 : 18;
        if (n == 2)
            return seg_is(p, 1, "stream") ? 19 : 20;
        return 0;
    }
    if (strncmp(path, "/v1/snapshots", 13) == 0) {
        const char *p = path + 13;
        if (!*p)
            return 21;
        if (*p != '/')
            return 0;
        int n = nsegs(++p);
        if (n == 3 && seg_is(p, 1, "blobs"))
            return 27;
        return n == 1 ? 22 : n == 2 && seg_is(p, 1, "messages") ? 23 : 0;
    }
    if (strncmp(path, "/v1/blobs", 9) == 0) {
        const char *p = path + 9;
        if (!*p)
            return 24;
        if (*p != '/')
            return 0;
        int n = nsegs(++p);
        return n == 1 ? 25 : n == 2 && seg_is(p, 1, "url") ? 26 : 0;
    }
    if (strcmp(path, "/v1/search") == 0)
        return 28;
    if (strncmp(path, "/v1/users/", 10) == 0)
        return 29;
    return 0;
}

const char *parley_api_route_pattern(int index)
{
    return index > 0 && index < PARLEY_API_ROUTES ? route_patterns[index] : route_patterns[0];
}

/* ---- routing -------------------------------------------------------------- */

/* Routes anyone may call without a token. */
static bool is_public(const char *path)
{
    return strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0;
}

void parley_api_route(parley_req_t *r, void *arg)
{
    r->app = arg;
    const parley_config_t *cfg = r->app->cfg;
    const char *path = parley_req_path(r);
    const char *method = parley_req_method(r);
    const char *allow = NULL, *why = NULL;
    int refused = parley_auth_origin(cfg, parley_req_header(r, "Host"),
                                     parley_req_header(r, "Origin"), &allow, &why);
    parley_req_set_allow_origin(r, allow);
    if (refused) {
        parley_req_error(r, refused,
                         refused == 421 ? "misdirected_request" : "cross_origin_refused", why);
        return;
    }
    if (strcasecmp(method, "OPTIONS") == 0) {
        /* CORS preflight, for any path. */
        const char *req_hdrs = parley_req_header(r, "Access-Control-Request-Headers");
        parley_req_add_header(r, "Access-Control-Allow-Methods",
                              "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        parley_req_add_header(r, "Access-Control-Allow-Headers",
                              req_hdrs && *req_hdrs ? req_hdrs : "*");
        parley_req_add_header(r, "Access-Control-Max-Age", "86400");
        parley_req_respond_empty(r, 204);
        return;
    }
    if (parley_req_body_too_big(r)) {
        char msg[160];
        size_t limit = parley_api_body_limit(path, arg);
        snprintf(msg, sizeof msg, "request body is over the limit of %zu bytes", limit);
        json_t *err = json_pack("{s:{s:s, s:s, s:{s:I}}}", "error", "code", "payload_too_large",
                                "message", msg, "details", "limit_bytes", (json_int_t)limit);
        char *text = err ? json_dumps(err, JSON_COMPACT) : NULL;
        json_decref(err);
        parley_req_respond(r, 413, "application/json", text ? text : "{}", text ? strlen(text) : 2);
        free(text);
        return;
    }
    if (parley_api_console_is_path(path)) {
        parley_api_console(r, path);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        /* The admin key or the metrics token (open in local mode); never
         * rate limited, so a scrape cannot be refused under load. */
        const char *who = NULL;
        if (parley_auth_metrics(cfg, parley_req_header(r, "Authorization"), &who, &why) != 0) {
            parley_req_add_header(r, "WWW-Authenticate", "Bearer");
            parley_req_error(r, 401, "unauthorized", why);
            return;
        }
        if (parley_req_set_caller(r, who, false)) { /* for the access log; reaches nothing else */
            parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
            return;
        }
        parley_api_metrics(r);
        return;
    }
    /* GET of one snapshot may come without a token (a shared link); the
     * handler decides what an anonymous caller may see. A token that is
     * sent is always checked. */
    bool anonymous = (parley_api_snapshots_is_anonymous_read(method, path) ||
                      parley_api_blobs_is_anonymous_read(r, method, path)) &&
                     !parley_req_header(r, "Authorization") && !parley_auth_local_mode(cfg);
    /* The JWK Set is public; a subscription callback, ack or release
     * carries the wake's own token instead of Parley credentials, and its
     * handler checks that token. */
    if (!is_public(path) && !anonymous && !parley_api_subscriptions_is_public(path)) {
        parley_principal_t who;
        if (parley_auth_check(cfg, parley_req_header(r, "Authorization"),
                              parley_req_header(r, "Parley-User"), &who, &why) != 0) {
            parley_req_add_header(r, "WWW-Authenticate", "Bearer");
            parley_req_error(r, 401, "unauthorized", why);
            return;
        }
        if (parley_req_set_caller(r, who.user, who.admin)) {
            parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
            return;
        }
    }
    if (parley_api_ratelimit_refuse(r)) /* 429: over a rate limit */
        return;
    if (strncmp(path, "/v1/stream/", 11) == 0) {
        parley_api_stream(r, path + 11);
        return;
    }
    if (strcmp(path, "/v1/events") == 0) {
        parley_api_events(r);
        return;
    }
    if (strncmp(path, "/v1/documents/", 14) == 0) {
        parley_api_documents(r, path + 14);
        return;
    }
    if (strncmp(path, "/v1/conversations", 17) == 0 && (path[17] == '\0' || path[17] == '/')) {
        parley_api_conversations(r, path + 17);
        return;
    }
    if (strncmp(path, "/v1/sessions/", 13) == 0) {
        parley_api_sessions(r, path + 12);
        return;
    }
    if (parley_api_route_index(path) == 27) { /* /v1/snapshots/{sid}/blobs/{id} */
        char sid[PARLEY_ROW_ID_MAX + 1] = "";
        const char *p = path + 14;
        size_t n = strcspn(p, "/");
        if (n < sizeof sid)
            memcpy(sid, p, n), sid[n] = '\0';
        parley_api_snapshot_blob(r, sid, p + n + 7);
        return;
    }
    if (strncmp(path, "/v1/blobs", 9) == 0 && (path[9] == '\0' || path[9] == '/')) {
        parley_api_blobs(r, path + 9);
        return;
    }
    if (strncmp(path, "/v1/snapshots", 13) == 0 && (path[13] == '\0' || path[13] == '/')) {
        parley_api_snapshots(r, path + 13);
        return;
    }
    if (strcmp(path, "/v1/search") == 0) {
        parley_api_search(r);
        return;
    }
    if (strncmp(path, "/v1/users/", 10) == 0) {
        parley_api_users(r, path + 10);
        return;
    }
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
        parley_api_health(r);
        return;
    }
    parley_req_error(r, 404, "not_found",
                     "no such route: see /v1/conversations, /v1/sessions, /v1/snapshots, "
                     "/v1/documents/{collection}, /v1/stream/{path}, /v1/events");
}
