/*
 * sqlops.h — the store ops that both SQL backends run the same way: the
 * same statements (each backend writes its own SQL for them), the same
 * parameters, the same rows. Internal to src/store/.
 *
 * A backend using them
 *   - begins its connection struct with a parley_sql_db_t (its runner, so
 *     an op here can run the backend's statements);
 *   - numbers its own statements from PARLEY_Q_COUNT on, and gives SQL for
 *     every enum parley_sql_stmt entry at that index of its table, with
 *     the parameters said below;
 *   - puts the parley_sqlop_* functions in its ops table.
 * Each parley_sqlop_* is the store.h op of the same name and keeps its
 * contract.
 *
 * Threads: as store.h's ops (a connection is used by one thread at a time).
 */
#ifndef PARLEY_STORE_SQLOPS_H
#define PARLEY_STORE_SQLOPS_H

#include "store/columns.h"
#include "store/store.h"

/* The shared statements and their parameters ($n / ?n, in this order). */
enum parley_sql_stmt {
    PARLEY_Q_STREAM_GET,           /* path -> {stream} */
    PARLEY_Q_STREAM_GET_ID,        /* id -> {stream} */
    PARLEY_Q_STREAM_APPEND,        /* id, units, now, seq, expect_tail, max -> tail */
    PARLEY_Q_STREAM_CLOSE,         /* id, closer, epoch, seq, now -> tail */
    PARLEY_Q_STREAM_TOUCH,         /* id, now -> tail */
    PARLEY_Q_STREAM_REF,           /* id, delta -> {ref} */
    PARLEY_Q_STREAM_MARK_DELETED,  /* id -> refs */
    PARLEY_Q_STREAM_DEL,           /* id */
    PARLEY_Q_STREAM_DEL_CHUNKS,    /* id */
    PARLEY_Q_STREAM_DEL_PRODUCERS, /* id */
    PARLEY_Q_STREAM_EXPIRED,       /* now, limit -> id */
    PARLEY_Q_STREAM_SCAN,          /* prefix -> {stream} in path order */
    PARLEY_Q_CHUNK_INSERT,         /* stream_id, end, start, unit_end, data */
    PARLEY_Q_CHUNK_TRIM,           /* stream_id, below: chunks with end <= below */
    PARLEY_Q_PRODUCER_GET,         /* stream_id, producer -> {producer} */
    PARLEY_Q_PRODUCER_PUT,         /* stream_id, producer, epoch, last_seq */
    PARLEY_Q_IDEM_GET,             /* owner, key -> {idem} */
    PARLEY_Q_IDEM_PURGE,           /* before, limit */
    PARLEY_Q_DOC_GET,              /* owner, collection, id -> {doc} */
    PARLEY_Q_DOC_LIST,             /* owner, collection, before, limit -> {doc} */
    PARLEY_Q_CONV_GET,             /* id -> {conv} */
    PARLEY_Q_CONV_TOMBSTONE,       /* id, now -> version */
    PARLEY_Q_CONV_LIST,            /* owner, before, limit -> {conv} */
    PARLEY_Q_SESS_GET,             /* id -> {sess} */
    PARLEY_Q_SESS_DEL,             /* id */
    PARLEY_Q_SESS_LIST,            /* conversation, before, limit -> {sess} */
    PARLEY_Q_SESS_LIST_STATUS,     /* conversation, before, limit, status -> {sess} */
    PARLEY_Q_SESS_EXPIRED,         /* now, limit -> id */
    PARLEY_Q_SNAP_GET,             /* id -> {snap} */
    PARLEY_Q_SNAP_EXPIRE,          /* id -> ord */
    PARLEY_Q_SNAP_DEL,             /* id */
    PARLEY_Q_SNAP_LIST,            /* owner, before, limit -> {snap} */
    PARLEY_Q_SNAP_EXPIRED,         /* now, limit -> id */
    PARLEY_Q_VISIT_ADD,            /* snapshot_id, now -> view_count */
    PARLEY_Q_VISIT_GET,            /* snapshot_id -> view_count, last_viewed_ms */
    PARLEY_Q_VISIT_DEL,            /* snapshot_id: mark deleted */
    PARLEY_Q_SUB_GET,              /* id -> {sub} */
    PARLEY_Q_SUB_PUT_CONFIG,       /* {sub} */
    PARLEY_Q_SUB_DEL,              /* id */
    PARLEY_Q_SUB_DEL_LINKS,        /* id */
    PARLEY_Q_SUB_PATTERNS,         /* -> {sub} */
    PARLEY_Q_SUB_LEASES,           /* now, limit -> id */
    PARLEY_Q_SUB_DUE,              /* now, limit -> id */
    PARLEY_Q_SUB_NEXT_DUE,         /* -> min(delivery_due_ms) */
    PARLEY_Q_LINK_GET,             /* sub_id, path -> {link} */
    PARLEY_Q_LINK_PUT,             /* {link} */
    PARLEY_Q_LINK_ADVANCE,         /* sub_id, path, pos -> acked */
    PARLEY_Q_LINK_DEL,             /* sub_id, path */
    PARLEY_Q_LINK_LIST_SUB,        /* sub_id -> {link} */
    PARLEY_Q_LINK_LIST_PATH,       /* path -> {link} */
    PARLEY_Q_LINK_SNAPSHOT,        /* sub_id */
    PARLEY_Q_LINK_ACK_SNAPSHOT,    /* sub_id */
    PARLEY_Q_LINK_PENDING,         /* sub_id -> path */
    PARLEY_Q_KEY_GET,              /* name -> {key} */
    PARLEY_Q_STAT_SUBS,            /* -> webhook subscriptions, pull-wake subscriptions */
    PARLEY_Q_BLOB_STAGE,           /* owner, now -> upload */
    PARLEY_Q_BLOB_STAGE_TOUCH,     /* upload, now -> upload */
    PARLEY_Q_BLOB_PART_PUT,        /* upload, n, data */
    PARLEY_Q_BLOB_UNSTAGE,         /* upload: the staged row */
    PARLEY_Q_BLOB_DEL_PARTS,       /* upload: its parts */
    PARLEY_Q_BLOB_UNSTAGE_PARTS,   /* upload: its parts, only while it is staged */
    PARLEY_Q_BLOB_GET,             /* owner, id -> {blob} */
    PARLEY_Q_BLOB_INSERT,          /* {blob} (nothing when the key exists) */
    PARLEY_Q_BLOB_PART_GET,        /* upload, n -> {key} (the part's bytes) */
    PARLEY_Q_BLOB_USAGE,           /* owner -> sum(size) */
    PARLEY_Q_BLOB_REF_ADD,         /* owner, id, src (nothing when present) */
    PARLEY_Q_BLOB_TOUCH,           /* owner, id, now */
    PARLEY_Q_BLOB_REF_TOUCH,       /* owner, src, now: its blobs' touched_ms */
    PARLEY_Q_BLOB_REF_DEL,         /* owner, src */
    PARLEY_Q_BLOB_REF_COPY,        /* owner, from, to */
    PARLEY_Q_BLOB_REF_HAS,         /* owner, id, src -> count */
    PARLEY_Q_BLOB_UNREF,           /* before, limit -> {blob} that nothing names */
    PARLEY_Q_BLOB_DEL,             /* owner, id, before -> upload, when nothing names it */
    PARLEY_Q_BLOB_STALE,           /* before, limit -> upload */
    PARLEY_Q_BLOB_LIST,            /* owner, before, limit -> {blob}, newest upload first */
    PARLEY_Q_BLOB_REFERENCED,      /* owner, id -> count of what names it (0 or 1) */
    PARLEY_Q_COUNT
};

