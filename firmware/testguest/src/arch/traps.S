/*
 * Interrupt entry stubs (one per vector, 16 bytes apart), the common save/restore
 * path, and the first drop to ring 3.
 *
 * Each stub makes the stack look the same: an error code (a zero where the CPU pushes
 * none, Intel SDM vol. 3 §6.13) and the vector number, then trap_common saves the
 * general registers and calls trap_dispatch(struct trap_frame *).
 */
#include "gdt.h"

	.section .text
	.p2align 4
	.globl trap_stubs
trap_stubs:
	vector = 0
	.rept 256
	.p2align 4
	.if (vector == 8) || (vector == 10) || (vector == 11) || (vector == 12) || (vector == 13) || (vector == 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
	.else
	pushq $0
	.endif
	pushq $vector
	jmp trap_common
	vector = vector + 1
	.endr

trap_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	cld
	call trap_dispatch
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp		/* vector and error code */
	iretq

/*
 * The ring-3 -> ring-0 gate (see syscall.h): a UD2 at this one address. The #UD handler
 * recognises the address, serves rax/rdi/rsi and resumes after the UD2.
 * uint64_t syscall_gate(uint64_t nr, uint64_t a, uint64_t b)
 */
	.globl syscall_gate, syscall_gate_ud2
syscall_gate:
	movq %rdi, %rax
	movq %rsi, %rdi
	movq %rdx, %rsi
syscall_gate_ud2:
	ud2
	ret

/*
 * void enter_user(void (*entry)(void), void *stack_top)
 * IRETQ to ring 3 with IOPL 3 (RFLAGS bits 12-13) so ring-3 code may use IN/OUT
 * (Intel SDM vol. 1 §19.5.1) and with interrupts enabled: kvm_pvm keeps IF set in
 * ring 3 whatever the guest asks, so ring 3 never uses CLI/STI and devices are masked
 * at the LAPIC/IOAPIC/device instead.
 */
	.globl enter_user
enter_user:
	pushq $GDT_USER_DATA
	pushq %rsi
	pushq $0x3202
	pushq $GDT_USER_CODE
	pushq %rdi
	movl $GDT_USER_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	iretq
