// SPDX-License-Identifier: BSD-3-Clause
/*
 * memhog - write patterned data over more memory than the guest has, then
 * verify it, so that most of it must travel through swap and back.
 *
 * Every 8-byte word encodes its page number, its offset and a per-run
 * seed, so a page that comes back from the wrong place, stale, torn or
 * zeroed is caught and counted.
 *
 * With --pattern text the page is its number and seed followed by text,
 * as compressible as typical data; the default (random) defeats any
 * compressor.
 *
 * --ready-file F is created once everything is written; with --hold-file F
 * memhog then waits for F to exist before it verifies (so that a script
 * can act in between).  --pageout pushes every page out to swap once it is
 * written (madvise(MADV_PAGEOUT)): swap stores without memory pressure, in
 * memhog's own context, so a script can tell when they run.
 *
 * --random SEED writes and verifies the pages in random orders (a new
 * permutation for the write and for each verify pass, drawn from SEED)
 * instead of in address order: every page is still written once and
 * checked once per pass, but the accesses jump over the whole working set
 * as a hash table's or a heap's would, so that swap-in cannot read ahead.
 *
 * --progress MS prints "memhog: progress T PAGES PHASE" at most every MS
 * milliseconds while it works: T the milliseconds since memhog started
 * (CLOCK_MONOTONIC), PAGES the pages written and checked so far, PHASE
 * "write" or "verify N"; a benchmark turns it into pages per second over
 * time.  --stop-file F ends the verify passes once F exists (checked before
 * each pass after the first; --verify-passes stays the most it makes), so
 * that a script can keep the data moving until it has seen what it wanted.
 *
 * --sigbus: a page whose read raises SIGBUS (the kernel lost its data, e.g.
 * a swap-in that failed: BUS_MCEERR_AR) is counted as lost and skipped
 * instead of killing memhog.  Lost is not bad: bad is data that came back
 * wrong, which must never happen.
 *
 * Usage: memhog [--mib N] [--verify-passes N] [--seed N] [--pattern random|text]
 *               [--random SEED] [--ready-file F] [--hold-file F] [--pageout]
 *               [--sigbus] [--progress MS] [--stop-file F]
 * Exit status: 0 if every page verified, 1 if any page was bad, 2 on usage,
 * 3 if none was bad but some were lost (--sigbus).
 */
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21		/* Linux 5.4 */
#endif

static uint64_t word(uint64_t page, uint64_t i, uint64_t seed)
{
	uint64_t x = (page << 20) ^ (i << 3) ^ (seed * 0x9e3779b97f4a7c15ULL);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	return x ^ (x >> 29);
}

static int text_pattern;

/* The expected content of word @i of page @page. */
static uint64_t expect(uint64_t page, uint64_t i, uint64_t seed)
{
	static const char text[] = "virtio-tmem keeps this page compressed ";
	uint64_t w;

	if (!text_pattern || i < 2)
		return word(page, i, seed);
	memcpy(&w, text + (i * 8) % (sizeof(text) - 8), 8);
	return w ^ (i & 0xff);
}

/* --sigbus: where a page check goes back to when its read raises SIGBUS */
static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;
static volatile sig_atomic_t bus_code;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	if (!bus_armed) {
		/* not in a page check: die of it, as without --sigbus */
		signal(sig, SIG_DFL);
		return;
	}
	bus_code = si->si_code;
	siglongjmp(bus_jmp, 1);
}

/* splitmix64: the --random access orders, the same for the same seed */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * The order of the next pass over @pages pages: address order, or with
 * @order (--random) a fresh Fisher-Yates shuffle of it.
 */
