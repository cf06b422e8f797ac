// SPDX-License-Identifier: BSD-3-Clause
/*
 * swapimg.c - slots of the host swap image.
 *
 * Slot space is managed with two bitmaps: @used (a live page, or a write
 * in progress) and @backed (blocks allocated).  Credits are granted only
 * against backed free slots (swapimg_reserve() allocates them ahead with
 * fallocate), so a writeback behind a credit always finds a slot (its
 * write may still fail, even with ENOSPC: see swapimg.h).  A slot whose
 * buddies both died goes back to the free pool; swapimg_trim() punches
 * blocks out once more than twice the reserve is backed and free, so that
 * a steady swap load does not allocate and punch the same blocks over and
 * over.
 *
 * Shared storage (a migration whose destination opens the same file): the
 * image of a destination is frozen, neither written, allocated nor
 * punched, until the source hands the file's lock over at switchover
 * (tmem_image_release(), tmem_image_acquire()), and only the holder of the
 * lock ever punches it.  Written-back pages travel as references to their
 * slots (swapimg_import_slot()); while that migration runs, a slot that
 * falls free on the source is held, not reused, until the records that
 * drop every reference the destination may have to it are sent
 * (swapimg_hold_mark()): a slot is then never rewritten under a reference
 * the destination still holds, and the destination's page counts stay
 * those of one content per slot.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lock.h"
#include "swapimg.h"

#define WORD_BITS	64u

/* ---- the default I/O layer ---------------------------------------------- */

