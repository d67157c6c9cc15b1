/*
 * AHCI driver (see ahci.h). Section numbers are Serial ATA AHCI 1.3.1's; FIS layouts are
 * SATA 3.x §10.5; command fields are ATA8-ACS's.
 */
#include "ahci.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../lib/string.h"
#include "../platform/lapic.h"
#include "../platform/pages.h"
#include "../platform/timer.h"

#define MAX_DEVICES 2
#define MS 1000000ULL
#define SECOND 1000000000ULL

/* Generic host control (§3.1) */
#define HBA_CAP 0x00
#define HBA_GHC 0x04
#define HBA_IS 0x08
#define HBA_PI 0x0C
#define HBA_VS 0x10
#define HBA_CAP2 0x24
#define GHC_HR (1u << 0)
#define GHC_IE (1u << 1)
#define GHC_AE (1u << 31)

/* Port registers (§3.3), at 0x100 + 0x80 * port */
#define PX_CLB 0x00
#define PX_CLBU 0x04
#define PX_FB 0x08
#define PX_FBU 0x0C
#define PX_IS 0x10
#define PX_IE 0x14
#define PX_CMD 0x18
#define PX_TFD 0x20
#define PX_SIG 0x24
#define PX_SSTS 0x28
#define PX_SCTL 0x2C
#define PX_SERR 0x30
#define PX_SACT 0x34
#define PX_CI 0x38
#define CMD_ST (1u << 0)
#define CMD_SUD (1u << 1)
#define CMD_POD (1u << 2)
#define CMD_FRE (1u << 4)
#define CMD_FR (1u << 14)
#define CMD_CR (1u << 15)
#define CMD_ATAPI (1u << 24)
#define IS_TFES (1u << 30)
#define IS_HBFS (1u << 29)
#define IS_HBDS (1u << 28)
#define IS_IFS (1u << 27)
#define IS_FATAL (IS_TFES | IS_HBFS | IS_HBDS | IS_IFS)
/* D2H, PIO setup, DMA setup, SDB, unknown FIS, descriptor processed, port change, and the error bits */
#define IE_MASK (0x7Fu | IS_FATAL | (1u << 26) | (1u << 24))

#define FIS_TYPE_H2D 0x27
#define FIS_H2D_C 0x80	/* the FIS carries a command (not a device control update) */

static struct ahci devices[MAX_DEVICES];
static int device_count;

const char *ahci_irq_name(enum ahci_irq irq) { return irq == AHCI_IRQ_MSI ? "msi" : "poll"; }

static uint32_t hrd(const struct ahci *h, uint32_t off) { return mmio_read32(h->abar + off); }
static void hwr(const struct ahci *h, uint32_t off, uint32_t v) { mmio_write32(h->abar + off, v); }
static uintptr_t port_base(const struct ahci *h, int port) { return h->abar + 0x100 + 0x80 * (uint32_t)port; }
static uint32_t prd(const struct ahci *h, int port, uint32_t off) { return mmio_read32(port_base(h, port) + off); }
static void pwr(const struct ahci *h, int port, uint32_t off, uint32_t v) { mmio_write32(port_base(h, port) + off, v); }

uint32_t ahci_irq_count(const struct ahci *h) { return h->vector ? interrupt_count[h->vector] : 0; }

static int popcount(uint32_t v) {
	int n = 0;
	for (; v; v &= v - 1) n++;
	return n;
}

/* Waits until (register & mask) == want, up to `limit` ns. Returns 0, or -1 on time-out. */
static int port_wait(const struct ahci *h, int port, uint32_t off, uint32_t mask, uint32_t want, uint64_t limit) {
	uint64_t t0 = timer_now_ns();
	while ((prd(h, port, off) & mask) != want) {
		if (timer_now_ns() - t0 > limit) return -1;
		timer_delay_us(10);
	}
	return 0;
}

