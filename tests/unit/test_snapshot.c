/*
 * test_snapshot.c — unit tests for core/snapshot.c, on a real SQLite store
 * (a fresh temporary directory per case).
 *
 *   1. a snapshot pins its content: a conversation snapshot keeps the
 *      conversation object and exactly the messages it had, through new
 *      messages, a patch and the conversation's delete; a document
 *      snapshot keeps the version it was taken at, through a replace and
 *      a delete;
 *   2. each snapshot of a conversation pins its own fork point, and
 *      revoking one leaves the others; revoking the last fork of a deleted
 *      conversation's log frees the log;
 *   3. create bodies: every refusal (invalid_snapshot, with details.field
 *      for an unknown field) stores nothing; a source that is missing or
 *      not the caller's is not found, the admin's reaches every user's
 *      conversation;
 *   4. expiry: past expires_at the maintenance step frees the fork and the
 *      content, the row stays (reads answer "expired"); a snapshot without
 *      expiry, or not yet expired, is left alone;
 *   5. revoke: only the owner or the admin; the row and the fork go;
 *   6. who may read: parley_snapshot_is_owner (owner, admin, never an
 *      anonymous caller) and parley_snapshot_is_expired, the two
 *      predicates the API's read rule (public, or owner) is built on;
 *   7. snapshot.created and snapshot.deleted go to the owner's feed.
 *
 * Outcomes are read through verdict(): a refusal (PARLEY_E*) or how the
 * rule succeeded (core/outcome.h).
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

#include "core/conversation.h"
#include "core/document.h"
#include "core/feed.h"
#include "core/message.h"
#include "core/snapshot.h"
#include "core/stream.h"
#include "core/turn.h"
#include "parley/parley.h"
#include "store/store.h"
#include "store_fixture.h"
#include "util/buf.h"
#include "util/clock.h"

typedef store_fixture_t fixture_t;

/* ---- what a rule decided ------------------------------------------------------------ */

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

#define assert_done(o, how)                                                                        \
    do {                                                                                           \
        verdict_t v_ = verdict(o);                                                                 \
        if (v_.refusal)                                                                            \
            fail_msg("refused (%s): %s", parley_strerror(v_.refusal), (o)->error);                 \
        assert_int_equal(v_.done, (how));                                                          \
    } while (0)

#define assert_refused(o, err, api_code)                                                           \
    do {                                                                                           \
        verdict_t v_ = verdict(o);                                                                 \
        if (v_.refusal != (err))                                                                   \
            fail_msg("refusal %s, expected %s", v_.refusal ? parley_strerror(v_.refusal) : "none", \
                     parley_strerror(err));                                                        \
        assert_string_equal((o)->code, (api_code));                                                \
    } while (0)

/* ---- fixture --------------------------------------------------------------------------- */

