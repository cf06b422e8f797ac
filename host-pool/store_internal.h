/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * store_internal.h - the structures of a tmem store and the functions its
 * files (store*.c, writeback.c) share; also for the tests that check its
 * invariants.  Not part of the API.
 */
#ifndef TMEM_STORE_INTERNAL_H
#define TMEM_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "radix.h"
#include "slab.h"
#include "tmem.h"
#include "zalloc.h"
#include "zbud.h"

#define POOL_BUCKETS		32u	/* lock stripes per pool */
#define BUCKET_CHAINS		32u	/* object trees per stripe */
/*
 * Most one put can take with zbud: its data frame, a new entry slab, a new
 * object slab and node slabs for 2 * RADIX_MAX_HEIGHT nodes (30 per
 * frame), plus the descriptors of one newly mapped arena (frames come from
 * the lowest arena with room, so one put maps at most one).  An allocator
 * whose units span more frames adds them (store_put_worst()).
 */
#define PUT_WORST_FRAMES	8u
#define PUT_WORST_BYTES		((uint64_t)PUT_WORST_FRAMES * TMEM_PAGE_SIZE + \
				 ZBUD_ARENA_DESC_BYTES)

enum entry_state {
	ENTRY_FREE = 0,		/* never seen on a live entry */
	ENTRY_COMPRESSED,	/* an allocator object, @size compressed bytes */
	ENTRY_RAW,		/* a full frame, uncompressed */
	ENTRY_FILLED,		/* no frame: @where repeated over the page */
	ENTRY_IMAGE,		/* written back: slot @where, at @buddy * 16 */
	ENTRY_IMAGE_RAW,	/* written back raw: the whole slot @where */
};

/**
 * struct tmem_entry - one stored page (24 bytes)
 * @ri: the page index; first, see struct radix_item
 * @obj: object holding the page
 * @where: the handle's frame (COMPRESSED, RAW), fill word (FILLED) or
 *	   image slot (IMAGE, IMAGE_RAW)
 * @size: bytes stored
 * @buddy: the handle's index in its unit (a zbud buddy, a span's object),
 *	   or where the page starts in its image slot, in 16-byte units
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
_Static_assert((TMEM_MAX_LIMIT / TMEM_PAGE_SIZE) * 5 / 4 + 1024 <=
	       ZBUD_MAX_FRAMES,
	       "frame numbers must fit an owner reference");
/* ...and owner references stay below zspage's free-object tag. */
_Static_assert((TMEM_MAX_LIMIT / TMEM_PAGE_SIZE) * 5 / 4 + 1024 <=
	       ZS_MAX_FRAMES,
	       "owner references must stay below ZS_FREE_TAG");

/**
 * struct tmem_object - pages of one object id in one pool (64 bytes)
 * @oid: object id
 * @bucket: stripe holding the object
 * @root: page index
 * @nr_pages: pages held
 * @nr_filled: of which ENTRY_FILLED (they have no frame to reclaim)
 * @left: object tree of the chain: smaller ids (an object_ref(), 0: none)
 * @right: larger ids
 *
 * The objects of one hash chain form a treap: a search tree by id that is
 * also a heap by a hash of the id keyed with a secret of the store, so it
 * stays about 2 ln(n) deep however many objects a guest makes, and
 * whatever ids it picks.  Links are 32-bit slab references to keep the
 * object in one cache line.
 */
struct tmem_object {
	struct tmem_oid oid;
	struct tmem_bucket *bucket;
	struct radix_root root;
	uint32_t nr_pages;
	uint32_t nr_filled;
	uint32_t left, right;
};
_Static_assert(sizeof(struct tmem_object) == 64, "an object is a cache line");

struct bucket_stats {
	uint64_t puts, gets, hits, flushes, flush_objects, flushed_pages;
	uint64_t stored_pages, zero_pages, same_pages, raw_pages;
	uint64_t compressed_bytes, evicted_pages, image_pages;
	uint64_t reject_full, reject_incompressible, reject_nomem;
};

/**
 * struct tmem_bucket - one lock stripe of a pool
 * @lock: protects the objects hashed here, their entries and @stats
 * @pool: owner
 * @recent: the object an op found or made last (pages come in runs)
 * @chain: object hash chains, each the root of a treap (0: empty)
 * @stats: counters of the ops on this stripe
 * @log: while a migration tracks this stripe, its change log (migrate.c),
 *	 else NULL: the one branch an op pays for migration
 */
