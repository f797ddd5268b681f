/*
 * log.c — diagnostics on stderr, text or JSON (see log.h).
 *
 * Every line is built whole in a buffer and written with one fputs on an
 * unbuffered stderr, so lines from several threads never interleave.
 * JSON is built with jansson from text made safe first (escape()), since
 * a path refused at the edge may hold any bytes.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/utf8.h"

static atomic_bool g_json; /* lines are JSON objects */

void parley_log_set_json(bool json)
{
    atomic_store(&g_json, json);
}

bool parley_log_is_json(void)
{
    return atomic_load(&g_json);
}

/* Bytes of the UTF-8 character starting with c (1 for a bad lead byte). */
static size_t char_len(unsigned char c)
{
    return c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/*
 * Copy in to out (cap bytes, NUL-terminated, cut on a character): valid
 * UTF-8 as is, control characters and bytes that are not UTF-8 as \xNN;
 * with quoted, '"' and '\' get a backslash (logfmt's quoted values).
 */
static void escape(const char *in, char *out, size_t cap, bool quoted)
{
    size_t o = 0;
    for (size_t i = 0; in[i];) {
        unsigned char c = (unsigned char)in[i];
        size_t n = char_len(c);
        char tmp[8];
        size_t tn;
        if (c >= 0x80 && strnlen(in + i, n) == n && parley_utf8_is_valid(in + i, n)) {
            memcpy(tmp, in + i, n);
            tn = n;
        } else if (c < 0x20 || c == 0x7f || c >= 0x80) {
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
            tn = 4;
            n = 1;
        } else if (quoted && (c == '"' || c == '\\')) {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            tn = 2;
        } else {
            tmp[0] = (char)c;
            tn = 1;
        }
        if (o + tn + 1 > cap)
            break;
        memcpy(out + o, tmp, tn);
        o += tn;
        i += n;
    }
    out[o] = '\0';
}

static void now_text(char *out, size_t cap)
{
    parley_clock_format(parley_clock_now_ms(), out, cap);
}

/* Write obj as one line and free it. */
static void put_json(FILE *out, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(obj);
    if (!text)
        return;
    size_t n = strlen(text);
    char *line = malloc(n + 2);
    if (line) {
        memcpy(line, text, n);
        line[n] = '\n';
        line[n + 1] = '\0';
        fputs(line, out);
        fflush(out);
        free(line);
    }
    free(text);
}

static json_t *json_head(const char *level, const char *msg)
{
    char t[40], safe[2048];
    now_text(t, sizeof t);
    escape(msg, safe, sizeof safe, false);
    return json_pack("{s:s, s:s, s:s}", "time", t, "level", level, "msg", safe);
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    if (atomic_load(&g_json)) {
        put_json(stderr, json_head(level, line));
        return;
    }
    fprintf(stderr, "parley: %s: %s\n", level, line);
}

void parley_log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("info", fmt, ap);
    va_end(ap);
}

void parley_log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning", fmt, ap);
    va_end(ap);
}

void parley_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("error", fmt, ap);
    va_end(ap);
}

void parley_log_line(FILE *out, const char *text)
{
    if (atomic_load(&g_json)) {
        put_json(out, json_head("info", text));
        return;
    }
    fprintf(out, "%s\n", text);
    fflush(out);
}

static bool given(const char *s)
{
    return s && *s;
}

void parley_log_access(const parley_log_access_t *a)
{
    char t[40], path[1024], user[600], rid[300], method[64];
    now_text(t, sizeof t);
    bool json = atomic_load(&g_json);
    escape(given(a->method) ? a->method : "-", method, sizeof method, !json);
    escape(given(a->path) ? a->path : "", path, sizeof path, !json);
    escape(given(a->user) ? a->user : "", user, sizeof user, !json);
    escape(given(a->request_id) ? a->request_id : "", rid, sizeof rid, !json);
    double ms = (double)a->duration_us / 1000.0;
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:f}", "time", t, "level",
                              "info", "msg", "request", "method", method, "path", path, "status",
                              a->status, "bytes", (json_int_t)a->bytes, "duration_ms", ms);
        if (o && given(a->route))
            json_object_set_new(o, "route", json_string(a->route));
        if (o && given(a->remote))
            json_object_set_new(o, "remote", json_string(a->remote));
        if (o && user[0])
            json_object_set_new(o, "user", json_string(user));
        if (o && rid[0])
            json_object_set_new(o, "request_id", json_string(rid));
        put_json(stderr, o);
        return;
    }
    char line[3072];
    int n = snprintf(line, sizeof line,
                     "parley: access: time=%s remote=%s method=%s path=\"%s\" route=\"%s\" "
                     "status=%d bytes=%llu duration_ms=%.3f",
                     t, given(a->remote) ? a->remote : "-", method, path,
                     given(a->route) ? a->route : "-", a->status, (unsigned long long)a->bytes, ms);
    if (n > 0 && (size_t)n < sizeof line && user[0])
        n += snprintf(line + n, sizeof line - (size_t)n, " user=\"%s\"", user);
    if (n > 0 && (size_t)n < sizeof line && rid[0])
        n += snprintf(line + n, sizeof line - (size_t)n, " request_id=\"%s\"", rid);
    if (n > 0 && (size_t)n < sizeof line - 1) {
        line[n++] = '\n';
        line[n] = '\0';
    } else {
        line[sizeof line - 2] = '\n';
        line[sizeof line - 1] = '\0';
    }
    fputs(line, stderr);
}
