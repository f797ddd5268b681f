/*
 * keyring.c — the server's own keys for subscriptions (see keyring.h).
 *
 * The Ed25519 key is an OpenSSL EVP_PKEY made from its 32-byte seed. An
 * EVP_PKEY is safe to sign with from several threads at once as long as
 * each signature has its own EVP_MD_CTX, which is what sign() does.
 *
 * ROTATION. The signing keys are one immutable key set (the active key,
 * its kid, the JWK Set text) behind an atomic pointer: readers load it
 * and use it without a lock; parley_keyring_set_signing() builds a new
 * set and publishes it with one store. A replaced set is not freed but
 * kept on a list until parley_keyring_free(), so a kid or JWK Set a
 * reader was handed stays valid for the keyring's life (sets change only
 * when an operator rotates or a key retires: a few small sets). The token
 * secret never changes.
 *
 * Tokens are verified with codec/jwt.c first (HS256 only, constant-time
 * signature check, exp); only a token that passed is decoded again here for
 * its gen and wake claims.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* One set of signing keys, immutable once published: the active key and
 * the JWK Set of every key published. */
typedef struct keyset {
    EVP_PKEY *key;                        /* the active Ed25519 signing key */
    char kid[PARLEY_KEYRING_KID_MAX + 1]; /* its kid: "ds_" + thumbprint */
    char *jwks;                           /* the public JWK Set, JSON text */
    struct keyset *older;                 /* the set this one replaced (kept until free) */
} keyset_t;

struct parley_keyring {
    _Atomic(keyset_t *) cur;                         /* the published set */
    pthread_mutex_t lock;                            /* serialises set_signing */
    unsigned char secret[PARLEY_KEYRING_SECRET_LEN]; /* token HMAC secret */
};

int parley_keyring_generate(unsigned char seed[PARLEY_KEYRING_SEED_LEN],
                            unsigned char secret[PARLEY_KEYRING_SECRET_LEN])
{
    if (RAND_priv_bytes(seed, PARLEY_KEYRING_SEED_LEN) != 1 ||
        RAND_priv_bytes(secret, PARLEY_KEYRING_SECRET_LEN) != 1)
        return PARLEY_ESTORE;
    return 0;
}

static void keyset_free(keyset_t *ks)
{
    while (ks) {
        keyset_t *older = ks->older;
        EVP_PKEY_free(ks->key);
        free(ks->jwks);
        free(ks);
        ks = older;
    }
}

void parley_keyring_free(parley_keyring_t *kr)
{
    if (!kr)
        return;
    keyset_free(atomic_load(&kr->cur));
    pthread_mutex_destroy(&kr->lock);
    OPENSSL_cleanse(kr->secret, sizeof kr->secret);
    free(kr);
}

/* The key of seed, its kid and its public JWK (new reference) into *jwk. */
static int key_of(const unsigned char *seed, EVP_PKEY **key, char kid[PARLEY_KEYRING_KID_MAX + 1],
                  json_t **jwk)
{
    unsigned char pub[32];
    size_t pub_len = sizeof pub;
    char x[64], thumb_b64[48], thumb_json[128];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, PARLEY_KEYRING_SEED_LEN);
    if (!*key || EVP_PKEY_get_raw_public_key(*key, pub, &pub_len) != 1 || pub_len != 32) {
        EVP_PKEY_free(*key);
        *key = NULL;
        return PARLEY_EINVAL;
    }
    parley_base64url_encode(pub, pub_len, x);
    /* RFC 7638: the required members, sorted, no whitespace. */
    snprintf(thumb_json, sizeof thumb_json, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}",
             x);
    SHA256((const unsigned char *)thumb_json, strlen(thumb_json), digest);
    parley_base64url_encode(digest, sizeof digest, thumb_b64);
    snprintf(kid, PARLEY_KEYRING_KID_MAX + 1, "ds_%s", thumb_b64);
    *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "kid", kid,
                     "use", "sig", "alg", "EdDSA", "x", x);
    if (!*jwk) {
        EVP_PKEY_free(*key);
        *key = NULL;
        return PARLEY_ENOMEM;
    }
    return 0;
}

