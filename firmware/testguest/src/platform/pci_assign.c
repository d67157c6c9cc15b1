/*
 * Address assignment for BARs that firmware left at zero (qboot assigns only what it
 * boots from; bhyve without a boot ROM assigns everything itself, see bhyve-facts §4.3).
 * Memory BARs go in [0xC0000000, 0xFEC00000): bhyve's 32-bit window, and the top of QEMU
 * q35's PCI hole above its ECAM. Ranges already taken by a BAR, a memory-map entry or the
 * ECAM are skipped; placement is natural alignment, first fit.
 */
#include "pci.h"
#include "acpi.h"
#include "start_info.h"

#define MMIO_WINDOW_START 0xC0000000ULL
#define MMIO_WINDOW_END 0xFEC00000ULL
#define IO_WINDOW_START 0xC000u
#define IO_WINDOW_END 0x10000u

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return a < b + blen && b < a + alen; }

static int mmio_taken(uint64_t base, uint64_t size) {
	for (int i = 0; i < pci_function_count; i++)
		for (int b = 0; b < pci_functions[i].bar_count; b++) {
			const struct pci_bar *bar = &pci_functions[i].bar[b];
			if (!bar->is_io && bar->size && bar->addr && overlaps(base, size, bar->addr, bar->size)) return 1;
		}
	const struct hvm_memmap_entry *e;
	int n = start_info_memmap(&e);
	for (int i = 0; i < n; i++)
		if (overlaps(base, size, e[i].addr, e[i].size)) return 1;
	if (acpi.have_mcfg) {
		uint64_t ecam_len = ((uint64_t)(acpi.ecam_bus_end - acpi.ecam_bus_start) + 1) << 20;
		if (overlaps(base, size, acpi.ecam_paddr, ecam_len)) return 1;
	}
	return 0;
}

static int io_taken(uint64_t base, uint64_t size) {
	for (int i = 0; i < pci_function_count; i++)
		for (int b = 0; b < pci_functions[i].bar_count; b++) {
			const struct pci_bar *bar = &pci_functions[i].bar[b];
			if (bar->is_io && bar->size && bar->addr && overlaps(base, size, bar->addr, bar->size)) return 1;
		}
	return 0;
}

static uint64_t first_fit(uint64_t start, uint64_t end, uint64_t size, int (*taken)(uint64_t, uint64_t)) {
	for (uint64_t a = (start + size - 1) & ~(size - 1); a + size <= end; a += size)
		if (!taken(a, size)) return a;
	return 0;
}

int pci_assign_unassigned_bars(void) {
	int assigned = 0;
	for (int i = 0; i < pci_function_count; i++) {
		struct pci_function *f = &pci_functions[i];
		for (int b = 0; b < f->bar_count; b++) {
			struct pci_bar *bar = &f->bar[b];
			if (!bar->size || bar->addr) continue;
			uint64_t a = bar->is_io ? first_fit(IO_WINDOW_START, IO_WINDOW_END, bar->size, io_taken)
						: first_fit(MMIO_WINDOW_START, MMIO_WINDOW_END, bar->size, mmio_taken);
			if (!a) continue;
			uint16_t off = (uint16_t)(0x10 + 4 * b);
			uint32_t low_flags = pci_cfg_read32(f, off) & (bar->is_io ? 0x3u : 0xFu);
			pci_cfg_write32(f, off, (uint32_t)a | low_flags);
			if (bar->is_64) pci_cfg_write32(f, (uint16_t)(off + 4), (uint32_t)(a >> 32));
			bar->addr = a;
			assigned++;
		}
	}
	return assigned;
}
