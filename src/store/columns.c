/*
 * columns.c — the column maps of store.h's row structs, and the code that
 * binds and reads rows through them (columns.h says how), shared by the
 * SQLite and PostgreSQL backends.
 *
 * Each map lists a struct's fields in the order its table's columns are
 * named in SQL. A backend never names a row's columns itself: its SQL says
 * "{stream}", parley_sql_expand() writes the list, and parley_cols_read()
 * reads the columns back in the same order.
 *
 * Threads: constant tables and stateless functions; any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "store/columns.h"

/* One field: its own name as the column's. */
#define COL(T, f, k)                                                                               \
    {                                                                                              \
#f, k, offsetof(T, f), sizeof(((T *)0)->f), NULL, 0                                        \
    }
/* A field whose column is named otherwise. */
#define COL_AS(T, f, name, k)                                                                      \
    {                                                                                              \
        name, k, offsetof(T, f), sizeof(((T *)0)->f), NULL, 0                                      \
    }
/* A char * field bound as dflt when NULL. */
#define COL_OR(T, f, dflt)                                                                         \
    {                                                                                              \
#f, PARLEY_COL_DUP, offsetof(T, f), sizeof(char *), dflt, 0                                \
    }
/* A char * field with its length in field lenf. */
#define COL_LEN(T, f, lenf, dflt)                                                                  \
    {                                                                                              \
#f, PARLEY_COL_DUP, offsetof(T, f), sizeof(char *), dflt, offsetof(T, lenf)                \
    }
#define MAP(var, nm, type, T, cols)                                                                \
    const parley_cols_t var = {nm, type, sizeof(T), cols, (int)(sizeof cols / sizeof cols[0])}

static const parley_col_t stream_cols[] = {
    COL(parley_stream_t, path, PARLEY_COL_TEXT),
    COL(parley_stream_t, owner, PARLEY_COL_TEXT),
    COL(parley_stream_t, content_type, PARLEY_COL_TEXT),
    COL(parley_stream_t, created_ms, PARLEY_COL_I64),
    COL(parley_stream_t, touched_ms, PARLEY_COL_I64),
    COL(parley_stream_t, ttl_s, PARLEY_COL_OPT_I64),
    COL(parley_stream_t, expires_ms, PARLEY_COL_OPT_I64),
    COL(parley_stream_t, tail, PARLEY_COL_U64),
    COL(parley_stream_t, closed, PARLEY_COL_BOOL),
    COL(parley_stream_t, closer, PARLEY_COL_OPT_TEXT),
    COL(parley_stream_t, closer_epoch, PARLEY_COL_U64),
    COL(parley_stream_t, closer_seq, PARLEY_COL_U64),
    COL(parley_stream_t, stream_seq, PARLEY_COL_OPT_TEXT),
    COL(parley_stream_t, fork_src, PARLEY_COL_ID),
    COL(parley_stream_t, fork_pos, PARLEY_COL_U64),
    COL(parley_stream_t, refs, PARLEY_COL_I64),
    COL(parley_stream_t, deleted, PARLEY_COL_BOOL),
    COL(parley_stream_t, id, PARLEY_COL_I64), /* assigned at insert */
};
MAP(parley_stream_cols, "stream", PARLEY_ROW_STREAM, parley_stream_t, stream_cols);

static const parley_col_t doc_cols[] = {
    COL(parley_doc_t, owner, PARLEY_COL_TEXT),
    COL(parley_doc_t, collection, PARLEY_COL_TEXT),
    COL(parley_doc_t, id, PARLEY_COL_TEXT),
    COL(parley_doc_t, version, PARLEY_COL_I64),
    COL(parley_doc_t, deleted, PARLEY_COL_BOOL),
    COL_LEN(parley_doc_t, data, len, "null"),
    COL(parley_doc_t, checksum, PARLEY_COL_TEXT),
    COL(parley_doc_t, created_ms, PARLEY_COL_I64),
    COL(parley_doc_t, updated_ms, PARLEY_COL_I64),
    COL(parley_doc_t, chg, PARLEY_COL_I64), /* assigned at insert */
};
MAP(parley_doc_cols, "doc", PARLEY_ROW_DOC, parley_doc_t, doc_cols);

