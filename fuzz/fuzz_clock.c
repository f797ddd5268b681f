/*
 * fuzz_clock.c — libFuzzer harness for RFC 3339 timestamps
 * (parley_clock_parse and parley_clock_format, src/util/clock.c).
 *
 * The input, as a NUL-terminated string, goes to parley_clock_parse(); its
 * first bytes, read as a number, also pick a time for a format/parse round
 * trip. The server parses Stream-Expires-At with parley_clock_parse() and
 * sends the stored time back with parley_clock_format(), so what one
 * accepts the other must be able to write. The harness aborts when one of
 * these invariants breaks:
 *
 *   1. A time parse accepts formats to a string that parse accepts again
 *      and that gives the same milliseconds back.
 *   2. Every time from 1970-01-01 to 9999-12-31T23:59:59.999Z formats to a
 *      string that parses back to the same milliseconds.
 *
 * fuzz-sources: src/util/clock.c
 * fuzz-libs: -ljansson
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "parley/parley.h"
#include "util/clock.h"

#define MS_YEAR_10000 253402300800000LL /* 10000-01-01T00:00:00Z */

/* format(ms) must parse back to ms. */
static void check_round_trip(int64_t ms)
{
    char text[64];
    int64_t back = INT64_MIN;
    parley_clock_format(ms, text, sizeof text);
    if (parley_clock_parse(text, &back) != 0) {
        char what[128];
        snprintf(what, sizeof what, "parley_clock_parse refuses \"%s\" = parley_clock_format(%lld)",
                 text, (long long)ms);
        fuzz_invariant_failed(what, __FILE__, __LINE__);
    }
    FUZZ_CHECK(back == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    int64_t ms = INT64_MIN;

    int rc = parley_clock_parse(s, &ms);
    FUZZ_CHECK(rc == 0 || rc == PARLEY_EINVAL);
    if (rc == 0)
        check_round_trip(ms);

    uint64_t pick = 0;
    memcpy(&pick, data, size < sizeof pick ? size : sizeof pick);
    check_round_trip((int64_t)(pick % (uint64_t)MS_YEAR_10000));

    free(s);
    return 0;
}
