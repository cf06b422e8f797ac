/*
 * Built with -ffreestanding -nostdinc -D__KERNEL__ against tests/kstub, the
 * way Kbuild sees the header and the codec: records the layout as data, and
 * pulls the codec in so that it must compile and link freestanding too.
 */
#include "vtmem_codec.h"
#include "layout_fields.h"

const unsigned long vtmem_layout_kernel[] = {
	VTMEM_LAYOUT_STRUCTS(VTMEM_LAYOUT_S)
	VTMEM_LAYOUT_FIELDS(VTMEM_LAYOUT_F)
};
const unsigned long vtmem_layout_kernel_len =
	sizeof(vtmem_layout_kernel) / sizeof(vtmem_layout_kernel[0]);

/* The kernel-mode codec under another name, so both can be linked. */
size_t vtmem_kernel_build_and_measure(void);
size_t vtmem_kernel_build_and_measure(void)
{
	static struct virtio_tmem_req_hdr hdr;
	static struct virtio_tmem_op ops[4];
	struct vtmem_oid oid = { { 1, 2, 3 } };
	struct vtmem_batch b;

	vtmem_batch_init(&b, &hdr, ops, 4, 7);
	vtmem_batch_put(&b, 1, &oid, 5, true);
	vtmem_batch_get(&b, 1, &oid, 5, false);
	return vtmem_batch_out_len(&b) + vtmem_batch_in_len(&b);
}
