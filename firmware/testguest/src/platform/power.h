/*
 * Ending the VM: ACPI S5 through PM1a_CNT (ACPI 6.5 §4.8.3.2.1, SLP_TYP bits 10-12,
 * SLP_EN bit 13), reset through the FADT reset register (§4.8.3.6), the 8042 pulse-reset
 * command 0xFE, or a triple fault.
 */
#ifndef TESTGUEST_POWER_H
#define TESTGUEST_POWER_H
#include <stdint.h>

/* bhyve's DSDT has \_S5 = {5, 0}; QEMU's has {0, 0, ...}. Used when no DSDT value was parsed. */
#define S5_SLP_TYP_BHYVE 5
#define S5_SLP_TYP_QEMU 0

struct power_method {
	uint16_t pm1a_cnt;
	uint8_t slp_typ;
	const char *slp_typ_source;	/* "dsdt", "fallback-bhyve", "fallback-qemu" */
};

/* What S5 will write, from ACPI when parsed, otherwise guessed from the PM1a_CNT port. */
struct power_method power_s5_method(void);
/* Powers off (S5); never returns. Falls back to reset, then a triple fault. Callable in ring 0 and 3. */
void power_off(void) __attribute__((noreturn));
/* Each returns only if the VMM ignored the request. */
void power_s5(void);
void power_reset_fadt(void);
void power_reset_kbc(void);
void power_reset_cf9(void);
#endif
