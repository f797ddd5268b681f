/*
 * snapshots.c — /v1/snapshots: immutable, shareable copies over HTTP.
 *
 *   /v1/snapshots                   GET (the caller's, newest first), POST
 *   /v1/snapshots/{id}              GET (with content), DELETE (revoke)
 *   /v1/snapshots/{id}/messages     GET (?after=&limit=): a conversation
 *                                   snapshot's messages page by page
 *
 * GET of one snapshot (and of its messages) is the one API read that needs
 * no token: the HTTP layer lets it through unauthenticated when there is no
 * Authorization header (a bad token is still 401), and this file decides:
 * a public snapshot is readable by anyone, a private one only by its owner
 * and the admin — anyone else gets 404, as for a missing one. An expired
 * snapshot answers 410 to those who may see it.
 *
 * A POST's body is checked on the connection's thread
 * (parley_snapshot_parse); the rule that freezes the source runs on the
 * writer as a core command, and the answer is rendered after the commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/status.h"
#include "api/api.h"
#include "api/resource.h"
#include "api/visits.h"
#include "api/write.h"
#include "core/snapshot.h"
#include "parley/parley.h"
#include "util/clock.h"

#define CONTENT_MAX_BYTES (16u << 20) /* messages inlined in a snapshot's content */
#define PAGE_BUF_MAX      (96u << 20) /* hard limit of a message page's body */

typedef struct snap_write {
    parley_command_t cmd;            /* the core command: u.snap (create) or u.snap_delete */
    json_t *body;                    /* parsed body (owned) */
    char user[PARLEY_OWNER_MAX + 1]; /* the caller */
    bool admin;                      /* the caller is the admin */
    char id[PARLEY_ROW_ID_MAX + 1];  /* the snapshot */
    const char *base; /* --public-url, or NULL: URLs are paths (config, outlives us) */
} snap_write_t;

static void snap_write_free(void *arg)
{
    snap_write_t *sw = arg;
    if (!sw)
        return;
    json_decref(sw->body);
    free(sw);
}

/* After the commit: the answer for the rule's outcome (Location for a
 * created snapshot, from the outcome, so a replay names the first one). */
static void render_snap_write(void *ctx, const parley_outcome_t *o, parley_reply_t *rp)
{
    snap_write_t *sw = ctx;
    const char *id = json_string_value(json_object_get(o->body, "id"));
    if (!o->refusal && o->done == PARLEY_DONE_CREATED && id) {
        char loc[PARLEY_ROW_ID_MAX + 32 + 256];
        snprintf(loc, sizeof loc, "%s/v1/snapshots/%s", sw->base ? sw->base : "", id);
        parley_reply_header(rp, "Location", loc);
    }
    parley_resource_render(o, rp);
}

static void start_write(parley_req_t *r, bool remove, const char *id)
{
    snap_write_t *sw = calloc(1, sizeof *sw);
    if (!sw) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    snprintf(sw->user, sizeof sw->user, "%s", parley_req_user(r));
    sw->admin = parley_req_is_admin(r);
    if (remove) {
        snprintf(sw->id, sizeof sw->id, "%s", id);
    } else if (parley_resource_new_id(r, sw->id) || parley_resource_body(r, false, &sw->body)) {
        snap_write_free(sw);
        return;
    }
    sw->base = parley_api_app(r)->cfg->public_url; /* the config outlives the write */
    if (remove) {
        sw->cmd.kind = PARLEY_CMD_SNAPSHOT_DELETE;
        sw->cmd.u.snap_delete.id = sw->id;
        sw->cmd.u.snap_delete.user = sw->user;
        sw->cmd.u.snap_delete.admin = sw->admin;
    } else {
        sw->cmd.kind = PARLEY_CMD_SNAPSHOT_CREATE;
        sw->cmd.u.snap.id = sw->id;
        sw->cmd.u.snap.user = sw->user;
        sw->cmd.u.snap.admin = sw->admin;
        sw->cmd.u.snap.body = sw->body;
        sw->cmd.u.snap.base = sw->base;
        parley_outcome_t o;
        if (parley_snapshot_parse(&sw->cmd.u.snap, &o)) {
            parley_resource_refuse(r, &o);
            parley_outcome_clear(&o);
            snap_write_free(sw);
            return;
        }
    }
    parley_api_write(r, &sw->cmd, render_snap_write, sw, snap_write_free);
}

