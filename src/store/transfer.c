/*
 * transfer.c — `parley export` / `parley import`: a store as JSON Lines.
 *
 * THE FORMAT. One JSON object per line:
 *     {"kind":"parley-export","format":1}                  the header
 *     {"kind":"stream","path":...,"owner":...,...}         one per object
 *     {"kind":"end","objects":N}                           the end line
 * An object line is "kind" and then every stored column of its row, named
 * as the column, in the order of kinds[] below: integers as JSON numbers,
 * booleans as JSON booleans, text as strings (JSON values the store keeps
 * as text, such as a document's data, stay strings: their bytes are
 * checksummed), bytes as unpadded base64url, SQL NULL as null. Stream data
 * (a chunk row) is "text" when its bytes are UTF-8 without NUL (JSON and
 * text streams) and "base64" (base64url) otherwise; each chunk keeps its
 * start_pos, end_pos and unit_end, so every offset a reader holds is valid
 * in the store the data moves to. Internal row ids (a stream's integer id)
 * are never written: rows that point at a stream name it by path (a
 * chunk's and a producer's "stream", a fork's "fork_src"), and the import
 * looks the path up. The end line lets a truncated file be told from a
 * whole one.
 *
 * THE KINDS. kinds[] is the one list of what an export holds, in
 * dependency order (a stream before its chunks and its forks, streams
 * before the conversations, sessions and snapshots that name them). A new
 * kind of object is one entry: its name, its table, its columns (SQL
 * expression, JSON name, type), its order, the column that says who owns
 * it, how many leading columns name it, and its INSERT. Everything is
 * exported: idempotency records (a client retrying across a move still gets
 * its stored answer), producers' epochs and seqs, subscriptions with their
 * delivery state and their cursors, the global counters (list orders keep
 * growing past imported rows) and the server's keys (webhook signatures and
 * wake tokens stay valid). With a user, only that user's rows are
 * exported, plus the counters; subscriptions and server keys belong to the
 * deployment and are left out.
 *
 * IMPORT. Inside the caller's one transaction: first the store's own
 * objects are read (the same export code, every kind) into a map from
 * each object's name (kind and key columns) to the SHA-256 of its line.
 * Then each input line is parsed, checked against its kind (every column
 * present, of its type, nothing else), written out again the way an export
 * writes it, and looked up: absent, it is inserted (a stream it points at
 * must be in the store or earlier in the input); present with the same
 * line, skipped; present with another, refused. Counters are merged (the
 * larger value wins), never refused. Any problem stops the import with
 * "line N: ..." and the caller rolls back, so a bad file changes nothing,
 * and importing a file twice changes nothing the second time.
 *
 * Invariants:
 *   1. Export then import into an empty store then export writes the same
 *      lines (rows are ordered by columns that the import preserves, or by
 *      stream id, which the import assigns in input order).
 *   2. A line is compared by its re-encoding, never by its raw text, so
 *      the same object written with other spacing or key order is "the
 *      same content".
 *   3. Memory: one row at a time on export; on import one small map entry
 *      (name and digest) per object in the store and the input.
 *
 * Threads: any thread, on a connection it owns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "codec/canonjson.h"
#include "parley/parley.h"
#include "store/columns.h"
#include "store/transfer.h"
#include "util/base64url.h"
#include "util/utf8.h"

#define FORMAT         1                  /* the header's "format" */
#define HEADER_KIND    "parley-export"    /* the header's "kind" */
#define END_KIND       "end"              /* the end line's "kind" */
#define LINE_MAX_BYTES (64 * 1024 * 1024) /* the longest input line read */
#define COLS_MAX       20                 /* columns of the widest kind */

/* How a column is written out. */
typedef enum xtype {
    X_TEXT,   /* a string */
    X_INT,    /* a JSON integer */
    X_BOOL,   /* a JSON boolean (SQL "0"/"1") */
    X_BYTES,  /* a base64url string */
    X_DATA,   /* stream data: "text" or "base64" (the JSON name is not used) */
    X_STREAM, /* a stream's path, naming a stream that must exist */
} xtype_t;

/* One column of a kind. */
typedef struct xcol {
    const char *json; /* its name in a line */
    xtype_t type;     /* how it is written */
    const char *sql;  /* its SELECT expression */
} xcol_t;

/* Whom a kind's rows belong to. */
typedef enum xscope {
    SCOPE_USER,  /* rows of an owner (the owner column): a user export takes them */
    SCOPE_STORE, /* the deployment's: left out of a user export */
    SCOPE_ALWAYS /* global numbers every export carries (counters) */
} xscope_t;

/* One kind of object. */
typedef struct xkind {
    const char *kind;     /* "kind" in a line */
    const char *from;     /* the SELECT's FROM (tables and joins) */
    const char *order;    /* its ORDER BY: stable, and preserved by an import */
    xscope_t scope;       /* whom its rows belong to */
    const char *owner;    /* SCOPE_USER: the owner column */
    int nkey;             /* leading columns that name an object */
    bool merge_max;       /* counters: an existing row takes the larger value */
    const char *insert;   /* the INSERT, $1..$n in column order */
    const char *update;   /* merge_max: the UPDATE of an existing row */
    xcol_t col[COLS_MAX]; /* the columns, ended by a NULL json */
} xkind_t;

