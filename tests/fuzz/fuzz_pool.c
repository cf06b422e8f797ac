/*
 * libFuzzer target: the host pool's API driven by arbitrary op programs on
 * a small store, checked against a tiny model of its persistent pool.
 *
 * Each op takes 8 input bytes: op, pool, object, index, page shape, seed,
 * size, iov split.  Pool 0 is ephemeral, 1 persistent, 2 shared, 3 an id
 * that was never created.  Any failed put removes the older page; a get
 * into a buffer that is not one page changes nothing.  A last, partial op
 * picks the store: its length, odd or even, the allocator (zsmalloc or
 * zbud; TMEM_TEST_ALLOCATOR overrides), its first byte the compressor
 * (pick_compressor()); programs of whole ops run with zbud and LZ4.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../host-pool/pages.h"
#include "../host-pool/test_config.h"
#include "tmem.h"

#define NOBJ 4
#define NIDX 8

static uint8_t page[TMEM_PAGE_SIZE], out[TMEM_PAGE_SIZE], want[TMEM_PAGE_SIZE];

struct slot {
	uint8_t used, shape, seed, size;
};

static uint64_t index_of(uint8_t b)
{
	return (b & 0x80) ? ~0ull - (b % NIDX) : (uint64_t)(b % NIDX);
}

static void make(const struct slot *s, uint8_t *buf)
{
	page_make(buf, (enum page_shape)(s->shape % SHAPE__MAX), s->seed,
		  s->size * 16u);
}

/* Split a page in one or two pieces; 0xff: a byte short (refused). */
static int split(uint8_t *buf, uint8_t how, struct iovec *v)
{
	unsigned int a = how * 16u;

	if (how == 0xff)
		return (v[0] = (struct iovec){ buf, TMEM_PAGE_SIZE - 1 }), 1;
	if (!(how & 1) || a == 0)
		return (v[0] = page_iov(buf)), 1;
	v[0] = (struct iovec){ buf, a };
	v[1] = (struct iovec){ buf + a, TMEM_PAGE_SIZE - a };
	return 2;
}

/* A partial op's first byte b: b % 3 = 1 zstd at level 1..9, 2 none. */
static void pick_compressor(const uint8_t *data, size_t size,
			    struct tmem_config *cfg)
{
	uint8_t b;

	if (size % 8 == 0)
		return;
	b = data[size - size % 8];
	if (b % 3 == 1) {
		cfg->compressor = TMEM_COMP_ZSTD;
		cfg->zstd_level = 1 + (b / 3) % 9;
	} else if (b % 3 == 2) {
		cfg->compressor = TMEM_COMP_NONE;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct slot model[NOBJ][2 * NIDX];
	struct tmem_uuid u = { { 7 } };
	struct tmem_config cfg;
	struct tmem_store *s;
	struct tmem_stats st;
	int pool[4];
	size_t at;

	tmem_config_init(&cfg);
	cfg.allocator = (size % 8) & 1 ? TMEM_ALLOC_ZSMALLOC : TMEM_ALLOC_ZBUD;
	test_pick_allocator(&cfg);
	cfg.limit_bytes = 1 << 20;
	cfg.max_pools = 4;
	pick_compressor(data, size, &cfg);
	if (tmem_store_create(&cfg, &s))
		abort();
	pool[0] = tmem_new_pool(s, 0, NULL);
	pool[1] = tmem_new_pool(s, TMEM_POOL_PERSISTENT, NULL);
	pool[2] = tmem_new_pool(s, TMEM_POOL_SHARED, &u);
	pool[3] = 3;
	memset(model, 0, sizeof(model));

	for (at = 0; at + 8 <= size; at += 8) {
		const uint8_t *op = data + at;
		unsigned int p = op[1] % 4, o = op[2] % NOBJ;
		uint64_t idx = index_of(op[3]);
		unsigned int mi = (unsigned int)((op[3] & 0x80) ? NIDX : 0) +
				  op[3] % NIDX;
		struct tmem_oid oid = { { o, 0, 0 } };
		struct slot sl = { 1, op[4], op[5], op[6] };
		struct iovec v[2];
		int n, r;

		switch (op[0] % 6) {
		case 0:
			make(&sl, page);
			n = split(page, op[7], v);
			r = tmem_put(s, (uint32_t)pool[p], &oid, idx, v, n,
				     NULL);
			if (p == 1)
				model[o][mi] = r ? (struct slot){ 0 } : sl;
			break;
		case 1:
			n = split(out, op[7], v);
			r = tmem_get(s, (uint32_t)pool[p], &oid, idx, v, n,
				     op[4] & 1);
			if (op[7] == 0xff && r != -TMEM_E_IOV)
				abort();
			if (p != 1 || op[7] == 0xff)
				break;
			if (!model[o][mi].used) {
				if (r != -TMEM_E_NOT_FOUND)
					abort();
				break;
			}
			make(&model[o][mi], want);
			if (r || memcmp(want, out, TMEM_PAGE_SIZE))
				abort();
			if (op[4] & 1)
				model[o][mi].used = 0;
			break;
		case 2:
			r = tmem_flush_page(s, (uint32_t)pool[p], &oid, idx);
			if (p == 1) {
				if (r != model[o][mi].used)
					abort();
				model[o][mi].used = 0;
			}
			break;
		case 3:
			tmem_flush_object(s, (uint32_t)pool[p], &oid, NULL);
			if (p == 1)
				memset(model[o], 0, sizeof(model[o]));
			break;
		case 4:
			if (p != 1)
				tmem_flush_pool(s, (uint32_t)pool[p], NULL);
			break;
		default:
			tmem_get_stats(s, &st);
			if (st.used_bytes > st.limit_bytes)
				abort();
		}
	}
	tmem_get_stats(s, &st);
	if (st.used_bytes > st.limit_bytes)
		abort();
	tmem_store_destroy(s);
	return 0;
}
