/*
 * test=ahci[,port=N][,cdport=N][,ser=S][,model=S][,sectors=N][,seed=N][,span=N][,ssd=1][,irq=poll][,hostile=1[,lenient=1]]
 *
 * The first AHCI HBA (Serial ATA AHCI 1.3.1) and the disk on `port` (default: the first port
 * with an ATA signature):
 *   - HBA facts: bring-up (irq=poll: a second HBA reset and bring-up without MSI first), VS 1.0 or later, CAP.S64A and CAP.SNCQ, port count against PI;
 *     the port's link (PxSSTS.DET = 3) and signature 0x101;
 *   - IDENTIFY DEVICE: serial (against ser=), model (model=), LBA48 capacity (sectors=), NCQ
 *     and its queue depth, TRIM, the logical sector size, the rotation rate (ssd=1: 1, solid state);
 *   - every sector of the first `span` sectors (default the disk up to 64 MiB) written
 *     LBA-stamped with WRITE DMA EXT and read back with READ DMA EXT, each command's buffer in a
 *     16-entry PRDT; then again with `seed` by NCQ (READ/WRITE FPDMA QUEUED) with several tags
 *     in flight at once; completions by MSI when offered;
 *   - "INFO sum lba=.. n=.. crc32=.." over four regions of the first half, for the host;
 *   - FLUSH CACHE EXT; DATA SET MANAGEMENT TRIM of [1/2, 3/4) of the span when IDENTIFY
 *     offers it ("INFO discarded"); reads at and across the end fail with ABRT or IDNF and the
 *     port recovers (a good read follows);
 *   - the CD on `cdport` (default the first ATAPI port; none: no CD checks), suites/ahci_cd.c;
 *   - hostile=1[,lenient=1]: after IDENTIFY, malformed commands and register writes on the disk and the CD
 *     (suites/ahci_hostile.c) instead of the data checks.
 */
#include "suite.h"
#include "../drivers/ahci.h"
#include "../drivers/blk_pattern.h"
#include "../lib/cmdline.h"
#include "../lib/crc32.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define CHUNK_SECTORS 256u
#define CHUNK_BYTES (CHUNK_SECTORS * 512u)
#define DEPTH 8
#define SECOND 1000000000ULL
/* Entry sizes that split a 128 KiB buffer into 16 PRDT entries (plain DMA) and 11 (NCQ: the last one shorter). */
#define PRD_DMA (8u * 1024u)
#define PRD_NCQ (12u * 1024u)

void ahci_cd(struct ahci *h, int port);
void ahci_hostile(struct ahci *h, int port, uint64_t sectors, int trim, int cdport, uint32_t seed, const char *options);

static uint8_t *buffers[DEPTH];
static uint16_t *id;

struct disk {
	int port;
	uint64_t sectors;
	uint32_t sector_bytes;
	int ncq, queue_depth, trim, rzat;
};

static void hba_facts(struct ahci *h) {
	struct pci_function *f = h->pci;
	check(h->setup_error == 0 && (h->ghc & (1u << 31)), "%02x:%02x.%x %04x:%04x bring-up (step %d): GHC 0x%08x (AE), ABAR 0x%lx",
	      f->bus, f->dev, f->fn, f->vendor, f->device, h->setup_error, h->ghc, (uint64_t)h->abar);
	check(h->vs >= 0x00010000, "VS %x.%x (0x%08x): AHCI 1.0 or later", h->vs >> 16, (h->vs >> 8) & 0xFF, h->vs);
	check(h->cap & (1u << 31), "CAP 0x%08x: S64A (64-bit addressing)", h->cap);
	check(h->cap & (1u << 30), "CAP.SNCQ: native command queuing, %d command slots", h->slots);
	int implemented = 0;
	for (int i = 0; i < AHCI_MAX_PORTS; i++) implemented += (h->pi >> i) & 1;
	check(h->pi != 0 && implemented <= h->ports_cap && (h->pi >> h->ports_cap) == 0,
	      "PI 0x%08x: %d implemented of CAP.NP+1 = %d ports", h->pi, implemented, h->ports_cap);
	print("TESTGUEST ahci INFO cap2=0x%08x irq=%s vector=0x%x\n", h->cap2, ahci_irq_name(h->irq), h->vector);
	for (int i = 0; i < AHCI_MAX_PORTS; i++)
		if (h->pi & (1u << i))
			print("TESTGUEST ahci INFO port %d ssts=0x%x sig=0x%08x running=%d\n", i, h->port[i].ssts, h->port[i].sig,
			      h->port[i].present);
}

