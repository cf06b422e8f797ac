/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * radix.h - page index of one tmem object: 16-way radix tree over a 64-bit
 * page index.
 *
 * Items start with their own index (struct radix_item), which lets an object
 * holding a single page keep it in the root with no node at all, as most
 * small files do.  Nodes come from a caller-supplied allocator so that they
 * are charged to the store's limit.  The caller serialises all calls.
 */
#ifndef TMEM_RADIX_H
#define TMEM_RADIX_H

#include <stdbool.h>
#include <stdint.h>

/*
 * 16 slots: a dense object costs about 9 bytes of node per page either way,
 * but a small file pays 136 bytes of leaf instead of 520 with 64 slots.
 */
#define RADIX_SHIFT		4
#define RADIX_SLOTS		(1u << RADIX_SHIFT)
#define RADIX_MAX_HEIGHT	16	/* 64 / 4 */

struct radix_item {
	uint64_t index;
};

struct radix_node {
	void *slot[RADIX_SLOTS];
	uint32_t count;
};

/**
 * struct radix_root - a tree
 * @ptr: NULL (empty), the single item (height 0), or the top node
 * @height: levels of nodes below @ptr; 0 when @ptr is an item
 */
struct radix_root {
	void *ptr;
	uint8_t height;
};

struct radix_alloc {
	struct radix_node *(*alloc)(void *opaque);
	void (*free)(void *opaque, struct radix_node *node);
	void *opaque;
};

struct radix_item *radix_lookup(const struct radix_root *root, uint64_t index);
void **radix_slot(struct radix_root *root, uint64_t index);
int radix_insert(struct radix_root *root, struct radix_item *item,
		 const struct radix_alloc *a, struct radix_item **old);
struct radix_item *radix_delete(struct radix_root *root, uint64_t index,
				const struct radix_alloc *a);
void radix_drain(struct radix_root *root, const struct radix_alloc *a,
		 void (*fn)(struct radix_item *item, void *arg), void *arg);
unsigned int radix_nodes_needed(const struct radix_root *root, uint64_t index);
struct radix_item *radix_next(const struct radix_root *root, uint64_t index);

#endif /* TMEM_RADIX_H */
