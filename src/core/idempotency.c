/*
 * idempotency.c — the in-flight registry of Idempotency-Keys (see
 * idempotency.h; the stored records live in the store).
 *
 * A chained hash table of "owner\0key" strings under one mutex. Entries
 * exist only while their request is between parsing and its answer, so
 * the table stays as small as the number of requests in flight.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idempotency.h"
#include "parley/parley.h"
#include "util/clock.h"

#define NBUCKETS 1024

typedef struct entry {
    struct entry *next; /* chain */
    size_t len;         /* bytes in name */
    char name[];        /* owner "\0" key */
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *buckets[NBUCKETS];

static size_t make_name(const char *owner, const char *key, char *buf, size_t cap)
{
    size_t lo = strlen(owner), lk = strlen(key);
    if (lo + lk + 1 > cap)
        return 0;
    memcpy(buf, owner, lo);
    buf[lo] = '\0';
    memcpy(buf + lo + 1, key, lk);
    return lo + 1 + lk;
}

static unsigned hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return (unsigned)(h & (NBUCKETS - 1));
}

int parley_idem_begin(const char *owner, const char *key)
{
    char name[1024];
    size_t n = make_name(owner, key, name, sizeof name);
    if (!n)
        return PARLEY_EINVAL;
    unsigned b = hash(name, n);
    int rc = 0;
    pthread_mutex_lock(&lock);
    for (entry_t *e = buckets[b]; e; e = e->next) {
        if (e->len == n && memcmp(e->name, name, n) == 0) {
            rc = PARLEY_ECONFLICT;
            goto out;
        }
    }
    entry_t *e = malloc(sizeof *e + n);
    if (!e) {
        rc = PARLEY_ENOMEM;
        goto out;
    }
    e->len = n;
    memcpy(e->name, name, n);
    e->next = buckets[b];
    buckets[b] = e;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

void parley_idem_end(const char *owner, const char *key)
{
    char name[1024];
    size_t n = make_name(owner, key, name, sizeof name);
    if (!n)
        return;
    unsigned b = hash(name, n);
    pthread_mutex_lock(&lock);
    for (entry_t **pp = &buckets[b]; *pp; pp = &(*pp)->next) {
        entry_t *e = *pp;
        if (e->len == n && memcmp(e->name, name, n) == 0) {
            *pp = e->next;
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

/* ---- records ---------------------------------------------------------------- */

int parley_idem_find(parley_db_t *db, const parley_idem_key_t *k, parley_idem_found_t *found,
                     char **blob, size_t *len)
{
    int64_t created;
    return parley_idem_find_at(db, k, found, blob, len, &created);
}

int parley_idem_find_at(parley_db_t *db, const parley_idem_key_t *k, parley_idem_found_t *found,
                        char **blob, size_t *len, int64_t *created_ms)
{
    char fp[65];
    int64_t created = 0;
    char *resp = NULL;
    size_t n = 0;
    *found = PARLEY_IDEM_NONE;
    *blob = NULL;
    *len = 0;
    int rc = parley_db_idem_get(db, k->owner, k->key, fp, &created, &resp, &n);
    if (rc == PARLEY_ENOTFOUND || (rc == 0 && created < parley_clock_now_ms() - k->ttl_ms)) {
        free(resp);
        return 0;
    }
    if (rc)
        return rc;
    if (strcmp(fp, k->fingerprint) != 0) {
        free(resp);
        *found = PARLEY_IDEM_REUSED;
        return 0;
    }
    *found = PARLEY_IDEM_SAME;
    *blob = resp;
    *len = n;
    *created_ms = created;
    return 0;
}

/* ---- this thread's recent records --------------------------------------- */

#define CACHE_SLOTS    64          /* records kept per thread */
#define CACHE_MAX_BLOB (16 * 1024) /* larger records are not kept */
#define CACHE_KEEP_MS  60000       /* a copy is read again after this long */

typedef struct cached {
    uint64_t generation;             /* parley_idem_generation when it was read */
    char name[PARLEY_IDEM_NAME_MAX]; /* owner "\0" key; empty: a free slot */
    size_t name_len;                 /* bytes in name (0: free) */
    char fingerprint[65];            /* the record's */
    int64_t created_ms;              /* when it was recorded */
    int64_t kept_ms;                 /* when it was copied */
    char *blob;                      /* a copy of the record (malloc'd) */
    size_t len;                      /* bytes in blob */
} cached_t;

static _Atomic uint64_t generation = 1; /* bumped by parley_idem_forget_all */
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;       /* frees a thread's cache when it ends */
static _Thread_local cached_t *cache; /* CACHE_SLOTS slots, or NULL */

static void free_cache(void *arg)
{
    cached_t *c = arg;
    for (int i = 0; i < CACHE_SLOTS; i++)
        free(c[i].blob);
    free(c);
}

static void cache_init(void)
{
    if (pthread_key_create(&cache_key, free_cache) != 0)
        abort(); /* only a process out of keys gets here */
}

/* k's slot in this thread's cache (made on first use), or NULL; *n is the
 * name's length in name. */
static cached_t *slot_for(const parley_idem_key_t *k, char name[PARLEY_IDEM_NAME_MAX], size_t *n,
                          bool make)
{
    *n = make_name(k->owner, k->key, name, PARLEY_IDEM_NAME_MAX);
    if (!*n)
        return NULL;
    if (!cache && make) {
        pthread_once(&cache_once, cache_init);
        cached_t *c = calloc(CACHE_SLOTS, sizeof *c);
        if (!c || pthread_setspecific(cache_key, c) != 0) {
            free(c);
            return NULL;
        }
        cache = c;
    }
    return cache ? &cache[hash(name, *n) & (CACHE_SLOTS - 1)] : NULL;
}

parley_idem_found_t parley_idem_cached(const parley_idem_key_t *k, const char **blob, size_t *len)
{
    char name[PARLEY_IDEM_NAME_MAX];
    size_t n;
    cached_t *c = slot_for(k, name, &n, false);
    if (!c || c->name_len != n || memcmp(c->name, name, n) != 0)
        return PARLEY_IDEM_NONE;
    int64_t now = parley_clock_now_ms();
    /* forgotten, expired as find says, or kept long enough */
    if (c->generation != atomic_load(&generation) || c->created_ms < now - k->ttl_ms ||
        now - c->kept_ms >= CACHE_KEEP_MS || now < c->kept_ms) {
        free(c->blob);
        memset(c, 0, sizeof *c);
        return PARLEY_IDEM_NONE;
    }
    if (strcmp(c->fingerprint, k->fingerprint) != 0)
        return PARLEY_IDEM_REUSED;
    *blob = c->blob;
    *len = c->len;
    return PARLEY_IDEM_SAME;
}

uint64_t parley_idem_generation(void)
{
    return atomic_load(&generation);
}

void parley_idem_forget_all(void)
{
    atomic_fetch_add(&generation, 1);
}

void parley_idem_keep(const parley_idem_key_t *k, uint64_t generation_read, int64_t created_ms,
                      const char *blob, size_t len)
{
    char name[PARLEY_IDEM_NAME_MAX];
    size_t n;
    if (len > CACHE_MAX_BLOB || strlen(k->fingerprint) >= sizeof cache->fingerprint)
        return;
    cached_t *c = slot_for(k, name, &n, true);
    char *copy = c ? malloc(len ? len : 1) : NULL;
    if (!copy)
        return; /* not kept: the store is asked again */
    memcpy(copy, blob, len);
    free(c->blob);
    memcpy(c->name, name, n);
    c->name_len = n;
    snprintf(c->fingerprint, sizeof c->fingerprint, "%s", k->fingerprint);
    c->generation = generation_read;
    c->created_ms = created_ms;
    c->kept_ms = parley_clock_now_ms();
    c->blob = copy;
    c->len = len;
}

int parley_idem_record(parley_db_t *db, const parley_idem_key_t *k, const char *blob, size_t len)
{
    int64_t now = parley_clock_now_ms();
    /* Insert-if-absent-or-expired: the record is the arbiter when several
     * nodes run the same key at once. */
    return parley_db_idem_put(db, k->owner, k->key, k->fingerprint, now, now - k->ttl_ms, blob,
                              len);
}
