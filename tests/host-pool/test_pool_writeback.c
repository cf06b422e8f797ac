/*
 * Writeback to a swap image: a store with a tiny limit, so that most
 * persistent pages live in the image.
 *
 *   roundtrip   20000 pages through a 2 MiB store; every page reads back;
 *		 flushes free slots and give blocks back
 *   model	 random ops against a reference map (ephemeral and persistent
 *		 pools, replaces, exclusive gets, flushes) while the background
 *		 thread writes back; a persistent put may fail only when the
 *		 capacity said 0; never over the limit
 *   faults	 EIO on writes and reads, ENOSPC on allocation, injected at
 *		 random: no acknowledged page lost, a get returns the right
 *		 data or an error, never wrong data
 *   full	 the image's filesystem fills up (allocation capped): fewer
 *		 credits, nothing lost
 *   enospc	 writes into allocated blocks fail with ENOSPC (btrfs, thin
 *		 provisioning, NFS) while credits are outstanding: no
 *		 credited put refused, nothing lost
 *   trim	 the thread gives free image blocks back while no op runs:
 *		 the capacity never drops meanwhile
 *   idle	 nor while it writes frames back with no op running
 *   open	 the image file: a second open of a live image is refused (its
 *		 pages stay readable), so are a FIFO, a directory and a file
 *		 with another hard link; an existing file ends up mode 0600
 *   corrupt	 a slot overwritten behind the store's back: the get fails
 *		 with an error, the checksum error is counted
 *   threads	 four threads on their own keys with writeback running
 *		 (the TSan job runs this one)
 *   newest	 a store held at its watermark by written-back pages: writeback
 *		 takes frames while puts still copy into them (TSan too)
 *
 * Usage: test-pool-writeback [TEST] [OPS]
 * OPS (model, faults, threads) defaults to $TMEM_WB_OPS, else 300000.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check.h"
#include "pages.h"
#include "store_internal.h"
#include "test_config.h"

static char image_path[256];
static uint64_t ops = 300000;

/* ---- an I/O layer that fails on demand ----------------------------------- */

struct faults {
	pthread_mutex_t lock;
	uint64_t rng;
	unsigned int write_pct, read_pct, alloc_pct;
	int write_errno;	/* what a failed write returns (0: EIO) */
	unsigned int write_delay_us;	/* each write takes this long */
	uint64_t alloc_cap;	/* fallocate beyond this offset: ENOSPC */
	uint64_t writes_failed, reads_failed, allocs_failed;
};

static struct faults faults = { .lock = PTHREAD_MUTEX_INITIALIZER,
				.rng = 0x9e3779b97f4a7c15ull };

static bool fault(unsigned int pct, uint64_t *counter)
{
	bool hit;

	pthread_mutex_lock(&faults.lock);
	hit = pct && page_rng(&faults.rng) % 100 < pct;
	if (hit)
		(*counter)++;
	pthread_mutex_unlock(&faults.lock);
	return hit;
}

static long f_pwrite(void *o, int fd, const void *buf, size_t len,
		     uint64_t off)
{
	(void)o;
	if (faults.write_delay_us)
		usleep(faults.write_delay_us);
	if (fault(faults.write_pct, &faults.writes_failed))
		return -(faults.write_errno ? faults.write_errno : EIO);
	return pwrite(fd, buf, len, (off_t)off) < 0 ? -errno : (long)len;
}

static long f_pread(void *o, int fd, void *buf, size_t len, uint64_t off)
{
	(void)o;
	if (fault(faults.read_pct, &faults.reads_failed))
		return -EIO;
	return pread(fd, buf, len, (off_t)off) < 0 ? -errno : (long)len;
}

static int f_fallocate(void *o, int fd, int mode, uint64_t off, uint64_t len)
{
	(void)o;
	if (!(mode & FALLOC_FL_PUNCH_HOLE)) {
		bool capped;

		pthread_mutex_lock(&faults.lock);
		capped = faults.alloc_cap && off + len > faults.alloc_cap;
		if (capped)
			faults.allocs_failed++;
		pthread_mutex_unlock(&faults.lock);
		if (capped || fault(faults.alloc_pct, &faults.allocs_failed))
			return -ENOSPC;
	}
	return fallocate(fd, mode, (off_t)off, (off_t)len) ? -errno : 0;
}

static const struct tmem_image_io fault_io = {
	.pwrite = f_pwrite, .pread = f_pread, .fallocate = f_fallocate,
};

