/*
 * Virtio transcendent memory device
 *
 * Serves cleancache (ephemeral) and frontswap (persistent) pages of a guest
 * from a host pool of LZ4-compressed pages packed by zbud (libtmem-pool).
 * Ops arrive in batches, many per descriptor chain; see
 * docs/virtio-tmem-spec.md of the virtio-tmem sources.
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/host-utils.h"
#include "qemu/iov.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "block/aio-wait.h"
#include "hw/qdev-properties.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-bus.h"
#include "hw/virtio/virtio-tmem.h"
#include "migration/blocker.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "trace.h"

#include "tmem.h"
#include "vtmem_codec.h"

#define VIRTIO_TMEM_DEFAULT_SIZE        (256 * MiB)
#define VIRTIO_TMEM_DEFAULT_QUEUE_SIZE  256
#define VIRTIO_TMEM_DEFAULT_MAX_BATCH   128
#define VIRTIO_TMEM_DEFAULT_MAX_POOLS   32
/* A page split over more descriptors than this goes through a bounce page. */
#define VIRTIO_TMEM_PAGE_IOV_MAX        16

/* ---- credits ------------------------------------------------------------- */

/*
 * Grant whatever the pool can always accept beyond what is outstanding.
 * Returns true if the driver should be told through a config change: it may
 * have run out (fewer than max_batch credits were left before the grant).
 */
static bool virtio_tmem_grant_credits(VirtIOTmem *s)
{
    uint64_t capacity, outstanding, old_balance;
    bool notify = false;

    if (!(s->host_features & BIT_ULL(VIRTIO_TMEM_F_PERSISTENT)) || !s->store) {
        return false;
    }
    qemu_mutex_lock(&s->credit_lock);
    capacity = tmem_persistent_capacity(s->store);
    outstanding = s->credits_granted - s->credits_spent;
    if (capacity > outstanding) {
        old_balance = outstanding - s->credits_inflight;
        s->credits_granted += capacity - outstanding;
        notify = old_balance < s->max_batch;
        trace_virtio_tmem_credits(s, s->credits_granted, s->credits_spent);
    }
    qemu_mutex_unlock(&s->credit_lock);
    return notify;
}

/* Take a credit for a persistent put; false if the driver has none. */
static bool virtio_tmem_credit_take(VirtIOTmem *s)
{
    bool ok;

    qemu_mutex_lock(&s->credit_lock);
    ok = s->credits_granted - s->credits_spent > s->credits_inflight;
    if (ok) {
        s->credits_inflight++;
    }
    qemu_mutex_unlock(&s->credit_lock);
    return ok;
}

/* The put holding a credit is done (stored or not): the credit is spent. */
static void virtio_tmem_credit_done(VirtIOTmem *s)
{
    qemu_mutex_lock(&s->credit_lock);
    s->credits_inflight--;
    s->credits_spent++;
    qemu_mutex_unlock(&s->credit_lock);
}

static uint64_t virtio_tmem_credits(VirtIOTmem *s)
{
    uint64_t credits;

    qemu_mutex_lock(&s->credit_lock);
    credits = s->credits_granted;
    qemu_mutex_unlock(&s->credit_lock);
    return credits;
}

static void virtio_tmem_config_bh(void *opaque)
{
    virtio_notify_config(VIRTIO_DEVICE(opaque));
}

/* ---- one batch ----------------------------------------------------------- */

/* A batch being executed: the chain, its parsed header, its outcome. */
typedef struct VirtIOTmemBatch {
    VirtIOTmem *s;
    VirtQueueElement *elem;
    unsigned queue;
    struct vtmem_parsed p;
    struct virtio_tmem_op *ops;
    struct virtio_tmem_op_status *statuses;
    uint8_t *bounce;
    /*
     * End of the last GET page written: pages sit at fixed slots, so a
     * miss before a hit leaves a hole that the used length must cover.
     */
    size_t get_end;
} VirtIOTmemBatch;

static void op_status(VirtIOTmemBatch *b, unsigned i, unsigned status,
                      uint64_t value)
{
    b->statuses[i].status = cpu_to_le32(status);
    b->statuses[i].value = cpu_to_le32(MIN(value, UINT32_MAX));
    if (status != VIRTIO_TMEM_S_OK && status != VIRTIO_TMEM_S_NOT_FOUND) {
        trace_virtio_tmem_op_error(b->s, b->queue, i, b->ops[i].opcode,
                                   status);
    }
}

/*
 * The page of an op as an iovec into guest memory; if the driver split it
 * over more than VIRTIO_TMEM_PAGE_IOV_MAX descriptors, the page goes
 * through the queue's bounce page instead (copied in here for a PUT,
 * copied out by page_iov_finish() for a GET).
 */
static unsigned page_iov(VirtIOTmemBatch *b, bool out, size_t offset,
                         struct iovec *iov)
{
    const struct iovec *sg = out ? b->elem->out_sg : b->elem->in_sg;
    unsigned num = out ? b->elem->out_num : b->elem->in_num;
    unsigned n = iov_copy(iov, VIRTIO_TMEM_PAGE_IOV_MAX, sg, num, offset,
                          VIRTIO_TMEM_PAGE_SIZE);

    if (iov_size(iov, n) == VIRTIO_TMEM_PAGE_SIZE) {
        return n;
    }
    if (out) {
        iov_to_buf(sg, num, offset, b->bounce, VIRTIO_TMEM_PAGE_SIZE);
    }
    iov[0].iov_base = b->bounce;
    iov[0].iov_len = VIRTIO_TMEM_PAGE_SIZE;
    return 1;
}

