/*
 * Unit tests of the host pool: zbud packing and best fit, slab shards, LRU
 * order, the memory limit (also with zero pages only), UUID sharing,
 * exclusive gets, replace semantics, incompressible pages, scattered
 * buffers, argument checking, the persistent capacity guarantee, the
 * copy into cold frames and the object trees.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>

#include "../check.h"
#include "compress.h"
#include "hash.h"
#include "pageio.h"
#include "pages.h"
#include "store_internal.h"
#include "test_config.h"

static uint8_t page[TMEM_PAGE_SIZE], out[TMEM_PAGE_SIZE];

static struct tmem_store *store_new(uint64_t limit, unsigned int max_pools)
{
	struct tmem_config cfg;
	struct tmem_store *s;

	test_config_init(&cfg);
	cfg.limit_bytes = limit;
	cfg.max_pools = max_pools;
	REQUIRE(tmem_store_create(&cfg, &s) == 0);
	return s;
}

static enum tmem_allocator test_allocator(void)
{
	struct tmem_config cfg;

	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	return cfg.allocator;
}

static struct tmem_oid oid_n(uint64_t n)
{
	struct tmem_oid o = { { n, n * 3, ~n } };

	return o;
}

static int put(struct tmem_store *s, int pool, uint64_t obj, uint64_t idx,
	       uint8_t *p)
{
	struct tmem_oid o = oid_n(obj);
	struct iovec v = page_iov(p);

	return tmem_put(s, (uint32_t)pool, &o, idx, &v, 1, NULL);
}

static int get(struct tmem_store *s, int pool, uint64_t obj, uint64_t idx,
	       unsigned int flags)
{
	struct tmem_oid o = oid_n(obj);
	struct iovec v = page_iov(out);

	return tmem_get(s, (uint32_t)pool, &o, idx, &v, 1, flags);
}

static void test_zbud_packing(void)
{
	struct tmem_store *s;
	struct tmem_stats st;
	int pool;

	if (test_allocator() != TMEM_ALLOC_ZBUD)
		return;
	s = store_new(16 << 20, 4);
	pool = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);

	/* two pages of ~1.5 KiB share a frame, a third opens another */
	page_make(page, SHAPE_SIZED, 1, 1500);
	CHECK_EQ(put(s, pool, 1, 0, page), 0);
	page_make(page, SHAPE_SIZED, 2, 1500);
	CHECK_EQ(put(s, pool, 1, 1, page), 0);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].frames, 1);
	page_make(page, SHAPE_SIZED, 3, 1500);
	CHECK_EQ(put(s, pool, 1, 2, page), 0);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].frames, 2);
	/* a 3 KiB page cannot join a half-full frame; a small one fills it */
	page_make(page, SHAPE_SIZED, 4, 2900);
	CHECK_EQ(put(s, pool, 1, 3, page), 0);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].frames, 3);
	page_make(page, SHAPE_SIZED, 5, 900);
	CHECK_EQ(put(s, pool, 1, 4, page), 0);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].frames, 3);
	/* every page reads back */
	page_make(page, SHAPE_SIZED, 4, 2900);
	CHECK_EQ(get(s, pool, 1, 3, 0), 0);
	CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	page_make(page, SHAPE_SIZED, 5, 900);
	CHECK_EQ(get(s, pool, 1, 4, 0), 0);
	CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	/* freeing both buddies frees the frame */
	CHECK_EQ(tmem_flush_page(s, pool, &(struct tmem_oid){ { 1, 3, ~1ull } },
				 0), 1);
	CHECK_EQ(tmem_flush_page(s, pool, &(struct tmem_oid){ { 1, 3, ~1ull } },
				 1), 1);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].frames, 2);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, 3);
	tmem_store_destroy(s);
}

/*
 * zsmalloc packs pages of ~1.5 KiB eight to a span of three frames, where
 * zbud takes a frame for two; flushing them all frees every span.
 */
static void test_zsmalloc_packing(void)
{
	struct tmem_store *s;
	struct tmem_stats st;
	unsigned int i;
	int pool;

	if (test_allocator() != TMEM_ALLOC_ZSMALLOC)
		return;
	s = store_new(16 << 20, 4);
	pool = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	for (i = 0; i < 64; i++) {
		page_make(page, SHAPE_SIZED, i, 1500);
		CHECK_EQ(put(s, pool, 1, i, page), 0);
	}
	tmem_get_stats(s, &st);
	printf("packing: %llu bytes in %llu frames\n", (unsigned long long)st.kind[TMEM_PERSISTENT].compressed_bytes, (unsigned long long)st.kind[TMEM_PERSISTENT].frames);
	CHECK(st.kind[TMEM_PERSISTENT].frames * TMEM_PAGE_SIZE <=
	      (st.kind[TMEM_PERSISTENT].compressed_bytes + 64 * 20) * 105 /
	      100 + 3 * TMEM_PAGE_SIZE);
	CHECK(st.kind[TMEM_PERSISTENT].frames < 32);
	for (i = 0; i < 64; i++) {
		page_make(page, SHAPE_SIZED, i, 1500);
		CHECK_EQ(get(s, pool, 1, i, 0), 0);
		CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	}
	CHECK_EQ(tmem_flush_object(s, pool, &(struct tmem_oid){ { 1, 3, ~1ull } },
				   NULL), 0);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].frames, 0);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, 0);
	tmem_store_destroy(s);
}

/*
 * After random flushes, compaction gives back the sparse spans' frames and
 * every page still reads back (issue 16: within 10 % of the live bytes).
 */
