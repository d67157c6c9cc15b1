/*
 * Ring-3 main: find the platform the way an OS does, then run the mode the command line
 * asks for (test=, bench=, shell). Every test or benchmark ends by powering off.
 */
#include "arch/x86.h"
#include "lib/cmdline.h"
#include "lib/print.h"
#include "platform/acpi.h"
#include "platform/console.h"
#include "platform/power.h"
#include "platform/start_info.h"

void user_main(void) {
	uint64_t boot_tsc = rdtsc();
	console_init();
	const struct hvm_start_info *si = start_info();
	cmdline_init(start_info_cmdline());
	print("TESTGUEST READY tsc=%lu start_info=%s cmdline=\"%s\"\n", boot_tsc, si ? "ok" : "missing",
	      cmdline_text());
	acpi_discover(si ? si->rsdp_paddr : 0);
	print("acpi found=%d rsdp=0x%lx pm1a_cnt=0x%x s5=%d\n", acpi.found, acpi.rsdp_paddr, acpi.pm1a_cnt, acpi.s5_slp_typ_a);
	power_off();
}
