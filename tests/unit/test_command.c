/*
 * test_command.c — unit tests for core/command.c (one write's rule, by its
 * command; a run with its Idempotency-Key) and the outcome records of
 * core/outcome.c, on a real SQLite store.
 *
 * Each kind of command reaches its rule (what the rule decides is tested
 * with the rule; here: that the command names it, and what comes back).
 * A run with a key records a done outcome, answers a retry with the record
 * (which decodes to the same outcome) and a different request with REUSED;
 * a refusal is neither kept nor recorded. A record keeps the body's member
 * order and values, and the stream fields; a reply stored before outcomes
 * were recorded is not taken for one.
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

#include "codec/canonjson.h"
#include "core/command.h"
#include "core/feed.h"
#include "core/message.h"
#include "core/snapshot.h"
#include "parley/parley.h"
#include "store/store.h"
#include "util/clock.h"

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
    snprintf(fx->dir, sizeof fx->dir, "/tmp/parley-test-command-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(url, sizeof url, "sqlite:%s/parley.db", fx->dir);
    assert_int_equal(parley_store_open(url, &fx->store), 0);
    fx->db = parley_store_writer(fx->store);
    parley_stream_touch_init(parley_clock_now_ms());
    assert_int_equal(parley_db_begin(fx->db), 0);
}

static void fixture_close(fixture_t *fx)
{
    assert_int_equal(parley_db_commit(fx->db), 0);
    parley_store_close(fx->store);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Apply cmd; expect refusal (0 = done) and, when done, that done kind. The
 * outcome's body is returned (new reference) for the caller to look at. */
static json_t *apply(fixture_t *fx, const parley_command_t *cmd, int refusal, parley_done_t done)
{
    parley_outcome_t o;
    assert_int_equal(parley_command_apply(fx->db, cmd, &o), 0);
    if (o.refusal != refusal)
        fail_msg("command %d: refusal %d (%s), want %d", cmd->kind, o.refusal,
                 o.error ? o.error : "-", refusal);
    if (!refusal)
        assert_int_equal(o.done, done);
    json_t *body = json_incref(o.body);
    parley_outcome_clear(&o);
    return body;
}

static parley_stream_req_t stream_req(const char *path, const char *body)
{
    parley_stream_req_t q;
    memset(&q, 0, sizeof q);
    q.path = path;
    q.owner = "alice";
    q.content_type = "text/plain";
    q.ttl_s = -1;
    q.expires_ms = -1;
    q.body = body;
    q.body_len = body ? strlen(body) : 0;
    return q;
}

