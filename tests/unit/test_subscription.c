/*
 * test_subscription.c — unit tests for core/subscription.c.
 *
 * The pure pieces (the retry schedule, the configuration hash), then the
 * state machine of subscription.c's top comment driven on a real SQLite
 * store through the public functions, as the writer would:
 *   webhook:   IDLE → WOKEN (a stream appears under the pattern) → the
 *              delivery shows the snapshot → a failed POST schedules a
 *              retry → {"done": true} acks the snapshot → IDLE; the old
 *              wake is FENCED afterwards;
 *   pull-wake: a wake event in the wake stream, claim, ALREADY_CLAIMED for
 *              a second worker, ack with done, a new wake on the next
 *              append, lease expiry hands the work to a new wake and
 *              fences the old holder.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */

#include <ftw.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/stream.h"
#include "core/subscription.h"
#include "status_of.h"
#include "parley/parley.h"
#include "store/store.h"

#define NOW 1778324210000LL

/* Open the SQLite store in dir (its default file, as `--data dir` does). */
static int open_store_in(const char *dir, parley_store_t **out)
{
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/parley.db", dir);
    return parley_store_open(url, out);
}

static void subscription_retry_delay_table(void **state)
{
    (void)state;
    static const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(parley_subscription_retry_delay(i + 1, 0), want[i]);
        assert_int_equal(parley_subscription_retry_delay(i + 1, 1), want[i] * 12 / 10);
        assert_int_equal(parley_subscription_retry_delay(i + 1, -1), want[i] * 8 / 10);
    }
    assert_int_equal(parley_subscription_retry_delay(1000, 0), 60000);
}

static void subscription_hash_covers_the_configuration(void **state)
{
    (void)state;
    const char *streams[] = {"a", "b"};
    parley_sub_spec_t s = {"webhook", "events/*", "https://h.example/x", "", "", 30000, streams, 2};
    char h1[65], h2[65], h3[65];
    assert_int_equal(parley_subscription_hash(&s, h1), 0);
    assert_int_equal(parley_subscription_hash(&s, h2), 0);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    const char *changes[] = {"description", "lease", "url", "pattern", "streams"};
    for (int i = 0; i < 5; i++) {
        parley_sub_spec_t t = s;
        if (i == 0)
            t.description = "d";
        if (i == 1)
            t.lease_ttl_ms = 30001;
        if (i == 2)
            t.webhook_url = "https://h.example/y";
        if (i == 3)
            t.pattern = "events/**";
        if (i == 4)
            t.nstreams = 1;
        assert_int_equal(parley_subscription_hash(&t, h3), 0);
        if (strcmp(h1, h3) == 0)
            fail_msg("changing the %s keeps the hash", changes[i]);
    }
}

/* ---- on a store ---------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];           /* temporary data directory */
    parley_store_t *store;  /* the store */
    parley_db_t *db;        /* its writer connection */
    parley_keyring_t *kr;   /* the keys */
    parley_sub_view_t view; /* how answers name things */
} fixture_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void fixture_open(fixture_t *fx)
{
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/parley-test-subscription-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(open_store_in(fx->dir, &fx->store), 0);
    fx->db = parley_store_writer(fx->store);
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_subscription_keys(fx->db, NOW, &fx->kr), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    fx->view.root_url = "http://127.0.0.1:4437/v1/stream";
    fx->view.kid = parley_keyring_kid(fx->kr);
}

