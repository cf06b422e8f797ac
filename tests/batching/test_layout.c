/*
 * The wire structures have the same layout in the freestanding kernel-style
 * build and in this userspace build, and the kernel-style codec computes
 * the same batch lengths.
 */
#include <string.h>

#include "../check.h"
#include "virtio_tmem.h"
#include "layout_fields.h"

extern const unsigned long vtmem_layout_kernel[];
extern const unsigned long vtmem_layout_kernel_len;
size_t vtmem_kernel_build_and_measure(void);

static const unsigned long layout_user[] = {
	VTMEM_LAYOUT_STRUCTS(VTMEM_LAYOUT_S)
	VTMEM_LAYOUT_FIELDS(VTMEM_LAYOUT_F)
};

int main(void)
{
	size_t n = sizeof(layout_user) / sizeof(layout_user[0]), i;

	CHECK_EQ(vtmem_layout_kernel_len, n);
	for (i = 0; i < n && i < vtmem_layout_kernel_len; i++)
		CHECK_EQ(vtmem_layout_kernel[i], layout_user[i]);
	/* hdr 16 + 2 ops * 48 + 1 put page; resp 24 + 2 * 8 + 1 get page */
	CHECK_EQ(vtmem_kernel_build_and_measure(),
		 16 + 96 + 4096 + 24 + 16 + 4096);
	return check_report("test_layout");
}
