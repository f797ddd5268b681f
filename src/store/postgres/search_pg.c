/*
 * search_pg.c — the search index and moving a user's rows on PostgreSQL
 * (store.h's search_put, search_query, user_move, transfer_get,
 * transfer_put) and the migration step that makes their tables.
 *
 * NOTES ON THE DESIGN
 *
 * search_rows holds one row per indexed text (a conversation's title with
 * seq 0 and message_id "", a message's text with its id and seq; keyed by
 * (conversation, message id), so that two messages may share a seq) and a generated tsvector of it,
 * under a GIN index. The text is normalised to agree with the SQLite
 * backend's FTS5 unicode61 tokenizer as closely as PostgreSQL allows
 * (parley_search_norm): accents removed with the unaccent extension when
 * the migration could install it (else kept), lower-cased, and every ASCII
 * punctuation character made a space, so "e-mail", "a.b@c.d" or "x_y"
 * split into words as FTS5 splits them, instead of the default parser's
 * hyphenated words, e-mail addresses and URLs; then the 'simple'
 * configuration (no stemming, no stop words). Only the first 100,000
 * characters of a text are indexed (a tsvector holds at most 1 MiB).
 *
 * Triggers keep the title rows in step with conversations (insert, a title
 * change, a tombstone that drops every row of the conversation); messages
 * are indexed by search_put in the message's transaction. The index holds
 * no owner: a hit is its live conversation's owner's, joined at query time.
 *
 * The step can run again over its own work (IF NOT EXISTS, OR REPLACE,
 * ON CONFLICT DO NOTHING), as the first schema's can.
 *
 * Queries never contain the caller's text as tsquery syntax: core/search.c
 * parses q into terms of plain tokens; each term becomes
 * phraseto_tsquery('simple', its normalised text) (a prefix term's last
 * lexeme gets :*), and the terms are AND-ed. The ranking is ts_rank_cd, the
 * snippet ts_headline with matches in [ ].
 *
 * Threads: as store.h's ops.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "store/owned.h"
#include "store/postgres/pg_internal.h"
#include "util/buf.h"

#define INDEXED_CHARS "100000" /* characters of a text that are indexed */

