/*
 * subscription.c — subscriptions, their wakes, leases and fencing (see
 * subscription.h and PROTOCOL.md §6-§7).
 *
 * THE STATE MACHINE (one per subscription)
 *
 *                      pending work: wake()
 *        ┌──────────────────────────────────────────────┐
 *        │                                              ▼
 *      IDLE ◀──── done, release, lease expiry ──── WOKEN ──────────────┐
 *        ▲                                           │ webhook: POST   │ POST failed:
 *        │                                           │ 2xx             │ retry at backoff
 *        │          2xx {"done": true} (auto-ack) ◀──┤ (delivered())   └──▶ WOKEN
 *        │                                           │ pull-wake: claim()
 *        │                                           ▼
 *        └───── done, release, lease expiry ──────  HELD ── callback/ack without
 *                                                          done: lease extended
 *
 *   state  wake_id  holder   lease_expires  delivery_due    performed by
 *   IDLE   ""       ""       -1             -1              go_idle()
 *   WOKEN  set      ""       webhook: set   webhook: set    wake()
 *                            pull: -1       pull: -1
 *   HELD   set      pull:    set            -1              claim(), delivered(OK)
 *                   worker
 *
 * Every return to IDLE looks for pending work at once and wakes again
 * (wake_if_pending()); so does an append to a linked stream of an idle
 * subscription. A wake snapshots every link's tail (wake_tail); that
 * snapshot is what a webhook delivery shows and what {"done": true}
 * acks. A pull-wake claim takes a fresh snapshot, since the claim may come
 * long after the wake event.
 *
 * For a webhook the lease starts when the wake is issued, but a wake whose
 * POST has not yet succeeded never expires: the retry schedule (1 s
 * doubling to 60 s, ±20% jitter, stored in delivery_due_ms so a restart
 * keeps it) governs it instead, and a 2xx starts the lease afresh.
 *
 * Fencing (§7.3): a callback, ack or release passes only with a token that
 * this server signed for this subscription (keyring.h), whose generation,
 * like the request's, is the current one, and a wake_id that is the
 * current wake. Deleting a subscription removes its row, so nothing can
 * match it afterwards.
 *
 * Rules every stored subscription obeys (check_rules() in debug builds,
 * before every write):
 *   1. type is webhook (with webhook_url, without wake_stream) or
 *      pull-wake (with wake_stream, without webhook_url).
 *   2. IDLE (wake_id "") has no holder, no lease, no delivery due and no
 *      failed attempts.
 *   3. A holder is set only on a pull-wake subscription, and then so is
 *      the lease; a delivery is due only on a webhook one.
 *   4. A pull-wake subscription has a lease exactly when it has a holder.
 *
 * Links: acked is a position (offsets are positions, codec/offset.h); a
 * link with the stream's tail > acked is pending. A missing or deleted
 * stream's tail counts as 0. A subscription never links its own wake
 * stream by pattern, so its wake events cannot wake it.
 *
 * Threads: everything on the writer thread except parley_subscription_get
 * and parley_subscription_delivery (any thread, on its own reader) and the
 * pure functions.
 */
#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"

#include "codec/glob.h"
#include "codec/offset.h"
#include "core/stream.h"
#include "core/subscription.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/log.h"

#define KEY_SIGNING  "webhook-ed25519" /* server_keys row of the signing key */
#define KEY_TOKENS   "callback-hmac"   /* server_keys row of the token secret */
#define EXPIRE_BATCH 64                /* leases ended per maintenance pass */
#define MAX_SUBS     100000            /* subscriptions one hook looks at */

static bool is_webhook(const parley_sub_t *s)
{
    return strcmp(s->type, "webhook") == 0;
}

static bool is_idle(const parley_sub_t *s)
{
    return s->wake_id[0] == '\0';
}

/* Rules 1-4 of the top comment; a no-op in release builds. */
static void check_rules(const parley_sub_t *s)
{
#ifndef NDEBUG
    bool hook = is_webhook(s);
    assert(hook || strcmp(s->type, "pull-wake") == 0);
    assert(hook == (s->webhook_url[0] != '\0') && hook == (s->wake_stream[0] == '\0'));
    if (is_idle(s))
        assert(!s->holder[0] && s->lease_expires_ms < 0 && s->delivery_due_ms < 0 &&
               s->attempts == 0);
    assert(!s->holder[0] || (!hook && s->lease_expires_ms >= 0));
    assert(s->delivery_due_ms < 0 || hook);
    assert(hook || (s->holder[0] != '\0') == (s->lease_expires_ms >= 0));
#else
    (void)s;
#endif
}

/* Store s's delivery state, only if the stored wake is still the one read
 * (generation and expect_wake_id): PARLEY_ECONFLICT when it moved (fenced
 * by another node). The generation is never computed here: sub_begin_wake
 * moves it. */
static int update_sub(parley_db_t *db, const parley_sub_t *s, const char *expect_wake_id)
{
    check_rules(s);
    return parley_db_sub_update(db, s, s->generation, expect_wake_id);
}

/* Paths no subscription ever links: Parley's own and the reserved ones. */
static bool path_ignored(const char *path)
{
    return parley_stream_path_reserved(path) || strncmp(path, "__ds/", 5) == 0 ||
           strcmp(path, "__ds") == 0;
}

/* The tail of the stream at path; 0 when it is missing or deleted. */
static int tail_of(parley_db_t *db, const char *path, uint64_t *tail)
{
    parley_stream_t *st = malloc(sizeof *st);
    if (!st)
        return PARLEY_ENOMEM;
    int rc = parley_db_stream_get(db, path, st);
    *tail = rc == 0 && !st->deleted ? st->tail : 0;
    free(st);
    return rc == PARLEY_ENOTFOUND ? 0 : rc;
}

static void refuse(parley_outcome_t *o, int err, const char *code, const char *why)
{
    parley_outcome_refuse(o, err, code, why, NULL);
}

static int not_found(parley_outcome_t *o)
{
    refuse(o, PARLEY_ENOTFOUND, "SUBSCRIPTION_NOT_FOUND", "no such subscription");
    return 0;
}

/* ---- representation ------------------------------------------------------ */

static json_t *str_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

typedef struct links_json {
    json_t *arr;   /* the array being built */
    bool delivery; /* add tail_offset and has_pending (from wake_tail) */
    int err;       /* PARLEY_ENOMEM */
} links_json_t;

