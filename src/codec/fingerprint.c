/*
 * fingerprint.c — request fingerprints and key validation (see
 * fingerprint.h for the encoding, which is stored and must not change).
 */
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
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !update_field(ctx, method, strlen(method)) || !update_field(ctx, path, strlen(path)) ||
        !update_field(ctx, body, len) || !EVP_DigestFinal_ex(ctx, md, &md_len) || md_len != 32)
        abort(); /* only an allocation failure inside OpenSSL gets here */
    EVP_MD_CTX_free(ctx);
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
