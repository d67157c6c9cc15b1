#include "driver.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../lib/string.h"
#include "../platform/pages.h"
#include "../platform/timer.h"
#include "../platform/vectors.h"

int drivers_probe(void) {
	int bound = 0;
	for (int i = 0; i < pci_function_count; i++) {
		struct pci_function *f = &pci_functions[i];
		for (int d = 0; pci_drivers[d]; d++) {
			if (!pci_drivers[d]->match(f)) continue;
			if (pci_drivers[d]->probe(f) == 0) {
				f->driver = pci_drivers[d];
				bound++;
			}
			break;
		}
	}
	return bound;
}

struct pci_function *driver_device(const char *name, int index) {
	for (int i = 0; i < pci_function_count; i++)
		if (pci_functions[i].driver && strcmp(pci_functions[i].driver->name, name) == 0 && index-- == 0)
			return &pci_functions[i];
	return 0;
}

void *dma_alloc(uint64_t bytes) {
	return pages_alloc((bytes + PAGE_SIZE - 1) / PAGE_SIZE, 1);
}

uint8_t irq_vector_alloc(void) {
	static unsigned next = VECTOR_DEVICE_FIRST;
	return next <= VECTOR_DEVICE_LAST ? (uint8_t)next++ : 0;
}

int irq_wait(uint8_t vector, uint32_t seen, uint64_t timeout_ns) {
	uint64_t t0 = timer_now_ns();
	while (interrupt_count[vector] <= seen)
		if (timer_now_ns() - t0 > timeout_ns) return 0;
		else cpu_relax();
	return 1;
}
