/*
 * limits.h — the sizes of names and identifiers that arrive in requests and
 * are stored in rows: stream paths, content types, producer tokens, owners,
 * document collections and ids, server-made row ids.
 *
 * They live here, below the store, so that the codecs (codec/glob.c checks
 * a path's length) and the edge validation can use them without including
 * the storage interface; store/store.h includes this file and sizes its row
 * structs with them. Each is a byte count without the terminating NUL: a
 * buffer holding one is PARLEY_*_MAX + 1 bytes.
 *
 * Header only; no code, no state.
 */
#ifndef PARLEY_CODEC_LIMITS_H
#define PARLEY_CODEC_LIMITS_H

#define PARLEY_PATH_MAX       1024 /* bytes in a stream path */
#define PARLEY_CTYPE_MAX      255  /* bytes in a content type */
#define PARLEY_TOKEN_MAX      255  /* bytes in a Producer-Id or Stream-Seq */
#define PARLEY_OWNER_MAX      255  /* bytes in an owner (user id) */
#define PARLEY_COLLECTION_MAX 64   /* bytes in a collection name */
#define PARLEY_DOC_ID_MAX     128  /* bytes in a document id */
#define PARLEY_ROW_ID_MAX     64   /* bytes in a server-made id column */

/* The largest stream position (a Durable Streams offset has 16 digits);
 * the store refuses an append that would move a tail past it. */
#define PARLEY_OFFSET_MAX 9999999999999999ULL

#endif
