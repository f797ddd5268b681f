/*
 * store.h — the storage interface. No SQL above this line.
 *
 * A store is one database, named by a URL: "sqlite:PATH" (the embedded
 * SQLite backend, store/sqlite/store_sqlite.c; the server's default is
 * "sqlite:<data dir>/parley.db") or "postgres://..." (the PostgreSQL
 * backend, store/postgres/store_pg.c).
 * It hands out connections (parley_db_t): exactly one writer connection,
 * owned by the writer thread (store/writer.c), and any number of read-only
 * connections, one per reading thread.
 *
 * A backend is a table of operations, parley_store_ops_t, grouped by noun
 * below. Every backend's store and connection structs begin with a
 * parley_store_t / parley_db_t (the ops pointer), and the static inline
 * parley_store_* / parley_db_* wrappers at the end of this file dispatch
 * through it, so callers name the operation, never the backend.
 * parley_store_open() (store/store.c) picks the backend by the URL's
 * scheme.
 *
 * The SQLite backend runs in WAL mode with synchronous=FULL: a COMMIT
 * returns only after the WAL is fsynced, so a committed transaction
 * survives kill -9 and power loss. Readers see the last committed snapshot
 * and never block the writer.
 *
 * Ownership: records filled by the store (parley_stream_t) are plain values
 * owned by the caller. Data handed to a read callback is borrowed and valid
 * only during the call. The row destructors (parley_*_clear, store/store.c)
 * free a row's owned strings and accept NULL.
 *
 * Threads: a parley_db_t is used by one thread at a time. The writer
 * connection only by the writer thread; each reader by the thread that
 * opened it.
 *
 * CONNECTIONS AND TRANSACTIONS (the contract every backend keeps)
 *
 *   1. One writer connection per process, used only by the writer thread
 *      (store/writer.c). A batch is begin (SQLite: BEGIN IMMEDIATE;
 *      PostgreSQL: BEGIN, READ COMMITTED); each request runs inside
 *      savepoint ... release, or rollback_to when it fails or is refused;
 *      then commit, which returns only once the batch is durable. Answers
 *      leave only after commit returns.
 *   2. Readers: one read-only connection per reading thread (HTTP workers,
 *      the webhook thread). begin/commit around one response's reads, for
 *      a consistent snapshot; never held open while streaming.
 *   3. Row locks: a *_get on the writer connection inside begin locks that
 *      row until the transaction ends (PostgreSQL: SELECT ... FOR UPDATE;
 *      SQLite: implied, BEGIN IMMEDIATE makes the writer the only one).
 *      Core may read, decide and write back only fields of rows it got
 *      this way. Counters (stream tails, refs, message_count, activity,
 *      ord, chg, subscription generation) are never computed in core: the
 *      ops that move them do it in the store, in one statement
 *      (stream_append, stream_ref, conv_bump, conv_insert, sess_insert,
 *      snap_insert, doc_write, sub_begin_wake).
 *   4. Conditional writes (expect_*, insert-if-absent) return
 *      PARLEY_ECONFLICT (or PARLEY_EEXIST) and write nothing when the row
 *      moved or exists. With the row locks of 3 they cannot fire on
 *      SQLite; on a shared database they are the second line of defence,
 *      and core answers them with the refusal a re-read would have given.
 *   5. Every op returns 0 or a negative PARLEY_E* (ENOTFOUND, EEXIST,
 *      ECONFLICT, ETOOBIG, ESTORE, EFULL, ENOMEM); rows and their strings
 *      are owned as said at each op.
 */
#ifndef PARLEY_STORE_STORE_H
#define PARLEY_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/parley.h" /* PARLEY_E* */
#include "codec/limits.h"  /* PARLEY_PATH_MAX, _OWNER_MAX, _ROW_ID_MAX... */
#include "store/wakeset.h" /* parley_wakeset_t */

typedef struct parley_store_ops parley_store_ops_t;
struct parley_vals; /* a statement's parameters (store/columns.h) */

/* What the server gives a backend's background work at start. */
typedef struct parley_store_hooks {
    void (*on_fatal)(void *arg); /* background storage failure: stop serving */
    /* Another node sharing the database committed changes to these
     * streams (`all`: unknown, wake every live reader). A doorbell only:
     * readers re-read by offset. Called on a backend thread; NULL: none.
     * SQLite never calls it. */
    void (*on_remote)(void *arg, const parley_wakeset_t *wake);
    void *arg; /* for on_fatal and on_remote */
} parley_store_hooks_t;

/* One store (one database). A backend's store struct begins with this. */
typedef struct parley_store {
    const parley_store_ops_t *ops; /* the backend that opened it */
} parley_store_t;

/* One connection. A backend's connection struct begins with this. */
typedef struct parley_db {
    const parley_store_ops_t *ops; /* the backend it belongs to */
} parley_db_t;

/* An idempotent producer's stored state on one stream (core/producer.h
 * decides with it). */
typedef struct parley_producer_state {
    bool exists;       /* false: the producer has never written here */
    uint64_t epoch;    /* current epoch */
    uint64_t last_seq; /* highest accepted seq within epoch */
} parley_producer_state_t;

/* A stream's metadata row. */
typedef struct parley_stream {
    int64_t id;                              /* internal id, never reused */
    char path[PARLEY_PATH_MAX + 1];          /* path below /v1/stream/ */
    char owner[PARLEY_OWNER_MAX + 1];        /* owning user ("" = local) */
    char content_type[PARLEY_CTYPE_MAX + 1]; /* as given at creation */
    int64_t created_ms;                      /* creation time */
    int64_t touched_ms;                      /* last write (TTL base) */
    int64_t ttl_s;                           /* sliding TTL, -1 if none */
    int64_t expires_ms;                      /* absolute expiry, -1 if none */
    uint64_t tail;                           /* next position (offset of tail) */
    bool closed;                             /* no more appends */
    char closer[PARLEY_TOKEN_MAX + 1];       /* producer that closed it, or "" */
    uint64_t closer_epoch;                   /* its epoch */
    uint64_t closer_seq;                     /* its seq */
    char stream_seq[PARLEY_TOKEN_MAX + 1];   /* last Stream-Seq, or "" */
    int64_t fork_src;                        /* source stream id, 0 if not a fork */
    uint64_t fork_pos;                       /* positions below come from the source */
    int64_t refs;                            /* forks that read from this stream */
    bool deleted;                            /* soft-deleted (kept for its forks) */
} parley_stream_t;

/* A stream's reference state after stream_ref. */
typedef struct parley_stream_ref {
    int64_t refs;     /* forks that read from it, after the change */
    bool deleted;     /* soft-deleted */
    int64_t fork_src; /* its own source stream, 0 if not a fork */
} parley_stream_ref_t;

/*
 * Called for each stored chunk overlapping a read; return non-zero to stop.
 * unit_end is the end of the append the chunk came from (JSON streams keep
 * one chunk per message, several per append; byte streams one per append).
 */
typedef int (*parley_chunk_cb)(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                               const void *data, size_t len);

/* ---- documents ---- */

/* A document row; data is the canonical JSON (owned: parley_doc_clear). */
typedef struct parley_doc {
    char owner[PARLEY_OWNER_MAX + 1];           /* owning user */
    char collection[PARLEY_COLLECTION_MAX + 1]; /* collection */
    char id[PARLEY_DOC_ID_MAX + 1];             /* id within the collection */
    int64_t version;                            /* 1, 2, ... per change */
    bool deleted;                               /* tombstone (keeps the version) */
    char *data;                                 /* canonical JSON, NUL-terminated */
    size_t len;                                 /* bytes in data */
    char checksum[65];                          /* SHA-256 hex of data */
    int64_t created_ms;                         /* creation */
    int64_t updated_ms;                         /* last change */
    int64_t chg;                                /* global change counter (list order) */
} parley_doc_t;

void parley_doc_clear(parley_doc_t *d);

/* ---- conversations, sessions, snapshots (core/conversation.h, session.h,
 * snapshot.h) ---- */

#define PARLEY_STATUS_MAX 15  /* bytes in a session status name */
#define PARLEY_SOURCE_MAX 400 /* bytes in a snapshot's source path */

/*
 * A conversation row. title and metadata are owned (parley_conv_clear);
 * title NULL is JSON null; metadata is canonical JSON text of an object.
 */
typedef struct parley_conv {
    char id[PARLEY_ROW_ID_MAX + 1];   /* server-made id */
    char owner[PARLEY_OWNER_MAX + 1]; /* owning user */
    char *title;                      /* the title, or NULL for none (JSON null) */
    char *metadata;                   /* canonical JSON object text */
    int64_t version;                  /* 1, 2, ... per change of the object */
    int64_t created_ms;               /* creation */
    int64_t updated_ms;               /* last change */
    int64_t message_count;            /* messages in the log (= last seq) */
    int64_t last_message_ms;          /* time of the last message, -1 if none */
    int64_t activity;                 /* global counter: list order, newest first */
    bool deleted;                     /* tombstone */
} parley_conv_t;

