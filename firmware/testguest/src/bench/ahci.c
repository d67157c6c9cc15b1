/*
 * bench=ahci,<workload>[,qd=N][,ms=1000][,port=N]: the disk on the first AHCI HBA under load, timed with
 * the TSC. The port is `port=` or the first running port with an ATA signature.
 *   randread4k   4 KiB READ FPDMA QUEUED at random 4 KiB-aligned LBAs of the whole disk, qd=32 tags in flight
 *   randwrite4k  the same with WRITE FPDMA QUEUED
 *   seqread128k  128 KiB READ FPDMA QUEUED in order (wrapping at the end), qd=4
 *   qd1read4k    one 4 KiB READ DMA EXT at a time at random LBAs: the per-command round trip
 * The HBA is brought up again without MSI and completions are polled (PxSACT / PxCI reads: each is an
 * exit, on both VMMs alike). qd is capped by the HBA's slots and the disk's NCQ depth (IDENTIFY word 75).
 * Prints: TESTGUEST-BENCH device=ahci workload=W qd=N ops=N total_ns=N iops=N mbps=X.YY ns_per_op=N
 *         errors=N completion=poll port=N sectors=N ncq_depth=N sact_peak=N
 * An error or a time-out ends the run: a "TESTGUEST bench-ahci FAIL" line with the port's registers,
 * then the result line with error=.
 */
#include "bench.h"
#include "../arch/x86.h"
#include "../drivers/ahci.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define MAX_QD 32
#define SECTOR 512u

static uint8_t *buffers[MAX_QD];
static uint16_t *id;

struct run {
	struct ahci *h;
	int port;
	uint64_t sectors;	/* the disk's LBA48 capacity */
	int ncq_depth;
	int result;		/* the first failure (ahci_wait's codes), 0 when none */
};

