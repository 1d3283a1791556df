/*
 * The hash functions every placement decision rests on (spec 4.2, 6.2):
 * FNV-1a 64 and the mixing built on it. Bit-exact with upstream.
 */
#ifndef SHEEPDOG_HASH_H
#define SHEEPDOG_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A_64_INIT UINT64_C(0xcbf29ce484222325)

uint64_t fnv_64a_buf(const void *buf, size_t len, uint64_t hval);
/* mix(v, basis) = fnv(8 LE bytes of v, basis) */
uint64_t fnv_64a_u64(uint64_t v, uint64_t basis);
uint64_t sd_hash_buf(const void *buf, size_t len);
uint64_t sd_hash_u64(uint64_t v);
uint64_t sd_hash_next(uint64_t h);
/* Low 24 bits of FNV-1a-64 over strlen(name) bytes; 0 becomes 1. */
uint32_t sd_vdi_hash(const char *name);

#endif
