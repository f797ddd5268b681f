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
 * Schema. Created at open inside one transaction holding a transaction
 * advisory lock (two nodes starting at once do not race), versioned in
 * meta.schema_version; a database with a newer version is refused. Chunk
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

#include "parley/parley.h"
#include "store/postgres/store_pg.h"
#include "store/store.h"
#include "util/log.h"

#define SCHEMA_VERSION 1
#define SCHEMA_LOCK_ID 0x7061726c6579 /* advisory lock key held while creating the schema */
#define MAINT_LOCK_ID                                                                              \
    0x7061726c6d74    /* held by the writer session of the node that runs maintenance */
#define MAX_PARAMS 20 /* parameters of the widest statement */
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
    S_STREAM_GET,
    S_STREAM_GET_ID,
    S_STREAM_DEL,
    S_STREAM_DEL_CHUNKS,
    S_STREAM_DEL_PRODUCERS,
    S_STREAM_EXPIRED,
    S_STREAM_SCAN,
    S_CHUNK_INSERT,
    S_CHUNK_SCAN,
    S_PRODUCER_GET,
    S_PRODUCER_PUT,
    S_IDEM_GET,
    S_IDEM_PURGE,
    S_IDEM_HOLD,
    S_DOC_GET,
    S_DOC_LIST,
    S_CONV_GET,
    S_CONV_LIST,
    S_SESS_GET,
    S_SESS_DEL,
    S_SESS_LIST,
    S_SESS_LIST_STATUS,
    S_SESS_EXPIRED,
    S_SNAP_GET,
    S_SNAP_DEL,
    S_SNAP_LIST,
    S_SNAP_EXPIRED,
    S_SUB_GET,
    S_SUB_DEL,
    S_SUB_DEL_LINKS,
    S_SUB_PATTERNS,
    S_SUB_LEASES,
    S_SUB_DUE,
    S_SUB_NEXT_DUE,
    S_LINK_GET,
    S_LINK_PUT,
    S_LINK_DEL,
    S_LINK_LIST_SUB,
    S_LINK_LIST_PATH,
    S_LINK_SNAPSHOT,
    S_LINK_ACK_SNAPSHOT,
    S_LINK_PENDING,
    S_KEY_GET,
    S_KEY_PUT,
    /* the atomic ops: see "atomic ops" below */
    S_A_STREAM_CREATE,
    S_A_STREAM_APPEND,
    S_A_STREAM_CLOSE,
    S_A_STREAM_TOUCH,
    S_A_STREAM_REF,
    S_A_STREAM_MARK_DELETED,
    S_A_IDEM_PUT,
    S_A_DOC_INSERT,
    S_A_DOC_UPDATE,
    S_A_CONV_INSERT,
    S_A_CONV_UPDATE,
    S_A_CONV_BUMP,
    S_A_CONV_TOMBSTONE,
    S_A_SESS_INSERT,
    S_A_SESS_UPDATE,
    S_A_SESS_CLAIM,
    S_A_SESS_CLAIM_CONV,
    S_A_SNAP_INSERT,
    S_A_SNAP_EXPIRE,
    S_A_SUB_PUT_CONFIG,
    S_A_SUB_BEGIN_WAKE,
    S_A_SUB_UPDATE,
    S_A_LINK_ADVANCE,
    S_COUNT
};

#define STREAM_COLS                                                                                \
    "id, path, owner, content_type, created_ms, touched_ms, ttl_s, expires_ms, tail, closed, "     \
    "closer, closer_epoch, closer_seq, stream_seq, fork_src, fork_pos, refs, deleted"
#define CONV_COLS                                                                                  \
    "id, owner, title, metadata, version, created_ms, updated_ms, message_count, "                 \
    "last_message_ms, activity, deleted"
#define SESS_COLS                                                                                  \
    "id, conversation_id, owner, message_id, result_id, status, attempt, max_attempts, "           \
    "lease_ms, lease_expires_ms, error, request, input, created_ms, updated_ms, ord"
#define SNAP_COLS                                                                                  \
    "id, owner, source, kind, title, public, created_ms, expires_ms, stream, payload, ord"
#define SUB_COLS                                                                                   \
    "id, type, pattern, webhook_url, wake_stream, description, lease_ttl_ms, config_hash, "        \
    "root_url, created_ms, generation, wake_id, holder, lease_expires_ms, delivery_due_ms, "       \
    "attempts"
#define LINK_COLS "sub_id, path, by_glob, by_explicit, acked, wake_tail"

/* One statement: its SQL and how the writer's copy locks. */
typedef struct stmt_def {
    const char *sql;     /* the statement ($n parameters) */
    enum lock_mode lock; /* on the writer connection */
} stmt_def_t;

