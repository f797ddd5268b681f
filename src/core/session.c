/*
 * session.c — the session state machine, leases and token streams (see
 * session.h).
 *
 * THE STATE MACHINE
 *
 *                claim                        await
 *    pending ─────────────▶ processing ───────────────▶ awaiting_input
 *       ▲                   │  │  ▲ ◀──────────────────────── │
 *       └──── expire ───────┘  │  │          input            │
 *         (attempt + 1)        │  └─ heartbeat, append        │
 *                              │                              │
 *                complete ─────┴──▶ completed                 │
 *    fail   (from pending, processing, awaiting_input) ──▶ failed
 *    cancel (from pending, processing, awaiting_input) ──▶ cancelled
 *    expire on the last attempt ──────────────────────────▶ failed
 *
 * As a table (parley_session_next; anything not listed is a 409 with the
 * current session):
 *
 *   from            action     to              performed by
 *   pending         claim      processing      claim()
 *   processing      heartbeat  processing      apply() — extends the lease, no event
 *   processing      append     processing      parley_session_check_append()
 *   processing      await      awaiting_input  apply()
 *   awaiting_input  input      processing      apply() — a new lease
 *   processing      complete   completed       parley_turn_complete() (core/turn.c)
 *                                              — + the assistant message
 *   pending,
 *   processing,
 *   awaiting_input  fail       failed          apply()
 *                   cancel     cancelled       apply()
 *   processing      expire     pending         parley_session_expire_leases()
 *                              (failed when attempt == max_attempts)
 *
 * Rules every stored session obeys (checked by check_rules() in debug
 * builds before every write):
 *   1. status is one of the six states; 1 <= attempt <= max_attempts.
 *   2. A lease end is set exactly when the status is processing.
 *   3. error is set exactly when the status is failed.
 *   4. result_id is set exactly when the status is completed.
 *   5. A session in a final state (completed, failed, cancelled) has a
 *      closed stream, and never leaves that state.
 *   6. Every transition emits session.updated {from, to, attempt} to the
 *      owner's feed in the same transaction; heartbeats and appends,
 *      which change no state, emit nothing.
 *
 * apply() and parley_turn_complete() share the two halves of an action:
 * parley_session_begin_action() (who may, which session, which attempt,
 * which transition) and parley_session_finish_action() (store, close the
 * stream when final, the event, the answer); only the fields changed in
 * between differ.
 *
 * Bodies are checked by parley_session_parse() on the connection's thread
 * (the 403 for a worker action first, then the 400s), so a bad body never
 * reaches the writer; the writer's functions take the parsed arguments.
 * This file reads a conversation (visibility) and never writes one.
 *
 * Fencing: a worker may send its attempt number ("attempt" in an action's
 * body, Session-Attempt on an append); a request for an older attempt —
 * from a worker whose lease ran out and whose session was handed on — gets
 * 409 stale_attempt.
 *
 * Threads: apply functions on the writer thread; the table is pure.
 */
#include <assert.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "core/branch.h"
#include "core/conversation.h"
#include "util/base64url.h"
#include "core/feed.h"
#include "core/session.h"
#include "core/stream.h"
#include "parley/parley.h"
#include "util/clock.h"

#define EXPIRE_BATCH 64 /* leases handled per maintenance tick */

/* ---- the table ------------------------------------------------------------ */

#define NO (-1) /* refused */
#define P  PARLEY_SESSION_PENDING
#define R  PARLEY_SESSION_PROCESSING
#define W  PARLEY_SESSION_AWAITING_INPUT
#define C  PARLEY_SESSION_COMPLETED
#define F  PARLEY_SESSION_FAILED
#define X  PARLEY_SESSION_CANCELLED