static const parley_col_t conv_cols[] = {
    COL(parley_conv_t, id, PARLEY_COL_TEXT),
    COL(parley_conv_t, owner, PARLEY_COL_TEXT),
    COL(parley_conv_t, title, PARLEY_COL_DUP),
    COL_OR(parley_conv_t, metadata, "{}"),
    COL(parley_conv_t, version, PARLEY_COL_I64),
    COL(parley_conv_t, created_ms, PARLEY_COL_I64),
    COL(parley_conv_t, updated_ms, PARLEY_COL_I64),
    COL(parley_conv_t, message_count, PARLEY_COL_I64),
    COL(parley_conv_t, last_message_ms, PARLEY_COL_OPT_I64),
    COL(parley_conv_t, deleted, PARLEY_COL_BOOL),
    COL(parley_conv_t, activity, PARLEY_COL_I64), /* assigned at insert */
};
MAP(parley_conv_cols, "conv", PARLEY_ROW_CONV, parley_conv_t, conv_cols);

static const parley_col_t sess_cols[] = {
    COL(parley_sess_t, id, PARLEY_COL_TEXT),
    COL(parley_sess_t, conversation_id, PARLEY_COL_TEXT),
    COL(parley_sess_t, owner, PARLEY_COL_TEXT),
    COL(parley_sess_t, message_id, PARLEY_COL_TEXT),
    COL(parley_sess_t, result_id, PARLEY_COL_OPT_TEXT),
    COL(parley_sess_t, status, PARLEY_COL_TEXT),
    COL(parley_sess_t, attempt, PARLEY_COL_I64),
    COL(parley_sess_t, max_attempts, PARLEY_COL_I64),
    COL(parley_sess_t, lease_ms, PARLEY_COL_I64),
    COL(parley_sess_t, lease_expires_ms, PARLEY_COL_OPT_I64),
    COL(parley_sess_t, error, PARLEY_COL_DUP),
    COL(parley_sess_t, request, PARLEY_COL_DUP),
    COL(parley_sess_t, input, PARLEY_COL_DUP),
    COL(parley_sess_t, created_ms, PARLEY_COL_I64),
    COL(parley_sess_t, updated_ms, PARLEY_COL_I64),
    COL(parley_sess_t, ord, PARLEY_COL_I64), /* assigned at insert */
};
MAP(parley_sess_cols, "sess", PARLEY_ROW_SESS, parley_sess_t, sess_cols);

static const parley_col_t snap_cols[] = {
    COL(parley_snap_t, id, PARLEY_COL_TEXT),
    COL(parley_snap_t, owner, PARLEY_COL_TEXT),
    COL(parley_snap_t, source, PARLEY_COL_TEXT),
    COL(parley_snap_t, kind, PARLEY_COL_TEXT),
    COL(parley_snap_t, title, PARLEY_COL_DUP),
    COL_AS(parley_snap_t, is_public, "public", PARLEY_COL_BOOL),
    COL(parley_snap_t, created_ms, PARLEY_COL_I64),
    COL(parley_snap_t, expires_ms, PARLEY_COL_OPT_I64),
    COL(parley_snap_t, stream, PARLEY_COL_OPT_TEXT),
    COL_OR(parley_snap_t, payload, "{}"),
    COL(parley_snap_t, ord, PARLEY_COL_I64), /* assigned at insert */
};
MAP(parley_snap_cols, "snap", PARLEY_ROW_SNAP, parley_snap_t, snap_cols);