/* Create a conversation of user titled title; its id into id. */
static void create_conv(fixture_t *fx, const char *user, const char *title, char *id)
{
    parley_conv_req_t cr;
    parley_outcome_t o;
    store_fixture_id(fx, id);
    memset(&cr, 0, sizeof cr);
    cr.op = PARLEY_CONV_CREATE;
    cr.id = id;
    cr.user = user;
    cr.body = json_pack("{s:s}", "title", title);
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_conversation_apply(fx->db, &cr, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_done(&o, PARLEY_DONE_CREATED);
    parley_outcome_clear(&o);
    json_decref(cr.body);
}

/* Post a user message with content text to conv as user. */
static void post(fixture_t *fx, const char *conv, const char *user, const char *text)
{
    parley_turn_post_req_t req;
    parley_outcome_t o;
    char mid[PARLEY_ROW_ID_MAX + 1];
    json_t *body = json_pack("{s:s, s:s}", "role", "user", "content", text);
    store_fixture_id(fx, mid);
    memset(&req, 0, sizeof req);
    assert_int_equal(parley_message_parse(body, 3, &req.message, &o), 0);
    req.conversation_id = conv;
    req.user = user;
    req.message_id = mid;
    req.session_id = "unused";
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_turn_post(fx->db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_done(&o, PARLEY_DONE_CREATED);
    parley_outcome_clear(&o);
    json_decref(body);
}

static void delete_conv(fixture_t *fx, const char *conv, const char *user)
{
    parley_conv_req_t req;
    parley_outcome_t o;
    memset(&req, 0, sizeof req);
    req.op = PARLEY_CONV_DELETE;
    req.id = conv;
    req.user = user;
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_turn_delete_conversation(fx->db, &req, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_done(&o, PARLEY_DONE_EMPTY);
    parley_outcome_clear(&o);
}

/* Apply a document request (op, owner's notes/id, body JSON text or NULL). */
static void doc(fixture_t *fx, parley_doc_op_t op, const char *owner, const char *id,
                const char *body)
{
    parley_doc_req_t q;
    parley_outcome_t o;
    memset(&q, 0, sizeof q);
    q.op = op;
    q.owner = owner;
    q.collection = "notes";
    q.id = id;
    q.body = body ? json_loads(body, 0, NULL) : NULL;
    parley_outcome_init(&o);
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_document_apply(fx->db, &q, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_int_equal(o.refusal, 0);
    parley_outcome_clear(&o);
    json_decref(q.body);
}

/* Create a snapshot as user (admin) with body (JSON text) as the API does:
 * the body parsed first (a bad one is refused there, before any write),
 * then the rule in a transaction. Its id into id, the outcome in *o (the
 * caller clears it). */
static void snap_create_as(fixture_t *fx, const char *user, bool admin, const char *body, char *id,
                           parley_outcome_t *o)
{
    parley_snapshot_req_t req;
    json_error_t jerr;
    store_fixture_id(fx, id);
    memset(&req, 0, sizeof req);
    req.id = id;
    req.user = user;
    req.admin = admin;
    req.body = json_loads(body, JSON_DECODE_ANY, &jerr);
    assert_non_null(req.body);
    if (parley_snapshot_parse(&req, o) == 0) {
        parley_outcome_clear(o);
        assert_int_equal(parley_db_begin(fx->db), 0);
        assert_int_equal(parley_snapshot_create(fx->db, &req, o), 0);
        assert_int_equal(parley_db_commit(fx->db), 0);
    }
    json_decref(req.body);
}

/* Create a snapshot of source (a path) as user, expected to succeed. */
static void snap_create(fixture_t *fx, const char *user, const char *source, char *id)
{
    parley_outcome_t o;
    char body[PARLEY_SOURCE_MAX + 32];
    snprintf(body, sizeof body, "{\"source\":\"%s\"}", source);
    snap_create_as(fx, user, false, body, id, &o);
    assert_done(&o, PARLEY_DONE_CREATED);
    assert_string_equal(json_string_value(json_object_get(o.body, "id")), id);
    assert_string_equal(json_string_value(json_object_get(o.body, "source")), source);
    parley_outcome_clear(&o);
}

static void snap_delete(fixture_t *fx, const char *id, const char *user, bool admin,
                        parley_outcome_t *o)
{
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_snapshot_delete(fx->db, id, user, admin, o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
}

/* The content of snapshot id (new reference), read as the API reads it. */
static json_t *content_of(fixture_t *fx, const char *id)
{
    parley_snap_t s;
    json_t *c = NULL;
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_db_snap_get(fx->db, id, &s), 0);
    assert_int_equal(parley_snapshot_content(fx->db, &s, 1 << 20, &c), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    parley_snap_clear(&s);
    assert_non_null(c);
    return c;
}

/* The messages' contents of a conversation snapshot, joined by ','. */
static void messages_of(fixture_t *fx, const char *id, char *out, size_t cap)
{
    json_t *c = content_of(fx, id);
    json_t *msgs = json_object_get(c, "messages");
    size_t i;
    json_t *m;
    assert_true(json_is_array(msgs));
    out[0] = '\0';
    json_array_foreach(msgs, i, m)
    {
        size_t n = strlen(out);
        assert_int_equal(json_integer_value(json_object_get(m, "seq")), (json_int_t)i + 1);
        snprintf(out + n, cap - n, "%s%s", i ? "," : "",
                 json_string_value(json_object_get(m, "content")));
    }
    assert_null(json_object_get(c, "next_cursor"));
    json_decref(c);
}

static bool snap_exists(fixture_t *fx, const char *id)
{
    parley_snap_t s;
    int rc = parley_db_snap_get(fx->db, id, &s);
    assert_true(rc == 0 || rc == PARLEY_ENOTFOUND);
    if (rc == 0)
        parley_snap_clear(&s);
    return rc == 0;
}

/* True if the stream at path can no longer be read (removed or soft-deleted). */
static bool stream_gone(fixture_t *fx, const char *path)
{
    parley_stream_t st;
    int rc = parley_db_stream_get(fx->db, path, &st);
    assert_true(rc == 0 || rc == PARLEY_ENOTFOUND);
    return rc == PARLEY_ENOTFOUND || st.deleted;
}

/* The snapshot events of the feed of user as "type snapshot_id kind". */
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
        if (strncmp(type, "snapshot.", 9) != 0)
            continue;
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s %s %s", n ? "; " : "", type,
                 json_string_value(json_object_get(e, "snapshot_id")),
                 json_string_value(json_object_get(json_object_get(e, "data"), "kind")));
    }
    json_decref(events);
    parley_buf_free(&buf);
}

/* ---- 1. content is pinned ---------------------------------------------------------------- */

static void snapshot_conversation_pins_content_through_changes(void **state)
{
    fixture_t *fx = *state;
    char conv[PARLEY_ROW_ID_MAX + 1], snap[PARLEY_ROW_ID_MAX + 1], src[PARLEY_SOURCE_MAX + 1],
        msgs[256];
    create_conv(fx, "alice", "before", conv);
    post(fx, conv, "alice", "one");
    post(fx, conv, "alice", "two");
    post(fx, conv, "alice", "three");
    snprintf(src, sizeof src, "/v1/conversations/%s", conv);
    snap_create(fx, "alice", src, snap);
    messages_of(fx, snap, msgs, sizeof msgs);
    assert_string_equal(msgs, "one,two,three");

    /* New messages and a new title do not reach the snapshot. */
    post(fx, conv, "alice", "four");
    parley_conv_req_t pr;
    parley_outcome_t o;
    memset(&pr, 0, sizeof pr);
    pr.op = PARLEY_CONV_PATCH;
    pr.id = conv;
    pr.user = "alice";
    pr.body = json_pack("{s:s}", "title", "after");
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_conversation_apply(fx->db, &pr, &o), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_done(&o, PARLEY_DONE_OK);
    parley_outcome_clear(&o);
    json_decref(pr.body);
    messages_of(fx, snap, msgs, sizeof msgs);
    assert_string_equal(msgs, "one,two,three");
    json_t *c = content_of(fx, snap);
    json_t *frozen = json_object_get(c, "conversation");
    assert_string_equal(json_string_value(json_object_get(frozen, "title")), "before");
    assert_int_equal(json_integer_value(json_object_get(frozen, "message_count")), 3);
    json_decref(c);
    parley_snap_t s;
    assert_int_equal(parley_db_snap_get(fx->db, snap, &s), 0);
    assert_string_equal(s.kind, "conversation");
    assert_string_equal(s.title, "before"); /* the conversation's title, when none is given */
    assert_false(s.is_public);
    assert_int_equal(s.expires_ms, -1);
    parley_snap_clear(&s);

    /* Nor does deleting the conversation: the fork keeps the log's data. */
    delete_conv(fx, conv, "alice");
    messages_of(fx, snap, msgs, sizeof msgs);
    assert_string_equal(msgs, "one,two,three");
}

static void snapshot_document_pins_version(void **state)
{
    fixture_t *fx = *state;
    char snap[PARLEY_ROW_ID_MAX + 1];
    doc(fx, PARLEY_DOC_PUT, "alice", "n1", "{\"v\":1}");
    snap_create(fx, "alice", "/v1/documents/notes/n1", snap);
    doc(fx, PARLEY_DOC_PUT, "alice", "n1", "{\"v\":2}");
    doc(fx, PARLEY_DOC_PATCH, "alice", "n1", "{\"w\":3}");
    for (int round = 0; round < 2; round++) {
        json_t *c = content_of(fx, snap);
        json_t *d = json_object_get(c, "document");
        assert_string_equal(json_string_value(json_object_get(d, "id")), "n1");
        assert_int_equal(json_integer_value(json_object_get(d, "version")), 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "data"), "v")), 1);
        assert_null(json_object_get(json_object_get(d, "data"), "w"));
        assert_null(json_object_get(c, "messages"));
        json_decref(c);
        if (round == 0)
            doc(fx, PARLEY_DOC_DELETE, "alice", "n1", NULL); /* and after a delete */
    }
    parley_snap_t s;
    assert_int_equal(parley_db_snap_get(fx->db, snap, &s), 0);
    assert_string_equal(s.kind, "document");
    assert_string_equal(s.stream, ""); /* no fork for a document */
    parley_snap_clear(&s);
}

