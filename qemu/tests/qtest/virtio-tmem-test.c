/*
 * QTest testcase for the virtio transcendent memory device
 *
 * Drives the request queue directly, without a guest kernel: batches are
 * built with the virtio-tmem codec and sent as indirect descriptor chains.
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"
#include "libqtest-single.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qnum.h"
#include "libqos/qgraph.h"
#include "libqos/virtio.h"
#include "libqos/virtio-tmem.h"
#include "libqos/virtio-pci.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_pci.h"
#include "standard-headers/linux/virtio_ring.h"
#include <sys/resource.h>
#include <sys/socket.h>

#include "vtmem_codec.h"

#define TMEM_TIMEOUT_US     (30 * 1000 * 1000)
#define PAGE                VIRTIO_TMEM_PAGE_SIZE
#define MAX_OPS             VIRTIO_TMEM_MAX_BATCH_LIMIT
#define MAX_DESC            (4 + 2 * MAX_OPS)

typedef struct TmemCtx {
    QTestState *qts;
    QVirtioDevice *dev;
    QGuestAllocator *alloc;
    QVirtQueue *vq;
    unsigned max_batch;
    uint64_t credits;           /* highest credits seen in a response */
} TmemCtx;

/* One batch, host side: the codec's view plus the page contents. */
typedef struct TmemBatch {
    struct virtio_tmem_req_hdr hdr;
    struct virtio_tmem_op ops[MAX_OPS + 1];
    struct vtmem_batch b;
    uint8_t (*put)[PAGE];               /* nr_put pages to send */
    uint8_t (*get)[PAGE];               /* nr_get pages received */
    struct virtio_tmem_resp_hdr resp;
    struct virtio_tmem_op_status st[MAX_OPS + 1];
    uint32_t used_len;
} TmemBatch;

static TmemBatch *batch_new(unsigned max_ops, uint64_t seq)
{
    TmemBatch *t = g_new0(TmemBatch, 1);

    t->put = g_malloc0((size_t)(MAX_OPS + 1) * PAGE);
    t->get = g_malloc0((size_t)(MAX_OPS + 1) * PAGE);
    vtmem_batch_init(&t->b, &t->hdr, t->ops, max_ops, seq);
    return t;
}

static void batch_free(TmemBatch *t)
{
    g_free(t->put);
    g_free(t->get);
    g_free(t);
}

static struct vtmem_oid oid_of(uint64_t n)
{
    struct vtmem_oid o = { { n, n ^ 0xabcdef, 7 } };

    return o;
}

/* Deterministic page contents of several shapes. */
static void page_fill(uint8_t *p, uint64_t seed, int shape)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    unsigned i;

    for (i = 0; i < PAGE; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        switch (shape) {
        case 0:         /* compressible text */
            p[i] = i % 64 < 8 ? (uint8_t)x : "tmem "[i % 5];
            break;
        case 1:         /* incompressible */
            p[i] = (uint8_t)x;
            break;
        case 3:         /* 4 bits of noise a byte: for zstd, not LZ4 */
            p[i] = 'a' + (x & 15);
            break;
        default:        /* zero */
            p[i] = 0;
        }
    }
}

/* Negotiate every offered feature but those in @drop. */
static void ctx_start_without(TmemCtx *c, QVirtioTmem *tmem,
                              QGuestAllocator *alloc, uint64_t drop)
{
    uint64_t features;

    c->qts = global_qtest;
    c->dev = tmem->vdev;
    c->alloc = alloc;
    c->credits = 0;
    features = qvirtio_get_features(c->dev);
    g_assert(features & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
    g_assert(features & (1ull << VIRTIO_TMEM_F_PERSISTENT));
    g_assert(features & (1ull << VIRTIO_TMEM_F_SHARED));
    g_assert(features & (1ull << VIRTIO_RING_F_EVENT_IDX));
    /* libqos waits for an interrupt per request; it never moves used_event */
    features &= ~(QVIRTIO_F_BAD_FEATURE | (1ull << VIRTIO_RING_F_EVENT_IDX) |
                  drop);
    qvirtio_set_features(c->dev, features);
    c->vq = qvirtqueue_setup(c->dev, alloc, 0);
    qvirtio_set_driver_ok(c->dev);
    c->max_batch = qvirtio_config_readw(c->dev, 6);
}

static void ctx_start(TmemCtx *c, QVirtioTmem *tmem, QGuestAllocator *alloc)
{
    ctx_start_without(c, tmem, alloc, 0);
}

/*
 * The driver's view of its credits: the highest of the configuration
 * field and the response headers (the configuration may lag a little).
 */
static uint64_t credits_seen(TmemCtx *c)
{
    return MAX(c->credits, qvirtio_config_readq(c->dev, 16));
}

static QVirtioPCIDevice *pci_of(TmemCtx *c)
{
    return container_of(c->dev, QVirtioPCIDevice, vdev);
}

static uint8_t config_generation(TmemCtx *c)
{
    QVirtioPCIDevice *d = pci_of(c);

    return qpci_io_readb(d->pdev, d->bar, d->common_cfg_offset +
                         VIRTIO_PCI_COMMON_CFGGENERATION);
}

static void ctx_stop(TmemCtx *c)
{
    qvirtqueue_cleanup(c->dev->bus, c->vq, c->alloc);
}

/* Reset the device and bring it up again, as a driver probing anew would. */
static void ctx_reset(TmemCtx *c, QVirtioTmem *tmem)
{
    qvirtio_reset(c->dev);
    qvirtio_set_acknowledge(c->dev);
    qvirtio_set_driver(c->dev);
    ctx_start(c, tmem, c->alloc);
}

/*
 * Send a chain made of explicit pieces and wait for it to be used.
 * Each piece: guest address, length, device-writable.
 */
typedef struct Piece {
    uint64_t addr;
    uint32_t len;
    bool write;
} Piece;

static QVRingIndirectDesc *kick_pieces(TmemCtx *c, const Piece *p, unsigned n,
                                       uint32_t *head)
{
    QVRingIndirectDesc *ind = qvring_indirect_desc_setup(c->qts, c->dev,
                                                         c->alloc, n);
    unsigned i;

    for (i = 0; i < n; i++) {
        qvring_indirect_desc_add(c->dev, c->qts, ind, p[i].addr, p[i].len,
                                 p[i].write);
    }
    *head = qvirtqueue_add_indirect(c->qts, c->vq, ind);
    qvirtqueue_kick(c->qts, c->dev, c->vq, *head);
    return ind;
}

static uint32_t send_pieces(TmemCtx *c, const Piece *p, unsigned n)
{
    uint32_t head, len = 0;
    QVRingIndirectDesc *ind = kick_pieces(c, p, n, &head);

    qvirtio_wait_used_elem(c->qts, c->dev, c->vq, head, &len,
                           TMEM_TIMEOUT_US);
    /*
     * libqos never recycles descriptors; requests here are one at a time,
     * so the ring's only descriptor in use is free again.
     */
    c->vq->free_head = 0;
    c->vq->num_free = c->vq->size;
    guest_free(c->alloc, ind->desc);
    g_free(ind);
    return len;
}

/* Send a batch laid out as the spec says, one descriptor per page. */
static void run(TmemCtx *c, TmemBatch *t)
{
    size_t req = sizeof(t->hdr) + t->b.nr_ops * sizeof(t->ops[0]);
    size_t resp = sizeof(t->resp) + t->b.nr_ops * sizeof(t->st[0]);
    uint64_t req_addr = guest_alloc(c->alloc, req);
    uint64_t resp_addr = guest_alloc(c->alloc, resp);
    uint64_t pages = guest_alloc(c->alloc, (t->b.nr_put + t->b.nr_get + 1) *
                                 (size_t)PAGE);
    Piece *p = g_new0(Piece, 2 + t->b.nr_put + t->b.nr_get);
    unsigned n = 0, i;

    qtest_memwrite(c->qts, req_addr, &t->hdr, sizeof(t->hdr));
    qtest_memwrite(c->qts, req_addr + sizeof(t->hdr), t->ops,
                   t->b.nr_ops * sizeof(t->ops[0]));
    p[n++] = (Piece){ req_addr, req, false };
    for (i = 0; i < t->b.nr_put; i++) {
        qtest_memwrite(c->qts, pages + (uint64_t)i * PAGE, t->put[i], PAGE);
        p[n++] = (Piece){ pages + (uint64_t)i * PAGE, PAGE, false };
    }
    p[n++] = (Piece){ resp_addr, resp, true };
    for (i = 0; i < t->b.nr_get; i++) {
        uint64_t a = pages + (uint64_t)(t->b.nr_put + i) * PAGE;

        qtest_memset(c->qts, a, 0xcc, PAGE);
        p[n++] = (Piece){ a, PAGE, true };
    }
    t->used_len = send_pieces(c, p, n);
    qtest_memread(c->qts, resp_addr, &t->resp, sizeof(t->resp));
    c->credits = MAX(c->credits, le64_to_cpu(t->resp.credits));
    qtest_memread(c->qts, resp_addr + sizeof(t->resp), t->st,
                  t->b.nr_ops * sizeof(t->st[0]));
    for (i = 0; i < t->b.nr_get; i++) {
        qtest_memread(c->qts, pages + (uint64_t)(t->b.nr_put + i) * PAGE,
                      t->get[i], PAGE);
    }
    guest_free(c->alloc, req_addr);
    guest_free(c->alloc, resp_addr);
    guest_free(c->alloc, pages);
    g_free(p);
}

static unsigned st(TmemBatch *t, int slot)
{
    return le32_to_cpu(t->st[slot].status);
}

static unsigned val(TmemBatch *t, int slot)
{
    return le32_to_cpu(t->st[slot].value);
}

static uint32_t new_pool(TmemCtx *c, unsigned flags, const uint8_t *uuid)
{
    TmemBatch *t = batch_new(c->max_batch, 1);
    int slot = vtmem_batch_new_pool(&t->b, flags, uuid);
    uint32_t id;

    run(c, t);
    g_assert_cmpuint(le32_to_cpu(t->resp.status), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(st(t, slot), ==, VIRTIO_TMEM_S_OK);
    id = val(t, slot);
    batch_free(t);
    return id;
}

/* A single-op batch helper for puts and gets; returns the op status. */
static unsigned put1(TmemCtx *c, uint32_t pool, uint64_t obj, uint64_t idx,
                     const uint8_t *page, bool credit)
{
    TmemBatch *t = batch_new(c->max_batch, 2);
    struct vtmem_oid o = oid_of(obj);
    unsigned s;

    vtmem_batch_put(&t->b, pool, &o, idx, credit);
    memcpy(t->put[0], page, PAGE);
    run(c, t);
    s = st(t, 0);
    batch_free(t);
    return s;
}

static unsigned get1(TmemCtx *c, uint32_t pool, uint64_t obj, uint64_t idx,
                     bool excl, uint8_t *out)
{
    TmemBatch *t = batch_new(c->max_batch, 3);
    struct vtmem_oid o = oid_of(obj);
    unsigned s;

    vtmem_batch_get(&t->b, pool, &o, idx, excl);
    run(c, t);
    s = st(t, 0);
    if (s == VIRTIO_TMEM_S_OK) {
        memcpy(out, t->get[0], PAGE);
        g_assert_cmpuint(t->used_len, ==, sizeof(t->resp) + 8 + PAGE);
    } else {
        g_assert_cmpuint(t->used_len, ==, sizeof(t->resp) + 8);
    }
    batch_free(t);
    return s;
}

static QDict *stats_on(QTestState *qts)
{
    QDict *r = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': "
                         "{'path': '/machine/peripheral/tmem0', "
                         "'property': 'stats'}}");
    QDict *ret;

    g_assert(qdict_haskey(r, "return"));
    ret = qdict_get_qdict(r, "return");
    qobject_ref(ret);
    qobject_unref(r);
    return ret;
}

static QDict *stats(void)
{
    return stats_on(global_qtest);
}

static uint64_t stat_of(QDict *s, const char *kind, const char *key)
{
    return kind ? qdict_get_int(qdict_get_qdict(s, kind), key) :
                  qdict_get_int(s, key);
}

static void set_stall(bool on)
{
    QDict *r = qmp("{'execute': 'qom-set', 'arguments': "
                   "{'path': '/machine/peripheral/tmem0', "
                   "'property': 'x-stall', 'value': %i}}", on);

    g_assert(qdict_haskey(r, "return"));
    qobject_unref(r);
}

/* ---- tests --------------------------------------------------------------- */

static void test_config(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    g_assert_cmpuint(qvirtio_config_readl(c.dev, 0), ==, PAGE);
    g_assert_cmpuint(qvirtio_config_readw(c.dev, 4), ==, 1);
    g_assert_cmpuint(c.max_batch, ==, 128);
    g_assert_cmpuint(qvirtio_config_readl(c.dev, 8), ==, 32);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, 16), >, 0);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, 24), ==, 256 * 1024 * 1024);
    ctx_stop(&c);
}

static void test_round_trip(void *obj, void *data, QGuestAllocator *alloc)
{
    uint8_t page[PAGE], out[PAGE];
    uint32_t eph, per;
    TmemCtx c;
    int shape;
    QDict *s;

    ctx_start(&c, obj, alloc);
    eph = new_pool(&c, 0, NULL);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    g_assert_cmpuint(eph, !=, per);
    for (shape = 0; shape < 3; shape++) {
        page_fill(page, 100 + shape, shape);
        g_assert_cmpuint(put1(&c, per, 1, shape, page, true), ==,
                         VIRTIO_TMEM_S_OK);
        g_assert_cmpuint(get1(&c, per, 1, shape, false, out), ==,
                         VIRTIO_TMEM_S_OK);
        g_assert(!memcmp(page, out, PAGE));
        /* ephemeral: incompressible pages are dropped, others kept */
        g_assert_cmpuint(put1(&c, eph, 1, shape, page, false), ==,
                         shape == 1 ? VIRTIO_TMEM_S_NO_SPACE :
                         VIRTIO_TMEM_S_OK);
        g_assert_cmpuint(get1(&c, eph, 1, shape, false, out), ==,
                         shape == 1 ? VIRTIO_TMEM_S_NOT_FOUND :
                         VIRTIO_TMEM_S_OK);
        if (shape != 1) {
            g_assert(!memcmp(page, out, PAGE));
        }
    }
    /* a persistent put without a credit is refused */
    g_assert_cmpuint(put1(&c, per, 1, 9, page, false), ==,
                     VIRTIO_TMEM_S_NO_CREDIT);
    s = stats();
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, 3);
    g_assert_cmpuint(stat_of(s, "persistent", "raw-pages"), ==, 1);
    g_assert_cmpuint(stat_of(s, "persistent", "zero-pages"), ==, 1);
    g_assert_cmpuint(stat_of(s, "ephemeral", "reject-incompressible"), ==, 1);
    g_assert_cmpuint(stat_of(s, NULL, "no-credit"), ==, 1);
    g_assert_cmpuint(stat_of(s, NULL, "credits-spent"), ==, 3);
    qobject_unref(s);
    ctx_stop(&c);
}

/*
 * The compressor property reaches the pool: LZ4 finds no repeat in a page
 * of 4-bit noise, zstd's entropy coder packs it into half a page.  As an
 * ephemeral page it is refused (LZ4) or stored and read back (zstd).
 */
