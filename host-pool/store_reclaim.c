// SPDX-License-Identifier: BSD-3-Clause
/*
 * store_reclaim.c - freeing memory: the one reclaim path (a frame from its
 * LRU to its owners), used to evict ephemeral frames and to write
 * persistent frames back to the swap image; the eviction of filled
 * ephemeral pages; the store's side of writeback (the background thread
 * and its policy are in writeback.c).
 *
 * Reclaim runs against the lock order (see store.c), from a frame to its
 * owners: it takes a frame off every list under zbud->lock
 * (zbud_reclaim_start_locked()), notes the buckets of its owners, drops
 * zbud->lock, then takes each bucket lock and re-reads the owner under
 * zbud->lock.  That is safe because (1) pools and their buckets are never
 * freed while the store lives, and (2) an entry is detached from its frame
 * under zbud->lock *before* it is freed, so an owner read under zbud->lock
 * is a live entry whose object and bucket are live too.
 *
 * A put copies its page into the buddy it was given after dropping
 * zbud->lock, under its bucket lock only, so that the copy does not
 * serialise puts.  The owner is recorded at allocation, so anyone who
 * reads a frame's bytes without holding the owner's bucket lock (writeback)
 * first takes and drops the bucket lock of every owner it found: any copy
 * into the frame has then finished.
 */
#include <string.h>

#include "lock.h"
#include "pageio.h"
#include "store_internal.h"
#include "swapimg.h"

static _Thread_local _Alignas(TMEM_PAGE_SIZE) uint8_t tls_slot[2][TMEM_PAGE_SIZE];
static _Thread_local _Alignas(TMEM_PAGE_SIZE)
	uint8_t tls_unit[ZS_SPAN_FRAMES_MAX][TMEM_PAGE_SIZE];

/* ---- reclaim ------------------------------------------------------------ */

/**
 * struct reclaim - one unit under reclaim (a zbud frame, a zspage span)
 * @unit: as the allocator names it
 * @objs: objects it has room for
 * @frames: frames it spans
 * @bucket: per object, the bucket of its owner when reclaim started, or
 *	    NULL for a free object (none is allocated in the unit after)
 */
struct reclaim {
	uint32_t unit;
	unsigned int objs, frames;
	struct tmem_bucket *bucket[ZS_SPAN_OBJS_MAX];
};

/**
 * struct reclaim_ops - what a reclaim does with its unit
 * @write: called with the unit's bytes stable (every copy into it has
 *	   finished) to save them; NULL when they are dropped (eviction).
 *	   An error aborts the reclaim: the unit goes back on its lists.
 * @owner: called for each allocated object in turn: with the entry just
 *	   detached from it, under its bucket lock @b; or with @e NULL when
 *	   the object lost its owner meanwhile (@b locked)
 * @done_locked: called under zbud->lock in the hold that frees the unit
 *		 (@ret 1), puts it back (@ret from @write) or finds no unit
 *		 (@ret 0, @r NULL)
 */
struct reclaim_ops {
	int (*write)(struct tmem_store *s, const struct reclaim *r, void *arg);
	void (*owner)(struct tmem_store *s, const struct reclaim *r,
		      struct tmem_bucket *b, struct tmem_entry *e,
		      unsigned int i, void *arg);
	void (*done_locked)(struct tmem_store *s, int ret,
			    const struct reclaim *r, void *arg);
};

/*
 * Take the coldest unit of @kind off every list and note the buckets of
 * its owners (see the top of this file for why they may be locked later).
 */
