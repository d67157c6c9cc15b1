#include "start_info.h"

const struct hvm_start_info *start_info(void) {
	const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)pvh_start_info_paddr;
	if (!si || si->magic != HVM_START_MAGIC) return 0;
	return si;
}

const char *start_info_cmdline(void) {
	const struct hvm_start_info *si = start_info();
	if (!si || !si->cmdline_paddr) return "";
	return (const char *)(uintptr_t)si->cmdline_paddr;
}

int start_info_memmap(const struct hvm_memmap_entry **entries) {
	const struct hvm_start_info *si = start_info();
	if (!si || si->version < 1 || !si->memmap_paddr) return 0;
	*entries = (const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
	return (int)si->memmap_entries;
}

/*
 * Installed memory is a run of adjacent entries starting with RAM: firmware may carve
 * reserved or ACPI blocks out of the top of RAM (SeaBIOS keeps its tables in the last
 * 132 KiB below lowmem), and those are still RAM as far as CMOS and fw_cfg are concerned.
 */
static uint64_t run_end(const struct hvm_memmap_entry *e, int n, uint64_t from) {
	uint64_t end = from;
	for (int grew = 1; grew;) {
		grew = 0;
		for (int i = 0; i < n; i++) {
			if (e[i].type < 1 || e[i].type > 4) continue;
			if (e[i].addr <= end && e[i].addr + e[i].size > end) { end = e[i].addr + e[i].size; grew = 1; }
		}
	}
	return end;
}

void memmap_ram_split(uint64_t *lowmem_end, uint64_t *highmem_bytes) {
	const struct hvm_memmap_entry *e;
	int n = start_info_memmap(&e);
	const uint64_t four_gib = 1ULL << 32;
	*lowmem_end = 0;
	*highmem_bytes = 0;
	for (int i = 0; i < n; i++) {
		if (e[i].type != MEMMAP_RAM) continue;
		uint64_t start = e[i].addr, end = e[i].addr + e[i].size;
		/* The run that holds 1 MiB is low memory; the run starting at 4 GiB is high memory. */
		if (start <= 0x100000 && end > 0x100000) {
			uint64_t low = run_end(e, n, end);
			*lowmem_end = low < four_gib ? low : four_gib;
		}
		if (start == four_gib) *highmem_bytes = run_end(e, n, end) - four_gib;
	}
}
