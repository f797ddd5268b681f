/*
 * columns.h — the column maps the store backends share: how each row
 * struct of store.h is laid out as SQL columns, how a statement's
 * parameters are named, and how a result row is read back into a struct.
 * Internal to src/store/ (the backends and store.c).
 *
 * A map is a list of {SQL column name, kind, offset, size} entries, one per
 * field. From it a backend
 *   - writes its SELECT / RETURNING / INSERT column lists: a statement's
 *     SQL says "{conv}" (every column, in map order) or "{stream-}" (all
 *     but the last) and parley_sql_expand() puts the names in, so the
 *     order a row is read in cannot drift from the SQL;
 *   - binds a row as parameters (the 'r' and 'R' letters below);
 *   - reads a result row into the struct (parley_cols_read), asking the
 *     backend for one cell at a time.
 *
 * Parameters are named by a format string, one letter each:
 *   t  const char *   text; NULL is SQL NULL
 *   o  const char *   optional text: NULL or "" is SQL NULL
 *   i  int64_t        integer
 *   n  int64_t        optional integer: negative is SQL NULL
 *   u  uint64_t       integer (positions; stored as a signed 64-bit value)
 *   d  int            integer (limits, deltas)
 *   b  const void *, size_t   bytes (BLOB / bytea)
 *   r  const parley_cols_t *, const void *row   every column of the row
 *   R  const parley_cols_t *, const void *row   every column but the last
 * The variadic arguments must have exactly these types.
 *
 * Invariants:
 *   1. In the stream, document, conversation, session and snapshot maps
 *      the last column is the one the store assigns at insert (the stream
 *      id, chg, activity, ord): 'R' and "{name-}" leave it out.
 *   2. A map covers every field of its struct, so a read sets them all.
 *
 * Threads: constant tables and stateless functions; any thread.
 */
#ifndef PARLEY_STORE_COLUMNS_H
#define PARLEY_STORE_COLUMNS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* How a field maps to a column (read: SQL value -> field; bind: field -> value). */
typedef enum parley_col_kind {
    PARLEY_COL_TEXT,     /* char[size]: copied, truncated; NULL reads as ""; bound as text */
    PARLEY_COL_OPT_TEXT, /* char[size]: as TEXT, but "" binds as NULL */
    PARLEY_COL_DUP,      /* char *: owned copy (borrowed in list callbacks); NULL <-> NULL */
    PARLEY_COL_I64,      /* int64_t; NULL reads as 0 */
    PARLEY_COL_OPT_I64,  /* int64_t: negative <-> NULL (NULL reads as -1) */
    PARLEY_COL_ID,       /* int64_t: 0 <-> NULL (a reference to another row, or none) */
    PARLEY_COL_U64,      /* uint64_t, stored signed; NULL reads as 0 */
    PARLEY_COL_BOOL      /* bool */
} parley_col_kind_t;

/* One field's column. */
typedef struct parley_col {
    const char *name;       /* the SQL column name */
    parley_col_kind_t kind; /* how it maps */
    size_t off;             /* offset of the field in the row struct */
    size_t size;            /* sizeof the field (a text field's capacity) */
    const char *dflt;       /* DUP: text bound when the field is NULL (NULL: SQL NULL) */
    size_t len_off;         /* DUP: offset of a size_t that holds its length, 0 for none */
} parley_col_t;

/* Which struct a map fills (and so which parley_row_cb_t member it calls). */
typedef enum parley_row_type {
    PARLEY_ROW_STREAM,
    PARLEY_ROW_DOC,
    PARLEY_ROW_CONV,
    PARLEY_ROW_SESS,
    PARLEY_ROW_SNAP,
    PARLEY_ROW_SUB,
    PARLEY_ROW_LINK,
    PARLEY_ROW_OTHER /* no list callback */
} parley_row_type_t;

/* A row struct's map. */
typedef struct parley_cols {
    const char *name;        /* its token in SQL: "{name}", "{name-}" */
    parley_row_type_t type;  /* the struct */
    size_t size;             /* sizeof the struct */
    const parley_col_t *col; /* the columns, in SQL order */
    int n;                   /* entries in col */
} parley_cols_t;

