/*
 * test_producer.c — unit tests for core/producer.c.
 *
 * Covers the whole decision table of parley_producer_check (no state, stale
 * epoch, new epoch starting at seq 0 or not, duplicate, next, gap with the
 * expected seq) and the strict header parser parley_producer_parse_uint
 * (leading zeros, signs, the 2^53-1 boundary, non-digits, empty).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/producer.h"
#include "parley/parley.h"

#define NOSTATE                                                                                    \
    {                                                                                              \
        false, 0, 0                                                                                \
    }
#define STATE(e, s)                                                                                \
    {                                                                                              \
        true, (e), (s)                                                                             \
    }

static void producer_check_verdict_decision_table(void **state)
{
    static const struct {
        const char *name;
        parley_producer_state_t st;
        uint64_t epoch, seq;
        parley_producer_verdict_t want;
        uint64_t expected; /* GAP only */
    } cases[] = {
        {"no state, seq 0", NOSTATE, 0, 0, PARLEY_PRODUCER_ACCEPT, 0},
        {"no state, epoch 7 seq 0", NOSTATE, 7, 0, PARLEY_PRODUCER_ACCEPT, 0},
        {"no state, seq 1", NOSTATE, 0, 1, PARLEY_PRODUCER_GAP, 0},
        {"no state, seq 5 epoch 3", NOSTATE, 3, 5, PARLEY_PRODUCER_GAP, 0},
        {"stale epoch", STATE(5, 10), 4, 11, PARLEY_PRODUCER_STALE_EPOCH, 0},
        {"stale epoch, seq 0", STATE(5, 10), 0, 0, PARLEY_PRODUCER_STALE_EPOCH, 0},
        {"stale epoch, equal seq", STATE(1, 0), 0, 0, PARLEY_PRODUCER_STALE_EPOCH, 0},
        {"new epoch, seq 0", STATE(5, 10), 6, 0, PARLEY_PRODUCER_ACCEPT, 0},
        {"new epoch far ahead, seq 0", STATE(5, 10), 1000, 0, PARLEY_PRODUCER_ACCEPT, 0},
        {"new epoch, seq 1", STATE(5, 10), 6, 1, PARLEY_PRODUCER_BAD_EPOCH_SEQ, 0},
        {"new epoch, seq 11", STATE(5, 10), 6, 11, PARLEY_PRODUCER_BAD_EPOCH_SEQ, 0},
        {"duplicate, last seq", STATE(5, 10), 5, 10, PARLEY_PRODUCER_DUPLICATE, 0},
        {"duplicate, older seq", STATE(5, 10), 5, 3, PARLEY_PRODUCER_DUPLICATE, 0},
        {"duplicate, seq 0", STATE(5, 10), 5, 0, PARLEY_PRODUCER_DUPLICATE, 0},
        {"duplicate, first seq", STATE(0, 0), 0, 0, PARLEY_PRODUCER_DUPLICATE, 0},
        {"next", STATE(5, 10), 5, 11, PARLEY_PRODUCER_ACCEPT, 0},
        {"next after first", STATE(0, 0), 0, 1, PARLEY_PRODUCER_ACCEPT, 0},
        {"next at the limit", STATE(2, PARLEY_PRODUCER_MAX - 1), 2, PARLEY_PRODUCER_MAX,
         PARLEY_PRODUCER_ACCEPT, 0},
        {"gap by one", STATE(5, 10), 5, 12, PARLEY_PRODUCER_GAP, 11},
        {"gap far", STATE(5, 10), 5, 1000, PARLEY_PRODUCER_GAP, 11},
        {"gap after first", STATE(0, 0), 0, 2, PARLEY_PRODUCER_GAP, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_producer_state_t next = {false, 999, 999};
        uint64_t expected = 424242;
        parley_producer_verdict_t v =
            parley_producer_check(&cases[i].st, cases[i].epoch, cases[i].seq, &next, &expected);
        if (v != cases[i].want)
            fail_msg("%s: verdict %d, want %d", cases[i].name, (int)v, (int)cases[i].want);
        if (v == PARLEY_PRODUCER_ACCEPT) {
            /* The state to store is exactly the request's (epoch, seq). */
            if (!next.exists || next.epoch != cases[i].epoch || next.last_seq != cases[i].seq)
                fail_msg("%s: next state (%d, %llu, %llu)", cases[i].name, (int)next.exists,
                         (unsigned long long)next.epoch, (unsigned long long)next.last_seq);
        }
        if (v == PARLEY_PRODUCER_GAP && expected != cases[i].expected)
            fail_msg("%s: expected seq %llu, want %llu", cases[i].name,
                     (unsigned long long)expected, (unsigned long long)cases[i].expected);
    }
}