/* The start of a SQL backend's connection struct. */
typedef struct parley_sql_db {
    parley_db_t base;      /* ops (first: the store.h wrappers read it) */
    parley_query_fn query; /* runs the backend's statements (columns.h) */
} parley_sql_db_t;

int parley_sqlop_stream_get(parley_db_t *db, const char *path, parley_stream_t *out);
int parley_sqlop_stream_get_id(parley_db_t *db, int64_t id, parley_stream_t *out);
int parley_sqlop_stream_append(parley_db_t *db, int64_t id, const void *data, size_t len,
                               uint64_t units, int64_t now_ms, const char *stream_seq,
                               int64_t expect_tail, uint64_t *new_tail);
int parley_sqlop_stream_close(parley_db_t *db, int64_t id, const char *closer, uint64_t epoch,
                              uint64_t seq, int64_t now_ms, uint64_t *tail);
int parley_sqlop_stream_touch(parley_db_t *db, int64_t id, int64_t now_ms);
int parley_sqlop_stream_ref(parley_db_t *db, int64_t id, int delta, parley_stream_ref_t *out);
int parley_sqlop_stream_mark_deleted(parley_db_t *db, int64_t id);
int parley_sqlop_stream_remove(parley_db_t *db, int64_t id);
int parley_sqlop_stream_expired(parley_db_t *db, int64_t now_ms, int64_t *ids, int max, int *n);
int parley_sqlop_chunk_trim(parley_db_t *db, int64_t stream_id, uint64_t below, int *n);
int parley_sqlop_stream_scan(parley_db_t *db, const char *prefix,
                             int (*cb)(void *arg, const parley_stream_t *s), void *arg);
