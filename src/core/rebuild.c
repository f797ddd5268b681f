/*
 * rebuild.c — replay the change feed into objects and compare them with
 * the stored rows (see rebuild.h).
 *
 * DESIGN. Two tables drive it:
 *   - replay[]: one entry per event type, the function that applies an
 *     event of that type to the in-memory objects;
 *   - tables[]: one entry per stored kind, the columns read and the
 *     function that compares one row with its rebuilt object.
 * Adding an object kind is one replay entry per event type it emits and
 * one table entry. An event of a type with no entry is counted, not
 * replayed.
 *
 * The objects live in one jansson object, keyed "<kind>\x1f<key>", each
 * {"state": "ok"|"older"|"trimmed"|"broken", "name": "<for the report>",
 * ...fields}. touch() decides the state an event leaves (see rebuild.h:
 * a base event starts the object again; an event without what a rebuild
 * needs makes it "older"; an event for an object never created in an
 * untrimmed feed is a problem, "broken").
 *
 * Invariants:
 *   1. The feed is read in order, in the verification's read transaction,
 *      so the rows compared are the state its last event left.
 *   2. Only "ok" objects are compared; the others are counted once each.
 *
 * Memory: every rebuilt object (documents with their data) and one entry
 * per message, for the length of the check. Threads: see rebuild.h.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/canonjson.h"
#include "codec/mergepatch.h"
#include "core/branch.h"
#include "core/conversation.h"
#include "core/feed.h"
#include "core/rebuild.h"
#include "parley/parley.h"
#include "util/clock.h"

#define SEP        "\x1f" /* between the parts of an object's key */
#define SHOWN_TEXT 120    /* characters of a value shown in a problem */

/* One run of the check. */
typedef struct rebuild {
    parley_db_t *db;    /* the connection read */
    parley_verify_t *v; /* where problems go */
    json_t *objs;       /* key → rebuilt object (see DESIGN) */
    json_t *logs;       /* ids of the conversations whose logs to compare */
    bool trimmed;       /* the feed no longer starts at its first event */
    bool nofeed;        /* no feed at all: rows imported without it */
    int err;            /* the first error met in a callback */
    long events;        /* events replayed */
    long other;         /* events of types with no replay entry */
    long rebuilt;       /* rows compared with their rebuilt object */
    long older;         /* rows not rebuildable: older events */
    long skipped;       /* rows not rebuildable: feed trimmed */
} rebuild_t;

/* ---- helpers ------------------------------------------------------------------ */

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static bool is_ok(json_t *o)
{
    return o && strcmp(str(o, "state"), "ok") == 0;
}

/* Canonical text of v, cut for a problem line, into out. */
static void shown(json_t *v, char *out, size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    if (!v || parley_canonjson_dump(v, &text, &len) != 0) {
        snprintf(out, cap, "%s", v ? "?" : "(none)");
        return;
    }
    if (len > SHOWN_TEXT)
        snprintf(out, cap, "%.*s…", SHOWN_TEXT, text);
    else
        snprintf(out, cap, "%s", text);
    free(text);
}

/* Stored JSON text (NULL: JSON null) as a value; NULL when it does not parse. */
static json_t *stored(const char *text, size_t len)
{
    json_error_t jerr;
    return text ? json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr) : json_null();
}

/* Compare one field of an object with its row; report when they differ. */
static void same(rebuild_t *rb, json_t *o, const char *field, json_t *row_value)
{
    json_t *want = json_object_get(o, field);
    if (!want)
        want = json_null();
    if (row_value && json_equal(want, row_value))
        return;
    char a[SHOWN_TEXT + 8], b[SHOWN_TEXT + 8];
    shown(row_value, a, sizeof a);
    shown(want, b, sizeof b);
    parley_verify_problem(rb->v, "%s: %s is %s in the store but %s rebuilt from the feed",
                          str(o, "name"), field, a, b);
}

static void same_new(rebuild_t *rb, json_t *o, const char *field, json_t *row_value)
{
    same(rb, o, field, row_value);
    json_decref(row_value);
}

/*
 * The object key names after an event of type: see DESIGN. base: the
 * event carries the object's whole state; complete: it carries what a
 * rebuild needs. Borrowed, or NULL (out of memory, rb->err set).
 */
static json_t *touch(rebuild_t *rb, const char *key, const char *name, bool base, bool complete,
                     const char *type)
{
    json_t *o = json_object_get(rb->objs, key);
    if (base && !(o && is_ok(o) && complete)) {
        o = json_object();
        if (!o || json_object_set_new(rb->objs, key, o)) {
            rb->err = PARLEY_ENOMEM;
            return NULL;
        }
    } else if (!o) {
        if (!rb->trimmed)
            parley_verify_problem(rb->v, "%s: its first event in the feed is %s, not its creation",
                                  name, type);
        o = json_pack("{s:s}", "state", rb->trimmed ? "trimmed" : "broken");
        if (!o || json_object_set_new(rb->objs, key, o)) {
            rb->err = PARLEY_ENOMEM;
            return NULL;
        }
    }
    if (!json_object_get(o, "state") || (!complete && is_ok(o)))
        json_object_set_new(o, "state", json_string(complete ? "ok" : "older"));
    json_object_set_new(o, "name", json_string(name));
    return o;
}

