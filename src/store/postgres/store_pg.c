/*
 * store_pg.c — the storage interface on PostgreSQL (libpq).
 *
 * NOTES ON THE DESIGN
 *
 * URL. "postgres://user:password@host:port/db?options" or the same with
 * "postgresql://": libpq's own URI form, handed to PQconnectdb as is (a
 * unix socket directory goes in ?host=/path). The password never reaches a
 * log line: describe() names only the database and the host. Unless the
 * URL says otherwise, connecting gives up after 5 s and TCP keepalives
 * (10 s idle, 3 probes 5 s apart) notice a server that vanished.
 *
 * Connections (store.h's contract). One writer connection per process,
 * used by the writer thread only; one reader connection per reading
 * thread. The writer's transactions are READ COMMITTED; a reader's
 * begin is REPEATABLE READ READ ONLY, whose snapshot is taken by its first
 * statement, so one response's reads agree with each other. Every
 * connection sets synchronous_commit=on: COMMIT returns only after the
 * commit record is flushed on the server, so an acknowledged write
 * survives a crash of the server or of this process. open() warns when
 * the server runs with fsync=off, which voids that promise.
 *
 * Row locks. A *_get on the writer connection is SELECT ... FOR UPDATE:
 * the row stays locked until the batch's transaction ends, so a
 * read-decide-write in core cannot race another node's writer. The queue
 * and maintenance scans (oldest pending session, expiry scans, due
 * deliveries) are FOR UPDATE SKIP LOCKED on the writer: a row another node
 * is working on is skipped, never waited for. Readers never lock.
 *
 * Errors. A statement that fails aborts a PostgreSQL transaction (until
 * ROLLBACK TO), where SQLite fails only the statement; so the inserts a
 * caller expects to find taken (a stream path, a key name) use ON CONFLICT
 * DO NOTHING and report PARLEY_EEXIST without an error, and the request
 * goes on as on SQLite. Otherwise SQLSTATE decides: unique_violation is PARLEY_EEXIST;
 * serialization_failure and deadlock_detected are PARLEY_ERETRY (the
 * writer rolls the request back to its savepoint and runs it again alone,
 * store/writer.c); disk_full is PARLEY_EFULL; invalid text (bad UTF-8) is
 * PARLEY_EINVAL; a lost connection, or a server shutting down or starting
 * up, is PARLEY_EUNAVAIL (the request is answered 503 and the node goes
 * on); anything else is PARLEY_ESTORE, logged.
 *
 * Reconnection. A connection found broken outside a transaction (at begin,
 * or before an autocommit statement) is reset with PQreset, once per call;
 * its prepared statements are prepared again on first use. A connection
 * lost inside a transaction fails that transaction (PARLEY_EUNAVAIL): the
 * writer answers the batch 503 and the next batch reconnects. Nothing was
 * acknowledged for a batch whose COMMIT did not return, so nothing
 * acknowledged is lost; the outcome of such a batch is unknown to the
 * client, which retries with its Idempotency-Key.
 *
 * Schema. Built at open by the ordered migrations[] (as on SQLite), every
 * step above meta.schema_version in one transaction holding a transaction
 * advisory lock (two nodes starting at once do not race), with the new
 * version written in it; a database with a newer version is refused
 * (PARLEY_ECONFLICT) and not touched. `parley verify` reads it through
 * inspect / table_scan on a reader connection (see "operations" below). Chunk
 * data is bytea; every text key column is COLLATE "C" so ORDER BY and
 * prefix ranges are byte order, as on SQLite; partial indexes serve the
 * queue and the expiry scans. JSON values (document data, conversation
 * metadata, session inputs, snapshot payloads) are stored as text, not
 * jsonb: they are canonical JSON whose bytes are checksummed and returned
 * verbatim, and no query looks inside them (jsonb would reorder keys and
 * respace the text).
 *
 * Statements are prepared lazily per connection (named "p<n>") and run
 * with text parameters (bytea in binary) and binary results: integers are
 * int8 in network order, booleans one byte, text and bytea their raw bytes.
 * A row's columns are never listed here: the SQL says "{stream}",
 * "{conv}"... and the column maps shared with the SQLite backend
 * (store/columns.h) write the list at prepare time, bind rows ('r', 'R')
 * and read them back in the same order. The ops that both backends run
 * the same way (gets, lists, scans, deletes, the stream append, close and
 * ref...) are store/sqlops.c's, over this backend's SQL for the shared
 * statements (enum parley_sql_stmt) and its runner, query(), which the
 * connection struct carries; the ops here (inserts that return their id or
 * counter, fenced updates, the claim, the paged chunk scan) are a line or
 * a few over the shapes of columns.c through the same query(). Only the
 * paged chunk scan reads a result itself.
 *
 * Threads: as store.h says; a connection is used by one thread at a time.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parley/parley.h"
#include "store/columns.h"
#include "store/sqlops.h"
#include "store/postgres/pg_internal.h"
#include "store/postgres/store_pg.h"
#include "store/store.h"
#include "store/synctime.h"
#include "util/log.h"
#include "util/thread.h"

#define SCHEMA_LOCK_ID 0x7061726c6579 /* advisory lock key held while creating the schema */
#define MAINT_LOCK_ID                                                                              \
    0x7061726c6d74 /* held by the writer session of the node that runs maintenance */
#define BATCH_LOCK_WAIT_MS                                                                         \
    100 /* how long a batch's later request waits for another transaction's row lock */

/* The PostgreSQL store: parley_store_t's ops point at pg_ops. */
typedef struct pg_store {
    parley_store_t base;        /* ops (first: the store.h wrappers read it) */
    char *url;                  /* the libpq URI (may hold a password: never logged) */
    char desc[256];             /* "postgres <db> on <host>" for the banner */
    parley_db_t *writer;        /* the one write connection */
    parley_store_hooks_t hooks; /* the server's callbacks (on_remote) */
    pthread_t listener;         /* the LISTEN thread, while listening */
    bool listening;             /* listener started and not yet joined */
    atomic_bool stopping;       /* stop asked the listener to end */
    PGconn *first;              /* start's LISTEN connection, handed to the listener */
} pg_store_t;

static const parley_store_ops_t pg_ops;

/* How a SELECT on the writer connection locks what it returns. */
enum lock_mode {
    L_NONE,       /* plain read */
    L_UPDATE,     /* FOR UPDATE: the row stays locked until the transaction ends */
    L_SKIP_LOCKED /* FOR UPDATE SKIP LOCKED: rows another transaction holds are skipped */
};

enum stmt_id {
    S_CHUNK_SCAN = PARLEY_Q_COUNT, /* after the shared statements (store/sqlops.h) */
    S_KEY_PUT,
    S_STAT_DB,
    S_IDEM_HOLD,
    /* the atomic ops: see "atomic ops" below */
    S_A_STREAM_CREATE,
    S_A_IDEM_PUT,
    S_A_DOC_INSERT,
    S_A_DOC_UPDATE,
    S_A_CONV_INSERT,
    S_A_CONV_UPDATE,
    S_A_CONV_BUMP,
    S_A_CONV_TOUCH,
    S_A_SESS_INSERT,
    S_A_SESS_UPDATE,
    S_A_SESS_CLAIM,
    S_A_SESS_CLAIM_CONV,
    S_A_SNAP_INSERT,
    S_A_SUB_BEGIN_WAKE,
    S_A_SUB_UPDATE,
    S_COUNT
};

/* One statement: its SQL and how the writer's copy locks. */
typedef struct stmt_def {
    const char *sql;     /* the statement ($n parameters) */
    enum lock_mode lock; /* on the writer connection */
} stmt_def_t;

