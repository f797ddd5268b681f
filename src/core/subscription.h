/*
 * subscription.h — subscriptions: durable cursors over streams that wake
 * workers by webhook or through a wake stream (PROTOCOL.md §6, §7).
 *
 * A subscription links stream paths — those its glob pattern matches
 * (codec/glob.h) and those named explicitly — each with an acked offset.
 * When a linked stream's tail passes its acked offset the subscription has
 * pending work, and an idle subscription is woken: its generation grows by
 * one, a new wake id is drawn, and the wake is delivered (a webhook POST by
 * the delivery thread, server/webhook.c, or a wake event appended to the wake
 * stream). The worker answers by callback (webhook) or claims, acks and
 * releases (pull-wake); every such request is fenced by a token, the
 * generation and the wake id. The state machine is drawn in subscription.c.
 *
 * Everything is stored (store.h: subscriptions, subscription_streams,
 * server_keys) and changed only on the writer thread, in the transaction of
 * the request or maintenance pass that changes it; stream writes call the
 * stream hooks below in their own savepoint, so a link, its wake and the
 * append that caused them commit together.
 *
 * Rules return 0 with an outcome (core/outcome.h), or a negative storage
 * error. Refusals carry the protocol's error codes (SUBSCRIPTION_NOT_FOUND,
 * FENCED, ...) in o->code; an object body of a refusal holds extra members
 * of the error object (ALREADY_CLAIMED's current_holder and generation).
 * Outcomes name the streams to wake after the commit: wake streams that
 * got a wake event, and PARLEY_SUBSCRIPTION_DOORBELL when a webhook
 * delivery became due (the delivery thread waits on it in the hub).
 *
 * Ownership: specs and views are borrowed. Threads: see each function.
 */
#ifndef PARLEY_CORE_SUBSCRIPTION_H
#define PARLEY_CORE_SUBSCRIPTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/keyring.h"
#include "core/outcome.h"
#include "store/store.h"

#define PARLEY_SUBSCRIPTION_DOORBELL ((int64_t)-1) /* hub id: a webhook delivery is due */

#define PARLEY_SUB_LEASE_DEFAULT_MS 30000  /* lease_ttl_ms when not given */
#define PARLEY_SUB_LEASE_MIN_MS     1000   /* shortest lease */
#define PARLEY_SUB_LEASE_MAX_MS     600000 /* longest lease (10 minutes) */
#define PARLEY_SUB_MAX_STREAMS      1000   /* explicit streams in one request */
#define PARLEY_SUB_MAX_LINKS        100000 /* streams one subscription may link */
#define PARLEY_SUB_TOKEN_TTL_S      86400  /* lifetime of a callback or claim token */
#define PARLEY_SUB_RETRY_MIN_MS     1000   /* first webhook retry delay */
#define PARLEY_SUB_RETRY_MAX_MS     60000  /* longest webhook retry delay */

/* A subscription's configuration, as PUT gives it (validated and
 * normalized by the API layer: paths without leading or trailing '/',
 * streams sorted and unique). */
typedef struct parley_sub_spec {
    const char *type;           /* "webhook" or "pull-wake" */
    const char *pattern;        /* glob, or "" */
    const char *webhook_url;    /* webhook: the URL (checked by codec/urlpolicy.h), else "" */
    const char *wake_stream;    /* pull-wake: the wake stream's path, else "" */
    const char *description;    /* free text, or "" */
    int64_t lease_ttl_ms;       /* PARLEY_SUB_LEASE_MIN_MS .. MAX_MS */
    const char *const *streams; /* explicit stream paths */
    size_t nstreams;            /* entries in streams */
} parley_sub_spec_t;

/* How a response names URLs and keys. */
typedef struct parley_sub_view {
    const char *root_url; /* the stream root as the caller sees it, "http://host/v1/stream" */
    const char *kid;      /* the webhook signing key's id */
} parley_sub_view_t;

/* What a worker sends to /callback, /ack or /release. */
typedef struct parley_sub_ack {
    const char *stream; /* the stream path acked */
    const char *offset; /* the offset, as sent */
} parley_sub_ack_t;

typedef enum {
    PARLEY_SUB_CALLBACK, /* webhook: POST .../callback */
    PARLEY_SUB_ACK,      /* pull-wake: POST .../ack */
    PARLEY_SUB_RELEASE,  /* pull-wake: POST .../release */
} parley_sub_action_t;

