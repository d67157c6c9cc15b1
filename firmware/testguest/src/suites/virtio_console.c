/*
 * test=virtio-console[,ports=N][,secs=S]
 *
 * The console device with MULTIPORT (virtio 1.2 §5.3.6.2) against a host that has a client on
 * every port's socket: the driver says DEVICE_READY, expects DEVICE_ADD for ports 0..N-1
 * (default N=2; QEMU numbers serial ports from 1, bhyve from 0), answers PORT_READY for each and collects the names and PORT_OPEN(1)s the
 * device sends; then it opens every port (PORT_OPEN from the driver), waits for a line
 * "ping <name>\n" from the host on each and answers "pong <name>\n" on the same port.
 * Run QEMU with -device virtio-serial-pci,disable-modern=on,disable-legacy=off and
 * virtserialport,name=... chardevs (bhyve: -s N,virtio-console,NAME=PATH,...).
 */
#include "suite.h"
#include "../drivers/virtio_console.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/timer.h"

#define SEC 1000000000ULL

static char names[VCON_MAX_PORTS][64];
static int host_open[VCON_MAX_PORTS];
static int console_port[VCON_MAX_PORTS];

/* Takes one control message and records what it says about a port; returns its event or -1. */
static int take_control(struct virtio_console *c, uint64_t timeout_ns) {
	struct vcon_control m;
	char payload[64];
	if (!vcon_control_recv(c, &m, payload, sizeof payload, timeout_ns)) return -1;
	if (m.id < VCON_MAX_PORTS) {
		if (m.event == VCON_PORT_NAME) memcpy(names[m.id], payload, sizeof names[m.id]);
		if (m.event == VCON_PORT_OPEN) host_open[m.id] = m.value;
		if (m.event == VCON_CONSOLE_PORT) console_port[m.id] = 1;
	}
	return m.event == VCON_DEVICE_ADD ? (int)(0x100 | m.id) : m.event;
}

static void run(const char *options) {
	uint32_t want = (uint32_t)optlist_get_u64(options, "ports", 2);
	uint64_t secs = optlist_get_u64(options, "secs", 30);
	struct pci_function *f = driver_device("virtio-console", 0);
	if (!check(f != 0, "virtio-console device bound to its driver")) return;
	struct virtio_console *c = f->driver_state;
	if (!check(c->features & (1u << VIRTIO_CONSOLE_F_MULTIPORT), "MULTIPORT negotiated (features 0x%x)", c->features)) return;
	check(c->max_ports == VCON_MAX_PORTS && c->nqueues == VCON_QUEUES, "max_nr_ports=%u, %d queues of %u",
	      c->max_ports, c->nqueues, c->q[0].size);
	if (c->features & (1u << VIRTIO_CONSOLE_F_SIZE))
		check(c->cols == 80 && c->rows == 25, "console size %ux%u (SIZE offered)", c->cols, c->rows);

	if (!check(vcon_control_send(c, 0xFFFFFFFF, VCON_DEVICE_READY, 1, SEC) == 0, "DEVICE_READY taken")) return;
	uint32_t added = 0, mask = 0, ids[VCON_MAX_PORTS];
	if (want > VCON_MAX_PORTS) want = VCON_MAX_PORTS;
	while (added < want) {
		int e = take_control(c, 5 * SEC);
		if (e < 0) break;
		if ((e & 0x100) && !(mask & (1u << (e & 0xFF)))) {
			mask |= 1u << (e & 0xFF);
			ids[added++] = (uint32_t)(e & 0xFF);
		}
	}
	if (!check(added == want, "DEVICE_ADD for %u ports (ids mask 0x%x)", want, mask)) return;
	for (uint32_t i = 0; i < want; i++) vcon_control_send(c, ids[i], VCON_PORT_READY, 1, SEC);
	/* Each port's name, and PORT_OPEN(1) because the host's clients are connected. */
	uint64_t deadline = timer_now_ns() + secs * SEC;
	for (;;) {
		int all = 1;
		for (uint32_t i = 0; i < want; i++) all &= names[ids[i]][0] != 0 && host_open[ids[i]];
		if (all || timer_now_ns() > deadline) break;
		take_control(c, SEC / 10);
	}
	for (uint32_t i = 0; i < want; i++) {
		uint32_t p = ids[i];
		check(names[p][0] != 0 && host_open[p], "port %u named \"%s\", host side open=%d%s", p, names[p], host_open[p],
		      console_port[p] ? " (console)" : "");
	}

	for (uint32_t i = 0; i < want; i++) {
		vcon_control_send(c, ids[i], VCON_PORT_OPEN, 1, SEC);
		vcon_post_rx(c, (int)ids[i]);
	}
	for (uint32_t i = 0; i < want; i++) {
		uint32_t p = ids[i];
		char line[128];
		uint32_t n = 0;
		while (n < sizeof line - 1 && (n == 0 || line[n - 1] != '\n')) {
			uint32_t got = vcon_recv(c, (int)p, (uint8_t *)line + n, sizeof line - 1 - n, secs * SEC);
			if (!got) break;
			n += got;
			if (line[n - 1] != '\n') vcon_post_rx(c, (int)p);
		}
		line[n] = 0;
		char expect[96], reply[96];
		format(expect, sizeof expect, "ping %s\n", names[p]);
		int ok = strcmp(line, expect) == 0;
		if (n && line[n - 1] == '\n') line[n - 1] = 0;
		check(ok, "port %u received \"%s\"", p, line);
		int len = format(reply, sizeof reply, "pong %s\n", names[p]);
		check(vcon_send(c, (int)p, reply, (uint32_t)len, 5 * SEC) == 0, "port %u sent its pong", p);
	}
}

const struct suite suite_virtio_console = { "virtio-console", "virtio console: MULTIPORT control protocol, a line each way per port", run };
