/*
 * bench=nvme,<workload>[,qd=N][,ms=1000][,queues=1][,dbbuf=0|1][,irq=poll|msix]: the first NVMe
 * controller under load, timed with the TSC.
 *   randread4k   4 KiB reads at random 4 KiB-aligned offsets, qd=32 in flight
 *   randwrite4k  the same with writes
 *   seqread128k  128 KiB reads in order (wrapping at the end; a PRP list each), qd=4
 *   doorbell     one 4 KiB read at a time (SQ doorbell, controller, CQ entry: the round trip), and
 *                the cost of a bare SQ tail doorbell write that adds nothing
 * dbbuf=1 turns on shadow doorbells (Doorbell Buffer Config) first. Completions are polled with
 * CQ interrupts off unless irq=msix. The in-flight commands are spread over `queues` I/O queues.
 * A completion naming no command in flight, or a change to the CPU's tables (arch/trap.h cpu_tables_sum, checked
 * every 100 ms), counts as an error and is reported on its own line.
 * Prints: TESTGUEST-BENCH device=nvme workload=W qd=N ops=N total_ns=N iops=N mbps=X.YY
 *         ns_per_op=N errors=N completion=poll|msix queues=N shadow=0|1 [doorbell_ns=N]
 */
#include "bench.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../drivers/nvme.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define MAX_QD 32

static uint8_t *buffers[MAX_QD];

