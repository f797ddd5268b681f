/*
 * test_search.c — unit tests for core/search.c: the query language and the
 * indexed text of a message.
 *
 * Table-driven: each row is a query and the terms it parses to (kind and
 * tokens), or the refusal it gets. Every accepted term holds only token
 * characters and single spaces, whatever the input: no quote, star,
 * operator or control character reaches a backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/search.h"
#include "parley/parley.h"

#define W PARLEY_SEARCH_WORD
#define P PARLEY_SEARCH_PREFIX
#define Q PARLEY_SEARCH_PHRASE

typedef struct parse_case {
    const char *q;             /* the query */
    int nterms;                /* terms expected (0: refused) */
    parley_search_kind_t k[3]; /* kinds of the first terms */
    const char *t[3];          /* their texts */
} parse_case_t;

static const parse_case_t cases[] = {
    {"hotel", 1, {W}, {"hotel"}},
    {"  hotel   river ", 2, {W, W}, {"hotel", "river"}},
    {"riv*", 1, {P}, {"riv"}},
    {"riv**", 1, {P}, {"riv"}},
    {"\"the hotel bill\"", 1, {Q}, {"the hotel bill"}},
    {"\"eggs and bre\"*", 1, {P}, {"eggs and bre"}},
    {"e-mail", 1, {W}, {"e mail"}},
    {"ana.silva@example.com", 1, {W}, {"ana silva example com"}},
    {"foo-bar*", 1, {P}, {"foo bar"}},
    {"café", 1, {W}, {"café"}},
    {"a \"b c\" d*", 3, {W, Q, P}, {"a", "b c", "d"}},
    {"hello AND", 2, {W, W}, {"hello", "AND"}},
    {"NOT (x) -y +z", 4, {W, W, W}, {"NOT", "x", "y"}},
    {"* hello", 1, {W}, {"hello"}},
    {"he*llo", 1, {W}, {"he llo"}},
    {"'hello' <-> x:*", 2, {W, P}, {"hello", "x"}},
    {"\"\" hello", 1, {W}, {"hello"}},
    {"", 0, {W}, {NULL}},
    {"*", 0, {W}, {NULL}},
    {"\"\"", 0, {W}, {NULL}},
    {"\"unclosed", 0, {W}, {NULL}},
    {"a \"b", 0, {W}, {NULL}},
    {"- + ( ) : ^ ~ ! & |", 0, {W}, {NULL}},
    {"a b c d e f g h i j k l m n o p q", 0, {W}, {NULL}},
    {"a b c d e f g h i j k l m n o p * -", 16, {W}, {"a"}},
    {"\xff\xfe", 0, {W}, {NULL}},
};

static bool clean(const char *t)
{
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p >= 0x80 || (*p == ' ' && p[1] && p[1] != ' ' && p != (const unsigned char *)t)))
            return false;
    return *t != '\0';
}

static void search_parse_table(void **state)
{
    (void)state;
    static parley_search_query_t q;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const parse_case_t *c = &cases[i];
        const char *why = NULL;
        int rc = parley_search_parse(c->q, &q, &why);
        if (c->nterms == 0) {
            assert_int_equal(rc, PARLEY_EINVAL);
            assert_non_null(why);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(q.nterms, c->nterms);
        for (int j = 0; j < 3 && c->t[j]; j++) {
            assert_int_equal(q.terms[j].kind, c->k[j]);
            assert_string_equal(q.terms[j].text, c->t[j]);
        }
        for (int j = 0; j < q.nterms; j++)
            assert_true(clean(q.terms[j].text));
    }
}

static void search_parse_refuses_long_queries(void **state)
{
    (void)state;
    static char big[PARLEY_SEARCH_QUERY_MAX + 2];
    static parley_search_query_t q;
    const char *why = NULL;
    memset(big, 'x', PARLEY_SEARCH_QUERY_MAX);
    assert_int_equal(parley_search_parse(big, &q, &why), 0); /* exactly the limit */
    big[PARLEY_SEARCH_QUERY_MAX] = 'x';
    assert_int_equal(parley_search_parse(big, &q, &why), PARLEY_EINVAL);
    assert_non_null(why);
    assert_int_equal(parley_search_parse(NULL, &q, &why), PARLEY_EINVAL);
}

/* Every byte value alone and around a word: accepted terms stay clean. */
static void search_parse_every_byte(void **state)
{
    (void)state;
    static parley_search_query_t q;
    char s[8];
    for (int b = 1; b < 256; b++) {
        snprintf(s, sizeof s, "a%cb", b);
        const char *why = NULL;
        if (parley_search_parse(s, &q, &why) == 0)
            for (int j = 0; j < q.nterms; j++)
                assert_true(clean(q.terms[j].text));
    }
}

static void search_text_of_contents(void **state)
{
    (void)state;
    static const struct {
        const char *content; /* JSON */
        const char *text;    /* indexed */
    } rows[] = {
        {"\"hello\"", "hello"},
        {"\"\"", ""},
        {"[\"a\", {\"type\":\"text\",\"text\":\"b\"}, {\"type\":\"image\",\"url\":\"u\"}, \"\", 3]",
         "a\nb"},
        {"[{\"text\": 5}, {\"text\": \"\"}, {\"text\": \"c\"}]", "c"},
        {"{\"text\": \"an object is not a list\"}", ""},
        {"42", ""},
        {"null", ""},
        {"[[\"nested\"]]", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_error_t err;
        json_t *v = json_loads(rows[i].content, JSON_DECODE_ANY, &err);
        assert_non_null(v);
        parley_buf_t b;
        parley_buf_init(&b, 1 << 20);
        assert_int_equal(parley_search_text(v, &b), 0);
        assert_string_equal(b.len ? b.data : "", rows[i].text);
        parley_buf_free(&b);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(search_parse_table),
        cmocka_unit_test(search_parse_refuses_long_queries),
        cmocka_unit_test(search_parse_every_byte),
        cmocka_unit_test(search_text_of_contents),
    };
    return cmocka_run_group_tests_name("search", tests, NULL, NULL);
}
