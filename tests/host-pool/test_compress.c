/*
 * Unit tests of compress.c, for every compressor: round trips of real
 * pages (this test's own executable) and of every test page shape, the
 * bound on the output, zero and incompressible pages, corrupt, truncated
 * and wrong-sized input refused without overrun (run it under ASan: every
 * buffer is allocated to its exact size), and zstd's per-thread contexts
 * (level changes, other threads, freed at thread exit).
 */
#define ZSTD_STATIC_LINKING_ONLY	/* to make wrong-sized frames */
#include <lz4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "../check.h"
#include "compress.h"
#include "pages.h"

#define MAX_CORPUS	96

static uint8_t *corpus[MAX_CORPUS];
static unsigned int corpus_nr;

/* Real pages: the first ones of this executable, whatever it is. */
static void corpus_load(void)
{
	FILE *f = fopen("/proc/self/exe", "rb");

	REQUIRE(f);
	while (corpus_nr < MAX_CORPUS) {
		uint8_t *p = calloc(1, TMEM_PAGE_SIZE);

		REQUIRE(p);
		if (fread(p, 1, TMEM_PAGE_SIZE, f) == 0) {
			free(p);
			break;
		}
		corpus[corpus_nr++] = p;
	}
	fclose(f);
	REQUIRE(corpus_nr >= 16);
}

static struct tmem_config config(enum tmem_compressor c, int level)
{
	struct tmem_config cfg;

	tmem_config_init(&cfg);
	cfg.compressor = c;
	if (c == TMEM_COMP_ZSTD)
		cfg.zstd_level = level;
	else
		cfg.lz4_acceleration = level;
	REQUIRE(tmem_config_check(&cfg, NULL, 0) == TMEM_CFG_OK);
	return cfg;
}

/*
 * Compress @page into a buffer of exactly max_compressed bytes and back
 * into one of exactly a page.  Return: the compressed length, or 0.
 */
static int round_trip(const struct tmem_config *cfg, const uint8_t *page)
{
	uint8_t *c = malloc(cfg->max_compressed);
	uint8_t *d = malloc(TMEM_PAGE_SIZE);
	int n;

	REQUIRE(c && d);
	n = compress_page(cfg, page, c);
	CHECK(n >= 0 && n <= (int)cfg->max_compressed);
	if (n > 0) {
		uint8_t *exact = malloc((size_t)n);

		REQUIRE(exact);
		memcpy(exact, c, (size_t)n);
		CHECK_EQ(decompress_page(cfg, exact, (unsigned int)n, d), 0);
		CHECK(!memcmp(page, d, TMEM_PAGE_SIZE));
		free(exact);
	}
	free(c);
	free(d);
	return n;
}

static const struct {
	enum tmem_compressor comp;
	int level;
	const char *name;
} compressors[] = {
	{ TMEM_COMP_LZ4, 1, "lz4" },
	{ TMEM_COMP_LZ4, TMEM_LZ4_ACCEL_MAX, "lz4 fastest" },
	{ TMEM_COMP_ZSTD, TMEM_ZSTD_LEVEL_MIN, "zstd 1" },
	{ TMEM_COMP_ZSTD, TMEM_DEFAULT_ZSTD_LEVEL, "zstd default" },
	{ TMEM_COMP_ZSTD, TMEM_ZSTD_LEVEL_MAX, "zstd max" },
};
#define NR_COMPRESSORS	(sizeof(compressors) / sizeof(compressors[0]))

/* Every corpus page and page shape comes back. */
static void test_round_trip(void)
{
	uint8_t page[TMEM_PAGE_SIZE];
	unsigned int i, k, sz;

	for (k = 0; k < NR_COMPRESSORS; k++) {
		struct tmem_config cfg = config(compressors[k].comp,
						compressors[k].level);
		unsigned long total = 0, stored = 0;

		for (i = 0; i < corpus_nr; i++) {
			int n = round_trip(&cfg, corpus[i]);

			total += n ? (unsigned int)n : TMEM_PAGE_SIZE;
			stored += n > 0;
		}
		printf("%-13s %u corpus pages: %lu compressed, %.2f:1\n",
		       compressors[k].name, corpus_nr, stored,
		       (double)corpus_nr * TMEM_PAGE_SIZE / total);
		for (sz = 0; sz <= TMEM_PAGE_SIZE; sz += 256) {
			page_make(page, SHAPE_SIZED, sz, sz);
			round_trip(&cfg, page);
		}
		page_make(page, SHAPE_SAME, 5, 0);
		round_trip(&cfg, page);
	}
}

/*
 * A zero page compresses to a few bytes: zstd's frame has neither magic
 * number nor content size (14 bytes; 19 with them).
 */
