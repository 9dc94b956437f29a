/*
 * SHA-256 for configuration hashes, run ids and input identity (OpenSSL
 * libcrypto).
 */
#ifndef QES_PIPELINE_HASH_H
#define QES_PIPELINE_HASH_H

#include <stddef.h>

/* digest: 32 bytes. */
void qes_sha256(const void *data, size_t len, unsigned char digest[32]);
/* hex: 65 bytes (64 lowercase hex digits and NUL). */
void qes_sha256_hex(const void *data, size_t len, char hex[65]);
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void qes_hex(const unsigned char *bytes, size_t n, char *out);
/* SHA-256 of a whole file; *len gets its size.  Returns 0 or a QES_E* code. */
int qes_sha256_file(const char *path, char hex[65], size_t *len);

#endif
