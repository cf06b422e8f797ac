// SPDX-License-Identifier: BSD-3-Clause
/*
 * tmem-pool-bench - measure the host pool on real pages against the limits
 * set by its raw compressor and memcpy on the same pages, in the same run,
 * with both allocators against byte-perfect packing; or compare compressors
 * (LZ4, zstd at some levels) on the same pages.
 *
 * The corpus is file contents (by default under /usr/lib/x86_64-linux-gnu
 * and /usr/share) read in sorted path order and cut into 4 KiB pages, a
 * file's last page zero-padded as in the page cache.  Zero- and
 * same-filled pages are counted apart and left out of the throughput and
 * compression figures so they cannot flatter them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compress.h"
#include "pageio.h"
#include "tmem.h"

#define PAGE	TMEM_PAGE_SIZE
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* Frames the pool faults in at once (ZBUD_POPULATE_AHEAD). */
#define FRESH_BATCH	64

struct corpus {
	uint8_t *pages;		/* non-filled pages, PAGE bytes each */
	uint32_t *file;		/* object (file number) of each page */
	uint32_t *index;	/* page index within its file */
	size_t nr, cap, max;
	size_t zero, same;	/* filled pages, not in @pages */
	size_t files;
};

#define MAX_COMPRESSORS	8

/**
 * struct bench_comp - a compressor to measure
 * @comp: which
 * @level: LZ4 acceleration or zstd level
 * @name: as given, e.g. "zstd:3"
 */
struct bench_comp {
	enum tmem_compressor comp;
	int level;
	char name[16];
};

static struct {
	const char *paths[16];
	int nr_paths;
	size_t max_pages;
	int repeat;
	int accel, level;
	struct bench_comp comps[MAX_COMPRESSORS];
	int nr_comps;
	int allocator;		/* enum tmem_allocator, or -1: both */
} opt = { .max_pages = 65536, .repeat = 5, .accel = TMEM_DEFAULT_LZ4_ACCEL,
	  .allocator = -1 };

static const char *const allocator_names[] = {
	[TMEM_ALLOC_ZBUD] = "zbud",
	[TMEM_ALLOC_ZSMALLOC] = "zsmalloc",
};
#define NR_ALLOCATORS	2

/* The allocator of the stores being measured. */
static enum tmem_allocator bench_alloc;

/* The settings of the compressor being measured: raw limits and pool. */
static struct tmem_config bench_cfg;

/* This thread's CPU time: what a compressor costs on a host that is busy. */
static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void corpus_add(struct corpus *c, const uint8_t *page, uint32_t idx)
{
	uint32_t word;

	if (pageio_same_filled(page, &word)) {
		if (!word)
			c->zero++;
		else
			c->same++;
		return;
	}
	if (c->nr == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4096;
		c->pages = realloc(c->pages, c->cap * PAGE);
		c->file = realloc(c->file, c->cap * sizeof(*c->file));
		c->index = realloc(c->index, c->cap * sizeof(*c->index));
		if (!c->pages || !c->file || !c->index) {
			fprintf(stderr, "tmem-pool-bench: out of memory\n");
			exit(1);
		}
	}
	memcpy(c->pages + c->nr * PAGE, page, PAGE);
	c->file[c->nr] = (uint32_t)c->files;
	c->index[c->nr] = idx;
	c->nr++;
}

static bool corpus_full(const struct corpus *c)
{
	return c->nr + c->zero + c->same >= c->max;
}

static void load_file(struct corpus *c, const char *path)
{
	uint8_t page[PAGE];
	uint32_t idx = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return;
	while (!corpus_full(c)) {
		size_t got = 0;

		while (got < PAGE) {
			n = read(fd, page + got, PAGE - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (!got)
			break;
		memset(page + got, 0, PAGE - got);
		corpus_add(c, page, idx++);
		if (got < PAGE)
			break;
	}
	c->files++;
	close(fd);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_path(struct corpus *c, const char *path)
{
	struct dirent *de;
	struct stat st;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	DIR *d;

	if (corpus_full(c) || lstat(path, &st))
		return;
	if (S_ISREG(st.st_mode)) {
		load_file(c, path);
		return;
	}
	if (!S_ISDIR(st.st_mode))
		return;
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
		}
		if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0)
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		load_path(c, names[i]);
		free(names[i]);
	}
	free(names);
}

/* ---- limits: the raw compressor and memcpy on the same pages ------------ */

struct raw_result {
	double compress_s, compress2_s, decompress_s, memcpy_s;
	double compress_cpu, decompress_cpu;	/* CPU seconds, same passes */
	double fresh_s, memset_s;	/* per 4 KiB page */
	uint64_t compressed_bytes;	/* compressible pages only */
	size_t compressible;
	uint16_t *sizes;		/* per page, 0 = incompressible */
};

struct raw_part {
	const struct corpus *c;
	unsigned int part;
};