static void test_compressor(void *obj, void *data, QGuestAllocator *alloc)
{
    bool zstd = data && !strcmp(data, "zstd");
    uint8_t page[PAGE], out[PAGE];
    uint64_t bytes;
    uint32_t eph;
    TmemCtx c;
    QDict *s;

    ctx_start(&c, obj, alloc);
    eph = new_pool(&c, 0, NULL);
    page_fill(page, 7, 3);
    g_assert_cmpuint(put1(&c, eph, 1, 0, page, false), ==,
                     zstd ? VIRTIO_TMEM_S_OK : VIRTIO_TMEM_S_NO_SPACE);
    g_assert_cmpuint(get1(&c, eph, 1, 0, false, out), ==,
                     zstd ? VIRTIO_TMEM_S_OK : VIRTIO_TMEM_S_NOT_FOUND);
    s = stats();
    bytes = stat_of(s, "ephemeral", "compressed-bytes");
    if (zstd) {
        g_assert(!memcmp(page, out, PAGE));
        g_assert_cmpuint(bytes, >, PAGE / 4);
        g_assert_cmpuint(bytes, <, PAGE * 3 / 4);
    } else {
        g_assert_cmpuint(bytes, ==, 0);
        g_assert_cmpuint(stat_of(s, "ephemeral", "reject-incompressible"),
                         ==, 1);
    }
    qobject_unref(s);
    ctx_stop(&c);
}

static void test_replace_exclusive_flush(void *obj, void *data,
                                         QGuestAllocator *alloc)
{
    uint8_t a[PAGE], b[PAGE], out[PAGE];
    struct vtmem_oid o1 = oid_of(1), o2 = oid_of(2);
    TmemBatch *t;
    uint32_t per;
    TmemCtx c;
    int i;

    ctx_start(&c, obj, alloc);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    page_fill(a, 1, 0);
    page_fill(b, 2, 0);
    /* replace within one batch, then read back in the same batch */
    t = batch_new(c.max_batch, 10);
    vtmem_batch_put(&t->b, per, &o1, 5, true);
    memcpy(t->put[0], a, PAGE);
    vtmem_batch_put(&t->b, per, &o1, 5, true);
    memcpy(t->put[1], b, PAGE);
    vtmem_batch_get(&t->b, per, &o1, 5, false);
    run(&c, t);
    g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(val(t, 0), ==, 0);
    g_assert_cmpuint(st(t, 1), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(val(t, 1), ==, 1);         /* replaced */
    g_assert_cmpuint(st(t, 2), ==, VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(t->get[0], b, PAGE));
    batch_free(t);
    /* exclusive get removes */
    g_assert_cmpuint(get1(&c, per, 1, 5, true, out), ==, VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(out, b, PAGE));
    g_assert_cmpuint(get1(&c, per, 1, 5, false, out), ==,
                     VIRTIO_TMEM_S_NOT_FOUND);
    /* flush page, object, pool, destroy */
    t = batch_new(c.max_batch, 11);
    for (i = 0; i < 8; i++) {
        vtmem_batch_put(&t->b, per, i & 1 ? &o2 : &o1, i, true);
        page_fill(t->put[i], 50 + i, 0);
    }
    vtmem_batch_flush_page(&t->b, per, &o1, 0);
    vtmem_batch_flush_page(&t->b, per, &o1, 0);
    vtmem_batch_flush_object(&t->b, per, &o2);
    vtmem_batch_get(&t->b, per, &o1, 2, false);
    vtmem_batch_get(&t->b, per, &o2, 3, false);
    vtmem_batch_flush_pool(&t->b, per);
    vtmem_batch_get(&t->b, per, &o1, 2, false);
    vtmem_batch_destroy_pool(&t->b, per);
    vtmem_batch_get(&t->b, per, &o1, 2, false);
    run(&c, t);
    g_assert_cmpuint(le16_to_cpu(t->resp.nr_ops), ==, 17);
    g_assert_cmpuint(val(t, 8), ==, 1);
    g_assert_cmpuint(val(t, 9), ==, 0);
    g_assert_cmpuint(val(t, 10), ==, 4);
    g_assert_cmpuint(st(t, 11), ==, VIRTIO_TMEM_S_OK);
    page_fill(a, 52, 0);
    g_assert(!memcmp(t->get[0], a, PAGE));
    g_assert_cmpuint(st(t, 12), ==, VIRTIO_TMEM_S_NOT_FOUND);
    g_assert_cmpuint(val(t, 13), ==, 3);
    g_assert_cmpuint(st(t, 14), ==, VIRTIO_TMEM_S_NOT_FOUND);
    g_assert_cmpuint(st(t, 15), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(st(t, 16), ==, VIRTIO_TMEM_S_BAD_POOL);
    batch_free(t);
    ctx_stop(&c);
}

static void test_shared_pools(void *obj, void *data, QGuestAllocator *alloc)
{
    const uint8_t u1[16] = { 1, 2, 3 }, u2[16] = { 9 };
    uint8_t page[PAGE], out[PAGE];
    uint32_t a, b, d;
    TmemBatch *t;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    a = new_pool(&c, VIRTIO_TMEM_POOL_SHARED, u1);
    b = new_pool(&c, VIRTIO_TMEM_POOL_SHARED, u1);
    d = new_pool(&c, VIRTIO_TMEM_POOL_SHARED, u2);
    g_assert_cmpuint(a, ==, b);
    g_assert_cmpuint(a, !=, d);
    page_fill(page, 3, 0);
    g_assert_cmpuint(put1(&c, a, 4, 4, page, false), ==, VIRTIO_TMEM_S_OK);
    /* same UUID, other kind: refused */
    t = batch_new(c.max_batch, 20);
    vtmem_batch_new_pool(&t->b, VIRTIO_TMEM_POOL_SHARED |
                         VIRTIO_TMEM_POOL_PERSISTENT, u1);
    vtmem_batch_destroy_pool(&t->b, a);
    run(&c, t);
    g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_BAD_POOL);
    g_assert_cmpuint(st(t, 1), ==, VIRTIO_TMEM_S_OK);
    batch_free(t);
    /* one reference left: the page is still there */
    g_assert_cmpuint(get1(&c, b, 4, 4, false, out), ==, VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(page, out, PAGE));
    ctx_stop(&c);
}

static void test_full_batch(void *obj, void *data, QGuestAllocator *alloc)
{
    TmemCtx c;
    TmemBatch *t;
    uint32_t pool;
    unsigned i;
    QDict *s;

    ctx_start(&c, obj, alloc);
    pool = new_pool(&c, 0, NULL);
    /* max_batch puts in one chain */
    t = batch_new(c.max_batch, 30);
    for (i = 0; i < c.max_batch; i++) {
        struct vtmem_oid o = oid_of(i / 16);

        g_assert_cmpint(vtmem_batch_put(&t->b, pool, &o, i, false), ==, i);
        page_fill(t->put[i], i, 0);
    }
    run(&c, t);
    g_assert_cmpuint(le32_to_cpu(t->resp.status), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(le16_to_cpu(t->resp.nr_ops), ==, c.max_batch);
    g_assert_cmpuint(le64_to_cpu(t->resp.seq), ==, 30);
    for (i = 0; i < c.max_batch; i++) {
        g_assert_cmpuint(st(t, i), ==, VIRTIO_TMEM_S_OK);
    }
    batch_free(t);
    /* and max_batch gets, every page right */
    t = batch_new(c.max_batch, 31);
    for (i = 0; i < c.max_batch; i++) {
        struct vtmem_oid o = oid_of(i / 16);

        vtmem_batch_get(&t->b, pool, &o, i, false);
    }
    run(&c, t);
    for (i = 0; i < c.max_batch; i++) {
        uint8_t want[PAGE];

        page_fill(want, i, 0);
        g_assert_cmpuint(st(t, i), ==, VIRTIO_TMEM_S_OK);
        g_assert(!memcmp(want, t->get[i], PAGE));
    }
    /* libqos reads the used length as 16 bits */
    g_assert_cmpuint(t->used_len, ==, (sizeof(t->resp) + 8 * c.max_batch +
                                       (size_t)PAGE * c.max_batch) & 0xffff);
    batch_free(t);
    /* max_batch + 1: refused whole, nothing done */
    t = batch_new(c.max_batch + 1, 32);
    for (i = 0; i <= c.max_batch; i++) {
        struct vtmem_oid o = oid_of(99);

        vtmem_batch_flush_page(&t->b, pool, &o, i);
    }
    run(&c, t);
    g_assert_cmpuint(le32_to_cpu(t->resp.status), ==, VIRTIO_TMEM_S_BAD_BATCH);
    g_assert_cmpuint(le16_to_cpu(t->resp.nr_ops), ==, 0);
    g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_SKIPPED);
    batch_free(t);
    s = stats();
    g_assert_cmpuint(stat_of(s, NULL, "bad-batches"), ==, 1);
    g_assert_cmpuint(stat_of(s, NULL, "ops"), >=, 2 * c.max_batch);
    g_assert_cmpuint(stat_of(s, "queue0", "batches"), >=, 4);
    qobject_unref(s);
    ctx_stop(&c);
}

/* size=4M: ephemeral pages get evicted; persistent puts stop at credits. */
static void test_pool_limit(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t credits, spent = 0, i, last;
    uint32_t eph, per;
    TmemCtx c;
    TmemBatch *t;
    QDict *s;
    unsigned refused = 0;

    ctx_start(&c, obj, alloc);
    eph = new_pool(&c, 0, NULL);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    /* until the pool is full: how many pages fit depends on the allocator */
    for (i = 0, last = 0; i < 96 && !last; i++) {
        unsigned j;

        t = batch_new(c.max_batch, 40 + i);
        for (j = 0; j < c.max_batch; j++) {
            struct vtmem_oid o = oid_of(i);

            vtmem_batch_put(&t->b, eph, &o, j, false);
            page_fill(t->put[j], i * 1000 + j, 0);
        }
        run(&c, t);
        batch_free(t);
        s = stats();
        if (stat_of(s, "ephemeral", "evicted-pages") > 0 && i >= 15) {
            last = i;
        }
        qobject_unref(s);
    }
    s = stats();
    g_assert_cmpuint(stat_of(s, "ephemeral", "evicted-pages"), >, 0);
    g_assert_cmpuint(stat_of(s, NULL, "used-bytes"), <=,
                     stat_of(s, NULL, "limit-bytes"));
    qobject_unref(s);
    /* the oldest ephemeral pages are gone, the newest are there */
    {
        uint8_t out[PAGE], want[PAGE];

        g_assert_cmpuint(get1(&c, eph, 0, 0, false, out), ==,
                         VIRTIO_TMEM_S_NOT_FOUND);
        g_assert_cmpuint(get1(&c, eph, last, 5, false, out), ==,
                         VIRTIO_TMEM_S_OK);
        page_fill(want, last * 1000 + 5, 0);
        g_assert(!memcmp(want, out, PAGE));
    }
    /*
     * Spend credits on incompressible pages, as a driver would: only while
     * it has some.  Every credited put must succeed; none may be lost.
     */
    credits = credits_seen(&c);
    for (i = 0; i < 4096 && refused < 2; i++) {
        uint8_t page[PAGE];

        page_fill(page, 7000 + i, 1);
        if (spent < credits) {
            g_assert_cmpuint(put1(&c, per, 1, i, page, true), ==,
                             VIRTIO_TMEM_S_OK);
            spent++;
        } else {
            /* beyond the grant the device refuses, and says so */
            g_assert_cmpuint(put1(&c, per, 1, i, page, true), ==,
                             VIRTIO_TMEM_S_NO_CREDIT);
            refused++;
        }
        credits = credits_seen(&c);
    }
    g_assert_cmpuint(refused, ==, 2);
    g_assert_cmpuint(spent, >, 500);
    for (i = 0; i < spent; i += 53) {
        uint8_t page[PAGE], out[PAGE];

        page_fill(page, 7000 + i, 1);
        g_assert_cmpuint(get1(&c, per, 1, i, false, out), ==,
                         VIRTIO_TMEM_S_OK);
        g_assert(!memcmp(page, out, PAGE));
    }
    s = stats();
    /* persistent pages pushed ephemeral ones out, never the reverse */
    g_assert_cmpuint(stat_of(s, "ephemeral", "stored-pages"), <, 1000);
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, spent);
    g_assert_cmpuint(stat_of(s, "persistent", "reject-full"), ==, 0);
    g_assert_cmpuint(stat_of(s, NULL, "used-bytes"), <=,
                     stat_of(s, NULL, "limit-bytes"));
    qobject_unref(s);
    ctx_stop(&c);
}

/*
 * size=2M with a swap image: credits keep coming as persistent frames go
 * to the image, every page reads back, and the stats show the writeback.
 */
static void test_writeback(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t credits, spent = 0, taken = 0, i;
    uint8_t page[PAGE], out[PAGE];
    uint32_t per;
    TmemCtx c;
    QDict *s;

    ctx_start(&c, obj, alloc);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    credits = credits_seen(&c);
    for (i = 0; i < 3000 && spent < credits; i++) {
        page_fill(page, 9000 + i, i % 3 == 0);
        g_assert_cmpuint(put1(&c, per, 2, i, page, true), ==,
                         VIRTIO_TMEM_S_OK);
        spent++;
        credits = credits_seen(&c);
    }
    /* 2 MiB of RAM holds a few hundred such pages; the image the rest */
    g_assert_cmpuint(spent, ==, 3000);
    for (i = 0; i < spent; i += 7) {
        page_fill(page, 9000 + i, i % 3 == 0);
        g_assert_cmpuint(get1(&c, per, 2, i, i % 2, out), ==,
                         VIRTIO_TMEM_S_OK);
        g_assert(!memcmp(page, out, PAGE));
        taken += i % 2;
    }
    s = stats();
    g_assert_cmpuint(stat_of(s, "swap-image", "frames-written"), >, 500);
    g_assert_cmpuint(stat_of(s, "swap-image", "pages-in-image"), >, 1000);
    g_assert_cmpuint(stat_of(s, "swap-image", "pages-read"), >, 100);
    g_assert_cmpuint(stat_of(s, "swap-image", "write-errors"), ==, 0);
    g_assert_cmpuint(stat_of(s, "persistent", "reject-full"), ==, 0);
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==,
                     spent - taken);
    g_assert_cmpuint(stat_of(s, NULL, "used-bytes"), <=,
                     stat_of(s, NULL, "limit-bytes"));
    qobject_unref(s);
    ctx_stop(&c);
}

static void test_reset(void *obj, void *data, QGuestAllocator *alloc)
{
    uint8_t page[PAGE], out[PAGE];
    uint32_t pool;
    TmemCtx c;
    QDict *s;

    ctx_start(&c, obj, alloc);
    pool = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    page_fill(page, 1, 0);
    g_assert_cmpuint(put1(&c, pool, 1, 1, page, true), ==, VIRTIO_TMEM_S_OK);
    ctx_stop(&c);
    ctx_reset(&c, obj);
    s = stats();
    g_assert_cmpuint(stat_of(s, NULL, "pools"), ==, 0);
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, 0);
    g_assert_cmpuint(stat_of(s, NULL, "credits-spent"), ==, 0);
    g_assert_cmpuint(stat_of(s, NULL, "credits-granted"), >, 0);
    qobject_unref(s);
    g_assert_cmpuint(get1(&c, pool, 1, 1, false, out), ==,
                     VIRTIO_TMEM_S_BAD_POOL);
    pool = new_pool(&c, 0, NULL);
    g_assert_cmpuint(put1(&c, pool, 1, 1, page, false), ==, VIRTIO_TMEM_S_OK);
    ctx_stop(&c);
}

/* ---- hostile input ------------------------------------------------------- */

