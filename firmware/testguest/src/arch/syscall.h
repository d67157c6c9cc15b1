/*
 * Ring 3 -> ring 0 calls. Only what ring 3 cannot do itself: HLT and MSRs. (Port I/O is
 * open to ring 3 through IOPL and the TSS bitmap; MMIO is mapped user-accessible.)
 *
 * The gate is an exception: ring 3 executes UD2 at syscall_gate_ud2 (traps.S) with
 * rax = number, rdi/rsi = arguments; the #UD handler serves it and returns after the UD2
 * with the result in rax. Neither INT n nor SYSCALL reaches ring 0 on this host's
 * kvm_pvm (INT 0x80/0x81 from ring 3 raise #UD; SYSCALL runs LSTAR's code still at
 * CPL 3), while exceptions from ring 3 are delivered through the guest's IDT everywhere.
 */
#ifndef TESTGUEST_SYSCALL_H
#define TESTGUEST_SYSCALL_H
#include <stdint.h>

enum syscall_number {
	SYS_WAIT_FOR_INTERRUPT = 1,	/* STI; HLT; returns after one interrupt was handled */
	SYS_RDMSR = 2,			/* rdi = msr -> rax = value */
	SYS_WRMSR = 3,			/* rdi = msr, rsi = value */
};

/* Defined in traps.S; an ordinary call from C's point of view. */
uint64_t syscall_gate(uint64_t nr, uint64_t a, uint64_t b);
extern char syscall_gate_ud2[];

static inline uint64_t syscall2(uint64_t nr, uint64_t a, uint64_t b) { return syscall_gate(nr, a, b); }

static inline void sys_wait_for_interrupt(void) { syscall2(SYS_WAIT_FOR_INTERRUPT, 0, 0); }
static inline uint64_t sys_rdmsr(uint32_t msr) { return syscall2(SYS_RDMSR, msr, 0); }
static inline void sys_wrmsr(uint32_t msr, uint64_t v) { syscall2(SYS_WRMSR, msr, v); }

/*
 * Shuts the CPU down from ring 3 without entering ring 0: the IDT is user-writable here,
 * so clear it and fault. #UD finds no gate -> #NP, no gate -> #DF, no gate -> shutdown
 * (Intel SDM vol. 3 §6.15, interrupt 8).
 */
void triple_fault(void) __attribute__((noreturn));
#endif
