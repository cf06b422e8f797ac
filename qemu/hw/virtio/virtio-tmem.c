/*
 * Virtio transcendent memory device
 *
 * Serves cleancache (ephemeral) and frontswap (persistent) pages of a guest
 * from a host pool of LZ4- or zstd-compressed pages packed by zbud
 * (libtmem-pool).
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
#include "migration/misc.h"
#include "migration/qemu-file.h"
#include "migration/qemu-file-types.h"
#include "migration/register.h"
#include "migration/vmstate.h"
#include "qapi/error.h"
#include "qapi/qapi-events-machine.h"
#include "qapi/visitor.h"
#include "qemu/timer.h"
#include "system/runstate.h"
#include "trace.h"

#include "tmem.h"
#include "vtmem_codec.h"

/*
 * The device's own defaults.  Those of the pool (compressor, LZ4
 * acceleration, zstd level, max-pools, writeback watermarks) are
 * libtmem-pool's TMEM_DEFAULT_*; only size differs: the library's default
 * suits its tests and tools, a guest's page cache and swap want more.
 */
#define VIRTIO_TMEM_DEFAULT_SIZE        (256 * MiB)
#define VIRTIO_TMEM_DEFAULT_QUEUE_SIZE  256
#define VIRTIO_TMEM_DEFAULT_MAX_BATCH   128
/* A page split over more descriptors than this goes through a bounce page. */
#define VIRTIO_TMEM_PAGE_IOV_MAX        16

/* ---- credits ------------------------------------------------------------- */

/*
 * Credits (docs/virtio-tmem-spec.md, "Credits") are counted twice:
 *
 * - credits_granted, under credit_lock, is the live count.  The queue
 *   handler raises it after every batch (IOThread or main loop) and copies
 *   it into each response header.
 * - config_credits is what the configuration space shows.  It changes only
 *   under the BQL and always together with vdev->generation, so that a
 *   driver reading the 64-bit field as two 32-bit halves sees the
 *   generation move and reads again (Linux: __virtio_cread_many()).  The
 *   handler cannot bump the generation itself: vCPUs read it under the BQL
 *   while the IOThread runs without it.
 *
 * config_credits <= credits_granted at all times: the configuration may lag
 * the live count by one main loop iteration, never lead it.
 */

/*
 * Caller holds credit_lock.  Most credited PUTs the driver may issue since
 * reset: the credits granted, or while a credit cap is set (see
 * "resizing"), what the driver acknowledged of it.
 */
static uint64_t virtio_tmem_credit_bound(VirtIOTmem *s)
{
    return s->credit_cap == VIRTIO_TMEM_NO_LIMIT ? s->credits_granted :
                                                  s->credit_bound;
}

/*
 * Caller holds credit_lock (or the VM is stopped).  Credited PUTs the
 * driver may still issue: what a migration's destination must honour.
 */
static uint64_t virtio_tmem_credits_owed(VirtIOTmem *s)
{
    uint64_t bound = virtio_tmem_credit_bound(s);

    return bound > s->credits_spent ? bound - s->credits_spent : 0;
}

/*
 * Context: IOThread or main loop (queue handler); main loop (features).
 *
 * Grant whatever the pool can always accept beyond what is outstanding.
 * While a credit cap is set, the resize tick raises the cap instead.
 * Returns true if anything was granted; sets config_notify if the driver
 * may have run out (fewer than max_batch credits were left before the
 * grant) and must hear of it through a configuration change interrupt.
 */
static bool virtio_tmem_grant_credits(VirtIOTmem *s)
{
    uint64_t capacity, outstanding, old_balance;
    bool granted = false;

    /* Only a driver that negotiated PERSISTENT may have credits at all. */
    if (!qatomic_read(&s->credits_enabled) || !s->store) {
        return false;
    }
    qemu_mutex_lock(&s->credit_lock);
    capacity = tmem_persistent_capacity(s->store);
    outstanding = s->credits_granted - s->credits_spent;
    if (capacity > outstanding && s->credit_cap == VIRTIO_TMEM_NO_LIMIT) {
        old_balance = outstanding - s->credits_inflight;
        s->credits_granted += capacity - outstanding;
        if (old_balance < s->max_batch) {
            s->config_notify = true;
        }
        granted = true;
        trace_virtio_tmem_credits(s, s->credits_granted, s->credits_spent);
    }
    qemu_mutex_unlock(&s->credit_lock);
    return granted;
}

/* Context: IOThread or main loop.  Take a credit for a persistent put. */
static bool virtio_tmem_credit_take(VirtIOTmem *s)
{
    bool ok;

    qemu_mutex_lock(&s->credit_lock);
    ok = virtio_tmem_credit_bound(s) - s->credits_spent > s->credits_inflight;
    if (ok) {
        s->credits_inflight++;
    }
    qemu_mutex_unlock(&s->credit_lock);
    return ok;
}

/*
 * Context: IOThread or main loop.  The put holding a credit is done (stored
 * or not): the credit is spent.
 */
static void virtio_tmem_credit_done(VirtIOTmem *s)
{
    qemu_mutex_lock(&s->credit_lock);
    s->credits_inflight--;
    s->credits_spent++;
    qemu_mutex_unlock(&s->credit_lock);
}

/* Context: any.  The live count, for response headers and statistics. */
static uint64_t virtio_tmem_credits(VirtIOTmem *s)
{
    uint64_t credits;

    qemu_mutex_lock(&s->credit_lock);
    credits = s->credits_granted;
    qemu_mutex_unlock(&s->credit_lock);
    return credits;
}

/*
 * Context: main loop, BQL held.
 *
 * Show the live count in the configuration space.  A change always bumps
 * the configuration generation; it also interrupts the driver if a grant
 * asked for it and the driver is running (virtio_notify_config() bumps the
 * generation itself, and does nothing before DRIVER_OK).
 */
static void virtio_tmem_publish_credits(VirtIOTmem *s)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    bool changed, notify;

    qemu_mutex_lock(&s->credit_lock);
    changed = s->config_credits != s->credits_granted;
    s->config_credits = s->credits_granted;
    notify = s->config_notify;
    s->config_notify = false;
    qemu_mutex_unlock(&s->credit_lock);
    if (!changed) {
        return;
    }
    if (notify && (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        virtio_notify_config(vdev);
    } else {
        vdev->generation++;
    }
}

/* Context: main loop, BQL held; scheduled by the queue handler. */
static void virtio_tmem_config_bh(void *opaque)
{
    virtio_tmem_publish_credits(VIRTIO_TMEM(opaque));
}

/* ---- resizing ------------------------------------------------------------ */

/*
 * "size" is a target that may change at run time (qom-set).  Growing gives
 * the store room at once; the next batch grants it as credits.  Shrinking
 * goes, in the spec's order ("Resizing"):
 *
 * 1. The store's limit (pool_limit) drops to the target, or to what the
 *    credits already granted still need (tmem_limit_for_credits()) if that
 *    is higher: no credit is granted beyond the target, none granted
 *    before is broken.
 * 2. A driver that negotiated VIRTIO_TMEM_F_RESIZE is given a credit cap:
 *    the credited PUTs it may issue in all, as many as the target can
 *    honour.  Once it acknowledges the cap (cap_ack_gen), the credits it
 *    gave up no longer hold the limit up.
 * 3. The shrink thread compacts, evicts ephemeral pages and writes
 *    persistent ones back to the swap image (tmem_shrink()).
 * 4. Persistent pages it cannot shed are asked of the guest
 *    (persistent_target), which brings them back into its own memory.
 *
 * A tick in the main loop runs the steps again every
 * VIRTIO_TMEM_RESIZE_TICK_MS until the store is within its target, and
 * MEMORY_DEVICE_SIZE_CHANGE is sent when it gets there.
 */
#define VIRTIO_TMEM_RESIZE_TICK_MS      100
/* Units tmem_shrink() frees per call: a reset waits for at most this many */
#define VIRTIO_TMEM_SHRINK_UNITS        256

/* Context: main loop, BQL held.  Tell the driver the configuration moved. */
static void virtio_tmem_config_changed(VirtIOTmem *s)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);

    if (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) {
        virtio_notify_config(vdev);
    } else {
        vdev->generation++;
    }
}

/* Context: the shrink thread. */
static void *virtio_tmem_resize_thread(void *opaque)
{
    VirtIOTmem *s = opaque;

    qemu_mutex_lock(&s->resize_lock);
    for (;;) {
        struct tmem_store *store;
        struct tmem_resize st;
        int ret;

        while (!s->resize_store && !s->resize_stop) {
            qemu_cond_wait(&s->resize_cond, &s->resize_lock);
        }
        if (s->resize_stop) {
            break;
        }
        store = s->resize_store;
        s->resize_store = NULL;
        s->resize_busy = true;
        qemu_mutex_unlock(&s->resize_lock);
        ret = tmem_shrink(store, VIRTIO_TMEM_SHRINK_UNITS, &st);
        qemu_mutex_lock(&s->resize_lock);
        s->resize_busy = false;
        s->resize_ret = ret;
        s->resize_used = st.used_bytes;
        s->resize_start = st.start_bytes;
        s->resize_excess = st.excess_pages;
        s->resize_persistent = st.persistent_pages;
        qemu_cond_broadcast(&s->resize_cond);
        qemu_bh_schedule(s->resize_bh);
    }
    qemu_mutex_unlock(&s->resize_lock);
    return NULL;
}

/* Context: main loop, BQL held.  Have the thread shrink the store. */
static void virtio_tmem_resize_kick(VirtIOTmem *s)
{
    qemu_mutex_lock(&s->resize_lock);
    if (!s->resize_busy) {
        s->resize_store = s->store;
        qemu_cond_signal(&s->resize_cond);
    }
    qemu_mutex_unlock(&s->resize_lock);
}

/*
 * Context: main loop, BQL held.  Before the store is replaced or freed:
 * cancel a shrink not started and wait for the one running (at most
 * VIRTIO_TMEM_SHRINK_UNITS units).
 */
static void virtio_tmem_resize_quiesce(VirtIOTmem *s)
{
    qemu_mutex_lock(&s->resize_lock);
    s->resize_store = NULL;
    while (s->resize_busy) {
        qemu_cond_wait(&s->resize_cond, &s->resize_lock);
    }
    s->resize_ret = 0;
    s->resize_excess = 0;
    qemu_mutex_unlock(&s->resize_lock);
}

/*
 * Context: main loop, BQL held.  Step 2: the credit cap.  Returns true if
 * the configuration changed.
 *
 * The cap is the credited PUTs processed so far plus the fit: those the
 * target can honour.  It is cut when the driver may still send more than
 * that, raised once the fit allows a batch more (not at every put), and
 * lifted once the target can honour every credit granted: grants then
 * resume as before.  Puts spending a cap need no new cut: each lowers
 * what the driver may still send by one and the fit by at most one.
 */
static bool virtio_tmem_resize_cap(VirtIOTmem *s)
{
    uint64_t base, w, fit, cap, left;
    bool changed = false;

    if (!qatomic_read(&s->credits_enabled) ||
        !virtio_vdev_has_feature(VIRTIO_DEVICE(s), VIRTIO_TMEM_F_RESIZE)) {
        return false;
    }
    base = tmem_limit_for_credits(s->store, 0);
    w = tmem_limit_for_credits(s->store, 1) - base;
    fit = s->size > base ? (s->size - base) / w : 0;
    qemu_mutex_lock(&s->credit_lock);
    cap = s->credits_spent + fit;
    left = MIN(s->credits_granted, s->credit_cap);
    left = left > s->credits_spent ? left - s->credits_spent : 0;
    if (cap >= s->credits_granted) {
        if (s->credit_cap != VIRTIO_TMEM_NO_LIMIT) {
            s->credit_cap = VIRTIO_TMEM_NO_LIMIT;
            s->cap_gen++;
            changed = true;
        }
    } else if (left > fit) {
        /* a cut holds only once acknowledged: until then, all granted */
        if (s->credit_cap == VIRTIO_TMEM_NO_LIMIT) {
            s->credit_bound = s->credits_granted;
        }
        s->credit_cap = cap;
        s->cap_gen++;
        changed = true;
    } else if (s->credit_cap != VIRTIO_TMEM_NO_LIMIT &&
               cap >= s->credit_cap + s->max_batch) {
        /* a raise holds at once */
        s->credit_bound = MAX(s->credit_bound, cap);
        s->credit_cap = cap;
        s->cap_gen++;
        changed = true;
    }
    qemu_mutex_unlock(&s->credit_lock);
    return changed;
}

/*
 * Context: main loop, BQL held.  Step 4: ask the guest for what the shrink
 * thread could not free.  Returns true if the configuration changed.
 */
