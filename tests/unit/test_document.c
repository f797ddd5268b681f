/*
 * test_document.c — unit tests for core/document.c, on a real SQLite store
 * (a fresh temporary directory per case).
 *
 *   1. PUT creates (version 1, CREATED) then replaces (version + 1, OK,
 *      the old members gone); PATCH merges (RFC 7386) into version + 1;
 *      each change is one event in the owner's feed and the feed of all,
 *      whose readers wake;
 *   2. If-Match and If-None-Match, on a live and on a missing document:
 *      a table of every op with the refusal (and the current document in
 *      the body when there is one) or the success, and a refusal changes
 *      nothing and emits nothing;
 *   3. delete leaves a tombstone that keeps the version: PATCH and DELETE
 *      on it are not found, a re-create continues the version;
 *   4. a PUT or a merge patch that would make the document larger than
 *      max_bytes is refused and stores nothing; a patch or a PUT that does
 *      not leave an object is refused;
 *   5. documents live in their owner's namespace: another user's request
 *      for the same collection and id never reaches them.
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

#include <cmocka.h>
#include <jansson.h>

#include "core/document.h"
#include "core/feed.h"
#include "core/stream.h"
#include "parley/parley.h"
#include "store/store.h"
#include "store_fixture.h"
#include "util/buf.h"

typedef store_fixture_t fixture_t;

/* A request of op on owner's document notes/<id>; body is JSON text or
 * NULL (the caller decrefs req.body). */
static parley_doc_req_t request(parley_doc_op_t op, const char *owner, const char *id,
                                const char *body)
{
    parley_doc_req_t q;
    json_error_t jerr;
    memset(&q, 0, sizeof q);
    q.op = op;
    q.owner = owner;
    q.collection = "notes";
    q.id = id;
    if (body) {
        q.body = json_loads(body, JSON_DECODE_ANY, &jerr);
        assert_non_null(q.body);
    }
    return q;
}