void parley_conv_clear(parley_conv_t *c);

/*
 * A session row: one assistant turn. error, request and input are owned
 * JSON texts (NULL = JSON null), released by parley_sess_clear.
 */
typedef struct parley_sess {
    char id[PARLEY_ROW_ID_MAX + 1];              /* server-made id */
    char conversation_id[PARLEY_ROW_ID_MAX + 1]; /* its conversation */
    char owner[PARLEY_OWNER_MAX + 1];            /* the conversation's owner */
    char message_id[PARLEY_ROW_ID_MAX + 1];      /* the message it answers */
    char result_id[PARLEY_ROW_ID_MAX + 1];       /* the reply message, or "" */
    char status[PARLEY_STATUS_MAX + 1];          /* state name (core/session.h) */
    int64_t attempt;                             /* 1, 2, ... */
    int64_t max_attempts;                        /* attempts before failing */
    int64_t lease_ms;                            /* lease length of the last claim */
    int64_t lease_expires_ms;                    /* lease end, -1 when not processing */
    char *error;                                 /* JSON text, or NULL */
    char *request;                               /* JSON text (await), or NULL */
    char *input;                                 /* JSON text (input), or NULL */
    int64_t created_ms;                          /* creation */
    int64_t updated_ms;                          /* last change */
    int64_t ord;                                 /* global creation counter (queue order) */
} parley_sess_t;

void parley_sess_clear(parley_sess_t *s);

/*
 * A snapshot row. title and payload are owned (parley_snap_clear). The
 * payload is JSON text: for a conversation snapshot {"conversation": ...},
 * for a document snapshot {"document": ...}; stream names the fork of the
 * message log ("" for documents and once purged).
 */
typedef struct parley_snap {
    char id[PARLEY_ROW_ID_MAX + 1];     /* server-made id */
    char owner[PARLEY_OWNER_MAX + 1];   /* who made it */
    char source[PARLEY_SOURCE_MAX + 1]; /* "/v1/conversations/{id}" or "/v1/documents/{c}/{id}" */
    char kind[16];                      /* "conversation" or "document" */
    char *title;                        /* the title, or NULL for none */
    bool is_public;                     /* readable without a token */
    int64_t created_ms;                 /* creation */
    int64_t expires_ms;                 /* expiry, -1 for never */
    char stream[PARLEY_PATH_MAX + 1];   /* fork of the message log, or "" */
    char *payload;                      /* frozen content (JSON text) */
    int64_t ord;                        /* global creation counter (list order) */
} parley_snap_t;

void parley_snap_clear(parley_snap_t *s);

/* ---- blobs (core/blob.h) ---- */

#define PARLEY_BLOB_ID_LEN     64           /* hex SHA-256 of the bytes */
#define PARLEY_BLOB_PART_BYTES (256 * 1024) /* bytes in every part but the last */

/*
 * A blob row: bytes an owner uploaded, stored as parts of
 * PARLEY_BLOB_PART_BYTES (blob_parts rows numbered 0, 1, ... under the
 * upload id). touched_ms is when it was created or last lost a reference:
 * the garbage collector's grace runs from it.
 */
typedef struct parley_blob {
    char owner[PARLEY_OWNER_MAX + 1];        /* owning user */
    char id[PARLEY_BLOB_ID_LEN + 1];         /* hex SHA-256 of the bytes */
    int64_t upload;                          /* the upload its parts are stored under */
    int64_t size;                            /* bytes */
    char content_type[PARLEY_CTYPE_MAX + 1]; /* as uploaded */
    int64_t created_ms;                      /* creation */
    int64_t touched_ms;                      /* creation or the last reference dropped */
} parley_blob_t;

/* ---- subscriptions (core/subscription.h) ---- */

#define PARLEY_SUB_URL_MAX  2048 /* bytes in a webhook URL */
#define PARLEY_SUB_DESC_MAX 1024 /* bytes in a description */
#define PARLEY_SUB_WAKE_MAX 40   /* bytes in a wake id */
#define PARLEY_SUB_ROOT_MAX 300  /* bytes in the stream root URL */

/* A subscription row: its configuration and its delivery state. Strings
 * are "" when absent. Ids are at most PARLEY_ROW_ID_MAX bytes. */
typedef struct parley_sub {
    char id[PARLEY_ROW_ID_MAX + 1];            /* client-chosen id */
    char type[16];                             /* "webhook" or "pull-wake" */
    char pattern[PARLEY_PATH_MAX + 1];         /* glob over stream paths, or "" */
    char webhook_url[PARLEY_SUB_URL_MAX + 1];  /* webhook: where wakes are POSTed */
    char wake_stream[PARLEY_PATH_MAX + 1];     /* pull-wake: the wake stream's path */
    char description[PARLEY_SUB_DESC_MAX + 1]; /* free text, or "" */
    int64_t lease_ttl_ms;                      /* lease length */
    char config_hash[65];                      /* SHA-256 hex of the normalized config */
    char root_url[PARLEY_SUB_ROOT_MAX + 1];    /* "http://host/v1/stream" at creation */
    int64_t created_ms;                        /* creation */
    int64_t generation;                        /* wakes issued so far (the fencing counter) */
    char wake_id[PARLEY_SUB_WAKE_MAX + 1];     /* the wake in flight, "" when idle */
    char holder[PARLEY_OWNER_MAX + 1];         /* pull-wake: the claiming worker, or "" */
    int64_t lease_expires_ms;                  /* end of the lease, -1 for none */
    int64_t delivery_due_ms;                   /* webhook: next POST attempt, -1 for none */
    int64_t attempts;                          /* webhook: failed POSTs of this wake */
} parley_sub_t;

/* A subscription's cursor on one stream. */
typedef struct parley_sub_link {
    char sub_id[PARLEY_ROW_ID_MAX + 1]; /* the subscription */
    char path[PARLEY_PATH_MAX + 1];     /* the stream's path (it may not exist) */
    bool by_glob;                       /* the pattern matched it */
    bool by_explicit;                   /* named in streams[] */
    uint64_t acked;                     /* last processed position (inclusive offset) */
    int64_t wake_tail;                  /* tail taken by the wake in flight, -1 outside one */
} parley_sub_link_t;

/* What the stat op reports; -1 where the backend cannot tell. */
typedef struct parley_store_stat {
    int64_t db_bytes;       /* the database: SQLite's file, PostgreSQL's pg_database_size */
    int64_t wal_bytes;      /* SQLite's -wal file; -1 on PostgreSQL (its WAL is the cluster's) */
    int64_t subs_webhook;   /* subscriptions of type webhook */
    int64_t subs_pull_wake; /* subscriptions of type pull-wake */
} parley_store_stat_t;

/* ---- search and moving a user's data (core/search.h, core/transfer.h) ---- */

#define PARLEY_SEARCH_TERMS_MAX 16   /* terms in one query */
#define PARLEY_SEARCH_QUERY_MAX 1024 /* bytes in a query (q) */

/* One term of a parsed query (core/search.c builds them from q; the
 * backends never see q itself). */
typedef enum parley_search_kind {
    PARLEY_SEARCH_WORD,   /* every token, adjacent (one word: one token) */
    PARLEY_SEARCH_PREFIX, /* as WORD, the last token a prefix (word*) */
    PARLEY_SEARCH_PHRASE  /* "a phrase": every token, adjacent, in order */
} parley_search_kind_t;

/* A parsed query: every term must match (AND). Each term's text is its
 * tokens separated by one space; a token holds only ASCII letters and
 * digits and bytes >= 0x80 (so no quote, operator or control character
 * reaches a backend's query syntax). */
typedef struct parley_search_query {
    int nterms; /* 1..PARLEY_SEARCH_TERMS_MAX */
    struct {
        parley_search_kind_t kind;              /* how its tokens match */
        char text[PARLEY_SEARCH_QUERY_MAX + 1]; /* tokens, space-separated */
    } terms[PARLEY_SEARCH_TERMS_MAX];           /* the terms, in query order */
} parley_search_query_t;

/* One search result (borrowed by the callback, valid during the call). */
typedef struct parley_search_hit {
    char conversation_id[PARLEY_ROW_ID_MAX + 1]; /* the conversation */
    char message_id[PARLEY_ROW_ID_MAX + 1];      /* the message, "" for the title */
    int64_t seq;                                 /* the message's seq, 0 for the title */
    const char *snippet;                         /* text around the match, matches in [ ] */
    double rank;                                 /* higher is better (backend's scale) */
} parley_search_hit_t;

