/*
 * test_conversation.c — unit tests for core/conversation.c, core/message.c
 * and core/turn.c (the message plus its turn).
 *
 * On a real SQLite store (a fresh temporary directory per case):
 *   1. seq is gap-free across posts: message N is seq N and log position
 *      N - 1, message_count and the log's tail agree after every post,
 *      with and without "process": true;
 *   2. deleting a conversation removes every one of its sessions (more
 *      than one list batch of them) and their token streams, deletes the
 *      log and leaves a tombstone; another conversation's sessions stay;
 *      a stale If-Match refuses with 412 and removes nothing;
 *   3. a post to a missing or another user's conversation is 404 and
 *      writes nothing.
 * Pure:
 *   4. parley_message_parse: every accepted and refused body of the
 *      contract, with the code and message the API answers;
 *   5. parley_conversation_parse: create and patch bodies likewise;
 *   6. patch: a merge patch on title and metadata makes version + 1; a
 *      stale If-Match is refused with the current conversation, another
 *      user's conversation is not found, and neither changes anything;
 *   7. a log whose tail is not the message count (a gap, or a message
 *      written behind the conversation's back) is refused, not numbered
 *      over, and the refused post writes nothing;
 *   8. reading the log page by page (limit, byte budget, after) returns
 *      every message once, in seq order;
 *   9. every change is one event in the owner's feed: conversation.created
 *      |updated|deleted and message.created with its seq.
 *
 * Cases 6-9 read outcomes through verdict(): a refusal (PARLEY_E*) or how
 * the rule succeeded (core/outcome.h).
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

#include "core/conversation.h"
#include "core/feed.h"
#include "core/message.h"
#include "core/session.h"
#include "core/stream.h"
#include "core/turn.h"
#include "status_of.h"
#include "parley/parley.h"
#include "store/store.h"
#include "store_fixture.h"

typedef store_fixture_t fixture_t;

/* Create a conversation of user; its id into id. */
static void create_conv(fixture_t *fx, const char *user, char *id)
{
    parley_conv_req_t cr;
    parley_outcome_t o;
    store_fixture_id(fx, id);
    memset(&cr, 0, sizeof cr);
    cr.op = PARLEY_CONV_CREATE;
    cr.id = id;
    cr.user = user;
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_conversation_apply(fx->db, &cr, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_int_equal(outcome_status(&o), 201);
    parley_outcome_clear(&o);
}

/* Post body (JSON text) to conversation conv as user, in its own
 * transaction; the outcome's status. The session's id goes to sid (when
 * not NULL), the message's seq to *seq (when 201). */
static int post(fixture_t *fx, const char *conv, const char *user, const char *body_json, char *sid,
                int64_t *seq)
{
    parley_turn_post_req_t req;
    parley_outcome_t o;
    char mid[PARLEY_ROW_ID_MAX + 1], sess[PARLEY_ROW_ID_MAX + 1];
    json_error_t jerr;
    json_t *body = json_loads(body_json, 0, &jerr);
    assert_non_null(body);
    store_fixture_id(fx, mid);
    store_fixture_id(fx, sess);
    memset(&req, 0, sizeof req);
    assert_int_equal(parley_message_parse(body, 3, &req.message, &o), 0);
    req.conversation_id = conv;
    req.user = user;
    req.message_id = mid;
    req.session_id = sess;
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_turn_post(fx->db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    int status = outcome_status(&o);
    if (status == 201) {
        assert_string_equal(json_string_value(json_object_get(o.body, "id")), mid);
        if (seq)
            *seq = json_integer_value(json_object_get(o.body, "seq"));
        json_t *s = json_object_get(o.body, "session");
        assert_true(req.message.process ? json_is_object(s) : s == NULL);
        if (s)
            assert_string_equal(json_string_value(json_object_get(s, "status")), "pending");
    }
    if (sid)
        snprintf(sid, PARLEY_ROW_ID_MAX + 1, "%s", sess);
    parley_outcome_clear(&o);
    json_decref(body);
    return status;
}

static void log_of(fixture_t *fx, const char *conv, parley_stream_t *log)
{
    char path[PARLEY_PATH_MAX + 1];
    parley_conversation_stream_path(conv, path, sizeof path);
    assert_int_equal(parley_db_stream_get(fx->db, path, log), 0);
}

static int64_t message_count(fixture_t *fx, const char *conv)
{
    parley_conv_t c;
    assert_int_equal(parley_db_conv_get(fx->db, conv, &c), 0);
    int64_t n = c.message_count;
    parley_conv_clear(&c);
    return n;
}

/* True if the stream at path is gone (removed, or soft-deleted). */
static bool stream_gone(fixture_t *fx, const char *path)
{
    parley_stream_t st;
    int rc = parley_db_stream_get(fx->db, path, &st);
    assert_true(rc == 0 || rc == PARLEY_ENOTFOUND);
    return rc == PARLEY_ENOTFOUND || st.deleted;
}

/* ---- 1. seq --------------------------------------------------------------------- */

static void conversation_seq_gap_free_across_posts(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ROW_ID_MAX + 1];
    store_fixture_open(&fx, "conversation");
    create_conv(&fx, "alice", conv);
    for (int i = 1; i <= 40; i++) {
        int64_t seq = 0;
        parley_stream_t log;
        const char *body = i % 3 == 0 ? "{\"role\":\"user\",\"content\":\"q\",\"process\":true}"
                           : i % 3 == 1
                               ? "{\"role\":\"assistant\",\"content\":[1,2]}"
                               : "{\"role\":\"tool\",\"content\":{\"x\":1},\"metadata\":null}";
        assert_int_equal(post(&fx, conv, "alice", body, NULL, &seq), 201);
        assert_int_equal(seq, i);
        assert_int_equal(message_count(&fx, conv), i);
        log_of(&fx, conv, &log);
        assert_int_equal(log.tail, (uint64_t)i);
    }
    /* Read back: seq 1..40, one per log position, in order. */
    parley_stream_t log;
    parley_buf_t buf;
    int n;
    uint64_t last;
    bool more;
    json_error_t jerr;
    log_of(&fx, conv, &log);
    parley_buf_init(&buf, 1 << 20);
    assert_int_equal(parley_buf_putc(&buf, '['), 0);
    assert_int_equal(
        parley_conversation_read_page(fx.db, &log, 0, 100, 1 << 20, &buf, &n, &last, &more), 0);
    assert_int_equal(parley_buf_putc(&buf, ']'), 0);
    assert_int_equal(n, 40);
    assert_int_equal(last, 40);
    assert_false(more);
    json_t *all = json_loadb(buf.data, buf.len, 0, &jerr);
    assert_non_null(all);
    for (size_t i = 0; i < json_array_size(all); i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(all, i), "seq")),
                         (json_int_t)i + 1);
    json_decref(all);
    parley_buf_free(&buf);
    store_fixture_close(&fx);
}

