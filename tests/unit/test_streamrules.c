/*
 * test_streamrules.c — unit tests for core/streamrules.c and
 * core/maintenance.c, on a real SQLite store.
 *
 * Expiry is a DELETE: a stream whose TTL ran out is deleted by the
 * maintenance tick with the same stream.deleted event (in the owner's
 * feed and the feed of all, whose readers wake) and the same subscription
 * hook (a pattern's link goes, an explicit link stays) as a client's
 * DELETE, exactly once; a create at the path of an expired stream that no
 * tick has swept yet deletes it the same way first.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/feed.h"
#include "core/maintenance.h"
#include "core/outcome.h"
#include "core/streamrules.h"
#include "core/subscription.h"
#include "status_of.h"
#include "parley/parley.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"

#define LATER_MS 60000 /* how far past now the tick runs: every TTL of 1 s has run out */

typedef struct fixture {
    char dir[64];          /* temporary data directory */
    parley_store_t *store; /* the store */
    parley_db_t *db;       /* its writer connection */
} fixture_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void fixture_open(fixture_t *fx)
{
    char url[128];
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/parley-test-streamrules-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(url, sizeof url, "sqlite:%s/parley.db", fx->dir);
    assert_int_equal(parley_store_open(url, &fx->store), 0);
    fx->db = parley_store_writer(fx->store);
    parley_stream_touch_init(parley_clock_now_ms());
}

static void fixture_close(fixture_t *fx)
{
    parley_store_close(fx->store);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A JSON stream request as api/streams.c would build it. */
static parley_stream_req_t request(const char *path, const char *owner, int64_t ttl_s)
{
    parley_stream_req_t q;
    memset(&q, 0, sizeof q);
    q.path = path;
    q.owner = owner;
    q.content_type = "application/json";
    q.ttl_s = ttl_s;
    q.expires_ms = -1;
    return q;
}

static void create(fixture_t *fx, const char *path, const char *owner, int64_t ttl_s)
{
    parley_stream_req_t q = request(path, owner, ttl_s);
    parley_outcome_t res;
    parley_outcome_init(&res);
    assert_int_equal(parley_streamrules_create(fx->db, &q, &res), 0);
    assert_int_equal(res.refusal, 0);
    assert_int_equal(res.done, PARLEY_DONE_CREATED);
}

static void delete (fixture_t *fx, const char *path, const char *owner)
{
    parley_stream_req_t q = request(path, owner, -1);
    parley_outcome_t res;
    parley_outcome_init(&res);
    assert_int_equal(parley_streamrules_delete(fx->db, &q, &res), 0);
    assert_int_equal(res.refusal, 0);
    assert_int_equal(res.done, PARLEY_DONE_EMPTY);
}

/* The events of the feed of user (NULL: all) as "type stream" lines. */
static void feed_brief(parley_db_t *db, const char *user, char *out, size_t cap)
{
    char path[PARLEY_PATH_MAX + 1];
    parley_stream_t meta;
    parley_buf_t buf;
    parley_read_t rd;
    parley_feed_path(user, path, sizeof path);
    out[0] = '\0';
    if (parley_db_stream_get(db, path, &meta) == PARLEY_ENOTFOUND)
        return;
    parley_buf_init(&buf, 1 << 20);
    assert_int_equal(parley_stream_read(db, &meta, 0, 1 << 20, &buf, &rd), 0);
    assert_true(rd.up_to_date);
    assert_int_equal(parley_buf_putc(&buf, ']'), 0);
    char *text = malloc(buf.len + 2);
    assert_non_null(text);
    text[0] = '[';
    memcpy(text + 1, buf.data, buf.len);
    text[buf.len + 1] = '\0';
    json_t *events = json_loads(text, 0, NULL);
    assert_non_null(events);
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s %s %s", n ? "; " : "",
                 json_string_value(json_object_get(e, "user")),
                 json_string_value(json_object_get(e, "type")),
                 json_string_value(json_object_get(e, "stream")));
    }
    json_decref(events);
    free(text);
    parley_buf_free(&buf);
}

/* One maintenance tick at now + LATER_MS, committed. */
static void tick(fixture_t *fx, parley_wakeset_t *wake)
{
    parley_maintenance_cfg_t cfg = {86400, 0, 0};
    parley_wakeset_init(wake);
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_maintenance_tick(fx->db, &cfg, parley_clock_now_ms() + LATER_MS, wake),
                     0);
    assert_int_equal(parley_db_commit(fx->db), 0);
}

static bool wakes(const parley_wakeset_t *w, parley_db_t *db, const char *path)
{
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get(db, path, &st), 0);
    for (int i = 0; i < w->n; i++)
        if (w->ids[i] == st.id)
            return true;
    return w->all;
}

