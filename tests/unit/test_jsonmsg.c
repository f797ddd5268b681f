/*
 * test_jsonmsg.c — unit tests for codec/jsonmsg.c.
 *
 * Covers JSON-mode framing: one-level flattening of a top-level array (and
 * only one level), whitespace trimmed from each message span while the
 * bytes inside are kept exactly (numbers are never re-formatted), strict
 * RFC 8259 validation (trailing data, strings, escapes, control characters,
 * UTF-8 including overlong forms and surrogates, numbers, literals,
 * structure, the nesting limit, empty bodies), and the rule that the
 * callback never runs for an invalid body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/jsonmsg.h"
#include "parley/parley.h"

#define MAX_MSGS 8

/* What the callback saw. */
typedef struct collect {
    const char *body;          /* the body split, to check spans point into it */
    size_t body_len;           /* its length */
    size_t calls;              /* callback invocations */
    size_t stop_at;            /* return stop_rc on this call (1-based), 0 never */
    int stop_rc;               /* value to stop with */
    const char *msg[MAX_MSGS]; /* spans seen */
    size_t len[MAX_MSGS];      /* their lengths */
} collect_t;

static int on_message(void *arg, const char *msg, size_t len)
{
    collect_t *c = arg;
    /* Every span lies inside the body: the caller's bytes, not a copy. */
    assert_true(msg >= c->body);
    assert_true(msg + len <= c->body + c->body_len);
    if (c->calls < MAX_MSGS) {
        c->msg[c->calls] = msg;
        c->len[c->calls] = len;
    }
    c->calls++;
    if (c->stop_at && c->calls == c->stop_at)
        return c->stop_rc;
    return 0;
}

static void expect_split(const char *body, size_t n, const char *const *want)
{
    collect_t c = {body, strlen(body), 0, 0, 0, {0}, {0}};
    size_t count = 999;
    const char *why = NULL;
    int rc = parley_jsonmsg_split(body, strlen(body), on_message, &c, &count, &why);
    if (rc != 0)
        fail_msg("split of '%s' failed: %d (%s)", body, rc, why ? why : "?");
    if (count != n || c.calls != n)
        fail_msg("split of '%s': count %zu, calls %zu, want %zu", body, count, c.calls, n);
    for (size_t i = 0; i < n; i++) {
        if (c.len[i] != strlen(want[i]) || memcmp(c.msg[i], want[i], c.len[i]) != 0)
            fail_msg("split of '%s': message %zu is '%.*s', want '%s'", body, i, (int)c.len[i],
                     c.msg[i], want[i]);
    }
    assert_int_equal(parley_jsonmsg_validate(body, strlen(body), NULL), 0);
}

#define MSGS(...) ((const char *const[]){__VA_ARGS__})
#define NONE      ((const char *const *)NULL)

static void jsonmsg_split_flattens_one_level_top_array(void **state)
{
    expect_split("{\"a\":1}", 1, MSGS("{\"a\":1}"));
    expect_split("{\"a\":[1,2]}", 1, MSGS("{\"a\":[1,2]}"));
    expect_split("[\"a\",\"b\"]", 2, MSGS("\"a\"", "\"b\""));
    expect_split("[1,2]", 2, MSGS("1", "2"));
    expect_split("[[1,2],[3,4]]", 2, MSGS("[1,2]", "[3,4]"));
    expect_split("[[[1,2,3]]]", 1, MSGS("[[1,2,3]]"));
    expect_split("[[]]", 1, MSGS("[]"));
    expect_split("[{}]", 1, MSGS("{}"));
    expect_split("[{},[],\"\",0,true,false,null]", 7,
                 MSGS("{}", "[]", "\"\"", "0", "true", "false", "null"));
    expect_split("[{\"a\":1,\"b\":[2,3]},4]", 2, MSGS("{\"a\":1,\"b\":[2,3]}", "4"));
    expect_split("[\"a,b\",\"]\",\"[\",\"}\"]", 4, MSGS("\"a,b\"", "\"]\"", "\"[\"", "\"}\""));
    expect_split("[\"\\\"\",\"\\\\\"]", 2, MSGS("\"\\\"\"", "\"\\\\\""));
}

