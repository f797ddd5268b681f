/*
 * test_keyring.c — unit tests for codec/keyring.c.
 *
 * The signature is checked the way a webhook receiver checks it, with
 * OpenSSL directly and nothing of the module: parse the header
 * t=<digits>,kid=<kid>,ed25519=<base64url>, take the key whose kid matches
 * from the published JWK Set, verify Ed25519 over "<t>.<raw body>". The
 * key is RFC 8032's test vector 1, so the published x must be its public
 * key, and the kid is recomputed here as "ds_" + the RFC 7638 thumbprint.
 * Tokens: a round trip, and each way a token must fail (another
 * subscription, another secret, a changed byte, expiry).
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/keyring.h"
#include "parley/parley.h"
#include "util/base64url.h"

/* RFC 8032 §7.1, TEST 1. */
static const char SEED_HEX[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char PUB_HEX[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

static void unhex(const char *hex, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
}

static parley_keyring_t *vector_keyring(unsigned char fill)
{
    unsigned char seed[32], secret[32];
    parley_keyring_t *kr = NULL;
    unhex(SEED_HEX, seed, 32);
    memset(secret, fill, sizeof secret);
    assert_int_equal(parley_keyring_new(seed, 32, secret, 32, &kr), 0);
    return kr;
}

static void keyring_jwks_publishes_the_public_key(void **state)
{
    (void)state;
    parley_keyring_t *kr = vector_keyring(7);
    unsigned char pub[32];
    char x[64], thumb[128], kid[64];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unhex(PUB_HEX, pub, 32);
    parley_base64url_encode(pub, 32, x);
    snprintf(thumb, sizeof thumb, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    SHA256((const unsigned char *)thumb, strlen(thumb), digest);
    strcpy(kid, "ds_");
    parley_base64url_encode(digest, sizeof digest, kid + 3);
    assert_string_equal(parley_keyring_kid(kr), kid);

    json_t *jwks = json_loads(parley_keyring_jwks(kr), 0, NULL);
    json_t *k = json_array_get(json_object_get(jwks, "keys"), 0);
    assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 1);
    assert_string_equal(json_string_value(json_object_get(k, "kty")), "OKP");
    assert_string_equal(json_string_value(json_object_get(k, "crv")), "Ed25519");
    assert_string_equal(json_string_value(json_object_get(k, "alg")), "EdDSA");
    assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
    assert_string_equal(json_string_value(json_object_get(k, "kid")), kid);
    assert_string_equal(json_string_value(json_object_get(k, "x")), x);
    assert_null(json_object_get(k, "d")); /* never the private key */
    json_decref(jwks);
    parley_keyring_free(kr);
}

/* Verify a Webhook-Signature value as a receiver would. */
static bool receiver_verifies(const char *header, const char *jwks_text, const char *body,
                              long long *t_out)
{
    char kid[128], sig64[200];
    long long t;
    int used = 0;
    if (sscanf(header, "t=%lld,kid=%127[^,],ed25519=%199[A-Za-z0-9_-]%n", &t, kid, sig64, &used) !=
            3 ||
        header[used] != '\0')
        return false;
    json_t *jwks = json_loads(jwks_text, 0, NULL);
    json_t *keys = json_object_get(jwks, "keys"), *k;
    size_t i;
    const char *x = NULL;
    json_array_foreach(keys, i, k)
    {
        if (strcmp(json_string_value(json_object_get(k, "kid")), kid) == 0)
            x = json_string_value(json_object_get(k, "x"));
    }
    unsigned char pub[64], sig[128];
    size_t pub_len = 0, sig_len = 0;
    bool ok = x && parley_base64url_decode(x, strlen(x), pub, sizeof pub, &pub_len) == 0 &&
              parley_base64url_decode(sig64, strlen(sig64), sig, sizeof sig, &sig_len) == 0;
    json_decref(jwks);
    if (!ok)
        return false;
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%lld.%s", t, body);
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, pub_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ok = key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
         EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)msg, (size_t)n) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    *t_out = t;
    return ok;
}

