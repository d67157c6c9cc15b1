/* GDT selectors (see boot.S for the descriptors). Shared by assembly and C. */
#ifndef TESTGUEST_GDT_H
#define TESTGUEST_GDT_H
#define GDT_KERNEL_CODE 0x08
#define GDT_KERNEL_DATA 0x10
#define GDT_USER_DATA   (0x20 | 3)
#define GDT_USER_CODE   (0x28 | 3)
#define GDT_TSS         0x30
#endif
