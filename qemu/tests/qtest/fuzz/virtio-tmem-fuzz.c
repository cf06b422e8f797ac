/*
 * virtio-tmem fuzzing target
 *
 * Turns a fuzz input into a sequence of driver actions on the virtio-tmem
 * request queues: batches of ops (well-formed and malformed), descriptor
 * chains split at any byte and aimed at RAM, at the device's own BAR, at
 * unmapped space or across the end of RAM, raw descriptor chains,
 * notifications of any queue index (waited for or not), device resets with
 * any feature set, config space reads and virtual clock steps.
 *
 * Every input starts from a device reset, so an input replays alone.  The
 * device and its host pool run under ASan and UBSan; the target itself
 * checks what a driver may rely on from any device: used elements name a
 * head that was made available and never claim more bytes than the chain
 * could take, and a well-formed batch is answered with its own sequence
 * number.
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"

#include "qemu/bswap.h"
#include "qemu/main-loop.h"
#include "tests/qtest/libqtest.h"
#include "tests/qtest/libqos/virtio.h"
#include "tests/qtest/libqos/virtio-pci.h"
#include "tests/qtest/libqos/virtio-tmem.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_pci.h"
#include "standard-headers/linux/virtio_ring.h"
#include "fuzz.h"
#include "qos_fuzz.h"

#include "virtio_tmem.h"

/*
 * The device as the target sees it: small enough that a few inputs fill
 * the pool, take every credit and use every pool.
 */
#define TMEM_SIZE           "1M"
#define TMEM_QUEUES         2
#define TMEM_QUEUE_SIZE     64
#define TMEM_MAX_BATCH      8
#define TMEM_MAX_POOLS      4

#define PAGE                VIRTIO_TMEM_PAGE_SIZE
#define MAX_OPS             15          /* beyond max-batch on purpose */
#define MAX_SEGS            40          /* descriptors of one batch */
#define ARENA_SIZE          (1 * MiB)   /* guest buffers, reused per input */
#define RAM_END             (64 * MiB)  /* qos_fuzz starts QEMU with -m 64 */
#define UNMAPPED_ADDR       (1ULL << 40)
#define BIOS_ADDR           0xfffc0000ULL

/* Where a descriptor points. */
enum {
    AIM_RAM,            /* the arena, 8-byte aligned */
    AIM_RAM_ODD,        /* the arena at an odd address */
    AIM_RAM_END,        /* straddling the end of guest RAM */
    AIM_BAR,            /* the device's own BAR (common cfg, ISR, notify) */
    AIM_UNMAPPED,       /* nothing there */
    AIM_ROM,            /* the BIOS: reads work, writes are dropped */
    AIM_RING,           /* the queue's own descriptor table */
    AIM_SELF,           /* where this chain's first readable byte is */
    AIM_KINDS
};

typedef struct TmemFuzz {
    QTestState *qts;
    QVirtioDevice *dev;
    QGuestAllocator *alloc;
    uint64_t arena;
    uint64_t arena_off;
    uint64_t bar;
    unsigned nr_queues;
    QVirtQueue *vq[TMEM_QUEUES];
    uint16_t avail_idx[TMEM_QUEUES];
    uint16_t used_idx[TMEM_QUEUES];
    uint16_t next_desc[TMEM_QUEUES];
    /* bytes each head's chain could take, for the used length check */
    uint32_t head_in_len[TMEM_QUEUES][TMEM_QUEUE_SIZE];
    /* times each head is in the available ring and not yet used */
    uint16_t head_avail[TMEM_QUEUES][TMEM_QUEUE_SIZE];
    /*
     * The device may have seen descriptors change under a chain it had
     * not used yet (a chain left without a notification, a device write
     * into the ring): used elements are then not checked until a reset.
     */
    bool unchecked[TMEM_QUEUES];
    uint64_t seq;
    /* queues served by an IOThread: used elements come asynchronously */
    bool iothread;
} TmemFuzz;