static void fixture_close(fixture_t *fx)
{
    parley_keyring_free(fx->kr);
    parley_store_close(fx->store);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void begin(fixture_t *fx)
{
    assert_int_equal(parley_db_begin(fx->db), 0);
}

static void commit(fixture_t *fx)
{
    assert_int_equal(parley_db_commit(fx->db), 0);
}

/* Append one JSON message to path (made if missing) and run the hook a
 * stream write runs; returns the tail. */
static uint64_t append(fixture_t *fx, const char *path, int64_t now, parley_outcome_t *o)
{
    parley_stream_t st;
    int64_t id;
    bool is_new = parley_db_stream_get(fx->db, path, &st) == PARLEY_ENOTFOUND;
    assert_int_equal(parley_stream_append_internal(fx->db, path, "@local", "{\"n\":1}", 7, &id), 0);
    assert_int_equal(parley_db_stream_get(fx->db, path, &st), 0);
    parley_outcome_init(o);
    if (is_new)
        assert_int_equal(parley_subscription_stream_created(fx->db, path, 0, st.tail, now, o), 0);
    else
        assert_int_equal(parley_subscription_stream_appended(fx->db, path, st.tail, now, o), 0);
    return st.tail;
}

static bool notifies(const parley_outcome_t *o, int64_t id)
{
    for (int i = 0; i < o->wake.n; i++)
        if (o->wake.ids[i] == id)
            return true;
    return false;
}

static void subscription_webhook_wake_retry_done_on_a_store(void **state)
{
    (void)state;
    fixture_t fx;
    parley_outcome_t o;
    parley_sub_t s;
    parley_sub_link_t l;
    fixture_open(&fx);
    parley_sub_spec_t spec = {"webhook", "events/*", "http://127.0.0.1:9/hook", "", "", 1000,
                              NULL,      0};

    begin(&fx);
    append(&fx, "events/old", NOW, &o); /* exists before: linked at its tail */
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_put(fx.db, "s1", &spec, &fx.view, NOW, &o), 0);
    assert_int_equal(outcome_status(&o), 201);
    json_t *link0 = json_array_get(json_object_get(o.body, "streams"), 0);
    assert_string_equal(json_string_value(json_object_get(link0, "path")), "events/old");
    assert_string_equal(json_string_value(json_object_get(link0, "acked_offset")),
                        "0000000000000000_0000000000000001");
    parley_outcome_clear(&o);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_put(fx.db, "s1", &spec, &fx.view, NOW, &o), 0);
    assert_int_equal(outcome_status(&o), 200); /* re-confirmed */
    parley_outcome_clear(&o);
    assert_int_equal(parley_db_sub_get(fx.db, "s1", &s), 0);
    assert_string_equal(s.wake_id, ""); /* nothing pending: idle */

    /* A new stream under the pattern wakes it. */
    append(&fx, "events/new", NOW, &o);
    assert_true(notifies(&o, PARLEY_SUBSCRIPTION_DOORBELL));
    commit(&fx);
    assert_int_equal(parley_db_sub_get(fx.db, "s1", &s), 0);
    assert_int_equal(s.generation, 1);
    assert_true(s.wake_id[0] != '\0');
    assert_int_equal(s.delivery_due_ms, NOW);

    /* More data after the wake is not in its snapshot. */
    begin(&fx);
    append(&fx, "events/new", NOW, &o);
    assert_false(notifies(&o, PARLEY_SUBSCRIPTION_DOORBELL)); /* a wake is in flight */
    commit(&fx);

    char *body = NULL, url[PARLEY_SUB_URL_MAX + 1], wake[PARLEY_SUB_WAKE_MAX + 1];
    size_t len = 0;
    int64_t gen = 0;
    begin(&fx);
    assert_int_equal(
        parley_subscription_delivery(fx.db, "s1", fx.kr, NULL, NOW, &body, &len, url, &gen, wake),
        0);
    commit(&fx);
    assert_string_equal(url, "http://127.0.0.1:9/hook");
    json_t *v = json_loadb(body, len, 0, NULL);
    free(body);
    assert_string_equal(json_string_value(json_object_get(v, "callback_url")),
                        "http://127.0.0.1:4437/v1/stream/__ds/subscriptions/s1/callback");
    json_t *streams = json_object_get(v, "streams"), *item;
    size_t i;
    int seen = 0;
    json_array_foreach(streams, i, item)
    {
        const char *p = json_string_value(json_object_get(item, "path"));
        if (strcmp(p, "events/new") == 0) {
            assert_string_equal(json_string_value(json_object_get(item, "tail_offset")),
                                "0000000000000000_0000000000000001");
            assert_true(json_is_true(json_object_get(item, "has_pending")));
            seen++;
        } else {
            assert_true(json_is_false(json_object_get(item, "has_pending")));
        }
    }
    assert_int_equal(seen, 1);
    char token[4096];
    snprintf(token, sizeof token, "%s", json_string_value(json_object_get(v, "callback_token")));
    json_decref(v);

    /* A failed POST: retry after about a second, status failed (the wake
     * is younger than the maximum age: not given up). */
    bool given_up = true;
    begin(&fx);
    assert_int_equal(parley_subscription_delivered(fx.db, "s1", gen, wake,
                                                   PARLEY_SUB_DELIVERY_FAILED, NOW, 60000,
                                                   &given_up, &o),
                     0);
    commit(&fx);
    assert_false(given_up);
    assert_int_equal(parley_db_sub_get(fx.db, "s1", &s), 0);
    assert_int_equal(s.attempts, 1);
    assert_in_range(s.delivery_due_ms, NOW + 800, NOW + 1200);
    begin(&fx);
    assert_int_equal(
        parley_subscription_delivery(fx.db, "s1", fx.kr, NULL, NOW, &body, &len, url, &gen, wake),
        PARLEY_ENOTFOUND); /* not due yet */
    commit(&fx);

    /* {"done": true}: the snapshot (1), not the tail (2), is acked; the
     * rest is pending, so the subscription is woken again at once. */
    begin(&fx);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_delivered(fx.db, "s1", gen, wake, PARLEY_SUB_DELIVERY_DONE,
                                                   NOW + 2000, 0, &given_up, &o),
                     0);
    commit(&fx);
    assert_int_equal(parley_db_sublink_get(fx.db, "s1", "events/new", &l), 0);
    assert_int_equal(l.acked, 1);
    assert_int_equal(parley_db_sub_get(fx.db, "s1", &s), 0);
    assert_int_equal(s.generation, 2);
    assert_int_equal(s.attempts, 0);
    assert_true(notifies(&o, PARLEY_SUBSCRIPTION_DOORBELL));

    /* The first wake's token and ids are fenced now. */
    parley_sub_report_t rep = {token, wake, true, 1, NULL, 0, true};
    begin(&fx);
    parley_outcome_init(&o);
    assert_int_equal(
        parley_subscription_report(fx.db, "s1", PARLEY_SUB_CALLBACK, &rep, fx.kr, NOW + 2000, &o),
        0);
    assert_int_equal(outcome_status(&o), 409);
    assert_string_equal(o.code, "FENCED");
    parley_outcome_clear(&o);
    /* And a deleted subscription answers nothing. */
    assert_int_equal(parley_subscription_delete(fx.db, "s1", &o), 0);
    assert_int_equal(outcome_status(&o), 204);
    parley_outcome_init(&o);
    assert_int_equal(
        parley_subscription_report(fx.db, "s1", PARLEY_SUB_CALLBACK, &rep, fx.kr, NOW + 2000, &o),
        0);
    assert_int_equal(outcome_status(&o), 404);
    commit(&fx);
    fixture_close(&fx);
}

