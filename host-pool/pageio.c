// SPDX-License-Identifier: BSD-3-Clause
/*
 * pageio.c - moving one page between iovecs and the store.
 *
 * Guest pages arrive as iovecs because guest memory is scattered.  A page
 * that is one contiguous piece (the usual case) is compressed from and
 * decompressed into in place; only a page split across pieces goes through
 * a bounce buffer.
 */
#include <limits.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "pageio.h"
#include "tmem.h"

/**
 * pageio_valid() - the iovec describes exactly one page
 * @iov: pieces
 * @iovcnt: number of pieces, 1..TMEM_MAX_IOV
 */
bool pageio_valid(const struct iovec *iov, int iovcnt)
{
	size_t total = 0;
	int i;

	if (!iov || iovcnt < 1 || iovcnt > TMEM_MAX_IOV)
		return false;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len && !iov[i].iov_base)
			return false;
		if (iov[i].iov_len > TMEM_PAGE_SIZE - total)
			return false;
		total += iov[i].iov_len;
	}
	return total == TMEM_PAGE_SIZE;
}

static const struct iovec *single_piece(const struct iovec *iov, int iovcnt)
{
	int i;

	for (i = 0; i < iovcnt; i++)
		if (iov[i].iov_len)
			return iov[i].iov_len == TMEM_PAGE_SIZE ? &iov[i] :
								  NULL;
	return NULL;
}

/**
 * pageio_source() - the page as one contiguous buffer
 * @iov: a valid page iovec
 * @iovcnt: pieces
 * @bounce: TMEM_PAGE_SIZE bytes, used if the page is split
 */
const uint8_t *pageio_source(const struct iovec *iov, int iovcnt,
			     uint8_t *bounce)
{
	const struct iovec *one = single_piece(iov, iovcnt);
	size_t off = 0;
	int i;

	if (one)
		return one->iov_base;
	for (i = 0; i < iovcnt; i++) {
		memcpy(bounce + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return bounce;
}

/**
 * pageio_dest() - where to write the page: in place if contiguous, else
 *		   @bounce (then call pageio_scatter())
 * @iov: a valid page iovec
 * @iovcnt: pieces
 * @bounce: TMEM_PAGE_SIZE bytes
 */
uint8_t *pageio_dest(const struct iovec *iov, int iovcnt, uint8_t *bounce)
{
	const struct iovec *one = single_piece(iov, iovcnt);

	return one ? one->iov_base : bounce;
}

/**
 * pageio_scatter() - copy a contiguous page out to the pieces
 * @iov: a valid page iovec
 * @iovcnt: pieces
 * @src: the page
 */
void pageio_scatter(const struct iovec *iov, int iovcnt, const uint8_t *src)
{
	size_t off = 0;
	int i;

	if (single_piece(iov, iovcnt) &&
	    single_piece(iov, iovcnt)->iov_base == src)
		return;
	for (i = 0; i < iovcnt; i++) {
		memcpy(iov[i].iov_base, src + off, iov[i].iov_len);
		off += iov[i].iov_len;
	}
}

/**
 * pageio_fill() - write a page made of one repeated 32-bit word
 * @iov: a valid page iovec
 * @iovcnt: pieces
 * @pattern: the word, in memory order
 */
void pageio_fill(const struct iovec *iov, int iovcnt, uint32_t pattern)
{
	uint32_t page[TMEM_PAGE_SIZE / 4];
	unsigned int i;

	if (!pattern) {
		for (i = 0; i < (unsigned int)iovcnt; i++)
			memset(iov[i].iov_base, 0, iov[i].iov_len);
		return;
	}
	for (i = 0; i < TMEM_PAGE_SIZE / 4; i++)
		page[i] = pattern;
	pageio_scatter(iov, iovcnt, (const uint8_t *)page);
}

/**
 * pageio_same_filled() - is the page one 32-bit word repeated?
 * @page: TMEM_PAGE_SIZE bytes, 8-byte aligned or not
 * @pattern: the word, if so
 *
 * Compares 64-bit words so that typical data fails on the first one.
 */
bool pageio_same_filled(const uint8_t *page, uint32_t *pattern)
{
	uint64_t first, w;
	unsigned int i;

	memcpy(&first, page, sizeof(first));
	if ((uint32_t)first != (uint32_t)(first >> 32))
		return false;
	for (i = 8; i < TMEM_PAGE_SIZE; i += 8) {
		memcpy(&w, page + i, sizeof(w));
		if (w != first)
			return false;
	}
	*pattern = (uint32_t)first;
	return true;
}

#ifdef __SSE2__
static void stream_line(uint8_t *dst, const uint8_t *src)
{
	unsigned int i;

	for (i = 0; i < PAGEIO_LINE; i += 16)
		_mm_stream_si128((__m128i *)(dst + i),
				 _mm_loadu_si128((const __m128i *)(src + i)));
}
#endif

/**
 * pageio_copy_nocache() - copy into memory that is not in the CPU cache
 * @dst: PAGEIO_LINE-aligned; room for @len rounded up to PAGEIO_LINE
 * @src: @len bytes
 * @len: 1..TMEM_PAGE_SIZE
 *
 * An ordinary store to a line that is not cached first reads the line in;
 * a recycled frame is cold, so a put would wait on memory for every line
 * it writes.  Streaming stores skip that read.  The last line is padded
 * with zeroes, so no stale bytes of @src's buffer reach @dst.  Ends with a
 * store fence: whoever takes a lock after ours sees the data.  Without
 * SSE2 this is memcpy().
 */
void pageio_copy_nocache(uint8_t *dst, const uint8_t *src, unsigned int len)
{
#ifdef __SSE2__
	unsigned int whole = len & ~(PAGEIO_LINE - 1), i;
	uint8_t tail[PAGEIO_LINE];

	for (i = 0; i < whole; i += PAGEIO_LINE)
		stream_line(dst + i, src + i);
	if (whole < len) {
		memcpy(tail, src + whole, len - whole);
		memset(tail + (len - whole), 0, PAGEIO_LINE - (len - whole));
		stream_line(dst + whole, tail);
	}
	_mm_sfence();
#else
	memcpy(dst, src, len);
#endif
}