static bool reclaim_start(struct tmem_store *s, enum tmem_kind kind,
			  struct reclaim *r, const struct reclaim_ops *ops,
			  void *arg)
{
	const struct zalloc_ops *za = s->alloc;
	struct zbud *z = &s->zbud;
	unsigned int i;

	pthread_mutex_lock(&z->lock);
	r->unit = za->reclaim_start_locked(s->alloc_priv, kind);
	if (r->unit == ZBUD_NIL) {
		ops->done_locked(s, 0, NULL, arg);
		pthread_mutex_unlock(&z->lock);
		return false;
	}
	r->objs = za->unit_objs(s->alloc_priv, r->unit);
	r->frames = za->unit_frames(s->alloc_priv, r->unit);
	for (i = 0; i < r->objs; i++) {
		uint32_t owner = za->owner_locked(s->alloc_priv, r->unit, i);

		r->bucket[i] = owner == ZBUD_NO_OWNER ? NULL :
			       entry_of_ref(s, owner)->obj->bucket;
	}
	pthread_mutex_unlock(&z->lock);
	return true;
}

/*
 * Under reclaim no object can be allocated in the unit; wait out the
 * copies of puts that allocated before (they hold their bucket lock until
 * done), then its bytes no longer change.
 */
static void reclaim_quiesce(const struct reclaim *r)
{
	struct tmem_bucket *last = NULL;
	unsigned int i;

	for (i = 0; i < r->objs; i++)
		if (r->bucket[i] && r->bucket[i] != last) {
			last = r->bucket[i];
			pthread_mutex_lock(&last->lock);
			pthread_mutex_unlock(&last->lock);
		}
}

/* The caller holds the owner's bucket lock: take object @i's owner off. */
static struct tmem_entry *reclaim_detach_locked(struct tmem_store *s,
						const struct reclaim *r,
						unsigned int i)
{
	uint32_t owner;

	pthread_mutex_lock(&s->zbud.lock);
	owner = s->alloc->detach_locked(s->alloc_priv, r->unit, i);
	pthread_mutex_unlock(&s->zbud.lock);
	return entry_of_ref(s, owner);
}

static void reclaim_owners(struct tmem_store *s, const struct reclaim *r,
			   const struct reclaim_ops *ops, void *arg)
{
	unsigned int i;

	for (i = 0; i < r->objs; i++) {
		struct tmem_bucket *b = r->bucket[i];

		if (!b)
			continue;
		pthread_mutex_lock(&b->lock);
		ops->owner(s, r, b, reclaim_detach_locked(s, r, i), i, arg);
		pthread_mutex_unlock(&b->lock);
	}
}

/**
 * reclaim_unit() - the one reclaim sequence, for eviction and writeback
 * @s: store; the caller holds no lock
 * @kind: which LRU to take the coldest unit of
 * @ops: what to do with the unit and its owners
 * @arg: passed to @ops
 *
 * Takes a unit off every list, then (to save its bytes) cycles its owners'
 * bucket locks and writes it, detaches each owner under its bucket lock,
 * and frees the unit.
 *
 * Return: frames freed, 0 if @kind has none, or the error of @ops->write
 * (the unit stayed).
 */
static int reclaim_unit(struct tmem_store *s, enum tmem_kind kind,
			const struct reclaim_ops *ops, void *arg)
{
	struct zbud *z = &s->zbud;
	struct reclaim r;
	int ret;

	if (!reclaim_start(s, kind, &r, ops, arg))
		return 0;
	if (ops->write) {
		reclaim_quiesce(&r);
		ret = ops->write(s, &r, arg);
		if (ret) {
			pthread_mutex_lock(&z->lock);
			s->alloc->reclaim_abort_locked(s->alloc_priv, r.unit);
			ops->done_locked(s, ret, &r, arg);
			pthread_mutex_unlock(&z->lock);
			return ret;
		}
	}
	reclaim_owners(s, &r, ops, arg);
	pthread_mutex_lock(&z->lock);
	s->alloc->reclaim_finish_locked(s->alloc_priv, r.unit);
	ops->done_locked(s, 1, &r, arg);
	pthread_mutex_unlock(&z->lock);
	return (int)r.frames;
}

/* ---- eviction ----------------------------------------------------------- */

