// SPDX-License-Identifier: BSD-3-Clause
/*
 * Migration of a store (host-pool/migrate.c): a source streams its pools
 * and pages into a second store while random ops go on, round after
 * round; once ops stop and the last round is sent, every persistent key
 * reads back byte-identical from both stores and the destination holds no
 * key the source lacks.  With a shared image the destination opens the
 * source's file, written-back pages go as slot references, and the image
 * is handed over at the end.
 *
 * Usage: test-migrate [radix|refusal|idle|overflow|churn|model|stale|
 *			handover|threads] [OPS]
 * OPS defaults to $TMEM_MIGRATE_OPS (model) or $TMEM_CONCURRENCY_OPS
 * (threads), else 200000.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lz4.h>

#include "../check.h"
#include "hash.h"
#include "pages.h"
#include "store_internal.h"
#include "test_config.h"

#define NSLOTS	4		/* pools the ops use at a time */
#define NOBJS	24
#define NIDX	40
#define NKEYS	(NSLOTS * NOBJS * NIDX)

static uint64_t ops = 200000;
static char image_path[256];

/**
 * struct slot - a pool the ops use
 * @id: its id in the source, or -1 (none)
 * @persistent: its kind
 * @shared: made with TMEM_POOL_SHARED
 * @refs: tmem_new_pool() calls not yet destroyed (shared pools join twice)
 * @uuid: shared pool's UUID, or all zero (private pool)
 */
struct slot {
	int id;
	bool persistent, shared;
	unsigned int refs;
	struct tmem_uuid uuid;
};

/*
 * The guest's view: per key the seed of the page last put and neither
 * flushed nor taken since (0: none).  A persistent key holds exactly it;
 * an ephemeral key holds it or nothing (eviction).
 */
static uint64_t model[NKEYS];
static struct slot slots[NSLOTS];

/* Per thread: its random state and its page buffers. */
struct actor {
	uint64_t rng;
	uint64_t seq;
	uint8_t page[TMEM_PAGE_SIZE], out[TMEM_PAGE_SIZE];
};

static uint64_t rnd(struct actor *a, uint64_t n)
{
	return page_rng(&a->rng) % n;
}

static unsigned int key(unsigned int sl, unsigned int o, unsigned int i)
{
	return (sl * NOBJS + o) * NIDX + i;
}

static struct tmem_oid oid_of(unsigned int o)
{
	struct tmem_oid id = { { o * 0x9e3779b97f4a7c15ull, o, 0xbeef } };

	return id;
}

/* Page indexes: a dense run, and a few far apart (deep radix trees). */
static uint64_t index_of(unsigned int i)
{
	if (i < NIDX - 3)
		return i;
	if (i == NIDX - 3)
		return 1ull << 40;
	return i == NIDX - 2 ? UINT64_MAX - 1 : UINT64_MAX;
}

/* ---- the store pair ---------------------------------------------------- */

struct pair {
	struct tmem_store *src, *dst;
	struct tmem_image *img, *dimg;
	struct tmem_migration *m;
	unsigned int mig_flags;
	uint64_t records, bytes, slot_refs;
	uint64_t by_type[TMEM_MIG_FLUSH_BUCKET + 1];
};

static struct tmem_store *store_new(uint64_t limit_mib)
{
	struct tmem_config cfg;
	struct tmem_store *s;

	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	cfg.limit_bytes = limit_mib << 20;
	cfg.max_pools = 8;
	REQUIRE(tmem_store_create(&cfg, &s) == 0);
	return s;
}

static void pair_open(struct pair *pr, uint64_t src_mib, uint64_t image_mib)
{
	struct tmem_image_config ic = {
		.path = image_path,
		.size_bytes = image_mib << 20,
		.unlink_path = true,
	};
	int err;

	memset(pr, 0, sizeof(*pr));
	pr->src = store_new(src_mib);
	pr->dst = store_new(64);
	if (image_mib) {
		REQUIRE(tmem_image_open(&ic, &pr->img, &err) == 0);
		REQUIRE(tmem_store_attach_image(pr->src, pr->img) == 0);
	}
}

/* The destination's store, on the source's image (shared storage). */
static void pair_dst_shared(struct pair *pr, uint64_t image_mib)
{
	struct tmem_image_config ic = {
		.path = image_path,
		.size_bytes = image_mib << 20,
		.incoming = true,
	};
	int err;

	pr->dst = store_new(64);
	REQUIRE(tmem_image_open(&ic, &pr->dimg, &err) == 0);
	REQUIRE(tmem_store_attach_image(pr->dst, pr->dimg) == 0);
}

/* Both stores on one image file that stays visible (shared storage). */
static void pair_open_shared(struct pair *pr, uint64_t src_mib,
			     uint64_t image_mib)
{
	struct tmem_image_config ic = {
		.path = image_path,
		.size_bytes = image_mib << 20,
	};
	int err;

	memset(pr, 0, sizeof(*pr));
	pr->src = store_new(src_mib);
	REQUIRE(tmem_image_open(&ic, &pr->img, &err) == 0);
	REQUIRE(tmem_store_attach_image(pr->src, pr->img) == 0);
	pair_dst_shared(pr, image_mib);
}

/* A failed migration: the destination goes, never touching the file. */
static void pair_dst_drop(struct pair *pr)
{
	tmem_store_destroy(pr->dst);
	tmem_image_close(pr->dimg);
	pr->dst = NULL;
	pr->dimg = NULL;
}

static void pair_close(struct pair *pr)
{
	tmem_migration_end(pr->m);
	tmem_store_destroy(pr->src);
	tmem_store_destroy(pr->dst);
	tmem_image_close(pr->img);
	tmem_image_close(pr->dimg);
	if (pr->dimg || (pr->mig_flags & TMEM_MIG_SHARED_IMAGE))
		unlink(image_path);
}

/*
 * Send up to @budget records (0: until the round ends), each copied as a
 * wire would, and install them.  Returns the records sent.
 */
static uint64_t send(struct pair *pr, uint64_t budget)
{
	static _Thread_local uint8_t buf[TMEM_PAGE_SIZE], wire[TMEM_PAGE_SIZE];
	struct tmem_mig_record rec, got;
	uint64_t n = 0;
	int r;

	while (!budget || n < budget) {
		r = tmem_migration_next(pr->m, &rec, buf);
		REQUIRE(r >= 0);
		if (!r)
			break;
		REQUIRE(rec.len <= TMEM_PAGE_SIZE);
		got = rec;
		if (rec.form == TMEM_MIG_SLOT)	/* no bytes go with it */
			rec.len = 0;
		memcpy(wire, buf, rec.len);
		pr->slot_refs += rec.form == TMEM_MIG_SLOT;
		r = tmem_install(pr->dst, &got, rec.len ? wire : NULL);
		if (r) {
			fprintf(stderr, "install type %u pool %u: %s\n",
				rec.type, rec.pool_id, tmem_strerror(r));
			CHECK(0);
		}
		pr->records++;
		pr->bytes += rec.len;
		if (rec.type <= TMEM_MIG_FLUSH_BUCKET)
			pr->by_type[rec.type]++;
		n++;
	}
	return n;
}

/* ---- ops ---------------------------------------------------------------- */

/* check.h's counters are not atomic: ops on worker threads count here. */
static atomic_ulong op_failures;

#define OP_CHECK(cond) do {						\
	if (!(cond)) {							\
		atomic_fetch_add(&op_failures, 1);			\
		fprintf(stderr, "%s:%d: CHECK failed: %s\n",		\
			__FILE__, __LINE__, #cond);			\
	}								\
} while (0)
#define OP_CHECK_EQ(a, b)	OP_CHECK((long long)(a) == (long long)(b))

static bool page_is(const uint8_t *buf, uint64_t seed);

