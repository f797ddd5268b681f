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
 * Layout. streams: one row per stream. chunks: the stored bytes, one row per
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parley/parley.h"
#include "store/store.h"
#include "store/sqlite/checkpointer.h"
#include "store/sqlite/sqlite_internal.h"
#include "store/sqlite/store_sqlite.h"
#include "util/log.h"

#define SCHEMA_VERSION 1

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
    S_BEGIN,
    S_BEGIN_READ,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_STREAM_GET,
    S_STREAM_GET_ID,
    S_STREAM_INSERT,
    S_STREAM_APPEND,
    S_STREAM_CLOSE,
    S_STREAM_TOUCH,
    S_STREAM_REF,
    S_STREAM_MARK_DELETED,
    S_STREAM_DEL,
    S_STREAM_DEL_CHUNKS,
    S_STREAM_DEL_PRODUCERS,
    S_STREAM_EXPIRED,
    S_CHUNK_INSERT,
    S_CHUNK_SCAN,
    S_PRODUCER_GET,
    S_PRODUCER_PUT,
    S_IDEM_GET,
    S_IDEM_PUT,
    S_IDEM_PURGE,
    S_DOC_GET,
    S_DOC_WRITE,
    S_DOC_LIST,
    S_COUNTER_NEXT,
    S_CONV_GET,
    S_CONV_INSERT,
    S_CONV_UPDATE,
    S_CONV_BUMP,
    S_CONV_TOMBSTONE,
    S_CONV_LIST,
    S_SESS_GET,
    S_SESS_INSERT,
    S_SESS_UPDATE,
    S_SESS_CLAIM,
    S_SESS_CLAIM_CONV,
    S_SESS_DEL,
    S_SESS_LIST,
    S_SESS_LIST_STATUS,
    S_SESS_EXPIRED,
    S_SNAP_GET,
    S_SNAP_INSERT,
    S_SNAP_EXPIRE,
    S_SNAP_DEL,
    S_SNAP_LIST,
    S_SNAP_EXPIRED,
    S_SUB_GET,
    S_SUB_PUT_CONFIG,
    S_SUB_BEGIN_WAKE,
    S_SUB_UPDATE,
    S_SUB_DEL,
    S_SUB_DEL_LINKS,
    S_SUB_PATTERNS,
    S_SUB_LEASES,
    S_SUB_DUE,
    S_SUB_NEXT_DUE,
    S_STAT_SUBS,
    S_LINK_GET,
    S_LINK_PUT,
    S_LINK_ADVANCE,
    S_LINK_DEL,
    S_LINK_LIST_SUB,
    S_LINK_LIST_PATH,
    S_LINK_SNAPSHOT,
    S_LINK_ACK_SNAPSHOT,
    S_LINK_PENDING,
    S_STREAM_SCAN,
    S_KEY_GET,
    S_KEY_PUT,
    S_COUNT
};

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

