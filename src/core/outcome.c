/*
 * outcome.c — an outcome as a stored record (see outcome.h).
 *
 * Encoding, two forms. "O2\n" (parley_outcome_encode_text), for writes
 * whose answer is the representation as canonical JSON
 * (codec/canonjson.h): one compact JSON object without the body, "\n", and
 * the body's canonical text (nothing when there is none):
 *   O2\n{"done": N, "echo": {...}, "meta": {...}}\n<canonical body>
 * A retry is then answered with those bytes, unparsed
 * (parley_outcome_decode_text); the canonical form is a fixed point, so
 * parsing and rendering it again gives the same bytes as well.
 * "O1\n" (parley_outcome_encode), for writes answered in jansson's member
 * order (documents, subscriptions): one compact JSON object
 *   {"done": N, "body": <representation>, "echo": {...}, "meta": {...}}
 * "body" is absent when there is none; "echo" holds the Durable Streams
 * fields (each has_* flag as the presence of its member); "meta" the
 * stream's content_type, ttl_s and expires_ms. The body is written with
 * jansson's own dump (member order kept, reals with 17 digits) and read back
 * with its parser, so a decoded body is the same value in the same order,
 * and an answer rendered from it is the same bytes. Records made before
 * outcomes were stored hold a rendered HTTP reply, which never starts with
 * "O1" (it starts with the status digits); the API tells the two apart
 * with parley_outcome_is_record().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "core/outcome.h"
#include "parley/parley.h"

#define MAGIC     "O1\n"
#define MAGIC_V2  "O2\n"
#define MAGIC_LEN 3

bool parley_outcome_is_record(const char *blob, size_t len)
{
    return len >= MAGIC_LEN &&
           (memcmp(blob, MAGIC, MAGIC_LEN) == 0 || memcmp(blob, MAGIC_V2, MAGIC_LEN) == 0);
}

static int put_u64(json_t *o, bool has, const char *name, uint64_t v)
{
    return has ? json_object_set_new(o, name, json_integer((json_int_t)v)) : 0;
}

/* The object of an outcome with no stream fields (a message post's, e.g.)
 * into buf, written directly: the same bytes as jansson's compact dump in
 * encode() (members in the order they are set there), without building
 * and dumping three objects. false when o has stream fields (or buf is
 * too small): encode() dumps it. */
static bool plain_object(const parley_outcome_t *o, char *buf, size_t cap)
{
    const parley_stream_echo_t *e = &o->echo;
    if (e->has_offset || e->closed || e->has_epoch || e->has_seq || e->has_gap ||
        o->meta.content_type[0] || o->meta.ttl_s != 0 || o->meta.expires_ms != 0)
        return false;
    int n = snprintf(buf, cap,
                     "{\"done\":%d,\"echo\":{\"changes\":%u},\"meta\":{\"content_type\":\"\","
                     "\"ttl_s\":0,\"expires_ms\":0}}",
                     (int)o->done, e->changes);
    return n > 0 && (size_t)n < cap;
}

/* Both forms: the body inside the object (O1), or after it as canonical
 * text (O2). */
