/*
 * blobs.c — the blob routes (core/blob.h has the design):
 *
 *   POST /v1/blobs                       upload raw bytes (streamed)
 *   GET /v1/blobs?limit=&cursor=         the caller's blobs, newest first
 *   GET|HEAD /v1/blobs/{id}              download (Range, ETag/304, immutable)
 *   GET|HEAD /v1/blobs/{id}?u=&exp=&sig= the same through a signed URL, no token
 *   POST /v1/blobs/{id}/url              make a signed URL {expires_in}
 *   GET|HEAD /v1/snapshots/{sid}/blobs/{id}  a blob a snapshot references
 *
 * NOTES ON THE DESIGN
 *
 * Upload. The transport hands the body to upload_sink() as it arrives
 * (parley_req_body_sink). The sink hashes the bytes and fills one part of
 * PARLEY_BLOB_PART_BYTES; a full part is written through the writer
 * (apply_part: core's parley_blob_put_part) while the connection is
 * suspended, and the rest of the body waits in the transport's buffer.
 * So an upload holds one part and one read buffer, whatever its size.
 * At the end of the body the last part is written and the commit
 * (PARLEY_CMD_BLOB_COMMIT) goes through parley_api_write_digest, with the
 * SHA-256 standing for the body in an Idempotency-Key's fingerprint. An
 * upload refused half-way (size, quota, a failed part) reads and drops the
 * rest of the body and answers at its end; the staged parts are dropped by
 * a write of their own when the request ends (up_free), which also covers
 * a client that goes away and a replayed Idempotency-Key (for a
 * committed blob that write changes nothing: store op blob_unstage).
 *
 * Download. One part is read from this thread's reader connection per
 * window (refill), in its own short read transaction; a part that is gone
 * (the blob was collected meanwhile) cuts the response short.
 *
 * State machine of an upload (upload_t.phase):
 *   BODY --part full (submit_part)--> PART --resumed (part_resumed)--> BODY
 *   BODY --end of body (upload_sink)--> LAST --resumed--> COMMIT (api/write.c)
 *   BODY|PART --refusal (fail)--> DRAIN --end of body--> answered
 *
 * Threads: every function on the request's connection thread, except the
 * writes' apply and done callbacks (writer thread).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/app.h"
#include "api/params.h"
#include "api/resource.h"
#include "api/status.h"
#include "api/write.h"
#include "core/blob.h"
#include "core/snapshot.h"
#include "parley/parley.h"
#include "util/base64url.h"
#include "util/clock.h"

#define SPILL_BYTES     (64 * 1024)   /* the body read past a full part, while it is written */
#define DRAIN_FACTOR    4             /* a refused body is read up to this times the limit */
#define URL_MAX_EXPIRES (7LL * 86400) /* longest signed URL */
#define CACHE_PRIVATE   "private, max-age=31536000, immutable"
#define CACHE_PUBLIC    "public, max-age=31536000, immutable"

typedef enum { UP_BODY, UP_PART, UP_LAST, UP_DRAIN, UP_COMMIT } up_phase_t;

typedef struct upload {
    parley_write_t w;                 /* the part write (first: the writer's callbacks get it) */
    parley_req_t *r;                  /* the request */
    parley_app_t *app;                /* its application */
    up_phase_t phase;                 /* see the state machine above */
    char owner[PARLEY_OWNER_MAX + 1]; /* the uploader */
    char content_type[PARLEY_CTYPE_MAX + 1]; /* as sent */
    EVP_MD_CTX *sha;                         /* SHA-256 of the bytes so far */
    char *part;                              /* the part being filled (PARLEY_BLOB_PART_BYTES) */
    size_t fill;                             /* bytes in part */
    char *spill;                             /* what came after a full part (SPILL_BYTES) */
    size_t nspill;                           /* bytes in spill */
    int64_t nparts;                          /* parts written */
    int64_t upload;                          /* the staged upload's id, 0 before the first part */
    int64_t staged;                          /* apply's result: the id after the part write */
    int part_rc;                             /* apply's result: the part write's error */
    uint64_t size;                           /* body bytes taken */
    uint64_t max;                            /* --blob-max-bytes */
    uint64_t quota;                          /* --blob-quota-bytes, 0: none */
    int64_t used;                            /* the owner's blob bytes when the upload began */
    int fail_status;                         /* DRAIN: the answer's status */
    const char *fail_code;                   /* DRAIN: its error code */
    char fail_msg[200];                      /* DRAIN: its message */
    char id[PARLEY_BLOB_ID_LEN + 1];         /* the hex SHA-256, at the end */
    parley_command_t cmd;                    /* the commit */
} upload_t;

