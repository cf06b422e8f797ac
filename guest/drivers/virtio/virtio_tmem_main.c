// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio_tmem - cleancache and frontswap backend on a virtio-tmem device
 *
 * Clean page-cache pages (cleancache: ephemeral, the host may drop them) and
 * swap pages (frontswap: persistent, never lost) go to the host in batches:
 * puts and flushes are copied into preallocated staging buffers and queued,
 * so that a VM exit is paid per batch, not per page.  A batch is sent when
 * it is full, when a get needs the host, on a short timer, and at sync
 * points (swapoff, umount, device removal).
 *
 * Nothing acknowledged is lost: a frontswap store succeeds only if the
 * driver holds a credit from the device, which guarantees room for it (see
 * the "Credits" section of the device specification); without one the
 * store fails at once and the kernel writes the page to its swap device.
 *
 * cleancache and frontswap backends cannot unregister in 5.10, so the
 * module registers them on first probe and cannot be unloaded (no
 * module_exit); the ops fail fast while no device is bound.
 *
 * Copyright (c) 2026 The virtio-tmem authors
 */

#include <linux/cleancache.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/frontswap.h>
#include <linux/hash.h>
#include <linux/highmem.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/page-flags.h>
#include <linux/random.h>
#include <linux/scatterlist.h>
#include <linux/siphash.h>
#include <linux/slab.h>
#include <linux/srcu.h>
#include <linux/swap.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/wait.h>

#include "vtmem_codec.h"

#define VTMEM_MAX_BUFFERS	64U	/* batch buffers per queue, at most */
/* Buffers a burst added are given back after this long without a shortage. */
#define VTMEM_TRIM_DELAY	(10 * HZ)
#define VTMEM_WAIT_TIMEOUT	(30 * HZ)
#define VTMEM_MAX_POOLS		64	/* driver-side pool table */
#define VTMEM_PREFETCH_SLOTS	64	/* read-ahead pages per queue */
/* Flushes a queue can hold back in atomic context before it must grow. */
#define VTMEM_PENDING_MIN	64U
/* Presence filter: counters per page of the device's pool_limit, and bounds. */
#define VTMEM_CF_PER_POOL_PAGE	16
#define VTMEM_CF_MIN		BIT(12)	/* per queue */
#define VTMEM_CF_MAX		BIT(24)	/* per device */

/* ---- parameters ---------------------------------------------------------- */

/*
 * Each parameter with its setter's declaration and its ops; the setters
 * are with the code they drive (section "toggles").
 */
static int cleancache_param_set(const char *val, const struct kernel_param *kp);
static bool cleancache_on = true;
static const struct kernel_param_ops cleancache_param_ops = {
	.set = cleancache_param_set,
	.get = param_get_bool,
};
module_param_cb(cleancache, &cleancache_param_ops, &cleancache_on, 0644);
MODULE_PARM_DESC(cleancache, "Put clean page-cache pages to the host (default: on)");

/* Cleared while frontswap is being drained (off, device removal). */
static int frontswap_param_set(const char *val, const struct kernel_param *kp);
static bool frontswap_on = true;
static const struct kernel_param_ops frontswap_param_ops = {
	.set = frontswap_param_set,
	.get = param_get_bool,
};
module_param_cb(frontswap, &frontswap_param_ops, &frontswap_on, 0644);
MODULE_PARM_DESC(frontswap, "Put swap pages to the host; off brings them all back (default: on)");

static int exclusive_param_set(const char *val, const struct kernel_param *kp);
static bool exclusive_gets = true;
static const struct kernel_param_ops exclusive_param_ops = {
	.set = exclusive_param_set,
	.get = param_get_bool,
};
module_param_cb(exclusive_gets, &exclusive_param_ops, &exclusive_gets, 0644);
MODULE_PARM_DESC(exclusive_gets, "A swap page loaded from the host is removed there (default: on)");

/* Read when a batch buffer is opened: a change applies to the next one. */
static int batch_param_set(const char *val, const struct kernel_param *kp);
static unsigned int batch_size = 128;
static const struct kernel_param_ops batch_param_ops = {
	.set = batch_param_set,
	.get = param_get_uint,
};
module_param_cb(batch_size, &batch_param_ops, &batch_size, 0644);
MODULE_PARM_DESC(batch_size, "Ops per batch, capped by the device's max_batch (default: 128)");

static unsigned int readahead = 31;
module_param(readahead, uint, 0644);
MODULE_PARM_DESC(readahead, "Pages after a missed get fetched in the same batch, 0..64 (default: 31)");

/*
 * Most cleancache gets would miss: the first read of every file asks, and
 * so does every read of a page the host refused or gave back.  The guest
 * answers those itself when its presence filter (see "presence filter")
 * shows that the host cannot hold the page.
 */
static bool cleancache_filter = true;
module_param(cleancache_filter, bool, 0644);
MODULE_PARM_DESC(cleancache_filter, "Cleancache: answer a get in the guest when the host cannot hold the page (default: Y)");

static unsigned int cleancache_filter_counters;
module_param(cleancache_filter_counters, uint, 0444);
MODULE_PARM_DESC(cleancache_filter_counters, "Presence filter counters per queue, read at probe: 0 for 16 per page of the device's pool limit (default), else rounded down to a power of two, 4096..16777216");

static unsigned int flush_us = 2000;
module_param(flush_us, uint, 0644);
MODULE_PARM_DESC(flush_us, "Send a partly filled batch after this many microseconds (default: 2000)");

/*
 * Cleancache puts run with IRQs off and cannot wait for the device: a put
 * that finds every batch buffer of its queue in flight is not staged.  The
 * buffers are what absorbs a host that is slow for a while (descheduled
 * QEMU): each holds max_batch pages, so the staging cost per queue is
 * batch_buffers * max_batch pages (2 MiB with the defaults and the
 * device's max_batch of 128).  A burst of evictions (drop_caches, inode
 * pruning) or a host slower than the guest's reads can outrun that: a put
 * that takes a queue's last free buffer has a worker add one, up to
 * batch_buffers_max (16 MiB), and the added buffers go back once the
 * queue has not run short for VTMEM_TRIM_DELAY (a worker that looks every
 * VTMEM_TRIM_DELAY).  See docs/guest-driver.md for the sizing.
 */
static unsigned int batch_buffers = 4;
module_param(batch_buffers, uint, 0444);
MODULE_PARM_DESC(batch_buffers, "Batch buffers per queue, read at probe (2..64, default: 4)");

static unsigned int batch_buffers_max = 32;
module_param(batch_buffers_max, uint, 0444);
MODULE_PARM_DESC(batch_buffers_max, "Batch buffers a queue may grow to under a burst of cleancache puts, read at probe (batch_buffers..64, default: 32)");

#ifdef CLEANCACHE_PUT_WAS_ACTIVE
/*
 * Put only clean pages that were used more than once (on the active LRU,
 * or deactivated from it): a stream read once is not worth host memory.
 * Needs guest/patches/0003; without it every page counts as active.
 */
static bool active_only;
module_param(active_only, bool, 0644);
MODULE_PARM_DESC(active_only, "Cleancache: put only pages that were active (default: N)");
#endif

/* ---- structures ---------------------------------------------------------- */

enum vtmem_flush_kind { FLUSH_PAGE, FLUSH_OBJECT, FLUSH_POOL, DESTROY };

/*
 * A page read ahead of a get: the next pages of the same object travel in
 * the get's batch (non-exclusive, so the host keeps its copy and an entry
 * may be dropped at any time).  @gen changes whenever the key is written or
 * flushed, so that a read-ahead still in flight cannot bring back old data.
 */
struct vtmem_prefetch {
	u32 pool;
	struct vtmem_oid oid;
	u64 index;
	struct page *page;
	u32 gen;
	u8 state;		/* PF_EMPTY, PF_PENDING, PF_VALID */
};

enum { PF_EMPTY, PF_PENDING, PF_VALID };

/*
 * A flush issued in atomic context while every batch buffer of its queue
 * was in flight.  It is not dropped: lookups treat its keys as absent at
 * once, and it goes out, before any later op of the queue, as soon as a
 * buffer frees.
 */
struct vtmem_pending {
	u32 pool;
	u32 kind;		/* enum vtmem_flush_kind, never DESTROY */
	struct vtmem_oid oid;	/* FLUSH_PAGE, FLUSH_OBJECT */
	u64 index;		/* FLUSH_PAGE */
};

/*
 * Someone waiting for the answer to one op.  A GET's page is written by
 * the device into a driver-owned page and copied to @page on completion,
 * under the queue lock: a waiter that gave up (timeout) is detached under
 * that lock, so a late answer can never write into a page the kernel got
 * back.
 */
struct vtmem_waiter {
	struct completion done;
	struct page *page;	/* GET: where the page goes; else NULL */
	unsigned int status;
	u32 value;
};

/**
 * struct vtmem_req - one batch buffer of a queue
 * @node: free list link
 * @seq: batch number (in flight: order of submission)
 * @b: the codec's view of the batch
 * @hdr: request header
 * @resp: response header
 * @ops: op array
 * @status: per-op statuses
 * @pages: max_batch driver pages: PUT sources from the front (k-th PUT in
 *	@pages[k]), GET destinations from the back (see req_get_page());
 *	nr_put + nr_get <= nr_ops <= max_batch, so they never meet
 * @get_pages: the pages the device writes, one per GET op, in op order
 * @waiter: per op, who waits for its status (NEW_POOL, GET, sync points)
 * @pf: per op, the read-ahead entry a GET fills, and its generation
 * @pf_gen: see @pf
 * @cf_mark: per op, the presence filter generation in which its answer
 *	lowers the key's counters (see cf_answer_locked()), or 0
 * @sg: scatterlist entries for one submission
 * @sgs: the readable and the writable list, for virtqueue_add_sgs()
 * @inflight: handed to the device and not yet used
 */
struct vtmem_req {
	struct list_head node;
	u64 seq;
	struct vtmem_batch b;
	struct virtio_tmem_req_hdr hdr;
	struct virtio_tmem_resp_hdr resp;
	struct virtio_tmem_op *ops;
	struct virtio_tmem_op_status *status;
	struct page **pages;
	struct page **get_pages;
	struct vtmem_waiter **waiter;
	struct vtmem_prefetch **pf;
	u32 *pf_gen;
	u32 *cf_mark;
	struct scatterlist *sg;
	struct scatterlist **sgs;
	bool inflight;
};

/**
 * struct vtmem_queue - a request queue and its batches
 * @dev: owner
 * @vq: the virtqueue
 * @lock: protects everything below and the reqs' contents
 * @filling: the batch being filled, or NULL
 * @free: batch buffers not in use
 * @inflight: batches handed to the device, oldest first
 * @wait: woken when a batch completes
 * @timer: sends a partly filled batch after flush_us
 * @next_seq: number of the next batch
 * @reaped: bumped whenever batches complete (for waiters on @wait)
 * @pending: flushes held back in atomic context, oldest first (see
 *	struct vtmem_pending); they are older than every staged op
 * @nr_pending: entries used in @pending
 * @max_pending: entries allocated in @pending
 * @pf_next: read-ahead slot to reuse next (round robin)
 * @pf: read-ahead cache
 * @ra: where the last hit was; a get at the next index reads ahead
 * @nr_reqs: number of batch buffers now
 * @base_reqs: buffers allocated at probe (batch_buffers), never trimmed
 * @max_reqs: buffers the queue may grow to (batch_buffers_max)
 * @short_at: jiffies of the last put that took the last free buffer
 * @grow_work: adds a buffer (GFP_KERNEL: puts cannot allocate)
 * @reqs: all batch buffers of the queue, @nr_reqs used of @max_reqs
 * @cf_counters: presence filter of the keys of private cleancache pools
 *	that the host may hold, @cf_mask + 1 counters, or NULL (see
 *	"presence filter")
 * @cf_mask: see @cf_counters
 * @cf_used: counters that are not zero
 * @cf_gen: filter generation (never 0), bumped by each reset
 * @cf_resetting: a reset has cleared the counters but the host may still
 *	hold pages counted before: every cleancache get misses
 */
struct vtmem_queue {
	struct vtmem_dev *dev;
	struct virtqueue *vq;
	spinlock_t lock;
	struct vtmem_req *filling;
	struct list_head free;
	struct list_head inflight;
	wait_queue_head_t wait;
	struct hrtimer timer;
	u64 next_seq;
	u64 reaped;
	struct vtmem_pending *pending;
	unsigned int nr_pending;
	unsigned int max_pending;
	unsigned int pf_next;
	struct vtmem_prefetch pf[VTMEM_PREFETCH_SLOTS];
	struct {
		u32 pool;
		struct vtmem_oid oid;
		u64 next;
		bool valid;
	} ra;
	unsigned int nr_reqs;
	unsigned int base_reqs;
	unsigned int max_reqs;
	unsigned long short_at;
	struct work_struct grow_work;
	struct vtmem_req **reqs;
	u8 *cf_counters;
	u32 cf_mask;
	u32 cf_used;
	u32 cf_gen;
	bool cf_resetting;
};