/* ST off and CR clear, then FRE off and FR clear (§10.1.2: the port is idle). */
static int port_stop(const struct ahci *h, int port) {
	uint32_t cmd = prd(h, port, PX_CMD);
	if (cmd & CMD_ST) pwr(h, port, PX_CMD, cmd & ~CMD_ST);
	if (port_wait(h, port, PX_CMD, CMD_CR, 0, 500 * MS)) return -1;
	cmd = prd(h, port, PX_CMD);
	if (cmd & CMD_FRE) pwr(h, port, PX_CMD, cmd & ~CMD_FRE);
	return port_wait(h, port, PX_CMD, CMD_FR, 0, 500 * MS);
}

/*
 * COMRESET through PxSCTL.DET (§10.4.2): DET = 1 for at least 1 ms, DET = 0, then the link back
 * (DET = 3) and the device out of BSY. Only with ST clear.
 */
static int port_comreset(struct ahci *h, int port) {
	h->port[port].comresets++;
	uint32_t sctl = prd(h, port, PX_SCTL) & ~0xFu;
	pwr(h, port, PX_SCTL, sctl | 1);
	timer_delay_us(2000);
	pwr(h, port, PX_SCTL, sctl);
	if (port_wait(h, port, PX_SSTS, 0xF, 3, SECOND)) return -1;
	pwr(h, port, PX_SERR, 0xFFFFFFFFu);
	return port_wait(h, port, PX_TFD, ATA_STS_BSY | ATA_STS_DRQ, 0, 2 * SECOND);
}

int ahci_port_recover(struct ahci *h, int port) {
	struct ahci_port *p = &h->port[port];
	p->recoveries++;
	p->outstanding = p->ncq = 0;
	uint32_t cmd = prd(h, port, PX_CMD);
	pwr(h, port, PX_CMD, cmd & ~CMD_ST);
	if (port_wait(h, port, PX_CMD, CMD_CR, 0, 500 * MS)) return -1;
	pwr(h, port, PX_SERR, 0xFFFFFFFFu);
	pwr(h, port, PX_IS, 0xFFFFFFFFu);
	hwr(h, HBA_IS, 1u << port);
	if ((prd(h, port, PX_TFD) & (ATA_STS_BSY | ATA_STS_DRQ)) && port_comreset(h, port)) return -2;
	pwr(h, port, PX_CMD, prd(h, port, PX_CMD) | CMD_ST);
	return 0;
}

/* Command list and FIS area in one page (list at 0, 1 KiB aligned; FIS at 0x400, 256-byte aligned), once. */
static int port_memory(struct ahci_port *p) {
	if (!p->clb) {
		uint8_t *page = dma_alloc(PAGE_SIZE);
		if (!page) return -1;
		p->clb = (volatile struct ahci_cmd_header *)page;
		p->fis = page + 0x400;
	}
	return 0;
}

static volatile struct ahci_cmd_table *table(struct ahci_port *p, int slot) {
	if (!p->tables[slot]) p->tables[slot] = dma_alloc(sizeof(struct ahci_cmd_table));
	return p->tables[slot];
}

/*
 * Waits for every port whose FRE was just set: a link (DET = 3) and a device out of BSY/DRQ.
 * A port with no link at all (DET = 0) is given 20 ms, one that sees a device but no
 * communication yet (DET = 1) or a busy device up to 2 s.
 */
static void ports_settle(struct ahci *h) {
	uint64_t t0 = timer_now_ns();
	for (;;) {
		int waiting = 0;
		uint64_t elapsed = timer_now_ns() - t0;
		for (int i = 0; i < AHCI_MAX_PORTS; i++) {
			if (!(h->pi & (1u << i))) continue;
			uint32_t det = prd(h, i, PX_SSTS) & 0xF, tfd = prd(h, i, PX_TFD);
			int ready = det == 3 && !(tfd & (ATA_STS_BSY | ATA_STS_DRQ));
			if (!ready && (det == 0 ? elapsed < 20 * MS : elapsed < 2 * SECOND)) waiting++;
		}
		if (!waiting) return;
		timer_delay_us(500);
	}
}

