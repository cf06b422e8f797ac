/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef _LINUX_VIRTIO_TMEM_H
#define _LINUX_VIRTIO_TMEM_H
/*
 * virtio-tmem: transcendent memory for virtual machines.
 *
 * The one definition of the virtio-tmem wire format, shared by the Linux
 * driver and the QEMU device.  Every field is little-endian; no structure is
 * packed: padding is explicit and every size and offset is asserted at the
 * end of this file.  docs/virtio-tmem-spec.md is the normative text.
 *
 * A request is one descriptor chain carrying a batch:
 *
 *   device-readable:  virtio_tmem_req_hdr
 *                     virtio_tmem_op[nr_ops]
 *                     one page for each PUT, in op order
 *   device-writable:  virtio_tmem_resp_hdr
 *                     virtio_tmem_op_status[nr_ops]
 *                     one page for each GET, in op order
 *
 * Buffers may be split across descriptors at any byte boundary.
 */

#if defined(__KERNEL__) || !defined(VIRTIO_TMEM_HAVE_LE_TYPES)
#include <linux/types.h>
#endif

/*
 * Provisional device id, outside the ids allocated by the virtio TC; to be
 * registered with the TC before any release that promises compatibility.
 */
#define VIRTIO_ID_TMEM			57

/* Feature bits */
#define VIRTIO_TMEM_F_PERSISTENT	0	/* persistent pools, credits */
#define VIRTIO_TMEM_F_SHARED		1	/* pools shared by UUID */
#define VIRTIO_TMEM_F_MQ		2	/* num_queues request queues */
#define VIRTIO_TMEM_F_RESIZE		3	/* pool_limit changes; the device
						 * may cap credits and ask for
						 * persistent pages back */

#define VIRTIO_TMEM_PAGE_SIZE		4096u
#define VIRTIO_TMEM_MAX_BATCH_LIMIT	512u	/* largest max_batch ever */
#define VIRTIO_TMEM_MAX_QUEUES		64u

struct virtio_tmem_config {
	/* Size in bytes of every page the device stores: 4096. */
	__le32 page_size;
	/* Number of request queues; 1 without VIRTIO_TMEM_F_MQ. */
	__le16 num_queues;
	/* Most ops one batch may carry (1..VIRTIO_TMEM_MAX_BATCH_LIMIT). */
	__le16 max_batch;
	/* Most pools that may exist at once. */
	__le32 max_pools;
	__le32 reserved0;
	/*
	 * Persistent-put credits granted since reset: never decreases while
	 * DRIVER_OK is set.  See "Credits" in the specification.
	 */
	__le64 credits;
	/*
	 * Host memory (bytes) the device may use for stored pages; with
	 * VIRTIO_TMEM_F_RESIZE it may change at any time.
	 */
	__le64 pool_limit;
	/*
	 * The fields below exist with VIRTIO_TMEM_F_RESIZE; see "Resizing" in
	 * the specification.  Device-written: the most persistent pages the
	 * driver should keep stored (VIRTIO_TMEM_NO_LIMIT: no request).
	 */
	__le64 persistent_target;
	/*
	 * Device-written: the most credited PUTs the driver may have issued
	 * since reset (VIRTIO_TMEM_NO_LIMIT: only credits limits them).
	 */
	__le64 credit_cap;
	/* Device-written: changes with every new credit_cap. */
	__le32 cap_gen;
	/* Driver-written, after cap_ack: the cap_gen it has applied. */
	__le32 cap_ack_gen;
	/*
	 * Driver-written, before cap_ack_gen: the most credited PUTs it will
	 * have issued since reset until it sees a higher cap.
	 */
	__le64 cap_ack;
	/* Driver-written: persistent pages it holds in the device now. */
	__le64 persistent_actual;
};

/* persistent_target and credit_cap: no limit */
#define VIRTIO_TMEM_NO_LIMIT		(~0ull)

/* Op codes */
#define VIRTIO_TMEM_OP_NEW_POOL		1
#define VIRTIO_TMEM_OP_DESTROY_POOL	2
#define VIRTIO_TMEM_OP_PUT		3
#define VIRTIO_TMEM_OP_GET		4
#define VIRTIO_TMEM_OP_FLUSH_PAGE	5
#define VIRTIO_TMEM_OP_FLUSH_OBJECT	6
#define VIRTIO_TMEM_OP_FLUSH_POOL	7

/* virtio_tmem_op.flags for NEW_POOL */
#define VIRTIO_TMEM_POOL_PERSISTENT	(1u << 0)
#define VIRTIO_TMEM_POOL_SHARED		(1u << 1)
/* virtio_tmem_op.flags for GET */
#define VIRTIO_TMEM_GET_EXCLUSIVE	(1u << 0)
/* virtio_tmem_op.flags for PUT: this put spends one credit */
#define VIRTIO_TMEM_PUT_CREDIT		(1u << 0)

/* Key of a page: pool, 192-bit object id, 64-bit index. */
struct virtio_tmem_key {
	__le64 oid[3];
	__le64 index;
};

/* Arguments of NEW_POOL. */
struct virtio_tmem_pool_args {
	__u8 uuid[16];		/* shared pools only, else zero */
	__le32 page_size;	/* must equal config page_size */
	__le32 reserved[3];
};

