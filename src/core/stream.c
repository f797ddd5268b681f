/*
 * stream.c — the Durable Streams rules (see stream.h and PROTOCOL.md).
 *
 * NOTES ON THE DESIGN
 *
 * Positions. A stream's data is a sequence of positions: bytes for byte
 * streams, messages for JSON streams. Its tail is the next position; an
 * offset is a position written in the format of codec/offset.h. A fork
 * created at position p reads [0, p) from its source (and so on down
 * its source's source...) and keeps its own chunks from p on; offsets are
 * shared, never translated. Chains are walked in loops, never by
 * recursion, and a new fork may be at most PARLEY_STREAM_FORK_DEPTH_MAX
 * deep (400 beyond); a deeper chain stored before that limit still reads.
 *
 * Append checks, in the order the protocol asks for:
 *   missing/expired 404 → soft-deleted 410 → closed (a producer's replay
 *   of the exact closing tuple 204, any other producer request 409 +
 *   Stream-Closed; without producer headers a bare close 204, else 409) →
 *   content type 409 → producer (403 / 400 / 204 / 409) → Stream-Seq 409 →
 *   body (JSON validity, empty array 400) → store.
 *
 * Stream-Seq is scoped per stream: the last accepted value is stored with
 * the stream and must grow (byte-wise) with every append that carries one.
 *
 * Invariants:
 *   1. tail only grows; every successful append grows it by at least 1.
 *   2. refs of a stream equals the number of forks whose fork_src names it.
 *   3. A soft-deleted stream keeps its data while refs > 0 and is removed
 *      when the last fork goes (cascading up the chain).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/jsonmsg.h"
#include "core/producer.h"
#include "core/stream.h"
#include "parley/parley.h"
#include "util/clock.h"

#define STR_(x)         #x
#define STR(x)          STR_(x)
#define FORK_DEPTH_TEXT STR(PARLEY_STREAM_FORK_DEPTH_MAX)

/* ---- content types ---------------------------------------------------- */

/* Length of the media type (before ';'), trailing space trimmed. */
static size_t media_len(const char *ct, const char **start)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    *start = ct;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n;
}

bool parley_stream_same_type(const char *a, const char *b)
{
    const char *sa, *sb;
    size_t na = media_len(a, &sa), nb = media_len(b, &sb);
    return na == nb && strncasecmp(sa, sb, na) == 0;
}

static bool type_is_json(const char *ct)
{
    return parley_stream_same_type(ct, "application/json");
}

bool parley_stream_is_json(const parley_stream_t *meta)
{
    return type_is_json(meta->content_type);
}

/* ---- sliding TTL touches (in memory) ---------------------------------- */

typedef struct touch {
    int64_t id; /* stream id, 0 = empty slot */
    int64_t ms; /* last read */
} touch_t;

static pthread_mutex_t touch_lock = PTHREAD_MUTEX_INITIALIZER;
static touch_t *touches;    /* open addressing, linear probing */
static size_t touch_cap;    /* slots (power of two) */
static size_t touch_used;   /* occupied slots */
static int64_t touch_floor; /* start-up time: no window starts earlier */

#define TOUCH_MAX (1u << 20) /* entries; past this the table stops growing */