/* ---- replay: documents ------------------------------------------------------- */

static void doc_key(const char *owner, const char *coll, const char *id, char *key, size_t kcap,
                    char *name, size_t ncap)
{
    snprintf(key, kcap, "document" SEP "%s" SEP "%s" SEP "%s", owner, coll, id);
    snprintf(name, ncap, "document %s/%s of '%s'", coll, id, owner);
}

static int on_document(rebuild_t *rb, json_t *ev, const char *type)
{
    char key[1024], name[1024];
    json_t *d = json_object_get(ev, "document"), *data = json_object_get(ev, "data");
    doc_key(str(ev, "user"), str(d, "collection"), str(d, "id"), key, sizeof key, name,
            sizeof name);
    json_t *version = json_object_get(d, "version");
    json_t *content = json_object_get(data, "content"), *patch = json_object_get(data, "patch");
    bool deleted = strcmp(type, "document.deleted") == 0;
    json_t *o = touch(rb, key, name, deleted || !patch, deleted || content || patch, type);
    if (!o || !is_ok(o))
        return 0;
    if (deleted) {
        json_object_set_new(o, "data", json_object());
        json_object_set_new(o, "deleted", json_true());
    } else if (content) {
        json_object_set_new(o, "data", json_deep_copy(content));
        json_object_set_new(o, "deleted", json_false());
    } else {
        json_t *prev = json_object_get(o, "version");
        if (json_is_true(json_object_get(o, "deleted")))
            parley_verify_problem(rb->v, "%s: patched while deleted (version %lld)", name,
                                  (long long)json_integer_value(version));
        else if (json_integer_value(version) != json_integer_value(prev) + 1)
            parley_verify_problem(rb->v, "%s: a patch makes version %lld after version %lld", name,
                                  (long long)json_integer_value(version),
                                  (long long)json_integer_value(prev));
        json_t *merged = parley_mergepatch_apply(json_object_get(o, "data"), patch);
        if (!merged)
            return PARLEY_ENOMEM;
        json_object_set_new(o, "data", merged);
    }
    json_object_set(o, "version", version);
    if (!deleted) { /* the replay against the event's own checksum */
        char *text = NULL, sum[PARLEY_CANONJSON_SHA256_HEX + 1];
        size_t len = 0;
        int rc = parley_canonjson_dump(json_object_get(o, "data"), &text, &len);
        if (rc)
            return rc == PARLEY_ENOMEM ? rc : 0;
        parley_canonjson_sha256_hex(text, len, sum);
        free(text);
        if (strcmp(sum, str(data, "checksum")) != 0)
            parley_verify_problem(rb->v,
                                  "%s: version %lld rebuilt from the feed does not have the "
                                  "checksum its event names",
                                  name, (long long)json_integer_value(version));
    }
    return 0;
}

/* ---- replay: conversations and messages -------------------------------------- */

static void conv_key(const char *id, char *key, size_t kcap, char *name, size_t ncap)
{
    snprintf(key, kcap, "conversation" SEP "%s", id);
    snprintf(name, ncap, "conversation %s", id);
}

static int on_conversation(rebuild_t *rb, json_t *ev, const char *type)
{
    char key[512], name[512];
    json_t *data = json_object_get(ev, "data");
    conv_key(str(ev, "conversation_id"), key, sizeof key, name, sizeof name);
    json_t *o = touch(rb, key, name, true, true, type);
    if (!o)
        return 0;
    json_object_set_new(o, "owner", json_string(str(ev, "user")));
    json_object_set(o, "version", json_object_get(data, "version"));
    if (strcmp(type, "conversation.deleted") == 0) {
        json_object_set_new(o, "deleted", json_true());
        json_object_set_new(o, "title", json_null());
        json_object_set_new(o, "metadata", json_object());
        json_object_del(o, "messages");
        json_object_del(o, "branches");
        return 0;
    }
    json_object_set_new(o, "deleted", json_false());
    json_object_set(o, "title", json_object_get(data, "title"));
    json_object_set(o, "metadata", json_object_get(data, "metadata"));
    json_object_set(o, "message_count", json_object_get(data, "message_count"));
    if (!json_object_get(o, "messages"))
        json_object_set_new(o, "messages", json_object());
    return 0;
}

/* A branch of a rebuilt conversation: {"tail": its messages, "messages":
 * seq → message}; created when missing (a branch made before the events
 * named it is not checked for its seq). Borrowed, or NULL. */
static json_t *branch_of(json_t *conv, const char *id, bool create)
{
    json_t *all = json_object_get(conv, "branches");
    if (!all && create) {
        all = json_object();
        if (!all || json_object_set_new(conv, "branches", all))
            return NULL;
    }
    json_t *b = json_object_get(all, id);
    if (!b && create) {
        b = json_pack("{s:o, s:o}", "tail", json_null(), "messages", json_object());
        if (!b || json_object_set_new(all, id, b))
            return NULL;
    }
    return b;
}