static void page_iov_finish(VirtIOTmemBatch *b, size_t offset,
                            const struct iovec *iov)
{
    if (iov[0].iov_base == b->bounce) {
        iov_from_buf(b->elem->in_sg, b->elem->in_num, offset, b->bounce,
                     VIRTIO_TMEM_PAGE_SIZE);
    }
}

static unsigned status_of_tmem_error(int err, bool persistent)
{
    switch (-err) {
    case TMEM_E_BAD_POOL:
        return VIRTIO_TMEM_S_BAD_POOL;
    case TMEM_E_NOT_FOUND:
        return VIRTIO_TMEM_S_NOT_FOUND;
    case TMEM_E_IOV:
    case TMEM_E_INVAL:
        return VIRTIO_TMEM_S_BAD_ARG;
    case TMEM_E_FULL:
    case TMEM_E_INCOMPRESSIBLE:
        return persistent ? VIRTIO_TMEM_S_DEVICE_ERROR :
                            VIRTIO_TMEM_S_NO_SPACE;
    case TMEM_E_NO_POOLS:
        return VIRTIO_TMEM_S_NO_POOLS;
    case TMEM_E_UUID_KIND:
        return VIRTIO_TMEM_S_BAD_POOL;
    case TMEM_E_IO:
        return VIRTIO_TMEM_S_IO_ERROR;
    default:
        return VIRTIO_TMEM_S_DEVICE_ERROR;
    }
}

static void op_new_pool(VirtIOTmemBatch *b, unsigned i,
                        const struct vtmem_op_info *info)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(b->s);
    unsigned flags = 0;
    struct tmem_uuid uuid;
    int ret;

    if (info->flags & VIRTIO_TMEM_POOL_PERSISTENT) {
        if (!virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_PERSISTENT)) {
            op_status(b, i, VIRTIO_TMEM_S_BAD_POOL, 0);
            return;
        }
        flags |= TMEM_POOL_PERSISTENT;
    }
    if (info->flags & VIRTIO_TMEM_POOL_SHARED) {
        if (!virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_SHARED)) {
            op_status(b, i, VIRTIO_TMEM_S_BAD_POOL, 0);
            return;
        }
        flags |= TMEM_POOL_SHARED;
        memcpy(uuid.b, info->uuid, sizeof(uuid.b));
    }
    ret = tmem_new_pool(b->s->store, flags,
                        (flags & TMEM_POOL_SHARED) ? &uuid : NULL);
    trace_virtio_tmem_new_pool(b->s, info->flags, ret);
    if (ret == -TMEM_E_FULL) {
        op_status(b, i, VIRTIO_TMEM_S_NO_POOLS, 0);
    } else if (ret < 0) {
        op_status(b, i, status_of_tmem_error(ret, false), 0);
    } else {
        op_status(b, i, VIRTIO_TMEM_S_OK, ret);
    }
}

static void op_put(VirtIOTmemBatch *b, unsigned i,
                   const struct vtmem_op_info *info)
{
    VirtIOTmem *s = b->s;
    struct tmem_oid oid;
    struct iovec iov[VIRTIO_TMEM_PAGE_IOV_MAX];
    size_t off = b->p.put_data_off +
                 (size_t)info->page * VIRTIO_TMEM_PAGE_SIZE;
    bool persistent, credit = false, replaced = false;
    int kind, ret;
    unsigned n;

    kind = tmem_pool_kind(s->store, info->pool_id);
    if (kind < 0) {
        op_status(b, i, VIRTIO_TMEM_S_BAD_POOL, 0);
        return;
    }
    persistent = kind == TMEM_PERSISTENT;
    if (persistent) {
        credit = (info->flags & VIRTIO_TMEM_PUT_CREDIT) &&
                 virtio_tmem_credit_take(s);
        if (!credit) {
            qatomic_inc(&s->no_credit);
            op_status(b, i, VIRTIO_TMEM_S_NO_CREDIT, 0);
            return;
        }
    }
    memcpy(&oid, &info->oid, sizeof(oid));
    n = page_iov(b, true, off, iov);
    ret = tmem_put(s->store, info->pool_id, &oid, info->index, iov, n,
                   &replaced);
    if (credit) {
        virtio_tmem_credit_done(s);
    }
    trace_virtio_tmem_put(s, info->pool_id, info->oid.id[0], info->index,
                          ret);
    if (ret < 0) {
        if (persistent) {
            /* A credited put must not fail for room: a device bug. */
            error_report_once("virtio-tmem: credited put failed: %s",
                              tmem_strerror(ret));
        }
        op_status(b, i, status_of_tmem_error(ret, persistent), 0);
        return;
    }
    op_status(b, i, VIRTIO_TMEM_S_OK, replaced);
}

static void op_get(VirtIOTmemBatch *b, unsigned i,
                   const struct vtmem_op_info *info)
{
    VirtIOTmem *s = b->s;
    struct tmem_oid oid;
    struct iovec iov[VIRTIO_TMEM_PAGE_IOV_MAX];
    size_t off = b->p.get_data_off +
                 (size_t)info->page * VIRTIO_TMEM_PAGE_SIZE;
    bool excl = info->flags & VIRTIO_TMEM_GET_EXCLUSIVE;
    unsigned n;
    int ret;

    memcpy(&oid, &info->oid, sizeof(oid));
    n = page_iov(b, false, off, iov);
    ret = tmem_get(s->store, info->pool_id, &oid, info->index, iov, n,
                   excl ? TMEM_GET_EXCLUSIVE : 0);
    trace_virtio_tmem_get(s, info->pool_id, info->oid.id[0], info->index,
                          excl, ret);
    if (ret < 0) {
        op_status(b, i, status_of_tmem_error(ret, false), 0);
        return;
    }
    page_iov_finish(b, off, iov);
    b->get_end = off + VIRTIO_TMEM_PAGE_SIZE;
    op_status(b, i, VIRTIO_TMEM_S_OK, excl);
}