/* The port named by `key`, else the first running port with signature `sig`; -1 when none. */
static int pick_port(const struct ahci *h, const char *options, const char *key, uint32_t sig) {
	char v[8];
	if (optlist_get(options, key, v, sizeof v)) return (int)optlist_get_u64(options, key, 0);
	for (int i = 0; i < AHCI_MAX_PORTS; i++)
		if ((h->pi & (1u << i)) && h->port[i].present && h->port[i].sig == sig) return i;
	return -1;
}

static const char *result_text(int r, char *out, int size) {
	if (r == 0) format(out, (size_t)size, "ok");
	else if (r == AHCI_TIMEOUT) format(out, (size_t)size, "time-out");
	else format(out, (size_t)size, "error STS 0x%02x ERR 0x%02x", AHCI_TFD_STS(r), AHCI_TFD_ERR(r));
	return out;
}

static int identify(struct ahci *h, struct disk *d, const char *options) {
	char text[48], want[48], rt[48];
	int r = ahci_identify(h, d->port, 0, id);
	if (!check(r == 0, "port %d: IDENTIFY DEVICE: %s", d->port, result_text(r, rt, sizeof rt))) return -1;
	ahci_ata_string(id, 10, 10, text);
	if (optlist_get(options, "ser", want, sizeof want)) check(strcmp(text, want) == 0, "serial \"%s\" (expected \"%s\")", text, want);
	else check(text[0] != 0, "serial \"%s\"", text);
	ahci_ata_string(id, 27, 20, text);
	if (optlist_get(options, "model", want, sizeof want)) check(strcmp(text, want) == 0, "model \"%s\" (expected \"%s\")", text, want);
	else check(text[0] != 0, "model \"%s\"", text);
	ahci_ata_string(id, 23, 4, text);
	print("TESTGUEST ahci INFO firmware \"%s\" major=0x%x w49=0x%x w69=0x%x w80=0x%x w83=0x%x w86=0x%x\n", text, id[80], id[49],
	      id[69], id[80], id[83], id[86]);
	d->sectors = (uint64_t)id[100] | (uint64_t)id[101] << 16 | (uint64_t)id[102] << 32 | (uint64_t)id[103] << 48;
	uint64_t want_sectors = optlist_get_u64(options, "sectors", 0);
	check((id[83] & (1u << 10)) && d->sectors && (!want_sectors || d->sectors == want_sectors),
	      "LBA48 (word 83 bit 10) capacity %lu sectors (words 100-103)%s", d->sectors, want_sectors ? " as expected" : "");
	d->ncq = (id[76] >> 8) & 1;
	d->queue_depth = (id[75] & 0x1F) + 1;
	check(d->ncq, "NCQ (word 76 bit 8), queue depth %d (word 75)", d->queue_depth);
	d->trim = id[169] & 1;
	d->rzat = (id[69] & (1u << 14)) && (id[69] & (1u << 5));
	print("TESTGUEST ahci INFO trim=%d (word 169) max_dsm_blocks=%u deterministic_zeroes=%d\n", d->trim, id[105], d->rzat);
	/* Word 106 valid (bits 15:14 = 01) and bit 12: logical sectors longer than 256 words, sized in words 117-118. */
	d->sector_bytes = 512;
	if ((id[106] & 0xC000) == 0x4000 && (id[106] & (1u << 12))) d->sector_bytes = 2u * ((uint32_t)id[117] | (uint32_t)id[118] << 16);
	check(d->sector_bytes == 512, "logical sector %u bytes (word 106 0x%04x)", d->sector_bytes, id[106]);
	if (optlist_get_u64(options, "ssd", 0)) check(id[217] == 1, "rotation rate %u (word 217): 1, non-rotating", id[217]);
	else print("TESTGUEST ahci INFO rotation rate %u (word 217)\n", id[217]);
	return d->sector_bytes == 512 && d->sectors ? 0 : -1;
}

