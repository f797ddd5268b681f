/*
 * rowcache.c — the SQLite writer's copy of the stream rows it has read
 * (rowcache.h says when rows go in and out).
 *
 * Layout: rows are appended to a fixed array; two open-addressing tables
 * (linear probing, twice as many slots as rows) find a row by id and by
 * path. A dropped row is marked dead in place (id 0) and its slots stay,
 * so probing never needs a rehash; the array is emptied (tables zeroed)
 * when it is full. Invariants:
 *   1. A live row is reachable from both tables; a lookup checks the key on
 *      the row itself, so a slot of a dead row is skipped, never answered.
 *   2. At most one live row per id (put drops the old one first).
 *
 * Threads: the writer's only.
 */
#include <stdlib.h>
#include <string.h>

#include "parley/parley.h"
#include "store/sqlite/rowcache.h"

#define SLOTS (2 * PARLEY_ROWCACHE_ROWS) /* slots per table (a power of two) */

struct parley_rowcache {
    parley_stream_t rows[PARLEY_ROWCACHE_ROWS]; /* the rows; id 0 = dead */
    int n;                                      /* rows used (live or dead) */
    uint16_t by_id[SLOTS];                      /* row index + 1, or 0 (empty) */
    uint16_t by_path[SLOTS];                    /* row index + 1, or 0 (empty) */
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
    memset(c->by_id, 0, sizeof c->by_id);
    memset(c->by_path, 0, sizeof c->by_path);
}

parley_stream_t *parley_rowcache_by_id(parley_rowcache_t *c, int64_t id)
{
    if (!c || id <= 0)
        return NULL;
    for (uint32_t i = hash_id(id) & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        uint16_t s = c->by_id[i];
        if (!s)
            return NULL;
        if (c->rows[s - 1].id == id)
            return &c->rows[s - 1];
    }
}

parley_stream_t *parley_rowcache_by_path(parley_rowcache_t *c, const char *path)
{
    if (!c)
        return NULL;
    for (uint32_t i = hash_path(path) & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        uint16_t s = c->by_path[i];
        if (!s)
            return NULL;
        parley_stream_t *r = &c->rows[s - 1];
        if (r->id && strcmp(r->path, path) == 0)
            return r;
    }
}

void parley_rowcache_drop(parley_rowcache_t *c, int64_t id)
{
    parley_stream_t *r = parley_rowcache_by_id(c, id);
    if (r)
        r->id = 0;
}

void parley_rowcache_put(parley_rowcache_t *c, const parley_stream_t *row)
{
    if (!c || row->id <= 0)
        return;
    parley_rowcache_drop(c, row->id);
    if (c->n == PARLEY_ROWCACHE_ROWS)
        parley_rowcache_clear(c);
    uint16_t s = (uint16_t)(++c->n);
    c->rows[s - 1] = *row;
    uint32_t i = hash_id(row->id) & (SLOTS - 1);
    while (c->by_id[i])
        i = (i + 1) & (SLOTS - 1);
    c->by_id[i] = s;
    i = hash_path(row->path) & (SLOTS - 1);
    while (c->by_path[i])
        i = (i + 1) & (SLOTS - 1);
    c->by_path[i] = s;
}
