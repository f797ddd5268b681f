/*
 * stream.h — the Durable Streams rules: create, append, close, delete, read.
 *
 * This module is the protocol's core, independent of HTTP parsing and of
 * SQL. The write operations run on the writer thread inside a request's
 * savepoint (store/writer.c) and decide a parley_outcome_t (core/outcome.h);
 * api/status.c maps its refusal to the status codes the protocol defines.
 * The read operations run on an HTTP worker's read-only connection.
 *
 * Expiry: a stream whose Stream-Expires-At has passed, or that has not been
 * touched for its Stream-TTL, no longer exists for clients (404) and is
 * removed by the writer's maintenance tick (soft-deleted instead if forks
 * still read from it). Reads touch a TTL stream in memory
 * (parley_stream_touch); writes persist the touch. After a restart the
 * sliding window restarts from the start-up time at the latest, so a
 * restart never makes a stream expire early.
 *
 * Ownership: requests borrow their strings; results are plain values.
 * Threads: see each function.
 */
#ifndef PARLEY_CORE_STREAM_H
#define PARLEY_CORE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/offset.h"
#include "core/outcome.h"
#include "store/store.h"
#include "store/wakeset.h"
#include "util/buf.h"

/*
 * Forks: a fork may be at most PARLEY_STREAM_FORK_DEPTH_MAX forks away
 * from the stream its chain starts from (a stream that is not a fork is
 * depth 0); forking deeper is a 400. Chains are always walked in a loop,
 * so a deeper chain stored before the limit existed still reads.
 */
#define PARLEY_STREAM_FORK_DEPTH_MAX 64

/* A parsed write request (create, append/close, delete). */
typedef struct parley_stream_req {
    const char *path;         /* stream path (below the stream root) */
    const char *owner;        /* the caller's user id */
    bool admin;               /* the caller reaches every user's streams */
    const char *content_type; /* Content-Type header, or NULL */
    const char *body;         /* request body (borrowed) */
    size_t body_len;          /* its length */
    /* JSON framing done off the writer thread (parley_stream_frame_json);
     * the writer frames the body itself when framed is false. */
    bool framed;             /* the fields below are set */
    const char *frame_error; /* the body is not valid JSON: why (static) */
    size_t frame_off;        /* messages span: offset in body */
    size_t frame_len;        /* its length */
    size_t frame_count;      /* messages in it */
    bool closed;             /* Stream-Closed: true */
    /* create */
    int64_t ttl_s;         /* Stream-TTL, -1 if absent */
    int64_t expires_ms;    /* Stream-Expires-At, -1 if absent */
    const char *fork_from; /* Stream-Forked-From path, or NULL */
    bool has_fork_offset;  /* Stream-Fork-Offset given */
    uint64_t fork_offset;  /* its position */
    uint64_t fork_sub;     /* Stream-Fork-Sub-Offset, 0 if absent */
    /* append */
    bool has_producer;       /* the three Producer-* headers */
    const char *producer_id; /* Producer-Id */
    uint64_t producer_epoch; /* Producer-Epoch */
    uint64_t producer_seq;   /* Producer-Seq */
    const char *stream_seq;  /* Stream-Seq, or NULL */
} parley_stream_req_t;

/* What a successful write changed, as bits of parley_outcome_t echo.changes.
 * core/streamrules.c turns them into feed events and subscription hooks. */
typedef enum parley_stream_change {
    PARLEY_STREAM_CHANGE_CREATED = 1u << 0, /* the stream was created (201) */
    PARLEY_STREAM_CHANGE_WRITTEN = 1u << 1, /* its tail moved or it was closed: readers wake */
    PARLEY_STREAM_CHANGE_CLOSED = 1u << 2,  /* it was closed by this write */
    PARLEY_STREAM_CHANGE_DELETED = 1u << 3, /* it was deleted (or soft-deleted) */
} parley_stream_change_t;

/*
 * Frame req's body as a JSON-mode append (validation and message count) so
 * that the writer does not have to. Any thread; call before submitting when
 * the request's Content-Type is application/json.
 */
void parley_stream_frame_json(parley_stream_req_t *req);

