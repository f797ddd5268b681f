/*
 * store.c — what every backend shares: the URL dispatch that opens a store,
 * the row destructors, and the parts of stream_append that do not depend
 * on SQL (why an append was refused; how it is cut into chunk rows). The
 * column maps the backends bind and read rows with are in columns.c.
 *
 * A store URL is "<scheme>:<rest>". "sqlite:PATH" opens the SQLite
 * backend (sqlite/store_sqlite.c) on the database file PATH.
 * "postgres://..." and "postgresql://..." (libpq's URI form) open the
 * PostgreSQL backend (postgres/store_pg.c). Any other scheme is refused
 * with a message that says so. parley_store_url_ok() gives the same verdict without opening
 * anything, so the command line can refuse a bad --store before start-up.
 *
 * Threads: parley_store_open() from the server thread, once; the rest is
 * stateless and may be called from any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "store/store.h"
#include "store/postgres/store_pg.h"
#include "store/sqlite/store_sqlite.h"
#include "util/log.h"

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The backend that serves url, or NULL with *why set. */
static const parley_store_ops_t *backend_for(const char *url, const char **why)
{
    if (!url || !*url) {
        *why = "empty store URL: give sqlite:PATH or postgres://...";
        return NULL;
    }
    if (has_prefix(url, "sqlite:")) {
        if (!url[sizeof "sqlite:" - 1]) {
            *why = "sqlite: needs the database file's path, as in sqlite:./data/parley.db";
            return NULL;
        }
        return parley_store_sqlite_ops();
    }
    if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://")) {
        const char *rest = strstr(url, "://") + 3;
        if (!*rest) {
            *why = "postgres:// needs a database, as in postgres://user@host:5432/parley";
            return NULL;
        }
        return parley_store_pg_ops();
    }
    *why = "unknown store URL scheme: give sqlite:PATH (for example sqlite:./data/parley.db) or "
           "postgres://user@host:port/database";
    return NULL;
}

bool parley_store_url_ok(const char *url, const char **why)
{
    const char *ignored;
    return backend_for(url, why ? why : &ignored) != NULL;
}

int parley_store_open(const char *url, parley_store_t **out)
{
    const char *why = NULL;
    const parley_store_ops_t *ops = backend_for(url, &why);
    if (!ops) {
        /* Only the scheme: a database URL may hold a password. */
        parley_log_error("store URL (scheme '%.*s'): %s", url ? (int)strcspn(url, ":") : 0,
                         url ? url : "", why);
        return PARLEY_EINVAL;
    }
    return ops->open(url, out);
}

int parley_store_inspect(const char *url, parley_db_t **out)
{
    const char *why = NULL;
    const parley_store_ops_t *ops = backend_for(url, &why);
    if (!ops || !ops->inspect)
        return PARLEY_EINVAL;
    return ops->inspect(url, out);
}

int parley_store_admin(const char *url, parley_db_t **out)
{
    const char *why = NULL;
    const parley_store_ops_t *ops = backend_for(url, &why);
    if (!ops || !ops->admin)
        return PARLEY_EINVAL;
    return ops->admin(url, out);
}

bool parley_store_can_copy(const char *url)
{
    const char *why = NULL;
    const parley_store_ops_t *ops = backend_for(url, &why);
    return ops && ops->copy_to;
}

void parley_store_url_redact(const char *url, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = url ? url : "";
    const char *auth = strstr(p, "://");
    const char *at = auth ? strchr(auth + 3, '@') : NULL;
    const char *slash = auth ? strchr(auth + 3, '/') : NULL;
    if (at && slash && slash < at)
        at = NULL; /* an '@' in the path or the query, not in the authority */
    const char *colon = at ? memchr(auth + 3, ':', (size_t)(at - auth - 3)) : NULL;
    if (!cap)
        return;
    for (; *p && n + 1 < cap; p++) {
        if (p == colon) {
            n += (size_t)snprintf(out + n, cap - n, ":***");
            p = at - 1; /* resume at the '@' */
            if (n >= cap)
                break;
            continue;
        }
        if (strncmp(p, "password=", 9) == 0 && (p == url || p[-1] == '?' || p[-1] == '&')) {
            n += (size_t)snprintf(out + n, cap - n, "password=***");
            p += strcspn(p, "&") - 1;
            if (n >= cap)
                break;
            continue;
        }
        out[n++] = *p;
    }
    if (n >= cap)
        n = cap - 1;
    out[n] = '\0';
}

void parley_doc_clear(parley_doc_t *d)
{
    if (!d)
        return;
    free(d->data);
    d->data = NULL;
    d->len = 0;
}

void parley_conv_clear(parley_conv_t *c)
{
    if (!c)
        return;
    free(c->title);
    free(c->metadata);
    c->title = c->metadata = NULL;
}

void parley_sess_clear(parley_sess_t *s)
{
    if (!s)
        return;
    free(s->error);
    free(s->request);
    free(s->input);
    s->error = s->request = s->input = NULL;
}

void parley_snap_clear(parley_snap_t *s)
{
    if (!s)
        return;
    free(s->title);
    free(s->payload);
    s->title = s->payload = NULL;
}

int parley_store_append_refusal(const parley_stream_t *cur, const char *stream_seq,
                                int64_t expect_tail)
{
    bool seq_ok = !stream_seq || !stream_seq[0] || !cur->stream_seq[0] ||
                  strcmp(cur->stream_seq, stream_seq) < 0;
    if (!cur->closed && !cur->deleted && seq_ok &&
        (expect_tail < 0 || cur->tail == (uint64_t)expect_tail))
        return PARLEY_ETOOBIG;
    return PARLEY_ECONFLICT;
}

int parley_store_put_chunks(parley_db_t *db, int64_t stream_id, uint64_t end, const void *data,
                            size_t len, uint64_t units, parley_chunk_put_fn put)
{
    uint64_t pos = end - units;
    if (units == 0)
        return 0;
    if (units != len || len <= PARLEY_CHUNK_ROW_BYTES)
        return put(db, stream_id, pos, end, end, data, len);
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < len; off += PARLEY_CHUNK_ROW_BYTES) {
        size_t n = len - off < PARLEY_CHUNK_ROW_BYTES ? len - off : PARLEY_CHUNK_ROW_BYTES;
        rc = put(db, stream_id, pos + off, pos + off + n, end, (const char *)data + off, n);
    }
    return rc;
}