static void test_zero_page(void)
{
	uint8_t page[TMEM_PAGE_SIZE] = { 0 };
	struct tmem_config cfg = config(TMEM_COMP_ZSTD, 3);
	int n;

	n = round_trip(&cfg, page);
	CHECK(n > 0 && n <= 14);
	cfg = config(TMEM_COMP_LZ4, 1);
	n = round_trip(&cfg, page);
	CHECK(n > 0 && n <= 32);
	cfg = config(TMEM_COMP_NONE, 1);
	CHECK_EQ(round_trip(&cfg, page), 0);
}

/*
 * Random pages are incompressible, also with max_compressed a whole page
 * (a raw zstd block or LZ4's literals take more); a small bound makes a
 * compressible page incompressible, and nothing is written beyond it.
 */
static void test_bound(void)
{
	uint8_t page[TMEM_PAGE_SIZE], *c = malloc(TMEM_PAGE_SIZE + 64);
	unsigned int k, b, j;

	REQUIRE(c);
	page_make(page, SHAPE_RANDOM, 77, 0);
	for (k = 0; k < NR_COMPRESSORS; k++) {
		struct tmem_config cfg = config(compressors[k].comp,
						compressors[k].level);
		static const unsigned int bounds[] = { 64, 1000, 3072, 4096 };

		cfg.max_compressed = TMEM_MAX_COMPRESSED_MAX;
		CHECK_EQ(round_trip(&cfg, page), 0);
		for (b = 0; b < 4; b++) {
			uint8_t sized[TMEM_PAGE_SIZE];
			int n;

			cfg.max_compressed = bounds[b];
			page_make(sized, SHAPE_SIZED, b, 2000);
			memset(c, 0xa5, TMEM_PAGE_SIZE + 64);
			n = compress_page(&cfg, sized, c);
			CHECK(bounds[b] < 2000 ? n == 0 :
			      n > 2000 || compressors[k].level ==
					      TMEM_LZ4_ACCEL_MAX);
			CHECK(n <= (int)bounds[b]);
			for (j = bounds[b]; j < TMEM_PAGE_SIZE + 64; j++)
				if (c[j] != 0xa5)
					break;
			CHECK_EQ(j, TMEM_PAGE_SIZE + 64);
		}
	}
	free(c);
}

/* @len bytes at a fresh allocation of exactly that size (ASan's bound). */
static int decompress_exact(const struct tmem_config *cfg, const uint8_t *src,
			    unsigned int len)
{
	uint8_t *s = malloc(len ? len : 1), *d = malloc(TMEM_PAGE_SIZE);
	int ret;

	REQUIRE(s && d);
	memcpy(s, src, len);
	ret = decompress_page(cfg, s, len, d);
	free(s);
	free(d);
	return ret;
}

/*
 * Truncated input, a corrupt header and trailing garbage are refused;
 * random damage anywhere is refused or decodes to some page, and never
 * reads or writes out of bounds.
 */
static void test_corrupt(void)
{
	uint8_t c[TMEM_PAGE_SIZE], bad[TMEM_PAGE_SIZE];
	uint64_t x = 12345;
	unsigned int k, i, t;

	for (k = 0; k < NR_COMPRESSORS; k++) {
		struct tmem_config cfg = config(compressors[k].comp,
						compressors[k].level);

		for (i = 0; i < corpus_nr; i += 7) {
			int n = compress_page(&cfg, corpus[i], c);

			if (n <= 0)
				continue;
			CHECK_EQ(decompress_exact(&cfg, c, (unsigned int)n), 0);
			CHECK_EQ(decompress_exact(&cfg, c, (unsigned int)n - 1),
				 -TMEM_E_IO);
			CHECK_EQ(decompress_exact(&cfg, c, (unsigned int)n / 2),
				 -TMEM_E_IO);
			CHECK_EQ(decompress_exact(&cfg, c, 0), -TMEM_E_IO);
			CHECK_EQ(decompress_page(&cfg, c, TMEM_PAGE_SIZE + 1,
						 bad), -TMEM_E_IO);
			memcpy(bad, c, (size_t)n);
			if (cfg.compressor == TMEM_COMP_ZSTD)
				bad[0] |= 0x08;	/* reserved frame header bit */
			else
				memset(bad, 0xff, (size_t)n); /* runaway length */
			CHECK_EQ(decompress_exact(&cfg, bad, (unsigned int)n),
				 -TMEM_E_IO);
			for (t = 0; t < 200; t++) {
				int r;

				memcpy(bad, c, (size_t)n);
				bad[page_rng(&x) % (unsigned int)n] ^=
					(uint8_t)(1u << (page_rng(&x) % 8));
				bad[page_rng(&x) % (unsigned int)n] =
					(uint8_t)page_rng(&x);
				r = decompress_exact(&cfg, bad,
						     (unsigned int)n);
				CHECK(r == 0 || r == -TMEM_E_IO);
			}
		}
		/* with no compressor nothing is compressed data */
		cfg = config(TMEM_COMP_NONE, 1);
		CHECK_EQ(decompress_exact(&cfg, corpus[0], 100), -TMEM_E_IO);
	}
}