struct virtio_tmem_op {
	__u8 opcode;
	__u8 flags;
	__le16 reserved0;
	__le32 pool_id;		/* ignored by NEW_POOL, must be zero there */
	union {
		struct virtio_tmem_key key;
		struct virtio_tmem_pool_args pool;
	} u;
	__le64 reserved1;
};

/* virtio_tmem_req_hdr.flags: none defined yet, must be zero. */
struct virtio_tmem_req_hdr {
	__le16 nr_ops;
	__le16 flags;
	__le32 reserved;
	__le64 seq;		/* driver's batch number, echoed back */
};

/* Batch and op status codes */
#define VIRTIO_TMEM_S_OK		0	/* done */
#define VIRTIO_TMEM_S_NOT_FOUND		1	/* GET miss (not an error) */
#define VIRTIO_TMEM_S_NO_SPACE		2	/* ephemeral put dropped */
#define VIRTIO_TMEM_S_NO_CREDIT		3	/* persistent put without credit */
#define VIRTIO_TMEM_S_BAD_POOL		4	/* no such pool, or wrong kind */
#define VIRTIO_TMEM_S_BAD_OP		5	/* unknown opcode or flags */
#define VIRTIO_TMEM_S_BAD_ARG		6	/* reserved field, size, uuid */
#define VIRTIO_TMEM_S_IO_ERROR		7	/* stored data unreadable */
#define VIRTIO_TMEM_S_NO_POOLS		8	/* NEW_POOL: max_pools reached */
#define VIRTIO_TMEM_S_BAD_BATCH		9	/* batch malformed: nothing done */
#define VIRTIO_TMEM_S_SKIPPED		10	/* not executed (batch error) */
#define VIRTIO_TMEM_S_DEVICE_ERROR	11	/* host failure, op not done */

struct virtio_tmem_resp_hdr {
	__le32 status;		/* S_OK or S_BAD_BATCH */
	__le16 nr_ops;		/* ops the device executed */
	__le16 reserved;
	__le64 seq;		/* copy of virtio_tmem_req_hdr.seq */
	__le64 credits;		/* config credits when the batch completed */
};

struct virtio_tmem_op_status {
	__le32 status;
	/*
	 * NEW_POOL: pool id.  PUT: 1 if an older page was replaced.
	 * GET: 1 if the page was removed (exclusive).  FLUSH_*, DESTROY_POOL:
	 * pages removed (saturated at 0xffffffff).
	 */
	__le32 value;
};

/*
 * Layout checks.  C11 _Static_assert works in the kernel (gnu11) and in
 * userspace alike.
 */
#define VIRTIO_TMEM_LAYOUT(S, F, OFF) \
	_Static_assert(__builtin_offsetof(struct S, F) == (OFF), #S "." #F)
_Static_assert(sizeof(struct virtio_tmem_config) == 72, "config size");
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, page_size, 0);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, num_queues, 4);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, max_batch, 6);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, max_pools, 8);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, credits, 16);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, pool_limit, 24);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, persistent_target, 32);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, credit_cap, 40);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, cap_gen, 48);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, cap_ack_gen, 52);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, cap_ack, 56);
VIRTIO_TMEM_LAYOUT(virtio_tmem_config, persistent_actual, 64);
_Static_assert(sizeof(struct virtio_tmem_key) == 32, "key size");
VIRTIO_TMEM_LAYOUT(virtio_tmem_key, index, 24);
_Static_assert(sizeof(struct virtio_tmem_pool_args) == 32, "pool args size");
VIRTIO_TMEM_LAYOUT(virtio_tmem_pool_args, page_size, 16);
_Static_assert(sizeof(struct virtio_tmem_op) == 48, "op size");
VIRTIO_TMEM_LAYOUT(virtio_tmem_op, flags, 1);
VIRTIO_TMEM_LAYOUT(virtio_tmem_op, pool_id, 4);
VIRTIO_TMEM_LAYOUT(virtio_tmem_op, u, 8);
VIRTIO_TMEM_LAYOUT(virtio_tmem_op, reserved1, 40);
_Static_assert(sizeof(struct virtio_tmem_req_hdr) == 16, "req hdr size");
VIRTIO_TMEM_LAYOUT(virtio_tmem_req_hdr, flags, 2);
VIRTIO_TMEM_LAYOUT(virtio_tmem_req_hdr, seq, 8);
_Static_assert(sizeof(struct virtio_tmem_resp_hdr) == 24, "resp hdr size");
VIRTIO_TMEM_LAYOUT(virtio_tmem_resp_hdr, nr_ops, 4);
VIRTIO_TMEM_LAYOUT(virtio_tmem_resp_hdr, seq, 8);
VIRTIO_TMEM_LAYOUT(virtio_tmem_resp_hdr, credits, 16);
_Static_assert(sizeof(struct virtio_tmem_op_status) == 8, "status size");
VIRTIO_TMEM_LAYOUT(virtio_tmem_op_status, value, 4);
#undef VIRTIO_TMEM_LAYOUT

#endif /* _LINUX_VIRTIO_TMEM_H */
