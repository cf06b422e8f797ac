// SPDX-License-Identifier: BSD-3-Clause
/*
 * vtmem_codec.c - build and parse virtio-tmem batches.
 *
 * Compiled into the Linux driver and into the QEMU device.  The parsing half
 * treats every byte as hostile: the header and ops are read once into host
 * memory (a guest rewriting them mid-batch changes nothing), every count and
 * length is checked against the others before an op runs, and an op's page
 * slot depends only on its opcode, so a bad op cannot shift the pages of the
 * ops after it.
 */
#include "vtmem_codec.h"

#define vtmem_memcpy(d, s, n)	__builtin_memcpy(d, s, n)
#define vtmem_memset(d, c, n)	__builtin_memset(d, c, n)

/**
 * vtmem_batch_init() - start an empty batch
 * @b: batch to initialise
 * @hdr: request header to fill
 * @ops: op array of @max_ops entries
 * @max_ops: capacity, at most the device's max_batch
 * @seq: batch number echoed by the device
 */
void vtmem_batch_init(struct vtmem_batch *b, struct virtio_tmem_req_hdr *hdr,
		      struct virtio_tmem_op *ops, unsigned int max_ops,
		      __u64 seq)
{
	b->hdr = hdr;
	b->ops = ops;
	b->max_ops = max_ops;
	b->nr_ops = 0;
	b->nr_put = 0;
	b->nr_get = 0;
	vtmem_memset(hdr, 0, sizeof(*hdr));
	hdr->seq = vtmem_cpu_to_le64(seq);
}

/**
 * vtmem_batch_full() - true when no further op fits
 * @b: batch
 */
bool vtmem_batch_full(const struct vtmem_batch *b)
{
	return b->nr_ops >= b->max_ops;
}

static struct virtio_tmem_op *batch_add(struct vtmem_batch *b,
					unsigned int opcode, unsigned int flags,
					__u32 pool_id)
{
	struct virtio_tmem_op *op;

	if (vtmem_batch_full(b))
		return (struct virtio_tmem_op *)0;
	op = &b->ops[b->nr_ops++];
	vtmem_memset(op, 0, sizeof(*op));
	op->opcode = (__u8)opcode;
	op->flags = (__u8)flags;
	op->pool_id = vtmem_cpu_to_le32(pool_id);
	b->hdr->nr_ops = vtmem_cpu_to_le16((__u16)b->nr_ops);
	return op;
}

static int batch_add_key(struct vtmem_batch *b, unsigned int opcode,
			 unsigned int flags, __u32 pool_id,
			 const struct vtmem_oid *oid, __u64 index)
{
	struct virtio_tmem_op *op = batch_add(b, opcode, flags, pool_id);
	int i;

	if (!op)
		return -1;
	for (i = 0; i < 3; i++)
		op->u.key.oid[i] = vtmem_cpu_to_le64(oid->id[i]);
	op->u.key.index = vtmem_cpu_to_le64(index);
	return (int)(b->nr_ops - 1);
}

/**
 * vtmem_batch_new_pool() - add NEW_POOL
 * @b: batch
 * @pool_flags: VIRTIO_TMEM_POOL_* bits
 * @uuid: 16 bytes for a shared pool, else NULL
 *
 * Return: the op's slot in the batch (its status slot), or -1 if full.
 */
int vtmem_batch_new_pool(struct vtmem_batch *b, unsigned int pool_flags,
			 const __u8 uuid[16])
{
	struct virtio_tmem_op *op;

	op = batch_add(b, VIRTIO_TMEM_OP_NEW_POOL, pool_flags, 0);
	if (!op)
		return -1;
	if (uuid)
		vtmem_memcpy(op->u.pool.uuid, uuid, 16);
	op->u.pool.page_size = vtmem_cpu_to_le32(VIRTIO_TMEM_PAGE_SIZE);
	return (int)(b->nr_ops - 1);
}

/**
 * vtmem_batch_destroy_pool() - add DESTROY_POOL
 * @b: batch
 * @pool_id: pool
 *
 * Return: the op's slot, or -1 if the batch is full.
 */
int vtmem_batch_destroy_pool(struct vtmem_batch *b, __u32 pool_id)
{
	return batch_add(b, VIRTIO_TMEM_OP_DESTROY_POOL, 0, pool_id) ?
	       (int)(b->nr_ops - 1) : -1;
}

