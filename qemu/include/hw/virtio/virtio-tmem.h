/*
 * Virtio transcendent memory device
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#ifndef QEMU_VIRTIO_TMEM_H
#define QEMU_VIRTIO_TMEM_H

#include "hw/virtio/virtio.h"
#include "qemu/thread.h"
#include "qom/object.h"
#include "system/iothread.h"

/* From the virtio-tmem sources (pkg-config: vtmem-codec, tmem-pool). */
#include "virtio_tmem.h"

#define TYPE_VIRTIO_TMEM "virtio-tmem-device"
OBJECT_DECLARE_SIMPLE_TYPE(VirtIOTmem, VIRTIO_TMEM)

struct tmem_store;
struct tmem_image;

/* Counters of one request queue. */
typedef struct VirtIOTmemQueueStats {
    uint64_t notifications;     /* handler runs (guest kicks) */
    uint64_t batches;
    uint64_t ops;
} VirtIOTmemQueueStats;

struct VirtIOTmem {
    VirtIODevice parent_obj;

    /* properties */
    uint64_t size;
    char *compressor;
    uint32_t lz4_acceleration;
    uint16_t num_queues;
    uint16_t queue_size;
    uint16_t max_batch;
    uint32_t max_pools;
    uint64_t host_features;
    char *swap_image;
    uint64_t swap_image_size;
    bool swap_image_unlink;
    bool swap_image_direct;
    uint8_t writeback_high;
    uint8_t writeback_low;
    IOThread *iothread;

    VirtQueue **vqs;
    /* Per-queue host copy of a batch's ops, read once from guest memory. */
    struct virtio_tmem_op **ops;
    struct virtio_tmem_op_status **statuses;
    /* Per-queue bounce page for pages split across too many descriptors. */
    uint8_t **bounce;

    struct tmem_store *store;
    struct tmem_image *image;
    Error *migration_blocker;

    /*
     * Credits (see docs/virtio-tmem-spec.md, "Credits").  Invariant:
     * credits_granted - credits_spent <= tmem_persistent_capacity(store);
     * puts in flight are still counted as outstanding until they are done.
     */
    QemuMutex credit_lock;
    uint64_t credits_granted;
    uint64_t credits_spent;
    uint64_t credits_inflight;
    QEMUBH *config_bh;

    /* Device counters; updated by the queue handler, read by "stats". */
    VirtIOTmemQueueStats *qstats;
    uint64_t bad_batches;
    uint64_t bad_ops;
    uint64_t no_credit;

    bool ioeventfd_started;
    /*
     * "x-stall" test hook: while true the queue handler takes no request
     * off any ring (see virtio_tmem_set_stall()).  Written by QMP under
     * the BQL, read by the handler in the IOThread or the main loop.
     */
    bool stall;
};

#endif
