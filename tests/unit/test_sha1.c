/*
 * SHA-1 against the FIPS 180 example vectors ("abc", the 448-bit message,
 * one million 'a', the empty string), the padding boundaries around 56 and
 * 64 bytes, and incremental updates split at awkward places giving the same
 * digest as one call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sheepdog/sha1.h"

static void check_digest(const void *data, size_t len, const char *want)
{
	uint8_t d[SHA1_DIGEST_SIZE];
	char hex[41];

	sha1_buf(data, len, d);
	assert_string_equal(sha1_to_hex(d, hex), want);
}

static void test_fips_abc(void **state)
{
	check_digest("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

static void test_fips_448_bit_message(void **state)
{
	const char *m =
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	assert_int_equal(strlen(m) * 8, 448);
	check_digest(m, strlen(m), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

static void test_fips_million_a(void **state)
{
	size_t n = 1000000;
	char *m = malloc(n);

	assert_non_null(m);
	memset(m, 'a', n);
	check_digest(m, n, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	free(m);
}

static void test_empty_string(void **state)
{
	check_digest("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

/* The length field either fits after the 0x80 byte or spills into an extra
 * block: 55 and 56 bytes straddle that edge, 63/64/65 the block edge. */
static void test_padding_boundaries(void **state)
{
	static const struct {
		size_t n;
		const char *want;
	} v[] = {
	    {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
	    {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
	    {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
	    {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
	    {65, "11655326c708d70319be2610e8a57d9a5b959d3b"},
	    {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
	    {120, "f34c1488385346a55709ba056ddd08280dd4c6d6"},
	};
	char m[128];

	memset(m, 'a', sizeof(m));
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		check_digest(m, v[i].n, v[i].want);
}

static void test_incremental_equals_one_shot(void **state)
{
	static const size_t splits[] = {1, 3, 63, 64, 65, 127, 500};
	uint8_t m[768], one[SHA1_DIGEST_SIZE], inc[SHA1_DIGEST_SIZE];
	char hex[41];

	for (size_t i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t)i;
	sha1_buf(m, sizeof(m), one);
	assert_string_equal(sha1_to_hex(one, hex),
			    "ac2a264c8ec1f4232a40854e8239bc3a697ab1d2");
	for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
		struct sha1_ctx ctx;

		sha1_init(&ctx);
		for (size_t off = 0; off < sizeof(m); off += splits[s]) {
			size_t n = sizeof(m) - off;

			sha1_update(&ctx, m + off,
				    n < splits[s] ? n : splits[s]);
		}
		sha1_final(&ctx, inc);
		assert_memory_equal(one, inc, SHA1_DIGEST_SIZE);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fips_abc),
	    cmocka_unit_test(test_fips_448_bit_message),
	    cmocka_unit_test(test_fips_million_a),
	    cmocka_unit_test(test_empty_string),
	    cmocka_unit_test(test_padding_boundaries),
	    cmocka_unit_test(test_incremental_equals_one_shot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
