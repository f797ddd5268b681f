/*
 * test_columns.c — unit tests for store/columns.c, the column maps both
 * store backends bind and read rows through.
 *
 * Covers: "{name}" and "{name-}" in SQL expand to the map's columns in
 * order (all, or all but the last), '{}' stays, an unknown name or a short
 * buffer is PARLEY_EINVAL; format letters give the NULL conventions of the
 * store (optional text "" and optional integers < 0 are NULL, a
 * reference 0 is NULL, a NULL string binds its default); a row bound with
 * 'r' and read back through a cell reader over those values is the same
 * row (owned strings copied, borrowed ones pointing into the cells); more
 * values than PARLEY_VALS_MAX or an unknown letter is PARLEY_EINVAL; the
 * maps cover their structs (no field left out, none overlapping); a prefix scan stops at the first
 * path past its prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parley/parley.h"
#include "store/columns.h"

static void columns_expand_writes_map_order(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(parley_sql_expand("SELECT {link} FROM l WHERE x = '{}'", out, sizeof out), 0);
    assert_string_equal(out, "SELECT sub_id, path, by_glob, by_explicit, acked, wake_tail FROM l "
                             "WHERE x = '{}'");
    assert_int_equal(parley_sql_expand("INSERT INTO c ({conv-}) RETURNING {ref}", out, sizeof out),
                     0);
    assert_string_equal(out, "INSERT INTO c (id, owner, title, metadata, version, created_ms, "
                             "updated_ms, message_count, last_message_ms, deleted) RETURNING "
                             "refs, deleted, fork_src");
}

static void columns_expand_einval_unknown_or_short(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(parley_sql_expand("SELECT {nosuch} FROM t", out, sizeof out), PARLEY_EINVAL);
    assert_int_equal(parley_sql_expand("SELECT {stream} FROM t", out, 40), PARLEY_EINVAL);
    assert_int_equal(parley_sql_expand("SELECT 1", out, 4), PARLEY_EINVAL);
}

static int vals(parley_vals_t *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = parley_vals_make(v, fmt, ap);
    va_end(ap);
    return rc;
}

static void columns_vals_null_conventions(void **state)
{
    (void)state;
    parley_vals_t v;
    assert_int_equal(vals(&v, "tootinnudb", "a", "", "b", (const char *)NULL, (int64_t)-5,
                          (int64_t)-1, (int64_t)0, (uint64_t)7, 3, "xy", (size_t)2),
                     0);
    assert_int_equal(v.n, 10);
    assert_int_equal(v.v[0].kind, PARLEY_VAL_TEXT);
    assert_int_equal(v.v[1].kind, PARLEY_VAL_NULL); /* optional "" */
    assert_int_equal(v.v[2].kind, PARLEY_VAL_TEXT);
    assert_int_equal(v.v[3].kind, PARLEY_VAL_NULL); /* text NULL */
    assert_int_equal(v.v[4].kind, PARLEY_VAL_INT);
    assert_int_equal(v.v[4].i, -5);
    assert_int_equal(v.v[5].kind, PARLEY_VAL_NULL); /* optional < 0 */
    assert_int_equal(v.v[6].kind, PARLEY_VAL_INT);  /* optional 0 is a value */
    assert_int_equal(v.v[7].i, 7);
    assert_int_equal(v.v[8].i, 3);
    assert_int_equal(v.v[9].kind, PARLEY_VAL_BLOB);
    assert_int_equal(v.v[9].len, 2);
    assert_int_equal(vals(&v, "x", 1), PARLEY_EINVAL);
    char fmt[PARLEY_VALS_MAX + 2];
    memset(fmt, 'd', sizeof fmt - 1);
    fmt[sizeof fmt - 1] = '\0';
    assert_int_equal(
        vals(&v, fmt, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        PARLEY_EINVAL);
}

/* A cell reader over bound values, as a backend reads what it stored. */
static void cell_of_vals(void *ctx, int col, parley_col_kind_t kind, parley_cell_t *out)
{
    const parley_val_t *v = &((const parley_vals_t *)ctx)->v[col];
    out->null = v->kind == PARLEY_VAL_NULL;
    if (parley_col_is_text(kind)) {
        out->p = v->p;
        out->len = v->len;
    } else {
        out->i = v->i;
    }
}