extern const parley_cols_t parley_stream_cols;   /* parley_stream_t (last: id) */
extern const parley_cols_t parley_doc_cols;      /* parley_doc_t (last: chg) */
extern const parley_cols_t parley_conv_cols;     /* parley_conv_t (last: activity) */
extern const parley_cols_t parley_sess_cols;     /* parley_sess_t (last: ord) */
extern const parley_cols_t parley_snap_cols;     /* parley_snap_t (last: ord) */
extern const parley_cols_t parley_sub_cols;      /* parley_sub_t */
extern const parley_cols_t parley_link_cols;     /* parley_sub_link_t */
extern const parley_cols_t parley_ref_cols;      /* parley_stream_ref_t (stream_ref's RETURNING) */
extern const parley_cols_t parley_producer_cols; /* parley_producer_state_t's epoch, last_seq */
extern const parley_cols_t parley_idem_cols;     /* parley_idem_row_t */
extern const parley_cols_t parley_key_cols;      /* parley_key_row_t */
extern const parley_cols_t parley_blob_cols;     /* parley_blob_t */

/* An idempotency record as read (idem_get). */
typedef struct parley_idem_row {
    char fingerprint[65]; /* the request's fingerprint */
    int64_t created_ms;   /* when it was stored */
    char *response;       /* the stored answer (owned) */
    size_t len;           /* bytes in response */
} parley_idem_row_t;

/* A server key as read (key_get). */
typedef struct parley_key_row {
    char *secret; /* the bytes (owned) */
    size_t len;   /* bytes in secret */
} parley_key_row_t;

/* A list op's callback, whichever struct its rows are. */
typedef union parley_row_cb {
    int (*stream)(void *arg, const parley_stream_t *s); /* PARLEY_ROW_STREAM */
    int (*doc)(void *arg, const parley_doc_t *d);       /* PARLEY_ROW_DOC */
    int (*conv)(void *arg, const parley_conv_t *c);     /* PARLEY_ROW_CONV */
    int (*sess)(void *arg, const parley_sess_t *s);     /* PARLEY_ROW_SESS */
    int (*snap)(void *arg, const parley_snap_t *s);     /* PARLEY_ROW_SNAP */
    int (*sub)(void *arg, const parley_sub_t *s);       /* PARLEY_ROW_SUB */
    int (*link)(void *arg, const parley_sub_link_t *l); /* PARLEY_ROW_LINK */
} parley_row_cb_t;

/* Call the member of cb that cols' struct names with row; its answer
 * (non-zero: stop). */
int parley_row_call(const parley_cols_t *cols, parley_row_cb_t cb, void *arg, const void *row);

/* One bound parameter value (what a format letter or a row column gives). */
typedef enum parley_val_kind {
    PARLEY_VAL_NULL, /* SQL NULL */
    PARLEY_VAL_TEXT, /* p, len: text (NUL-terminated at len) */
    PARLEY_VAL_INT,  /* i: a 64-bit integer */
    PARLEY_VAL_BOOL, /* i: 0 or 1 */
    PARLEY_VAL_BLOB  /* p, len: bytes */
} parley_val_kind_t;

typedef struct parley_val {
    parley_val_kind_t kind; /* which fields hold it */
    const char *p;          /* TEXT, BLOB: the bytes (borrowed from the caller) */
    size_t len;             /* TEXT, BLOB: their length */
    int64_t i;              /* INT, BOOL */
} parley_val_t;

#define PARLEY_VALS_MAX 24 /* parameters of the widest statement, and then some */

/* A statement's parameters, in order ($1 / ?1 first). */
typedef struct parley_vals {
    int n;                           /* values set */
    parley_val_t v[PARLEY_VALS_MAX]; /* the values */
} parley_vals_t;

/* Fill vals from a format string (above) and its arguments. PARLEY_EINVAL
 * for an unknown letter or more than PARLEY_VALS_MAX values (a bug). */
int parley_vals_make(parley_vals_t *vals, const char *fmt, va_list ap);

/* One result cell as a backend gives it: text kinds fill p/len, the
 * others i. */
typedef struct parley_cell {
    bool null;     /* SQL NULL */
    const char *p; /* text: the bytes (NUL-terminated), valid while the row is */
    size_t len;    /* text: their length */
    int64_t i;     /* integers and booleans */
} parley_cell_t;

/* A backend's reader of column col of the current row. */
typedef void (*parley_cell_fn)(void *ctx, int col, parley_col_kind_t kind, parley_cell_t *out);

/* Whether a kind is read as text (p/len) rather than as an integer. */
static inline bool parley_col_is_text(parley_col_kind_t kind)
{
    return kind == PARLEY_COL_TEXT || kind == PARLEY_COL_OPT_TEXT || kind == PARLEY_COL_DUP;
}

