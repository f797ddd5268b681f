/*
 * sqlops.c — the store ops both SQL backends run the same way (sqlops.h):
 * one statement or a few, the same parameters and the same row maps, so
 * each is written once here over the backend's runner (the parley_sql_db_t
 * at the start of its connection) and the shapes of columns.c. What the
 * backends do differently (how an insert learns its id, how a refused
 * conditional write is explained, paging) stays in the backends.
 *
 * Threads: as store.h's ops.
 */
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "store/sqlops.h"

/* The backend's runner of db. */
#define Q(db) (((const parley_sql_db_t *)(db))->query)

#define run(db, id, ...)                 parley_sql_exec(Q(db), db, id, NULL, __VA_ARGS__)
#define run_count(db, id, n, ...)        parley_sql_exec(Q(db), db, id, n, __VA_ARGS__)
#define fetch(db, id, cols, row, ...)    parley_sql_fetch(Q(db), db, id, cols, row, __VA_ARGS__)
#define each(db, id, cols, cb, arg, ...) parley_sql_each(Q(db), db, id, cols, cb, arg, __VA_ARGS__)
#define column(db, id, kind, out, stride, max, n, ...)                                             \
    parley_sql_column(Q(db), db, id, kind, out, stride, max, n, __VA_ARGS__)
#define ints(db, id, vals, n, ...) parley_sql_ints(Q(db), db, id, vals, n, __VA_ARGS__)

/* ---- streams, chunks, producers ------------------------------------------- */

int parley_sqlop_stream_get(parley_db_t *db, const char *path, parley_stream_t *out)
{
    return fetch(db, PARLEY_Q_STREAM_GET, &parley_stream_cols, out, "t", path);
}

int parley_sqlop_stream_get_id(parley_db_t *db, int64_t id, parley_stream_t *out)
{
    return fetch(db, PARLEY_Q_STREAM_GET_ID, &parley_stream_cols, out, "i", id);
}

static int chunk_put(parley_db_t *db, int64_t stream_id, uint64_t start, uint64_t end,
                     uint64_t unit_end, const void *data, size_t len)
{
    return run(db, PARLEY_Q_CHUNK_INSERT, "iuuub", stream_id, end, start, unit_end, data, len);
}

int parley_sqlop_stream_append(parley_db_t *db, int64_t id, const void *data, size_t len,
                               uint64_t units, int64_t now_ms, const char *stream_seq,
                               int64_t expect_tail, uint64_t *new_tail)
{
    if (units > PARLEY_OFFSET_MAX)
        return PARLEY_ETOOBIG;
    int64_t tail = 0;
    int rc = ints(db, PARLEY_Q_STREAM_APPEND, &tail, 1, "iuioiu", id, units, now_ms, stream_seq,
                  expect_tail, (uint64_t)PARLEY_OFFSET_MAX);
    if (rc == PARLEY_ENOTFOUND) {
        /* Why no row matched: the row (on PostgreSQL locked by the
         * update's attempt) says; nothing was written. */
        parley_stream_t cur;
        rc = parley_sqlop_stream_get_id(db, id, &cur);
        return rc ? rc : parley_store_append_refusal(&cur, stream_seq, expect_tail);
    }
    if (rc == 0)
        rc = parley_store_put_chunks(db, id, (uint64_t)tail, data, len, units, chunk_put);
    if (rc == 0)
        *new_tail = (uint64_t)tail;
    return rc;
}

int parley_sqlop_stream_close(parley_db_t *db, int64_t id, const char *closer, uint64_t epoch,
                              uint64_t seq, int64_t now_ms, uint64_t *tail)
{
    bool named = closer && closer[0];
    int64_t t = 0;
    int rc = ints(db, PARLEY_Q_STREAM_CLOSE, &t, 1, "ioiii", id, closer, named ? (int64_t)epoch : 0,
                  named ? (int64_t)seq : 0, now_ms);
    if (rc == PARLEY_ENOTFOUND) { /* closed already (a no-op), or missing */
        parley_stream_t cur;
        rc = parley_sqlop_stream_get_id(db, id, &cur);
        t = (int64_t)cur.tail;
    }
    if (rc == 0)
        *tail = (uint64_t)t;
    return rc;
}

