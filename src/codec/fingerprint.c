/*
 * fingerprint.c — request fingerprints and key validation (see
 * fingerprint.h for the encoding, which is stored and must not change).
 *
 * Each thread keeps one digest context and the SHA-256 implementation
 * fetched once: a context made and an implementation looked up for every
 * fingerprint cost more than hashing a 1 KiB body (a replayed write makes
 * one per request). The thread's context is freed when the thread ends.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec/fingerprint.h"

/* Feed u64be(n) || p[0..n) to the digest. 1 on success, as OpenSSL does. */
static int update_field(EVP_MD_CTX *ctx, const void *p, size_t n)
{
    unsigned char len[8];
    uint64_t v = (uint64_t)n;
    for (int i = 7; i >= 0; i--) {
        len[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    return EVP_DigestUpdate(ctx, len, sizeof len) && (n == 0 || EVP_DigestUpdate(ctx, p, n));
}

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256;                    /* fetched once, kept for the process */
static pthread_key_t ctx_key;                /* this thread's EVP_MD_CTX */
static _Thread_local EVP_MD_CTX *thread_ctx; /* the same, without a lookup */

static void free_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void md_init(void)
{
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!md_sha256 || pthread_key_create(&ctx_key, free_ctx) != 0)
        abort(); /* only an allocation failure gets here */
}

/* This thread's context, made on first use. */
static EVP_MD_CTX *digest_ctx(void)
{
    if (thread_ctx)
        return thread_ctx;
    pthread_once(&md_once, md_init);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || pthread_setspecific(ctx_key, ctx) != 0)
        abort(); /* only an allocation failure gets here */
    thread_ctx = ctx;
    return ctx;
}

void parley_fingerprint(const char *method, const char *path, const char *body, size_t len,
                        char out[PARLEY_FINGERPRINT_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    if (!method)
        method = "";
    if (!path)
        path = "";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    EVP_MD_CTX *ctx = digest_ctx();
    if (!EVP_DigestInit_ex2(ctx, md_sha256, NULL) || !update_field(ctx, method, strlen(method)) ||
        !update_field(ctx, path, strlen(path)) || !update_field(ctx, body, len) ||
        !EVP_DigestFinal_ex(ctx, md, &md_len) || md_len != 32)
        abort(); /* only an allocation failure inside OpenSSL gets here */
    for (unsigned i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[PARLEY_FINGERPRINT_HEX] = '\0';
}

bool parley_idempotency_key_is_valid(const char *key)
{
    if (!key)
        return false;
    size_t i = 0;
    for (; key[i]; i++) {
        unsigned char c = (unsigned char)key[i];
        if (i == PARLEY_IDEMPOTENCY_KEY_MAX || c < 0x20 || c > 0x7e)
            return false;
    }
    return i > 0;
}