static void test_zsmalloc_compaction(void)
{
	struct tmem_store *s;
	struct tmem_stats st;
	uint64_t before, freed, live;
	unsigned int i;
	int pool;

	if (test_allocator() != TMEM_ALLOC_ZSMALLOC)
		return;
	s = store_new(96 << 20, 4);
	pool = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	for (i = 0; i < 20000; i++) {
		page_make(page, SHAPE_SIZED, i, 300 + (i * 7919) % 2700);
		CHECK_EQ(put(s, pool, 1, i, page), 0);
	}
	for (i = 0; i < 20000; i++)
		if ((i * 2654435761u) >> 31)
			CHECK_EQ(tmem_flush_page(s, pool, &(struct tmem_oid){
				{ 1, 3, ~1ull } }, i), 1);
	tmem_get_stats(s, &st);
	before = st.kind[TMEM_PERSISTENT].frames;
	freed = tmem_compact(s);
	tmem_get_stats(s, &st);
	live = st.kind[TMEM_PERSISTENT].compressed_bytes;
	printf("compaction: %llu -> %llu frames, live %llu bytes\n", (unsigned long long)before, (unsigned long long)(before - freed), (unsigned long long)live);
	CHECK(freed > 0);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].frames, before - freed);
	CHECK_EQ(st.compact_frames, freed);
	CHECK(st.kind[TMEM_PERSISTENT].frames * TMEM_PAGE_SIZE * 100 <=
	      live * 110);
	for (i = 0; i < 20000; i++) {
		int r = get(s, pool, 1, i, 0);

		if ((i * 2654435761u) >> 31) {
			CHECK_EQ(r, -TMEM_E_NOT_FOUND);
			continue;
		}
		CHECK_EQ(r, 0);
		page_make(page, SHAPE_SIZED, i, 300 + (i * 7919) % 2700);
		CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	}
	tmem_store_destroy(s);
}

static void test_zbud_direct(void)
{
	struct zbud z;
	struct zbud_handle h1, h2, h3;
	uint32_t owner = 12345;

	REQUIRE(zbud_init(&z, 4096) == 0);
	z.reserved[TMEM_EPHEMERAL] = 1ull << 30;
	pthread_mutex_lock(&z.lock);
	CHECK_EQ(zbud_alloc_locked(&z, TMEM_EPHEMERAL, 1000, owner, &h1), 0);
	CHECK_EQ(h1.buddy, ZBUD_FIRST);
	/* best fit: the half-full frame takes a page that fits */
	CHECK_EQ(zbud_alloc_locked(&z, TMEM_EPHEMERAL, 3000, owner, &h2), 0);
	CHECK_EQ(h2.frame, h1.frame);
	CHECK_EQ(h2.buddy, ZBUD_LAST);
	CHECK(zbud_buddy_addr(&z, h2, 3000) ==
	      zbud_frame_addr(&z, h2.frame) + TMEM_PAGE_SIZE - 47 * 64);
	/* frames never mix kinds */
	z.reserved[TMEM_PERSISTENT] = 1ull << 30;
	CHECK_EQ(zbud_alloc_locked(&z, TMEM_PERSISTENT, 64, owner, &h3), 0);
	CHECK(h3.frame != h1.frame);
	CHECK_EQ(z.data_frames[TMEM_EPHEMERAL], 1);
	CHECK_EQ(z.data_frames[TMEM_PERSISTENT], 1);
	zbud_free_locked(&z, h1);
	zbud_free_locked(&z, h2);
	zbud_free_locked(&z, h3);
	CHECK_EQ(z.frames_total, 0);
	pthread_mutex_unlock(&z.lock);
	zbud_fini(&z);
}

/* ---- the bound on memory faulted in ahead ----------------------------- */

/* Frames of @z resident now (mincore() over the whole range). */
static uint64_t zbud_resident(const struct zbud *z)
{
	static unsigned char vec[64 * ZBUD_ARENA_FRAMES];
	uint64_t frames = (uint64_t)z->nr_arenas * ZBUD_ARENA_FRAMES, n = 0, i;

	REQUIRE(frames <= sizeof(vec));
	REQUIRE(mincore(z->base, frames * TMEM_PAGE_SIZE, vec) == 0);
	for (i = 0; i < frames; i++)
		n += vec[i] & 1;
	return n;
}

/* Take a frame as a put does, faulting in ahead after the lock. */
static uint32_t frame_take(struct zbud *z)
{
	struct zbud_populate pop;
	uint32_t fn;

	pthread_mutex_lock(&z->lock);
	fn = zbud_frame_alloc_locked(z, TMEM_PERSISTENT);
	zbud_take_populate_locked(z, &pop);
	pthread_mutex_unlock(&z->lock);
	REQUIRE(fn != ZBUD_NIL);
	zbud_populate(z, &pop);
	memset(zbud_frame_addr(z, fn), 0x5a, TMEM_PAGE_SIZE);
	return fn;
}

static void frame_drop(struct zbud *z, uint32_t fn)
{
	pthread_mutex_lock(&z->lock);
	zbud_frame_free_locked(z, fn);
	pthread_mutex_unlock(&z->lock);
	zbud_clean(z);
}

/*
 * Frames faulted in but neither allocated nor kept for reuse (dirty or on
 * their way back to the OS) stay within ZBUD_POPULATE_AHEAD, whatever the
 * order of allocation: also when arenas drain and the lowest one with room
 * is mapped afresh below an arena that still has frames faulted in ahead.
 * Records the most seen in @worst.
 */
static void check_ahead_bound(const struct zbud *z, uint64_t *worst)
{
	uint64_t kept = z->frames_total + z->nr_dirty + z->nr_cleaning;
	uint64_t res = zbud_resident(z), ahead = res > kept ? res - kept : 0;

	if (ahead > *worst)
		*worst = ahead;
	/* and all the slack together, as docs/qemu-device.md counts it */
	CHECK(res <= z->frames_total + ZBUD_SLACK_FRAMES);
}