/* What moving one user's rows did, per owned kind (store/owned.h). */
#define PARLEY_OWNED_MAX 16 /* kinds store/owned.c may list */
typedef struct parley_move_counts {
    int64_t moved[PARLEY_OWNED_MAX];   /* rows now the destination's */
    int64_t dropped[PARLEY_OWNED_MAX]; /* the source's rows a destination row beat */
} parley_move_counts_t;

/* ---- the ops table ---- */

/*
 * The operations of a backend. Every op returns 0 or a negative PARLEY_E*
 * unless said otherwise; the wrappers below keep the names callers use.
 */
struct parley_store_ops {
    const char *scheme; /* URL scheme it serves: "sqlite" */
    bool shared;        /* several nodes may serve one database (PostgreSQL) */

    /* ---- the store (server thread) ---- */

    /* Open (creating if needed) the database the URL names and take its
     * lock. PARLEY_ELOCKED when another process holds it, PARLEY_ESTORE
     * when it fails its integrity check, PARLEY_EINVAL for a URL the
     * backend cannot use. *out is owned by the caller and released by
     * close. Any thread, once. */
    int (*open)(const char *url, parley_store_t **out);
    /* Close the store and release the lock. All readers must be closed.
     * Never called with NULL (the wrapper accepts it). */
    void (*close)(parley_store_t *store);
    /* One line naming the backend and where its data is, for the start-up
     * banner ("sqlite ./data/parley.db"); truncated to cap bytes. */
    void (*describe)(const parley_store_t *store, char *out, size_t cap);
    /* Start the backend's own background work (SQLite: the checkpointer
     * thread, which copies the WAL back off the commit path) before the
     * writer starts; hooks->on_fatal is called (once, on a backend thread)
     * if that work fails so that nothing may be trusted any more. */
    int (*start)(parley_store_t *store, const parley_store_hooks_t *hooks);
    /* Finish and join the background work (SQLite: a last checkpoint).
     * After the writer has stopped, before close; a store never started
     * or already stopped is fine. */
    void (*stop)(parley_store_t *store);

    /* ---- connections ---- */

    /* The writer connection (borrowed, owned by the store). Writer thread
     * only. */
    parley_db_t *(*writer)(parley_store_t *store);
    /* A new read-only connection, freed with db_close. */
    int (*reader)(parley_store_t *store, parley_db_t **out);
    /* Never called with NULL (the wrapper accepts it). */
    void (*db_close)(parley_db_t *db);

    /* ---- transactions ----
     * begin/commit/rollback on the writer; the savepoint trio nests one
     * request's statements inside the batch's transaction. Readers use
     * begin/commit (a short read transaction for a consistent snapshot).
     * release and rollback_to return PARLEY_ESTORE when the batch's
     * transaction is gone (SQLite rolls it back on its own after an I/O
     * error or a full disk); after rollback_to returns 0 the transaction
     * is open and holds what it held before the savepoint. rollback is
     * always safe to call. */
    int (*begin)(parley_db_t *db);
    int (*commit)(parley_db_t *db);
    /* Announce, inside the writer's open transaction and just before its
     * commit, the streams the batch changed, so that other nodes sharing
     * the database wake their readers once it commits (PostgreSQL:
     * pg_notify). NULL for a backend one node serves alone (SQLite). */
    int (*publish)(parley_db_t *db, const parley_wakeset_t *wake);
    /* Whether this node runs maintenance now (writer, in the tick's
     * transaction): nodes sharing a database take turns, one at a time
     * (PostgreSQL: an advisory lock the writer's session holds). NULL for
     * a backend one node serves alone: always. */
    int (*maintainer)(parley_db_t *db, bool *mine);
    /* The writer's transaction already holds an earlier request's work
     * (writer, between two requests, outside any savepoint): until it
     * ends, a statement that waits longer than a short while for a row
     * another transaction holds fails PARLEY_ERETRY (the request is set
     * aside and runs again alone) instead of waiting on. Two nodes' batches
     * that each hold a row the other wants then settle at once, not at the
     * database's deadlock detection (a second on PostgreSQL), with every
     * request of both batches waiting. NULL for a backend one node serves
     * alone (SQLite). */
    int (*batch_waits)(parley_db_t *db);
    int (*rollback)(parley_db_t *db);
    int (*savepoint)(parley_db_t *db);
    int (*release)(parley_db_t *db);
    int (*rollback_to)(parley_db_t *db);

    /* ---- streams, chunks, producers ---- */

    /* get/get_id: 0 or PARLEY_ENOTFOUND. */
    int (*stream_get)(parley_db_t *db, const char *path, parley_stream_t *out);
    int (*stream_get_id)(parley_db_t *db, int64_t id, parley_stream_t *out);
    /* Insert st as a new stream, every field as given (closed, fork_src,
     * fork_pos, tail = fork_pos for a fork); its id is assigned and written
     * back. PARLEY_EEXIST if the path is taken. Writer. */
    int (*stream_create)(parley_db_t *db, parley_stream_t *st);
    /* Append in one step: tail += units and the data stored at the old
     * tail as positions [old tail, old tail + units), touched_ms = now_ms,
     * and stream_seq recorded when not NULL. *new_tail is the tail after.
     * Byte streams (units == len) may be stored as several chunks (each
     * naming the append's end as its unit_end); any other append is one
     * chunk. units == 0 stores nothing but still sets touched_ms and
     * stream_seq. PARLEY_ECONFLICT, and nothing written, when the stream
     * is closed or deleted, when stream_seq is not greater (bytewise) than
     * the stored one, or when expect_tail >= 0 and the tail is not
     * expect_tail; PARLEY_ETOOBIG when the tail would pass
     * PARLEY_OFFSET_MAX; PARLEY_ENOTFOUND for no such stream. Writer. */
    int (*stream_append)(parley_db_t *db, int64_t id, const void *data, size_t len, uint64_t units,
                         int64_t now_ms, const char *stream_seq, int64_t expect_tail,
                         uint64_t *new_tail);
    /* Close the stream, recording the producer that closed it (closer NULL
     * or "": none; epoch and seq then 0) and touched_ms = now_ms; *tail is
     * its tail. Already closed: a no-op returning 0 (the first closer
     * stays). PARLEY_ENOTFOUND for no such stream. Writer. */
    int (*stream_close)(parley_db_t *db, int64_t id, const char *closer, uint64_t epoch,
                        uint64_t seq, int64_t now_ms, uint64_t *tail);
    /* touched_ms = max(touched_ms, now_ms) (the sliding TTL's base).
     * PARLEY_ENOTFOUND for no such stream. Writer. */
    int (*stream_touch)(parley_db_t *db, int64_t id, int64_t now_ms);
    /* refs += delta (never below 0); *out gets the row's refs, deleted and
     * fork_src after the change. PARLEY_ENOTFOUND for no such stream.
     * Writer. */
    int (*stream_ref)(parley_db_t *db, int64_t id, int delta, parley_stream_ref_t *out);
    /* Soft delete: deleted = 1 when forks still read from it (refs > 0);
     * PARLEY_ECONFLICT when refs == 0 (the caller removes it instead),
     * PARLEY_ENOTFOUND for no such stream. Writer. */
    int (*stream_mark_deleted)(parley_db_t *db, int64_t id);
    /* Remove the stream with its chunks and producer state. */
    int (*stream_remove)(parley_db_t *db, int64_t id);
    /* Streams, not deleted, whose absolute or sliding expiry is at or
     * before now_ms, up to max ids. */
    int (*stream_expired)(parley_db_t *db, int64_t now_ms, int64_t *ids, int max, int *n);
    /* Streams (not deleted) whose path starts with prefix, in path order;
     * cb gets each (borrowed; must not use db; non-zero stops). */
    int (*stream_scan)(parley_db_t *db, const char *prefix,
                       int (*cb)(void *arg, const parley_stream_t *st), void *arg);
    /* Delete the stream's chunks that end at or before below (the feed's
     * retention, core/feed.h); *n deleted. A trimmed stream's data begins
     * at the start of its first chunk (or at its tail if none is left).
     * Writer. */
    int (*chunk_trim)(parley_db_t *db, int64_t stream_id, uint64_t below, int *n);
    /* Call cb for each chunk of the stream with end > from, in order. */
    int (*chunk_scan)(parley_db_t *db, int64_t stream_id, uint64_t from, parley_chunk_cb cb,
                      void *arg);
    /* Producer state of (stream, producer id); st->exists = false if none. */
    int (*producer_get)(parley_db_t *db, int64_t stream_id, const char *producer,
                        parley_producer_state_t *st);
    int (*producer_put)(parley_db_t *db, int64_t stream_id, const char *producer,
                        const parley_producer_state_t *st);

    /* ---- idempotency records (core/idempotency.h) ---- */

