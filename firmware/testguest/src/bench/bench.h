/*
 * Timed workloads: bench=<device>[,<workload>][,key=value...] prints one or more lines
 *   TESTGUEST-BENCH device=<device> workload=<workload> key=value ...
 * Adding one: a file defining a `const struct bench`, one line in bench/registry.c.
 */
#ifndef TESTGUEST_BENCH_H
#define TESTGUEST_BENCH_H

struct bench {
	const char *device;
	const char *summary;
	/* workload: the second list element ("" when absent); options: the whole list. */
	int (*run)(const char *workload, const char *options);
};

extern const struct bench *const benches[];
const struct bench *bench_find(const char *device);
/* Parses "device,workload,k=v" and runs it; returns non-zero on error. */
int bench_run_spec(const char *spec);
#endif
