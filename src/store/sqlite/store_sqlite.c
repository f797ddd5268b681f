/*
 * store_sqlite.c — the storage interface on embedded SQLite.
 *
 * NOTES ON THE DESIGN
 *
 * Files. The URL "sqlite:PATH" names the database file (with its -wal and
 * -shm files beside it; the server's default is <data dir>/parley.db). A
 * lock file beside it (parley.db -> parley.lock) is held with
 * flock(LOCK_EX) for the life of the process, so a second `parley serve`
 * on the same database is refused instead of sharing it with us.
 *
 * The backend is the table sqlite_ops at the end of this file (store.h's
 * parley_store_ops_t); store.c reaches it through store_sqlite.h.
 *
 * Durability. journal_mode=WAL and synchronous=FULL: COMMIT returns after
 * the WAL is fsynced. The writer connection is the only one that writes;
 * readers are opened read-only, each on its own thread, and see the last
 * committed snapshot. Checkpoints are not run by SQLite on the committing
 * connection (wal_autocheckpoint is off): the checkpointer thread
 * (checkpointer.c) copies the WAL back on a connection of its own, off the
 * commit path. Readers hold no long transactions, so checkpoints are never
 * starved and the WAL is reused from its start once fully copied back;
 * journal_size_limit trims the file after a burst.
 *
 * Layout. streams: one row per stream, a view over stream_rows (path,
 * owner, content type, closed, TTL, fork, refs...) joined with
 * stream_tails (tail, touched_ms, stream_seq: what an append changes, kept
 * narrow so that the commit's one write per stream moved is cheap; see
 * tails_sql). chunks: the stored bytes, one row per
 * append (a JSON append's messages comma-separated in one row), indexed by
 * (stream_id, end_pos) so that "the chunk holding position p" is the first
 * row with end_pos > p. chunks is a rowid table on purpose: rows land at
 * the end of the table in commit order whatever their stream, and a 1 KiB
 * row fits in a table leaf (a WITHOUT ROWID row of that size would spill to
 * an overflow page, several times the bytes written per append).
 * producers: idempotent producer state per (stream, producer).
 * conversations, sessions, snapshots: the chat model's rows; a
 * conversation's messages and a session's output are not rows but internal
 * streams ("_parley/conv/<id>", "_parley/session/<id>"), and a conversation
 * snapshot's messages are a fork of the conversation's stream.
 * subscriptions, subscription_streams: subscriptions with their delivery
 * state, and one cursor per (subscription, stream path); server_keys: the
 * webhook signing key and the callback-token secret.
 *
 * Statements. Every op is one or a few statements of stmt_sql, prepared
 * lazily on each connection. A row's columns are never listed here: the
 * SQL says "{stream}", "{conv}"... and the shared column maps
 * (store/columns.h) write the list at prepare time, bind rows ('r') and
 * read them back in the same order. The ops that both backends run the
 * same way (gets, lists, scans, deletes, the stream append, close and
 * ref...) are store/sqlops.c's, over this backend's SQL for the shared
 * statements (enum parley_sql_stmt) and its runner, query(), which the
 * connection struct carries; query() is the one function that binds,
 * steps and resets a statement. The ops here (inserts, the counters,
 * conditional updates and why they missed, the chunk scan) are a line or
 * a few over the shapes of columns.c through the same query().
 *
 * Invariants:
 *   1. For every stream, its chunks tile [fork_pos or 0, tail) without gaps
 *      or overlaps (the writer appends at tail and moves tail to the end).
 *   2. Stream ids are AUTOINCREMENT and never reused, so an ETag that
 *      names a stream id can never match a later stream at the same path.
 *   3. Every prepared statement is reset after use: no statement keeps a
 *      read transaction open between calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parley/parley.h"
#include "store/columns.h"
#include "store/sqlops.h"
#include "store/store.h"
#include "store/sqlite/checkpointer.h"
#include "store/sqlite/rowcache.h"
#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/store_sqlite.h"
#include "util/log.h"

/* The SQLite store: parley_store_t's ops point at sqlite_ops. */
typedef struct sqlite_store {
    parley_store_t base;                 /* ops (first: the store.h wrappers read it) */
    char *file;                          /* path of the database file */
    int lock_fd;                         /* flock'd lock file beside it */
    parley_db_t *writer;                 /* the one write connection */
    parley_db_t *ckpt;                   /* the checkpointer's connection, opened on first use */
    bool (*wal_fn)(void *, int);         /* told the WAL size after each commit */
    void *wal_arg;                       /* for wal_fn */
    parley_checkpointer_t *checkpointer; /* between the start and stop ops */
} sqlite_store_t;

static const parley_store_ops_t sqlite_ops;