static void op_flush(VirtIOTmemBatch *b, unsigned i,
                     const struct vtmem_op_info *info)
{
    VirtIOTmem *s = b->s;
    struct tmem_oid oid;
    uint64_t pages = 0;
    int ret;

    memcpy(&oid, &info->oid, sizeof(oid));
    switch (info->opcode) {
    case VIRTIO_TMEM_OP_FLUSH_PAGE:
        ret = tmem_flush_page(s->store, info->pool_id, &oid, info->index);
        pages = MAX(ret, 0);
        break;
    case VIRTIO_TMEM_OP_FLUSH_OBJECT:
        ret = tmem_flush_object(s->store, info->pool_id, &oid, &pages);
        break;
    case VIRTIO_TMEM_OP_FLUSH_POOL:
        ret = tmem_flush_pool(s->store, info->pool_id, &pages);
        break;
    default: /* DESTROY_POOL */
        ret = tmem_destroy_pool(s->store, info->pool_id, &pages);
        break;
    }
    trace_virtio_tmem_flush(s, info->opcode, info->pool_id, info->oid.id[0],
                            info->index, ret < 0 ? ret : (int64_t)pages);
    if (ret < 0) {
        op_status(b, i, status_of_tmem_error(ret, false), 0);
    } else {
        op_status(b, i, VIRTIO_TMEM_S_OK, pages);
    }
}

static void virtio_tmem_execute(VirtIOTmemBatch *b)
{
    unsigned i, put = 0, get = 0;

    for (i = 0; i < b->p.nr_ops; i++) {
        int dir = vtmem_op_page_dir(b->ops[i].opcode);
        int page = dir > 0 ? (int)put++ : dir < 0 ? (int)get++ : -1;
        struct vtmem_op_info info;
        unsigned status = vtmem_decode_op(&b->ops[i], page, &info);

        if (status != VIRTIO_TMEM_S_OK) {
            qatomic_inc(&b->s->bad_ops);
            op_status(b, i, status, 0);
            continue;
        }
        switch (info.opcode) {
        case VIRTIO_TMEM_OP_NEW_POOL:
            op_new_pool(b, i, &info);
            break;
        case VIRTIO_TMEM_OP_PUT:
            op_put(b, i, &info);
            break;
        case VIRTIO_TMEM_OP_GET:
            op_get(b, i, &info);
            break;
        default:
            op_flush(b, i, &info);
            break;
        }
    }
}

/* Answer a malformed batch: nothing was done. */
static void virtio_tmem_refuse(VirtIOTmemBatch *b, size_t in_len,
                               enum vtmem_batch_error err)
{
    size_t room = (in_len - sizeof(struct virtio_tmem_resp_hdr)) /
                  sizeof(struct virtio_tmem_op_status);
    unsigned i, n = MIN(MIN(b->p.nr_ops, room), b->s->max_batch);

    qatomic_inc(&b->s->bad_batches);
    trace_virtio_tmem_bad_batch(b->s, b->queue, b->p.seq,
                                vtmem_batch_error_str(err));
    for (i = 0; i < n; i++) {
        b->statuses[i].status = cpu_to_le32(VIRTIO_TMEM_S_SKIPPED);
        b->statuses[i].value = 0;
    }
    b->p.nr_ops = n;
}

/*
 * Run one descriptor chain.  Returns the bytes written into it, or -1 if
 * the chain cannot even carry a response (the device then needs a reset).
 */
static ssize_t virtio_tmem_handle_batch(VirtIOTmem *s, unsigned queue,
                                        VirtQueueElement *elem)
{
    VirtIOTmemBatch b = {
        .s = s, .elem = elem, .queue = queue, .ops = s->ops[queue],
        .statuses = s->statuses[queue], .bounce = s->bounce[queue],
    };
    size_t out_len = iov_size(elem->out_sg, elem->out_num);
    size_t in_len = iov_size(elem->in_sg, elem->in_num);
    struct virtio_tmem_req_hdr hdr = { 0 };
    struct virtio_tmem_resp_hdr resp = { 0 };
    enum vtmem_batch_error err;
    bool ok;

    iov_to_buf(elem->out_sg, elem->out_num, 0, &hdr, sizeof(hdr));
    err = vtmem_parse_hdr(&hdr, out_len, in_len, s->max_batch, &b.p);
    if (err == VTMEM_BATCH_NO_RESP) {
        virtio_error(VIRTIO_DEVICE(s), "virtio-tmem: queue %u: request has "
                     "%zu writable bytes, no room for a response", queue,
                     in_len);
        return -1;
    }
    if (!err) {
        size_t len = (size_t)b.p.nr_ops * sizeof(*b.ops);

        iov_to_buf(elem->out_sg, elem->out_num, sizeof(hdr), b.ops, len);
        err = vtmem_parse_ops(b.ops, out_len, in_len, &b.p);
    }
    ok = !err;
    if (ok) {
        trace_virtio_tmem_batch(s, queue, b.p.seq, b.p.nr_ops, b.p.nr_put,
                                b.p.nr_get);
        virtio_tmem_execute(&b);
        qatomic_add(&s->qstats[queue].ops, b.p.nr_ops);
    } else {
        virtio_tmem_refuse(&b, in_len, err);
    }
    if (virtio_tmem_grant_credits(s)) {
        qemu_bh_schedule(s->config_bh);
    }
    resp.status = cpu_to_le32(ok ? VIRTIO_TMEM_S_OK :
                                   VIRTIO_TMEM_S_BAD_BATCH);
    resp.nr_ops = cpu_to_le16(ok ? b.p.nr_ops : 0);
    resp.seq = cpu_to_le64(b.p.seq);
    resp.credits = cpu_to_le64(virtio_tmem_credits(s));
    iov_from_buf(elem->in_sg, elem->in_num, sizeof(resp), b.statuses,
                 (size_t)b.p.nr_ops * sizeof(*b.statuses));
    iov_from_buf(elem->in_sg, elem->in_num, 0, &resp, sizeof(resp));
    qatomic_inc(&s->qstats[queue].batches);
    return MAX(sizeof(resp) + (size_t)b.p.nr_ops * sizeof(*b.statuses),
               b.get_end);
}

