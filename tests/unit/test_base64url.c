/*
 * test_base64url.c — unit tests for util/base64url.c.
 *
 * Covers the RFC 4648 §10 vectors in the URL-safe alphabet without padding,
 * the two characters that differ from standard base64, round trips of every
 * length up to a few blocks, and the strict decoder's refusals: padding,
 * characters outside the alphabet, impossible lengths, nonzero unused bits
 * and an output buffer that is too small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "parley/parley.h"
#include "util/base64url.h"

static void base64url_encode_exact_rfc4648_vectors(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"", 0, ""},
        {"f", 1, "Zg"},
        {"fo", 2, "Zm8"},
        {"foo", 3, "Zm9v"},
        {"foob", 4, "Zm9vYg"},
        {"fooba", 5, "Zm9vYmE"},
        {"foobar", 6, "Zm9vYmFy"},
        {"\xfb\xff", 2, "-_8"}, /* '+' and '/' in standard base64 */
        {"\xff\xff\xff", 3, "____"},
        {"\x00\x00\x00", 3, "AAAA"},
        {"\x00", 1, "AA"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        memset(out, 'x', sizeof out);
        assert_int_equal(parley_base64url_encoded_len(cases[i].len), strlen(cases[i].want));
        parley_base64url_encode((const unsigned char *)cases[i].in, cases[i].len, out);
        assert_string_equal(out, cases[i].want);

        unsigned char back[32];
        size_t back_len = 999;
        assert_int_equal(parley_base64url_decode(cases[i].want, strlen(cases[i].want), back,
                                                 sizeof back, &back_len),
                         0);
        assert_int_equal(back_len, cases[i].len);
        assert_memory_equal(back, cases[i].in, cases[i].len);
    }
}

static void base64url_roundtrip_same_bytes_any_length(void **state)
{
    unsigned char in[64], back[64];
    char enc[96];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        parley_base64url_encode(in, n, enc);
        assert_int_equal(strlen(enc), parley_base64url_encoded_len(n));
        size_t back_len = 0;
        assert_int_equal(parley_base64url_decode(enc, strlen(enc), back, sizeof back, &back_len),
                         0);
        assert_int_equal(back_len, n);
        assert_memory_equal(back, in, n);
    }
}

static void base64url_decode_rejected_malformed(void **state)
{
    static const char *const bad[] = {
        "Zg==",   /* padding */
        "Zm8=",   /* padding */
        "Z",      /* length 1 mod 4 */
        "Zm9vY",  /* length 1 mod 4 */
        "+_8",    /* standard alphabet */
        "-/8",    /* standard alphabet */
        "Zm 9v",  /* whitespace */
        "Zm9v\n", /* trailing newline */
        "Zh",     /* unused bits set: one byte needs ...g/w/Q/A */
        "Zm9",    /* unused bits set: two bytes need the last sextet & 3 == 0 */
        "Zm.v",   /* separator */
        "\xc3\xa9"
        "AA", /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char out[16];
        size_t out_len = 0;
        int rc = parley_base64url_decode(bad[i], strlen(bad[i]), out, sizeof out, &out_len);
        if (rc != PARLEY_EINVAL)
            fail_msg("base64url \"%s\" accepted (rc %d)", bad[i], rc);
    }
}

static void base64url_decode_toobig_small_buffer(void **state)
{
    unsigned char out[5];
    size_t out_len = 0;
    assert_int_equal(parley_base64url_decode("Zm9vYmFy", 8, out, sizeof out, &out_len),
                     PARLEY_ETOOBIG);
    assert_int_equal(parley_base64url_decode("Zm9vYmE", 7, out, sizeof out, &out_len), 0);
    assert_int_equal(out_len, 5);
    assert_memory_equal(out, "fooba", 5);
}

int main(void)
{
    const struct CMUnitTest base64url_tests[] = {
        cmocka_unit_test(base64url_encode_exact_rfc4648_vectors),
        cmocka_unit_test(base64url_roundtrip_same_bytes_any_length),
        cmocka_unit_test(base64url_decode_rejected_malformed),
        cmocka_unit_test(base64url_decode_toobig_small_buffer),
    };
    return cmocka_run_group_tests_name("base64url", base64url_tests, NULL, NULL);
}
