/*
 * virtio console (virtio 1.2 §5.3) over the legacy PCI transport, as bhyve's virtio-console and
 * QEMU's virtio-serial-pci present it: with MULTIPORT, a receive/transmit queue pair per port
 * (port 0: queues 0/1, port p: 2p+2/2p+3) and the control pair at 2/3. The driver polls its
 * rings; the suite speaks the control protocol.
 */
#ifndef TESTGUEST_VIRTIO_CONSOLE_H
#define TESTGUEST_VIRTIO_CONSOLE_H
#include <stdint.h>
#include "virtio_legacy.h"

#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VCON_MAX_PORTS 16
#define VCON_QUEUES (2 * (VCON_MAX_PORTS + 1))

/* §5.3.6.2 control events */
enum {
	VCON_DEVICE_READY = 0,
	VCON_DEVICE_ADD = 1,
	VCON_DEVICE_REMOVE = 2,
	VCON_PORT_READY = 3,
	VCON_CONSOLE_PORT = 4,
	VCON_RESIZE = 5,
	VCON_PORT_OPEN = 6,
	VCON_PORT_NAME = 7,
};

struct vcon_control {
	uint32_t id;
	uint16_t event;
	uint16_t value;
} __attribute__((packed));

struct virtio_console {
	struct virtio_legacy transport;
	uint32_t features;
	uint16_t cols, rows;
	uint32_t max_ports;
	int nqueues;
	struct virtq q[VCON_QUEUES];
	uint8_t *ctrl_bufs;	/* control receive buffers, VCON_CTRL_BUFS of VCON_CTRL_BYTES */
	uint8_t *io;		/* per-queue bounce buffers of VCON_IO_BYTES */
};

#define VCON_CTRL_BUFS 16
#define VCON_CTRL_BYTES 512
#define VCON_IO_BYTES 1024

static inline int vcon_rxq(int port) { return port == 0 ? 0 : 2 * port + 2; }
static inline int vcon_txq(int port) { return port == 0 ? 1 : 2 * port + 3; }

extern const struct pci_driver virtio_console_driver;
/* Sends one control message (driver -> device) and waits for the device to take it. */
int vcon_control_send(struct virtio_console *c, uint32_t id, uint16_t event, uint16_t value, uint64_t timeout_ns);
/* The next control message from the device, its payload (NUL-terminated) in name; 0 on timeout. */
int vcon_control_recv(struct virtio_console *c, struct vcon_control *out, char *name, uint32_t name_size, uint64_t timeout_ns);
/* Posts the port's receive buffer (one VCON_IO_BYTES buffer per port). */
void vcon_post_rx(struct virtio_console *c, int port);
/* Bytes the host sent on the port (copied to out, up to size), 0 when nothing arrived before the timeout. */
uint32_t vcon_recv(struct virtio_console *c, int port, uint8_t *out, uint32_t size, uint64_t timeout_ns);
/* Sends bytes on the port and waits until the device has taken them; -1 on timeout. */
int vcon_send(struct virtio_console *c, int port, const void *data, uint32_t len, uint64_t timeout_ns);
#endif
