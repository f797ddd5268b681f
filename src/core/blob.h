/*
 * blob.h — blobs: bytes (attachments, photos, files) a user uploads once
 * and messages, documents and snapshots refer to by id.
 *
 * NOTES ON THE DESIGN
 *
 * Storage. A blob's bytes live in the store (blob_parts rows of
 * PARLEY_BLOB_PART_BYTES, under an upload id), so backups, verify and
 * every node sharing a PostgreSQL database see them. An upload is staged
 * (a blob_uploads row) and its parts are written through the writer as
 * they arrive (parley_blob_put_part), so neither end ever holds a whole
 * blob; the blob row, the durable point, is committed only once the
 * SHA-256 of all the bytes is known (parley_blob_commit), with its feed
 * event (blob.created) and the Idempotency-Key record in the same
 * transaction. The id is the hex SHA-256 of the bytes; blobs are kept per
 * owner, so two users' equal bytes are two blobs, and an owner's second
 * upload of the same bytes answers the blob it has (200) and drops the
 * new staged parts.
 *
 * References. A JSON object {"type": "blob", "id": "<id>"} anywhere in a
 * message's content or metadata, or in a document's data, refers to the
 * owner's blob (parley_blob_refs_find, on the connection's thread); the
 * write that stores it records the reference in the same transaction
 * (parley_blob_refs_set), and refuses an id the owner has no blob of.
 * A snapshot copies its source's references, so a snapshot keeps its
 * images after the conversation is gone, and a public snapshot's blobs are
 * readable through it.
 *
 * Collection. The maintenance tick (parley_blob_collect) removes blobs
 * nothing refers to once --blob-grace has passed since their upload or
 * since they lost their last reference (blob.deleted events), and staged
 * uploads untouched for as long (an upload abandoned half-way). Off the
 * commit path of requests: in the writer's tick transaction.
 *
 * Invariants:
 *   1. A blob row's parts are exactly ceil(size / PARLEY_BLOB_PART_BYTES)
 *      rows numbered from 0, each full but the last, and the SHA-256 of
 *      their bytes in order is the id (parley verify checks it).
 *   2. Every reference names a blob row of the same owner.
 *   3. A staged upload's parts are not a blob's until the blob row names
 *      the upload, and then the staged row is gone.
 *
 * Threads: the rules on the writer thread; the pure helpers anywhere.
 */
#ifndef PARLEY_CORE_BLOB_H
#define PARLEY_CORE_BLOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/outcome.h"
#include "store/store.h"

#define PARLEY_BLOB_REFS_MAX 64 /* distinct blobs one message or document may name */

/* Whether id is a blob id (64 lowercase hex digits). Pure. */
bool parley_blob_id_is_valid(const char *id);

/* A blob's representation {id, size, content_type, created_at}: a new
 * reference, NULL when out of memory. */
json_t *parley_blob_json(const parley_blob_t *b);

/* One part of an upload (writer thread): the staged upload is made first
 * when *upload is 0. PARLEY_ENOTFOUND when the staged upload was purged. */
int parley_blob_put_part(parley_db_t *db, const char *owner, int64_t *upload, int64_t n,
                         const void *data, size_t len);

/* The commit of an upload whose bytes are all staged. */
typedef struct parley_blob_req {
    const char *owner;        /* the uploader */
    const char *id;           /* hex SHA-256 of the bytes */
    int64_t upload;           /* where the parts are staged */
    int64_t size;             /* bytes */
    const char *content_type; /* as sent */
    uint64_t quota;           /* bytes of blobs the owner may keep, 0 = no quota */
} parley_blob_req_t;

/*
 * The blob row, its event and the answer: 201 with the new blob, or 200
 * with the one the owner already had (the staged parts are dropped);
 * refused PARLEY_EFULL (quota_exceeded) when the owner's blobs would pass
 * the quota, PARLEY_ECONFLICT (upload_expired) when the staged upload was
 * purged meanwhile.
 */
int parley_blob_commit(parley_db_t *db, const parley_blob_req_t *req, parley_outcome_t *out);

/* Drop a staged upload (a refused or abandoned one). Writer. */
int parley_blob_unstage(parley_db_t *db, int64_t upload);

/*
 * The blob ids v refers to ({"type":"blob","id":...} objects at any depth,
 * walked without recursion), distinct, into ids (PARLEY_BLOB_REFS_MAX);
 * *n found. PARLEY_ETOOBIG past PARLEY_BLOB_REFS_MAX, PARLEY_EINVAL for a
 * blob part whose id is not a blob id. Pure.
 */
int parley_blob_refs_find(const json_t *v, char (*ids)[PARLEY_BLOB_ID_LEN + 1], int *n);

/*
 * src refers to exactly ids from now on (replace: its earlier references
 * go first) or also to them (!replace). An id owner has no blob of
 * refuses the write (out: PARLEY_EINVAL, blob_not_found, details.id).
 * Writer.
 */
int parley_blob_refs_set(parley_db_t *db, const char *owner, const char *src, bool replace,
                         char (*ids)[PARLEY_BLOB_ID_LEN + 1], int n, parley_outcome_t *out);

/*
 * The references of a write, found in a and b (either may be NULL) and set
 * for src as parley_blob_refs_set does; a bad blob part refuses the write
 * (out: invalid_blob_ref 400, too_many_blob_refs 413). Writer.
 */
int parley_blob_refs_apply(parley_db_t *db, const char *owner, const char *src, bool replace,
                           const json_t *a, const json_t *b, parley_outcome_t *out);

/* The reference source names ("c:<conversation>", "d:<collection>/<id>",
 * "s:<snapshot>") into out. */
void parley_blob_src_conversation(const char *id, char *out, size_t cap);
void parley_blob_src_document(const char *collection, const char *id, char *out, size_t cap);
void parley_blob_src_snapshot(const char *id, char *out, size_t cap);

/*
 * Maintenance: remove staged uploads and unreferenced blobs untouched
 * since before now_ms - grace_ms, at most budget of each; blob.deleted
 * events for the blobs. *n blobs removed. Writer (the tick).
 */
int parley_blob_collect(parley_db_t *db, int64_t now_ms, int64_t grace_ms, int budget,
                        parley_wakeset_t *wake, int *n);

/* ---- signed URLs ---- */

#define PARLEY_BLOB_KEY_LEN 32 /* bytes of the signed-URL key */

/* The server's signed-URL key (server_keys "blob_url"), made the first
 * time (every node sharing the database reads the same one). Writer, at
 * start-up. */
int parley_blob_url_key(parley_db_t *db, int64_t now_ms, unsigned char key[PARLEY_BLOB_KEY_LEN]);

/* The signature of a URL for owner's blob id valid until expires_s (Unix
 * seconds): base64url of HMAC-SHA256, 43 characters and a NUL. Pure. */
void parley_blob_url_sig(const unsigned char key[PARLEY_BLOB_KEY_LEN], const char *owner,
                         const char *id, int64_t expires_s, char out[44]);

#endif