/*
 * The device's side of the credit contract: credits outstanding never
 * exceed the capacity they were granted against.
 */
struct credits {
	uint64_t outstanding, granted;
};

static struct credits model_credits;	/* of model_run(); rig_open() */

static void credits_grant(struct credits *c, struct tmem_store *s)
{
	uint64_t cap = tmem_persistent_capacity(s);

	if (cap > c->outstanding) {
		c->granted += cap - c->outstanding;
		c->outstanding = cap;
	}
}

/*
 * Should every write fail from now on, each credited put may take up to
 * store_put_worst(), past the limit: the overdraft (a quarter of the limit)
 * must take them all.  For a store without ephemeral pages, whose used
 * bytes then all stay.
 */
static void credits_check_overdraft(const struct credits *c,
				    struct tmem_store *s)
{
	struct tmem_stats st;
	uint64_t most;

	tmem_get_stats(s, &st);
	most = st.limit_bytes + st.limit_bytes / 4;
	if (st.used_bytes + c->outstanding * s->put_worst > most) {
		fprintf(stderr, "%" PRIu64 " credits outstanding, %" PRIu64
			" bytes used: beyond the overdraft\n", c->outstanding,
			st.used_bytes);
		CHECK(0);
	}
}

/* ---- setup ----------------------------------------------------------------- */

struct rig {
	struct tmem_store *s;
	struct tmem_image *img;
	int eph, per;
};

/* Watermarks and reserve of the next rig_open() (0: defaults), then reset. */
static unsigned int rig_wb_high, rig_wb_low;
static uint64_t rig_reserve;

static void rig_open(struct rig *r, uint64_t limit_mib, uint64_t image_mib,
		     bool unlink_path)
{
	struct tmem_image_config ic = {
		.path = image_path,
		.size_bytes = image_mib << 20,
		.reserve_bytes = rig_reserve,
		.unlink_path = unlink_path,
		.io = &fault_io,
	};
	struct tmem_config cfg;
	int err;

	test_config_init(&cfg);
	cfg.limit_bytes = limit_mib << 20;
	cfg.max_pools = 8;
	if (rig_wb_high) {
		cfg.wb_high_pct = rig_wb_high;
		cfg.wb_low_pct = rig_wb_low;
		rig_wb_high = rig_wb_low = 0;
	}
	rig_reserve = 0;
	memset(&model_credits, 0, sizeof(model_credits));
	REQUIRE(tmem_store_create(&cfg, &r->s) == 0);
	REQUIRE(tmem_image_open(&ic, &r->img, &err) == 0);
	REQUIRE(tmem_store_attach_image(r->s, r->img) == 0);
	r->eph = tmem_new_pool(r->s, 0, NULL);
	r->per = tmem_new_pool(r->s, TMEM_POOL_PERSISTENT, NULL);
	REQUIRE(r->eph >= 0 && r->per >= 0);
}

static void rig_close(struct rig *r)
{
	tmem_store_destroy(r->s);
	tmem_image_close(r->img);
	memset(&faults.write_pct, 0, sizeof(unsigned int) * 3);
	faults.write_errno = 0;
	faults.write_delay_us = 0;
	faults.alloc_cap = 0;
}

static struct tmem_oid oid_of(uint64_t o)
{
	struct tmem_oid id = { { o, ~o, 7 } };

	return id;
}

static int put_seed(struct rig *r, int pool, uint64_t o, uint64_t i,
		    uint64_t seed)
{
	static _Thread_local uint8_t page[TMEM_PAGE_SIZE];
	struct tmem_oid id = oid_of(o);
	struct iovec v;

	page_from_seed(page, seed);
	v = page_iov(page);
	return tmem_put(r->s, (uint32_t)pool, &id, i, &v, 1, NULL);
}

/* 0: right data; 1: miss; -1: error; CHECK-fails on wrong data. */
static int get_seed(struct rig *r, int pool, uint64_t o, uint64_t i,
		    uint64_t seed, bool excl)
{
	static _Thread_local uint8_t page[TMEM_PAGE_SIZE], out[TMEM_PAGE_SIZE];
	struct tmem_oid id = oid_of(o);
	struct iovec v = page_iov(out);
	int ret;

	ret = tmem_get(r->s, (uint32_t)pool, &id, i, &v, 1,
		       excl ? TMEM_GET_EXCLUSIVE : 0);
	if (ret == -TMEM_E_NOT_FOUND)
		return 1;
	if (ret == -TMEM_E_IO)
		return -1;
	CHECK_EQ(ret, 0);
	page_from_seed(page, seed);
	if (memcmp(page, out, TMEM_PAGE_SIZE)) {
		fprintf(stderr, "wrong data: obj %" PRIu64 " idx %" PRIu64
			" seed %" PRIu64 "\n", o, i, seed);
		CHECK(0);
	}
	return 0;
}