static void producer_check_sequence_accepts_in_order(void **state)
{
    /* Feed the stored state back in, as the store does after each ACCEPT. */
    parley_producer_state_t st = NOSTATE;
    for (uint64_t seq = 0; seq < 50; seq++) {
        parley_producer_state_t next;
        uint64_t expected = 0;
        assert_int_equal(parley_producer_check(&st, 3, seq, &next, &expected),
                         PARLEY_PRODUCER_ACCEPT);
        st = next;
        /* A retry of what was just stored is a duplicate. */
        assert_int_equal(parley_producer_check(&st, 3, seq, &next, &expected),
                         PARLEY_PRODUCER_DUPLICATE);
    }
    assert_true(st.exists);
    assert_int_equal(st.epoch, 3);
    assert_int_equal(st.last_seq, 49);
}

static void producer_parse_uint_accepted_canonical(void **state)
{
    static const struct {
        const char *in;
        uint64_t want;
    } cases[] = {
        {"0", 0},
        {"1", 1},
        {"9", 9},
        {"10", 10},
        {"42", 42},
        {"1000000", 1000000},
        {"4294967296", 4294967296ULL},
        {"9007199254740990", 9007199254740990ULL},
        {"9007199254740991", PARLEY_PRODUCER_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 12345;
        int rc = parley_producer_parse_uint(cases[i].in, &v);
        if (rc != 0)
            fail_msg("\"%s\" rejected (rc %d)", cases[i].in, rc);
        assert_int_equal(v, cases[i].want);
    }
}

static void producer_parse_uint_rejected_noncanonical(void **state)
{
    static const char *const bad[] = {
        "",
        "00",
        "01",
        "007",
        "0009007199254740991",
        "+1",
        "-1",
        "-0",
        "+0",
        " 1",
        "1 ",
        "1\n",
        "\t1",
        "1a",
        "a1",
        "a",
        "0x10",
        "1.0",
        "1e3",
        "1_000",
        "9007199254740992",     /* 2^53 */
        "9007199254740993",     /* 2^53 + 1 */
        "9999999999999999",     /* 16 digits over the limit */
        "10000000000000000",    /* 17 digits */
        "18446744073709551615", /* 2^64 - 1 */
        "18446744073709551616", /* 2^64: would wrap */
        "36893488147419103232", /* 2^65: would wrap to 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 12345;
        int rc = parley_producer_parse_uint(bad[i], &v);
        if (rc != PARLEY_EINVAL)
            fail_msg("\"%s\" accepted (rc %d, value %llu)", bad[i], rc, (unsigned long long)v);
        /* A rejected value never reaches the caller. */
        assert_int_equal(v, 12345);
    }
}

static void producer_parse_uint_rejected_null(void **state)
{
    uint64_t v = 7;
    assert_int_equal(parley_producer_parse_uint(NULL, &v), PARLEY_EINVAL);
    assert_int_equal(v, 7);
}

int main(void)
{
    const struct CMUnitTest producer_tests[] = {
        cmocka_unit_test(producer_check_verdict_decision_table),
        cmocka_unit_test(producer_check_sequence_accepts_in_order),
        cmocka_unit_test(producer_parse_uint_accepted_canonical),
        cmocka_unit_test(producer_parse_uint_rejected_noncanonical),
        cmocka_unit_test(producer_parse_uint_rejected_null),
    };
    return cmocka_run_group_tests_name("producer", producer_tests, NULL, NULL);
}