#define STREAM_ID(p) "(SELECT id FROM streams WHERE path = " p ")"

/* Every kind, in the order an export writes them (see THE KINDS above). */
static const xkind_t kinds[] = {
    {"stream",
     "streams s",
     "s.id",
     SCOPE_USER,
     "s.owner",
     1,
     false,
     "INSERT INTO streams (path, owner, content_type, created_ms, touched_ms, ttl_s, expires_ms, "
     "tail, closed, closer, closer_epoch, closer_seq, stream_seq, fork_src, fork_pos, refs, "
     "deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, " STREAM_ID(
         "$14") ", $15, $16, $17)",
     NULL,
     {{"path", X_TEXT, "s.path"},
      {"owner", X_TEXT, "s.owner"},
      {"content_type", X_TEXT, "s.content_type"},
      {"created_ms", X_INT, "s.created_ms"},
      {"touched_ms", X_INT, "s.touched_ms"},
      {"ttl_s", X_INT, "s.ttl_s"},
      {"expires_ms", X_INT, "s.expires_ms"},
      {"tail", X_INT, "s.tail"},
      {"closed", X_BOOL, "s.closed"},
      {"closer", X_TEXT, "s.closer"},
      {"closer_epoch", X_INT, "s.closer_epoch"},
      {"closer_seq", X_INT, "s.closer_seq"},
      {"stream_seq", X_TEXT, "s.stream_seq"},
      {"fork_src", X_STREAM, "(SELECT f.path FROM streams f WHERE f.id = s.fork_src)"},
      {"fork_pos", X_INT, "s.fork_pos"},
      {"refs", X_INT, "s.refs"},
      {"deleted", X_BOOL, "s.deleted"}}},
    {"chunk",
     "chunks c JOIN streams s ON s.id = c.stream_id",
     "s.id, c.end_pos",
     SCOPE_USER,
     "s.owner",
     2,
     false,
     "INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data) VALUES (" STREAM_ID(
         "$1") ", $2, $3, $4, $5)",
     NULL,
     {{"stream", X_STREAM, "s.path"},
      {"end_pos", X_INT, "c.end_pos"},
      {"start_pos", X_INT, "c.start_pos"},
      {"unit_end", X_INT, "c.unit_end"},
      {"data", X_DATA, "c.data"}}},
    {"producer",
     "producers p JOIN streams s ON s.id = p.stream_id",
     "s.id, p.producer",
     SCOPE_USER,
     "s.owner",
     2,
     false,
     "INSERT INTO producers (stream_id, producer, epoch, last_seq) VALUES (" STREAM_ID(
         "$1") ", $2, $3, $4)",
     NULL,
     {{"stream", X_STREAM, "s.path"},
      {"producer", X_TEXT, "p.producer"},
      {"epoch", X_INT, "p.epoch"},
      {"last_seq", X_INT, "p.last_seq"}}},
    {"document",
     "documents",
     "owner, collection, id",
     SCOPE_USER,
     "owner",
     3,
     false,
     "INSERT INTO documents (owner, collection, id, version, deleted, data, checksum, created_ms, "
     "updated_ms, chg) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
     NULL,
     {{"owner", X_TEXT, "owner"},
      {"collection", X_TEXT, "collection"},
      {"id", X_TEXT, "id"},
      {"version", X_INT, "version"},
      {"deleted", X_BOOL, "deleted"},
      {"data", X_TEXT, "data"},
      {"checksum", X_TEXT, "checksum"},
      {"created_ms", X_INT, "created_ms"},
      {"updated_ms", X_INT, "updated_ms"},
      {"chg", X_INT, "chg"}}},
    {"conversation",
     "conversations",
     "id",
     SCOPE_USER,
     "owner",
     1,
     false,
     "INSERT INTO conversations (id, owner, title, metadata, version, created_ms, updated_ms, "
     "message_count, last_message_ms, activity, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
     "$9, $10, $11)",
     NULL,
     {{"id", X_TEXT, "id"},
      {"owner", X_TEXT, "owner"},
      {"title", X_TEXT, "title"},
      {"metadata", X_TEXT, "metadata"},
      {"version", X_INT, "version"},
      {"created_ms", X_INT, "created_ms"},
      {"updated_ms", X_INT, "updated_ms"},
      {"message_count", X_INT, "message_count"},
      {"last_message_ms", X_INT, "last_message_ms"},
      {"activity", X_INT, "activity"},
      {"deleted", X_BOOL, "deleted"}}},
    {"session",
     "sessions",
     "id",
     SCOPE_USER,
     "owner",
     1,
     false,
     "INSERT INTO sessions (id, conversation_id, owner, message_id, result_id, status, attempt, "
     "max_attempts, lease_ms, lease_expires_ms, error, request, input, created_ms, updated_ms, "
     "ord) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
     NULL,
     {{"id", X_TEXT, "id"},
      {"conversation_id", X_TEXT, "conversation_id"},
      {"owner", X_TEXT, "owner"},
      {"message_id", X_TEXT, "message_id"},
      {"result_id", X_TEXT, "result_id"},
      {"status", X_TEXT, "status"},
      {"attempt", X_INT, "attempt"},
      {"max_attempts", X_INT, "max_attempts"},
      {"lease_ms", X_INT, "lease_ms"},
      {"lease_expires_ms", X_INT, "lease_expires_ms"},
      {"error", X_TEXT, "error"},
      {"request", X_TEXT, "request"},
      {"input", X_TEXT, "input"},
      {"created_ms", X_INT, "created_ms"},
      {"updated_ms", X_INT, "updated_ms"},
      {"ord", X_INT, "ord"}}},
    {"snapshot",
     "snapshots",
     "id",
     SCOPE_USER,
     "owner",
     1,
     false,
     "INSERT INTO snapshots (id, owner, source, kind, title, public, created_ms, expires_ms, "
     "stream, payload, ord) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
     NULL,
     {{"id", X_TEXT, "id"},
      {"owner", X_TEXT, "owner"},
      {"source", X_TEXT, "source"},
      {"snapshot_kind", X_TEXT, "kind"},
      {"title", X_TEXT, "title"},
      {"public", X_BOOL, "public"},
      {"created_ms", X_INT, "created_ms"},
      {"expires_ms", X_INT, "expires_ms"},
      {"stream", X_TEXT, "stream"},
      {"payload", X_TEXT, "payload"},
      {"ord", X_INT, "ord"}}},
    {"snapshot_visit",
     "snapshot_visits v LEFT JOIN snapshots s ON s.id = v.snapshot_id",
     "v.snapshot_id",
     SCOPE_USER,
     "s.owner",
     1,
     false,
     "INSERT INTO snapshot_visits (snapshot_id, view_count, last_viewed_ms, deleted) VALUES ($1, "
     "$2, $3, $4)",
     NULL,
     {{"snapshot_id", X_TEXT, "v.snapshot_id"},
      {"view_count", X_INT, "v.view_count"},
      {"last_viewed_ms", X_INT, "v.last_viewed_ms"},
      {"deleted", X_BOOL, "v.deleted"}}},
    /*
     * Blobs. A blob's bytes are parts keyed by an internal upload number;
     * a line names its blob by owner and id instead, and the import draws a
     * fresh upload number from blob_uploads (so later uploads never reuse
     * it) and drops that staging row once the blob row holds the number.
     * Staged uploads (blob_uploads, and parts no blob holds yet) are not
     * exported: they are unfinished uploads a client restarts.
     */
    {
        "blob",
        "blobs",
        "owner, id",
        SCOPE_USER,
        "owner",
        2,
        false,
        "INSERT INTO blobs (owner, id, upload, size, content_type, created_ms, touched_ms) VALUES "
        "($1, $2, (SELECT MAX(upload) FROM blob_uploads WHERE owner = $1), $3, $4, $5, $6)",
        NULL,
        {{"owner", X_TEXT, "owner"},
         {"id", X_TEXT, "id"},
         {"size", X_INT, "size"},
         {"content_type", X_TEXT, "content_type"},
         {"created_ms", X_INT, "created_ms"},
         {"touched_ms", X_INT, "touched_ms"}},
    },
    {"blob_part",
     "blob_parts p JOIN blobs b ON b.upload = p.upload",
     "b.owner, b.id, p.n",
     SCOPE_USER,
     "b.owner",
     3,
     false,
     "INSERT INTO blob_parts (upload, n, data) VALUES ((SELECT upload FROM blobs WHERE owner = $1 "
     "AND id = $2), $3, $4)",
     NULL,
     {{"owner", X_TEXT, "b.owner"},
      {"blob", X_TEXT, "b.id"},
      {"n", X_INT, "p.n"},
      {"data", X_BYTES, "p.data"}}},
    {"blob_ref",
     "blob_refs",
     "owner, blob_id, src",
     SCOPE_USER,
     "owner",
     3,
     false,
     "INSERT INTO blob_refs (owner, blob_id, src) VALUES ($1, $2, $3)",
     NULL,
     {{"owner", X_TEXT, "owner"}, {"blob_id", X_TEXT, "blob_id"}, {"src", X_TEXT, "src"}}},
    {"idempotency",
     "idempotency",
     "owner, key",
     SCOPE_USER,
     "owner",
     2,
     false,
     "INSERT INTO idempotency (owner, key, fingerprint, created_ms, response) VALUES ($1, $2, $3, "
     "$4, $5)",
     NULL,
     {{"owner", X_TEXT, "owner"},
      {"key", X_TEXT, "key"},
      {"fingerprint", X_TEXT, "fingerprint"},
      {"created_ms", X_INT, "created_ms"},
      {"response", X_BYTES, "response"}}},
    {"subscription",
     "subscriptions",
     "id",
     SCOPE_STORE,
     NULL,
     1,
     false,
     "INSERT INTO subscriptions (id, type, pattern, webhook_url, wake_stream, description, "
     "lease_ttl_ms, config_hash, root_url, created_ms, generation, wake_id, holder, "
     "lease_expires_ms, delivery_due_ms, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
     "$10, $11, $12, $13, $14, $15, $16)",
     NULL,
     {{"id", X_TEXT, "id"},
      {"type", X_TEXT, "type"},
      {"pattern", X_TEXT, "pattern"},
      {"webhook_url", X_TEXT, "webhook_url"},
      {"wake_stream", X_TEXT, "wake_stream"},
      {"description", X_TEXT, "description"},
      {"lease_ttl_ms", X_INT, "lease_ttl_ms"},
      {"config_hash", X_TEXT, "config_hash"},
      {"root_url", X_TEXT, "root_url"},
      {"created_ms", X_INT, "created_ms"},
      {"generation", X_INT, "generation"},
      {"wake_id", X_TEXT, "wake_id"},
      {"holder", X_TEXT, "holder"},
      {"lease_expires_ms", X_INT, "lease_expires_ms"},
      {"delivery_due_ms", X_INT, "delivery_due_ms"},
      {"attempts", X_INT, "attempts"}}},
    {"subscription_stream",
     "subscription_streams",
     "sub_id, path",
     SCOPE_STORE,
     NULL,
     2,
     false,
     "INSERT INTO subscription_streams (sub_id, path, by_glob, by_explicit, acked, wake_tail) "
     "VALUES ($1, $2, $3, $4, $5, $6)",
     NULL,
     {{"sub_id", X_TEXT, "sub_id"},
      {"path", X_TEXT, "path"},
      {"by_glob", X_BOOL, "by_glob"},
      {"by_explicit", X_BOOL, "by_explicit"},
      {"acked", X_INT, "acked"},
      {"wake_tail", X_INT, "wake_tail"}}},
    {"counter",
     "counters",
     "name",
     SCOPE_ALWAYS,
     NULL,
     1,
     true,
     "INSERT INTO counters (name, value) VALUES ($1, $2)",
     "UPDATE counters SET value = $2 WHERE name = $1 AND value < $2",
     {{"name", X_TEXT, "name"}, {"value", X_INT, "value"}}},
    {"server_key",
     "server_keys",
     "name",
     SCOPE_STORE,
     NULL,
     1,
     false,
     "INSERT INTO server_keys (name, secret, created_ms) VALUES ($1, $2, $3)",
     NULL,
     {{"name", X_TEXT, "name"},
      {"secret", X_BYTES, "secret"},
      {"created_ms", X_INT, "created_ms"}}},
};
#define NKINDS ((int)(sizeof kinds / sizeof kinds[0]))

