// SPDX-License-Identifier: BSD-3-Clause
/*
 * writeback.c - moving persistent pageframes to the swap image.
 *
 * The unit is a whole zbud frame: the coldest persistent frame is taken off
 * every list (zbud_reclaim_start_locked()), written as it is (both buddies,
 * still compressed) to a free slot, and then each owner entry is switched
 * to (slot, buddy) under its bucket lock before the frame is freed.
 * Reclaiming one frame frees exactly one page of host RAM.
 *
 * Ordering with ops on the same keys: while the frame is being written its
 * entries still point at it, and gets read it from RAM.  A flush, exclusive
 * get or replace meanwhile detaches its entry from the frame under
 * zbud->lock (zbud_free_locked() on a frame under reclaim clears only the
 * owner), so the switch finds no owner and frees that half of the slot
 * instead: no stale read, no lost update.  The slot's checksum is recorded
 * before any entry points at the slot.  A get of a written-back page reads
 * the slot under its bucket lock, so that slot half cannot be freed (and
 * the slot reused) during the read.
 *
 * Lock order (see store.c): bucket->lock, zbud->lock, then img->lock;
 * wb->lock only guards the thread's state and nests inside nothing but
 * itself.  No store lock is held during I/O except a bucket lock for the
 * read of a written-back page.
 *
 * Policy: a background thread runs when the store uses wb_high_pct of its
 * limit and works until wb_low_pct: it evicts ephemeral frames first and
 * writes back persistent frames only when no ephemeral frame is left.  A
 * persistent put that finds the store full writes back a frame itself (or
 * waits for the thread's frame in flight).  After a failure the thread backs
 * off (10 ms doubling to 1 s) and credits stop counting image slots until a
 * writeback succeeds again.  Written-back pages are not brought back into
 * RAM on a get: frontswap loads are followed by an invalidate of the swap
 * slot, so the copy would be freed right away.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lock.h"
#include "pageio.h"
#include "store_internal.h"
#include "swapimg.h"

#define BACKOFF_MIN_MS	10u
#define BACKOFF_MAX_MS	1000u
#define POLL_MS		20u

static _Thread_local _Alignas(TMEM_PAGE_SIZE) uint8_t tls_slot[TMEM_PAGE_SIZE];

/* Switch one owner of frame @fn to the slot; returns 1 if it was there. */
static unsigned int move_owner(struct tmem_store *s, uint32_t fn,
			       unsigned int buddy, uint64_t slot,
			       struct tmem_bucket *b)
{
	struct tmem_entry *e;

	pthread_mutex_lock(&b->lock);
	e = store_detach_owner_locked(s, fn, buddy);
	if (e) {
		store_entry_account(b, e, -1);
		e->state = e->state == ENTRY_RAW ? ENTRY_IMAGE_RAW : ENTRY_IMAGE;
		e->where = (uint32_t)slot;
		store_entry_account(b, e, 1);
	}
	pthread_mutex_unlock(&b->lock);
	return e ? 1 : 0;
}

/*
 * Caller holds zbud->lock: a writeback freed its frame, or gives @slot
 * back (unless SWAPIMG_NO_SLOT); if the slot was @counted in flight, it
 * stops being so in the same hold.
 */
static void slot_done_locked(struct tmem_store *s, uint64_t slot,
			     bool counted)
{
	if (slot != SWAPIMG_NO_SLOT)
		swapimg_slot_commit(s->wb->img, slot, 0, 0);
	s->slots_in_flight -= counted;
}

/* Caller holds wb->lock: a frame in flight is done (or was never found). */
static void in_flight_done_locked(struct tmem_writeback *wb)
{
	wb->in_flight--;
	pthread_cond_broadcast(&wb->idle);
}

static void writeback_done(struct tmem_writeback *wb, int ret,
			   unsigned int pages)
{
	pthread_mutex_lock(&wb->lock);
	in_flight_done_locked(wb);
	if (ret) {
		wb->write_errors++;
		wb->failing = true;
	} else {
		wb->frames_written++;
		wb->pages_written += pages;
		wb->failing = false;
	}
	pthread_mutex_unlock(&wb->lock);
}

/**
 * writeback_frame() - write the coldest persistent frame to the image
 * @s: store with an image
 *
 * Caller holds no lock.
 *
 * Return: WB_FREED, WB_NONE when the store has no persistent frame to
 * write (but see writeback_wait_idle()), WB_NO_SLOT, or WB_IO_ERROR (the
 * errno went to the image's report callback).
 */
enum wb_result writeback_frame(struct tmem_store *s)
{
	struct tmem_bucket *owner_bucket[2];
	struct tmem_writeback *wb = s->wb;
	struct zbud *z = &s->zbud;
	unsigned int i, moved = 0;
	uint64_t slot;
	bool counted;
	uint32_t fn;
	int ret;

