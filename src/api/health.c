/*
 * health.c — liveness and readiness probes.
 *
 * /healthz answers 200 once the server is up (the store is open before the
 * listener starts); /readyz answers 503 once shutdown has begun, so a load
 * balancer stops sending new work.
 */
#include <string.h>

#include "api/api.h"

void parley_api_health(parley_req_t *r)
{
    const char *m = parley_req_method(r);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        parley_req_add_header(r, "Allow", "GET, HEAD");
        parley_req_error(r, 405, "method_not_allowed", "use GET");
        return;
    }
    parley_req_add_header(r, "Cache-Control", "no-store");
    if (parley_req_shutting_down(r) && strcmp(parley_req_path(r), "/readyz") == 0) {
        static const char body[] = "{\"status\":\"stopping\"}";
        parley_req_respond(r, 503, "application/json", body, sizeof body - 1);
        return;
    }
    static const char body[] = "{\"status\":\"ok\"}";
    parley_req_respond(r, 200, "application/json", body, sizeof body - 1);
}
