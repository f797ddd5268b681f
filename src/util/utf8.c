/*
 * utf8.c — UTF-8 checks (see utf8.h).
 *
 * The validator follows the table of well-formed byte sequences in the
 * Unicode standard (chapter 3, table 3-7): the second byte's range depends
 * on the first byte, which is what excludes overlong forms, surrogates and
 * code points above U+10FFFF.
 */
#include <stdint.h>

#include "util/utf8.h"

/* Length of the well-formed sequence at s[0..n), or 0 if there is none. */
static size_t seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else
        return 0; /* continuation byte, 0xc0/0xc1 or 0xf5..0xff */
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

bool parley_utf8_is_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = seq_len(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

size_t parley_utf8_prefix(const char *s, size_t n, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    if (n <= max)
        return n;
    size_t i = max;
    while (i > 0 && (p[i] & 0xc0) == 0x80) /* p[i] starts the first byte left out */
        i--;
    return i;
}
