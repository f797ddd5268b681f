/*
 * turn.c — a message plus its turn (see turn.h).
 *
 * WHY THIS MODULE EXISTS
 *
 * A message with "process": true creates a session, a completed session
 * appends a message, and deleting a conversation removes its sessions. Put
 * in either noun's file, each of these made conversation.c and session.c
 * call each other. They are here instead, so the chat model's part of the
 * core is a chain (A → B: B includes and calls A, never the reverse):
 *
 *     stream, feed → conversation → session → turn
 *                    conversation ─────────→ turn
 *                    conversation → branch → session, turn, snapshot
 *     message (pure body checks) ──────────→ turn      (and api/)
 *     conversation → snapshot                          (forks of the log)
 *
 *   - conversation.c includes neither session.h nor turn.h, and calls
 *     nothing of theirs;
 *   - session.c includes conversation.h for parley_conversation_visible()
 *     only (a claim by conversation_id), and branch.h to name a claimed
 *     session's branch; it writes no conversation row;
 *   - turn.c calls both and writes only through their functions: every
 *     conversation row write stays in conversation.c
 *     (parley_conversation_find / add_message / tombstone), every session
 *     row write in session.c (create, begin/finish_action) — apart from
 *     the delete cascade, which is this module's own and removes session
 *     rows whole (parley_db_sess_remove) with their streams; its reads
 *     (parley_db_conv_get, parley_db_sess_list) go to the store directly;
 *   - message.c reads one constant (PARLEY_SESSION_MAX_ATTEMPTS) from
 *     session.h and calls nothing.
 * Checked with grep: no "parley_session_" in conversation.[ch]; no
 * "parley_conversation_" in session.c but parley_conversation_visible.
 *
 * Invariants kept here:
 *   1. A message and the session it asks for commit together or not at
 *      all: both are written in the caller's savepoint, and any failure
 *      returns before the outcome says 201.
 *   2. A completed session's result_message_id names a message of its
 *      conversation, written in the same savepoint as the completion; the
 *      session checks (who, which attempt, which transition) run before
 *      anything is written.
 *   3. A conversation is a tombstone only after all its sessions and their
 *      streams are gone, so no session outlives its conversation (a
 *      completion that finds no conversation is a corrupt store, refused
 *      with PARLEY_EINVAL rather than written).
 *
 * Threads: writer thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/stream.h"
#include "core/blob.h"
#include "core/turn.h"
#include "parley/parley.h"
#include "util/clock.h"

#define DELETE_BATCH 64 /* sessions removed per list query on delete */

/* ---- posting a message ------------------------------------------------------ */