static uint64_t span_of(const struct disk *d, const char *options) {
	uint64_t span = optlist_get_u64(options, "span", 131072);
	if (span > d->sectors) span = d->sectors;
	return span & ~(uint64_t)(4 * 64 - 1);
}

/* One command at a time with READ/WRITE DMA EXT. Returns the failed commands; *bad counts wrong sectors. */
static uint32_t transfer_dma(struct ahci *h, const struct disk *d, int write, uint64_t span, uint32_t seed, uint32_t *bad) {
	uint32_t failed = 0;
	*bad = 0;
	for (uint64_t at = 0; at < span; at += CHUNK_SECTORS) {
		uint32_t k = span - at < CHUNK_SECTORS ? (uint32_t)(span - at) : CHUNK_SECTORS;
		if (write) blk_pattern_fill(buffers[0], at, k, seed);
		else memset(buffers[0], 0, k * 512);
		int r = ahci_rw(h, d->port, write, at, k, buffers[0], PRD_DMA);
		if (r) failed++;
		else if (!write) *bad += blk_pattern_check(buffers[0], at, k, seed);
	}
	return failed;
}

/* NCQ with up to `depth` tags in flight, freed slots refilled together. Same results as transfer_dma. */
static uint32_t transfer_ncq(struct ahci *h, const struct disk *d, int write, uint64_t span, uint32_t seed, int depth, uint32_t *bad) {
	uint64_t next = 0, at[DEPTH];
	uint32_t n[DEPTH], busy = 0, failed = 0;
	*bad = 0;
	while (next < span || busy) {
		uint32_t issue = 0;
		for (int s = 0; s < depth && next < span; s++) {
			if (busy & (1u << s)) continue;
			uint32_t k = span - next < CHUNK_SECTORS ? (uint32_t)(span - next) : CHUNK_SECTORS;
			if (write) blk_pattern_fill(buffers[s], next, k, seed);
			else memset(buffers[s], 0, k * 512);
			if (ahci_prepare_ncq(h, d->port, s, write, next, k, buffers[s], PRD_NCQ) < 0) return failed + 1;
			at[s] = next;
			n[s] = k;
			issue |= 1u << s;
			next += k;
		}
		if (issue) ahci_issue(h, d->port, issue, 1);
		busy |= issue;
		uint32_t done = 0;
		int r = ahci_wait(h, d->port, &done, 10 * SECOND);
		if (r) {	/* the port was recovered: every command in flight failed */
			for (; busy; busy &= busy - 1) failed++;
			return failed;
		}
		for (int s = 0; s < depth; s++) {
			if (!(done & (1u << s))) continue;
			busy &= ~(1u << s);
			if (!write) *bad += blk_pattern_check(buffers[s], at[s], n[s], seed);
		}
	}
	return failed;
}

static uint32_t region_crc(struct ahci *h, const struct disk *d, uint64_t sector, uint64_t n, int *ok) {
	uint32_t crc = 0;
	*ok = 1;
	for (uint64_t at = sector; at < sector + n; at += CHUNK_SECTORS) {
		uint32_t k = sector + n - at < CHUNK_SECTORS ? (uint32_t)(sector + n - at) : CHUNK_SECTORS;
		if (ahci_rw(h, d->port, 0, at, k, buffers[0], 0)) {
			*ok = 0;
			return 0;
		}
		crc = crc32_update(crc, buffers[0], k * 512);
	}
	return crc;
}

