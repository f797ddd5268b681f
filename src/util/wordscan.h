/*
 * wordscan.h — eight bytes at a time: tests on a 64-bit word of text that
 * mark, in the high bit of each byte, the bytes a scanner must stop at.
 * The JSON request parser (codec/jsonmsg.c) and the canonical JSON writer
 * (codec/canonjson.c) skip runs of plain bytes with them.
 *
 * None gives a false positive: the low seven bits are cleared before any
 * carry can cross into the next byte. Pure, header-only.
 */
#ifndef PARLEY_UTIL_WORDSCAN_H
#define PARLEY_UTIL_WORDSCAN_H

#include <stdint.h>
#include <string.h>

#define PARLEY_WORD_LOW7 0x7f7f7f7f7f7f7f7full /* each byte's low seven bits */
#define PARLEY_WORD_HIGH 0x8080808080808080ull /* each byte's high bit */

/* The eight bytes at p, unaligned. */
static inline uint64_t parley_word_load(const void *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Bytes of w equal to c. */
static inline uint64_t parley_word_eq(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (0x0101010101010101ull * c);
    return ~(((x & PARLEY_WORD_LOW7) + PARLEY_WORD_LOW7) | x) & PARLEY_WORD_HIGH;
}

/* Bytes of w below 0x20 (control characters): high bit clear, and adding
 * 0x60 to the low seven bits does not carry into bit 7 (it does from 0x20
 * up). */
static inline uint64_t parley_word_ctl(uint64_t w)
{
    return ~(((w & PARLEY_WORD_LOW7) + 0x6060606060606060ull) | w) & PARLEY_WORD_HIGH;
}

/* Bytes of w at 0x80 or above (UTF-8 lead and continuation bytes). */
static inline uint64_t parley_word_high(uint64_t w)
{
    return w & PARLEY_WORD_HIGH;
}

#endif