/* clang-format off */
static const int table[PARLEY_SESSION_NSTATES][PARLEY_SESSION_NACTIONS] = {
    /*      claim  heartbeat  append  await  input  complete  fail  cancel  expire */
    [P] = {R,     NO,        NO,     NO,    NO,    NO,       F,    X,      NO},
    [R] = {NO,    R,         R,      W,     NO,    C,        F,    X,      P},
    [W] = {NO,    NO,        NO,     NO,    R,     NO,       F,    X,      NO},
    [C] = {NO,    NO,        NO,     NO,    NO,    NO,       NO,   NO,     NO},
    [F] = {NO,    NO,        NO,     NO,    NO,    NO,       NO,   NO,     NO},
    [X] = {NO,    NO,        NO,     NO,    NO,    NO,       NO,   NO,     NO},
};
/* clang-format on */

#undef P
#undef R
#undef W
#undef C
#undef F
#undef X

static const char *const state_names[PARLEY_SESSION_NSTATES] = {
    "pending", "processing", "awaiting_input", "completed", "failed", "cancelled",
};

static const char *const action_names[PARLEY_SESSION_NACTIONS] = {
    "claim", "heartbeat", "append", "await", "input", "complete", "fail", "cancel", "expire",
};

int parley_session_next(parley_session_state_t from, parley_session_action_t action,
                        parley_session_state_t *to)
{
    if ((unsigned)from >= PARLEY_SESSION_NSTATES || (unsigned)action >= PARLEY_SESSION_NACTIONS)
        return PARLEY_EINVAL;
    int next = table[from][action];
    if (next == NO)
        return PARLEY_ECONFLICT;
    *to = (parley_session_state_t)next;
    return 0;
}

const char *parley_session_state_name(parley_session_state_t s)
{
    return (unsigned)s < PARLEY_SESSION_NSTATES ? state_names[s] : "unknown";
}

const char *parley_session_action_name(parley_session_action_t a)
{
    return (unsigned)a < PARLEY_SESSION_NACTIONS ? action_names[a] : "unknown";
}

int parley_session_state_parse(const char *name, parley_session_state_t *out)
{
    for (int i = 0; name && i < PARLEY_SESSION_NSTATES; i++)
        if (strcmp(name, state_names[i]) == 0) {
            *out = (parley_session_state_t)i;
            return 0;
        }
    return PARLEY_EINVAL;
}

int parley_session_action_parse(const char *name, parley_session_action_t *out)
{
    for (int i = 0; name && i < PARLEY_SESSION_NACTIONS; i++)
        if (strcmp(name, action_names[i]) == 0) {
            *out = (parley_session_action_t)i;
            return 0;
        }
    return PARLEY_EINVAL;
}

static bool is_final(parley_session_state_t s)
{
    return s == PARLEY_SESSION_COMPLETED || s == PARLEY_SESSION_FAILED ||
           s == PARLEY_SESSION_CANCELLED;
}

/* Rules 1-4 of the top comment; a no-op in release builds. */
static void check_rules(const parley_sess_t *s)
{
#ifndef NDEBUG
    parley_session_state_t st;
    assert(parley_session_state_parse(s->status, &st) == 0);
    assert(s->attempt >= 1 && s->attempt <= s->max_attempts);
    assert((st == PARLEY_SESSION_PROCESSING) == (s->lease_expires_ms >= 0));
    assert((st == PARLEY_SESSION_FAILED) == (s->error != NULL));
    assert((st == PARLEY_SESSION_COMPLETED) == (s->result_id[0] != '\0'));
#else
    (void)s;
#endif
}

/* ---- representation --------------------------------------------------------- */

void parley_session_stream_path(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, PARLEY_SESSION_PATH_PREFIX "%s", id);
}

bool parley_session_visible(const parley_sess_t *s, const char *user, bool admin)
{
    return admin || strcmp(s->owner, user ? user : "") == 0;
}

/* A stored JSON text as a value; NULL text is null. NULL on corrupt text. */
static json_t *stored_json(const char *text)
{
    json_error_t jerr;
    if (!text)
        return json_null();
    return json_loads(text, JSON_DECODE_ANY, &jerr);
}

