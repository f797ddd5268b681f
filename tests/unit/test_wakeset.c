/*
 * test_wakeset.c — unit tests for store/wakeset.c.
 *
 * Covers the set of streams to wake: an empty set; add keeps ids distinct;
 * one id past PARLEY_WAKESET_MAX sets all (the ids it holds stay) and a
 * duplicate of a held id does not; merge adds the other set's ids without
 * duplicates and carries its all flag; merging into a full set overflows
 * it to all, and merging a set already known never does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/wakeset.h"

static void wakeset_init_is_empty(void **state)
{
    (void)state;
    parley_wakeset_t ws;
    parley_wakeset_init(&ws);
    assert_int_equal(ws.n, 0);
    assert_false(ws.all);
    assert_true(parley_wakeset_empty(&ws));
}

static void wakeset_add_dedups(void **state)
{
    (void)state;
    parley_wakeset_t ws;
    parley_wakeset_init(&ws);
    parley_wakeset_add(&ws, 7);
    parley_wakeset_add(&ws, -1); /* a negative id (the subscription doorbell) is an id too */
    parley_wakeset_add(&ws, 7);
    parley_wakeset_add(&ws, -1);
    assert_int_equal(ws.n, 2);
    assert_int_equal(ws.ids[0], 7);
    assert_int_equal(ws.ids[1], -1);
    assert_false(ws.all);
    assert_false(parley_wakeset_empty(&ws));
}

static void wakeset_add_overflow_sets_all(void **state)
{
    (void)state;
    parley_wakeset_t ws;
    parley_wakeset_init(&ws);
    for (int64_t id = 1; id <= PARLEY_WAKESET_MAX; id++)
        parley_wakeset_add(&ws, id);
    assert_int_equal(ws.n, PARLEY_WAKESET_MAX);
    assert_false(ws.all);       /* exactly full still names every stream */
    parley_wakeset_add(&ws, 5); /* already held: still no overflow */
    assert_false(ws.all);
    parley_wakeset_add(&ws, PARLEY_WAKESET_MAX + 1);
    assert_true(ws.all);
    assert_int_equal(ws.n, PARLEY_WAKESET_MAX);
    for (int i = 0; i < PARLEY_WAKESET_MAX; i++)
        assert_int_equal(ws.ids[i], i + 1);
    parley_wakeset_add(&ws, 1000);
    assert_true(ws.all); /* stays set */
    assert_false(parley_wakeset_empty(&ws));
}

static void wakeset_merge_unions(void **state)
{
    (void)state;
    parley_wakeset_t a, b;
    parley_wakeset_init(&a);
    parley_wakeset_init(&b);
    parley_wakeset_add(&a, 1);
    parley_wakeset_add(&a, 2);
    parley_wakeset_add(&b, 2);
    parley_wakeset_add(&b, 3);
    parley_wakeset_merge(&a, &b);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.ids[0], 1);
    assert_int_equal(a.ids[1], 2);
    assert_int_equal(a.ids[2], 3);
    assert_false(a.all);
    assert_int_equal(b.n, 2); /* the source is left alone */

    /* An empty set with all set still wakes everyone after a merge. */
    parley_wakeset_t c;
    parley_wakeset_init(&c);
    c.all = true;
    parley_wakeset_merge(&a, &c);
    assert_true(a.all);
    assert_int_equal(a.n, 3);

    /* Merging an empty set changes nothing. */
    parley_wakeset_t e, d;
    parley_wakeset_init(&e);
    parley_wakeset_init(&d);
    parley_wakeset_add(&d, 9);
    parley_wakeset_merge(&d, &e);
    assert_int_equal(d.n, 1);
    assert_false(d.all);
}

static void wakeset_merge_into_full_sets_all(void **state)
{
    (void)state;
    parley_wakeset_t full, more, same;
    parley_wakeset_init(&full);
    parley_wakeset_init(&more);
    parley_wakeset_init(&same);
    for (int64_t id = 1; id <= PARLEY_WAKESET_MAX; id++)
        parley_wakeset_add(&full, id);
    parley_wakeset_add(&same, 1);
    parley_wakeset_add(&same, PARLEY_WAKESET_MAX);
    parley_wakeset_merge(&full, &same); /* nothing new: still names all */
    assert_false(full.all);
    assert_int_equal(full.n, PARLEY_WAKESET_MAX);
    parley_wakeset_add(&more, 3);
    parley_wakeset_add(&more, 500); /* one new id: no room */
    parley_wakeset_merge(&full, &more);
    assert_true(full.all);
    assert_int_equal(full.n, PARLEY_WAKESET_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wakeset_init_is_empty),
        cmocka_unit_test(wakeset_add_dedups),
        cmocka_unit_test(wakeset_add_overflow_sets_all),
        cmocka_unit_test(wakeset_merge_unions),
        cmocka_unit_test(wakeset_merge_into_full_sets_all),
    };
    return cmocka_run_group_tests_name("wakeset", tests, NULL, NULL);
}