static void data_path(struct ahci *h, struct disk *d, const char *options, uint32_t seed) {
	uint64_t span = span_of(d, options);
	uint32_t bad = 0, irq0 = ahci_irq_count(h);
	uint64_t t0 = timer_now_ns();
	uint32_t failed = transfer_dma(h, d, 1, span, seed ^ 0x5A5A5A5Au, &bad);
	check(failed == 0, "WRITE DMA EXT of sectors 0-%lu, %u sectors per command in %u-byte PRDT entries: %u failed, %lu ms", span - 1,
	      CHUNK_SECTORS, PRD_DMA, failed, (timer_now_ns() - t0) / 1000000);
	t0 = timer_now_ns();
	failed = transfer_dma(h, d, 0, span, seed ^ 0x5A5A5A5Au, &bad);
	check(failed == 0 && bad == 0, "READ DMA EXT back and verified: %u failed, %u wrong sectors, %lu ms", failed, bad,
	      (timer_now_ns() - t0) / 1000000);
	uint32_t commands = (uint32_t)(2 * ((span + CHUNK_SECTORS - 1) / CHUNK_SECTORS));
	if (h->irq == AHCI_IRQ_MSI)
		check(ahci_irq_count(h) - irq0 >= commands / 2, "completions signalled by MSI vector 0x%x: %u interrupts for %u commands",
		      h->vector, ahci_irq_count(h) - irq0, commands);
	else
		print("TESTGUEST ahci INFO completions polled (no MSI capability, or irq=poll)\n");
	if (!d->ncq) return;
	int depth = DEPTH;
	if (depth > d->queue_depth) depth = d->queue_depth;
	if (depth > h->slots) depth = h->slots;
	h->port[d->port].sact_peak = 0;
	t0 = timer_now_ns();
	failed = transfer_ncq(h, d, 1, span, seed, depth, &bad);
	uint32_t peak_write = h->port[d->port].sact_peak;
	check(failed == 0, "WRITE FPDMA QUEUED (NCQ) of sectors 0-%lu, %d tags: %u failed, %lu ms", span - 1, depth, failed,
	      (timer_now_ns() - t0) / 1000000);
	h->port[d->port].sact_peak = 0;
	t0 = timer_now_ns();
	failed = transfer_ncq(h, d, 0, span, seed, depth, &bad);
	check(failed == 0 && bad == 0, "READ FPDMA QUEUED back and verified: %u failed, %u wrong sectors, %lu ms", failed, bad,
	      (timer_now_ns() - t0) / 1000000);
	uint32_t peak_read = h->port[d->port].sact_peak;
	/* How many tags the device held at once depends on how fast it is (a device may finish each before the next
	 * PxSACT read): reported, not checked; the data checks above are what NCQ must get right. */
	print("TESTGUEST ahci INFO ncq tags outstanding together (PxSACT): up to %u writes, %u reads of %d\n", peak_write,
	      peak_read, depth);
	uint64_t half = span / 2;
	for (int r = 0; r < 4; r++) {
		uint64_t lba = r * (half / 4), n = half / 4;
		int ok;
		uint32_t crc = region_crc(h, d, lba, n, &ok);
		if (ok) print("TESTGUEST ahci INFO sum lba=%lu n=%lu crc32=%08x\n", lba, n, crc);
		else check(0, "read of region lba=%lu n=%lu for its checksum", lba, n);
	}
}