const char parley_pg_search_sql[] =
    "CREATE OR REPLACE FUNCTION parley_search_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE "
    "  PARALLEL SAFE AS $f$ SELECT lower(t) $f$;"
    "DO $d$ DECLARE s text; BEGIN"
    "  BEGIN CREATE EXTENSION IF NOT EXISTS unaccent; EXCEPTION WHEN others THEN NULL; END;"
    "  SELECT n.nspname INTO s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
    "    WHERE e.extname = 'unaccent';"
    "  IF s IS NOT NULL THEN"
    "    EXECUTE format('CREATE OR REPLACE FUNCTION parley_search_fold(t text) RETURNS text "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',"
    "      format('SELECT lower(%I.unaccent(%L::regdictionary, t))', s, s || '.unaccent'));"
    "  END IF; END $d$;"
    "CREATE OR REPLACE FUNCTION parley_search_norm(t text) RETURNS text LANGUAGE sql IMMUTABLE "
    "  PARALLEL SAFE AS $f$ SELECT regexp_replace(parley_search_fold(left(t, " INDEXED_CHARS
    ")), '[!-/:-@[-`{-~]+', ' ', 'g') $f$;"
    "CREATE TABLE IF NOT EXISTS search_rows ("
    "  conversation_id text COLLATE \"C\" NOT NULL,"
    "  message_id text COLLATE \"C\" NOT NULL DEFAULT '',"
    "  seq bigint NOT NULL,"
    "  body text NOT NULL,"
    "  tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, "
    "    parley_search_norm(body))) STORED,"
    "  PRIMARY KEY (conversation_id, message_id));"
    "CREATE INDEX IF NOT EXISTS search_rows_tsv ON search_rows USING gin (tsv);"
    "CREATE OR REPLACE FUNCTION parley_search_conv() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    "  IF TG_OP = 'UPDATE' THEN"
    "    DELETE FROM search_rows WHERE conversation_id = NEW.id AND (seq = 0 OR NEW.deleted);"
    "  END IF;"
    "  IF NEW.title IS NOT NULL AND NEW.title <> '' AND NOT NEW.deleted THEN"
    "    INSERT INTO search_rows (conversation_id, seq, body) VALUES (NEW.id, 0, NEW.title);"
    "  END IF;"
    "  RETURN NULL; END $f$;"
    "DROP TRIGGER IF EXISTS search_conv ON conversations;"
    "CREATE TRIGGER search_conv AFTER INSERT OR UPDATE OF title, deleted ON conversations"
    "  FOR EACH ROW EXECUTE FUNCTION parley_search_conv();"
    "CREATE TABLE IF NOT EXISTS transfers ("
    "  from_user text COLLATE \"C\" PRIMARY KEY,"
    "  to_user text COLLATE \"C\" NOT NULL,"
    "  answer text NOT NULL,"
    "  at_ms bigint NOT NULL);"
    "INSERT INTO search_rows (conversation_id, seq, body)"
    "  SELECT id, 0, title FROM conversations"
    "  WHERE title IS NOT NULL AND title <> '' AND NOT deleted ON CONFLICT DO NOTHING;"
    "INSERT INTO search_rows (conversation_id, message_id, seq, body)"
    "  SELECT cid, coalesce(j ->> 'id', ''), seq, body FROM ("
    "    SELECT v.id AS cid, c.end_pos AS seq, m.j,"
    "      CASE json_typeof(m.j -> 'content')"
    "        WHEN 'string' THEN m.j ->> 'content'"
    "        WHEN 'array' THEN (SELECT string_agg(p, E'\\n' ORDER BY n) FROM ("
    "          SELECT e.n, CASE json_typeof(e.v) WHEN 'string' THEN e.v #>> '{}'"
    "            WHEN 'object' THEN CASE json_typeof(e.v -> 'text')"
    "              WHEN 'string' THEN e.v ->> 'text' END END AS p"
    "          FROM json_array_elements(m.j -> 'content') WITH ORDINALITY AS e (v, n)) x"
    "          WHERE p IS NOT NULL AND p <> '')"
    "      END AS body"
    "    FROM conversations v JOIN streams s ON s.path = '_parley/conv/' || v.id"
    "    JOIN chunks c ON c.stream_id = s.id"
    "    CROSS JOIN LATERAL (SELECT convert_from(c.data, 'UTF8')::json AS j) m"
    "    WHERE NOT v.deleted AND NOT s.deleted"
    "      AND strpos(convert_from(c.data, 'UTF8'), '\\u0000') = 0) y"
    "  WHERE body IS NOT NULL AND body <> '' ON CONFLICT DO NOTHING;";

/* Run sql with n text parameters; *res is the result (cleared by the
 * caller) when the call returns 0. */
static int exec(parley_db_t *db, const char *sql, int n, const char *const *vals, PGresult **res,
                const char *what)
{
    *res = PQexecParams(parley_pg_conn(db), sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(*res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return 0;
    int rc = parley_pg_error(db, *res, what);
    PQclear(*res);
    *res = NULL;
    return rc;
}

int parley_pg_search_put(parley_db_t *db, const char *conv_id, const char *msg_id, int64_t seq,
                         const char *text)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)seq);
    const char *vals[] = {conv_id, msg_id, s, text};
    PGresult *res;
    int rc = exec(db,
                  "INSERT INTO search_rows (conversation_id, message_id, seq, body) "
                  "VALUES ($1, $2, $3, $4)",
                  4, vals, &res, "search index");
    PQclear(res);
    return rc;
}