/* Answer r with v (stolen) as JSON. */
static void send_json(parley_req_t *r, int status, json_t *v)
{
    parley_resource_send(r, status, v);
    json_decref(v);
}

/* A staged upload dropped after its request (fire and forget). */
typedef struct unstage {
    parley_write_t w; /* first */
    int64_t upload;   /* what to drop */
} unstage_t;

static int apply_unstage(parley_write_t *w, parley_db_t *db)
{
    return parley_blob_unstage(db, ((unstage_t *)w)->upload);
}

static void unstage_done(parley_write_t *w, int status)
{
    (void)status; /* a lost drop leaves the parts to the collector */
    free(w);
}

static void drop_staged(parley_app_t *app, int64_t upload)
{
    unstage_t *u = calloc(1, sizeof *u);
    if (!u)
        return; /* the collector removes it after --blob-grace */
    u->upload = upload;
    u->w.apply = apply_unstage;
    u->w.done = unstage_done;
    parley_wakeset_init(&u->w.wake);
    if (parley_writer_submit(app->writer, &u->w) != 0)
        free(u);
}

static void up_free(void *arg)
{
    upload_t *up = arg;
    if (!up)
        return;
    if (up->upload)
        drop_staged(up->app, up->upload);
    EVP_MD_CTX_free(up->sha);
    free(up->part);
    free(up->spill);
    free(up);
}

/* ---- upload -------------------------------------------------------------------- */

static int apply_part(parley_write_t *w, parley_db_t *db)
{
    upload_t *up = (upload_t *)w;
    up->staged = up->upload; /* from its own inputs: a retry starts again */
    up->part_rc = parley_blob_put_part(db, up->owner, &up->staged, up->nparts, up->part, up->fill);
    if (up->part_rc == PARLEY_ENOTFOUND || up->part_rc == PARLEY_EINVAL)
        return PARLEY_ECONFLICT; /* this write alone rolls back; answered from part_rc */
    return up->part_rc;
}

static void part_done(parley_write_t *w, int status)
{
    upload_t *up = (upload_t *)w;
    parley_app_write_done(up->r, status);
}

/* Refuse the upload: read and drop the rest of the body, answer at its end. */
static void fail(upload_t *up, int status, const char *code, const char *msg)
{
    up->phase = UP_DRAIN;
    up->fail_status = status;
    up->fail_code = code;
    snprintf(up->fail_msg, sizeof up->fail_msg, "%s", msg);
}

static void too_large(upload_t *up)
{
    char msg[200];
    snprintf(msg, sizeof msg,
             "the blob is over the limit of %llu bytes (--blob-max-bytes); nothing was stored",
             (unsigned long long)up->max);
    fail(up, 413, "blob_too_large", msg);
}

static void over_quota(upload_t *up)
{
    char msg[200];
    snprintf(msg, sizeof msg,
             "this upload would take your blobs past your quota of %llu bytes; nothing was "
             "stored",
             (unsigned long long)up->quota);
    fail(up, 507, "quota_exceeded", msg);
}

static void answer_failure(upload_t *up)
{
    json_t *err = json_pack("{s:{s:s, s:s, s:{}}}", "error", "code", up->fail_code, "message",
                            up->fail_msg, "details");
    if (err && up->fail_status == 413)
        json_object_set_new(json_object_get(json_object_get(err, "error"), "details"),
                            "limit_bytes", json_integer((json_int_t)up->max));
    if (err && up->fail_status == 507)
        json_object_set_new(json_object_get(json_object_get(err, "error"), "details"),
                            "quota_bytes", json_integer((json_int_t)up->quota));
    send_json(up->r, up->fail_status, err);
}

static void commit(upload_t *up);