static bool virtio_tmem_resize_ask(VirtIOTmem *s, bool within)
{
    uint64_t target = VIRTIO_TMEM_NO_LIMIT;

    if (!virtio_vdev_has_feature(VIRTIO_DEVICE(s), VIRTIO_TMEM_F_RESIZE)) {
        return false;
    }
    qemu_mutex_lock(&s->resize_lock);
    if (!within && s->resize_ret == -TMEM_E_FULL && s->resize_excess) {
        target = s->resize_persistent - s->resize_excess;
    } else if (!within && s->persistent_target != VIRTIO_TMEM_NO_LIMIT) {
        target = s->persistent_target;  /* still on its way */
    }
    qemu_mutex_unlock(&s->resize_lock);
    if (target == s->persistent_target) {
        return false;
    }
    s->persistent_target = target;
    return true;
}

/* Context: main loop, BQL held.  The store reached its target. */
static void virtio_tmem_resize_report(VirtIOTmem *s)
{
    DeviceState *proxy = DEVICE(s)->parent_bus ?
                         DEVICE(s)->parent_bus->parent : NULL;
    DeviceState *dev = proxy ? proxy : DEVICE(s);
    g_autofree char *path = object_get_canonical_path(OBJECT(dev));

    s->resize_reported = true;
    qapi_event_send_memory_device_size_change(dev->id, s->size, path);
}

/*
 * Context: main loop, BQL held: a change of size, the driver's
 * acknowledgement of a cap, the shrink thread's report, the tick.  Runs
 * the steps above once.
 */
static void virtio_tmem_resize_update(VirtIOTmem *s)
{
    uint64_t bound, outstanding = 0, limit = s->size;
    struct tmem_resize st;
    bool changed, within;

    if (!s->store) {
        return;
    }
    qemu_mutex_lock(&s->credit_lock);
    bound = virtio_tmem_credit_bound(s);
    if (bound > s->credits_spent) {
        outstanding = bound - s->credits_spent;
    }
    qemu_mutex_unlock(&s->credit_lock);
    /* step 1: no room needed when no credit is outstanding */
    if (outstanding) {
        limit = MAX(limit, tmem_limit_for_credits(s->store, outstanding));
    }
    limit = MIN(limit, s->max_size);
    if (limit != s->pool_limit && !tmem_set_limit(s->store, limit)) {
        s->pool_limit = limit;
    }
    changed = virtio_tmem_resize_cap(s);
    /* step 3 */
    tmem_resize_status(s->store, &st);
    if (!st.done) {
        virtio_tmem_resize_kick(s);
    }
    within = st.done && s->pool_limit == s->size;
    changed |= virtio_tmem_resize_ask(s, within);
    if (changed) {
        virtio_tmem_config_changed(s);
    }
    if (within && !s->resize_reported) {
        virtio_tmem_resize_report(s);
    }
    if (!within || s->credit_cap != VIRTIO_TMEM_NO_LIMIT) {
        timer_mod(s->resize_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                  VIRTIO_TMEM_RESIZE_TICK_MS);
    } else if (virtio_tmem_grant_credits(s)) {
        virtio_tmem_publish_credits(s);
    }
}

/* Context: main loop, BQL held. */
static void virtio_tmem_resize_bh(void *opaque)
{
    virtio_tmem_resize_update(VIRTIO_TMEM(opaque));
}

/* Context: main loop, BQL held. */
static void virtio_tmem_resize_tick(void *opaque)
{
    VirtIOTmem *s = VIRTIO_TMEM(opaque);

    /* Credits the driver spent meanwhile no longer hold the limit up */
    virtio_tmem_resize_update(s);
}

/*
 * Context: main loop, BQL held (vCPU config write).  The driver
 * acknowledged credit cap cap_ack_gen, promising to issue no more than
 * cap_ack credited PUTs in all until it sees a higher one: only that many
 * can still arrive.  An acknowledgement of an older cap changes nothing:
 * the driver has yet to read the newer one.
 */
static void virtio_tmem_cap_acked(VirtIOTmem *s)
{
    bool now = false;

    qemu_mutex_lock(&s->credit_lock);
    if (s->credit_cap != VIRTIO_TMEM_NO_LIMIT &&
        s->cap_ack_gen == s->cap_gen) {
        s->credit_bound = MIN(s->credit_bound,
                              MAX(s->cap_ack, s->credits_spent));
        now = true;
    }
    qemu_mutex_unlock(&s->credit_lock);
    if (now) {
        virtio_tmem_resize_update(s);
    }
}

/*
 * Context: main loop, BQL held (reset, realize).  Forget every resize
 * state the driver saw; the store is new (or about to be).
 */
static void virtio_tmem_resize_reset(VirtIOTmem *s)
{
    qemu_mutex_lock(&s->credit_lock);
    s->credit_cap = VIRTIO_TMEM_NO_LIMIT;
    s->credit_bound = 0;
    qemu_mutex_unlock(&s->credit_lock);
    s->persistent_target = VIRTIO_TMEM_NO_LIMIT;
    s->cap_gen = 0;
    s->cap_ack_gen = 0;
    s->cap_ack = 0;
    s->persistent_actual = 0;
    s->pool_limit = s->size;
    if (s->resize_timer) {
        timer_del(s->resize_timer);
    }
}

/* ---- pressure policy ----------------------------------------------------- */

/*
 * auto-shrink=on: every pressure-interval ms, read the host's memory
 * pressure (PSI: the "some avg10" of /proc/pressure/memory, or a cgroup's
 * memory.pressure given as pressure-file) and move size within
 * [min-size, max-size]: down by an eighth of max-size while avg10 is above
 * pressure-threshold, up by a sixteenth once it has stayed below a quarter
 * of the threshold for VIRTIO_TMEM_GROW_QUIET readings.  Each move goes
 * through the same path as a qom-set of size.  The file is small and
 * local: a read in the main loop costs microseconds.
 */
#define VIRTIO_TMEM_GROW_QUIET          5

/*
 * The "some avg10" of a PSI file, in hundredths of a percent, or -1 if
 * @text is not one ("some avg10=1.23 avg60=... avg300=... total=...").
 */
static int virtio_tmem_psi_some_avg10(const char *text)
{
    unsigned whole, frac;
    char dot;

    if (sscanf(text, "some avg10=%u%c%2u", &whole, &dot, &frac) != 3 ||
        dot != '.' || whole > 100) {
        return -1;
    }
    return whole * 100 + frac;
}

/*
 * Context: main loop, BQL held (qom-set of size, the pressure policy).
 * pool_limit in the configuration shows the target.
 */
static void virtio_tmem_set_target(VirtIOTmem *s, uint64_t size)
{
    if (size == s->size) {
        return;
    }
    s->size = size;
    s->resize_reported = false;
    virtio_tmem_config_changed(s);
    virtio_tmem_resize_update(s);
}

static void virtio_tmem_pressure_tick(void *opaque)
{
    VirtIOTmem *s = VIRTIO_TMEM(opaque);
    uint64_t step = QEMU_ALIGN_DOWN(s->max_size / 8, VIRTIO_TMEM_PAGE_SIZE);
    g_autofree char *text = NULL;
    g_autoptr(GError) gerr = NULL;
    int avg10 = -1;

    if (!g_file_get_contents(s->pressure_file, &text, NULL, &gerr)) {
        if (!s->pressure_warned) {
            warn_report("virtio-tmem: " VIRTIO_TMEM_PRESSURE_FILE_PROP
                        "=%s: %s; size stays %" PRIu64, s->pressure_file,
                        gerr->message, s->size);
        }
    } else {
        avg10 = virtio_tmem_psi_some_avg10(text);
        if (avg10 < 0 && !s->pressure_warned) {
            warn_report("virtio-tmem: " VIRTIO_TMEM_PRESSURE_FILE_PROP
                        "=%s does not start with 'some avg10=N.NN'; size "
                        "stays %" PRIu64, s->pressure_file, s->size);
        }
    }
    /* one warning per spell of bad readings */
    s->pressure_warned = avg10 < 0;
    if (avg10 > (int)s->pressure_threshold * 100) {
        s->pressure_quiet = 0;
        virtio_tmem_set_target(s, MAX(s->min_size, s->size > step ?
                                      s->size - step : 0));
    } else if (avg10 >= 0 && avg10 * 4 < (int)s->pressure_threshold * 100) {
        if (++s->pressure_quiet >= VIRTIO_TMEM_GROW_QUIET) {
            s->pressure_quiet = 0;
            virtio_tmem_set_target(s, MIN(s->max_size, s->size + step / 2));
        }
    } else {
        s->pressure_quiet = 0;
    }
    timer_mod(s->pressure_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
              s->pressure_interval);
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
     * End of the last byte written into the writable part: the used
     * length.  GET pages sit at fixed slots, so a hit after a miss ends
     * past slots that were not written; the length must still cover it
     * (the core marks only that many bytes dirty, and copies only that
     * many back from a bounce buffer).
     */
    size_t written_end;
} VirtIOTmemBatch;

/* Context: IOThread or main loop, like every op_*() function below. */
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

/*
 * The status for a store error.  A persistent put that fails for room
 * cannot be answered NO_SPACE: the driver has acknowledged its page
 * already, so that would be a device failure (S_DEVICE_ERROR).
 */
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

/*
 * NEW_POOL.  A pool kind is allowed only if its feature was negotiated,
 * not merely offered: a persistent pool without credits could take no
 * page, a shared pool lets two guests' drivers meet by UUID.
 */
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
    /* For NEW_POOL, "full" means the pool table, not the memory */
    if (ret == -TMEM_E_FULL) {
        op_status(b, i, VIRTIO_TMEM_S_NO_POOLS, 0);
    } else if (ret < 0) {
        op_status(b, i, status_of_tmem_error(ret, false), 0);
    } else {
        op_status(b, i, VIRTIO_TMEM_S_OK, ret);
    }
}

/*
 * A PUT that is refused before it reaches the store (no credit, or
 * malformed) must still leave no page under its key: the spec says a
 * failed PUT removes the older page, and the driver relies on it.  A
 * frontswap store that fails makes the kernel write the page to its swap
 * device; if the older copy stayed here, a later load would return it.
 * The store's own failure paths remove it themselves.
 */
static void put_refused(VirtIOTmemBatch *b, uint32_t pool_id,
                        const struct vtmem_oid *key_oid, uint64_t index)
{
    struct tmem_oid oid;

    memcpy(&oid, key_oid, sizeof(oid));
    tmem_flush_page(b->s->store, pool_id, &oid, index);
}

/*
 * PUT.  A persistent page needs a credit, taken before the store sees the
 * page and counted as spent once it is done either way: a credit in flight
 * is still outstanding, so the grant after this batch cannot hand its room
 * out twice.
 */
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
            put_refused(b, info->pool_id, &info->oid, info->index);
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

/*
 * GET.  The page is decompressed straight into guest memory; a miss
 * writes nothing into its slot (the status says so), a hit extends the
 * used length to the end of its slot.
 */
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
    b->written_end = MAX(b->written_end, off + VIRTIO_TMEM_PAGE_SIZE);
    op_status(b, i, VIRTIO_TMEM_S_OK, excl);
}

/*
 * FLUSH_PAGE, FLUSH_OBJECT, FLUSH_POOL and DESTROY_POOL: removals, whose
 * value is the number of pages removed.  The room they free becomes
 * credits after the batch, not here: one grant per batch.
 */
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

/*
 * A malformed op whose opcode is PUT still names a key: remove the page
 * under it, as for any failed PUT.  The codec stops decoding at the first
 * bad field, so the key is read from the op here.
 */
static void malformed_put(VirtIOTmemBatch *b, const struct virtio_tmem_op *op)
{
    struct vtmem_oid oid;
    unsigned k;

    for (k = 0; k < ARRAY_SIZE(oid.id); k++) {
        oid.id[k] = le64_to_cpu(op->u.key.oid[k]);
    }
    put_refused(b, le32_to_cpu(op->pool_id), &oid,
                le64_to_cpu(op->u.key.index));
}

/*
 * Run the ops of a well-formed batch in array order.  Each op is decoded
 * from the host copy made once by virtio_tmem_handle_batch(), never from
 * guest memory again: the driver cannot change an op between its checks
 * and its use.
 */
