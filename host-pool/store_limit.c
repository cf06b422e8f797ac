// SPDX-License-Identifier: BSD-3-Clause
/*
 * store_limit.c - a store's settings, its limit, the reservations of puts
 * and the persistent capacity (credits).
 *
 * Memory accounting: used = frames allocated * 4096 + fixed_bytes.  A put
 * first reserves the most it could allocate (store_put_worst(), less the
 * data frames for a filled page), evicting ephemeral frames until the reservation
 * fits, so that used + reserved never exceeds the limit; every frame taken
 * then consumes its kind's reservation, and the rest is returned when the
 * put ends, or already in the hold of zbud->lock that allocates its buddy
 * when its index insert will need no node (nothing else can follow).
 *
 * The limit may change at run time (tmem_set_limit()): it is read and
 * written under zbud->lock like the rest of the accounting, and a store
 * above a lowered limit takes no reservation until tmem_shrink() or the
 * guest's flushes bring it back within.
 *
 * The accounting is under zbud->lock (lock order: see store.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"
#include "swapimg.h"

/* ---- settings ------------------------------------------------------------ */

/**
 * tmem_config_init() - default settings (the TMEM_DEFAULT_* values)
 * @cfg: settings to fill
 *
 * 64 MiB, LZ4 at acceleration 1 (zstd at level 2 if chosen), incompressible
 * above 3/4 page, 32 pools, writeback from 90% down to 75% of the limit,
 * the zbud allocator.
 */
void tmem_config_init(struct tmem_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->limit_bytes = TMEM_DEFAULT_LIMIT;
	cfg->compressor = TMEM_DEFAULT_COMPRESSOR;
	cfg->lz4_acceleration = TMEM_DEFAULT_LZ4_ACCEL;
	cfg->zstd_level = TMEM_DEFAULT_ZSTD_LEVEL;
	cfg->max_compressed = TMEM_DEFAULT_MAX_COMPRESSED;
	cfg->max_pools = TMEM_DEFAULT_MAX_POOLS;
	cfg->wb_high_pct = TMEM_DEFAULT_WB_HIGH_PCT;
	cfg->wb_low_pct = TMEM_DEFAULT_WB_LOW_PCT;
	cfg->allocator = TMEM_DEFAULT_ALLOCATOR;
}

/**
 * store_put_worst() - most bytes one put can take
 * @cfg: settings
 *
 * PUT_WORST_BYTES, plus the frames beyond the first that a new unit of the
 * allocator takes (a zspage span of up to ZS_SPAN_FRAMES_MAX frames).
 */
uint64_t store_put_worst(const struct tmem_config *cfg)
{
	unsigned int span = cfg->allocator == TMEM_ALLOC_ZSMALLOC ?
			    ZS_SPAN_FRAMES_MAX : 1;

	return PUT_WORST_BYTES + (uint64_t)(span - 1) * TMEM_PAGE_SIZE;
}

/**
 * store_alloc_init() - set up the allocator a store's settings name
 * @s: store being created, its frame space initialised
 *
 * Return: 0, or -TMEM_E_NOMEM.
 */
int store_alloc_init(struct tmem_store *s)
{
	s->put_worst = store_put_worst(&s->cfg);
	if (s->cfg.allocator == TMEM_ALLOC_ZBUD) {
		s->alloc = &zbud_zalloc_ops;
		s->alloc_priv = &s->zbud;
		return 0;
	}
	s->zs = malloc(sizeof(*s->zs));
	if (!s->zs)
		return -TMEM_E_NOMEM;
	zs_init(s->zs, &s->zbud);
	s->alloc = &zs_zalloc_ops;
	s->alloc_priv = s->zs;
	return 0;
}

/* Most a failing image may let persistent puts take beyond the limit. */
static uint64_t overdraft_max(uint64_t limit_bytes)
{
	return limit_bytes / 4;
}

/**
 * store_max_frames() - frames a store's arenas must address for a limit
 * @limit_bytes: the limit
 *
 * Return: the frames the limit allows, plus the overdraft's.
 */
uint64_t store_max_frames(uint64_t limit_bytes)
{
	return limit_bytes / TMEM_PAGE_SIZE + ZBUD_DIRTY_MAX +
	       overdraft_max(limit_bytes) / TMEM_PAGE_SIZE;
}

