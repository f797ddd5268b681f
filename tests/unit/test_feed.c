/*
 * test_feed.c — unit tests for core/feed.c on a real SQLite store.
 *
 * An event is written to the user's feed and the feed of all; an event
 * that cannot be built because a value is not UTF-8 text is PARLEY_EINVAL
 * (the request's 400), never PARLEY_ENOMEM (which once read as a storage
 * failure and stopped the writer), and writes nothing.
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

#include <cmocka.h>

#include "core/feed.h"
#include "parley/parley.h"
#include "store/store.h"

typedef struct fixture {
    char dir[64];          /* the store's directory */
    parley_store_t *store; /* the store */
    parley_db_t *db;       /* its writer connection (borrowed) */
} fixture_t;

/* Open the SQLite store in dir (its default file, as `--data dir` does). */
static int open_store_in(const char *dir, parley_store_t **out)
{
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/parley.db", dir);
    return parley_store_open(url, out);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int feed_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/parley-test-feed-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(open_store_in(fx->dir, &fx->store), 0);
    fx->db = parley_store_writer(fx->store);
    assert_int_equal(parley_db_begin(fx->db), 0);
    *state = fx;
    return 0;
}

static int feed_teardown(void **state)
{
    fixture_t *fx = *state;
    parley_db_rollback(fx->db);
    parley_store_close(fx->store);
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void feed_emit_writes_both_feeds(void **state)
{
    fixture_t *fx = *state;
    parley_wakeset_t wake;
    parley_wakeset_init(&wake);
    json_t *fields = json_pack("{s:s}", "stream", "caf\xc3\xa9");
    assert_int_equal(parley_feed_emit(fx->db, "alice", "stream.created", fields, NULL, &wake), 0);
    json_decref(fields);
    assert_int_equal(wake.n, 2);
    assert_false(wake.all);
    assert_true(wake.ids[0] > 0 && wake.ids[1] > 0 && wake.ids[0] != wake.ids[1]);
}

static void feed_emit_invalid_text_is_einval(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *user; /* owner */
        const char *type; /* event type */
    } bad[] = {{"a\xc3(", "stream.created"}, {"alice", "x\xff"}, {"\xed\xa0\x80", "t"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parley_wakeset_t wake;
        parley_wakeset_init(&wake);
        int rc = parley_feed_emit(fx->db, bad[i].user, bad[i].type, NULL, NULL, &wake);
        if (rc != PARLEY_EINVAL)
            fail_msg("case %zu: %d (%s), expected PARLEY_EINVAL", i, rc, parley_strerror(rc));
        assert_true(parley_wakeset_empty(&wake));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(feed_emit_writes_both_feeds, feed_setup, feed_teardown),
        cmocka_unit_test_setup_teardown(feed_emit_invalid_text_is_einval, feed_setup,
                                        feed_teardown),
    };
    return cmocka_run_group_tests_name("feed", tests, NULL, NULL);
}