static void virtio_tmem_execute(VirtIOTmemBatch *b)
{
    unsigned i, put = 0, get = 0;

    for (i = 0; i < b->p.nr_ops; i++) {
        int dir = vtmem_op_page_dir(b->ops[i].opcode);
        /* A malformed PUT or GET still owns its page slot (spec 5.x.6.8) */
        int page = dir > 0 ? (int)put++ : dir < 0 ? (int)get++ : -1;
        struct vtmem_op_info info;
        unsigned status = vtmem_decode_op(&b->ops[i], page, &info);

        if (status != VIRTIO_TMEM_S_OK) {
            qatomic_inc(&b->s->bad_ops);
            if (b->ops[i].opcode == VIRTIO_TMEM_OP_PUT) {
                malformed_put(b, &b->ops[i]);
            }
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

/*
 * Answer a malformed batch: nothing was done, not even the removals of
 * failed PUTs (the batch's bytes cannot be trusted to say what its ops
 * are).
 */
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
 * Context: IOThread or main loop.
 *
 * Run one descriptor chain.  Returns the used length (the end of the last
 * byte written), or -1 if the chain cannot even carry a response (the
 * device then needs a reset).
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
    /*
     * Room freed by this batch becomes credits now; the configuration
     * space follows in the main loop (see "credits" above).
     */
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
    return MAX(b.written_end,
               sizeof(resp) + (size_t)b.p.nr_ops * sizeof(*b.statuses));
}

/*
 * Context: IOThread or main loop (the queue's host notifier, see
 * virtio_tmem_start_ioeventfd()), or the vCPU thread under the BQL when
 * ioeventfd is off.  Every queue of the device is served in the same
 * context, so handlers of two queues never run at once.
 */
static void virtio_tmem_handle_queue(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    unsigned queue = virtio_get_queue_index(vq);
    VirtQueueElement *elem;
    bool used = false;

    if (!s->store) {
        /*
         * The pool could not be re-created at the last reset (host out of
         * memory): say so instead of leaving the driver waiting forever.
         * Its credits were zeroed then; a reset tries again.
         */
        virtio_error(vdev, "virtio-tmem: no pool (its re-creation at reset "
                     "failed); reset the device to try again");
        return;
    }
    qatomic_inc(&s->qstats[queue].notifications);
    /*
     * x-stall: leave every request on the ring.  Nothing is lost: the ring
     * still holds them, and clearing x-stall kicks every queue again.
     */
    if (qatomic_read(&s->stall)) {
        return;
    }
    /*
     * Pop with notifications off, then turn them on and look again: a
     * request made available between the last pop and the re-enable would
     * otherwise wait for a kick the driver suppressed.
     * virtio_queue_set_notification() has the barrier that orders the
     * event write before the re-check (pairs with the driver's barrier
     * between its avail index write and its event read).
     */
    do {
        virtio_queue_set_notification(vq, 0);
        /* Only chains of guest RAM: see vdev->ram_only at realize */
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
    /*
     * One interrupt per handler run, not per batch.  In the AioContext the
     * irqfd path sends it without the BQL; without ioeventfd (vCPU thread,
     * BQL held) the plain path does.
     */
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

/*
 * Context: the queues' AioContext (IOThread or main loop), run there by
 * aio_wait_bh_oneshot() so that no handler is running while it detaches.
 *
 * A kick still pending is cleared, not served: the caller waits with the
 * BQL held, and whatever stopped the queues (a reset, a VM stop, bus
 * mastering turned off, an unplug) does not want requests served now.
 * Nothing is lost: every way back to serving them goes through
 * virtio_tmem_start_ioeventfd(), which kicks every queue.  (A kick that
 * arrives after this, before the bus unassigns the ioeventfd, is served
 * by virtio_bus_cleanup_host_notifier() in the main loop, under the BQL.)
 */
static void virtio_tmem_detach_bh(void *opaque)
{
    VirtQueue *vq = opaque;

    virtio_queue_aio_detach_host_notifier(vq, qemu_get_current_aio_context());
    event_notifier_test_and_clear(virtio_queue_get_host_notifier(vq));
}

/* Context: main loop, BQL held. */
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
 * Context: main loop, BQL held.
 *
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
    /*
     * No barrier needed before the handler reads this: attaching publishes
     * the handler through the AioContext's handler list (qemu_lockcnt and
     * an RCU list insertion, release semantics), and the handler only runs
     * after the AioContext read that list (acquire).
     */
    s->ioeventfd_started = true;
    for (i = 0; i < s->num_queues; i++) {
        virtio_queue_aio_attach_host_notifier(s->vqs[i], ctx);
    }
    /*
     * Serve what is on the rings already: requests made available while
     * the VM was stopped, or left there by x-stall.  The handler finds an
     * empty or unset ring harmless.
     */
    for (i = 0; i < s->num_queues; i++) {
        event_notifier_set(virtio_queue_get_host_notifier(s->vqs[i]));
    }
    return 0;
}

/*
 * Context: main loop, BQL held.  Called by the bus before a reset, an
 * unplug or a VM stop; once it returns no handler runs or will run until
 * the next start.
 */
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

/* Context: main loop, BQL held (a vCPU's configuration read). */
static void virtio_tmem_get_config(VirtIODevice *vdev, uint8_t *config_data)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    struct virtio_tmem_config config = {
        .page_size = cpu_to_le32(VIRTIO_TMEM_PAGE_SIZE),
        .num_queues = cpu_to_le16(s->num_queues),
        .max_batch = cpu_to_le16(s->max_batch),
        .max_pools = cpu_to_le32(s->max_pools),
        /* not the live count: see virtio_tmem_publish_credits() */
        .credits = cpu_to_le64(s->config_credits),
        .pool_limit = cpu_to_le64(s->size),
        .persistent_target = cpu_to_le64(s->persistent_target),
        .credit_cap = cpu_to_le64(s->credit_cap),
        .cap_gen = cpu_to_le32(s->cap_gen),
        .cap_ack_gen = cpu_to_le32(s->cap_ack_gen),
        .cap_ack = cpu_to_le64(s->cap_ack),
        .persistent_actual = cpu_to_le64(s->persistent_actual),
    };

    memcpy(config_data, &config, sizeof(config));
}

/*
 * Context: main loop, BQL held (a vCPU's configuration write).  Only the
 * driver-written fields of VIRTIO_TMEM_F_RESIZE are taken; the driver
 * writes cap_ack_gen last, so that cap_ack is whole when it changes.
 */
static void virtio_tmem_set_config(VirtIODevice *vdev,
                                   const uint8_t *config_data)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    struct virtio_tmem_config config;
    uint32_t ack_gen;

    if (!virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_RESIZE)) {
        return;
    }
    memcpy(&config, config_data, sizeof(config));
    s->persistent_actual = le64_to_cpu(config.persistent_actual);
    s->cap_ack = le64_to_cpu(config.cap_ack);
    ack_gen = le32_to_cpu(config.cap_ack_gen);
    if (ack_gen != s->cap_ack_gen) {
        s->cap_ack_gen = ack_gen;
        virtio_tmem_cap_acked(s);
    }
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

/* Context: main loop, BQL held; the queues are not being served. */
static void virtio_tmem_zero_credits(VirtIOTmem *s)
{
    qemu_mutex_lock(&s->credit_lock);
    s->credits_granted = 0;
    s->credits_spent = 0;
    s->credits_inflight = 0;
    s->config_notify = false;
    qemu_mutex_unlock(&s->credit_lock);
    virtio_tmem_publish_credits(s);
}

/*
 * Context: main loop, BQL held.  Called by the core with the features the
 * driver writes, until it sets FEATURES_OK, and with 0 at reset.
 *
 * Credits exist only for a driver that negotiated
 * VIRTIO_TMEM_F_PERSISTENT: one that did not would see credits it can
 * never spend (and the spec says credits stay 0 without it).  The driver
 * may rewrite its features before FEATURES_OK, so a grant made for an
 * earlier write is taken back; no request can have spent it (persistent
 * pools need the feature, and the queues are not started yet).
 */
static void virtio_tmem_set_features(VirtIODevice *vdev, uint64_t features)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    bool enabled = virtio_has_feature(features, VIRTIO_TMEM_F_PERSISTENT);

    qatomic_set(&s->credits_enabled, enabled);
    if (s->mig_loading) {
        /* Incoming migration: the counters are the source's. */
        return;
    }
    if (!enabled) {
        virtio_tmem_zero_credits(s);
        return;
    }
    virtio_tmem_grant_credits(s);
    virtio_tmem_publish_credits(s);
}

/* The compressor property's values, as tmem_config knows them. */
static const char *const virtio_tmem_compressors[] = {
    [TMEM_COMP_LZ4] = "lz4",
    [TMEM_COMP_ZSTD] = "zstd",
    [TMEM_COMP_NONE] = "none",
};

/* The compressor called @name, or -1. */
static int virtio_tmem_compressor(const char *name)
{
    int i;

    for (i = 0; i < ARRAY_SIZE(virtio_tmem_compressors); i++) {
        if (!g_strcmp0(name, virtio_tmem_compressors[i])) {
            return i;
        }
    }
    return -1;
}

/*
 * The pool's settings: libtmem-pool's defaults, with the properties that
 * map onto them.  Checked at realize by tmem_config_check(), used as they
 * are by every store creation.
 */
static void virtio_tmem_pool_config(VirtIOTmem *s, struct tmem_config *cfg)
{
    tmem_config_init(cfg);
    cfg->limit_bytes = s->size;
    cfg->max_limit_bytes = MAX(s->max_size, s->size);
    cfg->compressor = virtio_tmem_compressor(s->compressor);
    cfg->lz4_acceleration = s->lz4_acceleration;
    cfg->allocator = strcmp(s->allocator, "zsmalloc") ? TMEM_ALLOC_ZBUD :
                                                        TMEM_ALLOC_ZSMALLOC;
    cfg->zstd_level = s->zstd_level;
    cfg->max_pools = s->max_pools;
    cfg->wb_high_pct = s->writeback_high;
    cfg->wb_low_pct = s->writeback_low;
}

/* Context: main loop, BQL held (realize, reset). */
static int virtio_tmem_store_create(VirtIOTmem *s, Error **errp)
{
    struct tmem_config cfg;
    int ret;

    virtio_tmem_pool_config(s, &cfg);
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
    s->pool_limit = s->size;
    /* Credits come when the driver negotiates PERSISTENT (set_features) */
    return 0;
}

static void virtio_tmem_mig_restart(VirtIOTmem *s);

/*
 * Context: main loop, BQL held.  The transport stopped ioeventfd before
 * calling this, so no queue handler runs (see virtio_tmem_stop_ioeventfd()).
 */
static void virtio_tmem_reset(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    Error *err = NULL;
    bool migrating;

    trace_virtio_tmem_reset(s);
    virtio_tmem_resize_quiesce(s);
    /*
     * Credits first: if the new store cannot be created, no credit of the
     * old one may survive, or the driver would keep accepting persistent
     * pages that nothing can hold.
     */
    qatomic_set(&s->credits_enabled, false);
    s->mig_loading = false;
    virtio_tmem_zero_credits(s);
    virtio_tmem_resize_reset(s);
    qemu_mutex_lock(&s->mig_lock);
    migrating = s->mig || s->mig_reset;
    if (s->mig) {
        tmem_migration_end(s->mig);
        s->mig = NULL;
    }
    tmem_store_destroy(s->store);
    s->store = NULL;
    if (virtio_tmem_store_create(s, &err)) {
        /*
         * Only a host out of memory gets here.  virtio_error() now would
         * be undone by virtio_reset() once we return; the queue handler
         * raises it at the driver's first request instead, and the next
         * reset tries again.
         */
        error_report_err(err);
    }
    if (migrating) {
        virtio_tmem_mig_restart(s);
    }
    qemu_mutex_unlock(&s->mig_lock);
}

/* ---- properties and statistics ------------------------------------------- */

/* A pool setting tmem_config_check() refused, as "property=value". */
static char *virtio_tmem_pool_prop(VirtIOTmem *s, enum tmem_config_field f)
{
    switch (f) {
    case TMEM_CFG_LIMIT:
        return g_strdup_printf(VIRTIO_TMEM_SIZE_PROP "=%" PRIu64, s->size);
    case TMEM_CFG_COMPRESSOR:
        return g_strdup_printf(VIRTIO_TMEM_COMPRESSOR_PROP "=%s",
                               s->compressor);
    case TMEM_CFG_LZ4_ACCEL:
        return g_strdup_printf(VIRTIO_TMEM_LZ4_ACCEL_PROP "=%" PRIu32,
                               s->lz4_acceleration);
    case TMEM_CFG_ZSTD_LEVEL:
        return g_strdup_printf(VIRTIO_TMEM_ZSTD_LEVEL_PROP "=%" PRIu32,
                               s->zstd_level);
    case TMEM_CFG_MAX_POOLS:
        return g_strdup_printf(VIRTIO_TMEM_MAX_POOLS_PROP "=%" PRIu32,
                               s->max_pools);
    case TMEM_CFG_WB_HIGH:
        return g_strdup_printf(VIRTIO_TMEM_WB_HIGH_PROP "=%u",
                               s->writeback_high);
    case TMEM_CFG_WB_LOW:
        return g_strdup_printf(VIRTIO_TMEM_WB_LOW_PROP "=%u",
                               s->writeback_low);
    case TMEM_CFG_ALLOCATOR:
        return g_strdup_printf(VIRTIO_TMEM_ALLOCATOR_PROP "=%s",
                               s->allocator);
    case TMEM_CFG_MAX_LIMIT:
        return g_strdup_printf(VIRTIO_TMEM_MAX_SIZE_PROP "=%" PRIu64,
                               s->max_size);
    default:
        /* max_compressed and others the device leaves at their default */
        return g_strdup_printf("pool setting %d", f);
    }
}

