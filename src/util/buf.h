/*
 * buf.h — a growable byte buffer with a hard limit.
 *
 * Every buffer that grows with untrusted input (request bodies, response
 * bodies assembled from the store) has a limit; reaching it is an error
 * (PARLEY_ETOOBIG), never another realloc. The buffer always keeps one spare
 * byte so that data can be NUL-terminated for parsers that want a C string.
 *
 * Threads: a buffer belongs to one thread at a time.
 */
#ifndef PARLEY_UTIL_BUF_H
#define PARLEY_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct parley_buf {
    char *data;   /* bytes, NUL-terminated at len; NULL until first append */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated (len + 1 <= cap when data != NULL) */
    size_t limit; /* len may never exceed this */
} parley_buf_t;

/* An empty buffer that may grow to limit bytes. */
void parley_buf_init(parley_buf_t *b, size_t limit);
/* Free the storage; the buffer is empty afterwards. Accepts NULL. */
void parley_buf_free(parley_buf_t *b);
/* Forget the contents, keep the storage. */
void parley_buf_reset(parley_buf_t *b);
/* Make room for n more bytes. 0, PARLEY_ETOOBIG or PARLEY_ENOMEM. */
int parley_buf_reserve(parley_buf_t *b, size_t n);
int parley_buf_append(parley_buf_t *b, const void *p, size_t n);
int parley_buf_puts(parley_buf_t *b, const char *s);
int parley_buf_putc(parley_buf_t *b, char c);
int parley_buf_printf(parley_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Take ownership of the data (caller frees); the buffer becomes empty. */
char *parley_buf_steal(parley_buf_t *b, size_t *len);

#endif
