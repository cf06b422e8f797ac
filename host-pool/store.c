// SPDX-License-Identifier: BSD-3-Clause
/*
 * store.c - tmem semantics on top of a page allocator (zalloc.h): the
 * store, its pools, and the page API (put, get, flush) in call order.
 *
 * The store is split by concern:
 *   store.c		the store, pools, put/get/flush, statistics
 *   store_limit.c	settings, the limit, reservations, capacity
 *   store_objects.c	stripes, object trees, entries
 *   store_reclaim.c	eviction and writeback through one reclaim path
 *   writeback.c		the background writeback thread and its policy
 *   migrate.c		migration: the source's cursor and change logs, the
 *			destination's install
 *
 * Lock order (outer first), for all of them:
 *
 *   store->pools_lock		pool table, pool identity (new/destroy)
 *     bucket->lock		objects and entries of one stripe of a pool
 *       shard->lock		slab objects of one shard of a cache (slab.h)
 *         zbud->lock		frames, the allocator's lists and LRUs,
 *				limit accounting
 *           img->lock		swap image slots (swapimg.c)
 *
 * image->lock (struct store_image: writebacks in flight, their outcome)
 * and wb->lock (writeback.c: the background thread's state) are each never
 * held with another lock.
 *
 * Reclaim goes from a frame to its owners' bucket locks, against this
 * order; store_reclaim.c says why that is safe.
 *
 * A change of the limit (tmem_set_limit()) writes it under zbud->lock,
 * where every reservation and the capacity read it; tmem_shrink() holds
 * no lock of its own and frees memory through the reclaim path above.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "compress.h"
#include "hash.h"
#include "lock.h"
#include "pageio.h"
#include "store_internal.h"

static _Thread_local uint8_t tls_cbuf[TMEM_PAGE_SIZE];
static _Thread_local uint8_t tls_bounce[TMEM_PAGE_SIZE];

static const char *const error_names[TMEM_E__MAX] = {
	[0] = "success",
	[TMEM_E_INVAL] = "invalid argument",
	[TMEM_E_BAD_POOL] = "no such pool",
	[TMEM_E_NOT_FOUND] = "page not found",
	[TMEM_E_IOV] = "buffer is not exactly one page",
	[TMEM_E_FULL] = "store is full",
	[TMEM_E_INCOMPRESSIBLE] = "page is incompressible",
	[TMEM_E_NO_POOLS] = "too many pools",
	[TMEM_E_UUID_KIND] = "shared pool exists with another kind",
	[TMEM_E_NOMEM] = "host out of memory",
	[TMEM_E_IO] = "stored data unreadable",
	[TMEM_E_IMAGE] = "swap image unusable",
};

/**
 * tmem_strerror() - text for a TMEM_E* code
 * @err: the code, negated or not
 */
const char *tmem_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err >= TMEM_E__MAX)
		return "unknown error";
	return error_names[err];
}

/* ---- store --------------------------------------------------------------- */

/*
 * The secret of the object trees' shape.  Without getrandom() the time and
 * an address still differ from run to run: a guest could then at worst
 * make its own lookups slower.
 */
