/*
 * test=hpet: the HPET table's block answers with sane capabilities, its counter runs when
 * enabled, at the advertised period (checked against the ACPI PM timer).
 * hpet=0 on the command line expects no HPET.
 */
#include "suite.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../lib/cmdline.h"
#include "../platform/acpi.h"
#include "../platform/hpet.h"
#include "../platform/ioapic.h"
#include "../platform/lapic.h"
#include "../platform/pmtimer.h"
#include "../platform/timer.h"
#include "../platform/vectors.h"

/* Timer N configuration bits (spec 1.0a §2.3.8). */
#define TN_INT_ENB (1u << 2)
#define TN_TYPE_PERIODIC (1u << 3)
#define TN_PERIODIC_CAP (1u << 4)
#define TN_VAL_SET (1u << 6)
#define TN_ROUTE_SHIFT 9

/* Waits for `want` more interrupts on VECTOR_HPET; returns how many arrived. */
static uint32_t wait_hpet_irqs(uint32_t before, uint32_t want, uint64_t timeout_ns) {
	uint64_t t0 = timer_now_ns();
	while (interrupt_count[VECTOR_HPET] - before < want && timer_now_ns() - t0 < timeout_ns) cpu_relax();
	return interrupt_count[VECTOR_HPET] - before;
}

/*
 * Timer 0 through the I/O APIC (legacy replacement off): a one-shot comparator 2 ms ahead,
 * then periodic mode every 2 ms. The route is the highest I/O APIC input the timer allows.
 */
static void comparator_interrupts(void) {
	uint64_t cfg = mmio_read64(hpet.base + HPET_TIMER_CONFIG(0));
	uint32_t route_cap = (uint32_t)(cfg >> 32);
	int pins = ioapic_pin_count();
	int pin = -1;
	for (int p = 0; p < pins && p < 32; p++)
		if (route_cap & (1u << p)) pin = p;
	if (!check(pin >= 0, "timer 0 route capability 0x%08x has an ioapic input below %d", route_cap, pins)) return;
	mmio_write64(hpet.base + HPET_CONFIG, mmio_read64(hpet.base + HPET_CONFIG) & ~2ULL);	/* LEG_RT_CNF off */
	ioapic_route(pin, VECTOR_HPET, lapic_id(), 0);	/* edge, active high */
	uint64_t ticks_2ms = 2000000000000ULL / hpet.period_fs;

	uint32_t before = 0, got = 0;
	uint64_t base_cfg = cfg & ~(0x1FULL << TN_ROUTE_SHIFT) & ~(uint64_t)(TN_TYPE_PERIODIC | TN_INT_ENB | 2);
	base_cfg |= (uint64_t)pin << TN_ROUTE_SHIFT;
	uint64_t t0 = 0, us = 0, cmp = 0, armed = 0, seen = 0, lead = ticks_2ms;
	int tries = 0;
	for (; tries < 5; tries++, lead *= 4) {
		mmio_write64(hpet.base + HPET_TIMER_CONFIG(0), base_cfg);
		timer_delay_us(5000);	/* anything from an earlier try has landed */
		before = interrupt_count[VECTOR_HPET];
		t0 = timer_now_ns();
		cmp = hpet_counter() + lead;
		mmio_write64(hpet.base + HPET_TIMER_COMPARATOR(0), cmp);
		mmio_write64(hpet.base + HPET_TIMER_CONFIG(0), base_cfg | TN_INT_ENB);
		armed = hpet_counter();
		/*
		 * A one-shot comparator the counter has already passed fires only after a full wrap, as on
		 * hardware. Each access is an exit, which a slow or loaded host (the nested L1: about 1 ms)
		 * can stretch past the lead: then arm again with four times the lead (2 ms up to 512 ms).
		 */
		if (armed >= cmp) continue;
		/* Late is allowed (a loaded host may not run the VMM's timer for a while); early or never is not. */
		got = wait_hpet_irqs(before, 1, 3000000000ULL + (uint64_t)(lead * hpet.period_fs / 1000000));
		seen = hpet_counter();
		us = (timer_now_ns() - t0) / 1000;
		break;
	}
	/* Not early: when the interrupt is seen the counter has reached the comparator. */
	check(tries < 5 && got == 1 && seen >= cmp,
	      "timer 0 one-shot via ioapic pin %d fired once after %lu us, counter 0x%lx >= comparator 0x%lx (%lu us lead, %d re-arms)",
	      pin, us, seen, cmp, (uint64_t)(lead * hpet.period_fs / 1000000000ULL), tries);

	if (cfg & TN_PERIODIC_CAP) {
		before = interrupt_count[VECTOR_HPET];
		mmio_write64(hpet.base + HPET_TIMER_CONFIG(0), base_cfg | TN_TYPE_PERIODIC | TN_VAL_SET);
		/* With VAL_SET the first write sets the comparator, the second the period (§2.3.9.2.2). */
		mmio_write64(hpet.base + HPET_TIMER_COMPARATOR(0), hpet_counter() + ticks_2ms);
		mmio_write64(hpet.base + HPET_TIMER_COMPARATOR(0), ticks_2ms);
		mmio_write64(hpet.base + HPET_TIMER_CONFIG(0), base_cfg | TN_TYPE_PERIODIC | TN_INT_ENB);
		t0 = timer_now_ns();
		got = wait_hpet_irqs(before, 5, 3000000000ULL);
		us = (timer_now_ns() - t0) / 1000;
		check(got >= 5, "timer 0 periodic every 2 ms: %u interrupts in %lu us", got, us);
	}
	mmio_write64(hpet.base + HPET_TIMER_CONFIG(0), base_cfg);
	ioapic_mask(pin);
}