typedef struct parley_sub_report {
    const char *token;            /* the bearer token, or NULL */
    const char *wake_id;          /* the wake it is for, or NULL */
    bool has_generation;          /* generation was sent */
    int64_t generation;           /* its generation */
    const parley_sub_ack_t *acks; /* offsets processed */
    size_t nacks;                 /* entries in acks */
    bool done;                    /* the wake's work is finished */
} parley_sub_report_t;

/* How a webhook POST went (server/webhook.c). */
typedef enum {
    PARLEY_SUB_DELIVERY_FAILED, /* no 2xx: retry with backoff */
    PARLEY_SUB_DELIVERY_OK,     /* 2xx: the receiver holds the wake */
    PARLEY_SUB_DELIVERY_DONE,   /* 2xx with {"done": true}: ack the snapshot */
} parley_sub_delivery_t;

/* SHA-256 hex of the normalized configuration (the re-confirmation
 * check of §6.2). Any thread. */
int parley_subscription_hash(const parley_sub_spec_t *spec, char out[65]);

/* Writer thread: PUT. 201 created (matching streams linked at their tails),
 * 200 re-confirmed (same configuration), 409 SUBSCRIPTION_ALREADY_EXISTS,
 * 409 WAKE_STREAM_NOT_ADMIN (the wake stream exists and is not the
 * admin's, parley_stream_is_admin_owned). */
int parley_subscription_put(parley_db_t *db, const char *id, const parley_sub_spec_t *spec,
                            const parley_sub_view_t *view, int64_t now_ms, parley_outcome_t *out);
/* Any thread (a reader inside a read transaction): GET. 200 or 404. */
int parley_subscription_get(parley_db_t *db, const char *id, const parley_sub_view_t *view,
                            parley_outcome_t *out);
/* Writer thread: DELETE. 204, or 404. The row and its links go at once, so
 * a later callback, ack or release finds nothing and moves no cursor. */
int parley_subscription_delete(parley_db_t *db, const char *id, parley_outcome_t *out);
/* Writer thread: add explicit links (at the streams' tails) / remove one
 * (a glob link stays). 204 or 404. */
int parley_subscription_add_streams(parley_db_t *db, const char *id, const char *const *paths,
                                    size_t n, int64_t now_ms, parley_outcome_t *out);
int parley_subscription_remove_stream(parley_db_t *db, const char *id, const char *path,
                                      parley_outcome_t *out);

/* Writer thread: a pull-wake claim by worker. 200 with the wake, its
 * token and the streams; 409 ALREADY_CLAIMED or NO_PENDING_WORK; 404; 400
 * for a webhook subscription. */
int parley_subscription_claim(parley_db_t *db, const char *id, const char *worker,
                              const parley_keyring_t *kr, int64_t now_ms, parley_outcome_t *out);
/* Writer thread: a callback, ack or release. 200 {ok, next_wake} (204 for
 * release); 401 TOKEN_INVALID / TOKEN_EXPIRED; 409 FENCED or
 * INVALID_OFFSET; 404; 400 for the other delivery type. */
int parley_subscription_report(parley_db_t *db, const char *id, parley_sub_action_t action,
                               const parley_sub_report_t *rep, const parley_keyring_t *kr,
                               int64_t now_ms, parley_outcome_t *out);

/* Writer thread: the outcome of the POST of wake (gen, wake_id). Ignored
 * when that wake is no longer the one being delivered. A failure when the
 * wake was issued max_age_ms or more before now_ms (max_age_ms > 0) gives
 * the wake up: no more POSTs, no lease, status "failed", until the
 * receiver calls back or a re-confirming PUT restarts it; *given_up then
 * says so (false otherwise). */
int parley_subscription_delivered(parley_db_t *db, const char *id, int64_t gen, const char *wake_id,
                                  parley_sub_delivery_t result, int64_t now_ms, int64_t max_age_ms,
                                  bool *given_up, parley_outcome_t *out);

/*
 * Reader: the delivery of subscription id that is due, for the delivery
 * thread: *body (new malloc'd JSON text, *len bytes), the URL to POST to
 * (PARLEY_SUB_URL_MAX + 1 bytes), the wake's generation and id
 * (PARLEY_SUB_WAKE_MAX + 1 bytes). The body's callback_url starts with
 * root_url ("https://chat.example.com/v1/stream", from --public-url) when
 * it is not NULL, else with the root stored when the subscription was
 * created. PARLEY_ENOTFOUND when nothing is due. db must be inside a read
 * transaction.
 */