static void evict_owner(struct tmem_store *s, const struct reclaim *r,
			struct tmem_bucket *b, struct tmem_entry *e,
			unsigned int i, void *arg)
{
	struct tmem_object *obj;
	struct radix_alloc a;

	(void)r;
	(void)i;
	(void)arg;
	if (!e)
		return;
	a = store_node_allocator(s, pool_kind(b->pool));
	obj = e->obj;
	radix_delete(&obj->root, e->ri.index, &a);
	b->stats.evicted_pages++;
	store_entry_drop(s, b, e, true);
	store_object_free_if_empty(s, obj);
}

static void evict_done_locked(struct tmem_store *s, int ret,
			      const struct reclaim *r, void *arg)
{
	(void)arg;
	if (ret == 1)
		s->evicted_frames += r->frames;
}

static const struct reclaim_ops evict_ops = {
	.owner = evict_owner,
	.done_locked = evict_done_locked,
};

/**
 * store_evict_ephemeral_unit() - reclaim the least recently filled
 *				  ephemeral unit
 * @s: store; the caller holds no lock
 *
 * Gives frames freed before back to the OS first (zbud_clean()).
 *
 * Return: frames freed, 0 if there is no ephemeral unit.
 */
long store_evict_ephemeral_unit(struct tmem_store *s)
{
	zbud_clean(&s->zbud);
	return reclaim_unit(s, TMEM_EPHEMERAL, &evict_ops, NULL);
}

/* Drop the objects of one stripe that hold filled pages. */
static uint64_t evict_filled_in(struct tmem_store *s, struct tmem_bucket *b)
{
	uint64_t pages = 0;
	unsigned int c;

	pthread_mutex_lock(&b->lock);
	for (c = 0; c < BUCKET_CHAINS; c++) {
		struct tmem_object *obj;
		struct tmem_oid at;

		obj = store_object_after(s, b->chain[c], NULL);
		for (; obj; obj = store_object_after(s, b->chain[c], &at)) {
			at = obj->oid;
			if (obj->nr_filled)
				pages += store_object_drain(s, b, obj);
		}
	}
	b->stats.evicted_pages += pages;
	pthread_mutex_unlock(&b->lock);
	return pages;
}

/*
 * With no ephemeral frame left, only filled ephemeral pages hold memory
 * (their entries and index nodes).  They are rare enough to be found by a
 * sweep: stripe by stripe over the ephemeral pools, resuming where the last
 * sweep stopped.
 */
static long evict_filled(struct tmem_store *s)
{
	unsigned int stripes = s->cfg.max_pools * POOL_BUCKETS, n;

	for (n = 0; n < stripes; n++) {
		unsigned int at = atomic_fetch_add(&s->fill_cursor, 1) % stripes;
		struct tmem_pool *p = atomic_load_explicit(
			&s->pools[at / POOL_BUCKETS], memory_order_acquire);
		uint64_t pages;

		if (!p || !atomic_load_explicit(&p->alive, memory_order_acquire) ||
		    pool_kind(p) != TMEM_EPHEMERAL)
			continue;
		pages = evict_filled_in(s, &p->bucket[at % POOL_BUCKETS]);
		if (pages)
			return (long)pages;
	}
	return 0;
}

/**
 * store_evict_ephemeral() - free some ephemeral memory
 * @s: store; the caller holds no lock
 *
 * Return: > 0 if something was (or may have been) freed, 0 if the store
 * holds no ephemeral page.
 */
long store_evict_ephemeral(struct tmem_store *s)
{
	long n = store_evict_ephemeral_unit(s);

	return n ? n : evict_filled(s);
}

/* ---- compaction --------------------------------------------------------- */

/*
 * Compaction (zspage.c) moves a page's object under its owner's bucket
 * lock, taken in the store's lock order: it notes the bucket under
 * zbud->lock, as reclaim does, and re-checks the owner once both are held.
 */
static pthread_mutex_t *compact_owner_lock(void *arg, uint32_t owner)
{
	return &entry_of_ref(arg, owner)->obj->bucket->lock;
}

