// SPDX-License-Identifier: BSD-3-Clause
/*
 * tmem-cost-bench - the per-page CPU costs of the KVM cost model
 * (docs/benchmarks.md, "KVM cost model"), measured natively on this host.
 *
 * For each data set: LZ4 compress and decompress of a page (liblz4 at
 * acceleration 1, what the store runs and what zswap and zram run inside a
 * KVM guest at native speed), memcpy of a page, and the store's put and
 * exclusive get of a page (a swap-out and a swap-in through the device)
 * with each allocator.  Then the wire codec's cost per batch: the driver's
 * encoding of N PUTs and the device's copy-out, validation and decoding of
 * them.
 *
 * Data sets of N pages (--pages): "text" (the pages of memhog --pattern
 * text), "random" (memhog's default pattern, incompressible) and "heap"
 * (pages spread evenly over the --corpus files, e.g. the core dumps of
 * scripts/make-heap-corpus.sh; zero- and same-filled pages are counted and
 * left out, as the store keeps those as metadata only).  Each figure is
 * the median of --reps passes over all pages, with the passes' min and max,
 * in CPU time of the measuring thread.
 * The page arrays are larger than the CPU's caches by default, as the pages
 * a swap-out or swap-in touches are.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pageio.h"
#include "tmem.h"
#include "vtmem_codec.h"

#define PAGE		TMEM_PAGE_SIZE
#define MAX_REPS	101
#define MAX_FILES	64
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

static struct {
	size_t pages;
	unsigned int reps;
	const char *corpus[MAX_FILES];
	unsigned int nr_corpus;
} opt = { .pages = 16384, .reps = 9 };

/*
 * Where values computed only to be timed go: global, so that the compiler
 * must keep what is stored here.
 */
uint64_t tmem_cost_sink;

/*
 * This thread's CPU time (user and system): what a page costs, without the
 * time other processes of a shared machine take the CPU away.
 */
static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *xmalloc(size_t len)
{
	void *p = malloc(len);

	if (!p) {
		fprintf(stderr, "tmem-cost-bench: out of memory\n");
		exit(1);
	}
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Print @label and the median, min and max of the @n values in @v. */
static void report(const char *label, double *v, unsigned int n,
		   const char *unit)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf("  %-42s %9.0f %s  (min %.0f, max %.0f)\n", label,
	       n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, unit, v[0],
	       v[n - 1]);
}

/* ---- data sets ------------------------------------------------------------ */

struct dataset {
	const char *name;
	uint8_t *pages;		/* @nr pages, none zero- or same-filled */
	size_t nr;
	size_t filled;		/* heap: filled pages seen and left out */
};

/* memhog's word @i of page @page (tests/guest/memhog.c, seed 0) */
static uint64_t memhog_word(uint64_t page, uint64_t i)
{
	uint64_t x = (page << 20) ^ (i << 3);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

/*
 * Page @n as memhog writes it: random words, or with @text two random words
 * and then its text, each word xored with its index.
 */
static void memhog_page(uint8_t *p, uint64_t n, bool text)
{
	static const char txt[] = "virtio-tmem keeps this page compressed ";
	uint64_t i, w;

	for (i = 0; i < PAGE / 8; i++) {
		if (!text || i < 2) {
			w = memhog_word(n, i);
		} else {
			memcpy(&w, txt + (i * 8) % (sizeof(txt) - 8), 8);
			w ^= i & 0xff;
		}
		memcpy(p + i * 8, &w, 8);
	}
}

static void make_memhog(struct dataset *d, bool text)
{
	size_t i;

	d->name = text ? "text" : "random";
	d->nr = opt.pages;
	d->pages = xmalloc(d->nr * PAGE);
	for (i = 0; i < d->nr; i++)
		memhog_page(d->pages + i * PAGE, i, text);
}

/* Add up to @want pages spread evenly over file @path to @d. */
static void heap_file(struct dataset *d, const char *path, size_t want)
{
	struct stat st;
	size_t total, stride, k;
	uint32_t word;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "tmem-cost-bench: --corpus %s: not a readable file\n",
			path);
		exit(2);
	}
	total = (size_t)st.st_size / PAGE;
	stride = total > want ? total / want : 1;
	for (k = 0; k < total && want; k += stride) {
		uint8_t *p = d->pages + d->nr * PAGE;

		if (pread(fd, p, PAGE, (off_t)(k * PAGE)) != PAGE)
			break;
		/* the store keeps these as a fill word: nothing to measure */
		if (pageio_same_filled(p, &word)) {
			d->filled++;
			continue;
		}
		d->nr++;
		want--;
	}
	close(fd);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files @path names: itself, or those in it (sorted). */