/* ---- 2. forks ------------------------------------------------------------------------------ */

static void snapshot_each_fork_pins_its_point(void **state)
{
    fixture_t *fx = *state;
    char conv[PARLEY_ROW_ID_MAX + 1], a[PARLEY_ROW_ID_MAX + 1], b[PARLEY_ROW_ID_MAX + 1];
    char empty[PARLEY_ROW_ID_MAX + 1], src[PARLEY_SOURCE_MAX + 1], msgs[256],
        log[PARLEY_PATH_MAX + 1];
    char fork[PARLEY_PATH_MAX + 1];
    parley_outcome_t o;
    create_conv(fx, "alice", "t", conv);
    snprintf(src, sizeof src, "/v1/conversations/%s", conv);
    parley_conversation_stream_path(conv, log, sizeof log);
    snap_create(fx, "alice", src, empty); /* before any message */
    post(fx, conv, "alice", "one");
    post(fx, conv, "alice", "two");
    snap_create(fx, "alice", src, a);
    post(fx, conv, "alice", "three");
    snap_create(fx, "alice", src, b);
    post(fx, conv, "alice", "four");
    messages_of(fx, empty, msgs, sizeof msgs);
    assert_string_equal(msgs, "");
    messages_of(fx, a, msgs, sizeof msgs);
    assert_string_equal(msgs, "one,two");
    messages_of(fx, b, msgs, sizeof msgs);
    assert_string_equal(msgs, "one,two,three");

    /* The fork is closed: nothing can be appended to a snapshot. */
    parley_stream_t st;
    parley_snapshot_stream_path(a, fork, sizeof fork);
    assert_int_equal(parley_db_stream_get(fx->db, fork, &st), 0);
    assert_true(st.closed);

    /* Revoking one leaves the others; the log of the deleted conversation
     * lives while a fork reads it, and goes with its last fork. */
    delete_conv(fx, conv, "alice");
    snap_delete(fx, a, "alice", false, &o);
    assert_done(&o, PARLEY_DONE_EMPTY);
    parley_outcome_clear(&o);
    assert_true(stream_gone(fx, fork));
    messages_of(fx, b, msgs, sizeof msgs);
    assert_string_equal(msgs, "one,two,three");
    snap_delete(fx, b, "alice", false, &o);
    assert_done(&o, PARLEY_DONE_EMPTY);
    parley_outcome_clear(&o);
    snap_delete(fx, empty, "alice", false, &o);
    assert_done(&o, PARLEY_DONE_EMPTY);
    parley_outcome_clear(&o);
    assert_int_equal(parley_db_stream_get(fx->db, log, &st), PARLEY_ENOTFOUND);
}

