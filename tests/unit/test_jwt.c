/*
 * test_jwt.c — unit tests for codec/jwt.c.
 *
 * Tokens are built here with OpenSSL's HMAC directly, independently of the
 * module's signer, so each case changes exactly one thing (the header, the
 * payload, the signature, the secret) and must fail for exactly that
 * reason. Covers two published vectors (RFC 7515 Appendix A.1 and the
 * jwt.io example), every refused algorithm, the exp/nbf boundaries, the sub
 * rules, malformed shapes, bad signatures, the signer's round trip, and the
 * constant-time secret comparison.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "codec/jwt.h"
#include "parley/parley.h"
#include "util/base64url.h"

static const unsigned char SECRET[] = "test-secret-0123456789abcdef";
#define SECRET_LEN   (sizeof SECRET - 1)
#define HS256_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

#define WHY_MALFORMED_SHAPE   "malformed token: expected three base64url segments"
#define WHY_MALFORMED_B64     "malformed token: a segment is not valid base64url"
#define WHY_MALFORMED_HEADER  "malformed token: header is not a JSON object"
#define WHY_MALFORMED_PAYLOAD "malformed token: payload is not a JSON object"
#define WHY_TOO_LONG          "malformed token: longer than 8192 characters"
#define WHY_ALG               "unsupported algorithm: only HS256 is accepted"
#define WHY_CRIT              "unsupported critical header"
#define WHY_SIG               "bad signature"
#define WHY_EXPIRED           "token expired"
#define WHY_NBF               "token not yet valid"
#define WHY_NO_SUB            "missing sub claim"
#define WHY_BAD_SUB           "invalid sub claim: must be a string of 1 to 255 bytes"
#define WHY_BAD_TIME          "invalid exp, nbf or iat claim: must be a number"
#define WHY_NO_SECRET         "no secret configured"

/* base64url(header) "." base64url(payload) "." base64url(HMAC-SHA256). Caller frees. */
static char *make_token(const char *header, const char *payload, const unsigned char *key,
                        size_t key_len)
{
    size_t hl = strlen(header), pl = strlen(payload);
    size_t cap = parley_base64url_encoded_len(hl) + parley_base64url_encoded_len(pl) + 64;
    char *tok = malloc(cap);
    assert_non_null(tok);
    parley_base64url_encode((const unsigned char *)header, hl, tok);
    strcat(tok, ".");
    parley_base64url_encode((const unsigned char *)payload, pl, tok + strlen(tok));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)tok, strlen(tok),
                         mac, &mac_len));
    assert_int_equal(mac_len, 32);
    strcat(tok, ".");
    parley_base64url_encode(mac, mac_len, tok + strlen(tok));
    return tok;
}

/* Verify and check the outcome: rc, and the reason when refused. */
static void expect_verify(const char *token, const unsigned char *key, size_t key_len, int64_t now,
                          int want_rc, const char *want_why, parley_jwt_claims_t *claims)
{
    parley_jwt_claims_t scratch;
    const char *why = NULL;
    int rc = parley_jwt_verify(token, key, key_len, now, claims ? claims : &scratch, &why);
    if (rc != want_rc)
        fail_msg("token %.80s: rc %d, want %d (why: %s)", token, rc, want_rc, why ? why : "(none)");
    if (want_rc != 0) {
        assert_non_null(why);
        assert_string_equal(why, want_why);
    }
}