json_t *parley_session_json(const parley_sess_t *s)
{
    char stream[PARLEY_ROW_ID_MAX + 40];
    json_t *error = stored_json(s->error);
    json_t *request = stored_json(s->request);
    json_t *input = stored_json(s->input);
    if (!error || !request || !input) {
        json_decref(error);
        json_decref(request);
        json_decref(input);
        return NULL;
    }
    snprintf(stream, sizeof stream, "/v1/sessions/%s/stream", s->id);
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s}",
                          "id", s->id, "conversation_id", s->conversation_id, "message_id",
                          s->message_id, "status", s->status, "attempt", (json_int_t)s->attempt,
                          "max_attempts", (json_int_t)s->max_attempts, "lease_expires_at",
                          parley_clock_json(s->lease_expires_ms), "error", error, "request",
                          request, "input", input, "result_message_id",
                          s->result_id[0] ? json_string(s->result_id) : json_null(), "created_at",
                          parley_clock_json(s->created_ms), "updated_at",
                          parley_clock_json(s->updated_ms), "stream", stream);
    return v;
}

/* One field into the digest: its length (8 bytes, big-endian; -1 for
 * NULL) and its bytes, so no two rows encode alike. */
static void etag_field(EVP_MD_CTX *ctx, const char *text)
{
    uint64_t n = text ? strlen(text) : UINT64_MAX;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(n >> (56 - 8 * i));
    EVP_DigestUpdate(ctx, len, sizeof len);
    if (text)
        EVP_DigestUpdate(ctx, text, strlen(text));
}

void parley_session_etag(const parley_sess_t *s, char out[PARLEY_SESSION_ETAG_LEN + 1])
{
    char nums[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    snprintf(nums, sizeof nums, "%lld %lld %lld %lld", (long long)s->attempt,
             (long long)s->max_attempts, (long long)s->lease_expires_ms, (long long)s->updated_ms);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
        abort(); /* a wrong tag would answer 304 for a changed session */
    etag_field(ctx, s->id);
    etag_field(ctx, s->status);
    etag_field(ctx, nums);
    etag_field(ctx, s->result_id);
    etag_field(ctx, s->error);
    etag_field(ctx, s->request);
    etag_field(ctx, s->input);
    if (!EVP_DigestFinal_ex(ctx, md, &md_len) || md_len < 16)
        abort();
    EVP_MD_CTX_free(ctx);
    out[0] = '"';
    parley_base64url_encode(md, 16, out + 1);
    out[PARLEY_SESSION_ETAG_LEN - 1] = '"';
    out[PARLEY_SESSION_ETAG_LEN] = '\0';
}

/* ---- events and helpers ------------------------------------------------------ */

/*
 * What a transition's event carries beyond {from, to, attempt}, so the
 * session can be rebuilt from the feed (core/rebuild.c): only the fields
 * the transition set, never the whole session —
 *   creation (from null)        max_attempts
 *   to awaiting_input (await)   request
 *   awaiting_input → processing input
 *   to failed                   error
 *   to completed                result_message_id
 * The lease is not carried: it is a time, set again by every claim and
 * heartbeat, and is checked against the status instead.
 */
static int transition_extra(json_t *data, const parley_sess_t *s, const char *from)
{
    const char *name = NULL, *text = NULL;
    if (!from)
        return json_object_set_new(data, "max_attempts", json_integer(s->max_attempts))
                   ? PARLEY_ENOMEM
                   : 0;
    if (strcmp(s->status, "awaiting_input") == 0)
        name = "request", text = s->request;
    else if (strcmp(from, "awaiting_input") == 0 && strcmp(s->status, "processing") == 0)
        name = "input", text = s->input;
    else if (strcmp(s->status, "failed") == 0)
        name = "error", text = s->error;
    else if (strcmp(s->status, "completed") == 0)
        return json_object_set_new(data, "result_message_id", json_string(s->result_id))
                   ? PARLEY_ENOMEM
                   : 0;
    if (!name)
        return 0;
    json_t *v = stored_json(text);
    return v && json_object_set_new(data, name, v) == 0 ? 0 : PARLEY_ENOMEM;
}

static int emit_transition(parley_db_t *db, const parley_sess_t *s, const char *from,
                           parley_wakeset_t *wake)
{
    json_t *fields = json_pack("{s:s, s:s, s:s}", "conversation_id", s->conversation_id,
                               "session_id", s->id, "message_id", s->message_id);
    json_t *data = json_pack("{s:o, s:s, s:I}", "from", from ? json_string(from) : json_null(),
                             "to", s->status, "attempt", (json_int_t)s->attempt);
    int rc = data ? transition_extra(data, s, from) : PARLEY_ENOMEM;
    if (rc)
        goto out_free;
    rc = fields ? parley_feed_emit(db, s->owner, "session.updated", fields, data, wake)
                : PARLEY_ENOMEM;
out_free:
    json_decref(fields);
    json_decref(data);
    return rc;
}

static int emit_out(parley_db_t *db, const parley_sess_t *s, const char *from,
                    parley_outcome_t *out)
{
    return emit_transition(db, s, from, &out->wake);
}

/* Store v (borrowed) as canonical text into *dst (replacing it). */
static int set_json(char **dst, json_t *v)
{
    char *text;
    size_t len;
    int rc = parley_canonjson_dump(v, &text, &len);
    if (rc)
        return rc;
    free(*dst);
    *dst = text;
    return 0;
}

static int close_stream(parley_db_t *db, const parley_sess_t *s, parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1];
    int64_t sid;
    parley_session_stream_path(s->id, path, sizeof path);
    int rc = parley_stream_close_internal(db, path, &sid);
    if (rc == 0)
        parley_wakeset_add(&out->wake, sid);
    return rc == PARLEY_ENOTFOUND ? 0 : rc;
}

