/*
 * canonjson.c — canonical JSON, SHA-256 hex, bounded parsing (see canonjson.h).
 *
 * jansson's own encoder is not used for the canonical text: with
 * JSON_COMPACT | JSON_SORT_KEYS it does sort by bytes, but it writes reals
 * with 17 significant digits (0.1 → 0.10000000000000001, 1.0 → 1.0, -0.0),
 * and control characters with upper-case hex (\u001F). The writer here is
 * small and owns every byte of the format.
 *
 * The writer recurses once per level of nesting, up to
 * PARLEY_CANONJSON_MAX_DEPTH levels (a few hundred bytes of stack each), and
 * appends to a buffer whose hard limit is PARLEY_CANONJSON_MAX_OUT. Each
 * object's members are gathered into a temporary array and sorted with
 * qsort; the array is freed before the function returns.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec/canonjson.h"
#include "parley/parley.h"
#include "util/buf.h"
#include "util/wordscan.h"

typedef struct member {
    const char *name; /* borrowed from the object */
    size_t name_len;  /* bytes of name (it may contain U+0000) */
    json_t *value;    /* borrowed from the object */
} member_t;

static int compare_members(const void *pa, const void *pb)
{
    const member_t *a = pa, *b = pb;
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n); /* compares as unsigned char */
    if (c != 0)
        return c;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* The first byte from i on that put_string must look at (a control
 * character, '"' or '\\'), or n: every other byte, UTF-8 included, is
 * written as it is, so runs of them are skipped eight at a time. */
static size_t skip_plain(const char *s, size_t i, size_t n)
{
    while (n - i >= 8) {
        uint64_t w = parley_word_load(s + i);
        if (parley_word_ctl(w) | parley_word_eq(w, '"') | parley_word_eq(w, '\\'))
            break;
        i += 8;
    }
    return i;
}

static int put_string(parley_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = parley_buf_putc(b, '"');
    size_t run = 0; /* start of the bytes not yet written */
    for (size_t i = skip_plain(s, 0, n); rc == 0 && i < n; i = skip_plain(s, i + 1, n)) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t esc_len = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        default:
            if (c >= 0x20)
                continue;
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc_len = 6;
        }
        rc = parley_buf_append(b, s + run, i - run);
        if (rc == 0)
            rc = parley_buf_append(b, esc, esc_len);
        run = i + 1;
    }
    if (rc == 0)
        rc = parley_buf_append(b, s + run, n - run);
    if (rc == 0)
        rc = parley_buf_putc(b, '"');
    return rc;
}

/*
 * A finite double as ECMAScript's Number::toString writes it (RFC 8785
 * §3.2.2.3): find the fewest significant digits (1 to 17) that read back as
 * the same double, then place the decimal point. "%.*e" rounds correctly,
 * so the digits found are the closest of their length to d.
 */
static int put_real(parley_buf_t *b, double d)
{
    if (d == 0) /* +0 and -0 */
        return parley_buf_putc(b, '0');

    char sci[48];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec, d);
        if (strtod(sci, NULL) == d)
            break;
    }
    /* sci is "[-]D[.DDD]e±X"; gather the digits and the exponent. */
    char digits[24] = {0};
    int k = 0;
    const char *p = sci;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9' && k < (int)sizeof digits)
            digits[k++] = *p; /* anything else is the locale's decimal point */
    }
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    int n = exp10 + 1; /* the decimal point sits after n digits */

    char out[64];
    int o = 0;
    if (neg)
        out[o++] = '-';
    /*
     * Integral values are written as plain integers, as ECMAScript does,
     * only when |d| < 2^63: jansson refuses an integer outside int64_t, and
     * the text must read back. The bound is strict on both sides because
     * the digits are rounded: -2^63 itself would be written
     * -9223372036854776000, below INT64_MIN. For |d| < 2^63 the shortest
     * digits are within half a unit in the last place of d, so they stay
     * inside the range. Larger values take the exponent form below.
     */
    bool fits_int64 = d < 9223372036854775808.0 && d > -9223372036854775808.0;
    if (k <= n && n <= 21 && fits_int64) { /* integral: digits, then zeros */
        memcpy(out + o, digits, (size_t)k);
        o += k;
        memset(out + o, '0', (size_t)(n - k));
        o += n - k;
    } else if (k > n && 0 < n && n <= 21) { /* point inside the digits */
        memcpy(out + o, digits, (size_t)n);
        o += n;
        out[o++] = '.';
        memcpy(out + o, digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) { /* 0.000ddd */
        out[o++] = '0';
        out[o++] = '.';
        memset(out + o, '0', (size_t)-n);
        o += -n;
        memcpy(out + o, digits, (size_t)k);
        o += k;
    } else { /* d.ddde±x */
        out[o++] = digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%d", n - 1 >= 0 ? '+' : '-',
                      n - 1 >= 0 ? n - 1 : -(n - 1));
    }
    return parley_buf_append(b, out, (size_t)o);
}

static int put_value(parley_buf_t *b, json_t *v, size_t depth);

