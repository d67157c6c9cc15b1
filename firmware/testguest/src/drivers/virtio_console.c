#include "virtio_console.h"
#include "../arch/x86.h"
#include "../lib/string.h"
#include "../platform/timer.h"

static struct virtio_console devices[1];
static int device_count;

static int match(const struct pci_function *f) { return f->vendor == 0x1AF4 && f->device == 0x1003; }

static void post_ctrl(struct virtio_console *c, uint16_t i) {
	struct virtq *q = &c->q[2];
	q->desc[i].addr = (uint64_t)(uintptr_t)(c->ctrl_bufs + (uint32_t)i * VCON_CTRL_BYTES);
	q->desc[i].len = VCON_CTRL_BYTES;
	q->desc[i].flags = VIRTQ_DESC_F_WRITE;
	q->desc[i].next = 0;
	virtq_publish(q, i);
}

static int probe(struct pci_function *f) {
	if (device_count == (int)(sizeof devices / sizeof devices[0])) return -1;
	struct virtio_console *c = &devices[device_count];
	memset(c, 0, sizeof *c);
	if (virtio_legacy_begin(&c->transport, f) != 0) return -1;
	c->features = virtio_legacy_negotiate(&c->transport, (1u << VIRTIO_CONSOLE_F_SIZE) | (1u << VIRTIO_CONSOLE_F_MULTIPORT));
	uint16_t cfg = virtio_legacy_config_port(&c->transport);
	c->cols = inw(cfg);
	c->rows = inw((uint16_t)(cfg + 2));
	c->max_ports = inl((uint16_t)(cfg + 4));
	uint32_t ports = (c->features & (1u << VIRTIO_CONSOLE_F_MULTIPORT)) ? c->max_ports : 1;
	if (ports > VCON_MAX_PORTS) ports = VCON_MAX_PORTS;
	c->nqueues = ports > 1 || (c->features & (1u << VIRTIO_CONSOLE_F_MULTIPORT)) ? (int)(2 * (ports + 1)) : 2;
	for (int i = 0; i < c->nqueues; i++)
		if (virtio_legacy_queue(&c->transport, &c->q[i], (uint16_t)i, -1) != 0) goto fail;
	c->ctrl_bufs = dma_alloc((uint64_t)VCON_CTRL_BUFS * VCON_CTRL_BYTES);
	c->io = dma_alloc((uint64_t)c->nqueues * VCON_IO_BYTES);
	if (!c->ctrl_bufs || !c->io) goto fail;
	if (c->nqueues > 2) {
		for (uint16_t i = 0; i < VCON_CTRL_BUFS && i < c->q[2].size; i++) post_ctrl(c, i);
	}
	virtio_legacy_driver_ok(&c->transport);
	if (c->nqueues > 2) virtq_kick(&c->transport, &c->q[2]);
	device_count++;
	f->driver_state = c;
	return 0;
fail:
	outb(c->transport.io + VIRTIO_DEVICE_STATUS, VIRTIO_STATUS_FAILED);
	return -1;
}

/* Puts one readable buffer on queue qi and waits for the device to return it. */
static int send_readable(struct virtio_console *c, int qi, const void *data, uint32_t len, uint64_t timeout_ns) {
	struct virtq *q = &c->q[qi];
	uint16_t d = q->next_avail % q->size;
	uint8_t *b = c->io + (uint32_t)qi * VCON_IO_BYTES;
	if (len > VCON_IO_BYTES) return -1;
	memcpy(b, data, len);
	q->desc[d].addr = (uint64_t)(uintptr_t)b;
	q->desc[d].len = len;
	q->desc[d].flags = 0;
	q->desc[d].next = 0;
	virtq_publish(q, d);
	virtq_kick(&c->transport, q);
	uint64_t deadline = timer_now_ns() + timeout_ns;
	uint32_t id, used;
	while (!virtq_take_used_id(q, &id, &used)) {
		if (timer_now_ns() > deadline) return -1;
		cpu_relax();
	}
	return 0;
}

int vcon_control_send(struct virtio_console *c, uint32_t id, uint16_t event, uint16_t value, uint64_t timeout_ns) {
	struct vcon_control m = { id, event, value };
	return c->nqueues > 3 ? send_readable(c, 3, &m, sizeof m, timeout_ns) : -1;
}

int vcon_control_recv(struct virtio_console *c, struct vcon_control *out, char *name, uint32_t name_size, uint64_t timeout_ns) {
	if (c->nqueues <= 2) return 0;
	struct virtq *q = &c->q[2];
	uint64_t deadline = timer_now_ns() + timeout_ns;
	uint32_t id, len;
	while (!virtq_take_used_id(q, &id, &len)) {
		if (timer_now_ns() > deadline) return 0;
		cpu_relax();
	}
	int ok = 0;
	if (id < VCON_CTRL_BUFS && len >= sizeof *out && len <= VCON_CTRL_BYTES) {
		const uint8_t *b = c->ctrl_bufs + id * VCON_CTRL_BYTES;
		memcpy(out, b, sizeof *out);
		uint32_t n = len - (uint32_t)sizeof *out;
		if (name_size) {
			if (n >= name_size) n = name_size - 1;
			memcpy(name, b + sizeof *out, n);
			name[n] = 0;
		}
		ok = 1;
	}
	if (id < VCON_CTRL_BUFS) post_ctrl(c, (uint16_t)id);
	virtq_kick(&c->transport, q);
	return ok;
}

void vcon_post_rx(struct virtio_console *c, int port) {
	int qi = vcon_rxq(port);
	virtq_post_writable(&c->transport, &c->q[qi], c->io + (uint32_t)qi * VCON_IO_BYTES, VCON_IO_BYTES);
}

uint32_t vcon_recv(struct virtio_console *c, int port, uint8_t *out, uint32_t size, uint64_t timeout_ns) {
	int qi = vcon_rxq(port);
	uint64_t deadline = timer_now_ns() + timeout_ns;
	uint32_t id, len;
	while (!virtq_take_used_id(&c->q[qi], &id, &len)) {
		if (timer_now_ns() > deadline) return 0;
		cpu_relax();
	}
	if (len > VCON_IO_BYTES) len = 0;
	if (len > size) len = size;
	memcpy(out, c->io + (uint32_t)qi * VCON_IO_BYTES, len);
	return len;
}

int vcon_send(struct virtio_console *c, int port, const void *data, uint32_t len, uint64_t timeout_ns) {
	return send_readable(c, vcon_txq(port), data, len, timeout_ns);
}

const struct pci_driver virtio_console_driver = { "virtio-console", match, probe };