static int on_link_json(void *arg, const parley_sub_link_t *l)
{
    links_json_t *c = arg;
    char acked[PARLEY_OFFSET_LEN + 1], tail[PARLEY_OFFSET_LEN + 1];
    parley_offset_format(l->acked, acked);
    json_t *o = json_pack("{s:s, s:s, s:s}", "path", l->path, "link_type",
                          l->by_explicit ? "explicit" : "glob", "acked_offset", acked);
    if (o && c->delivery) {
        uint64_t t = l->wake_tail > (int64_t)l->acked ? (uint64_t)l->wake_tail : l->acked;
        parley_offset_format(t, tail);
        json_object_set_new(o, "tail_offset", json_string(tail));
        json_object_set_new(o, "has_pending", json_boolean(t > l->acked));
    }
    if (!o || json_array_append_new(c->arr, o)) {
        c->err = PARLEY_ENOMEM;
        return 1;
    }
    return 0;
}

/* The links of s as a JSON array (new reference in *out). */
static int links_array(parley_db_t *db, const char *id, bool delivery, json_t **out)
{
    links_json_t c = {json_array(), delivery, 0};
    if (!c.arr)
        return PARLEY_ENOMEM;
    int rc = parley_db_sublink_list(db, id, NULL, on_link_json, &c);
    if (rc == 0)
        rc = c.err;
    if (rc) {
        json_decref(c.arr);
        return rc;
    }
    *out = c.arr;
    return 0;
}

/* The representation of §6.3 (new reference in *out). */
static int sub_json(parley_db_t *db, const parley_sub_t *s, const parley_sub_view_t *view,
                    json_t **out)
{
    json_t *streams = NULL;
    char created[40], jwks[PARLEY_SUB_ROOT_MAX + 32];
    int rc = links_array(db, s->id, false, &streams);
    if (rc)
        return rc;
    parley_clock_format(s->created_ms, created, sizeof created);
    json_t *hook = json_null();
    if (is_webhook(s)) {
        snprintf(jwks, sizeof jwks, "%s/__ds/jwks.json", view->root_url);
        json_decref(hook);
        hook = json_pack("{s:s, s:{s:s, s:s, s:s}}", "url", s->webhook_url, "signing", "alg",
                         "ed25519", "kid", view->kid, "jwks_url", jwks);
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:s, s:s, s:o}", "id", s->id, "subscription_id",
        s->id, "type", s->type, "pattern", str_or_null(s->pattern), "streams", streams, "webhook",
        hook, "wake_stream", str_or_null(s->wake_stream), "lease_ttl_ms",
        (json_int_t)s->lease_ttl_ms, "created_at", created, "status",
        s->attempts > 0 ? "failed" : "active", "description", str_or_null(s->description));
    if (!o)
        return PARLEY_ENOMEM;
    *out = o;
    return 0;
}

/* ---- configuration --------------------------------------------------------- */

int parley_subscription_hash(const parley_sub_spec_t *spec, char out[65])
{
    json_t *streams = json_array();
    for (size_t i = 0; streams && i < spec->nstreams; i++)
        json_array_append_new(streams, json_string(spec->streams[i]));
    json_t *hook =
        spec->webhook_url[0] ? json_pack("{s:s}", "url", spec->webhook_url) : json_null();
    json_t *v =
        json_pack("{s:s, s:o, s:o, s:o, s:o, s:I, s:o}", "type", spec->type, "pattern",
                  str_or_null(spec->pattern), "streams", streams, "webhook", hook, "wake_stream",
                  str_or_null(spec->wake_stream), "lease_ttl_ms", (json_int_t)spec->lease_ttl_ms,
                  "description", str_or_null(spec->description));
    char *text = NULL;
    size_t len = 0;
    int rc = v ? parley_canonjson_dump(v, &text, &len) : PARLEY_ENOMEM;
    json_decref(v);
    if (rc)
        return rc;
    parley_canonjson_sha256_hex(text, len, out);
    free(text);
    return 0;
}

/* ---- links ---------------------------------------------------------------- */

/* Link path to subscription sub_id by glob or explicitly; a new link
 * starts at acked = at. */
static int link(parley_db_t *db, const char *sub_id, const char *path, bool explicit_link,
                uint64_t at)
{
    parley_sub_link_t *l = malloc(sizeof *l);
    if (!l)
        return PARLEY_ENOMEM;
    int rc = parley_db_sublink_get(db, sub_id, path, l);
    if (rc == PARLEY_ENOTFOUND) {
        memset(l, 0, sizeof *l);
        snprintf(l->sub_id, sizeof l->sub_id, "%s", sub_id);
        snprintf(l->path, sizeof l->path, "%s", path);
        l->acked = at;
        l->wake_tail = -1;
        rc = 0;
    }
    if (rc == 0) {
        bool had = explicit_link ? l->by_explicit : l->by_glob;
        if (explicit_link)
            l->by_explicit = true;
        else
            l->by_glob = true;
        if (!had)
            rc = parley_db_sublink_put(db, l);
    }
    free(l);
    return rc;
}

typedef struct path_list {
    char **v;   /* owned strings */
    size_t n;   /* entries */
    size_t cap; /* allocated */
    size_t max; /* hard limit */
    int err;    /* PARLEY_ENOMEM or PARLEY_ETOOBIG */
} path_list_t;

static void path_list_free(path_list_t *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->v[i]);
    free(pl->v);
    pl->v = NULL;
    pl->n = pl->cap = 0;
}

static int path_list_add(path_list_t *pl, const char *s)
{
    if (pl->n == pl->max) {
        pl->err = PARLEY_ETOOBIG;
        return 1;
    }
    if (pl->n == pl->cap) {
        size_t ncap = pl->cap ? pl->cap * 2 : 16;
        char **nv = realloc(pl->v, ncap * sizeof *nv);
        if (!nv) {
            pl->err = PARLEY_ENOMEM;
            return 1;
        }
        pl->v = nv;
        pl->cap = ncap;
    }
    if (!(pl->v[pl->n] = strdup(s))) {
        pl->err = PARLEY_ENOMEM;
        return 1;
    }
    pl->n++;
    return 0;
}

typedef struct backfill {
    const char *pattern;     /* the glob */
    const char *wake_stream; /* never linked by the glob */
    path_list_t paths;       /* matches */
} backfill_t;

static int on_backfill(void *arg, const parley_stream_t *st)
{
    backfill_t *b = arg;
    if (path_ignored(st->path) || strcmp(st->path, b->wake_stream) == 0 ||
        !parley_glob_match(b->pattern, st->path))
        return 0;
    return path_list_add(&b->paths, st->path);
}

