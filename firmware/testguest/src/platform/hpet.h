/*
 * HPET (IA-PC HPET specification 1.0a): general capabilities at 0x000, configuration at
 * 0x010, main counter at 0x0F0, timer N at 0x100 + 0x20*N.
 */
#ifndef TESTGUEST_HPET_H
#define TESTGUEST_HPET_H
#include <stdint.h>

enum hpet_reg {
	HPET_CAPABILITIES = 0x000,
	HPET_CONFIG = 0x010,
	HPET_INT_STATUS = 0x020,
	HPET_COUNTER = 0x0F0,
};
#define HPET_TIMER_CONFIG(n) (0x100 + 0x20 * (n))
#define HPET_TIMER_COMPARATOR(n) (0x108 + 0x20 * (n))
#define HPET_CONFIG_ENABLE 1u

struct hpet_info {
	int present;
	uintptr_t base;
	uint32_t period_fs;	/* counter tick period in femtoseconds */
	uint16_t vendor;
	uint8_t revision;
	uint8_t timers;
	int counter_64bit;
	int legacy_capable;
};
extern struct hpet_info hpet;

/* Reads the capability register at the ACPI HPET table's address. */
int hpet_probe(void);
/* Sets the overall enable bit so the main counter runs. */
int hpet_enable(void);
uint64_t hpet_counter(void);
#endif