/* After anything malformed the device must still serve a valid request. */
static void assert_still_serving(TmemCtx *c, uint32_t pool)
{
    uint8_t page[PAGE], out[PAGE];

    page_fill(page, 4242, 0);
    g_assert_cmpuint(put1(c, pool, 77, 1, page, false), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(get1(c, pool, 77, 1, false, out), ==, VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(page, out, PAGE));
}

/* Build the bytes of a one-put batch into guest memory; returns addresses. */
static void put_chain(TmemCtx *c, uint32_t pool, uint64_t *req,
                      uint64_t *pg, uint64_t *resp)
{
    struct virtio_tmem_req_hdr hdr;
    struct virtio_tmem_op op[1];
    struct vtmem_oid o = oid_of(5);
    struct vtmem_batch b;
    uint8_t page[PAGE];

    vtmem_batch_init(&b, &hdr, op, 1, 77);
    vtmem_batch_put(&b, pool, &o, 1, false);
    *req = guest_alloc(c->alloc, 64);
    *pg = guest_alloc(c->alloc, PAGE);
    *resp = guest_alloc(c->alloc, 64);
    qtest_memwrite(c->qts, *req, &hdr, sizeof(hdr));
    qtest_memwrite(c->qts, *req + sizeof(hdr), op, sizeof(op));
    page_fill(page, 5, 0);
    qtest_memwrite(c->qts, *pg, page, PAGE);
    qtest_memset(c->qts, *resp, 0xee, 64);
}

static unsigned resp_status(TmemCtx *c, uint64_t resp)
{
    return qtest_readl(c->qts, resp);
}

static void test_malformed(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t req, pg, resp;
    uint32_t pool;
    TmemBatch *t;
    TmemCtx c;
    QDict *s;

    ctx_start(&c, obj, alloc);
    pool = new_pool(&c, 0, NULL);
    put_chain(&c, pool, &req, &pg, &resp);

    /* readable part one byte short, one byte long */
    send_pieces(&c, (Piece[]){ { req, 64, false }, { pg, PAGE - 1, false },
                               { resp, 32, true } }, 3);
    g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_BAD_BATCH);
    send_pieces(&c, (Piece[]){ { req, 64, false }, { pg, PAGE, false },
                               { pg, 1, false }, { resp, 32, true } }, 4);
    g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_BAD_BATCH);
    /* writable part off by one */
    send_pieces(&c, (Piece[]){ { req, 64, false }, { pg, PAGE, false },
                               { resp, 33, true } }, 3);
    g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_BAD_BATCH);
    /* the page in the wrong direction (device-writable) */
    send_pieces(&c, (Piece[]){ { req, 64, false }, { resp, 32, true },
                               { pg, PAGE, true } }, 3);
    g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_BAD_BATCH);
    /* header cut short */
    send_pieces(&c, (Piece[]){ { req, 10, false }, { resp, 32, true } }, 2);
    g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_BAD_BATCH);
    /* the same chain, well formed, works; split at odd places too */
    send_pieces(&c, (Piece[]){ { req, 64, false }, { pg, PAGE, false },
                               { resp, 32, true } }, 3);
    g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_OK);
    send_pieces(&c, (Piece[]){ { req, 7, false }, { req + 7, 57, false },
                               { pg, 1000, false }, { pg + 1000, 3096, false },
                               { resp, 5, true }, { resp + 5, 27, true } }, 6);
    g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_OK);
    /* a page in 32 pieces (more than the device maps directly) */
    {
        Piece p[35];
        unsigned i;

        p[0] = (Piece){ req, 64, false };
        for (i = 0; i < 32; i++) {
            p[1 + i] = (Piece){ pg + i * 128, 128, false };
        }
        p[33] = (Piece){ resp, 32, true };
        send_pieces(&c, p, 34);
        g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_OK);
        g_assert_cmpuint(qtest_readl(c.qts, resp + 24), ==, VIRTIO_TMEM_S_OK);
    }
    /* a PUT and a GET sharing one guest page: served, QEMU unharmed */
    t = batch_new(c.max_batch, 50);
    {
        struct vtmem_oid o = oid_of(5);
        uint64_t hdr_ops = guest_alloc(c.alloc, 16 + 96);
        uint64_t rs = guest_alloc(c.alloc, 24 + 16);

        vtmem_batch_put(&t->b, pool, &o, 2, false);
        vtmem_batch_get(&t->b, pool, &o, 1, false);
        qtest_memwrite(c.qts, hdr_ops, &t->hdr, 16);
        qtest_memwrite(c.qts, hdr_ops + 16, t->ops, 96);
        send_pieces(&c, (Piece[]){ { hdr_ops, 112, false },
                                   { pg, PAGE, false }, { rs, 40, true },
                                   { pg, PAGE, true } }, 4);
        g_assert_cmpuint(qtest_readl(c.qts, rs), ==, VIRTIO_TMEM_S_OK);
        guest_free(c.alloc, hdr_ops);
        guest_free(c.alloc, rs);
    }
    batch_free(t);
    /* unknown opcode, bad flags, reserved bits, bad pool: per-op errors */
    t = batch_new(c.max_batch, 51);
    {
        struct vtmem_oid o = oid_of(6);

        vtmem_batch_flush_page(&t->b, pool, &o, 0);
        t->ops[0].opcode = 99;
        vtmem_batch_get(&t->b, pool, &o, 0, false);
        t->ops[1].flags = 0x80;
        vtmem_batch_flush_page(&t->b, pool, &o, 0);
        t->ops[2].reserved1 = cpu_to_le64(1);
        vtmem_batch_flush_object(&t->b, 12345, &o);
        vtmem_batch_put(&t->b, 0xffffffff, &o, 0, true);
        page_fill(t->put[0], 1, 0);
        vtmem_batch_get(&t->b, pool, &o, 0, false);
        run(&c, t);
        g_assert_cmpuint(le32_to_cpu(t->resp.status), ==, VIRTIO_TMEM_S_OK);
        g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_BAD_OP);
        g_assert_cmpuint(st(t, 1), ==, VIRTIO_TMEM_S_BAD_OP);
        g_assert_cmpuint(st(t, 2), ==, VIRTIO_TMEM_S_BAD_ARG);
        g_assert_cmpuint(st(t, 3), ==, VIRTIO_TMEM_S_BAD_POOL);
        g_assert_cmpuint(st(t, 4), ==, VIRTIO_TMEM_S_BAD_POOL);
        g_assert_cmpuint(st(t, 5), ==, VIRTIO_TMEM_S_NOT_FOUND);
    }
    batch_free(t);
    assert_still_serving(&c, pool);
    s = stats();
    g_assert_cmpuint(stat_of(s, NULL, "bad-batches"), ==, 5);
    g_assert_cmpuint(stat_of(s, NULL, "bad-ops"), ==, 3);
    qobject_unref(s);

    /* no room for a response: the device needs a reset, QEMU lives on */
    {
        gint64 start = g_get_monotonic_time();
        QVRingIndirectDesc *ind;
        uint32_t head;

        ind = kick_pieces(&c, (Piece[]){ { req, 64, false },
                                         { pg, PAGE, false },
                                         { resp, 8, true } }, 3, &head);
        while (!(c.dev->bus->get_status(c.dev) &
                 VIRTIO_CONFIG_S_NEEDS_RESET)) {
            g_assert(g_get_monotonic_time() - start <= TMEM_TIMEOUT_US);
            qtest_clock_step(c.qts, 100);
        }
        guest_free(c.alloc, ind->desc);
        g_free(ind);
    }
    guest_free(c.alloc, req);
    guest_free(c.alloc, pg);
    guest_free(c.alloc, resp);
    ctx_stop(&c);
    ctx_reset(&c, obj);
    pool = new_pool(&c, 0, NULL);
    assert_still_serving(&c, pool);
    ctx_stop(&c);
}

/*
 * x-stall: while set, a kicked request is not used (nothing is lost);
 * cleared, it completes.  Run in the main loop and with an iothread.
 */
static void test_stall(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t req, pg, resp;
    uint32_t head, desc_idx, len, pool;
    QVRingIndirectDesc *ind;
    gint64 end;
    TmemCtx c;
    QDict *s;

    ctx_start(&c, obj, alloc);
    pool = new_pool(&c, 0, NULL);
    put_chain(&c, pool, &req, &pg, &resp);
    set_stall(true);
    ind = kick_pieces(&c, (Piece[]){ { req, 64, false }, { pg, PAGE, false },
                                     { resp, 32, true } }, 3, &head);
    /* notify again: a second kick must not get it through either */
    c.dev->bus->virtqueue_kick(c.dev, c.vq);
    end = g_get_monotonic_time() + 300 * 1000;
    while (g_get_monotonic_time() < end) {
        g_assert(!qvirtqueue_get_buf(c.qts, c.vq, &desc_idx, &len));
        qtest_clock_step(c.qts, 100);
        g_usleep(10 * 1000);
    }
    g_assert_cmphex(qtest_readl(c.qts, resp), ==, 0xeeeeeeee);
    s = stats();
    g_assert_cmpuint(stat_of(s, "queue0", "batches"), ==, 1);
    qobject_unref(s);
    set_stall(false);
    qvirtio_wait_used_elem(c.qts, c.dev, c.vq, head, &len, TMEM_TIMEOUT_US);
    g_assert_cmpuint(resp_status(&c, resp), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(len, ==, 32);
    c.vq->free_head = 0;
    c.vq->num_free = c.vq->size;
    guest_free(c.alloc, ind->desc);
    g_free(ind);
    guest_free(c.alloc, req);
    guest_free(c.alloc, pg);
    guest_free(c.alloc, resp);
    /* and requests flow as before */
    assert_still_serving(&c, pool);
    ctx_stop(&c);
}

/*
 * The used length ends at the last byte written: a GET hit after a miss
 * lies past the miss's unwritten slot, and must be inside the length.
 */
static void test_used_length(void *obj, void *data, QGuestAllocator *alloc)
{
    struct vtmem_oid hit = oid_of(1), miss = oid_of(2);
    uint8_t page[PAGE];
    size_t hdrs = sizeof(struct virtio_tmem_resp_hdr) +
                  2 * sizeof(struct virtio_tmem_op_status);
    uint32_t pool;
    TmemBatch *t;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    pool = new_pool(&c, 0, NULL);
    page_fill(page, 21, 0);
    g_assert_cmpuint(put1(&c, pool, 1, 0, page, false), ==, VIRTIO_TMEM_S_OK);
    /* miss, then hit */
    t = batch_new(c.max_batch, 60);
    vtmem_batch_get(&t->b, pool, &miss, 0, false);
    vtmem_batch_get(&t->b, pool, &hit, 0, false);
    run(&c, t);
    g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_NOT_FOUND);
    g_assert_cmpuint(st(t, 1), ==, VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(t->get[1], page, PAGE));
    g_assert_cmpuint(t->used_len, ==, hdrs + 2 * PAGE);
    batch_free(t);
    /* hit, then miss: the miss's slot is past the end */
    t = batch_new(c.max_batch, 61);
    vtmem_batch_get(&t->b, pool, &hit, 0, false);
    vtmem_batch_get(&t->b, pool, &miss, 0, false);
    run(&c, t);
    g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(t->used_len, ==, hdrs + PAGE);
    batch_free(t);
    /* two misses: only the header and statuses */
    t = batch_new(c.max_batch, 62);
    vtmem_batch_get(&t->b, pool, &miss, 0, false);
    vtmem_batch_get(&t->b, pool, &miss, 1, false);
    run(&c, t);
    g_assert_cmpuint(t->used_len, ==, hdrs);
    batch_free(t);
    ctx_stop(&c);
}

/* Wait until the device sets DEVICE_NEEDS_RESET; QEMU must be alive. */
static void wait_needs_reset(TmemCtx *c)
{
    gint64 start = g_get_monotonic_time();

    while (!(c->dev->bus->get_status(c->dev) &
             VIRTIO_CONFIG_S_NEEDS_RESET)) {
        g_assert(g_get_monotonic_time() - start <= TMEM_TIMEOUT_US);
        qtest_clock_step(c->qts, 100);
    }
}

/* Kick a chain that is never used; free its indirect table. */
static void kick_and_forget(TmemCtx *c, const Piece *p, unsigned n)
{
    uint32_t head;
    QVRingIndirectDesc *ind = kick_pieces(c, p, n, &head);

    wait_needs_reset(c);
    guest_free(c->alloc, ind->desc);
    g_free(ind);
}

/*
 * A buffer aimed at the device's own BAR: the device_status register as
 * the response, then the common configuration as the request.  Before
 * the fix, pushing the response wrote 0 to device_status (a reset from
 * inside the queue handler: an abort with iothread=).  Now the request is
 * refused before any op runs and the device asks for a reset.
 */
static void test_bar_buffer(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t req, pg, resp, status_reg;
    QVirtioPCIDevice *d;
    uint32_t pool;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    d = pci_of(&c);
    g_assert(!d->bar.is_io);
    status_reg = d->bar.addr + d->common_cfg_offset +
                 VIRTIO_PCI_COMMON_STATUS;
    pool = new_pool(&c, 0, NULL);
    put_chain(&c, pool, &req, &pg, &resp);
    kick_and_forget(&c, (Piece[]){ { req, 64, false }, { pg, PAGE, false },
                                   { status_reg, 32, true } }, 3);
    ctx_stop(&c);
    ctx_reset(&c, obj);
    pool = new_pool(&c, 0, NULL);
    assert_still_serving(&c, pool);
    /* a device-readable buffer in the BAR is refused the same way */
    kick_and_forget(&c, (Piece[]){ { d->bar.addr + d->common_cfg_offset, 64,
                                     false },
                                   { pg, PAGE, false },
                                   { resp, 32, true } }, 3);
    g_assert_cmphex(qtest_readl(c.qts, resp), ==, 0xeeeeeeee);
    ctx_stop(&c);
    ctx_reset(&c, obj);
    pool = new_pool(&c, 0, NULL);
    assert_still_serving(&c, pool);
    guest_free(c.alloc, req);
    guest_free(c.alloc, pg);
    guest_free(c.alloc, resp);
    ctx_stop(&c);
}

/* Move a ring of queue 0 (@reg: its DESCLO, USEDLO...) to @addr; enable. */
static void ring_move(TmemCtx *c, unsigned reg, uint64_t addr)
{
    QVirtioPCIDevice *d = pci_of(c);
    uint64_t cfg = d->common_cfg_offset;

    qpci_io_writew(d->pdev, d->bar, cfg + VIRTIO_PCI_COMMON_Q_SELECT, 0);
    qpci_io_writel(d->pdev, d->bar, cfg + reg, addr);
    qpci_io_writel(d->pdev, d->bar, cfg + reg + 4, addr >> 32);
    qpci_io_writew(d->pdev, d->bar, cfg + VIRTIO_PCI_COMMON_Q_ENABLE, 1);
}

/*
 * Rings outside guest RAM: the descriptor table in unassigned space, the
 * used ring in the BIOS ROM (readable in place, not writable).  QEMU's
 * core reads and writes such a ring by dispatching to the region, which
 * takes the BQL: from the IOThread, a deadlock against a reset that holds
 * it while it waits for the queue handler.  The device refuses such a
 * ring when the queue is enabled and asks for a reset (before, it took
 * them and served the queue through MMIO).
 */
static void test_mmio_ring(void *obj, void *data, QGuestAllocator *alloc)
{
    uint32_t pool;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    ring_move(&c, VIRTIO_PCI_COMMON_Q_DESCLO, 1ULL << 40);
    wait_needs_reset(&c);
    ctx_stop(&c);
    ctx_reset(&c, obj);
    ring_move(&c, VIRTIO_PCI_COMMON_Q_USEDLO, 0xfffc0000ULL);
    wait_needs_reset(&c);
    ctx_stop(&c);
    ctx_reset(&c, obj);
    pool = new_pool(&c, 0, NULL);
    assert_still_serving(&c, pool);
    ctx_stop(&c);
}