/* Link every existing stream the pattern of s matches, at its tail. */
static int backfill(parley_db_t *db, const parley_sub_t *s)
{
    char prefix[PARLEY_PATH_MAX + 1];
    size_t n = parley_glob_literal_prefix(s->pattern);
    memcpy(prefix, s->pattern, n);
    prefix[n] = '\0';
    backfill_t b = {s->pattern, s->wake_stream, {NULL, 0, 0, PARLEY_SUB_MAX_LINKS, 0}};
    int rc = parley_db_stream_scan(db, prefix, on_backfill, &b);
    if (rc == 0)
        rc = b.paths.err;
    for (size_t i = 0; rc == 0 && i < b.paths.n; i++) {
        uint64_t tail;
        rc = tail_of(db, b.paths.v[i], &tail);
        if (rc == 0)
            rc = link(db, s->id, b.paths.v[i], false, tail);
    }
    path_list_free(&b.paths);
    return rc;
}

/* ---- wakes ---------------------------------------------------------------- */

static int new_wake_id(char out[PARLEY_SUB_WAKE_MAX + 1])
{
    unsigned char r[12];
    if (RAND_bytes(r, sizeof r) != 1)
        return PARLEY_ESTORE;
    int n = snprintf(out, PARLEY_SUB_WAKE_MAX + 1, "w_");
    for (size_t i = 0; i < sizeof r; i++)
        n += snprintf(out + n, PARLEY_SUB_WAKE_MAX + 1 - (size_t)n, "%02x", r[i]);
    return 0;
}

/* Append the wake event of s to its wake stream. A wake stream that is
 * missing, deleted, closed, not JSON or not the admin's gets nothing (the
 * wake can still be claimed); that is logged. A wake event names a stream
 * of any user, so it only ever goes where just the admin reads. */
static int write_wake_event(parley_db_t *db, const parley_sub_t *s, const char *trigger,
                            int64_t now_ms, parley_outcome_t *out)
{
    parley_stream_t *st = malloc(sizeof *st);
    if (!st)
        return PARLEY_ENOMEM;
    int rc = parley_db_stream_get(db, s->wake_stream, st);
    bool usable = rc == 0 && !st->deleted && !st->closed && parley_stream_is_json(st) &&
                  parley_stream_is_admin_owned(st);
    free(st);
    if (rc && rc != PARLEY_ENOTFOUND)
        return rc;
    if (!usable) {
        parley_log_warn("subscription %s: wake stream %s is missing, closed, not JSON or not "
                        "the admin's; wake %lld was not announced",
                        s->id, s->wake_stream, (long long)s->generation);
        return 0;
    }
    json_t *ev =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "type", "wake", "subscription_id", s->id, "stream",
                  trigger, "generation", (json_int_t)s->generation, "ts", (json_int_t)now_ms);
    char *text = NULL;
    size_t len = 0;
    rc = ev ? parley_canonjson_dump(ev, &text, &len) : PARLEY_ENOMEM;
    json_decref(ev);
    if (rc)
        return rc;
    int64_t sid = 0;
    rc = parley_stream_append_internal(db, s->wake_stream, "", text, len, &sid);
    free(text);
    if (rc == 0)
        parley_wakeset_add(&out->wake, sid);
    return rc;
}

/* IDLE → WOKEN (s is updated and stored). trigger: the stream that
 * caused it, for the wake event; NULL to name the first pending one. */
static int wake(parley_db_t *db, parley_sub_t *s, const char *trigger, int64_t now_ms,
                parley_outcome_t *out)
{
    char first[PARLEY_PATH_MAX + 1];
    assert(is_idle(s));
    int rc = new_wake_id(s->wake_id);
    if (rc)
        return rc;
    if (is_webhook(s)) {
        s->lease_expires_ms = now_ms + s->lease_ttl_ms;
        s->delivery_due_ms = now_ms;
    }
    s->attempts = 0;
    s->holder[0] = '\0';
    check_rules(s);
    /* The fencing counter moves in the store, atomically with the wake
     * id: ECONFLICT if a wake is already in flight. */
    rc = parley_db_sub_begin_wake(db, s->id, s->wake_id, s->lease_expires_ms, s->delivery_due_ms,
                                  &s->generation);
    if (rc == 0)
        rc = parley_db_sublink_snapshot(db, s->id);
    if (rc)
        return rc;
    if (is_webhook(s)) {
        parley_wakeset_add(&out->wake, PARLEY_SUBSCRIPTION_DOORBELL);
        return 0;
    }
    if (!trigger) {
        rc = parley_db_sublink_first_pending(db, s->id, first);
        if (rc == PARLEY_ENOTFOUND)
            first[0] = '\0', rc = 0;
        trigger = first;
    }
    return rc ? rc : write_wake_event(db, s, trigger, now_ms, out);
}

/* Wake an idle s if any link is pending; *woke says whether it did. */
static int wake_if_pending(parley_db_t *db, parley_sub_t *s, int64_t now_ms, bool *woke,
                           parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1];
    *woke = false;
    if (!is_idle(s))
        return 0;
    int rc = parley_db_sublink_first_pending(db, s->id, path);
    if (rc == PARLEY_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    *woke = true;
    return wake(db, s, path, now_ms, out);
}

/* → IDLE (not stored). */
static void go_idle(parley_sub_t *s)
{
    s->wake_id[0] = '\0';
    s->holder[0] = '\0';
    s->lease_expires_ms = -1;
    s->delivery_due_ms = -1;
    s->attempts = 0;
}

/* → IDLE, stored, and woken again if work is pending. */
static int finish_wake(parley_db_t *db, parley_sub_t *s, int64_t now_ms, bool *woke,
                       parley_outcome_t *out)
{
    char was[PARLEY_SUB_WAKE_MAX + 1];
    snprintf(was, sizeof was, "%s", s->wake_id);
    go_idle(s);
    int rc = update_sub(db, s, was);
    return rc ? rc : wake_if_pending(db, s, now_ms, woke, out);
}

/* ---- management ------------------------------------------------------------ */

/* A wake stream that exists must be the admin's: wake events name every
 * user's streams. 0 with out refused (409) when it is someone else's. */
static int check_wake_stream(parley_db_t *db, const char *path, parley_outcome_t *out)
{
    if (!path || !path[0])
        return 0;
    parley_stream_t *st = malloc(sizeof *st);
    if (!st)
        return PARLEY_ENOMEM;
    int rc = parley_db_stream_get(db, path, st);
    bool foreign = rc == 0 && !parley_stream_is_admin_owned(st);
    free(st);
    if (rc && rc != PARLEY_ENOTFOUND)
        return rc;
    if (foreign)
        refuse(out, PARLEY_ECONFLICT, "WAKE_STREAM_NOT_ADMIN",
               "wake_stream names a stream that belongs to someone other than the admin; wake "
               "events name every user's streams, so a wake stream must be created with the "
               "admin key: choose another path");
    return 0;
}

