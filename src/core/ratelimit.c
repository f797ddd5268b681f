/*
 * ratelimit.c — token buckets in a fixed table (see ratelimit.h).
 *
 * NOTES ON THE DESIGN
 *
 * A bucket is one number. Instead of a token count and a refill time, each
 * bucket keeps the "theoretical arrival time" `tat` of the generic cell
 * rate algorithm, which is a token bucket stated in time: with T the
 * interval per token and B the burst, the bucket is full when tat <= now
 * and holds (now + B*T - tat) / T tokens otherwise. A request at `now`
 * moves tat to max(tat, now) + T if that stays within now + B*T, else it is
 * refused and must wait until it would. One integer per bucket and no
 * refill arithmetic; and a bucket whose tat has passed is exactly a fresh
 * bucket, so it can be dropped at any time without changing any answer.
 *
 * The table is set-associative: `nsets` sets (a power of two) of WAYS
 * slots, each slot a 64-bit key hash and a tat. A key's hash picks its set
 * and is its identity within it. A new key takes an empty slot, else an
 * idle one (tat <= now: a full bucket, nothing lost), else the slot whose
 * bucket is nearest to full (smallest tat), which is counted as an
 * eviction. So the table never grows, idle buckets cost nothing, and the
 * only effect of churn beyond capacity is that a busy key may start over
 * with a full bucket.
 *
 * Keys are hashed with SipHash-2-4 (Aumasson and Bernstein), written here
 * from the paper's description: a keyed hash with a random per-process
 * key, so a client cannot choose user ids or addresses that land on
 * another's bucket or crowd one set (hash flooding). It costs about 20 ns
 * for a short key; OpenSSL's SipHash behind EVP_MAC costs about 300 ns a
 * call, most of it the provider API, which is why it is not used. Two keys
 * with the same 64-bit hash would share a bucket; with a secret key that
 * takes about 2^32 live keys to meet by chance in a set, and cannot be
 * aimed.
 *
 * Threads: sets are guarded by striped mutexes (NSTRIPES, each on its own
 * cache line); a request holds one for a scan of WAYS slots, so HTTP
 * worker threads rarely meet. The rules are read-only after create.
 *
 * Invariants:
 *   1. A slot with key 0 is empty; a used slot's key is never 0.
 *   2. Within a set a key occupies at most one slot.
 *   3. The table's memory is fixed at create: nsets * WAYS slots.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/ratelimit.h"

#define WAYS     8   /* slots per set */
#define NSTRIPES 256 /* mutexes guarding the sets */

typedef struct slot {
    uint64_t key; /* SipHash of (class, key); 0 = empty */
    int64_t tat;  /* theoretical arrival time, monotonic ns */
} slot_t;

typedef struct stripe {
    pthread_mutex_t lock;                        /* guards sets i with i % NSTRIPES */
    char pad[64 - sizeof(pthread_mutex_t) % 64]; /* one cache line per lock */
} stripe_t;

struct parley_ratelimit {
    parley_rate_rule_t rules[PARLEY_RATE_NCLASSES]; /* one rule per class (read-only) */
    uint64_t k0, k1;                                /* SipHash key (read-only) */
    size_t nsets;                                   /* sets, a power of two */
    slot_t *slots;                                  /* nsets * WAYS slots */
    stripe_t *stripes;                              /* NSTRIPES mutexes */
    atomic_ullong evictions;                        /* live buckets dropped */
};

/* ---- SipHash-2-4 ------------------------------------------------------ */

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- rules ------------------------------------------------------------- */

int parley_ratelimit_rule(const parley_rate_t *rate, const parley_rate_t *def, bool local_mode,
                          parley_rate_rule_t *out)
{
    parley_rate_t r = *rate;
    memset(out, 0, sizeof *out);
    if (r.period_s == 0) {
        if (local_mode || !def)
            return 0;         /* not set: off in local mode, or without a default */
        r.count = def->count; /* the default rate, with a burst that was set */
        r.period_s = def->period_s;
        if (r.burst == 0)
            r.burst = def->burst;
    }
    if (r.count == 0)
        return 0; /* off */
    /* At most an hour per period and a million tokens: interval * burst,
     * the furthest a bucket's time runs ahead, stays below 2^62 ns. */
    if (r.period_s > 3600 || r.burst > PARLEY_RATELIMIT_MAX_BURST)
        return PARLEY_EINVAL;
    uint32_t burst = r.burst ? r.burst : r.count;
    if (burst > PARLEY_RATELIMIT_MAX_BURST)
        burst = PARLEY_RATELIMIT_MAX_BURST;
    out->interval_ns = (int64_t)r.period_s * 1000000000LL / r.count;
    if (out->interval_ns < 1)
        out->interval_ns = 1;
    out->burst = burst;
    out->count = r.count;
    out->period_s = r.period_s;
    return 0;
}

bool parley_ratelimit_rule_is_on(const parley_rate_rule_t *rule)
{
    return rule->interval_ns > 0;
}

/* ---- the table ---------------------------------------------------------- */