static void stats_print(const char *name, struct tmem_store *s)
{
	struct tmem_stats st;

	tmem_get_stats(s, &st);
	printf("%s: stored %" PRIu64 " persistent (%" PRIu64 " in image), "
	       "%" PRIu64 " frames written (%" PRIu64 " pages), %" PRIu64
	       " read back; slots %" PRIu64 "/%" PRIu64 ", %" PRIu64
	       " KiB allocated; errors w%" PRIu64 " r%" PRIu64 " c%" PRIu64
	       " a%" PRIu64 "; overdraft %" PRIu64 "; used %" PRIu64 "/%" PRIu64
	       "; compaction moved %" PRIu64 " pages, freed %" PRIu64
	       " frames\n", name, st.kind[1].stored_pages,
	       st.image.pages_in_image,
	       st.image.frames_written, st.image.pages_written,
	       st.image.pages_read, st.image.slots_used, st.image.slots_total,
	       st.image.bytes_allocated >> 10, st.image.write_errors,
	       st.image.read_errors, st.image.checksum_errors,
	       st.image.reserve_errors, st.image.overdraft_puts,
	       st.used_bytes, st.limit_bytes, st.compact_moved,
	       st.compact_frames);
}

/* ---- roundtrip -------------------------------------------------------------- */

#define RT_PAGES 20000u

static void test_roundtrip(void)
{
	struct tmem_stats st;
	struct rig r;
	uint64_t i, refused = 0, cap;

	rig_open(&r, 2, 128, true);
	for (i = 0; i < RT_PAGES; i++) {
		cap = tmem_persistent_capacity(r.s);
		CHECK(cap > 0);
		if (put_seed(&r, r.per, i / 100, i % 100, i + 1))
			refused++;
	}
	CHECK_EQ(refused, 0);
	tmem_get_stats(r.s, &st);
	CHECK(st.used_bytes <= st.limit_bytes);
	CHECK(st.image.pages_in_image > RT_PAGES / 2);
	CHECK(st.image.frames_written > 0);
	stats_print("roundtrip, stored", r.s);
	for (i = 0; i < RT_PAGES; i++)
		CHECK_EQ(get_seed(&r, r.per, i / 100, i % 100, i + 1, false),
			 0);
	/* exclusive gets of a quarter, flushes of the rest */
	for (i = 0; i < RT_PAGES; i++) {
		struct tmem_oid id = oid_of(i / 100);

		if (i % 4 == 0)
			CHECK_EQ(get_seed(&r, r.per, i / 100, i % 100, i + 1,
					  true), 0);
		else
			CHECK_EQ(tmem_flush_page(r.s, (uint32_t)r.per, &id,
						 i % 100), 1);
	}
	/* the writeback thread gives excess blocks back within a few polls */
	for (i = 0; i < 500; i++) {
		tmem_get_stats(r.s, &st);
		if (st.image.bytes_allocated <= 2 * st.limit_bytes)
			break;
		usleep(10000);
	}
	stats_print("roundtrip, emptied", r.s);
	CHECK_EQ(st.kind[1].stored_pages, 0);
	CHECK_EQ(st.image.pages_in_image, 0);
	CHECK_EQ(st.image.slots_used, 0);
	CHECK(st.image.pages_read >= RT_PAGES / 2);
	/* blocks beyond twice the reserve (as much as the limit) went back */
	CHECK(st.image.bytes_allocated <= 2 * st.limit_bytes);
	rig_close(&r);
}

/* ---- model ---------------------------------------------------------------- */

#define M_OBJS	64u
#define M_IDX	256u
#define M_KEYS	(2 * M_OBJS * M_IDX)

static uint64_t model[M_KEYS];
static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(uint64_t n)
{
	return page_rng(&rng) % n;
}

static uint64_t seq = 1;

/*
 * With @faulty, gets may fail with an I/O error.  Persistent puts follow
 * the device's credit contract: one with a credit must succeed.
 */
