/*
 * xHCI driver (see xhci.h). Registers are reached with 32-bit accesses (64-bit ones as two,
 * low half first, as §5.1 allows). Rings are single segments closed by a Link TRB with Toggle
 * Cycle; the event ring is one segment of 64 TRBs whose dequeue pointer is written back (with
 * EHB) after every event taken.
 */
#include "xhci.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../lib/string.h"
#include "../platform/lapic.h"
#include "../platform/timer.h"

#define MS 1000000ULL
#define RING_TRBS 64u
#define EVENT_TRBS 64u

#define USBCMD 0x00
#define USBSTS 0x04
#define CRCR 0x18
#define DCBAAP 0x30
#define CONFIG 0x38
#define PORTSC(p) (0x400 + 0x10 * ((p) - 1))
#define CMD_RS 1u
#define CMD_HCRST 2u
#define CMD_INTE 4u
#define STS_HCH 1u
#define STS_CNR (1u << 11)
#define PS_CCS 1u
#define PS_PED 2u
#define PS_PR (1u << 4)
#define PS_PP (1u << 9)
#define PS_PRC (1u << 21)
#define PS_CHANGES (0x7Fu << 17)
#define IR0 0x20
#define TRB_LINK 6u
#define TRB_CYCLE 1u

static struct xhci devices[1];
static int device_count;

static uint32_t rd(uintptr_t a) { return mmio_read32(a); }
static void wr(uintptr_t a, uint32_t v) { mmio_write32(a, v); }
static void wr64(uintptr_t a, uint64_t v) {
	wr(a, (uint32_t)v);
	wr(a + 4, (uint32_t)(v >> 32));
}

uint32_t xhci_op_read(const struct xhci *x, uint32_t off) { return rd(x->op + off); }
uint32_t xhci_portsc(const struct xhci *x, uint32_t port) { return rd(x->op + PORTSC(port)); }

static int ring_init(struct xhci_ring *r) {
	if (!r->trbs && !(r->trbs = dma_alloc(RING_TRBS * sizeof(struct xhci_trb)))) return -1;
	memset(r->trbs, 0, RING_TRBS * sizeof(struct xhci_trb));
	r->size = RING_TRBS;
	r->enq = 0;
	r->cycle = 1;
	return 0;
}

/* Writes a TRB with the producer cycle bit (last, after the other fields); returns its address. */
static uint64_t ring_push(struct xhci_ring *r, uint64_t param, uint32_t status, uint32_t control) {
	struct xhci_trb *t = &r->trbs[r->enq];
	t->param = param;
	t->status = status;
	__asm__ volatile("" ::: "memory");
	t->control = (control & ~TRB_CYCLE) | r->cycle;
	uint64_t at = (uint64_t)(uintptr_t)t;
	if (++r->enq == r->size - 1) {
		struct xhci_trb *l = &r->trbs[r->enq];
		l->param = (uint64_t)(uintptr_t)r->trbs;
		l->status = 0;
		__asm__ volatile("" ::: "memory");
		l->control = TRB_LINK << 10 | 2u /* toggle cycle */ | r->cycle;
		r->enq = 0;
		r->cycle ^= 1;
	}
	return at;
}

static void doorbell(struct xhci *x, uint32_t n, uint32_t target) { wr(x->db + 4 * n, target); }

int xhci_next_event(struct xhci *x, struct xhci_event *ev, uint64_t timeout_ns) {
	uint64_t t0 = timer_now_ns();
	for (;;) {
		volatile struct xhci_trb *t = &x->events[x->ev_deq];
		uint32_t ctl = t->control;
		if ((ctl & 1) == x->ev_cycle) {
			ev->type = (ctl >> 10) & 0x3F;
			ev->slot = ctl >> 24;
			ev->ep = (ctl >> 16) & 0x1F;
			ev->code = t->status >> 24;
			ev->len = t->status & 0xFFFFFF;
			ev->ptr = t->param;
			if (++x->ev_deq == x->ev_size) {
				x->ev_deq = 0;
				x->ev_cycle ^= 1;
			}
			/*
			 * Move ERDP and clear EHB (§4.17.2). IMAN.IP is left alone: with MSI the controller clears it
			 * when it sends the message, and clearing it from a polling loop can cancel a moderated interrupt.
			 */
			wr64(x->rt + IR0 + 0x18, (uint64_t)(uintptr_t)&x->events[x->ev_deq] | 8u);
			if (ev->type == 34) x->port_events++;
			return 1;
		}
		if (timer_now_ns() - t0 > timeout_ns) return 0;
		cpu_relax();
	}
}