/*
 * Statements an import runs around a kind's INSERT of a new object, bound
 * to the object's leading columns: a blob draws its upload number from
 * blob_uploads (the sequence later uploads use) and then drops that
 * staging row.
 */
static const struct {
    const char *kind; /* the kind */
    const char *pre;  /* before the INSERT */
    int npre;         /* the leading columns pre binds as $1..$npre */
    const char *post; /* after the INSERT */
    int npost;        /* the leading columns post binds as $1..$npost */
} hooks[] = {
    {"blob", "INSERT INTO blob_uploads (owner, touched_ms) VALUES ($1, 0)", 1,
     "DELETE FROM blob_uploads WHERE upload = (SELECT upload FROM blobs WHERE owner = $1 AND id "
     "= $2)",
     2},
};

static int ncols(const xkind_t *k)
{
    int n = 0;
    while (n < COLS_MAX && k->col[n].json)
        n++;
    return n;
}

static const xkind_t *find_kind(const char *name)
{
    for (int i = 0; i < NKINDS; i++)
        if (strcmp(kinds[i].kind, name) == 0)
            return &kinds[i];
    return NULL;
}

/* ---- a row as text cells (what table_scan hands over) -------------------- */

/* One row of a kind: cell i is vals[i][0..lens[i]) or NULL for SQL NULL. */
typedef struct xrow {
    const char *vals[COLS_MAX]; /* the cells (borrowed) */
    size_t lens[COLS_MAX];      /* their lengths */
} xrow_t;