int parley_turn_post(parley_db_t *db, const parley_turn_post_req_t *req, parley_outcome_t *out)
{
    const parley_message_t *m = &req->message;
    parley_conv_req_t find;
    parley_conv_t c;
    json_t *msg = NULL, *sess = NULL;
    char *text = NULL; /* msg's canonical text, while msg is what the log holds */
    size_t len = 0;
    parley_outcome_init(out);
    memset(&find, 0, sizeof find);
    find.id = req->conversation_id;
    find.user = req->user;
    find.admin = req->admin;
    int rc = parley_conversation_find(db, &find, &c, out);
    if (rc || out->refusal)
        return rc;
    parley_branch_set_t set;
    int b = 0;
    rc = parley_branch_load(db, c.id, &set);
    if (rc == 0 && (b = req->branch ? parley_branch_find(&set, req->branch) : set.active) < 0) {
        parley_branch_set_clear(&set);
        parley_conv_clear(&c);
        parley_outcome_refuse(out, PARLEY_ENOTFOUND, "not_found",
                              "no such branch in this conversation", NULL);
        return 0;
    }
    if (rc == 0 && b == 0) {
        /* The answer is the stored message itself unless a session is
         * added to it: then its text is made once, here. */
        rc = parley_conversation_add_message(db, &c, req->message_id, m->role, m->content,
                                             m->metadata, m->process ? req->session_id : NULL, &msg,
                                             m->process ? NULL : &text, &len, out);
    } else if (rc == 0) {
        char path[PARLEY_PATH_MAX + 1];
        parley_branch_stream_path(&set, b, path, sizeof path);
        rc = parley_conversation_add_branch_message(db, &c, path, set.v[b].id, req->message_id,
                                                    m->role, m->content, m->metadata,
                                                    m->process ? req->session_id : NULL, &msg, out);
        if (rc == 0 && !out->refusal)
            rc = json_object_set_new(msg, "branch", json_string(set.v[b].id)) ? PARLEY_ENOMEM : 0;
    }
    if (rc == 0 && out->refusal) { /* a blob it names is not the owner's */
        parley_branch_set_clear(&set);
        parley_conv_clear(&c);
        free(text);
        return 0;
    }
    if (rc == 0 && m->process)
        rc = parley_session_create(db, c.id, c.owner, req->session_id, req->message_id,
                                   m->max_attempts, &sess, out);
    if (rc == 0 && m->process)
        rc = parley_branch_link_session(db, &set, c.owner, req->session_id, b, out);
    parley_branch_set_clear(&set);
    parley_conv_clear(&c);
    if (rc) {
        json_decref(msg);
        json_decref(sess);
        free(text);
        return rc;
    }
    if (sess)
        json_object_set_new(msg, "session", sess);
    parley_outcome_answer_text(out, PARLEY_DONE_CREATED, msg, text, len);
    return 0;
}

/* ---- completing a turn ------------------------------------------------------ */

int parley_turn_complete(parley_db_t *db, const parley_session_req_t *req, parley_outcome_t *out)
{
    parley_sess_t s;
    parley_conv_t c;
    parley_session_state_t from, to;
    json_t *msg = NULL;
    parley_outcome_init(out);
    if (!req->args.parsed || req->action != PARLEY_SESSION_COMPLETE)
        return PARLEY_EINVAL;
    int rc = parley_session_begin_action(db, req, &s, &from, &to, out);
    if (rc || out->refusal)
        return rc;
    rc = parley_db_conv_get(db, s.conversation_id, &c);
    if (rc == 0 && c.deleted) {
        parley_conv_clear(&c);
        rc = PARLEY_EINVAL; /* invariant 3: sessions go with their conversation */
    } else if (rc == PARLEY_ENOTFOUND) {
        rc = PARLEY_EINVAL;
    }
    if (rc)
        goto out_clear_sess;
    parley_branch_set_t set;
    rc = parley_branch_load(db, c.id, &set);
    int b = rc == 0 ? parley_branch_of_session(&set, s.id) : 0;
    if (rc == 0 && b == 0) {
        rc = parley_conversation_add_message(db, &c, req->reply_id, "assistant", req->args.content,
                                             req->args.metadata, s.id, &msg, NULL, NULL, out);
    } else if (rc == 0) {
        char path[PARLEY_PATH_MAX + 1];
        parley_branch_stream_path(&set, b, path, sizeof path);
        rc = parley_conversation_add_branch_message(db, &c, path, set.v[b].id, req->reply_id,
                                                    "assistant", req->args.content,
                                                    req->args.metadata, s.id, &msg, out);
    }
    parley_branch_set_clear(&set);
    parley_conv_clear(&c);
    json_decref(msg);
    if (rc || out->refusal) /* a blob it names is not the owner's */
        goto out_clear_sess;
    snprintf(s.result_id, sizeof s.result_id, "%s", req->reply_id);
    s.lease_expires_ms = -1;
    rc = parley_session_finish_action(db, &s, from, to, parley_clock_now_ms(), out);
out_clear_sess:
    parley_sess_clear(&s);
    return rc;
}

/* ---- deleting a conversation ------------------------------------------------ */

typedef struct id_batch {
    char ids[DELETE_BATCH][PARLEY_ROW_ID_MAX + 1]; /* collected session ids */
    int n;                                         /* entries in ids */
} id_batch_t;

