/*
 * test=virtio-blk[,ser=S][,seed=N][,sectors=N][,span=N][,ro=1][,irq=msix|msi|intx][,hostile=1]
 *
 * The virtio block device through the legacy transport (virtio 1.2 §4.1.5, §5.2):
 *   - bring-up, features, the configuration (capacity against sectors=, blk_size, seg_max,
 *     topology), GET_ID against ser=;
 *   - the interrupt mode asked for (default MSI-X) carries completions;
 *   - every sector of the first `span` sectors (default: the whole disk up to 64 MiB) written
 *     with a pattern stamped with its LBA, 8 requests in flight, read back and verified;
 *     "INFO sum lba=.. n=.. crc32=.." over four regions of the first half, for the host to
 *     compare with the file;
 *   - FLUSH; WRITE_ZEROES (with unmap when allowed) over [3/4, 1) of the span, read back as
 *     zeros; DISCARD of [1/2, 3/4); a read past the end fails with IOERR;
 *   - a reset with writes in flight, then a fresh bring-up serving good requests;
 *   - ro=1: the device offers VIRTIO_BLK_F_RO and fails writes with IOERR, data unchanged;
 *   - hostile=1: malformed requests (suites/virtio_blk_hostile.c) instead of the data checks.
 */
#include "suite.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../drivers/blk_pattern.h"
#include "../drivers/virtio_blk.h"
#include "../lib/cmdline.h"
#include "../lib/crc32.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define CHUNK_SECTORS 128u	/* 64 KiB per request */
#define DEPTH 8
#define SECOND 1000000000ULL

void virtio_blk_hostile(struct virtio_blk *b, uint32_t seed, const char *options);

static uint8_t *buffers[DEPTH];

/*
 * Writes (pattern) or reads and verifies [start, start + count) in CHUNK_SECTORS requests with
 * up to `depth` in flight. Returns the number of requests that failed or timed out; *bad
 * counts sectors that read back wrong.
 */
static uint32_t transfer(struct virtio_blk *b, int write, uint64_t start, uint64_t count, uint32_t seed, int depth,
			 uint32_t *bad) {
	uint64_t next = start, end = start + count;
	uint64_t slot_lba[DEPTH];
	uint32_t slot_n[DEPTH];
	if (depth > b->slots) depth = b->slots;
	uint32_t failed = 0, free_mask = (1u << depth) - 1;
	*bad = 0;
	while (next < end || free_mask != (1u << depth) - 1) {
		while (next < end && (free_mask & ((1u << depth) - 1))) {
			int s = __builtin_ctz(free_mask);
			uint32_t n = end - next < CHUNK_SECTORS ? (uint32_t)(end - next) : CHUNK_SECTORS;
			if (write) blk_pattern_fill(buffers[s], next, n, seed);
			else memset(buffers[s], 0, n * VIRTIO_BLK_SECTOR);
			if (vblk_submit(b, s, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, next, buffers[s], n * VIRTIO_BLK_SECTOR))
				return failed + 1;
			slot_lba[s] = next;
			slot_n[s] = n;
			free_mask &= ~(1u << s);
			next += n;
		}
		vblk_kick(b);
		uint64_t t0 = timer_now_ns();
		int s;
		while ((s = vblk_reap(b)) < 0) {
			if (timer_now_ns() - t0 > 5 * SECOND) return failed + 1;
			cpu_relax();
		}
		if (b->status[s] != VIRTIO_BLK_S_OK) failed++;
		else if (!write) *bad += blk_pattern_check(buffers[s], slot_lba[s], slot_n[s], seed);
		free_mask |= 1u << s;
	}
	return failed;
}