static const stmt_def_t stmts[S_COUNT] = {
    [PARLEY_Q_STREAM_GET] = {"SELECT {stream} FROM streams WHERE path = $1", L_UPDATE},
    [PARLEY_Q_STREAM_GET_ID] = {"SELECT {stream} FROM streams WHERE id = $1", L_UPDATE},
    [PARLEY_Q_STREAM_DEL] = {"DELETE FROM streams WHERE id = $1"},
    [PARLEY_Q_STREAM_DEL_CHUNKS] = {"DELETE FROM chunks WHERE stream_id = $1"},
    [PARLEY_Q_STREAM_DEL_PRODUCERS] = {"DELETE FROM producers WHERE stream_id = $1"},
    [PARLEY_Q_STREAM_EXPIRED] =
        {"SELECT id FROM streams WHERE NOT deleted AND "
         "((expires_ms IS NOT NULL AND expires_ms <= $1) OR "
         "(ttl_s IS NOT NULL AND touched_ms + ttl_s * 1000 <= $1)) LIMIT $2",
         L_SKIP_LOCKED},
    [PARLEY_Q_STREAM_SCAN] = {"SELECT {stream} FROM streams WHERE path >= $1 AND NOT deleted "
                              "ORDER BY path"},
    [PARLEY_Q_CHUNK_INSERT] = {"INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) "
                               "VALUES ($1, $2, $3, $4, $5)"},
    [PARLEY_Q_CHUNK_TRIM] = {"DELETE FROM chunks WHERE stream_id = $1 AND end_pos <= $2"},
    [S_CHUNK_SCAN] = {"SELECT start_pos, end_pos, unit_end, data FROM chunks "
                      "WHERE stream_id = $1 AND end_pos > $2 ORDER BY end_pos LIMIT $3"},
    [PARLEY_Q_PRODUCER_GET] = {"SELECT {producer} FROM producers WHERE stream_id = $1 AND "
                               "producer = $2",
                               L_UPDATE},
    [PARLEY_Q_PRODUCER_PUT] =
        {"INSERT INTO producers (stream_id, producer, epoch, last_seq) "
         "VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id, producer) DO UPDATE "
         "SET epoch = excluded.epoch, last_seq = excluded.last_seq"},
    [PARLEY_Q_IDEM_GET] = {"SELECT {idem} FROM idempotency "
                           "WHERE owner = $1 AND key = $2",
                           L_UPDATE},
    [PARLEY_Q_IDEM_PURGE] =
        {"DELETE FROM idempotency WHERE (owner, key) IN (SELECT owner, key FROM "
         "idempotency WHERE created_ms < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"},
    [PARLEY_Q_DOC_GET] =
        {"SELECT {doc} FROM documents WHERE owner = $1 AND collection = $2 AND id = $3", L_UPDATE},
    [PARLEY_Q_DOC_LIST] =
        {"SELECT {doc} FROM documents WHERE owner = $1 AND collection = $2 AND NOT deleted AND "
         "chg < $3 ORDER BY chg DESC LIMIT $4"},
    [PARLEY_Q_CONV_GET] = {"SELECT {conv} FROM conversations WHERE id = $1", L_UPDATE},
    [PARLEY_Q_CONV_LIST] = {"SELECT {conv} FROM conversations WHERE owner = $1 AND NOT deleted "
                            "AND activity < $2 ORDER BY activity DESC LIMIT $3"},
    [PARLEY_Q_SESS_GET] = {"SELECT {sess} FROM sessions WHERE id = $1", L_UPDATE},
    [PARLEY_Q_SESS_DEL] = {"DELETE FROM sessions WHERE id = $1"},
    [PARLEY_Q_SESS_LIST] = {"SELECT {sess} FROM sessions WHERE conversation_id = $1 AND "
                            "ord < $2 ORDER BY ord DESC LIMIT $3"},
    [PARLEY_Q_SESS_LIST_STATUS] = {"SELECT {sess} FROM sessions WHERE conversation_id = $1 AND "
                                   "ord < $2 AND status = $4 ORDER BY ord DESC LIMIT $3"},
    [PARLEY_Q_SESS_EXPIRED] = {"SELECT id FROM sessions WHERE lease_expires_ms IS NOT NULL AND "
                               "lease_expires_ms <= $1 AND status = 'processing' "
                               "ORDER BY lease_expires_ms LIMIT $2",
                               L_SKIP_LOCKED},
    [PARLEY_Q_SNAP_GET] = {"SELECT {snap} FROM snapshots WHERE id = $1", L_UPDATE},
    [PARLEY_Q_SNAP_DEL] = {"DELETE FROM snapshots WHERE id = $1"},
    [PARLEY_Q_SNAP_LIST] = {"SELECT {snap} FROM snapshots WHERE owner = $1 AND ord < $2 "
                            "ORDER BY ord DESC LIMIT $3"},
    [PARLEY_Q_SNAP_EXPIRED] =
        {"SELECT id FROM snapshots WHERE expires_ms IS NOT NULL AND "
         "expires_ms <= $1 AND stream IS NOT NULL ORDER BY expires_ms LIMIT $2",
         L_SKIP_LOCKED},
    [PARLEY_Q_VISIT_ADD] = {"INSERT INTO snapshot_visits (snapshot_id, view_count, "
                            "last_viewed_ms, deleted) VALUES ($1, 1, $2, false) ON CONFLICT "
                            "(snapshot_id) DO UPDATE SET view_count = snapshot_visits.view_count "
                            "+ 1, last_viewed_ms = GREATEST(snapshot_visits.last_viewed_ms, "
                            "excluded.last_viewed_ms) WHERE NOT snapshot_visits.deleted "
                            "RETURNING view_count"},
    [PARLEY_Q_VISIT_GET] = {"SELECT view_count, last_viewed_ms FROM snapshot_visits "
                            "WHERE snapshot_id = $1 AND NOT deleted"},
    [PARLEY_Q_VISIT_DEL] = {"UPDATE snapshot_visits SET deleted = true WHERE snapshot_id = $1"},
    [PARLEY_Q_SUB_GET] = {"SELECT {sub} FROM subscriptions WHERE id = $1", L_UPDATE},
    [PARLEY_Q_SUB_DEL] = {"DELETE FROM subscriptions WHERE id = $1"},
    [PARLEY_Q_SUB_DEL_LINKS] = {"DELETE FROM subscription_streams WHERE sub_id = $1"},
    [PARLEY_Q_SUB_PATTERNS] = {"SELECT {sub} FROM subscriptions WHERE pattern IS NOT NULL"},
    [PARLEY_Q_SUB_LEASES] = {"SELECT id FROM subscriptions WHERE lease_expires_ms IS NOT NULL AND "
                             "lease_expires_ms <= $1 AND delivery_due_ms IS NULL "
                             "ORDER BY lease_expires_ms LIMIT $2",
                             L_SKIP_LOCKED},
    [PARLEY_Q_SUB_DUE] = {"SELECT id FROM subscriptions WHERE delivery_due_ms IS NOT NULL AND "
                          "delivery_due_ms <= $1 ORDER BY delivery_due_ms LIMIT $2",
                          L_SKIP_LOCKED},
    [PARLEY_Q_SUB_NEXT_DUE] = {"SELECT min(delivery_due_ms) FROM subscriptions"},
    [PARLEY_Q_LINK_GET] = {"SELECT {link} FROM subscription_streams WHERE sub_id = $1 AND "
                           "path = $2",
                           L_UPDATE},
    [PARLEY_Q_LINK_PUT] = {"INSERT INTO subscription_streams ({link}) VALUES ($1, $2, $3, $4, "
                           "$5, $6) ON CONFLICT (sub_id, path) DO UPDATE SET by_glob = "
                           "excluded.by_glob, by_explicit = excluded.by_explicit, acked = "
                           "excluded.acked, wake_tail = excluded.wake_tail"},
    [PARLEY_Q_LINK_DEL] = {"DELETE FROM subscription_streams WHERE sub_id = $1 AND path = $2"},
    [PARLEY_Q_LINK_LIST_SUB] = {"SELECT {link} FROM subscription_streams WHERE sub_id = $1 "
                                "ORDER BY path"},
    [PARLEY_Q_LINK_LIST_PATH] = {"SELECT {link} FROM subscription_streams WHERE path = $1 "
                                 "ORDER BY sub_id"},
    [PARLEY_Q_LINK_SNAPSHOT] =
        {"UPDATE subscription_streams l SET wake_tail = coalesce((SELECT s.tail "
         "FROM streams s WHERE s.path = l.path AND NOT s.deleted), 0) "
         "WHERE l.sub_id = $1"},
    [PARLEY_Q_LINK_ACK_SNAPSHOT] =
        {"UPDATE subscription_streams l SET acked = greatest(l.acked, "
         "least(l.wake_tail, coalesce((SELECT s.tail FROM streams s WHERE "
         "s.path = l.path AND NOT s.deleted), 0))) WHERE l.sub_id = $1 AND "
         "l.wake_tail IS NOT NULL AND l.wake_tail > l.acked"},
    [PARLEY_Q_LINK_PENDING] =
        {"SELECT l.path FROM subscription_streams l JOIN streams s ON s.path = "
         "l.path WHERE l.sub_id = $1 AND NOT s.deleted AND s.tail > l.acked "
         "ORDER BY l.path LIMIT 1"},
    [PARLEY_Q_KEY_GET] = {"SELECT {key} FROM server_keys WHERE name = $1"},
    /* ---- atomic ops: one statement decides and writes, on the row it
     * locks, so two nodes can never both act on one old value ---- */
    [S_A_STREAM_CREATE] = {"INSERT INTO streams ({stream-}) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                           "$8, $9, $10, $11, $12, $13, $14, $15, "
                           "$16, $17) ON CONFLICT (path) DO NOTHING RETURNING id"},
    /* $1 id, $2 units, $3 now, $4 stream_seq (NULL: none), $5 expect_tail
     * (-1: any), $6 the largest tail */
    [PARLEY_Q_STREAM_APPEND] =
        {"UPDATE streams SET tail = tail + $2::bigint, touched_ms = $3, "
         "stream_seq = coalesce($4::text, stream_seq) WHERE id = $1 AND NOT "
         "closed AND NOT deleted AND ($4::text IS NULL OR stream_seq IS NULL OR "
         "stream_seq < $4::text COLLATE \"C\") AND ($5::bigint < 0 OR tail = "
         "$5::bigint) AND tail + $2::bigint <= $6::bigint RETURNING tail"},
    [PARLEY_Q_STREAM_CLOSE] = {"UPDATE streams SET closed = true, closer = $2, closer_epoch = $3, "
                               "closer_seq = $4, touched_ms = $5 WHERE id = $1 AND NOT closed "
                               "RETURNING tail"},
    [PARLEY_Q_STREAM_TOUCH] = {"UPDATE streams SET touched_ms = greatest(touched_ms, $2::bigint) "
                               "WHERE id = $1 RETURNING tail"},
    [PARLEY_Q_STREAM_REF] =
        {"UPDATE streams SET refs = greatest(refs + $2::bigint, 0) WHERE id = $1 "
         "RETURNING {ref}"},
    [PARLEY_Q_STREAM_MARK_DELETED] =
        {"UPDATE streams SET deleted = true WHERE id = $1 AND refs > 0 "
         "RETURNING refs"},
    /* Insert, or take over a record that expired (created before $6): a
     * live record stays and the insert reports nothing (EEXIST). Two nodes
     * with the same key: the second waits on the unique index for the
     * first's commit, then sees the live record. */
    [S_A_IDEM_PUT] = {"INSERT INTO idempotency AS i (owner, key, fingerprint, created_ms, "
                      "response) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, key) DO UPDATE "
                      "SET fingerprint = excluded.fingerprint, created_ms = excluded.created_ms, "
                      "response = excluded.response WHERE i.created_ms < $6 RETURNING 1"},
    [S_A_DOC_INSERT] =
        {"INSERT INTO documents ({doc}) VALUES ($1, $2, $3, $4, $5, $6, "
         "$7, $8, $9, parley_next('document_change')) ON CONFLICT (owner, collection, id) "
         "DO NOTHING RETURNING chg"},
    [S_A_DOC_UPDATE] =
        {"UPDATE documents SET version = $4, deleted = $5, data = $6, checksum = "
         "$7, created_ms = $8, updated_ms = $9, chg = parley_next('document_change') "
         "WHERE owner = $1 AND collection = $2 AND id = $3 AND version = $10 "
         "RETURNING chg"},
    [S_A_CONV_INSERT] = {"INSERT INTO conversations ({conv}) VALUES ($1, $2, $3, $4, $5, "
                         "$6, $7, $8, $9, $10, parley_next('conversation_activity')) ON CONFLICT "
                         "(id) DO NOTHING RETURNING activity"},
    [S_A_CONV_UPDATE] = {"UPDATE conversations SET title = $2, metadata = $3, updated_ms = $4, "
                         "version = version + 1 WHERE id = $1 AND version = $5 AND NOT deleted "
                         "RETURNING version"},
    [S_A_CONV_BUMP] = {"UPDATE conversations SET message_count = message_count + 1, version = "
                       "version + 1, updated_ms = $2, last_message_ms = $2, activity = "
                       "parley_next('conversation_activity') WHERE id = $1 AND NOT deleted "
                       "RETURNING message_count, version, activity"},
    [S_A_CONV_TOUCH] = {"UPDATE conversations SET version = version + 1, updated_ms = $2, "
                        "last_message_ms = $2, activity = parley_next('conversation_activity') "
                        "WHERE id = $1 AND NOT deleted RETURNING message_count, version, activity"},
    [PARLEY_Q_CONV_TOMBSTONE] =
        {"UPDATE conversations SET title = NULL, metadata = '{}', deleted = "
         "true, version = version + 1, updated_ms = $2 WHERE id = $1 "
         "RETURNING version"},
    [S_A_SESS_INSERT] = {"INSERT INTO sessions ({sess}) VALUES ($1, $2, $3, $4, $5, $6, "
                         "$7, $8, $9, $10, $11, $12, $13, $14, $15, parley_next('session')) "
                         "ON CONFLICT (id) DO NOTHING RETURNING ord"},
    /* $11 expect_status, $12 expect_attempt */
    [S_A_SESS_UPDATE] = {"UPDATE sessions SET result_id = $2, status = $3, attempt = $4, "
                         "lease_ms = $5, lease_expires_ms = $6, error = $7, request = $8, input = "
                         "$9, updated_ms = $10 WHERE id = $1 AND status = $11 AND attempt = $12 "
                         "RETURNING ord"},
    /* The oldest pending session no other transaction holds, claimed in the
     * same statement: a worker on another node skips it, never waits. $1
     * now, $2 lease. */
    [S_A_SESS_CLAIM] = {"UPDATE sessions s SET status = 'processing', "
                        "lease_ms = $2, lease_expires_ms = $1::bigint + $2::bigint, updated_ms = "
                        "$1 FROM (SELECT id FROM sessions WHERE status = 'pending' ORDER BY ord "
                        "LIMIT 1 FOR UPDATE SKIP LOCKED) n WHERE s.id = n.id RETURNING s.id"},
    [S_A_SESS_CLAIM_CONV] = {"UPDATE sessions s SET status = 'processing', lease_ms = $2, "
                             "lease_expires_ms = $1::bigint + $2::bigint, updated_ms = $1 FROM "
                             "(SELECT id FROM sessions WHERE status = 'pending' AND "
                             "conversation_id = $3 ORDER BY ord LIMIT 1 FOR UPDATE SKIP LOCKED) n "
                             "WHERE s.id = n.id RETURNING s.id"},
    [S_A_SNAP_INSERT] = {"INSERT INTO snapshots ({snap}) VALUES ($1, $2, $3, $4, $5, $6, "
                         "$7, $8, $9, $10, parley_next('snapshot')) ON CONFLICT (id) DO NOTHING "
                         "RETURNING ord"},
    [PARLEY_Q_SNAP_EXPIRE] = {"UPDATE snapshots SET payload = '{}', stream = NULL WHERE id = $1 "
                              "RETURNING ord"},
    /* Configuration columns only: the delivery state (generation, wake,
     * lease, due, attempts) of an existing row is never overwritten. */
    [PARLEY_Q_SUB_PUT_CONFIG] =
        {"INSERT INTO subscriptions ({sub}) VALUES ($1, $2, $3, $4, $5, "
         "$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (id) "
         "DO UPDATE SET type = excluded.type, pattern = excluded.pattern, "
         "webhook_url = excluded.webhook_url, wake_stream = "
         "excluded.wake_stream, description = excluded.description, "
         "lease_ttl_ms = excluded.lease_ttl_ms, config_hash = "
         "excluded.config_hash, root_url = excluded.root_url"},
    /* Only an idle subscription starts a wake: generation + 1 is the
     * fencing token. $3 lease end (-1: none), $4 due (-1: none). */
    [S_A_SUB_BEGIN_WAKE] = {"UPDATE subscriptions SET generation = generation + 1, wake_id = "
                            "$2, holder = NULL, lease_expires_ms = nullif($3::bigint, -1), "
                            "delivery_due_ms = nullif($4::bigint, -1), attempts = 0 WHERE id = "
                            "$1 AND wake_id IS NULL RETURNING generation"},
    /* Delivery state, fenced by generation ($7) and wake id ($8: "" for
     * none). */
    [S_A_SUB_UPDATE] = {"UPDATE subscriptions SET wake_id = $2, holder = $3, lease_expires_ms = "
                        "$4, delivery_due_ms = $5, attempts = $6 WHERE id = $1 AND generation = $7 "
                        "AND coalesce(wake_id, '') = $8 RETURNING generation"},
    /* Never back, never past the stream's tail. */
    [PARLEY_Q_LINK_ADVANCE] =
        {"UPDATE subscription_streams SET acked = $3 WHERE sub_id = $1 AND path = "
         "$2 AND acked <= $3::bigint AND $3::bigint <= coalesce((SELECT tail FROM "
         "streams WHERE streams.path = $2 AND NOT deleted), 0) RETURNING acked"},
    [S_KEY_PUT] = {"INSERT INTO server_keys (name, secret, created_ms) VALUES ($1, $2, $3) "
                   "ON CONFLICT (name) DO NOTHING"},
    [PARLEY_Q_BLOB_STAGE] = {"INSERT INTO blob_uploads (owner, touched_ms) VALUES ($1, $2) "
                             "RETURNING upload"},
    [PARLEY_Q_BLOB_STAGE_TOUCH] = {"UPDATE blob_uploads SET touched_ms = $2 WHERE upload = $1 "
                                   "RETURNING upload"},
    [PARLEY_Q_BLOB_PART_PUT] = {"INSERT INTO blob_parts (upload, n, data) VALUES ($1, $2, $3) "
                                "ON CONFLICT (upload, n) DO UPDATE SET data = excluded.data"},
    [PARLEY_Q_BLOB_UNSTAGE] = {"DELETE FROM blob_uploads WHERE upload = $1"},
    [PARLEY_Q_BLOB_DEL_PARTS] = {"DELETE FROM blob_parts WHERE upload = $1"},
    [PARLEY_Q_BLOB_UNSTAGE_PARTS] = {"DELETE FROM blob_parts WHERE upload = $1 AND EXISTS (SELECT "
                                     "1 FROM blob_uploads WHERE upload = $1)"},
    [PARLEY_Q_BLOB_GET] = {"SELECT {blob} FROM blobs WHERE owner = $1 AND id = $2"},
    [PARLEY_Q_BLOB_INSERT] = {"INSERT INTO blobs ({blob}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                              "ON CONFLICT DO NOTHING"},
    [PARLEY_Q_BLOB_PART_GET] = {"SELECT data FROM blob_parts WHERE upload = $1 AND n = $2"},
    [PARLEY_Q_BLOB_USAGE] = {"SELECT coalesce(sum(size), 0)::int8 FROM blobs WHERE owner = $1"},
    [PARLEY_Q_BLOB_REF_ADD] = {"INSERT INTO blob_refs (owner, blob_id, src) VALUES ($1, $2, $3) "
                               "ON CONFLICT DO NOTHING"},
    [PARLEY_Q_BLOB_REF_TOUCH] = {"UPDATE blobs SET touched_ms = $3 WHERE owner = $1 AND id IN "
                                 "(SELECT blob_id FROM blob_refs WHERE owner = $1 AND src = $2)"},
    [PARLEY_Q_BLOB_REF_DEL] = {"DELETE FROM blob_refs WHERE owner = $1 AND src = $2"},
    [PARLEY_Q_BLOB_REF_COPY] = {"INSERT INTO blob_refs (owner, blob_id, src) SELECT owner, "
                                "blob_id, $3 FROM blob_refs WHERE owner = $1 AND src = $2 "
                                "ON CONFLICT DO NOTHING"},
    [PARLEY_Q_BLOB_REF_HAS] = {"SELECT count(*)::int8 FROM blob_refs WHERE owner = $1 AND "
                               "blob_id = $2 AND src = $3"},
    [PARLEY_Q_BLOB_LIST] = {"SELECT {blob} FROM blobs WHERE owner = $1 AND upload < $2 "
                            "ORDER BY upload DESC LIMIT $3"},
    [PARLEY_Q_BLOB_REFERENCED] = {"SELECT count(*)::int8 FROM (SELECT 1 FROM blob_refs WHERE "
                                  "owner = $1 AND blob_id = $2 LIMIT 1) t"},
    [PARLEY_Q_BLOB_UNREF] = {"SELECT {blob} FROM blobs b WHERE touched_ms < $1 AND NOT EXISTS "
                             "(SELECT 1 FROM blob_refs r WHERE r.owner = b.owner AND r.blob_id = "
                             "b.id) ORDER BY touched_ms LIMIT $2"},
    /* touched_ms is rechecked on the row a concurrent reference moved
     * (blob_ref_add touches it), so that blob stays. */
    [PARLEY_Q_BLOB_DEL] = {"DELETE FROM blobs WHERE owner = $1 AND id = $2 AND touched_ms < $3 "
                           "AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.owner = $1 AND "
                           "r.blob_id = $2) RETURNING upload"},
    [PARLEY_Q_BLOB_TOUCH] = {"UPDATE blobs SET touched_ms = greatest(touched_ms, $3) WHERE owner = "
                             "$1 AND id = $2"},
    [PARLEY_Q_BLOB_STALE] = {"SELECT upload FROM blob_uploads WHERE touched_ms < $1 ORDER BY "
                             "touched_ms LIMIT $2"},
    [PARLEY_Q_STAT_SUBS] = {"SELECT count(*) FILTER (WHERE type = 'webhook'), count(*) FILTER "
                            "(WHERE type = 'pull-wake') FROM subscriptions"},
    [S_STAT_DB] = {"SELECT pg_database_size(current_database())"},
    [S_IDEM_HOLD] =
        {"SELECT CASE WHEN pg_try_advisory_xact_lock($1::bigint) THEN 1::int8 ELSE 0::int8 END"},
};

/* Text key columns compare as bytes, as on SQLite. */
#define KEY "text COLLATE \"C\""

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta (key " KEY " PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS streams ("
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  path " KEY " NOT NULL UNIQUE,"
    "  owner " KEY " NOT NULL DEFAULT '',"
    "  content_type text NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  touched_ms bigint NOT NULL,"
    "  ttl_s bigint,"
    "  expires_ms bigint,"
    "  tail bigint NOT NULL DEFAULT 0,"
    "  closed boolean NOT NULL DEFAULT false,"
    "  closer text,"
    "  closer_epoch bigint,"
    "  closer_seq bigint,"
    "  stream_seq " KEY ","
    "  fork_src bigint,"
    "  fork_pos bigint NOT NULL DEFAULT 0,"
    "  refs bigint NOT NULL DEFAULT 0,"
    "  deleted boolean NOT NULL DEFAULT false);"
    "CREATE INDEX IF NOT EXISTS streams_expiry ON streams (expires_ms) "
    "  WHERE NOT deleted AND expires_ms IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS streams_ttl ON streams ((touched_ms + ttl_s * 1000)) "
    "  WHERE NOT deleted AND ttl_s IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS chunks ("
    "  stream_id bigint NOT NULL,"
    "  end_pos bigint NOT NULL,"
    "  start_pos bigint NOT NULL,"
    "  unit_end bigint NOT NULL,"
    "  data bytea NOT NULL,"
    "  PRIMARY KEY (stream_id, end_pos));"
    "CREATE TABLE IF NOT EXISTS producers ("
    "  stream_id bigint NOT NULL,"
    "  producer " KEY " NOT NULL,"
    "  epoch bigint NOT NULL,"
    "  last_seq bigint NOT NULL,"
    "  PRIMARY KEY (stream_id, producer));"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    "  owner " KEY " NOT NULL,"
    "  key " KEY " NOT NULL,"
    "  fingerprint text NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  response bytea NOT NULL,"
    "  PRIMARY KEY (owner, key));"
    "CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_ms);"
    "CREATE TABLE IF NOT EXISTS documents ("
    "  owner " KEY " NOT NULL,"
    "  collection " KEY " NOT NULL,"
    "  id " KEY " NOT NULL,"
    "  version bigint NOT NULL,"
    "  deleted boolean NOT NULL DEFAULT false,"
    "  data text NOT NULL,"
    "  checksum text NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  updated_ms bigint NOT NULL,"
    "  chg bigint NOT NULL,"
    "  PRIMARY KEY (owner, collection, id));"
    "CREATE INDEX IF NOT EXISTS documents_recent ON documents (owner, collection, chg) "
    "  WHERE NOT deleted;"
    "CREATE TABLE IF NOT EXISTS counters (name " KEY " PRIMARY KEY, value bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS conversations ("
    "  id " KEY " PRIMARY KEY,"
    "  owner " KEY " NOT NULL,"
    "  title text,"
    "  metadata text NOT NULL,"
    "  version bigint NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  updated_ms bigint NOT NULL,"
    "  message_count bigint NOT NULL DEFAULT 0,"
    "  last_message_ms bigint,"
    "  activity bigint NOT NULL,"
    "  deleted boolean NOT NULL DEFAULT false);"
    "CREATE INDEX IF NOT EXISTS conversations_recent ON conversations (owner, activity) "
    "  WHERE NOT deleted;"
    "CREATE TABLE IF NOT EXISTS sessions ("
    "  id " KEY " PRIMARY KEY,"
    "  conversation_id " KEY " NOT NULL,"
    "  owner " KEY " NOT NULL,"
    "  message_id " KEY " NOT NULL,"
    "  result_id " KEY ","
    "  status " KEY " NOT NULL,"
    "  attempt bigint NOT NULL,"
    "  max_attempts bigint NOT NULL,"
    "  lease_ms bigint NOT NULL DEFAULT 0,"
    "  lease_expires_ms bigint,"
    "  error text,"
    "  request text,"
    "  input text,"
    "  created_ms bigint NOT NULL,"
    "  updated_ms bigint NOT NULL,"
    "  ord bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sessions_pending ON sessions (ord) WHERE status = 'pending';"
    "CREATE INDEX IF NOT EXISTS sessions_pending_conv ON sessions (conversation_id, ord) "
    "  WHERE status = 'pending';"
    "CREATE INDEX IF NOT EXISTS sessions_conversation ON sessions (conversation_id, ord);"
    "CREATE INDEX IF NOT EXISTS sessions_lease ON sessions (lease_expires_ms) "
    "  WHERE lease_expires_ms IS NOT NULL AND status = 'processing';"
    "CREATE TABLE IF NOT EXISTS snapshots ("
    "  id " KEY " PRIMARY KEY,"
    "  owner " KEY " NOT NULL,"
    "  source text NOT NULL,"
    "  kind text NOT NULL,"
    "  title text,"
    "  public boolean NOT NULL DEFAULT false,"
    "  created_ms bigint NOT NULL,"
    "  expires_ms bigint,"
    "  stream " KEY ","
    "  payload text NOT NULL,"
    "  ord bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS snapshots_owner ON snapshots (owner, ord);"
    "CREATE INDEX IF NOT EXISTS snapshots_expiry ON snapshots (expires_ms) "
    "  WHERE expires_ms IS NOT NULL AND stream IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS subscriptions ("
    "  id " KEY " PRIMARY KEY,"
    "  type text NOT NULL,"
    "  pattern " KEY ","
    "  webhook_url text,"
    "  wake_stream " KEY ","
    "  description text,"
    "  lease_ttl_ms bigint NOT NULL,"
    "  config_hash text NOT NULL,"
    "  root_url text NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  generation bigint NOT NULL DEFAULT 0,"
    "  wake_id " KEY ","
    "  holder " KEY ","
    "  lease_expires_ms bigint,"
    "  delivery_due_ms bigint,"
    "  attempts bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS subscriptions_pattern ON subscriptions (id) "
    "  WHERE pattern IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS subscriptions_lease ON subscriptions (lease_expires_ms) "
    "  WHERE lease_expires_ms IS NOT NULL AND delivery_due_ms IS NULL;"
    "CREATE INDEX IF NOT EXISTS subscriptions_due ON subscriptions (delivery_due_ms) "
    "  WHERE delivery_due_ms IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS subscription_streams ("
    "  sub_id " KEY " NOT NULL,"
    "  path " KEY " NOT NULL,"
    "  by_glob boolean NOT NULL DEFAULT false,"
    "  by_explicit boolean NOT NULL DEFAULT false,"
    "  acked bigint NOT NULL DEFAULT 0,"
    "  wake_tail bigint,"
    "  PRIMARY KEY (sub_id, path));"
    "CREATE INDEX IF NOT EXISTS subscription_streams_path ON subscription_streams (path);"
    /* The next value of a named counter, in the caller's transaction (a
     * request rolled back to its savepoint gives its number back). */
    "CREATE OR REPLACE FUNCTION parley_next(n text) RETURNS bigint LANGUAGE sql AS $$"
    "  INSERT INTO counters (name, value) VALUES (n, 1) ON CONFLICT (name)"
    "  DO UPDATE SET value = counters.value + 1 RETURNING value $$;"
    "CREATE TABLE IF NOT EXISTS server_keys ("
    "  name " KEY " PRIMARY KEY,"
    "  secret bytea NOT NULL,"
    "  created_ms bigint NOT NULL);";

/* A PostgreSQL connection: parley_db_t's ops point at pg_ops. */
typedef struct pg_db {
    parley_sql_db_t sql;    /* ops and runner (first: the store.h wrappers read it) */
    pg_store_t *store;      /* the store it belongs to */
    PGconn *conn;           /* the libpq connection */
    bool writer;            /* the one write connection */
    bool in_txn;            /* between begin and commit/rollback */
    bool prepared[S_COUNT]; /* statements prepared on this session */
    bool maintainer;        /* this session holds MAINT_LOCK_ID (writer) */
} pg_db_t;

static pg_db_t *pg(parley_db_t *db)
{
    return (pg_db_t *)db;
}

static pg_store_t *pg_store(parley_store_t *s)
{
    return (pg_store_t *)s;
}

/* ---- results (binary format) ---------------------------------------------- */

static bool g_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}

static int64_t g_int(const PGresult *r, int row, int col)
{
    if (g_null(r, row, col))
        return 0;
    uint64_t v = 0;
    const char *p = PQgetvalue(r, row, col);
    int n = PQgetlength(r, row, col);
    if (n == 8) {
        memcpy(&v, p, 8);
        return (int64_t)be64toh(v);
    }
    if (n == 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        return (int32_t)ntohl(w);
    }
    return 0;
}

/* A result row, for cell(). */
typedef struct result_row {
    const PGresult *r; /* the result */
    int row;           /* the row in it */
} result_row_t;

/* Column col of a result row, as columns.c asks for it. */
static void cell(void *ctx, int col, parley_col_kind_t kind, parley_cell_t *out)
{
    const result_row_t *at = ctx;
    out->null = g_null(at->r, at->row, col);
    if (parley_col_is_text(kind)) {
        out->p = PQgetvalue(at->r, at->row, col);
        out->len = (size_t)PQgetlength(at->r, at->row, col);
    } else if (kind == PARLEY_COL_BOOL) {
        out->i = !out->null && PQgetvalue(at->r, at->row, col)[0] != 0;
    } else {
        out->i = g_int(at->r, at->row, col);
    }
}

/* ---- connections, errors, statements ------------------------------------- */

/* libpq's message without its trailing newline, for a log line. */
static int msg_len(const char *m)
{
    size_t n = m ? strlen(m) : 0;
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    return (int)n;
}

#define MSG(m) msg_len(m), (m) ? (m) : ""

static bool sqlstate_is(const char *state, const char *want)
{
    return state && strcmp(state, want) == 0;
}

/* Map a failed result (or a broken connection) to a Parley error. */
static int pg_error(pg_db_t *c, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(c->conn) != CONNECTION_OK || (state && strncmp(state, "08", 2) == 0) ||
        sqlstate_is(state, "57P01") || sqlstate_is(state, "57P02") || sqlstate_is(state, "57P03")) {
        const char *m = res ? PQresultErrorMessage(res) : NULL;
        if (!m || !*m)
            m = PQerrorMessage(c->conn);
        parley_log_error("store: %s: the database is unavailable: %.*s", what, MSG(m));
        return PARLEY_EUNAVAIL;
    }
    if (sqlstate_is(state, "23505"))
        return PARLEY_EEXIST;
    if (sqlstate_is(state, "40001") || sqlstate_is(state, "40P01") || sqlstate_is(state, "55P03"))
        return PARLEY_ERETRY;
    if (sqlstate_is(state, "53100"))
        return PARLEY_EFULL;
    if (sqlstate_is(state, "53200"))
        return PARLEY_ENOMEM;
    if (sqlstate_is(state, "22021") || sqlstate_is(state, "22P05"))
        return PARLEY_EINVAL;
    parley_log_error("store: %.80s: %.*s", what,
                     MSG(res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn)));
    return PARLEY_ESTORE;
}

