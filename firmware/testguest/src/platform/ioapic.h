/*
 * I/O APIC (82093AA datasheet): index register at base+0x00, data window at base+0x10;
 * register 0x01 holds the version and the highest redirection entry, entry N is the
 * 64-bit pair 0x10+2N / 0x11+2N.
 */
#ifndef TESTGUEST_IOAPIC_H
#define TESTGUEST_IOAPIC_H
#include <stdint.h>

#define IOAPIC_DEFAULT_BASE 0xFEC00000u
#define IOAPIC_MASKED (1u << 16)
#define IOAPIC_LEVEL (1u << 15)
#define IOAPIC_ACTIVE_LOW (1u << 13)

extern uintptr_t ioapic_base;
void ioapic_init(uintptr_t base);
uint32_t ioapic_read(uint8_t reg);
void ioapic_write(uint8_t reg, uint32_t v);
int ioapic_pin_count(void);
/* Routes pin to vector on the given LAPIC ID, fixed delivery; flags from IOAPIC_*. */
void ioapic_route(int pin, uint8_t vector, uint8_t apic_id, uint32_t flags);
void ioapic_mask(int pin);
/* Trigger and polarity for an ISA IRQ from its MADT override (MPS INTI flags). */
uint32_t ioapic_isa_flags(uint16_t mps_flags);
#endif
