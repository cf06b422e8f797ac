/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vtmem_codec.h - build and parse virtio-tmem batches.
 *
 * Freestanding C shared by the Linux driver and the QEMU device: no libc, no
 * allocation.  The driver side fills a caller-provided header and op array;
 * the device side copies the header and ops out of guest memory once and
 * validates every field before anything is executed.
 */
#ifndef VTMEM_CODEC_H
#define VTMEM_CODEC_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <asm/byteorder.h>
#define vtmem_le16_to_cpu(x)	le16_to_cpu(x)
#define vtmem_le32_to_cpu(x)	le32_to_cpu(x)
#define vtmem_le64_to_cpu(x)	le64_to_cpu(x)
#define vtmem_cpu_to_le16(x)	cpu_to_le16(x)
#define vtmem_cpu_to_le32(x)	cpu_to_le32(x)
#define vtmem_cpu_to_le64(x)	cpu_to_le64(x)
#else
#include <stddef.h>
#include <stdbool.h>
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define vtmem_le16_to_cpu(x)	((__u16)(x))
#define vtmem_le32_to_cpu(x)	((__u32)(x))
#define vtmem_le64_to_cpu(x)	((__u64)(x))
#define vtmem_cpu_to_le16(x)	((__le16)(x))
#define vtmem_cpu_to_le32(x)	((__le32)(x))
#define vtmem_cpu_to_le64(x)	((__le64)(x))
#else
#define vtmem_le16_to_cpu(x)	__builtin_bswap16(x)
#define vtmem_le32_to_cpu(x)	__builtin_bswap32(x)
#define vtmem_le64_to_cpu(x)	__builtin_bswap64(x)
#define vtmem_cpu_to_le16(x)	__builtin_bswap16(x)
#define vtmem_cpu_to_le32(x)	__builtin_bswap32(x)
#define vtmem_cpu_to_le64(x)	__builtin_bswap64(x)
#endif
#endif

#include "virtio_tmem.h"

/* A 192-bit object id in host byte order. */
struct vtmem_oid {
	__u64 id[3];
};

/**
 * struct vtmem_batch - a batch being built by the driver
 * @hdr: request header, part of the device-readable buffer
 * @ops: op array of @max_ops entries, right after @hdr on the wire
 * @status: per-op statuses, filled by the device (may be NULL while building)
 * @max_ops: capacity of @ops, at most the device's max_batch
 * @nr_ops: ops added so far
 * @nr_put: PUT ops (each needs one device-readable page after the ops)
 * @nr_get: GET ops (each needs one device-writable page after the statuses)
 */
struct vtmem_batch {
	struct virtio_tmem_req_hdr *hdr;
	struct virtio_tmem_op *ops;
	unsigned int max_ops;
	unsigned int nr_ops;
	unsigned int nr_put;
	unsigned int nr_get;
};

void vtmem_batch_init(struct vtmem_batch *b, struct virtio_tmem_req_hdr *hdr,
		      struct virtio_tmem_op *ops, unsigned int max_ops,
		      __u64 seq);
bool vtmem_batch_full(const struct vtmem_batch *b);
int vtmem_batch_new_pool(struct vtmem_batch *b, unsigned int pool_flags,
			 const __u8 uuid[16]);
int vtmem_batch_destroy_pool(struct vtmem_batch *b, __u32 pool_id);
int vtmem_batch_put(struct vtmem_batch *b, __u32 pool_id,
		    const struct vtmem_oid *oid, __u64 index, bool credit);
int vtmem_batch_get(struct vtmem_batch *b, __u32 pool_id,
		    const struct vtmem_oid *oid, __u64 index, bool exclusive);
int vtmem_batch_flush_page(struct vtmem_batch *b, __u32 pool_id,
			   const struct vtmem_oid *oid, __u64 index);
int vtmem_batch_flush_object(struct vtmem_batch *b, __u32 pool_id,
			     const struct vtmem_oid *oid);
int vtmem_batch_flush_pool(struct vtmem_batch *b, __u32 pool_id);
size_t vtmem_batch_out_len(const struct vtmem_batch *b);
size_t vtmem_batch_in_len(const struct vtmem_batch *b);

/**
 * vtmem_req_len() - bytes of the device-readable part of a batch
 * @nr_ops: ops in the batch
 * @nr_put: PUT ops among them
 */
static inline size_t vtmem_req_len(unsigned int nr_ops, unsigned int nr_put)
{
	return sizeof(struct virtio_tmem_req_hdr) +
	       (size_t)nr_ops * sizeof(struct virtio_tmem_op) +
	       (size_t)nr_put * VIRTIO_TMEM_PAGE_SIZE;
}

/**
 * vtmem_resp_len() - bytes of the device-writable part of a batch
 * @nr_ops: ops in the batch
 * @nr_get: GET ops among them
 */