/* A zstd frame of @len bytes, as compress.c writes them. */
static size_t zstd_frame(const uint8_t *src, size_t len, uint8_t *dst,
			 size_t cap)
{
	ZSTD_CCtx *z = ZSTD_createCCtx();
	size_t n;

	REQUIRE(z);
	ZSTD_CCtx_setParameter(z, ZSTD_c_format, ZSTD_f_zstd1_magicless);
	ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, 0);
	n = ZSTD_compress2(z, dst, cap, src, len);
	REQUIRE(!ZSTD_isError(n));
	ZSTD_freeCCtx(z);
	return n;
}

/* Valid data of one byte less or more than a page is refused. */
static void test_wrong_size(void)
{
	struct tmem_config lz4 = config(TMEM_COMP_LZ4, 1);
	struct tmem_config zstd = config(TMEM_COMP_ZSTD, 3);
	static uint8_t src[2 * TMEM_PAGE_SIZE], dst[2 * TMEM_PAGE_SIZE];
	size_t sizes[] = { 1, TMEM_PAGE_SIZE - 1, TMEM_PAGE_SIZE,
			   TMEM_PAGE_SIZE + 1, 2 * TMEM_PAGE_SIZE };
	unsigned int i;
	size_t n;

	page_make(src, SHAPE_SIZED, 1, 1000);
	page_make(src + TMEM_PAGE_SIZE, SHAPE_SIZED, 2, 1000);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int want = sizes[i] == TMEM_PAGE_SIZE ? 0 : -TMEM_E_IO;

		n = (size_t)LZ4_compress_default((const char *)src,
						 (char *)dst, (int)sizes[i],
						 (int)sizeof(dst));
		REQUIRE(n > 0 && n <= TMEM_PAGE_SIZE);
		CHECK_EQ(decompress_exact(&lz4, dst, (unsigned int)n), want);
		n = zstd_frame(src, sizes[i], dst, sizeof(dst));
		REQUIRE(n <= TMEM_PAGE_SIZE);
		CHECK_EQ(decompress_exact(&zstd, dst, (unsigned int)n), want);
	}
	/* two whole frames back to back: a page too many */
	n = zstd_frame(src, TMEM_PAGE_SIZE, dst, sizeof(dst));
	REQUIRE(2 * n <= TMEM_PAGE_SIZE);
	memcpy(dst + n, dst, n);
	CHECK_EQ(decompress_exact(&zstd, dst, (unsigned int)(2 * n)),
		 -TMEM_E_IO);
}

/* Total compressed bytes of the corpus at @level; each page checked. */
static unsigned long zstd_total(int level)
{
	struct tmem_config cfg = config(TMEM_COMP_ZSTD, level);
	unsigned long total = 0;
	unsigned int i;

	for (i = 0; i < corpus_nr; i++) {
		int n = round_trip(&cfg, corpus[i]);

		total += n ? (unsigned int)n : TMEM_PAGE_SIZE;
	}
	return total;
}

static void *other_thread(void *arg)
{
	unsigned long *total = arg;

	CHECK_EQ(compress_thread_ready(&(struct tmem_config){
			.compressor = TMEM_COMP_ZSTD }), 0);
	*total = zstd_total(19);
	return NULL;
}

/*
 * A thread's context follows the level of each call, whatever the last
 * one was; other threads have their own (and free them when they exit:
 * LeakSanitizer would see them otherwise).
 */
static void test_zstd_threads(void)
{
	unsigned long one, high, again, in_thread[4];
	pthread_t t[4];
	unsigned int i;

	one = zstd_total(1);
	high = zstd_total(19);
	again = zstd_total(1);
	CHECK(high < one);
	CHECK_EQ(again, one);
	for (i = 0; i < 4; i++)
		REQUIRE(!pthread_create(&t[i], NULL, other_thread,
					&in_thread[i]));
	for (i = 0; i < 4; i++) {
		REQUIRE(!pthread_join(t[i], NULL));
		CHECK_EQ(in_thread[i], high);
	}
	CHECK_EQ(zstd_total(1), one);
}

int main(void)
{
	unsigned int i;

	corpus_load();
	test_round_trip();
	test_zero_page();
	test_bound();
	test_corrupt();
	test_wrong_size();
	test_zstd_threads();
	for (i = 0; i < corpus_nr; i++)
		free(corpus[i]);
	return check_report("test_compress");
}
