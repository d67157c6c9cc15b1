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

/* Set up GDT TSS, IDT and enter ring 3 at user_main. Called once from boot.S. */
void kernel_main(void);
#endif
