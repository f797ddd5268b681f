/*
 * jwt.c — HS256 JSON Web Token verification (the rules are in jwt.h).
 *
 * The checks run in a fixed order and the first failure is the reason
 * reported:
 *
 *   length and shape → base64url of all three segments → header JSON →
 *   alg == "HS256" → no "crit" → signature (constant time) → payload JSON →
 *   claim types → sub → exp → nbf
 *
 * Nothing in the payload is looked at before the signature has been checked,
 * and the signature is checked only after the algorithm has been pinned to
 * HS256, so a token can never choose how it is verified. The decoded
 * segments live in one heap buffer of the token's length (a decoded segment
 * is at most 3/4 of its encoding), freed on every path.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "codec/jwt.h"
#include "parley/parley.h"
#include "util/base64url.h"

#define SIG_LEN 32 /* bytes of an HMAC-SHA256 */

static const char why_too_long[] = "malformed token: longer than 8192 characters";
static const char why_shape[] = "malformed token: expected three base64url segments";
static const char why_base64[] = "malformed token: a segment is not valid base64url";
static const char why_header[] = "malformed token: header is not a JSON object";
static const char why_payload[] = "malformed token: payload is not a JSON object";
static const char why_alg[] = "unsupported algorithm: only HS256 is accepted";
static const char why_crit[] = "unsupported critical header";
static const char why_sig[] = "bad signature";
static const char why_expired[] = "token expired";
static const char why_nbf[] = "token not yet valid";
static const char why_no_sub[] = "missing sub claim";
static const char why_bad_sub[] = "invalid sub claim: must be a string of 1 to 255 bytes";
static const char why_bad_time[] = "invalid exp, nbf or iat claim: must be a number";
static const char why_no_secret[] = "no secret configured";
static const char why_nomem[] = "out of memory";

/* a + b, clamped to the int64_t range. */
static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/*
 * A NumericDate claim as whole seconds: integers as they are, reals rounded
 * up (round_up) or down and clamped to the int64_t range. Rounding exp and
 * nbf up keeps "now >= exp" exact for an integer now. 0 or PARLEY_EINVAL.
 */
static int numeric_date(const json_t *v, bool round_up, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_real(v))
        return PARLEY_EINVAL;
    double d = json_real_value(v); /* jansson never holds NaN or infinities */
    if (d >= 9223372036854775807.0) {
        *out = INT64_MAX;
    } else if (d <= -9223372036854775808.0) {
        *out = INT64_MIN;
    } else {
        int64_t t = (int64_t)d; /* truncates toward zero */
        if (round_up && (double)t < d)
            t++;
        else if (!round_up && (double)t > d)
            t--;
        *out = t;
    }
    return 0;
}

/* Parse bytes[0..n) as a JSON object, refusing duplicate names. New reference or NULL. */
static json_t *load_object(const unsigned char *bytes, size_t n)
{
    json_error_t err;
    json_t *v = json_loadb((const char *)bytes, n, JSON_REJECT_DUPLICATES, &err);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Read the claims of a verified payload into *c. 0, or PARLEY_EINVAL with *why. */
static int read_claims(const json_t *payload, int64_t now_s, parley_jwt_claims_t *c,
                       const char **why)
{
    static const struct {
        const char *name;
        bool round_up;
        size_t value_off;
        size_t has_off;
    } times[] = {
        {"exp", true, offsetof(parley_jwt_claims_t, exp), offsetof(parley_jwt_claims_t, has_exp)},
        {"nbf", true, offsetof(parley_jwt_claims_t, nbf), offsetof(parley_jwt_claims_t, has_nbf)},
        {"iat", false, offsetof(parley_jwt_claims_t, iat), offsetof(parley_jwt_claims_t, has_iat)},
    };
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        const json_t *v = json_object_get(payload, times[i].name);
        if (!v)
            continue;
        int64_t t;
        if (numeric_date(v, times[i].round_up, &t) != 0) {
            *why = why_bad_time;
            return PARLEY_EINVAL;
        }
        memcpy((char *)c + times[i].value_off, &t, sizeof t);
        *(bool *)((char *)c + times[i].has_off) = true;
    }

    const json_t *sub = json_object_get(payload, "sub");
    if (!sub) {
        *why = why_no_sub;
        return PARLEY_EINVAL;
    }
    size_t sub_len = json_string_length(sub); /* 0 when not a string */
    if (!json_is_string(sub) || sub_len == 0 || sub_len > PARLEY_JWT_SUB_MAX) {
        *why = why_bad_sub;
        return PARLEY_EINVAL;
    }
    memcpy(c->sub, json_string_value(sub), sub_len);
    c->sub[sub_len] = '\0';

    if (c->has_exp && now_s >= sat_add(c->exp, PARLEY_JWT_LEEWAY_S)) {
        *why = why_expired;
        return PARLEY_EINVAL;
    }
    if (c->has_nbf && now_s < sat_add(c->nbf, -PARLEY_JWT_LEEWAY_S)) {
        *why = why_nbf;
        return PARLEY_EINVAL;
    }
    return 0;
}

