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

void memmap_ram_split(uint64_t *lowmem_end, uint64_t *highmem_bytes) {
	const struct hvm_memmap_entry *e;
	int n = start_info_memmap(&e);
	const uint64_t four_gib = 1ULL << 32;
	*lowmem_end = 0;
	*highmem_bytes = 0;
	for (int i = 0; i < n; i++) {
		if (e[i].type != MEMMAP_RAM) continue;
		uint64_t start = e[i].addr, end = e[i].addr + e[i].size;
		if (start < four_gib) {
			uint64_t low_end = end < four_gib ? end : four_gib;
			if (low_end > *lowmem_end) *lowmem_end = low_end;
		}
		if (end > four_gib) *highmem_bytes += end - (start > four_gib ? start : four_gib);
	}
}