static void run(const char *options) {
	(void)options;
	const char *want = cmdline_get("hpet");
	if (want && want[0] == '0') {
		check(!acpi.have_hpet, "no HPET table, as expected");
		return;
	}
	if (!check(acpi.have_hpet, "acpi HPET table base=0x%lx block_id=0x%x", acpi.hpet_paddr, acpi.hpet_block_id)) return;
	int probed = hpet_probe();
	if (!check(probed, "capabilities vendor=0x%04x rev=%u timers=%u period=%u fs 64bit=%d legacy=%d",
		   hpet.vendor, hpet.revision, hpet.timers, hpet.period_fs, hpet.counter_64bit, hpet.legacy_capable)) return;
	check(hpet.revision != 0 && hpet.timers >= 3, "revision=%u non-zero and at least 3 timers (spec 1.0a §2.3.1)",
	      hpet.revision);
	/* The ACPI table's block ID mirrors the capability register's low 32 bits. */
	check(acpi.hpet_block_id == (uint32_t)(hpet.vendor << 16 | (hpet.legacy_capable << 15) |
					       (hpet.counter_64bit << 13) | ((hpet.timers - 1) << 8) | hpet.revision),
	      "acpi block_id 0x%x matches capabilities", acpi.hpet_block_id);
	hpet_enable();
	uint64_t c0 = hpet_counter();
	uint64_t c1 = c0;
	for (int i = 0; i < 1000 && c1 == c0; i++) c1 = hpet_counter();
	check(c1 > c0, "main counter runs: %lu -> %lu", c0, c1);
	if (pmtimer_present()) {
		/*
		 * Each end is a PM timer read on either side of the HPET read, so the PM interval that matches
		 * the HPET one is known to lie between the inner and the outer difference, however long a read
		 * takes (each is an exit, which a loaded host can stretch to milliseconds).
		 */
		uint32_t p0a = pmtimer_read();
		uint64_t h0 = hpet_counter();
		uint32_t p0b = pmtimer_read();
		while ((hpet_counter() - h0) * (uint64_t)hpet.period_fs < 100000000000000ULL) cpu_relax();	/* 100 ms */
		uint32_t p1a = pmtimer_read();
		uint64_t h1 = hpet_counter();
		uint32_t p1b = pmtimer_read();
		uint64_t hpet_ns = (h1 - h0) * hpet.period_fs / 1000000;
		uint64_t pm_min = (uint64_t)pmtimer_delta(p0b, p1a) * 1000000000ULL / PMTIMER_HZ;
		uint64_t pm_max = (uint64_t)pmtimer_delta(p0a, p1b) * 1000000000ULL / PMTIMER_HZ;
		check(hpet_ns * 100 >= pm_min * 99 && hpet_ns * 100 <= pm_max * 101,
		      "rate against pm timer: hpet=%lu ns, pm between %lu and %lu ns", hpet_ns, pm_min, pm_max);
	}
	comparator_interrupts();
}

const struct suite suite_hpet = { "hpet", "HPET capabilities, counter and rate", run };
