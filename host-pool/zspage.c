// SPDX-License-Identifier: BSD-3-Clause
/*
 * zspage.c - size-class allocator of a tmem store (see zspage.h).
 *
 * A span's head frame descriptor holds its class, its objects in use, the
 * first free object and its place in the class's fullness lists (prev/next)
 * and in the LRU (lru_prev/lru_next); every frame of a span links to the
 * next through span_next.  Those links never change while the span lives,
 * which is what lets zs_read() and zs_write() find an object's bytes
 * without the lock.
 *
 * Functions named *_locked run under zs->z->lock.
 */
#include <string.h>

#include "zalloc.h"
#include "zspage.h"

static unsigned int class_size(unsigned int c)
{
	return ZS_MIN_SIZE + c * ZS_ALIGN;
}

/*
 * Classes are merged upwards where a larger class packs as many objects in
 * as many frames (zsmalloc does the same): fewer classes, so fewer spans
 * left partly filled, at no cost in density.  The table is the same for
 * every store.
 */
static struct zs_geometry class_geom[ZS_NR_CLASSES];
static uint8_t class_merged[ZS_NR_CLASSES];
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

static void class_geometry(struct zs_geometry *cls, unsigned int size);

static void classes_init(void)
{
	unsigned int c = ZS_NR_CLASSES, up = ZS_NR_CLASSES;

	while (c--) {
		class_geometry(&class_geom[c], class_size(c));
		if (up < ZS_NR_CLASSES &&
		    class_geom[up].objs == class_geom[c].objs &&
		    class_geom[up].frames == class_geom[c].frames)
			class_merged[c] = (uint8_t)up;
		else
			class_merged[c] = (uint8_t)(up = c);
	}
}

/**
 * zs_class_of() - the size class of a page stored in @size bytes
 * @size: 1..TMEM_PAGE_SIZE
 *
 * Return: a class index, or ZS_HUGE when the page and its header do not
 * fit a frame.
 */
unsigned int zs_class_of(unsigned int size)
{
	unsigned int need = size + ZS_HDR_SIZE;

	if (need > TMEM_PAGE_SIZE)
		return ZS_HUGE;
	if (need < ZS_MIN_SIZE)
		need = ZS_MIN_SIZE;
	pthread_once(&classes_once, classes_init);
	return class_merged[(need - ZS_MIN_SIZE + ZS_ALIGN - 1) >>
			    ZS_ALIGN_SHIFT];
}

/**
 * zs_object_bytes() - bytes a page stored in @size bytes takes in a span
 * @size: 1..TMEM_PAGE_SIZE
 *
 * Return: its class's object size (a whole frame for the huge class).
 */
unsigned int zs_object_bytes(unsigned int size)
{
	unsigned int c = zs_class_of(size);

	return c == ZS_HUGE ? TMEM_PAGE_SIZE : class_size(c);
}

/*
 * Frames per span: the count that wastes the smallest share of the span
 * (the fewest frames on a tie, so that a sparse class holds little),
 * keeping at most ZS_SPAN_OBJS_MAX objects.
 */
static void class_geometry(struct zs_geometry *cls, unsigned int size)
{
	unsigned int best_f = 1, best_waste = TMEM_PAGE_SIZE, f;

	for (f = 1; f <= ZS_SPAN_FRAMES_MAX; f++) {
		unsigned int bytes = f * TMEM_PAGE_SIZE;
		unsigned int objs = bytes / size, waste;

		if (objs > ZS_SPAN_OBJS_MAX)
			objs = ZS_SPAN_OBJS_MAX;
		waste = bytes - objs * size;
		/* waste / f < best_waste / best_f */
		if (waste * best_f < best_waste * f) {
			best_f = f;
			best_waste = waste;
		}
	}
	cls->size = (uint16_t)size;
	cls->frames = (uint8_t)best_f;
	cls->objs = (uint16_t)(best_f * TMEM_PAGE_SIZE / size);
	if (cls->objs > ZS_SPAN_OBJS_MAX)
		cls->objs = ZS_SPAN_OBJS_MAX;
}

/**
 * zs_init() - set up the classes of a store
 * @zs: allocator to initialise
 * @z: the frame space it takes frames from
 */
