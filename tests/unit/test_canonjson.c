/*
 * test_canonjson.c — unit tests for codec/canonjson.c.
 *
 * The canonical text: whitespace, member order by bytes (with names holding
 * U+0000 and characters beyond the BMP), string escapes, the RFC 8785
 * number vectors and example, and the fixed-point property over random
 * doubles. The SHA-256 helper against FIPS 180-2 vectors. The parser: its
 * nesting limit (a million '[' included), every refusal with its reason,
 * and values of every type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/canonjson.h"
#include "parley/parley.h"

#define WHY_DEEP "JSON nested too deeply"

static json_t *parse_ok(const char *text)
{
    json_t *v = NULL;
    const char *why = NULL;
    int rc = parley_canonjson_parse(text, strlen(text), 64, &v, &why);
    if (rc != 0)
        fail_msg("parse %s: rc %d (%s)", text, rc, why ? why : "?");
    return v;
}

/* Dump v and compare with want; returns nothing, fails the test on mismatch. */
static void expect_dump(json_t *v, const char *want, const char *label)
{
    char *out = NULL;
    size_t len = 0;
    int rc = parley_canonjson_dump(v, &out, &len);
    if (rc != 0)
        fail_msg("%s: dump rc %d", label, rc);
    if (len != strlen(want) || memcmp(out, want, len) != 0)
        fail_msg("%s: got %s, want %s", label, out, want);
    assert_int_equal(out[len], '\0');
    free(out);
}

static void canonjson_dump_exact_table(void **state)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        /* Whitespace and member order. */
        {" { \"b\" : 1 ,\n\t\"a\" : [ 1 , 2 , { \"d\" : null , \"c\" : true } ] } ",
         "{\"a\":[1,2,{\"c\":true,\"d\":null}],\"b\":1}"},
        {"{ }", "{}"},
        {"[ ]", "[]"},
        {"{\"a\":{},\"b\":[],\"c\":[{}],\"d\":[[]]}", "{\"a\":{},\"b\":[],\"c\":[{}],\"d\":[[]]}"},
        /* Order by bytes: upper case first, a prefix before its extensions. */
        {"{\"b\":1,\"a\":2,\"B\":3,\"aa\":4,\"a \":5,\"\\u00e9\":6,\"z\":7,\"\":8}",
         "{\"\":8,\"B\":3,\"a\":2,\"a \":5,\"aa\":4,\"b\":1,\"z\":7,\"\xc3\xa9\":6}"},
        /* Byte order, not UTF-16 order: U+FF61 (EF BD A1) before U+1F600 (F0 9F 98 80). */
        {"{\"\\ud83d\\ude00\":1,\"\\uff61\":2}", "{\"\xef\xbd\xa1\":2,\"\xf0\x9f\x98\x80\":1}"},
        /* Scalars at the top level. */
        {"true", "true"},
        {"false", "false"},
        {"null", "null"},
        {"\"x\"", "\"x\""},
        {"0", "0"},
        {"-0", "0"},
        {"-0.0", "0"},
        {"1.0", "1"},
        {"1.50", "1.5"},
        {"1e2", "100"},
        {"1E21", "1e+21"},
        {"1e20", "1e+20"}, /* deviation c: exponent form at or above 2^63 */
        {"9.2e18", "9200000000000000000"},
        {"0.1", "0.1"},
        {"-1e-7", "-1e-7"},
        {"0.000001", "0.000001"},
        {"123456789012345678", "123456789012345678"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"-9223372036854775808.0", "-9.223372036854776e+18"}, /* -2^63 as a real */
        /* Strings: minimal escapes, lower-case hex, everything else as itself. */
        {"\"\\u0041\\/\"", "\"A/\""},
        {"\"\\u00e9\\ud83d\\ude00\"", "\"\xc3\xa9\xf0\x9f\x98\x80\""},
        {"\"\\u0008\\u0009\\u000a\\u000c\\u000d\\\"\\\\\"", "\"\\b\\t\\n\\f\\r\\\"\\\\\""},
        {"\"\\u0001\\u001F\\u001f\\u000B\"", "\"\\u0001\\u001f\\u001f\\u000b\""},
        {"\"\\u007f\\u2028\\u2029\"", "\"\x7f\xe2\x80\xa8\xe2\x80\xa9\""},
        /* RFC 8785 §3.2.2's example. */
        {"{\"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],"
         " \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\","
         " \"literals\": [null, true, false]}",
         "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
         "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = parse_ok(cases[i].in);
        expect_dump(v, cases[i].want, cases[i].in);
        json_decref(v);
    }
}

