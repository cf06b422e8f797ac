/*
 * Changing a store's limit at run time (tmem_set_limit(), tmem_shrink()).
 *
 *   bounds	 limits out of range are refused; a store made without
 *		 max_limit_bytes cannot grow
 *   grow	 a full store grown takes puts at once, its capacity rises by
 *		 the room added
 *   shrink	 ephemeral and persistent pages, no image: the shrink evicts
 *		 ephemeral pages, then says how many persistent pages are in
 *		 excess; flushing that many brings the store within its limit;
 *		 every persistent page left reads back
 *   image	 the same with a swap image: persistent frames are written
 *		 back and nothing is in excess; every page reads back
 *   credits	 a limit of tmem_limit_for_credits(n) keeps the capacity at n
 *		 or more, and n credited puts all succeed
 *   arenas	 after a shrink that leaves frames in high arenas only,
 *		 ephemeral puts (which map the low ones again) and flushes
 *		 never lower the capacity
 *   threads	 two threads put, get and flush while a third resizes and
 *		 shrinks over and over: no persistent page lost or wrong
 *		 (the TSan job runs this one)
 *
 * Usage: test-pool-resize [TEST]
 */
#define _GNU_SOURCE 1
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "pages.h"
#include "test_config.h"

#define MIB		(1ull << 20)

static char image_path[256];

struct rig {
	struct tmem_store *s;
	struct tmem_image *img;
	int eph, per;
};

static void rig_open(struct rig *r, uint64_t limit, uint64_t max_limit,
		     uint64_t image_bytes)
{
	struct tmem_config cfg;
	int err;

	test_config_init(&cfg);
	cfg.limit_bytes = limit;
	cfg.max_limit_bytes = max_limit;
	cfg.max_pools = 8;
	memset(r, 0, sizeof(*r));
	REQUIRE(tmem_store_create(&cfg, &r->s) == 0);
	if (image_bytes) {
		struct tmem_image_config ic = {
			.path = image_path,
			.size_bytes = image_bytes,
			.unlink_path = true,
		};

		REQUIRE(tmem_image_open(&ic, &r->img, &err) == 0);
		REQUIRE(tmem_store_attach_image(r->s, r->img) == 0);
	}
	r->eph = tmem_new_pool(r->s, 0, NULL);
	r->per = tmem_new_pool(r->s, TMEM_POOL_PERSISTENT, NULL);
	REQUIRE(r->eph >= 0 && r->per >= 0);
}

static void rig_close(struct rig *r)
{
	tmem_store_destroy(r->s);
	if (r->img)
		tmem_image_close(r->img);
}

static struct tmem_oid oid_of(uint64_t o)
{
	struct tmem_oid id = { { o, ~o, 11 } };

	return id;
}

/* Seeds of this test's pages: compressible to about a third of a page. */
static void page_of(uint8_t *page, uint64_t seed)
{
	page_make(page, SHAPE_SIZED, seed, 1200 + (unsigned int)(seed % 900));
}

static int put(struct rig *r, int pool, uint64_t i, uint64_t seed)
{
	static _Thread_local uint8_t page[TMEM_PAGE_SIZE];
	struct tmem_oid id = oid_of((uint64_t)pool);
	struct iovec v;

	page_of(page, seed);
	v = page_iov(page);
	return tmem_put(r->s, (uint32_t)pool, &id, i, &v, 1, NULL);
}

/* 0: right data; 1: miss; -1: wrong data; -2: an error.  No CHECK (threads). */
static int get_quiet(struct rig *r, int pool, uint64_t i, uint64_t seed)
{
	static _Thread_local uint8_t page[TMEM_PAGE_SIZE], out[TMEM_PAGE_SIZE];
	struct tmem_oid id = oid_of((uint64_t)pool);
	struct iovec v = page_iov(out);
	int ret;

	ret = tmem_get(r->s, (uint32_t)pool, &id, i, &v, 1, 0);
	if (ret == -TMEM_E_NOT_FOUND)
		return 1;
	if (ret)
		return -2;
	page_of(page, seed);
	return memcmp(page, out, TMEM_PAGE_SIZE) ? -1 : 0;
}