/* ---- 2. delete cascade ------------------------------------------------------------ */

#define CASCADE_SESSIONS 70 /* more than one batch of turn.c's DELETE_BATCH (64) */

static void conversation_delete_cascade_removes_sessions_and_streams(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ROW_ID_MAX + 1], other[PARLEY_ROW_ID_MAX + 1];
    char(*sids)[PARLEY_ROW_ID_MAX + 1] = calloc(CASCADE_SESSIONS, sizeof *sids);
    char keep[PARLEY_ROW_ID_MAX + 1], path[PARLEY_PATH_MAX + 1];
    assert_non_null(sids);
    store_fixture_open(&fx, "conversation");
    create_conv(&fx, "alice", conv);
    create_conv(&fx, "alice", other);
    for (int i = 0; i < CASCADE_SESSIONS; i++)
        assert_int_equal(post(&fx, conv, "alice",
                              "{\"role\":\"user\",\"content\":\"q\",\"process\":true}", sids[i],
                              NULL),
                         201);
    assert_int_equal(post(&fx, other, "alice",
                          "{\"role\":\"user\",\"content\":\"q\",\"process\":true}", keep, NULL),
                     201);
    parley_conv_t before;
    assert_int_equal(parley_db_conv_get(fx.db, conv, &before), 0);

    parley_conv_req_t req;
    parley_outcome_t o;
    memset(&req, 0, sizeof req);
    req.op = PARLEY_CONV_DELETE;
    req.id = conv;
    req.user = "alice";
    assert_int_equal(parley_conversation_parse(PARLEY_CONV_DELETE, NULL, &o), 0);
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(parley_turn_delete_conversation(fx.db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx.db), 0);
    assert_int_equal(outcome_status(&o), 204);
    assert_false(parley_wakeset_empty(&o.wake));
    parley_outcome_clear(&o);

    for (int i = 0; i < CASCADE_SESSIONS; i++) {
        parley_sess_t s;
        if (parley_db_sess_get(fx.db, sids[i], &s) != PARLEY_ENOTFOUND)
            fail_msg("session %d (%s) outlived its conversation", i, sids[i]);
        parley_session_stream_path(sids[i], path, sizeof path);
        if (!stream_gone(&fx, path))
            fail_msg("session %d's stream outlived its conversation", i);
    }
    parley_conversation_stream_path(conv, path, sizeof path);
    assert_true(stream_gone(&fx, path));
    parley_conv_t c;
    assert_int_equal(parley_db_conv_get(fx.db, conv, &c), 0);
    assert_true(c.deleted);
    assert_null(c.title);
    assert_int_equal(c.version, before.version + 1);
    parley_conv_clear(&c);
    parley_conv_clear(&before);

    /* The other conversation and its session are untouched. */
    parley_sess_t s;
    assert_int_equal(parley_db_sess_get(fx.db, keep, &s), 0);
    parley_sess_clear(&s);
    parley_session_stream_path(keep, path, sizeof path);
    assert_false(stream_gone(&fx, path));
    assert_int_equal(message_count(&fx, other), 1);

    /* Gone for its owner: a second delete, and a post, are 404. */
    assert_int_equal(parley_turn_delete_conversation(fx.db, &req, &o), 0);
    assert_int_equal(outcome_status(&o), 404);
    parley_outcome_clear(&o);
    assert_int_equal(post(&fx, conv, "alice", "{\"role\":\"user\",\"content\":\"q\"}", NULL, NULL),
                     404);
    free(sids);
    store_fixture_close(&fx);
}

