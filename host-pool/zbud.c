// SPDX-License-Identifier: BSD-3-Clause
/*
 * zbud.c - pageframe space and buddy allocator of a tmem store.
 *
 * At most two compressed pages share a frame, so a frame's contents are
 * freed by removing at most two entries: reclaim is cheap and predictable,
 * and a frame can be written back whole.  The price is packing: a page of
 * more than half a frame cannot share.  Allocation is best fit over lists of
 * half-filled frames indexed by free chunks, as in Linux's zbud.
 *
 * Freed frames stay resident on a small dirty stack because the next put
 * usually wants a frame right away; past ZBUD_DIRTY_MAX the older half is
 * given back to the OS with madvise(MADV_DONTNEED) by zbud_clean(), after
 * zbud->lock is dropped, and an arena whose frames are all free is unmapped
 * (its address range stays reserved).
 *
 * Functions named *_locked run under zbud->lock; zbud_populate() and
 * zbud_clean() are called without it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#include "lock.h"
#include "pageio.h"
#include "zalloc.h"
#include "zbud.h"

/* Bytes this thread took since zbud_bytes_taken(true). */
static _Thread_local uint64_t tls_bytes_taken;

#define ARENA_BYTES	((size_t)ZBUD_ARENA_FRAMES * TMEM_PAGE_SIZE)
#define LRU_LINKS	offsetof(struct zframe, lru_prev)
#define LIST_LINKS	offsetof(struct zframe, prev)

static uint32_t *links(struct zbud *z, uint32_t fn, size_t off)
{
	return (uint32_t *)((char *)&z->desc[fn] + off);
}

static void zlist_init(struct zlist *l)
{
	l->head = ZBUD_NIL;
	l->tail = ZBUD_NIL;
}

static void zlist_add_head(struct zbud *z, struct zlist *l, uint32_t fn,
			   size_t off)
{
	uint32_t *ln = links(z, fn, off);

	ln[0] = ZBUD_NIL;
	ln[1] = l->head;
	if (l->head != ZBUD_NIL)
		links(z, l->head, off)[0] = fn;
	else
		l->tail = fn;
	l->head = fn;
}

static void zlist_del(struct zbud *z, struct zlist *l, uint32_t fn, size_t off)
{
	uint32_t *ln = links(z, fn, off);

	if (ln[0] != ZBUD_NIL)
		links(z, ln[0], off)[1] = ln[1];
	else
		l->head = ln[1];
	if (ln[1] != ZBUD_NIL)
		links(z, ln[1], off)[0] = ln[0];
	else
		l->tail = ln[0];
	ln[0] = ZBUD_NIL;
	ln[1] = ZBUD_NIL;
}

/**
 * zbud_init() - reserve address space and descriptors for a store
 * @z: allocator to initialise
 * @max_frames: most frames that can ever be allocated at once
 *
 * Nothing is resident yet: both the frame range and the descriptor array
 * are reserved with MAP_NORESERVE and touched arena by arena.
 *
 * Return: 0, or -TMEM_E_NOMEM.
 */
