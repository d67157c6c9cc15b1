/*
 * test=ahci,hostile=1[,lenient=1]: commands and register writes no correct AHCI driver makes. Each case prints what
 * the HBA answered (the error AHCI 1.3.1 / ACS-3 / SPC-4 / MMC-6 give, or "ignored": its CI bit cleared with no
 * error and no data), and is followed by the AHCI recovery (ST off, CR clear, PxSERR/PxIS cleared, ST on) and a good
 * READ DMA EXT whose data is checked (on the CD, a good READ(10) of the volume descriptor):
 *   - a command table (CTBA) in the MMIO hole above RAM and at 1 TiB, a command list (PxCLB) in the hole: host bus
 *     fatal (PxIS.HBFS);
 *   - a PRD buffer in the hole, at 1 TiB, and one running off the end of RAM (a write, so a lenient HBA reads RAM
 *     rather than writing it); a PRDT of fewer bytes than the transfer; PRDTL 0 with a data command: ABRT;
 *   - CFL 0 and 17, a FIS of type 34h, a register FIS with the C bit and SRST clear carrying a READ: aborted or
 *     ignored, never run;
 *   - READ DMA EXT of count 0 (65536 sectors) across the end, at LBA 2^47 and at the capacity: IDNF;
 *   - NCQ in a slot whose PxSACT bit was not set (an error or a completion with the data, no hang); an NCQ read past the end:
 *     TFES, and READ LOG EXT 10h names its tag with IDNF;
 *   - DATA SET MANAGEMENT of 0 and 65535 blocks, without the TRIM bit (ABRT), a range past the end (IDNF);
 *   - READ LOG EXT of 0 pages and of a log the directory does not list: ABRT;
 *   - all 32 slots issued at once with random headers and FISes (tables, PRDs and LBAs kept where they harm
 *     nothing), four rounds, the slots not yet answered issued again after each error: errors or completions,
 *     no hang;
 *   - byte and word writes to PxIE dropped; writes to a port PI does not name ignored (and not seen elsewhere);
 *   - on the CD port, when there is one: READ(12) of FFFFFFFFh blocks (ILLEGAL REQUEST / LBA OUT OF RANGE), READ(10)
 *     into a PRDT smaller than the data (INVALID FIELD IN CDB), INQUIRY with allocation length 0 (good, no data),
 *     WRITE(10) (DATA PROTECT / WRITE PROTECTED), opcode D9h (INVALID COMMAND OPERATION CODE), the sense read with
 *     REQUEST SENSE after the recovery.
 * lenient=1 accepts what QEMU 7.2's ICH9 does instead (README: "Hostile AHCI commands"): no answer for tables and
 * lists outside RAM, other FIS types and the control FIS; completions for DMA to non-RAM addresses, short PRDTs, any
 * CFL, DSM of 0 or 65535 blocks and count 0 (as no sectors); ABRT without IDNF; no NCQ error log; storm rounds that
 * time out; NCQ data landing after the CI bit cleared; byte writes taken as dword writes; the CD's short-PRDT READ(10) completed and WRITE(10) as an unknown
 * opcode. It leaves out PRDTL 0 with a data command (QEMU 7.2 stops on an assertion).
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../drivers/ahci.h"
#include "../drivers/blk_pattern.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/start_info.h"
#include "../platform/timer.h"

#define SECOND 1000000000ULL
#define CASE_WAIT SECOND
#define QUICK_WAIT (300 * 1000000ULL)
#define TIB 0x10000000000ULL	/* far above any guest RAM */
#define BIG (128u * 1024u)
#define IS_TFES (1u << 30)
#define IS_HBFS (1u << 29)
#define ATA_CMD_READ_LOG_EXT 0x2F
#define PX_IS 0x10
#define PX_IE 0x14
#define PX_CMD 0x18
#define PX_SACT 0x34
#define PX_CI 0x38
#define PX_CLB 0x00

void ahci_hostile(struct ahci *h, int port, uint64_t sectors, int trim, int cdport, uint32_t seed, const char *options);

static uint8_t *good, *big, *list, *scratch;
static uint32_t hostile_seed, rng;
static int lenient, disk;
static uint64_t capacity, hole, ram_end;

struct outcome {
	int r;			/* as ahci_wait: 0, AHCI_TIMEOUT or AHCI_ERROR | PxTFD */
	uint32_t is, prdbc;	/* PxIS at the error; PRDBC */
};