/**
 * vtmem_batch_put() - add PUT; the caller appends its page as the
 *		       b->nr_put'th readable page (counted before the call)
 * @b: batch
 * @pool_id: pool
 * @oid: object
 * @index: page index
 * @credit: spend a credit (required for persistent pools)
 *
 * Return: the op's slot, or -1 if the batch is full.
 */
int vtmem_batch_put(struct vtmem_batch *b, __u32 pool_id,
		    const struct vtmem_oid *oid, __u64 index, bool credit)
{
	int slot = batch_add_key(b, VIRTIO_TMEM_OP_PUT,
				 credit ? VIRTIO_TMEM_PUT_CREDIT : 0,
				 pool_id, oid, index);

	if (slot >= 0)
		b->nr_put++;
	return slot;
}

/**
 * vtmem_batch_get() - add GET; its page is the b->nr_get'th writable page
 * @b: batch
 * @pool_id: pool
 * @oid: object
 * @index: page index
 * @exclusive: remove the page once it has been read
 *
 * Return: the op's slot, or -1 if the batch is full.
 */
int vtmem_batch_get(struct vtmem_batch *b, __u32 pool_id,
		    const struct vtmem_oid *oid, __u64 index, bool exclusive)
{
	int slot = batch_add_key(b, VIRTIO_TMEM_OP_GET,
				 exclusive ? VIRTIO_TMEM_GET_EXCLUSIVE : 0,
				 pool_id, oid, index);

	if (slot >= 0)
		b->nr_get++;
	return slot;
}

/**
 * vtmem_batch_flush_page() - add FLUSH_PAGE
 * @b: batch
 * @pool_id: pool
 * @oid: object
 * @index: page index
 *
 * Return: the op's slot, or -1 if the batch is full.
 */
int vtmem_batch_flush_page(struct vtmem_batch *b, __u32 pool_id,
			   const struct vtmem_oid *oid, __u64 index)
{
	return batch_add_key(b, VIRTIO_TMEM_OP_FLUSH_PAGE, 0, pool_id, oid,
			     index);
}

/**
 * vtmem_batch_flush_object() - add FLUSH_OBJECT
 * @b: batch
 * @pool_id: pool
 * @oid: object
 *
 * Return: the op's slot, or -1 if the batch is full.
 */
int vtmem_batch_flush_object(struct vtmem_batch *b, __u32 pool_id,
			     const struct vtmem_oid *oid)
{
	return batch_add_key(b, VIRTIO_TMEM_OP_FLUSH_OBJECT, 0, pool_id, oid,
			     0);
}

/**
 * vtmem_batch_flush_pool() - add FLUSH_POOL
 * @b: batch
 * @pool_id: pool
 *
 * Return: the op's slot, or -1 if the batch is full.
 */
int vtmem_batch_flush_pool(struct vtmem_batch *b, __u32 pool_id)
{
	return batch_add(b, VIRTIO_TMEM_OP_FLUSH_POOL, 0, pool_id) ?
	       (int)(b->nr_ops - 1) : -1;
}

/**
 * vtmem_batch_out_len() - device-readable bytes the batch needs
 * @b: batch
 */
size_t vtmem_batch_out_len(const struct vtmem_batch *b)
{
	return vtmem_req_len(b->nr_ops, b->nr_put);
}

/**
 * vtmem_batch_in_len() - device-writable bytes the batch needs
 * @b: batch
 */
size_t vtmem_batch_in_len(const struct vtmem_batch *b)
{
	return vtmem_resp_len(b->nr_ops, b->nr_get);
}

static const char *const batch_error_names[VTMEM_BATCH__MAX] = {
	[VTMEM_BATCH_OK] = "ok",
	[VTMEM_BATCH_SHORT_HDR] = "readable part shorter than the header",
	[VTMEM_BATCH_NO_OPS] = "nr_ops is 0",
	[VTMEM_BATCH_TOO_MANY_OPS] = "nr_ops exceeds max_batch",
	[VTMEM_BATCH_BAD_FLAGS] = "header flags or reserved bits set",
	[VTMEM_BATCH_SHORT_OPS] = "readable part ends inside the op array",
	[VTMEM_BATCH_OUT_LEN] = "readable length does not match the ops",
	[VTMEM_BATCH_IN_LEN] = "writable length does not match the ops",
	[VTMEM_BATCH_NO_RESP] = "no room for the response header",
};

/**
 * vtmem_batch_error_str() - text for a batch error
 * @e: error
 */