static void keyring_sign_header_format_and_verification(void **state)
{
    (void)state;
    parley_keyring_t *kr = vector_keyring(7);
    const char *body = "{\"subscription_id\":\"s\",\"wake_id\":\"w_1\",\"generation\":7}";
    char header[PARLEY_KEYRING_SIG_HEADER];
    long long t = 0;
    assert_int_equal(parley_keyring_sign(kr, 1778324210, body, strlen(body), header, sizeof header),
                     0);
    assert_true(receiver_verifies(header, parley_keyring_jwks(kr), body, &t));
    assert_int_equal(t, 1778324210);
    /* The signature covers the timestamp and every byte of the body. */
    char forged[PARLEY_KEYRING_SIG_HEADER];
    snprintf(forged, sizeof forged, "t=1778324211%s", strchr(header, ','));
    assert_false(receiver_verifies(forged, parley_keyring_jwks(kr), body, &t));
    assert_false(
        receiver_verifies(header, parley_keyring_jwks(kr),
                          "{\"subscription_id\":\"s\",\"wake_id\":\"w_1\",\"generation\":8}", &t));
    /* Too small a buffer is an error, not a cut header. */
    char tiny[20];
    assert_int_equal(parley_keyring_sign(kr, 1, body, strlen(body), tiny, sizeof tiny),
                     PARLEY_ETOOBIG);
    parley_keyring_free(kr);
}

static void keyring_generate_makes_distinct_keys(void **state)
{
    (void)state;
    unsigned char s1[32], s2[32], t1[32], t2[32];
    parley_keyring_t *a = NULL, *b = NULL, *a2 = NULL;
    assert_int_equal(parley_keyring_generate(s1, t1), 0);
    assert_int_equal(parley_keyring_generate(s2, t2), 0);
    assert_memory_not_equal(s1, s2, 32);
    assert_int_equal(parley_keyring_new(s1, 32, t1, 32, &a), 0);
    assert_int_equal(parley_keyring_new(s2, 32, t2, 32, &b), 0);
    assert_int_equal(parley_keyring_new(s1, 32, t1, 32, &a2), 0);
    assert_string_not_equal(parley_keyring_kid(a), parley_keyring_kid(b));
    /* The same stored material gives the same kid: stable across restarts. */
    assert_string_equal(parley_keyring_kid(a), parley_keyring_kid(a2));
    assert_int_equal(parley_keyring_new(s1, 31, t1, 32, &b), PARLEY_EINVAL);
    parley_keyring_free(a);
    parley_keyring_free(a2);
    parley_keyring_free(NULL);
    parley_keyring_free(b);
}

static void keyring_token_round_trip_and_refusals(void **state)
{
    (void)state;
    parley_keyring_t *kr = vector_keyring(7), *other = vector_keyring(8);
    char *tok = NULL;
    char wake[PARLEY_KEYRING_WAKE_MAX + 1];
    int64_t gen = 0;
    bool expired = true;
    assert_int_equal(parley_keyring_token_issue(kr, "sub-1", 7, "w_abc", 2000000000, &tok), 0);
    assert_int_equal(parley_keyring_token_check(kr, tok, "sub-1", 1900000000, &gen, wake, &expired),
                     0);
    assert_int_equal(gen, 7);
    assert_string_equal(wake, "w_abc");
    /* Another subscription's token, another server's secret. */
    assert_int_equal(parley_keyring_token_check(kr, tok, "sub-2", 1900000000, &gen, wake, &expired),
                     PARLEY_EINVAL);
    assert_false(expired);
    assert_int_equal(
        parley_keyring_token_check(other, tok, "sub-1", 1900000000, &gen, wake, &expired),
        PARLEY_EINVAL);
    assert_false(expired);
    /* Expired. */
    assert_int_equal(parley_keyring_token_check(kr, tok, "sub-1", 2000000001, &gen, wake, &expired),
                     PARLEY_EINVAL);
    assert_true(expired);
    /* A changed byte anywhere. */
    for (size_t i = 0; tok[i]; i++) {
        char saved = tok[i];
        tok[i] = saved == 'A' ? 'B' : 'A';
        if (parley_keyring_token_check(kr, tok, "sub-1", 1900000000, &gen, wake, &expired) == 0)
            fail_msg("a token changed at byte %zu still passes", i);
        tok[i] = saved;
    }
    assert_int_equal(parley_keyring_token_check(kr, "garbage", "sub-1", 1, &gen, wake, &expired),
                     PARLEY_EINVAL);
    free(tok);
    parley_keyring_free(kr);
    parley_keyring_free(other);
}

