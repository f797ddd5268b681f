/*
 * test_metrics.c — unit tests for the route patterns of api/metrics.h
 * (parley_api_route_index in api/router.c).
 *
 * The route label of /metrics must be the pattern, never the path: every
 * path of a route maps to its pattern, whatever ids it carries, and any
 * other path maps to "other", so clients cannot grow the label set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/metrics.h"

static void metrics_route_index_maps_paths_to_patterns(void **state)
{
    (void)state;
    static const struct {
        const char *path;    /* a request path */
        const char *pattern; /* its label */
    } cases[] = {
        {"/healthz", "/healthz"},
        {"/readyz", "/readyz"},
        {"/metrics", "/metrics"},
        {"/v1/stream/a", "/v1/stream/{path}"},
        {"/v1/stream/a/b/c", "/v1/stream/{path}"},
        {"/v1/stream/__dsx", "/v1/stream/{path}"},
        {"/v1/stream/__ds/jwks.json", "/v1/stream/__ds/jwks.json"},
        {"/v1/stream/__ds/subscriptions/s1", "/v1/stream/__ds/subscriptions/{id}"},
        {"/v1/stream/__ds/subscriptions/s1/callback",
         "/v1/stream/__ds/subscriptions/{id}/{action}"},
        {"/v1/stream/__ds/subscriptions/s1/streams/a%2Fb",
         "/v1/stream/__ds/subscriptions/{id}/{action}"},
        {"/v1/stream/__ds/other", "other"},
        {"/v1/events", "/v1/events"},
        {"/v1/documents/settings", "/v1/documents/{collection}"},
        {"/v1/documents/settings/u1", "/v1/documents/{collection}/{id}"},
        {"/v1/documents/a/b/c", "other"},
        {"/v1/conversations", "/v1/conversations"},
        {"/v1/conversations/C1", "/v1/conversations/{id}"},
        {"/v1/conversations/C1/messages", "/v1/conversations/{id}/messages"},
        {"/v1/conversations/C1/stream", "/v1/conversations/{id}/stream"},
        {"/v1/conversations/C1/sessions", "/v1/conversations/{id}/sessions"},
        {"/v1/conversations/C1/sessions/latest", "/v1/conversations/{id}/sessions/latest"},
        {"/v1/conversations/C1/bogus", "other"},
        {"/v1/conversationsX", "other"},
        {"/v1/sessions/claim", "/v1/sessions/claim"},
        {"/v1/sessions/S1", "/v1/sessions/{id}"},
        {"/v1/sessions/S1/stream", "/v1/sessions/{id}/stream"},
        {"/v1/sessions/S1/complete", "/v1/sessions/{id}/{action}"},
        {"/v1/snapshots", "/v1/snapshots"},
        {"/v1/snapshots/N1", "/v1/snapshots/{id}"},
        {"/v1/snapshots/N1/messages", "/v1/snapshots/{id}/messages"},
        {"/v1/snapshots/N1/x", "other"},
        {"/", "other"},
        {"", "other"},
        {"/favicon.ico", "other"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int k = parley_api_route_index(cases[i].path);
        assert_true(k >= 0 && k < PARLEY_API_ROUTES);
        assert_string_equal(parley_api_route_pattern(k), cases[i].pattern);
    }
    assert_string_equal(parley_api_route_pattern(-1), "other");
    assert_string_equal(parley_api_route_pattern(PARLEY_API_ROUTES), "other");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_route_index_maps_paths_to_patterns),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