static long sys_pwrite(void *opaque, int fd, const void *buf, size_t len,
		       uint64_t off)
{
	ssize_t n;

	(void)opaque;
	do {
		n = pwrite(fd, buf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (long)n;
}

static long sys_pread(void *opaque, int fd, void *buf, size_t len,
		      uint64_t off)
{
	ssize_t n;

	(void)opaque;
	do {
		n = pread(fd, buf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (long)n;
}

static int sys_fallocate(void *opaque, int fd, int mode, uint64_t off,
			 uint64_t len)
{
	int ret;

	(void)opaque;
	do {
		ret = fallocate(fd, mode, (off_t)off, (off_t)len);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : 0;
}

static const struct tmem_image_io sys_io = {
	.pwrite = sys_pwrite,
	.pread = sys_pread,
	.fallocate = sys_fallocate,
};

/* ---- checksums ---------------------------------------------------------- */

/**
 * swapimg_checksum() - 32-bit checksum of one frame
 * @frame: 4096 bytes
 *
 * Detects a corrupted or foreign slot, not an adversary: the image is the
 * host's own file.  Four independent multiply-rotate lanes keep it near
 * memory speed.
 */
uint32_t swapimg_checksum(const uint8_t *frame)
{
	uint64_t h[4] = { 0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full,
			  0x165667b19e3779f9ull, 0x27d4eb2f165667c5ull };
	unsigned int i, l;

	for (i = 0; i < TMEM_PAGE_SIZE; i += 32) {
		for (l = 0; l < 4; l++) {
			uint64_t w;

			memcpy(&w, frame + i + 8 * l, sizeof(w));
			h[l] ^= w;
			h[l] *= 0xff51afd7ed558ccdull;
			h[l] = (h[l] << 31) | (h[l] >> 33);
		}
	}
	h[0] ^= h[1] * 0xc4ceb9fe1a85ec53ull;
	h[2] ^= h[3] * 0xc4ceb9fe1a85ec53ull;
	h[0] ^= (h[2] << 17) | (h[2] >> 47);
	h[0] ^= h[0] >> 29;
	h[0] *= 0xbf58476d1ce4e5b9ull;
	return (uint32_t)(h[0] ^ (h[0] >> 32));
}

static void report(const struct tmem_image *img, const char *op,
		   uint64_t slot, int err)
{
	if (img->report)
		img->report(img->report_opaque, op, slot * TMEM_PAGE_SIZE, err);
}

/* ---- bitmaps ---------------------------------------------------------- */

static bool bit_test(const uint64_t *map, uint64_t n)
{
	return map[n / WORD_BITS] >> (n % WORD_BITS) & 1;
}

static void bit_set(uint64_t *map, uint64_t n)
{
	map[n / WORD_BITS] |= 1ull << (n % WORD_BITS);
}

static void bit_clear(uint64_t *map, uint64_t n)
{
	map[n / WORD_BITS] &= ~(1ull << (n % WORD_BITS));
}

static uint64_t nr_words(const struct tmem_image *img)
{
	return (img->nr_slots + WORD_BITS - 1) / WORD_BITS;
}

/* Bits of word @w that stand for real slots (the last word may be short). */
static uint64_t word_mask(const struct tmem_image *img, uint64_t w)
{
	uint64_t left = img->nr_slots - w * WORD_BITS;

	return left >= WORD_BITS ? ~0ull : (1ull << left) - 1;
}

/*
 * First slot at or after the cursor (wrapping) whose bits satisfy
 * (used == 0) and (backed == @backed).
 */
static uint64_t find_free_locked(struct tmem_image *img, bool backed)
{
	uint64_t words = nr_words(img), i;

	for (i = 0; i < words; i++) {
		uint64_t w = (img->cursor + i) % words;
		uint64_t b = backed ? img->backed[w] : ~img->backed[w];
		uint64_t cand = b & ~img->used[w] & word_mask(img, w);

		if (cand) {
			img->cursor = w;
			return w * WORD_BITS + (uint64_t)__builtin_ctzll(cand);
		}
	}
	return SWAPIMG_NO_SLOT;
}

/* ---- allocation ahead ------------------------------------------------- */

/* Allocated slots that hold no page and are not being punched out. */
static uint64_t free_backed_locked(const struct tmem_image *img)
{
	return img->nr_backed - (img->nr_used - img->nr_backing);
}

/*
 * Allocate the blocks of @n slots from @first, neither used nor backed.
 * They are marked used meanwhile, so that nobody else takes them, and
 * img->lock is dropped during fallocate(): holders of zbud->lock take it.
 * Called and returns with img->lock held.
 */
static int back_run_locked(struct tmem_image *img, uint64_t first,
			   uint64_t n)
{
	uint64_t i;
	int ret;

	for (i = first; i < first + n; i++)
		bit_set(img->used, i);
	img->nr_used += n;
	img->nr_backing += n;
	pthread_mutex_unlock(&img->lock);
	ret = img->io.fallocate(img->io.opaque, img->fd, 0,
				first * TMEM_PAGE_SIZE, n * TMEM_PAGE_SIZE);
	pthread_mutex_lock(&img->lock);
	for (i = first; i < first + n; i++) {
		bit_clear(img->used, i);
		if (!ret)
			bit_set(img->backed, i);
	}
	img->nr_used -= n;
	img->nr_backing -= n;
	if (ret) {
		img->stats.reserve_errors++;
		report(img, "allocate", first, ret);
		return ret;
	}
	img->nr_backed += n;
	return 0;
}

/* Allocate up to @want free slots, in contiguous runs. */
static void back_free_slots_locked(struct tmem_image *img, uint64_t want)
{
	while (want) {
		uint64_t first = find_free_locked(img, false), n = 1;

		if (first == SWAPIMG_NO_SLOT)
			return;
		while (n < want && first + n < img->nr_slots &&
		       !bit_test(img->used, first + n) &&
		       !bit_test(img->backed, first + n))
			n++;
		if (back_run_locked(img, first, n))
			return;
		want -= n;
	}
}

/**
 * swapimg_reserve() - keep image space allocated ahead for credits
 * @img: image
 *
 * Tops the backed free slots up to the reserve when they fell below half
 * of it.  A failure (ENOSPC, EIO) is counted and leaves fewer slots.  The
 * caller holds no store lock: this may call fallocate().
 */
void swapimg_reserve(struct tmem_image *img)
{
	uint64_t free_slots;

	pthread_mutex_lock(&img->lock);
	free_slots = free_backed_locked(img);
	if (!img->frozen && free_slots < img->reserve_slots / 2 + 1)
		back_free_slots_locked(img, img->reserve_slots - free_slots);
	pthread_mutex_unlock(&img->lock);
}

/**
 * swapimg_credit_slots() - backed free slots that credits may count on
 * @img: image
 *
 * Those beyond the reserve are not counted: swapimg_trim() may give them
 * back at any time, and credits counted on them would outlive them.  A
 * frozen image counts none (nothing may be written), except one waiting
 * for its lock as a migration's destination: it counts the free slots it
 * will allocate once it has it, as tmem_image_acquire() does, and the
 * destination checks its credits again after that
 * (tmem_install_check_room()).  No system call: the caller may hold
 * zbud->lock.
 *
 * Return: backed free slots, at most the reserve.
 */
uint64_t swapimg_credit_slots(struct tmem_image *img)
{
	uint64_t free_slots;

	pthread_mutex_lock(&img->lock);
	if (!img->frozen)
		free_slots = free_backed_locked(img);
	else
		free_slots = img->awaiting ? img->nr_slots - img->nr_used : 0;
	pthread_mutex_unlock(&img->lock);
	return free_slots < img->reserve_slots ? free_slots :
	       img->reserve_slots;
}

/* ---- slots ------------------------------------------------------------ */

/* An allocated free slot; the count saves a scan of the bitmaps. */
static uint64_t find_backed_free_locked(struct tmem_image *img)
{
	return free_backed_locked(img) ? find_free_locked(img, true) :
					 SWAPIMG_NO_SLOT;
}

static void slot_take_locked(struct tmem_image *img, uint64_t slot)
{
	bit_set(img->used, slot);
	img->nr_used++;
	img->taking++;
	img->live[slot] = 0;
	img->next[slot] = SWAPIMG_NO_NEXT;
}

/**
 * swapimg_slot_take_backed() - take an allocated free slot, if there is one
 * @img: image
 *
 * No system call: the caller may hold zbud->lock.
 *
 * Return: the slot, or SWAPIMG_NO_SLOT.
 */
uint64_t swapimg_slot_take_backed(struct tmem_image *img)
{
	uint64_t slot;

	pthread_mutex_lock(&img->lock);
	slot = img->frozen ? SWAPIMG_NO_SLOT : find_backed_free_locked(img);
	if (slot != SWAPIMG_NO_SLOT)
		slot_take_locked(img, slot);
	pthread_mutex_unlock(&img->lock);
	return slot;
}

/**
 * swapimg_slot_get() - take a free slot for a frame about to be written
 * @img: image
 *
 * Prefers an allocated slot; else allocates one (fallocate()).
 *
 * Return: the slot, or SWAPIMG_NO_SLOT when the image is full, frozen or
 * its file cannot grow.
 */
uint64_t swapimg_slot_get(struct tmem_image *img)
{
	uint64_t slot;

	pthread_mutex_lock(&img->lock);
	if (img->frozen) {
		pthread_mutex_unlock(&img->lock);
		return SWAPIMG_NO_SLOT;
	}
	slot = find_backed_free_locked(img);
	if (slot == SWAPIMG_NO_SLOT) {
		slot = find_free_locked(img, false);
		if (slot != SWAPIMG_NO_SLOT && back_run_locked(img, slot, 1))
			slot = SWAPIMG_NO_SLOT;
	}
	if (slot != SWAPIMG_NO_SLOT)
		slot_take_locked(img, slot);
	pthread_mutex_unlock(&img->lock);
	return slot;
}

/* The blocks stay allocated: swapimg_trim() gives back the excess. */
static void slot_free_locked(struct tmem_image *img, uint64_t slot)
{
	bit_clear(img->used, slot);
	img->nr_used--;
}

/* Take the next run of at most @max free backed slots; marks them used. */
static uint64_t trim_run_locked(struct tmem_image *img, uint64_t max,
				uint64_t *len)
{
	uint64_t first = find_free_locked(img, true), n = 0;

	if (first == SWAPIMG_NO_SLOT)
		return first;
	while (n < max && first + n < img->nr_slots &&
	       bit_test(img->backed, first + n) &&
	       !bit_test(img->used, first + n)) {
		bit_set(img->used, first + n);
		n++;
	}
	img->nr_used += n;
	img->nr_trimming += n;
	*len = n;
	return first;
}

/**
 * swapimg_trim() - give the blocks of excess free slots back
 * @img: image
 *
 * Once more than twice the reserve is allocated and free, punches free
 * slots out (in contiguous runs, without holding the lock during the
 * syscall) until the reserve is left.  Deferred from the free itself
 * because a punch per 4 KiB costs more than the get that freed the slot.
 *
 * Return: slots given back.
 */
uint64_t swapimg_trim(struct tmem_image *img)
{
	uint64_t done = 0;

	for (;;) {
		uint64_t first, n = 0, i, excess;
		int ret;

		pthread_mutex_lock(&img->lock);
		excess = free_backed_locked(img);
		if (img->frozen ||
		    excess <= (done ? 1 : 2) * img->reserve_slots) {
			pthread_mutex_unlock(&img->lock);
			return done;
		}
		excess -= img->reserve_slots;
		first = trim_run_locked(img, excess, &n);
		pthread_mutex_unlock(&img->lock);
		if (first == SWAPIMG_NO_SLOT)
			return done;
		/* A punch that fails leaves the blocks allocated: harmless. */
		ret = img->io.fallocate(img->io.opaque, img->fd,
					FALLOC_FL_PUNCH_HOLE |
					FALLOC_FL_KEEP_SIZE,
					first * TMEM_PAGE_SIZE,
					n * TMEM_PAGE_SIZE);
		pthread_mutex_lock(&img->lock);
		for (i = first; i < first + n; i++) {
			bit_clear(img->used, i);
			if (!ret)
				bit_clear(img->backed, i);
		}
		img->nr_used -= n;
		img->nr_trimming -= n;
		if (!ret)
			img->nr_backed -= n;
		pthread_mutex_unlock(&img->lock);
		if (ret)
			return done;
		done += n;
	}
}

/**
 * swapimg_slot_commit() - record a written slot, or give it back
 * @img: image
 * @slot: from swapimg_slot_get()
 * @csum: checksum of the frame written
 * @live: pages whose bytes lie in the slot (0: the write failed or nothing
 *	  was left to move; the slot is freed)
 * @next: the slot the unit's next frame went to, or SWAPIMG_NO_SLOT
 */
void swapimg_slot_commit(struct tmem_image *img, uint64_t slot, uint32_t csum,
			 unsigned int live, uint64_t next)
{
	pthread_mutex_lock(&img->lock);
	img->csum[slot] = csum;
	img->live[slot] = (uint8_t)live;
	img->next[slot] = next == SWAPIMG_NO_SLOT ? SWAPIMG_NO_NEXT :
						   (uint32_t)next;
	if (!live)
		slot_free_locked(img, slot);
	if (!--img->taking)
		pthread_cond_broadcast(&img->idle);
	pthread_mutex_unlock(&img->lock);
}

/*
 * A slot whose last page went is free again, unless a shared-image
 * migration holds it: the destination may still reference it.
 */
static void page_put_locked(struct tmem_image *img, uint64_t slot)
{
	if (--img->live[slot])
		return;
	if (img->held) {
		bit_set(img->held, slot);
		img->nr_held++;
		return;
	}
	slot_free_locked(img, slot);
}

/**
 * swapimg_page_put() - a page in the image was flushed or taken
 * @img: image
 * @slot: the slot its bytes start in
 * @straddles: they go on into the slot's next one
 */
void swapimg_page_put(struct tmem_image *img, uint64_t slot, bool straddles)
{
	pthread_mutex_lock(&img->lock);
	if (straddles)
		page_put_locked(img, img->next[slot]);
	page_put_locked(img, slot);
	pthread_mutex_unlock(&img->lock);
}

/**
 * swapimg_next() - the slot that holds the bytes after @slot's
 * @img: image
 * @slot: a slot with a live page the caller owns
 */
uint64_t swapimg_next(struct tmem_image *img, uint64_t slot)
{
	uint32_t next;

	pthread_mutex_lock(&img->lock);
	next = img->next[slot];
	pthread_mutex_unlock(&img->lock);
	return next == SWAPIMG_NO_NEXT ? SWAPIMG_NO_SLOT : next;
}

/**
 * swapimg_write() - write a frame into its slot
 * @img: image
 * @slot: owned by the caller
 * @frame: 4096 bytes, 4096-aligned (O_DIRECT)
 *
 * Return: 0, or a negative errno (a short write is -EIO).
 */
int swapimg_write(struct tmem_image *img, uint64_t slot, const uint8_t *frame)
{
	long n = img->io.pwrite(img->io.opaque, img->fd, frame, TMEM_PAGE_SIZE,
				slot * TMEM_PAGE_SIZE);

	if (n == TMEM_PAGE_SIZE)
		return 0;
	report(img, "write", slot, n < 0 ? (int)n : -EIO);
	return n < 0 ? (int)n : -EIO;
}

/**
 * swapimg_read() - read a slot and check it
 * @img: image
 * @slot: a slot with a live buddy the caller owns
 * @frame: 4096 bytes, 4096-aligned
 *
 * Return: 0, -EIO (read failed or came up short) or -EBADMSG (checksum
 * mismatch); each counted.
 */
int swapimg_read(struct tmem_image *img, uint64_t slot, uint8_t *frame)
{
	long n = img->io.pread(img->io.opaque, img->fd, frame, TMEM_PAGE_SIZE,
			       slot * TMEM_PAGE_SIZE);
	uint32_t want;
	int ret = 0;

	pthread_mutex_lock(&img->lock);
	want = img->csum[slot];
	if (n != TMEM_PAGE_SIZE) {
		img->stats.read_errors++;
		ret = -EIO;
	} else if (swapimg_checksum(frame) != want) {
		img->stats.checksum_errors++;
		ret = -EBADMSG;
	} else {
		img->stats.pages_read++;
	}
	pthread_mutex_unlock(&img->lock);
	if (ret)
		report(img, ret == -EIO ? "read" : "checksum", slot,
		       n < 0 ? (int)n : ret);
	return ret;
}

/**
 * swapimg_reset() - forget every slot and give the blocks back
 * @img: image (its store is gone or empty)
 *
 * The blocks are punched out only by the holder of the file's lock: a
 * migration's destination that never got it, or a source that handed it
 * over, leaves the file as it is (the other side's pages are in it).
 */
void swapimg_reset(struct tmem_image *img)
{
	bool owned;

	swapimg_hold_release(img, true);
	pthread_mutex_lock(&img->lock);
	memset(img->used, 0, nr_words(img) * sizeof(uint64_t));
	memset(img->backed, 0, nr_words(img) * sizeof(uint64_t));
	memset(img->live, 0, img->nr_slots);
	img->nr_used = img->nr_backed = 0;
	img->cursor = 0;
	owned = img->owned;
	pthread_mutex_unlock(&img->lock);
	if (owned)
		img->io.fallocate(img->io.opaque, img->fd,
				  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  0, img->nr_slots * TMEM_PAGE_SIZE);
}

/**
 * swapimg_attach() - give the image to a store
 * @img: image
 * @store: the store
 * @reserve_slots: the reserve to keep when the image's settings gave none
 *		   (at most the image's slots)
 *
 * Return: 0, or -1 if the image is attached to a store already.
 */
int swapimg_attach(struct tmem_image *img, struct tmem_store *store,
		   uint64_t reserve_slots)
{
	int ret = -1;

	pthread_mutex_lock(&img->lock);
	if (!img->store) {
		if (!img->reserve_slots)
			img->reserve_slots = reserve_slots < img->nr_slots ?
					     reserve_slots : img->nr_slots;
		img->store = store;
		ret = 0;
	}
	pthread_mutex_unlock(&img->lock);
	return ret;
}

/**
 * swapimg_detach() - forget every slot and the store
 * @img: image whose store is being destroyed (or failed to attach)
 */
void swapimg_detach(struct tmem_image *img)
{
	swapimg_reset(img);
	pthread_mutex_lock(&img->lock);
	img->store = NULL;
	pthread_mutex_unlock(&img->lock);
}

/**
 * swapimg_reserve_slots() - backed free slots the image keeps for credits
 * @img: attached image (the reserve no longer changes)
 */
uint64_t swapimg_reserve_slots(const struct tmem_image *img)
{
	return img->reserve_slots;
}

/**
 * swapimg_stats() - fill the image's part of a stats snapshot
 * @img: image
 * @st: where to put them (the slot and read counters)
 */
void swapimg_stats(struct tmem_image *img, struct tmem_image_stats *st)
{
	pthread_mutex_lock(&img->lock);
	st->pages_read = img->stats.pages_read;
	st->read_errors = img->stats.read_errors;
	st->checksum_errors = img->stats.checksum_errors;
	st->reserve_errors = img->stats.reserve_errors;
	st->slots_used = img->nr_used - img->nr_trimming - img->nr_backing;
	st->slots_total = img->nr_slots;
	st->bytes_allocated = img->nr_backed * TMEM_PAGE_SIZE;
	pthread_mutex_unlock(&img->lock);
}

/* ---- shared storage: migration by reference --------------------------- */

/**
 * swapimg_slot_ref() - what a reference to a live slot carries
 * @img: image
 * @slot: a slot with a live page the caller owns (its bucket is locked)
 * @csum: set to the slot's checksum
 * @next: set to the slot holding the bytes after it, or SWAPIMG_NO_SLOT
 * @next_csum: set to that slot's checksum (0 without one)
 */
void swapimg_slot_ref(struct tmem_image *img, uint64_t slot, uint32_t *csum,
		      uint64_t *next, uint32_t *next_csum)
{
	pthread_mutex_lock(&img->lock);
	*csum = img->csum[slot];
	*next = img->next[slot] == SWAPIMG_NO_NEXT ? SWAPIMG_NO_SLOT :
						    img->next[slot];
	*next_csum = *next == SWAPIMG_NO_SLOT ? 0 : img->csum[*next];
	pthread_mutex_unlock(&img->lock);
}

/* Whether @slot may take one more page of content @csum, after @next. */
static bool import_fits_locked(const struct tmem_image *img, uint64_t slot,
			       uint32_t csum, uint64_t next)
{
	if (slot >= img->nr_slots)
		return false;
	if (!bit_test(img->used, slot))
		return true;
	/* one content per slot: the source never rewrites a referenced one */
	return img->csum[slot] == csum && img->live[slot] < UINT8_MAX &&
	       (next == SWAPIMG_NO_SLOT || img->next[slot] == SWAPIMG_NO_NEXT ||
		img->next[slot] == next);
}

static void import_one_locked(struct tmem_image *img, uint64_t slot,
			      uint32_t csum, uint64_t next)
{
	if (!bit_test(img->used, slot)) {
		bit_set(img->used, slot);
		img->nr_used++;
		img->live[slot] = 0;
		img->next[slot] = SWAPIMG_NO_NEXT;
		img->csum[slot] = csum;
	}
	if (!bit_test(img->backed, slot)) {
		bit_set(img->backed, slot);
		img->nr_backed++;
	}
	if (next != SWAPIMG_NO_SLOT)
		img->next[slot] = (uint32_t)next;
	img->live[slot]++;
}

/**
 * swapimg_import_slot() - count a page that a migration source wrote back
 * @img: the destination's image, opened on the source's file
 * @slot: the slot the page's bytes start in
 * @csum: its checksum on the source
 * @next: the slot they go on into, or SWAPIMG_NO_SLOT
 * @next_csum: that slot's checksum
 *
 * Marks the slots used and allocated, counts the page in each and records
 * their checksums (each later read is checked against them) and the chain.
 * Undone by swapimg_page_put().  A slot already counted must have the
 * same checksum (and chain): the source holds a slot until every
 * reference to its old content is dropped, so a mismatch is a corrupt
 * stream.
 *
 * Return: 0, or -TMEM_E_INVAL (slot out of range, a chain onto itself,
 * checksum or chain in conflict with the slot's pages already counted,
 * or 255 pages in a slot).
 */
int swapimg_import_slot(struct tmem_image *img, uint64_t slot, uint32_t csum,
			uint64_t next, uint32_t next_csum)
{
	int ret = -TMEM_E_INVAL;

	pthread_mutex_lock(&img->lock);
	if (slot != next && import_fits_locked(img, slot, csum, next) &&
	    (next == SWAPIMG_NO_SLOT ||
	     import_fits_locked(img, next, next_csum, SWAPIMG_NO_SLOT))) {
		import_one_locked(img, slot, csum, next);
		if (next != SWAPIMG_NO_SLOT)
			import_one_locked(img, next, next_csum,
					  SWAPIMG_NO_SLOT);
		ret = 0;
	}
	pthread_mutex_unlock(&img->lock);
	return ret;
}

/**
 * swapimg_freeze() - stop every write to the image, and wait for those
 *		      under way
 * @img: image
 *
 * From now on no slot is taken, allocated or trimmed; the call returns
 * once every slot taken before has been committed.  The caller holds no
 * store lock.  Undone by tmem_image_acquire().
 */
void swapimg_freeze(struct tmem_image *img)
{
	pthread_mutex_lock(&img->lock);
	img->frozen = true;
	while (img->taking)
		pthread_cond_wait(&img->idle, &img->lock);
	pthread_mutex_unlock(&img->lock);
}

/**
 * swapimg_hold_start() - hold the slots that fall free from now on
 * @img: image of a store that starts a shared-image migration
 *
 * Return: 0, or -TMEM_E_NOMEM.
 */
int swapimg_hold_start(struct tmem_image *img)
{
	uint64_t *held = calloc(nr_words(img), sizeof(uint64_t));
	uint64_t *marked = calloc(nr_words(img), sizeof(uint64_t));

	if (!held || !marked) {
		free(held);
		free(marked);
		return -TMEM_E_NOMEM;
	}
	pthread_mutex_lock(&img->lock);
	img->held = held;
	img->held_marked = marked;
	pthread_mutex_unlock(&img->lock);
	return 0;
}

/**
 * swapimg_hold_mark() - note which slots are held now
 * @img: image
 *
 * A later swapimg_hold_release() frees these, and only these.
 */
void swapimg_hold_mark(struct tmem_image *img)
{
	uint64_t w;

	pthread_mutex_lock(&img->lock);
	for (w = 0; img->nr_held && w < nr_words(img); w++) {
		img->held_marked[w] |= img->held[w];
		img->held[w] = 0;
	}
	img->nr_marked += img->nr_held;
	img->nr_held = 0;
	pthread_mutex_unlock(&img->lock);
}

static void hold_free_locked(struct tmem_image *img, uint64_t *map)
{
	uint64_t w;

	for (w = 0; w < nr_words(img); w++) {
		while (map[w]) {
			slot_free_locked(img, w * WORD_BITS +
					 (uint64_t)__builtin_ctzll(map[w]));
			map[w] &= map[w] - 1;
		}
	}
}

/**
 * swapimg_hold_release() - free held slots
 * @img: image
 * @all: every held slot, and stop holding; else those of the last
 *	 swapimg_hold_mark()
 */
void swapimg_hold_release(struct tmem_image *img, bool all)
{
	uint64_t *held, *marked;

	pthread_mutex_lock(&img->lock);
	if (img->held_marked && img->nr_marked)
		hold_free_locked(img, img->held_marked);
	img->nr_marked = 0;
	held = img->held;
	marked = img->held_marked;
	if (all && held) {
		hold_free_locked(img, held);
		img->nr_held = 0;
		img->held = img->held_marked = NULL;
	}
	pthread_mutex_unlock(&img->lock);
	if (all) {
		free(held);
		free(marked);
	}
}

/**
 * tmem_image_acquire() - take the image's lock and let writes resume
 * @img: image opened with @incoming (a migration destination), or frozen
 *	 by a migration (a source going on after a failed one)
 * @why: if not NULL, where to say why it failed, naming the path
 * @why_len: size of @why
 *
 * Tops the allocated reserve up once writes may resume.  The caller holds
 * no store lock.
 *
 * Return: 0, or -TMEM_E_IMAGE (another process holds the lock: the image
 * stays frozen).
 */
int tmem_image_acquire(struct tmem_image *img, char *why, size_t why_len)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int err = 0;

	if (fcntl(img->fd, F_OFD_SETLK, &fl))
		err = errno;
	if (err) {
		if (why && why_len)
			snprintf(why, why_len, "Failed to get \"write\" lock: "
				 "is another process using the swap image "
				 "'%s'? (%s)", img->path, strerror(err));
		return -TMEM_E_IMAGE;
	}
	pthread_mutex_lock(&img->lock);
	img->owned = true;
	img->frozen = false;
	img->awaiting = false;
	pthread_mutex_unlock(&img->lock);
	swapimg_reserve(img);
	return 0;
}

/**
 * tmem_image_release() - hand the image over: sync it and drop its lock
 * @img: image, frozen (swapimg_freeze(): a source at switchover) or never
 *	 written (a destination giving a failed load up)
 * @why: if not NULL, where to say why it failed, naming the path
 * @why_len: size of @why
 *
 * Every slot written is on stable storage before another process may
 * take the lock and read it.  The image stays frozen, and closing it no
 * longer punches the file.
 *
 * Return: 0, or -TMEM_E_IMAGE (the sync failed: the lock is kept).
 */
int tmem_image_release(struct tmem_image *img, char *why, size_t why_len)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

	pthread_mutex_lock(&img->lock);
	img->frozen = true;
	pthread_mutex_unlock(&img->lock);
	if (fdatasync(img->fd)) {
		if (why && why_len)
			snprintf(why, why_len, "cannot sync swap image '%s': "
				 "%s", img->path, strerror(errno));
		return -TMEM_E_IMAGE;
	}
	pthread_mutex_lock(&img->lock);
	img->owned = false;
	pthread_mutex_unlock(&img->lock);
	/* an OFD lock: dropping it cannot fail on a valid descriptor */
	fcntl(img->fd, F_OFD_SETLK, &fl);
	return 0;
}

/* ---- open and close ---------------------------------------------------- */

/* Fail the open: record @err (an errno, or 0) and the message, return -1. */
static int image_open_fail(const struct tmem_image_config *cfg, int fd,
			   int *os_errno, int err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int image_open_fail(const struct tmem_image_config *cfg, int fd,
			   int *os_errno, int err, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	*os_errno = err;
	if (cfg->why && cfg->why_len) {
		va_start(ap, fmt);
		n = vsnprintf(cfg->why, cfg->why_len, fmt, ap);
		va_end(ap);
		if (err && n >= 0 && (size_t)n < cfg->why_len)
			snprintf(cfg->why + n, cfg->why_len - (size_t)n,
				 ": %s", strerror(err));
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

/*
 * Refuse what is not a private regular file: a FIFO or device would not
 * hold the pages, and a file with other names would leave guest memory
 * readable through them after we made it 0600.
 */
static int image_file_check(const struct tmem_image_config *cfg, int fd,
			    int *os_errno)
{
	struct stat st;

	if (fstat(fd, &st))
		return image_open_fail(cfg, fd, os_errno, errno,
				       "cannot stat swap image '%s'",
				       cfg->path);
	if (!S_ISREG(st.st_mode))
		return image_open_fail(cfg, fd, os_errno, 0,
				       "swap image '%s' is not a regular file",
				       cfg->path);
	if (st.st_nlink > 1)
		return image_open_fail(cfg, fd, os_errno, 0,
				       "swap image '%s' has %lu hard links: "
				       "guest memory would be readable "
				       "through the others", cfg->path,
				       (unsigned long)st.st_nlink);
	return fd;
}

/*
 * An open file description lock (not a process-associated one, which any
 * close() of the file in this process would drop) on the whole file, held
 * until the image is closed: a second store, in this process or another,
 * must not truncate a live image under the first.
 */
static int image_file_lock(const struct tmem_image_config *cfg, int fd,
			   int *os_errno)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int err;

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return fd;
	err = errno;
	if (err != EAGAIN && err != EACCES)
		return image_open_fail(cfg, fd, os_errno, err,
				       "cannot lock swap image '%s'",
				       cfg->path);
	/* the wording of QEMU's block layer (raw_check_lock_bytes()) */
	image_open_fail(cfg, fd, os_errno, 0, "Failed to get \"write\" lock: "
			"is another process using the swap image '%s'?",
			cfg->path);
	*os_errno = err;
	return -1;
}

/*
 * A migration destination's image is the source's file: open it as it is,
 * without the lock (the source holds it until switchover).  The source
 * made it 0600; a file anyone else could read is refused.
 */
static int image_file_open_incoming(const struct tmem_image_config *cfg,
				    int *os_errno)
{
	int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
	struct stat st;
	int fd, fl;

	if (cfg->direct)
		flags |= O_DIRECT;
	fd = open(cfg->path, flags);
	if (fd < 0)
		return image_open_fail(cfg, -1, os_errno, errno,
				       "cannot open shared swap image '%s'",
				       cfg->path);
	fd = image_file_check(cfg, fd, os_errno);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || (st.st_mode & 077))
		return image_open_fail(cfg, fd, os_errno, 0,
				       "shared swap image '%s' is readable "
				       "by others (mode %04o, want 0600)",
				       cfg->path, (unsigned int)st.st_mode &
				       07777);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK))
		return image_open_fail(cfg, fd, os_errno, errno,
				       "cannot set up swap image '%s'",
				       cfg->path);
	return fd;
}

static int image_file_open(const struct tmem_image_config *cfg, int *os_errno)
{
	/* O_NONBLOCK: opening a FIFO or device must not wait or act */
	int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
		    O_NONBLOCK;
	int fd, fl;

	if (cfg->direct)
		flags |= O_DIRECT;
	fd = open(cfg->path, flags, 0600);
	if (fd < 0)
		return image_open_fail(cfg, -1, os_errno, errno,
				       "cannot open swap image '%s'",
				       cfg->path);
	fd = image_file_check(cfg, fd, os_errno);
	if (fd >= 0)
		fd = image_file_lock(cfg, fd, os_errno);
	if (fd < 0)
		return -1;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK))
		return image_open_fail(cfg, fd, os_errno, errno,
				       "cannot set up swap image '%s'",
				       cfg->path);
	/* An existing file keeps its mode through O_CREAT. */
	if (fchmod(fd, 0600))
		return image_open_fail(cfg, fd, os_errno, errno,
				       "cannot make swap image '%s' mode 0600",
				       cfg->path);
	/* Old contents are never read back: drop them, then size sparsely. */
	if (ftruncate(fd, 0) || ftruncate(fd, (off_t)cfg->size_bytes))
		return image_open_fail(cfg, fd, os_errno, errno,
				       "cannot size swap image '%s'",
				       cfg->path);
	if (cfg->unlink_path && unlink(cfg->path))
		return image_open_fail(cfg, fd, os_errno, errno,
				       "cannot unlink swap image '%s'",
				       cfg->path);
	return fd;
}