static const parley_col_t sub_cols[] = {
    COL(parley_sub_t, id, PARLEY_COL_TEXT),
    COL(parley_sub_t, type, PARLEY_COL_TEXT),
    COL(parley_sub_t, pattern, PARLEY_COL_OPT_TEXT),
    COL(parley_sub_t, webhook_url, PARLEY_COL_OPT_TEXT),
    COL(parley_sub_t, wake_stream, PARLEY_COL_OPT_TEXT),
    COL(parley_sub_t, description, PARLEY_COL_OPT_TEXT),
    COL(parley_sub_t, lease_ttl_ms, PARLEY_COL_I64),
    COL(parley_sub_t, config_hash, PARLEY_COL_TEXT),
    COL(parley_sub_t, root_url, PARLEY_COL_TEXT),
    COL(parley_sub_t, created_ms, PARLEY_COL_I64),
    COL(parley_sub_t, generation, PARLEY_COL_I64),
    COL(parley_sub_t, wake_id, PARLEY_COL_OPT_TEXT),
    COL(parley_sub_t, holder, PARLEY_COL_OPT_TEXT),
    COL(parley_sub_t, lease_expires_ms, PARLEY_COL_OPT_I64),
    COL(parley_sub_t, delivery_due_ms, PARLEY_COL_OPT_I64),
    COL(parley_sub_t, attempts, PARLEY_COL_I64),
};
MAP(parley_sub_cols, "sub", PARLEY_ROW_SUB, parley_sub_t, sub_cols);

static const parley_col_t link_cols[] = {
    COL(parley_sub_link_t, sub_id, PARLEY_COL_TEXT),
    COL(parley_sub_link_t, path, PARLEY_COL_TEXT),
    COL(parley_sub_link_t, by_glob, PARLEY_COL_BOOL),
    COL(parley_sub_link_t, by_explicit, PARLEY_COL_BOOL),
    COL(parley_sub_link_t, acked, PARLEY_COL_U64),
    COL(parley_sub_link_t, wake_tail, PARLEY_COL_OPT_I64),
};
MAP(parley_link_cols, "link", PARLEY_ROW_LINK, parley_sub_link_t, link_cols);

static const parley_col_t ref_cols[] = {
    COL(parley_stream_ref_t, refs, PARLEY_COL_I64),
    COL(parley_stream_ref_t, deleted, PARLEY_COL_BOOL),
    COL(parley_stream_ref_t, fork_src, PARLEY_COL_ID),
};
MAP(parley_ref_cols, "ref", PARLEY_ROW_OTHER, parley_stream_ref_t, ref_cols);

static const parley_col_t producer_cols[] = {
    COL(parley_producer_state_t, epoch, PARLEY_COL_U64),
    COL(parley_producer_state_t, last_seq, PARLEY_COL_U64),
};
MAP(parley_producer_cols, "producer", PARLEY_ROW_OTHER, parley_producer_state_t, producer_cols);

static const parley_col_t idem_cols[] = {
    COL(parley_idem_row_t, fingerprint, PARLEY_COL_TEXT),
    COL(parley_idem_row_t, created_ms, PARLEY_COL_I64),
    COL_LEN(parley_idem_row_t, response, len, NULL),
};
MAP(parley_idem_cols, "idem", PARLEY_ROW_OTHER, parley_idem_row_t, idem_cols);

static const parley_col_t key_cols[] = {
    COL_LEN(parley_key_row_t, secret, len, NULL),
};
MAP(parley_key_cols, "key", PARLEY_ROW_OTHER, parley_key_row_t, key_cols);

static const parley_col_t blob_cols[] = {
    COL(parley_blob_t, owner, PARLEY_COL_TEXT),
    COL(parley_blob_t, id, PARLEY_COL_TEXT),
    COL(parley_blob_t, upload, PARLEY_COL_I64),
    COL(parley_blob_t, size, PARLEY_COL_I64),
    COL(parley_blob_t, content_type, PARLEY_COL_TEXT),
    COL(parley_blob_t, created_ms, PARLEY_COL_I64),
    COL(parley_blob_t, touched_ms, PARLEY_COL_I64),
};
MAP(parley_blob_cols, "blob", PARLEY_ROW_OTHER, parley_blob_t, blob_cols);

static const parley_cols_t *const maps[] = {
    &parley_stream_cols,   &parley_doc_cols,  &parley_conv_cols, &parley_sess_cols,
    &parley_snap_cols,     &parley_sub_cols,  &parley_link_cols, &parley_ref_cols,
    &parley_producer_cols, &parley_idem_cols, &parley_key_cols,  &parley_blob_cols,
};