static double from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* What put_string must write for byte c, one byte at a time. */
static void escape_ref(char *out, size_t *o, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    const char *two = c == '"'    ? "\\\""
                      : c == '\\' ? "\\\\"
                      : c == '\b' ? "\\b"
                      : c == '\t' ? "\\t"
                      : c == '\n' ? "\\n"
                      : c == '\f' ? "\\f"
                      : c == '\r' ? "\\r"
                                  : NULL;
    if (two) {
        memcpy(out + *o, two, 2);
        *o += 2;
    } else if (c < 0x20) {
        out[(*o)++] = '\\';
        out[(*o)++] = 'u';
        out[(*o)++] = '0';
        out[(*o)++] = '0';
        out[(*o)++] = hex[c >> 4];
        out[(*o)++] = hex[c & 15];
    } else {
        out[(*o)++] = (char)c;
    }
}

/* Every byte value at every position of strings long enough for the
 * eight-byte scan, on plain ASCII and on UTF-8 fillers: written as the
 * byte loop writes it. */
static void canonjson_dump_string_every_byte_every_position(void **state)
{
    (void)state;
    static const char *fillers[] = {"abcdefgh", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80~"};
    enum { LEN = 37 };
    for (size_t f = 0; f < sizeof fillers / sizeof fillers[0]; f++) {
        for (int c = 0; c < 256; c++) {
            for (size_t pos = 0; pos < LEN; pos++) {
                char in[LEN], want[LEN * 6 + 3];
                size_t flen = strlen(fillers[f]), o = 0;
                for (size_t k = 0; k < LEN; k++)
                    in[k] = fillers[f][k % flen];
                in[pos] = (char)c;
                want[o++] = '"';
                for (size_t k = 0; k < LEN; k++)
                    escape_ref(want, &o, (unsigned char)in[k]);
                want[o++] = '"';
                json_t *v = json_stringn_nocheck(in, LEN);
                assert_non_null(v);
                char *out = NULL;
                size_t len = 0;
                assert_int_equal(parley_canonjson_dump(v, &out, &len), 0);
                if (len != o || memcmp(out, want, o) != 0)
                    fail_msg("filler %zu, byte 0x%02x at %zu: %.*s", f, c, pos, (int)len, out);
                free(out);
                json_decref(v);
            }
        }
    }
}

static void canonjson_dump_numbers_rfc8785_vectors(void **state)
{
    /* RFC 8785 Appendix B, as ECMAScript writes them. */
    static const struct {
        uint64_t bits;
        const char *want;
    } cases[] = {
        {0x0000000000000000ULL, "0"},
        {0x8000000000000000ULL, "0"},
        {0x0000000000000001ULL, "5e-324"},
        {0x8000000000000001ULL, "-5e-324"},
        {0x7fefffffffffffffULL, "1.7976931348623157e+308"},
        {0xffefffffffffffffULL, "-1.7976931348623157e+308"},
        {0x4340000000000000ULL, "9007199254740992"},
        {0xc340000000000000ULL, "-9007199254740992"},
        {0x44b52d02c7e14af5ULL, "9.999999999999997e+22"},
        {0x44b52d02c7e14af6ULL, "1e+23"},
        {0x44b52d02c7e14af7ULL, "1.0000000000000001e+23"},
        {0x444b1ae4d6e2ef50ULL, "1e+21"},
        {0x3eb0c6f7a0b5ed8cULL, "9.999999999999997e-7"},
        {0x3eb0c6f7a0b5ed8dULL, "0.000001"},
        {0x41b3de4355555553ULL, "333333333.3333332"},
        {0x41b3de4355555554ULL, "333333333.33333325"},
        {0x41b3de4355555555ULL, "333333333.3333333"},
        {0x41b3de4355555556ULL, "333333333.3333334"},
        {0x41b3de4355555557ULL, "333333333.33333343"},
        {0xbecbf647612f3696ULL, "-0.0000033333333333333333"},
        {0x43143ff3c1cb0959ULL, "1424953923781206.2"},
        /*
         * Deviation c: integral values from 2^63 up to 1e21, which ECMAScript
         * writes as 19 to 21 plain digits, take the exponent form.
         */
        {0x4430000000000000ULL, "2.9514790517935283e+20"}, /* ES: 295147905179352830000 */
        {0x444b1ae4d6e2ef4eULL, "9.999999999999997e+20"},  /* ES: 999999999999999700000 */
        {0x444b1ae4d6e2ef4fULL, "9.999999999999999e+20"},  /* ES: 999999999999999900000 */
        {0x43e0000000000000ULL, "9.223372036854776e+18"},  /* 2^63 */
        {0xc3e0000000000000ULL, "-9.223372036854776e+18"}, /* -2^63 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_real(from_bits(cases[i].bits));
        assert_non_null(v);
        char label[40];
        snprintf(label, sizeof label, "0x%016llx", (unsigned long long)cases[i].bits);
        expect_dump(v, cases[i].want, label);
        json_decref(v);
    }
}

/* xorshift64*: reproducible bit patterns. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void canonjson_dump_fixed_point_random_reals(void **state)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = next_random(&seed);
        if (i % 4 == 1) /* also exercise ordinary magnitudes */
            bits = (bits & 0x800fffffffffffffULL) |
                   ((uint64_t)(1023 + (int)(bits >> 52) % 140 - 70) << 52);
        double d = from_bits(bits);
        if (d != d || d - d != 0) /* NaN and infinities are not JSON */
            continue;
        json_t *v = json_real(d);
        char *out = NULL, *again = NULL;
        size_t len = 0, len2 = 0;
        assert_int_equal(parley_canonjson_dump(v, &out, &len), 0);
        /* Reads back as the same double. */
        if (strtod(out, NULL) != d)
            fail_msg("0x%016llx → %s does not read back", (unsigned long long)bits, out);
        /* Parse and dump again: the same bytes. */
        json_t *back = NULL;
        const char *why = NULL;
        if (parley_canonjson_parse(out, len, 8, &back, &why) != 0)
            fail_msg("0x%016llx → %s does not parse: %s", (unsigned long long)bits, out, why);
        assert_int_equal(parley_canonjson_dump(back, &again, &len2), 0);
        assert_string_equal(again, out);
        free(again);
        free(out);
        json_decref(back);
        json_decref(v);
    }
}

static void canonjson_dump_fixed_point_documents(void **state)
{
    static const char *const docs[] = {
        "{\"z\":[1,2.5,-3e-9,{\"y\":\"\\u0000\"}],\"a\":{\"\\u00e9\":null,\"e\":\"\\n\"}}",
        "[9223372036854775807,-9223372036854775808,1e308,5e-324,0.1,100,1e20]",
        /* Integral reals on both sides of the int64_t range. */
        "[-9223372036854775808.0,9223372036854775808.0,9223372036854774784.0,"
        "-9223372036854774784.0,9.3e18,-9.3e18,999999999999999999999.0]",
        "{\"workbench\":{\"panels\":[{\"id\":\"p1\",\"w\":0.333},{\"id\":\"p2\",\"w\":0.667}]}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        /* \u0000 is refused by the module's parser; read these with jansson. */
        json_error_t err;
        json_t *v = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        assert_non_null(v);
        char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        assert_int_equal(parley_canonjson_dump(v, &a, &alen), 0);
        json_t *back = json_loadb(a, alen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        assert_non_null(back);
        assert_int_equal(parley_canonjson_dump(back, &b, &blen), 0);
        assert_int_equal(alen, blen);
        assert_memory_equal(a, b, alen);
        free(a);
        free(b);
        json_decref(back);
        json_decref(v);
    }
}

static void canonjson_dump_names_with_nul_sorted(void **state)
{
    json_t *v = json_object();
    json_object_setn_new(v, "a\0b", 3, json_integer(3));
    json_object_setn_new(v, "a\0", 2, json_integer(2));
    json_object_setn_new(v, "a", 1, json_integer(1));
    json_object_setn_new(v, "\0", 1, json_integer(0));
    expect_dump(v, "{\"\\u0000\":0,\"a\":1,\"a\\u0000\":2,\"a\\u0000b\":3}", "nul names");
    json_decref(v);

    json_t *s = json_stringn("x\0y", 3);
    expect_dump(s, "\"x\\u0000y\"", "nul string");
    json_decref(s);
}

/* An array nested depth levels deep: [[[...]]]. New reference. */
static json_t *nested_arrays(size_t depth)
{
    json_t *v = json_array();
    for (size_t i = 1; i < depth; i++) {
        json_t *outer = json_array();
        json_array_append_new(outer, v);
        v = outer;
    }
    return v;
}

static void canonjson_dump_rejected_too_deep(void **state)
{
    static const struct {
        size_t depth;
        int rc;
    } cases[] = {
        {1, 0},
        {PARLEY_CANONJSON_MAX_DEPTH, 0},
        {PARLEY_CANONJSON_MAX_DEPTH + 1, PARLEY_EINVAL},
        {5000, PARLEY_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = nested_arrays(cases[i].depth);
        char *out = (char *)"unchanged";
        size_t len = 7;
        assert_int_equal(parley_canonjson_dump(v, &out, &len), cases[i].rc);
        if (cases[i].rc == 0) {
            assert_int_equal(len, 2 * cases[i].depth);
            free(out);
        } else {
            assert_string_equal(out, "unchanged");
            assert_int_equal(len, 7);
        }
        json_decref(v);
    }
    char *out;
    size_t len;
    assert_int_equal(parley_canonjson_dump(NULL, &out, &len), PARLEY_EINVAL);
}

static void canonjson_sha256_hex_known_vectors(void **state)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"{}", "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[PARLEY_CANONJSON_SHA256_HEX + 1];
        memset(out, 'x', sizeof out);
        parley_canonjson_sha256_hex(cases[i].in, strlen(cases[i].in), out);
        assert_string_equal(out, cases[i].want);
    }
    char out[PARLEY_CANONJSON_SHA256_HEX + 1];
    parley_canonjson_sha256_hex(NULL, 0, out);
    assert_string_equal(out, cases[0].want);
}

/* n copies of open, then the middle, then n copies of close. Caller frees. */
static char *nest(size_t n, const char *open, const char *middle, const char *close)
{
    size_t ol = strlen(open), ml = strlen(middle), cl = strlen(close);
    char *s = malloc(n * (ol + cl) + ml + 1);
    assert_non_null(s);
    char *p = s;
    for (size_t i = 0; i < n; i++, p += ol)
        memcpy(p, open, ol);
    memcpy(p, middle, ml);
    p += ml;
    for (size_t i = 0; i < n; i++, p += cl)
        memcpy(p, close, cl);
    *p = '\0';
    return s;
}

static void canonjson_parse_depth_limit_table(void **state)
{
    static const struct {
        size_t n;
        const char *open, *middle, *close;
        size_t max_depth;
        int rc;
    } cases[] = {
        {64, "[", "", "]", 64, 0},
        {65, "[", "", "]", 64, PARLEY_EINVAL},
        {1000, "[", "", "]", 64, PARLEY_EINVAL},
        {64, "{\"a\":", "1", "}", 64, 0},
        {65, "{\"a\":", "1", "}", 64, PARLEY_EINVAL},
        {32, "[{\"k\":", "null", "}]", 64, 0},
        {33, "[{\"k\":", "null", "}]", 64, PARLEY_EINVAL},
        {0, "[", "\"[[[[[[[[[[{{{{{{{{{{\"", "]", 0, 0},      /* brackets in a string */
        {1, "[", "\"\\\"[[[[[[[[\\\\\",\"{{{{\"", "]", 1, 0}, /* escaped quotes */
        {0, "", "7", "", 0, 0},                               /* a scalar is depth 0 */
        {1, "[", "", "]", 0, PARLEY_EINVAL},
        {1, "{", "", "}", 0, PARLEY_EINVAL},
        {2000, "[", "", "]", 2000, 0},
        {2100, "[", "", "]", SIZE_MAX, PARLEY_EINVAL}, /* jansson's own limit */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = nest(cases[i].n, cases[i].open, cases[i].middle, cases[i].close);
        json_t *v = NULL;
        const char *why = NULL;
        int rc = parley_canonjson_parse(text, strlen(text), cases[i].max_depth, &v, &why);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%.40s..., max %zu): rc %d (%s)", i, text, cases[i].max_depth, rc,
                     why ? why : "-");
        if (rc == 0)
            json_decref(v);
        else
            assert_string_equal(why, WHY_DEEP);
        free(text);
    }
}