static void model_run(struct rig *r, uint64_t n, bool faulty)
{
	uint64_t k, io_errors = 0;

	for (k = 0; k < n && check_failures < 20; k++) {
		unsigned int per = (unsigned int)rnd(4) != 0;
		int pool = per ? r->per : r->eph;
		uint64_t o = rnd(M_OBJS), i = rnd(M_IDX), op = rnd(100);
		uint64_t *m = &model[(per * M_OBJS + o) * M_IDX + i];
		struct tmem_oid id = oid_of(o);

		if (op < 50) {
			bool credited = false;
			int ret;

			if (per) {
				credits_grant(&model_credits, r->s);
				credited = model_credits.outstanding > 0;
				model_credits.outstanding -= credited;
			}
			ret = put_seed(r, pool, o, i, seq);
			if (!ret) {
				*m = seq;
			} else {
				*m = 0;
				if (per) {
					CHECK_EQ(ret, -TMEM_E_FULL);
					CHECK(!credited);
				}
			}
			seq++;
		} else if (op < 85) {
			bool excl = rnd(3) == 0;
			int ret = *m ? get_seed(r, pool, o, i, *m, excl) : 1;

			if (!*m) {
				struct iovec v;
				uint8_t out[TMEM_PAGE_SIZE];

				v = page_iov(out);
				CHECK_EQ(tmem_get(r->s, (uint32_t)pool, &id, i,
						  &v, 1, 0), -TMEM_E_NOT_FOUND);
			} else if (ret == 1) {
				CHECK(!per);	/* only ephemeral pages go */
				*m = 0;
			} else if (ret < 0) {
				CHECK(faulty);
				io_errors++;
			} else if (excl) {
				*m = 0;
			}
		} else if (op < 95 || rnd(10)) {
			int ret = tmem_flush_page(r->s, (uint32_t)pool, &id, i);

			if (per)
				CHECK_EQ(ret, *m != 0);
			*m = 0;
		} else {
			CHECK_EQ(tmem_flush_object(r->s, (uint32_t)pool, &id,
						   NULL), 0);
			memset(&model[(per * M_OBJS + o) * M_IDX], 0,
			       M_IDX * sizeof(uint64_t));
		}
		if (!faulty && k % 20000 == 0) {
			struct tmem_stats st;

			tmem_get_stats(r->s, &st);
			CHECK(st.used_bytes <= st.limit_bytes);
		}
	}
	if (faulty)
		printf("model: %" PRIu64 " gets failed with an I/O error\n",
		       io_errors);
}

/* Go on with the same model (faults: phase two). */
static void model_run_more(struct rig *r, uint64_t n)
{
	model_run(r, n, true);
}

/* Every persistent page the model holds reads back identical. */
static void model_verify(struct rig *r)
{
	uint64_t o, i, n = 0;

	for (o = 0; o < M_OBJS; o++)
		for (i = 0; i < M_IDX; i++) {
			uint64_t seed = model[(M_OBJS + o) * M_IDX + i];

			if (!seed)
				continue;
			CHECK_EQ(get_seed(r, r->per, o, i, seed, false), 0);
			n++;
		}
	printf("verified %" PRIu64 " persistent pages\n", n);
}

static void test_model(void)
{
	struct tmem_stats st;
	struct rig r;

	rig_open(&r, 2, 64, true);
	memset(model, 0, sizeof(model));
	model_run(&r, ops, false);
	model_verify(&r);
	stats_print("model", r.s);
	tmem_get_stats(r.s, &st);
	CHECK(st.image.frames_written > 0);
	CHECK(st.image.pages_read > 0);
	CHECK(st.kind[0].evicted_pages > 0);
	CHECK_EQ(st.image.overdraft_puts, 0);
	rig_close(&r);
}

/* ---- faults ------------------------------------------------------------- */

static void test_faults(void)
{
	struct tmem_stats st;
	struct rig r;

	rig_open(&r, 2, 64, true);
	memset(model, 0, sizeof(model));
	faults.write_pct = 20;
	faults.read_pct = 5;
	faults.alloc_pct = 20;
	model_run(&r, ops / 2, true);
	/* the disk is gone: puts with credits go past the limit, not lost */
	faults.write_pct = 100;
	model_run_more(&r, ops / 10);
	faults.write_pct = faults.read_pct = faults.alloc_pct = 0;
	model_verify(&r);
	stats_print("faults", r.s);
	printf("faults: injected %" PRIu64 " write, %" PRIu64 " read, %"
	       PRIu64 " allocation errors\n", faults.writes_failed,
	       faults.reads_failed, faults.allocs_failed);
	tmem_get_stats(r.s, &st);
	CHECK(faults.writes_failed > 0 && faults.reads_failed > 0);
	CHECK(st.image.write_errors > 0);
	CHECK(st.image.read_errors > 0);
	CHECK(st.image.frames_written > 0);
	CHECK(st.image.overdraft_puts > 0);
	rig_close(&r);
}