static void virtio_tmem_handle_queue(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    unsigned queue = virtio_get_queue_index(vq);
    VirtQueueElement *elem;
    bool used = false;

    if (!s->store) {
        return;
    }
    qatomic_inc(&s->qstats[queue].notifications);
    do {
        virtio_queue_set_notification(vq, 0);
        while ((elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
            ssize_t len = virtio_tmem_handle_batch(s, queue, elem);

            if (len < 0) {
                virtqueue_detach_element(vq, elem, 0);
                g_free(elem);
                return;
            }
            virtqueue_push(vq, elem, len);
            g_free(elem);
            used = true;
        }
        virtio_queue_set_notification(vq, 1);
    } while (!virtio_queue_empty(vq) && !vdev->broken);
    if (used) {
        if (s->ioeventfd_started) {
            virtio_notify_irqfd(vdev, vq);
        } else {
            virtio_notify(vdev, vq);
        }
    }
}

/* ---- ioeventfd: queues served in the IOThread or the main loop ---------- */

static AioContext *virtio_tmem_queue_context(VirtIOTmem *s)
{
    return s->iothread ? iothread_get_aio_context(s->iothread)
                       : qemu_get_aio_context();
}

static void virtio_tmem_detach_bh(void *opaque)
{
    VirtQueue *vq = opaque;

    virtio_queue_aio_detach_host_notifier(vq, qemu_get_current_aio_context());
    /* A kick that raced with the detach is consumed, not lost: reset follows */
    virtio_queue_host_notifier_read(virtio_queue_get_host_notifier(vq));
}

static void virtio_tmem_unset_host_notifiers(VirtIOTmem *s, unsigned n)
{
    BusState *qbus = qdev_get_parent_bus(DEVICE(s));
    unsigned i;

    memory_region_transaction_begin();
    for (i = 0; i < n; i++) {
        virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), i, false);
    }
    /* The transaction needs the eventfds open when it commits. */
    memory_region_transaction_commit();
    for (i = 0; i < n; i++) {
        virtio_bus_cleanup_host_notifier(VIRTIO_BUS(qbus), i);
    }
}

/*
 * Called by the virtio bus whenever ioeventfd starts (DRIVER_OK, VM
 * resumed), so queue processing is tied to the transport's own notifier
 * lifecycle: no window in which a reset can run while a queue is still
 * attached to the IOThread.
 */
static int virtio_tmem_start_ioeventfd(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    BusState *qbus = qdev_get_parent_bus(DEVICE(vdev));
    VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
    AioContext *ctx = virtio_tmem_queue_context(s);
    unsigned i, done;
    int ret;

    if (s->ioeventfd_started) {
        return 0;
    }
    ret = k->set_guest_notifiers(qbus->parent, s->num_queues, true);
    if (ret) {
        error_report("virtio-tmem: cannot set guest notifiers (%d)", ret);
        return -ENOSYS;
    }
    memory_region_transaction_begin();
    for (done = 0; done < s->num_queues; done++) {
        ret = virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), done, true);
        if (ret) {
            break;
        }
    }
    memory_region_transaction_commit();
    if (ret) {
        error_report("virtio-tmem: cannot set host notifier %u (%d)",
                     done, ret);
        virtio_tmem_unset_host_notifiers(s, done);
        k->set_guest_notifiers(qbus->parent, s->num_queues, false);
        return -ENOSYS;
    }
    s->ioeventfd_started = true;
    smp_wmb(); /* the queue handler must see ioeventfd_started */
    for (i = 0; i < s->num_queues; i++) {
        virtio_queue_aio_attach_host_notifier(s->vqs[i], ctx);
    }
    return 0;
}

static void virtio_tmem_stop_ioeventfd(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    BusState *qbus = qdev_get_parent_bus(DEVICE(vdev));
    VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
    AioContext *ctx = virtio_tmem_queue_context(s);
    unsigned i;

    if (!s->ioeventfd_started) {
        return;
    }
    for (i = 0; i < s->num_queues; i++) {
        aio_wait_bh_oneshot(ctx, virtio_tmem_detach_bh, s->vqs[i]);
    }
    virtio_tmem_unset_host_notifiers(s, s->num_queues);
    s->ioeventfd_started = false;
    k->set_guest_notifiers(qbus->parent, s->num_queues, false);
}

