/*
 * branch.h — a conversation's branches: editing a past message or
 * regenerating an answer keeps both (DESIGN.md §2.6).
 *
 * The model. A conversation starts with one branch, "main", whose log is
 * the conversation's message log (core/conversation.h). A new branch B is
 * made at a message of some branch: it is a sibling of that message, so it
 * shares the history before it and nothing after. Its record says
 *     parent   the branch that holds the message just before the fork
 *              point (the "holder" of that position, below),
 *     at       the position of B's first own message (its seq is at + 1).
 * Along B, position p is held by B when p >= B.at, else by B's parent
 * along the same rule: holder(B, p) walks parents while at > p, in a
 * loop (never recursion). Messages keep their ids; seq along a branch is
 * its position + 1, gap-free.
 *
 * Siblings. The messages at position p that share the history [0, p) of
 * branch B are: the message at p of H = holder(B, p - 1) (main for p = 0)
 * when H has one, then the first message of every branch whose parent is
 * H and whose at is p, in creation order. Since every new branch at p is
 * made with parent holder(B, p - 1), this set is the same whichever
 * branch it is read from, and the front end's "< 2/3 >" switcher needs
 * only the set and a branch to show for each member (the member's own
 * branch): parley_branch_siblings.
 *
 * Storage. A branch's log is an internal stream "_parley/convbranch/<id>"
 * made as an open fork of its parent's log at `at` (core/stream.h
 * parley_stream_branch_internal): the shared history is read through the
 * fork, never copied. Forks have a depth limit (PARLEY_STREAM_FORK_DEPTH_MAX);
 * when the parent's log is already that deep, the new log is a fork of
 * main's log at the point where the chain leaves main, and the messages
 * between that point and `at` are copied into it (depth 1 again). So any
 * chain of edits works; copies happen once per that many nested edits.
 * The branch records, the active branch and the sessions that run on a
 * branch other than main are appended to a ledger, the internal JSON
 * stream "_parley/convledger/<conversation id>", created by the first
 * branch; a conversation without one has only main, active, exactly as
 * before branches existed (no extra row, no extra write).
 *
 * Invariants:
 *   1. A branch's log reads exactly its parent's messages [0, at) then its
 *      own; its messages' seq are their positions + 1.
 *   2. Branch records are only appended (a branch is never changed or
 *      removed while its conversation lives); the last "active" record
 *      names the active branch (main when there is none).
 *   3. At most PARLEY_BRANCH_MAX branches per conversation besides main.
 *   4. Deleting the conversation deletes every branch log and the ledger
 *      in the same transaction (core/turn.c).
 *
 * Threads: parley_branch_load and the read helpers on any thread with its
 * own connection (inside a read transaction for a consistent view); the
 * writes on the writer thread in the request's savepoint.
 */
#ifndef PARLEY_CORE_BRANCH_H
#define PARLEY_CORE_BRANCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec/id.h"
#include "core/outcome.h"
#include "store/store.h"
#include "util/buf.h"

#define PARLEY_BRANCH_MAIN          "main"                /* the conversation's own log */
#define PARLEY_BRANCH_MAX           1000                  /* branches besides main */
#define PARLEY_BRANCH_PATH_PREFIX   "_parley/convbranch/" /* branch logs */
#define PARLEY_BRANCH_LEDGER_PREFIX "_parley/convledger/" /* per-conversation ledgers */

/* One branch, as folded from the ledger. */
typedef struct parley_branch {
    char id[PARLEY_ID_LEN + 1];         /* "main" or a server-made id */
    int parent;                         /* index of its parent, -1 for main */
    int64_t at;                         /* position of its first own message (0 for main) */
    int64_t created_ms;                 /* creation, -1 for main */
    char session_id[PARLEY_ID_LEN + 1]; /* the session that regenerates into it, or "" */
    int64_t tail;                       /* messages along it; -1 until read */
} parley_branch_t;

/* A session that runs on a branch other than main. */
typedef struct parley_branch_link {
    char session_id[PARLEY_ID_LEN + 1]; /* the session */
    int branch;                         /* index of its branch */
} parley_branch_link_t;

/* The branches of one conversation (parley_branch_load; owned, freed by
 * parley_branch_set_clear). */
typedef struct parley_branch_set {
    char conversation_id[PARLEY_ROW_ID_MAX + 1]; /* whose */
    parley_branch_t *v;                          /* branches, v[0] is main, creation order */
    int n;                                       /* entries in v */
    int active;                                  /* index of the active branch */
    parley_branch_link_t *links;                 /* sessions on branches other than main */
    int nlinks;                                  /* entries in links */
    bool has_ledger;                             /* the conversation has branched */
} parley_branch_set_t;