typedef struct Input {
    const uint8_t *p;
    size_t n;
} Input;

static TmemFuzz fz;

static uint8_t in8(Input *in)
{
    if (!in->n) {
        return 0;
    }
    in->n--;
    return *in->p++;
}

static uint16_t in16(Input *in)
{
    return in8(in) | (uint16_t)in8(in) << 8;
}

/* ---- guest memory -------------------------------------------------------- */

/* @len bytes of the arena; wraps around, the device has used older ones. */
static uint64_t arena_get(uint64_t len, unsigned misalign)
{
    uint64_t off = QEMU_ALIGN_UP(fz.arena_off, 8) + misalign;

    if (off + len > ARENA_SIZE) {
        off = misalign;
    }
    fz.arena_off = off + len;
    return fz.arena + off;
}

static bool aim_is_ram(unsigned aim)
{
    return aim == AIM_RAM || aim == AIM_RAM_ODD;
}

/* The guest address of a @len byte segment aimed by @aim. */
static uint64_t aim_addr(unsigned aim, uint8_t arg, uint64_t len,
                         uint64_t self, unsigned q)
{
    static const uint16_t bar_off[] = {
        0,                                  /* common cfg */
        offsetof(struct virtio_pci_common_cfg, device_status),
        offsetof(struct virtio_pci_common_cfg, queue_enable),
        0x1000,                             /* ISR */
        0x2000,                             /* device config */
        0x3000,                             /* notify */
    };

    switch (aim) {
    case AIM_RAM:
        return arena_get(len, 0);
    case AIM_RAM_ODD:
        return arena_get(len, 1 + arg % 4095);
    case AIM_RAM_END:
        return RAM_END - MIN(len, (uint64_t)arg + 1);
    case AIM_BAR:
        return fz.bar + bar_off[arg % ARRAY_SIZE(bar_off)];
    case AIM_UNMAPPED:
        return UNMAPPED_ADDR + arg;
    case AIM_ROM:
        return BIOS_ADDR + arg * 16;
    case AIM_RING:
        return fz.vq[q]->desc + (arg % 16) * 16;
    default:
        return self ? self : arena_get(len, 0);
    }
}

/* ---- the device ---------------------------------------------------------- */

static void queues_free(void)
{
    unsigned i;

    for (i = 0; i < fz.nr_queues; i++) {
        qvirtqueue_cleanup(fz.dev->bus, fz.vq[i], fz.alloc);
        fz.vq[i] = NULL;
    }
    fz.nr_queues = 0;
}

/*
 * Reset the device and bring it up with the features @mask selects from
 * those it offers.  VERSION_1 is always kept: libqos drives the modern
 * interface.
 */
static void device_start(uint8_t mask)
{
    static const uint64_t optional[] = {
        1ULL << VIRTIO_TMEM_F_PERSISTENT,
        1ULL << VIRTIO_TMEM_F_SHARED,
        1ULL << VIRTIO_TMEM_F_MQ,
        1ULL << VIRTIO_RING_F_INDIRECT_DESC,
        1ULL << VIRTIO_RING_F_EVENT_IDX,
    };
    uint64_t features;
    unsigned i, q;

    queues_free();
    qvirtio_start_device(fz.dev);
    features = qvirtio_get_features(fz.dev) & ~QVIRTIO_F_BAD_FEATURE;
    for (i = 0; i < ARRAY_SIZE(optional); i++) {
        if (!(mask & (1u << i))) {
            features &= ~optional[i];
        }
    }
    qvirtio_set_features(fz.dev, features);

    fz.nr_queues = features & (1ULL << VIRTIO_TMEM_F_MQ) ? TMEM_QUEUES : 1;
    for (q = 0; q < fz.nr_queues; q++) {
        fz.vq[q] = qvirtqueue_setup(fz.dev, fz.alloc, q);
        g_assert_cmpuint(fz.vq[q]->size, ==, TMEM_QUEUE_SIZE);
        fz.avail_idx[q] = 0;
        fz.used_idx[q] = 0;
        fz.next_desc[q] = 0;
        fz.unchecked[q] = false;
        memset(fz.head_avail[q], 0, sizeof(fz.head_avail[q]));
    }
    qvirtio_set_driver_ok(fz.dev);
    fz.arena_off = 0;
}