int ahci_setup(struct ahci *h, enum ahci_irq want) {
	struct pci_function *f = h->pci;
	hwr(h, HBA_GHC, hrd(h, HBA_GHC) | GHC_AE);
	hwr(h, HBA_GHC, GHC_AE | GHC_HR);
	uint64_t t0 = timer_now_ns();
	while (hrd(h, HBA_GHC) & GHC_HR) {
		if (timer_now_ns() - t0 > SECOND) return -1;	/* §10.4.3: the HBA clears HR within 1 s */
		timer_delay_us(100);
	}
	hwr(h, HBA_GHC, GHC_AE);	/* the reset cleared AE (unless CAP.SAM keeps it set) */
	h->cap = hrd(h, HBA_CAP);
	h->cap2 = hrd(h, HBA_CAP2);
	h->pi = hrd(h, HBA_PI);
	h->vs = hrd(h, HBA_VS);
	h->ports_cap = (int)(h->cap & 0x1F) + 1;
	h->slots = (int)((h->cap >> 8) & 0x1F) + 1;
	/* One MSI message for the whole HBA, else polled with INTx off. */
	pci_msi_disable(f);
	pci_msix_disable(f);
	h->irq = AHCI_IRQ_POLL;
	if (want == AHCI_IRQ_MSI && pci_find_capability(f, PCI_CAP_MSI) && (h->vector || (h->vector = irq_vector_alloc())) &&
	    pci_msi_enable(f, h->vector, lapic_id()))
		h->irq = AHCI_IRQ_MSI;
	pci_cfg_write16(f, PCI_COMMAND, pci_cfg_read16(f, PCI_COMMAND) | PCI_COMMAND_INTX_DISABLE);
	for (int i = 0; i < AHCI_MAX_PORTS; i++) {
		struct ahci_port *p = &h->port[i];
		p->num = i;
		p->present = 0;
		p->outstanding = p->ncq = 0;
		if (!(h->pi & (1u << i))) continue;
		if (port_stop(h, i)) return -2;
		if (port_memory(p)) return -3;
		memset((void *)p->clb, 0, 0x400 + 0x100);
		pwr(h, i, PX_CLB, (uint32_t)(uintptr_t)p->clb);
		pwr(h, i, PX_CLBU, 0);
		pwr(h, i, PX_FB, (uint32_t)(uintptr_t)p->fis);
		pwr(h, i, PX_FBU, 0);
		pwr(h, i, PX_SERR, 0xFFFFFFFFu);
		pwr(h, i, PX_IS, 0xFFFFFFFFu);
		/* Spin-up and power-on are read-only ones unless CAP.SSS / CAP.SCPD make them switches. */
		pwr(h, i, PX_CMD, prd(h, i, PX_CMD) | CMD_SUD | CMD_POD | CMD_FRE);
	}
	ports_settle(h);
	for (int i = 0; i < AHCI_MAX_PORTS; i++) {
		if (!(h->pi & (1u << i))) continue;
		struct ahci_port *p = &h->port[i];
		p->ssts = prd(h, i, PX_SSTS);
		p->sig = prd(h, i, PX_SIG);
		uint32_t tfd = prd(h, i, PX_TFD);
		if ((p->ssts & 0xF) != 3 || (tfd & (ATA_STS_BSY | ATA_STS_DRQ))) continue;
		pwr(h, i, PX_SERR, 0xFFFFFFFFu);
		pwr(h, i, PX_IS, 0xFFFFFFFFu);
		pwr(h, i, PX_IE, h->irq == AHCI_IRQ_MSI ? IE_MASK : 0);
		uint32_t cmd = prd(h, i, PX_CMD);
		if (p->sig == AHCI_SIG_ATAPI) cmd |= CMD_ATAPI;	/* tells the HBA to treat the device as ATAPI (LED, §3.3.7) */
		pwr(h, i, PX_CMD, cmd | CMD_ST);
		p->present = 1;
	}
	hwr(h, HBA_IS, 0xFFFFFFFFu);
	if (h->irq == AHCI_IRQ_MSI) hwr(h, HBA_GHC, GHC_AE | GHC_IE);
	h->ghc = hrd(h, HBA_GHC);
	return 0;
}