static const stmt_def_t stmts[S_COUNT] = {
    [S_STREAM_GET] = {"SELECT " STREAM_COLS " FROM streams WHERE path = $1", L_UPDATE},
    [S_STREAM_GET_ID] = {"SELECT " STREAM_COLS " FROM streams WHERE id = $1", L_UPDATE},
    [S_STREAM_DEL] = {"DELETE FROM streams WHERE id = $1"},
    [S_STREAM_DEL_CHUNKS] = {"DELETE FROM chunks WHERE stream_id = $1"},
    [S_STREAM_DEL_PRODUCERS] = {"DELETE FROM producers WHERE stream_id = $1"},
    [S_STREAM_EXPIRED] = {"SELECT id FROM streams WHERE NOT deleted AND "
                          "((expires_ms IS NOT NULL AND expires_ms <= $1) OR "
                          "(ttl_s IS NOT NULL AND touched_ms + ttl_s * 1000 <= $1)) LIMIT $2",
                          L_SKIP_LOCKED},
    [S_STREAM_SCAN] = {"SELECT " STREAM_COLS " FROM streams WHERE path >= $1 AND NOT deleted "
                       "ORDER BY path"},
    [S_CHUNK_INSERT] = {"INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) "
                        "VALUES ($1, $2, $3, $4, $5)"},
    [S_CHUNK_SCAN] = {"SELECT start_pos, end_pos, unit_end, data FROM chunks "
                      "WHERE stream_id = $1 AND end_pos > $2 ORDER BY end_pos LIMIT $3"},
    [S_PRODUCER_GET] = {"SELECT epoch, last_seq FROM producers WHERE stream_id = $1 AND "
                        "producer = $2",
                        L_UPDATE},
    [S_PRODUCER_PUT] = {"INSERT INTO producers (stream_id, producer, epoch, last_seq) "
                        "VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id, producer) DO UPDATE "
                        "SET epoch = excluded.epoch, last_seq = excluded.last_seq"},
    [S_IDEM_GET] = {"SELECT fingerprint, created_ms, response FROM idempotency "
                    "WHERE owner = $1 AND key = $2",
                    L_UPDATE},
    [S_IDEM_HOLD] = {"SELECT pg_try_advisory_xact_lock($1::bigint)"},
    [S_IDEM_PURGE] = {"DELETE FROM idempotency WHERE (owner, key) IN (SELECT owner, key FROM "
                      "idempotency WHERE created_ms < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"},
    [S_DOC_GET] = {"SELECT version, deleted, data, checksum, created_ms, updated_ms, chg "
                   "FROM documents WHERE owner = $1 AND collection = $2 AND id = $3",
                   L_UPDATE},
    [S_DOC_LIST] = {"SELECT id, version, data, checksum, created_ms, updated_ms, chg FROM "
                    "documents WHERE owner = $1 AND collection = $2 AND NOT deleted AND "
                    "chg < $3 ORDER BY chg DESC LIMIT $4"},
    [S_CONV_GET] = {"SELECT " CONV_COLS " FROM conversations WHERE id = $1", L_UPDATE},
    [S_CONV_LIST] = {"SELECT " CONV_COLS " FROM conversations WHERE owner = $1 AND NOT deleted "
                     "AND activity < $2 ORDER BY activity DESC LIMIT $3"},
    [S_SESS_GET] = {"SELECT " SESS_COLS " FROM sessions WHERE id = $1", L_UPDATE},
    [S_SESS_DEL] = {"DELETE FROM sessions WHERE id = $1"},
    [S_SESS_LIST] = {"SELECT " SESS_COLS " FROM sessions WHERE conversation_id = $1 AND "
                     "ord < $2 ORDER BY ord DESC LIMIT $3"},
    [S_SESS_LIST_STATUS] = {"SELECT " SESS_COLS " FROM sessions WHERE conversation_id = $1 AND "
                            "ord < $2 AND status = $4 ORDER BY ord DESC LIMIT $3"},
    [S_SESS_EXPIRED] = {"SELECT id FROM sessions WHERE lease_expires_ms IS NOT NULL AND "
                        "lease_expires_ms <= $1 AND status = 'processing' "
                        "ORDER BY lease_expires_ms LIMIT $2",
                        L_SKIP_LOCKED},
    [S_SNAP_GET] = {"SELECT " SNAP_COLS " FROM snapshots WHERE id = $1", L_UPDATE},
    [S_SNAP_DEL] = {"DELETE FROM snapshots WHERE id = $1"},
    [S_SNAP_LIST] = {"SELECT " SNAP_COLS " FROM snapshots WHERE owner = $1 AND ord < $2 "
                     "ORDER BY ord DESC LIMIT $3"},
    [S_SNAP_EXPIRED] = {"SELECT id FROM snapshots WHERE expires_ms IS NOT NULL AND "
                        "expires_ms <= $1 AND stream IS NOT NULL ORDER BY expires_ms LIMIT $2",
                        L_SKIP_LOCKED},
    [S_SUB_GET] = {"SELECT " SUB_COLS " FROM subscriptions WHERE id = $1", L_UPDATE},
    [S_SUB_DEL] = {"DELETE FROM subscriptions WHERE id = $1"},
    [S_SUB_DEL_LINKS] = {"DELETE FROM subscription_streams WHERE sub_id = $1"},
    [S_SUB_PATTERNS] = {"SELECT " SUB_COLS " FROM subscriptions WHERE pattern IS NOT NULL"},
    [S_SUB_LEASES] = {"SELECT id FROM subscriptions WHERE lease_expires_ms IS NOT NULL AND "
                      "lease_expires_ms <= $1 AND delivery_due_ms IS NULL "
                      "ORDER BY lease_expires_ms LIMIT $2",
                      L_SKIP_LOCKED},
    [S_SUB_DUE] = {"SELECT id FROM subscriptions WHERE delivery_due_ms IS NOT NULL AND "
                   "delivery_due_ms <= $1 ORDER BY delivery_due_ms LIMIT $2",
                   L_SKIP_LOCKED},
    [S_SUB_NEXT_DUE] = {"SELECT min(delivery_due_ms) FROM subscriptions"},
    [S_LINK_GET] = {"SELECT " LINK_COLS " FROM subscription_streams WHERE sub_id = $1 AND "
                    "path = $2",
                    L_UPDATE},
    [S_LINK_PUT] = {"INSERT INTO subscription_streams (" LINK_COLS ") VALUES ($1, $2, $3, $4, "
                    "$5, $6) ON CONFLICT (sub_id, path) DO UPDATE SET by_glob = "
                    "excluded.by_glob, by_explicit = excluded.by_explicit, acked = "
                    "excluded.acked, wake_tail = excluded.wake_tail"},
    [S_LINK_DEL] = {"DELETE FROM subscription_streams WHERE sub_id = $1 AND path = $2"},
    [S_LINK_LIST_SUB] = {"SELECT " LINK_COLS " FROM subscription_streams WHERE sub_id = $1 "
                         "ORDER BY path"},
    [S_LINK_LIST_PATH] = {"SELECT " LINK_COLS " FROM subscription_streams WHERE path = $1 "
                          "ORDER BY sub_id"},
    [S_LINK_SNAPSHOT] = {"UPDATE subscription_streams l SET wake_tail = coalesce((SELECT s.tail "
                         "FROM streams s WHERE s.path = l.path AND NOT s.deleted), 0) "
                         "WHERE l.sub_id = $1"},
    [S_LINK_ACK_SNAPSHOT] = {"UPDATE subscription_streams l SET acked = greatest(l.acked, "
                             "least(l.wake_tail, coalesce((SELECT s.tail FROM streams s WHERE "
                             "s.path = l.path AND NOT s.deleted), 0))) WHERE l.sub_id = $1 AND "
                             "l.wake_tail IS NOT NULL AND l.wake_tail > l.acked"},
    [S_LINK_PENDING] = {"SELECT l.path FROM subscription_streams l JOIN streams s ON s.path = "
                        "l.path WHERE l.sub_id = $1 AND NOT s.deleted AND s.tail > l.acked "
                        "ORDER BY l.path LIMIT 1"},
    [S_KEY_GET] = {"SELECT secret FROM server_keys WHERE name = $1"},
    /* ---- atomic ops: one statement decides and writes, on the row it
     * locks, so two nodes can never both act on one old value ---- */
    [S_A_STREAM_CREATE] = {"INSERT INTO streams (path, owner, content_type, created_ms, "
                           "touched_ms, ttl_s, expires_ms, tail, closed, closer, closer_epoch, "
                           "closer_seq, stream_seq, fork_src, fork_pos, refs, deleted) VALUES "
                           "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
                           "$16, $17) ON CONFLICT (path) DO NOTHING RETURNING id"},
    /* $1 id, $2 units, $3 now, $4 stream_seq (NULL: none), $5 expect_tail
     * (-1: any), $6 the largest tail */
    [S_A_STREAM_APPEND] = {"UPDATE streams SET tail = tail + $2::bigint, touched_ms = $3, "
                           "stream_seq = coalesce($4::text, stream_seq) WHERE id = $1 AND NOT "
                           "closed AND NOT deleted AND ($4::text IS NULL OR stream_seq IS NULL OR "
                           "stream_seq < $4::text COLLATE \"C\") AND ($5::bigint < 0 OR tail = "
                           "$5::bigint) AND tail + $2::bigint <= $6::bigint RETURNING tail"},
    [S_A_STREAM_CLOSE] = {"UPDATE streams SET closed = true, closer = $2, closer_epoch = $3, "
                          "closer_seq = $4, touched_ms = $5 WHERE id = $1 AND NOT closed "
                          "RETURNING tail"},
    [S_A_STREAM_TOUCH] = {"UPDATE streams SET touched_ms = greatest(touched_ms, $2::bigint) "
                          "WHERE id = $1 RETURNING tail"},
    [S_A_STREAM_REF] = {"UPDATE streams SET refs = greatest(refs + $2::bigint, 0) WHERE id = $1 "
                        "RETURNING refs, deleted, coalesce(fork_src, 0)"},
    [S_A_STREAM_MARK_DELETED] = {"UPDATE streams SET deleted = true WHERE id = $1 AND refs > 0 "
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
        {"INSERT INTO documents (owner, collection, id, version, deleted, data, "
         "checksum, created_ms, updated_ms, chg) VALUES ($1, $2, $3, $4, $5, $6, "
         "$7, $8, $9, parley_next('document_change')) ON CONFLICT (owner, collection, id) "
         "DO NOTHING RETURNING chg"},
    [S_A_DOC_UPDATE] =
        {"UPDATE documents SET version = $4, deleted = $5, data = $6, checksum = "
         "$7, created_ms = $8, updated_ms = $9, chg = parley_next('document_change') "
         "WHERE owner = $1 AND collection = $2 AND id = $3 AND version = $10 "
         "RETURNING chg"},
    [S_A_CONV_INSERT] = {"INSERT INTO conversations (" CONV_COLS ") VALUES ($1, $2, $3, $4, $5, "
                         "$6, $7, $8, $9, parley_next('conversation_activity'), $10) ON CONFLICT "
                         "(id) DO NOTHING RETURNING activity"},
    [S_A_CONV_UPDATE] = {"UPDATE conversations SET title = $2, metadata = $3, updated_ms = $4, "
                         "version = version + 1 WHERE id = $1 AND version = $5 AND NOT deleted "
                         "RETURNING version"},
    [S_A_CONV_BUMP] = {"UPDATE conversations SET message_count = message_count + 1, version = "
                       "version + 1, updated_ms = $2, last_message_ms = $2, activity = "
                       "parley_next('conversation_activity') WHERE id = $1 AND NOT deleted "
                       "RETURNING message_count, version, activity"},
    [S_A_CONV_TOMBSTONE] = {"UPDATE conversations SET title = NULL, metadata = '{}', deleted = "
                            "true, version = version + 1, updated_ms = $2 WHERE id = $1 "
                            "RETURNING version"},
    [S_A_SESS_INSERT] = {"INSERT INTO sessions (" SESS_COLS ") VALUES ($1, $2, $3, $4, $5, $6, "
                         "$7, $8, $9, $10, $11, $12, $13, $14, $15, parley_next('session')) "
                         "ON CONFLICT (id) DO NOTHING RETURNING ord"},
    /* $14 expect_status, $15 expect_attempt */
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
    [S_A_SNAP_INSERT] = {"INSERT INTO snapshots (" SNAP_COLS ") VALUES ($1, $2, $3, $4, $5, $6, "
                         "$7, $8, $9, $10, parley_next('snapshot')) ON CONFLICT (id) DO NOTHING "
                         "RETURNING ord"},
    [S_A_SNAP_EXPIRE] = {"UPDATE snapshots SET payload = '{}', stream = NULL WHERE id = $1 "
                         "RETURNING ord"},
    /* Configuration columns only: the delivery state (generation, wake,
     * lease, due, attempts) of an existing row is never overwritten. */
    [S_A_SUB_PUT_CONFIG] = {"INSERT INTO subscriptions (" SUB_COLS ") VALUES ($1, $2, $3, $4, $5, "
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
    /* Delivery state, fenced by generation and wake id ($8, $9: "" for
     * none). */
    [S_A_SUB_UPDATE] = {"UPDATE subscriptions SET wake_id = $2, holder = $3, lease_expires_ms = "
                        "$4, delivery_due_ms = $5, attempts = $6 WHERE id = $1 AND generation = $7 "
                        "AND coalesce(wake_id, '') = $8 RETURNING generation"},
    /* Never back, never past the stream's tail. */
    [S_A_LINK_ADVANCE] = {"UPDATE subscription_streams SET acked = $3 WHERE sub_id = $1 AND path = "
                          "$2 AND acked <= $3::bigint AND $3::bigint <= coalesce((SELECT tail FROM "
                          "streams WHERE streams.path = $2 AND NOT deleted), 0) RETURNING acked"},
    [S_KEY_PUT] = {"INSERT INTO server_keys (name, secret, created_ms) VALUES ($1, $2, $3) "
                   "ON CONFLICT (name) DO NOTHING"},
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
    parley_db_t base;       /* ops (first: the store.h wrappers read it) */
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

/* ---- parameters ---------------------------------------------------------- */

/* A statement's parameters: text, except bytea in binary. */
typedef struct params {
    int n;                     /* parameters set */
    const char *v[MAX_PARAMS]; /* values (NULL: SQL NULL) */
    int len[MAX_PARAMS];       /* lengths of binary values */
    int fmt[MAX_PARAMS];       /* 0 text, 1 binary */
    char num[MAX_PARAMS][24];  /* the text of numbers */
} params_t;

static void p_text(params_t *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

/* "" is SQL NULL (optional strings, as on SQLite). */
static void p_opt_text(params_t *p, const char *s)
{
    p_text(p, s && s[0] ? s : NULL);
}

static void p_int(params_t *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)v);
    p_text(p, p->num[p->n]);
}

/* Negative is SQL NULL (optional times, as on SQLite). */
static void p_opt_int(params_t *p, int64_t v)
{
    if (v < 0)
        p_text(p, NULL);
    else
        p_int(p, v);
}

static void p_bool(params_t *p, bool b)
{
    p_text(p, b ? "t" : "f");
}

static void p_bytes(params_t *p, const void *data, size_t len)
{
    p->v[p->n] = len ? data : "";
    p->len[p->n] = (int)len;
    p->fmt[p->n++] = 1;
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

/* SQL NULL is -1 (optional times). */
static int64_t g_opt_int(const PGresult *r, int row, int col)
{
    return g_null(r, row, col) ? -1 : g_int(r, row, col);
}

static bool g_bool(const PGresult *r, int row, int col)
{
    return !g_null(r, row, col) && PQgetvalue(r, row, col)[0] != 0;
}

/* Copy a text column into a fixed field (truncated to cap - 1; NULL is ""). */
static void g_copy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    size_t n = g_null(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, PQgetvalue(r, row, col), n);
    dst[n] = '\0';
}

/* A text column as a new string (NULL for SQL NULL); *len its bytes. */
static int g_dup(const PGresult *r, int row, int col, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    if (g_null(r, row, col))
        return 0;
    size_t n = (size_t)PQgetlength(r, row, col);
    char *s = malloc(n + 1);
    if (!s)
        return PARLEY_ENOMEM;
    memcpy(s, PQgetvalue(r, row, col), n);
    s[n] = '\0';
    *out = s;
    if (len)
        *len = n;
    return 0;
}

/* A text column borrowed from the result (NULL for SQL NULL); libpq
 * terminates every value with a NUL. */
static char *g_borrow(const PGresult *r, int row, int col)
{
    return g_null(r, row, col) ? NULL : PQgetvalue(r, row, col);
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
    parley_log_error("store: %s: %.*s", what,
                     MSG(res ? PQresultErrorMessage(res) : PQerrorMessage(c->conn)));
    return PARLEY_ESTORE;
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

static int open_conn(pg_store_t *s, bool writer, parley_db_t **out)
{
    pg_db_t *c = calloc(1, sizeof *c);
    if (!c)
        return PARLEY_ENOMEM;
    c->base.ops = &pg_ops;
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
    *out = &c->base;
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
    snprintf(sql, sizeof sql, "%s%s", stmts[id].sql, lock);
    PGresult *pr = PQprepare(c->conn, name, sql, 0, NULL);
    int rc = 0;
    if (PQresultStatus(pr) != PGRES_COMMAND_OK)
        rc = pg_error(c, pr, what);
    PQclear(pr);
    c->prepared[id] = rc == 0;
    return rc;
}

/* Run a statement: *out gets its rows (PQclear them) when out is not NULL. */
static int run(parley_db_t *db, enum stmt_id id, const params_t *p, PGresult **out,
               const char *what)
{
    pg_db_t *c = pg(db);
    char name[16];
    int rc;
    if (out)
        *out = NULL;
    if (!c->in_txn && (rc = ensure_conn(c)) != 0)
        return rc;
    snprintf(name, sizeof name, "p%d", (int)id);
    if (!c->prepared[id] && (rc = prepare(c, id, what)) != 0)
        return rc;
    PGresult *res = PQexecPrepared(c->conn, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                                   p ? p->fmt : NULL, 1);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = pg_error(c, res, what);
        PQclear(res);
        return rc;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

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

static int init_schema(pg_db_t *c)
{
    char sql[160];
    int rc = command(c, "BEGIN", NULL);
    if (rc)
        return rc;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)", (long long)SCHEMA_LOCK_ID);
    PGresult *res = PQexec(c->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_error(c, res, "schema lock");
    PQclear(res);
    if (rc == 0)
        rc = command(c, schema_sql, NULL);
    if (rc == 0) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO meta (key, value) VALUES ('schema_version', '%d') "
                 "ON CONFLICT (key) DO NOTHING",
                 SCHEMA_VERSION);
        rc = command(c, sql, NULL);
    }
    if (rc == 0) {
        res = PQexec(c->conn, "SELECT value FROM meta WHERE key = 'schema_version'");
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            rc = pg_error(c, res, "schema version");
        } else if (atoi(PQgetvalue(res, 0, 0)) > SCHEMA_VERSION) {
            parley_log_error("store: the database's schema (version %s) is newer than this "
                             "build's (%d); refusing to use it",
                             PQgetvalue(res, 0, 0), SCHEMA_VERSION);
            rc = PARLEY_ESTORE;
        }
        PQclear(res);
    }
    if (rc == 0)
        rc = command(c, "COMMIT", "COMMIT");
    if (rc) {
        parley_log_error("store: creating the schema failed");
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
    if (pthread_create(&s->listener, NULL, listener_main, s) != 0)
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

static int pg_commit(parley_db_t *db)
{
    pg_db_t *c = pg(db);
    int rc = command(c, "COMMIT", "COMMIT");
    c->in_txn = false;
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

/* ---- streams, chunks, producers ------------------------------------------ */

static void row_to_stream(const PGresult *r, int i, parley_stream_t *s)
{
    s->id = g_int(r, i, 0);
    g_copy(s->path, sizeof s->path, r, i, 1);
    g_copy(s->owner, sizeof s->owner, r, i, 2);
    g_copy(s->content_type, sizeof s->content_type, r, i, 3);
    s->created_ms = g_int(r, i, 4);
    s->touched_ms = g_int(r, i, 5);
    s->ttl_s = g_opt_int(r, i, 6);
    s->expires_ms = g_opt_int(r, i, 7);
    s->tail = (uint64_t)g_int(r, i, 8);
    s->closed = g_bool(r, i, 9);
    g_copy(s->closer, sizeof s->closer, r, i, 10);
    s->closer_epoch = (uint64_t)g_int(r, i, 11);
    s->closer_seq = (uint64_t)g_int(r, i, 12);
    g_copy(s->stream_seq, sizeof s->stream_seq, r, i, 13);
    s->fork_src = g_int(r, i, 14);
    s->fork_pos = (uint64_t)g_int(r, i, 15);
    s->refs = g_int(r, i, 16);
    s->deleted = g_bool(r, i, 17);
}

static int stream_fetch(parley_db_t *db, enum stmt_id id, const params_t *p, parley_stream_t *out)
{
    PGresult *r;
    int rc = run(db, id, p, &r, "stream lookup");
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = PARLEY_ENOTFOUND;
    else
        row_to_stream(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_stream_get(parley_db_t *db, const char *path, parley_stream_t *out)
{
    params_t p = {0};
    p_text(&p, path);
    return stream_fetch(db, S_STREAM_GET, &p, out);
}

static int pg_stream_get_id(parley_db_t *db, int64_t id, parley_stream_t *out)
{
    params_t p = {0};
    p_int(&p, id);
    return stream_fetch(db, S_STREAM_GET_ID, &p, out);
}

static int pg_stream_remove(parley_db_t *db, int64_t id)
{
    static const enum stmt_id steps[] = {S_STREAM_DEL_CHUNKS, S_STREAM_DEL_PRODUCERS, S_STREAM_DEL};
    params_t p = {0};
    p_int(&p, id);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int rc = run(db, steps[i], &p, NULL, "stream remove");
        if (rc)
            return rc;
    }
    return 0;
}

static int pg_stream_expired(parley_db_t *db, int64_t now_ms, int64_t *ids, int max, int *n)
{
    params_t p = {0};
    p_int(&p, now_ms);
    p_int(&p, max);
    PGresult *r;
    *n = 0;
    int rc = run(db, S_STREAM_EXPIRED, &p, &r, "expiry scan");
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        ids[(*n)++] = g_int(r, i, 0);
    PQclear(r);
    return 0;
}

static int pg_stream_scan(parley_db_t *db, const char *prefix,
                          int (*cb)(void *arg, const parley_stream_t *s), void *arg)
{
    params_t p = {0};
    size_t plen = strlen(prefix);
    p_text(&p, prefix);
    PGresult *r;
    int rc = run(db, S_STREAM_SCAN, &p, &r, "stream scan");
    if (rc)
        return rc;
    parley_stream_t *s = malloc(sizeof *s);
    if (!s)
        rc = PARLEY_ENOMEM;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        row_to_stream(r, i, s);
        if (strncmp(s->path, prefix, plen) != 0)
            break; /* past the prefix's range */
        if (cb(arg, s))
            break;
    }
    free(s);
    PQclear(r);
    return rc;
}

static int pg_chunk_insert(parley_db_t *db, int64_t stream_id, uint64_t start, uint64_t end,
                           uint64_t unit_end, const void *data, size_t len)
{
    params_t p = {0};
    p_int(&p, stream_id);
    p_int(&p, (int64_t)end);
    p_int(&p, (int64_t)start);
    p_int(&p, (int64_t)unit_end);
    p_bytes(&p, data, len);
    return run(db, S_CHUNK_INSERT, &p, NULL, "chunk insert");
}

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
        params_t p = {0};
        p_int(&p, stream_id);
        p_int(&p, (int64_t)from);
        p_int(&p, limit);
        PGresult *r;
        int rc = run(db, S_CHUNK_SCAN, &p, &r, "chunk scan");
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

static int pg_producer_get(parley_db_t *db, int64_t stream_id, const char *producer,
                           parley_producer_state_t *ps)
{
    params_t p = {0};
    p_int(&p, stream_id);
    p_text(&p, producer);
    PGresult *r;
    ps->exists = false;
    int rc = run(db, S_PRODUCER_GET, &p, &r, "producer lookup");
    if (rc)
        return rc;
    if (PQntuples(r) > 0) {
        ps->exists = true;
        ps->epoch = (uint64_t)g_int(r, 0, 0);
        ps->last_seq = (uint64_t)g_int(r, 0, 1);
    }
    PQclear(r);
    return 0;
}

static int pg_producer_put(parley_db_t *db, int64_t stream_id, const char *producer,
                           const parley_producer_state_t *ps)
{
    params_t p = {0};
    p_int(&p, stream_id);
    p_text(&p, producer);
    p_int(&p, (int64_t)ps->epoch);
    p_int(&p, (int64_t)ps->last_seq);
    return run(db, S_PRODUCER_PUT, &p, NULL, "producer store");
}

/* ---- idempotency records --------------------------------------------------- */

static int pg_idem_get(parley_db_t *db, const char *owner, const char *key, char *fingerprint,
                       int64_t *created_ms, char **resp, size_t *len)
{
    params_t p = {0};
    p_text(&p, owner);
    p_text(&p, key);
    PGresult *r;
    int rc = run(db, S_IDEM_GET, &p, &r, "idempotency lookup");
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        rc = PARLEY_ENOTFOUND;
    } else {
        g_copy(fingerprint, 65, r, 0, 0);
        *created_ms = g_int(r, 0, 1);
        rc = g_dup(r, 0, 2, resp, len);
    }
    PQclear(r);
    return rc;
}

static int pg_idem_purge(parley_db_t *db, int64_t before_ms, int limit, int *n)
{
    params_t p = {0};
    p_int(&p, before_ms);
    p_int(&p, limit);
    PGresult *r;
    *n = 0;
    int rc = run(db, S_IDEM_PURGE, &p, &r, "idempotency purge");
    if (rc)
        return rc;
    *n = atoi(PQcmdTuples(r));
    PQclear(r);
    return 0;
}

/* ---- documents ------------------------------------------------------------- */

static int pg_doc_get(parley_db_t *db, const char *owner, const char *collection, const char *id,
                      parley_doc_t *out)
{
    params_t p = {0};
    p_text(&p, owner);
    p_text(&p, collection);
    p_text(&p, id);
    PGresult *r;
    int rc = run(db, S_DOC_GET, &p, &r, "document lookup");
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        rc = PARLEY_ENOTFOUND;
    } else {
        snprintf(out->owner, sizeof out->owner, "%s", owner);
        snprintf(out->collection, sizeof out->collection, "%s", collection);
        snprintf(out->id, sizeof out->id, "%s", id);
        out->version = g_int(r, 0, 0);
        out->deleted = g_bool(r, 0, 1);
        rc = g_dup(r, 0, 2, &out->data, &out->len);
        g_copy(out->checksum, sizeof out->checksum, r, 0, 3);
        out->created_ms = g_int(r, 0, 4);
        out->updated_ms = g_int(r, 0, 5);
        out->chg = g_int(r, 0, 6);
    }
    PQclear(r);
    return rc;
}

static int pg_doc_list(parley_db_t *db, const char *owner, const char *collection, int64_t before,
                       int limit, int (*cb)(void *arg, const parley_doc_t *d), void *arg)
{
    params_t p = {0};
    p_text(&p, owner);
    p_text(&p, collection);
    p_int(&p, before > 0 ? before : INT64_MAX);
    p_int(&p, limit);
    PGresult *r;
    int rc = run(db, S_DOC_LIST, &p, &r, "document list");
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        parley_doc_t d;
        memset(&d, 0, sizeof d);
        snprintf(d.owner, sizeof d.owner, "%s", owner);
        snprintf(d.collection, sizeof d.collection, "%s", collection);
        g_copy(d.id, sizeof d.id, r, i, 0);
        d.version = g_int(r, i, 1);
        d.data = PQgetvalue(r, i, 2);
        d.len = (size_t)PQgetlength(r, i, 2);
        g_copy(d.checksum, sizeof d.checksum, r, i, 3);
        d.created_ms = g_int(r, i, 4);
        d.updated_ms = g_int(r, i, 5);
        d.chg = g_int(r, i, 6);
        if (cb(arg, &d))
            break;
    }
    PQclear(r);
    return 0;
}

/* ---- conversations, sessions, snapshots ----------------------------------- */

/* Fill c from a CONV_COLS row; borrow: point into the result instead of copying. */
static int row_to_conv(const PGresult *r, int i, parley_conv_t *c, bool borrow)
{
    memset(c, 0, sizeof *c);
    g_copy(c->id, sizeof c->id, r, i, 0);
    g_copy(c->owner, sizeof c->owner, r, i, 1);
    c->version = g_int(r, i, 4);
    c->created_ms = g_int(r, i, 5);
    c->updated_ms = g_int(r, i, 6);
    c->message_count = g_int(r, i, 7);
    c->last_message_ms = g_opt_int(r, i, 8);
    c->activity = g_int(r, i, 9);
    c->deleted = g_bool(r, i, 10);
    if (borrow) {
        c->title = g_borrow(r, i, 2);
        c->metadata = g_borrow(r, i, 3);
        return 0;
    }
    int rc = g_dup(r, i, 2, &c->title, NULL);
    if (rc == 0)
        rc = g_dup(r, i, 3, &c->metadata, NULL);
    if (rc)
        parley_conv_clear(c);
    return rc;
}

static int pg_conv_get(parley_db_t *db, const char *id, parley_conv_t *out)
{
    params_t p = {0};
    p_text(&p, id);
    PGresult *r;
    int rc = run(db, S_CONV_GET, &p, &r, "conversation lookup");
    if (rc)
        return rc;
    rc = PQntuples(r) == 0 ? PARLEY_ENOTFOUND : row_to_conv(r, 0, out, false);
    PQclear(r);
    return rc;
}

static int pg_conv_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                        int (*cb)(void *arg, const parley_conv_t *c), void *arg)
{
    params_t p = {0};
    p_text(&p, owner);
    p_int(&p, before > 0 ? before : INT64_MAX);
    p_int(&p, limit);
    PGresult *r;
    int rc = run(db, S_CONV_LIST, &p, &r, "conversation list");
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        parley_conv_t c;
        row_to_conv(r, i, &c, true);
        if (cb(arg, &c))
            break;
    }
    PQclear(r);
    return 0;
}

