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

/*
 * Property names, for error messages and for users that set them (as
 * virtio-mem.h does).  The pool settings' defaults and ranges come from
 * libtmem-pool's tmem.h; the device adds only what is its own.
 */
#define VIRTIO_TMEM_SIZE_PROP "size"
#define VIRTIO_TMEM_COMPRESSOR_PROP "compressor"
#define VIRTIO_TMEM_ALLOCATOR_PROP "allocator"
#define VIRTIO_TMEM_LZ4_ACCEL_PROP "lz4-acceleration"
#define VIRTIO_TMEM_ZSTD_LEVEL_PROP "zstd-level"
#define VIRTIO_TMEM_NUM_QUEUES_PROP "num-queues"
#define VIRTIO_TMEM_QUEUE_SIZE_PROP "queue-size"
#define VIRTIO_TMEM_MAX_BATCH_PROP "max-batch"
#define VIRTIO_TMEM_MAX_POOLS_PROP "max-pools"
#define VIRTIO_TMEM_SWAP_IMAGE_PROP "swap-image"
#define VIRTIO_TMEM_SWAP_IMAGE_SIZE_PROP "swap-image-size"
#define VIRTIO_TMEM_SWAP_IMAGE_UNLINK_PROP "swap-image-unlink"
#define VIRTIO_TMEM_SWAP_IMAGE_DIRECT_PROP "swap-image-direct"
#define VIRTIO_TMEM_SWAP_IMAGE_SHARED_PROP "swap-image-shared"
#define VIRTIO_TMEM_WB_HIGH_PROP "writeback-high"
#define VIRTIO_TMEM_WB_LOW_PROP "writeback-low"
#define VIRTIO_TMEM_IOTHREAD_PROP "iothread"
#define VIRTIO_TMEM_PERSISTENT_PROP "persistent"
#define VIRTIO_TMEM_SHARED_PROP "shared"
#define VIRTIO_TMEM_STATS_PROP "stats"
#define VIRTIO_TMEM_STALL_PROP "x-stall"
#define VIRTIO_TMEM_MIGRATE_EPHEMERAL_PROP "migrate-ephemeral"
#define VIRTIO_TMEM_MAX_SIZE_PROP "max-size"
#define VIRTIO_TMEM_RESIZE_PROP "resize"
#define VIRTIO_TMEM_AUTO_SHRINK_PROP "auto-shrink"
#define VIRTIO_TMEM_MIN_SIZE_PROP "min-size"
#define VIRTIO_TMEM_PRESSURE_FILE_PROP "pressure-file"
#define VIRTIO_TMEM_PRESSURE_THRESHOLD_PROP "pressure-threshold"
#define VIRTIO_TMEM_PRESSURE_INTERVAL_PROP "pressure-interval"
OBJECT_DECLARE_SIMPLE_TYPE(VirtIOTmem, VIRTIO_TMEM)