static void submit_part(upload_t *up, parley_resume_fn on_resume)
{
    up->phase = up->phase == UP_LAST ? UP_LAST : UP_PART;
    up->w.apply = apply_part;
    up->w.done = part_done;
    parley_wakeset_init(&up->w.wake);
    up->part_rc = 0;
    parley_app_submit(up->r, &up->w, on_resume);
}

/* The part write is durable, or failed: on with the body, or refuse. */
static bool part_ok(upload_t *up)
{
    int st = parley_app_write_status(up->r);
    if (st == 0 && up->part_rc == 0) {
        up->upload = up->staged;
        up->nparts++;
        memcpy(up->part, up->spill, up->nspill);
        up->fill = up->nspill;
        up->nspill = 0;
        return true;
    }
    if (st == PARLEY_EFULL)
        fail(up, 507, "insufficient_storage",
             "the disk is full; nothing was stored. Retry once space is freed");
    else if (st == PARLEY_ECLOSED || st == PARLEY_EUNAVAIL || st == PARLEY_ERETRY)
        fail(up, 503, "unavailable", "the upload could not be stored now; retry shortly");
    else if (up->part_rc == PARLEY_ENOTFOUND)
        fail(up, 409, "upload_expired",
             "the upload was idle longer than the server keeps a partial upload; upload again");
    else
        fail(up, 500, "storage_error", "the upload could not be stored; nothing was stored");
    return false;
}

static void part_resumed(parley_req_t *r)
{
    upload_t *up = parley_req_data(r);
    if (part_ok(up))
        up->phase = UP_BODY;
}

static void last_resumed(parley_req_t *r)
{
    upload_t *up = parley_req_data(r);
    if (part_ok(up))
        commit(up);
    else
        answer_failure(up);
}

static void render_commit(void *ctx, const parley_outcome_t *o, parley_reply_t *rp)
{
    (void)ctx;
    const char *id = json_string_value(json_object_get(o->body, "id"));
    if (!o->refusal && id) {
        char loc[PARLEY_BLOB_ID_LEN + 16];
        snprintf(loc, sizeof loc, "/v1/blobs/%s", id);
        parley_reply_header(rp, "Location", loc);
    }
    parley_resource_render(o, rp);
}

/* Every byte is staged: commit the blob row (the durable point). */
static void commit(upload_t *up)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    EVP_DigestFinal_ex(up->sha, md, &mdlen);
    for (unsigned i = 0; i < 32; i++) {
        up->id[2 * i] = hex[md[i] >> 4];
        up->id[2 * i + 1] = hex[md[i] & 15];
    }
    up->id[PARLEY_BLOB_ID_LEN] = '\0';
    up->phase = UP_COMMIT;
    up->cmd.kind = PARLEY_CMD_BLOB_COMMIT;
    up->cmd.u.blob = (parley_blob_req_t){.owner = up->owner,
                                         .id = up->id,
                                         .upload = up->upload,
                                         .size = (int64_t)up->size,
                                         .content_type = up->content_type,
                                         .quota = up->quota};
    /* The write owns up from here (it frees it with the request). */
    parley_req_t *r = up->r;
    r->data = NULL;
    r->free_data = NULL;
    parley_api_write_digest(r, &up->cmd, render_commit, up, up_free, up->id);
}