static int row_to_sess(const PGresult *r, int i, parley_sess_t *s, bool borrow)
{
    memset(s, 0, sizeof *s);
    g_copy(s->id, sizeof s->id, r, i, 0);
    g_copy(s->conversation_id, sizeof s->conversation_id, r, i, 1);
    g_copy(s->owner, sizeof s->owner, r, i, 2);
    g_copy(s->message_id, sizeof s->message_id, r, i, 3);
    g_copy(s->result_id, sizeof s->result_id, r, i, 4);
    g_copy(s->status, sizeof s->status, r, i, 5);
    s->attempt = g_int(r, i, 6);
    s->max_attempts = g_int(r, i, 7);
    s->lease_ms = g_int(r, i, 8);
    s->lease_expires_ms = g_opt_int(r, i, 9);
    s->created_ms = g_int(r, i, 13);
    s->updated_ms = g_int(r, i, 14);
    s->ord = g_int(r, i, 15);
    if (borrow) {
        s->error = g_borrow(r, i, 10);
        s->request = g_borrow(r, i, 11);
        s->input = g_borrow(r, i, 12);
        return 0;
    }
    int rc = g_dup(r, i, 10, &s->error, NULL);
    if (rc == 0)
        rc = g_dup(r, i, 11, &s->request, NULL);
    if (rc == 0)
        rc = g_dup(r, i, 12, &s->input, NULL);
    if (rc)
        parley_sess_clear(s);
    return rc;
}