/* ---- configuration, features, reset -------------------------------------- */

static void virtio_tmem_get_config(VirtIODevice *vdev, uint8_t *config_data)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    struct virtio_tmem_config config = {
        .page_size = cpu_to_le32(VIRTIO_TMEM_PAGE_SIZE),
        .num_queues = cpu_to_le16(s->num_queues),
        .max_batch = cpu_to_le16(s->max_batch),
        .max_pools = cpu_to_le32(s->max_pools),
        .credits = cpu_to_le64(virtio_tmem_credits(s)),
        .pool_limit = cpu_to_le64(s->size),
    };

    memcpy(config_data, &config, sizeof(config));
}

static uint64_t virtio_tmem_get_features(VirtIODevice *vdev, uint64_t features,
                                         Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);

    features |= s->host_features;
    if (s->num_queues > 1) {
        virtio_add_feature(&features, VIRTIO_TMEM_F_MQ);
    }
    return features;
}

static int virtio_tmem_store_create(VirtIOTmem *s, Error **errp)
{
    struct tmem_config cfg;
    int ret;

    tmem_config_default(&cfg);
    cfg.limit_bytes = s->size;
    cfg.compressor = strcmp(s->compressor, "none") ? TMEM_COMP_LZ4 :
                                                     TMEM_COMP_NONE;
    cfg.lz4_acceleration = s->lz4_acceleration;
    cfg.max_pools = s->max_pools;
    cfg.wb_high_pct = s->writeback_high;
    cfg.wb_low_pct = s->writeback_low;
    ret = tmem_store_create(&cfg, &s->store);
    if (ret) {
        error_setg(errp, "virtio-tmem: cannot create a pool of size=%" PRIu64
                   " with max-pools=%" PRIu32 ": %s", s->size, s->max_pools,
                   tmem_strerror(ret));
        s->store = NULL;
        return ret;
    }
    if (s->image) {
        ret = tmem_store_attach_image(s->store, s->image);
        if (ret) {
            error_setg(errp, "virtio-tmem: swap-image=%s: cannot attach: %s",
                       s->swap_image, tmem_strerror(ret));
            tmem_store_destroy(s->store);
            s->store = NULL;
            return ret;
        }
    }
    qemu_mutex_lock(&s->credit_lock);
    s->credits_granted = 0;
    s->credits_spent = 0;
    s->credits_inflight = 0;
    qemu_mutex_unlock(&s->credit_lock);
    virtio_tmem_grant_credits(s);
    return 0;
}

static void virtio_tmem_reset(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    Error *err = NULL;

    trace_virtio_tmem_reset(s);
    tmem_store_destroy(s->store);
    s->store = NULL;
    if (virtio_tmem_store_create(s, &err)) {
        /* Only a host out of memory gets here: refuse service, loudly. */
        error_report_err(err);
    }
}

/* ---- properties and statistics ------------------------------------------- */

static bool virtio_tmem_check_props(VirtIOTmem *s, Error **errp)
{
    if (!s->compressor) {
        s->compressor = g_strdup("lz4");
    }
    if (s->size < TMEM_MIN_LIMIT || s->size > TMEM_MAX_LIMIT) {
        error_setg(errp, "virtio-tmem: size=%" PRIu64 " must be between "
                   "%llu MiB and %llu GiB", s->size, TMEM_MIN_LIMIT / MiB,
                   TMEM_MAX_LIMIT / GiB);
        return false;
    }
    if (strcmp(s->compressor, "lz4") && strcmp(s->compressor, "none")) {
        error_setg(errp, "virtio-tmem: compressor=%s: must be 'lz4' or "
                   "'none'", s->compressor);
        return false;
    }
    if (s->lz4_acceleration < 1 || s->lz4_acceleration > 65537) {
        error_setg(errp, "virtio-tmem: lz4-acceleration=%" PRIu32 " must be "
                   "between 1 and 65537", s->lz4_acceleration);
        return false;
    }
    if (s->num_queues < 1 || s->num_queues > VIRTIO_TMEM_MAX_QUEUES) {
        error_setg(errp, "virtio-tmem: num-queues=%" PRIu16 " must be "
                   "between 1 and %u", s->num_queues, VIRTIO_TMEM_MAX_QUEUES);
        return false;
    }
    if (s->queue_size < 2 || s->queue_size > VIRTQUEUE_MAX_SIZE ||
        !is_power_of_2(s->queue_size)) {
        error_setg(errp, "virtio-tmem: queue-size=%" PRIu16 " must be a "
                   "power of 2 between 2 and %d", s->queue_size,
                   VIRTQUEUE_MAX_SIZE);
        return false;
    }
    if (s->max_batch < 1 || s->max_batch > VIRTIO_TMEM_MAX_BATCH_LIMIT) {
        error_setg(errp, "virtio-tmem: max-batch=%" PRIu16 " must be "
                   "between 1 and %u", s->max_batch,
                   VIRTIO_TMEM_MAX_BATCH_LIMIT);
        return false;
    }
    if (s->max_pools < 1 || s->max_pools > TMEM_MAX_POOLS) {
        error_setg(errp, "virtio-tmem: max-pools=%" PRIu32 " must be "
                   "between 1 and %u", s->max_pools, TMEM_MAX_POOLS);
        return false;
    }
    if (s->writeback_high < 1 || s->writeback_high > 100) {
        error_setg(errp, "virtio-tmem: writeback-high=%u must be a "
                   "percentage between 1 and 100", s->writeback_high);
        return false;
    }
    if (s->writeback_low >= s->writeback_high) {
        error_setg(errp, "virtio-tmem: writeback-low=%u must be below "
                   "writeback-high=%u", s->writeback_low, s->writeback_high);
        return false;
    }
    if (!s->swap_image && (s->swap_image_size || s->swap_image_unlink ||
                           s->swap_image_direct)) {
        error_setg(errp, "virtio-tmem: swap-image-size, swap-image-unlink "
                   "and swap-image-direct need swap-image=");
        return false;
    }
    if (s->swap_image && !s->swap_image_size) {
        s->swap_image_size = MIN(4 * s->size, TMEM_MAX_IMAGE);
    }
    if (s->swap_image && (s->swap_image_size < TMEM_MIN_IMAGE ||
                          s->swap_image_size > TMEM_MAX_IMAGE ||
                          s->swap_image_size % VIRTIO_TMEM_PAGE_SIZE)) {
        error_setg(errp, "virtio-tmem: swap-image-size=%" PRIu64 " must be "
                   "a multiple of 4 KiB between %llu MiB and %llu TiB",
                   s->swap_image_size, TMEM_MIN_IMAGE / MiB,
                   TMEM_MAX_IMAGE / TiB);
        return false;
    }
    if (s->swap_image && !s->swap_image[0]) {
        error_setg(errp, "virtio-tmem: swap-image= must name a file");
        return false;
    }
    return true;
}

