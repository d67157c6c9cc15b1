/*
 * test=nvme[,ser=S][,eui64=N][,sectors=N][,sectsz=N][,seed=N][,queues=N][,span=N][,irq=msix|msi][,hostile=1]
 *
 * The first NVMe controller (NVM Express 1.4):
 *   - bring-up: CAP, VS, CSTS.RDY; Identify Controller (serial against ser=, MDTS, SQES/CQES,
 *     one namespace at least) and Identify Namespace 1 (size in 512-byte sectors against
 *     sectors=, LBA data size against sectsz=, EUI-64 against eui64=, also in the namespace
 *     identification descriptors);
 *   - `queues` I/O queue pairs (default 4), each CQ on its own MSI-X vector; every queue
 *     carries a read whose interrupt arrives on its vector;
 *   - every sector of the first `span` 512-byte sectors (default: the namespace up to 64 MiB)
 *     written with the LBA-stamped pattern in 128 KiB commands (PRP lists) spread over all
 *     queues, 4 in flight on each, read back and verified; a read into a buffer that starts
 *     mid-page; "INFO sum lba=.. n=.. crc32=.." lines for the host;
 *   - Flush; Write Zeroes over [3/4, 1) of the span, read back as zeros; Dataset Management
 *     deallocate of [1/2, 3/4) when ONCS offers it; reads past the end: LBA Out of Range;
 *   - shadow doorbells when OACS offers Doorbell Buffer Config: the data checks again with the
 *     EventIdx protocol, counting doorbell writes;
 *   - a controller reset (CC.EN = 0) with writes in flight, then a fresh bring-up serving reads;
 *   - hostile=1: malformed commands (suites/nvme_hostile.c) instead of the data checks.
 * Sector numbers in INFO lines are 512-byte units whatever the LBA size.
 */
#include "suite.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../drivers/blk_pattern.h"
#include "../drivers/nvme.h"
#include "../lib/cmdline.h"
#include "../lib/crc32.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define CHUNK_BYTES (128u * 1024u)
#define CHUNK_SECTORS (CHUNK_BYTES / 512u)
#define DEPTH 4
#define SECOND 1000000000ULL

void nvme_hostile(struct nvme *c, uint32_t seed, const char *options);

static uint8_t *buffers[NVME_MAX_IOQ + 1][DEPTH];

static void alloc_buffers(void) {
	for (int q = 0; q <= NVME_MAX_IOQ; q++)
		for (int s = 0; s < DEPTH; s++)
			if (!buffers[q][s]) buffers[q][s] = dma_alloc(CHUNK_BYTES + 4096);
}

/* 512-byte sectors per LBA */
static uint32_t spl(const struct nvme *c) { return c->lba_bytes / 512; }

/* The sectors the data checks cover: span= (default 64 MiB) within the namespace, in whole quarters of 4 KiB. */
static uint64_t span_of(const struct nvme *c, const char *options) {
	uint64_t capacity = c->nsze * spl(c);
	uint64_t span = optlist_get_u64(options, "span", 131072);
	if (span > capacity) span = capacity;
	return span & ~(uint64_t)(4 * spl(c) * 8 - 1);
}

/*
 * Writes (pattern) or reads and verifies sectors [start, start + count) in CHUNK_SECTORS commands
 * spread round-robin over the I/O queues with DEPTH in flight on each. Returns the commands that
 * failed or timed out; *bad counts sectors that read back wrong.
 */
