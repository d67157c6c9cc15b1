#include "bench.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"

extern const struct bench bench_pio, bench_mmio, bench_virtio_blk, bench_nvme, bench_ahci, bench_virtio_net;

const struct bench *const benches[] = {
	&bench_pio,
	&bench_mmio,
	&bench_virtio_blk,
	&bench_nvme,
	&bench_ahci,
	&bench_virtio_net,
	0,
};

const struct bench *bench_find(const char *device) {
	for (int i = 0; benches[i]; i++)
		if (strcmp(benches[i]->device, device) == 0) return benches[i];
	return 0;
}

int bench_run_spec(const char *spec) {
	char device[32], workload[32] = "";
	optlist_head(spec, device, sizeof device);
	const char *rest = spec;
	while (*rest && *rest != ',') rest++;
	if (*rest == ',') {
		optlist_head(rest + 1, workload, sizeof workload);
		for (const char *p = workload; *p; p++)
			if (*p == '=') { workload[0] = '\0'; break; }	/* that was an option, not a workload */
	}
	const struct bench *b = bench_find(device);
	if (!b) {
		print("TESTGUEST-BENCH device=%s error=unknown-device\n", device);
		return 1;
	}
	return b->run(workload, spec);
}
