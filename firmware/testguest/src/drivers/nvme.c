/*
 * NVMe driver (see nvme.h). Registers are reached with 32-bit accesses only (a 64-bit register
 * as two, low half first), as §3.1 allows and every VMM's MMIO path handles.
 */
#include "nvme.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../lib/string.h"
#include "../platform/lapic.h"
#include "../platform/timer.h"

#define MAX_DEVICES 2
#define MAX_ENTRIES 1024u
#define ADMIN_ENTRIES 32u
#define SECOND 1000000000ULL

#define REG_CAP 0x00
#define REG_VS 0x08
#define REG_CC 0x14
#define REG_CSTS 0x1C
#define REG_AQA 0x24
#define REG_ASQ 0x28
#define REG_ACQ 0x30
#define CC_ENABLE (1u | 6u << 16 | 4u << 20)	/* EN, IOSQES 64 bytes, IOCQES 16 bytes, 4 KiB pages, NVM */

static struct nvme devices[MAX_DEVICES];
static int device_count;

const char *nvme_irq_name(enum nvme_irq irq) {
	return irq == NVME_IRQ_MSIX ? "msix" : irq == NVME_IRQ_MSI ? "msi" : "poll";
}

static uint32_t rd(const struct nvme *c, uint32_t off) { return mmio_read32(c->regs + off); }
static void wr(const struct nvme *c, uint32_t off, uint32_t v) { mmio_write32(c->regs + off, v); }
static void wr64(const struct nvme *c, uint32_t off, uint64_t v) {
	wr(c, off, (uint32_t)v);
	wr(c, off + 4, (uint32_t)(v >> 32));
}

static uint32_t sq_doorbell(const struct nvme *c, int qid) { return 0x1000 + (uint32_t)(2 * qid) * c->dstrd; }
static uint32_t cq_doorbell(const struct nvme *c, int qid) { return 0x1000 + (uint32_t)(2 * qid + 1) * c->dstrd; }

void nvme_doorbell_raw(struct nvme *c, uint32_t offset, uint32_t value) { wr(c, offset, value); }

static struct nvme_queue *queue(struct nvme *c, int qid) { return qid == 0 ? &c->admin : &c->io[qid]; }

/* Linux's rule for shadow doorbells: ring when the event index lies in (old, new]. */
static int need_event(uint16_t event_idx, uint16_t next, uint16_t old) {
	return (uint16_t)(next - event_idx - 1) < (uint16_t)(next - old);
}

static int wait_ready(struct nvme *c, int want) {
	uint64_t limit = ((c->cap >> 24) & 0xFF) * 500000000ULL + SECOND, t0 = timer_now_ns();
	for (;;) {
		uint32_t csts = rd(c, REG_CSTS);
		if (csts & 2) return -1;	/* controller fatal status */
		if ((int)(csts & 1) == want) return 0;
		if (timer_now_ns() - t0 > limit) return -1;
		cpu_relax();
	}
}

int nvme_disable(struct nvme *c) {
	wr(c, REG_CC, 0);
	c->nio = 0;
	c->dbbuf = 0;
	return wait_ready(c, 0);
}

/* Allocates (once) the rings of queue `qid` for up to MAX_ENTRIES entries and its slots' PRP list pages. */
static int queue_memory(struct nvme_queue *q, int qid) {
	if (!q->sq) {
		q->sq = dma_alloc(MAX_ENTRIES * sizeof(struct nvme_cmd));
		q->cq = dma_alloc(MAX_ENTRIES * sizeof(struct nvme_cqe));
		if (!q->sq || !q->cq) return -1;
		if (qid)
			for (int s = 0; s < NVME_SLOTS; s++)
				if (!(q->prp_pages[s] = dma_alloc(2 * 4096))) return -1;
	}
	return 0;
}

static void queue_reset(struct nvme_queue *q, int qid, uint32_t entries, uint8_t vector) {
	q->qid = (uint16_t)qid;
	q->entries = (uint16_t)entries;
	q->sq_tail = q->cq_head = q->last_sq_doorbell = q->last_cq_doorbell = q->last_cq_rung = 0;
	q->phase = 1;
	q->vector = vector;
	q->doorbells = 0;
	q->pending = 0;
	memset((void *)q->cq, 0, entries * sizeof(struct nvme_cqe));
}

