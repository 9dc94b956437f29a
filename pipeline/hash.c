#include "pipeline/hash.h"
#include "common/err.h"

#include <openssl/evp.h>
#include <stdio.h>

void qes_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void qes_sha256(const void *data, size_t len, unsigned char digest[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, digest, &n, EVP_sha256(), NULL);
}

void qes_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char d[32];
    qes_sha256(data, len, d);
    qes_hex(d, 32, hex);
}

int qes_sha256_file(const char *path, char hex[65], size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return QES_ENOENT;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        fclose(f);
        return QES_ENOMEM;
    }
    unsigned char buf[65536];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
        total += n;
    }
    int rc = ferror(f) ? QES_EIO : 0;
    fclose(f);
    unsigned char d[32];
    unsigned int dl = 32;
    EVP_DigestFinal_ex(ctx, d, &dl);
    EVP_MD_CTX_free(ctx);
    qes_hex(d, 32, hex);
    if (len)
        *len = total;
    return rc;
}
