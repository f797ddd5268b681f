/*
 * log.h — diagnostics on stderr, one line each: text or JSON.
 *
 * Text (the default): "parley: LEVEL: message". JSON (--log-format json):
 * one object per line, {"time","level","msg"}, so a log shipper needs no
 * parser of its own. The access log (--access-log) is one line per
 * request in the same format: logfmt after "parley: access: " in text,
 * an object with "msg":"request" in JSON. Text that is not valid UTF-8,
 * or holds control characters, is written with those bytes as \xNN, so
 * a line is always one line and always valid JSON.
 *
 * Thread-safe: each line is built in memory and written with one call.
 * parley_log_set_json() before any thread logs (at start-up).
 */
#ifndef PARLEY_UTIL_LOG_H
#define PARLEY_UTIL_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

void parley_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void parley_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void parley_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Log lines as JSON objects (true) or text (false, the default). */
void parley_log_set_json(bool json);
/* Whether lines are JSON. */
bool parley_log_is_json(void);

/* One request, as the access log writes it. Strings are borrowed; NULL
 * or empty ones are left out. Never put a secret in one. */
typedef struct parley_log_access {
    const char *remote;     /* client address */
    const char *method;     /* request method */
    const char *path;       /* decoded path, without the query */
    const char *route;      /* route pattern (/metrics' label) */
    int status;             /* status sent; 0: the client left before an answer */
    uint64_t bytes;         /* body bytes sent */
    uint64_t duration_us;   /* headers received to response ended */
    const char *user;       /* the authenticated caller, if known */
    const char *request_id; /* the client's X-Request-Id, if valid */
} parley_log_access_t;
void parley_log_access(const parley_log_access_t *a);

/*
 * Write one line (the start-up line) to out: text as is, or in JSON mode
 * an object {"time","level":"info","msg":text}. Any thread.
 */
void parley_log_line(FILE *out, const char *text);

#endif