int nvme_queue_raw(struct nvme *c, int qid, int slot, const struct nvme_cmd *cmd) {
	struct nvme_queue *q = queue(c, qid);
	struct nvme_cmd e = *cmd;
	e.cdw0 = (e.cdw0 & 0xFFFF) | (uint32_t)slot << 16;
	q->sq[q->sq_tail] = e;
	q->sq_tail = (uint16_t)((q->sq_tail + 1) % q->entries);
	q->pending++;
	return slot;
}

void nvme_ring(struct nvme *c, int qid) {
	struct nvme_queue *q = queue(c, qid);
	__asm__ volatile("mfence" ::: "memory");
	if (c->dbbuf && qid) {
		uint16_t old = q->last_sq_doorbell;
		c->shadow[2 * qid] = q->sq_tail;
		__asm__ volatile("mfence" ::: "memory");
		q->last_sq_doorbell = q->sq_tail;
		if (!need_event((uint16_t)c->eventidx[2 * qid], q->sq_tail, old)) return;
	}
	wr(c, sq_doorbell(c, qid), q->sq_tail);
	q->doorbells++;
}

static void ring_cq(struct nvme *c, struct nvme_queue *q) {
	int qid = q->qid;
	if (c->dbbuf && qid) {
		uint16_t old = q->last_cq_doorbell;
		c->shadow[2 * qid + 1] = q->cq_head;
		__asm__ volatile("mfence" ::: "memory");
		q->last_cq_doorbell = q->cq_head;
		if (!need_event((uint16_t)c->eventidx[2 * qid + 1], q->cq_head, old)) return;
	}
	wr(c, cq_doorbell(c, qid), q->cq_head);
	q->doorbells++;
}

int nvme_reap(struct nvme *c, int qid, int *status) {
	struct nvme_queue *q = queue(c, qid);
	volatile struct nvme_cqe *e = &q->cq[q->cq_head];
	if ((e->status & 1) != q->phase) return -1;
	__asm__ volatile("lfence" ::: "memory");
	int cid = e->cid;
	if (status) *status = nvme_status(e);
	q->cq_head = (uint16_t)((q->cq_head + 1) % q->entries);
	if (q->cq_head == 0) q->phase ^= 1;
	if (q->pending) q->pending--;
	return cid;
}

void nvme_cq_ring(struct nvme *c, int qid) {
	struct nvme_queue *q = queue(c, qid);
	if (q->cq_head != q->last_cq_rung) {
		q->last_cq_rung = q->cq_head;
		ring_cq(c, q);
	}
}

int nvme_admin(struct nvme *c, struct nvme_cmd *cmd, uint32_t *dw0) {
	struct nvme_queue *q = &c->admin;
	volatile struct nvme_cqe *e = &q->cq[q->cq_head];
	nvme_queue_raw(c, 0, 0, cmd);
	nvme_ring(c, 0);
	uint64_t t0 = timer_now_ns();
	while ((e->status & 1) != q->phase) {
		if (timer_now_ns() - t0 > 5 * SECOND) return NVME_TIMEOUT;
		cpu_relax();
	}
	uint32_t v = e->dw0;
	int st = 0;
	nvme_reap(c, 0, &st);
	nvme_cq_ring(c, 0);
	if (dw0) *dw0 = v;
	return st;
}

/* PRP1/PRP2 for `len` bytes at `buf`, with a list in `list` (two pages) when needed. */
static void build_prps(struct nvme_cmd *cmd, uint64_t buf, uint32_t len, uint64_t *list) {
	cmd->prp1 = buf;
	cmd->prp2 = 0;
	uint64_t first = 4096 - (buf & 4095);
	if (len <= first) return;
	uint64_t next = (buf + first);	/* page aligned */
	uint64_t pages = (len - first + 4095) / 4096;
	if (pages == 1) {
		cmd->prp2 = next;
		return;
	}
	cmd->prp2 = (uint64_t)(uintptr_t)list;
	uint64_t *l = list;
	for (uint64_t i = 0; i < pages; i++) {
		if (l == list && i == 511 && pages > 512) {
			l[511] = (uint64_t)(uintptr_t)(list + 512);	/* chain to the second list page */
			l = list + 512 - i;	/* so that l[i] indexes the second page from entry 0 */
		}
		l[i] = next + i * 4096;
	}
}

int nvme_queue_cmd(struct nvme *c, int qid, int slot, struct nvme_cmd *cmd, void *buf, uint32_t len) {
	struct nvme_queue *q = queue(c, qid);
	if (buf && len) build_prps(cmd, (uint64_t)(uintptr_t)buf, len, q->prp_pages[slot]);
	return nvme_queue_raw(c, qid, slot, cmd) < 0 ? -1 : 0;
}