static void compact_moved(void *arg, uint32_t owner, struct zbud_handle to)
{
	struct tmem_entry *e = entry_of_ref(arg, owner);

	e->where = to.frame;
	e->buddy = to.buddy;
}

static const struct zs_mover compact_mover = {
	.owner_lock_locked = compact_owner_lock,
	.moved_locked = compact_moved,
};

/*
 * Worth moving pages for: the kind's spans have free room of at least
 * 1/16 of their frames, and of two of the largest spans.
 */
static bool compact_worth_locked(struct tmem_store *s, enum tmem_kind kind)
{
	uint64_t free = zs_free_bytes_locked(s->zs, kind);
	uint64_t least = s->zs->frames[kind] * TMEM_PAGE_SIZE / 16;

	if (least < 2 * ZS_SPAN_FRAMES_MAX * TMEM_PAGE_SIZE)
		least = 2 * ZS_SPAN_FRAMES_MAX * TMEM_PAGE_SIZE;
	return free >= least;
}

/**
 * store_compact() - free the frames that flushes left sparse
 * @s: store; the caller holds no lock
 * @force: compact even where little would be gained
 *
 * Keeps every page (unlike eviction), so a full store tries it first.
 * Nothing to do for an allocator that does not fragment (zbud).
 *
 * Return: frames freed.
 */
uint64_t store_compact(struct tmem_store *s, bool force)
{
	uint64_t freed = 0;
	int k;

	if (!s->alloc->compact)
		return 0;
	for (k = 0; k < TMEM_NR_KINDS; k++) {
		bool worth;

		pthread_mutex_lock(&s->zbud.lock);
		worth = force || compact_worth_locked(s, (enum tmem_kind)k);
		pthread_mutex_unlock(&s->zbud.lock);
		if (worth)
			freed += s->alloc->compact(s->alloc_priv,
						   (enum tmem_kind)k,
						   &compact_mover, s);
	}
	if (freed)
		zbud_clean(&s->zbud);
	return freed;
}

/**
 * tmem_compact() - move pages out of sparse spans and free them
 * @s: store
 *
 * The store compacts by itself when it is full; this is for callers that
 * want the memory back now (and for measuring).
 *
 * Return: frames freed (always 0 with the zbud allocator).
 */
uint64_t tmem_compact(struct tmem_store *s)
{
	return s ? store_compact(s, true) : 0;
}

/* ---- writeback ---------------------------------------------------------- */

/*
 * Writeback moves a whole persistent unit to the swap image: each of its
 * frames is written as it is (its pages still compressed) to a free slot,
 * the slots chained in the unit's order, and then each owner entry is
 * switched to (slot, offset) under its bucket lock before the unit is
 * freed.  A unit of n frames takes n slots and frees n pages of host RAM,
 * whatever its pages' sizes.  A page of a span may straddle two of its
 * frames, so in the image it may straddle a slot and its next one.
 *
 * Ordering with ops on the same keys: while the unit is being written its
 * entries still point at it, and gets read it from RAM.  A flush, exclusive
 * get or replace meanwhile detaches its entry from the unit under
 * zbud->lock (freeing an object of a unit under reclaim clears only its
 * owner), so the switch finds no owner and gives that page's place in the
 * slots back instead: no stale read, no lost update.  The slots' checksums
 * and page counts are recorded before any entry points at them.  A get of
 * a written-back page reads its slots under its bucket lock, so they cannot
 * be freed (and reused) during the read.  No store lock is held during the
 * writes.
 *
 * Written-back pages are not brought back into RAM on a get: frontswap
 * loads are followed by an invalidate of the swap slot, so the copy would
 * be freed right away.
 */

/**
 * store_image_put() - give a written-back page's place in the image back
 * @s: store with an image
 * @e: the entry (ENTRY_IMAGE or ENTRY_IMAGE_RAW), being dropped under its
 *     bucket lock
 */