static long upload_sink(parley_req_t *r, const char *data, size_t len)
{
    upload_t *up = parley_req_data(r);
    if (!data) { /* the end of the body */
        if (up->phase == UP_DRAIN) {
            answer_failure(up);
        } else if (up->size == 0) {
            fail(up, 400, "empty_blob", "the body is empty: a blob has at least one byte");
            answer_failure(up);
        } else if (up->fill) {
            up->phase = UP_LAST;
            submit_part(up, last_resumed);
        } else {
            commit(up);
        }
        return 0;
    }
    if (up->phase == UP_DRAIN) {
        up->size += len;
        return up->size / DRAIN_FACTOR > up->max ? -1 : (long)len;
    }
    if (up->size + len > up->max) {
        too_large(up);
        up->size += len;
        return (long)len;
    }
    if (up->quota && (uint64_t)up->used + up->size + len > up->quota) {
        over_quota(up);
        up->size += len;
        return (long)len;
    }
    size_t take = PARLEY_BLOB_PART_BYTES - up->fill;
    if (take > len)
        take = len;
    memcpy(up->part + up->fill, data, take);
    EVP_DigestUpdate(up->sha, data, take);
    up->fill += take;
    up->size += take;
    if (up->fill == PARLEY_BLOB_PART_BYTES) {
        /* What came after the part waits in spill while the part is
         * written: the transport's buffer is always taken whole (leaving
         * part of a chunked body in it across a suspension loses bytes in
         * libmicrohttpd 0.9.75: measured, 15 KiB of 6 MiB). */
        size_t more = len - take < SPILL_BYTES ? len - take : SPILL_BYTES;
        memcpy(up->spill, data + take, more);
        EVP_DigestUpdate(up->sha, data + take, more);
        up->nspill = more;
        up->size += more;
        take += more;
        submit_part(up, part_resumed);
    }
    return (long)take;
}