/*
 * A PUT refused before it reaches the store (no credit, malformed) leaves
 * no page under its key, as any failed PUT.
 */
static void test_refused_put(void *obj, void *data, QGuestAllocator *alloc)
{
    uint8_t a[PAGE], b[PAGE], out[PAGE];
    struct vtmem_oid o = oid_of(8);
    uint32_t per, eph, pool;
    unsigned k;
    TmemBatch *t;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    eph = new_pool(&c, 0, NULL);
    page_fill(a, 81, 0);
    page_fill(b, 82, 0);
    /* no credit */
    g_assert_cmpuint(put1(&c, per, 8, 1, a, true), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(put1(&c, per, 8, 1, b, false), ==,
                     VIRTIO_TMEM_S_NO_CREDIT);
    g_assert_cmpuint(get1(&c, per, 8, 1, false, out), ==,
                     VIRTIO_TMEM_S_NOT_FOUND);
    /* malformed: reserved field, then unknown flag; in both pool kinds */
    for (k = 0; k < 4; k++) {
        pool = k & 2 ? eph : per;
        g_assert_cmpuint(put1(&c, pool, 8, 2, a, pool == per), ==,
                         VIRTIO_TMEM_S_OK);
        t = batch_new(c.max_batch, 70 + k);
        vtmem_batch_put(&t->b, pool, &o, 2, pool == per);
        if (k & 1) {
            t->ops[0].flags |= 0x80;
        } else {
            t->ops[0].reserved1 = cpu_to_le64(1);
        }
        memcpy(t->put[0], b, PAGE);
        run(&c, t);
        g_assert_cmpuint(st(t, 0), ==, k & 1 ? VIRTIO_TMEM_S_BAD_OP :
                                               VIRTIO_TMEM_S_BAD_ARG);
        batch_free(t);
        g_assert_cmpuint(get1(&c, pool, 8, 2, false, out), ==,
                         VIRTIO_TMEM_S_NOT_FOUND);
    }
    /* the slot of the refused page was kept: the next PUT got its own */
    t = batch_new(c.max_batch, 80);
    vtmem_batch_put(&t->b, eph, &o, 3, false);
    t->ops[0].reserved0 = cpu_to_le16(1);
    vtmem_batch_put(&t->b, eph, &o, 4, false);
    memcpy(t->put[0], a, PAGE);
    memcpy(t->put[1], b, PAGE);
    run(&c, t);
    g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_BAD_ARG);
    g_assert_cmpuint(st(t, 1), ==, VIRTIO_TMEM_S_OK);
    batch_free(t);
    g_assert_cmpuint(get1(&c, eph, 8, 4, false, out), ==, VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(out, b, PAGE));
    ctx_stop(&c);
}

/* Credits only for a driver that negotiated VIRTIO_TMEM_F_PERSISTENT. */
static void test_credits_need_feature(void *obj, void *data,
                                      QGuestAllocator *alloc)
{
    TmemBatch *t;
    TmemCtx c;
    QDict *s;

    ctx_start_without(&c, obj, alloc, 1ull << VIRTIO_TMEM_F_PERSISTENT);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, 16), ==, 0);
    t = batch_new(c.max_batch, 90);
    vtmem_batch_new_pool(&t->b, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    vtmem_batch_new_pool(&t->b, 0, NULL);
    run(&c, t);
    g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_BAD_POOL);
    g_assert_cmpuint(st(t, 1), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(le64_to_cpu(t->resp.credits), ==, 0);
    batch_free(t);
    s = stats();
    g_assert_cmpuint(stat_of(s, NULL, "credits-granted"), ==, 0);
    qobject_unref(s);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, 16), ==, 0);
    ctx_stop(&c);
    /* negotiated after a reset: granted */
    qvirtio_reset(c.dev);
    qvirtio_set_acknowledge(c.dev);
    qvirtio_set_driver(c.dev);
    ctx_start(&c, obj, alloc);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, 16), >, 0);
    ctx_stop(&c);
}

/*
 * The 64-bit credits field never changes without a configuration
 * generation change, so that a driver reading it as two 32-bit halves
 * notices a change in between and reads again.  Puts of zero pages take
 * (almost) no room: their credits are granted back at once, while the
 * driver has far more than max_batch left (no configuration interrupt).
 */
static void test_credits_generation(void *obj, void *data,
                                    QGuestAllocator *alloc)
{
    uint64_t c0, c1;
    gint64 start;
    uint8_t g0, page[PAGE];
    uint32_t per;
    unsigned i;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    c0 = qvirtio_config_readq(c.dev, 16);
    g0 = config_generation(&c);
    g_assert_cmpuint(c0, >, 4 * c.max_batch);
    page_fill(page, 0, 2);
    for (i = 0; i < 16; i++) {
        g_assert_cmpuint(put1(&c, per, 9, i, page, true), ==,
                         VIRTIO_TMEM_S_OK);
    }
    g_assert_cmpuint(c.credits, >, c0);
    /* the configuration catches up with the responses */
    start = g_get_monotonic_time();
    while ((c1 = qvirtio_config_readq(c.dev, 16)) != c.credits) {
        g_assert(g_get_monotonic_time() - start <= TMEM_TIMEOUT_US);
        qtest_clock_step(c.qts, 100);
    }
    g_assert_cmpuint(config_generation(&c), !=, g0);
    ctx_stop(&c);
}

/*
 * A pool that cannot be re-created at reset: no credit of the old pool
 * survives, and the device says it needs a reset instead of leaving the
 * driver waiting.  QEMU's address space is capped (RLIMIT_AS) just below
 * what it uses, so that the new pool's reservation fails once the old
 * one is gone.
 */
static void test_reset_failure(void *obj, void *data, QGuestAllocator *alloc)
{
    pid_t pid = qtest_pid(global_qtest);
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
    g_autofree char *status = NULL;
    struct rlimit old, low;
    uint8_t page[PAGE];
    uint64_t req, pg, resp;
    unsigned long vm_kb;
    const char *line;
    uint32_t pool;
    TmemCtx c;
    QDict *s;

#ifdef QEMU_SANITIZE_ADDRESS
    /*
     * Under a capped address space ASan's own allocator aborts QEMU when it
     * needs a new region for any small allocation, before QEMU can see a
     * failure: what this test checks cannot happen there.  The release
     * build runs it.
     */
    g_test_skip("ASan aborts QEMU when RLIMIT_AS refuses its allocator");
    return;
#endif
    ctx_start(&c, obj, alloc);
    pool = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    page_fill(page, 3, 0);
    g_assert_cmpuint(put1(&c, pool, 1, 1, page, true), ==, VIRTIO_TMEM_S_OK);
    ctx_stop(&c);

    g_assert(g_file_get_contents(path, &status, NULL, NULL));
    line = strstr(status, "VmSize:");
    g_assert(line && sscanf(line, "VmSize: %lu kB", &vm_kb) == 1);
    g_assert_cmpint(prlimit(pid, RLIMIT_AS, NULL, &old), ==, 0);
    low = old;
    /* 256 MiB of pool reserve 320 MiB of address space: give back half */
    low.rlim_cur = (rlim_t)vm_kb * 1024 - 160 * 1024 * 1024;
    g_assert_cmpint(prlimit(pid, RLIMIT_AS, &low, NULL), ==, 0);
    qvirtio_reset(c.dev);
    g_assert_cmpint(prlimit(pid, RLIMIT_AS, &old, NULL), ==, 0);

    /* the driver probes again: no credit, though PERSISTENT is negotiated */
    qvirtio_set_acknowledge(c.dev);
    qvirtio_set_driver(c.dev);
    qvirtio_set_features(c.dev, qvirtio_get_features(c.dev) &
                         ~(QVIRTIO_F_BAD_FEATURE |
                           (1ull << VIRTIO_RING_F_EVENT_IDX)));
    g_assert(c.dev->features & (1ull << VIRTIO_TMEM_F_PERSISTENT));
    g_assert_cmpuint(qvirtio_config_readq(c.dev, 16), ==, 0);
    s = stats();
    g_assert_cmpuint(stat_of(s, NULL, "credits-granted"), ==, 0);
    qobject_unref(s);
    /*
     * DRIVER_OK starts the queues, and the device says it needs a reset
     * then, or at the latest at the first request: not silence.
     * (qvirtio_set_driver_ok() would insist on the status it wrote.)
     */
    c.vq = qvirtqueue_setup(c.dev, alloc, 0);
    c.dev->bus->set_status(c.dev, c.dev->bus->get_status(c.dev) |
                           VIRTIO_CONFIG_S_DRIVER_OK);
    put_chain(&c, 0, &req, &pg, &resp);
    kick_and_forget(&c, (Piece[]){ { req, 64, false }, { pg, PAGE, false },
                                   { resp, 32, true } }, 3);
    guest_free(c.alloc, req);
    guest_free(c.alloc, pg);
    guest_free(c.alloc, resp);
    /* the next reset creates the pool: service and credits are back */
    ctx_stop(&c);
    ctx_reset(&c, obj);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, 16), >, 0);
    pool = new_pool(&c, 0, NULL);
    assert_still_serving(&c, pool);
    ctx_stop(&c);
}

