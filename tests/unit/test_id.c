/*
 * test_id.c — unit tests for codec/id.c.
 *
 * Ids: exact length, alphabet, the fixed last-character set that 128 bits
 * leave, decoding back to 16 bytes, no repeats in a large sample, and every
 * bit position taking both values. Names and collections: the alphabet and
 * length bounds of each predicate, character by character at the edges of
 * each range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/id.h"
#include "parley/parley.h"
#include "util/base64url.h"

#define SAMPLE 4096

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void id_new_format_length_and_alphabet(void **state)
{
    static char ids[SAMPLE][PARLEY_ID_LEN + 1];
    unsigned char ones[PARLEY_ID_BYTES] = {0}, zeros[PARLEY_ID_BYTES] = {0};
    for (size_t i = 0; i < SAMPLE; i++) {
        memset(ids[i], '#', sizeof ids[i]);
        assert_int_equal(parley_id_new(ids[i]), 0);
        assert_int_equal(strlen(ids[i]), PARLEY_ID_LEN);
        assert_int_equal(strspn(ids[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789-_"),
                         PARLEY_ID_LEN);
        assert_non_null(strchr("AQgw", ids[i][PARLEY_ID_LEN - 1]));
        assert_true(parley_id_is_valid_name(ids[i], PARLEY_ID_LEN));

        unsigned char raw[PARLEY_ID_BYTES + 2];
        size_t raw_len = 0;
        assert_int_equal(parley_base64url_decode(ids[i], PARLEY_ID_LEN, raw, sizeof raw, &raw_len),
                         0);
        assert_int_equal(raw_len, PARLEY_ID_BYTES);
        for (size_t j = 0; j < PARLEY_ID_BYTES; j++) {
            ones[j] |= raw[j];
            zeros[j] |= (unsigned char)~raw[j];
        }
    }
    /* Every one of the 128 bits was seen as 1 and as 0 (chance of a false failure ~2^-4089). */
    for (size_t j = 0; j < PARLEY_ID_BYTES; j++) {
        assert_int_equal(ones[j], 0xff);
        assert_int_equal(zeros[j], 0xff);
    }
    /* No repeats. */
    qsort(ids, SAMPLE, sizeof ids[0], compare_ids);
    for (size_t i = 1; i < SAMPLE; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
}

static void id_is_valid_name_table(void **state)
{
    static const struct {
        const char *s;
        size_t max;
        bool valid;
    } cases[] = {
        {"a", 1, true},      {"Az09_-", 64, true}, {"-", 64, true},    {"_", 64, true},
        {"abc", 3, true},    {"abcd", 3, false},   {"", 64, false},    {"a", 0, false},
        {"a b", 64, false},  {"a.b", 64, false},   {"a/b", 64, false}, {"..", 64, false},
        {"a%2F", 64, false}, {"a+b", 64, false},   {"a~", 64, false},  {"\xc3\xa9", 64, false},
        {"a\n", 64, false},  {"a@b", 64, false}, /* '@' is just below 'A' */
        {"a[b", 64, false},                      /* '[' is just above 'Z' */
        {"a`b", 64, false},                      /* '`' is just below 'a' */
        {"a{b", 64, false},                      /* '{' is just above 'z' */
        {"a/", 64, false},                       /* '/' is just below '0' */
        {"a:", 64, false},                       /* ':' is just above '9' */
        {"a,", 64, false},                       /* ',' is just below '-' */
        {"a^", 64, false},                       /* '^' is just below '_' */
        {NULL, 64, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parley_id_is_valid_name(cases[i].s, cases[i].max) != cases[i].valid)
            fail_msg("is_valid_name(\"%s\", %zu) != %d", cases[i].s ? cases[i].s : "NULL",
                     cases[i].max, cases[i].valid);
    }
    /* Length bound, exactly. */
    char s[300];
    memset(s, 'x', sizeof s);
    s[255] = '\0';
    assert_true(parley_id_is_valid_name(s, 255));
    assert_false(parley_id_is_valid_name(s, 254));
    assert_true(parley_id_is_valid_name(s, SIZE_MAX));
}

static void id_is_valid_collection_table(void **state)
{
    static const struct {
        const char *s;
        bool valid;
    } cases[] = {
        {"notes", true},     {"user_settings", true},
        {"a-b-c", true},     {"0", true},
        {"_", true},         {"v2", true},
        {"", false},         {"Notes", false},
        {"noteS", false},    {"a b", false},
        {"a.b", false},      {"a/b", false},
        {"\xc3\xa9", false}, {"a`", false}, /* just below 'a' */
        {"a{", false},                      /* just above 'z' */
        {"a/", false},                      /* just below '0' */
        {"a:", false},                      /* just above '9' */
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parley_id_is_valid_collection(cases[i].s) != cases[i].valid)
            fail_msg("is_valid_collection(\"%s\") != %d", cases[i].s ? cases[i].s : "NULL",
                     cases[i].valid);
    }
    char s[PARLEY_ID_COLLECTION_MAX + 2];
    memset(s, 'c', sizeof s);
    s[PARLEY_ID_COLLECTION_MAX] = '\0';
    assert_true(parley_id_is_valid_collection(s));
    s[PARLEY_ID_COLLECTION_MAX] = 'c';
    s[PARLEY_ID_COLLECTION_MAX + 1] = '\0';
    assert_false(parley_id_is_valid_collection(s));
}

int main(void)
{
    const struct CMUnitTest id_tests[] = {
        cmocka_unit_test(id_new_format_length_and_alphabet),
        cmocka_unit_test(id_is_valid_name_table),
        cmocka_unit_test(id_is_valid_collection_table),
    };
    return cmocka_run_group_tests_name("id", id_tests, NULL, NULL);
}
