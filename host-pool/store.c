// SPDX-License-Identifier: BSD-3-Clause
/*
 * store.c - tmem semantics on top of zbud: pools, objects, pages, limit.
 *
 * Lock order (outer first):
 *
 *   store->pools_lock		pool table, pool identity (new/destroy)
 *     bucket->lock		objects and entries of one stripe of a pool
 *       shard->lock		slab objects of one shard of a cache (slab.h)
 *         zbud->lock		frames, LRUs, limit accounting
 *           img->lock		swap image slots (swapimg.c)
 *
 * wb->lock (writeback.c) guards only the writeback thread's state and is
 * never held with another lock.
 *
 * Reclaim runs the other way round, from a frame to its owners: it takes a
 * frame off every list under zbud->lock (zbud_reclaim_start_locked()),
 * notes the buckets of its owners, drops zbud->lock, then takes each bucket
 * lock and re-reads the owner under zbud->lock.  That is safe because
 * (1) pools and their buckets are never freed while the store lives, and
 * (2) an entry is detached from its frame under zbud->lock *before* it is
 * freed, so an owner read under zbud->lock is a live entry whose object
 * and bucket are live too.
 *
 * A put copies its page into the buddy it was given after dropping
 * zbud->lock, under its bucket lock only, so that the copy does not
 * serialise puts.  The owner is recorded at allocation, so anyone who
 * reads a frame's bytes without holding the owner's bucket lock (writeback)
 * first takes and drops the bucket lock of every owner it found: any copy
 * into the frame has then finished.
 *
 * Memory accounting: used = frames allocated * 4096 + fixed_bytes.  A put
 * first reserves the most it could allocate (PUT_WORST_BYTES, less the data
 * frame for a filled page), evicting ephemeral frames until the reservation
 * fits, so that used + reserved never exceeds the limit; every frame taken
 * then consumes its kind's reservation, and the rest is returned when the
 * put ends, or already in the hold of zbud->lock that allocates its buddy
 * when its index insert will need no node (nothing else can follow).
 */
#include <errno.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hash.h"
#include "lock.h"
#include "pageio.h"
#include "store_internal.h"
#include "swapimg.h"

/* A buddy's padded copy (pageio_copy_nocache()) stays in its own chunks. */
_Static_assert(ZBUD_CHUNK_SIZE % PAGEIO_LINE == 0,
	       "chunks must be whole cache lines");

static _Thread_local uint8_t tls_cbuf[TMEM_PAGE_SIZE];
static _Thread_local uint8_t tls_bounce[TMEM_PAGE_SIZE];

static const char *const error_names[TMEM_E__MAX] = {
	[0] = "success",
	[TMEM_E_INVAL] = "invalid argument",
	[TMEM_E_BAD_POOL] = "no such pool",
	[TMEM_E_NOT_FOUND] = "page not found",
	[TMEM_E_IOV] = "buffer is not exactly one page",
	[TMEM_E_FULL] = "store is full",
	[TMEM_E_INCOMPRESSIBLE] = "page is incompressible",
	[TMEM_E_NO_POOLS] = "too many pools",
	[TMEM_E_UUID_KIND] = "shared pool exists with another kind",
	[TMEM_E_NOMEM] = "host out of memory",
	[TMEM_E_IO] = "stored data unreadable",
	[TMEM_E_IMAGE] = "swap image unusable",
};

/**
 * tmem_strerror() - text for a TMEM_E* code
 * @err: the code, negated or not
 */
const char *tmem_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err >= TMEM_E__MAX)
		return "unknown error";
	return error_names[err];
}

/**
 * tmem_config_init() - default settings (the TMEM_DEFAULT_* values)
 * @cfg: settings to fill
 *
 * 64 MiB, LZ4 at acceleration 1, incompressible above 3/4 page, 32 pools,
 * writeback from 90% down to 75% of the limit.
 */
void tmem_config_init(struct tmem_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->limit_bytes = TMEM_DEFAULT_LIMIT;
	cfg->compressor = TMEM_DEFAULT_COMPRESSOR;
	cfg->lz4_acceleration = TMEM_DEFAULT_LZ4_ACCEL;
	cfg->max_compressed = TMEM_DEFAULT_MAX_COMPRESSED;
	cfg->max_pools = TMEM_DEFAULT_MAX_POOLS;
	cfg->wb_high_pct = TMEM_DEFAULT_WB_HIGH_PCT;
	cfg->wb_low_pct = TMEM_DEFAULT_WB_LOW_PCT;
}

/* Most a failing image may let persistent puts take beyond the limit. */
static uint64_t overdraft_max(const struct tmem_config *cfg)
{
	return cfg->limit_bytes / 4;
}

/* Frames the limit allows, plus address space for the overdraft. */
static uint64_t config_max_frames(const struct tmem_config *cfg)
{
	return cfg->limit_bytes / TMEM_PAGE_SIZE + ZBUD_DIRTY_MAX +
	       overdraft_max(cfg) / TMEM_PAGE_SIZE;
}

/* Bytes charged for the store and its pool table (store->fixed_bytes). */
static uint64_t config_fixed_bytes(const struct tmem_config *cfg)
{
	return (uint64_t)cfg->max_pools * sizeof(struct tmem_pool *) +
	       sizeof(struct tmem_store);
}

/*
 * Metadata an empty store already counts against its limit, as
 * tmem_persistent_capacity() does: the store, the pool table, the pools
 * still to come and every arena's frame descriptors.
 */
static uint64_t config_meta_bytes(const struct tmem_config *cfg)
{
	uint64_t arenas = (config_max_frames(cfg) + ZBUD_ARENA_FRAMES - 1) /
			  ZBUD_ARENA_FRAMES;

	return config_fixed_bytes(cfg) + arenas * ZBUD_ARENA_DESC_BYTES +
	       (uint64_t)cfg->max_pools * sizeof(struct tmem_pool);
}

/* An empty store must hold at least one put in the worst case. */
static bool config_meta_fits(const struct tmem_config *cfg)
{
	return config_meta_bytes(cfg) + PUT_WORST_BYTES <= cfg->limit_bytes;
}

