/*
 * owned.c — the list of owned kinds and the move over it (see owned.h).
 */
#include <stdio.h>
#include <string.h>

#include "parley/parley.h"
#include "store/owned.h"

/* A destination tombstone gives way to the source's live document: the
 * moved document continues above the tombstone's version (so an old
 * If-Match can never match it), then the tombstone goes. */
static const char *const docs_before[] = {
    "UPDATE documents SET version = (SELECT t.version + 1 FROM documents t WHERE t.owner = ?2 AND "
    "t.collection = documents.collection AND t.id = documents.id) WHERE owner = ?1 AND NOT "
    "deleted AND EXISTS (SELECT 1 FROM documents t WHERE t.owner = ?2 AND t.collection = "
    "documents.collection AND t.id = documents.id AND t.deleted AND t.version >= "
    "documents.version)",
    "DELETE FROM documents WHERE owner = ?2 AND deleted AND EXISTS (SELECT 1 FROM documents s "
    "WHERE s.owner = ?1 AND s.collection = documents.collection AND s.id = documents.id AND NOT "
    "s.deleted)",
    NULL,
};

/* Blobs are keyed (owner, id) and the id is the bytes' SHA-256: a blob of
 * the source's that the destination has too is the same bytes. The
 * destination's wins: the source's parts of it go here, its row goes with
 * the collisions, and the source's references (which name the id) then
 * point at the destination's blob. */
static const char *const blobs_before[] = {
    "DELETE FROM blob_parts WHERE upload IN (SELECT s.upload FROM blobs s WHERE s.owner = ?1 AND "
    "EXISTS (SELECT 1 FROM blobs d WHERE d.owner = ?2 AND d.id = s.id))",
    NULL,
};

const parley_owned_t parley_owned[] = {
    {"conversations", "conversations", NULL, NULL, NULL},
    {"sessions", "sessions", NULL, NULL, NULL},
    {"snapshots", "snapshots", NULL, NULL, NULL},
    /* The user's feed stays the user's: it is the principal's, not data. */
    {"streams", "streams", "substr(path, 1, 13) = '_parley/feed/'", NULL, NULL},
    {"documents", "documents", NULL, "collection, id", docs_before},
    {"idempotency_keys", "idempotency", NULL, "key", NULL},
    {"blobs", "blobs", NULL, "id", blobs_before},
    {"blob_refs", "blob_refs", NULL, "blob_id, src", NULL},
};
const size_t parley_owned_count = sizeof parley_owned / sizeof parley_owned[0];

/* "t.a = T.a AND t.b = T.b" for key "a, b" into out. */
static int key_match(const char *table, const char *key, char *out, size_t cap)
{
    size_t used = 0;
    const char *p = key;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        int w = snprintf(out + used, cap - used, "%sd.%.*s = %s.%.*s", used ? " AND " : "", (int)n,
                         p, table, (int)n, p);
        if (w < 0 || (size_t)w >= cap - used)
            return PARLEY_ETOOBIG;
        used += (size_t)w;
        p += n;
    }
    return 0;
}

int parley_owned_move(parley_db_t *db, parley_owned_exec_fn exec, const char *from, const char *to,
                      parley_move_counts_t *out)
{
    char sql[1024], match[256];
    memset(out, 0, sizeof *out);
    if (parley_owned_count > PARLEY_OWNED_MAX)
        return PARLEY_EINVAL;
    for (size_t i = 0; i < parley_owned_count; i++) {
        const parley_owned_t *o = &parley_owned[i];
        int64_t n = 0;
        int rc = 0;
        for (const char *const *b = o->before; b && *b && rc == 0; b++)
            rc = exec(db, *b, from, to, &n);
        if (rc == 0 && o->key) {
            rc = key_match(o->table, o->key, match, sizeof match);
            if (rc == 0 && snprintf(sql, sizeof sql,
                                    "DELETE FROM %s WHERE owner = ?1%s%s%s AND EXISTS (SELECT 1 "
                                    "FROM %s d WHERE d.owner = ?2 AND %s)",
                                    o->table, o->keep ? " AND NOT (" : "", o->keep ? o->keep : "",
                                    o->keep ? ")" : "", o->table, match) >= (int)sizeof sql)
                rc = PARLEY_ETOOBIG;
            if (rc == 0)
                rc = exec(db, sql, from, to, &out->dropped[i]);
        }
        if (rc == 0 && snprintf(sql, sizeof sql, "UPDATE %s SET owner = ?2 WHERE owner = ?1%s%s%s",
                                o->table, o->keep ? " AND NOT (" : "", o->keep ? o->keep : "",
                                o->keep ? ")" : "") >= (int)sizeof sql)
            rc = PARLEY_ETOOBIG;
        if (rc == 0)
            rc = exec(db, sql, from, to, &out->moved[i]);
        if (rc)
            return rc;
    }
    return 0;
}