int parley_ratelimit_create(const parley_rate_rule_t rules[PARLEY_RATE_NCLASSES], size_t buckets,
                            const unsigned char *seed, parley_ratelimit_t **out)
{
    int rc;
    unsigned char key[16];
    *out = NULL;
    if (buckets == 0 || buckets > ((size_t)1 << 30))
        return PARLEY_EINVAL;
    parley_ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl)
        return PARLEY_ENOMEM;
    memcpy(rl->rules, rules, sizeof rl->rules);
    rl->nsets = 1;
    while (rl->nsets * WAYS < buckets)
        rl->nsets <<= 1;
    if (seed) {
        memcpy(key, seed, sizeof key);
    } else if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) {
        rc = errno ? -errno : PARLEY_EINVAL;
        goto out_free;
    }
    rl->k0 = load_le64(key);
    rl->k1 = load_le64(key + 8);
    rc = PARLEY_ENOMEM;
    rl->slots = calloc(rl->nsets * WAYS, sizeof *rl->slots);
    if (!rl->slots)
        goto out_free;
    rl->stripes = calloc(NSTRIPES, sizeof *rl->stripes);
    if (!rl->stripes)
        goto out_free_slots;
    for (int i = 0; i < NSTRIPES; i++)
        pthread_mutex_init(&rl->stripes[i].lock, NULL);
    atomic_init(&rl->evictions, 0);
    *out = rl;
    return 0;

out_free_slots:
    free(rl->slots);
out_free:
    free(rl);
    return rc;
}

void parley_ratelimit_free(parley_ratelimit_t *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < NSTRIPES; i++)
        pthread_mutex_destroy(&rl->stripes[i].lock);
    free(rl->stripes);
    free(rl->slots);
    free(rl);
}

const parley_rate_rule_t *parley_ratelimit_rule_of(const parley_ratelimit_t *rl,
                                                   parley_rate_class_t cls)
{
    return &rl->rules[cls];
}

/* The slot for key in set (found, or taken over for it); lock held. */
static slot_t *slot_for(parley_ratelimit_t *rl, slot_t *set, uint64_t key, int64_t now_ns)
{
    slot_t *free_slot = NULL, *oldest = NULL;
    for (int i = 0; i < WAYS; i++) {
        slot_t *s = &set[i];
        if (s->key == key)
            return s;
        if (!free_slot && (s->key == 0 || s->tat <= now_ns))
            free_slot = s;
        if (!oldest || s->tat < oldest->tat)
            oldest = s;
    }
    if (!free_slot) {
        free_slot = oldest; /* the bucket nearest to full */
        atomic_fetch_add_explicit(&rl->evictions, 1, memory_order_relaxed);
    }
    free_slot->key = key;
    free_slot->tat = now_ns; /* a full bucket */
    return free_slot;
}

bool parley_ratelimit_admit(parley_ratelimit_t *rl, parley_rate_class_t cls, const void *key,
                            size_t len, int64_t now_ns, int64_t *wait_ns)
{
    const parley_rate_rule_t *rule = &rl->rules[cls];
    *wait_ns = 0;
    if (rule->interval_ns <= 0)
        return true;
    /* The class is folded into the hash key: one key, four buckets. */
    uint64_t h = siphash(rl->k0, rl->k1 ^ ((uint64_t)cls + 1), key, len);
    if (h == 0)
        h = 1;
    size_t set = (size_t)(h >> 32) & (rl->nsets - 1);
    pthread_mutex_t *lock = &rl->stripes[set % NSTRIPES].lock;
    bool ok;
    pthread_mutex_lock(lock);
    slot_t *s = slot_for(rl, &rl->slots[set * WAYS], h, now_ns);
    int64_t t = s->tat > now_ns ? s->tat : now_ns;
    int64_t next = t + rule->interval_ns;
    int64_t tolerance = rule->interval_ns * rule->burst;
    ok = next - now_ns <= tolerance;
    if (ok)
        s->tat = next;
    else
        *wait_ns = next - tolerance - now_ns;
    pthread_mutex_unlock(lock);
    return ok;
}

int64_t parley_ratelimit_retry_after_s(int64_t wait_ns)
{
    if (wait_ns <= 0)
        return 1;
    int64_t s = (wait_ns + 999999999LL) / 1000000000LL;
    return s < 1 ? 1 : s;
}

size_t parley_ratelimit_used(parley_ratelimit_t *rl, int64_t now_ns)
{
    size_t n = 0;
    for (size_t set = 0; set < rl->nsets; set++) {
        pthread_mutex_t *lock = &rl->stripes[set % NSTRIPES].lock;
        pthread_mutex_lock(lock);
        for (int i = 0; i < WAYS; i++) {
            const slot_t *s = &rl->slots[set * WAYS + i];
            if (s->key != 0 && s->tat > now_ns)
                n++;
        }
        pthread_mutex_unlock(lock);
    }
    return n;
}

uint64_t parley_ratelimit_evictions(const parley_ratelimit_t *rl)
{
    return atomic_load_explicit(&((parley_ratelimit_t *)rl)->evictions, memory_order_relaxed);
}
