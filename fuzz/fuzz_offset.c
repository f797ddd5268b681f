/*
 * fuzz_offset.c — libFuzzer harness for stream offsets (src/codec/offset.c).
 *
 * The input, as a NUL-terminated string, goes to parley_offset_parse() and
 * parley_offset_parse_param(); its first bytes, read as a number, also drive
 * a format/parse round trip. The harness aborts when one of these breaks:
 *
 *   1. A string parse accepts is exactly what parley_offset_format() writes
 *      for the parsed position (one spelling per position), and the
 *      position is at most PARLEY_OFFSET_MAX.
 *   2. parse_param turns "-1" into the start and "now" into the tail, both
 *      with position 0; for anything else it gives PARLEY_OFFSET_POS and the
 *      same result as parse.
 *   3. Every position up to PARLEY_OFFSET_MAX formats to a string that
 *      parses back to that position.
 *
 * fuzz-sources: src/codec/offset.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/offset.h"
#include "harness.h"
#include "parley/parley.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char out[PARLEY_OFFSET_LEN + 1];
    uint64_t pos = UINT64_MAX, ppos = UINT64_MAX;
    parley_offset_kind_t kind;

    int rc = parley_offset_parse(s, &pos);
    FUZZ_CHECK(rc == 0 || rc == PARLEY_EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(pos <= PARLEY_OFFSET_MAX);
        parley_offset_format(pos, out);
        FUZZ_CHECK(strcmp(out, s) == 0);
    }

    int prc = parley_offset_parse_param(s, &kind, &ppos);
    if (strcmp(s, "-1") == 0 || strcmp(s, "now") == 0) {
        FUZZ_CHECK(prc == 0);
        FUZZ_CHECK(kind == (s[0] == '-' ? PARLEY_OFFSET_START : PARLEY_OFFSET_NOW));
        FUZZ_CHECK(ppos == 0);
    } else {
        FUZZ_CHECK(prc == rc);
        FUZZ_CHECK(kind == PARLEY_OFFSET_POS);
        if (rc == 0)
            FUZZ_CHECK(ppos == pos);
    }

    FUZZ_CHECK(parley_offset_parse_param(NULL, &kind, &ppos) == 0);
    FUZZ_CHECK(kind == PARLEY_OFFSET_START && ppos == 0);

    /* Round trip from a position the input picks. */
    uint64_t want = 0, got = UINT64_MAX;
    memcpy(&want, data, size < sizeof want ? size : sizeof want);
    want %= PARLEY_OFFSET_MAX + 1;
    parley_offset_format(want, out);
    FUZZ_CHECK(strlen(out) == PARLEY_OFFSET_LEN);
    FUZZ_CHECK(parley_offset_parse(out, &got) == 0 && got == want);

    free(s);
    return 0;
}