static uint64_t tree_key(void)
{
	struct timespec ts;
	uint64_t key;

	if (getrandom(&key, sizeof(key), GRND_NONBLOCK) == sizeof(key))
		return key;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return tmem_mix64((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts ^
			  ((uint64_t)ts.tv_sec << 32));
}

/**
 * tmem_store_create() - make an empty store
 * @cfg: settings (see struct tmem_config)
 * @out: the new store
 *
 * Pool structures are charged as pools are first created and frame
 * descriptors as arenas are mapped; tmem_persistent_capacity() counts all
 * that may come, so that neither ever lowers it.
 *
 * Return: 0, -TMEM_E_INVAL for settings tmem_config_check() refuses,
 * -TMEM_E_NOMEM.
 */
int tmem_store_create(const struct tmem_config *cfg, struct tmem_store **out)
{
	struct tmem_store *s;
	int k;

	if (!cfg || !out || tmem_config_check(cfg, NULL, 0) != TMEM_CFG_OK)
		return -TMEM_E_INVAL;
	/* cache shards are cache-line aligned */
	s = aligned_alloc(_Alignof(struct tmem_store), sizeof(*s));
	if (!s)
		return -TMEM_E_NOMEM;
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->max_frames = store_max_frames(store_max_limit(cfg));
	if (zbud_init(&s->zbud, s->max_frames)) {
		free(s);
		return -TMEM_E_NOMEM;
	}
	s->pools = calloc(cfg->max_pools, sizeof(*s->pools));
	if (!s->pools || store_alloc_init(s)) {
		free(s->pools);
		zbud_fini(&s->zbud);
		free(s);
		return -TMEM_E_NOMEM;
	}
	s->fixed_bytes = store_fixed_bytes(cfg);
	store_limit_init(s);
	s->tree_key = tree_key();
	for (k = 0; k < TMEM_NR_KINDS; k++) {
		tmem_cache_init(&s->entries[k], &s->zbud,
				sizeof(struct tmem_entry), k);
		tmem_cache_init(&s->objects[k], &s->zbud,
				sizeof(struct tmem_object), k);
		tmem_cache_init(&s->nodes[k], &s->zbud,
				sizeof(struct radix_node), k);
	}
	tmem_mutex_init(&s->pools_lock);
	*out = s;
	return 0;
}

/**
 * tmem_store_destroy() - free a store and everything in it
 * @s: store (NULL is ignored); no other call may be in progress (a
 *     migration still started is ended)
 */
void tmem_store_destroy(struct tmem_store *s)
{
	uint32_t i, j;
	int k;

	if (!s)
		return;
	tmem_migration_end(s->mig);
	store_image_detach(s);
	for (i = 0; s->pools && i < s->cfg.max_pools; i++) {
		struct tmem_pool *p = atomic_load(&s->pools[i]);

		if (!p)
			continue;
		for (j = 0; j < POOL_BUCKETS; j++)
			pthread_mutex_destroy(&p->bucket[j].lock);
		free(p);
	}
	free(s->pools);
	if (s->fixed_bytes) {
		for (k = 0; k < TMEM_NR_KINDS; k++) {
			tmem_cache_fini(&s->entries[k]);
			tmem_cache_fini(&s->objects[k]);
			tmem_cache_fini(&s->nodes[k]);
		}
		pthread_mutex_destroy(&s->pools_lock);
	}
	free(s->zs);
	zbud_fini(&s->zbud);
	free(s);
}

/* ---- pools --------------------------------------------------------------- */

static struct tmem_pool *pool_alloc(uint32_t id)
{
	struct tmem_pool *p = calloc(1, sizeof(*p));
	unsigned int i;

	if (!p)
		return NULL;
	p->id = id;
	for (i = 0; i < POOL_BUCKETS; i++) {
		tmem_mutex_init(&p->bucket[i].lock);
		p->bucket[i].pool = p;
	}
	return p;
}

static int pool_find_shared_locked(struct tmem_store *s,
				   const struct tmem_uuid *uuid)
{
	uint32_t i;

	for (i = 0; i < s->cfg.max_pools; i++) {
		struct tmem_pool *p = atomic_load(&s->pools[i]);

		if (p && atomic_load(&p->alive) && p->shared &&
		    !memcmp(&p->uuid, uuid, sizeof(*uuid)))
			return (int)i;
	}
	return -1;
}

static int pool_free_slot_locked(struct tmem_store *s)
{
	uint32_t i;

	for (i = 0; i < s->cfg.max_pools; i++) {
		struct tmem_pool *p = atomic_load(&s->pools[i]);

		if (!p) {
			int ret = store_charge_pool(s);

			if (ret)
				return ret;
			p = pool_alloc(i);
			if (!p)
				return -TMEM_E_NOMEM;
			atomic_store_explicit(&s->pools[i], p,
					      memory_order_release);
			return (int)i;
		}
		if (!atomic_load(&p->alive))
			return (int)i;
	}
	return -TMEM_E_NO_POOLS;
}

/**
 * tmem_new_pool() - create a pool, or join a shared one
 * @s: store
 * @flags: TMEM_POOL_PERSISTENT, TMEM_POOL_SHARED
 * @uuid: the shared pool's UUID (TMEM_POOL_SHARED only, else NULL)
 *
 * A second call with the same UUID returns the same pool and takes a
 * reference; destroy_pool drops one.
 *
 * Return: the pool id, or -TMEM_E_INVAL, -TMEM_E_NO_POOLS, -TMEM_E_FULL,
 * -TMEM_E_UUID_KIND (the UUID names a pool of the other kind),
 * -TMEM_E_NOMEM.
 */
int tmem_new_pool(struct tmem_store *s, unsigned int flags,
		  const struct tmem_uuid *uuid)
{
	enum tmem_kind kind = (flags & TMEM_POOL_PERSISTENT) ?
			      TMEM_PERSISTENT : TMEM_EPHEMERAL;
	bool shared = flags & TMEM_POOL_SHARED;
	struct tmem_pool *p;
	int id;

	if (!s || (flags & ~(TMEM_POOL_PERSISTENT | TMEM_POOL_SHARED)) ||
	    shared != (uuid != NULL))
		return -TMEM_E_INVAL;
	pthread_mutex_lock(&s->pools_lock);
	id = shared ? pool_find_shared_locked(s, uuid) : -1;
	if (id >= 0) {
		p = atomic_load(&s->pools[id]);
		if (pool_kind(p) != kind) {
			id = -TMEM_E_UUID_KIND;
		} else {
			p->refs++;
		}
		goto out;
	}
	id = pool_free_slot_locked(s);
	if (id < 0)
		goto out;
	p = atomic_load(&s->pools[id]);
	atomic_store_explicit(&p->kind, kind, memory_order_relaxed);
	p->shared = shared;
	p->refs = 1;
	if (shared)
		p->uuid = *uuid;
	else
		memset(&p->uuid, 0, sizeof(p->uuid));
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_relaxed);
	atomic_store_explicit(&p->alive, 1, memory_order_release);
out:
	atomic_fetch_add(&s->pools_gen, 1);
	pthread_mutex_unlock(&s->pools_lock);
	return id;
}