enum stmt_id {
    S_BEGIN = PARLEY_Q_COUNT, /* after the shared statements (store/sqlops.h) */
    S_BEGIN_READ,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_STREAM_INSERT,
    S_STREAM_ID,
    S_CHUNK_SCAN,
    S_IDEM_PUT,
    S_DOC_WRITE,
    S_COUNTER_NEXT,
    S_COUNTER_GET,
    S_COUNTER_SET,
    S_CONV_INSERT,
    S_CONV_UPDATE,
    S_CONV_BUMP,
    S_CONV_TOUCH,
    S_SESS_INSERT,
    S_SESS_UPDATE,
    S_SESS_CLAIM,
    S_SESS_CLAIM_CONV,
    S_SNAP_INSERT,
    S_SUB_BEGIN_WAKE,
    S_SUB_UPDATE,
    S_KEY_PUT,
    S_STREAM_ADVANCE,
    S_DATA_VERSION,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT req",
    [S_RELEASE] = "RELEASE req",
    [S_ROLLBACK_TO] = "ROLLBACK TO req",
    [PARLEY_Q_STREAM_GET] = "SELECT {stream} FROM streams WHERE path = ?1",
    [PARLEY_Q_STREAM_GET_ID] = "SELECT {stream} FROM streams WHERE id = ?1",
    [S_STREAM_INSERT] = "INSERT INTO streams ({stream-}) VALUES (?1, ?2, ?3, ?4, "
                        "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    [S_STREAM_ID] = "SELECT id FROM stream_rows WHERE path = ?1",
    [PARLEY_Q_STREAM_APPEND] =
        "UPDATE stream_tails SET tail = tail + ?2, touched_ms = ?3, "
        "stream_seq = coalesce(?4, stream_seq) WHERE id = ?1 AND EXISTS (SELECT 1 FROM "
        "stream_rows r WHERE r.id = ?1 AND r.closed = 0 AND r.deleted = 0) "
        "AND (?4 IS NULL OR stream_seq IS NULL OR stream_seq < ?4) "
        "AND (?5 < 0 OR tail = ?5) AND tail + ?2 <= ?6 RETURNING tail",
    [S_STREAM_ADVANCE] = "UPDATE stream_tails SET tail = ?2, touched_ms = ?3, "
                         "stream_seq = coalesce(?4, stream_seq) WHERE id = ?1",
    [S_DATA_VERSION] = "PRAGMA data_version",
    [PARLEY_Q_STREAM_CLOSE] = "UPDATE streams SET closed = 1, closer = ?2, closer_epoch = ?3, "
                              "closer_seq = ?4, touched_ms = ?5 WHERE id = ?1 AND closed = 0 "
                              "RETURNING tail",
    [PARLEY_Q_STREAM_TOUCH] = "UPDATE stream_tails SET touched_ms = max(touched_ms, ?2) WHERE "
                              "id = ?1 RETURNING tail",
    [PARLEY_Q_STREAM_REF] = "UPDATE streams SET refs = max(refs + ?2, 0) WHERE id = ?1 "
                            "RETURNING {ref}",
    [PARLEY_Q_STREAM_MARK_DELETED] = "UPDATE streams SET deleted = 1 WHERE id = ?1 AND refs > 0 "
                                     "RETURNING refs",
    [PARLEY_Q_STREAM_DEL] = "DELETE FROM streams WHERE id = ?1",
    [PARLEY_Q_STREAM_DEL_CHUNKS] = "DELETE FROM chunks WHERE stream_id = ?1",
    [PARLEY_Q_STREAM_DEL_PRODUCERS] = "DELETE FROM producers WHERE stream_id = ?1",
    [PARLEY_Q_STREAM_EXPIRED] = "SELECT id FROM streams WHERE deleted = 0 AND "
                                "((expires_ms IS NOT NULL AND expires_ms <= ?1) OR "
                                "(ttl_s IS NOT NULL AND touched_ms + ttl_s * 1000 <= ?1)) LIMIT ?2",
    [PARLEY_Q_CHUNK_INSERT] = "INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) "
                              "VALUES (?1, ?2, ?3, ?4, ?5)",
    [PARLEY_Q_CHUNK_TRIM] = "DELETE FROM chunks WHERE stream_id = ?1 AND end_pos <= ?2",
    [S_CHUNK_SCAN] = "SELECT start_pos, end_pos, unit_end, data FROM chunks "
                     "WHERE stream_id = ?1 AND end_pos > ?2 ORDER BY end_pos",
    [PARLEY_Q_PRODUCER_GET] = "SELECT {producer} FROM producers WHERE stream_id = ?1 AND "
                              "producer = ?2",
    [PARLEY_Q_PRODUCER_PUT] = "INSERT INTO producers (stream_id, producer, epoch, last_seq) "
                              "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (stream_id, producer) DO UPDATE "
                              "SET epoch = excluded.epoch, last_seq = excluded.last_seq",
    [PARLEY_Q_IDEM_GET] = "SELECT {idem} FROM idempotency "
                          "WHERE owner = ?1 AND key = ?2",
    [S_IDEM_PUT] =
        "INSERT INTO idempotency (owner, key, fingerprint, created_ms, response) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (owner, key) DO UPDATE SET "
        "fingerprint = excluded.fingerprint, created_ms = excluded.created_ms, response = "
        "excluded.response WHERE idempotency.created_ms < ?6",
    [PARLEY_Q_IDEM_PURGE] = "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                            "WHERE created_ms < ?1 LIMIT ?2)",
    [PARLEY_Q_DOC_GET] =
        "SELECT {doc} FROM documents WHERE owner = ?1 AND collection = ?2 AND id = ?3",
    [PARLEY_Q_DOC_LIST] = "SELECT {doc} FROM documents "
                          "WHERE owner = ?1 AND collection = ?2 AND deleted = 0 AND chg < ?3 "
                          "ORDER BY chg DESC LIMIT ?4",
    [S_COUNTER_NEXT] = "INSERT INTO counters (name, value) VALUES (?1, 1) ON CONFLICT (name) "
                       "DO UPDATE SET value = value + 1 RETURNING value",
    [S_COUNTER_GET] = "SELECT value FROM counters WHERE name = ?1",
    [S_COUNTER_SET] = "INSERT INTO counters (name, value) VALUES (?1, ?2) ON CONFLICT (name) "
                      "DO UPDATE SET value = max(value, excluded.value)",
    [PARLEY_Q_CONV_GET] = "SELECT {conv} FROM conversations WHERE id = ?1",
    [PARLEY_Q_CONV_LIST] = "SELECT {conv} FROM conversations WHERE owner = ?1 AND deleted = 0 "
                           "AND activity < ?2 ORDER BY activity DESC LIMIT ?3",
    [PARLEY_Q_SESS_GET] = "SELECT {sess} FROM sessions WHERE id = ?1",
    [PARLEY_Q_SESS_DEL] = "DELETE FROM sessions WHERE id = ?1",
    [PARLEY_Q_SESS_LIST] = "SELECT {sess} FROM sessions WHERE conversation_id = ?1 AND ord < ?2 "
                           "ORDER BY ord DESC LIMIT ?3",
    [PARLEY_Q_SESS_LIST_STATUS] = "SELECT {sess} FROM sessions WHERE conversation_id = ?1 AND "
                                  "ord < ?2 AND status = ?4 ORDER BY ord DESC LIMIT ?3",
    [PARLEY_Q_SESS_EXPIRED] = "SELECT id FROM sessions WHERE lease_expires_ms IS NOT NULL AND "
                              "lease_expires_ms <= ?1 AND status = 'processing' "
                              "ORDER BY lease_expires_ms LIMIT ?2",
    [PARLEY_Q_SNAP_GET] = "SELECT {snap} FROM snapshots WHERE id = ?1",
    [S_DOC_WRITE] = "INSERT INTO documents ({doc}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                    "?8, ?9, ?10) ON CONFLICT (owner, collection, id) DO UPDATE SET "
                    "version = excluded.version, deleted = excluded.deleted, data = "
                    "excluded.data, checksum = excluded.checksum, created_ms = "
                    "excluded.created_ms, updated_ms = excluded.updated_ms, chg = excluded.chg "
                    "WHERE documents.version = ?11",
    [S_CONV_INSERT] = "INSERT INTO conversations ({conv}) VALUES (?1, ?2, ?3, ?4, ?5, "
                      "?6, ?7, ?8, ?9, ?10, ?11)",
    [S_CONV_UPDATE] = "UPDATE conversations SET title = ?2, metadata = ?3, updated_ms = ?4, "
                      "version = version + 1 WHERE id = ?1 AND version = ?5 AND deleted = 0 "
                      "RETURNING version",
    [S_CONV_BUMP] = "UPDATE conversations SET message_count = message_count + 1, version = "
                    "version + 1, last_message_ms = ?2, updated_ms = ?2, activity = ?3 "
                    "WHERE id = ?1 AND deleted = 0 RETURNING message_count, version, activity",
    [S_CONV_TOUCH] = "UPDATE conversations SET version = version + 1, last_message_ms = ?2, "
                     "updated_ms = ?2, activity = ?3 WHERE id = ?1 AND deleted = 0 "
                     "RETURNING message_count, version, activity",
    [PARLEY_Q_CONV_TOMBSTONE] =
        "UPDATE conversations SET title = NULL, metadata = '{}', deleted = 1, "
        "version = version + 1, updated_ms = ?2 WHERE id = ?1 RETURNING version",
    [S_SESS_INSERT] = "INSERT INTO sessions ({sess}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                      "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [S_SESS_UPDATE] = "UPDATE sessions SET result_id = ?2, status = ?3, attempt = ?4, lease_ms = "
                      "?5, lease_expires_ms = ?6, error = ?7, request = ?8, input = ?9, "
                      "updated_ms = ?10 WHERE id = ?1 AND status = ?11 AND attempt = ?12 "
                      "RETURNING attempt",
    [S_SESS_CLAIM] = "UPDATE sessions SET status = 'processing', lease_ms = ?2, lease_expires_ms "
                     "= ?1 + ?2, updated_ms = ?1 WHERE id = (SELECT id FROM sessions WHERE "
                     "status = 'pending' ORDER BY ord LIMIT 1) RETURNING {sess}",
    [S_SESS_CLAIM_CONV] = "UPDATE sessions SET status = 'processing', lease_ms = ?2, "
                          "lease_expires_ms = ?1 + ?2, updated_ms = ?1 WHERE id = (SELECT id "
                          "FROM sessions WHERE conversation_id = ?3 AND status = 'pending' "
                          "ORDER BY ord LIMIT 1) RETURNING {sess}",
    [S_SNAP_INSERT] = "INSERT INTO snapshots ({snap}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                      "?7, ?8, ?9, ?10, ?11)",
    [PARLEY_Q_SNAP_EXPIRE] = "UPDATE snapshots SET payload = '{}', stream = NULL WHERE id = ?1 "
                             "RETURNING ord",
    [PARLEY_Q_SNAP_DEL] = "DELETE FROM snapshots WHERE id = ?1",
    [PARLEY_Q_SNAP_LIST] = "SELECT {snap} FROM snapshots WHERE owner = ?1 AND ord < ?2 "
                           "ORDER BY ord DESC LIMIT ?3",
    [PARLEY_Q_SNAP_EXPIRED] =
        "SELECT id FROM snapshots WHERE expires_ms IS NOT NULL AND "
        "expires_ms <= ?1 AND stream IS NOT NULL ORDER BY expires_ms LIMIT ?2",
    [PARLEY_Q_VISIT_ADD] =
        "INSERT INTO snapshot_visits (snapshot_id, view_count, last_viewed_ms, deleted) "
        "VALUES (?1, 1, ?2, 0) ON CONFLICT (snapshot_id) DO UPDATE SET view_count = "
        "view_count + 1, last_viewed_ms = max(last_viewed_ms, excluded.last_viewed_ms) "
        "WHERE deleted = 0 RETURNING view_count",
    [PARLEY_Q_VISIT_GET] = "SELECT view_count, last_viewed_ms FROM snapshot_visits "
                           "WHERE snapshot_id = ?1 AND deleted = 0",
    [PARLEY_Q_VISIT_DEL] = "UPDATE snapshot_visits SET deleted = 1 WHERE snapshot_id = ?1",
    [PARLEY_Q_SUB_GET] = "SELECT {sub} FROM subscriptions WHERE id = ?1",
    [PARLEY_Q_SUB_PUT_CONFIG] =
        "INSERT INTO subscriptions ({sub}) VALUES (?1, ?2, ?3, ?4, ?5, "
        "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT (id) DO "
        "UPDATE SET type = excluded.type, pattern = excluded.pattern, "
        "webhook_url = excluded.webhook_url, wake_stream = "
        "excluded.wake_stream, description = excluded.description, "
        "lease_ttl_ms = excluded.lease_ttl_ms, config_hash = "
        "excluded.config_hash, root_url = excluded.root_url",
    [S_SUB_BEGIN_WAKE] = "UPDATE subscriptions SET generation = generation + 1, wake_id = ?2, "
                         "holder = NULL, lease_expires_ms = ?3, delivery_due_ms = ?4, attempts "
                         "= 0 WHERE id = ?1 AND wake_id IS NULL RETURNING generation",
    [S_SUB_UPDATE] = "UPDATE subscriptions SET wake_id = ?2, holder = ?3, lease_expires_ms = ?4, "
                     "delivery_due_ms = ?5, attempts = ?6 WHERE id = ?1 AND generation = ?7 AND "
                     "coalesce(wake_id, '') = ?8 RETURNING generation",
    [PARLEY_Q_LINK_ADVANCE] =
        "UPDATE subscription_streams SET acked = ?3 WHERE sub_id = ?1 AND path = "
        "?2 AND acked <= ?3 AND ?3 <= coalesce((SELECT tail FROM streams WHERE "
        "streams.path = ?2 AND deleted = 0), 0) RETURNING acked",
    [PARLEY_Q_SUB_DEL] = "DELETE FROM subscriptions WHERE id = ?1",
    [PARLEY_Q_SUB_DEL_LINKS] = "DELETE FROM subscription_streams WHERE sub_id = ?1",
    [PARLEY_Q_SUB_PATTERNS] = "SELECT {sub} FROM subscriptions WHERE pattern IS NOT NULL",
    [PARLEY_Q_SUB_LEASES] = "SELECT id FROM subscriptions WHERE lease_expires_ms IS NOT NULL AND "
                            "lease_expires_ms <= ?1 AND delivery_due_ms IS NULL "
                            "ORDER BY lease_expires_ms LIMIT ?2",
    [PARLEY_Q_SUB_DUE] = "SELECT id FROM subscriptions WHERE delivery_due_ms IS NOT NULL AND "
                         "delivery_due_ms <= ?1 ORDER BY delivery_due_ms LIMIT ?2",
    [PARLEY_Q_SUB_NEXT_DUE] = "SELECT min(delivery_due_ms) FROM subscriptions",
    [PARLEY_Q_LINK_GET] = "SELECT {link} FROM subscription_streams WHERE sub_id = ?1 AND "
                          "path = ?2",
    [PARLEY_Q_LINK_PUT] = "INSERT OR REPLACE INTO subscription_streams ({link}) VALUES (?1, "
                          "?2, ?3, ?4, ?5, ?6)",
    [PARLEY_Q_LINK_DEL] = "DELETE FROM subscription_streams WHERE sub_id = ?1 AND path = ?2",
    [PARLEY_Q_LINK_LIST_SUB] = "SELECT {link} FROM subscription_streams WHERE sub_id = ?1 "
                               "ORDER BY path",
    [PARLEY_Q_LINK_LIST_PATH] = "SELECT {link} FROM subscription_streams WHERE path = ?1 "
                                "ORDER BY sub_id",
    [PARLEY_Q_LINK_SNAPSHOT] =
        "UPDATE subscription_streams SET wake_tail = coalesce((SELECT tail FROM "
        "streams WHERE streams.path = subscription_streams.path AND deleted = 0), "
        "0) WHERE sub_id = ?1",
    [PARLEY_Q_LINK_ACK_SNAPSHOT] =
        "UPDATE subscription_streams SET acked = max(acked, min(wake_tail, "
        "coalesce((SELECT tail FROM streams WHERE streams.path = "
        "subscription_streams.path AND deleted = 0), 0))) WHERE sub_id = ?1 "
        "AND wake_tail IS NOT NULL AND wake_tail > acked",
    [PARLEY_Q_LINK_PENDING] =
        "SELECT l.path FROM subscription_streams l JOIN streams s ON s.path = "
        "l.path WHERE l.sub_id = ?1 AND s.deleted = 0 AND s.tail > l.acked "
        "ORDER BY l.path LIMIT 1",
    [PARLEY_Q_STREAM_SCAN] = "SELECT {stream} FROM streams WHERE path >= ?1 AND deleted = 0 "
                             "ORDER BY path",
    [PARLEY_Q_KEY_GET] = "SELECT {key} FROM server_keys WHERE name = ?1",
    [S_KEY_PUT] = "INSERT INTO server_keys (name, secret, created_ms) VALUES (?1, ?2, ?3)",
    [PARLEY_Q_BLOB_STAGE] = "INSERT INTO blob_uploads (owner, touched_ms) VALUES (?1, ?2) "
                            "RETURNING upload",
    [PARLEY_Q_BLOB_STAGE_TOUCH] = "UPDATE blob_uploads SET touched_ms = ?2 WHERE upload = ?1 "
                                  "RETURNING upload",
    [PARLEY_Q_BLOB_PART_PUT] = "INSERT OR REPLACE INTO blob_parts (upload, n, data) "
                               "VALUES (?1, ?2, ?3)",
    [PARLEY_Q_BLOB_UNSTAGE] = "DELETE FROM blob_uploads WHERE upload = ?1",
    [PARLEY_Q_BLOB_DEL_PARTS] = "DELETE FROM blob_parts WHERE upload = ?1",
    [PARLEY_Q_BLOB_UNSTAGE_PARTS] = "DELETE FROM blob_parts WHERE upload = ?1 AND EXISTS (SELECT "
                                    "1 FROM blob_uploads WHERE upload = ?1)",
    [PARLEY_Q_BLOB_GET] = "SELECT {blob} FROM blobs WHERE owner = ?1 AND id = ?2",
    [PARLEY_Q_BLOB_INSERT] = "INSERT OR IGNORE INTO blobs ({blob}) VALUES (?1, ?2, ?3, ?4, ?5, "
                             "?6, ?7)",
    [PARLEY_Q_BLOB_PART_GET] = "SELECT data FROM blob_parts WHERE upload = ?1 AND n = ?2",
    [PARLEY_Q_BLOB_USAGE] = "SELECT coalesce(sum(size), 0) FROM blobs WHERE owner = ?1",
    [PARLEY_Q_BLOB_REF_ADD] = "INSERT OR IGNORE INTO blob_refs (owner, blob_id, src) "
                              "VALUES (?1, ?2, ?3)",
    [PARLEY_Q_BLOB_REF_TOUCH] = "UPDATE blobs SET touched_ms = ?3 WHERE owner = ?1 AND id IN "
                                "(SELECT blob_id FROM blob_refs WHERE owner = ?1 AND src = ?2)",
    [PARLEY_Q_BLOB_REF_DEL] = "DELETE FROM blob_refs WHERE owner = ?1 AND src = ?2",
    [PARLEY_Q_BLOB_REF_COPY] = "INSERT OR IGNORE INTO blob_refs (owner, blob_id, src) SELECT "
                               "owner, blob_id, ?3 FROM blob_refs WHERE owner = ?1 AND src = ?2",
    [PARLEY_Q_BLOB_REF_HAS] = "SELECT count(*) FROM blob_refs WHERE owner = ?1 AND blob_id = ?2 "
                              "AND src = ?3",
    [PARLEY_Q_BLOB_LIST] = "SELECT {blob} FROM blobs WHERE owner = ?1 AND upload < ?2 "
                           "ORDER BY upload DESC LIMIT ?3",
    [PARLEY_Q_BLOB_REFERENCED] = "SELECT count(*) FROM (SELECT 1 FROM blob_refs WHERE "
                                 "owner = ?1 AND blob_id = ?2 LIMIT 1)",
    [PARLEY_Q_BLOB_UNREF] = "SELECT {blob} FROM blobs b WHERE touched_ms < ?1 AND NOT EXISTS "
                            "(SELECT 1 FROM blob_refs r WHERE r.owner = b.owner AND r.blob_id = "
                            "b.id) ORDER BY touched_ms LIMIT ?2",
    [PARLEY_Q_BLOB_DEL] = "DELETE FROM blobs WHERE owner = ?1 AND id = ?2 AND touched_ms < ?3 "
                          "AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.owner = ?1 AND "
                          "r.blob_id = ?2) RETURNING upload",
    [PARLEY_Q_BLOB_TOUCH] = "UPDATE blobs SET touched_ms = max(touched_ms, ?3) WHERE owner = ?1 "
                            "AND id = ?2",
    [PARLEY_Q_BLOB_STALE] = "SELECT upload FROM blob_uploads WHERE touched_ms < ?1 ORDER BY "
                            "touched_ms LIMIT ?2",
    [PARLEY_Q_STAT_SUBS] = "SELECT count(*) FILTER (WHERE type = 'webhook'), count(*) FILTER "
                           "(WHERE type = 'pull-wake') FROM subscriptions",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS streams ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  path TEXT NOT NULL UNIQUE,"
    "  owner TEXT NOT NULL DEFAULT '',"
    "  content_type TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  touched_ms INTEGER NOT NULL,"
    "  ttl_s INTEGER,"
    "  expires_ms INTEGER,"
    "  tail INTEGER NOT NULL DEFAULT 0,"
    "  closed INTEGER NOT NULL DEFAULT 0,"
    "  closer TEXT,"
    "  closer_epoch INTEGER,"
    "  closer_seq INTEGER,"
    "  stream_seq TEXT,"
    "  fork_src INTEGER,"
    "  fork_pos INTEGER NOT NULL DEFAULT 0,"
    "  refs INTEGER NOT NULL DEFAULT 0,"
    "  deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS chunks ("
    "  id INTEGER PRIMARY KEY,"
    "  stream_id INTEGER NOT NULL,"
    "  end_pos INTEGER NOT NULL,"
    "  start_pos INTEGER NOT NULL,"
    "  unit_end INTEGER NOT NULL,"
    "  data BLOB NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS chunks_pos ON chunks (stream_id, end_pos);"
    "CREATE TABLE IF NOT EXISTS producers ("
    "  stream_id INTEGER NOT NULL,"
    "  producer TEXT NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  last_seq INTEGER NOT NULL,"
    "  PRIMARY KEY (stream_id, producer)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    "  owner TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  fingerprint TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  response BLOB NOT NULL,"
    "  UNIQUE (owner, key));"
    "CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_ms);"
    "CREATE TABLE IF NOT EXISTS documents ("
    "  owner TEXT NOT NULL,"
    "  collection TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  data TEXT NOT NULL,"
    "  checksum TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  chg INTEGER NOT NULL,"
    "  PRIMARY KEY (owner, collection, id));"
    "CREATE INDEX IF NOT EXISTS documents_recent ON documents (owner, collection, chg);"
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS conversations ("
    "  id TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  title TEXT,"
    "  metadata TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  message_count INTEGER NOT NULL DEFAULT 0,"
    "  last_message_ms INTEGER,"
    "  activity INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS conversations_recent ON conversations (owner, activity);"
    "CREATE TABLE IF NOT EXISTS sessions ("
    "  id TEXT PRIMARY KEY,"
    "  conversation_id TEXT NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  message_id TEXT NOT NULL,"
    "  result_id TEXT,"
    "  status TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  max_attempts INTEGER NOT NULL,"
    "  lease_ms INTEGER NOT NULL DEFAULT 0,"
    "  lease_expires_ms INTEGER,"
    "  error TEXT,"
    "  request TEXT,"
    "  input TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  ord INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sessions_queue ON sessions (status, ord);"
    "CREATE INDEX IF NOT EXISTS sessions_conversation ON sessions (conversation_id, ord);"
    "CREATE INDEX IF NOT EXISTS sessions_lease ON sessions (lease_expires_ms) "
    "  WHERE lease_expires_ms IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS snapshots ("
    "  id TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  title TEXT,"
    "  public INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER,"
    "  stream TEXT,"
    "  payload TEXT NOT NULL,"
    "  ord INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS snapshots_owner ON snapshots (owner, ord);"
    "CREATE INDEX IF NOT EXISTS snapshots_expiry ON snapshots (expires_ms) "
    "  WHERE expires_ms IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS subscriptions ("
    "  id TEXT PRIMARY KEY,"
    "  type TEXT NOT NULL,"
    "  pattern TEXT,"
    "  webhook_url TEXT,"
    "  wake_stream TEXT,"
    "  description TEXT,"
    "  lease_ttl_ms INTEGER NOT NULL,"
    "  config_hash TEXT NOT NULL,"
    "  root_url TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  generation INTEGER NOT NULL DEFAULT 0,"
    "  wake_id TEXT,"
    "  holder TEXT,"
    "  lease_expires_ms INTEGER,"
    "  delivery_due_ms INTEGER,"
    "  attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS subscriptions_lease ON subscriptions (lease_expires_ms) "
    "  WHERE lease_expires_ms IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS subscriptions_due ON subscriptions (delivery_due_ms) "
    "  WHERE delivery_due_ms IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS subscription_streams ("
    "  sub_id TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  by_glob INTEGER NOT NULL DEFAULT 0,"
    "  by_explicit INTEGER NOT NULL DEFAULT 0,"
    "  acked INTEGER NOT NULL DEFAULT 0,"
    "  wake_tail INTEGER,"
    "  PRIMARY KEY (sub_id, path)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS subscription_streams_path ON subscription_streams (path);"
    "CREATE TABLE IF NOT EXISTS server_keys ("
    "  name TEXT PRIMARY KEY,"
    "  secret BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL);";

/* A counter the writer's open transaction numbers from in memory (see
 * next_counter): its row is written once, at COMMIT. */
typedef struct held_counter {
    const char *name; /* the counter's name (one of the COUNTER_* literals) */
    int64_t value;    /* the last number given out */
    int64_t saved;    /* value at the request's savepoint (sq_savepoint) */
} held_counter_t;

#define COUNTERS_HELD 4 /* counters a transaction holds at most (the others go to the row) */

/* A SQLite connection: parley_db_t's ops point at sqlite_ops. */
typedef struct sqlite_db {
    parley_sql_db_t sql;         /* ops and runner (first: the store.h wrappers read it) */
    sqlite3 *conn;               /* the SQLite connection */
    sqlite3_stmt *stmt[S_COUNT]; /* prepared lazily, reset after each use */
    sqlite3_stmt *own[PARLEY_SQLITE_OWN_STMTS]; /* the other files' (parley_sqlite_stmt) */
    bool writer;                                /* the one write connection */
    int search_queued;                          /* messages the open transaction queued to index */
    parley_rowcache_t *rows;                    /* writer: the stream rows it holds (rowcache.h) */
    bool own_write;                             /* writer: the change running is the cache's own */
    int64_t data_version; /* writer: PRAGMA data_version when the cache was last checked */
    int flush_err;        /* writer: a failed write of the cache's rows, for COMMIT */
    held_counter_t held[COUNTERS_HELD]; /* writer: counters the open transaction numbers from */
    int nheld;                          /* writer: entries of held in use */
    int nheld_saved;                    /* writer: nheld at the request's savepoint */
} sqlite_db_t;

static sqlite_db_t *sq(parley_db_t *db)
{
    return (sqlite_db_t *)db;
}

static sqlite_store_t *sq_store(parley_store_t *s)
{
    return (sqlite_store_t *)s;
}

/* Map a SQLite result code to a Parley error (logging unexpected ones). */
static int db_error(parley_db_t *db, int rc, const char *what);

static int flush_rows(parley_db_t *db);

sqlite3 *parley_sqlite_conn(parley_db_t *db)
{
    /* Its caller runs SQL directly: the tails the cache holds go first; a
     * failure fails the transaction's commit. */
    int rc = flush_rows(db);
    if (rc && !sq(db)->flush_err)
        sq(db)->flush_err = rc;
    return sq(db)->conn;
}

int parley_sqlite_error(parley_db_t *db, int rc, const char *what)
{
    return db_error(db, rc, what);
}

bool parley_sqlite_is_writer(parley_db_t *db)
{
    return sq(db)->writer;
}

int *parley_sqlite_search_queued(parley_db_t *db)
{
    return &sq(db)->search_queued;
}

int parley_sqlite_stmt(parley_db_t *db, int slot, const char *sql, sqlite3_stmt **out)
{
    if (slot < 0 || slot >= PARLEY_SQLITE_OWN_STMTS)
        return PARLEY_EINVAL;
    if (!sq(db)->own[slot]) {
        int rc = sqlite3_prepare_v3(sq(db)->conn, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &sq(db)->own[slot], NULL);
        if (rc != SQLITE_OK)
            return db_error(db, rc, "prepare");
    }
    *out = sq(db)->own[slot];
    return 0;
}

static int db_error(parley_db_t *db, int rc, const char *what)
{
    int prim = rc & 0xff;
    if (prim == SQLITE_FULL)
        return PARLEY_EFULL;
    if (prim == SQLITE_NOMEM)
        return PARLEY_ENOMEM;
    if (prim == SQLITE_CONSTRAINT)
        return PARLEY_EEXIST;
    parley_log_error("store: %.80s: %s (%d)", what,
                     db && sq(db)->conn ? sqlite3_errmsg(sq(db)->conn) : "", rc);
    return PARLEY_ESTORE;
}

static int prep(parley_db_t *db, enum stmt_id id, sqlite3_stmt **out)
{
    if (!sq(db)->stmt[id]) {
        char sql[2048]; /* the statement with its column lists written out */
        int rc = parley_sql_expand(stmt_sql[id], sql, sizeof sql);
        if (rc)
            return rc;
        rc = sqlite3_prepare_v3(sq(db)->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &sq(db)->stmt[id],
                                NULL);
        if (rc != SQLITE_OK)
            return db_error(db, rc, "prepare");
    }
    *out = sq(db)->stmt[id];
    return 0;
}

/* Run a statement that returns no rows. */
static int exec_stmt(parley_db_t *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, what);
    return 0;
}