/* 0: right data; 1: miss; CHECK-fails on wrong data or an error. */
static int get(struct rig *r, int pool, uint64_t i, uint64_t seed)
{
	int ret = get_quiet(r, pool, i, seed);

	if (ret < 0)
		fprintf(stderr, "%s: pool %d idx %" PRIu64 "\n",
			ret == -1 ? "wrong data" : "get failed", pool, i);
	CHECK(ret >= 0);
	return ret;
}

static void flush(struct rig *r, int pool, uint64_t i)
{
	struct tmem_oid id = oid_of((uint64_t)pool);

	tmem_flush_page(r->s, (uint32_t)pool, &id, i);
}

static uint64_t used(struct rig *r)
{
	struct tmem_stats st;

	tmem_get_stats(r->s, &st);
	return st.used_bytes;
}

/* Fill @pool with pages 0.. until a put fails or @bytes are used. */
static uint64_t fill(struct rig *r, int pool, uint64_t bytes)
{
	uint64_t i;

	for (i = 0; used(r) < bytes; i++)
		if (put(r, pool, i, i))
			break;
	return i;
}

static void test_bounds(void)
{
	struct rig r;

	rig_open(&r, 8 * MIB, 0, 0);
	CHECK_EQ(tmem_set_limit(r.s, 16 * MIB), -TMEM_E_INVAL);
	CHECK_EQ(tmem_set_limit(r.s, 4 * MIB), 0);
	CHECK_EQ(tmem_set_limit(r.s, 8 * MIB), 0);
	CHECK_EQ(tmem_set_limit(r.s, TMEM_MIN_LIMIT - 4096), -TMEM_E_INVAL);
	CHECK_EQ(tmem_set_limit(NULL, 8 * MIB), -TMEM_E_INVAL);
	rig_close(&r);

	{
		struct tmem_config cfg;
		struct tmem_store *s;

		test_config_init(&cfg);
		cfg.limit_bytes = 8 * MIB;
		cfg.max_limit_bytes = 4 * MIB;
		CHECK_EQ(tmem_config_check(&cfg, NULL, 0), TMEM_CFG_MAX_LIMIT);
		cfg.max_limit_bytes = TMEM_MAX_LIMIT + MIB;
		CHECK_EQ(tmem_config_check(&cfg, NULL, 0), TMEM_CFG_MAX_LIMIT);
		cfg.max_limit_bytes = 64 * MIB;
		CHECK_EQ(tmem_config_check(&cfg, NULL, 0), TMEM_CFG_OK);
		REQUIRE(tmem_store_create(&cfg, &s) == 0);
		CHECK_EQ(tmem_set_limit(s, 64 * MIB), 0);
		CHECK_EQ(tmem_set_limit(s, 64 * MIB + 4096), -TMEM_E_INVAL);
		tmem_store_destroy(s);
	}
}

static void test_grow(void)
{
	uint64_t n, i, cap, cap2;
	struct rig r;

	rig_open(&r, 4 * MIB, 32 * MIB, 0);
	n = fill(&r, r.per, 64 * MIB);
	CHECK_EQ(put(&r, r.per, n, n), -TMEM_E_FULL);
	cap = tmem_persistent_capacity(r.s);
	CHECK_EQ(tmem_set_limit(r.s, 16 * MIB), 0);
	cap2 = tmem_persistent_capacity(r.s);
	/* 12 MiB more room, at the worst case per put (zsmalloc's) */
	CHECK(cap2 >= cap + 12 * MIB / (11 * TMEM_PAGE_SIZE + 16384) - 1);
	for (i = 0; i < cap2; i++)
		CHECK_EQ(put(&r, r.per, n + i, n + i), 0);
	for (i = 0; i < n + cap2; i++)
		CHECK_EQ(get(&r, r.per, i, i), 0);
	rig_close(&r);
}

