/*
 * command.c — one write's rule, chosen by its command (see command.h).
 *
 * A dispatch and nothing more: every decision is the named rule's. The one
 * composite is SESSION_APPEND, whose session check (who may append, which
 * attempt, which state) decides the stream the append goes to.
 */
#include <stdlib.h>
#include <string.h>

#include "core/command.h"
#include "core/conversation.h"
#include "core/streamrules.h"
#include "parley/parley.h"
#include "util/clock.h"

/* A worker's output: the session check, then the append to its stream. */
static int sess_append(parley_db_t *db, const parley_command_sess_append_t *a,
                       parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1] = "";
    int rc = parley_session_check_append(db, a->id, a->user, a->admin, a->attempt, path,
                                         sizeof path, out);
    if (rc || out->refusal)
        return rc;
    parley_outcome_clear(out);
    parley_outcome_init(out);
    parley_stream_req_t q = a->stream;
    q.path = path;
    q.owner = a->user;
    q.admin = true; /* checked above: the session's stream, for a worker */
    return parley_streamrules_append(db, &q, out);
}

static int sub_apply(parley_db_t *db, parley_command_kind_t kind, const parley_command_sub_t *s,
                     parley_outcome_t *out)
{
    int64_t now = parley_clock_now_ms();
    switch (kind) {
    case PARLEY_CMD_SUB_PUT:
        return parley_subscription_put(db, s->id, s->spec, &s->view, now, out);
    case PARLEY_CMD_SUB_DELETE:
        return parley_subscription_delete(db, s->id, out);
    case PARLEY_CMD_SUB_ADD:
        return parley_subscription_add_streams(db, s->id, s->paths, s->npaths, now, out);
    case PARLEY_CMD_SUB_REMOVE:
        return parley_subscription_remove_stream(db, s->id, s->path, out);
    case PARLEY_CMD_SUB_CLAIM:
        return parley_subscription_claim(db, s->id, s->worker, s->kr, now, out);
    case PARLEY_CMD_SUB_REPORT:
        return parley_subscription_report(db, s->id, s->action, &s->report, s->kr, now, out);
    default:
        return PARLEY_EINVAL;
    }
}

int parley_command_apply(parley_db_t *db, const parley_command_t *cmd, parley_outcome_t *out)
{
    int64_t sid;
    int rc;
    parley_outcome_init(out);
    switch (cmd->kind) {
    case PARLEY_CMD_STREAM_CREATE:
        return parley_streamrules_create(db, &cmd->u.stream, out);
    case PARLEY_CMD_STREAM_APPEND:
        return parley_streamrules_append(db, &cmd->u.stream, out);
    case PARLEY_CMD_STREAM_DELETE:
        return parley_streamrules_delete(db, &cmd->u.stream, out);
    case PARLEY_CMD_DOCUMENT:
        return parley_document_apply(db, &cmd->u.doc, out);
    case PARLEY_CMD_CONVERSATION:
        return cmd->u.conv.op == PARLEY_CONV_DELETE
                   ? parley_turn_delete_conversation(db, &cmd->u.conv, out)
                   : parley_conversation_apply(db, &cmd->u.conv, out);
    case PARLEY_CMD_MESSAGE:
        return parley_turn_post(db, &cmd->u.post, out);
    case PARLEY_CMD_SESSION:
        return cmd->u.session.action == PARLEY_SESSION_COMPLETE
                   ? parley_turn_complete(db, &cmd->u.session, out)
                   : parley_session_apply(db, &cmd->u.session, out);
    case PARLEY_CMD_SESSION_APPEND:
        return sess_append(db, &cmd->u.sess_append, out);
    case PARLEY_CMD_SNAPSHOT_CREATE:
        return parley_snapshot_create(db, &cmd->u.snap, out);
    case PARLEY_CMD_SNAPSHOT_DELETE:
        return parley_snapshot_delete(db, cmd->u.snap_delete.id, cmd->u.snap_delete.user,
                                      cmd->u.snap_delete.admin, out);
    case PARLEY_CMD_FEED_ENSURE:
        rc = parley_stream_ensure_internal(db, cmd->u.feed.path, cmd->u.feed.owner, &sid);
        if (rc == 0)
            parley_outcome_answer(out, PARLEY_DONE_EMPTY, NULL);
        return rc;
    case PARLEY_CMD_BLOB_COMMIT:
        return parley_blob_commit(db, &cmd->u.blob, out);
    default:
        return sub_apply(db, cmd->kind, &cmd->u.sub, out);
    }
}

/* ---- a run, with its Idempotency-Key ------------------------------------------ */

void parley_command_run_init(parley_command_run_t *run)
{
    memset(run, 0, sizeof *run);
    parley_outcome_init(&run->out);
}

void parley_command_run_clear(parley_command_run_t *run)
{
    if (!run)
        return;
    parley_outcome_clear(&run->out);
    free(run->record);
    parley_command_run_init(run);
}

/* Answer from the key's record, if a live one exists: *answered. */
static int from_record(parley_db_t *db, const parley_idem_key_t *key, parley_command_run_t *run,
                       bool *answered)
{
    parley_idem_found_t found;
    char *blob;
    size_t len;
    int rc = parley_idem_find(db, key, &found, &blob, &len);
    *answered = rc == 0 && found != PARLEY_IDEM_NONE;
    if (!*answered)
        return rc;
    parley_command_run_clear(run);
    run->how = found == PARLEY_IDEM_SAME ? PARLEY_RUN_REPLAY : PARLEY_RUN_REUSED;
    run->record = blob;
    run->record_len = len;
    return 0;
}

int parley_command_run(parley_db_t *db, const parley_command_t *cmd, const parley_idem_key_t *key,
                       parley_command_run_t *run)
{
    bool answered;
    parley_command_run_clear(run);
    if (key) {
        /* Held until the transaction ends, so another node's writer with
         * the same key answers 409 at once instead of waiting for this
         * one's rows (a no-op on SQLite: one node, its registry). */
        int rc = parley_db_idem_hold(db, key->owner, key->key);
        if (rc == PARLEY_ECONFLICT) {
            run->how = PARLEY_RUN_IN_FLIGHT;
            return 0;
        }
        if (rc)
            return rc;
        rc = from_record(db, key, run, &answered);
        if (rc || answered)
            return rc;
    }
    int rc = parley_command_apply(db, cmd, &run->out);
    if (rc)
        return rc;
    run->how = PARLEY_RUN_APPLIED;
    if (run->out.refusal)
        return 0; /* a refusal changes nothing and is not recorded */
    if (key) {
        char *blob;
        size_t len;
        rc = parley_outcome_encode(&run->out, &blob, &len);
        if (rc)
            return rc;
        rc = parley_idem_record(db, key, blob, len);
        free(blob);
        if (rc == PARLEY_EEXIST) {
            /* Another request with this key committed first: this one's
             * writes roll back and it is answered by that record, as a
             * retry would be. */
            rc = from_record(db, key, run, &answered);
            return rc ? rc : answered ? 0 : PARLEY_ESTORE;
        }
        if (rc)
            return rc;
    }
    run->keep = true;
    return 0;
}