static uint32_t next_random(void) {
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Issues the prepared `slot` of `port` and waits up to `wait` ns; an error or time-out has recovered the port. */
static struct outcome issue_for(struct ahci *h, int port, int slot, int ncq, uint64_t wait) {
	struct ahci_port *p = &h->port[port];
	struct outcome o = { 0 };
	p->err_is = 0;
	ahci_issue(h, port, 1u << slot, ncq);
	uint32_t done = 0;
	while ((o.r = ahci_wait(h, port, &done, wait)) == 0 && !(done & (1u << slot))) {}
	o.is = o.r ? p->err_is : 0;
	o.prdbc = ahci_prdbc(h, port, slot);
	return o;
}

static struct outcome issue(struct ahci *h, int port, int slot, int ncq) { return issue_for(h, port, slot, ncq, CASE_WAIT); }

/* For the cases where lenient=1 takes no answer at all: a shorter wait then (QEMU holds the CI bit for ever). */
static struct outcome issue_unanswered(struct ahci *h, int slot) { return issue_for(h, disk, slot, 0, lenient ? QUICK_WAIT : CASE_WAIT); }

static const char *says(const struct outcome *o, char *out) {
	if (o->r == AHCI_TIMEOUT)
		format(out, 112, "time-out (PxIS 0x%08x)", o->is);
	else if (o->r)
		format(out, 112, "error STS 0x%02x ERR 0x%02x PxIS 0x%08x%s%s", AHCI_TFD_STS(o->r), AHCI_TFD_ERR(o->r), o->is,
		       o->is & IS_HBFS ? " HBFS" : "", o->is & IS_TFES ? " TFES" : "");
	else
		format(out, 112, "completed, PRDBC %u", o->prdbc);
	return out;
}

static int hbfs(const struct outcome *o) { return (o->r & AHCI_ERROR) && (o->is & IS_HBFS); }
static int aborted(const struct outcome *o) {
	return (o->r & AHCI_ERROR) && (AHCI_TFD_STS(o->r) & ATA_STS_ERR) && (AHCI_TFD_ERR(o->r) & ATA_ERR_ABRT) && (o->is & IS_TFES);
}
static int idnf(const struct outcome *o) {
	return (o->r & AHCI_ERROR) && (AHCI_TFD_STS(o->r) & ATA_STS_ERR) && (AHCI_TFD_ERR(o->r) & ATA_ERR_IDNF) && (o->is & IS_TFES);
}
/* CI cleared with no error and nothing moved (good[0] still the 0xEE the case put there). */
static int ignored(const struct outcome *o) { return o->r == 0 && o->prdbc == 0 && good[0] == 0xEE; }

/* `ok` is what the specs say; `relaxed` what lenient=1 also takes: RELAXED_ANSWER any answer, RELAXED_NONE no answer either. */
#define RELAXED_ANSWER 1
#define RELAXED_NONE 2
static int expect(const char *what, const struct outcome *o, int ok, int relaxed, const char *want) {
	char t[112];
	says(o, t);
	if (!ok && lenient && relaxed && (o->r != AHCI_TIMEOUT || relaxed == RELAXED_NONE)) return check(1, "hostile %s: %s (lenient; %s expected)", what, t, want);
	return check(ok, "hostile %s: %s (%s)", what, t, want);
}

static void good_read(struct ahci *h, const char *what) {
	ahci_port_recover(h, disk);
	memset(good, 0, 4096);
	int r = ahci_rw(h, disk, 0, 0, 8, good, 0);
	check(r == 0 && blk_pattern_check(good, 0, 8, hostile_seed) == 0, "hostile %s: good read status=0x%x correct afterwards", what, r);
}

/* A READ DMA EXT (or WRITE) of `n` sectors at `lba` in `slot`, `len` bytes at `buf` in one PRD; the caller spoils it. */
static volatile struct ahci_cmd_table *prep(struct ahci *h, int slot, uint8_t command, uint64_t lba, uint32_t n, void *buf, uint32_t len) {
	struct ahci_cmd c = { .command = command, .lba = lba, .count = (uint16_t)n, .device = 0x40,
			      .write = command == ATA_CMD_WRITE_DMA_EXT || command == ATA_CMD_DSM, .buf = buf, .len = len };
	memset(good, 0xEE, 4096);
	ahci_prepare(h, disk, slot, &c);
	return h->port[disk].tables[slot];
}

static volatile struct ahci_cmd_header *header(struct ahci *h, int slot) { return &h->port[disk].clb[slot]; }

static void outside_ram(struct ahci *h) {
	struct outcome o;
	prep(h, 0, ATA_CMD_READ_DMA_EXT, 0, 8, good, 4096);
	header(h, 0)->ctba = (uint32_t)hole;
	o = issue_unanswered(h, 0);
	expect("command table in the MMIO hole", &o, hbfs(&o), RELAXED_NONE, "host bus fatal, PxIS.HBFS");
	good_read(h, "command table in the MMIO hole");

	prep(h, 0, ATA_CMD_READ_DMA_EXT, 0, 8, good, 4096);
	header(h, 0)->ctba = 0;
	header(h, 0)->ctbau = (uint32_t)(TIB >> 32);
	o = issue_unanswered(h, 0);
	expect("command table at 1 TiB (CTBAU)", &o, hbfs(&o), RELAXED_NONE, "host bus fatal, PxIS.HBFS");
	good_read(h, "command table at 1 TiB");

	prep(h, 0, ATA_CMD_READ_DMA_EXT, 0, 8, good, 4096);
	int st = ahci_port_move_clb(h, disk, hole);
	if (st == 1) {
		o = issue_unanswered(h, 0);
		expect("command list (PxCLB) in the MMIO hole", &o, hbfs(&o), RELAXED_NONE, "host bus fatal, PxIS.HBFS");
	} else {
		check(st == 0 && lenient, "hostile command list (PxCLB) in the MMIO hole: PxCMD.ST %s%s", st ? "CR stuck" : "would not set",
		      lenient ? " (lenient; host bus fatal, PxIS.HBFS expected)" : "");
	}
	st = ahci_port_move_clb(h, disk, 0);
	check(st == 1, "hostile: command list moved back, PxCMD.ST set: %d", st);
	good_read(h, "command list in the MMIO hole");

	volatile struct ahci_cmd_table *t = prep(h, 0, ATA_CMD_READ_DMA_EXT, 0, 1, good, 512);
	t->prdt[0].dba = (uint32_t)hole;
	o = issue(h, disk, 0, 0);
	expect("PRD buffer in the MMIO hole", &o, aborted(&o), RELAXED_ANSWER, "ABRT");
	good_read(h, "PRD buffer in the MMIO hole");

	t = prep(h, 0, ATA_CMD_READ_DMA_EXT, 0, 1, good, 512);
	t->prdt[0].dba = 0;
	t->prdt[0].dbau = (uint32_t)(TIB >> 32);
	o = issue(h, disk, 0, 0);
	expect("PRD buffer at 1 TiB", &o, aborted(&o), RELAXED_ANSWER, "ABRT");
	good_read(h, "PRD buffer at 1 TiB");

	if (ram_end) {
		/* A write from the last 256 bytes of RAM and 256 beyond, to LBA 64 (away from the checked sectors). */
		t = prep(h, 0, ATA_CMD_WRITE_DMA_EXT, 64, 1, good, 512);
		t->prdt[0].dba = (uint32_t)(ram_end - 256);
		o = issue(h, disk, 0, 0);
		expect("PRD running off the end of RAM (write)", &o, aborted(&o), RELAXED_ANSWER, "ABRT");
		good_read(h, "PRD running off the end of RAM");
	}

	prep(h, 0, ATA_CMD_READ_DMA_EXT, 0, 8, good, 2048);
	o = issue(h, disk, 0, 0);
	int beyond = 0;
	for (int i = 2048; i < 4096; i++) beyond += good[i] != 0xEE;
	expect("PRDT of 2 KiB for 8 sectors", &o, aborted(&o) && !beyond, !beyond, "ABRT, nothing written past the PRDT");
	good_read(h, "PRDT shorter than the transfer");

	if (lenient) {
		/* QEMU 7.2 stops on an assertion (ide_dma_cb: prep_size <= n * 512) */
		print("TESTGUEST ahci INFO hostile PRDTL 0 with READ DMA EXT: not run (lenient=1)\n");
		return;
	}
	prep(h, 0, ATA_CMD_READ_DMA_EXT, 0, 1, good, 0);
	o = issue(h, disk, 0, 0);
	expect("PRDTL 0 with READ DMA EXT", &o, aborted(&o), 0, "ABRT");
	good_read(h, "PRDTL 0");
}

static void bad_fises(struct ahci *h) {
	static const struct {
		const char *what;
		int cfl, type, control;
	} cases[] = { { "CFL 0", 0, 0x27, 0 }, { "CFL 17", 17, 0x27, 0 }, { "FIS type 34h (device to host)", 5, 0x34, 0 },
		      { "C bit and SRST clear, READ DMA EXT in the FIS", 5, 0x27, 1 } };
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		volatile struct ahci_cmd_table *t = prep(h, 0, ATA_CMD_READ_DMA_EXT, 0, 1, good, 512);
		volatile struct ahci_cmd_header *hd = header(h, 0);
		hd->flags = (hd->flags & ~0x1Fu) | (uint32_t)cases[i].cfl;
		t->cfis[0] = (uint8_t)cases[i].type;
		if (cases[i].control) {
			t->cfis[1] = 0;
			t->cfis[15] = 0;
		}
		struct outcome o = issue_unanswered(h, 0);
		/* lenient: QEMU runs a register FIS whatever its CFL, and holds the CI bit of other FIS types and of a
		 * control FIS; a control FIS never runs the command in it. */
		int ran = o.r == 0 && !ignored(&o);
		expect(cases[i].what, &o, aborted(&o) || ignored(&o), cases[i].control && ran ? 0 : RELAXED_NONE, "ABRT, or ignored");
		good_read(h, cases[i].what);
	}
}

