/*
 * test=xhci[,vendor=N][,product=N][,report=N][,pointer=S]
 *
 * The first xHCI controller and the first USB device on its root hub, enumerated as an OS does:
 *   - HCRST, DCBAA, command ring, event ring, MSI, run; the Supported Protocol port ranges;
 *   - the connected port (reset when it is a USB 2 port): enabled, its speed;
 *   - Enable Slot, Address Device, the output slot context Addressed;
 *   - device and configuration descriptors (idVendor/idProduct against vendor= and product=), the
 *     first HID interface's interrupt IN endpoint, the product string;
 *   - Configure Endpoint, SET_CONFIGURATION, SET_IDLE 0, GET_REPORT(input) (length against report=);
 *   - an interrupt IN TRB posted, then Stop Endpoint and the endpoint Stopped in the output context;
 *   - events by MSI (MSI-X where the controller has no MSI, as QEMU's); a final HCRST leaves the controller halted.
 * With pointer=S the posted interrupt TRB waits up to S seconds for a report (a VNC client moving the pointer on
 * fbuf reaches the tablet this way); the suite prints "waiting for a pointer report" first, then the report's
 * buttons and absolute x, y (0..0x7FFF).
 * QEMU: -device qemu-xhci,id=xhci -device usb-tablet,bus=xhci.0 (bhyve: -s N,xhci,tablet).
 */
#include "suite.h"
#include "../arch/trap.h"
#include "../drivers/xhci.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define MS 1000000ULL

static const char *speed_name(uint32_t s) {
	return s == 1 ? "full" : s == 2 ? "low" : s == 3 ? "high" : s == 4 ? "super" : "?";
}