int parley_keyring_kid_of(const unsigned char *seed, size_t seed_len,
                          char kid[PARLEY_KEYRING_KID_MAX + 1])
{
    EVP_PKEY *key = NULL;
    json_t *jwk = NULL;
    if (seed_len != PARLEY_KEYRING_SEED_LEN)
        return PARLEY_EINVAL;
    int rc = key_of(seed, &key, kid, &jwk);
    EVP_PKEY_free(key);
    json_decref(jwk);
    return rc;
}

/* A key set from n seeds (the first active). */
static int keyset_new(const unsigned char *seeds, size_t n, keyset_t **out)
{
    int rc = PARLEY_ENOMEM;
    keyset_t *ks = calloc(1, sizeof *ks);
    json_t *keys = json_array();
    if (!ks || !keys)
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY *key = NULL;
        char kid[PARLEY_KEYRING_KID_MAX + 1];
        json_t *jwk = NULL;
        rc = key_of(seeds + i * PARLEY_KEYRING_SEED_LEN, &key, kid, &jwk);
        if (rc)
            goto out_free;
        if (i == 0) {
            ks->key = key;
            memcpy(ks->kid, kid, sizeof kid);
        } else {
            EVP_PKEY_free(key);
        }
        if (json_array_append_new(keys, jwk)) {
            rc = PARLEY_ENOMEM;
            goto out_free;
        }
    }
    json_t *set = json_pack("{s:O}", "keys", keys);
    ks->jwks = set ? json_dumps(set, JSON_COMPACT) : NULL;
    json_decref(set);
    rc = ks->jwks ? 0 : PARLEY_ENOMEM;
out_free:
    json_decref(keys);
    if (rc == 0 && !ks->key)
        rc = PARLEY_EINVAL; /* no seed */
    if (rc) {
        keyset_free(ks);
        return rc;
    }
    *out = ks;
    return 0;
}

int parley_keyring_new(const unsigned char *seed, size_t seed_len, const unsigned char *secret,
                       size_t secret_len, parley_keyring_t **out)
{
    if (seed_len != PARLEY_KEYRING_SEED_LEN || secret_len != PARLEY_KEYRING_SECRET_LEN)
        return PARLEY_EINVAL;
    parley_keyring_t *kr = calloc(1, sizeof *kr);
    if (!kr)
        return PARLEY_ENOMEM;
    keyset_t *ks = NULL;
    int rc = keyset_new(seed, 1, &ks);
    if (rc) {
        free(kr);
        return rc;
    }
    pthread_mutex_init(&kr->lock, NULL);
    atomic_init(&kr->cur, ks);
    memcpy(kr->secret, secret, secret_len);
    *out = kr;
    return 0;
}

int parley_keyring_set_signing(parley_keyring_t *kr, const unsigned char *seeds, size_t n,
                               bool *changed)
{
    keyset_t *ks = NULL;
    *changed = false;
    int rc = keyset_new(seeds, n, &ks);
    if (rc)
        return rc;
    pthread_mutex_lock(&kr->lock);
    keyset_t *cur = atomic_load(&kr->cur);
    if (strcmp(cur->jwks, ks->jwks) == 0) {
        keyset_free(ks); /* the same keys: nothing to publish */
    } else {
        ks->older = cur;
        atomic_store(&kr->cur, ks);
        *changed = true;
    }
    pthread_mutex_unlock(&kr->lock);
    return 0;
}

const char *parley_keyring_kid(const parley_keyring_t *kr)
{
    return atomic_load(&((parley_keyring_t *)kr)->cur)->kid;
}

const char *parley_keyring_jwks(const parley_keyring_t *kr)
{
    return atomic_load(&((parley_keyring_t *)kr)->cur)->jwks;
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
    const keyset_t *ks = atomic_load(&((parley_keyring_t *)kr)->cur);
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, ks->key) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, msg, (size_t)plen + len) != 1)
        goto out_free;
    parley_base64url_encode(sig, sig_len, sig_b64);
    int n = snprintf(out, cap, "t=%lld,kid=%s,ed25519=%s", (long long)t, ks->kid, sig_b64);
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
