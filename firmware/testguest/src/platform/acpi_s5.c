/*
 * Just enough AML to read \_S5 from the DSDT (ACPI 6.5 §20.2):
 *   DefName    := NameOp(0x08) NameString DataRefObject
 *   DefPackage := PackageOp(0x12) PkgLength NumElements PackageElementList
 * The first element is SLP_TYPa, written to PM1a_CNT.SLP_TYP to enter S5 (§7.4.2).
 */
#include <stdint.h>

/* §20.2.4: the top two bits of the lead byte count the extra length bytes. */
static uint32_t pkg_length_size(const uint8_t *p) { return 1u + (p[0] >> 6); }

/* Decodes one integer element (ZeroOp, OneOp, BytePrefix, WordPrefix, DWordPrefix). */
static int aml_integer(const uint8_t *p, const uint8_t *end, uint32_t *value) {
	if (p >= end) return 0;
	switch (p[0]) {
	case 0x00: *value = 0; return 1;
	case 0x01: *value = 1; return 1;
	case 0x0A: if (p + 2 > end) return 0; *value = p[1]; return 1;
	case 0x0B: if (p + 3 > end) return 0; *value = p[1] | (uint32_t)p[2] << 8; return 1;
	case 0x0C: if (p + 5 > end) return 0;
		*value = p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24; return 1;
	default: return 0;
	}
}

int acpi_parse_s5(const uint8_t *aml, uint32_t len, uint8_t *slp_typ_a) {
	const uint8_t *end = aml + len;
	for (const uint8_t *p = aml + 1; p + 4 < end; p++) {
		if (p[0] != '_' || p[1] != 'S' || p[2] != '5' || p[3] != '_') continue;
		/* NameOp right before the name, or before a root prefix '\'. */
		int named = p[-1] == 0x08 || (p[-1] == '\\' && p - 2 >= aml && p[-2] == 0x08);
		const uint8_t *q = p + 4;
		if (!named || q >= end || q[0] != 0x12) continue;
		q++;
		if (q >= end) return 0;
		q += pkg_length_size(q);
		q++;	/* NumElements */
		uint32_t value;
		if (!aml_integer(q, end, &value)) return 0;
		*slp_typ_a = (uint8_t)(value & 7);
		return 1;
	}
	return 0;
}