    /* The record of (owner, key): *fingerprint (65 bytes), *created_ms and
     * the stored response (*resp, new malloc'd, *len). 0 or
     * PARLEY_ENOTFOUND. */
    int (*idem_get)(parley_db_t *db, const char *owner, const char *key, char *fingerprint,
                    int64_t *created_ms, char **resp, size_t *len);
    /* Record (owner, key) with created_ms = now_ms, unless a live record
     * exists: inserted when absent, replaced when the stored one was
     * created before expired_before_ms; otherwise PARLEY_EEXIST and
     * nothing written (another request with the key won; answer from its
     * record). Writer. */
    int (*idem_put)(parley_db_t *db, const char *owner, const char *key, const char *fingerprint,
                    int64_t now_ms, int64_t expired_before_ms, const char *resp, size_t len);
    /* Delete up to limit records created before before_ms; *n deleted. */
    int (*idem_purge)(parley_db_t *db, int64_t before_ms, int limit, int *n);
    /* Mark (owner, key) in flight for the other nodes sharing the database
     * until the writer's transaction ends (its commit or rollback), so that
     * the key's in-flight rule holds across nodes as the in-memory registry
     * (core/idempotency.h) makes it hold on one: 0, or PARLEY_ECONFLICT and
     * nothing held while another node's writer has it in flight (the
     * request is answered 409, never waits). Writer, before the record is
     * read. NULL for a backend one node serves alone (SQLite): always 0. */
    int (*idem_hold)(parley_db_t *db, const char *owner, const char *key);

    /* ---- documents ---- */

    /* 0 or PARLEY_ENOTFOUND (tombstones are returned, with deleted set). */
    int (*doc_get)(parley_db_t *db, const char *owner, const char *collection, const char *id,
                   parley_doc_t *out);
    /* Write d (data borrowed) as the new state of its document: insert
     * when expect_version is 0 (the document must not exist, not even as
     * a tombstone), else replace the row only if its stored version is
     * still expect_version. The store assigns d->chg (the global change
     * counter). PARLEY_ECONFLICT, and nothing written, when the row moved.
     * Writer. */
    int (*doc_write)(parley_db_t *db, parley_doc_t *d, int64_t expect_version);
    /* Live documents of a collection, newest change first, with chg <
     * before (0 = from the newest); cb gets each (borrowed; return non-zero
     * to stop). */
    int (*doc_list)(parley_db_t *db, const char *owner, const char *collection, int64_t before,
                    int limit, int (*cb)(void *arg, const parley_doc_t *d), void *arg);

    /* ---- conversations ---- */

    /* 0 or PARLEY_ENOTFOUND (tombstones are returned, with deleted set).
     * The strings in *out are new allocations owned by the caller. */
    int (*conv_get)(parley_db_t *db, const char *id, parley_conv_t *out);
    /* Insert a new conversation (strings borrowed); the store assigns
     * c->activity. PARLEY_EEXIST if the id is taken. Writer. */
    int (*conv_insert)(parley_db_t *db, parley_conv_t *c);
    /* Set title and metadata (borrowed) and updated_ms, version + 1, only
     * if the live row's version is still expect_version; c->version gets
     * the new one. PARLEY_ECONFLICT (moved or deleted), PARLEY_ENOTFOUND.
     * Writer. */
    int (*conv_update)(parley_db_t *db, parley_conv_t *c, int64_t expect_version);
    /* A new message: message_count + 1, version + 1, last_message_ms =
     * updated_ms = now_ms and a new activity, on a live row; *seq (the new
     * message_count), *version and *activity after. PARLEY_ECONFLICT when
     * deleted, PARLEY_ENOTFOUND. Writer. */
    int (*conv_bump)(parley_db_t *db, const char *id, int64_t now_ms, int64_t *seq,
                     int64_t *version, int64_t *activity);
    /* A message on one of its branches (core/branch.h): as conv_bump but
     * message_count (the main branch's) unchanged; *count is it. Writer. */
    int (*conv_touch)(parley_db_t *db, const char *id, int64_t now_ms, int64_t *count,
                      int64_t *version, int64_t *activity);
    /* Make the row a tombstone: no title, metadata {}, deleted, version +
     * 1, updated_ms = now_ms; *version after. PARLEY_ENOTFOUND. Writer. */
    int (*conv_tombstone)(parley_db_t *db, const char *id, int64_t now_ms, int64_t *version);
    /* Live conversations of owner, most recently active first, with
     * activity < before (0 = from the newest); cb gets each row (borrowed,
     * valid during the call; return non-zero to stop). */
    int (*conv_list)(parley_db_t *db, const char *owner, int64_t before, int limit,
                     int (*cb)(void *arg, const parley_conv_t *c), void *arg);

    /* ---- sessions ---- */

    /* 0 or PARLEY_ENOTFOUND; strings in *out owned by the caller. */
    int (*sess_get)(parley_db_t *db, const char *id, parley_sess_t *out);
    /* Insert a new session (strings borrowed); the store assigns s->ord.
     * PARLEY_EEXIST if the id is taken. Writer. */
    int (*sess_insert)(parley_db_t *db, parley_sess_t *s);
    /* Write s's mutable fields (result_id, status, attempt, lease_ms,
     * lease_expires_ms, error, request, input, updated_ms) only if the
     * stored status and attempt are still expect_status and
     * expect_attempt. PARLEY_ECONFLICT (moved), PARLEY_ENOTFOUND. Writer. */
    int (*sess_update)(parley_db_t *db, const parley_sess_t *s, const char *expect_status,
                       int64_t expect_attempt);
    /* Claim the oldest pending session (of one conversation when conv_id
     * is not NULL) in one step: status "processing", lease_ms,
     * lease_expires_ms = now_ms + lease_ms, updated_ms = now_ms; *out is
     * the row after (strings owned by the caller). PARLEY_ENOTFOUND when
     * the queue is empty. Writer. */
    int (*sess_claim_next)(parley_db_t *db, const char *conv_id, int64_t now_ms, int64_t lease_ms,
                           parley_sess_t *out);
    int (*sess_remove)(parley_db_t *db, const char *id);
    /* Sessions of a conversation, newest first, with ord < before (0 = from
     * the newest), only of status when status != NULL. cb as for
     * conv_list. */
    int (*sess_list)(parley_db_t *db, const char *conversation_id, const char *status,
                     int64_t before, int limit, int (*cb)(void *arg, const parley_sess_t *s),
                     void *arg);
    /* Ids of up to max processing sessions whose lease ended at or before
     * now_ms, into ids[i] (PARLEY_ROW_ID_MAX + 1 bytes each); *n found. */
    int (*sess_expired)(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                        int max, int *n);

    /* ---- snapshots ---- */

    /* 0 or PARLEY_ENOTFOUND; strings in *out owned by the caller. */
    int (*snap_get)(parley_db_t *db, const char *id, parley_snap_t *out);
    /* Insert a new snapshot (strings borrowed); the store assigns s->ord.
     * PARLEY_EEXIST if the id is taken. Writer. */
    int (*snap_insert)(parley_db_t *db, parley_snap_t *s);
    /* Drop an expired snapshot's content: payload {}, no stream.
     * PARLEY_ENOTFOUND. Writer. */
    int (*snap_expire)(parley_db_t *db, const char *id);
    int (*snap_remove)(parley_db_t *db, const char *id);
    /* Snapshots of owner, newest first, with ord < before (0 = from the
     * newest). cb as for conv_list. */
    int (*snap_list)(parley_db_t *db, const char *owner, int64_t before, int limit,
                     int (*cb)(void *arg, const parley_snap_t *s), void *arg);
    /* Ids of up to max snapshots that expired at or before now_ms and still
     * hold a fork stream; *n found. */
    int (*snap_expired)(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                        int max, int *n);

    /* ---- snapshot visits (core/snapshot.h) ---- */

    /* Count one visit of snapshot_id at now_ms: its visit record's
     * view_count + 1 and last_viewed_ms the later of the two (the record is
     * made at the first visit). PARLEY_ENOTFOUND, nothing written, when the
     * record is marked deleted. Writer. */
    int (*visit_add)(parley_db_t *db, const char *snapshot_id, int64_t now_ms);
    /* The visit record of snapshot_id: *count and *last_ms. PARLEY_ENOTFOUND
     * when there is none or it is marked deleted. */
    int (*visit_get)(parley_db_t *db, const char *snapshot_id, int64_t *count, int64_t *last_ms);
    /* Mark the visit record of snapshot_id deleted (0 when it has none).
     * Writer. */
    int (*visit_delete)(parley_db_t *db, const char *snapshot_id);

    /* ---- blobs (core/blob.h) ---- */

