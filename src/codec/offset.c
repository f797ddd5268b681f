/*
 * offset.c — stream offsets (the format is described in offset.h).
 */
#include <string.h>

#include "codec/offset.h"
#include "parley/parley.h"

void parley_offset_format(uint64_t pos, char out[PARLEY_OFFSET_LEN + 1])
{
    memcpy(out, "0000000000000000_", 17);
    for (int i = PARLEY_OFFSET_LEN - 1; i >= 17; i--) {
        out[i] = (char)('0' + pos % 10);
        pos /= 10;
    }
    out[PARLEY_OFFSET_LEN] = '\0';
}

int parley_offset_parse(const char *s, uint64_t *pos)
{
    if (!s || strlen(s) != PARLEY_OFFSET_LEN || s[16] != '_')
        return PARLEY_EINVAL;
    uint64_t v = 0;
    for (int i = 0; i < PARLEY_OFFSET_LEN; i++) {
        if (i == 16)
            continue;
        if (s[i] < '0' || s[i] > '9')
            return PARLEY_EINVAL;
        if (i < 16) {
            if (s[i] != '0')
                return PARLEY_EINVAL; /* reserved field: not an offset we made */
            continue;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *pos = v;
    return 0;
}

int parley_offset_parse_param(const char *s, parley_offset_kind_t *kind, uint64_t *pos)
{
    *pos = 0;
    if (!s || strcmp(s, "-1") == 0) {
        *kind = PARLEY_OFFSET_START;
        return 0;
    }
    if (strcmp(s, "now") == 0) {
        *kind = PARLEY_OFFSET_NOW;
        return 0;
    }
    *kind = PARLEY_OFFSET_POS;
    return parley_offset_parse(s, pos);
}