/* Notify queue @q: any index, also one the device does not have. */
static void notify(unsigned q)
{
    QVirtioPCIDevice *pdev = container_of(fz.dev, QVirtioPCIDevice, vdev);

    qpci_io_writew(pdev->pdev, pdev->bar, pdev->notify_cfg_offset +
                   q * pdev->notify_off_multiplier, q);
}

static void desc_write(unsigned q, uint64_t table, uint16_t i, uint64_t addr,
                       uint32_t len, uint16_t flags, uint16_t next)
{
    uint64_t d = table + 16ULL * i;

    qtest_writeq(fz.qts, d, addr);
    qtest_writel(fz.qts, d + 8, len);
    qtest_writew(fz.qts, d + 12, flags);
    qtest_writew(fz.qts, d + 14, next);
}

/* Make the chain at @head available on queue @q. */
static void avail_push(unsigned q, uint16_t head, uint32_t in_len)
{
    QVirtQueue *vq = fz.vq[q];
    uint16_t idx = fz.avail_idx[q];

    qtest_writew(fz.qts, vq->avail + 4 + 2 * (idx % vq->size), head);
    qtest_writew(fz.qts, vq->avail + 2, idx + 1);
    fz.avail_idx[q] = idx + 1;
    fz.head_in_len[q][head] = fz.head_avail[q][head] ?
                              MAX(fz.head_in_len[q][head], in_len) : in_len;
    fz.head_avail[q][head]++;
}

/*
 * What any driver relies on: a used element names a head that was made
 * available and not yet used, and its length fits in what the chain could
 * take.  Returns the length of the element for @head, or -1 if the device
 * has not used it.
 */
static int64_t used_drain(unsigned q, int head)
{
    QVirtQueue *vq = fz.vq[q];
    uint16_t idx = qtest_readw(fz.qts, vq->used + 2);
    int64_t found = -1;

    if (fz.unchecked[q]) {
        fz.used_idx[q] = idx;
        return -1;
    }
    g_assert_cmpuint((uint16_t)(idx - fz.used_idx[q]), <=,
                     (uint16_t)(fz.avail_idx[q] - fz.used_idx[q]));
    while (fz.used_idx[q] != idx) {
        uint64_t e = vq->used + 4 + 8ULL * (fz.used_idx[q] % vq->size);
        uint32_t id = qtest_readl(fz.qts, e);
        uint32_t len = qtest_readl(fz.qts, e + 4);

        g_assert_cmpuint(id, <, vq->size);
        g_assert_cmpuint(fz.head_avail[q][id], >, 0);
        g_assert_cmpuint(len, <=, fz.head_in_len[q][id]);
        fz.head_avail[q][id]--;
        if ((int)id == head) {
            found = len;
        }
        fz.used_idx[q]++;
    }
    return found;
}

static void run_main_loop(void)
{
    flush_events(fz.qts);
}

/*
 * After a notification of queue @q: run the main loop (where the queue
 * handler runs without an IOThread) and, with one, wait for the IOThread
 * to use every chain, fail the device, or take too long (the chains then
 * stay unchecked: their descriptors may change under the device).
 */
static void queue_settle(unsigned q)
{
    gint64 deadline = g_get_monotonic_time() + 200 * 1000;

    run_main_loop();
    while (fz.iothread &&
           qtest_readw(fz.qts, fz.vq[q]->used + 2) != fz.avail_idx[q]) {
        if (fz.dev->bus->get_status(fz.dev) & VIRTIO_CONFIG_S_NEEDS_RESET) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            fz.unchecked[q] = true;
            break;
        }
        /* as a vCPU between accesses: the IOThread may need the BQL */
        bql_unlock();
        g_usleep(20);
        bql_lock();
        run_main_loop();
    }
}