    /* Start a staged upload of owner: *upload is its new id. Writer. */
    int (*blob_stage)(parley_db_t *db, const char *owner, int64_t now_ms, int64_t *upload);
    /* Store part n (data borrowed) of a staged upload and touch it.
     * PARLEY_ENOTFOUND when the staged upload is gone (purged). Writer. */
    int (*blob_part_put)(parley_db_t *db, int64_t upload, int64_t n, const void *data, size_t len,
                         int64_t now_ms);
    /* Drop a staged upload and its parts (absent, or committed as a blob:
     * nothing happens). Writer. */
    int (*blob_unstage)(parley_db_t *db, int64_t upload);
    /* 0 or PARLEY_ENOTFOUND. */
    int (*blob_get)(parley_db_t *db, const char *owner, const char *id, parley_blob_t *out);
    /* Insert b (its upload's parts become the blob's; the staged upload
     * row goes): PARLEY_EEXIST, and nothing written, when owner has the id
     * already; PARLEY_ENOTFOUND when the staged upload is gone. Writer. */
    int (*blob_insert)(parley_db_t *db, const parley_blob_t *b);
    /* Part n of upload: *data (malloc'd, owned by the caller), *len.
     * PARLEY_ENOTFOUND for no such part. */
    int (*blob_part_get)(parley_db_t *db, int64_t upload, int64_t n, char **data, size_t *len);
    /* Bytes of owner's blobs (the quota's count). */
    int (*blob_usage)(parley_db_t *db, const char *owner, int64_t *bytes);
    /* src (a message log, a document, a snapshot) names owner's blob id
     * (already named: a no-op), and the blob's touched_ms = now_ms: a
     * collection that began before waits for this row and then leaves it
     * (blob_remove's before_ms). Writer. */
    int (*blob_ref_add)(parley_db_t *db, const char *owner, const char *id, const char *src,
                        int64_t now_ms);
    /* src names no blob any more: its blobs' touched_ms = now_ms, then its
     * references go. Writer. */
    int (*blob_ref_drop)(parley_db_t *db, const char *owner, const char *src, int64_t now_ms);
    /* Every blob from names, to names too. Writer. */
    int (*blob_ref_copy)(parley_db_t *db, const char *owner, const char *from, const char *to);
    /* Whether src names owner's blob id. */
    int (*blob_ref_has)(parley_db_t *db, const char *owner, const char *id, const char *src,
                        bool *yes);
    /* Up to max blobs that nothing names, touched before before_ms. */
    int (*blob_unreferenced)(parley_db_t *db, int64_t before_ms, parley_blob_t *out, int max,
                             int *n);
    /* Remove owner's blob id and its parts if nothing names it and it was
     * last touched before before_ms: PARLEY_ECONFLICT (kept) otherwise,
     * PARLEY_ENOTFOUND. Writer. */
    int (*blob_remove)(parley_db_t *db, const char *owner, const char *id, int64_t before_ms);
    /* Up to max staged uploads last touched before before_ms. */
    int (*blob_stale_uploads)(parley_db_t *db, int64_t before_ms, int64_t *ids, int max, int *n);

    /* ---- subscriptions (core/subscription.h) ---- */

    /* 0 or PARLEY_ENOTFOUND. */
    int (*sub_get)(parley_db_t *db, const char *id, parley_sub_t *out);
    /* Insert s, or (the id exists) change only its configuration columns
     * (type, pattern, webhook_url, wake_stream, description,
     * lease_ttl_ms, config_hash, root_url); the delivery state of an
     * existing row is never written here. Writer. */
    int (*sub_put_config)(parley_db_t *db, const parley_sub_t *s);
    /* Start a wake on an idle subscription: generation + 1 (*generation
     * after), wake_id, no holder, lease_expires_ms and delivery_due_ms
     * (-1: none), attempts 0. PARLEY_ECONFLICT when a wake is already in
     * flight, PARLEY_ENOTFOUND. Writer. */
    int (*sub_begin_wake)(parley_db_t *db, const char *id, const char *wake_id,
                          int64_t lease_exp_ms, int64_t due_ms, int64_t *generation);
    /* Write s's delivery state (wake_id, holder, lease_expires_ms,
     * delivery_due_ms, attempts) only if the stored generation and wake_id
     * ("" = idle) are still expect_generation and expect_wake_id.
     * PARLEY_ECONFLICT (fenced: another wake or node moved it),
     * PARLEY_ENOTFOUND. Writer. */
    int (*sub_update)(parley_db_t *db, const parley_sub_t *s, int64_t expect_generation,
                      const char *expect_wake_id);
    /* Remove the row and all its links. Writer. */
    int (*sub_remove)(parley_db_t *db, const char *id);
    /* Every subscription with a pattern; cb gets each (borrowed, valid
     * during the call; it must not use db; non-zero stops). */
    int (*sub_with_pattern)(parley_db_t *db, int (*cb)(void *arg, const parley_sub_t *s),
                            void *arg);
    /* Ids of up to max subscriptions whose lease ended at or before now_ms
     * and that have no delivery pending; *n found. */
    int (*sub_leases_expired)(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                              int max, int *n);
    /* Ids of up to max subscriptions with a delivery due at or before
     * now_ms, the most overdue first; *n found. */
    int (*sub_deliveries_due)(parley_db_t *db, int64_t now_ms, char (*ids)[PARLEY_ROW_ID_MAX + 1],
                              int max, int *n);
    /* The earliest delivery due, or -1 for none. */
    int (*sub_next_delivery)(parley_db_t *db, int64_t *due_ms);

    /* ---- subscription links ---- */

    /* A link: 0 or PARLEY_ENOTFOUND. */
    int (*sublink_get)(parley_db_t *db, const char *sub_id, const char *path,
                       parley_sub_link_t *out);
    /* Insert or replace a link. Writer. */
    int (*sublink_put)(parley_db_t *db, const parley_sub_link_t *l);
    /* acked = pos, never backwards (the stored acked must be <= pos) and
     * never past the stream's tail (pos <= the tail of the live stream at
     * path, 0 when it is missing or deleted). PARLEY_ECONFLICT, and
     * nothing written, otherwise; PARLEY_ENOTFOUND for no such link.
     * Writer. */
    int (*sublink_advance)(parley_db_t *db, const char *sub_id, const char *path, uint64_t pos);
    /* Remove a link (absent is fine). Writer. */
    int (*sublink_remove)(parley_db_t *db, const char *sub_id, const char *path);
    /* The links of a subscription in path order, or (sub_id NULL) of a
     * stream path across subscriptions; cb as for sub_with_pattern. */
    int (*sublink_list)(parley_db_t *db, const char *sub_id, const char *path,
                        int (*cb)(void *arg, const parley_sub_link_t *l), void *arg);
    /* Set every link's wake_tail of a subscription to its stream's tail now
     * (0 for a missing or deleted stream). Writer. */
    int (*sublink_snapshot)(parley_db_t *db, const char *sub_id);
    /* Advance every link's acked to its wake_tail (never backwards, never
     * past the stream's tail). Writer. */
    int (*sublink_ack_snapshot)(parley_db_t *db, const char *sub_id);
    /* The first linked path (in path order) whose stream's tail is past its
     * acked offset, into path (PARLEY_PATH_MAX + 1 bytes): 0 or
     * PARLEY_ENOTFOUND (no pending work). */
    int (*sublink_first_pending)(parley_db_t *db, const char *sub_id, char *path);

    /* ---- server keys (codec/keyring.h) ---- */

    /* The server's stored secrets by name: 0 with out[0..*len) (cap bytes),
     * PARLEY_ENOTFOUND, or PARLEY_ETOOBIG. */
    int (*key_get)(parley_db_t *db, const char *name, unsigned char *out, size_t cap, size_t *len);
    /* Store a secret under a new name (an existing name is PARLEY_EEXIST).
     * Writer. */
    int (*key_put)(parley_db_t *db, const char *name, const unsigned char *data, size_t len,
                   int64_t created_ms);

    /* ---- search (core/search.h) and moving a user's data (core/transfer.h) ---- */

    /* Index a message's text (text borrowed, non-empty) for search, in the
     * writer's transaction with the message. Titles are indexed by the
     * store itself whenever a conversation's title changes, and a deleted
     * conversation's entries go with its tombstone. Writer. */
    int (*search_put)(parley_db_t *db, const char *conv_id, const char *msg_id, int64_t seq,
                      const char *text);
    /* The hits of q in owner's live conversations, best first (ties in
     * conversation, seq order), skipping offset hits, up to limit; cb gets
     * each (borrowed; non-zero stops). */
    int (*search_query)(parley_db_t *db, const char *owner, const parley_search_query_t *q,
                        int64_t offset, int limit,
                        int (*cb)(void *arg, const parley_search_hit_t *h), void *arg);
    /* Give every row of the owned kinds (store/owned.h) whose owner is
     * from to the user to, in the writer's transaction; counts per kind in
     * *out (indexes of parley_owned[]). Writer. */
    int (*user_move)(parley_db_t *db, const char *from, const char *to, parley_move_counts_t *out);
    /* The record of the last transfer from `from`: its destination (to,
     * PARLEY_OWNER_MAX + 1 bytes) and answer (*answer, new malloc'd JSON
     * text): 0 or PARLEY_ENOTFOUND. */
    int (*transfer_get)(parley_db_t *db, const char *from, char *to, char **answer);
    /* Record (replace) the transfer from `from`. Writer. */
    int (*transfer_put)(parley_db_t *db, const char *from, const char *to, const char *answer,
                        int64_t now_ms);

