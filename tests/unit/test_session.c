/*
 * test_session.c — unit tests for core/session.c.
 *
 * The state machine is checked twice against one expected table, written
 * out here independently of session.c, covering every (state, action)
 * pair:
 *   1. the pure table, parley_session_next();
 *   2. the real transitions on a real SQLite store: for every pair a fresh
 *      store, a conversation and a session driven into the state through
 *      the public functions, then the action — the stored status after it
 *      must be the expected one, an allowed action answers 200 (claim) or
 *      200 (the others), a refused one 409 with the current session (claim
 *      204: there is nothing pending to claim), and a refused action
 *      changes nothing.
 * Also: names parse and print both ways, unknown names and out-of-range
 * values are refused, the last attempt's lease expiry fails the session;
 * parley_session_parse (the connection thread's body checks: 403 before
 * 400, every 400 with its message); completion through core/turn.c (the
 * reply is the conversation's next message, the session completed with its
 * stream closed, and a refused completion writes nothing).
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
#include <unistd.h>

#include <cmocka.h>

#include "core/conversation.h"
#include "core/message.h"
#include "core/session.h"
#include "core/stream.h"
#include "core/turn.h"
#include "status_of.h"
#include "parley/parley.h"
#include "store/store.h"

#define P  PARLEY_SESSION_PENDING
#define R  PARLEY_SESSION_PROCESSING
#define W  PARLEY_SESSION_AWAITING_INPUT
#define C  PARLEY_SESSION_COMPLETED
#define F  PARLEY_SESSION_FAILED
#define X  PARLEY_SESSION_CANCELLED
#define NO (-1)

/* The contract (DESIGN.md §2.3), one row per state, one column per action:
 * claim heartbeat append await input complete fail cancel expire. */
/* clang-format off */
static const int expected[PARLEY_SESSION_NSTATES][PARLEY_SESSION_NACTIONS] = {
    /*      claim  heartbeat  append  await  input  complete  fail  cancel  expire */
    [P] = {R,     NO,        NO,     NO,    NO,    NO,       F,    X,      NO},
    [R] = {NO,    R,         R,      W,     NO,    C,        F,    X,      P},
    [W] = {NO,    NO,        NO,     NO,    R,     NO,       F,    X,      NO},
    [C] = {NO,    NO,        NO,     NO,    NO,    NO,       NO,   NO,     NO},
    [F] = {NO,    NO,        NO,     NO,    NO,    NO,       NO,   NO,     NO},
    [X] = {NO,    NO,        NO,     NO,    NO,    NO,       NO,   NO,     NO},
};
/* clang-format on */

/* Open the SQLite store in dir (its default file, as `--data dir` does). */
static int open_store_in(const char *dir, parley_store_t **out)
{
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/parley.db", dir);
    return parley_store_open(url, out);
}

static void session_next_table_every_pair(void **state)
{
    (void)state;
    int pairs = 0;
    for (int s = 0; s < PARLEY_SESSION_NSTATES; s++) {
        for (int a = 0; a < PARLEY_SESSION_NACTIONS; a++) {
            parley_session_state_t to = (parley_session_state_t)99;
            int rc =
                parley_session_next((parley_session_state_t)s, (parley_session_action_t)a, &to);
            int want = expected[s][a];
            if (want == NO && rc != PARLEY_ECONFLICT)
                fail_msg("%s + %s: rc %d, want refusal", parley_session_state_name(s),
                         parley_session_action_name(a), rc);
            if (want == NO && to != (parley_session_state_t)99)
                fail_msg("%s + %s: refused but wrote a next state", parley_session_state_name(s),
                         parley_session_action_name(a));
            if (want != NO && (rc != 0 || (int)to != want))
                fail_msg("%s + %s: rc %d to %s, want %s", parley_session_state_name(s),
                         parley_session_action_name(a), rc, parley_session_state_name(to),
                         parley_session_state_name(want));
            pairs++;
        }
    }
    assert_int_equal(pairs, 6 * 9);
}

