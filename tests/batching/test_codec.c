/*
 * Codec tests: every op survives build -> parse -> decode; batches of 1 and
 * max_batch ops parse, max_batch + 1 cannot be built or parsed; each way a
 * chain can be malformed is refused with its own reason.
 */
#include <stdint.h>
#include <string.h>

#include "../check.h"
#include "vtmem_codec.h"

#define MAX_BATCH 64

static struct virtio_tmem_req_hdr hdr;
static struct virtio_tmem_op ops[VIRTIO_TMEM_MAX_BATCH_LIMIT + 1];
static struct virtio_tmem_op parsed_ops[VIRTIO_TMEM_MAX_BATCH_LIMIT];
static uint8_t page[VIRTIO_TMEM_PAGE_SIZE];

/* Lay a built batch out as the chain a driver would send: hdr, ops, pages. */
static unsigned int chain(const struct vtmem_batch *b, struct vtmem_seg *seg)
{
	unsigned int n = 0, i;

	seg[n].base = b->hdr;
	seg[n++].len = sizeof(*b->hdr);
	seg[n].base = b->ops;
	seg[n++].len = b->nr_ops * sizeof(*b->ops);
	for (i = 0; i < b->nr_put; i++) {
		seg[n].base = page;
		seg[n++].len = sizeof(page);
	}
	return n;
}

static enum vtmem_batch_error parse(const struct vtmem_batch *b,
				    struct vtmem_parsed *p)
{
	static struct vtmem_seg seg[VIRTIO_TMEM_MAX_BATCH_LIMIT + 3];
	unsigned int n = chain(b, seg);

	return vtmem_parse_batch(seg, n, vtmem_batch_in_len(b), MAX_BATCH,
				 parsed_ops, p);
}

static void test_round_trip_every_op(void)
{
	struct vtmem_oid oid = { { 0x1111, 0x2222222222ull, ~0ull } };
	uint8_t uuid[16];
	struct vtmem_op_info info;
	struct vtmem_parsed p;
	struct vtmem_batch b;
	int i, page_put = 0, page_get = 0;

	for (i = 0; i < 16; i++)
		uuid[i] = (uint8_t)(0xa0 + i);
	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 0x123456789ull);
	CHECK_EQ(vtmem_batch_new_pool(&b, VIRTIO_TMEM_POOL_PERSISTENT |
				      VIRTIO_TMEM_POOL_SHARED, uuid), 0);
	CHECK_EQ(vtmem_batch_put(&b, 3, &oid, 77, true), 1);
	CHECK_EQ(vtmem_batch_get(&b, 3, &oid, 77, true), 2);
	CHECK_EQ(vtmem_batch_flush_page(&b, 3, &oid, 78), 3);
	CHECK_EQ(vtmem_batch_flush_object(&b, 3, &oid), 4);
	CHECK_EQ(vtmem_batch_flush_pool(&b, 3), 5);
	CHECK_EQ(vtmem_batch_destroy_pool(&b, 3), 6);
	CHECK_EQ(vtmem_batch_put(&b, 4, &oid, 1, false), 7);
	CHECK_EQ(vtmem_batch_get(&b, 4, &oid, 1, false), 8);

	CHECK_EQ(parse(&b, &p), VTMEM_BATCH_OK);
	CHECK_EQ(p.nr_ops, 9);
	CHECK_EQ(p.nr_put, 2);
	CHECK_EQ(p.nr_get, 2);
	CHECK_EQ(p.seq, 0x123456789ull);
	CHECK_EQ(p.put_data_off, 16 + 9 * 48);
	CHECK_EQ(p.get_data_off, 24 + 9 * 8);

	for (i = 0; i < (int)p.nr_ops; i++) {
		int dir = vtmem_op_page_dir(parsed_ops[i].opcode);
		int pg = dir > 0 ? page_put++ : dir < 0 ? page_get++ : -1;

		CHECK_EQ(vtmem_decode_op(&parsed_ops[i], pg, &info),
			 VIRTIO_TMEM_S_OK);
		CHECK_EQ(info.page, pg);
		switch (i) {
		case 0:
			CHECK_EQ(info.opcode, VIRTIO_TMEM_OP_NEW_POOL);
			CHECK_EQ(info.flags, VIRTIO_TMEM_POOL_PERSISTENT |
					     VIRTIO_TMEM_POOL_SHARED);
			CHECK(!memcmp(info.uuid, uuid, 16));
			break;
		case 1:
		case 7:
			CHECK_EQ(info.opcode, VIRTIO_TMEM_OP_PUT);
			CHECK_EQ(info.flags, i == 1 ? VIRTIO_TMEM_PUT_CREDIT : 0);
			CHECK_EQ(info.pool_id, i == 1 ? 3 : 4);
			CHECK_EQ(info.index, i == 1 ? 77 : 1);
			CHECK(!memcmp(&info.oid, &oid, sizeof(oid)));
			break;
		case 2:
		case 8:
			CHECK_EQ(info.opcode, VIRTIO_TMEM_OP_GET);
			CHECK_EQ(info.flags, i == 2 ? VIRTIO_TMEM_GET_EXCLUSIVE :
						      0);
			break;
		case 3:
			CHECK_EQ(info.opcode, VIRTIO_TMEM_OP_FLUSH_PAGE);
			CHECK_EQ(info.index, 78);
			break;
		case 4:
			CHECK_EQ(info.opcode, VIRTIO_TMEM_OP_FLUSH_OBJECT);
			CHECK(!memcmp(&info.oid, &oid, sizeof(oid)));
			break;
		case 5:
			CHECK_EQ(info.opcode, VIRTIO_TMEM_OP_FLUSH_POOL);
			CHECK_EQ(info.pool_id, 3);
			break;
		case 6:
			CHECK_EQ(info.opcode, VIRTIO_TMEM_OP_DESTROY_POOL);
			break;
		}
	}
	CHECK_EQ(page_put, 2);
	CHECK_EQ(page_get, 2);
}