int ahci_prepare(struct ahci *h, int port, int slot, const struct ahci_cmd *c) {
	struct ahci_port *p = &h->port[port];
	volatile struct ahci_cmd_table *t = table(p, slot);
	if (!t || (c->len & 1) || ((uintptr_t)c->buf & 1)) return -1;
	uint32_t prd_max = c->prd_max && c->prd_max <= AHCI_PRD_BYTES_MAX ? c->prd_max & ~1u : AHCI_PRD_BYTES_MAX;
	if (!prd_max) return -1;
	memset((void *)t, 0, 128);
	volatile uint8_t *fis = t->cfis;
	fis[0] = FIS_TYPE_H2D;
	fis[1] = FIS_H2D_C;
	fis[2] = c->command;
	fis[3] = (uint8_t)c->features;
	fis[4] = (uint8_t)c->lba;
	fis[5] = (uint8_t)(c->lba >> 8);
	fis[6] = (uint8_t)(c->lba >> 16);
	fis[7] = c->device;
	fis[8] = (uint8_t)(c->lba >> 24);
	fis[9] = (uint8_t)(c->lba >> 32);
	fis[10] = (uint8_t)(c->lba >> 40);
	fis[11] = (uint8_t)(c->features >> 8);
	fis[12] = (uint8_t)c->count;
	fis[13] = (uint8_t)(c->count >> 8);
	if (c->atapi)
		for (int i = 0; i < 12; i++) t->acmd[i] = c->cdb[i];
	uint32_t n = 0;
	uint64_t at = (uint64_t)(uintptr_t)c->buf;
	for (uint32_t left = c->len; left; n++) {
		if (n == AHCI_PRDT_MAX) return -1;
		uint32_t k = left < prd_max ? left : prd_max;
		t->prdt[n].dba = (uint32_t)at;
		t->prdt[n].dbau = (uint32_t)(at >> 32);
		t->prdt[n].reserved = 0;
		t->prdt[n].dbc = k - 1;
		at += k;
		left -= k;
	}
	volatile struct ahci_cmd_header *hd = &p->clb[slot];
	hd->prdbc = 0;
	hd->ctba = (uint32_t)(uintptr_t)t;
	hd->ctbau = 0;
	hd->flags = 5u | (c->atapi ? 1u << 5 : 0) | (c->write ? 1u << 6 : 0) | n << 16;
	return (int)n;
}

int ahci_prepare_ncq(struct ahci *h, int port, int slot, int write, uint64_t lba, uint32_t sectors, void *buf, uint32_t prd_max) {
	/* FPDMA QUEUED: the sector count lives in the features field, the tag in count bits 7:3. */
	struct ahci_cmd c = { .command = write ? ATA_CMD_WRITE_FPDMA : ATA_CMD_READ_FPDMA, .features = (uint16_t)sectors,
			      .lba = lba, .count = (uint16_t)(slot << 3), .device = 0x40, .write = (uint8_t)write, .buf = buf,
			      .len = sectors * 512, .prd_max = prd_max };
	return ahci_prepare(h, port, slot, &c);
}

static void note_sact(struct ahci_port *p, uint32_t sact) {
	uint32_t n = (uint32_t)popcount(sact & p->ncq);
	if (n > p->sact_peak) p->sact_peak = n;
}

void ahci_issue(struct ahci *h, int port, uint32_t slots, int ncq) {
	struct ahci_port *p = &h->port[port];
	__asm__ volatile("mfence" ::: "memory");
	p->outstanding |= slots;
	if (ncq) {
		p->ncq |= slots;
		pwr(h, port, PX_SACT, slots);
	}
	pwr(h, port, PX_CI, slots);
	if (ncq) note_sact(p, prd(h, port, PX_SACT));
}

/* Records the registers of a failure, recovers the port, and returns the failure's code. */
static int port_failed(struct ahci *h, int port, uint32_t is, int timed_out) {
	struct ahci_port *p = &h->port[port];
	p->err_is = is;
	p->err_tfd = prd(h, port, PX_TFD);
	p->err_serr = prd(h, port, PX_SERR);
	p->err_ci = prd(h, port, PX_CI);
	p->err_sact = prd(h, port, PX_SACT);
	p->err_cmd = prd(h, port, PX_CMD);	/* CCS (bits 12:8): the slot the HBA was working on */
	ahci_port_recover(h, port);
	return timed_out ? AHCI_TIMEOUT : AHCI_ERROR | (int)(p->err_tfd & 0xFFFF);
}

