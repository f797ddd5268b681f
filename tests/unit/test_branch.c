/*
 * test_branch.c — unit tests for core/branch.c (and the branch writes of
 * core/turn.c).
 *
 * Pure:
 *   1. holder: a position is held by the first branch up the parent chain
 *      whose fork point is at or below it; main for positions before 0;
 *      find and of_session name branches by id.
 * On a real SQLite store (a fresh temporary directory per case):
 *   2. an edit makes a branch whose parent is the holder of the position
 *      before the edited message, records it in the ledger, makes it
 *      active, and its log reads the shared history then its own message
 *      with seq gap-free; siblings list both members in order, the same
 *      from either branch; an edit of the edit adds a sibling at the same
 *      point (parent main, not the first branch);
 *   3. a chain of 80 nested edits (each branch forks the one before):
 *      every branch log stays within the fork-depth limit and reads the
 *      right messages (the logs past the limit are rebased on main);
 *   4. delete_all removes every branch log and the ledger;
 *   5. the limit: with PARLEY_BRANCH_MAX branches recorded, the next edit
 *      is refused (409 too_many_branches) and writes nothing.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/branch.h"
#include "core/conversation.h"
#include "core/message.h"
#include "core/stream.h"
#include "core/turn.h"
#include "status_of.h"
#include "parley/parley.h"
#include "store/store.h"
#include "store_fixture.h"

typedef store_fixture_t fixture_t;

static void create_conv(fixture_t *fx, char *id)
{
    parley_conv_req_t cr;
    parley_outcome_t o;
    store_fixture_id(fx, id);
    memset(&cr, 0, sizeof cr);
    cr.op = PARLEY_CONV_CREATE;
    cr.id = id;
    cr.user = "alice";
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_conversation_apply(fx->db, &cr, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_int_equal(outcome_status(&o), 201);
    parley_outcome_clear(&o);
}

/* Post a user message with content text to the active branch; its id. */
static void post(fixture_t *fx, const char *conv, const char *role, const char *text, char *mid)
{
    parley_turn_post_req_t req;
    parley_outcome_t o;
    char sess[PARLEY_ID_LEN + 1];
    json_t *body = json_pack("{s:s, s:s}", "role", role, "content", text);
    store_fixture_id(fx, mid);
    store_fixture_id(fx, sess);
    memset(&req, 0, sizeof req);
    assert_int_equal(parley_message_parse(body, 3, &req.message, &o), 0);
    req.conversation_id = conv;
    req.user = "alice";
    req.message_id = mid;
    req.session_id = sess;
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_turn_post(fx->db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_int_equal(outcome_status(&o), 201);
    parley_outcome_clear(&o);
    json_decref(body);
}

/* Edit message target (on the active branch) to text; the new message's
 * id into mid, the new branch's into bid. */
static void edit_on(fixture_t *fx, const char *conv, const char *branch, const char *target,
                    const char *text, char *mid, char *bid)
{
    parley_turn_branch_req_t req;
    parley_outcome_t o;
    char sess[PARLEY_ID_LEN + 1];
    json_t *body = json_pack("{s:s, s:s}", "role", "user", "content", text);
    store_fixture_id(fx, mid);
    store_fixture_id(fx, bid);
    store_fixture_id(fx, sess);
    memset(&req, 0, sizeof req);
    assert_int_equal(parley_message_parse(body, 3, &req.message, &o), 0);
    req.op = PARLEY_TURN_EDIT;
    req.conversation_id = conv;
    req.user = "alice";
    req.branch = branch;
    req.message_id = target;
    req.new_branch = bid;
    req.new_message = mid;
    req.session_id = sess;
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_turn_branch(fx->db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_int_equal(outcome_status(&o), 201);
    assert_string_equal(json_string_value(json_object_get(o.body, "branch")), bid);
    parley_outcome_clear(&o);
    json_decref(body);
}

/* The same on the active branch. */
static void edit(fixture_t *fx, const char *conv, const char *target, const char *text, char *mid,
                 char *bid)
{
    edit_on(fx, conv, NULL, target, text, mid, bid);
}

/* The messages of branch i as a JSON array (new reference). */
static json_t *read_all(fixture_t *fx, parley_branch_set_t *set, int i)
{
    parley_stream_t log;
    parley_buf_t buf;
    int count;
    uint64_t last;
    bool more;
    json_error_t jerr;
    assert_int_equal(parley_branch_log(fx->db, set, i, &log), 0);
    parley_buf_init(&buf, 1u << 24);
    assert_int_equal(parley_buf_putc(&buf, '['), 0);
    assert_int_equal(parley_branch_read_page(fx->db, set, i, &log, 0, 1000, 1u << 24, &buf, &count,
                                             &last, &more),
                     0);
    assert_false(more);
    assert_int_equal(parley_buf_putc(&buf, ']'), 0);
    json_t *a = json_loadb(buf.data, buf.len, 0, &jerr);
    assert_non_null(a);
    parley_buf_free(&buf);
    for (size_t k = 0; k < json_array_size(a); k++) /* seq gap-free along the branch */
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, k), "seq")), k + 1);
    return a;
}

