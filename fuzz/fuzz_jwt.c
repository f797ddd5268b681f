/*
 * fuzz_jwt.c — libFuzzer harness for JWT verification and signing
 * (parley_jwt_verify and parley_jwt_sign_hs256, src/codec/jwt.c).
 *
 * The first input byte picks a mode; the rest is its material:
 *   0  a whole token, verified as the server verifies a bearer token;
 *   1  a payload, signed with parley_jwt_sign_hs256 and then verified, so
 *      the fuzzer reaches the claim rules behind the signature check;
 *   2  a header and a payload separated by the first newline, encoded and
 *      signed by the harness itself (HMAC-SHA256, with OpenSSL), so the
 *      fuzzer reaches the header rules (alg, crit) with valid signatures.
 * Verification runs at a fixed time, FUZZ_NOW. The harness aborts when one
 * of these invariants breaks:
 *
 *   1. verify returns 0 or PARLEY_EINVAL (PARLEY_ENOMEM only when memory
 *      runs out); on refusal *why is one of the documented reasons and the
 *      claims are untouched; on success sub is 1..255 bytes, NUL-terminated.
 *   2. An accepted token has exactly three segments and at most 8192
 *      characters.
 *   3. Modes 1 and 2 agree with an oracle written here from the rules in
 *      jwt.h: accepted exactly when the header is an object whose alg is
 *      the string "HS256" with no crit member, the payload an object
 *      (no duplicate names in either), sub a string of 1 to 255 bytes,
 *      exp/nbf/iat numbers when present, FUZZ_NOW < exp and
 *      FUZZ_NOW >= nbf. The accepted claims are the payload's.
 *   4. A token accepted under one secret is refused under another with
 *      "bad signature", and any change to its last signature character
 *      makes it refused.
 *   5. An empty secret refuses every token.
 *
 * fuzz-sources: src/codec/jwt.c src/util/base64url.c
 * fuzz-libs: -ljansson -lcrypto
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "codec/jwt.h"
#include "harness.h"
#include "parley/parley.h"
#include "util/base64url.h"

#define FUZZ_NOW 1700000000LL /* the verification time, seconds since the epoch */

static const unsigned char secret[] = "fuzz-secret";
static const unsigned char other_secret[] = "fuzz-secreT";

static const char *const reasons[] = {
    "malformed token: longer than 8192 characters",
    "malformed token: expected three base64url segments",
    "malformed token: a segment is not valid base64url",
    "malformed token: header is not a JSON object",
    "malformed token: payload is not a JSON object",
    "unsupported algorithm: only HS256 is accepted",
    "unsupported critical header",
    "bad signature",
    "token expired",
    "token not yet valid",
    "missing sub claim",
    "invalid sub claim: must be a string of 1 to 255 bytes",
    "invalid exp, nbf or iat claim: must be a number",
    "no secret configured",
    "out of memory",
    NULL,
};

static bool known_reason(const char *why)
{
    for (size_t i = 0; why && reasons[i]; i++)
        if (strcmp(why, reasons[i]) == 0)
            return true;
    return false;
}

/* Verify and check invariants 1 and 2; returns rc, *why and *claims. */
static int verify(const char *token, const unsigned char *key, size_t key_len,
                  parley_jwt_claims_t *claims, const char **why)
{
    memset(claims, 0xA5, sizeof *claims);
    parley_jwt_claims_t untouched;
    memset(&untouched, 0xA5, sizeof untouched);
    *why = NULL;
    int rc = parley_jwt_verify(token, key, key_len, FUZZ_NOW, claims, why);
    if (rc != 0) {
        FUZZ_CHECK(rc == PARLEY_EINVAL || rc == PARLEY_ENOMEM);
        FUZZ_CHECK(known_reason(*why));
        FUZZ_CHECK(memcmp(claims, &untouched, sizeof untouched) == 0);
        return rc;
    }
    size_t sub_len = strnlen(claims->sub, sizeof claims->sub);
    FUZZ_CHECK(sub_len >= 1 && sub_len <= PARLEY_JWT_SUB_MAX);
    size_t n = strlen(token), dots = 0;
    for (size_t i = 0; i < n; i++)
        dots += token[i] == '.';
    FUZZ_CHECK(dots == 2 && n <= PARLEY_JWT_MAX_TOKEN);
    return rc;
}

/* Oracle for one NumericDate claim: false when present and not a number. */
static bool time_ok(json_t *payload, const char *name, bool *has, double *value)
{
    json_t *v = json_object_get(payload, name);
    *has = v != NULL;
    if (!v)
        return true;
    if (!json_is_number(v))
        return false;
    *value = json_number_value(v);
    return true;
}

/* Invariant 3's oracle: whether header and payload (JSON texts) make an acceptable token. */
static bool oracle_accepts(const char *hdr, size_t hdr_len, const char *pay, size_t pay_len,
                           json_t **payload_out)
{
    *payload_out = NULL;
    json_error_t err;
    json_t *h = json_loadb(hdr, hdr_len, JSON_REJECT_DUPLICATES, &err);
    bool ok = json_is_object(h);
    if (ok) {
        json_t *alg = json_object_get(h, "alg");
        ok = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0 &&
             json_string_length(alg) == 5 && !json_object_get(h, "crit");
    }
    json_decref(h);
    if (!ok)
        return false;
    json_t *p = json_loadb(pay, pay_len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(p)) {
        json_decref(p);
        return false;
    }
    *payload_out = p;
    json_t *sub = json_object_get(p, "sub");
    if (!json_is_string(sub) || json_string_length(sub) < 1 ||
        json_string_length(sub) > PARLEY_JWT_SUB_MAX)
        return false;
    bool has_exp, has_nbf, has_iat;
    double exp = 0, nbf = 0, iat = 0;
    if (!time_ok(p, "exp", &has_exp, &exp) || !time_ok(p, "nbf", &has_nbf, &nbf) ||
        !time_ok(p, "iat", &has_iat, &iat))
        return false;
    if (has_exp && (double)FUZZ_NOW >= exp)
        return false;
    if (has_nbf && (double)FUZZ_NOW < nbf)
        return false;
    return true;
}