static void ranges(struct ahci *h) {
	uint64_t lba = capacity > 65535 ? capacity - 65535 : 0;
	struct ahci_cmd c = { .command = ATA_CMD_READ_DMA_EXT, .lba = lba, .count = 0, .device = 0x40, .buf = big, .len = BIG };
	memset(good, 0xEE, 4096);
	ahci_prepare(h, disk, 0, &c);
	struct outcome o = issue(h, disk, 0, 0);
	char what[80];
	format(what, sizeof what, "READ DMA EXT count 0 (65536 sectors) at %lu of %lu", lba, capacity);
	/* lenient: QEMU takes count 0 as no sectors (completes, nothing moved) */
	expect(what, &o, idnf(&o), aborted(&o) || (o.r == 0 && o.prdbc == 0), "IDNF");
	good_read(h, "count 0");

	prep(h, 0, ATA_CMD_READ_DMA_EXT, 1ULL << 47, 1, good, 512);
	o = issue(h, disk, 0, 0);
	expect("READ DMA EXT at LBA 2^47", &o, idnf(&o), aborted(&o), "IDNF");
	good_read(h, "LBA 2^47");

	prep(h, 0, ATA_CMD_READ_DMA_EXT, capacity, 1, good, 512);
	o = issue(h, disk, 0, 0);
	format(what, sizeof what, "READ DMA EXT at LBA %lu (the capacity)", capacity);
	expect(what, &o, idnf(&o), aborted(&o), "IDNF");
	good_read(h, "LBA at the capacity");
}

