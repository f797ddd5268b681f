/*
 * canonjson.h — canonical JSON text, its SHA-256, and bounded parsing.
 *
 * A document is stored as canonical JSON and its `checksum` is the SHA-256
 * of those bytes (DESIGN.md §2.2), so equal data always has equal bytes and
 * an equal checksum, whatever whitespace, member order or number spelling
 * the client sent.
 *
 * CANONICAL FORM. Close to the JSON Canonicalization Scheme (RFC 8785):
 *   1. No whitespace outside strings.
 *   2. Object members sorted by their names' bytes (UTF-8), shorter first
 *      when one name is a prefix of another.
 *   3. Strings as stored (jansson's parser and checked constructors hold
 *      valid UTF-8 only), escaping only what JSON requires: '"' and '\' as
 *      \" and \\, U+0008 U+0009 U+000A U+000C U+000D as \b \t \n \f \r, every
 *      other character below U+0020 as \u00xx with lower-case hex. Everything
 *      else, '/', DEL and U+2028/U+2029 included, is written as itself.
 *   4. Reals in the ECMAScript Number-to-String form RFC 8785 uses: the
 *      shortest digits that read back to the same double, plain notation for
 *      magnitudes in [1e-6, 1e21), otherwise d.ddde±x; -0 is written "0".
 *      So 1.0 → "1", 0.1 → "0.1", 1e21 → "1e+21", 1e-7 → "1e-7".
 *   5. Integers (jansson's json_int_t, 64-bit) in plain decimal.
 *
 * Deviations from RFC 8785, on purpose:
 *   a. Member names are sorted by UTF-8 bytes, not UTF-16 code units. The
 *      two orders differ only between names whose first difference is a
 *      character in U+E000..U+FFFF against one above U+FFFF.
 *   b. Integers beyond ±2^53 keep every digit (RFC 8785 would round them
 *      through a double). Parsing refuses integers outside 64 bits.
 *   c. A real with an integral value of magnitude 2^63 or more (below 1e21)
 *      is written in exponent form, 1e+20 rather than 100000000000000000000,
 *      since jansson would refuse the latter as an integer out of range.
 * The output is a fixed point: parsing it and dumping again gives the same
 * bytes (a real with an integral value inside the int64_t range comes back
 * as an integer, which is written the same way).
 *
 * PARSING. parley_canonjson_parse() reads a request body with jansson, but
 * first measures its nesting with an iterative scan, so hostile nesting
 * ("[[[[..." a million deep) is refused in linear time and constant stack
 * before any recursive parser sees it.
 *
 * Pure functions, thread-safe (given values no other thread is modifying).
 */
#ifndef PARLEY_CODEC_CANONJSON_H
#define PARLEY_CODEC_CANONJSON_H

#include <stddef.h>

#include <jansson.h>

#define PARLEY_CANONJSON_MAX_OUT    (64u * 1024 * 1024) /* largest canonical text, bytes */
#define PARLEY_CANONJSON_MAX_DEPTH  2048                /* deepest value dump or parse handles */
#define PARLEY_CANONJSON_SHA256_HEX 64 /* characters of a hex digest, without the NUL */

/*
 * Write v (borrowed) as canonical JSON. On success *out is a new malloc'd
 * NUL-terminated string the caller frees and *len its length (without the
 * NUL). Any JSON value may be dumped, not only objects and arrays. Returns 0,
 * PARLEY_EINVAL (v NULL, or arrays and objects nested more than
 * PARLEY_CANONJSON_MAX_DEPTH deep, "[]" being depth 1), PARLEY_ETOOBIG (longer than
 * PARLEY_CANONJSON_MAX_OUT) or PARLEY_ENOMEM. *out and *len are written only on success. Any
 * thread.
 */
int parley_canonjson_dump(json_t *v, char **out, size_t *len);

/*
 * SHA-256 of data[0..len) as 64 lower-case hex digits and a NUL into out.
 * data may be NULL when len is 0. Cannot fail: if OpenSSL cannot allocate
 * a digest context the process aborts, since a wrong checksum must never be
 * stored. Any thread.
 */
void parley_canonjson_sha256_hex(const char *data, size_t len,
                                 char out[PARLEY_CANONJSON_SHA256_HEX + 1]);

/*
 * Parse body[0..len) (borrowed; need not be NUL-terminated) as one JSON
 * value of any type. Refused, with PARLEY_EINVAL and a static reason in *why
 * (when why != NULL):
 *   - nesting of arrays and objects deeper than max_depth (a scalar is depth
 *     0, "[]" depth 1), found by a scan before parsing; jansson's own limit
 *     of 2048 applies on top, so a larger max_depth acts as 2048;
 *   - anything jansson refuses: invalid syntax or UTF-8, trailing data,
 *     an empty body;
 *   - a duplicate member name in any object;
 *   - U+0000 in a string or member name;
 *   - an integer outside 64 bits or a real that overflows a double.
 * On success returns 0 and *out is a new reference the caller must
 * json_decref(); *out is written only on success. PARLEY_ENOMEM when memory
 * runs out. Any thread.
 */
int parley_canonjson_parse(const char *body, size_t len, size_t max_depth, json_t **out,
                           const char **why);

/*
 * The first member of the JSON object obj whose name is not in the
 * NULL-terminated list allowed (borrowed; valid while obj lives), or NULL
 * when every member is allowed. Rules use it so that an unknown field is a
 * 400 naming it, never silently dropped.
 */
const char *parley_canonjson_stranger(json_t *obj, const char *const *allowed);

#endif
