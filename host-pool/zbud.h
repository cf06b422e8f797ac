/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * zbud.h - pageframe space and buddy allocator of a tmem store.
 *
 * All pageframes of a store live in one reserved range of address space,
 * mapped 2 MiB arena by arena on demand, so a frame number is an index and
 * a frame's address is base + number * 4096.  A frame holds either up to two
 * compressed pages of one kind (first buddy from the start, last buddy from
 * the end), one raw page, or slab objects (metadata).  Data frames sit on a
 * per-kind LRU: reclaim takes whole frames, so reclaiming one frees exactly
 * one page of host memory.
 *
 * Everything here is protected by zbud->lock; see store.c for the order.
 */
#ifndef TMEM_ZBUD_H
#define TMEM_ZBUD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tmem.h"

#define ZBUD_CHUNK_SHIFT	6
#define ZBUD_CHUNK_SIZE		(1u << ZBUD_CHUNK_SHIFT)
#define ZBUD_NCHUNKS		(TMEM_PAGE_SIZE >> ZBUD_CHUNK_SHIFT)
#define ZBUD_ARENA_SHIFT	9	/* 512 frames = 2 MiB per arena */
#define ZBUD_ARENA_FRAMES	(1u << ZBUD_ARENA_SHIFT)
#define ZBUD_NIL		UINT32_MAX
/* Freed frames kept resident for reuse before madvise(MADV_DONTNEED). */
#define ZBUD_DIRTY_MAX		64u
/*
 * Frames of a fresh arena faulted in at once, ahead of allocation; also the
 * most frames resident that are neither allocated nor freed (dirty or
 * cleaning).  Fewer per call cost as much per frame (docs/benchmarks.md)
 * but made the growing put slower in the bench.
 */
#define ZBUD_POPULATE_AHEAD	64u
/*
 * Most frames resident beyond those allocated: dirty, on their way back to
 * the OS, faulted in ahead (160 frames, 640 KiB; docs/qemu-device.md).
 */
#define ZBUD_SLACK_FRAMES	(ZBUD_DIRTY_MAX + ZBUD_DIRTY_MAX / 2 + \
				 ZBUD_POPULATE_AHEAD)
/* Frames faulted in this recently (1 MiB) are taken to be in the CPU cache. */
#define ZBUD_HOT_FRAMES		256u

enum zbud_frame_type {
	ZF_FREE = 0,
	ZF_DATA,		/* one or two buddies (a raw page is a full one) */
	ZF_SLAB,		/* metadata objects, see slab.c */
	ZF_SPAN,		/* a frame of a size-class span, see zspage.c */
};

enum zbud_buddy { ZBUD_FIRST = 0, ZBUD_LAST = 1 };

/* No owner in a buddy (owner references are the store's, see store.c). */
#define ZBUD_NO_OWNER		UINT32_MAX
#define ZBUD_SLAB_END		UINT16_MAX

/**
 * struct zframe - descriptor of one pageframe (28 bytes)
 * @owner: references to the entries stored in the FIRST and LAST buddy
 *	   (data frames), or ZBUD_NO_OWNER
 * @slab_free: slab frames: offset of the first free object, or
 *	       ZBUD_SLAB_END (shares storage with @owner)
 * @slab_inuse: slab frames: objects in use
 * @slab_shard: slab frames: the cache shard the frame belongs to
 * @span_next: span frames: the span's next frame, or ZBUD_NIL
 * @span_inuse: span heads: objects allocated (detached ones included)
 * @span_free: span heads: first free object, or ZS_SLOT_NONE
 * @span_owner: span heads of the huge class: the one object's owner
 * @lru_prev: per-kind LRU links (data and raw frames)
 * @lru_next: see @lru_prev
 * @prev: unbuddied list, arena free list or slab partial list links
 * @next: see @prev
 * @first_chunks: chunks used by the FIRST buddy
 * @last_chunks: chunks used by the LAST buddy
 * @span_class: span heads: size class (shares storage with @first_chunks)
 * @span_group: span heads: fullness group it is filed under
 * @type: enum zbud_frame_type
 * @kind: enum tmem_kind of the frame's contents
 * @under_reclaim: taken off every list by reclaim; owners may still be
 *		   detached by flushes but the frame is freed by reclaim only
 * @span_head: the first frame of a span (the one handles name)
 * @isolated: span heads: off the class lists while compaction empties it;
 *	      frees still free, but leave the lists to compaction
 */