int parley_subscription_put(parley_db_t *db, const char *id, const parley_sub_spec_t *spec,
                            const parley_sub_view_t *view, int64_t now_ms, parley_outcome_t *out)
{
    json_t *rep = NULL;
    parley_sub_t *s = calloc(1, sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    int rc = check_wake_stream(db, spec->wake_stream, out);
    if (rc || out->refusal)
        goto out_free;
    rc = parley_db_sub_get(db, id, s);
    if (rc == 0) {
        char hash[65];
        rc = parley_subscription_hash(spec, hash);
        if (rc == 0 && strcmp(hash, s->config_hash) != 0) {
            refuse(out, PARLEY_ECONFLICT, "SUBSCRIPTION_ALREADY_EXISTS",
                   "a subscription with this id exists with a different configuration; delete "
                   "it first or use another id");
            goto out_free;
        }
        if (rc == 0 && is_webhook(s) && !is_idle(s) && s->delivery_due_ms < 0 &&
            s->lease_expires_ms < 0) {
            /* A wake given up (--webhook-max-age): the re-confirmation
             * restarts its delivery now, as if it had just been issued. */
            s->attempts = 0;
            s->lease_expires_ms = now_ms + s->lease_ttl_ms;
            s->delivery_due_ms = now_ms;
            rc = update_sub(db, s, s->wake_id);
            if (rc == 0)
                parley_wakeset_add(&out->wake, PARLEY_SUBSCRIPTION_DOORBELL);
        }
        if (rc == 0)
            rc = sub_json(db, s, view, &rep);
        if (rc == 0)
            parley_outcome_answer(out, PARLEY_DONE_OK, rep);
        goto out_free;
    }
    if (rc != PARLEY_ENOTFOUND)
        goto out_free;
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->type, sizeof s->type, "%s", spec->type);
    snprintf(s->pattern, sizeof s->pattern, "%s", spec->pattern);
    snprintf(s->webhook_url, sizeof s->webhook_url, "%s", spec->webhook_url);
    snprintf(s->wake_stream, sizeof s->wake_stream, "%s", spec->wake_stream);
    snprintf(s->description, sizeof s->description, "%s", spec->description);
    snprintf(s->root_url, sizeof s->root_url, "%s", view->root_url);
    s->lease_ttl_ms = spec->lease_ttl_ms;
    s->created_ms = now_ms;
    go_idle(s);
    rc = parley_subscription_hash(spec, s->config_hash);
    if (rc == 0) {
        check_rules(s);
        rc = parley_db_sub_put_config(db, s);
    }
    for (size_t i = 0; rc == 0 && i < spec->nstreams; i++) {
        uint64_t tail;
        rc = tail_of(db, spec->streams[i], &tail);
        if (rc == 0)
            rc = link(db, s->id, spec->streams[i], true, tail);
    }
    if (rc == 0 && s->pattern[0]) {
        rc = backfill(db, s);
        if (rc == PARLEY_ETOOBIG) {
            refuse(out, PARLEY_EINVAL, "INVALID_REQUEST",
                   "the pattern matches more than 100000 existing streams; narrow it");
            rc = 0;
            goto out_free;
        }
    }
    if (rc == 0)
        rc = sub_json(db, s, view, &rep);
    if (rc == 0)
        parley_outcome_answer(out, PARLEY_DONE_CREATED, rep);
out_free:
    free(s);
    return rc;
}