static void check_resize(struct rig *r, const struct tmem_resize *st)
{
	CHECK_EQ(st->used_bytes, used(r));
	CHECK_EQ(st->done, st->used_bytes <= st->target_bytes);
}

static void test_shrink(void)
{
	uint64_t np, ne, i, flushed = 0, rounds = 0, cap;
	struct tmem_resize st;
	struct tmem_stats ss;
	struct rig r;
	int ret;

	rig_open(&r, 16 * MIB, 0, 0);
	np = fill(&r, r.per, 6 * MIB);
	ne = fill(&r, r.eph, 15 * MIB);
	REQUIRE(np > 100 && ne > 100);
	cap = tmem_persistent_capacity(r.s);
	CHECK_EQ(tmem_set_limit(r.s, 2 * MIB), 0);
	CHECK(tmem_persistent_capacity(r.s) < cap);
	CHECK_EQ(tmem_persistent_capacity(r.s), 0);
	tmem_resize_status(r.s, &st);
	CHECK_EQ(st.target_bytes, 2 * MIB);
	CHECK(st.start_bytes > 14 * MIB);
	CHECK(st.excess_pages > 0);
	CHECK(!st.done);

	/* a bounded call does a bounded amount */
	CHECK_EQ(tmem_shrink(r.s, 1, &st), 1);
	ret = tmem_shrink(r.s, 0, &st);
	CHECK_EQ(ret, -TMEM_E_FULL);
	check_resize(&r, &st);
	tmem_get_stats(r.s, &ss);
	CHECK_EQ(ss.kind[TMEM_EPHEMERAL].stored_pages, 0);
	CHECK_EQ(ss.kind[TMEM_PERSISTENT].stored_pages, np);
	CHECK_EQ(st.persistent_pages, np);
	CHECK(st.excess_pages > 0 && st.excess_pages < np);
	printf("shrink: %" PRIu64 " persistent pages, %" PRIu64
	       " in excess of 2 MiB (used %" PRIu64 ")\n", np,
	       st.excess_pages, st.used_bytes);

	/* the guest flushes what it is asked to, oldest first */
	while (ret == -TMEM_E_FULL) {
		uint64_t k;

		REQUIRE(++rounds <= 8);
		for (k = 0; k < st.excess_pages; k++)
			flush(&r, r.per, flushed++);
		ret = tmem_shrink(r.s, 0, &st);
		check_resize(&r, &st);
	}
	printf("shrink: %" PRIu64 " flushed in %" PRIu64 " rounds\n",
	       flushed, rounds);
	CHECK_EQ(ret, 0);
	CHECK(st.done);
	CHECK_EQ(st.excess_pages, 0);
	CHECK(used(&r) <= 2 * MIB);
	/* no room beyond the new limit, for either kind */
	CHECK_EQ(put(&r, r.eph, ne, ne), -TMEM_E_FULL);
	/* the estimate was close: a couple of rounds at most */
	CHECK(rounds <= 3);
	/* not far more than needed was asked for */
	CHECK(flushed * 4 < np * 3);
	for (i = flushed; i < np; i++)
		CHECK_EQ(get(&r, r.per, i, i), 0);

	/* and the store works on at its new size, then grows back */
	CHECK_EQ(tmem_set_limit(r.s, 16 * MIB), 0);
	CHECK(tmem_persistent_capacity(r.s) > 0);
	CHECK_EQ(put(&r, r.eph, 0, 0), 0);
	CHECK_EQ(tmem_shrink(r.s, 0, &st), 0);
	CHECK_EQ(st.start_bytes, 0);
	rig_close(&r);
}