int nvme_io(struct nvme *c, int qid, uint8_t opcode, uint64_t slba, uint32_t nlb, void *buf, uint32_t len) {
	struct nvme_cmd cmd = { .cdw0 = opcode, .nsid = 1, .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
				.cdw12 = nlb ? nlb - 1 : 0 };
	nvme_queue_cmd(c, qid, 0, &cmd, buf, len);
	nvme_ring(c, qid);
	uint64_t t0 = timer_now_ns();
	int st = 0;
	while (nvme_reap(c, qid, &st) < 0) {
		if (timer_now_ns() - t0 > 10 * SECOND) return NVME_TIMEOUT;
		cpu_relax();
	}
	nvme_cq_ring(c, qid);
	return st;
}

uint32_t nvme_irq_count(const struct nvme *c, int qid) {
	const struct nvme_queue *q = qid == 0 ? &c->admin : &c->io[qid];
	return q->vector ? interrupt_count[q->vector] : 0;
}

static void copy_ascii(char *out, const uint8_t *in, int n) {
	memcpy(out, in, (size_t)n);
	out[n] = 0;
	for (int i = n - 1; i >= 0 && out[i] == ' '; i--) out[i] = 0;
}

static int identify(struct nvme *c) {
	struct nvme_cmd cmd = { .cdw0 = 0x06, .prp1 = (uint64_t)(uintptr_t)c->id_ctrl, .cdw10 = 1 };
	if (nvme_admin(c, &cmd, 0) != 0) return -1;
	const uint8_t *d = c->id_ctrl;
	copy_ascii(c->serial, d + 4, 20);
	copy_ascii(c->model, d + 24, 40);
	c->mdts = d[77];
	c->oacs = (uint16_t)(d[256] | d[257] << 8);
	c->nn = (uint32_t)d[516] | (uint32_t)d[517] << 8 | (uint32_t)d[518] << 16 | (uint32_t)d[519] << 24;
	c->oncs = (uint16_t)(d[520] | d[521] << 8);
	c->vwc = d[525];
	struct nvme_cmd ns = { .cdw0 = 0x06, .nsid = 1, .prp1 = (uint64_t)(uintptr_t)c->id_ns, .cdw10 = 0 };
	if (nvme_admin(c, &ns, 0) != 0) return -1;
	const uint8_t *n = c->id_ns;
	c->nsze = 0;
	for (int i = 7; i >= 0; i--) c->nsze = c->nsze << 8 | n[i];
	uint8_t flbas = n[26] & 0xF;
	c->lba_bytes = 1u << n[128 + 4 * flbas + 2];
	c->eui64 = 0;
	for (int i = 0; i < 8; i++) c->eui64 = c->eui64 << 8 | n[120 + i];
	return 0;
}