static void test_populate_bound(void)
{
	static uint32_t fns[6 * ZBUD_ARENA_FRAMES];
	uint64_t worst = 0, i, n = 0;
	struct zbud z;
	int a;

	REQUIRE(zbud_init(&z, 6 * ZBUD_ARENA_FRAMES) == 0);
	z.reserved[TMEM_PERSISTENT] = 1ull << 40;
	/* arenas 0..4 full, the frontier in arena 5 */
	while (n < 5 * ZBUD_ARENA_FRAMES + 10) {
		fns[n++] = frame_take(&z);
		check_ahead_bound(&z, &worst);
	}
	/*
	 * Drain arena 3, then arena 1: each time push its last frames off
	 * the dirty stack with frees from arena 4, so that it is unmapped,
	 * then take a few frames: past the dirty ones and those faulted in
	 * ahead they come from the drained arena, mapped afresh below the
	 * arena where the last frames were faulted in ahead.
	 */
	for (a = 3; a >= 1; a -= 2) {
		uint64_t pushed = 0;

		for (i = 0; i < n; i++)
			if (fns[i] != ZBUD_NIL &&
			    fns[i] >> ZBUD_ARENA_SHIFT == (uint32_t)a) {
				frame_drop(&z, fns[i]);
				fns[i] = ZBUD_NIL;
			}
		for (i = 0; i < n && pushed < ZBUD_DIRTY_MAX; i++)
			if (fns[i] != ZBUD_NIL &&
			    fns[i] >> ZBUD_ARENA_SHIFT == 4) {
				frame_drop(&z, fns[i]);
				fns[i] = ZBUD_NIL;
				pushed++;
			}
		CHECK(!z.arenas[a].mapped);
		for (i = 0; i < ZBUD_DIRTY_MAX + ZBUD_POPULATE_AHEAD + 10;
		     i++) {
			fns[n++] = frame_take(&z);
			check_ahead_bound(&z, &worst);
		}
		CHECK(z.arenas[a].mapped);
	}
	printf("populate: at most %" PRIu64 " frames faulted in ahead\n",
	       worst);
	CHECK(worst > 0);	/* MADV_POPULATE_WRITE did work */
	CHECK(worst <= ZBUD_POPULATE_AHEAD);
	for (i = 0; i < n; i++)
		if (fns[i] != ZBUD_NIL)
			frame_drop(&z, fns[i]);
	zbud_fini(&z);
}

/* Best fit: the half-full frame with the fewest free chunks that suffice. */
static void test_zbud_best_fit(void)
{
	static const unsigned int used[] = { 54, 44, 34 };	/* chunks */
	struct zbud_handle h[3], t;
	struct zbud z;
	unsigned int i;

	REQUIRE(zbud_init(&z, 4096) == 0);
	z.reserved[TMEM_PERSISTENT] = 1ull << 30;
	pthread_mutex_lock(&z.lock);
	for (i = 0; i < 3; i++)	/* frames with 10, 20 and 30 free chunks */
		CHECK_EQ(zbud_alloc_locked(&z, TMEM_PERSISTENT, used[i] * 64,
					   i, &h[i]), 0);
	CHECK_EQ(zbud_alloc_locked(&z, TMEM_PERSISTENT, 15 * 64, 9, &t), 0);
	CHECK_EQ(t.frame, h[1].frame);
	CHECK_EQ(zbud_alloc_locked(&z, TMEM_PERSISTENT, 15 * 64, 9, &t), 0);
	CHECK_EQ(t.frame, h[2].frame);
	CHECK_EQ(zbud_alloc_locked(&z, TMEM_PERSISTENT, 10 * 64, 9, &t), 0);
	CHECK_EQ(t.frame, h[0].frame);
	CHECK_EQ(z.unbuddied_mask[TMEM_PERSISTENT], 0);
	/* freeing a buddy puts its frame back where best fit finds it */
	zbud_free_locked(&z, t);
	CHECK_EQ(z.unbuddied_mask[TMEM_PERSISTENT], 1ull << 10);
	CHECK_EQ(zbud_alloc_locked(&z, TMEM_PERSISTENT, 11 * 64, 9, &t), 0);
	CHECK(t.frame != h[0].frame && t.frame != h[1].frame &&
	      t.frame != h[2].frame);
	pthread_mutex_unlock(&z.lock);
	zbud_fini(&z);
}

/*
 * The copy into a cold frame writes exactly the buddy's chunks: the bytes,
 * then zeroes up to the next line, and nothing past it.
 */
static void test_copy_nocache(void)
{
	static const unsigned int lens[] = { 1, 63, 64, 65, 1000, 4095, 4096 };
	static _Alignas(64) uint8_t dst[TMEM_PAGE_SIZE + 2 * PAGEIO_LINE];
	struct zbud_handle h;
	unsigned int i, j, end;
	struct zbud z;
	bool ok;

	page_make(page, SHAPE_RANDOM, 7, TMEM_PAGE_SIZE);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		memset(dst, 0xaa, sizeof(dst));
		pageio_copy_nocache(dst, page, lens[i]);
		end = (lens[i] + PAGEIO_LINE - 1) & ~(PAGEIO_LINE - 1);
		CHECK(!memcmp(dst, page, lens[i]));
		for (ok = true, j = lens[i]; j < end; j++)
			ok = ok && !dst[j];
		for (j = end; j < sizeof(dst); j++)
			ok = ok && dst[j] == 0xaa;
		CHECK(ok);
	}
	/* the frame just faulted in is hot; one a full arena away is not */
	REQUIRE(zbud_init(&z, 4096) == 0);
	z.reserved[TMEM_PERSISTENT] = 1ull << 30;
	pthread_mutex_lock(&z.lock);
	CHECK_EQ(zbud_alloc_locked(&z, TMEM_PERSISTENT, 4096, 1, &h), 0);
	CHECK(zbud_frame_hot_locked(&z, h.frame));
	CHECK(!zbud_frame_hot_locked(&z, h.frame + ZBUD_ARENA_FRAMES));
	z.fresh_end = h.frame + ZBUD_HOT_FRAMES + 1;
	CHECK(!zbud_frame_hot_locked(&z, h.frame));
	pthread_mutex_unlock(&z.lock);
	zbud_fini(&z);
}

/* The inverse of tmem_mix64(), to aim ids at one stripe and one tree. */
static uint64_t unmix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0x9cb4b2f8129337dbull;
	x ^= x >> 33;
	x *= 0x4f74430c22a54005ull;
	x ^= x >> 33;
	return x;
}

/*
 * Object @i of a guest that knows the hash: the ids rise (a plain search
 * tree would be a list) and all hash to one stripe and one tree.
 */
static struct tmem_oid crafted_oid(uint64_t i)
{
	struct tmem_oid o;

	o.id[0] = i;
	o.id[2] = i * 7919;
	o.id[1] = unmix(0x5eed ^ o.id[0]) ^ tmem_mix64(o.id[2]);
	return o;
}

/* Every tree of @pool in order; returns objects, *height the tallest. */
static uint64_t trees_check(struct tmem_store *s, int pool, int *height)
{
	struct tmem_pool *p = atomic_load(&s->pools[pool]);
	uint64_t objects = 0;
	unsigned int b, c;
	int h;

	*height = 0;
	for (b = 0; b < POOL_BUCKETS; b++)
		for (c = 0; c < BUCKET_CHAINS; c++) {
			h = store_object_tree_check(s, &p->bucket[b], c,
						    &objects);
			CHECK(h >= 0);
			if (h > *height)
				*height = h;
		}
	return objects;
}

