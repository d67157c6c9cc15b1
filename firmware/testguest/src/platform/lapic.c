#include "lapic.h"
#include "../arch/x86.h"

uintptr_t lapic_base = LAPIC_DEFAULT_BASE;

uint32_t lapic_read(enum lapic_reg reg) { return mmio_read32(lapic_base + reg); }
void lapic_write(enum lapic_reg reg, uint32_t v) { mmio_write32(lapic_base + reg, v); }

void lapic_init(uintptr_t base) {
	lapic_base = base;
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
	lapic_write(LAPIC_LVT_ERROR, LAPIC_LVT_MASKED);
	/* SVR bit 8 = APIC software enable (SDM §11.9). */
	lapic_write(LAPIC_SVR, 0x100 | LAPIC_SPURIOUS_VECTOR);
}

uint8_t lapic_id(void) { return (uint8_t)(lapic_read(LAPIC_ID) >> 24); }

void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

void lapic_timer_oneshot(uint8_t vector, uint32_t count) {
	lapic_write(LAPIC_TIMER_DIVIDE, 0x3);	/* divide by 16 */
	lapic_write(LAPIC_LVT_TIMER, vector);	/* one-shot mode, unmasked */
	lapic_write(LAPIC_TIMER_INITIAL, count);
}