static void upload(parley_req_t *r)
{
    parley_app_t *app = parley_api_app(r);
    const parley_config_t *cfg = app->cfg;
    const char *ct = parley_req_header(r, "Content-Type");
    const char *cl = parley_req_header(r, "Content-Length");
    if (!ct || !*ct)
        ct = "application/octet-stream";
    if (strlen(ct) > PARLEY_CTYPE_MAX) {
        parley_req_error(r, 400, "invalid_content_type", "Content-Type is over 255 bytes");
        return;
    }
    uint64_t declared = 0;
    if (!cl || parley_param_decimal(cl, UINT64_MAX, &declared) != 0) {
        /* A chunked body is refused: libmicrohttpd 0.9.75 drops bytes of
         * a chunked body across the suspensions that let each part be
         * written (measured: 8 to 15 KiB of 6 MiB sent in 1 MiB chunks);
         * the SHA-256 id would then name bytes the client never sent. */
        parley_req_error(r, 411, "length_required",
                         "an upload needs a Content-Length header (a chunked body is not "
                         "taken); send the blob's size with it");
        return;
    }
    if (declared > cfg->blob_max_bytes) {
        json_t *err =
            json_pack("{s:{s:s, s:s, s:{s:I}}}", "error", "code", "blob_too_large", "message",
                      "the blob is over the limit (--blob-max-bytes; see "
                      "details.limit_bytes); nothing was stored",
                      "details", "limit_bytes", (json_int_t)cfg->blob_max_bytes);
        send_json(r, 413, err);
        return;
    }
    upload_t *up = calloc(1, sizeof *up);
    if (up) {
        up->part = malloc(PARLEY_BLOB_PART_BYTES);
        up->spill = malloc(SPILL_BYTES);
        up->sha = EVP_MD_CTX_new();
    }
    if (!up || !up->part || !up->spill || !up->sha ||
        EVP_DigestInit_ex(up->sha, EVP_sha256(), NULL) != 1) {
        up_free(up);
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    up->r = r;
    up->app = app;
    up->max = cfg->blob_max_bytes;
    up->quota = cfg->blob_quota_bytes;
    snprintf(up->owner, sizeof up->owner, "%s", parley_req_user(r));
    snprintf(up->content_type, sizeof up->content_type, "%s", ct);
    parley_req_set_data(r, up, up_free);
    if (up->quota) {
        parley_db_t *db = parley_app_reader(app);
        int rc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
        if (rc == 0) {
            rc = parley_db_blob_usage(db, up->owner, &up->used);
            parley_db_commit(db);
        }
        if (rc) {
            parley_api_store_failed(r, rc, "the quota");
            return;
        }
        if ((uint64_t)up->used + declared > up->quota) {
            over_quota(up);
            answer_failure(up);
            return;
        }
    }
    parley_req_body_sink(r, upload_sink);
}

/* ---- download ------------------------------------------------------------------ */

/*
 * A download. Its first part is read before the status line is sent, in
 * one read transaction with the blob's row (prefetch): a blob the
 * collector removes meanwhile is a 404, never a response cut short, and a
 * blob of one part (most attachments) is served from that snapshot whole.
 * Later parts are read a window at a time; the collector takes only blobs
 * nothing has referenced for --blob-grace, so cutting one of those short
 * mid-download is the only way a download can end early.
 */
typedef struct download {
    parley_req_t *r;   /* the request */
    parley_app_t *app; /* its application */
    int64_t upload;    /* the blob's parts */
    uint64_t pos;      /* next byte to send */
    uint64_t end;      /* one past the last byte to send */
    int64_t first_n;   /* the prefetched part's number */
    char *first;       /* its bytes (owned; NULL once sent) */
    size_t first_len;  /* their length */
} download_t;

static void download_free(void *arg)
{
    download_t *d = arg;
    free(d->first);
    free(d);
}

static int refill(void *arg, parley_buf_t *out, size_t room)
{
    download_t *d = arg;
    (void)room; /* one part a window: PARLEY_BLOB_PART_BYTES */
    if (d->pos >= d->end)
        return PARLEY_BODY_END;
    int64_t n = (int64_t)(d->pos / PARLEY_BLOB_PART_BYTES);
    char *data = NULL;
    size_t len = 0;
    int rc = 0;
    if (d->first && n == d->first_n) { /* read with the row: see download_t */
        data = d->first;
        len = d->first_len;
        d->first = NULL;
    } else {
        parley_db_t *db = parley_app_reader(d->app);
        rc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
        if (rc == 0) {
            rc = parley_db_blob_part_get(db, d->upload, n, &data, &len);
            parley_db_commit(db);
        }
    }
    if (rc)
        return rc; /* cut short: the client sees it */
    uint64_t at = d->pos - (uint64_t)n * PARLEY_BLOB_PART_BYTES;
    uint64_t take = len > at ? len - at : 0;
    if (take > d->end - d->pos)
        take = d->end - d->pos;
    if (take == 0) {
        free(data);
        return PARLEY_ESTORE; /* a part shorter than the row says */
    }
    rc = parley_buf_append(out, data + at, (size_t)take);
    free(data);
    if (rc)
        return rc;
    d->pos += take;
    return d->pos >= d->end ? PARLEY_BODY_END : PARLEY_BODY_MORE;
}

/*
 * A Range header's one byte range over size bytes: 1 with [*from, *to]
 * when it asks for one, 0 to send everything (absent, several ranges, or
 * a unit other than bytes: RFC 9110 §14.2 lets a server ignore it), -1
 * when it is not satisfiable (416).
 */
static int parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    const char *p = h + 6, *dash = strchr(p, '-');
    if (!dash)
        return 0;
    char a[24] = "", b[24] = "";
    size_t na = (size_t)(dash - p), nb = strlen(dash + 1);
    if (na >= sizeof a || nb >= sizeof b)
        return 0;
    memcpy(a, p, na);
    memcpy(b, dash + 1, nb);
    uint64_t x, y;
    if (na == 0) { /* the last y bytes */
        if (parley_param_decimal(b, UINT64_MAX, &y) || y == 0)
            return -1;
        *from = y >= size ? 0 : size - y;
        *to = size - 1;
        return 1;
    }
    if (parley_param_decimal(a, UINT64_MAX, &x))
        return 0;
    if (x >= size)
        return -1;
    if (nb == 0) {
        y = size - 1;
    } else if (parley_param_decimal(b, UINT64_MAX, &y) || y < x) {
        return 0;
    }
    *from = x;
    *to = y >= size ? size - 1 : y;
    return 1;
}

/* Answer r with blob b (found by the caller), honouring the conditional
 * and range headers; cache is its Cache-Control. */