int xhci_command(struct xhci *x, uint64_t param, uint32_t status, uint32_t control, struct xhci_event *ev) {
	uint64_t at = ring_push(&x->cmd, param, status, control);
	doorbell(x, 0, 0);
	struct xhci_event e;
	/* Events of other kinds (port changes, transfers) may come first. */
	for (int i = 0; i < 64; i++) {
		if (!xhci_next_event(x, &e, 500 * MS)) return -1;
		if (e.type == 33 && e.ptr == at) {
			if (ev) *ev = e;
			return (int)e.code;
		}
	}
	return -1;
}

int xhci_start(struct xhci *x) {
	wr(x->op + USBCMD, 0);
	uint64_t t0 = timer_now_ns();
	while (!(rd(x->op + USBSTS) & STS_HCH))
		if (timer_now_ns() - t0 > 100 * MS) return -1;
	wr(x->op + USBCMD, CMD_HCRST);
	t0 = timer_now_ns();
	while ((rd(x->op + USBCMD) & CMD_HCRST) || (rd(x->op + USBSTS) & STS_CNR))
		if (timer_now_ns() - t0 > 500 * MS) return -2;
	wr(x->op + CONFIG, x->max_slots);
	if (!x->dcbaa && !(x->dcbaa = dma_alloc(4096))) return -3;
	memset(x->dcbaa, 0, 4096);
	/* Scratchpad buffers (HCSPARAMS2 Max Scratchpad Bufs, §4.20), when the controller wants them. */
	uint32_t scratch = ((x->hcs2 >> 27) & 0x1F) | ((x->hcs2 >> 21) & 0x1F) << 5;
	if (scratch) {
		uint64_t *array = dma_alloc(4096);
		if (!array || scratch > 512) return -4;
		for (uint32_t i = 0; i < scratch; i++) {
			void *page = dma_alloc(4096);
			if (!page) return -4;
			array[i] = (uint64_t)(uintptr_t)page;
		}
		x->dcbaa[0] = (uint64_t)(uintptr_t)array;
	}
	wr64(x->op + DCBAAP, (uint64_t)(uintptr_t)x->dcbaa);
	if (ring_init(&x->cmd) != 0) return -5;
	wr64(x->op + CRCR, (uint64_t)(uintptr_t)x->cmd.trbs | 1);
	if (!x->events && !(x->events = dma_alloc(EVENT_TRBS * sizeof(struct xhci_trb)))) return -6;
	if (!x->erst && !(x->erst = dma_alloc(4096))) return -6;
	memset(x->events, 0, EVENT_TRBS * sizeof(struct xhci_trb));
	x->ev_size = EVENT_TRBS;
	x->ev_deq = 0;
	x->ev_cycle = 1;
	x->erst[0] = (uint64_t)(uintptr_t)x->events;
	x->erst[1] = EVENT_TRBS;
	wr(x->rt + IR0 + 0x08, 1);
	wr64(x->rt + IR0 + 0x18, (uint64_t)(uintptr_t)x->events);
	wr64(x->rt + IR0 + 0x10, (uint64_t)(uintptr_t)x->erst);
	if (!x->vector) x->vector = irq_vector_alloc();
	/* MSI where the controller has it (bhyve's), else MSI-X entry 0 (QEMU's qemu-xhci has only MSI-X). */
	x->msix = 0;
	if (x->vector && pci_find_capability(x->pci, PCI_CAP_MSI)) pci_msi_enable(x->pci, x->vector, lapic_id());
	else if (x->vector && pci_msix_enable(x->pci, 0, x->vector, lapic_id())) x->msix = 1;
	wr(x->rt + IR0, 2);	/* IMAN.IE */
	wr(x->op + USBCMD, CMD_RS | CMD_INTE);
	t0 = timer_now_ns();
	while (rd(x->op + USBSTS) & STS_HCH)
		if (timer_now_ns() - t0 > 100 * MS) return -7;
	x->port_events = 0;
	x->slot = x->port = 0;
	return 0;
}