#define STREAM_COLS                                                                                \
    "id, path, owner, content_type, created_ms, touched_ms, ttl_s, expires_ms, tail, closed, "     \
    "closer, closer_epoch, closer_seq, stream_seq, fork_src, fork_pos, refs, deleted"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT req",
    [S_RELEASE] = "RELEASE req",
    [S_ROLLBACK_TO] = "ROLLBACK TO req",
    [S_STREAM_GET] = "SELECT " STREAM_COLS " FROM streams WHERE path = ?1",
    [S_STREAM_GET_ID] = "SELECT " STREAM_COLS " FROM streams WHERE id = ?1",
    [S_STREAM_INSERT] = "INSERT INTO streams (path, owner, content_type, created_ms, touched_ms, "
                        "ttl_s, expires_ms, tail, closed, closer, closer_epoch, closer_seq, "
                        "stream_seq, fork_src, fork_pos, refs, deleted) VALUES (?1, ?2, ?3, ?4, "
                        "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    [S_STREAM_APPEND] = "UPDATE streams SET tail = tail + ?2, touched_ms = ?3, "
                        "stream_seq = coalesce(?4, stream_seq) WHERE id = ?1 AND closed = 0 AND "
                        "deleted = 0 AND (?4 IS NULL OR stream_seq IS NULL OR stream_seq < ?4) "
                        "AND (?5 < 0 OR tail = ?5) AND tail + ?2 <= ?6 RETURNING tail",
    [S_STREAM_CLOSE] = "UPDATE streams SET closed = 1, closer = ?2, closer_epoch = ?3, "
                       "closer_seq = ?4, touched_ms = ?5 WHERE id = ?1 AND closed = 0 "
                       "RETURNING tail",
    [S_STREAM_TOUCH] = "UPDATE streams SET touched_ms = max(touched_ms, ?2) WHERE id = ?1 "
                       "RETURNING tail",
    [S_STREAM_REF] = "UPDATE streams SET refs = max(refs + ?2, 0) WHERE id = ?1 "
                     "RETURNING refs, deleted, coalesce(fork_src, 0)",
    [S_STREAM_MARK_DELETED] = "UPDATE streams SET deleted = 1 WHERE id = ?1 AND refs > 0 "
                              "RETURNING refs",
    [S_STREAM_DEL] = "DELETE FROM streams WHERE id = ?1",
    [S_STREAM_DEL_CHUNKS] = "DELETE FROM chunks WHERE stream_id = ?1",
    [S_STREAM_DEL_PRODUCERS] = "DELETE FROM producers WHERE stream_id = ?1",
    [S_STREAM_EXPIRED] = "SELECT id FROM streams WHERE deleted = 0 AND "
                         "((expires_ms IS NOT NULL AND expires_ms <= ?1) OR "
                         "(ttl_s IS NOT NULL AND touched_ms + ttl_s * 1000 <= ?1)) LIMIT ?2",
    [S_CHUNK_INSERT] = "INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_CHUNK_SCAN] = "SELECT start_pos, end_pos, unit_end, data FROM chunks "
                     "WHERE stream_id = ?1 AND end_pos > ?2 ORDER BY end_pos",
    [S_PRODUCER_GET] = "SELECT epoch, last_seq FROM producers WHERE stream_id = ?1 AND "
                       "producer = ?2",
    [S_PRODUCER_PUT] = "INSERT INTO producers (stream_id, producer, epoch, last_seq) "
                       "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (stream_id, producer) DO UPDATE "
                       "SET epoch = excluded.epoch, last_seq = excluded.last_seq",
    [S_IDEM_GET] = "SELECT fingerprint, created_ms, response FROM idempotency "
                   "WHERE owner = ?1 AND key = ?2",
    [S_IDEM_PUT] =
        "INSERT INTO idempotency (owner, key, fingerprint, created_ms, response) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (owner, key) DO UPDATE SET "
        "fingerprint = excluded.fingerprint, created_ms = excluded.created_ms, response = "
        "excluded.response WHERE idempotency.created_ms < ?6",
    [S_IDEM_PURGE] = "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                     "WHERE created_ms < ?1 LIMIT ?2)",
    [S_DOC_GET] = "SELECT version, deleted, data, checksum, created_ms, updated_ms, chg "
                  "FROM documents WHERE owner = ?1 AND collection = ?2 AND id = ?3",
    [S_DOC_LIST] = "SELECT id, version, data, checksum, created_ms, updated_ms, chg FROM documents "
                   "WHERE owner = ?1 AND collection = ?2 AND deleted = 0 AND chg < ?3 "
                   "ORDER BY chg DESC LIMIT ?4",
    [S_COUNTER_NEXT] = "INSERT INTO counters (name, value) VALUES (?1, 1) ON CONFLICT (name) "
                       "DO UPDATE SET value = value + 1 RETURNING value",
    [S_CONV_GET] = "SELECT " CONV_COLS " FROM conversations WHERE id = ?1",
    [S_CONV_LIST] = "SELECT " CONV_COLS " FROM conversations WHERE owner = ?1 AND deleted = 0 "
                    "AND activity < ?2 ORDER BY activity DESC LIMIT ?3",
    [S_SESS_GET] = "SELECT " SESS_COLS " FROM sessions WHERE id = ?1",
    [S_SESS_DEL] = "DELETE FROM sessions WHERE id = ?1",
    [S_SESS_LIST] = "SELECT " SESS_COLS " FROM sessions WHERE conversation_id = ?1 AND ord < ?2 "
                    "ORDER BY ord DESC LIMIT ?3",
    [S_SESS_LIST_STATUS] = "SELECT " SESS_COLS " FROM sessions WHERE conversation_id = ?1 AND "
                           "ord < ?2 AND status = ?4 ORDER BY ord DESC LIMIT ?3",
    [S_SESS_EXPIRED] = "SELECT id FROM sessions WHERE lease_expires_ms IS NOT NULL AND "
                       "lease_expires_ms <= ?1 AND status = 'processing' "
                       "ORDER BY lease_expires_ms LIMIT ?2",
    [S_SNAP_GET] = "SELECT " SNAP_COLS " FROM snapshots WHERE id = ?1",
    [S_DOC_WRITE] = "INSERT INTO documents (owner, collection, id, version, deleted, data, "
                    "checksum, created_ms, updated_ms, chg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                    "?8, ?9, ?10) ON CONFLICT (owner, collection, id) DO UPDATE SET "
                    "version = excluded.version, deleted = excluded.deleted, data = "
                    "excluded.data, checksum = excluded.checksum, created_ms = "
                    "excluded.created_ms, updated_ms = excluded.updated_ms, chg = excluded.chg "
                    "WHERE documents.version = ?11",
    [S_CONV_INSERT] = "INSERT INTO conversations (" CONV_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
                      "?6, ?7, ?8, ?9, ?10, ?11)",
    [S_CONV_UPDATE] = "UPDATE conversations SET title = ?2, metadata = ?3, updated_ms = ?4, "
                      "version = version + 1 WHERE id = ?1 AND version = ?5 AND deleted = 0 "
                      "RETURNING version",
    [S_CONV_BUMP] = "UPDATE conversations SET message_count = message_count + 1, version = "
                    "version + 1, last_message_ms = ?2, updated_ms = ?2, activity = ?3 "
                    "WHERE id = ?1 AND deleted = 0 RETURNING message_count, version, activity",
    [S_CONV_TOMBSTONE] = "UPDATE conversations SET title = NULL, metadata = '{}', deleted = 1, "
                         "version = version + 1, updated_ms = ?2 WHERE id = ?1 RETURNING version",
    [S_SESS_INSERT] = "INSERT INTO sessions (" SESS_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                      "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [S_SESS_UPDATE] = "UPDATE sessions SET result_id = ?2, status = ?3, attempt = ?4, lease_ms = "
                      "?5, lease_expires_ms = ?6, error = ?7, request = ?8, input = ?9, "
                      "updated_ms = ?10 WHERE id = ?1 AND status = ?11 AND attempt = ?12 "
                      "RETURNING attempt",
    [S_SESS_CLAIM] = "UPDATE sessions SET status = 'processing', lease_ms = ?2, lease_expires_ms "
                     "= ?1 + ?2, updated_ms = ?1 WHERE id = (SELECT id FROM sessions WHERE "
                     "status = 'pending' ORDER BY ord LIMIT 1) RETURNING " SESS_COLS,
    [S_SESS_CLAIM_CONV] = "UPDATE sessions SET status = 'processing', lease_ms = ?2, "
                          "lease_expires_ms = ?1 + ?2, updated_ms = ?1 WHERE id = (SELECT id "
                          "FROM sessions WHERE conversation_id = ?3 AND status = 'pending' "
                          "ORDER BY ord LIMIT 1) RETURNING " SESS_COLS,
    [S_SNAP_INSERT] = "INSERT INTO snapshots (" SNAP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                      "?7, ?8, ?9, ?10, ?11)",
    [S_SNAP_EXPIRE] = "UPDATE snapshots SET payload = '{}', stream = NULL WHERE id = ?1 "
                      "RETURNING ord",
    [S_SNAP_DEL] = "DELETE FROM snapshots WHERE id = ?1",
    [S_SNAP_LIST] = "SELECT " SNAP_COLS " FROM snapshots WHERE owner = ?1 AND ord < ?2 "
                    "ORDER BY ord DESC LIMIT ?3",
    [S_SNAP_EXPIRED] = "SELECT id FROM snapshots WHERE expires_ms IS NOT NULL AND "
                       "expires_ms <= ?1 AND stream IS NOT NULL ORDER BY expires_ms LIMIT ?2",
    [S_SUB_GET] = "SELECT " SUB_COLS " FROM subscriptions WHERE id = ?1",
    [S_SUB_PUT_CONFIG] = "INSERT INTO subscriptions (" SUB_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
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
    [S_LINK_ADVANCE] = "UPDATE subscription_streams SET acked = ?3 WHERE sub_id = ?1 AND path = "
                       "?2 AND acked <= ?3 AND ?3 <= coalesce((SELECT tail FROM streams WHERE "
                       "streams.path = ?2 AND deleted = 0), 0) RETURNING acked",
    [S_SUB_DEL] = "DELETE FROM subscriptions WHERE id = ?1",
    [S_SUB_DEL_LINKS] = "DELETE FROM subscription_streams WHERE sub_id = ?1",
    [S_SUB_PATTERNS] = "SELECT " SUB_COLS " FROM subscriptions WHERE pattern IS NOT NULL",
    [S_SUB_LEASES] = "SELECT id FROM subscriptions WHERE lease_expires_ms IS NOT NULL AND "
                     "lease_expires_ms <= ?1 AND delivery_due_ms IS NULL "
                     "ORDER BY lease_expires_ms LIMIT ?2",
    [S_SUB_DUE] = "SELECT id FROM subscriptions WHERE delivery_due_ms IS NOT NULL AND "
                  "delivery_due_ms <= ?1 ORDER BY delivery_due_ms LIMIT ?2",
    [S_SUB_NEXT_DUE] = "SELECT min(delivery_due_ms) FROM subscriptions",
    [S_STAT_SUBS] = "SELECT count(*) FILTER (WHERE type = 'webhook'), count(*) FILTER (WHERE "
                    "type = 'pull-wake') FROM subscriptions",
    [S_LINK_GET] = "SELECT " LINK_COLS " FROM subscription_streams WHERE sub_id = ?1 AND "
                   "path = ?2",
    [S_LINK_PUT] = "INSERT OR REPLACE INTO subscription_streams (" LINK_COLS ") VALUES (?1, "
                   "?2, ?3, ?4, ?5, ?6)",
    [S_LINK_DEL] = "DELETE FROM subscription_streams WHERE sub_id = ?1 AND path = ?2",
    [S_LINK_LIST_SUB] = "SELECT " LINK_COLS " FROM subscription_streams WHERE sub_id = ?1 "
                        "ORDER BY path",
    [S_LINK_LIST_PATH] = "SELECT " LINK_COLS " FROM subscription_streams WHERE path = ?1 "
                         "ORDER BY sub_id",
    [S_LINK_SNAPSHOT] = "UPDATE subscription_streams SET wake_tail = coalesce((SELECT tail FROM "
                        "streams WHERE streams.path = subscription_streams.path AND deleted = 0), "
                        "0) WHERE sub_id = ?1",
    [S_LINK_ACK_SNAPSHOT] = "UPDATE subscription_streams SET acked = max(acked, min(wake_tail, "
                            "coalesce((SELECT tail FROM streams WHERE streams.path = "
                            "subscription_streams.path AND deleted = 0), 0))) WHERE sub_id = ?1 "
                            "AND wake_tail IS NOT NULL AND wake_tail > acked",
    [S_LINK_PENDING] = "SELECT l.path FROM subscription_streams l JOIN streams s ON s.path = "
                       "l.path WHERE l.sub_id = ?1 AND s.deleted = 0 AND s.tail > l.acked "
                       "ORDER BY l.path LIMIT 1",
    [S_STREAM_SCAN] = "SELECT " STREAM_COLS " FROM streams WHERE path >= ?1 AND deleted = 0 "
                      "ORDER BY path",
    [S_KEY_GET] = "SELECT secret FROM server_keys WHERE name = ?1",
    [S_KEY_PUT] = "INSERT INTO server_keys (name, secret, created_ms) VALUES (?1, ?2, ?3)",
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