static const char *content_at(json_t *a, size_t k)
{
    return json_string_value(json_object_get(json_array_get(a, k), "content"));
}

/* ---- 1. pure -------------------------------------------------------------------- */

static void branch_holder_walks_parents(void **state)
{
    (void)state;
    parley_branch_t v[4] = {
        {.id = "main", .parent = -1, .at = 0},
        {.id = "b1", .parent = 0, .at = 2},
        {.id = "b2", .parent = 1, .at = 5, .session_id = "s2"},
        {.id = "b3", .parent = 0, .at = 0},
    };
    parley_branch_link_t links[1] = {{.session_id = "s1", .branch = 1}};
    parley_branch_set_t set = {.v = v, .n = 4, .links = links, .nlinks = 1};
    assert_int_equal(parley_branch_holder(&set, 2, 7), 2);
    assert_int_equal(parley_branch_holder(&set, 2, 5), 2);
    assert_int_equal(parley_branch_holder(&set, 2, 4), 1);
    assert_int_equal(parley_branch_holder(&set, 2, 2), 1);
    assert_int_equal(parley_branch_holder(&set, 2, 1), 0);
    assert_int_equal(parley_branch_holder(&set, 2, -1), 0);
    assert_int_equal(parley_branch_holder(&set, 3, 0), 3);
    assert_int_equal(parley_branch_holder(&set, 3, -1), 0);
    assert_int_equal(parley_branch_holder(&set, 0, 9), 0);
    assert_int_equal(parley_branch_find(&set, "b2"), 2);
    assert_int_equal(parley_branch_find(&set, "main"), 0);
    assert_int_equal(parley_branch_find(&set, "nope"), -1);
    assert_int_equal(parley_branch_of_session(&set, "s1"), 1);
    assert_int_equal(parley_branch_of_session(&set, "s2"), 2);
    assert_int_equal(parley_branch_of_session(&set, "other"), 0);
}

/* ---- 2. an edit ----------------------------------------------------------------- */

