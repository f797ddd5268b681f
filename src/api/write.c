/*
 * write.c — the path every API write takes (see write.h).
 *
 *   handler ── parley_api_write ──┬─ Idempotency-Key? validate, fingerprint;
 *                                 │   already recorded? answer from this
 *                                 │   thread's reader (stored reply or 422);
 *                                 │   else mark in flight (409 if it already is)
 *                                 └─ submit to the writer, suspend
 *   writer:  apply_write ── key held in flight by another node sharing the
 *                           database (store's idem_hold)? → 409
 *                           key recorded? same fingerprint → stored reply
 *                                          other fingerprint → 422
 *                           else fn(); a 2xx reply is stored with the key
 *            COMMIT
 *            write_done ─── clear the in-flight mark, resume
 *   worker:  on_resumed ─── send the reply (+ Idempotent-Replayed: true)
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/status.h"
#include "api/app.h"
#include "api/write.h"
#include "codec/fingerprint.h"
#include "core/idempotency.h"
#include "parley/parley.h"
#include "util/clock.h"

typedef struct api_write {
    parley_write_t w;         /* must be first */
    parley_req_t *r;          /* the request */
    parley_api_apply_fn fn;   /* the work */
    void *ctx;                /* its state */
    void (*free_ctx)(void *); /* frees ctx */
    parley_reply_t reply;     /* the answer */
    bool has_key;             /* Idempotency-Key given */
    bool in_flight;           /* we hold the in-flight mark */
    bool replayed;            /* reply came from the record */
    char owner[256];          /* key scope */
    char key[256];            /* the key */
    char fingerprint[65];     /* of this request */
    int64_t ttl_ms;           /* record lifetime */
    int rc;                   /* what the apply returned */
} api_write_t;

static void free_write(void *arg)
{
    api_write_t *aw = arg;
    if (aw->in_flight)
        parley_idem_end(aw->owner, aw->key);
    if (aw->free_ctx)
        aw->free_ctx(aw->ctx);
    parley_reply_free(&aw->reply);
    free(aw);
}

/*
 * Answer from the stored record of the key, if a live one exists: its
 * reply (same fingerprint; aw->replayed) or 422 (another request). 1 if
 * answered (*refused: it was the 422), 0 if there is no live record, or a
 * store error.
 */
static int answer_from_record(api_write_t *aw, parley_db_t *db, bool *refused)
{
    char fp[65];
    int64_t created;
    char *resp = NULL;
    size_t len = 0;
    *refused = false;
    int rc = parley_db_idem_get(db, aw->owner, aw->key, fp, &created, &resp, &len);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && created < parley_clock_now_ms() - aw->ttl_ms)) {
        free(resp);
        return 0;
    }
    if (rc)
        return rc;
    parley_reply_free(&aw->reply);
    parley_reply_init(&aw->reply);
    if (strcmp(fp, aw->fingerprint) != 0) {
        free(resp);
        parley_reply_error(&aw->reply, 422, "idempotency_key_reused",
                           "this Idempotency-Key was used for a different request; "
                           "use a new key for a new request",
                           NULL);
        *refused = true;
        return 1;
    }
    rc = parley_reply_decode(resp, len, &aw->reply);
    free(resp);
    if (rc)
        return PARLEY_ESTORE;
    aw->replayed = true;
    return 1;
}

/* 409 idempotency_key_in_flight with Retry-After: 1. */
static void reply_in_flight(parley_reply_t *rp)
{
    parley_reply_header(rp, "Retry-After", "1");
    parley_reply_error(rp, 409, "idempotency_key_in_flight",
                       "a request with this Idempotency-Key is still being processed; "
                       "retry after it has been answered",
                       NULL);
}

