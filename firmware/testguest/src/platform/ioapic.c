#include "ioapic.h"
#include "../arch/x86.h"

uintptr_t ioapic_base = IOAPIC_DEFAULT_BASE;

uint32_t ioapic_read(uint8_t reg) {
	mmio_write32(ioapic_base, reg);
	return mmio_read32(ioapic_base + 0x10);
}

void ioapic_write(uint8_t reg, uint32_t v) {
	mmio_write32(ioapic_base, reg);
	mmio_write32(ioapic_base + 0x10, v);
}

int ioapic_pin_count(void) { return (int)((ioapic_read(0x01) >> 16) & 0xFF) + 1; }

void ioapic_init(uintptr_t base) {
	ioapic_base = base;
	int pins = ioapic_pin_count();
	for (int pin = 0; pin < pins; pin++) ioapic_mask(pin);
}

void ioapic_route(int pin, uint8_t vector, uint8_t apic_id, uint32_t flags) {
	ioapic_write((uint8_t)(0x11 + 2 * pin), (uint32_t)apic_id << 24);
	ioapic_write((uint8_t)(0x10 + 2 * pin), vector | (flags & (IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW | IOAPIC_MASKED)));
}

void ioapic_mask(int pin) {
	ioapic_write((uint8_t)(0x10 + 2 * pin), IOAPIC_MASKED);
}

uint32_t ioapic_isa_flags(uint16_t mps_flags) {
	/* MPS INTI flags: polarity bits 1:0 (3 = active low), trigger bits 3:2 (3 = level). ISA default: edge, high. */
	uint32_t f = 0;
	if ((mps_flags & 3) == 3) f |= IOAPIC_ACTIVE_LOW;
	if (((mps_flags >> 2) & 3) == 3) f |= IOAPIC_LEVEL;
	return f;
}
