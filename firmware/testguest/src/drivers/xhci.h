/*
 * xHCI host controller driver (eXtensible Host Controller Interface 1.2), enough to enumerate
 * one USB device on a root-hub port the way an OS does: controller reset, DCBAA, a command ring,
 * one event ring segment on interrupter 0 with MSI (or MSI-X), port reset, Enable Slot, Address Device,
 * control transfers on EP0, Configure Endpoint for an interrupt IN endpoint, Stop Endpoint.
 * Binds to any PCI class 0C/03/30 function (bhyve's 8086:1E31, QEMU's qemu-xhci, ...).
 */
#ifndef TESTGUEST_XHCI_H
#define TESTGUEST_XHCI_H
#include <stdint.h>
#include "driver.h"

struct xhci_trb {
	uint64_t param;
	uint32_t status;
	uint32_t control;
};

struct xhci_ring {
	struct xhci_trb *trbs;
	uint32_t size;	/* including the Link TRB at the end */
	uint32_t enq;
	uint32_t cycle;
};

struct xhci_event {
	uint32_t type, code, slot, ep, len;
	uint64_t ptr;
};

struct xhci {
	struct pci_function *pci;
	uintptr_t base, op, rt, db;
	uint16_t version;
	uint32_t hcs1, hcs2, hcc1;
	uint32_t ctx;		/* context size: 32 or 64 bytes */
	uint32_t max_slots, max_ports;
	uint32_t usb2_first, usb2_count, usb3_first, usb3_count;
	uint64_t *dcbaa;
	struct xhci_ring cmd;
	struct xhci_trb *events;
	uint64_t *erst;
	uint32_t ev_size, ev_deq, ev_cycle;
	uint8_t vector;
	int msix;		/* 1 when events arrive by MSI-X */
	uint32_t port_events;
	/* the one device: slot, port, speed, contexts and endpoint rings */
	uint32_t slot, port, speed;
	uint8_t *in_ctx, *out_ctx;
	struct xhci_ring ep0, intr;
	uint32_t intr_dci;
	int setup_error;
};

extern const struct pci_driver xhci_driver;

uint32_t xhci_op_read(const struct xhci *x, uint32_t off);
uint32_t xhci_portsc(const struct xhci *x, uint32_t port);
/* HCRST and bring-up (DCBAA, command ring, event ring, MSI, run). 0 on success. */
int xhci_start(struct xhci *x);
/* Places a command and waits for its completion event; returns the completion code, -1 on timeout. */
int xhci_command(struct xhci *x, uint64_t param, uint32_t status, uint32_t control, struct xhci_event *ev);
/* Finds the first connected port (resetting a USB 2 port); returns the port, 0 when none. */
uint32_t xhci_find_device(struct xhci *x);
/* Enable Slot + Address Device for the device on x->port; returns the completion code. */
int xhci_address(struct xhci *x);
/* A control transfer; data IN (dir_in) or OUT of `len` bytes; returns the completion code, *actual the bytes moved. */
int xhci_control(struct xhci *x, uint8_t type, uint8_t request, uint16_t value, uint16_t index, void *buf,
		 uint16_t len, uint32_t *actual);
/* Configure Endpoint with interrupt IN endpoint `ep` (max packet `mps`, bInterval `interval`). */
int xhci_configure_interrupt_in(struct xhci *x, uint32_t ep, uint32_t mps, uint32_t interval);
/* Queues a Normal TRB on the interrupt endpoint and rings it. */
void xhci_queue_in(struct xhci *x, void *buf, uint32_t len);
/* The next event within timeout_ns, 1 if one arrived. */
int xhci_next_event(struct xhci *x, struct xhci_event *ev, uint64_t timeout_ns);
/* Output context dword i of context c (0 slot, 1.. endpoints by DCI). */
uint32_t xhci_output(const struct xhci *x, uint32_t c, uint32_t i);
#endif