/* num-queues=2: both queues serve, and count their own batches. */
static void test_two_queues(void *obj, void *data, QGuestAllocator *alloc)
{
    uint8_t page[PAGE], out[PAGE];
    QVirtQueue *vq0;
    uint32_t pool;
    TmemCtx c;
    QDict *s;

    ctx_start(&c, obj, alloc);
    g_assert_cmpuint(qvirtio_config_readw(c.dev, 4), ==, 2);
    g_assert(c.dev->features & (1ull << VIRTIO_TMEM_F_MQ));
    pool = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    vq0 = c.vq;
    c.vq = qvirtqueue_setup(c.dev, alloc, 1);
    page_fill(page, 11, 0);
    g_assert_cmpuint(put1(&c, pool, 3, 3, page, true), ==, VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(get1(&c, pool, 3, 3, true, out), ==, VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(page, out, PAGE));
    s = stats();
    g_assert_cmpuint(stat_of(s, "queue0", "batches"), ==, 1);
    g_assert_cmpuint(stat_of(s, "queue1", "batches"), ==, 2);
    g_assert_cmpuint(stat_of(s, "queue1", "ops"), ==, 2);
    qobject_unref(s);
    ctx_stop(&c);
    c.vq = vq0;
    ctx_stop(&c);
}

/* device_add with a bad value: refused, naming the property and value. */
static void assert_device_add_fails(const char *props, const char *needle)
{
    g_autofree char *json = g_strdup_printf(
        "{'driver': 'virtio-tmem-pci', 'id': 'bad0', %s}", props);
    QObject *args = qobject_from_json(json, &error_abort);
    QDict *r = qmp("{'execute': 'device_add', 'arguments': %p}", args);
    const char *desc;

    g_assert(qdict_haskey(r, "error"));
    desc = qdict_get_str(qdict_get_qdict(r, "error"), "desc");
    if (!strstr(desc, needle)) {
        g_test_message("error '%s' lacks '%s'", desc, needle);
        g_assert_not_reached();
    }
    qobject_unref(r);
}

static void test_properties(void *obj, void *data, QGuestAllocator *alloc)
{

    assert_device_add_fails("'max-batch': 600", "max-batch=600");
    assert_device_add_fails("'num-queues': 0", "num-queues=0");
    assert_device_add_fails("'queue-size': 100", "queue-size=100");
    assert_device_add_fails("'size': 1024", "size=1024");
    assert_device_add_fails("'compressor': 'gzip'", "compressor=gzip");
    assert_device_add_fails("'allocator': 'z3fold'", "allocator=z3fold");
    assert_device_add_fails("'max-pools': 0", "max-pools=0");
    assert_device_add_fails("'lz4-acceleration': 0", "lz4-acceleration=0");
    assert_device_add_fails("'zstd-level': 0", "zstd-level=0");
    assert_device_add_fails("'compressor': 'zstd', 'zstd-level': 23",
                            "zstd-level=23");
    assert_device_add_fails("'swap-image': '/nonexistent/tmem.img'",
                            "swap-image=/nonexistent/tmem.img");
    assert_device_add_fails("'swap-image': '/tmp/x', 'swap-image-size': 4097",
                            "swap-image-size=4097");
    assert_device_add_fails("'swap-image-unlink': true", "swap-image=");
    assert_device_add_fails("'swap-image-shared': true", "swap-image=");
    assert_device_add_fails("'swap-image': '/tmp/x', "
                            "'swap-image-shared': true, "
                            "'swap-image-unlink': true",
                            "swap-image-unlink=on");
    assert_device_add_fails("'writeback-low': 95", "writeback-low=95");
    assert_device_add_fails("'writeback-high': 0", "writeback-high=0");
}

/* ---- migration ----------------------------------------------------------- */

/*
 * The destination is a second QEMU with the source's command line (saved
 * by the test's "before" hook), the device's properties amended, started
 * with -incoming defer.  The test's driver state (rings, allocator) lives
 * in guest memory and in this process, so after the switch-over it drives
 * the destination's device as it drove the source's.
 */
static char *mig_cmdline;

static void *mig_save_cmdline(GString *cmd_line, void *arg)
{
    g_free(mig_cmdline);
    mig_cmdline = g_strdup(cmd_line->str);
    return arg;
}

static QTestState *mig_dest_start(const char *props)
{
    g_autofree char *cmd = g_strdup(mig_cmdline);
    g_auto(GStrv) parts = NULL;

    if (props) {
        /* last in the device's options, so that they win */
        char *id = strstr(cmd, "id=tmem0");
        size_t end;

        g_assert(id);
        end = id - cmd + strcspn(id, " ");
        parts = g_new0(char *, 3);
        parts[0] = g_strndup(cmd, end);
        parts[1] = g_strdup(cmd + end);
        g_free(cmd);
        cmd = g_strdup_printf("%s,%s%s", parts[0], props, parts[1]);
    }
    return qtest_initf("%s -incoming defer", cmd);
}

static void mig_incoming(QTestState *to, const char *uri)
{
    qtest_qmp_assert_success(to, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
}

static void mig_start(QTestState *from, const char *uri)
{
    qtest_qmp_assert_success(from, "{'execute': 'migrate', "
                             "'arguments': {'uri': %s}}", uri);
}

static char *mig_status(QTestState *qts)
{
    QDict *r = qtest_qmp(qts, "{'execute': 'query-migrate'}");
    QDict *ret = qdict_get_qdict(r, "return");
    char *status = g_strdup(qdict_haskey(ret, "status") ?
                            qdict_get_str(ret, "status") : "none");

    qobject_unref(r);
    return status;
}

/* Wait until the migration on @qts ended; assert it ended as @want. */
static void mig_wait(QTestState *qts, const char *want)
{
    gint64 end = g_get_monotonic_time() + 120 * G_USEC_PER_SEC;

    for (;;) {
        g_autofree char *status = mig_status(qts);

        if (!strcmp(status, "completed") || !strcmp(status, "failed") ||
            !strcmp(status, "cancelled")) {
            g_assert_cmpstr(status, ==, want);
            return;
        }
        g_assert(g_get_monotonic_time() < end);
        g_usleep(10 * 1000);
    }
}

static void mig_return_path(QTestState *qts)
{
    qtest_qmp_assert_success(qts, "{'execute': 'migrate-set-capabilities', "
                             "'arguments': {'capabilities': [{'capability': "
                             "'return-path', 'state': true}]}}");
}

static bool vm_running(QTestState *qts)
{
    QDict *r = qtest_qmp(qts, "{'execute': 'query-status'}");
    bool running = qdict_get_bool(qdict_get_qdict(r, "return"), "running");

    qobject_unref(r);
    return running;
}

/* Drive the device of @to from now on. */
static void ctx_move(TmemCtx *c, QTestState *to)
{
    c->qts = to;
    pci_of(c)->pdev->bus->qts = to;
    global_qtest = to;
}

/* Page @i of a migration test, of every form the pool stores. */
static void mig_page(uint8_t *p, uint64_t i)
{
    switch (i % 4) {
    case 0:             /* compressed */
    case 1:             /* raw */
    case 2:             /* zero */
        page_fill(p, 31000 + i, i % 4);
        break;
    default:            /* same-filled: one non-zero byte repeated */
        memset(p, 0x11 * (1 + (i / 4) % 15), PAGE);
    }
}

static uint64_t mig_fill(TmemCtx *c, uint32_t per, uint64_t n)
{
    uint8_t page[PAGE];
    uint64_t i;

    for (i = 0; i < n; i++) {
        mig_page(page, i);
        g_assert_cmpuint(put1(c, per, 5, i, page, true), ==,
                         VIRTIO_TMEM_S_OK);
    }
    return n;
}

static void mig_check(TmemCtx *c, uint32_t per, uint64_t n)
{
    uint8_t page[PAGE], out[PAGE];
    uint64_t i;

    for (i = 0; i < n; i++) {
        mig_page(page, i);
        g_assert_cmpuint(get1(c, per, 5, i, false, out), ==,
                         VIRTIO_TMEM_S_OK);
        g_assert(!memcmp(page, out, PAGE));
    }
}

/*
 * One migration test: the driver, the source, the destination once
 * started, a file to save the state to, and a persistent pool of pages
 * from mig_page().
 */
typedef struct MigTest {
    TmemCtx c;
    QTestState *src, *dst;
    char *path, *uri;
    uint32_t per;
    uint64_t n;
} MigTest;

/* Start the driver on the source and fill a persistent pool. */
static void mig_begin(MigTest *m, void *obj, QGuestAllocator *alloc,
                      uint64_t pages)
{
    m->src = global_qtest;
    m->dst = NULL;
    m->path = g_strdup_printf("%s/vtmem-qtest-mig-%d.state", g_get_tmp_dir(),
                              getpid());
    m->uri = g_strdup_printf("file:%s", m->path);
    ctx_start(&m->c, obj, alloc);
    m->per = new_pool(&m->c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    m->n = mig_fill(&m->c, m->per, pages);
}

/* Save the source's state to the file. */
static void mig_save(MigTest *m)
{
    mig_start(m->src, m->uri);
    mig_wait(m->src, "completed");
}

/*
 * Start a destination with the source's options and @props, load the file
 * into it and assert the load ended as @want; a destination that loaded
 * is the one driven from then on.
 */
static void mig_load(MigTest *m, const char *props, const char *want)
{
    m->dst = mig_dest_start(props);
    mig_incoming(m->dst, m->uri);
    mig_wait(m->dst, want);
    if (!strcmp(want, "completed")) {
        ctx_move(&m->c, m->dst);
    }
}

/* Quit the destination; drive the source again. */
static void mig_dest_quit(MigTest *m)
{
    ctx_move(&m->c, m->src);
    qtest_quit(m->dst);
    m->dst = NULL;
}

static void mig_end(MigTest *m)
{
    if (m->dst) {
        mig_dest_quit(m);
    }
    unlink(m->path);
    g_free(m->path);
    g_free(m->uri);
}

static void mig_assert_status(QTestState *qts, const char *want)
{
    g_autofree char *status = mig_status(qts);

    g_assert_cmpstr(status, ==, want);
}

/* qom-get of a property of the device under test: the reply (unref it). */
static QDict *qom_get_tmem(const char *prop)
{
    return qmp("{'execute': 'qom-get', 'arguments': "
               "{'path': '/machine/peripheral/tmem0', 'property': %s}}", prop);
}

/*
 * Pages of every form (compressed, raw, zero, same-filled; with a swap
 * image, many written back) migrate through a file and read back on the
 * destination; the pools keep their ids, ephemeral pages go along with
 * migrate-ephemeral=on and stay behind with off.
 * @data: more device options for the destination, or NULL.
 */
static void test_migration(void *obj, void *data, QGuestAllocator *alloc)
{
    g_autofree char *img = g_strdup_printf("swap-image=%s/vtmem-qtest-dst-%d"
                                           ".img%s%s", g_get_tmp_dir(),
                                           getpid(), data ? "," : "",
                                           data ? (char *)data : "");
    uint8_t page[PAGE], out[PAGE];
    bool eph_sent;
    uint32_t eph;
    MigTest m;
    QDict *r;
    int ret;
    QDict *s;

    mig_begin(&m, obj, alloc, 1500);
    r = qom_get_tmem("migrate-ephemeral");
    eph_sent = qdict_get_bool(r, "return");
    qobject_unref(r);
    eph = new_pool(&m.c, 0, NULL);
    page_fill(page, 1, 0);
    g_assert_cmpuint(put1(&m.c, eph, 1, 0, page, false), ==,
                     VIRTIO_TMEM_S_OK);
    s = stats();
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, m.n);
    g_assert_cmpuint(stat_of(s, "swap-image", "pages-in-image"), >, 100);
    qobject_unref(s);

    mig_save(&m);
    s = stats();
    g_assert_cmpuint(stat_of(s, "migration", "page-records"), ==,
                     m.n + eph_sent);
    qobject_unref(s);
    mig_load(&m, img, "completed");
    g_assert(vm_running(m.dst));
    mig_check(&m.c, m.per, m.n);
    s = stats();
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, m.n);
    g_assert_cmpuint(stat_of(s, "ephemeral", "stored-pages"), <=, eph_sent);
    qobject_unref(s);
    /*
     * The ephemeral pool is there.  Its page went with migrate-ephemeral=on
     * (the source counted it), but this destination may have dropped it
     * for room, as an ephemeral page may always be: if it is there, it is
     * the page that was put.
     */
    if (eph_sent) {
        ret = get1(&m.c, eph, 1, 0, false, out);
        g_assert(ret == VIRTIO_TMEM_S_OK || ret == VIRTIO_TMEM_S_NOT_FOUND);
        g_assert(ret || !memcmp(page, out, PAGE));
    } else {
        g_assert_cmpuint(get1(&m.c, eph, 1, 0, false, out), ==,
                         VIRTIO_TMEM_S_NOT_FOUND);
    }
    /* the credits the driver holds are good on the destination */
    page_fill(page, 2, 1);
    g_assert_cmpuint(put1(&m.c, m.per, 6, 0, page, true), ==,
                     VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(get1(&m.c, m.per, 6, 0, true, out), ==,
                     VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(page, out, PAGE));
    mig_end(&m);
}

/*
 * A destination too small for the source's pages and credits refuses the
 * stream; the source goes on running with every page.
 */
static void test_migration_refused(void *obj, void *data,
                                   QGuestAllocator *alloc)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/vtmem-qtest-mig-%d.sock",
                                           g_get_tmp_dir(), getpid());
    uint8_t page[PAGE];
    MigTest m;

    mig_begin(&m, obj, alloc, 400);
    m.dst = mig_dest_start("size=4M");
    /* with a return path the source hears of the refusal before it ends */
    mig_return_path(m.dst);
    mig_return_path(m.src);
    mig_incoming(m.dst, uri);
    mig_start(m.src, uri);
    mig_wait(m.src, "failed");
    mig_wait(m.dst, "failed");
    mig_dest_quit(&m);

    g_assert(vm_running(m.src));
    mig_check(&m.c, m.per, m.n);
    page_fill(page, 3, 0);
    g_assert_cmpuint(put1(&m.c, m.per, 6, 0, page, true), ==,
                     VIRTIO_TMEM_S_OK);
    ctx_stop(&m.c);
    mig_end(&m);
}

static size_t find_bytes(const uint8_t *buf, size_t len, size_t from,
                         const void *what, size_t n)
{
    size_t i;

    for (i = from; i + n <= len; i++) {
        if (!memcmp(buf + i, what, n)) {
            return i;
        }
    }
    return len;
}

/* Save the source's state; return it. */
static uint8_t *mig_save_read(MigTest *m, size_t *len)
{
    uint8_t *state;

    mig_save(m);
    g_assert(g_file_get_contents(m->path, (char **)&state, len, NULL));
    return state;
}

/*
 * Load @state with its byte at @off replaced by @val; assert the outcome.
 * A failed load leaves no pool and no page.
 */
static void mig_load_patched(MigTest *m, const uint8_t *state, size_t len,
                             size_t off, uint8_t val, const char *want)
{
    g_autofree uint8_t *copy = g_memdup2(state, len);
    QDict *s;

    g_assert_cmpuint(off, <, len);
    copy[off] = val;
    g_assert(g_file_set_contents(m->path, (const char *)copy, len, NULL));
    mig_load(m, NULL, want);
    s = stats_on(m->dst);
    if (!strcmp(want, "failed")) {
        g_assert_cmpuint(stat_of(s, NULL, "pools"), ==, 0);
        g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, 0);
    }
    qobject_unref(s);
    mig_dest_quit(m);
}

/*
 * A corrupt stream fails the load cleanly: a page length past a page, an
 * unknown page form, a foreign compressor, an unknown stream version,
 * credits spent past those granted (refused once every page is in).  A
 * failed load leaves no pool and no page behind.
 */
static void test_migration_corrupt(void *obj, void *data,
                                   QGuestAllocator *alloc)
{
    static const char marker[] = "virtio-tmem raw page marker";
    static const char section[] = "virtio-tmem-pool";
    g_autofree uint8_t *state = NULL;
    uint8_t page[PAGE];
    size_t len, rec, sec, hdr, at;
    uint8_t cred[24];
    MigTest m;

    mig_begin(&m, obj, alloc, 64);
    page_fill(page, 77, 1);
    memcpy(page, marker, sizeof(marker));
    g_assert_cmpuint(put1(&m.c, m.per, 9, 0, page, true), ==,
                     VIRTIO_TMEM_S_OK);
    state = mig_save_read(&m, &len);

    /* the raw page's record: form, compressor, fill, length 4096, bytes */
    for (rec = 0; ; rec++) {
        rec = find_bytes(state, len, rec, marker, sizeof(marker));
        g_assert_cmpuint(rec, <, len);
        if (rec >= 10 && !memcmp(state + rec - 4, "\0\0\x10\0", 4)) {
            break;
        }
    }
    /* the section's start: name, instance, version, then the header */
    sec = find_bytes(state, len, 0, section, strlen(section));
    g_assert_cmpuint(sec, <, len);
    hdr = sec + strlen(section) + 8;
    g_assert_cmpuint(state[hdr], ==, 1);        /* VTMEM_REC_HEADER */
    /* the device state: credits granted, spent, shown (= granted) */
    stq_be_p(cred, qvirtio_config_readq(m.c.dev, 16));
    memcpy(cred + 16, cred, 8);
    for (at = 0; ; at++) {
        at = find_bytes(state, len, at, cred, 8);
        g_assert_cmpuint(at, <, len);
        if (at + 24 <= len && !memcmp(state + at + 16, cred, 8)) {
            break;
        }
    }

    mig_load_patched(&m, state, len, 0, state[0], "completed");
    mig_load_patched(&m, state, len, rec - 3, 0x20, "failed");  /* length */
    mig_load_patched(&m, state, len, rec - 10, 9, "failed");    /* form */
    mig_load_patched(&m, state, len, hdr + 1, 9, "failed");  /* compressor */
    mig_load_patched(&m, state, len, hdr - 1, 2, "failed");     /* version */
    mig_load_patched(&m, state, len, at + 8, 0x80, "failed");   /* spent */
    ctx_stop(&m.c);
    mig_end(&m);
}

/*
 * A device broken by a queue handler in an IOThread gets DEVICE_NEEDS_RESET
 * and its interrupt from a main loop BH (qemu/patches/0005).  A migration
 * whose stop-and-copy came before the BH saves it broken without
 * NEEDS_RESET: here that stream is made from a device broken in the main
 * loop, its status byte cleared.  The destination must tell the driver,
 * or the device would stay silently broken there.
 */
static void test_migration_broken(void *obj, void *data,
                                  QGuestAllocator *alloc)
{
    g_autofree uint8_t *state = NULL;
    uint8_t needle[4 + sizeof(struct virtio_tmem_config)];
    uint64_t req, pg, resp;
    QVirtioPCIDevice *d;
    size_t len, at, i;
    uint32_t pool;
    MigTest m;

    mig_begin(&m, obj, alloc, 0);
    d = pci_of(&m.c);
    pool = new_pool(&m.c, 0, NULL);
    put_chain(&m.c, pool, &req, &pg, &resp);
    /* a response in the device's BAR: refused, the device asks a reset */
    kick_and_forget(&m.c, (Piece[]){ { req, 64, false },
                                     { pg, PAGE, false },
                                     { d->bar.addr + d->common_cfg_offset, 32,
                                       true } }, 3);
    qvirtio_wait_config_isr(m.c.dev, TMEM_TIMEOUT_US);
    /* virtio_save(): status, isr, queue_sel, features, config length */
    stl_be_p(needle, sizeof(struct virtio_tmem_config));
    for (i = 0; i < sizeof(struct virtio_tmem_config); i++) {
        needle[4 + i] = qvirtio_config_readb(m.c.dev, i);
    }
    state = mig_save_read(&m, &len);
    at = find_bytes(state, len, 0, needle, sizeof(needle));
    g_assert_cmpuint(at, <, len);
    g_assert_cmpuint(find_bytes(state, len, at + 1, needle, sizeof(needle)),
                     ==, len);
    at -= 8;
    g_assert_cmphex(state[at] & VIRTIO_CONFIG_S_NEEDS_RESET, !=, 0);
    g_assert_cmphex(state[at + 1], ==, 0);      /* isr: read above */
    state[at] &= ~VIRTIO_CONFIG_S_NEEDS_RESET;
    g_assert(g_file_set_contents(m.path, (const char *)state, len, NULL));

    mig_load(&m, NULL, "completed");
    wait_needs_reset(&m.c);
    qvirtio_wait_config_isr(m.c.dev, TMEM_TIMEOUT_US);
    /* and a reset brings it back */
    ctx_stop(&m.c);
    ctx_reset(&m.c, obj);
    pool = new_pool(&m.c, 0, NULL);
    assert_still_serving(&m.c, pool);
    ctx_stop(&m.c);
    mig_end(&m);
}

/*
 * migrate_cancel half-way: the source keeps every page and serves on; a
 * second migration then carries everything.
 */