/*
 * A guest that makes many objects, even ones whose ids all hash to one
 * tree, gets shallow trees: lookups stay logarithmic, flushes find them.
 */
static void test_object_trees(void)
{
	enum { N = 20000 };
	struct tmem_store *s = store_new(64 << 20, 2);
	struct tmem_oid o;
	struct iovec v = page_iov(page);
	int pool = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL), height;
	uint64_t i, flushed;

	REQUIRE(pool >= 0);
	o = crafted_oid(1);
	CHECK_EQ(tmem_oid_hash(&o), tmem_mix64(0x5eed));
	memset(page, 0, sizeof(page));
	for (i = 0; i < N; i++) {
		o = crafted_oid(i);
		CHECK_EQ(tmem_put(s, (uint32_t)pool, &o, i, &v, 1, NULL), 0);
		CHECK_EQ(put(s, pool, i + 1, 0, page), 0);
	}
	CHECK_EQ(trees_check(s, pool, &height), 2 * N);
	CHECK(height <= 64);	/* a chain would be N deep */
	for (i = 0; i < N; i += 2) {
		o = crafted_oid(i);
		CHECK_EQ(tmem_flush_object(s, (uint32_t)pool, &o, &flushed), 0);
		CHECK_EQ(flushed, 1);
	}
	CHECK_EQ(trees_check(s, pool, &height), 2 * N - N / 2);
	CHECK(height <= 64);
	for (i = 0; i < N; i++) {
		o = crafted_oid(i);
		v = page_iov(out);
		CHECK_EQ(tmem_get(s, (uint32_t)pool, &o, i, &v, 1, 0),
			 i % 2 ? 0 : -TMEM_E_NOT_FOUND);
		CHECK_EQ(get(s, pool, i + 1, 0, 0), 0);
	}
	CHECK_EQ(tmem_flush_pool(s, (uint32_t)pool, &flushed), 0);
	CHECK_EQ(flushed, 2 * N - N / 2);
	CHECK_EQ(trees_check(s, pool, &height), 0);
	tmem_store_destroy(s);
}

struct shard_user {
	struct tmem_cache *c;
	void *obj[300];
};

static void *shard_alloc(void *arg)
{
	struct shard_user *u = arg;
	unsigned int i;

	for (i = 0; i < 300; i++)
		u->obj[i] = tmem_cache_alloc(u->c);
	return NULL;
}

/*
 * Threads allocate from shards of their own, and an object freed by any
 * thread goes back to its frame's shard: every frame is given back.
 */