/* ---- full filesystem ------------------------------------------------------ */

static void test_full(void)
{
	uint64_t i, stored = 0, refused_with_credit = 0, full = 0;
	struct tmem_stats st;
	struct rig r;

	/* 64 MiB image on a "filesystem" with room for 6 MiB */
	rig_open(&r, 2, 64, true);
	faults.alloc_cap = 6u << 20;
	for (i = 0; i < 30000; i++) {
		uint64_t cap = tmem_persistent_capacity(r.s);
		int ret = put_seed(&r, r.per, i / 100, i % 100, i + 1);

		if (!ret) {
			stored = i + 1;
			continue;
		}
		CHECK_EQ(ret, -TMEM_E_FULL);
		full++;
		if (cap)
			refused_with_credit++;
		break;
	}
	CHECK_EQ(refused_with_credit, 0);
	CHECK(full == 1);
	for (i = 0; i < stored; i++)
		CHECK_EQ(get_seed(&r, r.per, i / 100, i % 100, i + 1, false),
			 0);
	stats_print("full", r.s);
	tmem_get_stats(r.s, &st);
	CHECK(st.image.reserve_errors > 0);
	CHECK(st.image.bytes_allocated <= 6u << 20);
	CHECK(st.used_bytes <= st.limit_bytes);
	printf("full: %" PRIu64 " pages stored before the filesystem filled\n",
	       stored);
	rig_close(&r);
}

/* ---- ENOSPC from writes into allocated blocks -------------------------- */

static void test_enospc(void)
{
	uint64_t i, stored = 0, refused = 0;
	struct credits c = { 0, 0 };
	struct tmem_stats st;
	struct rig r;

	/*
	 * The thread writes back only at the limit, so puts find the store
	 * full and write back themselves: the outstanding credits are then
	 * mostly counted against image slots.
	 */
	rig_wb_high = 100;
	rig_wb_low = 99;
	rig_open(&r, 2, 64, true);
	for (i = 0; i < 2000; i++) {
		credits_grant(&c, r.s);
		credits_check_overdraft(&c, r.s);
		REQUIRE(c.outstanding > 0);
		c.outstanding--;
		CHECK_EQ(put_seed(&r, r.per, i / 100, i % 100, i + 1), 0);
	}
	tmem_get_stats(r.s, &st);
	CHECK(st.image.pages_in_image > 0);
	/* The filesystem now refuses writes into its allocated blocks. */
	faults.write_errno = ENOSPC;
	faults.write_pct = 100;
	for (stored = i; i < 40000; i++) {
		credits_grant(&c, r.s);
		credits_check_overdraft(&c, r.s);
		if (!c.outstanding)
			break;
		c.outstanding--;
		if (put_seed(&r, r.per, i / 100, i % 100, i + 1)) {
			refused++;
			break;
		}
		stored = i + 1;
	}
	CHECK_EQ(refused, 0);
	CHECK(i < 40000);	/* credits ran out once writeback failed */
	tmem_get_stats(r.s, &st);
	stats_print("enospc", r.s);
	CHECK(faults.writes_failed > 0);
	CHECK(st.image.write_errors > 0);
	CHECK(st.image.overdraft_puts > 0);
	/* writes work again: every page stored reads back */
	faults.write_pct = 0;
	for (i = 0; i < stored; i++)
		CHECK_EQ(get_seed(&r, r.per, i / 100, i % 100, i + 1, false),
			 0);
	printf("enospc: %" PRIu64 " credits granted, %" PRIu64
	       " pages stored, %" PRIu64 " credited puts refused\n", c.granted,
	       stored, refused);
	rig_close(&r);
}

/* ---- trimming ---------------------------------------------------------- */

/* Capacity now; CHECK-fails if it is below @prev although no put ran. */
static uint64_t capacity_not_below(struct rig *r, uint64_t prev)
{
	uint64_t cap = tmem_persistent_capacity(r->s);

	if (cap < prev) {
		fprintf(stderr, "capacity fell from %" PRIu64 " to %" PRIu64
			" without a put\n", prev, cap);
		CHECK(0);
	}
	return cap;
}