static void test_migration_cancel(void *obj, void *data,
                                  QGuestAllocator *alloc)
{
    g_autofree char *status = NULL;
    uint8_t page[PAGE];
    MigTest m;

    mig_begin(&m, obj, alloc, 600);
    qtest_qmp_assert_success(m.src, "{'execute': 'migrate-set-parameters', "
                             "'arguments': {'max-bandwidth': 4096}}");
    mig_start(m.src, "exec:cat > /dev/null");
    do {
        g_free(status);
        status = mig_status(m.src);
    } while (!strcmp(status, "setup"));
    g_assert_cmpstr(status, ==, "active");
    /* changes while the pool is being sent: logged, not lost */
    page_fill(page, 4, 0);
    g_assert_cmpuint(put1(&m.c, m.per, 5, 1, page, true), ==,
                     VIRTIO_TMEM_S_OK);
    qtest_qmp_assert_success(m.src, "{'execute': 'migrate_cancel'}");
    mig_wait(m.src, "cancelled");
    g_assert(vm_running(m.src));
    g_assert_cmpuint(put1(&m.c, m.per, 5, 1, page, true), ==,
                     VIRTIO_TMEM_S_OK);
    page_fill(page, 5, 2);
    g_assert_cmpuint(put1(&m.c, m.per, 5, 1, page, true), ==,
                     VIRTIO_TMEM_S_OK);
    mig_page(page, 1);
    g_assert_cmpuint(put1(&m.c, m.per, 5, 1, page, true), ==,
                     VIRTIO_TMEM_S_OK);
    mig_check(&m.c, m.per, m.n);

    qtest_qmp_assert_success(m.src, "{'execute': 'migrate-set-parameters', "
                             "'arguments': {'max-bandwidth': 1073741824}}");
    mig_save(&m);
    mig_load(&m, NULL, "completed");
    mig_check(&m.c, m.per, m.n);
    mig_end(&m);
}

/*
 * Wait until the source has sent its RAM and then @bytes more: of the
 * pool, whose section follows RAM in every iteration.
 */
static void mig_wait_sent_after_ram(QTestState *qts, uint64_t bytes)
{
    gint64 end = g_get_monotonic_time() + 120 * G_USEC_PER_SEC;
    int64_t base = -1;

    for (;;) {
        QDict *r = qtest_qmp(qts, "{'execute': 'query-migrate'}");
        QDict *ram = qdict_get_qdict(qdict_get_qdict(r, "return"), "ram");
        int64_t sent = ram ? qdict_get_int(ram, "transferred") : 0;
        bool ram_done = ram && qdict_get_int(ram, "remaining") == 0;

        qobject_unref(r);
        if (ram_done && base < 0) {
            base = sent;
        }
        if (base >= 0 && sent - base >= bytes) {
            return;
        }
        g_assert(g_get_monotonic_time() < end);
        g_usleep(10 * 1000);
    }
}

/*
 * Migrate the source to @uri at 1 MiB/s; return once its RAM and a
 * quarter of the pool are across.
 */
static void mig_quarter_across(MigTest *m, const char *uri)
{
    QDict *s = stats();
    uint64_t pool_bytes = stat_of(s, "persistent", "compressed-bytes") +
                          stat_of(s, "persistent", "raw-pages") * PAGE;

    qobject_unref(s);
    qtest_qmp_assert_success(m->src, "{'execute': 'migrate-set-parameters', "
                             "'arguments': {'max-bandwidth': 1048576}}");
    mig_start(m->src, uri);
    mig_wait_sent_after_ram(m->src, pool_bytes / 4);
}

/*
 * Hold the source's migration still, or let it go at full speed.  qtest
 * writes to the device even with the VM stopped, which a vCPU never does:
 * a migration that converged while the test still made requests would
 * leave their effect on the source only.  Frozen (10 bytes a 100 ms
 * period: 1 B/s would round to 0, which means no limit; no downtime
 * allowed), it cannot converge while anything is pending.
 */
static void mig_freeze(QTestState *qts, bool freeze)
{
    qtest_qmp_assert_success(qts, "{'execute': 'migrate-set-parameters', "
                             "'arguments': {'max-bandwidth': %" PRId64 ", "
                             "'downtime-limit': %d}}",
                             freeze ? (int64_t)100 : (int64_t)1073741824,
                             freeze ? 0 : 300);
    if (freeze) {
        mig_assert_status(qts, "active");
    }
}

static void flush1(TmemCtx *c, uint32_t pool, uint64_t obj, uint64_t idx)
{
    TmemBatch *t = batch_new(c->max_batch, 4);
    struct vtmem_oid o = oid_of(obj);

    vtmem_batch_flush_page(&t->b, pool, &o, idx);
    run(c, t);
    g_assert_cmpuint(st(t, 0), ==, VIRTIO_TMEM_S_OK);
    batch_free(t);
}

/*
 * Live migration over a unix socket while the guest replaces, flushes and
 * takes pages: what the destination holds is what the source held at the
 * switch-over, key by key.
 */
static void test_migration_live(void *obj, void *data, QGuestAllocator *alloc)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/vtmem-qtest-live-%d.sock",
                                           g_get_tmp_dir(), getpid());
    enum { N = 1200 };
    int64_t want[N];    /* page seed at each index, -1: no page */
    uint8_t page[PAGE], out[PAGE];
    uint64_t i;
    MigTest m;

    mig_begin(&m, obj, alloc, N);
    for (i = 0; i < N; i++) {
        want[i] = i;
    }
    m.dst = mig_dest_start(NULL);
    mig_incoming(m.dst, uri);
    /* a quarter of the pool is on the destination: change it all over */
    mig_quarter_across(&m, uri);
    mig_freeze(m.src, true);

    for (i = 0; i < N; i++) {
        if (i % 5 == 0) {
            mig_page(page, i + 7 * N);
            g_assert_cmpuint(put1(&m.c, m.per, 5, i, page, true), ==,
                             VIRTIO_TMEM_S_OK);
            want[i] = i + 7 * N;
        } else if (i % 7 == 0) {
            flush1(&m.c, m.per, 5, i);
            want[i] = -1;
        } else if (i % 11 == 0) {
            g_assert_cmpuint(get1(&m.c, m.per, 5, i, true, out), ==,
                             VIRTIO_TMEM_S_OK);
            want[i] = -1;
        }
    }
    mig_freeze(m.src, false);
    mig_wait(m.src, "completed");
    mig_wait(m.dst, "completed");

    ctx_move(&m.c, m.dst);
    for (i = 0; i < N; i++) {
        if (want[i] < 0) {
            g_assert_cmpuint(get1(&m.c, m.per, 5, i, false, out), ==,
                             VIRTIO_TMEM_S_NOT_FOUND);
            continue;
        }
        mig_page(page, want[i]);
        g_assert_cmpuint(get1(&m.c, m.per, 5, i, false, out), ==,
                         VIRTIO_TMEM_S_OK);
        g_assert(!memcmp(page, out, PAGE));
    }
    mig_end(&m);
}

/*
 * A device reset while the pool is being sent re-creates the source's
 * pool: the destination ends up with the new pool's pages, none of the
 * old ones.
 */
static void test_migration_reset(void *obj, void *data,
                                 QGuestAllocator *alloc)
{
    MigTest m;
    QDict *s;

    mig_begin(&m, obj, alloc, 1200);
    /* a quarter of the old pool's pages reach the destination first */
    mig_quarter_across(&m, m.uri);
    mig_freeze(m.src, true);

    ctx_reset(&m.c, obj);
    m.per = new_pool(&m.c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    m.n = mig_fill(&m.c, m.per, 20);
    mig_freeze(m.src, false);
    mig_wait(m.src, "completed");

    mig_load(&m, NULL, "completed");
    mig_check(&m.c, m.per, m.n);
    s = stats();
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, m.n);
    g_assert_cmpuint(stat_of(s, NULL, "pools"), ==, 1);
    qobject_unref(s);
    mig_end(&m);
}

/*
 * The far end of an outgoing migration, in this process: it reads and
 * drops what comes while told to; stopped, the source's writes block once
 * the socket's buffers are full.  Stopped for MIG_SINK_STALL_US, it reads
 * again by itself (and says so), so that a QEMU that waits on the stalled
 * channel cannot hang the test.
 */
#define MIG_SINK_STALL_US   (10 * G_USEC_PER_SEC)

typedef struct MigSink {
    int fd;
    gint reading;
    gint gave_up;
    GThread *thread;
} MigSink;

static gpointer mig_sink_run(gpointer opaque)
{
    MigSink *k = opaque;
    gint64 stopped = 0;
    char buf[65536];

    for (;;) {
        if (!g_atomic_int_get(&k->reading)) {
            gint64 now = g_get_monotonic_time();

            stopped = stopped ? stopped : now;
            if (now - stopped < MIG_SINK_STALL_US) {
                g_usleep(10 * 1000);
                continue;
            }
            g_atomic_int_set(&k->gave_up, 1);
            g_atomic_int_set(&k->reading, 1);
        }
        stopped = 0;
        if (read(k->fd, buf, sizeof(buf)) <= 0) {
            break;
        }
    }
    close(k->fd);
    return NULL;
}

/* Give @qts a sink to migrate to ("fd:sink"), reading. */
static void mig_sink_start(MigSink *k, QTestState *qts)
{
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    k->fd = sv[0];
    k->reading = 1;
    k->gave_up = 0;
    qtest_qmp_fds_assert_success(qts, &sv[1], 1, "{'execute': 'getfd', "
                                 "'arguments': {'fdname': 'sink'}}");
    close(sv[1]);
    k->thread = g_thread_new("mig-sink", mig_sink_run, k);
}

/* Stop reading; return once the source's writes stopped moving. */
static void mig_sink_stall(MigSink *k, QTestState *qts)
{
    gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    int64_t last = -1, sent = 0;

    g_atomic_int_set(&k->reading, 0);
    while (sent != last) {
        QDict *r = qtest_qmp(qts, "{'execute': 'query-migrate'}");
        QDict *ram = qdict_get_qdict(qdict_get_qdict(r, "return"), "ram");

        last = sent;
        sent = qdict_get_int(ram, "transferred");
        qobject_unref(r);
        g_assert(g_get_monotonic_time() < end);
        g_usleep(300 * 1000);
    }
}

/* Read again until the source closes the channel; whether it had to. */
static bool mig_sink_finish(MigSink *k)
{
    g_atomic_int_set(&k->reading, 1);
    g_thread_join(k->thread);
    return g_atomic_int_get(&k->gave_up);
}

/*
 * A destination that stops reading half-way through the pool blocks the
 * source's migration thread in a write.  A guest reset meanwhile must not
 * wait for that write: it runs in the main loop with the BQL held, and
 * would hang the guest and the monitor for as long as the channel stalls.
 * The source then serves the new pool and cancels the migration.
 */
static void test_migration_stall_reset(void *obj, void *data,
                                       QGuestAllocator *alloc)
{
    gint64 t0, reset_us;
    MigSink k;
    MigTest m;

    mig_begin(&m, obj, alloc, 1200);
    mig_sink_start(&k, m.src);
    mig_quarter_across(&m, "fd:sink");
    mig_sink_stall(&k, m.src);
    mig_assert_status(m.src, "active");

    t0 = g_get_monotonic_time();
    ctx_reset(&m.c, obj);
    reset_us = g_get_monotonic_time() - t0;
    m.per = new_pool(&m.c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    m.n = mig_fill(&m.c, m.per, 20);

    qtest_qmp_assert_success(m.src, "{'execute': 'migrate_cancel'}");
    g_assert(!mig_sink_finish(&k));
    mig_wait(m.src, "cancelled");
    g_assert_cmpint(reset_us, <, 3 * G_USEC_PER_SEC);
    g_assert(vm_running(m.src));
    mig_check(&m.c, m.per, m.n);
    ctx_stop(&m.c);
    mig_end(&m);
}

#define PCI_SLOT_HP 0x06

/* Hot-plug and unplug a second device: realize and unrealize, under ASan. */
static void test_hotplug(void *obj, void *data, QGuestAllocator *alloc)
{
    QVirtioPCIDevice *dev = obj;
    QTestState *qts = dev->pdev->bus->qts;

    if (dev->pdev->bus->not_hotpluggable) {
        g_test_skip("pci bus does not support hotplug");
        return;
    }
    qtest_qmp_device_add(qts, "virtio-tmem-pci", "tmem1",
                         "{'addr': %s, 'size': 8388608, 'num-queues': 2}",
                         stringify(PCI_SLOT_HP));
    qpci_unplug_acpi_device_test(qts, "tmem1", PCI_SLOT_HP);
}

/* A swap image in use by one device cannot be opened by another. */
static void test_image_lock(void *obj, void *data, QGuestAllocator *alloc)
{
    QVirtioPCIDevice *dev = obj;
    QTestState *qts = dev->pdev->bus->qts;
    g_autofree char *path = g_strdup_printf("%s/vtmem-qtest-lock-%d.img",
                                            g_get_tmp_dir(), getpid());
    g_autofree char *props = NULL;

    if (dev->pdev->bus->not_hotpluggable) {
        g_test_skip("pci bus does not support hotplug");
        return;
    }
    qtest_qmp_device_add(qts, "virtio-tmem-pci", "tmem1",
                         "{'addr': %s, 'size': 8388608, 'swap-image': %s, "
                         "'swap-image-size': 8388608}",
                         stringify(PCI_SLOT_HP), path);
    props = g_strdup_printf("'swap-image': '%s', 'swap-image-size': 8388608",
                            path);
    assert_device_add_fails(props, "Failed to get \"write\" lock");
    qpci_unplug_acpi_device_test(qts, "tmem1", PCI_SLOT_HP);
    unlink(path);
}

/* ---- resizing ------------------------------------------------------------ */

/* Configuration offsets of the VIRTIO_TMEM_F_RESIZE fields. */
#define CFG_POOL_LIMIT          24
#define CFG_PERSISTENT_TARGET   32
#define CFG_CREDIT_CAP          40
#define CFG_CAP_GEN             48
#define CFG_CAP_ACK_GEN         52
#define CFG_CAP_ACK             56

static QDict *set_size(uint64_t size)
{
    return qmp("{'execute': 'qom-set', 'arguments': "
               "{'path': '/machine/peripheral/tmem0', "
               "'property': 'size', 'value': %" PRIu64 "}}", size);
}

static void set_size_ok(uint64_t size)
{
    QDict *r = set_size(size);

    g_assert(qdict_haskey(r, "return"));
    qobject_unref(r);
}

static uint64_t get_size(void)
{
    QDict *r = qom_get_tmem("size");
    uint64_t v = qdict_get_int(r, "return");

    qobject_unref(r);
    return v;
}

/* resize/@key: some are all ones, beyond qdict_get_int()'s range */
static uint64_t resize_stat(const char *key)
{
    QDict *s = stats();
    QNum *n = qobject_to(QNum, qdict_get(qdict_get_qdict(s, "resize"), key));
    uint64_t v;

    g_assert(n && qnum_get_try_uint(n, &v));
    qobject_unref(s);
    return v;
}

/* Wait (the device's tick is 100 ms) until resize/@key satisfies @ok. */
static uint64_t resize_wait(const char *key, bool (*ok)(uint64_t, uint64_t),
                            uint64_t arg)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 300; i++) {
        v = resize_stat(key);
        if (ok(v, arg)) {
            return v;
        }
        g_usleep(20 * 1000);
    }
    g_test_message("resize/%s stuck at %" PRIu64, key, v);
    g_assert_not_reached();
}

static bool at_most(uint64_t v, uint64_t arg)
{
    return v <= arg;
}

static bool below(uint64_t v, uint64_t arg)
{
    return v < arg;
}

static bool equal(uint64_t v, uint64_t arg)
{
    return v == arg;
}

static void config_writel(TmemCtx *c, uint64_t off, uint32_t v)
{
    QVirtioPCIDevice *d = pci_of(c);

    qpci_io_writel(d->pdev, d->bar, d->device_cfg_offset + off, v);
}