static uint32_t transfer(struct nvme *c, int write, uint64_t start, uint64_t count, uint32_t seed, uint32_t *bad) {
	uint64_t next = start, end = start + count;
	uint64_t at[NVME_MAX_IOQ + 1][DEPTH];
	uint32_t n[NVME_MAX_IOQ + 1][DEPTH];
	uint32_t busy[NVME_MAX_IOQ + 1] = { 0 };
	uint32_t failed = 0, inflight = 0;
	*bad = 0;
	uint64_t idle_since = timer_now_ns();
	while (next < end || inflight) {
		for (int q = 1; q <= c->nio && next < end; q++) {
			int queued = 0;
			for (int s = 0; s < DEPTH && next < end; s++) {
				if (busy[q] & (1u << s)) continue;
				uint32_t k = end - next < CHUNK_SECTORS ? (uint32_t)(end - next) : CHUNK_SECTORS;
				if (write) blk_pattern_fill(buffers[q][s], next, k, seed);
				else memset(buffers[q][s], 0, k * 512);
				uint64_t slba = next / spl(c);
				struct nvme_cmd cmd = { .cdw0 = write ? NVME_OP_WRITE : NVME_OP_READ, .nsid = 1, .cdw10 = (uint32_t)slba,
							.cdw11 = (uint32_t)(slba >> 32), .cdw12 = k / spl(c) - 1 };
				nvme_queue_cmd(c, q, s, &cmd, buffers[q][s], k * 512);
				at[q][s] = next;
				n[q][s] = k;
				busy[q] |= 1u << s;
				inflight++;
				queued++;
				next += k;
			}
			if (queued) nvme_ring(c, q);
		}
		int got = 0;
		for (int q = 1; q <= c->nio; q++) {
			int st, s;
			while ((s = nvme_reap(c, q, &st)) >= 0) {
				got++;
				if (s >= DEPTH || !(busy[q] & (1u << s))) { failed++; continue; }
				busy[q] &= ~(1u << s);
				inflight--;
				if (st) failed++;
				else if (!write) *bad += blk_pattern_check(buffers[q][s], at[q][s], n[q][s], seed);
			}
			nvme_cq_ring(c, q);
		}
		if (got) idle_since = timer_now_ns();
		else if (timer_now_ns() - idle_since > 10 * SECOND) return failed + inflight;
		else cpu_relax();
	}
	return failed;
}

/* CRC-32 of sectors [sector, sector + n) as the device returns them; *ok = 0 on a failed read. */
static uint32_t region_crc(struct nvme *c, uint64_t sector, uint64_t n, int *ok) {
	uint32_t crc = 0;
	*ok = 1;
	for (uint64_t at = sector; at < sector + n; at += CHUNK_SECTORS) {
		uint32_t k = sector + n - at < CHUNK_SECTORS ? (uint32_t)(sector + n - at) : CHUNK_SECTORS;
		if (nvme_io(c, 1, NVME_OP_READ, at / spl(c), k / spl(c), buffers[1][0], k * 512) != 0) {
			*ok = 0;
			return 0;
		}
		crc = crc32_update(crc, buffers[1][0], k * 512);
	}
	return crc;
}

