/*
 * test_watch.c — unit tests for http/watch.c.
 *
 * Covers the parked-connection watcher on socket pairs: a peer that closes
 * (FIN) or resets is reported within a second, once, after the entry was
 * unregistered; bytes the peer sends (a pipelined request) are not a
 * hang-up; a refused claim keeps the entry until a later claim succeeds;
 * a removed entry is never reported; descriptors are reused safely.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/watch.h"
#include "parley/parley.h"
#include "util/clock.h"

/* An entry that records its callbacks. */
typedef struct probe {
    parley_watch_entry_t e; /* handed to the watcher */
    atomic_bool allow;      /* what claim() answers */
    atomic_int claims;      /* claim() calls */
    atomic_int gones;       /* gone() calls */
    atomic_int fd_at_gone;  /* e.fd when gone() ran (-1: unregistered) */
    int sv[2];              /* [0] watched, [1] the peer */
} probe_t;

static bool on_claim(parley_watch_entry_t *e)
{
    probe_t *p = e->arg;
    atomic_fetch_add(&p->claims, 1);
    return atomic_load(&p->allow);
}

static void on_gone(parley_watch_entry_t *e)
{
    probe_t *p = e->arg;
    atomic_store(&p->fd_at_gone, e->fd);
    atomic_fetch_add(&p->gones, 1);
}

static void probe_init(probe_t *p, bool allow)
{
    memset(p, 0, sizeof *p);
    p->e.claim = on_claim;
    p->e.gone = on_gone;
    p->e.arg = p;
    atomic_init(&p->allow, allow);
    atomic_init(&p->fd_at_gone, 99);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->sv), 0);
}

