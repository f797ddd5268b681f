/*
 * id.c — random ids and name predicates (the format is in id.h).
 *
 * getrandom(2) reads the same CSPRNG as /dev/urandom without a file
 * descriptor, so it works in a chroot, under a descriptor limit and after
 * fork, and never returns predictable bytes (it blocks until the pool has
 * been seeded, which on a running server has long happened). A short read
 * (only possible when a signal arrives) is continued.
 */
#include <errno.h>
#include <sys/random.h>

#include "codec/id.h"
#include "parley/parley.h"
#include "util/base64url.h"

int parley_id_new(char out[PARLEY_ID_LEN + 1])
{
    unsigned char raw[PARLEY_ID_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    parley_base64url_encode(raw, sizeof raw, out);
    return 0;
}

static bool is_lower_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool is_name_char(char c)
{
    return is_lower_name_char(c) || (c >= 'A' && c <= 'Z');
}

bool parley_id_is_valid_name(const char *s, size_t max)
{
    if (!s || max == 0)
        return false;
    size_t i = 0;
    for (; s[i]; i++) {
        if (i == max || !is_name_char(s[i]))
            return false;
    }
    return i > 0;
}

bool parley_id_is_valid_collection(const char *s)
{
    if (!s)
        return false;
    size_t i = 0;
    for (; s[i]; i++) {
        if (i == PARLEY_ID_COLLECTION_MAX || !is_lower_name_char(s[i]))
            return false;
    }
    return i > 0;
}
