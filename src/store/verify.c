/*
 * verify.c — the store's invariants checked on a whole database (see
 * verify.h for the list).
 *
 * Every table is read through the table_scan op, in one read transaction
 * (a consistent snapshot even beside a running server): streams first (kept
 * in memory: id, path, owner, tail, fork), then chunks in (stream, end)
 * order, checked against them as they stream by; then conversations,
 * sessions, snapshots and idempotency records row by row. Memory is one
 * small record per stream and per conversation, and one chunk at a time.
 *
 * The checks only read. A problem is one line "  problem: ..." under its
 * check's line; past PROBLEMS_SHOWN in one check the rest are counted, not
 * printed.
 *
 * Threads: any thread, on a connection it owns.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "parley/parley.h"
#include "store/store.h"
#include "store/verify.h"

#define PROBLEMS_SHOWN 20 /* problem lines printed per check */

#define CONV_PREFIX "_parley/conv/" /* a conversation's message log */
#define FEED_PREFIX "_parley/feed/" /* a change feed (core/feed.h) */
#define CONV_SOURCE "/v1/conversations/"
#define DOC_SOURCE  "/v1/documents/"

/* One stream as the checks need it. */
typedef struct vstream {
    int64_t id;        /* stream id */
    char *path;        /* its path (owned) */
    char *owner;       /* its owner (owned) */
    bool json;         /* application/json: one message per position */
    bool conv;         /* a conversation's message log */
    bool feed;         /* a change feed (its start may be trimmed) */
    uint64_t tail;     /* recorded tail */
    int64_t fork_src;  /* source stream id, 0 if not a fork */
    uint64_t fork_pos; /* its first own position (0 if not a fork) */
    uint64_t end;      /* where the chunks seen so far end */
    uint64_t chunks;   /* chunks seen */
} vstream_t;

/* One conversation as the checks need it. */
typedef struct vconv {
    char *id;              /* conversation id (owned) */
    char *owner;           /* its owner (owned) */
    int64_t message_count; /* recorded count */
    bool deleted;          /* tombstoned */
} vconv_t;

/* The state of one verification. */
typedef struct parley_verify {
    parley_db_t *db;     /* the connection read */
    FILE *out;           /* the report */
    long problems;       /* problems found in all checks */
    long check_problems; /* problems found in the current check */
    vstream_t *st;       /* streams, by id (the scan's order) */
    size_t nst, capst;   /* used and allocated entries of st */
    vstream_t **by_path; /* st sorted by path */
    vstream_t *cur;      /* the stream of the last chunk (a cache) */
    uint64_t nchunks;    /* chunks scanned */
    vconv_t *cv;         /* conversations, sorted by id */
    size_t ncv, capcv;   /* used and allocated entries of cv */
    long rows;           /* rows of the table being scanned */
    long nmessages;      /* conversation messages seen */
} verify_t;

void parley_verify_check_begin(parley_verify_t *v)
{
    v->check_problems = 0;
    v->rows = 0;
}

static void check_end(verify_t *v, const char *name, const char *counts);