/*
 * A message event's effect both logs share: the conversation's version
 * moves, and the message's row {id, role, session_id} goes into msgs (main's
 * or a branch's log) at seq.
 */
static int add_message(json_t *o, json_t *msgs, json_t *ev, json_int_t seq)
{
    char seqs[32];
    json_t *data = json_object_get(ev, "data");
    json_object_set_new(o, "version",
                        json_integer(json_integer_value(json_object_get(o, "version")) + 1));
    snprintf(seqs, sizeof seqs, "%lld", (long long)seq);
    json_t *m =
        json_pack("{s:s, s:O, s:O}", "id", str(ev, "message_id"), "role",
                  json_object_get(data, "role"), "session_id", json_object_get(data, "session_id"));
    if (!m || !msgs || json_object_set_new(msgs, seqs, m))
        return PARLEY_ENOMEM;
    return 0;
}

/*
 * A message on a branch (data.branch): in its branch's log, not main's;
 * the conversation's version moves, its message_count (main's) does not.
 */
static int on_branch_message(rebuild_t *rb, json_t *ev, json_t *o, const char *branch,
                             json_int_t seq)
{
    json_t *b = branch_of(o, branch, true);
    if (!b)
        return PARLEY_ENOMEM;
    json_t *tail = json_object_get(b, "tail");
    if (json_is_integer(tail) && seq != json_integer_value(tail) + 1)
        parley_verify_problem(rb->v, "%s branch %s: message %s has seq %lld after %lld messages",
                              str(o, "name"), branch, str(ev, "message_id"), (long long)seq,
                              (long long)json_integer_value(tail));
    json_object_set_new(b, "tail", json_integer(seq));
    return add_message(o, json_object_get(b, "messages"), ev, seq);
}

/* branch.created: the branch and its length when made (its log shares
 * its parent's messages up to the fork); branch.activated changes no row
 * compared. */
static int on_branch(rebuild_t *rb, json_t *ev, const char *type)
{
    char key[512], name[512];
    json_t *data = json_object_get(ev, "data");
    conv_key(str(ev, "conversation_id"), key, sizeof key, name, sizeof name);
    json_t *o = touch(rb, key, name, false, true, type);
    if (!o || !is_ok(o) || strcmp(type, "branch.created") != 0)
        return 0;
    json_t *b = branch_of(o, str(data, "id"), true);
    if (!b)
        return PARLEY_ENOMEM;
    json_object_set(b, "tail", json_object_get(data, "message_count"));
    return 0;
}

static int on_message(rebuild_t *rb, json_t *ev, const char *type)
{
    char key[512], name[512];
    json_t *data = json_object_get(ev, "data");
    conv_key(str(ev, "conversation_id"), key, sizeof key, name, sizeof name);
    json_t *o = touch(rb, key, name, false, true, type);
    if (!o || !is_ok(o))
        return 0;
    json_int_t seq = json_integer_value(json_object_get(data, "seq"));
    const char *branch = json_string_value(json_object_get(data, "branch"));
    if (branch && strcmp(branch, "main") != 0)
        return on_branch_message(rb, ev, o, branch, seq);
    json_int_t count = json_integer_value(json_object_get(o, "message_count"));
    if (seq != count + 1)
        parley_verify_problem(rb->v, "%s: message %s has seq %lld after %lld messages", name,
                              str(ev, "message_id"), (long long)seq, (long long)count);
    json_object_set_new(o, "message_count", json_integer(seq));
    return add_message(o, json_object_get(o, "messages"), ev, seq);
}

/* ---- replay: sessions ----------------------------------------------------------- */

/* The field a transition's event must carry (core/session.c,
 * transition_extra), or NULL. */
static const char *transition_field(const char *from, const char *to)
{
    if (!from)
        return "max_attempts";
    if (strcmp(to, "awaiting_input") == 0)
        return "request";
    if (strcmp(from, "awaiting_input") == 0 && strcmp(to, "processing") == 0)
        return "input";
    if (strcmp(to, "failed") == 0)
        return "error";
    if (strcmp(to, "completed") == 0)
        return "result_message_id";
    return NULL;
}

static int on_session(rebuild_t *rb, json_t *ev, const char *type)
{
    char key[512], name[512];
    json_t *data = json_object_get(ev, "data");
    snprintf(key, sizeof key, "session" SEP "%s", str(ev, "session_id"));
    snprintf(name, sizeof name, "session %s", str(ev, "session_id"));
    const char *from = json_string_value(json_object_get(data, "from"));
    const char *to = str(data, "to");
    const char *field = transition_field(from, to);
    json_t *o =
        touch(rb, key, name, from == NULL, !field || json_object_get(data, field) != NULL, type);
    if (!o || !is_ok(o))
        return 0;
    if (!from) {
        json_object_set_new(o, "conversation_id", json_string(str(ev, "conversation_id")));
        json_object_set_new(o, "message_id", json_string(str(ev, "message_id")));
        json_object_set_new(o, "owner", json_string(str(ev, "user")));
        json_object_set_new(o, "error", json_null());
        json_object_set_new(o, "request", json_null());
        json_object_set_new(o, "input", json_null());
        json_object_set_new(o, "result_message_id", json_null());
    } else if (strcmp(from, str(o, "status")) != 0) {
        parley_verify_problem(rb->v, "%s: an event moves it from %s, but the feed left it %s", name,
                              from, str(o, "status"));
    }
    json_object_set(o, "status", json_object_get(data, "to"));
    json_object_set(o, "attempt", json_object_get(data, "attempt"));
    if (field)
        json_object_set(o, field, json_object_get(data, field));
    return 0;
}