/* Load the branches of conversation conv_id (main only when it has no
 * ledger). 0, or a storage error (PARLEY_ESTORE for a ledger that does not
 * parse). The caller clears *set either way. Any thread. */
int parley_branch_load(parley_db_t *db, const char *conv_id, parley_branch_set_t *set);
/* Release what set holds. Accepts a zeroed set. */
void parley_branch_set_clear(parley_branch_set_t *set);

/* Index of branch id in set, or -1. Pure. */
int parley_branch_find(const parley_branch_set_t *set, const char *id);
/* Index of the branch session sid runs on (0, main, when none is
 * recorded). Pure. */
int parley_branch_of_session(const parley_branch_set_t *set, const char *sid);
/* The id of the branch session sid of conversation conv_id runs on
 * ("main" unless recorded otherwise) into out (PARLEY_ID_LEN + 1 bytes).
 * 0 or a storage error. Any thread. */
int parley_branch_session_branch(parley_db_t *db, const char *conv_id, const char *sid, char *out);
/* The log stream path of branch i into out. Pure. */
void parley_branch_stream_path(const parley_branch_set_t *set, int i, char *out, size_t cap);
/* The ledger stream path of conversation conv_id into out. Pure. */
void parley_branch_ledger_path(const char *conv_id, char *out, size_t cap);
/* The branch that holds position pos along branch i (main for pos < 0). */
int parley_branch_holder(const parley_branch_set_t *set, int i, int64_t pos);

/* Load branch i's log meta into *log (and its tail into the set). */
int parley_branch_log(parley_db_t *db, parley_branch_set_t *set, int i, parley_stream_t *log);

/* The representation {id, conversation_id, parent, fork_seq,
 * message_count, active, session_id, created_at} of branch i, its tail
 * read (new reference; NULL on ENOMEM). Any thread. */
json_t *parley_branch_json(parley_db_t *db, parley_branch_set_t *set, int i);

/*
 * The switcher of position pos along branch i: NULL in *sib when the
 * message there has no sibling, else (new reference) {index, count, ids,
 * branches}: index is 1-based, ids the sibling messages in order and
 * branches the branch to show for each. 0 or a storage error.
 */
int parley_branch_siblings(parley_db_t *db, parley_branch_set_t *set, int i, int64_t pos,
                           json_t **sib);

/*
 * Read one page of branch i (log: its meta from parley_branch_log) as
 * parley_conversation_read_page does, each message that has siblings
 * carrying "siblings" (parley_branch_siblings). Any thread with its own
 * connection, inside a read transaction.
 */
int parley_branch_read_page(parley_db_t *db, parley_branch_set_t *set, int i,
                            const parley_stream_t *log, uint64_t after, int limit, size_t max_bytes,
                            parley_buf_t *out, int *count, uint64_t *last_seq, bool *more);

/*
 * Find message id along branch i, scanning from its newest message back:
 * 0 with *pos and *msg (new reference), PARLEY_ENOTFOUND, or a storage
 * error. Any thread.
 */
int parley_branch_find_message(parley_db_t *db, parley_branch_set_t *set, int i, const char *id,
                               int64_t *pos, json_t **msg);
/* The message at position pos of branch i (new reference in *msg). */
int parley_branch_message_at(parley_db_t *db, parley_branch_set_t *set, int i, int64_t pos,
                             json_t **msg);

/*
 * Make a branch at position pos of branch from (writer thread): a new
 * branch with id id, parent holder(from, pos - 1) and at pos, its log made
 * (a fork, see above), its record in the ledger (created if missing,
 * owned by owner), branch.created emitted. session_id (may be NULL) is the
 * session that will answer into it. *idx is its index in set (updated).
 * PARLEY_ETOOBIG when the conversation has PARLEY_BRANCH_MAX branches.
 */
int parley_branch_create(parley_db_t *db, parley_branch_set_t *set, const char *owner, int from,
                         int64_t pos, const char *id, const char *session_id, int *idx,
                         parley_outcome_t *out);
/* Make branch i the active one (writer thread): a ledger record and
 * branch.activated; nothing when it is active already. */
int parley_branch_activate(parley_db_t *db, parley_branch_set_t *set, const char *owner, int i,
                           parley_outcome_t *out);
/* Record that session sid runs on branch i (writer thread; nothing for
 * main). */
int parley_branch_link_session(parley_db_t *db, parley_branch_set_t *set, const char *owner,
                               const char *sid, int i, parley_outcome_t *out);
/* Delete every branch log and the ledger (writer thread; the
 * conversation's delete). */
int parley_branch_delete_all(parley_db_t *db, parley_branch_set_t *set, parley_outcome_t *out);

#endif