static void branch_edit_shares_history_and_lists_siblings(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ID_LEN + 1], m[4][PARLEY_ID_LEN + 1], e1[PARLEY_ID_LEN + 1],
        b1[PARLEY_ID_LEN + 1], e2[PARLEY_ID_LEN + 1], b2[PARLEY_ID_LEN + 1];
    parley_branch_set_t set;
    store_fixture_open(&fx, "branch");
    create_conv(&fx, conv);
    assert_int_equal(parley_branch_load(fx.db, conv, &set), 0);
    assert_false(set.has_ledger);
    assert_int_equal(set.n, 1);
    parley_branch_set_clear(&set);
    post(&fx, conv, "user", "u1", m[0]);
    post(&fx, conv, "assistant", "a1", m[1]);
    post(&fx, conv, "user", "u2", m[2]);
    post(&fx, conv, "assistant", "a2", m[3]);
    edit(&fx, conv, m[2], "u2'", e1, b1);

    assert_int_equal(parley_branch_load(fx.db, conv, &set), 0);
    assert_true(set.has_ledger);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.active, 1);
    assert_string_equal(set.v[1].id, b1);
    assert_int_equal(set.v[1].parent, 0);
    assert_int_equal(set.v[1].at, 2);
    json_t *a = read_all(&fx, &set, 1);
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(content_at(a, 0), "u1");
    assert_string_equal(content_at(a, 2), "u2'");
    json_t *sib = json_object_get(json_array_get(a, 2), "siblings");
    assert_int_equal(json_integer_value(json_object_get(sib, "index")), 2);
    assert_int_equal(json_integer_value(json_object_get(sib, "count")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(sib, "ids"), 0)), m[2]);
    assert_null(json_object_get(json_array_get(a, 1), "siblings"));
    json_decref(a);
    a = read_all(&fx, &set, 0);
    assert_int_equal(json_array_size(a), 4);
    sib = json_object_get(json_array_get(a, 2), "siblings");
    assert_int_equal(json_integer_value(json_object_get(sib, "index")), 1);
    json_decref(a);
    parley_branch_set_clear(&set);

    /* The edit of the edit: a third sibling, its parent main. */
    edit(&fx, conv, e1, "u2''", e2, b2);
    assert_int_equal(parley_branch_load(fx.db, conv, &set), 0);
    assert_int_equal(set.n, 3);
    assert_int_equal(set.active, 2);
    assert_int_equal(set.v[2].parent, 0);
    assert_int_equal(set.v[2].at, 2);
    json_t *s = NULL;
    assert_int_equal(parley_branch_siblings(fx.db, &set, 1, 2, &s), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "count")), 3);
    assert_int_equal(json_integer_value(json_object_get(s, "index")), 2);
    json_decref(s);
    parley_branch_set_clear(&set);
    store_fixture_close(&fx);
}

/* ---- 3. deep chains ------------------------------------------------------------- */

/* How many forks deep the stream at path is. */
static int depth_of(fixture_t *fx, const char *path)
{
    parley_stream_t st;
    int d = 0;
    assert_int_equal(parley_db_stream_get(fx->db, path, &st), 0);
    while (st.fork_src) {
        d++;
        assert_int_equal(parley_db_stream_get_id(fx->db, st.fork_src, &st), 0);
    }
    return d;
}

static void branch_deep_chain_stays_within_fork_depth(void **state)
{
    (void)state;
    enum { ROUNDS = 80 };
    fixture_t fx;
    char conv[PARLEY_ID_LEN + 1], user[PARLEY_ID_LEN + 1], mid[PARLEY_ID_LEN + 1],
        bid[PARLEY_ID_LEN + 1], text[32];
    parley_branch_set_t set;
    store_fixture_open(&fx, "branch");
    create_conv(&fx, conv);
    post(&fx, conv, "user", "0", user);
    for (int i = 1; i <= ROUNDS; i++) {
        snprintf(text, sizeof text, "edit %d", i);
        edit(&fx, conv, user, text, mid, bid);
        post(&fx, conv, "user", "next", user);
    }
    assert_int_equal(parley_branch_load(fx.db, conv, &set), 0);
    assert_int_equal(set.n, ROUNDS + 1);
    int deepest = 0;
    for (int i = 1; i < set.n; i++) {
        char path[PARLEY_PATH_MAX + 1];
        parley_branch_stream_path(&set, i, path, sizeof path);
        int d = depth_of(&fx, path);
        assert_true(d <= PARLEY_STREAM_FORK_DEPTH_MAX);
        deepest = d > deepest ? d : deepest;
        assert_int_equal(set.v[i].parent, i - 1); /* each forks the one before */
    }
    assert_int_equal(deepest, PARLEY_STREAM_FORK_DEPTH_MAX);
    json_t *a = read_all(&fx, &set, set.active);
    assert_int_equal(json_array_size(a), ROUNDS + 1); /* each edit replaced the last "next" */
    for (int i = 1; i <= ROUNDS; i++) {
        snprintf(text, sizeof text, "edit %d", i);
        assert_string_equal(content_at(a, (size_t)i - 1), text);
    }
    assert_string_equal(content_at(a, ROUNDS), "next");
    json_decref(a);

    /* ---- 4. delete_all ---- */
    parley_outcome_t o;
    parley_outcome_init(&o);
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(parley_branch_delete_all(fx.db, &set, &o), 0);
    assert_int_equal(parley_db_commit(fx.db), 0);
    parley_outcome_clear(&o);
    for (int i = 1; i < set.n; i++) {
        char path[PARLEY_PATH_MAX + 1];
        parley_stream_t st;
        parley_branch_stream_path(&set, i, path, sizeof path);
        assert_int_equal(parley_db_stream_get(fx.db, path, &st), PARLEY_ENOTFOUND);
    }
    char ledger[PARLEY_PATH_MAX + 1];
    parley_stream_t st;
    parley_branch_ledger_path(conv, ledger, sizeof ledger);
    assert_int_equal(parley_db_stream_get(fx.db, ledger, &st), PARLEY_ENOTFOUND);
    parley_branch_set_clear(&set);
    store_fixture_close(&fx);
}