static void jwt_verify_ok_published_vectors(void **state)
{
    /* jwt.io's example: HS256, secret "your-256-bit-secret". */
    static const char jwtio[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    static const char jwtio_key[] = "your-256-bit-secret";
    parley_jwt_claims_t c;
    expect_verify(jwtio, (const unsigned char *)jwtio_key, strlen(jwtio_key), 1516239022, 0, NULL,
                  &c);
    assert_string_equal(c.sub, "1234567890");
    assert_true(c.has_iat);
    assert_int_equal(c.iat, 1516239022);
    assert_false(c.has_exp);
    assert_false(c.has_nbf);

    /* One byte of the key wrong: the same token is refused. */
    expect_verify(jwtio, (const unsigned char *)"your-256-bit-secreT", 19, 1516239022,
                  PARLEY_EINVAL, WHY_SIG, NULL);

    /*
     * RFC 7515 Appendix A.1: header with CRLF and typ first, a 64-byte key.
     * The signature is right; the payload has no sub, so the token gets as
     * far as the claims and stops there (before exp, then after it).
     */
    static const char rfc[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const char rfc_k[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    unsigned char key[64];
    size_t key_len = 0;
    assert_int_equal(parley_base64url_decode(rfc_k, strlen(rfc_k), key, sizeof key, &key_len), 0);
    assert_int_equal(key_len, 64);
    expect_verify(rfc, key, key_len, 1300819379, PARLEY_EINVAL, WHY_NO_SUB, NULL);
    key[0] ^= 1;
    expect_verify(rfc, key, key_len, 1300819379, PARLEY_EINVAL, WHY_SIG, NULL);
}

static void jwt_verify_claims_table_time_and_sub(void **state)
{
    static const struct {
        const char *payload;
        int64_t now;
        int rc;
        const char *why;
    } cases[] = {
        {"{\"sub\":\"u1\"}", 0, 0, NULL},
        {"{\"sub\":\"u1\",\"exp\":100}", 99, 0, NULL},
        {"{\"sub\":\"u1\",\"exp\":100}", 100, PARLEY_EINVAL, WHY_EXPIRED},
        {"{\"sub\":\"u1\",\"exp\":100}", 101, PARLEY_EINVAL, WHY_EXPIRED},
        {"{\"sub\":\"u1\",\"exp\":100.5}", 100, 0, NULL},
        {"{\"sub\":\"u1\",\"exp\":100.5}", 101, PARLEY_EINVAL, WHY_EXPIRED},
        {"{\"sub\":\"u1\",\"exp\":0}", 0, PARLEY_EINVAL, WHY_EXPIRED},
        {"{\"sub\":\"u1\",\"exp\":-1e300}", INT64_MIN, PARLEY_EINVAL, WHY_EXPIRED},
        {"{\"sub\":\"u1\",\"exp\":1e300}", INT64_MAX - 1, 0, NULL},
        {"{\"sub\":\"u1\",\"exp\":9223372036854775807}", INT64_MAX - 1, 0, NULL},
        {"{\"sub\":\"u1\",\"nbf\":100}", 99, PARLEY_EINVAL, WHY_NBF},
        {"{\"sub\":\"u1\",\"nbf\":100}", 100, 0, NULL},
        {"{\"sub\":\"u1\",\"nbf\":99.5}", 99, PARLEY_EINVAL, WHY_NBF},
        {"{\"sub\":\"u1\",\"nbf\":99.5}", 100, 0, NULL},
        {"{\"sub\":\"u1\",\"nbf\":100,\"exp\":200}", 150, 0, NULL},
        {"{\"sub\":\"u1\",\"nbf\":100,\"exp\":200}", 200, PARLEY_EINVAL, WHY_EXPIRED},
        {"{\"sub\":\"u1\",\"iat\":4000000000}", 0, 0, NULL}, /* iat is not judged */
        {"{\"sub\":\"u1\",\"exp\":\"100\"}", 0, PARLEY_EINVAL, WHY_BAD_TIME},
        {"{\"sub\":\"u1\",\"nbf\":null}", 0, PARLEY_EINVAL, WHY_BAD_TIME},
        {"{\"sub\":\"u1\",\"iat\":true}", 0, PARLEY_EINVAL, WHY_BAD_TIME},
        {"{\"sub\":\"u1\",\"exp\":[1]}", 0, PARLEY_EINVAL, WHY_BAD_TIME},
        {"{}", 0, PARLEY_EINVAL, WHY_NO_SUB},
        {"{\"name\":\"x\",\"exp\":100}", 0, PARLEY_EINVAL, WHY_NO_SUB},
        {"{\"sub\":\"\"}", 0, PARLEY_EINVAL, WHY_BAD_SUB},
        {"{\"sub\":123}", 0, PARLEY_EINVAL, WHY_BAD_SUB},
        {"{\"sub\":null}", 0, PARLEY_EINVAL, WHY_BAD_SUB},
        {"{\"sub\":[\"u1\"]}", 0, PARLEY_EINVAL, WHY_BAD_SUB},
        {"{\"sub\":{\"id\":\"u1\"}}", 0, PARLEY_EINVAL, WHY_BAD_SUB},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = make_token(HS256_HEADER, cases[i].payload, SECRET, SECRET_LEN);
        parley_jwt_claims_t c;
        expect_verify(tok, SECRET, SECRET_LEN, cases[i].now, cases[i].rc, cases[i].why, &c);
        if (cases[i].rc == 0)
            assert_string_equal(c.sub, "u1");
        free(tok);
    }
}

static void jwt_verify_claims_values_recorded(void **state)
{
    char *tok = make_token(HS256_HEADER,
                           "{\"sub\":\"user-\\u00e9\",\"exp\":2000,\"nbf\":1000.25,"
                           "\"iat\":999.75,\"aud\":\"ignored\"}",
                           SECRET, SECRET_LEN);
    parley_jwt_claims_t c;
    expect_verify(tok, SECRET, SECRET_LEN, 1500, 0, NULL, &c);
    assert_string_equal(c.sub, "user-\xc3\xa9");
    assert_true(c.has_exp);
    assert_int_equal(c.exp, 2000);
    assert_true(c.has_nbf);
    assert_int_equal(c.nbf, 1001); /* rounded up */
    assert_true(c.has_iat);
    assert_int_equal(c.iat, 999); /* rounded down */
    free(tok);
}

static void jwt_verify_sub_length_limit(void **state)
{
    static const struct {
        size_t len;
        int rc;
    } cases[] = {{1, 0}, {254, 0}, {255, 0}, {256, PARLEY_EINVAL}, {1000, PARLEY_EINVAL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char payload[1100];
        size_t n = cases[i].len;
        memcpy(payload, "{\"sub\":\"", 8);
        memset(payload + 8, 'a', n);
        memcpy(payload + 8 + n, "\"}", 3);
        char *tok = make_token(HS256_HEADER, payload, SECRET, SECRET_LEN);
        parley_jwt_claims_t c;
        expect_verify(tok, SECRET, SECRET_LEN, 0, cases[i].rc, WHY_BAD_SUB, &c);
        if (cases[i].rc == 0)
            assert_int_equal(strlen(c.sub), n);
        free(tok);
    }
}

static void jwt_verify_rejected_unsupported_algorithm(void **state)
{
    static const char *const headers[] = {
        "{\"alg\":\"none\"}",
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"NONE\"}",
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"ES256\"}",
        "{\"alg\":\"PS256\"}",
        "{\"alg\":\"EdDSA\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"alg\":\"\"}",
        "{\"alg\":null}",
        "{\"alg\":256}",
        "{\"alg\":[\"HS256\"]}",
        "{\"typ\":\"JWT\"}",
        "{}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        /* Correctly MAC'd with the right secret: only the algorithm is wrong. */
        char *tok = make_token(headers[i], "{\"sub\":\"u1\"}", SECRET, SECRET_LEN);
        expect_verify(tok, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_ALG, NULL);
        /* The unsecured form, with an empty signature. */
        *(strrchr(tok, '.') + 1) = '\0';
        expect_verify(tok, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_ALG, NULL);
        free(tok);
    }
}

static void jwt_verify_rejected_crit_header(void **state)
{
    char *tok = make_token("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{\"sub\":\"u1\"}",
                           SECRET, SECRET_LEN);
    expect_verify(tok, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_CRIT, NULL);
    free(tok);
}

static void jwt_verify_rejected_bad_signature(void **state)
{
    static const unsigned char other[] = "test-secret-0123456789abcdeF";
    char *good = make_token(HS256_HEADER, "{\"sub\":\"u1\"}", SECRET, SECRET_LEN);
    char *wrong_key = make_token(HS256_HEADER, "{\"sub\":\"u1\"}", other, sizeof other - 1);
    char *prefix_key = make_token(HS256_HEADER, "{\"sub\":\"u1\"}", SECRET, SECRET_LEN - 1);
    char *other_sub = make_token(HS256_HEADER, "{\"sub\":\"u2\"}", SECRET, SECRET_LEN);
    expect_verify(good, SECRET, SECRET_LEN, 0, 0, NULL, NULL);
    expect_verify(wrong_key, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_SIG, NULL);
    expect_verify(prefix_key, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_SIG, NULL);

    char tampered[512];
    /* u2's header and payload with u1's signature. */
    snprintf(tampered, sizeof tampered, "%.*s%s", (int)(strrchr(other_sub, '.') - other_sub),
             other_sub, strrchr(good, '.'));
    expect_verify(tampered, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_SIG, NULL);

    /* The signature cut to 40 characters (30 bytes), still valid base64url. */
    snprintf(tampered, sizeof tampered, "%s", good);
    tampered[strlen(tampered) - 3] = '\0';
    expect_verify(tampered, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_SIG, NULL);

    /* The signature with one bit flipped (first character of the signature). */
    snprintf(tampered, sizeof tampered, "%s", good);
    char *s = strrchr(tampered, '.') + 1;
    *s = *s == 'A' ? 'B' : 'A';
    expect_verify(tampered, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_SIG, NULL);

    /* A 64-byte signature (HS512's size) whose first 32 bytes are right. */
    unsigned char sig[64];
    size_t sig_len = 0;
    const char *sig64 = strrchr(good, '.') + 1;
    assert_int_equal(parley_base64url_decode(sig64, strlen(sig64), sig, sizeof sig, &sig_len), 0);
    memset(sig + 32, 0, 32);
    snprintf(tampered, sizeof tampered, "%.*s", (int)(sig64 - good), good);
    parley_base64url_encode(sig, 64, tampered + strlen(tampered));
    expect_verify(tampered, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, WHY_SIG, NULL);

    free(good);
    free(wrong_key);
    free(prefix_key);
    free(other_sub);
}

static void jwt_verify_rejected_malformed(void **state)
{
    char *good = make_token(HS256_HEADER, "{\"sub\":\"u1\"}", SECRET, SECRET_LEN);
    char *not_json_header = make_token("alg=HS256", "{\"sub\":\"u1\"}", SECRET, SECRET_LEN);
    char *array_header = make_token("[\"HS256\"]", "{\"sub\":\"u1\"}", SECRET, SECRET_LEN);
    char *dup_header =
        make_token("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"sub\":\"u1\"}", SECRET, SECRET_LEN);
    char *string_header = make_token("\"HS256\"", "{\"sub\":\"u1\"}", SECRET, SECRET_LEN);
    char *array_payload = make_token(HS256_HEADER, "[{\"sub\":\"u1\"}]", SECRET, SECRET_LEN);
    char *text_payload = make_token(HS256_HEADER, "sub=u1", SECRET, SECRET_LEN);
    char *dup_payload =
        make_token(HS256_HEADER, "{\"sub\":\"u1\",\"sub\":\"admin\"}", SECRET, SECRET_LEN);
    char *trailing_payload = make_token(HS256_HEADER, "{\"sub\":\"u1\"} x", SECRET, SECRET_LEN);
    char *empty_payload = make_token(HS256_HEADER, "", SECRET, SECRET_LEN);

    char extra_dot[600], padded[600], spaced[600], plus[600];
    snprintf(extra_dot, sizeof extra_dot, "%s.", good);
    snprintf(padded, sizeof padded, "%s=", good);
    snprintf(spaced, sizeof spaced, " %s", good);
    snprintf(plus, sizeof plus, "%s", good);
    plus[3] = '+';

    const struct {
        const char *token;
        const char *why;
    } cases[] = {
        {"", WHY_MALFORMED_SHAPE},
        {"abc", WHY_MALFORMED_SHAPE},
        {"a.b", WHY_MALFORMED_SHAPE},
        {"a.b.c.d", WHY_MALFORMED_SHAPE},
        {"...", WHY_MALFORMED_SHAPE},
        {extra_dot, WHY_MALFORMED_SHAPE},
        {"..", WHY_MALFORMED_HEADER},
        {"a.b.c", WHY_MALFORMED_B64},
        {padded, WHY_MALFORMED_B64},
        {spaced, WHY_MALFORMED_B64},
        {plus, WHY_MALFORMED_B64},
        {not_json_header, WHY_MALFORMED_HEADER},
        {array_header, WHY_MALFORMED_HEADER},
        {dup_header, WHY_MALFORMED_HEADER},
        {string_header, WHY_MALFORMED_HEADER},
        {array_payload, WHY_MALFORMED_PAYLOAD},
        {text_payload, WHY_MALFORMED_PAYLOAD},
        {dup_payload, WHY_MALFORMED_PAYLOAD},
        {trailing_payload, WHY_MALFORMED_PAYLOAD},
        {empty_payload, WHY_MALFORMED_PAYLOAD},
        {NULL, WHY_MALFORMED_SHAPE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_verify(cases[i].token, SECRET, SECRET_LEN, 0, PARLEY_EINVAL, cases[i].why, NULL);

    free(good);
    free(not_json_header);
    free(array_header);
    free(dup_header);
    free(string_header);
    free(array_payload);
    free(text_payload);
    free(dup_payload);
    free(trailing_payload);
    free(empty_payload);
}

static void jwt_verify_rejected_too_long(void **state)
{
    /* A valid token padded out with a long claim: accepted up to the limit only. */
    static const struct {
        size_t pad;
        int rc;
    } cases[] = {{100, 0}, {5900, 0}, {6200, PARLEY_EINVAL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *payload = malloc(cases[i].pad + 64);
        assert_non_null(payload);
        int n = sprintf(payload, "{\"sub\":\"u1\",\"pad\":\"");
        memset(payload + n, 'p', cases[i].pad);
        strcpy(payload + n + cases[i].pad, "\"}");
        char *tok = make_token(HS256_HEADER, payload, SECRET, SECRET_LEN);
        assert_true((strlen(tok) <= PARLEY_JWT_MAX_TOKEN) == (cases[i].rc == 0));
        expect_verify(tok, SECRET, SECRET_LEN, 0, cases[i].rc, WHY_TOO_LONG, NULL);
        free(tok);
        free(payload);
    }
}

static void jwt_verify_rejected_without_secret(void **state)
{
    char *tok = make_token(HS256_HEADER, "{\"sub\":\"u1\"}", (const unsigned char *)"", 0);
    expect_verify(tok, (const unsigned char *)"", 0, 0, PARLEY_EINVAL, WHY_NO_SECRET, NULL);
    expect_verify(tok, NULL, 0, 0, PARLEY_EINVAL, WHY_NO_SECRET, NULL);
    free(tok);
}

static void jwt_verify_out_untouched_on_error(void **state)
{
    char *tok = make_token(HS256_HEADER, "{\"sub\":\"u1\",\"exp\":10}", SECRET, SECRET_LEN);
    parley_jwt_claims_t c, before;
    memset(&c, 0xab, sizeof c);
    before = c;
    assert_int_equal(parley_jwt_verify(tok, SECRET, SECRET_LEN, 10, &c, NULL), PARLEY_EINVAL);
    assert_memory_equal(&c, &before, sizeof c);
    free(tok);
}

static void jwt_sign_roundtrip_verifies(void **state)
{
    static const char *const payloads[] = {
        "{\"sub\":\"u1\"}",
        "{\"sub\":\"alice@example.com\",\"exp\":2000000000,\"iat\":1700000000}",
        "{\"sub\":\"\\u65e5\\u672c\",\"roles\":[\"a\",\"b\"],\"nested\":{\"x\":1}}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *tok = NULL;
        assert_int_equal(parley_jwt_sign_hs256(payloads[i], SECRET, SECRET_LEN, &tok), 0);
        assert_non_null(tok);
        /* The fixed header, encoded. */
        assert_memory_equal(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37);
        /* Identical to a token built independently. */
        char *ref = make_token(HS256_HEADER, payloads[i], SECRET, SECRET_LEN);
        assert_string_equal(tok, ref);
        expect_verify(tok, SECRET, SECRET_LEN, 1700000000, 0, NULL, NULL);
        free(ref);
        free(tok);
    }
}

static void jwt_sign_rejected_bad_arguments(void **state)
{
    char *tok = (char *)"unchanged";
    assert_int_equal(parley_jwt_sign_hs256("{}", SECRET, 0, &tok), PARLEY_EINVAL);
    assert_int_equal(parley_jwt_sign_hs256(NULL, SECRET, SECRET_LEN, &tok), PARLEY_EINVAL);
    assert_int_equal(parley_jwt_sign_hs256("{}", NULL, SECRET_LEN, &tok), PARLEY_EINVAL);
    assert_int_equal(parley_jwt_sign_hs256("{}", SECRET, SECRET_LEN, NULL), PARLEY_EINVAL);
    char *big = malloc(PARLEY_JWT_MAX_TOKEN);
    assert_non_null(big);
    memset(big, 'x', PARLEY_JWT_MAX_TOKEN - 1);
    big[PARLEY_JWT_MAX_TOKEN - 1] = '\0';
    assert_int_equal(parley_jwt_sign_hs256(big, SECRET, SECRET_LEN, &tok), PARLEY_ETOOBIG);
    assert_string_equal(tok, "unchanged");
    free(big);
}

static void jwt_secret_equal_table(void **state)
{
    static const char long_a[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    static const char long_b[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF";
    static const struct {
        const char *a;
        const char *b;
        bool equal;
    } cases[] = {
        {"key", "key", true},    {"", "", true},         {long_a, long_a, true},
        {"key", "kez", false},   {"key", "Key", false},  {"key", "", false},
        {"", "key", false},      {"key", "keys", false}, {"keys", "key", false},
        {long_a, long_b, false}, {NULL, "key", false},   {"key", NULL, false},
        {NULL, NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parley_jwt_secret_equal(cases[i].a, cases[i].b) != cases[i].equal)
            fail_msg("secret_equal(\"%s\", \"%s\") != %d", cases[i].a ? cases[i].a : "NULL",
                     cases[i].b ? cases[i].b : "NULL", cases[i].equal);
    }
}

int main(void)
{
    const struct CMUnitTest jwt_tests[] = {
        cmocka_unit_test(jwt_verify_ok_published_vectors),
        cmocka_unit_test(jwt_verify_claims_table_time_and_sub),
        cmocka_unit_test(jwt_verify_claims_values_recorded),
        cmocka_unit_test(jwt_verify_sub_length_limit),
        cmocka_unit_test(jwt_verify_rejected_unsupported_algorithm),
        cmocka_unit_test(jwt_verify_rejected_crit_header),
        cmocka_unit_test(jwt_verify_rejected_bad_signature),
        cmocka_unit_test(jwt_verify_rejected_malformed),
        cmocka_unit_test(jwt_verify_rejected_too_long),
        cmocka_unit_test(jwt_verify_rejected_without_secret),
        cmocka_unit_test(jwt_verify_out_untouched_on_error),
        cmocka_unit_test(jwt_sign_roundtrip_verifies),
        cmocka_unit_test(jwt_sign_rejected_bad_arguments),
        cmocka_unit_test(jwt_secret_equal_table),
    };
    return cmocka_run_group_tests_name("jwt", jwt_tests, NULL, NULL);
}