static void run(const char *options) {
	struct pci_function *f = driver_device("xhci", 0);
	if (!check(f != 0, "xhci controller bound to its driver")) return;
	struct xhci *x = f->driver_state;
	check(x->max_ports > 0 && x->max_slots > 0 && x->usb2_count + x->usb3_count > 0,
	      "%02x:%02x.%x %04x:%04x version %x.%02x, %u slots, %u ports (USB 2: %u+%u, USB 3: %u+%u), %u-byte contexts",
	      f->bus, f->dev, f->fn, f->vendor, f->device, x->version >> 8, x->version & 0xFF, x->max_slots, x->max_ports,
	      x->usb2_first, x->usb2_count, x->usb3_first, x->usb3_count, x->ctx);
	int err = xhci_start(x);
	if (!check(err == 0, "reset and run (error %d), USBSTS 0x%x", err, xhci_op_read(x, 4))) return;
	uint32_t irqs0 = x->vector ? interrupt_count[x->vector] : 0;
	uint32_t port = xhci_find_device(x);
	if (!check(port != 0, "a connected device on port %u, %s speed, PORTSC 0x%x", port, speed_name(x->speed),
		   port ? xhci_portsc(x, port) : 0))
		return;
	int cc = xhci_address(x);
	if (!check(cc == 1, "Enable Slot + Address Device: completion %d, slot %u", cc, x->slot)) return;
	check(xhci_output(x, 0, 3) >> 27 == 2, "output slot context: state %u (Addressed), address %u",
	      xhci_output(x, 0, 3) >> 27, xhci_output(x, 0, 3) & 0xFF);

	uint8_t *buf = dma_alloc(4096);
	if (!buf) return;
	uint32_t got = 0;
	cc = xhci_control(x, 0x80, 6, 0x0100, 0, buf, 18, &got);
	uint16_t vid = (uint16_t)(buf[8] | buf[9] << 8), pid = (uint16_t)(buf[10] | buf[11] << 8);
	if (!check(cc == 1 && got == 18 && buf[0] == 18 && buf[1] == 1,
		   "device descriptor: completion %d, %u bytes, USB %x.%02x, EP0 %u, %04x:%04x", cc, got, buf[3], buf[2],
		   buf[7], vid, pid))
		return;
	uint64_t want_vid = optlist_get_u64(options, "vendor", vid), want_pid = optlist_get_u64(options, "product", pid);
	check(vid == want_vid && pid == want_pid, "idVendor:idProduct %04x:%04x, expected %04x:%04x", vid, pid,
	      (unsigned)want_vid, (unsigned)want_pid);
	uint8_t iproduct = buf[15];

	cc = xhci_control(x, 0x80, 6, 0x0200, 0, buf, 9, &got);
	uint16_t total = (uint16_t)(buf[2] | buf[3] << 8);
	uint8_t config_value = buf[5];
	if (!check(cc == 1 && got == 9 && total >= 9 && total <= 4096, "configuration descriptor: wTotalLength %u", total)) return;
	cc = xhci_control(x, 0x80, 6, 0x0200, 0, buf, total, &got);
	/* The first HID interface and its interrupt IN endpoint. */
	uint32_t ep = 0, mps = 0, interval = 0, hid = 0;
	for (uint32_t o = 0; o + 2 <= got && buf[o] >= 2; o += buf[o]) {
		if (buf[o + 1] == 4 && o + 9 <= got) hid = buf[o + 5] == 3;
		if (buf[o + 1] == 5 && o + 7 <= got && hid && (buf[o + 2] & 0x80) && (buf[o + 3] & 3) == 3 && !ep) {
			ep = buf[o + 2] & 0xF;
			mps = (uint32_t)(buf[o + 4] | buf[o + 5] << 8) & 0x7FF;
			interval = buf[o + 6];
		}
	}
	if (!check(cc == 1 && got == total && ep != 0, "HID interface with interrupt IN endpoint %u (max packet %u, bInterval %u)",
		   ep, mps, interval))
		return;
	if (iproduct) {
		cc = xhci_control(x, 0x80, 6, (uint16_t)(0x0300 | iproduct), 0x0409, buf, 255, &got);
		char name[64];
		uint32_t n = 0;
		for (uint32_t i = 2; i + 1 < got && n + 1 < sizeof name; i += 2) name[n++] = (char)buf[i];
		name[n] = 0;
		check(cc == 1 && got >= 2 && buf[1] == 3, "product string %u: \"%s\"", iproduct, name);
	}

	cc = xhci_configure_interrupt_in(x, ep, mps, interval);
	check(cc == 1 && xhci_output(x, 0, 3) >> 27 == 3, "Configure Endpoint: completion %d, slot state %u (Configured)", cc,
	      xhci_output(x, 0, 3) >> 27);
	cc = xhci_control(x, 0x00, 9, config_value, 0, 0, 0, &got);
	check(cc == 1, "SET_CONFIGURATION %u: completion %d", config_value, cc);
	cc = xhci_control(x, 0x21, 0x0A, 0, 0, 0, 0, &got);
	check(cc == 1, "SET_IDLE 0: completion %d", cc);
	cc = xhci_control(x, 0xA1, 0x01, 0x0100, 0, buf, 64, &got);
	uint64_t want_report = optlist_get_u64(options, "report", got);
	check(cc == 1 && got > 0 && got == want_report, "GET_REPORT(input): completion %d, %u bytes (expected %u)", cc, got,
	      (unsigned)want_report);

	uint8_t *report = dma_alloc(4096);
	if (!report) return;
	xhci_queue_in(x, report, mps);
	struct xhci_event ev;
	uint64_t pointer_secs = optlist_get_u64(options, "pointer", 0);
	if (pointer_secs) {
		check(1, "waiting for a pointer report");
		int got_ev = 0;
		uint64_t deadline = timer_now_ns() + pointer_secs * 1000 * MS;
		while (!got_ev && timer_now_ns() < deadline)
			got_ev = xhci_next_event(x, &ev, 100 * MS) && ev.type == 32;
		uint32_t len = got_ev ? mps - ev.len : 0;
		check(got_ev && (ev.code == 1 || ev.code == 13) && len >= 5,
		      "pointer report: completion %u, %u bytes, buttons=%u x=%u y=%u", got_ev ? ev.code : 0, len, report[0],
		      report[1] | report[2] << 8, report[3] | report[4] << 8);
		xhci_queue_in(x, report, mps);
	}
	cc = xhci_command(x, 0, 0, 15u << 10 | x->intr_dci << 16 | x->slot << 24, &ev);
	check(cc == 1 && (xhci_output(x, x->intr_dci, 0) & 7) == 3, "interrupt TRB posted, Stop Endpoint: completion %d, state %u (Stopped)",
	      cc, xhci_output(x, x->intr_dci, 0) & 7);
	if (x->vector)
		check(interrupt_count[x->vector] > irqs0, "events arrived by %s on vector 0x%x (%u interrupts)", x->msix ? "MSI-X" : "MSI",
		      x->vector, interrupt_count[x->vector] - irqs0);
	err = xhci_start(x);
	check(err == 0 && xhci_portsc(x, port) & 1, "HCRST and restart: error %d, the device still connected on port %u", err, port);
}

const struct suite suite_xhci = { "xhci", "xHCI controller: enumerate the first USB device (HID), configure, stop", run };