int parley_row_call(const parley_cols_t *cols, parley_row_cb_t cb, void *arg, const void *row)
{
    switch (cols->type) {
    case PARLEY_ROW_STREAM:
        return cb.stream(arg, row);
    case PARLEY_ROW_DOC:
        return cb.doc(arg, row);
    case PARLEY_ROW_CONV:
        return cb.conv(arg, row);
    case PARLEY_ROW_SESS:
        return cb.sess(arg, row);
    case PARLEY_ROW_SNAP:
        return cb.snap(arg, row);
    case PARLEY_ROW_SUB:
        return cb.sub(arg, row);
    case PARLEY_ROW_LINK:
        return cb.link(arg, row);
    case PARLEY_ROW_OTHER:
        break;
    }
    return 1;
}

/* The next free value, or NULL when vals is full. */
static parley_val_t *next_val(parley_vals_t *vals)
{
    if (vals->n >= PARLEY_VALS_MAX)
        return NULL;
    parley_val_t *v = &vals->v[vals->n++];
    memset(v, 0, sizeof *v);
    return v;
}

static void val_text(parley_val_t *v, const char *s, size_t len)
{
    v->kind = s ? PARLEY_VAL_TEXT : PARLEY_VAL_NULL;
    v->p = s;
    v->len = len;
}

static void val_int(parley_val_t *v, int64_t i)
{
    v->kind = PARLEY_VAL_INT;
    v->i = i;
}

/* The value of one mapped field of row. */
static void col_val(const parley_col_t *c, const void *row, parley_val_t *v)
{
    const char *f = (const char *)row + c->off;
    int64_t i;
    switch (c->kind) {
    case PARLEY_COL_TEXT:
        val_text(v, f, strlen(f));
        break;
    case PARLEY_COL_OPT_TEXT:
        val_text(v, f[0] ? f : NULL, strlen(f));
        break;
    case PARLEY_COL_DUP: {
        const char *s;
        memcpy(&s, f, sizeof s);
        if (!s)
            val_text(v, c->dflt, c->dflt ? strlen(c->dflt) : 0);
        else if (c->len_off)
            val_text(v, s, *(const size_t *)((const char *)row + c->len_off));
        else
            val_text(v, s, strlen(s));
        break;
    }
    case PARLEY_COL_I64:
    case PARLEY_COL_U64:
        memcpy(&i, f, sizeof i);
        val_int(v, i);
        break;
    case PARLEY_COL_OPT_I64:
    case PARLEY_COL_ID:
        memcpy(&i, f, sizeof i);
        if (c->kind == PARLEY_COL_OPT_I64 ? i < 0 : i == 0)
            v->kind = PARLEY_VAL_NULL;
        else
            val_int(v, i);
        break;
    case PARLEY_COL_BOOL:
        v->kind = PARLEY_VAL_BOOL;
        v->i = *(const bool *)f ? 1 : 0;
        break;
    }
}

int parley_vals_make(parley_vals_t *vals, const char *fmt, va_list ap)
{
    vals->n = 0;
    for (const char *f = fmt; *f; f++) {
        if (*f == 'r' || *f == 'R') {
            const parley_cols_t *cols = va_arg(ap, const parley_cols_t *);
            const void *row = va_arg(ap, const void *);
            int n = *f == 'R' ? cols->n - 1 : cols->n;
            for (int i = 0; i < n; i++) {
                parley_val_t *v = next_val(vals);
                if (!v)
                    return PARLEY_EINVAL;
                col_val(&cols->col[i], row, v);
            }
            continue;
        }
        parley_val_t *v = next_val(vals);
        if (!v)
            return PARLEY_EINVAL;
        const char *s;
        int64_t i;
        switch (*f) {
        case 't':
        case 'o':
            s = va_arg(ap, const char *);
            if (*f == 'o' && s && !s[0])
                s = NULL;
            val_text(v, s, s ? strlen(s) : 0);
            break;
        case 'i':
        case 'n':
            i = va_arg(ap, int64_t);
            if (*f == 'n' && i < 0)
                v->kind = PARLEY_VAL_NULL;
            else
                val_int(v, i);
            break;
        case 'u':
            val_int(v, (int64_t)va_arg(ap, uint64_t));
            break;
        case 'd':
            val_int(v, va_arg(ap, int));
            break;
        case 'b':
            v->kind = PARLEY_VAL_BLOB;
            v->p = va_arg(ap, const void *);
            v->len = va_arg(ap, size_t);
            if (!v->len)
                v->p = "";
            break;
        default:
            return PARLEY_EINVAL;
        }
    }
    return 0;
}

