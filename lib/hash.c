/*
 * FNV-1a 64 and the mixing functions built on it (spec 4.2, 6.2). Every
 * placement decision and every VDI id depends on these being bit-exact with
 * upstream, so they are written out literally and checked against the spec's
 * test vectors in tests/unit/test_hash.c.
 */
#include <string.h>

#include "sheepdog/hash.h"
#include "sheepdog/le.h"

#define FNV_64_PRIME UINT64_C(0x100000001b3)

uint64_t fnv_64a_buf(const void *buf, size_t len, uint64_t hval)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		hval ^= p[i];
		hval *= FNV_64_PRIME;
	}
	return hval;
}

uint64_t fnv_64a_u64(uint64_t v, uint64_t basis)
{
	uint8_t b[8];

	put_le64(b, v);
	return fnv_64a_buf(b, sizeof(b), basis);
}

uint64_t sd_hash_buf(const void *buf, size_t len)
{
	uint64_t h = fnv_64a_buf(buf, len, FNV1A_64_INIT);

	return fnv_64a_u64(h, h);
}

uint64_t sd_hash_u64(uint64_t v)
{
	uint64_t h = fnv_64a_u64(v, FNV1A_64_INIT);

	return fnv_64a_u64(h, h);
}

uint64_t sd_hash_next(uint64_t h)
{
	return fnv_64a_u64(h, h);
}

uint32_t sd_vdi_hash(const char *name)
{
	uint32_t vid =
	    fnv_64a_buf(name, strlen(name), FNV1A_64_INIT) & 0xffffff;

	return vid ? vid : 1;
}
