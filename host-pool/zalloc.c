// SPDX-License-Identifier: BSD-3-Clause
/*
 * zalloc.c - zbud and zspage behind the store's allocator interface
 * (zalloc.h).
 */
#include <string.h>

#include "pageio.h"
#include "zalloc.h"

/* ---- zbud: a unit is a frame, its objects the two buddies --------------- */

static int zbud_op_alloc(void *a, enum tmem_kind kind, unsigned int size,
			 uint32_t owner, struct zbud_handle *h)
{
	return zbud_alloc_locked(a, kind, size, owner, h);
}

static void zbud_op_free(void *a, struct zbud_handle h)
{
	zbud_free_locked(a, h);
}

static bool zbud_op_hot(const void *a, struct zbud_handle h)
{
	return zbud_frame_hot_locked(a, h.frame);
}

/*
 * Only a frame the kernel just zeroed is in the cache; into any other the
 * copy streams, rather than read every line before writing it.  A buddy
 * is chunk-aligned and its padded copy stays in its chunks.
 */
_Static_assert(ZBUD_CHUNK_SIZE % PAGEIO_LINE == 0,
	       "a buddy's padded copy must stay in its own chunks");

static void zbud_op_write(const void *a, struct zbud_handle h,
			  const void *src, unsigned int len, bool hot)
{
	uint8_t *dst = zbud_buddy_addr(a, h, len);

	if (hot)
		memcpy(dst, src, len);
	else
		pageio_copy_nocache(dst, src, len);
}

static void zbud_op_read(const void *a, struct zbud_handle h, void *dst,
			 unsigned int len)
{
	memcpy(dst, zbud_buddy_addr(a, h, len), len);
}

static uint32_t zbud_op_reclaim_start(void *a, enum tmem_kind kind)
{
	return zbud_reclaim_start_locked(a, kind);
}

static unsigned int zbud_op_unit_objs(const void *a, uint32_t unit)
{
	(void)a;
	(void)unit;
	return 2;
}

static unsigned int zbud_op_unit_frames(const void *a, uint32_t unit)
{
	(void)a;
	(void)unit;
	return 1;
}

static uint32_t zbud_op_unit_frame(const void *a, uint32_t unit,
				   unsigned int k)
{
	(void)a;
	(void)k;
	return unit;
}

/* A buddy's chunks stay recorded while its frame is under reclaim. */
static void zbud_op_unit_extent(const void *a, uint32_t unit, unsigned int i,
				unsigned int *off, unsigned int *len)
{
	const struct zframe *f = &((const struct zbud *)a)->desc[unit];
	unsigned int chunks = i == ZBUD_FIRST ? f->first_chunks :
						f->last_chunks;

	*len = chunks << ZBUD_CHUNK_SHIFT;
	*off = i == ZBUD_FIRST ? 0 : TMEM_PAGE_SIZE - *len;
}

static unsigned int zbud_op_obj_bytes(unsigned int size)
{
	return zbud_chunks(size) << ZBUD_CHUNK_SHIFT;
}

static unsigned int zbud_op_obj_hdr(unsigned int size)
{
	(void)size;
	return 0;
}

static uint32_t zbud_op_owner(const void *a, uint32_t unit, unsigned int i)
{
	return ((const struct zbud *)a)->desc[unit].owner[i];
}

static uint32_t zbud_op_detach(void *a, uint32_t unit, unsigned int i)
{
	struct zbud *z = a;
	uint32_t owner = z->desc[unit].owner[i];

	z->desc[unit].owner[i] = ZBUD_NO_OWNER;
	return owner;
}

static void zbud_op_reclaim_finish(void *a, uint32_t unit)
{
	zbud_reclaim_finish_locked(a, unit);
}

static void zbud_op_reclaim_abort(void *a, uint32_t unit)
{
	zbud_reclaim_abort_locked(a, unit);
}

