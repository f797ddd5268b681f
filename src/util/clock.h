/*
 * clock.h — wall-clock and monotonic time, and RFC 3339 timestamps.
 *
 * Stored times are milliseconds since the Unix epoch (UTC). Timeouts use the
 * monotonic clock so that a wall-clock step never fires or starves them.
 * All functions are thread-safe.
 */
#ifndef PARLEY_UTIL_CLOCK_H
#define PARLEY_UTIL_CLOCK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch. */
int64_t parley_clock_now_ms(void);
/* Milliseconds on the monotonic clock (arbitrary origin). */
int64_t parley_clock_mono_ms(void);

/* Format ms as "2025-01-02T03:04:05.678Z" into out (at least 32 bytes). */
void parley_clock_format(int64_t ms, char *out, size_t outlen);

/* ms as a JSON RFC 3339 string, or JSON null when ms < 0 (no time).
 * New reference. */
json_t *parley_clock_json(int64_t ms);

/*
 * Parse an RFC 3339 date-time ("2025-01-02T03:04:05Z", optional fraction,
 * "Z" or a numeric offset) into ms since the epoch. 0 or PARLEY_EINVAL.
 */
int parley_clock_parse(const char *s, int64_t *ms);

#endif