static void canonjson_parse_rejected_million_brackets(void **state)
{
    static const char *const opens[] = {"[", "{\"a\":", "[{\"a\":"};
    for (size_t i = 0; i < sizeof opens / sizeof opens[0]; i++) {
        char *text = nest(1000000, opens[i], "", "");
        json_t *v = NULL;
        const char *why = NULL;
        assert_int_equal(parley_canonjson_parse(text, strlen(text), 64, &v, &why), PARLEY_EINVAL);
        assert_string_equal(why, WHY_DEEP);
        assert_null(v);
        /* Even with no limit of our own, jansson's stops it without a crash. */
        assert_int_equal(parley_canonjson_parse(text, strlen(text), SIZE_MAX, &v, &why),
                         PARLEY_EINVAL);
        assert_null(v);
        free(text);
    }
}

static void canonjson_parse_rejected_table(void **state)
{
    static const struct {
        const char *in;
        size_t len; /* 0: strlen(in) */
        const char *why;
    } cases[] = {
        {"", 0, "empty body: expected a JSON value"},
        {"   ", 0, "JSON text ends too early"},
        {"{", 0, "JSON text ends too early"},
        {"[1,", 0, "JSON text ends too early"},
        {"[1,]", 0, "invalid JSON"},
        {"{a:1}", 0, "invalid JSON"},
        {"'a'", 0, "invalid JSON"},
        {"NaN", 0, "invalid JSON"},
        {"[01]", 0, "invalid JSON"},
        {"\"\\ud800\"", 0, "invalid JSON"},
        {"{\"a\":1,\"a\":2}", 0, "duplicate member name in a JSON object"},
        {"{\"x\":{\"a\":1,\"a\":1}}", 0, "duplicate member name in a JSON object"},
        {"[{\"\\u00e9\":1,\"\xc3\xa9\":2}]", 0, "duplicate member name in a JSON object"},
        {"\"a\\u0000b\"", 0, "\\u0000 is not allowed in JSON strings"},
        {"{\"a\\u0000\":1}", 0, "\\u0000 is not allowed in JSON strings"},
        {"[1] [2]", 0, "unexpected data after the JSON value"},
        {"{} x", 0, "unexpected data after the JSON value"},
        {"\"\xff\"", 0, "JSON text is not valid UTF-8"},
        {"\"\xc0\xaf\"", 0, "JSON text is not valid UTF-8"},
        {"99999999999999999999", 0, "JSON number out of range (integers must fit in 64 bits)"},
        {"-9223372036854775809", 0, "JSON number out of range (integers must fit in 64 bits)"},
        {"1e400", 0, "JSON number out of range (integers must fit in 64 bits)"},
        {"[1,\0 2]", 6, "JSON text ends too early"}, /* raw NUL between values */
        {"[\"a\0b\"]", 7, "invalid JSON"},           /* raw NUL inside a string */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        json_t *v = (json_t *)(uintptr_t)0x1;
        const char *why = NULL;
        int rc = parley_canonjson_parse(cases[i].in, len, 64, &v, &why);
        if (rc != PARLEY_EINVAL)
            fail_msg("case %zu (%s) accepted (rc %d)", i, cases[i].in, rc);
        assert_ptr_equal(v, (json_t *)(uintptr_t)0x1); /* untouched */
        if (!why || strcmp(why, cases[i].why) != 0)
            fail_msg("case %zu (%s): why \"%s\", want \"%s\"", i, cases[i].in, why ? why : "NULL",
                     cases[i].why);
    }
    /* why may be NULL. */
    json_t *v = NULL;
    assert_int_equal(parley_canonjson_parse("[", 1, 64, &v, NULL), PARLEY_EINVAL);
    assert_int_equal(parley_canonjson_parse(NULL, 0, 64, &v, NULL), PARLEY_EINVAL);
}