static void send_blob(parley_req_t *r, const parley_blob_t *b, const char *cache)
{
    char etag[PARLEY_BLOB_ID_LEN + 3], num[80];
    bool head = strcmp(parley_req_method(r), "HEAD") == 0;
    snprintf(etag, sizeof etag, "\"%s\"", b->id);
    parley_req_add_header(r, "ETag", etag);
    parley_req_add_header(r, "Cache-Control", cache);
    parley_req_add_header(r, "Accept-Ranges", "bytes");
    /* Bytes someone uploaded are never run as a page of this origin. */
    parley_req_add_header(r, "Content-Security-Policy", "default-src 'none'; sandbox");
    const char *inm = parley_req_header(r, "If-None-Match");
    if (inm && parley_param_etag_match(inm, etag)) {
        parley_req_respond_empty(r, 304);
        return;
    }
    uint64_t size = (uint64_t)b->size, from = 0, to = size ? size - 1 : 0;
    const char *ifr = parley_req_header(r, "If-Range");
    int ranged = ifr && strcmp(ifr, etag) != 0
                     ? 0
                     : parse_range(parley_req_header(r, "Range"), size, &from, &to);
    if (ranged < 0) {
        snprintf(num, sizeof num, "bytes */%llu", (unsigned long long)size);
        parley_req_add_header(r, "Content-Range", num);
        parley_req_error(r, 416, "range_not_satisfiable",
                         "the Range is outside the blob (see Content-Range for its size)");
        return;
    }
    int status = ranged ? 206 : 200;
    if (ranged) {
        snprintf(num, sizeof num, "bytes %llu-%llu/%llu", (unsigned long long)from,
                 (unsigned long long)to, (unsigned long long)size);
        parley_req_add_header(r, "Content-Range", num);
    }
    (void)head; /* HEAD: the same response; the transport sends no body */
    download_t *d = calloc(1, sizeof *d);
    if (!d) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    d->r = r;
    d->app = parley_api_app(r);
    d->upload = b->upload;
    d->pos = from;
    d->end = to + 1;
    if (!head && size > 0) {
        /* The row again and the first part, in one snapshot. */
        parley_blob_t now;
        parley_db_t *db = parley_app_reader(d->app);
        d->first_n = (int64_t)(from / PARLEY_BLOB_PART_BYTES);
        int rc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
        if (rc == 0) {
            rc = parley_db_blob_get(db, b->owner, b->id, &now);
            if (rc == 0 && now.upload != b->upload)
                rc = PARLEY_ENOTFOUND; /* collected, then uploaded again */
            if (rc == 0)
                rc = parley_db_blob_part_get(db, d->upload, d->first_n, &d->first, &d->first_len);
            parley_db_commit(db);
        }
        if (rc) {
            download_free(d);
            if (rc == PARLEY_ENOTFOUND)
                parley_req_error(r, 404, "not_found", "no such blob");
            else
                parley_api_store_failed(r, rc, "the blob");
            return;
        }
    }
    parley_req_respond_window(r, status, b->content_type, to - from + 1, refill, d, download_free);
}

/* Read owner's blob id on this thread's reader: 0, or after answering. */
static int find_blob(parley_req_t *r, const char *owner, const char *id, parley_blob_t *b)
{
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    int rc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
    if (rc == 0) {
        rc = parley_db_blob_get(db, owner, id, b);
        parley_db_commit(db);
    }
    if (rc == PARLEY_ENOTFOUND)
        parley_req_error(r, 404, "not_found", "no such blob");
    else if (rc)
        parley_api_store_failed(r, rc, "the blob");
    return rc;
}

/* A signed URL's read (no token): u (the owner, base64url), exp, sig. */
static void signed_read(parley_req_t *r, const char *id, const char *sig)
{
    const char *u = NULL, *exp = NULL;
    unsigned char owner[PARLEY_OWNER_MAX + 1];
    size_t olen = 0;
    uint64_t expires = 0;
    char want[44];
    parley_req_query(r, "u", &u);
    parley_req_query(r, "exp", &exp);
    if (!u || !exp || parley_param_decimal(exp, INT64_MAX, &expires) ||
        parley_base64url_decode(u, strlen(u), owner, sizeof owner - 1, &olen) != 0) {
        parley_req_error(r, 404, "not_found", "no such blob");
        return;
    }
    owner[olen] = '\0';
    parley_blob_url_sig(parley_api_app(r)->blob_key, (const char *)owner, id, (int64_t)expires,
                        want);
    if (strlen(sig) != strlen(want) || CRYPTO_memcmp(sig, want, strlen(want)) != 0 ||
        memchr(owner, '\0', olen)) {
        parley_req_error(r, 404, "not_found", "no such blob");
        return;
    }
    if ((int64_t)expires * 1000 <= parley_clock_now_ms()) {
        parley_req_error(r, 410, "url_expired",
                         "this signed URL has expired; ask its owner for a new one");
        return;
    }
    parley_blob_t b;
    if (find_blob(r, (const char *)owner, id, &b) == 0)
        send_blob(r, &b, CACHE_PRIVATE);
}

