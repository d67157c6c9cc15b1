/*
 * virtio entropy device (virtio 1.2 §5.4), legacy PCI ID 1af4:1005 as bhyve's virtio-rnd
 * and QEMU's virtio-rng-pci present it: one request queue of device-writable buffers.
 * Probe brings the device up with queue 0 on MSI-X when the device has it.
 */
#include "virtio_rng.h"
#include "../arch/trap.h"
#include "../arch/x86.h"

static struct virtio_rng devices[2];
static int device_count;

static int match(const struct pci_function *f) { return f->vendor == 0x1AF4 && f->device == 0x1005; }

static int probe(struct pci_function *f) {
	if (device_count == (int)(sizeof devices / sizeof devices[0])) return -1;
	struct virtio_rng *r = &devices[device_count];
	if (virtio_legacy_begin(&r->transport, f) != 0) return -1;
	int msix_entry = pci_msix_table_size(f) > 0 ? 0 : -1;
	if (virtio_legacy_queue(&r->transport, &r->requests, 0, msix_entry) != 0) {
		outb(r->transport.io + VIRTIO_DEVICE_STATUS, VIRTIO_STATUS_FAILED);
		return -1;
	}
	virtio_legacy_driver_ok(&r->transport);
	device_count++;
	f->driver_state = r;
	return 0;
}

int virtio_rng_read(struct virtio_rng *r, void *buf, uint32_t len, uint64_t timeout_ns) {
	uint8_t vector = r->transport.vector;
	uint32_t seen = vector ? interrupt_count[vector] : 0;
	virtq_post_writable(&r->transport, &r->requests, buf, len);
	/* With MSI-X the completion is awaited by interrupt; without, the used ring is polled. */
	if (vector && !irq_wait(vector, seen, timeout_ns)) return -1;
	uint32_t got = 0;
	for (int spin = 0; spin < 1000000; spin++) {
		if (virtq_take_used(&r->requests, &got)) return (int)got;
		cpu_relax();
	}
	return -1;
}

const struct pci_driver virtio_rng_driver = { "virtio-rng", match, probe };
