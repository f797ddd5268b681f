/*
 * rowcache.c — the SQLite writer's copy of the stream rows it has read
 * (rowcache.h says when rows go in, change, and go out).
 *
 * Layout: entries are appended to a fixed array; two open-addressing tables
 * (linear probing, twice as many slots as entries) find an entry by id and
 * by path. An entry forgotten by a rollback is marked dead in place (id 0)
 * and its slots stay, so probing never needs a rehash; the array is emptied
 * (tables zeroed) by clear. The dirty entries are listed in dirty[].
 *
 * Savepoints: gen counts them. An entry changed for the first time since
 * the current savepoint keeps a copy of itself as it was (saved, saved_gen
 * = gen); an entry put since (born = gen) has no earlier state.
 *
 * Invariants:
 *   1. A live entry is reachable from both tables; a lookup checks the key
 *      on the entry itself, so a slot of a dead entry is skipped, never
 *      answered, and stale entries are never answered.
 *   2. At most one entry per id that is not dead.
 *   3. dirty[0..ndirty) lists exactly the entries with is_dirty set.
 *
 * Threads: the writer's only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "store/sqlite/rowcache.h"

#define SLOTS (2 * PARLEY_ROWCACHE_ROWS) /* slots per table (a power of two) */

/* The state of one row that a rollback to the savepoint restores. */
typedef struct state {
    parley_stream_t row; /* the row (id 0: dead) */
    bool is_dirty;       /* tail, touched_ms, stream_seq not yet written */
    bool is_stale;       /* changed by something else: not answered */
} state_t;

typedef struct entry {
    state_t cur;        /* as the writer's transaction sees it now */
    state_t saved;      /* as it was at the savepoint saved_gen */
    uint32_t saved_gen; /* the savepoint saved is from (0: none) */
    uint32_t born;      /* the savepoint it was put in */
} entry_t;

struct parley_rowcache {
    entry_t e[PARLEY_ROWCACHE_ROWS];      /* the entries */
    int n;                                /* entries used (live, stale or dead) */
    uint16_t by_id[SLOTS];                /* entry index + 1, or 0 (empty) */
    uint16_t by_path[SLOTS];              /* entry index + 1, or 0 (empty) */
    uint16_t dirty[PARLEY_ROWCACHE_ROWS]; /* indexes of the dirty entries */
    int ndirty;                           /* entries in dirty */
    uint32_t gen;                         /* the current savepoint (starts at 1) */
    bool saved_in_gen;                    /* some entry saved or born in gen */
};

static uint32_t hash_id(int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32);
}

static uint32_t hash_path(const char *p)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

int parley_rowcache_new(parley_rowcache_t **out)
{
    parley_rowcache_t *c = calloc(1, sizeof *c);
    if (!c)
        return PARLEY_ENOMEM;
    c->gen = 1;
    *out = c;
    return 0;
}

void parley_rowcache_free(parley_rowcache_t *c)
{
    free(c);
}

void parley_rowcache_clear(parley_rowcache_t *c)
{
    if (!c || c->n == 0)
        return;
    c->n = 0;
    c->ndirty = 0;
    c->saved_in_gen = false;
    memset(c->by_id, 0, sizeof c->by_id);
    memset(c->by_path, 0, sizeof c->by_path);
}

/* The entry of id that is not dead (stale or not), or NULL. */
static entry_t *find_id(parley_rowcache_t *c, int64_t id)
{
    if (!c || id <= 0)
        return NULL;
    for (uint32_t i = hash_id(id) & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        uint16_t s = c->by_id[i];
        if (!s)
            return NULL;
        if (c->e[s - 1].cur.row.id == id)
            return &c->e[s - 1];
    }
}

const parley_stream_t *parley_rowcache_by_id(parley_rowcache_t *c, int64_t id)
{
    entry_t *e = find_id(c, id);
    return e && !e->cur.is_stale ? &e->cur.row : NULL;
}

const parley_stream_t *parley_rowcache_by_path(parley_rowcache_t *c, const char *path)
{
    if (!c || c->n == 0)
        return NULL;
    for (uint32_t i = hash_path(path) & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        uint16_t s = c->by_path[i];
        if (!s)
            return NULL;
        const state_t *st = &c->e[s - 1].cur;
        if (st->row.id && !st->is_stale && strcmp(st->row.path, path) == 0)
            return &st->row;
    }
}

