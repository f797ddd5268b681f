/*
 * streams.c — the Durable Streams protocol over HTTP (/v1/stream/{path}).
 *
 * This file turns HTTP requests into parley_stream_req_t (header parsing
 * and validation), hands writes to the writer, and turns results into the
 * protocol's headers. The rules themselves live in core/stream.c.
 *
 * Reads: catch-up (GET), long-poll (GET ?live=long-poll) and SSE
 * (GET ?live=sse). Every read runs in a short read transaction on the
 * worker's own connection; none is held while a client is waited on.
 *
 * SSE state machine (fill(), one per connection):
 *
 *     READ --data--> (queue "data" + "control" events) --> FLUSH --> READ
 *       |--nothing new, first time--> queue control(upToDate) --> FLUSH
 *       |--nothing new--> PARKED (hub) --data--> READ
 *       |                          \--deadline/shutdown--> END
 *       \--closed and caught up--> queue control(streamClosed) --> FLUSH --> END
 *
 * A data event and its control event are queued together and written in
 * one go. The pending buffer holds at most one read's worth of events
 * (bounded by max_read_bytes plus framing); a slow client therefore costs
 * bounded memory, and a client that stops reading altogether is dropped by
 * the connection timeout and resumes by offset.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/params.h"
#include "api/write.h"
#include "core/feed.h"
#include "codec/offset.h"
#include "core/producer.h"
#include "core/stream.h"
#include "core/subscription.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/utf8.h"

#define CURSOR_EPOCH_MS 1728432000000LL /* 2024-10-09T00:00:00Z */
#define CURSOR_INTERVAL_MS 20000
#define SSE_READ_BYTES (256 * 1024)

enum write_kind { W_CREATE, W_APPEND, W_DELETE };

typedef struct stream_write {
    enum write_kind kind;    /* what to do */
    parley_stream_req_t req; /* parsed request */
    parley_stream_res_t res; /* outcome */
    char path[PARLEY_PATH_MAX + 1]; /* copy of the path */
    char owner[256];         /* copy of the caller's user id */
    char host[256];          /* Host header, for Location */
} stream_write_t;

/* ---- small helpers --------------------------------------------------------- */

static const char *error_code(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 403:
        return "stale_producer_epoch";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 409:
        return "conflict";
    case 410:
        return "gone";
    case 413:
        return "payload_too_large";
    case 503:
        return "unavailable";
    case 507:
        return "insufficient_storage";
    default:
        return "internal_error";
    }
}

static void add_u64(parley_req_t *r, const char *name, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    parley_req_add_header(r, name, buf);
}