/* Whether pool @p (alive) is what a pool descriptor describes. */
static bool pool_matches_locked(const struct tmem_pool *p, enum tmem_kind kind,
			   bool shared, const struct tmem_uuid *uuid)
{
	return pool_kind(p) == kind && p->shared == shared &&
	       (!shared || !memcmp(&p->uuid, uuid, sizeof(*uuid)));
}

/**
 * store_pool_restore() - make pool @pool_id what a migration stream says
 * @s: store (the destination of a migration)
 * @pool_id: the pool's id on the source
 * @flags: TMEM_POOL_PERSISTENT, TMEM_POOL_SHARED
 * @uuid: the shared pool's UUID, else NULL
 * @refs: tmem_new_pool() calls not yet matched by a destroy on the source
 *
 * Creates the pool at @pool_id, or, if a pool of that identity is there
 * already, sets its references.
 *
 * Return: 0, or -TMEM_E_INVAL (bad arguments, another pool at @pool_id or
 * with @uuid), -TMEM_E_FULL, -TMEM_E_NOMEM.
 */
int store_pool_restore(struct tmem_store *s, uint32_t pool_id,
		       unsigned int flags, const struct tmem_uuid *uuid,
		       unsigned int refs)
{
	enum tmem_kind kind = (flags & TMEM_POOL_PERSISTENT) ?
			      TMEM_PERSISTENT : TMEM_EPHEMERAL;
	bool shared = flags & TMEM_POOL_SHARED;
	struct tmem_pool *p;
	int ret = 0;

	if ((flags & ~(TMEM_POOL_PERSISTENT | TMEM_POOL_SHARED)) || !refs ||
	    shared != (uuid != NULL) || pool_id >= s->cfg.max_pools)
		return -TMEM_E_INVAL;
	pthread_mutex_lock(&s->pools_lock);
	p = atomic_load(&s->pools[pool_id]);
	if (p && atomic_load(&p->alive)) {
		if (pool_matches_locked(p, kind, shared, uuid))
			p->refs = refs;
		else
			ret = -TMEM_E_INVAL;
		goto out;
	}
	if (shared && pool_find_shared_locked(s, uuid) >= 0) {
		ret = -TMEM_E_INVAL;
		goto out;
	}
	if (!p) {
		ret = store_charge_pool(s);
		p = ret ? NULL : pool_alloc(pool_id);
		if (!p) {
			ret = ret ? ret : -TMEM_E_NOMEM;
			goto out;
		}
		atomic_store_explicit(&s->pools[pool_id], p,
				      memory_order_release);
	}
	atomic_store_explicit(&p->kind, kind, memory_order_relaxed);
	p->shared = shared;
	p->refs = refs;
	memset(&p->uuid, 0, sizeof(p->uuid));
	if (shared)
		p->uuid = *uuid;
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_relaxed);
	atomic_store_explicit(&p->alive, 1, memory_order_release);
out:
	atomic_fetch_add(&s->pools_gen, 1);
	pthread_mutex_unlock(&s->pools_lock);
	return ret;
}

