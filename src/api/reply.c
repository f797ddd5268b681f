/*
 * reply.c — responses as values (see reply.h).
 *
 * Stored replies (Idempotency-Key records made before outcomes were
 * recorded): "<status>\n<content type>\n<header bytes length>\n" followed
 * by the header lines and then the body. Only read back, by this file;
 * nothing writes them any more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/reply.h"
#include "parley/parley.h"

void parley_reply_init(parley_reply_t *rp)
{
    rp->status = 0;
    rp->content_type[0] = '\0';
    parley_buf_init(&rp->headers, 64 * 1024);
    parley_buf_init(&rp->body, PARLEY_REPLY_MAX_BODY);
}

void parley_reply_free(parley_reply_t *rp)
{
    if (!rp)
        return;
    parley_buf_free(&rp->headers);
    parley_buf_free(&rp->body);
}

void parley_reply_header(parley_reply_t *rp, const char *name, const char *value)
{
    parley_buf_printf(&rp->headers, "%s: %s\n", name, value);
}

void parley_reply_json(parley_reply_t *rp, int status, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    rp->status = status;
    snprintf(rp->content_type, sizeof rp->content_type, "application/json");
    parley_buf_reset(&rp->body);
    if (text) {
        parley_buf_puts(&rp->body, text);
        free(text);
    }
}

void parley_reply_empty(parley_reply_t *rp, int status)
{
    rp->status = status;
    parley_buf_reset(&rp->body);
}

void parley_reply_error(parley_reply_t *rp, int status, const char *code, const char *message,
                        json_t *details)
{
    json_t *d = details ? json_incref(details) : json_object();
    json_t *err =
        json_pack("{s:{s:s, s:s, s:o}}", "error", "code", code, "message", message, "details", d);
    parley_reply_json(rp, status, err);
    json_decref(err);
}

void parley_reply_send(parley_req_t *r, parley_reply_t *rp)
{
    char *line = rp->headers.data;
    size_t left = line ? rp->headers.len : 0;
    while (left) {
        char *nl = memchr(line, '\n', left);
        if (!nl)
            break;
        *nl = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            parley_req_add_header(r, line, colon + 2);
            *colon = ':';
        }
        *nl = '\n';
        left -= (size_t)(nl + 1 - line);
        line = nl + 1;
    }
    const char *ct = rp->content_type[0] ? rp->content_type : NULL;
    if (rp->status == 204 || rp->status == 304) {
        parley_req_respond_empty(r, rp->status);
        return;
    }
    parley_req_respond_buf(r, rp->status, ct, &rp->body);
}

int parley_reply_decode(const char *data, size_t len, parley_reply_t *rp)
{
    const char *p = data, *end = data + len;
    const char *nl1 = memchr(p, '\n', len);
    if (!nl1)
        return PARLEY_EINVAL;
    const char *nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
    if (!nl2)
        return PARLEY_EINVAL;
    const char *nl3 = memchr(nl2 + 1, '\n', (size_t)(end - nl2 - 1));
    if (!nl3)
        return PARLEY_EINVAL;
    rp->status = atoi(p);
    size_t ctlen = (size_t)(nl2 - nl1 - 1);
    if (ctlen >= sizeof rp->content_type)
        return PARLEY_EINVAL;
    memcpy(rp->content_type, nl1 + 1, ctlen);
    rp->content_type[ctlen] = '\0';
    size_t hlen = strtoull(nl2 + 1, NULL, 10);
    const char *h = nl3 + 1;
    if (hlen > (size_t)(end - h))
        return PARLEY_EINVAL;
    parley_buf_reset(&rp->headers);
    parley_buf_reset(&rp->body);
    if (parley_buf_append(&rp->headers, h, hlen) ||
        parley_buf_append(&rp->body, h + hlen, (size_t)(end - h - hlen)))
        return PARLEY_ENOMEM;
    return 0;
}