static void subscription_pull_wake_claim_ack_expire_on_a_store(void **state)
{
    (void)state;
    fixture_t fx;
    parley_outcome_t o;
    parley_sub_t s;
    parley_stream_t wake_st;
    int64_t wake_id_stream;
    fixture_open(&fx);
    const char *streams[] = {"q"};
    parley_sub_spec_t spec = {"pull-wake", "", "", "wake/pool", "", 1000, streams, 1};

    begin(&fx);
    assert_int_equal(parley_stream_ensure_internal(fx.db, "wake/pool", "@local", &wake_id_stream),
                     0);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_put(fx.db, "p1", &spec, &fx.view, NOW, &o), 0);
    assert_int_equal(outcome_status(&o), 201);
    parley_outcome_clear(&o);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_claim(fx.db, "p1", "w1", fx.kr, NOW, &o), 0);
    assert_int_equal(outcome_status(&o), 409);
    assert_string_equal(o.code, "NO_PENDING_WORK");
    parley_outcome_clear(&o);
    append(&fx, "q", NOW, &o);
    assert_true(notifies(&o, wake_id_stream));
    commit(&fx);
    assert_int_equal(parley_db_stream_get(fx.db, "wake/pool", &wake_st), 0);
    assert_int_equal(wake_st.tail, 1); /* one wake event */

    begin(&fx);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_claim(fx.db, "p1", "w1", fx.kr, NOW, &o), 0);
    assert_int_equal(outcome_status(&o), 200);
    char token[4096], wake[PARLEY_SUB_WAKE_MAX + 1], tail[64];
    snprintf(token, sizeof token, "%s", json_string_value(json_object_get(o.body, "token")));
    snprintf(wake, sizeof wake, "%s", json_string_value(json_object_get(o.body, "wake_id")));
    snprintf(tail, sizeof tail, "%s",
             json_string_value(json_object_get(
                 json_array_get(json_object_get(o.body, "streams"), 0), "tail_offset")));
    assert_int_equal(json_integer_value(json_object_get(o.body, "generation")), 1);
    parley_outcome_clear(&o);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_claim(fx.db, "p1", "w2", fx.kr, NOW + 10, &o), 0);
    assert_int_equal(outcome_status(&o), 409);
    assert_string_equal(o.code, "ALREADY_CLAIMED");
    assert_string_equal(json_string_value(json_object_get(o.body, "current_holder")), "w1");
    parley_outcome_clear(&o);

    /* An ack that regresses or passes the tail is refused; a good one
     * with done releases the lease. */
    parley_sub_ack_t bad = {"q", "0000000000000000_0000000000000005"};
    parley_sub_report_t rep = {token, wake, true, 1, &bad, 1, true};
    parley_outcome_init(&o);
    assert_int_equal(
        parley_subscription_report(fx.db, "p1", PARLEY_SUB_ACK, &rep, fx.kr, NOW + 20, &o), 0);
    assert_int_equal(outcome_status(&o), 409);
    assert_string_equal(o.code, "INVALID_OFFSET");
    parley_outcome_clear(&o);
    parley_sub_ack_t good = {"q", tail};
    rep.acks = &good;
    parley_outcome_init(&o);
    assert_int_equal(
        parley_subscription_report(fx.db, "p1", PARLEY_SUB_ACK, &rep, fx.kr, NOW + 20, &o), 0);
    assert_int_equal(outcome_status(&o), 200);
    assert_true(json_is_false(json_object_get(o.body, "next_wake")));
    parley_outcome_clear(&o);
    commit(&fx);

    /* The next append wakes it again; the lease of its claim runs out. */
    begin(&fx);
    append(&fx, "q", NOW + 30, &o);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_claim(fx.db, "p1", "w1", fx.kr, NOW + 40, &o), 0);
    assert_int_equal(outcome_status(&o), 200);
    snprintf(token, sizeof token, "%s", json_string_value(json_object_get(o.body, "token")));
    snprintf(wake, sizeof wake, "%s", json_string_value(json_object_get(o.body, "wake_id")));
    parley_outcome_clear(&o);
    commit(&fx);
    parley_wakeset_t woken;
    parley_wakeset_init(&woken);
    begin(&fx);
    assert_int_equal(parley_subscription_expire_leases(fx.db, NOW + 500, &woken), 0);
    assert_true(parley_wakeset_empty(&woken)); /* not yet */
    assert_int_equal(parley_subscription_expire_leases(fx.db, NOW + 1040, &woken), 0);
    assert_int_equal(woken.n, 1);
    assert_false(woken.all);
    assert_int_equal(woken.ids[0], wake_id_stream);
    commit(&fx);
    assert_int_equal(parley_db_sub_get(fx.db, "p1", &s), 0);
    assert_int_equal(s.generation, 3); /* the pending work got a new wake */
    assert_string_equal(s.holder, "");
    assert_int_equal(parley_db_stream_get(fx.db, "wake/pool", &wake_st), 0);
    assert_int_equal(wake_st.tail, 3);

    parley_sub_report_t late = {token, wake, true, 2, NULL, 0, false};
    begin(&fx);
    parley_outcome_init(&o);
    assert_int_equal(
        parley_subscription_report(fx.db, "p1", PARLEY_SUB_RELEASE, &late, fx.kr, NOW + 1050, &o),
        0);
    assert_int_equal(outcome_status(&o), 409);
    assert_string_equal(o.code, "FENCED");
    parley_outcome_clear(&o);
    commit(&fx);
    fixture_close(&fx);
}

