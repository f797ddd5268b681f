/*
 * store_fixture.h — a fresh SQLite store in a temporary directory of its
 * own, for the unit tests of core rules that read and write through the
 * store (conversations, branches, blobs, documents, snapshots).
 *
 * One fixture per case: store_fixture_open() makes the directory and opens
 * the store, store_fixture_close() closes it and removes the directory with
 * everything in it. The cmocka forms (store_fixture_setup/_teardown) do the
 * same for a heap fixture passed as the case's state. store_fixture_id()
 * hands out short distinct ids ("id00001", ...) for rows a case creates.
 */
#ifndef PARLEY_TEST_STORE_FIXTURE_H
#define PARLEY_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec/id.h"
#include "store/store.h"

typedef struct store_fixture {
    char dir[64];          /* temporary data directory */
    parley_store_t *store; /* the store */
    parley_db_t *db;       /* its writer connection (borrowed) */
    int ids;               /* ids handed out */
} store_fixture_t;

static inline int store_fixture_rm(const char *path, const struct stat *sb, int flag,
                                   struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Open a fresh store in a new directory /tmp/parley-test-<name>-XXXXXX. */
static inline void store_fixture_open(store_fixture_t *fx, const char *name)
{
    char url[PATH_MAX + 16];
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/parley-test-%.24s-XXXXXX", name);
    assert_non_null(mkdtemp(fx->dir));
    snprintf(url, sizeof url, "sqlite:%s/parley.db", fx->dir);
    assert_int_equal(parley_store_open(url, &fx->store), 0);
    fx->db = parley_store_writer(fx->store);
}

/* Close the store and remove its directory. */
static inline void store_fixture_close(store_fixture_t *fx)
{
    parley_store_close(fx->store);
    nftw(fx->dir, store_fixture_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* The next id of this fixture into out (at least PARLEY_ID_LEN + 1 bytes). */
static inline void store_fixture_id(store_fixture_t *fx, char *out)
{
    snprintf(out, PARLEY_ID_LEN + 1, "id%05d", ++fx->ids);
}

/* cmocka set-up: a heap fixture with an open store as the case's state. */
static inline int store_fixture_setup(void **state)
{
    store_fixture_t *fx = malloc(sizeof *fx);
    assert_non_null(fx);
    store_fixture_open(fx, "unit");
    *state = fx;
    return 0;
}

/* cmocka tear-down of store_fixture_setup(). */
static inline int store_fixture_teardown(void **state)
{
    store_fixture_close(*state);
    free(*state);
    return 0;
}

#endif