static touch_t *touch_slot(touch_t *tab, size_t cap, int64_t id)
{
    size_t i = (size_t)((uint64_t)id * 0x9e3779b97f4a7c15ULL) & (cap - 1);
    while (tab[i].id && tab[i].id != id)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

void parley_stream_touch_init(int64_t start_ms)
{
    pthread_mutex_lock(&touch_lock);
    free(touches);
    touches = NULL;
    touch_cap = touch_used = 0;
    touch_floor = start_ms;
    pthread_mutex_unlock(&touch_lock);
}

void parley_stream_touch(const parley_stream_t *meta)
{
    if (meta->ttl_s < 0)
        return;
    int64_t now = parley_clock_now_ms();
    pthread_mutex_lock(&touch_lock);
    if (touch_used * 2 >= touch_cap && touch_cap < TOUCH_MAX) {
        size_t ncap = touch_cap ? touch_cap * 2 : 1024;
        touch_t *nt = calloc(ncap, sizeof *nt);
        if (nt) {
            for (size_t i = 0; i < touch_cap; i++)
                if (touches[i].id)
                    *touch_slot(nt, ncap, touches[i].id) = touches[i];
            free(touches);
            touches = nt;
            touch_cap = ncap;
        }
    }
    if (touch_cap && touch_used * 4 < touch_cap * 3) {
        touch_t *t = touch_slot(touches, touch_cap, meta->id);
        if (!t->id) {
            t->id = meta->id;
            touch_used++;
        }
        t->ms = now;
    }
    pthread_mutex_unlock(&touch_lock);
}

/* When a stream's sliding window started: last write, read or start-up. */
static int64_t touched_at(const parley_stream_t *meta)
{
    int64_t t = meta->touched_ms;
    pthread_mutex_lock(&touch_lock);
    if (touch_floor > t)
        t = touch_floor;
    if (touch_cap) {
        touch_t *s = touch_slot(touches, touch_cap, meta->id);
        if (s->id && s->ms > t)
            t = s->ms;
    }
    pthread_mutex_unlock(&touch_lock);
    return t;
}

static bool is_expired(const parley_stream_t *meta, int64_t now)
{
    if (meta->expires_ms >= 0 && now >= meta->expires_ms)
        return true;
    if (meta->ttl_s >= 0 && now >= touched_at(meta) + meta->ttl_s * 1000)
        return true;
    return false;
}

/* ---- lookup ------------------------------------------------------------ */

/* May this caller see st? Someone else's stream looks missing. */
static bool visible(const parley_stream_t *st, const char *user, bool admin)
{
    return admin || strcmp(st->owner, user ? user : "") == 0;
}

bool parley_stream_is_admin_owned(const parley_stream_t *st)
{
    return st->owner[0] == '@' || st->owner[0] == '\0';
}

bool parley_stream_path_reserved(const char *path)
{
    return strncmp(path, "_parley/", 8) == 0 || strcmp(path, "_parley") == 0;
}

int parley_stream_lookup(parley_db_t *db, const char *path, const char *user, bool admin,
                         parley_stream_t *meta)
{
    int rc = parley_db_stream_get(db, path, meta);
    if (rc)
        return rc;
    if (!visible(meta, user, admin))
        return PARLEY_ENOTFOUND;
    if (meta->deleted)
        return PARLEY_EGONE;
    if (is_expired(meta, parley_clock_now_ms()))
        return PARLEY_ENOTFOUND;
    return 0;
}

static void set_offset(parley_outcome_t *res, uint64_t pos)
{
    res->echo.has_offset = true;
    res->echo.next = pos;
}

/* Refuse with err and why (static): the rule decided, so 0. */
static int deny(parley_outcome_t *res, int err, const char *why)
{
    parley_outcome_deny(res, err, why);
    return 0;
}

static void changed(parley_outcome_t *res, int64_t id)
{
    parley_wakeset_add(&res->wake, id);
}

/* ---- removal ----------------------------------------------------------- */

/*
 * Remove a stream for good, then release its hold on its source: a
 * soft-deleted source whose last fork this was goes too (cascade).
 */
static int remove_stream(parley_db_t *db, parley_stream_t *st)
{
    int64_t src = st->fork_src;
    int rc = parley_db_stream_remove(db, st->id);
    while (rc == 0 && src) {
        parley_stream_ref_t ref;
        rc = parley_db_stream_ref(db, src, -1, &ref);
        if (rc == PARLEY_ENOTFOUND)
            return 0;
        if (rc || ref.refs > 0 || !ref.deleted)
            return rc;
        rc = parley_db_stream_remove(db, src);
        src = ref.fork_src;
    }
    return rc;
}

/* Delete for a client: soft if forks still read from it. */
static int delete_stream(parley_db_t *db, parley_stream_t *st)
{
    int rc = parley_db_stream_mark_deleted(db, st->id);
    if (rc == 0) {
        st->deleted = true;
        return 0;
    }
    if (rc != PARLEY_ECONFLICT)
        return rc;
    st->refs = 0; /* no fork reads from it: it goes for good */
    return remove_stream(db, st);
}

/* Delete st (loaded) if it has expired at now and is not deleted yet. */
static int expire_one(parley_db_t *db, parley_stream_t *st, int64_t now,
                      parley_stream_expired_fn on_expired, void *arg, parley_wakeset_t *wake)
{
    if (st->deleted || !is_expired(st, now))
        return 0;
    int rc = delete_stream(db, st);
    if (rc == 0)
        parley_wakeset_add(wake, st->id);
    if (rc == 0 && on_expired)
        rc = on_expired(arg, db, st);
    return rc;
}

int parley_stream_expire(parley_db_t *db, int64_t now, parley_stream_expired_fn on_expired,
                         void *arg, parley_wakeset_t *wake)
{
    int64_t ids[64];
    int n = 0;
    int rc = parley_db_stream_expired(db, now, ids, 64, &n);
    for (int i = 0; rc == 0 && i < n; i++) {
        parley_stream_t st;
        rc = parley_db_stream_get_id(db, ids[i], &st);
        if (rc == PARLEY_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = expire_one(db, &st, now, on_expired, arg, wake);
    }
    return rc;
}

int parley_stream_expire_path(parley_db_t *db, const char *path, int64_t now,
                              parley_stream_expired_fn on_expired, void *arg,
                              parley_wakeset_t *wake)
{
    parley_stream_t st;
    int rc = parley_db_stream_get(db, path, &st);
    if (rc == PARLEY_ENOTFOUND)
        return 0;
    return rc ? rc : expire_one(db, &st, now, on_expired, arg, wake);
}

/* ---- create ------------------------------------------------------------ */

/* The path a Stream-Forked-From header names, relative to the stream root. */
static const char *fork_source_path(const char *v)
{
    static const char root[] = "/v1/stream/";
    if (strncmp(v, root, sizeof root - 1) == 0)
        return v + sizeof root - 1;
    while (*v == '/')
        v++;
    return v;
}

void parley_stream_frame_json(parley_stream_req_t *req)
{
    const char *why = NULL;
    req->framed = true;
    req->frame_error = NULL;
    if (parley_jsonmsg_frame(req->body, req->body_len, &req->frame_off, &req->frame_len,
                             &req->frame_count, &why))
        req->frame_error = why ? why : "invalid JSON";
}

/*
 * Why the store refused an append or close on a stream core had checked
 * under the row lock (possible only if the row moved; never on SQLite):
 * the refusal core would have given after a re-read.
 */
static int refuse_moved(parley_db_t *db, int64_t id, parley_outcome_t *res)
{
    parley_stream_t cur;
    int rc = parley_db_stream_get_id(db, id, &cur);
    if (rc && rc != PARLEY_ENOTFOUND)
        return rc;
    if (rc == PARLEY_ENOTFOUND)
        return deny(res, PARLEY_ENOTFOUND, "stream not found");
    if (cur.deleted)
        return deny(res, PARLEY_EGONE, "stream has been deleted");
    if (cur.closed) {
        res->echo.closed = true;
        set_offset(res, cur.tail);
        return deny(res, PARLEY_ECONFLICT, "stream is closed");
    }
    return deny(res, PARLEY_ECONFLICT, "Stream-Seq must increase");
}

/*
 * Store body at the stream's tail (one store append: the tail moves and
 * the data lands at the old tail in the same statement group), recording
 * stream_seq when not NULL. JSON streams: validate and flatten
 * (allow_empty: an empty array stores nothing, as on create). Returns 0, a
 * storage error, or 0 with the refusal (EINVAL, ECONFLICT, EGONE, ENOTFOUND,
 * ETOOBIG) in res. st's tail,
 * touched_ms and stream_seq follow the store.
 */
static int store_body(parley_db_t *db, parley_stream_t *st, const parley_stream_req_t *req,
                      const char *body, size_t len, bool allow_empty, const char *seq, int64_t now,
                      parley_outcome_t *res)
{
    const char *data = body;
    size_t dlen = len;
    uint64_t units = len;
    if (len > 0 && parley_stream_is_json(st)) {
        /* JSON: one chunk per append holding all its messages,
         * comma-separated (the array's interior), so an append costs one
         * row however many messages it carries. The body was framed off
         * the writer thread when the request said application/json;
         * otherwise (a fork inheriting JSON without a Content-Type) it is
         * framed here. */
        parley_stream_req_t local;
        if (!req->framed) {
            local = *req;
            local.body = body;
            local.body_len = len;
            parley_stream_frame_json(&local);
            req = &local;
        }
        if (req->frame_error) {
            return deny(res, PARLEY_EINVAL, req->frame_error);
        }
        if (req->frame_count == 0 && !allow_empty) {
            return deny(res, PARLEY_EINVAL,
                        "empty JSON array: an append must carry at least one message");
        }
        data = body + req->frame_off;
        dlen = req->frame_count ? req->frame_len : 0;
        units = req->frame_count;
    }
    if (units == 0 && !seq)
        return 0;
    uint64_t tail = st->tail;
    int rc = parley_db_stream_append(db, st->id, data, dlen, units, now, seq, -1, &tail);
    if (rc == PARLEY_ETOOBIG) {
        return deny(res, PARLEY_ETOOBIG, "stream is full: positions are exhausted");
    }
    if (rc == PARLEY_ECONFLICT)
        return refuse_moved(db, st->id, res);
    if (rc)
        return rc;
    st->tail = tail;
    st->touched_ms = now;
    if (seq)
        snprintf(st->stream_seq, sizeof st->stream_seq, "%s", seq);
    return 0;
}

static bool same_config(const parley_stream_t *st, const parley_stream_req_t *req,
                        const char *ctype, int64_t fork_src, uint64_t fork_pos)
{
    if (!parley_stream_same_type(st->content_type, ctype))
        return false;
    if (st->ttl_s != req->ttl_s || st->expires_ms != req->expires_ms)
        return false;
    if (st->closed != req->closed)
        return false;
    if (st->fork_src != fork_src)
        return false;
    if (fork_src && req->has_fork_offset && st->fork_pos != fork_pos)
        return false;
    return true;
}

typedef struct unit_ctx {
    uint64_t limit; /* fork boundary above the stream scanned */
    uint64_t from;  /* the anchor position */
    uint64_t len;   /* positions from the anchor to the end of its append */
} unit_ctx_t;

static int on_unit(void *arg, uint64_t start, uint64_t end, uint64_t unit_end, const void *data,
                   size_t len)
{
    unit_ctx_t *u = arg;
    (void)start, (void)end, (void)data, (void)len;
    uint64_t e = unit_end < u->limit ? unit_end : u->limit;
    u->len = e > u->from ? e - u->from : 0;
    return 1;
}

/*
 * How many positions the append holding position p still has from p on,
 * as this stream sees it (a fork boundary cuts an inherited append). The
 * fork chain is walked down in a loop, never recursively: a chain made
 * before the depth limit may be any depth.
 */
static int unit_at(parley_db_t *db, const parley_stream_t *st, uint64_t p, uint64_t limit,
                   uint64_t *len)
{
    int64_t id = st->id;
    int rc = 0;
    if (p < st->fork_pos && st->fork_src) {
        parley_stream_t *cur = malloc(sizeof *cur);
        if (!cur)
            return PARLEY_ENOMEM;
        *cur = *st;
        while (rc == 0 && p < cur->fork_pos && cur->fork_src) {
            if (cur->fork_pos < limit)
                limit = cur->fork_pos;
            rc = parley_db_stream_get_id(db, cur->fork_src, cur);
            if (rc == PARLEY_ENOTFOUND)
                rc = PARLEY_ESTORE;
        }
        id = cur->id;
        free(cur);
        if (rc)
            return rc;
    }
    unit_ctx_t u = {limit, p, 0};
    rc = parley_db_chunk_scan(db, id, p, on_unit, &u);
    *len = u.len;
    return rc;
}

/*
 * How many forks deep the stream st is (0: not a fork), counting at most
 * max + 1 levels: a chain longer than the limit, made before it existed,
 * is not walked to its end.
 */
static int fork_depth(parley_db_t *db, const parley_stream_t *st, int max, int *depth)
{
    int64_t src = st->fork_src;
    int d = 0, rc = 0;
    parley_stream_t *cur = malloc(sizeof *cur);
    if (!cur)
        return PARLEY_ENOMEM;
    while (src && d <= max) {
        d++;
        rc = parley_db_stream_get_id(db, src, cur);
        if (rc) {
            if (rc == PARLEY_ENOTFOUND)
                rc = PARLEY_ESTORE;
            break;
        }
        src = cur->fork_src;
    }
    free(cur);
    *depth = d;
    return rc;
}

/* Resolve the fork source and position. 0, or a status in res. */
static int resolve_fork(parley_db_t *db, const parley_stream_req_t *req, parley_stream_t *src,
                        uint64_t *pos, parley_outcome_t *res)
{
    int rc = parley_db_stream_get(db, fork_source_path(req->fork_from), src);
    if (rc == PARLEY_ENOTFOUND ||
        (rc == 0 && (!visible(src, req->owner, req->admin) ||
                     (!src->deleted && is_expired(src, parley_clock_now_ms()))))) {
        return deny(res, PARLEY_ENOTFOUND, "fork source stream not found");
    }
    if (rc)
        return rc;
    if (src->deleted) {
        return deny(res, PARLEY_ECONFLICT, "fork source stream has been deleted");
    }
    int depth = 0;
    rc = fork_depth(db, src, PARLEY_STREAM_FORK_DEPTH_MAX, &depth);
    if (rc)
        return rc;
    if (depth + 1 > PARLEY_STREAM_FORK_DEPTH_MAX) {
        return deny(res, PARLEY_EINVAL,
                    "fork chain too deep: a stream may be at most " FORK_DEPTH_TEXT
                    " forks away from the stream it started from; fork from a stream "
                    "nearer the start");
    }
    uint64_t p = req->has_fork_offset ? req->fork_offset : src->tail;
    if (p > src->tail) {
        return deny(res, PARLEY_EINVAL, "Stream-Fork-Offset is beyond the source stream's tail");
    }
    if (req->fork_sub) {
        /* A sub-offset counts into the one append that starts at the fork
         * offset (messages for JSON, bytes otherwise), up to its end. */
        uint64_t unit = 0;
        if (!req->has_fork_offset) {
            return deny(res, PARLEY_EINVAL,
                        "Stream-Fork-Sub-Offset needs an explicit Stream-Fork-Offset");
        }
        rc = unit_at(db, src, p, src->tail, &unit);
        if (rc)
            return rc;
        if (req->fork_sub > unit) {
            return deny(res, PARLEY_EINVAL,
                        "Stream-Fork-Sub-Offset is past the end of the append at that offset");
        }
        p += req->fork_sub;
    }
    *pos = p;
    return 0;
}

int parley_stream_create(parley_db_t *db, const parley_stream_req_t *req, parley_outcome_t *res)
{
    parley_stream_t src, st;
    uint64_t fork_pos = 0;
    int64_t now = parley_clock_now_ms();
    const char *ctype = req->content_type;
    int rc;

    if (req->fork_from) {
        rc = resolve_fork(db, req, &src, &fork_pos, res);
        if (rc || res->refusal)
            return rc;
        if (ctype && !parley_stream_same_type(ctype, src.content_type)) {
            return deny(res, PARLEY_ECONFLICT, "Content-Type differs from the fork source's");
        }
        if (!ctype)
            ctype = src.content_type;
    }
    if (!ctype)
        ctype = "application/octet-stream";

    /* TTL / expiry, with a fork's inheritance rules. */
    int64_t ttl = req->ttl_s, expires = req->expires_ms;
    if (req->fork_from && ttl < 0 && expires < 0) {
        ttl = src.ttl_s;
        expires = src.expires_ms;
    }
    parley_stream_req_t eff = *req;
    eff.ttl_s = ttl;
    eff.expires_ms = expires;

    rc = parley_db_stream_get(db, req->path, &st);
    if (rc == 0 && !st.deleted && is_expired(&st, now)) {
        /* Expired but not yet swept: it is gone for clients. */
        rc = delete_stream(db, &st);
        if (rc)
            return rc;
        if (st.refs == 0)
            rc = PARLEY_ENOTFOUND;
        else
            rc = 0; /* soft-deleted: the path stays blocked */
    }
    if (rc == 0) {
        /* Someone else's path is never "ensured" for the caller, not even
         * for the admin, who would otherwise get a 200 for a stream it
         * does not own; the answer does not say whose it is. */
        if (strcmp(st.owner, req->owner ? req->owner : "") != 0) {
            return deny(res, PARLEY_ECONFLICT,
                        "this stream path is in use by someone else; choose another path");
        }
        if (st.deleted) {
            return deny(res, PARLEY_ECONFLICT,
                        "a deleted stream at this path is still read by its forks");
        }
        res->meta = st;
        set_offset(res, st.tail);
        res->echo.closed = st.closed;
        if (!same_config(&st, &eff, ctype, req->fork_from ? src.id : 0, fork_pos)) {
            return deny(res, PARLEY_ECONFLICT, "stream exists with a different configuration");
        }
        parley_outcome_done(res, PARLEY_DONE_OK);
        return 0;
    }
    if (rc != PARLEY_ENOTFOUND)
        return rc;

    memset(&st, 0, sizeof st);
    snprintf(st.path, sizeof st.path, "%s", req->path);
    snprintf(st.owner, sizeof st.owner, "%s", req->owner ? req->owner : "");
    snprintf(st.content_type, sizeof st.content_type, "%s", ctype);
    st.created_ms = st.touched_ms = now;
    st.ttl_s = ttl;
    st.expires_ms = expires;
    if (req->fork_from) {
        st.fork_src = src.id;
        st.fork_pos = fork_pos;
        st.tail = fork_pos;
    }
    rc = parley_db_stream_create(db, &st);
    if (rc)
        return rc;
    if (req->fork_from) {
        parley_stream_ref_t ref;
        rc = parley_db_stream_ref(db, src.id, +1, &ref);
        if (rc)
            return rc;
    }
    rc = store_body(db, &st, req, req->body, req->body_len, true, NULL, now, res);
    if (rc || res->refusal)
        return rc;
    if (req->closed) {
        rc = parley_db_stream_close(db, st.id, NULL, 0, 0, now, &st.tail);
        if (rc)
            return rc;
        st.closed = true;
    }
    parley_outcome_done(res, PARLEY_DONE_CREATED);
    res->meta = st;
    res->echo.closed = st.closed;
    set_offset(res, st.tail);
    changed(res, st.id);
    res->echo.changes =
        PARLEY_STREAM_CHANGE_CREATED | (st.closed ? PARLEY_STREAM_CHANGE_CLOSED : 0);
    return 0;
}

/* ---- append / close ---------------------------------------------------- */

int parley_stream_append(parley_db_t *db, const parley_stream_req_t *req, parley_outcome_t *res)
{
    parley_stream_t st;
    int64_t now = parley_clock_now_ms();
    int rc = parley_db_stream_get(db, req->path, &st);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && (!visible(&st, req->owner, req->admin) ||
                                               (!st.deleted && is_expired(&st, now))))) {
        return deny(res, PARLEY_ENOTFOUND, "stream not found");
    }
    if (rc)
        return rc;
    if (st.deleted) {
        return deny(res, PARLEY_EGONE, "stream has been deleted");
    }
    res->meta = st;
    bool has_body = req->body_len > 0;

    if (st.closed) {
        res->echo.closed = true;
        set_offset(res, st.tail);
        if (req->has_producer) {
            /* §5.2.1: only the exact tuple that closed it is a replay;
             * any other producer request, close or not, is a conflict. */
            if (st.closer[0] && strcmp(st.closer, req->producer_id) == 0 &&
                st.closer_epoch == req->producer_epoch && st.closer_seq == req->producer_seq) {
                parley_stream_touch(&st);
                parley_outcome_done(res,
                                    PARLEY_DONE_EMPTY); /* replay of the append that closed it */
                res->echo.has_epoch = res->echo.has_seq = true;
                res->echo.epoch = st.closer_epoch;
                res->echo.seq = st.closer_seq;
                return 0;
            }
            return deny(res, PARLEY_ECONFLICT,
                        "stream is closed: this producer sequence is not the one that closed it");
        }
        if (!has_body && req->closed) {
            parley_stream_touch(&st);
            parley_outcome_done(res, PARLEY_DONE_EMPTY); /* closing again is idempotent */
            return 0;
        }
        return deny(res, PARLEY_ECONFLICT, "stream is closed");
    }
    if (has_body &&
        (!req->content_type || !parley_stream_same_type(req->content_type, st.content_type))) {
        set_offset(res, st.tail);
        return deny(res, PARLEY_ECONFLICT, "Content-Type does not match the stream's");
    }

    parley_producer_state_t next = {0};
    if (req->has_producer) {
        parley_producer_state_t cur;
        uint64_t expected = 0;
        rc = parley_db_producer_get(db, st.id, req->producer_id, &cur);
        if (rc)
            return rc;
        switch (
            parley_producer_check(&cur, req->producer_epoch, req->producer_seq, &next, &expected)) {
        case PARLEY_PRODUCER_ACCEPT:
            break;
        case PARLEY_PRODUCER_DUPLICATE:
            parley_outcome_done(res, PARLEY_DONE_EMPTY);
            res->echo.has_epoch = res->echo.has_seq = true;
            res->echo.epoch = cur.epoch;
            res->echo.seq = cur.last_seq;
            set_offset(res, st.tail);
            return 0;
        case PARLEY_PRODUCER_STALE_EPOCH:
            res->echo.has_epoch = true;
            res->echo.epoch = cur.epoch;
            return deny(res, PARLEY_EFENCED, "stale producer epoch");
        case PARLEY_PRODUCER_BAD_EPOCH_SEQ:
            return deny(res, PARLEY_EINVAL, "a new producer epoch must start at Producer-Seq 0");
        case PARLEY_PRODUCER_GAP:
            res->echo.has_gap = true;
            res->echo.expected = expected;
            res->echo.received = req->producer_seq;
            return deny(res, PARLEY_ECONFLICT,
                        "producer sequence gap: Producer-Seq must be the last accepted "
                        "sequence number + 1 (see Producer-Expected-Seq)");
        }
    }
    if (req->stream_seq && st.stream_seq[0] && strcmp(req->stream_seq, st.stream_seq) <= 0) {
        return deny(res, PARLEY_ECONFLICT, "Stream-Seq must increase");
    }

    uint64_t old_tail = st.tail;
    rc = store_body(db, &st, req, req->body, req->body_len, false, req->stream_seq, now, res);
    if (rc || res->refusal)
        return rc;
    if (req->has_producer) {
        rc = parley_db_producer_put(db, st.id, req->producer_id, &next);
        if (rc)
            return rc;
        res->echo.has_epoch = res->echo.has_seq = true;
        res->echo.epoch = next.epoch;
        res->echo.seq = next.last_seq;
    }
    if (req->closed) {
        if (req->has_producer) {
            snprintf(st.closer, sizeof st.closer, "%s", req->producer_id);
            st.closer_epoch = req->producer_epoch;
            st.closer_seq = req->producer_seq;
        }
        rc = parley_db_stream_close(db, st.id, req->has_producer ? req->producer_id : NULL,
                                    st.closer_epoch, st.closer_seq, now, &st.tail);
        st.closed = true;
    } else if (st.touched_ms != now) {
        rc = parley_db_stream_touch(db, st.id, now); /* nothing stored: still a write */
    }
    if (rc)
        return rc;
    st.touched_ms = now;
    res->meta = st;
    parley_outcome_done(res, req->has_producer && has_body ? PARLEY_DONE_OK : PARLEY_DONE_EMPTY);
    res->echo.closed = st.closed;
    set_offset(res, st.tail);
    if (st.tail != old_tail || st.closed) {
        changed(res, st.id);
        res->echo.changes |= PARLEY_STREAM_CHANGE_WRITTEN;
    }
    if (req->closed)
        res->echo.changes |= PARLEY_STREAM_CHANGE_CLOSED;
    return 0;
}