/* From any thread: a failed image I/O (the library counts it too). */
static void virtio_tmem_image_report(void *opaque, const char *op,
                                     uint64_t offset, int err)
{
    VirtIOTmem *s = opaque;

    trace_virtio_tmem_image_error(s, op, offset, err);
    warn_report_once("virtio-tmem: swap-image=%s: %s failed at offset "
                     "%" PRIu64 ": %s (further errors are only counted and "
                     "traced)", s->swap_image, op, offset, strerror(-err));
}

static bool virtio_tmem_image_open(VirtIOTmem *s, Error **errp)
{
    struct tmem_image_config ic = {
        .path = s->swap_image,
        .size_bytes = s->swap_image_size,
        .unlink_path = s->swap_image_unlink,
        .direct = s->swap_image_direct,
        .report = virtio_tmem_image_report,
        .report_opaque = s,
    };
    int os_errno = 0;
    int ret;

    if (!s->swap_image) {
        return true;
    }
    ret = tmem_image_open(&ic, &s->image, &os_errno);
    if (ret) {
        error_setg(errp, "virtio-tmem: swap-image=%s: %s", s->swap_image,
                   os_errno ? strerror(os_errno) : tmem_strerror(ret));
        s->image = NULL;
        return false;
    }
    return true;
}

/* A named counter of the "stats" property. */
typedef struct VirtIOTmemCounter {
    const char *name;
    uint64_t value;
} VirtIOTmemCounter;

/* Visit @n counters as the members of a struct called @name. */
static bool visit_counters(Visitor *v, const char *name,
                           const VirtIOTmemCounter *f, size_t n,
                           Error **errp)
{
    bool ok = false;
    size_t i;

    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return false;
    }
    for (i = 0; i < n; i++) {
        uint64_t value = f[i].value;

        if (!visit_type_uint64(v, f[i].name, &value, errp)) {
            goto out;
        }
    }
    ok = visit_check_struct(v, errp);
out:
    visit_end_struct(v, NULL);
    return ok;
}

static bool visit_kind_stats(Visitor *v, const char *name,
                             const struct tmem_kind_stats *k, Error **errp)
{
    const VirtIOTmemCounter f[] = {
        { "puts", k->puts }, { "gets", k->gets }, { "hits", k->hits },
        { "flushes", k->flushes }, { "flush-objects", k->flush_objects },
        { "flushed-pages", k->flushed_pages },
        { "stored-pages", k->stored_pages }, { "zero-pages", k->zero_pages },
        { "same-pages", k->same_pages }, { "raw-pages", k->raw_pages },
        { "compressed-bytes", k->compressed_bytes }, { "frames", k->frames },
        { "meta-frames", k->meta_frames },
        { "evicted-pages", k->evicted_pages },
        { "evicted-frames", k->evicted_frames },
        { "reject-full", k->reject_full },
        { "reject-incompressible", k->reject_incompressible },
        { "reject-nomem", k->reject_nomem },
    };

    return visit_counters(v, name, f, ARRAY_SIZE(f), errp);
}

static bool visit_queue_stats(Visitor *v, VirtIOTmem *s, unsigned q,
                              Error **errp)
{
    g_autofree char *name = g_strdup_printf("queue%u", q);
    const VirtIOTmemCounter f[] = {
        { "notifications", qatomic_read(&s->qstats[q].notifications) },
        { "batches", qatomic_read(&s->qstats[q].batches) },
        { "ops", qatomic_read(&s->qstats[q].ops) },
    };

    return visit_counters(v, name, f, ARRAY_SIZE(f), errp);
}

static bool visit_image_stats(Visitor *v, const struct tmem_image_stats *im,
                              Error **errp)
{
    const VirtIOTmemCounter f[] = {
        { "frames-written", im->frames_written },
        { "pages-written", im->pages_written },
        { "pages-read", im->pages_read },
        { "pages-in-image", im->pages_in_image },
        { "slots-used", im->slots_used }, { "slots-total", im->slots_total },
        { "bytes-allocated", im->bytes_allocated },
        { "write-errors", im->write_errors },
        { "read-errors", im->read_errors },
        { "checksum-errors", im->checksum_errors },
        { "reserve-errors", im->reserve_errors },
        { "overdraft-puts", im->overdraft_puts },
        { "writeback-runs", im->wakeups },
    };

    return visit_counters(v, "swap-image", f, ARRAY_SIZE(f), errp);
}

