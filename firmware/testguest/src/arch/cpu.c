/*
 * Ring 0: the TSS, the IDT and the trap dispatcher. Everything here runs in emulated
 * CPL0 on this host (thousands of times slower than ring 3), so it does the minimum:
 * count an interrupt and acknowledge it, serve a syscall, or report an exception.
 */
#include <stdint.h>
#include "gdt.h"
#include "syscall.h"
#include "trap.h"
#include "x86.h"
#include "../lib/print.h"
#include "../platform/ioapic.h"
#include "../platform/lapic.h"
#include "../platform/power.h"

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	/* One bit per port, 0 = allowed, plus the required all-ones terminator byte (SDM §19.5.2). */
	uint8_t iomap[8192 + 1];
} __attribute__((packed));

struct idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;	/* P | DPL | 0xE (64-bit interrupt gate) */
	uint16_t offset_mid;
	uint32_t offset_high;
	uint32_t reserved;
} __attribute__((packed));

extern uint64_t gdt_tss[2];
extern char trap_stubs[];
extern char kernel_stack_top[];
extern void enter_user(void (*entry)(void), void *stack_top) __attribute__((noreturn));
extern void user_main(void);

volatile uint32_t interrupt_count[256];
volatile uint8_t interrupt_mask_pin[256];

static struct tss64 tss;
struct idt_gate idt[256] __attribute__((aligned(16)));
static char double_fault_stack[4096] __attribute__((aligned(16)));
static char user_stack[65536] __attribute__((aligned(16)));

static void set_gate(int vector, int dpl, int ist) {
	uint64_t target = (uint64_t)(uintptr_t)(trap_stubs + 16 * vector);
	idt[vector].offset_low = (uint16_t)target;
	idt[vector].selector = GDT_KERNEL_CODE;
	idt[vector].ist = (uint8_t)ist;
	idt[vector].type_attr = (uint8_t)(0x80 | (dpl << 5) | 0xE);
	idt[vector].offset_mid = (uint16_t)(target >> 16);
	idt[vector].offset_high = (uint32_t)(target >> 32);
	idt[vector].reserved = 0;
}

static void load_tss(void) {
	uint64_t base = (uint64_t)(uintptr_t)&tss;
	uint64_t limit = sizeof tss - 1;
	tss.rsp[0] = (uint64_t)(uintptr_t)kernel_stack_top;
	tss.ist[0] = (uint64_t)(uintptr_t)(double_fault_stack + sizeof double_fault_stack);
	/*
	 * Ring 3 gets every port twice over: IOPL 3 in RFLAGS (enter_user) and an all-zero
	 * I/O bitmap. kvm_pvm drops the guest's IOPL when it runs ring 3 on the host, and its
	 * instruction emulator then consults the TSS bitmap instead.
	 */
	tss.iomap_base = (uint16_t)((uintptr_t)&tss.iomap - (uintptr_t)&tss);
	tss.iomap[8192] = 0xFF;
	/* 64-bit TSS descriptor, type 9 (available), present (Intel SDM vol. 3 §8.2.3). */
	gdt_tss[0] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ULL << 40) |
		     (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
	gdt_tss[1] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"(GDT_TSS));
}

static void load_idt(void) {
	for (int v = 0; v < 256; v++) set_gate(v, 0, v == 8 ? 1 : 0);
	struct { uint16_t limit; uint64_t base; } __attribute__((packed)) ptr = {
		sizeof idt - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(ptr));
}

/*
 * The BIOS leaves the 8259 pair delivering IRQ 0-7 at vectors 8-15, which collide with
 * exceptions. Move them to 0x20-0x2F (ICW1-ICW4, 8259A datasheet) and mask every line:
 * this guest routes interrupts through the I/O APIC and MSI only.
 */