/* ---- 5. the limit --------------------------------------------------------------- */

static void branch_limit_refuses_the_next(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ID_LEN + 1], u[PARLEY_ID_LEN + 1], mid[PARLEY_ID_LEN + 1],
        bid[PARLEY_ID_LEN + 1], sess[PARLEY_ID_LEN + 1];
    parley_branch_set_t set;
    store_fixture_open(&fx, "branch");
    create_conv(&fx, conv);
    post(&fx, conv, "user", "q", u);
    /* Two real edits, then records up to the limit written straight into
     * the ledger (the check reads only the records). */
    edit_on(&fx, conv, "main", u, "again", mid, bid);
    edit_on(&fx, conv, "main", u, "again", mid, bid);
    char ledger[PARLEY_PATH_MAX + 1], rec[160];
    int64_t sid;
    parley_branch_ledger_path(conv, ledger, sizeof ledger);
    assert_int_equal(parley_db_begin(fx.db), 0);
    for (int i = 2; i < PARLEY_BRANCH_MAX; i++) {
        int n = snprintf(rec, sizeof rec,
                         "{\"at\":0,\"created_ms\":1,\"id\":\"fill%05d\",\"parent\":\"main\","
                         "\"session_id\":null,\"t\":\"branch\"}",
                         i);
        assert_int_equal(
            parley_stream_append_internal(fx.db, ledger, "alice", rec, (size_t)n, &sid), 0);
    }
    assert_int_equal(parley_db_commit(fx.db), 0);
    parley_turn_branch_req_t req;
    parley_outcome_t o;
    json_t *body = json_pack("{s:s, s:s}", "role", "user", "content", "one more");
    memset(&req, 0, sizeof req);
    assert_int_equal(parley_message_parse(body, 3, &req.message, &o), 0);
    store_fixture_id(&fx, mid);
    store_fixture_id(&fx, bid);
    store_fixture_id(&fx, sess);
    req.op = PARLEY_TURN_EDIT;
    req.conversation_id = conv;
    req.user = "alice";
    req.branch = "main";
    req.message_id = u;
    req.new_branch = bid;
    req.new_message = mid;
    req.session_id = sess;
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(parley_turn_branch(fx.db, &req, &o), 0);
    assert_int_equal(o.refusal, PARLEY_ECONFLICT);
    assert_string_equal(o.code, "too_many_branches");
    assert_int_equal(parley_db_rollback(fx.db), 0);
    parley_outcome_clear(&o);
    json_decref(body);
    assert_int_equal(parley_branch_load(fx.db, conv, &set), 0);
    assert_int_equal(set.n, PARLEY_BRANCH_MAX + 1);
    assert_int_equal(parley_branch_find(&set, bid), -1);
    parley_branch_set_clear(&set);
    store_fixture_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(branch_holder_walks_parents),
        cmocka_unit_test(branch_edit_shares_history_and_lists_siblings),
        cmocka_unit_test(branch_deep_chain_stays_within_fork_depth),
        cmocka_unit_test(branch_limit_refuses_the_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