static void ncq(struct ahci *h) {
	memset(good, 0xEE, 4096);
	ahci_prepare_ncq(h, disk, 3, 0, 0, 8, good, 0);
	struct outcome o = issue(h, disk, 3, 0);
	uint32_t sact = ahci_port_read(h, disk, PX_SACT);
	int data_ok = o.r == 0 && blk_pattern_check(good, 0, 8, hostile_seed) == 0;
	/* lenient: QEMU clears an NCQ command's CI bit when it takes the command, before the read's DMA, and with no
	 * PxSACT bit there is no Set Device Bits FIS to wait for, so the data may land after CI clears. */
	uint64_t late_ms = 0;
	if (lenient && o.r == 0 && !data_ok) {
		uint64_t start = timer_now_ns();
		while (!data_ok && timer_now_ns() - start < CASE_WAIT) {
			timer_delay_us(1000);
			data_ok = blk_pattern_check(good, 0, 8, hostile_seed) == 0;
		}
		late_ms = data_ok ? (timer_now_ns() - start) / 1000000 + 1 : 0;
	}
	char t[112], late[64] = "";
	if (late_ms) format(late, sizeof late, " (lenient; after CI cleared, within %lu ms)", late_ms);
	check(o.r != AHCI_TIMEOUT && (o.r || data_ok) && sact == 0,
	      "hostile NCQ READ FPDMA QUEUED in slot 3 without its PxSACT bit: %s%s%s, PxSACT 0x%x (an error or the data)", says(&o, t),
	      o.r ? "" : (data_ok ? ", data correct" : ", data WRONG"), late, sact);
	good_read(h, "NCQ without PxSACT");

	ahci_prepare_ncq(h, disk, 5, 0, capacity - 1, 8, good, 0);
	o = issue(h, disk, 5, 1);
	expect("NCQ read of 8 sectors at the last LBA, tag 5", &o, idnf(&o), (o.r & AHCI_ERROR) && (o.is & IS_TFES), "TFES, IDNF");
	/* ahci_wait recovered the port; the NCQ command error log now names the failed tag. */
	memset(good, 0, 512);
	struct ahci_cmd log = { .command = ATA_CMD_READ_LOG_EXT, .lba = 0x10, .count = 1, .buf = good, .len = 512 };
	int r = ahci_exec(h, disk, &log);
	uint8_t sum = 0;
	for (int i = 0; i < 512; i++) sum = (uint8_t)(sum + good[i]);
	int named = r == 0 && (good[0] & 0x1F) == 5 && !(good[0] & 0x80) && (good[3] & ATA_ERR_IDNF) && sum == 0;
	check(named || lenient, "hostile READ LOG EXT 10h after it: status=0x%x, tag %u NQ %u, STS 0x%02x ERR 0x%02x, checksum %s%s", r,
	      good[0] & 0x1F, good[0] >> 7, good[2], good[3], sum ? "bad" : "ok", named || !lenient ? "" : " (lenient; tag 5 with IDNF expected)");
	good_read(h, "NCQ past the end");
}