/* A SQLite connection: parley_db_t's ops point at sqlite_ops. */
typedef struct sqlite_db {
    parley_db_t base;            /* ops (first: the store.h wrappers read it) */
    sqlite3 *conn;               /* the SQLite connection */
    sqlite3_stmt *stmt[S_COUNT]; /* prepared lazily, reset after each use */
    bool writer;                 /* the one write connection */
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
static int db_error(parley_db_t *db, int rc, const char *what)
{
    int prim = rc & 0xff;
    if (prim == SQLITE_FULL)
        return PARLEY_EFULL;
    if (prim == SQLITE_NOMEM)
        return PARLEY_ENOMEM;
    if (prim == SQLITE_CONSTRAINT)
        return PARLEY_EEXIST;
    parley_log_error("store: %s: %s (%d)", what,
                     db && sq(db)->conn ? sqlite3_errmsg(sq(db)->conn) : "", rc);
    return PARLEY_ESTORE;
}

static int prep(parley_db_t *db, enum stmt_id id, sqlite3_stmt **out)
{
    if (!sq(db)->stmt[id]) {
        int rc = sqlite3_prepare_v3(sq(db)->conn, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &sq(db)->stmt[id], NULL);
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

static int open_conn(const char *file, bool writer, parley_db_t **out)
{
    sqlite_db_t *c = calloc(1, sizeof *c);
    if (!c)
        return PARLEY_ENOMEM;
    c->base.ops = &sqlite_ops;
    c->writer = writer;
    parley_db_t *db = &c->base;
    int flags = writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    flags |= SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(file, &sq(db)->conn, flags, NULL);
    if (rc != SQLITE_OK) {
        int err = db_error(db, rc, "open");
        parley_db_close(db);
        return err;
    }
    sqlite3_busy_timeout(sq(db)->conn, 5000);
    sqlite3_extended_result_codes(sq(db)->conn, 1);
    const char *pragmas = writer ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                   "PRAGMA foreign_keys=OFF; PRAGMA cache_size=-65536;"
                                   "PRAGMA wal_autocheckpoint=0;"
                                   "PRAGMA journal_size_limit=67108864;"
                                 : "PRAGMA cache_size=-16384;";
    char *msg = NULL;
    rc = sqlite3_exec(sq(db)->conn, pragmas, NULL, NULL, &msg);
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
    sqlite3_close(sq(db)->conn);
    free(db);
}

static int init_schema(parley_db_t *db)
{
    char *msg = NULL;
    int rc = sqlite3_exec(sq(db)->conn, "BEGIN IMMEDIATE", NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(sq(db)->conn, schema_sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '%d')",
                 SCHEMA_VERSION);
        rc = sqlite3_exec(sq(db)->conn, sql, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(sq(db)->conn, "COMMIT", NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        parley_log_error("store: creating schema: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        sqlite3_exec(sq(db)->conn, "ROLLBACK", NULL, NULL, NULL);
        return PARLEY_ESTORE;
    }
    return 0;
}

/* Run SQLite's quick integrity check so corruption stops start-up. */
static int check_integrity(parley_db_t *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq(db)->conn, "PRAGMA quick_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_error(db, rc, "quick_check");
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r && strcmp(r, "ok") != 0) {
            parley_log_error("store: integrity check failed: %s", r);
            err = PARLEY_ESTORE;
        }
    }
    if (rc != SQLITE_DONE && !err)
        err = db_error(db, rc, "quick_check");
    sqlite3_finalize(st);
    return err;
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
    char *lockpath = NULL;
    int rc;
    if (strncmp(url, "sqlite:", sizeof "sqlite:" - 1) != 0 || !*file)
        return PARLEY_EINVAL;
    sqlite_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    s->base.ops = &sqlite_ops;
    s->lock_fd = -1;
    s->file = strdup(file);
    lockpath = lock_path(file);
    if (!s->file || !lockpath) {
        rc = PARLEY_ENOMEM;
        goto out_free;
    }
    rc = make_parent(s->file);
    if (rc)
        goto out_free;
    s->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        rc = -errno;
        goto out_free;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? PARLEY_ELOCKED : -errno;
        goto out_free;
    }
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
    free(lockpath);
    *out = &s->base;
    return 0;

out_free:
    free(lockpath);
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

static int sq_begin(parley_db_t *db)
{
    return exec_simple(db, sq(db)->writer ? S_BEGIN : S_BEGIN_READ);
}

static int sq_commit(parley_db_t *db)
{
    return exec_simple(db, S_COMMIT);
}

static int sq_rollback(parley_db_t *db)
{
    if (sqlite3_get_autocommit(sq(db)->conn))
        return 0; /* SQLite already rolled back (e.g. after an I/O error) */
    return exec_simple(db, S_ROLLBACK);
}

static int sq_savepoint(parley_db_t *db)
{
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
    if (txn_lost(db))
        return PARLEY_ESTORE;
    int rc = exec_simple(db, S_ROLLBACK_TO);
    if (rc == 0)
        rc = exec_simple(db, S_RELEASE);
    return rc && txn_lost(db) ? PARLEY_ESTORE : rc;
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

static void row_to_stream(sqlite3_stmt *st, parley_stream_t *s)
{
    s->id = sqlite3_column_int64(st, 0);
    copy_text(s->path, sizeof s->path, st, 1);
    copy_text(s->owner, sizeof s->owner, st, 2);
    copy_text(s->content_type, sizeof s->content_type, st, 3);
    s->created_ms = sqlite3_column_int64(st, 4);
    s->touched_ms = sqlite3_column_int64(st, 5);
    s->ttl_s = sqlite3_column_type(st, 6) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 6);
    s->expires_ms = sqlite3_column_type(st, 7) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 7);
    s->tail = (uint64_t)sqlite3_column_int64(st, 8);
    s->closed = sqlite3_column_int(st, 9) != 0;
    copy_text(s->closer, sizeof s->closer, st, 10);
    s->closer_epoch = (uint64_t)sqlite3_column_int64(st, 11);
    s->closer_seq = (uint64_t)sqlite3_column_int64(st, 12);
    copy_text(s->stream_seq, sizeof s->stream_seq, st, 13);
    s->fork_src = sqlite3_column_int64(st, 14);
    s->fork_pos = (uint64_t)sqlite3_column_int64(st, 15);
    s->refs = sqlite3_column_int64(st, 16);
    s->deleted = sqlite3_column_int(st, 17) != 0;
}

static int stream_fetch(parley_db_t *db, sqlite3_stmt *st, parley_stream_t *out)
{
    int rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW)
        row_to_stream(st, out);
    else if (rc == SQLITE_DONE)
        err = PARLEY_ENOTFOUND;
    else
        err = db_error(db, rc, "stream lookup");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_stream_get(parley_db_t *db, const char *path, parley_stream_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    return stream_fetch(db, st, out);
}

static int sq_stream_get_id(parley_db_t *db, int64_t id, parley_stream_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_GET_ID, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    return stream_fetch(db, st, out);
}

static void bind_opt_int(sqlite3_stmt *st, int col, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(st, col);
    else
        sqlite3_bind_int64(st, col, v);
}

static void bind_opt_text(sqlite3_stmt *st, int col, const char *s)
{
    if (!s[0])
        sqlite3_bind_null(st, col);
    else
        sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
}

static int sq_stream_create(parley_db_t *db, parley_stream_t *s)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_INSERT, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, s->path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->content_type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, s->created_ms);
    sqlite3_bind_int64(st, 5, s->touched_ms);
    bind_opt_int(st, 6, s->ttl_s);
    bind_opt_int(st, 7, s->expires_ms);
    sqlite3_bind_int64(st, 8, (int64_t)s->tail);
    sqlite3_bind_int(st, 9, s->closed);
    bind_opt_text(st, 10, s->closer);
    sqlite3_bind_int64(st, 11, (int64_t)s->closer_epoch);
    sqlite3_bind_int64(st, 12, (int64_t)s->closer_seq);
    bind_opt_text(st, 13, s->stream_seq);
    if (s->fork_src)
        sqlite3_bind_int64(st, 14, s->fork_src);
    else
        sqlite3_bind_null(st, 14);
    sqlite3_bind_int64(st, 15, (int64_t)s->fork_pos);
    sqlite3_bind_int64(st, 16, s->refs);
    sqlite3_bind_int(st, 17, s->deleted);
    rc = exec_stmt(db, st, "stream insert");
    if (rc == 0)
        s->id = sqlite3_last_insert_rowid(sq(db)->conn);
    return rc;
}