static void test_trim(void)
{
	uint64_t i, cap, peak_alloc = 0;
	struct tmem_stats st;
	struct rig r;

	/*
	 * RAM full of persistent frames (puts write back themselves), a
	 * reserve of 64 slots: the capacity then hangs on the image slots.
	 */
	rig_wb_high = 100;
	rig_wb_low = 99;
	rig_reserve = 64 * TMEM_PAGE_SIZE;
	rig_open(&r, 2, 64, true);
	for (i = 0; i < 20000; i++)
		REQUIRE(put_seed(&r, r.per, i / 100, i % 100, i + 1) == 0);
	/*
	 * Flush the oldest pages, which are in the image: thousands of free
	 * allocated slots that the thread punches out down to the reserve,
	 * while the flushes (which never lower the capacity) go on.
	 */
	cap = tmem_persistent_capacity(r.s);
	for (i = 0; i < 15000; i++) {
		struct tmem_oid id = oid_of(i / 100);

		CHECK_EQ(tmem_flush_page(r.s, (uint32_t)r.per, &id, i % 100),
			 1);
		cap = capacity_not_below(&r, cap);
		tmem_get_stats(r.s, &st);
		if (st.image.bytes_allocated > peak_alloc)
			peak_alloc = st.image.bytes_allocated;
	}
	/* no op at all now, while the thread finishes trimming */
	for (i = 0; i < 20000; i++) {
		cap = capacity_not_below(&r, cap);
		tmem_get_stats(r.s, &st);
		if (st.image.bytes_allocated <=
		    (st.image.slots_used + 64) * TMEM_PAGE_SIZE && i > 1000)
			break;
		usleep(100);
	}
	stats_print("trim", r.s);
	printf("trim: %" PRIu64 " KiB allocated at most, capacity %" PRIu64
	       "\n", peak_alloc >> 10, cap);
	/* the thread did trim: far more was allocated than is now */
	CHECK(peak_alloc > st.image.bytes_allocated + (1u << 20));
	CHECK(cap > 0);
	rig_close(&r);
}

/*
 * No op either while the thread writes frames back from the high mark to
 * the low one: a slot taken for a write is matched by the frame it frees.
 */
static void test_idle(void)
{
	uint64_t round, i, key = 0, cap, samples = 0;
	struct tmem_stats st;
	struct rig r;

	rig_reserve = 64 * TMEM_PAGE_SIZE;
	rig_open(&r, 2, 64, true);
	/* slow writes, so that the capacity is read while one is in flight */
	faults.write_delay_us = 1000;
	for (round = 0; round < 5; round++) {
		do {
			REQUIRE(put_seed(&r, r.per, key / 100, key % 100,
					 key + 1) == 0);
			key++;
			tmem_get_stats(r.s, &st);
		} while (st.used_bytes < st.limit_bytes / 100 * 90);
		cap = tmem_persistent_capacity(r.s);
		for (i = 0; i < 1000000; i++) {
			cap = capacity_not_below(&r, cap);
			samples++;
			if (i % 64 == 0) {
				tmem_get_stats(r.s, &st);
				if (st.used_bytes <= st.limit_bytes / 100 * 76)
					break;
			}
		}
	}
	stats_print("idle", r.s);
	printf("idle: %" PRIu64 " samples of the capacity\n", samples);
	tmem_get_stats(r.s, &st);
	CHECK(st.image.frames_written > 5 * 50);
	rig_close(&r);
}

/* ---- opening the image ------------------------------------------------- */

static int image_try(const char *path, char *why, size_t len, int *err)
{
	struct tmem_image_config ic = {
		.path = path, .size_bytes = 4u << 20,
		.why = why, .why_len = len,
	};
	struct tmem_image *img = NULL;
	int ret;

	if (why)
		why[0] = 0;
	ret = tmem_image_open(&ic, &img, err);
	tmem_image_close(img);
	return ret;
}

/* Open @path, which must be refused with a message naming it and @what. */
static void image_refused(const char *path, const char *what)
{
	char why[512];
	int err;

	CHECK_EQ(image_try(path, why, sizeof(why), &err), -TMEM_E_IMAGE);
	if (!strstr(why, path) || !strstr(why, what)) {
		fprintf(stderr, "%s: '%s' should say '%s'\n", path, why, what);
		CHECK(0);
	}
}

