/*
 * document.h — versioned JSON documents: the rules (DESIGN.md §2.2).
 *
 * A document is a JSON object stored as canonical JSON (codec/canonjson.h)
 * with its SHA-256, in the namespace of its owner: (owner, collection, id).
 * Every change adds one to its version. Deleting leaves a tombstone that
 * keeps the version, so a re-created document never reuses a version a
 * client may still hold in an If-Match.
 *
 * Preconditions: If-Match "<version>" (or *) must match the live document,
 * else 412 with the current document; If-None-Match * on PUT means create
 * only (412 if it exists). Every change emits document.created|updated|
 * deleted to the owner's feed in the same transaction.
 *
 * Threads: parley_document_apply on the writer thread only.
 */
#ifndef PARLEY_CORE_DOCUMENT_H
#define PARLEY_CORE_DOCUMENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"
#include "store/wakeset.h"

typedef enum { PARLEY_DOC_PUT, PARLEY_DOC_PATCH, PARLEY_DOC_DELETE } parley_doc_op_t;

typedef struct parley_doc_req {
    parley_doc_op_t op;     /* what to do */
    const char *owner;      /* namespace (the caller, or the user acted for) */
    const char *collection; /* collection */
    const char *id;         /* document id */
    json_t *body;           /* PUT: the data; PATCH: the merge patch (borrowed) */
    bool has_if_match;      /* If-Match given */
    bool if_match_any;      /* If-Match: * */
    int64_t if_match;       /* its version */
    bool if_none_match_any; /* If-None-Match: * (PUT: create only) */
    size_t max_bytes;       /* largest stored document (canonical JSON), 0 = none */
} parley_doc_req_t;

typedef struct parley_doc_res {
    int status;            /* 200, 201, 204, 400, 404, 412, 413 */
    const char *code;      /* error code for an error status */
    const char *error;     /* static message for an error status */
    bool has_doc;          /* doc is set (the result, or the current one on 412) */
    parley_doc_t doc;      /* owned: parley_doc_clear */
    parley_wakeset_t wake; /* feed streams written (wake their readers) */
} parley_doc_res_t;

/* Apply req in the writer's transaction. 0 (status in res; a refused
 * request has status >= 400 and changed nothing) or a storage error. */
int parley_document_apply(parley_db_t *db, const parley_doc_req_t *req, parley_doc_res_t *res);

/* The representation {id, collection, version, checksum, created_at,
 * updated_at, data} of d (new reference, NULL on bad stored data). */
json_t *parley_document_json(const parley_doc_t *d);

#endif
