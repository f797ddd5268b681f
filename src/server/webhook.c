/*
 * webhook.c — the webhook delivery thread (see webhook.h).
 *
 * NOTES ON THE DESIGN
 *
 * The loop:
 *
 *     gen = hub generation
 *     scan: every due delivery that is not busy → build, sign, start a POST
 *     park the doorbell waiter with gen (a commit since gen: scan again soon)
 *     curl_multi_poll until a socket is ready, the doorbell rings, an
 *       outcome committed, or the next delivery is due (at most 1 s)
 *     finished POSTs → one outcome write each (parley_subscription_delivered)
 *
 * The doorbell is a hub waiter on PARLEY_SUBSCRIPTION_DOORBELL: a write
 * that makes a delivery due names that id, and the writer notifies the hub
 * only after the commit, so the scan that follows sees the delivery.
 *
 * A delivery is busy from its POST until its outcome write has committed
 * (the writer's done callback marks it finished): until then the store
 * still says "due", and the scan must not POST it again.
 *
 * SSRF (codec/urlpolicy.h): the URL is judged again before each POST, every
 * address curl is about to connect to is judged in the open-socket
 * callback (a DNS name that now resolves to a private address is refused),
 * redirects are not followed, only http and https are spoken, and no proxy
 * from the environment is used.
 *
 * A POST that answers 2xx is delivered; its body, if it is a JSON object
 * with "done": true (at most RESP_MAX bytes are read), finishes the wake.
 * Anything else (no connection, a timeout, another status) is a failure,
 * retried with backoff by the writer-side rule; once the wake is
 * max_age_ms old (--webhook-max-age) a failure gives it up instead
 * (parley_subscription_delivered), which is logged and counted in
 * parley_webhook_given_up_total.
 *
 * Invariants:
 *   1. A delivery is in the busy list from its POST until its outcome
 *      write's done callback ran (or the submit failed); only then is it
 *      freed.
 *   2. The doorbell waiter is parked at most once at a time; its callback
 *      touches only atomics and curl_multi_wakeup().
 *
 * Threads: the delivery thread owns everything here, except that the
 * writer thread runs outcome writes (apply, done) and the writer or hub
 * thread the doorbell callback.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/metrics.h"
#include "core/subscription.h"
#include "codec/urlpolicy.h"
#include "server/webhook.h"
#include "parley/parley.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/thread.h"

#define MAX_BUSY     64          /* deliveries in flight */
#define SCAN_BATCH   64          /* due deliveries looked at per scan */
#define RESP_MAX     (64 * 1024) /* response body read, bytes */
#define TIMEOUT_MS   10000       /* a whole POST */
#define CONNECT_MS   5000        /* its connection */
#define IDLE_WAIT_MS 1000        /* longest sleep between scans */
#define BUSY_WAIT_MS 20          /* sleep after a commit raced a scan */

typedef struct delivery delivery_t;

struct delivery {
    parley_write_t w;                      /* the outcome write; must be first */
    parley_webhook_t *wh;                  /* the owner */
    char id[PARLEY_ROW_ID_MAX + 1];        /* the subscription */
    int64_t gen;                           /* the wake's generation */
    char wake_id[PARLEY_SUB_WAKE_MAX + 1]; /* the wake */
    char url[PARLEY_SUB_URL_MAX + 1];      /* where to POST */
    bool dev;                              /* the URL is the loopback exception */
    char *body;                            /* the request body (owned) */
    size_t len;                            /* its length */
    CURL *easy;                            /* the transfer, NULL once ended */
    struct curl_slist *headers;            /* its headers (owned) */
    parley_buf_t resp;                     /* the response body (up to RESP_MAX) */
    parley_sub_delivery_t result;          /* the outcome */
    bool given_up;                         /* the outcome write gave the wake up */
    atomic_bool finished;                  /* the outcome write is done: free it */
    delivery_t *next;                      /* busy list */
};

