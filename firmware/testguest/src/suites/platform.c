/*
 * test=platform: the firmware interfaces an OS relies on. Command-line expectations
 * (all optional): cpus=N, mem=MiB, ecam=ADDR, pcidevs=N.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/acpi.h"
#include "../platform/fwcfg.h"
#include "../platform/lapic.h"
#include "../platform/pages.h"
#include "../platform/pci.h"
#include "../platform/start_info.h"
#include "../platform/timer.h"

static void check_start_info(void) {
	const struct hvm_start_info *si = start_info();
	if (!check(si != 0, "pvh start_info magic=0x%x at 0x%lx", si ? si->magic : 0, pvh_start_info_paddr)) return;
	const struct hvm_memmap_entry *e;
	int n = start_info_memmap(&e);
	check(si->version >= 1 && n > 0, "pvh start_info version=%u memmap_entries=%d", si->version, n);
	uint64_t low, high;
	memmap_ram_split(&low, &high);
	uint64_t mem_mib = cmdline_get_u64("mem", 0);
	if (mem_mib)
		check(low + high == mem_mib << 20, "memmap RAM lowmem_end=0x%lx highmem=0x%lx expected mem=%luM",
		      low, high, mem_mib);
	else
		check(low > (1u << 20), "memmap RAM lowmem_end=0x%lx highmem=0x%lx", low, high);
}

static void check_acpi_tables(void) {
	if (!check(acpi.found, "acpi rsdp found=%d source=%s at 0x%lx oem=%s", acpi.found,
		   acpi.rsdp_source ? acpi.rsdp_source : "none", acpi.rsdp_paddr, acpi.oem_id)) return;
	check(acpi.rsdp_checksum_ok, "acpi rsdp revision=%u checksum", acpi.rsdp_revision);
	/*
	 * An OS without a PVH hint finds the RSDP by scanning; when the hint points into the
	 * BIOS area (QEMU's firmware, bhyve's 0xF2400 tables) the scan must find the same one.
	 */
	if (acpi.rsdp_paddr >= 0xE0000 && acpi.rsdp_paddr < 0x100000) {
		uint64_t scanned = acpi_rsdp_scan();
		check(scanned == acpi.rsdp_paddr, "acpi rsdp scan of the BIOS area finds 0x%lx", scanned);
	}
	check(acpi.root_checksum_ok, "acpi %s at 0x%lx checksum entries=%d", acpi.root_is_xsdt ? "xsdt" : "rsdt",
	      acpi.root_paddr, acpi.table_count);
	for (int i = 0; i < acpi.table_count; i++)
		check(acpi.tables[i].checksum_ok, "acpi table %s at 0x%lx length=%u checksum", acpi.tables[i].signature,
		      acpi.tables[i].paddr, acpi.tables[i].length);
	check(acpi.dsdt.paddr && acpi.dsdt.checksum_ok && memcmp(acpi.dsdt.signature, "DSDT", 4) == 0,
	      "acpi DSDT at 0x%lx length=%u checksum", acpi.dsdt.paddr, acpi.dsdt.length);
}

static void check_fadt(void) {
	if (!check(acpi.have_fadt, "fadt present")) return;
	check(acpi.pm1a_cnt && acpi.pm1a_evt && acpi.pm_tmr, "fadt pm1a_evt=0x%x pm1a_cnt=0x%x pm_tmr=0x%x sci=%u",
	      acpi.pm1a_evt, acpi.pm1a_cnt, acpi.pm_tmr, acpi.sci_irq);
	check(acpi.reset_reg.address != 0, "fadt reset_reg space=%u addr=0x%lx value=0x%x supported=%d",
	      acpi.reset_reg.space, acpi.reset_reg.address, acpi.reset_value, acpi.reset_supported);
	check(acpi.s5_found, "dsdt \\_S5 SLP_TYPa=%u", acpi.s5_slp_typ_a);
}

