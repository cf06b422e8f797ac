// SPDX-License-Identifier: BSD-3-Clause
/*
 * store_objects.c - the stripes of a pool, the object trees in them and
 * the entries (stored pages) of each object.
 *
 * Everything here runs under the bucket lock of the stripe concerned
 * (lock order: see store.c).
 */
#include <string.h>

#include "hash.h"
#include "store_internal.h"
#include "swapimg.h"

/* ---- pools, buckets, objects ------------------------------------------ */

/* The object tree of a stripe that an id hashing to @h is in. */
static unsigned int chain_of(uint64_t h)
{
	return (unsigned int)(h / POOL_BUCKETS % BUCKET_CHAINS);
}

/**
 * store_pool_get() - a live pool by id
 * @s: store
 * @pool_id: pool
 *
 * Return: the pool, or NULL if there is none (it may go away later: see
 * store_op_lock()).
 */
struct tmem_pool *store_pool_get(struct tmem_store *s, uint32_t pool_id)
{
	struct tmem_pool *p;

	if (pool_id >= s->cfg.max_pools)
		return NULL;
	p = atomic_load_explicit(&s->pools[pool_id], memory_order_acquire);
	if (!p || !atomic_load_explicit(&p->alive, memory_order_acquire))
		return NULL;
	return p;
}

/**
 * store_op_lock() - lock the stripe of an object for an op
 * @p: pool from store_pool_get()
 * @oid: object id
 * @op: filled in
 *
 * Return: 0 with @op->b locked (op_unlock() drops it), or
 * -TMEM_E_BAD_POOL if the pool went away meanwhile.
 */
int store_op_lock(struct tmem_pool *p, const struct tmem_oid *oid,
		  struct op *op)
{
	uint64_t h = tmem_oid_hash(oid);

	op->pool = p;
	op->b = &p->bucket[h % POOL_BUCKETS];
	op->chain = chain_of(h);
	pthread_mutex_lock(&op->b->lock);
	if (!atomic_load_explicit(&p->alive, memory_order_acquire)) {
		pthread_mutex_unlock(&op->b->lock);
		return -TMEM_E_BAD_POOL;
	}
	op->kind = pool_kind(p);
	return 0;
}

static bool oid_equal(const struct tmem_oid *a, const struct tmem_oid *b)
{
	return a->id[0] == b->id[0] && a->id[1] == b->id[1] &&
	       a->id[2] == b->id[2];
}

/* The object trees' search order. */
static int oid_cmp(const struct tmem_oid *a, const struct tmem_oid *b)
{
	unsigned int i;

	for (i = 0; i < 3; i++)
		if (a->id[i] != b->id[i])
			return a->id[i] < b->id[i] ? -1 : 1;
	return 0;
}

/*
 * The object trees' heap order.  Every word of the id goes through a
 * keyed step, so ids chosen to tie here need the store's secret.
 */
static uint64_t object_rank(const struct tmem_store *s,
			    const struct tmem_object *obj)
{
	uint64_t h = tmem_mix64(obj->oid.id[2] ^ s->tree_key);

	h = tmem_mix64(h ^ obj->oid.id[1]);
	return tmem_mix64(h ^ obj->oid.id[0] ^ (s->tree_key >> 1));
}

/* An object's slab_ref() plus one, so that 0 is no object. */
static uint32_t object_ref(const struct tmem_store *s,
			   const struct tmem_object *obj)
{
	return slab_ref(&s->zbud, obj, sizeof(*obj)) + 1;
}

static uint32_t *object_chain(struct tmem_bucket *b,
			      const struct tmem_oid *oid)
{
	return &b->chain[chain_of(tmem_oid_hash(oid))];
}

/* The link (a chain root or a child field) that refers to @oid, or NULL. */
static uint32_t *object_link(const struct tmem_store *s, uint32_t *link,
			     const struct tmem_oid *oid)
{
	struct tmem_object *obj;
	int c;

	while ((obj = object_of_ref(s, *link))) {
		c = oid_cmp(oid, &obj->oid);
		if (!c)
			return link;
		link = c < 0 ? &obj->left : &obj->right;
	}
	return NULL;
}

/**
 * store_object_find() - the object of an id in the op's stripe
 * @s: store
 * @op: locked op
 * @oid: object id
 *
 * Pages of one object come in runs (a file read or written back, a swap
 * area), so the stripe remembers the object found last.
 *
 * Return: the object, or NULL.
 */
struct tmem_object *store_object_find(const struct tmem_store *s,
				      const struct op *op,
				      const struct tmem_oid *oid)
{
	struct tmem_object *obj = op->b->recent;
	uint32_t *link;

	if (obj && oid_equal(&obj->oid, oid))
		return obj;
	link = object_link(s, &op->b->chain[op->chain], oid);
	if (!link)
		return NULL;
	obj = object_of_ref(s, *link);
	op->b->recent = obj;
	return obj;
}

