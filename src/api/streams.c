/*
 * streams.c — the Durable Streams protocol over HTTP (/v1/stream/{path}).
 *
 * This file turns HTTP requests into parley_stream_req_t (header parsing
 * and validation) inside a core command (core/command.h), hands writes to
 * the writer through parley_api_write(), and renders the rule's outcome as
 * the protocol's status and headers after the commit. The rules themselves
 * live in core/stream.c, and what a write causes (feed events,
 * subscription hooks) in core/streamrules.c; only they run on the writer.
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
 * Every body — a catch-up's, a long-poll's, SSE's events — is produced a
 * window at a time (parley_req_respond_window): each window is read from
 * the store in its own short read transaction with a cursor
 * (parley_stream_read_window), so a reader holds one window however large
 * the stream, and a client that stops reading is disconnected by the read
 * budget (http/budget.h) and resumes by offset. A catch-up is ONE response
 * up to the tail as of its start; its headers name that end before the
 * body. A data event ends at a chunk boundary once it holds
 * SSE_EVENT_BYTES, and its control event follows it.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/metrics.h"
#include "api/params.h"
#include "api/reply.h"
#include "api/status.h"
#include "api/write.h"
#include "codec/offset.h"
#include "core/feed.h"
#include "core/producer.h"
#include "core/stream.h"
#include "core/streamrules.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/log.h"

#define CURSOR_EPOCH_MS    1728432000000LL /* 2024-10-09T00:00:00Z */
#define CURSOR_INTERVAL_MS 20000

enum write_kind { W_CREATE, W_APPEND, W_DELETE };