/* Apply q in its own transaction; the outcome in *o (the caller clears it). */
static void apply(fixture_t *fx, parley_doc_req_t *q, parley_outcome_t *o)
{
    parley_outcome_init(o);
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_document_apply(fx->db, q, o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    json_decref(q->body);
    q->body = NULL;
}

/* Apply and expect success: done, and the version (0: no body). */
static void apply_ok(fixture_t *fx, parley_doc_req_t q, parley_done_t done, int64_t version)
{
    parley_outcome_t o;
    apply(fx, &q, &o);
    if (o.refusal)
        fail_msg("refused: %s (%s)", o.error, parley_strerror(o.refusal));
    assert_int_equal(o.done, done);
    if (version)
        assert_int_equal(json_integer_value(json_object_get(o.body, "version")), version);
    else
        assert_null(o.body);
    parley_outcome_clear(&o);
}

/* Apply and expect the refusal err with code. */
static void apply_refused(fixture_t *fx, parley_doc_req_t q, int err, const char *code)
{
    parley_outcome_t o;
    apply(fx, &q, &o);
    if (o.refusal != err)
        fail_msg("refusal %d (%s), expected %s", o.refusal, parley_strerror(o.refusal),
                 parley_strerror(err));
    assert_string_equal(o.code, code);
    assert_non_null(o.error);
    assert_true(parley_wakeset_empty(&o.wake));
    parley_outcome_clear(&o);
}

/* owner's stored row of notes/id: its version (0 if none), whether it is
 * a tombstone, and its data as canonical JSON text into data (if not NULL). */
static int64_t stored(fixture_t *fx, const char *owner, const char *id, bool *deleted, char *data,
                      size_t cap)
{
    parley_doc_t d;
    memset(&d, 0, sizeof d);
    int rc = parley_db_doc_get(fx->db, owner, "notes", id, &d);
    if (rc == PARLEY_ENOTFOUND)
        return 0;
    assert_int_equal(rc, 0);
    if (deleted)
        *deleted = d.deleted;
    if (data)
        snprintf(data, cap, "%s", d.data ? d.data : "");
    int64_t v = d.version;
    parley_doc_clear(&d);
    return v;
}

/* The events of the feed of user (NULL: all) as "type id version" lines
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
        json_t *doc = json_object_get(e, "document");
        size_t n = strlen(out);
        assert_string_equal(json_string_value(json_object_get(doc, "collection")), "notes");
        assert_int_equal(
            strlen(json_string_value(json_object_get(json_object_get(e, "data"), "checksum"))), 64);
        snprintf(out + n, cap - n, "%s%s %s %s %lld", n ? "; " : "",
                 json_string_value(json_object_get(e, "user")),
                 json_string_value(json_object_get(e, "type")),
                 json_string_value(json_object_get(doc, "id")),
                 (long long)json_integer_value(json_object_get(doc, "version")));
    }
    json_decref(events);
    parley_buf_free(&buf);
}

/* True if the wake set holds the stream at path. */
static bool wakes(fixture_t *fx, const parley_wakeset_t *w, const char *path)
{
    parley_stream_t st;
    assert_int_equal(parley_db_stream_get(fx->db, path, &st), 0);
    for (int i = 0; i < w->n; i++)
        if (w->ids[i] == st.id)
            return true;
    return w->all;
}

/* ---- 1. create, replace, merge patch ------------------------------------------- */

static void document_put_creates_then_replaces(void **state)
{
    fixture_t *fx = *state;
    char data[256], before[80], feed[512];
    parley_outcome_t o;
    parley_doc_req_t q = request(PARLEY_DOC_PUT, "alice", "n1", "{\"b\":2,\"a\":\"x\"}");
    apply(fx, &q, &o);
    assert_int_equal(o.refusal, 0);
    assert_int_equal(o.done, PARLEY_DONE_CREATED);
    assert_string_equal(json_string_value(json_object_get(o.body, "id")), "n1");
    assert_string_equal(json_string_value(json_object_get(o.body, "collection")), "notes");
    assert_int_equal(json_integer_value(json_object_get(o.body, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o.body, "data"), "b")), 2);
    snprintf(before, sizeof before, "%s", json_string_value(json_object_get(o.body, "checksum")));
    assert_int_equal(strlen(before), 64);
    /* Both feeds' readers wake. */
    assert_true(wakes(fx, &o.wake, "_parley/feed/u/alice"));
    assert_true(wakes(fx, &o.wake, "_parley/feed/all"));
    parley_outcome_clear(&o);
    assert_int_equal(stored(fx, "alice", "n1", NULL, data, sizeof data), 1);
    assert_string_equal(data, "{\"a\":\"x\",\"b\":2}"); /* canonical: sorted members */

    q = request(PARLEY_DOC_PUT, "alice", "n1", "{\"c\":true}");
    apply(fx, &q, &o);
    assert_int_equal(o.refusal, 0);
    assert_int_equal(o.done, PARLEY_DONE_OK);
    assert_int_equal(json_integer_value(json_object_get(o.body, "version")), 2);
    assert_string_not_equal(json_string_value(json_object_get(o.body, "checksum")), before);
    parley_outcome_clear(&o);
    assert_int_equal(stored(fx, "alice", "n1", NULL, data, sizeof data), 2);
    assert_string_equal(data, "{\"c\":true}"); /* replaced, not merged */

    feed_brief(fx, "alice", feed, sizeof feed);
    assert_string_equal(feed, "alice document.created n1 1; alice document.updated n1 2");
    feed_brief(fx, NULL, feed, sizeof feed);
    assert_string_equal(feed, "alice document.created n1 1; alice document.updated n1 2");
}

static void document_patch_merges_into_next_version(void **state)
{
    fixture_t *fx = *state;
    char data[256], feed[512];
    apply_ok(fx, request(PARLEY_DOC_PUT, "alice", "n1", "{\"a\":1,\"b\":{\"c\":2,\"k\":[1]}}"),
             PARLEY_DONE_CREATED, 1);
    apply_ok(fx,
             request(PARLEY_DOC_PATCH, "alice", "n1", "{\"b\":{\"c\":null,\"d\":3},\"e\":\"new\"}"),
             PARLEY_DONE_OK, 2);
    assert_int_equal(stored(fx, "alice", "n1", NULL, data, sizeof data), 2);
    assert_string_equal(data, "{\"a\":1,\"b\":{\"d\":3,\"k\":[1]},\"e\":\"new\"}");
    /* An empty patch is still a change: a new version. */
    apply_ok(fx, request(PARLEY_DOC_PATCH, "alice", "n1", "{}"), PARLEY_DONE_OK, 3);
    feed_brief(fx, "alice", feed, sizeof feed);
    assert_string_equal(feed, "alice document.created n1 1; alice document.updated n1 2; "
                              "alice document.updated n1 3");
}

/* ---- 2. preconditions ------------------------------------------------------------- */

enum { IM_NONE, IM_MATCH, IM_STALE, IM_ANY, INM_ANY }; /* the precondition of a case */