PGconn *parley_pg_conn(parley_db_t *db)
{
    return pg(db)->conn;
}

int parley_pg_error(parley_db_t *db, const PGresult *res, const char *what)
{
    return pg_error(pg(db), res, what);
}

/* Set the session up after a (re)connection: durable commits, quiet
 * notices; a reader's transactions are read-only. */
static int session_setup(pg_db_t *c)
{
    const char *sql = c->writer ? "SET synchronous_commit = on; SET client_min_messages = warning"
                                : "SET synchronous_commit = on; SET client_min_messages = warning;"
                                  "SET default_transaction_read_only = on";
    PGresult *res = PQexec(c->conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(c, res, "session setup");
    PQclear(res);
    memset(c->prepared, 0, sizeof c->prepared);
    c->maintainer = false; /* a new session holds no advisory lock */
    return rc;
}

/* Reconnect a broken connection (outside a transaction): once per call. */
static int ensure_conn(pg_db_t *c)
{
    if (PQstatus(c->conn) == CONNECTION_OK)
        return 0;
    PQreset(c->conn);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        parley_log_error("store: cannot reach the database: %.*s", MSG(PQerrorMessage(c->conn)));
        return PARLEY_EUNAVAIL;
    }
    parley_log_info("store: reconnected to the database");
    return session_setup(c);
}

