/*
 * bench=pio[,out|in][,port=0x80][,n=20000]: the cost of one port-I/O exit round trip, as
 * seen from ring 3 (guest -> VMM -> guest). Port 0x80 is the POST diagnostic port, which
 * QEMU and bhyve both accept and ignore; any unused port (reads all ones) works too.
 * Prints: TESTGUEST-BENCH device=pio workload=out port=0x80 iterations=N total_ns=T ns_per_exit=X.YY tsc_hz=H
 */
#include "bench.h"
#include "../arch/x86.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

static uint64_t run_loop(int is_in, uint16_t port, uint64_t n) {
	uint64_t t0 = rdtsc();
	if (is_in) {
		for (uint64_t i = 0; i < n; i++) (void)inb(port);
	} else {
		for (uint64_t i = 0; i < n; i++) outb(port, (uint8_t)i);
	}
	return rdtsc() - t0;
}

static int run(const char *workload, const char *options) {
	int is_in = strcmp(workload, "in") == 0;
	if (workload[0] && !is_in && strcmp(workload, "out") != 0) {
		print("TESTGUEST-BENCH device=pio workload=%s error=unknown-workload\n", workload);
		return 1;
	}
	uint16_t port = (uint16_t)optlist_get_u64(options, "port", 0x80);
	uint64_t n = optlist_get_u64(options, "n", 20000);
	if (!n || !tsc_hz) {
		print("TESTGUEST-BENCH device=pio error=%s\n", n ? "uncalibrated-tsc" : "n=0");
		return 1;
	}
	run_loop(is_in, port, n / 20 + 1);	/* warm up the exit path */
	uint64_t ns = tsc_to_ns(run_loop(is_in, port, n));
	uint64_t per_100 = ns * 100 / n;	/* two decimals without floating point */
	print("TESTGUEST-BENCH device=pio workload=%s port=0x%x iterations=%lu total_ns=%lu ns_per_exit=%lu.%02lu tsc_hz=%lu\n",
	      is_in ? "in" : "out", port, n, ns, per_100 / 100, per_100 % 100, tsc_hz);
	return 0;
}

const struct bench bench_pio = { "pio", "port I/O exit round trip from ring 3 (out|in, port=, n=)", run };
