/*
 * bench=virtio-blk,<workload>[,qd=N][,ms=1000][,irq=poll|msix|msi|intx]: the first virtio-blk
 * disk under load, timed with the TSC.
 *   randread4k   4 KiB reads at random 4 KiB-aligned offsets, qd=32 in flight
 *   randwrite4k  the same with writes
 *   seqread128k  128 KiB reads in order (wrapping at the end), qd=4
 *   notify       one GET_ID at a time (doorbell, device, used ring: the round trip), and the
 *                cost of a bare doorbell write with nothing queued
 * Completions are polled from the used ring with interrupts suppressed
 * (VIRTQ_AVAIL_F_NO_INTERRUPT) unless irq= says otherwise, so the figure is the device's,
 * not this guest's slow ring 0. New requests are published as completions are reaped and
 * the doorbell is rung once per batch (and only when the device has not asked for quiet).
 * Prints: TESTGUEST-BENCH device=virtio-blk workload=W qd=N ops=N total_ns=N iops=N mbps=X.YY
 *         ns_per_op=N errors=N completion=poll
 */
#include "bench.h"
#include "../arch/x86.h"
#include "../drivers/virtio_blk.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define MAX_QD 32
#define SECTORS_4K 8u
#define SECTORS_128K 256u

static uint8_t *buffers[MAX_QD];

static uint64_t xorshift(uint64_t *s) {
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void report(const char *workload, int qd, uint64_t ops, uint64_t ns, uint32_t bytes_per_op, uint32_t errors,
		   const struct virtio_blk *b, const char *extra) {
	uint64_t iops = ns ? ops * 1000000000ULL / ns : 0;
	uint64_t mbps_100 = ns ? ops * bytes_per_op * 100ULL * 1000ULL / ns : 0;	/* MB/s (10^6) x 100 */
	print("TESTGUEST-BENCH device=virtio-blk workload=%s qd=%d ops=%lu total_ns=%lu iops=%lu mbps=%lu.%02lu ns_per_op=%lu "
	      "errors=%u completion=%s queue_size=%u%s\n",
	      workload, qd, ops, ns, iops, mbps_100 / 100, mbps_100 % 100, ops ? ns / ops : 0, errors, vblk_irq_name(b->irq),
	      b->q.size, extra);
}

/* Keeps `qd` requests in flight for `ms` milliseconds; returns the ops completed. */
static uint64_t load(struct virtio_blk *b, uint32_t type, uint32_t sectors, uint32_t bytes, int sequential, int qd,
		     uint64_t ms, uint64_t *ns_out, uint32_t *errors) {
	uint64_t blocks = b->capacity / sectors;
	uint64_t rng = 0x9E3779B97F4A7C15ULL, seq = 0;
	uint64_t ops = 0;
	int inflight = 0, stop = 0;
	*errors = 0;
	uint64_t t0 = rdtsc(), limit = ms * (tsc_hz / 1000), last_progress = t0;
	for (int s = 0; s < qd; s++) {
		uint64_t blk = sequential ? seq++ % blocks : xorshift(&rng) % blocks;
		vblk_submit(b, s, type, blk * sectors, buffers[s], bytes);
		inflight++;
	}
	vblk_kick(b);
	for (;;) {
		int s, got = 0;
		while ((s = vblk_reap(b)) >= 0) {
			got++;
			ops++;
			inflight--;
			if (b->status[s] != VIRTIO_BLK_S_OK) (*errors)++;
			if (!stop) {
				uint64_t blk = sequential ? seq++ % blocks : xorshift(&rng) % blocks;
				vblk_submit(b, s, type, blk * sectors, buffers[s], bytes);
				inflight++;
			}
		}
		uint64_t now = rdtsc();
		if (got) {
			last_progress = now;
			if (!stop) vblk_kick(b);
		} else if (now - last_progress > 10 * tsc_hz) {
			(*errors)++;	/* no completion for 10 s: give up */
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
	struct pci_function *f = driver_device("virtio-blk", 0);
	if (!f || !tsc_hz) {
		print("TESTGUEST-BENCH device=virtio-blk workload=%s error=%s\n", workload, f ? "uncalibrated-tsc" : "no-device");
		return 1;
	}
	struct virtio_blk *b = f->driver_state;
	char mode[8] = "poll";
	optlist_get(options, "irq", mode, sizeof mode);
	enum vblk_irq irq = strcmp(mode, "msix") == 0 ? VBLK_IRQ_MSIX : strcmp(mode, "msi") == 0 ? VBLK_IRQ_MSI :
			    strcmp(mode, "intx") == 0 ? VBLK_IRQ_INTX : VBLK_IRQ_POLL;
	if (vblk_setup(b, irq) != 0) {
		print("TESTGUEST-BENCH device=virtio-blk workload=%s error=setup-failed\n", workload);
		return 1;
	}
	for (int i = 0; i < MAX_QD; i++)
		if (!buffers[i]) buffers[i] = dma_alloc(SECTORS_128K * VIRTIO_BLK_SECTOR);
	uint64_t ms = optlist_get_u64(options, "ms", 1000);
	int is_seq = strcmp(workload, "seqread128k") == 0;
	int qd = (int)optlist_get_u64(options, "qd", is_seq ? 4 : strcmp(workload, "notify") == 0 ? 1 : 32);
	if (qd < 1) qd = 1;
	if (qd > MAX_QD) qd = MAX_QD;
	if (qd > b->slots) qd = b->slots;
	uint64_t ns = 0;
	uint32_t errors = 0;
	if (strcmp(workload, "randread4k") == 0 || strcmp(workload, "randwrite4k") == 0) {
		int write = workload[4] == 'w';
		uint64_t ops = load(b, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, SECTORS_4K, SECTORS_4K * VIRTIO_BLK_SECTOR, 0, qd, ms, &ns, &errors);
		report(workload, qd, ops, ns, SECTORS_4K * VIRTIO_BLK_SECTOR, errors, b, "");
	} else if (is_seq) {
		uint64_t ops = load(b, VIRTIO_BLK_T_IN, SECTORS_128K, SECTORS_128K * VIRTIO_BLK_SECTOR, 1, qd, ms, &ns, &errors);
		report(workload, qd, ops, ns, SECTORS_128K * VIRTIO_BLK_SECTOR, errors, b, "");
	} else if (strcmp(workload, "notify") == 0) {
		/* The bare doorbell first: a notify with nothing new in the avail ring. */
		uint64_t n_bare = 2000, t0 = rdtsc();
		for (uint64_t i = 0; i < n_bare; i++) outw(b->t.io + VIRTIO_QUEUE_NOTIFY, 0);
		uint64_t bare_ns = tsc_to_ns(rdtsc() - t0) / n_bare;
		uint64_t ops = load(b, VIRTIO_BLK_T_GET_ID, 1, VIRTIO_BLK_ID_BYTES, 0, 1, ms, &ns, &errors);
		char extra[48];
		format(extra, sizeof extra, " doorbell_ns=%lu", bare_ns);
		report(workload, 1, ops, ns, VIRTIO_BLK_ID_BYTES, errors, b, extra);
	} else {
		print("TESTGUEST-BENCH device=virtio-blk workload=%s error=unknown-workload\n", workload);
		return 1;
	}
	return errors ? 1 : 0;
}

const struct bench bench_virtio_blk = { "virtio-blk",
	"disk load: randread4k|randwrite4k|seqread128k|notify (qd=, ms=, irq=poll|msix|msi|intx)", run };
