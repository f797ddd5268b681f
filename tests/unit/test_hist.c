/*
 * test_hist.c — unit tests for util/hist.c.
 *
 * Covers the lock-free histogram: a value lands in the first bucket whose
 * bound it does not pass (a value equal to a bound counts in that bucket,
 * as Prometheus' "le" says), values past the last bound land in +Inf, the
 * read is cumulative and its last bucket is the count, the sum adds up,
 * and observations from several threads at once are all counted.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/hist.h"

static const uint64_t bounds[] = {1, 10, 100};

static void hist_observe_lands_in_le_bucket(void **state)
{
    (void)state;
    parley_hist_t h;
    parley_hist_snap_t s;
    parley_hist_init(&h, bounds, 3);
    static const struct {
        uint64_t value;  /* observed */
        size_t first_le; /* the first cumulative bucket that counts it */
    } cases[] = {{0, 0}, {1, 0}, {2, 1}, {10, 1}, {11, 2}, {100, 2}, {101, 3}, {1u << 30, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_hist_init(&h, bounds, 3);
        parley_hist_observe(&h, cases[i].value);
        parley_hist_read(&h, &s);
        for (size_t b = 0; b <= 3; b++)
            assert_int_equal(s.cumulative[b], b >= cases[i].first_le ? 1 : 0);
        assert_int_equal(s.sum, cases[i].value);
    }
}

static void hist_read_is_cumulative_with_count_last(void **state)
{
    (void)state;
    parley_hist_t h;
    parley_hist_snap_t s;
    parley_hist_init(&h, bounds, 3);
    for (uint64_t v = 0; v < 200; v++)
        parley_hist_observe(&h, v);
    parley_hist_read(&h, &s);
    assert_int_equal(s.nbounds, 3);
    assert_int_equal(s.cumulative[0], 2);   /* 0, 1 */
    assert_int_equal(s.cumulative[1], 11);  /* 0..10 */
    assert_int_equal(s.cumulative[2], 101); /* 0..100 */
    assert_int_equal(s.cumulative[3], 200);
    assert_int_equal(parley_hist_count(&h), 200);
    assert_int_equal(s.sum, 199 * 200 / 2);
}

static void *observer(void *arg)
{
    for (int i = 0; i < 100000; i++)
        parley_hist_observe(arg, (uint64_t)(i % 150));
    return NULL;
}

static void hist_observe_many_threads_counts_all(void **state)
{
    (void)state;
    static parley_hist_t h;
    pthread_t t[4];
    parley_hist_init(&h, parley_hist_latency_us, parley_hist_latency_n);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, observer, &h), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(parley_hist_count(&h), 400000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hist_observe_lands_in_le_bucket),
        cmocka_unit_test(hist_read_is_cumulative_with_count_last),
        cmocka_unit_test(hist_observe_many_threads_counts_all),
    };
    return cmocka_run_group_tests_name("hist", tests, NULL, NULL);
}
