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
 * else a refusal (PARLEY_EPRECOND, HTTP 412) with the current document;
 * If-None-Match * on PUT means create only (the same refusal if it exists). Every change emits
 * document.created|updated| deleted to the owner's feed in the same transaction.
 *
 * Threads: parley_document_apply on the writer thread only.
 */
#ifndef PARLEY_CORE_DOCUMENT_H
#define PARLEY_CORE_DOCUMENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/outcome.h"
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

/*
 * Apply req in the writer's transaction. 0 with the outcome in res
 * (initialised by the caller) or a storage error. Done: CREATED or OK with
 * the document's representation in res->body, EMPTY for a delete. Refused
 * (nothing changed): EINVAL "invalid_document", ENOTFOUND "not_found",
 * EPRECOND "precondition_failed" (the current document in res->body when
 * there is one), ETOOBIG "payload_too_large". The feed streams written join
 * res->wake.
 */
int parley_document_apply(parley_db_t *db, const parley_doc_req_t *req, parley_outcome_t *res);

/* The representation {id, collection, version, checksum, created_at,
 * updated_at, data} of d (new reference, NULL on bad stored data). */
json_t *parley_document_json(const parley_doc_t *d);

#endif
