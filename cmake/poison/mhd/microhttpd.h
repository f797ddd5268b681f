/*
 * microhttpd.h (poisoned) — libmicrohttpd is private to the HTTP layer.
 *
 * This directory comes first on the include path of every layer below
 * http (CMakeLists.txt, "Layers"), so the API, core rules, the store and
 * the codecs cannot reach the HTTP daemon: handlers see a request only
 * through api/request.h, which the transport implements.
 */
#error "microhttpd.h is private to the HTTP layer (src/http/): use api/request.h"