/*
 * Read the current row's columns 0..n-1 into row as cols maps them. DUP
 * fields are new strings (free them with the row's destructor) or, when
 * borrow, point into the row (valid while the backend's row is).
 * PARLEY_ENOMEM leaves every DUP field NULL.
 */
int parley_cols_read(const parley_cols_t *cols, void *row, bool borrow, parley_cell_fn cell,
                     void *ctx);

/* Free the DUP fields of a row read owned (and set them NULL). */
void parley_cols_clear(const parley_cols_t *cols, void *row);

/*
 * Copy sql into out (cap bytes), with each "{name}" replaced by the
 * comma-separated columns of the map of that name and "{name-}" by all but
 * the last. PARLEY_EINVAL for sql NULL (a backend without SQL for a
 * shared statement), an unknown name or too small an out. Any
 * other brace (as in '{}') is copied as is.
 */
int parley_sql_expand(const char *sql, char *out, size_t cap);

/*
 * One statement's run, as the shared helpers below ask a backend for it
 * (the backend's parley_query_fn binds vals, steps through the rows and
 * reads them with parley_cols_read).
 */
typedef struct parley_query {
    const parley_cols_t *cols; /* the rows' map (NULL: rows are not read) */
    char *out;                 /* row i is read at out + i * stride (with cb: always at out) */
    size_t stride;             /* bytes between rows at out */
    int max;                   /* rows read at most (without cb); later ones are not read */
    bool borrow;               /* DUP fields point into the backend's row */
    const parley_row_cb_t *cb; /* each row read is handed to it; non-zero stops the scan */
    void *arg;                 /* for cb */
    int n;                     /* backend sets: rows read */
    int64_t changes;           /* backend sets: rows the statement inserted, updated or deleted */
} parley_query_t;

/* A backend's runner of its statement stmt: 0 or -PARLEY_E* (a row read
 * failing with PARLEY_ENOMEM stops it). */
typedef int (*parley_query_fn)(parley_db_t *db, int stmt, const parley_vals_t *vals,
                               parley_query_t *q);

/*
 * The shapes every op takes, over a backend's runner fn and its statement
 * stmt, with parameters named by fmt (above). Each backend wraps them in
 * short macros (run, fetch, each...) that pass its runner.
 *   exec:   a statement whose rows (if any) are not read; *changes (may
 *           be NULL) the rows it changed.
 *   fetch:  the first row into *row (DUP fields owned); PARLEY_ENOTFOUND
 *           when there is none.
 *   each:   every row, borrowed, to cb (cols' member) until it answers
 *           non-zero.
 *   column: the first column, of kind, of up to max rows into out, stride
 *           bytes apart; *n how many.
 *   ints:   the first row's first n integer columns into vals (a
 *           RETURNING); PARLEY_ENOTFOUND when no row matched.
 */
int parley_sql_exec(parley_query_fn fn, parley_db_t *db, int stmt, int64_t *changes,
                    const char *fmt, ...);
int parley_sql_fetch(parley_query_fn fn, parley_db_t *db, int stmt, const parley_cols_t *cols,
                     void *row, const char *fmt, ...);
int parley_sql_each(parley_query_fn fn, parley_db_t *db, int stmt, const parley_cols_t *cols,
                    parley_row_cb_t cb, void *arg, const char *fmt, ...);
int parley_sql_column(parley_query_fn fn, parley_db_t *db, int stmt, parley_col_kind_t kind,
                      void *out, size_t stride, int max, int *n, const char *fmt, ...);
int parley_sql_ints(parley_query_fn fn, parley_db_t *db, int stmt, int64_t *vals, int n,
                    const char *fmt, ...);
/* rows: up to max rows into out (an array of cols' struct, without DUP
 * fields); *n how many. */
int parley_sql_rows(parley_query_fn fn, parley_db_t *db, int stmt, const parley_cols_t *cols,
                    void *out, int max, int *n, const char *fmt, ...);

/*
 * For each backend's stream_scan: a callback that hands rows on to cb
 * while their path starts with prefix, and stops at the first that does
 * not (rows come in path order from the first path >= prefix).
 */
typedef struct parley_prefix_scan {
    const char *prefix;                             /* the paths wanted */
    size_t len;                                     /* bytes in prefix */
    int (*cb)(void *arg, const parley_stream_t *s); /* the caller's callback */
    void *arg;                                      /* for cb */
} parley_prefix_scan_t;

int parley_prefix_scan_row(void *scan, const parley_stream_t *s);

#endif
