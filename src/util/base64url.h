/*
 * base64url.h — the URL-safe base64 alphabet of RFC 4648 §5, unpadded.
 *
 * Used for JWT segments (RFC 7515 §2) and for server-made ids. The alphabet
 * is A-Z a-z 0-9 '-' '_'; no '=' padding is written or accepted, so an
 * encoded value can go into a path segment, a query parameter or a header
 * without escaping.
 *
 * Decoding is strict, so that every byte string has exactly one accepted
 * encoding:
 *   1. only the 64 alphabet characters (no padding, no whitespace, no '+'
 *      or '/' from the standard alphabet);
 *   2. a length that is not 1 mod 4 (such a tail cannot hold a whole byte);
 *   3. the unused low bits of the last character are zero.
 *
 * Pure functions, thread-safe.
 */
#ifndef PARLEY_UTIL_BASE64URL_H
#define PARLEY_UTIL_BASE64URL_H

#include <stddef.h>

/* Characters that n bytes encode to (without the NUL): ceil(4n / 3). */
size_t parley_base64url_encoded_len(size_t n);

/*
 * Encode in[0..n) into out, which must hold parley_base64url_encoded_len(n)
 * + 1 bytes; out is NUL-terminated. in may be NULL when n is 0.
 */
void parley_base64url_encode(const unsigned char *in, size_t n, char *out);

/*
 * Decode in[0..n) into out (cap bytes) and set *out_len. n * 3 / 4 bytes of
 * room are always enough. Returns 0, PARLEY_EINVAL (not a strict, unpadded
 * base64url string; see the rules above) or PARLEY_ETOOBIG (cap too small).
 * out is unspecified on error.
 */
int parley_base64url_decode(const char *in, size_t n, unsigned char *out, size_t cap,
                            size_t *out_len);

#endif