typedef struct stream_write {
    enum write_kind kind;           /* what to do */
    parley_command_t cmd;           /* the core command: u.stream, the parsed request */
    char path[PARLEY_PATH_MAX + 1]; /* copy of the path */
    char owner[256];                /* copy of the caller's user id */
    char origin[300];               /* for Location: --public-url, or http:// + Host */
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
    if (parley_req_query(r, "cursor", &client) == 1 &&
        parley_param_decimal(client, UINT64_MAX / 2, &c) == 0 && c >= interval) {
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
    if (err == PARLEY_EFULL || err == PARLEY_ECLOSED || err == PARLEY_EUNAVAIL ||
        err == PARLEY_ERETRY)
        parley_api_store_failed(r, err, "the write");
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

void parley_api_stream_render(const parley_outcome_t *o, parley_reply_t *rp)
{
    const parley_stream_echo_t *e = &o->echo;
    int status = parley_api_status(o, parley_api_stream_statuses);
    if (e->has_offset) {
        char off[PARLEY_OFFSET_LEN + 1];
        parley_offset_format(e->next, off);
        parley_reply_header(rp, "Stream-Next-Offset", off);
    }
    if (e->closed)
        parley_reply_header(rp, "Stream-Closed", "true");
    if (e->has_epoch)
        reply_u64(rp, "Producer-Epoch", e->epoch);
    if (e->has_seq)
        reply_u64(rp, "Producer-Seq", e->seq);
    if (e->has_gap) {
        reply_u64(rp, "Producer-Expected-Seq", e->expected);
        reply_u64(rp, "Producer-Received-Seq", e->received);
    }
    if (o->refusal) {
        parley_reply_error(rp, status, error_code(status), o->error ? o->error : "request refused",
                           NULL);
        return;
    }
    rp->status = status;
}

/* After the commit: the protocol's answer for the rule's outcome; a
 * create adds Location, its TTL or expiry and its content type. */
static void render_stream_write(void *ctx, const parley_outcome_t *res, parley_reply_t *rp)
{
    stream_write_t *sw = ctx;
    parley_api_stream_render(res, rp);
    if (res->refusal || sw->kind != W_CREATE)
        return;
    if (res->done == PARLEY_DONE_CREATED) {
        char loc[PARLEY_PATH_MAX + 320];
        snprintf(loc, sizeof loc, "%s/v1/stream/%s", sw->origin, sw->path);
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

static stream_write_t *new_write(parley_req_t *r, enum write_kind kind, const char *path)
{
    stream_write_t *sw = calloc(1, sizeof *sw);
    if (!sw)
        return NULL;
    sw->kind = kind;
    sw->cmd.kind = kind == W_CREATE   ? PARLEY_CMD_STREAM_CREATE
                   : kind == W_APPEND ? PARLEY_CMD_STREAM_APPEND
                                      : PARLEY_CMD_STREAM_DELETE;
    snprintf(sw->path, sizeof sw->path, "%s", path);
    snprintf(sw->owner, sizeof sw->owner, "%s", parley_req_user(r));
    const char *host = parley_req_header(r, "Host");
    const char *public_url = parley_api_app(r)->cfg->public_url;
    if (public_url)
        snprintf(sw->origin, sizeof sw->origin, "%s", public_url);
    else
        snprintf(sw->origin, sizeof sw->origin, "http://%s", host && *host ? host : "localhost");
    sw->cmd.u.stream.path = sw->path;
    sw->cmd.u.stream.owner = sw->owner;
    sw->cmd.u.stream.admin = parley_req_is_admin(r);
    sw->cmd.u.stream.ttl_s = -1;
    sw->cmd.u.stream.expires_ms = -1;
    sw->cmd.u.stream.body = parley_req_body(r, &sw->cmd.u.stream.body_len);
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
    parley_stream_req_t *q = &sw->cmd.u.stream;
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
            refuse(r, sw,
                   "Stream-Expires-At must be an RFC 3339 time, e.g. "
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
    if (q->body_len && q->content_type &&
        parley_stream_same_type(q->content_type, "application/json"))
        parley_stream_frame_json(q); /* off the writer thread */
    parley_api_write(r, &sw->cmd, render_stream_write, sw, free);
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
    const char *why = parley_api_stream_append_parse(r, &sw->cmd.u.stream);
    if (why) {
        refuse(r, sw, why);
        return;
    }
    parley_api_write(r, &sw->cmd, render_stream_write, sw, free);
}

static void handle_delete(parley_req_t *r, const char *path)
{
    stream_write_t *sw = new_write(r, W_DELETE, path);
    if (!sw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    parley_api_write(r, &sw->cmd, render_stream_write, sw, free);
}

/* ---- reads ------------------------------------------------------------------- */

typedef enum { LIVE_NONE, LIVE_LONG_POLL, LIVE_SSE } live_t;

typedef struct stream_read {
    live_t live;               /* mode */
    parley_offset_kind_t kind; /* start, now or a position */
    uint64_t pos;              /* where to read (resolved) */
    bool resolved;             /* pos is final ("now" fixed) */
    uint64_t earliest;         /* READ_TRIMMED: the first position held */
    int64_t deadline;          /* long-poll deadline (monotonic) */
    char path[];               /* the stream (sized to it: an idle SSE
                                  reader keeps this for its whole life) */
} stream_read_t;

/*
 * Look the stream up in one short read transaction and resolve rd->pos.
 * Returns 0, PARLEY_ENOTFOUND, PARLEY_EGONE, PARLEY_EINVAL for a position
 * past the tail, or a storage error.
 */
/*
 * A read renews a TTL stream's sliding window: in this node's memory
 * (parley_stream_touch), and, when several nodes share the database, in
 * the store too, or another node (the one that runs the expiry, or the
 * one the next request lands on) would expire the stream on the last
 * stored touch. That write is fire-and-forget through the writer, and only
 * once the stored touch is older than a tenth of the TTL (at most a
 * second): another node may see a window shortened by that much, never
 * lengthened.
 */
typedef struct touch_write {
    parley_write_t w; /* must be first */
    int64_t id;       /* the stream */
    int64_t now_ms;   /* when it was read */
} touch_write_t;

static int touch_apply(parley_write_t *w, parley_db_t *db)
{
    touch_write_t *t = (touch_write_t *)w;
    return parley_db_stream_touch(db, t->id, t->now_ms);
}

static void touch_done(parley_write_t *w, int status)
{
    (void)status; /* not stored: the next read tries again */
    free(w);
}

static void touch_read(parley_req_t *r, const parley_stream_t *meta)
{
    parley_stream_touch(meta);
    parley_app_t *app = parley_api_app(r);
    if (meta->ttl_s < 0 || !parley_store_shared(app->store))
        return;
    int64_t now = parley_clock_now_ms();
    int64_t every = meta->ttl_s * 100;
    if (every > 1000)
        every = 1000;
    if (now - meta->touched_ms < every)
        return;
    touch_write_t *t = calloc(1, sizeof *t);
    if (!t)
        return;
    t->w.apply = touch_apply;
    t->w.done = touch_done;
    t->id = meta->id;
    t->now_ms = now;
    if (parley_writer_submit(app->writer, &t->w) != 0)
        free(t);
}

/* lookup_in's answer for a position before a change feed's retained
 * start (core/feed.h RETENTION); rd->earliest says where data begins. */
#define READ_TRIMMED 1

static int lookup_in(parley_req_t *r, parley_db_t *db, stream_read_t *rd, parley_stream_t *meta)
{
    int st = parley_stream_lookup(db, rd->path, parley_req_user(r), parley_req_is_admin(r), meta);
    if (st)
        return st;
    uint64_t start = 0;
    bool feed = parley_feed_is_feed(meta->path);
    if (feed && (!rd->resolved || rd->pos < meta->tail)) {
        st = parley_feed_start(db, meta, &start);
        if (st)
            return st;
    }
    if (!rd->resolved) {
        rd->pos = rd->kind == PARLEY_OFFSET_NOW     ? meta->tail
                  : rd->kind == PARLEY_OFFSET_START ? start /* the first event retained */
                                                    : rd->pos;
        rd->resolved = true;
    }
    if (rd->pos > meta->tail)
        return PARLEY_EINVAL;
    if (feed && rd->pos < start) {
        rd->earliest = start;
        return READ_TRIMMED;
    }
    return 0;
}

static int lookup(parley_req_t *r, stream_read_t *rd, parley_stream_t *meta)
{
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    if (!db) /* no connection to the database could be opened */
        return PARLEY_EUNAVAIL;
    int rc = parley_db_begin(db);
    if (rc)
        return rc;
    int st = lookup_in(r, db, rd, meta);
    parley_db_commit(db);
    return st;
}

/* Read the next window of cur (at most max bytes) into out, in its own
 * short read transaction: no transaction stays open while a client is
 * written to. */
static int read_window(parley_req_t *r, const parley_stream_t *meta, parley_read_cursor_t *cur,
                       size_t max, parley_buf_t *out)
{
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    if (!db) /* no connection to the database could be opened */
        return PARLEY_EUNAVAIL;
    int rc = parley_db_begin(db);
    if (rc)
        return rc;
    rc = parley_stream_read_window(db, meta, cur, max, out);
    parley_db_commit(db);
    return rc;
}

/* Headers of a read that returns [pos, end) of the stream meta (end is
 * its tail when the read started, so the read is up to date). */
static void add_read_headers(parley_req_t *r, const parley_stream_t *meta, uint64_t end)
{
    char off[PARLEY_OFFSET_LEN + 1];
    parley_offset_format(end, off);
    parley_req_add_header(r, "Stream-Next-Offset", off);
    parley_req_add_header(r, "Stream-Up-To-Date", "true");
    if (meta->closed && end >= meta->tail)
        parley_req_add_header(r, "Stream-Closed", "true");
}

/* Answer a failed look-up (lookup_in's errors) or read (storage errors). */
static void respond_read_error(parley_req_t *r, int st)
{
    if (st == READ_TRIMMED) {
        /* PROTOCOL.md: 410 for an offset before the earliest retained one. */
        const stream_read_t *rd = parley_req_data(r);
        char off[PARLEY_OFFSET_LEN + 1];
        parley_offset_format(rd->earliest, off);
        if (strcmp(parley_req_method(r), "HEAD") == 0) {
            parley_req_respond_empty(r, 410);
            return;
        }
        parley_reply_t rp;
        parley_reply_init(&rp);
        json_t *details = json_pack("{s:s}", "earliest_offset", off);
        parley_reply_error(&rp, 410, "offset_gone",
                           "events before this offset are past the feed's retention; read "
                           "from earliest_offset (or offset=-1)",
                           details);
        json_decref(details);
        parley_reply_send(r, &rp);
        parley_reply_free(&rp);
    } else if (st == PARLEY_ENOTFOUND) {
        respond_status(r, 404, "stream not found");
    } else if (st == PARLEY_EGONE) {
        respond_status(r, 410, "stream has been deleted");
    } else if (st == PARLEY_EINVAL) {
        respond_status(r, 400,
                       "offset is beyond the stream's tail; use an offset this "
                       "stream returned");
    } else {
        parley_api_store_failed(r, st, "the stream");
    }
}

/*
 * A catch-up or long-poll body: [pos, end) of the stream in ONE response,
 * produced a window at a time (the reader's share of the read budget), so
 * a reader holds one window however large the stream, and a client that
 * stops reading is disconnected rather than growing memory (http/budget.h).
 * JSON streams are framed '[' ... ']', the commas between messages coming
 * from the cursor across windows.
 */
typedef struct body {
    parley_req_t *r;          /* the request */
    parley_stream_t meta;     /* the stream when the read started */
    parley_read_cursor_t cur; /* what is left of the body */
    bool json;                /* frame the messages as an array */
    bool opened;              /* '[' is out */
    parley_buf_t first;       /* read before the response began: sent first */
} body_t;

static void body_free(void *arg)
{
    body_t *b = arg;
    parley_buf_free(&b->first);
    free(b);
}

static int body_refill(void *arg, parley_buf_t *out, size_t room)
{
    body_t *b = arg;
    int rc = 0;
    if (b->first.len) { /* the window respond_body read already */
        rc = parley_buf_append(out, b->first.data, b->first.len);
        parley_buf_free(&b->first);
        return rc ? rc : PARLEY_BODY_MORE;
    }
    if (b->json && !b->opened) {
        rc = parley_buf_putc(out, '[');
        b->opened = true;
    }
    if (!rc && b->cur.next < b->cur.end)
        rc = read_window(b->r, &b->meta, &b->cur, room, out);
    if (rc) {
        parley_log_warn("stream read of '%s' cut short: %s", b->meta.path, parley_strerror(rc));
        return rc;
    }
    if (b->cur.next < b->cur.end)
        return PARLEY_BODY_MORE;
    if (b->json && parley_buf_putc(out, ']'))
        return PARLEY_ENOMEM;
    return PARLEY_BODY_END;
}

#define SMALL_BODY (16 * 1024) /* answered from one buffer: the smallest window */

/* Answer 200 with [pos, end) of meta (headers already added). */
static void respond_body(parley_req_t *r, const parley_stream_t *meta, uint64_t pos, uint64_t end)
{
    bool json = parley_stream_is_json(meta);
    if (pos >= end) {
        const char *empty = json ? "[]" : "";
        parley_req_respond(r, 200, meta->content_type, empty, strlen(empty));
        return;
    }
    body_t *b = calloc(1, sizeof *b);
    if (!b) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    b->r = r;
    b->meta = *meta;
    b->cur.next = pos;
    b->cur.end = end;
    b->json = json;
    /* A body that fits the smallest window (most reads: a client resuming
     * near the tail) is read at once and answered from one buffer, headers
     * and body in one write; it holds no more than a window would. */
    parley_buf_init(&b->first, SMALL_BODY + 1024); /* room for the framing */
    int rc = body_refill(b, &b->first, SMALL_BODY);
    if (rc == PARLEY_BODY_END) {
        parley_req_respond_buf(r, 200, meta->content_type, &b->first);
        body_free(b);
        return;
    }
    if (rc < 0) {
        body_free(b);
        parley_api_store_failed(r, rc, "the stream");
        return;
    }
    /* Larger: the rest a window at a time, after what was read. */
    /* Bytes: the exact length, so a client can tell a cut-short body. */
    uint64_t size = json ? PARLEY_BODY_SIZE_UNKNOWN : end - pos;
    parley_req_respond_window(r, 200, meta->content_type, size, body_refill, b, body_free);
}

/* Nothing arrived (timeout, shutdown, or closed at the tail): 204 with the
 * current tail. */
static void long_poll_empty(parley_req_t *r)
{
    stream_read_t *rd = parley_req_data(r);
    parley_stream_t meta;
    int st = lookup(r, rd, &meta);
    if (st) {
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
    if (parley_app_wake_reason(r) == PARLEY_WAKE_DATA)
        long_poll_step(r);
    else
        long_poll_empty(r);
}

static void long_poll_step(parley_req_t *r)
{
    stream_read_t *rd = parley_req_data(r);
    parley_app_t *ctx = parley_api_app(r);
    parley_stream_t meta;
    uint64_t gen = parley_hub_generation(ctx->hub);
    int st = lookup(r, rd, &meta);
    if (st) {
        respond_read_error(r, st);
        return;
    }
    touch_read(r, &meta);
    if (meta.tail > rd->pos) {
        add_read_headers(r, &meta, meta.tail);
        if (!meta.closed)
            add_cursor(r);
        parley_req_add_header(r, "Cache-Control",
                              "private, max-age=60, stale-while-revalidate=300");
        respond_body(r, &meta, rd->pos, meta.tail);
        return;
    }
    if (meta.closed || parley_req_shutting_down(r)) {
        long_poll_empty(r); /* closed at the tail: EOF at once */
        return;
    }
    parley_app_park(r, meta.id, rd->deadline, gen, on_long_poll_resumed);
}

static void etag_of(const parley_stream_t *meta, uint64_t start, uint64_t end, char *out, size_t n)
{
    snprintf(out, n, "\"%lld:%llu:%llu%s\"", (long long)meta->id, (unsigned long long)start,
             (unsigned long long)end, meta->closed && end >= meta->tail ? ":c" : "");
}

/* A catch-up read: everything from the offset up to the tail as it is now,
 * in one response. */
static void catch_up(parley_req_t *r, stream_read_t *rd)
{
    parley_stream_t meta;
    int st = lookup(r, rd, &meta);
    if (st) {
        respond_read_error(r, st);
        return;
    }
    touch_read(r, &meta);
    uint64_t end = meta.tail; /* fixed now: the headers announce it */
    add_read_headers(r, &meta, end);
    if (rd->kind == PARLEY_OFFSET_NOW) {
        parley_req_add_header(r, "Cache-Control", "no-store");
        respond_body(r, &meta, end, end);
        return;
    }
    char etag[96];
    etag_of(&meta, rd->pos, end, etag, sizeof etag);
    parley_req_add_header(r, "ETag", etag);
    parley_req_add_header(r, "Cache-Control",
                          rd->pos < end ? "private, max-age=60, stale-while-revalidate=300"
                                        : "no-store");
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && parley_param_etag_match(inm, etag)) {
        parley_req_respond_empty(r, 304);
        return;
    }
    respond_body(r, &meta, rd->pos, end);
}

/* ---- SSE --------------------------------------------------------------------- */

#define SSE_EVENT_BYTES (256 * 1024) /* a data event ends at a chunk boundary past this */
#define B64_LINE        12288        /* bytes per base64 data line (16,384 characters) */

/* An SSE reader's state, alive as long as its response. It is kept small
 * (W6 in bench/README.md): an idle reader holds only this, its request and
 * libmicrohttpd's connection; the stream's metadata is held only while a
 * data event is open. */
typedef struct sse {
    parley_req_t *r;   /* the request */
    stream_read_t *rd; /* where the next event starts (the request's data,
                          borrowed: refill runs only while the request lives) */
    bool json;         /* JSON stream: data is an array */
    bool base64;       /* binary stream: data is base64 */
    bool sent_control; /* a control event went out */
    bool ending;       /* end after the pending bytes */
    int64_t deadline;  /* recycle the connection then */
    /* the data event being produced */
    bool in_event;            /* a data event is open */
    parley_stream_t *meta;    /* the stream when it opened (owned; NULL
                                 outside an event) */
    parley_read_cursor_t cur; /* its data still to read */
    size_t event_bytes;       /* stream bytes in it so far */
    bool last_cr;             /* text: the last byte was '\r' */
    unsigned char carry[3];   /* base64: bytes not yet encoded */
    size_t ncarry;            /* entries in carry */
    size_t data_end;          /* out's length where the closed event's data ended */
    int64_t id;               /* the stream's id at the last look-up, 0 before */
} sse_t;

/* Text and JSON data: a "data:" line per line of the data (split on \r\n,
 * \n and \r), streamed: the event's first "data:" went out when it
 * opened, and a line break may fall between two windows. */
static int sse_text(sse_t *s, parley_buf_t *out, const char *p, size_t n)
{
    int rc = 0;
    size_t start = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (p[i] != '\n' && p[i] != '\r') {
            s->last_cr = false;
            continue;
        }
        rc = parley_buf_append(out, p + start, i - start);
        bool crlf = p[i] == '\n' && s->last_cr && i == start;
        if (!rc && !crlf)
            rc = parley_buf_puts(out, "\ndata:");
        s->last_cr = p[i] == '\r';
        start = i + 1;
    }
    return rc ? rc : parley_buf_append(out, p + start, n - start);
}

/* Binary data: base64 lines, each encoding a multiple of three bytes but
 * the event's last (the rest waits in carry until more comes). */
static int sse_base64(sse_t *s, parley_buf_t *out, const char *p, size_t n, bool last)
{
    char line[B64_LINE / 3 * 4 + 4];
    unsigned char group[B64_LINE];
    int rc = 0;
    size_t i = 0;
    while (!rc) {
        size_t k = s->ncarry;
        memcpy(group, s->carry, k);
        size_t take = n - i < B64_LINE - k ? n - i : B64_LINE - k;
        memcpy(group + k, p + i, take);
        i += take;
        k += take;
        size_t whole = last && i == n ? k : k / 3 * 3;
        s->ncarry = k - whole;
        memcpy(s->carry, group + whole, s->ncarry);
        if (whole) {
            int len = EVP_EncodeBlock((unsigned char *)line, group, (int)whole);
            rc = parley_buf_puts(out, "data:");
            if (!rc)
                rc = parley_buf_append(out, line, (size_t)len);
            if (!rc)
                rc = parley_buf_putc(out, '\n');
        }
        if (i == n)
            break;
    }
    return rc;
}

static void sse_control(sse_t *s, parley_buf_t *out, uint64_t next, bool up_to_date, bool closed)
{
    char off[PARLEY_OFFSET_LEN + 1];
    parley_offset_format(next, off);
    parley_buf_printf(out, "event: control\ndata:{\"streamNextOffset\":\"%s\"", off);
    if (closed) {
        parley_buf_puts(out, ",\"streamClosed\":true,\"upToDate\":true}\n\n");
        s->ending = true;
        return;
    }
    char cursor[32];
    make_cursor(s->r, cursor);
    parley_buf_printf(out, ",\"streamCursor\":\"%s\"%s}\n\n", cursor,
                      up_to_date ? ",\"upToDate\":true" : "");
    s->sent_control = true;
}

/* The next window of the open data event; closes it (and adds its control
 * event) at the end of its data, or at a chunk boundary past
 * SSE_EVENT_BYTES. db: a reader inside a read transaction, or NULL to
 * read in a transaction of its own. */
static int sse_event_step(sse_t *s, parley_buf_t *out, size_t room, parley_db_t *db)
{
    /* Framing grows text by up to 6x in the worst case and base64 by 4/3:
     * read a window's worth that will usually fit. */
    size_t max = s->base64 ? room / 4 * 3 : room / 2;
    if (max < 4096)
        max = 4096;
    parley_buf_t data;
    parley_buf_init(&data, max);
    int rc = parley_buf_reserve(&data, max);
    if (!rc)
        rc = db ? parley_stream_read_window(db, s->meta, &s->cur, max, &data)
                : read_window(s->r, s->meta, &s->cur, max, &data);
    if (!rc) {
        s->event_bytes += data.len;
        bool done =
            s->cur.next >= s->cur.end || (!s->cur.inside && s->event_bytes >= SSE_EVENT_BYTES);
        if (s->base64)
            rc = sse_base64(s, out, data.data ? data.data : "", data.len, done);
        else
            rc = sse_text(s, out, data.data ? data.data : "", data.len);
        if (!rc && done) {
            if (s->json)
                rc = parley_buf_putc(out, ']');
            if (!rc)
                rc = parley_buf_puts(out, s->base64 ? "\n" : "\n\n");
            s->in_event = false;
            s->data_end = out->len;
            s->rd->pos = s->cur.next;
            bool at_tail = s->cur.next >= s->meta->tail;
            sse_control(s, out, s->cur.next, at_tail, s->meta->closed && at_tail);
            free(s->meta);
            s->meta = NULL;
        }
    }
    parley_buf_free(&data);
    return rc;
}

/*
 * The shared last event (app.h: parley_sse_slot_t). A slot is filled by a
 * reader that read the event [pos, tail) whole in one window, in the same
 * read transaction as its look-up, with the hub generation it read before
 * that look-up. Another reader may take it when its own generation is the
 * same (nothing was committed since, so its own look-up would find the
 * same stream and tail, or a later one whose commit wakes it again) and it
 * is at pos (the event) or at tail (nothing new: it parks). Only streams a
 * look-up alone decides for are cached: not change feeds (retention), not
 * streams with a TTL or an expiry (a look-up may find them gone with no
 * commit), not a store shared with other nodes (their commits reach this
 * hub later than the data). The control event is the reader's own (its
 * cursor).
 */
#define SSE_CACHE_MAX (16 * 1024) /* larger events are not cached */

static bool sse_cacheable(parley_app_t *app, const parley_stream_t *meta)
{
    return meta->ttl_s < 0 && meta->expires_ms < 0 && !meta->closed &&
           !parley_feed_is_feed(meta->path) && !parley_store_shared(app->store);
}

static void sse_cache_put(parley_app_t *app, const parley_stream_t *meta, uint64_t gen,
                          uint64_t pos, const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, text, len);
    parley_sse_slot_t *slot = &app->sse[(uint64_t)meta->id % PARLEY_APP_SSE_SLOTS];
    pthread_mutex_lock(&app->sse_lock);
    if (slot->id == meta->id && slot->gen > gen) { /* a newer one is there */
        pthread_mutex_unlock(&app->sse_lock);
        free(copy);
        return;
    }
    char *old = slot->text;
    slot->id = meta->id;
    slot->gen = gen;
    slot->pos = pos;
    slot->tail = meta->tail;
    slot->text = copy;
    slot->len = len;
    pthread_mutex_unlock(&app->sse_lock);
    free(old);
}

typedef enum { CACHE_MISS, CACHE_EVENT, CACHE_AT_TAIL } cache_hit_t;

/* Take the shared event if it is this reader's next one (appended to out,
 * rd->pos moved to its tail), or learn that nothing is new. */
static cache_hit_t sse_cache_get(parley_app_t *app, sse_t *s, uint64_t gen, parley_buf_t *out)
{
    if (!s->id || !s->rd->resolved)
        return CACHE_MISS;
    cache_hit_t hit = CACHE_MISS;
    parley_sse_slot_t *slot = &app->sse[(uint64_t)s->id % PARLEY_APP_SSE_SLOTS];
    pthread_mutex_lock(&app->sse_lock);
    if (slot->id == s->id && slot->gen == gen) {
        if (slot->pos == s->rd->pos && slot->tail > slot->pos) {
            if (parley_buf_append(out, slot->text, slot->len) == 0) {
                s->rd->pos = slot->tail;
                hit = CACHE_EVENT;
            }
        } else if (slot->tail == s->rd->pos) {
            hit = CACHE_AT_TAIL;
        }
    }
    pthread_mutex_unlock(&app->sse_lock);
    return hit;
}

static int sse_refill(void *arg, parley_buf_t *out, size_t room)
{
    sse_t *s = arg;
    parley_req_t *r = s->r;
    parley_app_t *ctx = parley_api_app(r);
    if (s->in_event) {
        int rc = sse_event_step(s, out, room, NULL);
        if (rc)
            parley_log_warn("SSE read of '%s' cut short: %s", s->rd->path, parley_strerror(rc));
        return rc ? rc : PARLEY_BODY_MORE;
    }
    if (s->ending || parley_app_wake_reason(r) == PARLEY_WAKE_SHUTDOWN ||
        parley_req_shutting_down(r) || parley_clock_mono_ms() >= s->deadline)
        return PARLEY_BODY_END;
    parley_stream_t meta;
    uint64_t gen = parley_hub_generation(ctx->hub);
    switch (sse_cache_get(ctx, s, gen, out)) {
    case CACHE_EVENT:
        sse_control(s, out, s->rd->pos, true, false);
        return PARLEY_BODY_MORE;
    case CACHE_AT_TAIL:
        if (s->sent_control) {
            parley_app_park_stream(r, s->id, s->deadline, gen);
            return PARLEY_BODY_PARKED;
        }
        break;
    case CACHE_MISS:
        break;
    }
    /* One read transaction for the look-up and the event's first window. */
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    if (!db || parley_db_begin(db))
        return PARLEY_BODY_END;
    int st = lookup_in(r, db, s->rd, &meta);
    if (st) {
        parley_db_commit(db);
        return PARLEY_BODY_END; /* stream gone: end; the client sees it on reconnect */
    }
    touch_read(r, &meta);
    s->id = meta.id;
    if (meta.tail > s->rd->pos) {
        /* Open a data event for [pos, tail). */
        s->meta = malloc(sizeof *s->meta);
        if (!s->meta) {
            parley_db_commit(db);
            return PARLEY_ENOMEM;
        }
        *s->meta = meta;
        s->in_event = true;
        memset(&s->cur, 0, sizeof s->cur);
        s->cur.next = s->rd->pos;
        s->cur.end = meta.tail;
        s->event_bytes = 0;
        s->last_cr = false;
        s->ncarry = 0;
        uint64_t event_pos = s->rd->pos;
        size_t event_start = out->len;
        bool cacheable = sse_cacheable(ctx, &meta);
        int rc = parley_buf_puts(out, s->base64 ? "event: data\n" : "event: data\ndata:");
        if (!rc && s->json)
            rc = parley_buf_putc(out, '[');
        if (!rc) /* its first window at once: a small event goes out whole */
            rc = sse_event_step(s, out, room, db);
        parley_db_commit(db);
        /* Read whole, to the tail it looked up: the others may take it. */
        if (!rc && cacheable && !s->in_event && s->rd->pos == meta.tail &&
            s->data_end - event_start <= SSE_CACHE_MAX)
            sse_cache_put(ctx, &meta, gen, event_pos, out->data + event_start,
                          s->data_end - event_start);
        if (rc)
            parley_log_warn("SSE read of '%s' cut short: %s", s->rd->path, parley_strerror(rc));
        return rc ? rc : PARLEY_BODY_MORE;
    }
    parley_db_commit(db);
    if (meta.closed) {
        sse_control(s, out, meta.tail, true, true);
        return PARLEY_BODY_MORE;
    }
    if (!s->sent_control) {
        sse_control(s, out, s->rd->pos, true, false);
        return PARLEY_BODY_MORE;
    }
    parley_app_park_stream(r, meta.id, s->deadline, gen);
    return PARLEY_BODY_PARKED;
}

static void sse_free(void *arg)
{
    sse_t *s = arg;
    free(s->meta);
    free(s);
}

static void start_sse(parley_req_t *r, stream_read_t *rd)
{
    parley_app_t *ctx = parley_api_app(r);
    parley_stream_t meta;
    int st = lookup(r, rd, &meta);
    if (st) {
        respond_read_error(r, st);
        return;
    }
    sse_t *s = calloc(1, sizeof *s);
    if (!s) {
        respond_store_error(r, PARLEY_ENOMEM);
        return;
    }
    s->r = r;
    s->rd = rd;
    s->json = parley_stream_is_json(&meta);
    s->base64 = !s->json && strncasecmp(meta.content_type, "text/", 5) != 0;
    s->deadline = parley_clock_mono_ms() + ctx->cfg->sse_recycle_ms;
    parley_req_add_header(r, "Cache-Control", "no-cache");
    if (s->base64)
        parley_req_add_header(r, "Stream-SSE-Data-Encoding", "base64");
    parley_req_respond_window(r, 200, "text/event-stream", PARLEY_BODY_SIZE_UNKNOWN, sse_refill, s,
                              sse_free);
}

void parley_api_stream_read(parley_req_t *r, const char *path, bool head)
{
    parley_app_t *ctx = parley_api_app(r);
    size_t plen = strnlen(path, PARLEY_PATH_MAX);
    stream_read_t *rd = calloc(1, sizeof *rd + plen + 1);
    if (!rd) {
        respond_store_error(r, PARLEY_ENOMEM);
        return;
    }
    parley_req_set_data(r, rd, free);
    memcpy(rd->path, path, plen);

    if (head) {
        parley_stream_t meta;
        parley_db_t *db = parley_app_reader(parley_api_app(r));
        int st =
            db ? parley_stream_lookup(db, path, parley_req_user(r), parley_req_is_admin(r), &meta)
               : PARLEY_EUNAVAIL;
        if (st) {
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
    if (n_off < 0 || n_off > 1 ||
        (n_off == 1 && parley_offset_parse_param(offset, &rd->kind, &rd->pos))) {
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
        parley_metrics_live_begin(r, PARLEY_LIVE_LONG_POLL);
        rd->deadline = parley_clock_mono_ms() + ctx->cfg->long_poll_ms;
        long_poll_step(r);
        break;
    case LIVE_SSE:
        parley_metrics_live_begin(r, PARLEY_LIVE_SSE);
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
