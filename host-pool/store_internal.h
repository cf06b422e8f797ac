/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * store_internal.h - the structures of a tmem store (for store.c and the
 * tests that check its invariants; not part of the API).
 */
#ifndef TMEM_STORE_INTERNAL_H
#define TMEM_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "radix.h"
#include "slab.h"
#include "tmem.h"
#include "zbud.h"

#define POOL_BUCKETS		32u	/* lock stripes per pool */
#define BUCKET_CHAINS		32u	/* object hash chains per stripe */
/*
 * Most one put can take: its data frame, a new entry slab, a new object
 * slab and node slabs for 2 * RADIX_MAX_HEIGHT nodes (30 per frame), plus
 * the descriptors of one newly mapped arena (frames come from the lowest
 * arena with room, so one put maps at most one).
 */
#define PUT_WORST_FRAMES	8u
#define PUT_WORST_BYTES		((uint64_t)PUT_WORST_FRAMES * TMEM_PAGE_SIZE + \
				 ZBUD_ARENA_DESC_BYTES)

enum entry_state {
	ENTRY_FREE = 0,		/* never seen on a live entry */
	ENTRY_COMPRESSED,	/* in a zbud buddy, @size bytes of LZ4 */
	ENTRY_RAW,		/* a full frame, uncompressed */
	ENTRY_FILLED,		/* no frame: @where repeated over the page */
};

/**
 * struct tmem_entry - one stored page (24 bytes)
 * @ri: the page index; first, see struct radix_item
 * @obj: object holding the page
 * @where: frame number (COMPRESSED, RAW) or fill word (FILLED)
 * @size: bytes stored in the frame
 * @buddy: enum zbud_buddy
 * @state: enum entry_state
 */
struct tmem_entry {
	struct radix_item ri;
	struct tmem_object *obj;
	uint32_t where;
	uint16_t size;
	uint8_t buddy;
	uint8_t state;
};
/* Owner references keep an entry's slot in its slab frame in 8 bits. */
_Static_assert(TMEM_PAGE_SIZE / sizeof(struct tmem_entry) <= 256,
	       "entry slot must fit an owner reference");
_Static_assert((TMEM_MAX_LIMIT / TMEM_PAGE_SIZE) + 1024 <= ZBUD_MAX_FRAMES,
	       "frame numbers must fit an owner reference");

/**
 * struct tmem_object - pages of one object id in one pool (64 bytes)
 * @oid: object id
 * @next: hash chain
 * @bucket: stripe holding the object
 * @root: page index
 * @nr_pages: pages held
 * @nr_filled: of which ENTRY_FILLED (they have no frame to reclaim)
 */
struct tmem_object {
	struct tmem_oid oid;
	struct tmem_object *next;
	struct tmem_bucket *bucket;
	struct radix_root root;
	uint32_t nr_pages;
	uint32_t nr_filled;
};

struct bucket_stats {
	uint64_t puts, gets, hits, flushes, flush_objects, flushed_pages;
	uint64_t stored_pages, zero_pages, same_pages, raw_pages;
	uint64_t compressed_bytes, evicted_pages;
	uint64_t reject_full, reject_incompressible, reject_nomem;
};

/**
 * struct tmem_bucket - one lock stripe of a pool
 * @lock: protects the objects hashed here, their entries and @stats
 * @pool: owner
 * @chain: object hash chains
 * @stats: counters of the ops on this stripe
 */
struct tmem_bucket {
	pthread_mutex_t lock;
	struct tmem_pool *pool;
	struct tmem_object *chain[BUCKET_CHAINS];
	struct bucket_stats stats;
};

/**
 * struct tmem_pool - a pool; its memory lives as long as the store so that
 *		      reclaim can lock a bucket found through a frame
 * @id: index in the store's pool table
 * @alive: 1 between new and destroy (read without pools_lock)
 * @kind: enum tmem_kind (atomic: a stripe sweep may read it while the
 *	  slot is reused; see pool_kind())
 * @shared: created with TMEM_POOL_SHARED
 * @refs: new_pool calls not yet matched by destroy_pool (shared pools)
 * @uuid: shared pools' UUID
 * @bucket: lock stripes
 */
struct tmem_pool {
	uint32_t id;
	atomic_int alive;
	atomic_int kind;
	bool shared;
	unsigned int refs;
	struct tmem_uuid uuid;
	struct tmem_bucket bucket[POOL_BUCKETS];
};

/**
 * struct tmem_store - see tmem.h
 * @cfg: settings
 * @max_frames: frames the limit allows
 * @zbud: pageframes (and the limit accounting, under zbud.lock)
 * @fixed_bytes: bytes charged for the store and its pool structures
 *		 (zbud.lock)
 * @persistent_waiting: persistent puts waiting for ephemeral reservations
 *			(zbud.lock)
 * @entries: per kind, entry cache
 * @objects: per kind, object cache
 * @nodes: per kind, radix node cache
 * @pools_lock: protects @pools slots and the pools' identity fields
 * @pools: pool table, max_pools slots
 * @pools_allocated: pool structures allocated so far (zbud.lock)
 * @retired: per kind, counters of destroyed pools (pools_lock)
 * @fill_cursor: next pool stripe to sweep for filled ephemeral pages
 * @evicted_frames: frames reclaimed from the ephemeral LRU (zbud.lock)
 * @wb: writeback hook for persistent frames
 * @wb_opaque: its argument
 */
struct tmem_store {
	struct tmem_config cfg;
	uint64_t max_frames;
	struct zbud zbud;
	uint64_t fixed_bytes;
	unsigned int persistent_waiting;
	struct tmem_cache entries[TMEM_NR_KINDS];
	struct tmem_cache objects[TMEM_NR_KINDS];
	struct tmem_cache nodes[TMEM_NR_KINDS];
	pthread_mutex_t pools_lock;
	_Atomic(struct tmem_pool *) *pools;
	unsigned int pools_allocated;
	struct bucket_stats retired[TMEM_NR_KINDS];
	atomic_uint fill_cursor;
	uint64_t evicted_frames;
	struct tmem_writeback_ops wb;
	void *wb_opaque;
};

static inline enum tmem_kind pool_kind(const struct tmem_pool *p)
{
	return (enum tmem_kind)atomic_load_explicit(&p->kind,
						    memory_order_relaxed);
}

#endif /* TMEM_STORE_INTERNAL_H */