static void streamrules_expiry_emits_stream_deleted_like_a_delete(void **state)
{
    (void)state;
    fixture_t fx;
    char feed[1024], all[1024];
    parley_wakeset_t wake;
    parley_stream_t st;
    fixture_open(&fx);
    assert_int_equal(parley_db_begin(fx.db), 0);
    create(&fx, "tmp/short", "alice", 1);
    create(&fx, "tmp/gone", "alice", -1);
    create(&fx, "tmp/long", "alice", 3600);
    delete (&fx, "tmp/gone", "alice");
    assert_int_equal(parley_db_commit(fx.db), 0);

    assert_int_equal(parley_db_stream_get(fx.db, "tmp/short", &st), 0);
    int64_t short_id = st.id;
    tick(&fx, &wake);
    assert_int_equal(parley_db_stream_get(fx.db, "tmp/short", &st), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_stream_get(fx.db, "tmp/long", &st), 0);
    const char *want = "alice stream.created tmp/short; alice stream.created tmp/gone; "
                       "alice stream.created tmp/long; alice stream.deleted tmp/gone; "
                       "alice stream.deleted tmp/short";
    feed_brief(fx.db, "alice", feed, sizeof feed);
    assert_string_equal(feed, want);
    feed_brief(fx.db, NULL, all, sizeof all);
    assert_string_equal(all, want);
    /* The expired stream's readers and both feeds' readers wake. */
    bool found = false;
    for (int i = 0; i < wake.n; i++)
        found |= wake.ids[i] == short_id;
    assert_true(found);
    assert_true(wakes(&wake, fx.db, "_parley/feed/u/alice"));
    assert_true(wakes(&wake, fx.db, "_parley/feed/all"));

    /* Once: the next tick finds nothing more. */
    tick(&fx, &wake);
    assert_true(parley_wakeset_empty(&wake));
    feed_brief(fx.db, "alice", feed, sizeof feed);
    assert_string_equal(feed, want);
    fixture_close(&fx);
}

static void streamrules_expiry_unlinks_a_pattern_keeps_an_explicit_link(void **state)
{
    (void)state;
    fixture_t fx;
    parley_wakeset_t wake;
    parley_outcome_t o;
    parley_sub_link_t l;
    const char *explicit[] = {"tmp/kept"};
    parley_sub_spec_t spec = {"webhook", "tmp/*", "http://127.0.0.1:9/hook", "", "", 1000,
                              explicit,  1};
    parley_sub_view_t view = {"http://127.0.0.1:4437/v1/stream", "kid"};
    fixture_open(&fx);
    assert_int_equal(parley_db_begin(fx.db), 0);
    parley_outcome_init(&o);
    assert_int_equal(parley_subscription_put(fx.db, "s1", &spec, &view, parley_clock_now_ms(), &o),
                     0);
    assert_int_equal(outcome_status(&o), 201);
    parley_outcome_clear(&o);
    create(&fx, "tmp/deleted", "alice", -1);
    create(&fx, "tmp/expired", "alice", 1);
    create(&fx, "tmp/kept", "alice", 1);
    assert_int_equal(parley_db_sublink_get(fx.db, "s1", "tmp/expired", &l), 0);
    assert_int_equal(parley_db_sublink_get(fx.db, "s1", "tmp/kept", &l), 0);
    assert_true(l.by_explicit && l.by_glob);
    delete (&fx, "tmp/deleted", "alice");
    assert_int_equal(parley_db_sublink_get(fx.db, "s1", "tmp/deleted", &l), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_commit(fx.db), 0);

    tick(&fx, &wake);
    assert_int_equal(parley_db_sublink_get(fx.db, "s1", "tmp/expired", &l), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_sublink_get(fx.db, "s1", "tmp/kept", &l), 0);
    assert_true(l.by_explicit);
    assert_false(l.by_glob); /* the pattern links it again if it comes back */
    fixture_close(&fx);
}

static void streamrules_create_over_an_expired_stream_deletes_it_first(void **state)
{
    (void)state;
    fixture_t fx;
    char feed[1024];
    parley_outcome_t res;
    fixture_open(&fx);
    assert_int_equal(parley_db_begin(fx.db), 0);
    /* bob's stream expired long ago, and no tick has swept it yet. */
    parley_stream_req_t q = request("tmp/old", "bob", -1);
    q.expires_ms = 1;
    parley_outcome_init(&res);
    assert_int_equal(parley_streamrules_create(fx.db, &q, &res), 0);
    assert_int_equal(res.done, PARLEY_DONE_CREATED);
    /* alice creates at its path: bob's goes as expiry would delete it. */
    create(&fx, "tmp/old", "alice", -1);
    assert_int_equal(parley_db_commit(fx.db), 0);
    feed_brief(fx.db, "bob", feed, sizeof feed);
    assert_string_equal(feed, "bob stream.created tmp/old; bob stream.deleted tmp/old");
    feed_brief(fx.db, "alice", feed, sizeof feed);
    assert_string_equal(feed, "alice stream.created tmp/old");
    feed_brief(fx.db, NULL, feed, sizeof feed);
    assert_string_equal(feed, "bob stream.created tmp/old; bob stream.deleted tmp/old; "
                              "alice stream.created tmp/old");
    fixture_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(streamrules_expiry_emits_stream_deleted_like_a_delete),
        cmocka_unit_test(streamrules_expiry_unlinks_a_pattern_keeps_an_explicit_link),
        cmocka_unit_test(streamrules_create_over_an_expired_stream_deletes_it_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