static int put_object(parley_buf_t *b, json_t *obj, size_t depth)
{
    size_t count = json_object_size(obj);
    if (count == 0)
        return parley_buf_append(b, "{}", 2);
    member_t *m = malloc(count * sizeof *m);
    if (!m)
        return PARLEY_ENOMEM;
    size_t i = 0;
    const char *name;
    size_t name_len;
    json_t *value;
    json_object_keylen_foreach(obj, name, name_len, value)
    {
        if (i == count)
            break;
        m[i].name = name;
        m[i].name_len = name_len;
        m[i].value = value;
        i++;
    }
    qsort(m, i, sizeof *m, compare_members);

    int rc = parley_buf_putc(b, '{');
    for (size_t j = 0; rc == 0 && j < i; j++) {
        if (j > 0)
            rc = parley_buf_putc(b, ',');
        if (rc == 0)
            rc = put_string(b, m[j].name, m[j].name_len);
        if (rc == 0)
            rc = parley_buf_putc(b, ':');
        if (rc == 0)
            rc = put_value(b, m[j].value, depth + 1);
    }
    if (rc == 0)
        rc = parley_buf_putc(b, '}');
    free(m);
    return rc;
}

/* v, inside depth enclosing arrays and objects. */
static int put_value(parley_buf_t *b, json_t *v, size_t depth)
{
    if ((json_is_object(v) || json_is_array(v)) && depth >= PARLEY_CANONJSON_MAX_DEPTH)
        return PARLEY_EINVAL;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return put_object(b, v, depth);
    case JSON_ARRAY: {
        int rc = parley_buf_putc(b, '[');
        for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
            if (i > 0)
                rc = parley_buf_putc(b, ',');
            if (rc == 0)
                rc = put_value(b, json_array_get(v, i), depth + 1);
        }
        return rc ? rc : parley_buf_putc(b, ']');
    }
    case JSON_STRING:
        return put_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return parley_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return put_real(b, json_real_value(v));
    case JSON_TRUE:
        return parley_buf_append(b, "true", 4);
    case JSON_FALSE:
        return parley_buf_append(b, "false", 5);
    case JSON_NULL:
        return parley_buf_append(b, "null", 4);
    }
    return PARLEY_EINVAL;
}

int parley_canonjson_dump(json_t *v, char **out, size_t *len)
{
    if (!v || !out || !len)
        return PARLEY_EINVAL;
    parley_buf_t b;
    parley_buf_init(&b, PARLEY_CANONJSON_MAX_OUT);
    int rc = put_value(&b, v, 0);
    if (rc != 0) {
        parley_buf_free(&b);
        return rc;
    }
    *out = parley_buf_steal(&b, len);
    return 0;
}

void parley_canonjson_sha256_hex(const char *data, size_t len,
                                 char out[PARLEY_CANONJSON_SHA256_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (!EVP_Digest(len ? data : "", len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
        abort(); /* only an allocation failure inside OpenSSL gets here */
    for (unsigned i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[PARLEY_CANONJSON_SHA256_HEX] = '\0';
}

/*
 * Whether body nests arrays and objects deeper than max. Brackets inside
 * strings do not count. Exact for valid JSON; for invalid JSON it is exact
 * up to the first error, which is as far as any parser reads.
 */
static bool nests_deeper(const char *s, size_t n, size_t max)
{
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped character cannot end the string */
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

static const char *parse_error_text(enum json_error_code code)
{
    switch (code) {
    case json_error_out_of_memory:
        return "out of memory";
    case json_error_stack_overflow:
        return "JSON nested too deeply";
    case json_error_invalid_utf8:
        return "JSON text is not valid UTF-8";
    case json_error_premature_end_of_input:
        return "JSON text ends too early";
    case json_error_end_of_input_expected:
        return "unexpected data after the JSON value";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "\\u0000 is not allowed in JSON strings";
    case json_error_duplicate_key:
        return "duplicate member name in a JSON object";
    case json_error_numeric_overflow:
        return "JSON number out of range (integers must fit in 64 bits)";
    default:
        return "invalid JSON";
    }
}

int parley_canonjson_parse(const char *body, size_t len, size_t max_depth, json_t **out,
                           const char **why)
{
    const char *reason;
    if (len == 0 || !body) {
        reason = "empty body: expected a JSON value";
        goto out_invalid;
    }
    if (nests_deeper(body, len, max_depth)) {
        reason = "JSON nested too deeply";
        goto out_invalid;
    }
    json_error_t err;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (!v) {
        enum json_error_code code = json_error_code(&err);
        reason = parse_error_text(code);
        if (code == json_error_out_of_memory) {
            if (why)
                *why = reason;
            return PARLEY_ENOMEM;
        }
        goto out_invalid;
    }
    *out = v;
    return 0;

out_invalid:
    if (why)
        *why = reason;
    return PARLEY_EINVAL;
}

const char *parley_canonjson_stranger(json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(key, *a) == 0;
        if (!ok)
            return key;
    }
    return NULL;
}