static enum tmem_config_field config_why(enum tmem_config_field f,
					 char *why, size_t len,
					 const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum tmem_config_field config_why(enum tmem_config_field f,
					 char *why, size_t len,
					 const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return f;
}

/* Pools whose tables still leave an empty store room for one put. */
static unsigned int config_pools_that_fit(const struct tmem_config *cfg)
{
	struct tmem_config c = *cfg;

	while (c.max_pools > TMEM_MIN_POOLS && !config_meta_fits(&c))
		c.max_pools--;
	return c.max_pools;
}

static enum tmem_config_field config_check_limit(const struct tmem_config *cfg,
						 char *why, size_t len)
{
	struct tmem_config one = *cfg;

	if (cfg->limit_bytes < TMEM_MIN_LIMIT ||
	    cfg->limit_bytes > TMEM_MAX_LIMIT)
		return config_why(TMEM_CFG_LIMIT, why, len,
				  "must be between %llu MiB and %llu GiB",
				  TMEM_MIN_LIMIT >> 20, TMEM_MAX_LIMIT >> 30);
	one.max_pools = TMEM_MIN_POOLS;
	if (!config_meta_fits(&one))
		return config_why(TMEM_CFG_LIMIT, why, len,
				  "leaves no room for a page beside the "
				  "store's metadata");
	return TMEM_CFG_OK;
}

/**
 * tmem_config_check() - judge settings before tmem_store_create()
 * @cfg: settings (not NULL)
 * @why: if not NULL, receives the rule the field broke, without the
 *	 field's name or value (e.g. "must be between 1 and 65537"), so that
 *	 callers can prefix the name they expose it under
 * @len: size of @why
 *
 * Fields are checked in the order of enum tmem_config_field.
 *
 * Return: the first field out of range, or TMEM_CFG_OK (@why untouched).
 */
enum tmem_config_field tmem_config_check(const struct tmem_config *cfg,
					 char *why, size_t len)
{
	enum tmem_config_field f = config_check_limit(cfg, why, len);

	if (f != TMEM_CFG_OK)
		return f;
	if (cfg->compressor != TMEM_COMP_LZ4 &&
	    cfg->compressor != TMEM_COMP_NONE)
		return config_why(TMEM_CFG_COMPRESSOR, why, len,
				  "must be lz4 or none");
	if (cfg->lz4_acceleration < TMEM_LZ4_ACCEL_MIN ||
	    cfg->lz4_acceleration > TMEM_LZ4_ACCEL_MAX)
		return config_why(TMEM_CFG_LZ4_ACCEL, why, len,
				  "must be between %d and %d",
				  TMEM_LZ4_ACCEL_MIN, TMEM_LZ4_ACCEL_MAX);
	if (cfg->max_compressed < TMEM_MAX_COMPRESSED_MIN ||
	    cfg->max_compressed > TMEM_MAX_COMPRESSED_MAX)
		return config_why(TMEM_CFG_MAX_COMPRESSED, why, len,
				  "must be between %u and %u",
				  TMEM_MAX_COMPRESSED_MIN,
				  TMEM_MAX_COMPRESSED_MAX);
	if (cfg->max_pools < TMEM_MIN_POOLS || cfg->max_pools > TMEM_MAX_POOLS)
		return config_why(TMEM_CFG_MAX_POOLS, why, len,
				  "must be between %u and %u",
				  TMEM_MIN_POOLS, TMEM_MAX_POOLS);
	if (!config_meta_fits(cfg))
		return config_why(TMEM_CFG_MAX_POOLS, why, len,
				  "must be at most %u with a limit of %llu "
				  "bytes (the pool tables count against it)",
				  config_pools_that_fit(cfg),
				  (unsigned long long)cfg->limit_bytes);
	if (cfg->wb_high_pct < TMEM_WB_HIGH_PCT_MIN ||
	    cfg->wb_high_pct > TMEM_WB_HIGH_PCT_MAX)
		return config_why(TMEM_CFG_WB_HIGH, why, len,
				  "must be a percentage between %u and %u",
				  TMEM_WB_HIGH_PCT_MIN, TMEM_WB_HIGH_PCT_MAX);
	if (cfg->wb_low_pct >= cfg->wb_high_pct)
		return config_why(TMEM_CFG_WB_LOW, why, len,
				  "must be below the high watermark (%u)",
				  cfg->wb_high_pct);
	return TMEM_CFG_OK;
}

/* ---- limit accounting ------------------------------------------------ */

static uint64_t used_bytes_locked(const struct tmem_store *s)
{
	return zbud_used_bytes(&s->zbud) + s->fixed_bytes;
}

/* Bytes that pools not yet allocated may still take (capacity counts them). */
static uint64_t pools_to_come_bytes(const struct tmem_store *s)
{
	return (uint64_t)(s->cfg.max_pools - s->pools_allocated) *
	       sizeof(struct tmem_pool);
}

static uint64_t avail_locked(const struct tmem_store *s)
{
	const struct zbud *z = &s->zbud;
	uint64_t used = used_bytes_locked(s) + z->reserved[TMEM_EPHEMERAL] +
			z->reserved[TMEM_PERSISTENT];

	return used >= s->cfg.limit_bytes ? 0 : s->cfg.limit_bytes - used;
}

/* Give back what a put reserved (@bytes) but this thread did not take. */
static void release_unused_locked(struct zbud *z, enum tmem_kind kind,
				  uint64_t bytes)
{
	uint64_t taken = zbud_bytes_taken(false);
	uint64_t left = taken >= bytes ? 0 : bytes - taken;

	z->reserved[kind] -= left < z->reserved[kind] ? left : z->reserved[kind];
	if (left && kind == TMEM_EPHEMERAL && !z->reserved[kind])
		pthread_cond_broadcast(&z->reserve_cond);
}

static void release_reservation(struct tmem_store *s, enum tmem_kind kind,
				uint64_t bytes)
{
	struct zbud *z = &s->zbud;

	if (zbud_bytes_taken(false) < bytes) {
		pthread_mutex_lock(&z->lock);
		release_unused_locked(z, kind, bytes);
		pthread_mutex_unlock(&z->lock);
	}
	zbud_bytes_taken(true);
}

static long evict_ephemeral(struct tmem_store *s);

/*
 * Ephemeral puts give way to persistent ones: while a persistent put waits
 * for room, ephemeral reservations are refused, and a persistent put whose
 * room is held only by ephemeral reservations in flight waits for them.
 */
static bool try_reserve_locked(struct tmem_store *s, enum tmem_kind kind,
			       uint64_t bytes)
{
	if (kind == TMEM_EPHEMERAL && s->persistent_waiting)
		return false;
	if (avail_locked(s) < bytes)
		return false;
	s->zbud.reserved[kind] += bytes;
	return true;
}

static bool wait_ephemeral_reservations(struct tmem_store *s, uint64_t bytes)
{
	struct zbud *z = &s->zbud;
	bool waited = false;

	pthread_mutex_lock(&z->lock);
	if (z->reserved[TMEM_EPHEMERAL] &&
	    avail_locked(s) + z->reserved[TMEM_EPHEMERAL] >= bytes) {
		s->persistent_waiting++;
		while (z->reserved[TMEM_EPHEMERAL])
			pthread_cond_wait(&z->reserve_cond, &z->lock);
		s->persistent_waiting--;
		waited = true;
	}
	pthread_mutex_unlock(&z->lock);
	return waited;
}

/*
 * A persistent put that finds the store full, with an image attached:
 * write a frame back (or wait for the thread's frame in flight).
 * WB_FREED (also after such a wait) means: try again.
 */
static enum wb_result reserve_by_writeback(struct tmem_store *s)
{
	enum wb_result ret = writeback_frame(s);

	if (ret == WB_NONE && writeback_wait_idle(s))
		return WB_FREED;
	return ret;
}

/*
 * Writeback failed with an I/O error (whatever the errno) for a persistent
 * put: the page may hold a credit counted against image slots, so it is
 * taken past the limit rather than lost.  Capacity stops counting image
 * slots while writeback fails, so only credits granted before the failure
 * can get here, and it never promises more than overdraft_max() can take;
 * the overdraft is counted and paid back by later writebacks.
 */
static bool reserve_overdraft(struct tmem_store *s, uint64_t bytes)
{
	struct zbud *z = &s->zbud;
	bool ok;

	pthread_mutex_lock(&z->lock);
	ok = used_bytes_locked(s) + z->reserved[TMEM_EPHEMERAL] +
	     z->reserved[TMEM_PERSISTENT] + bytes <=
	     s->cfg.limit_bytes + overdraft_max(&s->cfg);
	if (ok)
		z->reserved[TMEM_PERSISTENT] += bytes;
	pthread_mutex_unlock(&z->lock);
	if (ok) {
		pthread_mutex_lock(&s->wb->lock);
		s->wb->overdraft_puts++;
		pthread_mutex_unlock(&s->wb->lock);
	}
	return ok;
}

/**
 * reserve_room() - promise a put the memory it may need
 * @s: store
 * @kind: the put's pool kind
 * @bytes: worst case for this put
 *
 * Evicts ephemeral frames (any kind of put may), then, for a persistent
 * put, waits for ephemeral puts in flight or writes a frame back to the
 * image.  The caller holds no lock.
 *
 * Return: 0, or -TMEM_E_FULL.
 */
static int reserve_room(struct tmem_store *s, enum tmem_kind kind,
			uint64_t bytes)
{
	zbud_bytes_taken(true);
	for (;;) {
		enum wb_result wb;
		bool ok, kick;

		pthread_mutex_lock(&s->zbud.lock);
		ok = try_reserve_locked(s, kind, bytes);
		kick = s->wb && used_bytes_locked(s) >= s->wb->high_bytes;
		pthread_mutex_unlock(&s->zbud.lock);
		if (kick)
			writeback_kick(s);
		if (ok)
			return 0;
		if (evict_ephemeral(s) > 0)
			continue;
		if (kind == TMEM_EPHEMERAL)
			return -TMEM_E_FULL;
		if (wait_ephemeral_reservations(s, bytes))
			continue;
		if (!s->wb)
			return -TMEM_E_FULL;
		wb = reserve_by_writeback(s);
		if (wb == WB_FREED)
			continue;
		/*
		 * Credits count only allocated free slots, so a credited put
		 * never meets WB_NO_SLOT; any failed write goes past the limit.
		 */
		if (wb == WB_IO_ERROR && reserve_overdraft(s, bytes))
			return 0;
		return -TMEM_E_FULL;
	}
}

/* Whether image slots count for credits: an image, and writeback working. */
static bool image_counts_for_credits(struct tmem_store *s)
{
	bool failing;

	if (!s->wb)
		return false;
	pthread_mutex_lock(&s->wb->lock);
	failing = s->wb->failing;
	pthread_mutex_unlock(&s->wb->lock);
	if (failing)
		return false;
	swapimg_reserve(s->wb->img);
	return true;
}

/*
 * Caller holds zbud->lock: image slots a put may count on, allocated free
 * ones and those taken by writebacks whose frame is not freed yet (struct
 * tmem_store), read in one hold with the frames they stand for.  At most
 * the reserve (see swapimg_credit_slots()).
 */
static uint64_t image_slots_locked(struct tmem_store *s)
{
	struct tmem_image *img = s->wb->img;
	uint64_t slots = swapimg_credit_slots(img) + s->slots_in_flight;

	return slots < img->reserve_slots ? slots : img->reserve_slots;
}

/**
 * tmem_persistent_capacity() - persistent pages the store can always accept
 * @s: store
 *
 * Counts room at the worst case per put, as if every ephemeral page were
 * evicted: puts that stay within this number never fail for lack of room.
 * A put lowers it by at most one; flushes and evictions never lower it.
 *
 * With an image, n more puts fit when RAM can shed a frame for each frame
 * they bring beyond the free room F, with one allocated free slot S per
 * frame shed, among the D persistent frames in RAM plus the n new ones:
 * n * W <= F + 4096 * min(S, D + n), W being PUT_WORST_BYTES.  S counts
 * at most the reserve (see swapimg_credit_slots()).  And since every write
 * behind them may fail, the n puts must also fit the overdraft
 * (reserve_overdraft()): n * W <= F + overdraft_max().
 */
uint64_t tmem_persistent_capacity(struct tmem_store *s)
{
	bool image = image_counts_for_credits(s);
	struct zbud *z = &s->zbud;
	uint64_t committed, slots = 0, data, room;
	uint64_t n_slots, n_frames, n_over, most;

	/*
	 * Descriptors of every arena count as used: ephemeral puts may map
	 * arenas that persistent frames then keep mapped.
	 */
	pthread_mutex_lock(&z->lock);
	data = z->data_frames[TMEM_PERSISTENT];
	committed = s->fixed_bytes + z->reserved[TMEM_PERSISTENT] +
		    pools_to_come_bytes(s) +
		    (uint64_t)z->nr_arenas * ZBUD_ARENA_DESC_BYTES +
		    (data + z->slab_frames[TMEM_PERSISTENT]) * TMEM_PAGE_SIZE;
	if (image)
		slots = image_slots_locked(s);
	pthread_mutex_unlock(&z->lock);
	room = committed >= s->cfg.limit_bytes ? 0 :
	       s->cfg.limit_bytes - committed;
	if (!slots)
		return room / PUT_WORST_BYTES;
	n_slots = (room + slots * TMEM_PAGE_SIZE) / PUT_WORST_BYTES;
	n_frames = (room + data * TMEM_PAGE_SIZE) /
		   (PUT_WORST_BYTES - TMEM_PAGE_SIZE);
	most = s->cfg.limit_bytes + overdraft_max(&s->cfg);
	n_over = committed >= most ? 0 : (most - committed) / PUT_WORST_BYTES;
	if (n_slots > n_frames)
		n_slots = n_frames;
	return n_slots < n_over ? n_slots : n_over;
}

/**
 * store_used_bytes() - bytes charged against the limit now
 * @s: store
 */
uint64_t store_used_bytes(struct tmem_store *s)
{
	uint64_t used;

	pthread_mutex_lock(&s->zbud.lock);
	used = used_bytes_locked(s);
	pthread_mutex_unlock(&s->zbud.lock);
	return used;
}

/* ---- pools, buckets, objects ------------------------------------------ */

/* The object tree of a stripe that an id hashing to @h is in. */
static unsigned int chain_of(uint64_t h)
{
	return (unsigned int)(h / POOL_BUCKETS % BUCKET_CHAINS);
}

static struct tmem_pool *pool_get(struct tmem_store *s, uint32_t pool_id)
{
	struct tmem_pool *p;

	if (pool_id >= s->cfg.max_pools)
		return NULL;
	p = atomic_load_explicit(&s->pools[pool_id], memory_order_acquire);
	if (!p || !atomic_load_explicit(&p->alive, memory_order_acquire))
		return NULL;
	return p;
}

/**
 * struct op - an op's place in the store, with its bucket locked
 * @pool: target pool
 * @b: stripe of the object, locked
 * @chain: object tree of the object in @b
 * @kind: the pool's kind
 * @reserved: a put's reservation still to settle (0 once settled)
 */
struct op {
	struct tmem_pool *pool;
	struct tmem_bucket *b;
	unsigned int chain;
	enum tmem_kind kind;
	uint64_t reserved;
};

/* Lock the object's stripe; fails if the pool went away meanwhile. */
static int op_lock(struct tmem_pool *p, const struct tmem_oid *oid,
		   struct op *op)
{
	uint64_t h = tmem_oid_hash(oid);

	op->pool = p;
	op->b = &p->bucket[h % POOL_BUCKETS];
	op->chain = chain_of(h);
	pthread_mutex_lock(&op->b->lock);
	if (!atomic_load_explicit(&p->alive, memory_order_acquire)) {
		pthread_mutex_unlock(&op->b->lock);
		return -TMEM_E_BAD_POOL;
	}
	op->kind = pool_kind(p);
	return 0;
}

static void op_unlock(struct op *op)
{
	pthread_mutex_unlock(&op->b->lock);
}

static bool oid_equal(const struct tmem_oid *a, const struct tmem_oid *b)
{
	return a->id[0] == b->id[0] && a->id[1] == b->id[1] &&
	       a->id[2] == b->id[2];
}

/* The object trees' search order. */
static int oid_cmp(const struct tmem_oid *a, const struct tmem_oid *b)
{
	unsigned int i;

	for (i = 0; i < 3; i++)
		if (a->id[i] != b->id[i])
			return a->id[i] < b->id[i] ? -1 : 1;
	return 0;
}

/*
 * The object trees' heap order.  Every word of the id goes through a
 * keyed step, so ids chosen to tie here need the store's secret.
 */
static uint64_t object_rank(const struct tmem_store *s,
			    const struct tmem_object *obj)
{
	uint64_t h = tmem_mix64(obj->oid.id[2] ^ s->tree_key);

	h = tmem_mix64(h ^ obj->oid.id[1]);
	return tmem_mix64(h ^ obj->oid.id[0] ^ (s->tree_key >> 1));
}

/* An object's slab_ref() plus one, so that 0 is no object. */
static uint32_t object_ref(const struct tmem_store *s,
			   const struct tmem_object *obj)
{
	return slab_ref(&s->zbud, obj, sizeof(*obj)) + 1;
}

static struct tmem_object *object_of_ref(const struct tmem_store *s,
					 uint32_t ref)
{
	if (!ref)
		return NULL;
	return slab_of_ref(&s->zbud, ref - 1, sizeof(struct tmem_object));
}

static uint32_t *object_chain(struct tmem_bucket *b,
			      const struct tmem_oid *oid)
{
	return &b->chain[chain_of(tmem_oid_hash(oid))];
}

/* The link (a chain root or a child field) that refers to @oid, or NULL. */
static uint32_t *object_link(const struct tmem_store *s, uint32_t *link,
			     const struct tmem_oid *oid)
{
	struct tmem_object *obj;
	int c;

	while ((obj = object_of_ref(s, *link))) {
		c = oid_cmp(oid, &obj->oid);
		if (!c)
			return link;
		link = c < 0 ? &obj->left : &obj->right;
	}
	return NULL;
}

/*
 * Pages of one object come in runs (a file read or written back, a swap
 * area), so the stripe remembers the object found last.
 */
static struct tmem_object *object_find(const struct tmem_store *s,
				       const struct op *op,
				       const struct tmem_oid *oid)
{
	struct tmem_object *obj = op->b->recent;
	uint32_t *link;

	if (obj && oid_equal(&obj->oid, oid))
		return obj;
	link = object_link(s, &op->b->chain[op->chain], oid);
	if (!link)
		return NULL;
	obj = object_of_ref(s, *link);
	op->b->recent = obj;
	return obj;
}

/*
 * Insert @obj where its rank puts it: below the higher-ranked objects on
 * its search path, the rest of that path split around its id into its
 * two subtrees.
 */
static void tree_insert(const struct tmem_store *s, uint32_t *link,
			struct tmem_object *obj)
{
	uint64_t rank = object_rank(s, obj);
	struct tmem_object *cur;
	uint32_t *lo, *hi, ref;

	while ((cur = object_of_ref(s, *link)) && object_rank(s, cur) >= rank)
		link = oid_cmp(&obj->oid, &cur->oid) < 0 ? &cur->left :
							  &cur->right;
	ref = *link;
	lo = &obj->left;
	hi = &obj->right;
	while ((cur = object_of_ref(s, ref))) {
		if (oid_cmp(&cur->oid, &obj->oid) < 0) {
			*lo = ref;
			lo = &cur->right;
			ref = cur->right;
		} else {
			*hi = ref;
			hi = &cur->left;
			ref = cur->left;
		}
	}
	*lo = 0;
	*hi = 0;
	*link = object_ref(s, obj);
}

/* Replace the object at *@link by the merge of its two subtrees. */
static void tree_remove(const struct tmem_store *s, uint32_t *link)
{
	struct tmem_object *obj = object_of_ref(s, *link), *a, *b;
	uint32_t lo = obj->left, hi = obj->right;

	while ((a = object_of_ref(s, lo)) && (b = object_of_ref(s, hi))) {
		if (object_rank(s, a) >= object_rank(s, b)) {
			*link = lo;
			link = &a->right;
			lo = a->right;
		} else {
			*link = hi;
			link = &b->left;
			hi = b->left;
		}
	}
	*link = lo ? lo : hi;
}

/* The object of @root's tree with the least id above @after (any if NULL). */
static struct tmem_object *object_after(const struct tmem_store *s,
					uint32_t root,
					const struct tmem_oid *after)
{
	struct tmem_object *cur, *best = NULL;

	while ((cur = object_of_ref(s, root))) {
		if (!after || oid_cmp(&cur->oid, after) > 0) {
			best = cur;
			root = cur->left;
		} else {
			root = cur->right;
		}
	}
	return best;
}

static int tree_check(const struct tmem_store *s, uint32_t ref,
		      const struct tmem_oid *lo, const struct tmem_oid *hi,
		      uint64_t max_rank, uint64_t *count)
{
	struct tmem_object *obj = object_of_ref(s, ref);
	uint64_t rank;
	int l, r;

	if (!obj)
		return 0;
	rank = object_rank(s, obj);
	if ((lo && oid_cmp(&obj->oid, lo) <= 0) ||
	    (hi && oid_cmp(&obj->oid, hi) >= 0) || rank > max_rank)
		return -1;
	(*count)++;
	l = tree_check(s, obj->left, lo, &obj->oid, rank, count);
	r = tree_check(s, obj->right, &obj->oid, hi, rank, count);
	if (l < 0 || r < 0)
		return -1;
	return 1 + (l > r ? l : r);
}

/**
 * store_object_tree_check() - check one object tree of a stripe (tests)
 * @s: store
 * @b: stripe, locked or idle
 * @chain: which tree, < BUCKET_CHAINS
 * @count: incremented by the objects found
 *
 * Return: the tree's height, or -1 if an object is out of id or rank order.
 */
int store_object_tree_check(const struct tmem_store *s,
			    const struct tmem_bucket *b, unsigned int chain,
			    uint64_t *count)
{
	return tree_check(s, b->chain[chain], NULL, NULL, UINT64_MAX, count);
}

static struct tmem_object *object_new(struct tmem_store *s, const struct op *op,
				      const struct tmem_oid *oid)
{
	struct tmem_object *obj = tmem_cache_alloc(&s->objects[op->kind]);

	if (!obj)
		return NULL;
	obj->oid = *oid;
	obj->bucket = op->b;
	tree_insert(s, &op->b->chain[op->chain], obj);
	op->b->recent = obj;
	return obj;
}

static void object_unlink(const struct tmem_store *s, struct tmem_object *obj)
{
	struct tmem_bucket *b = obj->bucket;

	if (b->recent == obj)
		b->recent = NULL;
	tree_remove(s, object_link(s, object_chain(b, &obj->oid), &obj->oid));
}

static void object_free_if_empty(struct tmem_store *s,
				 struct tmem_object *obj)
{
	if (obj->nr_pages)
		return;
	object_unlink(s, obj);
	tmem_cache_free(&s->objects[pool_kind(obj->bucket->pool)], obj);
}

/* ---- entries ------------------------------------------------------------ */

static struct radix_node *node_alloc(void *cache)
{
	return tmem_cache_alloc(cache);
}

static void node_free(void *cache, struct radix_node *node)
{
	tmem_cache_free(cache, node);
}

static struct radix_alloc node_allocator(struct tmem_store *s,
					 enum tmem_kind kind)
{
	struct radix_alloc a = {
		.alloc = node_alloc,
		.free = node_free,
		.opaque = &s->nodes[kind],
	};

	return a;
}

static struct zbud_handle entry_handle(const struct tmem_entry *e)
{
	struct zbud_handle h = { .frame = e->where, .buddy = e->buddy };

	return h;
}

static bool entry_has_frame(const struct tmem_entry *e)
{
	return e->state == ENTRY_COMPRESSED || e->state == ENTRY_RAW;
}

/**
 * store_entry_account() - count an entry in or out of its stripe's stats
 * @b: the entry's bucket, locked
 * @e: the entry, in the state to count
 * @sign: 1 to count it in, -1 to count it out
 *
 * Writeback counts an entry out, changes its state, and counts it in.
 */
void store_entry_account(struct tmem_bucket *b, const struct tmem_entry *e,
			 int sign)
{
	struct bucket_stats *st = &b->stats;

	e->obj->nr_pages += sign;
	st->stored_pages += sign;
	switch (e->state) {
	case ENTRY_COMPRESSED:
		st->compressed_bytes += sign * (int64_t)e->size;
		break;
	case ENTRY_RAW:
		st->raw_pages += sign;
		break;
	case ENTRY_FILLED:
		if (e->where)
			st->same_pages += sign;
		else
			st->zero_pages += sign;
		e->obj->nr_filled += sign;
		break;
	case ENTRY_IMAGE:
	case ENTRY_IMAGE_RAW:
		st->image_pages += sign;
		break;
	}
}

/*
 * Free an entry already removed from its object's index.  Its buddy is
 * detached under zbud->lock before the entry memory goes (see the top of
 * this file); reclaim passes @detached when it has done that itself.
 */
static void entry_drop(struct tmem_store *s, struct tmem_bucket *b,
		       struct tmem_entry *e, bool detached)
{
	if (entry_has_frame(e) && !detached) {
		pthread_mutex_lock(&s->zbud.lock);
		zbud_free_locked(&s->zbud, entry_handle(e));
		pthread_mutex_unlock(&s->zbud.lock);
	} else if (e->state == ENTRY_IMAGE || e->state == ENTRY_IMAGE_RAW) {
		swapimg_buddy_put(s->wb->img, e->where, e->buddy);
	}
	store_entry_account(b, e, -1);
	tmem_cache_free(&s->entries[pool_kind(b->pool)], e);
}

/*
 * Remove the page at @index of @obj; returns 1 if there was one.  @detached:
 * its buddy was already freed (by a put that replaced it and then failed).
 */
static int page_remove_entry(struct tmem_store *s, const struct op *op,
			     struct tmem_object *obj, uint64_t index,
			     bool detached)
{
	struct radix_alloc a = node_allocator(s, op->kind);
	struct radix_item *it = radix_delete(&obj->root, index, &a);

	if (!it)
		return 0;
	entry_drop(s, op->b, (struct tmem_entry *)it, detached);
	object_free_if_empty(s, obj);
	return 1;
}

static int page_remove(struct tmem_store *s, const struct op *op,
		       struct tmem_object *obj, uint64_t index)
{
	return page_remove_entry(s, op, obj, index, false);
}

struct drain_ctx {
	struct tmem_store *s;
	struct tmem_bucket *b;
	uint64_t pages;
};

static void drain_one(struct radix_item *it, void *arg)
{
	struct drain_ctx *d = arg;

	entry_drop(d->s, d->b, (struct tmem_entry *)it, false);
	d->pages++;
}

/* Remove every page of @obj and the object itself; returns pages removed. */
static uint64_t object_drain(struct tmem_store *s, struct tmem_bucket *b,
			     struct tmem_object *obj)
{
	struct radix_alloc a = node_allocator(s, pool_kind(b->pool));
	struct drain_ctx d = { .s = s, .b = b, .pages = 0 };

	radix_drain(&obj->root, &a, drain_one, &d);
	object_free_if_empty(s, obj);
	return d.pages;
}

/* ---- reclaim ------------------------------------------------------------ */

/**
 * store_reclaim_start() - take the coldest frame of a kind off every list
 * @s: store; the caller holds no lock
 * @kind: which LRU
 * @owner_bucket: set to the buckets of the frame's two owners (or NULL)
 *
 * The owners are then handled one by one under their bucket locks with
 * store_detach_owner_locked() (see the top of this file for why that is
 * safe), and the frame freed with zbud_reclaim_finish_locked().
 *
 * Return: the frame, or ZBUD_NIL if the kind has none.
 */
uint32_t store_reclaim_start(struct tmem_store *s, enum tmem_kind kind,
			     struct tmem_bucket *owner_bucket[2])
{
	struct zbud *z = &s->zbud;
	unsigned int i;
	uint32_t fn;

	owner_bucket[0] = owner_bucket[1] = NULL;
	pthread_mutex_lock(&z->lock);
	fn = zbud_reclaim_start_locked(z, kind);
	for (i = 0; fn != ZBUD_NIL && i < 2; i++)
		if (z->desc[fn].owner[i] != ZBUD_NO_OWNER)
			owner_bucket[i] = entry_of_ref(s,
				z->desc[fn].owner[i])->obj->bucket;
	pthread_mutex_unlock(&z->lock);
	return fn;
}

/**
 * store_detach_owner_locked() - take one owner off a frame under reclaim
 * @s: store
 * @fn: frame from store_reclaim_start()
 * @buddy: which owner
 *
 * The caller holds the lock of the bucket store_reclaim_start() noted.
 *
 * Return: the entry that still owned the buddy, or NULL if it went away.
 */
struct tmem_entry *store_detach_owner_locked(struct tmem_store *s,
					     uint32_t fn, unsigned int buddy)
{
	struct tmem_entry *e;

	pthread_mutex_lock(&s->zbud.lock);
	e = entry_of_ref(s, s->zbud.desc[fn].owner[buddy]);
	s->zbud.desc[fn].owner[buddy] = ZBUD_NO_OWNER;
	pthread_mutex_unlock(&s->zbud.lock);
	return e;
}

/* Drop one owner of a frame under reclaim. */
static void reclaim_owner(struct tmem_store *s, uint32_t fn, unsigned int buddy,
			  struct tmem_bucket *b)
{
	struct radix_alloc a = node_allocator(s, pool_kind(b->pool));
	struct tmem_object *obj;
	struct tmem_entry *e;

	pthread_mutex_lock(&b->lock);
	e = store_detach_owner_locked(s, fn, buddy);
	if (e) {
		obj = e->obj;
		radix_delete(&obj->root, e->ri.index, &a);
		b->stats.evicted_pages++;
		entry_drop(s, b, e, true);
		object_free_if_empty(s, obj);
	}
	pthread_mutex_unlock(&b->lock);
}

/**
 * store_evict_ephemeral_frame() - reclaim the least recently filled
 *				   ephemeral frame
 * @s: store; the caller holds no lock
 *
 * Return: 1 if a frame was freed, 0 if there is no ephemeral frame.
 */
long store_evict_ephemeral_frame(struct tmem_store *s)
{
	struct tmem_bucket *owner_bucket[2];
	unsigned int i;
	uint32_t fn;

	fn = store_reclaim_start(s, TMEM_EPHEMERAL, owner_bucket);
	if (fn == ZBUD_NIL)
		return 0;
	for (i = 0; i < 2; i++)
		if (owner_bucket[i])
			reclaim_owner(s, fn, i, owner_bucket[i]);
	pthread_mutex_lock(&s->zbud.lock);
	zbud_reclaim_finish_locked(&s->zbud, fn);
	s->evicted_frames++;
	pthread_mutex_unlock(&s->zbud.lock);
	return 1;
}

/* Drop the objects of one stripe that hold filled pages. */
static uint64_t evict_filled_in(struct tmem_store *s, struct tmem_bucket *b)
{
	uint64_t pages = 0;
	unsigned int c;

	pthread_mutex_lock(&b->lock);
	for (c = 0; c < BUCKET_CHAINS; c++) {
		struct tmem_object *obj = object_after(s, b->chain[c], NULL);
		struct tmem_oid at;

		for (; obj; obj = object_after(s, b->chain[c], &at)) {
			at = obj->oid;
			if (obj->nr_filled)
				pages += object_drain(s, b, obj);
		}
	}
	b->stats.evicted_pages += pages;
	pthread_mutex_unlock(&b->lock);
	return pages;
}

/*
 * With no ephemeral frame left, only filled ephemeral pages hold memory
 * (their entries and index nodes).  They are rare enough to be found by a
 * sweep: stripe by stripe over the ephemeral pools, resuming where the last
 * sweep stopped.
 */
static long evict_filled(struct tmem_store *s)
{
	unsigned int stripes = s->cfg.max_pools * POOL_BUCKETS, n;

	for (n = 0; n < stripes; n++) {
		unsigned int at = atomic_fetch_add(&s->fill_cursor, 1) % stripes;
		struct tmem_pool *p = atomic_load_explicit(
			&s->pools[at / POOL_BUCKETS], memory_order_acquire);
		uint64_t pages;

		if (!p || !atomic_load_explicit(&p->alive, memory_order_acquire) ||
		    pool_kind(p) != TMEM_EPHEMERAL)
			continue;
		pages = evict_filled_in(s, &p->bucket[at % POOL_BUCKETS]);
		if (pages)
			return (long)pages;
	}
	return 0;
}

/**
 * evict_ephemeral() - free some ephemeral memory
 * @s: store
 *
 * Return: > 0 if something was (or may have been) freed, 0 if the store
 * holds no ephemeral page.
 */
static long evict_ephemeral(struct tmem_store *s)
{
	long n = store_evict_ephemeral_frame(s);

	return n ? n : evict_filled(s);
}

/* ---- store --------------------------------------------------------------- */

/*
 * The secret of the object trees' shape.  Without getrandom() the time and
 * an address still differ from run to run: a guest could then at worst
 * make its own lookups slower.
 */
static uint64_t tree_key(void)
{
	struct timespec ts;
	uint64_t key;

	if (getrandom(&key, sizeof(key), GRND_NONBLOCK) == sizeof(key))
		return key;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return tmem_mix64((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts ^
			  ((uint64_t)ts.tv_sec << 32));
}

/**
 * tmem_store_create() - make an empty store
 * @cfg: settings (see struct tmem_config)
 * @out: the new store
 *
 * Pool structures are charged as pools are first created and frame
 * descriptors as arenas are mapped; tmem_persistent_capacity() counts all
 * that may come, so that neither ever lowers it.
 *
 * Return: 0, -TMEM_E_INVAL for settings tmem_config_check() refuses,
 * -TMEM_E_NOMEM.
 */
int tmem_store_create(const struct tmem_config *cfg, struct tmem_store **out)
{
	struct tmem_store *s;
	int k;

	if (!cfg || !out || tmem_config_check(cfg, NULL, 0) != TMEM_CFG_OK)
		return -TMEM_E_INVAL;
	/* cache shards are cache-line aligned */
	s = aligned_alloc(_Alignof(struct tmem_store), sizeof(*s));
	if (!s)
		return -TMEM_E_NOMEM;
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->max_frames = config_max_frames(cfg);
	if (zbud_init(&s->zbud, s->max_frames)) {
		free(s);
		return -TMEM_E_NOMEM;
	}
	s->pools = calloc(cfg->max_pools, sizeof(*s->pools));
	if (!s->pools) {
		zbud_fini(&s->zbud);
		free(s);
		return -TMEM_E_NOMEM;
	}
	s->fixed_bytes = config_fixed_bytes(cfg);
	s->tree_key = tree_key();
	for (k = 0; k < TMEM_NR_KINDS; k++) {
		tmem_cache_init(&s->entries[k], &s->zbud,
				sizeof(struct tmem_entry), k);
		tmem_cache_init(&s->objects[k], &s->zbud,
				sizeof(struct tmem_object), k);
		tmem_cache_init(&s->nodes[k], &s->zbud,
				sizeof(struct radix_node), k);
	}
	tmem_mutex_init(&s->pools_lock);
	*out = s;
	return 0;
}

/**
 * tmem_store_destroy() - free a store and everything in it
 * @s: store (NULL is ignored); no other call may be in progress
 */
void tmem_store_destroy(struct tmem_store *s)
{
	uint32_t i, j;
	int k;

	if (!s)
		return;
	writeback_stop(s);
	for (i = 0; s->pools && i < s->cfg.max_pools; i++) {
		struct tmem_pool *p = atomic_load(&s->pools[i]);

		if (!p)
			continue;
		for (j = 0; j < POOL_BUCKETS; j++)
			pthread_mutex_destroy(&p->bucket[j].lock);
		free(p);
	}
	free(s->pools);
	if (s->fixed_bytes) {
		for (k = 0; k < TMEM_NR_KINDS; k++) {
			tmem_cache_fini(&s->entries[k]);
			tmem_cache_fini(&s->objects[k]);
			tmem_cache_fini(&s->nodes[k]);
		}
		pthread_mutex_destroy(&s->pools_lock);
	}
	zbud_fini(&s->zbud);
	free(s);
}

/* ---- pools --------------------------------------------------------------- */

static struct tmem_pool *pool_alloc(uint32_t id)
{
	struct tmem_pool *p = calloc(1, sizeof(*p));
	unsigned int i;

	if (!p)
		return NULL;
	p->id = id;
	for (i = 0; i < POOL_BUCKETS; i++) {
		tmem_mutex_init(&p->bucket[i].lock);
		p->bucket[i].pool = p;
	}
	return p;
}

static int pool_find_shared_locked(struct tmem_store *s,
				   const struct tmem_uuid *uuid)
{
	uint32_t i;

	for (i = 0; i < s->cfg.max_pools; i++) {
		struct tmem_pool *p = atomic_load(&s->pools[i]);

		if (p && atomic_load(&p->alive) && p->shared &&
		    !memcmp(&p->uuid, uuid, sizeof(*uuid)))
			return (int)i;
	}
	return -1;
}

/* Charge a new pool structure, evicting ephemeral pages for room. */
static int charge_pool(struct tmem_store *s)
{
	uint64_t bytes = sizeof(struct tmem_pool);

	for (;;) {
		bool ok;

		pthread_mutex_lock(&s->zbud.lock);
		ok = avail_locked(s) >= bytes;
		if (ok) {
			s->fixed_bytes += bytes;
			s->pools_allocated++;
		}
		pthread_mutex_unlock(&s->zbud.lock);
		if (ok)
			return 0;
		if (!evict_ephemeral(s))
			return -TMEM_E_FULL;
	}
}

static int pool_free_slot_locked(struct tmem_store *s)
{
	uint32_t i;

	for (i = 0; i < s->cfg.max_pools; i++) {
		struct tmem_pool *p = atomic_load(&s->pools[i]);

		if (!p) {
			int ret = charge_pool(s);

			if (ret)
				return ret;
			p = pool_alloc(i);
			if (!p)
				return -TMEM_E_NOMEM;
			atomic_store_explicit(&s->pools[i], p,
					      memory_order_release);
			return (int)i;
		}
		if (!atomic_load(&p->alive))
			return (int)i;
	}
	return -TMEM_E_NO_POOLS;
}

/**
 * tmem_new_pool() - create a pool, or join a shared one
 * @s: store
 * @flags: TMEM_POOL_PERSISTENT, TMEM_POOL_SHARED
 * @uuid: the shared pool's UUID (TMEM_POOL_SHARED only, else NULL)
 *
 * A second call with the same UUID returns the same pool and takes a
 * reference; destroy_pool drops one.
 *
 * Return: the pool id, or -TMEM_E_INVAL, -TMEM_E_NO_POOLS, -TMEM_E_FULL,
 * -TMEM_E_UUID_KIND (the UUID names a pool of the other kind),
 * -TMEM_E_NOMEM.
 */
int tmem_new_pool(struct tmem_store *s, unsigned int flags,
		  const struct tmem_uuid *uuid)
{
	enum tmem_kind kind = (flags & TMEM_POOL_PERSISTENT) ?
			      TMEM_PERSISTENT : TMEM_EPHEMERAL;
	bool shared = flags & TMEM_POOL_SHARED;
	struct tmem_pool *p;
	int id;

	if (!s || (flags & ~(TMEM_POOL_PERSISTENT | TMEM_POOL_SHARED)) ||
	    shared != (uuid != NULL))
		return -TMEM_E_INVAL;
	pthread_mutex_lock(&s->pools_lock);
	id = shared ? pool_find_shared_locked(s, uuid) : -1;
	if (id >= 0) {
		p = atomic_load(&s->pools[id]);
		if (pool_kind(p) != kind) {
			id = -TMEM_E_UUID_KIND;
		} else {
			p->refs++;
		}
		goto out;
	}
	id = pool_free_slot_locked(s);
	if (id < 0)
		goto out;
	p = atomic_load(&s->pools[id]);
	atomic_store_explicit(&p->kind, kind, memory_order_relaxed);
	p->shared = shared;
	p->refs = 1;
	if (shared)
		p->uuid = *uuid;
	else
		memset(&p->uuid, 0, sizeof(p->uuid));
	atomic_store_explicit(&p->alive, 1, memory_order_release);
out:
	pthread_mutex_unlock(&s->pools_lock);
	return id;
}

static void stats_add(struct bucket_stats *dst, const struct bucket_stats *src)
{
	const uint64_t *a = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;
	size_t i;

	for (i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
		d[i] += a[i];
}

/* Empty every bucket of @p; returns pages removed. */
static uint64_t pool_flush_all(struct tmem_store *s, struct tmem_pool *p,
			       bool retire)
{
	uint64_t pages = 0;
	unsigned int i, c;

	for (i = 0; i < POOL_BUCKETS; i++) {
		struct tmem_bucket *b = &p->bucket[i];
		uint64_t n = 0;

		pthread_mutex_lock(&b->lock);
		for (c = 0; c < BUCKET_CHAINS; c++) {
			struct tmem_object *obj;

			while ((obj = object_of_ref(s, b->chain[c])))
				n += object_drain(s, b, obj);
		}
		b->stats.flushed_pages += n;
		pages += n;
		if (retire) {
			stats_add(&s->retired[pool_kind(p)], &b->stats);
			memset(&b->stats, 0, sizeof(b->stats));
		}
		pthread_mutex_unlock(&b->lock);
	}
	return pages;
}

/**
 * tmem_destroy_pool() - drop a reference to a pool; the last one empties
 *			 and frees the pool id
 * @s: store
 * @pool_id: pool
 * @flushed: if not NULL, set to the pages removed
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_BAD_POOL.
 */
int tmem_destroy_pool(struct tmem_store *s, uint32_t pool_id,
		      uint64_t *flushed)
{
	struct tmem_pool *p;
	uint64_t pages = 0;
	int ret = 0;

	if (!s)
		return -TMEM_E_INVAL;
	pthread_mutex_lock(&s->pools_lock);
	p = pool_get(s, pool_id);
	if (!p) {
		ret = -TMEM_E_BAD_POOL;
	} else if (--p->refs == 0) {
		atomic_store_explicit(&p->alive, 0, memory_order_release);
		pages = pool_flush_all(s, p, true);
	}
	pthread_mutex_unlock(&s->pools_lock);
	zbud_clean(&s->zbud);
	if (flushed)
		*flushed = pages;
	return ret;
}

/**
 * tmem_pool_kind() - kind of a pool
 * @s: store
 * @pool_id: pool
 *
 * Return: TMEM_EPHEMERAL or TMEM_PERSISTENT, or -TMEM_E_BAD_POOL.
 */
int tmem_pool_kind(struct tmem_store *s, uint32_t pool_id)
{
	struct tmem_pool *p = s ? pool_get(s, pool_id) : NULL;

	return p ? (int)pool_kind(p) : -TMEM_E_BAD_POOL;
}

/**
 * tmem_flush_pool() - remove every page of a pool
 * @s: store
 * @pool_id: pool
 * @flushed: if not NULL, set to the pages removed
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_BAD_POOL.
 */
int tmem_flush_pool(struct tmem_store *s, uint32_t pool_id, uint64_t *flushed)
{
	struct tmem_pool *p;
	uint64_t pages;

	if (!s)
		return -TMEM_E_INVAL;
	p = pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	pages = pool_flush_all(s, p, false);
	zbud_clean(&s->zbud);
	if (flushed)
		*flushed = pages;
	return 0;
}

/* ---- pages --------------------------------------------------------------- */

/**
 * struct page_data - a page ready to be stored
 * @state: ENTRY_COMPRESSED, ENTRY_RAW or ENTRY_FILLED
 * @data: bytes to copy into the frame (compressed or raw)
 * @size: their length
 * @pattern: fill word (ENTRY_FILLED)
 */
struct page_data {
	enum entry_state state;
	const uint8_t *data;
	unsigned int size;
	uint32_t pattern;
};

/*
 * Decide how a page is stored, compressing it straight from the caller's
 * buffer into this thread's scratch buffer.  No lock is held.
 */
static int page_prepare(struct tmem_store *s, enum tmem_kind kind,
			const struct iovec *iov, int iovcnt,
			struct page_data *pd)
{
	const uint8_t *src = pageio_source(iov, iovcnt, tls_bounce);
	int clen = 0;

	memset(pd, 0, sizeof(*pd));
	if (pageio_same_filled(src, &pd->pattern)) {
		pd->state = ENTRY_FILLED;
		return 0;
	}
	if (s->cfg.compressor == TMEM_COMP_LZ4)
		clen = LZ4_compress_fast((const char *)src, (char *)tls_cbuf,
					 TMEM_PAGE_SIZE,
					 (int)s->cfg.max_compressed,
					 s->cfg.lz4_acceleration);
	if (clen > 0) {
		pd->state = ENTRY_COMPRESSED;
		pd->data = tls_cbuf;
		pd->size = (unsigned int)clen;
		return 0;
	}
	if (kind == TMEM_EPHEMERAL && s->cfg.compressor == TMEM_COMP_LZ4)
		return -TMEM_E_INCOMPRESSIBLE;
	pd->state = ENTRY_RAW;
	pd->data = src;
	pd->size = TMEM_PAGE_SIZE;
	return 0;
}

/*
 * Make a new entry for @pd at @index of @obj; it owns its buddy on return.
 * When the index insert will need no node, nothing else of the put can
 * take memory: the rest of its reservation goes back under the same hold
 * of zbud->lock, saving the put a round trip.  So does the buddy of @old,
 * the entry being replaced, if it has one: its space is free for this very
 * page, and *old_detached tells the caller to drop @old as detached, also
 * when the put fails.  The bucket lock keeps @old from being read meanwhile.
 */
static struct tmem_entry *entry_new(struct tmem_store *s, struct op *op,
				    struct tmem_object *obj, uint64_t index,
				    const struct page_data *pd,
				    const struct tmem_entry *old,
				    bool *old_detached)
{
	struct tmem_entry *e = tmem_cache_alloc(&s->entries[op->kind]);
	struct zbud_populate pop;
	struct zbud_handle h;
	bool settle, hot;
	uint8_t *dst;
	int ret;

	if (!e)
		return NULL;
	e->ri.index = index;
	e->obj = obj;
	e->state = (uint8_t)pd->state;
	if (pd->state == ENTRY_FILLED) {
		e->where = pd->pattern;
		return e;
	}
	settle = old || !radix_nodes_needed(&obj->root, index);
	pthread_mutex_lock(&s->zbud.lock);
	if (old && entry_has_frame(old)) {
		zbud_free_locked(&s->zbud, entry_handle(old));
		*old_detached = true;
	}
	ret = zbud_alloc_locked(&s->zbud, op->kind, pd->size,
				entry_ref(s, e), &h);
	hot = !ret && zbud_frame_hot_locked(&s->zbud, h.frame);
	if (!ret && settle) {
		release_unused_locked(&s->zbud, op->kind, op->reserved);
		op->reserved = 0;
	}
	zbud_take_populate_locked(&s->zbud, &pop);
	pthread_mutex_unlock(&s->zbud.lock);
	zbud_populate(&s->zbud, &pop);
	if (ret) {
		tmem_cache_free(&s->entries[op->kind], e);
		return NULL;
	}
	/*
	 * The buddy is ours and its frame cannot be freed under us, so the
	 * copy needs only the bucket lock; whoever reads the frame's bytes
	 * takes the owner's bucket lock first (see the top of this file).
	 * Only a frame the kernel just zeroed is in the cache; into any other
	 * the copy streams, rather than read every line before writing it.
	 */
	dst = zbud_buddy_addr(&s->zbud, h, pd->size);
	if (hot)
		memcpy(dst, pd->data, pd->size);
	else
		pageio_copy_nocache(dst, pd->data, pd->size);
	e->where = h.frame;
	e->buddy = h.buddy;
	e->size = (uint16_t)pd->size;
	return e;
}

static unsigned int entry_size(const struct tmem_entry *e)
{
	return e->size;
}

/* Undo entry_new() for an entry that never made it into the index. */
static void entry_discard(struct tmem_store *s, const struct op *op,
			  struct tmem_entry *e)
{
	if (entry_has_frame(e)) {
		pthread_mutex_lock(&s->zbud.lock);
		zbud_free_locked(&s->zbud, entry_handle(e));
		pthread_mutex_unlock(&s->zbud.lock);
	}
	tmem_cache_free(&s->entries[op->kind], e);
}

/* The put itself, under the bucket lock.  On failure the old page is gone. */
static int put_locked(struct tmem_store *s, struct op *op,
		      const struct tmem_oid *oid, uint64_t index,
		      const struct page_data *pd, bool *replaced)
{
	struct radix_alloc a = node_allocator(s, op->kind);
	struct tmem_object *obj = object_find(s, op, oid);
	struct radix_item *old = NULL;
	bool old_detached = false;
	struct tmem_entry *e;
	void **slot = NULL;

	if (!obj) {
		obj = object_new(s, op, oid);
		if (!obj)
			return -TMEM_E_NOMEM;
	} else {
		slot = radix_slot(&obj->root, index);
		if (slot)
			old = *slot;
	}
	e = entry_new(s, op, obj, index, pd, (struct tmem_entry *)old,
		      &old_detached);
	if (!e)
		goto fail;
	if (slot) {		/* a replace: the tree keeps its shape */
		*slot = &e->ri;
	} else if (radix_insert(&obj->root, &e->ri, &a, &old)) {
		entry_discard(s, op, e);
		goto fail;
	}
	store_entry_account(op->b, e, 1);
	if (old) {
		entry_drop(s, op->b, (struct tmem_entry *)old, old_detached);
		*replaced = true;
	}
	return 0;
fail:
	if (!page_remove_entry(s, op, obj, index, old_detached))
		object_free_if_empty(s, obj);
	return -TMEM_E_NOMEM;
}

/*
 * A put that cannot store its page still removes the older one, whatever
 * stopped it (a page that is not one page, no room, incompressible), so
 * that a later get misses instead of returning stale data.
 */
static void put_refused(struct tmem_store *s, struct tmem_pool *p,
			const struct tmem_oid *oid, uint64_t index, int err)
{
	struct tmem_object *obj;
	struct op op;

	if (op_lock(p, oid, &op))
		return;
	op.b->stats.puts++;
	if (err == -TMEM_E_FULL)
		op.b->stats.reject_full++;
	else if (err == -TMEM_E_INCOMPRESSIBLE)
		op.b->stats.reject_incompressible++;
	else if (err == -TMEM_E_NOMEM)
		op.b->stats.reject_nomem++;
	obj = object_find(s, &op, oid);
	if (obj)
		page_remove(s, &op, obj, index);
	op_unlock(&op);
}

/**
 * tmem_put() - store a page, replacing any page at the same key
 * @s: store
 * @pool_id: pool
 * @oid: object id
 * @index: page index
 * @iov: the page, exactly TMEM_PAGE_SIZE bytes in 1..TMEM_MAX_IOV pieces
 * @iovcnt: pieces
 * @replaced: if not NULL, set to whether an older page was replaced
 *
 * The replacement is atomic: a later get returns the new page or, when
 * this put fails for any reason once @pool_id names a pool (a bad @iov
 * too), misses; never the old page.  A persistent put with a valid @iov
 * fails only when the store is full (see tmem_persistent_capacity()).
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_IOV, -TMEM_E_BAD_POOL,
 * -TMEM_E_FULL, -TMEM_E_INCOMPRESSIBLE (ephemeral only), -TMEM_E_NOMEM.
 */
int tmem_put(struct tmem_store *s, uint32_t pool_id,
	     const struct tmem_oid *oid, uint64_t index,
	     const struct iovec *iov, int iovcnt, bool *replaced)
{
	enum tmem_kind kind;
	struct page_data pd;
	struct tmem_pool *p;
	uint64_t need;
	bool dummy;
	struct op op;
	int ret;

	if (!replaced)
		replaced = &dummy;
	*replaced = false;
	if (!s || !oid)
		return -TMEM_E_INVAL;
	p = pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	kind = pool_kind(p);
	ret = pageio_valid(iov, iovcnt) ? 0 : -TMEM_E_IOV;
	if (!ret)
		ret = page_prepare(s, kind, iov, iovcnt, &pd);
	need = PUT_WORST_BYTES;
	if (!ret && pd.state == ENTRY_FILLED)
		need -= TMEM_PAGE_SIZE;
	if (!ret)
		ret = reserve_room(s, kind, need);
	if (ret) {
		put_refused(s, p, oid, index, ret);
		return ret;
	}
	op.reserved = need;
	ret = op_lock(p, oid, &op);
	if (!ret && op.kind != kind) {	/* destroyed and reused meanwhile */
		op_unlock(&op);
		ret = -TMEM_E_BAD_POOL;
	} else if (!ret) {
		op.b->stats.puts++;
		ret = put_locked(s, &op, oid, index, &pd, replaced);
		if (ret)
			op.b->stats.reject_nomem++;
		op_unlock(&op);
	}
	release_reservation(s, kind, op.reserved);
	zbud_clean(&s->zbud);
	return ret;
}

/**
 * struct page_copy - what a get took out of the store under the lock
 * @state: how the page was stored
 * @size: compressed bytes in tls_cbuf (ENTRY_COMPRESSED)
 * @pattern: fill word (ENTRY_FILLED)
 */
struct page_copy {
	enum entry_state state;
	unsigned int size;
	uint32_t pattern;
};

/* Under the bucket lock: copy the page out of its frame or slot (raw pages
 * go straight to the caller, compressed ones to the scratch buffer).
 */
static int page_copy_locked(struct tmem_store *s, const struct tmem_entry *e,
			    const struct iovec *iov, int iovcnt,
			    struct page_copy *pc)
{
	const uint8_t *src;

	pc->state = e->state;
	pc->size = entry_size(e);
	pc->pattern = e->where;
	if (e->state == ENTRY_IMAGE || e->state == ENTRY_IMAGE_RAW) {
		pc->state = e->state == ENTRY_IMAGE ? ENTRY_COMPRESSED :
						      ENTRY_RAW;
		return image_page_read(s, e, tls_cbuf, iov, iovcnt);
	}
	if (!entry_has_frame(e))
		return 0;
	src = zbud_buddy_addr(&s->zbud, entry_handle(e), pc->size);
	if (e->state == ENTRY_RAW)
		pageio_scatter(iov, iovcnt, src);
	else
		memcpy(tls_cbuf, src, pc->size);
	return 0;
}

static int page_finish(const struct iovec *iov, int iovcnt,
		       const struct page_copy *pc)
{
	uint8_t *dst;
	int n;

	if (pc->state == ENTRY_FILLED) {
		pageio_fill(iov, iovcnt, pc->pattern);
		return 0;
	}
	if (pc->state == ENTRY_RAW)
		return 0;
	dst = pageio_dest(iov, iovcnt, tls_bounce);
	n = LZ4_decompress_safe((const char *)tls_cbuf, (char *)dst,
				(int)pc->size, TMEM_PAGE_SIZE);
	if (n != TMEM_PAGE_SIZE)
		return -TMEM_E_IO;
	pageio_scatter(iov, iovcnt, dst);
	return 0;
}

static int lookup_locked(const struct tmem_store *s, const struct op *op,
			 const struct tmem_oid *oid, uint64_t index,
			 struct tmem_object **objp, struct tmem_entry **ep)
{
	*objp = object_find(s, op, oid);
	*ep = *objp ? (struct tmem_entry *)radix_lookup(&(*objp)->root,
							 index) : NULL;
	return *ep ? 0 : -TMEM_E_NOT_FOUND;
}

/**
 * tmem_get() - copy a page out
 * @s: store
 * @pool_id: pool
 * @oid: object id
 * @index: page index
 * @iov: destination, exactly TMEM_PAGE_SIZE bytes in 1..TMEM_MAX_IOV pieces
 * @iovcnt: pieces
 * @flags: TMEM_GET_EXCLUSIVE removes the page once copied
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_IOV, -TMEM_E_BAD_POOL,
 * -TMEM_E_NOT_FOUND, -TMEM_E_IO (stored data does not decompress; the
 * destination is then undefined).
 */
int tmem_get(struct tmem_store *s, uint32_t pool_id,
	     const struct tmem_oid *oid, uint64_t index,
	     const struct iovec *iov, int iovcnt, unsigned int flags)
{
	struct tmem_object *obj;
	struct page_copy pc;
	struct tmem_entry *e;
	struct tmem_pool *p;
	struct op op;
	int ret;

	if (!s || !oid || (flags & ~TMEM_GET_EXCLUSIVE))
		return -TMEM_E_INVAL;
	if (!pageio_valid(iov, iovcnt))
		return -TMEM_E_IOV;
	p = pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	ret = op_lock(p, oid, &op);
	if (ret)
		return ret;
	op.b->stats.gets++;
	ret = lookup_locked(s, &op, oid, index, &obj, &e);
	if (!ret) {
		op.b->stats.hits++;
		ret = page_copy_locked(s, e, iov, iovcnt, &pc);
		/* An unreadable page stays: a later get may be luckier. */
		if (!ret && (flags & TMEM_GET_EXCLUSIVE))
			page_remove(s, &op, obj, index);
	}
	op_unlock(&op);
	zbud_clean(&s->zbud);
	return ret ? ret : page_finish(iov, iovcnt, &pc);
}

/**
 * tmem_flush_page() - remove a page
 * @s: store
 * @pool_id: pool
 * @oid: object id
 * @index: page index
 *
 * Return: 1 if a page was removed, 0 if there was none, or -TMEM_E_INVAL,
 * -TMEM_E_BAD_POOL.
 */
int tmem_flush_page(struct tmem_store *s, uint32_t pool_id,
		    const struct tmem_oid *oid, uint64_t index)
{
	struct tmem_object *obj;
	struct tmem_pool *p;
	struct op op;
	int ret;

	if (!s || !oid)
		return -TMEM_E_INVAL;
	p = pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	ret = op_lock(p, oid, &op);
	if (ret)
		return ret;
	op.b->stats.flushes++;
	obj = object_find(s, &op, oid);
	ret = obj ? page_remove(s, &op, obj, index) : 0;
	op.b->stats.flushed_pages += (uint64_t)ret;
	op_unlock(&op);
	zbud_clean(&s->zbud);
	return ret;
}

/**
 * tmem_flush_object() - remove every page of an object
 * @s: store
 * @pool_id: pool
 * @oid: object id
 * @flushed: if not NULL, set to the pages removed
 *
 * Takes time proportional to the object's pages, not the pool's.
 *
 * Return: 0, or -TMEM_E_INVAL, -TMEM_E_BAD_POOL.
 */
int tmem_flush_object(struct tmem_store *s, uint32_t pool_id,
		      const struct tmem_oid *oid, uint64_t *flushed)
{
	struct tmem_object *obj;
	struct tmem_pool *p;
	uint64_t pages = 0;
	struct op op;
	int ret;

	if (!s || !oid)
		return -TMEM_E_INVAL;
	p = pool_get(s, pool_id);
	if (!p)
		return -TMEM_E_BAD_POOL;
	ret = op_lock(p, oid, &op);
	if (ret)
		return ret;
	op.b->stats.flush_objects++;
	obj = object_find(s, &op, oid);
	if (obj)
		pages = object_drain(s, op.b, obj);
	op.b->stats.flushed_pages += pages;
	op_unlock(&op);
	zbud_clean(&s->zbud);
	if (flushed)
		*flushed = pages;
	return 0;
}

/* ---- statistics ---------------------------------------------------------- */

static void kind_stats_add(struct tmem_kind_stats *k,
			   const struct bucket_stats *b)
{
	k->puts += b->puts;
	k->gets += b->gets;
	k->hits += b->hits;
	k->flushes += b->flushes;
	k->flush_objects += b->flush_objects;
	k->flushed_pages += b->flushed_pages;
	k->stored_pages += b->stored_pages;
	k->zero_pages += b->zero_pages;
	k->same_pages += b->same_pages;
	k->raw_pages += b->raw_pages;
	k->compressed_bytes += b->compressed_bytes;
	k->evicted_pages += b->evicted_pages;
	k->reject_full += b->reject_full;
	k->reject_incompressible += b->reject_incompressible;
	k->reject_nomem += b->reject_nomem;
	k->image_pages += b->image_pages;
}

static void pool_stats_add(struct tmem_pool *p, struct tmem_stats *st)
{
	unsigned int i;

	for (i = 0; i < POOL_BUCKETS; i++) {
		pthread_mutex_lock(&p->bucket[i].lock);
		kind_stats_add(&st->kind[pool_kind(p)], &p->bucket[i].stats);
		pthread_mutex_unlock(&p->bucket[i].lock);
	}
}

/**
 * tmem_get_stats() - snapshot the counters
 * @s: store
 * @st: filled in; counters of different stripes are read one stripe at a
 *	time, so a snapshot taken under load is not atomic as a whole
 */
void tmem_get_stats(struct tmem_store *s, struct tmem_stats *st)
{
	struct zbud *z = &s->zbud;
	uint32_t i;
	int k;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->pools_lock);
	for (k = 0; k < TMEM_NR_KINDS; k++)
		kind_stats_add(&st->kind[k], &s->retired[k]);
	for (i = 0; i < s->cfg.max_pools; i++) {
		struct tmem_pool *p = atomic_load(&s->pools[i]);

		if (!p)
			continue;
		if (atomic_load(&p->alive))
			st->pools++;
		pool_stats_add(p, st);
	}
	pthread_mutex_unlock(&s->pools_lock);

	pthread_mutex_lock(&z->lock);
	for (k = 0; k < TMEM_NR_KINDS; k++) {
		st->kind[k].frames = z->data_frames[k];
		st->kind[k].meta_frames = z->slab_frames[k];
	}
	st->kind[TMEM_EPHEMERAL].evicted_frames = s->evicted_frames;
	st->limit_bytes = s->cfg.limit_bytes;
	st->used_bytes = used_bytes_locked(s);
	st->meta_bytes = s->fixed_bytes +
			 z->arenas_mapped * ZBUD_ARENA_DESC_BYTES +
			 (z->slab_frames[0] + z->slab_frames[1]) *
			 TMEM_PAGE_SIZE;
	st->arenas = z->arenas_mapped;
	pthread_mutex_unlock(&z->lock);
	st->persistent_capacity = tmem_persistent_capacity(s);
	if (s->wb) {
		writeback_stats(s, &st->image);
		st->image.pages_in_image = st->kind[TMEM_PERSISTENT].image_pages;
	}
}