static void canonjson_parse_accepts_any_value(void **state)
{
    static const struct {
        const char *in;
        size_t len; /* 0: strlen(in) */
        json_type type;
    } cases[] = {
        {"1", 0, JSON_INTEGER},
        {"-1.5e3", 0, JSON_REAL},
        {"\"s\"", 0, JSON_STRING},
        {"null", 0, JSON_NULL},
        {"true", 0, JSON_TRUE},
        {"[]", 0, JSON_ARRAY},
        {" {\"a\":[1,{\"b\":null}]} \n", 0, JSON_OBJECT},
        {"[1]garbage after the length", 3, JSON_ARRAY}, /* need not be NUL-terminated */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        json_t *v = NULL;
        const char *why = NULL;
        int rc = parley_canonjson_parse(cases[i].in, len, 64, &v, &why);
        if (rc != 0)
            fail_msg("case %zu (%s): rc %d (%s)", i, cases[i].in, rc, why);
        assert_int_equal(json_typeof(v), cases[i].type);
        json_decref(v);
    }
}

/* The first member outside an allowed list, or NULL. */
static void canonjson_stranger_table(void **state)
{
    static const char *const allowed[] = {"title", "metadata", NULL};
    static const struct {
        const char *json; /* an object */
        const char *want; /* the stranger, or NULL */
    } cases[] = {
        {"{}", NULL},
        {"{\"title\":\"a\"}", NULL},
        {"{\"title\":1,\"metadata\":{}}", NULL},
        {"{\"titel\":\"typo\"}", "titel"},
        {"{\"title\":\"a\",\"extra\":null}", "extra"},
        {"{\"Title\":\"a\"}", "Title"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t err;
        json_t *obj = json_loads(cases[i].json, 0, &err);
        assert_non_null(obj);
        const char *got = parley_canonjson_stranger(obj, allowed);
        if (cases[i].want)
            assert_string_equal(got, cases[i].want);
        else
            assert_null(got);
        json_decref(obj);
    }
}

int main(void)
{
    const struct CMUnitTest canonjson_tests[] = {
        cmocka_unit_test(canonjson_dump_exact_table),
        cmocka_unit_test(canonjson_dump_string_every_byte_every_position),
        cmocka_unit_test(canonjson_dump_numbers_rfc8785_vectors),
        cmocka_unit_test(canonjson_dump_fixed_point_random_reals),
        cmocka_unit_test(canonjson_dump_fixed_point_documents),
        cmocka_unit_test(canonjson_dump_names_with_nul_sorted),
        cmocka_unit_test(canonjson_dump_rejected_too_deep),
        cmocka_unit_test(canonjson_sha256_hex_known_vectors),
        cmocka_unit_test(canonjson_parse_depth_limit_table),
        cmocka_unit_test(canonjson_parse_rejected_million_brackets),
        cmocka_unit_test(canonjson_parse_rejected_table),
        cmocka_unit_test(canonjson_parse_accepts_any_value),
        cmocka_unit_test(canonjson_stranger_table),
    };
    return cmocka_run_group_tests_name("canonjson", canonjson_tests, NULL, NULL);
}