int parley_sqlop_producer_get(parley_db_t *db, int64_t stream_id, const char *producer,
                              parley_producer_state_t *ps);
int parley_sqlop_producer_put(parley_db_t *db, int64_t stream_id, const char *producer,
                              const parley_producer_state_t *ps);
int parley_sqlop_idem_get(parley_db_t *db, const char *owner, const char *key, char *fingerprint,
                          int64_t *created_ms, char **resp, size_t *len);
int parley_sqlop_idem_purge(parley_db_t *db, int64_t before_ms, int limit, int *n);
int parley_sqlop_doc_get(parley_db_t *db, const char *owner, const char *collection, const char *id,
                         parley_doc_t *out);
int parley_sqlop_doc_list(parley_db_t *db, const char *owner, const char *collection,
                          int64_t before, int limit, int (*cb)(void *arg, const parley_doc_t *d),
                          void *arg);
int parley_sqlop_conv_get(parley_db_t *db, const char *id, parley_conv_t *out);
int parley_sqlop_conv_tombstone(parley_db_t *db, const char *id, int64_t now_ms, int64_t *version);
int parley_sqlop_conv_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                           int (*cb)(void *arg, const parley_conv_t *c), void *arg);
int parley_sqlop_visit_add(parley_db_t *db, const char *snapshot_id, int64_t now_ms);
int parley_sqlop_visit_get(parley_db_t *db, const char *snapshot_id, int64_t *count,
                           int64_t *last_ms);
int parley_sqlop_visit_delete(parley_db_t *db, const char *snapshot_id);
int parley_sqlop_sess_get(parley_db_t *db, const char *id, parley_sess_t *out);
int parley_sqlop_sess_remove(parley_db_t *db, const char *id);
int parley_sqlop_sess_list(parley_db_t *db, const char *conversation_id, const char *status,
                           int64_t before, int limit, int (*cb)(void *arg, const parley_sess_t *s),
                           void *arg);