static int sq_stream_remove(parley_db_t *db, int64_t id)
{
    static const enum stmt_id steps[] = {S_STREAM_DEL_CHUNKS, S_STREAM_DEL_PRODUCERS, S_STREAM_DEL};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *st = NULL;
        int rc = prep(db, steps[i], &st);
        if (rc)
            return rc;
        sqlite3_bind_int64(st, 1, id);
        rc = exec_stmt(db, st, "stream remove");
        if (rc)
            return rc;
    }
    return 0;
}

static int sq_stream_expired(parley_db_t *db, int64_t now_ms, int64_t *ids, int max, int *n)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_EXPIRED, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, max);
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
        ids[(*n)++] = sqlite3_column_int64(st, 0);
    int err = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(db, rc, "expiry scan");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

/*
 * Step a statement with RETURNING (or a one-row SELECT): the first row's
 * first n integer columns into vals (vals may be NULL when n is 0).
 * PARLEY_ENOTFOUND when it returned no row (nothing matched its WHERE).
 */
static int step_returning(parley_db_t *db, sqlite3_stmt *st, int64_t *vals, int n, const char *what)
{
    int rc = sqlite3_step(st);
    int err = rc == SQLITE_ROW ? 0 : PARLEY_ENOTFOUND;
    if (rc == SQLITE_ROW) {
        for (int i = 0; i < n; i++)
            vals[i] = sqlite3_column_int64(st, i);
        while (rc == SQLITE_ROW)
            rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE)
        err = db_error(db, rc, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int chunk_put(parley_db_t *db, int64_t stream_id, uint64_t start, uint64_t end,
                     uint64_t unit_end, const void *data, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_CHUNK_INSERT, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_int64(st, 2, (int64_t)end);
    sqlite3_bind_int64(st, 3, (int64_t)start);
    sqlite3_bind_int64(st, 4, (int64_t)unit_end);
    sqlite3_bind_blob64(st, 5, len ? data : "", len, SQLITE_STATIC);
    return exec_stmt(db, st, "chunk insert");
}

#define ROW_BYTES (64 * 1024) /* a byte stream's append is stored in rows this large */

/* Why a conditional stream update matched no row: gone or moved. */
static int stream_missed(parley_db_t *db, int64_t id, int moved)
{
    parley_stream_t cur;
    int rc = sq_stream_get_id(db, id, &cur);
    return rc ? rc : moved;
}

static int sq_stream_append(parley_db_t *db, int64_t id, const void *data, size_t len,
                            uint64_t units, int64_t now_ms, const char *stream_seq,
                            int64_t expect_tail, uint64_t *new_tail)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_APPEND, &st);
    if (rc)
        return rc;
    if (units > PARLEY_OFFSET_MAX)
        return PARLEY_ETOOBIG;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)units);
    sqlite3_bind_int64(st, 3, now_ms);
    if (stream_seq && stream_seq[0])
        sqlite3_bind_text(st, 4, stream_seq, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, expect_tail);
    sqlite3_bind_int64(st, 6, (int64_t)PARLEY_OFFSET_MAX);
    int64_t tail = 0;
    rc = step_returning(db, st, &tail, 1, "stream append");
    if (rc == PARLEY_ENOTFOUND) {
        parley_stream_t cur;
        rc = sq_stream_get_id(db, id, &cur);
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
        /* Rows of at most ROW_BYTES, all naming the append's end as their
         * unit: a reader's window then costs the rows it covers, never a
         * whole 8 MiB append. */
        for (size_t off = 0; rc == 0 && off < len; off += ROW_BYTES) {
            size_t n = len - off < ROW_BYTES ? len - off : ROW_BYTES;
            rc = chunk_put(db, id, pos + off, pos + off + n, end, (const char *)data + off, n);
        }
    } else {
        rc = chunk_put(db, id, pos, end, end, data, len);
    }
    if (rc == 0)
        *new_tail = end;
    return rc;
}

static int sq_stream_close(parley_db_t *db, int64_t id, const char *closer, uint64_t epoch,
                           uint64_t seq, int64_t now_ms, uint64_t *tail)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_CLOSE, &st);
    if (rc)
        return rc;
    bool named = closer && closer[0];
    sqlite3_bind_int64(st, 1, id);
    if (named)
        sqlite3_bind_text(st, 2, closer, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, named ? (int64_t)epoch : 0);
    sqlite3_bind_int64(st, 4, named ? (int64_t)seq : 0);
    sqlite3_bind_int64(st, 5, now_ms);
    int64_t t = 0;
    rc = step_returning(db, st, &t, 1, "stream close");
    if (rc == PARLEY_ENOTFOUND) { /* closed already (a no-op), or missing */
        parley_stream_t cur;
        rc = sq_stream_get_id(db, id, &cur);
        t = (int64_t)cur.tail;
    }
    if (rc == 0)
        *tail = (uint64_t)t;
    return rc;
}

static int sq_stream_touch(parley_db_t *db, int64_t id, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_TOUCH, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    int64_t t;
    return step_returning(db, st, &t, 1, "stream touch");
}

static int sq_stream_ref(parley_db_t *db, int64_t id, int delta, parley_stream_ref_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_REF, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, delta);
    int64_t v[3] = {0, 0, 0};
    rc = step_returning(db, st, v, 3, "stream ref");
    if (rc == 0) {
        out->refs = v[0];
        out->deleted = v[1] != 0;
        out->fork_src = v[2];
    }
    return rc;
}

static int sq_stream_mark_deleted(parley_db_t *db, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STREAM_MARK_DELETED, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int64_t refs;
    rc = step_returning(db, st, &refs, 1, "stream soft delete");
    return rc == PARLEY_ENOTFOUND ? stream_missed(db, id, PARLEY_ECONFLICT) : rc;
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
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t start = (uint64_t)sqlite3_column_int64(st, 0);
        uint64_t end = (uint64_t)sqlite3_column_int64(st, 1);
        uint64_t unit_end = (uint64_t)sqlite3_column_int64(st, 2);
        const void *data = sqlite3_column_blob(st, 3);
        size_t len = (size_t)sqlite3_column_bytes(st, 3);
        if (cb(arg, start, end, unit_end, data, len))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db_error(db, rc, "chunk scan");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_producer_get(parley_db_t *db, int64_t stream_id, const char *producer,
                           parley_producer_state_t *ps)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_PRODUCER_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_text(st, 2, producer, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int err = 0;
    ps->exists = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
        ps->epoch = (uint64_t)sqlite3_column_int64(st, 0);
        ps->last_seq = (uint64_t)sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        err = db_error(db, rc, "producer lookup");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_producer_put(parley_db_t *db, int64_t stream_id, const char *producer,
                           const parley_producer_state_t *ps)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_PRODUCER_PUT, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, stream_id);
    sqlite3_bind_text(st, 2, producer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)ps->epoch);
    sqlite3_bind_int64(st, 4, (int64_t)ps->last_seq);
    return exec_stmt(db, st, "producer store");
}

/* ---- idempotency records ------------------------------------------------ */

static int sq_idem_get(parley_db_t *db, const char *owner, const char *key, char *fingerprint,
                       int64_t *created_ms, char **resp, size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_IDEM_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW) {
        copy_text(fingerprint, 65, st, 0);
        *created_ms = sqlite3_column_int64(st, 1);
        size_t n = (size_t)sqlite3_column_bytes(st, 2);
        const void *b = sqlite3_column_blob(st, 2);
        *resp = malloc(n + 1);
        if (!*resp) {
            err = PARLEY_ENOMEM;
        } else {
            if (n)
                memcpy(*resp, b, n);
            (*resp)[n] = '\0';
            *len = n;
        }
    } else if (rc == SQLITE_DONE) {
        err = PARLEY_ENOTFOUND;
    } else {
        err = db_error(db, rc, "idempotency lookup");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_idem_put(parley_db_t *db, const char *owner, const char *key, const char *fingerprint,
                       int64_t now_ms, int64_t expired_before_ms, const char *resp, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_IDEM_PUT, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    sqlite3_bind_blob64(st, 5, len ? resp : "", len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, expired_before_ms);
    rc = exec_stmt(db, st, "idempotency store");
    if (rc == 0 && sqlite3_changes(sq(db)->conn) == 0)
        rc = PARLEY_EEXIST; /* a live record: the first request's answer stands */
    return rc;
}

static int sq_idem_purge(parley_db_t *db, int64_t before_ms, int limit, int *n)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_IDEM_PURGE, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int(st, 2, limit);
    rc = exec_stmt(db, st, "idempotency purge");
    *n = rc ? 0 : sqlite3_changes(sq(db)->conn);
    return rc;
}