	/*
	 * An allocated free slot that the capacity counts is taken in the
	 * same hold of zbud->lock that counts it in flight (see struct
	 * tmem_store); without one, a slot is allocated, which it never
	 * counted.
	 */
	pthread_mutex_lock(&z->lock);
	slot = swapimg_slot_take_backed(wb->img);
	counted = slot != SWAPIMG_NO_SLOT;
	s->slots_in_flight += counted;
	pthread_mutex_unlock(&z->lock);
	if (!counted)
		slot = swapimg_slot_get(wb->img);
	if (slot == SWAPIMG_NO_SLOT)
		return WB_NO_SLOT;
	pthread_mutex_lock(&wb->lock);
	wb->in_flight++;
	pthread_mutex_unlock(&wb->lock);
	fn = store_reclaim_start(s, TMEM_PERSISTENT, owner_bucket);
	if (fn == ZBUD_NIL) {
		pthread_mutex_lock(&z->lock);
		slot_done_locked(s, slot, counted);
		pthread_mutex_unlock(&z->lock);
		pthread_mutex_lock(&wb->lock);
		in_flight_done_locked(wb);
		pthread_mutex_unlock(&wb->lock);
		return WB_NONE;
	}
	/*
	 * Under reclaim no buddy can be allocated in the frame; wait out the
	 * copies of puts that allocated before (they hold their bucket lock
	 * until done), then its bytes no longer change.
	 */
	for (i = 0; i < 2; i++)
		if (owner_bucket[i]) {
			pthread_mutex_lock(&owner_bucket[i]->lock);
			pthread_mutex_unlock(&owner_bucket[i]->lock);
		}
	ret = swapimg_write(wb->img, slot, zbud_frame_addr(z, fn));
	if (ret) {
		pthread_mutex_lock(&z->lock);
		zbud_reclaim_abort_locked(z, fn);
		slot_done_locked(s, slot, counted);
		pthread_mutex_unlock(&z->lock);
		writeback_done(wb, ret, 0);
		return WB_IO_ERROR;
	}
	swapimg_slot_commit(wb->img, slot,
			    swapimg_checksum(zbud_frame_addr(z, fn)), 3);
	for (i = 0; i < 2; i++) {
		unsigned int m = owner_bucket[i] ?
			move_owner(s, fn, i, slot, owner_bucket[i]) : 0;

		if (!m)
			swapimg_buddy_put(wb->img, slot, i);
		moved += m;
	}
	pthread_mutex_lock(&z->lock);
	zbud_reclaim_finish_locked(z, fn);
	slot_done_locked(s, SWAPIMG_NO_SLOT, counted);	/* frame freed */
	pthread_mutex_unlock(&z->lock);
	writeback_done(wb, 0, moved);
	return WB_FREED;
}

/**
 * writeback_wait_idle() - wait for frames in flight
 * @s: store with an image
 *
 * For a put that found no frame to write because the thread holds it.
 *
 * Return: true if it waited (the caller should try again).
 */
bool writeback_wait_idle(struct tmem_store *s)
{
	struct tmem_writeback *wb = s->wb;
	bool waited = false;

	pthread_mutex_lock(&wb->lock);
	while (wb->in_flight) {
		pthread_cond_wait(&wb->idle, &wb->lock);
		waited = true;
	}
	pthread_mutex_unlock(&wb->lock);
	return waited;
}

/**
 * writeback_kick() - wake the background thread (store above high mark)
 * @s: store with an image
 */
void writeback_kick(struct tmem_store *s)
{
	if (atomic_load_explicit(&s->wb->kicked, memory_order_relaxed) ||
	    atomic_exchange(&s->wb->kicked, true))
		return;
	pthread_mutex_lock(&s->wb->lock);
	pthread_cond_signal(&s->wb->kick);
	pthread_mutex_unlock(&s->wb->lock);
}

/**
 * image_page_read() - read a written-back page
 * @s: store with an image
 * @e: the entry (ENTRY_IMAGE or ENTRY_IMAGE_RAW); its bucket is locked
 * @cbuf: where the compressed bytes go (ENTRY_IMAGE)
 * @iov: where a raw page goes (ENTRY_IMAGE_RAW)
 * @iovcnt: pieces of @iov
 *
 * Return: 0, or -TMEM_E_IO (read failed or checksum mismatch).
 */
int image_page_read(struct tmem_store *s, const struct tmem_entry *e,
		    uint8_t *cbuf, const struct iovec *iov, int iovcnt)
{
	if (swapimg_read(s->wb->img, e->where, tls_slot))
		return -TMEM_E_IO;
	if (e->state == ENTRY_IMAGE_RAW)
		pageio_scatter(iov, iovcnt, tls_slot);
	else
		memcpy(cbuf, tls_slot + image_buddy_offset(e->buddy, e->size),
		       e->size);
	return 0;
}

/* ---- the background thread --------------------------------------------- */

