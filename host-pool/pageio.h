/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pageio.h - moving one page between iovecs and the store.
 */
#ifndef TMEM_PAGEIO_H
#define TMEM_PAGEIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Cache line: the unit of pageio_copy_nocache(). */
#define PAGEIO_LINE	64

bool pageio_valid(const struct iovec *iov, int iovcnt);
const uint8_t *pageio_source(const struct iovec *iov, int iovcnt,
			     uint8_t *bounce);
uint8_t *pageio_dest(const struct iovec *iov, int iovcnt, uint8_t *bounce);
void pageio_scatter(const struct iovec *iov, int iovcnt, const uint8_t *src);
void pageio_fill(const struct iovec *iov, int iovcnt, uint32_t pattern);
bool pageio_same_filled(const uint8_t *page, uint32_t *pattern);
void pageio_copy_nocache(uint8_t *dst, const uint8_t *src, unsigned int len);

#endif /* TMEM_PAGEIO_H */