static void session_next_rejected_out_of_range(void **state)
{
    (void)state;
    parley_session_state_t to;
    assert_int_equal(parley_session_next(PARLEY_SESSION_NSTATES, PARLEY_SESSION_CLAIM, &to),
                     PARLEY_EINVAL);
    assert_int_equal(parley_session_next(PARLEY_SESSION_PENDING, PARLEY_SESSION_NACTIONS, &to),
                     PARLEY_EINVAL);
}

static void session_names_round_trip(void **state)
{
    (void)state;
    static const char *const states[] = {"pending",   "processing", "awaiting_input",
                                         "completed", "failed",     "cancelled"};
    for (int i = 0; i < PARLEY_SESSION_NSTATES; i++) {
        parley_session_state_t s;
        assert_string_equal(parley_session_state_name((parley_session_state_t)i), states[i]);
        assert_int_equal(parley_session_state_parse(states[i], &s), 0);
        assert_int_equal(s, i);
    }
    for (int i = 0; i < PARLEY_SESSION_NACTIONS; i++) {
        parley_session_action_t a;
        const char *name = parley_session_action_name((parley_session_action_t)i);
        assert_int_equal(parley_session_action_parse(name, &a), 0);
        assert_int_equal(a, i);
    }
    static const char *const bad[] = {"", "Pending", "pending ", "awaiting", "done", NULL};
    for (int i = 0; bad[i]; i++) {
        parley_session_state_t s;
        parley_session_action_t a;
        assert_int_equal(parley_session_state_parse(bad[i], &s), PARLEY_EINVAL);
        assert_int_equal(parley_session_action_parse(bad[i], &a), PARLEY_EINVAL);
    }
    parley_session_state_t s;
    assert_int_equal(parley_session_state_parse(NULL, &s), PARLEY_EINVAL);
}

/* ---- the real transitions on a store ----------------------------------------- */

typedef struct fixture {
    char dir[64];                     /* temporary data directory */
    parley_store_t *store;            /* the store */
    parley_db_t *db;                  /* its writer connection */
    char conv[PARLEY_ROW_ID_MAX + 1]; /* the conversation */
    char sess[PARLEY_ROW_ID_MAX + 1]; /* the session */
    int ids;                          /* ids handed out */
} fixture_t;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void next_id(fixture_t *fx, char *out)
{
    snprintf(out, PARLEY_ROW_ID_MAX + 1, "id%04d", ++fx->ids);
}