/* ---- reads ----------------------------------------------------------------------- */

/* Read snapshot id for whoever asks (inside the caller's read transaction).
 * 0, or after answering PARLEY_ENOTFOUND (404), PARLEY_EGONE (410) or the
 * storage error (500). */
static int get_readable(parley_req_t *r, parley_db_t *db, const char *id, parley_snap_t *s)
{
    int rc = parley_db_snap_get(db, id, s);
    if (rc == 0 && !s->is_public &&
        !parley_snapshot_is_owner(s, parley_req_user(r), parley_req_is_admin(r))) {
        parley_snap_clear(s);
        rc = PARLEY_ENOTFOUND;
    }
    if (rc == PARLEY_ENOTFOUND) {
        parley_req_error(r, 404, "not_found", "no such snapshot");
        return PARLEY_ENOTFOUND;
    }
    if (rc) {
        parley_api_store_failed(r, rc, "the snapshot");
        return rc;
    }
    if (parley_snapshot_is_expired(s, parley_clock_now_ms()) ||
        (s->kind[0] == 'c' && !s->stream[0])) {
        parley_snap_clear(s);
        parley_req_error(r, 410, "expired", "this snapshot has expired");
        return PARLEY_EGONE;
    }
    return 0;
}

static void get_one(parley_req_t *r, const char *id)
{
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_snap_t s;
    json_t *content = NULL;
    int brc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
    if (brc) {
        parley_api_store_failed(r, brc, "the snapshot");
        return;
    }
    if (get_readable(r, db, id, &s)) {
        parley_db_commit(db);
        return;
    }
    int rc = parley_snapshot_content(db, &s, CONTENT_MAX_BYTES, &content);
    /* Its visits are its owner's to see (and the admin's), nobody else's. */
    json_t *visits = NULL;
    if (rc == 0 && parley_snapshot_is_owner(&s, parley_req_user(r), parley_req_is_admin(r)) &&
        !(visits = parley_snapshot_visits_json(db, s.id)))
        rc = PARLEY_ESTORE;
    parley_db_commit(db);
    json_t *rep = rc == 0 ? parley_snapshot_json(&s, parley_api_app(r)->cfg->public_url) : NULL;
    if (!rep) {
        parley_snap_clear(&s);
        json_decref(content);
        json_decref(visits);
        parley_api_store_failed(r, rc, "the snapshot");
        return;
    }
    if (visits)
        json_object_update(rep, visits);
    json_decref(visits);
    json_object_set_new(rep, "content", content);
    parley_req_add_header(r, "Cache-Control", "no-cache");
    parley_resource_send(r, 200, rep);
    json_decref(rep);
    /* After the answer, never before: the visit is a write of its own. */
    parley_api_visit(r, &s);
    parley_snap_clear(&s);
}