static void problem(verify_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vproblem(verify_t *v, const char *fmt, va_list ap)
{
    v->problems++;
    if (++v->check_problems > PROBLEMS_SHOWN)
        return;
    fputs("  problem: ", v->out);
    vfprintf(v->out, fmt, ap);
    fputc('\n', v->out);
}

static void problem(verify_t *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(v, fmt, ap);
    va_end(ap);
}

void parley_verify_problem(parley_verify_t *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(v, fmt, ap);
    va_end(ap);
}

/* Start a check: its summary line comes at its end (check_end). */
static void check_begin(verify_t *v)
{
    v->check_problems = 0;
    v->rows = 0;
}

void parley_verify_check_end(parley_verify_t *v, const char *name, const char *counts)
{
    check_end(v, name, counts);
}

static void check_end(verify_t *v, const char *name, const char *counts)
{
    if (v->check_problems > PROBLEMS_SHOWN)
        fprintf(v->out, "  ... and %ld more problems\n", v->check_problems - PROBLEMS_SHOWN);
    fprintf(v->out, "%-14s %s: %s\n", name, counts, v->check_problems ? "PROBLEMS" : "ok");
    fflush(v->out);
}

/* ---- column values --------------------------------------------------- */

static int64_t num(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

static bool truth(const char *s)
{
    return s && (strcmp(s, "1") == 0 || strcmp(s, "t") == 0 || strcmp(s, "true") == 0);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* The media type of ct (before ';', blanks trimmed) is application/json. */
static bool ctype_is_json(const char *ct)
{
    static const char json[] = "application/json";
    while (ct && (*ct == ' ' || *ct == '\t'))
        ct++;
    if (!ct || strncasecmp(ct, json, sizeof json - 1) != 0)
        return false;
    const char *rest = ct + sizeof json - 1;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    return *rest == '\0' || *rest == ';';
}

/* ---- streams and chunks ----------------------------------------------- */

static int on_stream(void *arg, int n, const char *const *c, const size_t *lens)
{
    verify_t *v = arg;
    (void)n;
    (void)lens;
    if (v->nst == v->capst) {
        size_t cap = v->capst ? v->capst * 2 : 256;
        vstream_t *p = realloc(v->st, cap * sizeof *p);
        if (!p)
            return PARLEY_ENOMEM;
        v->st = p;
        v->capst = cap;
    }
    vstream_t *s = &v->st[v->nst];
    *s = (vstream_t){.id = num(c[0]),
                     .path = dup_or_empty(c[1]),
                     .owner = dup_or_empty(c[2]),
                     .json = ctype_is_json(c[3]),
                     .tail = (uint64_t)num(c[4]),
                     .fork_src = num(c[5]),
                     .fork_pos = (uint64_t)num(c[6])};
    if (!s->path || !s->owner) {
        free(s->path);
        free(s->owner);
        return PARLEY_ENOMEM;
    }
    s->conv = strncmp(s->path, CONV_PREFIX, sizeof CONV_PREFIX - 1) == 0;
    s->feed = strncmp(s->path, FEED_PREFIX, sizeof FEED_PREFIX - 1) == 0;
    s->end = s->fork_pos;
    v->nst++;
    return 0;
}

static int by_id(const void *key, const void *elem)
{
    int64_t a = *(const int64_t *)key, b = ((const vstream_t *)elem)->id;
    return a < b ? -1 : a > b;
}

static vstream_t *stream_by_id(verify_t *v, int64_t id)
{
    if (v->cur && v->cur->id == id)
        return v->cur;
    return v->nst ? bsearch(&id, v->st, v->nst, sizeof *v->st, by_id) : NULL;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp((*(vstream_t *const *)a)->path, (*(vstream_t *const *)b)->path);
}

static vstream_t *stream_by_path(verify_t *v, const char *path)
{
    vstream_t key = {.path = (char *)path}, *kp = &key;
    vstream_t **hit =
        v->nst ? bsearch(&kp, v->by_path, v->nst, sizeof *v->by_path, cmp_path) : NULL;
    return hit ? *hit : NULL;
}

/* The messages of one JSON chunk: seq of a conversation's messages. */
static void check_json_chunk(verify_t *v, vstream_t *s, uint64_t start, uint64_t end,
                             const char *data, size_t len)
{
    char *buf = malloc(len + 2);
    if (!buf) {
        problem(v, "out of memory checking stream %s", s->path);
        return;
    }
    buf[0] = '[';
    memcpy(buf + 1, data, len);
    buf[len + 1] = ']';
    json_error_t err;
    json_t *arr = json_loadb(buf, len + 2, JSON_ALLOW_NUL, &err);
    free(buf);
    if (!arr || !json_is_array(arr)) {
        problem(v, "stream %s: the chunk at positions [%llu, %llu) is not valid JSON (%s)", s->path,
                (unsigned long long)start, (unsigned long long)end,
                arr ? "not a list of messages" : err.text);
        json_decref(arr);
        return;
    }
    size_t count = json_array_size(arr);
    if (count != end - start)
        problem(v, "stream %s: the chunk at positions [%llu, %llu) holds %zu messages", s->path,
                (unsigned long long)start, (unsigned long long)end, count);
    if (s->conv) {
        for (size_t i = 0; i < count; i++) {
            json_t *seq = json_object_get(json_array_get(arr, i), "seq");
            uint64_t want = start + i + 1;
            v->nmessages++;
            if (!json_is_integer(seq) || (uint64_t)json_integer_value(seq) != want)
                problem(v,
                        "conversation %s: the message at position %llu has seq %lld, expected "
                        "%llu (a gap or a duplicate)",
                        s->path + sizeof CONV_PREFIX - 1, (unsigned long long)(start + i),
                        json_is_integer(seq) ? (long long)json_integer_value(seq) : -1LL,
                        (unsigned long long)want);
        }
    }
    json_decref(arr);
}

static int on_chunk(void *arg, int n, const char *const *c, const size_t *lens)
{
    verify_t *v = arg;
    (void)n;
    int64_t sid = num(c[0]);
    uint64_t start = (uint64_t)num(c[1]), end = (uint64_t)num(c[2]), unit = (uint64_t)num(c[3]);
    v->nchunks++;
    vstream_t *s = stream_by_id(v, sid);
    if (!s) {
        problem(v,
                "a chunk at positions [%llu, %llu) belongs to stream id %lld, which does not "
                "exist",
                (unsigned long long)start, (unsigned long long)end, (long long)sid);
        return 0;
    }
    v->cur = s;
    if (s->chunks++ == 0 && s->feed && start > s->end)
        s->end = start; /* a feed trimmed by retention starts at its first chunk */
    if (end <= start || unit < end)
        problem(v, "stream %s: a chunk has bad positions [%llu, %llu) (append end %llu)", s->path,
                (unsigned long long)start, (unsigned long long)end, (unsigned long long)unit);
    else if (start > s->end)
        problem(v, "stream %s: positions [%llu, %llu) are missing (a gap between chunks)", s->path,
                (unsigned long long)s->end, (unsigned long long)start);
    else if (start < s->end)
        problem(v, "stream %s: chunks overlap at positions [%llu, %llu)", s->path,
                (unsigned long long)start, (unsigned long long)s->end);
    if (end > start) {
        if (s->json)
            check_json_chunk(v, s, start, end, c[4] ? c[4] : "", lens[4]);
        else if (lens[4] != end - start)
            problem(v, "stream %s: the chunk at positions [%llu, %llu) holds %zu bytes", s->path,
                    (unsigned long long)start, (unsigned long long)end, lens[4]);
    }
    if (end > s->end)
        s->end = end;
    return 0;
}

static int check_streams(verify_t *v)
{
    check_begin(v);
    int rc = parley_db_table_scan(v->db, "streams",
                                  "id, path, owner, content_type, tail, fork_src, fork_pos, "
                                  "deleted",
                                  "id", on_stream, v);
    if (rc == 0)
        v->by_path = malloc((v->nst ? v->nst : 1) * sizeof *v->by_path);
    if (rc == 0 && !v->by_path)
        rc = PARLEY_ENOMEM;
    if (rc == 0) {
        for (size_t i = 0; i < v->nst; i++)
            v->by_path[i] = &v->st[i];
        if (v->nst)
            qsort(v->by_path, v->nst, sizeof *v->by_path, cmp_path);
        rc = parley_db_table_scan(v->db, "chunks", "stream_id, start_pos, end_pos, unit_end, data",
                                  "stream_id, end_pos", on_chunk, v);
    }
    if (rc) {
        problem(v, "cannot read the streams and their chunks: %s", parley_strerror(rc));
    } else {
        for (size_t i = 0; i < v->nst; i++) {
            vstream_t *s = &v->st[i];
            if (s->end != s->tail)
                problem(v, "stream %s: its tail is %llu but its chunks end at %llu", s->path,
                        (unsigned long long)s->tail, (unsigned long long)s->end);
            if (s->fork_src) {
                vstream_t *src = stream_by_id(v, s->fork_src);
                if (!src)
                    problem(v, "stream %s: forked from stream id %lld, which does not exist",
                            s->path, (long long)s->fork_src);
                else if (s->fork_pos > src->tail)
                    problem(v, "stream %s: forked at %llu, past its source %s's tail %llu", s->path,
                            (unsigned long long)s->fork_pos, src->path,
                            (unsigned long long)src->tail);
            }
        }
    }
    char counts[128];
    snprintf(counts, sizeof counts, "%zu streams, %llu chunks", v->nst,
             (unsigned long long)v->nchunks);
    check_end(v, "streams", counts);
    return rc;
}

/* ---- conversations ---------------------------------------------------- */

static int on_conv(void *arg, int n, const char *const *c, const size_t *lens)
{
    verify_t *v = arg;
    (void)n;
    (void)lens;
    if (v->ncv == v->capcv) {
        size_t cap = v->capcv ? v->capcv * 2 : 256;
        vconv_t *p = realloc(v->cv, cap * sizeof *p);
        if (!p)
            return PARLEY_ENOMEM;
        v->cv = p;
        v->capcv = cap;
    }
    vconv_t *cv = &v->cv[v->ncv];
    *cv = (vconv_t){.id = dup_or_empty(c[0]),
                    .owner = dup_or_empty(c[1]),
                    .message_count = num(c[2]),
                    .deleted = truth(c[3])};
    if (!cv->id || !cv->owner) {
        free(cv->id);
        free(cv->owner);
        return PARLEY_ENOMEM;
    }
    v->ncv++;
    return 0;
}

static int cmp_conv(const void *a, const void *b)
{
    return strcmp(((const vconv_t *)a)->id, ((const vconv_t *)b)->id);
}

static vconv_t *conv_by_id(verify_t *v, const char *id)
{
    vconv_t key = {.id = (char *)id};
    return v->ncv ? bsearch(&key, v->cv, v->ncv, sizeof *v->cv, cmp_conv) : NULL;
}

static int check_conversations(verify_t *v)
{
    check_begin(v);
    int rc = parley_db_table_scan(v->db, "conversations", "id, owner, message_count, deleted", "id",
                                  on_conv, v);
    if (rc) {
        problem(v, "cannot read the conversations: %s", parley_strerror(rc));
    } else {
        if (v->ncv) /* the backend's collation aside */
            qsort(v->cv, v->ncv, sizeof *v->cv, cmp_conv);
        char path[PARLEY_PATH_MAX + 1];
        for (size_t i = 0; i < v->ncv; i++) {
            vconv_t *cv = &v->cv[i];
            snprintf(path, sizeof path, "%s%s", CONV_PREFIX, cv->id);
            vstream_t *log = stream_by_path(v, path);
            if (!log) {
                if (!cv->deleted)
                    problem(v, "conversation %s: its message log %s does not exist", cv->id, path);
                continue;
            }
            if (strcmp(log->owner, cv->owner) != 0)
                problem(v, "conversation %s: owned by '%s' but its message log by '%s'", cv->id,
                        cv->owner, log->owner);
            if (!cv->deleted && (uint64_t)cv->message_count != log->tail)
                problem(v,
                        "conversation %s: message_count is %lld but its log holds %llu "
                        "messages",
                        cv->id, (long long)cv->message_count, (unsigned long long)log->tail);
        }
        for (size_t i = 0; i < v->nst; i++)
            if (v->st[i].conv && !conv_by_id(v, v->st[i].path + sizeof CONV_PREFIX - 1))
                problem(v, "stream %s: a message log of no conversation", v->st[i].path);
    }
    char counts[128];
    snprintf(counts, sizeof counts, "%zu conversations, %ld messages", v->ncv, v->nmessages);
    check_end(v, "conversations", counts);
    return rc;
}

/* ---- sessions ----------------------------------------------------------- */

/* The states of core/session.h. */
static const char *const session_states[] = {
    "pending", "processing", "awaiting_input", "completed", "failed", "cancelled",
};

static int on_session(void *arg, int n, const char *const *c, const size_t *lens)
{
    verify_t *v = arg;
    (void)n;
    (void)lens;
    const char *id = c[0] ? c[0] : "", *conv = c[1] ? c[1] : "", *owner = c[2] ? c[2] : "";
    const char *status = c[3] ? c[3] : "";
    v->rows++;
    bool legal = false;
    for (size_t i = 0; i < sizeof session_states / sizeof session_states[0]; i++)
        legal = legal || strcmp(status, session_states[i]) == 0;
    if (!legal)
        problem(v, "session %s: status '%s' is not a session state", id, status);
    bool leased = c[4] != NULL && num(c[4]) >= 0;
    if (legal && strcmp(status, "processing") == 0 && !leased)
        problem(v, "session %s: processing without a lease", id);
    if (legal && strcmp(status, "processing") != 0 && leased)
        problem(v, "session %s: %s but holds a lease", id, status);
    vconv_t *cv = conv_by_id(v, conv);
    if (!cv)
        problem(v, "session %s: its conversation %s does not exist", id, conv);
    else if (strcmp(cv->owner, owner) != 0)
        problem(v, "session %s: owned by '%s' but its conversation %s by '%s'", id, owner, conv,
                cv->owner);
    return 0;
}

static int check_sessions(verify_t *v)
{
    check_begin(v);
    int rc = parley_db_table_scan(v->db, "sessions",
                                  "id, conversation_id, owner, status, lease_expires_ms", "id",
                                  on_session, v);
    if (rc)
        problem(v, "cannot read the sessions: %s", parley_strerror(rc));
    char counts[64];
    snprintf(counts, sizeof counts, "%ld sessions", v->rows);
    check_end(v, "sessions", counts);
    return rc;
}

/* ---- snapshots ---------------------------------------------------------- */

static int on_snapshot(void *arg, int n, const char *const *c, const size_t *lens)
{
    verify_t *v = arg;
    (void)n;
    (void)lens;
    const char *id = c[0] ? c[0] : "", *owner = c[1] ? c[1] : "", *source = c[2] ? c[2] : "";
    const char *kind = c[3] ? c[3] : "", *stream = c[4] ? c[4] : "";
    v->rows++;
    if (strcmp(kind, "conversation") == 0) {
        if (strncmp(source, CONV_SOURCE, sizeof CONV_SOURCE - 1) != 0) {
            problem(v, "snapshot %s: a conversation snapshot of '%s'", id, source);
            return 0;
        }
        if (!*stream)
            return 0; /* purged: its frozen log is gone with it */
        vstream_t *fork = stream_by_path(v, stream);
        if (!fork) {
            problem(v, "snapshot %s: its message log %s does not exist", id, stream);
            return 0;
        }
        if (strcmp(fork->owner, owner) != 0)
            problem(v, "snapshot %s: owned by '%s' but its message log by '%s'", id, owner,
                    fork->owner);
        char path[PARLEY_PATH_MAX + 1];
        snprintf(path, sizeof path, "%s%s", CONV_PREFIX, source + sizeof CONV_SOURCE - 1);
        vstream_t *src = fork->fork_src ? stream_by_id(v, fork->fork_src) : NULL;
        if (!src || strcmp(src->path, path) != 0)
            problem(v, "snapshot %s: its message log is not a fork of %s's log", id, source);
    } else if (strcmp(kind, "document") == 0) {
        if (strncmp(source, DOC_SOURCE, sizeof DOC_SOURCE - 1) != 0)
            problem(v, "snapshot %s: a document snapshot of '%s'", id, source);
    } else {
        problem(v, "snapshot %s: unknown kind '%s'", id, kind);
    }
    return 0;
}

static int check_snapshots(verify_t *v)
{
    check_begin(v);
    int rc = parley_db_table_scan(v->db, "snapshots", "id, owner, source, kind, stream", "id",
                                  on_snapshot, v);
    if (rc)
        problem(v, "cannot read the snapshots: %s", parley_strerror(rc));
    char counts[64];
    snprintf(counts, sizeof counts, "%ld snapshots", v->rows);
    check_end(v, "snapshots", counts);
    return rc;
}

/* ---- idempotency records ------------------------------------------------ */

/*
 * A stored response written before outcomes were (a rendered reply):
 * "STATUS\nCONTENT-TYPE\nHEADER-BYTES\n" then the headers and the body.
 * NULL when it parses, or why not.
 */
static const char *reply_problem(const char *p, size_t len)
{
    const char *end = p + len;
    const char *nl1 = memchr(p, '\n', len);
    if (!nl1)
        return "neither an outcome record nor a stored reply";
    for (const char *d = p; d < nl1; d++)
        if (!isdigit((unsigned char)*d))
            return "neither an outcome record nor a stored reply";
    long status = strtol(p, NULL, 10);
    if (nl1 - p != 3 || status < 200 || status > 299)
        return "the stored reply's status is not 2xx";
    const char *nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
    if (!nl2)
        return "the stored reply has no content type line";
    const char *nl3 = memchr(nl2 + 1, '\n', (size_t)(end - nl2 - 1));
    if (!nl3 || nl3 == nl2 + 1)
        return "the stored reply has no header length line";
    for (const char *d = nl2 + 1; d < nl3; d++)
        if (!isdigit((unsigned char)*d))
            return "the stored reply's header length is not a number";
    unsigned long long hlen = strtoull(nl2 + 1, NULL, 10);
    if (hlen > (unsigned long long)(end - nl3 - 1))
        return "the stored reply's headers run past the record";
    return NULL;
}

/*
 * A stored response: an outcome record (core/outcome.c's encodings: "O1\n"
 * and a JSON object with "done", "echo" and "meta"; or "O2\n", that object
 * without the body, "\n" and the body's JSON text, if any), or a reply
 * stored before outcomes were. NULL when it parses, or why not.
 */
static const char *response_problem(const char *p, size_t len)
{
    static const char magic[] = "O1\n";    /* an outcome record's first bytes */
    static const char magic_v2[] = "O2\n"; /* one whose body is kept as text */
    size_t m = sizeof magic - 1;
    bool v2 = len >= m && memcmp(p, magic_v2, m) == 0;
    if (!v2 && (len < m || memcmp(p, magic, m) != 0))
        return reply_problem(p, len);
    const char *end = v2 ? memchr(p + m, '\n', len - m) : p + len;
    if (!end)
        return "the outcome record has no line after its object";
    json_error_t err;
    json_t *rec = json_loadb(p + m, (size_t)(end - (p + m)), 0, &err);
    const char *why = NULL;
    if (!rec || !json_is_object(rec))
        why = "the outcome record is not a JSON object";
    else if (!json_is_integer(json_object_get(rec, "done")))
        why = "the outcome record has no integer \"done\"";
    else if (!json_is_object(json_object_get(rec, "echo")) ||
             !json_is_object(json_object_get(rec, "meta")))
        why = "the outcome record lacks its \"echo\" or \"meta\" object";
    json_decref(rec);
    if (!why && v2 && end + 1 < p + len) {
        json_t *body = json_loadb(end + 1, (size_t)(p + len - (end + 1)),
                                  JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!body)
            why = "the outcome record's body is not JSON";
        json_decref(body);
    }
    return why;
}

static int on_idem(void *arg, int n, const char *const *c, const size_t *lens)
{
    verify_t *v = arg;
    (void)n;
    v->rows++;
    const char *owner = c[0] ? c[0] : "", *key = c[1] ? c[1] : "", *fp = c[2] ? c[2] : "";
    bool hex = strlen(fp) == 64;
    for (const char *d = fp; hex && *d; d++)
        hex = isxdigit((unsigned char)*d);
    if (!hex)
        problem(v, "idempotency record ('%s', key '%s'): the fingerprint is not 64 hex digits",
                owner, key);
    const char *why = c[3] ? response_problem(c[3], lens[3]) : "no response";
    if (why)
        problem(v, "idempotency record ('%s', key '%s'): the stored response does not parse (%s)",
                owner, key, why);
    return 0;
}

static int check_idempotency(verify_t *v)
{
    check_begin(v);
    int rc = parley_db_table_scan(v->db, "idempotency", "owner, key, fingerprint, response",
                                  "owner, key", on_idem, v);
    if (rc)
        problem(v, "cannot read the idempotency records: %s", parley_strerror(rc));
    char counts[64];
    snprintf(counts, sizeof counts, "%ld records", v->rows);
    check_end(v, "idempotency", counts);
    return rc;
}

/* ---- blobs ------------------------------------------------------------------ */

/*
 * Blobs (core/blob.h): each blob row's parts are 0, 1, ... in order, full
 * but the last, and their bytes add up to its size and hash to its id;
 * parts belong to a blob or to a staged upload; every reference names a
 * blob of its owner. Memory: one small record per blob and per staged
 * upload, one part at a time.
 */
typedef struct vblob {
    char *owner;    /* owner (owned) */
    char *id;       /* hex SHA-256 (owned) */
    int64_t upload; /* its parts */
    int64_t size;   /* recorded size */
    bool seen;      /* its parts were checked */
} vblob_t;

typedef struct vblobs {
    verify_t *v;               /* the verification */
    vblob_t *b;                /* blobs, by upload (the scan's order) */
    size_t n, cap;             /* used and allocated entries of b */
    vblob_t **by_key;          /* b sorted by (owner, id) */
    int64_t *staged;           /* staged uploads, in order */
    size_t nstaged, capstaged; /* used and allocated entries of staged */
    int64_t cur;               /* the upload of the parts being read, 0 before */
    vblob_t *blob;             /* its blob, or NULL */
    EVP_MD_CTX *sha;           /* the hash of its parts so far */
    int64_t next_n;            /* the part number expected next */
    int64_t bytes;             /* bytes of its parts so far */
    bool short_part;           /* a part before the last was not full */
    long parts, refs;          /* rows scanned */
} vblobs_t;

static int on_blob(void *arg, int n, const char *const *c, const size_t *lens)
{
    vblobs_t *vb = arg;
    (void)n, (void)lens;
    if (vb->n == vb->cap) {
        size_t cap = vb->cap ? vb->cap * 2 : 64;
        vblob_t *b = realloc(vb->b, cap * sizeof *b);
        if (!b)
            return PARLEY_ENOMEM;
        vb->b = b;
        vb->cap = cap;
    }
    vblob_t *b = &vb->b[vb->n];
    b->owner = dup_or_empty(c[0]);
    b->id = dup_or_empty(c[1]);
    b->upload = num(c[2]);
    b->size = num(c[3]);
    b->seen = false;
    if (!b->owner || !b->id) {
        free(b->owner);
        free(b->id);
        return PARLEY_ENOMEM;
    }
    vb->n++;
    return 0;
}

static int on_staged(void *arg, int n, const char *const *c, const size_t *lens)
{
    vblobs_t *vb = arg;
    (void)n, (void)lens;
    if (vb->nstaged == vb->capstaged) {
        size_t cap = vb->capstaged ? vb->capstaged * 2 : 16;
        int64_t *s = realloc(vb->staged, cap * sizeof *s);
        if (!s)
            return PARLEY_ENOMEM;
        vb->staged = s;
        vb->capstaged = cap;
    }
    vb->staged[vb->nstaged++] = num(c[0]);
    return 0;
}

static vblob_t *blob_by_upload(vblobs_t *vb, int64_t upload)
{
    size_t lo = 0, hi = vb->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vb->b[mid].upload < upload)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < vb->n && vb->b[lo].upload == upload ? &vb->b[lo] : NULL;
}

static bool is_staged(vblobs_t *vb, int64_t upload)
{
    for (size_t lo = 0, hi = vb->nstaged; lo < hi;) {
        size_t mid = (lo + hi) / 2;
        if (vb->staged[mid] == upload)
            return true;
        if (vb->staged[mid] < upload)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* The parts of the current upload are all read: check them against its blob. */
static void blob_parts_end(vblobs_t *vb)
{
    vblob_t *b = vb->blob;
    if (!vb->cur || !b)
        return;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * 32 + 1];
    EVP_DigestFinal_ex(vb->sha, md, &mdlen);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    b->seen = true;
    if (vb->bytes != b->size)
        problem(vb->v, "blob %s of '%s': its parts hold %lld bytes, the row says %lld", b->id,
                b->owner, (long long)vb->bytes, (long long)b->size);
    else if (strcmp(hex, b->id) != 0)
        problem(vb->v, "blob %s of '%s': the SHA-256 of its bytes is %s", b->id, b->owner, hex);
    if (vb->short_part)
        problem(vb->v, "blob %s of '%s': a part before the last is not %d bytes", b->id, b->owner,
                PARLEY_BLOB_PART_BYTES);
}

static int on_blob_part(void *arg, int n, const char *const *c, const size_t *lens)
{
    vblobs_t *vb = arg;
    (void)n;
    int64_t upload = num(c[0]), part = num(c[1]);
    vb->parts++;
    if (upload != vb->cur) {
        blob_parts_end(vb);
        vb->cur = upload;
        vb->blob = blob_by_upload(vb, upload);
        vb->next_n = 0;
        vb->bytes = 0;
        vb->short_part = false;
        EVP_DigestInit_ex(vb->sha, EVP_sha256(), NULL);
        if (!vb->blob && !is_staged(vb, upload))
            problem(vb->v, "blob parts of upload %lld belong to no blob and no staged upload",
                    (long long)upload);
    }
    if (!vb->blob)
        return 0;
    if (part != vb->next_n)
        problem(vb->v, "blob %s of '%s': part %lld where part %lld was expected", vb->blob->id,
                vb->blob->owner, (long long)part, (long long)vb->next_n);
    if (vb->next_n > 0 && vb->bytes != vb->next_n * (int64_t)PARLEY_BLOB_PART_BYTES)
        vb->short_part = true;
    vb->next_n = part + 1;
    vb->bytes += (int64_t)lens[2];
    if (c[2])
        EVP_DigestUpdate(vb->sha, c[2], lens[2]);
    return 0;
}

static int cmp_blob_key(const void *a, const void *b)
{
    const vblob_t *x = *(const vblob_t *const *)a, *y = *(const vblob_t *const *)b;
    int d = strcmp(x->owner, y->owner);
    return d ? d : strcmp(x->id, y->id);
}

static int on_blob_ref(void *arg, int n, const char *const *c, const size_t *lens)
{
    vblobs_t *vb = arg;
    (void)n, (void)lens;
    vb->refs++;
    vblob_t key = {.owner = (char *)(c[0] ? c[0] : ""), .id = (char *)(c[1] ? c[1] : "")};
    vblob_t *kp = &key;
    if (!bsearch(&kp, vb->by_key, vb->n, sizeof *vb->by_key, cmp_blob_key))
        problem(vb->v, "blob reference from '%s' names blob %s, which '%s' does not have",
                c[2] ? c[2] : "", key.id, key.owner);
    return 0;
}

static int check_blobs(verify_t *v)
{
    vblobs_t vb = {.v = v};
    check_begin(v);
    vb.sha = EVP_MD_CTX_new();
    int rc = vb.sha ? 0 : PARLEY_ENOMEM;
    if (rc == 0)
        rc =
            parley_db_table_scan(v->db, "blobs", "owner, id, upload, size", "upload", on_blob, &vb);
    if (rc == 0)
        rc = parley_db_table_scan(v->db, "blob_uploads", "upload", "upload", on_staged, &vb);
    if (rc == 0)
        rc = parley_db_table_scan(v->db, "blob_parts", "upload, n, data", "upload, n", on_blob_part,
                                  &vb);
    if (rc == 0) {
        blob_parts_end(&vb);
        for (size_t i = 0; i < vb.n; i++)
            if (!vb.b[i].seen)
                problem(v, "blob %s of '%s': no parts", vb.b[i].id, vb.b[i].owner);
        vb.by_key = malloc((vb.n ? vb.n : 1) * sizeof *vb.by_key);
        rc = vb.by_key ? 0 : PARLEY_ENOMEM;
    }
    if (rc == 0) {
        for (size_t i = 0; i < vb.n; i++)
            vb.by_key[i] = &vb.b[i];
        qsort(vb.by_key, vb.n, sizeof *vb.by_key, cmp_blob_key);
        rc = parley_db_table_scan(v->db, "blob_refs", "owner, blob_id, src", "owner, blob_id",
                                  on_blob_ref, &vb);
    }
    if (rc)
        problem(v, "cannot read the blobs: %s", parley_strerror(rc));
    char counts[96];
    snprintf(counts, sizeof counts, "%zu blobs, %ld parts, %ld references", vb.n, vb.parts,
             vb.refs);
    check_end(v, "blobs", counts);
    for (size_t i = 0; i < vb.n; i++) {
        free(vb.b[i].owner);
        free(vb.b[i].id);
    }
    free(vb.b);
    free(vb.by_key);
    free(vb.staged);
    EVP_MD_CTX_free(vb.sha);
    return rc;
}

/* ---- the report ---------------------------------------------------------- */

static void on_integrity(void *arg, const char *what)
{
    problem(arg, "%s", what);
}

int parley_store_verify(parley_db_t *db, FILE *out, long *problems)
{
    return parley_store_verify_with(db, out, NULL, NULL, problems);
}

int parley_store_verify_with(parley_db_t *db, FILE *out, parley_verify_check_fn extra, void *arg,
                             long *problems)
{
    verify_t v = {.db = db, .out = out};
    int64_t version = 0, mine = 0;
    int rc = parley_db_schema_version(db, &version, &mine);
    if (rc == 0)
        fprintf(out, "%-14s version %lld (this parley writes %lld)\n", "schema", (long long)version,
                (long long)mine);
    check_begin(&v);
    int err = parley_db_integrity(db, on_integrity, &v);
    if (err)
        problem(&v, "the integrity check could not run: %s", parley_strerror(err));
    check_end(&v, "integrity", "whole database");

    err = parley_db_begin(db); /* one snapshot for every table */
    if (err) {
        problem(&v, "cannot start a read transaction: %s", parley_strerror(err));
    } else {
        rc = check_streams(&v);
        int r2 = check_conversations(&v);
        int r3 = check_sessions(&v);
        int r4 = check_snapshots(&v);
        int r5 = check_idempotency(&v);
        int r6 = check_blobs(&v);
        int r7 = extra ? extra(db, &v, arg) : 0;
        rc = rc ? rc : r2 ? r2 : r3 ? r3 : r4 ? r4 : r5 ? r5 : r6 ? r6 : r7;
        parley_db_commit(db);
    }
    if (!err)
        err = rc;
    for (size_t i = 0; i < v.nst; i++) {
        free(v.st[i].path);
        free(v.st[i].owner);
    }
    for (size_t i = 0; i < v.ncv; i++) {
        free(v.cv[i].id);
        free(v.cv[i].owner);
    }
    free(v.st);
    free(v.by_path);
    free(v.cv);
    fprintf(out, "%s: %ld problem%s found\n", v.problems ? "FAILED" : "OK", v.problems,
            v.problems == 1 ? "" : "s");
    fflush(out);
    *problems = v.problems;
    return err;
}
