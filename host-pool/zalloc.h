/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * zalloc.h - what a tmem store asks of the allocator of its compressed
 * pages, as Linux's zpool asked of zbud and zsmalloc.
 *
 * An allocator places objects in frames of the store's frame space
 * (struct zbud) and names each by a handle.  It records an owner reference
 * with each object, so that reclaim, which starts from memory, finds the
 * entries to detach.  Reclaim works on units: the frames an allocator frees
 * together (a zbud frame, a zspage span), taken coldest first from a
 * per-kind LRU, each holding up to unit_objs() objects.  In a unit under
 * reclaim no object is allocated or moved; a free there only clears the
 * owner, and the unit is freed by whoever reclaims it.
 *
 * A page of TMEM_PAGE_SIZE bytes (stored raw) is always the whole first
 * frame of its unit, its handle's frame, so that it can be read in place.
 *
 * Every op named *_locked runs under zbud->lock.  read and write run under
 * the owner's lock only (a store's bucket lock): nothing moves an object
 * without it.
 */
#ifndef TMEM_ZALLOC_H
#define TMEM_ZALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "tmem.h"
#include "zbud.h"
#include "zspage.h"

/**
 * struct zalloc_ops - an allocator of compressed pages
 * @name: as the configuration names it
 * @span_frames_max: most frames one allocation may take
 * @alloc_locked: room for @size bytes (1..TMEM_PAGE_SIZE) of @kind,
 *		  recorded as @owner's; 0 or -TMEM_E_FULL
 * @free_locked: give an object back
 * @hot_locked: whether the object's memory was just faulted in (a copy
 *		into it may go through the cache)
 * @write: copy @len bytes into the object
 * @read: copy @len bytes out of it
 * @reclaim_start_locked: take the coldest unit of @kind off every list,
 *			  or ZBUD_NIL
 * @unit_objs: objects a unit has room for
 * @unit_frames: frames of a unit
 * @unit_frame: frame @k of a unit
 * @unit_extent: where allocated object @i of a unit under reclaim lies,
 *		 in bytes from the unit's first byte: from *@off, *@len bytes
 * @obj_bytes: the extent's length for a page stored in @size bytes
 * @obj_hdr: bytes of the extent before the page's (the owner's header)
 * @owner_locked: owner of object @i of a unit, or ZBUD_NO_OWNER
 * @detach_locked: clear it; returns the owner it had
 * @reclaim_finish_locked: free a unit whose owners are detached
 * @reclaim_abort_locked: put a unit back (objects freed meanwhile go)
 * @compact: move objects out of sparse units and free them; frames freed
 *	     (NULL: the allocator does not fragment)
 */
struct zalloc_ops {
	const char *name;
	unsigned int span_frames_max;
	int (*alloc_locked)(void *a, enum tmem_kind kind, unsigned int size,
			    uint32_t owner, struct zbud_handle *h);
	void (*free_locked)(void *a, struct zbud_handle h);
	bool (*hot_locked)(const void *a, struct zbud_handle h);
	void (*write)(const void *a, struct zbud_handle h, const void *src,
		      unsigned int len, bool hot);
	void (*read)(const void *a, struct zbud_handle h, void *dst,
		     unsigned int len);
	uint32_t (*reclaim_start_locked)(void *a, enum tmem_kind kind);
	unsigned int (*unit_objs)(const void *a, uint32_t unit);
	unsigned int (*unit_frames)(const void *a, uint32_t unit);
	uint32_t (*unit_frame)(const void *a, uint32_t unit, unsigned int k);
	void (*unit_extent)(const void *a, uint32_t unit, unsigned int i,
			    unsigned int *off, unsigned int *len);
	unsigned int (*obj_bytes)(unsigned int size);
	unsigned int (*obj_hdr)(unsigned int size);
	uint32_t (*owner_locked)(const void *a, uint32_t unit, unsigned int i);
	uint32_t (*detach_locked)(void *a, uint32_t unit, unsigned int i);
	void (*reclaim_finish_locked)(void *a, uint32_t unit);
	void (*reclaim_abort_locked)(void *a, uint32_t unit);
	uint64_t (*compact)(void *a, enum tmem_kind kind,
			    const struct zs_mover *m, void *arg);
};

extern const struct zalloc_ops zbud_zalloc_ops;
extern const struct zalloc_ops zs_zalloc_ops;

#endif /* TMEM_ZALLOC_H */
