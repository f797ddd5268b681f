/*
 * visits.c — snapshot visits: who is a viewer, when a visit is due, and
 * the visit write that no read waits for (see visits.h).
 *
 * A due visit is a parley_write_t of its own (visit_write_t) submitted to
 * the writer without a request: its apply runs core's
 * parley_snapshot_visit() in the batch's transaction, its done frees it.
 * queued counts the visit writes between submit and done (invariant 2).
 *
 * Threads: parley_api_visit on HTTP worker threads (the limiter's table is
 * thread-safe, the counters are atomics); apply and done on the writer.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/app.h"
#include "api/ratelimit.h"
#include "api/visits.h"
#include "core/ratelimit.h"
#include "core/snapshot.h"
#include "parley/parley.h"
#include "util/clock.h"

#define UA_MAX 256 /* bytes of a User-Agent that name a viewer */

struct parley_visits {
    parley_ratelimit_t *rl;  /* one bucket per (snapshot, viewer): burst 1, one per interval */
    parley_writer_t *writer; /* where visits go (borrowed) */
    atomic_int queued;       /* visit writes submitted and not yet done */
    atomic_uint_least64_t dropped; /* due visits dropped: the queue was full */
};

/* One visit on its way to the store. */
typedef struct visit_write {
    parley_write_t w;               /* must be first */
    parley_visits_t *v;             /* the limiter (for queued) */
    char id[PARLEY_ROW_ID_MAX + 1]; /* the snapshot */
    int64_t at_ms;                  /* when it was read */
} visit_write_t;

int parley_api_visits_create(unsigned interval_s, parley_writer_t *writer, parley_visits_t **out)
{
    *out = NULL;
    if (interval_s == 0)
        return 0;
    parley_visits_t *v = calloc(1, sizeof *v);
    if (!v)
        return PARLEY_ENOMEM;
    /* Only the first class is used: one token per interval, at most one. */
    parley_rate_rule_t rules[PARLEY_RATE_NCLASSES] = {{0}};
    rules[0] = (parley_rate_rule_t){.interval_ns = (int64_t)interval_s * 1000000000LL,
                                    .burst = 1,
                                    .count = 1,
                                    .period_s = interval_s};
    int rc = parley_ratelimit_create(rules, PARLEY_VISITS_BUCKETS, NULL, &v->rl);
    if (rc) {
        free(v);
        return rc;
    }
    v->writer = writer;
    atomic_init(&v->queued, 0);
    atomic_init(&v->dropped, 0);
    *out = v;
    return 0;
}

void parley_api_visits_free(parley_visits_t *v)
{
    if (!v)
        return;
    parley_ratelimit_free(v->rl);
    free(v);
}

uint64_t parley_api_visits_dropped(const parley_visits_t *v)
{
    return v ? atomic_load(&((parley_visits_t *)v)->dropped) : 0;
}

/* Writer thread: count it (nothing when the snapshot went meanwhile). */
static int apply_visit(parley_write_t *w, parley_db_t *db)
{
    visit_write_t *vw = (visit_write_t *)w;
    return parley_snapshot_visit(db, vw->id, vw->at_ms);
}

/* Writer thread: whatever became of it, nobody waits for the answer. */
static void visit_done(parley_write_t *w, int status)
{
    (void)status;
    visit_write_t *vw = (visit_write_t *)w;
    atomic_fetch_sub(&vw->v->queued, 1);
    free(vw);
}

/* The limiter's key of r's viewer of snapshot id into key: the snapshot
 * id, then "u" + the user, or "a" + the address key + the User-Agent.
 * Returns its length. */
static size_t viewer_key(parley_req_t *r, const char *id, char *key, size_t cap)
{
    size_t n = strlen(id) + 1;
    memcpy(key, id, n); /* the NUL separates the id from the viewer */
    const char *user = parley_req_user(r);
    if (user && *user) {
        size_t len = strlen(user);
        if (len > cap - n - 1)
            len = cap - n - 1;
        key[n++] = 'u';
        memcpy(key + n, user, len);
        return n + len;
    }
    unsigned char addr[9];
    size_t alen = parley_api_ratelimit_address_key(parley_req_client_addr(r), addr);
    key[n++] = 'a';
    key[n++] = (char)alen;
    memcpy(key + n, addr, alen);
    n += alen;
    const char *ua = parley_req_header(r, "User-Agent");
    size_t ulen = ua ? strnlen(ua, UA_MAX) : 0;
    memcpy(key + n, ua ? ua : "", ulen);
    return n + ulen;
}

void parley_api_visit(parley_req_t *r, const parley_snap_t *s)
{
    parley_visits_t *v = parley_api_app(r)->visits;
    if (!v)
        return;
    const char *user = parley_req_user(r);
    if (user && (user[0] == '@' || (*user && strcmp(user, s->owner) == 0)))
        return; /* the owner's own reads are not visits, nor Parley's principals' */
    char key[PARLEY_ROW_ID_MAX + 1 + 2 + PARLEY_OWNER_MAX + 9 + UA_MAX];
    size_t len = viewer_key(r, s->id, key, sizeof key);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec, wait;
    if (!parley_ratelimit_admit(v->rl, PARLEY_RATE_USER_WRITES, key, len, now_ns, &wait))
        return; /* this viewer's visit was counted less than an interval ago */
    if (atomic_fetch_add(&v->queued, 1) >= PARLEY_VISITS_QUEUE_MAX) {
        atomic_fetch_sub(&v->queued, 1);
        atomic_fetch_add(&v->dropped, 1);
        return;
    }
    visit_write_t *vw = calloc(1, sizeof *vw);
    if (!vw) {
        atomic_fetch_sub(&v->queued, 1);
        atomic_fetch_add(&v->dropped, 1);
        return;
    }
    vw->w.apply = apply_visit;
    vw->w.done = visit_done;
    vw->v = v;
    snprintf(vw->id, sizeof vw->id, "%s", s->id);
    vw->at_ms = parley_clock_now_ms();
    if (parley_writer_submit(v->writer, &vw->w) != 0) {
        /* The writer has stopped: done will never run. */
        atomic_fetch_sub(&v->queued, 1);
        free(vw);
    }
}