static int apply_body(parley_write_t *w, parley_db_t *db)
{
    api_write_t *aw = (api_write_t *)w;
    bool refused;
    parley_reply_free(&aw->reply);
    parley_reply_init(&aw->reply);
    aw->replayed = false;
    if (aw->has_key) {
        /* In flight on another node sharing the database: 409, as the
         * in-memory registry answers on this one (a no-op on SQLite). */
        int rc = parley_db_idem_hold(db, aw->owner, aw->key);
        if (rc == PARLEY_ECONFLICT) {
            reply_in_flight(&aw->reply);
            return PARLEY_ECONFLICT;
        }
        if (rc)
            return rc;
        rc = answer_from_record(aw, db, &refused);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return refused ? PARLEY_ECONFLICT : 0;
    }
    int rc = aw->fn(aw->ctx, db, &aw->reply, w);
    if (rc > 0)
        return PARLEY_ECONFLICT;
    if (rc < 0)
        return rc;
    if (aw->has_key && aw->reply.status >= 200 && aw->reply.status < 300) {
        char *blob;
        size_t len;
        rc = parley_reply_encode(&aw->reply, &blob, &len);
        if (rc)
            return rc;
        int64_t now = parley_clock_now_ms();
        /* Insert-if-absent-or-expired: the record is the arbiter when
         * several nodes run the same key at once. */
        rc = parley_db_idem_put(db, aw->owner, aw->key, aw->fingerprint, now, now - aw->ttl_ms,
                                blob, len);
        free(blob);
        if (rc == PARLEY_EEXIST) {
            /* Another request with this key committed first: this one's
             * writes are rolled back (non-zero below) and it is answered
             * by that record, as a retry would be. */
            rc = answer_from_record(aw, db, &refused);
            if (rc < 0)
                return rc;
            return rc == 1 ? PARLEY_ECONFLICT : PARLEY_ESTORE;
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_write(parley_write_t *w, parley_db_t *db)
{
    api_write_t *aw = (api_write_t *)w;
    aw->rc = apply_body(w, db);
    return aw->rc;
}

/* A write that failed without building its answer: the request's own
 * error (the writer went on), answered by its class. */
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
    if (aw->in_flight) {
        parley_idem_end(aw->owner, aw->key);
        aw->in_flight = false;
    }
    parley_app_write_done(aw->r, status);
}

static void on_resumed(parley_req_t *r)
{
    api_write_t *aw = parley_req_data(r);
    int st = parley_app_write_status(r);
    if (st == PARLEY_EFULL || st == PARLEY_ECLOSED || st == PARLEY_EUNAVAIL ||
        st == PARLEY_ERETRY) {
        parley_api_store_failed(r, st, "the write");
    } else if (st == 0 && aw->reply.status == 0 && aw->rc && aw->rc != PARLEY_ESTORE) {
        answer_failure(r, aw->rc);
    } else if (st < 0 || aw->reply.status == 0) {
        parley_req_error(r, 500, "storage_error",
                         "the write could not be made durable and was not applied; the server "
                         "is stopping to recover. Retry against the restarted server");
    } else {
        if (aw->replayed)
            parley_req_add_header(r, "Idempotent-Replayed", "true");
        parley_reply_send(r, &aw->reply);
    }
}

/*
 * If (owner, key) is already recorded (committed), answer r from the record:
 * the stored reply (same fingerprint) or 422. 1 if answered, 0 if not
 * recorded (or unreadable: the writer will look again, authoritatively).
 */
static int answer_recorded(parley_req_t *r, api_write_t *aw)
{
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    char fp[65];
    int64_t created;
    char *resp = NULL;
    size_t len = 0;
    if (!db || parley_db_begin(db))
        return 0;
    int rc = parley_db_idem_get(db, aw->owner, aw->key, fp, &created, &resp, &len);
    parley_db_commit(db);
    if (rc || created < parley_clock_now_ms() - aw->ttl_ms) {
        free(resp);
        return 0;
    }
    if (strcmp(fp, aw->fingerprint) != 0) {
        free(resp);
        parley_req_error(r, 422, "idempotency_key_reused",
                         "this Idempotency-Key was used for a different request; use a new key "
                         "for a new request");
        return 1;
    }
    rc = parley_reply_decode(resp, len, &aw->reply);
    free(resp);
    if (rc)
        return 0;
    parley_req_add_header(r, "Idempotent-Replayed", "true");
    parley_reply_send(r, &aw->reply);
    return 1;
}

void parley_api_write(parley_req_t *r, parley_api_apply_fn fn, void *ctx, void (*free_ctx)(void *))
{
    api_write_t *aw = calloc(1, sizeof *aw);
    if (!aw) {
        if (free_ctx)
            free_ctx(ctx);
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    aw->r = r;
    aw->fn = fn;
    aw->ctx = ctx;
    aw->free_ctx = free_ctx;
    aw->w.apply = apply_write;
    aw->w.done = write_done;
    aw->ttl_ms = (int64_t)parley_api_app(r)->cfg->idempotency_ttl_s * 1000;
    parley_reply_init(&aw->reply);
    parley_req_set_data(r, aw, free_write);

    const char *m = parley_req_method(r);
    const char *key = parley_req_header(r, "Idempotency-Key");
    if (key && (strcasecmp(m, "POST") == 0 || strcasecmp(m, "PATCH") == 0)) {
        if (!parley_idempotency_key_is_valid(key)) {
            parley_req_error(r, 400, "invalid_idempotency_key",
                             "Idempotency-Key must be 1 to 255 printable ASCII characters");
            return;
        }
        size_t blen;
        const char *body = parley_req_body(r, &blen);
        snprintf(aw->owner, sizeof aw->owner, "%s", parley_req_user(r));
        snprintf(aw->key, sizeof aw->key, "%s", key);
        parley_fingerprint(m, parley_req_path(r), body, blen, aw->fingerprint);
        aw->has_key = true;
        /* A key already recorded is answered from this thread's reader,
         * without the writer and without the in-flight mark: concurrent
         * retries of a finished request all get its stored answer. */
        if (answer_recorded(r, aw))
            return;
        if (parley_idem_begin(aw->owner, aw->key) != 0) {
            parley_req_add_header(r, "Retry-After", "1");
            parley_req_error(r, 409, "idempotency_key_in_flight",
                             "a request with this Idempotency-Key is still being processed; "
                             "retry after it has been answered");
            return;
        }
        aw->in_flight = true;
    }
    parley_app_submit(r, &aw->w, on_resumed);
}