static void document_preconditions_table(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        bool live;          /* the document exists (version 2) */
        parley_doc_op_t op; /* the request */
        int cond;           /* its precondition */
        int refusal;        /* 0: done */
        bool current;       /* the refusal carries the current document */
        parley_done_t done; /* done: how */
        int64_t version;    /* the stored version after */
    } cases[] = {
        {true, PARLEY_DOC_PUT, IM_MATCH, 0, false, PARLEY_DONE_OK, 3},
        {true, PARLEY_DOC_PUT, IM_ANY, 0, false, PARLEY_DONE_OK, 3},
        {true, PARLEY_DOC_PUT, IM_STALE, PARLEY_EPRECOND, true, 0, 2},
        {true, PARLEY_DOC_PUT, INM_ANY, PARLEY_EPRECOND, true, 0, 2},
        {true, PARLEY_DOC_PATCH, IM_MATCH, 0, false, PARLEY_DONE_OK, 3},
        {true, PARLEY_DOC_PATCH, IM_STALE, PARLEY_EPRECOND, true, 0, 2},
        {true, PARLEY_DOC_DELETE, IM_MATCH, 0, false, PARLEY_DONE_EMPTY, 3},
        {true, PARLEY_DOC_DELETE, IM_ANY, 0, false, PARLEY_DONE_EMPTY, 3},
        {true, PARLEY_DOC_DELETE, IM_STALE, PARLEY_EPRECOND, true, 0, 2},
        {false, PARLEY_DOC_PUT, IM_NONE, 0, false, PARLEY_DONE_CREATED, 1},
        {false, PARLEY_DOC_PUT, INM_ANY, 0, false, PARLEY_DONE_CREATED, 1},
        {false, PARLEY_DOC_PUT, IM_MATCH, PARLEY_EPRECOND, false, 0, 0},
        {false, PARLEY_DOC_PUT, IM_ANY, PARLEY_EPRECOND, false, 0, 0},
        {false, PARLEY_DOC_PATCH, IM_NONE, PARLEY_ENOTFOUND, false, 0, 0},
        {false, PARLEY_DOC_PATCH, IM_MATCH, PARLEY_ENOTFOUND, false, 0, 0},
        {false, PARLEY_DOC_DELETE, IM_NONE, PARLEY_ENOTFOUND, false, 0, 0},
        {false, PARLEY_DOC_DELETE, IM_ANY, PARLEY_ENOTFOUND, false, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[16], feed_before[512], feed_after[512];
        parley_outcome_t o;
        snprintf(id, sizeof id, "d%zu", i);
        if (cases[i].live) {
            apply_ok(fx, request(PARLEY_DOC_PUT, "alice", id, "{\"v\":1}"), PARLEY_DONE_CREATED, 1);
            apply_ok(fx, request(PARLEY_DOC_PUT, "alice", id, "{\"v\":2}"), PARLEY_DONE_OK, 2);
        }
        feed_brief(fx, "alice", feed_before, sizeof feed_before);
        parley_doc_req_t q = request(cases[i].op, "alice", id,
                                     cases[i].op == PARLEY_DOC_DELETE ? NULL : "{\"v\":9}");
        q.has_if_match =
            cases[i].cond == IM_MATCH || cases[i].cond == IM_STALE || cases[i].cond == IM_ANY;
        q.if_match_any = cases[i].cond == IM_ANY;
        q.if_match = cases[i].cond == IM_MATCH ? 2 : cases[i].cond == IM_STALE ? 1 : 0;
        q.if_none_match_any = cases[i].cond == INM_ANY;
        apply(fx, &q, &o);
        if (o.refusal != cases[i].refusal)
            fail_msg("case %zu: refusal %s, expected %s", i, parley_strerror(o.refusal),
                     cases[i].refusal ? parley_strerror(cases[i].refusal) : "none");
        if (cases[i].refusal) {
            assert_string_equal(o.code, cases[i].refusal == PARLEY_EPRECOND ? "precondition_failed"
                                                                            : "not_found");
            if (cases[i].current) {
                if (json_integer_value(json_object_get(o.body, "version")) != 2)
                    fail_msg("case %zu: the refusal does not carry the current document", i);
                assert_int_equal(
                    json_integer_value(json_object_get(json_object_get(o.body, "data"), "v")), 2);
            } else {
                assert_null(o.body);
            }
            feed_brief(fx, "alice", feed_after, sizeof feed_after);
            if (strcmp(feed_before, feed_after) != 0)
                fail_msg("case %zu: a refusal emitted an event", i);
        } else if (o.done != cases[i].done) {
            fail_msg("case %zu: done %d, expected %d", i, o.done, cases[i].done);
        }
        parley_outcome_clear(&o);
        bool deleted = false;
        if (stored(fx, "alice", id, &deleted, NULL, 0) != cases[i].version)
            fail_msg("case %zu: stored version is not %lld", i, (long long)cases[i].version);
        assert_int_equal(deleted, cases[i].done == PARLEY_DONE_EMPTY && !cases[i].refusal);
    }
}

