/*
 * glob.c — subscription patterns over stream paths (see glob.h).
 *
 * Both strings are first cut into segments (offsets into the string, on the
 * stack: a path of PARLEY_PATH_MAX bytes has at most PARLEY_PATH_MAX / 2 + 1
 * segments). The walk then keeps one backtrack point, the last "**" seen:
 * on a mismatch the "**" swallows one more segment and the walk resumes
 * after it. Each step advances the path or the backtrack point, so the walk
 * is O(segments of pattern x segments of path) at worst.
 */
#include <stdbool.h>
#include <string.h>

#include "codec/glob.h"
#include "codec/limits.h"

#define MAX_SEGS (PARLEY_PATH_MAX / 2 + 2)

typedef struct seg {
    const char *p; /* first byte */
    size_t n;      /* length */
} seg_t;

/* Cut s into segments; -1 if it has more than MAX_SEGS. */
static int split(const char *s, seg_t *segs)
{
    int n = 0;
    const char *start = s;
    for (const char *c = s;; c++) {
        if (*c == '/' || *c == '\0') {
            if (n == MAX_SEGS)
                return -1;
            segs[n].p = start;
            segs[n].n = (size_t)(c - start);
            n++;
            if (*c == '\0')
                break;
            start = c + 1;
        }
    }
    return n;
}

static bool is_one(const seg_t *s)
{
    return s->n == 1 && s->p[0] == '*';
}

static bool is_any(const seg_t *s)
{
    return s->n == 2 && s->p[0] == '*' && s->p[1] == '*';
}

bool parley_glob_is_valid(const char *pattern, const char **why)
{
    size_t n = pattern ? strlen(pattern) : 0;
    if (n == 0) {
        *why = "pattern is empty";
        return false;
    }
    if (n > PARLEY_PATH_MAX) {
        *why = "pattern is longer than 1024 bytes";
        return false;
    }
    const char *seg = pattern;
    for (const char *c = pattern;; c++) {
        if (*c == '/' || *c == '\0') {
            size_t len = (size_t)(c - seg);
            if (len == 0 || (len == 1 && seg[0] == '.') ||
                (len == 2 && seg[0] == '.' && seg[1] == '.')) {
                *why = "pattern has an empty, '.' or '..' segment";
                return false;
            }
            bool wild = (len == 1 && seg[0] == '*') || (len == 2 && seg[0] == '*' && seg[1] == '*');
            if (memchr(seg, '*', len) && !wild) {
                *why = "a pattern segment with '*' must be exactly * (one segment) or ** (any "
                       "number of segments)";
                return false;
            }
            if (*c == '\0')
                break;
            seg = c + 1;
        } else if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            *why = "pattern has a control character";
            return false;
        }
    }
    return true;
}

bool parley_glob_match(const char *pattern, const char *path)
{
    seg_t pat[MAX_SEGS], str[MAX_SEGS];
    int np = split(pattern, pat), ns = split(path, str);
    if (np < 0 || ns < 0)
        return false;
    int p = 0, s = 0;
    int star = -1, mark = 0; /* the last "**" and the path segment it reached */
    while (s < ns) {
        if (p < np && is_any(&pat[p])) {
            star = p++;
            mark = s;
        } else if (p < np && (is_one(&pat[p]) || (pat[p].n == str[s].n &&
                                                  memcmp(pat[p].p, str[s].p, str[s].n) == 0))) {
            p++;
            s++;
        } else if (star >= 0) {
            p = star + 1; /* the "**" takes one more segment */
            s = ++mark;
        } else {
            return false;
        }
    }
    while (p < np && is_any(&pat[p]))
        p++;
    return p == np;
}

size_t parley_glob_literal_prefix(const char *pattern)
{
    size_t end = 0; /* end of the literal segments so far */
    const char *seg = pattern;
    for (const char *c = pattern;; c++) {
        if (*c == '/' || *c == '\0') {
            if (memchr(seg, '*', (size_t)(c - seg)))
                return end;
            end = (size_t)(c - pattern);
            if (*c == '\0')
                return end;
            seg = c + 1;
        }
    }
}