static void columns_row_roundtrip_owned_and_borrowed(void **state)
{
    (void)state;
    parley_stream_t st = {0};
    strcpy(st.path, "a/b");
    strcpy(st.content_type, "text/plain");
    st.created_ms = 10;
    st.ttl_s = -1;      /* none: NULL */
    st.expires_ms = 99; /* set */
    st.tail = 12;
    st.closed = true;
    st.closer_epoch = 3;
    st.fork_src = 0; /* none: NULL */
    st.id = 42;
    parley_vals_t v;
    assert_int_equal(vals(&v, "r", &parley_stream_cols, &st), 0);
    assert_int_equal(v.n, parley_stream_cols.n);
    assert_int_equal(v.v[5].kind, PARLEY_VAL_NULL);  /* ttl_s */
    assert_int_equal(v.v[9].kind, PARLEY_VAL_NULL);  /* closer "" */
    assert_int_equal(v.v[13].kind, PARLEY_VAL_NULL); /* fork_src 0 */
    parley_stream_t back;
    memset(&back, 0x5a, sizeof back);
    assert_int_equal(parley_cols_read(&parley_stream_cols, &back, false, cell_of_vals, &v), 0);
    assert_string_equal(back.path, "a/b");
    assert_string_equal(back.owner, "");
    assert_string_equal(back.closer, "");
    assert_int_equal(back.created_ms, 10);
    assert_int_equal(back.ttl_s, -1);
    assert_int_equal(back.expires_ms, 99);
    assert_int_equal(back.tail, 12);
    assert_true(back.closed);
    assert_false(back.deleted);
    assert_int_equal(back.closer_epoch, 3);
    assert_int_equal(back.fork_src, 0);
    assert_int_equal(back.id, 42);
    assert_int_equal(vals(&v, "R", &parley_stream_cols, &st), 0);
    assert_int_equal(v.n, parley_stream_cols.n - 1); /* the id is the store's */

    parley_conv_t c = {0};
    strcpy(c.id, "c1");
    c.title = NULL;    /* binds NULL */
    c.metadata = NULL; /* binds its default, "{}" */
    c.last_message_ms = -1;
    assert_int_equal(vals(&v, "r", &parley_conv_cols, &c), 0);
    assert_int_equal(v.v[2].kind, PARLEY_VAL_NULL);
    assert_string_equal(v.v[3].p, "{}");
    parley_conv_t owned, borrowed;
    assert_int_equal(parley_cols_read(&parley_conv_cols, &owned, false, cell_of_vals, &v), 0);
    assert_null(owned.title);
    assert_string_equal(owned.metadata, "{}");
    assert_ptr_not_equal(owned.metadata, v.v[3].p); /* a copy */
    assert_int_equal(owned.last_message_ms, -1);
    parley_conv_clear(&owned);
    assert_int_equal(parley_cols_read(&parley_conv_cols, &borrowed, true, cell_of_vals, &v), 0);
    assert_ptr_equal(borrowed.metadata, v.v[3].p); /* points into the row */

    parley_doc_t d = {0};
    d.data = "{\"a\":1}";
    d.len = 3; /* bound with its length, not strlen */
    assert_int_equal(vals(&v, "r", &parley_doc_cols, &d), 0);
    assert_int_equal(v.v[5].len, 3);
    parley_doc_t dback;
    assert_int_equal(parley_cols_read(&parley_doc_cols, &dback, false, cell_of_vals, &v), 0);
    assert_int_equal(dback.len, 3);
    assert_string_equal(dback.data, "{\"a");
    parley_doc_clear(&dback);
}

/* A field's place, for the coverage check. */
typedef struct span {
    size_t off;  /* offset in the struct */
    size_t size; /* bytes */
} span_t;

static int by_off(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static void columns_maps_cover_struct_without_overlap(void **state)
{
    (void)state;
    const parley_cols_t *maps[] = {&parley_stream_cols, &parley_doc_cols,  &parley_conv_cols,
                                   &parley_sess_cols,   &parley_snap_cols, &parley_sub_cols,
                                   &parley_link_cols};
    for (size_t m = 0; m < sizeof maps / sizeof maps[0]; m++) {
        const parley_cols_t *c = maps[m];
        span_t sp[40] = {{0, 0}};
        int n = 0;
        for (int i = 0; i < c->n; i++) {
            sp[n++] = (span_t){c->col[i].off, c->col[i].size};
            if (c->col[i].len_off)
                sp[n++] = (span_t){c->col[i].len_off, sizeof(size_t)};
        }
        qsort(sp, (size_t)n, sizeof sp[0], by_off);
        size_t end = 0;
        for (int i = 0; i < n; i++) {
            assert_true(sp[i].off >= end);    /* no overlap */
            assert_true(sp[i].off - end < 8); /* nothing between but padding */
            end = sp[i].off + sp[i].size;
        }
        assert_true(end <= c->size && c->size - end < 8);
    }
}

static int count_cb(void *arg, const parley_stream_t *s)
{
    (void)s;
    return ++*(int *)arg >= 100;
}

static void columns_prefix_scan_stops_past_prefix(void **state)
{
    (void)state;
    int seen = 0;
    parley_prefix_scan_t scan = {"ab/", 3, count_cb, &seen};
    parley_stream_t s = {0};
    strcpy(s.path, "ab/x");
    assert_int_equal(parley_prefix_scan_row(&scan, &s), 0);
    strcpy(s.path, "ab0");
    assert_int_equal(parley_prefix_scan_row(&scan, &s), 1);
    assert_int_equal(seen, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(columns_expand_writes_map_order),
        cmocka_unit_test(columns_expand_einval_unknown_or_short),
        cmocka_unit_test(columns_vals_null_conventions),
        cmocka_unit_test(columns_row_roundtrip_owned_and_borrowed),
        cmocka_unit_test(columns_maps_cover_struct_without_overlap),
        cmocka_unit_test(columns_prefix_scan_stops_past_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