static int exec_simple(parley_db_t *db, enum stmt_id id)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, id, &st);
    if (rc)
        return rc;
    return exec_stmt(db, st, stmt_sql[id]);
}

static int query(parley_db_t *db, int id, const parley_vals_t *vals, parley_query_t *q);

/* SQLite's update hook on the writer: a stream whose stream_rows or
 * stream_tails row is changed by anything but the cache's own write (the
 * streams view's triggers included: the hook names the tables they write)
 * is stale in the cache (rowcache.h, 2). */
static void on_update(void *arg, int op, const char *dbname, const char *table, sqlite3_int64 rowid)
{
    (void)op;
    (void)dbname;
    sqlite_db_t *c = arg;
    if (!c->own_write && (strcmp(table, "stream_tails") == 0 || strcmp(table, "stream_rows") == 0))
        parley_rowcache_stale(c->rows, rowid);
}

static int open_conn(const char *file, bool writer, parley_db_t **out)
{
    sqlite_db_t *c = calloc(1, sizeof *c);
    if (!c)
        return PARLEY_ENOMEM;
    c->sql.base.ops = &sqlite_ops;
    c->sql.query = query;
    c->writer = writer;
    parley_db_t *db = &c->sql.base;
    int flags = writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    flags |= SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(file, &sq(db)->conn, flags, parley_sqlite_sync_vfs());
    if (rc != SQLITE_OK) {
        int err = db_error(db, rc, "open");
        parley_db_close(db);
        return err;
    }
    sqlite3_busy_timeout(sq(db)->conn, 5000);
    sqlite3_extended_result_codes(sq(db)->conn, 1);
    if (writer) {
        rc = parley_rowcache_new(&c->rows);
        if (rc) {
            parley_db_close(db);
            return rc;
        }
        c->data_version = -1;
        sqlite3_update_hook(c->conn, on_update, c);
    }
    const char *pragmas = writer ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                   "PRAGMA foreign_keys=OFF; PRAGMA cache_size=-65536;"
                                   "PRAGMA wal_autocheckpoint=0;"
                                   "PRAGMA journal_size_limit=67108864;"
                                   "PRAGMA temp_store=MEMORY;"
                                 : "PRAGMA cache_size=-16384;";
    char *msg = NULL;
    rc = sqlite3_exec(sq(db)->conn, pragmas, NULL, NULL, &msg);
    if (rc == SQLITE_OK && writer) /* the search queue, in memory (search_sqlite.c) */
        rc = sqlite3_exec(sq(db)->conn, parley_sqlite_search_queue_sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        parley_log_error("store: %s", msg ? msg : "pragma failed");
        sqlite3_free(msg);
        parley_db_close(db);
        return PARLEY_ESTORE;
    }
    *out = db;
    return 0;
}

