/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * allocator.h - which allocator the tests' stores use: the environment's
 * TMEM_TEST_ALLOCATOR (zbud or zsmalloc; meson runs the pool tests with
 * each), else the default.
 */
#ifndef VTMEM_TEST_ALLOCATOR_H
#define VTMEM_TEST_ALLOCATOR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmem.h"

static inline void test_pick_allocator(struct tmem_config *cfg)
{
	const char *name = getenv("TMEM_TEST_ALLOCATOR");

	if (!name || !*name)
		return;
	if (!strcmp(name, "zbud")) {
		cfg->allocator = TMEM_ALLOC_ZBUD;
	} else if (!strcmp(name, "zsmalloc")) {
		cfg->allocator = TMEM_ALLOC_ZSMALLOC;
	} else {
		fprintf(stderr, "TMEM_TEST_ALLOCATOR=%s: must be zbud or "
			"zsmalloc\n", name);
		exit(2);
	}
}

#endif