static int query(parley_db_t *db, int id, const parley_vals_t *vals, parley_query_t *q);

static int open_conn(pg_store_t *s, bool writer, parley_db_t **out)
{
    pg_db_t *c = calloc(1, sizeof *c);
    if (!c)
        return PARLEY_ENOMEM;
    c->sql.base.ops = &pg_ops;
    c->sql.query = query;
    c->store = s;
    c->writer = writer;
    /* Defaults first: the URL's own parameters (expanded from dbname)
     * override them. A dead host must not hang the writer: connecting gives
     * up after 5 s, and TCP keepalives find a peer that vanished. */
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "application_name",
                                       "dbname",
                                       NULL};
    const char *vals[] = {"5", "10", "5", "3", "parley", s->url, NULL};
    c->conn = PQconnectdbParams(keys, vals, 1);
    if (!c->conn) {
        free(c);
        return PARLEY_ENOMEM;
    }
    if (PQstatus(c->conn) != CONNECTION_OK) {
        parley_log_error("store: cannot connect to the database: %.*s",
                         MSG(PQerrorMessage(c->conn)));
        PQfinish(c->conn);
        free(c);
        return PARLEY_EUNAVAIL;
    }
    int rc = session_setup(c);
    if (rc) {
        PQfinish(c->conn);
        free(c);
        return rc;
    }
    *out = &c->sql.base;
    return 0;
}

static void pg_db_close(parley_db_t *db)
{
    PQfinish(pg(db)->conn);
    free(db);
}

/* Prepare statement id on c's session as "p<id>" (the writer's copy with
 * its lock clause). */
static int prepare(pg_db_t *c, enum stmt_id id, const char *what)
{
    char name[16], sql[4096];
    const char *lock = "";
    if (c->writer && stmts[id].lock == L_UPDATE)
        lock = " FOR UPDATE";
    else if (c->writer && stmts[id].lock == L_SKIP_LOCKED)
        lock = " FOR UPDATE SKIP LOCKED";
    snprintf(name, sizeof name, "p%d", (int)id);
    int rc = parley_sql_expand(stmts[id].sql, sql, sizeof sql); /* the column lists written out */
    if (rc)
        return rc;
    size_t n = strlen(sql);
    snprintf(sql + n, sizeof sql - n, "%s", lock);
    PGresult *pr = PQprepare(c->conn, name, sql, 0, NULL);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK)
        rc = pg_error(c, pr, what);
    PQclear(pr);
    c->prepared[id] = rc == 0;
    return rc;
}

/*
 * Run statement id with vals as its parameters (text, except bytea in
 * binary); *out gets its rows (PQclear them).
 */
static int exec_vals(parley_db_t *db, enum stmt_id id, const parley_vals_t *vals, PGresult **out)
{
    pg_db_t *c = pg(db);
    const char *v[PARLEY_VALS_MAX];
    int len[PARLEY_VALS_MAX], fmt[PARLEY_VALS_MAX];
    char num[PARLEY_VALS_MAX][24], name[16];
    int rc;
    *out = NULL;
    for (int i = 0; i < vals->n; i++) {
        const parley_val_t *x = &vals->v[i];
        v[i] = x->kind == PARLEY_VAL_NULL ? NULL : x->p;
        len[i] = x->kind == PARLEY_VAL_BLOB ? (int)x->len : 0;
        fmt[i] = x->kind == PARLEY_VAL_BLOB;
        if (x->kind == PARLEY_VAL_INT) {
            snprintf(num[i], sizeof num[i], "%lld", (long long)x->i);
            v[i] = num[i];
        } else if (x->kind == PARLEY_VAL_BOOL) {
            v[i] = x->i ? "t" : "f";
        }
    }
    if (!c->in_txn && (rc = ensure_conn(c)) != 0)
        return rc;
    snprintf(name, sizeof name, "p%d", (int)id);
    if (!c->prepared[id] && (rc = prepare(c, id, "prepare")) != 0)
        return rc;
    PGresult *res = PQexecPrepared(c->conn, name, vals->n, v, len, fmt, 1);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = pg_error(c, res, stmts[id].sql);
        PQclear(res);
        return rc;
    }
    *out = res;
    return 0;
}

