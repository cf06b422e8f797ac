/*
 * Concurrency test (built and run under TSan by scripts/test.sh): worker
 * threads hammer private pools, a shared pool joined by UUID, and a few
 * contended keys, under a limit small enough that eviction runs all the
 * time, while another thread reads stats and creates and destroys pools.
 *
 * Private persistent pages are checked exactly; contended pages must be
 * some thread's complete page (each page carries its seed).
 *
 * Usage: test-pool-concurrency [OPS_PER_THREAD [THREADS]]
 * OPS_PER_THREAD defaults to $TMEM_CONCURRENCY_OPS, else 40000.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "pages.h"
#include "test_config.h"
#include "tmem.h"

#define MAX_THREADS	8
#define NIDX		512

static struct tmem_store *store;
static int shared_eph, shared_per;
static uint64_t ops_per_thread = 40000;
static atomic_int workers_left;
static atomic_ulong failures;

#define TCHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c);	\
		atomic_fetch_add(&failures, 1);				\
	}								\
} while (0)

struct worker {
	pthread_t tid;
	unsigned int n;
	int eph, per;
	uint64_t rng;
	uint64_t model[NIDX];	/* private persistent pool: seed or 0 */
};

static uint64_t seed_of(const uint8_t *page)
{
	uint64_t seed;

	memcpy(&seed, page + TMEM_PAGE_SIZE - 8, 8);
	return seed;
}

/* A contended page must be exactly the page its embedded seed makes. */
static void check_whole(const uint8_t *out)
{
	static _Thread_local uint8_t want[TMEM_PAGE_SIZE];
	uint64_t seed = seed_of(out);

	page_make(want, SHAPE_SIZED, seed, (unsigned int)(seed % 3000));
	TCHECK(!memcmp(want, out, TMEM_PAGE_SIZE));
}

static void private_op(struct worker *w, uint8_t *page, uint8_t *out)
{
	struct tmem_oid oid = { { w->n, 1, 2 } };
	unsigned int i = (unsigned int)(page_rng(&w->rng) % NIDX);
	struct iovec v;
	int r;

	switch (page_rng(&w->rng) % 4) {
	case 0:
	case 1: {
		uint64_t seed = page_rng(&w->rng) | 1;

		page_from_seed(page, seed);
		v = page_iov(page);
		r = tmem_put(store, (uint32_t)w->per, &oid, i, &v, 1, NULL);
		TCHECK(r == 0 || r == -TMEM_E_FULL);
		w->model[i] = r ? 0 : seed;
		v = page_iov(page);
		tmem_put(store, (uint32_t)w->eph, &oid, i, &v, 1, NULL);
		break;
	}
	case 2:
		v = page_iov(out);
		r = tmem_get(store, (uint32_t)w->per, &oid, i, &v, 1, 0);
		if (!w->model[i]) {
			TCHECK(r == -TMEM_E_NOT_FOUND);
			break;
		}
		TCHECK(r == 0);
		page_from_seed(page, w->model[i]);
		TCHECK(!memcmp(page, out, TMEM_PAGE_SIZE));
		v = page_iov(out);
		tmem_get(store, (uint32_t)w->eph, &oid, i, &v, 1, 0);
		break;
	default:
		tmem_flush_page(store, (uint32_t)w->per, &oid, i);
		w->model[i] = 0;
	}
}

