/*
 * feed.c — the change feed (see feed.h).
 *
 * An event that cannot be built from its values (text that is not valid
 * UTF-8) is PARLEY_EINVAL, the request's error; only a real allocation
 * failure is PARLEY_ENOMEM. Neither stops the writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "core/feed.h"
#include "core/stream.h"
#include "parley/parley.h"
#include "util/clock.h"

#define FEED_ALL_OWNER "@admin" /* PARLEY_ADMIN_USER: the feed of all is the admin's */

void parley_feed_path(const char *user, char *out, size_t cap)
{
    if (user)
        snprintf(out, cap, "_parley/feed/u/%s", user);
    else
        snprintf(out, cap, "_parley/feed/all");
}

int parley_feed_emit(parley_db_t *db, const char *user, const char *type, json_t *fields,
                     json_t *data, parley_wakeset_t *wake)
{
    char at[40], path[PARLEY_PATH_MAX + 1];
    int64_t ids[2];
    parley_clock_format(parley_clock_now_ms(), at, sizeof at);
    json_error_t jerr;
    json_t *ev = json_pack_ex(&jerr, 0, "{s:s, s:s, s:s}", "type", type, "at", at, "user", user);
    if (!ev) /* text that is not UTF-8 is the request's error, not the store's */
        return json_error_code(&jerr) == json_error_out_of_memory ? PARLEY_ENOMEM : PARLEY_EINVAL;
    if (fields)
        json_object_update(ev, fields);
    if (data)
        json_object_set(ev, "data", data);
    else
        json_object_set_new(ev, "data", json_object());
    char *text = NULL;
    size_t len = 0;
    int crc = parley_canonjson_dump(ev, &text, &len); /* numbers as written (0.1 stays 0.1) */
    json_decref(ev);
    if (crc)
        return crc;
    parley_feed_path(user, path, sizeof path);
    int rc = parley_stream_append_internal(db, path, user, text, len, &ids[0]);
    if (rc == 0) {
        parley_feed_path(NULL, path, sizeof path);
        rc = parley_stream_append_internal(db, path, FEED_ALL_OWNER, text, len, &ids[1]);
        if (rc == 0) {
            parley_wakeset_add(wake, ids[0]);
            parley_wakeset_add(wake, ids[1]);
        }
    }
    free(text);
    return rc;
}

/* ---- retention ---- */

#define FEED_PREFIX       "_parley/feed/"
#define FEED_TRIM_STREAMS 64 /* feed streams visited per call at most */

bool parley_feed_is_feed(const char *path)
{
    return strncmp(path, FEED_PREFIX, sizeof FEED_PREFIX - 1) == 0;
}

/* The round-robin cursor: the path of the last feed stream visited.
 * Writer thread only. */
static char trim_cursor[PARLEY_PATH_MAX + 1];

typedef struct trim_list {
    int64_t ids[FEED_TRIM_STREAMS]; /* streams to visit */
    char last[PARLEY_PATH_MAX + 1]; /* path of the last one */
    int n;                          /* in ids */
} trim_list_t;

static int on_feed_stream(void *arg, const parley_stream_t *st)
{
    trim_list_t *l = arg;
    if (strcmp(st->path, trim_cursor) <= 0)
        return 0; /* visited this round */
    l->ids[l->n++] = st->id;
    snprintf(l->last, sizeof l->last, "%s", st->path);
    return l->n == FEED_TRIM_STREAMS;
}

typedef struct trim_scan {
    int64_t cutoff_ms; /* events before it go */
    int budget;        /* events left to look at */
    uint64_t below;    /* chunks ending at or before it go */
    int count;         /* chunks to go */
    bool stop;         /* met an event to keep (or ran out of budget) */
} trim_scan_t;

/* One chunk of a feed stream: one event (feeds append one at a time). */
static int on_feed_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                         const void *data, size_t len)
{
    (void)start;
    (void)unit_end;
    trim_scan_t *t = arg;
    if (t->budget <= 0) {
        t->stop = true;
        return 1;
    }
    t->budget--;
    json_t *ev = json_loadb(data, len, 0, NULL);
    const char *at = ev ? json_string_value(json_object_get(ev, "at")) : NULL;
    int64_t ms;
    bool old = at && parley_clock_parse(at, &ms) == 0 && ms < t->cutoff_ms;
    json_decref(ev);
    if (!old) {
        t->stop = true;
        return 1;
    }
    t->below = end;
    t->count++;
    return 0;
}

int parley_feed_trim(parley_db_t *db, int64_t cutoff_ms, int budget, int *n)
{
    trim_list_t *l = calloc(1, sizeof *l);
    if (!l)
        return PARLEY_ENOMEM;
    *n = 0;
    int rc = parley_db_stream_scan(db, FEED_PREFIX, on_feed_stream, l);
    if (rc == 0 && l->n < FEED_TRIM_STREAMS)
        trim_cursor[0] = '\0'; /* the round is over: start again next call */
    else if (rc == 0)
        snprintf(trim_cursor, sizeof trim_cursor, "%s", l->last);
    for (int i = 0; rc == 0 && i < l->n && budget > 0; i++) {
        trim_scan_t t = {cutoff_ms, budget, 0, 0, false};
        rc = parley_db_chunk_scan(db, l->ids[i], 0, on_feed_chunk, &t);
        budget = t.budget;
        int gone = 0;
        if (rc == 0 && t.count > 0)
            rc = parley_db_chunk_trim(db, l->ids[i], t.below, &gone);
        *n += gone;
    }
    free(l);
    return rc;
}

static int on_first_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                          const void *data, size_t len)
{
    (void)end;
    (void)unit_end;
    (void)data;
    (void)len;
    *(uint64_t *)arg = start;
    return 1;
}

int parley_feed_start(parley_db_t *db, const parley_stream_t *st, uint64_t *start)
{
    *start = st->tail; /* no chunk left: everything before the tail is gone */
    return parley_db_chunk_scan(db, st->id, 0, on_first_chunk, start);
}
