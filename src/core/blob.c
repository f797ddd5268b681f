/*
 * blob.c — the blob rules (see blob.h for the design): staging parts,
 * committing a blob with its event, references, and collection.
 *
 * Threads: the rules on the writer thread; parley_blob_refs_find and the
 * name helpers on any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "core/feed.h"
#include "parley/parley.h"
#include "util/base64url.h"
#include "util/clock.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

bool parley_blob_id_is_valid(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
            return false;
    return n == PARLEY_BLOB_ID_LEN;
}

json_t *parley_blob_json(const parley_blob_t *b)
{
    return json_pack("{s:s, s:I, s:s, s:o}", "id", b->id, "size", (json_int_t)b->size,
                     "content_type", b->content_type, "created_at",
                     parley_clock_json(b->created_ms));
}

int parley_blob_put_part(parley_db_t *db, const char *owner, int64_t *upload, int64_t n,
                         const void *data, size_t len)
{
    int64_t now = parley_clock_now_ms();
    int rc = 0;
    if (*upload == 0)
        rc = parley_db_blob_stage(db, owner, now, upload);
    if (rc == 0)
        rc = parley_db_blob_part_put(db, *upload, n, data, len, now);
    return rc;
}

int parley_blob_unstage(parley_db_t *db, int64_t upload)
{
    return upload ? parley_db_blob_unstage(db, upload) : 0;
}

static int emit(parley_db_t *db, const parley_blob_t *b, const char *type, parley_wakeset_t *wake)
{
    json_t *fields = json_pack("{s:s}", "blob_id", b->id);
    json_t *data = parley_blob_json(b);
    int rc =
        fields && data ? parley_feed_emit(db, b->owner, type, fields, data, wake) : PARLEY_ENOMEM;
    json_decref(fields);
    json_decref(data);
    return rc;
}

/* Answer with the blob the owner already has; the new staged parts go. */
static int answer_existing(parley_db_t *db, const parley_blob_req_t *req, parley_outcome_t *out)
{
    parley_blob_t have;
    int rc = parley_db_blob_get(db, req->owner, req->id, &have);
    if (rc == 0)
        rc = parley_blob_unstage(db, req->upload);
    if (rc == 0) {
        json_t *rep = parley_blob_json(&have);
        parley_outcome_answer(out, PARLEY_DONE_OK, rep);
        rc = rep ? 0 : PARLEY_ENOMEM;
    }
    return rc;
}

int parley_blob_commit(parley_db_t *db, const parley_blob_req_t *req, parley_outcome_t *out)
{
    parley_outcome_init(out);
    parley_blob_t b;
    int rc = parley_db_blob_get(db, req->owner, req->id, &b);
    if (rc == 0)
        return answer_existing(db, req, out);
    if (rc != PARLEY_ENOTFOUND)
        return rc;
    if (req->quota) {
        int64_t used = 0;
        rc = parley_db_blob_usage(db, req->owner, &used);
        if (rc)
            return rc;
        if ((uint64_t)used + (uint64_t)req->size > req->quota) {
            parley_outcome_refuse(out, PARLEY_EFULL, "quota_exceeded",
                                  "this upload would take your blobs past your storage quota; "
                                  "nothing was stored. Free space (blobs nothing references "
                                  "are collected) or ask for a larger quota",
                                  json_pack("{s:I, s:I, s:I}", "quota_bytes",
                                            (json_int_t)req->quota, "used_bytes", (json_int_t)used,
                                            "size", (json_int_t)req->size));
            return 0;
        }
    }
    memset(&b, 0, sizeof b);
    snprintf(b.owner, sizeof b.owner, "%s", req->owner);
    snprintf(b.id, sizeof b.id, "%s", req->id);
    snprintf(b.content_type, sizeof b.content_type, "%s", req->content_type);
    b.upload = req->upload;
    b.size = req->size;
    b.created_ms = b.touched_ms = parley_clock_now_ms();
    rc = parley_db_blob_insert(db, &b);
    if (rc == PARLEY_EEXIST) /* another node committed the same bytes first */
        return answer_existing(db, req, out);
    if (rc == PARLEY_ENOTFOUND) {
        parley_outcome_refuse(out, PARLEY_ECONFLICT, "upload_expired",
                              "the upload was idle longer than the server keeps a partial "
                              "upload and its parts were removed; upload again",
                              NULL);
        return 0;
    }
    if (rc == 0)
        rc = emit(db, &b, "blob.created", &out->wake);
    if (rc == 0) {
        json_t *rep = parley_blob_json(&b);
        parley_outcome_answer(out, PARLEY_DONE_CREATED, rep);
        rc = rep ? 0 : PARLEY_ENOMEM;
    }
    return rc;
}

