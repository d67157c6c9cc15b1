/*
 * ACPI power-management timer (ACPI 6.5 §4.8.3.3): a 3.579545 MHz counter at the FADT's
 * PM_TMR_BLK port, 24 bits wide unless the FADT sets TMR_VAL_EXT (32 bits).
 */
#ifndef TESTGUEST_PMTIMER_H
#define TESTGUEST_PMTIMER_H
#include <stdint.h>

#define PMTIMER_HZ 3579545u

int pmtimer_present(void);
uint32_t pmtimer_read(void);
/* Counter ticks from a to b, allowing for one wrap of the 24- or 32-bit counter. */
uint32_t pmtimer_delta(uint32_t a, uint32_t b);
#endif