static unsigned int corpus_files(const char *path, char **out,
				 unsigned int room)
{
	struct dirent *de;
	struct stat st;
	unsigned int n = 0;
	DIR *dir;

	if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
		if (!room)
			return 0;
		out[0] = strdup(path);
		return 1;
	}
	dir = opendir(path);
	while (dir && (de = readdir(dir)) && n < room) {
		char *p;

		if (asprintf(&p, "%s/%s", path, de->d_name) < 0)
			break;
		if (!stat(p, &st) && S_ISREG(st.st_mode))
			out[n++] = p;
		else
			free(p);
	}
	if (dir)
		closedir(dir);
	qsort(out, n, sizeof(*out), cmp_str);
	return n;
}

static bool make_heap(struct dataset *d)
{
	char *files[MAX_FILES];
	unsigned int i, n = 0;

	d->name = "heap";
	if (!opt.nr_corpus)
		return false;
	for (i = 0; i < opt.nr_corpus; i++)
		n += corpus_files(opt.corpus[i], files + n, MAX_FILES - n);
	if (!n) {
		fprintf(stderr, "tmem-cost-bench: --corpus: no files\n");
		exit(2);
	}
	d->pages = xmalloc(opt.pages * PAGE);
	for (i = 0; i < n; i++) {
		/* an equal share of what is left from each file */
		heap_file(d, files[i], (opt.pages - d->nr) / (n - i));
		free(files[i]);
	}
	if (!d->nr) {
		fprintf(stderr, "tmem-cost-bench: --corpus: no pages\n");
		exit(2);
	}
	printf("heap corpus: %u files, %zu pages measured, %zu zero- or same-filled pages left out\n",
	       n, d->nr, d->filled);
	return true;
}

/* ---- LZ4 and memcpy --------------------------------------------------------- */

/*
 * Compress every page of @d into @cbuf (a slot of LZ4_COMPRESSBOUND(PAGE)
 * bytes each), then decompress each into @out; @clen gets the sizes.
 */
static void lz4_pass(const struct dataset *d, char *cbuf, int *clen,
		     uint8_t *out, double *c_ns, double *d_ns)
{
	const int bound = LZ4_COMPRESSBOUND(PAGE);
	double t0, t1, t2;
	size_t i;

	t0 = now_ns();
	for (i = 0; i < d->nr; i++)
		clen[i] = LZ4_compress_default((const char *)d->pages + i * PAGE,
					       cbuf + i * bound, PAGE, bound);
	t1 = now_ns();
	for (i = 0; i < d->nr; i++)
		tmem_cost_sink += LZ4_decompress_safe(cbuf + i * bound,
					    (char *)out + i * PAGE, clen[i],
					    PAGE);
	t2 = now_ns();
	*c_ns = (t1 - t0) / d->nr;
	*d_ns = (t2 - t1) / d->nr;
}

static int bench_lz4(const struct dataset *d, uint8_t *out)
{
	const int bound = LZ4_COMPRESSBOUND(PAGE);
	double c[MAX_REPS], dc[MAX_REPS], cp[MAX_REPS], t0;
	char *cbuf = xmalloc(d->nr * (size_t)bound);
	int *clen = xmalloc(d->nr * sizeof(*clen));
	uint64_t bytes = 0, over = 0;
	unsigned int r;
	size_t i;

	for (r = 0; r < opt.reps; r++) {
		lz4_pass(d, cbuf, clen, out, &c[r], &dc[r]);
		t0 = now_ns();
		for (i = 0; i < d->nr; i++)
			memcpy(out + i * PAGE, d->pages + i * PAGE, PAGE);
		cp[r] = (now_ns() - t0) / d->nr;
		tmem_cost_sink += out[(size_t)r * 4099 % (d->nr * PAGE)];
	}
	for (i = 0; i < d->nr; i++) {
		if (clen[i] <= 0) {
			fprintf(stderr, "tmem-cost-bench: LZ4 failed\n");
			return 1;
		}
		bytes += (uint64_t)clen[i];
		over += clen[i] > (int)TMEM_DEFAULT_MAX_COMPRESSED;
	}
	/* the last pass decompressed, then copied: check the decompression */
	lz4_pass(d, cbuf, clen, out, &c[0], &dc[0]);
	if (memcmp(out, d->pages, d->nr * PAGE)) {
		fprintf(stderr, "tmem-cost-bench: LZ4 round trip differs\n");
		return 1;
	}
	printf("  LZ4: mean %.0f bytes a page (ratio %.2f), %.1f%% of pages over %u bytes (the store keeps those raw)\n",
	       (double)bytes / d->nr, (double)d->nr * PAGE / bytes,
	       100.0 * over / d->nr, TMEM_DEFAULT_MAX_COMPRESSED);
	report("LZ4 compress, per page", c, opt.reps, "ns");
	report("LZ4 decompress, per page", dc, opt.reps, "ns");
	report("memcpy, per page", cp, opt.reps, "ns");
	free(cbuf);
	free(clen);
	return 0;
}

