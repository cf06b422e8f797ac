/* Kernel-like byte order helpers for the freestanding build (x86: LE). */
#ifndef _KSTUB_ASM_BYTEORDER_H
#define _KSTUB_ASM_BYTEORDER_H
#define le16_to_cpu(x) ((__u16)(x))
#define le32_to_cpu(x) ((__u32)(x))
#define le64_to_cpu(x) ((__u64)(x))
#define cpu_to_le16(x) ((__le16)(x))
#define cpu_to_le32(x) ((__le32)(x))
#define cpu_to_le64(x) ((__le64)(x))
#endif