/* ---- delete ------------------------------------------------------------ */

int parley_stream_delete(parley_db_t *db, const parley_stream_req_t *req, parley_outcome_t *res)
{
    parley_stream_t st;
    int rc = parley_db_stream_get(db, req->path, &st);
    if (rc == PARLEY_ENOTFOUND ||
        (rc == 0 && (!visible(&st, req->owner, req->admin) ||
                     (!st.deleted && is_expired(&st, parley_clock_now_ms()))))) {
        return deny(res, PARLEY_ENOTFOUND, "stream not found");
    }
    if (rc)
        return rc;
    if (st.deleted) {
        return deny(res, PARLEY_EGONE, "stream has been deleted");
    }
    rc = delete_stream(db, &st);
    if (rc)
        return rc;
    parley_outcome_done(res, PARLEY_DONE_EMPTY);
    res->meta = st;
    changed(res, st.id);
    res->echo.changes = PARLEY_STREAM_CHANGE_DELETED;
    return 0;
}

/* ---- internal streams (event feeds) -------------------------------------- */

/* Load the internal stream at path into *st, creating it if missing. */
static int ensure_row(parley_db_t *db, const char *path, const char *owner, parley_stream_t *st)
{
    int rc = parley_db_stream_get(db, path, st);
    if (rc != PARLEY_ENOTFOUND)
        return rc;
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    snprintf(st->owner, sizeof st->owner, "%s", owner);
    snprintf(st->content_type, sizeof st->content_type, "application/json");
    st->created_ms = st->touched_ms = parley_clock_now_ms();
    st->ttl_s = st->expires_ms = -1;
    rc = parley_db_stream_create(db, st);
    if (rc == PARLEY_EEXIST) /* made meanwhile by another node */
        rc = parley_db_stream_get(db, path, st);
    return rc;
}