/* ---- the store ---------------------------------------------------------- */

static const struct tmem_oid bench_oid = { { 1, 0, 0 } };

/* Put every page of @d into @pool, then get each back exclusively. */
static int store_pass(struct tmem_store *s, int pool, const struct dataset *d,
		      uint8_t *out, double *put_ns, double *get_ns)
{
	struct iovec v = { NULL, PAGE };
	double t0, t1, t2;
	size_t i;
	int ret;

	t0 = now_ns();
	for (i = 0; i < d->nr; i++) {
		v.iov_base = d->pages + i * PAGE;
		ret = tmem_put(s, (uint32_t)pool, &bench_oid, i, &v, 1, NULL);
		if (ret)
			return ret;
	}
	t1 = now_ns();
	for (i = 0; i < d->nr; i++) {
		v.iov_base = out + i * PAGE;
		ret = tmem_get(s, (uint32_t)pool, &bench_oid, i, &v, 1,
			       TMEM_GET_EXCLUSIVE);
		if (ret)
			return ret;
	}
	t2 = now_ns();
	*put_ns = (t1 - t0) / d->nr;
	*get_ns = (t2 - t1) / d->nr;
	return memcmp(out, d->pages, d->nr * PAGE) ? -TMEM_E_IO : 0;
}

static int bench_store(const struct dataset *d, uint8_t *out,
		       enum tmem_allocator alloc)
{
	static const char *const names[] = { "zbud", "zsmalloc" };
	double put[MAX_REPS], get[MAX_REPS], w0, w1;
	struct tmem_store *s;
	struct tmem_config cfg;
	struct tmem_stats st;
	char label[64];
	unsigned int r;
	int pool, ret;

	tmem_config_init(&cfg);
	cfg.allocator = alloc;
	/* room for every page raw, and the metadata */
	cfg.limit_bytes = d->nr * (PAGE + 256ull) + (16ull << 20);
	if (cfg.limit_bytes > TMEM_MAX_LIMIT)
		cfg.limit_bytes = TMEM_MAX_LIMIT;
	ret = tmem_store_create(&cfg, &s);
	if (ret)
		goto fail;
	pool = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	if (pool < 0) {
		ret = pool;
		goto fail;
	}
	/* once first, so that the frames are the store's: a pool in use */
	ret = store_pass(s, pool, d, out, &w0, &w1);
	if (ret)
		goto fail;
	for (r = 0; r < opt.reps && !ret; r++)
		ret = store_pass(s, pool, d, out, &put[r], &get[r]);
	if (ret)
		goto fail;
	tmem_get_stats(s, &st);
	tmem_store_destroy(s);
	snprintf(label, sizeof(label), "store put (%s), per page", names[alloc]);
	report(label, put, opt.reps, "ns");
	snprintf(label, sizeof(label), "store exclusive get (%s), per page",
		 names[alloc]);
	report(label, get, opt.reps, "ns");
	return 0;
fail:
	fprintf(stderr, "tmem-cost-bench: store (%s): %s\n", names[alloc],
		tmem_strerror(ret));
	return 1;
}

static int bench_dataset(struct dataset *d)
{
	uint8_t *out = xmalloc(d->nr * PAGE);
	int ret;

	printf("%s: %zu pages (%.0f MiB)\n", d->name, d->nr,
	       d->nr * (double)PAGE / (1 << 20));
	ret = bench_lz4(d, out) || bench_store(d, out, TMEM_ALLOC_ZBUD) ||
	      bench_store(d, out, TMEM_ALLOC_ZSMALLOC);
	free(out);
	free(d->pages);
	return ret;
}

/* ---- the wire codec ---------------------------------------------------------- */

/*
 * One batch of @n PUTs: the driver encodes it, the device copies it out of
 * its segments (header, ops, then one per page, as a descriptor chain maps
 * them), validates it and decodes every op.  Returns ns per batch.
 */