static bool is_text_data(const char *p, size_t len)
{
    return memchr(p, 0, len) == NULL && parley_utf8_is_valid(p, len);
}

static json_t *b64(const char *p, size_t len)
{
    char *s = malloc(parley_base64url_encoded_len(len) + 1);
    if (!s)
        return NULL;
    parley_base64url_encode((const unsigned char *)p, len, s);
    json_t *j = json_string(s);
    free(s);
    return j;
}

/*
 * The line of kind k's row (new string, no newline), or NULL with *why
 * (static text) for a value that cannot be written out.
 */
static char *encode(const xkind_t *k, const xrow_t *r, const char **why)
{
    json_t *o = json_object();
    char *line = NULL;
    *why = "out of memory";
    if (!o || json_object_set_new(o, "kind", json_string(k->kind)))
        goto out;
    for (int i = 0; i < COLS_MAX && k->col[i].json; i++) {
        const xcol_t *c = &k->col[i];
        const char *p = r->vals[i];
        size_t len = r->lens[i];
        const char *name = c->json;
        json_t *v = NULL;
        if (!p && c->type == X_DATA) {
            *why = "stream data is NULL";
            goto out;
        }
        if (!p) {
            v = json_null();
        } else if (c->type == X_INT) {
            char num[32];
            char *end = NULL;
            snprintf(num, sizeof num, "%.*s", (int)(len < 31 ? len : 31), p);
            errno = 0;
            long long x = strtoll(num, &end, 10);
            if (errno || end == num || *end) {
                *why = "an integer column holds a value that is not an integer";
                goto out;
            }
            v = json_integer(x);
        } else if (c->type == X_BOOL) {
            v = json_boolean(len == 1 && p[0] == '1');
        } else if (c->type == X_BYTES) {
            v = b64(p, len);
        } else if (c->type == X_DATA) {
            bool text = is_text_data(p, len);
            name = text ? "text" : "base64";
            v = text ? json_stringn(p, len) : b64(p, len);
        } else {
            v = json_stringn(p, len);
            if (!v && !parley_utf8_is_valid(p, len)) {
                *why = "a text column is not UTF-8";
                goto out;
            }
        }
        if (!v || json_object_set_new(o, name, v))
            goto out;
    }
    line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (line)
        *why = NULL;
out:
    json_decref(o);
    return line;
}

