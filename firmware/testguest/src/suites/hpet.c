/*
 * test=hpet: the HPET table's block answers with sane capabilities, its counter runs when
 * enabled, at the advertised period (checked against the ACPI PM timer).
 * hpet=0 on the command line expects no HPET.
 */
#include "suite.h"
#include "../lib/cmdline.h"
#include "../platform/acpi.h"
#include "../platform/hpet.h"
#include "../platform/pmtimer.h"

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
		uint32_t p0 = pmtimer_read();
		uint64_t h0 = hpet_counter(), h1 = h0;
		while ((h1 - h0) * (uint64_t)hpet.period_fs < 100000000000000ULL) h1 = hpet_counter();	/* 100 ms */
		uint32_t p1 = pmtimer_read();
		uint64_t hpet_ns = (h1 - h0) * hpet.period_fs / 1000000;
		uint64_t pm_ns = (uint64_t)pmtimer_delta(p0, p1) * 1000000000ULL / PMTIMER_HZ;
		uint64_t diff = hpet_ns > pm_ns ? hpet_ns - pm_ns : pm_ns - hpet_ns;
		check(diff * 100 <= hpet_ns, "rate against pm timer: hpet=%lu ns pm=%lu ns", hpet_ns, pm_ns);
	}
}

const struct suite suite_hpet = { "hpet", "HPET capabilities, counter and rate", run };
