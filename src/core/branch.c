/*
 * branch.c — a conversation's branches (see branch.h for the model).
 *
 * The ledger's records, one JSON message each, in the order they were
 * made:
 *     {"t":"branch","id":..,"parent":..,"at":N,"created_ms":N,"session_id":..|null}
 *     {"t":"active","branch":..}
 *     {"t":"session","session_id":..,"branch":..}
 * parley_branch_load folds them into a parley_branch_set_t; a record that
 * names an unknown branch is a corrupt ledger (PARLEY_ESTORE), never
 * guessed at.
 *
 * Threads: see branch.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "core/branch.h"
#include "core/conversation.h"
#include "core/feed.h"
#include "core/stream.h"
#include "parley/parley.h"
#include "util/clock.h"

#define LEDGER_MAX (64u << 20) /* bytes of a ledger read at once */

void parley_branch_ledger_path(const char *conv_id, char *out, size_t cap)
{
    snprintf(out, cap, PARLEY_BRANCH_LEDGER_PREFIX "%s", conv_id);
}

void parley_branch_stream_path(const parley_branch_set_t *set, int i, char *out, size_t cap)
{
    if (i == 0)
        parley_conversation_stream_path(set->conversation_id, out, cap);
    else
        snprintf(out, cap, PARLEY_BRANCH_PATH_PREFIX "%s", set->v[i].id);
}

void parley_branch_set_clear(parley_branch_set_t *set)
{
    free(set->v);
    free(set->links);
    set->v = NULL;
    set->links = NULL;
    set->n = set->nlinks = 0;
}

int parley_branch_find(const parley_branch_set_t *set, const char *id)
{
    for (int i = 0; id && i < set->n; i++)
        if (strcmp(set->v[i].id, id) == 0)
            return i;
    return -1;
}

int parley_branch_of_session(const parley_branch_set_t *set, const char *sid)
{
    for (int i = 0; i < set->nlinks; i++)
        if (strcmp(set->links[i].session_id, sid) == 0)
            return set->links[i].branch;
    for (int i = 1; i < set->n; i++)
        if (strcmp(set->v[i].session_id, sid) == 0)
            return i;
    return 0;
}

int parley_branch_session_branch(parley_db_t *db, const char *conv_id, const char *sid, char *out)
{
    parley_branch_set_t set;
    int rc = parley_branch_load(db, conv_id, &set);
    if (rc == 0)
        snprintf(out, PARLEY_ID_LEN + 1, "%s", set.v[parley_branch_of_session(&set, sid)].id);
    parley_branch_set_clear(&set);
    return rc;
}

int parley_branch_holder(const parley_branch_set_t *set, int i, int64_t pos)
{
    while (i > 0 && set->v[i].at > pos)
        i = set->v[i].parent;
    return i;
}

/* Room for one more branch and one more link. */
static int grow(parley_branch_set_t *set)
{
    parley_branch_t *v = realloc(set->v, (size_t)(set->n + 1) * sizeof *v);
    if (!v)
        return PARLEY_ENOMEM;
    set->v = v;
    parley_branch_link_t *l = realloc(set->links, (size_t)(set->nlinks + 1) * sizeof *l);
    if (!l)
        return PARLEY_ENOMEM;
    set->links = l;
    return 0;
}

/* Copy string value s into out (cap bytes): false when absent or too long. */
static bool take(json_t *s, char *out, size_t cap)
{
    const char *v = json_string_value(s);
    if (!v || strlen(v) >= cap)
        return false;
    memcpy(out, v, strlen(v) + 1);
    return true;
}