static void get_messages(parley_req_t *r, const char *id)
{
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    parley_snap_t s;
    parley_stream_t fork;
    parley_buf_t body;
    int brc = db ? parley_db_begin(db) : PARLEY_EUNAVAIL;
    if (brc) {
        parley_api_store_failed(r, brc, "the snapshot");
        return;
    }
    if (get_readable(r, db, id, &s)) {
        parley_db_commit(db);
        return;
    }
    if (strcmp(s.kind, "conversation") != 0) {
        parley_snap_clear(&s);
        parley_db_commit(db);
        parley_req_error(r, 404, "not_found", "a document snapshot has no messages");
        return;
    }
    int rc = parley_db_stream_get(db, s.stream, &fork);
    parley_snap_clear(&s);
    if (rc) {
        parley_db_commit(db);
        parley_api_store_failed(r, rc, "the snapshot");
        return;
    }
    parley_buf_init(&body, PAGE_BUF_MAX);
    rc = parley_api_message_page(r, db, &fork, &body);
    parley_db_commit(db);
    if (rc) {
        parley_buf_free(&body);
        return;
    }
    parley_req_add_header(r, "Cache-Control", "no-cache");
    parley_req_respond_buf(r, 200, "application/json", &body);
}

/* A page of snapshots being listed, and the origin of their urls. */
typedef struct snap_page {
    parley_page_t page; /* the page */
    const char *base;   /* --public-url, or NULL */
} snap_page_t;

static int on_snap(void *arg, const parley_snap_t *s)
{
    snap_page_t *sp = arg;
    return parley_page_add(&sp->page, parley_snapshot_json(s, sp->base), s->ord);
}

static void list(parley_req_t *r)
{
    int limit;
    uint64_t before;
    if (parley_resource_page(r, 'o', &limit, &before))
        return;
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    snap_page_t sp = {.base = parley_api_app(r)->cfg->public_url};
    parley_page_init(&sp.page, limit);
    int rc =
        db ? parley_db_snap_list(db, parley_req_user(r), (int64_t)before, limit + 1, on_snap, &sp)
           : PARLEY_EUNAVAIL;
    /* The caller owns every snapshot listed: each shows its visits. */
    for (size_t i = 0; rc == 0 && i < json_array_size(sp.page.items); i++) {
        json_t *item = json_array_get(sp.page.items, i);
        json_t *visits =
            parley_snapshot_visits_json(db, json_string_value(json_object_get(item, "id")));
        if (!visits)
            rc = PARLEY_ESTORE;
        else
            json_object_update(item, visits);
        json_decref(visits);
    }
    if (rc) {
        parley_page_clear(&sp.page);
        parley_api_store_failed(r, rc, "the snapshots");
        return;
    }
    parley_page_send(r, &sp.page, 'o');
}

/* ---- routing ---------------------------------------------------------------------- */

bool parley_api_snapshots_is_anonymous_read(const char *method, const char *path)
{
    static const char root[] = "/v1/snapshots/";
    if (strcmp(method, "GET") != 0 || strncmp(path, root, sizeof root - 1) != 0)
        return false;
    const char *p = path + sizeof root - 1;
    size_t n = strcspn(p, "/");
    return n > 0 && (p[n] == '\0' || strcmp(p + n, "/messages") == 0);
}

void parley_api_snapshots(parley_req_t *r, const char *rest)
{
    const char *m = parley_req_method(r);
    bool get = strcmp(m, "GET") == 0;
    if (rest[0] == '\0') {
        if (get)
            list(r);
        else if (strcmp(m, "POST") == 0)
            start_write(r, false, NULL);
        else
            parley_resource_method_not_allowed(r, "GET, POST", NULL);
        return;
    }
    char id[PARLEY_ROW_ID_MAX + 1];
    const char *sub = rest[0] == '/' ? parley_resource_id_segment(rest + 1, id) : NULL;
    if (!sub) {
        parley_req_error(r, 404, "not_found", "no such snapshot");
        return;
    }
    if (sub[0] == '\0') {
        if (get)
            get_one(r, id);
        else if (strcmp(m, "DELETE") == 0)
            start_write(r, true, id);
        else
            parley_resource_method_not_allowed(r, "GET, DELETE", NULL);
    } else if (strcmp(sub, "/messages") == 0) {
        if (get)
            get_messages(r, id);
        else
            parley_resource_method_not_allowed(r, "GET", NULL);
    } else {
        parley_req_error(r, 404, "not_found", "no such route: a snapshot has /messages");
    }
}
