/*
 * id.h — server-made ids, and the shape of client-chosen names.
 *
 * FORMAT. An id is 128 bits from the operating system's CSPRNG
 * (getrandom(2)), written as unpadded base64url (RFC 4648 §5): exactly
 * PARLEY_ID_LEN = 22 characters from A-Z a-z 0-9 '-' '_'. 22 characters
 * hold 132 bits, so the last character carries the final 2 random bits and
 * 4 zero bits and is always one of 'A', 'Q', 'g', 'w'. Ids are opaque to
 * clients, unguessable (the chance that any two of 2^40 ids collide is about
 * 2^-49), safe in a URL path segment without escaping, and equally long, so
 * they line up in logs and compare as plain strings. They carry no time or
 * order; ordering comes from the store (seq, updated_at), never from ids.
 *
 * NAMES. Where a client picks the identifier (a document id in
 * `PUT /v1/documents/{collection}/{id}`, a collection), the predicates here
 * fix the alphabet so that a name is always one path segment and needs no
 * escaping or normalization:
 *   name        [A-Za-z0-9_-]{1,max}   (server-made ids are valid names)
 *   collection  [a-z0-9_-]{1,64}       (lower case only, so a collection
 *                                       never differs from another by case)
 *
 * Thread-safe.
 */
#ifndef PARLEY_CODEC_ID_H
#define PARLEY_CODEC_ID_H

#include <stdbool.h>
#include <stddef.h>

#define PARLEY_ID_LEN            22 /* characters of an id, without the NUL */
#define PARLEY_ID_BYTES          16 /* random bytes in an id */
#define PARLEY_ID_COLLECTION_MAX 64 /* longest collection name */

/*
 * Write a new random id and a NUL into out. Returns 0, or -errno when the
 * kernel's random source fails (it does not fail on Linux once the pool
 * is initialized; before that the call blocks). Any thread.
 */
int parley_id_new(char out[PARLEY_ID_LEN + 1]);

/*
 * Whether s (NUL-terminated, borrowed) matches [A-Za-z0-9_-]{1,max}. Reads
 * at most max + 1 bytes of s. NULL → false. Any thread.
 */
bool parley_id_is_valid_name(const char *s, size_t max);

/* Whether s matches [a-z0-9_-]{1,64}. NULL → false. Any thread. */
bool parley_id_is_valid_collection(const char *s);

#endif