static void subscription_wake_stream_must_be_the_admins(void **state)
{
    (void)state;
    fixture_t fx;
    parley_outcome_t o;
    parley_stream_t st;
    int64_t id;
    fixture_open(&fx);
    parley_sub_spec_t spec = {"pull-wake", "jobs/*", "", "wake/user", "", 1000, NULL, 0};

    /* A user's stream is refused as a wake stream, on creation and on a
     * re-confirmation; the message does not say whose it is. */
    begin(&fx);
    assert_int_equal(parley_stream_ensure_internal(fx.db, "wake/user", "alice", &id), 0);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_put(fx.db, "p1", &spec, &fx.view, NOW, &o), 0);
    assert_int_equal(outcome_status(&o), 409);
    assert_string_equal(o.code, "WAKE_STREAM_NOT_ADMIN");
    assert_null(strstr(o.error, "alice"));
    parley_outcome_clear(&o);
    parley_sub_t s;
    assert_int_equal(parley_db_sub_get(fx.db, "p1", &s), PARLEY_ENOTFOUND);

    /* The admin's (or local mode's) streams and a path not yet made are
     * accepted. */
    const char *ok[] = {"wake/admin", "wake/local", "wake/later"};
    assert_int_equal(parley_stream_ensure_internal(fx.db, "wake/admin", "@admin", &id), 0);
    assert_int_equal(parley_stream_ensure_internal(fx.db, "wake/local", "@local", &id), 0);
    for (int i = 0; i < 3; i++) {
        char sid[8];
        snprintf(sid, sizeof sid, "ok%d", i);
        parley_sub_spec_t t = spec;
        t.wake_stream = ok[i];
        t.pattern = i == 2 ? "later/*" : "jobs/*";
        parley_outcome_init(&o);
        assert_int_equal(parley_subscription_put(fx.db, sid, &t, &fx.view, NOW, &o), 0);
        if (outcome_status(&o) != 201)
            fail_msg("wake stream %s: %d %s", ok[i], outcome_status(&o), o.error ? o.error : "");
        parley_outcome_clear(&o);
    }

    /* A user who makes the missing wake stream later gets no wake events:
     * they would name other users' streams. The wake can still be claimed. */
    assert_int_equal(parley_stream_ensure_internal(fx.db, "wake/later", "mallory", &id), 0);
    append(&fx, "later/bob", NOW, &o);
    assert_false(notifies(&o, id));
    parley_outcome_clear(&o);
    assert_int_equal(parley_db_stream_get(fx.db, "wake/later", &st), 0);
    assert_int_equal(st.tail, 0);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_claim(fx.db, "ok2", "w1", fx.kr, NOW, &o), 0);
    assert_int_equal(outcome_status(&o), 200);
    parley_outcome_clear(&o);
    commit(&fx);
    fixture_close(&fx);
}

int main(void)
{
    const struct CMUnitTest subscription_tests[] = {
        cmocka_unit_test(subscription_retry_delay_table),
        cmocka_unit_test(subscription_hash_covers_the_configuration),
        cmocka_unit_test(subscription_webhook_wake_retry_done_on_a_store),
        cmocka_unit_test(subscription_pull_wake_claim_ack_expire_on_a_store),
        cmocka_unit_test(subscription_wake_stream_must_be_the_admins),
    };
    return cmocka_run_group_tests_name("subscription", subscription_tests, NULL, NULL);
}