void zs_init(struct zspool *zs, struct zbud *z)
{
	unsigned int k, c, g;

	memset(zs, 0, sizeof(*zs));
	zs->z = z;
	pthread_once(&classes_once, classes_init);
	memcpy(zs->geom, class_geom, sizeof(zs->geom));
	for (k = 0; k < TMEM_NR_KINDS; k++) {
		for (c = 0; c < ZS_NR_CLASSES; c++) {
			for (g = 0; g < ZS_NR_GROUPS; g++)
				zbud_list_init(&zs->cls[k][c].group[g]);
		}
		zbud_list_init(&zs->lru[k]);
	}
}

static struct zframe *desc(const struct zspool *zs, uint32_t fn)
{
	return &zs->z->desc[fn];
}

static struct zs_class *class_of_span(struct zspool *zs, uint32_t head)
{
	const struct zframe *d = desc(zs, head);

	return &zs->cls[d->kind][d->span_class];
}

/**
 * zs_span_frame() - the @k-th frame of a span
 * @zs: allocator
 * @head: the span's first frame
 * @k: 0..frames - 1
 */
uint32_t zs_span_frame(const struct zspool *zs, uint32_t head, unsigned int k)
{
	uint32_t fn = head;

	while (k--)
		fn = desc(zs, fn)->span_next;
	return fn;
}

/**
 * zs_span_frames() - frames of a span
 * @zs: allocator
 * @head: the span's first frame
 */
unsigned int zs_span_frames(const struct zspool *zs, uint32_t head)
{
	const struct zframe *d = desc(zs, head);

	return d->span_class == ZS_HUGE ? 1 : zs->geom[d->span_class].frames;
}

/**
 * zs_span_objs() - objects a span has room for
 * @zs: allocator
 * @head: the span's first frame
 */
unsigned int zs_span_objs(const struct zspool *zs, uint32_t head)
{
	const struct zframe *d = desc(zs, head);

	return d->span_class == ZS_HUGE ? 1 : zs->geom[d->span_class].objs;
}

/**
 * zs_object_offset() - where object @slot of a span starts (its header), in
 *			bytes from the span's first byte
 * @zs: allocator
 * @head: the span's first frame
 * @slot: the object
 *
 * A huge object has no header: it is the whole frame, at 0.
 */
unsigned int zs_object_offset(const struct zspool *zs, uint32_t head,
			      unsigned int slot)
{
	unsigned int c = desc(zs, head)->span_class;

	return c == ZS_HUGE ? 0 : slot * zs->geom[c].size;
}

/**
 * zs_span_object_bytes() - bytes each object of a span takes
 * @zs: allocator
 * @head: the span's first frame
 */
unsigned int zs_span_object_bytes(const struct zspool *zs, uint32_t head)
{
	unsigned int c = desc(zs, head)->span_class;

	return c == ZS_HUGE ? TMEM_PAGE_SIZE : zs->geom[c].size;
}

/* The header of object @slot: never straddles, objects are 16-aligned. */
static uint32_t *header(const struct zspool *zs, uint32_t head,
			unsigned int slot)
{
	unsigned int off = slot * zs->geom[desc(zs, head)->span_class].size;

	return (uint32_t *)(zbud_frame_addr(zs->z, zs_span_frame(zs, head,
				off / TMEM_PAGE_SIZE)) +
			    off % TMEM_PAGE_SIZE);
}

/* ---- spans -------------------------------------------------------------- */

static void span_release_frames_locked(struct zspool *zs, uint32_t head)
{
	unsigned int n = zs_span_frames(zs, head);
	enum tmem_kind kind = desc(zs, head)->kind;
	uint32_t fn = head;

	while (fn != ZBUD_NIL) {
		uint32_t next = desc(zs, fn)->span_next;

		zbud_frame_free_locked(zs->z, fn);
		fn = next;
	}
	zs->frames[kind] -= n;
	zs->z->data_frames[kind] -= n;
}