/* Run one session action in a transaction; returns the outcome's status. */
static int act(fixture_t *fx, parley_session_action_t a, const char *body_json)
{
    parley_session_req_t req;
    parley_outcome_t o;
    char reply[PARLEY_ROW_ID_MAX + 1];
    json_error_t jerr;
    json_t *body = body_json ? json_loads(body_json, 0, &jerr) : NULL;
    next_id(fx, reply);
    memset(&req, 0, sizeof req);
    req.action = a;
    req.id = fx->sess;
    req.user = "admin";
    req.admin = true;
    req.body = body;
    req.reply_id = reply;
    assert_int_equal(parley_session_parse(&req, &o), 0);
    assert_int_equal(parley_db_begin(fx->db), 0);
    if (a == PARLEY_SESSION_COMPLETE)
        assert_int_equal(parley_turn_complete(fx->db, &req, &o), 0);
    else
        assert_int_equal(parley_session_apply(fx->db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    if (outcome_status(&o) == 409) {
        /* The current session comes with every refusal. */
        assert_non_null(o.body);
        assert_string_equal(json_string_value(json_object_get(o.body, "id")), fx->sess);
    }
    int status = outcome_status(&o);
    parley_outcome_clear(&o);
    json_decref(body);
    return status;
}

static void status_of(fixture_t *fx, char *out)
{
    parley_sess_t s;
    assert_int_equal(parley_db_sess_get(fx->db, fx->sess, &s), 0);
    snprintf(out, PARLEY_STATUS_MAX + 1, "%s", s.status);
    parley_sess_clear(&s);
}

static void fixture_open(fixture_t *fx)
{
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/parley-test-session-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(open_store_in(fx->dir, &fx->store), 0);
    fx->db = parley_store_writer(fx->store);

    /* A conversation with one message and its pending session. */
    parley_conv_req_t cr;
    parley_outcome_t o;
    next_id(fx, fx->conv);
    memset(&cr, 0, sizeof cr);
    cr.op = PARLEY_CONV_CREATE;
    cr.id = fx->conv;
    cr.user = "alice";
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_conversation_apply(fx->db, &cr, &o), 0);
    assert_int_equal(outcome_status(&o), 201);
    parley_outcome_clear(&o);

    parley_turn_post_req_t mr;
    char mid[PARLEY_ROW_ID_MAX + 1];
    json_error_t jerr;
    json_t *body = json_loads("{\"role\":\"user\",\"content\":\"hi\",\"process\":true}", 0, &jerr);
    next_id(fx, mid);
    next_id(fx, fx->sess);
    memset(&mr, 0, sizeof mr);
    assert_int_equal(parley_message_parse(body, 3, &mr.message, &o), 0);
    mr.conversation_id = fx->conv;
    mr.user = "alice";
    mr.message_id = mid;
    mr.session_id = fx->sess;
    assert_int_equal(parley_turn_post(fx->db, &mr, &o), 0);
    assert_int_equal(outcome_status(&o), 201);
    parley_outcome_clear(&o);
    json_decref(body);
    assert_int_equal(parley_db_commit(fx->db), 0);
}

static void fixture_close(fixture_t *fx)
{
    parley_store_close(fx->store);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Drive the fixture's session from pending into state s. */
static void drive_to(fixture_t *fx, parley_session_state_t s)
{
    char claim[160];
    snprintf(claim, sizeof claim, "{\"conversation_id\":\"%s\"}", fx->conv);
    switch (s) {
    case PARLEY_SESSION_PENDING:
        return;
    case PARLEY_SESSION_FAILED:
        assert_int_equal(act(fx, PARLEY_SESSION_FAIL, NULL), 200);
        return;
    case PARLEY_SESSION_CANCELLED:
        assert_int_equal(act(fx, PARLEY_SESSION_CANCEL, NULL), 200);
        return;
    default:
        break;
    }
    assert_int_equal(act(fx, PARLEY_SESSION_CLAIM, claim), 200);
    if (s == PARLEY_SESSION_AWAITING_INPUT)
        assert_int_equal(act(fx, PARLEY_SESSION_AWAIT, "{\"request\":{\"tool\":\"x\"}}"), 200);
    if (s == PARLEY_SESSION_COMPLETED)
        assert_int_equal(act(fx, PARLEY_SESSION_COMPLETE, "{\"content\":\"done\"}"), 200);
}

/* Try action a on the fixture's session; returns whether it was allowed. */
static bool try_action(fixture_t *fx, parley_session_action_t a)
{
    char claim[160];
    snprintf(claim, sizeof claim, "{\"conversation_id\":\"%s\"}", fx->conv);
    switch (a) {
    case PARLEY_SESSION_CLAIM: {
        int st = act(fx, a, claim);
        assert_true(st == 200 || st == 204);
        return st == 200;
    }
    case PARLEY_SESSION_APPEND: {
        parley_outcome_t o;
        char path[PARLEY_PATH_MAX + 1] = "";
        assert_int_equal(
            parley_session_check_append(fx->db, fx->sess, "admin", true, -1, path, sizeof path, &o),
            0);
        bool ok = o.refusal == 0;
        if (!ok)
            assert_int_equal(outcome_status(&o), 409);
        else
            assert_true(strncmp(path, PARLEY_SESSION_PATH_PREFIX, 16) == 0);
        parley_outcome_clear(&o);
        return ok;
    }
    case PARLEY_SESSION_EXPIRE: {
        parley_wakeset_t wake;
        parley_wakeset_init(&wake);
        char before[PARLEY_STATUS_MAX + 1], after[PARLEY_STATUS_MAX + 1];
        status_of(fx, before);
        assert_int_equal(parley_db_begin(fx->db), 0);
        assert_int_equal(parley_session_expire_leases(fx->db, INT64_MAX / 4, &wake), 0);
        assert_int_equal(parley_db_commit(fx->db), 0);
        status_of(fx, after);
        return strcmp(before, after) != 0;
    }
    default: {
        const char *body = a == PARLEY_SESSION_AWAIT      ? "{\"request\":1}"
                           : a == PARLEY_SESSION_INPUT    ? "{\"data\":\"yes\"}"
                           : a == PARLEY_SESSION_COMPLETE ? "{\"content\":\"ok\"}"
                                                          : NULL;
        int st = act(fx, a, body);
        assert_true(st == 200 || st == 409);
        return st == 200;
    }
    }
}

static void session_apply_every_pair_on_a_store(void **state)
{
    (void)state;
    for (int s = 0; s < PARLEY_SESSION_NSTATES; s++) {
        for (int a = 0; a < PARLEY_SESSION_NACTIONS; a++) {
            fixture_t fx;
            char before[PARLEY_STATUS_MAX + 1], after[PARLEY_STATUS_MAX + 1];
            fixture_open(&fx);
            drive_to(&fx, (parley_session_state_t)s);
            status_of(&fx, before);
            assert_string_equal(before, parley_session_state_name(s));
            bool allowed = try_action(&fx, (parley_session_action_t)a);
            status_of(&fx, after);
            int want = expected[s][a];
            if ((want != NO) != allowed)
                fail_msg("%s + %s: %s, want %s", before, parley_session_action_name(a),
                         allowed ? "allowed" : "refused", want != NO ? "allowed" : "refused");
            const char *want_status = want == NO ? before : parley_session_state_name(want);
            if (strcmp(after, want_status) != 0)
                fail_msg("%s + %s: status %s, want %s", before, parley_session_action_name(a),
                         after, want_status);
            fixture_close(&fx);
        }
    }
}

static void session_expire_last_attempt_fails(void **state)
{
    (void)state;
    fixture_t fx;
    char claim[160], st[PARLEY_STATUS_MAX + 1];
    parley_wakeset_t wake;
    fixture_open(&fx);
    snprintf(claim, sizeof claim, "{\"conversation_id\":\"%s\"}", fx.conv);
    for (int attempt = 1; attempt <= 3; attempt++) {
        assert_int_equal(act(&fx, PARLEY_SESSION_CLAIM, claim), 200);
        parley_wakeset_init(&wake);
        assert_int_equal(parley_db_begin(fx.db), 0);
        assert_int_equal(parley_session_expire_leases(fx.db, INT64_MAX / 4, &wake), 0);
        assert_int_equal(parley_db_commit(fx.db), 0);
        status_of(&fx, st);
        assert_string_equal(st, attempt < 3 ? "pending" : "failed");
    }
    parley_sess_t s;
    assert_int_equal(parley_db_sess_get(fx.db, fx.sess, &s), 0);
    assert_int_equal(s.attempt, 3);
    assert_non_null(s.error);
    assert_non_null(strstr(s.error, "lease_expired"));
    parley_sess_clear(&s);
    /* Failed for good: nothing is left to claim. */
    assert_int_equal(act(&fx, PARLEY_SESSION_CLAIM, claim), 204);
    fixture_close(&fx);
}

static void session_apply_worker_action_forbidden_for_users(void **state)
{
    (void)state;
    fixture_t fx;
    fixture_open(&fx);
    static const parley_session_action_t worker[] = {PARLEY_SESSION_CLAIM, PARLEY_SESSION_HEARTBEAT,
                                                     PARLEY_SESSION_AWAIT, PARLEY_SESSION_COMPLETE,
                                                     PARLEY_SESSION_FAIL};
    json_error_t jerr;
    json_t *bad = json_loads("{\"nope\":1}", 0, &jerr);
    for (size_t i = 0; i < sizeof worker / sizeof worker[0]; i++) {
        parley_session_req_t req;
        parley_outcome_t o;
        memset(&req, 0, sizeof req);
        req.action = worker[i];
        req.id = fx.sess;
        req.user = "alice";
        req.reply_id = "r1";
        /* On the connection's thread: 403 comes before the body's 400. */
        req.body = bad;
        assert_int_equal(parley_session_parse(&req, &o), PARLEY_EINVAL);
        assert_int_equal(outcome_status(&o), 403);
        assert_string_equal(o.code, "forbidden");
        parley_outcome_clear(&o);
        /* And on the writer, for a request that got there parsed anyway. */
        req.body = NULL;
        req.args.parsed = true;
        req.args.attempt = -1;
        if (worker[i] == PARLEY_SESSION_COMPLETE)
            assert_int_equal(parley_turn_complete(fx.db, &req, &o), 0);
        else
            assert_int_equal(parley_session_apply(fx.db, &req, &o), 0);
        assert_int_equal(outcome_status(&o), 403);
        parley_outcome_clear(&o);
    }
    json_decref(bad);
    /* The owner may cancel; another user cannot see the session at all. */
    parley_session_req_t req;
    parley_outcome_t o;
    memset(&req, 0, sizeof req);
    req.action = PARLEY_SESSION_CANCEL;
    req.id = fx.sess;
    req.user = "mallory";
    assert_int_equal(parley_session_parse(&req, &o), 0);
    assert_int_equal(parley_session_apply(fx.db, &req, &o), 0);
    assert_int_equal(outcome_status(&o), 404);
    parley_outcome_clear(&o);
    req.user = "alice";
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(parley_session_apply(fx.db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx.db), 0);
    assert_int_equal(outcome_status(&o), 200);
    parley_outcome_clear(&o);
    fixture_close(&fx);
}

/* Bodies refused by parley_session_parse, on the connection's thread, with
 * the code and message the writer gave before (the black-box suite sees
 * the same bytes). */
static void session_parse_bad_body_refused(void **state)
{
    (void)state;
    static const struct {
        parley_session_action_t action; /* the action */
        const char *body;               /* its body (JSON text) */
        const char *message;            /* the refusal's message */
        const char *field;              /* details.field, or NULL */
    } cases[] = {
        {PARLEY_SESSION_HEARTBEAT, "[1]", "the body must be a JSON object", NULL},
        {PARLEY_SESSION_HEARTBEAT, "{\"lease\":5}",
         "unknown field for this action (see details.field)", "lease"},
        {PARLEY_SESSION_INPUT, "{\"attempt\":1,\"data\":1}",
         "unknown field for this action (see details.field)", "attempt"},
        {PARLEY_SESSION_CLAIM, "{\"lease_seconds\":0}",
         "lease_seconds must be a whole number from 1 to 3600", NULL},
        {PARLEY_SESSION_CLAIM, "{\"lease_seconds\":3601}",
         "lease_seconds must be a whole number from 1 to 3600", NULL},
        {PARLEY_SESSION_HEARTBEAT, "{\"lease_seconds\":\"60\"}",
         "lease_seconds must be a whole number from 1 to 3600", NULL},
        {PARLEY_SESSION_FAIL, "{\"attempt\":0}",
         "attempt must be the session's attempt number (from 1)", NULL},
        {PARLEY_SESSION_CLAIM, "{\"conversation_id\":7}", "conversation_id must be a string", NULL},
        {PARLEY_SESSION_AWAIT, "{}", "await needs \"request\": what the worker asks the user",
         NULL},
        {PARLEY_SESSION_INPUT, "{}", "input needs \"data\": the user's answer", NULL},
        {PARLEY_SESSION_COMPLETE, "{\"metadata\":{}}",
         "complete needs \"content\": the assistant's reply", NULL},
        {PARLEY_SESSION_COMPLETE, "{\"content\":\"x\",\"metadata\":[]}",
         "metadata must be a JSON object", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_session_req_t req;
        parley_outcome_t o;
        json_error_t jerr;
        json_t *body = json_loads(cases[i].body, JSON_DECODE_ANY, &jerr);
        assert_non_null(body);
        memset(&req, 0, sizeof req);
        req.action = cases[i].action;
        req.id = "s1";
        req.user = "admin";
        req.admin = true;
        req.body = body;
        if (parley_session_parse(&req, &o) != PARLEY_EINVAL || outcome_status(&o) != 400)
            fail_msg("case %zu (%s %s): not refused with 400", i,
                     parley_session_action_name(cases[i].action), cases[i].body);
        assert_string_equal(o.code, "invalid_request");
        assert_string_equal(o.error, cases[i].message);
        assert_false(req.args.parsed);
        if (cases[i].field)
            assert_string_equal(json_string_value(json_object_get(o.body, "field")),
                                cases[i].field);
        parley_outcome_clear(&o);
        json_decref(body);
    }
}

/* A parsed body carries its values to the writer. */
static void session_parse_fills_args(void **state)
{
    (void)state;
    parley_session_req_t req;
    parley_outcome_t o;
    json_error_t jerr;
    json_t *body = json_loads("{\"conversation_id\":\"c1\",\"lease_seconds\":30}", 0, &jerr);
    memset(&req, 0, sizeof req);
    req.action = PARLEY_SESSION_CLAIM;
    req.admin = true;
    req.body = body;
    assert_int_equal(parley_session_parse(&req, &o), 0);
    assert_int_equal(o.refusal, 0);
    assert_true(req.args.parsed);
    assert_int_equal(req.args.lease_ms, 30000);
    assert_int_equal(req.args.attempt, -1);
    assert_string_equal(req.args.conversation_id, "c1");
    json_decref(body);
    body = json_loads("{\"content\":[1],\"metadata\":null,\"attempt\":2}", 0, &jerr);
    memset(&req, 0, sizeof req);
    req.action = PARLEY_SESSION_COMPLETE;
    req.admin = true;
    req.body = body;
    assert_int_equal(parley_session_parse(&req, &o), 0);
    assert_int_equal(req.args.attempt, 2);
    assert_ptr_equal(req.args.content, json_object_get(body, "content"));
    assert_null(req.args.metadata); /* null metadata is {} */
    json_decref(body);
    /* No body at all: cancel takes none. */
    memset(&req, 0, sizeof req);
    req.action = PARLEY_SESSION_CANCEL;
    assert_int_equal(parley_session_parse(&req, &o), 0);
    assert_true(req.args.parsed);
}

/* session.c runs no completion (it would write the conversation) and no
 * request that skipped the parse. */
static void session_apply_refuses_complete_and_unparsed(void **state)
{
    (void)state;
    fixture_t fx;
    parley_session_req_t req;
    parley_outcome_t o;
    fixture_open(&fx);
    memset(&req, 0, sizeof req);
    req.action = PARLEY_SESSION_COMPLETE;
    req.id = fx.sess;
    req.user = "admin";
    req.admin = true;
    req.args.parsed = true;
    assert_int_equal(parley_session_apply(fx.db, &req, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
    req.action = PARLEY_SESSION_CANCEL;
    req.args.parsed = false;
    assert_int_equal(parley_session_apply(fx.db, &req, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
    req.action = PARLEY_SESSION_HEARTBEAT; /* not complete: the turn refuses it */
    req.args.parsed = true;
    assert_int_equal(parley_turn_complete(fx.db, &req, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
    fixture_close(&fx);
}

/* The fixture conversation's row and log. */
static void conv_state(fixture_t *fx, int64_t *count, uint64_t *tail)
{
    parley_conv_t c;
    parley_stream_t log;
    char path[PARLEY_PATH_MAX + 1];
    assert_int_equal(parley_db_conv_get(fx->db, fx->conv, &c), 0);
    *count = c.message_count;
    parley_conv_clear(&c);
    parley_conversation_stream_path(fx->conv, path, sizeof path);
    assert_int_equal(parley_db_stream_get(fx->db, path, &log), 0);
    *tail = log.tail;
}

static bool session_stream_closed(fixture_t *fx)
{
    parley_stream_t st;
    char path[PARLEY_PATH_MAX + 1];
    parley_session_stream_path(fx->sess, path, sizeof path);
    assert_int_equal(parley_db_stream_get(fx->db, path, &st), 0);
    return st.closed;
}

/* complete through core/turn.c: the reply is message 2 of the
 * conversation, named by the session, and the session is completed with
 * its stream closed — one savepoint. */
static void session_complete_via_turn_appends_reply(void **state)
{
    (void)state;
    fixture_t fx;
    char claim[160];
    int64_t count;
    uint64_t tail;
    fixture_open(&fx);
    snprintf(claim, sizeof claim, "{\"conversation_id\":\"%s\"}", fx.conv);
    assert_int_equal(act(&fx, PARLEY_SESSION_CLAIM, claim), 200);
    conv_state(&fx, &count, &tail);
    assert_int_equal(count, 1);
    assert_int_equal(tail, 1);
    assert_false(session_stream_closed(&fx));

    parley_session_req_t req;
    parley_outcome_t o;
    json_error_t jerr;
    json_t *body =
        json_loads("{\"content\":\"the answer\",\"metadata\":{\"model\":\"m\"}}", 0, &jerr);
    memset(&req, 0, sizeof req);
    req.action = PARLEY_SESSION_COMPLETE;
    req.id = fx.sess;
    req.user = "admin";
    req.admin = true;
    req.body = body;
    req.reply_id = "reply1";
    assert_int_equal(parley_session_parse(&req, &o), 0);
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(parley_turn_complete(fx.db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx.db), 0);
    assert_int_equal(outcome_status(&o), 200);
    assert_string_equal(json_string_value(json_object_get(o.body, "status")), "completed");
    assert_string_equal(json_string_value(json_object_get(o.body, "result_message_id")), "reply1");
    assert_true(o.wake.n >= 2); /* the log, the session stream (and the feed) */
    parley_outcome_clear(&o);
    json_decref(body);

    conv_state(&fx, &count, &tail);
    assert_int_equal(count, 2);
    assert_int_equal(tail, 2);
    assert_true(session_stream_closed(&fx));
    /* The stored message is the assistant's, tied to the session. */
    parley_stream_t log;
    parley_buf_t buf;
    char path[PARLEY_PATH_MAX + 1];
    int n;
    uint64_t last;
    bool more;
    parley_conversation_stream_path(fx.conv, path, sizeof path);
    assert_int_equal(parley_db_stream_get(fx.db, path, &log), 0);
    parley_buf_init(&buf, 1 << 20);
    assert_int_equal(
        parley_conversation_read_page(fx.db, &log, 1, 10, 1 << 20, &buf, &n, &last, &more), 0);
    assert_int_equal(n, 1);
    json_t *m = json_loadb(buf.data, buf.len, 0, &jerr);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "reply1");
    assert_int_equal(json_integer_value(json_object_get(m, "seq")), 2);
    assert_string_equal(json_string_value(json_object_get(m, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(m, "content")), "the answer");
    assert_string_equal(json_string_value(json_object_get(m, "session_id")), fx.sess);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "metadata"), "model")),
                        "m");
    json_decref(m);
    parley_buf_free(&buf);
    fixture_close(&fx);
}

/* A completion the session refuses writes no message: the checks run
 * before the conversation is touched. */
static void session_complete_via_turn_refused_writes_nothing(void **state)
{
    (void)state;
    static const struct {
        bool claim;       /* claim first (else the session is still pending) */
        const char *body; /* the complete body */
        const char *code; /* the refusal */
    } cases[] = {
        {false, "{\"content\":\"x\"}", "invalid_transition"},
        {true, "{\"content\":\"x\",\"attempt\":2}", "stale_attempt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture_t fx;
        char claim[160];
        int64_t count;
        uint64_t tail;
        fixture_open(&fx);
        snprintf(claim, sizeof claim, "{\"conversation_id\":\"%s\"}", fx.conv);
        if (cases[i].claim)
            assert_int_equal(act(&fx, PARLEY_SESSION_CLAIM, claim), 200);
        assert_int_equal(act(&fx, PARLEY_SESSION_COMPLETE, cases[i].body), 409);
        conv_state(&fx, &count, &tail);
        assert_int_equal(count, 1);
        assert_int_equal(tail, 1);
        assert_false(session_stream_closed(&fx));
        fixture_close(&fx);
    }
}

/* The ETag follows every field a poll would see change, and only those. */
static void session_etag_changes_with_each_field(void **state)
{
    (void)state;
    parley_sess_t a = {.id = "S1",
                       .conversation_id = "C1",
                       .owner = "alice",
                       .message_id = "M1",
                       .status = "processing",
                       .attempt = 1,
                       .max_attempts = 3,
                       .lease_ms = 60000,
                       .lease_expires_ms = 5000,
                       .created_ms = 1,
                       .updated_ms = 2};
    char base[PARLEY_SESSION_ETAG_LEN + 1], tag[PARLEY_SESSION_ETAG_LEN + 1];
    parley_session_etag(&a, base);
    assert_int_equal(strlen(base), PARLEY_SESSION_ETAG_LEN);
    assert_int_equal(base[0], '"');
    assert_int_equal(base[PARLEY_SESSION_ETAG_LEN - 1], '"');
    parley_sess_t same = a;
    parley_session_etag(&same, tag);
    assert_string_equal(tag, base);
    for (int k = 0; k < 10; k++) {
        parley_sess_t b = a;
        switch (k) {
        case 0:
            snprintf(b.id, sizeof b.id, "S2");
            break;
        case 1:
            snprintf(b.status, sizeof b.status, "awaiting_input");
            break;
        case 2:
            b.attempt = 2;
            break;
        case 3:
            b.max_attempts = 4;
            break;
        case 4:
            b.lease_expires_ms = 5001;
            break;
        case 5:
            b.updated_ms = 3;
            break;
        case 6:
            snprintf(b.result_id, sizeof b.result_id, "M2");
            break;
        case 7:
            b.error = "{}";
            break;
        case 8:
            b.request = "{\"tool\":\"x\"}";
            break;
        default:
            b.input = "null";
            break; /* JSON null text differs from no value */
        }
        parley_session_etag(&b, tag);
        if (strcmp(tag, base) == 0)
            fail_msg("field %d changed, the ETag did not", k);
    }
    /* The same bytes in another field are another tag (length prefixes). */
    parley_sess_t r1 = a, r2 = a;
    r1.request = "ab";
    r2.input = "ab";
    char t1[PARLEY_SESSION_ETAG_LEN + 1], t2[PARLEY_SESSION_ETAG_LEN + 1];
    parley_session_etag(&r1, t1);
    parley_session_etag(&r2, t2);
    assert_string_not_equal(t1, t2);
}

int main(void)
{
    const struct CMUnitTest session_tests[] = {
        cmocka_unit_test(session_next_table_every_pair),
        cmocka_unit_test(session_next_rejected_out_of_range),
        cmocka_unit_test(session_names_round_trip),
        cmocka_unit_test(session_etag_changes_with_each_field),
        cmocka_unit_test(session_apply_every_pair_on_a_store),
        cmocka_unit_test(session_expire_last_attempt_fails),
        cmocka_unit_test(session_apply_worker_action_forbidden_for_users),
        cmocka_unit_test(session_parse_bad_body_refused),
        cmocka_unit_test(session_parse_fills_args),
        cmocka_unit_test(session_apply_refuses_complete_and_unparsed),
        cmocka_unit_test(session_complete_via_turn_appends_reply),
        cmocka_unit_test(session_complete_via_turn_refused_writes_nothing),
    };
    return cmocka_run_group_tests_name("session", session_tests, NULL, NULL);
}