void store_image_put(struct tmem_store *s, const struct tmem_entry *e)
{
	swapimg_page_put(s->image.img, e->where, image_straddles(s, e));
}

/**
 * store_image_read() - read a written-back page
 * @s: store with an image
 * @e: the entry (ENTRY_IMAGE or ENTRY_IMAGE_RAW); its bucket is locked,
 *     so that its slots cannot be freed during the read
 * @cbuf: where the compressed bytes go (ENTRY_IMAGE)
 * @iov: where a raw page goes (ENTRY_IMAGE_RAW)
 * @iovcnt: pieces of @iov
 *
 * Return: 0, or -TMEM_E_IO (read failed or checksum mismatch).
 */
int store_image_read(struct tmem_store *s, const struct tmem_entry *e,
		     uint8_t *cbuf, const struct iovec *iov, int iovcnt)
{
	struct tmem_image *img = s->image.img;
	unsigned int off, first;

	if (swapimg_read(img, e->where, tls_slot[0]))
		return -TMEM_E_IO;
	if (e->state == ENTRY_IMAGE_RAW) {
		pageio_scatter(iov, iovcnt, tls_slot[0]);
		return 0;
	}
	off = image_offset(e) + s->alloc->obj_hdr(e->size);
	first = off + e->size > TMEM_PAGE_SIZE ? TMEM_PAGE_SIZE - off :
						 e->size;
	memcpy(cbuf, tls_slot[0] + off, first);
	if (first == e->size)
		return 0;
	if (swapimg_read(img, swapimg_next(img, e->where), tls_slot[1]))
		return -TMEM_E_IO;
	memcpy(cbuf + first, tls_slot[1], e->size - first);
	return 0;
}

/**
 * struct wb_unit - one writeback in progress
 * @slot: the slots the unit's frames go to, in order
 * @nr_slots: slots taken
 * @counted: of them, allocated free slots counted in
 *	     store->slots_in_flight
 * @moved: entries switched to the slots
 */
struct wb_unit {
	uint64_t slot[ZS_SPAN_FRAMES_MAX];
	unsigned int nr_slots, counted, moved;
};

/* Pages whose bytes lie in frame @k of the unit: its allocated objects'. */
static unsigned int wb_frame_pages(struct tmem_store *s,
				   const struct reclaim *r, unsigned int k)
{
	unsigned int i, off, len, n = 0;
	unsigned int lo = k * TMEM_PAGE_SIZE, hi = lo + TMEM_PAGE_SIZE;

	for (i = 0; i < r->objs; i++) {
		if (!r->bucket[i])
			continue;
		s->alloc->unit_extent(s->alloc_priv, r->unit, i, &off, &len);
		n += off < hi && off + len > lo;
	}
	return n;
}

/*
 * The unit's bytes are copied out under zbud->lock, and written and
 * checksummed from the copy: a free in a unit under reclaim still marks
 * its object's header (zspage.c), and the checksum must be of what went
 * to the disk.
 */
static void wb_snapshot(struct tmem_store *s, const struct reclaim *r)
{
	unsigned int k;

	pthread_mutex_lock(&s->zbud.lock);
	for (k = 0; k < r->frames; k++)
		memcpy(tls_unit[k], zbud_frame_addr(&s->zbud,
			s->alloc->unit_frame(s->alloc_priv, r->unit, k)),
		       TMEM_PAGE_SIZE);
	pthread_mutex_unlock(&s->zbud.lock);
}

static int wb_write(struct tmem_store *s, const struct reclaim *r, void *arg)
{
	struct wb_unit *w = arg;
	unsigned int k;
	int ret;

	wb_snapshot(s, r);
	for (k = 0; k < r->frames; k++) {
		ret = swapimg_write(s->image.img, w->slot[k], tls_unit[k]);
		if (ret)
			return ret;
	}
	for (k = 0; k < r->frames; k++)
		swapimg_slot_commit(s->image.img, w->slot[k],
				    swapimg_checksum(tls_unit[k]),
				    wb_frame_pages(s, r, k),
				    k + 1 < r->frames ? w->slot[k + 1] :
							SWAPIMG_NO_SLOT);
	return 0;
}

