// SPDX-License-Identifier: BSD-3-Clause
/*
 * radix.c - page index of one tmem object.
 *
 * Dense objects (a swap area, a file read from the start) cost about 9 bytes
 * of node per page; an object with one page costs nothing beyond its root.
 * Every node an insert needs is allocated before the tree is touched, so a
 * failed allocation leaves the tree as it was.
 */
#include <stddef.h>

#include "radix.h"

static unsigned int height_for(uint64_t index)
{
	unsigned int h = 1;

	while (h < RADIX_MAX_HEIGHT && (index >> (RADIX_SHIFT * h)))
		h++;
	return h;
}

static unsigned int slot_of(uint64_t index, unsigned int level)
{
	return (unsigned int)(index >> (RADIX_SHIFT * level)) &
	       (RADIX_SLOTS - 1);
}

/* The leaf node that holds @index's slot, or NULL (also for height 0). */
static struct radix_node *leaf_of(const struct radix_root *root,
				  uint64_t index)
{
	struct radix_node *node = root->ptr;
	unsigned int level;

	if (!node || !root->height || height_for(index) > root->height)
		return NULL;
	for (level = root->height - 1; level > 0 && node; level--)
		node = node->slot[slot_of(index, level)];
	return node;
}

/**
 * radix_slot() - where the item at @index is stored
 * @root: tree
 * @index: page index
 *
 * An item of the same index may be stored there in its place: the tree's
 * shape does not change.
 *
 * Return: the slot, or NULL if there is no item at @index.
 */
void **radix_slot(struct radix_root *root, uint64_t index)
{
	struct radix_node *leaf;

	if (root->ptr && !root->height)
		return ((struct radix_item *)root->ptr)->index == index ?
		       &root->ptr : NULL;
	leaf = leaf_of(root, index);
	if (!leaf || !leaf->slot[slot_of(index, 0)])
		return NULL;
	return &leaf->slot[slot_of(index, 0)];
}

/**
 * radix_lookup() - find the item at @index
 * @root: tree
 * @index: page index
 *
 * Return: the item, or NULL.
 */
struct radix_item *radix_lookup(const struct radix_root *root, uint64_t index)
{
	void **slot = radix_slot((struct radix_root *)root, index);

	return slot ? *slot : NULL;
}

/* Levels below the top (height @h) where @a and @b need different nodes. */
static unsigned int split_levels(uint64_t a, uint64_t b, unsigned int h)
{
	unsigned int level, n = 0;

	for (level = 0; level + 1 < h; level++)
		if ((a >> (RADIX_SHIFT * (level + 1))) !=
		    (b >> (RADIX_SHIFT * (level + 1))))
			n++;
	return n;
}

/**
 * radix_nodes_needed() - nodes an insert at @index allocates
 * @root: tree
 * @index: page index
 */
unsigned int radix_nodes_needed(const struct radix_root *root, uint64_t index)
{
	unsigned int h = height_for(index), level;
	struct radix_node *node;

	if (!root->ptr)
		return 0;
	if (!root->height) {
		struct radix_item *it = root->ptr;
		unsigned int h2 = height_for(it->index);

		if (it->index == index)
			return 0;
		if (h2 > h)
			h = h2;
		return h + split_levels(it->index, index, h);
	}
	if (h > root->height)	/* new top levels, then a fresh path */
		return h - root->height + (h - 1);
	node = root->ptr;
	for (level = root->height - 1; level > 0; level--) {
		node = node->slot[slot_of(index, level)];
		if (!node)
			return level;
	}
	return 0;
}

struct node_pool {
	struct radix_node *node[2 * RADIX_MAX_HEIGHT + 2];
	unsigned int nr;
};

static struct radix_node *pool_take(struct node_pool *p)
{
	return p->nr ? p->node[--p->nr] : NULL;
}

/* Place @item below @top (height @height), taking nodes from @p. */
static void place(struct radix_node *top, unsigned int height,
		  struct radix_item *item, struct node_pool *p,
		  struct radix_item **old)
{
	struct radix_node *node = top;
	unsigned int level, s;

