/*
 * log.h — one-line diagnostics on stderr.
 *
 * Lines are "parley: LEVEL: message". Thread-safe (one fprintf per line).
 */
#ifndef PARLEY_UTIL_LOG_H
#define PARLEY_UTIL_LOG_H

void parley_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void parley_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void parley_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