static void test_open(void)
{
	char other[300], why[512];
	struct tmem_stats st;
	struct stat sb;
	struct rig r;
	uint64_t i;
	int fd, err;

	/* an existing world-readable file is taken over and made private */
	fd = open(image_path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && fchmod(fd, 0644) == 0);
	close(fd);
	rig_open(&r, 2, 64, false);
	REQUIRE(stat(image_path, &sb) == 0);
	CHECK_EQ(sb.st_mode & 07777, 0600);
	for (i = 0; i < 3000; i++)
		CHECK_EQ(put_seed(&r, r.per, 1, i, i + 1), 0);
	tmem_get_stats(r.s, &st);
	CHECK(st.image.pages_in_image > 0);

	/* a second image on the live one's path truncates nothing */
	CHECK_EQ(image_try(image_path, why, sizeof(why), &err), -TMEM_E_IMAGE);
	CHECK(err == EAGAIN || err == EACCES);
	printf("open: second open refused: %s\n", why);
	image_refused(image_path, "lock");
	for (i = 0; i < 3000; i++)
		CHECK_EQ(get_seed(&r, r.per, 1, i, i + 1, false), 0);
	rig_close(&r);
	/* the lock went with the image */
	CHECK_EQ(image_try(image_path, NULL, 0, &err), 0);

	/* another name would keep guest memory readable */
	snprintf(other, sizeof(other), "%s.link", image_path);
	unlink(other);
	REQUIRE(link(image_path, other) == 0);
	image_refused(image_path, "hard links");
	image_refused(other, "hard links");
	REQUIRE(unlink(other) == 0);
	CHECK_EQ(image_try(image_path, NULL, 0, &err), 0);
	REQUIRE(unlink(image_path) == 0);

	/* not a regular file */
	REQUIRE(mkfifo(other, 0600) == 0);
	image_refused(other, "not a regular file");
	REQUIRE(unlink(other) == 0);
	REQUIRE(mkdir(other, 0700) == 0);
	image_refused(other, "Is a directory");
	REQUIRE(rmdir(other) == 0);
}

/* ---- corruption ------------------------------------------------------------ */

static void test_corrupt(void)
{
	uint8_t junk[TMEM_PAGE_SIZE];
	uint64_t i, bad = 0;
	struct rig r;
	int fd;

	rig_open(&r, 2, 64, false);
	for (i = 0; i < 4000; i++)
		CHECK_EQ(put_seed(&r, r.per, 1, i, i + 1), 0);
	/* slot 0 was the first written: scribble over it */
	fd = open(image_path, O_WRONLY);
	REQUIRE(fd >= 0);
	memset(junk, 0x5a, sizeof(junk));
	REQUIRE(pwrite(fd, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk));
	close(fd);
	for (i = 0; i < 4000; i++) {
		int ret = get_seed(&r, r.per, 1, i, i + 1, false);

		CHECK(ret == 0 || ret == -1);
		bad += ret == -1;
	}
	stats_print("corrupt", r.s);
	CHECK(bad >= 1 && bad <= 2);
	{
		struct tmem_stats st;

		tmem_get_stats(r.s, &st);
		CHECK_EQ(st.image.checksum_errors, bad);
	}
	rig_close(&r);
	unlink(image_path);
}

/* ---- threads ------------------------------------------------------------ */

struct worker {
	struct rig *r;
	unsigned int id;
	uint64_t rng;
	uint64_t failures;
	uint64_t model[M_OBJS / 4][M_IDX];
};

/* No CHECK in threads (its counters are not atomic): 1 on any mismatch. */
static unsigned int get_page(struct rig *r, uint64_t o, uint64_t i,
			     uint64_t seed, bool excl)
{
	static _Thread_local uint8_t page[TMEM_PAGE_SIZE], out[TMEM_PAGE_SIZE];
	struct tmem_oid id = oid_of(o);
	struct iovec v = page_iov(out);

	if (tmem_get(r->s, (uint32_t)r->per, &id, i, &v, 1,
		     excl ? TMEM_GET_EXCLUSIVE : 0))
		return 1;
	page_from_seed(page, seed);
	return memcmp(page, out, TMEM_PAGE_SIZE) != 0;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	uint64_t k, seq = (uint64_t)w->id << 40 | 1;

	for (k = 0; k < ops / 4; k++) {
		uint64_t o = page_rng(&w->rng) % (M_OBJS / 4);
		uint64_t i = page_rng(&w->rng) % M_IDX, op;
		uint64_t *m = &w->model[o][i];
		uint64_t obj = o * 4 + w->id;
		struct tmem_oid id = oid_of(obj);

		op = page_rng(&w->rng) % 100;
		if (op < 50) {
			uint64_t cap = tmem_persistent_capacity(w->r->s);
			int ret = put_seed(w->r, w->r->per, obj, i, seq);

			w->failures += ret && cap > 8;
			*m = ret ? 0 : seq;
			seq++;
		} else if (op < 85) {
			bool excl = page_rng(&w->rng) % 3 == 0;

			if (*m) {
				w->failures += get_page(w->r, obj, i, *m,
							excl);
				if (excl)
					*m = 0;
			}
		} else {
			w->failures += tmem_flush_page(w->r->s,
				(uint32_t)w->r->per, &id, i) != (*m != 0);
			*m = 0;
		}
	}
	return NULL;
}