static int collect_session(void *arg, const parley_sess_t *s)
{
    id_batch_t *b = arg;
    snprintf(b->ids[b->n++], PARLEY_ROW_ID_MAX + 1, "%s", s->id);
    return b->n == DELETE_BATCH;
}

/* Remove every session of conversation conv_id and its token stream. */
static int remove_sessions(parley_db_t *db, const char *conv_id, parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1];
    int64_t sid;
    int rc;
    id_batch_t *b = malloc(sizeof *b);
    if (!b)
        return PARLEY_ENOMEM;
    do {
        b->n = 0;
        rc = parley_db_sess_list(db, conv_id, NULL, 0, DELETE_BATCH, collect_session, b);
        for (int i = 0; rc == 0 && i < b->n; i++) {
            parley_session_stream_path(b->ids[i], path, sizeof path);
            rc = parley_stream_delete_internal(db, path, &sid);
            if (rc == 0)
                parley_wakeset_add(&out->wake, sid);
            else if (rc == PARLEY_ENOTFOUND)
                rc = 0;
            if (rc == 0)
                rc = parley_db_sess_remove(db, b->ids[i]);
        }
    } while (rc == 0 && b->n == DELETE_BATCH);
    free(b);
    return rc;
}

int parley_turn_delete_conversation(parley_db_t *db, const parley_conv_req_t *req,
                                    parley_outcome_t *out)
{
    parley_conv_t c;
    parley_outcome_init(out);
    if (req->op != PARLEY_CONV_DELETE)
        return PARLEY_EINVAL;
    int rc = parley_conversation_find(db, req, &c, out);
    if (rc || out->refusal)
        return rc;
    parley_branch_set_t set;
    memset(&set, 0, sizeof set);
    rc = remove_sessions(db, c.id, out);
    if (rc == 0)
        rc = parley_branch_load(db, c.id, &set);
    if (rc == 0)
        rc = parley_branch_delete_all(db, &set, out);
    parley_branch_set_clear(&set);
    if (rc == 0)
        rc = parley_conversation_tombstone(db, &c, out);
    if (rc == 0) { /* its messages reference no blob any more (snapshots keep theirs) */
        char src[PARLEY_ROW_ID_MAX + 8];
        parley_blob_src_conversation(c.id, src, sizeof src);
        rc = parley_db_blob_ref_drop(db, c.owner, src, parley_clock_now_ms());
    }
    parley_conv_clear(&c);
    return rc;
}

/* ---- branches ----------------------------------------------------------------- */

static int refuse(parley_outcome_t *out, int err, const char *code, const char *why)
{
    parley_outcome_refuse(out, err, code, why, NULL);
    return 0;
}