static void slot_create(struct pair *pr, struct actor *a, unsigned int sl)
{
	struct slot *s = &slots[sl];
	bool shared = rnd(a, 3) == 0;
	unsigned int flags = rnd(a, 2) ? TMEM_POOL_PERSISTENT : 0;

	/* slot 0 is always ephemeral, the last persistent, others change */
	if (sl == 0 || sl == NSLOTS - 1)
		flags = sl ? TMEM_POOL_PERSISTENT : 0;

	memset(&s->uuid, 0, sizeof(s->uuid));
	if (shared) {
		uint64_t u = page_rng(&a->rng);

		memcpy(s->uuid.b, &u, sizeof(u));
		s->uuid.b[15] = (uint8_t)sl;
		flags |= TMEM_POOL_SHARED;
	}
	s->persistent = flags & TMEM_POOL_PERSISTENT;
	s->shared = shared;
	s->id = tmem_new_pool(pr->src, flags, shared ? &s->uuid : NULL);
	REQUIRE(s->id >= 0);
	s->refs = 1;
	if (shared && rnd(a, 2)) {	/* a second guest joins */
		REQUIRE(tmem_new_pool(pr->src, flags, &s->uuid) == s->id);
		s->refs++;
	}
}

static void slot_forget(unsigned int sl)
{
	unsigned int k;

	for (k = key(sl, 0, 0); k < key(sl + 1, 0, 0); k++)
		model[k] = 0;
}

static void op_put(struct pair *pr, struct actor *a, unsigned int sl,
		   unsigned int o, unsigned int i)
{
	struct tmem_oid id = oid_of(o);
	uint64_t seed = a->seq++;
	struct iovec v;
	int r;

	page_from_seed(a->page, seed);
	v = page_iov(a->page);
	r = tmem_put(pr->src, (uint32_t)slots[sl].id, &id, index_of(i), &v, 1,
		     NULL);
	model[key(sl, o, i)] = r ? 0 : seed;
	if (r && slots[sl].persistent)
		OP_CHECK_EQ(r, -TMEM_E_FULL);
}

static void op_get(struct pair *pr, struct actor *a, unsigned int sl,
		   unsigned int o, unsigned int i)
{
	struct tmem_oid id = oid_of(o);
	bool excl = rnd(a, 3) == 0;
	uint64_t want = model[key(sl, o, i)];
	struct iovec v = page_iov(a->out);
	int r;

	r = tmem_get(pr->src, (uint32_t)slots[sl].id, &id, index_of(i), &v, 1,
		     excl ? TMEM_GET_EXCLUSIVE : 0);
	if (!r && excl)
		model[key(sl, o, i)] = 0;
	if (slots[sl].persistent)
		OP_CHECK_EQ(r, want ? 0 : -TMEM_E_NOT_FOUND);
	if (!r)
		OP_CHECK(want && page_is(a->out, want));
}

static void op_flush(struct pair *pr, struct actor *a, unsigned int sl,
		     unsigned int o, unsigned int i)
{
	struct tmem_oid id = oid_of(o);
	uint32_t pid = (uint32_t)slots[sl].id;
	unsigned int j;
	uint64_t r = rnd(a, 1000);

	if (r < 985) {
		OP_CHECK(tmem_flush_page(pr->src, pid, &id, index_of(i)) >= 0);
		model[key(sl, o, i)] = 0;
	} else if (r < 995) {
		OP_CHECK_EQ(tmem_flush_object(pr->src, pid, &id, NULL), 0);
		for (j = 0; j < NIDX; j++)
			model[key(sl, o, j)] = 0;
	} else {
		OP_CHECK_EQ(tmem_flush_pool(pr->src, pid, NULL), 0);
		slot_forget(sl);
	}
}

/* Destroy a pool (every reference) and make another in its place. */
static void op_recreate(struct pair *pr, struct actor *a, unsigned int sl)
{
	while (slots[sl].refs--)
		OP_CHECK_EQ(tmem_destroy_pool(pr->src, (uint32_t)slots[sl].id,
					   NULL), 0);
	slot_forget(sl);
	slot_create(pr, a, sl);
}

/* Another guest joins a shared pool: only its references change. */
static void op_join(struct pair *pr, unsigned int sl)
{
	struct slot *s = &slots[sl];

	if (!s->shared)
		return;
	REQUIRE(tmem_new_pool(pr->src, TMEM_POOL_SHARED |
			      (s->persistent ? TMEM_POOL_PERSISTENT : 0),
			      &s->uuid) == s->id);
	s->refs++;
}

/* What changes where a page is, never what it is: not logged. */
static void op_move(struct pair *pr, struct actor *a)
{
	uint64_t r = rnd(a, 8);

	if (!pr->img)		/* a store with no eviction: exact check */
		tmem_compact(pr->src);
	else if (r < 6)
		store_writeback_unit(pr->src);
	else if (r < 7)
		tmem_compact(pr->src);
	else
		store_evict_ephemeral_unit(pr->src);
}

/* One random op on the slots [@lo, @hi). */
static void op_random(struct pair *pr, struct actor *a, unsigned int lo,
		      unsigned int hi)
{
	unsigned int sl = lo + (unsigned int)rnd(a, hi - lo);
	unsigned int o = (unsigned int)rnd(a, NOBJS);
	unsigned int i = (unsigned int)rnd(a, NIDX);
	uint64_t r = rnd(a, 10000);

	if (r < 6000)
		op_put(pr, a, sl, o, i);
	else if (r < 8000)
		op_get(pr, a, sl, o, i);
	else if (r < 9770)
		op_flush(pr, a, sl, o, i);
	else if (r < 9773)
		op_recreate(pr, a, sl);
	else if (r < 9790)
		op_join(pr, sl);
	else
		op_move(pr, a);
}

/* ---- the check ---------------------------------------------------------- */

/* 1 and the page in @buf, 0 if missing; anything else fails the test. */
static int read_key(struct tmem_store *s, uint32_t pid, unsigned int o,
		    unsigned int i, uint8_t *buf)
{
	struct tmem_oid id = oid_of(o);
	struct iovec v = page_iov(buf);
	int r = tmem_get(s, pid, &id, index_of(i), &v, 1, 0);

	CHECK(r == 0 || r == -TMEM_E_NOT_FOUND);
	return r == 0;
}

static bool page_is(const uint8_t *buf, uint64_t seed)
{
	static _Thread_local uint8_t want[TMEM_PAGE_SIZE];

	page_from_seed(want, seed);
	return !memcmp(buf, want, TMEM_PAGE_SIZE);
}

static void check_key(struct pair *pr, unsigned int sl, unsigned int o,
		      unsigned int i, bool exact)
{
	static uint8_t a[TMEM_PAGE_SIZE], b[TMEM_PAGE_SIZE];
	const struct slot *s = &slots[sl];
	uint64_t want = model[key(sl, o, i)];
	bool pages = s->persistent || (pr->mig_flags & TMEM_MIG_EPHEMERAL);
	int in_src = read_key(pr->src, (uint32_t)s->id, o, i, a);
	int in_dst = read_key(pr->dst, (uint32_t)s->id, o, i, b);

	if (in_src)
		CHECK(want && page_is(a, want));
	if (s->persistent)
		CHECK_EQ(in_src, want != 0);
	if (!pages) {
		CHECK_EQ(in_dst, 0);
		return;
	}
	if (in_src && (!in_dst || memcmp(a, b, TMEM_PAGE_SIZE))) {
		fprintf(stderr, "slot %u obj %u idx %u: source's page %s on "
			"the destination\n", sl, o, i,
			in_dst ? "differs" : "missing");
		CHECK(0);
	}
	/* an ephemeral page evicted on the source may stay on the other */
	if (in_dst && !in_src) {
		CHECK(!exact ? want && page_is(b, want) : false);
		if (exact)
			fprintf(stderr, "slot %u obj %u idx %u: destination "
				"holds a page the source lacks\n", sl, o, i);
	}
}

