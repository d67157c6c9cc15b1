/*
 * PVH entry and the switch to 64-bit long mode.
 *
 * PVH boot ABI (Xen docs/misc/pvh.pandoc): the loader enters at the address in the
 * XEN_ELFNOTE_PHYS32_ENTRY note in 32-bit protected mode, paging off, flat CS/DS,
 * %ebx = physical address of struct hvm_start_info. No stack is guaranteed.
 *
 * The page tables are built by the assembler (no run-time loop): kernel-mode code runs
 * thousands of times slower on this host's emulated CPL0, so we keep it short.
 */
#include "gdt.h"

	.section .note.Xen, "a"
	.p2align 2
	.long 4			/* namesz: "Xen\0" */
	.long 4			/* descsz: a 32-bit physical address */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.p2align 2
	.long pvh_entry

	.section .text.boot, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	cli
	cld
	movl %ebx, pvh_start_info_paddr
	lgdt gdt_pointer
	/* CR4.PAE (bit 5): long mode needs PAE-format tables. */
	movl %cr4, %eax
	orl $0x20, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	/* EFER.LME (bit 8), MSR 0xC0000080 (Intel SDM vol. 3 §9.8.5). */
	movl $0xC0000080, %ecx
	rdmsr
	orl $0x100, %eax
	wrmsr
	/* CR0.PG | CR0.PE | CR0.WP: paging on activates long mode. */
	movl %cr0, %eax
	orl $0x80010001, %eax
	movl %eax, %cr0
	ljmp $GDT_KERNEL_CODE, $long_mode_entry

	.code64
long_mode_entry:
	movl $GDT_KERNEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	leaq kernel_stack_top(%rip), %rsp
	xorl %ebp, %ebp
	call kernel_main
1:	hlt
	jmp 1b

	.section .data.boot, "aw"
	.p2align 3
	.globl pvh_start_info_paddr
pvh_start_info_paddr:
	.quad 0

/*
 * GDT. Layout follows what SYSCALL/SYSRET would need (kernel code, kernel data,
 * user code32, user data, user code64) so it can be used later; TSS is filled at run time.
 */
	.p2align 4
	.globl gdt
gdt:
	.quad 0				/* 0x00 null */
	.quad 0x00AF9A000000FFFF	/* 0x08 kernel code, 64-bit (L=1) */
	.quad 0x00CF92000000FFFF	/* 0x10 kernel data */
	.quad 0x00CFFA000000FFFF	/* 0x18 user code, 32-bit (unused) */
	.quad 0x00CFF2000000FFFF	/* 0x20 user data, DPL 3 */
	.quad 0x00AFFA000000FFFF	/* 0x28 user code, 64-bit, DPL 3 */
	.globl gdt_tss
gdt_tss:
	.quad 0, 0			/* 0x30 64-bit TSS descriptor (16 bytes) */
gdt_end:
	.globl gdt_pointer
gdt_pointer:
	.word gdt_end - gdt - 1
	.quad gdt

/*
 * Identity map of [0, 4 GiB) with 2 MiB pages, all user-accessible so ring-3 tests
 * reach RAM, ACPI tables and device MMIO directly. The top GiB (LAPIC, IOAPIC, HPET,
 * bhyve's ECAM and BAR window) is mapped uncached (PCD|PWT).
 * Flags: P=1, RW=2, US=4, PWT=8, PCD=0x10, PS=0x80.
 */
	.section .data.pagetables, "aw"
	.p2align 12
	.globl pml4
pml4:
	.quad pdpt + 0x7
	.fill 511, 8, 0
pdpt:
	.quad pd0 + 0x7
	.quad pd1 + 0x7
	.quad pd2 + 0x7
	.quad pd3 + 0x7
	.fill 508, 8, 0
	.set page, 0
pd0:
	.rept 1536
	.quad (page << 21) | 0x87
	.set page, page + 1
	.endr
pd3:
	.rept 512
	.quad (page << 21) | 0x9F
	.set page, page + 1
	.endr
	.set pd1, pd0 + 4096
	.set pd2, pd0 + 8192

	.section .bss.stack, "aw", @nobits
	.p2align 12
kernel_stack:
	.skip 16384
	.globl kernel_stack_top
kernel_stack_top:
