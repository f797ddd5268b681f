/*
 * fuzz_jsonmsg.c — libFuzzer harness for JSON-mode message framing
 * (src/codec/jsonmsg.c).
 *
 * The input is one request body, byte for byte. The API takes a pointer and
 * a length, so no NUL is added: libFuzzer's buffer is exactly size bytes and
 * AddressSanitizer reports any read past it. The body goes through
 * parley_jsonmsg_validate() and parley_jsonmsg_split(); the harness aborts
 * when one of these invariants breaks:
 *
 *   1. validate and split agree: both 0, or both PARLEY_EINVAL with a
 *      non-NULL reason.
 *   2. On invalid input the callback is never called (no partial set of
 *      messages ever reaches the store).
 *   3. On success the callback ran exactly *count times, and every span lies
 *      within the body, starts and ends on a non-whitespace byte, and comes
 *      after the previous one without overlapping it.
 *   4. Each span is valid JSON on its own.
 *   5. The framing is exact. For a top-level array, what lies outside the
 *      spans is whitespace, the outer '[' and ']', and exactly one ','
 *      between neighbours; otherwise there is one span, the trimmed body.
 *   6. A callback that returns non-zero stops the split at that message, and
 *      split returns that value.
 *
 * fuzz-sources: src/codec/jsonmsg.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec/jsonmsg.h"
#include "harness.h"
#include "parley/parley.h"

#define STOP_RC 7 /* what the stopping callback returns (invariant 6) */

typedef struct seen {
    const char *body;             /* the body under test */
    size_t size;                  /* its length */
    parley_jsonmsg_span_t *spans; /* spans reported so far */
    size_t n;                     /* how many */
    size_t cap;                   /* room in spans */
    size_t stop_at;               /* return STOP_RC on this call (1-based), 0 never */
} seen_t;

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static int on_message(void *arg, const char *msg, size_t len)
{
    seen_t *s = arg;
    uintptr_t b = (uintptr_t)s->body, m = (uintptr_t)msg;
    FUZZ_CHECK(m >= b && len <= s->size && m - b <= s->size - len);
    FUZZ_CHECK(s->n < s->cap);
    s->spans[s->n].off = (size_t)(m - b);
    s->spans[s->n].len = len;
    s->n++;
    return s->stop_at && s->n == s->stop_at ? STOP_RC : 0;
}

/* Bytes [from, to) are whitespace with exactly `want` copies of sep in them. */
static bool only_ws_and(const char *p, size_t from, size_t to, char sep, int want)
{
    int got = 0;
    for (size_t i = from; i < to; i++) {
        if (p[i] == sep)
            got++;
        else if (!is_ws(p[i]))
            return false;
    }
    return got == want;
}

static void check_spans(const seen_t *s)
{
    const char *p = s->body;
    size_t lo = 0, hi = s->size;
    while (lo < hi && is_ws(p[lo]))
        lo++;
    while (hi > lo && is_ws(p[hi - 1]))
        hi--;
    FUZZ_CHECK(lo < hi); /* an empty body is never valid */

    size_t prev_end = lo;
    for (size_t k = 0; k < s->n; k++) {
        parley_jsonmsg_span_t sp = s->spans[k];
        FUZZ_CHECK(sp.len > 0);
        FUZZ_CHECK(sp.off >= prev_end);
        FUZZ_CHECK(!is_ws(p[sp.off]) && !is_ws(p[sp.off + sp.len - 1]));
        FUZZ_CHECK(parley_jsonmsg_validate(p + sp.off, sp.len, NULL) == 0);
        prev_end = sp.off + sp.len;
    }

    if (p[lo] != '[') {
        FUZZ_CHECK(s->n == 1);
        FUZZ_CHECK(s->spans[0].off == lo && s->spans[0].len == hi - lo);
        return;
    }
    FUZZ_CHECK(p[hi - 1] == ']');
    if (s->n == 0) {
        FUZZ_CHECK(only_ws_and(p, lo + 1, hi - 1, ',', 0));
        return;
    }
    FUZZ_CHECK(only_ws_and(p, lo + 1, s->spans[0].off, ',', 0));
    for (size_t k = 1; k < s->n; k++)
        FUZZ_CHECK(
            only_ws_and(p, s->spans[k - 1].off + s->spans[k - 1].len, s->spans[k].off, ',', 1));
    FUZZ_CHECK(only_ws_and(p, prev_end, hi - 1, ',', 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    const char *why_v = NULL, *why_s = NULL;
    size_t count = (size_t)-1;
    seen_t s = {body, size, NULL, 0, size + 1, 0};

    s.spans = malloc(s.cap * sizeof *s.spans);
    if (!s.spans)
        abort();

    int rv = parley_jsonmsg_validate(body, size, &why_v);
    FUZZ_CHECK(rv == 0 || rv == PARLEY_EINVAL);
    FUZZ_CHECK(rv == 0 || why_v != NULL);
    FUZZ_CHECK(parley_jsonmsg_validate(body, size, NULL) == rv); /* why is optional */

    int rs = parley_jsonmsg_split(body, size, on_message, &s, &count, &why_s);
    FUZZ_CHECK(rs == rv);
    if (rv) {
        FUZZ_CHECK(s.n == 0);
        FUZZ_CHECK(why_s != NULL);
        goto out;
    }

    FUZZ_CHECK(count == s.n);
    check_spans(&s);

    /* A callback-less split counts the same messages. */
    size_t count2 = (size_t)-1;
    FUZZ_CHECK(parley_jsonmsg_split(body, size, NULL, NULL, &count2, NULL) == 0);
    FUZZ_CHECK(count2 == count);

    /* Stop at one message picked by the input; nothing after it is reported. */
    if (count > 0) {
        seen_t t = {body, size, malloc(s.cap * sizeof *t.spans), 0, s.cap, 0};
        if (!t.spans)
            abort();
        t.stop_at = (size_t)data[size - 1] % count + 1;
        int rt = parley_jsonmsg_split(body, size, on_message, &t, &count2, NULL);
        FUZZ_CHECK(rt == STOP_RC);
        FUZZ_CHECK(t.n == t.stop_at);
        for (size_t k = 0; k < t.n; k++)
            FUZZ_CHECK(t.spans[k].off == s.spans[k].off && t.spans[k].len == s.spans[k].len);
        free(t.spans);
    }

out:
    free(s.spans);
    return 0;
}