static void contended_op(struct worker *w, uint8_t *page, uint8_t *out)
{
	struct tmem_oid oid = { { 777, 0, 0 } };
	unsigned int i = (unsigned int)(page_rng(&w->rng) % 8);
	int pool = (page_rng(&w->rng) & 1) ? shared_eph : shared_per;
	uint64_t seed = page_rng(&w->rng);
	struct iovec v;
	int r;

	switch (page_rng(&w->rng) % 5) {
	case 0:
	case 1:
		page_make(page, SHAPE_SIZED, seed, (unsigned int)(seed % 3000));
		v = page_iov(page);
		tmem_put(store, (uint32_t)pool, &oid, i, &v, 1, NULL);
		break;
	case 2:
	case 3:
		v = page_iov(out);
		r = tmem_get(store, (uint32_t)pool, &oid, i, &v, 1,
			     (seed & 3) ? 0 : TMEM_GET_EXCLUSIVE);
		if (r == 0)
			check_whole(out);
		else
			TCHECK(r == -TMEM_E_NOT_FOUND);
		break;
	default:
		if (seed & 1)
			tmem_flush_page(store, (uint32_t)pool, &oid, i);
		else
			tmem_flush_object(store, (uint32_t)pool, &oid, NULL);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	static _Thread_local uint8_t page[TMEM_PAGE_SIZE], out[TMEM_PAGE_SIZE];
	uint64_t n;

	for (n = 0; n < ops_per_thread; n++) {
		if (page_rng(&w->rng) % 4)
			private_op(w, page, out);
		else
			contended_op(w, page, out);
	}
	atomic_fetch_sub(&workers_left, 1);
	return NULL;
}

/* Stats, capacity and pool churn racing with the workers. */
static void *churn_main(void *arg)
{
	struct tmem_uuid u = { { 0x42 } };
	struct tmem_stats st;
	unsigned long rounds = 0;

	(void)arg;
	while (atomic_load(&workers_left) > 0) {
		int p = tmem_new_pool(store, 0, NULL);
		int q = tmem_new_pool(store, TMEM_POOL_SHARED, &u);

		TCHECK(q == shared_eph);
		tmem_get_stats(store, &st);
		TCHECK(st.used_bytes <= st.limit_bytes);
		tmem_persistent_capacity(store);
		if (p >= 0)
			TCHECK(tmem_destroy_pool(store, (uint32_t)p, NULL) == 0);
		TCHECK(tmem_destroy_pool(store, (uint32_t)q, NULL) == 0);
		rounds++;
	}
	printf("churn thread: %lu rounds\n", rounds);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct worker w[MAX_THREADS];
	unsigned int nthreads = 3, i;
	struct tmem_uuid u = { { 0x42 } }, up = { { 0x43 } };
	struct tmem_config cfg;
	struct tmem_stats st;
	pthread_t churn;

	if (argc > 1)
		ops_per_thread = strtoull(argv[1], NULL, 0);
	else if (getenv("TMEM_CONCURRENCY_OPS"))
		ops_per_thread = strtoull(getenv("TMEM_CONCURRENCY_OPS"),
					  NULL, 0);
	if (argc > 2)
		nthreads = (unsigned int)strtoul(argv[2], NULL, 0);
	REQUIRE(nthreads >= 2 && nthreads <= MAX_THREADS);
	test_config_init(&cfg);
	cfg.limit_bytes = 2 << 20;
	REQUIRE(tmem_store_create(&cfg, &store) == 0);
	shared_eph = tmem_new_pool(store, TMEM_POOL_SHARED, &u);
	shared_per = tmem_new_pool(store, TMEM_POOL_SHARED |
				   TMEM_POOL_PERSISTENT, &up);
	REQUIRE(shared_eph >= 0 && shared_per >= 0);
	atomic_store(&workers_left, (int)nthreads);
	for (i = 0; i < nthreads; i++) {
		w[i].n = i;
		w[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
		w[i].eph = tmem_new_pool(store, 0, NULL);
		w[i].per = tmem_new_pool(store, TMEM_POOL_PERSISTENT, NULL);
		REQUIRE(w[i].eph >= 0 && w[i].per >= 0);
	}
	for (i = 0; i < nthreads; i++)
		REQUIRE(pthread_create(&w[i].tid, NULL, worker_main, &w[i]) ==
			0);
	REQUIRE(pthread_create(&churn, NULL, churn_main, NULL) == 0);
	for (i = 0; i < nthreads; i++)
		pthread_join(w[i].tid, NULL);
	pthread_join(churn, NULL);

	tmem_get_stats(store, &st);
	printf("%u threads x %" PRIu64 " ops: %" PRIu64 " puts, %" PRIu64
	       " evicted, %" PRIu64 " persistent refused, %" PRIu64
	       " pages moved by compaction\n", nthreads, ops_per_thread,
	       st.kind[0].puts + st.kind[1].puts, st.kind[0].evicted_pages,
	       st.kind[1].reject_full, st.compact_moved);
	CHECK(st.used_bytes <= st.limit_bytes);
	CHECK(st.kind[0].evicted_pages > 0);
	CHECK_EQ(atomic_load(&failures), 0);
	tmem_store_destroy(store);
	return check_report("test_pool_concurrency");
}
