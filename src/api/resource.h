/*
 * resource.h — the HTTP plumbing the JSON resources share (conversations,
 * sessions, snapshots): bodies in, outcomes and pages out.
 *
 * Bodies are parsed on the connection's thread with the bounded parser of
 * codec/canonjson.h (nesting limit, duplicate names refused), so the writer
 * only ever sees well-formed values. Every JSON answer is written as
 * canonical JSON: numbers come back as the shortest text that reads back to
 * the same value (0.1 stays 0.1), strings byte for byte.
 *
 * Lists share one shape, {"items": [...], "next_cursor": "<opaque>" | null},
 * with ?limit= defaulting to 20 and clamped at 100, and ?cursor= taking a
 * next_cursor back. A cursor is one letter and a decimal position ("a42");
 * each list has its own letter, so a cursor from another list is refused.
 *
 * Threads: the connection's thread.
 */
#ifndef PARLEY_API_RESOURCE_H
#define PARLEY_API_RESOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/reply.h"
#include "core/outcome.h"
#include "api/request.h"

#define PARLEY_RESOURCE_PAGE_DEFAULT 20  /* items in a page without ?limit= */
#define PARLEY_RESOURCE_PAGE_MAX     100 /* larger limits are clamped to this */
#define PARLEY_RESOURCE_MAX_DEPTH    128 /* JSON nesting accepted in a body */

/* Bytes a JSON request body may hold beyond --max-json-bytes: the limit
 * bounds a document's data or a message's content (their canonical JSON),
 * and the envelope around it (role, metadata, the quotes, whitespace a
 * client adds) gets this much more, so content of exactly the limit is
 * accepted in any body shape. */
#define PARLEY_RESOURCE_ENVELOPE_BYTES (64u * 1024)

/*
 * Parse r's body as one JSON value into *out (new reference). An empty body
 * gives *out = NULL when optional, else a 400. Returns 0, or PARLEY_EINVAL
 * after answering r with 400 invalid_json.
 */
int parley_resource_body(parley_req_t *r, bool optional, json_t **out);

/*
 * ?limit= and ?cursor= of a list. letter is this list's cursor letter;
 * *before is the cursor's position (0 without a cursor). Returns 0, or
 * PARLEY_EINVAL after answering r with 400.
 */
int parley_resource_page(parley_req_t *r, char letter, int *limit, uint64_t *before);

/*
 * A page being collected from a store listing. Ask the store for limit + 1
 * rows and add each with parley_page_add(): the extra row only tells that
 * there is more (next_cursor is then the key of the last row kept).
 */
typedef struct parley_page {
    json_t *items; /* the items kept (new reference) */
    int limit;     /* page size */
    int count;     /* items kept */
    int64_t last;  /* cursor key of the last item kept */
    bool more;     /* a row past the page exists */
} parley_page_t;

void parley_page_init(parley_page_t *p, int limit);
/* Add rep (stolen; NULL is skipped) found at cursor key. Returns 1 (stop
 * the listing) once a row past the page was seen, else 0. */
int parley_page_add(parley_page_t *p, json_t *rep, int64_t key);
/* Answer r with the page (items are handed over; p is empty after). */
void parley_page_send(parley_req_t *r, parley_page_t *p, char letter);
/* Drop the page's items (after a failed listing). */
void parley_page_clear(parley_page_t *p);

/*
 * Whether v (borrowed), the value of body field `field` ("content",
 * "data"), is at most limit bytes as canonical JSON. Returns 0, or
 * PARLEY_ETOOBIG after answering r with 413 payload_too_large and
 * details {limit_bytes, size_bytes, field} (or 400 for a value that cannot
 * be written as JSON). limit 0 means none. Connection's thread.
 */
int parley_resource_content_fits(parley_req_t *r, json_t *v, size_t limit, const char *field);

/*
 * LIGHT LISTS. ?fields=a,b,c or ?view=summary|full on a list that carries
 * bodies: names[] (NULL-terminated, at most 31) are the fields of its
 * items; summary is the mask of those a summary keeps. *mask gets one bit
 * per name kept (bit i: names[i]); "id" is always kept. Without either
 * parameter, or with view=full, every field. A name not in names, an
 * empty name, view other than summary or full, both parameters, or one
 * given twice: 0 is not returned, r is answered 400 invalid_fields (with
 * details.field naming an unknown one, details.allowed the names) and
 * PARLEY_EINVAL returned.
 */
int parley_resource_fields(parley_req_t *r, const char *const *names, unsigned summary,
                           unsigned *mask);
/* The mask of every field of names[]. */
unsigned parley_resource_fields_all(const char *const *names);
/* Drop the members of item (an object) whose names[i] bit is not in mask. */
void parley_resource_fields_apply(json_t *item, const char *const *names, unsigned mask);

/* Answer r now with status and v (borrowed) as canonical JSON. */
void parley_resource_send(parley_req_t *r, int status, json_t *v);

/* Answer r with {"items": items (stolen), "next_cursor": letter+next or null}. */
void parley_resource_send_page(parley_req_t *r, json_t *items, bool more, char letter,
                               uint64_t next);

/*
 * After the commit: an outcome into rp (a 2xx with its body, 204, or the
 * error body; for ECONFLICT, EPRECOND and EFENCED the outcome's body goes
 * to error.details.current, for other refusals to error.details). rp's
 * status stays 0 when memory ran out.
 */
void parley_resource_render(const parley_outcome_t *o, parley_reply_t *rp);

/* Answer r now with a refusal decided on the connection's thread (a body
 * check before the write is submitted): the same error body, byte for
 * byte, as parley_resource_render gives for it after a commit. */
void parley_resource_refuse(parley_req_t *r, const parley_outcome_t *o);

/* Answer r with 405 and Allow: allow; message (NULL for a default) says
 * what to do instead. */
void parley_resource_method_not_allowed(parley_req_t *r, const char *allow, const char *message);

/* The id at the start of path (up to the next '/' or the end) into id
 * (PARLEY_ROW_ID_MAX + 1 bytes); what follows it, or NULL when the segment
 * is empty, longer than PARLEY_ROW_ID_MAX or not a valid id (the caller
 * answers 404 for it). */
const char *parley_resource_id_segment(const char *path, char *id);

/* A fresh id into out: 0, or the random source's -errno after answering r
 * with 503. */
int parley_resource_new_id(parley_req_t *r, char *out);

#endif