	for (level = height - 1; level > 0; level--) {
		s = slot_of(item->index, level);
		if (!node->slot[s]) {
			node->slot[s] = pool_take(p);
			node->count++;
		}
		node = node->slot[s];
	}
	s = slot_of(item->index, 0);
	if (node->slot[s])
		*old = node->slot[s];
	else
		node->count++;
	node->slot[s] = item;
}

/* Raise the tree until it covers @h levels. */
static void grow(struct radix_root *root, unsigned int h, struct node_pool *p)
{
	while (root->height < h) {
		struct radix_node *n = pool_take(p);

		n->slot[0] = root->ptr;
		n->count = 1;
		root->ptr = n;
		root->height++;
	}
}

/*
 * The common insert: the tree is tall enough and the leaf for @item exists,
 * so no node is needed.  Returns false, having changed nothing, otherwise.
 */
static bool place_existing(struct radix_root *root, struct radix_item *item,
			   struct radix_item **old)
{
	struct radix_node *node = leaf_of(root, item->index);
	unsigned int s;

	if (!node)
		return false;
	s = slot_of(item->index, 0);
	if (node->slot[s])
		*old = node->slot[s];
	else
		node->count++;
	node->slot[s] = item;
	return true;
}

/**
 * radix_insert() - add or replace the item at item->index
 * @root: tree
 * @item: item to store
 * @a: node allocator
 * @old: set to the item replaced, or NULL
 *
 * Return: 0, or -1 if a node could not be allocated (tree unchanged).
 */
int radix_insert(struct radix_root *root, struct radix_item *item,
		 const struct radix_alloc *a, struct radix_item **old)
{
	struct node_pool p;
	unsigned int need, h;

	*old = NULL;
	if (place_existing(root, item, old))
		return 0;
	p.nr = 0;
	need = radix_nodes_needed(root, item->index);
	h = height_for(item->index);
	if (!root->ptr) {
		root->ptr = item;
		root->height = 0;
		return 0;
	}
	if (!root->height && ((struct radix_item *)root->ptr)->index ==
			     item->index) {
		*old = root->ptr;
		root->ptr = item;
		return 0;
	}
	while (p.nr < need) {
		p.node[p.nr] = a->alloc(a->opaque);
		if (!p.node[p.nr])
			goto fail;
		p.nr++;
	}
	if (!root->height) {
		struct radix_item *single = root->ptr;
		unsigned int h2 = height_for(single->index);
		struct radix_item *none;

		root->ptr = pool_take(&p);
		root->height = (uint8_t)(h > h2 ? h : h2);
		place(root->ptr, root->height, single, &p, &none);
	}
	grow(root, h, &p);
	place(root->ptr, root->height, item, &p, old);
	while (p.nr)
		a->free(a->opaque, p.node[--p.nr]);
	return 0;
fail:
	while (p.nr)
		a->free(a->opaque, p.node[--p.nr]);
	return -1;
}

static unsigned int only_slot(const struct radix_node *node)
{
	unsigned int i;

	for (i = 0; i < RADIX_SLOTS && !node->slot[i]; i++)
		;
	return i;
}

/* A tree left with one item gives its nodes back: the item goes to the root. */
static bool collapse_single(struct radix_root *root,
			    const struct radix_alloc *a)
{
	struct radix_node *path[RADIX_MAX_HEIGHT];
	struct radix_node *node = root->ptr;
	unsigned int level = root->height - 1, depth = 0, i;
	void *item;

	for (;;) {
		if (node->count != 1)
			return false;
		path[depth++] = node;
		if (!level)
			break;
		node = node->slot[only_slot(node)];
		level--;
	}
	item = node->slot[only_slot(node)];
	for (i = 0; i < depth; i++)
		a->free(a->opaque, path[i]);
	root->ptr = item;
	root->height = 0;
	return true;
}