int parley_subscription_delivery(parley_db_t *db, const char *id, const parley_keyring_t *kr,
                                 const char *root_url, int64_t now_ms, char **body, size_t *len,
                                 char *url, int64_t *gen, char *wake_id);

/* Writer maintenance: end leases that ran out (waking again when work is
 * pending); the streams to wake join wake. */
int parley_subscription_expire_leases(parley_db_t *db, int64_t now_ms, parley_wakeset_t *wake);

/*
 * Writer thread, in the savepoint of a stream write (api/streams.c):
 *   created: a stream was created at path with data [start, tail) of its
 *            own (start is its fork point, else 0): every link to path
 *            restarts at start, matching patterns link it, and the linked
 *            subscriptions wake if idle;
 *   appended: the stream at path grew to tail: its idle subscriptions wake;
 *   deleted:  the stream at path is gone: glob-only links go.
 * Paths of Parley's own streams ("_parley/...") are ignored. out gets the
 * streams to wake (its status is left alone).
 */
int parley_subscription_stream_created(parley_db_t *db, const char *path, uint64_t start,
                                       uint64_t tail, int64_t now_ms, parley_outcome_t *out);
int parley_subscription_stream_appended(parley_db_t *db, const char *path, uint64_t tail,
                                        int64_t now_ms, parley_outcome_t *out);
int parley_subscription_stream_deleted(parley_db_t *db, const char *path, parley_outcome_t *out);

/* Writer thread, once at start-up: load the server's keys, making and
 * storing them the first time. *out as for parley_keyring_new(). */
int parley_subscription_keys(parley_db_t *db, int64_t now_ms, parley_keyring_t **out);

/*
 * SIGNING-KEY ROTATION. Every signing key is a server_keys row: the first
 * one "webhook-ed25519" (made at the first start), each rotated-in one
 * "webhook-ed25519@<created_ms>+<overlap_ms>". Ordered by creation, the
 * newest is the active key (deliveries are signed with it); an older key
 * stays in the JWK Set until the next newer key's created_ms + that key's
 * overlap_ms, then it is retired (not published, never used again). The
 * overlap is stored with the rotation, so every node agrees on it.
 */
#define PARLEY_SUB_KEYS_MAX 64 /* signing keys looked at (the newest) */

/* One signing key, as parley_subscription_keys_list() reports it. */
typedef struct parley_sub_key {
    char kid[PARLEY_KEYRING_KID_MAX + 1];        /* its kid */
    int64_t created_ms;                          /* when it was made */
    int64_t retires_ms;                          /* when it leaves the JWK Set, -1 while newest */
    bool active;                                 /* the newest: deliveries are signed with it */
    bool published;                              /* in the JWK Set (active, or in its overlap) */
    unsigned char seed[PARLEY_KEYRING_SEED_LEN]; /* its private seed */
} parley_sub_key_t;

/* The signing keys (the PARLEY_SUB_KEYS_MAX newest), oldest first, into
 * keys; *n of them. Any connection; 0 or a store error. */
int parley_subscription_keys_list(parley_db_t *db, int64_t now_ms, parley_sub_key_t *keys, int *n);

/* Publish in kr the keys published at now_ms (the active key first).
 * *changed as parley_keyring_set_signing's. Any connection. */
int parley_subscription_keys_reload(parley_db_t *db, int64_t now_ms, parley_keyring_t *kr,
                                    bool *changed);

/* Store a new signing key made at now_ms whose predecessor stays
 * published overlap_ms longer; its kid into kid. A connection that may
 * write (beside a running server). 0 or a store error. */
int parley_subscription_keys_rotate(parley_db_t *db, int64_t now_ms, int64_t overlap_ms,
                                    char kid[PARLEY_KEYRING_KID_MAX + 1]);

/* The webhook retry delay after the attempts-th failed POST (1, 2, ...):
 * 1 s doubling up to 60 s, with jitter r in [-1, 1] scaling it by up to
 * 20%. Pure. */
int64_t parley_subscription_retry_delay(int64_t attempts, double r);

#endif