static void command_apply_each_kind_reaches_its_rule(void **state)
{
    (void)state;
    fixture_t fx;
    parley_command_t c;
    parley_outcome_t po;
    fixture_open(&fx);

    /* streams */
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_STREAM_CREATE;
    c.u.stream = stream_req("a/s", NULL);
    json_decref(apply(&fx, &c, 0, PARLEY_DONE_CREATED));
    c.kind = PARLEY_CMD_STREAM_APPEND;
    c.u.stream = stream_req("a/s", "hello");
    parley_outcome_t o;
    assert_int_equal(parley_command_apply(fx.db, &c, &o), 0);
    assert_int_equal(o.refusal, 0);
    assert_true(o.echo.has_offset);
    assert_int_equal(o.echo.next, 5);
    parley_outcome_clear(&o);
    c.kind = PARLEY_CMD_STREAM_DELETE;
    c.u.stream = stream_req("a/s", NULL);
    json_decref(apply(&fx, &c, 0, PARLEY_DONE_EMPTY));
    json_decref(apply(&fx, &c, PARLEY_ENOTFOUND, 0));

    /* a document */
    json_t *data = json_pack("{s:i}", "a", 1);
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_DOCUMENT;
    c.u.doc.op = PARLEY_DOC_PUT;
    c.u.doc.owner = "alice";
    c.u.doc.collection = "notes";
    c.u.doc.id = "d1";
    c.u.doc.body = data;
    json_t *doc = apply(&fx, &c, 0, PARLEY_DONE_CREATED);
    assert_int_equal(json_integer_value(json_object_get(doc, "version")), 1);
    json_decref(doc);
    json_decref(data);

    /* a conversation, a message with its session, a claim, a snapshot */
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_CONVERSATION;
    c.u.conv.op = PARLEY_CONV_CREATE;
    c.u.conv.id = "c1";
    c.u.conv.user = "alice";
    json_t *conv = apply(&fx, &c, 0, PARLEY_DONE_CREATED);
    assert_string_equal(json_string_value(json_object_get(conv, "id")), "c1");
    json_decref(conv);

    json_t *mbody = json_pack("{s:s, s:s, s:b}", "role", "user", "content", "hi", "process", 1);
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_MESSAGE;
    assert_int_equal(parley_message_parse(mbody, 3, &c.u.post.message, &po), 0);
    parley_outcome_clear(&po);
    c.u.post.conversation_id = "c1";
    c.u.post.user = "alice";
    c.u.post.message_id = "m1";
    c.u.post.session_id = "s1";
    json_t *msg = apply(&fx, &c, 0, PARLEY_DONE_CREATED);
    assert_int_equal(json_integer_value(json_object_get(msg, "seq")), 1);
    assert_non_null(json_object_get(msg, "session"));
    json_decref(msg);
    json_decref(mbody);

    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_SESSION;
    c.u.session.action = PARLEY_SESSION_CLAIM;
    c.u.session.user = "@admin";
    c.u.session.admin = true;
    assert_int_equal(parley_session_parse(&c.u.session, &po), 0);
    parley_outcome_clear(&po);
    json_t *sess = apply(&fx, &c, 0, PARLEY_DONE_OK);
    assert_string_equal(json_string_value(json_object_get(sess, "id")), "s1");
    json_decref(sess);
    json_decref(apply(&fx, &c, 0, PARLEY_DONE_NOTHING)); /* nothing left to claim */

    /* a worker's output: the session check refuses with a code, the
     * stream rule's refusals have none */
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_SESSION_APPEND;
    c.u.sess_append.id = "s1";
    c.u.sess_append.user = "alice";
    c.u.sess_append.attempt = -1;
    c.u.sess_append.stream = stream_req(NULL, "{\"t\":1}");
    c.u.sess_append.stream.content_type = "application/json";
    assert_int_equal(parley_command_apply(fx.db, &c, &o), 0);
    assert_int_equal(o.refusal, PARLEY_EFORBIDDEN);
    assert_string_equal(o.code, "forbidden");
    parley_outcome_clear(&o);
    c.u.sess_append.user = "@admin";
    c.u.sess_append.admin = true;
    c.u.sess_append.stream.content_type = "text/plain";
    assert_int_equal(parley_command_apply(fx.db, &c, &o), 0);
    assert_int_equal(o.refusal, PARLEY_ECONFLICT); /* a JSON stream: content type mismatch */
    assert_null(o.code);
    parley_outcome_clear(&o);

    json_t *sbody = json_pack("{s:s}", "source", "/v1/conversations/c1");
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_SNAPSHOT_CREATE;
    c.u.snap.id = "p1";
    c.u.snap.user = "alice";
    c.u.snap.body = sbody;
    assert_int_equal(parley_command_apply(fx.db, &c, &o), PARLEY_EINVAL); /* not parsed */
    parley_outcome_clear(&o);
    assert_int_equal(parley_snapshot_parse(&c.u.snap, &po), 0);
    parley_outcome_clear(&po);
    json_t *snap = apply(&fx, &c, 0, PARLEY_DONE_CREATED);
    assert_string_equal(json_string_value(json_object_get(snap, "kind")), "conversation");
    json_decref(snap);
    json_decref(sbody);
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_SNAPSHOT_DELETE;
    c.u.snap_delete.id = "p1";
    c.u.snap_delete.user = "alice";
    json_decref(apply(&fx, &c, 0, PARLEY_DONE_EMPTY));

    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_CONVERSATION;
    c.u.conv.op = PARLEY_CONV_DELETE;
    c.u.conv.id = "c1";
    c.u.conv.user = "alice";
    json_decref(apply(&fx, &c, 0, PARLEY_DONE_EMPTY));

    /* subscriptions and the feed */
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_SUB_DELETE;
    c.u.sub.id = "nosuch";
    json_decref(apply(&fx, &c, PARLEY_ENOTFOUND, 0));
    char feed[PARLEY_PATH_MAX + 1];
    parley_stream_t meta;
    parley_feed_path("bob", feed, sizeof feed);
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_FEED_ENSURE;
    c.u.feed.path = feed;
    c.u.feed.owner = "bob";
    json_decref(apply(&fx, &c, 0, PARLEY_DONE_EMPTY));
    assert_int_equal(parley_db_stream_get(fx.db, feed, &meta), 0);

    c.kind = (parley_command_kind_t)99;
    assert_int_equal(parley_command_apply(fx.db, &c, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
    fixture_close(&fx);
}

static void command_run_records_replays_and_refuses_reuse(void **state)
{
    (void)state;
    fixture_t fx;
    parley_command_t c;
    parley_command_run_t run;
    parley_idem_key_t key = {"alice", "k1", "fp-one", 60000, false};
    fixture_open(&fx);
    parley_command_run_init(&run);
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_CONVERSATION;
    c.u.conv.op = PARLEY_CONV_CREATE;
    c.u.conv.id = "c1";
    c.u.conv.user = "alice";

    assert_int_equal(parley_command_run(fx.db, &c, &key, &run), 0);
    assert_int_equal(run.how, PARLEY_RUN_APPLIED);
    assert_true(run.keep);
    char *first = json_dumps(run.out.body, JSON_COMPACT);
    assert_non_null(first);

    /* the retry: the record answers, the rule does not run (c2 would be new) */
    c.u.conv.id = "c2";
    assert_int_equal(parley_command_run(fx.db, &c, &key, &run), 0);
    assert_int_equal(run.how, PARLEY_RUN_REPLAY);
    assert_false(run.keep);
    assert_true(parley_outcome_is_record(run.record, run.record_len));
    parley_outcome_t o;
    assert_int_equal(parley_outcome_decode(run.record, run.record_len, &o), 0);
    assert_int_equal(o.done, PARLEY_DONE_CREATED);
    char *again = json_dumps(o.body, JSON_COMPACT);
    assert_string_equal(again, first);
    free(again);
    parley_outcome_clear(&o);
    parley_conv_t conv;
    assert_int_equal(parley_db_conv_get(fx.db, "c2", &conv), PARLEY_ENOTFOUND);

    /* another request with the key */
    parley_idem_key_t other = {"alice", "k1", "fp-two", 60000, false};
    assert_int_equal(parley_command_run(fx.db, &c, &other, &run), 0);
    assert_int_equal(run.how, PARLEY_RUN_REUSED);
    assert_false(run.keep);

    /* a refusal: not kept, not recorded (a corrected retry runs) */
    parley_idem_key_t k2 = {"alice", "k2", "fp-three", 60000, false};
    memset(&c, 0, sizeof c);
    c.kind = PARLEY_CMD_CONVERSATION;
    c.u.conv.op = PARLEY_CONV_PATCH;
    c.u.conv.id = "nosuch";
    c.u.conv.user = "alice";
    json_t *patch = json_pack("{s:s}", "title", "x");
    c.u.conv.body = patch;
    assert_int_equal(parley_command_run(fx.db, &c, &k2, &run), 0);
    assert_int_equal(run.how, PARLEY_RUN_APPLIED);
    assert_int_equal(run.out.refusal, PARLEY_ENOTFOUND);
    assert_false(run.keep);
    parley_idem_found_t found;
    char *blob;
    size_t len;
    assert_int_equal(parley_idem_find(fx.db, &k2, &found, &blob, &len), 0);
    assert_int_equal(found, PARLEY_IDEM_NONE);
    json_decref(patch);

    free(first);
    parley_command_run_clear(&run);
    fixture_close(&fx);
}

/* A thread's copies of records: the record while it lives, per owner and
 * key, another fingerprint is REUSED, an expired one is gone. */
static void idem_cache_keeps_live_records_per_thread(void **state)
{
    (void)state;
    const char *blob = NULL;
    size_t len = 0;
    int64_t now = parley_clock_now_ms();
    parley_idem_key_t k = {"alice", "c1", "fp-one", 60000, false};
    assert_int_equal(parley_idem_cached(&k, &blob, &len), PARLEY_IDEM_NONE);
    parley_idem_keep(&k, parley_idem_generation(), now, "O2\n{}\nbody", 10);
    assert_int_equal(parley_idem_cached(&k, &blob, &len), PARLEY_IDEM_SAME);
    assert_int_equal(len, 10);
    assert_memory_equal(blob, "O2\n{}\nbody", 10);
    parley_idem_key_t other_fp = {"alice", "c1", "fp-two", 60000, false};
    assert_int_equal(parley_idem_cached(&other_fp, &blob, &len), PARLEY_IDEM_REUSED);
    parley_idem_key_t other_owner = {"bob", "c1", "fp-one", 60000, false};
    assert_int_equal(parley_idem_cached(&other_owner, &blob, &len), PARLEY_IDEM_NONE);
    /* made 2 s ago: live with a 60 s TTL, expired with a 1 s one */
    parley_idem_key_t old = {"alice", "c2", "fp-one", 1000, false};
    parley_idem_keep(&old, parley_idem_generation(), now - 2000, "x", 1);
    assert_int_equal(parley_idem_cached(&old, &blob, &len), PARLEY_IDEM_NONE);
    old.ttl_ms = 60000;
    assert_int_equal(parley_idem_cached(&old, &blob, &len), PARLEY_IDEM_NONE); /* dropped */
    parley_idem_keep(&old, parley_idem_generation(), now - 2000, "x", 1);
    assert_int_equal(parley_idem_cached(&old, &blob, &len), PARLEY_IDEM_SAME);
    /* forgotten: after a transfer, and a copy read before it */
    uint64_t before = parley_idem_generation();
    parley_idem_forget_all();
    assert_int_equal(parley_idem_cached(&old, &blob, &len), PARLEY_IDEM_NONE);
    parley_idem_keep(&old, before, now, "x", 1);
    assert_int_equal(parley_idem_cached(&old, &blob, &len), PARLEY_IDEM_NONE);
    parley_idem_keep(&old, parley_idem_generation(), now, "x", 1);
    assert_int_equal(parley_idem_cached(&old, &blob, &len), PARLEY_IDEM_SAME);
    /* too large to keep */
    char *big = calloc(1, 64 * 1024);
    assert_non_null(big);
    parley_idem_key_t large = {"alice", "c3", "fp-one", 60000, false};
    parley_idem_keep(&large, parley_idem_generation(), now, big, 64 * 1024);
    assert_int_equal(parley_idem_cached(&large, &blob, &len), PARLEY_IDEM_NONE);
    free(big);
}

static void snapshot_parse_checks_the_body_before_submit(void **state)
{
    (void)state;
    static const struct {
        const char *body; /* the request body */
        int rc;           /* what the parse returns */
        const char *kind; /* parsed: "c" conversation, "d" document */
    } cases[] = {
        {"[]", PARLEY_EINVAL, NULL},
        {"{}", PARLEY_EINVAL, NULL},
        {"{\"source\": \"/v1/conversations/c1\", \"x\": 1}", PARLEY_EINVAL, NULL},
        {"{\"source\": \"/v1/conversations/c1\", \"title\": 3}", PARLEY_EINVAL, NULL},
        {"{\"source\": \"/v1/conversations/c1\", \"public\": 1}", PARLEY_EINVAL, NULL},
        {"{\"source\": \"/v1/conversations/c1\", \"expires_in\": 0}", PARLEY_EINVAL, NULL},
        {"{\"source\": \"/v1/documents/notes\"}", PARLEY_EINVAL, NULL},
        {"{\"source\": \"/v1/documents/no tes/d1\"}", PARLEY_EINVAL, NULL},
        {"{\"source\": \"/v1/streams/x\"}", PARLEY_EINVAL, NULL},
        {"{\"source\": \"/v1/conversations/c1\", \"title\": null}", 0, "c"},
        {"{\"source\": \"/v1/documents/notes/d1\", \"expires_in\": 60}", 0, "d"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t err;
        parley_snapshot_req_t q;
        parley_outcome_t o;
        memset(&q, 0, sizeof q);
        q.body = json_loads(cases[i].body, JSON_DECODE_ANY, &err);
        assert_non_null(q.body);
        int rc = parley_snapshot_parse(&q, &o);
        if (rc != cases[i].rc)
            fail_msg("case %zu %s: rc %d", i, cases[i].body, rc);
        if (rc) {
            assert_int_equal(o.refusal, PARLEY_EINVAL);
            assert_string_equal(o.code, "invalid_snapshot");
            assert_false(q.args.parsed);
        } else if (cases[i].kind[0] == 'c') {
            assert_string_equal(q.args.conversation_id, "c1");
            assert_true(q.args.has_title);
            assert_null(q.args.title);
            assert_int_equal(q.args.expires_s, -1);
        } else {
            assert_string_equal(q.args.collection, "notes");
            assert_string_equal(q.args.document_id, "d1");
            assert_int_equal(q.args.expires_s, 60);
        }
        parley_outcome_clear(&o);
        json_decref(q.body);
    }
}

static void outcome_record_round_trip_keeps_body_and_stream_fields(void **state)
{
    (void)state;
    parley_outcome_t o, back;
    char *blob;
    size_t len;
    parley_outcome_init(&o);
    json_error_t err;
    const char *text = "{\"z\":0.1,\"a\":[1,\"x\\u0000y\",null],\"m\":{\"b\":true,\"a\":1e300}}";
    parley_outcome_answer(&o, PARLEY_DONE_OK, json_loads(text, JSON_ALLOW_NUL, &err));
    o.echo.has_offset = true;
    o.echo.next = 42;
    o.echo.closed = true;
    o.echo.has_epoch = o.echo.has_seq = true;
    o.echo.epoch = 3;
    o.echo.seq = 9007199254740991ULL;
    o.echo.changes = 5;
    snprintf(o.meta.content_type, sizeof o.meta.content_type, "text/plain; charset=utf-8");
    o.meta.ttl_s = 60;
    o.meta.expires_ms = -1;
    assert_int_equal(parley_outcome_encode(&o, &blob, &len), 0);
    assert_true(parley_outcome_is_record(blob, len));
    assert_int_equal(parley_outcome_decode(blob, len, &back), 0);
    char *a = json_dumps(o.body, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = json_dumps(back.body, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_string_equal(a, b);
    assert_int_equal(back.done, PARLEY_DONE_OK);
    assert_true(back.echo.has_offset && back.echo.next == 42 && back.echo.closed);
    assert_true(back.echo.has_epoch && back.echo.epoch == 3);
    assert_true(back.echo.has_seq && back.echo.seq == 9007199254740991ULL);
    assert_false(back.echo.has_gap);
    assert_int_equal(back.echo.changes, 5);
    assert_string_equal(back.meta.content_type, "text/plain; charset=utf-8");
    assert_int_equal(back.meta.ttl_s, 60);
    assert_int_equal(back.meta.expires_ms, -1);
    free(a);
    free(b);
    free(blob);
    parley_outcome_clear(&back);

    /* no body, a gap: the fields that are there, and none that are not */
    parley_outcome_clear(&o);
    parley_outcome_init(&o);
    parley_outcome_answer(&o, PARLEY_DONE_EMPTY, NULL);
    o.echo.has_gap = true;
    o.echo.expected = 1;
    o.echo.received = 2;
    assert_int_equal(parley_outcome_encode(&o, &blob, &len), 0);
    assert_int_equal(parley_outcome_decode(blob, len, &back), 0);
    assert_null(back.body);
    assert_int_equal(back.done, PARLEY_DONE_EMPTY);
    assert_true(back.echo.has_gap && back.echo.expected == 1 && back.echo.received == 2);
    assert_false(back.echo.has_offset || back.echo.has_epoch || back.echo.has_seq);
    free(blob);
    parley_outcome_clear(&back);

    /* a refusal is never recorded */
    parley_outcome_refuse(&o, PARLEY_ENOTFOUND, "not_found", "no such thing", NULL);
    assert_int_equal(parley_outcome_encode(&o, &blob, &len), PARLEY_EINVAL);
    parley_outcome_clear(&o);
}

static void outcome_record_is_not_a_stored_reply(void **state)
{
    (void)state;
    /* A reply stored by the earlier release (a stream append's). */
    static const char legacy[] = "200\n\n88\nStream-Next-Offset: "
                                 "0000000000000000_0000000000000005\nProducer-Epoch: 0\n"
                                 "Producer-Seq: 0\n";
    parley_outcome_t o;
    assert_false(parley_outcome_is_record(legacy, sizeof legacy - 1));
    assert_int_equal(parley_outcome_decode(legacy, sizeof legacy - 1, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
    assert_int_equal(parley_outcome_decode("O1\n{\"done\":9}", 13, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
    assert_int_equal(parley_outcome_decode("O1\nnot json", 11, &o), PARLEY_EINVAL);
    parley_outcome_clear(&o);
}

/* A record whose body is kept as canonical text (O2): decode_text hands
 * the text back unparsed, byte for byte what the answer carries;
 * decode parses it; the stream fields survive; no body is no text. */
static void outcome_record_text_body_is_the_canonical_answer(void **state)
{
    (void)state;
    parley_outcome_t o, back;
    char *blob, *canon;
    size_t len, canon_len, body_len;
    const char *body;
    json_error_t err;
    parley_outcome_init(&o);
    parley_outcome_answer(
        &o, PARLEY_DONE_CREATED,
        json_loads("{\"z\":0.1,\"a\":[1,\"x\\u0000y\\n\",null],\"m\":{\"b\":true}}", JSON_ALLOW_NUL,
                   &err));
    o.echo.has_seq = true;
    o.echo.seq = 7;
    snprintf(o.meta.content_type, sizeof o.meta.content_type, "application/json");
    assert_int_equal(parley_canonjson_dump(o.body, &canon, &canon_len), 0);
    assert_int_equal(parley_outcome_encode_text(&o, &blob, &len), 0);
    assert_true(parley_outcome_is_record(blob, len));

    assert_int_equal(parley_outcome_decode_text(blob, len, &back, &body, &body_len), 0);
    assert_null(back.body);
    assert_int_equal(body_len, canon_len);
    assert_memory_equal(body, canon, canon_len);
    assert_int_equal(back.done, PARLEY_DONE_CREATED);
    assert_true(back.echo.has_seq && back.echo.seq == 7);
    assert_string_equal(back.meta.content_type, "application/json");
    assert_true(parley_outcome_text_body(blob, len, &body, &body_len));
    assert_memory_equal(body, canon, canon_len);
    parley_outcome_clear(&back);

    /* The head's start alone: the same done and body text. */
    assert_true(parley_outcome_text_done(blob, len, &back, &body, &body_len));
    assert_int_equal(back.done, PARLEY_DONE_CREATED);
    assert_int_equal(back.refusal, 0);
    assert_int_equal(body_len, canon_len);
    assert_memory_equal(body, canon, canon_len);
    parley_outcome_clear(&back);

    assert_int_equal(parley_outcome_decode(blob, len, &back), 0);
    char *again;
    size_t again_len;
    assert_int_equal(parley_canonjson_dump(back.body, &again, &again_len), 0);
    assert_int_equal(again_len, canon_len);
    assert_memory_equal(again, canon, canon_len);
    free(again);
    parley_outcome_clear(&back);
    free(blob);

    /* An O1 record read with decode_text: the body comes back parsed. */
    assert_int_equal(parley_outcome_encode(&o, &blob, &len), 0);
    assert_int_equal(parley_outcome_decode_text(blob, len, &back, &body, &body_len), 0);
    assert_null(body);
    assert_true(json_is_object(back.body));
    assert_false(parley_outcome_text_body(blob, len, &body, &body_len));
    assert_false(parley_outcome_text_done(blob, len, &back, &body, &body_len));
    parley_outcome_clear(&back);
    free(blob);

    /* No body: no text. */
    parley_outcome_answer(&o, PARLEY_DONE_EMPTY, NULL);
    assert_int_equal(parley_outcome_encode_text(&o, &blob, &len), 0);
    assert_int_equal(parley_outcome_decode_text(blob, len, &back, &body, &body_len), 0);
    assert_null(body);
    assert_null(back.body);
    assert_false(parley_outcome_text_body(blob, len, &body, &body_len));
    assert_false(parley_outcome_text_done(blob, len, &back, &body, &body_len));
    free(blob);
    free(canon);
    parley_outcome_clear(&back);
    parley_outcome_clear(&o);
    assert_int_equal(parley_outcome_decode_text("O2\n{}", 6, &back, &body, &body_len),
                     PARLEY_EINVAL);
    parley_outcome_clear(&back);
    /* Heads that do not start as encode_text writes them: decoded whole. */
    static const char *odd[] = {"O2\n{}\n{}", "O2\n{\"done\":7,\"echo\":{}}\n{}",
                                "O2\n{\"done\":1}\n{}", "O2\n{\"done\":1,\"echo\"\n{}",
                                "O1\n{\"done\":1,\"echo\":{}}\n{}"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
        assert_false(parley_outcome_text_done(odd[i], strlen(odd[i]), &back, &body, &body_len));
}

/* An O2 record of an outcome without stream fields (a message post's):
 * its object is written directly, the same bytes as the dumped one, and
 * the body is the rule's own text when it gave one (answer_text), not a
 * second dump; a body changed afterwards drops that text. */
static void outcome_record_without_stream_fields_same_bytes(void **state)
{
    (void)state;
    parley_outcome_t o, back;
    char *blob, *blob2;
    size_t len, len2, body_len;
    const char *body;
    json_error_t err;
    static const char head[] =
        "O2\n{\"done\":1,\"echo\":{\"changes\":0},\"meta\":{\"content_type\":"
        "\"\",\"ttl_s\":0,\"expires_ms\":0}}\n";
    parley_outcome_init(&o);
    parley_outcome_answer(&o, PARLEY_DONE_CREATED, json_loads("{\"b\":1,\"a\":\"x\"}", 0, &err));
    assert_int_equal(parley_outcome_encode_text(&o, &blob, &len), 0);
    assert_int_equal(len, sizeof head - 1 + strlen("{\"a\":\"x\",\"b\":1}"));
    assert_memory_equal(blob, head, sizeof head - 1);
    assert_memory_equal(blob + sizeof head - 1, "{\"a\":\"x\",\"b\":1}", len - (sizeof head - 1));
    /* the dumped object (O1) agrees on every member */
    assert_int_equal(parley_outcome_encode(&o, &blob2, &len2), 0);
    assert_memory_equal(blob2 + 3,
                        "{\"done\":1,\"echo\":{\"changes\":0},\"meta\":{\"content_type\":"
                        "\"\",\"ttl_s\":0,\"expires_ms\":0},\"body\":",
                        strlen("{\"done\":1,\"echo\":{\"changes\":0},\"meta\":{\"content_type\":"
                               "\"\",\"ttl_s\":0,\"expires_ms\":0},\"body\":"));
    free(blob2);
    assert_int_equal(parley_outcome_decode_text(blob, len, &back, &body, &body_len), 0);
    assert_int_equal(back.done, PARLEY_DONE_CREATED);
    assert_int_equal(back.echo.changes, 0);
    assert_string_equal(back.meta.content_type, "");
    parley_outcome_clear(&back);
    free(blob);

    /* The rule's own text is what the record holds. */
    char *text = strdup("{\"a\":\"x\",\"b\":1}");
    parley_outcome_answer_text(&o, PARLEY_DONE_CREATED,
                               json_loads("{\"b\":1,\"a\":\"x\"}", 0, &err), text, strlen(text));
    assert_ptr_equal(o.body_text, text);
    assert_int_equal(parley_outcome_encode_text(&o, &blob, &len), 0);
    assert_memory_equal(blob + sizeof head - 1, "{\"a\":\"x\",\"b\":1}", len - (sizeof head - 1));
    free(blob);
    /* answered again with another body: the old text is gone */
    parley_outcome_answer(&o, PARLEY_DONE_CREATED, json_loads("{\"c\":2}", 0, &err));
    assert_null(o.body_text);
    assert_int_equal(parley_outcome_encode_text(&o, &blob, &len), 0);
    assert_memory_equal(blob + sizeof head - 1, "{\"c\":2}", len - (sizeof head - 1));
    free(blob);

    /* With a stream field the object is dumped, the field in it. */
    o.echo.changes = 3;
    snprintf(o.meta.content_type, sizeof o.meta.content_type, "text/plain; a=\"b\"");
    assert_int_equal(parley_outcome_encode_text(&o, &blob, &len), 0);
    assert_int_equal(parley_outcome_decode_text(blob, len, &back, &body, &body_len), 0);
    assert_string_equal(back.meta.content_type, "text/plain; a=\"b\"");
    assert_int_equal(back.echo.changes, 3);
    parley_outcome_clear(&back);
    free(blob);
    parley_outcome_clear(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(command_apply_each_kind_reaches_its_rule),
        cmocka_unit_test(command_run_records_replays_and_refuses_reuse),
        cmocka_unit_test(snapshot_parse_checks_the_body_before_submit),
        cmocka_unit_test(outcome_record_round_trip_keeps_body_and_stream_fields),
        cmocka_unit_test(outcome_record_is_not_a_stored_reply),
        cmocka_unit_test(outcome_record_text_body_is_the_canonical_answer),
        cmocka_unit_test(idem_cache_keeps_live_records_per_thread),
        cmocka_unit_test(outcome_record_without_stream_fields_same_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
