/*
 * command.h — one write, as data: the core operation a request asks for
 * and its parsed arguments.
 *
 * The API parses and checks a request on the connection's thread (what
 * needs no stored row: headers, body shape, field types) into a command,
 * and hands it to the writer. On the writer thread, inside the request's
 * savepoint, parley_command_apply() runs the one core rule the command
 * names; the rule decides from the stored rows and says what it decided in
 * a parley_outcome_t (core/outcome.h). Nothing of HTTP runs there: the API
 * turns the outcome into the answer after the commit, on its own thread.
 *
 *   kind                        rule
 *   STREAM_CREATE/APPEND/DELETE parley_streamrules_create/append/delete
 *   DOCUMENT                    parley_document_apply
 *   CONVERSATION                parley_conversation_apply (create, patch);
 *                               delete: parley_turn_delete_conversation
 *   MESSAGE                     parley_turn_post
 *   SESSION                     parley_session_apply; complete: parley_turn_complete
 *   SESSION_APPEND              parley_session_check_append, then
 *                               parley_streamrules_append on its stream
 *   SNAPSHOT_CREATE/DELETE      parley_snapshot_create/delete
 *   SUB_*                       parley_subscription_put/delete/add_streams/
 *                               remove_stream/claim/report
 *   FEED_ENSURE                 parley_stream_ensure_internal (a reader's
 *                               feed stream, made before its first event)
 *   BLOB_COMMIT                 parley_blob_commit
 *
 * Ownership: every pointer in a command is borrowed from whoever built it
 * (the API's per-request state), which outlives the write.
 * Threads: built on any thread; applied on the writer thread.
 */
#ifndef PARLEY_CORE_COMMAND_H
#define PARLEY_CORE_COMMAND_H

#include "codec/keyring.h"
#include "core/blob.h"
#include "core/document.h"
#include "core/idempotency.h"
#include "core/outcome.h"
#include "core/session.h"
#include "core/snapshot.h"
#include "core/stream.h"
#include "core/subscription.h"
#include "core/turn.h"
#include "store/store.h"

typedef enum parley_command_kind {
    PARLEY_CMD_STREAM_CREATE,   /* u.stream */
    PARLEY_CMD_STREAM_APPEND,   /* u.stream */
    PARLEY_CMD_STREAM_DELETE,   /* u.stream */
    PARLEY_CMD_DOCUMENT,        /* u.doc */
    PARLEY_CMD_CONVERSATION,    /* u.conv (create, patch or delete) */
    PARLEY_CMD_MESSAGE,         /* u.post */
    PARLEY_CMD_SESSION,         /* u.session (an action, complete included) */
    PARLEY_CMD_SESSION_APPEND,  /* u.sess_append */
    PARLEY_CMD_SNAPSHOT_CREATE, /* u.snap */
    PARLEY_CMD_SNAPSHOT_DELETE, /* u.snap_delete */
    PARLEY_CMD_SUB_PUT,         /* u.sub: id, spec, view */
    PARLEY_CMD_SUB_DELETE,      /* u.sub: id */
    PARLEY_CMD_SUB_ADD,         /* u.sub: id, paths, npaths */
    PARLEY_CMD_SUB_REMOVE,      /* u.sub: id, path */
    PARLEY_CMD_SUB_CLAIM,       /* u.sub: id, worker, kr */
    PARLEY_CMD_SUB_REPORT,      /* u.sub: id, action, report, kr */
    PARLEY_CMD_FEED_ENSURE,     /* u.feed */
    PARLEY_CMD_BLOB_COMMIT,     /* u.blob */
} parley_command_kind_t;

/* A worker's output appended to a session's token stream. */
typedef struct parley_command_sess_append {
    const char *id;             /* the session */
    const char *user;           /* the caller */
    bool admin;                 /* the caller is the admin */
    int64_t attempt;            /* Session-Attempt, -1 when absent */
    parley_stream_req_t stream; /* the append (path and owner are set by the rule) */
} parley_command_sess_append_t;

typedef struct parley_command_snap_delete {
    const char *id;   /* the snapshot */
    const char *user; /* the caller */
    bool admin;       /* reaches every user's snapshots */
} parley_command_snap_delete_t;