static inline size_t vtmem_resp_len(unsigned int nr_ops, unsigned int nr_get)
{
	return sizeof(struct virtio_tmem_resp_hdr) +
	       (size_t)nr_ops * sizeof(struct virtio_tmem_op_status) +
	       (size_t)nr_get * VIRTIO_TMEM_PAGE_SIZE;
}

/* A read-only piece of a scattered buffer (layout-compatible with iovec). */
struct vtmem_seg {
	const void *base;
	size_t len;
};

/* Why a batch was refused as a whole (for traces and counters). */
enum vtmem_batch_error {
	VTMEM_BATCH_OK = 0,
	VTMEM_BATCH_SHORT_HDR,		/* readable part shorter than header */
	VTMEM_BATCH_NO_OPS,		/* nr_ops == 0 */
	VTMEM_BATCH_TOO_MANY_OPS,	/* nr_ops > max_batch */
	VTMEM_BATCH_BAD_FLAGS,		/* header flags or reserved set */
	VTMEM_BATCH_SHORT_OPS,		/* readable part ends inside ops */
	VTMEM_BATCH_OUT_LEN,		/* readable length != ops + put pages */
	VTMEM_BATCH_IN_LEN,		/* writable length != statuses + gets */
	VTMEM_BATCH_NO_RESP,		/* no room even for the response header */
	VTMEM_BATCH__MAX
};

const char *vtmem_batch_error_str(enum vtmem_batch_error e);

/**
 * struct vtmem_parsed - a batch the device has copied out and validated
 * @seq: driver's batch number
 * @nr_ops: ops in the batch, 1..max_batch
 * @nr_put: PUT ops (pages in the readable part)
 * @nr_get: GET ops (pages in the writable part)
 * @put_data_off: readable-stream offset of the first PUT page
 * @get_data_off: writable-stream offset of the first GET page
 */
struct vtmem_parsed {
	__u64 seq;
	unsigned int nr_ops;
	unsigned int nr_put;
	unsigned int nr_get;
	size_t put_data_off;
	size_t get_data_off;
};

enum vtmem_batch_error vtmem_parse_hdr(const struct virtio_tmem_req_hdr *hdr,
				       size_t out_len, size_t in_len,
				       unsigned int max_batch,
				       struct vtmem_parsed *p);
enum vtmem_batch_error vtmem_parse_ops(const struct virtio_tmem_op *ops,
				       size_t out_len, size_t in_len,
				       struct vtmem_parsed *p);
enum vtmem_batch_error vtmem_parse_batch(const struct vtmem_seg *out,
					 unsigned int nr_out, size_t in_len,
					 unsigned int max_batch,
					 struct virtio_tmem_op *ops,
					 struct vtmem_parsed *p);

/**
 * struct vtmem_op_info - one op decoded into host byte order
 * @opcode: VIRTIO_TMEM_OP_*
 * @flags: op flags, only bits defined for @opcode
 * @pool_id: target pool (not NEW_POOL)
 * @oid: object id (PUT, GET, FLUSH_PAGE, FLUSH_OBJECT)
 * @index: page index (PUT, GET, FLUSH_PAGE)
 * @uuid: NEW_POOL's UUID (zero unless VIRTIO_TMEM_POOL_SHARED)
 * @page: for PUT the k-th readable page, for GET the k-th writable page;
 *	  -1 for other ops
 */
struct vtmem_op_info {
	unsigned int opcode;
	unsigned int flags;
	__u32 pool_id;
	struct vtmem_oid oid;
	__u64 index;
	__u8 uuid[16];
	int page;
};

unsigned int vtmem_decode_op(const struct virtio_tmem_op *op, int page,
			     struct vtmem_op_info *info);

/* What an op's key covers: see vtmem_op_key(). */
enum vtmem_key_scope {
	VTMEM_KEY_NONE = 0,	/* NEW_POOL, unknown opcodes */
	VTMEM_KEY_PAGE,		/* PUT, GET, FLUSH_PAGE: pool, oid, index */
	VTMEM_KEY_OBJECT,	/* FLUSH_OBJECT: pool, oid */
	VTMEM_KEY_POOL,		/* FLUSH_POOL, DESTROY_POOL: pool */
};

/**
 * struct vtmem_key - the key an op names, in host byte order
 * @pool: pool id
 * @oid: object id (zero unless the scope is PAGE or OBJECT)
 * @index: page index (zero unless the scope is PAGE)
 */
struct vtmem_key {
	__u32 pool;
	struct vtmem_oid oid;
	__u64 index;
};

enum vtmem_key_scope vtmem_op_key(const struct virtio_tmem_op *op,
				  struct vtmem_key *key);
bool vtmem_key_covers(enum vtmem_key_scope scope, const struct vtmem_key *k,
		      const struct vtmem_key *page);
int vtmem_op_page_dir(unsigned int opcode);

size_t vtmem_seg_copy(void *dst, const struct vtmem_seg *segs,
		      unsigned int nr_segs, size_t offset, size_t len);

#endif /* VTMEM_CODEC_H */
