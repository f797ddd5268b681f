/*
 * wakeset.c — the streams to wake after a commit (see wakeset.h).
 *
 * A set is small (a rule changes a handful of streams), so lookups are a
 * linear scan; past PARLEY_WAKESET_MAX ids the set stops naming streams
 * and wakes everyone instead.
 */
#include <string.h>

#include "store/wakeset.h"

void parley_wakeset_init(parley_wakeset_t *ws)
{
    ws->n = 0;
    ws->all = false;
}

void parley_wakeset_add(parley_wakeset_t *ws, int64_t id)
{
    for (int i = 0; i < ws->n; i++)
        if (ws->ids[i] == id)
            return;
    if (ws->n < PARLEY_WAKESET_MAX)
        ws->ids[ws->n++] = id;
    else
        ws->all = true; /* too many to name: wake every live reader */
}

void parley_wakeset_merge(parley_wakeset_t *dst, const parley_wakeset_t *src)
{
    for (int i = 0; i < src->n; i++)
        parley_wakeset_add(dst, src->ids[i]);
    if (src->all)
        dst->all = true;
}

bool parley_wakeset_empty(const parley_wakeset_t *ws)
{
    return ws->n == 0 && !ws->all;
}