int parley_subscription_get(parley_db_t *db, const char *id, const parley_sub_view_t *view,
                            parley_outcome_t *out)
{
    json_t *rep = NULL;
    parley_sub_t *s = malloc(sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    int rc = parley_db_sub_get(db, id, s);
    if (rc == PARLEY_ENOTFOUND)
        rc = not_found(out);
    else if (rc == 0 && (rc = sub_json(db, s, view, &rep)) == 0)
        parley_outcome_answer(out, PARLEY_DONE_OK, rep);
    free(s);
    return rc;
}

int parley_subscription_delete(parley_db_t *db, const char *id, parley_outcome_t *out)
{
    parley_sub_t *s = malloc(sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    int rc = parley_db_sub_get(db, id, s);
    if (rc == PARLEY_ENOTFOUND)
        rc = not_found(out);
    else if (rc == 0 && (rc = parley_db_sub_remove(db, id)) == 0)
        parley_outcome_answer(out, PARLEY_DONE_EMPTY, NULL);
    free(s);
    return rc;
}

int parley_subscription_add_streams(parley_db_t *db, const char *id, const char *const *paths,
                                    size_t n, int64_t now_ms, parley_outcome_t *out)
{
    parley_sub_t *s = malloc(sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    int rc = parley_db_sub_get(db, id, s);
    if (rc == PARLEY_ENOTFOUND) {
        rc = not_found(out);
        goto out_free;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t tail;
        rc = tail_of(db, paths[i], &tail);
        if (rc == 0)
            rc = link(db, id, paths[i], true, tail);
    }
    (void)now_ms; /* linked at the tail: nothing is pending yet */
    if (rc == 0)
        parley_outcome_answer(out, PARLEY_DONE_EMPTY, NULL);
out_free:
    free(s);
    return rc;
}

int parley_subscription_remove_stream(parley_db_t *db, const char *id, const char *path,
                                      parley_outcome_t *out)
{
    parley_sub_t *s = malloc(sizeof *s);
    parley_sub_link_t *l = malloc(sizeof *l);
    int rc = s && l ? parley_db_sub_get(db, id, s) : PARLEY_ENOMEM;
    if (rc == PARLEY_ENOTFOUND) {
        rc = not_found(out);
        goto out_free;
    }
    if (rc == 0)
        rc = parley_db_sublink_get(db, id, path, l);
    if (rc == 0 && l->by_explicit) {
        l->by_explicit = false;
        rc = l->by_glob ? parley_db_sublink_put(db, l) : parley_db_sublink_remove(db, id, path);
    } else if (rc == PARLEY_ENOTFOUND) {
        rc = 0; /* removing an absent explicit link is idempotent */
    }
    if (rc == 0)
        parley_outcome_answer(out, PARLEY_DONE_EMPTY, NULL);
out_free:
    free(l);
    free(s);
    return rc;
}

/* ---- delivery --------------------------------------------------------------- */

int parley_subscription_claim(parley_db_t *db, const char *id, const char *worker,
                              const parley_keyring_t *kr, int64_t now_ms, parley_outcome_t *out)
{
    json_t *streams = NULL;
    char *token = NULL;
    parley_sub_t *s = malloc(sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    int rc = parley_db_sub_get(db, id, s);
    if (rc == PARLEY_ENOTFOUND) {
        rc = not_found(out);
        goto out_free;
    }
    if (rc)
        goto out_free;
    if (is_webhook(s)) {
        refuse(out, PARLEY_EINVAL, "INVALID_REQUEST", "only pull-wake subscriptions are claimed");
        goto out_free;
    }
    if (s->holder[0] && s->lease_expires_ms > now_ms) {
        json_t *who = json_pack("{s:s, s:I}", "current_holder", s->holder, "generation",
                                (json_int_t)s->generation);
        parley_outcome_refuse(out, PARLEY_ECONFLICT, "ALREADY_CLAIMED",
                              "another worker holds the lease", who);
        goto out_free;
    }
    if (s->holder[0]) {
        /* The lease ran out and maintenance has not yet seen it. */
        bool woke;
        rc = finish_wake(db, s, now_ms, &woke, out);
        if (rc == PARLEY_ECONFLICT) {
            rc = 0;
            refuse(out, PARLEY_ECONFLICT, "ALREADY_CLAIMED", "another worker holds the lease");
        }
        if (rc || out->refusal)
            goto out_free;
    }
    if (is_idle(s)) {
        char path[PARLEY_PATH_MAX + 1];
        rc = parley_db_sublink_first_pending(db, s->id, path);
        if (rc == PARLEY_ENOTFOUND) {
            rc = 0;
            refuse(out, PARLEY_ECONFLICT, "NO_PENDING_WORK",
                   "no linked stream has data past its acked offset");
            goto out_free;
        }
        if (rc == 0)
            rc = wake(db, s, path, now_ms, out);
        if (rc)
            goto out_free;
    }
    snprintf(s->holder, sizeof s->holder, "%s", worker);
    s->lease_expires_ms = now_ms + s->lease_ttl_ms;
    rc = parley_db_sublink_snapshot(db, s->id); /* what this worker is shown */
    if (rc == 0)
        rc = update_sub(db, s, s->wake_id);
    if (rc == PARLEY_ECONFLICT) { /* another worker took it meanwhile */
        rc = 0;
        refuse(out, PARLEY_ECONFLICT, "ALREADY_CLAIMED", "another worker holds the lease");
        goto out_free;
    }
    if (rc == 0)
        rc = parley_keyring_token_issue(kr, s->id, s->generation, s->wake_id,
                                        now_ms / 1000 + PARLEY_SUB_TOKEN_TTL_S, &token);
    if (rc == 0)
        rc = links_array(db, s->id, true, &streams);
    if (rc == 0) {
        json_t *body = json_pack("{s:s, s:I, s:s, s:o, s:I}", "wake_id", s->wake_id, "generation",
                                 (json_int_t)s->generation, "token", token, "streams", streams,
                                 "lease_ttl_ms", (json_int_t)s->lease_ttl_ms);
        if (body)
            parley_outcome_answer(out, PARLEY_DONE_OK, body);
        else
            rc = PARLEY_ENOMEM;
    }
out_free:
    free(token);
    free(s);
    return rc;
}

/* Check the acks of rep against the links of s and the streams' tails;
 * apply them when all are valid. 0 with out untouched, or 0 with a 409
 * INVALID_OFFSET in out. */
static int apply_acks(parley_db_t *db, const parley_sub_t *s, const parley_sub_report_t *rep,
                      parley_outcome_t *out)
{
    parley_sub_link_t *l = malloc(sizeof *l);
    int rc = l ? 0 : PARLEY_ENOMEM;
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        for (size_t i = 0; rc == 0 && i < rep->nacks; i++) {
            uint64_t pos, tail;
            const char *why = NULL;
            rc = parley_db_sublink_get(db, s->id, rep->acks[i].stream, l);
            if (rc == PARLEY_ENOTFOUND) {
                why = "an ack names a stream this subscription does not link";
                rc = 0;
            } else if (rc == 0 && parley_offset_parse(rep->acks[i].offset, &pos) != 0) {
                why = "an ack's offset is not an offset this server returned";
            } else if (rc == 0 && pos < l->acked) {
                why = "an ack's offset is before the stream's acked offset";
            } else if (rc == 0 && (rc = tail_of(db, l->path, &tail)) == 0 && pos > tail) {
                why = "an ack's offset is beyond the stream's tail";
            }
            if (why) {
                refuse(out, PARLEY_ECONFLICT, "INVALID_OFFSET", why);
                break;
            }
            if (rc == 0 && pass == 1 && pos != l->acked) {
                /* never back, never past the tail, checked again by the
                 * store in the same statement */
                rc = parley_db_sublink_advance(db, s->id, l->path, pos);
                if (rc == PARLEY_ECONFLICT) {
                    rc = 0;
                    refuse(out, PARLEY_ECONFLICT, "INVALID_OFFSET",
                           "an ack's offset is before the stream's acked offset or beyond its "
                           "tail");
                    break;
                }
            }
        }
        if (out->refusal)
            break;
    }
    free(l);
    return rc;
}

int parley_subscription_report(parley_db_t *db, const char *id, parley_sub_action_t action,
                               const parley_sub_report_t *rep, const parley_keyring_t *kr,
                               int64_t now_ms, parley_outcome_t *out)
{
    char token_wake[PARLEY_KEYRING_WAKE_MAX + 1];
    int64_t token_gen = 0;
    bool expired = false;
    parley_sub_t *s = malloc(sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    int rc = parley_db_sub_get(db, id, s);
    if (rc == PARLEY_ENOTFOUND) {
        rc = not_found(out);
        goto out_free;
    }
    if (rc)
        goto out_free;
    if ((action == PARLEY_SUB_CALLBACK) != is_webhook(s)) {
        refuse(out, PARLEY_EINVAL, "INVALID_REQUEST",
               action == PARLEY_SUB_CALLBACK
                   ? "callbacks are for webhook subscriptions; pull-wake workers ack and release"
                   : "ack and release are for pull-wake subscriptions; webhooks call back");
        goto out_free;
    }
    if (!rep->token) {
        refuse(out, PARLEY_EUNAUTH, "TOKEN_INVALID",
               "send the wake's token as Authorization: Bearer");
        goto out_free;
    }
    rc = parley_keyring_token_check(kr, rep->token, s->id, now_ms / 1000, &token_gen, token_wake,
                                    &expired);
    if (rc == PARLEY_EINVAL) {
        rc = 0;
        refuse(out, PARLEY_EUNAUTH, expired ? "TOKEN_EXPIRED" : "TOKEN_INVALID",
               expired ? "the token has expired" : "the token is not valid for this subscription");
        goto out_free;
    }
    if (rc)
        goto out_free;
    /* §7.3: token generation, request generation and wake id must all be
     * the current ones; a pull-wake wake must also be held, and a lease
     * that ran out no longer holds it. */
    if (is_idle(s) || token_gen != s->generation || strcmp(token_wake, s->wake_id) != 0 ||
        !rep->has_generation || rep->generation != s->generation || !rep->wake_id ||
        strcmp(rep->wake_id, s->wake_id) != 0 || (!is_webhook(s) && !s->holder[0]) ||
        (s->delivery_due_ms < 0 && s->lease_expires_ms >= 0 && s->lease_expires_ms <= now_ms)) {
        refuse(out, PARLEY_EFENCED, "FENCED", "this wake is no longer current");
        goto out_free;
    }
    bool woke = false;
    if (action == PARLEY_SUB_RELEASE) {
        rc = finish_wake(db, s, now_ms, &woke, out);
        if (rc == 0)
            parley_outcome_answer(out, PARLEY_DONE_EMPTY, NULL);
        goto fenced;
    }
    rc = apply_acks(db, s, rep, out);
    if (rc || out->refusal)
        goto out_free;
    if (rep->done) {
        rc = finish_wake(db, s, now_ms, &woke, out);
    } else {
        s->lease_expires_ms = now_ms + s->lease_ttl_ms; /* the report is a heartbeat */
        rc = update_sub(db, s, s->wake_id);
    }
    if (rc == 0) {
        json_t *body = json_pack("{s:b, s:b}", "ok", 1, "next_wake", woke);
        if (body)
            parley_outcome_answer(out, PARLEY_DONE_OK, body);
        else
            rc = PARLEY_ENOMEM;
    }
fenced:
    if (rc == PARLEY_ECONFLICT) { /* the wake moved on meanwhile (another node) */
        rc = 0;
        parley_outcome_clear(out);
        parley_outcome_init(out);
        refuse(out, PARLEY_EFENCED, "FENCED", "this wake is no longer current");
    }
out_free:
    free(s);
    return rc;
}

int64_t parley_subscription_retry_delay(int64_t attempts, double r)
{
    int64_t d = PARLEY_SUB_RETRY_MIN_MS;
    for (int64_t i = 1; i < attempts && d < PARLEY_SUB_RETRY_MAX_MS; i++)
        d *= 2;
    if (d > PARLEY_SUB_RETRY_MAX_MS)
        d = PARLEY_SUB_RETRY_MAX_MS;
    if (r < -1)
        r = -1;
    if (r > 1)
        r = 1;
    return d + (int64_t)((double)d * 0.2 * r);
}

int parley_subscription_delivered(parley_db_t *db, const char *id, int64_t gen, const char *wake_id,
                                  parley_sub_delivery_t result, int64_t now_ms, int64_t max_age_ms,
                                  bool *given_up, parley_outcome_t *out)
{
    *given_up = false;
    parley_sub_t *s = malloc(sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    int rc = parley_db_sub_get(db, id, s);
    if (rc == PARLEY_ENOTFOUND ||
        (rc == 0 && (s->generation != gen || is_idle(s) || strcmp(s->wake_id, wake_id) != 0 ||
                     s->delivery_due_ms < 0))) {
        rc = 0; /* the wake moved on (a callback, a delete): nothing to record */
        goto out_free;
    }
    if (rc)
        goto out_free;
    bool woke;
    switch (result) {
    case PARLEY_SUB_DELIVERY_FAILED:
        s->attempts++;
        /* Until the first 2xx a webhook wake's lease is the one set when
         * it was issued: its start is when the wake was issued. */
        if (max_age_ms > 0 && s->lease_expires_ms >= 0 &&
            now_ms - (s->lease_expires_ms - s->lease_ttl_ms) >= max_age_ms) {
            s->delivery_due_ms = -1; /* given up: WOKEN, nothing due, no lease */
            s->lease_expires_ms = -1;
            *given_up = true;
        } else {
            s->delivery_due_ms = now_ms + parley_subscription_retry_delay(
                                              s->attempts, (double)random() / RAND_MAX * 2 - 1);
        }
        rc = update_sub(db, s, s->wake_id);
        if (rc)
            *given_up = false;
        break;
    case PARLEY_SUB_DELIVERY_OK:
        s->attempts = 0;
        s->delivery_due_ms = -1;
        s->lease_expires_ms = now_ms + s->lease_ttl_ms;
        rc = update_sub(db, s, s->wake_id);
        break;
    case PARLEY_SUB_DELIVERY_DONE:
        rc = parley_db_sublink_ack_snapshot(db, s->id);
        if (rc == 0)
            rc = finish_wake(db, s, now_ms, &woke, out);
        break;
    }
    if (rc == PARLEY_ECONFLICT)
        rc = 0; /* fenced: the wake moved on (a callback, another node): nothing to record */
out_free:
    free(s);
    return rc;
}

int parley_subscription_delivery(parley_db_t *db, const char *id, const parley_keyring_t *kr,
                                 const char *root_url, int64_t now_ms, char **body, size_t *len,
                                 char *url, int64_t *gen, char *wake_id)
{
    json_t *streams = NULL;
    char *token = NULL;
    char callback[PARLEY_SUB_ROOT_MAX + PARLEY_ROW_ID_MAX + 64];
    parley_sub_t *s = malloc(sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    int rc = parley_db_sub_get(db, id, s);
    if (rc == 0 &&
        (!is_webhook(s) || is_idle(s) || s->delivery_due_ms < 0 || s->delivery_due_ms > now_ms))
        rc = PARLEY_ENOTFOUND;
    if (rc == 0)
        rc = links_array(db, s->id, true, &streams);
    if (rc == 0)
        rc = parley_keyring_token_issue(kr, s->id, s->generation, s->wake_id,
                                        now_ms / 1000 + PARLEY_SUB_TOKEN_TTL_S, &token);
    if (rc == 0) {
        snprintf(callback, sizeof callback, "%s/__ds/subscriptions/%s/callback",
                 root_url ? root_url : s->root_url, s->id);
        json_t *v = json_pack("{s:s, s:s, s:I, s:O, s:s, s:s}", "subscription_id", s->id, "wake_id",
                              s->wake_id, "generation", (json_int_t)s->generation, "streams",
                              streams, "callback_url", callback, "callback_token", token);
        rc = v ? parley_canonjson_dump(v, body, len) : PARLEY_ENOMEM;
        json_decref(v);
    }
    if (rc == 0) {
        snprintf(url, PARLEY_SUB_URL_MAX + 1, "%s", s->webhook_url);
        snprintf(wake_id, PARLEY_SUB_WAKE_MAX + 1, "%s", s->wake_id);
        *gen = s->generation;
    }
    json_decref(streams);
    free(token);
    free(s);
    return rc;
}

int parley_subscription_expire_leases(parley_db_t *db, int64_t now_ms, parley_wakeset_t *wake)
{
    char ids[EXPIRE_BATCH][PARLEY_ROW_ID_MAX + 1];
    int found = 0;
    int rc = parley_db_sub_leases_expired(db, now_ms, ids, EXPIRE_BATCH, &found);
    parley_sub_t *s = found ? malloc(sizeof *s) : NULL;
    if (found && !s)
        return PARLEY_ENOMEM;
    for (int i = 0; rc == 0 && i < found; i++) {
        bool woke;
        parley_outcome_t o;
        parley_outcome_init(&o);
        rc = parley_db_sub_get(db, ids[i], s);
        if (rc == PARLEY_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc == 0 && !is_idle(s) && s->delivery_due_ms < 0 && s->lease_expires_ms >= 0 &&
            s->lease_expires_ms <= now_ms)
            rc = finish_wake(db, s, now_ms, &woke, &o);
        if (rc == PARLEY_ECONFLICT)
            rc = 0; /* moved meanwhile: no longer this expiry's to end */
        parley_wakeset_merge(wake, &o.wake);
    }
    free(s);
    return rc;
}

/* ---- stream hooks --------------------------------------------------------------- */

typedef struct sub_ids {
    path_list_t ids;  /* matching subscription ids */
    const char *path; /* the stream path */
} sub_ids_t;

static int on_pattern(void *arg, const parley_sub_t *s)
{
    sub_ids_t *c = arg;
    if (strcmp(s->wake_stream, c->path) == 0 || !parley_glob_match(s->pattern, c->path))
        return 0;
    return path_list_add(&c->ids, s->id);
}

static int on_path_link(void *arg, const parley_sub_link_t *l)
{
    return path_list_add(arg, l->sub_id);
}

/* Wake every idle subscription linked to path whose link is behind tail. */
static int wake_linked(parley_db_t *db, const char *path, uint64_t tail, int64_t now_ms,
                       parley_outcome_t *out)
{
    path_list_t subs = {NULL, 0, 0, MAX_SUBS, 0};
    parley_sub_t *s = NULL;
    parley_sub_link_t *l = NULL;
    int rc = parley_db_sublink_list(db, NULL, path, on_path_link, &subs);
    if (rc == 0)
        rc = subs.err;
    /* Most streams have no subscription: the rows (6.8 KB) only for those
     * that do, not on every append. */
    if (rc == 0 && subs.n) {
        s = malloc(sizeof *s);
        l = malloc(sizeof *l);
        if (!s || !l)
            rc = PARLEY_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < subs.n; i++) {
        rc = parley_db_sublink_get(db, subs.v[i], path, l);
        if (rc == 0 && tail > l->acked)
            rc = parley_db_sub_get(db, subs.v[i], s);
        else if (rc == 0)
            continue;
        if (rc == 0 && is_idle(s))
            rc = wake(db, s, path, now_ms, out);
    }
    path_list_free(&subs);
    free(l);
    free(s);
    return rc;
}

int parley_subscription_stream_created(parley_db_t *db, const char *path, uint64_t start,
                                       uint64_t tail, int64_t now_ms, parley_outcome_t *out)
{
    if (path_ignored(path))
        return 0;
    /* A stream that was deleted and is created again starts over. */
    path_list_t linked = {NULL, 0, 0, MAX_SUBS, 0};
    sub_ids_t matching = {{NULL, 0, 0, MAX_SUBS, 0}, path};
    parley_sub_link_t *l = malloc(sizeof *l);
    int rc = l ? parley_db_sublink_list(db, NULL, path, on_path_link, &linked) : PARLEY_ENOMEM;
    if (rc == 0)
        rc = linked.err;
    for (size_t i = 0; rc == 0 && i < linked.n; i++) {
        rc = parley_db_sublink_get(db, linked.v[i], path, l);
        if (rc == 0 && l->acked != start) {
            l->acked = start;
            rc = parley_db_sublink_put(db, l);
        }
    }
    /* Matching patterns link it "before that append" (§6.2). */
    if (rc == 0)
        rc = parley_db_sub_with_pattern(db, on_pattern, &matching);
    if (rc == 0)
        rc = matching.ids.err;
    for (size_t i = 0; rc == 0 && i < matching.ids.n; i++)
        rc = link(db, matching.ids.v[i], path, false, start);
    if (rc == 0 && tail > start)
        rc = wake_linked(db, path, tail, now_ms, out);
    path_list_free(&matching.ids);
    path_list_free(&linked);
    free(l);
    return rc;
}

int parley_subscription_stream_appended(parley_db_t *db, const char *path, uint64_t tail,
                                        int64_t now_ms, parley_outcome_t *out)
{
    if (path_ignored(path))
        return 0;
    return wake_linked(db, path, tail, now_ms, out);
}

int parley_subscription_stream_deleted(parley_db_t *db, const char *path, parley_outcome_t *out)
{
    (void)out;
    if (path_ignored(path))
        return 0;
    path_list_t linked = {NULL, 0, 0, MAX_SUBS, 0};
    parley_sub_link_t *l = malloc(sizeof *l);
    int rc = l ? parley_db_sublink_list(db, NULL, path, on_path_link, &linked) : PARLEY_ENOMEM;
    if (rc == 0)
        rc = linked.err;
    for (size_t i = 0; rc == 0 && i < linked.n; i++) {
        rc = parley_db_sublink_get(db, linked.v[i], path, l);
        if (rc == 0 && !l->by_explicit)
            rc = parley_db_sublink_remove(db, linked.v[i], path);
        else if (rc == 0 && l->by_glob) {
            l->by_glob = false; /* the pattern links it again if it comes back */
            rc = parley_db_sublink_put(db, l);
        }
    }
    path_list_free(&linked);
    free(l);
    return rc;
}

/* ---- keys ------------------------------------------------------------------- */

int parley_subscription_keys(parley_db_t *db, int64_t now_ms, parley_keyring_t **out)
{
    unsigned char seed[PARLEY_KEYRING_SEED_LEN], secret[PARLEY_KEYRING_SECRET_LEN];
    size_t seed_len = 0, secret_len = 0;
    int rc = parley_db_key_get(db, KEY_SIGNING, seed, sizeof seed, &seed_len);
    if (rc == 0)
        rc = parley_db_key_get(db, KEY_TOKENS, secret, sizeof secret, &secret_len);
    if (rc == PARLEY_ENOTFOUND) {
        /* First start: make both (a half-stored pair cannot be: one
         * transaction stores both). */
        rc = parley_keyring_generate(seed, secret);
        if (rc == 0)
            rc = parley_db_key_put(db, KEY_SIGNING, seed, sizeof seed, now_ms);
        if (rc == 0)
            rc = parley_db_key_put(db, KEY_TOKENS, secret, sizeof secret, now_ms);
        seed_len = sizeof seed;
        secret_len = sizeof secret;
        if (rc == PARLEY_EEXIST) {
            /* Another node stored its pair first: use that one, so every
             * node signs with the same key. */
            rc = parley_db_key_get(db, KEY_SIGNING, seed, sizeof seed, &seed_len);
            if (rc == 0)
                rc = parley_db_key_get(db, KEY_TOKENS, secret, sizeof secret, &secret_len);
        }
    }
    if (rc == 0)
        rc = parley_keyring_new(seed, seed_len, secret, secret_len, out);
    memset(seed, 0, sizeof seed);
    memset(secret, 0, sizeof secret);
    return rc;
}

/* ---- signing-key rotation (see subscription.h) -------------------------------- */

#define KEY_ROTATED "webhook-ed25519@" /* + "<created_ms>+<overlap_ms>" */

/* A signing key's row as the scan finds it. */
typedef struct key_row {
    char name[96];      /* its name */
    int64_t created_ms; /* created_ms */
    int64_t overlap_ms; /* its predecessor's overlap (0 for the first key) */
} key_row_t;

/* The rows found, the newest PARLEY_SUB_KEYS_MAX kept. */
typedef struct key_scan {
    key_row_t rows[PARLEY_SUB_KEYS_MAX]; /* oldest first */
    int n;                               /* in rows */
} key_scan_t;

static int on_key_row(void *arg, int n, const char *const *c, const size_t *lens)
{
    key_scan_t *ks = arg;
    (void)n;
    (void)lens;
    const char *name = c[0] ? c[0] : "";
    long long created = 0, overlap = 0;
    if (strcmp(name, KEY_SIGNING) == 0)
        overlap = 0;
    else if (strncmp(name, KEY_ROTATED, sizeof KEY_ROTATED - 1) != 0 ||
             sscanf(name + sizeof KEY_ROTATED - 1, "%lld+%lld", &created, &overlap) != 2 ||
             strlen(name) >= sizeof ks->rows[0].name)
        return 0;                       /* not a signing key */
    if (ks->n == PARLEY_SUB_KEYS_MAX) { /* drop the oldest */
        memmove(ks->rows, ks->rows + 1, (PARLEY_SUB_KEYS_MAX - 1) * sizeof ks->rows[0]);
        ks->n--;
    }
    key_row_t *r = &ks->rows[ks->n++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->created_ms = c[1] ? strtoll(c[1], NULL, 10) : 0;
    r->overlap_ms = overlap < 0 ? 0 : overlap;
    return 0;
}

int parley_subscription_keys_list(parley_db_t *db, int64_t now_ms, parley_sub_key_t *keys, int *n)
{
    key_scan_t *ks = calloc(1, sizeof *ks);
    if (!ks)
        return PARLEY_ENOMEM;
    *n = 0;
    int rc = parley_db_table_scan(db, "server_keys", "name, created_ms", "created_ms, name",
                                  on_key_row, ks);
    for (int i = 0; rc == 0 && i < ks->n; i++) {
        parley_sub_key_t *k = &keys[*n];
        size_t len = 0;
        memset(k, 0, sizeof *k);
        rc = parley_db_key_get(db, ks->rows[i].name, k->seed, sizeof k->seed, &len);
        if (rc == 0)
            rc = parley_keyring_kid_of(k->seed, len, k->kid);
        if (rc)
            break;
        k->created_ms = ks->rows[i].created_ms;
        k->active = i == ks->n - 1;
        k->retires_ms = k->active ? -1 : ks->rows[i + 1].created_ms + ks->rows[i + 1].overlap_ms;
        k->published = k->active || now_ms < k->retires_ms;
        (*n)++;
    }
    free(ks);
    return rc;
}

int parley_subscription_keys_reload(parley_db_t *db, int64_t now_ms, parley_keyring_t *kr,
                                    bool *changed)
{
    parley_sub_key_t *keys = calloc(PARLEY_SUB_KEYS_MAX, sizeof *keys);
    unsigned char *seeds = calloc(PARLEY_SUB_KEYS_MAX, PARLEY_KEYRING_SEED_LEN);
    int n = 0, m = 0;
    *changed = false;
    int rc = keys && seeds ? parley_subscription_keys_list(db, now_ms, keys, &n) : PARLEY_ENOMEM;
    for (int i = n - 1; rc == 0 && i >= 0; i--) /* the active key first, then newest first */
        if (keys[i].published)
            memcpy(seeds + (size_t)m++ * PARLEY_KEYRING_SEED_LEN, keys[i].seed,
                   PARLEY_KEYRING_SEED_LEN);
    if (rc == 0 && m > 0)
        rc = parley_keyring_set_signing(kr, seeds, (size_t)m, changed);
    if (keys)
        OPENSSL_cleanse(keys, PARLEY_SUB_KEYS_MAX * sizeof *keys);
    if (seeds)
        OPENSSL_cleanse(seeds, PARLEY_SUB_KEYS_MAX * PARLEY_KEYRING_SEED_LEN);
    free(keys);
    free(seeds);
    return rc;
}

int parley_subscription_keys_rotate(parley_db_t *db, int64_t now_ms, int64_t overlap_ms,
                                    char kid[PARLEY_KEYRING_KID_MAX + 1])
{
    unsigned char seed[PARLEY_KEYRING_SEED_LEN], unused[PARLEY_KEYRING_SECRET_LEN];
    char name[96];
    int rc = parley_keyring_generate(seed, unused);
    if (rc == 0)
        rc = parley_keyring_kid_of(seed, sizeof seed, kid);
    /* Two rotations in one millisecond: the second takes the next one. */
    for (int i = 0; rc == 0 && i < 100; i++) {
        snprintf(name, sizeof name, KEY_ROTATED "%013lld+%lld", (long long)(now_ms + i),
                 (long long)(overlap_ms < 0 ? 0 : overlap_ms));
        rc = parley_db_key_put(db, name, seed, sizeof seed, now_ms + i);
        if (rc != PARLEY_EEXIST)
            break;
        rc = 0;
    }
    OPENSSL_cleanse(seed, sizeof seed);
    OPENSSL_cleanse(unused, sizeof unused);
    return rc;
}