/* The map key of kind k's row: kind, a tab, its key columns as a JSON array. */
static char *key_of(const xkind_t *k, const xrow_t *r)
{
    json_t *a = json_array();
    char *s = NULL, *key = NULL;
    for (int i = 0; a && i < k->nkey; i++)
        json_array_append_new(a, r->vals[i] ? json_stringn(r->vals[i], r->lens[i]) : json_null());
    if (a)
        s = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s && asprintf(&key, "%s\t%s", k->kind, s) < 0)
        key = NULL;
    free(s);
    json_decref(a);
    return key;
}

/* The map key of the stream at path[0..len). */
static char *stream_key(const char *path, size_t len)
{
    xrow_t r = {.vals = {path}, .lens = {len}};
    return key_of(&kinds[0], &r);
}

/* ---- export --------------------------------------------------------------- */

/* What a scan of one kind does with each row. */
typedef struct scan {
    const xkind_t *kind; /* the kind scanned */
    FILE *out;           /* export: where lines go (NULL: into map) */
    json_t *map;         /* import: object name -> digest of its line */
    FILE *err;           /* where a problem is said */
    int64_t objects;     /* rows handled */
} scan_t;

static int on_row(void *arg, int n, const char *const *vals, const size_t *lens)
{
    scan_t *s = arg;
    xrow_t r;
    const char *why = NULL;
    if (n != ncols(s->kind))
        return PARLEY_EINVAL;
    for (int i = 0; i < n; i++) {
        r.vals[i] = vals[i];
        r.lens[i] = lens[i];
    }
    char *line = encode(s->kind, &r, &why);
    if (!line) {
        fprintf(s->err, "parley: cannot export a %s row: %s\n", s->kind->kind, why);
        return PARLEY_ESTORE;
    }
    int rc = 0;
    if (s->out) {
        if (fputs(line, s->out) == EOF || fputc('\n', s->out) == EOF)
            rc = errno ? -errno : PARLEY_ESTORE;
    } else {
        char digest[PARLEY_CANONJSON_SHA256_HEX + 1];
        char *key = key_of(s->kind, &r);
        parley_canonjson_sha256_hex(line, strlen(line), digest);
        if (!key || json_object_set_new(s->map, key, json_string(digest)))
            rc = PARLEY_ENOMEM;
        free(key);
    }
    free(line);
    s->objects++;
    return rc;
}

/* "'text'" with quotes doubled, for an owner in a WHERE (no NUL can occur). */
static char *sql_quote(const char *text)
{
    size_t n = strlen(text), extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += text[i] == '\'';
    char *q = malloc(n + extra + 3), *p = q;
    if (!q)
        return NULL;
    *p++ = '\'';
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\'')
            *p++ = '\'';
        *p++ = text[i];
    }
    *p++ = '\'';
    *p = 0;
    return q;
}

/* Hand every row of kind k (of user, when not NULL) to s. */
static int scan_kind(parley_db_t *db, const xkind_t *k, const char *user, scan_t *s)
{
    char cols[2048], from[1024];
    size_t at = 0;
    int rc = 0;
    cols[0] = 0;
    for (int i = 0; i < COLS_MAX && k->col[i].json; i++)
        at += (size_t)snprintf(cols + at, sizeof cols - at, "%s%s", i ? ", " : "", k->col[i].sql);
    if (user && k->scope == SCOPE_STORE)
        return 0;
    if (user && k->scope == SCOPE_USER) {
        char *q = sql_quote(user);
        if (!q)
            return PARLEY_ENOMEM;
        snprintf(from, sizeof from, "%s WHERE %s = %s", k->from, k->owner, q);
        free(q);
    } else {
        snprintf(from, sizeof from, "%s", k->from);
    }
    s->kind = k;
    rc = parley_db_table_scan(db, from, cols, k->order, on_row, s);
    return rc;
}