/* CRC-32 of [lba, lba + n) as the device returns it. Returns 0 and sets *ok = 0 on a failed read. */
static uint32_t region_crc(struct virtio_blk *b, uint64_t lba, uint64_t n, int *ok) {
	uint32_t crc = 0;
	*ok = 1;
	for (uint64_t at = lba; at < lba + n; at += CHUNK_SECTORS) {
		uint32_t k = lba + n - at < CHUNK_SECTORS ? (uint32_t)(lba + n - at) : CHUNK_SECTORS;
		if (vblk_request(b, VIRTIO_BLK_T_IN, at, buffers[0], k * VIRTIO_BLK_SECTOR, 5 * SECOND, 0) != VIRTIO_BLK_S_OK) {
			*ok = 0;
			return 0;
		}
		crc = crc32_update(crc, buffers[0], k * VIRTIO_BLK_SECTOR);
	}
	return crc;
}

static int has(const struct virtio_blk *b, int bit) { return (b->features >> bit) & 1; }

static void identify(struct virtio_blk *b, const char *options) {
	print("TESTGUEST virtio-blk INFO features host=0x%08x accepted=0x%08x\n", b->host_features, b->features);
	uint64_t want_sectors = optlist_get_u64(options, "sectors", 0);
	check(b->capacity > 0 && (!want_sectors || b->capacity == want_sectors), "capacity=%lu sectors (%lu MiB)%s",
	      b->capacity, b->capacity >> 11, want_sectors ? " as expected" : "");
	if (has(b, VIRTIO_BLK_F_BLK_SIZE))
		check(b->blk_size >= 512 && !(b->blk_size & (b->blk_size - 1)), "blk_size=%u is a power of two >= 512",
		      b->blk_size);
	if (has(b, VIRTIO_BLK_F_SEG_MAX)) check(b->seg_max >= 1, "seg_max=%u", b->seg_max);
	if (has(b, VIRTIO_BLK_F_SIZE_MAX)) check(b->size_max >= 512, "size_max=%u", b->size_max);
	if (has(b, VIRTIO_BLK_F_TOPOLOGY))
		print("TESTGUEST virtio-blk INFO topology physical_block_exp=%u alignment_offset=%u min_io=%u opt_io=%u\n",
		      b->physical_block_exp, b->alignment_offset, b->min_io_size, b->opt_io_size);
	if (has(b, VIRTIO_BLK_F_DISCARD))
		print("TESTGUEST virtio-blk INFO discard max_sectors=%u max_seg=%u alignment=%u\n", b->max_discard_sectors,
		      b->max_discard_seg, b->discard_sector_alignment);
	if (has(b, VIRTIO_BLK_F_WRITE_ZEROES))
		print("TESTGUEST virtio-blk INFO write_zeroes max_sectors=%u max_seg=%u may_unmap=%u\n",
		      b->max_write_zeroes_sectors, b->max_write_zeroes_seg, b->write_zeroes_may_unmap);

	static char id[VIRTIO_BLK_ID_BYTES + 1] __attribute__((aligned(64)));
	memset(id, 0, sizeof id);
	int st = vblk_request(b, VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES, 5 * SECOND, 0);
	char want[32] = "";
	if (optlist_get(options, "ser", want, sizeof want))
		check(st == VIRTIO_BLK_S_OK && strcmp(id, want) == 0, "GET_ID status=%d serial \"%s\" (expected \"%s\")", st, id,
		      want);
	else
		check(st == VIRTIO_BLK_S_OK, "GET_ID status=%d serial \"%s\"", st, id);
}