static void commands(struct ahci *h, struct disk *d, const char *options, uint32_t seed) {
	char rt[48];
	struct ahci_port *p = &h->port[d->port];
	struct ahci_cmd flush = { .command = ATA_CMD_FLUSH_EXT, .device = 0x40 };
	int r = ahci_exec(h, d->port, &flush);
	check(r == 0, "FLUSH CACHE EXT: %s", result_text(r, rt, sizeof rt));
	uint64_t span = span_of(d, options), half = span / 2, quarter = span / 4;
	if (d->trim) {
		/* One 512-byte block of range entries: LBA in bits 47:0, sector count (at most 65535) in 63:48. */
		uint64_t *ranges = (uint64_t *)buffers[DEPTH - 1];
		memset(ranges, 0, 512);
		int entries = 0;
		for (uint64_t at = half; at < half + quarter && entries < 64; entries++) {
			uint64_t k = half + quarter - at < 65535 ? half + quarter - at : 65535;
			ranges[entries] = at | k << 48;
			at += k;
		}
		struct ahci_cmd dsm = { .command = ATA_CMD_DSM, .features = 1, .count = 1, .device = 0x40, .write = 1, .buf = ranges, .len = 512 };
		r = ahci_exec(h, d->port, &dsm);
		if (check(r == 0, "DATA SET MANAGEMENT TRIM lba=%lu n=%lu in %d range entries: %s", half, quarter, entries,
			  result_text(r, rt, sizeof rt)))
			print("TESTGUEST ahci INFO discarded lba=%lu n=%lu\n", half, quarter);
		uint32_t nonzero = 0;
		r = ahci_rw(h, d->port, 0, half, 8, buffers[0], 0);
		for (uint32_t i = 0; i < 8 * 512 / 8; i++) nonzero += ((uint64_t *)buffers[0])[i] != 0;
		if (d->rzat) check(r == 0 && nonzero == 0, "trimmed sectors read back as zeros (words 69 DRAT+RZAT): %u non-zero words", nonzero);
		else print("TESTGUEST ahci INFO trimmed sectors read back: %s, %u non-zero words (no zeroes promised)\n",
			   result_text(r, rt, sizeof rt), nonzero);
		ahci_exec(h, d->port, &flush);
	} else {
		print("TESTGUEST ahci INFO no TRIM offered (word 169 0x%x)\n", id[169]);
	}
	/* Past the end: the command fails (ABRT or IDNF in the ERR field), the port is recovered and serves the next read. */
	uint64_t at[2] = { d->sectors, d->sectors - 1 };
	for (int i = 0; i < 2; i++) {
		uint32_t recoveries = p->recoveries;
		r = ahci_rw(h, d->port, 0, at[i], 2, buffers[0], 0);
		check((r & AHCI_ERROR) && (AHCI_TFD_STS(r) & ATA_STS_ERR) && (AHCI_TFD_ERR(r) & (ATA_ERR_ABRT | ATA_ERR_IDNF)) &&
			      (p->err_is & (1u << 30)),
		      "READ DMA EXT of 2 sectors at %lu (capacity %lu) fails: %s, PxIS 0x%08x (TFES), PxSERR 0x%x", at[i], d->sectors,
		      result_text(r, rt, sizeof rt), p->err_is, p->err_serr);
		memset(buffers[0], 0, 8 * 512);
		int good = ahci_rw(h, d->port, 0, 0, 8, buffers[0], 0);
		check(p->recoveries == recoveries + 1 && good == 0 && blk_pattern_check(buffers[0], 0, 8, seed) == 0,
		      "port recovered (ST off, CR clear, PxSERR/PxIS cleared, ST on; %u COMRESETs so far): the next read returns the data: %s",
		      p->comresets, result_text(good, rt, sizeof rt));
	}
}

static void run(const char *options) {
	struct pci_function *f = driver_device("ahci", 0);
	if (!check(f != 0, "AHCI HBA bound to its driver")) return;
	struct ahci *h = f->driver_state;
	for (int i = 0; i < DEPTH; i++)
		if (!buffers[i]) buffers[i] = dma_alloc(CHUNK_BYTES);
	if (!id) id = dma_alloc(4096);
	uint32_t seed = (uint32_t)optlist_get_u64(options, "seed", 1);
	char mode[8] = "msi";
	optlist_get(options, "irq", mode, sizeof mode);
	if (strcmp(mode, "poll") == 0) h->setup_error = ahci_setup(h, AHCI_IRQ_POLL);
	hba_facts(h);
	if (h->setup_error) return;
	struct disk d = { .port = pick_port(h, options, "port", AHCI_SIG_ATA) };
	if (d.port >= 0 && d.port < AHCI_MAX_PORTS) {
		const struct ahci_port *p = &h->port[d.port];
		check((p->ssts & 0xF) == 3 && p->sig == AHCI_SIG_ATA && p->present, "port %d: link up (PxSSTS 0x%x, DET=3), signature 0x%08x (ATA disk)",
		      d.port, p->ssts, p->sig);
		if (p->present && identify(h, &d, options) == 0) {
			if (optlist_get_u64(options, "hostile", 0)) {
				ahci_hostile(h, d.port, d.sectors, d.trim, pick_port(h, options, "cdport", AHCI_SIG_ATAPI), seed, options);
				return;
			}
			data_path(h, &d, options, seed);
			commands(h, &d, options, seed);
		}
	} else {
		check(0, "a port with an ATA disk (signature 0x101)%s", d.port >= 0 ? ": port= out of range" : "");
	}
	int cd = pick_port(h, options, "cdport", AHCI_SIG_ATAPI);
	if (cd >= 0 && cd < AHCI_MAX_PORTS) ahci_cd(h, cd);
	else print("TESTGUEST ahci INFO no ATAPI port: CD checks not run\n");
}

const struct suite suite_ahci = { "ahci",
	"AHCI: HBA bring-up, IDENTIFY, DMA and NCQ patterns, FLUSH, TRIM, errors and recovery, ATAPI CD (port= cdport= ser= model= sectors= seed= span= ssd= irq=poll hostile= lenient=)",
	run };
