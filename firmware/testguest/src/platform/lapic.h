/*
 * Local APIC in xAPIC mode (Intel SDM vol. 3 ch. 11), memory-mapped at the MADT's
 * address (0xFEE00000 on bhyve and QEMU). Ring 3 programs it through the
 * user-accessible identity map; ring 0 only writes EOI.
 */
#ifndef TESTGUEST_LAPIC_H
#define TESTGUEST_LAPIC_H
#include <stdint.h>

#define LAPIC_DEFAULT_BASE 0xFEE00000u
#define LAPIC_SPURIOUS_VECTOR 0xFF

enum lapic_reg {
	LAPIC_ID = 0x20,
	LAPIC_VERSION = 0x30,
	LAPIC_TPR = 0x80,
	LAPIC_EOI = 0xB0,
	LAPIC_SVR = 0xF0,
	LAPIC_ESR = 0x280,
	LAPIC_ICR_LOW = 0x300,
	LAPIC_ICR_HIGH = 0x310,
	LAPIC_LVT_TIMER = 0x320,
	LAPIC_LVT_LINT0 = 0x350,
	LAPIC_LVT_LINT1 = 0x360,
	LAPIC_LVT_ERROR = 0x370,
	LAPIC_TIMER_INITIAL = 0x380,
	LAPIC_TIMER_CURRENT = 0x390,
	LAPIC_TIMER_DIVIDE = 0x3E0,
};
#define LAPIC_LVT_MASKED (1u << 16)

extern uintptr_t lapic_base;
uint32_t lapic_read(enum lapic_reg reg);
void lapic_write(enum lapic_reg reg, uint32_t v);
/* Software-enables the APIC with the spurious vector, TPR 0, LVTs masked. */
void lapic_init(uintptr_t base);
uint8_t lapic_id(void);
void lapic_eoi(void);
/* One-shot timer: vector after `count` ticks of the bus clock divided by 16. */
void lapic_timer_oneshot(uint8_t vector, uint32_t count);
#endif