/* Answer 200 with the session. */
static int answer(parley_outcome_t *out, const parley_sess_t *s)
{
    json_t *rep = parley_session_json(s);
    if (!rep)
        return PARLEY_ENOMEM;
    parley_outcome_answer(out, PARLEY_DONE_OK, rep);
    return 0;
}

static void refuse_with(parley_outcome_t *out, int err, const char *code, const char *why,
                        const parley_sess_t *s)
{
    parley_outcome_refuse(out, err, code, why, s ? parley_session_json(s) : NULL);
}

/* ---- create ---------------------------------------------------------------------- */

int parley_session_create(parley_db_t *db, const char *conversation_id, const char *owner,
                          const char *id, const char *message_id, int64_t max_attempts,
                          json_t **sess, parley_outcome_t *out)
{
    parley_sess_t s;
    char path[PARLEY_PATH_MAX + 1];
    int64_t sid;
    *sess = NULL;
    memset(&s, 0, sizeof s);
    snprintf(s.id, sizeof s.id, "%s", id);
    snprintf(s.conversation_id, sizeof s.conversation_id, "%s", conversation_id);
    snprintf(s.owner, sizeof s.owner, "%s", owner);
    snprintf(s.message_id, sizeof s.message_id, "%s", message_id);
    snprintf(s.status, sizeof s.status, "%s", state_names[PARLEY_SESSION_PENDING]);
    s.attempt = 1;
    s.max_attempts = max_attempts < 1 ? 1 : max_attempts;
    s.lease_ms = PARLEY_SESSION_LEASE_DEFAULT_S * 1000;
    s.lease_expires_ms = -1;
    s.created_ms = s.updated_ms = parley_clock_now_ms();
    check_rules(&s);
    int rc = parley_db_sess_insert(db, &s);
    parley_session_stream_path(s.id, path, sizeof path);
    if (rc == 0)
        rc = parley_stream_ensure_internal(db, path, s.owner, &sid);
    if (rc == 0)
        rc = emit_out(db, &s, NULL, out);
    if (rc)
        return rc;
    *sess = parley_session_json(&s);
    return *sess ? 0 : PARLEY_ENOMEM;
}

/* ---- request bodies -------------------------------------------------------------- */

