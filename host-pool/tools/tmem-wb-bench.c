// SPDX-License-Identifier: BSD-3-Clause
/*
 * tmem-wb-bench - writeback and read-back throughput of a store with a
 * swap image, against raw 4 KiB sequential writes and reads of a file in
 * the same directory, measured in the same run.
 *
 * The store gets a small limit, so almost every page it is given goes
 * through the image: puts pay for compression and writeback, gets for the
 * read, checksum and decompression.  The pages are synthetic text with a
 * random head, compressing to about 1.5 KiB (two per frame).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tmem.h"

#define PAGE	TMEM_PAGE_SIZE

static struct {
	const char *dir;
	uint64_t pages;
	uint64_t limit_mib;
	bool direct;
} opt = { .pages = 65536, .limit_mib = 16 };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void page_fill(uint8_t *p, uint64_t n)
{
	uint64_t x = n * 0x9e3779b97f4a7c15ull + 1;
	unsigned int i;

	for (i = 0; i < 1200; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	for (; i < PAGE; i++)
		p[i] = "swap page text, somewhat repetitive "[i % 36];
	memcpy(p, &n, sizeof(n));
}

static void die(const char *what, const char *path, int err)
{
	fprintf(stderr, "tmem-wb-bench: %s %s: %s\n", what, path,
		strerror(err));
	exit(1);
}

/* Raw sequential 4 KiB writes, then reads, of @n pages: pages/s each. */
static void raw_io(const char *path, uint64_t n, double *wr, double *rd)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC |
		      (opt.direct ? O_DIRECT : 0), 0600);
	uint8_t *buf;
	uint64_t i;
	double t;

	if (fd < 0)
		die("cannot create", path, errno);
	if (posix_memalign((void **)&buf, PAGE, PAGE))
		die("out of memory for", path, ENOMEM);
	page_fill(buf, 1);
	t = now();
	for (i = 0; i < n; i++)
		if (pwrite(fd, buf, PAGE, (off_t)(i * PAGE)) != PAGE)
			die("cannot write", path, errno);
	*wr = n / (now() - t);
	t = now();
	for (i = 0; i < n; i++)
		if (pread(fd, buf, PAGE, (off_t)(i * PAGE)) != PAGE)
			die("cannot read", path, errno);
	*rd = n / (now() - t);
	close(fd);
	unlink(path);
	free(buf);
}

struct wb_result {
	double put, get;		/* pages/s */
	double frames_written;		/* frames/s during the puts */
	struct tmem_stats st;
};

static void store_io(const char *path, uint64_t n, struct wb_result *r)
{
	struct tmem_image_config ic = {
		.path = path,
		.size_bytes = (n + 4096) * PAGE,
		.unlink_path = true,
		.direct = opt.direct,
	};
	struct tmem_store *s;
	struct tmem_image *img;
	struct tmem_config cfg;
	struct tmem_oid oid = { { 1, 2, 3 } };
	uint8_t page[PAGE], out[PAGE];
	struct iovec v;
	uint64_t i, bad = 0;
	int pool, err = 0, ret;
	double t;

	tmem_config_init(&cfg);
	cfg.limit_bytes = opt.limit_mib << 20;
	if (tmem_store_create(&cfg, &s))
		die("cannot create a store for", path, EINVAL);
	ret = tmem_image_open(&ic, &img, &err);
	if (ret)
		die("cannot open image", path, err ? err : EINVAL);
	if (tmem_store_attach_image(s, img))
		die("cannot attach image", path, EINVAL);
	pool = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	t = now();
	for (i = 0; i < n; i++) {
		page_fill(page, i);
		v = (struct iovec){ page, PAGE };
		if (tmem_put(s, (uint32_t)pool, &oid, i, &v, 1, NULL))
			bad++;
	}
	r->put = n / (now() - t);
	tmem_get_stats(s, &r->st);
	r->frames_written = r->st.image.frames_written / (now() - t);
	t = now();
	for (i = 0; i < n; i++) {
		v = (struct iovec){ out, PAGE };
		if (tmem_get(s, (uint32_t)pool, &oid, i, &v, 1,
			     TMEM_GET_EXCLUSIVE)) {
			bad++;
			continue;
		}
		page_fill(page, i);
		bad += memcmp(page, out, PAGE) != 0;
	}
	r->get = n / (now() - t);
	if (bad) {
		fprintf(stderr, "tmem-wb-bench: %" PRIu64 " pages refused or "
			"read back wrong\n", bad);
		exit(1);
	}
	tmem_store_destroy(s);
	tmem_image_close(img);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tmem-wb-bench [--dir DIR] [--pages N] [--limit MIB] "
		"[--direct]\n"
		"Writeback and read-back throughput of a store with a swap "
		"image in DIR\n(default $TMPDIR or /tmp), against raw 4 KiB "
		"writes and reads of a file there.\n"
		"  --pages N    pages put and got back (default 65536)\n"
		"  --limit MIB  the store's limit (default 16)\n"
		"  --direct     O_DIRECT for the image and the raw file\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "dir", 1, NULL, 'd' }, { "pages", 1, NULL, 'n' },
		{ "limit", 1, NULL, 'l' }, { "direct", 0, NULL, 'D' },
		{ "help", 0, NULL, 'h' }, { 0 }
	};
	char img_path[4096], raw_path[4096];
	struct wb_result r;
	double raw_wr, raw_rd;
	int c;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		char *end = NULL;

		switch (c) {
		case 'd':
			opt.dir = optarg;
			break;
		case 'n':
			opt.pages = strtoull(optarg, &end, 0);
			break;
		case 'l':
			opt.limit_mib = strtoull(optarg, &end, 0);
			break;
		case 'D':
			opt.direct = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (end && (*end || !opt.pages || !opt.limit_mib)) {
			fprintf(stderr, "tmem-wb-bench: bad value '%s' for "
				"--%s\n", optarg, c == 'n' ? "pages" : "limit");
			return 2;
		}
	}
	if (!opt.dir)
		opt.dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(img_path, sizeof(img_path), "%s/tmem-wb-bench.%d.img",
		 opt.dir, (int)getpid());
	snprintf(raw_path, sizeof(raw_path), "%s/tmem-wb-bench.%d.raw",
		 opt.dir, (int)getpid());
	raw_io(raw_path, opt.pages, &raw_wr, &raw_rd);
	store_io(img_path, opt.pages, &r);
	printf("tmem-wb-bench: %" PRIu64 " pages through a %" PRIu64
	       " MiB store, image in %s%s\n", opt.pages, opt.limit_mib,
	       opt.dir, opt.direct ? " (O_DIRECT)" : " (page cache)");
	printf("  pages written back    %" PRIu64 " in %" PRIu64
	       " frames (%.2f pages/frame)\n", r.st.image.pages_written,
	       r.st.image.frames_written,
	       (double)r.st.image.pages_written /
	       (double)(r.st.image.frames_written ? r.st.image.frames_written : 1));
	printf("  put with writeback    %10.0f pages/s   raw 4 KiB write %10.0f "
	       "pages/s  (%.2fx)\n", r.put, raw_wr, r.put / raw_wr);
	printf("  frames written        %10.0f frames/s  raw 4 KiB write %10.0f "
	       "pages/s  (%.2fx)\n", r.frames_written, raw_wr,
	       r.frames_written / raw_wr);
	printf("  get from the image    %10.0f pages/s   raw 4 KiB read  %10.0f "
	       "pages/s  (%.2fx)\n", r.get, raw_rd, r.get / raw_rd);
	return 0;
}
