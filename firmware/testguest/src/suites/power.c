/*
 * test=power,how=s5|reset|cf9|kbc|triplefault: ends the VM in the chosen way. The host
 * checks the VM's exit; if the guest is still running afterwards the suite reports FAIL.
 *   s5          PM1a_CNT <- SLP_TYP(\_S5) | SLP_EN
 *   reset       the FADT reset register and value
 *   cf9         port 0xCF9 <- 0x06 (bhyve's and ICH's reset control)
 *   kbc         8042 command 0xFE
 *   triplefault an empty IDT and a fault
 */
#include "suite.h"
#include "../arch/syscall.h"
#include "../arch/x86.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/acpi.h"
#include "../platform/power.h"

static void run(const char *options) {
	char how[16] = "s5";
	optlist_get(options, "how", how, sizeof how);
	if (strcmp(how, "s5") == 0) {
		struct power_method m = power_s5_method();
		if (!check(m.pm1a_cnt != 0, "s5 via pm1a_cnt=0x%x slp_typ=%u (%s)", m.pm1a_cnt, m.slp_typ, m.slp_typ_source))
			return;
		power_s5();
	} else if (strcmp(how, "reset") == 0) {
		if (!check(acpi.reset_reg.address != 0, "reset via fadt reset_reg space=%u addr=0x%lx value=0x%x",
			   acpi.reset_reg.space, acpi.reset_reg.address, acpi.reset_value))
			return;
		power_reset_fadt();
	} else if (strcmp(how, "cf9") == 0) {
		print("TESTGUEST power INFO reset via port 0xcf9 value 0x06\n");
		power_reset_cf9();
	} else if (strcmp(how, "kbc") == 0) {
		/* An absent 8042 floats the status port to 0xFF. */
		uint8_t status = inb(0x64);
		if (!check(status != 0xFF, "8042 present status=0x%02x, sending command 0xfe", status)) return;
		power_reset_kbc();
	} else if (strcmp(how, "triplefault") == 0) {
		print("TESTGUEST power INFO triple fault via a cleared idt\n");
		triple_fault();
	} else {
		check(0, "unknown how=%s (s5, reset, cf9, kbc, triplefault)", how);
		return;
	}
	check(0, "still running after how=%s", how);
}

const struct suite suite_power = { "power", "power off or reset the VM (how=s5|reset|cf9|kbc|triplefault)", run };