static void legacy_pic_disable(void) {
	outb(0x20, 0x11); outb(0xA0, 0x11);	/* ICW1: edge, cascade, ICW4 follows */
	outb(0x21, 0x20); outb(0xA1, 0x28);	/* ICW2: vector bases */
	outb(0x21, 0x04); outb(0xA1, 0x02);	/* ICW3: slave on IRQ 2 */
	outb(0x21, 0x01); outb(0xA1, 0x01);	/* ICW4: 8086 mode */
	outb(0x21, 0xFF); outb(0xA1, 0xFF);	/* OCW1: mask all */
}

void kernel_main(void) {
	load_tss();
	load_idt();
	legacy_pic_disable();
	enter_user(user_main, user_stack + sizeof user_stack);
}

extern uint64_t gdt[8];	/* boot.S: six descriptors and the 16-byte TSS descriptor */
extern uint64_t pml4[6 * 512];	/* boot.S: PML4, PDPT and four page directories, contiguous */

static uint64_t sum_words(const void *p, uint64_t bytes) {
	const uint64_t *w = p;
	uint64_t s = 0;
	for (uint64_t i = 0; i < bytes / 8; i++) s = (s << 1 | s >> 63) ^ w[i];
	return s;
}

uint64_t cpu_tables_sum(void) {
	return sum_words(idt, sizeof idt) ^ sum_words(gdt, sizeof gdt) * 3 ^ sum_words(&tss, sizeof tss - sizeof tss.iomap) * 5 ^
	       sum_words(pml4, sizeof pml4) * 7;
}

static const char *exception_name(uint64_t v) {
	static const char *names[32] = {
		"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
		"#BR bound", "#UD invalid opcode", "#NM no math", "#DF double fault", "coprocessor overrun",
		"#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
		"#PF page fault", "reserved", "#MF x87 error", "#AC alignment check", "#MC machine check",
		"#XM SIMD error", "#VE virtualization", "#CP control protection",
	};
	return v < 32 && names[v] ? names[v] : "reserved";
}

static void report_exception(struct trap_frame *f) {
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	print("\nTESTGUEST EXCEPTION vector=%lu (%s) error=0x%lx rip=0x%lx cs=0x%lx rflags=0x%lx rsp=0x%lx cr2=0x%lx\n",
	      f->vector, exception_name(f->vector), f->error, f->rip, f->cs, f->rflags, f->rsp, cr2);
	power_off();
}

/* Serves a syscall_gate UD2 (syscall.h); runs on the kernel stack with interrupts off. */
static uint64_t syscall_dispatch(uint64_t nr, uint64_t a, uint64_t b) {
	switch (nr) {
	case SYS_WAIT_FOR_INTERRUPT:
		/* STI's one-instruction shadow makes STI;HLT race-free. */
		__asm__ volatile("sti; hlt; cli" ::: "memory");
		return 0;
	case SYS_RDMSR: {
		uint32_t lo, hi;
		__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"((uint32_t)a));
		return ((uint64_t)hi << 32) | lo;
	}
	case SYS_WRMSR:
		__asm__ volatile("wrmsr" : : "c"((uint32_t)a), "a"((uint32_t)b), "d"((uint32_t)(b >> 32)));
		return 0;
	default:
		return (uint64_t)-1;
	}
}

void trap_dispatch(struct trap_frame *f) {
	if (f->vector == 6 && f->rip == (uint64_t)(uintptr_t)syscall_gate_ud2 && (f->cs & 3) == 3) {
		f->rax = syscall_dispatch(f->rax, f->rdi, f->rsi);
		f->rip += 2;	/* past the UD2 */
	} else if (f->vector < 32) {
		report_exception(f);
	} else {
		interrupt_count[f->vector]++;
		uint8_t pin1 = interrupt_mask_pin[f->vector];
		if (pin1) {
			/* Ring 3 may be between writing the I/O APIC's index and its data: restore the index. */
			uint32_t index = mmio_read32(ioapic_base);
			uint8_t reg = (uint8_t)(0x10 + 2 * (pin1 - 1));
			ioapic_write(reg, ioapic_read(reg) | IOAPIC_MASKED);
			mmio_write32(ioapic_base, index);
		}
		if (f->vector != LAPIC_SPURIOUS_VECTOR) lapic_eoi();
	}
}
