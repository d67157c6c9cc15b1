/*
 * PCI capabilities list and message-signalled interrupts.
 * MSI message address: 0xFEE00000 | destination APIC ID << 12; data: the vector, fixed
 * delivery, edge (Intel SDM vol. 3 §11.11).
 */
#include "pci.h"
#include "../arch/x86.h"

#define PCI_STATUS 0x06
#define PCI_STATUS_CAPS 0x10
#define PCI_CAP_POINTER 0x34

uint8_t pci_find_capability(const struct pci_function *f, uint8_t id) {
	if (!(pci_cfg_read16(f, PCI_STATUS) & PCI_STATUS_CAPS)) return 0;
	uint8_t ptr = pci_cfg_read8(f, PCI_CAP_POINTER) & 0xFC;
	for (int guard = 0; ptr && guard < 48; guard++) {
		uint16_t header = pci_cfg_read16(f, ptr);
		if ((header & 0xFF) == id) return ptr;
		ptr = (uint8_t)(header >> 8) & 0xFC;
	}
	return 0;
}

static uint32_t msi_address(uint8_t apic_id) { return 0xFEE00000u | (uint32_t)apic_id << 12; }

int pci_msi_enable(struct pci_function *f, uint8_t vector, uint8_t apic_id) {
	uint8_t cap = pci_find_capability(f, PCI_CAP_MSI);
	if (!cap) return 0;
	uint16_t ctrl = pci_cfg_read16(f, cap + 2);
	int is64 = (ctrl >> 7) & 1;
	pci_cfg_write32(f, cap + 4, msi_address(apic_id));
	if (is64) pci_cfg_write32(f, cap + 8, 0);
	pci_cfg_write16(f, (uint16_t)(cap + (is64 ? 12 : 8)), vector);
	/* One message (MME = 0), enable bit 0; INTx is disabled while MSI is on. */
	ctrl = (uint16_t)((ctrl & ~0x70) | 1);
	pci_cfg_write16(f, cap + 2, ctrl);
	return 1;
}

void pci_msi_disable(struct pci_function *f) {
	uint8_t cap = pci_find_capability(f, PCI_CAP_MSI);
	if (cap) pci_cfg_write16(f, cap + 2, pci_cfg_read16(f, cap + 2) & ~1);
}

int pci_msix_table_size(const struct pci_function *f) {
	uint8_t cap = pci_find_capability(f, PCI_CAP_MSIX);
	return cap ? (pci_cfg_read16(f, cap + 2) & 0x7FF) + 1 : 0;
}

int pci_msix_enable(struct pci_function *f, uint16_t entry, uint8_t vector, uint8_t apic_id) {
	uint8_t cap = pci_find_capability(f, PCI_CAP_MSIX);
	if (!cap) return 0;
	uint16_t ctrl = pci_cfg_read16(f, cap + 2);
	if (entry > (ctrl & 0x7FF)) return 0;
	uint32_t table = pci_cfg_read32(f, cap + 4);
	const struct pci_bar *bar = &f->bar[table & 7];	/* BIR in bits 2:0 */
	if (bar->is_io || !bar->size || !bar->addr) return 0;
	uintptr_t e = (uintptr_t)(bar->addr + (table & ~7u) + 16u * entry);
	/* Enable with the function masked while the entry is written (PCI 3.0 §6.8.2.8). */
	pci_cfg_write16(f, cap + 2, (uint16_t)(ctrl | 0x8000 | 0x4000));
	mmio_write32(e + 0, msi_address(apic_id));
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, vector);
	mmio_write32(e + 12, 0);	/* vector control: unmasked */
	pci_cfg_write16(f, cap + 2, (uint16_t)((ctrl | 0x8000) & ~0x4000));
	return 1;
}

void pci_msix_disable(struct pci_function *f) {
	uint8_t cap = pci_find_capability(f, PCI_CAP_MSIX);
	if (cap) pci_cfg_write16(f, cap + 2, pci_cfg_read16(f, cap + 2) & ~0x8000);
}
