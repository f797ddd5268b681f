/*
 * utf8.h — UTF-8 checks for text that arrives from the network.
 *
 * Every text a request carries (its path, header values, query values) is
 * checked once at the edge (http/transport.c) and every text a JSON value
 * is built from is valid UTF-8 by then; these are the checks. "Valid" is
 * RFC 3629: shortest form only, no surrogates (U+D800..U+DFFF), nothing
 * above U+10FFFF. NUL bytes are allowed by the check itself (callers that
 * hold C strings never see one).
 *
 * Threads: pure functions, any thread.
 */
#ifndef PARLEY_UTIL_UTF8_H
#define PARLEY_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True if s[0..n) is valid UTF-8. */
bool parley_utf8_is_valid(const char *s, size_t n);

/*
 * The length of the longest prefix of the valid UTF-8 text s[0..n) that is
 * at most max bytes and ends on a character boundary: what to keep when
 * text must be cut to max bytes without splitting a character.
 */
size_t parley_utf8_prefix(const char *s, size_t n, size_t max);

#endif