/* Fold one ledger record into set. */
static int fold(parley_branch_set_t *set, json_t *r)
{
    const char *t = json_string_value(json_object_get(r, "t"));
    char id[PARLEY_ID_LEN + 1];
    int rc = grow(set);
    if (rc)
        return rc;
    if (t && strcmp(t, "branch") == 0) {
        parley_branch_t *b = &set->v[set->n];
        memset(b, 0, sizeof *b);
        json_t *sess = json_object_get(r, "session_id");
        if (!take(json_object_get(r, "id"), b->id, sizeof b->id) ||
            !take(json_object_get(r, "parent"), id, sizeof id) ||
            (b->parent = parley_branch_find(set, id)) < 0 ||
            !json_is_integer(json_object_get(r, "at")) ||
            (json_is_string(sess) && !take(sess, b->session_id, sizeof b->session_id)))
            return PARLEY_ESTORE;
        b->at = json_integer_value(json_object_get(r, "at"));
        b->created_ms = json_integer_value(json_object_get(r, "created_ms"));
        b->tail = -1;
        set->n++;
        return 0;
    }
    if (t && strcmp(t, "active") == 0) {
        if (!take(json_object_get(r, "branch"), id, sizeof id) ||
            (set->active = parley_branch_find(set, id)) < 0)
            return PARLEY_ESTORE;
        return 0;
    }
    if (t && strcmp(t, "session") == 0) {
        parley_branch_link_t *l = &set->links[set->nlinks];
        if (!take(json_object_get(r, "session_id"), l->session_id, sizeof l->session_id) ||
            !take(json_object_get(r, "branch"), id, sizeof id) ||
            (l->branch = parley_branch_find(set, id)) < 0)
            return PARLEY_ESTORE;
        set->nlinks++;
        return 0;
    }
    return PARLEY_ESTORE;
}

int parley_branch_load(parley_db_t *db, const char *conv_id, parley_branch_set_t *set)
{
    char path[PARLEY_PATH_MAX + 1];
    parley_stream_t ledger;
    parley_buf_t buf;
    memset(set, 0, sizeof *set);
    snprintf(set->conversation_id, sizeof set->conversation_id, "%s", conv_id);
    set->v = calloc(1, sizeof *set->v);
    if (!set->v)
        return PARLEY_ENOMEM;
    snprintf(set->v[0].id, sizeof set->v[0].id, PARLEY_BRANCH_MAIN);
    set->v[0].parent = -1;
    set->v[0].created_ms = -1;
    set->v[0].tail = -1;
    set->n = 1;
    parley_branch_ledger_path(conv_id, path, sizeof path);
    int rc = parley_db_stream_get(db, path, &ledger);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && ledger.deleted))
        return 0;
    if (rc)
        return rc;
    set->has_ledger = true;
    parley_buf_init(&buf, LEDGER_MAX);
    rc = parley_buf_putc(&buf, '[');
    uint64_t pos = 0;
    while (rc == 0 && pos < ledger.tail) {
        parley_read_t rd;
        if (pos > 0)
            rc = parley_buf_putc(&buf, ',');
        if (rc == 0)
            rc = parley_stream_read(db, &ledger, pos, LEDGER_MAX, &buf, &rd);
        if (rc == 0 && rd.next <= pos)
            rc = PARLEY_ESTORE;
        if (rc == 0)
            pos = rd.next;
    }
    if (rc == 0)
        rc = parley_buf_putc(&buf, ']');
    json_t *all = NULL;
    if (rc == 0) {
        json_error_t jerr;
        all = json_loadb(buf.data, buf.len, 0, &jerr);
        if (!all)
            rc = PARLEY_ESTORE;
    }
    parley_buf_free(&buf);
    size_t k;
    json_t *r;
    json_array_foreach(all, k, r)
    {
        if (rc == 0)
            rc = fold(set, r);
    }
    json_decref(all);
    return rc;
}

int parley_branch_log(parley_db_t *db, parley_branch_set_t *set, int i, parley_stream_t *log)
{
    char path[PARLEY_PATH_MAX + 1];
    parley_branch_stream_path(set, i, path, sizeof path);
    int rc = parley_db_stream_get(db, path, log);
    if (rc == 0 && log->deleted)
        rc = PARLEY_ENOTFOUND;
    if (rc == PARLEY_ENOTFOUND && i == 0) { /* a new conversation's empty log */
        memset(log, 0, sizeof *log);
        set->v[0].tail = 0;
        return PARLEY_ENOTFOUND;
    }
    if (rc == PARLEY_ENOTFOUND)
        rc = PARLEY_ESTORE; /* a recorded branch without its log */
    if (rc == 0)
        set->v[i].tail = (int64_t)log->tail;
    return rc;
}

/* Branch i's tail, read once. */
static int tail_of(parley_db_t *db, parley_branch_set_t *set, int i, int64_t *tail)
{
    parley_stream_t log;
    if (set->v[i].tail < 0) {
        int rc = parley_branch_log(db, set, i, &log);
        if (rc && rc != PARLEY_ENOTFOUND)
            return rc;
    }
    *tail = set->v[i].tail;
    return 0;
}