/*
 * A driver-side cleancache pool.  An id is reused only after invalidate_fs
 * (the file system is gone); a pool reclaimed while a file system may still
 * hold its id keeps the id dead forever.
 */
struct vtmem_pool {
	int host_id;		/* -1: gone (its pages are gone with it) */
	bool shared;
	bool released;		/* by invalidate_fs: the id may be reused */
	unsigned long last_used;
};

/* Counters shown in debugfs (virtio_tmem/<name>); only ever incremented. */
struct vtmem_stats {
	u64 puts;		/* cleancache puts tried */
	u64 put_drops;		/* ... dropped: no batch buffer free */
	u64 puts_inactive;	/* ... skipped: the page was never active */
	u64 gets;		/* cleancache gets tried */
	u64 hits;		/* ... that returned a page */
	u64 staging_hits;	/* gets served from a staged, unsent PUT */
	u64 flushes;		/* cleancache invalidations (page, inode) */
	u64 stores;		/* frontswap stores tried */
	u64 store_no_credit;	/* ... refused: no credit (went to disk) */
	u64 loads;		/* frontswap loads */
	u64 load_hits;		/* ... that returned a page */
	u64 invalidates;	/* frontswap invalidations (page, area) */
	u64 batches;		/* batches handed to the device */
	u64 batch_ops;		/* ops in those batches */
	u64 staging_high;	/* most PUT pages staged on one queue at once */
	u64 errors;		/* unexpected statuses, timeouts, full rings */
	u64 lost_pages;		/* acknowledged swap pages the device refused */
	u64 readahead_sent;	/* read-ahead GETs sent */
	u64 readahead_hits;	/* gets served from read-ahead */
	u64 pending_flushes;	/* flushes held back: no buffer, atomic ctx */
	u64 pending_high;	/* most flushes held back on one queue */
	u64 pending_polls;	/* held back and no memory: polled for room */
	u64 pool_reclaims;	/* cleancache pools given back for a new one */
	u64 resize_shrinks;	/* frontswap shrinks the device asked for */
	u64 buffers_grown;	/* batch buffers added under a burst */
	u64 buffers_trimmed;	/* ... and given back after it */
	u64 buffers_grow_failed; /* ... not added: no memory */
	u64 buffers_high;	/* most batch buffers one queue had */
	u64 filter_skips;	/* cleancache gets answered in the guest */
	u64 filter_resets;	/* presence filter resets */
};

struct vtmem_dev {
	struct virtio_device *vdev;
	struct vtmem_queue *queues;
	unsigned int nr_queues;
	unsigned int max_batch;
	unsigned int max_pools;
	bool dead;

	/*
	 * credits (credit_lock): balance = min(credits_seen, credit_cap) -
	 * credits_spent; credit_cap is U64_MAX unless the device capped them
	 * (VIRTIO_TMEM_F_RESIZE, see "resizing")
	 */
	spinlock_t credit_lock;
	u64 credits_seen;
	u64 credits_spent;
	u64 credit_cap;

	/* resizing: the device's requests, answered by resize_work */
	struct work_struct resize_work;

	/* presence filter: its hash key, and its reset (see "presence filter") */
	siphash_key_t cf_key;
	struct work_struct cf_reset_work;

	/* gives back batch buffers that a burst added (see batch_buffers_max) */
	struct delayed_work trim_work;
	u32 cap_gen_acked;

	/* pools (pool_mutex; the table is read locklessly by the ops) */
	struct mutex pool_mutex;
	struct vtmem_pool pools[VTMEM_MAX_POOLS];
	int nr_pools;
	int swap_pool;		/* host id of the persistent pool, or -1 */

	struct vtmem_stats stats;
	struct dentry *debugfs;
};

/*
 * The one device the backends serve; NULL while none is bound.  Ops read
 * it inside an SRCU read section (they may sleep), so that removal can
 * wait for them before freeing anything.  vtmem_mutex serialises probe,
 * removal, pool creation and the toggles.
 */
static struct vtmem_dev __rcu *vtmem;
DEFINE_STATIC_SRCU(vtmem_srcu);
static DEFINE_MUTEX(vtmem_mutex);
static bool backends_registered;

static struct vtmem_dev *vtmem_get(int *idx)
{
	*idx = srcu_read_lock(&vtmem_srcu);
	return srcu_dereference(vtmem, &vtmem_srcu);
}

static void vtmem_put(int idx)
{
	srcu_read_unlock(&vtmem_srcu, idx);
}

static struct vtmem_dev *vtmem_locked(void)
{
	return rcu_dereference_protected(vtmem, lockdep_is_held(&vtmem_mutex));
}

#define stat_inc(d, f)	WRITE_ONCE((d)->stats.f, READ_ONCE((d)->stats.f) + 1)

/* ---- keys and queues -------------------------------------------------------- */

static struct vtmem_oid oid_of_filekey(const struct cleancache_filekey *k)
{
	struct vtmem_oid oid;

	BUILD_BUG_ON(sizeof(k->u.key) != sizeof(oid.id));
	memcpy(oid.id, k->u.key, sizeof(oid.id));
	return oid;
}

static struct vtmem_oid oid_of_swap_type(unsigned int type)
{
	struct vtmem_oid oid = { { type, 0, 0 } };

	return oid;
}

/* All ops on one (pool, object) go through one queue: that is the order. */
static struct vtmem_queue *queue_of(struct vtmem_dev *d, u32 pool,
				    const struct vtmem_oid *oid)
{
	u64 h = pool ^ oid->id[0] ^ (oid->id[1] << 7) ^ (oid->id[2] << 13);

	return &d->queues[hash_64(h, 16) % d->nr_queues];
}

/* ---- presence filter ------------------------------------------------------- */

/*
 * Each queue counts the keys of its private cleancache pools that the host
 * may hold, two counters per key: raised when a put is staged, lowered
 * when the host answers that it refused that put, gave the page back
 * (exclusive GET) or removed it (a FLUSH_PAGE that removed one page).  A
 * get whose counters are not both raised cannot hit, and is answered in
 * the guest (queue_get()).
 *
 * The filter must never call absent a page the host holds.  A get it
 * skips is read from disk; if the page then changes and its put is dropped
 * (no buffer), the host would still hold the old data for a later get
 * that a colliding key lets through.  Hence only an answer about a counted
 * key lowers its counters (the op carries the generation it was counted
 * in, cf_mark), a counter that reaches U8_MAX stays there, and shared pools
 * (other guests put into them) are not counted at all.  What the guest
 * does not see leaves counters raised: pages the host drops by itself,
 * FLUSH_OBJECT.  That costs a get that misses, and fills the filter: once
 * half a queue's counters are raised, cf_reset_work() clears them all and
 * empties the private cleancache pools on the host.
 *
 * Counters change under the queue's lock, as do the ops on their keys
 * (queue_of()): a key is counted and its op staged in one step.
 */
static u64 cf_hash(const struct vtmem_dev *d, const struct vtmem_key *k)
{
	return siphash_4u64(k->oid.id[0], k->oid.id[1], k->oid.id[2],
			    k->index ^ ((u64)k->pool << 48), &d->cf_key);
}

/* Whether @pool is a private cleancache pool: the filter counts its keys. */
static bool cf_counts(struct vtmem_dev *d, const struct vtmem_queue *q,
		      u32 pool)
{
	int i, n = READ_ONCE(d->nr_pools);

	if (!q->cf_counters || (int)pool == READ_ONCE(d->swap_pool))
		return false;
	for (i = 0; i < n; i++)
		if (READ_ONCE(d->pools[i].host_id) == (int)pool)
			return !READ_ONCE(d->pools[i].shared);
	return false;
}

static u8 *cf_counter(const struct vtmem_queue *q, u64 h, unsigned int i)
{
	return &q->cf_counters[(u32)(h >> (32 * i)) & q->cf_mask];
}

static void cf_raise_locked(struct vtmem_dev *d, struct vtmem_queue *q,
			    u64 h)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		u8 *c = cf_counter(q, h, i);

		if (*c == U8_MAX)
			continue;
		if (!*c)
			q->cf_used++;
		(*c)++;
	}
	if (q->cf_used > q->cf_mask / 2 && !q->cf_resetting)
		queue_work(system_long_wq, &d->cf_reset_work);
}

static void cf_lower_locked(struct vtmem_queue *q, u64 h)
{
	unsigned int i;

	for (i = 0; i < 2; i++) {
		u8 *c = cf_counter(q, h, i);

		/* saturated: its true count is lost until the next reset */
		if (*c == U8_MAX || WARN_ON_ONCE(!*c))
			continue;
		if (!--(*c))
			q->cf_used--;
	}
}

static bool cf_may_hold_locked(const struct vtmem_queue *q, u64 h)
{
	return *cf_counter(q, h, 0) && *cf_counter(q, h, 1);
}

/*
 * Whether a get of @k is answered in the guest: the filter shows that the
 * host cannot hold the page, or a reset is under way.
 */
static bool cf_absent_locked(struct vtmem_dev *d, struct vtmem_queue *q,
			     const struct vtmem_key *k)
{
	if (!cf_counts(d, q, k->pool))
		return false;
	return q->cf_resetting ||
	       (READ_ONCE(cleancache_filter) &&
		!cf_may_hold_locked(q, cf_hash(d, k)));
}

/*
 * Count an ephemeral put staged in slot @slot of @r, or mark an exclusive
 * GET or a FLUSH_PAGE there, whose answer may lower the counters.  A put
 * counts while resetting too: it may reach the host after the FLUSH_POOL.
 * A GET or FLUSH_PAGE does not: it may find a page counted before the
 * reset.
 */
static void cf_note_locked(struct vtmem_dev *d, struct vtmem_queue *q,
			   struct vtmem_req *r, int slot,
			   const struct vtmem_key *k)
{
	const struct virtio_tmem_op *op;

	if (slot < 0 || !cf_counts(d, q, k->pool))
		return;
	op = &r->ops[slot];
	switch (op->opcode) {
	case VIRTIO_TMEM_OP_PUT:
		if (op->flags & VIRTIO_TMEM_PUT_CREDIT)
			return;
		cf_raise_locked(d, q, cf_hash(d, k));
		break;
	case VIRTIO_TMEM_OP_GET:
		if (q->cf_resetting || !(op->flags & VIRTIO_TMEM_GET_EXCLUSIVE))
			return;
		break;
	case VIRTIO_TMEM_OP_FLUSH_PAGE:
		if (q->cf_resetting)
			return;
		break;
	default:
		return;
	}
	r->cf_mark[slot] = q->cf_gen;
}

/* The device answered op @i of @r with status @st. */
static void cf_answer_locked(struct vtmem_dev *d, struct vtmem_queue *q,
			     struct vtmem_req *r, unsigned int i,
			     unsigned int st)
{
	struct vtmem_key k;
	bool gone;

	if (r->cf_mark[i] != q->cf_gen)
		return;
	switch (r->ops[i].opcode) {
	case VIRTIO_TMEM_OP_PUT:
		gone = st != VIRTIO_TMEM_S_OK;
		break;
	case VIRTIO_TMEM_OP_GET:
		gone = st == VIRTIO_TMEM_S_OK;
		break;
	default:	/* FLUSH_PAGE: the value is the pages removed */
		gone = st == VIRTIO_TMEM_S_OK &&
		       le32_to_cpu(r->status[i].value) == 1;
		break;
	}
	if (!gone)
		return;
	vtmem_op_key(&r->ops[i], &k);
	cf_lower_locked(q, cf_hash(d, &k));
}

/* ---- batches ---------------------------------------------------------------- */

static void req_reset(struct vtmem_dev *d, struct vtmem_queue *q,
		      struct vtmem_req *r)
{
	unsigned int max = min(READ_ONCE(batch_size), d->max_batch);

	vtmem_batch_init(&r->b, &r->hdr, r->ops, max ? max : 1,
			 q->next_seq++);
	memset(r->waiter, 0, d->max_batch * sizeof(*r->waiter));
	memset(r->pf, 0, d->max_batch * sizeof(*r->pf));
	memset(r->cf_mark, 0, d->max_batch * sizeof(*r->cf_mark));
}