/* ---- documents ------------------------------------------------------------ */

static int dup_text(sqlite3_stmt *st, int col, char **out, size_t *len)
{
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    const unsigned char *t = sqlite3_column_text(st, col);
    char *p = malloc(n + 1);
    if (!p)
        return PARLEY_ENOMEM;
    if (n)
        memcpy(p, t, n);
    p[n] = '\0';
    *out = p;
    *len = n;
    return 0;
}

static int sq_doc_get(parley_db_t *db, const char *owner, const char *collection, const char *id,
                      parley_doc_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_DOC_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, collection, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW) {
        snprintf(out->owner, sizeof out->owner, "%s", owner);
        snprintf(out->collection, sizeof out->collection, "%s", collection);
        snprintf(out->id, sizeof out->id, "%s", id);
        out->version = sqlite3_column_int64(st, 0);
        out->deleted = sqlite3_column_int(st, 1) != 0;
        err = dup_text(st, 2, &out->data, &out->len);
        copy_text(out->checksum, sizeof out->checksum, st, 3);
        out->created_ms = sqlite3_column_int64(st, 4);
        out->updated_ms = sqlite3_column_int64(st, 5);
        out->chg = sqlite3_column_int64(st, 6);
    } else if (rc == SQLITE_DONE) {
        err = PARLEY_ENOTFOUND;
    } else {
        err = db_error(db, rc, "document lookup");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static void bind_doc(sqlite3_stmt *st, const parley_doc_t *d);

static int next_counter(parley_db_t *db, const char *name, int64_t *out);

/* Counter names: the same rows the server has always numbered from. */
#define COUNTER_DOC      "document_change"
#define COUNTER_ACTIVITY "conversation_activity"
#define COUNTER_SESSION  "session"
#define COUNTER_SNAPSHOT "snapshot"

static int sq_doc_write(parley_db_t *db, parley_doc_t *d, int64_t expect_version)
{
    sqlite3_stmt *st = NULL;
    int64_t chg;
    int rc = next_counter(db, COUNTER_DOC, &chg);
    if (rc == 0)
        rc = prep(db, S_DOC_WRITE, &st);
    if (rc)
        return rc;
    int64_t was = d->chg;
    d->chg = chg;
    bind_doc(st, d);
    sqlite3_bind_int64(st, 11, expect_version);
    rc = exec_stmt(db, st, "document write");
    if (rc == 0 && sqlite3_changes(sq(db)->conn) == 0)
        rc = PARLEY_ECONFLICT;
    if (rc)
        d->chg = was; /* nothing written: the row is as given */
    return rc;
}

static void bind_doc(sqlite3_stmt *st, const parley_doc_t *d)
{
    sqlite3_bind_text(st, 1, d->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->collection, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, d->version);
    sqlite3_bind_int(st, 5, d->deleted);
    sqlite3_bind_text(st, 6, d->data ? d->data : "null", d->data ? (int)d->len : 4, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, d->checksum, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, d->created_ms);
    sqlite3_bind_int64(st, 9, d->updated_ms);
    sqlite3_bind_int64(st, 10, d->chg);
}

static int sq_doc_list(parley_db_t *db, const char *owner, const char *collection, int64_t before,
                       int limit, int (*cb)(void *arg, const parley_doc_t *d), void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_DOC_LIST, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, collection, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(st, 4, limit);
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        parley_doc_t d;
        memset(&d, 0, sizeof d);
        snprintf(d.owner, sizeof d.owner, "%s", owner);
        snprintf(d.collection, sizeof d.collection, "%s", collection);
        copy_text(d.id, sizeof d.id, st, 0);
        d.version = sqlite3_column_int64(st, 1);
        d.data = (char *)sqlite3_column_text(st, 2);
        d.len = (size_t)sqlite3_column_bytes(st, 2);
        copy_text(d.checksum, sizeof d.checksum, st, 3);
        d.created_ms = sqlite3_column_int64(st, 4);
        d.updated_ms = sqlite3_column_int64(st, 5);
        d.chg = sqlite3_column_int64(st, 6);
        if (cb(arg, &d))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db_error(db, rc, "document list");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int next_counter(parley_db_t *db, const char *name, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_COUNTER_NEXT, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        err = db_error(db, rc, "counter");
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

/* ---- conversations, sessions, snapshots ---------------------------------- */

/* Column col as a new NUL-terminated string, or NULL for SQL NULL. */
static int dup_opt_text(sqlite3_stmt *st, int col, char **out)
{
    size_t n;
    *out = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    return dup_text(st, col, out, &n);
}

static int64_t opt_int(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col);
}

static void bind_nullable(sqlite3_stmt *st, int col, const char *s)
{
    if (s)
        sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, col);
}

/* Step a statement that returns one row at most; fill via fn. */
static int fetch_one(parley_db_t *db, sqlite3_stmt *st, int (*fn)(sqlite3_stmt *, void *),
                     void *out, const char *what)
{
    int rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW)
        err = fn(st, out);
    else if (rc == SQLITE_DONE)
        err = PARLEY_ENOTFOUND;
    else
        err = db_error(db, rc, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

/* Fill c from a CONV_COLS row; borrow: point at the row's text instead of copying. */
static int row_to_conv(sqlite3_stmt *st, parley_conv_t *c, bool borrow)
{
    memset(c, 0, sizeof *c);
    copy_text(c->id, sizeof c->id, st, 0);
    copy_text(c->owner, sizeof c->owner, st, 1);
    c->version = sqlite3_column_int64(st, 4);
    c->created_ms = sqlite3_column_int64(st, 5);
    c->updated_ms = sqlite3_column_int64(st, 6);
    c->message_count = sqlite3_column_int64(st, 7);
    c->last_message_ms = opt_int(st, 8);
    c->activity = sqlite3_column_int64(st, 9);
    c->deleted = sqlite3_column_int(st, 10) != 0;
    if (borrow) {
        c->title =
            sqlite3_column_type(st, 2) == SQLITE_NULL ? NULL : (char *)sqlite3_column_text(st, 2);
        c->metadata = (char *)sqlite3_column_text(st, 3);
        return 0;
    }
    int rc = dup_opt_text(st, 2, &c->title);
    if (rc == 0)
        rc = dup_opt_text(st, 3, &c->metadata);
    if (rc)
        parley_conv_clear(c);
    return rc;
}

static int fetch_conv(sqlite3_stmt *st, void *out)
{
    return row_to_conv(st, out, false);
}

static int sq_conv_get(parley_db_t *db, const char *id, parley_conv_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_CONV_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return fetch_one(db, st, fetch_conv, out, "conversation lookup");
}

static void bind_conv(sqlite3_stmt *st, const parley_conv_t *c);

static int sq_conv_insert(parley_db_t *db, parley_conv_t *c)
{
    sqlite3_stmt *st = NULL;
    int64_t activity;
    int rc = next_counter(db, COUNTER_ACTIVITY, &activity);
    if (rc == 0)
        rc = prep(db, S_CONV_INSERT, &st);
    if (rc)
        return rc;
    int64_t was = c->activity;
    c->activity = activity;
    bind_conv(st, c);
    rc = exec_stmt(db, st, "conversation insert");
    if (rc)
        c->activity = was; /* nothing written: the row is as given */
    return rc;
}

/* Why a conditional update of a row keyed by a text id matched nothing. */
static int row_missed(parley_db_t *db, const char *table, const char *id)
{
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

static int sq_conv_update(parley_db_t *db, parley_conv_t *c, int64_t expect_version)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_CONV_UPDATE, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    bind_nullable(st, 2, c->title);
    sqlite3_bind_text(st, 3, c->metadata ? c->metadata : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, c->updated_ms);
    sqlite3_bind_int64(st, 5, expect_version);
    int64_t v = 0;
    rc = step_returning(db, st, &v, 1, "conversation update");
    if (rc == PARLEY_ENOTFOUND)
        return row_missed(db, "conversations", c->id);
    if (rc == 0)
        c->version = v;
    return rc;
}

static int sq_conv_bump(parley_db_t *db, const char *id, int64_t now_ms, int64_t *seq,
                        int64_t *version, int64_t *activity)
{
    sqlite3_stmt *st = NULL;
    int64_t next;
    int rc = next_counter(db, COUNTER_ACTIVITY, &next);
    if (rc == 0)
        rc = prep(db, S_CONV_BUMP, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int64(st, 3, next);
    int64_t v[3];
    rc = step_returning(db, st, v, 3, "conversation bump");
    if (rc == PARLEY_ENOTFOUND)
        return row_missed(db, "conversations", id);
    if (rc == 0) {
        *seq = v[0];
        *version = v[1];
        *activity = v[2];
    }
    return rc;
}

static int sq_conv_tombstone(parley_db_t *db, const char *id, int64_t now_ms, int64_t *version)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_CONV_TOMBSTONE, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    return step_returning(db, st, version, 1, "conversation tombstone");
}

static void bind_conv(sqlite3_stmt *st, const parley_conv_t *c)
{
    sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->owner, -1, SQLITE_STATIC);
    bind_nullable(st, 3, c->title);
    sqlite3_bind_text(st, 4, c->metadata ? c->metadata : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, c->version);
    sqlite3_bind_int64(st, 6, c->created_ms);
    sqlite3_bind_int64(st, 7, c->updated_ms);
    sqlite3_bind_int64(st, 8, c->message_count);
    bind_opt_int(st, 9, c->last_message_ms);
    sqlite3_bind_int64(st, 10, c->activity);
    sqlite3_bind_int(st, 11, c->deleted);
}

static int sq_conv_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                        int (*cb)(void *arg, const parley_conv_t *c), void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_CONV_LIST, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(st, 3, limit);
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        parley_conv_t c;
        row_to_conv(st, &c, true);
        if (cb(arg, &c))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db_error(db, rc, "conversation list");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int row_to_sess(sqlite3_stmt *st, parley_sess_t *s, bool borrow)
{
    memset(s, 0, sizeof *s);
    copy_text(s->id, sizeof s->id, st, 0);
    copy_text(s->conversation_id, sizeof s->conversation_id, st, 1);
    copy_text(s->owner, sizeof s->owner, st, 2);
    copy_text(s->message_id, sizeof s->message_id, st, 3);
    copy_text(s->result_id, sizeof s->result_id, st, 4);
    copy_text(s->status, sizeof s->status, st, 5);
    s->attempt = sqlite3_column_int64(st, 6);
    s->max_attempts = sqlite3_column_int64(st, 7);
    s->lease_ms = sqlite3_column_int64(st, 8);
    s->lease_expires_ms = opt_int(st, 9);
    s->created_ms = sqlite3_column_int64(st, 13);
    s->updated_ms = sqlite3_column_int64(st, 14);
    s->ord = sqlite3_column_int64(st, 15);
    if (borrow) {
        char **f[3] = {&s->error, &s->request, &s->input};
        for (int i = 0; i < 3; i++)
            *f[i] = sqlite3_column_type(st, 10 + i) == SQLITE_NULL
                        ? NULL
                        : (char *)sqlite3_column_text(st, 10 + i);
        return 0;
    }
    int rc = dup_opt_text(st, 10, &s->error);
    if (rc == 0)
        rc = dup_opt_text(st, 11, &s->request);
    if (rc == 0)
        rc = dup_opt_text(st, 12, &s->input);
    if (rc)
        parley_sess_clear(s);
    return rc;
}

static int fetch_sess(sqlite3_stmt *st, void *out)
{
    return row_to_sess(st, out, false);
}

static int sq_sess_get(parley_db_t *db, const char *id, parley_sess_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SESS_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return fetch_one(db, st, fetch_sess, out, "session lookup");
}

static void bind_sess(sqlite3_stmt *st, const parley_sess_t *s);

static int sq_sess_insert(parley_db_t *db, parley_sess_t *s)
{
    sqlite3_stmt *st = NULL;
    int64_t ord;
    int rc = next_counter(db, COUNTER_SESSION, &ord);
    if (rc == 0)
        rc = prep(db, S_SESS_INSERT, &st);
    if (rc)
        return rc;
    int64_t was = s->ord;
    s->ord = ord;
    bind_sess(st, s);
    rc = exec_stmt(db, st, "session insert");
    if (rc)
        s->ord = was; /* nothing written: the row is as given */
    return rc;
}

static int sq_sess_update(parley_db_t *db, const parley_sess_t *s, const char *expect_status,
                          int64_t expect_attempt)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SESS_UPDATE, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    bind_opt_text(st, 2, s->result_id);
    sqlite3_bind_text(st, 3, s->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, s->attempt);
    sqlite3_bind_int64(st, 5, s->lease_ms);
    bind_opt_int(st, 6, s->lease_expires_ms);
    bind_nullable(st, 7, s->error);
    bind_nullable(st, 8, s->request);
    bind_nullable(st, 9, s->input);
    sqlite3_bind_int64(st, 10, s->updated_ms);
    sqlite3_bind_text(st, 11, expect_status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, expect_attempt);
    int64_t v = 0;
    rc = step_returning(db, st, &v, 1, "session update");
    return rc == PARLEY_ENOTFOUND ? row_missed(db, "sessions", s->id) : rc;
}