static struct outcome dsm(struct ahci *h, uint16_t features, uint16_t count) {
	struct ahci_cmd c = { .command = ATA_CMD_DSM, .features = features, .count = count, .device = 0x40, .write = 1, .buf = list, .len = 512 };
	memset(good, 0xEE, 4096);
	ahci_prepare(h, disk, 0, &c);
	return issue(h, disk, 0, 0);
}

static void dsm_and_logs(struct ahci *h, int trim) {
	/* Range entries that are all zero (count 0: nothing to trim) unless the case says otherwise. */
	memset(list, 0, 512);
	struct outcome o = dsm(h, 1, 0);
	expect("DATA SET MANAGEMENT TRIM of 0 blocks", &o, aborted(&o), RELAXED_ANSWER, "ABRT");
	good_read(h, "DSM of 0 blocks");
	o = dsm(h, 1, 65535);
	expect("DATA SET MANAGEMENT TRIM of 65535 blocks (a 512-byte PRDT)", &o, aborted(&o), RELAXED_ANSWER, "ABRT");
	good_read(h, "DSM of 65535 blocks");
	o = dsm(h, 0, 1);
	expect("DATA SET MANAGEMENT without the TRIM bit", &o, aborted(&o), 0, "ABRT");
	good_read(h, "DSM without TRIM");
	((uint64_t *)list)[0] = (capacity - 4) | 16ULL << 48;
	o = dsm(h, 1, 1);
	char what[80];
	format(what, sizeof what, "DATA SET MANAGEMENT TRIM of 16 sectors at %lu", capacity - 4);
	expect(what, &o, trim ? idnf(&o) : aborted(&o), aborted(&o), trim ? "IDNF" : "ABRT: no TRIM offered");
	good_read(h, "DSM range past the end");

	struct ahci_cmd c = { .command = ATA_CMD_READ_LOG_EXT, .lba = 0, .count = 0, .buf = good, .len = 512 };
	memset(good, 0xEE, 4096);
	ahci_prepare(h, disk, 0, &c);
	o = issue(h, disk, 0, 0);
	expect("READ LOG EXT of 0 pages (the directory)", &o, aborted(&o), 0, "ABRT");
	good_read(h, "READ LOG EXT of 0 pages");

	/* A log the directory says has no pages (0x30 or the first above it); without a directory, 0x30. */
	c.count = 1;
	memset(big, 0, 512);
	c.buf = big;
	int r = ahci_exec(h, disk, &c);
	uint8_t addr = 0x30;
	const uint16_t *dir = (const uint16_t *)big;
	while (r == 0 && dir[addr] && addr < 0xFF) addr++;
	format(what, sizeof what, "READ LOG EXT of log %02xh (%s)", addr, r == 0 ? "not in the directory" : "no directory either");
	c.lba = addr;
	c.buf = good;
	memset(good, 0xEE, 4096);
	ahci_prepare(h, disk, 0, &c);
	o = issue(h, disk, 0, 0);
	expect(what, &o, aborted(&o), 0, "ABRT");
	good_read(h, "READ LOG EXT of an absent log");
}

/*
 * Every slot at once with random header flags (PRDTL up to the 248 entries a table holds), PRDBC, the reserved
 * bits of CTBA and the reserved dwords; random FISes and packets (odd slots made register FISes with C set). What
 * the random bytes cannot do: point a table or PRD outside this suite's pages, or name an LBA under 2^16 + the
 * 28-bit and 48-bit high bits (all past the disk), or be DATA SET MANAGEMENT (its ranges would come from scratch).
 */
#define STORM_ROUNDS 4

/* Random contents for every slot of the disk port (see storm). */
static void storm_fill(struct ahci *h) {
	struct ahci_port *p = &h->port[disk];
	for (int s = 0; s < AHCI_SLOTS; s++) {
		volatile struct ahci_cmd_table *t = p->tables[s];
		volatile uint8_t *raw = (volatile uint8_t *)t;
		for (int i = 0; i < 128; i++) raw[i] = (uint8_t)next_random();
		if (s & 1) {
			t->cfis[0] = 0x27;
			t->cfis[1] |= 0x80;
		}
		t->cfis[6] |= 0x01;
		t->cfis[7] |= 0x0F;
		t->cfis[10] |= 0x80;
		if (t->cfis[2] == ATA_CMD_DSM) t->cfis[2] = 0x05;
		for (int i = 0; i < AHCI_PRDT_MAX; i++) {
			t->prdt[i].dba = (uint32_t)(uintptr_t)scratch + (next_random() & 0xFFFE);
			t->prdt[i].dbau = 0;
			t->prdt[i].reserved = next_random();
			t->prdt[i].dbc = next_random() & 0x8000FFFFu;
		}
		volatile struct ahci_cmd_header *hd = &p->clb[s];
		hd->flags = (next_random() & 0xFFFFu) | (next_random() % (AHCI_PRDT_MAX + 1)) << 16;
		hd->prdbc = next_random();
		hd->ctba = (uint32_t)(uintptr_t)t | (next_random() & 0x7F);
		hd->ctbau = 0;
		for (int i = 0; i < 4; i++) hd->reserved[i] = next_random();
	}
}