static int sess_fetch(parley_db_t *db, enum stmt_id id, const params_t *p, parley_sess_t *out)
{
    PGresult *r;
    int rc = run(db, id, p, &r, "session lookup");
    if (rc)
        return rc;
    rc = PQntuples(r) == 0 ? PARLEY_ENOTFOUND : row_to_sess(r, 0, out, false);
    PQclear(r);
    return rc;
}

static int pg_sess_get(parley_db_t *db, const char *id, parley_sess_t *out)
{
    params_t p = {0};
    p_text(&p, id);
    return sess_fetch(db, S_SESS_GET, &p, out);
}

static int remove_by_id(parley_db_t *db, enum stmt_id sid, const char *id, const char *what)
{
    params_t p = {0};
    p_text(&p, id);
    return run(db, sid, &p, NULL, what);
}

static int pg_sess_remove(parley_db_t *db, const char *id)
{
    return remove_by_id(db, S_SESS_DEL, id, "session remove");
}

static int pg_sess_list(parley_db_t *db, const char *conversation_id, const char *status,
                        int64_t before, int limit, int (*cb)(void *arg, const parley_sess_t *s),
                        void *arg)
{
    params_t p = {0};
    p_text(&p, conversation_id);
    p_int(&p, before > 0 ? before : INT64_MAX);
    p_int(&p, limit);
    if (status)
        p_text(&p, status);
    PGresult *r;
    int rc = run(db, status ? S_SESS_LIST_STATUS : S_SESS_LIST, &p, &r, "session list");
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        parley_sess_t s;
        row_to_sess(r, i, &s, true);
        if (cb(arg, &s))
            break;
    }
    PQclear(r);
    return 0;
}