/*
 * The runner behind the shapes (parley_query_fn, columns.h): run statement
 * id and read the rows q asks for.
 */
static int query(parley_db_t *db, int id, const parley_vals_t *vals, parley_query_t *q)
{
    PGresult *r;
    int rc = exec_vals(db, (enum stmt_id)id, vals, &r);
    if (rc)
        return rc;
    q->changes = atoll(PQcmdTuples(r));
    for (int i = 0; q->cols && i < PQntuples(r) && (q->cb || q->n < q->max); i++) {
        char *row = q->out + (q->cb ? 0 : (size_t)q->n * q->stride);
        result_row_t at = {r, i};
        rc = parley_cols_read(q->cols, row, q->borrow, cell, &at);
        if (rc)
            break;
        q->n++;
        if (q->cb && parley_row_call(q->cols, *q->cb, q->arg, row))
            break;
    }
    PQclear(r);
    return rc;
}

#define run_count(db, id, n, ...) parley_sql_exec(query, db, id, n, __VA_ARGS__)
#define column(db, id, kind, out, stride, max, n, ...)                                             \
    parley_sql_column(query, db, id, kind, out, stride, max, n, __VA_ARGS__)
#define ints(db, id, vals, n, ...) parley_sql_ints(query, db, id, vals, n, __VA_ARGS__)

/* Run a plain command (transaction control) and check its tag. */
static int command(pg_db_t *c, const char *sql, const char *tag)
{
    PGresult *res = PQexec(c->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_error(c, res, sql);
    else if (tag && strcmp(PQcmdStatus(res), tag) != 0)
        rc = PARLEY_ESTORE; /* e.g. COMMIT of a failed transaction answers ROLLBACK */
    PQclear(res);
    return rc;
}

/* ---- the store ------------------------------------------------------------- */

/*
 * Migrations. As on SQLite (store_sqlite.c): migrations[i] takes a database
 * from version i to version i + 1 (step 0 creates the first schema), and
 * meta.schema_version records the version reached. At open, in one
 * transaction holding the SCHEMA_LOCK_ID transaction advisory lock (two
 * nodes starting at once: the second waits, then finds the work done), the
 * recorded version is read, every step above it runs, and the new version
 * is written; PostgreSQL's DDL is transactional, so a crash or a failed
 * step leaves the old version or the new one, never a half-migrated
 * database. A database whose version is above this build's (written by a
 * newer parley) is refused and not touched. A new schema change is a new
 * step at the end; a step already released never changes.
 */
/* Blobs (core/blob.h): as on SQLite (store_sqlite.c's blobs_sql). */
static const char blobs_sql[] =
    "CREATE TABLE IF NOT EXISTS blob_uploads ("
    "  upload bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  owner " KEY " NOT NULL,"
    "  touched_ms bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS blob_parts ("
    "  upload bigint NOT NULL,"
    "  n bigint NOT NULL,"
    "  data bytea NOT NULL,"
    "  PRIMARY KEY (upload, n));"
    "ALTER TABLE blob_parts ALTER COLUMN data SET STORAGE EXTERNAL;"
    "CREATE TABLE IF NOT EXISTS blobs ("
    "  owner " KEY " NOT NULL,"
    "  id " KEY " NOT NULL,"
    "  upload bigint NOT NULL UNIQUE,"
    "  size bigint NOT NULL,"
    "  content_type text NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  touched_ms bigint NOT NULL,"
    "  PRIMARY KEY (owner, id));"
    "CREATE INDEX IF NOT EXISTS blobs_touched ON blobs (touched_ms);"
    "CREATE TABLE IF NOT EXISTS blob_refs ("
    "  owner " KEY " NOT NULL,"
    "  blob_id " KEY " NOT NULL,"
    "  src " KEY " NOT NULL,"
    "  PRIMARY KEY (owner, blob_id, src));"
    "CREATE INDEX IF NOT EXISTS blob_refs_src ON blob_refs (owner, src);";

/* 2 -> 3: snapshot visits, one record per snapshot (core/snapshot.h). */
static const char visits_sql[] = "CREATE TABLE IF NOT EXISTS snapshot_visits ("
                                 "  snapshot_id " KEY " PRIMARY KEY,"
                                 "  view_count bigint NOT NULL,"
                                 "  last_viewed_ms bigint NOT NULL,"
                                 "  deleted boolean NOT NULL DEFAULT false);";

static const char *const migrations[] = {
    schema_sql,           /* 0 -> 1: the first schema */
    blobs_sql,            /* 1 -> 2: blobs, their parts, staged uploads and references */
    visits_sql,           /* 2 -> 3: snapshot visits */
    parley_pg_search_sql, /* 3 -> 4: search index, transfers */
};
#define SCHEMA_VERSION ((int64_t)(sizeof migrations / sizeof migrations[0]))

/* The version c's database records: 0 for a database without Parley's
 * meta table (a new one). */
static int read_version(pg_db_t *c, int64_t *out)
{
    *out = 0;
    PGresult *res = PQexec(c->conn, "SELECT to_regclass('meta') IS NOT NULL");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        rc = pg_error(c, res, "schema version");
    bool has_meta = rc == 0 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (rc || !has_meta)
        return rc;
    res = PQexec(c->conn, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_error(c, res, "schema version");
    else if (PQntuples(res) == 1)
        *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return rc;
}

static void log_newer(int64_t version)
{
    parley_log_error("store: the database's schema (version %lld) is newer than this build's "
                     "(%lld): it was written by a newer parley; run that version (or a later "
                     "one), or restore a backup made by this one",
                     (long long)version, (long long)SCHEMA_VERSION);
}

/* Bring the database to SCHEMA_VERSION (see Migrations above). */
static int init_schema(pg_db_t *c)
{
    char sql[200];
    int64_t version = 0;
    int rc = command(c, "BEGIN", NULL);
    if (rc)
        return rc;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)", (long long)SCHEMA_LOCK_ID);
    PGresult *res = PQexec(c->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_error(c, res, "schema lock");
    PQclear(res);
    if (rc == 0)
        rc = read_version(c, &version);
    if (rc == 0 && version > SCHEMA_VERSION) {
        log_newer(version);
        rc = PARLEY_ECONFLICT;
    }
    for (int64_t v = version; rc == 0 && v < SCHEMA_VERSION; v++) {
        rc = command(c, migrations[v], NULL);
        if (rc == 0 && version > 0) /* an existing store, not a new one */
            parley_log_info("store: schema migrated from version %lld to %lld", (long long)v,
                            (long long)v + 1);
    }
    if (rc == 0 && version < SCHEMA_VERSION) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO meta (key, value) VALUES ('schema_version', '%lld') "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (long long)SCHEMA_VERSION);
        rc = command(c, sql, NULL);
    }
    if (rc == 0)
        rc = command(c, "COMMIT", "COMMIT");
    if (rc) {
        if (rc != PARLEY_ECONFLICT)
            parley_log_error("store: creating or migrating the schema failed");
        PGresult *rb = PQexec(c->conn, "ROLLBACK");
        PQclear(rb);
    }
    return rc;
}

/* Prepare every statement on the writer, so that a statement the schema
 * cannot serve stops start-up instead of failing a request. */
static int prepare_all(pg_db_t *c)
{
    for (int id = 0; id < S_COUNT; id++) {
        int rc = prepare(c, (enum stmt_id)id, "prepare");
        if (rc)
            return rc;
    }
    return 0;
}

/* Warn when the server would not keep a committed transaction. */
static void check_durability(pg_db_t *c)
{
    PGresult *res = PQexec(c->conn, "SHOW fsync");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        strcmp(PQgetvalue(res, 0, 0), "on") != 0)
        parley_log_warn("store: the PostgreSQL server runs with fsync=off: a crash of its "
                        "machine can lose acknowledged writes");
    PQclear(res);
}

static int pg_open(const char *url, parley_store_t **out)
{
    int rc;
    pg_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    s->base.ops = &pg_ops;
    s->url = strdup(url);
    if (!s->url) {
        free(s);
        return PARLEY_ENOMEM;
    }
    rc = open_conn(s, true, &s->writer);
    if (rc)
        goto out_free;
    PGconn *conn = pg(s->writer)->conn;
    snprintf(s->desc, sizeof s->desc, "postgres %s on %s", PQdb(conn),
             PQhost(conn) ? PQhost(conn) : "localhost");
    check_durability(pg(s->writer));
    rc = init_schema(pg(s->writer));
    if (rc == 0)
        rc = prepare_all(pg(s->writer));
    if (rc)
        goto out_free;
    *out = &s->base;
    return 0;

out_free:
    parley_store_close(&s->base);
    return rc;
}

/* ---- cross-node wake-ups ------------------------------------------------
 * Each commit that changed streams sends one NOTIFY on WAKE_CHANNEL inside
 * its transaction (delivered only if it commits): the payload is the
 * stream ids, space-separated, or "all". It is a doorbell: a node's
 * listener hands the set to on_remote, and readers re-read by offset, so
 * a node's own notifications coming back only cost a read. A listener
 * that loses its connection reconnects with backoff and then wakes every
 * reader (`all`), since notifications sent meanwhile are lost. */

#define WAKE_CHANNEL     "parley_wake"
#define WAKE_PAYLOAD_MAX 7900 /* PostgreSQL refuses payloads of 8000 bytes or more */

static int pg_publish(parley_db_t *db, const parley_wakeset_t *wake)
{
    char payload[WAKE_PAYLOAD_MAX + 32];
    size_t len = 0;
    if (wake->all)
        len = (size_t)snprintf(payload, sizeof payload, "all");
    for (int i = 0; !wake->all && i < wake->n; i++) {
        len += (size_t)snprintf(payload + len, sizeof payload - len, "%s%lld", i ? " " : "",
                                (long long)wake->ids[i]);
        if (len > WAKE_PAYLOAD_MAX) {
            len = (size_t)snprintf(payload, sizeof payload, "all");
            break;
        }
    }
    pg_db_t *c = pg(db);
    const char *vals[] = {WAKE_CHANNEL, payload};
    PGresult *res = PQexecParams(c->conn, "SELECT pg_notify($1, $2)", 2, NULL, vals, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : pg_error(c, res, "publish");
    PQclear(res);
    return rc;
}

/* Maintenance runs on one node at a time: the one whose writer session
 * holds the MAINT_LOCK_ID advisory lock (session-level, so it stays taken
 * across commits, and is released when that node's session ends: another
 * node's next tick takes it over). A node that does not hold it tries
 * again at each tick. */
static int pg_maintainer(parley_db_t *db, bool *mine)
{
    pg_db_t *c = pg(db);
    *mine = false;
    if (c->maintainer) {
        *mine = true;
        return 0;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%lld)", (long long)MAINT_LOCK_ID);
    PGresult *res = PQexec(c->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_error(c, res, "maintenance lock");
    else if (PQgetvalue(res, 0, 0)[0] == 't') {
        c->maintainer = true;
        *mine = true;
        parley_log_info("store: this node runs maintenance (expiry, purges)");
    }
    PQclear(res);
    return rc;
}

/* Parse a payload into a set: ids, or `all` for "all" or anything odd. */
static void parse_wake(const char *payload, parley_wakeset_t *ws)
{
    parley_wakeset_init(ws);
    const char *p = payload;
    while (*p) {
        char *end;
        errno = 0;
        long long id = strtoll(p, &end, 10);
        if (end == p || errno) {
            ws->all = true;
            return;
        }
        parley_wakeset_add(ws, (int64_t)id);
        p = end;
        while (*p == ' ')
            p++;
    }
    if (ws->n == 0)
        ws->all = true;
}

/* Open a connection and LISTEN; NULL on failure. */
static PGconn *listen_connect(pg_store_t *s)
{
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "application_name",
                                       "dbname",
                                       NULL};
    const char *vals[] = {"5", "10", "5", "3", "parley-listen", s->url, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn)
        return NULL;
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, "LISTEN " WAKE_CHANNEL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (ok)
            return conn;
    }
    PQfinish(conn);
    return NULL;
}

