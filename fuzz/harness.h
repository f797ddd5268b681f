/*
 * harness.h — helpers shared by the libFuzzer harnesses in this folder.
 *
 * FUZZ_CHECK(cond) states an invariant of the code under test. When it does
 * not hold, the harness prints the condition and aborts; libFuzzer reports
 * that as a crash and saves the input, exactly as it does for a sanitizer
 * report, so a broken invariant fails scripts/fuzz like a memory error.
 *
 * fuzz_cstr() makes the NUL-terminated copy that string-taking APIs need.
 * The copy is sized exactly (size + 1 bytes), so AddressSanitizer reports
 * any read past the terminator. Input bytes after an embedded NUL are
 * invisible to such APIs, which is also what a C caller would see.
 */
#ifndef PARLEY_FUZZ_HARNESS_H
#define PARLEY_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_invariant_failed(#cond, __FILE__, __LINE__);                                      \
    } while (0)

static inline void fuzz_invariant_failed(const char *cond, const char *file, int line)
{
    fprintf(stderr, "invariant failed: %s (%s:%d)\n", cond, file, line);
    abort();
}

/* A malloc'd NUL-terminated copy of data[0..size); the caller frees it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
