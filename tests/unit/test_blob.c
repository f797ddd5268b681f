/*
 * test_blob.c — unit tests for core/blob.c, on a real SQLite store (a
 * fresh temporary directory per case).
 *
 *   1. ids: 64 lowercase hex digits only;
 *   2. references are found at any depth, once each, and a bad blob part
 *      or more than PARLEY_BLOB_REFS_MAX ids is refused;
 *   3. a commit stores the blob with its blob.created event (201); the
 *      same bytes again answer the existing blob (200) and drop the new
 *      staged parts; the quota refuses with EFULL / quota_exceeded;
 *   4. dropping a staged upload never touches a committed blob's parts;
 *   5. collection removes an unreferenced blob after the grace (with a
 *      blob.deleted event), keeps a referenced one, and removes staged
 *      uploads left idle;
 *   6. signed-URL signatures depend on owner, id and expiry.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */

#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/blob.h"
#include "parley/parley.h"
#include "store/store.h"
#include "store_fixture.h"
#include "util/clock.h"

typedef store_fixture_t fixture_t;

static const char ID_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char ID_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void blob_id_is_valid_only_hex64(void **state)
{
    (void)state;
    assert_true(parley_blob_id_is_valid(ID_A));
    assert_false(parley_blob_id_is_valid(""));
    assert_false(parley_blob_id_is_valid(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_false(parley_blob_id_is_valid("aaaa"));
    char longer[70];
    snprintf(longer, sizeof longer, "%sa", ID_A);
    assert_false(parley_blob_id_is_valid(longer));
}

static void blob_refs_find_any_depth_once(void **state)
{
    (void)state;
    char ids[PARLEY_BLOB_REFS_MAX][PARLEY_BLOB_ID_LEN + 1];
    char text[512];
    int n = -1;
    snprintf(text, sizeof text,
             "[{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"blob\",\"id\":\"%s\"},"
             "{\"a\":[[{\"b\":{\"type\":\"blob\",\"id\":\"%s\"}}]]},"
             "{\"type\":\"blob\",\"id\":\"%s\"}]",
             ID_A, ID_B, ID_A);
    json_t *v = json_loads(text, 0, NULL);
    assert_int_equal(parley_blob_refs_find(v, ids, &n), 0);
    assert_int_equal(n, 2);
    json_decref(v);

    v = json_loads("{\"type\":\"blob\",\"id\":\"nope\"}", 0, NULL);
    assert_int_equal(parley_blob_refs_find(v, ids, &n), PARLEY_EINVAL);
    json_decref(v);

    v = json_array();
    for (int i = 0; i <= PARLEY_BLOB_REFS_MAX; i++) {
        char id[PARLEY_BLOB_ID_LEN + 1];
        snprintf(id, sizeof id, "%064x", i);
        json_array_append_new(v, json_pack("{s:s, s:s}", "type", "blob", "id", id));
    }
    assert_int_equal(parley_blob_refs_find(v, ids, &n), PARLEY_ETOOBIG);
    json_decref(v);
    assert_int_equal(parley_blob_refs_find(NULL, ids, &n), 0);
    assert_int_equal(n, 0);
}

/* Stage bytes for owner as one part; the upload id. */
static int64_t stage(fixture_t *fx, const char *owner, const char *bytes)
{
    int64_t upload = 0;
    assert_int_equal(parley_blob_put_part(fx->db, owner, &upload, 0, bytes, strlen(bytes)), 0);
    assert_true(upload > 0);
    return upload;
}

static void commit_ok(fixture_t *fx, const char *owner, const char *id, int64_t upload,
                      int64_t size, uint64_t quota, parley_outcome_t *o)
{
    parley_blob_req_t req = {.owner = owner,
                             .id = id,
                             .upload = upload,
                             .size = size,
                             .content_type = "text/plain",
                             .quota = quota};
    assert_int_equal(parley_blob_commit(fx->db, &req, o), 0);
}

static void blob_commit_dedup_and_quota(void **state)
{
    fixture_t *fx = *state;
    parley_outcome_t o;
    assert_int_equal(parley_db_begin(fx->db), 0);
    int64_t up1 = stage(fx, "alice", "hello");
    commit_ok(fx, "alice", ID_A, up1, 5, 0, &o);
    assert_int_equal(o.refusal, 0);
    assert_int_equal(o.done, PARLEY_DONE_CREATED);
    assert_int_equal(json_integer_value(json_object_get(o.body, "size")), 5);
    parley_outcome_clear(&o);

    int64_t up2 = stage(fx, "alice", "hello");
    commit_ok(fx, "alice", ID_A, up2, 5, 0, &o);
    assert_int_equal(o.done, PARLEY_DONE_OK);
    parley_outcome_clear(&o);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(parley_db_blob_part_get(fx->db, up2, 0, &data, &len), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_blob_part_get(fx->db, up1, 0, &data, &len), 0);
    assert_int_equal(len, 5);
    free(data);
    /* Dropping a committed blob's upload changes nothing (invariant 3). */
    assert_int_equal(parley_blob_unstage(fx->db, up1), 0);
    assert_int_equal(parley_db_blob_part_get(fx->db, up1, 0, &data, &len), 0);
    free(data);

    int64_t up3 = stage(fx, "alice", "world!");
    commit_ok(fx, "alice", ID_B, up3, 6, 10, &o);
    assert_int_equal(o.refusal, PARLEY_EFULL);
    assert_string_equal(o.code, "quota_exceeded");
    parley_outcome_clear(&o);
    int64_t used = -1;
    assert_int_equal(parley_db_blob_usage(fx->db, "alice", &used), 0);
    assert_int_equal(used, 5);
    assert_int_equal(parley_db_blob_usage(fx->db, "bob", &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(parley_db_commit(fx->db), 0);
}

static void blob_collect_unreferenced_after_grace(void **state)
{
    fixture_t *fx = *state;
    parley_outcome_t o;
    parley_wakeset_t wake;
    int n = -1;
    parley_wakeset_init(&wake);
    assert_int_equal(parley_db_begin(fx->db), 0);
    commit_ok(fx, "alice", ID_A, stage(fx, "alice", "aaa"), 3, 0, &o);
    parley_outcome_clear(&o);
    commit_ok(fx, "alice", ID_B, stage(fx, "alice", "bbb"), 3, 0, &o);
    parley_outcome_clear(&o);
    int64_t idle = stage(fx, "alice", "left half-way");
    char ids[1][PARLEY_BLOB_ID_LEN + 1];
    snprintf(ids[0], sizeof ids[0], "%s", ID_B);
    parley_outcome_init(&o);
    assert_int_equal(parley_blob_refs_set(fx->db, "alice", "c:conv1", false, ids, 1, &o), 0);
    assert_int_equal(o.refusal, 0);
    /* Another user has no such blob: the reference is refused. */
    assert_int_equal(parley_blob_refs_set(fx->db, "bob", "c:conv2", false, ids, 1, &o), 0);
    assert_int_equal(o.refusal, PARLEY_EINVAL);
    assert_string_equal(o.code, "blob_not_found");
    parley_outcome_clear(&o);

    int64_t now = parley_clock_now_ms();
    assert_int_equal(parley_blob_collect(fx->db, now, 60000, 32, &wake, &n), 0);
    assert_int_equal(n, 0); /* within the grace */
    assert_int_equal(parley_blob_collect(fx->db, now + 61000, 60000, 32, &wake, &n), 0);
    assert_int_equal(n, 1);
    parley_blob_t b;
    assert_int_equal(parley_db_blob_get(fx->db, "alice", ID_A, &b), PARLEY_ENOTFOUND);
    assert_int_equal(parley_db_blob_get(fx->db, "alice", ID_B, &b), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(parley_db_blob_part_get(fx->db, idle, 0, &data, &len), PARLEY_ENOTFOUND);

    /* The reference goes: the grace runs again from then. */
    assert_int_equal(parley_db_blob_ref_drop(fx->db, "alice", "c:conv1", now + 62000), 0);
    assert_int_equal(parley_blob_collect(fx->db, now + 63000, 60000, 32, &wake, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(parley_blob_collect(fx->db, now + 123000, 60000, 32, &wake, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(parley_db_commit(fx->db), 0);
}

static void blob_url_sig_depends_on_every_field(void **state)
{
    (void)state;
    unsigned char key[PARLEY_BLOB_KEY_LEN] = {1, 2, 3};
    char a[44], b[44];
    parley_blob_url_sig(key, "alice", ID_A, 1000, a);
    assert_int_equal(strlen(a), 43);
    parley_blob_url_sig(key, "alice", ID_A, 1000, b);
    assert_string_equal(a, b);
    parley_blob_url_sig(key, "bob", ID_A, 1000, b);
    assert_string_not_equal(a, b);
    parley_blob_url_sig(key, "alice", ID_B, 1000, b);
    assert_string_not_equal(a, b);
    parley_blob_url_sig(key, "alice", ID_A, 1001, b);
    assert_string_not_equal(a, b);
    key[0] = 9;
    parley_blob_url_sig(key, "alice", ID_A, 1000, b);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blob_id_is_valid_only_hex64),
        cmocka_unit_test(blob_refs_find_any_depth_once),
        cmocka_unit_test_setup_teardown(blob_commit_dedup_and_quota, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(blob_collect_unreferenced_after_grace, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test(blob_url_sig_depends_on_every_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
