/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hash.h - the store's hash of object ids.
 *
 * Shared with the tests, which craft ids that collide on purpose to check
 * that no stripe or tree degrades when a guest does so.
 */
#ifndef TMEM_HASH_H
#define TMEM_HASH_H

#include <stdint.h>

#include "tmem.h"

/* A bijective 64-bit mixer (the finaliser of MurmurHash3). */
static inline uint64_t tmem_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Picks an object's stripe and tree; unkeyed, so a guest can aim it. */
static inline uint64_t tmem_oid_hash(const struct tmem_oid *oid)
{
	return tmem_mix64(oid->id[0] ^
			  tmem_mix64(oid->id[1] ^ tmem_mix64(oid->id[2])));
}

#endif /* TMEM_HASH_H */
