/*
 * snapshot.h — snapshots: immutable, shareable copies of a conversation or
 * a document (DESIGN.md §2.3).
 *
 * A conversation snapshot stores the conversation object as it is and a
 * Durable Streams fork of its message log at the current tail
 * ("_parley/snap/<id>", closed): no message is copied, and because a
 * deleted stream that forks still read is only soft-deleted, the snapshot
 * stays readable after new messages and after the conversation is deleted.
 * A document snapshot stores the document's representation at its current
 * version.
 *
 * Access: the owner (whoever made it) and the admin read, list and revoke
 * it; anyone reads it, without a token, while it is public. Others get 404.
 * After expires_at it answers 410 and the maintenance tick frees its fork
 * (the row stays so that the answer stays 410). DELETE revokes it: the row
 * and the fork go, later reads are 404.
 *
 * Threads: create/delete/expire on the writer thread; the rest on any
 * thread with its own connection.
 */
#ifndef PARLEY_CORE_SNAPSHOT_H
#define PARLEY_CORE_SNAPSHOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/id.h"
#include "core/outcome.h"
#include "store/store.h"

#define PARLEY_SNAPSHOT_PATH_PREFIX   "_parley/snap/"      /* fork stream paths */
#define PARLEY_SNAPSHOT_MAX_EXPIRES_S (10LL * 366 * 86400) /* largest expires_in */

/* A create's body, checked and taken apart by parley_snapshot_parse. */
typedef struct parley_snapshot_args {
    bool parsed;        /* filled by parley_snapshot_parse (create refuses otherwise) */
    const char *source; /* the source path as given (in the body) */
    bool has_title;     /* title was given (a string or null) */
    const char *title;  /* the title given, NULL for none or null */
    bool is_public;     /* readable by anyone with the URL */
    int64_t expires_s;  /* expires_in, or -1 for never */
    char conversation_id[PARLEY_ROW_ID_MAX + 1]; /* a conversation source: its id, else "" */
    char collection[PARLEY_COLLECTION_MAX + 1];  /* a document source: its collection */
    char document_id[PARLEY_DOC_ID_MAX + 1];     /* a document source: its id */
    char branch[PARLEY_ID_LEN + 1]; /* a conversation's branch to capture, "" for the active one */
} parley_snapshot_args_t;

typedef struct parley_snapshot_req {
    const char *id;              /* the new snapshot's id */
    const char *user;            /* the caller: the snapshot's owner */
    bool admin;                  /* reaches every user's conversations */
    json_t *body;                /* {source, title?, public?, expires_in?, branch?} (borrowed) */
    parley_snapshot_args_t args; /* body parsed by parley_snapshot_parse */
    const char *base;            /* origin the url starts with (--public-url), or NULL: a path */
} parley_snapshot_req_t;

/* The fork stream path of snapshot id into out. */
void parley_snapshot_stream_path(const char *id, char *out, size_t cap);

/* The representation {id, url, source, kind, title, public, created_at,
 * expires_at} (new reference, NULL when memory runs out); url is
 * base + "/v1/snapshots/{id}", or the path alone when base is NULL or "".
 * Any thread. */
json_t *parley_snapshot_json(const parley_snap_t *s, const char *base);

/* Whether the caller owns s (or is the admin): list, revoke, read private. */
bool parley_snapshot_is_owner(const parley_snap_t *s, const char *user, bool admin);
/* Whether s has expired at now_ms. */
bool parley_snapshot_is_expired(const parley_snap_t *s, int64_t now_ms);

/*
 * VISITS. A snapshot's visit record counts its views: view_count and
 * last_viewed_at, shown to its owner (and the admin) only. The record is
 * one row per snapshot; deleting the snapshot marks it deleted (kept, no
 * longer counted or shown). Who is a viewer and how often a viewer counts
 * is the API's business (api/visits.h): it submits a visit only when one
 * is due, as a write of its own that the read never waits for.
 */

/* Count one visit of snapshot id at now_ms, in the writer's transaction:
 * nothing when the snapshot is gone, expired, or its record is marked
 * deleted. 0 or the storage error. Writer thread. */
int parley_snapshot_visit(parley_db_t *db, const char *id, int64_t now_ms);

/* {view_count, last_viewed_at} of snapshot id (0 and null before any
 * visit), read on db: new reference, or NULL on a storage error or when
 * memory runs out. Any thread with its own connection. */
json_t *parley_snapshot_visits_json(parley_db_t *db, const char *id);

/*
 * Check req->body and take it apart into req->args: any thread, before the
 * write is submitted (it needs no stored row). 0, or PARLEY_EINVAL with the
 * refusal in out (EINVAL invalid_snapshot: not an object, an unknown field,
 * a wrong type, a source that is neither form).
 */
int parley_snapshot_parse(parley_snapshot_req_t *req, parley_outcome_t *out);

/*
 * Create (writer thread, in the request's savepoint), from a parsed req.
 * 0 with the outcome: CREATED with the snapshot, or a refusal (ENOTFOUND
 * not_found: source missing or not the caller's); or a negative error
 * (PARLEY_EINVAL for a req that was not parsed).
 */
int parley_snapshot_create(parley_db_t *db, const parley_snapshot_req_t *req,
                           parley_outcome_t *out);

/* Revoke (writer thread): 204, or 404 when missing or not the caller's. */
int parley_snapshot_delete(parley_db_t *db, const char *id, const char *user, bool admin,
                           parley_outcome_t *out);

/* Writer maintenance: free the forks of expired snapshots (a bounded
 * batch per call); the streams to wake join wake. */
int parley_snapshot_expire(parley_db_t *db, int64_t now_ms, parley_wakeset_t *wake);

/*
 * The frozen content of s: {"conversation": ..., "messages": [...]} or
 * {"document": ...} (new reference in *content). Messages are included up
 * to max_bytes of message text (at least one); when more remain, content
 * also holds "next_cursor" for GET /v1/snapshots/{id}/messages. Any thread
 * with its own connection, inside a read transaction.
 */
int parley_snapshot_content(parley_db_t *db, const parley_snap_t *s, size_t max_bytes,
                            json_t **content);

#endif