static void shuffle(uint64_t *order, uint64_t pages, uint64_t *state)
{
	uint64_t i, j, t;

	if (!order)
		return;
	for (i = 0; i < pages; i++)
		order[i] = i;
	for (i = pages - 1; i > 0; i--) {
		j = next_random(state) % (i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
}

enum { PAGE_OK, PAGE_BAD, PAGE_LOST };

/* --progress: the interval, the next line's time, the pages done so far */
static uint64_t progress_ms, progress_next, progress_pages;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * One more page done in @phase (@pass: the verify pass, 0 while writing);
 * the clock is read every 64 pages, which costs nothing next to a page.
 */
static void progress(unsigned long pass, uint64_t start)
{
	uint64_t t;

	if (!progress_ms || ++progress_pages % 64)
		return;
	t = now_ms() - start;
	if (t < progress_next)
		return;
	progress_next = t + progress_ms;
	if (pass)
		printf("memhog: progress %lu %lu verify %lu\n", (unsigned long)t,
		       (unsigned long)progress_pages, pass);
	else
		printf("memhog: progress %lu %lu write\n", (unsigned long)t,
		       (unsigned long)progress_pages);
	fflush(stdout);
}

/*
 * Check page @p; on PAGE_BAD *@word is the first wrong word.  Nothing that
 * changes after sigsetjmp() is used once it has returned again.
 */
static int check_page(const uint64_t *pg, uint64_t p, uint64_t seed,
		      uint64_t *word)
{
	uint64_t i;

	if (sigsetjmp(bus_jmp, 0)) {
		bus_armed = 0;
		return PAGE_LOST;
	}
	bus_armed = 1;
	for (i = 0; i < PAGE / 8; i++)
		if (pg[i] != expect(p, i, seed))
			break;
	bus_armed = 0;
	*word = i;
	return i < PAGE / 8 ? PAGE_BAD : PAGE_OK;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: memhog [--mib N] [--verify-passes N] [--seed N] [--pattern random|text]\n"
		"              [--random SEED] [--ready-file F] [--hold-file F] [--pageout]\n"
		"              [--sigbus] [--progress MS] [--stop-file F]\n"
		"Writes N MiB (default 512) of patterned data, verifies it N times\n"
		"(default 2), prints bad pages; exit 1 if any.  --pattern text makes\n"
		"pages compressible; --random SEED visits the pages in random orders\n"
		"drawn from SEED (each page still once per pass); --ready-file is created when all is written,\n"
		"--hold-file must exist before verification starts; --pageout\n"
		"pushes the data out to swap once written; --sigbus counts a page\n"
		"whose read raises SIGBUS as lost (exit 3 if no page was bad);\n"
		"--progress MS prints pages done every MS ms; --stop-file F\n"
		"ends the verify passes once F exists (checked between passes).\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "verify-passes", required_argument, NULL, 'v' },
		{ "seed", required_argument, NULL, 's' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "ready-file", required_argument, NULL, 'r' },
		{ "hold-file", required_argument, NULL, 'H' },
		{ "pageout", no_argument, NULL, 'o' },
		{ "sigbus", no_argument, NULL, 'b' },
		{ "random", required_argument, NULL, 'R' },
		{ "progress", required_argument, NULL, 'P' },
		{ "stop-file", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long mib = 512, passes = 2, seed = 1, bad = 0, lost = 0;
	const char *ready_file = NULL, *hold_file = NULL, *stop_file = NULL;
	int pageout = 0, sigbus = 0, random_order = 0;
	uint64_t *mem, *order = NULL, pages, p, n, i, rnd = 0, start = now_ms();
	unsigned long pass;
	int ch;

	while ((ch = getopt_long(argc, argv, "m:v:s:p:r:H:R:P:S:obh", lo, NULL)) != -1) {
		char *end;
		unsigned long v = 0;

		if (ch == 'h') {
			usage(stdout);
			return 0;
		}
		if (ch == 'o') {
			pageout = 1;
			continue;
		}
		if (ch == 'b') {
			sigbus = 1;
			continue;
		}
		if (ch == 'r' || ch == 'H' || ch == 'S') {
			*(ch == 'r' ? &ready_file : ch == 'H' ? &hold_file : &stop_file) = optarg;
			continue;
		}
		if (ch == 'p') {
			if (strcmp(optarg, "text") && strcmp(optarg, "random")) {
				fprintf(stderr, "memhog: --pattern '%s': must be random or text\n",
					optarg);
				return 2;
			}
			text_pattern = !strcmp(optarg, "text");
			continue;
		}
		if (ch == '?') {
			usage(stderr);
			return 2;
		}
		v = strtoul(optarg, &end, 0);
		if (*end || ((ch == 'm' || ch == 'P') && !v)) {
			fprintf(stderr, "memhog: bad value '%s'\n", optarg);
			return 2;
		}
		if (ch == 'm')
			mib = v;
		else if (ch == 'v')
			passes = v;
		else if (ch == 'R')
			random_order = 1, rnd = v;
		else if (ch == 'P')
			progress_ms = v;
		else
			seed = v;
	}
	if (sigbus) {
		struct sigaction sa = { .sa_sigaction = on_sigbus };

		/* SA_NODEFER: siglongjmp() leaves the handler; SIGBUS stays open */
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, NULL)) {
			perror("memhog: sigaction");
			return 2;
		}
	}
	pages = (uint64_t)mib * (1UL << 20) / PAGE;
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("memhog: mmap");
		return 2;
	}
	if (random_order) {
		order = malloc(pages * sizeof(*order));
		if (!order) {
			perror("memhog: malloc");
			return 2;
		}
		printf("memhog: random page order, seed %lu\n", (unsigned long)rnd);
	}
	shuffle(order, pages, &rnd);
	for (n = 0; n < pages; n++) {
		uint64_t *pg;

		p = order ? order[n] : n;
		pg = mem + p * (PAGE / 8);
		for (i = 0; i < PAGE / 8; i++)
			pg[i] = expect(p, i, seed);
		progress(0, start);
		if (n % 16384 == 0)
			printf("memhog: wrote %lu MiB\n",
			       (unsigned long)(n * PAGE >> 20)), fflush(stdout);
	}
	if (pageout && madvise(mem, pages * PAGE, MADV_PAGEOUT)) {
		perror("memhog: madvise(MADV_PAGEOUT)");
		return 2;
	}
	if (ready_file) {
		FILE *f = fopen(ready_file, "w");

		if (!f || fclose(f)) {
			perror(ready_file);
			return 2;
		}
	}
	while (hold_file && access(hold_file, F_OK))
		usleep(100000);
	for (pass = 1; pass <= passes; pass++) {
		unsigned long pass_bad = 0, pass_lost = 0;

		if (pass > 1 && stop_file && !access(stop_file, F_OK)) {
			passes = pass - 1;
			break;
		}

		shuffle(order, pages, &rnd);
		for (n = 0; n < pages; n++) {
			p = order ? order[n] : n;
			progress(pass, start);
			switch (check_page(mem + p * (PAGE / 8), p, seed, &i)) {
			case PAGE_BAD:
				if (pass_bad < 10)
					printf("memhog: bad page %lu (word %lu)\n",
					       (unsigned long)p, (unsigned long)i);
				pass_bad++;
				break;
			case PAGE_LOST:
				if (pass_lost < 10)
					printf("memhog: lost page %lu (SIGBUS, si_code %d)\n",
					       (unsigned long)p, (int)bus_code);
				pass_lost++;
				break;
			}
		}
		printf("memhog: pass %lu: %lu pages, %lu bad", pass,
		       (unsigned long)pages, pass_bad);
		if (sigbus)
			printf(", %lu lost", pass_lost);
		printf("\n");
		fflush(stdout);
		bad += pass_bad;
		lost += pass_lost;
	}
	printf("memhog: %lu MiB, %lu verify passes, %lu bad pages", mib,
	       passes, bad);
	if (sigbus)
		printf(", %lu lost pages", lost);
	printf("\n");
	return bad ? 1 : lost ? 3 : 0;
}
