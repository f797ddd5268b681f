/*
 * test_ratelimit.c — unit tests for core/ratelimit.c.
 *
 * Covers the rules made from configuration (defaults, local mode, off,
 * bursts, ranges); a fresh bucket admitting exactly its burst at once;
 * refill at the configured rate and never past the burst; the wait of a
 * refusal and its Retry-After rounding; classes and keys never sharing a
 * bucket; the table's hard cap under key churn, with idle buckets reused
 * for free and a busy bucket kept over one nearly full; exact counting
 * under concurrent threads. It also prints the cost of one admission
 * (single thread and four threads), a measurement, not a pass condition.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/ratelimit.h"
#include "parley/parley.h"

#define SEC 1000000000LL /* nanoseconds */

static const unsigned char seed[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* A table where every class has the rule count/period_s with burst. */
static parley_ratelimit_t *table(uint32_t count, uint32_t period_s, uint32_t burst, size_t buckets)
{
    parley_rate_rule_t rules[PARLEY_RATE_NCLASSES];
    parley_rate_t rate = {count, period_s, burst};
    for (int i = 0; i < PARLEY_RATE_NCLASSES; i++)
        assert_int_equal(parley_ratelimit_rule(&rate, NULL, false, &rules[i]), 0);
    parley_ratelimit_t *rl = NULL;
    assert_int_equal(parley_ratelimit_create(rules, buckets, seed, &rl), 0);
    assert_non_null(rl);
    return rl;
}

static bool admit(parley_ratelimit_t *rl, const char *key, int64_t now, int64_t *wait)
{
    int64_t w;
    return parley_ratelimit_admit(rl, PARLEY_RATE_USER_WRITES, key, strlen(key), now,
                                  wait ? wait : &w);
}

/* Admissions of key at one instant until the first refusal (at most max). */
static int drain(parley_ratelimit_t *rl, const char *key, int64_t now, int max)
{
    int n = 0;
    while (n < max && admit(rl, key, now, NULL))
        n++;
    return n;
}

static void ratelimit_rule_from_config(void **state)
{
    (void)state;
    const parley_rate_t def = {50, 1, 100};
    static const struct {
        parley_rate_t rate; /* as configured */
        bool use_def;       /* pass def */
        bool local;         /* local mode */
        int rc;             /* expected return */
        int64_t interval;   /* expected interval_ns (0 = off) */
        int64_t burst;      /* expected burst */
    } cases[] = {
        {{0, 0, 0}, true, false, 0, SEC / 50, 100},     /* not set: the default */
        {{0, 0, 0}, true, true, 0, 0, 0},               /* not set, local mode: off */
        {{0, 0, 0}, false, false, 0, 0, 0},             /* not set, no default: off */
        {{0, 0, 7}, true, false, 0, SEC / 50, 7},       /* a burst alone keeps the rate */
        {{0, 1, 0}, true, false, 0, 0, 0},              /* "off" */
        {{10, 1, 0}, true, true, 0, SEC / 10, 10},      /* set in local mode: on */
        {{10, 1, 25}, false, false, 0, SEC / 10, 25},   /* explicit burst */
        {{2, 60, 0}, false, false, 0, 30 * SEC, 2},     /* per minute */
        {{3, 3600, 0}, false, false, 0, 1200 * SEC, 3}, /* per hour */
        {{3, 1, 0}, false, false, 0, SEC / 3, 3},       /* truncated, not zero */
        {{1, 3601, 0}, false, false, PARLEY_EINVAL, 0, 0},
        {{1, 1, PARLEY_RATELIMIT_MAX_BURST + 1}, false, false, PARLEY_EINVAL, 0, 0},
        {{2000000000u, 1, 0}, false, false, 0, 1, PARLEY_RATELIMIT_MAX_BURST}, /* clamped */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_rate_rule_t rule;
        int rc = parley_ratelimit_rule(&cases[i].rate, cases[i].use_def ? &def : NULL,
                                       cases[i].local, &rule);
        if (rc != cases[i].rc || (rc == 0 && (rule.interval_ns != cases[i].interval ||
                                              (cases[i].interval && rule.burst != cases[i].burst))))
            fail_msg("case %zu: rc %d interval %lld burst %lld", i, rc, (long long)rule.interval_ns,
                     (long long)rule.burst);
        if (rc == 0)
            assert_int_equal(parley_ratelimit_rule_is_on(&rule), cases[i].interval != 0);
    }
}

static void ratelimit_burst_fresh_bucket(void **state)
{
    (void)state;
    static const struct {
        uint32_t count, period_s, burst; /* the rule */
        int admitted;                    /* at one instant */
    } cases[] = {
        {1, 1, 0, 1},
        {5, 1, 0, 5},
        {5, 1, 12, 12},
        {100, 1, 1, 1},
        {2, 60, 0, 2},
        {1, 3600, 3, 3},
        /* the slowest rule with the largest burst: no overflow */
        {1, 3600, PARLEY_RATELIMIT_MAX_BURST, PARLEY_RATELIMIT_MAX_BURST},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_ratelimit_t *rl = table(cases[i].count, cases[i].period_s, cases[i].burst, 64);
        int64_t t0 = 1000 * SEC;
        int n = drain(rl, "alice", t0, 2 * PARLEY_RATELIMIT_MAX_BURST);
        if (n != cases[i].admitted)
            fail_msg("case %zu: %d admitted at once, want %d", i, n, cases[i].admitted);
        parley_ratelimit_free(rl);
    }
}

static void ratelimit_refill_at_rate(void **state)
{
    (void)state;
    parley_ratelimit_t *rl = table(10, 1, 20, 64); /* 10/s, burst 20 */
    int64_t t = 1000 * SEC;
    assert_int_equal(drain(rl, "u", t, 1000), 20);
    /* Table: time after the bucket was emptied -> admissions then. */
    static const struct {
        int64_t after; /* ns since the previous step */
        int admitted;  /* admitted at once at that time */
    } steps[] = {
        {SEC / 10 - 1, 0}, /* not quite one interval */
        {1, 1},            /* exactly one */
        {SEC / 2, 5},      /* half a second: five */
        {10 * SEC, 20},    /* long idle: the burst, not more */
        {SEC / 20, 0},     /* half an interval */
        {SEC / 20, 1},     /* the other half */
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        t += steps[i].after;
        int n = drain(rl, "u", t, 1000);
        if (n != steps[i].admitted)
            fail_msg("step %zu: %d admitted, want %d", i, n, steps[i].admitted);
    }
    parley_ratelimit_free(rl);
}

static void ratelimit_wait_of_refusal(void **state)
{
    (void)state;
    static const struct {
        uint32_t count, period_s, burst; /* the rule */
        int64_t later;                   /* ns after emptying, when asked again */
        int64_t wait;                    /* expected wait then */
        int64_t retry_after;             /* expected Retry-After */
    } cases[] = {
        {1, 1, 0, 0, SEC, 1},
        {1, 1, 0, SEC / 4, 3 * SEC / 4, 1},
        {2, 60, 0, 0, 30 * SEC, 30},
        {2, 60, 0, SEC / 2, 29 * SEC + SEC / 2, 30},
        {1, 3600, 5, 0, 3600 * SEC, 3600},
        {4, 1, 0, 0, SEC / 4, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_ratelimit_t *rl = table(cases[i].count, cases[i].period_s, cases[i].burst, 64);
        int64_t t = 5000 * SEC, wait = -1;
        drain(rl, "bob", t, 100000);
        assert_false(admit(rl, "bob", t + cases[i].later, &wait));
        if (wait != cases[i].wait || parley_ratelimit_retry_after_s(wait) != cases[i].retry_after)
            fail_msg("case %zu: wait %lld (want %lld), retry after %lld (want %lld)", i,
                     (long long)wait, (long long)cases[i].wait,
                     (long long)parley_ratelimit_retry_after_s(wait),
                     (long long)cases[i].retry_after);
        /* A refusal costs nothing: after the wait, one goes through. */
        assert_true(admit(rl, "bob", t + cases[i].later + wait, NULL));
        parley_ratelimit_free(rl);
    }
}

static void ratelimit_retry_after_rounds_up(void **state)
{
    (void)state;
    static const struct {
        int64_t wait_ns;
        int64_t seconds;
    } cases[] = {
        {-5, 1},
        {0, 1},
        {1, 1},
        {SEC - 1, 1},
        {SEC, 1},
        {SEC + 1, 2},
        {59 * SEC + SEC / 2, 60},
        {3600 * SEC, 3600},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (parley_ratelimit_retry_after_s(cases[i].wait_ns) != cases[i].seconds)
            fail_msg("case %zu: %lld ns -> %lld s, want %lld", i, (long long)cases[i].wait_ns,
                     (long long)parley_ratelimit_retry_after_s(cases[i].wait_ns),
                     (long long)cases[i].seconds);
}

static void ratelimit_keys_and_classes_apart(void **state)
{
    (void)state;
    parley_ratelimit_t *rl = table(3, 60, 0, 1024);
    int64_t t = 100 * SEC, w;
    assert_int_equal(drain(rl, "alice", t, 100), 3);
    /* Another user, a key that is a prefix, and another class are untouched. */
    assert_int_equal(drain(rl, "bob", t, 100), 3);
    assert_int_equal(drain(rl, "alic", t, 100), 3);
    for (int cls = PARLEY_RATE_USER_READS; cls < PARLEY_RATE_NCLASSES; cls++) {
        int n = 0;
        while (n < 100 && parley_ratelimit_admit(rl, cls, "alice", 5, t, &w))
            n++;
        assert_int_equal(n, 3);
    }
    /* Keys are bytes: an embedded NUL is part of the key. */
    assert_true(parley_ratelimit_admit(rl, PARLEY_RATE_USER_WRITES, "alice\0x", 7, t, &w));
    parley_ratelimit_free(rl);
}

static void ratelimit_cap_under_churn(void **state)
{
    (void)state;
    /* Table: buckets asked for -> live buckets it may hold at most. */
    static const struct {
        size_t buckets; /* asked for */
        size_t cap;     /* rounded up to whole sets of 8 */
    } cases[] = {{1, 8}, {8, 8}, {9, 16}, {100, 128}, {4096, 4096}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_ratelimit_t *rl = table(1, 60, 0, cases[i].buckets);
        int64_t t = 10 * SEC;
        size_t keys = cases[i].cap * 20;
        char key[32];
        for (size_t k = 0; k < keys; k++) {
            snprintf(key, sizeof key, "user-%zu", k);
            assert_true(admit(rl, key, t, NULL)); /* a new key always starts full */
        }
        size_t used = parley_ratelimit_used(rl, t);
        if (used > cases[i].cap || used < cases[i].cap / 2)
            fail_msg("case %zu: %zu live buckets, cap %zu", i, used, cases[i].cap);
        assert_int_equal(parley_ratelimit_evictions(rl), keys - used);
        /* A minute on, every bucket is idle: all free again. */
        assert_int_equal(parley_ratelimit_used(rl, t + 60 * SEC), 0);
        parley_ratelimit_free(rl);
    }
}

static void ratelimit_idle_buckets_reused_without_eviction(void **state)
{
    (void)state;
    parley_ratelimit_t *rl = table(1, 1, 0, 8); /* one set of 8 */
    int64_t t = 10 * SEC;
    char key[32];
    /* Each key is used once and is idle a second later: never an eviction. */
    for (int k = 0; k < 1000; k++) {
        snprintf(key, sizeof key, "ip-%d", k);
        assert_true(admit(rl, key, t, NULL));
        t += SEC;
    }
    assert_int_equal(parley_ratelimit_evictions(rl), 0);
    assert_true(parley_ratelimit_used(rl, t - SEC) <= 1);
    parley_ratelimit_free(rl);
}

static void ratelimit_busy_bucket_survives_churn(void **state)
{
    (void)state;
    parley_ratelimit_t *rl = table(1, 60, 5, 8); /* one set; burst 5 per minute */
    int64_t t = 10 * SEC;
    char key[32];
    assert_int_equal(drain(rl, "abuser", t, 100), 5);
    /* Many one-off keys crowd the set: the victim is always the bucket
     * nearest to full, never the empty one. */
    for (int k = 0; k < 500; k++) {
        snprintf(key, sizeof key, "churn-%d", k);
        admit(rl, key, t + k, NULL);
        assert_false(admit(rl, "abuser", t + k, NULL));
    }
    parley_ratelimit_free(rl);
}

/* Four threads take tokens from one bucket at one instant. */
typedef struct racer {
    parley_ratelimit_t *rl; /* shared table */
    int admitted;           /* this thread's admissions */
} racer_t;

static void *race(void *arg)
{
    racer_t *rc = arg;
    int64_t w;
    for (int i = 0; i < 20000; i++)
        if (parley_ratelimit_admit(rc->rl, PARLEY_RATE_ADDR_READS, "shared", 6, 77 * SEC, &w))
            rc->admitted++;
    return NULL;
}

static void ratelimit_exact_under_threads(void **state)
{
    (void)state;
    parley_ratelimit_t *rl = table(10, 1, 5000, 64);
    racer_t r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (racer_t){rl, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].admitted;
    }
    assert_int_equal(total, 5000);
    parley_ratelimit_free(rl);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* The cost of one admission: the server's table size, 1000 users, the
 * real clock read per call as the server does. */
typedef struct bench {
    parley_ratelimit_t *rl; /* shared table */
    int ops;                /* admissions to make */
    int base;               /* first user number */
} bench_t;

static void *bench_run(void *arg)
{
    bench_t *b = arg;
    char keys[1000][24];
    int64_t w;
    for (int k = 0; k < 1000; k++)
        snprintf(keys[k], sizeof keys[k], "user-%d", b->base + k);
    for (int i = 0; i < b->ops; i++) {
        const char *k = keys[i % 1000];
        parley_ratelimit_admit(b->rl, PARLEY_RATE_USER_WRITES, k, strlen(k), mono_ns(), &w);
    }
    return NULL;
}

static void ratelimit_cost_per_request(void **state)
{
    (void)state;
    parley_ratelimit_t *rl = table(1000, 1, 0, PARLEY_RATELIMIT_BUCKETS);
    const int ops = 2000000;
    bench_t one = {rl, ops, 0};
    int64_t t0 = mono_ns();
    bench_run(&one);
    double single = (double)(mono_ns() - t0) / ops;

    bench_t b[4];
    pthread_t th[4];
    t0 = mono_ns();
    for (int i = 0; i < 4; i++) {
        b[i] = (bench_t){rl, ops / 4, i * 1000};
        assert_int_equal(pthread_create(&th[i], NULL, bench_run, &b[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    double wall = (double)(mono_ns() - t0) / ops;
    printf("[ measure  ] ratelimit admit: %.0f ns per call on one thread; "
           "%.0f ns of wall time per call with four threads\n",
           single, wall);
    parley_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ratelimit_rule_from_config),
        cmocka_unit_test(ratelimit_burst_fresh_bucket),
        cmocka_unit_test(ratelimit_refill_at_rate),
        cmocka_unit_test(ratelimit_wait_of_refusal),
        cmocka_unit_test(ratelimit_retry_after_rounds_up),
        cmocka_unit_test(ratelimit_keys_and_classes_apart),
        cmocka_unit_test(ratelimit_cap_under_churn),
        cmocka_unit_test(ratelimit_idle_buckets_reused_without_eviction),
        cmocka_unit_test(ratelimit_busy_bucket_survives_churn),
        cmocka_unit_test(ratelimit_exact_under_threads),
        cmocka_unit_test(ratelimit_cost_per_request),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
