/*
 * fuzz_params.c — libFuzzer harness for header and query value parsing
 * (src/api/params.c, and parley_producer_parse_uint from
 * src/core/producer.c).
 *
 * The input, as a NUL-terminated string, goes through every parser; the
 * harness aborts when one of these invariants breaks:
 *
 *   1. A decimal parley_param_decimal() accepts prints back (%PRIu64) to
 *      exactly the input, and is at most the given max, for each max the
 *      server uses. The limit is exact: the value passes with max = value
 *      and fails with max = value - 1.
 *   2. parley_producer_parse_uint() accepts exactly what
 *      parley_param_decimal(s, PARLEY_PRODUCER_MAX) accepts, with the same
 *      value: both document the same grammar.
 *   3. parley_param_true() is true exactly for "true" in any case.
 *   4. parley_param_stream_path() agrees with an independent reading of the
 *      rules in params.h (1..PARLEY_PATH_MAX bytes, '/'-separated segments,
 *      none empty, "." or "..", no control characters), and gives a reason
 *      whenever it refuses.
 *
 * fuzz-sources: src/api/params.c src/core/producer.c
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/params.h"
#include "codec/offset.h"
#include "core/producer.h"
#include "harness.h"
#include "parley/parley.h"
#include "store/store.h"

/* The limits the API passes to parley_param_decimal(). */
static const uint64_t maxima[] = {
    UINT64_MAX, UINT64_MAX / 2, 9999999999ULL, PARLEY_OFFSET_MAX, PARLEY_PRODUCER_MAX, 1, 0,
};

static void check_decimal(const char *s)
{
    char back[32];
    uint64_t v = UINT64_MAX, all = UINT64_MAX;
    int rc_all = parley_param_decimal(s, UINT64_MAX, &all);
    FUZZ_CHECK(rc_all == 0 || rc_all == PARLEY_EINVAL);
    if (rc_all == 0) {
        snprintf(back, sizeof back, "%" PRIu64, all);
        FUZZ_CHECK(strcmp(back, s) == 0);
        FUZZ_CHECK(parley_param_decimal(s, all, &v) == 0 && v == all);
        if (all > 0)
            FUZZ_CHECK(parley_param_decimal(s, all - 1, &v) == PARLEY_EINVAL);
    }
    for (size_t k = 0; k < sizeof maxima / sizeof maxima[0]; k++) {
        int rc = parley_param_decimal(s, maxima[k], &v);
        FUZZ_CHECK(rc == (rc_all == 0 && all <= maxima[k] ? 0 : PARLEY_EINVAL));
        if (rc == 0)
            FUZZ_CHECK(v == all);
    }

    uint64_t p = UINT64_MAX, d = UINT64_MAX;
    int rp = parley_producer_parse_uint(s, &p);
    int rd = parley_param_decimal(s, PARLEY_PRODUCER_MAX, &d);
    FUZZ_CHECK(rp == rd);
    if (rp == 0)
        FUZZ_CHECK(p == d);
}

static bool reference_true(const char *s)
{
    static const char word[] = "true";
    for (size_t i = 0; i < 4; i++)
        if (s[i] != word[i] && s[i] != word[i] - 'a' + 'A')
            return false;
    return s[4] == '\0';
}

/* The stream path rules of params.h, written out one by one. */
static bool reference_path(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > PARLEY_PATH_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return false;
    if (p[0] == '/' || p[n - 1] == '/' || strstr(p, "//"))
        return false;
    char *copy = fuzz_cstr((const uint8_t *)p, n);
    bool ok = true;
    for (char *save = NULL, *seg = strtok_r(copy, "/", &save); seg;
         seg = strtok_r(NULL, "/", &save))
        if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0)
            ok = false;
    free(copy);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);

    check_decimal(s);

    FUZZ_CHECK(parley_param_true(s) == reference_true(s));
    FUZZ_CHECK(!parley_param_true(NULL));

    const char *why = NULL;
    bool ok = parley_param_stream_path(s, &why);
    FUZZ_CHECK(ok == reference_path(s));
    if (!ok)
        FUZZ_CHECK(why != NULL && *why != '\0');

    free(s);
    return 0;
}
