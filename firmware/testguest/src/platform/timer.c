#include "timer.h"
#include "hpet.h"
#include "pmtimer.h"
#include "../arch/x86.h"

uint64_t tsc_hz;
const char *tsc_reference = "none";

static int calibrate_pmtimer(unsigned ms) {
	uint32_t want = (uint32_t)((uint64_t)PMTIMER_HZ * ms / 1000);
	uint32_t p0 = pmtimer_read();
	uint64_t t0 = rdtsc();
	uint32_t elapsed = 0;
	uint64_t t1 = t0;
	while (elapsed < want) {
		uint32_t p = pmtimer_read();
		t1 = rdtsc();
		elapsed = pmtimer_delta(p0, p);
	}
	if (!elapsed) return 0;
	tsc_hz = (t1 - t0) * PMTIMER_HZ / elapsed;
	tsc_reference = "pmtimer";
	return 1;
}

static int calibrate_hpet(unsigned ms) {
	uint64_t want_fs = (uint64_t)ms * 1000000000000ULL;
	uint64_t h0 = hpet_counter();
	uint64_t t0 = rdtsc(), t1 = t0, h1 = h0;
	while ((h1 - h0) * hpet.period_fs < want_fs) {
		h1 = hpet_counter();
		t1 = rdtsc();
	}
	/* tsc_hz = dtsc / (dh * period_fs / 1e15), ordered to stay within 64 bits. */
	uint64_t elapsed_ns = (h1 - h0) * (hpet.period_fs / 1000) / 1000;
	if (!elapsed_ns) return 0;
	tsc_hz = (t1 - t0) * 1000000000ULL / elapsed_ns;
	tsc_reference = "hpet";
	return 1;
}

int timer_calibrate(unsigned ms) {
	if (pmtimer_present()) return calibrate_pmtimer(ms);
	if (hpet.present && hpet_enable()) return calibrate_hpet(ms);
	return 0;
}

uint64_t tsc_to_ns(uint64_t ticks) {
	if (!tsc_hz) return 0;
	/* Split to avoid overflowing ticks * 1e9 for long intervals. */
	return ticks / tsc_hz * 1000000000ULL + ticks % tsc_hz * 1000000000ULL / tsc_hz;
}

uint64_t timer_now_ns(void) { return tsc_to_ns(rdtsc()); }

void timer_delay_us(uint64_t us) {
	uint64_t start = rdtsc();
	uint64_t ticks = tsc_hz ? us * tsc_hz / 1000000 : us * 3000;
	while (rdtsc() - start < ticks) cpu_relax();
}
