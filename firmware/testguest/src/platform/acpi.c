#include "acpi.h"
#include "../lib/string.h"

struct acpi_info acpi;

struct rsdp {
	char signature[8];	/* "RSD PTR " */
	uint8_t checksum;	/* over the first 20 bytes */
	char oem_id[6];
	uint8_t revision;	/* 0 = ACPI 1.0 (RSDT only), 2 = has XSDT */
	uint32_t rsdt_paddr;
	uint32_t length;
	uint64_t xsdt_paddr;
	uint8_t extended_checksum;
	uint8_t reserved[3];
} __attribute__((packed));

int acpi_checksum_ok(const void *p, uint32_t len) {
	const uint8_t *b = p;
	uint8_t sum = 0;
	for (uint32_t i = 0; i < len; i++) sum += b[i];
	return sum == 0;
}

static int rsdp_valid(const struct rsdp *r) {
	if (memcmp(r->signature, "RSD PTR ", 8) != 0) return 0;
	return acpi_checksum_ok(r, 20);
}

/* §5.2.5.1: the RSDP is on a 16-byte boundary in the first KiB of the EBDA or in 0xE0000-0xFFFFF. */
uint64_t acpi_rsdp_scan(void) {
	uint64_t ebda = (uint64_t)(*(volatile uint16_t *)0x40E) << 4;
	if (ebda >= 0x80000 && ebda < 0xA0000)
		for (uint64_t a = ebda; a < ebda + 1024; a += 16)
			if (rsdp_valid((const struct rsdp *)(uintptr_t)a)) return a;
	for (uint64_t a = 0xE0000; a < 0x100000; a += 16)
		if (rsdp_valid((const struct rsdp *)(uintptr_t)a)) return a;
	return 0;
}

static uint32_t rd32(const void *base, uint32_t off) {
	uint32_t v;
	memcpy(&v, (const uint8_t *)base + off, 4);
	return v;
}
static uint16_t rd16(const void *base, uint32_t off) {
	uint16_t v;
	memcpy(&v, (const uint8_t *)base + off, 2);
	return v;
}
static uint64_t rd64(const void *base, uint32_t off) {
	uint64_t v;
	memcpy(&v, (const uint8_t *)base + off, 8);
	return v;
}

static void record(struct acpi_table_ref *ref, uint64_t paddr) {
	const struct acpi_header *h = (const struct acpi_header *)(uintptr_t)paddr;
	ref->paddr = paddr;
	memcpy(ref->signature, h->signature, 4);
	ref->signature[4] = '\0';
	ref->length = h->length;
	ref->checksum_ok = h->length >= sizeof *h && acpi_checksum_ok(h, h->length);
}

const struct acpi_header *acpi_find(const char *signature, int index) {
	for (int i = 0; i < acpi.table_count; i++) {
		if (memcmp(acpi.tables[i].signature, signature, 4) == 0 && index-- == 0)
			return (const struct acpi_header *)(uintptr_t)acpi.tables[i].paddr;
	}
	return 0;
}

/* Returns the I/O port of a FADT block, preferring the 64-bit X_ GAS when it is I/O. */
static uint32_t fadt_port(const struct acpi_header *f, uint32_t legacy_off, uint32_t x_off) {
	if (f->length >= x_off + 12) {
		struct acpi_gas g;
		memcpy(&g, (const uint8_t *)f + x_off, sizeof g);
		if (g.space == ACPI_GAS_IO && g.address) return (uint32_t)g.address;
	}
	return rd32(f, legacy_off);
}

int acpi_parse_s5(const uint8_t *aml, uint32_t len, uint8_t *slp_typ_a);

static void parse_fadt(const struct acpi_header *f) {
	acpi.have_fadt = 1;
	/* Field offsets from ACPI 6.5 table 5.9. */
	uint64_t dsdt = rd32(f, 40);
	acpi.sci_irq = rd16(f, 46);
	acpi.smi_cmd = rd32(f, 48);
	acpi.pm1a_evt = fadt_port(f, 56, 148);
	acpi.pm1a_cnt = fadt_port(f, 64, 172);
	acpi.pm_tmr = fadt_port(f, 76, 208);
	acpi.pm_tmr_len = *((const uint8_t *)f + 91);
	acpi.century = *((const uint8_t *)f + 108);
	if (f->length >= 116) {
		acpi.boot_arch = rd16(f, 109);
		acpi.fadt_flags = rd32(f, 112);
		acpi.pm_tmr_32bit = (acpi.fadt_flags >> 8) & 1;
		acpi.reset_supported = (acpi.fadt_flags >> 10) & 1;
	}
	if (f->length >= 129) {
		memcpy(&acpi.reset_reg, (const uint8_t *)f + 116, sizeof acpi.reset_reg);
		acpi.reset_value = *((const uint8_t *)f + 128);
	}
	if (f->length >= 148 && rd64(f, 140)) dsdt = rd64(f, 140);
	if (dsdt) {
		record(&acpi.dsdt, dsdt);
		const struct acpi_header *d = (const struct acpi_header *)(uintptr_t)dsdt;
		if (acpi.dsdt.checksum_ok)
			acpi.s5_found = acpi_parse_s5((const uint8_t *)d + sizeof *d, d->length - sizeof *d,
						      &acpi.s5_slp_typ_a);
	}
}