static void test_image(void)
{
	uint64_t np, ne, i, before;
	struct tmem_resize st;
	struct tmem_stats ss;
	struct rig r;

	rig_open(&r, 16 * MIB, 0, 64 * MIB);
	np = fill(&r, r.per, 8 * MIB);
	ne = fill(&r, r.eph, 12 * MIB);
	REQUIRE(np > 100 && ne > 100);
	before = used(&r);
	CHECK_EQ(tmem_set_limit(r.s, 2 * MIB), 0);
	tmem_resize_status(r.s, &st);
	CHECK_EQ(st.excess_pages, 0);
	CHECK_EQ(tmem_shrink(r.s, 0, &st), 0);
	check_resize(&r, &st);
	CHECK(st.done);
	CHECK_EQ(st.excess_pages, 0);
	CHECK(st.used_bytes <= 2 * MIB);
	tmem_get_stats(r.s, &ss);
	CHECK_EQ(ss.kind[TMEM_PERSISTENT].stored_pages, np);
	CHECK(ss.kind[TMEM_PERSISTENT].image_pages > 0);
	printf("image: %" PRIu64 " -> %" PRIu64 " bytes, %" PRIu64
	       " pages written back\n", before, st.used_bytes,
	       ss.kind[TMEM_PERSISTENT].image_pages);
	for (i = 0; i < np; i++)
		CHECK_EQ(get(&r, r.per, i, i), 0);
	rig_close(&r);
}

static void test_credits(void)
{
	uint64_t np, cap, i, floor;
	struct rig r;

	rig_open(&r, 16 * MIB, 0, 0);
	np = fill(&r, r.per, 4 * MIB);
	cap = tmem_persistent_capacity(r.s);
	REQUIRE(cap > 10);
	/* the device promised cap / 2 puts, then wants 1 MiB */
	floor = tmem_limit_for_credits(r.s, cap / 2);
	CHECK(floor > 1 * MIB);
	CHECK(floor < 16 * MIB);
	CHECK_EQ(tmem_set_limit(r.s, floor), 0);
	CHECK(tmem_persistent_capacity(r.s) >= cap / 2);
	for (i = 0; i < cap / 2; i++)
		CHECK_EQ(put(&r, r.per, np + i, np + i), 0);
	CHECK(tmem_limit_for_credits(r.s, 0) <= floor);
	rig_close(&r);

	rig_open(&r, 16 * MIB, 0, 0);
	np = fill(&r, r.per, 4 * MIB);
	cap = tmem_persistent_capacity(r.s);
	floor = tmem_limit_for_credits(r.s, cap / 2);
	/* it is exact but for the descriptors of an arena or two */
	CHECK_EQ(tmem_set_limit(r.s, floor - 2 * (8 * TMEM_PAGE_SIZE + 16384)),
		 0);
	CHECK(tmem_persistent_capacity(r.s) < cap / 2);
	rig_close(&r);
}

static void test_arenas(void)
{
	uint64_t np, i, cap, low, committed, high;
	struct tmem_resize st;
	struct rig r;

	rig_open(&r, 4 * MIB, 32 * MIB, 0);
	CHECK_EQ(tmem_set_limit(r.s, 32 * MIB), 0);
	np = fill(&r, r.per, 28 * MIB);
	/*
	 * Keep one page in 24 of the second half: frames left in the high
	 * arenas, low ones emptied and unmapped, for ephemeral puts to map
	 * again below the new limit's arenas.
	 */
	for (i = 0; i < np; i++)
		if (i < np / 2 || i % 24)
			flush(&r, r.per, i);
	CHECK_EQ(tmem_set_limit(r.s, 4 * MIB), 0);
	CHECK_EQ(tmem_shrink(r.s, 0, &st), 0);
	cap = tmem_persistent_capacity(r.s);
	/* what persistent pages hold or may take, to the byte */
	committed = tmem_limit_for_credits(r.s, 0);
	low = cap;
	high = committed;
	for (i = 0; i < 20000; i++) {
		uint64_t c;

		if (put(&r, r.eph, i % 3000, i) == 0 && i % 5 == 0)
			flush(&r, r.eph, (i * 7) % 3000);
		c = tmem_persistent_capacity(r.s);
		if (c < low)
			low = c;
		c = tmem_limit_for_credits(r.s, 0);
		if (c > high)
			high = c;
	}
	CHECK_EQ(low, cap);
	CHECK_EQ(high, committed);
	for (i = np / 2 + 23 - (np / 2 + 23) % 24; i < np; i += 24)
		CHECK_EQ(get(&r, r.per, i, i), 0);
	rig_close(&r);
}

