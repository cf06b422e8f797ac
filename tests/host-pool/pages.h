/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pages.h - deterministic test pages of every shape the store treats apart:
 * zero, same-filled, compressible to roughly a chosen size, incompressible.
 */
#ifndef TMEM_TEST_PAGES_H
#define TMEM_TEST_PAGES_H

#include <stdint.h>
#include <string.h>

#include "tmem.h"

enum page_shape { SHAPE_ZERO, SHAPE_SAME, SHAPE_SIZED, SHAPE_RANDOM,
		  SHAPE__MAX };

static inline uint64_t page_rng(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/*
 * Fill @page from @seed.  SHAPE_SIZED puts @random_bytes of noise before a
 * repeated phrase, so LZ4 output is a little over @random_bytes.
 */
static inline void page_make(uint8_t *page, enum page_shape shape,
			     uint64_t seed, unsigned int random_bytes)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	unsigned int i;

	switch (shape) {
	case SHAPE_ZERO:
		memset(page, 0, TMEM_PAGE_SIZE);
		break;
	case SHAPE_SAME: {
		uint32_t w = (uint32_t)page_rng(&x) | 1;

		for (i = 0; i < TMEM_PAGE_SIZE; i += 4)
			memcpy(page + i, &w, 4);
		break;
	}
	case SHAPE_SIZED:
		if (random_bytes > TMEM_PAGE_SIZE)
			random_bytes = TMEM_PAGE_SIZE;
		for (i = 0; i < random_bytes; i++)
			page[i] = (uint8_t)page_rng(&x);
		for (; i < TMEM_PAGE_SIZE; i++)
			page[i] = "tmem page text "[i % 15];
		memcpy(page + TMEM_PAGE_SIZE - 8, &seed, 8);
		break;
	default:
		for (i = 0; i < TMEM_PAGE_SIZE; i += 8) {
			uint64_t v = page_rng(&x);

			memcpy(page + i, &v, 8);
		}
	}
}

/* A page's shape and size derived from its seed alone, for model tests. */
static inline void page_from_seed(uint8_t *page, uint64_t seed)
{
	uint64_t x = seed ^ 0x5bd1e995;
	unsigned int r = (unsigned int)(page_rng(&x) % 100);

	if (r < 10)
		page_make(page, SHAPE_ZERO, seed, 0);
	else if (r < 15)
		page_make(page, SHAPE_SAME, seed, 0);
	else if (r < 25)
		page_make(page, SHAPE_RANDOM, seed, 0);
	else
		page_make(page, SHAPE_SIZED, seed,
			  (unsigned int)(page_rng(&x) % 3600));
}

static inline struct iovec page_iov(uint8_t *page)
{
	struct iovec v = { .iov_base = page, .iov_len = TMEM_PAGE_SIZE };

	return v;
}

#endif
