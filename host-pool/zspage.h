/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * zspage.h - size-class allocator of a tmem store, over zbud's frame space.
 *
 * zbud stores at most two pages in a frame; this allocator packs pages as
 * tightly as their compressed sizes allow, the way Linux's zsmalloc does.
 * Objects are sorted into size classes every ZS_ALIGN bytes.  A class keeps
 * its objects back to back in spans of 1..ZS_SPAN_FRAMES_MAX frames, the
 * count chosen per class to waste least, so an object may straddle two
 * frames of its span.  The frames of a span need not be adjacent: they are
 * chained through their descriptors, and an object is named by a handle
 * (its span's first frame and its index in the span), never an address.
 *
 * Each object starts with a 4-byte header: its owner reference while
 * allocated, a free-list link while free.  Reclaim and compaction find the
 * owners of a span in these headers.  A page that does not compress (all
 * 4096 bytes) takes a frame of its own, the huge class, whose owner is kept
 * in the frame's descriptor.
 *
 * A class files its spans with free objects by fullness: allocation fills
 * the fullest first, compaction moves objects out of the emptiest into the
 * fullest and frees the spans it empties.  Spans also sit on a per-kind
 * LRU, most recently allocated into at the head, for reclaim.
 *
 * Everything is under zbud->lock except zs_read() and zs_write(): whoever
 * owns an object (in a store: holds its owner's bucket lock) may copy in
 * and out of it unlocked, because compaction moves an object only under
 * its owner's lock (struct zs_mover).
 */
#ifndef TMEM_ZSPAGE_H
#define TMEM_ZSPAGE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "tmem.h"
#include "zbud.h"

#define ZS_ALIGN_SHIFT		4
#define ZS_ALIGN		(1u << ZS_ALIGN_SHIFT)
#define ZS_HDR_SIZE		4u
#define ZS_MIN_SIZE		32u
#define ZS_SPAN_FRAMES_MAX	4u
/* Object indexes fit the 8-bit slot of a handle. */
#define ZS_SPAN_OBJS_MAX	256u
/* Normal classes: objects of 32, 48, ... 4096 bytes, header included. */
#define ZS_NR_CLASSES		((TMEM_PAGE_SIZE - ZS_MIN_SIZE) / ZS_ALIGN + 1)
#define ZS_HUGE			ZS_NR_CLASSES	/* one raw page per frame */
#define ZS_NR_GROUPS		4u
#define ZS_GROUP_NONE		0xffu		/* full, or off the lists */
#define ZS_SLOT_NONE		0xffffu
/*
 * A free object's header is ZS_FREE_TAG | index of the next free object.
 * Owner references stay below it: frame numbers stay below 0xfffe00.
 */
#define ZS_FREE_TAG		0xfffe0000u
#define ZS_MAX_FRAMES		0xfffe00u
_Static_assert(ZS_HUGE <= UINT8_MAX,
	       "class ids must fit span_class");

/**
 * struct zs_geometry - the shape of a size class's spans, the same for
 *			both kinds (read without the lock)
 * @size: bytes per object, header included
 * @objs: objects per span
 * @frames: frames per span
 */
struct zs_geometry {
	uint16_t size;
	uint16_t objs;
	uint8_t frames;
};

/**
 * struct zs_class - the spans of one size class of one kind
 * @free_objs: free objects in the spans filed in @group
 * @group: spans with free objects, by fullness (inuse * ZS_NR_GROUPS /
 *	   objects per span), most recently filed at the head
 */
struct zs_class {
	uint64_t free_objs;
	struct zlist group[ZS_NR_GROUPS];
};

/**
 * struct zspool - the size classes of a store
 * @z: the frame space the spans take frames from (and whose lock guards
 *     everything here but @geom)
 * @geom: shape of each class's spans (constant)
 * @cls: classes, per kind (the huge class has no entry: its spans are full)
 * @lru: per kind, spans, most recently allocated into at the head
 * @frames: per kind, frames held by spans (also in z->data_frames)
 * @objs: per kind, objects allocated
 * @moved: objects compaction moved
 * @compacted: frames compaction freed
 */
struct zspool {
	struct zbud *z;
	struct zs_geometry geom[ZS_NR_CLASSES];
	struct zs_class cls[TMEM_NR_KINDS][ZS_NR_CLASSES];
	struct zlist lru[TMEM_NR_KINDS];
	uint64_t frames[TMEM_NR_KINDS];
	uint64_t objs[TMEM_NR_KINDS];
	uint64_t moved, compacted;
};

/**
 * struct zs_mover - how compaction reaches the owner of an object
 * @owner_lock_locked: called under zbud->lock with a live owner: the lock
 *		       its owner holds while it reads or writes the object
 *		       (a store's bucket lock); it must stay valid after
 *		       zbud->lock is dropped (buckets live as long as the
 *		       store)
 * @moved_locked: called under zbud->lock and the owner's lock: the
 *		  object of @owner is now at @to
 */
struct zs_mover {
	pthread_mutex_t *(*owner_lock_locked)(void *arg, uint32_t owner);
	void (*moved_locked)(void *arg, uint32_t owner, struct zbud_handle to);
};

void zs_init(struct zspool *zs, struct zbud *z);
unsigned int zs_class_of(unsigned int size);
unsigned int zs_object_bytes(unsigned int size);

/* Callers below hold zs->z->lock. */
int zs_alloc_locked(struct zspool *zs, enum tmem_kind kind, unsigned int size,
		    uint32_t owner, struct zbud_handle *h);
void zs_free_locked(struct zspool *zs, struct zbud_handle h);
bool zs_handle_hot_locked(const struct zspool *zs, struct zbud_handle h);
uint32_t zs_reclaim_start_locked(struct zspool *zs, enum tmem_kind kind);
unsigned int zs_span_objs(const struct zspool *zs, uint32_t head);
unsigned int zs_span_frames(const struct zspool *zs, uint32_t head);
uint32_t zs_span_frame(const struct zspool *zs, uint32_t head, unsigned int k);
unsigned int zs_object_offset(const struct zspool *zs, uint32_t head,
			      unsigned int slot);
unsigned int zs_span_object_bytes(const struct zspool *zs, uint32_t head);
uint32_t zs_owner_locked(const struct zspool *zs, uint32_t head,
			 unsigned int slot);
uint32_t zs_detach_locked(struct zspool *zs, uint32_t head, unsigned int slot);
void zs_reclaim_finish_locked(struct zspool *zs, uint32_t head);
void zs_reclaim_abort_locked(struct zspool *zs, uint32_t head);
int zs_check_locked(const struct zspool *zs, enum tmem_kind kind);
uint64_t zs_free_bytes_locked(const struct zspool *zs, enum tmem_kind kind);

/* No lock: the caller owns the object. */
void zs_write(const struct zspool *zs, struct zbud_handle h, const void *src,
	      unsigned int len);
void zs_read(const struct zspool *zs, struct zbud_handle h, void *dst,
	     unsigned int len);

/* Takes zbud->lock and owners' locks itself. */
uint64_t zs_compact(struct zspool *zs, enum tmem_kind kind,
		    const struct zs_mover *m, void *arg);

#endif /* TMEM_ZSPAGE_H */