/* ---- 3. tombstones ----------------------------------------------------------------- */

static void document_delete_tombstone_keeps_version(void **state)
{
    fixture_t *fx = *state;
    char data[64], feed[512];
    bool deleted = false;
    apply_ok(fx, request(PARLEY_DOC_PUT, "alice", "n1", "{\"a\":1}"), PARLEY_DONE_CREATED, 1);
    apply_ok(fx, request(PARLEY_DOC_PATCH, "alice", "n1", "{\"a\":2}"), PARLEY_DONE_OK, 2);
    apply_ok(fx, request(PARLEY_DOC_DELETE, "alice", "n1", NULL), PARLEY_DONE_EMPTY, 0);
    assert_int_equal(stored(fx, "alice", "n1", &deleted, NULL, 0), 3);
    assert_true(deleted);

    /* Gone for every op but a create, and no precondition holds on it. */
    apply_refused(fx, request(PARLEY_DOC_PATCH, "alice", "n1", "{\"a\":3}"), PARLEY_ENOTFOUND,
                  "not_found");
    apply_refused(fx, request(PARLEY_DOC_DELETE, "alice", "n1", NULL), PARLEY_ENOTFOUND,
                  "not_found");
    parley_doc_req_t q = request(PARLEY_DOC_PUT, "alice", "n1", "{\"a\":3}");
    q.has_if_match = true;
    q.if_match = 3; /* the tombstone's own version */
    apply_refused(fx, q, PARLEY_EPRECOND, "precondition_failed");
    assert_int_equal(stored(fx, "alice", "n1", &deleted, NULL, 0), 3);
    assert_true(deleted);

    /* A re-create continues the version: no version a client may hold
     * from before the delete names the new document. */
    apply_ok(fx, request(PARLEY_DOC_PUT, "alice", "n1", "{\"b\":1}"), PARLEY_DONE_CREATED, 4);
    assert_int_equal(stored(fx, "alice", "n1", &deleted, data, sizeof data), 4);
    assert_false(deleted);
    assert_string_equal(data, "{\"b\":1}");
    apply_ok(fx, request(PARLEY_DOC_DELETE, "alice", "n1", NULL), PARLEY_DONE_EMPTY, 0);
    apply_ok(fx, request(PARLEY_DOC_PUT, "alice", "n1", "{}"), PARLEY_DONE_CREATED, 6);

    feed_brief(fx, "alice", feed, sizeof feed);
    assert_string_equal(feed, "alice document.created n1 1; alice document.updated n1 2; "
                              "alice document.deleted n1 3; alice document.created n1 4; "
                              "alice document.deleted n1 5; alice document.created n1 6");
}

/* ---- 4. size and shape ------------------------------------------------------------- */

static void document_too_big_refused_keeps_document(void **state)
{
    fixture_t *fx = *state;
    char big[200], patch[256], data[64], feed[256];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    parley_doc_req_t q = request(PARLEY_DOC_PUT, "alice", "n1", "{\"a\":1}");
    q.max_bytes = 64;
    apply_ok(fx, q, PARLEY_DONE_CREATED, 1);

    /* The patch itself is small enough; the merged document is not. */
    snprintf(patch, sizeof patch, "{\"b\":\"%.51s\"}", big);
    q = request(PARLEY_DOC_PATCH, "alice", "n1", patch);
    q.max_bytes = 64;
    apply_refused(fx, q, PARLEY_ETOOBIG, "payload_too_large");
    assert_int_equal(stored(fx, "alice", "n1", NULL, data, sizeof data), 1);
    assert_string_equal(data, "{\"a\":1}");

    snprintf(patch, sizeof patch, "{\"b\":\"%s\"}", big);
    q = request(PARLEY_DOC_PUT, "alice", "n1", patch);
    q.max_bytes = 64;
    apply_refused(fx, q, PARLEY_ETOOBIG, "payload_too_large");
    q = request(PARLEY_DOC_PUT, "alice", "n2", patch); /* a create too */
    q.max_bytes = 64;
    apply_refused(fx, q, PARLEY_ETOOBIG, "payload_too_large");
    assert_int_equal(stored(fx, "alice", "n2", NULL, NULL, 0), 0);

    /* Exactly at the limit is accepted: {"a":1,"b":"..."} of 64 bytes. */
    snprintf(patch, sizeof patch, "{\"b\":\"%.50s\"}", big);
    q = request(PARLEY_DOC_PATCH, "alice", "n1", patch);
    q.max_bytes = 64;
    apply_ok(fx, q, PARLEY_DONE_OK, 2);

    feed_brief(fx, "alice", feed, sizeof feed);
    assert_string_equal(feed, "alice document.created n1 1; alice document.updated n1 2");
}