static void test_slab_shards(void)
{
	struct shard_user u[2];
	struct tmem_cache c;
	pthread_t tid[2];
	struct zbud z;
	unsigned int i, j;

	REQUIRE(zbud_init(&z, 4096) == 0);
	z.reserved[TMEM_PERSISTENT] = 1ull << 30;
	tmem_cache_init(&c, &z, 32, TMEM_PERSISTENT);
	for (i = 0; i < 2; i++) {
		u[i].c = &c;
		REQUIRE(pthread_create(&tid[i], NULL, shard_alloc, &u[i]) == 0);
	}
	for (i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	CHECK_EQ(tmem_cache_objects(&c), 600);
	/* 128 objects of 32 bytes per frame: 3 frames per thread */
	CHECK_EQ(z.slab_frames[TMEM_PERSISTENT], 6);
	for (i = 0; i < 300; i++)
		for (j = 0; j < 300; j++)
			CHECK(((uintptr_t)u[0].obj[i] >> 12) !=
			      ((uintptr_t)u[1].obj[j] >> 12));
	for (i = 0; i < 300; i++) {
		tmem_cache_free(&c, u[1].obj[i]);
		tmem_cache_free(&c, u[0].obj[i]);
	}
	CHECK_EQ(tmem_cache_objects(&c), 0);
	CHECK_EQ(z.slab_frames[TMEM_PERSISTENT], 0);
	CHECK_EQ(z.frames_total, 0);
	tmem_cache_fini(&c);
	zbud_fini(&z);
}

/* Fill an ephemeral pool past its limit: the oldest frames go first. */
static void test_lru_and_limit(void)
{
	struct tmem_store *s = store_new(2 << 20, 2);
	int pool = tmem_new_pool(s, 0, NULL);
	struct tmem_stats st;
	unsigned int i, n = 2000, first_hit = n;

	for (i = 0; i < n; i++) {
		page_make(page, SHAPE_SIZED, i, 1800);
		CHECK_EQ(put(s, pool, 7, i, page), 0);
		tmem_get_stats(s, &st);
		CHECK(st.used_bytes <= st.limit_bytes);
	}
	tmem_get_stats(s, &st);
	CHECK(st.kind[TMEM_EPHEMERAL].evicted_frames > 0);
	CHECK_EQ(st.kind[TMEM_EPHEMERAL].stored_pages +
		 st.kind[TMEM_EPHEMERAL].evicted_pages, n);
	/* what survives is exactly the newest pages: a suffix of the puts */
	for (i = 0; i < n; i++) {
		int r = get(s, pool, 7, i, 0);

		if (r == 0 && first_hit == n)
			first_hit = i;
		if (first_hit != n) {
			CHECK_EQ(r, 0);
			page_make(page, SHAPE_SIZED, i, 1800);
			CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
		} else {
			CHECK_EQ(r, -TMEM_E_NOT_FOUND);
		}
	}
	CHECK(first_hit > 0 && first_hit < n);
	tmem_store_destroy(s);
}

/* Metadata counts: zero pages alone must reach the limit too. */
static void test_zero_pages_hit_limit(void)
{
	struct tmem_store *s = store_new(2 << 20, 2);
	int eph = tmem_new_pool(s, 0, NULL);
	int per = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	struct tmem_stats st;
	uint64_t i;
	int r = 0;

	memset(page, 0, sizeof(page));
	for (i = 0; i < 200000; i++) {
		CHECK_EQ(put(s, eph, i / 1000, (i % 1000) << 12, page), 0);
		tmem_get_stats(s, &st);
		if (st.used_bytes > st.limit_bytes) {
			CHECK(st.used_bytes <= st.limit_bytes);
			break;
		}
	}
	tmem_get_stats(s, &st);
	CHECK(st.kind[TMEM_EPHEMERAL].evicted_pages > 0);
	CHECK(st.kind[TMEM_EPHEMERAL].zero_pages > 0);
	/* persistent zero pages: refused once full, never over the limit */
	for (i = 0; i < 400000 && r == 0; i++)
		r = put(s, per, i / 1000, (i % 1000) << 12, page);
	CHECK_EQ(r, -TMEM_E_FULL);
	tmem_get_stats(s, &st);
	CHECK(st.used_bytes <= st.limit_bytes);
	CHECK_EQ(st.kind[TMEM_EPHEMERAL].stored_pages, 0);
	CHECK(st.kind[TMEM_PERSISTENT].reject_full == 1);
	/* and every stored persistent zero page reads back */
	CHECK_EQ(get(s, per, 0, 0, 0), 0);
	CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	tmem_store_destroy(s);
}

static void test_uuid_sharing(void)
{
	struct tmem_store *s = store_new(8 << 20, 4);
	struct tmem_uuid u1 = { { 1, 2, 3 } }, u2 = { { 9 } };
	int a, b, c, d;

	a = tmem_new_pool(s, TMEM_POOL_SHARED, &u1);
	b = tmem_new_pool(s, TMEM_POOL_SHARED, &u1);
	c = tmem_new_pool(s, TMEM_POOL_SHARED, &u2);
	CHECK(a >= 0);
	CHECK_EQ(a, b);
	CHECK(c >= 0 && c != a);
	CHECK_EQ(tmem_new_pool(s, TMEM_POOL_SHARED | TMEM_POOL_PERSISTENT,
			       &u1), -TMEM_E_UUID_KIND);
	CHECK_EQ(tmem_new_pool(s, TMEM_POOL_SHARED, NULL), -TMEM_E_INVAL);
	CHECK_EQ(tmem_new_pool(s, 0, &u1), -TMEM_E_INVAL);
	page_make(page, SHAPE_SIZED, 42, 500);
	CHECK_EQ(put(s, a, 1, 1, page), 0);
	/* one destroy of two references keeps the pool and its pages */
	CHECK_EQ(tmem_destroy_pool(s, (uint32_t)a, NULL), 0);
	CHECK_EQ(get(s, b, 1, 1, 0), 0);
	CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	CHECK_EQ(tmem_destroy_pool(s, (uint32_t)b, NULL), 0);
	CHECK_EQ(get(s, b, 1, 1, 0), -TMEM_E_BAD_POOL);
	CHECK_EQ(tmem_destroy_pool(s, (uint32_t)b, NULL), -TMEM_E_BAD_POOL);
	/* max_pools */
	d = tmem_new_pool(s, 0, NULL);
	CHECK(d >= 0);
	CHECK(tmem_new_pool(s, 0, NULL) >= 0);
	CHECK(tmem_new_pool(s, 0, NULL) >= 0);
	CHECK_EQ(tmem_new_pool(s, 0, NULL), -TMEM_E_NO_POOLS);
	tmem_store_destroy(s);
}

static void test_get_replace_flush(void)
{
	struct tmem_store *s = store_new(8 << 20, 4);
	int eph = tmem_new_pool(s, 0, NULL);
	int per = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	struct tmem_oid o = oid_n(5);
	struct iovec v = page_iov(page);
	struct tmem_stats st;
	uint64_t flushed;
	bool replaced;
	int i;

	/* exclusive get removes */
	page_make(page, SHAPE_SIZED, 1, 700);
	CHECK_EQ(put(s, per, 5, 1, page), 0);
	CHECK_EQ(get(s, per, 5, 1, TMEM_GET_EXCLUSIVE), 0);
	CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	CHECK_EQ(get(s, per, 5, 1, 0), -TMEM_E_NOT_FOUND);
	/* replace: the new page, never the old */
	page_make(page, SHAPE_SIZED, 2, 700);
	CHECK_EQ(tmem_put(s, per, &o, 2, &v, 1, &replaced), 0);
	CHECK(!replaced);
	page_make(page, SHAPE_RANDOM, 3, 0);
	CHECK_EQ(tmem_put(s, per, &o, 2, &v, 1, &replaced), 0);
	CHECK(replaced);
	CHECK_EQ(get(s, per, 5, 2, 0), 0);
	CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].raw_pages, 1);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, 1);
	/* an ephemeral replace by an incompressible page: a miss, not old */
	page_make(page, SHAPE_SIZED, 4, 700);
	CHECK_EQ(put(s, eph, 5, 3, page), 0);
	page_make(page, SHAPE_RANDOM, 5, 0);
	CHECK_EQ(put(s, eph, 5, 3, page), -TMEM_E_INCOMPRESSIBLE);
	CHECK_EQ(get(s, eph, 5, 3, 0), -TMEM_E_NOT_FOUND);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_EPHEMERAL].reject_incompressible, 1);
	/* same-filled pages: metadata only, read back right */
	page_make(page, SHAPE_SAME, 6, 0);
	CHECK_EQ(put(s, eph, 5, 4, page), 0);
	CHECK_EQ(get(s, eph, 5, 4, 0), 0);
	CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_EPHEMERAL].same_pages, 1);
	CHECK_EQ(st.kind[TMEM_EPHEMERAL].frames, 0);
	/* flush_object takes only its object; flush_pool the rest */
	for (i = 0; i < 100; i++) {
		page_make(page, SHAPE_SIZED, (uint64_t)i, 300);
		CHECK_EQ(put(s, per, 10 + (i & 1), (uint64_t)i, page), 0);
	}
	o = oid_n(10);
	CHECK_EQ(tmem_flush_object(s, per, &o, &flushed), 0);
	CHECK_EQ(flushed, 50);
	CHECK_EQ(get(s, per, 11, 1, 0), 0);
	CHECK_EQ(get(s, per, 10, 0, 0), -TMEM_E_NOT_FOUND);
	CHECK_EQ(tmem_flush_pool(s, per, &flushed), 0);
	CHECK_EQ(flushed, 51);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, 0);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].frames, 0);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].meta_frames, 0);
	tmem_store_destroy(s);
}

