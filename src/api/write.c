/*
 * write.c — the path every API write takes (see write.h).
 *
 *   handler ── parley_api_write ──┬─ Idempotency-Key? validate, fingerprint;
 *                                 │   already recorded? answer from this
 *                                 │   thread's reader (render the recorded
 *                                 │   outcome, or 422); else mark in flight
 *                                 │   (409 if it already is)
 *                                 └─ submit to the writer, suspend
 *   writer:  apply_write ── parley_command_run (core): the key in flight on
 *                           another node sharing the database → 409; the
 *                           key's record answers, or the command's rule
 *                           runs and a done outcome is recorded with the key
 *            COMMIT
 *            write_done ─── clear the in-flight mark, resume
 *   worker:  on_resumed ─── render the outcome (or the record) and send it
 *                           (+ Idempotent-Replayed: true for a record)
 *
 * A handler may look the key up first, before it parses its body
 * (parley_api_write_replay): a retry of a recorded request is then a
 * fingerprint and one indexed read on this thread, nothing parsed (or no
 * read at all: the thread keeps copies of the records it answered with,
 * core/idempotency.h, until they expire); when the
 * key is not recorded, parley_api_write takes the prepared write over and
 * does not look again. Such a handler answers with the canonical body
 * (api/resource.h), so its key's record keeps the body as that text
 * (core/outcome.h, encode_text): the first answer sends the text the
 * writer made for the record, and a retry sends it again, unparsed.
 *
 * Records made before outcomes were stored hold a rendered reply
 * (api/reply.c's encoding); they are sent as they are.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/status.h"
#include "api/app.h"
#include "api/metrics.h"
#include "api/write.h"
#include "codec/fingerprint.h"
#include "core/command.h"
#include "core/idempotency.h"
#include "parley/parley.h"
#include "util/clock.h"

typedef struct api_write {
    parley_write_t w;            /* must be first */
    parley_req_t *r;             /* the request */
    const parley_command_t *cmd; /* the work (borrowed from ctx) */
    parley_api_render_fn render; /* outcome → answer */
    void *ctx;                   /* the handler's state */
    void (*free_ctx)(void *);    /* frees ctx */
    parley_command_run_t run;    /* what the writer did */
    bool has_key;                /* Idempotency-Key given */
    bool in_flight;              /* we hold the in-flight mark */
    parley_idem_key_t idem;      /* the key (points at the arrays below) */
    char owner[256];             /* key scope */
    char key[256];               /* the key */
    char fingerprint[65];        /* of this request */
    bool looked_up;              /* parley_api_write_replay found no record */
    bool as_text;                /* the handler's answer is the canonical body (write.h) */
    int rc;                      /* what the run returned */
} api_write_t;

static void free_write(void *arg)
{
    api_write_t *aw = arg;
    if (aw->in_flight)
        parley_idem_end(aw->owner, aw->key);
    if (aw->free_ctx)
        aw->free_ctx(aw->ctx);
    parley_command_run_clear(&aw->run);
    free(aw);
}

/* Writer thread: core only. */
static int apply_write(parley_write_t *w, parley_db_t *db)
{
    api_write_t *aw = (api_write_t *)w;
    aw->rc = parley_command_run(db, aw->cmd, aw->has_key ? &aw->idem : NULL, &aw->run);
    if (aw->rc)
        return aw->rc;
    if (!aw->run.keep)
        return PARLEY_ECONFLICT; /* roll back this write alone; it is answered from run */
    parley_wakeset_merge(&w->wake, &aw->run.out.wake);
    return 0;
}

/* A write that failed without an outcome: the request's own error (the
 * writer went on), answered by its class. */
