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

enum zbud_frame_type {
	ZF_FREE = 0,
	ZF_DATA,		/* one or two buddies (a raw page is a full one) */
	ZF_SLAB,		/* metadata objects, see slab.c */
};

enum zbud_buddy { ZBUD_FIRST = 0, ZBUD_LAST = 1 };

struct tmem_entry;

/**
 * struct zframe - descriptor of one pageframe (40 bytes)
 * @owner: entries stored in the FIRST and LAST buddy (data/raw frames);
 *	   owner[0] is the free-object list of a slab frame
 * @lru_prev: per-kind LRU links (data and raw frames)
 * @lru_next: see @lru_prev
 * @prev: unbuddied list, arena free list or slab partial list links
 * @next: see @prev
 * @first_chunks: chunks used by the FIRST buddy
 * @last_chunks: chunks used by the LAST buddy
 * @type: enum zbud_frame_type
 * @kind: enum tmem_kind of the frame's contents
 * @under_reclaim: taken off every list by reclaim; owners may still be
 *		   detached by flushes but the frame is freed by reclaim only
 * @slab_inuse: objects in use (slab frames)
 */
struct zframe {
	struct tmem_entry *owner[2];
	uint32_t lru_prev, lru_next;
	uint32_t prev, next;
	uint8_t first_chunks, last_chunks;
	uint8_t type;
	uint8_t kind : 1, under_reclaim : 1;
	uint16_t slab_inuse;
};

/* A doubly linked list of frames, linked through a pair of zframe fields. */
struct zlist {
	uint32_t head, tail;
};

struct zarena {
	struct zlist free;	/* clean free frames, linked by prev/next */
	uint16_t nr_used;	/* frames allocated, or freed but still dirty */
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
 * @lru: per kind, data frames, most recently filled at the head
 * @first_free_arena: no arena below this one has a clean free frame
 * @dirty: freed frames still resident, reused before clean ones
 * @nr_dirty: entries in @dirty
 * @data_frames: per kind, frames holding pages
 * @slab_frames: per kind, frames holding metadata
 * @frames_total: all frames allocated (dirty free frames excluded)
 * @arenas_mapped: arenas currently mapped
 * @reserved: per kind, bytes promised to puts in progress; each frame
 *	      taken for a kind consumes a page of its reservation
 * @reserve_cond: broadcast when the ephemeral reservation drops to zero
 */
struct zbud {
	pthread_mutex_t lock;
	uint8_t *base;
	struct zframe *desc;
	struct zarena *arenas;
	uint32_t nr_arenas;
	struct zlist unbuddied[TMEM_NR_KINDS][ZBUD_NCHUNKS];
	struct zlist lru[TMEM_NR_KINDS];
	uint32_t first_free_arena;
	uint32_t dirty[ZBUD_DIRTY_MAX];
	uint32_t nr_dirty;
	uint64_t data_frames[TMEM_NR_KINDS];
	uint64_t slab_frames[TMEM_NR_KINDS];
	uint64_t frames_total;
	uint64_t arenas_mapped;
	uint64_t reserved[TMEM_NR_KINDS];
	pthread_cond_t reserve_cond;
};

/* Where a compressed page lives inside a frame. */
struct zbud_handle {
	uint32_t frame;
	uint8_t buddy;
};

int zbud_init(struct zbud *z, uint64_t max_frames);
void zbud_fini(struct zbud *z);

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

/* Callers below hold z->lock. */
int zbud_alloc_locked(struct zbud *z, enum tmem_kind kind, unsigned int size,
		      struct tmem_entry *owner, struct zbud_handle *h);
void zbud_free_locked(struct zbud *z, struct zbud_handle h);
uint32_t zbud_frame_alloc_locked(struct zbud *z, enum tmem_kind kind);
uint32_t zbud_frames_taken(bool reset);
void zbud_frame_free_locked(struct zbud *z, uint32_t fn);
void zbud_list_add_locked(struct zbud *z, struct zlist *l, uint32_t fn);
void zbud_list_del_locked(struct zbud *z, struct zlist *l, uint32_t fn);
void zbud_list_init(struct zlist *l);
uint32_t zbud_reclaim_start_locked(struct zbud *z, enum tmem_kind kind);
void zbud_reclaim_finish_locked(struct zbud *z, uint32_t fn);

#endif /* TMEM_ZBUD_H */