/* ---- batches ------------------------------------------------------------- */

/* Malformations of one batch, from one input byte. */
enum {
    MAL_NR_OPS      = 1 << 0,   /* header nr_ops differs from the ops sent */
    MAL_HDR_FLAGS   = 1 << 1,   /* header flags / reserved not zero */
    MAL_SHORT_OUT   = 1 << 2,   /* readable part cut short */
    MAL_SHORT_IN    = 1 << 3,   /* writable part cut short */
    MAL_IN_FIRST    = 1 << 4,   /* writable descriptors before readable */
    MAL_LONG_OUT    = 1 << 5,   /* readable part has trailing bytes */
    MAL_INDIRECT    = 1 << 6,   /* one indirect table instead of a chain */
    MAL_NO_KICK     = 1 << 7,   /* made available, not notified */
};
#define MAL_ANY (MAL_NR_OPS | MAL_HDR_FLAGS | MAL_SHORT_OUT | MAL_SHORT_IN | \
                 MAL_IN_FIRST | MAL_LONG_OUT)

static void page_fill(uint8_t *p, uint8_t how)
{
    uint32_t x = how * 2654435761u + 1;
    unsigned i;

    switch (how & 3) {
    case 0:
        memset(p, 0, PAGE);
        break;
    case 1:                     /* one byte value: compresses to nothing */
        memset(p, how, PAGE);
        break;
    case 2:                     /* incompressible */
        for (i = 0; i < PAGE; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            p[i] = x;
        }
        break;
    default:                    /* half text, half noise */
        for (i = 0; i < PAGE; i++) {
            x = x * 1103515245 + 12345;
            p[i] = i < PAGE / 2 ? "tmem page "[i % 10] : x >> 16;
        }
    }
}

/*
 * One op from three to four input bytes:
 *   op:   bits 0-2 opcode (0 is invalid), 3-4 flags, 5 a reserved field set,
 *         6 a bad page size (NEW_POOL) / an invalid flag, 7 opcode from the
 *         next byte instead
 *   pool: below 0xf0 a small pool id, else one that never exists
 *   key:  bits 4-7 object, 0-2 index, 3 an index near 2^64
 */
static unsigned op_build(Input *in, struct virtio_tmem_op *op)
{
    uint8_t b = in8(in), pool = in8(in), key = in8(in);

    memset(op, 0, sizeof(*op));
    op->opcode = b & 0x80 ? in8(in) : b & 7;
    op->flags = (b >> 3) & 3;
    if (b & 0x20) {
        op->reserved1 = cpu_to_le64(1);
    }
    if (op->opcode == VIRTIO_TMEM_OP_NEW_POOL) {
        op->u.pool.uuid[0] = pool;
        op->u.pool.page_size = cpu_to_le32(b & 0x40 ? 512 : PAGE);
        return op->opcode;
    }
    if (b & 0x40) {
        op->flags |= 0x80;
    }
    op->pool_id = cpu_to_le32(pool < 0xf0 ? pool % (TMEM_MAX_POOLS + 2) :
                              0xffffff00u | pool);
    op->u.key.oid[0] = cpu_to_le64(key >> 4);
    op->u.key.oid[2] = cpu_to_le64(0x7e5e);
    op->u.key.index = cpu_to_le64(key & 8 ? UINT64_MAX - (key & 7) :
                                  key & 7);
    return op->opcode;
}

typedef struct Seg {
    uint64_t addr;
    uint32_t len;
    bool write;
} Seg;

