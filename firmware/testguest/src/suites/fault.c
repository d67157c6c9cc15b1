/*
 * test=fault,kind=ud|pf|gp|de: raises one exception in ring 3 on purpose, to check the
 * exception path: the ring-0 handler must print
 *   TESTGUEST EXCEPTION vector=N (...) error=... rip=... cr2=...
 * and power the VM off. The host compares vector, error code and CR2 with what is expected
 * here: #UD 6; #PF 14 at 0x1000000000 (above the 4 GiB identity map, error 0x4 = user read
 * of a non-present page); #GP 13 from a non-canonical address; #DE 0.
 */
#include "suite.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"

static void run(const char *options) {
	char kind[8] = "ud";
	optlist_get(options, "kind", kind, sizeof kind);
	print("TESTGUEST fault INFO raising %s in ring 3\n", kind);
	if (strcmp(kind, "ud") == 0) {
		__asm__ volatile("ud2");
	} else if (strcmp(kind, "pf") == 0) {
		(void)*(volatile uint32_t *)0x1000000000ULL;
	} else if (strcmp(kind, "gp") == 0) {
		(void)*(volatile uint32_t *)0x8000000000000000ULL;
	} else if (strcmp(kind, "de") == 0) {
		volatile uint32_t zero = 0;
		uint32_t one = 1;
		__asm__ volatile("divl %2" : "+a"(one) : "d"(0), "r"(zero));
	} else {
		check(0, "unknown kind=%s (ud, pf, gp, de)", kind);
		return;
	}
	check(0, "still running after raising %s", kind);
}

const struct suite suite_fault = { "fault", "raise an exception in ring 3 (kind=ud|pf|gp|de) to test reporting", run };
