#include "hpet.h"
#include "acpi.h"
#include "../arch/x86.h"

struct hpet_info hpet;

int hpet_probe(void) {
	hpet.present = 0;
	if (!acpi.have_hpet || !acpi.hpet_paddr) return 0;
	hpet.base = (uintptr_t)acpi.hpet_paddr;
	uint64_t cap = mmio_read64(hpet.base + HPET_CAPABILITIES);
	/* Bits: 7:0 revision, 12:8 timers-1, 13 64-bit counter, 15 legacy route, 31:16 vendor, 63:32 period. */
	hpet.revision = (uint8_t)cap;
	hpet.timers = (uint8_t)(((cap >> 8) & 0x1F) + 1);
	hpet.counter_64bit = (cap >> 13) & 1;
	hpet.legacy_capable = (cap >> 15) & 1;
	hpet.vendor = (uint16_t)(cap >> 16);
	hpet.period_fs = (uint32_t)(cap >> 32);
	/* §2.3.4: the period is non-zero and at most 100 ns (1e8 fs). */
	hpet.present = cap != ~0ULL && hpet.period_fs != 0 && hpet.period_fs <= 100000000u;
	return hpet.present;
}

int hpet_enable(void) {
	if (!hpet.present) return 0;
	uint64_t cfg = mmio_read64(hpet.base + HPET_CONFIG);
	mmio_write64(hpet.base + HPET_CONFIG, cfg | HPET_CONFIG_ENABLE);
	return 1;
}

uint64_t hpet_counter(void) {
	if (hpet.counter_64bit) return mmio_read64(hpet.base + HPET_COUNTER);
	return mmio_read32(hpet.base + HPET_COUNTER);
}