static uint64_t xorshift(uint64_t *s) {
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void report(const char *workload, int qd, uint64_t ops, uint64_t ns, uint32_t bytes_per_op, uint32_t errors,
		   const struct nvme *c, const char *extra) {
	uint64_t iops = ns ? ops * 1000000000ULL / ns : 0;
	uint64_t mbps_100 = ns ? ops * bytes_per_op * 100ULL * 1000ULL / ns : 0;
	print("TESTGUEST-BENCH device=nvme workload=%s qd=%d ops=%lu total_ns=%lu iops=%lu mbps=%lu.%02lu ns_per_op=%lu "
	      "errors=%u completion=%s queues=%d shadow=%d%s\n",
	      workload, qd, ops, ns, iops, mbps_100 / 100, mbps_100 % 100, ops ? ns / ops : 0, errors, nvme_irq_name(c->irq),
	      c->nio, c->dbbuf, extra);
}

/* Command `i` of the run goes to queue 1 + i % queues, slot i / queues. */
static void submit(struct nvme *c, int i, uint8_t op, uint64_t slba, uint32_t bytes) {
	int q = 1 + i % c->nio, slot = i / c->nio;
	struct nvme_cmd cmd = { .cdw0 = op, .nsid = 1, .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
				.cdw12 = bytes / c->lba_bytes - 1 };
	nvme_queue_cmd(c, q, slot, &cmd, buffers[i], bytes);
}

/* Keeps `qd` commands in flight for `ms` milliseconds; returns the ops completed. */
static uint64_t load(struct nvme *c, uint8_t op, uint32_t bytes, int sequential, int qd, uint64_t ms, uint64_t *ns_out,
		     uint32_t *errors) {
	uint64_t lbas_per_op = bytes / c->lba_bytes, blocks = c->nsze / lbas_per_op;
	uint64_t rng = 0x9E3779B97F4A7C15ULL, seq = 0, ops = 0;
	int inflight = 0, stop = 0;
	uint32_t busy = 0;	/* bit i: command i of the run is in flight */
	*errors = 0;
	const uint64_t tables = cpu_tables_sum();
	uint64_t t0 = rdtsc(), limit = ms * (tsc_hz / 1000), last_progress = t0, last_check = t0;
	for (int i = 0; i < qd; i++) {
		uint64_t blk = sequential ? seq++ % blocks : xorshift(&rng) % blocks;
		submit(c, i, op, blk * lbas_per_op, bytes);
		busy |= 1u << i;
		inflight++;
	}
	for (int q = 1; q <= c->nio; q++) nvme_ring(c, q);
	for (;;) {
		int got = 0;
		for (int q = 1; q <= c->nio; q++) {
			int st, slot, rung = 0;
			while ((slot = nvme_reap(c, q, &st)) >= 0) {
				got++;
				/* A completion must name a command in flight on this queue: anything else is the
				 * device's error, reported and never used as an index (qd <= nio * NVME_SLOTS, so
				 * i < qd also bounds the slot). */
				int i = slot * c->nio + (q - 1);
				if (i >= qd || !(busy & (1u << i))) {
					print("TESTGUEST nvme INFO bench: queue %d completed command id %d, not in flight (status 0x%x)\n", q,
					      slot, st);
					(*errors)++;
					continue;
				}
				busy &= ~(1u << i);
				ops++;
				inflight--;
				if (st) (*errors)++;
				if (!stop) {
					uint64_t blk = sequential ? seq++ % blocks : xorshift(&rng) % blocks;
					submit(c, i, op, blk * lbas_per_op, bytes);
					busy |= 1u << i;
					inflight++;
					rung = 1;
				}
			}
			nvme_cq_ring(c, q);
			if (rung) nvme_ring(c, q);
		}
		uint64_t now = rdtsc();
		if (now - last_check > tsc_hz / 10) {
			last_check = now;
			if (cpu_tables_sum() != tables) {
				print("TESTGUEST nvme INFO bench: the IDT, GDT, TSS or page tables changed during the load\n");
				(*errors)++;
				break;
			}
		}
		if (got) last_progress = now;
		else if (now - last_progress > 10 * tsc_hz) {
			(*errors)++;
			break;
		}
		if (now - t0 >= limit) stop = 1;
		if (stop && inflight == 0) break;
		if (!got) cpu_relax();
	}
	*ns_out = tsc_to_ns(rdtsc() - t0);
	return ops;
}

static int run(const char *workload, const char *options) {
	struct pci_function *f = driver_device("nvme", 0);
	if (!f || !tsc_hz) {
		print("TESTGUEST-BENCH device=nvme workload=%s error=%s\n", workload, f ? "uncalibrated-tsc" : "no-device");
		return 1;
	}
	struct nvme *c = f->driver_state;
	char mode[8] = "poll";
	optlist_get(options, "irq", mode, sizeof mode);
	int queues = (int)optlist_get_u64(options, "queues", 1);
	if (queues < 1) queues = 1;
	if (nvme_setup(c, strcmp(mode, "msix") == 0 ? NVME_IRQ_MSIX : NVME_IRQ_POLL, queues, 256,
		       (int)optlist_get_u64(options, "dbbuf", 0)) != 0 || c->nio < 1) {
		print("TESTGUEST-BENCH device=nvme workload=%s error=setup-failed\n", workload);
		return 1;
	}
	for (int i = 0; i < MAX_QD; i++)
		if (!buffers[i]) buffers[i] = dma_alloc(128 * 1024);
	uint64_t ms = optlist_get_u64(options, "ms", 1000);
	int is_seq = strcmp(workload, "seqread128k") == 0, is_db = strcmp(workload, "doorbell") == 0;
	int qd = (int)optlist_get_u64(options, "qd", is_seq ? 4 : is_db ? 1 : 32);
	if (qd < 1) qd = 1;
	if (qd > MAX_QD) qd = MAX_QD;
	if (qd > c->nio * NVME_SLOTS) qd = c->nio * NVME_SLOTS;
	uint64_t ns = 0;
	uint32_t errors = 0;
	if (strcmp(workload, "randread4k") == 0 || strcmp(workload, "randwrite4k") == 0) {
		int write = workload[4] == 'w';
		uint64_t ops = load(c, write ? NVME_OP_WRITE : NVME_OP_READ, 4096, 0, qd, ms, &ns, &errors);
		report(workload, qd, ops, ns, 4096, errors, c, "");
	} else if (is_seq) {
		uint64_t ops = load(c, NVME_OP_READ, 128 * 1024, 1, qd, ms, &ns, &errors);
		report(workload, qd, ops, ns, 128 * 1024, errors, c, "");
	} else if (is_db) {
		/* The bare doorbell: the SQ tail the controller already has. */
		uint64_t n_bare = 2000, t0 = rdtsc();
		uint32_t off = 0x1000 + 2 * c->dstrd;
		for (uint64_t i = 0; i < n_bare; i++) nvme_doorbell_raw(c, off, c->io[1].sq_tail);
		uint64_t bare_ns = tsc_to_ns(rdtsc() - t0) / n_bare;
		uint64_t ops = load(c, NVME_OP_READ, 4096, 0, 1, ms, &ns, &errors);
		char extra[48];
		format(extra, sizeof extra, " doorbell_ns=%lu", bare_ns);
		report(workload, 1, ops, ns, 4096, errors, c, extra);
	} else {
		print("TESTGUEST-BENCH device=nvme workload=%s error=unknown-workload\n", workload);
		return 1;
	}
	return errors ? 1 : 0;
}

const struct bench bench_nvme = { "nvme",
	"NVMe load: randread4k|randwrite4k|seqread128k|doorbell (qd=, ms=, queues=, dbbuf=0|1, irq=poll|msix)", run };