struct parley_webhook {
    parley_store_t *store;                  /* borrowed */
    parley_writer_t *writer;                /* borrowed: outcomes go here */
    parley_hub_t *hub;                      /* borrowed: the doorbell */
    const parley_keyring_t *kr;             /* borrowed: signatures and tokens */
    parley_db_t *db;                        /* the thread's reader connection */
    CURLM *multi;                           /* every transfer in flight */
    pthread_t thread;                       /* the delivery thread */
    atomic_bool stopping;                   /* stop asked */
    parley_waiter_t waiter;                 /* the doorbell, in the hub */
    bool parked;                            /* waiter is (or was) parked and not yet rung */
    atomic_bool rung;                       /* the waiter's callback has run */
    bool hub_closed;                        /* the hub refuses waiters: poll only */
    delivery_t *busy;                       /* deliveries from POST to committed outcome */
    int nbusy;                              /* entries in busy */
    char root_url[PARLEY_SUB_ROOT_MAX + 1]; /* --public-url + /v1/stream, or "" */
    const atomic_bool *active;              /* borrowed: this node delivers now (NULL: always) */
    int64_t max_age_ms;                     /* a wake failing this long is given up, 0 never */
    parley_metrics_t *metrics;              /* borrowed: counts given-up wakes (may be NULL) */
};

/* ---- deliveries ------------------------------------------------------------- */

static void delivery_free(delivery_t *d)
{
    if (!d)
        return;
    if (d->easy) {
        curl_multi_remove_handle(d->wh->multi, d->easy);
        curl_easy_cleanup(d->easy);
    }
    curl_slist_free_all(d->headers);
    parley_buf_free(&d->resp);
    free(d->body);
    free(d);
}

static bool is_busy(parley_webhook_t *wh, const char *id)
{
    for (delivery_t *d = wh->busy; d; d = d->next)
        if (strcmp(d->id, id) == 0)
            return true;
    return false;
}

/* Free the deliveries whose outcome has committed. */
static void reap(parley_webhook_t *wh)
{
    delivery_t **p = &wh->busy;
    while (*p) {
        delivery_t *d = *p;
        if (atomic_load(&d->finished)) {
            *p = d->next;
            wh->nbusy--;
            delivery_free(d);
        } else {
            p = &d->next;
        }
    }
}

/* Writer thread: record the POST's outcome. */
static int apply_outcome(parley_write_t *w, parley_db_t *db)
{
    delivery_t *d = (delivery_t *)w;
    parley_outcome_t o;
    parley_outcome_init(&o);
    int rc =
        parley_subscription_delivered(db, d->id, d->gen, d->wake_id, d->result,
                                      parley_clock_now_ms(), d->wh->max_age_ms, &d->given_up, &o);
    if (rc == 0)
        parley_wakeset_merge(&w->wake, &o.wake);
    parley_outcome_clear(&o);
    return rc;
}

/* Writer thread: the outcome is committed (or failed): d may go. */
static void outcome_done(parley_write_t *w, int status)
{
    delivery_t *d = (delivery_t *)w;
    /* a lost outcome leaves the delivery due: it is made again */
    if (status == 0 && d->given_up) {
        parley_log_warn("webhook: subscription %s wake %lld: given up, its POSTs failed for "
                        "--webhook-max-age (%llds); status stays failed until the receiver "
                        "calls back or the subscription is PUT again",
                        d->id, (long long)d->gen, (long long)(d->wh->max_age_ms / 1000));
        parley_metrics_webhook_given_up(d->wh->metrics);
    }
    atomic_store(&d->finished, true);
    curl_multi_wakeup(d->wh->multi);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    delivery_t *d = arg;
    size_t len = size * n;
    if (d->resp.len + len <= RESP_MAX)
        parley_buf_append(&d->resp, p, len);
    return len; /* read the rest, keep only RESP_MAX */
}

static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    delivery_t *d = arg;
    (void)purpose;
    if (!parley_urlpolicy_addr_allowed(&a->addr, d->dev)) {
        parley_log_warn("webhook: subscription %s: refusing to connect to a %s address for %s",
                        d->id, d->dev ? "non-loopback" : "non-public", d->url);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* Start the POST of d. 0, or an error (d not started). */
static int start(parley_webhook_t *wh, delivery_t *d)
{
    char sig[PARLEY_KEYRING_SIG_HEADER + 32];
    const char *why = NULL;
    int rc = parley_urlpolicy_check(d->url, &d->dev, &why);
    if (rc) {
        parley_log_warn("webhook: subscription %s: %s", d->id, why ? why : "URL refused");
        return rc;
    }
    memcpy(sig, "Webhook-Signature: ", 19);
    rc = parley_keyring_sign(wh->kr, parley_clock_now_ms() / 1000, d->body, d->len, sig + 19,
                             sizeof sig - 19);
    if (rc)
        return rc;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h)
        d->headers = h, h = curl_slist_append(d->headers, sig);
    if (h)
        h = curl_slist_append(d->headers, "User-Agent: parley/" PARLEY_VERSION);
    if (h)
        h = curl_slist_append(d->headers, "Expect:");
    if (!h || !(d->easy = curl_easy_init()))
        return PARLEY_ENOMEM;
    CURL *e = d->easy;
    curl_easy_setopt(e, CURLOPT_URL, d->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, d);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_MS);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, d);
    if (curl_multi_add_handle(wh->multi, e) != CURLM_OK)
        return PARLEY_ENOMEM;
    return 0;
}