static void test_threads(void)
{
	static struct worker w[4];
	pthread_t t[4];
	struct rig r;
	unsigned int i;

	rig_open(&r, 2, 64, true);
	for (i = 0; i < 4; i++) {
		w[i].r = &r;
		w[i].id = i;
		w[i].rng = 0x1234567ull * (i + 1) | 1;
		REQUIRE(pthread_create(&t[i], NULL, worker_run, &w[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(w[i].failures, 0);
	}
	stats_print("threads", r.s);
	rig_close(&r);
}

/*
 * newest: the store is kept above its high watermark by the entries of
 * written-back pages, so the persistent LRU holds only the few frames the
 * workers are filling and writeback takes frames whose buddies are still
 * being copied in.  Every page must read back (TSan: no race on the copy).
 */
struct churner {
	struct rig *r;
	unsigned int id;
	uint64_t failures, stored;
};

static void *churn_run(void *arg)
{
	struct churner *c = arg;
	uint64_t obj = 1000 + c->id, k;

	for (k = 0; k < ops / 8; k++) {
		uint64_t seed = (uint64_t)c->id << 40 | (k + 1);
		struct tmem_oid id = oid_of(obj);

		if (put_seed(c->r, c->r->per, obj, k, seed))
			continue;
		c->stored++;
		c->failures += get_page(c->r, obj, k, seed, k % 2 == 0);
		if (k % 2)
			tmem_flush_page(c->r->s, (uint32_t)c->r->per, &id, k);
	}
	return NULL;
}

static void test_newest(void)
{
	static struct churner c[2];
	struct tmem_stats st;
	pthread_t t[2];
	struct rig r;
	uint64_t i;

	rig_open(&r, 1, 256, true);
	for (i = 0; i < 200000; i++) {
		tmem_get_stats(r.s, &st);
		if (st.meta_bytes >= st.limit_bytes / 100 * 91)
			break;
		put_seed(&r, r.per, 1, i, i + 1);
	}
	CHECK(st.meta_bytes >= st.limit_bytes / 100 * 91);
	for (i = 0; i < 2; i++) {
		c[i] = (struct churner){ .r = &r, .id = (unsigned int)i };
		REQUIRE(pthread_create(&t[i], NULL, churn_run, &c[i]) == 0);
	}
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(c[i].failures, 0);
		CHECK(c[i].stored > 0);
	}
	stats_print("newest", r.s);
	rig_close(&r);
}

int main(int argc, char **argv)
{
	static const struct check_test tests[] = {
		{ "roundtrip", test_roundtrip }, { "model", test_model },
		{ "faults", test_faults }, { "full", test_full },
		{ "enospc", test_enospc }, { "trim", test_trim },
		{ "idle", test_idle },
		{ "open", test_open },
		{ "corrupt", test_corrupt }, { "threads", test_threads },
		{ "newest", test_newest },
	};
	const char *env = getenv("TMEM_WB_OPS");

	if (argc > 1 && !strcmp(argv[1], "--help")) {
		printf("Usage: %s [roundtrip|model|faults|full|enospc|trim|"
		       "idle|open|corrupt|threads|newest] [OPS]\n", argv[0]);
		return 0;
	}
	if (argc > 2)
		ops = strtoull(argv[2], NULL, 0);
	else if (env)
		ops = strtoull(env, NULL, 0);
	check_temp_path(image_path, sizeof(image_path), "tmem-wb-test");
	check_run(CHECK_TABLE(tests), argc, argv, NULL);
	return check_report("test_pool_writeback");
}