static void make_url(parley_req_t *r, const char *id)
{
    json_t *body = NULL;
    if (parley_resource_body(r, true, &body))
        return;
    json_t *ein = body ? json_object_get(body, "expires_in") : NULL;
    int64_t expires_in = 3600;
    if (body && (!json_is_object(body) || json_object_size(body) > (ein ? 1u : 0u))) {
        json_decref(body);
        parley_req_error(r, 400, "invalid_body",
                         "the body is {\"expires_in\": seconds} (optional; default 3600)");
        return;
    }
    if (ein) {
        if (!json_is_integer(ein) || json_integer_value(ein) < 1 ||
            json_integer_value(ein) > URL_MAX_EXPIRES) {
            json_decref(body);
            parley_req_error(r, 400, "invalid_expires_in",
                             "expires_in is a whole number of seconds from 1 to 604800 (7 days)");
            return;
        }
        expires_in = json_integer_value(ein);
    }
    json_decref(body);
    parley_blob_t b;
    if (find_blob(r, parley_req_user(r), id, &b))
        return;
    int64_t exp = parley_clock_now_ms() / 1000 + expires_in;
    char sig[44], u[PARLEY_OWNER_MAX * 2 + 8], url[1024];
    parley_blob_url_sig(parley_api_app(r)->blob_key, b.owner, b.id, exp, sig);
    parley_base64url_encode((const unsigned char *)b.owner, strlen(b.owner), u);
    const char *base = parley_api_app(r)->cfg->public_url;
    snprintf(url, sizeof url, "%s/v1/blobs/%s?u=%s&exp=%lld&sig=%s", base ? base : "", b.id, u,
             (long long)exp, sig);
    send_json(r, 200,
              json_pack("{s:s, s:o}", "url", url, "expires_at", parley_clock_json(exp * 1000)));
}

/* ---- routes ------------------------------------------------------------------------ */

/* ---- list ---------------------------------------------------------------------- */

/* The caller's blobs, newest upload first (cursor 'b': the upload id),
 * each as the upload's answer plus whether something names it. */
static void list(parley_req_t *r)
{
    int limit;
    uint64_t before;
    if (parley_resource_page(r, 'b', &limit, &before))
        return;
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_blob_t *rows = calloc((size_t)limit + 1, sizeof *rows);
    bool *referenced = calloc((size_t)limit + 1, sizeof *referenced);
    parley_page_t page;
    int n = 0, rc = !rows || !referenced ? PARLEY_ENOMEM : !db ? PARLEY_EUNAVAIL : 0;
    parley_page_init(&page, limit);
    if (rc == 0)
        rc = parley_db_begin(db); /* one read: the rows and their references agree */
    if (rc == 0) {
        rc = parley_db_blob_list(db, parley_req_user(r), (int64_t)before, rows, referenced,
                                 limit + 1, &n);
        parley_db_commit(db);
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        json_t *item = parley_blob_json(&rows[i]);
        if (!item) {
            rc = PARLEY_ENOMEM;
            break;
        }
        json_object_set_new(item, "referenced", json_boolean(referenced[i]));
        if (parley_page_add(&page, item, rows[i].upload))
            break;
    }
    free(rows);
    free(referenced);
    if (rc) {
        parley_page_clear(&page);
        parley_api_store_failed(r, rc, "the blobs");
        return;
    }
    parley_page_send(r, &page, 'b');
}

/* ---- routing ---------------------------------------------------------------------- */

bool parley_api_body_streamed(const char *method, const char *path, void *arg)
{
    (void)arg;
    return strcmp(method, "POST") == 0 && strcmp(path, "/v1/blobs") == 0;
}