/* A new span of class @c, all free, on the head of the LRU. */
static uint32_t span_new_locked(struct zspool *zs, enum tmem_kind kind,
				unsigned int c)
{
	unsigned int frames = c == ZS_HUGE ? 1 : zs->geom[c].frames;
	uint32_t fn[ZS_SPAN_FRAMES_MAX] = { 0 };
	unsigned int i;
	struct zframe *d;

	for (i = 0; i < frames; i++) {
		fn[i] = zbud_frame_alloc_locked(zs->z, kind);
		if (fn[i] == ZBUD_NIL) {
			while (i--)
				zbud_frame_free_locked(zs->z, fn[i]);
			return ZBUD_NIL;
		}
		d = desc(zs, fn[i]);
		d->type = ZF_SPAN;
		d->kind = kind;
		d->span_next = ZBUD_NIL;
		if (i)
			desc(zs, fn[i - 1])->span_next = fn[i];
	}
	d = desc(zs, fn[0]);
	d->span_head = 1;
	d->span_class = (uint8_t)c;
	d->span_group = ZS_GROUP_NONE;
	if (c == ZS_HUGE) {
		d->span_owner = ZBUD_NO_OWNER;
	} else {
		unsigned int objs = zs->geom[c].objs;

		d->span_inuse = 0;
		d->span_free = 0;
		for (i = 0; i < objs; i++)
			*header(zs, fn[0], i) = ZS_FREE_TAG |
				(i + 1 < objs ? i + 1 : ZS_SLOT_NONE);
	}
	zbud_lru_add_locked(zs->z, &zs->lru[kind], fn[0]);
	zs->frames[kind] += frames;
	zs->z->data_frames[kind] += frames;
	return fn[0];
}

/* File a span with free objects under its fullness group. */
static void span_file_locked(struct zspool *zs, uint32_t head)
{
	struct zframe *d = desc(zs, head);
	struct zs_class *cls = class_of_span(zs, head);
	unsigned int objs = zs->geom[d->span_class].objs, g;

	if (d->span_inuse >= objs)
		return;
	g = d->span_inuse * ZS_NR_GROUPS / objs;
	zbud_list_add_locked(zs->z, &cls->group[g], head);
	d->span_group = (uint8_t)g;
	cls->free_objs += objs - d->span_inuse;
}

static void span_unfile_locked(struct zspool *zs, uint32_t head)
{
	struct zframe *d = desc(zs, head);
	struct zs_class *cls = class_of_span(zs, head);

	if (d->span_group == ZS_GROUP_NONE)
		return;
	zbud_list_del_locked(zs->z, &cls->group[d->span_group], head);
	d->span_group = ZS_GROUP_NONE;
	cls->free_objs -= zs->geom[d->span_class].objs - d->span_inuse;
}

static void lru_touch_locked(struct zspool *zs, uint32_t head)
{
	struct zlist *lru = &zs->lru[desc(zs, head)->kind];

	if (lru->head == head)
		return;
	zbud_lru_del_locked(zs->z, lru, head);
	zbud_lru_add_locked(zs->z, lru, head);
}

static unsigned int slot_take_locked(struct zspool *zs, uint32_t head,
				     uint32_t owner)
{
	struct zframe *d = desc(zs, head);
	unsigned int slot = d->span_free;
	uint32_t *hdr = header(zs, head, slot);

	d->span_free = (uint16_t)(*hdr & 0xffff);
	*hdr = owner;
	d->span_inuse++;
	return slot;
}

static void slot_put_locked(struct zspool *zs, uint32_t head,
			    unsigned int slot)
{
	struct zframe *d = desc(zs, head);

	*header(zs, head, slot) = ZS_FREE_TAG | d->span_free;
	d->span_free = (uint16_t)slot;
	d->span_inuse--;
}

/* The fullest span of a class with a free object, or ZBUD_NIL. */
static uint32_t class_fullest_locked(struct zs_class *cls)
{
	unsigned int g = ZS_NR_GROUPS;

	while (g--)
		if (cls->group[g].head != ZBUD_NIL)
			return cls->group[g].head;
	return ZBUD_NIL;
}

/* Room for @owner in a span of class @c that exists already. */
static int class_alloc_locked(struct zspool *zs, enum tmem_kind kind,
			      unsigned int c, uint32_t owner,
			      struct zbud_handle *h)
{
	uint32_t head = class_fullest_locked(&zs->cls[kind][c]);

	if (head == ZBUD_NIL)
		return -TMEM_E_FULL;
	span_unfile_locked(zs, head);
	h->frame = head;
	h->buddy = (uint8_t)slot_take_locked(zs, head, owner);
	span_file_locked(zs, head);
	zs->objs[kind]++;
	return 0;
}

