/*
 * test_hub.c — unit tests for api/hub.c.
 *
 * Covers the fan-out hub: a notify wakes exactly the waiters of the streams
 * it names (including streams that share a hash bucket), each once, with
 * PARLEY_WAKE_DATA; a generation mismatch refuses to park; cancel removes a
 * parked waiter exactly once; the timer thread wakes a waiter whose
 * deadline passed with PARLEY_WAKE_TIMEOUT (and no other); close and
 * destroy wake everything with PARLEY_WAKE_SHUTDOWN and refuse new waits;
 * wake callbacks run without the hub's lock held; a wake set wakes the
 * streams it names, and every waiter once it overflowed.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api/hub.h"
#include "parley/parley.h"
#include "util/clock.h"

/* A waiter that records how it was woken. */
typedef struct probe {
    parley_waiter_t w;    /* handed to the hub */
    atomic_int calls;     /* wake callbacks so far */
    atomic_int why;       /* reason of the last wake */
    atomic_llong woke_ms; /* monotonic time of the last wake */
} probe_t;

static void on_wake(parley_waiter_t *w, parley_wake_t why)
{
    probe_t *p = w->arg;
    atomic_store(&p->woke_ms, parley_clock_mono_ms());
    atomic_store(&p->why, (int)why);
    atomic_fetch_add(&p->calls, 1);
}

static void probe_init(probe_t *p, int64_t stream_id, int64_t deadline_ms)
{
    memset(p, 0, sizeof *p);
    p->w.stream_id = stream_id;
    p->w.deadline_ms = deadline_ms;
    p->w.on_wake = on_wake;
    p->w.arg = p;
    atomic_init(&p->calls, 0);
    atomic_init(&p->why, -1);
    atomic_init(&p->woke_ms, 0);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

#define NPROBES 5000 /* more waiters than the hub has buckets */

/* A rewaiting waiter (see hub_wake_callback_runs_unlocked). */
typedef struct rewait {
    parley_waiter_t w; /* handed to the hub */
    parley_hub_t *hub; /* to call back into */
    atomic_int calls;  /* wakes so far */
    atomic_int rc;     /* result of the re-wait */
} rewait_t;

/*
 * The hub and every waiter a case parks. Waiters live here rather than on
 * a case's stack so that a failed assertion, which leaves the case early,
 * cannot leave a parked waiter pointing at a dead frame when teardown
 * destroys the hub (and wakes whatever is still parked).
 */
typedef struct fixture {
    parley_hub_t *hub; /* the hub under test */
    probe_t *p;        /* NPROBES probes */
    rewait_t r;        /* a waiter that parks again from its callback */
} fixture_t;

static int hub_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    fx->p = calloc(NPROBES, sizeof *fx->p);
    if (!fx->p)
        return -1;
    return parley_hub_create(&fx->hub) == 0 ? 0 : -1;
}

static int hub_teardown(void **state)
{
    fixture_t *fx = *state;
    if (!fx)
        return 0;
    if (fx->hub)
        parley_hub_destroy(fx->hub);
    free(fx->p);
    free(fx);
    return 0;
}

static void hub_notify_wakes_only_changed_streams(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    /* More waiters than buckets: some streams share a bucket for sure. */
    probe_t *p = fx->p;
    uint64_t gen = parley_hub_generation(hub);
    for (int i = 0; i < NPROBES; i++) {
        probe_init(&p[i], i + 1, 0);
        assert_int_equal(parley_hub_wait(hub, &p[i].w, gen), 0);
    }
    assert_int_equal(parley_hub_waiting(hub), NPROBES);

    /* Wake two streams; one named twice is still woken once. */
    const int64_t ids[] = {17, 4242, 17, 999999};
    parley_hub_notify(hub, ids, 4);
    assert_int_equal(parley_hub_generation(hub), gen + 1);
    for (int i = 0; i < NPROBES; i++) {
        int64_t id = i + 1;
        int want = id == 17 || id == 4242;
        if (atomic_load(&p[i].calls) != want)
            fail_msg("stream %lld woken %d times, want %d", (long long)id, atomic_load(&p[i].calls),
                     want);
        if (want)
            assert_int_equal(atomic_load(&p[i].why), PARLEY_WAKE_DATA);
    }
    assert_int_equal(parley_hub_waiting(hub), NPROBES - 2);

    /* A notify naming no stream moves the generation and wakes nobody. */
    parley_hub_notify(hub, NULL, 0);
    assert_int_equal(parley_hub_generation(hub), gen + 2);
    assert_int_equal(parley_hub_waiting(hub), NPROBES - 2);

    /* Every remaining waiter is still parked and can be cancelled. */
    for (int i = 0; i < NPROBES; i++) {
        int64_t id = i + 1;
        assert_int_equal(parley_hub_cancel(hub, &p[i].w), !(id == 17 || id == 4242));
    }
    assert_int_equal(parley_hub_waiting(hub), 0);
}