/*
 * The pool's settings are judged by libtmem-pool itself, so that its
 * ranges are written in one place; the device adds the name the user gave
 * the setting.  The queue and image properties are the device's own.
 */
static bool virtio_tmem_check_props(VirtIOTmem *s, Error **errp)
{
    struct tmem_config cfg;
    enum tmem_config_field f;
    char why[160];

    if (!s->compressor) {
        s->compressor = g_strdup("lz4");
    }
    /* tmem_config knows the compressor as an enum: the name is ours */
    if (virtio_tmem_compressor(s->compressor) < 0) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_COMPRESSOR_PROP
                   "=%s: must be 'lz4', 'zstd' or 'none'", s->compressor);
        return false;
    }
    if (!s->allocator) {
        s->allocator = g_strdup("zbud");
    }
    if (!s->max_size) {
        s->max_size = s->size;
    }
    if (s->max_size < s->size || s->max_size > TMEM_MAX_LIMIT) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_MAX_SIZE_PROP "=%" PRIu64
                   " must be between " VIRTIO_TMEM_SIZE_PROP "=%" PRIu64
                   " and %llu GiB", s->max_size, s->size,
                   TMEM_MAX_LIMIT / GiB);
        return false;
    }
    if (!s->pressure_file) {
        s->pressure_file = g_strdup("/proc/pressure/memory");
    }
    if (!s->min_size) {
        s->min_size = MAX(QEMU_ALIGN_DOWN(s->max_size / 4,
                                          VIRTIO_TMEM_PAGE_SIZE),
                          MIN(s->size, 16 * MiB));
    }
    if (s->auto_shrink && (s->min_size > s->size ||
                           s->min_size < TMEM_MIN_LIMIT)) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_MIN_SIZE_PROP "=%" PRIu64
                   " must be between %llu MiB and " VIRTIO_TMEM_SIZE_PROP
                   "=%" PRIu64, s->min_size, TMEM_MIN_LIMIT / MiB, s->size);
        return false;
    }
    if (s->auto_shrink && (s->pressure_threshold < 1 ||
                           s->pressure_threshold > 100 ||
                           s->pressure_interval < 10)) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_PRESSURE_THRESHOLD_PROP
                   "=%" PRIu32 " must be a percentage between 1 and 100, "
                   VIRTIO_TMEM_PRESSURE_INTERVAL_PROP "=%" PRIu32
                   " at least 10 ms", s->pressure_threshold,
                   s->pressure_interval);
        return false;
    }
    /* so is the allocator's */
    if (strcmp(s->allocator, "zbud") && strcmp(s->allocator, "zsmalloc")) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_ALLOCATOR_PROP
                   "=%s: must be 'zbud' or 'zsmalloc'", s->allocator);
        return false;
    }
    virtio_tmem_pool_config(s, &cfg);
    f = tmem_config_check(&cfg, why, sizeof(why));
    if (f != TMEM_CFG_OK) {
        g_autofree char *prop = virtio_tmem_pool_prop(s, f);

        error_setg(errp, "virtio-tmem: %s %s", prop, why);
        return false;
    }
    if (s->num_queues < 1 || s->num_queues > VIRTIO_TMEM_MAX_QUEUES) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_NUM_QUEUES_PROP
                   "=%" PRIu16 " must be between 1 and %u", s->num_queues,
                   VIRTIO_TMEM_MAX_QUEUES);
        return false;
    }
    if (s->queue_size < 2 || s->queue_size > VIRTQUEUE_MAX_SIZE ||
        !is_power_of_2(s->queue_size)) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_QUEUE_SIZE_PROP
                   "=%" PRIu16 " must be a power of 2 between 2 and %d",
                   s->queue_size,
                   VIRTQUEUE_MAX_SIZE);
        return false;
    }
    if (s->max_batch < 1 || s->max_batch > VIRTIO_TMEM_MAX_BATCH_LIMIT) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_MAX_BATCH_PROP
                   "=%" PRIu16 " must be between 1 and %u", s->max_batch,
                   VIRTIO_TMEM_MAX_BATCH_LIMIT);
        return false;
    }
    if (!s->swap_image && (s->swap_image_size || s->swap_image_unlink ||
                           s->swap_image_direct || s->swap_image_shared)) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_SWAP_IMAGE_SIZE_PROP ", "
                   VIRTIO_TMEM_SWAP_IMAGE_UNLINK_PROP ", "
                   VIRTIO_TMEM_SWAP_IMAGE_DIRECT_PROP " and "
                   VIRTIO_TMEM_SWAP_IMAGE_SHARED_PROP " need "
                   VIRTIO_TMEM_SWAP_IMAGE_PROP "=");
        return false;
    }
    if (s->swap_image_shared && s->swap_image_unlink) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_SWAP_IMAGE_SHARED_PROP
                   "=on needs the image's path on both hosts: it cannot be "
                   "used with " VIRTIO_TMEM_SWAP_IMAGE_UNLINK_PROP "=on");
        return false;
    }
    if (s->swap_image && !s->swap_image_size) {
        s->swap_image_size = MIN(4 * s->size, TMEM_MAX_IMAGE);
    }
    if (s->swap_image && (s->swap_image_size < TMEM_MIN_IMAGE ||
                          s->swap_image_size > TMEM_MAX_IMAGE ||
                          s->swap_image_size % VIRTIO_TMEM_PAGE_SIZE)) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_SWAP_IMAGE_SIZE_PROP
                   "=%" PRIu64 " must be a multiple of 4 KiB between %llu MiB "
                   "and %llu TiB",
                   s->swap_image_size, TMEM_MIN_IMAGE / MiB,
                   TMEM_MAX_IMAGE / TiB);
        return false;
    }
    if (s->swap_image && !s->swap_image[0]) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_SWAP_IMAGE_PROP
                   "= must name a file");
        return false;
    }
    return true;
}

/*
 * Context: any thread (the queue's, or the store's writeback thread).
 * A failed image I/O: the library counts every one; the user hears of the
 * first, so that a failing disk does not flood the log.
 */
static void virtio_tmem_image_report(void *opaque, const char *op,
                                     uint64_t offset, int err)
{
    VirtIOTmem *s = opaque;

    trace_virtio_tmem_image_error(s, op, offset, err);
    warn_report_once("virtio-tmem: swap-image=%s: %s failed at offset "
                     "%" PRIu64 ": %s (further errors are only counted and "
                     "traced)", s->swap_image, op, offset, strerror(-err));
}

/*
 * Context: main loop, BQL held (realize).  An incoming destination with
 * swap-image-shared=on opens the source's image as it is, without its
 * lock, which the source hands over at switchover (post_load takes it);
 * any other QEMU creates the image and locks it.
 */
static bool virtio_tmem_image_open(VirtIOTmem *s, Error **errp)
{
    char why[256] = "";
    struct tmem_image_config ic = {
        .path = s->swap_image,
        .size_bytes = s->swap_image_size,
        .unlink_path = s->swap_image_unlink,
        .incoming = s->swap_image_shared &&
                    runstate_check(RUN_STATE_INMIGRATE),
        .direct = s->swap_image_direct,
        .report = virtio_tmem_image_report,
        .report_opaque = s,
        .why = why,
        .why_len = sizeof(why),
    };
    int os_errno = 0;
    int ret;

    if (!s->swap_image) {
        return true;
    }
    ret = tmem_image_open(&ic, &s->image, &os_errno);
    if (ret) {
        /* The library's reason says what was wrong with the file. */
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_SWAP_IMAGE_PROP "=%s: %s",
                   s->swap_image, why[0] ? why :
                   os_errno ? strerror(os_errno) : tmem_strerror(ret));
        s->image = NULL;
        return false;
    }
    s->image_incoming = ic.incoming;
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

/* What the pool's section of the last outgoing migration carried. */
static bool visit_migration_stats(Visitor *v, VirtIOTmem *s, Error **errp)
{
    const VirtIOTmemCounter f[] = {
        { "bytes-sent", qatomic_read(&s->mig_bytes_sent) },
        { "records", qatomic_read(&s->mig_records) },
        { "page-records", qatomic_read(&s->mig_page_records) },
        { "rounds", qatomic_read(&s->mig_rounds) },
    };

    return visit_counters(v, "migration", f, ARRAY_SIZE(f), errp);
}

/* Where a change of size stands (see "resizing"). */
static bool visit_resize_stats(Visitor *v, VirtIOTmem *s,
                               const struct tmem_stats *st, Error **errp)
{
    uint64_t start, excess, cap, progress = 100;

    qemu_mutex_lock(&s->resize_lock);
    start = s->resize_start;
    excess = s->resize_ret == -TMEM_E_FULL ? s->resize_excess : 0;
    qemu_mutex_unlock(&s->resize_lock);
    /* the last shrink pass counted it; within the target nothing exceeds */
    if (st->used_bytes <= s->size) {
        excess = 0;
    }
    qemu_mutex_lock(&s->credit_lock);
    cap = s->credit_cap;
    qemu_mutex_unlock(&s->credit_lock);
    if (st->used_bytes > s->size && start > s->size) {
        progress = start > st->used_bytes ?
                   (start - st->used_bytes) * 100 / (start - s->size) : 0;
    }
    {
        const VirtIOTmemCounter f[] = {
            { "target-bytes", s->size },
            { "max-bytes", s->max_size },
            { "pool-limit-bytes", s->pool_limit },
            { "used-bytes", st->used_bytes },
            { "start-bytes", start },
            { "progress-percent", progress },
            { "excess-pages", excess },
            { "persistent-target", s->persistent_target },
            { "persistent-actual", s->persistent_actual },
            { "credit-cap", cap },
            { "cap-gen", s->cap_gen },
            { "cap-ack-gen", s->cap_ack_gen },
        };

        return visit_counters(v, "resize", f, ARRAY_SIZE(f), errp);
    }
}

/*
 * Context: main loop, BQL held (QMP qom-get).  The queues may be running
 * in the IOThread: counters are read atomically one by one, so the
 * dictionary is not a snapshot of one instant, only of each counter.
 */
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
        !visit_type_uint64(v, "compact-moved", &st.compact_moved, errp) ||
        !visit_type_uint64(v, "compact-frames", &st.compact_frames, errp) ||
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
    if (!visit_migration_stats(v, s, errp) ||
        (s->qstats && !visit_resize_stats(v, s, &st, errp))) {
        goto out;
    }
    visit_check_struct(v, errp);
out:
    visit_end_struct(v, NULL);
}

/* ---- migration ----------------------------------------------------------- */

/*
 * The pool travels in a live section of its own, "virtio-tmem-pool",
 * iteratively while the guest runs (docs/design.md, "Migration
 * (library)"); the device state (virtio core, credit counters) follows in
 * the stop-and-copy phase, after every iterable section, so the
 * destination checks its credits against a pool that is already loaded.
 *
 * Each piece of the section (setup, every iteration, completion) is a
 * sequence of records, each a type byte and the type's fields, big-endian,
 * with explicit lengths, ended by VTMEM_REC_END.  The section's version is
 * the stream's: a destination refuses any other.  Every field is checked
 * before use: a corrupt or hostile stream fails the load, nothing else.
 */
#define VIRTIO_TMEM_MIG_SECTION "virtio-tmem-pool"
#define VIRTIO_TMEM_MIG_VERSION 1
/* Bytes of a page record besides its data, for the pending estimate. */
#define VIRTIO_TMEM_MIG_REC_BYTES 47

enum {
    VTMEM_REC_END = 0,
    VTMEM_REC_HEADER,       /* device configuration; first of the stream */
    VTMEM_REC_RESET,        /* the source re-created its pool (device reset) */
    VTMEM_REC_POOL,
    VTMEM_REC_POOL_GONE,
    VTMEM_REC_PAGE,
    VTMEM_REC_FLUSH_PAGE,
    VTMEM_REC_FLUSH_OBJECT,
    VTMEM_REC_FLUSH_BUCKET,
    VTMEM_REC_SHARED_IMAGE, /* pages in the image go as VTMEM_REC_SLOT */
    VTMEM_REC_SLOT,         /* a written-back page: its slots in the image */
};