static void jsonmsg_split_scalar_top_level_one_message(void **state)
{
    expect_split("\"str\"", 1, MSGS("\"str\""));
    expect_split("42", 1, MSGS("42"));
    expect_split("-0", 1, MSGS("-0"));
    expect_split("true", 1, MSGS("true"));
    expect_split("false", 1, MSGS("false"));
    expect_split("null", 1, MSGS("null"));
    expect_split("{}", 1, MSGS("{}"));
}

static void jsonmsg_split_no_messages_empty_array(void **state)
{
    expect_split("[]", 0, NONE);
    expect_split("[ ]", 0, NONE);
    expect_split(" \r\n\t[ \n\t ] \n", 0, NONE);
}

static void jsonmsg_split_trims_whitespace_around_spans(void **state)
{
    expect_split("  {\"a\" : [1, 2]}  \n", 1, MSGS("{\"a\" : [1, 2]}"));
    expect_split("\n\t\r 7 \r\n", 1, MSGS("7"));
    expect_split("[ 1 , \"x\" ,\n\t{\"k\": null}\r\n]", 3, MSGS("1", "\"x\"", "{\"k\": null}"));
    expect_split(" [ [ 1 , 2 ] , { } ] ", 2, MSGS("[ 1 , 2 ]", "{ }"));
}

static void jsonmsg_split_keeps_exact_bytes_numbers(void **state)
{
    expect_split(
        "[1.0e+2, 123456789012345678901234567890, -0.5E-3, -0, 0.10, 1E400]", 6,
        MSGS("1.0e+2", "123456789012345678901234567890", "-0.5E-3", "-0", "0.10", "1E400"));
    expect_split("123456789012345678901234567890", 1, MSGS("123456789012345678901234567890"));
    expect_split("{\"n\":1.0e+2}", 1, MSGS("{\"n\":1.0e+2}"));
}

