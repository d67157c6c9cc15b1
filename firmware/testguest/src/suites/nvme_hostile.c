/*
 * test=nvme,hostile=1[,lenient=1]: commands no correct driver sends. Each case prints the status the
 * controller gave (the host test holds tsbhyve to the exact NVMe status codes; any error is
 * accepted from other controllers where the spec leaves a choice), and is followed by a good
 * read that must return the right data:
 *   PRP1 outside RAM; PRP1 not dword aligned; a PRP list pointer outside RAM; a list entry with
 *   an offset; a transfer beyond MDTS; LBAs past the end; namespaces 0 and 7; an unknown
 *   opcode; queue creation with bad ids, sizes, CQs and vectors; deleting a CQ an SQ uses;
 *   doorbells for a queue that does not exist (with an Asynchronous Event Request outstanding)
 *   and an SQ tail past the queue size.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../drivers/blk_pattern.h"
#include "../drivers/nvme.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define SECOND 1000000000ULL
#define NOT_RAM 0xFFFF00000000ULL	/* 48-bit address far above any guest RAM */

static uint8_t *good, *page, *list;
static uint32_t hostile_seed;
/* lenient=1: a controller may complete DMA to addresses that are not RAM (QEMU drops it silently), and may post no
 * event for a doorbell of a queue that does not exist */
static int lenient;

static int submit_raw(struct nvme *c, struct nvme_cmd *cmd) {
	nvme_queue_raw(c, 1, 0, cmd);
	nvme_ring(c, 1);
	uint64_t t0 = timer_now_ns();
	int st;
	while (nvme_reap(c, 1, &st) < 0) {
		if (timer_now_ns() - t0 > 10 * SECOND) return NVME_TIMEOUT;
		cpu_relax();
	}
	nvme_cq_ring(c, 1);
	return st;
}

static void good_read(struct nvme *c, const char *what) {
	memset(good, 0, 4096);
	int st = nvme_io(c, 1, NVME_OP_READ, 0, 4096 / c->lba_bytes, good, 4096);
	check(st == 0 && blk_pattern_check(good, 0, 8, hostile_seed) == 0, "hostile %s: good read status=0x%x correct afterwards", what, st);
}

static uint32_t nlb_for(struct nvme *c, uint32_t bytes) { return bytes / c->lba_bytes - 1; }

/* `prp_case`: the refusal is about memory addresses, which lenient=1 lets a controller accept. */
static void io_case(struct nvme *c, const char *what, uint64_t prp1, uint64_t prp2, uint32_t bytes, uint32_t nsid, uint8_t op,
		    uint64_t slba, int prp_case) {
	struct nvme_cmd cmd = { .cdw0 = op, .nsid = nsid, .prp1 = prp1, .prp2 = prp2, .cdw10 = (uint32_t)slba,
				.cdw11 = (uint32_t)(slba >> 32), .cdw12 = nlb_for(c, bytes) };
	int st = submit_raw(c, &cmd);
	if (st == 0 && prp_case && lenient)
		check(1, "hostile %s: accepted status=0x0 (lenient)", what);
	else
		check(st != 0 && st != NVME_TIMEOUT, "hostile %s: refused status=0x%x", what, st);
	good_read(c, what);
}

static int admin_status(struct nvme *c, uint8_t op, uint64_t prp1, uint32_t cdw10, uint32_t cdw11) {
	struct nvme_cmd cmd = { .cdw0 = op, .prp1 = prp1, .cdw10 = cdw10, .cdw11 = cdw11 };
	return nvme_admin(c, &cmd, 0);
}