/*
 * Insert @obj where its rank puts it: below the higher-ranked objects on
 * its search path, the rest of that path split around its id into its
 * two subtrees.
 */
static void tree_insert(const struct tmem_store *s, uint32_t *link,
			struct tmem_object *obj)
{
	uint64_t rank = object_rank(s, obj);
	struct tmem_object *cur;
	uint32_t *lo, *hi, ref;

	while ((cur = object_of_ref(s, *link)) && object_rank(s, cur) >= rank)
		link = oid_cmp(&obj->oid, &cur->oid) < 0 ? &cur->left :
							  &cur->right;
	ref = *link;
	lo = &obj->left;
	hi = &obj->right;
	while ((cur = object_of_ref(s, ref))) {
		if (oid_cmp(&cur->oid, &obj->oid) < 0) {
			*lo = ref;
			lo = &cur->right;
			ref = cur->right;
		} else {
			*hi = ref;
			hi = &cur->left;
			ref = cur->left;
		}
	}
	*lo = 0;
	*hi = 0;
	*link = object_ref(s, obj);
}

/* Replace the object at *@link by the merge of its two subtrees. */
static void tree_remove(const struct tmem_store *s, uint32_t *link)
{
	struct tmem_object *obj = object_of_ref(s, *link), *a, *b;
	uint32_t lo = obj->left, hi = obj->right;

	while ((a = object_of_ref(s, lo)) && (b = object_of_ref(s, hi))) {
		if (object_rank(s, a) >= object_rank(s, b)) {
			*link = lo;
			link = &a->right;
			lo = a->right;
		} else {
			*link = hi;
			link = &b->left;
			hi = b->left;
		}
	}
	*link = lo ? lo : hi;
}

/**
 * store_object_after() - next object of a tree in id order
 * @s: store
 * @root: the tree (a chain of a locked stripe)
 * @after: id to start after, or NULL for the first
 *
 * Return: the object with the least id above @after, or NULL.
 */
struct tmem_object *store_object_after(const struct tmem_store *s,
				       uint32_t root,
				       const struct tmem_oid *after)
{
	struct tmem_object *cur, *best = NULL;

	while ((cur = object_of_ref(s, root))) {
		if (!after || oid_cmp(&cur->oid, after) > 0) {
			best = cur;
			root = cur->left;
		} else {
			root = cur->right;
		}
	}
	return best;
}

static int tree_check(const struct tmem_store *s, uint32_t ref,
		      const struct tmem_oid *lo, const struct tmem_oid *hi,
		      uint64_t max_rank, uint64_t *count)
{
	struct tmem_object *obj = object_of_ref(s, ref);
	uint64_t rank;
	int l, r;

	if (!obj)
		return 0;
	rank = object_rank(s, obj);
	if ((lo && oid_cmp(&obj->oid, lo) <= 0) ||
	    (hi && oid_cmp(&obj->oid, hi) >= 0) || rank > max_rank)
		return -1;
	(*count)++;
	l = tree_check(s, obj->left, lo, &obj->oid, rank, count);
	r = tree_check(s, obj->right, &obj->oid, hi, rank, count);
	if (l < 0 || r < 0)
		return -1;
	return 1 + (l > r ? l : r);
}

/**
 * store_object_tree_check() - check one object tree of a stripe (tests)
 * @s: store
 * @b: stripe, locked or idle
 * @chain: which tree, < BUCKET_CHAINS
 * @count: incremented by the objects found
 *
 * Return: the tree's height, or -1 if an object is out of id or rank order.
 */
int store_object_tree_check(const struct tmem_store *s,
			    const struct tmem_bucket *b, unsigned int chain,
			    uint64_t *count)
{
	return tree_check(s, b->chain[chain], NULL, NULL, UINT64_MAX, count);
}

/**
 * store_object_new() - add an empty object to the op's stripe
 * @s: store
 * @op: locked op
 * @oid: its id, not in the stripe yet
 *
 * Return: the object, or NULL (no memory).
 */
struct tmem_object *store_object_new(struct tmem_store *s, const struct op *op,
				     const struct tmem_oid *oid)
{
	struct tmem_object *obj = tmem_cache_alloc(&s->objects[op->kind]);

	if (!obj)
		return NULL;
	obj->oid = *oid;
	obj->bucket = op->b;
	tree_insert(s, &op->b->chain[op->chain], obj);
	op->b->recent = obj;
	return obj;
}

static void object_unlink(const struct tmem_store *s, struct tmem_object *obj)
{
	struct tmem_bucket *b = obj->bucket;

	if (b->recent == obj)
		b->recent = NULL;
	tree_remove(s, object_link(s, object_chain(b, &obj->oid), &obj->oid));
}

/**
 * store_object_free_if_empty() - free an object that has no page left
 * @s: store
 * @obj: object; its stripe is locked
 */
