/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check.h - minimal assertions for the C tests: a failed CHECK prints where
 * and what, and the test exits non-zero at the end (or at once for REQUIRE).
 */
#ifndef VTMEM_CHECK_H
#define VTMEM_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long check_failures, check_count;

#define CHECK(cond) do {						\
	check_count++;							\
	if (!(cond)) {							\
		check_failures++;					\
		fprintf(stderr, "%s:%d: CHECK failed: %s\n",		\
			__FILE__, __LINE__, #cond);			\
	}								\
} while (0)

#define CHECK_EQ(a, b) do {						\
	long long _a = (long long)(a), _b = (long long)(b);		\
	check_count++;							\
	if (_a != _b) {							\
		check_failures++;					\
		fprintf(stderr, "%s:%d: CHECK failed: %s == %s "	\
			"(%lld != %lld)\n", __FILE__, __LINE__, #a, #b,	\
			_a, _b);					\
	}								\
} while (0)

#define REQUIRE(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: REQUIRE failed: %s\n",		\
			__FILE__, __LINE__, #cond);			\
		exit(1);						\
	}								\
} while (0)

static inline int check_report(const char *name)
{
	printf("%s: %lu checks, %lu failed\n", name, check_count,
	       check_failures);
	return check_failures ? 1 : 0;
}

/* One named test of a program's table (check_run()). */
struct check_test {
	const char *name;
	void (*fn)(void);
};

#define CHECK_TABLE(t) (t), sizeof(t) / sizeof((t)[0])

/*
 * Runs the test that argv[1] names or, without an argument, every test
 * but @not_by_default (NULL: every test).  A name that matches no test
 * gets the list of names and exit status 2.
 */
static inline void check_run(const struct check_test *tests, size_t n,
			     int argc, char **argv,
			     void (*not_by_default)(void))
{
	size_t i, ran = 0;

	for (i = 0; i < n; i++) {
		if (argc > 1 ? strcmp(argv[1], tests[i].name) != 0 :
			       tests[i].fn == not_by_default)
			continue;
		tests[i].fn();
		ran++;
	}
	if (ran)
		return;
	fprintf(stderr, "%s: no test '%s'; the tests:", argv[0],
		argc > 1 ? argv[1] : "");
	for (i = 0; i < n; i++)
		fprintf(stderr, " %s", tests[i].name);
	fprintf(stderr, "\n");
	exit(2);
}

/* A file name in $TMPDIR (or /tmp) that no other test process uses. */
static inline void check_temp_path(char *buf, size_t size, const char *stem)
{
	const char *dir = getenv("TMPDIR");

	snprintf(buf, size, "%s/%s.%d.img", dir ? dir : "/tmp", stem,
		 (int)getpid());
}

#endif