/*
 * Whether an outgoing stream sends written-back pages as slots of the
 * shared image: not a snapshot (savevm), whose stream must stand alone
 * while the image goes on changing under it.
 */
static bool virtio_tmem_mig_shared(VirtIOTmem *s)
{
    return s->swap_image_shared && s->image &&
           !runstate_check(RUN_STATE_SAVE_VM);
}

static unsigned virtio_tmem_mig_flags(VirtIOTmem *s)
{
    return (s->migrate_ephemeral ? TMEM_MIG_EPHEMERAL : 0) |
           (s->mig_shared ? TMEM_MIG_SHARED_IMAGE : 0);
}

static void virtio_tmem_put_key(QEMUFile *f, const struct tmem_mig_record *r,
                                bool with_index)
{
    unsigned i;

    qemu_put_be32(f, r->pool_id);
    for (i = 0; i < ARRAY_SIZE(r->oid.id); i++) {
        qemu_put_be64(f, r->oid.id[i]);
    }
    if (with_index) {
        qemu_put_be64(f, r->index);
    }
}

/* Context: migration thread; mig_lock not held (the write may block). */
static void virtio_tmem_put_record(QEMUFile *f, const struct tmem_mig_record *r,
                                   const uint8_t *data)
{
    switch (r->type) {
    case TMEM_MIG_POOL:
        qemu_put_byte(f, VTMEM_REC_POOL);
        qemu_put_be32(f, r->pool_id);
        qemu_put_be32(f, r->pool_flags);
        qemu_put_be32(f, r->refs);
        qemu_put_buffer(f, r->uuid.b, sizeof(r->uuid.b));
        break;
    case TMEM_MIG_POOL_GONE:
        qemu_put_byte(f, VTMEM_REC_POOL_GONE);
        qemu_put_be32(f, r->pool_id);
        break;
    case TMEM_MIG_PAGE:
        if (r->form == TMEM_MIG_SLOT) {
            qemu_put_byte(f, VTMEM_REC_SLOT);
            virtio_tmem_put_key(f, r, true);
            qemu_put_byte(f, r->compressor);
            qemu_put_be32(f, r->len);
            qemu_put_be32(f, r->slot);
            qemu_put_be32(f, r->next_slot);
            qemu_put_be32(f, r->offset);
            qemu_put_be32(f, r->csum);
            qemu_put_be32(f, r->next_csum);
            break;
        }
        qemu_put_byte(f, VTMEM_REC_PAGE);
        virtio_tmem_put_key(f, r, true);
        qemu_put_byte(f, r->form);
        qemu_put_byte(f, r->compressor);
        qemu_put_be32(f, r->fill);
        qemu_put_be32(f, r->len);
        qemu_put_buffer(f, data, r->len);
        break;
    case TMEM_MIG_FLUSH_PAGE:
        qemu_put_byte(f, VTMEM_REC_FLUSH_PAGE);
        virtio_tmem_put_key(f, r, true);
        break;
    case TMEM_MIG_FLUSH_OBJECT:
        qemu_put_byte(f, VTMEM_REC_FLUSH_OBJECT);
        virtio_tmem_put_key(f, r, false);
        break;
    case TMEM_MIG_FLUSH_BUCKET:
        qemu_put_byte(f, VTMEM_REC_FLUSH_BUCKET);
        qemu_put_be32(f, r->pool_id);
        qemu_put_be16(f, r->bucket);
        break;
    default:
        g_assert_not_reached();
    }
}

/*
 * Context: migration thread, mig_lock held.  The next record of the
 * stream into @rec and s->mig_buf, after the reset mark if the store was
 * re-created since the last call (*@reset).  Returns 1 with a record, 0
 * if nothing is left now, or a negative libtmem-pool error.
 */
static int virtio_tmem_next_record(VirtIOTmem *s, struct tmem_mig_record *rec,
                                   bool *reset)
{
    *reset = s->mig_reset;
    s->mig_reset = false;
    return tmem_migration_next(s->mig, rec, s->mig_buf);
}

/* Context: migration thread.  Only it writes; "stats" reads atomically. */
static void virtio_tmem_count_sent(VirtIOTmem *s, uint64_t bytes,
                                   uint64_t records, uint64_t pages)
{
    qatomic_set(&s->mig_bytes_sent, qatomic_read(&s->mig_bytes_sent) + bytes);
    qatomic_set(&s->mig_records, qatomic_read(&s->mig_records) + records);
    qatomic_set(&s->mig_page_records,
                qatomic_read(&s->mig_page_records) + pages);
    qatomic_set(&s->mig_rounds, qatomic_read(&s->mig_rounds) + 1);
}

/*
 * Context: migration thread; BQL held (setup, completion) or not
 * (iteration).  Send records until the rate limit says stop (unless
 * @drain) or nothing is left now.  Returns 1 if nothing is left, 0 if the
 * limit stopped it, or -EIO.
 *
 * mig_lock is held only to take a record from the library, never across
 * a write: a write blocks as long as the channel is stalled, and a guest
 * reset takes mig_lock in the main loop with the BQL held.  The record is
 * a copy (@rec, s->mig_buf, which only this thread and save_cleanup touch)
 * and stays valid once the lock is dropped, whatever a reset does to the
 * store meanwhile.  Ordering holds without the lock: only this thread
 * writes the section, so a record taken before a reset reaches the channel
 * before the reset mark, which the next record taken after the reset
 * carries (mig_reset is read and cleared under the lock with the record).
 * The destination then empties its store after the old record, as it must.
 */
static int virtio_tmem_send(VirtIOTmem *s, QEMUFile *f, bool drain)
{
    uint64_t start = qemu_file_transferred(f), records = 0, pages = 0;
    struct tmem_mig_record rec;
    bool reset;
    int ret = 1;

    while (drain || !migration_rate_exceeded(f)) {
        qemu_mutex_lock(&s->mig_lock);
        if (!s->mig) {
            /* A reset re-created the store and could not start it again. */
            qemu_mutex_unlock(&s->mig_lock);
            error_report("virtio-tmem: the pool was reset during migration "
                         "and cannot be sent (host out of memory)");
            return -EIO;
        }
        ret = virtio_tmem_next_record(s, &rec, &reset);
        qemu_mutex_unlock(&s->mig_lock);
        if (reset) {
            qemu_put_byte(f, VTMEM_REC_RESET);
        }
        if (ret <= 0) {
            break;
        }
        virtio_tmem_put_record(f, &rec, s->mig_buf);
        records++;
        pages += rec.type == TMEM_MIG_PAGE;
    }
    qemu_put_byte(f, VTMEM_REC_END);
    virtio_tmem_count_sent(s, qemu_file_transferred(f) - start, records,
                           pages);
    if (ret < 0) {
        error_report("virtio-tmem: cannot migrate the pool: %s",
                     tmem_strerror(ret));
        return -EIO;
    }
    return ret == 0 ? 1 : 0;
}

/*
 * Context: migration thread, BQL held.  The header carries what the
 * destination must match (compressor, longest compressed page, pool ids)
 * and what it must have room for (the source's persistent pages and the
 * credits the guest holds now); the LZ4 acceleration and the allocator
 * only shape future puts and may differ.
 */
static int virtio_tmem_save_setup(QEMUFile *f, void *opaque, Error **errp)
{
    VirtIOTmem *s = opaque;
    struct tmem_config cfg;
    struct tmem_stats st;
    uint64_t credits, start;
    int ret;

    /*
     * A background snapshot saves the devices with the VM stopped and the
     * live sections while it runs again, with no completion step: the pool
     * would be later than the RAM and the credits it goes with.
     */
    if (migrate_background_snapshot()) {
        error_setg(errp, "virtio-tmem: background snapshots are not "
                   "supported (the pool would be saved while the guest "
                   "changes it)");
        return -ENOTSUP;
    }
    virtio_tmem_pool_config(s, &cfg);
    qemu_mutex_lock(&s->mig_lock);
    if (!s->store) {
        qemu_mutex_unlock(&s->mig_lock);
        error_setg(errp, "virtio-tmem: no pool to migrate (its re-creation "
                   "at the last reset failed)");
        return -EINVAL;
    }
    s->mig_shared = virtio_tmem_mig_shared(s);
    ret = tmem_migration_start(s->store, virtio_tmem_mig_flags(s), &s->mig);
    if (ret) {
        qemu_mutex_unlock(&s->mig_lock);
        error_setg(errp, "virtio-tmem: cannot start migrating the pool: %s",
                   tmem_strerror(ret));
        return -ENOMEM;
    }
    s->mig_reset = false;
    tmem_get_stats(s->store, &st);
    qemu_mutex_unlock(&s->mig_lock);
    s->mig_buf = g_malloc(VIRTIO_TMEM_PAGE_SIZE);

    qemu_mutex_lock(&s->credit_lock);
    credits = virtio_tmem_credits_owed(s);
    qemu_mutex_unlock(&s->credit_lock);

    qatomic_set(&s->mig_bytes_sent, 0);
    qatomic_set(&s->mig_records, 0);
    qatomic_set(&s->mig_page_records, 0);
    qatomic_set(&s->mig_rounds, 0);
    start = qemu_file_transferred(f);
    qemu_put_byte(f, VTMEM_REC_HEADER);
    qemu_put_byte(f, cfg.compressor);
    qemu_put_be32(f, cfg.max_compressed);
    qemu_put_be32(f, s->max_pools);
    qemu_put_be64(f, st.kind[TMEM_PERSISTENT].stored_pages);
    qemu_put_be64(f, credits);
    if (s->mig_shared) {
        /* the destination reads written-back pages where they are */
        qemu_put_byte(f, VTMEM_REC_SHARED_IMAGE);
        qemu_put_byte(f, cfg.allocator);
    }
    qemu_put_byte(f, VTMEM_REC_END);
    virtio_tmem_count_sent(s, qemu_file_transferred(f) - start, 0, 0);
    return 0;
}

/* Context: migration thread, BQL not held. */
static int virtio_tmem_save_iterate(QEMUFile *f, void *opaque)
{
    return virtio_tmem_send(opaque, f, false);
}

/*
 * Context: migration thread, BQL held, VM stopped: no request runs.
 * With a shared image, writeback stops before the last round (so that the
 * destination's references end up equal to the source's pages) and the
 * image is synced and its lock handed over after it; the source takes it
 * back if the VM runs here again (virtio_tmem_vm_change()).
 */
static int virtio_tmem_save_complete(QEMUFile *f, void *opaque)
{
    VirtIOTmem *s = opaque;
    char why[512] = "";
    int ret;

    if (s->mig_shared) {
        qemu_mutex_lock(&s->mig_lock);
        if (s->mig) {
            tmem_migration_freeze_image(s->mig);
            s->image_frozen = true;
        }
        qemu_mutex_unlock(&s->mig_lock);
    }
    ret = virtio_tmem_send(s, f, true);
    if (ret < 0) {
        return ret;
    }
    if (s->image_frozen && tmem_image_release(s->image, why, sizeof(why))) {
        error_report("virtio-tmem: cannot hand the swap image over: %s", why);
        return -EIO;
    }
    return 0;
}

/*
 * Context: main loop, BQL held.  The VM runs again on a source that froze
 * (and maybe handed over) its image for a migration that did not complete:
 * take the image back, or stop the device (another QEMU owns the pages).
 */
static void virtio_tmem_vm_change(void *opaque, bool running, RunState state)
{
    VirtIOTmem *s = opaque;
    char why[512] = "";

    if (!running || !s->image_frozen) {
        return;
    }
    if (tmem_image_acquire(s->image, why, sizeof(why))) {
        virtio_error(VIRTIO_DEVICE(s), "virtio-tmem: cannot take the swap "
                     "image back after the migration: %s", why);
        return;
    }
    s->image_frozen = false;
}

/* Context: migration thread.  The library's exact count is cheap. */
static void virtio_tmem_state_pending(void *opaque, uint64_t *must_precopy,
                                      uint64_t *can_postcopy)
{
    VirtIOTmem *s = opaque;
    struct tmem_mig_pending pend = { 0 };

    qemu_mutex_lock(&s->mig_lock);
    if (s->mig) {
        tmem_migration_pending(s->mig, &pend);
    }
    pend.records += s->mig_reset;
    qemu_mutex_unlock(&s->mig_lock);
    *must_precopy += pend.bytes + pend.records * VIRTIO_TMEM_MIG_REC_BYTES;
}

/*
 * Context: main loop or migration thread, BQL held.  Also after a cancel
 * or a failure: the source stops logging and goes on with every page.
 */
