/*
 * Time: the TSC, calibrated once against the ACPI PM timer (or the HPET when there is no
 * PM timer). Ring 3 reads the TSC natively, so timing costs no exits.
 */
#ifndef TESTGUEST_TIMER_H
#define TESTGUEST_TIMER_H
#include <stdint.h>

extern uint64_t tsc_hz;
extern const char *tsc_reference;	/* "pmtimer", "hpet" or "none" */

/* Measures the TSC rate over about `ms` milliseconds; returns 0 without a reference clock. */
int timer_calibrate(unsigned ms);
uint64_t tsc_to_ns(uint64_t ticks);
uint64_t timer_now_ns(void);
void timer_delay_us(uint64_t us);
#endif
