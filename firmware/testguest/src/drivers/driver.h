/*
 * The PCI driver framework. A driver is one file that defines a `const struct pci_driver`
 * and one line in drivers/registry.c. At boot every enumerated function is offered to the
 * drivers in registry order; the first whose match() accepts it gets probe().
 *
 * What a driver gets from the platform: pci.h (config space, BARs already sized and
 * identity-mapped user-accessible, pci_enable, MSI/MSI-X), dma_alloc() for buffers the
 * device reads and writes (physical = virtual), irq_vector_alloc() and irq_wait() for
 * interrupts, and timer.h for timeouts. Suites and benchmarks then reach a bound device
 * through pci_functions[i].driver / driver_state.
 */
#ifndef TESTGUEST_DRIVER_H
#define TESTGUEST_DRIVER_H
#include <stdint.h>
#include "../platform/pci.h"

struct pci_driver {
	const char *name;
	int (*match)(const struct pci_function *f);
	/* Returns 0 on success; state may be stored in f->driver_state. */
	int (*probe)(struct pci_function *f);
};

extern const struct pci_driver *const pci_drivers[];

/* Offers every enumerated function to the registered drivers. Returns how many bound. */
int drivers_probe(void);
/* The index-th function bound to the named driver, or NULL. */
struct pci_function *driver_device(const char *name, int index);

/* Zeroed, page-aligned memory a device may DMA to (identity mapped: the address is the bus address). */
void *dma_alloc(uint64_t bytes);
/* A free interrupt vector for a device, 0 when none is left. */
uint8_t irq_vector_alloc(void);
/* Waits until `vector` has been taken more than `seen` times; returns 0 on timeout. */
int irq_wait(uint8_t vector, uint32_t seen, uint64_t timeout_ns);
#endif
