/*
 * console.h — the web console's files, embedded in the binary.
 *
 * The table is generated at build time by cmake/embed.cmake from the files
 * under console/ (build/console_assets.c); it ends with an entry whose
 * name is NULL. console.c serves it under /console.
 */
#ifndef PARLEY_API_CONSOLE_H
#define PARLEY_API_CONSOLE_H

#include <stddef.h>

/* One embedded file. */
typedef struct {
    const char *name;          /* file name under console/ ("index.html"), NULL at the end */
    const char *content_type;  /* its Content-Type */
    const char *etag;          /* strong ETag: a quoted prefix of its SHA-256 */
    const unsigned char *data; /* its bytes */
    size_t len;                /* how many */
} parley_console_asset_t;

extern const parley_console_asset_t parley_console_assets[];

#endif