static void sq_db_close(parley_db_t *db)
{
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(sq(db)->stmt[i]);
    for (int i = 0; i < PARLEY_SQLITE_OWN_STMTS; i++)
        sqlite3_finalize(sq(db)->own[i]);
    sqlite3_close(sq(db)->conn);
    parley_rowcache_free(sq(db)->rows);
    free(db);
}

/*
 * Migrations. The schema is built by an ordered table of steps:
 * migrations[i] takes a database from version i to version i + 1 (step 0
 * creates the first schema), and meta.schema_version records the version a
 * database has reached. At open, every step above the recorded version runs
 * in one transaction (BEGIN IMMEDIATE), with the new version written in the
 * same transaction: a crash leaves the old version or the new one, never a
 * half-migrated store. A database whose version is above this build's
 * (written by a newer parley) is refused, never touched. A new schema
 * change is a new step at the end; a step already released never changes.
 */
/* Blobs (core/blob.h): a staged upload's parts live under its upload id
 * until the blob row that names the upload commits; blob_refs says which
 * messages, documents and snapshots name a blob (src: "c:<conversation>",
 * "d:<collection>/<id>", "s:<snapshot>"). */
static const char blobs_sql[] =
    "CREATE TABLE IF NOT EXISTS blob_uploads ("
    "  upload INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  owner TEXT NOT NULL,"
    "  touched_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS blob_parts ("
    "  upload INTEGER NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (upload, n)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS blobs ("
    "  owner TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  upload INTEGER NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  touched_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (owner, id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS blobs_touched ON blobs (touched_ms);"
    "CREATE TABLE IF NOT EXISTS blob_refs ("
    "  owner TEXT NOT NULL,"
    "  blob_id TEXT NOT NULL,"
    "  src TEXT NOT NULL,"
    "  PRIMARY KEY (owner, blob_id, src)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS blob_refs_src ON blob_refs (owner, src);";

/* 2 -> 3: snapshot visits, one record per snapshot (core/snapshot.h). */
static const char visits_sql[] = "CREATE TABLE IF NOT EXISTS snapshot_visits ("
                                 "  snapshot_id TEXT PRIMARY KEY,"
                                 "  view_count INTEGER NOT NULL,"
                                 "  last_viewed_ms INTEGER NOT NULL,"
                                 "  deleted INTEGER NOT NULL DEFAULT 0"
                                 ") WITHOUT ROWID;";

/*
 * 4 -> 5: a stream's tail, touched_ms and stream_seq (what an append
 * changes) move out of its wide row into a narrow one, stream_tails, so
 * that the writer's one write per stream per commit (flush_rows) rewrites a
 * 4-column record of a page that holds a hundred streams' tails, not the
 * 18-column row with its path, owner and content type. stream_rows keeps
 * the rest; "streams" becomes a view joining the two with the old table's
 * columns in the old order, so every read (the row gets and scans, the
 * subscription cursors, export, verify, search) reads it unchanged. Its
 * INSTEAD OF triggers take the rare writes through it (create, close, ref,
 * delete, user moves, imports) to the table(s) they concern. The hot
 * statements (the append, its flush, touch) write stream_tails directly.
 */
static const char tails_sql[] =
    "ALTER TABLE streams RENAME TO stream_rows;"
    "CREATE TABLE stream_tails ("
    "  id INTEGER PRIMARY KEY,"
    "  tail INTEGER NOT NULL DEFAULT 0,"
    "  touched_ms INTEGER NOT NULL,"
    "  stream_seq TEXT);"
    "INSERT INTO stream_tails (id, tail, touched_ms, stream_seq) "
    "  SELECT id, tail, touched_ms, stream_seq FROM stream_rows;"
    "ALTER TABLE stream_rows DROP COLUMN tail;"
    "ALTER TABLE stream_rows DROP COLUMN touched_ms;"
    "ALTER TABLE stream_rows DROP COLUMN stream_seq;"
    "CREATE VIEW streams AS SELECT r.id AS id, r.path AS path, r.owner AS owner,"
    "  r.content_type AS content_type, r.created_ms AS created_ms, t.touched_ms AS touched_ms,"
    "  r.ttl_s AS ttl_s, r.expires_ms AS expires_ms, t.tail AS tail, r.closed AS closed,"
    "  r.closer AS closer, r.closer_epoch AS closer_epoch, r.closer_seq AS closer_seq,"
    "  t.stream_seq AS stream_seq, r.fork_src AS fork_src, r.fork_pos AS fork_pos,"
    "  r.refs AS refs, r.deleted AS deleted"
    "  FROM stream_rows r JOIN stream_tails t ON t.id = r.id;"
    "CREATE TRIGGER streams_insert INSTEAD OF INSERT ON streams BEGIN"
    "  INSERT INTO stream_rows (id, path, owner, content_type, created_ms, ttl_s, expires_ms,"
    "    closed, closer, closer_epoch, closer_seq, fork_src, fork_pos, refs, deleted)"
    "  VALUES (NEW.id, NEW.path, coalesce(NEW.owner, ''), NEW.content_type, NEW.created_ms,"
    "    NEW.ttl_s, NEW.expires_ms, coalesce(NEW.closed, 0), NEW.closer, NEW.closer_epoch,"
    "    NEW.closer_seq, NEW.fork_src, coalesce(NEW.fork_pos, 0), coalesce(NEW.refs, 0),"
    "    coalesce(NEW.deleted, 0));"
    "  INSERT INTO stream_tails (id, tail, touched_ms, stream_seq)"
    "  VALUES (last_insert_rowid(), coalesce(NEW.tail, 0), NEW.touched_ms, NEW.stream_seq);"
    "END;"
    "CREATE TRIGGER streams_update_row INSTEAD OF UPDATE OF id, path, owner, content_type,"
    "  created_ms, ttl_s, expires_ms, closed, closer, closer_epoch, closer_seq, fork_src,"
    "  fork_pos, refs, deleted ON streams BEGIN"
    "  UPDATE stream_rows SET path = NEW.path, owner = NEW.owner,"
    "    content_type = NEW.content_type, created_ms = NEW.created_ms, ttl_s = NEW.ttl_s,"
    "    expires_ms = NEW.expires_ms, closed = NEW.closed, closer = NEW.closer,"
    "    closer_epoch = NEW.closer_epoch, closer_seq = NEW.closer_seq, fork_src = NEW.fork_src,"
    "    fork_pos = NEW.fork_pos, refs = NEW.refs, deleted = NEW.deleted WHERE id = OLD.id;"
    "END;"
    "CREATE TRIGGER streams_update_tail INSTEAD OF UPDATE OF tail, touched_ms, stream_seq"
    "  ON streams BEGIN"
    "  UPDATE stream_tails SET tail = NEW.tail, touched_ms = NEW.touched_ms,"
    "    stream_seq = NEW.stream_seq WHERE id = OLD.id;"
    "END;"
    "CREATE TRIGGER streams_delete INSTEAD OF DELETE ON streams BEGIN"
    "  DELETE FROM stream_tails WHERE id = OLD.id;"
    "  DELETE FROM stream_rows WHERE id = OLD.id;"
    "END;";

static const char *const migrations[] = {
    schema_sql,               /* 0 -> 1: the first schema */
    blobs_sql,                /* 1 -> 2: blobs, their parts, staged uploads and references */
    visits_sql,               /* 2 -> 3: snapshot visits */
    parley_sqlite_search_sql, /* 3 -> 4: search index, transfers */
    tails_sql,                /* 4 -> 5: tails apart from the stream rows (stream_tails) */
};
#define SCHEMA_VERSION ((int64_t)(sizeof migrations / sizeof migrations[0]))