static void answer_failure(parley_req_t *r, int rc)
{
    switch (rc) {
    case PARLEY_ENOMEM:
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        break;
    case PARLEY_EINVAL:
        parley_req_error(r, 400, "invalid_value",
                         "a value of the request cannot be stored (text must be valid UTF-8); "
                         "nothing was written");
        break;
    case PARLEY_ETOOBIG:
        parley_req_error(r, 413, "payload_too_large", "a value of the request is over a limit");
        break;
    case PARLEY_ENOTFOUND:
        parley_req_error(r, 404, "not_found", "no such resource");
        break;
    case PARLEY_EEXIST:
    case PARLEY_ECONFLICT:
        parley_req_error(r, 409, "conflict", "the request conflicts with the current state");
        break;
    default:
        parley_req_error(r, 500, "internal_error",
                         "the write failed and was not applied; nothing was written");
        break;
    }
}

static void write_done(parley_write_t *w, int status)
{
    api_write_t *aw = (api_write_t *)w;
    /* A transfer moved (or dropped) a user's records: committed now, so
     * the workers' copies of records go (core/idempotency.h). */
    if (aw->cmd && aw->cmd->kind == PARLEY_CMD_TRANSFER)
        parley_idem_forget_all();
    if (aw->in_flight) {
        parley_idem_end(aw->owner, aw->key);
        aw->in_flight = false;
    }
    parley_app_write_done(aw->r, status);
}

/* 409 idempotency_key_in_flight: in flight on this node (the in-memory
 * registry) or on another sharing the database (PARLEY_RUN_IN_FLIGHT). */
static void answer_in_flight(parley_req_t *r)
{
    parley_req_add_header(r, "Retry-After", "1");
    parley_req_error(r, 409, "idempotency_key_in_flight",
                     "a request with this Idempotency-Key is still being processed; "
                     "retry after it has been answered");
}

static void answer_reused(parley_req_t *r)
{
    parley_req_error(r, 422, "idempotency_key_reused",
                     "this Idempotency-Key was used for a different request; use a new key for "
                     "a new request");
}

/* Render o with the handler's render function and send it. */
static void send_outcome(api_write_t *aw, const parley_outcome_t *o, bool replayed)
{
    parley_reply_t rp;
    parley_reply_init(&rp);
    aw->render(aw->ctx, o, &rp);
    if (rp.status == 0) {
        parley_req_error(aw->r, 503, "out_of_memory", "the server is out of memory; retry later");
    } else {
        if (replayed) {
            parley_req_add_header(aw->r, "Idempotent-Replayed", "true");
            parley_metrics_replay(aw->r);
        }
        parley_reply_send(aw->r, &rp);
    }
    parley_reply_free(&rp);
}

/* Answer a done outcome o whose body is the canonical text body[0..len),
 * as render would (write.h: parley_api_write_replay's handlers). */
static void send_text(api_write_t *aw, const parley_outcome_t *o, const char *body, size_t len,
                      bool replayed)
{
    int status = parley_api_status(o, NULL);
    if (replayed) {
        parley_req_add_header(aw->r, "Idempotent-Replayed", "true");
        parley_metrics_replay(aw->r);
    }
    if (status == 204)
        parley_req_respond_empty(aw->r, status);
    else
        parley_req_respond(aw->r, status, "application/json", body, len);
}

/* Answer with a key's record: a recorded outcome, rendered again, or a
 * reply stored whole before outcomes were recorded. 0, or PARLEY_EINVAL
 * for a record that reads as neither (nothing was sent). */
static int send_record(api_write_t *aw, const char *blob, size_t len)
{
    int rc;
    if (parley_outcome_is_record(blob, len)) {
        parley_outcome_t o;
        const char *body = NULL;
        size_t body_len = 0;
        if (aw->as_text && parley_outcome_text_done(blob, len, &o, &body, &body_len))
            rc = 0; /* the head's done is all send_text needs */
        else
            rc = aw->as_text ? parley_outcome_decode_text(blob, len, &o, &body, &body_len)
                             : parley_outcome_decode(blob, len, &o);
        if (rc == 0 && body)
            send_text(aw, &o, body, body_len, true); /* as stored: nothing parsed */
        else if (rc == 0)
            send_outcome(aw, &o, true);
        parley_outcome_clear(&o);
        return rc;
    }
    parley_reply_t rp;
    parley_reply_init(&rp);
    rc = parley_reply_decode(blob, len, &rp);
    if (rc == 0) {
        parley_req_add_header(aw->r, "Idempotent-Replayed", "true");
        parley_metrics_replay(aw->r);
        parley_reply_send(aw->r, &rp);
    }
    parley_reply_free(&rp);
    return rc;
}