/* The asked-for interrupt mode is in use and carries a completion. */
static void interrupts(struct virtio_blk *b, const char *options) {
	char mode[8] = "msix";
	optlist_get(options, "irq", mode, sizeof mode);
	enum vblk_irq want = strcmp(mode, "msi") == 0 ? VBLK_IRQ_MSI : strcmp(mode, "intx") == 0 ? VBLK_IRQ_INTX : VBLK_IRQ_MSIX;
	if (b->irq != want) vblk_setup(b, want);
	print("TESTGUEST virtio-blk INFO msix_entries=%d msi_cap=%d irq_line=%u irq_pin=%u\n", pci_msix_table_size(b->t.pci),
	      pci_find_capability(b->t.pci, PCI_CAP_MSI) != 0, b->t.pci->irq_line, b->t.pci->irq_pin);
	/* The fallback order MSI-X -> MSI -> INTx follows what the function offers. */
	enum vblk_irq expect = want;
	if (expect == VBLK_IRQ_MSIX && pci_msix_table_size(b->t.pci) == 0) expect = VBLK_IRQ_MSI;
	if (expect == VBLK_IRQ_MSI && !pci_find_capability(b->t.pci, PCI_CAP_MSI)) expect = VBLK_IRQ_INTX;
	check(b->irq == expect, "interrupt mode %s in use (asked %s%s)", vblk_irq_name(b->irq), mode,
	      expect != want ? ", not offered: fallback" : "");
	if (b->irq == VBLK_IRQ_INTX)
		print("TESTGUEST virtio-blk INFO intx on ioapic pin %d vector 0x%x\n", b->intx_pin, b->vector);
	int ok = 0, st;
	uint32_t before = vblk_irq_count(b);
	st = vblk_request(b, VIRTIO_BLK_T_IN, 0, buffers[0], VIRTIO_BLK_SECTOR, 5 * SECOND, &ok);
	check(st == VIRTIO_BLK_S_OK && ok, "read completion by %s interrupt (vector 0x%x count %u -> %u)",
	      vblk_irq_name(b->irq), b->vector, before, vblk_irq_count(b));
}

static void read_only(struct virtio_blk *b) {
	check(has(b, VIRTIO_BLK_F_RO), "device offers VIRTIO_BLK_F_RO");
	uint8_t *before = buffers[0], *attempt = buffers[1], *after = buffers[2];
	int st = vblk_request(b, VIRTIO_BLK_T_IN, 0, before, 8 * VIRTIO_BLK_SECTOR, 5 * SECOND, 0);
	check(st == VIRTIO_BLK_S_OK, "read of lba 0 on the read-only disk: status=%d", st);
	blk_pattern_fill(attempt, 0, 8, 0x5EED);
	st = vblk_request(b, VIRTIO_BLK_T_OUT, 0, attempt, 8 * VIRTIO_BLK_SECTOR, 5 * SECOND, 0);
	check(st == VIRTIO_BLK_S_IOERR, "write to the read-only disk refused with IOERR: status=%d", st);
	st = vblk_request(b, VIRTIO_BLK_T_IN, 0, after, 8 * VIRTIO_BLK_SECTOR, 5 * SECOND, 0);
	check(st == VIRTIO_BLK_S_OK && memcmp(before, after, 8 * VIRTIO_BLK_SECTOR) == 0, "lba 0-7 unchanged after the refused write");
}

