/*
 * The ATAPI CD part of test=ahci (suites/ahci.c): what an OS does with a SATA CD drive.
 *   - signature 0xEB140101; IDENTIFY DEVICE aborted (a packet device answers only IDENTIFY
 *     PACKET DEVICE), IDENTIFY PACKET DEVICE giving an ATAPI CD-ROM (word 0);
 *   - PACKET commands (MMC-6 / SPC-4): TEST UNIT READY (a UNIT ATTENTION or NOT READY
 *     after power-on is cleared with REQUEST SENSE and retried, as OSes do), INQUIRY
 *     (peripheral type 5), READ CAPACITY(10) ("INFO cd capacity blocks=N", 2048-byte blocks);
 *   - ISO 9660: the primary volume descriptor at LBA 16 ("CD001") read with READ(10), the root
 *     directory walked, and each regular file under 1 MiB (up to MAX_FILES) read by DMA with
 *     READ(10) and READ(12) in turn: "INFO cdfile name=.. size=.. crc32=.." for the host;
 *   - an unknown opcode and a READ(10) past the end fail with CHECK CONDITION, REQUEST SENSE
 *     saying ILLEGAL REQUEST; a WRITE(10) fails too (ILLEGAL REQUEST or DATA PROTECT);
 *   - READ TOC, MODE SENSE(10) of the capabilities page, GET CONFIGURATION and GET EVENT STATUS
 *     NOTIFICATION complete (Linux's sr driver and udev probe with them).
 * Data commands go by DMA (features bit 0); the small ones by PIO, as Linux sends them.
 */
#include "suite.h"
#include "../drivers/ahci.h"
#include "../lib/crc32.h"
#include "../lib/print.h"
#include "../lib/string.h"

#define BLOCK 2048u
#define FILE_MAX (1u << 20)
#define DIR_MAX (64u * 1024u)
#define MAX_FILES 4
#define PRD_CD (64u * 1024u)

#define SENSE_NOT_READY 0x2
#define SENSE_ILLEGAL_REQUEST 0x5
#define SENSE_UNIT_ATTENTION 0x6
#define SENSE_DATA_PROTECT 0x7