    /* ---- operations: backup and verify (store/verify.c, server/ops.c) ----
     * NULL in a backend that does not have the op; callers say so. */

    /* One read-only connection to the database url names, without its
     * lock and without creating or migrating anything: for tools that run
     * beside a live server. PARLEY_ENOTFOUND when there is no database
     * there, PARLEY_ECONFLICT when its schema is newer than this build. */
    int (*inspect)(const char *url, parley_db_t **out);
    /* As inspect, but the connection may write (durably, outside any
     * transaction): for small administrative writes beside a live server
     * (`parley keys rotate`). Same errors; and the schema must be this
     * build's (an older one is PARLEY_ECONFLICT too: the server migrates). */
    int (*admin)(const char *url, parley_db_t **out);
    /* The backend's own structural check of the whole database: cb once
     * per problem found (text borrowed for the call). 0 when it ran. */
    int (*integrity)(parley_db_t *db, void (*cb)(void *arg, const char *problem), void *arg);
    /* Every row of table: "SELECT cols FROM table ORDER BY order", each
     * column handed to cb as bytes (vals[i], lens[i]; NULL for SQL NULL; a
     * boolean as "0" or "1"), borrowed for the call. Non-zero from cb
     * stops and is returned. Read-only: for checks, never for serving. */
    int (*table_scan)(parley_db_t *db, const char *table, const char *cols, const char *order,
                      int (*cb)(void *arg, int n, const char *const *vals, const size_t *lens),
                      void *arg);
    /* Run one statement of store/transfer.c's (an import's INSERT or
     * UPDATE), its parameters written $1..$n and bound from vals (TEXT as
     * text, INT as an integer, BOOL as a boolean, BLOB as bytes); *changes
     * (may be NULL) the rows it changed. For `parley import` on the writer
     * connection inside its transaction, never for serving. */
    int (*row_exec)(parley_db_t *db, const char *sql, const struct parley_vals *vals,
                    int64_t *changes);
    /* Write one consistent snapshot of the whole database into the empty
     * file path (created by the caller), as a database of its own that
     * needs no other file. Not synced: the caller fsyncs and renames. */
    int (*copy_to)(parley_db_t *db, const char *path);
    /* The schema version the database records (*version), and the one
     * this build writes (*mine). */
    int (*schema_version)(parley_db_t *db, int64_t *version, int64_t *mine);
    /* ---- statistics (for /metrics) ---- */

    /* Sizes and counts an operator watches, on a reader connection inside
     * its read transaction (never on the writer: a scrape must not hold
     * writes up). A figure the backend cannot tell is -1. */
    int (*stat)(parley_db_t *db, parley_store_stat_t *out);
};

/*
 * Open the store a URL names: "sqlite:PATH" (PATH is the database file; its
 * directory is created if missing, and PATH's lock file sits beside it:
 * "parley.db" -> "parley.lock", any other name + ".lock"), or a PostgreSQL
 * URL ("postgres://...", "postgresql://...": libpq's URI form). An unknown
 * scheme is PARLEY_EINVAL (logged with the reason). Otherwise as the
 * backend's open op. Server thread, once.
 */
int parley_store_open(const char *url, parley_store_t **out);

/*
 * One read-only connection to the database url names, beside a server that
 * may be running on it (the backend's inspect op): PARLEY_EINVAL for a URL
 * no backend takes or a backend without the op, PARLEY_ENOTFOUND when there
 * is no database, PARLEY_ECONFLICT when it is newer than this build.
 */
int parley_store_inspect(const char *url, parley_db_t **out);

/* One read-write connection beside a running server (the backend's admin
 * op); errors as parley_store_inspect. */
int parley_store_admin(const char *url, parley_db_t **out);

/* Whether the backend of url can write a file backup (copy_to). */
bool parley_store_can_copy(const char *url);

/* url with any password masked ("postgres://u:***@h/db", "password=***"),
 * for log lines; truncated to cap bytes. */
void parley_store_url_redact(const char *url, char *out, size_t cap);

/*
 * Why a stream_append that matched no row was refused, from the row as it
 * is now (read on the same write transaction): PARLEY_ETOOBIG when the
 * append was otherwise allowed (it would pass PARLEY_OFFSET_MAX), else
 * PARLEY_ECONFLICT (closed, deleted, Stream-Seq not greater, or the tail
 * is not expect_tail). For every backend's stream_append.
 */
int parley_store_append_refusal(const parley_stream_t *cur, const char *stream_seq,
                                int64_t expect_tail);

/* A byte stream's append is stored in chunk rows of at most this many
 * bytes (parley_store_put_chunks). */
#define PARLEY_CHUNK_ROW_BYTES (64 * 1024)

/* A backend's insert of one chunk row: positions [start, end) of stream_id,
 * from the append that ends at unit_end. */
typedef int (*parley_chunk_put_fn)(parley_db_t *db, int64_t stream_id, uint64_t start, uint64_t end,
                                   uint64_t unit_end, const void *data, size_t len);

/*
 * Store an append of units positions ending at end (the stream's new tail)
 * as chunk rows through put: none for an empty append; a byte stream's
 * append (units == len) longer than PARLEY_CHUNK_ROW_BYTES as rows of at
 * most that many bytes, each naming end as its unit's end, so a reader's
 * window costs the rows it covers, never a whole 8 MiB append; anything
 * else as one row. For every backend's stream_append.
 */
int parley_store_put_chunks(parley_db_t *db, int64_t stream_id, uint64_t end, const void *data,
                            size_t len, uint64_t units, parley_chunk_put_fn put);

/* Whether url names a backend this build has; if not, *why (static text)
 * says what is wrong. Used to refuse a bad --store before start-up. */
bool parley_store_url_ok(const char *url, const char **why);

/* ---- the callers' names for the ops (one line each; see the ops) ---- */

static inline void parley_store_close(parley_store_t *store)
{
    if (store)
        store->ops->close(store);
}

static inline void parley_store_describe(const parley_store_t *store, char *out, size_t cap)
{
    store->ops->describe(store, out, cap);
}

static inline int parley_store_start(parley_store_t *store, const parley_store_hooks_t *hooks)
{
    return store->ops->start(store, hooks);
}

static inline void parley_store_stop(parley_store_t *store)
{
    if (store)
        store->ops->stop(store);
}

static inline parley_db_t *parley_store_writer(parley_store_t *store)
{
    return store->ops->writer(store);
}

static inline int parley_store_reader(parley_store_t *store, parley_db_t **out)
{
    return store->ops->reader(store, out);
}

static inline void parley_db_close(parley_db_t *db)
{
    if (db)
        db->ops->db_close(db);
}

static inline int parley_db_begin(parley_db_t *db)
{
    return db->ops->begin(db);
}

static inline int parley_db_commit(parley_db_t *db)
{
    return db->ops->commit(db);
}

/* Whether several nodes may serve store's database: what one node keeps
 * in memory alone (a read's TTL touch) must then reach the store. */
static inline bool parley_store_shared(const parley_store_t *store)
{
    return store->ops->shared;
}

static inline int parley_db_publish(parley_db_t *db, const parley_wakeset_t *wake)
{
    return db->ops->publish ? db->ops->publish(db, wake) : 0;
}

static inline int parley_db_maintainer(parley_db_t *db, bool *mine)
{
    *mine = true;
    return db->ops->maintainer ? db->ops->maintainer(db, mine) : 0;
}

static inline int parley_db_batch_waits(parley_db_t *db)
{
    return db->ops->batch_waits ? db->ops->batch_waits(db) : 0;
}

static inline int parley_db_stat(parley_db_t *db, parley_store_stat_t *out)
{
    return db->ops->stat(db, out);
}

static inline int parley_db_rollback(parley_db_t *db)
{
    return db->ops->rollback(db);
}

static inline int parley_db_savepoint(parley_db_t *db)
{
    return db->ops->savepoint(db);
}

static inline int parley_db_release(parley_db_t *db)
{
    return db->ops->release(db);
}

static inline int parley_db_rollback_to(parley_db_t *db)
{
    return db->ops->rollback_to(db);
}

static inline int parley_db_stream_get(parley_db_t *db, const char *path, parley_stream_t *out)
{
    return db->ops->stream_get(db, path, out);
}