bool parley_api_blobs_is_anonymous_read(parley_req_t *r, const char *method, const char *path)
{
    const char *sig = NULL;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return false;
    if (strncmp(path, "/v1/blobs/", 10) == 0 && !strchr(path + 10, '/'))
        return parley_req_query(r, "sig", &sig) == 1;
    if (strncmp(path, "/v1/snapshots/", 14) == 0) {
        const char *p = path + 14, *slash = strchr(p, '/');
        return slash && slash > p && strncmp(slash, "/blobs/", 7) == 0 && slash[7] &&
               !strchr(slash + 7, '/');
    }
    return false;
}

void parley_api_blobs(parley_req_t *r, const char *rest)
{
    const char *m = parley_req_method(r);
    bool read = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    if (rest[0] == '\0') {
        if (strcmp(m, "POST") == 0)
            upload(r);
        else if (strcmp(m, "GET") == 0)
            list(r);
        else
            parley_resource_method_not_allowed(r, "GET, POST",
                                               "list blobs with GET, upload one with POST");
        return;
    }
    if (rest[0] != '/') {
        parley_req_error(r, 404, "not_found", "no such route");
        return;
    }
    char id[PARLEY_BLOB_ID_LEN + 1];
    const char *p = rest + 1, *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n != PARLEY_BLOB_ID_LEN || (slash && strcmp(slash, "/url") != 0)) {
        parley_req_error(r, 404, "not_found", "no such blob");
        return;
    }
    memcpy(id, p, n);
    id[n] = '\0';
    if (!parley_blob_id_is_valid(id)) {
        parley_req_error(r, 404, "not_found", "no such blob");
        return;
    }
    if (slash) {
        if (strcmp(m, "POST") == 0)
            make_url(r, id);
        else
            parley_resource_method_not_allowed(r, "POST", NULL);
        return;
    }
    if (!read) {
        parley_resource_method_not_allowed(r, "GET, HEAD", NULL);
        return;
    }
    const char *sig = NULL;
    if (parley_req_query(r, "sig", &sig) == 1 && sig) {
        signed_read(r, id, sig);
        return;
    }
    parley_blob_t b;
    if (find_blob(r, parley_req_user(r), id, &b) == 0)
        send_blob(r, &b, CACHE_PRIVATE);
}

void parley_api_snapshot_blob(parley_req_t *r, const char *sid, const char *id)
{
    parley_app_t *app = parley_api_app(r);
    parley_db_t *db = parley_app_reader(app);
    parley_snap_t s;
    parley_blob_t b;
    char src[PARLEY_ROW_ID_MAX + 8];
    bool has = false;
    memset(&s, 0, sizeof s);
    if (!parley_blob_id_is_valid(id) || strlen(sid) > PARLEY_ROW_ID_MAX) {
        parley_req_error(r, 404, "not_found", "no such blob in this snapshot");
        return;
    }
    int rc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
    if (rc) {
        parley_api_store_failed(r, rc, "the snapshot");
        return;
    }
    rc = parley_db_snap_get(db, sid, &s);
    bool caller = rc == 0 && parley_req_user(r)[0] &&
                  (parley_req_is_admin(r) || strcmp(s.owner, parley_req_user(r)) == 0);
    if (rc == 0 && !s.is_public && !caller)
        rc = PARLEY_ENOTFOUND;
    bool expired = rc == 0 && s.expires_ms >= 0 && s.expires_ms <= parley_clock_now_ms();
    if (rc == 0 && !expired) {
        parley_blob_src_snapshot(sid, src, sizeof src);
        rc = parley_db_blob_ref_has(db, s.owner, id, src, &has);
        if (rc == 0 && !has)
            rc = PARLEY_ENOTFOUND;
        if (rc == 0)
            rc = parley_db_blob_get(db, s.owner, id, &b);
    }
    bool was_public = rc == 0 && s.is_public;
    parley_snap_clear(&s);
    parley_db_commit(db);
    if (rc == PARLEY_ENOTFOUND)
        parley_req_error(r, 404, "not_found", "no such blob in this snapshot");
    else if (rc)
        parley_api_store_failed(r, rc, "the snapshot");
    else if (expired)
        parley_req_error(r, 410, "gone", "this snapshot has expired");
    else
        send_blob(r, &b, was_public ? CACHE_PUBLIC : CACHE_PRIVATE);
}
