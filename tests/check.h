/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check.h - minimal assertions for the C tests: a failed CHECK prints where
 * and what, and the test exits non-zero at the end (or at once for REQUIRE).
 */
#ifndef VTMEM_CHECK_H
#define VTMEM_CHECK_H

#include <stdio.h>
#include <stdlib.h>

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

#endif