static inline int parley_db_stream_get_id(parley_db_t *db, int64_t id, parley_stream_t *out)
{
    return db->ops->stream_get_id(db, id, out);
}

static inline int parley_db_stream_create(parley_db_t *db, parley_stream_t *st)
{
    return db->ops->stream_create(db, st);
}

static inline int parley_db_stream_append(parley_db_t *db, int64_t id, const void *data, size_t len,
                                          uint64_t units, int64_t now_ms, const char *stream_seq,
                                          int64_t expect_tail, uint64_t *new_tail)
{
    return db->ops->stream_append(db, id, data, len, units, now_ms, stream_seq, expect_tail,
                                  new_tail);
}

static inline int parley_db_stream_close(parley_db_t *db, int64_t id, const char *closer,
                                         uint64_t epoch, uint64_t seq, int64_t now_ms,
                                         uint64_t *tail)
{
    return db->ops->stream_close(db, id, closer, epoch, seq, now_ms, tail);
}

static inline int parley_db_stream_touch(parley_db_t *db, int64_t id, int64_t now_ms)
{
    return db->ops->stream_touch(db, id, now_ms);
}

static inline int parley_db_stream_ref(parley_db_t *db, int64_t id, int delta,
                                       parley_stream_ref_t *out)
{
    return db->ops->stream_ref(db, id, delta, out);
}

static inline int parley_db_stream_mark_deleted(parley_db_t *db, int64_t id)
{
    return db->ops->stream_mark_deleted(db, id);
}

static inline int parley_db_stream_remove(parley_db_t *db, int64_t id)
{
    return db->ops->stream_remove(db, id);
}

static inline int parley_db_stream_expired(parley_db_t *db, int64_t now_ms, int64_t *ids, int max,
                                           int *n)
{
    return db->ops->stream_expired(db, now_ms, ids, max, n);
}

static inline int parley_db_stream_scan(parley_db_t *db, const char *prefix,
                                        int (*cb)(void *arg, const parley_stream_t *st), void *arg)
{
    return db->ops->stream_scan(db, prefix, cb, arg);
}

static inline int parley_db_chunk_trim(parley_db_t *db, int64_t stream_id, uint64_t below, int *n)
{
    return db->ops->chunk_trim(db, stream_id, below, n);
}

static inline int parley_db_chunk_scan(parley_db_t *db, int64_t stream_id, uint64_t from,
                                       parley_chunk_cb cb, void *arg)
{
    return db->ops->chunk_scan(db, stream_id, from, cb, arg);
}

static inline int parley_db_producer_get(parley_db_t *db, int64_t stream_id, const char *producer,
                                         parley_producer_state_t *st)
{
    return db->ops->producer_get(db, stream_id, producer, st);
}

static inline int parley_db_producer_put(parley_db_t *db, int64_t stream_id, const char *producer,
                                         const parley_producer_state_t *st)
{
    return db->ops->producer_put(db, stream_id, producer, st);
}

static inline int parley_db_idem_get(parley_db_t *db, const char *owner, const char *key,
                                     char *fingerprint, int64_t *created_ms, char **resp,
                                     size_t *len)
{
    return db->ops->idem_get(db, owner, key, fingerprint, created_ms, resp, len);
}

static inline int parley_db_idem_put(parley_db_t *db, const char *owner, const char *key,
                                     const char *fingerprint, int64_t now_ms,
                                     int64_t expired_before_ms, const char *resp, size_t len)
{
    return db->ops->idem_put(db, owner, key, fingerprint, now_ms, expired_before_ms, resp, len);
}

static inline int parley_db_idem_purge(parley_db_t *db, int64_t before_ms, int limit, int *n)
{
    return db->ops->idem_purge(db, before_ms, limit, n);
}

static inline int parley_db_idem_hold(parley_db_t *db, const char *owner, const char *key)
{
    return db->ops->idem_hold ? db->ops->idem_hold(db, owner, key) : 0;
}

static inline int parley_db_doc_get(parley_db_t *db, const char *owner, const char *collection,
                                    const char *id, parley_doc_t *out)
{
    return db->ops->doc_get(db, owner, collection, id, out);
}

static inline int parley_db_doc_list(parley_db_t *db, const char *owner, const char *collection,
                                     int64_t before, int limit,
                                     int (*cb)(void *arg, const parley_doc_t *d), void *arg)
{
    return db->ops->doc_list(db, owner, collection, before, limit, cb, arg);
}

static inline int parley_db_conv_get(parley_db_t *db, const char *id, parley_conv_t *out)
{
    return db->ops->conv_get(db, id, out);
}

static inline int parley_db_conv_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                                      int (*cb)(void *arg, const parley_conv_t *c), void *arg)
{
    return db->ops->conv_list(db, owner, before, limit, cb, arg);
}

static inline int parley_db_sess_get(parley_db_t *db, const char *id, parley_sess_t *out)
{
    return db->ops->sess_get(db, id, out);
}

static inline int parley_db_sess_remove(parley_db_t *db, const char *id)
{
    return db->ops->sess_remove(db, id);
}

static inline int parley_db_sess_list(parley_db_t *db, const char *conversation_id,
                                      const char *status, int64_t before, int limit,
                                      int (*cb)(void *arg, const parley_sess_t *s), void *arg)
{
    return db->ops->sess_list(db, conversation_id, status, before, limit, cb, arg);
}

static inline int parley_db_sess_expired(parley_db_t *db, int64_t now_ms,
                                         char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return db->ops->sess_expired(db, now_ms, ids, max, n);
}

static inline int parley_db_snap_get(parley_db_t *db, const char *id, parley_snap_t *out)
{
    return db->ops->snap_get(db, id, out);
}

static inline int parley_db_snap_remove(parley_db_t *db, const char *id)
{
    return db->ops->snap_remove(db, id);
}

static inline int parley_db_snap_list(parley_db_t *db, const char *owner, int64_t before, int limit,
                                      int (*cb)(void *arg, const parley_snap_t *s), void *arg)
{
    return db->ops->snap_list(db, owner, before, limit, cb, arg);
}

static inline int parley_db_visit_get(parley_db_t *db, const char *snapshot_id, int64_t *count,
                                      int64_t *last_ms)
{
    return db->ops->visit_get(db, snapshot_id, count, last_ms);
}

static inline int parley_db_visit_add(parley_db_t *db, const char *snapshot_id, int64_t now_ms)
{
    return db->ops->visit_add(db, snapshot_id, now_ms);
}

static inline int parley_db_visit_delete(parley_db_t *db, const char *snapshot_id)
{
    return db->ops->visit_delete(db, snapshot_id);
}

static inline int parley_db_snap_expired(parley_db_t *db, int64_t now_ms,
                                         char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return db->ops->snap_expired(db, now_ms, ids, max, n);
}

static inline int parley_db_blob_stage(parley_db_t *db, const char *owner, int64_t now_ms,
                                       int64_t *upload)
{
    return db->ops->blob_stage(db, owner, now_ms, upload);
}

static inline int parley_db_blob_part_put(parley_db_t *db, int64_t upload, int64_t n,
                                          const void *data, size_t len, int64_t now_ms)
{
    return db->ops->blob_part_put(db, upload, n, data, len, now_ms);
}

static inline int parley_db_blob_unstage(parley_db_t *db, int64_t upload)
{
    return db->ops->blob_unstage(db, upload);
}

static inline int parley_db_blob_get(parley_db_t *db, const char *owner, const char *id,
                                     parley_blob_t *out)
{
    return db->ops->blob_get(db, owner, id, out);
}

static inline int parley_db_blob_insert(parley_db_t *db, const parley_blob_t *b)
{
    return db->ops->blob_insert(db, b);
}

static inline int parley_db_blob_part_get(parley_db_t *db, int64_t upload, int64_t n, char **data,
                                          size_t *len)
{
    return db->ops->blob_part_get(db, upload, n, data, len);
}

static inline int parley_db_blob_usage(parley_db_t *db, const char *owner, int64_t *bytes)
{
    return db->ops->blob_usage(db, owner, bytes);
}

static inline int parley_db_blob_ref_add(parley_db_t *db, const char *owner, const char *id,
                                         const char *src, int64_t now_ms)
{
    return db->ops->blob_ref_add(db, owner, id, src, now_ms);
}

static inline int parley_db_blob_ref_drop(parley_db_t *db, const char *owner, const char *src,
                                          int64_t now_ms)
{
    return db->ops->blob_ref_drop(db, owner, src, now_ms);
}

static inline int parley_db_blob_ref_copy(parley_db_t *db, const char *owner, const char *from,
                                          const char *to)
{
    return db->ops->blob_ref_copy(db, owner, from, to);
}

static inline int parley_db_blob_ref_has(parley_db_t *db, const char *owner, const char *id,
                                         const char *src, bool *yes)
{
    return db->ops->blob_ref_has(db, owner, id, src, yes);
}