json_t *parley_branch_json(parley_db_t *db, parley_branch_set_t *set, int i)
{
    int64_t tail = 0;
    const parley_branch_t *b = &set->v[i];
    if (tail_of(db, set, i, &tail))
        tail = 0;
    return json_pack("{s:s, s:s, s:o, s:I, s:I, s:b, s:o, s:o}", "id", b->id, "conversation_id",
                     set->conversation_id, "parent",
                     b->parent >= 0 ? json_string(set->v[b->parent].id) : json_null(), "fork_seq",
                     (json_int_t)(b->at + 1), "message_count", (json_int_t)tail, "active",
                     set->active == i, "session_id",
                     b->session_id[0] ? json_string(b->session_id) : json_null(), "created_at",
                     parley_clock_json(b->created_ms));
}

/* The stored text of the message at pos of branch i into out (appended). */
static int read_at(parley_db_t *db, parley_branch_set_t *set, int i, int64_t pos, parley_buf_t *out)
{
    parley_stream_t log;
    parley_read_t rd;
    int rc = parley_branch_log(db, set, i, &log);
    if (rc)
        return rc == PARLEY_ENOTFOUND ? PARLEY_ESTORE : rc;
    if (pos < 0 || (uint64_t)pos >= log.tail)
        return PARLEY_ENOTFOUND;
    rc = parley_stream_read(db, &log, (uint64_t)pos, 1, out, &rd);
    if (rc == 0 && rd.count != 1)
        rc = PARLEY_ESTORE;
    return rc;
}

int parley_branch_message_at(parley_db_t *db, parley_branch_set_t *set, int i, int64_t pos,
                             json_t **msg)
{
    parley_buf_t buf;
    json_error_t jerr;
    *msg = NULL;
    parley_buf_init(&buf, 96u << 20);
    int rc = read_at(db, set, i, pos, &buf);
    if (rc == 0 && !(*msg = json_loadb(buf.data, buf.len, 0, &jerr)))
        rc = PARLEY_ESTORE;
    parley_buf_free(&buf);
    return rc;
}

int parley_branch_find_message(parley_db_t *db, parley_branch_set_t *set, int i, const char *id,
                               int64_t *pos, json_t **msg)
{
    char needle[PARLEY_ROW_ID_MAX + 16];
    int64_t tail = 0;
    parley_buf_t buf;
    json_error_t jerr;
    *msg = NULL;
    /* The stored text is canonical JSON: a message whose id is id holds
     * this text, so only those that do are parsed. */
    snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
    parley_buf_init(&buf, 96u << 20);
    int rc = tail_of(db, set, i, &tail);
    for (int64_t p = tail - 1; rc == 0 && p >= 0; p--) {
        parley_buf_reset(&buf);
        rc = read_at(db, set, i, p, &buf);
        if (rc || !strstr(buf.data, needle))
            continue;
        json_t *m = json_loadb(buf.data, buf.len, 0, &jerr);
        if (!m) {
            rc = PARLEY_ESTORE;
        } else if (strcmp(json_string_value(json_object_get(m, "id")) ?: "", id) == 0) {
            parley_buf_free(&buf);
            *pos = p;
            *msg = m;
            return 0;
        } else {
            json_decref(m); /* the text was inside its content */
        }
    }
    parley_buf_free(&buf);
    return rc ? rc : PARLEY_ENOTFOUND;
}

int parley_branch_siblings(parley_db_t *db, parley_branch_set_t *set, int i, int64_t pos,
                           json_t **sib)
{
    int h = parley_branch_holder(set, i, pos - 1), mine = parley_branch_holder(set, i, pos);
    int64_t tail;
    bool any = false;
    int rc = 0;
    *sib = NULL;
    for (int j = 1; j < set->n && !any; j++)
        any = set->v[j].parent == h && set->v[j].at == pos;
    if (!any)
        return 0;
    json_t *ids = json_array(), *branches = json_array();
    int index = 0;
    for (int j = h; rc == 0 && j < set->n; j++) {
        if (j != h && (set->v[j].parent != h || set->v[j].at != pos))
            continue;
        rc = tail_of(db, set, j, &tail);
        if (rc || tail <= pos)
            continue; /* a regenerating branch before its answer: not yet a sibling */
        json_t *m = NULL;
        rc = parley_branch_message_at(db, set, j, pos, &m);
        if (rc)
            break;
        if (j == mine)
            index = (int)json_array_size(ids) + 1;
        json_array_append(ids, json_object_get(m, "id"));
        json_array_append_new(branches, json_string(set->v[j].id));
        json_decref(m);
    }
    if (rc == 0 && json_array_size(ids) > 1)
        *sib = json_pack("{s:i, s:I, s:O, s:O}", "index", index, "count",
                         (json_int_t)json_array_size(ids), "ids", ids, "branches", branches);
    json_decref(ids);
    json_decref(branches);
    return rc;
}