static void hub_notify_set_names_or_wakes_all(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    probe_t *p = fx->p;
    int n = PARLEY_WAKESET_MAX + 2; /* waiters on streams 1..n */
    uint64_t gen = parley_hub_generation(hub);
    for (int i = 0; i < n; i++) {
        probe_init(&p[i], i + 1, 0);
        assert_int_equal(parley_hub_wait(hub, &p[i].w, gen), 0);
    }
    /* A set that names streams 1 and 2 wakes just those. */
    parley_wakeset_t ws;
    parley_wakeset_init(&ws);
    parley_wakeset_add(&ws, 1);
    parley_wakeset_add(&ws, 2);
    parley_hub_notify_set(hub, &ws);
    for (int i = 0; i < n; i++)
        assert_int_equal(atomic_load(&p[i].calls), i < 2);
    /* One naming streams 1..n has overflowed: everyone still parked wakes,
     * the streams it could not name included. */
    parley_wakeset_init(&ws);
    for (int64_t id = 1; id <= n; id++)
        parley_wakeset_add(&ws, id);
    assert_true(ws.all);
    parley_hub_notify_set(hub, &ws);
    for (int i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&p[i].calls), 1);
        assert_int_equal(atomic_load(&p[i].why), PARLEY_WAKE_DATA);
    }
    assert_int_equal(parley_hub_waiting(hub), 0);
    assert_int_equal(parley_hub_generation(hub), gen + 2);
}

static void hub_notify_wakes_all_waiters_same_stream(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    probe_t *a = &fx->p[0], *b = &fx->p[1], *c = &fx->p[2], *other = &fx->p[3];
    probe_init(a, 7, 0);
    probe_init(b, 7, 0);
    probe_init(c, 7, 0);
    probe_init(other, 8, 0);
    uint64_t gen = parley_hub_generation(hub);
    assert_int_equal(parley_hub_wait(hub, &a->w, gen), 0);
    assert_int_equal(parley_hub_wait(hub, &b->w, gen), 0);
    assert_int_equal(parley_hub_wait(hub, &other->w, gen), 0);
    assert_int_equal(parley_hub_wait(hub, &c->w, gen), 0);
    const int64_t id = 7;
    parley_hub_notify(hub, &id, 1);
    assert_int_equal(atomic_load(&a->calls), 1);
    assert_int_equal(atomic_load(&b->calls), 1);
    assert_int_equal(atomic_load(&c->calls), 1);
    assert_int_equal(atomic_load(&other->calls), 0);
    assert_false(a->w.parked);
    assert_true(other->w.parked);
    /* A second notify finds nobody left on stream 7. */
    parley_hub_notify(hub, &id, 1);
    assert_int_equal(atomic_load(&a->calls), 1);
    assert_true(parley_hub_cancel(hub, &other->w));
}

static void hub_wait_conflict_generation_mismatch(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    probe_t *p = &fx->p[0];
    probe_init(p, 1, 0);
    uint64_t gen = parley_hub_generation(hub);
    const int64_t unrelated = 2;
    parley_hub_notify(hub, &unrelated, 1); /* a commit after the read */

    assert_int_equal(parley_hub_wait(hub, &p->w, gen), PARLEY_ECONFLICT);
    assert_false(p->w.parked);
    assert_int_equal(parley_hub_waiting(hub), 0);
    /* A generation from the future is a mismatch too. */
    assert_int_equal(parley_hub_wait(hub, &p->w, gen + 5), PARLEY_ECONFLICT);
    assert_int_equal(parley_hub_waiting(hub), 0);

    /* Not parked: a notify of its stream does not call it. */
    const int64_t mine = 1;
    parley_hub_notify(hub, &mine, 1);
    assert_int_equal(atomic_load(&p->calls), 0);

    /* With the current generation it parks. */
    assert_int_equal(parley_hub_wait(hub, &p->w, parley_hub_generation(hub)), 0);
    assert_int_equal(parley_hub_waiting(hub), 1);
    parley_hub_notify(hub, &mine, 1);
    assert_int_equal(atomic_load(&p->calls), 1);
    assert_int_equal(atomic_load(&p->why), PARLEY_WAKE_DATA);
}

