// SPDX-License-Identifier: BSD-3-Clause
/*
 * test_zspage.c - the size-class allocator on its own: class geometry,
 * random allocation against a model, fragmentation and compaction, and
 * (argument "threads", under TSan) compaction racing owners that put, read
 * and free under their own locks as a store's buckets do.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "zspage.h"

#define STRIPES		16u

/* One owner: an object and what it must hold. */
struct obj {
	struct zbud_handle h;
	unsigned int size;
	uint32_t seed;
	bool live;
};

struct world {
	struct zbud z;
	struct zspool zs;
	struct obj *objs;
	unsigned int nr;
	pthread_mutex_t stripe[STRIPES];
};

static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static void fill(uint8_t *buf, unsigned int size, uint32_t seed)
{
	unsigned int i;

	for (i = 0; i < size; i++)
		buf[i] = (uint8_t)((seed >> (i & 7)) + i * 131u);
}

/* Sizes as LZ4 leaves pages: mostly 0.3-3 KiB, some small, some raw. */
static unsigned int pick_size(uint64_t *s)
{
	uint32_t r = rnd(s) % 100;

	if (r < 5)
		return 20 + rnd(s) % 200;
	if (r < 95)
		return 300 + rnd(s) % 2800;
	return TMEM_PAGE_SIZE;
}

static void world_init(struct world *w, unsigned int nr, uint64_t frames)
{
	unsigned int i;

	CHECK(!zbud_init(&w->z, frames));
	zs_init(&w->zs, &w->z);
	w->objs = calloc(nr, sizeof(*w->objs));
	CHECK(w->objs);
	w->nr = nr;
	for (i = 0; i < STRIPES; i++)
		pthread_mutex_init(&w->stripe[i], NULL);
}

static void world_fini(struct world *w)
{
	free(w->objs);
	zbud_fini(&w->z);
}

/* Caller holds the owner's stripe lock. */
static bool obj_put(struct world *w, unsigned int id, unsigned int size,
		    uint32_t seed)
{
	uint8_t buf[TMEM_PAGE_SIZE];
	struct obj *o = &w->objs[id];
	int ret;

	pthread_mutex_lock(&w->z.lock);
	ret = zs_alloc_locked(&w->zs, TMEM_PERSISTENT, size, id, &o->h);
	pthread_mutex_unlock(&w->z.lock);
	if (ret)
		return false;
	fill(buf, size, seed);
	zs_write(&w->zs, o->h, buf, size);
	o->size = size;
	o->seed = seed;
	o->live = true;
	return true;
}

static bool obj_ok(struct world *w, unsigned int id)
{
	uint8_t want[TMEM_PAGE_SIZE], got[TMEM_PAGE_SIZE];
	struct obj *o = &w->objs[id];

	fill(want, o->size, o->seed);
	zs_read(&w->zs, o->h, got, o->size);
	return !memcmp(want, got, o->size);
}

static void obj_free(struct world *w, unsigned int id)
{
	pthread_mutex_lock(&w->z.lock);
	zs_free_locked(&w->zs, w->objs[id].h);
	pthread_mutex_unlock(&w->z.lock);
	w->objs[id].live = false;
}

static pthread_mutex_t *owner_lock(void *arg, uint32_t owner)
{
	struct world *w = arg;

	return &w->stripe[owner % STRIPES];
}

static void owner_moved(void *arg, uint32_t owner, struct zbud_handle to)
{
	struct world *w = arg;

	w->objs[owner].h = to;
}

static const struct zs_mover mover = {
	.owner_lock_locked = owner_lock,
	.moved_locked = owner_moved,
};

static int check(struct world *w)
{
	int ret;

	pthread_mutex_lock(&w->z.lock);
	ret = zs_check_locked(&w->zs, TMEM_PERSISTENT);
	pthread_mutex_unlock(&w->z.lock);
	return ret;
}

/* Every live object reads back and is freed: no frame may be left. */
static void world_drain(struct world *w)
{
	unsigned int id;

	for (id = 0; id < w->nr; id++)
		if (w->objs[id].live) {
			CHECK(obj_ok(w, id));
			obj_free(w, id);
		}
	CHECK(w->z.frames_total == 0);
	world_fini(w);
}

static void test_geometry(void)
{
	struct world w;
	unsigned int c;

	world_init(&w, 1, 1024);
	for (c = 0; c < ZS_NR_CLASSES; c++) {
		const struct zs_geometry *cls = &w.zs.geom[c];
		unsigned int bytes = cls->frames * TMEM_PAGE_SIZE;

		CHECK(cls->objs >= 1 && cls->objs <= ZS_SPAN_OBJS_MAX);
		CHECK(cls->frames >= 1 && cls->frames <= ZS_SPAN_FRAMES_MAX);
		CHECK((unsigned int)cls->objs * cls->size <= bytes);
		/* a span wastes less than an object, unless the cap is hit */
		CHECK(cls->objs == ZS_SPAN_OBJS_MAX ||
		      bytes - cls->objs * cls->size < cls->size);
		CHECK(cls->size % ZS_ALIGN == 0);
	}
	/* merged classes pack as many objects into as many frames */
	for (c = 1; c <= TMEM_PAGE_SIZE - ZS_HDR_SIZE; c++) {
		unsigned int m = zs_class_of(c);
		unsigned int raw = c + ZS_HDR_SIZE < ZS_MIN_SIZE ? 0 :
			(c + ZS_HDR_SIZE - ZS_MIN_SIZE + ZS_ALIGN - 1) /
			ZS_ALIGN;

		CHECK(m < ZS_NR_CLASSES && m >= raw);
		CHECK(zs_object_bytes(c) >= c + ZS_HDR_SIZE);
		CHECK(w.zs.geom[m].objs == w.zs.geom[raw].objs &&
		      w.zs.geom[m].frames == w.zs.geom[raw].frames);
	}
	CHECK(zs_class_of(TMEM_PAGE_SIZE - ZS_HDR_SIZE) == ZS_NR_CLASSES - 1);
	CHECK(zs_class_of(TMEM_PAGE_SIZE) == ZS_HUGE);
	world_fini(&w);
}

/* Random puts, reads and frees against the model; everything freed at the end. */
static void test_model(void)
{
	struct world w;
	uint64_t s = 42;
	unsigned int i, id;

	world_init(&w, 4096, 16384);
	for (i = 0; i < 200000; i++) {
		id = rnd(&s) % w.nr;
		if (!w.objs[id].live) {
			CHECK(obj_put(&w, id, pick_size(&s), rnd(&s)));
		} else if (rnd(&s) % 3) {
			CHECK(obj_ok(&w, id));
		} else {
			obj_free(&w, id);
		}
		if (i % 20000 == 0)
			CHECK(!check(&w));
	}
	CHECK(!check(&w));
	for (id = 0; id < w.nr; id++)
		if (w.objs[id].live) {
			CHECK(obj_ok(&w, id));
			obj_free(&w, id);
		}
	CHECK(!check(&w));
	CHECK(w.zs.frames[TMEM_PERSISTENT] == 0);
	CHECK(w.zs.objs[TMEM_PERSISTENT] == 0);
	CHECK(w.z.frames_total == 0);
	world_fini(&w);
}

/* Reclaim: detach some owners, free others meanwhile, abort or finish. */
static void test_reclaim(void)
{
	struct world w;
	uint64_t s = 7;
	unsigned int id, slot, objs, seen = 0;
	uint32_t head, owner;

	world_init(&w, 2000, 8192);
	for (id = 0; id < w.nr; id++)
		CHECK(obj_put(&w, id, 300 + rnd(&s) % 700, id));
	pthread_mutex_lock(&w.z.lock);
	head = zs_reclaim_start_locked(&w.zs, TMEM_PERSISTENT);
	CHECK(head != ZBUD_NIL);
	objs = zs_span_objs(&w.zs, head);
	/* a free during reclaim only clears the owner */
	for (slot = 0; slot < objs; slot++) {
		owner = zs_owner_locked(&w.zs, head, slot);
		if (owner == ZBUD_NO_OWNER)
			continue;
		seen++;
		if (seen == 1) {
			zs_free_locked(&w.zs, w.objs[owner].h);
			w.objs[owner].live = false;
			CHECK(zs_owner_locked(&w.zs, head, slot) ==
			      ZBUD_NO_OWNER);
		}
	}
	CHECK(seen >= 2);
	zs_reclaim_abort_locked(&w.zs, head);
	pthread_mutex_unlock(&w.z.lock);
	CHECK(!check(&w));
	for (id = 0; id < w.nr; id++)
		if (w.objs[id].live)
			CHECK(obj_ok(&w, id));

	/* finish: every owner detached, the span's frames freed */
	pthread_mutex_lock(&w.z.lock);
	head = zs_reclaim_start_locked(&w.zs, TMEM_PERSISTENT);
	objs = zs_span_objs(&w.zs, head);
	for (slot = 0; slot < objs; slot++) {
		owner = zs_detach_locked(&w.zs, head, slot);
		if (owner != ZBUD_NO_OWNER)
			w.objs[owner].live = false;
	}
	zs_reclaim_finish_locked(&w.zs, head);
	pthread_mutex_unlock(&w.z.lock);
	CHECK(!check(&w));
	world_drain(&w);
}

static uint64_t live_bytes(const struct world *w)
{
	uint64_t bytes = 0;
	unsigned int id;

	for (id = 0; id < w->nr; id++)
		if (w->objs[id].live)
			bytes += w->objs[id].size;
	return bytes;
}

/*
 * Fill, flush a random half, compact: the frames left are within 10 % of
 * the live bytes (issue 16's target), and every object reads back.
 */
static void test_compaction(void)
{
	struct world w;
	uint64_t s = 1234, before, after, moved, ideal;
	unsigned int id;

	world_init(&w, 40000, 65536);
	for (id = 0; id < w.nr; id++) {
		unsigned int size = 300 + rnd(&s) % 2800;

		CHECK(obj_put(&w, id, size, rnd(&s)));
	}
	for (id = 0; id < w.nr; id++)
		if (rnd(&s) & 1)
			obj_free(&w, id);
	before = w.zs.frames[TMEM_PERSISTENT];
	moved = w.zs.moved;
	zs_compact(&w.zs, TMEM_PERSISTENT, &mover, &w);
	after = w.zs.frames[TMEM_PERSISTENT];
	ideal = (live_bytes(&w) + TMEM_PAGE_SIZE - 1) / TMEM_PAGE_SIZE;
	printf("compaction: %llu frames -> %llu (live bytes / 4096: %llu, "
	       "%.3f x; %llu objects moved)\n",
	       (unsigned long long)before, (unsigned long long)after,
	       (unsigned long long)ideal, (double)after / (double)ideal,
	       (unsigned long long)(w.zs.moved - moved));
	CHECK(after < before);
	CHECK(after * 100 <= ideal * 110);
	CHECK(!check(&w));
	world_drain(&w);
}

/* ---- threads ------------------------------------------------------------ */

struct worker {
	struct world *w;
	unsigned int first;	/* owns ids first, first + 2, ... */
	uint64_t seed;
	unsigned int bad;
	atomic_bool *stop;
};

static void *worker_run(void *arg)
{
	struct worker *k = arg;
	struct world *w = k->w;
	unsigned int i;

	for (i = 0; i < 60000; i++) {
		unsigned int id = k->first + 2 * (rnd(&k->seed) % (w->nr / 2));
		pthread_mutex_t *lock = &w->stripe[id % STRIPES];

		pthread_mutex_lock(lock);
		if (!w->objs[id].live)
			obj_put(w, id, pick_size(&k->seed), rnd(&k->seed));
		else if (rnd(&k->seed) % 2)
			k->bad += !obj_ok(w, id);
		else
			obj_free(w, id);
		pthread_mutex_unlock(lock);
	}
	return NULL;
}

static void *compactor_run(void *arg)
{
	struct worker *k = arg;

	while (!atomic_load(k->stop))
		zs_compact(&k->w->zs, TMEM_PERSISTENT, &mover, k->w);
	return NULL;
}

static void test_threads(void)
{
	struct worker k[3];
	pthread_t t[3];
	atomic_bool stop = false;
	struct world w;
	unsigned int i;

	world_init(&w, 4000, 16384);
	for (i = 0; i < 3; i++) {
		k[i] = (struct worker){ .w = &w, .first = i % 2,
					.seed = 99 + i, .stop = &stop };
	}
	pthread_create(&t[2], NULL, compactor_run, &k[2]);
	for (i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, worker_run, &k[i]);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop, true);
	pthread_join(t[2], NULL);
	CHECK(k[0].bad == 0 && k[1].bad == 0);
	printf("threads: %llu objects moved, %llu frames compacted\n",
	       (unsigned long long)w.zs.moved,
	       (unsigned long long)w.zs.compacted);
	CHECK(!check(&w));
	world_drain(&w);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "threads")) {
		test_threads();
	} else {
		test_geometry();
		test_model();
		test_reclaim();
		test_compaction();
	}
	return check_report("test_zspage");
}