/* The driver page the device writes the next GET of @r into. */
static struct page *req_get_page(struct vtmem_dev *d, struct vtmem_req *r)
{
	return r->pages[d->max_batch - 1 - r->b.nr_get];
}

/*
 * Hand a batch to the device: one scatterlist for the device-readable part
 * (header, ops, the PUT pages) and one for the device-writable part
 * (response header, statuses, the GET pages), each with its own end mark.
 */
static int req_submit(struct vtmem_dev *d, struct vtmem_queue *q,
		      struct vtmem_req *r)
{
	struct scatterlist *sg = r->sg;
	unsigned int n = 0, out, i;
	int err;

	sg_init_table(sg, 4 + 2 * d->max_batch);
	sg_set_buf(&sg[n++], &r->hdr, sizeof(r->hdr));
	sg_set_buf(&sg[n++], r->ops, r->b.nr_ops * sizeof(*r->ops));
	for (i = 0; i < r->b.nr_put; i++)
		sg_set_page(&sg[n++], r->pages[i], PAGE_SIZE, 0);
	sg_mark_end(&sg[n - 1]);
	out = n;
	sg_set_buf(&sg[n++], &r->resp, sizeof(r->resp));
	sg_set_buf(&sg[n++], r->status, r->b.nr_ops * sizeof(*r->status));
	for (i = 0; i < r->b.nr_get; i++)
		sg_set_page(&sg[n++], r->get_pages[i], PAGE_SIZE, 0);
	sg_mark_end(&sg[n - 1]);
	r->sgs[0] = &sg[0];
	r->sgs[1] = &sg[out];
	err = virtqueue_add_sgs(q->vq, r->sgs, 1, 1, r, GFP_ATOMIC);
	if (err)
		return err;
	r->inflight = true;
	list_add_tail(&r->node, &q->inflight);
	stat_inc(d, batches);
	WRITE_ONCE(d->stats.batch_ops, d->stats.batch_ops + r->b.nr_ops);
	virtqueue_kick(q->vq);
	return 0;
}

static ktime_t flush_delay(void)
{
	return ns_to_ktime((u64)max(READ_ONCE(flush_us), 1U) * NSEC_PER_USEC);
}

/*
 * Send the batch being filled, if any.  Called with q->lock held.  Once
 * the device is dead nothing is submitted and the timer is not re-armed:
 * removal cancels the timer and then frees the virtqueues.
 */
static void queue_flush_locked(struct vtmem_dev *d, struct vtmem_queue *q)
{
	struct vtmem_req *r = q->filling;

	if (!r || !r->b.nr_ops || d->dead)
		return;
	if (req_submit(d, q, r)) {
		/* ring full: the timer tries again */
		stat_inc(d, errors);
		hrtimer_start(&q->timer, flush_delay(),
			      HRTIMER_MODE_REL);
		return;
	}
	q->filling = NULL;
	hrtimer_try_to_cancel(&q->timer);
}

/*
 * The batch being filled if it has room for one more op, else a new one
 * (the full one is sent first); NULL if every buffer is in use.  Never
 * waits.  Called with q->lock held.
 */
static struct vtmem_req *queue_open_locked(struct vtmem_dev *d,
					   struct vtmem_queue *q)
{
	struct vtmem_req *r = q->filling;

	if (d->dead)
		return NULL;
	if (r && !vtmem_batch_full(&r->b))
		return r;
	if (r) {
		queue_flush_locked(d, q);
		if (q->filling)
			return NULL;	/* the ring is full */
	}
	if (list_empty(&q->free))
		return NULL;
	r = list_first_entry(&q->free, struct vtmem_req, node);
	list_del(&r->node);
	req_reset(d, q, r);
	q->filling = r;
	hrtimer_start(&q->timer, flush_delay(), HRTIMER_MODE_REL);
	return r;
}

static int batch_add_flush(struct vtmem_batch *b, enum vtmem_flush_kind kind,
			   u32 pool, const struct vtmem_oid *oid, u64 index)
{
	switch (kind) {
	case FLUSH_PAGE:
		return vtmem_batch_flush_page(b, pool, oid, index);
	case FLUSH_OBJECT:
		return vtmem_batch_flush_object(b, pool, oid);
	case FLUSH_POOL:
		return vtmem_batch_flush_pool(b, pool);
	case DESTROY:
		return vtmem_batch_destroy_pool(b, pool);
	}
	return -EINVAL;
}

/*
 * Move held-back flushes into batches, oldest first, and send them: they
 * are late already.  Returns true when none is left.  Called with q->lock
 * held.
 */
static bool pending_send_locked(struct vtmem_dev *d, struct vtmem_queue *q)
{
	unsigned int n = 0;

	while (n < q->nr_pending) {
		const struct vtmem_pending *p = &q->pending[n];
		struct vtmem_req *r = queue_open_locked(d, q);

		if (!r)
			break;
		batch_add_flush(&r->b, p->kind, p->pool, &p->oid, p->index);
		n++;
	}
	if (!n)
		return !q->nr_pending;
	q->nr_pending -= n;
	memmove(q->pending, q->pending + n,
		q->nr_pending * sizeof(*q->pending));
	queue_flush_locked(d, q);
	return !q->nr_pending;
}

static void credits_update(struct vtmem_dev *d, u64 credits)
{
	unsigned long flags;

	spin_lock_irqsave(&d->credit_lock, flags);
	if (credits > d->credits_seen)
		d->credits_seen = credits;
	spin_unlock_irqrestore(&d->credit_lock, flags);
}

/*
 * A used batch: hand statuses (and GET pages) to waiters, count errors,
 * free the buffer.  Called with q->lock held.
 */
static void req_complete(struct vtmem_dev *d, struct vtmem_queue *q,
			 struct vtmem_req *r)
{
	bool ok = le32_to_cpu(r->resp.status) == VIRTIO_TMEM_S_OK;
	unsigned int i, nr_get = 0;

	credits_update(d, le64_to_cpu(r->resp.credits));
	for (i = 0; i < r->b.nr_ops; i++) {
		unsigned int st = ok ? le32_to_cpu(r->status[i].status) :
				       VIRTIO_TMEM_S_BAD_BATCH;
		struct vtmem_waiter *w = r->waiter[i];
		struct page *got = NULL;

		if (r->ops[i].opcode == VIRTIO_TMEM_OP_GET)
			got = r->get_pages[nr_get++];
		if (r->ops[i].opcode == VIRTIO_TMEM_OP_PUT &&
		    (r->ops[i].flags & VIRTIO_TMEM_PUT_CREDIT) &&
		    st != VIRTIO_TMEM_S_OK) {
			/* an acknowledged swap page the host did not take */
			stat_inc(d, lost_pages);
			pr_err_ratelimited("virtio_tmem: swap page refused by the device (status %u)\n",
					   st);
		} else if (st != VIRTIO_TMEM_S_OK &&
			   st != VIRTIO_TMEM_S_NOT_FOUND &&
			   st != VIRTIO_TMEM_S_NO_SPACE) {
			stat_inc(d, errors);
		}
		cf_answer_locked(d, q, r, i, st);
		if (r->pf[i] && r->pf[i]->gen == r->pf_gen[i] &&
		    r->pf[i]->state == PF_PENDING)
			r->pf[i]->state = st == VIRTIO_TMEM_S_OK ? PF_VALID :
							   PF_EMPTY;
		if (w) {
			if (w->page && got && st == VIRTIO_TMEM_S_OK)
				copy_highpage(w->page, got);
			w->status = st;
			w->value = le32_to_cpu(r->status[i].value);
			complete(&w->done);
		}
	}
	list_del(&r->node);
	r->inflight = false;
	list_add(&r->node, &q->free);
}

/*
 * Collect used batches; held-back flushes take the freed buffers first.
 * Returns true if any batch completed.  Called with q->lock held.
 */
static bool queue_reap_locked(struct vtmem_dev *d, struct vtmem_queue *q)
{
	struct vtmem_req *r;
	unsigned int len;
	bool any = false;

	while ((r = virtqueue_get_buf(q->vq, &len))) {
		req_complete(d, q, r);
		any = true;
	}
	if (any) {
		WRITE_ONCE(q->reaped, q->reaped + 1);
		pending_send_locked(d, q);
		wake_up_all(&q->wait);
	}
	return any;
}

static void vtmem_vq_done(struct virtqueue *vq)
{
	struct vtmem_dev *d = vq->vdev->priv;
	struct vtmem_queue *q = &d->queues[vq->index];
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	queue_reap_locked(d, q);
	spin_unlock_irqrestore(&q->lock, flags);
}

static enum hrtimer_restart vtmem_timer(struct hrtimer *t)
{
	struct vtmem_queue *q = container_of(t, struct vtmem_queue, timer);
	struct vtmem_dev *d = q->dev;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	queue_flush_locked(d, q);
	spin_unlock_irqrestore(&q->lock, flags);
	return HRTIMER_NORESTART;
}

static unsigned int staged_pages(struct vtmem_queue *q)
{
	unsigned int n = q->filling ? q->filling->b.nr_put : 0;
	struct vtmem_req *r;

	list_for_each_entry(r, &q->inflight, node)
		n += r->b.nr_put;
	return n;
}

/*
 * A batch with room for one more op, after every held-back flush of the
 * queue (ops of one queue reach the device in the order they were
 * issued).  With @may_sleep the caller waits for a buffer; in atomic
 * context it gets NULL when none is free.  NULL also once the device is
 * dead.  Called and returns with q->lock held (it may drop it to sleep).
 */
static struct vtmem_req *queue_room_locked(struct vtmem_dev *d,
					   struct vtmem_queue *q,
					   bool may_sleep,
					   unsigned long *flags)
{
	for (;;) {
		struct vtmem_req *r;

		if (d->dead)
			return NULL;
		if (pending_send_locked(d, q)) {
			r = queue_open_locked(d, q);
			if (r)
				return r;
		}
		if (queue_reap_locked(d, q))
			continue;
		if (!may_sleep)
			return NULL;
		spin_unlock_irqrestore(&q->lock, *flags);
		wait_event_timeout(q->wait, !list_empty(&q->free) ||
				   READ_ONCE(d->dead), HZ / 10);
		spin_lock_irqsave(&q->lock, *flags);
	}
}

/*
 * Hold back a flush that found no room in atomic context.  The array
 * grows (GFP_ATOMIC); if it cannot, the queue is polled for a buffer, with
 * no deadline: a flush is never dropped, and the device must answer
 * eventually (or be removed, which sets d->dead).  Called with q->lock
 * held.
 */
static void pending_add_locked(struct vtmem_dev *d, struct vtmem_queue *q,
			       enum vtmem_flush_kind kind, u32 pool,
			       const struct vtmem_oid *oid, u64 index)
{
	struct vtmem_pending *p;

	while (q->nr_pending == q->max_pending) {
		unsigned int max = max(2 * q->max_pending, VTMEM_PENDING_MIN);

		p = krealloc(q->pending, max * sizeof(*p),
			     GFP_ATOMIC | __GFP_NOWARN);
		if (p) {
			q->pending = p;
			q->max_pending = max;
			break;
		}
		stat_inc(d, pending_polls);
		if (d->dead)
			return;
		queue_reap_locked(d, q);
		cpu_relax();
	}
	p = &q->pending[q->nr_pending++];
	p->kind = kind;
	p->pool = pool;
	p->oid = oid ? *oid : (struct vtmem_oid){ { 0 } };
	p->index = index;
	stat_inc(d, pending_flushes);
	if (q->nr_pending > READ_ONCE(d->stats.pending_high))
		WRITE_ONCE(d->stats.pending_high, q->nr_pending);
}

/* Forget a waiter whose op was not answered in time. */
static void waiter_detach_locked(struct vtmem_dev *d, struct vtmem_queue *q,
				 struct vtmem_waiter *w)
{
	unsigned int j, i;

	for (j = 0; j < q->nr_reqs; j++)
		for (i = 0; i < d->max_batch; i++)
			if (q->reqs[j]->waiter[i] == w)
				q->reqs[j]->waiter[i] = NULL;
}

static void waiter_init(struct vtmem_waiter *w, struct page *page)
{
	init_completion(&w->done);
	w->page = page;
	w->status = VIRTIO_TMEM_S_DEVICE_ERROR;
	w->value = 0;
}

/* Send what is queued on @q now and wait for @w's op to be answered. */
static unsigned int queue_sync(struct vtmem_dev *d, struct vtmem_queue *q,
			       struct vtmem_waiter *w, unsigned long *flags)
{
	unsigned long left;