int parley_branch_read_page(parley_db_t *db, parley_branch_set_t *set, int i,
                            const parley_stream_t *log, uint64_t after, int limit, size_t max_bytes,
                            parley_buf_t *out, int *count, uint64_t *last_seq, bool *more)
{
    uint64_t pos = after;
    *count = 0;
    *last_seq = after;
    *more = false;
    while (pos < log->tail) {
        if (*count >= limit || (*count > 0 && out->len >= max_bytes)) {
            *more = true;
            break;
        }
        int rc = *count > 0 ? parley_buf_putc(out, ',') : 0;
        parley_read_t rd;
        json_t *sib = NULL;
        if (rc == 0)
            rc = parley_stream_read(db, log, pos, 1, out, &rd);
        if (rc == 0 && (rd.count == 0 || rd.next <= pos))
            rc = PARLEY_ESTORE; /* the log has a hole */
        if (rc == 0)
            rc = parley_branch_siblings(db, set, i, (int64_t)pos, &sib);
        if (rc == 0 && sib) { /* splice it in before the message's closing brace */
            char *text = json_dumps(sib, JSON_COMPACT);
            json_decref(sib);
            if (!text || out->len == 0 || out->data[out->len - 1] != '}')
                rc = text ? PARLEY_ESTORE : PARLEY_ENOMEM;
            if (rc == 0) {
                out->len--;
                rc = parley_buf_printf(out, ",\"siblings\":%s}", text);
            }
            free(text);
        }
        if (rc)
            return rc;
        pos = rd.next;
        (*count)++;
        *last_seq = pos;
    }
    return 0;
}

/* ---- writes ----------------------------------------------------------------- */

/* Append record r (borrowed) to the ledger, owned by owner. */
static int record(parley_db_t *db, parley_branch_set_t *set, const char *owner, json_t *r,
                  parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1], *text;
    size_t len;
    int64_t sid;
    if (!r)
        return PARLEY_ENOMEM;
    int rc = parley_canonjson_dump(r, &text, &len);
    if (rc)
        return rc;
    parley_branch_ledger_path(set->conversation_id, path, sizeof path);
    rc = parley_stream_append_internal(db, path, owner, text, len, &sid);
    free(text);
    if (rc == 0) {
        parley_wakeset_add(&out->wake, sid);
        set->has_ledger = true;
    }
    return rc;
}

static int emit(parley_db_t *db, const char *owner, const char *conv_id, const char *type,
                json_t *data, parley_outcome_t *out)
{
    json_t *fields = json_pack("{s:s}", "conversation_id", conv_id);
    int rc = fields && data ? parley_feed_emit(db, owner, type, fields, data, &out->wake)
                            : PARLEY_ENOMEM;
    json_decref(fields);
    json_decref(data);
    return rc;
}

/*
 * Make the log of the new branch b (its parent and at set): a fork of the
 * parent's log at b->at, or past the fork-depth limit a fork of main's
 * log where the parent's chain leaves main, plus a copy of the messages
 * from there to b->at.
 */
static int make_log(parley_db_t *db, parley_branch_set_t *set, const char *owner, int bi)
{
    char src[PARLEY_PATH_MAX + 1], path[PARLEY_PATH_MAX + 1];
    const parley_branch_t *b = &set->v[bi];
    int64_t sid;
    parley_branch_stream_path(set, b->parent, src, sizeof src);
    parley_branch_stream_path(set, bi, path, sizeof path);
    if (b->at == 0) /* nothing shared (its parent is main) */
        return parley_stream_ensure_internal(db, path, owner, &sid);
    int rc = parley_stream_branch_internal(db, src, path, owner, (uint64_t)b->at,
                                           PARLEY_STREAM_FORK_DEPTH_MAX, &sid);
    if (rc != PARLEY_ETOOBIG)
        return rc;
    int a = b->parent; /* the ancestor whose parent is main */
    while (set->v[a].parent > 0)
        a = set->v[a].parent;
    int64_t from = set->v[a].at;
    char main_path[PARLEY_PATH_MAX + 1];
    parley_branch_stream_path(set, 0, main_path, sizeof main_path);
    rc = from > 0 ? parley_stream_branch_internal(db, main_path, path, owner, (uint64_t)from,
                                                  PARLEY_STREAM_FORK_DEPTH_MAX, &sid)
                  : parley_stream_ensure_internal(db, path, owner, &sid);
    parley_stream_t dst;
    parley_buf_t buf;
    if (rc == 0)
        rc = parley_db_stream_get(db, path, &dst);
    parley_buf_init(&buf, 96u << 20);
    for (int64_t p = from; rc == 0 && p < b->at; p++) {
        parley_buf_reset(&buf);
        rc = read_at(db, set, b->parent, p, &buf);
        if (rc == 0)
            rc = parley_stream_append_row(db, &dst, buf.data, buf.len, (int64_t)dst.tail);
    }
    parley_buf_free(&buf);
    return rc;
}

