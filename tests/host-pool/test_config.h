/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_config.h - the settings the store tests start from: the defaults,
 * with the compressor that $TMEM_TEST_COMPRESSOR names ("lz4", "zstd",
 * "zstd:LEVEL" or "none"; unset: the default) and the allocator that
 * $TMEM_TEST_ALLOCATOR names ("zbud" or "zsmalloc"), so that one test
 * binary runs against each of them (tests/meson.build).
 */
#ifndef TMEM_TEST_CONFIG_H
#define TMEM_TEST_CONFIG_H

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

static inline void test_config_init(struct tmem_config *cfg)
{
	const char *c = getenv("TMEM_TEST_COMPRESSOR");

	tmem_config_init(cfg);
	test_pick_allocator(cfg);
	if (!c || !strcmp(c, "lz4"))
		return;
	if (!strcmp(c, "none")) {
		cfg->compressor = TMEM_COMP_NONE;
	} else if (!strncmp(c, "zstd", 4) && (!c[4] || c[4] == ':')) {
		cfg->compressor = TMEM_COMP_ZSTD;
		if (c[4])
			cfg->zstd_level = atoi(c + 5);
	} else {
		fprintf(stderr,
			"TMEM_TEST_COMPRESSOR=%s: must be lz4, zstd[:LEVEL] or none\n",
			c);
		exit(2);
	}
}

#endif
