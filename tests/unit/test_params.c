/*
 * test_params.c — unit tests for api/params.c.
 *
 * Covers the strict parsers of header and query values:
 * parley_param_decimal (^(0|[1-9][0-9]*)$ up to a maximum, no signs,
 * spaces, fractions or exponents, no silent wrap-around),
 * parley_param_true, and parley_param_stream_path (length limits, empty,
 * "." and ".." segments, control characters, valid nested paths).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/params.h"
#include "parley/parley.h"
#include "store/store.h"

static void params_decimal_accepted_canonical(void **state)
{
    static const struct {
        const char *in;
        uint64_t max, want;
    } cases[] = {
        {"0", 0, 0},
        {"0", 100, 0},
        {"1", 1, 1},
        {"60", 60, 60},
        {"60", 3600, 60},
        {"3600", 3600, 3600},
        {"9999999999", 9999999999ULL, 9999999999ULL},
        {"9999999999999999", 9999999999999999ULL, 9999999999999999ULL},
        {"9223372036854775807", UINT64_MAX / 2, UINT64_MAX / 2},
        {"9999999999999999999", UINT64_MAX, 9999999999999999999ULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 4242;
        int rc = parley_param_decimal(cases[i].in, cases[i].max, &v);
        if (rc != 0)
            fail_msg("\"%s\" (max %llu) rejected: %d", cases[i].in,
                     (unsigned long long)cases[i].max, rc);
        assert_int_equal(v, cases[i].want);
    }
}

static void params_decimal_rejected_malformed_or_over_max(void **state)
{
    static const struct {
        const char *in;
        uint64_t max;
    } cases[] = {
        {"00060", 3600},
        {"060", 3600},
        {"00", 3600},
        {"+60", 3600},
        {"-60", 3600},
        {"-0", 3600},
        {"60.5", 3600},
        {"60.", 3600},
        {"1e3", 3600},
        {"1E3", 3600},
        {"0x10", 3600},
        {"", 3600},
        {" 1", 3600},
        {"1 ", 3600},
        {"1\t", 3600},
        {"\n1", 3600},
        {"1,000", 3600},
        {"1_000", 3600},
        {"６０", 3600}, /* full-width digits */
        {"abc", 3600},
        {"61", 60},
        {"1", 0},
        {"3601", 3600},
        {"10000000000", 9999999999ULL},
        {"9223372036854775808", UINT64_MAX / 2},
        {"18446744073709551616", UINT64_MAX}, /* 2^64: must not wrap to 0 */
        {"18446744073709551617", UINT64_MAX}, /* 2^64 + 1: must not wrap to 1 */
        {"36893488147419103232", UINT64_MAX}, /* 2^65 */
        {"99999999999999999999", UINT64_MAX},
        {"100000000000000000000000000000", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 4242;
        int rc = parley_param_decimal(cases[i].in, cases[i].max, &v);
        if (rc != PARLEY_EINVAL)
            fail_msg("\"%s\" (max %llu) accepted: rc %d, value %llu", cases[i].in,
                     (unsigned long long)cases[i].max, rc, (unsigned long long)v);
        assert_int_equal(v, 4242);
    }
}

static void params_decimal_rejected_null(void **state)
{
    uint64_t v = 1;
    assert_int_equal(parley_param_decimal(NULL, UINT64_MAX, &v), PARLEY_EINVAL);
    assert_int_equal(v, 1);
}

static void params_true_matches_any_case(void **state)
{
    static const struct {
        const char *in;
        bool want;
    } cases[] = {
        {"true", true},    {"TRUE", true},   {"True", true},   {"tRuE", true},
        {NULL, false},     {"", false},      {"false", false}, {"1", false},
        {"yes", false},    {"on", false},    {" true", false}, {"true ", false},
        {"true\n", false}, {"truex", false}, {"tru", false},   {"t", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parley_param_true(cases[i].in) != cases[i].want)
            fail_msg("parley_param_true(\"%s\") != %d", cases[i].in ? cases[i].in : "(null)",
                     (int)cases[i].want);
    }
}

static void params_stream_path_accepted_valid(void **state)
{
    static const char *const good[] = {
        "a",
        "a/b",
        "a/b/c",
        "chat/room-1/messages",
        "users/42/inbox.v2",
        "...",
        ".a",
        "a.",
        "..a",
        "a..",
        "a/.../b",
        "a/.hidden/b",
        "x y",
        "a%2Fb",
        "caf\xc3\xa9/\xe2\x82\xac",
        "~/_-+=@:,;!$&'()*",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *why = NULL;
        if (!parley_param_stream_path(good[i], &why))
            fail_msg("path \"%s\" rejected: %s", good[i], why ? why : "?");
    }
}

static void params_stream_path_rejected_invalid(void **state)
{
    static const struct {
        const char *in;
        const char *reason; /* a word the reason must contain */
    } cases[] = {
        {"", "empty"},
        {"a//b", "segment"},
        {"/a", "segment"},
        {"a/", "segment"},
        {"/", "segment"},
        {"//", "segment"},
        {".", "segment"},
        {"..", "segment"},
        {"./a", "segment"},
        {"a/.", "segment"},
        {"a/..", "segment"},
        {"../a", "segment"},
        {"a/./b", "segment"},
        {"a/../b", "segment"},
        {"a\x01"
         "b",
         "control"},
        {"a\tb", "control"},
        {"a\nb", "control"},
        {"a\rb", "control"},
        {"\x1f", "control"},
        {"a/\x7f", "control"},
        {"a/b\x1b[0m", "control"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = NULL;
        if (parley_param_stream_path(cases[i].in, &why))
            fail_msg("path \"%s\" accepted", cases[i].in);
        if (!why || !strstr(why, cases[i].reason))
            fail_msg("path \"%s\": reason \"%s\" lacks \"%s\"", cases[i].in, why ? why : "(null)",
                     cases[i].reason);
    }
}

static void params_stream_path_length_limit(void **state)
{
    char *p = malloc(PARLEY_PATH_MAX + 2);
    assert_non_null(p);
    const char *why = NULL;

    /* Exactly PARLEY_PATH_MAX bytes, in segments: accepted. */
    memset(p, 'a', PARLEY_PATH_MAX);
    for (size_t i = 10; i < PARLEY_PATH_MAX - 1; i += 11)
        p[i] = '/';
    p[PARLEY_PATH_MAX] = '\0';
    assert_true(parley_param_stream_path(p, &why));

    /* One byte more: refused as too long. */
    memset(p, 'a', PARLEY_PATH_MAX + 1);
    p[PARLEY_PATH_MAX + 1] = '\0';
    why = NULL;
    assert_false(parley_param_stream_path(p, &why));
    assert_non_null(why);
    assert_non_null(strstr(why, "longer"));
    free(p);
}

int main(void)
{
    const struct CMUnitTest params_tests[] = {
        cmocka_unit_test(params_decimal_accepted_canonical),
        cmocka_unit_test(params_decimal_rejected_malformed_or_over_max),
        cmocka_unit_test(params_decimal_rejected_null),
        cmocka_unit_test(params_true_matches_any_case),
        cmocka_unit_test(params_stream_path_accepted_valid),
        cmocka_unit_test(params_stream_path_rejected_invalid),
        cmocka_unit_test(params_stream_path_length_limit),
    };
    return cmocka_run_group_tests_name("params", params_tests, NULL, NULL);
}