static void identify(struct nvme *c, const char *options) {
	uint32_t mps_min = 4096u << ((c->cap >> 48) & 0xF);
	check(c->setup_error == 0 && (mmio_read32(c->regs + 0x1C) & 3) == 1,
	      "%02x:%02x.%x %04x:%04x bring-up (step %d): CSTS.RDY, VS %u.%u, MQES+1=%u, DSTRD %u, MPSMIN %u", c->pci->bus,
	      c->pci->dev, c->pci->fn, c->pci->vendor, c->pci->device, c->setup_error, c->vs >> 16, (c->vs >> 8) & 0xFF, c->mqes,
	      c->dstrd, mps_min);
	check(c->vs >= 0x00010200, "version 1.2 or later (0x%08x)", c->vs);
	const uint8_t *d = c->id_ctrl;
	check(d[512] == 0x66 && d[513] == 0x44, "SQES 0x%02x CQES 0x%02x: 64- and 16-byte entries", d[512], d[513]);
	check(c->nn >= 1, "%u namespace(s); model \"%s\"", c->nn, c->model);
	print("TESTGUEST nvme INFO mdts=%u oacs=0x%x oncs=0x%x vwc=0x%x\n", c->mdts, c->oacs, c->oncs, c->vwc);
	char want[32] = "";
	if (optlist_get(options, "ser", want, sizeof want))
		check(strcmp(c->serial, want) == 0, "serial \"%s\" (expected \"%s\")", c->serial, want);
	else
		check(c->serial[0] != 0, "serial \"%s\"", c->serial);
	uint64_t sectors = c->nsze * spl(c);
	uint64_t want_sectors = optlist_get_u64(options, "sectors", 0);
	check(c->nsze > 0 && (!want_sectors || sectors == want_sectors), "namespace 1: %lu LBAs of %u bytes = %lu sectors%s", c->nsze,
	      c->lba_bytes, sectors, want_sectors ? " as expected" : "");
	uint64_t want_ss = optlist_get_u64(options, "sectsz", 0);
	if (want_ss) check(c->lba_bytes == want_ss, "LBA data size %u (expected %lu)", c->lba_bytes, want_ss);
	uint64_t want_eui = optlist_get_u64(options, "eui64", 0);
	if (want_eui) check(c->eui64 == want_eui, "EUI-64 %016lx (expected %016lx)", c->eui64, want_eui);
	/* The namespace identification descriptors carry the same EUI-64 (NIDT 1). */
	struct nvme_cmd cmd = { .cdw0 = 0x06, .nsid = 1, .prp1 = (uint64_t)(uintptr_t)c->scratch, .cdw10 = 3 };
	memset(c->scratch, 0, 4096);
	int st = nvme_admin(c, &cmd, 0);
	uint64_t desc_eui = 0;
	for (uint32_t off = 0; st == 0 && off + 4 < 4096 && c->scratch[off];) {
		uint8_t type = c->scratch[off], len = c->scratch[off + 1];
		if (type == 1 && len == 8)
			for (int i = 0; i < 8; i++) desc_eui = desc_eui << 8 | c->scratch[off + 4 + i];
		off += 4u + len;
	}
	if (c->eui64) check(st == 0 && desc_eui == c->eui64, "descriptor list status=0x%x EUI-64 %016lx", st, desc_eui);
	else print("TESTGUEST nvme INFO descriptor list status=0x%x (no EUI-64 in Identify Namespace)\n", st);
	/* Active namespace list: 1 comes first. */
	cmd = (struct nvme_cmd){ .cdw0 = 0x06, .nsid = 0, .prp1 = (uint64_t)(uintptr_t)c->scratch, .cdw10 = 2 };
	st = nvme_admin(c, &cmd, 0);
	check(st == 0 && *(uint32_t *)c->scratch == 1, "active namespace list starts with 1 (status=0x%x)", st);
	cmd = (struct nvme_cmd){ .cdw0 = 0x06, .nsid = 0x1234, .prp1 = (uint64_t)(uintptr_t)c->scratch, .cdw10 = 0 };
	st = nvme_admin(c, &cmd, 0);
	check(st != 0, "Identify of namespace 0x1234 refused: status=0x%x", st);
}

/* Each I/O queue's read completes with an interrupt on its own vector. */
static void interrupts(struct nvme *c, const char *options) {
	char mode[8] = "msix";
	optlist_get(options, "irq", mode, sizeof mode);
	enum nvme_irq want = strcmp(mode, "msi") == 0 ? NVME_IRQ_MSI : NVME_IRQ_MSIX;
	int queues = (int)optlist_get_u64(options, "queues", 4);
	int dbbuf = (int)optlist_get_u64(options, "dbbuf", 0);
	int r = nvme_setup(c, want, queues, 256, dbbuf);
	print("TESTGUEST nvme INFO msix_entries=%d msi_cap=%d\n", pci_msix_table_size(c->pci), pci_find_capability(c->pci, PCI_CAP_MSI) != 0);
	check(r == 0 && c->irq == want, "setup with %d I/O queue pairs, %s (asked %s): result %d", c->nio, nvme_irq_name(c->irq), mode, r);
	check(c->nio == queues, "%d of %d queue pairs created (Number of Queues granted %u)", c->nio, queues, c->queues_granted);
	for (int q = 1; q <= c->nio; q++) {
		uint32_t before = nvme_irq_count(c, q);
		int st = nvme_io(c, q, NVME_OP_READ, 0, 1, buffers[q][0], c->lba_bytes);
		int got = irq_wait(c->io[q].vector, before, SECOND);
		check(st == 0 && got, "queue %d: read completion by %s vector 0x%x (count %u -> %u)", q, nvme_irq_name(c->irq),
		      c->io[q].vector, before, nvme_irq_count(c, q));
	}
}