static void parse_madt(const struct acpi_header *m) {
	acpi.have_madt = 1;
	acpi.lapic_paddr = rd32(m, 36);
	for (int i = 0; i < 16; i++) { acpi.isa_gsi[i] = (uint32_t)i; acpi.isa_flags[i] = 0; }
	const uint8_t *p = (const uint8_t *)m + 44, *end = (const uint8_t *)m + m->length;
	while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
		switch (p[0]) {
		case 0:	/* Processor Local APIC: uid, apic id, flags (bit 0 enabled) */
			if ((rd32(p, 4) & 1) && acpi.cpu_count < ACPI_MAX_CPUS) acpi.apic_ids[acpi.cpu_count++] = p[3];
			break;
		case 1:	/* I/O APIC: id, reserved, address, GSI base */
			if (acpi.ioapic_count++ == 0) {
				acpi.ioapic_id = p[2];
				acpi.ioapic_paddr = rd32(p, 4);
				acpi.ioapic_gsi_base = rd32(p, 8);
			}
			break;
		case 2:	/* Interrupt Source Override: bus, source, GSI, flags */
			if (p[3] < 16) { acpi.isa_gsi[p[3]] = rd32(p, 4); acpi.isa_flags[p[3]] = rd16(p, 8); }
			break;
		case 5:	/* Local APIC Address Override */
			acpi.lapic_paddr = (uint32_t)rd64(p, 4);
			break;
		case 9:	/* Processor Local x2APIC */
			if ((rd32(p, 8) & 1) && acpi.cpu_count < ACPI_MAX_CPUS) acpi.apic_ids[acpi.cpu_count++] = (uint8_t)rd32(p, 4);
			break;
		}
		p += p[1];
	}
}

static void parse_mcfg(const struct acpi_header *m) {
	/* 8 reserved bytes after the header, then 16-byte allocation entries; we use segment 0. */
	if (m->length < 44 + 16) return;
	acpi.have_mcfg = 1;
	acpi.ecam_paddr = rd64(m, 44);
	acpi.ecam_segment = rd16(m, 52);
	acpi.ecam_bus_start = *((const uint8_t *)m + 54);
	acpi.ecam_bus_end = *((const uint8_t *)m + 55);
}

static void parse_hpet(const struct acpi_header *h) {
	if (h->length < 56) return;
	acpi.have_hpet = 1;
	acpi.hpet_block_id = rd32(h, 36);
	acpi.hpet_paddr = rd64(h, 44);	/* the GAS at offset 40, its address field */
}

int acpi_discover(uint64_t rsdp_hint) {
	memset(&acpi, 0, sizeof acpi);
	uint64_t rsdp_paddr = 0;
	if (rsdp_hint && rsdp_valid((const struct rsdp *)(uintptr_t)rsdp_hint)) {
		rsdp_paddr = rsdp_hint;
		acpi.rsdp_source = "start_info";
	} else if ((rsdp_paddr = acpi_rsdp_scan()) != 0) {
		acpi.rsdp_source = "scan";
	} else {
		return 0;
	}
	const struct rsdp *r = (const struct rsdp *)(uintptr_t)rsdp_paddr;
	acpi.found = 1;
	acpi.rsdp_paddr = rsdp_paddr;
	acpi.rsdp_revision = r->revision;
	acpi.rsdp_checksum_ok = acpi_checksum_ok(r, 20) && (r->revision < 2 || acpi_checksum_ok(r, r->length));
	memcpy(acpi.oem_id, r->oem_id, 6);
	acpi.root_is_xsdt = r->revision >= 2 && r->xsdt_paddr != 0;
	acpi.root_paddr = acpi.root_is_xsdt ? r->xsdt_paddr : r->rsdt_paddr;

	const struct acpi_header *root = (const struct acpi_header *)(uintptr_t)acpi.root_paddr;
	acpi.root_checksum_ok = acpi_checksum_ok(root, root->length);
	uint32_t entry_size = acpi.root_is_xsdt ? 8 : 4;
	uint32_t entries = (root->length - sizeof *root) / entry_size;
	for (uint32_t i = 0; i < entries && acpi.table_count < ACPI_MAX_TABLES; i++) {
		uint32_t off = sizeof *root + i * entry_size;
		uint64_t paddr = acpi.root_is_xsdt ? rd64(root, off) : rd32(root, off);
		if (paddr) record(&acpi.tables[acpi.table_count++], paddr);
	}
	const struct acpi_header *t;
	if ((t = acpi_find("FACP", 0))) parse_fadt(t);
	if ((t = acpi_find("APIC", 0))) parse_madt(t);
	if ((t = acpi_find("MCFG", 0))) parse_mcfg(t);
	if ((t = acpi_find("HPET", 0))) parse_hpet(t);
	return 1;
}
