/*
 * glob.h — subscription patterns over stream paths (PROTOCOL.md §6.2).
 *
 * A pattern is a stream path whose segments may be wildcards:
 *
 *   "*"   matches exactly one segment
 *   "**"  matches zero or more segments
 *   else  the segment must be equal, byte for byte
 *
 * so "events" followed by "*" matches events/a but neither events nor
 * events/a/b, and "events" followed by "**" matches all three.
 *
 * A segment that contains '*' but is not exactly "*" or "**" ("ev*",
 * "a**b") is refused rather than read as a literal, so a pattern never
 * means something other than it seems to. Otherwise a pattern follows the
 * rules of a stream path (api/params.h): 1..PARLEY_PATH_MAX bytes, no empty,
 * "." or ".." segment, no control characters.
 *
 * Matching is linear in the segments of pattern and path (the classic
 * two-pointer wildcard walk, with "*" in the role of '?' and "**" in the
 * role of '*'): no recursion, no allocation, no exponential backtracking.
 *
 * Pure functions, thread-safe.
 */
#ifndef PARLEY_CODEC_GLOB_H
#define PARLEY_CODEC_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* Whether pattern is a valid pattern; on false *why says which rule
 * failed (static string). */
bool parley_glob_is_valid(const char *pattern, const char **why);

/* Whether path matches pattern (both NUL-terminated; pattern valid). */
bool parley_glob_match(const char *pattern, const char *path);

/*
 * Bytes of pattern's leading literal segments, without the '/' after the
 * last of them: 6 ("events") for events followed by "*" or "**", 0 for "**",
 * the whole length for a pattern without wildcards. Every path the pattern
 * matches starts with these bytes, so a store can scan just that range.
 */
size_t parley_glob_literal_prefix(const char *pattern);

#endif