/**
 * store_max_limit() - most the limit of a store may be raised to
 * @cfg: settings
 */
uint64_t store_max_limit(const struct tmem_config *cfg)
{
	return cfg->max_limit_bytes ? cfg->max_limit_bytes : cfg->limit_bytes;
}

/* Arenas that frames within a limit (and its overdraft) may map. */
static uint32_t limit_arenas(uint64_t limit_bytes)
{
	return (uint32_t)((store_max_frames(limit_bytes) +
			   ZBUD_ARENA_FRAMES - 1) / ZBUD_ARENA_FRAMES);
}

/**
 * store_fixed_bytes() - bytes charged for the store and its pool table
 * @cfg: settings
 *
 * Return: the initial store->fixed_bytes.
 */
uint64_t store_fixed_bytes(const struct tmem_config *cfg)
{
	uint64_t classes = cfg->allocator == TMEM_ALLOC_ZSMALLOC ?
			   sizeof(struct zspool) : 0;

	return (uint64_t)cfg->max_pools * sizeof(struct tmem_pool *) +
	       sizeof(struct tmem_store) + classes;
}

/*
 * Metadata an empty store already counts against its limit, as
 * tmem_persistent_capacity() does: the store, the pool table, the pools
 * still to come and every arena's frame descriptors.
 */
static uint64_t config_meta_bytes(const struct tmem_config *cfg)
{
	uint64_t arenas = limit_arenas(cfg->limit_bytes);

	return store_fixed_bytes(cfg) + arenas * ZBUD_ARENA_DESC_BYTES +
	       (uint64_t)cfg->max_pools * sizeof(struct tmem_pool);
}

/* An empty store must hold at least one put in the worst case. */
static bool config_meta_fits(const struct tmem_config *cfg)
{
	return config_meta_bytes(cfg) + store_put_worst(cfg) <= cfg->limit_bytes;
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
	    cfg->compressor != TMEM_COMP_ZSTD &&
	    cfg->compressor != TMEM_COMP_NONE)
		return config_why(TMEM_CFG_COMPRESSOR, why, len,
				  "must be lz4, zstd or none");
	if (cfg->lz4_acceleration < TMEM_LZ4_ACCEL_MIN ||
	    cfg->lz4_acceleration > TMEM_LZ4_ACCEL_MAX)
		return config_why(TMEM_CFG_LZ4_ACCEL, why, len,
				  "must be between %d and %d",
				  TMEM_LZ4_ACCEL_MIN, TMEM_LZ4_ACCEL_MAX);
	if (cfg->zstd_level < TMEM_ZSTD_LEVEL_MIN ||
	    cfg->zstd_level > TMEM_ZSTD_LEVEL_MAX)
		return config_why(TMEM_CFG_ZSTD_LEVEL, why, len,
				  "must be between %d and %d",
				  TMEM_ZSTD_LEVEL_MIN, TMEM_ZSTD_LEVEL_MAX);
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
	if (cfg->allocator != TMEM_ALLOC_ZBUD &&
	    cfg->allocator != TMEM_ALLOC_ZSMALLOC)
		return config_why(TMEM_CFG_ALLOCATOR, why, len,
				  "must be zbud or zsmalloc");
	if (cfg->max_limit_bytes && (cfg->max_limit_bytes < cfg->limit_bytes ||
				     cfg->max_limit_bytes > TMEM_MAX_LIMIT))
		return config_why(TMEM_CFG_MAX_LIMIT, why, len,
				  "must be 0 or between the limit (%llu bytes) "
				  "and %llu GiB",
				  (unsigned long long)cfg->limit_bytes,
				  TMEM_MAX_LIMIT >> 30);
	return TMEM_CFG_OK;
}

/* ---- limit accounting ------------------------------------------------ */

/**
 * store_used_bytes_locked() - bytes charged against the limit now
 * @s: store; the caller holds zbud->lock
 */
uint64_t store_used_bytes_locked(const struct tmem_store *s)
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
	uint64_t used = store_used_bytes_locked(s) +
			z->reserved[TMEM_EPHEMERAL] +
			z->reserved[TMEM_PERSISTENT];

	return used >= s->limit ? 0 : s->limit - used;
}

/**
 * store_release_unused_locked() - give back what a put reserved but did
 *				   not take
 * @z: the store's frames; the caller holds z->lock
 * @kind: the put's pool kind
 * @bytes: what the put reserved
 */