/* ---- 3. create: refusals ----------------------------------------------------------------------
 */

static void snapshot_create_bodies_table(void **state)
{
    fixture_t *fx = *state;
    static const char *const unknown =
        "unknown field (see details.field): a snapshot takes source, title, public, "
        "expires_in and branch";
    static const char *const source_required =
        "source is required: \"/v1/conversations/{id}\" or \"/v1/documents/{collection}/{id}\"";
    static const char *const source_kind =
        "source must be \"/v1/conversations/{id}\" or \"/v1/documents/{collection}/{id}\"";
    static const char *const doc_source =
        "a document source is \"/v1/documents/{collection}/{id}\"";
    static const char *const expires =
        "expires_in is a whole number of seconds from 1 (up to ten years)";
    static const struct {
        const char *body;    /* the body (%s: a live conversation's id) */
        const char *message; /* the refusal's message */
        const char *field;   /* details.field, or NULL */
    } cases[] = {
        {"[]", "the body must be a JSON object: {\"source\": \"/v1/conversations/{id}\"}", NULL},
        {"\"/v1/conversations/%s\"",
         "the body must be a JSON object: {\"source\": \"/v1/conversations/{id}\"}", NULL},
        {"{\"source\":\"/v1/conversations/%s\",\"owner\":\"bob\"}", unknown, "owner"},
        {"{}", source_required, NULL},
        {"{\"source\":5}", source_required, NULL},
        {"{\"source\":\"/v1/streams/x\"}", source_kind, NULL},
        {"{\"source\":\"/v1/conversations/\"}", source_kind, NULL},
        {"{\"source\":\"/v1/conversations/%s/messages\"}", source_kind, NULL},
        {"{\"source\":\"/v1/documents/notes\"}", doc_source, NULL},
        {"{\"source\":\"/v1/documents/notes/\"}", doc_source, NULL},
        {"{\"source\":\"/v1/documents/notes/a/b\"}", doc_source, NULL},
        {"{\"source\":\"/v1/conversations/%s\",\"title\":5}", "title must be a string or null",
         NULL},
        {"{\"source\":\"/v1/conversations/%s\",\"public\":\"yes\"}", "public must be true or false",
         NULL},
        {"{\"source\":\"/v1/conversations/%s\",\"expires_in\":0}", expires, NULL},
        {"{\"source\":\"/v1/conversations/%s\",\"expires_in\":1.5}", expires, NULL},
        {"{\"source\":\"/v1/conversations/%s\",\"expires_in\":\"60\"}", expires, NULL},
        {"{\"source\":\"/v1/conversations/%s\",\"expires_in\":316224001}", expires, NULL},
    };
    char conv[PARLEY_ROW_ID_MAX + 1], feed[256];
    create_conv(fx, "alice", "t", conv);
    post(fx, conv, "alice", "one");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[PARLEY_SOURCE_MAX + 64], id[PARLEY_ROW_ID_MAX + 1];
        parley_outcome_t o;
        snprintf(body, sizeof body, cases[i].body, conv);
        snap_create_as(fx, "alice", false, body, id, &o);
        if (verdict(&o).refusal != PARLEY_EINVAL)
            fail_msg("case %zu %s: not refused as invalid", i, body);
        assert_string_equal(o.code, "invalid_snapshot");
        assert_string_equal(o.error, cases[i].message);
        if (cases[i].field)
            assert_string_equal(json_string_value(json_object_get(o.body, "field")),
                                cases[i].field);
        parley_outcome_clear(&o);
        if (snap_exists(fx, id))
            fail_msg("case %zu %s: a refused snapshot was stored", i, body);
    }
    /* The largest expiry and the smallest, and null, are accepted. */
    static const char *const ok[] = {
        "{\"source\":\"/v1/conversations/%s\",\"expires_in\":316224000}",
        "{\"source\":\"/v1/conversations/%s\",\"expires_in\":1,\"title\":null}",
        "{\"source\":\"/v1/conversations/%s\",\"expires_in\":null,\"public\":true}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char body[PARLEY_SOURCE_MAX + 64], id[PARLEY_ROW_ID_MAX + 1];
        parley_outcome_t o;
        snprintf(body, sizeof body, ok[i], conv);
        snap_create_as(fx, "alice", false, body, id, &o);
        assert_done(&o, PARLEY_DONE_CREATED);
        parley_outcome_clear(&o);
        assert_true(snap_exists(fx, id));
    }
    /* One event per snapshot made, none for a refused one. */
    int events = 0;
    feed_brief(fx, "alice", feed, sizeof feed);
    for (const char *p = feed; (p = strstr(p, "snapshot.created")); p++)
        events++;
    assert_int_equal(events, 3);
}