int nvme_setup(struct nvme *c, enum nvme_irq irq, int nio, uint32_t entries, int dbbuf) {
	struct pci_function *f = c->pci;
	if (nvme_disable(c)) return -1;
	pci_msix_disable(f);
	pci_msi_disable(f);
	if (irq == NVME_IRQ_MSIX && pci_msix_table_size(f) < 2) irq = NVME_IRQ_MSI;
	if (irq == NVME_IRQ_MSI && !pci_find_capability(f, PCI_CAP_MSI)) irq = NVME_IRQ_POLL;
	c->irq = irq;
	/* INTx stays off: completions are polled, and MSI/MSI-X are counted. */
	pci_cfg_write16(f, PCI_COMMAND, pci_cfg_read16(f, PCI_COMMAND) | PCI_COMMAND_INTX_DISABLE);
	if (entries > c->mqes) entries = c->mqes;
	if (entries > MAX_ENTRIES) entries = MAX_ENTRIES;
	if (nio > NVME_MAX_IOQ) nio = NVME_MAX_IOQ;
	if (irq == NVME_IRQ_MSIX && nio > pci_msix_table_size(f) - 1) nio = pci_msix_table_size(f) - 1;
	for (int q = 0; q <= nio; q++) {
		int entry = irq == NVME_IRQ_MSIX ? q : 0;
		if (irq != NVME_IRQ_POLL && !c->vectors[entry] && !(c->vectors[entry] = irq_vector_alloc())) return -2;
	}
	if (irq == NVME_IRQ_MSIX)
		for (int q = 0; q <= nio; q++)
			if (!pci_msix_enable(f, (uint16_t)q, c->vectors[q], lapic_id())) return -3;
	if (irq == NVME_IRQ_MSI && !pci_msi_enable(f, c->vectors[0], lapic_id())) return -3;
	/* Admin queue */
	if (queue_memory(&c->admin, 0)) return -4;
	queue_reset(&c->admin, 0, ADMIN_ENTRIES, irq == NVME_IRQ_POLL ? 0 : c->vectors[0]);
	wr(c, REG_AQA, (ADMIN_ENTRIES - 1) << 16 | (ADMIN_ENTRIES - 1));
	wr64(c, REG_ASQ, (uint64_t)(uintptr_t)c->admin.sq);
	wr64(c, REG_ACQ, (uint64_t)(uintptr_t)c->admin.cq);
	wr(c, REG_CC, CC_ENABLE);
	if (wait_ready(c, 1)) return -5;
	if (identify(c)) return -6;
	uint32_t dw0 = 0;
	struct nvme_cmd nq = { .cdw0 = 0x09, .cdw10 = 0x07, .cdw11 = (uint32_t)(nio - 1) << 16 | (uint32_t)(nio - 1) };
	if (nio > 0) {
		if (nvme_admin(c, &nq, &dw0) != 0) return -7;
		c->queues_granted = 1 + ((dw0 & 0xFFFF) < (dw0 >> 16) ? (dw0 & 0xFFFF) : (dw0 >> 16));
		if ((uint32_t)nio > c->queues_granted) nio = (int)c->queues_granted;
	}
	if (dbbuf && (c->oacs & (1u << 8))) {
		if (!c->shadow) {
			c->shadow = dma_alloc(4096);
			c->eventidx = dma_alloc(4096);
		}
		memset((void *)c->shadow, 0, 4096);
		memset((void *)c->eventidx, 0, 4096);
		struct nvme_cmd db = { .cdw0 = 0x7C, .prp1 = (uint64_t)(uintptr_t)c->shadow, .prp2 = (uint64_t)(uintptr_t)c->eventidx };
		if (nvme_admin(c, &db, 0) != 0) return -8;
		c->dbbuf = 1;
	}
	for (int q = 1; q <= nio; q++) {
		struct nvme_queue *io = &c->io[q];
		if (queue_memory(io, q)) return -9;
		uint8_t vec = irq == NVME_IRQ_POLL ? 0 : c->vectors[irq == NVME_IRQ_MSIX ? q : 0];
		queue_reset(io, q, entries, vec);
		uint32_t iv = irq == NVME_IRQ_MSIX ? (uint32_t)q : 0;
		struct nvme_cmd cq = { .cdw0 = 0x05, .prp1 = (uint64_t)(uintptr_t)io->cq, .cdw10 = (entries - 1) << 16 | (uint32_t)q,
				       .cdw11 = iv << 16 | (irq == NVME_IRQ_POLL ? 0 : 2) | 1 };
		if (nvme_admin(c, &cq, 0) != 0) return -10;
		struct nvme_cmd sq = { .cdw0 = 0x01, .prp1 = (uint64_t)(uintptr_t)io->sq, .cdw10 = (entries - 1) << 16 | (uint32_t)q,
				       .cdw11 = (uint32_t)q << 16 | 1 };
		if (nvme_admin(c, &sq, 0) != 0) return -11;
		c->nio = q;
	}
	return 0;
}

/* Any NVM Express controller: class 01 (storage), subclass 08 (NVM), programming interface 02. */
static int match(const struct pci_function *f) { return f->class_code == 0x01 && f->subclass == 0x08 && f->prog_if == 0x02; }

static int probe(struct pci_function *f) {
	if (device_count == MAX_DEVICES || !f->bar[0].size || f->bar[0].is_io) return -1;
	struct nvme *c = &devices[device_count];
	memset(c, 0, sizeof *c);
	c->pci = f;
	pci_enable(f);
	c->regs = (uintptr_t)f->bar[0].addr;
	c->cap = (uint64_t)rd(c, REG_CAP) | (uint64_t)rd(c, REG_CAP + 4) << 32;
	c->vs = rd(c, REG_VS);
	c->mqes = (uint32_t)(c->cap & 0xFFFF) + 1;
	c->dstrd = 4u << ((c->cap >> 32) & 0xF);
	c->id_ctrl = dma_alloc(4096);
	c->id_ns = dma_alloc(4096);
	c->scratch = dma_alloc(4096);
	if (!c->id_ctrl || !c->id_ns || !c->scratch) return -1;
	device_count++;
	f->driver_state = c;
	c->setup_error = nvme_setup(c, NVME_IRQ_MSIX, 4, 256, 0);
	return 0;
}

const struct pci_driver nvme_driver = { "nvme", match, probe };