static double codec_pass(unsigned int n, unsigned int iters,
			 const uint8_t *page)
{
	static struct virtio_tmem_op ops[VIRTIO_TMEM_MAX_BATCH_LIMIT];
	static struct virtio_tmem_op copy[VIRTIO_TMEM_MAX_BATCH_LIMIT];
	static struct vtmem_seg seg[2 + VIRTIO_TMEM_MAX_BATCH_LIMIT];
	const struct vtmem_oid oid = { { 1, 0, 0 } };
	struct virtio_tmem_req_hdr hdr;
	struct vtmem_batch b;
	struct vtmem_parsed p;
	struct vtmem_op_info info;
	unsigned int it, i;
	double t0 = now_ns();

	for (it = 0; it < iters; it++) {
		vtmem_batch_init(&b, &hdr, ops, n, it);
		for (i = 0; i < n; i++)
			vtmem_batch_put(&b, 1, &oid, (uint64_t)it * n + i, true);
		seg[0] = (struct vtmem_seg){ &hdr, sizeof(hdr) };
		seg[1] = (struct vtmem_seg){ ops, n * sizeof(ops[0]) };
		for (i = 0; i < n; i++)
			seg[2 + i] = (struct vtmem_seg){ page, PAGE };
		if (vtmem_parse_batch(seg, 2 + n, vtmem_batch_in_len(&b),
				      VIRTIO_TMEM_MAX_BATCH_LIMIT, copy, &p) ||
		    p.nr_put != n)
			return -1;
		for (i = 0; i < n; i++) {
			if (vtmem_decode_op(&copy[i], (int)i, &info))
				return -1;
			tmem_cost_sink += info.index;
		}
	}
	return (now_ns() - t0) / iters;
}

static int bench_codec(void)
{
	/* one op; the random-order mean (2.7); the sequential mean (52); full */
	static const unsigned int sizes[] = { 1, 3, 52, 128 };
	static uint8_t page[PAGE];
	double v[MAX_REPS];
	char label[64];
	unsigned int k, r;

	printf("codec: a batch of N PUTs, encoded (driver) and copied out, validated and decoded (device)\n");
	for (k = 0; k < ARRAY_SIZE(sizes); k++) {
		unsigned int iters = 2000000 / (sizes[k] + 8);

		if (sizes[k] > VIRTIO_TMEM_MAX_BATCH_LIMIT)
			continue;
		for (r = 0; r < opt.reps; r++) {
			v[r] = codec_pass(sizes[k], iters, page);
			if (v[r] < 0) {
				fprintf(stderr, "tmem-cost-bench: codec refused its own batch\n");
				return 1;
			}
		}
		snprintf(label, sizeof(label), "batch of %u, per batch",
			 sizes[k]);
		report(label, v, opt.reps, "ns");
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tmem-cost-bench [--pages N] [--reps N] [--corpus PATH]...\n"
		"Measures, per 4 KiB page, LZ4 compress and decompress, memcpy,\n"
		"and the store's put and exclusive get (zbud and zsmalloc), on\n"
		"memhog's text and random pages and on pages of the --corpus\n"
		"files (a file, or a directory's files, e.g. the core dumps of\n"
		"scripts/make-heap-corpus.sh); then the wire codec's cost per\n"
		"batch.  Prints the median of the repetitions (CPU time of the\n"
		"thread) with their min and max.\n"
		"  --pages N      pages per data set (default 16384: 64 MiB,\n"
		"                 more than the CPU's caches hold)\n"
		"  --reps N       repetitions, 1..%d (default 9)\n"
		"  --corpus PATH  heap-like pages (without: no heap data set)\n",
		MAX_REPS);
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pages", required_argument, NULL, 'p' },
		{ "reps", required_argument, NULL, 'r' },
		{ "corpus", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			opt.pages = strtoull(optarg, &end, 0);
			if (*end || opt.pages < 1 || opt.pages > (1u << 22))
				goto bad;
			break;
		case 'r':
			opt.reps = (unsigned int)strtoul(optarg, &end, 0);
			if (*end || opt.reps < 1 || opt.reps > MAX_REPS)
				goto bad;
			break;
		case 'c':
			if (opt.nr_corpus == MAX_FILES)
				goto bad;
			opt.corpus[opt.nr_corpus++] = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind == argc)
		return 0;
bad:
	usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	struct dataset d;
	int ret = parse_args(argc, argv);

	if (ret)
		return ret;
	printf("tmem-cost-bench: %zu pages per data set, median of %u repetitions (min, max)\n",
	       opt.pages, opt.reps);
	memset(&d, 0, sizeof(d));
	make_memhog(&d, true);
	if (bench_dataset(&d))
		return 1;
	memset(&d, 0, sizeof(d));
	make_memhog(&d, false);
	if (bench_dataset(&d))
		return 1;
	memset(&d, 0, sizeof(d));
	if (make_heap(&d)) {
		if (bench_dataset(&d))
			return 1;
	} else {
		printf("heap: no --corpus (scripts/make-heap-corpus.sh makes one)\n");
	}
	return bench_codec();
}