static void *listener_main(void *arg)
{
    pg_store_t *s = arg;
    PGconn *conn = s->first; /* listening since start (NULL: it failed) */
    s->first = NULL;
    int backoff_ms = 100;
    bool lost = false; /* the connection was lost since the last wake-all */
    while (!atomic_load(&s->stopping)) {
        if (!conn) {
            conn = listen_connect(s);
            if (!conn) {
                if (!lost)
                    parley_log_error("store: cannot listen for other nodes' commits; retrying");
                lost = true;
                for (int t = 0; t < backoff_ms && !atomic_load(&s->stopping); t += 50)
                    poll(NULL, 0, 50);
                backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
                continue;
            }
            backoff_ms = 100;
            if (lost) {
                /* Notifications sent while we were away are gone: every
                 * parked reader re-checks. */
                parley_log_info("store: listening for other nodes' commits again");
                parley_wakeset_t all;
                parley_wakeset_init(&all);
                all.all = true;
                if (s->hooks.on_remote)
                    s->hooks.on_remote(s->hooks.arg, &all);
                lost = false;
            }
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        int pr = poll(&pfd, 1, 200); /* wakes up now and then to see stopping */
        if (pr < 0 && errno != EINTR)
            pr = 0;
        if (pr > 0 && !PQconsumeInput(conn)) {
            parley_log_error("store: lost the listening connection: %.*s",
                             MSG(PQerrorMessage(conn)));
            PQfinish(conn);
            conn = NULL;
            lost = true;
            continue;
        }
        PGnotify *n;
        while ((n = PQnotifies(conn)) != NULL) {
            parley_wakeset_t ws;
            parse_wake(n->extra, &ws);
            PQfreemem(n);
            if (s->hooks.on_remote)
                s->hooks.on_remote(s->hooks.arg, &ws);
        }
        if (PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = NULL;
            lost = true;
        }
    }
    if (conn)
        PQfinish(conn);
    return NULL;
}

static int pg_start(parley_store_t *store, const parley_store_hooks_t *hooks)
{
    pg_store_t *s = pg_store(store);
    s->hooks = *hooks;
    atomic_store(&s->stopping, false);
    s->first = listen_connect(s); /* listening before the first request */
    if (parley_thread_start(&s->listener, "parley-listen", listener_main, s) != 0)
        return PARLEY_ENOMEM;
    s->listening = true;
    return 0;
}

static void pg_stop(parley_store_t *store)
{
    pg_store_t *s = pg_store(store);
    if (!s->listening)
        return;
    atomic_store(&s->stopping, true);
    pthread_join(s->listener, NULL);
    s->listening = false;
}

static void pg_close(parley_store_t *store)
{
    pg_store_t *s = pg_store(store);
    parley_db_close(s->writer);
    free(s->url);
    free(s);
}

static void pg_describe(const parley_store_t *store, char *out, size_t cap)
{
    snprintf(out, cap, "%s", ((const pg_store_t *)store)->desc);
}

static parley_db_t *pg_writer(parley_store_t *store)
{
    return pg_store(store)->writer;
}

static int pg_reader(parley_store_t *store, parley_db_t **out)
{
    return open_conn(pg_store(store), false, out);
}

/* ---- transactions ------------------------------------------------------- */

static int pg_begin(parley_db_t *db)
{
    pg_db_t *c = pg(db);
    int rc = ensure_conn(c);
    if (rc)
        return rc;
    rc = command(c,
                 c->writer ? "BEGIN ISOLATION LEVEL READ COMMITTED"
                           : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                 NULL);
    if (rc == PARLEY_EUNAVAIL) {
        /* The server went away since the last call: one more try on a new
         * session before the request is refused. */
        rc = ensure_conn(c);
        if (rc == 0)
            rc = command(c,
                         c->writer ? "BEGIN ISOLATION LEVEL READ COMMITTED"
                                   : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                         NULL);
    }
    c->in_txn = rc == 0;
    return rc;
}

/* A batch's later requests wait at most BATCH_LOCK_WAIT_MS for a row lock
 * (lock_timeout, SET LOCAL: it ends with the transaction; 55P03 is
 * PARLEY_ERETRY). The first request of a transaction, and a request run
 * again alone, wait as long as it takes: a transaction holding one
 * request's rows is a short one, and the database's deadlock detection
 * settles what little is left. */
static int pg_batch_waits(parley_db_t *db)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SET LOCAL lock_timeout = %d", BATCH_LOCK_WAIT_MS);
    return command(pg(db), sql, "SET");
}

/* The writer's COMMIT round trip is observed as the WAL's sync time
 * (store/synctime.h): the server flushes its WAL inside it. */
static int pg_commit(parley_db_t *db)
{
    pg_db_t *c = pg(db);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = command(c, "COMMIT", "COMMIT");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c->in_txn = false;
    if (rc == 0 && c->writer) {
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        parley_synctime_observe(PARLEY_SYNC_WAL, us > 0 ? (uint64_t)us : 0);
    }
    return rc;
}

static int pg_rollback(parley_db_t *db)
{
    pg_db_t *c = pg(db);
    c->in_txn = false;
    if (PQstatus(c->conn) != CONNECTION_OK || PQtransactionStatus(c->conn) == PQTRANS_IDLE)
        return 0;
    return command(c, "ROLLBACK", NULL);
}

static int pg_savepoint(parley_db_t *db)
{
    return command(pg(db), "SAVEPOINT req", NULL);
}

/* Whether the batch's transaction is gone (the connection was lost). */
static bool txn_lost(pg_db_t *c)
{
    PGTransactionStatusType t = PQtransactionStatus(c->conn);
    return PQstatus(c->conn) != CONNECTION_OK || t == PQTRANS_IDLE || t == PQTRANS_UNKNOWN;
}

static int pg_release(parley_db_t *db)
{
    pg_db_t *c = pg(db);
    if (txn_lost(c))
        return PQstatus(c->conn) != CONNECTION_OK ? PARLEY_EUNAVAIL : PARLEY_ESTORE;
    int rc = command(c, "RELEASE req", NULL);
    return rc && txn_lost(c) && rc != PARLEY_EUNAVAIL ? PARLEY_ESTORE : rc;
}

static int pg_rollback_to(parley_db_t *db)
{
    pg_db_t *c = pg(db);
    if (txn_lost(c))
        return PQstatus(c->conn) != CONNECTION_OK ? PARLEY_EUNAVAIL : PARLEY_ESTORE;
    int rc = command(c, "ROLLBACK TO req", NULL);
    if (rc == 0)
        rc = command(c, "RELEASE req", NULL);
    if (rc && rc != PARLEY_EUNAVAIL)
        rc = PARLEY_ESTORE;
    return rc;
}

/* ---- the ops of this backend (the others are store/sqlops.c's) ---------- */

/*
 * The chunks past from, in pages: libpq holds a whole result in memory, so
 * one query for "everything past from" would fetch a long stream's rest
 * for every window a reader takes. The first page is small (a live reader
 * wants the newest chunk or two), later ones grow to CHUNK_PAGE_MAX rows.
 */
#define CHUNK_PAGE_FIRST 4
#define CHUNK_PAGE_MAX   256

static int pg_chunk_scan(parley_db_t *db, int64_t stream_id, uint64_t from, parley_chunk_cb cb,
                         void *arg)
{
    int limit = CHUNK_PAGE_FIRST;
    for (;;) {
        parley_vals_t vals = {3,
                              {{PARLEY_VAL_INT, NULL, 0, stream_id},
                               {PARLEY_VAL_INT, NULL, 0, (int64_t)from},
                               {PARLEY_VAL_INT, NULL, 0, limit}}};
        PGresult *r;
        int rc = exec_vals(db, S_CHUNK_SCAN, &vals, &r);
        if (rc)
            return rc;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            from = (uint64_t)g_int(r, i, 1);
            if (cb(arg, (uint64_t)g_int(r, i, 0), from, (uint64_t)g_int(r, i, 2),
                   PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3))) {
                PQclear(r);
                return 0;
            }
        }
        PQclear(r);
        if (n < limit)
            return 0;
        if (limit < CHUNK_PAGE_MAX)
            limit *= 2;
    }
}

/* ---- server keys ----------------------------------------------------------- */

static int pg_stat(parley_db_t *db, parley_store_stat_t *out)
{
    out->db_bytes = out->wal_bytes = out->subs_webhook = out->subs_pull_wake = -1;
    int rc = ints(db, S_STAT_DB, &out->db_bytes, 1, "");
    if (rc == 0)
        rc = parley_sqlop_stat_subs(db, out);
    return rc;
}

static int pg_key_put(parley_db_t *db, const char *name, const unsigned char *data, size_t len,
                      int64_t created_ms)
{
    int64_t changed = 0;
    int rc = run_count(db, S_KEY_PUT, &changed, "tbi", name, data, len, created_ms);
    if (rc == 0 && changed != 1)
        rc = PARLEY_EEXIST; /* the name is taken; the first secret stays */
    return rc;
}

/* ---- atomic ops --------------------------------------------------------------
 *
 * Each decides and writes in one statement on the row it locks, so a
 * counter, a tail, a generation or a message count is never computed from a
 * value read earlier, and two nodes cannot both act on one old value. A
 * refusal (no row matched) is told apart by reading the row: missing is
 * PARLEY_ENOTFOUND, moved is PARLEY_ECONFLICT. chg, activity and ord come from the counters table
 * through parley_next(), in the request's transaction, so a request rolled back to its savepoint
 * gives its number back, as on SQLite. */

static int pg_stream_create(parley_db_t *db, parley_stream_t *s)
{
    int64_t id = 0;
    int rc = ints(db, S_A_STREAM_CREATE, &id, 1, "R", &parley_stream_cols, s);
    if (rc == PARLEY_ENOTFOUND)
        return PARLEY_EEXIST; /* the path is taken */
    if (rc == 0)
        s->id = id;
    return rc;
}

/* Insert-if-absent: PARLEY_EEXIST while a live record (created at or after
 * expired_before_ms) holds the key, on this node or another. */
static int pg_idem_put(parley_db_t *db, const char *owner, const char *key, const char *fp,
                       int64_t now_ms, int64_t expired_before_ms, const char *blob, size_t len)
{
    int64_t one;
    int rc = ints(db, S_A_IDEM_PUT, &one, 1, "tttibi", owner, key, fp, now_ms, blob, len,
                  expired_before_ms);
    return rc == PARLEY_ENOTFOUND ? PARLEY_EEXIST : rc;
}

