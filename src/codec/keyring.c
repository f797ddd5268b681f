/*
 * keyring.c — the server's own keys for subscriptions (see keyring.h).
 *
 * The Ed25519 key is an OpenSSL EVP_PKEY made from its 32-byte seed. An
 * EVP_PKEY is safe to sign with from several threads at once as long as
 * each signature has its own EVP_MD_CTX, which is what sign() does; the
 * keyring is otherwise read-only after parley_keyring_new().
 *
 * Tokens are verified with codec/jwt.c first (HS256 only, constant-time
 * signature check, exp); only a token that passed is decoded again here for
 * its gen and wake claims.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/jwt.h"
#include "codec/keyring.h"
#include "parley/parley.h"
#include "util/base64url.h"

struct parley_keyring {
    EVP_PKEY *key;                                   /* the Ed25519 signing key */
    unsigned char secret[PARLEY_KEYRING_SECRET_LEN]; /* token HMAC secret */
    char kid[PARLEY_KEYRING_KID_MAX + 1];            /* "ds_" + thumbprint */
    char *jwks;                                      /* the public JWK Set, JSON text */
};

int parley_keyring_generate(unsigned char seed[PARLEY_KEYRING_SEED_LEN],
                            unsigned char secret[PARLEY_KEYRING_SECRET_LEN])
{
    if (RAND_priv_bytes(seed, PARLEY_KEYRING_SEED_LEN) != 1 ||
        RAND_priv_bytes(secret, PARLEY_KEYRING_SECRET_LEN) != 1)
        return PARLEY_ESTORE;
    return 0;
}

void parley_keyring_free(parley_keyring_t *kr)
{
    if (!kr)
        return;
    EVP_PKEY_free(kr->key);
    OPENSSL_cleanse(kr->secret, sizeof kr->secret);
    free(kr->jwks);
    free(kr);
}

int parley_keyring_new(const unsigned char *seed, size_t seed_len, const unsigned char *secret,
                       size_t secret_len, parley_keyring_t **out)
{
    unsigned char pub[32];
    size_t pub_len = sizeof pub;
    char x[64], thumb_b64[48], thumb_json[128];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    int rc = PARLEY_ENOMEM;
    if (seed_len != PARLEY_KEYRING_SEED_LEN || secret_len != PARLEY_KEYRING_SECRET_LEN)
        return PARLEY_EINVAL;
    parley_keyring_t *kr = calloc(1, sizeof *kr);
    if (!kr)
        return PARLEY_ENOMEM;
    kr->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, seed_len);
    if (!kr->key || EVP_PKEY_get_raw_public_key(kr->key, pub, &pub_len) != 1 || pub_len != 32) {
        rc = PARLEY_EINVAL;
        goto out_free;
    }
    memcpy(kr->secret, secret, secret_len);
    parley_base64url_encode(pub, pub_len, x);
    /* RFC 7638: the required members, sorted, no whitespace. */
    snprintf(thumb_json, sizeof thumb_json, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}",
             x);
    SHA256((const unsigned char *)thumb_json, strlen(thumb_json), digest);
    parley_base64url_encode(digest, sizeof digest, thumb_b64);
    snprintf(kr->kid, sizeof kr->kid, "ds_%s", thumb_b64);
    json_t *jwks = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:s}]}", "keys", "kty", "OKP", "crv",
                             "Ed25519", "kid", kr->kid, "use", "sig", "alg", "EdDSA", "x", x);
    kr->jwks = jwks ? json_dumps(jwks, JSON_COMPACT) : NULL;
    json_decref(jwks);
    if (!kr->jwks)
        goto out_free;
    *out = kr;
    return 0;

out_free:
    parley_keyring_free(kr);
    return rc;
}

const char *parley_keyring_kid(const parley_keyring_t *kr)
{
    return kr->kid;
}

const char *parley_keyring_jwks(const parley_keyring_t *kr)
{
    return kr->jwks;
}

int parley_keyring_sign(const parley_keyring_t *kr, int64_t t, const void *body, size_t len,
                        char *out, size_t cap)
{
    char prefix[32];
    unsigned char sig[64];
    size_t sig_len = sizeof sig;
    char sig_b64[100];
    int rc = PARLEY_ENOMEM;
    int plen = snprintf(prefix, sizeof prefix, "%lld.", (long long)t);
    unsigned char *msg = malloc((size_t)plen + len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!msg || !ctx)
        goto out_free;
    memcpy(msg, prefix, (size_t)plen);
    if (len)
        memcpy(msg + plen, body, len);
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, kr->key) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, msg, (size_t)plen + len) != 1)
        goto out_free;
    parley_base64url_encode(sig, sig_len, sig_b64);
    int n = snprintf(out, cap, "t=%lld,kid=%s,ed25519=%s", (long long)t, kr->kid, sig_b64);
    rc = n > 0 && (size_t)n < cap ? 0 : PARLEY_ETOOBIG;
out_free:
    EVP_MD_CTX_free(ctx);
    free(msg);
    return rc;
}

int parley_keyring_token_issue(const parley_keyring_t *kr, const char *sub_id, int64_t gen,
                               const char *wake_id, int64_t exp_s, char **out)
{
    json_t *claims = json_pack("{s:s, s:I, s:s, s:I}", "sub", sub_id, "gen", (json_int_t)gen,
                               "wake", wake_id, "exp", (json_int_t)exp_s);
    char *payload = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
    json_decref(claims);
    if (!payload)
        return PARLEY_ENOMEM;
    int rc = parley_jwt_sign_hs256(payload, kr->secret, sizeof kr->secret, out);
    free(payload);
    return rc;
}

int parley_keyring_token_check(const parley_keyring_t *kr, const char *token, const char *sub_id,
                               int64_t now_s, int64_t *gen, char *wake_id, bool *expired)
{
    parley_jwt_claims_t claims;
    const char *why = NULL;
    *expired = false;
    int rc = parley_jwt_verify(token, kr->secret, sizeof kr->secret, now_s, &claims, &why);
    if (rc == PARLEY_ENOMEM)
        return rc;
    if (rc) {
        *expired = why && strcmp(why, "token expired") == 0;
        return PARLEY_EINVAL;
    }
    if (!claims.has_exp || strcmp(claims.sub, sub_id) != 0)
        return PARLEY_EINVAL;
    /* Signed by us: decode the payload once more for the wake claims. */
    const char *p1 = strchr(token, '.');
    const char *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
    if (!p2)
        return PARLEY_EINVAL;
    size_t n = (size_t)(p2 - p1 - 1), len = 0;
    unsigned char *buf = malloc(n * 3 / 4 + 1);
    if (!buf)
        return PARLEY_ENOMEM;
    rc = parley_base64url_decode(p1 + 1, n, buf, n * 3 / 4 + 1, &len);
    json_t *v = rc ? NULL : json_loadb((const char *)buf, len, 0, NULL);
    free(buf);
    json_t *g = json_object_get(v, "gen"), *w = json_object_get(v, "wake");
    rc = PARLEY_EINVAL;
    if (json_is_integer(g) && json_is_string(w) &&
        json_string_length(w) <= PARLEY_KEYRING_WAKE_MAX) {
        *gen = (int64_t)json_integer_value(g);
        snprintf(wake_id, PARLEY_KEYRING_WAKE_MAX + 1, "%s", json_string_value(w));
        rc = 0;
    }
    json_decref(v);
    return rc;
}
