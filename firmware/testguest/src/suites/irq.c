/*
 * test=irq: interrupt delivery into this guest. The LAPIC timer (one-shot), and the RTC's
 * periodic interrupt routed through the I/O APIC using the MADT's ISA override for IRQ 8.
 * Ring 0 only counts interrupts (arch/cpu.c); this suite polls the counts from ring 3.
 */
#include "suite.h"
#include "../arch/syscall.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../platform/acpi.h"
#include "../platform/ioapic.h"
#include "../platform/lapic.h"
#include "../platform/rtc.h"
#include "../platform/timer.h"
#include "../platform/vectors.h"

/* Waits until interrupt_count[vector] exceeds start or the timeout passes; returns elapsed ns. */
static uint64_t wait_count(uint8_t vector, uint32_t target, uint64_t timeout_ns) {
	uint64_t t0 = timer_now_ns(), now = t0;
	while (interrupt_count[vector] < target && (now = timer_now_ns()) - t0 < timeout_ns) cpu_relax();
	return now - t0;
}

static void lapic_timer(void) {
	uint32_t version = lapic_read(LAPIC_VERSION);
	check((version & 0xFF) >= 0x10 && ((version >> 16) & 0xFF) >= 3, "lapic id=%u version=0x%x max_lvt=%u",
	      lapic_id(), version & 0xFF, (version >> 16) & 0xFF);
	uint32_t before = interrupt_count[VECTOR_LAPIC_TIMER];
	lapic_timer_oneshot(VECTOR_LAPIC_TIMER, 100000);
	uint64_t ns = wait_count(VECTOR_LAPIC_TIMER, before + 1, 500000000ULL);
	uint32_t after = interrupt_count[VECTOR_LAPIC_TIMER];
	check(after == before + 1, "lapic timer one-shot interrupt delivered after %lu us (count %u -> %u)", ns / 1000,
	      before, after);
	lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
}

/* Ring 0 services through SYSCALL: an MSR read and HLT woken by the LAPIC timer. */
static void syscalls(void) {
	uint64_t apic_base = sys_rdmsr(0x1B);	/* IA32_APIC_BASE: bit 11 enable, bits 12+ base */
	check((apic_base & (1u << 11)) && (apic_base & ~0xFFFULL) == lapic_base,
	      "syscall rdmsr IA32_APIC_BASE=0x%lx", apic_base);
	uint32_t before = interrupt_count[VECTOR_LAPIC_TIMER];
	uint64_t t0 = timer_now_ns();
	lapic_timer_oneshot(VECTOR_LAPIC_TIMER, 200000);
	for (int i = 0; i < 100 && interrupt_count[VECTOR_LAPIC_TIMER] == before; i++) sys_wait_for_interrupt();
	uint64_t ns = timer_now_ns() - t0;
	lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
	check(interrupt_count[VECTOR_LAPIC_TIMER] == before + 1, "syscall hlt woken by the lapic timer after %lu us",
	      ns / 1000);
}

static void rtc_through_ioapic(void) {
	int pins = ioapic_pin_count();
	check(pins >= 24, "ioapic at 0x%lx version=0x%x pins=%d", (unsigned long)ioapic_base, ioapic_read(1) & 0xFF, pins);
	uint32_t gsi = acpi.isa_gsi[8] - acpi.ioapic_gsi_base;
	if (!check((int)gsi < pins, "rtc irq 8 -> gsi %u", acpi.isa_gsi[8])) return;
	ioapic_route((int)gsi, VECTOR_RTC, lapic_id(), ioapic_isa_flags(acpi.isa_flags[8]));
	uint8_t a = cmos_read(0x0A), b = cmos_read(0x0B);
	cmos_write(0x0A, (a & 0xF0) | 0x06);	/* rate 6: 1024 Hz periodic */
	cmos_read(0x0C);			/* clear pending flags so the line can rise */
	/* Counted from before PIE: the first interrupt can arrive on the instruction after the write. */
	uint32_t before = interrupt_count[VECTOR_RTC];
	cmos_write(0x0B, b | 0x40);		/* PIE */
	uint64_t t0 = timer_now_ns();
	/*
	 * Each interrupt holds IRQF (so no new edge on IRQ 8) until register C is read: read it after
	 * every one. The count is sampled before the read, never after: an interrupt that arrives
	 * between the read and a later sample would be counted as already acknowledged and the line
	 * would stay high for good (seen under host load, when the next period's edge is injected
	 * on the instruction right after the read's exit, or the first one right after PIE's). At least two interrupts prove the re-arm
	 * path; the rate is reported, not asserted.
	 */
	uint32_t acked = before;
	while (interrupt_count[VECTOR_RTC] < before + 8 && timer_now_ns() - t0 < 3000000000ULL) {
		uint32_t now = interrupt_count[VECTOR_RTC];
		if (now != acked) {
			acked = now;
			cmos_read(0x0C);
		} else {
			cpu_relax();
		}
	}
	uint64_t ns = timer_now_ns() - t0;
	cmos_write(0x0B, b & ~0x40);
	cmos_write(0x0A, a);
	cmos_read(0x0C);
	ioapic_mask((int)gsi);
	uint32_t got = interrupt_count[VECTOR_RTC] - before;
	check(got >= 2, "rtc periodic interrupts via ioapic pin %u: %u in %lu us", gsi, got, ns / 1000);
}

static void run(const char *options) {
	(void)options;
	lapic_timer();
	syscalls();
	rtc_through_ioapic();
}

const struct suite suite_irq = { "irq", "LAPIC timer and I/O APIC routed RTC interrupts", run };