int parley_stream_ensure_internal(parley_db_t *db, const char *path, const char *owner,
                                  int64_t *stream_id)
{
    parley_stream_t st;
    int rc = ensure_row(db, path, owner, &st);
    if (rc == 0)
        *stream_id = st.id;
    return rc;
}

int parley_stream_append_row(parley_db_t *db, parley_stream_t *st, const char *msg, size_t len,
                             int64_t expect_tail)
{
    int64_t now = parley_clock_now_ms();
    uint64_t tail = 0;
    int rc = parley_db_stream_append(db, st->id, msg, len, 1, now, NULL, expect_tail, &tail);
    if (rc)
        return rc;
    st->tail = tail;
    st->touched_ms = now;
    return 0;
}

int parley_stream_append_internal(parley_db_t *db, const char *path, const char *owner,
                                  const char *msg, size_t len, int64_t *stream_id)
{
    parley_stream_t st;
    int rc = ensure_row(db, path, owner, &st);
    if (rc == 0)
        rc = parley_stream_append_row(db, &st, msg, len, -1);
    if (rc == 0)
        *stream_id = st.id;
    return rc;
}

int parley_stream_close_internal(parley_db_t *db, const char *path, int64_t *stream_id)
{
    parley_stream_t st;
    int rc = parley_db_stream_get(db, path, &st);
    if (rc)
        return rc;
    *stream_id = st.id;
    if (st.closed)
        return 0;
    return parley_db_stream_close(db, st.id, NULL, 0, 0, parley_clock_now_ms(), &st.tail);
}

