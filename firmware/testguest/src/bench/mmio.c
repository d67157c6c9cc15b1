/*
 * bench=mmio[,hpet|lapic|ecam][,n=20000]: the cost of one MMIO read that leaves the guest.
 *   hpet   the HPET main counter: a device model in the VMM's user space (QEMU; tsbhyve,
 *          since KVM has no HPET)
 *   lapic  the LAPIC version register: emulated inside the host kernel by KVM
 *   ecam   PCI config dword 0 of 00:00.0 through ECAM: the VMM's PCI config path
 * Prints: TESTGUEST-BENCH device=mmio workload=<w> addr=0x... iterations=N total_ns=T ns_per_exit=X.YY tsc_hz=H
 */
#include "bench.h"
#include "../arch/x86.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/acpi.h"
#include "../platform/hpet.h"
#include "../platform/lapic.h"
#include "../platform/timer.h"

static uint64_t read_loop(uintptr_t addr, uint64_t n) {
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++) (void)mmio_read32(addr);
	return rdtsc() - t0;
}

static int run(const char *workload, const char *options) {
	const char *w = workload[0] ? workload : "hpet";
	uintptr_t addr = 0;
	if (strcmp(w, "hpet") == 0 && hpet.present) addr = hpet.base + HPET_COUNTER;
	else if (strcmp(w, "lapic") == 0) addr = lapic_base + LAPIC_VERSION;
	else if (strcmp(w, "ecam") == 0 && acpi.have_mcfg) addr = (uintptr_t)acpi.ecam_paddr;
	uint64_t n = optlist_get_u64(options, "n", 20000);
	if (!addr || !n || !tsc_hz) {
		print("TESTGUEST-BENCH device=mmio workload=%s error=%s\n", w,
		      !addr ? "unavailable" : !n ? "n=0" : "uncalibrated-tsc");
		return 1;
	}
	if (strcmp(w, "hpet") == 0) hpet_enable();
	read_loop(addr, n / 20 + 1);	/* warm up */
	uint64_t ns = tsc_to_ns(read_loop(addr, n));
	uint64_t per_100 = ns * 100 / n;
	print("TESTGUEST-BENCH device=mmio workload=%s addr=0x%lx iterations=%lu total_ns=%lu ns_per_exit=%lu.%02lu tsc_hz=%lu\n",
	      w, (unsigned long)addr, n, ns, per_100 / 100, per_100 % 100, tsc_hz);
	return 0;
}

const struct bench bench_mmio = { "mmio", "MMIO read exit round trip from ring 3 (hpet|lapic|ecam, n=)", run };