void store_object_free_if_empty(struct tmem_store *s, struct tmem_object *obj)
{
	if (obj->nr_pages)
		return;
	object_unlink(s, obj);
	tmem_cache_free(&s->objects[pool_kind(obj->bucket->pool)], obj);
}

/* ---- entries ------------------------------------------------------------ */

static struct radix_node *node_alloc(void *cache)
{
	return tmem_cache_alloc(cache);
}

static void node_free(void *cache, struct radix_node *node)
{
	tmem_cache_free(cache, node);
}

/**
 * store_node_allocator() - the radix node allocator of a pool kind
 * @s: store
 * @kind: pool kind
 */
struct radix_alloc store_node_allocator(struct tmem_store *s,
					enum tmem_kind kind)
{
	struct radix_alloc a = {
		.alloc = node_alloc,
		.free = node_free,
		.opaque = &s->nodes[kind],
	};

	return a;
}

/**
 * store_entry_account() - count an entry in or out of its stripe's stats
 * @b: the entry's bucket, locked
 * @e: the entry, in the state to count
 * @sign: 1 to count it in, -1 to count it out
 *
 * Writeback counts an entry out, changes its state, and counts it in.
 */
void store_entry_account(struct tmem_bucket *b, const struct tmem_entry *e,
			 int sign)
{
	struct bucket_stats *st = &b->stats;

	e->obj->nr_pages += sign;
	st->stored_pages += sign;
	switch (e->state) {
	case ENTRY_COMPRESSED:
		st->compressed_bytes += sign * (int64_t)e->size;
		break;
	case ENTRY_RAW:
		st->raw_pages += sign;
		break;
	case ENTRY_FILLED:
		if (e->where)
			st->same_pages += sign;
		else
			st->zero_pages += sign;
		e->obj->nr_filled += sign;
		break;
	case ENTRY_IMAGE:
	case ENTRY_IMAGE_RAW:
		st->image_pages += sign;
		break;
	}
}

/**
 * store_entry_drop() - free an entry already removed from its object's index
 * @s: store
 * @b: the entry's bucket, locked
 * @e: the entry
 * @detached: reclaim detached its buddy already
 *
 * Its buddy is detached under zbud->lock before the entry memory goes (see
 * store_reclaim.c), its half of an image slot freed.
 */
void store_entry_drop(struct tmem_store *s, struct tmem_bucket *b,
		      struct tmem_entry *e, bool detached)
{
	if (entry_has_frame(e) && !detached) {
		pthread_mutex_lock(&s->zbud.lock);
		s->alloc->free_locked(s->alloc_priv, entry_handle(e));
		pthread_mutex_unlock(&s->zbud.lock);
	} else if (e->state == ENTRY_IMAGE || e->state == ENTRY_IMAGE_RAW) {
		store_image_put(s, e);
	}
	store_entry_account(b, e, -1);
	tmem_cache_free(&s->entries[pool_kind(b->pool)], e);
}

/**
 * store_page_remove_entry() - remove one page of an object
 * @s: store
 * @op: locked op
 * @obj: the object
 * @index: page index
 * @detached: its buddy was already freed (by a put that replaced it and
 *	      then failed)
 *
 * Return: 1 if there was a page, else 0.
 */
int store_page_remove_entry(struct tmem_store *s, const struct op *op,
			    struct tmem_object *obj, uint64_t index,
			    bool detached)
{
	struct radix_alloc a = store_node_allocator(s, op->kind);
	struct radix_item *it = radix_delete(&obj->root, index, &a);

	if (!it)
		return 0;
	store_entry_drop(s, op->b, (struct tmem_entry *)it, detached);
	store_object_free_if_empty(s, obj);
	return 1;
}

/**
 * store_page_remove() - remove one page of an object
 * @s: store
 * @op: locked op
 * @obj: the object
 * @index: page index
 *
 * Return: 1 if there was a page, else 0.
 */
int store_page_remove(struct tmem_store *s, const struct op *op,
		      struct tmem_object *obj, uint64_t index)
{
	return store_page_remove_entry(s, op, obj, index, false);
}

struct drain_ctx {
	struct tmem_store *s;
	struct tmem_bucket *b;
	uint64_t pages;
};

static void drain_one(struct radix_item *it, void *arg)
{
	struct drain_ctx *d = arg;

	store_entry_drop(d->s, d->b, (struct tmem_entry *)it, false);
	d->pages++;
}

/**
 * store_object_drain() - remove every page of an object and the object
 * @s: store
 * @b: the object's bucket, locked
 * @obj: the object
 *
 * Return: pages removed.
 */
uint64_t store_object_drain(struct tmem_store *s, struct tmem_bucket *b,
			    struct tmem_object *obj)
{
	struct radix_alloc a = store_node_allocator(s, pool_kind(b->pool));
	struct drain_ctx d = { .s = s, .b = b, .pages = 0 };

	radix_drain(&obj->root, &a, drain_one, &d);
	store_object_free_if_empty(s, obj);
	return d.pages;
}