/* With ops stopped: send the last round, then compare every key. */
static void finish_compare(struct pair *pr)
{
	struct tmem_mig_pending pend;
	struct tmem_stats ss, ds;
	unsigned int sl, o, i;
	uint32_t id;
	bool exact;

	send(pr, 0);
	tmem_migration_pending(pr->m, &pend);
	CHECK_EQ(pend.records, 0);
	CHECK_EQ(pend.bytes, 0);
	CHECK_EQ(send(pr, 0), 0);
	tmem_get_stats(pr->src, &ss);
	tmem_get_stats(pr->dst, &ds);
	for (id = 0; id < 8; id++)
		CHECK_EQ(tmem_pool_kind(pr->src, id),
			 tmem_pool_kind(pr->dst, id));
	exact = !ss.kind[TMEM_EPHEMERAL].evicted_pages;
	for (sl = 0; sl < NSLOTS; sl++)
		for (o = 0; o < NOBJS; o++)
			for (i = 0; i < NIDX; i++)
				check_key(pr, sl, o, i, exact);
	CHECK_EQ(ds.kind[TMEM_PERSISTENT].stored_pages,
		 ss.kind[TMEM_PERSISTENT].stored_pages);
	if (exact && (pr->mig_flags & TMEM_MIG_EPHEMERAL))
		CHECK_EQ(ds.kind[TMEM_EPHEMERAL].stored_pages,
			 ss.kind[TMEM_EPHEMERAL].stored_pages);
	CHECK(ds.used_bytes <= ds.limit_bytes);
	if (pr->mig_flags & TMEM_MIG_SHARED_IMAGE) {
		/* every page is where the source's is, every slot counted */
		CHECK_EQ(ds.kind[TMEM_PERSISTENT].image_pages,
			 ss.kind[TMEM_PERSISTENT].image_pages);
		CHECK_EQ(ds.image.slots_used, ss.image.slots_used);
		if (ss.kind[TMEM_PERSISTENT].image_pages)
			CHECK(pr->slot_refs > 0);
	}
	printf("  %" PRIu64 " records (%" PRIu64 " slot references), %" PRIu64
	       " bytes; source: %" PRIu64 " persistent pages (%" PRIu64
	       " in the image), %" PRIu64 " ephemeral (%" PRIu64
	       " evicted)\n", pr->records, pr->slot_refs, pr->bytes,
	       ss.kind[TMEM_PERSISTENT].stored_pages,
	       ss.kind[TMEM_PERSISTENT].image_pages,
	       ss.kind[TMEM_EPHEMERAL].stored_pages,
	       ss.kind[TMEM_EPHEMERAL].evicted_pages);
}

/* The destination's pools have the source's references. */
static void check_refs(struct pair *pr)
{
	unsigned int sl, i;

	for (sl = 0; sl < NSLOTS; sl++) {
		for (i = 1; i < slots[sl].refs; i++)
			CHECK_EQ(tmem_destroy_pool(pr->dst,
						   (uint32_t)slots[sl].id,
						   NULL), 0);
		CHECK(tmem_pool_kind(pr->dst, (uint32_t)slots[sl].id) >= 0);
		CHECK_EQ(tmem_destroy_pool(pr->dst, (uint32_t)slots[sl].id,
					   NULL), 0);
		CHECK_EQ(tmem_pool_kind(pr->dst, (uint32_t)slots[sl].id),
			 -TMEM_E_BAD_POOL);
	}
}

static void finish_and_check(struct pair *pr)
{
	finish_compare(pr);
	check_refs(pr);
}

/*
 * The switchover of a shared image: writeback stops, the last round goes,
 * the source hands the file over and goes away (its close must leave the
 * file alone), and the destination alone reads every persistent key back.
 */
static void finish_shared(struct pair *pr)
{
	static uint8_t b[TMEM_PAGE_SIZE];
	unsigned int sl, o, i;
	char why[512];

	tmem_migration_freeze_image(pr->m);
	finish_compare(pr);
	REQUIRE(tmem_image_release(pr->img, why, sizeof(why)) == 0);
	REQUIRE(tmem_image_acquire(pr->dimg, why, sizeof(why)) == 0);
	/* a source going on now would find the lock taken */
	CHECK_EQ(tmem_image_acquire(pr->img, why, sizeof(why)),
		 -TMEM_E_IMAGE);
	CHECK(strstr(why, image_path) != NULL);
	tmem_migration_end(pr->m);
	pr->m = NULL;
	tmem_store_destroy(pr->src);
	tmem_image_close(pr->img);
	pr->src = NULL;
	pr->img = NULL;
	for (sl = 0; sl < NSLOTS; sl++) {
		if (!slots[sl].persistent)
			continue;
		for (o = 0; o < NOBJS; o++)
			for (i = 0; i < NIDX; i++) {
				uint64_t want = model[key(sl, o, i)];
				int in = read_key(pr->dst, (uint32_t)slots[sl].id,
						  o, i, b);

				CHECK_EQ(in, want != 0);
				if (in)
					CHECK(page_is(b, want));
			}
	}
	check_refs(pr);
}

/* ---- model ------------------------------------------------------------- */

/*
 * Ops interleaved with rounds of records; with @cancel, the migration is
 * cancelled half-way (its destination thrown away) and started again.
 */
static void model_run(uint64_t src_mib, uint64_t image_mib, unsigned int flags,
		      uint64_t seed, bool cancel)
{
	struct actor *a = calloc(1, sizeof(*a));
	struct pair pr;
	unsigned int sl;
	uint64_t n;

	bool shared = flags & TMEM_MIG_SHARED_IMAGE;

	printf("model: source %" PRIu64 " MiB, image %" PRIu64 " MiB%s, %s%s\n",
	       src_mib, image_mib, shared ? " (shared)" : "",
	       flags & TMEM_MIG_EPHEMERAL ?
	       "ephemeral pages too" : "persistent pages",
	       cancel ? ", cancelled and started again" : "");
	REQUIRE(a);
	a->rng = seed * 2 + 1;
	a->seq = 1;
	memset(model, 0, sizeof(model));
	if (shared)
		pair_open_shared(&pr, src_mib, image_mib);
	else
		pair_open(&pr, src_mib, image_mib);
	pr.mig_flags = flags;
	for (sl = 0; sl < NSLOTS; sl++)
		slot_create(&pr, a, sl);
	for (n = 0; n < ops; n++) {
		if (n == ops / 8)
			REQUIRE(tmem_migration_start(pr.src, flags, &pr.m) ==
				0);
		if (cancel && n == ops / 2) {
			tmem_migration_end(pr.m);
			if (shared) {
				pair_dst_drop(&pr);
				pair_dst_shared(&pr, image_mib);
			} else {
				tmem_store_destroy(pr.dst);
				pr.dst = store_new(64);
			}
			REQUIRE(tmem_migration_start(pr.src, flags, &pr.m) ==
				0);
		}
		if (pr.m && rnd(a, 100) == 0)
			send(&pr, rnd(a, 4) ? rnd(a, 400) + 1 : 0);
		op_random(&pr, a, 0, NSLOTS);
	}
	if (shared)
		finish_shared(&pr);
	else
		finish_and_check(&pr);
	pair_close(&pr);
	free(a);
}

static void test_model(void)
{
	model_run(64, 0, TMEM_MIG_EPHEMERAL, 1, false);
	model_run(64, 0, 0, 2, true);
	/* small: writeback moves pages to the image, eviction drops some */
	model_run(4, 32, TMEM_MIG_EPHEMERAL, 3, true);
	model_run(4, 32, 0, 4, false);
	/* the destination opens the source's image: slot references */
	model_run(4, 32, TMEM_MIG_SHARED_IMAGE, 5, false);
	model_run(4, 32, TMEM_MIG_SHARED_IMAGE | TMEM_MIG_EPHEMERAL, 6, true);
}

/* ---- shared image: stale references, handover -------------------------- */

/* Put @n pages into object @o of pool @pid and write them all back. */
static void put_written_back(struct pair *pr, int pid, unsigned int o,
			     unsigned int n, uint64_t seed)
{
	static uint8_t page[TMEM_PAGE_SIZE];
	struct iovec v = page_iov(page);
	struct tmem_oid id = oid_of(o);
	unsigned int i;

	for (i = 0; i < n; i++) {
		page_from_seed(page, seed + i);
		REQUIRE(tmem_put(pr->src, (uint32_t)pid, &id, i, &v, 1,
				 NULL) == 0);
	}
	while (store_writeback_unit(pr->src) == WB_FREED)
		;
}