/* An Idempotency-Key in flight on this node is held, until the writer's
 * transaction ends, as a transaction-level advisory lock named by a 64-bit
 * FNV-1a hash of owner "\0" key with the top bit set (negative, so never
 * SCHEMA_LOCK_ID or MAINT_LOCK_ID). Another node's writer with the same
 * key fails to take it and answers 409 at once instead of waiting for the
 * first request's row locks; once the first commits, its record is there
 * to replay. Two keys with the same hash (about 2^-63) only cost a
 * needless 409 while both are in flight. A lock taken inside a request's
 * savepoint goes with its rollback; the request is over then anyway. */
static int pg_idem_hold(parley_db_t *db, const char *owner, const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = owner;; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        if (!*s)
            break;
    }
    for (const char *s = key; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    int64_t got = 0;
    int rc = ints(db, S_IDEM_HOLD, &got, 1, "i", (int64_t)(h | (1ULL << 63)));
    if (rc)
        return rc;
    return got == 1 ? 0 : PARLEY_ECONFLICT;
}

/* Write a document if its version is still expect_version (0: it must not
 * exist); d->chg gets the new change number. PARLEY_ECONFLICT when it
 * moved. */
static int pg_doc_write(parley_db_t *db, parley_doc_t *d, int64_t expect_version)
{
    int64_t chg = 0;
    int rc = expect_version > 0
                 ? ints(db, S_A_DOC_UPDATE, &chg, 1, "Ri", &parley_doc_cols, d, expect_version)
                 : ints(db, S_A_DOC_INSERT, &chg, 1, "R", &parley_doc_cols, d);
    if (rc == PARLEY_ENOTFOUND)
        return PARLEY_ECONFLICT;
    if (rc == 0)
        d->chg = chg;
    return rc;
}

/*
 * Insert row (cols' map) but its last column, which the statement assigns
 * (parley_next) and returns into that field. PARLEY_EEXIST: the id is
 * taken.
 */
static int insert_counted(parley_db_t *db, enum stmt_id id, const parley_cols_t *cols, void *row)
{
    int64_t v = 0;
    int rc = ints(db, id, &v, 1, "R", cols, row);
    if (rc == PARLEY_ENOTFOUND)
        return PARLEY_EEXIST;
    if (rc == 0)
        memcpy((char *)row + cols->col[cols->n - 1].off, &v, sizeof v);
    return rc;
}

static int pg_conv_insert(parley_db_t *db, parley_conv_t *c)
{
    return insert_counted(db, S_A_CONV_INSERT, &parley_conv_cols, c);
}

/* Why a conditional update of a conversation matched nothing: missing,
 * or moved or tombstoned (PARLEY_ECONFLICT). */
static int conv_missed(parley_db_t *db, const char *id)
{
    parley_conv_t cur = {0};
    int rc = parley_sqlop_conv_get(db, id, &cur);
    parley_conv_clear(&cur);
    return rc ? rc : PARLEY_ECONFLICT;
}

/* Title and metadata, if the version is still expect_version; version + 1
 * written back into c. */
static int pg_conv_update(parley_db_t *db, parley_conv_t *c, int64_t expect_version)
{
    int64_t version = 0;
    int rc = ints(db, S_A_CONV_UPDATE, &version, 1, "tttii", c->id, c->title,
                  c->metadata ? c->metadata : "{}", c->updated_ms, expect_version);
    if (rc == PARLEY_ENOTFOUND)
        return conv_missed(db, c->id);
    if (rc == 0)
        c->version = version;
    return rc;
}

/* A new message: count + 1 (its seq), version + 1, a new activity. */
/* conv_bump (stmt S_A_CONV_BUMP) or conv_touch (S_A_CONV_TOUCH). */
static int conv_bump_by(parley_db_t *db, int stmt, const char *id, int64_t now_ms, int64_t *seq,
                        int64_t *version, int64_t *activity)
{
    int64_t v[3] = {0, 0, 0};
    int rc = ints(db, stmt, v, 3, "ti", id, now_ms);
    if (rc == PARLEY_ENOTFOUND)
        return conv_missed(db, id);
    if (rc == 0) {
        *seq = v[0];
        *version = v[1];
        *activity = v[2];
    }
    return rc;
}

static int pg_conv_bump(parley_db_t *db, const char *id, int64_t now_ms, int64_t *seq,
                        int64_t *version, int64_t *activity)
{
    return conv_bump_by(db, S_A_CONV_BUMP, id, now_ms, seq, version, activity);
}

static int pg_conv_touch(parley_db_t *db, const char *id, int64_t now_ms, int64_t *count,
                         int64_t *version, int64_t *activity)
{
    return conv_bump_by(db, S_A_CONV_TOUCH, id, now_ms, count, version, activity);
}

static int pg_sess_insert(parley_db_t *db, parley_sess_t *s)
{
    return insert_counted(db, S_A_SESS_INSERT, &parley_sess_cols, s);
}

/* Every mutable column, if status and attempt are still the expected ones
 * (a worker whose lease was taken over is fenced out). */
