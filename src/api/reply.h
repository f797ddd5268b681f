/*
 * reply.h — an HTTP response built as a value.
 *
 * A write's answer is rendered from its rule's outcome after the commit,
 * on the connection's thread (api/write.h), into a reply: that response as
 * plain data (status, content type, headers and body), then sent. Records
 * of Idempotency-Keys stored before outcomes were recorded hold a reply
 * encoded as bytes; parley_reply_decode reads them back, so a retry of such
 * a request is still answered with its stored response.
 *
 * Ownership: a reply owns its buffers; parley_reply_free() releases them.
 * Threads: one thread at a time.
 */
#ifndef PARLEY_API_REPLY_H
#define PARLEY_API_REPLY_H

#include <jansson.h>
#include <stddef.h>

#include "api/request.h"
#include "util/buf.h"

#define PARLEY_REPLY_MAX_BODY (64u << 20) /* hard limit of a built body */

typedef struct parley_reply {
    int status;             /* HTTP status; 0 until set */
    char content_type[256]; /* "" for none */
    parley_buf_t headers;   /* "Name: value\n" lines */
    parley_buf_t body;      /* the body */
} parley_reply_t;

void parley_reply_init(parley_reply_t *rp);
void parley_reply_free(parley_reply_t *rp);
/* Add a header (name and value copied). */
void parley_reply_header(parley_reply_t *rp, const char *name, const char *value);
/* Status with a JSON body: v is borrowed. */
void parley_reply_json(parley_reply_t *rp, int status, json_t *v);
/* Status with no body. */
void parley_reply_empty(parley_reply_t *rp, int status);
/* The error body {"error":{"code","message","details"}}; details borrowed, may be NULL. */
void parley_reply_error(parley_reply_t *rp, int status, const char *code, const char *message,
                        json_t *details);
/* Send rp on r (headers, content type, body; HEAD sends no body). */
void parley_reply_send(parley_req_t *r, parley_reply_t *rp);

/* A reply stored as bytes by earlier releases (api/reply.c has the
 * encoding) back into rp. 0 or PARLEY_E*. */
int parley_reply_decode(const char *data, size_t len, parley_reply_t *rp);

#endif