int parley_stream_delete_internal(parley_db_t *db, const char *path, int64_t *stream_id)
{
    parley_stream_t st;
    int rc = parley_db_stream_get(db, path, &st);
    if (rc)
        return rc;
    *stream_id = st.id;
    if (st.deleted)
        return 0;
    return delete_stream(db, &st);
}

int parley_stream_fork_internal(parley_db_t *db, const char *src_path, const char *path,
                                const char *owner, uint64_t *pos, int64_t *stream_id)
{
    parley_stream_t src, st;
    int rc = parley_db_stream_get(db, src_path, &src);
    if (rc)
        return rc;
    if (src.deleted)
        return PARLEY_ENOTFOUND;
    rc = parley_db_stream_get(db, path, &st);
    if (rc == 0)
        return PARLEY_EEXIST;
    if (rc != PARLEY_ENOTFOUND)
        return rc;
    memset(&st, 0, sizeof st);
    snprintf(st.path, sizeof st.path, "%s", path);
    snprintf(st.owner, sizeof st.owner, "%s", owner);
    snprintf(st.content_type, sizeof st.content_type, "%s", src.content_type);
    st.created_ms = st.touched_ms = parley_clock_now_ms();
    st.ttl_s = st.expires_ms = -1;
    st.fork_src = src.id;
    st.fork_pos = st.tail = src.tail;
    st.closed = true;
    rc = parley_db_stream_create(db, &st);
    if (rc)
        return rc;
    parley_stream_ref_t ref;
    rc = parley_db_stream_ref(db, src.id, +1, &ref);
    if (rc)
        return rc;
    *pos = st.fork_pos;
    *stream_id = st.id;
    return 0;
}