	queue_flush_locked(d, q);
	spin_unlock_irqrestore(&q->lock, *flags);
	left = wait_for_completion_timeout(&w->done, VTMEM_WAIT_TIMEOUT);
	spin_lock_irqsave(&q->lock, *flags);
	if (left || completion_done(&w->done))
		return w->status;
	/*
	 * The device is wedged: nobody may complete @w, nor write into its
	 * page, once we return.  Its op stays in flight; a GET's page is the
	 * driver's (req_get_page()).
	 */
	waiter_detach_locked(d, q, w);
	stat_inc(d, errors);
	dev_err_ratelimited(&d->vdev->dev, "no answer from the device in %d s\n",
			    VTMEM_WAIT_TIMEOUT / HZ);
	return VIRTIO_TMEM_S_DEVICE_ERROR;
}

/* True once every op issued on @q before batch @mark was numbered is done. */
static bool queue_done_before(struct vtmem_dev *d, struct vtmem_queue *q,
			      u64 mark)
{
	struct vtmem_req *r;
	unsigned long flags;
	bool done = true;

	spin_lock_irqsave(&q->lock, flags);
	queue_flush_locked(d, q);
	if (q->filling && q->filling->b.nr_ops && q->filling->seq < mark)
		done = false;
	list_for_each_entry(r, &q->inflight, node)
		if (r->seq < mark)
			done = false;
	spin_unlock_irqrestore(&q->lock, flags);
	return done || READ_ONCE(d->dead);
}

/*
 * Send every op issued on @q so far, held-back flushes included, and wait
 * until the device has done them (ops issued meanwhile are not waited
 * for).  Gives up after @timeout jiffies; returns false then.
 */
static bool queue_drain(struct vtmem_dev *d, struct vtmem_queue *q,
			unsigned long timeout)
{
	unsigned long deadline = jiffies + timeout, flags;
	bool forever = timeout == MAX_SCHEDULE_TIMEOUT;
	bool sent;
	u64 mark;

	for (;;) {
		spin_lock_irqsave(&q->lock, flags);
		sent = d->dead || pending_send_locked(d, q);
		mark = q->next_seq;
		spin_unlock_irqrestore(&q->lock, flags);
		if (sent)
			break;
		if (!forever && time_after(jiffies, deadline))
			return false;
		wait_event_timeout(q->wait, !list_empty(&q->free) ||
				   READ_ONCE(d->dead), HZ / 10);
	}
	for (;;) {
		u64 reaped = READ_ONCE(q->reaped);

		if (queue_done_before(d, q, mark))
			return true;
		if (!forever && time_after(jiffies, deadline))
			return false;
		wait_event_timeout(q->wait, READ_ONCE(q->reaped) != reaped ||
				   READ_ONCE(d->dead), HZ / 10);
	}
}

/* ---- read-ahead ----------------------------------------------------------- */

static bool pf_match(const struct vtmem_prefetch *e, u32 pool,
		     const struct vtmem_oid *oid, u64 index, bool any_index,
		     bool any_oid)
{
	if (e->state == PF_EMPTY || e->pool != pool)
		return false;
	if (any_oid)
		return true;
	if (memcmp(&e->oid, oid, sizeof(*oid)))
		return false;
	return any_index || e->index == index;
}

/* A key is written or flushed: its read-ahead copies are stale. */
static void pf_invalidate_locked(struct vtmem_queue *q, u32 pool,
				 const struct vtmem_oid *oid, u64 index,
				 bool any_index, bool any_oid)
{
	unsigned int i;

	for (i = 0; i < VTMEM_PREFETCH_SLOTS; i++) {
		struct vtmem_prefetch *e = &q->pf[i];

		if (pf_match(e, pool, oid, index, any_index, any_oid)) {
			e->state = PF_EMPTY;
			e->gen++;
		}
	}
}

/* Remember a hit: a get of the next page of the object will read ahead. */
static void ra_hit_locked(struct vtmem_queue *q, u32 pool,
			  const struct vtmem_oid *oid, u64 index)
{
	q->ra.pool = pool;
	q->ra.oid = *oid;
	q->ra.next = index + 1;
	q->ra.valid = true;
}

static bool ra_wanted_locked(struct vtmem_queue *q, u32 pool,
			     const struct vtmem_oid *oid, u64 index)
{
	return q->ra.valid && q->ra.pool == pool && q->ra.next == index &&
	       !memcmp(&q->ra.oid, oid, sizeof(*oid));
}

/* A read-ahead copy of the key, taken out of the cache; NULL if none. */
static struct vtmem_prefetch *pf_take_locked(struct vtmem_queue *q, u32 pool,
					     const struct vtmem_oid *oid,
					     u64 index)
{
	unsigned int i;

	for (i = 0; i < VTMEM_PREFETCH_SLOTS; i++) {
		struct vtmem_prefetch *e = &q->pf[i];

		if (e->state == PF_VALID &&
		    pf_match(e, pool, oid, index, false, false))
			return e;
	}
	return NULL;
}

/*
 * Add non-exclusive GETs of the pages after @index to the batch, as far as
 * it has room, into read-ahead slots (oldest reused first).
 */
static void pf_request_locked(struct vtmem_dev *d, struct vtmem_queue *q,
			      struct vtmem_req *r, u32 pool,
			      const struct vtmem_oid *oid, u64 index)
{
	unsigned int n, want = min_t(unsigned int, READ_ONCE(readahead),
				     VTMEM_PREFETCH_SLOTS);
	struct vtmem_key key = { pool, *oid, index };

	for (n = 1; n <= want && !vtmem_batch_full(&r->b); n++) {
		struct vtmem_prefetch *e;
		int slot;

		if (index + n < index)
			break;
		if (pf_take_locked(q, pool, oid, index + n))
			continue;
		key.index = index + n;
		if (cf_absent_locked(d, q, &key))
			continue;
		e = &q->pf[q->pf_next];
		q->pf_next = (q->pf_next + 1) % VTMEM_PREFETCH_SLOTS;
		if (e->state == PF_PENDING)
			break;	/* the cache is all in flight: enough */
		e->pool = pool;
		e->oid = *oid;
		e->index = index + n;
		e->state = PF_PENDING;
		e->gen++;
		r->get_pages[r->b.nr_get] = e->page;
		slot = vtmem_batch_get(&r->b, pool, oid, index + n, false);
		r->pf[slot] = e;
		r->pf_gen[slot] = e->gen;
		stat_inc(d, readahead_sent);
	}
}

/* ---- ops that go through the batches --------------------------------------- */

static bool pending_covers(const struct vtmem_pending *p,
			   const struct vtmem_key *page)
{
	static const enum vtmem_key_scope scope[] = {
		[FLUSH_PAGE] = VTMEM_KEY_PAGE,
		[FLUSH_OBJECT] = VTMEM_KEY_OBJECT,
		[FLUSH_POOL] = VTMEM_KEY_POOL,
		[DESTROY] = VTMEM_KEY_POOL,
	};
	struct vtmem_key k = { p->pool, p->oid, p->index };

	return vtmem_key_covers(scope[p->kind], &k, page);
}

/*
 * The newest op of batch @r on @page: the staging page of a PUT,
 * ERR_PTR(-ENOENT) for an op that makes the key absent, NULL if none.
 */
static struct page *req_lookup(struct vtmem_req *r,
			       const struct vtmem_key *page)
{
	int i, put = r->b.nr_put;

	for (i = r->b.nr_ops - 1; i >= 0; i--) {
		const struct virtio_tmem_op *op = &r->ops[i];
		enum vtmem_key_scope scope;
		struct vtmem_key k;

		if (op->opcode == VIRTIO_TMEM_OP_PUT)
			put--;
		scope = vtmem_op_key(op, &k);
		if (!vtmem_key_covers(scope, &k, page))
			continue;
		if (op->opcode == VIRTIO_TMEM_OP_PUT)
			return r->pages[put];
		/* a non-exclusive GET (read-ahead) leaves the key */
		if (op->opcode != VIRTIO_TMEM_OP_GET ||
		    (op->flags & VIRTIO_TMEM_GET_EXCLUSIVE))
			return ERR_PTR(-ENOENT);
	}
	return NULL;
}

/*
 * Find the newest op of the queue on (pool, oid, index): a PUT whose page
 * is still in a staging buffer, or an op that makes the key absent (a
 * held-back flush is newer than any staged op).  Returns the staging page
 * of a PUT, ERR_PTR(-ENOENT) if the key is known absent, NULL if the host
 * must be asked.  Called with q->lock held.
 */
static struct page *staged_lookup(struct vtmem_queue *q, u32 pool,
				  const struct vtmem_oid *oid, u64 index)
{
	const struct vtmem_key page = { pool, *oid, index };
	struct vtmem_req *r;
	struct page *found;
	int n;

	for (n = q->nr_pending; n--; )
		if (pending_covers(&q->pending[n], &page))
			return ERR_PTR(-ENOENT);
	/* newest first: the batch being filled, then those in flight */
	if (q->filling) {
		found = req_lookup(q->filling, &page);
		if (found)
			return found;
	}
	list_for_each_entry_reverse(r, &q->inflight, node) {
		found = req_lookup(r, &page);
		if (found)
			return found;
	}
	return NULL;
}

/* ---- batch buffers that grow under a burst ------------------------------ */

static void req_free(struct vtmem_dev *d, struct vtmem_req *r)
{
	unsigned int k;

	for (k = 0; r->pages && k < d->max_batch; k++)
		if (r->pages[k])
			__free_page(r->pages[k]);
	kfree(r->pages);
	kfree(r->get_pages);
	kfree(r->waiter);
	kfree(r->pf);
	kfree(r->pf_gen);
	kfree(r->cf_mark);
	kfree(r->ops);
	kfree(r->status);
	kfree(r->sg);
	kfree(r->sgs);
	kfree(r);
}

static struct vtmem_req *req_alloc(struct vtmem_dev *d, gfp_t gfp)
{
	unsigned int n = d->max_batch, k;
	struct vtmem_req *r = kzalloc(sizeof(*r), gfp);

	if (!r)
		return NULL;
	r->ops = kcalloc(n, sizeof(*r->ops), gfp);
	r->status = kcalloc(n, sizeof(*r->status), gfp);
	r->pages = kcalloc(n, sizeof(*r->pages), gfp);
	r->get_pages = kcalloc(n, sizeof(*r->get_pages), gfp);
	r->waiter = kcalloc(n, sizeof(*r->waiter), gfp);
	r->pf = kcalloc(n, sizeof(*r->pf), gfp);
	r->pf_gen = kcalloc(n, sizeof(*r->pf_gen), gfp);
	r->cf_mark = kcalloc(n, sizeof(*r->cf_mark), gfp);
	r->sg = kcalloc(4 + 2 * n, sizeof(*r->sg), gfp);
	r->sgs = kcalloc(2, sizeof(*r->sgs), gfp);
	if (!r->ops || !r->status || !r->pages || !r->get_pages ||
	    !r->waiter || !r->pf || !r->pf_gen || !r->cf_mark || !r->sg ||
	    !r->sgs)
		goto fail;
	for (k = 0; k < n; k++) {
		r->pages[k] = alloc_page(gfp);
		if (!r->pages[k])
			goto fail;
	}
	return r;
fail:
	req_free(d, r);
	return NULL;
}

/*
 * A put that cannot wait took the queue's last free buffer, or found
 * none: have a buffer added before the next one needs it.  Called with
 * q->lock held (IRQs off: queue_work() is safe there).
 */
static void queue_short_locked(struct vtmem_dev *d, struct vtmem_queue *q)
{
	q->short_at = jiffies;
	if (q->nr_reqs < q->max_reqs && !d->dead)
		queue_work(system_unbound_wq, &q->grow_work);
}

/*
 * Add one batch buffer to a queue that ran short.  The allocation may not
 * push the guest into hard reclaim for it (__GFP_NORETRY): a put dropped
 * costs one disk read, an OOM far more.
 */
