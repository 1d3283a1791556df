/*
 * SHA-1 as FIPS 180-4 section 6.1 describes it: 512-bit blocks, an
 * 80-word message schedule, big-endian words and a 64-bit bit count in the
 * padding. Written for clarity; it hashes a 4 MiB object in a few ms, which
 * is far below the disk read that precedes it.
 */
#include <stdio.h>
#include <string.h>

#include "sheepdog/sha1.h"

static inline uint32_t rol32(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a, b, c, d, e;

	for (int t = 0; t < 16; t++)
		w[t] = get_be32(p + 4 * t);
	for (int t = 16; t < 80; t++)
		w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	for (int t = 0; t < 80; t++) {
		uint32_t f, k, tmp;

		if (t < 20) {
			f = (b & c) | (~b & d); /* Ch */
			k = 0x5a827999;
		} else if (t < 40) {
			f = b ^ c ^ d; /* Parity */
			k = 0x6ed9eba1;
		} else if (t < 60) {
			f = (b & c) | (b & d) | (c & d); /* Maj */
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		tmp = rol32(a, 5) + f + e + k + w[t];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = tmp;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void sha1_init(struct sha1_ctx *ctx)
{
	ctx->h[0] = 0x67452301;
	ctx->h[1] = 0xefcdab89;
	ctx->h[2] = 0x98badcfe;
	ctx->h[3] = 0x10325476;
	ctx->h[4] = 0xc3d2e1f0;
	ctx->len = 0;
	ctx->fill = 0;
}

void sha1_update(struct sha1_ctx *ctx, const void *data, size_t len)
{
	const uint8_t *p = data;

	ctx->len += len;
	if (ctx->fill) {
		size_t n = SHA1_BLOCK_SIZE - ctx->fill;

		if (n > len)
			n = len;
		memcpy(ctx->block + ctx->fill, p, n);
		ctx->fill += n;
		p += n;
		len -= n;
		if (ctx->fill < SHA1_BLOCK_SIZE)
			return;
		sha1_block(ctx->h, ctx->block);
		ctx->fill = 0;
	}
	for (; len >= SHA1_BLOCK_SIZE;
	     p += SHA1_BLOCK_SIZE, len -= SHA1_BLOCK_SIZE)
		sha1_block(ctx->h, p);
	memcpy(ctx->block, p, len);
	ctx->fill = len;
}

void sha1_final(struct sha1_ctx *ctx, uint8_t digest[SHA1_DIGEST_SIZE])
{
	uint64_t bits = ctx->len * 8;

	/* 0x80, zeros up to 56 mod 64, then the bit count big-endian */
	ctx->block[ctx->fill++] = 0x80;
	if (ctx->fill > SHA1_BLOCK_SIZE - 8) {
		memset(ctx->block + ctx->fill, 0, SHA1_BLOCK_SIZE - ctx->fill);
		sha1_block(ctx->h, ctx->block);
		ctx->fill = 0;
	}
	memset(ctx->block + ctx->fill, 0, SHA1_BLOCK_SIZE - 8 - ctx->fill);
	put_be32(ctx->block + 56, (uint32_t)(bits >> 32));
	put_be32(ctx->block + 60, (uint32_t)bits);
	sha1_block(ctx->h, ctx->block);
	for (int i = 0; i < 5; i++)
		put_be32(digest + 4 * i, ctx->h[i]);
	memset(ctx, 0, sizeof(*ctx));
}

void sha1_buf(const void *data, size_t len, uint8_t digest[SHA1_DIGEST_SIZE])
{
	struct sha1_ctx ctx;

	sha1_init(&ctx);
	sha1_update(&ctx, data, len);
	sha1_final(&ctx, digest);
}

char *sha1_to_hex(const uint8_t digest[SHA1_DIGEST_SIZE], char out[41])
{
	for (int i = 0; i < SHA1_DIGEST_SIZE; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
	return out;
}
