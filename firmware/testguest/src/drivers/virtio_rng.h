/* virtio entropy device driver (virtio 1.2 §5.4) over the legacy PCI transport. */
#ifndef TESTGUEST_VIRTIO_RNG_H
#define TESTGUEST_VIRTIO_RNG_H
#include <stdint.h>
#include "virtio_legacy.h"

struct virtio_rng {
	struct virtio_legacy transport;
	struct virtq requests;
};

extern const struct pci_driver virtio_rng_driver;
/* Fills buf with up to len random bytes; returns the count the device wrote, -1 on timeout. */
int virtio_rng_read(struct virtio_rng *r, void *buf, uint32_t len, uint64_t timeout_ns);
#endif