static uint64_t xorshift(uint64_t *s) {
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void report(const struct run *r, const char *workload, int qd, uint64_t ops, uint64_t ns, uint32_t bytes_per_op) {
	uint64_t iops = ns ? ops * 1000000000ULL / ns : 0;
	uint64_t mbps_100 = ns ? ops * bytes_per_op * 100ULL * 1000ULL / ns : 0;
	char err[32] = "";
	if (r->result) format(err, sizeof err, " error=%s", r->result == AHCI_TIMEOUT ? "time-out" : "device");
	print("TESTGUEST-BENCH device=ahci workload=%s qd=%d ops=%lu total_ns=%lu iops=%lu mbps=%lu.%02lu ns_per_op=%lu "
	      "errors=%d completion=poll port=%d sectors=%lu ncq_depth=%d sact_peak=%u%s\n",
	      workload, qd, ops, ns, iops, mbps_100 / 100, mbps_100 % 100, ops ? ns / ops : 0, r->result ? 1 : 0, r->port,
	      r->sectors, r->ncq_depth, r->h->port[r->port].sact_peak, err);
}

static void fail_line(const struct run *r, const char *workload, uint64_t ops) {
	const struct ahci_port *p = &r->h->port[r->port];
	print("TESTGUEST bench-ahci FAIL %s port %d after %lu ops: %s STS 0x%02x ERR 0x%02x, PxIS 0x%08x PxTFD 0x%08x "
	      "PxSERR 0x%08x PxCI 0x%08x PxSACT 0x%08x\n",
	      workload, r->port, ops, r->result == AHCI_TIMEOUT ? "time-out" : "error", AHCI_TFD_STS(r->result),
	      AHCI_TFD_ERR(r->result), p->err_is, p->err_tfd, p->err_serr, p->err_ci, p->err_sact);
}

/* Slot `slot`'s next command: NCQ with tag = slot, or READ/WRITE DMA EXT (one at a time). */
static int prepare(struct run *r, int ncq, int write, int slot, uint64_t lba, uint32_t sectors) {
	if (ncq) return ahci_prepare_ncq(r->h, r->port, slot, write, lba, sectors, buffers[slot], 0);
	struct ahci_cmd c = { .command = write ? ATA_CMD_WRITE_DMA_EXT : ATA_CMD_READ_DMA_EXT, .lba = lba,
			      .count = (uint16_t)sectors, .device = 0x40, .write = (uint8_t)write, .buf = buffers[slot],
			      .len = sectors * SECTOR };
	return ahci_prepare(r->h, r->port, slot, &c);
}

/* Keeps `qd` commands in flight for `ms` milliseconds, refilling the freed slots together; returns the ops completed. */
static uint64_t load(struct run *r, int ncq, int write, uint32_t bytes, int sequential, int qd, uint64_t ms, uint64_t *ns_out) {
	uint32_t sectors = bytes / SECTOR;
	uint64_t blocks = r->sectors / sectors, rng = 0x9E3779B97F4A7C15ULL, seq = 0, ops = 0;
	uint32_t inflight = 0;
	int stop = 0;
	uint64_t t0 = rdtsc(), limit = ms * (tsc_hz / 1000), last_progress = t0, ms1 = tsc_hz / 1000;
	for (int s = 0; s < qd; s++) {
		uint64_t blk = sequential ? seq++ % blocks : xorshift(&rng) % blocks;
		if (prepare(r, ncq, write, s, blk * sectors, sectors) < 0) return 0;
		inflight |= 1u << s;
	}
	ahci_issue(r->h, r->port, inflight, ncq);
	for (;;) {
		uint64_t now = rdtsc();
		uint32_t done = 0;
		/* PxIS only after 1 ms without progress: errors are rare, and each read is an exit. */
		int rc = ahci_poll(r->h, r->port, &done, now - last_progress > ms1);
		if (rc) {
			r->result = rc;
			break;
		}
		if (done) {
			last_progress = now;
			inflight &= ~done;
			for (uint32_t d = done; d; d &= d - 1) ops++;
			if (!stop) {
				for (uint32_t d = done; d; d &= d - 1) {
					int s = __builtin_ctz(d);
					uint64_t blk = sequential ? seq++ % blocks : xorshift(&rng) % blocks;
					prepare(r, ncq, write, s, blk * sectors, sectors);
				}
				ahci_issue(r->h, r->port, done, ncq);
				inflight |= done;
			}
		} else if (now - last_progress > 10 * tsc_hz) {
			r->result = ahci_give_up(r->h, r->port);
			break;
		}
		if (now - t0 >= limit) stop = 1;
		if (stop && !inflight) break;
		if (!done) cpu_relax();
	}
	*ns_out = tsc_to_ns(rdtsc() - t0);
	return ops;
}

/* The port to load: `port=`, else the first running ATA port; -1 when none. */
static int pick_port(const struct ahci *h, const char *options) {
	char v[8];
	if (optlist_get(options, "port", v, sizeof v)) {
		int n = (int)optlist_get_u64(options, "port", 0);
		return n >= 0 && n < AHCI_MAX_PORTS && h->port[n].present ? n : -1;
	}
	for (int i = 0; i < AHCI_MAX_PORTS; i++)
		if (h->port[i].present && h->port[i].sig == AHCI_SIG_ATA) return i;
	return -1;
}

static int run(const char *workload, const char *options) {
	struct pci_function *f = driver_device("ahci", 0);
	if (!f || !tsc_hz) {
		print("TESTGUEST-BENCH device=ahci workload=%s error=%s\n", workload, f ? "uncalibrated-tsc" : "no-device");
		return 1;
	}
	struct run r = { .h = f->driver_state };
	/* Probe brought it up with MSI when offered; the bench polls, so again without. */
	if (ahci_setup(r.h, AHCI_IRQ_POLL) != 0) {
		print("TESTGUEST-BENCH device=ahci workload=%s error=setup-failed\n", workload);
		return 1;
	}
	r.port = pick_port(r.h, options);
	if (r.port < 0) {
		print("TESTGUEST-BENCH device=ahci workload=%s error=no-disk\n", workload);
		return 1;
	}
	if (!id) id = dma_alloc(512);
	for (int i = 0; i < MAX_QD; i++)
		if (!buffers[i]) buffers[i] = dma_alloc(128 * 1024);
	if (!id || !buffers[MAX_QD - 1]) {
		print("TESTGUEST-BENCH device=ahci workload=%s error=no-memory\n", workload);
		return 1;
	}
	if ((r.result = ahci_identify(r.h, r.port, 0, id)) != 0) {
		fail_line(&r, "identify", 0);
		print("TESTGUEST-BENCH device=ahci workload=%s error=identify\n", workload);
		return 1;
	}
	r.sectors = (uint64_t)id[100] | (uint64_t)id[101] << 16 | (uint64_t)id[102] << 32 | (uint64_t)id[103] << 48;
	r.ncq_depth = (id[76] >> 8) & 1 ? (id[75] & 0x1F) + 1 : 0;
	uint64_t ms = optlist_get_u64(options, "ms", 1000);
	int is_seq = strcmp(workload, "seqread128k") == 0, is_qd1 = strcmp(workload, "qd1read4k") == 0;
	int is_rand = strcmp(workload, "randread4k") == 0 || strcmp(workload, "randwrite4k") == 0;
	if (!is_seq && !is_qd1 && !is_rand) {
		print("TESTGUEST-BENCH device=ahci workload=%s error=unknown-workload\n", workload);
		return 1;
	}
	int qd = is_qd1 ? 1 : (int)optlist_get_u64(options, "qd", is_seq ? 4 : 32);
	if (qd < 1) qd = 1;
	if (qd > MAX_QD) qd = MAX_QD;
	if (qd > r.h->slots) qd = r.h->slots;
	if (!is_qd1 && qd > r.ncq_depth) qd = r.ncq_depth;
	uint32_t bytes = is_seq ? 128 * 1024 : 4096;
	if (qd < 1 || r.sectors < bytes / SECTOR) {
		print("TESTGUEST-BENCH device=ahci workload=%s error=%s\n", workload, qd < 1 ? "no-ncq" : "disk-too-small");
		return 1;
	}
	uint64_t ns = 0;
	uint64_t ops = load(&r, !is_qd1, workload[4] == 'w', bytes, is_seq, qd, ms, &ns);
	if (r.result) fail_line(&r, workload, ops);
	report(&r, workload, qd, ops, ns, bytes);
	return r.result ? 1 : 0;
}

const struct bench bench_ahci = { "ahci", "AHCI disk load: randread4k|randwrite4k|seqread128k|qd1read4k (qd=, ms=, port=)", run };
