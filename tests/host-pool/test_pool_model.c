/*
 * Model-based test: millions of random ops against a reference map, with a
 * small limit so that eviction and refusals happen all the time.
 *
 * Persistent pages must read back byte-identical while stored; ephemeral
 * pages may miss but never return anything but their latest contents; a
 * persistent put may fail only when tmem_persistent_capacity() was 0 (or
 * its buffer was not one page); a failed put removes the older page; the
 * store never charges more than its limit; its counters match the model.
 *
 * Usage: test-pool-model [OPS [SEED [LIMIT_MIB]]]
 * OPS defaults to $TMEM_MODEL_OPS, else 2000000.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "pages.h"
#include "test_config.h"
#include "tmem.h"

#define NPOOLS	4		/* 0,1 ephemeral; 2,3 persistent */
#define NOBJS	24
#define NIDX	96
#define NKEYS	(NPOOLS * NOBJS * NIDX)

/* 0: absent; else the seed of the page stored at the key */
static uint64_t model[NKEYS];
static int pool_id[NPOOLS];
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint8_t page[TMEM_PAGE_SIZE], out[TMEM_PAGE_SIZE];
static uint64_t seq = 1;

static uint64_t rnd(uint64_t n)
{
	return page_rng(&rng) % n;
}

static unsigned int key(unsigned int p, unsigned int o, unsigned int i)
{
	return (p * NOBJS + o) * NIDX + i;
}

static struct tmem_oid oid_of(unsigned int o)
{
	struct tmem_oid id = { { o * 0x100000001ull, o, 0xfeed } };

	return id;
}

/* Split the page at random places: guests' buffers are scattered. */
static int scatter(uint8_t *buf, struct iovec *v)
{
	unsigned int a, b;

	if (rnd(4))
		return (v[0] = page_iov(buf)), 1;
	a = (unsigned int)rnd(TMEM_PAGE_SIZE);
	b = a + (unsigned int)rnd(TMEM_PAGE_SIZE - a);
	v[0] = (struct iovec){ buf, a };
	v[1] = (struct iovec){ buf + a, b - a };
	v[2] = (struct iovec){ buf + b, TMEM_PAGE_SIZE - b };
	return 3;
}

static void do_put(struct tmem_store *s, unsigned int p, unsigned int o,
		   unsigned int i)
{
	struct tmem_oid id = oid_of(o);
	uint64_t seed = seq++, cap = 0;
	struct iovec v[3];
	bool replaced, bad;
	int n, r;

	page_from_seed(page, seed);
	n = scatter(page, v);
	bad = rnd(64) == 0;
	if (bad)	/* a buffer a page short of a byte */
		v[n - 1].iov_len--;
	if (p >= 2)
		cap = tmem_persistent_capacity(s);
	r = tmem_put(s, (uint32_t)pool_id[p], &id, i, v, n, &replaced);
	if (r == 0) {
		CHECK(!bad);
		if (p >= 2)
			CHECK_EQ(replaced, model[key(p, o, i)] != 0);
		model[key(p, o, i)] = seed;
		return;
	}
	/* refused, for whatever reason: the older page is gone */
	model[key(p, o, i)] = 0;
	if (bad) {
		CHECK_EQ(r, -TMEM_E_IOV);
	} else if (p >= 2) {
		CHECK_EQ(r, -TMEM_E_FULL);
		CHECK_EQ(cap, 0);
	} else {
		CHECK(r == -TMEM_E_FULL || r == -TMEM_E_INCOMPRESSIBLE);
	}
}

static void do_get(struct tmem_store *s, unsigned int p, unsigned int o,
		   unsigned int i)
{
	bool excl = rnd(3) == 0;
	struct tmem_oid id = oid_of(o);
	uint64_t want = model[key(p, o, i)];
	struct iovec v[3];
	int n, r;

	n = scatter(out, v);
	r = tmem_get(s, (uint32_t)pool_id[p], &id, i, v, n,
		     excl ? TMEM_GET_EXCLUSIVE : 0);
	if (!want) {
		CHECK_EQ(r, -TMEM_E_NOT_FOUND);
		return;
	}
	if (r == -TMEM_E_NOT_FOUND && p < 2) {
		model[key(p, o, i)] = 0;	/* evicted */
		return;
	}
	CHECK_EQ(r, 0);
	page_from_seed(page, want);
	if (memcmp(page, out, TMEM_PAGE_SIZE)) {
		fprintf(stderr, "wrong data: pool %u obj %u idx %u seed %" PRIu64
			"\n", p, o, i, want);
		CHECK(0);
	}
	if (excl)
		model[key(p, o, i)] = 0;
}