/* ---- replay: blobs ---------------------------------------------------------------- */

static void blob_key(const char *owner, const char *id, char *key, size_t kcap, char *name,
                     size_t ncap)
{
    snprintf(key, kcap, "blob" SEP "%s" SEP "%s", owner, id);
    snprintf(name, ncap, "blob %s of '%s'", id, owner);
}

static int on_blob(rebuild_t *rb, json_t *ev, const char *type)
{
    char key[1024], name[1024];
    json_t *data = json_object_get(ev, "data");
    blob_key(str(ev, "user"), str(ev, "blob_id"), key, sizeof key, name, sizeof name);
    bool deleted = strcmp(type, "blob.deleted") == 0;
    json_t *o = touch(rb, key, name, true, true, type);
    if (!o)
        return 0;
    json_object_set_new(o, "exists", json_boolean(!deleted));
    json_object_set(o, "size", json_object_get(data, "size"));
    json_object_set(o, "content_type", json_object_get(data, "content_type"));
    return 0;
}

/* ---- replay: moving a user's data ------------------------------------------------- */

/*
 * user.transferred {from, to}: every object of from now belongs to to
 * (core/transfer.c moves the rows without per-object events). Documents
 * and blobs, keyed by owner, take the new key; when to already had that
 * key (a document of the same id, a blob of the same bytes), from's copy
 * was dropped by the move and to's stays.
 */
static int on_transfer(rebuild_t *rb, json_t *ev, const char *type)
{
    (void)type;
    const char *from = str(ev, "from"), *to = str(ev, "to");
    if (!*from || !*to || strcmp(from, to) == 0)
        return 0;
    json_t *keys = json_array();
    const char *key;
    json_t *o;
    if (!keys)
        return PARLEY_ENOMEM;
    json_object_foreach(rb->objs, key, o)
    {
        if (strcmp(str(o, "owner"), from) == 0)
            json_object_set_new(o, "owner", json_string(to));
        size_t fl = strlen(from);
        if (strncmp(key, "document" SEP, 9) == 0 && strncmp(key + 9, from, fl) == 0 &&
            key[9 + fl] == SEP[0] && json_array_append_new(keys, json_string(key)))
            rb->err = PARLEY_ENOMEM;
        if (strncmp(key, "blob" SEP, 5) == 0 && strncmp(key + 5, from, fl) == 0 &&
            key[5 + fl] == SEP[0] && json_array_append_new(keys, json_string(key)))
            rb->err = PARLEY_ENOMEM;
    }
    size_t i;
    json_t *kv;
    json_array_foreach(keys, i, kv)
    {
        char nkey[1024], name[1024];
        const char *old = json_string_value(kv);
        if (strncmp(old, "blob" SEP, 5) == 0) {
            blob_key(to, old + 5 + strlen(from) + 1, nkey, sizeof nkey, name, sizeof name);
        } else {
            const char *rest = old + 9 + strlen(from) + 1; /* after "document<SEP><from><SEP>" */
            const char *sep = strchr(rest, SEP[0]);
            char coll[512];
            snprintf(coll, sizeof coll, "%.*s", sep ? (int)(sep - rest) : 0, rest);
            doc_key(to, coll, sep ? sep + 1 : "", nkey, sizeof nkey, name, sizeof name);
        }
        o = json_object_get(rb->objs, old);
        json_t *there = json_object_get(rb->objs, nkey);
        if (!there ||
            (strncmp(old, "blob" SEP, 5) == 0 && !json_is_true(json_object_get(there, "exists")))) {
            json_object_set_new(o, "name", json_string(name));
            json_object_set(rb->objs, nkey, o);
        }
        json_object_del(rb->objs, old);
    }
    json_decref(keys);
    return rb->err;
}

/* ---- replay: snapshots ---------------------------------------------------------- */

/* The part of the source the snapshot froze, from its rebuilt object. */
static json_t *frozen(rebuild_t *rb, const char *owner, const char *source)
{
    char key[1024], name[1024], coll[128];
    static const char conv[] = "/v1/conversations/", doc[] = "/v1/documents/";
    json_t *o = NULL;
    if (strncmp(source, conv, sizeof conv - 1) == 0) {
        conv_key(source + sizeof conv - 1, key, sizeof key, name, sizeof name);
        o = json_object_get(rb->objs, key);
        return is_ok(o)
                   ? json_pack("{s:O, s:O, s:O, s:O}", "version", json_object_get(o, "version"),
                               "title", json_object_get(o, "title"), "metadata",
                               json_object_get(o, "metadata"), "message_count",
                               json_object_get(o, "message_count"))
                   : NULL;
    }
    const char *rest = strncmp(source, doc, sizeof doc - 1) == 0 ? source + sizeof doc - 1 : NULL;
    const char *slash = rest ? strchr(rest, '/') : NULL;
    if (!slash || (size_t)(slash - rest) >= sizeof coll)
        return NULL;
    snprintf(coll, sizeof coll, "%.*s", (int)(slash - rest), rest);
    doc_key(owner, coll, slash + 1, key, sizeof key, name, sizeof name);
    o = json_object_get(rb->objs, key);
    return is_ok(o) ? json_pack("{s:O, s:O}", "version", json_object_get(o, "version"), "data",
                                json_object_get(o, "data"))
                    : NULL;
}

