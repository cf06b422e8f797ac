// SPDX-License-Identifier: BSD-3-Clause
/*
 * slab.c - fixed-size metadata objects carved out of store pageframes.
 *
 * A slab frame keeps its free objects on a list threaded through the
 * objects themselves as 16-bit offsets within the frame (slab_free of the
 * frame descriptor is the head) and counts the objects in use; a frame
 * whose last object is freed goes back to zbud at once, which is what lets
 * eviction of ephemeral pages give back their metadata frames too.
 */
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "lock.h"
#include "slab.h"

struct free_obj {
	uint16_t next;
};

/* Shard of the calling thread: threads are dealt shards in turn. */
static unsigned int this_shard(void)
{
	static atomic_uint next_shard;
	static _Thread_local unsigned int shard = UINT_MAX;

	if (shard == UINT_MAX)
		shard = atomic_fetch_add_explicit(&next_shard, 1,
						  memory_order_relaxed) %
			TMEM_CACHE_SHARDS;
	return shard;
}

/**
 * tmem_cache_init() - set up an empty cache
 * @c: cache
 * @z: frame source
 * @size: object size; rounded up to 8
 * @kind: pool kind the frames are charged to
 */
void tmem_cache_init(struct tmem_cache *c, struct zbud *z, size_t size,
		     enum tmem_kind kind)
{
	unsigned int i;

	memset(c, 0, sizeof(*c));
	c->zbud = z;
	c->size = (unsigned int)((size + 7) & ~(size_t)7);
	c->per_frame = TMEM_PAGE_SIZE / c->size;
	c->kind = kind;
	for (i = 0; i < TMEM_CACHE_SHARDS; i++) {
		tmem_mutex_init(&c->shard[i].lock);
		zbud_list_init(&c->shard[i].partial);
	}
}

/**
 * tmem_cache_fini() - forget the cache; its frames are freed with the
 *		       store's zbud
 * @c: cache
 */
void tmem_cache_fini(struct tmem_cache *c)
{
	unsigned int i;

	for (i = 0; i < TMEM_CACHE_SHARDS; i++)
		pthread_mutex_destroy(&c->shard[i].lock);
}

/**
 * tmem_cache_objects() - objects in use
 * @c: cache
 *
 * Return: the sum over shards; each shard's count is read under its lock.
 */
uint64_t tmem_cache_objects(struct tmem_cache *c)
{
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; i < TMEM_CACHE_SHARDS; i++) {
		pthread_mutex_lock(&c->shard[i].lock);
		n += c->shard[i].objects;
		pthread_mutex_unlock(&c->shard[i].lock);
	}
	return n;
}

static uint32_t obj_frame(const struct tmem_cache *c, const void *obj)
{
	return (uint32_t)(((const uint8_t *)obj - c->zbud->base) >> 12);
}

static uint32_t slab_grow(struct tmem_cache *c, unsigned int shard)
{
	struct zbud *z = c->zbud;
	struct zbud_populate pop;
	uint16_t head = ZBUD_SLAB_END;
	uint8_t *mem;
	uint32_t fn;
	unsigned int i;

	pthread_mutex_lock(&z->lock);
	fn = zbud_frame_alloc_locked(z, c->kind);
	if (fn != ZBUD_NIL) {
		z->desc[fn].type = ZF_SLAB;
		z->desc[fn].kind = c->kind;
		z->slab_frames[c->kind]++;
	}
	zbud_take_populate_locked(z, &pop);
	pthread_mutex_unlock(&z->lock);
	zbud_populate(z, &pop);
	if (fn == ZBUD_NIL)
		return fn;
	mem = zbud_frame_addr(z, fn);
	for (i = c->per_frame; i-- > 0;) {
		struct free_obj *o = (struct free_obj *)(mem + i * c->size);

		o->next = head;
		head = (uint16_t)(i * c->size);
	}
	z->desc[fn].slab_free = head;
	z->desc[fn].slab_inuse = 0;
	z->desc[fn].slab_shard = (uint16_t)shard;
	zbud_list_add_locked(z, &c->shard[shard].partial, fn);
	return fn;
}

/**
 * tmem_cache_alloc() - take a zeroed object
 * @c: cache
 *
 * The caller has reserved room for a new frame (see store.c): this never
 * checks the store's limit.
 *
 * Return: the object, or NULL when no frame could be had.
 */
void *tmem_cache_alloc(struct tmem_cache *c)
{
	unsigned int shard = this_shard();
	struct tmem_cache_shard *sh = &c->shard[shard];
	struct zframe *f;
	struct free_obj *o;
	uint32_t fn;

	pthread_mutex_lock(&sh->lock);
	fn = sh->partial.head;
	if (fn == ZBUD_NIL)
		fn = slab_grow(c, shard);
	if (fn == ZBUD_NIL) {
		pthread_mutex_unlock(&sh->lock);
		return NULL;
	}
	f = &c->zbud->desc[fn];
	o = (struct free_obj *)(zbud_frame_addr(c->zbud, fn) + f->slab_free);
	f->slab_free = o->next;
	if (++f->slab_inuse == c->per_frame)
		zbud_list_del_locked(c->zbud, &sh->partial, fn);
	sh->objects++;
	pthread_mutex_unlock(&sh->lock);
	memset(o, 0, c->size);
	return o;
}

/**
 * tmem_cache_free() - give an object back, to the shard of its frame
 * @c: the cache it came from
 * @obj: object
 */
void tmem_cache_free(struct tmem_cache *c, void *obj)
{
	struct zbud *z = c->zbud;
	uint32_t fn = obj_frame(c, obj);
	struct zframe *f = &z->desc[fn];
	struct tmem_cache_shard *sh = &c->shard[f->slab_shard];
	struct free_obj *o = obj;

	pthread_mutex_lock(&sh->lock);
	o->next = f->slab_free;
	f->slab_free = (uint16_t)((uint8_t *)obj - zbud_frame_addr(z, fn));
	if (f->slab_inuse-- == c->per_frame)
		zbud_list_add_locked(z, &sh->partial, fn);
	sh->objects--;
	if (f->slab_inuse == 0) {
		zbud_list_del_locked(z, &sh->partial, fn);
		pthread_mutex_lock(&z->lock);
		z->slab_frames[c->kind]--;
		zbud_frame_free_locked(z, fn);
		pthread_mutex_unlock(&z->lock);
	}
	pthread_mutex_unlock(&sh->lock);
}