static inline int parley_db_blob_unreferenced(parley_db_t *db, int64_t before_ms,
                                              parley_blob_t *out, int max, int *n)
{
    return db->ops->blob_unreferenced(db, before_ms, out, max, n);
}

static inline int parley_db_blob_remove(parley_db_t *db, const char *owner, const char *id,
                                        int64_t before_ms)
{
    return db->ops->blob_remove(db, owner, id, before_ms);
}

static inline int parley_db_blob_stale_uploads(parley_db_t *db, int64_t before_ms, int64_t *ids,
                                               int max, int *n)
{
    return db->ops->blob_stale_uploads(db, before_ms, ids, max, n);
}

static inline int parley_db_sub_get(parley_db_t *db, const char *id, parley_sub_t *out)
{
    return db->ops->sub_get(db, id, out);
}

static inline int parley_db_sub_remove(parley_db_t *db, const char *id)
{
    return db->ops->sub_remove(db, id);
}

static inline int parley_db_sub_with_pattern(parley_db_t *db,
                                             int (*cb)(void *arg, const parley_sub_t *s), void *arg)
{
    return db->ops->sub_with_pattern(db, cb, arg);
}

static inline int parley_db_sub_leases_expired(parley_db_t *db, int64_t now_ms,
                                               char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return db->ops->sub_leases_expired(db, now_ms, ids, max, n);
}

static inline int parley_db_sub_deliveries_due(parley_db_t *db, int64_t now_ms,
                                               char (*ids)[PARLEY_ROW_ID_MAX + 1], int max, int *n)
{
    return db->ops->sub_deliveries_due(db, now_ms, ids, max, n);
}

static inline int parley_db_sub_next_delivery(parley_db_t *db, int64_t *due_ms)
{
    return db->ops->sub_next_delivery(db, due_ms);
}

static inline int parley_db_sublink_get(parley_db_t *db, const char *sub_id, const char *path,
                                        parley_sub_link_t *out)
{
    return db->ops->sublink_get(db, sub_id, path, out);
}

static inline int parley_db_sublink_put(parley_db_t *db, const parley_sub_link_t *l)
{
    return db->ops->sublink_put(db, l);
}

static inline int parley_db_sublink_remove(parley_db_t *db, const char *sub_id, const char *path)
{
    return db->ops->sublink_remove(db, sub_id, path);
}

static inline int parley_db_sublink_list(parley_db_t *db, const char *sub_id, const char *path,
                                         int (*cb)(void *arg, const parley_sub_link_t *l),
                                         void *arg)
{
    return db->ops->sublink_list(db, sub_id, path, cb, arg);
}

static inline int parley_db_sublink_snapshot(parley_db_t *db, const char *sub_id)
{
    return db->ops->sublink_snapshot(db, sub_id);
}

static inline int parley_db_sublink_ack_snapshot(parley_db_t *db, const char *sub_id)
{
    return db->ops->sublink_ack_snapshot(db, sub_id);
}

static inline int parley_db_sublink_first_pending(parley_db_t *db, const char *sub_id, char *path)
{
    return db->ops->sublink_first_pending(db, sub_id, path);
}

static inline int parley_db_key_get(parley_db_t *db, const char *name, unsigned char *out,
                                    size_t cap, size_t *len)
{
    return db->ops->key_get(db, name, out, cap, len);
}

static inline int parley_db_integrity(parley_db_t *db, void (*cb)(void *, const char *), void *arg)
{
    return db->ops->integrity ? db->ops->integrity(db, cb, arg) : 0;
}

static inline int parley_db_table_scan(parley_db_t *db, const char *table, const char *cols,
                                       const char *order,
                                       int (*cb)(void *, int, const char *const *, const size_t *),
                                       void *arg)
{
    return db->ops->table_scan ? db->ops->table_scan(db, table, cols, order, cb, arg)
                               : PARLEY_EINVAL;
}

static inline int parley_db_row_exec(parley_db_t *db, const char *sql,
                                     const struct parley_vals *vals, int64_t *changes)
{
    return db->ops->row_exec ? db->ops->row_exec(db, sql, vals, changes) : PARLEY_EINVAL;
}

static inline int parley_db_copy_to(parley_db_t *db, const char *path)
{
    return db->ops->copy_to ? db->ops->copy_to(db, path) : PARLEY_EINVAL;
}

static inline int parley_db_schema_version(parley_db_t *db, int64_t *version, int64_t *mine)
{
    return db->ops->schema_version ? db->ops->schema_version(db, version, mine) : PARLEY_EINVAL;
}

static inline int parley_db_key_put(parley_db_t *db, const char *name, const unsigned char *data,
                                    size_t len, int64_t created_ms)
{
    return db->ops->key_put(db, name, data, len, created_ms);
}

static inline int parley_db_search_put(parley_db_t *db, const char *conv_id, const char *msg_id,
                                       int64_t seq, const char *text)
{
    return db->ops->search_put(db, conv_id, msg_id, seq, text);
}

static inline int parley_db_search_query(parley_db_t *db, const char *owner,
                                         const parley_search_query_t *q, int64_t offset, int limit,
                                         int (*cb)(void *arg, const parley_search_hit_t *h),
                                         void *arg)
{
    return db->ops->search_query(db, owner, q, offset, limit, cb, arg);
}

static inline int parley_db_user_move(parley_db_t *db, const char *from, const char *to,
                                      parley_move_counts_t *out)
{
    return db->ops->user_move(db, from, to, out);
}

static inline int parley_db_transfer_get(parley_db_t *db, const char *from, char *to, char **answer)
{
    return db->ops->transfer_get(db, from, to, answer);
}

static inline int parley_db_transfer_put(parley_db_t *db, const char *from, const char *to,
                                         const char *answer, int64_t now_ms)
{
    return db->ops->transfer_put(db, from, to, answer, now_ms);
}

static inline int parley_db_doc_write(parley_db_t *db, parley_doc_t *d, int64_t expect_version)
{
    return db->ops->doc_write(db, d, expect_version);
}

static inline int parley_db_conv_insert(parley_db_t *db, parley_conv_t *c)
{
    return db->ops->conv_insert(db, c);
}

static inline int parley_db_conv_update(parley_db_t *db, parley_conv_t *c, int64_t expect_version)
{
    return db->ops->conv_update(db, c, expect_version);
}

static inline int parley_db_conv_bump(parley_db_t *db, const char *id, int64_t now_ms, int64_t *seq,
                                      int64_t *version, int64_t *activity)
{
    return db->ops->conv_bump(db, id, now_ms, seq, version, activity);
}

static inline int parley_db_conv_touch(parley_db_t *db, const char *id, int64_t now_ms,
                                       int64_t *count, int64_t *version, int64_t *activity)
{
    return db->ops->conv_touch(db, id, now_ms, count, version, activity);
}

static inline int parley_db_conv_tombstone(parley_db_t *db, const char *id, int64_t now_ms,
                                           int64_t *version)
{
    return db->ops->conv_tombstone(db, id, now_ms, version);
}

static inline int parley_db_sess_insert(parley_db_t *db, parley_sess_t *s)
{
    return db->ops->sess_insert(db, s);
}

static inline int parley_db_sess_update(parley_db_t *db, const parley_sess_t *s,
                                        const char *expect_status, int64_t expect_attempt)
{
    return db->ops->sess_update(db, s, expect_status, expect_attempt);
}

static inline int parley_db_sess_claim_next(parley_db_t *db, const char *conv_id, int64_t now_ms,
                                            int64_t lease_ms, parley_sess_t *out)
{
    return db->ops->sess_claim_next(db, conv_id, now_ms, lease_ms, out);
}

static inline int parley_db_snap_insert(parley_db_t *db, parley_snap_t *s)
{
    return db->ops->snap_insert(db, s);
}

static inline int parley_db_snap_expire(parley_db_t *db, const char *id)
{
    return db->ops->snap_expire(db, id);
}

static inline int parley_db_sub_put_config(parley_db_t *db, const parley_sub_t *s)
{
    return db->ops->sub_put_config(db, s);
}

static inline int parley_db_sub_begin_wake(parley_db_t *db, const char *id, const char *wake_id,
                                           int64_t lease_exp_ms, int64_t due_ms,
                                           int64_t *generation)
{
    return db->ops->sub_begin_wake(db, id, wake_id, lease_exp_ms, due_ms, generation);
}

static inline int parley_db_sub_update(parley_db_t *db, const parley_sub_t *s,
                                       int64_t expect_generation, const char *expect_wake_id)
{
    return db->ops->sub_update(db, s, expect_generation, expect_wake_id);
}

static inline int parley_db_sublink_advance(parley_db_t *db, const char *sub_id, const char *path,
                                            uint64_t pos)
{
    return db->ops->sublink_advance(db, sub_id, path, pos);
}

#endif