/* Edit or regenerate the message at pos of branch b (msg: it). */
static int fork_turn(parley_db_t *db, const parley_turn_branch_req_t *req, parley_conv_t *c,
                     parley_branch_set_t *set, int b, int64_t pos, json_t *msg,
                     parley_outcome_t *out)
{
    const char *role = json_string_value(json_object_get(msg, "role"));
    bool edit = req->op == PARLEY_TURN_EDIT;
    json_t *before = NULL, *sess = NULL, *made = NULL;
    int nb = 0, rc = 0;
    if (edit && strcmp(role ? role : "", "user") != 0)
        return refuse(out, PARLEY_EINVAL, "invalid_message",
                      "only a user message can be edited; regenerate an assistant message");
    if (!edit && (strcmp(role ? role : "", "assistant") != 0 || pos == 0))
        return refuse(out, PARLEY_EINVAL, "invalid_message",
                      "only an assistant message that answers an earlier message can be "
                      "regenerated; edit a user message");
    if (set->n > PARLEY_BRANCH_MAX)
        return refuse(out, PARLEY_ECONFLICT, "too_many_branches",
                      "this conversation has the most branches it may have (1000); start a new "
                      "conversation");
    if (!edit)
        rc = parley_branch_message_at(db, set, b, pos - 1, &before);
    if (rc == 0)
        rc = parley_branch_create(db, set, c->owner, b, pos, req->new_branch,
                                  edit ? NULL : req->session_id, &nb, out);
    if (rc == 0)
        rc = parley_branch_activate(db, set, c->owner, nb, out);
    if (rc == 0 && edit) {
        const parley_message_t *m = &req->message;
        char path[PARLEY_PATH_MAX + 1];
        parley_branch_stream_path(set, nb, path, sizeof path);
        rc = parley_conversation_add_branch_message(
            db, c, path, set->v[nb].id, req->new_message, "user", m->content, m->metadata,
            m->process ? req->session_id : NULL, &made, out);
        if (rc == 0 && out->refusal) /* a blob it names is not the owner's: rolled back */
            return 0;
        if (rc == 0 && m->process)
            rc = parley_session_create(db, c->id, c->owner, req->session_id, req->new_message,
                                       m->max_attempts, &sess, out);
        if (rc == 0 && m->process)
            rc = parley_branch_link_session(db, set, c->owner, req->session_id, nb, out);
    } else if (rc == 0) {
        const char *mid = json_string_value(json_object_get(before, "id"));
        rc = mid ? parley_session_create(db, c->id, c->owner, req->session_id, mid,
                                         req->max_attempts, &sess, out)
                 : PARLEY_ESTORE;
        if (rc == 0)
            rc = (made = json_pack("{s:o}", "branch", parley_branch_json(db, set, nb)))
                     ? 0
                     : PARLEY_ENOMEM;
    }
    json_decref(before);
    if (rc == 0 && edit && json_object_set_new(made, "branch", json_string(set->v[nb].id)))
        rc = PARLEY_ENOMEM;
    if (rc == 0 && sess && json_object_set(made, "session", sess))
        rc = PARLEY_ENOMEM;
    json_decref(sess);
    if (rc) {
        json_decref(made);
        return rc;
    }
    parley_outcome_answer(out, PARLEY_DONE_CREATED, made);
    return 0;
}

int parley_turn_branch(parley_db_t *db, const parley_turn_branch_req_t *req, parley_outcome_t *out)
{
    parley_conv_req_t find;
    parley_conv_t c;
    parley_branch_set_t set;
    json_t *msg = NULL;
    int64_t pos = 0;
    parley_outcome_init(out);
    memset(&find, 0, sizeof find);
    find.id = req->conversation_id;
    find.user = req->user;
    find.admin = req->admin;
    int rc = parley_conversation_find(db, &find, &c, out);
    if (rc || out->refusal)
        return rc;
    rc = parley_branch_load(db, c.id, &set);
    int b = rc ? -1 : req->branch ? parley_branch_find(&set, req->branch) : set.active;
    if (rc)
        goto out_clear;
    if (b < 0) {
        rc = refuse(out, PARLEY_ENOTFOUND, "not_found", "no such branch in this conversation");
        goto out_clear;
    }
    if (req->op == PARLEY_TURN_ACTIVATE) {
        rc = parley_branch_activate(db, &set, c.owner, b, out);
        json_t *rep = rc ? NULL : parley_branch_json(db, &set, b);
        if (rc == 0 && !rep)
            rc = PARLEY_ENOMEM;
        if (rc == 0)
            parley_outcome_answer(out, PARLEY_DONE_OK, rep);
        goto out_clear;
    }
    rc = parley_branch_find_message(db, &set, b, req->message_id, &pos, &msg);
    if (rc == PARLEY_ENOTFOUND) {
        rc = refuse(out, PARLEY_ENOTFOUND, "not_found",
                    "no such message on this branch (give ?branch= for another branch)");
        goto out_clear;
    }
    if (rc == 0)
        rc = fork_turn(db, req, &c, &set, b, pos, msg, out);
    json_decref(msg);
out_clear:
    parley_branch_set_clear(&set);
    parley_conv_clear(&c);
    return rc;
}