static void data_path(struct nvme *c, const char *options, uint32_t seed, const char *label) {
	uint64_t span = span_of(c, options);
	uint32_t bad = 0;
	uint64_t t0 = timer_now_ns();
	uint32_t failed = transfer(c, 1, 0, span, seed, &bad);
	check(failed == 0, "%s: wrote sectors 0-%lu (%lu MiB) over %d queues, %d in flight each: %u failed, %lu ms", label, span - 1,
	      span >> 11, c->nio, DEPTH, failed, (timer_now_ns() - t0) / 1000000);
	t0 = timer_now_ns();
	failed = transfer(c, 0, 0, span, seed, &bad);
	check(failed == 0 && bad == 0, "%s: read back and verified every sector: %u failed, %u wrong sectors, %lu ms", label, failed,
	      bad, (timer_now_ns() - t0) / 1000000);
	/* A buffer that starts 512 bytes into a page: PRP1 with an offset, then page-aligned entries. */
	uint8_t *odd = buffers[1][1] + 512;
	memset(odd, 0, 64 * 1024);
	int st = nvme_io(c, 1, NVME_OP_READ, 0, 64 * 1024 / c->lba_bytes, odd, 64 * 1024);
	check(st == 0 && blk_pattern_check(odd, 0, 128, seed) == 0, "%s: 64 KiB read into a buffer at page offset 512: status=0x%x",
	      label, st);
	uint64_t half = span / 2;
	for (int r = 0; r < 4; r++) {
		uint64_t lba = r * (half / 4), n = half / 4;
		int ok;
		uint32_t crc = region_crc(c, lba, n, &ok);
		if (ok) print("TESTGUEST nvme INFO sum lba=%lu n=%lu crc32=%08x\n", lba, n, crc);
		else check(0, "read of region lba=%lu n=%lu for its checksum", lba, n);
	}
}

