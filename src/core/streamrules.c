/*
 * streamrules.c — a client stream's write, with its feed events and
 * subscription hooks (see streamrules.h).
 *
 * after_change() is the one place that turns what a write changed into
 * its consequences, in this order (the order the feed has always had):
 *   1. events: stream.created, then stream.closed (a create with
 *      Stream-Closed has both), or stream.deleted — to the owner's feed
 *      and the feed of all;
 *   2. the subscription hook: created (links and resets, wakes when the
 *      stream starts with data), appended (wakes linked subscriptions) or
 *      deleted (drops pattern links, keeps explicit ones).
 * The event's user is the stream's owner; a stream without one (stored
 * by Parley itself) is reported as the caller's, and expiry, which has no
 * caller, reports it with the empty user.
 *
 * Expiry runs inside the maintenance tick: an event that cannot be built
 * (a path stored before paths had to be UTF-8) is logged and skipped
 * there, rather than failing the tick and keeping every other expired
 * stream alive; a client's request with such a path is refused instead,
 * as before.
 */
#include <jansson.h>
#include <string.h>

#include "core/feed.h"
#include "core/outcome.h"
#include "core/streamrules.h"
#include "core/subscription.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/utf8.h"

/* The feed events for changes to st, in order. */
static int emit_events(parley_db_t *db, const parley_stream_t *st, unsigned changes,
                       const char *actor, parley_wakeset_t *wake)
{
    static const struct {
        unsigned bit;     /* parley_stream_change_t */
        const char *type; /* event type */
    } kinds[] = {
        {PARLEY_STREAM_CHANGE_CREATED, "stream.created"},
        {PARLEY_STREAM_CHANGE_CLOSED, "stream.closed"},
        {PARLEY_STREAM_CHANGE_DELETED, "stream.deleted"},
    };
    const char *user = st->owner[0] ? st->owner : actor ? actor : "";
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (!(changes & kinds[i].bit))
            continue;
        json_t *fields = json_pack("{s:s}", "stream", st->path);
        int rc = fields ? parley_feed_emit(db, user, kinds[i].type, fields, NULL, wake)
                 : parley_utf8_is_valid(st->path, strlen(st->path)) ? PARLEY_ENOMEM
                                                                    : PARLEY_EINVAL;
        json_decref(fields);
        if (rc)
            return rc;
    }
    return 0;
}

/* The subscription hook for changes to st; its wakes join wake. */
static int run_hooks(parley_db_t *db, const parley_stream_t *st, unsigned changes, int64_t now,
                     parley_wakeset_t *wake)
{
    parley_outcome_t o;
    int rc = 0;
    parley_outcome_init(&o);
    if (changes & PARLEY_STREAM_CHANGE_CREATED)
        rc = parley_subscription_stream_created(db, st->path, st->fork_src ? st->fork_pos : 0,
                                                st->tail, now, &o);
    else if (changes & PARLEY_STREAM_CHANGE_WRITTEN)
        rc = parley_subscription_stream_appended(db, st->path, st->tail, now, &o);
    else if (changes & PARLEY_STREAM_CHANGE_DELETED)
        rc = parley_subscription_stream_deleted(db, st->path, &o);
    parley_wakeset_merge(wake, &o.wake);
    parley_outcome_clear(&o);
    return rc;
}

/*
 * After any change to a stream, in the same savepoint: its feed events and
 * the subscription hook. st is the stream after the change; actor the
 * caller (NULL for maintenance).
 */
static int after_change(parley_db_t *db, const parley_stream_t *st, unsigned changes,
                        const char *actor, int64_t now, parley_wakeset_t *wake)
{
    if (!changes)
        return 0;
    int rc = emit_events(db, st, changes, actor, wake);
    if (rc == PARLEY_EINVAL && !actor) {
        parley_log_warn("stream expiry: no event for a stream whose path is not UTF-8");
        rc = 0;
    }
    return rc ? rc : run_hooks(db, st, changes, now, wake);
}

/* The state expiry hands to on_expired. */
typedef struct expiry {
    int64_t now;            /* the tick's time */
    parley_wakeset_t *wake; /* the tick's wake set */
} expiry_t;

static int on_expired(void *arg, parley_db_t *db, const parley_stream_t *st)
{
    expiry_t *x = arg;
    return after_change(db, st, PARLEY_STREAM_CHANGE_DELETED, NULL, x->now, x->wake);
}

int parley_streamrules_create(parley_db_t *db, const parley_stream_req_t *req,
                              parley_outcome_t *out)
{
    /* A stream still at the path but expired goes first, as expiry deletes
     * it (stream.deleted in its owner's feed, the subscription hook);
     * should the create then be refused, the savepoint undoes both. */
    int64_t now = parley_clock_now_ms();
    expiry_t x = {now, &out->wake};
    int rc = parley_stream_expire_path(db, req->path, now, on_expired, &x, &out->wake);
    if (rc == 0)
        rc = parley_stream_create(db, req, out);
    if (rc || out->refusal)
        return rc;
    return after_change(db, &out->meta, out->echo.changes, req->owner, now, &out->wake);
}

int parley_streamrules_append(parley_db_t *db, const parley_stream_req_t *req,
                              parley_outcome_t *out)
{
    int rc = parley_stream_append(db, req, out);
    if (rc || out->refusal)
        return rc;
    return after_change(db, &out->meta, out->echo.changes, req->owner, parley_clock_now_ms(),
                        &out->wake);
}

int parley_streamrules_delete(parley_db_t *db, const parley_stream_req_t *req,
                              parley_outcome_t *out)
{
    int rc = parley_stream_delete(db, req, out);
    if (rc || out->refusal)
        return rc;
    return after_change(db, &out->meta, out->echo.changes, req->owner, parley_clock_now_ms(),
                        &out->wake);
}

int parley_streamrules_expire(parley_db_t *db, int64_t now, parley_wakeset_t *wake)
{
    expiry_t x = {now, wake};
    return parley_stream_expire(db, now, on_expired, &x, wake);
}