static void virtio_tmem_save_cleanup(void *opaque)
{
    VirtIOTmem *s = opaque;

    qemu_mutex_lock(&s->mig_lock);
    if (s->mig) {
        tmem_migration_end(s->mig);
        s->mig = NULL;
    }
    s->mig_reset = false;
    qemu_mutex_unlock(&s->mig_lock);
    g_free(s->mig_buf);
    s->mig_buf = NULL;
}

/*
 * Context: main loop, BQL and mig_lock held.  A reset during an outgoing
 * migration replaces the store under the stream: start it again on the
 * new store, and tell the destination to empty its own first.
 */
static void virtio_tmem_mig_restart(VirtIOTmem *s)
{
    if (s->store &&
        tmem_migration_start(s->store, virtio_tmem_mig_flags(s), &s->mig)) {
        s->mig = NULL;
    }
    s->mig_reset = true;
}

/* Context: main loop, BQL held (destination). */
static int virtio_tmem_mig_empty_store(VirtIOTmem *s)
{
    Error *err = NULL;

    /* a destination resized before the load may be shrinking this store */
    virtio_tmem_resize_quiesce(s);
    tmem_store_destroy(s->store);
    s->store = NULL;
    if (virtio_tmem_store_create(s, &err)) {
        error_report_err(err);
        return -ENOMEM;
    }
    return 0;
}

static int virtio_tmem_load_header(VirtIOTmem *s, QEMUFile *f)
{
    struct tmem_config cfg;
    uint8_t compressor;
    uint32_t max_compressed, max_pools;
    uint64_t pages, credits, room = 0;
    int ret;

    compressor = qemu_get_byte(f);
    max_compressed = qemu_get_be32(f);
    max_pools = qemu_get_be32(f);
    pages = qemu_get_be64(f);
    credits = qemu_get_be64(f);
    ret = qemu_file_get_error(f);
    if (ret) {
        return ret;
    }
    if (s->mig_header_seen) {
        error_report("virtio-tmem: migration stream has a second header");
        return -EINVAL;
    }
    virtio_tmem_pool_config(s, &cfg);
    if (compressor != cfg.compressor) {
        error_report("virtio-tmem: " VIRTIO_TMEM_COMPRESSOR_PROP "=%s on the "
                     "destination, the source's pages were compressed by "
                     "compressor %u", s->compressor ? s->compressor : "lz4",
                     compressor);
        return -EINVAL;
    }
    if (max_compressed > cfg.max_compressed) {
        error_report("virtio-tmem: the source stores compressed pages of up "
                     "to %" PRIu32 " bytes, the destination of up to %u",
                     max_compressed, cfg.max_compressed);
        return -EINVAL;
    }
    if (max_pools > s->max_pools) {
        error_report("virtio-tmem: " VIRTIO_TMEM_MAX_POOLS_PROP "=%" PRIu32
                     " on the destination, the source has %" PRIu32,
                     s->max_pools, max_pools);
        return -EINVAL;
    }
    /*
     * Whatever the destination held (loadvm) goes: the stream is all.
     * From here a failure leaves the device changed (load_cleanup).
     */
    s->mig_header_seen = true;
    ret = virtio_tmem_mig_empty_store(s);
    if (ret) {
        return ret;
    }
    /*
     * Capacity counts every put at its worst case, and the source grants
     * credits up to its own: room for pages + credits would refuse even a
     * destination equal to the source.  What must hold already, before a
     * page arrives, is room for the credits (installs only lower it); the
     * pages are checked as they come, and the credits again once loaded.
     */
    if (tmem_install_check_room(s->store, 0, credits, &room)) {
        error_report("virtio-tmem: " VIRTIO_TMEM_SIZE_PROP "=%" PRIu64
                     " on the destination cannot honour the source's %" PRIu64
                     " outstanding credits (room for %" PRIu64 " pages even "
                     "empty; the source holds %" PRIu64 " persistent pages)",
                     s->size, credits, room, pages);
        return -ENOSPC;
    }
    return 0;
}

/*
 * The source sends written-back pages as slots of its image: this QEMU
 * must have opened that image as an incoming one, and lay pages out in
 * slots as the source does (the allocator).
 */
static int virtio_tmem_load_shared(VirtIOTmem *s, QEMUFile *f)
{
    struct tmem_config cfg;
    uint8_t allocator = qemu_get_byte(f);
    int ret = qemu_file_get_error(f);

    if (ret) {
        return ret;
    }
    if (!s->image_incoming) {
        error_report("virtio-tmem: the source shares its swap image ("
                     VIRTIO_TMEM_SWAP_IMAGE_SHARED_PROP "=on): the "
                     "destination needs " VIRTIO_TMEM_SWAP_IMAGE_PROP
                     "= with the same file and "
                     VIRTIO_TMEM_SWAP_IMAGE_SHARED_PROP "=on");
        return -EINVAL;
    }
    virtio_tmem_pool_config(s, &cfg);
    if (allocator != cfg.allocator) {
        error_report("virtio-tmem: " VIRTIO_TMEM_ALLOCATOR_PROP "=%s on the "
                     "destination, the source's pages in the shared swap "
                     "image were laid out by allocator %u",
                     s->allocator, allocator);
        return -EINVAL;
    }
    s->mig_shared_seen = true;
    return 0;
}

static void virtio_tmem_get_key(QEMUFile *f, struct tmem_mig_record *r,
                                bool with_index)
{
    unsigned i;

    r->pool_id = qemu_get_be32(f);
    for (i = 0; i < ARRAY_SIZE(r->oid.id); i++) {
        r->oid.id[i] = qemu_get_be64(f);
    }
    if (with_index) {
        r->index = qemu_get_be64(f);
    }
}

/*
 * Read the record of @type into @r and its data into s->mig_buf.  Lengths
 * are checked here, before any byte is read into the buffer; the library
 * checks the rest (pool ids, flags, forms, stripes, compressed bytes).
 */
static int virtio_tmem_get_record(VirtIOTmem *s, QEMUFile *f, int type,
                                  struct tmem_mig_record *r)
{
    memset(r, 0, sizeof(*r));
    switch (type) {
    case VTMEM_REC_POOL:
        r->type = TMEM_MIG_POOL;
        r->pool_id = qemu_get_be32(f);
        r->pool_flags = qemu_get_be32(f);
        r->refs = qemu_get_be32(f);
        qemu_get_buffer(f, r->uuid.b, sizeof(r->uuid.b));
        break;
    case VTMEM_REC_POOL_GONE:
        r->type = TMEM_MIG_POOL_GONE;
        r->pool_id = qemu_get_be32(f);
        break;
    case VTMEM_REC_PAGE:
        r->type = TMEM_MIG_PAGE;
        virtio_tmem_get_key(f, r, true);
        r->form = qemu_get_byte(f);
        r->compressor = qemu_get_byte(f);
        r->fill = qemu_get_be32(f);
        r->len = qemu_get_be32(f);
        if (r->len > VIRTIO_TMEM_PAGE_SIZE) {
            error_report("virtio-tmem: migration stream has a page record "
                         "of %" PRIu32 " bytes", r->len);
            return -EINVAL;
        }
        qemu_get_buffer(f, s->mig_buf, r->len);
        break;
    case VTMEM_REC_FLUSH_PAGE:
        r->type = TMEM_MIG_FLUSH_PAGE;
        virtio_tmem_get_key(f, r, true);
        break;
    case VTMEM_REC_FLUSH_OBJECT:
        r->type = TMEM_MIG_FLUSH_OBJECT;
        virtio_tmem_get_key(f, r, false);
        break;
    case VTMEM_REC_FLUSH_BUCKET:
        r->type = TMEM_MIG_FLUSH_BUCKET;
        r->pool_id = qemu_get_be32(f);
        r->bucket = qemu_get_be16(f);
        break;
    case VTMEM_REC_SLOT:
        r->type = TMEM_MIG_PAGE;
        r->form = TMEM_MIG_SLOT;
        virtio_tmem_get_key(f, r, true);
        r->compressor = qemu_get_byte(f);
        r->len = qemu_get_be32(f);
        r->slot = qemu_get_be32(f);
        r->next_slot = qemu_get_be32(f);
        r->offset = qemu_get_be32(f);
        r->csum = qemu_get_be32(f);
        r->next_csum = qemu_get_be32(f);
        if (!s->mig_shared_seen) {
            error_report("virtio-tmem: migration stream has a swap image "
                         "slot without the shared image mark");
            return -EINVAL;
        }
        break;
    default:
        error_report("virtio-tmem: migration stream has a record of unknown "
                     "type %d", type);
        return -EINVAL;
    }
    return qemu_file_get_error(f);
}

static int virtio_tmem_load_record(VirtIOTmem *s, QEMUFile *f, int type)
{
    struct tmem_mig_record rec;
    int ret;

    if (type == VTMEM_REC_HEADER) {
        return virtio_tmem_load_header(s, f);
    }
    if (!s->mig_header_seen) {
        error_report("virtio-tmem: migration stream without a header");
        return -EINVAL;
    }
    if (type == VTMEM_REC_RESET) {
        return virtio_tmem_mig_empty_store(s);
    }
    if (type == VTMEM_REC_SHARED_IMAGE) {
        return virtio_tmem_load_shared(s, f);
    }
    ret = virtio_tmem_get_record(s, f, type, &rec);
    if (ret) {
        return ret;
    }
    ret = tmem_install(s->store, &rec, s->mig_buf);
    if (ret == -TMEM_E_FULL) {
        struct tmem_stats st;

        tmem_get_stats(s->store, &st);
        error_report("virtio-tmem: " VIRTIO_TMEM_SIZE_PROP "=%" PRIu64
                     " on the destination is too small for the source's "
                     "pages (it holds %" PRIu64 " persistent and %" PRIu64
                     " ephemeral pages in %" PRIu64 " bytes)", s->size,
                     st.kind[TMEM_PERSISTENT].stored_pages,
                     st.kind[TMEM_EPHEMERAL].stored_pages, st.used_bytes);
        return -ENOSPC;
    }
    if (ret) {
        error_report("virtio-tmem: migration stream: record of type %d, "
                     "pool %" PRIu32 ": %s", type, rec.pool_id,
                     tmem_strerror(ret));
        return -EINVAL;
    }
    return 0;
}

/* Context: main loop (incoming coroutine), BQL held. */
static int virtio_tmem_load_state(QEMUFile *f, void *opaque, int version_id)
{
    VirtIOTmem *s = opaque;
    int type, ret;

    if (version_id != VIRTIO_TMEM_MIG_VERSION) {
        error_report("virtio-tmem: migration stream version %d, this QEMU "
                     "reads version %d", version_id, VIRTIO_TMEM_MIG_VERSION);
        return -EINVAL;
    }
    if (!s->mig_buf) {
        s->mig_buf = g_malloc(VIRTIO_TMEM_PAGE_SIZE);
    }
    for (;;) {
        type = qemu_get_byte(f);
        ret = qemu_file_get_error(f);
        if (ret) {
            return ret;
        }
        if (type == VTMEM_REC_END) {
            return 0;
        }
        ret = virtio_tmem_load_record(s, f, type);
        if (ret) {
            return ret;
        }
    }
}

/*
 * Context: main loop, BQL held.  A load that changed the device (the
 * pool's header emptied the store, or the device state began to load) and
 * did not complete (virtio_tmem_post_load()) leaves a pool and counters
 * that are neither the device's nor the stream's: drop both, and have the
 * driver reset the device, whose pages are gone (HMP loadvm goes on with
 * the VM after a failure).
 */
static void virtio_tmem_mig_discard(VirtIOTmem *s)
{
    qatomic_set(&s->credits_enabled, false);
    virtio_tmem_zero_credits(s);
    if (virtio_tmem_mig_empty_store(s)) {
        return;     /* no store: the queue handler reports it */
    }
    virtio_error(VIRTIO_DEVICE(s), "virtio-tmem: the migration stream did "
                 "not load; the pool was emptied, reset the device");
}

/*
 * Context: main loop, BQL held: after every load (incoming migration,
 * loadvm), whether it succeeded or failed, and whatever section failed.
 */
static int virtio_tmem_load_cleanup(void *opaque)
{
    VirtIOTmem *s = opaque;
    bool failed = s->mig_header_seen || s->mig_loading;

    g_free(s->mig_buf);
    s->mig_buf = NULL;
    s->mig_header_seen = false;
    s->mig_loading = false;
    s->mig_shared_seen = false;
    /* the source may go on: give the image back before it is emptied */
    if (failed && s->image_taken) {
        char why[512] = "";

        if (tmem_image_release(s->image, why, sizeof(why))) {
            error_report("virtio-tmem: %s", why);
        } else {
            s->image_incoming = true;
        }
    }
    s->image_taken = false;
    if (failed) {
        virtio_tmem_mig_discard(s);
    }
    return 0;
}