const char *vtmem_batch_error_str(enum vtmem_batch_error e)
{
	if ((unsigned int)e >= VTMEM_BATCH__MAX)
		return "unknown batch error";
	return batch_error_names[e];
}

/**
 * vtmem_op_page_dir() - which page an opcode consumes
 * @opcode: any byte, valid or not
 *
 * Return: 1 for a readable page (PUT), -1 for a writable page (GET), else 0.
 * Depends on the opcode alone, so that an op refused for its flags or
 * arguments still owns its page slot.
 */
int vtmem_op_page_dir(unsigned int opcode)
{
	if (opcode == VIRTIO_TMEM_OP_PUT)
		return 1;
	if (opcode == VIRTIO_TMEM_OP_GET)
		return -1;
	return 0;
}

/**
 * vtmem_parse_hdr() - validate a request header copied into host memory
 * @hdr: header (already copied out of guest memory)
 * @out_len: total device-readable bytes of the chain
 * @in_len: total device-writable bytes of the chain
 * @max_batch: the device's max_batch
 * @p: filled with the header's fields
 *
 * Return: VTMEM_BATCH_OK, or why the batch is refused.  NO_RESP means the
 * device cannot even report the failure and must treat the chain as a
 * driver bug (device needs reset).
 */
enum vtmem_batch_error vtmem_parse_hdr(const struct virtio_tmem_req_hdr *hdr,
				       size_t out_len, size_t in_len,
				       unsigned int max_batch,
				       struct vtmem_parsed *p)
{
	vtmem_memset(p, 0, sizeof(*p));
	if (in_len < sizeof(struct virtio_tmem_resp_hdr))
		return VTMEM_BATCH_NO_RESP;
	if (out_len < sizeof(*hdr))
		return VTMEM_BATCH_SHORT_HDR;
	p->seq = vtmem_le64_to_cpu(hdr->seq);
	p->nr_ops = vtmem_le16_to_cpu(hdr->nr_ops);
	if (hdr->flags || hdr->reserved)
		return VTMEM_BATCH_BAD_FLAGS;
	if (p->nr_ops == 0)
		return VTMEM_BATCH_NO_OPS;
	if (p->nr_ops > max_batch || p->nr_ops > VIRTIO_TMEM_MAX_BATCH_LIMIT)
		return VTMEM_BATCH_TOO_MANY_OPS;
	if (out_len < vtmem_req_len(p->nr_ops, 0))
		return VTMEM_BATCH_SHORT_OPS;
	return VTMEM_BATCH_OK;
}

/**
 * vtmem_parse_ops() - count pages and check the chain's lengths
 * @ops: the p->nr_ops ops, copied into host memory
 * @out_len: total device-readable bytes of the chain
 * @in_len: total device-writable bytes of the chain
 * @p: header fields from vtmem_parse_hdr(); page counts and offsets are set
 *
 * Both lengths must match the ops exactly: a chain that is too long is as
 * much a driver bug as one that is too short.
 *
 * Return: VTMEM_BATCH_OK, OUT_LEN or IN_LEN.
 */
enum vtmem_batch_error vtmem_parse_ops(const struct virtio_tmem_op *ops,
				       size_t out_len, size_t in_len,
				       struct vtmem_parsed *p)
{
	unsigned int i;

	p->nr_put = 0;
	p->nr_get = 0;
	for (i = 0; i < p->nr_ops; i++) {
		int dir = vtmem_op_page_dir(ops[i].opcode);

		if (dir > 0)
			p->nr_put++;
		else if (dir < 0)
			p->nr_get++;
	}
	p->put_data_off = vtmem_req_len(p->nr_ops, 0);
	p->get_data_off = vtmem_resp_len(p->nr_ops, 0);
	if (out_len != vtmem_req_len(p->nr_ops, p->nr_put))
		return VTMEM_BATCH_OUT_LEN;
	if (in_len != vtmem_resp_len(p->nr_ops, p->nr_get))
		return VTMEM_BATCH_IN_LEN;
	return VTMEM_BATCH_OK;
}

/**
 * vtmem_parse_batch() - copy out and validate a whole batch
 * @out: device-readable segments of the chain
 * @nr_out: number of segments
 * @in_len: total device-writable bytes of the chain
 * @max_batch: the device's max_batch (at most VIRTIO_TMEM_MAX_BATCH_LIMIT)
 * @ops: host buffer for max_batch ops; receives p->nr_ops of them
 * @p: result
 *
 * Return: VTMEM_BATCH_OK, or why the batch is refused as a whole.
 */