/* Send until the round ends; mark the slots of the references sent. */
static void send_marking(struct pair *pr, uint8_t *seen, uint64_t nr_slots,
			 unsigned int o, unsigned int *reused)
{
	static uint8_t buf[TMEM_PAGE_SIZE];
	struct tmem_oid id = oid_of(o);
	struct tmem_mig_record rec;
	int r;

	while ((r = tmem_migration_next(pr->m, &rec, buf)) > 0) {
		if (rec.type == TMEM_MIG_PAGE && rec.form == TMEM_MIG_SLOT) {
			REQUIRE(rec.slot < nr_slots);
			if (!memcmp(&rec.oid, &id, sizeof(id)))
				*reused += seen[rec.slot] == 1;
			else
				seen[rec.slot] = 1;
		}
		CHECK_EQ(tmem_install(pr->dst, &rec,
				      rec.form == TMEM_MIG_SLOT ? NULL : buf),
			 0);
	}
	REQUIRE(r == 0);
}

/*
 * A page sent as a reference to slot S is flushed on the source, and S
 * falls free.  Until the flush has gone, the destination still counts its
 * reference in S: a writeback that reused S meanwhile would put other
 * bytes (another checksum) under it.  The source holds S until the round
 * that sends the flush ends; a new unit goes elsewhere, and S is free
 * again after.
 */
static void test_stale(void)
{
	static uint8_t seen[(32 << 20) / TMEM_PAGE_SIZE];
	struct tmem_stats ss, ds;
	struct tmem_oid a = oid_of(1);
	unsigned int reused = 0;
	struct pair pr;
	char why[512];
	int pid;

	memset(model, 0, sizeof(model));
	pair_open_shared(&pr, 4, 32);
	pr.mig_flags = TMEM_MIG_SHARED_IMAGE;
	pid = tmem_new_pool(pr.src, TMEM_POOL_PERSISTENT, NULL);
	REQUIRE(pid >= 0);
	put_written_back(&pr, pid, 1, 64, 1000);
	REQUIRE(tmem_migration_start(pr.src, pr.mig_flags, &pr.m) == 0);
	memset(seen, 0, sizeof(seen));
	send_marking(&pr, seen, sizeof(seen), 2, &reused);
	/* the slots fall free; a new unit is written back before the flush
	 * of the old references has gone */
	CHECK_EQ(tmem_flush_object(pr.src, (uint32_t)pid, &a, NULL), 0);
	put_written_back(&pr, pid, 2, 64, 5000);
	tmem_get_stats(pr.src, &ss);
	CHECK(ss.kind[TMEM_PERSISTENT].image_pages > 0);
	send_marking(&pr, seen, sizeof(seen), 2, &reused);
	CHECK_EQ(reused, 0);
	/* the round has ended: the old slots are free again */
	tmem_get_stats(pr.src, &ss);
	tmem_get_stats(pr.dst, &ds);
	CHECK_EQ(ss.image.slots_used, ds.image.slots_used);
	tmem_migration_freeze_image(pr.m);
	send_marking(&pr, seen, sizeof(seen), 2, &reused);
	REQUIRE(tmem_image_release(pr.img, why, sizeof(why)) == 0);
	REQUIRE(tmem_image_acquire(pr.dimg, why, sizeof(why)) == 0);
	for (unsigned int i = 0; i < 64; i++) {
		static uint8_t b[TMEM_PAGE_SIZE];
		struct tmem_oid id = oid_of(2);
		struct iovec v = page_iov(b);

		CHECK_EQ(tmem_get(pr.dst, (uint32_t)pid, &id, i, &v, 1, 0), 0);
		CHECK(page_is(b, 5000 + i));
		CHECK_EQ(tmem_get(pr.dst, (uint32_t)pid, &a, i, &v, 1, 0),
			 -TMEM_E_NOT_FOUND);
	}
	printf("stale: %" PRIu64 " slots in use on both sides, none reused "
	       "under a reference\n", ds.image.slots_used);
	pair_close(&pr);
}

/*
 * The lock: a destination cannot take it while the source holds it; a
 * source whose migration failed after the handover takes it back; a
 * destination that gave a load up leaves the file as it was.
 */
static void test_handover(void)
{
	static uint8_t b[TMEM_PAGE_SIZE];
	struct tmem_image_config ic = {
		.path = image_path, .size_bytes = 32 << 20,
		.incoming = true, .unlink_path = true,
	};
	struct tmem_oid id = oid_of(1);
	struct iovec v = page_iov(b);
	struct tmem_store *plain;
	struct tmem_image *img;
	struct tmem_stats st;
	struct pair pr;
	char why[512];
	unsigned int i;
	uint64_t cap;
	int pid, err;

	pair_open_shared(&pr, 4, 32);
	pr.mig_flags = TMEM_MIG_SHARED_IMAGE;
	/*
	 * Credits the source grants on its image reserve: a destination that
	 * may not allocate yet counts what it will have after the handover.
	 */
	plain = store_new(64);
	CHECK(tmem_persistent_capacity(pr.dst) >
	      tmem_persistent_capacity(plain));
	tmem_store_destroy(plain);
	/* no unlink of a shared image: the destination needs the path */
	CHECK_EQ(tmem_image_open(&ic, &img, &err), -TMEM_E_INVAL);
	pid = tmem_new_pool(pr.src, TMEM_POOL_PERSISTENT, NULL);
	put_written_back(&pr, pid, 1, 64, 1);
	CHECK_EQ(tmem_image_acquire(pr.dimg, why, sizeof(why)),
		 -TMEM_E_IMAGE);
	CHECK(strstr(why, image_path) != NULL);
	REQUIRE(tmem_migration_start(pr.src, pr.mig_flags, &pr.m) == 0);
	send(&pr, 0);
	cap = tmem_persistent_capacity(pr.src);
	tmem_migration_freeze_image(pr.m);
	send(&pr, 0);
	REQUIRE(tmem_image_release(pr.img, why, sizeof(why)) == 0);
	/* a frozen image is no room for credits: nothing may be written */
	CHECK(tmem_persistent_capacity(pr.src) < cap);
	/* the destination fails its load after taking the lock */
	REQUIRE(tmem_image_acquire(pr.dimg, why, sizeof(why)) == 0);
	CHECK_EQ(tmem_image_acquire(pr.img, why, sizeof(why)),
		 -TMEM_E_IMAGE);
	REQUIRE(tmem_image_release(pr.dimg, why, sizeof(why)) == 0);
	pair_dst_drop(&pr);
	tmem_migration_end(pr.m);
	pr.m = NULL;
	/* the source goes on with every page, and writes back again */
	REQUIRE(tmem_image_acquire(pr.img, why, sizeof(why)) == 0);
	for (i = 0; i < 64; i++) {
		CHECK_EQ(tmem_get(pr.src, (uint32_t)pid, &id, i, &v, 1, 0), 0);
		CHECK(page_is(b, 1 + i));
	}
	put_written_back(&pr, pid, 2, 64, 100);
	tmem_get_stats(pr.src, &st);
	CHECK_EQ(st.image.checksum_errors, 0);
	CHECK(st.kind[TMEM_PERSISTENT].image_pages >= 64);
	printf("handover: the source took the image back, %" PRIu64
	       " pages in it\n", st.kind[TMEM_PERSISTENT].image_pages);
	pair_close(&pr);
}

/* ---- threads ------------------------------------------------------------ */

struct worker {
	struct pair *pr;
	struct actor a;
	unsigned int lo, hi;
	uint64_t ops;
};

static atomic_int workers_left;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t n;

	for (n = 0; n < w->ops; n++)
		op_random(w->pr, &w->a, w->lo, w->hi);
	atomic_fetch_sub(&workers_left, 1);
	return NULL;
}

/*
 * Ops on two threads, each on its own pools, while this one migrates
 * (and the source's writeback thread writes back).
 */
