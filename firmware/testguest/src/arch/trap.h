/* The saved state trap_common builds on the kernel stack (lowest address first). */
#ifndef TESTGUEST_TRAP_H
#define TESTGUEST_TRAP_H
#include <stdint.h>

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;	/* pushed by the CPU */
};

/* Interrupts taken per vector, counted in ring 0 and read by ring-3 drivers. */
extern volatile uint32_t interrupt_count[256];

/*
 * Level-triggered sources whose line stays up until ring 3 has served the device (the ACPI
 * SCI, PCI INTx): ring 0 masks I/O APIC pin `interrupt_mask_pin[vector] - 1` before the EOI,
 * so the interrupt is counted once instead of storming while ring 3 cannot run. Ring 3 serves
 * the device and then unmasks the pin itself. 0 = nothing to mask.
 */
extern volatile uint8_t interrupt_mask_pin[256];

/*
 * A checksum of what delivering any exception needs (IDT, GDT, TSS, page tables). Ring 3 can write all of them
 * (every page is user-writable), and so can a device's DMA: a load compares it now and then, so such corruption
 * is reported instead of ending in a triple fault that says nothing.
 */
uint64_t cpu_tables_sum(void);

/* Set up GDT TSS, IDT and enter ring 3 at user_main. Called once from boot.S. */
void kernel_main(void);
#endif