static void document_not_an_object_refused(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        parley_doc_op_t op; /* PUT or PATCH */
        const char *body;   /* the body */
    } cases[] = {
        {PARLEY_DOC_PUT, "[1,2]"}, {PARLEY_DOC_PUT, "\"text\""}, {PARLEY_DOC_PUT, "null"},
        {PARLEY_DOC_PATCH, "5"},   {PARLEY_DOC_PATCH, "[]"},     {PARLEY_DOC_PATCH, "null"},
        {PARLEY_DOC_PUT, "7"},
    };
    apply_ok(fx, request(PARLEY_DOC_PUT, "alice", "n1", "{\"a\":1}"), PARLEY_DONE_CREATED, 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_outcome_t o;
        parley_doc_req_t q = request(cases[i].op, "alice", i % 2 ? "n1" : "fresh", cases[i].body);
        if (cases[i].op == PARLEY_DOC_PATCH)
            q.id = "n1";
        apply(fx, &q, &o);
        if (o.refusal != PARLEY_EINVAL)
            fail_msg("case %zu (%s): not refused as invalid", i, cases[i].body);
        assert_string_equal(o.code, "invalid_document");
        parley_outcome_clear(&o);
    }
    char data[64];
    assert_int_equal(stored(fx, "alice", "n1", NULL, data, sizeof data), 1);
    assert_string_equal(data, "{\"a\":1}");
    assert_int_equal(stored(fx, "alice", "fresh", NULL, NULL, 0), 0);
}

/* ---- 5. namespaces ------------------------------------------------------------------ */

static void document_other_owner_not_found(void **state)
{
    fixture_t *fx = *state;
    char data[64], feed[256];
    apply_ok(fx, request(PARLEY_DOC_PUT, "alice", "n1", "{\"secret\":1}"), PARLEY_DONE_CREATED, 1);
    apply_ok(fx, request(PARLEY_DOC_PUT, "alice", "n1", "{\"secret\":2}"), PARLEY_DONE_OK, 2);

    apply_refused(fx, request(PARLEY_DOC_PATCH, "mallory", "n1", "{\"secret\":null}"),
                  PARLEY_ENOTFOUND, "not_found");
    apply_refused(fx, request(PARLEY_DOC_DELETE, "mallory", "n1", NULL), PARLEY_ENOTFOUND,
                  "not_found");
    parley_doc_req_t q = request(PARLEY_DOC_PUT, "mallory", "n1", "{\"x\":1}");
    q.has_if_match = true;
    q.if_match = 2; /* alice's version says nothing about mallory's namespace */
    apply_refused(fx, q, PARLEY_EPRECOND, "precondition_failed");

    /* A PUT creates mallory's own document, version 1, beside alice's. */
    apply_ok(fx, request(PARLEY_DOC_PUT, "mallory", "n1", "{\"x\":1}"), PARLEY_DONE_CREATED, 1);
    assert_int_equal(stored(fx, "alice", "n1", NULL, data, sizeof data), 2);
    assert_string_equal(data, "{\"secret\":2}");
    assert_int_equal(stored(fx, "mallory", "n1", NULL, data, sizeof data), 1);
    assert_string_equal(data, "{\"x\":1}");

    /* Each event goes to its owner's feed only; the feed of all has both. */
    feed_brief(fx, "alice", feed, sizeof feed);
    assert_string_equal(feed, "alice document.created n1 1; alice document.updated n1 2");
    feed_brief(fx, "mallory", feed, sizeof feed);
    assert_string_equal(feed, "mallory document.created n1 1");
    feed_brief(fx, NULL, feed, sizeof feed);
    assert_string_equal(feed, "alice document.created n1 1; alice document.updated n1 2; "
                              "mallory document.created n1 1");
}

#define DOC_TEST(f) cmocka_unit_test_setup_teardown(f, store_fixture_setup, store_fixture_teardown)

int main(void)
{
    const struct CMUnitTest document_tests[] = {
        DOC_TEST(document_put_creates_then_replaces),
        DOC_TEST(document_patch_merges_into_next_version),
        DOC_TEST(document_preconditions_table),
        DOC_TEST(document_delete_tombstone_keeps_version),
        DOC_TEST(document_too_big_refused_keeps_document),
        DOC_TEST(document_not_an_object_refused),
        DOC_TEST(document_other_owner_not_found),
    };
    return cmocka_run_group_tests_name("document", document_tests, NULL, NULL);
}