/* The subscription operations' arguments (each kind uses some). */
typedef struct parley_command_sub {
    const char *id;                /* the subscription */
    const parley_sub_spec_t *spec; /* PUT: the configuration */
    parley_sub_view_t view;        /* PUT: how the answer names URLs and keys */
    const char *const *paths;      /* ADD: stream paths */
    size_t npaths;                 /* ADD: entries in paths */
    const char *path;              /* REMOVE: the stream path */
    const char *worker;            /* CLAIM: the worker's name */
    parley_sub_action_t action;    /* REPORT: callback, ack or release */
    parley_sub_report_t report;    /* REPORT: what was sent */
    const parley_keyring_t *kr;    /* CLAIM, REPORT: the token keys */
} parley_command_sub_t;

typedef struct parley_command_feed {
    const char *path;  /* the feed stream */
    const char *owner; /* its owner */
} parley_command_feed_t;

typedef struct parley_command {
    parley_command_kind_t kind; /* which rule; names the member of u in use */
    union {
        parley_stream_req_t stream;               /* STREAM_* */
        parley_doc_req_t doc;                     /* DOCUMENT */
        parley_conv_req_t conv;                   /* CONVERSATION */
        parley_turn_post_req_t post;              /* MESSAGE */
        parley_session_req_t session;             /* SESSION */
        parley_command_sess_append_t sess_append; /* SESSION_APPEND */
        parley_snapshot_req_t snap;               /* SNAPSHOT_CREATE */
        parley_command_snap_delete_t snap_delete; /* SNAPSHOT_DELETE */
        parley_command_sub_t sub;                 /* SUB_* */
        parley_command_feed_t feed;               /* FEED_ENSURE */
        parley_blob_req_t blob;                   /* BLOB_COMMIT */
    } u;                                          /* the arguments */
} parley_command_t;

/*
 * Run cmd's rule in the writer's transaction (the request's savepoint).
 * out is initialised here. 0 with the outcome in out — done, or a refusal
 * whose changes the caller rolls back — or a negative error: a store
 * failure (PARLEY_ESTORE, PARLEY_EFULL, PARLEY_ENOMEM, ...) or
 * PARLEY_EINVAL for rows that contradict each other or a command no rule
 * takes. A SESSION_APPEND refusal from the session check carries an error
 * code (out->code); one from the stream rule has none.
 */
int parley_command_apply(parley_db_t *db, const parley_command_t *cmd, parley_outcome_t *out);

/* How a run went (parley_command_run). */
typedef enum parley_run_how {
    PARLEY_RUN_APPLIED,   /* the rule ran: its outcome is in out */
    PARLEY_RUN_REPLAY,    /* the key's record answers: record, record_len */
    PARLEY_RUN_REUSED,    /* the key was used for another request */
    PARLEY_RUN_IN_FLIGHT, /* another node sharing the database has the key in flight */
} parley_run_how_t;

typedef struct parley_command_run {
    parley_run_how_t how; /* which of the three */
    bool keep;            /* the write's changes stand (else: roll back its savepoint) */
    parley_outcome_t out; /* APPLIED: what the rule decided */
    char *record;         /* REPLAY: the stored record (malloc'd) */
    size_t record_len;    /* its bytes */
} parley_command_run_t;

/* An empty run (before the first parley_command_run). */
void parley_command_run_init(parley_command_run_t *run);
/* Release what a run holds; it is empty after. Accepts NULL. */
void parley_command_run_clear(parley_command_run_t *run);

/*
 * One write on the writer thread, with its Idempotency-Key (key, or NULL
 * for none): IN_FLIGHT when another node sharing the database has the key
 * in flight (store's idem_hold; nothing runs); a live record for the key
 * answers instead of the rule (REPLAY, or REUSED for another request's);
 * else the rule runs
 * (parley_command_apply), and a done outcome is recorded with the key in
 * the same savepoint. When another request with the key committed first,
 * its record answers and this write rolls back. run is cleared and filled
 * here (each call starts from cmd alone, as the writer's retry needs).
 * 0 with run->keep telling whether the changes stand, or a negative error
 * (store failure, or the rule's).
 */
int parley_command_run(parley_db_t *db, const parley_command_t *cmd, const parley_idem_key_t *key,
                       parley_command_run_t *run);

#endif