static void hub_cancel_removes_parked_once(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    probe_t *p = &fx->p[0], *q = &fx->p[1];
    probe_init(p, 3, 0);
    probe_init(q, 3, 0);
    /* Never parked: nothing to remove. */
    assert_false(parley_hub_cancel(hub, &p->w));

    uint64_t gen = parley_hub_generation(hub);
    assert_int_equal(parley_hub_wait(hub, &p->w, gen), 0);
    assert_int_equal(parley_hub_wait(hub, &q->w, gen), 0);
    assert_true(parley_hub_cancel(hub, &p->w));
    assert_false(parley_hub_cancel(hub, &p->w));
    assert_int_equal(parley_hub_waiting(hub), 1);

    const int64_t id = 3;
    parley_hub_notify(hub, &id, 1);
    assert_int_equal(atomic_load(&p->calls), 0); /* cancelled: never called */
    assert_int_equal(atomic_load(&q->calls), 1);
    /* Already woken: cancel reports that its callback ran. */
    assert_false(parley_hub_cancel(hub, &q->w));
    assert_int_equal(parley_hub_waiting(hub), 0);
}

static void hub_deadline_wakes_timeout_only_due(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    probe_t *due = &fx->p[0], *never = &fx->p[1], *later = &fx->p[2];
    int64_t start = parley_clock_mono_ms();
    probe_init(due, 11, start + 30);
    probe_init(never, 11, 0);
    probe_init(later, 12, start + 60000);
    uint64_t gen = parley_hub_generation(hub);
    assert_int_equal(parley_hub_wait(hub, &due->w, gen), 0);
    assert_int_equal(parley_hub_wait(hub, &never->w, gen), 0);
    assert_int_equal(parley_hub_wait(hub, &later->w, gen), 0);

    /* Poll, bounded: the timer ticks every 100 ms. */
    for (int i = 0; i < 200 && atomic_load(&due->calls) == 0; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&due->calls), 1);
    assert_int_equal(atomic_load(&due->why), PARLEY_WAKE_TIMEOUT);
    assert_true(atomic_load(&due->woke_ms) >= start + 30);
    assert_false(due->w.parked);

    assert_int_equal(atomic_load(&never->calls), 0);
    assert_int_equal(atomic_load(&later->calls), 0);
    assert_int_equal(parley_hub_waiting(hub), 2);
    assert_true(parley_hub_cancel(hub, &never->w));
    assert_true(parley_hub_cancel(hub, &later->w));
}

static void hub_close_wakes_all_shutdown(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    probe_t *p = fx->p;
    uint64_t gen = parley_hub_generation(hub);
    for (int i = 0; i < 6; i++) {
        probe_init(&p[i], i % 3, i == 5 ? parley_clock_mono_ms() + 60000 : 0);
        assert_int_equal(parley_hub_wait(hub, &p[i].w, gen), 0);
    }
    parley_hub_close(hub);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(atomic_load(&p[i].calls), 1);
        assert_int_equal(atomic_load(&p[i].why), PARLEY_WAKE_SHUTDOWN);
        assert_false(p[i].w.parked);
    }
    assert_int_equal(parley_hub_waiting(hub), 0);

    /* Closed: no new waiter, whatever the generation. */
    probe_t *late = &fx->p[6];
    probe_init(late, 1, 0);
    assert_int_equal(parley_hub_wait(hub, &late->w, parley_hub_generation(hub)), PARLEY_ECLOSED);
    assert_int_equal(parley_hub_wait(hub, &late->w, gen + 100), PARLEY_ECLOSED);
    assert_false(late->w.parked);
    assert_int_equal(parley_hub_waiting(hub), 0);
    const int64_t id = 1;
    parley_hub_notify(hub, &id, 1);
    parley_hub_close(hub); /* twice is harmless */
    assert_int_equal(atomic_load(&late->calls), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(atomic_load(&p[i].calls), 1);
}

static void hub_destroy_wakes_parked_shutdown(void **state)
{
    parley_hub_t *hub = NULL;
    assert_int_equal(parley_hub_create(&hub), 0);
    probe_t a, b;
    probe_init(&a, 1, 0);
    probe_init(&b, 2, parley_clock_mono_ms() + 60000);
    assert_int_equal(parley_hub_wait(hub, &a.w, parley_hub_generation(hub)), 0);
    assert_int_equal(parley_hub_wait(hub, &b.w, parley_hub_generation(hub)), 0);
    parley_hub_destroy(hub);
    assert_int_equal(atomic_load(&a.calls), 1);
    assert_int_equal(atomic_load(&a.why), PARLEY_WAKE_SHUTDOWN);
    assert_int_equal(atomic_load(&b.calls), 1);
    assert_int_equal(atomic_load(&b.why), PARLEY_WAKE_SHUTDOWN);
    parley_hub_destroy(NULL);
}

