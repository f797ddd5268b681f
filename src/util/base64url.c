/*
 * base64url.c — unpadded URL-safe base64 (see base64url.h).
 *
 * Four characters carry three bytes. A tail of two characters carries one
 * byte (12 bits, the low 4 unused), a tail of three carries two (18 bits,
 * the low 2 unused); those unused bits must be zero when decoding.
 */
#include <stdint.h>

#include "parley/parley.h"
#include "util/base64url.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of one character, or -1 when it is not in the alphabet. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

size_t parley_base64url_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

void parley_base64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
}

int parley_base64url_decode(const char *in, size_t n, unsigned char *out, size_t cap,
                            size_t *out_len)
{
    if (n % 4 == 1)
        return PARLEY_EINVAL;
    size_t need = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
    if (need > cap)
        return PARLEY_ETOOBIG;
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        size_t chunk = n - i < 4 ? n - i : 4;
        uint32_t v = 0;
        for (size_t j = 0; j < chunk; j++) {
            int x = sextet(s[i + j]);
            if (x < 0)
                return PARLEY_EINVAL;
            v = v << 6 | (uint32_t)x;
        }
        if (chunk == 4) {
            out[o++] = (unsigned char)(v >> 16);
            out[o++] = (unsigned char)(v >> 8);
            out[o++] = (unsigned char)v;
        } else if (chunk == 3) { /* 18 bits: two bytes, 2 unused */
            if (v & 3)
                return PARLEY_EINVAL;
            out[o++] = (unsigned char)(v >> 10);
            out[o++] = (unsigned char)(v >> 2);
        } else { /* 12 bits: one byte, 4 unused */
            if (v & 15)
                return PARLEY_EINVAL;
            out[o++] = (unsigned char)(v >> 4);
        }
    }
    *out_len = o;
    return 0;
}
