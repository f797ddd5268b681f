/*
 * request.c — the parts of the request interface (request.h) the API
 * implements itself: the caller, handler state, and the JSON error body.
 * Everything else is the transport's, through r->ops.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/request.h"
#include "parley/parley.h"

int parley_req_set_caller(parley_req_t *r, const char *user, bool admin)
{
    char *copy = strdup(user);
    if (!copy)
        return PARLEY_ENOMEM;
    free(r->user);
    r->user = copy;
    r->admin = admin;
    return 0;
}

void parley_req_set_data(parley_req_t *r, void *data, void (*free_fn)(void *))
{
    if (r->free_data && r->data && r->data != data)
        r->free_data(r->data);
    r->data = data;
    r->free_data = free_fn;
}

void parley_req_release(parley_req_t *r)
{
    if (r->free_data)
        r->free_data(r->data);
    r->data = NULL;
    r->free_data = NULL;
    free(r->user);
    r->user = NULL;
}

void parley_req_error(parley_req_t *r, int status, const char *code, const char *message)
{
    json_t *err =
        json_pack("{s:{s:s, s:s, s:{}}}", "error", "code", code, "message", message, "details");
    char *text = err ? json_dumps(err, JSON_COMPACT) : NULL;
    json_decref(err);
    if (!text) {
        parley_req_respond(r, status, "application/json", "{}", 2);
        return;
    }
    parley_req_respond(r, status, "application/json", text, strlen(text));
    free(text);
}