/* ---- objects ------------------------------------------------------------ */

/**
 * zs_alloc_locked() - find room for a page of @size bytes
 * @zs: allocator
 * @kind: kind of the page; spans never mix kinds
 * @size: 1..TMEM_PAGE_SIZE bytes
 * @owner: reference to record with the object (for reclaim and
 *	   compaction); below ZS_FREE_TAG
 * @h: where the page goes
 *
 * The span becomes the most recently used of its kind.
 *
 * Return: 0, or -TMEM_E_FULL when no frame can be had.
 */
int zs_alloc_locked(struct zspool *zs, enum tmem_kind kind, unsigned int size,
		    uint32_t owner, struct zbud_handle *h)
{
	unsigned int c = zs_class_of(size);
	uint32_t head;

	if (c != ZS_HUGE && !class_alloc_locked(zs, kind, c, owner, h)) {
		lru_touch_locked(zs, h->frame);
		return 0;
	}
	head = span_new_locked(zs, kind, c);
	if (head == ZBUD_NIL)
		return -TMEM_E_FULL;
	if (c == ZS_HUGE) {
		desc(zs, head)->span_owner = owner;
		h->frame = head;
		h->buddy = 0;
		zs->objs[kind]++;
		return 0;
	}
	span_file_locked(zs, head);
	return class_alloc_locked(zs, kind, c, owner, h);
}

static void span_free_locked(struct zspool *zs, uint32_t head)
{
	zbud_lru_del_locked(zs->z, &zs->lru[desc(zs, head)->kind], head);
	span_release_frames_locked(zs, head);
}

/**
 * zs_free_locked() - free an object
 * @zs: allocator
 * @h: the object
 *
 * In a span under reclaim the object only loses its owner: reclaim frees
 * the span.  A span emptied here is given back at once.
 */
void zs_free_locked(struct zspool *zs, struct zbud_handle h)
{
	struct zframe *d = desc(zs, h.frame);
	enum tmem_kind kind = d->kind;

	if (d->span_class == ZS_HUGE) {
		d->span_owner = ZBUD_NO_OWNER;
		if (!d->under_reclaim) {
			span_free_locked(zs, h.frame);
			zs->objs[kind]--;
		}
		return;
	}
	if (d->under_reclaim) {
		*header(zs, h.frame, h.buddy) = ZBUD_NO_OWNER;
		return;
	}
	zs->objs[kind]--;
	if (d->isolated) {
		/* compaction refiles or frees it when done */
		slot_put_locked(zs, h.frame, h.buddy);
		return;
	}
	span_unfile_locked(zs, h.frame);
	slot_put_locked(zs, h.frame, h.buddy);
	if (!d->span_inuse)
		span_free_locked(zs, h.frame);
	else
		span_file_locked(zs, h.frame);
}

/*
 * Copy between @buf and the object at @h, in two pieces where the object
 * straddles two frames of its span.
 */
static void object_copy(const struct zspool *zs, struct zbud_handle h,
			uint8_t *buf, unsigned int len, bool to_object)
{
	const struct zframe *d = desc(zs, h.frame);
	unsigned int off = 0, k;

	if (d->span_class != ZS_HUGE)
		off = h.buddy * zs->geom[d->span_class].size + ZS_HDR_SIZE;
	k = off / TMEM_PAGE_SIZE;
	off %= TMEM_PAGE_SIZE;
	while (len) {
		uint8_t *p = zbud_frame_addr(zs->z, zs_span_frame(zs, h.frame,
							    k++)) + off;
		unsigned int n = TMEM_PAGE_SIZE - off;

		if (n > len)
			n = len;
		if (to_object)
			memcpy(p, buf, n);
		else
			memcpy(buf, p, n);
		buf += n;
		len -= n;
		off = 0;
	}
}

/**
 * zs_write() - copy a page's stored bytes into its object
 * @zs: allocator
 * @h: the object, owned by the caller
 * @src: bytes
 * @len: at most the size the object was allocated for
 */
void zs_write(const struct zspool *zs, struct zbud_handle h, const void *src,
	      unsigned int len)
{
	object_copy(zs, h, (uint8_t *)(uintptr_t)src, len, true);
}

