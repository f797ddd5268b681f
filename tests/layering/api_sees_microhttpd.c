/* must not compile: libmicrohttpd is private to the HTTP layer */
#include <microhttpd.h>
