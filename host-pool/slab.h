/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * slab.h - fixed-size metadata objects carved out of store pageframes.
 *
 * Entries, index nodes and objects live in frames taken from the store's own
 * zbud space, one cache per object type and pool kind, so that metadata is
 * charged against the store's limit page by page, and so that dropping every
 * ephemeral page frees every ephemeral metadata frame too.
 */
#ifndef TMEM_SLAB_H
#define TMEM_SLAB_H

#include <pthread.h>
#include <stddef.h>

#include "zbud.h"

/**
 * struct tmem_cache - objects of one size and kind
 * @lock: protects @partial and the slab fields of this cache's frames;
 *	  taken inside bucket locks, takes zbud->lock inside itself
 * @zbud: frame source
 * @size: object size in bytes (multiple of 8, at least 8)
 * @per_frame: objects per frame
 * @kind: pool kind charged for this cache's frames
 * @partial: frames with at least one free object
 * @objects: objects in use
 */
struct tmem_cache {
	pthread_mutex_t lock;
	struct zbud *zbud;
	unsigned int size;
	unsigned int per_frame;
	enum tmem_kind kind;
	struct zlist partial;
	uint64_t objects;
};

void tmem_cache_init(struct tmem_cache *c, struct zbud *z, size_t size,
		     enum tmem_kind kind);
void tmem_cache_fini(struct tmem_cache *c);
void *tmem_cache_alloc(struct tmem_cache *c);
void tmem_cache_free(struct tmem_cache *c, void *obj);

#endif /* TMEM_SLAB_H */