void store_release_unused_locked(struct zbud *z, enum tmem_kind kind,
				 uint64_t bytes)
{
	uint64_t taken = zbud_bytes_taken(false);
	uint64_t left = taken >= bytes ? 0 : bytes - taken;

	z->reserved[kind] -= left < z->reserved[kind] ? left : z->reserved[kind];
	if (left && kind == TMEM_EPHEMERAL && !z->reserved[kind])
		pthread_cond_broadcast(&z->reserve_cond);
}

/**
 * store_release_reservation() - settle a put's reservation when it ends
 * @s: store; the caller holds no lock
 * @kind: the put's pool kind
 * @bytes: what the put reserved
 */
void store_release_reservation(struct tmem_store *s, enum tmem_kind kind,
			       uint64_t bytes)
{
	struct zbud *z = &s->zbud;

	if (zbud_bytes_taken(false) < bytes) {
		pthread_mutex_lock(&z->lock);
		store_release_unused_locked(z, kind, bytes);
		pthread_mutex_unlock(&z->lock);
	}
	zbud_bytes_taken(true);
}

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
	enum wb_result ret = store_writeback_unit(s);

	if (ret == WB_NONE && store_writeback_wait_idle(s))
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
	ok = store_used_bytes_locked(s) + z->reserved[TMEM_EPHEMERAL] +
	     z->reserved[TMEM_PERSISTENT] + bytes <=
	     s->limit + overdraft_max(s->limit);
	if (ok)
		z->reserved[TMEM_PERSISTENT] += bytes;
	pthread_mutex_unlock(&z->lock);
	if (ok) {
		pthread_mutex_lock(&s->image.lock);
		s->image.overdraft_puts++;
		pthread_mutex_unlock(&s->image.lock);
	}
	return ok;
}

/**
 * store_reserve_room() - promise a put the memory it may need
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
int store_reserve_room(struct tmem_store *s, enum tmem_kind kind,
		       uint64_t bytes)
{
	zbud_bytes_taken(true);
	for (;;) {
		enum wb_result wb;
		uint64_t used;
		bool ok;

		pthread_mutex_lock(&s->zbud.lock);
		ok = try_reserve_locked(s, kind, bytes);
		used = store_used_bytes_locked(s);
		pthread_mutex_unlock(&s->zbud.lock);
		if (s->image.wb)
			writeback_kick(s->image.wb, used);
		if (ok)
			return 0;
		if (store_compact(s, false) > 0)
			continue;
		if (store_evict_ephemeral(s) > 0)
			continue;
		if (kind == TMEM_EPHEMERAL)
			return -TMEM_E_FULL;
		if (wait_ephemeral_reservations(s, bytes))
			continue;
		if (!s->image.img)
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
	if (!s->image.img || store_writeback_failing(s))
		return false;
	swapimg_reserve(s->image.img);
	return true;
}

/*
 * Caller holds zbud->lock: image slots a put may count on, allocated free
 * ones and those taken by writebacks whose unit is not freed yet (struct
 * tmem_store), read in one hold with the frames they stand for.  At most
 * the reserve (see swapimg_credit_slots()).  A writeback takes slots for
 * the largest unit, u frames, so the last u - 1 may be of no use.
 */
static uint64_t image_slots_locked(struct tmem_store *s)
{
	struct tmem_image *img = s->image.img;
	uint64_t slots = swapimg_credit_slots(img) + s->slots_in_flight;
	uint64_t reserve = swapimg_reserve_slots(img);
	uint64_t spare = s->alloc->span_frames_max - 1;

	if (slots > reserve)
		slots = reserve;
	return slots > spare ? slots - spare : 0;
}

/*
 * Caller holds zbud->lock: what persistent pages hold or may still take
 * without a persistent put.  Descriptors of every arena the limit may map
 * count as used: ephemeral puts may map arenas that persistent frames then
 * keep mapped; so do those a larger limit left mapped (they only go down:
 * zbud_set_arena_floor_locked()).
 */