int parley_jwt_verify(const char *token, const unsigned char *secret, size_t secret_len,
                      int64_t now_s, parley_jwt_claims_t *out, const char **why)
{
    const char *reason = NULL;
    int rc = PARLEY_EINVAL;
    unsigned char *buf = NULL;
    json_t *header = NULL, *payload = NULL;

    if (!secret || secret_len == 0 || secret_len > INT32_MAX) {
        reason = why_no_secret;
        goto out;
    }
    if (!token) {
        reason = why_shape;
        goto out;
    }
    size_t n = strnlen(token, PARLEY_JWT_MAX_TOKEN + 1);
    if (n > PARLEY_JWT_MAX_TOKEN) {
        reason = why_too_long;
        goto out;
    }

    /* Split into header64 "." payload64 "." sig64, with no further dot. */
    const char *dot1 = memchr(token, '.', n);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', n - (size_t)(dot2 + 1 - token))) {
        reason = why_shape;
        goto out;
    }
    size_t h64 = (size_t)(dot1 - token);
    size_t p64 = (size_t)(dot2 - dot1 - 1);
    size_t s64 = n - (size_t)(dot2 + 1 - token);

    /* All three decoded segments fit in n bytes. */
    buf = malloc(n + 1);
    if (!buf) {
        reason = why_nomem;
        rc = PARLEY_ENOMEM;
        goto out;
    }
    unsigned char *hdr = buf, *pay, *sig;
    size_t hdr_len, pay_len, sig_len;
    if (parley_base64url_decode(token, h64, hdr, n, &hdr_len) != 0)
        goto bad_base64;
    pay = hdr + hdr_len;
    if (parley_base64url_decode(dot1 + 1, p64, pay, n - hdr_len, &pay_len) != 0)
        goto bad_base64;
    sig = pay + pay_len;
    if (parley_base64url_decode(dot2 + 1, s64, sig, n - hdr_len - pay_len, &sig_len) != 0)
        goto bad_base64;

    header = load_object(hdr, hdr_len);
    if (!header) {
        reason = why_header;
        goto out;
    }
    const json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0) {
        reason = why_alg;
        goto out;
    }
    if (json_object_get(header, "crit")) {
        reason = why_crit;
        goto out;
    }

    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)token,
              (size_t)(dot2 - token), mac, &mac_len) ||
        mac_len != SIG_LEN) {
        reason = why_nomem; /* HMAC fails only when OpenSSL cannot allocate */
        rc = PARLEY_ENOMEM;
        goto out;
    }
    if (sig_len != SIG_LEN || CRYPTO_memcmp(mac, sig, SIG_LEN) != 0) {
        reason = why_sig;
        goto out;
    }

    payload = load_object(pay, pay_len);
    if (!payload) {
        reason = why_payload;
        goto out;
    }
    parley_jwt_claims_t claims;
    if (read_claims(payload, now_s, &claims, &reason) != 0)
        goto out;
    *out = claims;
    rc = 0;
    goto out;

bad_base64:
    reason = why_base64;
out:
    json_decref(payload);
    json_decref(header);
    free(buf);
    if (rc != 0 && why)
        *why = reason;
    return rc;
}

int parley_jwt_sign_hs256(const char *payload_json, const unsigned char *secret, size_t len,
                          char **out_token)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    if (!payload_json || !secret || len == 0 || len > INT32_MAX || !out_token)
        return PARLEY_EINVAL;
    size_t plen = strlen(payload_json);
    size_t h64 = parley_base64url_encoded_len(sizeof header - 1);
    if (plen > PARLEY_JWT_MAX_TOKEN)
        return PARLEY_ETOOBIG;
    size_t p64 = parley_base64url_encoded_len(plen);
    size_t s64 = parley_base64url_encoded_len(SIG_LEN);
    size_t total = h64 + 1 + p64 + 1 + s64;
    if (total > PARLEY_JWT_MAX_TOKEN)
        return PARLEY_ETOOBIG;

    char *tok = malloc(total + 1);
    if (!tok)
        return PARLEY_ENOMEM;
    parley_base64url_encode((const unsigned char *)header, sizeof header - 1, tok);
    tok[h64] = '.';
    parley_base64url_encode((const unsigned char *)payload_json, plen, tok + h64 + 1);
    tok[h64 + 1 + p64] = '.';

    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (!HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)tok, h64 + 1 + p64, mac,
              &mac_len) ||
        mac_len != SIG_LEN) {
        free(tok);
        return PARLEY_ENOMEM;
    }
    parley_base64url_encode(mac, SIG_LEN, tok + h64 + 1 + p64 + 1);
    *out_token = tok;
    return 0;
}

bool parley_jwt_secret_equal(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la > lb ? la : lb;
    /*
     * Past its end, each string reads its own terminating NUL, so the loop
     * runs n times whatever the contents. Unequal lengths already make the
     * answer false; the loop still runs, so that the time tells nothing about
     * where the strings first differ.
     */
    volatile unsigned diff = la != lb;
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = (unsigned char)a[i < la ? i : la];
        unsigned char cb = (unsigned char)b[i < lb ? i : lb];
        diff |= (unsigned)(ca ^ cb);
    }
    return diff == 0;
}
