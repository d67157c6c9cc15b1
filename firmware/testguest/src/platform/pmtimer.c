#include "pmtimer.h"
#include "acpi.h"
#include "../arch/x86.h"

int pmtimer_present(void) { return acpi.have_fadt && acpi.pm_tmr != 0; }

uint32_t pmtimer_read(void) { return inl((uint16_t)acpi.pm_tmr); }

uint32_t pmtimer_delta(uint32_t a, uint32_t b) {
	uint32_t mask = acpi.pm_tmr_32bit ? 0xFFFFFFFFu : 0x00FFFFFFu;
	return (b - a) & mask;
}