struct zframe {
	union {
		uint32_t owner[2];
		struct {
			uint16_t slab_free;
			uint16_t slab_inuse;
			uint16_t slab_shard;
		};
		struct {
			uint32_t span_next;
			union {
				struct {
					uint16_t span_inuse;
					uint16_t span_free;
				};
				uint32_t span_owner;
			};
		};
	};
	uint32_t lru_prev, lru_next;
	uint32_t prev, next;
	union {
		struct {
			uint8_t first_chunks, last_chunks;
		};
		struct {
			uint8_t span_class, span_group;
		};
	};
	uint8_t type;
	uint8_t kind : 1, under_reclaim : 1, span_head : 1, isolated : 1;
};

#define ZBUD_ARENA_DESC_BYTES	(ZBUD_ARENA_FRAMES * sizeof(struct zframe))
/* Frame numbers leave 8 bits for the store's owner references. */
#define ZBUD_MAX_FRAMES		(1u << 24)

/* A doubly linked list of frames, linked through a pair of zframe fields. */
struct zlist {
	uint32_t head, tail;
};

struct zarena {
	struct zlist free;	/* clean free frames, linked by prev/next */
	uint16_t nr_used;	/* frames allocated, or freed but still dirty */
	uint16_t populated;	/* frames below this index were faulted in */
	bool mapped;
};

/**
 * struct zbud - pageframes of one store
 * @lock: protects everything below and every struct zframe
 * @base: start of the reserved range
 * @desc: descriptor of every frame of the range
 * @arenas: arena table
 * @nr_arenas: size of the range in arenas
 * @unbuddied: per kind, frames with one free buddy, by free chunks
 * @unbuddied_mask: per kind, bit c set iff @unbuddied[kind][c] is not empty
 * @lru: per kind, data frames, most recently filled at the head
 * @first_free_arena: no arena below this one has a clean free frame
 * @dirty: freed frames still resident, reused before clean ones
 * @nr_dirty: entries in @dirty
 * @cleaning: freed frames waiting for zbud_clean() to give them back
 * @nr_cleaning: entries in @cleaning
 * @cleaning_busy: zbud_clean() is working on @cleaning
 * @clean_pending: @cleaning has work (read without the lock)
 * @data_frames: per kind, frames holding pages
 * @slab_frames: per kind, frames holding metadata
 * @frames_total: all frames allocated (dirty free frames excluded)
 * @arenas_mapped: arenas currently mapped (each with its descriptors)
 * @arena_floor: arenas below this one are those the store's limit may map
 *		 (zbud_set_arena_floor_locked())
 * @arenas_above: of @arenas_mapped, those at or above @arena_floor: left
 *		  mapped by frames taken under a larger limit
 * @reserved: per kind, bytes promised to puts in progress; each frame and
 *	      arena descriptor array taken for a kind consumes its bytes
 * @reserve_cond: broadcast when the ephemeral reservation drops to zero
 * @populate_from: first frame of fault-in work not yet handed out
 * @populate_len: its length in frames (0: none)
 * @fresh_end: one past the last frame handed out for fault-in; the kernel
 *	       zeroed the frames just below it lately (zbud_frame_hot_locked())
 * @ahead_next: first frame below @fresh_end faulted in but not allocated
 *		yet (@fresh_end: none)
 */