/* The cursor for a live response (PROTOCOL.md §10.1). */
static void make_cursor(parley_req_t *r, char out[32])
{
    const char *client = NULL;
    uint64_t interval = (uint64_t)((parley_clock_now_ms() - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS);
    uint64_t c = 0;
    if (parley_req_query(r, "cursor", &client) == 1 && parley_param_decimal(client, UINT64_MAX / 2, &c) == 0 &&
        c >= interval) {
        /* Never go backwards: jump 1..180 intervals (20 s .. 1 h) ahead. */
        interval = c + 1 + (uint64_t)(random() % 180);
    }
    snprintf(out, 32, "%llu", (unsigned long long)interval);
}

static void add_cursor(parley_req_t *r)
{
    char c[32];
    make_cursor(r, c);
    parley_req_add_header(r, "Stream-Cursor", c);
}

static void add_meta_headers(parley_req_t *r, const parley_stream_t *m)
{
    if (m->ttl_s >= 0)
        add_u64(r, "Stream-TTL", (uint64_t)m->ttl_s);
    if (m->expires_ms >= 0) {
        char t[40];
        parley_clock_format(m->expires_ms, t, sizeof t);
        parley_req_add_header(r, "Stream-Expires-At", t);
    }
}

static void respond_status(parley_req_t *r, int status, const char *why)
{
    if (status == 204 || status == 304 || strcmp(parley_req_method(r), "HEAD") == 0) {
        parley_req_respond_empty(r, status);
        return;
    }
    parley_req_error(r, status, error_code(status), why ? why : "request refused");
}

static void respond_store_error(parley_req_t *r, int err)
{
    if (err == PARLEY_EFULL)
        parley_req_error(r, 507, "insufficient_storage",
                         "the disk is full; nothing was written. Retry once space is freed");
    else if (err == PARLEY_ECLOSED)
        parley_req_error(r, 503, "unavailable", "the server is shutting down; retry shortly");
    else
        parley_req_error(r, 500, "storage_error",
                         "the write could not be made durable and was not applied; the server "
                         "is stopping to recover");
}

/* ---- writes ------------------------------------------------------------------ */

static void reply_u64(parley_reply_t *rp, const char *name, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    parley_reply_header(rp, name, buf);
}

int parley_api_stream_reply(parley_reply_t *rp, const parley_stream_res_t *res, parley_write_t *w)
{
    if (res->has_offset)
        parley_reply_header(rp, "Stream-Next-Offset", res->next_offset);
    if (res->closed)
        parley_reply_header(rp, "Stream-Closed", "true");
    if (res->has_epoch)
        reply_u64(rp, "Producer-Epoch", res->epoch);
    if (res->has_seq)
        reply_u64(rp, "Producer-Seq", res->seq);
    if (res->has_gap) {
        reply_u64(rp, "Producer-Expected-Seq", res->expected_seq);
        reply_u64(rp, "Producer-Received-Seq", res->received_seq);
    }
    if (res->status >= 400) {
        parley_reply_error(rp, res->status, error_code(res->status),
                           res->error ? res->error : "request refused", NULL);
        return res->status;
    }
    for (int i = 0; i < res->nchanged; i++)
        parley_api_notify(w, res->changed[i]);
    rp->status = res->status;
    return 0;
}

/*
 * Writer thread, after a stream write succeeded: write its events to the
 * change feed and tell the subscriptions (core/subscription.h), in the
 * same savepoint, so that the write, its events, a stream's link and the
 * wake it causes commit together.
 */
static int notify_subscriptions(parley_db_t *db, const stream_write_t *sw, parley_write_t *w)
{
    const parley_stream_res_t *res = &sw->res;
    parley_outcome_t o;
    int rc = 0;
    /* The change feed first: stream.created|closed|deleted, in the
     * owner's feed and the feed of all. */
    for (int i = 0; i < res->nevents; i++) {
        json_t *fields = json_pack("{s:s}", "stream", sw->path);
        int64_t ids[2];
        int n = 0;
        rc = fields ? parley_feed_emit(db, res->meta.owner[0] ? res->meta.owner : sw->owner,
                                       res->events[i], fields, NULL, ids, &n)
             : parley_utf8_is_valid(sw->path, strlen(sw->path)) ? PARLEY_ENOMEM
                                                                : PARLEY_EINVAL;
        json_decref(fields);
        if (rc)
            return rc;
        for (int k = 0; k < n; k++)
            parley_api_notify(w, ids[k]);
    }
    int64_t now = parley_clock_now_ms();
    parley_outcome_init(&o);
    if (sw->kind == W_CREATE && res->status == 201)
        rc = parley_subscription_stream_created(db, sw->path,
                                                res->meta.fork_src ? res->meta.fork_pos : 0,
                                                res->meta.tail, now, &o);
    else if (sw->kind == W_APPEND && res->nchanged > 0)
        rc = parley_subscription_stream_appended(db, sw->path, res->meta.tail, now, &o);
    else if (sw->kind == W_DELETE && res->status == 204)
        rc = parley_subscription_stream_deleted(db, sw->path, &o);
    for (int i = 0; i < o.nnotify; i++)
        parley_api_notify(w, o.notify[i]);
    if (o.notify_all)
        w->notify_all = true;
    parley_outcome_clear(&o);
    return rc;
}

/* Writer thread: run the rule, then turn its outcome into the reply. */
static int apply_stream_write(void *ctx, parley_db_t *db, parley_reply_t *rp, parley_write_t *w)
{
    stream_write_t *sw = ctx;
    parley_stream_res_t *res = &sw->res;
    int rc;
    memset(res, 0, sizeof *res);
    switch (sw->kind) {
    case W_CREATE:
        rc = parley_stream_create(db, &sw->req, res);
        break;
    case W_APPEND:
        rc = parley_stream_append(db, &sw->req, res);
        break;
    default:
        rc = parley_stream_delete(db, &sw->req, res);
        break;
    }
    if (rc < 0)
        return rc;
    rc = parley_api_stream_reply(rp, res, w);
    if (rc)
        return rc;
    rc = notify_subscriptions(db, sw, w);
    if (rc)
        return rc;
    if (sw->kind == W_CREATE) {
        if (res->status == 201) {
            char loc[PARLEY_PATH_MAX + 300];
            snprintf(loc, sizeof loc, "http://%s/v1/stream/%s", sw->host[0] ? sw->host : "localhost",
                     sw->path);
            parley_reply_header(rp, "Location", loc);
        }
        if (res->meta.ttl_s >= 0)
            reply_u64(rp, "Stream-TTL", (uint64_t)res->meta.ttl_s);
        if (res->meta.expires_ms >= 0) {
            char t[40];
            parley_clock_format(res->meta.expires_ms, t, sizeof t);
            parley_reply_header(rp, "Stream-Expires-At", t);
        }
        snprintf(rp->content_type, sizeof rp->content_type, "%s", res->meta.content_type);
    }
    rp->status = res->status;
    return 0;
}

static stream_write_t *new_write(parley_req_t *r, enum write_kind kind, const char *path)
{
    stream_write_t *sw = calloc(1, sizeof *sw);
    if (!sw)
        return NULL;
    sw->kind = kind;
    snprintf(sw->path, sizeof sw->path, "%s", path);
    snprintf(sw->owner, sizeof sw->owner, "%s", parley_req_user(r));
    const char *host = parley_req_header(r, "Host");
    snprintf(sw->host, sizeof sw->host, "%s", host ? host : "");
    sw->req.path = sw->path;
    sw->req.owner = sw->owner;
    sw->req.admin = parley_req_is_admin(r);
    sw->req.ttl_s = -1;
    sw->req.expires_ms = -1;
    sw->req.body = parley_req_body(r, &sw->req.body_len);
    return sw;
}

/* Refuse before submitting: sw is freed. */
static void refuse(parley_req_t *r, stream_write_t *sw, const char *why)
{
    free(sw);
    parley_req_error(r, 400, "bad_request", why);
}

static void handle_put(parley_req_t *r, const char *path)
{
    stream_write_t *sw = new_write(r, W_CREATE, path);
    if (!sw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    parley_stream_req_t *q = &sw->req;
    const char *ttl = parley_req_header(r, "Stream-TTL");
    const char *exp = parley_req_header(r, "Stream-Expires-At");
    const char *from = parley_req_header(r, "Stream-Forked-From");
    const char *foff = parley_req_header(r, "Stream-Fork-Offset");
    const char *fsub = parley_req_header(r, "Stream-Fork-Sub-Offset");
    const char *ct = parley_req_header(r, "Content-Type");
    uint64_t v;

    if (ct && *ct) {
        if (strlen(ct) > PARLEY_CTYPE_MAX) {
            refuse(r, sw, "Content-Type is longer than 255 bytes");
            return;
        }
        q->content_type = ct;
    }
    if (ttl && exp) {
        refuse(r, sw, "give either Stream-TTL or Stream-Expires-At, not both");
        return;
    }
    if (ttl) {
        if (parley_param_decimal(ttl, 9999999999ULL, &v)) {
            refuse(r, sw, "Stream-TTL must be a whole number of seconds, e.g. 3600");
            return;
        }
        q->ttl_s = (int64_t)v;
    }
    if (exp) {
        int64_t ms;
        if (parley_clock_parse(exp, &ms) || ms < 0) {
            refuse(r, sw, "Stream-Expires-At must be an RFC 3339 time, e.g. "
                             "2030-01-02T03:04:05Z");
            return;
        }
        q->expires_ms = ms;
    }
    q->closed = parley_param_true(parley_req_header(r, "Stream-Closed"));
    if (!from && (foff || fsub)) {
        refuse(r, sw, "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From");
        return;
    }
    if (from) {
        if (!*from || strlen(from) > PARLEY_PATH_MAX + 16) {
            refuse(r, sw, "Stream-Forked-From must name a stream path");
            return;
        }
        q->fork_from = from;
        if (foff) {
            if (parley_offset_parse(foff, &q->fork_offset)) {
                refuse(r, sw, "Stream-Fork-Offset must be an offset this server returned");
                return;
            }
            q->has_fork_offset = true;
        }
        if (fsub) {
            if (parley_param_decimal(fsub, PARLEY_OFFSET_MAX, &q->fork_sub)) {
                refuse(r, sw, "Stream-Fork-Sub-Offset must be a non-negative whole number");
                return;
            }
        }
    }
    if (q->body_len && q->content_type && parley_stream_same_type(q->content_type, "application/json"))
        parley_stream_frame_json(q); /* off the writer thread */
    parley_api_write(r, apply_stream_write, sw, free);
}

const char *parley_api_stream_append_parse(parley_req_t *r, parley_stream_req_t *q)
{
    const char *pid = parley_req_header(r, "Producer-Id");
    const char *pep = parley_req_header(r, "Producer-Epoch");
    const char *psq = parley_req_header(r, "Producer-Seq");
    const char *sseq = parley_req_header(r, "Stream-Seq");
    const char *ct = parley_req_header(r, "Content-Type");

    q->body = parley_req_body(r, &q->body_len);
    q->closed = parley_param_true(parley_req_header(r, "Stream-Closed"));
    q->content_type = ct && *ct ? ct : NULL;
    if (pid || pep || psq) {
        if (!pid || !pep || !psq)
            return "Producer-Id, Producer-Epoch and Producer-Seq go together";
        if (!*pid || strlen(pid) > PARLEY_TOKEN_MAX)
            return "Producer-Id must be 1 to 255 bytes";
        if (parley_producer_parse_uint(pep, &q->producer_epoch) ||
            parley_producer_parse_uint(psq, &q->producer_seq))
            return "Producer-Epoch and Producer-Seq must be integers from 0 to 2^53-1";
        q->has_producer = true;
        q->producer_id = pid;
    }
    if (sseq) {
        if (!*sseq || strlen(sseq) > PARLEY_TOKEN_MAX)
            return "Stream-Seq must be 1 to 255 bytes";
        q->stream_seq = sseq;
    }
    if (q->body_len == 0 && !q->closed)
        return "empty append: send data, or Stream-Closed: true to close the stream";
    if (q->body_len > 0 && !q->content_type)
        return "an append with data needs a Content-Type";
    if (q->body_len && parley_stream_same_type(q->content_type, "application/json"))
        parley_stream_frame_json(q); /* off the writer thread */
    return NULL;
}

static void handle_post(parley_req_t *r, const char *path)
{
    stream_write_t *sw = new_write(r, W_APPEND, path);
    if (!sw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    const char *why = parley_api_stream_append_parse(r, &sw->req);
    if (why) {
        refuse(r, sw, why);
        return;
    }
    parley_api_write(r, apply_stream_write, sw, free);
}

static void handle_delete(parley_req_t *r, const char *path)
{
    stream_write_t *sw = new_write(r, W_DELETE, path);
    if (!sw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    parley_api_write(r, apply_stream_write, sw, free);
}

/* ---- reads ------------------------------------------------------------------- */

typedef enum { LIVE_NONE, LIVE_LONG_POLL, LIVE_SSE } live_t;

typedef struct stream_read {
    char path[PARLEY_PATH_MAX + 1]; /* the stream */
    live_t live;                    /* mode */
    parley_offset_kind_t kind;      /* start, now or a position */
    uint64_t pos;                   /* where to read (resolved) */
    bool resolved;                  /* pos is final ("now" fixed) */
    int64_t deadline;               /* long-poll deadline (monotonic) */
} stream_read_t;

/*
 * Look the stream up and read from rd->pos, in one short read transaction
 * (max == 0: look up only). Returns an HTTP status (200, 400, 404, 410) or
 * a negative error.
 */
static int read_once(parley_req_t *r, stream_read_t *rd, size_t max, parley_stream_t *meta,
                     parley_buf_t *out, parley_read_t *res)
{
    parley_db_t *db = parley_req_reader(r);
    if (!db)
        return PARLEY_ESTORE;
    int rc = parley_db_begin(db);
    if (rc)
        return rc;
    int st = parley_stream_lookup(db, rd->path, parley_req_user(r), parley_req_is_admin(r), meta);
    if (st == 200) {
        if (!rd->resolved) {
            rd->pos = rd->kind == PARLEY_OFFSET_NOW ? meta->tail : rd->kind == PARLEY_OFFSET_START ? 0 : rd->pos;
            rd->resolved = true;
        }
        if (rd->pos > meta->tail)
            st = 400;
        else if (max > 0)
            rc = parley_stream_read(db, meta, rd->pos, max, out, res);
    }
    parley_db_commit(db);
    if (rc)
        return rc;
    return st;
}

static void add_read_headers(parley_req_t *r, const parley_stream_t *meta, const parley_read_t *res)
{
    char off[PARLEY_OFFSET_LEN + 1];
    parley_offset_format(res->next, off);
    parley_req_add_header(r, "Stream-Next-Offset", off);
    if (res->up_to_date)
        parley_req_add_header(r, "Stream-Up-To-Date", "true");
    if (res->closed)
        parley_req_add_header(r, "Stream-Closed", "true");
    (void)meta;
}

static void wrap_json(parley_buf_t *out, const parley_stream_t *meta)
{
    if (!parley_stream_is_json(meta))
        return;
    parley_buf_t w;
    parley_buf_init(&w, out->len + 3);
    parley_buf_putc(&w, '[');
    parley_buf_append(&w, out->data ? out->data : "", out->len);
    parley_buf_putc(&w, ']');
    parley_buf_free(out);
    *out = w;
}

static void respond_read_error(parley_req_t *r, int st)
{
    if (st < 0) {
        parley_req_error(r, 500, "storage_error", "the stream could not be read; retry");
    } else if (st == 404) {
        respond_status(r, 404, "stream not found");
    } else if (st == 410) {
        respond_status(r, 410, "stream has been deleted");
    } else {
        respond_status(r, 400, "offset is beyond the stream's tail; use an offset this "
                               "stream returned");
    }
}

/* Nothing arrived (timeout, shutdown, or closed at the tail): 204 with the
 * current tail. */
static void long_poll_empty(parley_req_t *r)
{
    stream_read_t *rd = parley_req_data(r);
    parley_stream_t meta;
    parley_buf_t out;
    parley_read_t res;
    parley_buf_init(&out, r ? parley_req_ctx(r)->cfg->max_read_bytes + 64 : 0);
    int st = read_once(r, rd, 0, &meta, &out, &res);
    parley_buf_free(&out);
    if (st != 200) {
        respond_read_error(r, st);
        return;
    }
    char off[PARLEY_OFFSET_LEN + 1];
    parley_offset_format(meta.tail, off);
    parley_req_add_header(r, "Stream-Next-Offset", off);
    parley_req_add_header(r, "Stream-Up-To-Date", "true");
    if (meta.closed)
        parley_req_add_header(r, "Stream-Closed", "true");
    else
        add_cursor(r);
    parley_req_add_header(r, "Cache-Control", "no-store");
    parley_req_respond_empty(r, 204);
}

static void long_poll_step(parley_req_t *r);

static void on_long_poll_resumed(parley_req_t *r)
{
    if (parley_req_wake_reason(r) == PARLEY_WAKE_DATA)
        long_poll_step(r);
    else
        long_poll_empty(r);
}

static void long_poll_step(parley_req_t *r)
{
    stream_read_t *rd = parley_req_data(r);
    const parley_ctx_t *ctx = parley_req_ctx(r);
    parley_stream_t meta;
    parley_buf_t out;
    parley_read_t res;
    uint64_t gen = parley_hub_generation(ctx->hub);
    parley_buf_init(&out, ctx->cfg->max_read_bytes + ctx->cfg->max_append_bytes + 64);
    int st = read_once(r, rd, ctx->cfg->max_read_bytes, &meta, &out, &res);
    if (st != 200) {
        parley_buf_free(&out);
        respond_read_error(r, st);
        return;
    }
    parley_stream_touch(&meta);
    if (res.count > 0) {
        wrap_json(&out, &meta);
        add_read_headers(r, &meta, &res);
        if (!res.closed)
            add_cursor(r);
        parley_req_add_header(r, "Cache-Control", "private, max-age=60, stale-while-revalidate=300");
        parley_req_respond_buf(r, 200, meta.content_type, &out);
        return;
    }
    parley_buf_free(&out);
    if (meta.closed || parley_req_shutting_down(r)) {
        long_poll_empty(r); /* closed at the tail: EOF at once */
        return;
    }
    parley_req_park(r, meta.id, rd->deadline, gen, on_long_poll_resumed);
}

static void etag_of(const parley_stream_t *meta, const parley_read_t *res, char *out, size_t n)
{
    snprintf(out, n, "\"%lld:%llu:%llu%s\"", (long long)meta->id, (unsigned long long)res->start,
             (unsigned long long)res->next, res->closed ? ":c" : "");
}

static void catch_up(parley_req_t *r, stream_read_t *rd)
{
    const parley_ctx_t *ctx = parley_req_ctx(r);
    parley_stream_t meta;
    parley_buf_t out;
    parley_read_t res;
    parley_buf_init(&out, ctx->cfg->max_read_bytes + ctx->cfg->max_append_bytes + 64);
    int st = read_once(r, rd, ctx->cfg->max_read_bytes, &meta, &out, &res);
    if (st != 200) {
        parley_buf_free(&out);
        respond_read_error(r, st);
        return;
    }
    parley_stream_touch(&meta);
    add_read_headers(r, &meta, &res);
    if (rd->kind == PARLEY_OFFSET_NOW) {
        parley_req_add_header(r, "Cache-Control", "no-store");
        parley_buf_free(&out);
        const char *empty = parley_stream_is_json(&meta) ? "[]" : "";
        parley_req_respond(r, 200, meta.content_type, empty, strlen(empty));
        return;
    }
    char etag[96];
    etag_of(&meta, &res, etag, sizeof etag);
    parley_req_add_header(r, "ETag", etag);
    parley_req_add_header(r, "Cache-Control", res.count ? "private, max-age=60, stale-while-revalidate=300" : "no-store");
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && parley_param_etag_match(inm, etag)) {
        parley_buf_free(&out);
        parley_req_respond_empty(r, 304);
        return;
    }
    wrap_json(&out, &meta);
    parley_req_respond_buf(r, 200, meta.content_type, &out);
}

/* ---- SSE --------------------------------------------------------------------- */

typedef struct sse {
    parley_req_t *r;        /* the request */
    stream_read_t rd;       /* where we are */
    bool json;              /* JSON stream: data is an array */
    bool base64;            /* binary stream: data is base64 */
    bool sent_control;      /* a control event went out */
    bool ending;            /* end after the pending bytes */
    int64_t deadline;       /* recycle the connection then */
    parley_buf_t pending;   /* bytes not yet written */
    size_t sent;            /* of pending */
} sse_t;

static void sse_free(void *arg)
{
    sse_t *s = arg;
    parley_buf_free(&s->pending);
    free(s);
}

/* Append "data:<line>\n" for each line of p (split on \r\n, \n, \r). */
static void sse_data_lines(parley_buf_t *b, const char *p, size_t n)
{
    size_t i = 0, start = 0;
    for (;;) {
        if (i == n || p[i] == '\n' || p[i] == '\r') {
            parley_buf_puts(b, "data:");
            parley_buf_append(b, p + start, i - start);
            parley_buf_putc(b, '\n');
            if (i == n)
                break;
            if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
                i++;
            start = ++i;
            continue;
        }
        i++;
    }
}

static void sse_control(sse_t *s, uint64_t next, bool up_to_date, bool closed)
{
    char off[PARLEY_OFFSET_LEN + 1];
    parley_offset_format(next, off);
    parley_buf_printf(&s->pending, "event: control\ndata:{\"streamNextOffset\":\"%s\"", off);
    if (closed) {
        parley_buf_puts(&s->pending, ",\"streamClosed\":true,\"upToDate\":true}\n\n");
        s->ending = true;
        return;
    }
    char cursor[32];
    make_cursor(s->r, cursor);
    parley_buf_printf(&s->pending, ",\"streamCursor\":\"%s\"%s}\n\n", cursor,
                      up_to_date ? ",\"upToDate\":true" : "");
    s->sent_control = true;
}

static void sse_data(sse_t *s, parley_buf_t *data)
{
    parley_buf_puts(&s->pending, "event: data\n");
    if (s->base64) {
        size_t n = data->len;
        const unsigned char *p = (const unsigned char *)(data->data ? data->data : "");
        char line[16384 + 4];
        for (size_t off = 0; off < n; off += 12288) {
            size_t k = n - off < 12288 ? n - off : 12288;
            int len = EVP_EncodeBlock((unsigned char *)line, p + off, (int)k);
            parley_buf_puts(&s->pending, "data:");
            parley_buf_append(&s->pending, line, (size_t)len);
            parley_buf_putc(&s->pending, '\n');
        }
    } else if (s->json) {
        parley_buf_t w;
        parley_buf_init(&w, data->len + 3);
        parley_buf_putc(&w, '[');
        parley_buf_append(&w, data->data ? data->data : "", data->len);
        parley_buf_putc(&w, ']');
        sse_data_lines(&s->pending, w.data, w.len);
        parley_buf_free(&w);
    } else {
        sse_data_lines(&s->pending, data->data ? data->data : "", data->len);
    }
    parley_buf_putc(&s->pending, '\n');
}

/* Produce the next events into s->pending. Returns false when parked. */
static bool sse_produce(sse_t *s)
{
    parley_req_t *r = s->r;
    const parley_ctx_t *ctx = parley_req_ctx(r);
    parley_stream_t meta;
    parley_read_t res;
    parley_buf_t data;
    if (parley_req_shutting_down(r) || parley_clock_mono_ms() >= s->deadline) {
        s->ending = true;
        return true;
    }
    uint64_t gen = parley_hub_generation(ctx->hub);
    parley_buf_init(&data, SSE_READ_BYTES + ctx->cfg->max_append_bytes + 64);
    int st = read_once(r, &s->rd, SSE_READ_BYTES, &meta, &data, &res);
    if (st != 200) {
        parley_buf_free(&data);
        s->ending = true; /* stream gone: end; the client sees it on reconnect */
        return true;
    }
    parley_stream_touch(&meta);
    if (res.count > 0) {
        sse_data(s, &data);
        parley_buf_free(&data);
        s->rd.pos = res.next;
        sse_control(s, res.next, res.up_to_date, res.closed);
        return true;
    }
    parley_buf_free(&data);
    if (meta.closed) {
        sse_control(s, meta.tail, true, true);
        return true;
    }
    if (!s->sent_control) {
        sse_control(s, s->rd.pos, true, false);
        return true;
    }
    int64_t deadline = s->deadline;
    parley_req_park_stream(r, meta.id, deadline, gen);
    return false;
}

static long sse_fill(void *arg, char *buf, size_t max)
{
    sse_t *s = arg;
    if (s->sent == s->pending.len) {
        parley_buf_reset(&s->pending);
        s->sent = 0;
        if (s->ending)
            return -1;
        if (parley_req_wake_reason(s->r) == PARLEY_WAKE_SHUTDOWN)
            return -1;
        if (!sse_produce(s))
            return 0; /* parked: the hub resumes the connection */
        if (s->pending.len == 0)
            return s->ending ? -1 : 0;
    }
    size_t n = s->pending.len - s->sent;
    if (n > max)
        n = max;
    memcpy(buf, s->pending.data + s->sent, n);
    s->sent += n;
    return (long)n;
}

static void start_sse(parley_req_t *r, stream_read_t *rd)
{
    const parley_ctx_t *ctx = parley_req_ctx(r);
    parley_stream_t meta;
    parley_buf_t out;
    parley_read_t res;
    parley_buf_init(&out, 0);
    int st = read_once(r, rd, 0, &meta, &out, &res);
    parley_buf_free(&out);
    if (st != 200) {
        respond_read_error(r, st);
        return;
    }
    sse_t *s = calloc(1, sizeof *s);
    if (!s) {
        respond_store_error(r, PARLEY_ENOMEM);
        return;
    }
    s->r = r;
    s->rd = *rd;
    s->json = parley_stream_is_json(&meta);
    s->base64 = !s->json && strncasecmp(meta.content_type, "text/", 5) != 0;
    s->deadline = parley_clock_mono_ms() + ctx->cfg->sse_recycle_ms;
    parley_buf_init(&s->pending, SSE_READ_BYTES * 2 + ctx->cfg->max_append_bytes * 2 + 4096);
    parley_req_add_header(r, "Cache-Control", "no-cache");
    if (s->base64)
        parley_req_add_header(r, "Stream-SSE-Data-Encoding", "base64");
    parley_req_respond_stream(r, 200, "text/event-stream", sse_fill, s, sse_free);
}

void parley_api_stream_read(parley_req_t *r, const char *path, bool head)
{
    const parley_ctx_t *ctx = parley_req_ctx(r);
    stream_read_t *rd = calloc(1, sizeof *rd);
    if (!rd) {
        respond_store_error(r, PARLEY_ENOMEM);
        return;
    }
    parley_req_set_data(r, rd, free);
    snprintf(rd->path, sizeof rd->path, "%s", path);

    if (head) {
        parley_stream_t meta;
        parley_db_t *db = parley_req_reader(r);
        int st = db ? parley_stream_lookup(db, path, parley_req_user(r), parley_req_is_admin(r), &meta)
                    : PARLEY_ESTORE;
        if (st != 200) {
            respond_read_error(r, st);
            return;
        }
        char off[PARLEY_OFFSET_LEN + 1];
        parley_offset_format(meta.tail, off);
        parley_req_add_header(r, "Stream-Next-Offset", off);
        if (meta.closed)
            parley_req_add_header(r, "Stream-Closed", "true");
        add_meta_headers(r, &meta);
        parley_req_add_header(r, "Cache-Control", "no-store");
        parley_req_add_header(r, "Content-Type", meta.content_type);
        parley_req_respond_empty(r, 200);
        return;
    }

    const char *offset = NULL, *live = NULL;
    int n_off = parley_req_query(r, "offset", &offset);
    int n_live = parley_req_query(r, "live", &live);
    if (n_off < 0 || n_off > 1 || (n_off == 1 && parley_offset_parse_param(offset, &rd->kind, &rd->pos))) {
        parley_req_error(r, 400, "bad_request",
                         "offset must be -1, now, or an offset this stream returned (once)");
        return;
    }
    if (n_off == 0)
        rd->kind = PARLEY_OFFSET_START;
    if (n_live < 0 || n_live > 1) {
        parley_req_error(r, 400, "bad_request", "live must be long-poll or sse (once)");
        return;
    }
    if (n_live == 1) {
        if (strcmp(live, "long-poll") == 0)
            rd->live = LIVE_LONG_POLL;
        else if (strcmp(live, "sse") == 0)
            rd->live = LIVE_SSE;
        else {
            parley_req_error(r, 400, "bad_request", "live must be long-poll or sse");
            return;
        }
        if (n_off == 0) {
            parley_req_error(r, 400, "bad_request",
                             "live reads need an offset: -1 for the start, now for the tail");
            return;
        }
    }
    switch (rd->live) {
    case LIVE_NONE:
        catch_up(r, rd);
        break;
    case LIVE_LONG_POLL:
        rd->deadline = parley_clock_mono_ms() + ctx->cfg->long_poll_ms;
        long_poll_step(r);
        break;
    case LIVE_SSE:
        start_sse(r, rd);
        break;
    }
}

void parley_api_stream(parley_req_t *r, const char *path)
{
    const char *why = NULL;
    const char *m = parley_req_method(r);
    if (strncmp(path, "__ds", 4) == 0 && (path[4] == '\0' || path[4] == '/')) {
        /* Reserved for the control APIs, before any stream operation. */
        parley_api_subscriptions(r, path + 4);
        return;
    }
    if (!parley_param_stream_path(path, &why)) {
        parley_req_error(r, 400, "invalid_path", why);
        return;
    }
    if (parley_stream_path_reserved(path)) {
        parley_req_error(r, 400, "invalid_path",
                         "stream paths starting with _parley/ are reserved; read the event feed "
                         "at /v1/events");
        return;
    }
    if (strcmp(m, "GET") == 0)
        parley_api_stream_read(r, path, false);
    else if (strcmp(m, "HEAD") == 0)
        parley_api_stream_read(r, path, true);
    else if (strcmp(m, "PUT") == 0)
        handle_put(r, path);
    else if (strcmp(m, "POST") == 0)
        handle_post(r, path);
    else if (strcmp(m, "DELETE") == 0)
        handle_delete(r, path);
    else {
        parley_req_add_header(r, "Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        parley_req_error(r, 405, "method_not_allowed",
                         "streams take GET, HEAD, POST, PUT, DELETE and OPTIONS");
    }
}