static void check_madt(void) {
	if (!check(acpi.have_madt, "madt present lapic=0x%x", acpi.lapic_paddr)) return;
	uint64_t want = cmdline_get_u64("cpus", 0);
	if (want)
		check((uint64_t)acpi.cpu_count == want, "madt cpus=%d expected=%lu", acpi.cpu_count, want);
	else
		check(acpi.cpu_count >= 1, "madt cpus=%d", acpi.cpu_count);
	uint8_t id = lapic_id();
	int listed = 0;
	for (int i = 0; i < acpi.cpu_count; i++) listed |= acpi.apic_ids[i] == id;
	check(listed, "madt lists the boot cpu's apic id=%u", id);
	check(acpi.ioapic_count >= 1 && acpi.ioapic_paddr, "madt ioapic count=%d id=%u addr=0x%x gsi_base=%u",
	      acpi.ioapic_count, acpi.ioapic_id, acpi.ioapic_paddr, acpi.ioapic_gsi_base);
}

static void check_mcfg(void) {
	if (!check(acpi.have_mcfg, "mcfg present base=0x%lx segment=%u buses=%u-%u", acpi.ecam_paddr,
		   acpi.ecam_segment, acpi.ecam_bus_start, acpi.ecam_bus_end)) return;
	const char *want = cmdline_get("ecam");
	uint64_t expect;
	if (want && parse_u64(want, strlen(want), &expect))
		check(acpi.ecam_paddr == expect, "mcfg base=0x%lx expected=0x%lx", acpi.ecam_paddr, expect);
}

static int pow2(uint64_t v) { return v && !(v & (v - 1)); }

static void describe_size(char *buf, size_t n, uint64_t size) {
	if (size >= (1u << 20) && !(size & 0xFFFFF)) format(buf, n, "%luM", size >> 20);
	else if (size >= 1024 && !(size & 0x3FF)) format(buf, n, "%luK", size >> 10);
	else format(buf, n, "%lu", size);
}

static void check_pci(void) {
	int via_cf8 = pci_enumerate(PCI_ACCESS_CF8);
	static struct pci_function cf8_list[PCI_MAX_FUNCTIONS];
	memcpy(cf8_list, pci_functions, sizeof cf8_list);
	check(via_cf8 > 0, "pci enumeration via 0xcf8 functions=%d", via_cf8);
	if (pci_ecam_available()) {
		int via_ecam = pci_enumerate(PCI_ACCESS_ECAM);
		int same = via_ecam == via_cf8;
		for (int i = 0; same && i < via_cf8; i++) {
			const struct pci_function *a = &cf8_list[i], *b = &pci_functions[i];
			same = a->bus == b->bus && a->dev == b->dev && a->fn == b->fn && a->vendor == b->vendor &&
			       a->device == b->device;
			/* The whole standard header except command/status must read the same both ways. */
			for (uint16_t off = 0; same && off < 64; off += 4) {
				if (off == 0x04) continue;
				uint32_t x = pci_cfg_read32_via(PCI_ACCESS_CF8, a->bus, a->dev, a->fn, off);
				uint32_t y = pci_cfg_read32_via(PCI_ACCESS_ECAM, a->bus, a->dev, a->fn, off);
				if (x != y) same = 0;
			}
		}
		check(same, "pci enumeration via ecam functions=%d agrees with 0xcf8", via_ecam);
		pci_default_access = PCI_ACCESS_ECAM;
	}
	uint64_t want = cmdline_get_u64("pcidevs", 0);
	if (want) check((uint64_t)pci_function_count == want, "pci functions=%d expected=%lu", pci_function_count, want);
	for (int i = 0; i < pci_function_count; i++) {
		const struct pci_function *f = &pci_functions[i];
		char line[256];
		int len = format(line, sizeof line, "pci %02x:%02x.%x %04x:%04x class=%02x%02x", f->bus, f->dev, f->fn,
				 f->vendor, f->device, f->class_code, f->subclass);
		int ok = 1;
		for (int b = 0; b < f->bar_count; b++) {
			const struct pci_bar *bar = &f->bar[b];
			if (!bar->size) continue;
			char size[16];
			describe_size(size, sizeof size, bar->size);
			/* A sized BAR is a power of two, and an assigned one is naturally aligned. */
			int good = pow2(bar->size) && (bar->addr & (bar->size - 1)) == 0;
			ok &= good;
			if ((size_t)len < sizeof line)
				len += format(line + len, sizeof line - (size_t)len, " bar%d=%s%s@0x%lx/%s%s", b,
					      bar->is_io ? "io" : "mem", bar->is_io ? "" : bar->is_64 ? "64" : "32",
					      bar->addr, size, good ? "" : "(bad)");
		}
		check(ok, "%s", line);
	}
}

