/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * swapimg.h - the host swap image: 4 KiB slots that hold written-back
 * pageframes.
 *
 * A slot holds one whole frame as it was in RAM (its pages still
 * compressed, or one raw page) and a checksum of it.  The frames of a
 * reclaim unit of several frames (a zspage span) go to slots chained
 * through @next, since a page may straddle two of them.  A slot counts the
 * pages whose bytes lie in it; each stays until its entry is flushed or
 * taken by an exclusive get, and a slot with none is free again.  Slots whose blocks are allocated in the file ("backed")
 * are what credits are granted against: a write into a backed slot needs
 * no new space.  A filesystem may still fail it with ENOSPC (copy on
 * write, thin provisioning, NFS); the store treats that as an I/O error.
 *
 * img->lock protects the tables below; it is the innermost lock of the
 * store (see store.c), taken under zbud->lock, so it is never held across
 * a system call: allocations and punches mark their slots used and drop
 * it.  Reads and writes of slot data take no lock: the caller owns the
 * slot (see store_reclaim.c).
 */
#ifndef TMEM_SWAPIMG_H
#define TMEM_SWAPIMG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "tmem.h"

#define SWAPIMG_NO_SLOT		UINT64_MAX
#define SWAPIMG_NO_NEXT		UINT32_MAX

/**
 * struct tmem_image - see tmem.h
 * @lock: protects everything below except @fd, @io and the settings
 * @fd: the image file
 * @io: I/O layer (the real syscalls, or a test's)
 * @nr_slots: slots the size limit allows
 * @used: bitmap, slot holds at least one live buddy (or is being written)
 * @backed: bitmap, slot's blocks are allocated in the file
 * @csum: per slot, checksum of the frame written there
 * @live: per slot, pages whose bytes lie in it
 * @next: per slot, the slot holding the unit's next frame, or
 *	  SWAPIMG_NO_NEXT
 * @nr_used: slots set in @used
 * @nr_backed: slots set in @backed
 * @nr_trimming: of @nr_used, slots being punched out (not holding pages)
 * @nr_backing: of @nr_used, slots being allocated (neither holding pages
 *		nor backed yet)
 * @reserve_slots: backed free slots to keep for credits
 * @cursor: next-fit search start (in 64-slot words)
 * @report: error callback (see struct tmem_image_config)
 * @report_opaque: its argument
 * @store: the store the image is attached to, or NULL
 * @path: the file's name, for messages (tmem_image_acquire())
 * @owned: this image holds the file's lock; only then is the file
 *	   punched (swapimg_reset())
 * @frozen: no slot is taken, allocated, trimmed or punched (a migration
 *	    destination before the lock is handed over, a source after)
 * @awaiting: opened as a migration's destination, the lock not taken yet
 * @taking: slots taken for writes and not committed yet
 * @idle: broadcast when @taking drops to 0 (swapimg_freeze())
 * @held: slots freed during a shared-image migration, not reusable yet
 * @held_marked: of them, those freed before swapimg_hold_mark()
 * @nr_held: slots set in @held
 * @nr_marked: slots set in @held_marked
 * @stats: counters (see struct tmem_image_stats)
 */
struct tmem_image {
	pthread_mutex_t lock;
	int fd;
	struct tmem_image_io io;
	uint64_t nr_slots;
	uint64_t *used;
	uint64_t *backed;
	uint32_t *csum;
	uint8_t *live;
	uint32_t *next;
	uint64_t nr_used, nr_backed, nr_trimming, nr_backing;
	uint64_t reserve_slots;
	uint64_t cursor;
	void (*report)(void *opaque, const char *op, uint64_t offset, int err);
	void *report_opaque;
	struct tmem_store *store;
	char *path;
	bool owned, frozen, awaiting;
	unsigned int taking;
	pthread_cond_t idle;
	uint64_t *held, *held_marked;
	uint64_t nr_held, nr_marked;
	struct tmem_image_stats stats;
};

uint32_t swapimg_checksum(const uint8_t *frame);
uint64_t swapimg_slot_take_backed(struct tmem_image *img);
uint64_t swapimg_slot_get(struct tmem_image *img);
void swapimg_slot_commit(struct tmem_image *img, uint64_t slot, uint32_t csum,
			 unsigned int live, uint64_t next);
void swapimg_page_put(struct tmem_image *img, uint64_t slot, bool straddles);
uint64_t swapimg_next(struct tmem_image *img, uint64_t slot);
void swapimg_reserve(struct tmem_image *img);
uint64_t swapimg_credit_slots(struct tmem_image *img);
uint64_t swapimg_trim(struct tmem_image *img);
int swapimg_write(struct tmem_image *img, uint64_t slot, const uint8_t *frame);
int swapimg_read(struct tmem_image *img, uint64_t slot, uint8_t *frame);
void swapimg_reset(struct tmem_image *img);
int swapimg_attach(struct tmem_image *img, struct tmem_store *store,
		   uint64_t reserve_slots);
void swapimg_detach(struct tmem_image *img);
uint64_t swapimg_reserve_slots(const struct tmem_image *img);
void swapimg_slot_ref(struct tmem_image *img, uint64_t slot, uint32_t *csum,
		      uint64_t *next, uint32_t *next_csum);
int swapimg_import_slot(struct tmem_image *img, uint64_t slot, uint32_t csum,
			uint64_t next, uint32_t next_csum);
void swapimg_freeze(struct tmem_image *img);
int swapimg_hold_start(struct tmem_image *img);
void swapimg_hold_mark(struct tmem_image *img);
void swapimg_hold_release(struct tmem_image *img, bool all);
void swapimg_stats(struct tmem_image *img, struct tmem_image_stats *st);

#endif /* TMEM_SWAPIMG_H */