static void probe_close(probe_t *p)
{
    if (p->sv[0] >= 0)
        close(p->sv[0]);
    if (p->sv[1] >= 0)
        close(p->sv[1]);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait up to ms for *v to reach want; returns the time taken (ms) or -1. */
static long wait_for(atomic_int *v, int want, int ms)
{
    int64_t t0 = parley_clock_mono_ms();
    while (atomic_load(v) < want) {
        if (parley_clock_mono_ms() - t0 > ms)
            return -1;
        sleep_ms(2);
    }
    return (long)(parley_clock_mono_ms() - t0);
}

static int setup(void **state)
{
    parley_watch_t *w = NULL;
    if (parley_watch_create(&w))
        return -1;
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    parley_watch_destroy(*state);
    return 0;
}

static void watch_reports_close_once(void **state)
{
    parley_watch_t *w = *state;
    probe_t p;
    probe_init(&p, true);
    assert_int_equal(parley_watch_add(w, &p.e, p.sv[0]), 0);
    assert_int_equal(parley_watch_count(w), 1);
    close(p.sv[1]);
    p.sv[1] = -1;
    long ms = wait_for(&p.gones, 1, 1000);
    assert_true(ms >= 0);
    sleep_ms(50);
    assert_int_equal(atomic_load(&p.gones), 1);
    assert_int_equal(atomic_load(&p.fd_at_gone), -1); /* unregistered first */
    assert_int_equal(parley_watch_count(w), 0);
    parley_watch_remove(w, &p.e); /* a no-op now */
    probe_close(&p);
}

static void watch_reports_reset(void **state)
{
    parley_watch_t *w = *state;
    probe_t p;
    probe_init(&p, true);
    /* A TCP-like abort on a UNIX socket: shut both directions down. */
    assert_int_equal(parley_watch_add(w, &p.e, p.sv[0]), 0);
    shutdown(p.sv[1], SHUT_RDWR);
    assert_true(wait_for(&p.gones, 1, 1000) >= 0);
    probe_close(&p);
}

static void watch_ignores_pipelined_bytes(void **state)
{
    parley_watch_t *w = *state;
    probe_t p;
    probe_init(&p, true);
    assert_int_equal(parley_watch_add(w, &p.e, p.sv[0]), 0);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(p.sv[1], req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    sleep_ms(200);
    assert_int_equal(atomic_load(&p.claims), 0);
    assert_int_equal(atomic_load(&p.gones), 0);
    assert_int_equal(parley_watch_count(w), 1);
    /* ... but the hang-up behind them is seen. */
    close(p.sv[1]);
    p.sv[1] = -1;
    assert_true(wait_for(&p.gones, 1, 1000) >= 0);
    probe_close(&p);
}

static void watch_refused_claim_keeps_entry(void **state)
{
    parley_watch_t *w = *state;
    probe_t p;
    probe_init(&p, false);
    assert_int_equal(parley_watch_add(w, &p.e, p.sv[0]), 0);
    close(p.sv[1]);
    p.sv[1] = -1;
    assert_true(wait_for(&p.claims, 1, 1000) >= 0);
    sleep_ms(50);
    assert_int_equal(atomic_load(&p.gones), 0);
    assert_int_equal(parley_watch_count(w), 1);
    /* Refusals do not spin: at most about one claim per millisecond. */
    int before = atomic_load(&p.claims);
    sleep_ms(100);
    assert_true(atomic_load(&p.claims) - before <= 150);
    atomic_store(&p.allow, true);
    assert_true(wait_for(&p.gones, 1, 1000) >= 0);
    assert_int_equal(parley_watch_count(w), 0);
    probe_close(&p);
}

static void watch_removed_entry_never_reported(void **state)
{
    parley_watch_t *w = *state;
    probe_t p;
    probe_init(&p, true);
    assert_int_equal(parley_watch_add(w, &p.e, p.sv[0]), 0);
    parley_watch_remove(w, &p.e);
    assert_int_equal(parley_watch_count(w), 0);
    close(p.sv[1]);
    p.sv[1] = -1;
    sleep_ms(200);
    assert_int_equal(atomic_load(&p.claims), 0);
    assert_int_equal(atomic_load(&p.gones), 0);
    /* The same descriptor registered again, for a new entry, works. */
    probe_t q;
    probe_init(&q, true);
    close(q.sv[0]);
    q.sv[0] = dup(p.sv[0]); /* an open socket whose peer is gone */
    assert_int_equal(parley_watch_add(w, &q.e, q.sv[0]), 0);
    assert_true(wait_for(&q.gones, 1, 1000) >= 0);
    assert_int_equal(atomic_load(&p.gones), 0);
    probe_close(&q);
    probe_close(&p);
}

static void watch_many_entries(void **state)
{
    parley_watch_t *w = *state;
    enum { N = 500 };
    probe_t *p = calloc(N, sizeof *p);
    assert_non_null(p);
    for (int i = 0; i < N; i++) {
        probe_init(&p[i], true);
        assert_int_equal(parley_watch_add(w, &p[i].e, p[i].sv[0]), 0);
    }
    assert_int_equal(parley_watch_count(w), N);
    /* Every other peer goes away; the rest stay registered. */
    for (int i = 0; i < N; i += 2) {
        close(p[i].sv[1]);
        p[i].sv[1] = -1;
    }
    for (int i = 0; i < N; i += 2)
        assert_true(wait_for(&p[i].gones, 1, 2000) >= 0);
    sleep_ms(50);
    for (int i = 1; i < N; i += 2)
        assert_int_equal(atomic_load(&p[i].gones), 0);
    assert_int_equal(parley_watch_count(w), N / 2);
    for (int i = 1; i < N; i += 2)
        parley_watch_remove(w, &p[i].e);
    assert_int_equal(parley_watch_count(w), 0);
    for (int i = 0; i < N; i++)
        probe_close(&p[i]);
    free(p);
}

static void watch_add_rejects_bad_fd(void **state)
{
    parley_watch_t *w = *state;
    probe_t p;
    probe_init(&p, true);
    assert_int_equal(parley_watch_add(w, &p.e, -1), PARLEY_EINVAL);
    assert_int_equal(p.e.fd, -1);
    parley_watch_remove(w, &p.e); /* a no-op */
    assert_int_equal(parley_watch_count(w), 0);
    probe_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(watch_reports_close_once, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_reports_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_ignores_pipelined_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_refused_claim_keeps_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_removed_entry_never_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_many_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(watch_add_rejects_bad_fd, setup, teardown),
    };
    return cmocka_run_group_tests_name("watch", tests, NULL, NULL);
}
