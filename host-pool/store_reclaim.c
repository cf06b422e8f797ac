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

static _Thread_local _Alignas(TMEM_PAGE_SIZE) uint8_t tls_slot[TMEM_PAGE_SIZE];

/* ---- reclaim ------------------------------------------------------------ */

/**
 * struct reclaim_ops - what a reclaim does with its frame
 * @write: called with the frame's bytes stable (every copy into it has
 *	   finished) to save them; NULL when they are dropped (eviction).
 *	   An error aborts the reclaim: the frame goes back on its lists.
 * @owner: called for each buddy in turn: with the entry just detached
 *	   from it, under its bucket lock @b; or with @e NULL when the buddy
 *	   has no owner any more (@b locked, or NULL if none was noted)
 * @done_locked: called under zbud->lock in the hold that frees the frame
 *		 (@ret 1), puts it back (@ret from @write) or finds no frame
 *		 (@ret 0)
 */
struct reclaim_ops {
	int (*write)(struct tmem_store *s, const uint8_t *frame, void *arg);
	void (*owner)(struct tmem_store *s, struct tmem_bucket *b,
		      struct tmem_entry *e, unsigned int buddy, void *arg);
	void (*done_locked)(struct tmem_store *s, int ret, void *arg);
};

/*
 * Take the coldest frame of @kind off every list and note the buckets of
 * its owners (see the top of this file for why they may be locked later).
 */
static uint32_t reclaim_start(struct tmem_store *s, enum tmem_kind kind,
			      struct tmem_bucket *owner_bucket[2],
			      const struct reclaim_ops *ops, void *arg)
{
	struct zbud *z = &s->zbud;
	unsigned int i;
	uint32_t fn;

	owner_bucket[0] = owner_bucket[1] = NULL;
	pthread_mutex_lock(&z->lock);
	fn = zbud_reclaim_start_locked(z, kind);
	for (i = 0; fn != ZBUD_NIL && i < 2; i++)
		if (z->desc[fn].owner[i] != ZBUD_NO_OWNER)
			owner_bucket[i] = entry_of_ref(s,
				z->desc[fn].owner[i])->obj->bucket;
	if (fn == ZBUD_NIL)
		ops->done_locked(s, 0, arg);
	pthread_mutex_unlock(&z->lock);
	return fn;
}

/*
 * Under reclaim no buddy can be allocated in the frame; wait out the
 * copies of puts that allocated before (they hold their bucket lock until
 * done), then its bytes no longer change.
 */
static void reclaim_quiesce(struct tmem_bucket *owner_bucket[2])
{
	unsigned int i;

	for (i = 0; i < 2; i++)
		if (owner_bucket[i]) {
			pthread_mutex_lock(&owner_bucket[i]->lock);
			pthread_mutex_unlock(&owner_bucket[i]->lock);
		}
}

/* The caller holds the owner's bucket lock: take @buddy's owner off @fn. */
static struct tmem_entry *reclaim_detach_locked(struct tmem_store *s,
						uint32_t fn,
						unsigned int buddy)
{
	struct tmem_entry *e;

	pthread_mutex_lock(&s->zbud.lock);
	e = entry_of_ref(s, s->zbud.desc[fn].owner[buddy]);
	s->zbud.desc[fn].owner[buddy] = ZBUD_NO_OWNER;
	pthread_mutex_unlock(&s->zbud.lock);
	return e;
}

static void reclaim_owners(struct tmem_store *s, uint32_t fn,
			   struct tmem_bucket *owner_bucket[2],
			   const struct reclaim_ops *ops, void *arg)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		struct tmem_bucket *b = owner_bucket[i];

		if (!b) {
			ops->owner(s, NULL, NULL, i, arg);
			continue;
		}
		pthread_mutex_lock(&b->lock);
		ops->owner(s, b, reclaim_detach_locked(s, fn, i), i, arg);
		pthread_mutex_unlock(&b->lock);
	}
}

/**
 * reclaim_frame() - the one reclaim sequence, for eviction and writeback
 * @s: store; the caller holds no lock
 * @kind: which LRU to take the coldest frame of
 * @ops: what to do with the frame and its owners
 * @arg: passed to @ops
 *
 * Takes a frame off every list, then (to save its bytes) cycles its
 * owners' bucket locks and writes it, detaches each owner under its bucket
 * lock, and frees the frame.
 *
 * Return: 1 if a frame was freed, 0 if @kind has none, or the error of
 * @ops->write (the frame stayed).
 */