/* ---- threads ------------------------------------------------------------- */

#define T_KEYS	3000u

struct worker {
	struct rig *r;
	int pool;
	uint64_t rng;
	uint64_t seed[T_KEYS];	/* persistent: 0 absent, else the seed */
	unsigned long ops, bad;
	_Atomic bool *stop;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->stop)) {
		uint64_t k = page_rng(&w->rng) % T_KEYS;
		uint64_t seed = page_rng(&w->rng) | 1;
		unsigned int op = (unsigned int)(page_rng(&w->rng) % 10);

		if (op < 5) {
			if (put(w->r, w->pool, k, seed) == 0)
				w->seed[k] = seed;
			else
				w->seed[k] = 0; /* a failed put drops the key */
		} else if (op < 8) {
			int want = w->seed[k] ? 0 : 1;

			if (get_quiet(w->r, w->pool, k, w->seed[k]) != want)
				w->bad++;
		} else {
			flush(w->r, w->pool, k);
			w->seed[k] = 0;
		}
		w->ops++;
	}
	return NULL;
}

static void *eph_run(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->stop)) {
		uint64_t k = page_rng(&w->rng) % T_KEYS;

		put(w->r, w->pool, k, k);
		if (get_quiet(w->r, w->pool, k, k) < 0)
			w->bad++;
		w->ops++;
	}
	return NULL;
}

static void test_threads(void)
{
	static const uint64_t limits[] = { 12 * MIB, 2 * MIB, 6 * MIB,
					   3 * MIB, 16 * MIB };
	static struct worker per, eph;
	_Atomic bool stop = false;
	struct tmem_resize st;
	unsigned int n, bad = 0;
	pthread_t t[2];
	uint64_t k;
	struct rig r;

	rig_open(&r, 8 * MIB, 16 * MIB, 32 * MIB);
	per = (struct worker){ .r = &r, .pool = r.per, .rng = 7,
			       .stop = &stop };
	eph = (struct worker){ .r = &r, .pool = r.eph, .rng = 9,
			       .stop = &stop };
	pthread_create(&t[0], NULL, worker_run, &per);
	pthread_create(&t[1], NULL, eph_run, &eph);
	for (n = 0; n < 40; n++) {
		if (tmem_set_limit(r.s, limits[n % 5]) ||
		    tmem_shrink(r.s, 0, &st) == -TMEM_E_INVAL)
			bad++;
		usleep(2000);
	}
	atomic_store(&stop, true);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	CHECK_EQ(bad, 0);
	CHECK_EQ(per.bad, 0);
	CHECK_EQ(eph.bad, 0);
	for (k = 0; k < T_KEYS; k++)
		if (per.seed[k])
			CHECK_EQ(get(&r, r.per, k, per.seed[k]), 0);
	printf("threads: %lu persistent ops, %lu ephemeral ops, 40 resizes\n",
	       per.ops, eph.ops);
	rig_close(&r);
}

int main(int argc, char **argv)
{
	static const struct check_test tests[] = {
		{ "bounds", test_bounds }, { "grow", test_grow },
		{ "shrink", test_shrink }, { "image", test_image },
		{ "credits", test_credits }, { "arenas", test_arenas },
		{ "threads", test_threads },
	};

	check_temp_path(image_path, sizeof(image_path), "tmem-resize-test");
	check_run(CHECK_TABLE(tests), argc, argv, NULL);
	return check_report("test_pool_resize");
}
