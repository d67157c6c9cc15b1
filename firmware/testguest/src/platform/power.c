#include "power.h"
#include "acpi.h"
#include "../arch/x86.h"
#include "../arch/syscall.h"

struct power_method power_s5_method(void) {
	struct power_method m;
	m.pm1a_cnt = (uint16_t)acpi.pm1a_cnt;
	if (acpi.s5_found) {
		m.slp_typ = acpi.s5_slp_typ_a;
		m.slp_typ_source = "dsdt";
	} else if (m.pm1a_cnt == 0x404) {	/* bhyve's PM1a control block */
		m.slp_typ = S5_SLP_TYP_BHYVE;
		m.slp_typ_source = "fallback-bhyve";
	} else {
		m.slp_typ = S5_SLP_TYP_QEMU;
		m.slp_typ_source = "fallback-qemu";
	}
	return m;
}

static void short_delay(void) {
	/* Let an asynchronous VMM act on the write before we try something else. */
	uint64_t start = rdtsc();
	while (rdtsc() - start < 200000000ULL) cpu_relax();
}

void power_s5(void) {
	struct power_method m = power_s5_method();
	if (!m.pm1a_cnt) return;
	outw(m.pm1a_cnt, (uint16_t)((m.slp_typ << 10) | (1u << 13)));
	short_delay();
}

void power_reset_fadt(void) {
	if (acpi.reset_reg.space == ACPI_GAS_IO && acpi.reset_reg.address) {
		outb((uint16_t)acpi.reset_reg.address, acpi.reset_value);
	} else if (acpi.reset_reg.space == ACPI_GAS_MEMORY && acpi.reset_reg.address) {
		mmio_write8((uintptr_t)acpi.reset_reg.address, acpi.reset_value);
	} else {
		return;
	}
	short_delay();
}

void power_reset_kbc(void) {
	/* 8042: wait for the input buffer to drain (status bit 1), then pulse reset. */
	for (int i = 0; i < 1000 && (inb(0x64) & 2); i++) cpu_relax();
	outb(0x64, 0xFE);
	short_delay();
}

void power_reset_cf9(void) {
	outb(0xCF9, 0x06);	/* full reset (bit 2) + reset type hard (bit 1) */
	short_delay();
}

static int in_ring0(void) {
	uint16_t cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return (cs & 3) == 0;
}

void power_off(void) {
	power_s5();
	power_reset_fadt();
	power_reset_cf9();
	if (in_ring0()) {
		struct { uint16_t limit; uint64_t base; } __attribute__((packed)) empty = { 0, 0 };
		__asm__ volatile("lidt %0; ud2" : : "m"(empty));
	} else {
		triple_fault();
	}
	for (;;) cpu_relax();
}