/**
 * zs_read() - copy a page's stored bytes out of its object
 * @zs: allocator
 * @h: the object, owned by the caller
 * @dst: where they go
 * @len: at most the size the object was allocated for
 */
void zs_read(const struct zspool *zs, struct zbud_handle h, void *dst,
	     unsigned int len)
{
	object_copy(zs, h, dst, len, false);
}

/**
 * zs_handle_hot_locked() - is the start of the object likely in the CPU
 *			    cache? (see zbud_frame_hot_locked())
 * @zs: allocator
 * @h: the object
 */
bool zs_handle_hot_locked(const struct zspool *zs, struct zbud_handle h)
{
	const struct zframe *d = desc(zs, h.frame);
	unsigned int off = 0;

	if (d->span_class != ZS_HUGE)
		off = h.buddy * zs->geom[d->span_class].size;
	return zbud_frame_hot_locked(zs->z, zs_span_frame(zs, h.frame,
						off / TMEM_PAGE_SIZE));
}

/* ---- reclaim ------------------------------------------------------------ */

/**
 * zs_reclaim_start_locked() - take the least recently filled span of a kind
 *			       off every list
 * @zs: allocator
 * @kind: which LRU
 *
 * The caller detaches the span's owners (zs_detach_locked(), each under
 * its owner's lock) and then calls zs_reclaim_finish_locked(), or puts the
 * span back with zs_reclaim_abort_locked().
 *
 * Return: the span's first frame, or ZBUD_NIL if the kind has none.
 */
uint32_t zs_reclaim_start_locked(struct zspool *zs, enum tmem_kind kind)
{
	uint32_t head = zs->lru[kind].tail;

	if (head == ZBUD_NIL)
		return head;
	zbud_lru_del_locked(zs->z, &zs->lru[kind], head);
	if (desc(zs, head)->span_class != ZS_HUGE)
		span_unfile_locked(zs, head);
	desc(zs, head)->under_reclaim = 1;
	return head;
}

/**
 * zs_owner_locked() - the owner of object @slot of a span
 * @zs: allocator
 * @head: the span's first frame
 * @slot: 0..zs_span_objs() - 1
 *
 * Return: the owner reference, or ZBUD_NO_OWNER (free, or detached).
 */
uint32_t zs_owner_locked(const struct zspool *zs, uint32_t head,
			 unsigned int slot)
{
	uint32_t owner;

	if (desc(zs, head)->span_class == ZS_HUGE)
		return desc(zs, head)->span_owner;
	owner = *header(zs, head, slot);
	return owner >= ZS_FREE_TAG ? ZBUD_NO_OWNER : owner;
}

/**
 * zs_detach_locked() - take the owner off object @slot of a span under
 *			reclaim
 * @zs: allocator
 * @head: the span's first frame
 * @slot: the object
 *
 * Return: the owner it had, or ZBUD_NO_OWNER.
 */
uint32_t zs_detach_locked(struct zspool *zs, uint32_t head, unsigned int slot)
{
	uint32_t owner = zs_owner_locked(zs, head, slot);

	if (owner == ZBUD_NO_OWNER)
		return owner;
	if (desc(zs, head)->span_class == ZS_HUGE)
		desc(zs, head)->span_owner = ZBUD_NO_OWNER;
	else
		*header(zs, head, slot) = ZBUD_NO_OWNER;
	return owner;
}

/* Objects allocated in a span under reclaim (detached ones included). */
static unsigned int span_objs_inuse(const struct zspool *zs, uint32_t head)
{
	const struct zframe *d = desc(zs, head);

	return d->span_class == ZS_HUGE ? 1 : d->span_inuse;
}

/**
 * zs_reclaim_finish_locked() - free a reclaimed span whose owners are gone
 * @zs: allocator
 * @head: span from zs_reclaim_start_locked()
 */
void zs_reclaim_finish_locked(struct zspool *zs, uint32_t head)
{
	zs->objs[desc(zs, head)->kind] -= span_objs_inuse(zs, head);
	span_release_frames_locked(zs, head);
}

/**
 * zs_reclaim_abort_locked() - put back a span whose reclaim failed
 * @zs: allocator
 * @head: span from zs_reclaim_start_locked()
 *
 * Objects whose owners went away meanwhile are freed now; the span goes to
 * the head of its LRU, so that a span that cannot be written is not the
 * very next one tried.
 */