/* Fields each action's body may hold (NULL-terminated). */
static const char *const *allowed_fields(parley_session_action_t a)
{
    static const char *const claim[] = {"conversation_id", "lease_seconds", NULL};
    static const char *const heartbeat[] = {"lease_seconds", "attempt", NULL};
    static const char *const await[] = {"request", "attempt", NULL};
    static const char *const input[] = {"data", NULL};
    static const char *const complete[] = {"content", "metadata", "attempt", NULL};
    static const char *const fail[] = {"error", "attempt", NULL};
    static const char *const none[] = {NULL};
    switch (a) {
    case PARLEY_SESSION_CLAIM:
        return claim;
    case PARLEY_SESSION_HEARTBEAT:
        return heartbeat;
    case PARLEY_SESSION_AWAIT:
        return await;
    case PARLEY_SESSION_INPUT:
        return input;
    case PARLEY_SESSION_COMPLETE:
        return complete;
    case PARLEY_SESSION_FAIL:
        return fail;
    default:
        return none;
    }
}

static bool is_worker_action(parley_session_action_t a)
{
    return a == PARLEY_SESSION_CLAIM || a == PARLEY_SESSION_HEARTBEAT ||
           a == PARLEY_SESSION_AWAIT || a == PARLEY_SESSION_COMPLETE || a == PARLEY_SESSION_FAIL ||
           a == PARLEY_SESSION_APPEND;
}

static void refuse_worker_action(parley_outcome_t *out)
{
    parley_outcome_refuse(out, PARLEY_EFORBIDDEN, "forbidden",
                          "only workers (the admin key) claim, heartbeat, await, complete and "
                          "fail sessions",
                          NULL);
}

static int refuse_body(parley_outcome_t *out, const char *why, json_t *details)
{
    parley_outcome_refuse(out, PARLEY_EINVAL, "invalid_request", why, details);
    return PARLEY_EINVAL;
}

int parley_session_parse(parley_session_req_t *req, parley_outcome_t *out)
{
    json_t *b = req->body;
    parley_session_args_t *a = &req->args;
    parley_outcome_init(out);
    memset(a, 0, sizeof *a);
    a->attempt = -1;
    if ((unsigned)req->action >= PARLEY_SESSION_NACTIONS)
        return PARLEY_EINVAL;
    /* Who may ask comes before what was asked, as on the writer. */
    if (is_worker_action(req->action) && !req->admin) {
        refuse_worker_action(out);
        return PARLEY_EINVAL;
    }
    if (b && !json_is_object(b))
        return refuse_body(out, "the body must be a JSON object", NULL);
    const char *key = b ? parley_canonjson_stranger(b, allowed_fields(req->action)) : NULL;
    if (key)
        return refuse_body(
            out, "unknown field for this action (see details.field)",
            json_pack("{s:s, s:s}", "field", key, "action", action_names[req->action]));
    json_t *lease = b ? json_object_get(b, "lease_seconds") : NULL;
    if (lease) {
        if (!json_is_integer(lease) || json_integer_value(lease) < 1 ||
            json_integer_value(lease) > PARLEY_SESSION_LEASE_MAX_S)
            return refuse_body(out, "lease_seconds must be a whole number from 1 to 3600", NULL);
        a->lease_ms = json_integer_value(lease) * 1000;
    }
    json_t *att = b ? json_object_get(b, "attempt") : NULL;
    if (att) {
        if (!json_is_integer(att) || json_integer_value(att) < 1)
            return refuse_body(out, "attempt must be the session's attempt number (from 1)", NULL);
        a->attempt = json_integer_value(att);
    }
    json_t *conv = b ? json_object_get(b, "conversation_id") : NULL;
    if (conv && !json_is_string(conv))
        return refuse_body(out, "conversation_id must be a string", NULL);
    a->conversation_id = conv ? json_string_value(conv) : NULL;
    const char *required = req->action == PARLEY_SESSION_AWAIT      ? "request"
                           : req->action == PARLEY_SESSION_INPUT    ? "data"
                           : req->action == PARLEY_SESSION_COMPLETE ? "content"
                                                                    : NULL;
    if (required && !(b && json_object_get(b, required)))
        return refuse_body(out,
                           req->action == PARLEY_SESSION_AWAIT
                               ? "await needs \"request\": what the worker asks the user"
                           : req->action == PARLEY_SESSION_INPUT
                               ? "input needs \"data\": the user's answer"
                               : "complete needs \"content\": the assistant's reply",
                           NULL);
    json_t *meta = b ? json_object_get(b, "metadata") : NULL;
    if (meta && !json_is_object(meta) && !json_is_null(meta))
        return refuse_body(out, "metadata must be a JSON object", NULL);
    a->request = b ? json_object_get(b, "request") : NULL;
    a->data = b ? json_object_get(b, "data") : NULL;
    a->content = b ? json_object_get(b, "content") : NULL;
    a->metadata = json_is_object(meta) ? meta : NULL;
    json_t *err = b ? json_object_get(b, "error") : NULL;
    a->error = err && !json_is_null(err) ? err : NULL;
    a->parsed = true;
    return 0;
}