struct tmem_bucket {
	pthread_mutex_t lock;
	struct tmem_pool *pool;
	struct tmem_object *recent;
	uint32_t chain[BUCKET_CHAINS];
	struct bucket_stats stats;
	struct mig_log *log;
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
 * @gen: incarnation, bumped each time the id is (re)created (written under
 *	 pools_lock before @alive is set; a migration compares it under a
 *	 bucket lock to tell a recreated pool from the one it described)
 * @bucket: lock stripes
 */
struct tmem_pool {
	uint32_t id;
	atomic_int alive;
	atomic_int kind;
	bool shared;
	unsigned int refs;
	struct tmem_uuid uuid;
	atomic_uint gen;
	struct tmem_bucket bucket[POOL_BUCKETS];
};

/**
 * struct store_image - the store's side of writeback to a swap image: the
 *			state that the reclaim path, puts and the background
 *			thread share (the thread's own is in writeback.c)
 * @img: the image, or NULL (no writeback)
 * @wb: the background thread (writeback.c), or NULL
 * @lock: protects the fields below (never held with another lock)
 * @idle: broadcast when @in_flight drops
 * @in_flight: frames being written back
 * @failing: the last writeback failed; credits stop counting image slots
 * @frames_written: frames written back
 * @pages_written: pages moved to the image by them
 * @write_errors: writebacks that failed
 * @overdraft_puts: persistent puts let past the limit (see
 *		    store_reserve_room())
 */
struct store_image {
	struct tmem_image *img;
	struct tmem_writeback *wb;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned int in_flight;
	bool failing;
	uint64_t frames_written, pages_written, write_errors, overdraft_puts;
};

/**
 * struct tmem_store - see tmem.h
 * @cfg: settings at creation; the limit may have changed since (@limit)
 * @max_frames: frames the largest limit allows, plus the writeback
 *		overdraft (cfg.max_limit_bytes: the frame range reserved)
 * @limit: the limit now (zbud.lock; tmem_set_limit())
 * @shrink_start: bytes used when the limit was last lowered below them
 *		  (zbud.lock)
 * @zbud: pageframes (and the limit accounting, under zbud.lock)
 * @alloc: the allocator of pages in frames (cfg.allocator)
 * @alloc_priv: its state (&zbud, or @zs)
 * @zs: the size classes, with TMEM_ALLOC_ZSMALLOC (else NULL)
 * @put_worst: most bytes one put can take (store_put_worst())
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
 * @tree_key: secret of the object trees' heap order (struct tmem_object)
 * @evicted_frames: frames reclaimed from the ephemeral LRU (zbud.lock)
 * @slots_in_flight: allocated free image slots taken by writebacks not
 *		     done yet, in the hold of zbud.lock that takes them;
 *		     each stands for the frame it will free or the slot it
 *		     will give back, in the hold that drops it, so that the
 *		     capacity sees no dip while a write is in flight
 *		     (zbud.lock)
 * @image: writeback to a swap image (image.img NULL: none)
 * @pools_gen: bumped on every change of the pool table (pools_lock)
 * @mig: the migration in progress, or NULL (pools_lock)
 */
struct tmem_store {
	struct tmem_config cfg;
	uint64_t max_frames;
	uint64_t limit;
	uint64_t shrink_start;
	struct zbud zbud;
	const struct zalloc_ops *alloc;
	void *alloc_priv;
	struct zspool *zs;
	uint64_t put_worst;
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
	uint64_t tree_key;
	uint64_t evicted_frames;
	uint64_t slots_in_flight;
	struct store_image image;
	atomic_uint pools_gen;
	struct tmem_migration *mig;
};

/*
 * A 32-bit reference to a slab object: its frame and its slot in that
 * frame.  Frames record their owner entries this way, and object trees
 * link their objects this way.
 */
static inline uint32_t slab_ref(const struct zbud *z, const void *obj,
				size_t size)
{
	size_t off = (size_t)((const uint8_t *)obj - z->base);

	return (uint32_t)((off >> 12) << 8) |
	       (uint32_t)((off & (TMEM_PAGE_SIZE - 1)) / size);
}

static inline void *slab_of_ref(const struct zbud *z, uint32_t ref,
				size_t size)
{
	return zbud_frame_addr(z, ref >> 8) + (ref & 0xff) * size;
}

static inline uint32_t entry_ref(const struct tmem_store *s,
				 const struct tmem_entry *e)
{
	return slab_ref(&s->zbud, e, sizeof(*e));
}

static inline struct tmem_entry *entry_of_ref(const struct tmem_store *s,
					      uint32_t ref)
{
	if (ref == ZBUD_NO_OWNER)
		return NULL;
	return slab_of_ref(&s->zbud, ref, sizeof(struct tmem_entry));
}

/**
 * enum wb_result - what store_writeback_unit() did
 * @WB_IO_ERROR: the write failed, whatever its errno (ENOSPC too: a
 *		 filesystem may refuse a write into allocated blocks); the
 *		 frame stayed in RAM
 * @WB_NO_SLOT: the image has no free slot and could not allocate one
 * @WB_NONE: there was no persistent frame to write
 * @WB_FREED: a frame was written back and freed
 *
 * "No slot" is kept apart from I/O errors because only an I/O error can
 * meet a put that holds a credit (see store_reserve_room()).
 */
enum wb_result {
	WB_IO_ERROR = -2,
	WB_NO_SLOT = -1,
	WB_NONE = 0,
	WB_FREED = 1,
};

static inline enum tmem_kind pool_kind(const struct tmem_pool *p)
{
	return (enum tmem_kind)atomic_load_explicit(&p->kind,
						    memory_order_relaxed);
}

/**
 * struct op - an op's place in the store, with its bucket locked
 * @pool: target pool
 * @b: stripe of the object, locked
 * @chain: object tree of the object in @b
 * @kind: the pool's kind
 * @reserved: a put's reservation still to settle (0 once settled)
 */
struct op {
	struct tmem_pool *pool;
	struct tmem_bucket *b;
	unsigned int chain;
	enum tmem_kind kind;
	uint64_t reserved;
};

static inline void op_unlock(struct op *op)
{
	pthread_mutex_unlock(&op->b->lock);
}

/* The object an object_ref() (a slab_ref() plus one, 0: none) refers to. */
static inline struct tmem_object *object_of_ref(const struct tmem_store *s,
						uint32_t ref)
{
	if (!ref)
		return NULL;
	return slab_of_ref(&s->zbud, ref - 1, sizeof(struct tmem_object));
}

static inline struct zbud_handle entry_handle(const struct tmem_entry *e)
{
	struct zbud_handle h = { .frame = e->where, .buddy = e->buddy };

	return h;
}

static inline bool entry_has_frame(const struct tmem_entry *e)
{
	return e->state == ENTRY_COMPRESSED || e->state == ENTRY_RAW;
}

/**
 * struct page_data - a page ready to be stored
 * @state: ENTRY_COMPRESSED, ENTRY_RAW, ENTRY_FILLED, or ENTRY_IMAGE and
 *	   ENTRY_IMAGE_RAW (a migration's reference into a shared image,
 *	   whose slots tmem_install() counted already)
 * @data: bytes to copy into the frame (compressed or raw)
 * @size: their length
 * @pattern: fill word (ENTRY_FILLED), image slot (ENTRY_IMAGE*)
 * @buddy: where the page starts in its slot, in 16-byte units
 */
struct page_data {
	enum entry_state state;
	const uint8_t *data;
	unsigned int size;
	uint32_t pattern;
	uint8_t buddy;
};

#define IMAGE_OFFSET_SHIFT	4	/* an entry's offset in its slot / 16 */

/* Where a written-back page's unit object starts in its slot. */
static inline unsigned int image_offset(const struct tmem_entry *e)
{
	return (unsigned int)e->buddy << IMAGE_OFFSET_SHIFT;
}

/* Whether a written-back page goes on into its slot's next one. */
static inline bool image_straddles(const struct tmem_store *s,
				   const struct tmem_entry *e)
{
	return e->state == ENTRY_IMAGE &&
	       image_offset(e) + s->alloc->obj_bytes(e->size) > TMEM_PAGE_SIZE;
}

/* What a migration change log records (migrate.c). */
enum mig_note {
	MIG_NOTE_PAGE,		/* one key changed */
	MIG_NOTE_GONE,		/* one key's page went (flush, exclusive get) */
	MIG_NOTE_OBJECT,	/* every page of an object went */
	MIG_NOTE_BUCKET,	/* every page of the stripe went */
};

void mig_note(struct tmem_bucket *b, const struct tmem_oid *oid,
	      uint64_t index, enum mig_note what);

/*
 * Hooks of the ops that change what a key holds, called under the key's
 * bucket lock.  Without a migration they cost one predictable branch.
 */
static inline void store_mig_note(struct tmem_bucket *b,
				  const struct tmem_oid *oid, uint64_t index)
{
	if (__builtin_expect(b->log != NULL, 0))
		mig_note(b, oid, index, MIG_NOTE_PAGE);
}

static inline void store_mig_note_gone(struct tmem_bucket *b,
				       const struct tmem_oid *oid,
				       uint64_t index)
{
	if (__builtin_expect(b->log != NULL, 0))
		mig_note(b, oid, index, MIG_NOTE_GONE);
}

static inline void store_mig_note_object(struct tmem_bucket *b,
					 const struct tmem_oid *oid)
{
	if (__builtin_expect(b->log != NULL, 0))
		mig_note(b, oid, 0, MIG_NOTE_OBJECT);
}

static inline void store_mig_note_bucket(struct tmem_bucket *b)
{
	if (__builtin_expect(b->log != NULL, 0))
		mig_note(b, NULL, 0, MIG_NOTE_BUCKET);
}

void mig_note_moved(struct tmem_bucket *b, const struct tmem_entry *e);

/* Writeback moved @e to the image (only a shared-image stream cares). */
static inline void store_mig_note_moved(struct tmem_bucket *b,
					const struct tmem_entry *e)
{
	if (__builtin_expect(b->log != NULL, 0))
		mig_note_moved(b, e);
}

/* store.c */
int store_put_data(struct tmem_store *s, struct tmem_pool *p,
		   enum tmem_kind kind, const struct tmem_oid *oid,
		   uint64_t index, const struct page_data *pd, bool *replaced);
int store_pool_restore(struct tmem_store *s, uint32_t pool_id,
		       unsigned int flags, const struct tmem_uuid *uuid,
		       unsigned int refs);
int store_pool_drop(struct tmem_store *s, uint32_t pool_id);

/* store_limit.c */
int store_alloc_init(struct tmem_store *s);
uint64_t store_put_worst(const struct tmem_config *cfg);
uint64_t store_max_frames(uint64_t limit_bytes);
uint64_t store_max_limit(const struct tmem_config *cfg);
void store_limit_init(struct tmem_store *s);
void store_resize_status(struct tmem_store *s, struct tmem_resize *st,
			 bool stuck);
uint64_t store_fixed_bytes(const struct tmem_config *cfg);
uint64_t store_used_bytes_locked(const struct tmem_store *s);
uint64_t store_used_bytes(struct tmem_store *s);
int store_reserve_room(struct tmem_store *s, enum tmem_kind kind,
		       uint64_t bytes);
void store_release_unused_locked(struct zbud *z, enum tmem_kind kind,
				 uint64_t bytes);
void store_release_reservation(struct tmem_store *s, enum tmem_kind kind,
			       uint64_t bytes);
int store_charge_pool(struct tmem_store *s);

/* store_objects.c */
struct tmem_pool *store_pool_get(struct tmem_store *s, uint32_t pool_id);
int store_op_lock(struct tmem_pool *p, const struct tmem_oid *oid,
		  struct op *op);
struct tmem_object *store_object_find(const struct tmem_store *s,
				      const struct op *op,
				      const struct tmem_oid *oid);
struct tmem_object *store_object_new(struct tmem_store *s, const struct op *op,
				     const struct tmem_oid *oid);
struct tmem_object *store_object_after(const struct tmem_store *s,
				       uint32_t root,
				       const struct tmem_oid *after);
void store_object_free_if_empty(struct tmem_store *s,
				struct tmem_object *obj);
uint64_t store_object_drain(struct tmem_store *s, struct tmem_bucket *b,
			    struct tmem_object *obj);
struct radix_alloc store_node_allocator(struct tmem_store *s,
					enum tmem_kind kind);
void store_entry_account(struct tmem_bucket *b, const struct tmem_entry *e,
			 int sign);
void store_entry_drop(struct tmem_store *s, struct tmem_bucket *b,
		      struct tmem_entry *e, bool detached);
int store_page_remove_entry(struct tmem_store *s, const struct op *op,
			    struct tmem_object *obj, uint64_t index,
			    bool detached);
int store_page_remove(struct tmem_store *s, const struct op *op,
		      struct tmem_object *obj, uint64_t index);
int store_object_tree_check(const struct tmem_store *s,
			    const struct tmem_bucket *b, unsigned int chain,
			    uint64_t *count);

/* store_reclaim.c */
long store_evict_ephemeral_unit(struct tmem_store *s);
long store_evict_ephemeral(struct tmem_store *s);
enum wb_result store_writeback_unit(struct tmem_store *s);
bool store_writeback_wait_idle(struct tmem_store *s);
bool store_writeback_failing(struct tmem_store *s);
int store_image_read(struct tmem_store *s, const struct tmem_entry *e,
		     uint8_t *cbuf, const struct iovec *iov, int iovcnt);
void store_image_put(struct tmem_store *s, const struct tmem_entry *e);
uint64_t store_compact(struct tmem_store *s, bool force);
void store_image_detach(struct tmem_store *s);
void store_image_stats(struct tmem_store *s, struct tmem_image_stats *st);

/* writeback.c, the background thread */
struct tmem_writeback *writeback_start(struct tmem_store *s,
				       struct tmem_image *img,
				       uint64_t high_bytes, uint64_t low_bytes);
void writeback_kick(struct tmem_writeback *wb, uint64_t used);
void writeback_set_marks(struct tmem_writeback *wb, uint64_t high_bytes,
			 uint64_t low_bytes);
void writeback_stop(struct tmem_writeback *wb);
void writeback_stats(struct tmem_writeback *wb, struct tmem_image_stats *st);

#endif /* TMEM_STORE_INTERNAL_H */