int parley_store_export(parley_db_t *db, const char *user, FILE *out, FILE *err, int64_t *objects)
{
    scan_t s = {.out = out, .err = err};
    int rc = 0;
    if (user && strlen(user) > PARLEY_OWNER_MAX)
        return PARLEY_EINVAL;
    if (fprintf(out, "{\"kind\":\"" HEADER_KIND "\",\"format\":%d}\n", FORMAT) < 0)
        return PARLEY_ESTORE;
    for (int i = 0; i < NKINDS && rc == 0; i++)
        rc = scan_kind(db, &kinds[i], user, &s);
    if (rc == 0 &&
        fprintf(out, "{\"kind\":\"" END_KIND "\",\"objects\":%" PRId64 "}\n", s.objects) < 0)
        rc = PARLEY_ESTORE;
    if (objects)
        *objects = s.objects;
    return rc;
}

/* ---- import --------------------------------------------------------------- */

/* One input line, decoded. */
typedef struct decoded {
    const xkind_t *kind;            /* its kind */
    xrow_t row;                     /* its cells, in text form (as a scan gives them) */
    char num[COLS_MAX][24];         /* integers and booleans written out */
    unsigned char *bytes[COLS_MAX]; /* decoded base64url (owned) */
} decoded_t;

static void decoded_clear(decoded_t *d)
{
    for (int i = 0; i < COLS_MAX; i++) {
        free(d->bytes[i]);
        d->bytes[i] = NULL;
    }
}

/* Say a problem with line n on err; PARLEY_EINVAL. */
static int bad(FILE *err, int64_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(FILE *err, int64_t n, const char *fmt, ...)
{
    va_list ap;
    fprintf(err, "parley: import: line %" PRId64 ": ", n);
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
    return PARLEY_EINVAL;
}

static int decode_b64(const char *s, size_t n, unsigned char **out, size_t *len)
{
    *out = malloc(n * 3 / 4 + 1);
    if (!*out)
        return PARLEY_ENOMEM;
    return parley_base64url_decode(s, n, *out, n * 3 / 4 + 1, len);
}

/* Decode object line n (parsed as o, of kind k) into d. */
static int decode_line(json_t *o, const xkind_t *k, int64_t n, FILE *err, decoded_t *d)
{
    int nc = ncols(k);
    size_t expected = 1; /* "kind" */
    memset(d, 0, sizeof *d);
    d->kind = k;
    for (int i = 0; i < nc; i++) {
        const xcol_t *c = &k->col[i];
        const char *name = c->json;
        json_t *v = NULL;
        if (c->type == X_DATA) {
            json_t *t = json_object_get(o, "text"), *b = json_object_get(o, "base64");
            if (!!t == !!b)
                return bad(err, n, "a %s needs one of \"text\" or \"base64\"", k->kind);
            v = t ? t : b;
            name = t ? "text" : "base64";
        } else {
            v = json_object_get(o, name);
            if (!v)
                return bad(err, n, "%s: \"%s\" is missing", k->kind, name);
        }
        expected++;
        if (json_is_null(v)) {
            if (c->type == X_DATA)
                return bad(err, n, "%s: \"%s\" is null", k->kind, name);
            d->row.vals[i] = NULL;
            continue;
        }
        switch (c->type) {
        case X_INT:
            if (!json_is_integer(v))
                return bad(err, n, "%s: \"%s\" must be an integer", k->kind, name);
            d->row.lens[i] = (size_t)snprintf(d->num[i], sizeof d->num[i], "%lld",
                                              (long long)json_integer_value(v));
            d->row.vals[i] = d->num[i];
            break;
        case X_BOOL:
            if (!json_is_boolean(v))
                return bad(err, n, "%s: \"%s\" must be true or false", k->kind, name);
            d->row.lens[i] =
                (size_t)snprintf(d->num[i], sizeof d->num[i], "%d", json_is_true(v) ? 1 : 0);
            d->row.vals[i] = d->num[i];
            break;
        case X_BYTES:
        case X_DATA:
            if (!json_is_string(v))
                return bad(err, n, "%s: \"%s\" must be a string", k->kind, name);
            if (c->type == X_DATA && strcmp(name, "text") == 0) {
                d->row.vals[i] = json_string_value(v);
                d->row.lens[i] = json_string_length(v);
                break;
            }
            if (decode_b64(json_string_value(v), json_string_length(v), &d->bytes[i],
                           &d->row.lens[i]))
                return bad(err, n, "%s: \"%s\" is not unpadded base64url", k->kind, name);
            d->row.vals[i] = (const char *)d->bytes[i];
            break;
        default:
            if (!json_is_string(v))
                return bad(err, n, "%s: \"%s\" must be a string", k->kind, name);
            d->row.vals[i] = json_string_value(v);
            d->row.lens[i] = json_string_length(v);
            if (memchr(d->row.vals[i], 0, d->row.lens[i]))
                return bad(err, n, "%s: \"%s\" holds a NUL character", k->kind, name);
        }
    }
    if (json_object_size(o) != expected) {
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v)
        {
            bool known = strcmp(key, "kind") == 0;
            for (int i = 0; i < nc && !known; i++)
                known = strcmp(key, k->col[i].json) == 0 ||
                        (k->col[i].type == X_DATA &&
                         (strcmp(key, "text") == 0 || strcmp(key, "base64") == 0));
            if (!known)
                return bad(err, n, "%s: unknown field \"%s\" (written by a newer parley?)", k->kind,
                           key);
        }
    }
    return 0;
}

