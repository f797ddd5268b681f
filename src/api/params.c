/*
 * params.c — strict parsing of header and query values (see params.h).
 */
#include <string.h>
#include <strings.h>

#include "api/params.h"
#include "parley/parley.h"
#include "store/store.h"

int parley_param_decimal(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20 || (s[0] == '0' && s[1]))
        return PARLEY_EINVAL;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return PARLEY_EINVAL;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return PARLEY_EINVAL; /* would overflow */
        v = v * 10 + d;
    }
    if (v > max)
        return PARLEY_EINVAL;
    *out = v;
    return 0;
}

bool parley_param_true(const char *v)
{
    return v && strcasecmp(v, "true") == 0;
}

bool parley_param_stream_path(const char *p, const char **why)
{
    size_t n = strlen(p);
    if (n == 0) {
        *why = "stream path is empty: use /v1/stream/{path}";
        return false;
    }
    if (n > PARLEY_PATH_MAX) {
        *why = "stream path is longer than 1024 bytes";
        return false;
    }
    const char *seg = p;
    for (const char *c = p;; c++) {
        if (*c == '/' || *c == '\0') {
            size_t len = (size_t)(c - seg);
            if (len == 0 || (len == 1 && seg[0] == '.') ||
                (len == 2 && seg[0] == '.' && seg[1] == '.')) {
                *why = "stream path has an empty, '.' or '..' segment";
                return false;
            }
            if (*c == '\0')
                break;
            seg = c + 1;
        } else if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            *why = "stream path has a control character";
            return false;
        }
    }
    return true;
}

bool parley_param_etag_match(const char *header, const char *etag)
{
    const char *p = header;
    size_t elen = strlen(etag);
    if (strncmp(etag, "W/", 2) == 0) {
        etag += 2;
        elen -= 2;
    }
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return false;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        const char *tag = p;
        if (n == 1 && tag[0] == '*')
            return true;
        if (n > 2 && strncmp(tag, "W/", 2) == 0) {
            tag += 2;
            n -= 2;
        }
        if (n == elen && memcmp(tag, etag, n) == 0)
            return true;
        if (!end)
            return false;
        p = end + 1;
    }
}