struct tmem_store;
struct tmem_image;
struct tmem_migration;

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
    char *allocator;
    uint32_t lz4_acceleration;
    uint32_t zstd_level;
    uint16_t num_queues;
    uint16_t queue_size;
    uint16_t max_batch;
    uint32_t max_pools;
    uint64_t host_features;
    char *swap_image;
    uint64_t swap_image_size;
    bool swap_image_unlink;
    bool swap_image_direct;
    bool swap_image_shared;
    uint8_t writeback_high;
    uint8_t writeback_low;
    IOThread *iothread;
    bool migrate_ephemeral;
    uint64_t max_size;          /* 0: the size at realize */
    uint64_t realize_size;      /* size at realize */
    bool auto_shrink;
    uint64_t min_size;          /* 0: a quarter of max-size */
    char *pressure_file;
    uint32_t pressure_threshold;        /* percent of "some avg10" */
    uint32_t pressure_interval;         /* ms between readings */

    VirtQueue **vqs;
    /* Per-queue host copy of a batch's ops, read once from guest memory. */
    struct virtio_tmem_op **ops;
    struct virtio_tmem_op_status **statuses;
    /* Per-queue bounce page for pages split across too many descriptors. */
    uint8_t **bounce;

    struct tmem_store *store;
    struct tmem_image *image;

    /*
     * Migration of the pool (see "migration" in virtio-tmem.c).  mig_lock
     * keeps the migration thread's calls on the stream out of a reset,
     * which replaces the store under them; it protects mig and mig_reset.
     * It is never held across a write to the channel (virtio_tmem_send()).
     */
    QemuMutex mig_lock;
    struct tmem_migration *mig;     /* source: the stream being sent */
    bool mig_reset;                 /* source: the store was re-created */
    /* destination: from the header to the end of a successful load */
    bool mig_header_seen;
    /* destination: from pre_load to the end of a successful load */
    bool mig_loading;
    uint8_t *mig_buf;               /* one page of record data */
    /*
     * swap-image-shared=on.  Source: the image is frozen by a migration
     * (and maybe handed over); it is taken back when the VM runs again.
     * Destination: the image is the source's until post_load takes its
     * lock; image_taken says a load took it (load_cleanup gives it back
     * if the load then fails).  Main loop and BQL, or the migration
     * thread with the VM stopped.
     */
    bool mig_shared;                /* source: this stream sends slots */
    bool image_frozen;
    bool image_incoming;
    bool image_taken;
    bool mig_shared_seen;           /* destination: the stream's mark */
    VMChangeStateEntry *vm_change;
    /*
     * Source: what the last (or current) outgoing migration sent, for the
     * "stats" property.  Written by the migration thread, read atomically.
     */
    uint64_t mig_bytes_sent;
    uint64_t mig_page_records;
    uint64_t mig_records;
    uint64_t mig_rounds;            /* setup, iterations, completion */

    /*
     * Credits (see docs/virtio-tmem-spec.md, "Credits").  Invariant:
     * credits_granted - credits_spent <= tmem_persistent_capacity(store);
     * puts in flight are still counted as outstanding until they are done.
     * credit_lock protects the counters below; config_credits is written
     * only under the BQL as well (with a configuration generation bump).
     */
    QemuMutex credit_lock;
    uint64_t credits_granted;
    uint64_t credits_spent;
    uint64_t credits_inflight;
    uint64_t config_credits;    /* shown in the configuration space */
    bool config_notify;         /* the driver may have run out: interrupt */
    /* The driver negotiated VIRTIO_TMEM_F_PERSISTENT (set by set_features) */
    bool credits_enabled;
    QEMUBH *config_bh;

    /* Device counters; updated by the queue handler, read by "stats". */
    VirtIOTmemQueueStats *qstats;
    uint64_t bad_batches;
    uint64_t bad_ops;
    uint64_t no_credit;

    /*
     * Resizing (see "resizing" in virtio-tmem.c).  size is the target; the
     * store's limit (pool_limit) stays above it while credits granted
     * before need the room.  Main loop, BQL held, unless noted.
     */
    uint64_t pool_limit;        /* the store's limit now */
    uint64_t persistent_target; /* configuration: pages asked to keep */
    uint64_t credit_cap;        /* configuration (also credit_lock) */
    uint32_t cap_gen;           /* configuration: bumped with credit_cap */
    uint32_t cap_ack_gen;       /* written by the driver */
    uint64_t cap_ack;           /* written by the driver */
    uint64_t persistent_actual; /* written by the driver */
    /*
     * Most credited PUTs the driver may have issued since reset while
     * credit_cap is set (credit_lock): credits_granted until the driver
     * acknowledges a lower cap.
     */
    uint64_t credit_bound;
    bool resize_reported;       /* the event for this target was sent */
    QEMUTimer *pressure_timer;  /* auto-shrink=on */
    bool pressure_warned;       /* the last reading was bad, and said so */
    unsigned pressure_quiet;    /* readings in a row without pressure */
    QEMUBH *resize_bh;
    QEMUTimer *resize_timer;
    /*
     * The shrink thread: tmem_shrink() may write to the swap image, so it
     * runs in a thread of its own.  resize_lock protects the fields below;
     * a reset waits for resize_busy to clear before replacing the store.
     */
    QemuThread resize_thread;
    QemuMutex resize_lock;
    QemuCond resize_cond;
    struct tmem_store *resize_store;    /* the store to shrink, or NULL */
    bool resize_busy;
    bool resize_stop;
    int resize_ret;                     /* tmem_shrink()'s last answer */
    uint64_t resize_used, resize_start; /* its tmem_resize */
    uint64_t resize_excess, resize_persistent;

    bool ioeventfd_started;
    /*
     * "x-stall" test hook: while true the queue handler takes no request
     * off any ring (see virtio_tmem_set_stall()).  Written by QMP under
     * the BQL, read by the handler in the IOThread or the main loop.
     */
    bool stall;
};

#endif