/* Writer thread, inside a savepoint: the protocol's rule alone, without
 * the change feed or subscription hooks (callers go through
 * core/streamrules.h, which adds them). 0 with the outcome in res — done,
 * or refused (EINVAL, ENOTFOUND, EGONE, ECONFLICT, ETOOBIG, and EFENCED for
 * a stale producer epoch), the protocol's fields in res->echo either way —
 * or a negative storage error. res starts from parley_outcome_init.
 * create: a path that exists with another owner is a 409 for every
 * caller, the admin included (200 only for the owner's own same config). */
int parley_stream_create(parley_db_t *db, const parley_stream_req_t *req, parley_outcome_t *res);
int parley_stream_append(parley_db_t *db, const parley_stream_req_t *req, parley_outcome_t *res);
int parley_stream_delete(parley_db_t *db, const parley_stream_req_t *req, parley_outcome_t *res);

/*
 * Append one JSON message to the internal stream at path, creating it
 * (application/json, owned by owner) if it does not exist. Used for event
 * feeds; emits no event itself. *stream_id is the stream's id (to wake its
 * readers). Writer thread.
 */
int parley_stream_append_internal(parley_db_t *db, const char *path, const char *owner,
                                  const char *msg, size_t len, int64_t *stream_id);
/* Append one JSON message to the internal stream already loaded in *st
 * (its tail and touch time are updated, in *st and stored). expect_tail
 * >= 0: only if the stored tail is still that, else PARLEY_ECONFLICT and
 * nothing written. */
int parley_stream_append_row(parley_db_t *db, parley_stream_t *st, const char *msg, size_t len,
                             int64_t expect_tail);
/* Create the internal stream at path if missing (as above, without data). */
int parley_stream_ensure_internal(parley_db_t *db, const char *path, const char *owner,
                                  int64_t *stream_id);

/*
 * Close the internal stream at path (no more appends; readers see the end).
 * Closing a closed stream is a no-op. 0, PARLEY_ENOTFOUND or a storage
 * error; *stream_id is its id (to wake its readers). Writer thread.
 */
int parley_stream_close_internal(parley_db_t *db, const char *path, int64_t *stream_id);
/*
 * Delete the internal stream at path as a client's DELETE would: removed,
 * or soft-deleted while forks still read from it (its data stays readable
 * through them). 0, PARLEY_ENOTFOUND or a storage error. Writer thread.
 */
int parley_stream_delete_internal(parley_db_t *db, const char *path, int64_t *stream_id);
/*
 * Create the internal stream at path as a closed fork of the stream at
 * src_path at its current tail (*pos): it reads the source's messages
 * [0, pos) and nothing else, ever; the source keeps a reference, so its
 * data outlives its deletion while the fork exists. Owned by owner.
 * PARLEY_ENOTFOUND when the source is missing or deleted, PARLEY_EEXIST when
 * path is taken. Writer thread.
 */
int parley_stream_fork_internal(parley_db_t *db, const char *src_path, const char *path,
                                const char *owner, uint64_t *pos, int64_t *stream_id);

/*
 * Create the internal stream at path as an open fork of the stream at
 * src_path at position pos (<= its tail): it reads the source's messages
 * [0, pos), then its own appends (a fork at 0 is a plain stream that
 * shares nothing). The source keeps a reference, as for any fork.
 * PARLEY_ETOOBIG when the new stream would be more than max_depth forks
 * deep (nothing written: the caller builds it another way),
 * PARLEY_ENOTFOUND when the source is missing, deleted or shorter than
 * pos, PARLEY_EEXIST when path is taken. Writer thread (conversation
 * branches, core/branch.h).
 */
int parley_stream_branch_internal(parley_db_t *db, const char *src_path, const char *path,
                                  const char *owner, uint64_t pos, int max_depth,
                                  int64_t *stream_id);

/*
 * True if st belongs to one of Parley's own principals ("@admin", local
 * mode's "@local": user ids never start with '@') or to Parley itself
 * (""): only a caller with admin rights can read or write it.
 */
bool parley_stream_is_admin_owned(const parley_stream_t *st);

/* True if the path is reserved for Parley's own streams ("_parley/..."). */
bool parley_stream_path_reserved(const char *path);