static void queue_grow_work(struct work_struct *work)
{
	struct vtmem_queue *q = container_of(work, struct vtmem_queue,
					     grow_work);
	struct vtmem_dev *d = q->dev;
	struct vtmem_req *r;
	unsigned long flags;

	r = req_alloc(d, GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
	if (!r) {
		stat_inc(d, buffers_grow_failed);
		return;
	}
	spin_lock_irqsave(&q->lock, flags);
	if (d->dead || q->nr_reqs >= q->max_reqs) {
		spin_unlock_irqrestore(&q->lock, flags);
		req_free(d, r);
		return;
	}
	q->reqs[q->nr_reqs++] = r;
	list_add_tail(&r->node, &q->free);
	stat_inc(d, buffers_grown);
	if (q->nr_reqs > READ_ONCE(d->stats.buffers_high))
		WRITE_ONCE(d->stats.buffers_high, q->nr_reqs);
	/* held-back flushes go first, as whenever a buffer frees up */
	pending_send_locked(d, q);
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up_all(&q->wait);
	queue_delayed_work(system_unbound_wq, &d->trim_work, VTMEM_TRIM_DELAY);
}

/*
 * Take the free buffers above base_reqs off a queue that has not run short
 * for VTMEM_TRIM_DELAY, onto @gone.  Returns true if the queue keeps
 * buffers above its base.  Called with q->lock held.
 */
static bool queue_trim_locked(struct vtmem_queue *q, struct list_head *gone)
{
	struct vtmem_req *r, *tmp;
	unsigned int j;

	if (time_before(jiffies, q->short_at + VTMEM_TRIM_DELAY))
		return q->nr_reqs > q->base_reqs;
	list_for_each_entry_safe(r, tmp, &q->free, node) {
		if (q->nr_reqs == q->base_reqs)
			break;
		for (j = 0; q->reqs[j] != r; j++)
			;
		q->reqs[j] = q->reqs[--q->nr_reqs];
		list_move(&r->node, gone);
	}
	return q->nr_reqs > q->base_reqs;
}

static void vtmem_trim_work(struct work_struct *work)
{
	struct vtmem_dev *d = container_of(to_delayed_work(work),
					   struct vtmem_dev, trim_work);
	struct vtmem_req *r, *tmp;
	unsigned long flags;
	bool again = false;
	unsigned int i;
	LIST_HEAD(gone);

	for (i = 0; i < d->nr_queues; i++) {
		struct vtmem_queue *q = &d->queues[i];

		spin_lock_irqsave(&q->lock, flags);
		again |= queue_trim_locked(q, &gone);
		spin_unlock_irqrestore(&q->lock, flags);
	}
	list_for_each_entry_safe(r, tmp, &gone, node) {
		req_free(d, r);
		stat_inc(d, buffers_trimmed);
	}
	if (again && !READ_ONCE(d->dead))
		queue_delayed_work(system_unbound_wq, &d->trim_work,
				   VTMEM_TRIM_DELAY);
}

/* Queue a PUT; copies @page into a staging page.  Returns 0 if queued. */
static int queue_put(struct vtmem_dev *d, u32 pool,
		     const struct vtmem_oid *oid, u64 index, struct page *page,
		     bool credit, bool may_sleep)
{
	struct vtmem_queue *q = queue_of(d, pool, oid);
	const struct vtmem_key key = { pool, *oid, index };
	unsigned long flags;
	struct vtmem_req *r;
	unsigned int staged;
	int slot;

	spin_lock_irqsave(&q->lock, flags);
	r = queue_room_locked(d, q, may_sleep, &flags);
	if (!may_sleep && list_empty(&q->free))
		queue_short_locked(d, q);
	/* dropped or not, the page changed: a read-ahead copy is stale */
	pf_invalidate_locked(q, pool, oid, index, false, false);
	if (!r) {
		spin_unlock_irqrestore(&q->lock, flags);
		return -ENOSPC;
	}
	copy_highpage(r->pages[r->b.nr_put], page);
	slot = vtmem_batch_put(&r->b, pool, oid, index, credit);
	WARN_ON_ONCE(slot < 0);
	cf_note_locked(d, q, r, slot, &key);
	staged = staged_pages(q);
	if (staged > READ_ONCE(d->stats.staging_high))
		WRITE_ONCE(d->stats.staging_high, staged);
	if (vtmem_batch_full(&r->b))
		queue_flush_locked(d, q);
	spin_unlock_irqrestore(&q->lock, flags);
	return 0;
}

/*
 * Queue a flush.  Flushes are never dropped: with @may_sleep the caller
 * waits for a buffer; in atomic context a flush that finds none is held
 * back (pending_add_locked()) and its keys read as absent until it is
 * sent.  With @sync (which needs @may_sleep), wait until the device has
 * done it.  Read-ahead copies of the keys go at once, whatever happens.
 */
static void queue_flush_op(struct vtmem_dev *d, enum vtmem_flush_kind kind,
			   u32 pool, const struct vtmem_oid *oid, u64 index,
			   bool may_sleep, bool sync)
{
	static const struct vtmem_oid none;
	struct vtmem_queue *q = queue_of(d, pool, oid ? oid : &none);
	struct vtmem_waiter w;
	unsigned long flags;
	struct vtmem_req *r;
	int slot;

	spin_lock_irqsave(&q->lock, flags);
	r = queue_room_locked(d, q, may_sleep || sync, &flags);
	/* after the wait: a read-ahead sent meanwhile holds old data too */
	pf_invalidate_locked(q, pool, oid, index, kind != FLUSH_PAGE,
			     kind == FLUSH_POOL || kind == DESTROY);
	if (!r) {
		if (!d->dead)
			pending_add_locked(d, q, kind, pool, oid, index);
		spin_unlock_irqrestore(&q->lock, flags);
		return;
	}
	slot = batch_add_flush(&r->b, kind, pool, oid, index);
	if (kind == FLUSH_PAGE) {
		const struct vtmem_key key = { pool, *oid, index };

		cf_note_locked(d, q, r, slot, &key);
	}
	if (sync) {
		waiter_init(&w, NULL);
		r->waiter[slot] = &w;
		queue_sync(d, q, &w, &flags);
	} else if (vtmem_batch_full(&r->b)) {
		queue_flush_locked(d, q);
	}
	spin_unlock_irqrestore(&q->lock, flags);
}

/*
 * Get a page: from staging if a put of it has not reached the host yet,
 * else from the host, in order behind everything queued before it.  May
 * sleep.  Returns the op status (VIRTIO_TMEM_S_*).
 */
static unsigned int queue_get(struct vtmem_dev *d, u32 pool,
			      const struct vtmem_oid *oid, u64 index,
			      struct page *page, bool exclusive)
{
	struct vtmem_queue *q = queue_of(d, pool, oid);
	const struct vtmem_key key = { pool, *oid, index };
	struct vtmem_prefetch *e = NULL;
	struct vtmem_waiter w;
	unsigned long flags;
	struct vtmem_req *r;
	struct page *staged;
	unsigned int st;
	int slot;

	spin_lock_irqsave(&q->lock, flags);
	if (cf_absent_locked(d, q, &key)) {
		spin_unlock_irqrestore(&q->lock, flags);
		stat_inc(d, filter_skips);
		return VIRTIO_TMEM_S_NOT_FOUND;
	}
	staged = staged_lookup(q, pool, oid, index);
	if (IS_ERR(staged)) {
		spin_unlock_irqrestore(&q->lock, flags);
		return VIRTIO_TMEM_S_NOT_FOUND;
	}
	if (staged) {
		copy_highpage(page, staged);
		stat_inc(d, staging_hits);
	} else {
		e = pf_take_locked(q, pool, oid, index);
		if (e) {
			copy_highpage(page, e->page);
			e->state = PF_EMPTY;
			e->gen++;
			ra_hit_locked(q, pool, oid, index);
			stat_inc(d, readahead_hits);
		}
	}
	if (staged || e) {
		spin_unlock_irqrestore(&q->lock, flags);
		/* the host keeps its copy: drop it as a real get would */
		if (exclusive)
			queue_flush_op(d, FLUSH_PAGE, pool, oid, index, true,
				       false);
		return VIRTIO_TMEM_S_OK;
	}
	r = queue_room_locked(d, q, true, &flags);
	if (!r) {
		spin_unlock_irqrestore(&q->lock, flags);
		return VIRTIO_TMEM_S_DEVICE_ERROR;
	}
	/* a read-ahead of the key still in flight would outlive this get */
	pf_invalidate_locked(q, pool, oid, index, false, false);
	/* the device writes a driver page; req_complete() copies it over */
	r->get_pages[r->b.nr_get] = req_get_page(d, r);
	slot = vtmem_batch_get(&r->b, pool, oid, index, exclusive);
	cf_note_locked(d, q, r, slot, &key);
	waiter_init(&w, page);
	r->waiter[slot] = &w;
	/* read ahead only where gets keep hitting: not on cold misses */
	if (ra_wanted_locked(q, pool, oid, index))
		pf_request_locked(d, q, r, pool, oid, index);
	st = queue_sync(d, q, &w, &flags);
	if (st == VIRTIO_TMEM_S_OK)
		ra_hit_locked(q, pool, oid, index);
	spin_unlock_irqrestore(&q->lock, flags);
	return st;
}

/* NEW_POOL, synchronously.  Returns the host pool id or -errno. */
static int host_new_pool(struct vtmem_dev *d, unsigned int flags,
			 const u8 *uuid)
{
	static const struct vtmem_oid none;
	struct vtmem_queue *q = queue_of(d, 0, &none);
	struct vtmem_waiter w;
	unsigned long irqflags;
	struct vtmem_req *r;
	unsigned int st;
	int slot;

	spin_lock_irqsave(&q->lock, irqflags);
	r = queue_room_locked(d, q, true, &irqflags);
	if (!r) {
		spin_unlock_irqrestore(&q->lock, irqflags);
		return -EIO;
	}
	slot = vtmem_batch_new_pool(&r->b, flags, uuid);
	waiter_init(&w, NULL);
	r->waiter[slot] = &w;
	st = queue_sync(d, q, &w, &irqflags);
	spin_unlock_irqrestore(&q->lock, irqflags);
	if (st == VIRTIO_TMEM_S_NO_POOLS)
		return -ENOSPC;
	return st == VIRTIO_TMEM_S_OK ? (int)w.value : -EIO;
}

/*
 * Send everything issued on every queue so far and wait until it is done
 * (or @timeout jiffies per queue passed).  Returns false on a timeout.
 */
static bool vtmem_sync_all(struct vtmem_dev *d, unsigned long timeout)
{
	bool ok = true;
	unsigned int i;

	for (i = 0; i < d->nr_queues; i++)
		ok &= queue_drain(d, &d->queues[i], timeout);
	return ok;
}

/*
 * Prepare a pool-wide op (FLUSH_POOL, DESTROY_POOL).  It travels on one
 * queue, and the device orders ops only within a queue: so every op of
 * the pool issued on any queue must be done first, and the pool's
 * read-ahead copies go from every queue.  The caller makes sure that no op
 * can name the pool meanwhile, or that those which do may come after.
 * Sleeps.
 */
static void pool_quiesce(struct vtmem_dev *d, u32 pool)
{
	unsigned int i;

	for (i = 0; i < d->nr_queues; i++) {
		struct vtmem_queue *q = &d->queues[i];
		unsigned long flags;

		spin_lock_irqsave(&q->lock, flags);
		pf_invalidate_locked(q, pool, NULL, 0, true, true);
		spin_unlock_irqrestore(&q->lock, flags);
	}
	vtmem_sync_all(d, MAX_SCHEDULE_TIMEOUT);
}

/*
 * Give a cleancache pool back to the host.  The id is cleared first and
 * every op that may have read it is waited for (SRCU), so that once the
 * host reuses the id for a new pool no op of the old file system can reach
 * it.  Called with vtmem_mutex held, outside any SRCU read section.
 */
static void cc_pool_destroy(struct vtmem_dev *d, int pool)
{
	int host = d->pools[pool].host_id;

	WRITE_ONCE(d->pools[pool].host_id, -1);
	synchronize_srcu(&vtmem_srcu);
	pool_quiesce(d, host);
	queue_flush_op(d, DESTROY, host, NULL, 0, true, true);
}

/* ---- credits ---------------------------------------------------------------- */

/*
 * A frontswap store may be acknowledged only with a credit in hand: the
 * device promised room for credits_seen pages, and every credited PUT in
 * flight or stored uses one.  The device's count is the truth; ours only
 * trails it (credits_update() keeps the largest value seen), so we never
 * spend a credit the device has not granted.
 */
static bool credit_take(struct vtmem_dev *d)
{
	unsigned long flags;
	bool ok;

	spin_lock_irqsave(&d->credit_lock, flags);
	ok = min(d->credits_seen, d->credit_cap) > d->credits_spent;
	if (ok)
		d->credits_spent++;
	spin_unlock_irqrestore(&d->credit_lock, flags);
	return ok;
}

static void credit_refund(struct vtmem_dev *d)
{
	unsigned long flags;

	/* the put never reached a batch: the credit was not spent */
	spin_lock_irqsave(&d->credit_lock, flags);
	d->credits_spent--;
	spin_unlock_irqrestore(&d->credit_lock, flags);
}

/*
 * The device raises a config change when it grants credits to a driver that
 * may have run out (fewer than max_batch left): with no batch in flight no
 * response header would bring them.
 */
static void vtmem_config_changed(struct virtio_device *vdev)
{
	struct vtmem_dev *d = vdev->priv;
	u64 credits;

	virtio_cread_le(vdev, struct virtio_tmem_config, credits, &credits);
	credits_update(d, credits);
	if (virtio_has_feature(vdev, VIRTIO_TMEM_F_RESIZE))
		queue_work(system_long_wq, &d->resize_work);
}

/* ---- cleancache ---------------------------------------------------------------- */

/*
 * Driver-side pool ids index d->pools, so that a pool can be given back to
 * the host (its pages are ephemeral) without letting one file system's keys
 * reach another file system's pool.  An ext4 ro->rw remount calls init_fs
 * again and forgets the old id: such pools are reclaimed, least recently
 * used first, when the host runs out of pools.
 */
static int pool_reclaim_one(struct vtmem_dev *d)
{
	int i, lru = -1;

	for (i = 0; i < d->nr_pools; i++) {
		if (d->pools[i].host_id < 0)
			continue;
		if (lru < 0 || time_before(d->pools[i].last_used,
					   d->pools[lru].last_used))
			lru = i;
	}
	if (lru < 0)
		return -ENOSPC;
	cc_pool_destroy(d, lru);
	stat_inc(d, pool_reclaims);
	return 0;
}

static int pool_slot(struct vtmem_dev *d)
{
	int i;

	for (i = 0; i < d->nr_pools; i++)
		if (d->pools[i].released)
			return i;
	return d->nr_pools < VTMEM_MAX_POOLS ? d->nr_pools++ : -1;
}

static int cc_new_pool(bool shared, const u8 *uuid)
{
	struct vtmem_dev *d;
	int id = -1, host;

	mutex_lock(&vtmem_mutex);
	d = vtmem_locked();
	if (!d)
		goto out;
	mutex_lock(&d->pool_mutex);
	for (;;) {
		host = host_new_pool(d, shared ? VIRTIO_TMEM_POOL_SHARED : 0,
				     shared ? uuid : NULL);
		if (host != -ENOSPC || pool_reclaim_one(d))
			break;
	}
	if (host >= 0) {
		id = pool_slot(d);
		if (id < 0) {
			/* never published: no op can name it */
			queue_flush_op(d, DESTROY, host, NULL, 0, true, true);
		} else {
			d->pools[id].shared = shared;
			d->pools[id].released = false;
			d->pools[id].last_used = jiffies;
			WRITE_ONCE(d->pools[id].host_id, host);
		}
	}
	mutex_unlock(&d->pool_mutex);
out:
	mutex_unlock(&vtmem_mutex);
	return id;
}

static int vtmem_cc_init_fs(size_t pagesize)
{
	return pagesize == PAGE_SIZE ? cc_new_pool(false, NULL) : -1;
}

static int vtmem_cc_init_shared_fs(uuid_t *uuid, size_t pagesize)
{
	struct vtmem_dev *d;
	bool shared;
	int idx;

	if (pagesize != PAGE_SIZE)
		return -1;
	d = vtmem_get(&idx);
	shared = d && virtio_has_feature(d->vdev, VIRTIO_TMEM_F_SHARED);
	vtmem_put(idx);
	return cc_new_pool(shared, uuid->b);
}

/* The host id of a driver pool, or -1. */
static int cc_host_pool(struct vtmem_dev *d, int pool)
{
	int host;

	if (!d || pool < 0 || pool >= VTMEM_MAX_POOLS)
		return -1;
	host = READ_ONCE(d->pools[pool].host_id);
	if (host >= 0)
		WRITE_ONCE(d->pools[pool].last_used, jiffies);
	return host;
}

static int vtmem_cc_get_page(int pool, struct cleancache_filekey key,
			     pgoff_t index, struct page *page)
{
	struct vtmem_oid oid = oid_of_filekey(&key);
	struct vtmem_dev *d;
	unsigned int st;
	int idx, host, ret = -1;

	d = vtmem_get(&idx);
	host = cc_host_pool(d, pool);
	if (host < 0 || !READ_ONCE(cleancache_on))
		goto out;
	stat_inc(d, gets);
	/* exclusive: a put dropped later can never leave a stale copy */
	st = queue_get(d, host, &oid, index, page, true);
	if (st == VIRTIO_TMEM_S_OK) {
		stat_inc(d, hits);
		ret = 0;
	} else if (st != VIRTIO_TMEM_S_NOT_FOUND) {
		/* the host may still hold the page: it must not come back */
		queue_flush_op(d, FLUSH_PAGE, host, &oid, index, true, false);
	}
out:
	vtmem_put(idx);
	return ret;
}

/*
 * IRQs are off here (page cache deletion): a put that finds no room is
 * dropped.  Any put may be dropped without leaving an older copy on the
 * host: gets are exclusive, and a page that was not read (from the host or
 * from disk after a miss) is not PG_mappedtodisk, so the kernel
 * invalidates its key instead of putting it.
 */
static void cc_put(int pool, const struct cleancache_filekey *key,
		   pgoff_t index, struct page *page, bool was_active)
{
	struct vtmem_oid oid = oid_of_filekey(key);
	struct vtmem_dev *d;
	int idx, host;

	d = vtmem_get(&idx);
	host = cc_host_pool(d, pool);
	if (host >= 0 && READ_ONCE(cleancache_on)) {
		stat_inc(d, puts);
		if (!was_active)
			stat_inc(d, puts_inactive);
		else if (queue_put(d, host, &oid, index, page, false, false))
			stat_inc(d, put_drops);
	}
	vtmem_put(idx);
}

#ifdef CLEANCACHE_PUT_WAS_ACTIVE
static void vtmem_cc_put_page(int pool, struct cleancache_filekey key,
			      pgoff_t index, struct page *page,
			      bool was_active)
{
	cc_put(pool, &key, index, page, was_active || !READ_ONCE(active_only));
}
#else
static void vtmem_cc_put_page(int pool, struct cleancache_filekey key,
			      pgoff_t index, struct page *page)
{
	cc_put(pool, &key, index, page, true);
}
#endif

/*
 * invalidate_page runs under the mapping's i_pages lock (page cache
 * deletion); invalidate_inode only from truncation and invalidate_bdev(),
 * which sleep: it waits for a buffer instead of holding the flush back.
 */
static void cc_flush(int pool, const struct cleancache_filekey *key,
		     pgoff_t index, enum vtmem_flush_kind kind)
{
	struct vtmem_oid oid = oid_of_filekey(key);
	struct vtmem_dev *d;
	int idx, host;

	d = vtmem_get(&idx);
	host = cc_host_pool(d, pool);
	if (host >= 0) {
		stat_inc(d, flushes);
		queue_flush_op(d, kind, host, &oid, index,
			       kind == FLUSH_OBJECT, false);
	}
	vtmem_put(idx);
}

static void vtmem_cc_invalidate_page(int pool, struct cleancache_filekey key,
				     pgoff_t index)
{
	cc_flush(pool, &key, index, FLUSH_PAGE);
}

static void vtmem_cc_invalidate_inode(int pool, struct cleancache_filekey key)
{
	cc_flush(pool, &key, 0, FLUSH_OBJECT);
}

static void vtmem_cc_invalidate_fs(int pool)
{
	struct vtmem_dev *d;
	int host;

	mutex_lock(&vtmem_mutex);
	d = vtmem_locked();
	host = cc_host_pool(d, pool);
	if (host >= 0) {
		cc_pool_destroy(d, pool);
		d->pools[pool].released = true;
	}
	mutex_unlock(&vtmem_mutex);
}

static const struct cleancache_ops vtmem_cleancache_ops = {
	.init_fs = vtmem_cc_init_fs,
	.init_shared_fs = vtmem_cc_init_shared_fs,
	.get_page = vtmem_cc_get_page,
	.put_page = vtmem_cc_put_page,
	.invalidate_page = vtmem_cc_invalidate_page,
	.invalidate_inode = vtmem_cc_invalidate_inode,
	.invalidate_fs = vtmem_cc_invalidate_fs,
};

/* ---- frontswap ------------------------------------------------------------------ */

/* One persistent pool serves every swap type; the object is the type. */
static int fs_pool(struct vtmem_dev *d)
{
	int host;

	if (!d || !virtio_has_feature(d->vdev, VIRTIO_TMEM_F_PERSISTENT))
		return -1;
	host = READ_ONCE(d->swap_pool);
	if (host >= 0)
		return host;
	mutex_lock(&d->pool_mutex);
	if (d->swap_pool < 0)
		WRITE_ONCE(d->swap_pool,
			   host_new_pool(d, VIRTIO_TMEM_POOL_PERSISTENT, NULL));
	host = d->swap_pool;
	mutex_unlock(&d->pool_mutex);
	return host;
}

static void vtmem_fs_init(unsigned int type)
{
	mutex_lock(&vtmem_mutex);
	fs_pool(vtmem_locked());
	mutex_unlock(&vtmem_mutex);
}

static int vtmem_fs_store(unsigned int type, pgoff_t offset, struct page *page)
{
	struct vtmem_oid oid = oid_of_swap_type(type);
	struct vtmem_dev *d;
	int idx, host, ret = -1;

	d = vtmem_get(&idx);
	host = d ? READ_ONCE(d->swap_pool) : -1;
	if (host < 0 || !READ_ONCE(frontswap_on))
		goto out;
	stat_inc(d, stores);
	if (!credit_take(d)) {
		/* no credit, no acknowledgement: the swap device takes it */
		stat_inc(d, store_no_credit);
		goto out;
	}
	if (queue_put(d, host, &oid, offset, page, true, true))
		credit_refund(d);
	else
		ret = 0;
out:
	vtmem_put(idx);
	return ret;
}

static int vtmem_fs_load(unsigned int type, pgoff_t offset, struct page *page)
{
	struct vtmem_oid oid = oid_of_swap_type(type);
	struct vtmem_dev *d;
	int idx, host, ret = -1;
	unsigned int st;

	d = vtmem_get(&idx);
	host = d ? READ_ONCE(d->swap_pool) : -1;
	if (host < 0)
		goto out;
	stat_inc(d, loads);
	st = queue_get(d, host, &oid, offset, page, READ_ONCE(exclusive_gets));
	if (st == VIRTIO_TMEM_S_OK) {
		stat_inc(d, load_hits);
		ret = 0;
	} else if (st != VIRTIO_TMEM_S_NOT_FOUND) {
		/*
		 * The page was ours and cannot be read: the swap device has
		 * only stale blocks.  Poison the page so that its owner gets
		 * SIGBUS instead of wrong data.  (A miss falls through to the
		 * next frontswap backend.)
		 */
		stat_inc(d, errors);
		pr_err_ratelimited("virtio_tmem: swap page %u:%lu unreadable (status %u)\n",
				   type, offset, st);
		SetPageHWPoison(page);
		ret = 0;
	}
out:
	vtmem_put(idx);
	return ret;
}

static void vtmem_fs_invalidate(unsigned int type, pgoff_t offset, bool area)
{
	struct vtmem_oid oid = oid_of_swap_type(type);
	struct vtmem_dev *d;
	int idx, host;

	d = vtmem_get(&idx);
	host = d ? READ_ONCE(d->swap_pool) : -1;
	if (host >= 0) {
		stat_inc(d, invalidates);
		/*
		 * A page: from swap_range_free(), under the swap_info lock.
		 * An area: swapoff, which sleeps and waits for it.
		 */
		queue_flush_op(d, area ? FLUSH_OBJECT : FLUSH_PAGE, host, &oid,
			       offset, area, area);
	}
	vtmem_put(idx);
}

static void vtmem_fs_invalidate_page(unsigned int type, pgoff_t offset)
{
	vtmem_fs_invalidate(type, offset, false);
}

static void vtmem_fs_invalidate_area(unsigned int type)
{
	vtmem_fs_invalidate(type, 0, true);
}

static struct frontswap_ops vtmem_frontswap_ops = {
	.init = vtmem_fs_init,
	.store = vtmem_fs_store,
	.load = vtmem_fs_load,
	.invalidate_page = vtmem_fs_invalidate_page,
	.invalidate_area = vtmem_fs_invalidate_area,
};

/* ---- toggles ---------------------------------------------------------------------- */

/*
 * Empty every cleancache pool (they stay, so that switching back works).
 * Puts that saw cleancache on have staged their pages once the SRCU grace
 * period ends; each FLUSH_POOL then comes after them on every queue.
 */
static void cleancache_flush_all(struct vtmem_dev *d)
{
	int i;

	synchronize_srcu(&vtmem_srcu);
	for (i = 0; i < d->nr_pools; i++) {
		int host = READ_ONCE(d->pools[i].host_id);

		if (host < 0)
			continue;
		pool_quiesce(d, host);
		queue_flush_op(d, FLUSH_POOL, host, NULL, 0, true, true);
	}
}

/*
 * Start or end a presence filter reset on every queue.  The start clears
 * the counters and the pools' read-ahead copies; from then until the end,
 * cleancache gets miss, and only puts count (see cf_note_locked()).
 */
static void cf_set_resetting(struct vtmem_dev *d, bool on)
{
	unsigned int i;
	int p;

	for (i = 0; i < d->nr_queues; i++) {
		struct vtmem_queue *q = &d->queues[i];
		unsigned long flags;

		if (!q->cf_counters)
			continue;
		spin_lock_irqsave(&q->lock, flags);
		q->cf_resetting = on;
		if (on) {
			memset(q->cf_counters, 0, q->cf_mask + 1);
			q->cf_used = 0;
			q->cf_gen = q->cf_gen + 1 ?: 1;
			for (p = 0; p < d->nr_pools; p++)
				if (d->pools[p].host_id >= 0)
					pf_invalidate_locked(q, d->pools[p].host_id,
							     NULL, 0, true, true);
		}
		spin_unlock_irqrestore(&q->lock, flags);
	}
}

/*
 * Context: system_long_wq.  Clears the presence filter, then empties the
 * private cleancache pools on the host.  Every put staged before the clear
 * reaches the host before the FLUSH_POOLs (the first sync), and gets miss
 * until the FLUSH_POOLs are done (the second): afterwards the host holds
 * only pages counted since.  A device that does not answer leaves the
 * gets missing: safe, and it serves nothing anyway.
 */
static void cf_reset_work(struct work_struct *work)
{
	struct vtmem_dev *d = container_of(work, struct vtmem_dev,
					   cf_reset_work);
	int p;

	/* no pool may come or go meanwhile */
	mutex_lock(&vtmem_mutex);
	mutex_lock(&d->pool_mutex);
	cf_set_resetting(d, true);
	if (!vtmem_sync_all(d, VTMEM_WAIT_TIMEOUT))
		goto stuck;
	for (p = 0; p < d->nr_pools; p++) {
		int host = READ_ONCE(d->pools[p].host_id);

		if (host >= 0 && !d->pools[p].shared)
			queue_flush_op(d, FLUSH_POOL, host, NULL, 0, true,
				       false);
	}
	if (!vtmem_sync_all(d, VTMEM_WAIT_TIMEOUT))
		goto stuck;
	cf_set_resetting(d, false);
	stat_inc(d, filter_resets);
	mutex_unlock(&d->pool_mutex);
	mutex_unlock(&vtmem_mutex);
	return;
stuck:
	mutex_unlock(&d->pool_mutex);
	mutex_unlock(&vtmem_mutex);
	dev_err(&d->vdev->dev, "cleancache filter reset: no answer from the device, cleancache gets miss from now on\n");
}

static int cleancache_param_set(const char *val, const struct kernel_param *kp)
{
	bool on;
	int err = kstrtobool(val, &on);

	if (err)
		return err;
	mutex_lock(&vtmem_mutex);
	WRITE_ONCE(cleancache_on, on);
	/* pages put while on must not be read back after puts were skipped */
	if (!on && vtmem_locked())
		cleancache_flush_all(vtmem_locked());
	mutex_unlock(&vtmem_mutex);
	return 0;
}

/* One drain at a time: frontswap off and device removal may race. */
static DEFINE_MUTEX(drain_mutex);
static DECLARE_COMPLETION(drain_done);

static int drain_thread(void *target)
{
	allow_signal(SIGKILL);
	frontswap_shrink((unsigned long)target);
	complete(&drain_done);
	return 0;
}

/*
 * Bring frontswap pages back into guest memory until it holds at most
 * @target (frontswap_shrink(@target)) and return how many it holds.  In
 * 5.10 try_to_unuse() goes on retrying while the swap area holds any page,
 * frontswap's or not, unless it got exactly the count it expected or its
 * task has a signal pending: so the shrink runs in a kthread that is sent
 * SIGKILL once frontswap holds no more than @target, or once it has made
 * no progress for a minute.  @progress, if not NULL, hears of each change.
 */
static unsigned long frontswap_shrink_to(unsigned long target,
					 void (*progress)(unsigned long left))
{
	unsigned long left = frontswap_curr_pages(), last = left;
	unsigned long stalled = jiffies + 60 * HZ;
	struct task_struct *t;

	if (left <= target)
		return left;
	mutex_lock(&drain_mutex);
	reinit_completion(&drain_done);
	t = kthread_run(drain_thread, (void *)target, "vtmem-drain");
	if (IS_ERR(t)) {
		mutex_unlock(&drain_mutex);
		return left;
	}
	while (!wait_for_completion_timeout(&drain_done, HZ / 10)) {
		left = frontswap_curr_pages();
		if (left != last) {
			last = left;
			stalled = jiffies + 60 * HZ;
			if (progress)
				progress(left);
		}
		if (left <= target || time_after(jiffies, stalled)) {
			send_sig(SIGKILL, t, 1);
			wait_for_completion(&drain_done);
			break;
		}
	}
	mutex_unlock(&drain_mutex);
	return frontswap_curr_pages();
}

/* Bring every frontswap page back; return how many are left. */
static unsigned long frontswap_drain(void)
{
	return frontswap_shrink_to(0, NULL);
}

/* ---- resizing ---------------------------------------------------------------- */

/*
 * VIRTIO_TMEM_F_RESIZE (spec "Resizing"): when the host shrinks the pool,
 * the device caps the credits it granted and may ask for persistent pages
 * back.  A cap is obeyed at once, under credit_lock, so that no store
 * spends a cancelled credit; then the driver says how far it had gone
 * (cap_ack: the stores it may have acknowledged, which the device still
 * owes room) and only then which cap it applied (cap_ack_gen, written
 * last: the device acts on it).
 */
static void resize_apply_cap(struct vtmem_dev *d)
{
	struct virtio_device *vdev = d->vdev;
	unsigned long flags;
	u64 cap, bound;
	u32 gen;

	virtio_cread_le(vdev, struct virtio_tmem_config, cap_gen, &gen);
	if (gen == d->cap_gen_acked)
		return;
	virtio_cread_le(vdev, struct virtio_tmem_config, credit_cap, &cap);
	spin_lock_irqsave(&d->credit_lock, flags);
	d->credit_cap = cap;
	bound = max(d->credits_spent, min(d->credits_seen, cap));
	spin_unlock_irqrestore(&d->credit_lock, flags);
	virtio_cwrite_le(vdev, struct virtio_tmem_config, cap_ack, &bound);
	virtio_cwrite_le(vdev, struct virtio_tmem_config, cap_ack_gen, &gen);
	d->cap_gen_acked = gen;
}

static void resize_progress(unsigned long left)
{
	struct vtmem_dev *d;
	u64 actual = left;
	int idx;

	idx = srcu_read_lock(&vtmem_srcu);
	d = srcu_dereference(vtmem, &vtmem_srcu);
	if (d)
		virtio_cwrite_le(d->vdev, struct virtio_tmem_config,
				 persistent_actual, &actual);
	srcu_read_unlock(&vtmem_srcu, idx);
}

/*
 * Context: system_long_wq; bringing pages back may take long.  Pages that
 * do not fit in guest memory stay where they are: the swap path sends new
 * ones to the guest's own swap device once the cap leaves no credit.
 */
static void vtmem_resize_work(struct work_struct *work)
{
	struct vtmem_dev *d = container_of(work, struct vtmem_dev, resize_work);
	struct virtio_device *vdev = d->vdev;
	long avail = max(si_mem_available(), 0L);
	unsigned long held;
	u64 target;

	resize_apply_cap(d);
	virtio_cread_le(vdev, struct virtio_tmem_config, persistent_target,
			&target);
	held = frontswap_curr_pages();
	if (target != VIRTIO_TMEM_NO_LIMIT && held > target) {
		/* what does not fit stays: bring back what does */
		if (held - target > (unsigned long)avail)
			target = held - avail;
		held = frontswap_shrink_to(target, resize_progress);
		stat_inc(d, resize_shrinks);
	}
	resize_progress(held);
}

/*
 * Switching frontswap off brings every stored page back into guest memory
 * before it returns, or refuses if they cannot fit.
 */
static int frontswap_param_set(const char *val, const struct kernel_param *kp)
{
	unsigned long stored;
	bool on;
	int err = kstrtobool(val, &on);

	if (err)
		return err;
	mutex_lock(&vtmem_mutex);
	if (on || !READ_ONCE(frontswap_on)) {
		WRITE_ONCE(frontswap_on, on);
		goto out;
	}
	stored = frontswap_curr_pages();
	if (stored > si_mem_available()) {
		pr_warn("virtio_tmem: cannot turn frontswap off: %lu stored pages do not fit in %ld available pages\n",
			stored, si_mem_available());
		err = -ENOMEM;
		goto out;
	}
	WRITE_ONCE(frontswap_on, false);
	mutex_unlock(&vtmem_mutex);
	/* a store that saw frontswap on has returned: its page is counted */
	synchronize_srcu(&vtmem_srcu);
	stored = frontswap_drain();
	mutex_lock(&vtmem_mutex);
	if (stored) {
		pr_warn("virtio_tmem: frontswap off: %lu pages could not be brought back\n",
			stored);
		WRITE_ONCE(frontswap_on, true);
		err = -ENOMEM;
	}
out:
	mutex_unlock(&vtmem_mutex);
	return err;
}

static int exclusive_param_set(const char *val, const struct kernel_param *kp)
{
	int err = param_set_bool(val, kp);

	if (!err)
		frontswap_tmem_exclusive_gets(READ_ONCE(exclusive_gets));
	return err;
}

static int batch_param_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int err = kstrtouint(val, 0, &v);

	if (err)
		return err;
	if (v < 1 || v > VIRTIO_TMEM_MAX_BATCH_LIMIT)
		return -EINVAL;
	WRITE_ONCE(batch_size, v);	/* capped by max_batch at use */
	return 0;
}

