/*
 * test_clock.c — unit tests for util/clock.c.
 *
 * Covers RFC 3339 parsing (UTC "Z", fractions of 1 to 9 digits, numeric
 * offsets, leap days, out-of-range fields, missing parts, trailing junk),
 * the fixed millisecond format and its round trip through the parser, and
 * a sanity check of the two clocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "parley/parley.h"
#include "util/clock.h"

#define T_2025_01_02_030405 1735787045000LL /* 2025-01-02T03:04:05Z in ms */

static void clock_parse_accepted_valid(void **state)
{
    static const struct {
        const char *in;
        int64_t want;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:00.000Z", 0},
        {"1970-01-01T00:00:00.001Z", 1},
        {"1969-12-31T23:59:59.999Z", -1},
        {"2025-01-02T03:04:05Z", T_2025_01_02_030405},
        {"2025-01-02t03:04:05z", T_2025_01_02_030405},
        /* fractions of 1..9 digits: milliseconds, the rest truncated */
        {"2025-01-02T03:04:05.1Z", T_2025_01_02_030405 + 100},
        {"2025-01-02T03:04:05.12Z", T_2025_01_02_030405 + 120},
        {"2025-01-02T03:04:05.123Z", T_2025_01_02_030405 + 123},
        {"2025-01-02T03:04:05.1234Z", T_2025_01_02_030405 + 123},
        {"2025-01-02T03:04:05.12345Z", T_2025_01_02_030405 + 123},
        {"2025-01-02T03:04:05.123456Z", T_2025_01_02_030405 + 123},
        {"2025-01-02T03:04:05.1234567Z", T_2025_01_02_030405 + 123},
        {"2025-01-02T03:04:05.12345678Z", T_2025_01_02_030405 + 123},
        {"2025-01-02T03:04:05.123456789Z", T_2025_01_02_030405 + 123},
        {"2025-01-02T03:04:05.999999999Z", T_2025_01_02_030405 + 999},
        {"2025-01-02T03:04:05.000000001Z", T_2025_01_02_030405},
        {"2025-01-02T03:04:05.9Z", T_2025_01_02_030405 + 900},
        {"2025-01-02T03:04:05.05Z", T_2025_01_02_030405 + 50},
        /* numeric offsets: local time minus the offset is UTC */
        {"2025-01-02T03:04:05+00:00", T_2025_01_02_030405},
        {"2025-01-02T03:04:05-00:00", T_2025_01_02_030405},
        {"2025-01-02T03:04:05+01:00", 1735783445000LL},
        {"2025-01-02T03:04:05-05:30", 1735806845000LL},
        {"2025-01-02T03:04:05.500+01:00", 1735783445500LL},
        {"2025-01-02T03:04:05+23:59", T_2025_01_02_030405 - (23 * 60 + 59) * 60000LL},
        {"2025-01-02T03:04:05-23:59", T_2025_01_02_030405 + (23 * 60 + 59) * 60000LL},
        {"1970-01-01T00:00:00+01:00", -3600000},
        {"1970-01-01T00:00:00-01:00", 3600000},
        /* leap days */
        {"2024-02-29T00:00:00Z", 1709164800000LL},
        {"2000-02-29T12:00:00Z", 951825600000LL},
        {"1600-03-01T00:00:00Z", -11670912000000LL},
        /* ends of months and of the range */
        {"2016-12-31T23:59:59Z", 1483228799000LL},
        {"2016-12-31T23:59:60Z", 1483228799000LL}, /* leap second: clamped */
        {"9999-12-31T23:59:59.999Z", 253402300799999LL},
        {"0001-01-01T00:00:00Z", -62135596800000LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = 424242;
        int rc = parley_clock_parse(cases[i].in, &ms);
        if (rc != 0)
            fail_msg("\"%s\" rejected: %d", cases[i].in, rc);
        if (ms != cases[i].want)
            fail_msg("\"%s\" parsed as %lld, want %lld", cases[i].in, (long long)ms,
                     (long long)cases[i].want);
    }
}

static void clock_parse_day_validity_by_month(void **state)
{
    static const struct {
        const char *in;
        int ok;
    } cases[] = {
        {"2025-01-31T00:00:00Z", 1}, {"2025-01-32T00:00:00Z", 0}, {"2025-02-28T00:00:00Z", 1},
        {"2025-02-29T00:00:00Z", 0}, {"2024-02-29T00:00:00Z", 1}, {"2024-02-30T00:00:00Z", 0},
        {"2000-02-29T00:00:00Z", 1}, {"1900-02-29T00:00:00Z", 0}, {"2100-02-29T00:00:00Z", 0},
        {"2400-02-29T00:00:00Z", 1}, {"2025-03-31T00:00:00Z", 1}, {"2025-04-30T00:00:00Z", 1},
        {"2025-04-31T00:00:00Z", 0}, {"2025-05-31T00:00:00Z", 1}, {"2025-06-31T00:00:00Z", 0},
        {"2025-07-31T00:00:00Z", 1}, {"2025-08-31T00:00:00Z", 1}, {"2025-09-31T00:00:00Z", 0},
        {"2025-10-31T00:00:00Z", 1}, {"2025-11-31T00:00:00Z", 0}, {"2025-12-31T00:00:00Z", 1},
        {"2025-01-00T00:00:00Z", 0}, {"2025-00-01T00:00:00Z", 0}, {"2025-13-01T00:00:00Z", 0},
        {"2025-99-01T00:00:00Z", 0}, {"2025-12-99T00:00:00Z", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = 0;
        int rc = parley_clock_parse(cases[i].in, &ms);
        if (cases[i].ok && rc != 0)
            fail_msg("\"%s\" rejected: %d", cases[i].in, rc);
        if (!cases[i].ok && rc != PARLEY_EINVAL)
            fail_msg("\"%s\" accepted (rc %d)", cases[i].in, rc);
    }
}

static void clock_parse_rejected_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "Z",
        "2025",
        "2025-01",
        "2025-01-02",
        "2025-01-02T",
        "2025-01-02T03",
        "2025-01-02T03:04",
        "2025-01-02T03:04Z",
        "2025-01-02T03:04:05",      /* no zone */
        "2025-01-02T03:04:05.",     /* empty fraction */
        "2025-01-02T03:04:05.Z",    /* empty fraction */
        "2025-01-02T03:04:05,123Z", /* comma fraction */
        "2025-01-02T03:04:05+01",   /* offset without minutes */
        "2025-01-02T03:04:05+0100", /* offset without colon */
        "2025-01-02T03:04:05+1:00",
        "2025-01-02T03:04:05+01:0",
        "2025-01-02T03:04:05+24:00", /* offset hour out of range */
        "2025-01-02T03:04:05+23:60", /* offset minute out of range */
        "2025-01-02T03:04:05UTC",
        "2025-01-02T03:04:05 Z",
        "25-01-02T03:04:05Z",
        "20250-01-02T03:04:05Z",
        "2025-1-02T03:04:05Z",
        "2025-01-2T03:04:05Z",
        "2025-01-02T3:04:05Z",
        "2025-01-02T03:4:05Z",
        "2025-01-02T03:04:5Z",
        "2025/01/02T03:04:05Z",
        "2025-01-02X03:04:05Z",
        "2025-01-02T03-04-05Z",
        "2025-+1-02T03:04:05Z",
        "+025-01-02T03:04:05Z",
        "2025-01-02T24:00:00Z",  /* hour out of range */
        "2025-01-02T23:60:00Z",  /* minute out of range */
        "2025-01-02T23:59:61Z",  /* second out of range */
        "2025-01-02T03:04:05Z ", /* trailing junk */
        "2025-01-02T03:04:05Z\n",
        "2025-01-02T03:04:05ZZ",
        "2025-01-02T03:04:05Zjunk",
        "2025-01-02T03:04:05+01:00x",
        "2025-01-02T03:04:05+01:00Z",
        "2025-01-02T03:04:05.123Zx",
        " 2025-01-02T03:04:05Z", /* leading junk */
        "x2025-01-02T03:04:05Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 424242;
        int rc = parley_clock_parse(bad[i], &ms);
        if (rc != PARLEY_EINVAL)
            fail_msg("\"%s\" accepted (rc %d, ms %lld)", bad[i], rc, (long long)ms);
        assert_int_equal(ms, 424242);
    }
}

