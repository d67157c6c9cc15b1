/*
 * Ring-3 main: find the platform the way an OS does, then run the mode the command line
 * asks for:
 *   test=<suite>[,k=v...]        self-checking suite, then power off
 *   bench=<device>[,<workload>]  timed work printing TESTGUEST-BENCH lines, then power off
 *   shell                        interactive prompt on COM1
 * With no mode it lists the suites and benchmarks and powers off.
 */
#include "arch/x86.h"
#include "bench/bench.h"
#include "drivers/driver.h"
#include "lib/cmdline.h"
#include "lib/print.h"
#include "platform/acpi.h"
#include "platform/console.h"
#include "platform/hpet.h"
#include "platform/ioapic.h"
#include "platform/lapic.h"
#include "platform/pages.h"
#include "platform/pci.h"
#include "platform/power.h"
#include "platform/start_info.h"
#include "platform/timer.h"
#include "shell/shell.h"
#include "suites/suite.h"

static void platform_init(void) {
	const struct hvm_start_info *si = start_info();
	acpi_discover(si ? si->rsdp_paddr : 0);
	lapic_init(acpi.lapic_paddr ? acpi.lapic_paddr : LAPIC_DEFAULT_BASE);
	ioapic_init(acpi.ioapic_paddr ? acpi.ioapic_paddr : IOAPIC_DEFAULT_BASE);
	hpet_probe();
	timer_calibrate(50);
	pages_init();
	pci_default_access = pci_ecam_available() ? PCI_ACCESS_ECAM : PCI_ACCESS_CF8;
	pci_enumerate(pci_default_access);
	pci_assign_unassigned_bars();
	drivers_probe();
}

static void list_modes(void) {
	print("usage: test=<suite>[,k=v] | bench=<device>[,<workload>][,k=v] | shell\n");
	for (int i = 0; suites[i]; i++) print("  test=%-10s %s\n", suites[i]->name, suites[i]->summary);
	for (int i = 0; benches[i]; i++) print("  bench=%-9s %s\n", benches[i]->device, benches[i]->summary);
}

void user_main(void) {
	uint64_t boot_tsc = rdtsc();
	console_init();
	const struct hvm_start_info *si = start_info();
	cmdline_init(start_info_cmdline());
	print("TESTGUEST READY start_info=%s cmdline=\"%s\"\n", si ? "ok" : "missing", cmdline_text());
	platform_init();
	print("TESTGUEST-INFO tsc_hz=%lu tsc_ref=%s setup_ms=%lu acpi=%d cpus=%d pci_functions=%d access=%s\n", tsc_hz,
	      tsc_reference, tsc_to_ns(rdtsc() - boot_tsc) / 1000000, acpi.found, acpi.cpu_count, pci_function_count,
	      pci_default_access == PCI_ACCESS_ECAM ? "ecam" : "cf8");

	const char *test = cmdline_get("test");
	const char *bench = cmdline_get("bench");
	if (test) {
		char name[32];
		optlist_head(test, name, sizeof name);
		const char *options = test;
		while (*options && *options != ',') options++;
		if (*options == ',') options++;
		const struct suite *s = suite_find(name);
		if (s) {
			suite_run(s, options);
		} else {
			print("TESTGUEST %s FAIL unknown suite\n", name);
			print("TESTGUEST %s DONE pass=0 fail=1\n", name);
		}
	} else if (bench) {
		bench_run_spec(bench);
	} else if (cmdline_get("shell")) {
		shell_run();
	} else {
		list_modes();
	}
	power_off();
}
