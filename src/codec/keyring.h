/*
 * keyring.h — the server's own keys for subscriptions (PROTOCOL.md §6.5,
 * §7.1, §12.9, §12.10).
 *
 * Two secrets, made once from the OS CSPRNG and kept in the store (so they
 * survive restarts; core/subscription.c loads or creates them):
 *
 *   1. an Ed25519 key that signs webhook deliveries. Its public half is
 *      published as a JWK Set; its kid is "ds_" + the base64url SHA-256 JWK
 *      thumbprint of the public key (RFC 7638), so it is derived from the
 *      key material and stable for the key's life. A delivery carries
 *        Webhook-Signature: t=<unix seconds>,kid=<kid>,ed25519=<sig>
 *      where sig is the unpadded base64url signature over "<t>.<raw body>".
 *   2. a 32-byte HMAC secret for callback and claim tokens: HS256 JWTs
 *      (codec/jwt.h) whose payload names the subscription (sub), the wake's
 *      generation (gen) and wake id (wake), and an expiry (exp). They are
 *      bearer tokens for one wake of one subscription, never service JWTs:
 *      the secret is not the --jwt-secret.
 *
 * The signing key rotates (parley_keyring_set_signing; core/subscription.c
 * decides which keys are published from the store's server_keys rows):
 * deliveries are signed with the active key, and the JWK Set lists the
 * active key first, then the older keys still in their overlap. The token
 * secret does not rotate.
 *
 * Ownership: a keyring is created once at start-up; strings it returns
 * are borrowed for its life (a rotation keeps the old ones until free).
 * Threads: every function may be called from any thread, concurrently.
 */
#ifndef PARLEY_CODEC_KEYRING_H
#define PARLEY_CODEC_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARLEY_KEYRING_SEED_LEN   32  /* bytes of the Ed25519 private key */
#define PARLEY_KEYRING_SECRET_LEN 32  /* bytes of the token HMAC secret */
#define PARLEY_KEYRING_KID_MAX    64  /* bytes of a kid */
#define PARLEY_KEYRING_SIG_HEADER 160 /* room for a Webhook-Signature value */
#define PARLEY_KEYRING_WAKE_MAX   40  /* bytes of a wake id in a token */

typedef struct parley_keyring parley_keyring_t;

/* Fill seed and secret with fresh random bytes. 0 or PARLEY_ESTORE (the
 * CSPRNG failed). */
int parley_keyring_generate(unsigned char seed[PARLEY_KEYRING_SEED_LEN],
                            unsigned char secret[PARLEY_KEYRING_SECRET_LEN]);

/* A keyring from stored material (copied). *out is owned by the caller
 * and freed with parley_keyring_free(). 0, PARLEY_EINVAL or PARLEY_ENOMEM. */
int parley_keyring_new(const unsigned char *seed, size_t seed_len, const unsigned char *secret,
                       size_t secret_len, parley_keyring_t **out);
/* Accepts NULL. */
void parley_keyring_free(parley_keyring_t *kr);

/* The active signing key's id. */
const char *parley_keyring_kid(const parley_keyring_t *kr);
/* The public JWK Set, {"keys":[{kty, crv, kid, use, alg, x}, ...]}, as JSON
 * text: the active key first, then the other published keys. */
const char *parley_keyring_jwks(const parley_keyring_t *kr);

/*
 * Publish n signing keys (n >= 1 seeds of PARLEY_KEYRING_SEED_LEN bytes,
 * back to back, copied): the first becomes the active key, all are in the
 * JWK Set. *changed tells whether the set differs from the one before.
 * 0, PARLEY_EINVAL (n = 0 or a bad seed) or PARLEY_ENOMEM (the old set
 * stays). Any thread.
 */
int parley_keyring_set_signing(parley_keyring_t *kr, const unsigned char *seeds, size_t n,
                               bool *changed);

/* The kid of the key made from seed. 0 or PARLEY_EINVAL. Pure. */
int parley_keyring_kid_of(const unsigned char *seed, size_t seed_len,
                          char kid[PARLEY_KEYRING_KID_MAX + 1]);

/*
 * The Webhook-Signature value for body[0..len) at time t (unix seconds),
 * into out (cap bytes, PARLEY_KEYRING_SIG_HEADER is enough). 0,
 * PARLEY_ETOOBIG or PARLEY_ENOMEM.
 */
int parley_keyring_sign(const parley_keyring_t *kr, int64_t t, const void *body, size_t len,
                        char *out, size_t cap);

/*
 * A token for wake wake_id (generation gen) of subscription sub_id,
 * valid until exp_s. *out is new malloc'd text the caller frees. 0 or a
 * PARLEY_E* error.
 */
int parley_keyring_token_issue(const parley_keyring_t *kr, const char *sub_id, int64_t gen,
                               const char *wake_id, int64_t exp_s, char **out);

/*
 * Check a token for subscription sub_id at time now_s: 0 with *gen and
 * wake_id (PARLEY_KEYRING_WAKE_MAX + 1 bytes) filled, or PARLEY_EINVAL with
 * *expired telling whether it was valid but expired (TOKEN_EXPIRED) or not
 * valid at all (TOKEN_INVALID: bad signature, another subscription's,
 * malformed). PARLEY_ENOMEM.
 */
int parley_keyring_token_check(const parley_keyring_t *kr, const char *token, const char *sub_id,
                               int64_t now_s, int64_t *gen, char *wake_id, bool *expired);

#endif