/* The first column of up to max rows of a (now, limit) query. */
static int scan_ids(parley_db_t *db, enum stmt_id sid, int64_t now_ms,
                    char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n, const char *what)
{
    params_t p = {0};
    p_int(&p, now_ms);
    p_int(&p, max);
    PGresult *r;
    *n = 0;
    int rc = run(db, sid, &p, &r, what);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        g_copy(ids[(*n)++], PARLEY_ROW_ID_MAX + 1, r, i, 0);
    PQclear(r);
    return 0;
}

static int pg_sess_expired(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                           int max, int *n)
{
    return scan_ids(db, S_SESS_EXPIRED, now_ms, ids, max, n, "lease scan");
}

static int row_to_snap(const PGresult *r, int i, parley_snap_t *s, bool borrow)
{
    memset(s, 0, sizeof *s);
    g_copy(s->id, sizeof s->id, r, i, 0);
    g_copy(s->owner, sizeof s->owner, r, i, 1);
    g_copy(s->source, sizeof s->source, r, i, 2);
    g_copy(s->kind, sizeof s->kind, r, i, 3);
    s->is_public = g_bool(r, i, 5);
    s->created_ms = g_int(r, i, 6);
    s->expires_ms = g_opt_int(r, i, 7);
    g_copy(s->stream, sizeof s->stream, r, i, 8);
    s->ord = g_int(r, i, 10);
    if (borrow) {
        s->title = g_borrow(r, i, 4);
        s->payload = g_borrow(r, i, 9);
        return 0;
    }
    int rc = g_dup(r, i, 4, &s->title, NULL);
    if (rc == 0)
        rc = g_dup(r, i, 9, &s->payload, NULL);
    if (rc)
        parley_snap_clear(s);
    return rc;
}

static int pg_snap_get(parley_db_t *db, const char *id, parley_snap_t *out)
{
    params_t p = {0};
    p_text(&p, id);
    PGresult *r;
    int rc = run(db, S_SNAP_GET, &p, &r, "snapshot lookup");
    if (rc)
        return rc;
    rc = PQntuples(r) == 0 ? PARLEY_ENOTFOUND : row_to_snap(r, 0, out, false);
    PQclear(r);
    return rc;
}

static int pg_snap_remove(parley_db_t *db, const char *id)
{
    return remove_by_id(db, S_SNAP_DEL, id, "snapshot remove");
}

static int pg_snap_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                        int (*cb)(void *arg, const parley_snap_t *s), void *arg)
{
    params_t p = {0};
    p_text(&p, owner);
    p_int(&p, before > 0 ? before : INT64_MAX);
    p_int(&p, limit);
    PGresult *r;
    int rc = run(db, S_SNAP_LIST, &p, &r, "snapshot list");
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        parley_snap_t s;
        row_to_snap(r, i, &s, true);
        if (cb(arg, &s))
            break;
    }
    PQclear(r);
    return 0;
}

static int pg_snap_expired(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                           int max, int *n)
{
    return scan_ids(db, S_SNAP_EXPIRED, now_ms, ids, max, n, "snapshot expiry scan");
}

/* ---- subscriptions ------------------------------------------------------- */

static void row_to_sub(const PGresult *r, int i, parley_sub_t *s)
{
    memset(s, 0, sizeof *s);
    g_copy(s->id, sizeof s->id, r, i, 0);
    g_copy(s->type, sizeof s->type, r, i, 1);
    g_copy(s->pattern, sizeof s->pattern, r, i, 2);
    g_copy(s->webhook_url, sizeof s->webhook_url, r, i, 3);
    g_copy(s->wake_stream, sizeof s->wake_stream, r, i, 4);
    g_copy(s->description, sizeof s->description, r, i, 5);
    s->lease_ttl_ms = g_int(r, i, 6);
    g_copy(s->config_hash, sizeof s->config_hash, r, i, 7);
    g_copy(s->root_url, sizeof s->root_url, r, i, 8);
    s->created_ms = g_int(r, i, 9);
    s->generation = g_int(r, i, 10);
    g_copy(s->wake_id, sizeof s->wake_id, r, i, 11);
    g_copy(s->holder, sizeof s->holder, r, i, 12);
    s->lease_expires_ms = g_opt_int(r, i, 13);
    s->delivery_due_ms = g_opt_int(r, i, 14);
    s->attempts = g_int(r, i, 15);
}

