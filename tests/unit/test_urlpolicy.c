/*
 * test_urlpolicy.c — unit tests for codec/urlpolicy.c.
 *
 * One table of webhook URLs with the expected verdict (refused, https, or
 * the development exception), covering §12.8: schemes, the localhost
 * exception and its limits, private, loopback, link-local and metadata
 * targets in IPv4 and IPv6, numeric IPv4 spellings, credentials in the
 * URL. A second table judges connect-time addresses with and without the
 * development flag.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "codec/urlpolicy.h"
#include "parley/parley.h"

enum verdict { NO, HTTPS, DEV };

typedef struct url_case {
    const char *url;      /* the webhook URL */
    enum verdict verdict; /* expected */
} url_case_t;

static const url_case_t urls[] = {
    {"https://hooks.example.com/x", HTTPS},
    {"https://hooks.example.com:8443/x?y=1", HTTPS},
    {"https://93.184.216.34/hook", HTTPS},
    {"https://[2606:2800:220:1::]/hook", HTTPS},
    {"http://localhost/hook", DEV},
    {"http://localhost:9000/hook", DEV},
    {"http://LOCALHOST/hook", DEV},
    {"http://127.0.0.1:4000/webhook", DEV},
    {"http://127.0.0.255/x", DEV},
    {"http://127.0.1.1/x", NO},         /* only 127.0.0.x */
    {"http://10.0.0.1/hook", NO},       /* the conformance suite's case */
    {"http://hooks.example.com/x", NO}, /* http beyond localhost */
    {"http://[::1]/x", NO},
    {"https://localhost/x", NO},
    {"https://a.localhost/x", NO},
    {"https://localhost./x", NO},
    {"https://metadata.google.internal/x", NO},
    {"https://127.0.0.1/x", NO},
    {"https://10.1.2.3/x", NO},
    {"https://172.16.0.1/x", NO},
    {"https://172.31.255.255/x", NO},
    {"https://172.32.0.1/x", HTTPS},
    {"https://192.168.1.1/x", NO},
    {"https://169.254.169.254/latest/meta-data", NO},
    {"https://100.64.0.1/x", NO},
    {"https://0.0.0.0/x", NO},
    {"https://224.0.0.1/x", NO},
    {"https://255.255.255.255/x", NO},
    {"https://2130706433/x", NO}, /* 127.0.0.1 spelled as one number */
    {"https://0x7f.1/x", NO},     /* 127.0.0.1 spelled in hex */
    {"https://[::1]/x", NO},
    {"https://[::]/x", NO},
    {"https://[fe80::1]/x", NO},
    {"https://[fc00::1]/x", NO},
    {"https://[fd12:3456::1]/x", NO},
    {"https://[::ffff:10.0.0.1]/x", NO},
    {"https://[::ffff:93.184.216.34]/x", HTTPS},
    {"https://[64:ff9b::a00:1]/x", NO}, /* NAT64 of 10.0.0.1 */
    {"https://[ff02::1]/x", NO},
    {"https://user:pw@hooks.example.com/x", NO},
    {"http://user@localhost/x", NO},
    {"ftp://hooks.example.com/x", NO},
    {"file:///etc/passwd", NO},
    {"gopher://localhost/x", NO},
    {"hooks.example.com/x", NO},
    {"", NO},
    {"https://", NO},
    {"https://exa mple.com/", NO},
};

static void urlpolicy_check_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        const char *why = NULL;
        bool dev = true;
        int rc = parley_urlpolicy_check(urls[i].url, &dev, &why);
        enum verdict got = rc ? NO : dev ? DEV : HTTPS;
        if (rc && rc != PARLEY_EINVAL)
            fail_msg("%s: rc %d", urls[i].url, rc);
        if (got != urls[i].verdict)
            fail_msg("%s: verdict %d, want %d (%s)", urls[i].url, got, urls[i].verdict,
                     why ? why : "");
        if (rc && !why)
            fail_msg("%s: refused without a reason", urls[i].url);
    }
}

static void urlpolicy_check_too_long(void **state)
{
    (void)state;
    char url[PARLEY_URLPOLICY_MAX + 64] = "https://hooks.example.com/";
    memset(url + strlen(url), 'a', PARLEY_URLPOLICY_MAX);
    url[PARLEY_URLPOLICY_MAX + 1] = '\0';
    const char *why = NULL;
    bool dev;
    assert_int_equal(parley_urlpolicy_check(url, &dev, &why), PARLEY_EINVAL);
}

typedef struct addr_case {
    const char *addr; /* numeric address */
    bool dev;         /* the URL's development flag */
    bool allowed;     /* expected */
} addr_case_t;

static void urlpolicy_addr_allowed_table(void **state)
{
    (void)state;
    static const addr_case_t cases[] = {
        {"127.0.0.1", true, true},
        {"127.9.9.9", true, true},
        {"::1", true, true},
        {"10.0.0.1", true, false},
        {"93.184.216.34", true, false},
        {"93.184.216.34", false, true},
        {"127.0.0.1", false, false},
        {"10.0.0.1", false, false},
        {"169.254.169.254", false, false},
        {"192.168.0.10", false, false},
        {"::1", false, false},
        {"fe80::1", false, false},
        {"2606:2800:220:1::", false, true},
        {"::ffff:127.0.0.1", false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        if (strchr(cases[i].addr, ':')) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, cases[i].addr, &a->sin6_addr), 1);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, cases[i].addr, &a->sin_addr), 1);
        }
        bool got = parley_urlpolicy_addr_allowed((struct sockaddr *)&ss, cases[i].dev);
        if (got != cases[i].allowed)
            fail_msg("%s (dev %d): allowed %d, want %d", cases[i].addr, cases[i].dev, got,
                     cases[i].allowed);
    }
}