int parley_stream_branch_internal(parley_db_t *db, const char *src_path, const char *path,
                                  const char *owner, uint64_t pos, int max_depth,
                                  int64_t *stream_id)
{
    parley_stream_t src, st;
    int depth = 0;
    int rc = parley_db_stream_get(db, src_path, &src);
    if (rc)
        return rc;
    if (src.deleted || pos > src.tail)
        return PARLEY_ENOTFOUND;
    rc = fork_depth(db, &src, max_depth, &depth);
    if (rc)
        return rc;
    if (depth + 1 > max_depth)
        return PARLEY_ETOOBIG;
    rc = parley_db_stream_get(db, path, &st);
    if (rc == 0)
        return PARLEY_EEXIST;
    if (rc != PARLEY_ENOTFOUND)
        return rc;
    memset(&st, 0, sizeof st);
    snprintf(st.path, sizeof st.path, "%s", path);
    snprintf(st.owner, sizeof st.owner, "%s", owner);
    snprintf(st.content_type, sizeof st.content_type, "%s", src.content_type);
    st.created_ms = st.touched_ms = parley_clock_now_ms();
    st.ttl_s = st.expires_ms = -1;
    if (pos > 0) { /* a fork at 0 shares nothing: a plain stream */
        st.fork_src = src.id;
        st.fork_pos = pos;
    }
    st.tail = pos;
    rc = parley_db_stream_create(db, &st);
    if (rc)
        return rc;
    if (pos > 0) {
        parley_stream_ref_t ref;
        rc = parley_db_stream_ref(db, src.id, +1, &ref);
        if (rc)
            return rc;
    }
    *stream_id = st.id;
    return 0;
}

