/*
 * urlpolicy.c — which webhook URLs Parley will POST to (see urlpolicy.h).
 *
 * The address ranges are tables of (prefix, length), checked in order; an
 * address is public when no row covers it. IPv6 addresses that embed an
 * IPv4 address are also judged by every IPv4 address they carry (the
 * v6_embeds table): IPv4-mapped ::ffff:0:0/96, SIIT ::ffff:0:0:0/96, the
 * well-known NAT64 prefix 64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32
 * (server in bits 32-63, client in the last 32 bits inverted) and ISATAP
 * interface ids (::0:5efe:a.b.c.d, ::200:5efe:a.b.c.d under any prefix).
 * IPv4-compatible ::/96 and the NAT64 local-use prefix 64:ff9b:1::/48 are
 * refused whatever they carry. The URL check and the connect-time check
 * (parley_urlpolicy_addr_allowed, called by server/webhook.c for every
 * socket) both decide with parley_urlpolicy_ipv6_is_public().
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/urlpolicy.h"
#include "parley/parley.h"

typedef struct v4_range {
    uint32_t net; /* network, host byte order */
    int bits;     /* prefix length */
} v4_range_t;

/* Not publicly routable (RFC 6890 and friends). */
static const v4_range_t v4_blocked[] = {
    {0x00000000, 8},  /* "this network" */
    {0x0A000000, 8},  /* RFC 1918 */
    {0x64400000, 10}, /* carrier-grade NAT */
    {0x7F000000, 8},  /* loopback */
    {0xA9FE0000, 16}, /* link-local, cloud metadata (169.254.169.254) */
    {0xAC100000, 12}, /* RFC 1918 */
    {0xC0000000, 24}, /* IETF protocol assignments */
    {0xC0000200, 24}, /* documentation */
    {0xC0A80000, 16}, /* RFC 1918 */
    {0xC6120000, 15}, /* benchmarking */
    {0xC6336400, 24}, /* documentation */
    {0xCB007100, 24}, /* documentation */
    {0xE0000000, 4},  /* multicast */
    {0xF0000000, 4},  /* reserved, broadcast */
};

typedef struct v6_range {
    unsigned char net[16]; /* network */
    int bits;              /* prefix length */
} v6_range_t;

static const v6_range_t v6_blocked[] = {
    {{0}, 96},                                  /* ::/96: unspecified, loopback, IPv4-compatible */
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48}, /* NAT64 local-use (RFC 8215) */
    {{0x01, 0x00}, 64},                         /* discard */
    {{0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48}, /* benchmarking */
    {{0x20, 0x01, 0x0d, 0xb8}, 32},             /* documentation */
    {{0xfc}, 7},                                /* unique local */
    {{0xfe, 0x80}, 10},                         /* link-local */
    {{0xfe, 0xc0}, 10},                         /* site-local (deprecated) */
    {{0xff}, 8},                                /* multicast */
};

/* An IPv4 address carried inside IPv6 addresses of a range. */
typedef struct v6_embed {
    v6_range_t range; /* the range */
    int at;           /* byte where the IPv4 address starts */
    uint32_t flip;    /* XORed with it (Teredo inverts the client's) */
} v6_embed_t;

static const v6_embed_t v6_embeds[] = {
    {{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96}, 12, 0}, /* IPv4-mapped */
    {{{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, 96}, 12, 0}, /* SIIT IPv4-translated */
    {{{0x00, 0x64, 0xff, 0x9b}, 96}, 12, 0},                   /* NAT64 well-known prefix */
    {{{0x20, 0x02}, 16}, 2, 0},                                /* 6to4 */
    {{{0x20, 0x01, 0x00, 0x00}, 32}, 4, 0},                    /* Teredo server */
    {{{0x20, 0x01, 0x00, 0x00}, 32}, 12, 0xffffffffu},         /* Teredo client */
};

static const char *const local_names[] = {
    "localhost",
    "metadata.google.internal",
    "metadata.goog",
};

bool parley_urlpolicy_ipv4_is_public(uint32_t a)
{
    for (size_t i = 0; i < sizeof v4_blocked / sizeof v4_blocked[0]; i++) {
        uint32_t mask = v4_blocked[i].bits ? ~0u << (32 - v4_blocked[i].bits) : 0;
        if ((a & mask) == v4_blocked[i].net)
            return false;
    }
    return true;
}

static bool v6_in(const unsigned char *a, const v6_range_t *r)
{
    int full = r->bits / 8, rest = r->bits % 8;
    if (memcmp(a, r->net, (size_t)full) != 0)
        return false;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((a[full] & mask) != (r->net[full] & mask))
            return false;
    }
    return true;
}