static int pg_sub_get(parley_db_t *db, const char *id, parley_sub_t *out)
{
    params_t p = {0};
    p_text(&p, id);
    PGresult *r;
    int rc = run(db, S_SUB_GET, &p, &r, "subscription lookup");
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = PARLEY_ENOTFOUND;
    else
        row_to_sub(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_sub_remove(parley_db_t *db, const char *id)
{
    int rc = remove_by_id(db, S_SUB_DEL_LINKS, id, "subscription links remove");
    return rc ? rc : remove_by_id(db, S_SUB_DEL, id, "subscription remove");
}

static int pg_sub_with_pattern(parley_db_t *db, int (*cb)(void *arg, const parley_sub_t *s),
                               void *arg)
{
    PGresult *r;
    int rc = run(db, S_SUB_PATTERNS, NULL, &r, "subscription pattern scan");
    if (rc)
        return rc;
    parley_sub_t *s = malloc(sizeof *s);
    if (!s)
        rc = PARLEY_ENOMEM;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        row_to_sub(r, i, s);
        if (cb(arg, s))
            break;
    }
    free(s);
    PQclear(r);
    return rc;
}

static int pg_sub_leases_expired(parley_db_t *db, int64_t now_ms,
                                 char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return scan_ids(db, S_SUB_LEASES, now_ms, ids, max, n, "subscription lease scan");
}

static int pg_sub_deliveries_due(parley_db_t *db, int64_t now_ms,
                                 char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return scan_ids(db, S_SUB_DUE, now_ms, ids, max, n, "subscription delivery scan");
}

static int pg_sub_next_delivery(parley_db_t *db, int64_t *due_ms)
{
    PGresult *r;
    *due_ms = -1;
    int rc = run(db, S_SUB_NEXT_DUE, NULL, &r, "subscription delivery scan");
    if (rc)
        return rc;
    if (PQntuples(r) > 0)
        *due_ms = g_opt_int(r, 0, 0);
    PQclear(r);
    return 0;
}

static void row_to_link(const PGresult *r, int i, parley_sub_link_t *l)
{
    g_copy(l->sub_id, sizeof l->sub_id, r, i, 0);
    g_copy(l->path, sizeof l->path, r, i, 1);
    l->by_glob = g_bool(r, i, 2);
    l->by_explicit = g_bool(r, i, 3);
    l->acked = (uint64_t)g_int(r, i, 4);
    l->wake_tail = g_opt_int(r, i, 5);
}

static int pg_sublink_get(parley_db_t *db, const char *sub_id, const char *path,
                          parley_sub_link_t *out)
{
    params_t p = {0};
    p_text(&p, sub_id);
    p_text(&p, path);
    PGresult *r;
    int rc = run(db, S_LINK_GET, &p, &r, "subscription link lookup");
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = PARLEY_ENOTFOUND;
    else
        row_to_link(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_sublink_put(parley_db_t *db, const parley_sub_link_t *l)
{
    params_t p = {0};
    p_text(&p, l->sub_id);
    p_text(&p, l->path);
    p_bool(&p, l->by_glob);
    p_bool(&p, l->by_explicit);
    p_int(&p, (int64_t)l->acked);
    p_opt_int(&p, l->wake_tail);
    return run(db, S_LINK_PUT, &p, NULL, "subscription link store");
}

static int pg_sublink_remove(parley_db_t *db, const char *sub_id, const char *path)
{
    params_t p = {0};
    p_text(&p, sub_id);
    p_text(&p, path);
    return run(db, S_LINK_DEL, &p, NULL, "subscription link remove");
}

static int pg_sublink_list(parley_db_t *db, const char *sub_id, const char *path,
                           int (*cb)(void *arg, const parley_sub_link_t *l), void *arg)
{
    params_t p = {0};
    p_text(&p, sub_id ? sub_id : path);
    PGresult *r;
    int rc = run(db, sub_id ? S_LINK_LIST_SUB : S_LINK_LIST_PATH, &p, &r, "subscription link list");
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        parley_sub_link_t l;
        row_to_link(r, i, &l);
        if (cb(arg, &l))
            break;
    }
    PQclear(r);
    return 0;
}

static int pg_sublink_snapshot(parley_db_t *db, const char *sub_id)
{
    return remove_by_id(db, S_LINK_SNAPSHOT, sub_id, "subscription snapshot");
}

static int pg_sublink_ack_snapshot(parley_db_t *db, const char *sub_id)
{
    return remove_by_id(db, S_LINK_ACK_SNAPSHOT, sub_id, "subscription auto-ack");
}

static int pg_sublink_first_pending(parley_db_t *db, const char *sub_id, char *path)
{
    params_t p = {0};
    p_text(&p, sub_id);
    PGresult *r;
    int rc = run(db, S_LINK_PENDING, &p, &r, "subscription pending scan");
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = PARLEY_ENOTFOUND;
    else
        g_copy(path, PARLEY_PATH_MAX + 1, r, 0, 0);
    PQclear(r);
    return rc;
}

/* ---- server keys ----------------------------------------------------------- */

static int pg_key_get(parley_db_t *db, const char *name, unsigned char *out, size_t cap,
                      size_t *len)
{
    params_t p = {0};
    p_text(&p, name);
    PGresult *r;
    int rc = run(db, S_KEY_GET, &p, &r, "key lookup");
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        rc = PARLEY_ENOTFOUND;
    } else {
        size_t n = (size_t)PQgetlength(r, 0, 0);
        if (n > cap) {
            rc = PARLEY_ETOOBIG;
        } else {
            if (n)
                memcpy(out, PQgetvalue(r, 0, 0), n);
            *len = n;
        }
    }
    PQclear(r);
    return rc;
}

static int pg_key_put(parley_db_t *db, const char *name, const unsigned char *data, size_t len,
                      int64_t created_ms)
{
    params_t p = {0};
    p_text(&p, name);
    p_bytes(&p, data, len);
    p_int(&p, created_ms);
    PGresult *r;
    int rc = run(db, S_KEY_PUT, &p, &r, "key store");
    if (rc)
        return rc;
    if (strcmp(PQcmdTuples(r), "1") != 0)
        rc = PARLEY_EEXIST; /* the name is taken; the first secret stays */
    PQclear(r);
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

/* The first row's first n integer columns of a RETURNING statement:
 * PARLEY_ENOTFOUND when no row matched its WHERE. */
static int run_returning(parley_db_t *db, enum stmt_id id, const params_t *p, int64_t *vals, int n,
                         const char *what)
{
    PGresult *r;
    int rc = run(db, id, p, &r, what);
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = PARLEY_ENOTFOUND;
    for (int i = 0; rc == 0 && i < n; i++)
        vals[i] = g_int(r, 0, i);
    PQclear(r);
    return rc;
}

#define ROW_BYTES  (64 * 1024)        /* a byte stream's append is stored in rows this large */
#define OFFSET_MAX 9999999999999999LL /* the largest stream position (codec/offset.h) */

static int pg_stream_create(parley_db_t *db, parley_stream_t *s)
{
    params_t p = {0};
    p_text(&p, s->path);
    p_text(&p, s->owner);
    p_text(&p, s->content_type);
    p_int(&p, s->created_ms);
    p_int(&p, s->touched_ms);
    p_opt_int(&p, s->ttl_s);
    p_opt_int(&p, s->expires_ms);
    p_int(&p, (int64_t)s->tail);
    p_bool(&p, s->closed);
    p_opt_text(&p, s->closer);
    p_int(&p, (int64_t)s->closer_epoch);
    p_int(&p, (int64_t)s->closer_seq);
    p_opt_text(&p, s->stream_seq);
    if (s->fork_src)
        p_int(&p, s->fork_src);
    else
        p_text(&p, NULL);
    p_int(&p, (int64_t)s->fork_pos);
    p_int(&p, s->refs);
    p_bool(&p, s->deleted);
    int64_t id = 0;
    int rc = run_returning(db, S_A_STREAM_CREATE, &p, &id, 1, "stream create");
    if (rc == PARLEY_ENOTFOUND)
        return PARLEY_EEXIST; /* the path is taken */
    if (rc == 0)
        s->id = id;
    return rc;
}

static int pg_stream_append(parley_db_t *db, int64_t id, const void *data, size_t len,
                            uint64_t units, int64_t now_ms, const char *stream_seq,
                            int64_t expect_tail, uint64_t *new_tail)
{
    if (units > (uint64_t)OFFSET_MAX)
        return PARLEY_ETOOBIG;
    params_t p = {0};
    p_int(&p, id);
    p_int(&p, (int64_t)units);
    p_int(&p, now_ms);
    p_opt_text(&p, stream_seq);
    p_int(&p, expect_tail);
    p_int(&p, OFFSET_MAX);
    int64_t tail = 0;
    int rc = run_returning(db, S_A_STREAM_APPEND, &p, &tail, 1, "stream append");
    if (rc == PARLEY_ENOTFOUND) {
        /* Why no row matched: the row, locked by the update's attempt,
         * says; nothing was written. */
        parley_stream_t cur;
        rc = pg_stream_get_id(db, id, &cur);
        if (rc)
            return rc;
        return parley_store_append_refusal(&cur, stream_seq, expect_tail);
    }
    if (rc)
        return rc;
    uint64_t end = (uint64_t)tail, pos = end - units;
    if (units == 0)
        ;
    else if (units == len && len > ROW_BYTES) {
        for (size_t off = 0; rc == 0 && off < len; off += ROW_BYTES) {
            size_t n = len - off < ROW_BYTES ? len - off : ROW_BYTES;
            rc =
                pg_chunk_insert(db, id, pos + off, pos + off + n, end, (const char *)data + off, n);
        }
    } else {
        rc = pg_chunk_insert(db, id, pos, end, end, data, len);
    }
    if (rc == 0)
        *new_tail = end;
    return rc;
}

static int pg_stream_close(parley_db_t *db, int64_t id, const char *closer, uint64_t epoch,
                           uint64_t seq, int64_t now_ms, uint64_t *tail)
{
    bool named = closer && closer[0];
    params_t p = {0};
    p_int(&p, id);
    p_opt_text(&p, closer);
    p_int(&p, named ? (int64_t)epoch : 0);
    p_int(&p, named ? (int64_t)seq : 0);
    p_int(&p, now_ms);
    int64_t t = 0;
    int rc = run_returning(db, S_A_STREAM_CLOSE, &p, &t, 1, "stream close");
    if (rc == PARLEY_ENOTFOUND) { /* closed already (a no-op), or missing */
        parley_stream_t cur;
        rc = pg_stream_get_id(db, id, &cur);
        t = (int64_t)cur.tail;
    }
    if (rc == 0)
        *tail = (uint64_t)t;
    return rc;
}

static int pg_stream_touch(parley_db_t *db, int64_t id, int64_t now_ms)
{
    params_t p = {0};
    p_int(&p, id);
    p_int(&p, now_ms);
    int64_t t;
    return run_returning(db, S_A_STREAM_TOUCH, &p, &t, 1, "stream touch");
}

static int pg_stream_ref(parley_db_t *db, int64_t id, int delta, parley_stream_ref_t *out)
{
    params_t p = {0};
    p_int(&p, id);
    p_int(&p, delta);
    PGresult *r;
    int rc = run(db, S_A_STREAM_REF, &p, &r, "stream ref");
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        rc = PARLEY_ENOTFOUND;
    } else {
        out->refs = g_int(r, 0, 0);
        out->deleted = g_bool(r, 0, 1);
        out->fork_src = g_int(r, 0, 2);
    }
    PQclear(r);
    return rc;
}

static int pg_stream_mark_deleted(parley_db_t *db, int64_t id)
{
    params_t p = {0};
    p_int(&p, id);
    int64_t refs;
    int rc = run_returning(db, S_A_STREAM_MARK_DELETED, &p, &refs, 1, "stream soft delete");
    if (rc == PARLEY_ENOTFOUND) {
        parley_stream_t cur;
        rc = pg_stream_get_id(db, id, &cur);
        return rc ? rc : PARLEY_ECONFLICT; /* refs == 0: the caller removes it */
    }
    return rc;
}

/* Insert-if-absent: PARLEY_EEXIST while a live record (created at or after
 * expired_before_ms) holds the key, on this node or another. */
static int pg_idem_put(parley_db_t *db, const char *owner, const char *key, const char *fp,
                       int64_t now_ms, int64_t expired_before_ms, const char *blob, size_t len)
{
    params_t p = {0};
    p_text(&p, owner);
    p_text(&p, key);
    p_text(&p, fp);
    p_int(&p, now_ms);
    p_bytes(&p, blob, len);
    p_int(&p, expired_before_ms);
    int64_t one;
    int rc = run_returning(db, S_A_IDEM_PUT, &p, &one, 1, "idempotency store");
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
    params_t p = {0};
    p_int(&p, (int64_t)(h | (1ULL << 63)));
    PGresult *r;
    int rc = run(db, S_IDEM_HOLD, &p, &r, "idempotency key lock");
    if (rc)
        return rc;
    rc = PQntuples(r) == 1 && g_bool(r, 0, 0) ? 0 : PARLEY_ECONFLICT;
    PQclear(r);
    return rc;
}

/* Write a document if its version is still expect_version (0: it must not
 * exist); d->chg gets the new change number. PARLEY_ECONFLICT when it
 * moved. */
static int pg_doc_write(parley_db_t *db, parley_doc_t *d, int64_t expect_version)
{
    params_t p = {0};
    p_text(&p, d->owner);
    p_text(&p, d->collection);
    p_text(&p, d->id);
    p_int(&p, d->version);
    p_bool(&p, d->deleted);
    p_text(&p, d->data ? d->data : "null");
    p_text(&p, d->checksum);
    p_int(&p, d->created_ms);
    p_int(&p, d->updated_ms);
    if (expect_version > 0)
        p_int(&p, expect_version);
    int64_t chg = 0;
    int rc = run_returning(db, expect_version > 0 ? S_A_DOC_UPDATE : S_A_DOC_INSERT, &p, &chg, 1,
                           "document write");
    if (rc == PARLEY_ENOTFOUND)
        return PARLEY_ECONFLICT;
    if (rc == 0)
        d->chg = chg;
    return rc;
}

static int pg_conv_insert(parley_db_t *db, parley_conv_t *c)
{
    params_t p = {0};
    p_text(&p, c->id);
    p_text(&p, c->owner);
    p_text(&p, c->title);
    p_text(&p, c->metadata ? c->metadata : "{}");
    p_int(&p, c->version);
    p_int(&p, c->created_ms);
    p_int(&p, c->updated_ms);
    p_int(&p, c->message_count);
    p_opt_int(&p, c->last_message_ms);
    p_bool(&p, c->deleted);
    int64_t activity = 0;
    int rc = run_returning(db, S_A_CONV_INSERT, &p, &activity, 1, "conversation insert");
    if (rc == PARLEY_ENOTFOUND)
        return PARLEY_EEXIST;
    if (rc == 0)
        c->activity = activity;
    return rc;
}

/* Title and metadata, if the version is still expect_version; version + 1
 * written back into c. */
static int pg_conv_update(parley_db_t *db, parley_conv_t *c, int64_t expect_version)
{
    params_t p = {0};
    p_text(&p, c->id);
    p_text(&p, c->title);
    p_text(&p, c->metadata ? c->metadata : "{}");
    p_int(&p, c->updated_ms);
    p_int(&p, expect_version);
    int64_t version = 0;
    int rc = run_returning(db, S_A_CONV_UPDATE, &p, &version, 1, "conversation update");
    if (rc == PARLEY_ENOTFOUND) { /* missing, or moved or tombstoned */
        parley_conv_t cur = {0};
        rc = pg_conv_get(db, c->id, &cur);
        parley_conv_clear(&cur);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    if (rc == 0)
        c->version = version;
    return rc;
}

/* A new message: count + 1 (its seq), version + 1, a new activity. */
static int pg_conv_bump(parley_db_t *db, const char *id, int64_t now_ms, int64_t *seq,
                        int64_t *version, int64_t *activity)
{
    params_t p = {0};
    p_text(&p, id);
    p_int(&p, now_ms);
    int64_t v[3] = {0, 0, 0};
    int rc = run_returning(db, S_A_CONV_BUMP, &p, v, 3, "conversation bump");
    if (rc == PARLEY_ENOTFOUND) { /* missing, or a tombstone */
        parley_conv_t cur = {0};
        rc = pg_conv_get(db, id, &cur);
        parley_conv_clear(&cur);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    if (rc == 0) {
        *seq = v[0];
        *version = v[1];
        *activity = v[2];
    }
    return rc;
}

static int pg_conv_tombstone(parley_db_t *db, const char *id, int64_t now_ms, int64_t *version)
{
    params_t p = {0};
    p_text(&p, id);
    p_int(&p, now_ms);
    return run_returning(db, S_A_CONV_TOMBSTONE, &p, version, 1, "conversation delete");
}

static int pg_sess_insert(parley_db_t *db, parley_sess_t *s)
{
    params_t p = {0};
    p_text(&p, s->id);
    p_text(&p, s->conversation_id);
    p_text(&p, s->owner);
    p_text(&p, s->message_id);
    p_opt_text(&p, s->result_id);
    p_text(&p, s->status);
    p_int(&p, s->attempt);
    p_int(&p, s->max_attempts);
    p_int(&p, s->lease_ms);
    p_opt_int(&p, s->lease_expires_ms);
    p_text(&p, s->error);
    p_text(&p, s->request);
    p_text(&p, s->input);
    p_int(&p, s->created_ms);
    p_int(&p, s->updated_ms);
    int64_t ord = 0;
    int rc = run_returning(db, S_A_SESS_INSERT, &p, &ord, 1, "session insert");
    if (rc == PARLEY_ENOTFOUND)
        return PARLEY_EEXIST;
    if (rc == 0)
        s->ord = ord;
    return rc;
}

/* Every mutable column, if status and attempt are still the expected ones
 * (a worker whose lease was taken over is fenced out). */
static int pg_sess_update(parley_db_t *db, const parley_sess_t *s, const char *expect_status,
                          int64_t expect_attempt)
{
    params_t p = {0};
    p_text(&p, s->id);
    p_opt_text(&p, s->result_id);
    p_text(&p, s->status);
    p_int(&p, s->attempt);
    p_int(&p, s->lease_ms);
    p_opt_int(&p, s->lease_expires_ms);
    p_text(&p, s->error);
    p_text(&p, s->request);
    p_text(&p, s->input);
    p_int(&p, s->updated_ms);
    p_text(&p, expect_status);
    p_int(&p, expect_attempt);
    int64_t ord;
    int rc = run_returning(db, S_A_SESS_UPDATE, &p, &ord, 1, "session update");
    if (rc == PARLEY_ENOTFOUND) { /* moved, or missing */
        parley_sess_t cur = {0};
        rc = pg_sess_get(db, s->id, &cur);
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
    params_t p = {0};
    p_int(&p, now_ms);
    p_int(&p, lease_ms);
    if (conv_id)
        p_text(&p, conv_id);
    PGresult *r;
    int rc = run(db, conv_id ? S_A_SESS_CLAIM_CONV : S_A_SESS_CLAIM, &p, &r, "session claim");
    if (rc)
        return rc;
    char id[PARLEY_ROW_ID_MAX + 1];
    if (PQntuples(r) == 0)
        rc = PARLEY_ENOTFOUND;
    else
        g_copy(id, sizeof id, r, 0, 0);
    PQclear(r);
    return rc ? rc : pg_sess_get(db, id, out);
}

static int pg_snap_insert(parley_db_t *db, parley_snap_t *s)
{
    params_t p = {0};
    p_text(&p, s->id);
    p_text(&p, s->owner);
    p_text(&p, s->source);
    p_text(&p, s->kind);
    p_text(&p, s->title);
    p_bool(&p, s->is_public);
    p_int(&p, s->created_ms);
    p_opt_int(&p, s->expires_ms);
    p_opt_text(&p, s->stream);
    p_text(&p, s->payload ? s->payload : "{}");
    int64_t ord = 0;
    int rc = run_returning(db, S_A_SNAP_INSERT, &p, &ord, 1, "snapshot insert");
    if (rc == PARLEY_ENOTFOUND)
        return PARLEY_EEXIST;
    if (rc == 0)
        s->ord = ord;
    return rc;
}

/* Payload {}, stream "" (its fork is removed by the caller). */
static int pg_snap_expire(parley_db_t *db, const char *id)
{
    params_t p = {0};
    p_text(&p, id);
    int64_t ord;
    return run_returning(db, S_A_SNAP_EXPIRE, &p, &ord, 1, "snapshot expire");
}

/* Insert, or change the configuration columns of, a subscription; its
 * delivery state is left as it is. */
static int pg_sub_put_config(parley_db_t *db, const parley_sub_t *s)
{
    params_t p = {0};
    p_text(&p, s->id);
    p_text(&p, s->type);
    p_opt_text(&p, s->pattern);
    p_opt_text(&p, s->webhook_url);
    p_opt_text(&p, s->wake_stream);
    p_opt_text(&p, s->description);
    p_int(&p, s->lease_ttl_ms);
    p_text(&p, s->config_hash);
    p_text(&p, s->root_url);
    p_int(&p, s->created_ms);
    p_int(&p, s->generation);
    p_opt_text(&p, s->wake_id);
    p_opt_text(&p, s->holder);
    p_opt_int(&p, s->lease_expires_ms);
    p_opt_int(&p, s->delivery_due_ms);
    p_int(&p, s->attempts);
    return run(db, S_A_SUB_PUT_CONFIG, &p, NULL, "subscription store");
}

/* Start a wake on an idle subscription: generation + 1 into *generation.
 * PARLEY_ECONFLICT when a wake is already in flight. */
static int pg_sub_begin_wake(parley_db_t *db, const char *id, const char *wake_id,
                             int64_t lease_exp_ms, int64_t due_ms, int64_t *generation)
{
    params_t p = {0};
    p_text(&p, id);
    p_text(&p, wake_id);
    p_int(&p, lease_exp_ms < 0 ? -1 : lease_exp_ms);
    p_int(&p, due_ms < 0 ? -1 : due_ms);
    int rc = run_returning(db, S_A_SUB_BEGIN_WAKE, &p, generation, 1, "subscription wake");
    if (rc == PARLEY_ENOTFOUND) {
        parley_sub_t cur;
        rc = pg_sub_get(db, id, &cur);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    return rc;
}

/* The delivery state, if the generation and the wake in flight are still
 * the expected ones; PARLEY_ECONFLICT: fenced. */
static int pg_sub_update(parley_db_t *db, const parley_sub_t *s, int64_t expect_generation,
                         const char *expect_wake_id)
{
    params_t p = {0};
    p_text(&p, s->id);
    p_opt_text(&p, s->wake_id);
    p_opt_text(&p, s->holder);
    p_opt_int(&p, s->lease_expires_ms);
    p_opt_int(&p, s->delivery_due_ms);
    p_int(&p, s->attempts);
    p_int(&p, expect_generation);
    p_text(&p, expect_wake_id ? expect_wake_id : "");
    int64_t g;
    int rc = run_returning(db, S_A_SUB_UPDATE, &p, &g, 1, "subscription update");
    if (rc == PARLEY_ENOTFOUND) { /* fenced, or missing */
        parley_sub_t *cur = malloc(sizeof *cur);
        if (!cur)
            return PARLEY_ENOMEM;
        rc = pg_sub_get(db, s->id, cur);
        free(cur);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    return rc;
}

static int pg_sublink_advance(parley_db_t *db, const char *sub, const char *path, uint64_t pos)
{
    params_t p = {0};
    p_text(&p, sub);
    p_text(&p, path);
    p_int(&p, (int64_t)pos);
    int64_t acked;
    int rc = run_returning(db, S_A_LINK_ADVANCE, &p, &acked, 1, "subscription advance");
    if (rc == PARLEY_ENOTFOUND) { /* backwards or past the tail, or no link */
        parley_sub_link_t l;
        rc = pg_sublink_get(db, sub, path, &l);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    return rc;
}

/* The PostgreSQL backend (store.h). */
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
    .stream_get = pg_stream_get,
    .stream_get_id = pg_stream_get_id,
    .stream_create = pg_stream_create,
    .stream_append = pg_stream_append,
    .stream_close = pg_stream_close,
    .stream_touch = pg_stream_touch,
    .stream_ref = pg_stream_ref,
    .stream_mark_deleted = pg_stream_mark_deleted,
    .stream_remove = pg_stream_remove,
    .stream_expired = pg_stream_expired,
    .stream_scan = pg_stream_scan,
    .chunk_scan = pg_chunk_scan,
    .producer_get = pg_producer_get,
    .producer_put = pg_producer_put,
    .idem_get = pg_idem_get,
    .idem_put = pg_idem_put,
    .idem_purge = pg_idem_purge,
    .idem_hold = pg_idem_hold,
    .doc_get = pg_doc_get,
    .doc_write = pg_doc_write,
    .doc_list = pg_doc_list,
    .conv_get = pg_conv_get,
    .conv_insert = pg_conv_insert,
    .conv_update = pg_conv_update,
    .conv_bump = pg_conv_bump,
    .conv_tombstone = pg_conv_tombstone,
    .conv_list = pg_conv_list,
    .sess_get = pg_sess_get,
    .sess_insert = pg_sess_insert,
    .sess_update = pg_sess_update,
    .sess_claim_next = pg_sess_claim_next,
    .sess_remove = pg_sess_remove,
    .sess_list = pg_sess_list,
    .sess_expired = pg_sess_expired,
    .snap_get = pg_snap_get,
    .snap_insert = pg_snap_insert,
    .snap_expire = pg_snap_expire,
    .snap_remove = pg_snap_remove,
    .snap_list = pg_snap_list,
    .snap_expired = pg_snap_expired,
    .sub_get = pg_sub_get,
    .sub_put_config = pg_sub_put_config,
    .sub_begin_wake = pg_sub_begin_wake,
    .sub_update = pg_sub_update,
    .sub_remove = pg_sub_remove,
    .sub_with_pattern = pg_sub_with_pattern,
    .sub_leases_expired = pg_sub_leases_expired,
    .sub_deliveries_due = pg_sub_deliveries_due,
    .sub_next_delivery = pg_sub_next_delivery,
    .sublink_get = pg_sublink_get,
    .sublink_put = pg_sublink_put,
    .sublink_advance = pg_sublink_advance,
    .sublink_remove = pg_sublink_remove,
    .sublink_list = pg_sublink_list,
    .sublink_snapshot = pg_sublink_snapshot,
    .sublink_ack_snapshot = pg_sublink_ack_snapshot,
    .sublink_first_pending = pg_sublink_first_pending,
    .key_get = pg_key_get,
    .key_put = pg_key_put,
};

const parley_store_ops_t *parley_store_pg_ops(void)
{
    return &pg_ops;
}