int ahci_wait(struct ahci *h, int port, uint32_t *done, uint64_t timeout_ns) {
	struct ahci_port *p = &h->port[port];
	*done = 0;
	uint64_t t0 = timer_now_ns();
	while (p->outstanding) {
		uint32_t seen = ahci_irq_count(h);
		/* Acknowledge first (PxIS, then IS.IPS, §10.7.2.1) so the next completion raises a new message. */
		uint32_t is = prd(h, port, PX_IS);
		if (is) {
			pwr(h, port, PX_IS, is);
			hwr(h, HBA_IS, 1u << port);
		}
		if (is & IS_FATAL) return port_failed(h, port, is, 0);
		uint32_t sact = p->ncq ? prd(h, port, PX_SACT) : 0;
		uint32_t busy = prd(h, port, PX_CI) | sact;
		note_sact(p, sact);
		uint32_t finished = p->outstanding & ~busy;
		if (finished) {
			/* An error posted with the completion (or a D2H FIS with ERR for a non-queued command) still fails it. */
			uint32_t late = prd(h, port, PX_IS);
			if (late) {
				pwr(h, port, PX_IS, late);
				hwr(h, HBA_IS, 1u << port);
			}
			if (late & IS_FATAL) return port_failed(h, port, is | late, 0);
			if ((finished & ~p->ncq) && (prd(h, port, PX_TFD) & (ATA_STS_ERR | ATA_STS_DF))) return port_failed(h, port, is | late, 0);
			p->outstanding &= ~finished;
			p->ncq &= ~finished;
			*done = finished;
			return 0;
		}
		if (timer_now_ns() - t0 > timeout_ns) return port_failed(h, port, is, 1);
		/* Sleep on the interrupt count (no exits) when there is one; a short cap covers a lost message. */
		if (h->irq == AHCI_IRQ_MSI) irq_wait(h->vector, seen, 2 * MS);
		else timer_delay_us(20);
	}
	return 0;
}

int ahci_poll(struct ahci *h, int port, uint32_t *done, int errors) {
	struct ahci_port *p = &h->port[port];
	*done = 0;
	if (!p->outstanding) return 0;
	uint32_t busy = prd(h, port, p->ncq ? PX_SACT : PX_CI);
	if (p->ncq) note_sact(p, busy);
	uint32_t finished = p->outstanding & ~busy;
	if (!finished) {
		uint32_t is = errors ? prd(h, port, PX_IS) : 0;
		return is & IS_FATAL ? port_failed(h, port, is, 0) : 0;
	}
	/* A queued command's PxCI bit may still be set after its PxSACT bit cleared: the slot is not free yet. */
	if (p->ncq) finished &= ~prd(h, port, PX_CI);
	uint32_t is = prd(h, port, PX_IS);
	if (is & IS_FATAL) return port_failed(h, port, is, 0);
	p->outstanding &= ~finished;
	p->ncq &= ~finished;
	*done = finished;
	return 0;
}

int ahci_give_up(struct ahci *h, int port) { return port_failed(h, port, prd(h, port, PX_IS), 1); }

int ahci_exec(struct ahci *h, int port, const struct ahci_cmd *c) {
	if (!h->port[port].present || h->port[port].outstanding) return AHCI_TIMEOUT;
	if (ahci_prepare(h, port, 0, c) < 0) return AHCI_ERROR | ATA_STS_ERR | ATA_ERR_ABRT << 8;
	ahci_issue(h, port, 1, 0);
	uint32_t done = 0;
	int r;
	while ((r = ahci_wait(h, port, &done, 10 * SECOND)) == 0 && !(done & 1)) {}
	return r;
}

uint32_t ahci_prdbc(const struct ahci *h, int port, int slot) { return h->port[port].clb[slot].prdbc; }