static void test_scattered_buffers(void)
{
	struct tmem_store *s = store_new(8 << 20, 2);
	int pool = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	struct tmem_oid o = oid_n(1);
	struct iovec in[4], outv[3];
	static uint8_t back[TMEM_PAGE_SIZE];
	int shape;

	for (shape = 0; shape < SHAPE__MAX; shape++) {
		page_make(page, (enum page_shape)shape, 77, 1000);
		in[0] = (struct iovec){ page, 1 };
		in[1] = (struct iovec){ page + 1, 0 };
		in[2] = (struct iovec){ page + 1, 3000 };
		in[3] = (struct iovec){ page + 3001, 1095 };
		CHECK_EQ(tmem_put(s, pool, &o, (uint64_t)shape, in, 4, NULL), 0);
		memset(back, 0xee, sizeof(back));
		outv[0] = (struct iovec){ back, 2048 };
		outv[1] = (struct iovec){ back + 2048, 2047 };
		outv[2] = (struct iovec){ back + 4095, 1 };
		CHECK_EQ(tmem_get(s, pool, &o, (uint64_t)shape, outv, 3, 0), 0);
		CHECK(!memcmp(page, back, TMEM_PAGE_SIZE));
	}
	tmem_store_destroy(s);
}

static void test_bad_arguments(void)
{
	struct tmem_store *s = store_new(8 << 20, 2);
	int pool = tmem_new_pool(s, 0, NULL);
	struct tmem_oid o = oid_n(1);
	struct iovec v = { page, 4095 }, big[2] = { { page, 4096 }, { page, 1 } };
	struct iovec null_base = { NULL, 4096 };
	struct tmem_store *t;

	CHECK_EQ(tmem_put(s, pool, &o, 0, &v, 1, NULL), -TMEM_E_IOV);
	CHECK_EQ(tmem_put(s, pool, &o, 0, big, 2, NULL), -TMEM_E_IOV);
	CHECK_EQ(tmem_put(s, pool, &o, 0, &null_base, 1, NULL), -TMEM_E_IOV);
	CHECK_EQ(tmem_put(s, pool, &o, 0, NULL, 1, NULL), -TMEM_E_IOV);
	CHECK_EQ(tmem_put(s, pool, &o, 0, big, 0, NULL), -TMEM_E_IOV);
	CHECK_EQ(tmem_put(s, pool, NULL, 0, big, 1, NULL), -TMEM_E_INVAL);
	CHECK_EQ(tmem_put(NULL, pool, &o, 0, big, 1, NULL), -TMEM_E_INVAL);
	CHECK_EQ(tmem_put(s, 99, &o, 0, big, 1, NULL), -TMEM_E_BAD_POOL);
	CHECK_EQ(tmem_put(s, 1, &o, 0, big, 1, NULL), -TMEM_E_BAD_POOL);
	CHECK_EQ(tmem_get(s, pool, &o, 0, big, 1, 0x10), -TMEM_E_INVAL);
	CHECK_EQ(tmem_get(s, 0xffffffffu, &o, 0, big, 1, 0), -TMEM_E_BAD_POOL);
	CHECK_EQ(tmem_flush_page(s, 5, &o, 0), -TMEM_E_BAD_POOL);
	CHECK_EQ(tmem_flush_object(s, 5, &o, NULL), -TMEM_E_BAD_POOL);
	CHECK_EQ(tmem_flush_pool(s, 5, NULL), -TMEM_E_BAD_POOL);
	CHECK_EQ(tmem_new_pool(s, 0x80, NULL), -TMEM_E_INVAL);
	CHECK_EQ(tmem_flush_page(s, pool, &o, 0), 0);
	CHECK(strcmp(tmem_strerror(-TMEM_E_FULL), "store is full") == 0);
	CHECK(tmem_strerror(-1000) != NULL);

	CHECK_EQ(tmem_store_create(NULL, &t), -TMEM_E_INVAL);
	tmem_store_destroy(s);
}

/*
 * A put that fails once its pool exists removes the older page under its
 * key, whatever stopped it: a buffer that is not one page, no room, an
 * incompressible ephemeral page (test_get_replace_flush()).
 */
static void test_failed_put_removes(void)
{
	struct tmem_store *s = store_new(2 << 20, 4);
	int pools[2] = { tmem_new_pool(s, 0, NULL),
			 tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL) };
	struct iovec bad[3] = {
		{ page, 4095 }, { NULL, 4096 }, { page, 4096 },
	};
	struct tmem_oid o = oid_n(7);
	struct tmem_stats st;
	int k, b, ret = 0;
	uint64_t i;

	for (k = 0; k < 2; k++)
		for (b = 0; b < 3; b++) {
			page_make(page, SHAPE_SIZED, (uint64_t)b, 500);
			CHECK_EQ(put(s, pools[k], 7, 1, page), 0);
			CHECK_EQ(tmem_put(s, (uint32_t)pools[k], &o, 1, &bad[b],
					  b == 2 ? 0 : 1, NULL), -TMEM_E_IOV);
			CHECK_EQ(get(s, pools[k], 7, 1, 0), -TMEM_E_NOT_FOUND);
		}
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, 0);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].reject_nomem, 0);

	/* full: the key's older page goes with the refused put */
	page_make(page, SHAPE_SIZED, 10, 500);
	CHECK_EQ(put(s, pools[1], 7, 1, page), 0);
	for (i = 0; i < 10000 && !ret; i++) {
		page_make(page, SHAPE_RANDOM, i, 0);
		ret = put(s, pools[1], 8, i, page);
	}
	CHECK_EQ(ret, -TMEM_E_FULL);
	CHECK_EQ(put(s, pools[1], 7, 1, page), -TMEM_E_FULL);
	CHECK_EQ(get(s, pools[1], 7, 1, 0), -TMEM_E_NOT_FOUND);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].reject_full, 2);
	tmem_store_destroy(s);
}

/*
 * Set one field of the defaults to @bad: tmem_config_check() must name that
 * field and the rule @why, and tmem_store_create() must refuse it.
 */