static void data_path(struct virtio_blk *b, const char *options, uint32_t seed) {
	uint64_t span = optlist_get_u64(options, "span", 131072);
	if (span > b->capacity) span = b->capacity;
	span &= ~7ULL;
	uint32_t bad = 0;
	uint64_t t0 = timer_now_ns();
	uint32_t failed = transfer(b, 1, 0, span, seed, DEPTH, &bad);
	uint64_t w_ms = (timer_now_ns() - t0) / 1000000;
	check(failed == 0, "wrote lba 0-%lu (%lu MiB) stamped with lba and seed=%u, %d in flight: %u failed requests, %lu ms",
	      span - 1, span >> 11, seed, DEPTH, failed, w_ms);
	t0 = timer_now_ns();
	failed = transfer(b, 0, 0, span, seed, DEPTH, &bad);
	check(failed == 0 && bad == 0, "read back and verified every sector: %u failed requests, %u wrong sectors, %lu ms",
	      failed, bad, (timer_now_ns() - t0) / 1000000);

	uint64_t half = span / 2, quarter = span / 4;
	for (int r = 0; r < 4; r++) {
		uint64_t lba = r * (half / 4), n = half / 4;
		int ok;
		uint32_t crc = region_crc(b, lba, n, &ok);
		if (ok) print("TESTGUEST virtio-blk INFO sum lba=%lu n=%lu crc32=%08x\n", lba, n, crc);
		else check(0, "read of region lba=%lu n=%lu for its checksum", lba, n);
	}

	if (has(b, VIRTIO_BLK_F_FLUSH)) {
		int st = vblk_request(b, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 10 * SECOND, 0);
		check(st == VIRTIO_BLK_S_OK, "FLUSH status=%d", st);
	} else {
		print("TESTGUEST virtio-blk INFO no VIRTIO_BLK_F_FLUSH offered\n");
	}

	uint64_t z_lba = half + quarter, z_n = span - z_lba;
	if (has(b, VIRTIO_BLK_F_WRITE_ZEROES) && b->max_write_zeroes_sectors) {
		uint32_t done = 0, errors = 0;
		uint32_t flags = b->write_zeroes_may_unmap ? VIRTIO_BLK_WZ_UNMAP : 0;
		for (uint64_t at = z_lba; at < z_lba + z_n; at += done) {
			done = z_lba + z_n - at < b->max_write_zeroes_sectors ? (uint32_t)(z_lba + z_n - at) : b->max_write_zeroes_sectors;
			b->segments[0] = (struct vblk_segment){ at, done, flags };
			errors += vblk_request(b, VIRTIO_BLK_T_WRITE_ZEROES, 0, &b->segments[0], sizeof b->segments[0], 10 * SECOND,
					       0) != VIRTIO_BLK_S_OK;
		}
		uint32_t nonzero = 0;
		for (uint64_t at = z_lba; at < z_lba + z_n && !errors; at += CHUNK_SECTORS) {
			uint32_t k = z_lba + z_n - at < CHUNK_SECTORS ? (uint32_t)(z_lba + z_n - at) : CHUNK_SECTORS;
			memset(buffers[0], 0xA5, k * VIRTIO_BLK_SECTOR);
			errors += vblk_request(b, VIRTIO_BLK_T_IN, at, buffers[0], k * VIRTIO_BLK_SECTOR, 5 * SECOND, 0) != VIRTIO_BLK_S_OK;
			for (uint32_t i = 0; i < k * VIRTIO_BLK_SECTOR / 8; i++) nonzero += ((uint64_t *)buffers[0])[i] != 0;
		}
		if (check(errors == 0 && nonzero == 0, "WRITE_ZEROES lba=%lu n=%lu flags=%u: %u errors, reads back %u non-zero words",
			  z_lba, z_n, flags, errors, nonzero))
			print("TESTGUEST virtio-blk INFO zeroed lba=%lu n=%lu unmap=%u\n", z_lba, z_n, flags);
	} else {
		print("TESTGUEST virtio-blk INFO no VIRTIO_BLK_F_WRITE_ZEROES offered\n");
	}

	if (has(b, VIRTIO_BLK_F_DISCARD) && b->max_discard_sectors) {
		uint32_t errors = 0, done = 0;
		for (uint64_t at = half; at < half + quarter; at += done) {
			done = half + quarter - at < b->max_discard_sectors ? (uint32_t)(half + quarter - at) : b->max_discard_sectors;
			b->segments[0] = (struct vblk_segment){ at, done, 0 };
			errors += vblk_request(b, VIRTIO_BLK_T_DISCARD, 0, &b->segments[0], sizeof b->segments[0], 10 * SECOND, 0) !=
				  VIRTIO_BLK_S_OK;
		}
		if (check(errors == 0, "DISCARD lba=%lu n=%lu: %u errors", half, quarter, errors))
			print("TESTGUEST virtio-blk INFO discarded lba=%lu n=%lu\n", half, quarter);
	} else {
		print("TESTGUEST virtio-blk INFO no VIRTIO_BLK_F_DISCARD offered\n");
	}
	if (has(b, VIRTIO_BLK_F_FLUSH)) vblk_request(b, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 10 * SECOND, 0);

	/* §5.2.6.1 (device): a request beyond the capacity must not succeed. */
	int st = vblk_request(b, VIRTIO_BLK_T_IN, b->capacity, buffers[0], VIRTIO_BLK_SECTOR, 5 * SECOND, 0);
	check(st == VIRTIO_BLK_S_IOERR, "read at lba %lu (the capacity) refused with IOERR: status=%d", b->capacity, st);
	st = vblk_request(b, VIRTIO_BLK_T_IN, b->capacity - 1, buffers[0], 2 * VIRTIO_BLK_SECTOR, 5 * SECOND, 0);
	check(st == VIRTIO_BLK_S_IOERR, "read of 2 sectors straddling the end refused with IOERR: status=%d", st);
}

