/*
 * ACPI table discovery (ACPI 6.5 §5.2): RSDP -> XSDT (or RSDT) -> FADT, MADT, MCFG, HPET,
 * and the DSDT's \_S5 package. Everything found is kept in `acpi` for the drivers.
 */
#ifndef TESTGUEST_ACPI_H
#define TESTGUEST_ACPI_H
#include <stdint.h>

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	uint32_t creator_id;
	uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure (§5.2.3.2). */
struct acpi_gas {
	uint8_t space;		/* 0 = memory, 1 = system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));
#define ACPI_GAS_MEMORY 0
#define ACPI_GAS_IO 1

#define ACPI_MAX_TABLES 32
#define ACPI_MAX_CPUS 64

struct acpi_table_ref {
	uint64_t paddr;
	char signature[5];
	uint32_t length;
	int checksum_ok;
};

struct acpi_info {
	int found;
	uint64_t rsdp_paddr;
	const char *rsdp_source;	/* "start_info" or "scan" */
	uint8_t rsdp_revision;
	int rsdp_checksum_ok;
	char oem_id[7];
	int root_is_xsdt;
	uint64_t root_paddr;
	int root_checksum_ok;
	struct acpi_table_ref tables[ACPI_MAX_TABLES];
	int table_count;
	struct acpi_table_ref dsdt;

	/* FADT (§5.2.9) */
	int have_fadt;
	uint16_t sci_irq;
	uint32_t smi_cmd;
	uint32_t pm1a_evt, pm1a_cnt, pm_tmr;
	uint8_t pm_tmr_len;
	int pm_tmr_32bit;		/* flags.TMR_VAL_EXT */
	uint8_t century;
	uint16_t boot_arch;
	uint32_t fadt_flags;
	int reset_supported;		/* flags.RESET_REG_SUP */
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	int s5_found;			/* \_S5 parsed from the DSDT */
	uint8_t s5_slp_typ_a;

	/* MADT (§5.2.12) */
	int have_madt;
	uint32_t lapic_paddr;
	int cpu_count;			/* enabled processor entries */
	uint8_t apic_ids[ACPI_MAX_CPUS];
	int ioapic_count;
	uint32_t ioapic_paddr;
	uint32_t ioapic_gsi_base;
	uint8_t ioapic_id;
	uint32_t isa_gsi[16];		/* ISA IRQ -> GSI after interrupt source overrides */
	uint16_t isa_flags[16];		/* MPS INTI flags of the override, 0 = bus default */

	/* MCFG (PCI Firmware spec 3.2 §4.1.2) */
	int have_mcfg;
	uint64_t ecam_paddr;
	uint16_t ecam_segment;
	uint8_t ecam_bus_start, ecam_bus_end;

	/* HPET (IA-PC HPET spec 1.0a §3.2.4) */
	int have_hpet;
	uint64_t hpet_paddr;
	uint32_t hpet_block_id;
};

extern struct acpi_info acpi;

/* Finds the RSDP (the hint first, then the BIOS areas) and parses the tables. Returns found. */
int acpi_discover(uint64_t rsdp_hint);
/* The BIOS-area search alone (EBDA, then 0xE0000-0xFFFFF); 0 when nothing is there. */
uint64_t acpi_rsdp_scan(void);
/* The index-th table with this signature, or NULL. */
const struct acpi_header *acpi_find(const char *signature, int index);
/* Sum of all bytes mod 256 is zero. */
int acpi_checksum_ok(const void *p, uint32_t len);
#endif