static int reclaim_frame(struct tmem_store *s, enum tmem_kind kind,
			 const struct reclaim_ops *ops, void *arg)
{
	struct tmem_bucket *owner_bucket[2];
	struct zbud *z = &s->zbud;
	uint32_t fn;
	int ret;

	fn = reclaim_start(s, kind, owner_bucket, ops, arg);
	if (fn == ZBUD_NIL)
		return 0;
	if (ops->write) {
		reclaim_quiesce(owner_bucket);
		ret = ops->write(s, zbud_frame_addr(z, fn), arg);
		if (ret) {
			pthread_mutex_lock(&z->lock);
			zbud_reclaim_abort_locked(z, fn);
			ops->done_locked(s, ret, arg);
			pthread_mutex_unlock(&z->lock);
			return ret;
		}
	}
	reclaim_owners(s, fn, owner_bucket, ops, arg);
	pthread_mutex_lock(&z->lock);
	zbud_reclaim_finish_locked(z, fn);
	ops->done_locked(s, 1, arg);
	pthread_mutex_unlock(&z->lock);
	return 1;
}

/* ---- eviction ----------------------------------------------------------- */

static void evict_owner(struct tmem_store *s, struct tmem_bucket *b,
			struct tmem_entry *e, unsigned int buddy, void *arg)
{
	struct tmem_object *obj;
	struct radix_alloc a;

	(void)buddy;
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

static void evict_done_locked(struct tmem_store *s, int ret, void *arg)
{
	(void)arg;
	s->evicted_frames += ret == 1;
}

static const struct reclaim_ops evict_ops = {
	.owner = evict_owner,
	.done_locked = evict_done_locked,
};

/**
 * store_evict_ephemeral_frame() - reclaim the least recently filled
 *				   ephemeral frame
 * @s: store; the caller holds no lock
 *
 * Gives frames freed before back to the OS first (zbud_clean()).
 *
 * Return: 1 if a frame was freed, 0 if there is no ephemeral frame.
 */
long store_evict_ephemeral_frame(struct tmem_store *s)
{
	zbud_clean(&s->zbud);
	return reclaim_frame(s, TMEM_EPHEMERAL, &evict_ops, NULL);
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
	long n = store_evict_ephemeral_frame(s);

	return n ? n : evict_filled(s);
}

/* ---- writeback ---------------------------------------------------------- */

/*
 * Writeback moves a whole persistent frame to the swap image: it is
 * written as it is (both buddies, still compressed) to a free slot, and
 * then each owner entry is switched to (slot, buddy) under its bucket lock
 * before the frame is freed.  Reclaiming one frame frees exactly one page
 * of host RAM.
 *
 * Ordering with ops on the same keys: while the frame is being written its
 * entries still point at it, and gets read it from RAM.  A flush, exclusive
 * get or replace meanwhile detaches its entry from the frame under
 * zbud->lock (zbud_free_locked() on a frame under reclaim clears only the
 * owner), so the switch finds no owner and frees that half of the slot
 * instead: no stale read, no lost update.  The slot's checksum is recorded
 * before any entry points at the slot.  A get of a written-back page reads
 * the slot under its bucket lock, so that slot half cannot be freed (and
 * the slot reused) during the read.  No store lock is held during the
 * write.
 *
 * Written-back pages are not brought back into RAM on a get: frontswap
 * loads are followed by an invalidate of the swap slot, so the copy would
 * be freed right away.
 */

/* Where a written-back buddy of @size bytes starts in its slot. */
static unsigned int image_buddy_offset(unsigned int buddy, unsigned int size)
{
	return buddy == ZBUD_FIRST ? 0 :
	       TMEM_PAGE_SIZE - (zbud_chunks(size) << ZBUD_CHUNK_SHIFT);
}

/**
 * store_image_read() - read a written-back page
 * @s: store with an image
 * @e: the entry (ENTRY_IMAGE or ENTRY_IMAGE_RAW); its bucket is locked,
 *     so that its half of the slot cannot be freed during the read
 * @cbuf: where the compressed bytes go (ENTRY_IMAGE)
 * @iov: where a raw page goes (ENTRY_IMAGE_RAW)
 * @iovcnt: pieces of @iov
 *
 * Return: 0, or -TMEM_E_IO (read failed or checksum mismatch).
 */
int store_image_read(struct tmem_store *s, const struct tmem_entry *e,
		     uint8_t *cbuf, const struct iovec *iov, int iovcnt)
{
	if (swapimg_read(s->image.img, e->where, tls_slot))
		return -TMEM_E_IO;
	if (e->state == ENTRY_IMAGE_RAW)
		pageio_scatter(iov, iovcnt, tls_slot);
	else
		memcpy(cbuf, tls_slot + image_buddy_offset(e->buddy, e->size),
		       e->size);
	return 0;
}

/**
 * struct wb_frame - one writeback in progress
 * @slot: the slot the frame goes to
 * @counted: @slot was an allocated free slot, counted in
 *	     store->slots_in_flight
 * @moved: entries switched to the slot
 */
struct wb_frame {
	uint64_t slot;
	bool counted;
	unsigned int moved;
};

static int wb_write(struct tmem_store *s, const uint8_t *frame, void *arg)
{
	struct wb_frame *w = arg;
	int ret = swapimg_write(s->image.img, w->slot, frame);

	if (!ret)
		swapimg_slot_commit(s->image.img, w->slot,
				    swapimg_checksum(frame), 3);
	return ret;
}

/* Switch an owner to its half of the slot, or free a half nobody owns. */
static void wb_owner(struct tmem_store *s, struct tmem_bucket *b,
		     struct tmem_entry *e, unsigned int buddy, void *arg)
{
	struct wb_frame *w = arg;