int parley_sqlop_stream_touch(parley_db_t *db, int64_t id, int64_t now_ms)
{
    int64_t t;
    return ints(db, PARLEY_Q_STREAM_TOUCH, &t, 1, "ii", id, now_ms);
}

int parley_sqlop_stream_ref(parley_db_t *db, int64_t id, int delta, parley_stream_ref_t *out)
{
    return fetch(db, PARLEY_Q_STREAM_REF, &parley_ref_cols, out, "id", id, delta);
}

int parley_sqlop_stream_mark_deleted(parley_db_t *db, int64_t id)
{
    int64_t refs;
    int rc = ints(db, PARLEY_Q_STREAM_MARK_DELETED, &refs, 1, "i", id);
    if (rc == PARLEY_ENOTFOUND) { /* missing, or refs == 0: the caller removes it */
        parley_stream_t cur;
        rc = parley_sqlop_stream_get_id(db, id, &cur);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    return rc;
}

int parley_sqlop_stream_remove(parley_db_t *db, int64_t id)
{
    int rc = run(db, PARLEY_Q_STREAM_DEL_CHUNKS, "i", id);
    if (rc == 0)
        rc = run(db, PARLEY_Q_STREAM_DEL_PRODUCERS, "i", id);
    return rc ? rc : run(db, PARLEY_Q_STREAM_DEL, "i", id);
}

int parley_sqlop_stream_expired(parley_db_t *db, int64_t now_ms, int64_t *ids, int max, int *n)
{
    return column(db, PARLEY_Q_STREAM_EXPIRED, PARLEY_COL_I64, ids, sizeof *ids, max, n, "id",
                  now_ms, max);
}

int parley_sqlop_chunk_trim(parley_db_t *db, int64_t stream_id, uint64_t below, int *n)
{
    int64_t changed = 0;
    int rc = run_count(db, PARLEY_Q_CHUNK_TRIM, &changed, "iu", stream_id, below);
    *n = (int)changed;
    return rc;
}

int parley_sqlop_stream_scan(parley_db_t *db, const char *prefix,
                             int (*cb)(void *arg, const parley_stream_t *s), void *arg)
{
    parley_prefix_scan_t scan = {prefix, strlen(prefix), cb, arg};
    return each(db, PARLEY_Q_STREAM_SCAN, &parley_stream_cols,
                (parley_row_cb_t){.stream = parley_prefix_scan_row}, &scan, "t", prefix);
}

int parley_sqlop_producer_get(parley_db_t *db, int64_t stream_id, const char *producer,
                              parley_producer_state_t *ps)
{
    int rc = fetch(db, PARLEY_Q_PRODUCER_GET, &parley_producer_cols, ps, "it", stream_id, producer);
    ps->exists = rc == 0;
    return rc == PARLEY_ENOTFOUND ? 0 : rc;
}

int parley_sqlop_producer_put(parley_db_t *db, int64_t stream_id, const char *producer,
                              const parley_producer_state_t *ps)
{
    return run(db, PARLEY_Q_PRODUCER_PUT, "ituu", stream_id, producer, ps->epoch, ps->last_seq);
}

/* ---- idempotency records, documents --------------------------------------- */

int parley_sqlop_idem_get(parley_db_t *db, const char *owner, const char *key, char *fingerprint,
                          int64_t *created_ms, char **resp, size_t *len)
{
    parley_idem_row_t r;
    int rc = fetch(db, PARLEY_Q_IDEM_GET, &parley_idem_cols, &r, "tt", owner, key);
    if (rc)
        return rc;
    memcpy(fingerprint, r.fingerprint, sizeof r.fingerprint);
    *created_ms = r.created_ms;
    *resp = r.response;
    *len = r.len;
    return 0;
}

int parley_sqlop_idem_purge(parley_db_t *db, int64_t before_ms, int limit, int *n)
{
    int64_t changed = 0;
    int rc = run_count(db, PARLEY_Q_IDEM_PURGE, &changed, "id", before_ms, limit);
    *n = (int)changed;
    return rc;
}

int parley_sqlop_doc_get(parley_db_t *db, const char *owner, const char *collection, const char *id,
                         parley_doc_t *out)
{
    return fetch(db, PARLEY_Q_DOC_GET, &parley_doc_cols, out, "ttt", owner, collection, id);
}

int parley_sqlop_doc_list(parley_db_t *db, const char *owner, const char *collection,
                          int64_t before, int limit, int (*cb)(void *arg, const parley_doc_t *d),
                          void *arg)
{
    return each(db, PARLEY_Q_DOC_LIST, &parley_doc_cols, (parley_row_cb_t){.doc = cb}, arg, "ttid",
                owner, collection, before > 0 ? before : INT64_MAX, limit);
}

/* ---- conversations, sessions, snapshots ----------------------------------- */

int parley_sqlop_conv_get(parley_db_t *db, const char *id, parley_conv_t *out)
{
    return fetch(db, PARLEY_Q_CONV_GET, &parley_conv_cols, out, "t", id);
}

int parley_sqlop_conv_tombstone(parley_db_t *db, const char *id, int64_t now_ms, int64_t *version)
{
    return ints(db, PARLEY_Q_CONV_TOMBSTONE, version, 1, "ti", id, now_ms);
}

int parley_sqlop_conv_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                           int (*cb)(void *arg, const parley_conv_t *c), void *arg)
{
    return each(db, PARLEY_Q_CONV_LIST, &parley_conv_cols, (parley_row_cb_t){.conv = cb}, arg,
                "tid", owner, before > 0 ? before : INT64_MAX, limit);
}