int zbud_init(struct zbud *z, uint64_t max_frames)
{
	size_t range, desc_bytes;
	int k, c;

	memset(z, 0, sizeof(*z));
	z->nr_arenas = (uint32_t)((max_frames + ZBUD_ARENA_FRAMES - 1) >>
				  ZBUD_ARENA_SHIFT);
	range = (size_t)z->nr_arenas * ARENA_BYTES;
	desc_bytes = (size_t)z->nr_arenas * ZBUD_ARENA_FRAMES *
		     sizeof(struct zframe);
	z->base = mmap(NULL, range, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (z->base == MAP_FAILED)
		goto fail;
	z->desc = mmap(NULL, desc_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (z->desc == MAP_FAILED)
		goto fail_desc;
	z->arenas = calloc(z->nr_arenas, sizeof(*z->arenas));
	if (!z->arenas)
		goto fail_arenas;
	for (k = 0; k < TMEM_NR_KINDS; k++) {
		for (c = 0; c < (int)ZBUD_NCHUNKS; c++)
			zlist_init(&z->unbuddied[k][c]);
		zlist_init(&z->lru[k]);
	}
	z->arena_floor = z->nr_arenas;
	tmem_mutex_init(&z->lock);
	pthread_cond_init(&z->reserve_cond, NULL);
	return 0;

fail_arenas:
	munmap(z->desc, desc_bytes);
fail_desc:
	munmap(z->base, range);
fail:
	return -TMEM_E_NOMEM;
}

/**
 * zbud_fini() - unmap everything; the store has freed all frames or is
 *		 being destroyed wholesale
 * @z: allocator
 */
void zbud_fini(struct zbud *z)
{
	size_t frames = (size_t)z->nr_arenas * ZBUD_ARENA_FRAMES;

	munmap(z->base, frames * TMEM_PAGE_SIZE);
	munmap(z->desc, frames * sizeof(struct zframe));
	free(z->arenas);
	pthread_cond_destroy(&z->reserve_cond);
	pthread_mutex_destroy(&z->lock);
}

/**
 * zbud_bytes_taken() - bytes of frames and descriptors this thread took
 * @reset: start counting again from zero
 *
 * Return: bytes taken since the last reset.
 */
uint64_t zbud_bytes_taken(bool reset)
{
	uint64_t n = tls_bytes_taken;

	if (reset)
		tls_bytes_taken = 0;
	return n;
}

static void consume_reservation(struct zbud *z, enum tmem_kind kind,
				uint64_t bytes)
{
	tls_bytes_taken += bytes;
	z->reserved[kind] -= bytes < z->reserved[kind] ? bytes :
							 z->reserved[kind];
	if (kind == TMEM_EPHEMERAL && !z->reserved[kind])
		pthread_cond_broadcast(&z->reserve_cond);
}

static int arena_map(struct zbud *z, uint32_t a, enum tmem_kind kind)
{
	struct zarena *ar = &z->arenas[a];
	uint32_t first = a << ZBUD_ARENA_SHIFT, i;
	void *p;

	p = mmap(z->base + (size_t)a * ARENA_BYTES, ARENA_BYTES,
		 PROT_READ | PROT_WRITE,
		 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -TMEM_E_NOMEM;
	/* Frames are freed one by one: huge pages would pin 2 MiB. */
	madvise(p, ARENA_BYTES, MADV_NOHUGEPAGE);
	zlist_init(&ar->free);
	for (i = ZBUD_ARENA_FRAMES; i-- > 0;) {
		memset(&z->desc[first + i], 0, sizeof(struct zframe));
		zlist_add_head(z, &ar->free, first + i, LIST_LINKS);
	}
	ar->nr_used = 0;
	ar->populated = 0;
	ar->mapped = true;
	z->arenas_mapped++;
	if (a >= z->arena_floor)
		z->arenas_above++;
	consume_reservation(z, kind, ZBUD_ARENA_DESC_BYTES);
	return 0;
}

/* Give back the pages that only this arena's descriptors use. */
static void madvise_desc(struct zbud *z, uint32_t first)
{
	uintptr_t lo = (uintptr_t)&z->desc[first];
	uintptr_t hi = (uintptr_t)&z->desc[first + ZBUD_ARENA_FRAMES];

	lo = (lo + TMEM_PAGE_SIZE - 1) & ~(uintptr_t)(TMEM_PAGE_SIZE - 1);
	hi &= ~(uintptr_t)(TMEM_PAGE_SIZE - 1);
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static void arena_unmap(struct zbud *z, uint32_t a)
{
	struct zarena *ar = &z->arenas[a];
	uint32_t first = a << ZBUD_ARENA_SHIFT;

	/* Replace, not unmap: the range stays ours. */
	mmap(z->base + (size_t)a * ARENA_BYTES, ARENA_BYTES, PROT_NONE,
	     MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	madvise_desc(z, first);
	/* the window's frames went with the mapping */
	if (z->ahead_next >= first && z->ahead_next < first + ZBUD_ARENA_FRAMES)
		z->ahead_next = z->fresh_end;
	ar->mapped = false;
	zlist_init(&ar->free);
	z->arenas_mapped--;
	if (a >= z->arena_floor)
		z->arenas_above--;
}

/* Put a free frame the OS already took back on its arena's free list. */
static void frame_clean_locked(struct zbud *z, uint32_t fn)
{
	uint32_t a = fn >> ZBUD_ARENA_SHIFT;
	struct zarena *ar = &z->arenas[a];

	zlist_add_head(z, &ar->free, fn, LIST_LINKS);
	if (a < z->first_free_arena)
		z->first_free_arena = a;
	/* Keep the lowest arena mapped: it is where allocation starts. */
	if (--ar->nr_used == 0 && a != 0)
		arena_unmap(z, a);
}

static void frame_give_back(struct zbud *z, uint32_t fn)
{
	madvise(zbud_frame_addr(z, fn), TMEM_PAGE_SIZE, MADV_DONTNEED);
}

/*
 * The dirty stack is full: its older half goes back to the OS.  That is
 * ZBUD_DIRTY_MAX / 2 system calls, too long to hold z->lock for, so the
 * frames are parked on z->cleaning (off every list, their arena still
 * counting them) and zbud_clean() does the work after the lock is dropped.
 * Only if the previous batch is still parked are they cleaned right here.
 */
static void dirty_trim(struct zbud *z)
{
	uint32_t half = ZBUD_DIRTY_MAX / 2, i;

	if (!z->nr_cleaning && !z->cleaning_busy) {
		memcpy(z->cleaning, z->dirty, half * sizeof(z->dirty[0]));
		z->nr_cleaning = half;
		atomic_store_explicit(&z->clean_pending, true,
				      memory_order_relaxed);
	} else {
		for (i = 0; i < half; i++) {
			frame_give_back(z, z->dirty[i]);
			frame_clean_locked(z, z->dirty[i]);
		}
	}
	memmove(z->dirty, z->dirty + half,
		(z->nr_dirty - half) * sizeof(z->dirty[0]));
	z->nr_dirty -= half;
}

/**
 * zbud_clean() - give parked free frames back to the OS
 * @z: allocator; the caller holds no lock
 *
 * Cheap when there is nothing to do; called at the end of the store's
 * operations.  One caller at a time does the work: z->cleaning is not
 * touched by anyone else while z->cleaning_busy is set.
 */
void zbud_clean(struct zbud *z)
{
	uint32_t i, n;

	if (!atomic_load_explicit(&z->clean_pending, memory_order_relaxed))
		return;
	pthread_mutex_lock(&z->lock);
	n = z->nr_cleaning;
	if (z->cleaning_busy || !n) {
		pthread_mutex_unlock(&z->lock);
		return;
	}
	z->cleaning_busy = true;
	atomic_store_explicit(&z->clean_pending, false, memory_order_relaxed);
	pthread_mutex_unlock(&z->lock);
	for (i = 0; i < n; i++)
		frame_give_back(z, z->cleaning[i]);
	pthread_mutex_lock(&z->lock);
	for (i = 0; i < n; i++)
		frame_clean_locked(z, z->cleaning[i]);
	z->nr_cleaning = 0;
	z->cleaning_busy = false;
	pthread_mutex_unlock(&z->lock);
}

/**
 * zbud_drain_dirty() - give every dirty free frame back to the OS
 * @z: allocator; the caller holds no lock
 *
 * The dirty stack keeps up to ZBUD_DIRTY_MAX freed frames resident for the
 * next puts; after a shrink no put is coming soon, and the host wants its
 * memory now.  The frames are taken off the stack (their arena still
 * counts them, so it cannot be unmapped under us), given back without the
 * lock, and filed as clean.
 */
void zbud_drain_dirty(struct zbud *z)
{
	uint32_t frames[ZBUD_DIRTY_MAX], i, n;

	pthread_mutex_lock(&z->lock);
	n = z->nr_dirty;
	memcpy(frames, z->dirty, n * sizeof(frames[0]));
	z->nr_dirty = 0;
	pthread_mutex_unlock(&z->lock);
	for (i = 0; i < n; i++)
		frame_give_back(z, frames[i]);
	pthread_mutex_lock(&z->lock);
	for (i = 0; i < n; i++)
		frame_clean_locked(z, frames[i]);
	pthread_mutex_unlock(&z->lock);
	zbud_clean(z);
}

/**
 * zbud_set_arena_floor_locked() - say which arenas the limit may map
 * @z: allocator; the caller holds z->lock
 * @floor: arenas below this index are within the limit's reach
 *
 * Allocation maps the lowest unmapped arena, and only once every arena
 * below it is full, so while the store stays within its limit no arena at
 * or above @floor is mapped afresh: those still mapped (@arenas_above)
 * hold frames taken under a larger limit, and only go down.
 */
void zbud_set_arena_floor_locked(struct zbud *z, uint32_t floor)
{
	uint32_t a;

	if (floor > z->nr_arenas)
		floor = z->nr_arenas;
	z->arena_floor = floor;
	z->arenas_above = 0;
	for (a = floor; a < z->nr_arenas; a++)
		z->arenas_above += z->arenas[a].mapped;
}

/*
 * A fresh arena fills from its first frame up: its frames are faulted in
 * ahead, ZBUD_POPULATE_AHEAD at a time, so that copying into a new frame
 * under z->lock rarely takes a page fault.  The madvise() itself runs after
 * the lock is dropped (zbud_populate()); a frame allocated before that just
 * faults as usual.
 *
 * At most ZBUD_POPULATE_AHEAD frames are resident without having been
 * allocated: one window [ahead_next, fresh_end) at a time, which
 * zbud_frame_alloc_locked() uses up before any other clean frame.  (Else
 * allocation, which takes the lowest arena with room, could leave windows
 * behind in higher arenas, one per drained arena mapped afresh below.)
 */
static void populate_ahead(struct zbud *z, uint32_t a, uint32_t fn)
{
	struct zarena *ar = &z->arenas[a];
	uint32_t idx = fn & (ZBUD_ARENA_FRAMES - 1), n;

	if (idx + 1 < ar->populated || z->populate_len)
		return;
	n = ZBUD_ARENA_FRAMES - idx - 1;
	if (n > ZBUD_POPULATE_AHEAD)
		n = ZBUD_POPULATE_AHEAD;
	if (!n)
		return;
	z->populate_from = fn + 1;
	z->populate_len = n;
	z->ahead_next = fn + 1;
	z->fresh_end = fn + 1 + n;
	ar->populated = (uint16_t)(idx + 1 + n);
}

/**
 * zbud_take_populate_locked() - hand the pending fault-in work to the caller
 * @z: allocator
 * @p: receives it; pass to zbud_populate() once z->lock is dropped
 */
void zbud_take_populate_locked(struct zbud *z, struct zbud_populate *p)
{
	p->from = z->populate_from;
	p->len = z->populate_len;
	z->populate_len = 0;
}

/**
 * zbud_populate() - fault in frames ahead of allocation, without z->lock
 * @z: allocator
 * @p: from zbud_take_populate_locked()
 *
 * Harmless if the frames were allocated or even unmapped meanwhile: it
 * changes no contents.  Kernels before 5.14 lack MADV_POPULATE_WRITE; the
 * frames are then faulted in on first use.
 */
void zbud_populate(struct zbud *z, const struct zbud_populate *p)
{
	if (p->len)
		madvise(zbud_frame_addr(z, p->from),
			(size_t)p->len * TMEM_PAGE_SIZE, MADV_POPULATE_WRITE);
}

/**
 * zbud_frame_alloc_locked() - take a free frame
 * @z: allocator
 * @kind: kind whose reservation the frame consumes
 *
 * Prefers a dirty (still resident) frame, then one faulted in ahead, then
 * the lowest arena with a free frame, so that high arenas drain and can be
 * unmapped.
 *
 * Return: frame number, or ZBUD_NIL when the range or the host is exhausted.
 */
uint32_t zbud_frame_alloc_locked(struct zbud *z, enum tmem_kind kind)
{
	struct zarena *ar;
	uint32_t a, fn;

	if (z->nr_dirty) {
		fn = z->dirty[--z->nr_dirty];
		goto found;
	}
	if (z->ahead_next < z->fresh_end) {
		/* then the frames faulted in ahead, so that a new window can */
		fn = z->ahead_next++;
		ar = &z->arenas[fn >> ZBUD_ARENA_SHIFT];
		zlist_del(z, &ar->free, fn, LIST_LINKS);
		ar->nr_used++;
		goto found;
	}
	for (a = z->first_free_arena; a < z->nr_arenas; a++) {
		ar = &z->arenas[a];
		if (!ar->mapped && arena_map(z, a, kind))
			return ZBUD_NIL;
		if (ar->free.head != ZBUD_NIL)
			break;
	}
	z->first_free_arena = a;
	if (a == z->nr_arenas)
		return ZBUD_NIL;
	ar = &z->arenas[a];
	fn = ar->free.head;
	zlist_del(z, &ar->free, fn, LIST_LINKS);
	ar->nr_used++;
	populate_ahead(z, a, fn);
found:
	memset(&z->desc[fn], 0, sizeof(struct zframe));
	z->desc[fn].owner[0] = z->desc[fn].owner[1] = ZBUD_NO_OWNER;
	z->desc[fn].lru_prev = z->desc[fn].lru_next = ZBUD_NIL;
	z->desc[fn].prev = z->desc[fn].next = ZBUD_NIL;
	z->frames_total++;
	consume_reservation(z, kind, TMEM_PAGE_SIZE);
	return fn;
}

/**
 * zbud_frame_free_locked() - return a frame taken by zbud_frame_alloc_locked()
 * @z: allocator
 * @fn: frame, off every list
 */
void zbud_frame_free_locked(struct zbud *z, uint32_t fn)
{
	z->desc[fn].type = ZF_FREE;
	z->frames_total--;
	if (z->nr_dirty == ZBUD_DIRTY_MAX)
		dirty_trim(z);
	z->dirty[z->nr_dirty++] = fn;
}

static unsigned int free_chunks(const struct zframe *f)
{
	return ZBUD_NCHUNKS - f->first_chunks - f->last_chunks;
}

/* A frame is on an unbuddied list iff exactly one buddy is used and room is
 * left.
 */
static bool on_unbuddied(const struct zframe *f)
{
	return (!f->first_chunks != !f->last_chunks) && free_chunks(f) > 0;
}

/* The mask keeps best fit to one bit scan instead of a walk of list heads. */
static void unbuddied_add(struct zbud *z, enum tmem_kind kind, uint32_t fn)
{
	unsigned int c = free_chunks(&z->desc[fn]);

	zlist_add_head(z, &z->unbuddied[kind][c], fn, LIST_LINKS);
	z->unbuddied_mask[kind] |= 1ull << c;
}

static void unbuddied_del(struct zbud *z, enum tmem_kind kind, uint32_t fn)
{
	unsigned int c = free_chunks(&z->desc[fn]);
	struct zlist *l = &z->unbuddied[kind][c];

	zlist_del(z, l, fn, LIST_LINKS);
	if (l->head == ZBUD_NIL)
		z->unbuddied_mask[kind] &= ~(1ull << c);
}

static void lru_touch(struct zbud *z, uint32_t fn)
{
	struct zlist *lru = &z->lru[z->desc[fn].kind];

	if (lru->head == fn)
		return;
	zlist_del(z, lru, fn, LRU_LINKS);
	zlist_add_head(z, lru, fn, LRU_LINKS);
}

static uint32_t new_data_frame(struct zbud *z, enum tmem_kind kind)
{
	uint32_t fn = zbud_frame_alloc_locked(z, kind);

	if (fn == ZBUD_NIL)
		return fn;
	z->desc[fn].type = ZF_DATA;
	z->desc[fn].kind = kind;
	zlist_add_head(z, &z->lru[kind], fn, LRU_LINKS);
	z->data_frames[kind]++;
	return fn;
}

/**
 * zbud_alloc_locked() - find room for a page of @size bytes
 * @z: allocator
 * @kind: kind of the page; frames never mix kinds
 * @size: 1..TMEM_PAGE_SIZE bytes
 * @owner: reference to record in the buddy (for reclaim)
 * @h: where the page goes
 *
 * The frame becomes the most recently used of its kind.
 *
 * Return: 0, or -TMEM_E_FULL when no frame can be had.
 */
int zbud_alloc_locked(struct zbud *z, enum tmem_kind kind, unsigned int size,
		      uint32_t owner, struct zbud_handle *h)
{
	unsigned int chunks = zbud_chunks(size);
	uint64_t fit = chunks < ZBUD_NCHUNKS ?
		       z->unbuddied_mask[kind] >> chunks << chunks : 0;
	struct zframe *f;
	uint32_t fn;

	if (fit) {
		fn = z->unbuddied[kind][__builtin_ctzll(fit)].head;
		unbuddied_del(z, kind, fn);
		lru_touch(z, fn);
	} else {
		fn = new_data_frame(z, kind);
		if (fn == ZBUD_NIL)
			return -TMEM_E_FULL;
	}
	f = &z->desc[fn];
	h->frame = fn;
	if (!f->first_chunks) {
		h->buddy = ZBUD_FIRST;
		f->first_chunks = (uint8_t)chunks;
	} else {
		h->buddy = ZBUD_LAST;
		f->last_chunks = (uint8_t)chunks;
	}
	f->owner[h->buddy] = owner;
	if (on_unbuddied(f))
		unbuddied_add(z, kind, fn);
	return 0;
}

/**
 * zbud_free_locked() - free one buddy
 * @z: allocator
 * @h: the buddy
 *
 * A frame under reclaim only loses its owner: reclaim frees the frame.
 */
void zbud_free_locked(struct zbud *z, struct zbud_handle h)
{
	struct zframe *f = &z->desc[h.frame];
	enum tmem_kind kind = f->kind;

	f->owner[h.buddy] = ZBUD_NO_OWNER;
	if (f->under_reclaim)
		return;
	if (on_unbuddied(f))
		unbuddied_del(z, kind, h.frame);
	if (h.buddy == ZBUD_FIRST)
		f->first_chunks = 0;
	else
		f->last_chunks = 0;
	if (!f->first_chunks && !f->last_chunks) {
		zlist_del(z, &z->lru[kind], h.frame, LRU_LINKS);
		z->data_frames[kind]--;
		zbud_frame_free_locked(z, h.frame);
	} else if (on_unbuddied(f)) {
		unbuddied_add(z, kind, h.frame);
	}
}

/**
 * zbud_buddy_addr() - address of a stored page
 * @z: allocator
 * @h: the buddy
 * @size: the page's stored size (determines where a LAST buddy starts)
 *
 * Needs no lock: the caller owns the entry, so the buddy cannot move.
 */
uint8_t *zbud_buddy_addr(const struct zbud *z, struct zbud_handle h,
			 unsigned int size)
{
	uint8_t *frame = zbud_frame_addr(z, h.frame);

	if (h.buddy == ZBUD_FIRST)
		return frame;
	return frame + TMEM_PAGE_SIZE - (zbud_chunks(size) << ZBUD_CHUNK_SHIFT);
}

/**
 * zbud_reclaim_start_locked() - take the least recently filled frame of a
 *				 kind off every list
 * @z: allocator
 * @kind: which LRU
 *
 * The caller removes the frame's owners (each under its own bucket lock,
 * after dropping z->lock) and then calls zbud_reclaim_finish_locked().
 *
 * Return: the frame, or ZBUD_NIL if the kind has none.
 */
uint32_t zbud_reclaim_start_locked(struct zbud *z, enum tmem_kind kind)
{
	uint32_t fn = z->lru[kind].tail;
	struct zframe *f;

	if (fn == ZBUD_NIL)
		return fn;
	f = &z->desc[fn];
	zlist_del(z, &z->lru[kind], fn, LRU_LINKS);
	if (on_unbuddied(f))
		unbuddied_del(z, kind, fn);
	f->under_reclaim = 1;
	return fn;
}

/**
 * zbud_reclaim_finish_locked() - free a reclaimed frame whose owners are gone
 * @z: allocator
 * @fn: frame from zbud_reclaim_start_locked()
 */
void zbud_reclaim_finish_locked(struct zbud *z, uint32_t fn)
{
	z->data_frames[z->desc[fn].kind]--;
	zbud_frame_free_locked(z, fn);
}

/**
 * zbud_reclaim_abort_locked() - put back a frame whose reclaim failed
 * @z: allocator
 * @fn: frame from zbud_reclaim_start_locked()
 *
 * Buddies whose owners went away meanwhile are freed now; the frame goes
 * to the head of its LRU, so a frame that cannot be written is not the
 * very next one tried.
 */
void zbud_reclaim_abort_locked(struct zbud *z, uint32_t fn)
{
	struct zframe *f = &z->desc[fn];
	enum tmem_kind kind = f->kind;

	f->under_reclaim = 0;
	if (f->owner[ZBUD_FIRST] == ZBUD_NO_OWNER)
		f->first_chunks = 0;
	if (f->owner[ZBUD_LAST] == ZBUD_NO_OWNER)
		f->last_chunks = 0;
	if (!f->first_chunks && !f->last_chunks) {
		zbud_reclaim_finish_locked(z, fn);
		return;
	}
	zlist_add_head(z, &z->lru[kind], fn, LRU_LINKS);
	if (on_unbuddied(f))
		unbuddied_add(z, kind, fn);
}

/**
 * zbud_list_init() - make an empty frame list (for users outside zbud.c)
 * @l: list
 */
void zbud_list_init(struct zlist *l)
{
	zlist_init(l);
}

/**
 * zbud_list_add_locked() - put a frame at the head of a list, linked by the
 *			    frame's prev/next pair
 * @z: allocator
 * @l: list
 * @fn: frame, on no prev/next list
 *
 * The caller serialises access to @l and to @fn's prev/next pair.
 */
void zbud_list_add_locked(struct zbud *z, struct zlist *l, uint32_t fn)
{
	zlist_add_head(z, l, fn, LIST_LINKS);
}

/**
 * zbud_list_del_locked() - take a frame off a list
 * @z: allocator
 * @l: list
 * @fn: frame on @l
 */
void zbud_list_del_locked(struct zbud *z, struct zlist *l, uint32_t fn)
{
	zlist_del(z, l, fn, LIST_LINKS);
}

/**
 * zbud_lru_add_locked() - put a frame at the head of a list, linked by the
 *			   frame's lru_prev/lru_next pair
 * @z: allocator
 * @l: list
 * @fn: frame, on no lru_prev/lru_next list
 *
 * For data frames of other allocators over this frame space (zspage.c).
 */
void zbud_lru_add_locked(struct zbud *z, struct zlist *l, uint32_t fn)
{
	zlist_add_head(z, l, fn, LRU_LINKS);
}

/**
 * zbud_lru_del_locked() - take a frame off a list linked by lru_prev/lru_next
 * @z: allocator
 * @l: list
 * @fn: frame on @l
 */
void zbud_lru_del_locked(struct zbud *z, struct zlist *l, uint32_t fn)
{
	zlist_del(z, l, fn, LRU_LINKS);
}

/* ---- the allocator interface (zalloc.h): a unit is a frame, its objects
 * the two buddies ------------------------------------------------------- */

static int zbud_op_alloc(void *a, enum tmem_kind kind, unsigned int size,
			 uint32_t owner, struct zbud_handle *h)
{
	return zbud_alloc_locked(a, kind, size, owner, h);
}

static void zbud_op_free(void *a, struct zbud_handle h)
{
	zbud_free_locked(a, h);
}

static bool zbud_op_hot(const void *a, struct zbud_handle h)
{
	return zbud_frame_hot_locked(a, h.frame);
}

/*
 * Only a frame the kernel just zeroed is in the cache; into any other the
 * copy streams, rather than read every line before writing it.  A buddy
 * is chunk-aligned and its padded copy stays in its chunks.
 */
_Static_assert(ZBUD_CHUNK_SIZE % PAGEIO_LINE == 0,
	       "a buddy's padded copy must stay in its own chunks");

static void zbud_op_write(const void *a, struct zbud_handle h,
			  const void *src, unsigned int len, bool hot)
{
	uint8_t *dst = zbud_buddy_addr(a, h, len);

	if (hot)
		memcpy(dst, src, len);
	else
		pageio_copy_nocache(dst, src, len);
}

static void zbud_op_read(const void *a, struct zbud_handle h, void *dst,
			 unsigned int len)
{
	memcpy(dst, zbud_buddy_addr(a, h, len), len);
}

static uint32_t zbud_op_reclaim_start(void *a, enum tmem_kind kind)
{
	return zbud_reclaim_start_locked(a, kind);
}

static unsigned int zbud_op_unit_objs(const void *a, uint32_t unit)
{
	(void)a;
	(void)unit;
	return 2;
}

static unsigned int zbud_op_unit_frames(const void *a, uint32_t unit)
{
	(void)a;
	(void)unit;
	return 1;
}

static uint32_t zbud_op_unit_frame(const void *a, uint32_t unit,
				   unsigned int k)
{
	(void)a;
	(void)k;
	return unit;
}

/* A buddy's chunks stay recorded while its frame is under reclaim. */
static void zbud_op_unit_extent(const void *a, uint32_t unit, unsigned int i,
				unsigned int *off, unsigned int *len)
{
	const struct zframe *f = &((const struct zbud *)a)->desc[unit];
	unsigned int chunks = i == ZBUD_FIRST ? f->first_chunks :
						f->last_chunks;

	*len = chunks << ZBUD_CHUNK_SHIFT;
	*off = i == ZBUD_FIRST ? 0 : TMEM_PAGE_SIZE - *len;
}

static unsigned int zbud_op_obj_bytes(unsigned int size)
{
	return zbud_chunks(size) << ZBUD_CHUNK_SHIFT;
}

static unsigned int zbud_op_obj_hdr(unsigned int size)
{
	(void)size;
	return 0;
}

static uint32_t zbud_op_owner(const void *a, uint32_t unit, unsigned int i)
{
	return ((const struct zbud *)a)->desc[unit].owner[i];
}

static uint32_t zbud_op_detach(void *a, uint32_t unit, unsigned int i)
{
	struct zbud *z = a;
	uint32_t owner = z->desc[unit].owner[i];

	z->desc[unit].owner[i] = ZBUD_NO_OWNER;
	return owner;
}

static void zbud_op_reclaim_finish(void *a, uint32_t unit)
{
	zbud_reclaim_finish_locked(a, unit);
}

static void zbud_op_reclaim_abort(void *a, uint32_t unit)
{
	zbud_reclaim_abort_locked(a, unit);
}

const struct zalloc_ops zbud_zalloc_ops = {
	.name = "zbud",
	.span_frames_max = 1,
	.alloc_locked = zbud_op_alloc,
	.free_locked = zbud_op_free,
	.hot_locked = zbud_op_hot,
	.write = zbud_op_write,
	.read = zbud_op_read,
	.reclaim_start_locked = zbud_op_reclaim_start,
	.unit_objs = zbud_op_unit_objs,
	.unit_frames = zbud_op_unit_frames,
	.unit_frame = zbud_op_unit_frame,
	.unit_extent = zbud_op_unit_extent,
	.obj_bytes = zbud_op_obj_bytes,
	.obj_hdr = zbud_op_obj_hdr,
	.owner_locked = zbud_op_owner,
	.detach_locked = zbud_op_detach,
	.reclaim_finish_locked = zbud_op_reclaim_finish,
	.reclaim_abort_locked = zbud_op_reclaim_abort,
};