/* Switch an owner to its place in the slots, or free a place nobody owns. */
static void wb_owner(struct tmem_store *s, const struct reclaim *r,
		     struct tmem_bucket *b, struct tmem_entry *e,
		     unsigned int i, void *arg)
{
	struct wb_unit *w = arg;
	unsigned int off, len;

	s->alloc->unit_extent(s->alloc_priv, r->unit, i, &off, &len);
	if (!e) {
		swapimg_page_put(s->image.img, w->slot[off / TMEM_PAGE_SIZE],
				 off % TMEM_PAGE_SIZE + len > TMEM_PAGE_SIZE);
		return;
	}
	store_entry_account(b, e, -1);
	e->state = e->state == ENTRY_RAW ? ENTRY_IMAGE_RAW : ENTRY_IMAGE;
	e->where = (uint32_t)w->slot[off / TMEM_PAGE_SIZE];
	e->buddy = (uint8_t)((off % TMEM_PAGE_SIZE) >> IMAGE_OFFSET_SHIFT);
	store_entry_account(b, e, 1);
	store_mig_note_moved(b, e);
	w->moved++;
}

/*
 * In the hold of zbud->lock that frees the unit, or that gives the slots
 * back: slots counted in flight stop being so (see struct tmem_store).
 * Slots the unit did not need (it had fewer frames than taken, or there
 * was none) go back too.
 */
static void wb_done_locked(struct tmem_store *s, int ret,
			   const struct reclaim *r, void *arg)
{
	struct wb_unit *w = arg;
	unsigned int k, used = ret == 1 ? r->frames : 0;

	for (k = used; k < w->nr_slots; k++)
		swapimg_slot_commit(s->image.img, w->slot[k], 0, 0,
				    SWAPIMG_NO_SLOT);
	s->slots_in_flight -= w->counted;
}

static const struct reclaim_ops wb_ops = {
	.write = wb_write,
	.owner = wb_owner,
	.done_locked = wb_done_locked,
};

/* Caller holds image->lock: a unit in flight is done (or was never found). */
static void wb_in_flight_done_locked(struct store_image *image)
{
	image->in_flight--;
	pthread_cond_broadcast(&image->idle);
}

static void wb_account(struct store_image *image, int ret,
		       unsigned int pages)
{
	pthread_mutex_lock(&image->lock);
	wb_in_flight_done_locked(image);
	if (ret < 0) {
		image->write_errors++;
		image->failing = true;
	} else if (ret > 0) {
		image->frames_written += (unsigned int)ret;
		image->pages_written += pages;
		image->failing = false;
	}
	pthread_mutex_unlock(&image->lock);
}

/*
 * Slots for the largest unit.  Allocated free slots that the capacity
 * counts are taken in the same hold of zbud->lock that counts them in
 * flight (see struct tmem_store); the rest are allocated, which they never
 * counted.
 */
static bool wb_slots_take(struct tmem_store *s, struct wb_unit *w)
{
	unsigned int want = s->alloc->span_frames_max;

	pthread_mutex_lock(&s->zbud.lock);
	for (w->nr_slots = 0; w->nr_slots < want; w->nr_slots++) {
		w->slot[w->nr_slots] = swapimg_slot_take_backed(s->image.img);
		if (w->slot[w->nr_slots] == SWAPIMG_NO_SLOT)
			break;
	}
	w->counted = w->nr_slots;
	s->slots_in_flight += w->counted;
	pthread_mutex_unlock(&s->zbud.lock);
	for (; w->nr_slots < want; w->nr_slots++) {
		w->slot[w->nr_slots] = swapimg_slot_get(s->image.img);
		if (w->slot[w->nr_slots] == SWAPIMG_NO_SLOT)
			break;
	}
	if (w->nr_slots == want)
		return true;
	pthread_mutex_lock(&s->zbud.lock);
	wb_done_locked(s, 0, NULL, w);
	pthread_mutex_unlock(&s->zbud.lock);
	return false;
}