/* The version conn's database records: 0 for a new (empty) database. */
static int read_version(sqlite3 *conn, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    *out = 0;
    int rc = sqlite3_prepare_v2(conn,
                                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                "name = 'meta'",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool has_meta = sqlite3_column_int(st, 0) > 0;
        sqlite3_finalize(st);
        st = NULL;
        if (!has_meta)
            return SQLITE_OK;
        rc = sqlite3_prepare_v2(conn, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
                                &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void log_newer(int64_t version)
{
    parley_log_error("store: the database's schema is version %lld, newer than this parley's "
                     "(version %lld): it was written by a newer parley; run that version (or a "
                     "later one), or restore a backup made by this one",
                     (long long)version, (long long)SCHEMA_VERSION);
}

/* Bring the database to SCHEMA_VERSION (see Migrations above). */
static int init_schema(parley_db_t *db)
{
    sqlite3 *conn = sq(db)->conn;
    char *msg = NULL;
    int64_t version = 0;
    int rc = sqlite3_exec(conn, "BEGIN IMMEDIATE", NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = read_version(conn, &version);
    if (rc == SQLITE_OK && version > SCHEMA_VERSION) {
        sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
        log_newer(version);
        return PARLEY_ECONFLICT;
    }
    for (int64_t v = version; rc == SQLITE_OK && v < SCHEMA_VERSION; v++) {
        rc = sqlite3_exec(conn, migrations[v], NULL, NULL, &msg);
        if (rc == SQLITE_OK && version > 0) /* an existing store, not a new one */
            parley_log_info("store: schema migrated from version %lld to %lld", (long long)v,
                            (long long)v + 1);
    }
    if (rc == SQLITE_OK && version < SCHEMA_VERSION) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "INSERT INTO meta (key, value) VALUES ('schema_version', '%lld') "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                 (long long)SCHEMA_VERSION);
        rc = sqlite3_exec(conn, sql, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(conn, "COMMIT", NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        parley_log_error("store: creating or migrating the schema: %s",
                         msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
        return PARLEY_ESTORE;
    }
    return 0;
}

/*
 * The integrity check at start-up (RELIABILITY.md item 5), in two parts so
 * that the time to the first served request does not grow with the bytes
 * stored:
 *
 *   - at open, before anything is served: SQLite's own WAL recovery (every
 *     frame's checksum), then PRAGMA quick_check of every table except
 *     chunks and blob_parts (the bytes), with its indexes: the rows that steer the server (stream
 *     tails, producers, sessions, idempotency records, ...). It grows with
 *     the number of those rows, not with the bytes appended.
 *   - chunks and blob_parts (the stored bytes with their overflow pages:
 *     nearly all of a large store) and the free list: the full PRAGMA quick_check, run by
 *     the checkpointer thread as soon as the server has started
 *     (parley_sqlite_quick_check). Damage found there stops the server like
 *     a failed fsync (on_fatal: the log names it, the exit code is not 0).
 *     Until it has finished (about a second per GiB with a warm cache), a
 *     read that meets a damaged page gets SQLite's SQLITE_CORRUPT, an
 *     error, never wrong bytes.
 *
 * `parley verify` still runs the whole integrity_check (indexes included).
 */
/* Progress handler of the background check: non-zero stops the statement. */
static int on_check_progress(void *arg)
{
    const atomic_bool *cancel = arg;
    return *cancel;
}

/* PRAGMA quick_check of one table and its indexes (all of the database
 * when table is NULL); a problem is logged and answered PARLEY_ESTORE. */
static int quick_check(parley_db_t *db, const char *table, const atomic_bool *cancel)
{
    sqlite3_stmt *st = NULL;
    char *sql = table ? sqlite3_mprintf("PRAGMA quick_check(%Q)", table)
                      : sqlite3_mprintf("PRAGMA quick_check");
    if (!sql)
        return PARLEY_ENOMEM;
    int rc = sqlite3_prepare_v2(sq(db)->conn, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return db_error(db, rc, "quick_check");
    if (cancel)
        sqlite3_progress_handler(sq(db)->conn, 10000, on_check_progress, (void *)cancel);
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r && strcmp(r, "ok") != 0) {
            parley_log_error("store: integrity check failed: %s", r);
            err = PARLEY_ESTORE;
        }
    }
    if (cancel)
        sqlite3_progress_handler(sq(db)->conn, 0, NULL, NULL);
    if (rc == SQLITE_INTERRUPT && cancel && atomic_load(cancel))
        rc = SQLITE_DONE; /* stopped on purpose: nothing found so far */
    if (rc != SQLITE_DONE && !err)
        err = db_error(db, rc, "quick_check");
    sqlite3_finalize(st);
    return err;
}

/* The part of the check that runs at open (see above). */
static int check_integrity(parley_db_t *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq(db)->conn,
                                "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                "name NOT IN ('chunks', 'blob_parts') ORDER BY name",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_error(db, rc, "quick_check");
    char *names[64];
    int n = 0, err = 0;
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == (int)(sizeof names / sizeof names[0])) {
            err = PARLEY_ESTORE; /* more tables than any schema of ours has */
            parley_log_error("store: integrity check failed: more than %d tables", n);
            break;
        }
        names[n] = strdup((const char *)sqlite3_column_text(st, 0));
        if (!names[n++])
            err = PARLEY_ENOMEM;
    }
    if (!err && rc != SQLITE_DONE)
        err = db_error(db, rc, "quick_check");
    sqlite3_finalize(st);
    for (int i = 0; i < n; i++) {
        if (!err)
            err = quick_check(db, names[i], NULL);
        free(names[i]);
    }
    return err;
}

int parley_sqlite_quick_check(parley_store_t *store, const atomic_bool *cancel)
{
    sqlite_store_t *s = sq_store(store);
    parley_db_t *db = NULL;
    int rc = open_conn(s->file, false, &db);
    if (rc)
        return rc;
    sqlite3_exec(sq(db)->conn, "PRAGMA cache_size=-2048", NULL, NULL, NULL); /* one pass */
    rc = quick_check(db, NULL, cancel);
    parley_db_close(db);
    return rc;
}

/*
 * The database holds the server's signing key: it and its -wal and -shm
 * files are the owner's only (0600), whatever the umask. SQLite creates
 * -wal and -shm with the mode of the database file, so creating that file
 * 0600 before SQLite does is enough for a new store; an existing store's
 * files are tightened too.
 */
static int restrict_files(const char *file)
{
    char side[4096];
    int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = fchmod(fd, 0600) != 0 ? -errno : 0;
    close(fd);
    for (int i = 0; rc == 0 && i < 2; i++) {
        snprintf(side, sizeof side, "%s%s", file, i ? "-shm" : "-wal");
        if (chmod(side, 0600) != 0 && errno != ENOENT)
            rc = -errno;
    }
    return rc;
}

/*
 * The lock file of a database file: beside it, "parley.db" -> "parley.lock"
 * (the name a data directory has always had), any other name + ".lock".
 * New malloc'd string, or NULL.
 */
static char *lock_path(const char *file)
{
    size_t n = strlen(file);
    size_t cap = n + sizeof ".lock";
    char *p = malloc(cap);
    if (!p)
        return NULL;
    if (n > 3 && strcmp(file + n - 3, ".db") == 0)
        snprintf(p, cap, "%.*s.lock", (int)(n - 3), file);
    else
        snprintf(p, cap, "%s.lock", file);
    return p;
}

int parley_sqlite_lock(const char *file, int *fd_out)
{
    char *lockpath = lock_path(file);
    if (!lockpath)
        return PARLEY_ENOMEM;
    int fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lockpath);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = errno == EWOULDBLOCK ? PARLEY_ELOCKED : -errno;
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* Create the directory that holds file (one level, 0700) if it is missing. */
static int make_parent(const char *file)
{
    const char *slash = strrchr(file, '/');
    if (!slash || slash == file)
        return 0;
    char dir[4096];
    if ((size_t)(slash - file) >= sizeof dir)
        return PARLEY_EINVAL;
    memcpy(dir, file, (size_t)(slash - file));
    dir[slash - file] = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* url is "sqlite:PATH" (store.c checked the scheme). */
static int sq_open(const char *url, parley_store_t **out)
{
    const char *file = url + sizeof "sqlite:" - 1;
    int rc;
    if (strncmp(url, "sqlite:", sizeof "sqlite:" - 1) != 0 || !*file)
        return PARLEY_EINVAL;
    sqlite_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    s->base.ops = &sqlite_ops;
    s->lock_fd = -1;
    s->file = strdup(file);
    if (!s->file) {
        rc = PARLEY_ENOMEM;
        goto out_free;
    }
    rc = make_parent(s->file);
    if (rc)
        goto out_free;
    rc = parley_sqlite_lock(s->file, &s->lock_fd);
    if (rc)
        goto out_free;
    rc = restrict_files(s->file);
    if (rc)
        goto out_free;
    rc = open_conn(s->file, true, &s->writer);
    if (rc)
        goto out_free;
    rc = check_integrity(s->writer);
    if (rc)
        goto out_free;
    rc = init_schema(s->writer);
    if (rc)
        goto out_free;
    *out = &s->base;
    return 0;

out_free:
    parley_store_close(&s->base);
    return rc;
}

static int sq_start(parley_store_t *store, const parley_store_hooks_t *hooks)
{
    sqlite_store_t *s = sq_store(store);
    if (s->checkpointer)
        return 0;
    return parley_checkpointer_start(store, hooks ? hooks->on_fatal : NULL,
                                     hooks ? hooks->arg : NULL, &s->checkpointer);
}

static void sq_stop(parley_store_t *store)
{
    sqlite_store_t *s = sq_store(store);
    parley_checkpointer_stop(s->checkpointer); /* a last checkpoint */
    s->checkpointer = NULL;
}

static void sq_close(parley_store_t *store)
{
    sqlite_store_t *s = sq_store(store);
    sq_stop(store); /* a store closed without stop: still join the thread */
    parley_db_close(s->ckpt);
    parley_db_close(s->writer);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->file);
    free(s);
}

static void sq_describe(const parley_store_t *store, char *out, size_t cap)
{
    snprintf(out, cap, "sqlite %s", ((const sqlite_store_t *)store)->file);
}

static int on_wal(void *arg, sqlite3 *conn, const char *name, int frames)
{
    sqlite_store_t *s = arg;
    (void)name;
    if (s->wal_fn && s->wal_fn(s->wal_arg, frames)) {
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(conn, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
            parley_log_error("store: checkpoint on the writer failed: %s", sqlite3_errstr(rc));
            s->wal_fn(s->wal_arg, -1);
        }
    }
    return SQLITE_OK;
}

void parley_sqlite_wal_watch(parley_store_t *store, bool (*fn)(void *arg, int frames), void *arg)
{
    sqlite_store_t *s = sq_store(store);
    s->wal_fn = fn;
    s->wal_arg = arg;
    sqlite3_wal_hook(sq(s->writer)->conn, fn ? on_wal : NULL, fn ? s : NULL);
}

int parley_sqlite_checkpoint(parley_store_t *store, int *frames, int *done)
{
    sqlite_store_t *s = sq_store(store);
    if (!s->ckpt) {
        /* Read-write (a checkpoint writes the database file) but it never
         * runs a transaction: the writer stays the only writer. */
        int rc = open_conn(s->file, true, &s->ckpt);
        if (rc)
            return rc;
    }
    *frames = *done = 0;
    int rc =
        sqlite3_wal_checkpoint_v2(sq(s->ckpt)->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, frames, done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        return db_error(s->ckpt, rc, "checkpoint");
    return 0;
}

static parley_db_t *sq_writer(parley_store_t *store)
{
    return sq_store(store)->writer;
}

static int sq_reader(parley_store_t *store, parley_db_t **out)
{
    return open_conn(sq_store(store)->file, false, out);
}

/* The cache's own write of a stream row's tail (rowcache.h): a plain
 * UPDATE the update hook lets through. */
static int write_row(void *arg, const parley_stream_t *row)
{
    parley_db_t *db = arg;
    int64_t changed = 0;
    sq(db)->own_write = true;
    int rc = parley_sql_exec(query, db, S_STREAM_ADVANCE, &changed, "iuio", row->id, row->tail,
                             row->touched_ms, row->stream_seq[0] ? row->stream_seq : NULL);
    sq(db)->own_write = false;
    if (rc == 0 && changed != 1) {
        parley_log_error("store: stream %lld is held by the writer but its row is missing",
                         (long long)row->id);
        rc = PARLEY_ESTORE;
    }
    return rc;
}

/* Write the tails the writer's appends moved (rowcache.h) before anything
 * else reads or writes the streams table on the writer, and before COMMIT. */
static int flush_rows(parley_db_t *db)
{
    if (!parley_rowcache_dirty(sq(db)->rows))
        return 0;
    return parley_rowcache_flush(sq(db)->rows, write_row, db);
}

/* Statements that neither read nor write the streams table: they run with
 * tails still in the cache only. */
static bool leaves_streams_alone(int id)
{
    return id == PARLEY_Q_CHUNK_INSERT || id == S_STREAM_ADVANCE || id == PARLEY_Q_LINK_LIST_PATH ||
           id == PARLEY_Q_PRODUCER_GET || id == PARLEY_Q_PRODUCER_PUT || id == S_DATA_VERSION;
}

/* Empty the writer's row cache if another connection committed since it
 * last looked (rowcache.h, 4); inside the write transaction, so nobody
 * else can commit until it ends. */
static int check_data_version(parley_db_t *db)
{
    int64_t v = 0;
    int rc = parley_sql_ints(query, db, S_DATA_VERSION, &v, 1, "");
    if (rc == 0 && v != sq(db)->data_version) {
        parley_rowcache_clear(sq(db)->rows);
        sq(db)->data_version = v;
    }
    return rc;
}

static int sq_begin(parley_db_t *db)
{
    if (!sq(db)->writer)
        return exec_simple(db, S_BEGIN_READ);
    sq(db)->flush_err = 0;
    sq(db)->nheld = sq(db)->nheld_saved = 0;
    int rc = exec_simple(db, S_BEGIN);
    if (rc == 0)
        rc = check_data_version(db);
    return rc;
}

static int flush_counters(parley_db_t *db);

static int sq_commit(parley_db_t *db)
{
    /* The stream rows the batch moved, then the messages it queued for the
     * search index (one statement, search_sqlite.c says why), then COMMIT. */
    int rc = sq(db)->flush_err ? sq(db)->flush_err : flush_rows(db);
    if (rc == 0 && sq(db)->writer)
        rc = parley_sqlite_search_flush(db);
    if (rc == 0)
        rc = flush_counters(db); /* next_counter */
    if (rc == 0)
        rc = exec_simple(db, S_COMMIT);
    if (rc)
        parley_rowcache_clear(sq(db)->rows); /* rowcache.h, 4: whatever happens next */
    return rc;
}

static int sq_rollback(parley_db_t *db)
{
    parley_rowcache_clear(sq(db)->rows); /* rowcache.h, 4 */
    sq(db)->flush_err = 0;
    sq(db)->nheld = 0;         /* the numbers go with the transaction */
    sq(db)->search_queued = 0; /* the queue rolls back with the rest */
    if (sqlite3_get_autocommit(sq(db)->conn))
        return 0; /* SQLite already rolled back (e.g. after an I/O error) */
    return exec_simple(db, S_ROLLBACK);
}

static int sq_savepoint(parley_db_t *db)
{
    parley_rowcache_savepoint(sq(db)->rows); /* rowcache.h, 3 */
    sqlite_db_t *s = sq(db);
    for (int i = 0; i < s->nheld; i++) /* next_counter */
        s->held[i].saved = s->held[i].value;
    s->nheld_saved = s->nheld;
    return exec_simple(db, S_SAVEPOINT);
}

/* Whether SQLite rolled the transaction back on its own (after an I/O
 * error or a full disk, e.g.): the savepoint went with it. */
static bool txn_lost(parley_db_t *db)
{
    return sqlite3_get_autocommit(sq(db)->conn) != 0;
}

static int sq_release(parley_db_t *db)
{
    if (txn_lost(db))
        return PARLEY_ESTORE;
    int rc = exec_simple(db, S_RELEASE);
    return rc && txn_lost(db) ? PARLEY_ESTORE : rc;
}

static int sq_rollback_to(parley_db_t *db)
{
    parley_rowcache_rollback_to(sq(db)->rows); /* rowcache.h, 3 */
    sqlite_db_t *s = sq(db);
    s->nheld = s->nheld_saved; /* next_counter: the request's numbers are given back */
    for (int i = 0; i < s->nheld; i++)
        s->held[i].saved = s->held[i].value = s->held[i].saved;
    if (txn_lost(db))
        return PARLEY_ESTORE;
    int rc = exec_simple(db, S_ROLLBACK_TO);
    if (rc == 0)
        rc = exec_simple(db, S_RELEASE);
    return rc && txn_lost(db) ? PARLEY_ESTORE : rc;
}

/* ---- running statements (the shapes are columns.c's) ---------------------- */

/* Column col of st's current row, as columns.c asks for it. */
static void cell(void *ctx, int col, parley_col_kind_t kind, parley_cell_t *out)
{
    sqlite3_stmt *st = ctx;
    out->null = sqlite3_column_type(st, col) == SQLITE_NULL;
    if (parley_col_is_text(kind)) {
        out->p = (const char *)sqlite3_column_text(st, col);
        out->len = (size_t)sqlite3_column_bytes(st, col);
    } else {
        out->i = sqlite3_column_int64(st, col);
    }
}

static int bind(sqlite3_stmt *st, int i, const parley_val_t *v)
{
    switch (v->kind) {
    case PARLEY_VAL_NULL:
        return sqlite3_bind_null(st, i);
    case PARLEY_VAL_TEXT:
        return sqlite3_bind_text(st, i, v->p, (int)v->len, SQLITE_STATIC);
    case PARLEY_VAL_BLOB:
        return sqlite3_bind_blob64(st, i, v->p, v->len, SQLITE_STATIC);
    case PARLEY_VAL_INT:
    case PARLEY_VAL_BOOL:
        break;
    }
    return sqlite3_bind_int64(st, i, v->i);
}

/*
 * The runner behind the shapes (parley_query_fn): bind vals to statement
 * id, step through its rows (reading those q asks for), then reset it
 * (invariant 3). A RETURNING statement is stepped to its end unless a
 * callback stops the scan.
 */
static int query(parley_db_t *db, int id, const parley_vals_t *vals, parley_query_t *q)
{
    sqlite3_stmt *st = NULL;
    int rc = leaves_streams_alone(id) ? 0 : flush_rows(db);
    if (rc == 0)
        rc = prep(db, (enum stmt_id)id, &st);
    if (rc)
        return rc;
    int step = SQLITE_OK, err = 0;
    if (vals->n != sqlite3_bind_parameter_count(st)) /* a format string that does not fit */
        step = SQLITE_RANGE;
    for (int i = 0; step == SQLITE_OK && i < vals->n; i++)
        step = bind(st, i + 1, &vals->v[i]);
    while (step == SQLITE_OK || step == SQLITE_ROW) {
        step = sqlite3_step(st);
        if (step != SQLITE_ROW || !q->cols || (!q->cb && q->n >= q->max))
            continue;
        char *row = q->out + (q->cb ? 0 : (size_t)q->n * q->stride);
        err = parley_cols_read(q->cols, row, q->borrow, cell, st);
        if (err)
            break;
        q->n++;
        if (q->cb && parley_row_call(q->cols, *q->cb, q->arg, row))
            break;
    }
    if (!err && step != SQLITE_DONE && step != SQLITE_ROW)
        err = db_error(db, step, stmt_sql[id]);
    q->changes = sqlite3_changes(sq(db)->conn);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

#define run(db, id, ...)              parley_sql_exec(query, db, id, NULL, __VA_ARGS__)
#define run_count(db, id, n, ...)     parley_sql_exec(query, db, id, n, __VA_ARGS__)
#define fetch(db, id, cols, row, ...) parley_sql_fetch(query, db, id, cols, row, __VA_ARGS__)
#define ints(db, id, vals, n, ...)    parley_sql_ints(query, db, id, vals, n, __VA_ARGS__)

/* ---- the ops of this backend (the others are store/sqlops.c's) ------------ */

/* The row goes in through the streams view (tails_sql above), whose
 * trigger leaves last_insert_rowid as it was: the id is read back. */
static int sq_stream_create(parley_db_t *db, parley_stream_t *s)
{
    int rc = run(db, S_STREAM_INSERT, "R", &parley_stream_cols, s);
    if (rc == 0)
        rc = ints(db, S_STREAM_ID, &s->id, 1, "t", s->path);
    return rc;
}

/*
 * Stream rows on the writer go through its cache (rowcache.h): a row it
 * holds is answered from memory, one it reads is kept. Readers read.
 */
/* out from the row the cache holds (held), else the row just read into
 * out (rc_read its result), which the cache then keeps. */
static int through_cache(parley_db_t *db, const parley_stream_t *held, int rc_read,
                         parley_stream_t *out)
{
    if (held) {
        *out = *held;
        return 0;
    }
    if (rc_read == 0)
        parley_rowcache_put(sq(db)->rows, out);
    return rc_read;
}

static int sq_stream_get(parley_db_t *db, const char *path, parley_stream_t *out)
{
    const parley_stream_t *held = parley_rowcache_by_path(sq(db)->rows, path);
    return through_cache(db, held, held ? 0 : parley_sqlop_stream_get(db, path, out), out);
}

static int sq_stream_get_id(parley_db_t *db, int64_t id, parley_stream_t *out)
{
    const parley_stream_t *held = parley_rowcache_by_id(sq(db)->rows, id);
    return through_cache(db, held, held ? 0 : parley_sqlop_stream_get_id(db, id, out), out);
}

static int chunk_put(parley_db_t *db, int64_t stream_id, uint64_t start, uint64_t end,
                     uint64_t unit_end, const void *data, size_t len)
{
    return run(db, PARLEY_Q_CHUNK_INSERT, "iuuub", stream_id, end, start, unit_end, data, len);
}

/*
 * An append on the writer whose row the cache holds: the checks of
 * PARLEY_Q_STREAM_APPEND's WHERE made on the row in memory, then the chunks;
 * the tail moves in the cache and reaches the row once per transaction
 * (flush_rows), however many appends moved it. Anything the checks refuse
 * (closed, deleted, Stream-Seq, the expected tail, the offset limit) or a
 * row not held goes the shared way, which says why.
 */
static int sq_stream_append(parley_db_t *db, int64_t id, const void *data, size_t len,
                            uint64_t units, int64_t now_ms, const char *stream_seq,
                            int64_t expect_tail, uint64_t *new_tail)
{
    const parley_stream_t *r = parley_rowcache_by_id(sq(db)->rows, id);
    if (!r || sqlite3_get_autocommit(sq(db)->conn) /* no transaction to fold into */ || r->closed ||
        r->deleted || units > PARLEY_OFFSET_MAX || r->tail > PARLEY_OFFSET_MAX - units ||
        (expect_tail >= 0 && r->tail != (uint64_t)expect_tail) ||
        (stream_seq && r->stream_seq[0] && strcmp(r->stream_seq, stream_seq) >= 0) ||
        (stream_seq && strlen(stream_seq) >= sizeof r->stream_seq))
        return parley_sqlop_stream_append(db, id, data, len, units, now_ms, stream_seq, expect_tail,
                                          new_tail);
    uint64_t tail = r->tail + units;
    int rc = parley_store_put_chunks(db, id, tail, data, len, units, chunk_put);
    if (rc)
        return rc; /* the request's savepoint is rolled back, the cache with it */
    parley_rowcache_advance(sq(db)->rows, id, tail, now_ms, stream_seq);
    *new_tail = tail;
    return 0;
}

static int sq_chunk_scan(parley_db_t *db, int64_t stream_id, uint64_t from, parley_chunk_cb cb,
                         void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_CHUNK_SCAN, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_int64(st, 2, (int64_t)from);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(st, 3);
        if (cb(arg, (uint64_t)sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
               (uint64_t)sqlite3_column_int64(st, 2), data, (size_t)sqlite3_column_bytes(st, 3)))
            break;
    }
    int err = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(db, rc, "chunk scan");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

/* ---- idempotency records ------------------------------------------------ */

static int sq_idem_put(parley_db_t *db, const char *owner, const char *key, const char *fingerprint,
                       int64_t now_ms, int64_t expired_before_ms, const char *resp, size_t len)
{
    int64_t changed = 0;
    int rc = run_count(db, S_IDEM_PUT, &changed, "tttibi", owner, key, fingerprint, now_ms, resp,
                       len, expired_before_ms);
    if (rc == 0 && changed == 0)
        rc = PARLEY_EEXIST; /* a live record: the first request's answer stands */
    return rc;
}

/* ---- counters ------------------------------------------------------------ */

/* Counter names: the same rows the server has always numbered from. */
#define COUNTER_DOC      "document_change"
#define COUNTER_ACTIVITY "conversation_activity"
#define COUNTER_SESSION  "session"
#define COUNTER_SNAPSHOT "snapshot"

/*
 * The next value of counter name, in the caller's transaction. On the
 * writer inside a transaction the counter is read once and numbered from
 * in memory, and flush_counters writes its row at COMMIT (a message post
 * used to spend about as much on the activity counter's UPDATE ...
 * RETURNING as on its conversation's row). Only the writer writes, and a
 * transaction's numbers are given out only while it holds the write lock,
 * so no other connection can number from the row meanwhile. A request
 * rolled back to its savepoint gives its numbers back, as the row would
 * (sq_savepoint keeps each value, sq_rollback_to restores it); a whole
 * rollback forgets them all (sq_rollback). The row
 * is written as the larger of the two values, so an import in the same
 * transaction that raised it directly is never lowered.
 */
static int next_counter(parley_db_t *db, const char *name, int64_t *out)
{
    sqlite_db_t *s = sq(db);
    int i = 0;
    while (i < s->nheld && strcmp(s->held[i].name, name) != 0)
        i++;
    if (i == s->nheld && (!s->writer || i == COUNTERS_HELD || sqlite3_get_autocommit(s->conn))) {
        int rc = ints(db, S_COUNTER_NEXT, out, 1, "t", name);
        return rc == PARLEY_ENOTFOUND ? PARLEY_ESTORE : rc;
    }
    if (i == s->nheld) {
        int64_t v = 0;
        int rc = ints(db, S_COUNTER_GET, &v, 1, "t", name);
        if (rc && rc != PARLEY_ENOTFOUND)
            return rc;
        s->held[i].name = name;
        s->held[i].value = rc == 0 ? v : 0;
        s->nheld++;
    }
    *out = ++s->held[i].value;
    return 0;
}

/* Write the counters the transaction numbered from (before its COMMIT). */
static int flush_counters(parley_db_t *db)
{
    sqlite_db_t *s = sq(db);
    int rc = 0;
    for (int i = 0; i < s->nheld && rc == 0; i++) {
        int64_t changed = 0;
        rc = run_count(db, S_COUNTER_SET, &changed, "ti", s->held[i].name, s->held[i].value);
    }
    s->nheld = s->nheld_saved = 0;
    return rc;
}

/*
 * Insert row (cols' map) with its last column, the counter the store
 * assigns, the next value of counter; on failure the row is as given.
 */
static int insert_counted(parley_db_t *db, enum stmt_id id, const parley_cols_t *cols, void *row,
                          const char *counter)
{
    int64_t next, *field = (int64_t *)((char *)row + cols->col[cols->n - 1].off);
    int rc = next_counter(db, counter, &next);
    if (rc)
        return rc;
    int64_t was = *field;
    *field = next;
    rc = run(db, id, "r", cols, row);
    if (rc)
        *field = was; /* nothing written: the row is as given */
    return rc;
}

/* Why a conditional update of a row keyed by a text id matched nothing. */
static int row_missed(parley_db_t *db, const char *table, const char *id)
{
    int frc = flush_rows(db); /* it reads the tables directly */
    if (frc)
        return frc;
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE id = ?1", table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq(db)->conn, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_error(db, rc, "row lookup");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int err = rc == SQLITE_ROW    ? PARLEY_ECONFLICT
              : rc == SQLITE_DONE ? PARLEY_ENOTFOUND
                                  : db_error(db, rc, "row lookup");
    sqlite3_finalize(st);
    return err;
}

/* ---- documents ------------------------------------------------------------ */

static int sq_doc_write(parley_db_t *db, parley_doc_t *d, int64_t expect_version)
{
    int64_t chg, changed = 0;
    int rc = next_counter(db, COUNTER_DOC, &chg);
    if (rc)
        return rc;
    int64_t was = d->chg;
    d->chg = chg;
    rc = run_count(db, S_DOC_WRITE, &changed, "ri", &parley_doc_cols, d, expect_version);
    if (rc == 0 && changed == 0)
        rc = PARLEY_ECONFLICT;
    if (rc)
        d->chg = was; /* nothing written: the row is as given */
    return rc;
}

/* ---- conversations, sessions, snapshots ---------------------------------- */

static int sq_conv_insert(parley_db_t *db, parley_conv_t *c)
{
    return insert_counted(db, S_CONV_INSERT, &parley_conv_cols, c, COUNTER_ACTIVITY);
}

static int sq_conv_update(parley_db_t *db, parley_conv_t *c, int64_t expect_version)
{
    int64_t v = 0;
    int rc = ints(db, S_CONV_UPDATE, &v, 1, "tttii", c->id, c->title,
                  c->metadata ? c->metadata : "{}", c->updated_ms, expect_version);
    if (rc == PARLEY_ENOTFOUND)
        return row_missed(db, "conversations", c->id);
    if (rc == 0)
        c->version = v;
    return rc;
}

/* conv_bump (stmt S_CONV_BUMP) or conv_touch (S_CONV_TOUCH). */
static int conv_bump_by(parley_db_t *db, int stmt, const char *id, int64_t now_ms, int64_t *seq,
                        int64_t *version, int64_t *activity)
{
    int64_t next, v[3];
    int rc = next_counter(db, COUNTER_ACTIVITY, &next);
    if (rc == 0)
        rc = ints(db, stmt, v, 3, "tii", id, now_ms, next);
    if (rc == PARLEY_ENOTFOUND)
        return row_missed(db, "conversations", id);
    if (rc == 0) {
        *seq = v[0];
        *version = v[1];
        *activity = v[2];
    }
    return rc;
}

static int sq_conv_bump(parley_db_t *db, const char *id, int64_t now_ms, int64_t *seq,
                        int64_t *version, int64_t *activity)
{
    return conv_bump_by(db, S_CONV_BUMP, id, now_ms, seq, version, activity);
}

static int sq_conv_touch(parley_db_t *db, const char *id, int64_t now_ms, int64_t *count,
                         int64_t *version, int64_t *activity)
{
    return conv_bump_by(db, S_CONV_TOUCH, id, now_ms, count, version, activity);
}

static int sq_sess_insert(parley_db_t *db, parley_sess_t *s)
{
    return insert_counted(db, S_SESS_INSERT, &parley_sess_cols, s, COUNTER_SESSION);
}

static int sq_sess_update(parley_db_t *db, const parley_sess_t *s, const char *expect_status,
                          int64_t expect_attempt)
{
    int64_t v = 0;
    int rc = ints(db, S_SESS_UPDATE, &v, 1, "totiintttiti", s->id, s->result_id, s->status,
                  s->attempt, s->lease_ms, s->lease_expires_ms, s->error, s->request, s->input,
                  s->updated_ms, expect_status, expect_attempt);
    return rc == PARLEY_ENOTFOUND ? row_missed(db, "sessions", s->id) : rc;
}

static int sq_sess_claim_next(parley_db_t *db, const char *conv_id, int64_t now_ms,
                              int64_t lease_ms, parley_sess_t *out)
{
    if (conv_id)
        return fetch(db, S_SESS_CLAIM_CONV, &parley_sess_cols, out, "iit", now_ms, lease_ms,
                     conv_id);
    return fetch(db, S_SESS_CLAIM, &parley_sess_cols, out, "ii", now_ms, lease_ms);
}

static int sq_snap_insert(parley_db_t *db, parley_snap_t *s)
{
    return insert_counted(db, S_SNAP_INSERT, &parley_snap_cols, s, COUNTER_SNAPSHOT);
}

/* ---- subscriptions ---- */

static int sq_sub_begin_wake(parley_db_t *db, const char *id, const char *wake_id,
                             int64_t lease_exp_ms, int64_t due_ms, int64_t *generation)
{
    int64_t g = 0;
    int rc = ints(db, S_SUB_BEGIN_WAKE, &g, 1, "ttnn", id, wake_id, lease_exp_ms, due_ms);
    if (rc == PARLEY_ENOTFOUND)
        return row_missed(db, "subscriptions", id);
    if (rc == 0)
        *generation = g;
    return rc;
}

static int sq_sub_update(parley_db_t *db, const parley_sub_t *s, int64_t expect_generation,
                         const char *expect_wake_id)
{
    int64_t g = 0;
    int rc = ints(db, S_SUB_UPDATE, &g, 1, "toonniit", s->id, s->wake_id, s->holder,
                  s->lease_expires_ms, s->delivery_due_ms, s->attempts, expect_generation,
                  expect_wake_id ? expect_wake_id : "");
    return rc == PARLEY_ENOTFOUND ? row_missed(db, "subscriptions", s->id) : rc;
}

/* ---- server keys ----------------------------------------------------------- */

/* A file's size, or -1 if it cannot be seen (a missing -wal: 0). */
static int64_t file_bytes(const char *path, bool missing_is_zero)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return (int64_t)st.st_size;
    return errno == ENOENT && missing_is_zero ? 0 : -1;
}

static int sq_stat(parley_db_t *db, parley_store_stat_t *out)
{
    out->db_bytes = out->wal_bytes = out->subs_webhook = out->subs_pull_wake = -1;
    const char *file = sqlite3_db_filename(sq(db)->conn, "main");
    if (file && *file) {
        char wal[4096];
        out->db_bytes = file_bytes(file, false);
        if (snprintf(wal, sizeof wal, "%s-wal", file) < (int)sizeof wal)
            out->wal_bytes = file_bytes(wal, true);
    }
    return parley_sqlop_stat_subs(db, out);
}

static int sq_key_put(parley_db_t *db, const char *name, const unsigned char *data, size_t len,
                      int64_t created_ms)
{
    return run(db, S_KEY_PUT, "tbi", name, data, len, created_ms);
}

/* The SQLite backend (store.h). */
/* ---- operations: backup and verify ---- */

/* url is "sqlite:PATH": a read-only connection to an existing database,
 * without the lock (a server may be running on it) and without schema
 * changes. */
static int sq_inspect(const char *url, parley_db_t **out)
{
    const char *file = url + sizeof "sqlite:" - 1;
    struct stat sb;
    if (strncmp(url, "sqlite:", sizeof "sqlite:" - 1) != 0 || !*file)
        return PARLEY_EINVAL;
    if (stat(file, &sb) != 0)
        return errno == ENOENT ? PARLEY_ENOTFOUND : -errno;
    if (!S_ISREG(sb.st_mode))
        return PARLEY_EINVAL;
    parley_db_t *db = NULL;
    int rc = open_conn(file, false, &db);
    if (rc)
        return rc;
    int64_t version = 0;
    rc = read_version(sq(db)->conn, &version);
    if (rc != SQLITE_OK) {
        rc = db_error(db, rc, "reading the schema version");
        parley_db_close(db);
        return rc;
    }
    if (version > SCHEMA_VERSION) {
        log_newer(version);
        parley_db_close(db);
        return PARLEY_ECONFLICT;
    }
    *out = db;
    return 0;
}

/* url is "sqlite:PATH": a read-write connection beside a running server
 * (its own busy timeout waits out the writer's transactions), without the
 * lock and without schema changes; synchronous=FULL, so a write is durable
 * when it returns. */
static int sq_admin(const char *url, parley_db_t **out)
{
    const char *file = url + sizeof "sqlite:" - 1;
    struct stat sb;
    if (strncmp(url, "sqlite:", sizeof "sqlite:" - 1) != 0 || !*file)
        return PARLEY_EINVAL;
    if (stat(file, &sb) != 0)
        return errno == ENOENT ? PARLEY_ENOTFOUND : -errno;
    if (!S_ISREG(sb.st_mode))
        return PARLEY_EINVAL;
    parley_db_t *db = NULL;
    int rc = open_conn(file, true, &db);
    if (rc)
        return rc;
    sq(db)->writer = false; /* not the server's writer: plain transactions */
    int64_t version = 0;
    rc = read_version(sq(db)->conn, &version);
    if (rc != SQLITE_OK) {
        rc = db_error(db, rc, "reading the schema version");
        parley_db_close(db);
        return rc;
    }
    if (version != SCHEMA_VERSION) {
        if (version > SCHEMA_VERSION)
            log_newer(version);
        parley_db_close(db);
        return version == 0 ? PARLEY_ENOTFOUND : PARLEY_ECONFLICT;
    }
    *out = db;
    return 0;
}

/* PRAGMA integrity_check: the whole check (b-trees, free list, indexes
 * against their tables), not the quick one start-up runs. */
static int sq_integrity(parley_db_t *db, void (*cb)(void *arg, const char *problem), void *arg)
{
    int frc = flush_rows(db); /* it reads the tables directly */
    if (frc)
        return frc;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq(db)->conn, "PRAGMA integrity_check(1000)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_error(db, rc, "integrity_check");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok") == 0)
            continue;
        /* One problem a line; "*** in database main ***" only heads them. */
        char line[512];
        for (const char *p = r; *p;) {
            size_t n = strcspn(p, "\n");
            snprintf(line, sizeof line, "%.*s", (int)n, p);
            if (n && strncmp(line, "*** in database ", 16) != 0)
                cb(arg, line);
            p += n + (p[n] == '\n');
        }
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
        cb(arg, sqlite3_errstr(rc)); /* too broken to check further */
        return 0;
    }
    return rc == SQLITE_DONE ? 0 : db_error(db, rc, "integrity_check");
}

