/*
 * fuzz_canonjson.c — libFuzzer harness for bounded JSON parsing and
 * canonical JSON (parley_canonjson_parse and parley_canonjson_dump,
 * src/codec/canonjson.c).
 *
 * The input is one request body, byte for byte (pointer and length, no NUL
 * added, so AddressSanitizer sees any read past it). It is parsed with a
 * depth limit of FUZZ_DEPTH; the harness aborts when one of these
 * invariants breaks:
 *
 *   1. parse returns 0 with a value, or PARLEY_EINVAL with a static reason;
 *      *out is untouched on refusal.
 *   2. A parsed value dumps: canon = dump(parse(body)) succeeds, and the
 *      text is valid JSON that parse accepts again.
 *   3. The canonical form is a fixed point: dump(parse(canon)) == canon,
 *      byte for byte.
 *   4. The canonical form does not depend on the spelling: jansson's own
 *      compact, key-sorted dump of the value (another spelling of the same
 *      data: different escapes and number forms) canonicalises to the same
 *      bytes.
 *   5. canon has no whitespace outside strings and no raw control
 *      character inside them.
 *   6. The SHA-256 of canon is 64 lower-case hex digits, the same twice.
 *   7. A body nested deeper than the limit is refused: parsing with a
 *      limit one below the value's measured depth fails.
 *
 * fuzz-sources: src/codec/canonjson.c src/util/buf.c
 * fuzz-libs: -ljansson -lcrypto
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/canonjson.h"
#include "harness.h"
#include "parley/parley.h"

#define FUZZ_DEPTH 64 /* depth limit the harness parses with (the API's is per call) */

/* Nesting depth of v: a scalar is 0, "[]" is 1. */
static size_t depth_of(json_t *v)
{
    size_t max = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            size_t d = depth_of(json_array_get(v, i));
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m)
        {
            size_t d = depth_of(m);
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    return 0;
}

/* Invariant 5: no whitespace outside strings, no raw control byte inside. */
static bool looks_canonical(const char *s, size_t n)
{
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (in_string) {
            if (ch < 0x20)
                return false;
            if (ch == '\\')
                i++; /* the escaped character */
            else if (ch == '"')
                in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            return false;
        }
    }
    return !in_string;
}

/* dump(parse(text)) into *out; aborts when parse or dump fails. */
static void recanon(const char *text, size_t n, char **out, size_t *out_len)
{
    json_t *v = NULL;
    const char *why = NULL;
    FUZZ_CHECK(parley_canonjson_parse(text, n, PARLEY_CANONJSON_MAX_DEPTH, &v, &why) == 0);
    FUZZ_CHECK(parley_canonjson_dump(v, out, out_len) == 0);
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = (json_t *)&v; /* a sentinel: must stay untouched on refusal */
    const char *why = NULL;
    int rc = parley_canonjson_parse((const char *)data, size, FUZZ_DEPTH, &v, &why);
    if (rc != 0) {
        FUZZ_CHECK(rc == PARLEY_EINVAL || rc == PARLEY_ENOMEM);
        FUZZ_CHECK(why != NULL && *why != '\0');
        FUZZ_CHECK(v == (json_t *)&v);
        return 0;
    }
    FUZZ_CHECK(v != NULL && v != (json_t *)&v);

    /* 7. The depth limit: the value's own depth is within it, one less refuses. */
    size_t depth = depth_of(v);
    FUZZ_CHECK(depth <= FUZZ_DEPTH);
    if (depth > 0) {
        json_t *w = NULL;
        FUZZ_CHECK(parley_canonjson_parse((const char *)data, size, depth - 1, &w, &why) ==
                   PARLEY_EINVAL);
        FUZZ_CHECK(w == NULL);
    }

    /* 2. and 5. */
    char *canon = NULL;
    size_t canon_len = 0;
    FUZZ_CHECK(parley_canonjson_dump(v, &canon, &canon_len) == 0);
    FUZZ_CHECK(strlen(canon) == canon_len);
    FUZZ_CHECK(looks_canonical(canon, canon_len));

    /* 3. Fixed point. */
    char *again = NULL;
    size_t again_len = 0;
    recanon(canon, canon_len, &again, &again_len);
    FUZZ_CHECK(again_len == canon_len && memcmp(again, canon, canon_len) == 0);
    free(again);

    /* 4. Another spelling of the same value gives the same canonical bytes. */
    char *other = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (other) { /* NULL only when jansson runs out of memory */
        char *from_other = NULL;
        size_t from_other_len = 0;
        recanon(other, strlen(other), &from_other, &from_other_len);
        FUZZ_CHECK(from_other_len == canon_len && memcmp(from_other, canon, canon_len) == 0);
        free(from_other);
        free(other);
    }

    /* 6. Checksum form. */
    char hex[PARLEY_CANONJSON_SHA256_HEX + 1], hex2[PARLEY_CANONJSON_SHA256_HEX + 1];
    parley_canonjson_sha256_hex(canon, canon_len, hex);
    parley_canonjson_sha256_hex(canon, canon_len, hex2);
    FUZZ_CHECK(strlen(hex) == PARLEY_CANONJSON_SHA256_HEX);
    FUZZ_CHECK(strspn(hex, "0123456789abcdef") == PARLEY_CANONJSON_SHA256_HEX);
    FUZZ_CHECK(strcmp(hex, hex2) == 0);

    free(canon);
    json_decref(v);
    return 0;
}