/* Drop top nodes that only lead to slot 0. */
static void shrink(struct radix_root *root, const struct radix_alloc *a)
{
	if (collapse_single(root, a))
		return;
	while (root->height > 1) {
		struct radix_node *top = root->ptr;

		if (top->count != 1 || !top->slot[0])
			return;
		root->ptr = top->slot[0];
		root->height--;
		a->free(a->opaque, top);
	}
}

/**
 * radix_delete() - remove the item at @index
 * @root: tree
 * @index: page index
 * @a: node allocator (nodes left empty are freed)
 *
 * Return: the removed item, or NULL if there was none.
 */
struct radix_item *radix_delete(struct radix_root *root, uint64_t index,
				const struct radix_alloc *a)
{
	struct radix_node *path[RADIX_MAX_HEIGHT];
	struct radix_node *node;
	struct radix_item *it;
	unsigned int level, top;

	if (!root->ptr)
		return NULL;
	if (!root->height) {
		it = root->ptr;
		if (it->index != index)
			return NULL;
		root->ptr = NULL;
		return it;
	}
	if (height_for(index) > root->height)
		return NULL;
	top = root->height - 1;
	node = root->ptr;
	for (level = top; level > 0; level--) {
		path[level] = node;
		node = node->slot[slot_of(index, level)];
		if (!node)
			return NULL;
	}
	it = node->slot[slot_of(index, 0)];
	if (!it)
		return NULL;
	path[0] = node;
	for (level = 0; level <= top; level++) {
		node = path[level];
		node->slot[slot_of(index, level)] = NULL;
		if (--node->count)
			break;
		if (level == top) {
			root->ptr = NULL;
			root->height = 0;
		}
		a->free(a->opaque, node);
	}
	if (root->ptr)
		shrink(root, a);
	return it;
}

static void drain_node(struct radix_node *node, unsigned int level,
		       const struct radix_alloc *a,
		       void (*fn)(struct radix_item *, void *), void *arg)
{
	unsigned int i;

	for (i = 0; i < RADIX_SLOTS; i++) {
		if (!node->slot[i])
			continue;
		if (level)
			drain_node(node->slot[i], level - 1, a, fn, arg);
		else
			fn(node->slot[i], arg);
	}
	a->free(a->opaque, node);
}

/**
 * radix_drain() - remove every item, calling @fn on each, and free all nodes
 * @root: tree, empty afterwards
 * @a: node allocator
 * @fn: called once per item, in index order; must not touch the tree
 * @arg: passed to @fn
 */
void radix_drain(struct radix_root *root, const struct radix_alloc *a,
		 void (*fn)(struct radix_item *item, void *arg), void *arg)
{
	void *ptr = root->ptr;
	unsigned int height = root->height;

	root->ptr = NULL;
	root->height = 0;
	if (!ptr)
		return;
	if (!height)
		fn(ptr, arg);
	else
		drain_node(ptr, height - 1, a, fn, arg);
}

static struct radix_item *next_below(const struct radix_node *node,
				     unsigned int level, uint64_t index,
				     bool bounded)
{
	unsigned int i = bounded ? slot_of(index, level) : 0;
	struct radix_item *it;

	for (; i < RADIX_SLOTS; i++) {
		if (!node->slot[i])
			continue;
		if (!level)
			return node->slot[i];
		it = next_below(node->slot[i], level - 1, index,
				bounded && i == slot_of(index, level));
		if (it)
			return it;
	}
	return NULL;
}

/**
 * radix_next() - the item of least index at or after @index
 * @root: tree
 * @index: page index to start at
 *
 * Lets a cursor resume a walk in index order from where it stopped, with
 * the tree changed meanwhile.  Takes at most RADIX_MAX_HEIGHT * RADIX_SLOTS
 * steps down and across.
 *
 * Return: the item, or NULL if there is none at or after @index.
 */
struct radix_item *radix_next(const struct radix_root *root, uint64_t index)
{
	struct radix_item *it = root->ptr;

	if (!it)
		return NULL;
	if (!root->height)
		return it->index >= index ? it : NULL;
	if (height_for(index) > root->height)
		return NULL;
	return next_below(root->ptr, root->height - 1, index, true);
}
