/*
 * store.c — what every backend shares: the URL dispatch that opens a store,
 * and the row destructors.
 *
 * A store URL is "<scheme>:<rest>". "sqlite:PATH" opens the SQLite
 * backend (sqlite/store_sqlite.c) on the database file PATH.
 * "postgres://..." and "postgresql://..." name the PostgreSQL backend,
 * which this build does not have yet: they are refused with a message that
 * says so, as is any other scheme. parley_store_url_ok() gives the same verdict without opening
 * anything, so the command line can refuse a bad --store before start-up.
 *
 * Threads: parley_store_open() from the server thread, once; the rest is
 * stateless and may be called from any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "store/store.h"
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
        *why = "empty store URL: give sqlite:PATH";
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
        *why = "this build has no PostgreSQL backend yet; use sqlite:PATH";
        return NULL;
    }
    *why = "unknown store URL scheme: give sqlite:PATH (for example sqlite:./data/parley.db)";
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
