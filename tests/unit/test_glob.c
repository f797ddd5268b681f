/*
 * test_glob.c — unit tests for codec/glob.c.
 *
 * Table-driven: every row is (pattern, path, matches), covering "*" (one
 * segment), "**" (zero or more, at the start, middle and end, repeated),
 * literals, and the cases a backtracking walk gets wrong. Validity has its
 * own table, and the literal prefix is checked against the match table:
 * every path a pattern matches starts with the prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec/glob.h"

typedef struct match_case {
    const char *pattern; /* the glob */
    const char *path;    /* the stream path */
    bool match;          /* expected */
} match_case_t;

static const match_case_t matches[] = {
    {"events/*", "events/a", true},
    {"events/*", "events", false},
    {"events/*", "events/a/b", false},
    {"events/*", "eventsx/a", false},
    {"events/**", "events", true},
    {"events/**", "events/a", true},
    {"events/**", "events/a/b/c", true},
    {"events/**", "other/a", false},
    {"**", "a", true},
    {"**", "a/b/c", true},
    {"**/x", "x", true},
    {"**/x", "a/b/x", true},
    {"**/x", "a/b/xy", false},
    {"a/**/z", "a/z", true},
    {"a/**/z", "a/b/c/z", true},
    {"a/**/z", "a/b/c/z/y", false},
    {"a/**/b/**/c", "a/x/b/y/b/z/c", true},
    {"a/**/b/**/c", "a/x/b/y/b/z/d", false},
    {"*/*", "a/b", true},
    {"*/*", "a", false},
    {"*/b/*", "a/b/c", true},
    {"*/b/*", "a/c/c", false},
    {"**/*/**", "a", true},
    {"**/*/**", "a/b/c", true},
    {"exact/path", "exact/path", true},
    {"exact/path", "exact/pat", false},
    {"exact/path", "exact/path/more", false},
    {"wake/pool", "wake/pool", true},
    {"a*b", "a*b", true}, /* not a valid pattern, but matched literally by the walk */
};

static void glob_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof matches / sizeof matches[0]; i++) {
        const match_case_t *c = &matches[i];
        if (parley_glob_match(c->pattern, c->path) != c->match)
            fail_msg("%s ~ %s: got %d, want %d", c->pattern, c->path, !c->match, c->match);
    }
}

static void glob_literal_prefix_starts_every_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof matches / sizeof matches[0]; i++) {
        const match_case_t *c = &matches[i];
        size_t n = parley_glob_literal_prefix(c->pattern);
        if (c->match && strncmp(c->path, c->pattern, n) != 0)
            fail_msg("%s matches %s but its prefix of %zu bytes does not start it", c->pattern,
                     c->path, n);
    }
    assert_int_equal(parley_glob_literal_prefix("events/*"), 6);
    assert_int_equal(parley_glob_literal_prefix("events/**"), 6);
    assert_int_equal(parley_glob_literal_prefix("**"), 0);
    assert_int_equal(parley_glob_literal_prefix("a/b/c"), 5);
    assert_int_equal(parley_glob_literal_prefix("a/*/c"), 1);
}

typedef struct valid_case {
    const char *pattern; /* the glob */
    bool valid;          /* expected */
} valid_case_t;

static void glob_is_valid_table(void **state)
{
    (void)state;
    static const valid_case_t cases[] = {
        {"events/*", true},
        {"events/**", true},
        {"**", true},
        {"*", true},
        {"a/b", true},
        {"", false},
        {"a//b", false},
        {"a/./b", false},
        {"a/../b", false},
        {"/a", false},
        {"a/", false},
        {"ev*", false},
        {"a/b*", false},
        {"a/*b", false},
        {"a/***", false},
        {"a\x01"
         "b",
         false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = NULL;
        bool v = parley_glob_is_valid(cases[i].pattern, &why);
        if (v != cases[i].valid)
            fail_msg("\"%s\": valid %d, want %d", cases[i].pattern, v, cases[i].valid);
        if (!v && !why)
            fail_msg("\"%s\": refused without a reason", cases[i].pattern);
    }
}

static void glob_match_long_path_is_linear(void **state)
{
    (void)state;
    /* Many "**" against a long path that does not match: a backtracking
     * matcher would take exponential time here. */
    char pattern[600] = "", path[1025] = "";
    for (int i = 0; i < 100; i++)
        strcat(pattern, "**/a/");
    strcat(pattern, "b");
    for (int i = 0; i < 500; i++)
        strcat(path, i ? "/a" : "a");
    assert_false(parley_glob_match(pattern, path));
}

int main(void)
{
    const struct CMUnitTest glob_tests[] = {
        cmocka_unit_test(glob_match_table),
        cmocka_unit_test(glob_literal_prefix_starts_every_match),
        cmocka_unit_test(glob_is_valid_table),
        cmocka_unit_test(glob_match_long_path_is_linear),
    };
    return cmocka_run_group_tests_name("glob", glob_tests, NULL, NULL);
}
