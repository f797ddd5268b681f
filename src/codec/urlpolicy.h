/*
 * urlpolicy.h — which webhook URLs Parley will POST to (PROTOCOL.md §6.2,
 * §12.8: SSRF prevention).
 *
 * A webhook URL is accepted when it is one of:
 *
 *   1. https://<host>[:port]/... where host is a DNS name or a public IP
 *      address: not loopback, private (RFC 1918, IPv6 unique-local),
 *      link-local (this includes the cloud metadata address
 *      169.254.169.254), carrier-grade NAT, multicast, reserved or
 *      documentation ranges, nor an IPv6 address that carries such an
 *      IPv4 address (IPv4-mapped, SIIT, NAT64, 6to4, Teredo, ISATAP; the
 *      IPv4-compatible and NAT64 local-use ranges are refused whole),
 *      and not a name that is local by definition
 *      ("localhost", "*.localhost") or a metadata name
 *      ("metadata.google.internal", "metadata.goog");
 *   2. the development exception: http://localhost[:port]/... or
 *      http://127.0.0.x[:port]/... (x any), which may only ever reach a
 *      loopback address.
 *
 * Anything else is refused: other schemes, URLs with user name or password,
 * URLs longer than PARLEY_URLPOLICY_MAX. The URL is parsed with libcurl's
 * own parser (the one that will make the request), so the checked host is
 * the contacted host; numeric IPv4 spellings (2130706433, 0x7f.1, 127.1)
 * come out of it as dotted quads and are judged as such.
 *
 * A DNS name can later resolve to a private address (DNS rebinding), so the
 * delivery checks every address it connects to as well:
 * parley_urlpolicy_addr_allowed() with the dev flag of the URL's check.
 *
 * Pure functions, thread-safe.
 */
#ifndef PARLEY_CODEC_URLPOLICY_H
#define PARLEY_CODEC_URLPOLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define PARLEY_URLPOLICY_MAX 2048 /* longest webhook URL, in bytes */

/*
 * Judge url (NUL-terminated). 0 when accepted, with *dev set when it is the
 * development exception (http to loopback); PARLEY_EINVAL with a static
 * *why otherwise; PARLEY_ENOMEM.
 */
int parley_urlpolicy_check(const char *url, bool *dev, const char **why);

/* Whether a connection to sa may be made for a URL whose check gave dev:
 * dev allows loopback addresses only, otherwise public addresses only. */
bool parley_urlpolicy_addr_allowed(const struct sockaddr *sa, bool dev);

/* Whether the IPv4 address a (host byte order) / IPv6 address (16 bytes,
 * network order) is publicly routable by the rules above. */
bool parley_urlpolicy_ipv4_is_public(uint32_t a);
bool parley_urlpolicy_ipv6_is_public(const unsigned char a[16]);

#endif