/**
 * store_writeback_unit() - write the coldest persistent unit to the image
 * @s: store with an image
 *
 * Caller holds no lock.
 *
 * Return: WB_FREED, WB_NONE when the store has no persistent unit to
 * write (but see store_writeback_wait_idle()), WB_NO_SLOT, or WB_IO_ERROR
 * (the errno went to the image's report callback).
 */
enum wb_result store_writeback_unit(struct tmem_store *s)
{
	struct store_image *image = &s->image;
	struct wb_unit w = { .moved = 0 };
	int ret;

	if (!wb_slots_take(s, &w))
		return WB_NO_SLOT;
	pthread_mutex_lock(&image->lock);
	image->in_flight++;
	pthread_mutex_unlock(&image->lock);
	ret = reclaim_unit(s, TMEM_PERSISTENT, &wb_ops, &w);
	wb_account(image, ret, w.moved);
	if (ret < 0)
		return WB_IO_ERROR;
	return ret ? WB_FREED : WB_NONE;
}

/**
 * store_writeback_wait_idle() - wait for the frames being written back
 * @s: store with an image; the caller holds no lock
 *
 * For a put that found no frame to write because the thread holds it.
 *
 * Return: true if it waited (the caller should try again).
 */
bool store_writeback_wait_idle(struct tmem_store *s)
{
	struct store_image *image = &s->image;
	bool waited = false;

	pthread_mutex_lock(&image->lock);
	while (image->in_flight) {
		pthread_cond_wait(&image->idle, &image->lock);
		waited = true;
	}
	pthread_mutex_unlock(&image->lock);
	return waited;
}

/**
 * store_writeback_failing() - whether the last writeback failed
 * @s: store with an image; the caller holds no lock
 */
bool store_writeback_failing(struct tmem_store *s)
{
	bool failing;

	pthread_mutex_lock(&s->image.lock);
	failing = s->image.failing;
	pthread_mutex_unlock(&s->image.lock);
	return failing;
}

/**
 * tmem_store_attach_image() - write persistent frames back to an image
 * @s: store, with no pool created yet
 * @img: image from tmem_image_open(), attached to no other store; it must
 *	 outlive @s
 *
 * Starts the background writeback thread.  From now on a persistent put
 * that finds the store full moves a frame to the image instead of failing,
 * and tmem_persistent_capacity() counts the image's allocated free slots.
 *
 * Return: 0, -TMEM_E_INVAL (NULL, pools exist, image in use, watermarks
 * invalid), -TMEM_E_NOMEM (no thread).
 */
int tmem_store_attach_image(struct tmem_store *s, struct tmem_image *img)
{
	struct store_image *image;
	uint64_t limit;

	if (!s || !img || s->image.img || s->pools_allocated)
		return -TMEM_E_INVAL;
	image = &s->image;
	pthread_mutex_lock(&s->zbud.lock);
	limit = s->limit;
	pthread_mutex_unlock(&s->zbud.lock);
	if (swapimg_attach(img, s, limit / TMEM_PAGE_SIZE))
		return -TMEM_E_INVAL;
	tmem_mutex_init(&image->lock);
	pthread_cond_init(&image->idle, NULL);
	image->img = img;
	image->wb = writeback_start(s, img, limit / 100 * s->cfg.wb_high_pct,
				    limit / 100 * s->cfg.wb_low_pct);
	if (!image->wb) {
		image->img = NULL;
		pthread_cond_destroy(&image->idle);
		pthread_mutex_destroy(&image->lock);
		swapimg_detach(img);
		return -TMEM_E_NOMEM;
	}
	swapimg_reserve(img);
	return 0;
}

/**
 * store_image_detach() - stop writeback and forget the image's slots
 * @s: store being destroyed (no image: nothing to do)
 */