static int encode(const parley_outcome_t *o, bool text_body, char **blob, size_t *len)
{
    const parley_stream_echo_t *e = &o->echo;
    char plain[160]; /* O2 without stream fields: the object, written directly */
    *blob = NULL;
    *len = 0;
    if (o->refusal)
        return PARLEY_EINVAL; /* only what was done is recorded */
    bool direct = text_body && plain_object(o, plain, sizeof plain);
    json_t *echo = direct ? NULL : json_object();
    json_t *meta =
        direct ? NULL
               : json_pack("{s:s, s:I, s:I}", "content_type", o->meta.content_type, "ttl_s",
                           (json_int_t)o->meta.ttl_s, "expires_ms", (json_int_t)o->meta.expires_ms);
    json_t *rec = echo && meta ? json_pack("{s:i, s:O, s:O}", "done", (int)o->done, "echo", echo,
                                           "meta", meta)
                               : NULL;
    int rc = rec || direct ? 0 : PARLEY_ENOMEM;
    if (direct)
        goto text_part;
    if (rc == 0 && !text_body && o->body && json_object_set(rec, "body", o->body))
        rc = PARLEY_ENOMEM;
    if (rc == 0 && e->has_offset)
        rc = put_u64(echo, true, "next", e->next);
    if (rc == 0 && e->closed)
        rc = json_object_set_new(echo, "closed", json_true());
    if (rc == 0)
        rc = put_u64(echo, e->has_epoch, "epoch", e->epoch);
    if (rc == 0)
        rc = put_u64(echo, e->has_seq, "seq", e->seq);
    if (rc == 0)
        rc = put_u64(echo, e->has_gap, "expected", e->expected);
    if (rc == 0)
        rc = put_u64(echo, e->has_gap, "received", e->received);
    if (rc == 0)
        rc = json_object_set_new(echo, "changes", json_integer(e->changes));
    rc = rc ? PARLEY_ENOMEM : 0;
text_part:;
    char *body = NULL; /* O2: the body's canonical text, made here */
    size_t body_len = 0;
    const char *body_text = NULL; /* O2: that text, or the rule's own */
    if (rc == 0 && text_body && o->body && o->body_text) {
        body_text = o->body_text; /* made by the rule already: not again */
        body_len = o->body_text_len;
    } else if (rc == 0 && text_body && o->body) {
        rc = parley_canonjson_dump(o->body, &body, &body_len);
        body_text = body;
    }
    char *text = rc == 0 && !direct ? json_dumps(rec, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (rc == 0 && !direct && !text)
        rc = PARLEY_ENOMEM;
    const char *object = direct ? plain : text;
    if (rc == 0) {
        size_t n = strlen(object), total = MAGIC_LEN + n + (text_body ? 1 + body_len : 0);
        *blob = malloc(total);
        if (*blob) {
            memcpy(*blob, text_body ? MAGIC_V2 : MAGIC, MAGIC_LEN);
            memcpy(*blob + MAGIC_LEN, object, n);
            if (text_body) {
                (*blob)[MAGIC_LEN + n] = '\n'; /* a compact dump has no raw newline */
                if (body_len)
                    memcpy(*blob + MAGIC_LEN + n + 1, body_text, body_len);
            }
            *len = total;
        } else {
            rc = PARLEY_ENOMEM;
        }
    }
    free(text);
    free(body);
    json_decref(rec);
    json_decref(echo);
    json_decref(meta);
    return rc;
}

int parley_outcome_encode(const parley_outcome_t *o, char **blob, size_t *len)
{
    return encode(o, false, blob, len);
}

int parley_outcome_encode_text(const parley_outcome_t *o, char **blob, size_t *len)
{
    return encode(o, true, blob, len);
}

/* The unsigned member name of obj into *v; *has says whether it was there. */
static int get_u64(json_t *obj, const char *name, bool *has, uint64_t *v)
{
    json_t *n = json_object_get(obj, name);
    *has = n != NULL;
    if (!n)
        return 0;
    if (!json_is_integer(n) || json_integer_value(n) < 0)
        return PARLEY_EINVAL;
    *v = (uint64_t)json_integer_value(n);
    return 0;
}

/* Everything but the body from rec (an O1 record, or an O2 one's object). */
static int decode_fields(json_t *rec, parley_outcome_t *o)
{
    json_t *done = json_object_get(rec, "done");
    json_t *echo = json_object_get(rec, "echo");
    json_t *meta = json_object_get(rec, "meta");
    json_t *ct = json_object_get(meta, "content_type");
    json_t *ttl = json_object_get(meta, "ttl_s");
    json_t *exp = json_object_get(meta, "expires_ms");
    int rc = json_is_integer(done) && json_integer_value(done) >= PARLEY_DONE_OK &&
                     json_integer_value(done) <= PARLEY_DONE_NOTHING && json_is_object(echo) &&
                     json_is_string(ct) && json_is_integer(ttl) && json_is_integer(exp) &&
                     strlen(json_string_value(ct)) < sizeof o->meta.content_type
                 ? 0
                 : PARLEY_EINVAL;
    parley_stream_echo_t *e = &o->echo;
    bool has;
    uint64_t changes = 0;
    if (rc == 0)
        rc = get_u64(echo, "next", &e->has_offset, &e->next);
    if (rc == 0)
        rc = get_u64(echo, "epoch", &e->has_epoch, &e->epoch);
    if (rc == 0)
        rc = get_u64(echo, "seq", &e->has_seq, &e->seq);
    if (rc == 0)
        rc = get_u64(echo, "expected", &e->has_gap, &e->expected);
    if (rc == 0)
        rc = get_u64(echo, "received", &has, &e->received);
    if (rc == 0)
        rc = get_u64(echo, "changes", &has, &changes);
    if (rc == 0) {
        e->changes = (unsigned)changes;
        e->closed = json_is_true(json_object_get(echo, "closed"));
        o->done = (parley_done_t)json_integer_value(done);
        snprintf(o->meta.content_type, sizeof o->meta.content_type, "%s", json_string_value(ct));
        o->meta.ttl_s = json_integer_value(ttl);
        o->meta.expires_ms = json_integer_value(exp);
    }
    return rc;
}

int parley_outcome_decode_text(const char *blob, size_t len, parley_outcome_t *o, const char **body,
                               size_t *body_len)
{
    json_error_t err;
    parley_outcome_init(o);
    *body = NULL;
    *body_len = 0;
    if (!parley_outcome_is_record(blob, len))
        return PARLEY_EINVAL;
    if (memcmp(blob, MAGIC, MAGIC_LEN) == 0) { /* O1: the body inside */
        json_t *rec = json_loadb(blob + MAGIC_LEN, len - MAGIC_LEN, JSON_ALLOW_NUL, &err);
        int rc = decode_fields(rec, o);
        if (rc == 0)
            o->body = json_incref(json_object_get(rec, "body"));
        json_decref(rec);
        return rc;
    }
    const char *head = blob + MAGIC_LEN;
    const char *nl = memchr(head, '\n', len - MAGIC_LEN);
    if (!nl)
        return PARLEY_EINVAL;
    json_t *rec = json_loadb(head, (size_t)(nl - head), 0, &err);
    int rc = decode_fields(rec, o);
    json_decref(rec);
    size_t n = len - (size_t)(nl + 1 - blob);
    if (rc == 0 && n) {
        *body = nl + 1;
        *body_len = n;
    }
    return rc;
}

bool parley_outcome_text_body(const char *blob, size_t len, const char **body, size_t *body_len)
{
    const char *nl = len > MAGIC_LEN && memcmp(blob, MAGIC_V2, MAGIC_LEN) == 0
                         ? memchr(blob + MAGIC_LEN, '\n', len - MAGIC_LEN)
                         : NULL;
    if (!nl || (size_t)(nl + 1 - blob) == len)
        return false;
    *body = nl + 1;
    *body_len = len - (size_t)(nl + 1 - blob);
    return true;
}

int parley_outcome_decode(const char *blob, size_t len, parley_outcome_t *o)
{
    const char *body;
    size_t body_len;
    int rc = parley_outcome_decode_text(blob, len, o, &body, &body_len);
    if (rc == 0 && body) {
        json_error_t err;
        o->body = json_loadb(body, body_len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &err);
        rc = o->body ? 0 : PARLEY_EINVAL;
    }
    return rc;
}

bool parley_outcome_text_done(const char *blob, size_t len, parley_outcome_t *o, const char **body,
                              size_t *body_len)
{
    static const char head[] = MAGIC_V2 "{\"done\":";
    size_t h = sizeof head - 1;
    /* the digit, then ',' ("echo" always follows) */
    if (len < h + 2 || memcmp(blob, head, h) != 0 || blob[h] < '0' + PARLEY_DONE_OK ||
        blob[h] > '0' + PARLEY_DONE_NOTHING || blob[h + 1] != ',')
        return false;
    const char *nl = memchr(blob + h, '\n', len - h);
    if (!nl || nl[-1] != '}' || (size_t)(nl + 1 - blob) == len)
        return false;
    parley_outcome_init(o);
    o->done = (parley_done_t)(blob[h] - '0');
    *body = nl + 1;
    *body_len = len - (size_t)(nl + 1 - blob);
    return true;
}