enum vtmem_batch_error vtmem_parse_batch(const struct vtmem_seg *out,
					 unsigned int nr_out, size_t in_len,
					 unsigned int max_batch,
					 struct virtio_tmem_op *ops,
					 struct vtmem_parsed *p)
{
	struct virtio_tmem_req_hdr hdr;
	enum vtmem_batch_error err;
	size_t out_len = 0, ops_len;
	unsigned int i;

	for (i = 0; i < nr_out; i++) {
		if (out[i].len > (size_t)-1 - out_len)
			return VTMEM_BATCH_OUT_LEN;
		out_len += out[i].len;
	}
	vtmem_memset(&hdr, 0, sizeof(hdr));
	vtmem_seg_copy(&hdr, out, nr_out, 0, sizeof(hdr));
	err = vtmem_parse_hdr(&hdr, out_len, in_len, max_batch, p);
	if (err)
		return err;
	ops_len = (size_t)p->nr_ops * sizeof(*ops);
	if (vtmem_seg_copy(ops, out, nr_out, sizeof(hdr), ops_len) != ops_len)
		return VTMEM_BATCH_SHORT_OPS;
	return vtmem_parse_ops(ops, out_len, in_len, p);
}

static bool is_zero(const void *buf, size_t len)
{
	const __u8 *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static unsigned int decode_pool_op(const struct virtio_tmem_op *op,
				   struct vtmem_op_info *info)
{
	const struct virtio_tmem_pool_args *a = &op->u.pool;
	const unsigned int known = VIRTIO_TMEM_POOL_PERSISTENT |
				   VIRTIO_TMEM_POOL_SHARED;

	if (info->flags & ~known)
		return VIRTIO_TMEM_S_BAD_OP;
	if (op->pool_id || vtmem_le32_to_cpu(a->page_size) !=
	    VIRTIO_TMEM_PAGE_SIZE || !is_zero(a->reserved, sizeof(a->reserved)))
		return VIRTIO_TMEM_S_BAD_ARG;
	if (!(info->flags & VIRTIO_TMEM_POOL_SHARED) &&
	    !is_zero(a->uuid, sizeof(a->uuid)))
		return VIRTIO_TMEM_S_BAD_ARG;
	vtmem_memcpy(info->uuid, a->uuid, sizeof(info->uuid));
	return VIRTIO_TMEM_S_OK;
}

static unsigned int decode_key_op(const struct virtio_tmem_op *op,
				  unsigned int known_flags, bool has_index,
				  struct vtmem_op_info *info)
{
	int i;

	if (info->flags & ~known_flags)
		return VIRTIO_TMEM_S_BAD_OP;
	for (i = 0; i < 3; i++)
		info->oid.id[i] = vtmem_le64_to_cpu(op->u.key.oid[i]);
	info->index = vtmem_le64_to_cpu(op->u.key.index);
	if (!has_index && info->index)
		return VIRTIO_TMEM_S_BAD_ARG;
	return VIRTIO_TMEM_S_OK;
}

static unsigned int decode_pool_wide_op(const struct virtio_tmem_op *op,
					struct vtmem_op_info *info)
{
	if (info->flags)
		return VIRTIO_TMEM_S_BAD_OP;
	if (!is_zero(&op->u, sizeof(op->u)))
		return VIRTIO_TMEM_S_BAD_ARG;
	return VIRTIO_TMEM_S_OK;
}

/**
 * vtmem_decode_op() - decode and check one op
 * @op: the op, in host memory
 * @page: its page slot (see vtmem_op_info.page), -1 if none
 * @info: decoded fields
 *
 * Return: VIRTIO_TMEM_S_OK, or the status to report for this op
 * (S_BAD_OP for an unknown opcode or flag, S_BAD_ARG for a reserved field
 * or argument out of range).  Pool ids are checked by the caller.
 */
unsigned int vtmem_decode_op(const struct virtio_tmem_op *op, int page,
			     struct vtmem_op_info *info)
{
	vtmem_memset(info, 0, sizeof(*info));
	info->opcode = op->opcode;
	info->flags = op->flags;
	info->pool_id = vtmem_le32_to_cpu(op->pool_id);
	info->page = page;
	if (op->reserved0 || op->reserved1)
		return VIRTIO_TMEM_S_BAD_ARG;

	switch (op->opcode) {
	case VIRTIO_TMEM_OP_NEW_POOL:
		return decode_pool_op(op, info);
	case VIRTIO_TMEM_OP_DESTROY_POOL:
	case VIRTIO_TMEM_OP_FLUSH_POOL:
		return decode_pool_wide_op(op, info);
	case VIRTIO_TMEM_OP_PUT:
		return decode_key_op(op, VIRTIO_TMEM_PUT_CREDIT, true, info);
	case VIRTIO_TMEM_OP_GET:
		return decode_key_op(op, VIRTIO_TMEM_GET_EXCLUSIVE, true, info);
	case VIRTIO_TMEM_OP_FLUSH_PAGE:
		return decode_key_op(op, 0, true, info);
	case VIRTIO_TMEM_OP_FLUSH_OBJECT:
		return decode_key_op(op, 0, false, info);
	default:
		return VIRTIO_TMEM_S_BAD_OP;
	}
}

/**
 * vtmem_op_key() - the key an op names, without validating the op
 * @op: op as built by vtmem_batch_*() (or copied out by the device)
 * @key: filled with the pool, and the oid and index where the scope has
 *	 them (the other fields are zeroed)
 *
 * Return: what the key covers; VTMEM_KEY_NONE for NEW_POOL and opcodes the
 * codec does not know, whose @key is all zero.
 */
enum vtmem_key_scope vtmem_op_key(const struct virtio_tmem_op *op,
				  struct vtmem_key *key)
{
	enum vtmem_key_scope scope;
	int i;

	vtmem_memset(key, 0, sizeof(*key));
	switch (op->opcode) {
	case VIRTIO_TMEM_OP_PUT:
	case VIRTIO_TMEM_OP_GET:
	case VIRTIO_TMEM_OP_FLUSH_PAGE:
		scope = VTMEM_KEY_PAGE;
		key->index = vtmem_le64_to_cpu(op->u.key.index);
		break;
	case VIRTIO_TMEM_OP_FLUSH_OBJECT:
		scope = VTMEM_KEY_OBJECT;
		break;
	case VIRTIO_TMEM_OP_FLUSH_POOL:
	case VIRTIO_TMEM_OP_DESTROY_POOL:
		key->pool = vtmem_le32_to_cpu(op->pool_id);
		return VTMEM_KEY_POOL;
	default:
		return VTMEM_KEY_NONE;
	}
	key->pool = vtmem_le32_to_cpu(op->pool_id);
	for (i = 0; i < 3; i++)
		key->oid.id[i] = vtmem_le64_to_cpu(op->u.key.oid[i]);
	return scope;
}

/**
 * vtmem_key_covers() - does a key of @scope include the page key @page?
 * @scope: scope of @k, as vtmem_op_key() returned it
 * @k: the op's key
 * @page: a page's key (pool, oid, index)
 *
 * Return: true for the same page, a page of the same object (OBJECT) or of
 * the same pool (POOL); false for VTMEM_KEY_NONE.
 */
bool vtmem_key_covers(enum vtmem_key_scope scope, const struct vtmem_key *k,
		      const struct vtmem_key *page)
{
	int i;

	if (scope == VTMEM_KEY_NONE || k->pool != page->pool)
		return false;
	if (scope == VTMEM_KEY_POOL)
		return true;
	for (i = 0; i < 3; i++)
		if (k->oid.id[i] != page->oid.id[i])
			return false;
	return scope == VTMEM_KEY_OBJECT || k->index == page->index;
}

/**
 * vtmem_seg_copy() - copy bytes out of a scattered buffer
 * @dst: destination
 * @segs: segments
 * @nr_segs: number of segments
 * @offset: offset into the concatenated segments
 * @len: bytes wanted
 *
 * Return: bytes copied; less than @len when the segments end first.
 */
size_t vtmem_seg_copy(void *dst, const struct vtmem_seg *segs,
		      unsigned int nr_segs, size_t offset, size_t len)
{
	__u8 *d = dst;
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < nr_segs && done < len; i++) {
		size_t n;

		if (offset >= segs[i].len) {
			offset -= segs[i].len;
			continue;
		}
		n = segs[i].len - offset;
		if (n > len - done)
			n = len - done;
		vtmem_memcpy(d + done, (const __u8 *)segs[i].base + offset, n);
		done += n;
		offset = 0;
	}
	return done;
}
