/*
 * jsonmsg.c — strict JSON validation and one-level array flattening.
 *
 * The scanner is iterative (an explicit stack of container kinds, at most
 * PARLEY_JSON_MAX_DEPTH deep), so hostile nesting can never exhaust the C
 * stack. Splitting runs the scanner twice: once to validate the whole body,
 * then again to report the spans of the top-level array's elements. Bodies
 * are bounded by the append limit, so the second pass costs little and
 * needs no allocation.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "codec/jsonmsg.h"
#include "parley/parley.h"
#include "util/wordscan.h"

typedef struct scan {
    const unsigned char *s; /* the body */
    size_t n;               /* its length */
    size_t i;               /* read position */
    const char *why;        /* reason for the first error */
} scan_t;

static void skip_ws(scan_t *c)
{
    while (c->i < c->n) {
        unsigned char ch = c->s[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            break;
        c->i++;
    }
}

static int fail(scan_t *c, const char *why)
{
    if (!c->why)
        c->why = why;
    return -1;
}

/* One UTF-8 sequence starting at c->i (first byte >= 0x80). */
static int utf8_seq(scan_t *c)
{
    const unsigned char *s = c->s + c->i;
    size_t left = c->n - c->i;
    unsigned char b0 = s[0];
    size_t len;
    uint32_t cp;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        len = 2;
        cp = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        len = 3;
        cp = b0 & 0x0f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        len = 4;
        cp = b0 & 0x07;
    } else {
        return fail(c, "invalid UTF-8 in JSON string");
    }
    if (left < len)
        return fail(c, "truncated UTF-8 sequence in JSON string");
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return fail(c, "invalid UTF-8 in JSON string");
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return fail(c, "invalid UTF-8 in JSON string");
    c->i += len;
    return 0;
}

static bool is_hex(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* Skip the plain bytes of a string from c->i, eight at a time: printable
 * ASCII other than '"' and '\\' needs no further look. The byte loop of
 * scan_string takes over at the first eight that hold anything else. */
static void skip_plain(scan_t *c)
{
    while (c->n - c->i >= 8) {
        uint64_t w = parley_word_load(c->s + c->i);
        if (parley_word_high(w) | parley_word_ctl(w) | parley_word_eq(w, '"') |
            parley_word_eq(w, '\\'))
            return;
        c->i += 8;
    }
}

static int scan_string(scan_t *c)
{
    c->i++; /* opening quote */
    while (c->i < c->n) {
        skip_plain(c);
        if (c->i >= c->n)
            break;
        unsigned char ch = c->s[c->i];
        if (ch == '"') {
            c->i++;
            return 0;
        }
        if (ch == '\\') {
            if (c->i + 1 >= c->n)
                break;
            unsigned char e = c->s[c->i + 1];
            if (e == 'u') {
                if (c->i + 6 > c->n)
                    break;
                for (int k = 2; k < 6; k++)
                    if (!is_hex(c->s[c->i + k]))
                        return fail(c, "invalid \\u escape in JSON string");
                c->i += 6;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                       e == 'r' || e == 't') {
                c->i += 2;
            } else {
                return fail(c, "invalid escape in JSON string");
            }
        } else if (ch < 0x20) {
            return fail(c, "unescaped control character in JSON string");
        } else if (ch >= 0x80) {
            if (utf8_seq(c))
                return -1;
        } else {
            c->i++;
        }
    }
    return fail(c, "unterminated JSON string");
}

static bool is_digit(scan_t *c)
{
    return c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9';
}

static int scan_number(scan_t *c)
{
    if (c->s[c->i] == '-')
        c->i++;
    if (!is_digit(c))
        return fail(c, "invalid JSON number");
    if (c->s[c->i] == '0') {
        c->i++;
    } else {
        while (is_digit(c))
            c->i++;
    }
    if (c->i < c->n && c->s[c->i] == '.') {
        c->i++;
        if (!is_digit(c))
            return fail(c, "invalid JSON number");
        while (is_digit(c))
            c->i++;
    }
    if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
        c->i++;
        if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-'))
            c->i++;
        if (!is_digit(c))
            return fail(c, "invalid JSON number");
        while (is_digit(c))
            c->i++;
    }
    return 0;
}

static int scan_literal(scan_t *c, const char *word)
{
    for (size_t k = 0; word[k]; k++, c->i++)
        if (c->i >= c->n || c->s[c->i] != (unsigned char)word[k])
            return fail(c, "invalid JSON literal");
    return 0;
}

static int scan_key(scan_t *c)
{
    skip_ws(c);
    if (c->i >= c->n || c->s[c->i] != '"')
        return fail(c, "expected a string key in JSON object");
    if (scan_string(c))
        return -1;
    skip_ws(c);
    if (c->i >= c->n || c->s[c->i] != ':')
        return fail(c, "expected ':' in JSON object");
    c->i++;
    return 0;
}