static uint8_t *small, *dir, *file;

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void put_be32(uint8_t *p, uint32_t v) {
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

struct sense {
	int ok;
	uint8_t key, asc, ascq;
};

/* REQUEST SENSE (fixed format, 18 bytes). */
static struct sense request_sense(struct ahci *h, int port) {
	uint8_t cdb[12] = { 0x03, 0, 0, 0, 18 };
	uint8_t *s = small + 1024;
	memset(s, 0, 18);
	struct sense out = { 0 };
	out.ok = ahci_atapi(h, port, cdb, s, 18, 0, 0) == 0 && (s[0] & 0x7E) == 0x70;
	out.key = s[2] & 0xF;
	out.asc = s[12];
	out.ascq = s[13];
	return out;
}

static const char *text(int r, char *out) {
	if (r == 0) format(out, 80, "ok");
	else if (r == AHCI_TIMEOUT) format(out, 80, "time-out");
	else format(out, 80, "error STS 0x%02x ERR 0x%02x (sense key 0x%x)", AHCI_TFD_STS(r), AHCI_TFD_ERR(r), AHCI_TFD_ERR(r) >> 4);
	return out;
}

/* READ(10) or READ(12) of `blocks` blocks at `lba` into buf, by DMA into PRDT entries of 64 KiB. */
static int read_blocks(struct ahci *h, int port, int twelve, uint32_t lba, uint32_t blocks, void *buf) {
	struct ahci_cmd c = { .command = ATA_CMD_PACKET, .features = 1, .atapi = 1, .buf = buf, .len = blocks * BLOCK, .prd_max = PRD_CD };
	uint8_t *cdb = c.cdb;
	if (twelve) {
		cdb[0] = 0xA8;
		put_be32(cdb + 2, lba);
		put_be32(cdb + 6, blocks);
	} else {
		cdb[0] = 0x28;
		put_be32(cdb + 2, lba);
		cdb[7] = (uint8_t)(blocks >> 8);
		cdb[8] = (uint8_t)blocks;
	}
	return ahci_exec(h, port, &c);
}

static void identify(struct ahci *h, int port) {
	char rt[80], model[48];
	uint16_t *id = (uint16_t *)small;
	int r = ahci_identify(h, port, 0, id);
	const volatile uint8_t *d2h = h->port[port].fis + 0x40;
	check((r & AHCI_ERROR) && (AHCI_TFD_ERR(r) & ATA_ERR_ABRT), "IDENTIFY DEVICE on the packet device aborted: %s", text(r, rt));
	print("TESTGUEST ahci INFO cd aborted IDENTIFY's D2H FIS: count 0x%02x lba 0x%02x%02x%02x (signature 0x01 0xEB1401 expected)\n",
	      d2h[12], d2h[6], d2h[5], d2h[4]);
	r = ahci_identify(h, port, 1, id);
	ahci_ata_string(id, 27, 20, model);
	check(r == 0 && (id[0] >> 14) == 2 && ((id[0] >> 8) & 0x1F) == 5,
	      "IDENTIFY PACKET DEVICE: %s, word 0 0x%04x (ATAPI, CD-ROM type 5), model \"%s\"", text(r, rt), id[0], model);
}

/* TEST UNIT READY until the unit is ready (UNIT ATTENTION and NOT READY cleared by REQUEST SENSE), 10 tries. */
static void unit_ready(struct ahci *h, int port) {
	char rt[80];
	uint8_t cdb[12] = { 0x00 };
	int r = 0, tries = 0;
	for (; tries < 10; tries++) {
		if ((r = ahci_atapi(h, port, cdb, 0, 0, 0, 0)) == 0) break;
		struct sense s = request_sense(h, port);
		print("TESTGUEST ahci INFO cd TEST UNIT READY: %s; sense key 0x%x ASC 0x%02x ASCQ 0x%02x\n", text(r, rt), s.key, s.asc, s.ascq);
		if (s.key != SENSE_UNIT_ATTENTION && s.key != SENSE_NOT_READY) break;
	}
	check(r == 0, "TEST UNIT READY: %s after %d tries", text(r, rt), tries + 1);
}

static void inquiry_capacity(struct ahci *h, int port, uint32_t *blocks) {
	char rt[80];
	uint8_t cdb[12] = { 0x12, 0, 0, 0, 36 };
	memset(small, 0, 36);
	int r = ahci_atapi(h, port, cdb, small, 36, 0, 0);
	char vendor[9], product[17];
	memcpy(vendor, small + 8, 8);
	vendor[8] = 0;
	memcpy(product, small + 16, 16);
	product[16] = 0;
	check(r == 0 && (small[0] & 0x1F) == 5, "INQUIRY: %s, peripheral type %u (5: CD/DVD), removable %u, \"%s\" \"%s\"", text(r, rt),
	      small[0] & 0x1F, small[1] >> 7, vendor, product);
	uint8_t cap[12] = { 0x25 };
	memset(small, 0, 8);
	r = ahci_atapi(h, port, cap, small, 8, 0, 0);
	uint32_t last = be32(small), size = be32(small + 4);
	*blocks = r == 0 ? last + 1 : 0;
	if (check(r == 0 && size == BLOCK && last > 16, "READ CAPACITY(10): %s, last LBA %u, %u-byte blocks", text(r, rt), last, size))
		print("TESTGUEST ahci INFO cd capacity blocks=%u\n", last + 1);
}

/* The name of a directory record as it is on the disc, without the ";1" version and a bare trailing dot. */
static void record_name(const uint8_t *rec, char *out, int size) {
	int n = rec[32], k = 0;
	for (int i = 0; i < n && k < size - 1 && rec[33 + i] != ';'; i++) out[k++] = (char)rec[33 + i];
	if (k > 0 && out[k - 1] == '.') k--;
	out[k] = 0;
}

static void iso9660(struct ahci *h, int port, uint32_t capacity) {
	char rt[80];
	memset(dir, 0, BLOCK);
	int r = read_blocks(h, port, 0, 16, 1, dir);
	char volume[33];
	memcpy(volume, dir + 40, 32);
	volume[32] = 0;
	for (int i = 31; i >= 0 && volume[i] == ' '; i--) volume[i] = 0;
	uint32_t moved = ahci_prdbc(h, port, 0);
	if (!check(r == 0 && dir[0] == 1 && memcmp(dir + 1, "CD001", 5) == 0 && moved == BLOCK,
		   "READ(10) of LBA 16: %s, %u bytes, primary volume descriptor (type %u, \"%c%c%c%c%c\"), volume \"%s\"", text(r, rt), moved,
		   dir[0], dir[1], dir[2], dir[3], dir[4], dir[5], volume))
		return;
	/* The root directory's record sits at offset 156 of the descriptor: extent (LBA) at 2, data length at 10. */
	uint32_t root = le32(dir + 156 + 2), root_bytes = le32(dir + 156 + 10);
	if (root_bytes > DIR_MAX) root_bytes = DIR_MAX;
	uint32_t root_blocks = (root_bytes + BLOCK - 1) / BLOCK;
	r = read_blocks(h, port, 0, root, root_blocks, dir);
	if (!check(r == 0 && root < capacity, "root directory at LBA %u, %u bytes: %s", root, root_bytes, text(r, rt))) return;
	int files = 0;
	for (uint32_t off = 0; off < root_bytes && files < MAX_FILES;) {
		const uint8_t *rec = dir + off;
		if (rec[0] == 0) {	/* records do not cross blocks: the rest of this one is padding */
			off = (off / BLOCK + 1) * BLOCK;
			continue;
		}
		uint32_t len = rec[0];
		off += len;
		if (len < 34 || rec[32] == 0 || (rec[32] == 1 && rec[33] <= 1)) continue;	/* "." and ".." */
		if (rec[25] & 0x82) continue;	/* a directory, or one extent of several */
		char name[40];
		record_name(rec, name, sizeof name);
		uint32_t extent = le32(rec + 2), size = le32(rec + 10);
		if (size > FILE_MAX) {
			print("TESTGUEST ahci INFO cd file %s of %u bytes skipped (over 1 MiB)\n", name, size);
			continue;
		}
		uint32_t blocks = (size + BLOCK - 1) / BLOCK;
		int twelve = files & 1;
		r = blocks ? read_blocks(h, port, twelve, extent, blocks, file) : 0;
		moved = blocks ? ahci_prdbc(h, port, 0) : 0;
		if (check(r == 0 && moved == blocks * BLOCK, "%s of %s: %u blocks at LBA %u: %s, %u bytes moved", twelve ? "READ(12)" : "READ(10)",
			  name, blocks, extent, text(r, rt), moved))
			print("TESTGUEST ahci INFO cdfile name=%s size=%u crc32=%08x\n", name, size, crc32_update(0, file, size));
		files++;
	}
	check(files > 0, "%d regular file(s) in the root directory read", files);
}

static void refusals(struct ahci *h, int port, uint32_t capacity) {
	char rt[80];
	/* 0x20 is reserved in MMC-6 / SPC-4's operation code tables. */
	uint8_t bad[12] = { 0x20 };
	int r = ahci_atapi(h, port, bad, 0, 0, 0, 0);
	struct sense s = request_sense(h, port);
	check((r & AHCI_ERROR) && s.ok && s.key == SENSE_ILLEGAL_REQUEST,
	      "unknown opcode 0x20: %s; REQUEST SENSE: key 0x%x ASC 0x%02x ASCQ 0x%02x (ILLEGAL REQUEST; 0x20 invalid opcode)", text(r, rt),
	      s.key, s.asc, s.ascq);
	r = read_blocks(h, port, 0, capacity, 1, file);
	s = request_sense(h, port);
	check((r & AHCI_ERROR) && s.ok && s.key == SENSE_ILLEGAL_REQUEST,
	      "READ(10) at LBA %u (the capacity): %s; sense key 0x%x ASC 0x%02x (ILLEGAL REQUEST; 0x21 out of range)", capacity, text(r, rt),
	      s.key, s.asc);
	uint8_t wr[12] = { 0x2A, 0, 0, 0, 0, 0, 0, 0, 1 };
	memset(file, 0xEE, BLOCK);
	r = ahci_atapi(h, port, wr, file, BLOCK, 1, 1);
	uint8_t key = (uint8_t)(AHCI_TFD_ERR(r) >> 4);
	s = request_sense(h, port);
	if (s.ok && s.key) key = s.key;
	if (check((r & AHCI_ERROR) && (key == SENSE_ILLEGAL_REQUEST || key == SENSE_DATA_PROTECT),
		  "WRITE(10) to the CD fails: %s; sense key 0x%x ASC 0x%02x", text(r, rt), key, s.asc))
		print("TESTGUEST ahci INFO cd write refused with %s\n", key == SENSE_DATA_PROTECT ? "DATA PROTECT" : "ILLEGAL REQUEST");
	/* The unit still reads after the refusals. */
	r = read_blocks(h, port, 0, 16, 1, dir);
	check(r == 0 && memcmp(dir + 1, "CD001", 5) == 0, "READ(10) of LBA 16 after the refusals: %s", text(r, rt));
}

static void probes(struct ahci *h, int port) {
	char rt[80];
	/* READ TOC, format 0 (TOC), LBA addresses, from track 0. */
	uint8_t toc[12] = { 0x43, 0, 0, 0, 0, 0, 0, 0x03, 0x24 };
	memset(small, 0, 804);
	int r = ahci_atapi(h, port, toc, small, 804, 0, 0);
	check(r == 0 && be16(small) >= 10 && small[2] >= 1,
	      "READ TOC: %s, data length %u, tracks %u-%u, track %u at LBA %u", text(r, rt), be16(small), small[2], small[3], small[6],
	      be32(small + 8));
	/* MODE SENSE(10), current values of the CD capabilities and mechanical status page (0x2A). */
	uint8_t ms[12] = { 0x5A, 0, 0x2A, 0, 0, 0, 0, 0, 128 };
	memset(small, 0, 128);
	r = ahci_atapi(h, port, ms, small, 128, 0, 0);
	uint32_t page = 8u + be16(small + 6);
	check(r == 0 && page < 126 && (small[page] & 0x3F) == 0x2A, "MODE SENSE(10) page 0x2A: %s, mode data length %u, page 0x%02x length %u",
	      text(r, rt), be16(small), small[page] & 0x3F, small[page + 1]);
	/* GET CONFIGURATION, all features from 0: the header names the current profile. */
	uint8_t gc[12] = { 0x46, 0, 0, 0, 0, 0, 0, 0x01, 0x00 };
	memset(small, 0, 256);
	r = ahci_atapi(h, port, gc, small, 256, 0, 0);
	check(r == 0 && be32(small) >= 4, "GET CONFIGURATION: %s, data length %u, current profile 0x%04x", text(r, rt), be32(small),
	      be16(small + 6));
	/* GET EVENT STATUS NOTIFICATION, polled, media class. */
	uint8_t gesn[12] = { 0x4A, 0x01, 0, 0, 0x10, 0, 0, 0, 8 };
	memset(small, 0, 8);
	r = ahci_atapi(h, port, gesn, small, 8, 0, 0);
	check(r == 0, "GET EVENT STATUS NOTIFICATION (media): %s, length %u, class 0x%02x, supported 0x%02x, event 0x%02x status 0x%02x",
	      text(r, rt), be16(small), small[2], small[3], small[4], small[5]);
}

void ahci_cd(struct ahci *h, int port) {
	if (!small) small = dma_alloc(4096);
	if (!dir) dir = dma_alloc(DIR_MAX);
	if (!file) file = dma_alloc(FILE_MAX);
	const struct ahci_port *p = &h->port[port];
	if (!check(p->present && (p->ssts & 0xF) == 3 && p->sig == AHCI_SIG_ATAPI,
		   "cd port %d: link up (PxSSTS 0x%x), signature 0x%08x (ATAPI)", port, p->ssts, p->sig))
		return;
	identify(h, port);
	unit_ready(h, port);
	uint32_t capacity = 0;
	inquiry_capacity(h, port, &capacity);
	if (capacity) iso9660(h, port, capacity);
	refusals(h, port, capacity);
	probes(h, port);
}