#define SCAN_COLS_MAX 24 /* columns a table_scan may ask for */

static int sq_table_scan(parley_db_t *db, const char *table, const char *cols, const char *order,
                         int (*cb)(void *arg, int n, const char *const *vals, const size_t *lens),
                         void *arg)
{
    int frc = flush_rows(db); /* it reads the tables directly */
    if (frc)
        return frc;
    char *sql = sqlite3_mprintf("SELECT %s FROM %s ORDER BY %s", cols, table, order);
    sqlite3_stmt *st = NULL;
    if (!sql)
        return PARLEY_ENOMEM;
    int rc = sqlite3_prepare_v2(sq(db)->conn, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return db_error(db, rc, table);
    int n = sqlite3_column_count(st), err = 0;
    if (n > SCAN_COLS_MAX) {
        sqlite3_finalize(st);
        return PARLEY_EINVAL;
    }
    const char *vals[SCAN_COLS_MAX];
    size_t lens[SCAN_COLS_MAX];
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            bool blob = sqlite3_column_type(st, i) == SQLITE_BLOB;
            vals[i] = blob ? (const char *)sqlite3_column_blob(st, i)
                           : (const char *)sqlite3_column_text(st, i);
            lens[i] = (size_t)sqlite3_column_bytes(st, i);
            if (blob && !vals[i])
                vals[i] = ""; /* an empty blob is not NULL */
        }
        err = cb(arg, n, vals, lens);
    }
    sqlite3_finalize(st);
    if (err)
        return err;
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
        return PARLEY_ESTORE;
    return rc == SQLITE_DONE ? 0 : db_error(db, rc, table);
}