static void clock_format_exact_known_values(void **state)
{
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {T_2025_01_02_030405 + 678, "2025-01-02T03:04:05.678Z"},
        {1709164800000LL, "2024-02-29T00:00:00.000Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        memset(out, 'x', sizeof out);
        parley_clock_format(cases[i].ms, out, sizeof out);
        assert_string_equal(out, cases[i].want);
    }
}

static void clock_format_roundtrip_same_ms(void **state)
{
    static const int64_t values[] = {0,
                                     1,
                                     999,
                                     1000,
                                     -1,
                                     -999,
                                     -1001,
                                     T_2025_01_02_030405,
                                     T_2025_01_02_030405 + 678,
                                     951825600123LL,
                                     1709164799999LL,
                                     4102444800000LL,
                                     -62135596800000LL,
                                     253402300799999LL};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char out[32];
        int64_t back = 424242;
        parley_clock_format(values[i], out, sizeof out);
        if (parley_clock_parse(out, &back) != 0)
            fail_msg("formatted \"%s\" does not parse", out);
        if (back != values[i])
            fail_msg("%lld -> \"%s\" -> %lld", (long long)values[i], out, (long long)back);
    }
}

static void clock_now_sane_values(void **state)
{
    int64_t now = parley_clock_now_ms();
    assert_true(now > 1577836800000LL); /* after 2020-01-01 */
    int64_t m1 = parley_clock_mono_ms();
    int64_t m2 = parley_clock_mono_ms();
    assert_true(m2 >= m1);
}

int main(void)
{
    const struct CMUnitTest clock_tests[] = {
        cmocka_unit_test(clock_parse_accepted_valid),
        cmocka_unit_test(clock_parse_day_validity_by_month),
        cmocka_unit_test(clock_parse_rejected_malformed),
        cmocka_unit_test(clock_format_exact_known_values),
        cmocka_unit_test(clock_format_roundtrip_same_ms),
        cmocka_unit_test(clock_now_sane_values),
    };
    return cmocka_run_group_tests_name("clock", clock_tests, NULL, NULL);
}