void parley_cols_clear(const parley_cols_t *cols, void *row)
{
    for (int i = 0; i < cols->n; i++) {
        if (cols->col[i].kind != PARLEY_COL_DUP)
            continue;
        char **p = (char **)((char *)row + cols->col[i].off);
        free(*p);
        *p = NULL;
    }
}

int parley_cols_read(const parley_cols_t *cols, void *row, bool borrow, parley_cell_fn cell,
                     void *ctx)
{
    char *base = row;
    int rc = 0;
    for (int i = 0; i < cols->n; i++) {
        const parley_col_t *c = &cols->col[i];
        char *f = base + c->off;
        parley_cell_t v = {0};
        cell(ctx, i, c->kind, &v);
        int64_t n = v.null ? 0 : v.i;
        switch (c->kind) {
        case PARLEY_COL_TEXT:
        case PARLEY_COL_OPT_TEXT: {
            size_t len = v.null || !v.p ? 0 : v.len;
            if (len >= c->size)
                len = c->size - 1;
            if (len)
                memcpy(f, v.p, len);
            f[len] = '\0';
            break;
        }
        case PARLEY_COL_DUP: {
            char *s = NULL;
            size_t len = v.null || !v.p ? 0 : v.len;
            if (v.null || !v.p)
                ;
            else if (borrow)
                s = (char *)v.p;
            else if ((s = malloc(len + 1)) != NULL) {
                memcpy(s, v.p, len);
                s[len] = '\0';
            } else {
                rc = PARLEY_ENOMEM;
                len = 0;
            }
            memcpy(f, &s, sizeof s);
            if (c->len_off)
                *(size_t *)(base + c->len_off) = len;
            break;
        }
        case PARLEY_COL_I64:
        case PARLEY_COL_ID:
        case PARLEY_COL_U64:
            memcpy(f, &n, sizeof n);
            break;
        case PARLEY_COL_OPT_I64:
            n = v.null ? -1 : v.i;
            memcpy(f, &n, sizeof n);
            break;
        case PARLEY_COL_BOOL:
            *(bool *)f = n != 0;
            break;
        }
    }
    if (rc && !borrow)
        parley_cols_clear(cols, row);
    return rc;
}

/* The map named by the len bytes at name, or NULL. */
static const parley_cols_t *map_named(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        if (strlen(maps[i]->name) == len && memcmp(maps[i]->name, name, len) == 0)
            return maps[i];
    return NULL;
}

int parley_sql_expand(const char *sql, char *out, size_t cap)
{
    size_t n = 0;
    if (!sql)
        return PARLEY_EINVAL; /* a statement a backend has no SQL for */
    for (const char *p = sql; *p;) {
        const char *end = p[0] == '{' && p[1] >= 'a' && p[1] <= 'z' ? strchr(p, '}') : NULL;
        if (!end) {
            if (n + 1 >= cap)
                return PARLEY_EINVAL;
            out[n++] = *p++;
            continue;
        }
        bool but_last = end[-1] == '-';
        const parley_cols_t *cols = map_named(p + 1, (size_t)(end - p - 1 - but_last));
        if (!cols)
            return PARLEY_EINVAL;
        for (int i = 0; i < cols->n - but_last; i++) {
            int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", cols->col[i].name);
            if (w < 0 || (size_t)w >= cap - n)
                return PARLEY_EINVAL;
            n += (size_t)w;
        }
        p = end + 1;
    }
    out[n] = '\0';
    return 0;
}

/* ---- the shapes of the ops (columns.h) ---- */

