/* Every field of the wire format, for comparing layouts across builds. */
#define VTMEM_LAYOUT_STRUCTS(S)						\
	S(virtio_tmem_config) S(virtio_tmem_key) S(virtio_tmem_pool_args) \
	S(virtio_tmem_op) S(virtio_tmem_req_hdr) S(virtio_tmem_resp_hdr) \
	S(virtio_tmem_op_status)
#define VTMEM_LAYOUT_FIELDS(F)						\
	F(virtio_tmem_config, page_size) F(virtio_tmem_config, num_queues) \
	F(virtio_tmem_config, max_batch) F(virtio_tmem_config, max_pools) \
	F(virtio_tmem_config, reserved0) F(virtio_tmem_config, credits)	\
	F(virtio_tmem_config, pool_limit)				\
	F(virtio_tmem_config, persistent_target)			\
	F(virtio_tmem_config, credit_cap) F(virtio_tmem_config, cap_gen)	\
	F(virtio_tmem_config, cap_ack_gen) F(virtio_tmem_config, cap_ack)	\
	F(virtio_tmem_config, persistent_actual)			\
	F(virtio_tmem_key, oid) F(virtio_tmem_key, index)		\
	F(virtio_tmem_pool_args, uuid) F(virtio_tmem_pool_args, page_size) \
	F(virtio_tmem_pool_args, reserved)				\
	F(virtio_tmem_op, opcode) F(virtio_tmem_op, flags)		\
	F(virtio_tmem_op, reserved0) F(virtio_tmem_op, pool_id)		\
	F(virtio_tmem_op, u) F(virtio_tmem_op, reserved1)		\
	F(virtio_tmem_req_hdr, nr_ops) F(virtio_tmem_req_hdr, flags)	\
	F(virtio_tmem_req_hdr, reserved) F(virtio_tmem_req_hdr, seq)	\
	F(virtio_tmem_resp_hdr, status) F(virtio_tmem_resp_hdr, nr_ops)	\
	F(virtio_tmem_resp_hdr, reserved) F(virtio_tmem_resp_hdr, seq)	\
	F(virtio_tmem_resp_hdr, credits)				\
	F(virtio_tmem_op_status, status) F(virtio_tmem_op_status, value)

#define VTMEM_LAYOUT_S(s) sizeof(struct s), __alignof__(struct s),
#define VTMEM_LAYOUT_F(s, f) __builtin_offsetof(struct s, f),		\
	sizeof(((struct s *)0)->f),