/*
 * The raw compressor on every other file: the hardware's own two-thread
 * scaling.  compress_page() is the store's own call, its per-thread state
 * included.
 */
static void *raw_compress_part(void *arg)
{
	const struct raw_part *rp = arg;
	static _Thread_local uint8_t dst[PAGE], back[PAGE];
	size_t i;

	for (i = 0; i < rp->c->nr; i++) {
		if (rp->c->file[i] % 2 != rp->part)
			continue;
		if (compress_page(&bench_cfg, rp->c->pages + i * PAGE,
				  dst) <= 0)
			memcpy(back, rp->c->pages + i * PAGE, PAGE);
	}
	return NULL;
}

static double raw_compress_two_threads(const struct corpus *c)
{
	struct raw_part rp[2] = { { c, 0 }, { c, 1 } };
	pthread_t tid[2];
	double t = now();
	int i;

	for (i = 0; i < 2; i++)
		pthread_create(&tid[i], NULL, raw_compress_part, &rp[i]);
	for (i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	return now() - t;
}

/* Compressed sizes of every page, and a contiguous copy to decompress. */
static uint8_t *raw_setup(const struct corpus *c, struct raw_result *r)
{
	uint8_t *cbuf = malloc((size_t)c->nr * PAGE), *at = cbuf;
	size_t i;

	r->sizes = calloc(c->nr, sizeof(*r->sizes));
	r->compress_s = r->compress2_s = 1e30;
	r->decompress_s = r->memcpy_s = 1e30;
	r->compress_cpu = r->decompress_cpu = 1e30;
	r->fresh_s = r->memset_s = 1e30;
	r->compressed_bytes = 0;
	r->compressible = 0;
	for (i = 0; i < c->nr; i++) {
		int n = compress_page(&bench_cfg, c->pages + i * PAGE, at);

		if (n < 0) {
			fprintf(stderr, "tmem-pool-bench: compress: %s\n",
				tmem_strerror(n));
			exit(1);
		}
		r->sizes[i] = (uint16_t)n;
		if (n) {
			r->compressed_bytes += (uint64_t)n;
			r->compressible++;
			at += n;
		}
	}
	return cbuf;
}

static void keep_min(double *best, double t)
{
	if (t < *best)
		*best = t;
}

/* One timed pass of each limit; @cbuf from raw_setup(). */
static void raw_round(const struct corpus *c, const uint8_t *cbuf,
		      struct raw_result *r)
{
	static uint8_t dst[PAGE], back[PAGE];
	size_t i, off;
	double t, cpu;

	t = now();
	cpu = cpu_now();
	for (i = 0; i < c->nr; i++)
		/* an incompressible page is then copied raw */
		if (compress_page(&bench_cfg, c->pages + i * PAGE, dst) <= 0)
			memcpy(back, c->pages + i * PAGE, PAGE);
	keep_min(&r->compress_cpu, cpu_now() - cpu);
	keep_min(&r->compress_s, now() - t);
	keep_min(&r->compress2_s, raw_compress_two_threads(c));
	t = now();
	cpu = cpu_now();
	for (i = 0, off = 0; i < c->nr; i++) {
		if (!r->sizes[i]) {
			memcpy(back, c->pages + i * PAGE, PAGE);
			continue;
		}
		if (decompress_page(&bench_cfg, cbuf + off, r->sizes[i],
				    back)) {
			fprintf(stderr, "tmem-pool-bench: decompress failed\n");
			exit(1);
		}
		off += r->sizes[i];
	}
	keep_min(&r->decompress_cpu, cpu_now() - cpu);
	keep_min(&r->decompress_s, now() - t);
	t = now();
	for (i = 0; i < c->nr; i++) {
		memcpy(back, c->pages + i * PAGE, PAGE);
		__asm__ volatile("" : : "r"(back) : "memory");
	}
	keep_min(&r->memcpy_s, now() - t);
}

/*
 * What fresh memory costs a growing pool: @pages pages faulted in and
 * zeroed by the kernel, FRESH_BATCH at a time as the pool does, then a
 * memset of the same, now resident, pages (the zeroing alone).
 */
static void fresh_round(size_t pages, struct raw_result *r)
{
	size_t bytes = pages * PAGE, off;
	uint8_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	double t;

	if (p == MAP_FAILED)
		return;
	madvise(p, bytes, MADV_NOHUGEPAGE);
	t = now();
	for (off = 0; off < bytes; off += FRESH_BATCH * PAGE)
		if (madvise(p + off, bytes - off < FRESH_BATCH * PAGE ?
				     bytes - off : FRESH_BATCH * PAGE,
			    MADV_POPULATE_WRITE))
			break;
	if (off >= bytes)	/* kernels before 5.14 cannot tell */
		keep_min(&r->fresh_s, (now() - t) / (double)pages);
	t = now();
	memset(p, 1, bytes);
	__asm__ volatile("" : : "r"(p) : "memory");
	keep_min(&r->memset_s, (now() - t) / (double)pages);
	munmap(p, bytes);
}

/* Fewest frames for these sizes, two per frame: pair largest with smallest. */
static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static size_t optimal_frames(const struct raw_result *r, size_t n)
{
	uint16_t *s = malloc(n * sizeof(*s));
	size_t m = 0, lo = 0, hi, frames = 0, i;

	for (i = 0; i < n; i++)
		if (r->sizes[i])
			s[m++] = r->sizes[i];
	qsort(s, m, sizeof(*s), cmp_u16);
	hi = m;
	while (lo < hi) {
		hi--;
		if (lo < hi && s[lo] + s[hi] <= PAGE)
			lo++;
		frames++;
	}
	free(s);
	return frames;
}

/* ---- the pool ------------------------------------------------------------ */

/* Thread @part of @parts takes the files whose number is @part mod @parts. */
struct run {
	struct tmem_store *s;
	const struct corpus *c;
	int pool;
	unsigned int part, parts;
	bool get;
	int errors;
};

static void *run_range(void *arg)
{
	struct run *r = arg;
	static _Thread_local uint8_t out[PAGE];
	size_t i;

	for (i = 0; i < r->c->nr; i++) {
		struct tmem_oid oid = { { r->c->file[i], 0, 0 } };

		if (r->c->file[i] % r->parts != r->part)
			continue;
		struct iovec v;
		int ret;

		if (r->get) {
			v = (struct iovec){ out, PAGE };
			ret = tmem_get(r->s, (uint32_t)r->pool, &oid,
				       r->c->index[i], &v, 1, 0);
		} else {
			v = (struct iovec){ r->c->pages + i * PAGE, PAGE };
			ret = tmem_put(r->s, (uint32_t)r->pool, &oid,
				       r->c->index[i], &v, 1, NULL);
		}
		if (ret)
			r->errors++;
	}
	return NULL;
}

/* Put (or get) every page with @threads threads; returns seconds. */
static double pool_pass(struct tmem_store *s, int pool, const struct corpus *c,
			int threads, bool get)
{
	pthread_t tid[2];
	struct run r[2];
	double t;
	int i;

	for (i = 0; i < threads; i++)
		r[i] = (struct run){ s, c, pool, (unsigned int)i,
				     (unsigned int)threads, get, 0 };
	t = now();
	for (i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, run_range, &r[i]);
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	t = now() - t;
	for (i = 0; i < threads; i++)
		if (r[i].errors) {
			fprintf(stderr, "tmem-pool-bench: %d %s errors\n",
				r[i].errors, get ? "get" : "put");
			exit(1);
		}
	return t;
}

static struct tmem_store *new_store(const struct corpus *c, int *pool)
{
	struct tmem_config cfg = bench_cfg;
	struct tmem_store *s;
	char why[128];
	int ret;

	cfg.allocator = bench_alloc;
	cfg.limit_bytes = (uint64_t)c->nr * PAGE * 5 / 4 + (64ull << 20);
	/* the limit follows the corpus size (--max-pages) */
	ret = tmem_config_check(&cfg, why, sizeof(why));
	if (ret != TMEM_CFG_OK) {
		fprintf(stderr, "tmem-pool-bench: %s %s\n",
			ret == TMEM_CFG_LZ4_ACCEL ? "--accel/--level" :
			ret == TMEM_CFG_ZSTD_LEVEL ? "--level" :
			"store size for --max-pages", why);
		exit(2);
	}
	ret = tmem_store_create(&cfg, &s);
	if (ret) {
		fprintf(stderr, "tmem-pool-bench: store: %s\n",
			tmem_strerror(ret));
		exit(1);
	}
	/* persistent: nothing may be evicted or refused during the run */
	*pool = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	return s;
}

/*
 * put_s: into an empty pool, whose frames are fresh memory the kernel must
 * zero; reput_s: the same pages again, each replacing its old copy, so the
 * pool recycles its own frames as a full pool does.
 */
struct pool_result {
	double put_s[3], reput_s[3], get_s[3];	/* by thread count */
	struct tmem_stats st;
};

static void pool_result_init(struct pool_result *pr)
{
	int threads;

	for (threads = 1; threads <= 2; threads++)
		pr->put_s[threads] = pr->reput_s[threads] =
			pr->get_s[threads] = 1e30;
}

/* One timed pass of each pool figure; stats from the first 1-thread run. */
static void pool_round(const struct corpus *c, struct pool_result *pr,
		       bool keep_stats)
{
	int threads, pool;

	for (threads = 1; threads <= 2; threads++) {
		struct tmem_store *s = new_store(c, &pool);

		keep_min(&pr->put_s[threads],
			 pool_pass(s, pool, c, threads, false));
		keep_min(&pr->reput_s[threads],
			 pool_pass(s, pool, c, threads, false));
		keep_min(&pr->get_s[threads],
			 pool_pass(s, pool, c, threads, true));
		if (threads == 1 && keep_stats)
			tmem_get_stats(s, &pr->st);
		tmem_store_destroy(s);
	}
}

/* Every page reads back as it went in (outside the timed passes). */
static void verify(const struct corpus *c)
{
	static uint8_t out[PAGE];
	struct tmem_store *s;
	size_t i;
	int pool;

	s = new_store(c, &pool);
	pool_pass(s, pool, c, 1, false);
	for (i = 0; i < c->nr; i++) {
		struct tmem_oid oid = { { c->file[i], 0, 0 } };
		struct iovec v = { out, PAGE };

		if (tmem_get(s, (uint32_t)pool, &oid, c->index[i], &v, 1, 0) ||
		    memcmp(out, c->pages + i * PAGE, PAGE)) {
			fprintf(stderr, "tmem-pool-bench: page %zu differs\n",
				i);
			exit(1);
		}
	}
	tmem_store_destroy(s);
}

/*
 * Fragmentation: every page put, then a pseudo-random half flushed; frames
 * held against the live bytes, before and after tmem_compact().
 */
struct frag_result {
	uint64_t before, after, live, moved;
	double compact_s;
};

static bool frag_flushed(size_t i)
{
	return ((uint32_t)i * 2654435761u) >> 31;
}

static uint64_t live_bytes(const struct tmem_kind_stats *k)
{
	return k->compressed_bytes + k->raw_pages * PAGE;
}

static void frag_round(const struct corpus *c, struct frag_result *fr)
{
	struct tmem_stats st;
	struct tmem_store *s;
	size_t i;
	int pool;
	double t;

	s = new_store(c, &pool);
	pool_pass(s, pool, c, 1, false);
	for (i = 0; i < c->nr; i++) {
		struct tmem_oid oid = { { c->file[i], 0, 0 } };

		if (frag_flushed(i))
			tmem_flush_page(s, (uint32_t)pool, &oid, c->index[i]);
	}
	tmem_get_stats(s, &st);
	fr->before = st.kind[TMEM_PERSISTENT].frames;
	fr->live = live_bytes(&st.kind[TMEM_PERSISTENT]);
	t = now();
	tmem_compact(s);
	fr->compact_s = now() - t;
	tmem_get_stats(s, &st);
	fr->after = st.kind[TMEM_PERSISTENT].frames;
	fr->moved = st.compact_moved;
	tmem_store_destroy(s);
}

/* ---- report ---------------------------------------------------------------- */

static const char *verdict(double v, double target, bool at_least)
{
	return (at_least ? v >= target : v <= target) ? "meets" : "MISSES";
}

static void report_corpus(const struct corpus *c, const struct raw_result *r)
{
	printf("corpus: %zu files, %zu pages (%.1f MiB): %zu zero-filled and "
	       "%zu same-filled (left out), %zu measured, of which %zu "
	       "incompressible (> %u bytes)\n",
	       c->files, c->nr + c->zero + c->same,
	       (c->nr + c->zero + c->same) * (double)PAGE / (1 << 20),
	       c->zero, c->same, c->nr, c->nr - r->compressible,
	       bench_cfg.max_compressed);
}

static void report(const struct corpus *c, const struct raw_result *r,
		   const struct pool_result *pr, const char *name,
		   enum tmem_allocator alloc)
{
	const struct tmem_kind_stats *k = &pr->st.kind[TMEM_PERSISTENT];
	double n = (double)c->nr;
	double put1 = n / pr->put_s[1], get1 = n / pr->get_s[1];
	double put2 = n / pr->put_s[2], get2 = n / pr->get_s[2];
	double reput1 = n / pr->reput_s[1], reput2 = n / pr->reput_s[2];
	double rawc = n / r->compress_s, rawd = n / r->decompress_s;
	double rawc2 = n / r->compress2_s;
	double mcpy = n / r->memcpy_s;
	uint64_t raw_frames = k->raw_pages;
	uint64_t zframes = k->frames - raw_frames;
	size_t opt_frames = optimal_frames(r, c->nr);
	double stored_bytes = (double)r->compressed_bytes +
			      (double)(c->nr - r->compressible) * PAGE;

	printf("\n=== allocator %s ===\n", allocator_names[alloc]);
	printf("\n%-34s %12s %12s %8s %8s\n", "single thread", "pages/s",
	       "limit", "ratio", "target");
	printf("%-34s %12.0f %12.0f %8.2f %8s  %s (raw %s compress)\n",
	       "put, pool growing (fresh frames)", put1, rawc, put1 / rawc,
	       ">=0.85", verdict(put1 / rawc, 0.85, true), name);
	printf("%-34s %12.0f %12.0f %8.2f %8s  %s (raw %s compress)\n",
	       "put, steady (frames recycled)", reput1, rawc, reput1 / rawc,
	       ">=0.85", verdict(reput1 / rawc, 0.85, true), name);
	printf("%-34s %12.0f %12.0f %8.2f %8s  %s (raw %s decompress)\n",
	       "get", get1, rawd, get1 / rawd, ">=0.80",
	       verdict(get1 / rawd, 0.80, true), name);
	printf("%-34s %12.0f %12s %8s %8s  (the limit for raw pages)\n",
	       "memcpy (4 KiB)", mcpy, "", "", "");
	if (r->fresh_s < 1e29) {
		double fpp = (double)k->frames / n;
		double grow_lim = 1 / (1 / rawc + fpp * r->fresh_s);

		printf("%-34s %12.0f ns/page, of which zeroing %.0f\n",
		       "fresh memory from the kernel", r->fresh_s * 1e9,
		       r->memset_s * 1e9);
		printf("%-34s %12.0f %12.0f %8.2f          (raw %s + %.2f "
		       "fresh frames/page)\n", "put, growing vs fresh memory", put1,
		       grow_lim, put1 / grow_lim, name, fpp);
	}
	printf("%-34s %12.0f %12.0f %8.2f\n", "two threads, raw compress",
	       rawc2, rawc, rawc2 / rawc);
	printf("\n%-34s %12s %12s %8s %8s\n", "two threads", "pages/s",
	       "1 thread", "ratio", "target");
	printf("%-34s %12.0f %12.0f %8.2f %8s  %s\n",
	       "put, pool growing", put2, put1, put2 / put1, ">=1.70",
	       verdict(put2 / put1, 1.7, true));
	printf("%-34s %12.0f %12.0f %8.2f %8s  %s\n",
	       "put, steady", reput2, reput1, reput2 / reput1, ">=1.70",
	       verdict(reput2 / reput1, 1.7, true));
	printf("%-34s %12.0f %12.0f %8.2f %8s  %s\n", "get", get2, get1,
	       get2 / get1, ">=1.70", verdict(get2 / get1, 1.7, true));
	printf("\n%-34s %12s %12s %8s %8s\n", "space", "value", "limit",
	       "ratio", "target");
	printf("%-34s %12.2f %12s\n", "compression ratio (compressor)",
	       n * PAGE / stored_bytes, "");
	printf("%-34s %12.2f %12s\n", "compression ratio (pool, frames)",
	       n * PAGE / ((double)k->frames * PAGE), "");
	printf("%-34s %12.0f %12s\n", "host bytes per stored page",
	       (double)pr->st.used_bytes / n, "");
	printf("%-34s %12.1f %12s %8s %8s  %s\n", "metadata bytes per page",
	       (double)(pr->st.meta_bytes) / n, "", "", "<=64",
	       verdict((double)pr->st.meta_bytes / n, 64, false));
	if (alloc == TMEM_ALLOC_ZBUD)
		printf("%-34s %12" PRIu64 " %12zu %8.3f %8s  %s (optimal "
		       "pairing)\n", "zbud frames (compressed pages)", zframes,
		       opt_frames, (double)zframes / (double)opt_frames,
		       "<=1.10", verdict((double)zframes / (double)opt_frames,
					 1.10, false));
	printf("\nmetadata: %" PRIu64 " bytes of pool tables and frame "
	       "descriptors + %" PRIu64 " slab frames (entries, objects, index "
	       "nodes)\n", pr->st.meta_bytes - k->meta_frames * PAGE,
	       k->meta_frames);
}

/*
 * One line per compressor: its density alone and in the pool, and its
 * single-thread speed raw and through the pool.
 */
static void report_compressors(const struct corpus *c,
			       const struct raw_result *r,
			       const struct pool_result *pr)
{
	double n = (double)c->nr;
	int k;

	report_corpus(c, &r[0]);
	printf("\n%-8s %9s %7s %7s %7s %7s %9s %9s %9s %9s %9s\n",
	       "", "bytes per", "incom-", "ratio", "pages/", "host B/",
	       "raw", "put", "put", "raw", "get");
	printf("%-8s %9s %7s %7s %7s %7s %9s %9s %9s %9s %9s\n",
	       "", "compr.pg", "press.", "alone", "frame", "page",
	       "compress", "growing", "steady", "decompr.", "");
	for (k = 0; k < opt.nr_comps; k++) {
		const struct tmem_kind_stats *ks =
			&pr[k].st.kind[TMEM_PERSISTENT];
		double stored = (double)r[k].compressed_bytes +
				(double)(c->nr - r[k].compressible) * PAGE;

		printf("%-8s %9.0f %6.1f%% %7.2f %7.2f %7.0f %9.0f %9.0f "
		       "%9.0f %9.0f %9.0f\n", opt.comps[k].name,
		       (double)r[k].compressed_bytes /
		       (double)(r[k].compressible ? r[k].compressible : 1),
		       100.0 * (double)(c->nr - r[k].compressible) / n,
		       n * PAGE / stored, n / (double)ks->frames,
		       (double)pr[k].st.used_bytes / n,
		       n / r[k].compress_s, n / pr[k].put_s[1],
		       n / pr[k].reput_s[1], n / r[k].decompress_s,
		       n / pr[k].get_s[1]);
	}
	printf("\n(pages/s, one thread; bytes per compressed page over the "
	       "pages that compress\nto %u bytes or less; ratio alone: "
	       "measured bytes / (compressed + raw bytes))\n",
	       bench_cfg.max_compressed);
	/* CPU time is what a busy host cannot inflate as it does wall time */
	printf("\n%-8s %16s %16s\n", "raw", "compress", "decompress");
	for (k = 0; k < opt.nr_comps; k++)
		printf("%-8s %11.2f µs %11.2f µs  CPU time per page\n",
		       opt.comps[k].name, r[k].compress_cpu * 1e6 / n,
		       r[k].decompress_cpu * 1e6 / n);
}

/*
 * The allocators side by side against byte-perfect packing (the sum of the
 * stored sizes, raw pages at 4096) and against zbud's speed.
 */
static void report_density(const struct corpus *c, const struct raw_result *r,
			   const struct pool_result *pr,
			   const struct frag_result *fr, const bool *ran)
{
	double n = (double)c->nr;
	double ideal = ((double)r->compressed_bytes +
			(double)(c->nr - r->compressible) * PAGE) / PAGE;
	const struct pool_result *zb = &pr[TMEM_ALLOC_ZBUD];
	int a;

	printf("\n=== density (persistent pool holding every measured page) "
	       "===\n\n%-10s %9s %11s %11s %9s %8s %9s %9s %8s %8s\n",
	       "allocator", "frames", "pages/frame", "host B/page", "vs ideal",
	       "target", "put/s", "get/s", "put/zbud", "get/zbud");
	printf("%-10s %9.0f %11.3f %11.0f %9s\n", "ideal", ideal, n / ideal,
	       ideal * PAGE / n, "1.000");
	for (a = 0; a < NR_ALLOCATORS; a++) {
		const struct tmem_kind_stats *k = &pr[a].st.kind[TMEM_PERSISTENT];
		double dens = ideal / (double)k->frames;
		double put = n / pr[a].reput_s[1], get = n / pr[a].get_s[1];

		if (!ran[a])
			continue;
		printf("%-10s %9" PRIu64 " %11.3f %11.0f %9.3f %8s %9.0f %9.0f",
		       allocator_names[a], k->frames, n / (double)k->frames,
		       (double)pr[a].st.used_bytes / n, dens,
		       a == TMEM_ALLOC_ZSMALLOC ? ">=0.95" : "", put, get);
		if (ran[TMEM_ALLOC_ZBUD])
			printf(" %8.2f %8.2f", put * zb->reput_s[1] / n,
			       get * zb->get_s[1] / n);
		if (a == TMEM_ALLOC_ZSMALLOC)
			printf("  %s", verdict(dens, 0.95, true));
		printf("\n");
	}
	if (ran[TMEM_ALLOC_ZBUD] && ran[TMEM_ALLOC_ZSMALLOC]) {
		double pr_put = pr[1].reput_s[1], pr_get = pr[1].get_s[1];

		printf("zsmalloc against zbud: put %.2f (target >=0.90, %s), "
		       "get %.2f (target >=0.90, %s); metadata %.1f B/page "
		       "(target <=64, %s)\n",
		       zb->reput_s[1] / pr_put,
		       verdict(zb->reput_s[1] / pr_put, 0.90, true),
		       zb->get_s[1] / pr_get,
		       verdict(zb->get_s[1] / pr_get, 0.90, true),
		       (double)pr[1].st.meta_bytes / n,
		       verdict((double)pr[1].st.meta_bytes / n, 64, false));
	}
	printf("\n%-10s %9s %9s %9s %9s %8s %9s %12s\n", "half flushed",
	       "live/4096", "frames", "compacted", "ratio", "target", "moved",
	       "compact s");
	for (a = 0; a < NR_ALLOCATORS; a++) {
		double live = (double)fr[a].live / PAGE;

		if (!ran[a])
			continue;
		printf("%-10s %9.0f %9" PRIu64 " %9" PRIu64 " %9.3f %8s %9"
		       PRIu64 " %12.4f", allocator_names[a], live,
		       fr[a].before, fr[a].after, (double)fr[a].after / live,
		       a == TMEM_ALLOC_ZSMALLOC ? "<=1.10" : "", fr[a].moved,
		       fr[a].compact_s);
		if (a == TMEM_ALLOC_ZSMALLOC)
			printf("  %s", verdict((double)fr[a].after / live,
					       1.10, false));
		printf("\n");
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tmem-pool-bench [--corpus PATH]... [--max-pages N] "
		"[--repeat N]\n"
		"                       [--compressor NAME[:LEVEL][,...]] "
		"[--level N] [--accel N]\n"
		"                       [--allocator zbud|zsmalloc]\n\n"
		"Measures the virtio-tmem host pool (put, get, 1 and 2 threads,\n"
		"space) on real pages, against its raw compressor and memcpy on\n"
		"the same pages; with several compressors, compares them on the\n"
		"same pages, in turn in every round.  PATH is a file or\n"
		"directory (default: /usr/lib/x86_64-linux-gnu and /usr/share),\n"
		"read in sorted order; several paths share --max-pages equally.\n"
		"  --max-pages N  corpus size in 4 KiB pages (default 65536)\n"
		"  --repeat N     best of N timed rounds (default 5)\n"
		"  --compressor   lz4, zstd or none, each with its own :LEVEL if\n"
		"                 wanted, e.g. lz4,zstd:1,zstd:3 (default lz4)\n"
		"  --level N      zstd level where none is given (default 3)\n"
		"  --accel N      LZ4 acceleration where none is given "
		"(default 1)\n"
		"  --allocator A  measure only allocator A (default: with one\n"
		"                 compressor both, side by side, with a density\n"
		"                 table against byte-perfect packing and a\n"
		"                 fragmentation run; with several, zbud)\n");
}

/* "lz4", "zstd:3", ...: -1 if @s names no compressor. */
static int parse_compressor(const char *s, struct bench_comp *bc)
{
	const char *colon = strchr(s, ':');
	size_t len = colon ? (size_t)(colon - s) : strlen(s);
	char *end;

	if (len == 3 && !strncmp(s, "lz4", 3)) {
		bc->comp = TMEM_COMP_LZ4;
		bc->level = opt.accel;
	} else if (len == 4 && !strncmp(s, "zstd", 4)) {
		bc->comp = TMEM_COMP_ZSTD;
		bc->level = opt.level;
	} else if (len == 4 && !strncmp(s, "none", 4)) {
		bc->comp = TMEM_COMP_NONE;
		bc->level = 0;
	} else {
		return -1;
	}
	if (colon) {
		long v = strtol(colon + 1, &end, 10);

		if (*end || end == colon + 1 || v < 0 || v > 100000000)
			return -1;
		bc->level = (int)v;
	}
	if (bc->comp == TMEM_COMP_NONE)
		snprintf(bc->name, sizeof(bc->name), "none");
	else
		snprintf(bc->name, sizeof(bc->name), "%.4s:%d", s, bc->level);
	return 0;
}

static int parse_compressors(char *list)
{
	char *tok, *save = NULL;

	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (opt.nr_comps == MAX_COMPRESSORS ||
		    parse_compressor(tok, &opt.comps[opt.nr_comps])) {
			fprintf(stderr, "tmem-pool-bench: --compressor %s: "
				"must be lz4, zstd or none with an optional "
				":LEVEL, at most %d\n", tok, MAX_COMPRESSORS);
			return -1;
		}
		opt.nr_comps++;
	}
	return opt.nr_comps ? 0 : -1;
}

