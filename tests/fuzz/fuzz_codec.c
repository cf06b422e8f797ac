/*
 * libFuzzer target: the device-side batch parser on hostile chains.
 *
 * Input: le32 writable length, u8 max_batch selector, u8 split count, that
 * many u16 split points, then the device-readable bytes.  Every accepted
 * batch must be internally consistent: its page slots and offsets stay
 * inside the chain it came in.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vtmem_codec.h"

static struct virtio_tmem_op ops[VIRTIO_TMEM_MAX_BATCH_LIMIT];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vtmem_seg seg[17];
	struct vtmem_parsed p;
	struct vtmem_op_info info;
	unsigned int nsplit, nseg = 0, i, max_batch, put = 0, get = 0;
	size_t in_len, off, prev = 0, out_len;
	uint32_t v;

	if (size < 6)
		return 0;
	memcpy(&v, data, 4);
	in_len = v;
	max_batch = 1 + data[4] * 2;
	nsplit = data[5] % 16;
	off = 6;
	if (size < off + 2 * nsplit)
		return 0;
	out_len = size - off - 2 * nsplit;
	for (i = 0; i < nsplit; i++) {
		uint16_t sp;
		size_t at;

		memcpy(&sp, data + off + 2 * i, 2);
		at = out_len ? sp % (out_len + 1) : 0;
		if (at < prev)
			at = prev;
		seg[nseg].base = data + off + 2 * nsplit + prev;
		seg[nseg++].len = at - prev;
		prev = at;
	}
	seg[nseg].base = data + off + 2 * nsplit + prev;
	seg[nseg++].len = out_len - prev;

	if (vtmem_parse_batch(seg, nseg, in_len, max_batch, ops, &p) !=
	    VTMEM_BATCH_OK)
		return 0;
	if (p.nr_ops < 1 || p.nr_ops > max_batch ||
	    p.put_data_off + (size_t)p.nr_put * VIRTIO_TMEM_PAGE_SIZE !=
	    out_len ||
	    p.get_data_off + (size_t)p.nr_get * VIRTIO_TMEM_PAGE_SIZE != in_len)
		abort();
	for (i = 0; i < p.nr_ops; i++) {
		int dir = vtmem_op_page_dir(ops[i].opcode);
		int page = dir > 0 ? (int)put++ : dir < 0 ? (int)get++ : -1;
		unsigned int st = vtmem_decode_op(&ops[i], page, &info);

		if (st > VIRTIO_TMEM_S_DEVICE_ERROR || info.page != page)
			abort();
	}
	if (put != p.nr_put || get != p.nr_get)
		abort();
	return 0;
}