void nvme_hostile(struct nvme *c, uint32_t seed, const char *options) {
	lenient = (int)optlist_get_u64(options, "lenient", 0);
	hostile_seed = seed;
	if (!good) {
		good = dma_alloc(4096);
		page = dma_alloc(4 * 4096);
		list = dma_alloc(4096);
	}
	blk_pattern_fill(page, 0, 8, seed);
	int st = nvme_io(c, 1, NVME_OP_WRITE, 0, 4096 / c->lba_bytes, page, 4096);
	check(st == 0, "hostile: known data written at LBA 0: status=0x%x", st);
	uint64_t p = (uint64_t)(uintptr_t)page, l = (uint64_t)(uintptr_t)list;

	io_case(c, "PRP1 outside RAM", NOT_RAM, 0, 4096, 1, NVME_OP_READ, 0, 1);
	io_case(c, "PRP1 not dword aligned", p + 2, 0, 4096, 1, NVME_OP_READ, 0, 1);
	io_case(c, "PRP list pointer outside RAM", p, NOT_RAM, 3 * 4096, 1, NVME_OP_READ, 0, 1);
	((uint64_t *)list)[0] = p + 4096;
	((uint64_t *)list)[1] = p + 2 * 4096 + 8;	/* entries after the first must be page aligned */
	io_case(c, "PRP list entry with an offset", p, l, 3 * 4096, 1, NVME_OP_READ, 0, 1);
	((uint64_t *)list)[1] = NOT_RAM;
	/* A write away from LBA 0 (a lenient controller writes whatever it read from nowhere). */
	io_case(c, "PRP list entry outside RAM (write)", p, l, 3 * 4096, 1, NVME_OP_WRITE, 64, 1);
	if (c->mdts) {
		/* One page more than MDTS allows; the list repeats one page so nothing outside it could be touched. */
		uint32_t bytes = (4096u << c->mdts) + 4096u;
		for (int i = 0; i < 512; i++) ((uint64_t *)list)[i] = p + 4096;
		io_case(c, "transfer beyond MDTS", p, l, bytes, 1, NVME_OP_READ, 0, 0);
	}
	io_case(c, "LBA past the end", p, 0, c->lba_bytes, 1, NVME_OP_READ, c->nsze, 0);
	io_case(c, "LBA near 2^64 (no wrap)", p, 0, 2 * c->lba_bytes, 1, NVME_OP_READ, ~0ULL, 0);
	io_case(c, "namespace 0", p, 0, c->lba_bytes, 0, NVME_OP_READ, 0, 0);
	io_case(c, "namespace 7", p, 0, c->lba_bytes, 7, NVME_OP_READ, 0, 0);
	io_case(c, "unknown opcode 0x7f", p, 0, c->lba_bytes, 1, 0x7F, 0, 0);

	/* Queue administration */
	uint64_t q = (uint64_t)(uintptr_t)dma_alloc(4096);
	int qid = c->nio + 1;
	st = admin_status(c, 0x05, q, 15u << 16 | 0, 1);
	check(st == 0x101, "hostile create CQ 0: status=0x%x (Invalid Queue Identifier)", st);
	st = admin_status(c, 0x05, q, (c->mqes) << 16 | (uint32_t)qid, 1);
	check(st == 0x102, "hostile create CQ with MQES+2 entries: status=0x%x (Invalid Queue Size)", st);
	st = admin_status(c, 0x05, q, 15u << 16 | (uint32_t)qid, 0x7FFu << 16 | 3);
	check(st == 0x108, "hostile create CQ on vector 2047: status=0x%x (Invalid Interrupt Vector)", st);
	st = admin_status(c, 0x01, q, 15u << 16 | (uint32_t)qid, (uint32_t)(qid + 3) << 16 | 1);
	check(st == 0x100, "hostile create SQ on a CQ that does not exist: status=0x%x (Completion Queue Invalid)", st);
	st = admin_status(c, 0x04, 0, 1, 0);
	check(st == 0x10C, "hostile delete CQ 1 while SQ 1 uses it: status=0x%x (Invalid Queue Deletion)", st);
	st = admin_status(c, 0x00, 0, 0, 0);
	check(st == 0x101, "hostile delete SQ 0: status=0x%x (Invalid Queue Identifier)", st);
	good_read(c, "queue administration");

	/* Doorbells: an AER outstanding, then a doorbell for a queue that does not exist. */
	struct nvme_cmd aer = { .cdw0 = 0x0C };
	nvme_queue_raw(c, 0, 1, &aer);
	nvme_ring(c, 0);
	nvme_doorbell_raw(c, 0x1000 + (uint32_t)(2 * qid) * c->dstrd, 1);
	volatile struct nvme_cqe *e = &c->admin.cq[c->admin.cq_head];
	uint64_t t0 = timer_now_ns();
	while ((e->status & 1) != c->admin.phase && timer_now_ns() - t0 < 2 * SECOND) cpu_relax();
	int got = (e->status & 1) == c->admin.phase;
	uint32_t dw0 = got ? e->dw0 : 0;
	if (got) {
		nvme_reap(c, 0, &st);
		nvme_cq_ring(c, 0);
	}
	/* QEMU 7.2 sometimes posts no event for it when the AER was fetched after the doorbell (seen once under load):
	 * lenient=1 takes a missing event as a pass. */
	if (!got && lenient)
		check(1, "hostile doorbell of SQ %d (absent): no AER within 2 s (lenient)", qid);
	else
		check(got && (dw0 & 7) == 0, "hostile doorbell of SQ %d (absent): AER completed=%d type=%u info=%u log=0x%x", qid, got,
		      dw0 & 7, (dw0 >> 8) & 0xFF, (dw0 >> 16) & 0xFF);
	if (got) {
		/* Reading the error log re-arms error events. */
		st = admin_status(c, 0x02, (uint64_t)(uintptr_t)good, 0x01 | 15u << 16, 0);
		check(st == 0, "hostile: error information log read: status=0x%x", st);
	}
	nvme_doorbell_raw(c, 0x1000 + 2 * c->dstrd, c->io[1].entries + 5u);	/* SQ 1 tail past its size */
	good_read(c, "doorbells");
	/* Leave the controller as a fresh bring-up would (no AER outstanding). */
	int r = nvme_setup(c, c->irq, c->nio, 256, 0);
	check(r == 0, "hostile: bring-up after the hostile cases: result %d", r);
	good_read(c, "final");
}