const struct zalloc_ops zbud_zalloc_ops = {
	.name = "zbud",
	.span_frames_max = 1,
	.alloc_locked = zbud_op_alloc,
	.free_locked = zbud_op_free,
	.hot_locked = zbud_op_hot,
	.write = zbud_op_write,
	.read = zbud_op_read,
	.reclaim_start_locked = zbud_op_reclaim_start,
	.unit_objs = zbud_op_unit_objs,
	.unit_frames = zbud_op_unit_frames,
	.unit_frame = zbud_op_unit_frame,
	.unit_extent = zbud_op_unit_extent,
	.obj_bytes = zbud_op_obj_bytes,
	.obj_hdr = zbud_op_obj_hdr,
	.owner_locked = zbud_op_owner,
	.detach_locked = zbud_op_detach,
	.reclaim_finish_locked = zbud_op_reclaim_finish,
	.reclaim_abort_locked = zbud_op_reclaim_abort,
};

/* ---- zspage: a unit is a span ------------------------------------------ */

static int zs_op_alloc(void *a, enum tmem_kind kind, unsigned int size,
		       uint32_t owner, struct zbud_handle *h)
{
	return zs_alloc_locked(a, kind, size, owner, h);
}

static void zs_op_free(void *a, struct zbud_handle h)
{
	zs_free_locked(a, h);
}

static bool zs_op_hot(const void *a, struct zbud_handle h)
{
	return zs_handle_hot_locked(a, h);
}

/* Objects are 16-aligned, not line-aligned: no streaming copy. */
static void zs_op_write(const void *a, struct zbud_handle h, const void *src,
			unsigned int len, bool hot)
{
	(void)hot;
	zs_write(a, h, src, len);
}

static void zs_op_read(const void *a, struct zbud_handle h, void *dst,
		       unsigned int len)
{
	zs_read(a, h, dst, len);
}

static uint32_t zs_op_reclaim_start(void *a, enum tmem_kind kind)
{
	return zs_reclaim_start_locked(a, kind);
}

static unsigned int zs_op_unit_objs(const void *a, uint32_t unit)
{
	return zs_span_objs(a, unit);
}

static unsigned int zs_op_unit_frames(const void *a, uint32_t unit)
{
	return zs_span_frames(a, unit);
}

static uint32_t zs_op_unit_frame(const void *a, uint32_t unit, unsigned int k)
{
	return zs_span_frame(a, unit, k);
}

static void zs_op_unit_extent(const void *a, uint32_t unit, unsigned int i,
			      unsigned int *off, unsigned int *len)
{
	*off = zs_object_offset(a, unit, i);
	*len = zs_span_object_bytes(a, unit);
}

static unsigned int zs_op_obj_hdr(unsigned int size)
{
	return zs_class_of(size) == ZS_HUGE ? 0 : ZS_HDR_SIZE;
}

static uint32_t zs_op_owner(const void *a, uint32_t unit, unsigned int i)
{
	return zs_owner_locked(a, unit, i);
}

static uint32_t zs_op_detach(void *a, uint32_t unit, unsigned int i)
{
	return zs_detach_locked(a, unit, i);
}

static void zs_op_reclaim_finish(void *a, uint32_t unit)
{
	zs_reclaim_finish_locked(a, unit);
}

static void zs_op_reclaim_abort(void *a, uint32_t unit)
{
	zs_reclaim_abort_locked(a, unit);
}

static uint64_t zs_op_compact(void *a, enum tmem_kind kind,
			      const struct zs_mover *m, void *arg)
{
	return zs_compact(a, kind, m, arg);
}

const struct zalloc_ops zs_zalloc_ops = {
	.name = "zsmalloc",
	.span_frames_max = ZS_SPAN_FRAMES_MAX,
	.alloc_locked = zs_op_alloc,
	.free_locked = zs_op_free,
	.hot_locked = zs_op_hot,
	.write = zs_op_write,
	.read = zs_op_read,
	.reclaim_start_locked = zs_op_reclaim_start,
	.unit_objs = zs_op_unit_objs,
	.unit_frames = zs_op_unit_frames,
	.unit_frame = zs_op_unit_frame,
	.unit_extent = zs_op_unit_extent,
	.obj_bytes = zs_object_bytes,
	.obj_hdr = zs_op_obj_hdr,
	.owner_locked = zs_op_owner,
	.detach_locked = zs_op_detach,
	.reclaim_finish_locked = zs_op_reclaim_finish,
	.reclaim_abort_locked = zs_op_reclaim_abort,
	.compact = zs_op_compact,
};
