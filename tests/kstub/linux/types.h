/* Kernel-like fixed-width types for the freestanding build of the header
 * and codec (tests/batching/layout_kernel.c): no libc header is reachable.
 */
#ifndef _KSTUB_LINUX_TYPES_H
#define _KSTUB_LINUX_TYPES_H
#ifdef __CHECKER__
#define __bitwise __attribute__((bitwise))
#else
#define __bitwise
#endif
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef __u16 __bitwise __le16;
typedef __u32 __bitwise __le32;
typedef __u64 __bitwise __le64;
typedef __SIZE_TYPE__ size_t;
typedef _Bool bool;
#define true 1
#define false 0
#endif