/* Read @len bytes at @off of the writable part of a chain all in RAM. */
static void segs_read(const Seg *segs, unsigned nsegs, uint64_t off,
                      void *buf, uint64_t len)
{
    unsigned i;

    for (i = 0; i < nsegs && len; i++) {
        uint64_t n;

        if (!segs[i].write) {
            continue;
        }
        if (off >= segs[i].len) {
            off -= segs[i].len;
            continue;
        }
        n = MIN(len, segs[i].len - off);
        qtest_memread(fz.qts, segs[i].addr + off, buf, n);
        buf = (uint8_t *)buf + n;
        len -= n;
        off = 0;
    }
    g_assert_cmpuint(len, ==, 0);
}

/*
 * A well-formed batch sent whole into RAM: the device answered it with its
 * own sequence number and a status for every op, and the used length
 * covers every byte written, up to the end of the last GET page that hit
 * (GET pages sit at fixed slots, so a miss before a hit leaves a hole).
 */
static void batch_check(const Seg *segs, unsigned nsegs,
                        const struct virtio_tmem_op *ops, unsigned nr,
                        int64_t used)
{
    struct virtio_tmem_resp_hdr r;
    struct virtio_tmem_op_status st[MAX_OPS];
    uint64_t end = sizeof(r) + nr * sizeof(st[0]), base = end;
    unsigned i, get = 0;

    segs_read(segs, nsegs, 0, &r, sizeof(r));
    segs_read(segs, nsegs, sizeof(r), st, nr * sizeof(st[0]));
    g_assert_cmpuint(le32_to_cpu(r.status), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(le64_to_cpu(r.seq), ==, fz.seq);
    g_assert_cmpuint(le16_to_cpu(r.nr_ops), ==, nr);
    for (i = 0; i < nr; i++) {
        if (ops[i].opcode != VIRTIO_TMEM_OP_GET) {
            continue;
        }
        if (le32_to_cpu(st[i].status) == VIRTIO_TMEM_S_OK) {
            end = base + (get + 1) * (uint64_t)PAGE;
        }
        get++;
    }
    g_assert_cmpuint(used, >=, end);
}

/*
 * Split @len bytes into segments, each from one input byte: bits 0-2 its
 * length, bits 3-7 where it points (and a second byte for the length or
 * the aim where the kind needs one).  Bytes aimed at RAM get @data.
 */
static bool segs_split(Input *in, Seg *segs, unsigned *nr, const uint8_t *data,
                       uint64_t len, bool write, uint64_t *self, unsigned q)
{
    bool all_ram = true;
    uint64_t off = 0;

    while (off < len && *nr < MAX_SEGS) {
        uint8_t b = in8(in);
        uint64_t left = len - off, n;
        unsigned aim = (b >> 3) % (AIM_KINDS + 8);
        Seg *s = &segs[(*nr)++];

        /* Most segments are RAM: the device must get far enough. */
        aim = aim >= AIM_KINDS ? AIM_RAM : aim;
        switch (b & 7) {
        case 1:
            n = PAGE;
            break;
        case 2:
            n = sizeof(struct virtio_tmem_req_hdr);
            break;
        case 3:
            n = sizeof(struct virtio_tmem_op);
            break;
        case 4:
            n = 1 + in8(in);
            break;
        case 5:
            n = PAGE - in8(in);
            break;
        case 6:
            n = 8 * (uint64_t)in8(in);
            break;
        default:
            n = left;
        }
        if (*nr == MAX_SEGS || n > left) {
            n = left;
        }
        s->len = n;
        s->write = write;
        s->addr = aim_addr(aim, in8(in), n, *self, q);
        if (write && aim == AIM_RING) {
            fz.unchecked[q] = true;
        }
        if (aim_is_ram(aim) && data) {
            qtest_memwrite(fz.qts, s->addr, data + off, n);
        }
        if (!*self && !write) {
            *self = s->addr;
        }
        all_ram &= aim_is_ram(aim);
        off += n;
    }
    /* Out of segments: the rest goes unsent, a short chain. */
    return all_ram && off == len;
}

/*
 * A batch: header, ops, PUT pages readable; response header, statuses,
 * GET pages writable.  Then checks what a driver would: the device used
 * the chain (unless it was not notified or is broken) and, if the batch
 * was well-formed and sent whole in RAM, echoed its sequence number.
 */
static void cmd_batch(Input *in)
{
    struct virtio_tmem_req_hdr hdr = { 0 };
    struct virtio_tmem_op ops[MAX_OPS];
    g_autofree uint8_t *out = NULL;
    Seg segs[MAX_SEGS];
    uint8_t sel = in8(in), mal = in8(in);
    unsigned q = (sel >> 4) % fz.nr_queues;
    unsigned nr = sel % (MAX_OPS + 1), nr_put = 0, nr_get = 0, i, nsegs = 0;
    uint64_t out_len, in_len, self = 0, table = 0;
    bool whole = true, valid_ops = true;
    uint32_t chain_in = 0;
    uint16_t head;
    int64_t used;

    for (i = 0; i < nr; i++) {
        unsigned opcode = op_build(in, &ops[i]);

        nr_put += opcode == VIRTIO_TMEM_OP_PUT;
        nr_get += opcode == VIRTIO_TMEM_OP_GET;
        valid_ops &= opcode >= VIRTIO_TMEM_OP_NEW_POOL &&
                     opcode <= VIRTIO_TMEM_OP_FLUSH_POOL;
    }
    hdr.nr_ops = cpu_to_le16(mal & MAL_NR_OPS ? in8(in) : nr);
    hdr.flags = cpu_to_le16(mal & MAL_HDR_FLAGS ? 1 + in8(in) : 0);
    hdr.seq = cpu_to_le64(++fz.seq);

    out_len = sizeof(hdr) + nr * sizeof(ops[0]) + (uint64_t)nr_put * PAGE;
    in_len = sizeof(struct virtio_tmem_resp_hdr) +
             nr * sizeof(struct virtio_tmem_op_status) +
             (uint64_t)nr_get * PAGE;
    out = g_malloc0(out_len + 256);
    memcpy(out, &hdr, sizeof(hdr));
    memcpy(out + sizeof(hdr), ops, nr * sizeof(ops[0]));
    for (i = 0; i < nr_put; i++) {
        page_fill(out + sizeof(hdr) + nr * sizeof(ops[0]) + i * PAGE, in8(in));
    }
    if (mal & MAL_SHORT_OUT) {
        out_len -= MIN(out_len, 1 + in8(in));
    }
    if (mal & MAL_LONG_OUT) {
        out_len += 1 + in8(in);
    }
    if (mal & MAL_SHORT_IN) {
        in_len -= MIN(in_len, 1 + (uint64_t)in16(in) % in_len);
    }

    if (mal & MAL_IN_FIRST) {
        whole &= segs_split(in, segs, &nsegs, NULL, in_len, true, &self, q);
        whole &= segs_split(in, segs, &nsegs, out, out_len, false, &self, q);
    } else {
        whole &= segs_split(in, segs, &nsegs, out, out_len, false, &self, q);
        whole &= segs_split(in, segs, &nsegs, NULL, in_len, true, &self, q);
    }
    for (i = 0; i < nsegs; i++) {
        chain_in += segs[i].write ? segs[i].len : 0;
    }
    if (!nsegs) {
        return;
    }

    head = fz.next_desc[q];
    if (mal & MAL_INDIRECT) {
        table = arena_get(16ULL * nsegs, 0);
        for (i = 0; i < nsegs; i++) {
            desc_write(q, table, i, segs[i].addr, segs[i].len,
                       (segs[i].write ? VRING_DESC_F_WRITE : 0) |
                       (i + 1 < nsegs ? VRING_DESC_F_NEXT : 0), i + 1);
        }
        desc_write(q, fz.vq[q]->desc, head, table, 16 * nsegs,
                   VRING_DESC_F_INDIRECT, 0);
        fz.next_desc[q] = (head + 1) % TMEM_QUEUE_SIZE;
    } else {
        for (i = 0; i < nsegs; i++) {
            uint16_t d = (head + i) % TMEM_QUEUE_SIZE;

            desc_write(q, fz.vq[q]->desc, d, segs[i].addr, segs[i].len,
                       (segs[i].write ? VRING_DESC_F_WRITE : 0) |
                       (i + 1 < nsegs ? VRING_DESC_F_NEXT : 0),
                       (d + 1) % TMEM_QUEUE_SIZE);
        }
        fz.next_desc[q] = (head + nsegs) % TMEM_QUEUE_SIZE;
    }
    avail_push(q, head, chain_in);
    if (mal & MAL_NO_KICK) {
        fz.unchecked[q] = true;
        return;
    }
    notify(q);
    queue_settle(q);
    used = used_drain(q, head);

    if (used >= 0 && whole && valid_ops && nr && nr <= TMEM_MAX_BATCH &&
        !(mal & MAL_ANY)) {
        batch_check(segs, nsegs, ops, nr, used);
    }
}

/*
 * A chain of 1-8 raw descriptors: any flags, any next, any length, aimed
 * like the segments of a batch.
 */
static void cmd_raw(Input *in)
{
    uint8_t sel = in8(in);
    unsigned q = (sel >> 4) % fz.nr_queues, n = 1 + sel % 8, i;
    uint16_t head = fz.next_desc[q];
    uint32_t chain_in = 0;

    for (i = 0; i < n; i++) {
        uint8_t b = in8(in), next = in8(in);
        uint32_t len = in16(in);
        uint16_t d = (head + i) % TMEM_QUEUE_SIZE;
        unsigned aim = (b >> 3) % AIM_KINDS;
        uint64_t addr = aim_addr(aim, in8(in), len, 0, q);
        uint16_t flags = b & (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE |
                              VRING_DESC_F_INDIRECT);

        if ((flags & VRING_DESC_F_WRITE) && aim == AIM_RING) {
            fz.unchecked[q] = true;
        }

        if (aim_is_ram(aim) && !(flags & VRING_DESC_F_WRITE)) {
            /* readable RAM holds the rest of the input, or zeroes */
            uint8_t buf[256] = { 0 };
            uint32_t k = MIN(MIN(len, sizeof(buf)), in->n);

            memcpy(buf, in->p, k);
            qtest_memwrite(fz.qts, addr, buf, MIN(len, sizeof(buf)));
        }
        /*
         * No bound from the chain itself: the device must not use more
         * than the writable descriptors QEMU's core let through.
         */
        chain_in = UINT32_MAX;
        desc_write(q, fz.vq[q]->desc, d, addr, len, flags,
                   next & 0x80 ? next % TMEM_QUEUE_SIZE :
                   (d + 1) % TMEM_QUEUE_SIZE);
    }
    fz.next_desc[q] = (head + n) % TMEM_QUEUE_SIZE;
    avail_push(q, head, chain_in);
    notify(q);
    queue_settle(q);
    used_drain(q, -1);
}

static void cmd_config(Input *in)
{
    uint8_t b = in8(in);
    uint64_t off = b >> 2;

    switch (b & 3) {
    case 0:
        qvirtio_config_readb(fz.dev, off);
        break;
    case 1:
        qvirtio_config_readw(fz.dev, off);
        break;
    case 2:
        qvirtio_config_readl(fz.dev, off);
        break;
    default:
        qvirtio_config_readq(fz.dev, off);
    }
}

static void virtio_tmem_fuzz(QTestState *s, const unsigned char *data,
                             size_t size)
{
    Input in = { data, size };
    unsigned q;

    fz.qts = s;
    device_start(in8(&in));
    while (in.n) {
        uint8_t cmd = in8(&in);

        switch (cmd % 8) {
        case 0:
        case 1:
        case 2:
            cmd_batch(&in);
            break;
        case 3:                 /* a notification, maybe of no queue */
            q = (cmd >> 3) & 15;
            notify(q);
            if (cmd & 0x80) {
                /*
                 * Not waited for: the next command (a reset, as from
                 * another vCPU) races with the queue handler, which may
                 * see the chains change under it.
                 */
                if (q < fz.nr_queues) {
                    fz.unchecked[q] = true;
                }
                break;
            }
            if (q < fz.nr_queues) {
                queue_settle(q);
            }
            run_main_loop();
            for (q = 0; q < fz.nr_queues; q++) {
                used_drain(q, -1);
            }
            break;
        case 4:
            device_start(in8(&in));
            break;
        case 5:
            cmd_config(&in);
            break;
        case 6:                 /* time passes: config BHs, writeback */
            qtest_clock_step(s, (1 + (cmd >> 3)) * 1000 * 1000);
            run_main_loop();
            break;
        default:
            cmd_raw(&in);
        }
    }
    run_main_loop();
    /* Leave the device reset: the next input starts from nothing. */
    qvirtio_reset(fz.dev);
    queues_free();
    run_main_loop();
}

static void virtio_tmem_pre_fuzz(QTestState *s)
{
    QVirtioTmem *tmem;
    QVirtioPCIDevice *pdev;

    qos_init_path(s);
    tmem = fuzz_qos_obj;
    fz.qts = s;
    fz.dev = tmem->vdev;
    fz.alloc = fuzz_qos_alloc;
    pdev = container_of(fz.dev, QVirtioPCIDevice, vdev);
    g_assert_false(pdev->bar.is_io);
    fz.bar = pdev->bar.addr;
    fz.arena = guest_alloc(fz.alloc, ARENA_SIZE);
}

static void virtio_tmem_iothread_pre_fuzz(QTestState *s)
{
    virtio_tmem_pre_fuzz(s);
    fz.iothread = true;
}

static void register_virtio_tmem_fuzz_targets(void)
{
    fuzz_add_qos_target(&(FuzzTarget){
                .name = "virtio-tmem-fuzz",
                .description = "Fuzz virtio-tmem request queues with "
                "batches of ops, malformed and raw chains, notifications, "
                "resets and config reads",
                .pre_fuzz = virtio_tmem_pre_fuzz,
                .fuzz = virtio_tmem_fuzz,
                },
                "virtio-tmem",
                &(QOSGraphTestOptions){
                    .edge.extra_device_opts = "size=" TMEM_SIZE
                    ",num-queues=" stringify(TMEM_QUEUES)
                    ",queue-size=" stringify(TMEM_QUEUE_SIZE)
                    ",max-batch=" stringify(TMEM_MAX_BATCH)
                    ",max-pools=" stringify(TMEM_MAX_POOLS),
                });
    fuzz_add_qos_target(&(FuzzTarget){
                .name = "virtio-tmem-iothread-fuzz",
                .description = "virtio-tmem-fuzz with the queues served "
                "by an IOThread",
                .pre_fuzz = virtio_tmem_iothread_pre_fuzz,
                .fuzz = virtio_tmem_fuzz,
                },
                "virtio-tmem",
                &(QOSGraphTestOptions){
                    .edge.after_cmd_line = "-object iothread,id=tmem_fuzz_io",
                    .edge.extra_device_opts = "size=" TMEM_SIZE
                    ",num-queues=" stringify(TMEM_QUEUES)
                    ",queue-size=" stringify(TMEM_QUEUE_SIZE)
                    ",max-batch=" stringify(TMEM_MAX_BATCH)
                    ",max-pools=" stringify(TMEM_MAX_POOLS)
                    ",iothread=tmem_fuzz_io",
                });
}

fuzz_target_init(register_virtio_tmem_fuzz_targets);