uint32_t xhci_find_device(struct xhci *x) {
	for (uint32_t p = 1; p <= x->max_ports; p++) {
		uint32_t sc = xhci_portsc(x, p);
		if (!(sc & PS_CCS)) continue;
		int usb2 = p >= x->usb2_first && p < x->usb2_first + x->usb2_count;
		if (usb2) {
			/* A USB 2 port is enabled by a port reset (§4.19.1.1). */
			wr(x->op + PORTSC(p), PS_PP | PS_PR);
			uint64_t t0 = timer_now_ns();
			while (!(xhci_portsc(x, p) & PS_PRC))
				if (timer_now_ns() - t0 > 200 * MS) return 0;
		}
		sc = xhci_portsc(x, p);
		if (!(sc & PS_PED)) continue;
		wr(x->op + PORTSC(p), PS_PP | (sc & PS_CHANGES));
		x->port = p;
		x->speed = (sc >> 10) & 0xF;
		return p;
	}
	return 0;
}

static uint8_t *in_slot(struct xhci *x) { return x->in_ctx + x->ctx; }
static uint8_t *in_ep(struct xhci *x, uint32_t dci) { return x->in_ctx + (dci + 1) * x->ctx; }
static void set32(uint8_t *p, uint32_t i, uint32_t v) { ((volatile uint32_t *)p)[i] = v; }

uint32_t xhci_output(const struct xhci *x, uint32_t c, uint32_t i) {
	return ((volatile uint32_t *)(x->out_ctx + c * x->ctx))[i];
}

int xhci_address(struct xhci *x) {
	struct xhci_event ev;
	int cc = xhci_command(x, 0, 0, 9u << 10, &ev);
	if (cc != 1) return cc;
	x->slot = ev.slot;
	if (!x->in_ctx && !(x->in_ctx = dma_alloc(4096))) return -1;
	if (!x->out_ctx && !(x->out_ctx = dma_alloc(4096))) return -1;
	memset(x->in_ctx, 0, 4096);
	memset(x->out_ctx, 0, 4096);
	x->dcbaa[x->slot] = (uint64_t)(uintptr_t)x->out_ctx;
	if (ring_init(&x->ep0) != 0) return -1;
	/* EP0 max packet by speed until the device descriptor says (USB 2.0 §5.5.3, USB 3 §9.6.1). */
	uint32_t mps = x->speed == 4 ? 512 : x->speed == 3 ? 64 : 8;
	set32(x->in_ctx, 1, 3);	/* add the slot and EP0 */
	set32(in_slot(x), 0, 1u << 27 | x->speed << 20);
	set32(in_slot(x), 1, x->port << 16);
	set32(in_ep(x, 1), 1, 3u << 1 | 4u << 3 | mps << 16);	/* CErr 3, control */
	set32(in_ep(x, 1), 2, (uint32_t)(uintptr_t)x->ep0.trbs | 1);
	set32(in_ep(x, 1), 3, (uint32_t)((uint64_t)(uintptr_t)x->ep0.trbs >> 32));
	set32(in_ep(x, 1), 4, 8);
	return xhci_command(x, (uint64_t)(uintptr_t)x->in_ctx, 0, 11u << 10 | x->slot << 24, 0);
}

int xhci_control(struct xhci *x, uint8_t type, uint8_t request, uint16_t value, uint16_t index, void *buf,
		 uint16_t len, uint32_t *actual) {
	int in = (type & 0x80) != 0;
	uint64_t setup = (uint64_t)type | (uint64_t)request << 8 | (uint64_t)value << 16 | (uint64_t)index << 32 |
			 (uint64_t)len << 48;
	uint32_t trt = len == 0 ? 0 : in ? 3 : 2;
	ring_push(&x->ep0, setup, 8, 2u << 10 | 1u << 6 | trt << 16);
	uint64_t data = 0;
	if (len) data = ring_push(&x->ep0, (uint64_t)(uintptr_t)buf, len, 3u << 10 | (in ? 1u << 16 | 1u << 2 : 0));
	uint64_t status = ring_push(&x->ep0, 0, 0, 4u << 10 | 1u << 5 | (in && len ? 0 : 1u << 16));
	doorbell(x, x->slot, 1);
	*actual = len;
	struct xhci_event e;
	for (int i = 0; i < 16; i++) {
		if (!xhci_next_event(x, &e, 500 * MS)) return -1;
		if (e.type != 32) continue;
		if (e.ptr == data && e.code == 13) *actual = len - e.len;
		if (e.ptr == status || (e.code != 1 && e.code != 13)) return (int)e.code;
	}
	return -1;
}