/*
 * STORM_ROUNDS rounds of every slot at once with random header flags (PRDTL up to the 248 entries a table holds),
 * PRDBC, the reserved bits of CTBA and the reserved dwords; random FISes and packets (odd slots made register FISes
 * with C set). What the random bytes cannot do: point a table or PRD outside this suite's pages, name an LBA the
 * disk has (LBA bit 16, the 28-bit and 48-bit high bits are set: all past the end), or be DATA SET MANAGEMENT (its
 * ranges would come from scratch). After an error (the port recovered) the slots not yet answered are issued again
 * without the one that failed (PxCMD.CCS when it names an issued slot, else the lowest PxCI bit), until every slot
 * of the round has answered; a time-out ends the round.
 */
static void storm(struct ahci *h) {
	struct ahci_port *p = &h->port[disk];
	struct ahci_cmd c = { .command = ATA_CMD_IDENTIFY };
	for (int s = 0; s < AHCI_SLOTS; s++) ahci_prepare(h, disk, s, &c);
	memset(scratch, 0xFF, BIG);
	/* lenient: QEMU can leave the port busy with a command that never ends; each such round costs the limit */
	uint64_t limit = lenient ? 250 * 1000000ULL : 3 * SECOND, t0 = timer_now_ns();
	int completed = 0, errors = 0, timeouts = 0, issues = 0;
	uint32_t first_is = 0;
	for (int round = 0; round < STORM_ROUNDS; round++) {
		storm_fill(h);
		uint32_t left = 0xFFFFFFFFu;
		for (int n = 0; left && n < 64; n++) {
			uint64_t t1 = timer_now_ns();
			p->err_is = 0;
			ahci_issue(h, disk, left, 0);
			issues++;
			uint32_t done = 0;
			int r = 0;
			while (p->outstanding && r == 0) {
				uint64_t spent = timer_now_ns() - t1;
				r = spent > limit ? ahci_give_up(h, disk) : ahci_wait(h, disk, &done, limit - spent);
				for (uint32_t d = done & left; d; d &= d - 1) completed++;
				left &= ~done;
			}
			if (r == AHCI_TIMEOUT) {
				timeouts++;
				break;
			}
			if (r) {
				errors++;
				if (!first_is) first_is = p->err_is;
				uint32_t ccs = 1u << ((p->err_cmd >> 8) & 0x1F), held = p->err_ci & left;
				left &= ~(held & ccs ? ccs : held ? held & -held : left);
			}
		}
	}
	check(timeouts == 0 || lenient,
	      "hostile %d rounds of 32 slots of random headers and FISes: %d issues, %d commands completed, %d errors (first PxIS 0x%08x), %d time-outs, %lu ms%s",
	      STORM_ROUNDS, issues, completed, errors, first_is, timeouts, (timer_now_ns() - t0) / 1000000, timeouts && lenient ? " (lenient)" : "");
	/* Headers back to all zeros (the good commands only write the fields they use). */
	memset((void *)p->clb, 0, AHCI_SLOTS * sizeof(struct ahci_cmd_header));
	good_read(h, "32 random slots");
}