/* ---- debugfs ----------------------------------------------------------------------- */

static int credits_show(struct seq_file *m, void *v)
{
	struct vtmem_dev *d = m->private;
	unsigned long flags;
	u64 seen, spent;

	spin_lock_irqsave(&d->credit_lock, flags);
	seen = d->credits_seen;
	spent = d->credits_spent;
	spin_unlock_irqrestore(&d->credit_lock, flags);
	seq_printf(m, "granted %llu\nspent %llu\nbalance %llu\n", seen, spent,
		   seen - spent);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(credits);

static int frontswap_pages_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%lu\n", frontswap_curr_pages());
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(frontswap_pages);

/* Per queue: counters, those raised, the generation (resets + 1). */
static int cleancache_filter_show(struct seq_file *m, void *v)
{
	struct vtmem_dev *d = m->private;
	unsigned int i;

	for (i = 0; i < d->nr_queues; i++) {
		struct vtmem_queue *q = &d->queues[i];
		unsigned long flags;
		u32 size, used, gen;

		spin_lock_irqsave(&q->lock, flags);
		size = q->cf_counters ? q->cf_mask + 1 : 0;
		used = q->cf_used;
		gen = q->cf_gen;
		spin_unlock_irqrestore(&q->lock, flags);
		seq_printf(m, "queue %u: counters %u raised %u generation %u\n",
			   i, size, used, gen);
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(cleancache_filter);

static void vtmem_debugfs_init(struct vtmem_dev *d)
{
	static const struct {
		const char *name;
		size_t off;
	} f[] = {
#define F(x) { #x, offsetof(struct vtmem_stats, x) }
		F(puts), F(put_drops), F(puts_inactive), F(gets), F(hits), F(staging_hits),
		F(flushes), F(stores), F(store_no_credit), F(loads),
		F(load_hits), F(invalidates), F(batches), F(batch_ops),
		F(staging_high), F(errors), F(lost_pages), F(readahead_sent),
		F(readahead_hits), F(pending_flushes), F(pending_high),
		F(pending_polls), F(pool_reclaims), F(resize_shrinks),
		F(buffers_grown), F(buffers_trimmed), F(buffers_grow_failed),
		F(buffers_high), F(filter_skips), F(filter_resets),
#undef F
	};
	unsigned int i;

	d->debugfs = debugfs_create_dir("virtio_tmem", NULL);
	for (i = 0; i < ARRAY_SIZE(f); i++)
		debugfs_create_u64(f[i].name, 0444, d->debugfs,
				   (u64 *)((u8 *)&d->stats + f[i].off));
	debugfs_create_file("credits", 0444, d->debugfs, d, &credits_fops);
	debugfs_create_file("cleancache_filter", 0444, d->debugfs, d,
			    &cleancache_filter_fops);
	debugfs_create_file("frontswap_pages", 0444, d->debugfs, NULL,
			    &frontswap_pages_fops);
}

/* ---- probe and remove ------------------------------------------------------------------ */

static void vtmem_free_queues(struct vtmem_dev *d)
{
	unsigned int i, j;

	for (i = 0; d->queues && i < d->nr_queues; i++) {
		struct vtmem_queue *q = &d->queues[i];

		hrtimer_cancel(&q->timer);
		kfree(q->pending);
		kvfree(q->cf_counters);
		for (j = 0; j < VTMEM_PREFETCH_SLOTS; j++)
			if (q->pf[j].page)
				__free_page(q->pf[j].page);
		for (j = 0; q->reqs && j < q->nr_reqs; j++)
			req_free(d, q->reqs[j]);
		kfree(q->reqs);
	}
	kfree(d->queues);
	d->queues = NULL;
}

/*
 * Presence filter counters per queue: VTMEM_CF_PER_POOL_PAGE per page of
 * the pool limit (a pool of compressed pages holds a few times more),
 * within bounds.  Returns 0 where nothing could be counted: no cleancache.
 */
static u32 cf_counters_per_queue(struct vtmem_dev *d)
{
	u64 limit, n = cleancache_filter_counters;

	if (!IS_ENABLED(CONFIG_CLEANCACHE))
		return 0;
	if (!n) {
		virtio_cread_le(d->vdev, struct virtio_tmem_config, pool_limit,
				&limit);
		n = clamp_t(u64, (limit >> PAGE_SHIFT) * VTMEM_CF_PER_POOL_PAGE,
			    VTMEM_CF_MIN, VTMEM_CF_MAX) / d->nr_queues;
	}
	return rounddown_pow_of_two(clamp_t(u64, n, VTMEM_CF_MIN,
					    VTMEM_CF_MAX));
}

static int vtmem_init_queues(struct vtmem_dev *d)
{
	u32 cf_size = cf_counters_per_queue(d);
	struct virtqueue **vqs;
	vq_callback_t **cbs;
	const char **names;
	unsigned int i, j;
	int err = -ENOMEM;

	d->queues = kcalloc(d->nr_queues, sizeof(*d->queues), GFP_KERNEL);
	vqs = kcalloc(d->nr_queues, sizeof(*vqs), GFP_KERNEL);
	cbs = kcalloc(d->nr_queues, sizeof(*cbs), GFP_KERNEL);
	names = kcalloc(d->nr_queues, sizeof(*names), GFP_KERNEL);
	if (!d->queues || !vqs || !cbs || !names)
		goto out;
	for (i = 0; i < d->nr_queues; i++) {
		struct vtmem_queue *q = &d->queues[i];

		q->dev = d;
		cbs[i] = vtmem_vq_done;
		names[i] = "requests";
		spin_lock_init(&q->lock);
		INIT_LIST_HEAD(&q->free);
		INIT_LIST_HEAD(&q->inflight);
		init_waitqueue_head(&q->wait);
		hrtimer_init(&q->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
		q->timer.function = vtmem_timer;
		INIT_WORK(&q->grow_work, queue_grow_work);
		q->cf_gen = 1;
		/* without it gets just ask the host */
		if (cf_size)
			q->cf_counters = kvzalloc(cf_size, GFP_KERNEL);
		if (q->cf_counters)
			q->cf_mask = cf_size - 1;
	}
	for (i = 0; i < d->nr_queues; i++) {
		struct vtmem_queue *q = &d->queues[i];

		err = -ENOMEM;	/* reset by the previous queue's buffers */
		for (j = 0; j < VTMEM_PREFETCH_SLOTS; j++) {
			q->pf[j].page = alloc_page(GFP_KERNEL);
			if (!q->pf[j].page)
				goto out;
		}
		q->base_reqs = clamp(batch_buffers, 2U, VTMEM_MAX_BUFFERS);
		q->max_reqs = clamp(batch_buffers_max, q->base_reqs,
				    VTMEM_MAX_BUFFERS);
		q->reqs = kcalloc(q->max_reqs, sizeof(*q->reqs), GFP_KERNEL);
		if (!q->reqs)
			goto out;
		for (j = 0; j < q->base_reqs; j++) {
			q->reqs[j] = req_alloc(d, GFP_KERNEL);
			if (!q->reqs[j])
				goto out;
			q->nr_reqs++;
			list_add_tail(&q->reqs[j]->node, &q->free);
		}
	}
	err = virtio_find_vqs(d->vdev, d->nr_queues, vqs, cbs, names, NULL);
	if (err)
		goto out;
	for (i = 0; i < d->nr_queues; i++)
		d->queues[i].vq = vqs[i];
out:
	kfree(vqs);
	kfree(cbs);
	kfree(names);
	return err;
}

static int vtmem_probe(struct virtio_device *vdev)
{
	struct vtmem_dev *d;
	u32 page_size;
	u16 queues = 1, max_batch;
	u64 credits;
	int err;

	if (!vdev->config->get) {
		dev_err(&vdev->dev, "config access disabled\n");
		return -EINVAL;
	}
	virtio_cread_le(vdev, struct virtio_tmem_config, page_size, &page_size);
	virtio_cread_le(vdev, struct virtio_tmem_config, max_batch, &max_batch);
	if (page_size != PAGE_SIZE || !max_batch ||
	    max_batch > VIRTIO_TMEM_MAX_BATCH_LIMIT) {
		dev_err(&vdev->dev, "unsupported page_size %u or max_batch %u\n",
			page_size, max_batch);
		return -EINVAL;
	}
	if (virtio_has_feature(vdev, VIRTIO_TMEM_F_MQ))
		virtio_cread_le(vdev, struct virtio_tmem_config, num_queues,
				&queues);
	mutex_lock(&vtmem_mutex);
	if (vtmem_locked()) {
		mutex_unlock(&vtmem_mutex);
		dev_info(&vdev->dev, "another virtio-tmem device is in use\n");
		return -EBUSY;
	}
	mutex_unlock(&vtmem_mutex);

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->vdev = vdev;
	vdev->priv = d;
	d->max_batch = max_batch;
	/* more queues than CPUs only splits batches: fewer ops per exit */
	d->nr_queues = clamp_t(unsigned int, queues, 1,
			       min_t(unsigned int, num_possible_cpus(),
				     VIRTIO_TMEM_MAX_QUEUES));
	virtio_cread_le(vdev, struct virtio_tmem_config, max_pools,
			&d->max_pools);
	spin_lock_init(&d->credit_lock);
	d->credit_cap = VIRTIO_TMEM_NO_LIMIT;
	INIT_WORK(&d->resize_work, vtmem_resize_work);
	INIT_DELAYED_WORK(&d->trim_work, vtmem_trim_work);
	INIT_WORK(&d->cf_reset_work, cf_reset_work);
	get_random_bytes(&d->cf_key, sizeof(d->cf_key));
	mutex_init(&d->pool_mutex);
	d->swap_pool = -1;
	err = vtmem_init_queues(d);
	if (err)
		goto fail;
	virtio_device_ready(vdev);
	virtio_cread_le(vdev, struct virtio_tmem_config, credits, &credits);
	credits_update(d, credits);
	vtmem_debugfs_init(d);

	mutex_lock(&vtmem_mutex);
	rcu_assign_pointer(vtmem, d);
	if (backends_registered && virtio_has_feature(vdev, VIRTIO_TMEM_F_PERSISTENT))
		fs_pool(d);	/* a new device after a removal */
	mutex_unlock(&vtmem_mutex);
	/*
	 * Registering calls init_fs for every mounted file system and init
	 * for every active swap type, which take vtmem_mutex: not under it.
	 * Probes run one at a time, and a second device is refused above.
	 */
	if (!backends_registered) {
		backends_registered = true;
		/* frontswap chains backends; cleancache takes only one */
		if (virtio_has_feature(vdev, VIRTIO_TMEM_F_PERSISTENT))
			frontswap_register_ops(&vtmem_frontswap_ops);
		frontswap_tmem_exclusive_gets(exclusive_gets);
		if (cleancache_register_ops(&vtmem_cleancache_ops))
			dev_warn(&vdev->dev, "another cleancache backend is registered\n");
	}
	dev_info(&vdev->dev, "%u queue(s), batches of %u, %llu credits\n",
		 d->nr_queues, min_t(unsigned int, batch_size, d->max_batch),
		 credits);
	return 0;
fail:
	vtmem_free_queues(d);
	kfree(d);
	vdev->priv = NULL;
	return err;
}

/*
 * Bring every frontswap page back, however long it takes: the device
 * holds them and nothing else does, so it must not be reset before.  A
 * guest that cannot make room keeps the device (the unplug waits).
 */
static void frontswap_drain_all(struct virtio_device *vdev)
{
	unsigned long left;

	for (;;) {
		left = frontswap_drain();
		if (!left)
			return;
		dev_err(&vdev->dev, "removal waits: %lu swap pages could not be brought back yet\n",
			left);
		ssleep(1);
	}
}

/* No op can submit, and no timer can fire, once this returns. */
static void vtmem_kill_queues(struct vtmem_dev *d)
{
	unsigned int i;

	for (i = 0; i < d->nr_queues; i++) {
		struct vtmem_queue *q = &d->queues[i];
		unsigned long flags;

		spin_lock_irqsave(&q->lock, flags);
		d->dead = true;
		spin_unlock_irqrestore(&q->lock, flags);
		/* a timer that ran before sees dead next time: none left */
		hrtimer_cancel(&q->timer);
		wake_up_all(&q->wait);
		/* neither does a buffer worker: it checks dead, locked */
		cancel_work_sync(&q->grow_work);
	}
	cancel_delayed_work_sync(&d->trim_work);
}

/*
 * Persistent pages must come back before the device goes: they exist
 * nowhere else.  Order matters:
 * 1. frontswap off, then an SRCU grace period: every store that saw it on
 *    has staged its page and returned (its caller marks the slot before it
 *    unlocks the page, with no sleep in between), and no new one succeeds;
 * 2. drain until frontswap holds no page, then send everything staged;
 *    a page that got counted meanwhile sends us back to draining;
 * 3. unpublish the device and wait for the ops still inside (SRCU), send
 *    what they staged, stop the queues and timers, and only then reset.
 */
static void vtmem_remove(struct virtio_device *vdev)
{
	struct vtmem_dev *d = vdev->priv;

	mutex_lock(&vtmem_mutex);
	WRITE_ONCE(frontswap_on, false);
	mutex_unlock(&vtmem_mutex);
	synchronize_srcu(&vtmem_srcu);
	do {
		frontswap_drain_all(vdev);
		vtmem_sync_all(d, VTMEM_WAIT_TIMEOUT);
	} while (frontswap_curr_pages());

	mutex_lock(&vtmem_mutex);
	RCU_INIT_POINTER(vtmem, NULL);
	mutex_unlock(&vtmem_mutex);
	synchronize_srcu(&vtmem_srcu);
	vtmem_sync_all(d, VTMEM_WAIT_TIMEOUT);
	/* no put can queue it again: none is left inside */
	cancel_work_sync(&d->cf_reset_work);

	vtmem_kill_queues(d);
	vdev->config->reset(vdev);
	/* no configuration change can queue it again after the reset */
	cancel_work_sync(&d->resize_work);
	vdev->config->del_vqs(vdev);
	debugfs_remove_recursive(d->debugfs);
	vtmem_free_queues(d);
	kfree(d);
	WRITE_ONCE(frontswap_on, true);
}

static const struct virtio_device_id id_table[] = {
	{ VIRTIO_ID_TMEM, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static unsigned int features[] = {
	VIRTIO_TMEM_F_PERSISTENT,
	VIRTIO_TMEM_F_SHARED,
	VIRTIO_TMEM_F_MQ,
	VIRTIO_TMEM_F_RESIZE,
};

static struct virtio_driver virtio_tmem_driver = {
	.feature_table = features,
	.feature_table_size = ARRAY_SIZE(features),
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	/* no unbind through sysfs: persistent pages live on the device */
	.driver.suppress_bind_attrs = true,
	.id_table = id_table,
	.probe = vtmem_probe,
	.remove = vtmem_remove,
	.config_changed = vtmem_config_changed,
};

static int __init virtio_tmem_init(void)
{
	return register_virtio_driver(&virtio_tmem_driver);
}
module_init(virtio_tmem_init);
/* No module_exit: cleancache and frontswap backends cannot unregister. */

MODULE_DEVICE_TABLE(virtio, id_table);
MODULE_DESCRIPTION("Virtio transcendent memory: cleancache and frontswap backend");
MODULE_LICENSE("GPL");