/* ---- read -------------------------------------------------------------- */

typedef struct read_ctx {
    parley_buf_t *out; /* body being built */
    bool json;         /* join messages with ',' */
    uint64_t to;       /* stop before this position */
    uint64_t next;     /* position after the last returned */
    size_t max;        /* byte budget */
    size_t count;      /* chunks returned */
    bool full;         /* budget reached */
    int err;           /* first error */
    /* Windowed reads (parley_stream_read_window): max is a hard limit, a
     * piece (a chunk's part of the body, with its leading ',' in JSON
     * mode) may be cut, and the cut is remembered in the cursor. */
    bool window; /* windowed read: the fields below apply */
    bool sep;    /* JSON: the first piece starts with ',' */
    size_t skip; /* bytes of the first piece produced earlier */
    bool inside; /* stopped inside a piece (skip says where) */
} read_ctx_t;

typedef struct slice_ctx {
    uint64_t i;        /* index of the next message */
    uint64_t lo, hi;   /* keep messages [lo, hi) */
    bool first;        /* nothing kept yet */
    parley_buf_t *out; /* where to put them */
} slice_ctx_t;

static int on_slice_message(void *arg, const char *msg, size_t len)
{
    slice_ctx_t *s = arg;
    int rc = 0;
    if (s->i >= s->lo && s->i < s->hi) {
        if (!s->first)
            rc = parley_buf_putc(s->out, ',');
        if (!rc)
            rc = parley_buf_append(s->out, msg, len);
        s->first = false;
    }
    s->i++;
    return rc ? rc : s->i >= s->hi; /* stop once past hi */
}

/* Append messages [lo, hi) of a stored JSON chunk (a comma-separated list)
 * to out, comma-separated. The rare path: reads that start inside an
 * append, and forks whose boundary lies inside one. */
static int slice_messages(const char *data, size_t len, uint64_t lo, uint64_t hi, parley_buf_t *out)
{
    parley_buf_t arr;
    size_t count;
    parley_buf_init(&arr, len + 2);
    int rc = parley_buf_putc(&arr, '[');
    if (!rc)
        rc = parley_buf_append(&arr, data, len);
    if (!rc)
        rc = parley_buf_putc(&arr, ']');
    slice_ctx_t s = {0, lo, hi, true, out};
    if (!rc) {
        rc = parley_jsonmsg_split(arr.data, arr.len, on_slice_message, &s, &count, NULL);
        if (rc == 1)
            rc = 0; /* stopped after hi, as asked */
        else if (rc == PARLEY_EINVAL)
            rc = PARLEY_ESTORE; /* stored data is not what was validated */
    }
    parley_buf_free(&arr);
    return rc;
}

/* Append the next bytes of one piece — an optional ',' and then p — to a
 * window, from byte c->skip on, as many as fit; remember the cut if they
 * do not all fit. true if the piece is now out completely. */
static bool window_put(read_ctx_t *c, bool sep, const char *p, size_t len)
{
    size_t total = len + (sep ? 1 : 0);
    size_t room = c->max > c->out->len ? c->max - c->out->len : 0;
    size_t stop = total - c->skip < room ? total : c->skip + room;
    size_t i = c->skip;
    if (sep && i == 0 && i < stop) {
        c->err = parley_buf_putc(c->out, ',');
        i++;
    }
    if (!c->err && i < stop)
        c->err = parley_buf_append(c->out, p + (i - (sep ? 1 : 0)), stop - i);
    if (stop < total) {
        c->skip = stop;
        c->inside = true;
        c->full = true;
        return false;
    }
    c->skip = 0;
    return true;
}

/* One chunk of a windowed read. Byte streams: positions are bytes, so the
 * cursor moves inside a chunk. JSON streams: the piece is a ',' (except
 * before the body's first) and the chunk's messages in [next, to); only a
 * chunk cut by a read's start or a fork point is sliced (into a temporary
 * buffer), a whole one is copied from the store's row directly. */
static int on_window_chunk(read_ctx_t *c, uint64_t start, uint64_t end, const char *p, size_t len)
{
    if (start > c->next) {
        c->err = PARLEY_ESTORE; /* data missing: the stream went away */
        return 1;
    }
    if (c->out->len >= c->max) {
        c->full = true;
        return 1;
    }
    uint64_t lo = c->next - start;
    uint64_t hi = end > c->to ? c->to - start : end - start;
    if (lo >= hi)
        return 0;
    if (!c->json) {
        if (hi > len)
            hi = len;
        c->skip = 0;
        bool whole = window_put(c, false, p + lo, (size_t)(hi - lo));
        c->next = start + (whole ? hi : lo + c->skip);
        c->skip = 0;
        return c->err || !whole;
    }
    bool sep = c->count > 0 || c->sep;
    bool whole;
    if (lo == 0 && hi == end - start) {
        whole = window_put(c, sep, p, len);
    } else {
        parley_buf_t piece;
        parley_buf_init(&piece, len);
        c->err = slice_messages(p, len, lo, hi, &piece);
        whole = c->err || window_put(c, sep, piece.data ? piece.data : "", piece.len);
        parley_buf_free(&piece);
    }
    if (c->err || !whole)
        return 1;
    c->next = start + hi;
    c->count++;
    return 0;
}

