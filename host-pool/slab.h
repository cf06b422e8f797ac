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

/*
 * Threads that allocate at the same time use different shards, so that they
 * neither wait for one lock nor fill the same frame (whose cache lines would
 * bounce between them).  A thread keeps the shard it was first given.
 */
#define TMEM_CACHE_SHARDS	4u

/**
 * struct tmem_cache_shard - one lock's worth of a cache
 * @lock: protects @partial and the slab fields of the shard's frames;
 *	  taken inside bucket locks, takes zbud->lock inside itself, never
 *	  held with another shard's lock
 * @partial: frames with at least one free object
 * @objects: objects in use from this shard's frames
 */
struct tmem_cache_shard {
	pthread_mutex_t lock;
	struct zlist partial;
	uint64_t objects;
} __attribute__((aligned(64)));

/**
 * struct tmem_cache - objects of one size and kind
 * @zbud: frame source
 * @size: object size in bytes (multiple of 8, at least 8)
 * @per_frame: objects per frame
 * @kind: pool kind charged for this cache's frames
 * @shard: where threads allocate; a frame belongs to one shard for life
 */
struct tmem_cache {
	struct zbud *zbud;
	unsigned int size;
	unsigned int per_frame;
	enum tmem_kind kind;
	struct tmem_cache_shard shard[TMEM_CACHE_SHARDS];
};

void tmem_cache_init(struct tmem_cache *c, struct zbud *z, size_t size,
		     enum tmem_kind kind);
void tmem_cache_fini(struct tmem_cache *c);
void *tmem_cache_alloc(struct tmem_cache *c);
void tmem_cache_free(struct tmem_cache *c, void *obj);
uint64_t tmem_cache_objects(struct tmem_cache *c);

#endif /* TMEM_SLAB_H */