static int fetch_sess(sqlite3_stmt *st, void *out);

static int sq_sess_claim_next(parley_db_t *db, const char *conv_id, int64_t now_ms,
                              int64_t lease_ms, parley_sess_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, conv_id ? S_SESS_CLAIM_CONV : S_SESS_CLAIM, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, lease_ms);
    if (conv_id)
        sqlite3_bind_text(st, 3, conv_id, -1, SQLITE_STATIC);
    /* RETURNING rows come before the statement completes: read the one
     * row, then run it to the end. */
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW) {
        err = fetch_sess(st, out);
        while (rc == SQLITE_ROW)
            rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            if (err == 0)
                parley_sess_clear(out);
            err = err ? err : db_error(db, rc, "session claim");
        }
    } else if (rc == SQLITE_DONE) {
        err = PARLEY_ENOTFOUND;
    } else {
        err = db_error(db, rc, "session claim");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static void bind_sess(sqlite3_stmt *st, const parley_sess_t *s)
{
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->conversation_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s->message_id, -1, SQLITE_STATIC);
    bind_opt_text(st, 5, s->result_id);
    sqlite3_bind_text(st, 6, s->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, s->attempt);
    sqlite3_bind_int64(st, 8, s->max_attempts);
    sqlite3_bind_int64(st, 9, s->lease_ms);
    bind_opt_int(st, 10, s->lease_expires_ms);
    bind_nullable(st, 11, s->error);
    bind_nullable(st, 12, s->request);
    bind_nullable(st, 13, s->input);
    sqlite3_bind_int64(st, 14, s->created_ms);
    sqlite3_bind_int64(st, 15, s->updated_ms);
    sqlite3_bind_int64(st, 16, s->ord);
}

static int remove_by_id(parley_db_t *db, enum stmt_id sid, const char *id, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, sid, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return exec_stmt(db, st, what);
}

static int sq_sess_remove(parley_db_t *db, const char *id)
{
    return remove_by_id(db, S_SESS_DEL, id, "session remove");
}

