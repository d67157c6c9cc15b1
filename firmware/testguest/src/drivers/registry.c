/*
 * Registered PCI drivers, tried in this order. Device drivers (virtio-blk, nvme, ahci, ...)
 * add their `extern const struct pci_driver` and one entry here.
 */
#include "ahci.h"
#include "driver.h"
#include "edu.h"
#include "nvme.h"
#include "virtio_blk.h"
#include "virtio_console.h"
#include "virtio_net.h"
#include "virtio_rng.h"
#include "xhci.h"

const struct pci_driver *const pci_drivers[] = {
	&edu_driver,
	&virtio_rng_driver,
	&virtio_blk_driver,
	&virtio_net_driver,
	&virtio_console_driver,
	&nvme_driver,
	&ahci_driver,
	&xhci_driver,
	0,
};