static void registers(struct ahci *h) {
	uintptr_t regs = ahci_port_regs(h, disk);
	uint32_t ie = ahci_port_read(h, disk, PX_IE);
	mmio_write8(regs + PX_IE, (uint8_t)~ie);
	mmio_write16(regs + PX_IE + 2, (uint16_t)~(ie >> 16));
	uint32_t now = ahci_port_read(h, disk, PX_IE);
	check(now == ie || lenient, "hostile byte write to PxIE and word write to PxIE+2: PxIE 0x%08x, was 0x%08x (unchanged)%s", now, ie,
	      now == ie || !lenient ? "" : " (lenient)");
	ahci_port_write(h, disk, PX_IE, ie);
	good_read(h, "narrow register writes");

	uint32_t bar = (uint32_t)h->pci->bar[5].size;
	int absent = -1;
	for (int i = 0; i < AHCI_MAX_PORTS && absent < 0; i++)
		if (!(h->pi & (1u << i)) && 0x100u + 0x80u * (uint32_t)(i + 1) <= bar) absent = i;
	if (absent < 0) {
		print("TESTGUEST ahci INFO hostile: every port in ABAR (%u bytes) is implemented: no absent port to write\n", bar);
		return;
	}
	uint32_t cmd = ahci_port_read(h, disk, PX_CMD), clb = ahci_port_read(h, disk, PX_CLB);
	ahci_port_write(h, absent, PX_CLB, (uint32_t)(uintptr_t)h->port[disk].clb);
	ahci_port_write(h, absent, PX_IE, 0xFFFFFFFFu);
	ahci_port_write(h, absent, PX_CMD, 0x11);	/* FRE | ST */
	ahci_port_write(h, absent, PX_SACT, 0xFFFFFFFFu);
	ahci_port_write(h, absent, PX_CI, 0xFFFFFFFFu);
	timer_delay_us(2000);
	uint32_t ci = ahci_port_read(h, absent, PX_CI), sact = ahci_port_read(h, absent, PX_SACT), acmd = ahci_port_read(h, absent, PX_CMD);
	uint32_t is = ahci_port_read(h, absent, PX_IS);
	int others = ahci_port_read(h, disk, PX_IE) == ie && ahci_port_read(h, disk, PX_CMD) == cmd && ahci_port_read(h, disk, PX_CLB) == clb;
	check(ci == 0 && sact == 0 && !(acmd & 1) && is == 0 && others,
	      "hostile writes to port %d (not in PI 0x%x): PxCI 0x%x PxSACT 0x%x PxCMD 0x%x PxIS 0x%x; port %d's registers %s", absent, h->pi, ci,
	      sact, acmd, is, disk, others ? "unchanged" : "CHANGED");
	ahci_port_write(h, absent, PX_CMD, 0);
	ahci_port_write(h, absent, PX_IE, 0);
	good_read(h, "writes to an absent port");
}

/* ---- ATAPI ---- */

#define CD_BLOCK 2048u

struct sense {
	int ok;
	uint8_t key, asc, ascq;
};

static struct sense request_sense(struct ahci *h, int port) {
	uint8_t cdb[12] = { 0x03, 0, 0, 0, 18 };
	uint8_t *s = list;
	memset(s, 0, 18);
	struct sense out = { 0 };
	out.ok = ahci_atapi(h, port, cdb, s, 18, 0, 0) == 0 && (s[0] & 0x7E) == 0x70;
	out.key = s[2] & 0xF;
	out.asc = s[12];
	out.ascq = s[13];
	return out;
}

static struct outcome packet(struct ahci *h, int port, const uint8_t *cdb, void *buf, uint32_t len, int write, int dma) {
	struct ahci_cmd c = { .command = ATA_CMD_PACKET, .features = dma ? 1 : 0, .lba = (uint64_t)(dma ? 0 : (len < 0xFFFE ? len : 0xFFFE)) << 8,
			      .write = (uint8_t)write, .atapi = 1, .buf = buf, .len = len };
	memcpy(c.cdb, cdb, 12);
	ahci_prepare(h, port, 0, &c);
	return issue(h, port, 0, 0);
}

static void cd_good_read(struct ahci *h, int port, const char *what) {
	ahci_port_recover(h, port);
	uint8_t cdb[12] = { 0x28, 0, 0, 0, 0, 16, 0, 0, 1 };
	memset(big, 0, CD_BLOCK);
	int r = ahci_atapi(h, port, cdb, big, CD_BLOCK, 0, 1);
	check(r == 0 && big[0] == 1 && memcmp(big + 1, "CD001", 5) == 0, "hostile cd %s: good read status=0x%x correct afterwards", what, r);
}

static void cd_case(struct ahci *h, int port, const char *what, const struct outcome *o, struct sense s, uint8_t key, uint8_t asc,
		    int relaxed) {
	char t[112];
	says(o, t);
	int ok = (o->r & AHCI_ERROR) && (o->is & IS_TFES) && s.ok && s.key == key && s.asc == asc && s.ascq == 0;
	if (!ok && lenient && relaxed && o->r != AHCI_TIMEOUT)
		check(1, "hostile cd %s: %s; sense %x/%02x/%02x (lenient; %x/%02x/00 expected)", what, t, s.key, s.asc, s.ascq, key, asc);
	else
		check(ok, "hostile cd %s: %s; sense %x/%02x/%02x (CHECK CONDITION, %x/%02x/00)", what, t, s.key, s.asc, s.ascq, key, asc);
	cd_good_read(h, port, what);
}

