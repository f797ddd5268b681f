/*
 * test_fingerprint.c — unit tests for codec/fingerprint.c.
 *
 * Fingerprints against values computed outside the module from the
 * documented encoding (they are stored, so the encoding must never drift),
 * the injectivity that length prefixes give (shifting bytes between fields
 * changes the result), and the Idempotency-Key rules at each edge of the
 * allowed byte range and length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec/fingerprint.h"

static void fingerprint_exact_known_values(void **state)
{
    static const struct {
        const char *method;
        const char *path;
        const char *body;
        size_t len;
        const char *want;
    } cases[] = {
        {"POST", "/v1/documents/notes", "{\"a\":1}", 7,
         "18d5f4dddd73a2fb0f8f47875f9342bfd4ee0ee0bbdb1088c52bea7cc7973d8f"},
        {"", "", "", 0, "9d908ecfb6b256def8b49a7c504e6c889c4b0e41fe6ce3e01863dd7b61a20aa0"},
        {NULL, NULL, NULL, 0, "9d908ecfb6b256def8b49a7c504e6c889c4b0e41fe6ce3e01863dd7b61a20aa0"},
        {"PATCH", "/v1/conversations/x", "a\0b", 3,
         "3569f9bd7a47b554d22585872ad96fa7c9ea0292de325536e2c8fe41c7b1c0c6"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[PARLEY_FINGERPRINT_HEX + 1];
        memset(out, 'x', sizeof out);
        parley_fingerprint(cases[i].method, cases[i].path, cases[i].body, cases[i].len, out);
        assert_string_equal(out, cases[i].want);
    }
}

static void fingerprint_differs_shifted_boundaries(void **state)
{
    /* Each row has the same concatenated bytes split differently. */
    static const struct {
        const char *method, *path, *body;
    } rows[] = {
        {"POST", "/a", "bc"}, {"POST", "/ab", "c"}, {"POST", "/abc", ""},
        {"POS", "T/a", "bc"}, {"POST/", "a", "bc"}, {"", "POST/a", "bc"},
        {"", "", "POST/abc"}, {"POST/abc", "", ""}, {"POST", "", "/abc"},
    };
    size_t n = sizeof rows / sizeof rows[0];
    char fp[sizeof rows / sizeof rows[0]][PARLEY_FINGERPRINT_HEX + 1];
    for (size_t i = 0; i < n; i++)
        parley_fingerprint(rows[i].method, rows[i].path, rows[i].body, strlen(rows[i].body), fp[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(fp[i], fp[j]) == 0)
                fail_msg("(%s,%s,%s) and (%s,%s,%s) share a fingerprint", rows[i].method,
                         rows[i].path, rows[i].body, rows[j].method, rows[j].path, rows[j].body);
}

static void fingerprint_differs_any_field_change(void **state)
{
    char base[PARLEY_FINGERPRINT_HEX + 1], other[PARLEY_FINGERPRINT_HEX + 1];
    parley_fingerprint("POST", "/v1/x", "{\"a\":1}", 7, base);
    /* Deterministic. */
    parley_fingerprint("POST", "/v1/x", "{\"a\":1}", 7, other);
    assert_string_equal(base, other);

    static const struct {
        const char *method, *path, *body;
        size_t len;
    } changed[] = {
        {"post", "/v1/x", "{\"a\":1}", 7}, /* methods are case-sensitive */
        {"PATCH", "/v1/x", "{\"a\":1}", 7},  {"POST", "/v1/X", "{\"a\":1}", 7},
        {"POST", "/v1/x/", "{\"a\":1}", 7},  {"POST", "/v1/x", "{\"a\":2}", 7},
        {"POST", "/v1/x", "{\"a\": 1}", 8},  /* raw bytes, not JSON equality */
        {"POST", "/v1/x", "{\"a\":1}\0", 8}, /* a trailing NUL counts */
        {"POST", "/v1/x", "{\"a\":1}", 6},
    };
    for (size_t i = 0; i < sizeof changed / sizeof changed[0]; i++) {
        parley_fingerprint(changed[i].method, changed[i].path, changed[i].body, changed[i].len,
                           other);
        if (strcmp(base, other) == 0)
            fail_msg("change %zu did not change the fingerprint", i);
    }
}

static void idempotency_key_is_valid_table(void **state)
{
    static const struct {
        const char *key;
        bool valid;
    } cases[] = {
        {"a", true},
        {"8e03978e-40d5-43e8-bc93-6894a57f9324", true},
        {"\"8e03978e-40d5\"", true}, /* the draft's quoted form, taken as is */
        {"key with spaces", true},
        {" ", true}, /* 0x20, the lowest allowed */
        {"~", true}, /* 0x7e, the highest allowed */
        {"!#$%&'()*+,-./:;<=>?@[\\]^_`{|}", true},
        {"", false},
        {"\x1f", false}, /* just below the range */
        {"\x7f", false}, /* DEL, just above */
        {"a\tb", false},
        {"a\nb", false},
        {"a\rb", false},
        {"\xc3\xa9", false}, /* non-ASCII */
        {"\x80", false},
        {"\xff", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parley_idempotency_key_is_valid(cases[i].key) != cases[i].valid)
            fail_msg("key case %zu (\"%s\") != %d", i, cases[i].key ? cases[i].key : "NULL",
                     cases[i].valid);
    }
}

static void idempotency_key_is_valid_length_limit(void **state)
{
    static const struct {
        size_t len;
        bool valid;
    } cases[] = {{1, true}, {254, true}, {255, true}, {256, false}, {1000, false}};
    char key[1001];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(key, 'k', cases[i].len);
        key[cases[i].len] = '\0';
        if (parley_idempotency_key_is_valid(key) != cases[i].valid)
            fail_msg("key of %zu characters != %d", cases[i].len, cases[i].valid);
    }
}

int main(void)
{
    const struct CMUnitTest fingerprint_tests[] = {
        cmocka_unit_test(fingerprint_exact_known_values),
        cmocka_unit_test(fingerprint_differs_shifted_boundaries),
        cmocka_unit_test(fingerprint_differs_any_field_change),
        cmocka_unit_test(idempotency_key_is_valid_table),
        cmocka_unit_test(idempotency_key_is_valid_length_limit),
    };
    return cmocka_run_group_tests_name("fingerprint", fingerprint_tests, NULL, NULL);
}