static uint64_t fwcfg_e820_lowmem(const struct fwcfg_file *f) {
	/* etc/e820: packed {u64 address, u64 length, u32 type} entries, little-endian. */
	uint8_t entry[20];
	uint64_t low = 0;
	outw(FWCFG_SELECTOR_PORT, f->select);
	for (uint32_t n = 0; n + 20 <= f->size; n += 20) {
		for (int i = 0; i < 20; i++) entry[i] = inb(FWCFG_DATA_PORT);
		uint64_t addr, len;
		uint32_t type;
		memcpy(&addr, entry, 8); memcpy(&len, entry + 8, 8); memcpy(&type, entry + 16, 4);
		if (type == 1 && addr < (1ULL << 32)) {
			uint64_t end = addr + len > (1ULL << 32) ? (1ULL << 32) : addr + len;
			if (end > low) low = end;
		}
	}
	return low;
}

static void check_fwcfg(void) {
	/* fw_cfg is optional (bhyve offers it only with lpc.fwcfg=qemu); fwcfg=1 makes it required. */
	int present = fwcfg_present();
	if (!present && !cmdline_get_u64("fwcfg", 0)) return;
	if (!check(present, "fw_cfg signature QEMU at 0x510")) return;
	uint16_t cpus = 0;
	fwcfg_read(FWCFG_NB_CPUS, &cpus, 2);
	check(cpus == acpi.cpu_count, "fw_cfg nb_cpus=%u matches madt cpus=%d", cpus, acpi.cpu_count);
	struct fwcfg_file f = { 0, 0, "" };
	int have_e820 = fwcfg_find_file("etc/e820", &f);
	if (check(have_e820, "fw_cfg file etc/e820 size=%u", f.size)) {
		uint64_t low, high;
		memmap_ram_split(&low, &high);
		uint64_t fw_low = fwcfg_e820_lowmem(&f);
		check(fw_low == low, "fw_cfg etc/e820 lowmem_end=0x%lx matches memmap 0x%lx", fw_low, low);
	}
	/* bootorder (present when a device has a bootindex): one INFO line per entry, for the host to compare. */
	struct fwcfg_file bo = { 0, 0, "" };
	if (fwcfg_find_file("bootorder", &bo) && check(bo.size > 0 && bo.size < 512, "fw_cfg file bootorder size=%u", bo.size)) {
		static char text[512];
		fwcfg_read(bo.select, text, bo.size);
		text[bo.size] = 0;
		for (char *line = text, *nl; *line; line = nl + 1) {
			nl = line;
			while (*nl && *nl != '\n') nl++;
			int last = *nl == 0;
			*nl = 0;
			if (*line) print("TESTGUEST platform INFO bootorder %s\n", line);
			if (last) break;
		}
	}
}

static void check_runtime(void) {
	check(tsc_hz > 100000000ULL && tsc_hz < 10000000000ULL, "tsc calibrated against %s tsc_hz=%lu",
	      tsc_reference, tsc_hz);
	uint8_t *a = pages_alloc(2, 1), *b = pages_alloc(1, 16);
	int zeroed = a && b;
	for (unsigned i = 0; zeroed && i < 2 * PAGE_SIZE; i++) zeroed = a[i] == 0;
	check(a && b && ((uintptr_t)a & (PAGE_SIZE - 1)) == 0 && ((uintptr_t)b & (16 * PAGE_SIZE - 1)) == 0 &&
	      zeroed && b >= a + 2 * PAGE_SIZE, "page allocator a=%p b=%p free=%luK", (void *)a, (void *)b,
	      pages_free_bytes() >> 10);
}

static void run(const char *options) {
	(void)options;
	check_start_info();
	check_acpi_tables();
	check_fadt();
	check_madt();
	check_mcfg();
	check_pci();
	check_fwcfg();
	check_runtime();
}

const struct suite suite_platform = { "platform", "ACPI tables, MADT, MCFG, PCI via 0xcf8 and ECAM, BARs, fw_cfg", run };