/* A wake callback that parks again, as a live reader re-waiting does. */
static void on_wake_rewait(parley_waiter_t *w, parley_wake_t why)
{
    rewait_t *r = w->arg;
    /* Deadlocks if the hub's lock is held during the callback. */
    uint64_t gen = parley_hub_generation(r->hub);
    if (atomic_fetch_add(&r->calls, 1) == 0)
        atomic_store(&r->rc, parley_hub_wait(r->hub, w, gen));
}

static void hub_wake_callback_runs_unlocked(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    rewait_t *r = &fx->r;
    memset(r, 0, sizeof *r);
    r->w.stream_id = 5;
    r->w.on_wake = on_wake_rewait;
    r->w.arg = r;
    r->hub = hub;
    atomic_init(&r->calls, 0);
    atomic_init(&r->rc, 12345);
    assert_int_equal(parley_hub_wait(hub, &r->w, parley_hub_generation(hub)), 0);
    const int64_t id = 5;
    parley_hub_notify(hub, &id, 1);
    assert_int_equal(atomic_load(&r->calls), 1);
    assert_int_equal(atomic_load(&r->rc), 0);
    assert_true(r->w.parked);
    assert_int_equal(parley_hub_waiting(hub), 1);
    assert_true(parley_hub_cancel(hub, &r->w));
}

/* Notifies from another thread, as the writer thread does. */
typedef struct notifier {
    parley_hub_t *hub; /* hub to notify */
    int64_t id;        /* stream to announce */
    int rounds;        /* notifies to send */
} notifier_t;

static void *notify_main(void *arg)
{
    notifier_t *n = arg;
    for (int i = 0; i < n->rounds; i++)
        parley_hub_notify(n->hub, &n->id, 1);
    return NULL;
}

static void hub_notify_concurrent_no_lost_waiters(void **state)
{
    fixture_t *fx = *state;
    parley_hub_t *hub = fx->hub;
    enum { ROUNDS = 2000 };
    notifier_t n = {hub, 99, ROUNDS};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, notify_main, &n), 0);
    /* A reader racing the notifier: each park is refused (a commit came
     * first), cancelled, or woken exactly once with DATA. No assertion
     * until the notifier is joined. */
    int bad_rc = 0, bad_wake = 0;
    for (int i = 0; i < ROUNDS; i++) {
        probe_t *p = &fx->p[i % NPROBES];
        probe_init(p, 99, 0);
        int rc = parley_hub_wait(hub, &p->w, parley_hub_generation(hub));
        if (rc == PARLEY_ECONFLICT)
            continue;
        if (rc != 0) {
            bad_rc++;
            continue;
        }
        if (parley_hub_cancel(hub, &p->w))
            continue;
        /* Not cancelled: the notifier owns the wake-up, and p must stay
         * valid until its callback has run. */
        for (int k = 0; k < 1000000 && atomic_load(&p->calls) == 0; k++)
            sched_yield();
        if (atomic_load(&p->calls) != 1 || atomic_load(&p->why) != PARLEY_WAKE_DATA)
            bad_wake++;
    }
    pthread_join(t, NULL);
    assert_int_equal(bad_rc, 0);
    assert_int_equal(bad_wake, 0);
    assert_int_equal(parley_hub_waiting(hub), 0);
    assert_int_equal(parley_hub_generation(hub), ROUNDS);
}

int main(void)
{
    const struct CMUnitTest hub_tests[] = {
        cmocka_unit_test_setup_teardown(hub_notify_wakes_only_changed_streams, hub_setup,
                                        hub_teardown),
        cmocka_unit_test_setup_teardown(hub_notify_set_names_or_wakes_all, hub_setup, hub_teardown),
        cmocka_unit_test_setup_teardown(hub_notify_wakes_all_waiters_same_stream, hub_setup,
                                        hub_teardown),
        cmocka_unit_test_setup_teardown(hub_wait_conflict_generation_mismatch, hub_setup,
                                        hub_teardown),
        cmocka_unit_test_setup_teardown(hub_cancel_removes_parked_once, hub_setup, hub_teardown),
        cmocka_unit_test_setup_teardown(hub_deadline_wakes_timeout_only_due, hub_setup,
                                        hub_teardown),
        cmocka_unit_test_setup_teardown(hub_close_wakes_all_shutdown, hub_setup, hub_teardown),
        cmocka_unit_test(hub_destroy_wakes_parked_shutdown),
        cmocka_unit_test_setup_teardown(hub_wake_callback_runs_unlocked, hub_setup, hub_teardown),
        cmocka_unit_test_setup_teardown(hub_notify_concurrent_no_lost_waiters, hub_setup,
                                        hub_teardown),
    };
    return cmocka_run_group_tests_name("hub", hub_tests, NULL, NULL);
}