static int sq_sess_list(parley_db_t *db, const char *conversation_id, const char *status,
                        int64_t before, int limit, int (*cb)(void *arg, const parley_sess_t *s),
                        void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, status ? S_SESS_LIST_STATUS : S_SESS_LIST, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, conversation_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(st, 3, limit);
    if (status)
        sqlite3_bind_text(st, 4, status, -1, SQLITE_STATIC);
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        parley_sess_t s;
        row_to_sess(st, &s, true);
        if (cb(arg, &s))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db_error(db, rc, "session list");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

/* Collect the first column of up to max rows of a (now, limit) query. */
static int scan_ids(parley_db_t *db, enum stmt_id sid, int64_t now_ms,
                    char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, sid, &st);
    *n = 0;
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, max);
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        copy_text(ids[*n], PARLEY_ROW_ID_MAX + 1, st, 0);
        (*n)++;
    }
    int err = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(db, rc, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_sess_expired(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                           int max, int *n)
{
    return scan_ids(db, S_SESS_EXPIRED, now_ms, ids, max, n, "lease scan");
}

static int row_to_snap(sqlite3_stmt *st, parley_snap_t *s, bool borrow)
{
    memset(s, 0, sizeof *s);
    copy_text(s->id, sizeof s->id, st, 0);
    copy_text(s->owner, sizeof s->owner, st, 1);
    copy_text(s->source, sizeof s->source, st, 2);
    copy_text(s->kind, sizeof s->kind, st, 3);
    s->is_public = sqlite3_column_int(st, 5) != 0;
    s->created_ms = sqlite3_column_int64(st, 6);
    s->expires_ms = opt_int(st, 7);
    copy_text(s->stream, sizeof s->stream, st, 8);
    s->ord = sqlite3_column_int64(st, 10);
    if (borrow) {
        s->title =
            sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL : (char *)sqlite3_column_text(st, 4);
        s->payload = (char *)sqlite3_column_text(st, 9);
        return 0;
    }
    int rc = dup_opt_text(st, 4, &s->title);
    if (rc == 0)
        rc = dup_opt_text(st, 9, &s->payload);
    if (rc)
        parley_snap_clear(s);
    return rc;
}

static int fetch_snap(sqlite3_stmt *st, void *out)
{
    return row_to_snap(st, out, false);
}

static int sq_snap_get(parley_db_t *db, const char *id, parley_snap_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SNAP_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return fetch_one(db, st, fetch_snap, out, "snapshot lookup");
}

static void bind_snap(sqlite3_stmt *st, const parley_snap_t *s);

static int sq_snap_insert(parley_db_t *db, parley_snap_t *s)
{
    sqlite3_stmt *st = NULL;
    int64_t ord;
    int rc = next_counter(db, COUNTER_SNAPSHOT, &ord);
    if (rc == 0)
        rc = prep(db, S_SNAP_INSERT, &st);
    if (rc)
        return rc;
    int64_t was = s->ord;
    s->ord = ord;
    bind_snap(st, s);
    rc = exec_stmt(db, st, "snapshot insert");
    if (rc)
        s->ord = was; /* nothing written: the row is as given */
    return rc;
}

static int sq_snap_expire(parley_db_t *db, const char *id)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SNAP_EXPIRE, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int64_t ord;
    return step_returning(db, st, &ord, 1, "snapshot expiry");
}

static void bind_snap(sqlite3_stmt *st, const parley_snap_t *s)
{
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s->kind, -1, SQLITE_STATIC);
    bind_nullable(st, 5, s->title);
    sqlite3_bind_int(st, 6, s->is_public);
    sqlite3_bind_int64(st, 7, s->created_ms);
    bind_opt_int(st, 8, s->expires_ms);
    bind_opt_text(st, 9, s->stream);
    sqlite3_bind_text(st, 10, s->payload ? s->payload : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, s->ord);
}

static int sq_snap_remove(parley_db_t *db, const char *id)
{
    return remove_by_id(db, S_SNAP_DEL, id, "snapshot remove");
}

static int sq_snap_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                        int (*cb)(void *arg, const parley_snap_t *s), void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SNAP_LIST, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int(st, 3, limit);
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        parley_snap_t s;
        row_to_snap(st, &s, true);
        if (cb(arg, &s))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db_error(db, rc, "snapshot list");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_snap_expired(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                           int max, int *n)
{
    return scan_ids(db, S_SNAP_EXPIRED, now_ms, ids, max, n, "snapshot expiry scan");
}

/* ---- subscriptions ---- */

static void row_to_sub(sqlite3_stmt *st, parley_sub_t *s)
{
    memset(s, 0, sizeof *s);
    copy_text(s->id, sizeof s->id, st, 0);
    copy_text(s->type, sizeof s->type, st, 1);
    copy_text(s->pattern, sizeof s->pattern, st, 2);
    copy_text(s->webhook_url, sizeof s->webhook_url, st, 3);
    copy_text(s->wake_stream, sizeof s->wake_stream, st, 4);
    copy_text(s->description, sizeof s->description, st, 5);
    s->lease_ttl_ms = sqlite3_column_int64(st, 6);
    copy_text(s->config_hash, sizeof s->config_hash, st, 7);
    copy_text(s->root_url, sizeof s->root_url, st, 8);
    s->created_ms = sqlite3_column_int64(st, 9);
    s->generation = sqlite3_column_int64(st, 10);
    copy_text(s->wake_id, sizeof s->wake_id, st, 11);
    copy_text(s->holder, sizeof s->holder, st, 12);
    s->lease_expires_ms = opt_int(st, 13);
    s->delivery_due_ms = opt_int(st, 14);
    s->attempts = sqlite3_column_int64(st, 15);
}

static int fetch_sub(sqlite3_stmt *st, void *out)
{
    row_to_sub(st, out);
    return 0;
}

static int sq_sub_get(parley_db_t *db, const char *id, parley_sub_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SUB_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    return fetch_one(db, st, fetch_sub, out, "subscription lookup");
}

static void bind_sub(sqlite3_stmt *st, const parley_sub_t *s);

static int sq_sub_put_config(parley_db_t *db, const parley_sub_t *s)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SUB_PUT_CONFIG, &st);
    if (rc)
        return rc;
    bind_sub(st, s);
    return exec_stmt(db, st, "subscription config store");
}

static int sq_sub_begin_wake(parley_db_t *db, const char *id, const char *wake_id,
                             int64_t lease_exp_ms, int64_t due_ms, int64_t *generation)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SUB_BEGIN_WAKE, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, wake_id, -1, SQLITE_STATIC);
    bind_opt_int(st, 3, lease_exp_ms);
    bind_opt_int(st, 4, due_ms);
    int64_t g = 0;
    rc = step_returning(db, st, &g, 1, "subscription wake");
    if (rc == PARLEY_ENOTFOUND)
        return row_missed(db, "subscriptions", id);
    if (rc == 0)
        *generation = g;
    return rc;
}

static int sq_sub_update(parley_db_t *db, const parley_sub_t *s, int64_t expect_generation,
                         const char *expect_wake_id)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SUB_UPDATE, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    bind_opt_text(st, 2, s->wake_id);
    bind_opt_text(st, 3, s->holder);
    bind_opt_int(st, 4, s->lease_expires_ms);
    bind_opt_int(st, 5, s->delivery_due_ms);
    sqlite3_bind_int64(st, 6, s->attempts);
    sqlite3_bind_int64(st, 7, expect_generation);
    sqlite3_bind_text(st, 8, expect_wake_id ? expect_wake_id : "", -1, SQLITE_STATIC);
    int64_t g = 0;
    rc = step_returning(db, st, &g, 1, "subscription update");
    return rc == PARLEY_ENOTFOUND ? row_missed(db, "subscriptions", s->id) : rc;
}

static void bind_sub(sqlite3_stmt *st, const parley_sub_t *s)
{
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->type, -1, SQLITE_STATIC);
    bind_opt_text(st, 3, s->pattern);
    bind_opt_text(st, 4, s->webhook_url);
    bind_opt_text(st, 5, s->wake_stream);
    bind_opt_text(st, 6, s->description);
    sqlite3_bind_int64(st, 7, s->lease_ttl_ms);
    sqlite3_bind_text(st, 8, s->config_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, s->root_url, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, s->created_ms);
    sqlite3_bind_int64(st, 11, s->generation);
    bind_opt_text(st, 12, s->wake_id);
    bind_opt_text(st, 13, s->holder);
    bind_opt_int(st, 14, s->lease_expires_ms);
    bind_opt_int(st, 15, s->delivery_due_ms);
    sqlite3_bind_int64(st, 16, s->attempts);
}

static int sq_sub_remove(parley_db_t *db, const char *id)
{
    int rc = remove_by_id(db, S_SUB_DEL_LINKS, id, "subscription links remove");
    return rc ? rc : remove_by_id(db, S_SUB_DEL, id, "subscription remove");
}

static int sq_sub_with_pattern(parley_db_t *db, int (*cb)(void *arg, const parley_sub_t *s),
                               void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SUB_PATTERNS, &st);
    if (rc)
        return rc;
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        parley_sub_t s;
        row_to_sub(st, &s);
        if (cb(arg, &s))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db_error(db, rc, "subscription pattern scan");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_sub_leases_expired(parley_db_t *db, int64_t now_ms,
                                 char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return scan_ids(db, S_SUB_LEASES, now_ms, ids, max, n, "subscription lease scan");
}