static void snapshot_create_source_not_visible_refused(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *user; /* the caller */
        int source;       /* 0: alice's conversation, 1: a deleted one, 2: none,
                             3: alice's document, 4: her deleted document */
    } cases[] = {
        {"mallory", 0}, {"alice", 1}, {"alice", 2}, {"mallory", 3}, {"alice", 4}, {"", 0},
    };
    char conv[PARLEY_ROW_ID_MAX + 1], gone[PARLEY_ROW_ID_MAX + 1];
    create_conv(fx, "alice", "t", conv);
    post(fx, conv, "alice", "secret");
    create_conv(fx, "alice", "t", gone);
    delete_conv(fx, gone, "alice");
    doc(fx, PARLEY_DOC_PUT, "alice", "n1", "{\"v\":1}");
    doc(fx, PARLEY_DOC_PUT, "alice", "n2", "{\"v\":1}");
    doc(fx, PARLEY_DOC_DELETE, "alice", "n2", NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[PARLEY_SOURCE_MAX + 64], id[PARLEY_ROW_ID_MAX + 1], fork[PARLEY_PATH_MAX + 1];
        parley_outcome_t o;
        switch (cases[i].source) {
        case 0:
        case 1:
            snprintf(body, sizeof body, "{\"source\":\"/v1/conversations/%s\"}",
                     cases[i].source ? gone : conv);
            break;
        case 2:
            snprintf(body, sizeof body, "{\"source\":\"/v1/conversations/nosuch\"}");
            break;
        default:
            snprintf(body, sizeof body, "{\"source\":\"/v1/documents/notes/%s\"}",
                     cases[i].source == 3 ? "n1" : "n2");
        }
        snap_create_as(fx, cases[i].user, false, body, id, &o);
        if (verdict(&o).refusal != PARLEY_ENOTFOUND)
            fail_msg("case %zu (%s as '%s'): not refused as not found", i, body, cases[i].user);
        assert_string_equal(o.code, "not_found");
        assert_true(parley_wakeset_empty(&o.wake));
        parley_outcome_clear(&o);
        assert_false(snap_exists(fx, id));
        parley_snapshot_stream_path(id, fork, sizeof fork);
        if (!stream_gone(fx, fork))
            fail_msg("case %zu: a refused snapshot left its fork", i);
    }

    /* The admin reaches alice's conversation; the snapshot is the admin's. */
    char body[PARLEY_SOURCE_MAX + 64], id[PARLEY_ROW_ID_MAX + 1], msgs[64];
    parley_outcome_t o;
    snprintf(body, sizeof body, "{\"source\":\"/v1/conversations/%s\"}", conv);
    snap_create_as(fx, "admin", true, body, id, &o);
    assert_done(&o, PARLEY_DONE_CREATED);
    parley_outcome_clear(&o);
    parley_snap_t s;
    assert_int_equal(parley_db_snap_get(fx->db, id, &s), 0);
    assert_string_equal(s.owner, "admin");
    parley_snap_clear(&s);
    messages_of(fx, id, msgs, sizeof msgs);
    assert_string_equal(msgs, "secret");
}

/* ---- 4. expiry ---------------------------------------------------------------------------- */

