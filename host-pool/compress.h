/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * compress.h - one page in and out of the store's compressor.
 *
 * The compressor and its settings are those of a struct tmem_config
 * (@compressor, @lz4_acceleration, @zstd_level, @max_compressed): a store
 * passes its own, so stores of different settings share a thread freely.
 * What a library needs beyond them (zstd's compression and decompression
 * contexts) is kept per thread, made on a thread's first use and freed when
 * the thread exits; it is host memory outside the store's limit, like the
 * store's per-thread scratch pages.
 *
 * No lock is taken: every call uses only its arguments and its thread's
 * own state.
 */
#ifndef TMEM_COMPRESS_H
#define TMEM_COMPRESS_H

#include <stdint.h>

#include "tmem.h"

int compress_thread_ready(const struct tmem_config *cfg);
int compress_page(const struct tmem_config *cfg, const uint8_t *src,
		  uint8_t *dst);
int decompress_page(const struct tmem_config *cfg, const uint8_t *src,
		    unsigned int len, uint8_t *dst);

#endif /* TMEM_COMPRESS_H */
