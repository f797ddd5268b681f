/*
 * jwt.h — verification of HS256 JSON Web Tokens, and secret comparison.
 *
 * Parley authenticates a request with `Authorization: Bearer <token>`, where
 * the token is the admin key or a JWT (RFC 7519) that the application's own
 * auth signed with the shared --jwt-secret. The JWT's `sub` claim names the
 * user who owns what the request touches. This module decides whether a
 * token is acceptable and extracts its claims; mapping a refusal to a 401 is
 * the HTTP layer's job.
 *
 * Accepted tokens, and only these (DESIGN.md §2.5):
 *   1. Compact serialization: exactly three unpadded base64url segments
 *      joined by '.', at most PARLEY_JWT_MAX_TOKEN characters.
 *   2. The header is a JSON object whose "alg" is exactly "HS256". "none",
 *      any other HMAC size, any public-key algorithm, a missing or non-string
 *      alg are refused; this closes the classic algorithm-confusion attacks.
 *      "typ" is optional and not checked. A "crit" header is refused, since
 *      this module understands no extensions (RFC 7515 §4.1.11).
 *   3. The signature is HMAC-SHA256(secret, header64 "." payload64), 32
 *      bytes, compared in constant time. The payload is parsed only after the
 *      signature has been checked.
 *   4. The payload is a JSON object. `sub` is required: a string of 1 to
 *      PARLEY_JWT_SUB_MAX bytes. `exp`, `nbf` and `iat` are optional and, when
 *      present, numbers (RFC 7519 NumericDate, seconds since the epoch; a
 *      fractional value is rounded up for exp and nbf, down for iat).
 *   5. With L = PARLEY_JWT_LEEWAY_S: expired when now >= exp + L; not yet
 *      valid when now < nbf - L. iat is recorded but not judged.
 *   6. Duplicate member names in header or payload make the token malformed
 *      (RFC 7515 §5.2 lets a verifier refuse them; accepting one of two "alg"
 *      or "sub" values would be ambiguous).
 *
 * Refusal reasons. parley_jwt_verify() sets *why to one of these static
 * strings, so a log line or a 401 body can say which rule failed:
 *   "malformed token: ..."            (structure, base64url, JSON, length)
 *   "bad signature"
 *   "unsupported algorithm: only HS256 is accepted"
 *   "unsupported critical header"
 *   "token expired"
 *   "token not yet valid"
 *   "missing sub claim"
 *   "invalid sub claim: must be a string of 1 to 255 bytes"
 *   "invalid exp, nbf or iat claim: must be a number"
 *   "no secret configured"
 *
 * Pure functions (the clock is a parameter), thread-safe.
 */
#ifndef PARLEY_CODEC_JWT_H
#define PARLEY_CODEC_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARLEY_JWT_MAX_TOKEN 8192 /* longest token accepted, in characters */
#define PARLEY_JWT_SUB_MAX   255  /* longest sub, in bytes */
#define PARLEY_JWT_LEEWAY_S  0    /* clock skew tolerated on exp and nbf, seconds */

/* The claims of a verified token. Plain values, owned by the caller. */
typedef struct parley_jwt_claims {
    char sub[PARLEY_JWT_SUB_MAX + 1]; /* subject (the user), NUL-terminated, 1..255 bytes */
    int64_t exp;                      /* expiry, seconds since the epoch; valid if has_exp */
    bool has_exp;                     /* the token carries exp */
    int64_t nbf;                      /* not-before, seconds since the epoch; valid if has_nbf */
    bool has_nbf;                     /* the token carries nbf */
    int64_t iat;                      /* issued-at, seconds since the epoch; valid if has_iat */
    bool has_iat;                     /* the token carries iat */
} parley_jwt_claims_t;

/*
 * Verify token (NUL-terminated, borrowed) against secret[0..secret_len) at
 * time now_s (seconds since the epoch). On success returns 0 and fills *out;
 * *out is written only on success. On refusal returns PARLEY_EINVAL and,
 * when why != NULL, sets *why to a static reason (listed above); returns
 * PARLEY_ENOMEM when memory runs out. An empty secret refuses every token.
 * Any thread.
 */
int parley_jwt_verify(const char *token, const unsigned char *secret, size_t secret_len,
                      int64_t now_s, parley_jwt_claims_t *out, const char **why);

/*
 * Sign payload_json (NUL-terminated, borrowed; signed byte for byte and not
 * validated, so tests can make tokens with malformed payloads) with the
 * header {"alg":"HS256","typ":"JWT"}. On success *out_token is a new
 * malloc'd NUL-terminated token the caller frees. Returns 0, PARLEY_EINVAL
 * (NULL argument or empty secret), PARLEY_ETOOBIG (the token would exceed
 * PARLEY_JWT_MAX_TOKEN, so parley_jwt_verify would refuse it) or
 * PARLEY_ENOMEM. The server signs only its own subscription tokens with it
 * (codec/keyring.h, with a secret of its own); tests and tooling sign user
 * tokens. Any thread.
 */
int parley_jwt_sign_hs256(const char *payload_json, const unsigned char *secret, size_t len,
                          char **out_token);

/*
 * Whether the NUL-terminated strings a (the presented credential) and b (the
 * configured secret, e.g. the admin key) are equal, in time that depends only
 * on their lengths: every byte up to the longer length is examined and no
 * branch depends on the bytes' values. Either NULL → false. Any thread.
 */
bool parley_jwt_secret_equal(const char *a, const char *b);

#endif