static void snapshot_expire_frees_fork_keeps_row(void **state)
{
    fixture_t *fx = *state;
    char conv[PARLEY_ROW_ID_MAX + 1], soon[PARLEY_ROW_ID_MAX + 1], later[PARLEY_ROW_ID_MAX + 1];
    char never[PARLEY_ROW_ID_MAX + 1], docsnap[PARLEY_ROW_ID_MAX + 1], body[128], msgs[64];
    char fork[PARLEY_PATH_MAX + 1];
    parley_outcome_t o;
    create_conv(fx, "alice", "t", conv);
    post(fx, conv, "alice", "one");
    doc(fx, PARLEY_DOC_PUT, "alice", "n1", "{\"v\":1}");
    int64_t t0 = parley_clock_now_ms();
    snprintf(body, sizeof body, "{\"source\":\"/v1/conversations/%s\",\"expires_in\":60}", conv);
    snap_create_as(fx, "alice", false, body, soon, &o);
    assert_done(&o, PARLEY_DONE_CREATED);
    parley_outcome_clear(&o);
    snprintf(body, sizeof body, "{\"source\":\"/v1/conversations/%s\",\"expires_in\":3600}", conv);
    snap_create_as(fx, "alice", false, body, later, &o);
    parley_outcome_clear(&o);
    snap_create_as(fx, "alice", false, "{\"source\":\"/v1/documents/notes/n1\",\"expires_in\":60}",
                   docsnap, &o);
    assert_done(&o, PARLEY_DONE_CREATED);
    parley_outcome_clear(&o);
    snprintf(body, sizeof body, "{\"source\":\"/v1/conversations/%s\"}", conv);
    snap_create_as(fx, "alice", false, body, never, &o);
    parley_outcome_clear(&o);

    parley_snap_t s;
    assert_int_equal(parley_db_snap_get(fx->db, soon, &s), 0);
    assert_true(s.expires_ms >= t0 + 60000 && s.expires_ms <= parley_clock_now_ms() + 60000);
    assert_false(parley_snapshot_is_expired(&s, s.expires_ms - 1));
    assert_true(parley_snapshot_is_expired(&s, s.expires_ms));
    int64_t at = s.expires_ms + 1000; /* past "soon", before "later" */
    parley_snap_clear(&s);

    /* Before its time nothing is freed. */
    parley_wakeset_t wake;
    parley_wakeset_init(&wake);
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_snapshot_expire(fx->db, t0, &wake), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_true(parley_wakeset_empty(&wake));
    messages_of(fx, soon, msgs, sizeof msgs);
    assert_string_equal(msgs, "one");

    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_snapshot_expire(fx->db, at, &wake), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_false(parley_wakeset_empty(&wake));                 /* the fork's readers */
    assert_int_equal(parley_db_snap_get(fx->db, soon, &s), 0); /* the row stays ... */
    assert_string_equal(s.stream, "");                         /* ... without its fork */
    assert_true(parley_snapshot_is_expired(&s, at));
    parley_snap_clear(&s);
    parley_snapshot_stream_path(soon, fork, sizeof fork);
    assert_true(stream_gone(fx, fork));
    /* A document snapshot has no fork: it is expired by its time alone. */
    assert_int_equal(parley_db_snap_get(fx->db, docsnap, &s), 0);
    assert_true(parley_snapshot_is_expired(&s, at));
    parley_snap_clear(&s);

    /* The others are untouched, and a second pass finds nothing to do. */
    messages_of(fx, later, msgs, sizeof msgs);
    assert_string_equal(msgs, "one");
    messages_of(fx, never, msgs, sizeof msgs);
    assert_string_equal(msgs, "one");
    parley_wakeset_init(&wake);
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_snapshot_expire(fx->db, at, &wake), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
    assert_true(parley_wakeset_empty(&wake));
}

/* ---- 5. revoke ---------------------------------------------------------------------------- */