static void commands(struct nvme *c, const char *options) {
	uint64_t span = span_of(c, options);
	uint64_t half = span / 2, quarter = span / 4;
	struct nvme_cmd fl = { .cdw0 = NVME_OP_FLUSH, .nsid = 1 };
	nvme_queue_cmd(c, 1, 0, &fl, 0, 0);
	nvme_ring(c, 1);
	int st = -1;
	uint64_t t0 = timer_now_ns();
	while (nvme_reap(c, 1, &st) < 0 && timer_now_ns() - t0 < 10 * SECOND) cpu_relax();
	nvme_cq_ring(c, 1);
	check(st == 0, "Flush: status=0x%x", st);
	/* Write Zeroes over the last quarter, in commands of at most 65536 LBAs. */
	uint64_t z = half + quarter, zn = span - z;
	uint32_t errors = 0, nonzero = 0;
	for (uint64_t at = z; at < z + zn;) {
		uint64_t lbas = (z + zn - at) / spl(c);
		if (lbas > 65536) lbas = 65536;
		errors += nvme_io(c, 1, NVME_OP_WRITE_ZEROES, at / spl(c), (uint32_t)lbas, 0, 0) != 0;
		at += lbas * spl(c);
	}
	for (uint64_t at = z; at < z + zn && !errors; at += CHUNK_SECTORS) {
		uint32_t k = z + zn - at < CHUNK_SECTORS ? (uint32_t)(z + zn - at) : CHUNK_SECTORS;
		memset(buffers[1][0], 0xA5, k * 512);
		errors += nvme_io(c, 1, NVME_OP_READ, at / spl(c), k / spl(c), buffers[1][0], k * 512) != 0;
		for (uint32_t i = 0; i < k * 512 / 8; i++) nonzero += ((uint64_t *)buffers[1][0])[i] != 0;
	}
	if (check(errors == 0 && nonzero == 0, "Write Zeroes lba=%lu n=%lu: %u errors, %u non-zero words read back", z, zn, errors, nonzero))
		print("TESTGUEST nvme INFO zeroed lba=%lu n=%lu\n", z, zn);
	if (c->oncs & (1u << 2)) {
		uint32_t *range = (uint32_t *)c->scratch;
		memset(range, 0, 16);
		range[1] = (uint32_t)(quarter / spl(c));	/* length in LBAs */
		range[2] = (uint32_t)(half / spl(c));		/* starting LBA */
		struct nvme_cmd dsm = { .cdw0 = NVME_OP_DSM, .nsid = 1, .cdw10 = 0, .cdw11 = 1u << 2 };
		nvme_queue_cmd(c, 1, 0, &dsm, range, 16);
		nvme_ring(c, 1);
		st = -1;
		t0 = timer_now_ns();
		while (nvme_reap(c, 1, &st) < 0 && timer_now_ns() - t0 < 10 * SECOND) cpu_relax();
	nvme_cq_ring(c, 1);
		if (check(st == 0, "Dataset Management deallocate lba=%lu n=%lu: status=0x%x", half, quarter, st))
			print("TESTGUEST nvme INFO discarded lba=%lu n=%lu\n", half, quarter);
	} else {
		print("TESTGUEST nvme INFO no Dataset Management offered (ONCS 0x%x)\n", c->oncs);
	}
	nvme_queue_cmd(c, 1, 0, &fl, 0, 0);
	nvme_ring(c, 1);
	t0 = timer_now_ns();
	while (nvme_reap(c, 1, &st) < 0 && timer_now_ns() - t0 < 10 * SECOND) cpu_relax();
	nvme_cq_ring(c, 1);
	st = nvme_io(c, 1, NVME_OP_READ, c->nsze, 1, buffers[1][0], c->lba_bytes);
	check(st == NVME_SC_LBA_RANGE, "read at LBA %lu (the size) refused with LBA Out of Range: status=0x%x", c->nsze, st);
	st = nvme_io(c, 1, NVME_OP_READ, c->nsze - 1, 2, buffers[1][0], 2 * c->lba_bytes);
	check(st == NVME_SC_LBA_RANGE, "a read straddling the end: status=0x%x", st);
	/* Compare: equal data succeeds, different data is a Compare Failure. */
	if (c->oncs & 1) {
		st = nvme_io(c, 1, NVME_OP_READ, 0, 1, buffers[1][2], c->lba_bytes);
		int eq = nvme_io(c, 1, NVME_OP_COMPARE, 0, 1, buffers[1][2], c->lba_bytes);
		buffers[1][2][7] ^= 0xFF;
		int ne = nvme_io(c, 1, NVME_OP_COMPARE, 0, 1, buffers[1][2], c->lba_bytes);
		check(st == 0 && eq == 0 && ne == 0x285, "Compare: equal 0x%x, different 0x%x (Compare Failure)", eq, ne);
	}
}

