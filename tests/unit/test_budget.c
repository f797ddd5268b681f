/*
 * test_budget.c — unit tests for http/budget.c.
 *
 * Covers the readers' output budget: a window is the reader's share of the
 * budget, between MIN_WINDOW and the largest window; held bytes are summed
 * and released on removal; the sweep disconnects (shuts the socket down)
 * only stalled readers and only while the budget is exceeded, those over
 * their share first, each once; a reader that drains is never cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/budget.h"
#include "parley/parley.h"
#include "util/clock.h"

#define KiB 1024

static int setup(void **state)
{
    parley_budget_t *b = NULL;
    if (parley_budget_create(1024 * KiB, 256 * KiB, &b))
        return -1;
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    parley_budget_destroy(*state);
    return 0;
}

/* True if the peer of sv[0] sees it shut down. */
static bool is_shut(int peer)
{
    char c;
    return recv(peer, &c, 1, MSG_DONTWAIT) == 0;
}

static void budget_grant_is_the_share(void **state)
{
    parley_budget_t *b = *state;
    parley_budget_entry_t e[128];
    memset(e, 0, sizeof e);
    parley_budget_add(b, &e[0], -1);
    assert_int_equal(parley_budget_grant(b, &e[0]), 256 * KiB); /* capped at the window */
    for (int i = 1; i < 8; i++)
        parley_budget_add(b, &e[i], -1);
    assert_int_equal(parley_budget_grant(b, &e[0]), 128 * KiB); /* 1 MiB / 8 */
    for (int i = 8; i < 128; i++)
        parley_budget_add(b, &e[i], -1);
    assert_int_equal(parley_budget_grant(b, &e[0]), PARLEY_BUDGET_MIN_WINDOW); /* floor */
    for (int i = 0; i < 128; i++)
        parley_budget_remove(b, &e[i]);
    parley_budget_stats_t st;
    parley_budget_stats(b, &st);
    assert_int_equal(st.readers, 0);
}

static void budget_held_is_summed_and_released(void **state)
{
    parley_budget_t *b = *state;
    parley_budget_entry_t e[2];
    memset(e, 0, sizeof e);
    parley_budget_add(b, &e[0], -1);
    parley_budget_add(b, &e[1], -1);
    parley_budget_hold(b, &e[0], 1000);
    parley_budget_hold(b, &e[1], 500);
    parley_budget_hold(b, &e[0], 300);
    parley_budget_stats_t st;
    parley_budget_stats(b, &st);
    assert_int_equal(st.held, 800);
    parley_budget_remove(b, &e[0]);
    parley_budget_remove(b, &e[0]); /* a no-op */
    parley_budget_stats(b, &st);
    assert_int_equal(st.held, 500);
    assert_int_equal(st.readers, 1);
    parley_budget_remove(b, &e[1]);
    parley_budget_stats(b, &st);
    assert_int_equal(st.held, 0);
}

static void budget_sweep_cuts_stalled_readers_over_budget(void **state)
{
    parley_budget_t *b = *state;
    enum { N = 6 };
    parley_budget_entry_t e[N];
    int sv[N][2];
    memset(e, 0, sizeof e);
    for (int i = 0; i < N; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
        parley_budget_add(b, &e[i], sv[i][0]);
    }
    /* Under the budget: nothing is cut, however stalled. */
    for (int i = 0; i < N; i++)
        parley_budget_hold(b, &e[i], 100 * KiB);
    int64_t later = parley_clock_mono_ms() + 10 * PARLEY_BUDGET_STALL_MS;
    assert_int_equal(parley_budget_sweep(b, later), 0);
    /* Over it: readers 0 and 1 hold more than their share (1 MiB / 6 =
     * 170 KiB), 2..5 less; all are stalled. */
    parley_budget_hold(b, &e[0], 0);
    parley_budget_hold(b, &e[1], 0);
    for (int i = 0; i < N; i++)
        parley_budget_hold(b, &e[i], i < 2 ? 250 * KiB : 160 * KiB);
    /* Nobody is stalled yet. */
    assert_int_equal(parley_budget_sweep(b, parley_clock_mono_ms()), 0);
    unsigned n = parley_budget_sweep(b, later);
    /* 2 x 250 + 4 x 160 KiB = 1140 KiB: cutting one reader over its
     * share is enough, and nobody within it is cut. */
    assert_int_equal(n, 1);
    assert_true(is_shut(sv[0][1]) != is_shut(sv[1][1]));
    for (int i = 2; i < N; i++)
        assert_false(is_shut(sv[i][1]));
    /* The cut reader still counts until its connection is gone, but the
     * sweep knows it is going: nothing more is cut. */
    assert_int_equal(parley_budget_sweep(b, later), 0);
    parley_budget_stats_t st;
    parley_budget_stats(b, &st);
    assert_int_equal(st.evicted, 1);
    for (int i = 0; i < N; i++) {
        parley_budget_remove(b, &e[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

static void budget_sweep_spares_readers_that_drain(void **state)
{
    parley_budget_t *b = *state;
    enum { N = 8 };
    parley_budget_entry_t e[N];
    int sv[N][2];
    memset(e, 0, sizeof e);
    for (int i = 0; i < N; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
        parley_budget_add(b, &e[i], sv[i][0]);
        parley_budget_hold(b, &e[i], 200 * KiB); /* 1.6 MiB: over */
    }
    /* Every reader made progress just now (held shrank). */
    for (int i = 0; i < N; i++)
        parley_budget_hold(b, &e[i], 199 * KiB);
    assert_int_equal(parley_budget_sweep(b, parley_clock_mono_ms()), 0);
    for (int i = 0; i < N; i++) {
        assert_false(is_shut(sv[i][1]));
        parley_budget_remove(b, &e[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(budget_grant_is_the_share, setup, teardown),
        cmocka_unit_test_setup_teardown(budget_held_is_summed_and_released, setup, teardown),
        cmocka_unit_test_setup_teardown(budget_sweep_cuts_stalled_readers_over_budget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(budget_sweep_spares_readers_that_drain, setup, teardown),
    };
    return cmocka_run_group_tests_name("budget", tests, NULL, NULL);
}