void zs_reclaim_abort_locked(struct zspool *zs, uint32_t head)
{
	struct zframe *d = desc(zs, head);
	enum tmem_kind kind = d->kind;
	unsigned int slot, objs = zs_span_objs(zs, head);

	d->under_reclaim = 0;
	if (d->span_class == ZS_HUGE) {
		if (d->span_owner == ZBUD_NO_OWNER) {
			zs_reclaim_finish_locked(zs, head);
			return;
		}
		zbud_lru_add_locked(zs->z, &zs->lru[kind], head);
		return;
	}
	for (slot = 0; slot < objs; slot++)
		if (*header(zs, head, slot) == ZBUD_NO_OWNER) {
			slot_put_locked(zs, head, slot);
			zs->objs[kind]--;
		}
	if (!d->span_inuse) {
		span_release_frames_locked(zs, head);
		return;
	}
	zbud_lru_add_locked(zs->z, &zs->lru[kind], head);
	span_file_locked(zs, head);
}

/* ---- compaction --------------------------------------------------------- */

/*
 * The emptiest span of a class, if moving its objects into the class's
 * other spans with room would empty it; taken off the lists and the LRU.
 */
static uint32_t compact_source_locked(struct zspool *zs, enum tmem_kind kind,
				      unsigned int c)
{
	struct zs_class *cls = &zs->cls[kind][c];
	unsigned int g;
	uint32_t head;
	struct zframe *d;

	for (g = 0; g < ZS_NR_GROUPS; g++)
		if (cls->group[g].head != ZBUD_NIL)
			break;
	if (g == ZS_NR_GROUPS)
		return ZBUD_NIL;
	head = cls->group[g].tail;
	d = desc(zs, head);
	/* free objects elsewhere: all the class's, less this span's own */
	if (cls->free_objs - (zs->geom[c].objs - d->span_inuse) <
	    d->span_inuse)
		return ZBUD_NIL;
	span_unfile_locked(zs, head);
	zbud_lru_del_locked(zs->z, &zs->lru[kind], head);
	d->isolated = 1;
	return head;
}

/*
 * Move object @slot of the isolated span @src to another span of its
 * class, under its owner's lock.  Drops and retakes zbud->lock.
 *
 * Return: false if the class had no room left (nothing moved).
 */
static bool compact_move_locked(struct zspool *zs, uint32_t src,
				unsigned int slot, const struct zs_mover *m,
				void *arg)
{
	struct zbud *z = zs->z;
	uint32_t owner = zs_owner_locked(zs, src, slot);
	enum tmem_kind kind = desc(zs, src)->kind;
	unsigned int c = desc(zs, src)->span_class;
	uint8_t buf[TMEM_PAGE_SIZE];
	struct zbud_handle from = { .frame = src, .buddy = (uint8_t)slot };
	struct zbud_handle to;
	pthread_mutex_t *lock;
	bool ok = true;

	if (owner == ZBUD_NO_OWNER)
		return true;
	lock = m->owner_lock_locked(arg, owner);
	pthread_mutex_unlock(&z->lock);
	pthread_mutex_lock(lock);
	pthread_mutex_lock(&z->lock);
	/* freed meanwhile? nothing can be allocated in an isolated span */
	if (zs_owner_locked(zs, src, slot) != owner)
		goto out;
	if (class_alloc_locked(zs, kind, c, owner, &to)) {
		ok = false;
		goto out;
	}
	zs_read(zs, from, buf, zs->geom[c].size - ZS_HDR_SIZE);
	zs_write(zs, to, buf, zs->geom[c].size - ZS_HDR_SIZE);
	m->moved_locked(arg, owner, to);
	slot_put_locked(zs, src, slot);
	zs->objs[kind]--;
	zs->moved++;
out:
	pthread_mutex_unlock(lock);
	return ok;
}

/* Empty @src into its class's fuller spans, or as far as they have room. */
static unsigned int compact_span_locked(struct zspool *zs, uint32_t src,
					const struct zs_mover *m, void *arg)
{
	struct zframe *d = desc(zs, src);
	enum tmem_kind kind = d->kind;
	unsigned int slot, objs = zs_span_objs(zs, src), frames;

	for (slot = 0; slot < objs && d->span_inuse; slot++)
		if (!compact_move_locked(zs, src, slot, m, arg))
			break;
	d->isolated = 0;
	if (d->span_inuse) {
		zbud_lru_add_locked(zs->z, &zs->lru[kind], src);
		span_file_locked(zs, src);
		return 0;
	}
	frames = zs_span_frames(zs, src);
	span_release_frames_locked(zs, src);
	return frames;
}

