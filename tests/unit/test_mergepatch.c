/*
 * test_mergepatch.c — unit tests for codec/mergepatch.c.
 *
 * Every example of RFC 7386 Appendix A and the worked example of its §3,
 * then nested objects, removal with null at several levels, patches that
 * create objects, member names with U+0000, and the module's own promises:
 * the inputs keep their contents and reference counts, and the result
 * shares no value with them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/mergepatch.h"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    if (!v)
        fail_msg("test JSON %s: %s", text, err.text);
    return v;
}

typedef struct mp_case {
    const char *target;
    const char *patch;
    const char *want;
} mp_case_t;

/* Apply every case and check the result and that the inputs are untouched. */
static void run_cases(const mp_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *target = parse(cases[i].target);
        json_t *patch = parse(cases[i].patch);
        json_t *want = parse(cases[i].want);
        json_t *target_copy = json_deep_copy(target);
        json_t *patch_copy = json_deep_copy(patch);
        size_t target_refs = target->refcount, patch_refs = patch->refcount;

        json_t *got = parley_mergepatch_apply(target, patch);
        assert_non_null(got);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
            fail_msg("case %zu: %s + %s = %s, want %s", i, cases[i].target, cases[i].patch, g,
                     cases[i].want);
        }
        assert_true(json_equal(target, target_copy));
        assert_true(json_equal(patch, patch_copy));
        assert_int_equal(target->refcount, target_refs);
        assert_int_equal(patch->refcount, patch_refs);
        /* null, true and false are jansson singletons, shared by design. */
        if (!json_is_null(got) && !json_is_boolean(got)) {
            assert_int_equal(got->refcount, 1);
            assert_ptr_not_equal(got, target);
            assert_ptr_not_equal(got, patch);
        }

        json_decref(got);
        json_decref(target_copy);
        json_decref(patch_copy);
        json_decref(want);
        json_decref(patch);
        json_decref(target);
    }
}