static bool image_config_valid(const struct tmem_image_config *cfg)
{
	return cfg->path && cfg->path[0] &&
	       !(cfg->incoming && cfg->unlink_path) &&
	       cfg->size_bytes >= TMEM_MIN_IMAGE &&
	       cfg->size_bytes <= TMEM_MAX_IMAGE &&
	       !(cfg->size_bytes % TMEM_PAGE_SIZE) &&
	       cfg->reserve_bytes <= cfg->size_bytes &&
	       !(cfg->reserve_bytes % TMEM_PAGE_SIZE);
}

/**
 * tmem_image_open() - create (or truncate) a swap image
 * @cfg: settings (see struct tmem_image_config)
 * @out: the image
 * @os_errno: set to the errno of a failed system call, else 0
 *
 * Refuses a file that is not regular or has other hard links, and one that
 * another open image holds (an open file description lock on the whole
 * file, kept until tmem_image_close()); makes the file mode 0600.  With
 * @cfg->incoming the file must exist and be mode 0600 already; it is
 * opened as it is, without the lock, and the image is frozen (nothing is
 * written, allocated or punched) until tmem_image_acquire().  On
 * TMEM_E_IMAGE, @cfg->why says what failed, naming the path.
 *
 * Host memory: 17 bytes per slot (bitmaps, checksum, page count, next
 * slot), allocated
 * here and not charged to any store's limit.
 *
 * Return: 0, -TMEM_E_INVAL (bad settings), -TMEM_E_IMAGE (the file could
 * not be opened, locked or sized, or is not a private regular file: see
 * @os_errno and @cfg->why), -TMEM_E_NOMEM.
 */
