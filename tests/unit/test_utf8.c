/*
 * test_utf8.c — unit tests for util/utf8.c.
 *
 * Table-driven: well-formed text of every sequence length, and each way a
 * sequence can be ill-formed (a stray continuation byte, a truncated
 * sequence, overlong forms, surrogates, code points above U+10FFFF, bytes
 * that never occur); then cutting text to a byte budget on a character
 * boundary, which must keep the result valid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/utf8.h"

static const struct {
    const char *text; /* the bytes */
    size_t len;       /* their count (0: strlen) */
    bool valid;       /* well-formed UTF-8 */
} cases[] = {
    {"", 0, true},
    {"plain ascii", 0, true},
    {"caf\xc3\xa9", 0, true},       /* U+00E9 */
    {"\xe2\x82\xac", 0, true},      /* U+20AC */
    {"\xf0\x9f\x98\x80", 0, true},  /* U+1F600 */
    {"\xef\xbf\xbf", 0, true},      /* U+FFFF */
    {"\xf4\x8f\xbf\xbf", 0, true},  /* U+10FFFF, the last */
    {"\xed\x9f\xbf", 0, true},      /* U+D7FF, before the surrogates */
    {"a\0b", 3, true},              /* NUL is a character */
    {"a\xc3(", 0, false},           /* lead byte, then no continuation */
    {"\x80", 0, false},             /* stray continuation */
    {"\xc3", 0, false},             /* truncated at the end */
    {"\xe2\x82", 0, false},         /* truncated 3-byte */
    {"\xf0\x9f\x98", 0, false},     /* truncated 4-byte */
    {"\xc0\xaf", 0, false},         /* overlong '/' */
    {"\xc1\xbf", 0, false},         /* overlong */
    {"\xe0\x80\xaf", 0, false},     /* overlong 3-byte */
    {"\xf0\x80\x80\xaf", 0, false}, /* overlong 4-byte */
    {"\xed\xa0\x80", 0, false},     /* U+D800, a surrogate */
    {"\xed\xbf\xbf", 0, false},     /* U+DFFF */
    {"\xf4\x90\x80\x80", 0, false}, /* U+110000 */
    {"\xf5\x80\x80\x80", 0, false}, /* never a lead byte */
    {"\xff", 0, false},
    {"\xfe\xff", 0, false},
};

static void utf8_is_valid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].text);
        if (parley_utf8_is_valid(cases[i].text, n) != cases[i].valid)
            fail_msg("case %zu: expected %s", i, cases[i].valid ? "valid" : "invalid");
    }
}

static void utf8_prefix_cuts_on_a_boundary(void **state)
{
    (void)state;
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"; /* a é € 😀 z: 1+2+3+4+1 */
    size_t n = strlen(s);
    static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11, 11};
    for (size_t max = 0; max < sizeof want / sizeof want[0]; max++) {
        size_t k = parley_utf8_prefix(s, n, max);
        if (k != want[max])
            fail_msg("max %zu: kept %zu, expected %zu", max, k, want[max]);
        assert_true(parley_utf8_is_valid(s, k));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_is_valid_table),
        cmocka_unit_test(utf8_prefix_cuts_on_a_boundary),
    };
    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