static void stats_add(struct bucket_stats *dst, const struct bucket_stats *src)
{
	const uint64_t *a = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;
	size_t i;

	for (i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
		d[i] += a[i];
}

/* Empty every bucket of @p; returns pages removed. */
static uint64_t pool_flush_all(struct tmem_store *s, struct tmem_pool *p,
			       bool retire)
{
	uint64_t pages = 0;
	unsigned int i, c;

	for (i = 0; i < POOL_BUCKETS; i++) {
		struct tmem_bucket *b = &p->bucket[i];
		uint64_t n = 0;

		pthread_mutex_lock(&b->lock);
		store_mig_note_bucket(b);
		for (c = 0; c < BUCKET_CHAINS; c++) {
			struct tmem_object *obj;

			while ((obj = object_of_ref(s, b->chain[c])))
				n += store_object_drain(s, b, obj);
		}
		b->stats.flushed_pages += n;
		pages += n;
		if (retire) {
			stats_add(&s->retired[pool_kind(p)], &b->stats);
			memset(&b->stats, 0, sizeof(b->stats));
		}
		pthread_mutex_unlock(&b->lock);
	}
	return pages;
}

/**
 * tmem_destroy_pool() - drop a reference to a pool; the last one empties
 *			 and frees the pool id
 * @s: store
 * @pool_id: pool
 * @flushed: if not NULL, set to the pages removed
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_BAD_POOL.
 */
int tmem_destroy_pool(struct tmem_store *s, uint32_t pool_id,
		      uint64_t *flushed)
{
	struct tmem_pool *p;
	uint64_t pages = 0;
	int ret = 0;

	if (!s)
		return -TMEM_E_INVAL;
	pthread_mutex_lock(&s->pools_lock);
	p = store_pool_get(s, pool_id);
	if (!p) {
		ret = -TMEM_E_BAD_POOL;
	} else if (--p->refs == 0) {
		atomic_store_explicit(&p->alive, 0, memory_order_release);
		pages = pool_flush_all(s, p, true);
	}
	atomic_fetch_add(&s->pools_gen, 1);
	pthread_mutex_unlock(&s->pools_lock);
	zbud_clean(&s->zbud);
	if (flushed)
		*flushed = pages;
	return ret;
}

/**
 * store_pool_drop() - destroy a pool whatever its references
 * @s: store (the destination of a migration: the source destroyed it)
 * @pool_id: pool
 *
 * Return: 0, or -TMEM_E_BAD_POOL.
 */
int store_pool_drop(struct tmem_store *s, uint32_t pool_id)
{
	struct tmem_pool *p;
	int ret = 0;

	pthread_mutex_lock(&s->pools_lock);
	p = store_pool_get(s, pool_id);
	if (p) {
		p->refs = 0;
		atomic_store_explicit(&p->alive, 0, memory_order_release);
		pool_flush_all(s, p, true);
	} else {
		ret = -TMEM_E_BAD_POOL;
	}
	atomic_fetch_add(&s->pools_gen, 1);
	pthread_mutex_unlock(&s->pools_lock);
	zbud_clean(&s->zbud);
	return ret;
}

/**
 * tmem_pool_kind() - kind of a pool
 * @s: store
 * @pool_id: pool
 *
 * Return: TMEM_EPHEMERAL or TMEM_PERSISTENT, or -TMEM_E_BAD_POOL.
 */
int tmem_pool_kind(struct tmem_store *s, uint32_t pool_id)
{
	struct tmem_pool *p = s ? store_pool_get(s, pool_id) : NULL;

	return p ? (int)pool_kind(p) : -TMEM_E_BAD_POOL;
}

/**
 * tmem_flush_pool() - remove every page of a pool
 * @s: store
 * @pool_id: pool
 * @flushed: if not NULL, set to the pages removed
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_BAD_POOL.
 */
int tmem_flush_pool(struct tmem_store *s, uint32_t pool_id, uint64_t *flushed)
{
	struct tmem_pool *p;
	uint64_t pages;

	if (!s)
		return -TMEM_E_INVAL;
	p = store_pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	pages = pool_flush_all(s, p, false);
	zbud_clean(&s->zbud);
	if (flushed)
		*flushed = pages;
	return 0;
}

/* ---- pages --------------------------------------------------------------- */

/*
 * Decide how a page is stored, compressing it straight from the caller's
 * buffer into this thread's scratch buffer.  No lock is held.
 */
static int page_prepare(struct tmem_store *s, enum tmem_kind kind,
			const struct iovec *iov, int iovcnt,
			struct page_data *pd)
{
	const uint8_t *src = pageio_source(iov, iovcnt, tls_bounce);
	int clen;

	memset(pd, 0, sizeof(*pd));
	if (pageio_same_filled(src, &pd->pattern)) {
		pd->state = ENTRY_FILLED;
		return 0;
	}
	clen = compress_page(&s->cfg, src, tls_cbuf);
	if (clen > 0) {
		pd->state = ENTRY_COMPRESSED;
		pd->data = tls_cbuf;
		pd->size = (unsigned int)clen;
		return 0;
	}
	/* A persistent page is stored raw rather than refused, see tmem_put() */
	if (kind == TMEM_EPHEMERAL && clen < 0)
		return clen;
	if (kind == TMEM_EPHEMERAL && s->cfg.compressor != TMEM_COMP_NONE)
		return -TMEM_E_INCOMPRESSIBLE;
	pd->state = ENTRY_RAW;
	pd->data = src;
	pd->size = TMEM_PAGE_SIZE;
	return 0;
}

/*
 * Make a new entry for @pd at @index of @obj; it owns its buddy on return.
 * When the index insert will need no node, nothing else of the put can
 * take memory: the rest of its reservation goes back under the same hold
 * of zbud->lock, saving the put a round trip.  So does the buddy of @old,
 * the entry being replaced, if it has one: its space is free for this very
 * page, and *old_detached tells the caller to drop @old as detached, also
 * when the put fails.  The bucket lock keeps @old from being read meanwhile.
 */
static struct tmem_entry *entry_new(struct tmem_store *s, struct op *op,
				    struct tmem_object *obj, uint64_t index,
				    const struct page_data *pd,
				    const struct tmem_entry *old,
				    bool *old_detached)
{
	struct tmem_entry *e = tmem_cache_alloc(&s->entries[op->kind]);
	struct zbud_populate pop;
	struct zbud_handle h;
	bool settle, hot;
	int ret;

	if (!e)
		return NULL;
	e->ri.index = index;
	e->obj = obj;
	e->state = (uint8_t)pd->state;
	if (pd->state == ENTRY_FILLED) {
		e->where = pd->pattern;
		return e;
	}
	if (pd->state == ENTRY_IMAGE || pd->state == ENTRY_IMAGE_RAW) {
		e->where = pd->pattern;	/* counted in its slots by the caller */
		e->buddy = pd->buddy;
		e->size = (uint16_t)pd->size;
		return e;
	}
	settle = old || !radix_nodes_needed(&obj->root, index);
	pthread_mutex_lock(&s->zbud.lock);
	if (old && entry_has_frame(old)) {
		s->alloc->free_locked(s->alloc_priv, entry_handle(old));
		*old_detached = true;
	}
	ret = s->alloc->alloc_locked(s->alloc_priv, op->kind, pd->size,
				     entry_ref(s, e), &h);
	hot = !ret && s->alloc->hot_locked(s->alloc_priv, h);
	if (!ret && settle) {
		store_release_unused_locked(&s->zbud, op->kind, op->reserved);
		op->reserved = 0;
	}
	zbud_take_populate_locked(&s->zbud, &pop);
	pthread_mutex_unlock(&s->zbud.lock);
	zbud_populate(&s->zbud, &pop);
	if (ret) {
		tmem_cache_free(&s->entries[op->kind], e);
		return NULL;
	}
	/*
	 * The object is ours and cannot be freed or moved under us, so the
	 * copy needs only the bucket lock; whoever reads or moves its bytes
	 * takes the owner's bucket lock first (see store_reclaim.c).
	 */
	s->alloc->write(s->alloc_priv, h, pd->data, pd->size, hot);
	e->where = h.frame;
	e->buddy = h.buddy;
	e->size = (uint16_t)pd->size;
	return e;
}

static unsigned int entry_size(const struct tmem_entry *e)
{
	return e->size;
}

/* Undo entry_new() for an entry that never made it into the index. */
static void entry_discard(struct tmem_store *s, const struct op *op,
			  struct tmem_entry *e)
{
	if (entry_has_frame(e)) {
		pthread_mutex_lock(&s->zbud.lock);
		s->alloc->free_locked(s->alloc_priv, entry_handle(e));
		pthread_mutex_unlock(&s->zbud.lock);
	}
	tmem_cache_free(&s->entries[op->kind], e);
}

/* The put itself, under the bucket lock.  On failure the old page is gone. */
static int put_locked(struct tmem_store *s, struct op *op,
		      const struct tmem_oid *oid, uint64_t index,
		      const struct page_data *pd, bool *replaced)
{
	struct radix_alloc a = store_node_allocator(s, op->kind);
	struct tmem_object *obj = store_object_find(s, op, oid);
	struct radix_item *old = NULL;
	bool old_detached = false;
	struct tmem_entry *e;
	void **slot = NULL;

	if (!obj) {
		obj = store_object_new(s, op, oid);
		if (!obj)
			return -TMEM_E_NOMEM;
	} else {
		slot = radix_slot(&obj->root, index);
		if (slot)
			old = *slot;
	}
	e = entry_new(s, op, obj, index, pd, (struct tmem_entry *)old,
		      &old_detached);
	if (!e)
		goto fail;
	if (slot) {		/* a replace: the tree keeps its shape */
		*slot = &e->ri;
	} else if (radix_insert(&obj->root, &e->ri, &a, &old)) {
		entry_discard(s, op, e);
		goto fail;
	}
	store_entry_account(op->b, e, 1);
	if (old) {
		store_entry_drop(s, op->b, (struct tmem_entry *)old,
				 old_detached);
		*replaced = true;
	}
	return 0;
fail:
	if (!store_page_remove_entry(s, op, obj, index, old_detached))
		store_object_free_if_empty(s, obj);
	return -TMEM_E_NOMEM;
}

/*
 * A put that cannot store its page still removes the older one, whatever
 * stopped it (a page that is not one page, no room, incompressible), so
 * that a later get misses instead of returning stale data.
 */
static void put_refused(struct tmem_store *s, struct tmem_pool *p,
			const struct tmem_oid *oid, uint64_t index, int err)
{
	struct tmem_object *obj;
	struct op op;

	if (store_op_lock(p, oid, &op))
		return;
	store_mig_note_gone(op.b, oid, index);
	op.b->stats.puts++;
	if (err == -TMEM_E_FULL)
		op.b->stats.reject_full++;
	else if (err == -TMEM_E_INCOMPRESSIBLE)
		op.b->stats.reject_incompressible++;
	else if (err == -TMEM_E_NOMEM)
		op.b->stats.reject_nomem++;
	obj = store_object_find(s, &op, oid);
	if (obj)
		store_page_remove(s, &op, obj, index);
	op_unlock(&op);
}

/**
 * store_put_data() - store a prepared page, replacing any at the same key
 * @s: store
 * @p: pool from store_pool_get()
 * @kind: its kind when it was looked up
 * @oid: object id
 * @index: page index
 * @pd: the page as it will be stored
 * @replaced: set to whether an older page was replaced
 *
 * Reserves the worst case of a put first: when that fails nothing was
 * touched (tmem_install() relies on it; tmem_put() then removes the old
 * page itself).  A failure once the bucket is locked (no memory for an
 * index node) leaves the key empty.
 *
 * Return: 0, or -TMEM_E_BAD_POOL (destroyed meanwhile), -TMEM_E_FULL,
 * -TMEM_E_NOMEM.
 */
int store_put_data(struct tmem_store *s, struct tmem_pool *p,
		   enum tmem_kind kind, const struct tmem_oid *oid,
		   uint64_t index, const struct page_data *pd, bool *replaced)
{
	uint64_t need = s->put_worst;
	struct op op;
	int ret;

	if (pd->state != ENTRY_COMPRESSED && pd->state != ENTRY_RAW)
		need -= (uint64_t)s->alloc->span_frames_max * TMEM_PAGE_SIZE;
	ret = store_reserve_room(s, kind, need);
	if (ret)
		return ret;
	op.reserved = need;
	ret = store_op_lock(p, oid, &op);
	if (!ret && op.kind != kind) {	/* destroyed and reused meanwhile */
		op_unlock(&op);
		ret = -TMEM_E_BAD_POOL;
	} else if (!ret) {
		store_mig_note(op.b, oid, index);
		op.b->stats.puts++;
		ret = put_locked(s, &op, oid, index, pd, replaced);
		if (ret)
			op.b->stats.reject_nomem++;
		op_unlock(&op);
	}
	store_release_reservation(s, kind, op.reserved);
	zbud_clean(&s->zbud);
	return ret;
}

/**
 * tmem_put() - store a page, replacing any page at the same key
 * @s: store
 * @pool_id: pool
 * @oid: object id
 * @index: page index
 * @iov: the page, exactly TMEM_PAGE_SIZE bytes in 1..TMEM_MAX_IOV pieces
 * @iovcnt: pieces
 * @replaced: if not NULL, set to whether an older page was replaced
 *
 * The replacement is atomic: a later get returns the new page or, when
 * this put fails for any reason once @pool_id names a pool (a bad @iov
 * too), misses; never the old page.  A persistent put with a valid @iov
 * fails only when the store is full (see tmem_persistent_capacity()).
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_IOV, -TMEM_E_BAD_POOL,
 * -TMEM_E_FULL, -TMEM_E_INCOMPRESSIBLE (ephemeral only), -TMEM_E_NOMEM.
 */
int tmem_put(struct tmem_store *s, uint32_t pool_id,
	     const struct tmem_oid *oid, uint64_t index,
	     const struct iovec *iov, int iovcnt, bool *replaced)
{
	enum tmem_kind kind;
	struct page_data pd;
	struct tmem_pool *p;
	bool dummy;
	int ret;

	if (!replaced)
		replaced = &dummy;
	*replaced = false;
	if (!s || !oid)
		return -TMEM_E_INVAL;
	p = store_pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	kind = pool_kind(p);
	ret = pageio_valid(iov, iovcnt) ? 0 : -TMEM_E_IOV;
	if (!ret)
		ret = page_prepare(s, kind, iov, iovcnt, &pd);
	if (!ret)
		ret = store_put_data(s, p, kind, oid, index, &pd, replaced);
	if (ret == -TMEM_E_BAD_POOL)
		return ret;
	if (ret && ret != -TMEM_E_NOMEM)
		put_refused(s, p, oid, index, ret);
	return ret;
}

/**
 * struct page_copy - what a get took out of the store under the lock
 * @state: how the page was stored
 * @size: compressed bytes in tls_cbuf (ENTRY_COMPRESSED)
 * @pattern: fill word (ENTRY_FILLED)
 */
struct page_copy {
	enum entry_state state;
	unsigned int size;
	uint32_t pattern;
};

/* Under the bucket lock: copy the page out of its frame or slot (raw pages
 * go straight to the caller, compressed ones to the scratch buffer).
 */
static int page_copy_locked(struct tmem_store *s, const struct tmem_entry *e,
			    const struct iovec *iov, int iovcnt,
			    struct page_copy *pc)
{
	pc->state = e->state;
	pc->size = entry_size(e);
	pc->pattern = e->where;
	if (e->state == ENTRY_IMAGE || e->state == ENTRY_IMAGE_RAW) {
		pc->state = e->state == ENTRY_IMAGE ? ENTRY_COMPRESSED :
						      ENTRY_RAW;
		return store_image_read(s, e, tls_cbuf, iov, iovcnt);
	}
	if (!entry_has_frame(e))
		return 0;
	/* a raw page is a whole frame, the first of its unit (zalloc.h) */
	if (e->state == ENTRY_RAW)
		pageio_scatter(iov, iovcnt, zbud_frame_addr(&s->zbud, e->where));
	else
		s->alloc->read(s->alloc_priv, entry_handle(e), tls_cbuf,
			       pc->size);
	return 0;
}

static int page_finish(const struct tmem_store *s, const struct iovec *iov,
		       int iovcnt, const struct page_copy *pc)
{
	uint8_t *dst;
	int ret;

	if (pc->state == ENTRY_FILLED) {
		pageio_fill(iov, iovcnt, pc->pattern);
		return 0;
	}
	if (pc->state == ENTRY_RAW)
		return 0;
	dst = pageio_dest(iov, iovcnt, tls_bounce);
	ret = decompress_page(&s->cfg, tls_cbuf, pc->size, dst);
	if (ret)
		return ret;
	pageio_scatter(iov, iovcnt, dst);
	return 0;
}

static int lookup_locked(const struct tmem_store *s, const struct op *op,
			 const struct tmem_oid *oid, uint64_t index,
			 struct tmem_object **objp, struct tmem_entry **ep)
{
	*objp = store_object_find(s, op, oid);
	*ep = *objp ? (struct tmem_entry *)radix_lookup(&(*objp)->root,
							 index) : NULL;
	return *ep ? 0 : -TMEM_E_NOT_FOUND;
}

/**
 * tmem_get() - copy a page out
 * @s: store
 * @pool_id: pool
 * @oid: object id
 * @index: page index
 * @iov: destination, exactly TMEM_PAGE_SIZE bytes in 1..TMEM_MAX_IOV pieces
 * @iovcnt: pieces
 * @flags: TMEM_GET_EXCLUSIVE removes the page once copied
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_IOV, -TMEM_E_BAD_POOL,
 * -TMEM_E_NOT_FOUND, -TMEM_E_IO (stored data does not decompress; the
 * destination is then undefined), -TMEM_E_NOMEM (no memory for this
 * thread's decompression state; the page stays).
 */
int tmem_get(struct tmem_store *s, uint32_t pool_id,
	     const struct tmem_oid *oid, uint64_t index,
	     const struct iovec *iov, int iovcnt, unsigned int flags)
{
	struct tmem_object *obj;
	struct page_copy pc;
	struct tmem_entry *e;
	struct tmem_pool *p;
	struct op op;
	int ret;

	if (!s || !oid || (flags & ~TMEM_GET_EXCLUSIVE))
		return -TMEM_E_INVAL;
	if (!pageio_valid(iov, iovcnt))
		return -TMEM_E_IOV;
	p = store_pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	/* Before a page is taken out, so that page_finish() needs no memory */
	ret = compress_thread_ready(&s->cfg);
	if (ret)
		return ret;
	ret = store_op_lock(p, oid, &op);
	if (ret)
		return ret;
	op.b->stats.gets++;
	ret = lookup_locked(s, &op, oid, index, &obj, &e);
	if (!ret) {
		op.b->stats.hits++;
		ret = page_copy_locked(s, e, iov, iovcnt, &pc);
		/* An unreadable page stays: a later get may be luckier. */
		if (!ret && (flags & TMEM_GET_EXCLUSIVE)) {
			store_mig_note_gone(op.b, oid, index);
			store_page_remove(s, &op, obj, index);
		}
	}
	op_unlock(&op);
	zbud_clean(&s->zbud);
	return ret ? ret : page_finish(s, iov, iovcnt, &pc);
}

/**
 * tmem_flush_page() - remove a page
 * @s: store
 * @pool_id: pool
 * @oid: object id
 * @index: page index
 *
 * Return: 1 if a page was removed, 0 if there was none, or -TMEM_E_INVAL,
 * -TMEM_E_BAD_POOL.
 */
int tmem_flush_page(struct tmem_store *s, uint32_t pool_id,
		    const struct tmem_oid *oid, uint64_t index)
{
	struct tmem_object *obj;
	struct tmem_pool *p;
	struct op op;
	int ret;

	if (!s || !oid)
		return -TMEM_E_INVAL;
	p = store_pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	ret = store_op_lock(p, oid, &op);
	if (ret)
		return ret;
	store_mig_note_gone(op.b, oid, index);
	op.b->stats.flushes++;
	obj = store_object_find(s, &op, oid);
	ret = obj ? store_page_remove(s, &op, obj, index) : 0;
	op.b->stats.flushed_pages += (uint64_t)ret;
	op_unlock(&op);
	zbud_clean(&s->zbud);
	return ret;
}

/**
 * tmem_flush_object() - remove every page of an object
 * @s: store
 * @pool_id: pool
 * @oid: object id
 * @flushed: if not NULL, set to the pages removed
 *
 * Takes time proportional to the object's pages, not the pool's.
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_BAD_POOL.
 */
int tmem_flush_object(struct tmem_store *s, uint32_t pool_id,
		      const struct tmem_oid *oid, uint64_t *flushed)
{
	struct tmem_object *obj;
	struct tmem_pool *p;
	uint64_t pages = 0;
	struct op op;
	int ret;

	if (!s || !oid)
		return -TMEM_E_INVAL;
	p = store_pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	ret = store_op_lock(p, oid, &op);
	if (ret)
		return ret;
	store_mig_note_object(op.b, oid);
	op.b->stats.flush_objects++;
	obj = store_object_find(s, &op, oid);
	if (obj)
		pages = store_object_drain(s, op.b, obj);
	op.b->stats.flushed_pages += pages;
	op_unlock(&op);
	zbud_clean(&s->zbud);
	if (flushed)
		*flushed = pages;
	return 0;
}

/* ---- statistics ---------------------------------------------------------- */

static void kind_stats_add(struct tmem_kind_stats *k,
			   const struct bucket_stats *b)
{
	k->puts += b->puts;
	k->gets += b->gets;
	k->hits += b->hits;
	k->flushes += b->flushes;
	k->flush_objects += b->flush_objects;
	k->flushed_pages += b->flushed_pages;
	k->stored_pages += b->stored_pages;
	k->zero_pages += b->zero_pages;
	k->same_pages += b->same_pages;
	k->raw_pages += b->raw_pages;
	k->compressed_bytes += b->compressed_bytes;
	k->evicted_pages += b->evicted_pages;
	k->reject_full += b->reject_full;
	k->reject_incompressible += b->reject_incompressible;
	k->reject_nomem += b->reject_nomem;
	k->image_pages += b->image_pages;
}

static void pool_stats_add(struct tmem_pool *p, struct tmem_stats *st)
{
	unsigned int i;

	for (i = 0; i < POOL_BUCKETS; i++) {
		pthread_mutex_lock(&p->bucket[i].lock);
		kind_stats_add(&st->kind[pool_kind(p)], &p->bucket[i].stats);
		pthread_mutex_unlock(&p->bucket[i].lock);
	}
}

/**
 * tmem_get_stats() - snapshot the counters
 * @s: store
 * @st: filled in; counters of different stripes are read one stripe at a
 *	time, so a snapshot taken under load is not atomic as a whole
 */
void tmem_get_stats(struct tmem_store *s, struct tmem_stats *st)
{
	struct zbud *z = &s->zbud;
	uint32_t i;
	int k;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->pools_lock);
	for (k = 0; k < TMEM_NR_KINDS; k++)
		kind_stats_add(&st->kind[k], &s->retired[k]);
	for (i = 0; i < s->cfg.max_pools; i++) {
		struct tmem_pool *p = atomic_load(&s->pools[i]);

		if (!p)
			continue;
		if (atomic_load(&p->alive))
			st->pools++;
		pool_stats_add(p, st);
	}
	pthread_mutex_unlock(&s->pools_lock);

	pthread_mutex_lock(&z->lock);
	for (k = 0; k < TMEM_NR_KINDS; k++) {
		st->kind[k].frames = z->data_frames[k];
		st->kind[k].meta_frames = z->slab_frames[k];
	}
	st->kind[TMEM_EPHEMERAL].evicted_frames = s->evicted_frames;
	st->limit_bytes = s->limit;
	st->used_bytes = store_used_bytes_locked(s);
	st->meta_bytes = s->fixed_bytes +
			 z->arenas_mapped * ZBUD_ARENA_DESC_BYTES +
			 (z->slab_frames[0] + z->slab_frames[1]) *
			 TMEM_PAGE_SIZE;
	st->arenas = z->arenas_mapped;
	if (s->zs) {
		st->compact_moved = s->zs->moved;
		st->compact_frames = s->zs->compacted;
	}
	pthread_mutex_unlock(&z->lock);
	st->persistent_capacity = tmem_persistent_capacity(s);
	if (s->image.img) {
		store_image_stats(s, &st->image);
		st->image.pages_in_image = st->kind[TMEM_PERSISTENT].image_pages;
	}
}
