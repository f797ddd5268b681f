/*
 * offset.h — stream offsets.
 *
 * FORMAT. An offset is a position in a stream's logical sequence: the count
 * of bytes before it for byte streams, the count of messages before it for
 * JSON streams (application/json). On the wire it is two fields of exactly
 * 16 decimal digits joined by '_': a reserved field that is always zero
 * today (room for a segment or epoch number later), then the position,
 * for example "0000000000000000_0000000000000042". This is the shape the
 * protocol's reference server uses, so "0000000000000000_0000000000000000"
 * is the start of every stream. Fixed width makes byte-wise comparison
 * agree with numeric comparison, the alphabet is URL-safe, and no offset
 * can equal the sentinels "-1" and "now". Positions stop at 10^16 - 1.
 *
 * Invariants:
 *   1. Every append moves a stream's tail forward by at least one, so the
 *      offsets a stream hands out are strictly increasing.
 *   2. A fork shares its source's offsets below the fork point and counts on
 *      from there; no offset translation ever happens.
 *
 * Clients must treat offsets as opaque; the format is documented here for
 * the server's own code and its tests. All functions are pure and
 * thread-safe.
 */
#ifndef PARLEY_CODEC_OFFSET_H
#define PARLEY_CODEC_OFFSET_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/limits.h" /* PARLEY_OFFSET_MAX */

#define PARLEY_OFFSET_LEN 33 /* characters, without the NUL */

/* Where a read starts: the beginning, the tail, or a position. */
typedef enum { PARLEY_OFFSET_START, PARLEY_OFFSET_NOW, PARLEY_OFFSET_POS } parley_offset_kind_t;

/* Write pos as an offset into out (PARLEY_OFFSET_LEN + 1 bytes). */
void parley_offset_format(uint64_t pos, char out[PARLEY_OFFSET_LEN + 1]);

/* Parse a server-made offset (no sentinels). 0 or PARLEY_EINVAL. */
int parley_offset_parse(const char *s, uint64_t *pos);

/*
 * Parse a read's offset parameter: NULL or "-1" is the start, "now" the
 * tail, anything else must be a server-made offset. 0 or PARLEY_EINVAL.
 */
int parley_offset_parse_param(const char *s, parley_offset_kind_t *kind, uint64_t *pos);

#endif