/* ---- references ------------------------------------------------------------ */

/* A JSON walk's pending values: an explicit stack, no recursion. */
#define WALK_MAX 4096

static int note(const json_t *o, char (*ids)[PARLEY_BLOB_ID_LEN + 1], int *n)
{
    json_t *type = json_object_get(o, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "blob") != 0)
        return 0;
    json_t *id = json_object_get(o, "id");
    if (!json_is_string(id) || !parley_blob_id_is_valid(json_string_value(id)))
        return PARLEY_EINVAL;
    for (int i = 0; i < *n; i++)
        if (strcmp(ids[i], json_string_value(id)) == 0)
            return 0;
    if (*n == PARLEY_BLOB_REFS_MAX)
        return PARLEY_ETOOBIG;
    snprintf(ids[(*n)++], PARLEY_BLOB_ID_LEN + 1, "%s", json_string_value(id));
    return 0;
}

int parley_blob_refs_find(const json_t *v, char (*ids)[PARLEY_BLOB_ID_LEN + 1], int *n)
{
    const json_t **stack = malloc(WALK_MAX * sizeof *stack);
    int top = 0, rc = 0;
    *n = 0;
    if (!stack)
        return PARLEY_ENOMEM;
    if (v)
        stack[top++] = v;
    while (top > 0 && rc == 0) {
        const json_t *x = stack[--top];
        if (json_is_object(x)) {
            rc = note(x, ids, n);
            const char *k;
            json_t *c;
            json_object_foreach((json_t *)x, k, c)
            {
                if (!json_is_object(c) && !json_is_array(c))
                    continue;
                if (top == WALK_MAX) {
                    rc = PARLEY_ETOOBIG;
                    break;
                }
                stack[top++] = c;
            }
        } else if (json_is_array(x)) {
            size_t i;
            json_t *c;
            json_array_foreach(x, i, c)
            {
                if (!json_is_object(c) && !json_is_array(c))
                    continue;
                if (top == WALK_MAX) {
                    rc = PARLEY_ETOOBIG;
                    break;
                }
                stack[top++] = c;
            }
        }
    }
    free(stack);
    return rc;
}

int parley_blob_refs_set(parley_db_t *db, const char *owner, const char *src, bool replace,
                         char (*ids)[PARLEY_BLOB_ID_LEN + 1], int n, parley_outcome_t *out)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        parley_blob_t b;
        rc = parley_db_blob_get(db, owner, ids[i], &b);
        if (rc == PARLEY_ENOTFOUND) {
            parley_outcome_refuse(out, PARLEY_EINVAL, "blob_not_found",
                                  "a blob part names a blob you do not have (see details.id); "
                                  "upload it with POST /v1/blobs first. Nothing was written",
                                  json_pack("{s:s}", "id", ids[i]));
            return 0;
        }
        if (rc)
            return rc;
    }
    int64_t now = parley_clock_now_ms();
    if (replace)
        rc = parley_db_blob_ref_drop(db, owner, src, now);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = parley_db_blob_ref_add(db, owner, ids[i], src, now);
    return rc;
}

