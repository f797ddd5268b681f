/*
 * test_buf.c — unit tests for util/buf.c.
 *
 * Covers the growable buffer: growth across many reallocations with the
 * contents and the terminating NUL kept, the hard limit (PARLEY_ETOOBIG
 * from every append path, contents left intact), formatted appends on both
 * sides of the internal 256-byte fast path, reset, and steal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parley/parley.h"
#include "util/buf.h"

static void assert_buf_invariants(const parley_buf_t *b)
{
    assert_true(b->len <= b->limit);
    if (b->data) {
        assert_true(b->len + 1 <= b->cap);
        assert_int_equal(b->data[b->len], '\0');
    } else {
        assert_int_equal(b->len, 0);
    }
}

static void buf_init_empty_no_storage(void **state)
{
    parley_buf_t b;
    memset(&b, 0x55, sizeof b);
    parley_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.limit, 100);
    parley_buf_free(&b);
    parley_buf_free(NULL);
}

static void buf_append_grows_keeps_contents(void **state)
{
    parley_buf_t b;
    parley_buf_init(&b, 1 << 20);
    /* One byte at a time through many reallocations. */
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(parley_buf_putc(&b, (char)('a' + i % 26)), 0);
        assert_buf_invariants(&b);
    }
    assert_int_equal(b.len, 5000);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);

    /* Then larger pieces, including embedded NUL bytes. */
    static const char piece[] = "xy\0z";
    for (int i = 0; i < 1000; i++)
        assert_int_equal(parley_buf_append(&b, piece, 4), 0);
    assert_int_equal(b.len, 9000);
    assert_buf_invariants(&b);
    for (int i = 0; i < 1000; i++)
        assert_memory_equal(b.data + 5000 + 4 * i, piece, 4);

    assert_int_equal(parley_buf_puts(&b, "end"), 0);
    assert_int_equal(b.len, 9003);
    assert_string_equal(b.data + 9000, "end");

    /* An empty append changes nothing but is fine. */
    assert_int_equal(parley_buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 9003);
    parley_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void buf_reserve_room_without_length(void **state)
{
    parley_buf_t b;
    parley_buf_init(&b, 4096);
    assert_int_equal(parley_buf_reserve(&b, 1000), 0);
    assert_non_null(b.data);
    assert_true(b.cap >= 1001);
    assert_int_equal(b.len, 0);
    char *before = b.data;
    /* Appending what was reserved needs no reallocation. */
    char block[1000];
    memset(block, 'q', sizeof block);
    assert_int_equal(parley_buf_append(&b, block, sizeof block), 0);
    assert_ptr_equal(b.data, before);
    assert_buf_invariants(&b);
    parley_buf_free(&b);
}

static void buf_limit_exact_fit_accepted(void **state)
{
    parley_buf_t b;
    parley_buf_init(&b, 10);
    assert_int_equal(parley_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    assert_int_equal(parley_buf_append(&b, "", 0), 0);
    assert_int_equal(parley_buf_reserve(&b, 0), 0);
    parley_buf_free(&b);

    parley_buf_init(&b, 0);
    assert_int_equal(parley_buf_append(&b, "", 0), 0);
    assert_int_equal(parley_buf_putc(&b, 'x'), PARLEY_ETOOBIG);
    assert_int_equal(b.len, 0);
    parley_buf_free(&b);
}

static void buf_limit_toobig_contents_intact(void **state)
{
    parley_buf_t b;
    parley_buf_init(&b, 10);
    assert_int_equal(parley_buf_puts(&b, "abcdefgh"), 0);
    char *data = b.data;
    size_t cap = b.cap;

    assert_int_equal(parley_buf_append(&b, "xyz", 3), PARLEY_ETOOBIG);
    assert_int_equal(parley_buf_puts(&b, "123"), PARLEY_ETOOBIG);
    assert_int_equal(parley_buf_printf(&b, "%d", 123), PARLEY_ETOOBIG);
    assert_int_equal(parley_buf_reserve(&b, 3), PARLEY_ETOOBIG);
    assert_int_equal(parley_buf_reserve(&b, SIZE_MAX), PARLEY_ETOOBIG);
    assert_int_equal(parley_buf_append(&b, "x", SIZE_MAX), PARLEY_ETOOBIG);

    /* Nothing moved, nothing changed. */
    assert_int_equal(b.len, 8);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "abcdefgh");

    /* Up to the limit still works after a refusal. */
    assert_int_equal(parley_buf_putc(&b, 'i'), 0);
    assert_int_equal(parley_buf_putc(&b, 'j'), 0);
    assert_int_equal(parley_buf_putc(&b, 'k'), PARLEY_ETOOBIG);
    assert_string_equal(b.data, "abcdefghij");
    assert_buf_invariants(&b);
    parley_buf_free(&b);
}