static int pg_sess_update(parley_db_t *db, const parley_sess_t *s, const char *expect_status,
                          int64_t expect_attempt)
{
    int64_t ord;
    int rc = ints(db, S_A_SESS_UPDATE, &ord, 1, "totiintttiti", s->id, s->result_id, s->status,
                  s->attempt, s->lease_ms, s->lease_expires_ms, s->error, s->request, s->input,
                  s->updated_ms, expect_status, expect_attempt);
    if (rc == PARLEY_ENOTFOUND) { /* moved, or missing */
        parley_sess_t cur = {0};
        rc = parley_sqlop_sess_get(db, s->id, &cur);
        parley_sess_clear(&cur);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    return rc;
}

/* Claim the oldest pending session (of one conversation when conv_id is
 * not NULL) that no other transaction holds: processing, attempt + 1, a
 * lease of lease_ms; *out is the claimed row. PARLEY_ENOTFOUND: none. */
static int pg_sess_claim_next(parley_db_t *db, const char *conv_id, int64_t now_ms,
                              int64_t lease_ms, parley_sess_t *out)
{
    char id[PARLEY_ROW_ID_MAX + 1];
    int n;
    int rc = conv_id ? column(db, S_A_SESS_CLAIM_CONV, PARLEY_COL_TEXT, id, sizeof id, 1, &n, "iit",
                              now_ms, lease_ms, conv_id)
                     : column(db, S_A_SESS_CLAIM, PARLEY_COL_TEXT, id, sizeof id, 1, &n, "ii",
                              now_ms, lease_ms);
    if (rc == 0 && n == 0)
        rc = PARLEY_ENOTFOUND;
    return rc ? rc : parley_sqlop_sess_get(db, id, out);
}

static int pg_snap_insert(parley_db_t *db, parley_snap_t *s)
{
    return insert_counted(db, S_A_SNAP_INSERT, &parley_snap_cols, s);
}

/* Why a fenced update of a subscription matched nothing: missing, or
 * fenced (PARLEY_ECONFLICT). */
static int sub_missed(parley_db_t *db, const char *id)
{
    parley_sub_t *cur = malloc(sizeof *cur);
    if (!cur)
        return PARLEY_ENOMEM;
    int rc = parley_sqlop_sub_get(db, id, cur);
    free(cur);
    return rc ? rc : PARLEY_ECONFLICT;
}

/* Start a wake on an idle subscription: generation + 1 into *generation.
 * PARLEY_ECONFLICT when a wake is already in flight. */
static int pg_sub_begin_wake(parley_db_t *db, const char *id, const char *wake_id,
                             int64_t lease_exp_ms, int64_t due_ms, int64_t *generation)
{
    int rc = ints(db, S_A_SUB_BEGIN_WAKE, generation, 1, "ttii", id, wake_id,
                  lease_exp_ms < 0 ? -1 : lease_exp_ms, due_ms < 0 ? -1 : due_ms);
    return rc == PARLEY_ENOTFOUND ? sub_missed(db, id) : rc;
}

/* The delivery state, if the generation and the wake in flight are still
 * the expected ones; PARLEY_ECONFLICT: fenced. */
static int pg_sub_update(parley_db_t *db, const parley_sub_t *s, int64_t expect_generation,
                         const char *expect_wake_id)
{
    int64_t g;
    int rc = ints(db, S_A_SUB_UPDATE, &g, 1, "toonniit", s->id, s->wake_id, s->holder,
                  s->lease_expires_ms, s->delivery_due_ms, s->attempts, expect_generation,
                  expect_wake_id ? expect_wake_id : "");
    return rc == PARLEY_ENOTFOUND ? sub_missed(db, s->id) : rc;
}

/* The PostgreSQL backend (store.h). */
/* ---- operations: verify ------------------------------------------------------
 * `parley verify --store postgres://...` reads the database through these,
 * beside running nodes: a reader connection (read-only session), no schema
 * change, no lock. There is no copy_to: a PostgreSQL store is backed up
 * with PostgreSQL's own tools. */

/* A reader connection to url's database, refused when its schema is newer
 * than this build's (PARLEY_ECONFLICT) or when it holds no Parley schema
 * (PARLEY_ENOTFOUND). */
static int pg_inspect(const char *url, parley_db_t **out)
{
    pg_store_t tmp = {.base.ops = &pg_ops, .url = (char *)url};
    parley_db_t *db = NULL;
    int rc = open_conn(&tmp, false, &db);
    if (rc)
        return rc;
    pg(db)->store = NULL; /* tmp ends here; nothing of the store is needed */
    int64_t version = 0;
    rc = read_version(pg(db), &version);
    if (rc == 0 && version == 0)
        rc = PARLEY_ENOTFOUND;
    if (rc == 0 && version > SCHEMA_VERSION) {
        log_newer(version);
        rc = PARLEY_ECONFLICT;
    }
    if (rc) {
        parley_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

/* A read-write session beside running nodes (autocommit, synchronous
 * commit), no schema change: for `parley keys rotate`. */
static int pg_admin(const char *url, parley_db_t **out)
{
    pg_store_t tmp = {.base.ops = &pg_ops, .url = (char *)url};
    parley_db_t *db = NULL;
    int rc = open_conn(&tmp, true, &db);
    if (rc)
        return rc;
    pg(db)->store = NULL; /* tmp ends here; nothing of the store is needed */
    int64_t version = 0;
    rc = read_version(pg(db), &version);
    if (rc == 0 && version == 0)
        rc = PARLEY_ENOTFOUND;
    if (rc == 0 && version != SCHEMA_VERSION) {
        if (version > SCHEMA_VERSION)
            log_newer(version);
        rc = PARLEY_ECONFLICT;
    }
    if (rc) {
        parley_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

/*
 * PostgreSQL keeps its own pages consistent (checksummed when the cluster
 * was initialised with them; a damaged page is an error on the read that
 * meets it, which the scans then report). When the amcheck extension is
 * installed in the database (CREATE EXTENSION amcheck, by a superuser),
 * every B-tree index of the store's tables is checked against its own
 * invariants with bt_index_check (an AccessShareLock: it runs beside the
 * nodes); without it there is nothing more to run here.
 */
static int pg_integrity(parley_db_t *db, void (*cb)(void *arg, const char *problem), void *arg)
{
    pg_db_t *c = pg(db);
    int rc = ensure_conn(c);
    if (rc)
        return rc;
    PGresult *res = PQexec(c->conn, "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = pg_error(c, res, "integrity");
        PQclear(res);
        return rc;
    }
    bool amcheck = atoi(PQgetvalue(res, 0, 0)) > 0;
    PQclear(res);
    if (!amcheck)
        return 0;
    res = PQexec(c->conn, "SELECT i.indexrelid::regclass::text FROM pg_index i "
                          "JOIN pg_class t ON t.oid = i.indrelid "
                          "JOIN pg_class x ON x.oid = i.indexrelid "
                          "JOIN pg_am a ON a.oid = x.relam "
                          "WHERE a.amname = 'btree' AND t.relnamespace = (SELECT relnamespace "
                          "FROM pg_class WHERE oid = to_regclass('meta')) ORDER BY 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = pg_error(c, res, "integrity");
        PQclear(res);
        return rc;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *index = PQgetvalue(res, i, 0);
        const char *vals[] = {index};
        PGresult *chk = PQexecParams(c->conn, "SELECT bt_index_check($1::regclass)", 1, NULL, vals,
                                     NULL, NULL, 0);
        if (PQresultStatus(chk) != PGRES_TUPLES_OK) {
            char line[512];
            const char *m = PQresultErrorField(chk, PG_DIAG_MESSAGE_PRIMARY);
            snprintf(line, sizeof line, "index %s: %s", index, m ? m : "check failed");
            cb(arg, line);
        }
        PQclear(chk);
    }
    PQclear(res);
    return 0;
}

#define SCAN_COLS_MAX 24 /* columns a table_scan may ask for */
#define OID_BOOL      16
#define OID_BYTEA     17
#define OID_INT8      20
#define OID_INT4      23
#define OID_TEXT      25
#define OID_VARCHAR   1043

/* One row of a binary result as table_scan hands it on: integers and
 * booleans written out as text into num, text and bytea as they are. */
static void scan_row(const PGresult *r, int n, const char **vals, size_t *lens, char (*num)[24])
{
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(r, 0, i)) {
            vals[i] = NULL;
            lens[i] = 0;
            continue;
        }
        const char *p = PQgetvalue(r, 0, i);
        int len = PQgetlength(r, 0, i);
        Oid type = PQftype(r, i);
        if (type == OID_BOOL) {
            lens[i] = (size_t)snprintf(num[i], sizeof num[i], "%d", len == 1 && p[0] != 0);
            vals[i] = num[i];
        } else if (type == OID_INT8 || type == OID_INT4) {
            long long v = g_int(r, 0, i);
            lens[i] = (size_t)snprintf(num[i], sizeof num[i], "%lld", v);
            vals[i] = num[i];
        } else {
            vals[i] = p; /* text, bytea: their bytes */
            lens[i] = (size_t)len;
        }
    }
}

/* "SELECT cols FROM table ORDER BY order" in single-row mode: one row in
 * memory at a time, however big the table. */
static int pg_table_scan(parley_db_t *db, const char *table, const char *cols, const char *order,
                         int (*cb)(void *arg, int n, const char *const *vals, const size_t *lens),
                         void *arg)
{
    pg_db_t *c = pg(db);
    int rc = 0, err = 0;
    if (!c->in_txn && (rc = ensure_conn(c)) != 0)
        return rc;
    size_t cap = strlen(cols) + strlen(table) + strlen(order) + 32;
    char *sql = malloc(cap);
    if (!sql)
        return PARLEY_ENOMEM;
    snprintf(sql, cap, "SELECT %s FROM %s ORDER BY %s", cols, table, order);
    int sent = PQsendQueryParams(c->conn, sql, 0, NULL, NULL, NULL, NULL, 1);
    free(sql);
    if (!sent || !PQsetSingleRowMode(c->conn)) {
        rc = pg_error(c, NULL, table);
        for (PGresult *r; (r = PQgetResult(c->conn)) != NULL;)
            PQclear(r);
        return rc;
    }
    const char *vals[SCAN_COLS_MAX];
    size_t lens[SCAN_COLS_MAX];
    char num[SCAN_COLS_MAX][24];
    for (PGresult *r; (r = PQgetResult(c->conn)) != NULL; PQclear(r)) {
        ExecStatusType st = PQresultStatus(r);
        if (rc || err)
            continue; /* drain the rest */
        if (st == PGRES_TUPLES_OK)
            continue; /* the end of the rows */
        if (st != PGRES_SINGLE_TUPLE) {
            rc = pg_error(c, r, table);
            continue;
        }
        int n = PQnfields(r);
        if (n > SCAN_COLS_MAX) {
            rc = PARLEY_EINVAL;
            continue;
        }
        for (int i = 0; i < n && !rc; i++) {
            Oid type = PQftype(r, i);
            if (type != OID_BOOL && type != OID_BYTEA && type != OID_INT8 && type != OID_INT4 &&
                type != OID_TEXT && type != OID_VARCHAR)
                rc = PARLEY_EINVAL; /* a type this scan does not write out */
        }
        if (rc == 0) {
            scan_row(r, n, vals, lens, num);
            err = cb(arg, n, vals, lens);
        }
    }
    return err ? err : rc;
}

/* One import statement (store/transfer.c), unprepared: text parameters
 * (the server infers their types from the statement), bytea in binary. */
static int pg_row_exec(parley_db_t *db, const char *sql, const parley_vals_t *vals,
                       int64_t *changes)
{
    pg_db_t *c = pg(db);
    const char *v[PARLEY_VALS_MAX];
    int len[PARLEY_VALS_MAX], fmt[PARLEY_VALS_MAX];
    char num[PARLEY_VALS_MAX][24];
    int rc = 0;
    if (!c->in_txn && (rc = ensure_conn(c)) != 0)
        return rc;
    for (int i = 0; i < vals->n; i++) {
        const parley_val_t *x = &vals->v[i];
        v[i] = x->kind == PARLEY_VAL_NULL ? NULL : x->p;
        len[i] = x->kind == PARLEY_VAL_BLOB ? (int)x->len : 0;
        fmt[i] = x->kind == PARLEY_VAL_BLOB;
        if (x->kind == PARLEY_VAL_INT) {
            snprintf(num[i], sizeof num[i], "%lld", (long long)x->i);
            v[i] = num[i];
        } else if (x->kind == PARLEY_VAL_BOOL) {
            v[i] = x->i ? "t" : "f";
        } else if (x->kind == PARLEY_VAL_BLOB && !v[i]) {
            v[i] = "";
        }
    }
    PGresult *res = PQexecParams(c->conn, sql, vals->n, NULL, v, len, fmt, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = pg_error(c, res, sql);
    else if (changes)
        *changes = atoll(PQcmdTuples(res));
    PQclear(res);
    return rc;
}

static int pg_schema_version(parley_db_t *db, int64_t *version, int64_t *mine)
{
    *mine = SCHEMA_VERSION;
    return read_version(pg(db), version);
}

static const parley_store_ops_t pg_ops = {
    .scheme = "postgres",
    .shared = true,
    .open = pg_open,
    .close = pg_close,
    .describe = pg_describe,
    .start = pg_start,
    .stop = pg_stop,
    .writer = pg_writer,
    .reader = pg_reader,
    .db_close = pg_db_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .publish = pg_publish,
    .maintainer = pg_maintainer,
    .batch_waits = pg_batch_waits,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .release = pg_release,
    .rollback_to = pg_rollback_to,
    .stream_get = parley_sqlop_stream_get,
    .stream_get_id = parley_sqlop_stream_get_id,
    .stream_create = pg_stream_create,
    .stream_append = parley_sqlop_stream_append,
    .stream_close = parley_sqlop_stream_close,
    .stream_touch = parley_sqlop_stream_touch,
    .stream_ref = parley_sqlop_stream_ref,
    .stream_mark_deleted = parley_sqlop_stream_mark_deleted,
    .stream_remove = parley_sqlop_stream_remove,
    .stream_expired = parley_sqlop_stream_expired,
    .stream_scan = parley_sqlop_stream_scan,
    .chunk_scan = pg_chunk_scan,
    .chunk_trim = parley_sqlop_chunk_trim,
    .producer_get = parley_sqlop_producer_get,
    .producer_put = parley_sqlop_producer_put,
    .idem_get = parley_sqlop_idem_get,
    .idem_put = pg_idem_put,
    .idem_purge = parley_sqlop_idem_purge,
    .idem_hold = pg_idem_hold,
    .doc_get = parley_sqlop_doc_get,
    .doc_write = pg_doc_write,
    .doc_list = parley_sqlop_doc_list,
    .conv_get = parley_sqlop_conv_get,
    .conv_insert = pg_conv_insert,
    .conv_update = pg_conv_update,
    .conv_bump = pg_conv_bump,
    .conv_touch = pg_conv_touch,
    .conv_tombstone = parley_sqlop_conv_tombstone,
    .conv_list = parley_sqlop_conv_list,
    .sess_get = parley_sqlop_sess_get,
    .sess_insert = pg_sess_insert,
    .sess_update = pg_sess_update,
    .sess_claim_next = pg_sess_claim_next,
    .sess_remove = parley_sqlop_sess_remove,
    .sess_list = parley_sqlop_sess_list,
    .sess_expired = parley_sqlop_sess_expired,
    .snap_get = parley_sqlop_snap_get,
    .snap_insert = pg_snap_insert,
    .snap_expire = parley_sqlop_snap_expire,
    .snap_remove = parley_sqlop_snap_remove,
    .snap_list = parley_sqlop_snap_list,
    .visit_add = parley_sqlop_visit_add,
    .visit_get = parley_sqlop_visit_get,
    .visit_delete = parley_sqlop_visit_delete,
    .snap_expired = parley_sqlop_snap_expired,
    .sub_get = parley_sqlop_sub_get,
    .sub_put_config = parley_sqlop_sub_put_config,
    .sub_begin_wake = pg_sub_begin_wake,
    .sub_update = pg_sub_update,
    .sub_remove = parley_sqlop_sub_remove,
    .sub_with_pattern = parley_sqlop_sub_with_pattern,
    .sub_leases_expired = parley_sqlop_sub_leases_expired,
    .sub_deliveries_due = parley_sqlop_sub_deliveries_due,
    .sub_next_delivery = parley_sqlop_sub_next_delivery,
    .sublink_get = parley_sqlop_sublink_get,
    .sublink_put = parley_sqlop_sublink_put,
    .sublink_advance = parley_sqlop_sublink_advance,
    .sublink_remove = parley_sqlop_sublink_remove,
    .sublink_list = parley_sqlop_sublink_list,
    .sublink_snapshot = parley_sqlop_sublink_snapshot,
    .sublink_ack_snapshot = parley_sqlop_sublink_ack_snapshot,
    .sublink_first_pending = parley_sqlop_sublink_first_pending,
    .key_get = parley_sqlop_key_get,
    .key_put = pg_key_put,
    .blob_stage = parley_sqlop_blob_stage,
    .blob_part_put = parley_sqlop_blob_part_put,
    .blob_unstage = parley_sqlop_blob_unstage,
    .blob_get = parley_sqlop_blob_get,
    .blob_insert = parley_sqlop_blob_insert,
    .blob_part_get = parley_sqlop_blob_part_get,
    .blob_usage = parley_sqlop_blob_usage,
    .blob_ref_add = parley_sqlop_blob_ref_add,
    .blob_ref_drop = parley_sqlop_blob_ref_drop,
    .blob_ref_copy = parley_sqlop_blob_ref_copy,
    .blob_ref_has = parley_sqlop_blob_ref_has,
    .blob_unreferenced = parley_sqlop_blob_unreferenced,
    .blob_remove = parley_sqlop_blob_remove,
    .blob_stale_uploads = parley_sqlop_blob_stale_uploads,
    .blob_list = parley_sqlop_blob_list,
    .inspect = pg_inspect,
    .admin = pg_admin,
    .integrity = pg_integrity,
    .table_scan = pg_table_scan,
    .row_exec = pg_row_exec,
    .schema_version = pg_schema_version,
    .stat = pg_stat,
    .search_put = parley_pg_search_put,
    .search_query = parley_pg_search_query,
    .user_move = parley_pg_user_move,
    .transfer_get = parley_pg_transfer_get,
    .transfer_put = parley_pg_transfer_put,
};

const parley_store_ops_t *parley_store_pg_ops(void)
{
    return &pg_ops;
}