/* What a driver does on a new credit cap: stop, and say where it stopped. */
static uint64_t ack_cap(TmemCtx *c, uint64_t spent)
{
    uint64_t cap = qvirtio_config_readq(c->dev, CFG_CREDIT_CAP);
    uint32_t gen = qvirtio_config_readl(c->dev, CFG_CAP_GEN);
    uint64_t bound = MAX(spent, MIN(credits_seen(c), cap));

    config_writel(c, CFG_CAP_ACK, (uint32_t)bound);
    config_writel(c, CFG_CAP_ACK + 4, (uint32_t)(bound >> 32));
    config_writel(c, CFG_CAP_ACK_GEN, gen);
    return bound;
}

static void check_pages(TmemCtx *c, uint32_t pool, uint64_t obj,
                        uint64_t from, uint64_t n, uint64_t seed, int shape)
{
    uint8_t page[PAGE], out[PAGE];
    uint64_t i;

    for (i = from; i < n; i++) {
        page_fill(page, seed + i, shape);
        g_assert_cmpuint(get1(c, pool, obj, i, false, out), ==,
                         VIRTIO_TMEM_S_OK);
        g_assert(!memcmp(page, out, PAGE));
    }
}

/* Fill an ephemeral pool with @batches full batches of compressible pages */
static void fill_ephemeral(TmemCtx *c, uint32_t eph, unsigned batches)
{
    unsigned i, j;

    for (i = 0; i < batches; i++) {
        TmemBatch *t = batch_new(c->max_batch, 500 + i);

        for (j = 0; j < c->max_batch; j++) {
            struct vtmem_oid o = oid_of(100 + i);

            vtmem_batch_put(&t->b, eph, &o, j, false);
            page_fill(t->put[j], i * 1000 + j, 0);
        }
        run(c, t);
        batch_free(t);
    }
}

/*
 * size=8M,max-size=16M: grow, then shrink with pages of both kinds stored.
 * Growing grants credits at once; shrinking caps them (the driver still
 * spends what it held until it acknowledges), evicts ephemeral pages and
 * reaches the target; growing again lifts the cap and grants anew.
 */
static void test_resize(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t granted, cap, bound, spent = 0, i, n = 300, evicted;
    uint8_t page[PAGE];
    uint32_t eph, per;
    QDict *s, *ev;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    g_assert(qvirtio_get_features(c.dev) & (1ull << VIRTIO_TMEM_F_RESIZE));
    eph = new_pool(&c, 0, NULL);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    for (i = 0; i < n; i++) {
        page_fill(page, 100 + i, 0);
        g_assert_cmpuint(spent, <, credits_seen(&c));
        g_assert_cmpuint(put1(&c, per, 1, i, page, true), ==,
                         VIRTIO_TMEM_S_OK);
        spent++;
    }
    fill_ephemeral(&c, eph, 40);

    /* grow: read back at once, credits at once */
    granted = credits_seen(&c);
    set_size_ok(16 * MiB);
    g_assert_cmpuint(get_size(), ==, 16 * MiB);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, CFG_POOL_LIMIT), ==,
                     16 * MiB);
    g_assert_cmpuint(credits_seen(&c), >, granted + 100);
    ev = qtest_qmp_eventwait_ref(global_qtest, "MEMORY_DEVICE_SIZE_CHANGE");
    g_assert_cmpuint(qdict_get_int(qdict_get_qdict(ev, "data"), "size"), ==,
                     16 * MiB);
    qobject_unref(ev);
    /* beyond max-size: refused, size unchanged */
    s = set_size(32 * MiB);
    g_assert(qdict_haskey(s, "error"));
    qobject_unref(s);
    g_assert_cmpuint(get_size(), ==, 16 * MiB);

    /* shrink: the credits above the new capacity get a cap */
    granted = credits_seen(&c);
    s = stats();
    evicted = stat_of(s, "ephemeral", "evicted-pages");
    g_assert_cmpuint(stat_of(s, NULL, "used-bytes"), >, 6 * MiB);
    qobject_unref(s);
    set_size_ok(4 * MiB);
    g_assert_cmpuint(get_size(), ==, 4 * MiB);
    cap = qvirtio_config_readq(c.dev, CFG_CREDIT_CAP);
    g_assert_cmpuint(cap, <, granted);
    g_assert_cmpuint(qvirtio_config_readl(c.dev, CFG_CAP_GEN), >, 0);
    /*
     * Until the driver acknowledges, every credit it held still holds:
     * it may have accepted pages already, beyond the cap too.
     */
    g_assert_cmpuint(cap + 20, <, granted);
    for (; spent < cap + 20; spent++, n++) {
        page_fill(page, 100 + n, 0);
        g_assert_cmpuint(put1(&c, per, 1, n, page, true), ==,
                         VIRTIO_TMEM_S_OK);
    }
    bound = ack_cap(&c, spent);
    /* acknowledged: only up to the bound now */
    for (; spent < bound; spent++, n++) {
        page_fill(page, 100 + n, 0);
        g_assert_cmpuint(put1(&c, per, 1, n, page, true), ==,
                         VIRTIO_TMEM_S_OK);
    }
    page_fill(page, 1, 0);
    g_assert_cmpuint(put1(&c, per, 1, n, page, true), ==,
                     VIRTIO_TMEM_S_NO_CREDIT);
    spent++;
    /* ephemeral pages go, the store reaches its target */
    resize_wait("pool-limit-bytes", equal, 4 * MiB);
    resize_wait("used-bytes", at_most, 4 * MiB);
    s = stats();
    g_assert_cmpuint(stat_of(s, "ephemeral", "evicted-pages"), >, evicted);
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, n);
    g_assert_cmpuint(stat_of(s, "persistent", "reject-full"), ==, 0);
    g_assert_cmpuint(stat_of(s, "resize", "progress-percent"), ==, 100);
    qobject_unref(s);
    /*
     * QMP sends this event at most once a second per device; under qtest
     * the monitor's throttle runs on the virtual clock.
     */
    clock_step(1000 * 1000 * 1000);
    ev = qtest_qmp_eventwait_ref(global_qtest, "MEMORY_DEVICE_SIZE_CHANGE");
    g_assert_cmpuint(qdict_get_int(qdict_get_qdict(ev, "data"), "size"), ==,
                     4 * MiB);
    qobject_unref(ev);
    check_pages(&c, per, 1, 0, n, 100, 0);

    /* grow again: the cap is lifted and credits are granted anew */
    granted = credits_seen(&c);
    set_size_ok(16 * MiB);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, CFG_CREDIT_CAP), ==,
                     VIRTIO_TMEM_NO_LIMIT);
    g_assert_cmpuint(credits_seen(&c), >, granted);
    page_fill(page, 100 + n, 0);
    g_assert_cmpuint(put1(&c, per, 1, n, page, true), ==, VIRTIO_TMEM_S_OK);
    check_pages(&c, per, 1, 0, n + 1, 100, 0);
    ctx_stop(&c);
}

/*
 * size=8M, no image: persistent pages alone exceed a 2M target.  The
 * device evicts what it can, then asks the guest (persistent_target); once
 * the guest flushes that many, the store reaches the target and the
 * request is withdrawn.
 */
static void test_resize_ask(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t spent = 0, i, n, target, flushed = 0;
    uint8_t page[PAGE];
    uint32_t per;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    for (i = 0; i < 1000 && spent < credits_seen(&c); i++, spent++) {
        page_fill(page, 5000 + i, 1);
        g_assert_cmpuint(put1(&c, per, 3, i, page, true), ==,
                         VIRTIO_TMEM_S_OK);
    }
    n = i;
    g_assert_cmpuint(n, >, 800);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, CFG_PERSISTENT_TARGET), ==,
                     VIRTIO_TMEM_NO_LIMIT);
    set_size_ok(2 * MiB);
    ack_cap(&c, spent);
    target = resize_wait("persistent-target", below, n);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, CFG_PERSISTENT_TARGET), ==,
                     target);
    g_assert_cmpuint(resize_stat("excess-pages"), ==, n - target);
    /* the guest takes its pages back: here, flushes of the oldest */
    while (qvirtio_config_readq(c.dev, CFG_PERSISTENT_TARGET) !=
           VIRTIO_TMEM_NO_LIMIT) {
        target = qvirtio_config_readq(c.dev, CFG_PERSISTENT_TARGET);
        while (n - flushed > target) {
            TmemBatch *t = batch_new(c.max_batch, 900 + flushed);
            struct vtmem_oid o = oid_of(3);

            vtmem_batch_flush_page(&t->b, per, &o, flushed++);
            run(&c, t);
            batch_free(t);
        }
        g_assert_cmpuint(flushed, <, n);
        g_usleep(150 * 1000);
    }
    resize_wait("used-bytes", at_most, 2 * MiB);
    /* the shrink thread counts the excess again after its next pass */
    resize_wait("excess-pages", equal, 0);
    /* not much more than needed was asked for */
    g_assert_cmpuint(flushed * 10, <, n * 9);
    check_pages(&c, per, 3, flushed, n, 5000, 1);
    ctx_stop(&c);
}

/*
 * With a swap image, a shrink needs no help from the guest: persistent
 * frames go to the image, every page still reads back.
 */
static void test_resize_image(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t spent = 0, i, n;
    uint8_t page[PAGE];
    uint32_t per;
    TmemCtx c;
    QDict *s;

    ctx_start(&c, obj, alloc);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    for (i = 0; i < 1500 && spent < credits_seen(&c); i++, spent++) {
        page_fill(page, 7000 + i, i % 3 == 0);
        g_assert_cmpuint(put1(&c, per, 4, i, page, true), ==,
                         VIRTIO_TMEM_S_OK);
    }
    n = i;
    set_size_ok(2 * MiB);
    ack_cap(&c, spent);
    resize_wait("pool-limit-bytes", equal, 2 * MiB);
    resize_wait("used-bytes", at_most, 2 * MiB);
    g_assert_cmpuint(resize_stat("persistent-target"), ==,
                     VIRTIO_TMEM_NO_LIMIT);
    s = stats();
    g_assert_cmpuint(stat_of(s, "swap-image", "pages-in-image"), >, 0);
    g_assert_cmpuint(stat_of(s, "persistent", "stored-pages"), ==, n);
    qobject_unref(s);
    for (i = 0; i < n; i++) {
        uint8_t out[PAGE];

        page_fill(page, 7000 + i, i % 3 == 0);
        g_assert_cmpuint(get1(&c, per, 4, i, false, out), ==,
                         VIRTIO_TMEM_S_OK);
        g_assert(!memcmp(page, out, PAGE));
    }
    ctx_stop(&c);
}

/*
 * auto-shrink=on against a pressure file the test writes: rising pressure
 * shrinks size in steps down to min-size, steady pressure keeps it there,
 * no pressure grows it back slowly to max-size, and garbage is warned
 * about and changes nothing.
 */
static char pressure_path[128];

static void pressure_write(const char *text)
{
    g_assert(g_file_set_contents(pressure_path, text, -1, NULL));
}

static void test_auto_shrink(void *obj, void *data, QGuestAllocator *alloc)
{
    uint64_t size, last, steps = 0;
    bool between = false;
    int i;

    g_assert_cmpuint(get_size(), ==, 16 * MiB);
    pressure_write("some avg10=42.50 avg60=20.00 avg300=5.00 total=123456\n"
                   "full avg10=10.00 avg60=5.00 avg300=1.00 total=6543\n");
    /* rising: down by max-size / 8 a reading, never below min-size */
    for (i = 0, last = 16 * MiB; i < 400 && last > 4 * MiB; i++) {
        g_usleep(10 * 1000);
        size = get_size();
        g_assert_cmpuint(size, <=, last);
        g_assert_cmpuint(size, >=, 4 * MiB);
        steps += size < last;
        last = size;
    }
    g_assert_cmpuint(last, ==, 4 * MiB);
    g_assert_cmpuint(steps, >=, 2);
    /* steady */
    g_usleep(300 * 1000);
    g_assert_cmpuint(get_size(), ==, 4 * MiB);
    /* garbage: a warning, nothing else */
    pressure_write("garbage\n");
    g_usleep(300 * 1000);
    g_assert_cmpuint(get_size(), ==, 4 * MiB);
    /* falling: back up, slowly, to max-size */
    pressure_write("some avg10=0.00 avg60=3.00 avg300=2.00 total=123999\n");
    for (i = 0, last = 4 * MiB; i < 1000 && last < 16 * MiB; i++) {
        g_usleep(10 * 1000);
        size = get_size();
        g_assert_cmpuint(size, >=, last);
        /* a sixteenth of max-size at a time */
        g_assert_cmpuint(size - last, <=, 2 * MiB);
        between |= size > 4 * MiB && size < 16 * MiB;
        last = size;
    }
    g_assert_cmpuint(last, ==, 16 * MiB);
    g_assert(between);
    unlink(pressure_path);
}

/*
 * A resize migrates: the target, the pool's limit (held up by the credits
 * granted before), the credit cap and its generation are the source's on
 * the destination (whose command line says size=8M).  The driver
 * acknowledges the cap there; it holds, the pool reaches the target, and
 * growing there lifts the cap.
 */
static void test_migration_resize(void *obj, void *data,
                                  QGuestAllocator *alloc)
{
    g_autofree char *path = g_strdup_printf("%s/vtmem-qtest-migrs-%d.state",
                                            g_get_tmp_dir(), getpid());
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    QTestState *src = global_qtest, *dst, *dst2;
    uint64_t spent = 0, i, bound, cap, limit;
    uint8_t page[PAGE];
    uint32_t per, gen;
    TmemCtx c;

    ctx_start(&c, obj, alloc);
    per = new_pool(&c, VIRTIO_TMEM_POOL_PERSISTENT, NULL);
    for (i = 0; i < 200; i++, spent++) {
        page_fill(page, 300 + i, 0);
        g_assert_cmpuint(put1(&c, per, 1, i, page, true), ==,
                         VIRTIO_TMEM_S_OK);
    }
    set_size_ok(4 * MiB);
    cap = qvirtio_config_readq(c.dev, CFG_CREDIT_CAP);
    gen = qvirtio_config_readl(c.dev, CFG_CAP_GEN);
    g_assert_cmpuint(cap, <, credits_seen(&c));
    limit = resize_stat("pool-limit-bytes");
    g_assert_cmpuint(limit, >, 4 * MiB);

    mig_start(src, uri);
    mig_wait(src, "completed");
    dst = mig_dest_start(NULL);
    mig_incoming(dst, uri);
    mig_wait(dst, "completed");
    ctx_move(&c, dst);
    g_assert_cmpuint(get_size(), ==, 4 * MiB);
    g_assert_cmpuint(resize_stat("pool-limit-bytes"), ==, limit);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, CFG_POOL_LIMIT), ==,
                     4 * MiB);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, CFG_CREDIT_CAP), ==, cap);
    g_assert_cmpuint(qvirtio_config_readl(c.dev, CFG_CAP_GEN), ==, gen);
    check_pages(&c, per, 1, 0, i, 300, 0);
    /* acknowledged on the destination: the cap holds, the target is met */
    bound = ack_cap(&c, spent);
    for (; spent < bound; spent++, i++) {
        page_fill(page, 300 + i, 0);
        g_assert_cmpuint(put1(&c, per, 1, i, page, true), ==,
                         VIRTIO_TMEM_S_OK);
    }
    g_assert_cmpuint(put1(&c, per, 1, i, page, true), ==,
                     VIRTIO_TMEM_S_NO_CREDIT);
    resize_wait("pool-limit-bytes", equal, 4 * MiB);
    /*
     * Once acknowledged, the bound is what a destination must honour: one
     * started at the shrunk size takes the stream (counting every credit
     * ever granted, it would refuse it).
     */
    unlink(path);
    mig_start(dst, uri);
    mig_wait(dst, "completed");
    dst2 = mig_dest_start("size=4M,max-size=16M");
    mig_incoming(dst2, uri);
    mig_wait(dst2, "completed");
    ctx_move(&c, dst2);
    check_pages(&c, per, 1, 0, i, 300, 0);
    g_assert_cmpuint(put1(&c, per, 1, i, page, true), ==,
                     VIRTIO_TMEM_S_NO_CREDIT);
    /* and growing there lifts the cap */
    set_size_ok(16 * MiB);
    g_assert_cmpuint(qvirtio_config_readq(c.dev, CFG_CREDIT_CAP), ==,
                     VIRTIO_TMEM_NO_LIMIT);
    page_fill(page, 300 + i, 0);
    g_assert_cmpuint(put1(&c, per, 1, i, page, true), ==, VIRTIO_TMEM_S_OK);
    check_pages(&c, per, 1, 0, i + 1, 300, 0);

    ctx_move(&c, src);
    qtest_quit(dst2);
    qtest_quit(dst);
    unlink(path);
}

