/*
 * events.c — GET /v1/events: the caller's change feed (core/feed.h) as a
 * read-only JSON-mode Durable Stream: catch-up, long-poll, SSE and resume
 * by offset, exactly as any stream. A user reads their own feed; the admin
 * reads the feed of all users (or one user's, with Parley-User).
 *
 * A feed stream is created by the first event written to it. A reader who
 * arrives before that gets it created (an empty stream) first, so that
 * there is always a stream to wait on.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/write.h"
#include "core/command.h"
#include "core/feed.h"
#include "core/stream.h"
#include "parley/parley.h"

typedef struct feed_ensure {
    parley_write_t w;               /* must be first */
    parley_req_t *r;                /* the request */
    char path[PARLEY_PATH_MAX + 1]; /* the feed stream */
    char owner[256];                /* its owner */
    parley_command_t cmd;           /* FEED_ENSURE of path for owner */
} feed_ensure_t;

static void feed_path_of(parley_req_t *r, char *out, size_t cap)
{
    parley_feed_path(parley_req_is_admin(r) ? NULL : parley_req_user(r), out, cap);
}

/* Writer thread: core only. */
static int ensure_apply(parley_write_t *w, parley_db_t *db)
{
    feed_ensure_t *fe = (feed_ensure_t *)w;
    parley_outcome_t o;
    int rc = parley_command_apply(db, &fe->cmd, &o);
    parley_outcome_clear(&o);
    return rc;
}

static void ensure_done(parley_write_t *w, int status)
{
    feed_ensure_t *fe = (feed_ensure_t *)w;
    parley_app_write_done(fe->r, status);
}

static void on_ensured(parley_req_t *r)
{
    int st = parley_app_write_status(r);
    if (st < 0) {
        parley_req_error(r, 503, "unavailable", "the event feed is not available; retry shortly");
        return;
    }
    char path[PARLEY_PATH_MAX + 1];
    feed_path_of(r, path, sizeof path);
    parley_api_stream_read(r, path, strcmp(parley_req_method(r), "HEAD") == 0);
}

void parley_api_events(parley_req_t *r)
{
    const char *m = parley_req_method(r);
    bool head = strcmp(m, "HEAD") == 0;
    if (strcmp(m, "GET") != 0 && !head) {
        parley_req_add_header(r, "Allow", "GET, HEAD");
        parley_req_error(r, 405, "method_not_allowed",
                         "the event feed is read-only: GET it (catch-up, long-poll or SSE)");
        return;
    }
    char path[PARLEY_PATH_MAX + 1];
    feed_path_of(r, path, sizeof path);
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_stream_t meta;
    if (db && parley_db_stream_get(db, path, &meta) == 0) {
        parley_api_stream_read(r, path, head);
        return;
    }
    feed_ensure_t *fe = calloc(1, sizeof *fe);
    if (!fe) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    fe->r = r;
    fe->w.apply = ensure_apply;
    fe->w.done = ensure_done;
    snprintf(fe->path, sizeof fe->path, "%s", path);
    snprintf(fe->owner, sizeof fe->owner, "%s", parley_req_user(r));
    fe->cmd.kind = PARLEY_CMD_FEED_ENSURE;
    fe->cmd.u.feed.path = fe->path;
    fe->cmd.u.feed.owner = fe->owner;
    parley_req_set_data(r, fe, free);
    parley_app_submit(r, &fe->w, on_ensured);
}