static int on_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end, const void *data,
                    size_t len)
{
    read_ctx_t *c = arg;
    (void)unit_end;
    if (start >= c->to)
        return 1;
    if (c->window)
        return on_window_chunk(c, start, end, data, len);
    if (c->count && c->out->len >= c->max) {
        c->full = true;
        return 1;
    }
    const char *p = data;
    if (!c->json) {
        /* Byte streams: slice the chunk to [next, to). */
        uint64_t lo = c->next > start ? c->next - start : 0;
        uint64_t hi = end > c->to ? c->to - start : end - start;
        if (hi > len)
            hi = len;
        if (lo < hi) {
            c->err = parley_buf_append(c->out, p + lo, (size_t)(hi - lo));
            if (c->err)
                return 1;
        }
        c->next = start + hi;
    } else {
        /* JSON streams: a chunk is one append's messages, comma-separated.
         * Take them whole, or (a read from inside an append, or a fork
         * boundary inside one) just the messages in [next, to). */
        uint64_t lo = c->next > start ? c->next - start : 0;
        uint64_t hi = end > c->to ? c->to - start : end - start;
        if (lo >= hi) {
            c->next = start + hi;
            return 0;
        }
        if (c->count) {
            c->err = parley_buf_putc(c->out, ',');
            if (c->err)
                return 1;
        }
        if (lo == 0 && hi == end - start)
            c->err = parley_buf_append(c->out, p, len);
        else
            c->err = slice_messages(p, len, lo, hi, c->out);
        if (c->err)
            return 1;
        c->next = start + hi;
    }
    c->count++;
    return 0;
}

/* A stretch of a read held by one stream of a fork chain. */
typedef struct chain_seg {
    int64_t id;  /* the stream whose own chunks hold it */
    uint64_t to; /* its end (exclusive); it starts where the one before ended */
} chain_seg_t;

#define CHAIN_BATCH 256 /* stretches one walk down a fork chain remembers */

/*
 * Read [c->next, to) of stream top, following the fork chain, in a loop
 * and bounded memory, whatever the chain's depth (chains made before the
 * depth limit may be deeper than it).
 *
 * Positions below a fork's fork_pos come from its source, so a walk from
 * top down to the stream that holds c->next meets the stretches of the
 * read in reverse order: each level holds [its fork_pos, the smallest
 * fork_pos above it). The walk remembers the last CHAIN_BATCH non-empty
 * stretches (the earliest positions) in a ring and reads them in order.
 * A chain within the limit takes one walk; a deeper one another walk for
 * each CHAIN_BATCH levels read, until the budget is spent or `to` reached.
 */
static int read_chain(parley_db_t *db, const parley_stream_t *top, uint64_t to, read_ctx_t *c)
{
    uint64_t saved_to = c->to;
    int rc;
    if (!top->fork_src || c->next >= top->fork_pos) {
        /* The common case: all of it is the stream's own. */
        c->to = to;
        rc = parley_db_chunk_scan(db, top->id, c->next, on_chunk, c);
        c->to = saved_to;
        return rc ? rc : c->err;
    }
    chain_seg_t *seg = malloc(CHAIN_BATCH * sizeof *seg);
    parley_stream_t *cur = malloc(sizeof *cur);
    rc = seg && cur ? 0 : PARLEY_ENOMEM;
    while (rc == 0 && c->next < to && !c->full && !c->err) {
        size_t n = 0; /* stretches seen; the ring holds the last CHAIN_BATCH */
        uint64_t lim = to, before = c->next;
        *cur = *top;
        for (;;) {
            bool deeper = cur->fork_src && c->next < cur->fork_pos;
            if (!deeper || cur->fork_pos < lim) {
                seg[n % CHAIN_BATCH] = (chain_seg_t){cur->id, lim};
                n++;
            }
            if (!deeper)
                break;
            if (cur->fork_pos < lim)
                lim = cur->fork_pos;
            rc = parley_db_stream_get_id(db, cur->fork_src, cur);
            if (rc) {
                if (rc == PARLEY_ENOTFOUND)
                    rc = PARLEY_ESTORE;
                goto out_free;
            }
        }
        for (size_t i = n; i-- > (n > CHAIN_BATCH ? n - CHAIN_BATCH : 0);) {
            const chain_seg_t *sg = &seg[i % CHAIN_BATCH];
            if (c->next >= sg->to)
                continue;
            c->to = sg->to;
            rc = parley_db_chunk_scan(db, sg->id, c->next, on_chunk, c);
            c->to = saved_to;
            if (rc || c->full || c->err)
                break;
        }
        if (c->next == before)
            break; /* the chain holds nothing more below `to` */
    }
out_free:
    free(cur);
    free(seg);
    return rc ? rc : c->err;
}

int parley_stream_read(parley_db_t *db, const parley_stream_t *meta, uint64_t from,
                       size_t max_bytes, parley_buf_t *out, parley_read_t *rd)
{
    read_ctx_t c = {out,        parley_stream_is_json(meta),
                    meta->tail, from,
                    max_bytes,  0,
                    false,      0,
                    false,      false,
                    0,          false};
    int rc = from < meta->tail ? read_chain(db, meta, meta->tail, &c) : 0;
    if (rc)
        return rc;
    rd->start = from;
    rd->next = c.next > from ? c.next : from;
    rd->tail = meta->tail;
    rd->up_to_date = rd->next >= meta->tail;
    rd->closed = meta->closed && rd->up_to_date;
    rd->count = c.count;
    return 0;
}

int parley_stream_read_window(parley_db_t *db, const parley_stream_t *meta,
                              parley_read_cursor_t *cur, size_t max, parley_buf_t *out)
{
    read_ctx_t c = {out,
                    parley_stream_is_json(meta),
                    cur->end,
                    cur->next,
                    out->len + max,
                    0,
                    false,
                    0,
                    true,
                    cur->sep,
                    cur->piece_off,
                    false};
    size_t before = out->len;
    int rc = 0;
    if (cur->next < cur->end && max > 0) {
        rc = read_chain(db, meta, cur->end, &c);
        if (!rc && out->len == before)
            rc = PARLEY_ESTORE; /* nothing where data should be: gone */
    }
    if (rc)
        return rc;
    cur->next = c.next;
    cur->piece_off = c.inside && c.json ? c.skip : 0;
    cur->inside = c.inside;
    cur->sep = cur->sep || c.count > 0;
    return 0;
}