/* Shadow doorbells: the same data checks with the EventIdx protocol; doorbell writes counted. */
static void shadow_doorbells(struct nvme *c, const char *options, uint32_t seed) {
	if (!(c->oacs & (1u << 8))) {
		print("TESTGUEST nvme INFO no Doorbell Buffer Config offered (OACS 0x%x)\n", c->oacs);
		return;
	}
	int queues = (int)optlist_get_u64(options, "queues", 4);
	int r = nvme_setup(c, c->irq, queues, 256, 1);
	check(r == 0 && c->dbbuf, "Doorbell Buffer Config accepted, %d queue pairs: result %d", c->nio, r);
	if (r) return;
	uint32_t before = 0, commands = 0;
	for (int q = 1; q <= c->nio; q++) before += c->io[q].doorbells;
	/* The first quarter of the span: inside the half the host checks, rewritten with `seed` afterwards. */
	uint64_t span = span_of(c, options) / 4;
	uint32_t bad = 0;
	uint32_t failed = transfer(c, 1, 0, span, seed ^ 0x5A5A, &bad);
	failed += transfer(c, 0, 0, span, seed ^ 0x5A5A, &bad);
	commands = (uint32_t)(2 * span / CHUNK_SECTORS);
	uint32_t rings = 0;
	for (int q = 1; q <= c->nio; q++) rings += c->io[q].doorbells;
	rings -= before;
	check(failed == 0 && bad == 0, "shadow doorbells: %u commands, %u doorbell writes (SQ and CQ), %u failed, %u wrong sectors",
	      commands, rings, failed, bad);
	/* Back to plain doorbells and the data the host checks. */
	transfer(c, 1, 0, span, seed, &bad);
}

/* A controller reset with writes in flight (the data already there), then a fresh bring-up. */
static void reset_in_flight(struct nvme *c, uint32_t seed) {
	int queues = c->nio;
	enum nvme_irq irq = c->irq;
	for (int q = 1; q <= c->nio; q++) {
		for (int s = 0; s < DEPTH; s++) {
			uint64_t sector = ((uint64_t)(q - 1) * DEPTH + s) * CHUNK_SECTORS;
			blk_pattern_fill(buffers[q][s], sector, CHUNK_SECTORS, seed);
			struct nvme_cmd cmd = { .cdw0 = NVME_OP_WRITE, .nsid = 1, .cdw10 = (uint32_t)(sector / spl(c)),
						.cdw12 = CHUNK_SECTORS / spl(c) - 1 };
			nvme_queue_cmd(c, q, s, &cmd, buffers[q][s], CHUNK_BYTES);
		}
		nvme_ring(c, q);
	}
	int off = nvme_disable(c) == 0;
	check(off, "CC.EN = 0 with %d writes in flight: CSTS.RDY cleared", queues * DEPTH);
	int r = nvme_setup(c, irq, queues, 256, 0);
	check(r == 0 && c->nio == queues, "bring-up again after the reset: result %d, %d queue pairs", r, c->nio);
	uint32_t bad = 0;
	uint32_t failed = r == 0 ? transfer(c, 0, 0, (uint64_t)queues * DEPTH * CHUNK_SECTORS, seed, &bad) : 1;
	check(failed == 0 && bad == 0, "reads after the reset: %u failed, %u wrong sectors", failed, bad);
}

static void run(const char *options) {
	struct pci_function *f = driver_device("nvme", 0);
	if (!check(f != 0, "NVMe controller bound to its driver")) return;
	struct nvme *c = f->driver_state;
	alloc_buffers();
	uint32_t seed = (uint32_t)optlist_get_u64(options, "seed", 1);
	identify(c, options);
	if (c->setup_error) return;
	interrupts(c, options);
	if (c->nio < 1) return;
	if (optlist_get_u64(options, "hostile", 0)) {
		nvme_hostile(c, seed, options);
		return;
	}
	data_path(c, options, seed, "doorbells");
	commands(c, options);
	shadow_doorbells(c, options, seed);
	if (optlist_get_u64(options, "reset", 1)) reset_in_flight(c, seed);
	else print("TESTGUEST nvme INFO reset with writes in flight not run (reset=0)\n");
}

const struct suite suite_nvme = { "nvme",
	"NVMe: identify, queues and MSI-X, patterns, Flush/Write Zeroes/DSM/Compare, shadow doorbells, reset (ser= eui64= sectors= sectsz= seed= queues= span= irq= hostile= reset=)",
	run };