static void deadline_in(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

/*
 * Evict or write back until the store is down to the low mark.  Returns
 * true when it stopped because the image is full or failing.
 */
static bool writeback_run(struct tmem_store *s)
{
	struct tmem_writeback *wb = s->wb;
	enum wb_result ret = WB_NONE;

	while (store_used_bytes(s) > wb->low_bytes) {
		pthread_mutex_lock(&wb->lock);
		if (wb->stop) {
			pthread_mutex_unlock(&wb->lock);
			break;
		}
		pthread_mutex_unlock(&wb->lock);
		zbud_clean(&s->zbud);
		if (store_evict_ephemeral_frame(s) > 0)
			continue;
		ret = writeback_frame(s);
		if (ret != WB_FREED)
			break;
	}
	return ret == WB_NO_SLOT || ret == WB_IO_ERROR;
}

static void *writeback_thread(void *arg)
{
	struct tmem_store *s = arg;
	struct tmem_writeback *wb = s->wb;
	struct timespec ts;

	pthread_mutex_lock(&wb->lock);
	while (!wb->stop) {
		unsigned int wait = wb->failing ? wb->backoff_ms : POLL_MS;
		bool failed = false;

		deadline_in(&ts, wait);
		pthread_cond_timedwait(&wb->kick, &wb->lock, &ts);
		atomic_store(&wb->kicked, false);
		if (wb->stop)
			break;
		pthread_mutex_unlock(&wb->lock);
		swapimg_trim(wb->img);
		if (store_used_bytes(s) >= wb->high_bytes) {
			pthread_mutex_lock(&wb->lock);
			wb->wakeups++;
			pthread_mutex_unlock(&wb->lock);
			failed = writeback_run(s);
		}
		pthread_mutex_lock(&wb->lock);
		if (failed)
			wb->backoff_ms = wb->backoff_ms >= BACKOFF_MAX_MS / 2 ?
					 BACKOFF_MAX_MS : wb->backoff_ms * 2;
		else
			wb->backoff_ms = BACKOFF_MIN_MS;
	}
	pthread_mutex_unlock(&wb->lock);
	return NULL;
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
	struct tmem_writeback *wb;
	pthread_condattr_t attr;

	if (!s || !img || s->wb || img->store || s->pools_allocated)
		return -TMEM_E_INVAL;
	wb = calloc(1, sizeof(*wb));
	if (!wb)
		return -TMEM_E_NOMEM;
	wb->img = img;
	wb->high_bytes = s->cfg.limit_bytes / 100 * s->cfg.wb_high_pct;
	wb->low_bytes = s->cfg.limit_bytes / 100 * s->cfg.wb_low_pct;
	wb->backoff_ms = BACKOFF_MIN_MS;
	tmem_mutex_init(&wb->lock);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&wb->kick, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&wb->idle, NULL);
	if (!img->reserve_slots) {
		uint64_t n = s->cfg.limit_bytes / TMEM_PAGE_SIZE;

		img->reserve_slots = n < img->nr_slots ? n : img->nr_slots;
	}
	s->wb = wb;
	img->store = s;
	if (pthread_create(&wb->thread, NULL, writeback_thread, s)) {
		s->wb = NULL;
		img->store = NULL;
		pthread_cond_destroy(&wb->kick);
		pthread_cond_destroy(&wb->idle);
		pthread_mutex_destroy(&wb->lock);
		free(wb);
		return -TMEM_E_NOMEM;
	}
	swapimg_reserve(img);
	return 0;
}

/**
 * writeback_stop() - stop the thread and forget the image's slots
 * @s: store being destroyed
 */
void writeback_stop(struct tmem_store *s)
{
	struct tmem_writeback *wb = s->wb;

	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	wb->stop = true;
	pthread_cond_signal(&wb->kick);
	pthread_mutex_unlock(&wb->lock);
	pthread_join(wb->thread, NULL);
	swapimg_reset(wb->img);
	wb->img->store = NULL;
	pthread_cond_destroy(&wb->kick);
	pthread_cond_destroy(&wb->idle);
	pthread_mutex_destroy(&wb->lock);
	free(wb);
	s->wb = NULL;
}

/**
 * writeback_stats() - fill the image part of a stats snapshot
 * @s: store with an image
 * @st: where to put them (pages_in_image is the caller's)
 */
void writeback_stats(struct tmem_store *s, struct tmem_image_stats *st)
{
	struct tmem_writeback *wb = s->wb;
	struct tmem_image *img = wb->img;

	pthread_mutex_lock(&img->lock);
	st->pages_read = img->stats.pages_read;
	st->read_errors = img->stats.read_errors;
	st->checksum_errors = img->stats.checksum_errors;
	st->reserve_errors = img->stats.reserve_errors;
	st->slots_used = img->nr_used - img->nr_trimming - img->nr_backing;
	st->slots_total = img->nr_slots;
	st->bytes_allocated = img->nr_backed * TMEM_PAGE_SIZE;
	pthread_mutex_unlock(&img->lock);
	pthread_mutex_lock(&wb->lock);
	st->frames_written = wb->frames_written;
	st->pages_written = wb->pages_written;
	st->write_errors = wb->write_errors;
	st->overdraft_puts = wb->overdraft_puts;
	st->wakeups = wb->wakeups;
	pthread_mutex_unlock(&wb->lock);
}
