// SPDX-License-Identifier: BSD-3-Clause
/*
 * compress.c - the store's compressors: LZ4, zstd, or none.
 *
 * LZ4 needs no state between calls.  zstd keeps a compression and a
 * decompression context per thread, made on the thread's first zstd call
 * and freed by a thread-specific-data destructor when the thread exits:
 * allocating a context per page would cost more than compressing it.
 *
 * zstd frames are written without magic number, content size or checksum
 * (5 bytes less per page than the default frame, see docs/benchmarks.md):
 * the store keeps each page's compressed length and knows it decompresses
 * to exactly one page, and the swap image checksums its own slots.  Such
 * frames are only ever read back by this file in the same process.
 */
#define ZSTD_STATIC_LINKING_ONLY	/* ZSTD_c_format, ZSTD_d_format */
#include <lz4.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "compress.h"

/**
 * struct zstd_ctx - a thread's zstd state
 * @cctx: compression context; its frame parameters are set once
 * @dctx: decompression context
 * @level: the compression level @cctx is set to (0: none yet)
 */
struct zstd_ctx {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	int level;
};

static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;
static pthread_key_t zstd_key;
static int zstd_key_err;
static _Thread_local struct zstd_ctx *tls_zstd;

/* Also the destructor of zstd_key: runs in the exiting thread. */
static void zstd_ctx_free(void *arg)
{
	struct zstd_ctx *z = arg;

	ZSTD_freeCCtx(z->cctx);
	ZSTD_freeDCtx(z->dctx);
	free(z);
	tls_zstd = NULL;
}

static void zstd_key_create(void)
{
	zstd_key_err = pthread_key_create(&zstd_key, zstd_ctx_free);
}

static bool zstd_ctx_setup(struct zstd_ctx *z)
{
	return !ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_format,
						    ZSTD_f_zstd1_magicless)) &&
	       !ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx,
						    ZSTD_c_contentSizeFlag, 0)) &&
	       !ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx,
						    ZSTD_c_checksumFlag, 0)) &&
	       !ZSTD_isError(ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_format,
						    ZSTD_f_zstd1_magicless));
}

/* This thread's contexts, made on first use; NULL if out of memory. */
static struct zstd_ctx *zstd_ctx_get(void)
{
	struct zstd_ctx *z = tls_zstd;

	if (z)
		return z;
	if (pthread_once(&zstd_once, zstd_key_create) || zstd_key_err)
		return NULL;
	z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->cctx = ZSTD_createCCtx();
	z->dctx = ZSTD_createDCtx();
	if (!z->cctx || !z->dctx || !zstd_ctx_setup(z) ||
	    pthread_setspecific(zstd_key, z)) {
		zstd_ctx_free(z);
		return NULL;
	}
	tls_zstd = z;
	return z;
}

static int zstd_compress(const struct tmem_config *cfg, const uint8_t *src,
			 uint8_t *dst)
{
	struct zstd_ctx *z = zstd_ctx_get();
	size_t n;

	if (!z)
		return -TMEM_E_NOMEM;
	/* The level may change between frames; the rest stays as set. */
	if (z->level != cfg->zstd_level) {
		n = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel,
					   cfg->zstd_level);
		if (ZSTD_isError(n))
			return 0;
		z->level = cfg->zstd_level;
	}
	n = ZSTD_compress2(z->cctx, dst, cfg->max_compressed, src,
			   TMEM_PAGE_SIZE);
	if (!ZSTD_isError(n))
		return (int)n;
	/* dstSize_tooSmall is the usual one: more than max_compressed */
	return ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation ?
	       -TMEM_E_NOMEM : 0;
}

static int zstd_decompress(const uint8_t *src, unsigned int len,
			   uint8_t *dst)
{
	struct zstd_ctx *z = zstd_ctx_get();
	size_t n;

	if (!z)
		return -TMEM_E_NOMEM;
	/* Never writes beyond one page: too much output is an error. */
	n = ZSTD_decompressDCtx(z->dctx, dst, TMEM_PAGE_SIZE, src, len);
	return !ZSTD_isError(n) && n == TMEM_PAGE_SIZE ? 0 : -TMEM_E_IO;
}

/**
 * compress_thread_ready() - make this thread's state for @cfg's compressor
 * @cfg: the store's settings
 *
 * A get calls this before it takes a page out of the store, so that its
 * decompression cannot then fail for want of memory.  Later calls in the
 * same thread cost a thread-local load.
 *
 * Return: 0, or -TMEM_E_NOMEM.
 */
int compress_thread_ready(const struct tmem_config *cfg)
{
	if (cfg->compressor != TMEM_COMP_ZSTD)
		return 0;
	return zstd_ctx_get() ? 0 : -TMEM_E_NOMEM;
}

/**
 * compress_page() - compress one page with the store's compressor
 * @cfg: the store's settings
 * @src: TMEM_PAGE_SIZE bytes
 * @dst: room for @cfg->max_compressed bytes
 *
 * Return: the compressed length, 1..@cfg->max_compressed; 0 if the page
 * does not compress to that (always with TMEM_COMP_NONE); -TMEM_E_NOMEM if
 * this thread's compressor state could not be allocated.
 */
int compress_page(const struct tmem_config *cfg, const uint8_t *src,
		  uint8_t *dst)
{
	switch (cfg->compressor) {
	case TMEM_COMP_LZ4:
		return LZ4_compress_fast((const char *)src, (char *)dst,
					 TMEM_PAGE_SIZE,
					 (int)cfg->max_compressed,
					 cfg->lz4_acceleration);
	case TMEM_COMP_ZSTD:
		return zstd_compress(cfg, src, dst);
	default:
		return 0;
	}
}

/**
 * decompress_page() - decompress what compress_page() made of a page
 * @cfg: the settings it was compressed with
 * @src: the compressed bytes
 * @len: their number
 * @dst: TMEM_PAGE_SIZE bytes
 *
 * Corrupt or truncated input, and input that does not decompress to
 * exactly one page, is an error: nothing is read beyond @src + @len or
 * written beyond @dst + TMEM_PAGE_SIZE, but @dst may have been written.
 *
 * Return: 0; -TMEM_E_IO if @src is not one compressed page;
 * -TMEM_E_NOMEM if this thread's state could not be allocated (never after
 * compress_thread_ready() succeeded in this thread).
 */
int decompress_page(const struct tmem_config *cfg, const uint8_t *src,
		    unsigned int len, uint8_t *dst)
{
	if (len == 0 || len > TMEM_PAGE_SIZE)
		return -TMEM_E_IO;
	switch (cfg->compressor) {
	case TMEM_COMP_LZ4:
		return LZ4_decompress_safe((const char *)src, (char *)dst,
					   (int)len, TMEM_PAGE_SIZE) ==
		       TMEM_PAGE_SIZE ? 0 : -TMEM_E_IO;
	case TMEM_COMP_ZSTD:
		return zstd_decompress(src, len, dst);
	default:
		return -TMEM_E_IO;
	}
}