static void fill_puts(struct vtmem_batch *b, unsigned int n)
{
	struct vtmem_oid oid = { { 9, 0, 0 } };
	unsigned int i;

	for (i = 0; i < n; i++)
		vtmem_batch_put(b, 1, &oid, i, false);
}

static void test_batch_sizes(void)
{
	struct vtmem_parsed p;
	struct vtmem_batch b;
	struct vtmem_oid oid = { { 1, 0, 0 } };

	/* 1 op */
	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 1);
	vtmem_batch_flush_page(&b, 1, &oid, 0);
	CHECK_EQ(parse(&b, &p), VTMEM_BATCH_OK);
	CHECK_EQ(p.nr_ops, 1);

	/* max: full of puts, the builder refuses one more */
	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 2);
	fill_puts(&b, MAX_BATCH);
	CHECK(vtmem_batch_full(&b));
	CHECK_EQ(vtmem_batch_put(&b, 1, &oid, 0, false), -1);
	CHECK_EQ(parse(&b, &p), VTMEM_BATCH_OK);
	CHECK_EQ(p.nr_put, MAX_BATCH);
	CHECK_EQ(vtmem_batch_out_len(&b), 16 + MAX_BATCH * (48 + 4096));

	/* max + 1: a driver that ignores max_batch is refused whole */
	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH + 1, 3);
	fill_puts(&b, MAX_BATCH + 1);
	CHECK_EQ(parse(&b, &p), VTMEM_BATCH_TOO_MANY_OPS);

	/* the protocol's absolute limit holds even for a generous device */
	vtmem_batch_init(&b, &hdr, ops, VIRTIO_TMEM_MAX_BATCH_LIMIT + 1, 4);
	fill_puts(&b, VIRTIO_TMEM_MAX_BATCH_LIMIT + 1);
	{
		struct vtmem_parsed q;

		CHECK_EQ(vtmem_parse_hdr(&hdr, vtmem_batch_out_len(&b),
					 vtmem_batch_in_len(&b), 100000, &q),
			 VTMEM_BATCH_TOO_MANY_OPS);
	}
}