static void buf_limit_toobig_large_printf(void **state)
{
    parley_buf_t b;
    parley_buf_init(&b, 300);
    assert_int_equal(parley_buf_puts(&b, "head"), 0);
    /* 400 bytes: takes the path past the 256-byte stack buffer. */
    assert_int_equal(parley_buf_printf(&b, "%400s", "x"), PARLEY_ETOOBIG);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "head");
    /* 296 bytes fill it exactly. */
    assert_int_equal(parley_buf_printf(&b, "%296s", "y"), 0);
    assert_int_equal(b.len, 300);
    assert_int_equal(b.data[298], ' ');
    assert_int_equal(b.data[299], 'y');
    assert_buf_invariants(&b);
    parley_buf_free(&b);
}

static void buf_printf_appends_formatted(void **state)
{
    parley_buf_t b;
    parley_buf_init(&b, 1 << 16);
    assert_int_equal(parley_buf_printf(&b, "%s=%d;", "a", 1), 0);
    assert_int_equal(parley_buf_printf(&b, "%05u|%llx", 42u, 0xbeefULL), 0);
    assert_string_equal(b.data, "a=1;00042|beef");
    assert_int_equal(b.len, strlen("a=1;00042|beef"));

    /* Around the 256-byte stack buffer: 255, 256 and 1000 characters. */
    static const int widths[] = {255, 256, 257, 1000};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        size_t before = b.len;
        assert_int_equal(parley_buf_printf(&b, "<%*d>", widths[i] - 2, 7), 0);
        assert_int_equal(b.len, before + (size_t)widths[i]);
        assert_int_equal(b.data[before], '<');
        assert_int_equal(b.data[b.len - 2], '7');
        assert_int_equal(b.data[b.len - 1], '>');
        assert_int_equal(b.data[before + 1], ' ');
        assert_buf_invariants(&b);
    }
    /* An empty format appends nothing. */
    size_t len = b.len;
    assert_int_equal(parley_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, len);
    parley_buf_free(&b);
}

static void buf_reset_keeps_storage(void **state)
{
    parley_buf_t b;
    parley_buf_init(&b, 100);
    parley_buf_reset(&b); /* no storage yet: fine */
    assert_null(b.data);
    assert_int_equal(parley_buf_puts(&b, "hello"), 0);
    char *data = b.data;
    parley_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_string_equal(b.data, "");
    assert_int_equal(parley_buf_puts(&b, "bye"), 0);
    assert_string_equal(b.data, "bye");
    parley_buf_free(&b);
}

static void buf_steal_transfers_ownership(void **state)
{
    parley_buf_t b;
    parley_buf_init(&b, 64);
    assert_int_equal(parley_buf_puts(&b, "payload"), 0);
    size_t len = 0;
    char *p = parley_buf_steal(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 7);
    assert_string_equal(p, "payload");
    /* The buffer is empty but keeps its limit and can be used again. */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.limit, 64);
    assert_int_equal(parley_buf_puts(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    assert_true(b.data != p);
    /* The stolen bytes are the caller's: still intact after reuse. */
    assert_string_equal(p, "payload");
    free(p);

    p = parley_buf_steal(&b, NULL);
    assert_string_equal(p, "again");
    free(p);

    /* Stealing an empty buffer yields NULL and length 0. */
    len = 99;
    assert_null(parley_buf_steal(&b, &len));
    assert_int_equal(len, 0);
    parley_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest buf_tests[] = {
        cmocka_unit_test(buf_init_empty_no_storage),
        cmocka_unit_test(buf_append_grows_keeps_contents),
        cmocka_unit_test(buf_reserve_room_without_length),
        cmocka_unit_test(buf_limit_exact_fit_accepted),
        cmocka_unit_test(buf_limit_toobig_contents_intact),
        cmocka_unit_test(buf_limit_toobig_large_printf),
        cmocka_unit_test(buf_printf_appends_formatted),
        cmocka_unit_test(buf_reset_keeps_storage),
        cmocka_unit_test(buf_steal_transfers_ownership),
    };
    return cmocka_run_group_tests_name("buf", buf_tests, NULL, NULL);
}