/**
 * zs_compact() - free the spans that random frees left sparse
 * @zs: allocator
 * @kind: which kind's classes
 * @m: how to reach and update the owners of the objects moved
 * @arg: passed to @m
 *
 * Class by class, moves the objects of the emptiest span into the fullest
 * ones while that empties it.  Each object moves under its owner's lock
 * (taken before zbud->lock, in the store's lock order), so an owner that
 * holds its lock sees its object stay put.  The caller holds no lock.
 *
 * Return: frames freed.
 */
uint64_t zs_compact(struct zspool *zs, enum tmem_kind kind,
		    const struct zs_mover *m, void *arg)
{
	uint64_t freed = 0;
	unsigned int c;

	pthread_mutex_lock(&zs->z->lock);
	for (c = 0; c < ZS_NR_CLASSES; c++) {
		uint32_t src;

		while ((src = compact_source_locked(zs, kind, c)) != ZBUD_NIL) {
			unsigned int n = compact_span_locked(zs, src, m, arg);

			if (!n)
				break;
			freed += n;
		}
	}
	zs->compacted += freed;
	pthread_mutex_unlock(&zs->z->lock);
	return freed;
}

/**
 * zs_free_bytes_locked() - room in a kind's spans not holding objects
 * @zs: allocator
 * @kind: which kind
 *
 * What compaction could at best give back, less the spans' tail waste.
 */
uint64_t zs_free_bytes_locked(const struct zspool *zs, enum tmem_kind kind)
{
	uint64_t bytes = 0;
	unsigned int c;

	for (c = 0; c < ZS_NR_CLASSES; c++)
		bytes += zs->cls[kind][c].free_objs * zs->geom[c].size;
	return bytes;
}

/* ---- checks ------------------------------------------------------------- */

static int span_check_locked(const struct zspool *zs, uint32_t head,
			     uint64_t *objs)
{
	const struct zframe *d = desc(zs, head);
	const struct zs_geometry *cls;
	unsigned int used = 0, free = 0, slot, n;
	uint16_t at;

	if (d->type != ZF_SPAN || !d->span_head)
		return -1;
	if (d->span_class == ZS_HUGE) {
		*objs += 1;
		return 0;
	}
	cls = &zs->geom[d->span_class];
	for (slot = 0; slot < cls->objs; slot++)
		if (*header(zs, head, slot) < ZS_FREE_TAG ||
		    *header(zs, head, slot) == ZBUD_NO_OWNER)
			used++;
	for (at = d->span_free, n = 0; at != ZS_SLOT_NONE; n++) {
		uint32_t hdr;

		if (at >= cls->objs || n > cls->objs)
			return -1;
		hdr = *header(zs, head, at);
		if ((hdr & 0xffff0000u) != ZS_FREE_TAG)
			return -1;
		free++;
		at = (uint16_t)(hdr & 0xffff);
	}
	if (used != d->span_inuse || used + free != cls->objs || !used)
		return -1;
	if ((d->span_group == ZS_GROUP_NONE) != (used == cls->objs))
		return -1;
	if (d->span_group != ZS_GROUP_NONE &&
	    d->span_group != used * ZS_NR_GROUPS / cls->objs)
		return -1;
	*objs += used;
	return 0;
}

/**
 * zs_check_locked() - check the invariants of one kind's spans (for tests)
 * @zs: allocator
 * @kind: which kind
 *
 * Walks the LRU (every span not under reclaim or compaction): headers,
 * free lists, fullness groups and counters must agree.
 *
 * Return: 0, or -1 at the first disagreement.
 */