static void virtio_tmem_get_stats(Object *obj, Visitor *v, const char *name,
                                  void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    struct tmem_stats st = { 0 };
    uint64_t notifications = 0, batches = 0, ops = 0, granted, spent;
    uint64_t bad_batches = qatomic_read(&s->bad_batches);
    uint64_t bad_ops = qatomic_read(&s->bad_ops);
    uint64_t no_credit = qatomic_read(&s->no_credit);
    unsigned q;

    if (s->store) {
        tmem_get_stats(s->store, &st);
    }
    for (q = 0; q < s->num_queues && s->qstats; q++) {
        notifications += qatomic_read(&s->qstats[q].notifications);
        batches += qatomic_read(&s->qstats[q].batches);
        ops += qatomic_read(&s->qstats[q].ops);
    }
    qemu_mutex_lock(&s->credit_lock);
    granted = s->credits_granted;
    spent = s->credits_spent;
    qemu_mutex_unlock(&s->credit_lock);

    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return;
    }
    if (!visit_kind_stats(v, "ephemeral", &st.kind[TMEM_EPHEMERAL], errp) ||
        !visit_kind_stats(v, "persistent", &st.kind[TMEM_PERSISTENT], errp) ||
        !visit_type_uint64(v, "limit-bytes", &st.limit_bytes, errp) ||
        !visit_type_uint64(v, "used-bytes", &st.used_bytes, errp) ||
        !visit_type_uint64(v, "meta-bytes", &st.meta_bytes, errp) ||
        !visit_type_uint64(v, "pools", &st.pools, errp) ||
        !visit_type_uint64(v, "persistent-capacity",
                           &st.persistent_capacity, errp) ||
        !visit_type_uint64(v, "credits-granted", &granted, errp) ||
        !visit_type_uint64(v, "credits-spent", &spent, errp) ||
        !visit_type_uint64(v, "notifications", &notifications, errp) ||
        !visit_type_uint64(v, "batches", &batches, errp) ||
        !visit_type_uint64(v, "ops", &ops, errp) ||
        !visit_type_uint64(v, "bad-batches", &bad_batches, errp) ||
        !visit_type_uint64(v, "bad-ops", &bad_ops, errp) ||
        !visit_type_uint64(v, "no-credit", &no_credit, errp)) {
        goto out;
    }
    for (q = 0; q < s->num_queues && s->qstats; q++) {
        if (!visit_queue_stats(v, s, q, errp)) {
            goto out;
        }
    }
    if (s->image && !visit_image_stats(v, &st.image, errp)) {
        goto out;
    }
    visit_check_struct(v, errp);
out:
    visit_end_struct(v, NULL);
}

/* ---- realize ------------------------------------------------------------- */

static void virtio_tmem_realize(DeviceState *dev, Error **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIOTmem *s = VIRTIO_TMEM(dev);
    unsigned i;

    if (!virtio_tmem_check_props(s, errp)) {
        return;
    }
    error_setg(&s->migration_blocker, "virtio-tmem: migration is not "
               "supported: persistent pages held for the guest would be "
               "lost (device %s)", dev->id ? dev->id : "without id");
    if (migrate_add_blocker(&s->migration_blocker, errp) < 0) {
        return;
    }
    if (!virtio_tmem_image_open(s, errp)) {
        migrate_del_blocker(&s->migration_blocker);
        return;
    }
    qemu_mutex_init(&s->credit_lock);
    if (virtio_tmem_store_create(s, errp)) {
        migrate_del_blocker(&s->migration_blocker);
        qemu_mutex_destroy(&s->credit_lock);
        tmem_image_close(s->image);
        s->image = NULL;
        return;
    }
    s->config_bh = qemu_bh_new_guarded(virtio_tmem_config_bh, s,
                                       &dev->mem_reentrancy_guard);
    virtio_init(vdev, VIRTIO_ID_TMEM, sizeof(struct virtio_tmem_config));
    s->vqs = g_new0(VirtQueue *, s->num_queues);
    s->ops = g_new0(struct virtio_tmem_op *, s->num_queues);
    s->statuses = g_new0(struct virtio_tmem_op_status *, s->num_queues);
    s->bounce = g_new0(uint8_t *, s->num_queues);
    s->qstats = g_new0(VirtIOTmemQueueStats, s->num_queues);
    for (i = 0; i < s->num_queues; i++) {
        s->vqs[i] = virtio_add_queue(vdev, s->queue_size,
                                     virtio_tmem_handle_queue);
        s->ops[i] = g_new(struct virtio_tmem_op, s->max_batch);
        s->statuses[i] = g_new(struct virtio_tmem_op_status, s->max_batch);
        s->bounce[i] = g_malloc(VIRTIO_TMEM_PAGE_SIZE);
    }
}