/* Keep e's state as it is before its first change since the savepoint. */
static void save(parley_rowcache_t *c, entry_t *e)
{
    if (e->saved_gen == c->gen || e->born == c->gen)
        return;
    e->saved = e->cur;
    e->saved_gen = c->gen;
    c->saved_in_gen = true;
}

static void mark_dirty(parley_rowcache_t *c, entry_t *e)
{
    if (!e->cur.is_dirty) {
        e->cur.is_dirty = true;
        c->dirty[c->ndirty++] = (uint16_t)(e - c->e);
    }
}

void parley_rowcache_put(parley_rowcache_t *c, const parley_stream_t *row)
{
    if (!c || row->id <= 0)
        return;
    entry_t *e = find_id(c, row->id);
    if (e) { /* read again (it was stale): in place, keeping its saved state */
        save(c, e);
        bool dirty = e->cur.is_dirty;
        e->cur.row = *row;
        e->cur.is_stale = false;
        e->cur.is_dirty = dirty; /* never dirty here: a read flushes first */
        return;
    }
    if (c->n == PARLEY_ROWCACHE_ROWS) {
        if (c->ndirty || c->saved_in_gen)
            return; /* a rollback may still need them: not kept */
        parley_rowcache_clear(c);
    }
    uint16_t s = (uint16_t)(++c->n);
    e = &c->e[s - 1];
    e->cur.row = *row;
    e->cur.is_dirty = e->cur.is_stale = false;
    e->saved_gen = 0;
    e->born = c->gen;
    c->saved_in_gen = true;
    uint32_t i = hash_id(row->id) & (SLOTS - 1);
    while (c->by_id[i])
        i = (i + 1) & (SLOTS - 1);
    c->by_id[i] = s;
    i = hash_path(row->path) & (SLOTS - 1);
    while (c->by_path[i])
        i = (i + 1) & (SLOTS - 1);
    c->by_path[i] = s;
}

void parley_rowcache_advance(parley_rowcache_t *c, int64_t id, uint64_t tail, int64_t touched_ms,
                             const char *stream_seq)
{
    entry_t *e = find_id(c, id);
    if (!e || e->cur.is_stale)
        return;
    save(c, e);
    e->cur.row.tail = tail;
    e->cur.row.touched_ms = touched_ms;
    if (stream_seq)
        snprintf(e->cur.row.stream_seq, sizeof e->cur.row.stream_seq, "%s", stream_seq);
    mark_dirty(c, e);
}

bool parley_rowcache_dirty(const parley_rowcache_t *c)
{
    return c && c->ndirty > 0;
}

int parley_rowcache_flush(parley_rowcache_t *c, parley_rowcache_write_fn write, void *arg)
{
    while (c && c->ndirty > 0) {
        entry_t *e = &c->e[c->dirty[c->ndirty - 1]];
        int rc = write(arg, &e->cur.row);
        if (rc)
            return rc;
        save(c, e);
        e->cur.is_dirty = false;
        c->ndirty--;
    }
    return 0;
}

void parley_rowcache_stale(parley_rowcache_t *c, int64_t id)
{
    entry_t *e = find_id(c, id);
    if (!e || e->cur.is_stale)
        return;
    save(c, e);
    e->cur.is_stale = true;
}

void parley_rowcache_savepoint(parley_rowcache_t *c)
{
    if (!c)
        return;
    c->gen++;
    c->saved_in_gen = false;
}

void parley_rowcache_rollback_to(parley_rowcache_t *c)
{
    if (!c || !c->saved_in_gen)
        return;
    c->ndirty = 0;
    for (int i = 0; i < c->n; i++) {
        entry_t *e = &c->e[i];
        if (!e->cur.row.id && e->saved_gen != c->gen)
            continue; /* dead */
        if (e->born == c->gen)
            e->cur.row.id = 0; /* read since the savepoint: forgotten */
        else if (e->saved_gen == c->gen)
            e->cur = e->saved;
        e->saved_gen = 0;
        if (e->cur.row.id && e->cur.is_dirty)
            c->dirty[c->ndirty++] = (uint16_t)i;
    }
    c->saved_in_gen = false;
}
