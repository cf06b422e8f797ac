// SPDX-License-Identifier: BSD-3-Clause
/*
 * tmem-probe - what fresh memory and LZ4's entry points cost on this host
 *
 * The measurements behind docs/benchmarks.md's account of the growing-pool
 * put: how long the kernel takes to hand out a new 4 KiB page, by every
 * way a pool could ask for one, and whether a cheaper LZ4 call exists.
 * Nothing here uses the store; it bounds what the store can do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <lz4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tmem.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#define PAGE		4096u
#define POOL_BATCH	64u	/* ZBUD_POPULATE_AHEAD */

static struct {
	size_t bytes;
	int rounds;
	unsigned int settle;
	const char *corpus;
	size_t max_pages;
	int accel;
} opt = { 256u << 20, 3, 4, "/usr/lib/x86_64-linux-gnu", 32768,
	    TMEM_DEFAULT_LZ4_ACCEL };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double per_page_ns(double seconds)
{
	return seconds * 1e9 / (double)(opt.bytes / PAGE);
}

static uint8_t *map_fresh(void)
{
	uint8_t *p = mmap(NULL, opt.bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "tmem-probe: mmap of %zu bytes: %s\n",
			opt.bytes, strerror(errno));
		exit(1);
	}
	/* as the pool's arenas: frames are freed one by one */
	madvise(p, opt.bytes, MADV_NOHUGEPAGE);
	return p;
}

static int populate(uint8_t *p, size_t len)
{
	return madvise(p, len, MADV_POPULATE_WRITE);
}

/* Fault in [@p, @p + @len) @batch pages per call; -1 if the kernel can't. */
static double populate_range(uint8_t *p, size_t len, size_t batch)
{
	double t = now();
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = len - off < batch * PAGE ? len - off : batch * PAGE;
		if (populate(p + off, n))
			return -1;
	}
	return now() - t;
}

static double populate_fresh(size_t batch)
{
	uint8_t *p = map_fresh();
	double t = populate_range(p, opt.bytes, batch);

	munmap(p, opt.bytes);
	return t;
}

static double touch_fresh(void)
{
	uint8_t *p = map_fresh();
	double t = now();
	size_t off;

	for (off = 0; off < opt.bytes; off += PAGE)
		((volatile uint8_t *)p)[off] = 1;
	t = now() - t;
	munmap(p, opt.bytes);
	return t;
}

/* Populate POOL_BATCH pages, copy a page into each, as a growing pool does. */
static double populate_and_copy(const uint8_t *src)
{
	uint8_t *p = map_fresh();
	double t = now();
	size_t off, i;

	for (off = 0; off < opt.bytes; off += POOL_BATCH * PAGE) {
		populate(p + off, POOL_BATCH * PAGE);
		for (i = 0; i < POOL_BATCH; i++)
			memcpy(p + off + i * PAGE, src, PAGE);
	}
	t = now() - t;
	munmap(p, opt.bytes);
	return t;
}

/*
 * UFFDIO_COPY allocates each page with the data already in it, so the
 * kernel does not zero it first.  Returns -1 (errno set) if userfaultfd is
 * not to be had.
 */
static double uffd_copy_fresh(const uint8_t *src)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	double t = -1;
	int fd, err = 0;
	uint8_t *p;
	size_t off;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -1;
	p = map_fresh();
	reg.range.start = (unsigned long)p;
	reg.range.len = opt.bytes;
	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg)) {
		err = errno;
		goto out;
	}
	t = now();
	for (off = 0; off < opt.bytes; off += PAGE) {
		struct uffdio_copy c = {
			.dst = (unsigned long)(p + off),
			.src = (unsigned long)src,
			.len = PAGE,
		};

		if (ioctl(fd, UFFDIO_COPY, &c)) {
			err = errno;
			t = -1;
			goto out;
		}
	}
	t = now() - t;