/*
 * swap-image-shared=on: the destination opens the source's image (one path
 * on this host standing for shared storage), written-back pages travel as
 * references to their slots, and the image's lock goes over at the
 * switchover.  The source then quits: its close must leave the image
 * alone, and the destination reads every page from it.
 */
static void test_migration_shared(void *obj, void *data,
                                  QGuestAllocator *alloc)
{
    uint64_t in_image, ram_bytes, sent, records;
    uint8_t page[PAGE], out[PAGE];
    MigTest m;
    QDict *s;

    mig_begin(&m, obj, alloc, 1500);
    s = stats();
    in_image = stat_of(s, "swap-image", "pages-in-image");
    ram_bytes = stat_of(s, "persistent", "compressed-bytes") +
                stat_of(s, "persistent", "raw-pages") * PAGE;
    qobject_unref(s);
    g_assert_cmpuint(in_image, >, 100);

    mig_save(&m);
    s = stats_on(m.src);
    sent = stat_of(s, "migration", "bytes-sent");
    records = stat_of(s, "migration", "records");
    qobject_unref(s);
    g_test_message("%" PRIu64 " pages in the image; %" PRIu64 " bytes in "
                   "RAM; %" PRIu64 " bytes and %" PRIu64 " records sent",
                   in_image, ram_bytes, sent, records);
    /* the image's pages went as references, none of their bytes */
    g_assert_cmpuint(records, >=, m.n);
    g_assert_cmpuint(sent, <=, ram_bytes + records * 80 + 256);

    mig_load(&m, NULL, "completed");
    mig_check(&m.c, m.per, m.n);
    /* the source goes; the destination keeps every page it left behind */
    qtest_quit(m.src);
    m.src = NULL;
    mig_check(&m.c, m.per, m.n);
    /* the destination owns the image: it writes back into it */
    page_fill(page, 4, 1);
    g_assert_cmpuint(put1(&m.c, m.per, 6, 0, page, true), ==,
                     VIRTIO_TMEM_S_OK);
    g_assert_cmpuint(get1(&m.c, m.per, 6, 0, true, out), ==,
                     VIRTIO_TMEM_S_OK);
    g_assert(!memcmp(page, out, PAGE));
    s = stats();
    g_assert_cmpuint(stat_of(s, "swap-image", "checksum-errors"), ==, 0);
    g_assert_cmpuint(stat_of(s, "swap-image", "read-errors"), ==, 0);
    qobject_unref(s);
    /* the destination is the QEMU the test framework ends */
    m.dst = NULL;
    mig_end(&m);
    unlink(data);
}

/*
 * A destination that refuses the stream never takes the shared image's
 * lock, and leaves the file alone when it quits; the source, stopped
 * after handing the image over, takes it back when it runs again and
 * goes on with every page, writing back again.
 */
static void test_migration_shared_failed(void *obj, void *data,
                                         QGuestAllocator *alloc)
{
    uint64_t written;
    MigTest m;
    QDict *s;

    mig_begin(&m, obj, alloc, 1500);
    mig_save(&m);
    g_assert(!vm_running(m.src));
    mig_load(&m, "max-pools=1", "failed");
    mig_dest_quit(&m);

    qtest_qmp_assert_success(m.src, "{'execute': 'cont'}");
    g_assert(vm_running(m.src));
    mig_check(&m.c, m.per, m.n);
    s = stats();
    written = stat_of(s, "swap-image", "frames-written");
    g_assert_cmpuint(stat_of(s, "swap-image", "checksum-errors"), ==, 0);
    qobject_unref(s);
    /* writeback goes on: the image is this QEMU's again */
    mig_fill(&m.c, m.per, m.n);
    s = stats();
    g_assert_cmpuint(stat_of(s, "swap-image", "frames-written"), >, written);
    qobject_unref(s);
    mig_check(&m.c, m.per, m.n);
    mig_end(&m);
    unlink(data);
}

/*
 * A source that runs again after a completed migration finds the image
 * taken by the destination: the device stops (NEEDS_RESET) rather than
 * use pages another QEMU now owns.
 */
static void test_migration_shared_taken(void *obj, void *data,
                                        QGuestAllocator *alloc)
{
    MigTest m;

    mig_begin(&m, obj, alloc, 600);
    mig_save(&m);
    mig_load(&m, NULL, "completed");
    mig_check(&m.c, m.per, m.n);
    qtest_qmp_assert_success(m.src, "{'execute': 'cont'}");
    ctx_move(&m.c, m.src);
    wait_needs_reset(&m.c);
    ctx_move(&m.c, m.dst);
    mig_check(&m.c, m.per, m.n);
    mig_end(&m);
    unlink(data);
}

static void register_virtio_tmem_test(void)
{
    QOSGraphTestOptions small = {
        .edge.extra_device_opts = "size=4M",
    };
    QOSGraphTestOptions iothread = {
        .edge.after_cmd_line = "-object iothread,id=tmem_io",
        .edge.extra_device_opts = "iothread=tmem_io",
    };
    QOSGraphTestOptions two_queues = {
        .edge.extra_device_opts = "num-queues=2",
    };
    QOSGraphTestOptions zstd = {
        .edge.extra_device_opts = "compressor=zstd,zstd-level=1",
        .arg = (void *)"zstd",
    };
    QOSGraphTestOptions iothread_zstd = {
        .edge.after_cmd_line = "-object iothread,id=tmem_io",
        .edge.extra_device_opts = "iothread=tmem_io,compressor=zstd",
        .arg = (void *)"zstd",
    };
    static char writeback_opts[160], zs_writeback_opts[192];
    static char eph_off_opts[192];
    static char shared_img[3][128], shared_opts[3][192];
    unsigned i;
    QOSGraphTestOptions writeback = {
        .edge.extra_device_opts = writeback_opts,
    };
    static char resize_image_opts[160];
    static char auto_shrink_opts[256];
    QOSGraphTestOptions auto_shrink = {
        .edge.extra_device_opts = auto_shrink_opts,
    };
    QOSGraphTestOptions resize = {
        .edge.extra_device_opts = "size=8M,max-size=16M",
    };
    QOSGraphTestOptions resize_image = {
        .edge.extra_device_opts = resize_image_opts,
    };
    QOSGraphTestOptions mig_resize = {
        .edge.extra_device_opts = "size=8M,max-size=16M",
        .before = mig_save_cmdline,
    };
    /* the same tests with the other allocator */
    QOSGraphTestOptions zs = {
        .edge.extra_device_opts = "allocator=zsmalloc",
    };
    QOSGraphTestOptions zs_small = {
        .edge.extra_device_opts = "size=4M,allocator=zsmalloc",
    };
    QOSGraphTestOptions zs_writeback = {
        .edge.extra_device_opts = zs_writeback_opts,
    };
    /* migration tests start a destination with the source's command line */
    QOSGraphTestOptions mig = {
        .before = mig_save_cmdline,
    };
    QOSGraphTestOptions mig_writeback = {
        .edge.extra_device_opts = writeback_opts,
        .before = mig_save_cmdline,
    };
    /*
     * A destination whose background writeback stops at once: the room
     * for the credits must come from the load itself.
     */
    /* one image (and so one source QEMU) per test */
    QOSGraphTestOptions mig_shared[3];
    QOSGraphTestOptions mig_eph_off = {
        .edge.extra_device_opts = eph_off_opts,
        .before = mig_save_cmdline,
    };
    QOSGraphTestOptions mig_writeback_late = {
        .edge.extra_device_opts = writeback_opts,
        .before = mig_save_cmdline,
        .arg = (void *)"writeback-high=100,writeback-low=99",
    };

    snprintf(pressure_path, sizeof(pressure_path),
             "%s/vtmem-qtest-psi-%d", g_get_tmp_dir(), getpid());
    snprintf(auto_shrink_opts, sizeof(auto_shrink_opts),
             "size=16M,min-size=4M,auto-shrink=on,pressure-file=%s,"
             "pressure-interval=20", pressure_path);
    snprintf(resize_image_opts, sizeof(resize_image_opts),
             "size=8M,swap-image=%s/vtmem-qtest-rs-%d.img,"
             "swap-image-size=64M,swap-image-unlink=on", g_get_tmp_dir(),
             getpid());
    snprintf(writeback_opts, sizeof(writeback_opts),
             "size=2M,swap-image=%s/vtmem-qtest-%d.img,swap-image-size=64M,"
             "swap-image-unlink=on", g_get_tmp_dir(), getpid());
    snprintf(zs_writeback_opts, sizeof(zs_writeback_opts),
             "%s,allocator=zsmalloc", writeback_opts);
    snprintf(eph_off_opts, sizeof(eph_off_opts),
             "%s,migrate-ephemeral=off", writeback_opts);
    for (i = 0; i < ARRAY_SIZE(mig_shared); i++) {
        snprintf(shared_img[i], sizeof(shared_img[i]),
                 "%s/vtmem-qtest-shared-%d-%u.img", g_get_tmp_dir(), getpid(),
                 i);
        snprintf(shared_opts[i], sizeof(shared_opts[i]),
                 "size=2M,swap-image=%s,swap-image-size=64M,"
                 "swap-image-shared=on", shared_img[i]);
        mig_shared[i] = (QOSGraphTestOptions) {
            .edge.extra_device_opts = shared_opts[i],
            .before = mig_save_cmdline,
            .arg = shared_img[i],
        };
    }

    qos_add_test("config", "virtio-tmem", test_config, NULL);
    qos_add_test("round-trip", "virtio-tmem", test_round_trip, NULL);
    qos_add_test("compressor", "virtio-tmem", test_compressor, NULL);
    qos_add_test("zstd/compressor", "virtio-tmem", test_compressor, &zstd);
    qos_add_test("zstd/round-trip", "virtio-tmem", test_round_trip, &zstd);
    qos_add_test("iothread/zstd/round-trip", "virtio-tmem", test_round_trip,
                 &iothread_zstd);
    qos_add_test("replace-exclusive-flush", "virtio-tmem",
                 test_replace_exclusive_flush, NULL);
    qos_add_test("shared-pools", "virtio-tmem", test_shared_pools, NULL);
    qos_add_test("full-batch", "virtio-tmem", test_full_batch, NULL);
    qos_add_test("pool-limit", "virtio-tmem", test_pool_limit, &small);
    qos_add_test("reset", "virtio-tmem", test_reset, NULL);
    qos_add_test("writeback", "virtio-tmem", test_writeback, &writeback);
    qos_add_test("malformed", "virtio-tmem", test_malformed, NULL);
    qos_add_test("iothread/round-trip", "virtio-tmem", test_round_trip,
                 &iothread);
    qos_add_test("iothread/malformed", "virtio-tmem", test_malformed,
                 &iothread);
    qos_add_test("two-queues", "virtio-tmem", test_two_queues, &two_queues);
    qos_add_test("stall", "virtio-tmem", test_stall, NULL);
    qos_add_test("iothread/stall", "virtio-tmem", test_stall, &iothread);
    qos_add_test("used-length", "virtio-tmem", test_used_length, NULL);
    qos_add_test("bar-buffer", "virtio-tmem", test_bar_buffer, NULL);
    qos_add_test("iothread/bar-buffer", "virtio-tmem", test_bar_buffer,
                 &iothread);
    qos_add_test("mmio-ring", "virtio-tmem", test_mmio_ring, NULL);
    qos_add_test("iothread/mmio-ring", "virtio-tmem", test_mmio_ring,
                 &iothread);
    qos_add_test("refused-put", "virtio-tmem", test_refused_put, NULL);
    qos_add_test("credits-need-feature", "virtio-tmem",
                 test_credits_need_feature, NULL);
    qos_add_test("credits-generation", "virtio-tmem",
                 test_credits_generation, NULL);
    qos_add_test("iothread/credits-generation", "virtio-tmem",
                 test_credits_generation, &iothread);
    qos_add_test("reset-failure", "virtio-tmem", test_reset_failure, NULL);
    qos_add_test("properties", "virtio-tmem", test_properties, NULL);
    qos_add_test("migration", "virtio-tmem", test_migration, &mig_writeback);
    qos_add_test("migration-ephemeral-off", "virtio-tmem", test_migration,
                 &mig_eph_off);
    qos_add_test("migration-writeback-late", "virtio-tmem", test_migration,
                 &mig_writeback_late);
    qos_add_test("migration-refused", "virtio-tmem", test_migration_refused,
                 &mig);
    qos_add_test("migration-corrupt", "virtio-tmem", test_migration_corrupt,
                 &mig);
    qos_add_test("migration-cancel", "virtio-tmem", test_migration_cancel,
                 &mig);
    qos_add_test("migration-broken", "virtio-tmem", test_migration_broken,
                 &mig);
    qos_add_test("migration-reset", "virtio-tmem", test_migration_reset,
                 &mig);
    qos_add_test("migration-live", "virtio-tmem", test_migration_live, &mig);
    qos_add_test("migration-stall-reset", "virtio-tmem",
                 test_migration_stall_reset, &mig);
    qos_add_test("migration-shared", "virtio-tmem", test_migration_shared,
                 &mig_shared[0]);
    qos_add_test("migration-shared-failed", "virtio-tmem",
                 test_migration_shared_failed, &mig_shared[1]);
    qos_add_test("migration-shared-taken", "virtio-tmem",
                 test_migration_shared_taken, &mig_shared[2]);
    qos_add_test("zsmalloc/round-trip", "virtio-tmem", test_round_trip, &zs);
    qos_add_test("zsmalloc/replace-exclusive-flush", "virtio-tmem",
                 test_replace_exclusive_flush, &zs);
    qos_add_test("zsmalloc/full-batch", "virtio-tmem", test_full_batch, &zs);
    qos_add_test("zsmalloc/pool-limit", "virtio-tmem", test_pool_limit,
                 &zs_small);
    qos_add_test("zsmalloc/writeback", "virtio-tmem", test_writeback,
                 &zs_writeback);
    qos_add_test("resize", "virtio-tmem", test_resize, &resize);
    qos_add_test("auto-shrink", "virtio-tmem", test_auto_shrink,
                 &auto_shrink);
    qos_add_test("migration-resize", "virtio-tmem", test_migration_resize,
                 &mig_resize);
    qos_add_test("resize-ask", "virtio-tmem", test_resize_ask, &resize);
    qos_add_test("resize-image", "virtio-tmem", test_resize_image,
                 &resize_image);
    qos_add_test("hotplug", "virtio-tmem-pci", test_hotplug, NULL);
    qos_add_test("image-lock", "virtio-tmem-pci", test_image_lock, NULL);
}

libqos_init(register_virtio_tmem_test);