static void cd(struct ahci *h, int port) {
	const struct ahci_port *p = &h->port[port];
	if (!p->present || p->sig != AHCI_SIG_ATAPI) {
		print("TESTGUEST ahci INFO hostile: no ATAPI port: CD cases not run\n");
		return;
	}
	/* A UNIT ATTENTION after power-on would stand in for the first case's sense: cleared first. */
	uint8_t tur[12] = { 0x00 };
	for (int i = 0; i < 5 && ahci_atapi(h, port, tur, 0, 0, 0, 0) != 0; i++) request_sense(h, port);
	uint8_t *data = big;

	uint8_t r12[12] = { 0xA8, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF };
	struct outcome o = packet(h, port, r12, data, CD_BLOCK, 0, 1);
	cd_case(h, port, "READ(12) of FFFFFFFFh blocks", &o, request_sense(h, port), 0x5, 0x21, 0);

	uint8_t r10[12] = { 0x28, 0, 0, 0, 0, 16, 0, 0, 4 };
	memset(data, 0xEE, 4 * CD_BLOCK);
	o = packet(h, port, r10, data, CD_BLOCK, 0, 1);
	struct sense s = request_sense(h, port);
	int beyond = 0;
	for (uint32_t i = CD_BLOCK; i < 4 * CD_BLOCK; i++) beyond += data[i] != 0xEE;
	if (beyond) check(0, "hostile cd READ(10) of 4 blocks into a 2 KiB PRDT: %d bytes written past the PRDT", beyond);
	cd_case(h, port, "READ(10) of 4 blocks into a 2 KiB PRDT", &o, s, 0x5, 0x24, 1);

	uint8_t inq[12] = { 0x12, 0, 0, 0, 0 };
	memset(data, 0xEE, 64);
	o = packet(h, port, inq, data, 64, 0, 0);
	char t[112];
	int untouched = data[0] == 0xEE;
	int ok = o.r == 0 && o.prdbc == 0 && untouched;
	check(ok || (lenient && o.r == 0), "hostile cd INQUIRY with allocation length 0: %s, data %s (good, no data)%s", says(&o, t),
	      untouched ? "untouched" : "written", ok ? "" : " (lenient)");
	cd_good_read(h, port, "INQUIRY with allocation length 0");

	uint8_t wr[12] = { 0x2A, 0, 0, 0, 0, 0, 0, 0, 1 };
	memset(data, 0x5A, CD_BLOCK);
	o = packet(h, port, wr, data, CD_BLOCK, 1, 1);
	s = request_sense(h, port);
	/* lenient: a drive that does not know WRITE(10) at all answers INVALID COMMAND OPERATION CODE. */
	cd_case(h, port, "WRITE(10)", &o, s, 0x7, 0x27, s.key == 0x5 && s.asc == 0x20);

	uint8_t unknown[12] = { 0xD9 };
	o = packet(h, port, unknown, 0, 0, 0, 0);
	cd_case(h, port, "opcode D9h", &o, request_sense(h, port), 0x5, 0x20, 0);
}

void ahci_hostile(struct ahci *h, int port, uint64_t sectors, int trim, int cdport, uint32_t seed, const char *options) {
	lenient = (int)optlist_get_u64(options, "lenient", 0);
	hostile_seed = seed;
	rng = seed * 2654435761u | 1;
	disk = port;
	capacity = sectors;
	if (!good) {
		good = dma_alloc(4096);
		big = dma_alloc(BIG);
		list = dma_alloc(4096);
		scratch = dma_alloc(BIG);
	}
	uint64_t high;
	memmap_ram_split(&ram_end, &high);
	/* 16 MiB above low RAM, in the hole below the PCI window the guest puts BARs in (from 0xC0000000). */
	hole = ((ram_end + (16u << 20)) & ~0xFFFFFULL);
	if (!ram_end || hole >= 0xB0000000ULL) hole = 0xBFF00000ULL;
	print("TESTGUEST ahci INFO hostile: lenient=%d RAM ends at 0x%lx, the hole used 0x%lx\n", lenient, ram_end, hole);
	blk_pattern_fill(big, 0, 8, seed);
	int r = ahci_rw(h, disk, 1, 0, 8, big, 0);
	check(r == 0, "hostile: known data written at LBA 0-7: status=0x%x", r);
	outside_ram(h);
	bad_fises(h);
	ranges(h);
	ncq(h);
	dsm_and_logs(h, trim);
	storm(h);
	registers(h);
	if (cdport >= 0 && cdport < AHCI_MAX_PORTS) cd(h, cdport);
	else print("TESTGUEST ahci INFO hostile: no ATAPI port: CD cases not run\n");
	good_read(h, "final");
}
