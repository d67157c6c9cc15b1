#include "pci.h"
#include "acpi.h"
#include "../arch/x86.h"
#include "../lib/string.h"

struct pci_function pci_functions[PCI_MAX_FUNCTIONS];
int pci_function_count;
enum pci_access pci_default_access = PCI_ACCESS_CF8;

int pci_ecam_available(void) { return acpi.have_mcfg && acpi.ecam_paddr != 0; }

static uintptr_t ecam_address(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off) {
	/* Bus bits 27:20, device 19:15, function 14:12, register 11:0. */
	return (uintptr_t)acpi.ecam_paddr + ((uintptr_t)(bus - acpi.ecam_bus_start) << 20) +
	       ((uintptr_t)dev << 15) + ((uintptr_t)fn << 12) + (off & 0xFFF);
}

static int ecam_covers(uint8_t bus) {
	return pci_ecam_available() && bus >= acpi.ecam_bus_start && bus <= acpi.ecam_bus_end;
}

static uint32_t cf8_address(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off) {
	return 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | (off & 0xFC);
}

uint32_t pci_cfg_read32_via(enum pci_access how, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off) {
	if (how == PCI_ACCESS_ECAM) return ecam_covers(bus) ? mmio_read32(ecam_address(bus, dev, fn, off & ~3)) : ~0u;
	if (off >= 256) return ~0u;
	outl(0xCF8, cf8_address(bus, dev, fn, off));
	return inl(0xCFC);
}

void pci_cfg_write32_via(enum pci_access how, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v) {
	if (how == PCI_ACCESS_ECAM) {
		if (ecam_covers(bus)) mmio_write32(ecam_address(bus, dev, fn, off & ~3), v);
		return;
	}
	if (off >= 256) return;
	outl(0xCF8, cf8_address(bus, dev, fn, off));
	outl(0xCFC, v);
}

uint32_t pci_cfg_read32(const struct pci_function *f, uint16_t off) {
	return pci_cfg_read32_via(pci_default_access, f->bus, f->dev, f->fn, off);
}

uint16_t pci_cfg_read16(const struct pci_function *f, uint16_t off) {
	return (uint16_t)(pci_cfg_read32(f, off & ~3) >> ((off & 2) * 8));
}

uint8_t pci_cfg_read8(const struct pci_function *f, uint16_t off) {
	return (uint8_t)(pci_cfg_read32(f, off & ~3) >> ((off & 3) * 8));
}

void pci_cfg_write32(const struct pci_function *f, uint16_t off, uint32_t v) {
	pci_cfg_write32_via(pci_default_access, f->bus, f->dev, f->fn, off, v);
}

/*
 * Narrow writes as byte/word accesses so they do not rewrite neighbouring registers
 * (write-1-to-clear status bits sit next to the command register).
 */
void pci_cfg_write16(const struct pci_function *f, uint16_t off, uint16_t v) {
	if (pci_default_access == PCI_ACCESS_ECAM && ecam_covers(f->bus)) {
		mmio_write16(ecam_address(f->bus, f->dev, f->fn, off & ~1), v);
	} else {
		outl(0xCF8, cf8_address(f->bus, f->dev, f->fn, off));
		outw((uint16_t)(0xCFC + (off & 2)), v);
	}
}

void pci_cfg_write8(const struct pci_function *f, uint16_t off, uint8_t v) {
	if (pci_default_access == PCI_ACCESS_ECAM && ecam_covers(f->bus)) {
		mmio_write8(ecam_address(f->bus, f->dev, f->fn, off), v);
	} else {
		outl(0xCF8, cf8_address(f->bus, f->dev, f->fn, off));
		outb((uint16_t)(0xCFC + (off & 3)), v);
	}
}

