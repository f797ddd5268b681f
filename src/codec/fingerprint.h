/*
 * fingerprint.h — request fingerprints and Idempotency-Key values.
 *
 * A retried non-idempotent write (POST, PATCH) carries the same
 * Idempotency-Key as the first attempt (DESIGN.md §2.5). The server stores,
 * with the key, a fingerprint of the request; a later request with the same
 * key replays the stored response only if its fingerprint is equal, and is
 * refused with 422 otherwise, so a key reused for a different request can
 * never return a stale answer.
 *
 * FINGERPRINT. 64 lower-case hex digits of
 *
 *   SHA-256( u64be(len(method)) || method ||
 *            u64be(len(path))   || path   ||
 *            u64be(len(body))   || body )
 *
 * where u64be is the length as 8 big-endian bytes. The length prefixes make
 * the encoding injective: no two (method, path, body) triples encode to the
 * same bytes, so ("a", "bc") and ("ab", "c") differ, and a body may hold any
 * bytes, NUL included. Fingerprints are stored, so this encoding is part of
 * the on-disk format: changing it turns every stored key's retry into a 422.
 * The caller decides what goes in: the method as received (methods are
 * case-sensitive), the path the request was routed on, and the body's raw
 * bytes (not re-serialized JSON, so the fingerprint does not depend on the
 * parser).
 *
 * KEY. 1 to PARLEY_IDEMPOTENCY_KEY_MAX printable ASCII characters,
 * 0x20 (space) to 0x7e, as DESIGN.md §2.5 states, following Stripe (up to
 * 255 characters) and the IETF httpapi Idempotency-Key draft (an sf-string,
 * whose characters are exactly this range). The field value is used as an
 * opaque key as it arrives: HTTP drops whitespace around a field value
 * (RFC 9110 §5.5), so leading or trailing spaces never reach the server, and
 * a client that sends the draft's quoted form "abc" uses the key `"abc"`,
 * quotes included, consistently on every retry. Control characters,
 * DEL and bytes above 0x7e are refused rather than guessed at.
 *
 * Pure functions, thread-safe.
 */
#ifndef PARLEY_CODEC_FINGERPRINT_H
#define PARLEY_CODEC_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>

#define PARLEY_FINGERPRINT_HEX     64  /* characters, without the NUL */
#define PARLEY_IDEMPOTENCY_KEY_MAX 255 /* longest Idempotency-Key */

/*
 * Write the fingerprint of (method, path, body[0..len)) and a NUL into out.
 * method and path are NUL-terminated and borrowed; NULL counts as "". body
 * may be NULL when len is 0. Cannot fail: if OpenSSL cannot allocate a
 * digest context the process aborts, since a wrong fingerprint would replay
 * the wrong response. Any thread.
 */
void parley_fingerprint(const char *method, const char *path, const char *body, size_t len,
                        char out[PARLEY_FINGERPRINT_HEX + 1]);

/*
 * Whether key (NUL-terminated, borrowed) is 1 to 255 characters in
 * 0x20..0x7e. Reads at most 256 bytes. NULL → false. Any thread.
 */
bool parley_idempotency_key_is_valid(const char *key);

#endif