int parley_branch_create(parley_db_t *db, parley_branch_set_t *set, const char *owner, int from,
                         int64_t pos, const char *id, const char *session_id, int *idx,
                         parley_outcome_t *out)
{
    if (set->n > PARLEY_BRANCH_MAX)
        return PARLEY_ETOOBIG;
    int rc = grow(set);
    if (rc)
        return rc;
    parley_branch_t *b = &set->v[set->n];
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s", id);
    b->parent = parley_branch_holder(set, from, pos - 1);
    b->at = pos;
    b->created_ms = parley_clock_now_ms();
    b->tail = -1;
    if (session_id)
        snprintf(b->session_id, sizeof b->session_id, "%s", session_id);
    set->n++;
    *idx = set->n - 1;
    rc = make_log(db, set, owner, *idx);
    if (rc)
        return rc;
    b = &set->v[*idx];
    json_t *r = json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "t", "branch", "id", b->id, "parent",
                          set->v[b->parent].id, "at", (json_int_t)b->at, "created_ms",
                          (json_int_t)b->created_ms, "session_id",
                          session_id ? json_string(session_id) : json_null());
    rc = record(db, set, owner, r, out);
    json_decref(r);
    if (rc == 0)
        rc = emit(db, owner, set->conversation_id, "branch.created",
                  parley_branch_json(db, set, *idx), out);
    return rc;
}

int parley_branch_activate(parley_db_t *db, parley_branch_set_t *set, const char *owner, int i,
                           parley_outcome_t *out)
{
    if (set->active == i)
        return 0;
    int from = set->active;
    json_t *r = json_pack("{s:s, s:s}", "t", "active", "branch", set->v[i].id);
    int rc = record(db, set, owner, r, out);
    json_decref(r);
    if (rc)
        return rc;
    set->active = i;
    return emit(db, owner, set->conversation_id, "branch.activated",
                json_pack("{s:s, s:s}", "branch", set->v[i].id, "from", set->v[from].id), out);
}

int parley_branch_link_session(parley_db_t *db, parley_branch_set_t *set, const char *owner,
                               const char *sid, int i, parley_outcome_t *out)
{
    if (i == 0)
        return 0;
    int rc = grow(set);
    if (rc)
        return rc;
    json_t *r =
        json_pack("{s:s, s:s, s:s}", "t", "session", "session_id", sid, "branch", set->v[i].id);
    rc = record(db, set, owner, r, out);
    json_decref(r);
    if (rc == 0) {
        parley_branch_link_t *l = &set->links[set->nlinks++];
        snprintf(l->session_id, sizeof l->session_id, "%s", sid);
        l->branch = i;
    }
    return rc;
}

int parley_branch_delete_all(parley_db_t *db, parley_branch_set_t *set, parley_outcome_t *out)
{
    char path[PARLEY_PATH_MAX + 1];
    int64_t sid;
    int rc = 0;
    /* Newest first: a branch's forks go before it, so nothing is kept
     * soft-deleted for a fork that is about to go too. */
    for (int i = set->n - 1; rc == 0 && i > 0; i--) {
        parley_branch_stream_path(set, i, path, sizeof path);
        rc = parley_stream_delete_internal(db, path, &sid);
        if (rc == 0)
            parley_wakeset_add(&out->wake, sid);
        else if (rc == PARLEY_ENOTFOUND)
            rc = 0;
    }
    if (rc == 0 && set->has_ledger) {
        parley_branch_ledger_path(set->conversation_id, path, sizeof path);
        rc = parley_stream_delete_internal(db, path, &sid);
        if (rc == PARLEY_ENOTFOUND)
            rc = 0;
    }
    return rc;
}