/* Called for each stream that expiry removed or soft-deleted (st: the
 * stream as it was, deleted set if soft), in the same savepoint. */
typedef int (*parley_stream_expired_fn)(void *arg, parley_db_t *db, const parley_stream_t *st);

/* Writer maintenance: remove (or soft-delete) the streams expired at now
 * (a bounded batch per call), calling on_expired (may be NULL) for each;
 * the expired streams join wake. core/streamrules.h wraps it with the
 * events and hooks a client DELETE has. */
int parley_stream_expire(parley_db_t *db, int64_t now, parley_stream_expired_fn on_expired,
                         void *arg, parley_wakeset_t *wake);
/* The same for the one stream at path, if it has expired at now (a create
 * at that path calls it first, so the stream it replaces goes as expiry
 * deletes it). 0 when there is nothing to expire. */
int parley_stream_expire_path(parley_db_t *db, const char *path, int64_t now,
                              parley_stream_expired_fn on_expired, void *arg,
                              parley_wakeset_t *wake);

/*
 * Look a stream up for a client: 0 with *meta, PARLEY_ENOTFOUND (missing,
 * expired, or owned by another user when !admin), PARLEY_EGONE
 * (soft-deleted) or a storage error. Any thread with its own connection.
 */
int parley_stream_lookup(parley_db_t *db, const char *path, const char *user, bool admin,
                         parley_stream_t *meta);

/* True if meta is a JSON-mode stream. */
bool parley_stream_is_json(const parley_stream_t *meta);
/* True if the two content types name the same media type. */
bool parley_stream_same_type(const char *a, const char *b);

/* Record a read of a TTL stream (resets its sliding window). Thread-safe. */
void parley_stream_touch(const parley_stream_t *meta);
/* Forget in-memory touches and set the restart floor (at start-up). */
void parley_stream_touch_init(int64_t start_ms);

/* A catch-up read's result. */
typedef struct parley_read {
    uint64_t start;  /* first position returned */
    uint64_t next;   /* position after the last returned */
    uint64_t tail;   /* stream tail at read time */
    bool up_to_date; /* next == tail */
    bool closed;     /* stream closed and next == tail */
    size_t count;    /* chunks (JSON: messages) returned */
} parley_read_t;

/*
 * Read from position from (< = tail) into out: raw bytes for byte
 * streams, or the JSON messages joined by ',' (without brackets) for JSON
 * streams. Stops after max_bytes (at least one chunk is returned).
 * Forks read their source chain below their fork point, walked in a loop
 * in bounded memory whatever its depth. Any thread.
 */
int parley_stream_read(parley_db_t *db, const parley_stream_t *meta, uint64_t from,
                       size_t max_bytes, parley_buf_t *out, parley_read_t *rd);

/*
 * Where a windowed read is: a response body produced from the store a
 * window at a time (catch-up, long-poll, SSE), each window in its own
 * short read transaction. The body is the bytes [next, end) of a byte
 * stream, or for a JSON stream its messages [next, end) joined by ','
 * (without brackets). end is fixed when the read starts, so the headers
 * can announce it before the body.
 */
typedef struct parley_read_cursor {
    uint64_t next;    /* position of the next byte or piece to produce */
    uint64_t end;     /* stop before this position (fixed at the start) */
    size_t piece_off; /* JSON: bytes of the piece at next already produced */
    bool inside;      /* the last window stopped inside a stored chunk */
    bool sep;         /* JSON: a piece went out, the next starts with ',' */
} parley_read_cursor_t;

/*
 * Append the next bytes of the body to out: at most max (and fewer only at
 * the end), cutting stored chunks where needed, and advance *cur. Returns
 * 0, or PARLEY_ESTORE if the data is no longer there (the stream was
 * deleted or expired meanwhile: the caller must abort the response, not
 * end it) or another storage error. meta is the stream as looked up at the
 * start of the read (its id and fork chain). Call inside a read
 * transaction; any thread with its own connection.
 */
int parley_stream_read_window(parley_db_t *db, const parley_stream_t *meta,
                              parley_read_cursor_t *cur, size_t max, parley_buf_t *out);

#endif