/* Fill vals from fmt's arguments and run stmt through fn. */
static int vrun(parley_query_fn fn, parley_db_t *db, int stmt, parley_query_t *q, const char *fmt,
                va_list ap)
{
    parley_vals_t vals;
    int rc = parley_vals_make(&vals, fmt, ap);
    return rc ? rc : fn(db, stmt, &vals, q);
}

int parley_sql_exec(parley_query_fn fn, parley_db_t *db, int stmt, int64_t *changes,
                    const char *fmt, ...)
{
    parley_query_t q = {0};
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(fn, db, stmt, &q, fmt, ap);
    va_end(ap);
    if (changes)
        *changes = rc ? 0 : q.changes;
    return rc;
}

int parley_sql_fetch(parley_query_fn fn, parley_db_t *db, int stmt, const parley_cols_t *cols,
                     void *row, const char *fmt, ...)
{
    parley_query_t q = {.cols = cols, .out = row, .stride = cols->size, .max = 1};
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(fn, db, stmt, &q, fmt, ap);
    va_end(ap);
    if (rc && q.n)
        parley_cols_clear(cols, row); /* read, then the statement failed */
    return rc ? rc : q.n ? 0 : PARLEY_ENOTFOUND;
}

int parley_sql_each(parley_query_fn fn, parley_db_t *db, int stmt, const parley_cols_t *cols,
                    parley_row_cb_t cb, void *arg, const char *fmt, ...)
{
    /* On the heap: a subscription row is several KiB. */
    parley_query_t q = {.cols = cols, .stride = cols->size, .borrow = true, .cb = &cb, .arg = arg};
    q.out = calloc(1, cols->size);
    if (!q.out)
        return PARLEY_ENOMEM;
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(fn, db, stmt, &q, fmt, ap);
    va_end(ap);
    free(q.out);
    return rc;
}

int parley_sql_column(parley_query_fn fn, parley_db_t *db, int stmt, parley_col_kind_t kind,
                      void *out, size_t stride, int max, int *n, const char *fmt, ...)
{
    parley_col_t col = {"", kind, 0, stride, NULL, 0};
    parley_cols_t one = {"", PARLEY_ROW_OTHER, stride, &col, 1};
    parley_query_t q = {.cols = &one, .out = out, .stride = stride, .max = max};
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(fn, db, stmt, &q, fmt, ap);
    va_end(ap);
    *n = rc ? 0 : q.n;
    return rc;
}

int parley_sql_rows(parley_query_fn fn, parley_db_t *db, int stmt, const parley_cols_t *cols,
                    void *out, int max, int *n, const char *fmt, ...)
{
    parley_query_t q = {.cols = cols, .out = out, .stride = cols->size, .max = max};
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(fn, db, stmt, &q, fmt, ap);
    va_end(ap);
    *n = rc ? 0 : q.n;
    return rc;
}

int parley_sql_ints(parley_query_fn fn, parley_db_t *db, int stmt, int64_t *vals, int n,
                    const char *fmt, ...)
{
    parley_col_t col[4];
    int64_t got[4];
    parley_cols_t row = {"", PARLEY_ROW_OTHER, sizeof got, col, n};
    parley_query_t q = {.cols = &row, .out = (char *)got, .stride = sizeof got, .max = 1};
    if (n > 4)
        return PARLEY_EINVAL;
    for (int i = 0; i < n; i++)
        col[i] =
            (parley_col_t){"", PARLEY_COL_I64, (size_t)i * sizeof got[0], sizeof got[0], NULL, 0};
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(fn, db, stmt, &q, fmt, ap);
    va_end(ap);
    if (rc == 0 && q.n == 0)
        rc = PARLEY_ENOTFOUND;
    for (int i = 0; rc == 0 && i < n; i++)
        vals[i] = got[i];
    return rc;
}

int parley_prefix_scan_row(void *scan, const parley_stream_t *s)
{
    parley_prefix_scan_t *ps = scan;
    if (strncmp(s->path, ps->prefix, ps->len) != 0)
        return 1; /* past the prefix's range */
    return ps->cb(ps->arg, s);
}