static void jsonmsg_split_keeps_exact_bytes_strings(void **state)
{
    expect_split("[\"\\u00e9\",\"\xc3\xa9\",\"\\ud83d\\ude00\",\"\xf0\x9f\x98\x80\"]", 4,
                 MSGS("\"\\u00e9\"", "\"\xc3\xa9\"", "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""));
    expect_split("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 1, MSGS("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""));
}

static void jsonmsg_validate_accepted_edge_values(void **state)
{
    static const char *const good[] = {
        "\"\xc2\x80\"",         /* U+0080, smallest 2-byte */
        "\"\xdf\xbf\"",         /* U+07FF */
        "\"\xe0\xa0\x80\"",     /* U+0800, smallest 3-byte */
        "\"\xed\x9f\xbf\"",     /* U+D7FF, just below the surrogates */
        "\"\xee\x80\x80\"",     /* U+E000, just above */
        "\"\xef\xbf\xbf\"",     /* U+FFFF */
        "\"\xf0\x90\x80\x80\"", /* U+10000, smallest 4-byte */
        "\"\xf4\x8f\xbf\xbf\"", /* U+10FFFF, the largest */
        "\"\x7f\"",             /* DEL needs no escape */
        "\"\\uD800\"",          /* escapes are not checked for pairing */
        "\"\\uABCD\\uabcd\"",
        "0",
        "-0",
        "0.0",
        "1E5",
        "1e-5",
        "1e+5",
        "0e0",
        "-1.5e10",
        "{\"\":\"\"}",
        "{\"a\":{\"b\":{\"c\":[]}}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *why = NULL;
        int rc = parley_jsonmsg_validate(good[i], strlen(good[i]), &why);
        if (rc != 0)
            fail_msg("valid JSON '%s' rejected: %s", good[i], why ? why : "?");
    }
}

/* An invalid body: explicit length so that NUL bytes can be part of it. */
typedef struct bad {
    const char *body;
    size_t len;
} bad_t;

/* clang-format off */
#define BAD(s) {(s), sizeof(s) - 1}
/* clang-format on */

static const bad_t bad_bodies[] = {
    /* empty */
    BAD(""),
    BAD(" "),
    BAD("\n\t\r "),
    /* trailing garbage */
    BAD("{\"a\":1} x"),
    BAD("[1] [2]"),
    BAD("1 2"),
    BAD("{}}"),
    BAD("[]]"),
    BAD("nullx"),
    BAD("[1],"),
    BAD("\"a\"\"b\""),
    BAD("0 \x00"),
    /* unterminated strings */
    BAD("\"abc"),
    BAD("[\"abc]"),
    BAD("\"abc\\\""),
    BAD("\""),
    BAD("{\"a"),
    BAD("\"\\"),
    BAD("\"\\u12"),
    /* bad escapes */
    BAD("\"\\x41\""),
    BAD("\"\\a\""),
    BAD("\"\\'\""),
    BAD("\"\\U0041\""),
    BAD("\"\\u12G4\""),
    BAD("\"\\u 123\""),
    BAD("\"\\u-123\""),
    BAD("\"\\0\""),
    /* control characters in strings */
    BAD("\"a\tb\""),
    BAD("\"a\nb\""),
    BAD("\"a\rb\""),
    BAD("\"\x01\""),
    BAD("\"\x1f\""),
    BAD("\"a\x00"
        "b\""), /* a NUL byte */
    BAD("[\"ok\",\"\x08\"]"),
    /* invalid UTF-8 */
    BAD("\"\x80\""),
    BAD("\"\xbf\""),
    BAD("\"\xff\""),
    BAD("\"\xfe\""),
    BAD("\"\xc3\""),
    BAD("\"\xc3\x28\""),
    BAD("\"\xe2\x82\""),
    BAD("\"\xe2\x28\xa1\""),
    BAD("\"\xe2\x82"),
    BAD("\"\xf0\x9f\x98\""),
    BAD("\"\xf5\x80\x80\x80\""),
    BAD("\"\xf8\x88\x80\x80\x80\""),
    BAD("\"\xf4\x90\x80\x80\""), /* above U+10FFFF */
    /* overlong UTF-8 */
    BAD("\"\xc0\xaf\""),
    BAD("\"\xc1\xbf\""),
    BAD("\"\xc0\x80\""),
    BAD("\"\xe0\x80\xaf\""),
    BAD("\"\xe0\x9f\xbf\""),
    BAD("\"\xf0\x80\x80\xaf\""),
    BAD("\"\xf0\x8f\xbf\xbf\""),
    /* surrogates encoded in UTF-8 */
    BAD("\"\xed\xa0\x80\""),
    BAD("\"\xed\xbf\xbf\""),
    BAD("\"\xed\xa0\xbd\xed\xb8\x80\""),
    /* bytes >= 0x80 outside strings */
    BAD("[\xc3\xa9]"),
    BAD("\xef\xbb\xbf[]"),
    /* numbers */
    BAD("01"),
    BAD("[00]"),
    BAD("-01"),
    BAD("[1, 02]"),
    BAD("00.5"),
    BAD("1."),
    BAD(".5"),
    BAD("+1"),
    BAD("1e"),
    BAD("1e+"),
    BAD("1E-"),
    BAD("-"),
    BAD("[-]"),
    BAD("0x10"),
    BAD("NaN"),
    BAD("Infinity"),
    BAD("-Infinity"),
    BAD("--1"),
    BAD("1.e5"),
    BAD("1,5"),
    /* literals */
    BAD("tru"),
    BAD("True"),
    BAD("nul"),
    BAD("[fals]"),
    BAD("NULL"),
    BAD("undefined"),
    /* structure */
    BAD("[1,]"),
    BAD("[,1]"),
    BAD("[,]"),
    BAD("{\"a\":1,}"),
    BAD("{\"a\"}"),
    BAD("{a:1}"),
    BAD("{\"a\" 1}"),
    BAD("{1:2}"),
    BAD("[1 2]"),
    BAD("["),
    BAD("{"),
    BAD("[1"),
    BAD("{\"a\":"),
    BAD("{\"a\":1"),
    BAD("]"),
    BAD("}"),
    BAD(":"),
    BAD(","),
    BAD("'a'"),
    BAD("[1}"),
    BAD("{\"a\":1]"),
    BAD("{\"a\"::1}"),
    BAD("{,}"),
    BAD("[1,,2]"),
    /* valid elements first, garbage later: still no callback */
    BAD("[1,2,3,}"),
    BAD("[{\"a\":1},{\"b\":2},\"\x80\"]"),
    BAD("[1,2,3] 4"),
};

static int on_message_must_not_run(void *arg, const char *msg, size_t len)
{
    size_t *calls = arg;
    (*calls)++;
    return 0;
}

/* Strings are skipped eight bytes at a time while they hold only plain
 * ASCII: every single-byte value, at every position of a long string,
 * must still be judged as the byte-by-byte scan judges it. */
static void jsonmsg_validate_each_byte_at_each_position(void **state)
{
    (void)state;
    char body[64];
    for (int b = 0; b < 256; b++) {
        /* '"' ends the string early and '\\' escapes the next byte: a
         * valid body either way only for some; the rule below says which */
        bool ok = b >= 0x20 && b < 0x80 && b != '"' && b != '\\';
        for (size_t pos = 1; pos < 40; pos++) {
            memset(body, 'a', sizeof body);
            body[0] = '"';
            body[pos] = (char)b;
            body[41] = '"';
            const char *why = NULL;
            int rc = parley_jsonmsg_validate(body, 42, &why);
            if (ok && rc != 0)
                fail_msg("byte 0x%02x at %zu refused: %s", b, pos, why ? why : "?");
            if (!ok && rc != PARLEY_EINVAL)
                fail_msg("byte 0x%02x at %zu accepted", b, pos);
        }
    }
    /* An escape and a multi-byte character after a run of plain bytes. */
    static const char good[] = "\"aaaaaaaaaaaaaaaa\\naaaaaaaaaaaa\xc3\xa9"
                               "aaaaaaaaaaaa\\u00e9\"";
    assert_int_equal(parley_jsonmsg_validate(good, sizeof good - 1, NULL), 0);
    static const char cut[] = "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_int_equal(parley_jsonmsg_validate(cut, sizeof cut - 1, NULL), PARLEY_EINVAL);
}

static void jsonmsg_split_rejected_invalid_body(void **state)
{
    for (size_t i = 0; i < sizeof bad_bodies / sizeof bad_bodies[0]; i++) {
        const bad_t *b = &bad_bodies[i];
        size_t calls = 0, count = 999;
        const char *why = NULL;
        int rc =
            parley_jsonmsg_split(b->body, b->len, on_message_must_not_run, &calls, &count, &why);
        if (rc != PARLEY_EINVAL)
            fail_msg("invalid body #%zu '%.*s' accepted (rc %d)", i, (int)b->len, b->body, rc);
        if (calls != 0)
            fail_msg("invalid body #%zu '%.*s': callback ran %zu times", i, (int)b->len, b->body,
                     calls);
        if (!why || !*why)
            fail_msg("invalid body #%zu '%.*s': no reason given", i, (int)b->len, b->body);
        assert_int_equal(count, 999);

        why = NULL;
        assert_int_equal(parley_jsonmsg_validate(b->body, b->len, &why), PARLEY_EINVAL);
        assert_non_null(why);
        /* why may be NULL. */
        assert_int_equal(parley_jsonmsg_validate(b->body, b->len, NULL), PARLEY_EINVAL);
    }
}

static void jsonmsg_split_rejected_length_cuts_body(void **state)
{
    /* The length, not a NUL, ends the body. */
    const char *body = "[1,2]";
    size_t calls = 0, count = 0;
    assert_int_equal(parley_jsonmsg_split(body, 4, on_message_must_not_run, &calls, &count, NULL),
                     PARLEY_EINVAL);
    assert_int_equal(calls, 0);
    assert_int_equal(parley_jsonmsg_validate("{}", 1, NULL), PARLEY_EINVAL);
    assert_int_equal(parley_jsonmsg_validate("1234", 2, NULL), 0);
}

/* "[[[...]]]" (or objects) nested depth levels; caller frees. */
static char *nested(int depth, bool objects, size_t *len)
{
    size_t open = objects ? 5 : 1; /* {"a": or [ */
    size_t n = (size_t)depth * (open + 1) + 1;
    char *s = malloc(n + 1);
    assert_non_null(s);
    size_t k = 0;
    for (int i = 0; i < depth; i++) {
        memcpy(s + k, objects ? "{\"a\":" : "[", open);
        k += open;
    }
    s[k++] = '1';
    for (int i = 0; i < depth; i++)
        s[k++] = objects ? '}' : ']';
    s[k] = '\0';
    *len = k;
    return s;
}

static void jsonmsg_validate_depth_limit_exact_max(void **state)
{
    for (int objects = 0; objects <= 1; objects++) {
        size_t len;
        char *s = nested(PARLEY_JSON_MAX_DEPTH, objects, &len);
        const char *why = NULL;
        if (parley_jsonmsg_validate(s, len, &why) != 0)
            fail_msg("depth %d (%s) rejected: %s", PARLEY_JSON_MAX_DEPTH,
                     objects ? "objects" : "arrays", why ? why : "?");
        if (!objects) {
            /* One message: the array nested one level less. */
            collect_t c = {s, len, 0, 0, 0, {0}, {0}};
            size_t count = 0;
            assert_int_equal(parley_jsonmsg_split(s, len, on_message, &c, &count, NULL), 0);
            assert_int_equal(count, 1);
            assert_int_equal(c.calls, 1);
            assert_ptr_equal(c.msg[0], s + 1);
            assert_int_equal(c.len[0], len - 2);
        }
        free(s);
    }
}

static void jsonmsg_validate_depth_limit_one_over(void **state)
{
    for (int objects = 0; objects <= 1; objects++) {
        size_t len, calls = 0, count = 0;
        char *s = nested(PARLEY_JSON_MAX_DEPTH + 1, objects, &len);
        const char *why = NULL;
        assert_int_equal(parley_jsonmsg_validate(s, len, &why), PARLEY_EINVAL);
        assert_non_null(why);
        assert_int_equal(
            parley_jsonmsg_split(s, len, on_message_must_not_run, &calls, &count, NULL),
            PARLEY_EINVAL);
        assert_int_equal(calls, 0);
        free(s);
    }
}

static void jsonmsg_validate_depth_limit_hostile_nesting(void **state)
{
    /* Far deeper than any C stack would survive with a recursive parser. */
    size_t n = 1000000;
    char *s = malloc(n);
    assert_non_null(s);
    memset(s, '[', n);
    assert_int_equal(parley_jsonmsg_validate(s, n, NULL), PARLEY_EINVAL);
    free(s);
}

static void jsonmsg_split_callback_stop_returned(void **state)
{
    const char *body = "[1,2,3,4]";
    collect_t c = {body, strlen(body), 0, 2, 77, {0}, {0}};
    size_t count = 999;
    assert_int_equal(parley_jsonmsg_split(body, strlen(body), on_message, &c, &count, NULL), 77);
    assert_int_equal(c.calls, 2);

    /* A negative stop value is passed through too, not mistaken for EINVAL. */
    collect_t d = {body, strlen(body), 0, 1, PARLEY_ENOMEM, {0}, {0}};
    assert_int_equal(parley_jsonmsg_split(body, strlen(body), on_message, &d, &count, NULL),
                     PARLEY_ENOMEM);
    assert_int_equal(d.calls, 1);

    /* Stopping on a scalar top-level value. */
    collect_t e = {"{}", 2, 0, 1, 5, {0}, {0}};
    assert_int_equal(parley_jsonmsg_split("{}", 2, on_message, &e, &count, NULL), 5);
    assert_int_equal(e.calls, 1);
}

/* Framing: the span that "[" span "]" turns into the array of messages. */
static void jsonmsg_frame_spans_and_counts(void **state)
{
    static const struct {
        const char *body; /* the append */
        const char *span; /* the messages, comma-separated */
        size_t count;     /* how many */
    } cases[] = {
        {"{\"a\":1}", "{\"a\":1}", 1},
        {"  42 \n", "42", 1},
        {"[1,2,3]", "1,2,3", 3},
        {" [ {\"a\":1} , [2] ]\r\n", "{\"a\":1} , [2]", 2},
        {"[[1,2],[3,4]]", "[1,2],[3,4]", 2},
        {"[[[1,2,3]]]", "[[1,2,3]]", 1},
        {"[]", "", 0},
        {"[ \t]", "", 0},
        {"\"x\"", "\"x\"", 1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t off, len, count;
        const char *why = NULL;
        const char *b = cases[i].body;
        assert_int_equal(parley_jsonmsg_frame(b, strlen(b), &off, &len, &count, &why), 0);
        assert_int_equal(count, cases[i].count);
        assert_int_equal(len, strlen(cases[i].span));
        assert_memory_equal(b + off, cases[i].span, len);
    }
}

static void jsonmsg_frame_rejected_invalid_body(void **state)
{
    static const char *const bad[] = {"", "[1,", "{\"a\"}", "[1] 2", "[01]", "\"\x01\""};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t off, len, count;
        const char *why = NULL;
        assert_int_equal(parley_jsonmsg_frame(bad[i], strlen(bad[i]), &off, &len, &count, &why),
                         PARLEY_EINVAL);
        assert_non_null(why);
    }
}

int main(void)
{
    const struct CMUnitTest jsonmsg_tests[] = {
        cmocka_unit_test(jsonmsg_frame_spans_and_counts),
        cmocka_unit_test(jsonmsg_frame_rejected_invalid_body),
        cmocka_unit_test(jsonmsg_split_flattens_one_level_top_array),
        cmocka_unit_test(jsonmsg_split_scalar_top_level_one_message),
        cmocka_unit_test(jsonmsg_split_no_messages_empty_array),
        cmocka_unit_test(jsonmsg_split_trims_whitespace_around_spans),
        cmocka_unit_test(jsonmsg_split_keeps_exact_bytes_numbers),
        cmocka_unit_test(jsonmsg_split_keeps_exact_bytes_strings),
        cmocka_unit_test(jsonmsg_validate_accepted_edge_values),
        cmocka_unit_test(jsonmsg_split_rejected_invalid_body),
        cmocka_unit_test(jsonmsg_validate_each_byte_at_each_position),
        cmocka_unit_test(jsonmsg_split_rejected_length_cuts_body),
        cmocka_unit_test(jsonmsg_validate_depth_limit_exact_max),
        cmocka_unit_test(jsonmsg_validate_depth_limit_one_over),
        cmocka_unit_test(jsonmsg_validate_depth_limit_hostile_nesting),
        cmocka_unit_test(jsonmsg_split_callback_stop_returned),
    };
    return cmocka_run_group_tests_name("jsonmsg", jsonmsg_tests, NULL, NULL);
}