/* Hand d's outcome to the writer; d stays busy until it has committed. */
static void finish(parley_webhook_t *wh, delivery_t *d)
{
    if (d->easy) {
        curl_multi_remove_handle(wh->multi, d->easy);
        curl_easy_cleanup(d->easy);
        d->easy = NULL;
    }
    d->w.apply = apply_outcome;
    d->w.done = outcome_done;
    if (parley_writer_submit(wh->writer, &d->w) != 0)
        atomic_store(&d->finished, true); /* stopping: stays due in the store */
}

/* Start every due delivery that is not busy; *next_due is the earliest
 * due time seen (-1 for none). */
static void scan(parley_webhook_t *wh, int64_t *next_due)
{
    char ids[SCAN_BATCH][PARLEY_ROW_ID_MAX + 1];
    int n = 0;
    int64_t now = parley_clock_now_ms();
    *next_due = -1;
    if (wh->active && !atomic_load(wh->active)) {
        *next_due = now + 1000; /* another node delivers; look again in a second */
        return;
    }
    if (!wh->db && parley_store_reader(wh->store, &wh->db) != 0) {
        wh->db = NULL;
        return;
    }
    if (parley_db_begin(wh->db) != 0)
        return;
    int rc = parley_db_sub_deliveries_due(wh->db, now, ids, SCAN_BATCH, &n);
    for (int i = 0; rc == 0 && i < n && wh->nbusy < MAX_BUSY; i++) {
        if (is_busy(wh, ids[i]))
            continue;
        delivery_t *d = calloc(1, sizeof *d);
        if (!d)
            break;
        d->wh = wh;
        memcpy(d->id, ids[i], sizeof d->id);
        parley_buf_init(&d->resp, RESP_MAX);
        int drc = parley_subscription_delivery(wh->db, d->id, wh->kr,
                                               wh->root_url[0] ? wh->root_url : NULL, now, &d->body,
                                               &d->len, d->url, &d->gen, d->wake_id);
        if (drc == 0) {
            d->next = wh->busy;
            wh->busy = d;
            wh->nbusy++;
            if (start(wh, d) != 0) {
                d->result = PARLEY_SUB_DELIVERY_FAILED;
                finish(wh, d);
            }
        } else {
            delivery_free(d);
        }
    }
    if (rc == 0) {
        /* Sleep until the earliest delivery that is not already busy. */
        int64_t due = -1;
        rc = parley_db_sub_next_delivery(wh->db, &due);
        *next_due = rc == 0 && due > now ? due : -1;
    }
    parley_db_commit(wh->db);
}

/* Turn finished transfers into outcomes. */
static void collect(parley_webhook_t *wh)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(wh->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        delivery_t *d = NULL;
        long status = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        d->result = PARLEY_SUB_DELIVERY_FAILED;
        if (msg->data.result == CURLE_OK && status >= 200 && status < 300) {
            json_t *v = d->resp.len ? json_loadb(d->resp.data, d->resp.len, 0, NULL) : NULL;
            d->result = json_is_true(json_object_get(v, "done")) ? PARLEY_SUB_DELIVERY_DONE
                                                                 : PARLEY_SUB_DELIVERY_OK;
            json_decref(v);
        } else if (msg->data.result != CURLE_OK) {
            parley_log_warn("webhook: subscription %s wake %lld: POST %s failed: %s", d->id,
                            (long long)d->gen, d->url, curl_easy_strerror(msg->data.result));
        } else {
            parley_log_warn("webhook: subscription %s wake %lld: POST %s answered %ld", d->id,
                            (long long)d->gen, d->url, status);
        }
        finish(wh, d);
    }
}