static void virtio_tmem_unrealize(DeviceState *dev)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIOTmem *s = VIRTIO_TMEM(dev);
    unsigned i;

    for (i = 0; i < s->num_queues; i++) {
        virtio_delete_queue(s->vqs[i]);
        g_free(s->ops[i]);
        g_free(s->statuses[i]);
        g_free(s->bounce[i]);
    }
    g_free(s->vqs);
    g_free(s->ops);
    g_free(s->statuses);
    g_free(s->bounce);
    g_free(s->qstats);
    s->qstats = NULL;
    qemu_bh_delete(s->config_bh);
    virtio_cleanup(vdev);
    tmem_store_destroy(s->store);
    s->store = NULL;
    tmem_image_close(s->image);
    s->image = NULL;
    qemu_mutex_destroy(&s->credit_lock);
    migrate_del_blocker(&s->migration_blocker);
}

static void virtio_tmem_instance_init(Object *obj)
{
    object_property_add(obj, "stats", "VirtioTmemStats",
                        virtio_tmem_get_stats, NULL, NULL, NULL);
}

static const Property virtio_tmem_properties[] = {
    DEFINE_PROP_SIZE("size", VirtIOTmem, size, VIRTIO_TMEM_DEFAULT_SIZE),
    DEFINE_PROP_STRING("compressor", VirtIOTmem, compressor),
    DEFINE_PROP_UINT32("lz4-acceleration", VirtIOTmem, lz4_acceleration, 1),
    DEFINE_PROP_UINT16("num-queues", VirtIOTmem, num_queues, 1),
    DEFINE_PROP_UINT16("queue-size", VirtIOTmem, queue_size,
                       VIRTIO_TMEM_DEFAULT_QUEUE_SIZE),
    DEFINE_PROP_UINT16("max-batch", VirtIOTmem, max_batch,
                       VIRTIO_TMEM_DEFAULT_MAX_BATCH),
    DEFINE_PROP_UINT32("max-pools", VirtIOTmem, max_pools,
                       VIRTIO_TMEM_DEFAULT_MAX_POOLS),
    DEFINE_PROP_STRING("swap-image", VirtIOTmem, swap_image),
    DEFINE_PROP_SIZE("swap-image-size", VirtIOTmem, swap_image_size, 0),
    DEFINE_PROP_BOOL("swap-image-unlink", VirtIOTmem, swap_image_unlink,
                     false),
    DEFINE_PROP_BOOL("swap-image-direct", VirtIOTmem, swap_image_direct,
                     false),
    DEFINE_PROP_UINT8("writeback-high", VirtIOTmem, writeback_high, 90),
    DEFINE_PROP_UINT8("writeback-low", VirtIOTmem, writeback_low, 75),
    DEFINE_PROP_LINK("iothread", VirtIOTmem, iothread, TYPE_IOTHREAD,
                     IOThread *),
    DEFINE_PROP_BIT64("persistent", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_PERSISTENT, true),
    DEFINE_PROP_BIT64("shared", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_SHARED, true),
};

static void virtio_tmem_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioDeviceClass *vdc = VIRTIO_DEVICE_CLASS(klass);

    device_class_set_props(dc, virtio_tmem_properties);
    object_class_property_set_description(klass, "size",
        "host memory for the guest's pages, metadata included");
    object_class_property_set_description(klass, "compressor",
        "'lz4' (default) or 'none'");
    object_class_property_set_description(klass, "lz4-acceleration",
        "LZ4_compress_fast() acceleration, 1..65537 (higher: faster, larger)");
    object_class_property_set_description(klass, "num-queues",
        "request queues, 1..64");
    object_class_property_set_description(klass, "queue-size",
        "descriptors per request queue, a power of 2 up to 1024");
    object_class_property_set_description(klass, "max-batch",
        "most ops in one request, 1..512");
    object_class_property_set_description(klass, "max-pools",
        "most pools the guest may create");
    object_class_property_set_description(klass, "swap-image",
        "host file that persistent pages are written back to when the pool "
        "is full (created 0600 or truncated; holds guest memory)");
    object_class_property_set_description(klass, "swap-image-size",
        "most the swap image may grow to (default: 4 x size)");
    object_class_property_set_description(klass, "swap-image-unlink",
        "remove the swap image's name once it is open");
    object_class_property_set_description(klass, "swap-image-direct",
        "open the swap image with O_DIRECT (bypass the host page cache)");
    object_class_property_set_description(klass, "writeback-high",
        "percentage of size at which background writeback starts");
    object_class_property_set_description(klass, "writeback-low",
        "percentage of size at which background writeback stops");
    object_class_property_set_description(klass, "iothread",
        "IOThread that serves the request queues (default: main loop)");
    object_class_property_set_description(klass, "persistent",
        "offer persistent pools (frontswap) with credits");
    object_class_property_set_description(klass, "shared",
        "offer pools shared by UUID");
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    dc->desc = "virtio transcendent memory (cleancache and frontswap pool)";
    vdc->realize = virtio_tmem_realize;
    vdc->unrealize = virtio_tmem_unrealize;
    vdc->get_config = virtio_tmem_get_config;
    vdc->get_features = virtio_tmem_get_features;
    vdc->start_ioeventfd = virtio_tmem_start_ioeventfd;
    vdc->stop_ioeventfd = virtio_tmem_stop_ioeventfd;
    vdc->reset = virtio_tmem_reset;
}

static const TypeInfo virtio_tmem_info = {
    .name = TYPE_VIRTIO_TMEM,
    .parent = TYPE_VIRTIO_DEVICE,
    .instance_size = sizeof(VirtIOTmem),
    .instance_init = virtio_tmem_instance_init,
    .class_init = virtio_tmem_class_init,
};

static void virtio_register_types(void)
{
    type_register_static(&virtio_tmem_info);
}

type_init(virtio_register_types)