static void snapshot_delete_owner_only(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *user; /* the caller */
        bool admin;       /* with admin rights */
        bool revoked;     /* the snapshot goes */
    } cases[] = {
        {"mallory", false, false},
        {"", false, false},
        {"alice", false, true},
        {"admin", true, true},
    };
    char conv[PARLEY_ROW_ID_MAX + 1], src[PARLEY_SOURCE_MAX + 1], feed[512], want[512];
    create_conv(fx, "alice", "t", conv);
    post(fx, conv, "alice", "one");
    snprintf(src, sizeof src, "/v1/conversations/%s", conv);
    want[0] = '\0';
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[PARLEY_ROW_ID_MAX + 1], fork[PARLEY_PATH_MAX + 1];
        size_t n = strlen(want);
        parley_outcome_t o;
        snap_create(fx, "alice", src, id);
        snprintf(want + n, sizeof want - n, "%ssnapshot.created %s conversation", n ? "; " : "",
                 id);
        snap_delete(fx, id, cases[i].user, cases[i].admin, &o);
        parley_snapshot_stream_path(id, fork, sizeof fork);
        if (cases[i].revoked) {
            assert_done(&o, PARLEY_DONE_EMPTY);
            assert_false(parley_wakeset_empty(&o.wake));
            n = strlen(want);
            snprintf(want + n, sizeof want - n, "; snapshot.deleted %s conversation", id);
        } else {
            assert_refused(&o, PARLEY_ENOTFOUND, "not_found");
        }
        parley_outcome_clear(&o);
        if (snap_exists(fx, id) == cases[i].revoked)
            fail_msg("case %zu (%s): revoked %d", i, cases[i].user, !cases[i].revoked);
        assert_int_equal(stream_gone(fx, fork), cases[i].revoked);
        if (cases[i].revoked) { /* gone: a second revoke is not found */
            snap_delete(fx, id, "alice", false, &o);
            assert_refused(&o, PARLEY_ENOTFOUND, "not_found");
            parley_outcome_clear(&o);
        }
    }
    parley_outcome_t o;
    snap_delete(fx, "nosuch", "alice", false, &o);
    assert_refused(&o, PARLEY_ENOTFOUND, "not_found");
    parley_outcome_clear(&o);
    feed_brief(fx, "alice", feed, sizeof feed);
    assert_string_equal(feed, want);
}

/* ---- 6. who may read ------------------------------------------------------------------------- */

static void snapshot_owner_and_expiry_predicates_table(void **state)
{
    (void)state;
    static const struct {
        const char *owner; /* the snapshot's owner */
        const char *user;  /* the caller, NULL when anonymous */
        bool admin;        /* with admin rights */
        bool owns;         /* parley_snapshot_is_owner */
    } owners[] = {
        {"alice", "alice", false, true},  {"alice", "mallory", false, false},
        {"alice", "Alice", false, false}, {"alice", "alic", false, false},
        {"alice", NULL, false, false},    {"alice", "", false, false},
        {"", "", false, false}, /* an anonymous caller never owns */
        {"alice", "admin", true, true},   {"alice", NULL, true, true},
    };
    for (size_t i = 0; i < sizeof owners / sizeof owners[0]; i++) {
        parley_snap_t s;
        memset(&s, 0, sizeof s);
        snprintf(s.owner, sizeof s.owner, "%s", owners[i].owner);
        if (parley_snapshot_is_owner(&s, owners[i].user, owners[i].admin) != owners[i].owns)
            fail_msg("owner case %zu: is_owner is %d", i, !owners[i].owns);
    }
    static const struct {
        int64_t expires_ms; /* the snapshot's expiry, -1 for never */
        int64_t now_ms;     /* the time asked about */
        bool expired;       /* parley_snapshot_is_expired */
    } times[] = {
        {-1, 0, false},     {-1, INT64_MAX, false}, {1000, 999, false},
        {1000, 1000, true}, {1000, 1001, true},     {0, 0, true},
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        parley_snap_t s;
        memset(&s, 0, sizeof s);
        s.expires_ms = times[i].expires_ms;
        if (parley_snapshot_is_expired(&s, times[i].now_ms) != times[i].expired)
            fail_msg("expiry case %zu: is_expired is %d", i, !times[i].expired);
    }
}

/* The representation says whether the snapshot is public, and the API's
 * read rule is: public, or the caller owns it. */
static void snapshot_public_flag_stored_and_shown(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *extra; /* added to the body */
        bool is_public;    /* stored */
    } cases[] = {
        {"", false},
        {",\"public\":false", false},
        {",\"public\":true", true},
    };
    char conv[PARLEY_ROW_ID_MAX + 1];
    create_conv(fx, "alice", "t", conv);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[PARLEY_SOURCE_MAX + 64], id[PARLEY_ROW_ID_MAX + 1];
        parley_outcome_t o;
        snprintf(body, sizeof body, "{\"source\":\"/v1/conversations/%s\",\"title\":\"mine\"%s}",
                 conv, cases[i].extra);
        snap_create_as(fx, "alice", false, body, id, &o);
        assert_done(&o, PARLEY_DONE_CREATED);
        assert_int_equal(json_is_true(json_object_get(o.body, "public")), cases[i].is_public);
        assert_string_equal(json_string_value(json_object_get(o.body, "title")), "mine");
        assert_string_equal(json_string_value(json_object_get(o.body, "kind")), "conversation");
        assert_true(json_is_null(json_object_get(o.body, "expires_at")));
        parley_outcome_clear(&o);
        parley_snap_t s;
        assert_int_equal(parley_db_snap_get(fx->db, id, &s), 0);
        assert_int_equal(s.is_public, cases[i].is_public);
        bool stranger_reads = s.is_public || parley_snapshot_is_owner(&s, "mallory", false);
        bool anonymous_reads = s.is_public || parley_snapshot_is_owner(&s, NULL, false);
        assert_int_equal(stranger_reads, cases[i].is_public);
        assert_int_equal(anonymous_reads, cases[i].is_public);
        assert_true(s.is_public || parley_snapshot_is_owner(&s, "alice", false));
        parley_snap_clear(&s);
    }
}