static int on_snapshot(rebuild_t *rb, json_t *ev, const char *type)
{
    char key[512], name[512];
    json_t *data = json_object_get(ev, "data");
    snprintf(key, sizeof key, "snapshot" SEP "%s", str(ev, "snapshot_id"));
    snprintf(name, sizeof name, "snapshot %s", str(ev, "snapshot_id"));
    if (strcmp(type, "snapshot.deleted") == 0) {
        json_object_del(rb->objs, key); /* the row goes */
        return 0;
    }
    json_t *o = touch(rb, key, name, true, json_object_get(data, "public") != NULL, type);
    if (!o || !is_ok(o))
        return 0;
    json_object_set_new(o, "owner", json_string(str(ev, "user")));
    json_object_set(o, "source", json_object_get(data, "source"));
    json_object_set(o, "kind", json_object_get(data, "kind"));
    json_object_set(o, "title", json_object_get(data, "title"));
    json_object_set(o, "public", json_object_get(data, "public"));
    json_object_set(o, "expires_at", json_object_get(data, "expires_at"));
    json_t *f = frozen(rb, str(ev, "user"), str(data, "source"));
    if (f)
        json_object_set_new(o, "frozen", f);
    return 0;
}

/* ---- replay: client streams ----------------------------------------------------- */

static int on_stream(rebuild_t *rb, json_t *ev, const char *type)
{
    char key[PARLEY_PATH_MAX + 32], name[PARLEY_PATH_MAX + 32];
    snprintf(key, sizeof key, "stream" SEP "%s", str(ev, "stream"));
    snprintf(name, sizeof name, "stream %s", str(ev, "stream"));
    bool closed = strcmp(type, "stream.closed") == 0;
    json_t *o = touch(rb, key, name, !closed, true, type);
    if (!o || !is_ok(o))
        return 0;
    json_object_set_new(o, "exists", json_boolean(strcmp(type, "stream.deleted") != 0));
    json_object_set_new(o, "closed", json_boolean(closed));
    return 0;
}

/* ---- the replay table ----------------------------------------------------------- */

/* One entry per event type: what replays it. */
static const struct replay_entry {
    const char *type;                                    /* event type */
    int (*apply)(rebuild_t *, json_t *ev, const char *); /* applies one event */
} replay[] = {
    {"document.created", on_document},
    {"document.updated", on_document},
    {"document.deleted", on_document},
    {"conversation.created", on_conversation},
    {"conversation.updated", on_conversation},
    {"conversation.deleted", on_conversation},
    {"message.created", on_message},
    {"branch.created", on_branch},
    {"branch.activated", on_branch},
    {"blob.created", on_blob},
    {"blob.deleted", on_blob},
    {"user.transferred", on_transfer},
    {"session.updated", on_session},
    {"snapshot.created", on_snapshot},
    {"snapshot.deleted", on_snapshot},
    {"stream.created", on_stream},
    {"stream.closed", on_stream},
    {"stream.deleted", on_stream},
};

static int replay_event(rebuild_t *rb, json_t *ev)
{
    const char *type = str(ev, "type");
    rb->events++;
    for (size_t i = 0; i < sizeof replay / sizeof replay[0]; i++)
        if (strcmp(type, replay[i].type) == 0)
            return replay[i].apply(rb, ev, type);
    rb->other++;
    return 0;
}

static int on_feed_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                         const void *data, size_t len)
{
    rebuild_t *rb = arg;
    (void)unit_end;
    char *buf = malloc(len + 2);
    if (!buf) {
        rb->err = PARLEY_ENOMEM;
        return 1;
    }
    buf[0] = '[';
    memcpy(buf + 1, data, len);
    buf[len + 1] = ']';
    json_error_t jerr;
    json_t *arr = json_loadb(buf, len + 2, 0, &jerr);
    free(buf);
    if (!json_is_array(arr)) {
        parley_verify_problem(rb->v, "the feed's event at [%llu, %llu) is not JSON",
                              (unsigned long long)start, (unsigned long long)end);
        json_decref(arr);
        return 0;
    }
    for (size_t i = 0; i < json_array_size(arr) && !rb->err; i++)
        rb->err = replay_event(rb, json_array_get(arr, i));
    json_decref(arr);
    return rb->err != 0;
}