static void threads_run(unsigned int flags)
{
	static struct worker w[2];
	struct tmem_mig_pending pend;
	struct actor a = { .rng = 7, .seq = 1u << 30 };
	pthread_t t[2];
	uint64_t rounds = 0;
	struct pair pr;
	unsigned int i, sl;

	memset(model, 0, sizeof(model));
	if (flags & TMEM_MIG_SHARED_IMAGE)
		pair_open_shared(&pr, 6, 32);
	else
		pair_open(&pr, 6, 32);
	pr.mig_flags = flags;
	for (sl = 0; sl < NSLOTS; sl++)
		slot_create(&pr, &a, sl);
	REQUIRE(tmem_migration_start(pr.src, pr.mig_flags, &pr.m) == 0);
	atomic_store(&workers_left, 2);
	for (i = 0; i < 2; i++) {
		w[i] = (struct worker){
			.pr = &pr, .lo = i * NSLOTS / 2,
			.hi = (i + 1) * NSLOTS / 2, .ops = ops,
		};
		w[i].a.rng = 0x1234567 + i;
		w[i].a.seq = (uint64_t)(i + 1) << 40;
		REQUIRE(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0);
	}
	while (atomic_load(&workers_left)) {
		send(&pr, 64);
		tmem_migration_pending(pr.m, &pend);
		if (!(rounds++ % 16))
			usleep(100);
	}
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("threads: %" PRIu64 " rounds of up to 64 records\n", rounds);
	if (flags & TMEM_MIG_SHARED_IMAGE)
		finish_shared(&pr);
	else
		finish_and_check(&pr);
	pair_close(&pr);
}

static void test_threads(void)
{
	threads_run(TMEM_MIG_EPHEMERAL);
	threads_run(TMEM_MIG_EPHEMERAL | TMEM_MIG_SHARED_IMAGE);
}

/* ---- refusal ------------------------------------------------------------ */

static void stats_same(const struct tmem_stats *a, const struct tmem_stats *b)
{
	CHECK_EQ(a->used_bytes, b->used_bytes);
	CHECK_EQ(a->pools, b->pools);
	CHECK(!memcmp(&a->kind, &b->kind, sizeof(a->kind)));
}

/* A destination too small fails cleanly; its counts do not move. */
static void test_too_small(void)
{
	static uint8_t page[TMEM_PAGE_SIZE], buf[TMEM_PAGE_SIZE];
	struct tmem_store *src = store_new(16), *dst;
	struct tmem_config cfg;
	struct tmem_migration *m;
	struct tmem_mig_record rec;
	struct tmem_stats before, after;
	struct tmem_oid id = oid_of(1);
	struct iovec v = page_iov(page);
	uint64_t cap, i, n, installed = 0;
	int pid, r = 0;

	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	cfg.limit_bytes = TMEM_MIN_LIMIT;
	cfg.max_pools = 8;
	REQUIRE(tmem_store_create(&cfg, &dst) == 0);
	pid = tmem_new_pool(src, TMEM_POOL_PERSISTENT, NULL);
	for (i = 0; i < 600; i++) {
		page_make(page, SHAPE_RANDOM, i, 0);
		REQUIRE(tmem_put(src, (uint32_t)pid, &id, i, &v, 1, NULL) == 0);
	}
	CHECK_EQ(tmem_install_check_room(dst, 600, 0, &cap), -TMEM_E_FULL);
	CHECK(cap < 600);
	CHECK_EQ(tmem_install_check_room(src, 0, 0, NULL), 0);
	REQUIRE(tmem_migration_start(src, 0, &m) == 0);
	CHECK_EQ(tmem_migration_start(src, 0, &m), -TMEM_E_INVAL);
	while (tmem_migration_next(m, &rec, buf) == 1) {
		tmem_get_stats(dst, &before);
		r = tmem_install(dst, &rec, buf);
		if (r)
			break;
		installed += rec.type == TMEM_MIG_PAGE;
	}
	CHECK_EQ(r, -TMEM_E_FULL);
	CHECK(installed > 0 && installed < 600);
	tmem_get_stats(dst, &after);
	stats_same(&before, &after);
	v = page_iov(buf);
	CHECK_EQ(tmem_get(dst, rec.pool_id, &rec.oid, rec.index, &v, 1, 0),
		 -TMEM_E_NOT_FOUND);
	printf("too small: %" PRIu64 " pages installed, then -TMEM_E_FULL "
	       "(capacity of the empty store %" PRIu64 ")\n", installed, cap);

	/* ephemeral pages that find no room are dropped, older ones too */
	rec.type = TMEM_MIG_POOL;
	rec.pool_id = 5;
	rec.pool_flags = 0;
	rec.refs = 1;
	CHECK_EQ(tmem_install(dst, &rec, NULL), 0);
	rec.type = TMEM_MIG_PAGE;
	rec.form = TMEM_MIG_FILLED;
	rec.len = 0;
	rec.fill = 7;
	rec.index = 0;
	CHECK_EQ(tmem_install(dst, &rec, NULL), 0);
	n = 0;
	for (i = 1; i < 600; i++) {
		memset(page, (int)i, sizeof(page));
		page[i] ^= 1;	/* compressible, not filled */
		rec.form = TMEM_MIG_COMPRESSED;
		rec.compressor = TMEM_COMP_LZ4;
		rec.index = i % 2 ? 0 : i;
		rec.len = (uint32_t)LZ4_compress_default((const char *)page,
			(char *)buf, TMEM_PAGE_SIZE, TMEM_PAGE_SIZE);
		CHECK_EQ(tmem_install(dst, &rec, buf), 0);
		v = page_iov(buf);
		r = tmem_get(dst, 5, &rec.oid, rec.index, &v, 1, 0);
		CHECK(r == -TMEM_E_NOT_FOUND ||
		      (!r && !memcmp(buf, page, TMEM_PAGE_SIZE)));
		n += r != 0;
	}
	tmem_get_stats(dst, &after);
	CHECK(n > 0);
	printf("too small: %" PRIu64 " of 599 ephemeral pages dropped\n", n);
	CHECK_EQ(after.kind[TMEM_PERSISTENT].stored_pages, installed);
	tmem_migration_end(m);
	tmem_store_destroy(src);
	tmem_store_destroy(dst);
}

/* Install @rec with @data into @dst; it must fail with @err, changing nothing. */
static void refused(struct tmem_store *dst, const struct tmem_mig_record *rec,
		    const void *data, int err)
{
	struct tmem_stats before, after;

	tmem_get_stats(dst, &before);
	CHECK_EQ(tmem_install(dst, rec, data), err);
	tmem_get_stats(dst, &after);
	stats_same(&before, &after);
}

/* Compressed bytes that do not make a page, or not this store's, are refused. */
static void test_corrupt(void)
{
	static uint8_t page[TMEM_PAGE_SIZE], buf[TMEM_PAGE_SIZE];
	static uint8_t bad[TMEM_PAGE_SIZE];
	struct tmem_store *src = store_new(16), *dst = store_new(16);
	struct tmem_mig_record rec, r2;
	struct tmem_migration *m;
	struct tmem_oid id = oid_of(2);
	struct iovec v = page_iov(page);
	int pid, n;

	pid = tmem_new_pool(src, TMEM_POOL_PERSISTENT, NULL);
	page_make(page, SHAPE_SIZED, 9, 1000);
	REQUIRE(tmem_put(src, (uint32_t)pid, &id, 5, &v, 1, NULL) == 0);
	REQUIRE(tmem_migration_start(src, 0, &m) == 0);
	REQUIRE(tmem_migration_next(m, &rec, buf) == 1);
	CHECK_EQ(rec.type, TMEM_MIG_POOL);
	CHECK_EQ(tmem_install(dst, &rec, NULL), 0);
	REQUIRE(tmem_migration_next(m, &rec, buf) == 1);
	REQUIRE(rec.type == TMEM_MIG_PAGE && rec.form == TMEM_MIG_COMPRESSED);
	CHECK_EQ(rec.compressor, TMEM_COMP_LZ4);

	r2 = rec;	/* one byte short */
	r2.len--;
	refused(dst, &r2, buf, -TMEM_E_IO);
	memset(bad, 0xff, sizeof(bad));	/* not an LZ4 block */
	refused(dst, &rec, bad, -TMEM_E_IO);
	/* a valid block, of half a page */
	n = LZ4_compress_default((const char *)page, (char *)bad,
				 TMEM_PAGE_SIZE / 2, TMEM_PAGE_SIZE);
	r2 = rec;
	r2.len = (uint32_t)n;
	refused(dst, &r2, bad, -TMEM_E_IO);
	r2 = rec;	/* another compressor's bytes */
	r2.compressor = TMEM_COMP_NONE;
	refused(dst, &r2, buf, -TMEM_E_INVAL);
	r2 = rec;
	r2.form = TMEM_MIG_RAW;
	refused(dst, &r2, buf, -TMEM_E_INVAL);
	r2 = rec;
	r2.form = 0;
	refused(dst, &r2, buf, -TMEM_E_INVAL);
	r2 = rec;
	r2.type = 0;
	refused(dst, &r2, buf, -TMEM_E_INVAL);
	r2 = rec;
	r2.pool_id = 7;
	refused(dst, &r2, buf, -TMEM_E_BAD_POOL);

	CHECK_EQ(tmem_install(dst, &rec, buf), 0);
	v = page_iov(buf);
	CHECK_EQ(tmem_get(dst, (uint32_t)pid, &id, 5, &v, 1, 0), 0);
	CHECK(!memcmp(buf, page, TMEM_PAGE_SIZE));
	tmem_migration_end(m);
	tmem_store_destroy(src);
	tmem_store_destroy(dst);
}

