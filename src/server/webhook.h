/*
 * webhook.h — the webhook delivery thread (PROTOCOL.md §7.1).
 *
 * One thread POSTs the wakes of webhook subscriptions with libcurl's multi
 * interface: many deliveries in flight at once, none of them on the writer
 * or an HTTP worker. It finds due deliveries in the store (delivery_due_ms
 * of core/subscription.h), signs each body (codec/keyring.h), and hands each
 * outcome back to the writer as a write of its own; the retry schedule is
 * stored, so a restart keeps it.
 *
 * It lives in the server layer, not in http/: it is an HTTP *client*
 * worker (libcurl), composed by the server from the store, the writer and
 * the hub, and has nothing to do with the transport that serves requests.
 * libcurl is linked by the server layer alone.
 *
 * Ownership: parley_webhook_start() borrows store, writer, hub and keyring;
 * they must outlive parley_webhook_stop().
 * Threads: start and stop from the thread that runs the server.
 */
#ifndef PARLEY_SERVER_WEBHOOK_H
#define PARLEY_SERVER_WEBHOOK_H

#include <stdatomic.h>

#include "api/hub.h"
#include "api/metrics.h"
#include "codec/keyring.h"
#include "store/store.h"
#include "store/writer.h"

typedef struct parley_webhook parley_webhook_t;

/* Start the delivery thread. public_url (--public-url, or NULL) is the
 * origin of the callback URLs it sends; NULL: each subscription's own,
 * from the Host it was created through. active (borrowed, may be NULL
 * for always) says whether this node delivers: on a database several
 * nodes share, only the node that runs maintenance (its writer holds the
 * maintenance lock) starts POSTs, so two nodes never send one wake at
 * the same time. A wake whose POSTs still fail max_age_ms after it was
 * issued is given up (0: never), logged and counted in metrics (borrowed,
 * may be NULL). 0, or a PARLEY_E* / -errno error. */
int parley_webhook_start(parley_store_t *store, parley_writer_t *writer, parley_hub_t *hub,
                         const parley_keyring_t *kr, const char *public_url,
                         const atomic_bool *active, int64_t max_age_ms, parley_metrics_t *metrics,
                         parley_webhook_t **out);

/*
 * Stop the thread and free it. Transfers in flight are abandoned (their
 * deliveries stay due and are made again after a restart: delivery is at
 * least once). Call after parley_writer_stop(), so that no outcome write
 * is still queued. Accepts NULL.
 */
void parley_webhook_stop(parley_webhook_t *wh);

#endif