static void mergepatch_apply_rfc7386_appendix_a(void **state)
{
    static const mp_case_t cases[] = {
        {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
        {"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
        {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
        {"{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}"},
        {"{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
        {"{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}"},
        {"{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}"},
        {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
        {"[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]"},
        {"{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]"},
        {"{\"a\":\"foo\"}", "null", "null"},
        {"{\"a\":\"foo\"}", "\"bar\"", "\"bar\""},
        {"{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}"},
        {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},
        {"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void mergepatch_apply_rfc7386_section3_example(void **state)
{
    static const mp_case_t cases[] = {{
        "{\"title\":\"Goodbye!\","
        " \"author\":{\"givenName\":\"John\",\"familyName\":\"Doe\"},"
        " \"tags\":[\"example\",\"sample\"],"
        " \"content\":\"This will be unchanged\"}",
        "{\"title\":\"Hello!\","
        " \"phoneNumber\":\"+01-123-456-7890\","
        " \"author\":{\"familyName\":null},"
        " \"tags\":[\"example\"]}",
        "{\"title\":\"Hello!\","
        " \"author\":{\"givenName\":\"John\"},"
        " \"tags\":[\"example\"],"
        " \"content\":\"This will be unchanged\","
        " \"phoneNumber\":\"+01-123-456-7890\"}",
    }};
    run_cases(cases, 1);
}

static void mergepatch_apply_nested_objects(void **state)
{
    static const mp_case_t cases[] = {
        /* Deep merge keeps siblings at every level. */
        {"{\"a\":{\"b\":{\"c\":1,\"d\":2},\"e\":3},\"f\":4}", "{\"a\":{\"b\":{\"c\":10}}}",
         "{\"a\":{\"b\":{\"c\":10,\"d\":2},\"e\":3},\"f\":4}"},
        /* A patch object over a scalar member replaces it with an object. */
        {"{\"a\":1}", "{\"a\":{\"b\":2}}", "{\"a\":{\"b\":2}}"},
        /* ... and drops the patch's nulls inside the new object. */
        {"{\"a\":1}", "{\"a\":{\"b\":null,\"c\":{\"d\":null}}}", "{\"a\":{\"c\":{}}}"},
        /* A scalar patch member replaces an object member whole. */
        {"{\"a\":{\"b\":{\"c\":1}}}", "{\"a\":{\"b\":true}}", "{\"a\":{\"b\":true}}"},
        /* Arrays are replaced, never merged. */
        {"{\"a\":[1,2,3],\"b\":[{\"x\":1}]}", "{\"a\":[],\"b\":[{\"y\":2}]}",
         "{\"a\":[],\"b\":[{\"y\":2}]}"},
        /* Empty patch object: no change. */
        {"{\"a\":{\"b\":1}}", "{}", "{\"a\":{\"b\":1}}"},
        /* Empty patch object over a non-object: {}. */
        {"\"text\"", "{}", "{}"},
        {"null", "{\"a\":1}", "{\"a\":1}"},
        /* Member names are compared exactly, case and all. */
        {"{\"a\":1,\"A\":2}", "{\"a\":null}", "{\"A\":2}"},
        /* Values of every type pass through. */
        {"{}", "{\"s\":\"x\",\"i\":-7,\"r\":1.5,\"t\":true,\"f\":false,\"arr\":[null,1]}",
         "{\"s\":\"x\",\"i\":-7,\"r\":1.5,\"t\":true,\"f\":false,\"arr\":[null,1]}"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void mergepatch_apply_null_removes_members(void **state)
{
    static const mp_case_t cases[] = {
        /* Removing an absent member is not an error. */
        {"{\"a\":1}", "{\"b\":null}", "{\"a\":1}"},
        /* Several removals and additions at once. */
        {"{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":null,\"c\":null,\"d\":4}", "{\"b\":2,\"d\":4}"},
        /* Removal at depth leaves the parent object in place, even empty. */
        {"{\"a\":{\"b\":{\"c\":1}}}", "{\"a\":{\"b\":{\"c\":null}}}", "{\"a\":{\"b\":{}}}"},
        /* Removing a whole subtree. */
        {"{\"a\":{\"b\":{\"c\":1}},\"z\":0}", "{\"a\":null}", "{\"z\":0}"},
        /* null inside an array is a value, not a removal. */
        {"{\"a\":[1]}", "{\"a\":[null]}", "{\"a\":[null]}"},
        /* A member whose stored value is null can be removed. */
        {"{\"a\":null,\"b\":1}", "{\"a\":null}", "{\"b\":1}"},
    };
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void mergepatch_apply_result_shares_nothing(void **state)
{
    json_t *target = parse("{\"keep\":{\"x\":[1,2]},\"edit\":{\"y\":1}}");
    json_t *patch = parse("{\"edit\":{\"z\":[3]},\"new\":{\"w\":{}}}");
    json_t *got = parley_mergepatch_apply(target, patch);
    assert_non_null(got);
    assert_ptr_not_equal(json_object_get(got, "keep"), json_object_get(target, "keep"));
    assert_ptr_not_equal(json_object_get(json_object_get(got, "edit"), "z"),
                         json_object_get(json_object_get(patch, "edit"), "z"));
    assert_ptr_not_equal(json_object_get(got, "new"), json_object_get(patch, "new"));

    /* Editing the result in depth leaves both inputs as they were. */
    json_array_append_new(json_object_get(json_object_get(got, "keep"), "x"), json_integer(9));
    json_array_append_new(json_object_get(json_object_get(got, "edit"), "z"), json_integer(9));
    json_object_set_new(json_object_get(got, "new"), "v", json_true());
    json_t *target_want = parse("{\"keep\":{\"x\":[1,2]},\"edit\":{\"y\":1}}");
    json_t *patch_want = parse("{\"edit\":{\"z\":[3]},\"new\":{\"w\":{}}}");
    assert_true(json_equal(target, target_want));
    assert_true(json_equal(patch, patch_want));

    /* A non-object patch is copied too. */
    json_t *arr = parse("[[1]]");
    json_t *got2 = parley_mergepatch_apply(target, arr);
    assert_ptr_not_equal(got2, arr);
    assert_ptr_not_equal(json_array_get(got2, 0), json_array_get(arr, 0));
    assert_true(json_equal(got2, arr));

    json_decref(got2);
    json_decref(arr);
    json_decref(patch_want);
    json_decref(target_want);
    json_decref(got);
    json_decref(patch);
    json_decref(target);
}

static void mergepatch_apply_names_with_nul(void **state)
{
    json_t *target = json_object();
    json_object_setn_new(target, "a\0b", 3, json_integer(1));
    json_object_setn_new(target, "a", 1, json_integer(2));
    json_t *patch = json_object();
    json_object_setn_new(patch, "a\0b", 3, json_null());
    json_object_setn_new(patch, "a\0c", 3, json_integer(3));

    json_t *got = parley_mergepatch_apply(target, patch);
    assert_non_null(got);
    assert_int_equal(json_object_size(got), 2);
    assert_null(json_object_getn(got, "a\0b", 3));
    assert_int_equal(json_integer_value(json_object_getn(got, "a", 1)), 2);
    assert_int_equal(json_integer_value(json_object_getn(got, "a\0c", 3)), 3);
    json_decref(got);
    json_decref(patch);
    json_decref(target);
}

static void mergepatch_apply_null_inputs(void **state)
{
    json_t *patch = parse("{\"a\":{\"b\":null,\"c\":1}}");
    json_t *got = parley_mergepatch_apply(NULL, patch);
    json_t *want = parse("{\"a\":{\"c\":1}}");
    assert_true(json_equal(got, want));
    assert_null(parley_mergepatch_apply(want, NULL));
    json_decref(want);
    json_decref(got);
    json_decref(patch);
}

int main(void)
{
    const struct CMUnitTest mergepatch_tests[] = {
        cmocka_unit_test(mergepatch_apply_rfc7386_appendix_a),
        cmocka_unit_test(mergepatch_apply_rfc7386_section3_example),
        cmocka_unit_test(mergepatch_apply_nested_objects),
        cmocka_unit_test(mergepatch_apply_null_removes_members),
        cmocka_unit_test(mergepatch_apply_result_shares_nothing),
        cmocka_unit_test(mergepatch_apply_names_with_nul),
        cmocka_unit_test(mergepatch_apply_null_inputs),
    };
    return cmocka_run_group_tests_name("mergepatch", mergepatch_tests, NULL, NULL);
}