struct zbud {
	pthread_mutex_t lock;
	uint8_t *base;
	struct zframe *desc;
	struct zarena *arenas;
	uint32_t nr_arenas;
	struct zlist unbuddied[TMEM_NR_KINDS][ZBUD_NCHUNKS];
	uint64_t unbuddied_mask[TMEM_NR_KINDS];
	struct zlist lru[TMEM_NR_KINDS];
	uint32_t first_free_arena;
	uint32_t dirty[ZBUD_DIRTY_MAX];
	uint32_t nr_dirty;
	uint32_t cleaning[ZBUD_DIRTY_MAX / 2];
	uint32_t nr_cleaning;
	bool cleaning_busy;
	atomic_bool clean_pending;
	uint64_t data_frames[TMEM_NR_KINDS];
	uint64_t slab_frames[TMEM_NR_KINDS];
	uint64_t frames_total;
	uint64_t arenas_mapped;
	uint32_t arena_floor;
	uint64_t arenas_above;
	uint64_t reserved[TMEM_NR_KINDS];
	pthread_cond_t reserve_cond;
	uint32_t populate_from, populate_len;
	uint32_t fresh_end, ahead_next;
};

struct zbud_populate {
	uint32_t from, len;
};

/* Where a compressed page lives inside a frame. */
struct zbud_handle {
	uint32_t frame;
	uint8_t buddy;
};

int zbud_init(struct zbud *z, uint64_t max_frames);
void zbud_fini(struct zbud *z);

/* Bytes charged for frames and the descriptors of mapped arenas. */
static inline uint64_t zbud_used_bytes(const struct zbud *z)
{
	return z->frames_total * TMEM_PAGE_SIZE +
	       z->arenas_mapped * ZBUD_ARENA_DESC_BYTES;
}

static inline uint8_t *zbud_frame_addr(const struct zbud *z, uint32_t fn)
{
	return z->base + ((uint64_t)fn << 12);
}

static inline unsigned int zbud_chunks(unsigned int size)
{
	return (size + ZBUD_CHUNK_SIZE - 1) >> ZBUD_CHUNK_SHIFT;
}

uint8_t *zbud_buddy_addr(const struct zbud *z, struct zbud_handle h,
			 unsigned int size);

/**
 * zbud_frame_hot_locked() - is frame @fn likely in the CPU cache?
 * @z: allocator
 * @fn: frame
 *
 * A hint for how to copy into it: a frame of the last ZBUD_HOT_FRAMES
 * faulted in was just zeroed by the kernel, so its lines are cached; any
 * other frame (recycled, or written long ago) is taken to be cold.
 */
static inline bool zbud_frame_hot_locked(const struct zbud *z, uint32_t fn)
{
	return fn < z->fresh_end && z->fresh_end - fn <= ZBUD_HOT_FRAMES;
}

/* Callers below hold z->lock. */
int zbud_alloc_locked(struct zbud *z, enum tmem_kind kind, unsigned int size,
		      uint32_t owner, struct zbud_handle *h);
void zbud_free_locked(struct zbud *z, struct zbud_handle h);
uint32_t zbud_frame_alloc_locked(struct zbud *z, enum tmem_kind kind);
uint64_t zbud_bytes_taken(bool reset);
void zbud_take_populate_locked(struct zbud *z, struct zbud_populate *p);
void zbud_populate(struct zbud *z, const struct zbud_populate *p);
void zbud_clean(struct zbud *z);
void zbud_drain_dirty(struct zbud *z);
void zbud_set_arena_floor_locked(struct zbud *z, uint32_t floor);
void zbud_frame_free_locked(struct zbud *z, uint32_t fn);
void zbud_list_add_locked(struct zbud *z, struct zlist *l, uint32_t fn);
void zbud_list_del_locked(struct zbud *z, struct zlist *l, uint32_t fn);
void zbud_list_init(struct zlist *l);
void zbud_lru_add_locked(struct zbud *z, struct zlist *l, uint32_t fn);
void zbud_lru_del_locked(struct zbud *z, struct zlist *l, uint32_t fn);
uint32_t zbud_reclaim_start_locked(struct zbud *z, enum tmem_kind kind);
void zbud_reclaim_finish_locked(struct zbud *z, uint32_t fn);
void zbud_reclaim_abort_locked(struct zbud *z, uint32_t fn);

#endif /* TMEM_ZBUD_H */
