/*
 * test_auth.c — unit tests for api/auth.c: where a request may come from.
 *
 * Table-driven over (mode, Host, Origin): in local mode only loopback Host
 * names are served (else 421) and only the server's own origin or one
 * named by --allow-origin may call (else 403), the allowed origin being
 * echoed for CORS; with an admin key any host and origin are served with
 * CORS "*". Also the loopback Host parser on its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/auth.h"

static void auth_host_is_loopback_table(void **state)
{
    (void)state;
    static const char *yes[] = {"localhost", "LocalHost",   "localhost:4437",
                                "127.0.0.1", "127.0.0.1:1", "127.255.255.254:65535",
                                "[::1]",     "[::1]:4437"};
    static const char *no[] = {"",
                               "evil.example",
                               "localhost.evil.example",
                               "127.0.0.1.nip.io",
                               "128.0.0.1",
                               "0.0.0.0",
                               "10.0.0.1",
                               "[::2]",
                               "[::1",
                               "[::1]x",
                               "localhost:",
                               "localhost:abc",
                               "localhost:123456",
                               "[::ffff:127.0.0.1]",
                               "127.1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!parley_auth_host_is_loopback(yes[i]))
            fail_msg("%s should be loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (parley_auth_host_is_loopback(no[i]))
            fail_msg("'%s' should not be loopback", no[i]);
}

static const char *const allowed[] = {"http://localhost:5173", "https://app.example"};

static const struct {
    bool local;         /* local mode (else an admin key is set) */
    const char *host;   /* Host header, or NULL */
    const char *origin; /* Origin header, or NULL */
    int status;         /* 0, 421 or 403 */
    const char *allow;  /* expected Access-Control-Allow-Origin ("=": the origin), or NULL */
} origin_cases[] = {
    {true, "127.0.0.1:4437", NULL, 0, NULL},
    {true, NULL, NULL, 0, NULL}, /* HTTP/1.0 without Host */
    {true, "evil.example:4437", NULL, 421, NULL},
    {true, "evil.example", "https://evil.example", 421, NULL},
    {true, "127.0.0.1:4437", "https://evil.example", 403, NULL},
    {true, "127.0.0.1:4437", "null", 403, NULL},
    {true, "127.0.0.1:4437", "http://localhost:4437", 403, NULL}, /* another origin */
    {true, "127.0.0.1:4437", "http://127.0.0.1:4437", 0, NULL},   /* its own */
    {true, "localhost:4437", "http://localhost:4437", 0, NULL},
    {true, "127.0.0.1:4437", "http://localhost:5173", 0, "="},
    {true, "127.0.0.1:4437", "https://APP.example", 0, "="},
    {true, "127.0.0.1:4437", "http://localhost:5174", 403, NULL},
    {false, "parley.example", "https://evil.example", 0, "*"},
    {false, NULL, NULL, 0, "*"},
};

static void auth_origin_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof origin_cases / sizeof origin_cases[0]; i++) {
        parley_config_t cfg;
        parley_config_init(&cfg);
        cfg.allow_origins = allowed;
        cfg.nallow_origins = 2;
        if (!origin_cases[i].local)
            cfg.admin_key = "key";
        const char *allow = "unset", *why = NULL;
        int st =
            parley_auth_origin(&cfg, origin_cases[i].host, origin_cases[i].origin, &allow, &why);
        if (st != origin_cases[i].status)
            fail_msg("case %zu: status %d, expected %d", i, st, origin_cases[i].status);
        if (st)
            assert_non_null(why);
        const char *want = origin_cases[i].allow;
        if (want && strcmp(want, "=") == 0)
            want = origin_cases[i].origin;
        if (want ? !allow || strcmp(allow, want) != 0 : allow != NULL)
            fail_msg("case %zu: allow %s, expected %s", i, allow ? allow : "NULL",
                     want ? want : "NULL");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auth_host_is_loopback_table),
        cmocka_unit_test(auth_origin_table),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