static const SaveVMHandlers virtio_tmem_savevm_handlers = {
    .save_setup = virtio_tmem_save_setup,
    .save_live_iterate = virtio_tmem_save_iterate,
    .save_live_complete_precopy = virtio_tmem_save_complete,
    .state_pending_estimate = virtio_tmem_state_pending,
    .state_pending_exact = virtio_tmem_state_pending,
    .save_cleanup = virtio_tmem_save_cleanup,
    .load_state = virtio_tmem_load_state,
    .load_cleanup = virtio_tmem_load_cleanup,
};

/*
 * Context: main loop, BQL held; the VM is stopped, so no put holds a
 * credit (stopping the VM stopped ioeventfd, which waits for the handler).
 */
static int virtio_tmem_pre_save(void *opaque)
{
    VirtIOTmem *s = opaque;

    if (s->credits_inflight) {
        error_report("virtio-tmem: %" PRIu64 " puts still in flight",
                     s->credits_inflight);
        return -EBUSY;
    }
    return 0;
}

/* Context: main loop, BQL held: set_features() leaves the counters alone. */
static int virtio_tmem_pre_load(void *opaque)
{
    VIRTIO_TMEM(opaque)->mig_loading = true;
    return 0;
}

/*
 * Context: main loop, BQL held, after the pool and the features.  Ends a
 * load (clearing mig_loading and mig_header_seen) only if it succeeds:
 * else virtio_tmem_load_cleanup() discards what it left.  The
 * credits the guest holds must be honoured by this pool, whatever the
 * packing of the pages it now holds.  With a swap image the installs may
 * have filled RAM ahead of background writeback: the library writes back
 * here what the credits need (disk writes, as installs that find RAM full
 * do; no wait on another thread), so the answer is final at once.  A
 * shared image is the source's until its lock is taken here: writeback
 * waits for it.
 */
static int virtio_tmem_post_load(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    uint64_t outstanding, room = 0;
    char why[512] = "";

    if (s->credits_spent > s->credits_granted ||
        s->config_credits > s->credits_granted ||
        (!s->credits_enabled && s->credits_granted)) {
        error_report("virtio-tmem: migration stream has inconsistent credits "
                     "(granted %" PRIu64 ", spent %" PRIu64 ", shown %" PRIu64
                     ")", s->credits_granted, s->credits_spent,
                     s->config_credits);
        return -EINVAL;
    }
    if (s->image_incoming) {
        if (tmem_image_acquire(s->image, why, sizeof(why))) {
            error_report("virtio-tmem: " VIRTIO_TMEM_SWAP_IMAGE_PROP
                         "=%s: the source did not hand the image over: %s",
                         s->swap_image, why);
            return -EBUSY;
        }
        s->image_incoming = false;
        s->image_taken = true;
    }
    outstanding = virtio_tmem_credits_owed(s);
    if (!s->store ||
        tmem_install_check_room(s->store, 0, outstanding, &room)) {
        error_report("virtio-tmem: " VIRTIO_TMEM_SIZE_PROP "=%" PRIu64
                     " on the destination cannot honour the source's %" PRIu64
                     " outstanding credits (room for %" PRIu64 " pages)",
                     s->size, outstanding, room);
        return -ENOSPC;
    }
    s->mig_loading = false;
    s->mig_header_seen = false;
    s->image_taken = false;
    return 0;
}

/*
 * A resize in progress, or done, travels with the device: the target, the
 * store's limit (the destination's must honour the same credits), and what
 * the driver saw and acknowledged.  Left out while nothing was resized, so
 * that a destination without it still takes such a stream.
 */
static bool virtio_tmem_resize_needed(void *opaque)
{
    VirtIOTmem *s = opaque;

    return s->size != s->realize_size || s->cap_gen ||
           s->persistent_target != VIRTIO_TMEM_NO_LIMIT;
}

static int virtio_tmem_resize_post_load(void *opaque, int version_id)
{
    VirtIOTmem *s = opaque;

    if (s->pool_limit > s->max_size || s->size > s->max_size) {
        error_report("virtio-tmem: the source resized the pool to %" PRIu64
                     " bytes (limit %" PRIu64 "), above "
                     VIRTIO_TMEM_MAX_SIZE_PROP "=%" PRIu64
                     " on the destination", s->size, s->pool_limit,
                     s->max_size);
        return -EINVAL;
    }
    if (s->store && tmem_set_limit(s->store, s->pool_limit)) {
        error_report("virtio-tmem: cannot set the pool's limit to %" PRIu64
                     " bytes", s->pool_limit);
        return -EINVAL;
    }
    s->resize_reported = false;
    qemu_bh_schedule(s->resize_bh);
    return 0;
}

static const VMStateDescription vmstate_virtio_tmem_resize = {
    .name = "virtio-tmem-device/resize",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = virtio_tmem_resize_needed,
    .post_load = virtio_tmem_resize_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(size, VirtIOTmem),
        VMSTATE_UINT64(pool_limit, VirtIOTmem),
        VMSTATE_UINT64(persistent_target, VirtIOTmem),
        VMSTATE_UINT64(credit_cap, VirtIOTmem),
        VMSTATE_UINT64(credit_bound, VirtIOTmem),
        VMSTATE_UINT32(cap_gen, VirtIOTmem),
        VMSTATE_UINT32(cap_ack_gen, VirtIOTmem),
        VMSTATE_UINT64(cap_ack, VirtIOTmem),
        VMSTATE_UINT64(persistent_actual, VirtIOTmem),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_virtio_tmem_device = {
    .name = "virtio-tmem-device",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = virtio_tmem_pre_save,
    .pre_load = virtio_tmem_pre_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(credits_granted, VirtIOTmem),
        VMSTATE_UINT64(credits_spent, VirtIOTmem),
        VMSTATE_UINT64(config_credits, VirtIOTmem),
        VMSTATE_UINT32(parent_obj.generation, VirtIOTmem),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vmstate_virtio_tmem_resize,
        NULL
    },
};

static const VMStateDescription vmstate_virtio_tmem = {
    .name = "virtio-tmem",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_VIRTIO_DEVICE,
        VMSTATE_END_OF_LIST()
    },
};

/* Context: main loop, BQL held (realize). */
static void virtio_tmem_register_migration(VirtIOTmem *s)
{
    g_autofree char *oid = vmstate_if_get_id(VMSTATE_IF(s));
    g_autofree char *id = oid ? g_strdup_printf("%s/" VIRTIO_TMEM_MIG_SECTION,
                                                oid)
                              : g_strdup(VIRTIO_TMEM_MIG_SECTION);

    qemu_mutex_init(&s->mig_lock);
    register_savevm_live(id, VMSTATE_INSTANCE_ID_ANY, VIRTIO_TMEM_MIG_VERSION,
                         &virtio_tmem_savevm_handlers, s);
    /*
     * Priority 0: before the virtio core's handler (the device's depth)
     * starts ioeventfd, so that no request runs on a frozen image.
     */
    s->vm_change = qemu_add_vm_change_state_handler(virtio_tmem_vm_change, s);
}

static void virtio_tmem_unregister_migration(VirtIOTmem *s)
{
    qemu_del_vm_change_state_handler(s->vm_change);
    unregister_savevm(VMSTATE_IF(s), VIRTIO_TMEM_MIG_SECTION, s);
    qemu_mutex_destroy(&s->mig_lock);
}

/* ---- realize ------------------------------------------------------------- */

/*
 * Context: main loop, BQL held.  Everything that can fail (properties,
 * image, store) comes before virtio_init(), so that a
 * failed realize has no queue to undo.
 */
static void virtio_tmem_realize(DeviceState *dev, Error **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIOTmem *s = VIRTIO_TMEM(dev);
    unsigned i;

    if (!virtio_tmem_check_props(s, errp)) {
        return;
    }
    if (!virtio_tmem_image_open(s, errp)) {
        return;
    }
    qemu_mutex_init(&s->credit_lock);
    if (virtio_tmem_store_create(s, errp)) {
        qemu_mutex_destroy(&s->credit_lock);
        tmem_image_close(s->image);
        s->image = NULL;
        return;
    }
    /*
     * Guarded by the transport's MemReentrancyGuard (the proxy owns the
     * MMIO regions, not this VirtIODevice): a config interrupt aimed by
     * the guest at our own BAR is then blocked, not re-entered.
     */
    virtio_tmem_register_migration(s);
    s->config_bh = virtio_bh_new_guarded(dev, virtio_tmem_config_bh, s);
    s->realize_size = s->size;
    s->resize_bh = qemu_bh_new(virtio_tmem_resize_bh, s);
    s->resize_timer = timer_new_ms(QEMU_CLOCK_REALTIME, virtio_tmem_resize_tick,
                                   s);
    virtio_tmem_resize_reset(s);
    qemu_mutex_init(&s->resize_lock);
    qemu_cond_init(&s->resize_cond);
    qemu_thread_create(&s->resize_thread, "virtio-tmem-shrink",
                       virtio_tmem_resize_thread, s, QEMU_THREAD_JOINABLE);
    if (s->auto_shrink) {
        s->pressure_timer = timer_new_ms(QEMU_CLOCK_REALTIME,
                                         virtio_tmem_pressure_tick, s);
        timer_mod(s->pressure_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                  s->pressure_interval);
    }
    virtio_init(vdev, VIRTIO_ID_TMEM, sizeof(struct virtio_tmem_config));
    /*
     * The core refuses rings and buffers that are not guest RAM mapped
     * directly (see virtqueue_map_desc()).  With iothread=, reaching MMIO
     * from the queue handler would take the BQL and deadlock against a
     * reset, which holds it while it waits for the handler.  In any
     * context, a write-back through a bounce buffer into our own BAR
     * would reset the device from inside its handler.  A tmem page or
     * response outside RAM is a driver bug or an attack, never a use.
     */
    vdev->ram_only = true;
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

/* Context: main loop, BQL held; ioeventfd was stopped by the bus. */
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
    virtio_tmem_resize_quiesce(s);
    qemu_mutex_lock(&s->resize_lock);
    s->resize_stop = true;
    qemu_cond_signal(&s->resize_cond);
    qemu_mutex_unlock(&s->resize_lock);
    qemu_thread_join(&s->resize_thread);
    qemu_cond_destroy(&s->resize_cond);
    qemu_mutex_destroy(&s->resize_lock);
    qemu_bh_delete(s->resize_bh);
    timer_free(s->resize_timer);
    if (s->pressure_timer) {
        timer_free(s->pressure_timer);
        s->pressure_timer = NULL;
    }
    virtio_cleanup(vdev);
    tmem_store_destroy(s->store);
    s->store = NULL;
    tmem_image_close(s->image);
    s->image = NULL;
    qemu_mutex_destroy(&s->credit_lock);
    virtio_tmem_unregister_migration(s);
}

static bool virtio_tmem_get_stall(Object *obj, Error **errp)
{
    return qatomic_read(&VIRTIO_TMEM(obj)->stall);
}

/*
 * Context: main loop, BQL held (QMP qom-set, or -device at creation).
 *
 * "x-stall" is a test hook (unstable, hence the x-): tests of the guest
 * driver hold the device's answers back to make timeouts and races happen
 * on demand.  Clearing it kicks every queue as a guest notification would,
 * so that what arrived meanwhile is served in the queue's own context.
 */
static void virtio_tmem_set_stall(Object *obj, bool value, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    VirtIODevice *vdev = VIRTIO_DEVICE(obj);
    unsigned i;

    qatomic_set(&s->stall, value);
    /*
     * Not realized yet, or the VM is stopped: nothing to kick now.  When
     * the VM runs again, start_ioeventfd kicks every queue itself.
     */
    if (value || !s->vqs || !vdev->vm_running) {
        return;
    }
    /*
     * virtio_queue_notify() sets the host notifier when ioeventfd is on
     * (the IOThread or the main loop's AioContext then runs the handler)
     * and calls the handler directly otherwise, as a vCPU's kick would.
     * The eventfd write (a syscall, a full barrier) orders the store to
     * stall before the handler's read of it; it pairs with the
     * AioContext's read of that eventfd before it calls the handler.
     */
    for (i = 0; i < s->num_queues; i++) {
        virtio_queue_notify(vdev, i);
    }
}

static void virtio_tmem_get_size(Object *obj, Visitor *v, const char *name,
                                 void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);

    visit_type_size(v, name, &s->size, errp);
}

/*
 * Context: main loop, BQL held (-device, or qom-set at run time).  At run
 * time the value is a target the pool moves to (see "resizing"); it reads
 * back at once.
 */
