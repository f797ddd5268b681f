/*
 * test_status.c — unit tests for api/status.c, and that tests/unit's copy
 * of its mapping (status_of.h, used by the core rules' tests, which link no
 * api code) says the same for every outcome.
 *
 *   1. the defaults: each done kind and each refusal a rule can decide;
 *   2. an override replaces only its own refusal;
 *   3. status_of.h agrees with parley_api_status(o, NULL) for every done
 *      kind and every PARLEY_E* code (and a plain -errno).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/status.h"
#include "status_of.h"

static parley_outcome_t refused(int err)
{
    parley_outcome_t o;
    memset(&o, 0, sizeof o);
    o.refusal = err;
    return o;
}

static parley_outcome_t done(parley_done_t d)
{
    parley_outcome_t o;
    memset(&o, 0, sizeof o);
    o.done = d;
    return o;
}

static void status_defaults(void **state)
{
    (void)state;
    static const struct {
        int err;    /* refusal */
        int status; /* its default status */
    } cases[] = {
        {PARLEY_EINVAL, 400},    {PARLEY_EUNAUTH, 401},   {PARLEY_EFORBIDDEN, 403},
        {PARLEY_ENOTFOUND, 404}, {PARLEY_ECONFLICT, 409}, {PARLEY_EFENCED, 409},
        {PARLEY_EGONE, 410},     {PARLEY_EPRECOND, 412},  {PARLEY_ETOOBIG, 413},
        {PARLEY_EFULL, 507},     {PARLEY_ESTORE, 500},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parley_outcome_t o = refused(cases[i].err);
        assert_int_equal(parley_api_status(&o, NULL), cases[i].status);
    }
    parley_outcome_t o = done(PARLEY_DONE_OK);
    assert_int_equal(parley_api_status(&o, NULL), 200);
    o = done(PARLEY_DONE_CREATED);
    assert_int_equal(parley_api_status(&o, NULL), 201);
    o = done(PARLEY_DONE_EMPTY);
    assert_int_equal(parley_api_status(&o, NULL), 204);
    o = done(PARLEY_DONE_NOTHING);
    assert_int_equal(parley_api_status(&o, NULL), 204);
}

static void status_override_is_local(void **state)
{
    (void)state;
    parley_outcome_t o = refused(PARLEY_EFENCED);
    assert_int_equal(parley_api_status(&o, parley_api_stream_statuses), 403);
    o = refused(PARLEY_ECONFLICT);
    assert_int_equal(parley_api_status(&o, parley_api_stream_statuses), 409);
}

static void status_copy_agrees(void **state)
{
    (void)state;
    for (int err = PARLEY_EUNAUTH; err <= PARLEY_ENOMEM; err++) {
        parley_outcome_t o = refused(err);
        if (outcome_status(&o) != parley_api_status(&o, NULL))
            fail_msg("%s: status_of.h says %d, api/status.c %d", parley_strerror(err),
                     outcome_status(&o), parley_api_status(&o, NULL));
    }
    parley_outcome_t o = refused(-5); /* -EIO */
    assert_int_equal(outcome_status(&o), parley_api_status(&o, NULL));
    for (int d = PARLEY_DONE_OK; d <= PARLEY_DONE_NOTHING; d++) {
        o = done((parley_done_t)d);
        assert_int_equal(outcome_status(&o), parley_api_status(&o, NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_defaults),
        cmocka_unit_test(status_override_is_local),
        cmocka_unit_test(status_copy_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
