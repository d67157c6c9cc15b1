#include "pages.h"
#include "start_info.h"
#include "../lib/string.h"

extern char __image_end[];

static uint64_t next, limit, region_start;

/* Keep clear of the boot data the loader placed in RAM (start_info, command line, modules). */
static uint64_t clip_end(uint64_t start, uint64_t end) {
	const struct hvm_start_info *si = start_info();
	if (!si) return end;
	uint64_t avoid[3] = { pvh_start_info_paddr, si->cmdline_paddr, si->memmap_paddr };
	for (int i = 0; i < 3; i++)
		if (avoid[i] >= start && avoid[i] < end) end = avoid[i];
	const struct hvm_modlist_entry *m = (const struct hvm_modlist_entry *)(uintptr_t)si->modlist_paddr;
	for (uint32_t i = 0; m && i < si->nr_modules; i++)
		if (m[i].paddr >= start && m[i].paddr < end) end = m[i].paddr;
	return end;
}

void pages_init(void) {
	const struct hvm_memmap_entry *e;
	int n = start_info_memmap(&e);
	uint64_t floor = ((uint64_t)(uintptr_t)__image_end + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
	uint64_t best_start = 0, best_end = 0;
	for (int i = 0; i < n; i++) {
		if (e[i].type != MEMMAP_RAM) continue;
		uint64_t start = e[i].addr, end = e[i].addr + e[i].size;
		if (end > (1ULL << 32)) end = 1ULL << 32;	/* only the identity-mapped 4 GiB */
		if (start < floor) start = floor;
		start = (start + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
		if (start >= end) continue;
		end = clip_end(start, end) & ~(uint64_t)(PAGE_SIZE - 1);
		if (end > start && end - start > best_end - best_start) { best_start = start; best_end = end; }
	}
	region_start = next = best_start;
	limit = best_end;
}

void *pages_alloc(uint64_t count, uint64_t align_pages) {
	uint64_t align = (align_pages ? align_pages : 1) * PAGE_SIZE;
	uint64_t base = (next + align - 1) & ~(align - 1);
	if (!limit || base + count * PAGE_SIZE > limit) return 0;
	next = base + count * PAGE_SIZE;
	memset((void *)(uintptr_t)base, 0, count * PAGE_SIZE);
	return (void *)(uintptr_t)base;
}

uint64_t pages_free_bytes(void) { return limit - next; }
uint64_t pages_region_start(void) { return region_start; }