/* bench_cfg for compressor @k, judged as the pool would judge it. */
static void select_compressor(int k)
{
	const struct bench_comp *bc = &opt.comps[k];
	char why[128];
	int ret;

	tmem_config_init(&bench_cfg);
	bench_cfg.compressor = bc->comp;
	if (bc->comp == TMEM_COMP_LZ4)
		bench_cfg.lz4_acceleration = bc->level;
	else if (bc->comp == TMEM_COMP_ZSTD)
		bench_cfg.zstd_level = bc->level;
	ret = tmem_config_check(&bench_cfg, why, sizeof(why));
	if (ret != TMEM_CFG_OK) {
		fprintf(stderr, "tmem-pool-bench: --compressor %s: %s\n",
			bc->name, why);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "corpus", required_argument, NULL, 'c' },
		{ "max-pages", required_argument, NULL, 'm' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "accel", required_argument, NULL, 'a' },
		{ "compressor", required_argument, NULL, 'C' },
		{ "level", required_argument, NULL, 'l' },
		{ "allocator", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct raw_result r[MAX_COMPRESSORS];
	static struct pool_result pr[MAX_COMPRESSORS][NR_ALLOCATORS];
	static struct pool_result by_comp[MAX_COMPRESSORS];
	struct frag_result fr[NR_ALLOCATORS];
	bool ran[NR_ALLOCATORS];
	uint8_t *cbuf[MAX_COMPRESSORS];
	struct corpus c = { 0 };
	char *comps = NULL;
	char *end;
	int ch, i, k, a;

	opt.level = TMEM_DEFAULT_ZSTD_LEVEL;
	while ((ch = getopt_long(argc, argv, "c:m:r:a:C:l:A:h", lo, NULL)) !=
	       -1) {
		switch (ch) {
		case 'A':
			for (a = 0; a < NR_ALLOCATORS; a++)
				if (!strcmp(optarg, allocator_names[a]))
					opt.allocator = a;
			if (opt.allocator < 0) {
				fprintf(stderr, "tmem-pool-bench: bad value "
					"'%s' for --allocator (zbud or "
					"zsmalloc)\n", optarg);
				return 2;
			}
			break;
		case 'c':
			if (opt.nr_paths == 16) {
				fprintf(stderr, "tmem-pool-bench: at most 16 "
					"--corpus paths\n");
				return 2;
			}
			opt.paths[opt.nr_paths++] = optarg;
			break;
		case 'C':
			comps = optarg;
			break;
		case 'm':
		case 'r':
		case 'l':
		case 'a': {
			unsigned long v = strtoul(optarg, &end, 0);

			if (*end || !v || v > 100000000) {
				fprintf(stderr, "tmem-pool-bench: bad value "
					"'%s' for --%s\n", optarg,
					ch == 'm' ? "max-pages" :
					ch == 'r' ? "repeat" :
					ch == 'l' ? "level" : "accel");
				return 2;
			}
			if (ch == 'm')
				opt.max_pages = v;
			else if (ch == 'r')
				opt.repeat = (int)v;
			else if (ch == 'l')
				opt.level = (int)v;
			else
				opt.accel = (int)v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tmem-pool-bench: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (parse_compressors(comps ? comps : (char[]){ "lz4" }))
		return 2;
	for (k = 0; k < opt.nr_comps; k++)
		select_compressor(k);	/* refuses a bad level before loading */
	if (!opt.nr_paths) {
		opt.paths[opt.nr_paths++] = "/usr/lib/x86_64-linux-gnu";
		opt.paths[opt.nr_paths++] = "/usr/share";
	}
	/* each path gets an equal share of the pages, in order */
	for (i = 0; i < opt.nr_paths; i++) {
		struct stat st;

		if (stat(opt.paths[i], &st)) {
			fprintf(stderr, "tmem-pool-bench: --corpus %s: %s\n",
				opt.paths[i], strerror(errno));
			return 1;
		}
		c.max = opt.max_pages * (size_t)(i + 1) / (size_t)opt.nr_paths;
		load_path(&c, opt.paths[i]);
	}
	if (c.nr < 16) {
		fprintf(stderr, "tmem-pool-bench: corpus has only %zu usable "
			"pages\n", c.nr);
		return 1;
	}
	fprintf(stderr, "tmem-pool-bench: %zu pages loaded; measuring "
		"(best of %d)...\n", c.nr, opt.repeat);
	/*
	 * Limits and pool, and the compressors, take turns in every round,
	 * so that all see the same host.
	 */
	/* with several compressors, one allocator: zbud unless told */
	for (a = 0; a < NR_ALLOCATORS; a++)
		ran[a] = opt.allocator < 0 ? opt.nr_comps == 1 ||
					     a == TMEM_ALLOC_ZBUD :
					     opt.allocator == a;
	for (k = 0; k < opt.nr_comps; k++) {
		select_compressor(k);
		cbuf[k] = raw_setup(&c, &r[k]);
		for (a = 0; a < NR_ALLOCATORS; a++)
			pool_result_init(&pr[k][a]);
	}
	for (i = 0; i < opt.repeat; i++) {
		for (k = 0; k < opt.nr_comps; k++) {
			select_compressor(k);
			raw_round(&c, cbuf[k], &r[k]);
			if (opt.nr_comps == 1)
				fresh_round(c.nr, &r[k]);
			for (a = 0; a < NR_ALLOCATORS; a++) {
				if (!ran[a])
					continue;
				bench_alloc = (enum tmem_allocator)a;
				pool_round(&c, &pr[k][a], i == 0);
			}
		}
	}
	for (k = 0; k < opt.nr_comps; k++) {
		select_compressor(k);
		free(cbuf[k]);
		for (a = 0; a < NR_ALLOCATORS; a++) {
			if (!ran[a])
				continue;
			bench_alloc = (enum tmem_allocator)a;
			verify(&c);
		}
	}
	if (opt.nr_comps == 1) {
		report_corpus(&c, &r[0]);
		for (a = 0; a < NR_ALLOCATORS; a++) {
			if (!ran[a])
				continue;
			bench_alloc = (enum tmem_allocator)a;
			frag_round(&c, &fr[a]);
			report(&c, &r[0], &pr[0][a], opt.comps[0].name,
			       (enum tmem_allocator)a);
		}
		report_density(&c, &r[0], pr[0], fr, ran);
	} else {
		for (a = 0; a < NR_ALLOCATORS && !ran[a]; a++)
			;
		printf("allocator: %s\n", allocator_names[a]);
		for (k = 0; k < opt.nr_comps; k++)
			by_comp[k] = pr[k][a];
		report_compressors(&c, r, by_comp);
	}
	for (k = 0; k < opt.nr_comps; k++)
		free(r[k].sizes);
	free(c.pages);
	free(c.file);
	free(c.index);
	return 0;
}
