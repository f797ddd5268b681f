/*
 * test_offset.c — unit tests for codec/offset.c.
 *
 * Covers the wire format of stream offsets: format/parse round trips, the
 * fixed width that makes byte-wise order agree with numeric order, the read
 * sentinels "-1" and "now", and the rejection of every malformed value
 * (wrong length, non-digits, a nonzero reserved field, stray spaces, signs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec/offset.h"
#include "parley/parley.h"

#define ZERO16 "0000000000000000"

static int sign_of(int v)
{
    return (v > 0) - (v < 0);
}

static void offset_format_exact_known_values(void **state)
{
    static const struct {
        uint64_t pos;
        const char *want;
    } cases[] = {
        {0, ZERO16 "_0000000000000000"},
        {1, ZERO16 "_0000000000000001"},
        {42, ZERO16 "_0000000000000042"},
        {1234567890123456ULL, ZERO16 "_1234567890123456"},
        {PARLEY_OFFSET_MAX, ZERO16 "_9999999999999999"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[PARLEY_OFFSET_LEN + 1];
        memset(out, 'x', sizeof out);
        parley_offset_format(cases[i].pos, out);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(strlen(out), PARLEY_OFFSET_LEN);
    }
}

static void offset_roundtrip_same_value_any_position(void **state)
{
    static const uint64_t positions[] = {0,
                                         1,
                                         9,
                                         10,
                                         99,
                                         100,
                                         65535,
                                         4294967296ULL,
                                         1000000000000000ULL,
                                         PARLEY_OFFSET_MAX - 1,
                                         PARLEY_OFFSET_MAX};
    for (size_t i = 0; i < sizeof positions / sizeof positions[0]; i++) {
        char out[PARLEY_OFFSET_LEN + 1];
        uint64_t back = 12345;
        parley_offset_format(positions[i], out);
        assert_int_equal(strlen(out), PARLEY_OFFSET_LEN);
        assert_int_equal(parley_offset_parse(out, &back), 0);
        assert_int_equal(back, positions[i]);

        parley_offset_kind_t kind = PARLEY_OFFSET_START;
        back = 12345;
        assert_int_equal(parley_offset_parse_param(out, &kind, &back), 0);
        assert_int_equal(kind, PARLEY_OFFSET_POS);
        assert_int_equal(back, positions[i]);
    }
}

static void offset_order_bytewise_matches_numeric(void **state)
{
    static const uint64_t positions[] = {0,
                                         1,
                                         2,
                                         9,
                                         10,
                                         11,
                                         99,
                                         100,
                                         101,
                                         999,
                                         1000,
                                         12345,
                                         123456,
                                         999999999,
                                         10000000,
                                         1000000000,
                                         77,
                                         5,
                                         4096,
                                         4095,
                                         65536,
                                         PARLEY_OFFSET_MAX - 1,
                                         PARLEY_OFFSET_MAX};
    size_t n = sizeof positions / sizeof positions[0];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            char a[PARLEY_OFFSET_LEN + 1], b[PARLEY_OFFSET_LEN + 1];
            parley_offset_format(positions[i], a);
            parley_offset_format(positions[j], b);
            int numeric = (positions[i] > positions[j]) - (positions[i] < positions[j]);
            assert_int_equal(sign_of(strcmp(a, b)), numeric);
            assert_int_equal(sign_of(memcmp(a, b, PARLEY_OFFSET_LEN)), numeric);
        }
    }
}

static void offset_param_sentinels_start_and_now(void **state)
{
    static const struct {
        const char *in;
        parley_offset_kind_t kind;
    } cases[] = {
        {NULL, PARLEY_OFFSET_START},
        {"-1", PARLEY_OFFSET_START},
        {"now", PARLEY_OFFSET_NOW},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_offset_kind_t kind = PARLEY_OFFSET_POS;
        uint64_t pos = 777;
        assert_int_equal(parley_offset_parse_param(cases[i].in, &kind, &pos), 0);
        assert_int_equal(kind, cases[i].kind);
        assert_int_equal(pos, 0);
    }
}

static void offset_param_rejected_near_sentinels(void **state)
{
    static const char *const bad[] = {
        "-1 ",   " -1",  "-1\n", "-2",  "-0",  "--1",  "1",  "0",     "",
        "now\n", "now ", " now", "NOW", "Now", "nowx", "no", "-1now",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parley_offset_kind_t kind = PARLEY_OFFSET_START;
        uint64_t pos = 0;
        int rc = parley_offset_parse_param(bad[i], &kind, &pos);
        if (rc != PARLEY_EINVAL)
            fail_msg("offset param \"%s\" accepted (rc %d)", bad[i], rc);
    }
}

static void offset_parse_rejected_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "0",
        "-1",
        "now",
        ZERO16 "_000000000000000",                   /* 32 characters */
        ZERO16 "_00000000000000000",                 /* 34 characters */
        "000000000000000_0000000000000000",          /* short reserved field */
        ZERO16 "0" ZERO16,                           /* no separator */
        ZERO16 "-0000000000000000",                  /* wrong separator */
        ZERO16 " 0000000000000000",                  /* space as separator */
        "0000000000000001_0000000000000000",         /* nonzero reserved field */
        "9000000000000000_0000000000000001",         /* nonzero reserved field */
        "000000000000000a_0000000000000000",         /* non-digit reserved */
        ZERO16 "_000000000000000a",                  /* non-digit position */
        ZERO16 "_00000000000000 1",                  /* embedded space */
        ZERO16 "_-000000000000001",                  /* sign in position */
        ZERO16 "_+000000000000001",                  /* sign in position */
        "+000000000000000_0000000000000001",         /* sign in reserved */
        " 000000000000000_0000000000000001",         /* leading space, same length */
        " " ZERO16 "_0000000000000001",              /* leading space */
        ZERO16 "_0000000000000001 ",                 /* trailing space */
        ZERO16 "_0000000000000001\n",                /* trailing newline */
        ZERO16 "__000000000000001",                  /* doubled separator */
        ZERO16 "_0000000000000001_0000000000000001", /* three fields */
        "0000000000000000_000000000000000\xd9",      /* non-ASCII byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t pos = 0;
        int rc = parley_offset_parse(bad[i], &pos);
        if (rc != PARLEY_EINVAL)
            fail_msg("offset \"%s\" accepted (rc %d, pos %llu)", bad[i], rc,
                     (unsigned long long)pos);
        /* Through the parameter parser, the same strings fail too. */
        parley_offset_kind_t kind = PARLEY_OFFSET_START;
        if (strcmp(bad[i], "-1") != 0 && strcmp(bad[i], "now") != 0) {
            rc = parley_offset_parse_param(bad[i], &kind, &pos);
            if (rc != PARLEY_EINVAL)
                fail_msg("offset param \"%s\" accepted (rc %d)", bad[i], rc);
        }
    }
}

static void offset_parse_rejected_null(void **state)
{
    uint64_t pos = 5;
    assert_int_equal(parley_offset_parse(NULL, &pos), PARLEY_EINVAL);
    assert_int_equal(pos, 5);
}

int main(void)
{
    const struct CMUnitTest offset_tests[] = {
        cmocka_unit_test(offset_format_exact_known_values),
        cmocka_unit_test(offset_roundtrip_same_value_any_position),
        cmocka_unit_test(offset_order_bytewise_matches_numeric),
        cmocka_unit_test(offset_param_sentinels_start_and_now),
        cmocka_unit_test(offset_param_rejected_near_sentinels),
        cmocka_unit_test(offset_parse_rejected_malformed),
        cmocka_unit_test(offset_parse_rejected_null),
    };
    return cmocka_run_group_tests_name("offset", offset_tests, NULL, NULL);
}
