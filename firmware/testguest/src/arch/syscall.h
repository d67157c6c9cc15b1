/*
 * Ring 3 -> ring 0 calls, through the DPL-3 interrupt gate at vector 0x80.
 * Only what ring 3 cannot do itself: HLT, MSRs, and deliberately faulting the CPU.
 * (Port I/O, CLI/STI are allowed in ring 3 by IOPL 3; MMIO is mapped user-accessible.)
 */
#ifndef TESTGUEST_SYSCALL_H
#define TESTGUEST_SYSCALL_H
#include <stdint.h>

#define SYSCALL_VECTOR 0x80

enum syscall_number {
	SYS_WAIT_FOR_INTERRUPT = 1,	/* STI; HLT; returns after one interrupt was handled */
	SYS_RDMSR = 2,			/* rdi = msr -> rax = value */
	SYS_WRMSR = 3,			/* rdi = msr, rsi = value */
	SYS_TRIPLE_FAULT = 4,		/* loads an empty IDT and faults: the CPU shuts down */
};

static inline uint64_t syscall2(uint64_t nr, uint64_t a, uint64_t b) {
	uint64_t ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "memory");
	return ret;
}

static inline void sys_wait_for_interrupt(void) { syscall2(SYS_WAIT_FOR_INTERRUPT, 0, 0); }
static inline uint64_t sys_rdmsr(uint32_t msr) { return syscall2(SYS_RDMSR, msr, 0); }
static inline void sys_wrmsr(uint32_t msr, uint64_t v) { syscall2(SYS_WRMSR, msr, v); }
static inline void sys_triple_fault(void) { syscall2(SYS_TRIPLE_FAULT, 0, 0); }
#endif