#define CHECK_CONFIG(field, bad, expect, rule) do {			\
	struct tmem_config c_;						\
	struct tmem_store *t_ = NULL;					\
	char why_[128] = "";						\
									\
	tmem_config_init(&c_);						\
	c_.field = (bad);						\
	CHECK_EQ(tmem_config_check(&c_, why_, sizeof(why_)), (expect));	\
	CHECK(strcmp(why_, (rule)) == 0 ||				\
	      !fprintf(stderr, "  why: '%s'\n", why_));			\
	CHECK_EQ(tmem_config_check(&c_, NULL, 0), (expect));		\
	CHECK_EQ(tmem_store_create(&c_, &t_), -TMEM_E_INVAL);		\
	CHECK(t_ == NULL);						\
} while (0)

/* The defaults, each field's range and its message; the first bad field. */
static void test_config_check(void)
{
	struct tmem_config cfg;
	struct tmem_store *t;
	char why[128] = "untouched";

	tmem_config_init(&cfg);
	CHECK_EQ(cfg.limit_bytes, TMEM_DEFAULT_LIMIT);
	CHECK_EQ(cfg.compressor, TMEM_DEFAULT_COMPRESSOR);
	CHECK_EQ(cfg.lz4_acceleration, TMEM_DEFAULT_LZ4_ACCEL);
	CHECK_EQ(cfg.zstd_level, TMEM_DEFAULT_ZSTD_LEVEL);
	CHECK_EQ(cfg.max_compressed, TMEM_DEFAULT_MAX_COMPRESSED);
	CHECK_EQ(cfg.max_pools, TMEM_DEFAULT_MAX_POOLS);
	CHECK_EQ(cfg.wb_high_pct, TMEM_DEFAULT_WB_HIGH_PCT);
	CHECK_EQ(cfg.wb_low_pct, TMEM_DEFAULT_WB_LOW_PCT);
	CHECK_EQ(tmem_config_check(&cfg, why, sizeof(why)), TMEM_CFG_OK);
	CHECK(strcmp(why, "untouched") == 0);

	CHECK_CONFIG(limit_bytes, TMEM_MIN_LIMIT - 1, TMEM_CFG_LIMIT,
		     "must be between 1 MiB and 32 GiB");
	CHECK_CONFIG(limit_bytes, TMEM_MAX_LIMIT + 1, TMEM_CFG_LIMIT,
		     "must be between 1 MiB and 32 GiB");
	CHECK_CONFIG(compressor, (enum tmem_compressor)7, TMEM_CFG_COMPRESSOR,
		     "must be lz4, zstd or none");
	CHECK_CONFIG(lz4_acceleration, TMEM_LZ4_ACCEL_MIN - 1,
		     TMEM_CFG_LZ4_ACCEL, "must be between 1 and 65537");
	CHECK_CONFIG(lz4_acceleration, TMEM_LZ4_ACCEL_MAX + 1,
		     TMEM_CFG_LZ4_ACCEL, "must be between 1 and 65537");
	CHECK_CONFIG(zstd_level, TMEM_ZSTD_LEVEL_MIN - 1, TMEM_CFG_ZSTD_LEVEL,
		     "must be between 1 and 22");
	CHECK_CONFIG(zstd_level, TMEM_ZSTD_LEVEL_MAX + 1, TMEM_CFG_ZSTD_LEVEL,
		     "must be between 1 and 22");
	CHECK_CONFIG(max_compressed, TMEM_MAX_COMPRESSED_MIN - 1,
		     TMEM_CFG_MAX_COMPRESSED, "must be between 64 and 4096");
	CHECK_CONFIG(max_compressed, 5000, TMEM_CFG_MAX_COMPRESSED,
		     "must be between 64 and 4096");
	CHECK_CONFIG(max_pools, 0, TMEM_CFG_MAX_POOLS,
		     "must be between 1 and 4096");
	CHECK_CONFIG(max_pools, TMEM_MAX_POOLS + 1, TMEM_CFG_MAX_POOLS,
		     "must be between 1 and 4096");
	CHECK_CONFIG(wb_high_pct, 0, TMEM_CFG_WB_HIGH,
		     "must be a percentage between 1 and 100");
	CHECK_CONFIG(wb_high_pct, 101, TMEM_CFG_WB_HIGH,
		     "must be a percentage between 1 and 100");
	CHECK_CONFIG(wb_low_pct, TMEM_DEFAULT_WB_HIGH_PCT, TMEM_CFG_WB_LOW,
		     "must be below the high watermark (90)");

	/* The extremes of every range are accepted. */
	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	cfg.limit_bytes = TMEM_MIN_LIMIT;
	cfg.compressor = TMEM_COMP_NONE;
	cfg.lz4_acceleration = TMEM_LZ4_ACCEL_MAX;
	cfg.zstd_level = TMEM_ZSTD_LEVEL_MAX;
	cfg.max_compressed = TMEM_MAX_COMPRESSED_MIN;
	cfg.max_pools = TMEM_MIN_POOLS;
	cfg.wb_high_pct = TMEM_WB_HIGH_PCT_MIN;
	cfg.wb_low_pct = 0;
	CHECK_EQ(tmem_config_check(&cfg, NULL, 0), TMEM_CFG_OK);
	REQUIRE(tmem_store_create(&cfg, &t) == 0);
	tmem_store_destroy(t);
	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	cfg.limit_bytes = TMEM_MAX_LIMIT;
	cfg.compressor = TMEM_COMP_ZSTD;
	cfg.lz4_acceleration = TMEM_LZ4_ACCEL_MIN;
	cfg.zstd_level = TMEM_ZSTD_LEVEL_MIN;
	cfg.max_compressed = TMEM_MAX_COMPRESSED_MAX;
	cfg.max_pools = TMEM_MAX_POOLS;
	cfg.wb_high_pct = TMEM_WB_HIGH_PCT_MAX;
	cfg.wb_low_pct = TMEM_WB_HIGH_PCT_MAX - 1;
	CHECK_EQ(tmem_config_check(&cfg, NULL, 0), TMEM_CFG_OK);
	REQUIRE(tmem_store_create(&cfg, &t) == 0);
	tmem_store_destroy(t);

	/* Pool tables count against the limit: max_pools is what is wrong. */
	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	cfg.limit_bytes = TMEM_MIN_LIMIT;
	cfg.max_pools = TMEM_MAX_POOLS;
	CHECK_EQ(tmem_config_check(&cfg, why, sizeof(why)),
		 TMEM_CFG_MAX_POOLS);
	CHECK(strncmp(why, "must be at most ", 16) == 0);
	cfg.max_pools = (unsigned int)strtoul(why + 16, NULL, 10);
	CHECK(cfg.max_pools >= 1 && cfg.max_pools < TMEM_MAX_POOLS);
	CHECK_EQ(tmem_config_check(&cfg, NULL, 0), TMEM_CFG_OK);
	REQUIRE(tmem_store_create(&cfg, &t) == 0);
	tmem_store_destroy(t);
	cfg.max_pools++;
	CHECK_EQ(tmem_config_check(&cfg, NULL, 0), TMEM_CFG_MAX_POOLS);
	CHECK_EQ(tmem_store_create(&cfg, &t), -TMEM_E_INVAL);

	/* The first bad field is named; a short buffer is cut, not overrun. */
	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	cfg.lz4_acceleration = 0;
	cfg.wb_low_pct = 100;
	CHECK_EQ(tmem_config_check(&cfg, why, 8), TMEM_CFG_LZ4_ACCEL);
	CHECK(strcmp(why, "must be") == 0);
}

/*
 * The capacity promise: persistent puts within tmem_persistent_capacity()
 * all succeed, whatever else the store holds, and flushes never lower it.
 */
static void test_persistent_capacity(void)
{
	struct tmem_store *s = store_new(4 << 20, 4);
	int eph = tmem_new_pool(s, 0, NULL);
	int per = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	uint64_t cap, before, i, stored = 0;
	struct tmem_stats st;
	int r;

	/* fill the store with ephemeral pages first */
	for (i = 0; i < 3000; i++) {
		page_make(page, SHAPE_SIZED, i, 1500);
		put(s, eph, i / 64, i % 64, page);
	}
	cap = tmem_persistent_capacity(s);
	CHECK(cap > 0);
	/* spend the capacity on worst-case (random) pages, re-reading it */
	for (;;) {
		cap = tmem_persistent_capacity(s);
		if (!cap)
			break;
		for (i = 0; i < cap; i++) {
			page_make(page, SHAPE_RANDOM, stored, 0);
			r = put(s, per, 1, stored, page);
			CHECK_EQ(r, 0);
			if (r)
				break;
			stored++;
		}
		if (r)
			break;
	}
	tmem_get_stats(s, &st);
	CHECK(st.used_bytes <= st.limit_bytes);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, stored);
	CHECK(stored > 700);	/* at least ~3/4 of 4 MiB in 4 KiB pages */
	/* every page is intact */
	for (i = 0; i < stored; i += 37) {
		page_make(page, SHAPE_RANDOM, i, 0);
		CHECK_EQ(get(s, per, 1, i, 0), 0);
		CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	}
	/* a flush never lowers the capacity */
	before = tmem_persistent_capacity(s);
	CHECK_EQ(tmem_flush_page(s, per, &(struct tmem_oid){ { 1, 3, ~1ull } },
				 0), 1);
	CHECK(tmem_persistent_capacity(s) >= before);
	tmem_store_destroy(s);
}

static void test_compressor_none(void)
{
	struct tmem_config cfg;
	struct tmem_store *s;
	struct tmem_stats st;
	int pool;

	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	cfg.compressor = TMEM_COMP_NONE;
	cfg.limit_bytes = 4 << 20;
	REQUIRE(tmem_store_create(&cfg, &s) == 0);
	pool = tmem_new_pool(s, 0, NULL);
	page_make(page, SHAPE_SIZED, 9, 100);
	CHECK_EQ(put(s, pool, 1, 1, page), 0);
	CHECK_EQ(get(s, pool, 1, 1, 0), 0);
	CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[TMEM_EPHEMERAL].raw_pages, 1);
	tmem_store_destroy(s);
}

/*
 * The store compresses with the compressor and level of its settings
 * (each stores its own size for the page) and refuses an ephemeral page
 * that compressor cannot shrink.
 */
static void test_compressor_choice(void)
{
	static const struct {
		enum tmem_compressor comp;
		int level;
	} choice[] = {
		{ TMEM_COMP_LZ4, 1 }, { TMEM_COMP_ZSTD, 1 },
		{ TMEM_COMP_ZSTD, 19 },
	};
	uint8_t cbuf[TMEM_PAGE_SIZE];
	struct tmem_config cfg;
	struct tmem_store *s;
	struct tmem_stats st;
	unsigned int i;
	int pool, n;

	page_make(page, SHAPE_SIZED, 3, 700);
	for (i = 0; i < 3; i++) {
		tmem_config_init(&cfg);
		cfg.limit_bytes = 4 << 20;
		cfg.compressor = choice[i].comp;
		cfg.zstd_level = choice[i].level;
		n = compress_page(&cfg, page, cbuf);
		REQUIRE(n > 0);
		REQUIRE(tmem_store_create(&cfg, &s) == 0);
		pool = tmem_new_pool(s, 0, NULL);
		CHECK_EQ(put(s, pool, 1, 1, page), 0);
		tmem_get_stats(s, &st);
		CHECK_EQ(st.kind[TMEM_EPHEMERAL].compressed_bytes, n);
		CHECK_EQ(get(s, pool, 1, 1, 0), 0);
		CHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
		page_make(page, SHAPE_RANDOM, 4, 0);
		CHECK_EQ(put(s, pool, 1, 2, page), -TMEM_E_INCOMPRESSIBLE);
		page_make(page, SHAPE_SIZED, 3, 700);
		tmem_store_destroy(s);
	}
	/* zstd and its levels made different sizes: the choice mattered */
	tmem_config_init(&cfg);
	n = compress_page(&cfg, page, cbuf);
	cfg.compressor = TMEM_COMP_ZSTD;
	CHECK(compress_page(&cfg, page, cbuf) != n);
}

int main(void)
{
	test_zbud_packing();
	test_zsmalloc_packing();
	test_zsmalloc_compaction();
	test_zbud_direct();
	test_zbud_best_fit();
	test_populate_bound();
	test_slab_shards();
	test_lru_and_limit();
	test_zero_pages_hit_limit();
	test_uuid_sharing();
	test_get_replace_flush();
	test_scattered_buffers();
	test_bad_arguments();
	test_failed_put_removes();
	test_config_check();
	test_persistent_capacity();
	test_compressor_none();
	test_compressor_choice();
	test_copy_nocache();
	test_object_trees();
	return check_report("test_pool_unit");
}