static void conversation_delete_refused_keeps_everything(void **state)
{
    (void)state;
    static const struct {
        const char *user;  /* the caller */
        bool has_if_match; /* If-Match given */
        int64_t if_match;  /* its version */
        int status;        /* the refusal */
    } cases[] = {
        {"alice", true, 1, 412}, /* the post made it version 2 */
        {"mallory", false, 0, 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture_t fx;
        char conv[PARLEY_ROW_ID_MAX + 1], sid[PARLEY_ROW_ID_MAX + 1], path[PARLEY_PATH_MAX + 1];
        store_fixture_open(&fx, "conversation");
        create_conv(&fx, "alice", conv);
        assert_int_equal(post(&fx, conv, "alice",
                              "{\"role\":\"user\",\"content\":\"q\",\"process\":true}", sid, NULL),
                         201);
        parley_conv_req_t req;
        parley_outcome_t o;
        memset(&req, 0, sizeof req);
        req.op = PARLEY_CONV_DELETE;
        req.id = conv;
        req.user = cases[i].user;
        req.has_if_match = cases[i].has_if_match;
        req.if_match = cases[i].if_match;
        assert_int_equal(parley_db_begin(fx.db), 0);
        assert_int_equal(parley_turn_delete_conversation(fx.db, &req, &o), 0);
        assert_int_equal(parley_db_commit(fx.db), 0);
        assert_int_equal(outcome_status(&o), cases[i].status);
        if (outcome_status(&o) == 412) /* with the current conversation */
            assert_int_equal(json_integer_value(json_object_get(o.body, "version")), 2);
        parley_outcome_clear(&o);
        parley_sess_t s;
        assert_int_equal(parley_db_sess_get(fx.db, sid, &s), 0);
        parley_sess_clear(&s);
        parley_session_stream_path(sid, path, sizeof path);
        assert_false(stream_gone(&fx, path));
        store_fixture_close(&fx);
    }
}

/* Delete is turn.c's: conversation.c refuses to run it (it would leave the
 * sessions behind). */
static void conversation_apply_delete_refused(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ROW_ID_MAX + 1];
    store_fixture_open(&fx, "conversation");
    create_conv(&fx, "alice", conv);
    parley_conv_req_t req;
    parley_outcome_t o;
    memset(&req, 0, sizeof req);
    req.op = PARLEY_CONV_DELETE;
    req.id = conv;
    req.user = "alice";
    assert_int_equal(parley_conversation_apply(fx.db, &req, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
    store_fixture_close(&fx);
}

/* ---- 3. posts that are refused ---------------------------------------------------- */

static void turn_post_not_visible_refused(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ROW_ID_MAX + 1];
    store_fixture_open(&fx, "conversation");
    create_conv(&fx, "alice", conv);
    assert_int_equal(post(&fx, conv, "mallory",
                          "{\"role\":\"user\",\"content\":\"q\",\"process\":true}", NULL, NULL),
                     404);
    assert_int_equal(
        post(&fx, "nosuch", "alice", "{\"role\":\"user\",\"content\":\"q\"}", NULL, NULL), 404);
    assert_int_equal(message_count(&fx, conv), 0);
    /* The admin reaches every user's conversation. */
    parley_turn_post_req_t req;
    parley_outcome_t o;
    json_error_t jerr;
    json_t *body = json_loads("{\"role\":\"system\",\"content\":\"s\"}", 0, &jerr);
    memset(&req, 0, sizeof req);
    assert_int_equal(parley_message_parse(body, 3, &req.message, &o), 0);
    req.conversation_id = conv;
    req.user = "admin";
    req.admin = true;
    req.message_id = "m-admin";
    req.session_id = "s-admin";
    assert_int_equal(parley_turn_post(fx.db, &req, &o), 0);
    assert_int_equal(outcome_status(&o), 201);
    parley_outcome_clear(&o);
    json_decref(body);
    assert_int_equal(message_count(&fx, conv), 1);
    store_fixture_close(&fx);
}

/* ---- 4. message bodies ------------------------------------------------------------ */

static void message_parse_bodies_table(void **state)
{
    (void)state;
    static const char *const role_msg =
        "role must be one of \"user\", \"assistant\", \"system\", \"tool\"";
    static const char *const attempts_msg =
        "max_attempts is a whole number from 1 to 100, and only goes with \"process\": true";
    static const struct {
        const char *body;     /* the body (JSON text) */
        const char *message;  /* the refusal's message; NULL: accepted */
        const char *field;    /* details.field, or NULL */
        bool process;         /* accepted: process */
        int64_t max_attempts; /* accepted: the session's attempts */
    } cases[] = {
        {"{\"role\":\"user\",\"content\":\"x\"}", NULL, NULL, false, 3},
        {"{\"role\":\"tool\",\"content\":null,\"metadata\":null}", NULL, NULL, false, 3},
        {"{\"role\":\"user\",\"content\":[{\"type\":\"text\"}],\"metadata\":{\"a\":1}}", NULL, NULL,
         false, 3},
        {"{\"role\":\"user\",\"content\":\"x\",\"process\":false}", NULL, NULL, false, 3},
        {"{\"role\":\"user\",\"content\":\"x\",\"process\":true}", NULL, NULL, true, 3},
        {"{\"role\":\"user\",\"content\":\"x\",\"process\":true,\"max_attempts\":100}", NULL, NULL,
         true, 100},
        {"[1]", "the body must be a JSON object: {\"role\": \"user\", \"content\": ...}", NULL,
         false, 0},
        {"\"text\"", "the body must be a JSON object: {\"role\": \"user\", \"content\": ...}", NULL,
         false, 0},
        {"{\"role\":\"user\",\"content\":\"x\",\"extra\":1}",
         "unknown field (see details.field): a message takes role, content, metadata, process, "
         "max_attempts and branch",
         "extra", false, 0},
        {"{\"role\":\"robot\",\"content\":\"x\"}", role_msg, NULL, false, 0},
        {"{\"role\":\"User\",\"content\":\"x\"}", role_msg, NULL, false, 0},
        {"{\"role\":1,\"content\":\"x\"}", role_msg, NULL, false, 0},
        {"{\"content\":\"x\"}", role_msg, NULL, false, 0},
        {"{\"role\":\"user\"}",
         "content is required (any JSON value: a string, or a list of parts)", NULL, false, 0},
        {"{\"role\":\"user\",\"content\":\"x\",\"metadata\":[]}", "metadata must be a JSON object",
         NULL, false, 0},
        {"{\"role\":\"user\",\"content\":\"x\",\"metadata\":\"m\"}",
         "metadata must be a JSON object", NULL, false, 0},
        {"{\"role\":\"user\",\"content\":\"x\",\"process\":1}", "process must be true or false",
         NULL, false, 0},
        {"{\"role\":\"user\",\"content\":\"x\",\"max_attempts\":2}", attempts_msg, NULL, false, 0},
        {"{\"role\":\"user\",\"content\":\"x\",\"process\":true,\"max_attempts\":0}", attempts_msg,
         NULL, false, 0},
        {"{\"role\":\"user\",\"content\":\"x\",\"process\":true,\"max_attempts\":101}",
         attempts_msg, NULL, false, 0},
        {"{\"role\":\"user\",\"content\":\"x\",\"process\":true,\"max_attempts\":2.5}",
         attempts_msg, NULL, false, 0},
        /* The first fault wins: an unknown field before a bad role. */
        {"{\"role\":\"robot\",\"zzz\":1}",
         "unknown field (see details.field): a message takes role, content, metadata, process, "
         "max_attempts and branch",
         "zzz", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_message_t m;
        parley_outcome_t o;
        json_error_t jerr;
        json_t *body = json_loads(cases[i].body, JSON_DECODE_ANY, &jerr);
        assert_non_null(body);
        int rc = parley_message_parse(body, 3, &m, &o);
        if (!cases[i].message) {
            if (rc != 0)
                fail_msg("case %zu %s: refused: %s", i, cases[i].body, o.error);
            assert_int_equal(o.refusal, 0);
            assert_true(parley_message_role_is_valid(m.role));
            assert_non_null(m.content);
            assert_true(m.metadata == NULL || json_is_object(m.metadata));
            assert_int_equal(m.process, cases[i].process);
            assert_int_equal(m.max_attempts, cases[i].max_attempts);
        } else {
            if (rc != PARLEY_EINVAL || outcome_status(&o) != 400)
                fail_msg("case %zu %s: not refused with 400", i, cases[i].body);
            assert_string_equal(o.code, "invalid_message");
            assert_string_equal(o.error, cases[i].message);
            if (cases[i].field)
                assert_string_equal(json_string_value(json_object_get(o.body, "field")),
                                    cases[i].field);
            else
                assert_null(o.body);
        }
        parley_outcome_clear(&o);
        json_decref(body);
    }
    parley_message_t m;
    parley_outcome_t o;
    assert_int_equal(parley_message_parse(NULL, 3, &m, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
}

/* ---- 5. conversation bodies ---------------------------------------------------------- */

static void conversation_parse_bodies_table(void **state)
{
    (void)state;
    static const char *const unknown =
        "unknown field (see details.field): a conversation takes only title and metadata";
    static const struct {
        parley_conv_op_t op; /* create or patch */
        const char *body;    /* the body (JSON text), NULL for none */
        const char *message; /* the refusal's message; NULL: accepted */
        const char *field;   /* details.field, or NULL */
    } cases[] = {
        {PARLEY_CONV_CREATE, NULL, NULL, NULL},
        {PARLEY_CONV_CREATE, "{}", NULL, NULL},
        {PARLEY_CONV_CREATE, "{\"title\":\"t\",\"metadata\":{\"a\":[1]}}", NULL, NULL},
        {PARLEY_CONV_CREATE, "{\"title\":null,\"metadata\":null}", NULL, NULL},
        {PARLEY_CONV_PATCH, "{\"title\":null}", NULL, NULL},
        {PARLEY_CONV_PATCH, "{\"metadata\":{\"a\":null}}", NULL, NULL},
        {PARLEY_CONV_DELETE, NULL, NULL, NULL},
        {PARLEY_CONV_CREATE, "[]",
         "the body must be a JSON object: {\"title\": ..., \"metadata\": {...}}", NULL},
        {PARLEY_CONV_PATCH, NULL,
         "a PATCH body is a JSON merge patch object, e.g. {\"title\": \"New\"}", NULL},
        {PARLEY_CONV_PATCH, "5",
         "a PATCH body is a JSON merge patch object, e.g. {\"title\": \"New\"}", NULL},
        {PARLEY_CONV_CREATE, "{\"owner\":\"bob\"}", unknown, "owner"},
        {PARLEY_CONV_PATCH, "{\"owner\":\"bob\"}", unknown, "owner"},
        {PARLEY_CONV_CREATE, "{\"title\":5}", "title must be a string or null", NULL},
        {PARLEY_CONV_PATCH, "{\"title\":5}", "title must be a string or null", NULL},
        {PARLEY_CONV_PATCH, "{\"title\":{}}", "title must be a string or null", NULL},
        {PARLEY_CONV_CREATE, "{\"metadata\":\"x\"}", "metadata must be a JSON object", NULL},
        {PARLEY_CONV_PATCH, "{\"metadata\":[1]}", "metadata must be a JSON object", NULL},
        {PARLEY_CONV_CREATE, "{\"title\":5,\"metadata\":\"x\"}", "title must be a string or null",
         NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_outcome_t o;
        json_error_t jerr;
        json_t *body = cases[i].body ? json_loads(cases[i].body, JSON_DECODE_ANY, &jerr) : NULL;
        assert_true(body || !cases[i].body);
        int rc = parley_conversation_parse(cases[i].op, body, &o);
        if (!cases[i].message) {
            if (rc != 0)
                fail_msg("case %zu %s: refused: %s", i, cases[i].body, o.error);
            assert_int_equal(o.refusal, 0);
        } else {
            if (rc != PARLEY_EINVAL || outcome_status(&o) != 400)
                fail_msg("case %zu %s: not refused with 400", i, cases[i].body);
            assert_string_equal(o.code, "invalid_conversation");
            assert_string_equal(o.error, cases[i].message);
            if (cases[i].field)
                assert_string_equal(json_string_value(json_object_get(o.body, "field")),
                                    cases[i].field);
        }
        parley_outcome_clear(&o);
        json_decref(body);
    }
}

/* ---- what a rule decided --------------------------------------------------------- */

typedef struct verdict {
    int refusal;        /* 0: done; else the refusal (negative PARLEY_E*) */
    parley_done_t done; /* how it was done */
} verdict_t;

/* The outcome as a refusal or a done (core/outcome.h). */
static verdict_t verdict(const parley_outcome_t *o)
{
    verdict_t v = {o->refusal, o->done};
    return v;
}

/* Patch conv as user with body (JSON text) and If-Match if_match (0: none),
 * in its own transaction; the outcome in *o (the caller clears it). */
static void patch_conv(fixture_t *fx, const char *conv, const char *user, const char *body,
                       int64_t if_match, parley_outcome_t *o)
{
    parley_conv_req_t req;
    json_error_t jerr;
    memset(&req, 0, sizeof req);
    req.op = PARLEY_CONV_PATCH;
    req.id = conv;
    req.user = user;
    req.body = json_loads(body, 0, &jerr);
    req.has_if_match = if_match != 0;
    req.if_match = if_match;
    assert_non_null(req.body);
    assert_int_equal(parley_conversation_parse(PARLEY_CONV_PATCH, req.body, o), 0);
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_conversation_apply(fx->db, &req, o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    json_decref(req.body);
}

/* The stored conversation's version, title (or "(null)") and metadata. */
static void conv_state(fixture_t *fx, const char *conv, char *out, size_t cap)
{
    parley_conv_t c;
    assert_int_equal(parley_db_conv_get(fx->db, conv, &c), 0);
    snprintf(out, cap, "v%lld %s %s", (long long)c.version, c.title ? c.title : "(null)",
             c.metadata ? c.metadata : "{}");
    parley_conv_clear(&c);
}

/* The events of user's feed as "type" or "type seq" (message.created),
 * joined by "; ". */
static void feed_brief(fixture_t *fx, const char *user, char *out, size_t cap)
{
    char path[PARLEY_PATH_MAX + 1];
    parley_stream_t meta;
    parley_buf_t buf;
    parley_read_t rd;
    parley_feed_path(user, path, sizeof path);
    out[0] = '\0';
    if (parley_db_stream_get(fx->db, path, &meta) == PARLEY_ENOTFOUND)
        return;
    parley_buf_init(&buf, 1 << 20);
    assert_int_equal(parley_buf_putc(&buf, '['), 0);
    assert_int_equal(parley_stream_read(fx->db, &meta, 0, 1 << 20, &buf, &rd), 0);
    assert_int_equal(parley_buf_putc(&buf, ']'), 0);
    json_t *events = json_loadb(buf.data, buf.len, 0, NULL);
    assert_non_null(events);
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        const char *type = json_string_value(json_object_get(e, "type"));
        json_t *seq = json_object_get(json_object_get(e, "data"), "seq");
        size_t n = strlen(out);
        if (seq)
            snprintf(out + n, cap - n, "%s%s %lld", n ? "; " : "", type,
                     (long long)json_integer_value(seq));
        else
            snprintf(out + n, cap - n, "%s%s", n ? "; " : "", type);
    }
    json_decref(events);
    parley_buf_free(&buf);
}

/* ---- 6. patch ----------------------------------------------------------------------- */

static void conversation_patch_merges_and_checks_if_match(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ROW_ID_MAX + 1], now[256];
    parley_outcome_t o;
    store_fixture_open(&fx, "conversation");
    create_conv(&fx, "alice", conv);
    patch_conv(&fx, conv, "alice", "{\"title\":\"a\",\"metadata\":{\"k\":1,\"j\":2}}", 1, &o);
    assert_int_equal(verdict(&o).done, PARLEY_DONE_OK);
    assert_int_equal(verdict(&o).refusal, 0);
    assert_int_equal(json_integer_value(json_object_get(o.body, "version")), 2);
    parley_outcome_clear(&o);
    /* A merge: null removes a key, other keys stay. */
    patch_conv(&fx, conv, "alice", "{\"metadata\":{\"k\":null,\"m\":[3]}}", 0, &o);
    assert_int_equal(verdict(&o).done, PARLEY_DONE_OK);
    parley_outcome_clear(&o);
    conv_state(&fx, conv, now, sizeof now);
    assert_string_equal(now, "v3 a {\"j\":2,\"m\":[3]}");

    static const struct {
        const char *user; /* the caller */
        int64_t if_match; /* If-Match, 0 for none */
        int refusal;      /* expected */
    } refused[] = {
        {"alice", 2, PARLEY_EPRECOND},
        {"alice", 4, PARLEY_EPRECOND},
        {"mallory", 0, PARLEY_ENOTFOUND},
        {"mallory", 3, PARLEY_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        patch_conv(&fx, conv, refused[i].user, "{\"title\":\"x\"}", refused[i].if_match, &o);
        if (verdict(&o).refusal != refused[i].refusal)
            fail_msg("case %zu: refusal %s", i, parley_strerror(verdict(&o).refusal));
        if (refused[i].refusal == PARLEY_EPRECOND) { /* with the current conversation */
            assert_string_equal(o.code, "precondition_failed");
            assert_int_equal(json_integer_value(json_object_get(o.body, "version")), 3);
            assert_string_equal(json_string_value(json_object_get(o.body, "title")), "a");
        } else {
            assert_string_equal(o.code, "not_found");
            assert_null(o.body);
        }
        assert_true(parley_wakeset_empty(&o.wake));
        parley_outcome_clear(&o);
        conv_state(&fx, conv, now, sizeof now);
        assert_string_equal(now, "v3 a {\"j\":2,\"m\":[3]}");
    }
    /* title null clears it. */
    patch_conv(&fx, conv, "alice", "{\"title\":null}", 3, &o);
    assert_int_equal(verdict(&o).done, PARLEY_DONE_OK);
    parley_outcome_clear(&o);
    conv_state(&fx, conv, now, sizeof now);
    assert_string_equal(now, "v4 (null) {\"j\":2,\"m\":[3]}");
    store_fixture_close(&fx);
}

/* ---- 7. a log that disagrees ------------------------------------------------------ */

static void conversation_post_refused_when_log_disagrees(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ROW_ID_MAX + 1], path[PARLEY_PATH_MAX + 1], feed[512];
    int64_t sid;
    store_fixture_open(&fx, "conversation");
    create_conv(&fx, "alice", conv);
    assert_int_equal(post(&fx, conv, "alice", "{\"role\":\"user\",\"content\":\"q\"}", NULL, NULL),
                     201);
    /* A message written to the log behind the conversation's back. */
    parley_conversation_stream_path(conv, path, sizeof path);
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(parley_stream_append_internal(fx.db, path, "alice", "{}", 2, &sid), 0);
    assert_int_equal(parley_db_commit(fx.db), 0);

    parley_turn_post_req_t req;
    parley_outcome_t o;
    json_t *body = json_pack("{s:s, s:s, s:b}", "role", "user", "content", "q", "process", 1);
    memset(&req, 0, sizeof req);
    assert_int_equal(parley_message_parse(body, 3, &req.message, &o), 0);
    req.conversation_id = conv;
    req.user = "alice";
    req.message_id = "m-gap";
    req.session_id = "s-gap";
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(parley_turn_post(fx.db, &req, &o), PARLEY_EINVAL);
    parley_db_rollback(fx.db); /* as the writer does with a refused request */
    parley_outcome_clear(&o);
    json_decref(body);
    assert_int_equal(message_count(&fx, conv), 1);
    parley_sess_t s;
    assert_int_equal(parley_db_sess_get(fx.db, "s-gap", &s), PARLEY_ENOTFOUND);
    feed_brief(&fx, "alice", feed, sizeof feed);
    assert_string_equal(feed, "conversation.created; message.created 1");
    store_fixture_close(&fx);
}

/* ---- 8. reading the log by pages ------------------------------------------------------ */

static void conversation_read_page_every_message_once(void **state)
{
    (void)state;
    static const struct {
        int limit;        /* messages per page */
        size_t max_bytes; /* bytes per page */
        int pages;        /* pages to read all 10 */
    } cases[] = {
        {100, 1 << 20, 1}, {10, 1 << 20, 1}, {3, 1 << 20, 4}, {1, 1 << 20, 10}, {100, 1, 10},
    };
    fixture_t fx;
    char conv[PARLEY_ROW_ID_MAX + 1];
    store_fixture_open(&fx, "conversation");
    create_conv(&fx, "alice", conv);
    for (int i = 1; i <= 10; i++)
        assert_int_equal(
            post(&fx, conv, "alice", "{\"role\":\"user\",\"content\":\"q\"}", NULL, NULL), 201);
    parley_stream_t log;
    log_of(&fx, conv, &log);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t after = 0;
        int pages = 0;
        bool more = true;
        while (more) {
            parley_buf_t buf;
            int n;
            uint64_t last;
            json_error_t jerr;
            parley_buf_init(&buf, 1 << 20);
            assert_int_equal(parley_buf_putc(&buf, '['), 0);
            assert_int_equal(parley_conversation_read_page(fx.db, &log, after, cases[i].limit,
                                                           cases[i].max_bytes, &buf, &n, &last,
                                                           &more),
                             0);
            assert_int_equal(parley_buf_putc(&buf, ']'), 0);
            json_t *page = json_loadb(buf.data, buf.len, 0, &jerr);
            assert_non_null(page);
            assert_int_equal(json_array_size(page), (size_t)n);
            assert_true(n >= 1);
            for (int k = 0; k < n; k++)
                if (json_integer_value(json_object_get(json_array_get(page, (size_t)k), "seq")) !=
                    (json_int_t)(after + (uint64_t)k + 1))
                    fail_msg("case %zu: page %d holds the wrong seq at %d", i, pages, k);
            assert_int_equal(last, after + (uint64_t)n);
            after = last;
            pages++;
            json_decref(page);
            parley_buf_free(&buf);
        }
        assert_int_equal(after, 10);
        if (pages != cases[i].pages)
            fail_msg("case %zu: %d pages, expected %d", i, pages, cases[i].pages);
    }
    /* After the last message: an empty page, nothing more. */
    parley_buf_t buf;
    int n;
    uint64_t last;
    bool more;
    parley_buf_init(&buf, 1 << 20);
    assert_int_equal(
        parley_conversation_read_page(fx.db, &log, 10, 100, 1 << 20, &buf, &n, &last, &more), 0);
    assert_int_equal(n, 0);
    assert_int_equal(last, 10);
    assert_false(more);
    parley_buf_free(&buf);
    store_fixture_close(&fx);
}

/* ---- 9. feed events ------------------------------------------------------------------ */

static void conversation_changes_emit_feed_events(void **state)
{
    (void)state;
    fixture_t fx;
    char conv[PARLEY_ROW_ID_MAX + 1], feed[512];
    parley_outcome_t o;
    store_fixture_open(&fx, "conversation");
    create_conv(&fx, "alice", conv);
    assert_int_equal(post(&fx, conv, "alice", "{\"role\":\"user\",\"content\":\"q\"}", NULL, NULL),
                     201);
    assert_int_equal(post(&fx, conv, "alice",
                          "{\"role\":\"user\",\"content\":\"q\",\"process\":true}", NULL, NULL),
                     201);
    patch_conv(&fx, conv, "alice", "{\"title\":\"t\"}", 0, &o);
    assert_int_equal(verdict(&o).done, PARLEY_DONE_OK);
    parley_outcome_clear(&o);
    /* Refused requests emit nothing. */
    patch_conv(&fx, conv, "mallory", "{\"title\":\"x\"}", 0, &o);
    assert_int_equal(verdict(&o).refusal, PARLEY_ENOTFOUND);
    parley_outcome_clear(&o);
    assert_int_equal(
        post(&fx, conv, "mallory", "{\"role\":\"user\",\"content\":\"q\"}", NULL, NULL), 404);
    parley_conv_req_t req;
    memset(&req, 0, sizeof req);
    req.op = PARLEY_CONV_DELETE;
    req.id = conv;
    req.user = "alice";
    assert_int_equal(parley_db_begin(fx.db), 0);
    assert_int_equal(parley_turn_delete_conversation(fx.db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx.db), 0);
    assert_int_equal(verdict(&o).done, PARLEY_DONE_EMPTY);
    parley_outcome_clear(&o);
    feed_brief(&fx, "alice", feed, sizeof feed);
    /* The session the second message asked for is created in the same
     * transaction (session.updated, from null to pending). */
    assert_string_equal(feed, "conversation.created; message.created 1; message.created 2; "
                              "session.updated; conversation.updated; conversation.deleted");
    feed_brief(&fx, "mallory", feed, sizeof feed);
    assert_string_equal(feed, "");
    store_fixture_close(&fx);
}

int main(void)
{
    const struct CMUnitTest conversation_tests[] = {
        cmocka_unit_test(conversation_seq_gap_free_across_posts),
        cmocka_unit_test(conversation_delete_cascade_removes_sessions_and_streams),
        cmocka_unit_test(conversation_delete_refused_keeps_everything),
        cmocka_unit_test(conversation_apply_delete_refused),
        cmocka_unit_test(turn_post_not_visible_refused),
        cmocka_unit_test(message_parse_bodies_table),
        cmocka_unit_test(conversation_parse_bodies_table),
        cmocka_unit_test(conversation_patch_merges_and_checks_if_match),
        cmocka_unit_test(conversation_post_refused_when_log_disagrees),
        cmocka_unit_test(conversation_read_page_every_message_once),
        cmocka_unit_test(conversation_changes_emit_feed_events),
    };
    return cmocka_run_group_tests_name("conversation", conversation_tests, NULL, NULL);
}