static int read_feed(rebuild_t *rb)
{
    char path[PARLEY_PATH_MAX + 1];
    parley_stream_t st;
    uint64_t start = 0;
    parley_feed_path(NULL, path, sizeof path);
    int rc = parley_db_stream_get(rb->db, path, &st);
    if (rc == PARLEY_ENOTFOUND) {
        rb->nofeed = true; /* nothing written, or rows imported without it */
        return 0;
    }
    if (rc == 0)
        rc = parley_feed_start(rb->db, &st, &start);
    rb->trimmed = start > 0;
    if (rc == 0)
        rc = parley_db_chunk_scan(rb->db, st.id, start, on_feed_chunk, rb);
    return rc ? rc : rb->err;
}

/* ---- comparing rows ------------------------------------------------------------- */

/* The rebuilt object for a stored row, or NULL when it is not compared
 * (counted). Marks it seen. */
static json_t *rebuilt_for(rebuild_t *rb, const char *key, const char *name)
{
    json_t *o = json_object_get(rb->objs, key);
    if (!o) {
        if (rb->trimmed || rb->nofeed)
            rb->skipped++;
        else
            parley_verify_problem(rb->v, "%s: in the store but never in the feed", name);
        return NULL;
    }
    json_object_set_new(o, "seen", json_true());
    const char *state = str(o, "state");
    if (strcmp(state, "older") == 0)
        rb->older++;
    else if (strcmp(state, "trimmed") == 0)
        rb->skipped++;
    if (strcmp(state, "ok") != 0)
        return NULL;
    rb->rebuilt++;
    return o;
}

static bool truth(const char *s)
{
    return s && (strcmp(s, "1") == 0 || strcmp(s, "t") == 0 || strcmp(s, "true") == 0);
}

static json_t *num(const char *s)
{
    return s ? json_integer(strtoll(s, NULL, 10)) : json_null();
}

static json_t *text(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int row_document(rebuild_t *rb, const char *const *c, const size_t *lens)
{
    char key[1024], name[1024];
    doc_key(c[0] ? c[0] : "", c[1] ? c[1] : "", c[2] ? c[2] : "", key, sizeof key, name,
            sizeof name);
    json_t *o = rebuilt_for(rb, key, name);
    if (!o)
        return 0;
    same_new(rb, o, "version", num(c[3]));
    same_new(rb, o, "deleted", json_boolean(truth(c[4])));
    if (!truth(c[4]))
        same_new(rb, o, "data", stored(c[5], lens[5]));
    return 0;
}

/* A message of a conversation's log against the message.created events. */
typedef struct log_check {
    rebuild_t *rb;    /* the run */
    json_t *msgs;     /* seq → message from the events (borrowed) */
    const char *name; /* the log's name for the report */
    long compared;    /* messages compared */
} log_check_t;

static int on_log_chunk(void *arg, uint64_t start, uint64_t end, uint64_t unit_end,
                        const void *data, size_t len)
{
    log_check_t *lc = arg;
    (void)unit_end;
    (void)end;
    char *buf = malloc(len + 2);
    if (!buf) {
        lc->rb->err = PARLEY_ENOMEM;
        return 1;
    }
    buf[0] = '[';
    memcpy(buf + 1, data, len);
    buf[len + 1] = ']';
    json_error_t jerr;
    json_t *arr = json_loadb(buf, len + 2, JSON_ALLOW_NUL, &jerr);
    free(buf);
    json_t *msgs = lc->msgs;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char seqs[32];
        json_t *m = json_array_get(arr, i);
        snprintf(seqs, sizeof seqs, "%llu", (unsigned long long)(start + i + 1));
        json_t *want = json_object_get(msgs, seqs);
        if (!want)
            continue; /* before the retained feed (not rebuilt here) */
        lc->compared++;
        const char *fields[] = {"id", "role", "session_id"};
        for (size_t f = 0; f < 3; f++)
            if (!json_equal(json_object_get(want, fields[f]) ? json_object_get(want, fields[f])
                                                             : json_null(),
                            json_object_get(m, fields[f]) ? json_object_get(m, fields[f])
                                                          : json_null()))
                parley_verify_problem(lc->rb->v,
                                      "%s: message seq %s has %s %s in its log but %s in its "
                                      "message.created event",
                                      lc->name, seqs, fields[f], str(m, fields[f]),
                                      str(want, fields[f]));
        json_object_del(msgs, seqs);
    }
    json_decref(arr);
    return 0;
}

static int row_conversation(rebuild_t *rb, const char *const *c, const size_t *lens)
{
    char key[512], name[512];
    conv_key(c[0] ? c[0] : "", key, sizeof key, name, sizeof name);
    json_t *o = rebuilt_for(rb, key, name);
    if (!o)
        return 0;
    same_new(rb, o, "owner", text(c[1]));
    same_new(rb, o, "version", num(c[4]));
    same_new(rb, o, "deleted", json_boolean(truth(c[6])));
    if (truth(c[6]))
        return 0;
    same_new(rb, o, "title", text(c[2]));
    same_new(rb, o, "metadata", stored(c[3], lens[3]));
    same_new(rb, o, "message_count", num(c[5]));
    /* Its messages are compared with its log after the scan (a scan's
     * connection runs no other query meanwhile on PostgreSQL). */
    return json_array_append_new(rb->logs, json_string(c[0])) ? PARLEY_ENOMEM : 0;
}