uint32_t ahci_port_read(const struct ahci *h, int port, uint32_t off) { return prd(h, port, off); }
void ahci_port_write(const struct ahci *h, int port, uint32_t off, uint32_t v) { pwr(h, port, off, v); }
uintptr_t ahci_port_regs(const struct ahci *h, int port) { return port_base(h, port); }

int ahci_port_move_clb(struct ahci *h, int port, uint64_t clb) {
	struct ahci_port *p = &h->port[port];
	if (!clb) clb = (uint64_t)(uintptr_t)p->clb;
	p->outstanding = p->ncq = 0;
	pwr(h, port, PX_CMD, prd(h, port, PX_CMD) & ~CMD_ST);
	if (port_wait(h, port, PX_CMD, CMD_CR, 0, 500 * MS)) return -1;
	pwr(h, port, PX_CLB, (uint32_t)clb);
	pwr(h, port, PX_CLBU, (uint32_t)(clb >> 32));
	pwr(h, port, PX_SERR, 0xFFFFFFFFu);
	pwr(h, port, PX_IS, 0xFFFFFFFFu);
	hwr(h, HBA_IS, 1u << port);
	pwr(h, port, PX_CMD, prd(h, port, PX_CMD) | CMD_ST);
	return (prd(h, port, PX_CMD) & CMD_ST) ? 1 : 0;
}

int ahci_rw(struct ahci *h, int port, int write, uint64_t lba, uint32_t sectors, void *buf, uint32_t prd_max) {
	struct ahci_cmd c = { .command = write ? ATA_CMD_WRITE_DMA_EXT : ATA_CMD_READ_DMA_EXT, .lba = lba,
			      .count = (uint16_t)sectors, .device = 0x40, .write = (uint8_t)write, .buf = buf, .len = sectors * 512,
			      .prd_max = prd_max };
	return ahci_exec(h, port, &c);
}

int ahci_identify(struct ahci *h, int port, int packet, uint16_t *buf) {
	struct ahci_cmd c = { .command = packet ? ATA_CMD_IDENTIFY_PACKET : ATA_CMD_IDENTIFY, .buf = buf, .len = 512 };
	memset(buf, 0, 512);
	return ahci_exec(h, port, &c);
}

int ahci_atapi(struct ahci *h, int port, const uint8_t cdb[12], void *buf, uint32_t len, int write, int dma) {
	/* PIO: the byte count limit (LBA mid/high) caps each DRQ block; the HBA gathers them into the PRDT. */
	uint32_t limit = len < 0xFFFE ? len : 0xFFFE;
	struct ahci_cmd c = { .command = ATA_CMD_PACKET, .features = dma ? 1 : 0, .lba = (uint64_t)(dma ? 0 : limit) << 8,
			      .write = (uint8_t)write, .atapi = 1, .buf = buf, .len = len };
	memcpy(c.cdb, cdb, 12);
	return ahci_exec(h, port, &c);
}

void ahci_ata_string(const uint16_t *id, int first, int words, char *out) {
	int n = 0;
	for (int w = first; w < first + words; w++) {
		out[n++] = (char)(id[w] >> 8);
		out[n++] = (char)id[w];
	}
	out[n] = 0;
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == 0)) out[--n] = 0;
	int lead = 0;
	while (out[lead] == ' ') lead++;
	if (lead) memmove(out, out + lead, (size_t)(n - lead + 1));
}

/* Any AHCI HBA: class 01 (storage), subclass 06 (SATA), programming interface 01 (AHCI 1.0). */
static int match(const struct pci_function *f) { return f->class_code == 0x01 && f->subclass == 0x06 && f->prog_if == 0x01; }

static int probe(struct pci_function *f) {
	if (device_count == MAX_DEVICES || !f->bar[5].size || f->bar[5].is_io) return -1;
	struct ahci *h = &devices[device_count++];
	memset(h, 0, sizeof *h);
	h->pci = f;
	pci_enable(f);
	h->abar = (uintptr_t)f->bar[5].addr;
	f->driver_state = h;
	h->setup_error = ahci_setup(h, AHCI_IRQ_MSI);
	return 0;
}

const struct pci_driver ahci_driver = { "ahci", match, probe };
