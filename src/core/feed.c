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