static int sq_sub_deliveries_due(parley_db_t *db, int64_t now_ms,
                                 char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return scan_ids(db, S_SUB_DUE, now_ms, ids, max, n, "subscription delivery scan");
}

static int sq_sub_next_delivery(parley_db_t *db, int64_t *due_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_SUB_NEXT_DUE, &st);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    int err = 0;
    *due_ms = -1;
    if (rc == SQLITE_ROW)
        *due_ms = opt_int(st, 0);
    else if (rc != SQLITE_DONE)
        err = db_error(db, rc, "subscription delivery scan");
    sqlite3_reset(st);
    return err;
}

static void row_to_link(sqlite3_stmt *st, parley_sub_link_t *l)
{
    copy_text(l->sub_id, sizeof l->sub_id, st, 0);
    copy_text(l->path, sizeof l->path, st, 1);
    l->by_glob = sqlite3_column_int(st, 2) != 0;
    l->by_explicit = sqlite3_column_int(st, 3) != 0;
    l->acked = (uint64_t)sqlite3_column_int64(st, 4);
    l->wake_tail = opt_int(st, 5);
}

static int fetch_link(sqlite3_stmt *st, void *out)
{
    row_to_link(st, out);
    return 0;
}

static int sq_sublink_get(parley_db_t *db, const char *sub_id, const char *path,
                          parley_sub_link_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_LINK_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    return fetch_one(db, st, fetch_link, out, "subscription link lookup");
}

static int sq_sublink_put(parley_db_t *db, const parley_sub_link_t *l)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_LINK_PUT, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, l->sub_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, l->path, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, l->by_glob);
    sqlite3_bind_int(st, 4, l->by_explicit);
    sqlite3_bind_int64(st, 5, (int64_t)l->acked);
    bind_opt_int(st, 6, l->wake_tail);
    return exec_stmt(db, st, "subscription link store");
}

static int sq_sublink_advance(parley_db_t *db, const char *sub_id, const char *path, uint64_t pos)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_LINK_ADVANCE, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)pos);
    int64_t acked = 0;
    rc = step_returning(db, st, &acked, 1, "subscription link advance");
    if (rc == PARLEY_ENOTFOUND) {
        parley_sub_link_t l;
        rc = sq_sublink_get(db, sub_id, path, &l);
        return rc ? rc : PARLEY_ECONFLICT;
    }
    return rc;
}

static int sq_sublink_remove(parley_db_t *db, const char *sub_id, const char *path)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_LINK_DEL, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    return exec_stmt(db, st, "subscription link remove");
}

static int sq_sublink_list(parley_db_t *db, const char *sub_id, const char *path,
                           int (*cb)(void *arg, const parley_sub_link_t *l), void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, sub_id ? S_LINK_LIST_SUB : S_LINK_LIST_PATH, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, sub_id ? sub_id : path, -1, SQLITE_STATIC);
    int err = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        parley_sub_link_t l;
        row_to_link(st, &l);
        if (cb(arg, &l))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db_error(db, rc, "subscription link list");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

/* Run a statement without rows whose one parameter is a subscription id. */
static int exec_for_sub(parley_db_t *db, enum stmt_id sid, const char *sub_id, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, sid, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
    return exec_stmt(db, st, what);
}

static int sq_sublink_snapshot(parley_db_t *db, const char *sub_id)
{
    return exec_for_sub(db, S_LINK_SNAPSHOT, sub_id, "subscription snapshot");
}

static int sq_sublink_ack_snapshot(parley_db_t *db, const char *sub_id)
{
    return exec_for_sub(db, S_LINK_ACK_SNAPSHOT, sub_id, "subscription auto-ack");
}

static int sq_sublink_first_pending(parley_db_t *db, const char *sub_id, char *path)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_LINK_PENDING, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW)
        copy_text(path, PARLEY_PATH_MAX + 1, st, 0);
    else if (rc == SQLITE_DONE)
        err = PARLEY_ENOTFOUND;
    else
        err = db_error(db, rc, "subscription pending scan");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_stream_scan(parley_db_t *db, const char *prefix,
                          int (*cb)(void *arg, const parley_stream_t *s), void *arg)
{
    sqlite3_stmt *st = NULL;
    size_t plen = strlen(prefix);
    int rc = prep(db, S_STREAM_SCAN, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
    parley_stream_t *s = malloc(sizeof *s);
    int err = s ? 0 : PARLEY_ENOMEM;
    while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_stream(st, s);
        if (strncmp(s->path, prefix, plen) != 0)
            break; /* past the prefix's range */
        if (cb(arg, s))
            break;
    }
    if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db_error(db, rc, "stream scan");
    free(s);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

static int sq_key_get(parley_db_t *db, const char *name, unsigned char *out, size_t cap,
                      size_t *len)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_KEY_GET, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        if (n > cap) {
            err = PARLEY_ETOOBIG;
        } else {
            if (n)
                memcpy(out, sqlite3_column_blob(st, 0), n);
            *len = n;
        }
    } else if (rc == SQLITE_DONE) {
        err = PARLEY_ENOTFOUND;
    } else {
        err = db_error(db, rc, "key lookup");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

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
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_STAT_SUBS, &st);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    int err = 0;
    if (rc == SQLITE_ROW) {
        out->subs_webhook = sqlite3_column_int64(st, 0);
        out->subs_pull_wake = sqlite3_column_int64(st, 1);
    } else {
        err = db_error(db, rc, "statistics");
    }
    sqlite3_reset(st);
    return err;
}

static int sq_key_put(parley_db_t *db, const char *name, const unsigned char *data, size_t len,
                      int64_t created_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(db, S_KEY_PUT, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, data, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, created_ms);
    return exec_stmt(db, st, "key store");
}

/* The SQLite backend (store.h). */
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
    .stream_close = sq_stream_close,
    .stream_touch = sq_stream_touch,
    .stream_ref = sq_stream_ref,
    .stream_mark_deleted = sq_stream_mark_deleted,
    .stream_remove = sq_stream_remove,
    .stream_expired = sq_stream_expired,
    .stream_scan = sq_stream_scan,
    .chunk_scan = sq_chunk_scan,
    .producer_get = sq_producer_get,
    .producer_put = sq_producer_put,
    .idem_get = sq_idem_get,
    .idem_put = sq_idem_put,
    .idem_purge = sq_idem_purge,
    .doc_get = sq_doc_get,
    .doc_write = sq_doc_write,
    .doc_list = sq_doc_list,
    .conv_get = sq_conv_get,
    .conv_insert = sq_conv_insert,
    .conv_update = sq_conv_update,
    .conv_bump = sq_conv_bump,
    .conv_tombstone = sq_conv_tombstone,
    .conv_list = sq_conv_list,
    .sess_get = sq_sess_get,
    .sess_insert = sq_sess_insert,
    .sess_update = sq_sess_update,
    .sess_claim_next = sq_sess_claim_next,
    .sess_remove = sq_sess_remove,
    .sess_list = sq_sess_list,
    .sess_expired = sq_sess_expired,
    .snap_get = sq_snap_get,
    .snap_insert = sq_snap_insert,
    .snap_expire = sq_snap_expire,
    .snap_remove = sq_snap_remove,
    .snap_list = sq_snap_list,
    .snap_expired = sq_snap_expired,
    .sub_get = sq_sub_get,
    .sub_put_config = sq_sub_put_config,
    .sub_begin_wake = sq_sub_begin_wake,
    .sub_update = sq_sub_update,
    .sub_remove = sq_sub_remove,
    .sub_with_pattern = sq_sub_with_pattern,
    .sub_leases_expired = sq_sub_leases_expired,
    .sub_deliveries_due = sq_sub_deliveries_due,
    .sub_next_delivery = sq_sub_next_delivery,
    .sublink_get = sq_sublink_get,
    .sublink_put = sq_sublink_put,
    .sublink_advance = sq_sublink_advance,
    .sublink_remove = sq_sublink_remove,
    .sublink_list = sq_sublink_list,
    .sublink_snapshot = sq_sublink_snapshot,
    .sublink_ack_snapshot = sq_sublink_ack_snapshot,
    .sublink_first_pending = sq_sublink_first_pending,
    .key_get = sq_key_get,
    .key_put = sq_key_put,
    .stat = sq_stat,
};

const parley_store_ops_t *parley_store_sqlite_ops(void)
{
    return &sqlite_ops;
}