	if (!e) {
		swapimg_buddy_put(s->image.img, w->slot, buddy);
		return;
	}
	store_entry_account(b, e, -1);
	e->state = e->state == ENTRY_RAW ? ENTRY_IMAGE_RAW : ENTRY_IMAGE;
	e->where = (uint32_t)w->slot;
	store_entry_account(b, e, 1);
	w->moved++;
}

/*
 * In the hold of zbud->lock that frees the frame, or that gives the slot
 * back: a slot counted in flight stops being so (see struct tmem_store).
 */
static void wb_done_locked(struct tmem_store *s, int ret, void *arg)
{
	struct wb_frame *w = arg;

	if (ret != 1)
		swapimg_slot_commit(s->image.img, w->slot, 0, 0);
	s->slots_in_flight -= w->counted;
}

static const struct reclaim_ops wb_ops = {
	.write = wb_write,
	.owner = wb_owner,
	.done_locked = wb_done_locked,
};

/* Caller holds image->lock: a frame in flight is done (or was never found). */
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
		image->frames_written++;
		image->pages_written += pages;
		image->failing = false;
	}
	pthread_mutex_unlock(&image->lock);
}

/*
 * An allocated free slot that the capacity counts is taken in the same
 * hold of zbud->lock that counts it in flight (see struct tmem_store);
 * without one, a slot is allocated, which it never counted.
 */
static bool wb_slot_take(struct tmem_store *s, struct wb_frame *w)
{
	pthread_mutex_lock(&s->zbud.lock);
	w->slot = swapimg_slot_take_backed(s->image.img);
	w->counted = w->slot != SWAPIMG_NO_SLOT;
	s->slots_in_flight += w->counted;
	pthread_mutex_unlock(&s->zbud.lock);
	if (!w->counted)
		w->slot = swapimg_slot_get(s->image.img);
	return w->slot != SWAPIMG_NO_SLOT;
}

/**
 * store_writeback_frame() - write the coldest persistent frame to the image
 * @s: store with an image
 *
 * Caller holds no lock.
 *
 * Return: WB_FREED, WB_NONE when the store has no persistent frame to
 * write (but see store_writeback_wait_idle()), WB_NO_SLOT, or WB_IO_ERROR
 * (the errno went to the image's report callback).
 */
enum wb_result store_writeback_frame(struct tmem_store *s)
{
	struct store_image *image = &s->image;
	struct wb_frame w = { .moved = 0 };
	int ret;

	if (!wb_slot_take(s, &w))
		return WB_NO_SLOT;
	pthread_mutex_lock(&image->lock);
	image->in_flight++;
	pthread_mutex_unlock(&image->lock);
	ret = reclaim_frame(s, TMEM_PERSISTENT, &wb_ops, &w);
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
	limit = s->cfg.limit_bytes;
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
