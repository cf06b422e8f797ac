/*
 * Radix index against a flat model: random inserts, replaces, deletes and
 * lookups over small, large and 64-bit indices; every node is freed once the
 * tree is empty, and a failing allocator leaves the tree unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "radix.h"

#define NKEYS 4096

static long live_nodes;
static int fail_after = -1;

static struct radix_node *nalloc(void *opaque)
{
	(void)opaque;
	if (fail_after == 0)
		return NULL;
	if (fail_after > 0)
		fail_after--;
	live_nodes++;
	return calloc(1, sizeof(struct radix_node));
}

static void nfree(void *opaque, struct radix_node *n)
{
	(void)opaque;
	live_nodes--;
	free(n);
}

static const struct radix_alloc A = { nalloc, nfree, NULL };

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct radix_item items[NKEYS];
static int present[NKEYS];

static uint64_t key_of(unsigned int i)
{
	switch (i % 4) {
	case 0: return i;			/* dense */
	case 1: return (uint64_t)i << 20;	/* sparse */
	case 2: return ~0ull - i;		/* top of the range */
	default: return (uint64_t)i * 0x9e3779b97f4a7c15ull;
	}
}

static void count_cb(struct radix_item *it, void *arg)
{
	(void)it;
	(*(long *)arg)++;
}

int main(void)
{
	struct radix_root root = { NULL, 0 };
	struct radix_item *old;
	long n, drained = 0;
	unsigned int i, k;

	for (i = 0; i < NKEYS; i++)
		items[i].index = key_of(i);
	for (n = 0; n < 400000; n++) {
		k = (unsigned int)(next() % NKEYS);
		switch (next() % 3) {
		case 0:
			CHECK_EQ(radix_insert(&root, &items[k], &A, &old), 0);
			CHECK(old == (present[k] ? &items[k] : NULL));
			present[k] = 1;
			break;
		case 1:
			CHECK(radix_delete(&root, items[k].index, &A) ==
			      (present[k] ? &items[k] : NULL));
			present[k] = 0;
			break;
		default:
			CHECK(radix_lookup(&root, items[k].index) ==
			      (present[k] ? &items[k] : NULL));
		}
	}
	/* a failed node allocation changes nothing */
	for (i = 0; i < NKEYS; i++)
		if (!present[i])
			break;
	fail_after = 0;
	if (i < NKEYS && radix_nodes_needed(&root, items[i].index)) {
		CHECK_EQ(radix_insert(&root, &items[i], &A, &old), -1);
		CHECK(radix_lookup(&root, items[i].index) == NULL);
	}
	fail_after = -1;
	for (i = 0; i < NKEYS; i++)
		CHECK(radix_lookup(&root, items[i].index) ==
		      (present[i] ? &items[i] : NULL));
	for (i = 0; i < NKEYS; i++)
		if (present[i] && (i & 1)) {
			CHECK(radix_delete(&root, items[i].index, &A) ==
			      &items[i]);
			present[i] = 0;
		}
	radix_drain(&root, &A, count_cb, &drained);
	for (i = 0, n = 0; i < NKEYS; i++)
		n += present[i];
	CHECK_EQ(drained, n);
	CHECK_EQ(live_nodes, 0);
	CHECK(root.ptr == NULL);

	/* one item lives in the root; two need nodes; back to one: none */
	radix_insert(&root, &items[5], &A, &old);
	CHECK_EQ(live_nodes, 0);
	CHECK(radix_slot(&root, items[5].index) == &root.ptr);
	CHECK(radix_slot(&root, items[9].index) == NULL);
	radix_insert(&root, &items[9], &A, &old);
	CHECK(live_nodes > 0);
	/* a slot takes an item of the same index in place */
	{
		struct radix_item twin = { items[9].index };
		void **slot = radix_slot(&root, items[9].index);

		REQUIRE(slot && *slot == &items[9]);
		*slot = &twin;
		CHECK(radix_lookup(&root, items[9].index) == &twin);
		*slot = &items[9];
	}
	CHECK(radix_slot(&root, items[9].index + 1) == NULL);
	radix_delete(&root, items[9].index, &A);
	CHECK_EQ(live_nodes, 0);
	CHECK(radix_lookup(&root, items[5].index) == &items[5]);
	radix_delete(&root, items[5].index, &A);
	CHECK(root.ptr == NULL);
	return check_report("test_radix");
}
