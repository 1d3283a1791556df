/*
 * SHA-1 (FIPS 180-4), the digest GET_HASH answers with (spec 2.2) so that
 * dog can compare the replicas of an object without moving their bytes.
 * It is used for consistency, not for security. Incremental: init, update
 * any number of times, final.
 */
#ifndef SHEEPDOG_SHA1_H
#define SHEEPDOG_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_SIZE 20
#define SHA1_BLOCK_SIZE 64

struct sha1_ctx {
	uint32_t h[5];
	uint64_t len; /* bytes hashed so far */
	uint8_t block[SHA1_BLOCK_SIZE];
	size_t fill; /* bytes waiting in block */
};

void sha1_init(struct sha1_ctx *ctx);
void sha1_update(struct sha1_ctx *ctx, const void *data, size_t len);
void sha1_final(struct sha1_ctx *ctx, uint8_t digest[SHA1_DIGEST_SIZE]);
/* The digest of one buffer. */
void sha1_buf(const void *data, size_t len, uint8_t digest[SHA1_DIGEST_SIZE]);
/* 40 lowercase hex digits and a NUL into out. Returns out. */
char *sha1_to_hex(const uint8_t digest[SHA1_DIGEST_SIZE], char out[41]);

#endif
