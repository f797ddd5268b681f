/*
 * transfer.c — moving all of one user's data to another (see transfer.h).
 *
 * The walk over what a user owns is the store's (store/owned.h: one list,
 * both backends); this rule adds the record that makes a repeat answer
 * the same, the events in both feeds, and the trim of the old feed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/feed.h"
#include "core/transfer.h"
#include "parley/parley.h"
#include "store/owned.h"
#include "util/clock.h"

/* {from, to, moved: {kind: n}, dropped: {kind: n}}, plus prev's counts
 * when prev (a recorded answer for the same to) is not NULL. */
static json_t *answer_json(const parley_transfer_req_t *req, const parley_move_counts_t *c,
                           json_t *prev)
{
    json_t *moved = json_object(), *dropped = json_object();
    json_t *pm = json_object_get(prev, "moved"), *pd = json_object_get(prev, "dropped");
    for (size_t i = 0; moved && dropped && i < parley_owned_count; i++) {
        const char *k = parley_owned[i].name;
        json_int_t m = c->moved[i] + json_integer_value(json_object_get(pm, k));
        json_int_t d = c->dropped[i] + json_integer_value(json_object_get(pd, k));
        json_object_set_new(moved, k, json_integer(m));
        json_object_set_new(dropped, k, json_integer(d));
    }
    if (!moved || !dropped) {
        json_decref(moved);
        json_decref(dropped);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:o, s:o}", "from", req->from, "to", req->to, "moved", moved,
                     "dropped", dropped);
}

/* The user.transferred event to user's feed. */
static int emit(parley_db_t *db, const char *user, const parley_transfer_req_t *req, json_t *ans,
                parley_outcome_t *out)
{
    json_t *fields = json_pack("{s:s, s:s}", "from", req->from, "to", req->to);
    int rc = fields ? parley_feed_emit(db, user, "user.transferred", fields, ans, &out->wake)
                    : PARLEY_ENOMEM;
    json_decref(fields);
    return rc;
}

int parley_transfer_apply(parley_db_t *db, const parley_transfer_req_t *req, parley_outcome_t *out)
{
    parley_move_counts_t counts;
    char prev_to[PARLEY_OWNER_MAX + 1] = "", feed[PARLEY_PATH_MAX + 1];
    char *prev_text = NULL, *text = NULL;
    json_t *prev = NULL, *ans = NULL;
    parley_outcome_init(out);
    if (strcmp(req->from, req->to) == 0) {
        parley_outcome_refuse(out, PARLEY_EINVAL, "same_user",
                              "from and to are the same user: nothing to move", NULL);
        return 0;
    }
    int rc = parley_db_user_move(db, req->from, req->to, &counts);
    if (rc)
        return rc;
    int64_t total = 0;
    for (size_t i = 0; i < parley_owned_count; i++)
        total += counts.moved[i] + counts.dropped[i];
    rc = parley_db_transfer_get(db, req->from, prev_to, &prev_text);
    if (rc == 0 && strcmp(prev_to, req->to) == 0) {
        json_error_t jerr;
        prev = json_loads(prev_text, 0, &jerr);
    }
    if (rc && rc != PARLEY_ENOTFOUND)
        goto out_free;
    rc = 0;
    if (total == 0 && prev) { /* a repeat: nothing moved, the same answer */
        parley_outcome_answer(out, PARLEY_DONE_OK, json_incref(prev));
        goto out_free;
    }
    ans = answer_json(req, &counts, prev);
    text = ans ? json_dumps(ans, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!text) {
        rc = PARLEY_ENOMEM;
        goto out_free;
    }
    rc = parley_db_transfer_put(db, req->from, req->to, text, parley_clock_now_ms());
    if (rc || total == 0)
        goto out_answer;
    /* The old feed keeps only the transfer's event. */
    parley_stream_t st;
    parley_feed_path(req->from, feed, sizeof feed);
    int frc = parley_db_stream_get(db, feed, &st);
    if (frc && frc != PARLEY_ENOTFOUND) {
        rc = frc;
        goto out_free;
    }
    rc = emit(db, req->from, req, ans, out);
    if (rc == 0)
        rc = emit(db, req->to, req, ans, out);
    if (rc == 0 && frc == 0 && st.tail > 0) {
        int n;
        rc = parley_db_chunk_trim(db, st.id, st.tail, &n);
    }
out_answer:
    if (rc == 0)
        parley_outcome_answer(out, PARLEY_DONE_OK, json_incref(ans));
out_free:
    json_decref(prev);
    json_decref(ans);
    free(text);
    free(prev_text);
    return rc;
}
