// SPDX-License-Identifier: BSD-3-Clause
/*
 * tmem-resize-bench - time to shrink a full store, and the memory it gives
 * back to the OS.
 *
 * A store of --from MiB is filled with persistent pages (--persistent of
 * its limit) and ephemeral ones (up to 85%), all compressible text with a random head
 * (about 1.5 KiB each).  Then its limit is set to --to MiB and
 * tmem_shrink() runs until it is within, or until only the guest could
 * free more (no image: the persistent pages it would have to flush are
 * counted).  Once with a swap image in --dir and once without; each run
 * prints the time, the bytes charged and the process's RSS before and
 * after.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tmem.h"

#define PAGE	TMEM_PAGE_SIZE
#define MIB	(1ull << 20)

static struct {
	const char *dir;
	uint64_t from_mib, to_mib;
	unsigned int persistent_pct;
} opt = { .dir = "/tmp", .from_mib = 256, .to_mib = 32,
	  .persistent_pct = 50 };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Resident set of this process, from /proc/self/statm. */
static uint64_t rss_bytes(void)
{
	unsigned long size, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void page_of(uint8_t *p, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	unsigned int i;

	for (i = 0; i < 1024; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	for (; i < PAGE; i++)
		p[i] = "resize bench text "[i % 18];
	memcpy(p, &seed, sizeof(seed));
}

/* Put pages into @pool until @bytes are used or a put fails. */
static uint64_t fill(struct tmem_store *s, int pool, uint64_t bytes,
		     uint64_t seed)
{
	static uint8_t page[PAGE];
	struct tmem_oid oid = { { (uint64_t)pool, 1, 2 } };
	struct iovec v = { page, PAGE };
	struct tmem_stats st;
	uint64_t n;

	for (n = 0;; n++) {
		if (n % 256 == 0) {
			tmem_get_stats(s, &st);
			if (st.used_bytes >= bytes)
				break;
		}
		page_of(page, seed + n);
		if (tmem_put(s, (uint32_t)pool, &oid, n, &v, 1, NULL))
			break;
	}
	return n;
}

static int run(bool image)
{
	char path[512];
	struct tmem_image_config ic = {
		.path = path,
		.size_bytes = 4 * opt.from_mib * MIB,
		.unlink_path = true,
	};
	struct tmem_image *img = NULL;
	struct tmem_store *s;
	struct tmem_config cfg;
	struct tmem_resize st;
	uint64_t np, ne, rss0, rss1, used0;
	double t0, t1;
	int per, eph, ret, err;

	tmem_config_init(&cfg);
	cfg.limit_bytes = opt.from_mib * MIB;
	if (tmem_store_create(&cfg, &s))
		return 1;
	if (image) {
		snprintf(path, sizeof(path), "%s/tmem-resize-bench.%d.img",
			 opt.dir, (int)getpid());
		if (tmem_image_open(&ic, &img, &err) ||
		    tmem_store_attach_image(s, img)) {
			fprintf(stderr, "tmem-resize-bench: image in %s failed\n",
				opt.dir);
			return 1;
		}
	}
	per = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	eph = tmem_new_pool(s, 0, NULL);
	np = fill(s, per, opt.from_mib * MIB / 100 * opt.persistent_pct, 0);
	/* below the writeback thread's high mark (90%) */
	ne = fill(s, eph, opt.from_mib * MIB * 85 / 100, 1ull << 32);
	tmem_resize_status(s, &st);
	used0 = st.used_bytes;
	rss0 = rss_bytes();
	t0 = now();
	tmem_set_limit(s, opt.to_mib * MIB);
	ret = tmem_shrink(s, 0, &st);
	t1 = now();
	rss1 = rss_bytes();
	printf("%-8s %" PRIu64 " persistent + %" PRIu64 " ephemeral pages, "
	       "%" PRIu64 " -> %" PRIu64 " MiB: %.3f s (%s); used %.1f -> "
	       "%.1f MiB; RSS %.1f -> %.1f MiB (%.1f MiB returned)",
	       image ? "image" : "no image", np, ne, opt.from_mib, opt.to_mib,
	       t1 - t0, ret == 0 ? "within" : "guest must flush",
	       used0 / 1048576.0, st.used_bytes / 1048576.0,
	       rss0 / 1048576.0, rss1 / 1048576.0,
	       ((double)rss0 - (double)rss1) / 1048576.0);
	if (ret)
		printf("; %" PRIu64 " persistent pages in excess",
		       st.excess_pages);
	printf("\n");
	tmem_store_destroy(s);
	if (img)
		tmem_image_close(img);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "persistent", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			opt.dir = optarg;
			break;
		case 'f':
			opt.from_mib = strtoull(optarg, NULL, 0);
			break;
		case 't':
			opt.to_mib = strtoull(optarg, NULL, 0);
			break;
		case 'p':
			opt.persistent_pct = (unsigned int)atoi(optarg);
			break;
		default:
			printf("Usage: tmem-resize-bench [--dir DIR] [--from MiB] "
			       "[--to MiB] [--persistent PCT]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (opt.to_mib < 1 || opt.to_mib >= opt.from_mib ||
	    opt.persistent_pct > 90) {
		fprintf(stderr, "tmem-resize-bench: want 1 <= --to < --from, "
			"--persistent <= 90\n");
		return 2;
	}
	return run(true) || run(false);
}
