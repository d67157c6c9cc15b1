/*
 * struct hvm_start_info from the PVH boot ABI (Xen include/public/arch-x86/hvm/start_info.h,
 * docs/misc/pvh.pandoc). Version 1 adds the memory map.
 */
#ifndef TESTGUEST_START_INFO_H
#define TESTGUEST_START_INFO_H
#include <stdint.h>

#define HVM_START_MAGIC 0x336ec578u

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;		/* version >= 1 */
	uint32_t memmap_entries;	/* version >= 1 */
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

/* Types follow the E820 numbering (1 = RAM, 2 = reserved, 3 = ACPI, 4 = NVS). */
struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};
#define MEMMAP_RAM 1

/* Filled by boot.S from %ebx. */
extern uint64_t pvh_start_info_paddr;

/* The validated start_info, or NULL when the magic is wrong. */
const struct hvm_start_info *start_info(void);
const char *start_info_cmdline(void);
/* Memory map entries (0 when version 0 or absent). */
int start_info_memmap(const struct hvm_memmap_entry **entries);
/* Installed RAM: end of low memory (bhyve's lowmem) and bytes from 4 GiB up (highmem). */
void memmap_ram_split(uint64_t *lowmem_end, uint64_t *highmem_bytes);
#endif