/* ---- claim --------------------------------------------------------------------- */

static int claim(parley_db_t *db, const parley_session_req_t *req, parley_outcome_t *out)
{
    const char *conv_id = req->args.conversation_id;
    int64_t lease_ms = req->args.lease_ms;
    parley_sess_t s;
    int rc;
    if (conv_id) {
        parley_conv_t c;
        rc = parley_db_conv_get(db, conv_id, &c);
        bool ok = rc == 0 && parley_conversation_visible(&c, req->user, req->admin);
        if (rc == 0)
            parley_conv_clear(&c);
        if (rc && rc != PARLEY_ENOTFOUND)
            return rc;
        if (!ok) {
            parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found", "no such conversation", NULL);
            return 0;
        }
    }
    parley_session_state_t st = PARLEY_SESSION_PENDING, to;
    rc = parley_session_next(st, PARLEY_SESSION_CLAIM, &to);
    assert(rc == 0 && to == PARLEY_SESSION_PROCESSING);
    /* One store step takes the oldest pending session and leases it, so
     * two claimers never get the same one. */
    rc = parley_db_sess_claim_next(db, conv_id, parley_clock_now_ms(),
                                   lease_ms ? lease_ms : PARLEY_SESSION_LEASE_DEFAULT_S * 1000, &s);
    if (rc == PARLEY_ENOTFOUND) {
        parley_outcome_answer(out, PARLEY_DONE_NOTHING, NULL);
        return 0;
    }
    if (rc)
        return rc;
    check_rules(&s);
    if (rc == 0)
        rc = emit_out(db, &s, state_names[st], out);
    if (rc == 0)
        rc = answer(out, &s);
    /* The worker reads the history along the session's branch. */
    char branch[PARLEY_ID_LEN + 1];
    if (rc == 0)
        rc = parley_branch_session_branch(db, s.conversation_id, s.id, branch);
    if (rc == 0 && json_object_set_new(out->body, "branch", json_string(branch)))
        rc = PARLEY_ENOMEM;
    parley_sess_clear(&s);
    return rc;
}

/* ---- the other actions ------------------------------------------------------- */

int parley_session_begin_action(parley_db_t *db, const parley_session_req_t *req, parley_sess_t *s,
                                parley_session_state_t *from, parley_session_state_t *to,
                                parley_outcome_t *out)
{
    if (is_worker_action(req->action) && !req->admin) {
        refuse_worker_action(out);
        return 0;
    }
    int rc = parley_db_sess_get(db, req->id, s);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && !parley_session_visible(s, req->user, req->admin))) {
        if (rc == 0)
            parley_sess_clear(s);
        parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found", "no such session", NULL);
        return 0;
    }
    if (rc)
        return rc;
    if (parley_session_state_parse(s->status, from)) {
        parley_sess_clear(s);
        return PARLEY_EINVAL; /* a corrupt row: refuse, without stopping the writer */
    }
    if (req->args.attempt >= 0 && req->args.attempt != s->attempt) {
        refuse_with(out, PARLEY_EFENCED, "stale_attempt",
                    "this attempt is over: its lease ran out and the session was handed on (see "
                    "error.details.current)",
                    s);
        parley_sess_clear(s);
        return 0;
    }
    if (parley_session_next(*from, req->action, to) != 0) {
        refuse_with(out, PARLEY_ECONFLICT, "invalid_transition",
                    "the session's status does not allow this action (the current session is in "
                    "error.details.current)",
                    s);
        parley_sess_clear(s);
        return 0;
    }
    return 0;
}