static uint32_t v4_at(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ISATAP: an interface id of 0000:5efe or 0200:5efe then an IPv4 address. */
static bool is_isatap(const unsigned char *a)
{
    return (a[8] & 0xfd) == 0 && a[9] == 0 && a[10] == 0x5e && a[11] == 0xfe;
}

bool parley_urlpolicy_ipv6_is_public(const unsigned char a[16])
{
    for (size_t i = 0; i < sizeof v6_embeds / sizeof v6_embeds[0]; i++) {
        const v6_embed_t *e = &v6_embeds[i];
        if (v6_in(a, &e->range) && !parley_urlpolicy_ipv4_is_public(v4_at(a + e->at) ^ e->flip))
            return false;
    }
    if (is_isatap(a) && !parley_urlpolicy_ipv4_is_public(v4_at(a + 12)))
        return false;
    for (size_t i = 0; i < sizeof v6_blocked / sizeof v6_blocked[0]; i++)
        if (v6_in(a, &v6_blocked[i]))
            return false;
    return true;
}

static bool is_loopback_v4(uint32_t a)
{
    return (a >> 24) == 127;
}

bool parley_urlpolicy_addr_allowed(const struct sockaddr *sa, bool dev)
{
    static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return dev ? is_loopback_v4(a) : parley_urlpolicy_ipv4_is_public(a);
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (dev)
            return memcmp(a, loop6, 16) == 0;
        return parley_urlpolicy_ipv6_is_public(a);
    }
    return false;
}

/* A name that is local by definition, whatever DNS says. */
static bool is_local_name(const char *host)
{
    size_t n = strlen(host);
    for (size_t i = 0; i < sizeof local_names / sizeof local_names[0]; i++)
        if (strcasecmp(host, local_names[i]) == 0)
            return true;
    return n > 10 && strcasecmp(host + n - 10, ".localhost") == 0;
}

/* Judge the host of an https URL (brackets kept for IPv6, as curl gives it). */
static int check_host(const char *host, const char **why)
{
    unsigned char a6[16];
    struct in_addr a4;
    if (host[0] == '[') {
        char buf[64];
        size_t n = strlen(host);
        if (n < 3 || n - 2 >= sizeof buf || host[n - 1] != ']') {
            *why = "webhook.url has a malformed IPv6 host";
            return PARLEY_EINVAL;
        }
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        if (inet_pton(AF_INET6, buf, a6) != 1) {
            *why = "webhook.url has a malformed IPv6 host";
            return PARLEY_EINVAL;
        }
        if (!parley_urlpolicy_ipv6_is_public(a6)) {
            *why = "webhook.url must not target a private, loopback, link-local or reserved "
                   "address";
            return PARLEY_EINVAL;
        }
        return 0;
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        if (!parley_urlpolicy_ipv4_is_public(ntohl(a4.s_addr))) {
            *why = "webhook.url must not target a private, loopback, link-local or reserved "
                   "address";
            return PARLEY_EINVAL;
        }
        return 0;
    }
    char name[256];
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof name) {
        *why = "webhook.url has no valid host";
        return PARLEY_EINVAL;
    }
    memcpy(name, host, n + 1);
    if (name[n - 1] == '.')
        name[n - 1] = '\0'; /* "localhost." is localhost */
    if (is_local_name(name)) {
        *why = "webhook.url must not target localhost or a metadata service over https; for "
               "development use http://localhost or http://127.0.0.x";
        return PARLEY_EINVAL;
    }
    return 0;
}

/* The development exception: localhost or 127.0.0.x. */
static bool is_dev_host(const char *host)
{
    struct in_addr a4;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) & 0xFFFFFF00u) == 0x7F000000u;
    return false;
}

int parley_urlpolicy_check(const char *url, bool *dev, const char **why)
{
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
    int rc = PARLEY_EINVAL;
    *dev = false;
    if (!url || !*url || strlen(url) > PARLEY_URLPOLICY_MAX) {
        *why = "webhook.url must be 1 to 2048 bytes";
        return PARLEY_EINVAL;
    }
    CURLU *u = curl_url();
    if (!u)
        return PARLEY_ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        *why = "webhook.url must be an absolute http(s) URL with a host";
        goto out_free;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        *why = "webhook.url must not carry a user name or password";
        goto out_free;
    }
    if (strcasecmp(scheme, "http") == 0) {
        if (!is_dev_host(host)) {
            *why = "webhook.url must use https; plain http is allowed only for http://localhost "
                   "and http://127.0.0.x (development)";
            goto out_free;
        }
        *dev = true;
        rc = 0;
    } else if (strcasecmp(scheme, "https") == 0) {
        rc = check_host(host, why);
    } else {
        *why = "webhook.url must use https";
    }
out_free:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return rc;
}
