/*
 * test=pmtimer: the ACPI PM timer exists where the FADT says, only counts up, and runs at
 * 3.579545 MHz measured against the HPET (or the TSC rate from CPUID when no HPET).
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../platform/acpi.h"
#include "../platform/hpet.h"
#include "../platform/pmtimer.h"
#include "../platform/timer.h"

static void run(const char *options) {
	(void)options;
	if (!check(pmtimer_present(), "fadt pm_tmr port=0x%x len=%u 32bit=%d", acpi.pm_tmr, acpi.pm_tmr_len,
		   acpi.pm_tmr_32bit)) return;
	check(acpi.pm_tmr_len == 4, "fadt PM_TMR_LEN=%u", acpi.pm_tmr_len);
	uint32_t first = pmtimer_read(), prev = first;
	int backwards = 0;
	for (int i = 0; i < 2000; i++) {
		uint32_t now = pmtimer_read();
		/* A step larger than half the range means the counter went backwards. */
		if (pmtimer_delta(prev, now) > (acpi.pm_tmr_32bit ? 0x80000000u : 0x800000u)) backwards++;
		prev = now;
	}
	uint32_t advanced = pmtimer_delta(first, prev);
	check(advanced > 0 && !backwards, "monotonic over 2000 reads: advanced=%u backwards=%d", advanced, backwards);
	if (hpet.present && hpet_enable()) {
		/*
		 * Each end is an HPET read on either side of the PM timer read, so the HPET interval that
		 * matches the PM one lies between the inner and the outer difference, however long a read
		 * takes (each is an exit, which a loaded host can stretch to milliseconds); 1% tolerance.
		 */
		uint64_t h0a = hpet_counter();
		uint32_t p0 = pmtimer_read();
		uint64_t h0b = hpet_counter();
		while (pmtimer_delta(p0, pmtimer_read()) < PMTIMER_HZ / 10) cpu_relax();	/* 100 ms */
		uint64_t h1a = hpet_counter();
		uint32_t p1 = pmtimer_read();
		uint64_t h1b = hpet_counter();
		uint64_t pm_ns = (uint64_t)pmtimer_delta(p0, p1) * 1000000000ULL / PMTIMER_HZ;
		uint64_t hpet_min = (h1a - h0b) * hpet.period_fs / 1000000;
		uint64_t hpet_max = (h1b - h0a) * hpet.period_fs / 1000000;
		check(pm_ns * 100 >= hpet_min * 99 && pm_ns * 100 <= hpet_max * 101,
		      "rate against hpet: pm=%lu ns, hpet between %lu and %lu ns", pm_ns, hpet_min, hpet_max);
	} else {
		uint64_t t0 = rdtsc();
		uint32_t p0 = pmtimer_read(), p1 = p0;
		while (pmtimer_delta(p0, p1) < PMTIMER_HZ / 10) p1 = pmtimer_read();
		uint64_t ns = tsc_to_ns(rdtsc() - t0);
		check(ns > 90000000ULL && ns < 110000000ULL, "100 ms of pm timer took %lu ns of tsc", ns);
	}
}

const struct suite suite_pmtimer = { "pmtimer", "ACPI PM timer location, monotonicity and rate", run };
