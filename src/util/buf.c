/*
 * buf.c — growable byte buffer with a hard limit (see buf.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "util/buf.h"

void parley_buf_init(parley_buf_t *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void parley_buf_free(parley_buf_t *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void parley_buf_reset(parley_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int parley_buf_reserve(parley_buf_t *b, size_t n)
{
    if (n > b->limit || b->len > b->limit - n)
        return PARLEY_ETOOBIG;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return PARLEY_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int parley_buf_append(parley_buf_t *b, const void *p, size_t n)
{
    int rc = parley_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int parley_buf_puts(parley_buf_t *b, const char *s)
{
    return parley_buf_append(b, s, strlen(s));
}

int parley_buf_putc(parley_buf_t *b, char c)
{
    return parley_buf_append(b, &c, 1);
}

int parley_buf_printf(parley_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PARLEY_EINVAL;
    if ((size_t)n < sizeof small)
        return parley_buf_append(b, small, (size_t)n);
    int rc = parley_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *parley_buf_steal(parley_buf_t *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
