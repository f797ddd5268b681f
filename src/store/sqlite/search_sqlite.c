/*
 * search_sqlite.c — the search index and moving a user's rows on SQLite
 * (store.h's search_put, search_query, user_move, transfer_get,
 * transfer_put) and the migration step that makes their tables.
 *
 * NOTES ON THE DESIGN
 *
 * The index is an FTS5 table with external content: search_rows holds one
 * row per indexed text (a conversation's title with seq 0 and message_id
 * "", a message's text with its id and seq; keyed by (conversation,
 * message id), not seq, so that two messages may share a seq), and search_fts indexes its body with
 * the unicode61 tokenizer, diacritics removed (remove_diacritics 2): a token is a run of Unicode
 * letters and digits, compared case- and accent-insensitively. Triggers keep search_fts in step
 * with search_rows, and keep the title rows in step with conversations (insert, a title change, a
 * tombstone that drops every row of the conversation), so every path that changes a title or
 * deletes a conversation updates the index in its own transaction. Messages are indexed by
 * search_put, in the message's transaction (core/search.c extracts the text).
 *
 * On the writer, search_put only queues the message (a row of the TEMP
 * table search_queue, in memory), and the batch's COMMIT first indexes the
 * whole queue with one INSERT ... SELECT (parley_sqlite_search_flush,
 * called by store_sqlite.c's commit), so a message is still searchable
 * once its POST has answered. Why: FTS5 writes its pending terms to a new
 * index segment at every savepoint and at the start of every statement
 * that opens a statement journal once it holds pending terms, and the
 * writer runs a savepoint per request: indexed one by one, every message
 * became a segment of its own (then merged again and again), about 40 %
 * of the writer's instructions per message post. Indexed in one
 * statement, a batch is one segment. The queue follows the transaction:
 * a request rolled back to its savepoint takes its queued rows with it, a
 * rolled-back batch all of them. The flush indexes a queued message only
 * while its conversation is live (a conversation deleted later in the same
 * batch has its rows dropped by the tombstone's trigger before the flush
 * runs) and ignores a (conversation, message id) already indexed, so it
 * fails only when the store does. A transaction that queues
 * SEARCH_QUEUE_MAX messages (an import) flushes there and then, in the
 * savepoint it is in, which is as correct, only slower. Outside a transaction (a reader
 * connection never writes; tools and tests on the writer in autocommit)
 * search_put inserts at once.
 *
 * The index holds no owner: a hit belongs to its conversation's owner,
 * joined at query time, so moving a user's conversations moves their hits
 * with them and a deleted conversation's hits can never show.
 *
 * The step can run again over its own work (IF NOT EXISTS, INSERT OR
 * IGNORE), as the first schema's can.
 *
 * Queries never contain the caller's text as FTS5 syntax: core/search.c
 * parses q into terms of plain tokens (ASCII letters and digits, bytes >=
 * 0x80), and each term becomes one quoted FTS5 string (a phrase of its
 * tokens; a prefix term gets * after it). Terms are AND-ed.
 *
 * The migration step indexes what is already stored: every live
 * conversation's title, and the text of every message in its log (the
 * same rule as core/search.c's, in SQL: a string content, or the string
 * parts and the parts' "text" strings of a list, joined by newlines).
 *
 * Threads: as store.h's ops.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "store/owned.h"
#include "store/sqlite/sqlite_internal.h"
#include "util/buf.h"

const char parley_sqlite_search_sql[] =
    "CREATE TABLE IF NOT EXISTS search_rows ("
    "  id INTEGER PRIMARY KEY,"
    "  conversation_id TEXT NOT NULL,"
    "  message_id TEXT NOT NULL DEFAULT '',"
    "  seq INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  UNIQUE (conversation_id, message_id));"
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(body, content = 'search_rows', "
    "  content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');"
    "CREATE TRIGGER IF NOT EXISTS search_rows_ai AFTER INSERT ON search_rows BEGIN"
    "  INSERT INTO search_fts (rowid, body) VALUES (new.id, new.body); END;"
    "CREATE TRIGGER IF NOT EXISTS search_rows_ad AFTER DELETE ON search_rows BEGIN"
    "  INSERT INTO search_fts (search_fts, rowid, body) VALUES ('delete', old.id, old.body); END;"
    "CREATE TRIGGER IF NOT EXISTS search_conv_ai AFTER INSERT ON conversations"
    "  WHEN new.title IS NOT NULL AND new.title <> '' AND NOT new.deleted BEGIN"
    "  INSERT INTO search_rows (conversation_id, seq, body) VALUES (new.id, 0, new.title); END;"
    "CREATE TRIGGER IF NOT EXISTS search_conv_au AFTER UPDATE OF title, deleted ON conversations "
    "BEGIN"
    "  DELETE FROM search_rows WHERE conversation_id = new.id AND (seq = 0 OR new.deleted);"
    "  INSERT INTO search_rows (conversation_id, seq, body) SELECT new.id, 0, new.title"
    "    WHERE new.title IS NOT NULL AND new.title <> '' AND NOT new.deleted; END;"
    "CREATE TABLE IF NOT EXISTS transfers ("
    "  from_user TEXT PRIMARY KEY,"
    "  to_user TEXT NOT NULL,"
    "  answer TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO search_rows (conversation_id, seq, body)"
    "  SELECT id, 0, title FROM conversations"
    "  WHERE title IS NOT NULL AND title <> '' AND NOT deleted;"
    "INSERT OR IGNORE INTO search_rows (conversation_id, message_id, seq, body)"
    "  SELECT cid, coalesce(json_extract(j, '$.id'), ''), seq, body FROM ("
    "    SELECT v.id AS cid, c.end_pos AS seq, CAST(c.data AS TEXT) AS j,"
    "      CASE json_type(CAST(c.data AS TEXT), '$.content')"
    "        WHEN 'text' THEN json_extract(CAST(c.data AS TEXT), '$.content')"
    "        WHEN 'array' THEN (SELECT group_concat(p, char(10)) FROM ("
    "          SELECT CASE e.type WHEN 'text' THEN e.value"
    "            WHEN 'object' THEN CASE json_type(e.value, '$.text')"
    "              WHEN 'text' THEN json_extract(e.value, '$.text') END END AS p"
    "          FROM json_each(CAST(c.data AS TEXT), '$.content') e ORDER BY e.id)"
    "          WHERE p IS NOT NULL AND p <> '')"
    "      END AS body"
    "    FROM conversations v JOIN streams s ON s.path = '_parley/conv/' || v.id"
    "    JOIN chunks c ON c.stream_id = s.id"
    "    WHERE NOT v.deleted AND NOT s.deleted)"
    "  WHERE body IS NOT NULL AND body <> '';";

/* Prepare sql on db's connection (finalized by the caller). */
static int prepare(parley_db_t *db, const char *sql, sqlite3_stmt **st, const char *what)
{
    int rc = sqlite3_prepare_v2(parley_sqlite_conn(db), sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : parley_sqlite_error(db, rc, what);
}

const char parley_sqlite_search_queue_sql[] = "CREATE TEMP TABLE IF NOT EXISTS search_queue ("
                                              "  conversation_id TEXT NOT NULL,"
                                              "  message_id TEXT NOT NULL,"
                                              "  seq INTEGER NOT NULL,"
                                              "  body TEXT NOT NULL);";

#define SEARCH_QUEUE_MAX 4096 /* queued messages that are indexed at once */

/* Statement slots of this file on a connection (parley_sqlite_stmt). */
enum { ST_PUT, ST_QUEUE, ST_FLUSH, ST_CLEAR };

/* Step st once (it returns no rows), reset it and drop its bindings. */
static int run_once(parley_db_t *db, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return src == SQLITE_DONE ? 0 : parley_sqlite_error(db, src, what);
}

int parley_sqlite_search_put(parley_db_t *db, const char *conv_id, const char *msg_id, int64_t seq,
                             const char *text)
{
    sqlite3_stmt *st = NULL;
    bool queue = parley_sqlite_is_writer(db) && !sqlite3_get_autocommit(parley_sqlite_conn(db));
    int rc = queue ? parley_sqlite_stmt(db, ST_QUEUE,
                                        "INSERT INTO temp.search_queue (conversation_id, "
                                        "message_id, seq, body) VALUES (?1, ?2, ?3, ?4)",
                                        &st)
                   : parley_sqlite_stmt(db, ST_PUT,
                                        "INSERT INTO main.search_rows (conversation_id, "
                                        "message_id, seq, body) VALUES (?1, ?2, ?3, ?4)",
                                        &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, conv_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, msg_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, seq);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
    rc = run_once(db, st, "search index");
    /* A long transaction (an import) indexes as it goes, so the queue
     * never holds more than SEARCH_QUEUE_MAX texts in memory. */
    if (rc == 0 && queue && ++*parley_sqlite_search_queued(db) >= SEARCH_QUEUE_MAX)
        rc = parley_sqlite_search_flush(db);
    return rc;
}

int parley_sqlite_search_flush(parley_db_t *db)
{
    int *queued = parley_sqlite_search_queued(db);
    if (*queued == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    int rc = parley_sqlite_stmt(
        db, ST_FLUSH,
        "INSERT OR IGNORE INTO main.search_rows (conversation_id, message_id, seq, body) "
        "SELECT q.conversation_id, q.message_id, q.seq, q.body FROM temp.search_queue q "
        "WHERE EXISTS (SELECT 1 FROM main.conversations v WHERE v.id = q.conversation_id "
        "AND NOT v.deleted) ORDER BY q.rowid",
        &st);
    if (rc == 0)
        rc = run_once(db, st, "search index");
    if (rc == 0)
        rc = parley_sqlite_stmt(db, ST_CLEAR, "DELETE FROM temp.search_queue", &st);
    if (rc == 0)
        rc = run_once(db, st, "search index");
    if (rc == 0)
        *queued = 0;
    return rc;
}

/* The FTS5 query for q into out: each term one quoted string (its tokens
 * hold no quote, see store.h), a prefix term followed by *. */
static int fts_query(const parley_search_query_t *q, parley_buf_t *out)
{
    int rc = 0;
    for (int i = 0; i < q->nterms && rc == 0; i++) {
        const char *t = q->terms[i].text;
        if (i > 0)
            rc = parley_buf_putc(out, ' ');
        if (rc == 0)
            rc = parley_buf_putc(out, '"');
        for (const char *p = t; *p && rc == 0; p++)
            rc = *p == '"' ? parley_buf_append(out, "\"\"", 2) : parley_buf_putc(out, *p);
        if (rc == 0)
            rc = parley_buf_putc(out, '"');
        if (rc == 0 && q->terms[i].kind == PARLEY_SEARCH_PREFIX)
            rc = parley_buf_putc(out, '*');
    }
    return rc;
}

int parley_sqlite_search_query(parley_db_t *db, const char *owner, const parley_search_query_t *q,
                               int64_t offset, int limit,
                               int (*cb)(void *arg, const parley_search_hit_t *h), void *arg)
{
    parley_buf_t match;
    sqlite3_stmt *st = NULL;
    parley_buf_init(&match, 16 * PARLEY_SEARCH_QUERY_MAX);
    int rc = fts_query(q, &match);
    if (rc == 0)
        rc = prepare(db,
                     "SELECT r.conversation_id, r.message_id, r.seq, "
                     "snippet(search_fts, 0, '[', ']', '…', 16), -bm25(search_fts) "
                     "FROM search_fts JOIN search_rows r ON r.id = search_fts.rowid "
                     "JOIN conversations v ON v.id = r.conversation_id "
                     "WHERE search_fts MATCH ?1 AND v.owner = ?2 AND NOT v.deleted "
                     "ORDER BY bm25(search_fts), r.conversation_id, r.seq LIMIT ?3 OFFSET ?4",
                     &st, "search");
    if (rc) {
        parley_buf_free(&match);
        return rc;
    }
    sqlite3_bind_text(st, 1, match.data, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, limit);
    sqlite3_bind_int64(st, 4, offset);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        parley_search_hit_t h;
        memset(&h, 0, sizeof h);
        const char *cid = (const char *)sqlite3_column_text(st, 0);
        const char *mid = (const char *)sqlite3_column_text(st, 1);
        snprintf(h.conversation_id, sizeof h.conversation_id, "%s", cid ? cid : "");
        snprintf(h.message_id, sizeof h.message_id, "%s", mid ? mid : "");
        h.seq = sqlite3_column_int64(st, 2);
        h.snippet = (const char *)sqlite3_column_text(st, 3);
        if (!h.snippet)
            h.snippet = "";
        h.rank = sqlite3_column_double(st, 4);
        if (cb(arg, &h))
            break;
    }
    /* A query FTS5 still refuses (it should not: every term is quoted) is
     * the caller's, not the store's. */
    rc = src == SQLITE_ROW || src == SQLITE_DONE ? 0
         : (src & 0xff) == SQLITE_ERROR          ? PARLEY_EINVAL
                                                 : parley_sqlite_error(db, src, "search");
    sqlite3_finalize(st);
    parley_buf_free(&match);
    return rc;
}

/* parley_owned_exec_fn on SQLite. The rows changed are counted with the
 * ones the statement's triggers changed: streams is a view whose INSTEAD OF
 * triggers change its rows (store_sqlite.c's tails_sql), which
 * sqlite3_changes does not count; a user move fires no other trigger. */
static int exec2(parley_db_t *db, const char *sql, const char *from, const char *to,
                 int64_t *changes)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(db, sql, &st, "moving a user's rows");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, to, -1, SQLITE_STATIC);
    sqlite3_int64 before = sqlite3_total_changes64(parley_sqlite_conn(db));
    int src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? 0 : parley_sqlite_error(db, src, "moving a user's rows");
    *changes = rc == 0 ? sqlite3_total_changes64(parley_sqlite_conn(db)) - before : 0;
    sqlite3_finalize(st);
    return rc;
}