/* One visit of id at ms, in a transaction of its own. */
static void visit(fixture_t *fx, const char *id, int64_t ms)
{
    assert_int_equal(parley_db_begin(fx->db), 0);
    assert_int_equal(parley_snapshot_visit(fx->db, id, ms), 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
}

/* view_count of id and its last_viewed_at (or "null") into last. */
static int64_t views_of(fixture_t *fx, const char *id, char *last, size_t cap)
{
    json_t *v = parley_snapshot_visits_json(fx->db, id);
    assert_non_null(v);
    json_t *at = json_object_get(v, "last_viewed_at");
    snprintf(last, cap, "%s", json_is_string(at) ? json_string_value(at) : "null");
    int64_t n = json_integer_value(json_object_get(v, "view_count"));
    json_decref(v);
    return n;
}

static void snapshot_visits_count_keep_the_latest_and_stop_at_delete(void **state)
{
    fixture_t *fx = *state;
    char conv[PARLEY_ROW_ID_MAX + 1], snap[PARLEY_ROW_ID_MAX + 1], other[PARLEY_ROW_ID_MAX + 1];
    char last[64];
    parley_outcome_t o;
    create_conv(fx, "alice", "t", conv);
    post(fx, conv, "alice", "hello");
    char source[PARLEY_SOURCE_MAX + 1];
    snprintf(source, sizeof source, "/v1/conversations/%s", conv);
    snap_create(fx, "alice", source, snap);
    snap_create(fx, "alice", source, other);
    assert_int_equal(views_of(fx, snap, last, sizeof last), 0);
    assert_string_equal(last, "null");
    visit(fx, snap, 1000);
    visit(fx, snap, 3000);
    visit(fx, snap, 2000); /* a visit committed late does not move last_viewed_at back */
    visit(fx, other, 5000);
    assert_int_equal(views_of(fx, snap, last, sizeof last), 3);
    assert_string_equal(last, "1970-01-01T00:00:03.000Z");
    assert_int_equal(views_of(fx, other, last, sizeof last), 1);
    /* Deleting marks the record deleted: no longer shown, never counted again. */
    snap_delete(fx, snap, "alice", false, &o);
    assert_done(&o, PARLEY_DONE_EMPTY);
    parley_outcome_clear(&o);
    int64_t count = 0, last_ms = 0;
    assert_int_equal(parley_db_visit_get(fx->db, snap, &count, &last_ms), PARLEY_ENOTFOUND);
    visit(fx, snap, 9000); /* the snapshot is gone: nothing */
    assert_int_equal(parley_db_visit_add(fx->db, snap, 9000), PARLEY_ENOTFOUND);
    assert_int_equal(views_of(fx, snap, last, sizeof last), 0);
    assert_int_equal(views_of(fx, other, last, sizeof last), 1);
    /* A snapshot that was never visited: deleting it leaves no record. */
    snap_delete(fx, other, "alice", false, &o);
    parley_outcome_clear(&o);
    visit(fx, "no-such-snapshot", 1);
    assert_int_equal(views_of(fx, "no-such-snapshot", last, sizeof last), 0);
}

#define SNAP_TEST(f) cmocka_unit_test_setup_teardown(f, store_fixture_setup, store_fixture_teardown)

int main(void)
{
    const struct CMUnitTest snapshot_tests[] = {
        SNAP_TEST(snapshot_conversation_pins_content_through_changes),
        SNAP_TEST(snapshot_document_pins_version),
        SNAP_TEST(snapshot_each_fork_pins_its_point),
        SNAP_TEST(snapshot_create_bodies_table),
        SNAP_TEST(snapshot_create_source_not_visible_refused),
        SNAP_TEST(snapshot_expire_frees_fork_keeps_row),
        SNAP_TEST(snapshot_delete_owner_only),
        SNAP_TEST(snapshot_owner_and_expiry_predicates_table),
        SNAP_TEST(snapshot_public_flag_stored_and_shown),
        SNAP_TEST(snapshot_visits_count_keep_the_latest_and_stop_at_delete),
    };
    return cmocka_run_group_tests_name("snapshot", snapshot_tests, NULL, NULL);
}