int parley_session_finish_action(parley_db_t *db, parley_sess_t *s, parley_session_state_t from,
                                 parley_session_state_t to, int64_t now, parley_outcome_t *out)
{
    snprintf(s->status, sizeof s->status, "%s", state_names[to]);
    s->updated_ms = now;
    check_rules(s);
    /* Written only if status and attempt are still those begin_action
     * read (belt and braces: the row is locked for this transaction). */
    int rc = parley_db_sess_update(db, s, state_names[from], s->attempt);
    if (rc == PARLEY_ECONFLICT) {
        parley_sess_t cur;
        rc = parley_db_sess_get(db, s->id, &cur);
        if (rc)
            return rc == PARLEY_ENOTFOUND ? PARLEY_EINVAL : rc;
        bool stale = cur.attempt != s->attempt;
        refuse_with(out, stale ? PARLEY_EFENCED : PARLEY_ECONFLICT,
                    stale ? "stale_attempt" : "invalid_transition",
                    stale ? "this attempt is over: its lease ran out and the session was handed "
                            "on (see error.details.current)"
                          : "the session's status does not allow this action (the current "
                            "session is in error.details.current)",
                    &cur);
        parley_sess_clear(&cur);
        return 0;
    }
    if (rc == 0 && is_final(to))
        rc = close_stream(db, s, out);
    if (rc == 0 && to != from)
        rc = emit_out(db, s, state_names[from], out);
    if (rc == 0)
        rc = answer(out, s);
    return rc;
}

/* The fields an action (other than claim and complete) changes. */
static int set_action_fields(const parley_session_req_t *req, parley_sess_t *s, int64_t now)
{
    const parley_session_args_t *a = &req->args;
    int rc = 0;
    switch (req->action) {
    case PARLEY_SESSION_HEARTBEAT:
        if (a->lease_ms)
            s->lease_ms = a->lease_ms;
        s->lease_expires_ms = now + s->lease_ms;
        break;
    case PARLEY_SESSION_AWAIT:
        rc = set_json(&s->request, a->request);
        s->lease_expires_ms = -1;
        break;
    case PARLEY_SESSION_INPUT:
        rc = set_json(&s->input, a->data);
        s->lease_expires_ms = now + s->lease_ms;
        break;
    case PARLEY_SESSION_FAIL: {
        json_t *dflt = json_pack("{s:s}", "reason", "failed");
        rc = set_json(&s->error, a->error ? a->error : dflt);
        json_decref(dflt);
        s->lease_expires_ms = -1;
        break;
    }
    case PARLEY_SESSION_CANCEL:
        s->lease_expires_ms = -1;
        break;
    default:
        rc = PARLEY_EINVAL; /* complete is core/turn.c's; claim, append, expire have their own */
        break;
    }
    return rc;
}

int parley_session_apply(parley_db_t *db, const parley_session_req_t *req, parley_outcome_t *out)
{
    parley_outcome_init(out);
    if (!req->args.parsed || req->action == PARLEY_SESSION_APPEND ||
        req->action == PARLEY_SESSION_EXPIRE || req->action == PARLEY_SESSION_COMPLETE ||
        (unsigned)req->action >= PARLEY_SESSION_NACTIONS)
        return PARLEY_EINVAL;
    if (req->action == PARLEY_SESSION_CLAIM) {
        if (!req->admin) {
            refuse_worker_action(out);
            return 0;
        }
        return claim(db, req, out);
    }
    parley_sess_t s;
    parley_session_state_t from, to;
    int rc = parley_session_begin_action(db, req, &s, &from, &to, out);
    if (rc || out->refusal)
        return rc;
    int64_t now = parley_clock_now_ms();
    rc = set_action_fields(req, &s, now);
    if (rc == 0)
        rc = parley_session_finish_action(db, &s, from, to, now, out);
    parley_sess_clear(&s);
    return rc;
}