/* §6.2.5.1: write all ones, read back the size mask, restore; decode off meanwhile. */
static void size_bars(struct pci_function *f) {
	int count = f->header_type == 0 ? 6 : f->header_type == 1 ? 2 : 0;
	uint16_t cmd = pci_cfg_read16(f, PCI_COMMAND);
	pci_cfg_write16(f, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
	f->bar_count = count;
	for (int i = 0; i < count; i++) {
		uint16_t off = (uint16_t)(0x10 + 4 * i);
		struct pci_bar *b = &f->bar[i];
		uint32_t orig = pci_cfg_read32(f, off);
		pci_cfg_write32(f, off, ~0u);
		uint32_t mask = pci_cfg_read32(f, off);
		pci_cfg_write32(f, off, orig);
		memset(b, 0, sizeof *b);
		if (orig & 1) {
			b->is_io = 1;
			b->addr = orig & ~3u;
			uint32_t m = mask & ~3u;
			/* Upper 16 bits may read as zero for 16-bit I/O decoders. */
			if (m) b->size = (uint32_t)(~(m | 0xFFFF0000u) + 1) & 0xFFFF;
			if (m && !b->size) b->size = 0x10000;
			continue;
		}
		b->prefetchable = (orig >> 3) & 1;
		b->is_64 = ((orig >> 1) & 3) == 2;
		uint64_t full_mask = mask & ~0xFu;
		b->addr = orig & ~0xFu;
		if (b->is_64 && i + 1 < count) {
			uint16_t hi_off = (uint16_t)(off + 4);
			uint32_t orig_hi = pci_cfg_read32(f, hi_off);
			pci_cfg_write32(f, hi_off, ~0u);
			uint32_t mask_hi = pci_cfg_read32(f, hi_off);
			pci_cfg_write32(f, hi_off, orig_hi);
			full_mask |= (uint64_t)mask_hi << 32;
			b->addr |= (uint64_t)orig_hi << 32;
			if (full_mask) b->size = ~full_mask + 1;
			i++;
			memset(&f->bar[i], 0, sizeof f->bar[i]);	/* the upper half is not a BAR */
		} else if (full_mask) {
			b->size = (uint32_t)(~(uint32_t)full_mask + 1);
		}
	}
	pci_cfg_write16(f, PCI_COMMAND, cmd);
}

static void scan_bus(enum pci_access how, uint8_t bus, uint32_t depth);

static void add_function(enum pci_access how, uint8_t bus, uint8_t dev, uint8_t fn, uint32_t id, uint32_t depth) {
	if (pci_function_count >= PCI_MAX_FUNCTIONS) return;
	struct pci_function *f = &pci_functions[pci_function_count++];
	memset(f, 0, sizeof *f);
	f->bus = bus; f->dev = dev; f->fn = fn;
	f->vendor = (uint16_t)id;
	f->device = (uint16_t)(id >> 16);
	uint32_t class_rev = pci_cfg_read32_via(how, bus, dev, fn, 0x08);
	f->revision = (uint8_t)class_rev;
	f->prog_if = (uint8_t)(class_rev >> 8);
	f->subclass = (uint8_t)(class_rev >> 16);
	f->class_code = (uint8_t)(class_rev >> 24);
	f->header_type = (uint8_t)(pci_cfg_read32_via(how, bus, dev, fn, 0x0C) >> 16) & 0x7F;
	uint32_t intr = pci_cfg_read32_via(how, bus, dev, fn, 0x3C);
	f->irq_line = (uint8_t)intr;
	f->irq_pin = (uint8_t)(intr >> 8);
	enum pci_access saved = pci_default_access;
	pci_default_access = how;
	size_bars(f);
	pci_default_access = saved;
	if (f->header_type == 1) {
		uint8_t secondary = (uint8_t)(pci_cfg_read32_via(how, bus, dev, fn, 0x18) >> 8);
		if (secondary > bus) scan_bus(how, secondary, depth + 1);
	}
}

static void scan_bus(enum pci_access how, uint8_t bus, uint32_t depth) {
	if (depth > 8) return;
	for (uint8_t dev = 0; dev < 32; dev++) {
		uint32_t id = pci_cfg_read32_via(how, bus, dev, 0, 0);
		if ((uint16_t)id == 0xFFFF) continue;
		int multi = (pci_cfg_read32_via(how, bus, dev, 0, 0x0C) >> 16) & 0x80;
		add_function(how, bus, dev, 0, id, depth);
		for (uint8_t fn = 1; multi && fn < 8; fn++) {
			uint32_t fid = pci_cfg_read32_via(how, bus, dev, fn, 0);
			if ((uint16_t)fid != 0xFFFF) add_function(how, bus, dev, fn, fid, depth);
		}
	}
}

int pci_enumerate(enum pci_access how) {
	pci_function_count = 0;
	scan_bus(how, 0, 0);
	return pci_function_count;
}

struct pci_function *pci_find(uint16_t vendor, uint16_t device, int index) {
	for (int i = 0; i < pci_function_count; i++)
		if (pci_functions[i].vendor == vendor && pci_functions[i].device == device && index-- == 0)
			return &pci_functions[i];
	return 0;
}

void pci_enable(struct pci_function *f) {
	uint16_t cmd = pci_cfg_read16(f, PCI_COMMAND);
	pci_cfg_write16(f, PCI_COMMAND, cmd | PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_BUS_MASTER);
}