int parley_sqlop_sess_get(parley_db_t *db, const char *id, parley_sess_t *out)
{
    return fetch(db, PARLEY_Q_SESS_GET, &parley_sess_cols, out, "t", id);
}

int parley_sqlop_sess_remove(parley_db_t *db, const char *id)
{
    return run(db, PARLEY_Q_SESS_DEL, "t", id);
}

int parley_sqlop_sess_list(parley_db_t *db, const char *conversation_id, const char *status,
                           int64_t before, int limit, int (*cb)(void *arg, const parley_sess_t *s),
                           void *arg)
{
    return each(db, status ? PARLEY_Q_SESS_LIST_STATUS : PARLEY_Q_SESS_LIST, &parley_sess_cols,
                (parley_row_cb_t){.sess = cb}, arg, status ? "tidt" : "tid", conversation_id,
                before > 0 ? before : INT64_MAX, limit, status);
}

/* The ids of up to max rows of a (now, limit) scan. */
static int scan_ids(parley_db_t *db, int stmt, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                    int max, int *n)
{
    return column(db, stmt, PARLEY_COL_TEXT, ids, sizeof *ids, max, n, "id", now_ms, max);
}

int parley_sqlop_sess_expired(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                              int max, int *n)
{
    return scan_ids(db, PARLEY_Q_SESS_EXPIRED, now_ms, ids, max, n);
}

int parley_sqlop_snap_get(parley_db_t *db, const char *id, parley_snap_t *out)
{
    return fetch(db, PARLEY_Q_SNAP_GET, &parley_snap_cols, out, "t", id);
}

int parley_sqlop_snap_expire(parley_db_t *db, const char *id)
{
    int64_t ord;
    return ints(db, PARLEY_Q_SNAP_EXPIRE, &ord, 1, "t", id);
}

int parley_sqlop_snap_remove(parley_db_t *db, const char *id)
{
    return run(db, PARLEY_Q_SNAP_DEL, "t", id);
}

int parley_sqlop_visit_add(parley_db_t *db, const char *snapshot_id, int64_t now_ms)
{
    int64_t count;
    return ints(db, PARLEY_Q_VISIT_ADD, &count, 1, "ti", snapshot_id, now_ms);
}