int parley_session_check_append(parley_db_t *db, const char *id, const char *user, bool admin,
                                int64_t attempt, char *path, size_t cap, parley_outcome_t *out)
{
    parley_sess_t s;
    parley_outcome_init(out);
    int rc = parley_db_sess_get(db, id, &s);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && !parley_session_visible(&s, user, admin))) {
        if (rc == 0)
            parley_sess_clear(&s);
        parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found", "no such session", NULL);
        return 0;
    }
    if (rc)
        return rc;
    if (!admin) {
        parley_sess_clear(&s);
        parley_outcome_refuse(out, PARLEY_EFORBIDDEN, "forbidden",
                              "only workers (the admin key) append to a session's stream", NULL);
        return 0;
    }
    parley_session_state_t from, to;
    if (parley_session_state_parse(s.status, &from)) {
        parley_sess_clear(&s);
        return PARLEY_EINVAL; /* a corrupt row: refuse, without stopping the writer */
    }
    if (attempt >= 0 && attempt != s.attempt)
        refuse_with(out, PARLEY_EFENCED, "stale_attempt",
                    "this attempt is over: its lease ran out and the session was handed on", &s);
    else if (parley_session_next(from, PARLEY_SESSION_APPEND, &to) != 0)
        refuse_with(out, PARLEY_ECONFLICT, "invalid_transition",
                    "output can be appended only while the session is processing (the current "
                    "session is in error.details.current)",
                    &s);
    else
        parley_session_stream_path(s.id, path, cap);
    parley_sess_clear(&s);
    return 0;
}

/* ---- lease expiry --------------------------------------------------------------- */

static int expire_one(parley_db_t *db, const char *id, int64_t now, parley_wakeset_t *wake)
{
    parley_sess_t s;
    char path[PARLEY_PATH_MAX + 1];
    int64_t sid;
    int rc = parley_db_sess_get(db, id, &s);
    if (rc)
        return rc == PARLEY_ENOTFOUND ? 0 : rc;
    parley_session_state_t from, to;
    if (parley_session_state_parse(s.status, &from) ||
        parley_session_next(from, PARLEY_SESSION_EXPIRE, &to) != 0 || s.lease_expires_ms < 0 ||
        s.lease_expires_ms > now) {
        parley_sess_clear(&s);
        return 0;
    }
    parley_session_stream_path(s.id, path, sizeof path);
    int64_t attempt = s.attempt;
    s.lease_expires_ms = -1;
    s.updated_ms = now;
    if (s.attempt >= s.max_attempts) {
        to = PARLEY_SESSION_FAILED;
        json_t *err =
            json_pack("{s:s, s:I}", "reason", "lease_expired", "attempts", (json_int_t)s.attempt);
        rc = err ? set_json(&s.error, err) : PARLEY_ENOMEM;
        json_decref(err);
        if (rc == 0)
            rc = parley_stream_close_internal(db, path, &sid);
    } else {
        s.attempt++;
        char marker[64];
        int n = snprintf(marker, sizeof marker, "{\"type\":\"attempt\",\"attempt\":%lld}",
                         (long long)s.attempt);
        rc = parley_stream_append_internal(db, path, s.owner, marker, (size_t)n, &sid);
    }
    if (rc == 0)
        parley_wakeset_add(wake, sid);
    snprintf(s.status, sizeof s.status, "%s", state_names[to]);
    if (rc == 0) {
        check_rules(&s);
        rc = parley_db_sess_update(db, &s, state_names[from], attempt);
    }
    if (rc == PARLEY_ECONFLICT) { /* moved meanwhile: nothing to expire */
        parley_sess_clear(&s);
        return PARLEY_ECONFLICT;
    }
    if (rc == 0)
        rc = emit_transition(db, &s, state_names[from], wake);
    parley_sess_clear(&s);
    return rc;
}

int parley_session_expire_leases(parley_db_t *db, int64_t now_ms, parley_wakeset_t *wake)
{
    char(*ids)[PARLEY_ROW_ID_MAX + 1] = malloc(EXPIRE_BATCH * sizeof *ids);
    int n = 0;
    if (!ids)
        return PARLEY_ENOMEM;
    int rc = parley_db_sess_expired(db, now_ms, ids, EXPIRE_BATCH, &n);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = expire_one(db, ids[i], now_ms, wake);
    free(ids);
    return rc;
}