int xhci_configure_interrupt_in(struct xhci *x, uint32_t ep, uint32_t mps, uint32_t interval) {
	x->intr_dci = ep * 2 + 1;
	if (ring_init(&x->intr) != 0) return -1;
	memset(x->in_ctx, 0, 4096);
	/* xHCI intervals are 2^n x 125 us: HS/SS bInterval is already that exponent + 1; FS/LS is in ms. */
	uint32_t n = 3;
	if (x->speed >= 3) n = interval ? interval - 1 : 0;
	else
		for (n = 3; n < 10 && (1u << (n - 3)) < interval; n++) {}
	set32(x->in_ctx, 1, 1u | 1u << x->intr_dci);
	set32(in_slot(x), 0, x->intr_dci << 27 | x->speed << 20);
	set32(in_slot(x), 1, x->port << 16);
	uint8_t *c = in_ep(x, x->intr_dci);
	set32(c, 0, n << 16);
	set32(c, 1, 3u << 1 | 7u << 3 | mps << 16);	/* interrupt IN */
	set32(c, 2, (uint32_t)(uintptr_t)x->intr.trbs | 1);
	set32(c, 3, (uint32_t)((uint64_t)(uintptr_t)x->intr.trbs >> 32));
	set32(c, 4, mps | mps << 16);
	return xhci_command(x, (uint64_t)(uintptr_t)x->in_ctx, 0, 12u << 10 | x->slot << 24, 0);
}

void xhci_queue_in(struct xhci *x, void *buf, uint32_t len) {
	ring_push(&x->intr, (uint64_t)(uintptr_t)buf, len, 1u << 10 | 1u << 2 | 1u << 5);	/* Normal, ISP, IOC */
	doorbell(x, x->slot, x->intr_dci);
}

/* Any xHCI controller: class 0C (serial bus), subclass 03 (USB), programming interface 30. */
static int match(const struct pci_function *f) { return f->class_code == 0x0C && f->subclass == 0x03 && f->prog_if == 0x30; }

static int probe(struct pci_function *f) {
	if (device_count == (int)(sizeof devices / sizeof devices[0]) || !f->bar[0].size || f->bar[0].is_io) return -1;
	struct xhci *x = &devices[device_count];
	memset(x, 0, sizeof *x);
	x->pci = f;
	pci_enable(f);
	x->base = (uintptr_t)f->bar[0].addr;
	uint32_t cap0 = rd(x->base);
	x->version = (uint16_t)(cap0 >> 16);
	x->op = x->base + (cap0 & 0xFF);
	x->hcs1 = rd(x->base + 4);
	x->hcs2 = rd(x->base + 8);
	x->hcc1 = rd(x->base + 0x10);
	x->db = x->base + (rd(x->base + 0x14) & ~3u);
	x->rt = x->base + (rd(x->base + 0x18) & ~0x1Fu);
	x->ctx = (x->hcc1 & 4) ? 64 : 32;
	x->max_slots = x->hcs1 & 0xFF;
	x->max_ports = x->hcs1 >> 24;
	/* The Supported Protocol capabilities say which ports speak USB 2 and USB 3 (§7.2). */
	uintptr_t p = (x->hcc1 >> 16) * 4;
	for (int n = 0; p && n < 32; n++) {
		uint32_t d0 = rd(x->base + p);
		if ((d0 & 0xFF) == 2) {
			uint32_t d2 = rd(x->base + p + 8);
			if (d0 >> 24 == 3) {
				x->usb3_first = d2 & 0xFF;
				x->usb3_count = (d2 >> 8) & 0xFF;
			} else if (d0 >> 24 == 2) {
				x->usb2_first = d2 & 0xFF;
				x->usb2_count = (d2 >> 8) & 0xFF;
			}
		}
		uint32_t next = (d0 >> 8) & 0xFF;
		p = next ? p + next * 4 : 0;
	}
	device_count++;
	f->driver_state = x;
	return 0;
}

const struct pci_driver xhci_driver = { "xhci", match, probe };