static void on_resumed(parley_req_t *r)
{
    api_write_t *aw = parley_req_data(r);
    int st = parley_app_write_status(r);
    if (st == PARLEY_EFULL || st == PARLEY_ECLOSED || st == PARLEY_EUNAVAIL ||
        st == PARLEY_ERETRY) {
        parley_api_store_failed(r, st, "the write");
    } else if (st == 0 && aw->rc && aw->rc != PARLEY_ESTORE) {
        answer_failure(r, aw->rc);
    } else if (st < 0 || aw->rc) {
        parley_req_error(r, 500, "storage_error",
                         "the write could not be made durable and was not applied; the server "
                         "is stopping to recover. Retry against the restarted server");
    } else if (aw->run.how == PARLEY_RUN_REUSED) {
        answer_reused(r);
    } else if (aw->run.how == PARLEY_RUN_IN_FLIGHT) {
        answer_in_flight(r);
    } else if (aw->run.how == PARLEY_RUN_REPLAY) {
        if (send_record(aw, aw->run.record, aw->run.record_len))
            parley_req_error(r, 500, "storage_error",
                             "the stored answer for this Idempotency-Key cannot be read");
    } else {
        const char *body;
        size_t len;
        /* The body's text was made once, for the record: sent as it is. */
        if (aw->as_text && !aw->run.out.refusal && aw->run.record &&
            parley_outcome_text_body(aw->run.record, aw->run.record_len, &body, &len))
            send_text(aw, &aw->run.out, body, len, false);
        else
            send_outcome(aw, &aw->run.out, false);
    }
}

/*
 * If the key is already recorded (committed), answer r from the record:
 * the recorded answer (same fingerprint) or 422. 1 if answered, 0 if not
 * recorded (or unreadable: the writer will look again, authoritatively).
 */
static int answer_recorded(parley_req_t *r, api_write_t *aw)
{
    const char *kept;
    size_t len = 0;
    /* This thread's copy first: no transaction, no store (idempotency.h). */
    parley_idem_found_t found = parley_idem_cached(&aw->idem, &kept, &len);
    if (found == PARLEY_IDEM_REUSED) {
        answer_reused(r);
        return 1;
    }
    if (found == PARLEY_IDEM_SAME)
        return send_record(aw, kept, len) == 0;
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    char *blob = NULL;
    int64_t created = 0;
    uint64_t generation = parley_idem_generation(); /* before the read */
    if (!db || parley_db_begin(db))
        return 0;
    int rc = parley_idem_find_at(db, &aw->idem, &found, &blob, &len, &created);
    parley_db_commit(db);
    if (rc || found == PARLEY_IDEM_NONE) {
        free(blob);
        return 0;
    }
    if (found == PARLEY_IDEM_REUSED) {
        answer_reused(r);
        return 1;
    }
    rc = send_record(aw, blob, len);
    if (rc == 0)
        parley_idem_keep(&aw->idem, generation, created, blob, len);
    free(blob);
    return rc == 0;
}

/* A new write for r with its key fields wired; NULL when out of memory. */
static api_write_t *new_write(parley_req_t *r)
{
    api_write_t *aw = calloc(1, sizeof *aw);
    if (!aw)
        return NULL;
    aw->r = r;
    aw->w.apply = apply_write;
    aw->w.done = write_done;
    aw->idem.owner = aw->owner;
    aw->idem.key = aw->key;
    aw->idem.fingerprint = aw->fingerprint;
    aw->idem.ttl_ms = (int64_t)parley_api_app(r)->cfg->idempotency_ttl_s * 1000;
    parley_command_run_init(&aw->run);
    return aw;
}