static uint64_t committed_locked(const struct tmem_store *s)
{
	const struct zbud *z = &s->zbud;

	return s->fixed_bytes + z->reserved[TMEM_PERSISTENT] +
	       pools_to_come_bytes(s) +
	       (z->arena_floor + z->arenas_above) * ZBUD_ARENA_DESC_BYTES +
	       (z->data_frames[TMEM_PERSISTENT] +
		z->slab_frames[TMEM_PERSISTENT]) * TMEM_PAGE_SIZE;
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
 * frame shed (writeback frees a unit of u frames into u slots), among the
 * D persistent frames in RAM plus the n new ones:
 * n * W <= F + 4096 * min(S, D + n), W being store_put_worst().  With units
 * of up to u frames, a put brings up to u data frames, all of which can be
 * shed, but needs them at once: n * (W - 4096 * u) + 4096 * (u - 1) <=
 * F + 4096 * D (for zbud, u = 1, the same bound).  S counts at most the
 * reserve (see swapimg_credit_slots()).  And since every write behind them
 * may fail, the n puts must also fit the overdraft (reserve_overdraft()):
 * n * W <= F + overdraft_max().
 *
 * Between changes of the limit (tmem_set_limit()) it never decreases but
 * by a put; lowering the limit lowers it at once.
 */
uint64_t tmem_persistent_capacity(struct tmem_store *s)
{
	bool image = image_counts_for_credits(s);
	struct zbud *z = &s->zbud;
	uint64_t span = s->alloc->span_frames_max * TMEM_PAGE_SIZE;
	uint64_t committed, slots = 0, data, room, shed, w = s->put_worst;
	uint64_t n_slots, n_frames, n_over, most, limit;

	pthread_mutex_lock(&z->lock);
	data = z->data_frames[TMEM_PERSISTENT];
	committed = committed_locked(s);
	limit = s->limit;
	if (image)
		slots = image_slots_locked(s);
	pthread_mutex_unlock(&z->lock);
	room = committed >= limit ? 0 : limit - committed;
	if (!slots)
		return room / w;
	n_slots = (room + slots * TMEM_PAGE_SIZE) / w;
	shed = room + data * TMEM_PAGE_SIZE;
	n_frames = shed < span - TMEM_PAGE_SIZE ? 0 :
		   (shed - (span - TMEM_PAGE_SIZE)) / (w - span);
	most = limit + overdraft_max(limit);
	n_over = committed >= most ? 0 : (most - committed) / w;
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
	used = store_used_bytes_locked(s);
	pthread_mutex_unlock(&s->zbud.lock);
	return used;
}

/**
 * store_charge_pool() - charge a new pool structure against the limit
 * @s: store; the caller holds pools_lock
 *
 * Evicts ephemeral pages for room.
 *
 * Return: 0, or -TMEM_E_FULL.
 */
int store_charge_pool(struct tmem_store *s)
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
		if (!store_evict_ephemeral(s))
			return -TMEM_E_FULL;
	}
}

/* ---- changing the limit ---------------------------------------------- */

/**
 * store_limit_init() - start a new store at its configured limit
 * @s: store being created, its frame space initialised
 */
void store_limit_init(struct tmem_store *s)
{
	s->limit = s->cfg.limit_bytes;
	zbud_set_arena_floor_locked(&s->zbud, limit_arenas(s->limit));
}

/* Tell the writeback thread the watermarks of the limit now. */
static void limit_set_marks(struct tmem_store *s, uint64_t limit)
{
	if (s->image.wb)
		writeback_set_marks(s->image.wb,
				    limit / 100 * s->cfg.wb_high_pct,
				    limit / 100 * s->cfg.wb_low_pct);
}

/**
 * tmem_set_limit() - change the memory limit of a live store
 * @s: store
 * @limit_bytes: the new limit, TMEM_MIN_LIMIT..cfg.max_limit_bytes, and
 *		 room for the store's metadata and one put (as
 *		 tmem_config_check() requires of a new store)
 *
 * Growing takes effect at once: puts find room, and
 * tmem_persistent_capacity() rises by the room added.  Shrinking takes
 * effect at once for what is promised: no reservation is taken beyond the
 * new limit and the capacity falls (credits granted before stay the
 * caller's business: see tmem_limit_for_credits()); what is stored stays
 * until tmem_shrink() frees it.  The writeback watermarks follow the limit.
 *
 * Return: 0, or -TMEM_E_INVAL (NULL or out of range).
 */