/*
 * Records mutated at random (bytes, lengths, forms, types, ids) are
 * refused or stored; whatever was stored reads back without an error:
 * a stream cannot plant a page that a get would fail on.
 */
static void test_garbage(void)
{
	static uint8_t page[TMEM_PAGE_SIZE], buf[TMEM_PAGE_SIZE];
	struct tmem_store *dst = store_new(16);
	struct actor a = { .rng = 0xfeed };
	struct tmem_mig_record rec;
	struct tmem_migration *m;
	struct iovec v;
	uint64_t i, stored = 0, pages = 0, bad = 0;
	int r;

	memset(&rec, 0, sizeof(rec));
	rec.type = TMEM_MIG_POOL;
	rec.pool_flags = TMEM_POOL_PERSISTENT;
	rec.refs = 1;
	REQUIRE(tmem_install(dst, &rec, NULL) == 0);
	for (i = 0; i < 20000; i++) {
		memset(&rec, 0, sizeof(rec));
		rec.type = TMEM_MIG_PAGE;
		rec.oid = oid_of((unsigned int)rnd(&a, 8));
		rec.index = rnd(&a, 64);
		page_from_seed(page, i + 1);
		rec.form = TMEM_MIG_COMPRESSED;
		r = LZ4_compress_default((const char *)page, (char *)buf,
					 TMEM_PAGE_SIZE, TMEM_PAGE_SIZE);
		rec.len = (uint32_t)r;
		if (r <= 0) {	/* incompressible */
			rec.form = TMEM_MIG_RAW;
			rec.len = TMEM_PAGE_SIZE;
			memcpy(buf, page, TMEM_PAGE_SIZE);
		}
		switch (rnd(&a, 6)) {
		case 0:		/* flip bits */
			buf[rnd(&a, rec.len)] ^= (uint8_t)(1u << rnd(&a, 8));
			break;
		case 1:		/* cut or extend */
			rec.len = (uint32_t)rnd(&a, TMEM_PAGE_SIZE + 1);
			break;
		case 2:		/* noise */
			page_make(buf, SHAPE_RANDOM, i, 0);
			break;
		case 3:		/* another form, type or pool */
			rec.form = (uint8_t)rnd(&a, 5);
			rec.type = (uint8_t)rnd(&a, 8);
			rec.pool_id = (uint32_t)rnd(&a, 3);
			rec.bucket = (uint16_t)rnd(&a, 40);
			rec.refs = (uint32_t)rnd(&a, 3);
			break;
		}
		if (rec.type == TMEM_MIG_POOL || rec.type == TMEM_MIG_POOL_GONE)
			rec.pool_id = (uint32_t)rnd(&a, 3) + 1;
		r = tmem_install(dst, &rec, buf);
		stored += !r && rec.type == TMEM_MIG_PAGE;
		CHECK(r <= 0);
	}
	/* read every page the destination holds, found by migrating it */
	REQUIRE(tmem_migration_start(dst, TMEM_MIG_EPHEMERAL, &m) == 0);
	while (tmem_migration_next(m, &rec, page) == 1) {
		if (rec.type != TMEM_MIG_PAGE)
			continue;
		pages++;
		v = page_iov(buf);
		r = tmem_get(dst, rec.pool_id, &rec.oid, rec.index, &v, 1, 0);
		bad += r != 0;
	}
	CHECK_EQ(bad, 0);
	CHECK(pages > 0);
	printf("garbage: %" PRIu64 " of 20000 mutated records stored, %"
	       PRIu64 " pages held, all readable\n", stored, pages);
	tmem_migration_end(m);
	tmem_store_destroy(dst);
}

/* A store destroyed mid-migration ends it (LeakSanitizer checks). */
static void test_destroy_started(void)
{
	static uint8_t buf[TMEM_PAGE_SIZE];
	struct tmem_store *s = store_new(16);
	struct tmem_migration *m;
	struct tmem_mig_record rec;
	struct tmem_oid id = oid_of(1);
	struct iovec v = page_iov(buf);
	uint64_t i;
	int pid = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);

	for (i = 0; i < 100; i++)
		REQUIRE(tmem_put(s, (uint32_t)pid, &id, i, &v, 1, NULL) == 0);
	REQUIRE(tmem_migration_start(s, 0, &m) == 0);
	for (i = 0; i < 50; i++)
		REQUIRE(tmem_migration_next(m, &rec, buf) == 1);
	for (i = 0; i < 100; i++)	/* logged */
		REQUIRE(tmem_flush_page(s, (uint32_t)pid, &id, i) == 1);
	tmem_store_destroy(s);
}

/*
 * Installs fill a destination's RAM as fast as records come, ahead of its
 * background writeback (here: none, the marks at 100 and 99 per cent).
 * The credits the source could grant must still be honoured once the
 * stream is in: the room check writes back what they need.
 */
static void test_room_after_installs(void)
{
	static uint8_t page[TMEM_PAGE_SIZE];
	struct tmem_image_config ic = {
		.size_bytes = 64ull << 20,
		.unlink_path = true,
	};
	char path[sizeof(image_path) + 4];
	struct tmem_image *dimg;
	struct tmem_config cfg;
	struct tmem_oid id = oid_of(2);
	struct iovec v = page_iov(page);
	struct tmem_stats st;
	struct pair pr;
	uint64_t i, credits, cap_full = 0, cap;
	int pid, err;

	pair_open(&pr, 4, 64);
	pid = tmem_new_pool(pr.src, TMEM_POOL_PERSISTENT, NULL);
	for (i = 0; i < 3000; i++) {
		page_make(page, i % 3 ? SHAPE_RANDOM : SHAPE_SIZED, i, 1500);
		REQUIRE(tmem_put(pr.src, (uint32_t)pid, &id, i, &v, 1,
				 NULL) == 0);
	}
	/* the source's writeback caught up: it grants all it can */
	while (store_writeback_unit(pr.src) == WB_FREED)
		;
	credits = tmem_persistent_capacity(pr.src);
	REQUIRE(credits > 0);

	tmem_store_destroy(pr.dst);
	tmem_config_init(&cfg);
	test_pick_allocator(&cfg);
	cfg.limit_bytes = 4ull << 20;
	cfg.max_pools = 8;
	cfg.wb_high_pct = 100;
	cfg.wb_low_pct = 99;
	REQUIRE(tmem_store_create(&cfg, &pr.dst) == 0);
	snprintf(path, sizeof(path), "%s.dst", image_path);
	ic.path = path;
	REQUIRE(tmem_image_open(&ic, &dimg, &err) == 0);
	REQUIRE(tmem_store_attach_image(pr.dst, dimg) == 0);
	CHECK_EQ(tmem_install_check_room(pr.dst, 0, credits, NULL), 0);

	REQUIRE(tmem_migration_start(pr.src, 0, &pr.m) == 0);
	send(&pr, 0);
	tmem_get_stats(pr.dst, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, 3000);
	cap_full = tmem_persistent_capacity(pr.dst);
	CHECK_EQ(tmem_install_check_room(pr.dst, 0, credits, &cap), 0);
	CHECK(cap >= credits);
	/* asking for more than an empty RAM can take still fails */
	CHECK_EQ(tmem_install_check_room(pr.dst, 0, UINT64_MAX, NULL),
		 -TMEM_E_FULL);
	CHECK_EQ(tmem_install_check_room(pr.dst, UINT64_MAX, 1, NULL),
		 -TMEM_E_FULL);
	printf("room: source grants %" PRIu64 " credits; destination right "
	       "after the installs %" PRIu64 ", after the check's writeback "
	       "%" PRIu64 "\n", credits, cap_full, cap);
	pair_close(&pr);
	tmem_image_close(dimg);
}