static void keyring_set_signing_publishes_both_and_signs_with_the_first(void **state)
{
    (void)state;
    parley_keyring_t *kr = vector_keyring(7);
    unsigned char seeds[2 * PARLEY_KEYRING_SEED_LEN];
    char new_kid[PARLEY_KEYRING_KID_MAX + 1], header[PARLEY_KEYRING_SIG_HEADER];
    const char *old_kid = parley_keyring_kid(kr), *old_jwks = parley_keyring_jwks(kr);
    char old_copy[PARLEY_KEYRING_KID_MAX + 1];
    bool changed = true;
    snprintf(old_copy, sizeof old_copy, "%s", old_kid);
    memset(seeds, 0x42, PARLEY_KEYRING_SEED_LEN);         /* the new key */
    unhex(SEED_HEX, seeds + PARLEY_KEYRING_SEED_LEN, 32); /* the old one */
    assert_int_equal(parley_keyring_kid_of(seeds, PARLEY_KEYRING_SEED_LEN, new_kid), 0);
    assert_int_equal(parley_keyring_set_signing(kr, seeds, 2, &changed), 0);
    assert_true(changed);
    assert_string_equal(parley_keyring_kid(kr), new_kid);
    json_t *jwks = json_loads(parley_keyring_jwks(kr), 0, NULL);
    json_t *keys = json_object_get(jwks, "keys");
    assert_int_equal(json_array_size(keys), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "kid")),
                        new_kid);
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 1), "kid")),
                        old_copy);
    json_decref(jwks);
    /* What a reader was handed before stays valid. */
    assert_string_equal(old_kid, old_copy);
    assert_non_null(strstr(old_jwks, old_copy));
    assert_int_equal(parley_keyring_sign(kr, 1, "{}", 2, header, sizeof header), 0);
    assert_non_null(strstr(header, new_kid));
    /* The same set again: nothing changes. */
    assert_int_equal(parley_keyring_set_signing(kr, seeds, 2, &changed), 0);
    assert_false(changed);
    /* Only the new key: the old one leaves the JWK Set. */
    assert_int_equal(parley_keyring_set_signing(kr, seeds, 1, &changed), 0);
    assert_true(changed);
    assert_null(strstr(parley_keyring_jwks(kr), old_copy));
    assert_int_equal(parley_keyring_set_signing(kr, seeds, 0, &changed), PARLEY_EINVAL);
    parley_keyring_free(kr);
}

int main(void)
{
    const struct CMUnitTest keyring_tests[] = {
        cmocka_unit_test(keyring_jwks_publishes_the_public_key),
        cmocka_unit_test(keyring_sign_header_format_and_verification),
        cmocka_unit_test(keyring_generate_makes_distinct_keys),
        cmocka_unit_test(keyring_token_round_trip_and_refusals),
        cmocka_unit_test(keyring_set_signing_publishes_both_and_signs_with_the_first),
    };
    return cmocka_run_group_tests_name("keyring", keyring_tests, NULL, NULL);
}