/* Each message of the logs of the conversations compared, against its
 * message.created event; a message in the feed but not in its log. */
static int check_log(rebuild_t *rb, const char *path, json_t *msgs, const char *name)
{
    parley_stream_t log;
    int rc = parley_db_stream_get(rb->db, path, &log);
    if (rc == 0) {
        log_check_t lc = {rb, msgs, name, 0};
        rc = parley_db_chunk_scan(rb->db, log.id, 0, on_log_chunk, &lc);
    }
    if (rc && rc != PARLEY_ENOTFOUND)
        return rc;
    if (rb->err)
        return rb->err;
    const char *seq;
    json_t *m;
    json_object_foreach(msgs, seq, m)
    {
        parley_verify_problem(rb->v, "%s: message %s (seq %s) is in the feed but not in its log",
                              name, str(m, "id"), seq);
    }
    return 0;
}

/* Main's log, then each branch's log (core/branch.c names them). */
static int check_logs(rebuild_t *rb)
{
    char key[512], name[512], bname[1024], path[PARLEY_PATH_MAX + 1];
    size_t i;
    json_t *idv;
    json_array_foreach(rb->logs, i, idv)
    {
        const char *id = json_string_value(idv);
        conv_key(id, key, sizeof key, name, sizeof name);
        json_t *o = json_object_get(rb->objs, key);
        parley_conversation_stream_path(id, path, sizeof path);
        int rc = check_log(rb, path, json_object_get(o, "messages"), name);
        const char *bid;
        json_t *b;
        json_object_foreach(json_object_get(o, "branches"), bid, b)
        {
            if (rc)
                break;
            snprintf(path, sizeof path, PARLEY_BRANCH_PATH_PREFIX "%s", bid);
            snprintf(bname, sizeof bname, "%s branch %s", name, bid);
            rc = check_log(rb, path, json_object_get(b, "messages"), bname);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int row_session(rebuild_t *rb, const char *const *c, const size_t *lens)
{
    char key[512], name[512];
    snprintf(key, sizeof key, "session" SEP "%s", c[0] ? c[0] : "");
    snprintf(name, sizeof name, "session %s", c[0] ? c[0] : "");
    json_t *o = rebuilt_for(rb, key, name);
    if (!o)
        return 0;
    same_new(rb, o, "conversation_id", text(c[1]));
    same_new(rb, o, "owner", text(c[2]));
    same_new(rb, o, "message_id", text(c[3]));
    same_new(rb, o, "result_message_id", text(c[4]));
    same_new(rb, o, "status", text(c[5]));
    same_new(rb, o, "attempt", num(c[6]));
    same_new(rb, o, "max_attempts", num(c[7]));
    same_new(rb, o, "error", stored(c[8], lens[8]));
    same_new(rb, o, "request", stored(c[9], lens[9]));
    same_new(rb, o, "input", stored(c[10], lens[10]));
    return 0;
}

static int row_snapshot(rebuild_t *rb, const char *const *c, const size_t *lens)
{
    char key[512], name[512];
    snprintf(key, sizeof key, "snapshot" SEP "%s", c[0] ? c[0] : "");
    snprintf(name, sizeof name, "snapshot %s", c[0] ? c[0] : "");
    json_t *o = rebuilt_for(rb, key, name);
    if (!o)
        return 0;
    same_new(rb, o, "owner", text(c[1]));
    same_new(rb, o, "source", text(c[2]));
    same_new(rb, o, "kind", text(c[3]));
    same_new(rb, o, "title", text(c[4]));
    same_new(rb, o, "public", json_boolean(truth(c[5])));
    same_new(rb, o, "expires_at", c[6] ? parley_clock_json(strtoll(c[6], NULL, 10)) : json_null());
    json_t *f = json_object_get(o, "frozen");
    if (!f)
        return 0; /* its source was not rebuilt (older events or trimmed) */
    json_t *payload = stored(c[7], lens[7]);
    json_t *src = json_object_get(
        payload, strcmp(str(o, "kind"), "document") == 0 ? "document" : "conversation");
    const char *k;
    json_t *want;
    json_object_foreach(f, k, want)
    {
        json_t *got = json_object_get(src, k);
        if (!got || !json_equal(got, want)) {
            char a[SHOWN_TEXT + 8], b[SHOWN_TEXT + 8];
            shown(got, a, sizeof a);
            shown(want, b, sizeof b);
            parley_verify_problem(rb->v,
                                  "%s: its frozen %s is %s in the store but %s rebuilt from "
                                  "the feed",
                                  name, k, a, b);
        }
    }
    json_decref(payload);
    return 0;
}

static int row_stream(rebuild_t *rb, const char *const *c, const size_t *lens)
{
    char key[PARLEY_PATH_MAX + 32], name[PARLEY_PATH_MAX + 32];
    (void)lens;
    const char *path = c[0] ? c[0] : "";
    if (strncmp(path, "_parley/", 8) == 0)
        return 0; /* Parley's own (logs, token streams, forks, feeds): no events */
    snprintf(key, sizeof key, "stream" SEP "%s", path);
    snprintf(name, sizeof name, "stream %s", path);
    if (truth(c[2]) && !json_object_get(rb->objs, key))
        return 0; /* a deleted row kept for its forks, its events trimmed */
    json_t *o = rebuilt_for(rb, key, name);
    if (!o)
        return 0;
    same_new(rb, o, "exists", json_boolean(!truth(c[2])));
    if (!truth(c[2]))
        same_new(rb, o, "closed", json_boolean(truth(c[1])));
    return 0;
}

static int row_blob(rebuild_t *rb, const char *const *c, const size_t *lens)
{
    char key[1024], name[1024];
    (void)lens;
    blob_key(c[0] ? c[0] : "", c[1] ? c[1] : "", key, sizeof key, name, sizeof name);
    json_t *o = rebuilt_for(rb, key, name);
    if (!o)
        return 0;
    same_new(rb, o, "exists", json_true());
    same_new(rb, o, "size", num(c[2]));
    same_new(rb, o, "content_type", text(c[3]));
    return 0;
}

/* One entry per stored kind: its table, the columns compared, the row check. */
static const struct table_entry {
    const char *table; /* the store's table */
    const char *cols;  /* columns read, in the order the row check expects */
    const char *order; /* ORDER BY */
    int (*row)(rebuild_t *, const char *const *c, const size_t *lens); /* one row */
} tables[] = {
    {"documents", "owner, collection, id, version, deleted, data", "owner, collection, id",
     row_document},
    {"conversations", "id, owner, title, metadata, version, message_count, deleted", "id",
     row_conversation},
    {"sessions",
     "id, conversation_id, owner, message_id, result_id, status, attempt, max_attempts, error, "
     "request, input",
     "id", row_session},
    {"snapshots", "id, owner, source, kind, title, public, expires_ms, payload", "id",
     row_snapshot},
    {"streams", "path, closed, deleted", "id", row_stream},
    {"blobs", "owner, id, size, content_type", "owner, id", row_blob},
};

/* A table_scan callback: the row check of the table being read. */
typedef struct row_scan {
    rebuild_t *rb;                   /* the run */
    const struct table_entry *entry; /* the table */
} row_scan_t;

static int on_row(void *arg, int n, const char *const *c, const size_t *lens)
{
    row_scan_t *rs = arg;
    (void)n;
    int rc = rs->entry->row(rs->rb, c, lens);
    return rc ? rc : rs->rb->err;
}

/* A rebuilt object may have no row: deleted streams, snapshots' removed
 * rows, sessions of a deleted conversation. Any other is a problem. */
static void check_left(rebuild_t *rb)
{
    const char *key;
    json_t *o;
    json_object_foreach(rb->objs, key, o)
    {
        if (!is_ok(o) || json_is_true(json_object_get(o, "seen")))
            continue;
        if ((strncmp(key, "stream" SEP, 7) == 0 || strncmp(key, "blob" SEP, 5) == 0) &&
            !json_is_true(json_object_get(o, "exists")))
            continue;
        if (strncmp(key, "session" SEP, 8) == 0) {
            char ck[512], cn[512];
            conv_key(str(o, "conversation_id"), ck, sizeof ck, cn, sizeof cn);
            json_t *conv = json_object_get(rb->objs, ck);
            if (!conv || json_is_true(json_object_get(conv, "deleted")))
                continue; /* removed with its conversation */
        }
        parley_verify_problem(rb->v, "%s: rebuilt from the feed, but the store has no row",
                              str(o, "name"));
    }
}

int parley_rebuild_check(parley_db_t *db, parley_verify_t *v, void *arg)
{
    (void)arg;
    rebuild_t rb = {.db = db, .v = v, .objs = json_object(), .logs = json_array()};
    parley_verify_check_begin(v);
    int rc = rb.objs && rb.logs ? read_feed(&rb) : PARLEY_ENOMEM;
    if (rc)
        parley_verify_problem(v, "cannot read the feed: %s", parley_strerror(rc));
    for (size_t i = 0; rc == 0 && i < sizeof tables / sizeof tables[0]; i++) {
        row_scan_t rs = {&rb, &tables[i]};
        rc =
            parley_db_table_scan(db, tables[i].table, tables[i].cols, tables[i].order, on_row, &rs);
        if (rc)
            parley_verify_problem(v, "cannot compare the %s: %s", tables[i].table,
                                  parley_strerror(rc));
    }
    if (rc == 0) {
        rc = check_logs(&rb);
        if (rc)
            parley_verify_problem(v, "cannot compare the message logs: %s", parley_strerror(rc));
    }
    if (rc == 0)
        check_left(&rb);
    char counts[256];
    snprintf(counts, sizeof counts,
             "%ld events%s, %ld objects rebuilt and compared, %ld not rebuildable "
             "(older events), %ld skipped (feed trimmed)",
             rb.events,
             rb.trimmed  ? " (trimmed start)"
             : rb.nofeed ? " (no feed: imported without it)"
                         : "",
             rb.rebuilt, rb.older, rb.skipped);
    parley_verify_check_end(v, "rebuild", counts);
    json_decref(rb.objs);
    json_decref(rb.logs);
    return rc;
}