static void do_flush(struct tmem_store *s, unsigned int p, unsigned int o,
		     unsigned int i, unsigned int what)
{
	struct tmem_oid id = oid_of(o);
	unsigned int j, k;

	if (what == 0) {
		int r = tmem_flush_page(s, (uint32_t)pool_id[p], &id, i);

		if (p >= 2)
			CHECK_EQ(r, model[key(p, o, i)] != 0);
		model[key(p, o, i)] = 0;
	} else if (what == 1) {
		CHECK_EQ(tmem_flush_object(s, (uint32_t)pool_id[p], &id, NULL),
			 0);
		for (j = 0; j < NIDX; j++)
			model[key(p, o, j)] = 0;
	} else {
		CHECK_EQ(tmem_flush_pool(s, (uint32_t)pool_id[p], NULL), 0);
		for (k = 0; k < NOBJS; k++)
			for (j = 0; j < NIDX; j++)
				model[key(p, k, j)] = 0;
	}
}

static void check_counters(struct tmem_store *s)
{
	struct tmem_stats st;
	uint64_t pers = 0, eph = 0;
	unsigned int k;

	for (k = 0; k < NKEYS; k++) {
		if (!model[k])
			continue;
		if (k >= key(2, 0, 0))
			pers++;
		else
			eph++;
	}
	tmem_get_stats(s, &st);
	CHECK(st.used_bytes <= st.limit_bytes);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, pers);
	CHECK(st.kind[TMEM_EPHEMERAL].stored_pages <= eph);
}

int main(int argc, char **argv)
{
	const char *env = getenv("TMEM_MODEL_OPS");
	uint64_t ops = argc > 1 ? strtoull(argv[1], NULL, 0) :
		       env ? strtoull(env, NULL, 0) : 2000000;
	uint64_t limit = (argc > 3 ? strtoull(argv[3], NULL, 0) : 3) << 20;
	struct tmem_config cfg;
	struct tmem_store *s;
	struct tmem_stats st;
	uint64_t n;
	unsigned int p;

	if (argc > 2)
		rng = strtoull(argv[2], NULL, 0) | 1;
	test_config_init(&cfg);
	cfg.limit_bytes = limit;
	cfg.max_pools = 8;
	REQUIRE(tmem_store_create(&cfg, &s) == 0);
	for (p = 0; p < NPOOLS; p++) {
		pool_id[p] = tmem_new_pool(s, p >= 2 ? TMEM_POOL_PERSISTENT : 0,
					   NULL);
		REQUIRE(pool_id[p] >= 0);
	}
	for (n = 0; n < ops; n++) {
		unsigned int pp = (unsigned int)rnd(NPOOLS);
		unsigned int o = (unsigned int)rnd(NOBJS);
		unsigned int i = (unsigned int)rnd(NIDX);
		uint64_t r = rnd(1000);

		if (r < 500)
			do_put(s, pp, o, i);
		else if (r < 900)
			do_get(s, pp, o, i);
		else if (r < 990)
			do_flush(s, pp, o, i, 0);
		else if (r < 999)
			do_flush(s, pp, o, i, 1);
		else if (rnd(20) == 0)
			do_flush(s, pp, o, i, 2);
		if (n % 50000 == 0)
			check_counters(s);
		if (check_failures > 20)
			break;
	}
	check_counters(s);
	tmem_get_stats(s, &st);
	printf("%" PRIu64 " ops: persistent %" PRIu64 " stored, %" PRIu64
	       " refused full; ephemeral %" PRIu64 " stored, %" PRIu64
	       " evicted, %" PRIu64 " incompressible; used %" PRIu64 "/%"
	       PRIu64 " bytes\n", n, st.kind[1].stored_pages,
	       st.kind[1].reject_full, st.kind[0].stored_pages,
	       st.kind[0].evicted_pages, st.kind[0].reject_incompressible,
	       st.used_bytes, st.limit_bytes);
	/* the run must have exercised the pressure paths */
	CHECK(st.kind[0].evicted_pages > 0);
	CHECK(st.kind[1].reject_full > 0);
	for (p = 0; p < NPOOLS; p++)
		CHECK_EQ(tmem_destroy_pool(s, (uint32_t)pool_id[p], NULL), 0);
	tmem_get_stats(s, &st);
	CHECK_EQ(st.kind[0].stored_pages + st.kind[1].stored_pages, 0);
	CHECK_EQ(st.kind[0].frames + st.kind[1].frames, 0);
	CHECK_EQ(st.kind[0].meta_frames + st.kind[1].meta_frames, 0);
	tmem_store_destroy(s);
	return check_report("test_pool_model");
}