/* Bind d's cells as k's INSERT (or UPDATE) parameters. */
static void bind_row(const decoded_t *d, parley_vals_t *vals)
{
    const xkind_t *k = d->kind;
    vals->n = ncols(k);
    for (int i = 0; i < vals->n; i++) {
        parley_val_t *v = &vals->v[i];
        const char *p = d->row.vals[i];
        *v = (parley_val_t){.kind = PARLEY_VAL_NULL};
        if (!p)
            continue;
        switch (k->col[i].type) {
        case X_INT:
            *v = (parley_val_t){.kind = PARLEY_VAL_INT, .i = strtoll(p, NULL, 10)};
            break;
        case X_BOOL:
            *v = (parley_val_t){.kind = PARLEY_VAL_BOOL, .i = p[0] == '1'};
            break;
        case X_BYTES:
        case X_DATA:
            *v = (parley_val_t){.kind = PARLEY_VAL_BLOB, .p = p, .len = d->row.lens[i]};
            break;
        default:
            *v = (parley_val_t){.kind = PARLEY_VAL_TEXT, .p = p, .len = d->row.lens[i]};
        }
    }
}

/* The object's name for messages: its kind and key columns. */
static void describe(const decoded_t *d, char *out, size_t cap)
{
    size_t at = (size_t)snprintf(out, cap, "%s", d->kind->kind);
    for (int i = 0; i < d->kind->nkey && at < cap; i++) {
        const char *p = d->row.vals[i];
        at += (size_t)snprintf(out + at, cap - at, " %s=%.*s", d->kind->col[i].json,
                               p ? (int)(d->row.lens[i] > 200 ? 200 : d->row.lens[i]) : 4,
                               p ? p : "null");
    }
}

/* Import one decoded object line n. */
static int import_object(parley_db_t *db, json_t *map, decoded_t *d, int64_t n, FILE *err,
                         parley_import_stats_t *st)
{
    const xkind_t *k = d->kind;
    const char *why = NULL;
    char digest[PARLEY_CANONJSON_SHA256_HEX + 1], name[600];
    char *line = encode(k, &d->row, &why);
    char *key = line ? key_of(k, &d->row) : NULL;
    int rc = 0;
    describe(d, name, sizeof name);
    if (!line) {
        rc = bad(err, n, "%s: %s", name, why);
        goto out;
    }
    if (!key) {
        rc = PARLEY_ENOMEM;
        goto out;
    }
    parley_canonjson_sha256_hex(line, strlen(line), digest);
    json_t *have = json_object_get(map, key);
    if (have && strcmp(json_string_value(have), digest) == 0) {
        st->present++;
        goto out;
    }
    if (have && !k->merge_max) {
        bad(err, n, "%s is already in the store with different content", name);
        rc = PARLEY_ECONFLICT;
        goto out;
    }
    for (int i = 0; i < ncols(k); i++) {
        if (k->col[i].type != X_STREAM || !d->row.vals[i])
            continue;
        char *sk = stream_key(d->row.vals[i], d->row.lens[i]);
        bool known = sk && json_object_get(map, sk);
        free(sk);
        if (!known) {
            rc = bad(err, n,
                     "%s: its %s, stream \"%.*s\", is neither in the store nor earlier in "
                     "the input",
                     name, k->col[i].json, (int)d->row.lens[i], d->row.vals[i]);
            goto out;
        }
    }
    parley_vals_t vals;
    bind_row(d, &vals);
    int hook = -1;
    for (size_t i = 0; !have && i < sizeof hooks / sizeof hooks[0]; i++)
        if (strcmp(hooks[i].kind, k->kind) == 0)
            hook = (int)i;
    if (hook >= 0) {
        parley_vals_t pre = vals;
        pre.n = hooks[hook].npre;
        rc = parley_db_row_exec(db, hooks[hook].pre, &pre, NULL);
    }
    if (rc == 0)
        rc = parley_db_row_exec(db, have ? k->update : k->insert, &vals, NULL);
    if (rc == 0 && hook >= 0) {
        parley_vals_t post = vals;
        post.n = hooks[hook].npost;
        rc = parley_db_row_exec(db, hooks[hook].post, &post, NULL);
    }
    if (rc == PARLEY_EEXIST) {
        bad(err, n, "%s collides with an object in the store (a unique key)", name);
        rc = PARLEY_ECONFLICT;
        goto out;
    }
    if (rc) {
        fprintf(err, "parley: import: line %" PRId64 ": writing %s: %s\n", n, name,
                parley_strerror(rc));
        goto out;
    }
    if (json_object_set_new(map, key, json_string(digest)))
        rc = PARLEY_ENOMEM;
    if (rc == 0 && !have && strcmp(k->kind, "conversation") == 0 &&
        json_array_append_new(st->conversations, json_stringn(d->row.vals[0], d->row.lens[0])))
        rc = PARLEY_ENOMEM;
    st->inserted++;
out:
    free(line);
    free(key);
    return rc;
}

