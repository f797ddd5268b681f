/*
 * search.c — GET /v1/search?q=&limit=&cursor=: the caller's conversation
 * titles and message texts that match q, best first.
 *
 * q is parsed by core/search.c (the query language is described there and
 * in the README); a query it refuses is a 400 invalid_query whose message
 * says why, before any store is asked. The store ranks the hits
 * (store.h's search_query); a page is `limit` hits and next_cursor is the
 * offset of the next page ("s<offset>"), so pages are a ranked list's
 * slices: a write between two pages may move a hit across the boundary.
 *
 * Each hit: {conversation_id, kind: "title"|"message", message_id, seq,
 * snippet, rank}; message_id and seq are null for a title. Only the
 * caller's live conversations are searched (the admin key searches as the
 * user Parley-User names, or its own, @admin's).
 *
 * Threads: an HTTP worker, on its reader connection.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/resource.h"
#include "api/status.h"
#include "core/search.h"
#include "parley/parley.h"

#define SEARCH_OFFSET_MAX 10000 /* hits a cursor may skip */

static json_t *hit_json(const parley_search_hit_t *h)
{
    bool title = h->seq == 0;
    double rank = isfinite(h->rank) && h->rank < 1e12 && h->rank > -1e12
                      ? (double)(int64_t)(h->rank * 1e6) / 1e6
                      : 0;
    return json_pack(
        "{s:s, s:s, s:o, s:o, s:s, s:f}", "conversation_id", h->conversation_id, "kind",
        title ? "title" : "message", "message_id", title ? json_null() : json_string(h->message_id),
        "seq", title ? json_null() : json_integer(h->seq), "snippet", h->snippet, "rank", rank);
}

typedef struct hits {
    parley_page_t page; /* the page being collected */
    int64_t next;       /* offset of the next hit */
} hits_t;

static int on_hit(void *arg, const parley_search_hit_t *h)
{
    hits_t *hs = arg;
    hs->next++;
    return parley_page_add(&hs->page, hit_json(h), hs->next);
}

void parley_api_search(parley_req_t *r)
{
    if (strcmp(parley_req_method(r), "GET") != 0) {
        parley_resource_method_not_allowed(r, "GET", NULL);
        return;
    }
    const char *q = NULL, *why = NULL;
    int nq = parley_req_query(r, "q", &q);
    int limit;
    uint64_t offset;
    if (parley_resource_page(r, 's', &limit, &offset))
        return;
    parley_search_query_t *query = malloc(sizeof *query);
    if (!query) {
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry later");
        return;
    }
    if (nq > 1)
        why = "q must be given once";
    else
        parley_search_parse(nq == 1 ? q : NULL, query, &why);
    if (why) {
        free(query);
        parley_req_error(r, 400, "invalid_query", why);
        return;
    }
    if (offset > SEARCH_OFFSET_MAX) {
        free(query);
        parley_req_error(r, 400, "invalid_cursor",
                         "cursor is past the last page a search serves (10000 hits)");
        return;
    }
    parley_db_t *db = parley_app_reader(parley_api_app(r));
    hits_t hs = {.next = (int64_t)offset};
    parley_page_init(&hs.page, limit);
    int rc = db ? parley_db_search_query(db, parley_req_user(r), query, (int64_t)offset, limit + 1,
                                         on_hit, &hs)
                : PARLEY_EUNAVAIL;
    free(query);
    if (rc == PARLEY_EINVAL) {
        parley_page_clear(&hs.page);
        parley_req_error(r, 400, "invalid_query", "the search engine could not take this query");
        return;
    }
    if (rc) {
        parley_page_clear(&hs.page);
        parley_api_store_failed(r, rc, "the search");
        return;
    }
    parley_page_send(r, &hs.page, 's');
}
