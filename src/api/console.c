/*
 * console.c — the web console: GET|HEAD /console (the page), /console/
 * (the same), /console/{file} (its script and style sheet), from the
 * files embedded at build time (console.h); /console/config.json says
 * whether the server wants a token ({"auth":"token"}) or is in local mode
 * ({"auth":"none"}), so the page asks for one before its first request
 * instead of after a 401.
 *
 * No token is needed: the files hold no data. The page asks the API for
 * everything it shows, with the token the user signs in with, under the
 * API's own rules (local mode's Host and Origin checks run before this,
 * in the router). Every answer carries a strict Content-Security-Policy
 * (only this origin's script, style and connections, images also from data:
 * and the blob: object URLs of blob previews; no inline script or
 * style; never framed), and an ETag, so a reload costs a 304.
 */
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/console.h"

/* What a console answer carries beside its body. */
static const char console_csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

bool parley_api_console_is_path(const char *path)
{
    return strcmp(path, "/console") == 0 || strncmp(path, "/console/", 9) == 0;
}

void parley_api_console(parley_req_t *r, const char *path)
{
    const char *m = parley_req_method(r);
    bool head = strcmp(m, "HEAD") == 0;
    if (!head && strcmp(m, "GET") != 0) {
        parley_req_add_header(r, "Allow", "GET, HEAD");
        parley_req_error(r, 405, "method_not_allowed", "the console is read with GET");
        return;
    }
    const char *name = path + 8; /* past "/console" */
    if (*name == '/')
        name++;
    if (!*name)
        name = "index.html";
    parley_req_add_header(r, "Content-Security-Policy", console_csp);
    parley_req_add_header(r, "X-Frame-Options", "DENY");
    parley_req_add_header(r, "Referrer-Policy", "no-referrer");
    if (strcmp(name, "config.json") == 0) {
        parley_req_add_header(r, "Cache-Control", "no-store");
        const char *body = parley_auth_local_mode(parley_api_app(r)->cfg) ? "{\"auth\":\"none\"}"
                                                                          : "{\"auth\":\"token\"}";
        if (head)
            parley_req_respond_empty(r, 200);
        else
            parley_req_respond(r, 200, "application/json", body, strlen(body));
        return;
    }
    const parley_console_asset_t *a = parley_console_assets;
    while (a->name && strcmp(a->name, name) != 0)
        a++;
    if (!a->name) {
        parley_req_error(r, 404, "not_found", "no such console file: the console is at /console");
        return;
    }
    parley_req_add_header(r, "Cache-Control", "no-cache");
    parley_req_add_header(r, "ETag", a->etag);
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && (strstr(inm, a->etag) || strcmp(inm, "*") == 0)) {
        parley_req_respond_empty(r, 304);
        return;
    }
    if (head) {
        parley_req_add_header(r, "Content-Type", a->content_type);
        parley_req_respond_empty(r, 200);
        return;
    }
    parley_req_respond(r, 200, a->content_type, a->data, a->len);
}