int parley_sqlop_visit_get(parley_db_t *db, const char *snapshot_id, int64_t *count,
                           int64_t *last_ms)
{
    int64_t v[2];
    int rc = ints(db, PARLEY_Q_VISIT_GET, v, 2, "t", snapshot_id);
    if (rc == 0) {
        *count = v[0];
        *last_ms = v[1];
    }
    return rc;
}

int parley_sqlop_visit_delete(parley_db_t *db, const char *snapshot_id)
{
    return run(db, PARLEY_Q_VISIT_DEL, "t", snapshot_id);
}

int parley_sqlop_snap_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                           int (*cb)(void *arg, const parley_snap_t *s), void *arg)
{
    return each(db, PARLEY_Q_SNAP_LIST, &parley_snap_cols, (parley_row_cb_t){.snap = cb}, arg,
                "tid", owner, before > 0 ? before : INT64_MAX, limit);
}

int parley_sqlop_snap_expired(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                              int max, int *n)
{
    return scan_ids(db, PARLEY_Q_SNAP_EXPIRED, now_ms, ids, max, n);
}

/* ---- subscriptions, links, keys --------------------------------------------- */

int parley_sqlop_sub_get(parley_db_t *db, const char *id, parley_sub_t *out)
{
    return fetch(db, PARLEY_Q_SUB_GET, &parley_sub_cols, out, "t", id);
}

int parley_sqlop_sub_put_config(parley_db_t *db, const parley_sub_t *s)
{
    return run(db, PARLEY_Q_SUB_PUT_CONFIG, "r", &parley_sub_cols, s);
}

int parley_sqlop_sub_remove(parley_db_t *db, const char *id)
{
    int rc = run(db, PARLEY_Q_SUB_DEL_LINKS, "t", id);
    return rc ? rc : run(db, PARLEY_Q_SUB_DEL, "t", id);
}

int parley_sqlop_sub_with_pattern(parley_db_t *db, int (*cb)(void *arg, const parley_sub_t *s),
                                  void *arg)
{
    return each(db, PARLEY_Q_SUB_PATTERNS, &parley_sub_cols, (parley_row_cb_t){.sub = cb}, arg, "");
}

int parley_sqlop_sub_leases_expired(parley_db_t *db, int64_t now_ms,
                                    char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return scan_ids(db, PARLEY_Q_SUB_LEASES, now_ms, ids, max, n);
}

int parley_sqlop_sub_deliveries_due(parley_db_t *db, int64_t now_ms,
                                    char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return scan_ids(db, PARLEY_Q_SUB_DUE, now_ms, ids, max, n);
}

int parley_sqlop_sub_next_delivery(parley_db_t *db, int64_t *due_ms)
{
    int n;
    *due_ms = -1;
    return column(db, PARLEY_Q_SUB_NEXT_DUE, PARLEY_COL_OPT_I64, due_ms, sizeof *due_ms, 1, &n, "");
}

int parley_sqlop_stat_subs(parley_db_t *db, parley_store_stat_t *out)
{
    int64_t v[2];
    int rc = ints(db, PARLEY_Q_STAT_SUBS, v, 2, "");
    if (rc)
        return rc;
    out->subs_webhook = v[0];
    out->subs_pull_wake = v[1];
    return 0;
}

int parley_sqlop_sublink_get(parley_db_t *db, const char *sub_id, const char *path,
                             parley_sub_link_t *out)
{
    return fetch(db, PARLEY_Q_LINK_GET, &parley_link_cols, out, "tt", sub_id, path);
}

int parley_sqlop_sublink_put(parley_db_t *db, const parley_sub_link_t *l)
{
    return run(db, PARLEY_Q_LINK_PUT, "r", &parley_link_cols, l);
}