int parley_pg_search_query(parley_db_t *db, const char *owner, const parley_search_query_t *q,
                           int64_t offset, int limit,
                           int (*cb)(void *arg, const parley_search_hit_t *h), void *arg)
{
    /* The terms, one a line: a kind letter ('*' a prefix) and the tokens. */
    parley_buf_t terms;
    parley_buf_init(&terms, (PARLEY_SEARCH_QUERY_MAX + 4) * PARLEY_SEARCH_TERMS_MAX);
    int rc = 0;
    for (int i = 0; i < q->nterms && rc == 0; i++)
        rc = parley_buf_printf(&terms, "%s%c%s", i ? "\n" : "",
                               q->terms[i].kind == PARLEY_SEARCH_PREFIX ? '*' : 'w',
                               q->terms[i].text);
    if (rc) {
        parley_buf_free(&terms);
        return rc;
    }
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(off, sizeof off, "%lld", (long long)offset);
    const char *vals[] = {owner, terms.data, lim, off};
    PGresult *res;
    rc =
        exec(db,
             "WITH q AS (SELECT (SELECT string_agg('(' || t || ')', ' & ') FROM ("
             "  SELECT CASE WHEN left(e, 1) = '*' THEN tq::text || ':*' ELSE tq::text END AS t"
             "  FROM regexp_split_to_table($2, E'\\n') AS e,"
             "  LATERAL phraseto_tsquery('simple', parley_search_norm(substr(e, 2))) AS tq"
             "  WHERE tq::text <> '') s)::tsquery AS q) "
             "SELECT h.conversation_id, coalesce(h.message_id, ''), h.seq, "
             "ts_headline('simple', left(h.body, " INDEXED_CHARS "), q.q, 'StartSel=\"[\", "
             "StopSel=\"]\", MaxWords=16, MinWords=6, ShortWord=0, MaxFragments=1, "
             "FragmentDelimiter=\" … \"'), h.rk FROM ("
             "  SELECT r.conversation_id, r.message_id, r.seq, r.body, ts_rank_cd(r.tsv, q.q) AS rk"
             "  FROM search_rows r JOIN conversations v ON v.id = r.conversation_id, q"
             "  WHERE r.tsv @@ q.q AND v.owner = $1 AND NOT v.deleted"
             "  ORDER BY rk DESC, r.conversation_id, r.seq LIMIT $3 OFFSET $4) h, q "
             "ORDER BY h.rk DESC, h.conversation_id, h.seq",
             4, vals, &res, "search");
    parley_buf_free(&terms);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(res); i++) {
        parley_search_hit_t h;
        memset(&h, 0, sizeof h);
        snprintf(h.conversation_id, sizeof h.conversation_id, "%s", PQgetvalue(res, i, 0));
        snprintf(h.message_id, sizeof h.message_id, "%s", PQgetvalue(res, i, 1));
        h.seq = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        h.snippet = PQgetvalue(res, i, 3);
        h.rank = strtod(PQgetvalue(res, i, 4), NULL);
        if (cb(arg, &h))
            break;
    }
    PQclear(res);
    return 0;
}

/* parley_owned_exec_fn on PostgreSQL: ?1 and ?2 are written $1 and $2. */
static int exec2(parley_db_t *db, const char *sql, const char *from, const char *to,
                 int64_t *changes)
{
    char *text = strdup(sql);
    if (!text)
        return PARLEY_ENOMEM;
    for (char *p = text; *p; p++)
        if (*p == '?' && (p[1] == '1' || p[1] == '2'))
            *p = '$';
    const char *vals[] = {from, to};
    PGresult *res;
    int rc = exec(db, text, 2, vals, &res, "moving a user's rows");
    free(text);
    *changes = rc == 0 ? strtoll(PQcmdTuples(res), NULL, 10) : 0;
    PQclear(res);
    return rc;
}

int parley_pg_user_move(parley_db_t *db, const char *from, const char *to,
                        parley_move_counts_t *out)
{
    return parley_owned_move(db, exec2, from, to, out);
}

int parley_pg_transfer_get(parley_db_t *db, const char *from, char *to, char **answer)
{
    const char *vals[] = {from};
    PGresult *res;
    *answer = NULL;
    int rc = exec(db, "SELECT to_user, answer FROM transfers WHERE from_user = $1", 1, vals, &res,
                  "transfer record");
    if (rc)
        return rc;
    if (PQntuples(res) == 1) {
        snprintf(to, PARLEY_OWNER_MAX + 1, "%s", PQgetvalue(res, 0, 0));
        *answer = strdup(PQgetvalue(res, 0, 1));
        rc = *answer ? 0 : PARLEY_ENOMEM;
    } else {
        rc = PARLEY_ENOTFOUND;
    }
    PQclear(res);
    return rc;
}

int parley_pg_transfer_put(parley_db_t *db, const char *from, const char *to, const char *answer,
                           int64_t now_ms)
{
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)now_ms);
    const char *vals[] = {from, to, answer, at};
    PGresult *res;
    int rc = exec(db,
                  "INSERT INTO transfers (from_user, to_user, answer, at_ms) VALUES ($1, $2, $3, "
                  "$4) ON CONFLICT (from_user) DO UPDATE SET to_user = excluded.to_user, "
                  "answer = excluded.answer, at_ms = excluded.at_ms",
                  4, vals, &res, "transfer record");
    PQclear(res);
    return rc;
}