/* Invariant 4 on an accepted token (modified in place, then restored). */
static void check_signature_binding(char *token)
{
    parley_jwt_claims_t c;
    const char *why;
    FUZZ_CHECK(verify(token, other_secret, sizeof other_secret - 1, &c, &why) == PARLEY_EINVAL);
    FUZZ_CHECK(strcmp(why, "bad signature") == 0);
    FUZZ_CHECK(verify(token, secret, 0, &c, &why) == PARLEY_EINVAL); /* 5. */
    size_t n = strlen(token);
    char last = token[n - 1];
    static const char alphabet[] = "AQgw-_09aZ";
    for (const char *a = alphabet; *a; a++) {
        if (*a == last)
            continue;
        token[n - 1] = *a;
        FUZZ_CHECK(verify(token, secret, sizeof secret - 1, &c, &why) == PARLEY_EINVAL);
    }
    token[n - 1] = last;
}

/* Compare accepted claims with the oracle's payload. */
static void check_claims(const parley_jwt_claims_t *c, json_t *payload)
{
    json_t *sub = json_object_get(payload, "sub");
    FUZZ_CHECK(strlen(c->sub) == json_string_length(sub) &&
               memcmp(c->sub, json_string_value(sub), json_string_length(sub)) == 0);
    FUZZ_CHECK(c->has_exp == (json_object_get(payload, "exp") != NULL));
    FUZZ_CHECK(c->has_nbf == (json_object_get(payload, "nbf") != NULL));
    FUZZ_CHECK(c->has_iat == (json_object_get(payload, "iat") != NULL));
    json_t *exp = json_object_get(payload, "exp");
    if (json_is_integer(exp))
        FUZZ_CHECK(c->exp == (int64_t)json_integer_value(exp));
}

/* Mode 2: base64url(hdr) "." base64url(pay) "." base64url(HMAC); malloc'd. */
static char *make_token(const char *hdr, size_t hdr_len, const char *pay, size_t pay_len)
{
    size_t h64 = parley_base64url_encoded_len(hdr_len), p64 = parley_base64url_encoded_len(pay_len);
    size_t s64 = parley_base64url_encoded_len(32);
    char *t = malloc(h64 + p64 + s64 + 3);
    FUZZ_CHECK(t != NULL);
    parley_base64url_encode((const unsigned char *)hdr, hdr_len, t);
    t[h64] = '.';
    parley_base64url_encode((const unsigned char *)pay, pay_len, t + h64 + 1);
    t[h64 + 1 + p64] = '.';
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    FUZZ_CHECK(HMAC(EVP_sha256(), secret, (int)(sizeof secret - 1), (const unsigned char *)t,
                    h64 + 1 + p64, mac, &mac_len) != NULL &&
               mac_len == 32);
    parley_base64url_encode(mac, 32, t + h64 + p64 + 2);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] % 3;
    char *text = fuzz_cstr(data + 1, size - 1);
    size_t len = strlen(text); /* up to an embedded NUL */
    parley_jwt_claims_t c;
    const char *why;

    if (mode == 0) {
        if (verify(text, secret, sizeof secret - 1, &c, &why) == 0)
            check_signature_binding(text);
        FUZZ_CHECK(verify(text, secret, 0, &c, &why) == PARLEY_EINVAL); /* 5. */
        free(text);
        return 0;
    }

    static const char std_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const char *hdr = std_header, *pay = text;
    size_t hdr_len = sizeof std_header - 1, pay_len = len;
    char *token = NULL;
    if (mode == 1) {
        int rc = parley_jwt_sign_hs256(text, secret, sizeof secret - 1, &token);
        if (rc == PARLEY_ETOOBIG) {
            free(text);
            return 0;
        }
        FUZZ_CHECK(rc == 0 && token != NULL);
    } else {
        const char *nl = memchr(text, '\n', len);
        if (!nl) {
            free(text);
            return 0;
        }
        hdr = text;
        hdr_len = (size_t)(nl - text);
        pay = nl + 1;
        pay_len = len - hdr_len - 1;
        token = make_token(hdr, hdr_len, pay, pay_len);
    }

    json_t *payload = NULL;
    bool expect = oracle_accepts(hdr, hdr_len, pay, pay_len, &payload);
    bool too_long = strlen(token) > PARLEY_JWT_MAX_TOKEN;
    int rc = verify(token, secret, sizeof secret - 1, &c, &why);
    if (too_long) {
        FUZZ_CHECK(rc == PARLEY_EINVAL);
    } else if (rc != PARLEY_ENOMEM) {
        if (expect != (rc == 0))
            fprintf(stderr, "oracle %s, verify %s (%s)\n", expect ? "accepts" : "refuses",
                    rc == 0 ? "accepts" : "refuses", rc == 0 ? "-" : why);
        FUZZ_CHECK(expect == (rc == 0));
        /* A well-formed signed token is never refused for its shape or signature. */
        FUZZ_CHECK(rc == 0 || (strcmp(why, "bad signature") != 0 &&
                               strncmp(why, "malformed token: a segment", 26) != 0 &&
                               strncmp(why, "malformed token: expected", 25) != 0));
        if (rc == 0) {
            check_claims(&c, payload);
            check_signature_binding(token);
        }
    }
    json_decref(payload);
    free(token);
    free(text);
    return 0;
}