int tmem_set_limit(struct tmem_store *s, uint64_t limit_bytes)
{
	struct tmem_config c;
	uint64_t used;

	if (!s)
		return -TMEM_E_INVAL;
	c = s->cfg;
	c.limit_bytes = limit_bytes;
	if (limit_bytes < TMEM_MIN_LIMIT ||
	    limit_bytes > store_max_limit(&s->cfg) || !config_meta_fits(&c))
		return -TMEM_E_INVAL;
	pthread_mutex_lock(&s->zbud.lock);
	s->limit = limit_bytes;
	zbud_set_arena_floor_locked(&s->zbud, limit_arenas(limit_bytes));
	used = store_used_bytes_locked(s);
	s->shrink_start = used > limit_bytes ? used : 0;
	pthread_mutex_unlock(&s->zbud.lock);
	limit_set_marks(s, limit_bytes);
	return 0;
}

/**
 * tmem_limit_for_credits() - the lowest limit that honours credits
 * @s: store
 * @credits: persistent puts promised and not yet made
 *
 * With a limit at least this high, tmem_persistent_capacity() is at least
 * @credits (the image, if any, can only add to it), so a caller lowering
 * the limit below it would break a promise.  It falls as promised puts
 * arrive and as persistent pages are flushed or written back.
 *
 * Return: bytes, possibly below TMEM_MIN_LIMIT.
 */
uint64_t tmem_limit_for_credits(struct tmem_store *s, uint64_t credits)
{
	uint64_t committed;

	pthread_mutex_lock(&s->zbud.lock);
	committed = committed_locked(s);
	pthread_mutex_unlock(&s->zbud.lock);
	return committed + credits * s->put_worst;
}

/*
 * Persistent pages to flush to free @over bytes: at the mean cost of a
 * persistent page in RAM (its share of data and metadata frames), rounded
 * up, at most all of them.
 */
static uint64_t excess_pages(uint64_t over, uint64_t ram_pages,
			     uint64_t ram_bytes)
{
	uint64_t n;

	if (!over || !ram_pages)
		return 0;
	if (!ram_bytes)
		return ram_pages;
	n = (over * ram_pages + ram_bytes - 1) / ram_bytes;
	return n < ram_pages ? n : ram_pages;
}

/**
 * store_resize_status() - fill a struct tmem_resize
 * @s: store; the caller holds no lock
 * @st: filled in
 * @stuck: the store can free nothing more by itself (tmem_shrink() said
 *	   so): all of the excess is persistent pages in RAM.  Otherwise
 *	   only what ephemeral frames and, with a working image, persistent
 *	   frames could not cover.
 */
void store_resize_status(struct tmem_store *s, struct tmem_resize *st,
			 bool stuck)
{
	struct zbud *z = &s->zbud;
	uint64_t ram_bytes, shed, over;
	struct tmem_stats stats;

	tmem_get_stats(s, &stats);
	pthread_mutex_lock(&z->lock);
	st->target_bytes = s->limit;
	st->used_bytes = store_used_bytes_locked(s);
	st->start_bytes = s->shrink_start;
	ram_bytes = (z->data_frames[TMEM_PERSISTENT] +
		     z->slab_frames[TMEM_PERSISTENT]) * TMEM_PAGE_SIZE;
	shed = (z->data_frames[TMEM_EPHEMERAL] +
		z->slab_frames[TMEM_EPHEMERAL]) * TMEM_PAGE_SIZE;
	pthread_mutex_unlock(&z->lock);
	if (s->image.img && !store_writeback_failing(s))
		shed += stats.kind[TMEM_PERSISTENT].frames * TMEM_PAGE_SIZE;
	st->done = st->used_bytes <= st->target_bytes;
	over = st->done ? 0 : st->used_bytes - st->target_bytes;
	if (!stuck)
		over = over > shed ? over - shed : 0;
	st->persistent_pages = stats.kind[TMEM_PERSISTENT].stored_pages;
	st->excess_pages = excess_pages(over, st->persistent_pages -
					stats.kind[TMEM_PERSISTENT].image_pages,
					ram_bytes);
}

/**
 * tmem_resize_status() - where the last change of the limit stands
 * @s: store
 * @st: filled in; @st->excess_pages counts only what no eviction or
 *	writeback could free (tmem_shrink() reports the rest)
 */
void tmem_resize_status(struct tmem_store *s, struct tmem_resize *st)
{
	store_resize_status(s, st, false);
}