out:
	munmap(p, opt.bytes);
	close(fd);
	errno = err;
	return t;
}

/* ---- two threads faulting in one range -------------------------------- */

struct split {
	uint8_t *p;
	atomic_size_t next;	/* interleaved: next batch to take */
	bool halves;
};

struct split_arg {
	struct split *sp;
	unsigned int part;
};

static void *split_worker(void *arg)
{
	struct split_arg *a = arg;
	struct split *sp = a->sp;
	size_t batch = POOL_BATCH * PAGE, half = opt.bytes / 2, off;

	if (sp->halves) {
		populate_range(sp->p + a->part * half, half, POOL_BATCH);
		return NULL;
	}
	while ((off = atomic_fetch_add(&sp->next, batch)) < opt.bytes)
		populate(sp->p + off, batch);
	return NULL;
}

/* Two threads: each 64-page batch to whichever is free, or a half each. */
static double populate_two_threads(bool halves)
{
	struct split sp = { .p = map_fresh(), .halves = halves };
	struct split_arg a[2] = { { &sp, 0 }, { &sp, 1 } };
	pthread_t tid[2];
	double t = now();
	int i;

	atomic_init(&sp.next, 0);
	for (i = 0; i < 2; i++)
		pthread_create(&tid[i], NULL, split_worker, &a[i]);
	for (i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	t = now() - t;
	munmap(sp.p, opt.bytes);
	return t;
}

/* ---- LZ4 entry points --------------------------------------------------- */

static uint8_t *corpus;
static size_t corpus_pages;

static int load_one(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	ssize_t n;
	int fd;

	(void)st;
	(void)ftw;
	if (type != FTW_F)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (corpus_pages < opt.max_pages) {
		uint8_t *page = corpus + corpus_pages * PAGE;

		n = read(fd, page, PAGE);
		if (n <= 0)
			break;
		memset(page + n, 0, PAGE - (size_t)n);
		corpus_pages++;
		if (n < (ssize_t)PAGE)
			break;
	}
	close(fd);
	return corpus_pages >= opt.max_pages;
}

static void lz4_probe(void)
{
	static char dst[PAGE];
	LZ4_stream_t *stream = LZ4_createStream();
	double best_fast = 1e30, best_cont = 1e30, t;
	size_t i;
	int r;

	corpus = malloc(opt.max_pages * PAGE);
	if (!corpus || !stream) {
		fprintf(stderr, "tmem-probe: out of memory for the corpus\n");
		exit(1);
	}
	if (nftw(opt.corpus, load_one, 16, FTW_PHYS) < 0 || !corpus_pages) {
		fprintf(stderr, "tmem-probe: --corpus %s: no readable file\n",
			opt.corpus);
		exit(1);
	}
	for (r = 0; r < opt.rounds; r++) {
		t = now();
		for (i = 0; i < corpus_pages; i++)
			LZ4_compress_fast((const char *)corpus + i * PAGE, dst,
					  PAGE, TMEM_DEFAULT_MAX_COMPRESSED,
					  opt.accel);
		t = now() - t;
		best_fast = t < best_fast ? t : best_fast;
		t = now();
		for (i = 0; i < corpus_pages; i++) {
			LZ4_resetStream_fast(stream);
			LZ4_compress_fast_continue(stream,
						   (const char *)corpus +
						   i * PAGE, dst, PAGE,
						   TMEM_DEFAULT_MAX_COMPRESSED,
						   opt.accel);
		}
		t = now() - t;
		best_cont = t < best_cont ? t : best_cont;
	}
	printf("\nLZ4, %zu pages of %s, acceleration %d (best of %d):\n",
	       corpus_pages, opt.corpus, opt.accel, opt.rounds);
	printf("  %-50s %8.0f ns/page\n", "LZ4_compress_fast()",
	       best_fast * 1e9 / (double)corpus_pages);
	printf("  %-50s %8.0f ns/page\n",
	       "LZ4_resetStream_fast() + _compress_fast_continue()",
	       best_cont * 1e9 / (double)corpus_pages);
	LZ4_freeStream(stream);
	free(corpus);
}

/* ---- report ------------------------------------------------------------- */

static void row(const char *what, double seconds)
{
	if (seconds < 0)
		printf("  %-50s %8s (%s)\n", what, "n/a", strerror(errno));
	else
		printf("  %-50s %8.0f ns/page\n", what, per_page_ns(seconds));
}

static void fresh_probe(void)
{
	static uint8_t src[PAGE];
	static const size_t batches[] = { 16, 64, 512, 8192 };
	char what[64];
	unsigned int i;
	int r;

	memset(src, 0x5a, sizeof(src));
	printf("fresh memory, %zu MiB, 4 KiB pages (MADV_NOHUGEPAGE):\n",
	       opt.bytes >> 20);
	for (r = 0; r < opt.rounds; r++) {
		printf(" round %d\n", r + 1);
		for (i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
			snprintf(what, sizeof(what),
				 "MADV_POPULATE_WRITE, %zu pages a call",
				 batches[i]);
			row(what, populate_fresh(batches[i]));
		}
		row("touching each page", touch_fresh());
		row("populate right after unmapping as much",
		    populate_fresh(POOL_BATCH));
		sleep(opt.settle);
		snprintf(what, sizeof(what), "populate after %u s idle",
			 opt.settle);
		row(what, populate_fresh(POOL_BATCH));
		row("populate 64, then memcpy a page into each",
		    populate_and_copy(src));
		row("UFFDIO_COPY a page into each (no zeroing)",
		    uffd_copy_fresh(src));
		row("two threads, 64-page batches interleaved (wall)",
		    populate_two_threads(false));
		row("two threads, a half each (wall)",
		    populate_two_threads(true));
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tmem-probe [--mib N] [--rounds N] [--settle S] "
		"[--corpus PATH] [--max-pages N] [--accel N]\n\n"
		"Measures what a growing pool pays for fresh memory, by each "
		"way of asking the\nkernel for it, and two LZ4 entry points on "
		"the same pages.\n\n"
		"  --mib N        memory per fresh-memory measurement "
		"(default 256)\n"
		"  --rounds N     rounds of each (default 3)\n"
		"  --settle S     idle seconds before the settled-memory "
		"figure (default 4)\n"
		"  --corpus PATH  files for the LZ4 figures (default "
		"/usr/lib/x86_64-linux-gnu)\n"
		"  --max-pages N  pages of it to use (default 32768)\n"
		"  --accel N      LZ4 acceleration (default 1)\n"
		"  --help         this text\n");
}

static long number(const char *name, const char *arg, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < min || v > max) {
		fprintf(stderr, "tmem-probe: %s %s: want %ld..%ld\n", name,
			arg, min, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "settle", required_argument, NULL, 's' },
		{ "corpus", required_argument, NULL, 'c' },
		{ "max-pages", required_argument, NULL, 'p' },
		{ "accel", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			opt.bytes = (size_t)number("--mib", optarg, 1,
						   16384) << 20;
			break;
		case 'r':
			opt.rounds = (int)number("--rounds", optarg, 1, 100);
			break;
		case 's':
			opt.settle = (unsigned int)number("--settle", optarg,
							  0, 600);
			break;
		case 'c':
			opt.corpus = optarg;
			break;
		case 'p':
			opt.max_pages = (size_t)number("--max-pages", optarg,
						       1, 1 << 22);
			break;
		case 'a':
			opt.accel = (int)number("--accel", optarg,
						TMEM_LZ4_ACCEL_MIN,
						TMEM_LZ4_ACCEL_MAX);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tmem-probe: unexpected argument %s\n",
			argv[optind]);
		return 2;
	}
	fresh_probe();
	lz4_probe();
	return 0;
}
