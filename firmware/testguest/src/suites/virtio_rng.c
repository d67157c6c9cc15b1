/*
 * test=virtio-rng: a virtio device end to end through the driver framework: the legacy
 * transport comes up, queue 0 is routed by MSI-X, and a 64-byte request comes back filled
 * with a completion interrupt. Run QEMU with
 *   -device virtio-rng-pci,disable-modern=on,disable-legacy=off
 * (bhyve: -s N,virtio-rnd).
 */
#include "suite.h"
#include "../arch/trap.h"
#include "../drivers/virtio_rng.h"
#include "../lib/string.h"

static void run(const char *options) {
	(void)options;
	struct pci_function *f = driver_device("virtio-rng", 0);
	if (!check(f != 0, "virtio-rng device bound to its driver")) return;
	struct virtio_rng *r = f->driver_state;
	uint8_t status = virtio_legacy_status(&r->transport);
	check(status == (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK),
	      "%02x:%02x.%x io=0x%x status=0x%x queue 0 size=%u", f->bus, f->dev, f->fn, r->transport.io, status,
	      r->requests.size);
	int msix = pci_msix_table_size(f);
	check(msix > 0 && r->transport.vector != 0, "msi-x table entries=%d, queue 0 on vector 0x%x", msix,
	      r->transport.vector);
	uint8_t *buf = dma_alloc(4096);
	uint32_t before = r->transport.vector ? interrupt_count[r->transport.vector] : 0;
	int got = buf ? virtio_rng_read(r, buf, 64, 2000000000ULL) : -1;
	int nonzero = 0;
	for (int i = 0; i < 64 && got > 0; i++) nonzero |= buf[i];
	check(got > 0 && got <= 64 && nonzero, "request of 64 bytes returned %d random bytes", got);
	if (r->transport.vector)
		check(interrupt_count[r->transport.vector] > before, "completion arrived by msi-x (count %u -> %u)", before,
		      interrupt_count[r->transport.vector]);
}

const struct suite suite_virtio_rng = { "virtio-rng", "virtio entropy device: legacy transport, MSI-X, one request", run };