int zs_check_locked(const struct zspool *zs, enum tmem_kind kind)
{
	uint64_t objs = 0, frames = 0, free_objs[ZS_NR_CLASSES] = { 0 };
	uint32_t head;
	unsigned int c;

	for (head = zs->lru[kind].head; head != ZBUD_NIL;
	     head = desc(zs, head)->lru_next) {
		const struct zframe *d = desc(zs, head);

		if (span_check_locked(zs, head, &objs) || d->kind != kind)
			return -1;
		frames += zs_span_frames(zs, head);
		if (d->span_class != ZS_HUGE)
			free_objs[d->span_class] +=
				zs->geom[d->span_class].objs -
				d->span_inuse;
	}
	for (c = 0; c < ZS_NR_CLASSES; c++)
		if (free_objs[c] != zs->cls[kind][c].free_objs)
			return -1;
	return objs == zs->objs[kind] && frames == zs->frames[kind] ? 0 : -1;
}

/* ---- the allocator interface (zalloc.h): a unit is a span ------------- */

static int zs_op_alloc(void *a, enum tmem_kind kind, unsigned int size,
		       uint32_t owner, struct zbud_handle *h)
{
	return zs_alloc_locked(a, kind, size, owner, h);
}

static void zs_op_free(void *a, struct zbud_handle h)
{
	zs_free_locked(a, h);
}

static bool zs_op_hot(const void *a, struct zbud_handle h)
{
	return zs_handle_hot_locked(a, h);
}

/* Objects are 16-aligned, not line-aligned: no streaming copy. */
static void zs_op_write(const void *a, struct zbud_handle h, const void *src,
			unsigned int len, bool hot)
{
	(void)hot;
	zs_write(a, h, src, len);
}

static void zs_op_read(const void *a, struct zbud_handle h, void *dst,
		       unsigned int len)
{
	zs_read(a, h, dst, len);
}

static uint32_t zs_op_reclaim_start(void *a, enum tmem_kind kind)
{
	return zs_reclaim_start_locked(a, kind);
}

static unsigned int zs_op_unit_objs(const void *a, uint32_t unit)
{
	return zs_span_objs(a, unit);
}

static unsigned int zs_op_unit_frames(const void *a, uint32_t unit)
{
	return zs_span_frames(a, unit);
}

static uint32_t zs_op_unit_frame(const void *a, uint32_t unit, unsigned int k)
{
	return zs_span_frame(a, unit, k);
}

static void zs_op_unit_extent(const void *a, uint32_t unit, unsigned int i,
			      unsigned int *off, unsigned int *len)
{
	*off = zs_object_offset(a, unit, i);
	*len = zs_span_object_bytes(a, unit);
}

static unsigned int zs_op_obj_hdr(unsigned int size)
{
	return zs_class_of(size) == ZS_HUGE ? 0 : ZS_HDR_SIZE;
}

static uint32_t zs_op_owner(const void *a, uint32_t unit, unsigned int i)
{
	return zs_owner_locked(a, unit, i);
}

static uint32_t zs_op_detach(void *a, uint32_t unit, unsigned int i)
{
	return zs_detach_locked(a, unit, i);
}

static void zs_op_reclaim_finish(void *a, uint32_t unit)
{
	zs_reclaim_finish_locked(a, unit);
}

static void zs_op_reclaim_abort(void *a, uint32_t unit)
{
	zs_reclaim_abort_locked(a, unit);
}

static uint64_t zs_op_compact(void *a, enum tmem_kind kind,
			      const struct zs_mover *m, void *arg)
{
	return zs_compact(a, kind, m, arg);
}

const struct zalloc_ops zs_zalloc_ops = {
	.name = "zsmalloc",
	.span_frames_max = ZS_SPAN_FRAMES_MAX,
	.alloc_locked = zs_op_alloc,
	.free_locked = zs_op_free,
	.hot_locked = zs_op_hot,
	.write = zs_op_write,
	.read = zs_op_read,
	.reclaim_start_locked = zs_op_reclaim_start,
	.unit_objs = zs_op_unit_objs,
	.unit_frames = zs_op_unit_frames,
	.unit_frame = zs_op_unit_frame,
	.unit_extent = zs_op_unit_extent,
	.obj_bytes = zs_object_bytes,
	.obj_hdr = zs_op_obj_hdr,
	.owner_locked = zs_op_owner,
	.detach_locked = zs_op_detach,
	.reclaim_finish_locked = zs_op_reclaim_finish,
	.reclaim_abort_locked = zs_op_reclaim_abort,
	.compact = zs_op_compact,
};