int parley_blob_refs_apply(parley_db_t *db, const char *owner, const char *src, bool replace,
                           const json_t *a, const json_t *b, parley_outcome_t *out)
{
    char(*ids)[PARLEY_BLOB_ID_LEN + 1] = malloc(2 * PARLEY_BLOB_REFS_MAX * sizeof *ids);
    int na = 0, nb = 0, rc;
    if (!ids)
        return PARLEY_ENOMEM;
    rc = parley_blob_refs_find(a, ids, &na);
    if (rc == 0)
        rc = parley_blob_refs_find(b, ids + na, &nb);
    if (rc == 0 && na + nb > PARLEY_BLOB_REFS_MAX)
        rc = PARLEY_ETOOBIG;
    if (rc == PARLEY_EINVAL) {
        parley_outcome_refuse(out, PARLEY_EINVAL, "invalid_blob_ref",
                              "a blob part {\"type\": \"blob\", \"id\": ...} needs the id of a "
                              "blob (64 lowercase hex digits, as POST /v1/blobs answered)",
                              NULL);
        rc = 0;
    } else if (rc == PARLEY_ETOOBIG) {
        parley_outcome_refuse(out, PARLEY_ETOOBIG, "too_many_blob_refs",
                              "a message or document may reference at most 64 blobs",
                              json_pack("{s:i}", "limit", PARLEY_BLOB_REFS_MAX));
        rc = 0;
    } else if (rc == 0 && (na + nb > 0 || replace)) {
        rc = parley_blob_refs_set(db, owner, src, replace, ids, na + nb, out);
    }
    free(ids);
    return rc;
}

void parley_blob_src_conversation(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "c:%s", id);
}

void parley_blob_src_document(const char *collection, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "d:%s/%s", collection, id);
}

void parley_blob_src_snapshot(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "s:%s", id);
}

/* ---- collection -------------------------------------------------------------- */

#define COLLECT_BATCH 32 /* rows looked at per query */

int parley_blob_collect(parley_db_t *db, int64_t now_ms, int64_t grace_ms, int budget,
                        parley_wakeset_t *wake, int *n)
{
    int64_t before = now_ms - grace_ms;
    int64_t uploads[COLLECT_BATCH];
    parley_blob_t rows[COLLECT_BATCH];
    int got = 0, rc;
    *n = 0;
    int max = budget < COLLECT_BATCH ? budget : COLLECT_BATCH;
    rc = parley_db_blob_stale_uploads(db, before, uploads, max, &got);
    for (int i = 0; rc == 0 && i < got; i++)
        rc = parley_db_blob_unstage(db, uploads[i]);
    if (rc == 0)
        rc = parley_db_blob_unreferenced(db, before, rows, max, &got);
    for (int i = 0; rc == 0 && i < got; i++) {
        rc = parley_db_blob_remove(db, rows[i].owner, rows[i].id, before);
        if (rc == PARLEY_ECONFLICT || rc == PARLEY_ENOTFOUND) {
            rc = 0; /* referenced again meanwhile, or gone */
            continue;
        }
        if (rc == 0)
            rc = emit(db, &rows[i], "blob.deleted", wake);
        if (rc == 0)
            (*n)++;
    }
    return rc;
}

/* ---- signed URLs ------------------------------------------------------------ */

#define KEY_BLOB_URL "blob_url"

int parley_blob_url_key(parley_db_t *db, int64_t now_ms, unsigned char key[PARLEY_BLOB_KEY_LEN])
{
    size_t len = 0;
    int rc = parley_db_key_get(db, KEY_BLOB_URL, key, PARLEY_BLOB_KEY_LEN, &len);
    if (rc == PARLEY_ENOTFOUND) {
        if (RAND_bytes(key, PARLEY_BLOB_KEY_LEN) != 1)
            return PARLEY_ENOMEM;
        rc = parley_db_key_put(db, KEY_BLOB_URL, key, PARLEY_BLOB_KEY_LEN, now_ms);
        len = PARLEY_BLOB_KEY_LEN;
        if (rc == PARLEY_EEXIST) /* another node stored one first: use it */
            rc = parley_db_key_get(db, KEY_BLOB_URL, key, PARLEY_BLOB_KEY_LEN, &len);
    }
    if (rc == 0 && len != PARLEY_BLOB_KEY_LEN)
        rc = PARLEY_EINVAL;
    return rc;
}

void parley_blob_url_sig(const unsigned char key[PARLEY_BLOB_KEY_LEN], const char *owner,
                         const char *id, int64_t expires_s, char out[44])
{
    char msg[PARLEY_OWNER_MAX + PARLEY_BLOB_ID_LEN + 64];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n =
        snprintf(msg, sizeof msg, "parley-blob-url\n%s\n%s\n%lld", owner, id, (long long)expires_s);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = (int)sizeof msg - 1;
    HMAC(EVP_sha256(), key, PARLEY_BLOB_KEY_LEN, (const unsigned char *)msg, (size_t)n, mac,
         &maclen);
    parley_base64url_encode(mac, 32, out);
}