/* Check the header or end line n (kind name) of o. */
static int frame_line(json_t *o, const char *name, int64_t n, int64_t objects, FILE *err)
{
    if (strcmp(name, HEADER_KIND) == 0) {
        json_t *f = json_object_get(o, "format");
        if (n != 1)
            return bad(err, n, "a second header line");
        if (!json_is_integer(f) || json_integer_value(f) != FORMAT || json_object_size(o) != 2)
            return bad(err, n,
                       "the header must be {\"kind\":\"" HEADER_KIND "\",\"format\":%d} "
                       "(written by another version of parley?)",
                       FORMAT);
        return 0;
    }
    json_t *c = json_object_get(o, "objects");
    if (!json_is_integer(c) || json_object_size(o) != 2)
        return bad(err, n, "the end line must be {\"kind\":\"" END_KIND "\",\"objects\":N}");
    if (json_integer_value(c) != objects)
        return bad(err, n,
                   "the end line counts %lld objects but %" PRId64 " came before it: the file is "
                   "damaged",
                   (long long)json_integer_value(c), objects);
    return 0;
}

int parley_store_import(parley_db_t *db, FILE *in, FILE *err, parley_import_stats_t *stats)
{
    parley_import_stats_t st = {.conversations = json_array()};
    json_t *map = st.conversations ? json_object() : NULL;
    char *buf = NULL;
    size_t cap = 0;
    bool ended = false;
    int64_t objects = 0;
    int rc = map ? 0 : PARLEY_ENOMEM;

    /* What the store holds already: every kind, every owner. */
    scan_t s = {.map = map, .err = err};
    for (int i = 0; i < NKINDS && rc == 0; i++)
        rc = scan_kind(db, &kinds[i], NULL, &s);
    if (rc)
        fprintf(err, "parley: import: reading the store: %s\n", parley_strerror(rc));

    for (ssize_t len; rc == 0 && (len = getline(&buf, &cap, in)) >= 0;) {
        int64_t n = ++st.lines;
        json_error_t je;
        bool newline = len > 0 && buf[len - 1] == '\n';
        if (newline)
            buf[--len] = 0;
        if (!newline) {
            rc = bad(err, n, "the line has no newline at its end: the file is truncated");
            break;
        }
        if (len > LINE_MAX_BYTES) {
            rc = bad(err, n, "longer than %d bytes", LINE_MAX_BYTES);
            break;
        }
        if (ended) {
            rc = bad(err, n, "a line after the end line");
            break;
        }
        json_t *o = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            rc = bad(err, n, "not JSON (column %d: %s)", je.column, je.text);
            break;
        }
        const char *kind = json_string_value(json_object_get(o, "kind"));
        if (!json_is_object(o) || !kind) {
            rc = bad(err, n, "not an object with a \"kind\"");
        } else if (n == 1 && strcmp(kind, HEADER_KIND) != 0) {
            rc = bad(err, n, "not a parley export (the first line must be the header)");
        } else if (strcmp(kind, HEADER_KIND) == 0 || strcmp(kind, END_KIND) == 0) {
            rc = frame_line(o, kind, n, objects, err);
            ended = strcmp(kind, END_KIND) == 0;
        } else {
            const xkind_t *k = find_kind(kind);
            decoded_t d;
            if (!k) {
                rc = bad(err, n, "unknown kind \"%.60s\" (written by a newer parley?)", kind);
            } else {
                rc = decode_line(o, k, n, err, &d);
                if (rc == 0)
                    rc = import_object(db, map, &d, n, err, &st);
                decoded_clear(&d);
                objects++;
            }
        }
        json_decref(o);
    }
    if (rc == 0 && ferror(in))
        rc = bad(err, st.lines + 1, "reading the input: %s", strerror(errno));
    else if (rc == 0 && st.lines == 0)
        rc = bad(err, 1, "the input is empty (not a parley export)");
    else if (rc == 0 && !ended)
        rc = bad(err, st.lines, "the input ends without its end line: the file is truncated");
    free(buf);
    json_decref(map);
    *stats = st;
    return rc;
}