/*
 * Scan the whole body. When cb is set and the top level is an array, call
 * it for each element; otherwise for the single top-level value.
 */
static int scan_body(scan_t *c, parley_jsonmsg_cb cb, void *arg, size_t *count)
{
    char stack[PARLEY_JSON_MAX_DEPTH]; /* 'a' array, 'o' object */
    int depth = 0;
    bool top_array;
    size_t start = 0, elem_start = 0, nmsg = 0;
    int rc;

    skip_ws(c);
    if (c->i >= c->n)
        return fail(c, "empty body is not JSON");
    top_array = c->s[c->i] == '[';
    start = c->i;

    for (;;) {
        /* Expect a value. */
        skip_ws(c);
        if (c->i >= c->n)
            return fail(c, "unexpected end of JSON");
        if (depth == 1 && top_array)
            elem_start = c->i;
        unsigned char ch = c->s[c->i];
        if (ch == '{' || ch == '[') {
            if (depth == PARLEY_JSON_MAX_DEPTH)
                return fail(c, "JSON nested too deeply");
            stack[depth++] = ch == '{' ? 'o' : 'a';
            c->i++;
            skip_ws(c);
            if (c->i < c->n && c->s[c->i] == (ch == '{' ? '}' : ']')) {
                c->i++;
                depth--;
            } else if (ch == '{') {
                if (scan_key(c))
                    return -1;
                continue;
            } else {
                continue;
            }
        } else if (ch == '"') {
            if (scan_string(c))
                return -1;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            if (scan_number(c))
                return -1;
        } else if (ch == 't') {
            if (scan_literal(c, "true"))
                return -1;
        } else if (ch == 'f') {
            if (scan_literal(c, "false"))
                return -1;
        } else if (ch == 'n') {
            if (scan_literal(c, "null"))
                return -1;
        } else {
            return fail(c, "unexpected character in JSON");
        }

        /* After a value: close containers or move to the next member. */
        for (;;) {
            if (depth == 1 && top_array && elem_start != SIZE_MAX) {
                size_t end = c->i;
                nmsg++;
                if (cb && (rc = cb(arg, (const char *)c->s + elem_start, end - elem_start)))
                    return rc;
                elem_start = SIZE_MAX;
            }
            if (depth == 0) {
                if (!top_array) {
                    nmsg = 1;
                    if (cb && (rc = cb(arg, (const char *)c->s + start, c->i - start)))
                        return rc;
                }
                skip_ws(c);
                if (c->i != c->n)
                    return fail(c, "trailing data after JSON value");
                *count = nmsg;
                return 0;
            }
            skip_ws(c);
            if (c->i >= c->n)
                return fail(c, "unexpected end of JSON");
            ch = c->s[c->i];
            char top = stack[depth - 1];
            if (ch == ',') {
                c->i++;
                if (top == 'o' && scan_key(c))
                    return -1;
                break; /* next value */
            }
            if ((ch == ']' && top == 'a') || (ch == '}' && top == 'o')) {
                c->i++;
                depth--;
                continue;
            }
            return fail(c, "expected ',' or a closing bracket in JSON");
        }
    }
}

int parley_jsonmsg_validate(const char *body, size_t len, const char **why)
{
    scan_t c = {(const unsigned char *)body, len, 0, NULL};
    size_t count;
    if (scan_body(&c, NULL, NULL, &count)) {
        if (why)
            *why = c.why;
        return PARLEY_EINVAL;
    }
    return 0;
}

int parley_jsonmsg_split(const char *body, size_t len, parley_jsonmsg_cb cb, void *arg,
                         size_t *count, const char **why)
{
    int rc = parley_jsonmsg_validate(body, len, why);
    if (rc)
        return rc;
    scan_t c = {(const unsigned char *)body, len, 0, NULL};
    rc = scan_body(&c, cb, arg, count);
    return rc < 0 && c.why ? PARLEY_EINVAL : rc;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int parley_jsonmsg_frame(const char *body, size_t len, size_t *off, size_t *span_len, size_t *count,
                         const char **why)
{
    scan_t c = {(const unsigned char *)body, len, 0, NULL};
    if (scan_body(&c, NULL, NULL, count)) {
        if (why)
            *why = c.why;
        return PARLEY_EINVAL;
    }
    size_t a = 0, b = len;
    while (a < b && is_ws(body[a]))
        a++;
    while (b > a && is_ws(body[b - 1]))
        b--;
    if (body[a] == '[') { /* the interior of the top-level array */
        a++;
        b--;
        while (a < b && is_ws(body[a]))
            a++;
        while (b > a && is_ws(body[b - 1]))
            b--;
    }
    *off = a;
    *span_len = b - a;
    return 0;
}