void store_image_detach(struct tmem_store *s)
{
	struct store_image *image = &s->image;

	if (!image->img)
		return;
	writeback_stop(image->wb);
	swapimg_detach(image->img);
	pthread_cond_destroy(&image->idle);
	pthread_mutex_destroy(&image->lock);
	image->img = NULL;
	image->wb = NULL;
}

/**
 * store_image_stats() - fill the image part of a stats snapshot
 * @s: store with an image
 * @st: where to put them (pages_in_image is the caller's)
 */
void store_image_stats(struct tmem_store *s, struct tmem_image_stats *st)
{
	struct store_image *image = &s->image;

	swapimg_stats(image->img, st);
	pthread_mutex_lock(&image->lock);
	st->frames_written = image->frames_written;
	st->pages_written = image->pages_written;
	st->write_errors = image->write_errors;
	st->overdraft_puts = image->overdraft_puts;
	pthread_mutex_unlock(&image->lock);
	writeback_stats(image->wb, st);
}

/* ---- shrinking to a lowered limit --------------------------------------- */

/*
 * Free one unit's worth towards a lowered limit, cheapest loss first:
 * compaction keeps every page, eviction drops only ephemeral ones, and
 * writeback keeps persistent pages in the image.  Before giving up,
 * compaction even where it gains little: the guest would otherwise be
 * asked to give back pages for the sake of room left in sparse spans.
 * False when none of them can free anything.
 */
static bool shrink_one(struct tmem_store *s)
{
	enum wb_result wb;

	if (store_compact(s, false) > 0)
		return true;
	if (store_evict_ephemeral(s) > 0)
		return true;
	if (s->image.img) {
		wb = store_writeback_unit(s);
		if (wb == WB_FREED ||
		    (wb == WB_NONE && store_writeback_wait_idle(s)))
			return true;
	}
	return store_compact(s, true) > 0;
}

static bool shrink_within(struct tmem_store *s)
{
	bool within;

	pthread_mutex_lock(&s->zbud.lock);
	within = store_used_bytes_locked(s) <= s->limit;
	pthread_mutex_unlock(&s->zbud.lock);
	return within;
}

/**
 * tmem_shrink() - free memory down to a lowered limit
 * @s: store
 * @max_units: most units (frames, spans, sweeps) to reclaim in this call,
 *	       0 for no bound
 * @st: if not NULL, where the shrink stands when the call returns
 *
 * Compacts, evicts ephemeral pages, then writes persistent units back to
 * the image if there is one, until the store uses no more than its limit;
 * frames freed go back to the OS as it goes, and the dirty ones kept for
 * the next puts too once it stops.  Persistent pages are never dropped:
 * what the store cannot shed itself is counted in @st->excess_pages for
 * the caller to have the guest flush.  May block on image writes: call it
 * from a thread that can wait.  Puts and gets may run meanwhile.
 *
 * Return: 0 when the store is within its limit, 1 when @max_units ran out
 * first (call again), -TMEM_E_FULL when nothing more can be freed without
 * flushing persistent pages (@st->excess_pages of them), -TMEM_E_INVAL.
 */
int tmem_shrink(struct tmem_store *s, uint64_t max_units,
		struct tmem_resize *st)
{
	struct tmem_resize local;
	uint64_t n;
	int ret;

	if (!s)
		return -TMEM_E_INVAL;
	for (n = 0;; n++) {
		if (shrink_within(s)) {
			ret = 0;
			break;
		}
		if (max_units && n == max_units) {
			ret = 1;
			break;
		}
		if (!shrink_one(s)) {
			ret = -TMEM_E_FULL;
			break;
		}
	}
	zbud_drain_dirty(&s->zbud);
	store_resize_status(s, st ? st : &local, ret == -TMEM_E_FULL);
	/* flushes meanwhile may have done the rest */
	if (ret == -TMEM_E_FULL && (st ? st : &local)->done)
		ret = 0;
	return ret;
}