/*
 * IPv6 ranges that carry an IPv4 address: each one is judged by the IPv4
 * address it carries, the same way when the URL is checked and when the
 * delivery connects (one function decides both).
 */
typedef struct v6_case {
    const char *addr; /* numeric IPv6 address */
    bool public_;     /* expected */
    const char *what; /* why */
} v6_case_t;

static const v6_case_t v6_cases[] = {
    {"2606:2800:220:1::", true, "an ordinary public address"},
    {"2002:a9fe:a9fe::", false, "6to4 of 169.254.169.254"},
    {"2002:7f00:1::", false, "6to4 of 127.0.0.1"},
    {"2002:a00:1::1", false, "6to4 of 10.0.0.1"},
    {"2002:c0a8:101:1::1", false, "6to4 of 192.168.1.1"},
    {"2002:5db8:d822::1", true, "6to4 of a public address"},
    {"64:ff9b::7f00:1", false, "NAT64 (well-known prefix) of 127.0.0.1"},
    {"64:ff9b::a9fe:a9fe", false, "NAT64 (well-known prefix) of 169.254.169.254"},
    {"64:ff9b::5db8:d822", true, "NAT64 (well-known prefix) of a public address"},
    {"64:ff9b:1::a9fe:a9fe", false, "NAT64 local-use prefix 64:ff9b:1::/48"},
    {"64:ff9b:1:ffff::5db8:d822", false, "NAT64 local-use prefix, whatever it carries"},
    {"::ffff:0:169.254.169.254", false, "SIIT ::ffff:0:0/96 of 169.254.169.254"},
    {"::ffff:0:10.0.0.1", false, "SIIT of 10.0.0.1"},
    {"::ffff:0:93.184.216.34", true, "SIIT of a public address"},
    {"::ffff:169.254.169.254", false, "IPv4-mapped of 169.254.169.254"},
    {"::169.254.169.254", false, "IPv4-compatible of 169.254.169.254"},
    {"::127.0.0.1", false, "IPv4-compatible of 127.0.0.1"},
    {"::93.184.216.34", false, "IPv4-compatible (deprecated), whatever it carries"},
    {"2001:0:4136:e378:8000:63bf:f5ff:fffe", false, "Teredo, client 10.0.0.1"},
    {"2001:0:4136:e378::5601:5601", false, "Teredo, client 169.254.169.254"},
    {"2001:0:7f00:1::a247:27dd", false, "Teredo, server 127.0.0.1"},
    {"2001:0:a9fe:a9fe::a247:27dd", false, "Teredo, server 169.254.169.254"},
    {"2001:0:4136:e378:8000:63bf:a247:27dd", true, "Teredo, server and client public"},
    {"2606:2800:220:1:0:5efe:a00:1", false, "ISATAP interface id of 10.0.0.1"},
    {"2606:2800:220:1:200:5efe:a9fe:a9fe", false, "ISATAP interface id of 169.254.169.254"},
    {"2606:2800:220:1:200:5efe:5db8:d822", true, "ISATAP interface id of a public address"},
    {"2001:2::1", false, "benchmarking 2001:2::/48"},
};

static void urlpolicy_ipv6_transition_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof v6_cases / sizeof v6_cases[0]; i++) {
        const v6_case_t *c = &v6_cases[i];
        struct sockaddr_in6 sa;
        char url[128];
        const char *why = NULL;
        bool dev = false;
        memset(&sa, 0, sizeof sa);
        sa.sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, c->addr, &sa.sin6_addr), 1);
        snprintf(url, sizeof url, "https://[%s]/hook", c->addr);
        bool pub = parley_urlpolicy_ipv6_is_public(sa.sin6_addr.s6_addr);
        bool url_ok = parley_urlpolicy_check(url, &dev, &why) == 0;
        bool conn_ok = parley_urlpolicy_addr_allowed((struct sockaddr *)&sa, false);
        if (pub != c->public_ || url_ok != c->public_ || conn_ok != c->public_) {
            print_error("%s (%s): public %d, URL accepted %d, connect allowed %d; want %d\n",
                        c->addr, c->what, pub, url_ok, conn_ok, c->public_);
            failures++;
        }
        if (!url_ok && !why)
            fail_msg("%s: refused without a reason", url);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest urlpolicy_tests[] = {
        cmocka_unit_test(urlpolicy_check_table),
        cmocka_unit_test(urlpolicy_check_too_long),
        cmocka_unit_test(urlpolicy_addr_allowed_table),
        cmocka_unit_test(urlpolicy_ipv6_transition_table),
    };
    return cmocka_run_group_tests_name("urlpolicy", urlpolicy_tests, NULL, NULL);
}