static void test_malformed_chains(void)
{
	struct vtmem_seg seg[8];
	struct vtmem_parsed p;
	struct vtmem_batch b;
	struct vtmem_oid oid = { { 1, 0, 0 } };
	size_t in;
	unsigned int n;

	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 5);
	vtmem_batch_put(&b, 1, &oid, 0, false);
	vtmem_batch_get(&b, 1, &oid, 0, false);
	n = chain(&b, seg);
	in = vtmem_batch_in_len(&b);

	CHECK_EQ(vtmem_parse_batch(seg, n, in, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_OK);
	/* writable part off by one either way, or too small for a header */
	CHECK_EQ(vtmem_parse_batch(seg, n, in - 1, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_IN_LEN);
	CHECK_EQ(vtmem_parse_batch(seg, n, in + 1, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_IN_LEN);
	CHECK_EQ(vtmem_parse_batch(seg, n, 23, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_NO_RESP);
	/* readable part: page short by one, missing, header cut */
	seg[2].len--;
	CHECK_EQ(vtmem_parse_batch(seg, n, in, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_OUT_LEN);
	seg[2].len++;
	CHECK_EQ(vtmem_parse_batch(seg, n - 1, in, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_OUT_LEN);
	CHECK_EQ(vtmem_parse_batch(seg, 1, in, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_SHORT_OPS);
	seg[0].len = 15;
	CHECK_EQ(vtmem_parse_batch(seg, 1, in, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_SHORT_HDR);
	seg[0].len = 16;
	/* header fields */
	hdr.flags = vtmem_cpu_to_le16(1);
	CHECK_EQ(vtmem_parse_batch(seg, n, in, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_BAD_FLAGS);
	hdr.flags = 0;
	hdr.nr_ops = 0;
	CHECK_EQ(vtmem_parse_batch(seg, n, in, MAX_BATCH, parsed_ops, &p),
		 VTMEM_BATCH_NO_OPS);
	hdr.nr_ops = vtmem_cpu_to_le16(2);
	/* the same bytes split at odd places parse the same */
	{
		static uint8_t flat[16 + 96 + 4096];
		struct vtmem_seg odd[5];

		memcpy(flat, &hdr, 16);
		memcpy(flat + 16, ops, 96);
		odd[0].base = flat;
		odd[0].len = 3;
		odd[1].base = flat + 3;
		odd[1].len = 50;
		odd[2].base = flat + 53;
		odd[2].len = 0;
		odd[3].base = flat + 53;
		odd[3].len = 1000;
		odd[4].base = flat + 1053;
		odd[4].len = sizeof(flat) - 1053;
		CHECK_EQ(vtmem_parse_batch(odd, 5, in, MAX_BATCH, parsed_ops,
					   &p), VTMEM_BATCH_OK);
		CHECK_EQ(p.nr_put, 1);
		CHECK_EQ(p.nr_get, 1);
	}
	CHECK(strcmp(vtmem_batch_error_str(VTMEM_BATCH_IN_LEN), "ok") != 0);
	CHECK(vtmem_batch_error_str((enum vtmem_batch_error)99) != NULL);
}

static void test_op_validation(void)
{
	struct vtmem_op_info info;
	struct virtio_tmem_op op;
	struct vtmem_oid oid = { { 1, 2, 3 } };
	struct vtmem_batch b;

	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 6);
	vtmem_batch_put(&b, 1, &oid, 0, true);
	op = ops[0];
	op.opcode = 0;
	CHECK_EQ(vtmem_decode_op(&op, -1, &info), VIRTIO_TMEM_S_BAD_OP);
	op.opcode = 200;
	CHECK_EQ(vtmem_decode_op(&op, -1, &info), VIRTIO_TMEM_S_BAD_OP);
	op = ops[0];
	op.flags = 0x80;
	CHECK_EQ(vtmem_decode_op(&op, 0, &info), VIRTIO_TMEM_S_BAD_OP);
	op = ops[0];
	op.reserved1 = vtmem_cpu_to_le64(1);
	CHECK_EQ(vtmem_decode_op(&op, 0, &info), VIRTIO_TMEM_S_BAD_ARG);
	op = ops[0];
	op.reserved0 = vtmem_cpu_to_le16(1);
	CHECK_EQ(vtmem_decode_op(&op, 0, &info), VIRTIO_TMEM_S_BAD_ARG);

	/* FLUSH_OBJECT carries no index */
	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 7);
	vtmem_batch_flush_object(&b, 1, &oid);
	op = ops[0];
	op.u.key.index = vtmem_cpu_to_le64(5);
	CHECK_EQ(vtmem_decode_op(&op, -1, &info), VIRTIO_TMEM_S_BAD_ARG);
	/* pool-wide ops carry no key */
	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 8);
	vtmem_batch_flush_pool(&b, 1);
	op = ops[0];
	op.u.key.oid[1] = 1;
	CHECK_EQ(vtmem_decode_op(&op, -1, &info), VIRTIO_TMEM_S_BAD_ARG);
	/* NEW_POOL: page size, uuid only when shared, no pool id, flags */
	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 9);
	vtmem_batch_new_pool(&b, 0, NULL);
	CHECK_EQ(vtmem_decode_op(&ops[0], -1, &info), VIRTIO_TMEM_S_OK);
	op = ops[0];
	op.u.pool.page_size = vtmem_cpu_to_le32(8192);
	CHECK_EQ(vtmem_decode_op(&op, -1, &info), VIRTIO_TMEM_S_BAD_ARG);
	op = ops[0];
	op.u.pool.uuid[3] = 1;
	CHECK_EQ(vtmem_decode_op(&op, -1, &info), VIRTIO_TMEM_S_BAD_ARG);
	op = ops[0];
	op.pool_id = vtmem_cpu_to_le32(2);
	CHECK_EQ(vtmem_decode_op(&op, -1, &info), VIRTIO_TMEM_S_BAD_ARG);
	op = ops[0];
	op.flags = 4;
	CHECK_EQ(vtmem_decode_op(&op, -1, &info), VIRTIO_TMEM_S_BAD_OP);
	/* a bad PUT still owns its page slot */
	CHECK_EQ(vtmem_op_page_dir(VIRTIO_TMEM_OP_PUT), 1);
	CHECK_EQ(vtmem_op_page_dir(VIRTIO_TMEM_OP_GET), -1);
	CHECK_EQ(vtmem_op_page_dir(0xff), 0);
}

/* vtmem_op_key() returns each op's key and scope; covers() matches them. */
static void test_op_key(void)
{
	struct vtmem_oid oid = { { 0x1111, 0x2222222222ull, ~0ull } };
	struct vtmem_oid other = { { 0x1111, 0x2222222222ull, 7 } };
	struct vtmem_key k, same = { 9, oid, 77 }, next = { 9, oid, 78 };
	struct vtmem_key far = { 9, other, 77 }, pool8 = { 8, oid, 77 };
	struct vtmem_batch b;
	enum vtmem_key_scope sc;
	unsigned int i;

	vtmem_batch_init(&b, &hdr, ops, MAX_BATCH, 1);
	vtmem_batch_put(&b, 9, &oid, 77, true);
	vtmem_batch_get(&b, 9, &oid, 77, false);
	vtmem_batch_flush_page(&b, 9, &oid, 77);
	vtmem_batch_flush_object(&b, 9, &oid);
	vtmem_batch_flush_pool(&b, 9);
	vtmem_batch_destroy_pool(&b, 9);
	vtmem_batch_new_pool(&b, 0, NULL);
	for (i = 0; i < 3; i++) {
		CHECK_EQ(vtmem_op_key(&ops[i], &k), VTMEM_KEY_PAGE);
		CHECK_EQ(k.pool, 9);
		CHECK(!memcmp(&k.oid, &oid, sizeof(oid)));
		CHECK_EQ(k.index, 77);
		CHECK(vtmem_key_covers(VTMEM_KEY_PAGE, &k, &same));
		CHECK(!vtmem_key_covers(VTMEM_KEY_PAGE, &k, &next));
		CHECK(!vtmem_key_covers(VTMEM_KEY_PAGE, &k, &far));
		CHECK(!vtmem_key_covers(VTMEM_KEY_PAGE, &k, &pool8));
	}
	sc = vtmem_op_key(&ops[3], &k);
	CHECK_EQ(sc, VTMEM_KEY_OBJECT);
	CHECK_EQ(k.index, 0);
	CHECK(vtmem_key_covers(sc, &k, &same) && vtmem_key_covers(sc, &k, &next));
	CHECK(!vtmem_key_covers(sc, &k, &far) && !vtmem_key_covers(sc, &k, &pool8));
	for (i = 4; i < 6; i++) {
		sc = vtmem_op_key(&ops[i], &k);
		CHECK_EQ(sc, VTMEM_KEY_POOL);
		CHECK_EQ(k.pool, 9);
		CHECK_EQ(k.oid.id[0] | k.oid.id[1] | k.oid.id[2] | k.index, 0);
		CHECK(vtmem_key_covers(sc, &k, &far));
		CHECK(!vtmem_key_covers(sc, &k, &pool8));
	}
	sc = vtmem_op_key(&ops[6], &k);
	CHECK_EQ(sc, VTMEM_KEY_NONE);
	CHECK(!vtmem_key_covers(sc, &k, &same));
	ops[7] = ops[0];
	ops[7].opcode = 0xee;
	CHECK_EQ(vtmem_op_key(&ops[7], &k), VTMEM_KEY_NONE);
	CHECK_EQ(k.pool, 0);
}

int main(void)
{
	test_op_key();
	test_round_trip_every_op();
	test_batch_sizes();
	test_malformed_chains();
	test_op_validation();
	return check_report("test_codec");
}