int parley_sqlop_sublink_advance(parley_db_t *db, const char *sub_id, const char *path,
                                 uint64_t pos)
{
    int64_t acked = 0;
    int rc = ints(db, PARLEY_Q_LINK_ADVANCE, &acked, 1, "ttu", sub_id, path, pos);
    if (rc == PARLEY_ENOTFOUND) { /* backwards or past the tail, or no link */
        parley_sub_link_t l;
        rc = parley_sqlop_sublink_get(db, sub_id, path, &l);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    return rc;
}

int parley_sqlop_sublink_remove(parley_db_t *db, const char *sub_id, const char *path)
{
    return run(db, PARLEY_Q_LINK_DEL, "tt", sub_id, path);
}

int parley_sqlop_sublink_list(parley_db_t *db, const char *sub_id, const char *path,
                              int (*cb)(void *arg, const parley_sub_link_t *l), void *arg)
{
    return each(db, sub_id ? PARLEY_Q_LINK_LIST_SUB : PARLEY_Q_LINK_LIST_PATH, &parley_link_cols,
                (parley_row_cb_t){.link = cb}, arg, "t", sub_id ? sub_id : path);
}

int parley_sqlop_sublink_snapshot(parley_db_t *db, const char *sub_id)
{
    return run(db, PARLEY_Q_LINK_SNAPSHOT, "t", sub_id);
}

int parley_sqlop_sublink_ack_snapshot(parley_db_t *db, const char *sub_id)
{
    return run(db, PARLEY_Q_LINK_ACK_SNAPSHOT, "t", sub_id);
}

int parley_sqlop_sublink_first_pending(parley_db_t *db, const char *sub_id, char *path)
{
    int n;
    int rc = column(db, PARLEY_Q_LINK_PENDING, PARLEY_COL_TEXT, path, PARLEY_PATH_MAX + 1, 1, &n,
                    "t", sub_id);
    return rc ? rc : n ? 0 : PARLEY_ENOTFOUND;
}

int parley_sqlop_key_get(parley_db_t *db, const char *name, unsigned char *out, size_t cap,
                         size_t *len)
{
    parley_key_row_t k;
    int rc = fetch(db, PARLEY_Q_KEY_GET, &parley_key_cols, &k, "t", name);
    if (rc)
        return rc;
    if (k.len > cap) {
        rc = PARLEY_ETOOBIG;
    } else {
        if (k.len)
            memcpy(out, k.secret, k.len);
        *len = k.len;
    }
    free(k.secret);
    return rc;
}

/* ---- blobs ------------------------------------------------------------------ */

int parley_sqlop_blob_stage(parley_db_t *db, const char *owner, int64_t now_ms, int64_t *upload)
{
    return ints(db, PARLEY_Q_BLOB_STAGE, upload, 1, "ti", owner, now_ms);
}

int parley_sqlop_blob_part_put(parley_db_t *db, int64_t upload, int64_t n, const void *data,
                               size_t len, int64_t now_ms)
{
    int64_t got;
    int rc = ints(db, PARLEY_Q_BLOB_STAGE_TOUCH, &got, 1, "ii", upload, now_ms);
    if (rc == 0)
        rc = run(db, PARLEY_Q_BLOB_PART_PUT, "iib", upload, n, data, len);
    return rc;
}

int parley_sqlop_blob_unstage(parley_db_t *db, int64_t upload)
{
    /* A committed blob's upload has no staged row: its parts stay. */
    int rc = run(db, PARLEY_Q_BLOB_UNSTAGE_PARTS, "i", upload);
    if (rc == 0)
        rc = run(db, PARLEY_Q_BLOB_UNSTAGE, "i", upload);
    return rc;
}

int parley_sqlop_blob_get(parley_db_t *db, const char *owner, const char *id, parley_blob_t *out)
{
    return fetch(db, PARLEY_Q_BLOB_GET, &parley_blob_cols, out, "tt", owner, id);
}

int parley_sqlop_blob_insert(parley_db_t *db, const parley_blob_t *b)
{
    int64_t changed = 0;
    int rc = run_count(db, PARLEY_Q_BLOB_UNSTAGE, &changed, "i", b->upload);
    if (rc == 0 && changed == 0)
        return PARLEY_ENOTFOUND; /* the staged upload was purged */
    if (rc == 0)
        rc = run_count(db, PARLEY_Q_BLOB_INSERT, &changed, "r", &parley_blob_cols, b);
    if (rc == 0 && changed == 0)
        rc = PARLEY_EEXIST;
    return rc;
}

int parley_sqlop_blob_part_get(parley_db_t *db, int64_t upload, int64_t n, char **data, size_t *len)
{
    parley_key_row_t k;
    int rc = fetch(db, PARLEY_Q_BLOB_PART_GET, &parley_key_cols, &k, "ii", upload, n);
    if (rc)
        return rc;
    *data = k.secret;
    *len = k.len;
    return 0;
}

int parley_sqlop_blob_usage(parley_db_t *db, const char *owner, int64_t *bytes)
{
    *bytes = 0;
    return ints(db, PARLEY_Q_BLOB_USAGE, bytes, 1, "t", owner);
}

int parley_sqlop_blob_ref_add(parley_db_t *db, const char *owner, const char *id, const char *src,
                              int64_t now_ms)
{
    int rc = run(db, PARLEY_Q_BLOB_REF_ADD, "ttt", owner, id, src);
    if (rc == 0)
        rc = run(db, PARLEY_Q_BLOB_TOUCH, "tti", owner, id, now_ms);
    return rc;
}

int parley_sqlop_blob_ref_drop(parley_db_t *db, const char *owner, const char *src, int64_t now_ms)
{
    int rc = run(db, PARLEY_Q_BLOB_REF_TOUCH, "tti", owner, src, now_ms);
    if (rc == 0)
        rc = run(db, PARLEY_Q_BLOB_REF_DEL, "tt", owner, src);
    return rc;
}

int parley_sqlop_blob_ref_copy(parley_db_t *db, const char *owner, const char *from, const char *to)
{
    return run(db, PARLEY_Q_BLOB_REF_COPY, "ttt", owner, from, to);
}

int parley_sqlop_blob_ref_has(parley_db_t *db, const char *owner, const char *id, const char *src,
                              bool *yes)
{
    int64_t count = 0;
    int rc = ints(db, PARLEY_Q_BLOB_REF_HAS, &count, 1, "ttt", owner, id, src);
    *yes = rc == 0 && count > 0;
    return rc == PARLEY_ENOTFOUND ? 0 : rc;
}

int parley_sqlop_blob_unreferenced(parley_db_t *db, int64_t before_ms, parley_blob_t *out, int max,
                                   int *n)
{
    return parley_sql_rows(Q(db), db, PARLEY_Q_BLOB_UNREF, &parley_blob_cols, out, max, n, "id",
                           before_ms, max);
}

int parley_sqlop_blob_remove(parley_db_t *db, const char *owner, const char *id, int64_t before_ms)
{
    int64_t upload = 0;
    int rc = ints(db, PARLEY_Q_BLOB_DEL, &upload, 1, "tti", owner, id, before_ms);
    if (rc == PARLEY_ENOTFOUND) {
        parley_blob_t b;
        rc = parley_sqlop_blob_get(db, owner, id, &b);
        return rc ? rc : PARLEY_ECONFLICT; /* something names it again */
    }
    if (rc == 0)
        rc = run(db, PARLEY_Q_BLOB_DEL_PARTS, "i", upload);
    return rc;
}

int parley_sqlop_blob_list(parley_db_t *db, const char *owner, int64_t before, parley_blob_t *out,
                           bool *referenced, int max, int *n)
{
    int rc = parley_sql_rows(Q(db), db, PARLEY_Q_BLOB_LIST, &parley_blob_cols, out, max, n, "tid",
                             owner, before > 0 ? before : INT64_MAX, max);
    for (int i = 0; rc == 0 && i < *n; i++) {
        int64_t count = 0;
        rc = ints(db, PARLEY_Q_BLOB_REFERENCED, &count, 1, "tt", owner, out[i].id);
        if (rc == PARLEY_ENOTFOUND)
            rc = 0;
        referenced[i] = count > 0;
    }
    return rc;
}

int parley_sqlop_blob_stale_uploads(parley_db_t *db, int64_t before_ms, int64_t *ids, int max,
                                    int *n)
{
    return column(db, PARLEY_Q_BLOB_STALE, PARLEY_COL_I64, ids, sizeof *ids, max, n, "id",
                  before_ms, max);
}