static void virtio_tmem_set_size(Object *obj, Visitor *v, const char *name,
                                 void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    struct tmem_config cfg;
    char why[160];
    uint64_t value;

    if (!visit_type_size(v, name, &value, errp)) {
        return;
    }
    if (!DEVICE(obj)->realized) {
        s->size = value;
        return;
    }
    virtio_tmem_pool_config(s, &cfg);
    cfg.limit_bytes = value;
    cfg.max_limit_bytes = s->max_size;
    if (value > s->max_size) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_SIZE_PROP "=%" PRIu64
                   " is above " VIRTIO_TMEM_MAX_SIZE_PROP "=%" PRIu64, value,
                   s->max_size);
        return;
    }
    if (tmem_config_check(&cfg, why, sizeof(why)) != TMEM_CFG_OK) {
        error_setg(errp, "virtio-tmem: " VIRTIO_TMEM_SIZE_PROP "=%" PRIu64
                   " %s", value, why);
        return;
    }
    /* pool_limit in the configuration shows the target */
    virtio_tmem_set_target(s, value);
}

static void virtio_tmem_instance_init(Object *obj)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);

    s->size = VIRTIO_TMEM_DEFAULT_SIZE;
    object_property_add(obj, VIRTIO_TMEM_STATS_PROP, "VirtioTmemStats",
                        virtio_tmem_get_stats, NULL, NULL, NULL);
}

static const Property virtio_tmem_properties[] = {
    DEFINE_PROP_SIZE(VIRTIO_TMEM_MAX_SIZE_PROP, VirtIOTmem, max_size, 0),
    DEFINE_PROP_BOOL(VIRTIO_TMEM_AUTO_SHRINK_PROP, VirtIOTmem, auto_shrink,
                     false),
    DEFINE_PROP_SIZE(VIRTIO_TMEM_MIN_SIZE_PROP, VirtIOTmem, min_size, 0),
    DEFINE_PROP_STRING(VIRTIO_TMEM_PRESSURE_FILE_PROP, VirtIOTmem,
                       pressure_file),
    DEFINE_PROP_UINT32(VIRTIO_TMEM_PRESSURE_THRESHOLD_PROP, VirtIOTmem,
                       pressure_threshold, 10),
    DEFINE_PROP_UINT32(VIRTIO_TMEM_PRESSURE_INTERVAL_PROP, VirtIOTmem,
                       pressure_interval, 1000),
    DEFINE_PROP_STRING(VIRTIO_TMEM_COMPRESSOR_PROP, VirtIOTmem, compressor),
    DEFINE_PROP_STRING(VIRTIO_TMEM_ALLOCATOR_PROP, VirtIOTmem, allocator),
    DEFINE_PROP_UINT32(VIRTIO_TMEM_LZ4_ACCEL_PROP, VirtIOTmem,
                       lz4_acceleration, TMEM_DEFAULT_LZ4_ACCEL),
    DEFINE_PROP_UINT32(VIRTIO_TMEM_ZSTD_LEVEL_PROP, VirtIOTmem,
                       zstd_level, TMEM_DEFAULT_ZSTD_LEVEL),
    DEFINE_PROP_UINT16(VIRTIO_TMEM_NUM_QUEUES_PROP, VirtIOTmem, num_queues, 1),
    DEFINE_PROP_UINT16(VIRTIO_TMEM_QUEUE_SIZE_PROP, VirtIOTmem, queue_size,
                       VIRTIO_TMEM_DEFAULT_QUEUE_SIZE),
    DEFINE_PROP_UINT16(VIRTIO_TMEM_MAX_BATCH_PROP, VirtIOTmem, max_batch,
                       VIRTIO_TMEM_DEFAULT_MAX_BATCH),
    DEFINE_PROP_UINT32(VIRTIO_TMEM_MAX_POOLS_PROP, VirtIOTmem, max_pools,
                       TMEM_DEFAULT_MAX_POOLS),
    DEFINE_PROP_STRING(VIRTIO_TMEM_SWAP_IMAGE_PROP, VirtIOTmem, swap_image),
    DEFINE_PROP_SIZE(VIRTIO_TMEM_SWAP_IMAGE_SIZE_PROP, VirtIOTmem,
                     swap_image_size, 0),
    DEFINE_PROP_BOOL(VIRTIO_TMEM_SWAP_IMAGE_UNLINK_PROP, VirtIOTmem,
                     swap_image_unlink, false),
    DEFINE_PROP_BOOL(VIRTIO_TMEM_SWAP_IMAGE_DIRECT_PROP, VirtIOTmem,
                     swap_image_direct, false),
    DEFINE_PROP_BOOL(VIRTIO_TMEM_SWAP_IMAGE_SHARED_PROP, VirtIOTmem,
                     swap_image_shared, false),
    DEFINE_PROP_UINT8(VIRTIO_TMEM_WB_HIGH_PROP, VirtIOTmem, writeback_high,
                      TMEM_DEFAULT_WB_HIGH_PCT),
    DEFINE_PROP_UINT8(VIRTIO_TMEM_WB_LOW_PROP, VirtIOTmem, writeback_low,
                      TMEM_DEFAULT_WB_LOW_PCT),
    DEFINE_PROP_LINK(VIRTIO_TMEM_IOTHREAD_PROP, VirtIOTmem, iothread,
                     TYPE_IOTHREAD, IOThread *),
    DEFINE_PROP_BIT64(VIRTIO_TMEM_PERSISTENT_PROP, VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_PERSISTENT, true),
    DEFINE_PROP_BIT64(VIRTIO_TMEM_SHARED_PROP, VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_SHARED, true),
    DEFINE_PROP_BIT64(VIRTIO_TMEM_RESIZE_PROP, VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_RESIZE, true),
    DEFINE_PROP_BOOL(VIRTIO_TMEM_MIGRATE_EPHEMERAL_PROP, VirtIOTmem,
                     migrate_ephemeral, true),
};

static void virtio_tmem_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioDeviceClass *vdc = VIRTIO_DEVICE_CLASS(klass);
    g_autofree char *lz4 = g_strdup_printf(
        "LZ4_compress_fast() acceleration, %d..%d (higher: faster, larger)",
        TMEM_LZ4_ACCEL_MIN, TMEM_LZ4_ACCEL_MAX);
    g_autofree char *zstd = g_strdup_printf(
        "zstd compression level, %d..%d (higher: denser, slower)",
        TMEM_ZSTD_LEVEL_MIN, TMEM_ZSTD_LEVEL_MAX);
    g_autofree char *pools = g_strdup_printf(
        "most pools the guest may create, %u..%u", TMEM_MIN_POOLS,
        TMEM_MAX_POOLS);
    g_autofree char *queues = g_strdup_printf("request queues, 1..%u",
                                              VIRTIO_TMEM_MAX_QUEUES);
    g_autofree char *qsize = g_strdup_printf(
        "descriptors per request queue, a power of 2 up to %d",
        VIRTQUEUE_MAX_SIZE);
    g_autofree char *batch = g_strdup_printf("most ops in one request, 1..%u",
                                             VIRTIO_TMEM_MAX_BATCH_LIMIT);

    device_class_set_props(dc, virtio_tmem_properties);
    object_class_property_add(klass, VIRTIO_TMEM_SIZE_PROP, "size",
                              virtio_tmem_get_size, virtio_tmem_set_size,
                              NULL, NULL);
    object_class_property_set_description(klass, VIRTIO_TMEM_MAX_SIZE_PROP,
        "most size may be set to at run time (default: size)");
    object_class_property_set_description(klass, VIRTIO_TMEM_AUTO_SHRINK_PROP,
        "shrink size while the host's memory pressure stays high, grow it "
        "back slowly when it is gone, between min-size and max-size");
    object_class_property_set_description(klass, VIRTIO_TMEM_MIN_SIZE_PROP,
        "least auto-shrink brings size down to (default: max-size / 4)");
    object_class_property_set_description(klass,
        VIRTIO_TMEM_PRESSURE_FILE_PROP,
        "PSI file auto-shrink reads (default: /proc/pressure/memory; a "
        "cgroup's memory.pressure)");
    object_class_property_set_description(klass,
        VIRTIO_TMEM_PRESSURE_THRESHOLD_PROP,
        "'some avg10' percentage above which auto-shrink shrinks");
    object_class_property_set_description(klass,
        VIRTIO_TMEM_PRESSURE_INTERVAL_PROP,
        "milliseconds between auto-shrink's readings");
    object_class_property_set_description(klass, VIRTIO_TMEM_RESIZE_PROP,
        "offer VIRTIO_TMEM_F_RESIZE: cap credits and ask the guest for "
        "pages back when size shrinks");
    object_class_property_set_description(klass, VIRTIO_TMEM_SIZE_PROP,
        "host memory for the guest's pages, metadata included (settable "
        "at run time with qom-set, up to max-size)");
    object_class_property_set_description(klass, VIRTIO_TMEM_COMPRESSOR_PROP,
        "'lz4' (default, fastest), 'zstd' (denser) or 'none'");
    object_class_property_set_description(klass, VIRTIO_TMEM_ALLOCATOR_PROP,
        "'zbud' (default: two pages a frame) or 'zsmalloc' (size classes, "
        "denser)");
    object_class_property_set_description(klass, VIRTIO_TMEM_LZ4_ACCEL_PROP,
                                          lz4);
    object_class_property_set_description(klass, VIRTIO_TMEM_ZSTD_LEVEL_PROP,
                                          zstd);
    object_class_property_set_description(klass, VIRTIO_TMEM_NUM_QUEUES_PROP,
                                          queues);
    object_class_property_set_description(klass, VIRTIO_TMEM_QUEUE_SIZE_PROP,
                                          qsize);
    object_class_property_set_description(klass, VIRTIO_TMEM_MAX_BATCH_PROP,
                                          batch);
    object_class_property_set_description(klass, VIRTIO_TMEM_MAX_POOLS_PROP,
                                          pools);
    object_class_property_set_description(klass, VIRTIO_TMEM_SWAP_IMAGE_PROP,
        "host file that persistent pages are written back to when the pool "
        "is full (created 0600 or truncated; holds guest memory)");
    object_class_property_set_description(klass,
        VIRTIO_TMEM_SWAP_IMAGE_SIZE_PROP,
        "most the swap image may grow to (default: 4 x size)");
    object_class_property_set_description(klass,
        VIRTIO_TMEM_SWAP_IMAGE_UNLINK_PROP,
        "remove the swap image's name once it is open");
    object_class_property_set_description(klass,
        VIRTIO_TMEM_SWAP_IMAGE_DIRECT_PROP,
        "open the swap image with O_DIRECT (bypass the host page cache)");
    object_class_property_set_description(klass, VIRTIO_TMEM_WB_HIGH_PROP,
        "percentage of size at which background writeback starts");
    object_class_property_set_description(klass, VIRTIO_TMEM_WB_LOW_PROP,
        "percentage of size at which background writeback stops");
    object_class_property_set_description(klass, VIRTIO_TMEM_IOTHREAD_PROP,
        "IOThread that serves the request queues (default: main loop)");
    object_class_property_set_description(klass, VIRTIO_TMEM_PERSISTENT_PROP,
        "offer persistent pools (frontswap) with credits");
    object_class_property_set_description(klass, VIRTIO_TMEM_SHARED_PROP,
        "offer pools shared by UUID");
    object_class_property_set_description(klass,
        VIRTIO_TMEM_MIGRATE_EPHEMERAL_PROP,
        "also send cleancache pages when migrating (default: only their "
        "pools; the guest reads them from disk again)");
    object_class_property_add_bool(klass, VIRTIO_TMEM_STALL_PROP,
                                   virtio_tmem_get_stall,
                                   virtio_tmem_set_stall);
    object_class_property_set_description(klass, VIRTIO_TMEM_STALL_PROP,
        "test hook: while on, take no request off the queues "
        "(settable at run time with qom-set)");
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    dc->desc = "virtio transcendent memory (cleancache and frontswap pool)";
    vdc->realize = virtio_tmem_realize;
    vdc->unrealize = virtio_tmem_unrealize;
    vdc->get_config = virtio_tmem_get_config;
    vdc->set_config = virtio_tmem_set_config;
    vdc->get_features = virtio_tmem_get_features;
    vdc->set_features = virtio_tmem_set_features;
    vdc->start_ioeventfd = virtio_tmem_start_ioeventfd;
    vdc->stop_ioeventfd = virtio_tmem_stop_ioeventfd;
    vdc->reset = virtio_tmem_reset;
    vdc->post_load = virtio_tmem_post_load;
    vdc->vmsd = &vmstate_virtio_tmem_device;
    dc->vmsd = &vmstate_virtio_tmem;
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
