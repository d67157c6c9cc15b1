/*
 * PCI configuration access and enumeration (PCI Local Bus 3.0 §3.2.2.3.2 for
 * configuration mechanism #1 at 0xCF8/0xCFC; PCI Express Base §7.2.2 for ECAM, located
 * through the ACPI MCFG table), BAR sizing (§6.2.5.1), and capabilities (MSI §6.8.1,
 * MSI-X §6.8.2).
 */
#ifndef TESTGUEST_PCI_H
#define TESTGUEST_PCI_H
#include <stdint.h>

enum pci_access { PCI_ACCESS_CF8, PCI_ACCESS_ECAM };

struct pci_bar {
	uint64_t addr;
	uint64_t size;		/* 0: BAR not implemented */
	uint8_t is_io, is_64, prefetchable;
};

struct pci_driver;

struct pci_function {
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
	uint8_t class_code, subclass, prog_if, revision;
	uint8_t header_type;	/* without the multi-function bit */
	uint8_t irq_pin, irq_line;
	struct pci_bar bar[6];
	int bar_count;
	const struct pci_driver *driver;
	void *driver_state;
};

#define PCI_MAX_FUNCTIONS 64
extern struct pci_function pci_functions[PCI_MAX_FUNCTIONS];
extern int pci_function_count;

/* Which mechanism pci_cfg_* use: ECAM once MCFG is known, 0xCF8 before. */
extern enum pci_access pci_default_access;
int pci_ecam_available(void);

uint32_t pci_cfg_read32_via(enum pci_access how, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off);
void pci_cfg_write32_via(enum pci_access how, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v);

uint32_t pci_cfg_read32(const struct pci_function *f, uint16_t off);
uint16_t pci_cfg_read16(const struct pci_function *f, uint16_t off);
uint8_t pci_cfg_read8(const struct pci_function *f, uint16_t off);
void pci_cfg_write32(const struct pci_function *f, uint16_t off, uint32_t v);
void pci_cfg_write16(const struct pci_function *f, uint16_t off, uint16_t v);
void pci_cfg_write8(const struct pci_function *f, uint16_t off, uint8_t v);

/* Walks bus 0 and every bus behind a bridge; sizes BARs. Returns the function count. */
int pci_enumerate(enum pci_access how);
/* Gives BARs the firmware left at address zero a free, aligned address. Returns how many. */
int pci_assign_unassigned_bars(void);
struct pci_function *pci_find(uint16_t vendor, uint16_t device, int index);

#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_BUS_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
/* Turns on I/O and memory decode and bus mastering (for DMA and MSI writes). */
void pci_enable(struct pci_function *f);

#define PCI_CAP_MSI 0x05
#define PCI_CAP_MSIX 0x11
/* Offset of the first capability with this ID, 0 when absent. */
uint8_t pci_find_capability(const struct pci_function *f, uint8_t id);
/* MSI with one message: address for apic_id, data = vector (fixed, edge). 0 if no capability. */
int pci_msi_enable(struct pci_function *f, uint8_t vector, uint8_t apic_id);
void pci_msi_disable(struct pci_function *f);
/* MSI-X: table entry `entry` delivers `vector`; enables MSI-X (function mask cleared). */
int pci_msix_enable(struct pci_function *f, uint16_t entry, uint8_t vector, uint8_t apic_id);
void pci_msix_disable(struct pci_function *f);
/* The number of MSI-X table entries, 0 without the capability. */
int pci_msix_table_size(const struct pci_function *f);
#endif