int tmem_image_open(const struct tmem_image_config *cfg,
		    struct tmem_image **out, int *os_errno)
{
	struct tmem_image *img;
	uint64_t words;
	int dummy;

	if (!os_errno)
		os_errno = &dummy;
	*os_errno = 0;
	if (!cfg || !out || !image_config_valid(cfg))
		return -TMEM_E_INVAL;
	img = calloc(1, sizeof(*img));
	if (!img)
		return -TMEM_E_NOMEM;
	img->nr_slots = cfg->size_bytes / TMEM_PAGE_SIZE;
	words = nr_words(img);
	img->used = calloc(words, sizeof(uint64_t));
	img->backed = calloc(words, sizeof(uint64_t));
	img->csum = calloc(img->nr_slots, sizeof(uint32_t));
	img->live = calloc(img->nr_slots, 1);
	img->next = calloc(img->nr_slots, sizeof(uint32_t));
	img->path = strdup(cfg->path);
	img->fd = -1;
	if (!img->used || !img->backed || !img->csum || !img->live ||
	    !img->next || !img->path) {
		tmem_image_close(img);
		return -TMEM_E_NOMEM;
	}
	img->fd = cfg->incoming ? image_file_open_incoming(cfg, os_errno) :
				  image_file_open(cfg, os_errno);
	if (img->fd < 0) {
		tmem_image_close(img);
		return -TMEM_E_IMAGE;
	}
	img->io = cfg->io ? *cfg->io : sys_io;
	img->reserve_slots = cfg->reserve_bytes / TMEM_PAGE_SIZE;
	img->report = cfg->report;
	img->report_opaque = cfg->report_opaque;
	img->stats.slots_total = img->nr_slots;
	img->owned = !cfg->incoming;
	img->frozen = cfg->incoming;
	img->awaiting = cfg->incoming;
	tmem_mutex_init(&img->lock);
	pthread_cond_init(&img->idle, NULL);
	*out = img;
	return 0;
}

/**
 * tmem_image_close() - close an image
 * @img: image (NULL is ignored); its store must be destroyed first
 *
 * The file stays (unless it was unlinked at open), with its blocks given
 * back if the image holds its lock (else untouched: see
 * tmem_image_release()).
 */
void tmem_image_close(struct tmem_image *img)
{
	if (!img)
		return;
	if (img->fd >= 0) {
		swapimg_reset(img);
		close(img->fd);
		pthread_cond_destroy(&img->idle);
		pthread_mutex_destroy(&img->lock);
	}
	free(img->path);
	free(img->used);
	free(img->backed);
	free(img->csum);
	free(img->live);
	free(img->next);
	free(img);
}