int parley_sqlite_user_move(parley_db_t *db, const char *from, const char *to,
                            parley_move_counts_t *out)
{
    return parley_owned_move(db, exec2, from, to, out);
}

int parley_sqlite_transfer_get(parley_db_t *db, const char *from, char *to, char **answer)
{
    sqlite3_stmt *st = NULL;
    *answer = NULL;
    int rc = prepare(db, "SELECT to_user, answer FROM transfers WHERE from_user = ?1", &st,
                     "transfer record");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        const char *a = (const char *)sqlite3_column_text(st, 1);
        snprintf(to, PARLEY_OWNER_MAX + 1, "%s", t ? t : "");
        *answer = strdup(a ? a : "{}");
        rc = *answer ? 0 : PARLEY_ENOMEM;
    } else {
        rc =
            src == SQLITE_DONE ? PARLEY_ENOTFOUND : parley_sqlite_error(db, src, "transfer record");
    }
    sqlite3_finalize(st);
    return rc;
}

int parley_sqlite_transfer_put(parley_db_t *db, const char *from, const char *to,
                               const char *answer, int64_t now_ms)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(db,
                     "INSERT INTO transfers (from_user, to_user, answer, at_ms) VALUES (?1, ?2, "
                     "?3, ?4) ON CONFLICT (from_user) DO UPDATE SET to_user = excluded.to_user, "
                     "answer = excluded.answer, at_ms = excluded.at_ms",
                     &st, "transfer record");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, to, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, answer, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    int src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? 0 : parley_sqlite_error(db, src, "transfer record");
    sqlite3_finalize(st);
    return rc;
}
