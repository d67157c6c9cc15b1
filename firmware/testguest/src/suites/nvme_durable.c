/*
 * test=nvme-durable[,seed=N][,records=N][,batch=4]: numbered 4 KiB records (record i at sector
 * 8i, the LBA-stamped pattern under `seed`) written in batches of 1..batch commands in flight,
 * each batch followed by a Flush (NVMe 1.4 §6.8: data the controller completed is on
 * non-volatile media once Flush completes). Only then does the guest print
 *   TESTGUEST durable flushed=N         (records 0..N-1 are on stable storage)
 * The host kills the VMM at a random moment and checks every record so reported is in the file.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../drivers/blk_pattern.h"
#include "../drivers/nvme.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../platform/timer.h"

#define RECORD_BYTES 4096u
#define MAX_BATCH 8
#define SECOND 1000000000ULL

static int wait_one(struct nvme *c, int *st) {
	uint64_t t0 = timer_now_ns();
	int s;
	while ((s = nvme_reap(c, 1, st)) < 0 && timer_now_ns() - t0 < 10 * SECOND) cpu_relax();
	nvme_cq_ring(c, 1);
	return s;
}

static void run(const char *options) {
	struct pci_function *f = driver_device("nvme", 0);
	if (!check(f != 0, "NVMe controller bound to its driver")) return;
	struct nvme *c = f->driver_state;
	if (!check(c->setup_error == 0 && c->nio >= 1, "controller up with an I/O queue (step %d)", c->setup_error)) return;
	uint32_t seed = (uint32_t)optlist_get_u64(options, "seed", 1);
	uint32_t lbas = RECORD_BYTES / c->lba_bytes;
	uint64_t records = c->nsze / lbas;
	uint64_t want = optlist_get_u64(options, "records", records);
	if (want < records) records = want;
	uint64_t batch_max = optlist_get_u64(options, "batch", 4);
	if (batch_max < 1) batch_max = 1;
	if (batch_max > MAX_BATCH) batch_max = MAX_BATCH;
	static uint8_t *buf[MAX_BATCH];
	for (int i = 0; i < MAX_BATCH; i++)
		if (!buf[i]) buf[i] = dma_alloc(RECORD_BYTES);
	print("TESTGUEST durable INFO records=%lu batch<=%lu seed=%u lba=%u\n", records, batch_max, seed, c->lba_bytes);
	uint32_t rng = seed * 2654435761u + 1;
	uint64_t next = 0;
	uint32_t errors = 0;
	while (next < records && !errors) {
		rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5;
		uint32_t n = 1 + rng % (uint32_t)batch_max;
		if (n > records - next) n = (uint32_t)(records - next);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t sector = (next + i) * (RECORD_BYTES / 512);
			blk_pattern_fill(buf[i], sector, RECORD_BYTES / 512, seed);
			uint64_t slba = (next + i) * lbas;
			struct nvme_cmd cmd = { .cdw0 = NVME_OP_WRITE, .nsid = 1, .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
						.cdw12 = lbas - 1 };
			nvme_queue_cmd(c, 1, (int)i, &cmd, buf[i], RECORD_BYTES);
		}
		nvme_ring(c, 1);
		for (uint32_t done = 0; done < n; done++) {
			int st = -1;
			if (wait_one(c, &st) < 0 || st != 0) { errors++; break; }
		}
		if (errors) break;
		struct nvme_cmd fl = { .cdw0 = NVME_OP_FLUSH, .nsid = 1 };
		nvme_queue_cmd(c, 1, 0, &fl, 0, 0);
		nvme_ring(c, 1);
		int st = -1;
		if (wait_one(c, &st) < 0 || st != 0) { errors++; break; }
		next += n;
		print("TESTGUEST durable flushed=%lu\n", next);
	}
	check(errors == 0, "%lu records written and flushed", next);
}

const struct suite suite_nvme_durable = { "nvme-durable",
	"numbered records, each batch flushed then reported (TESTGUEST durable flushed=N)", run };