/* The request's Idempotency-Key when it applies (POST, PATCH) and is
 * valid: the key, fingerprint and scope into aw (digest, when not NULL,
 * stands for a streamed body in the fingerprint). false otherwise. */
static bool take_key(parley_req_t *r, api_write_t *aw, const char *digest)
{
    const char *m = parley_req_method(r);
    const char *key = parley_req_header(r, "Idempotency-Key");
    if (!key || (strcasecmp(m, "POST") != 0 && strcasecmp(m, "PATCH") != 0) ||
        !parley_idempotency_key_is_valid(key))
        return false;
    size_t blen;
    const char *body = digest ? digest : parley_req_body(r, &blen);
    if (digest)
        blen = strlen(digest);
    snprintf(aw->owner, sizeof aw->owner, "%s", parley_req_user(r));
    snprintf(aw->key, sizeof aw->key, "%s", key);
    parley_fingerprint(m, parley_req_path(r), body, blen, aw->fingerprint);
    aw->has_key = true;
    return true;
}

bool parley_api_write_replay(parley_req_t *r, parley_api_render_fn render, void *ctx)
{
    if (parley_req_data(r))
        return false; /* the request's data slot is taken: parley_api_write looks */
    api_write_t *aw = new_write(r);
    if (!aw)
        return false;
    parley_req_set_data(r, aw, free_write);
    if (!take_key(r, aw, NULL))
        return false; /* parley_api_write answers a bad key (or ignores a GET's) */
    aw->render = render;
    aw->ctx = ctx; /* borrowed: free_ctx stays NULL until parley_api_write */
    aw->as_text = true;
    aw->idem.canonical_body = true;
    if (answer_recorded(r, aw)) {
        aw->ctx = NULL;
        aw->render = NULL;
        return true;
    }
    aw->looked_up = true;
    return false;
}

static void write_with(parley_req_t *r, const parley_command_t *cmd, parley_api_render_fn render,
                       void *ctx, void (*free_ctx)(void *), const char *digest)
{
    /* A write parley_api_write_replay prepared (its key and lookup done). */
    api_write_t *aw = r->free_data == free_write ? parley_req_data(r) : NULL;
    if (!aw) {
        aw = new_write(r);
        if (!aw) {
            if (free_ctx)
                free_ctx(ctx);
            parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
            return;
        }
        parley_req_set_data(r, aw, free_write);
    }
    aw->cmd = cmd;
    aw->render = render;
    aw->ctx = ctx;
    aw->free_ctx = free_ctx;

    const char *m = parley_req_method(r);
    const char *key = parley_req_header(r, "Idempotency-Key");
    if (key && (strcasecmp(m, "POST") == 0 || strcasecmp(m, "PATCH") == 0)) {
        if (!aw->has_key && !take_key(r, aw, digest)) {
            parley_req_error(r, 400, "invalid_idempotency_key",
                             "Idempotency-Key must be 1 to 255 printable ASCII characters");
            return;
        }
        /* A key already recorded is answered from this thread's reader,
         * without the writer and without the in-flight mark: concurrent
         * retries of a finished request all get its recorded answer. */
        if (!aw->looked_up && answer_recorded(r, aw))
            return;
        if (parley_idem_begin(aw->owner, aw->key) != 0) {
            answer_in_flight(r);
            return;
        }
        aw->in_flight = true;
    }
    parley_app_submit(r, &aw->w, on_resumed);
}

void parley_api_write(parley_req_t *r, const parley_command_t *cmd, parley_api_render_fn render,
                      void *ctx, void (*free_ctx)(void *))
{
    write_with(r, cmd, render, ctx, free_ctx, NULL);
}

void parley_api_write_digest(parley_req_t *r, const parley_command_t *cmd,
                             parley_api_render_fn render, void *ctx, void (*free_ctx)(void *),
                             const char *digest)
{
    write_with(r, cmd, render, ctx, free_ctx, digest);
}