static void test_refusal(void)
{
	test_too_small();
	test_corrupt();
	test_garbage();
	test_destroy_started();
	test_room_after_installs();
}

/* ---- idle --------------------------------------------------------------- */

/* An idle store: one pass sends its pages as stored, nothing more. */
static void test_idle(void)
{
	static uint8_t page[TMEM_PAGE_SIZE];
	struct actor a = { .rng = 11 };
	struct tmem_mig_pending pend;
	struct tmem_oid id;
	struct tmem_stats st;
	struct iovec v = page_iov(page);
	struct timespec t0, t1;
	struct pair pr;
	uint64_t i, stored, timed;
	double sec;
	int pid;

	pair_open(&pr, 64, 0);
	pid = tmem_new_pool(pr.src, TMEM_POOL_PERSISTENT, NULL);
	for (i = 0; i < 8000; i++) {
		id = oid_of((unsigned int)rnd(&a, 64));
		page_from_seed(page, i + 1);
		REQUIRE(tmem_put(pr.src, (uint32_t)pid, &id, i, &v, 1,
				 NULL) == 0);
	}
	tmem_get_stats(pr.src, &st);
	stored = st.kind[TMEM_PERSISTENT].compressed_bytes +
		 st.kind[TMEM_PERSISTENT].raw_pages * TMEM_PAGE_SIZE;
	REQUIRE(tmem_migration_start(pr.src, 0, &pr.m) == 0);
	tmem_migration_pending(pr.m, &pend);
	CHECK_EQ(pend.records, st.kind[TMEM_PERSISTENT].stored_pages + 1);
	CHECK_EQ(pend.bytes, stored);
	/* the estimate counts down exactly while nothing changes */
	for (i = 0; i < 3000; i++) {
		send(&pr, 1);
		tmem_migration_pending(pr.m, &pend);
		CHECK_EQ(pend.records,
			 st.kind[TMEM_PERSISTENT].stored_pages + 1 - pr.records);
		CHECK_EQ(pend.bytes, stored - pr.bytes);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	timed = send(&pr, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sec = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK_EQ(pr.records, st.kind[TMEM_PERSISTENT].stored_pages + 1);
	CHECK_EQ(pr.bytes, stored);
	printf("idle: %" PRIu64 " pages, %" PRIu64 " bytes stored (compressed "
	       "and raw), %" PRIu64 " records and %" PRIu64 " data bytes "
	       "sent (%.3f of stored); %" PRIu64 " records sent and installed "
	       "in %.1f ms\n", st.kind[TMEM_PERSISTENT].stored_pages, stored,
	       pr.records, pr.bytes, (double)pr.bytes / (double)stored, timed,
	       sec * 1e3);
	pair_close(&pr);
}

/* ---- overflow ----------------------------------------------------------- */

static void page_fill(uint8_t *page, uint32_t w)
{
	unsigned int k;

	for (k = 0; k < TMEM_PAGE_SIZE; k += 4)
		memcpy(page + k, &w, 4);
}

/*
 * One object (one stripe) changes @changes pages after the full pass: its
 * log overflows, by its own size or by the budget of a store of @mib, and
 * the stripe is sent again after a FLUSH_BUCKET.
 */
static void overflow_run(uint64_t mib, unsigned int pages,
			 unsigned int changes)
{
	static uint8_t page[TMEM_PAGE_SIZE], a[TMEM_PAGE_SIZE],
		       b[TMEM_PAGE_SIZE];
	struct tmem_oid id = oid_of(3);
	struct iovec v = page_iov(page);
	struct pair pr;
	unsigned int i;
	int pid;

	pair_open(&pr, mib, 0);
	pid = tmem_new_pool(pr.src, TMEM_POOL_PERSISTENT, NULL);
	page_fill(page, 0);
	for (i = 0; i < pages; i++)
		REQUIRE(tmem_put(pr.src, (uint32_t)pid, &id, i, &v, 1,
				 NULL) == 0);
	REQUIRE(tmem_migration_start(pr.src, 0, &pr.m) == 0);
	send(&pr, 0);
	CHECK_EQ(pr.by_type[TMEM_MIG_FLUSH_BUCKET], 0);
	for (i = 0; i < changes; i++) {	/* same-filled: metadata only */
		page_fill(page, i + 1);
		REQUIRE(tmem_put(pr.src, (uint32_t)pid, &id, i * 7 % pages,
				 &v, 1, NULL) == 0);
	}
	tmem_flush_page(pr.src, (uint32_t)pid, &id, 1);
	pr.records = 0;
	send(&pr, 0);
	CHECK_EQ(pr.by_type[TMEM_MIG_FLUSH_BUCKET], 1);
	CHECK(pr.records >= pages - 1);
	for (i = 0; i < pages; i++) {
		v = page_iov(a);
		CHECK_EQ(tmem_get(pr.src, (uint32_t)pid, &id, i, &v, 1, 0),
			 i == 1 ? -TMEM_E_NOT_FOUND : 0);
		v = page_iov(b);
		CHECK_EQ(tmem_get(pr.dst, (uint32_t)pid, &id, i, &v, 1, 0),
			 i == 1 ? -TMEM_E_NOT_FOUND : 0);
		CHECK(i == 1 || !memcmp(a, b, TMEM_PAGE_SIZE));
	}
	printf("overflow: %u changes in a %" PRIu64 " MiB store: stripe "
	       "sent again, %" PRIu64 " records\n", changes, mib, pr.records);
	pair_close(&pr);
}

static void test_overflow(void)
{
	overflow_run(64, 12000, 5000);	/* MIG_LOG_MAX keys */
	overflow_run(2, 3000, 1000);	/* 1/32 of 2 MiB */
}

/* ---- churn ------------------------------------------------------------- */

/* An object id whose stripe is below (@below) or at least @stripe. */
static struct tmem_oid oid_in(uint32_t stripe, bool below)
{
	unsigned int o;

	for (o = 1000;; o++) {
		struct tmem_oid id = oid_of(o);
		uint32_t at = (uint32_t)(tmem_oid_hash(&id) % POOL_BUCKETS);

		if (below ? at < stripe : at >= stripe)
			return id;
	}
}

/*
 * A source and a destination of @mib each; the source holds @pages random
 * pages at indices 0.. of @oid, and its migration has started.
 */
static int churn_open(struct pair *pr, uint64_t mib,
		      const struct tmem_oid *oid, unsigned int pages)
{
	static uint8_t page[TMEM_PAGE_SIZE];
	struct iovec v = page_iov(page);
	unsigned int i;
	int pid;

	pair_open(pr, mib, 0);
	tmem_store_destroy(pr->dst);
	pr->dst = store_new(mib);
	pid = tmem_new_pool(pr->src, TMEM_POOL_PERSISTENT, NULL);
	for (i = 0; i < pages; i++) {
		page_make(page, SHAPE_RANDOM, i, 0);
		REQUIRE(tmem_put(pr->src, (uint32_t)pid, oid, i, &v, 1,
				 NULL) == 0);
	}
	REQUIRE(tmem_migration_start(pr->src, 0, &pr->m) == 0);
	return pid;
}

/*
 * A guest swapping during the migration moves its pages from one stripe
 * to another: after the full pass it takes back every page of object A
 * and puts as many into object B, whose stripe the next round reaches
 * first.  The source never holds more than before; a destination of its
 * size must take the stream.  Unless the removals go first, B's pages
 * arrive while A's are still there and the destination, holding both,
 * refuses a page (send() fails on any refused install).
 */
static void churn_run(uint64_t mib, unsigned int pages)
{
	static uint8_t page[TMEM_PAGE_SIZE], got[TMEM_PAGE_SIZE];
	struct tmem_oid a = oid_in(POOL_BUCKETS / 2, false);
	struct tmem_oid b = oid_in((uint32_t)(tmem_oid_hash(&a) %
					      POOL_BUCKETS), true);
	struct iovec v = page_iov(page), g = page_iov(got);
	struct tmem_stats st;
	struct pair pr;
	unsigned int i;
	int pid = churn_open(&pr, mib, &a, pages);

	send(&pr, 0);
	for (i = 0; i < pages; i++) {
		REQUIRE(tmem_get(pr.src, (uint32_t)pid, &a, i, &g, 1,
				 TMEM_GET_EXCLUSIVE) == 0);
		page_make(page, SHAPE_RANDOM, pages + i, 0);
		REQUIRE(tmem_put(pr.src, (uint32_t)pid, &b, i, &v, 1,
				 NULL) == 0);
	}
	pr.records = 0;
	memset(pr.by_type, 0, sizeof(pr.by_type));
	send(&pr, 0);
	tmem_get_stats(pr.dst, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, pages);
	for (i = 0; i < pages; i++) {
		CHECK_EQ(tmem_get(pr.dst, (uint32_t)pid, &a, i, &g, 1, 0),
			 -TMEM_E_NOT_FOUND);
		CHECK_EQ(tmem_get(pr.dst, (uint32_t)pid, &b, i, &g, 1, 0), 0);
		page_make(page, SHAPE_RANDOM, pages + i, 0);
		CHECK(!memcmp(got, page, TMEM_PAGE_SIZE));
	}
	printf("churn: %u pages moved from stripe %u to stripe %u after the "
	       "full pass; a %" PRIu64 " MiB destination took the %" PRIu64
	       " records (%" PRIu64 " page flushes, %" PRIu64 " stripe "
	       "flushes)\n", pages,
	       (unsigned int)(tmem_oid_hash(&a) % POOL_BUCKETS),
	       (unsigned int)(tmem_oid_hash(&b) % POOL_BUCKETS), mib,
	       pr.records, pr.by_type[TMEM_MIG_FLUSH_PAGE],
	       pr.by_type[TMEM_MIG_FLUSH_BUCKET]);
	CHECK(pr.by_type[TMEM_MIG_FLUSH_PAGE] +
	      pr.by_type[TMEM_MIG_FLUSH_BUCKET] > 0);
	pair_close(&pr);
}

/*
 * A swap device is one object, so one stripe, walked in key order: the
 * guest takes pages back behind the walk and puts new ones ahead of it.
 * The removals must reach the destination while the walk goes on.
 */
static void churn_walk(uint64_t mib, unsigned int pages)
{
	static uint8_t page[TMEM_PAGE_SIZE], got[TMEM_PAGE_SIZE];
	struct tmem_oid a = oid_of(7);
	struct iovec v = page_iov(page), g = page_iov(got);
	unsigned int lo = 0, hi = pages, i;
	struct tmem_stats st;
	struct pair pr;
	int pid = churn_open(&pr, mib, &a, pages);

	while (send(&pr, 4) && hi < 4 * pages) {
		for (i = 0; i < 4; i++, lo++, hi++) {
			REQUIRE(tmem_get(pr.src, (uint32_t)pid, &a, lo, &g, 1,
					 TMEM_GET_EXCLUSIVE) == 0);
			page_make(page, SHAPE_RANDOM, hi, 0);
			REQUIRE(tmem_put(pr.src, (uint32_t)pid, &a, hi, &v, 1,
					 NULL) == 0);
		}
	}
	send(&pr, 0);
	tmem_get_stats(pr.dst, &st);
	CHECK_EQ(st.kind[TMEM_PERSISTENT].stored_pages, pages);
	for (i = 0; i < hi; i++) {
		int r = tmem_get(pr.dst, (uint32_t)pid, &a, i, &g, 1, 0);

		CHECK_EQ(r, i < lo ? -TMEM_E_NOT_FOUND : 0);
		page_make(page, SHAPE_RANDOM, i, 0);
		CHECK(r || !memcmp(got, page, TMEM_PAGE_SIZE));
	}
	printf("churn: one object, %u pages moved ahead of its walk; a %"
	       PRIu64 " MiB destination took the %" PRIu64 " records (%"
	       PRIu64 " page flushes)\n", lo, mib, pr.records,
	       pr.by_type[TMEM_MIG_FLUSH_PAGE]);
	pair_close(&pr);
}

static void test_churn(void)
{
	churn_run(7, 1000);	/* the logs hold every key: page flushes */
	churn_run(8, 1200);	/* A's log overflows: the stripe goes again */
	churn_walk(7, 1000);	/* removals behind the walk */
}

/* ---- radix_next ---------------------------------------------------------- */

static struct radix_node *node_alloc(void *opaque)
{
	(void)opaque;
	return calloc(1, sizeof(struct radix_node));
}

static void node_free(void *opaque, struct radix_node *n)
{
	(void)opaque;
	free(n);
}

/* radix_next() against a sorted set, over trees of every height. */
static void test_radix(void)
{
	static struct radix_item items[512];
	const struct radix_alloc al = { node_alloc, node_free, NULL };
	struct actor a = { .rng = 99 };
	struct radix_root root = { 0 };
	struct radix_item *old, *it;
	unsigned int n = 0, i, j, round;

	for (round = 0; round < 64; round++) {
		unsigned int shift = (unsigned int)rnd(&a, 64);

		for (i = 0; i < 8 && n < 512; i++, n++) {
			items[n].index = page_rng(&a.rng) >> shift;
			if (radix_lookup(&root, items[n].index)) {
				n--;
				continue;
			}
			REQUIRE(radix_insert(&root, &items[n], &al, &old) == 0);
		}
		for (j = 0; j < 200; j++) {
			uint64_t at = rnd(&a, 4) ? page_rng(&a.rng) >> shift :
				      items[rnd(&a, n)].index + rnd(&a, 2);
			struct radix_item *want = NULL;

			for (i = 0; i < n; i++)
				if (items[i].index >= at &&
				    (!want || items[i].index < want->index))
					want = &items[i];
			it = radix_next(&root, at);
			CHECK(it == want);
		}
	}
	/* a full walk from 0 meets every item once, in order */
	for (i = 0, it = radix_next(&root, 0); it;
	     it = it->index == UINT64_MAX ? NULL : radix_next(&root,
							      it->index + 1))
		i++;
	CHECK_EQ(i, n);
	for (i = 0; i < n; i++)
		CHECK(radix_delete(&root, items[i].index, &al) == &items[i]);
	CHECK(radix_next(&root, 0) == NULL);
}

int main(int argc, char **argv)
{
	static const struct check_test tests[] = {
		{ "radix", test_radix }, { "refusal", test_refusal },
		{ "idle", test_idle }, { "overflow", test_overflow },
		{ "churn", test_churn }, { "model", test_model },
		{ "stale", test_stale }, { "handover", test_handover },
		{ "threads", test_threads },
	};
	const char *env = getenv("TMEM_MIGRATE_OPS");

	if (argc > 1 && !strcmp(argv[1], "threads"))
		env = getenv("TMEM_CONCURRENCY_OPS");
	if (env)
		ops = strtoull(env, NULL, 0);
	if (argc > 2)
		ops = strtoull(argv[2], NULL, 0);
	check_temp_path(image_path, sizeof(image_path), "tmem-mig-test");
	/* without an argument: all but the threaded test (the TSan suite's) */
	check_run(CHECK_TABLE(tests), argc, argv, test_threads);
	check_failures += atomic_load(&op_failures);
	printf("%lu checks, %lu failed\n", check_count, check_failures);
	return check_failures ? 1 : 0;
}