/* One import statement (store/transfer.c): parameters are named $1..$n,
 * bound by name so an SQL text may use one twice or out of order. */
static int sq_row_exec(parley_db_t *db, const char *sql, const parley_vals_t *vals,
                       int64_t *changes)
{
    int frc = flush_rows(db); /* it runs SQL directly */
    if (frc)
        return frc;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq(db)->conn, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_error(db, rc, sql);
    for (int i = 0; i < vals->n && rc == SQLITE_OK; i++) {
        char name[16];
        snprintf(name, sizeof name, "$%d", i + 1);
        int at = sqlite3_bind_parameter_index(st, name);
        const parley_val_t *x = &vals->v[i];
        if (at == 0)
            continue; /* a value this statement does not use */
        switch (x->kind) {
        case PARLEY_VAL_NULL:
            rc = sqlite3_bind_null(st, at);
            break;
        case PARLEY_VAL_TEXT:
            rc = sqlite3_bind_text(st, at, x->p, (int)x->len, SQLITE_STATIC);
            break;
        case PARLEY_VAL_INT:
        case PARLEY_VAL_BOOL:
            rc = sqlite3_bind_int64(st, at, x->i);
            break;
        case PARLEY_VAL_BLOB:
            rc = sqlite3_bind_blob(st, at, x->len ? x->p : "", (int)x->len, SQLITE_STATIC);
            break;
        }
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (changes)
        *changes = rc == SQLITE_DONE ? sqlite3_changes64(sq(db)->conn) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_error(db, rc, sql);
}

/*
 * VACUUM INTO from this connection: one read transaction, so one consistent
 * snapshot even while the writer commits (WAL). The copy is then switched
 * to journal_mode=DELETE, so that it is a single file that a read-only
 * connection can open with no -wal or -shm beside it.
 */
static int sq_copy_to(parley_db_t *db, const char *path)
{
    int frc = flush_rows(db); /* it reads the tables directly */
    if (frc)
        return frc;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq(db)->conn, "VACUUM INTO ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_error(db, rc, "vacuum into");
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_error(db, rc, "vacuum into");
    sqlite3 *copy = NULL;
    rc = sqlite3_open_v2(path, &copy, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(copy, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        parley_log_error("store: preparing the copy: %s", sqlite3_errstr(rc));
    sqlite3_close(copy);
    return rc == SQLITE_OK ? 0 : PARLEY_ESTORE;
}

static int sq_schema_version(parley_db_t *db, int64_t *version, int64_t *mine)
{
    *mine = SCHEMA_VERSION;
    int rc = read_version(sq(db)->conn, version);
    return rc == SQLITE_OK ? 0 : db_error(db, rc, "schema version");
}

static const parley_store_ops_t sqlite_ops = {
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .describe = sq_describe,
    .start = sq_start,
    .stop = sq_stop,
    .writer = sq_writer,
    .reader = sq_reader,
    .db_close = sq_db_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_to = sq_rollback_to,
    .stream_get = sq_stream_get,
    .stream_get_id = sq_stream_get_id,
    .stream_create = sq_stream_create,
    .stream_append = sq_stream_append,
    .stream_close = parley_sqlop_stream_close,
    .stream_touch = parley_sqlop_stream_touch,
    .stream_ref = parley_sqlop_stream_ref,
    .stream_mark_deleted = parley_sqlop_stream_mark_deleted,
    .stream_remove = parley_sqlop_stream_remove,
    .stream_expired = parley_sqlop_stream_expired,
    .stream_scan = parley_sqlop_stream_scan,
    .chunk_scan = sq_chunk_scan,
    .chunk_trim = parley_sqlop_chunk_trim,
    .producer_get = parley_sqlop_producer_get,
    .producer_put = parley_sqlop_producer_put,
    .idem_get = parley_sqlop_idem_get,
    .idem_put = sq_idem_put,
    .idem_purge = parley_sqlop_idem_purge,
    .doc_get = parley_sqlop_doc_get,
    .doc_write = sq_doc_write,
    .doc_list = parley_sqlop_doc_list,
    .conv_get = parley_sqlop_conv_get,
    .conv_insert = sq_conv_insert,
    .conv_update = sq_conv_update,
    .conv_bump = sq_conv_bump,
    .conv_touch = sq_conv_touch,
    .conv_tombstone = parley_sqlop_conv_tombstone,
    .conv_list = parley_sqlop_conv_list,
    .sess_get = parley_sqlop_sess_get,
    .sess_insert = sq_sess_insert,
    .sess_update = sq_sess_update,
    .sess_claim_next = sq_sess_claim_next,
    .sess_remove = parley_sqlop_sess_remove,
    .sess_list = parley_sqlop_sess_list,
    .sess_expired = parley_sqlop_sess_expired,
    .snap_get = parley_sqlop_snap_get,
    .snap_insert = sq_snap_insert,
    .snap_expire = parley_sqlop_snap_expire,
    .snap_remove = parley_sqlop_snap_remove,
    .snap_list = parley_sqlop_snap_list,
    .visit_add = parley_sqlop_visit_add,
    .visit_get = parley_sqlop_visit_get,
    .visit_delete = parley_sqlop_visit_delete,
    .snap_expired = parley_sqlop_snap_expired,
    .sub_get = parley_sqlop_sub_get,
    .sub_put_config = parley_sqlop_sub_put_config,
    .sub_begin_wake = sq_sub_begin_wake,
    .sub_update = sq_sub_update,
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
    .key_put = sq_key_put,
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
    .inspect = sq_inspect,
    .admin = sq_admin,
    .integrity = sq_integrity,
    .table_scan = sq_table_scan,
    .row_exec = sq_row_exec,
    .copy_to = sq_copy_to,
    .schema_version = sq_schema_version,
    .stat = sq_stat,
    .search_put = parley_sqlite_search_put,
    .search_query = parley_sqlite_search_query,
    .user_move = parley_sqlite_user_move,
    .transfer_get = parley_sqlite_transfer_get,
    .transfer_put = parley_sqlite_transfer_put,
};

const parley_store_ops_t *parley_store_sqlite_ops(void)
{
    return &sqlite_ops;
}