int parley_sqlop_sess_expired(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                              int max, int *n);
int parley_sqlop_snap_get(parley_db_t *db, const char *id, parley_snap_t *out);
int parley_sqlop_snap_expire(parley_db_t *db, const char *id);
int parley_sqlop_snap_remove(parley_db_t *db, const char *id);
int parley_sqlop_snap_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                           int (*cb)(void *arg, const parley_snap_t *s), void *arg);
int parley_sqlop_snap_expired(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                              int max, int *n);
int parley_sqlop_sub_get(parley_db_t *db, const char *id, parley_sub_t *out);
int parley_sqlop_sub_put_config(parley_db_t *db, const parley_sub_t *s);
int parley_sqlop_sub_remove(parley_db_t *db, const char *id);
int parley_sqlop_sub_with_pattern(parley_db_t *db, int (*cb)(void *arg, const parley_sub_t *s),
                                  void *arg);
int parley_sqlop_sub_leases_expired(parley_db_t *db, int64_t now_ms,
                                    char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n);
int parley_sqlop_sub_deliveries_due(parley_db_t *db, int64_t now_ms,
                                    char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n);
int parley_sqlop_sub_next_delivery(parley_db_t *db, int64_t *due_ms);
/* The subscription counts of the stat op (subs_webhook, subs_pull_wake). */
int parley_sqlop_stat_subs(parley_db_t *db, parley_store_stat_t *out);
int parley_sqlop_sublink_get(parley_db_t *db, const char *sub_id, const char *path,
                             parley_sub_link_t *out);
int parley_sqlop_sublink_put(parley_db_t *db, const parley_sub_link_t *l);
int parley_sqlop_sublink_advance(parley_db_t *db, const char *sub_id, const char *path,
                                 uint64_t pos);
int parley_sqlop_sublink_remove(parley_db_t *db, const char *sub_id, const char *path);
int parley_sqlop_sublink_list(parley_db_t *db, const char *sub_id, const char *path,
                              int (*cb)(void *arg, const parley_sub_link_t *l), void *arg);
int parley_sqlop_sublink_snapshot(parley_db_t *db, const char *sub_id);
int parley_sqlop_sublink_ack_snapshot(parley_db_t *db, const char *sub_id);
int parley_sqlop_sublink_first_pending(parley_db_t *db, const char *sub_id, char *path);
int parley_sqlop_key_get(parley_db_t *db, const char *name, unsigned char *out, size_t cap,
                         size_t *len);

/* ---- blobs ---- */
int parley_sqlop_blob_stage(parley_db_t *db, const char *owner, int64_t now_ms, int64_t *upload);
int parley_sqlop_blob_part_put(parley_db_t *db, int64_t upload, int64_t n, const void *data,
                               size_t len, int64_t now_ms);
int parley_sqlop_blob_unstage(parley_db_t *db, int64_t upload);
int parley_sqlop_blob_get(parley_db_t *db, const char *owner, const char *id, parley_blob_t *out);
int parley_sqlop_blob_insert(parley_db_t *db, const parley_blob_t *b);
int parley_sqlop_blob_part_get(parley_db_t *db, int64_t upload, int64_t n, char **data,
                               size_t *len);
int parley_sqlop_blob_usage(parley_db_t *db, const char *owner, int64_t *bytes);
int parley_sqlop_blob_ref_add(parley_db_t *db, const char *owner, const char *id, const char *src,
                              int64_t now_ms);
int parley_sqlop_blob_ref_drop(parley_db_t *db, const char *owner, const char *src, int64_t now_ms);
int parley_sqlop_blob_ref_copy(parley_db_t *db, const char *owner, const char *from,
                               const char *to);
int parley_sqlop_blob_ref_has(parley_db_t *db, const char *owner, const char *id, const char *src,
                              bool *yes);
int parley_sqlop_blob_unreferenced(parley_db_t *db, int64_t before_ms, parley_blob_t *out, int max,
                                   int *n);
int parley_sqlop_blob_remove(parley_db_t *db, const char *owner, const char *id, int64_t before_ms);
int parley_sqlop_blob_stale_uploads(parley_db_t *db, int64_t before_ms, int64_t *ids, int max,
                                    int *n);
int parley_sqlop_blob_list(parley_db_t *db, const char *owner, int64_t before, parley_blob_t *out,
                           bool *referenced, int max, int *n);

#endif