/* ---- the thread ---------------------------------------------------------------- */

/* Hub callback (writer, timer or closing thread): the doorbell rang. */
static void on_doorbell(parley_waiter_t *w, parley_wake_t why)
{
    parley_webhook_t *wh = w->arg;
    (void)why;
    curl_multi_wakeup(wh->multi);
    atomic_store(&wh->rung, true); /* last: after this the waiter may be reused */
}

/* Park the doorbell with gen unless it is parked. false if a commit came
 * after gen (the caller should scan again soon). */
static bool park(parley_webhook_t *wh, uint64_t gen)
{
    if (wh->parked && atomic_load(&wh->rung))
        wh->parked = false;
    if (wh->parked || wh->hub_closed)
        return true;
    memset(&wh->waiter, 0, sizeof wh->waiter);
    wh->waiter.stream_id = PARLEY_SUBSCRIPTION_DOORBELL;
    wh->waiter.on_wake = on_doorbell;
    wh->waiter.arg = wh;
    atomic_store(&wh->rung, false);
    int rc = parley_hub_wait(wh->hub, &wh->waiter, gen);
    if (rc == 0) {
        wh->parked = true;
        return true;
    }
    if (rc == PARLEY_ECLOSED)
        wh->hub_closed = true;
    return rc != PARLEY_ECONFLICT;
}

static void *webhook_main(void *arg)
{
    parley_webhook_t *wh = arg;
    while (!atomic_load(&wh->stopping)) {
        int64_t next_due = -1;
        int running = 0;
        reap(wh);
        uint64_t gen = parley_hub_generation(wh->hub);
        scan(wh, &next_due);
        int wait = IDLE_WAIT_MS;
        if (next_due >= 0) {
            int64_t d = next_due - parley_clock_now_ms();
            wait = d < 0 ? 0 : d < IDLE_WAIT_MS ? (int)d : IDLE_WAIT_MS;
        }
        if (!park(wh, gen) && wait > BUSY_WAIT_MS)
            wait = BUSY_WAIT_MS;
        curl_multi_poll(wh->multi, NULL, 0, wait, NULL);
        curl_multi_perform(wh->multi, &running);
        collect(wh);
    }
    /* Stopping: abandon transfers; outcomes already queued were answered
     * by the writer's stop. */
    if (wh->parked && !parley_hub_cancel(wh->hub, &wh->waiter))
        while (!atomic_load(&wh->rung))
            sched_yield(); /* its callback is running: let it finish */
    while (wh->busy) {
        delivery_t *d = wh->busy;
        wh->busy = d->next;
        delivery_free(d);
    }
    parley_db_close(wh->db);
    wh->db = NULL;
    return NULL;
}

int parley_webhook_start(parley_store_t *store, parley_writer_t *writer, parley_hub_t *hub,
                         const parley_keyring_t *kr, const char *public_url,
                         const atomic_bool *active, int64_t max_age_ms, parley_metrics_t *metrics,
                         parley_webhook_t **out)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return PARLEY_ENOMEM;
    parley_webhook_t *wh = calloc(1, sizeof *wh);
    if (!wh)
        goto out_global;
    wh->store = store;
    wh->writer = writer;
    wh->hub = hub;
    wh->kr = kr;
    wh->active = active;
    wh->max_age_ms = max_age_ms;
    wh->metrics = metrics;
    if (public_url)
        snprintf(wh->root_url, sizeof wh->root_url, "%s/v1/stream", public_url);
    wh->multi = curl_multi_init();
    if (!wh->multi)
        goto out_free;
    int rc = parley_thread_start(&wh->thread, "parley-webhook", webhook_main, wh);
    if (rc) {
        curl_multi_cleanup(wh->multi);
        free(wh);
        curl_global_cleanup();
        return -rc;
    }
    *out = wh;
    return 0;

out_free:
    free(wh);
out_global:
    curl_global_cleanup();
    return PARLEY_ENOMEM;
}

void parley_webhook_stop(parley_webhook_t *wh)
{
    if (!wh)
        return;
    atomic_store(&wh->stopping, true);
    curl_multi_wakeup(wh->multi);
    pthread_join(wh->thread, NULL);
    curl_multi_cleanup(wh->multi);
    free(wh);
    curl_global_cleanup();
}