/* Reset with writes in flight (the same data that is already there), then a fresh bring-up. */
static void reset_in_flight(struct virtio_blk *b, uint32_t seed) {
	enum vblk_irq mode = b->irq;
	int n = b->slots < DEPTH ? b->slots : DEPTH;
	for (int s = 0; s < n; s++) {
		blk_pattern_fill(buffers[s], (uint64_t)s * CHUNK_SECTORS, CHUNK_SECTORS, seed);
		vblk_submit(b, s, VIRTIO_BLK_T_OUT, (uint64_t)s * CHUNK_SECTORS, buffers[s], CHUNK_SECTORS * VIRTIO_BLK_SECTOR);
	}
	vblk_kick(b);
	virtio_legacy_reset(&b->t);
	uint8_t status = virtio_legacy_status(&b->t);
	outw(b->t.io + VIRTIO_QUEUE_SELECT, 0);
	uint32_t pfn = inl(b->t.io + VIRTIO_QUEUE_PFN);
	check(status == 0 && pfn == 0, "reset with %d writes in flight: status=0x%x queue_pfn=0x%x", n, status, pfn);
	int up = vblk_setup(b, mode) == 0;
	check(up && virtio_legacy_status(&b->t) == (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK),
	      "bring-up again after the reset (%s)", vblk_irq_name(b->irq));
	uint32_t bad = 0;
	uint32_t failed = up ? transfer(b, 0, 0, (uint64_t)n * CHUNK_SECTORS, seed, DEPTH, &bad) : 1;
	check(failed == 0 && bad == 0, "reads after the reset: %u failed, %u wrong sectors", failed, bad);
}

static void run(const char *options) {
	struct pci_function *f = driver_device("virtio-blk", 0);
	if (!check(f != 0, "virtio-blk device bound to its driver")) return;
	struct virtio_blk *b = f->driver_state;
	for (int i = 0; i < DEPTH; i++)
		if (!buffers[i]) buffers[i] = dma_alloc(CHUNK_SECTORS * VIRTIO_BLK_SECTOR);
	uint8_t status = virtio_legacy_status(&b->t);
	check(status == (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK),
	      "%02x:%02x.%x io=0x%x status=0x%x queue 0 size=%u, %d request slots", f->bus, f->dev, f->fn, b->t.io, status,
	      b->q.size, b->slots);
	uint32_t seed = (uint32_t)optlist_get_u64(options, "seed", 1);
	interrupts(b, options);
	identify(b, options);
	if (optlist_get_u64(options, "hostile", 0)) {
		virtio_blk_hostile(b, seed, options);
		return;
	}
	if (optlist_get_u64(options, "ro", 0)) {
		read_only(b);
		return;
	}
	data_path(b, options, seed);
	reset_in_flight(b, seed);
}

const struct suite suite_virtio_blk = { "virtio-blk",
	"virtio block: config, GET_ID, patterns, FLUSH/DISCARD/WRITE_ZEROES, interrupts, reset (ser= seed= ro= irq= hostile=)", run };
