/*
 * test=pwrbtn[,delay_enable=MS][,wait_ms=20000]: the ACPI fixed power button, as an OS
 * drives it (ACPI 6.5 §4.8.1 fixed hardware, §4.8.3.1 PM1 event registers, §4.8.2.2.1
 * power button; §16.3 hand-over from legacy mode via SMI_CMD):
 *   1. write the FADT's ACPI_ENABLE value to SMI_CMD and wait for PM1_CNT.SCI_EN;
 *   2. clear PM1_STS, set PWRBTN_EN in PM1_EN;
 *   3. route the SCI (FADT SCI_INT, trigger and polarity from the MADT override) through
 *      the I/O APIC to a vector, print "TESTGUEST pwrbtn INFO armed";
 *   4. wait for the SCI (the host presses the button: SIGTERM to bhyve/tsbhyve, QMP
 *      system_powerdown to QEMU), check PWRBTN_STS, clear it by writing 1, check it reads
 *      back clear and the level-triggered line dropped (no redelivery once unmasked);
 * then the run powers off through S5 like every test.
 * delay_enable=MS waits before step 1, printing "TESTGUEST pwrbtn INFO waiting ..." first, so
 * the host can press the button while ACPI is still off (bhyve then dies by SIGTERM).
 */
#include "suite.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../drivers/driver.h"
#include "../lib/cmdline.h"
#include "../lib/print.h"
#include "../platform/acpi.h"
#include "../platform/ioapic.h"
#include "../platform/lapic.h"
#include "../platform/timer.h"

/* PM1 status/enable bits (ACPI 6.5 tables 4.16, 4.17) and PM1 control (table 4.18). */
#define PM1_PWRBTN 0x0100
#define PM1_CNT_SCI_EN 0x0001
/* FADT byte offsets (ACPI 6.5 table 5.9). */
#define FADT_ACPI_ENABLE 52
#define FADT_PM1_EVT_LEN 88

static void run(const char *options) {
	uint64_t delay_ms = optlist_get_u64(options, "delay_enable", 0);
	uint64_t wait_ms = optlist_get_u64(options, "wait_ms", 20000);
	const uint8_t *fadt = (const uint8_t *)acpi_find("FACP", 0);
	if (!check(fadt && acpi.pm1a_evt && acpi.pm1a_cnt, "fadt pm1a_evt=0x%x pm1a_cnt=0x%x sci_int=%u smi_cmd=0x%x",
		   acpi.pm1a_evt, acpi.pm1a_cnt, acpi.sci_irq, acpi.smi_cmd))
		return;
	uint8_t enable_value = fadt[FADT_ACPI_ENABLE];
	uint8_t evt_len = fadt[FADT_PM1_EVT_LEN];
	uint16_t pm1_sts = (uint16_t)acpi.pm1a_evt;
	uint16_t pm1_en = (uint16_t)(acpi.pm1a_evt + evt_len / 2);	/* §4.8.3.1: enable is the second half */
	uint16_t pm1_cnt = (uint16_t)acpi.pm1a_cnt;

	if (delay_ms) {
		print("TESTGUEST pwrbtn INFO waiting delay_enable=%lu ms with acpi off\n", delay_ms);
		timer_delay_us(delay_ms * 1000);
	}

	/* §4.8.3.2.1 / FADT SMI_CMD: SMI_CMD == 0 means the platform is always in ACPI mode. */
	if (acpi.smi_cmd && !(inw(pm1_cnt) & PM1_CNT_SCI_EN)) outb((uint16_t)acpi.smi_cmd, enable_value);
	uint64_t t0 = timer_now_ns();
	while (!(inw(pm1_cnt) & PM1_CNT_SCI_EN) && timer_now_ns() - t0 < 1000000000ULL) timer_delay_us(100);
	if (!check(inw(pm1_cnt) & PM1_CNT_SCI_EN, "acpi enabled: wrote 0x%02x to smi_cmd 0x%x, pm1_cnt=0x%04x has SCI_EN",
		   enable_value, acpi.smi_cmd, inw(pm1_cnt)))
		return;

	/* Start from a clean state: clear every status bit (write 1 to clear), enable only the button. */
	outw(pm1_sts, 0xFFFF);
	outw(pm1_en, PM1_PWRBTN);
	check((inw(pm1_en) & PM1_PWRBTN) && !(inw(pm1_sts) & PM1_PWRBTN), "pm1_en=0x%04x has PWRBTN_EN, pm1_sts=0x%04x clear",
	      inw(pm1_en), inw(pm1_sts));

	uint16_t sci = acpi.sci_irq;
	uint32_t gsi = sci < 16 ? acpi.isa_gsi[sci] : sci;
	int pin = (int)(gsi - acpi.ioapic_gsi_base);
	uint32_t flags = sci < 16 ? ioapic_isa_flags(acpi.isa_flags[sci]) : IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW;
	/* ACPI 6.5 §5.2.9: the SCI is a sharable, level, active-low interrupt unless an override says otherwise. */
	if (sci < 16 && !acpi.isa_flags[sci]) flags = IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW;
	if (!check(pin >= 0 && pin < ioapic_pin_count(), "sci irq %u -> gsi %u (ioapic pin %d) %s %s", sci, gsi, pin,
		   flags & IOAPIC_LEVEL ? "level" : "edge", flags & IOAPIC_ACTIVE_LOW ? "active-low" : "active-high"))
		return;
	uint8_t vector = irq_vector_alloc();
	if (flags & IOAPIC_LEVEL) interrupt_mask_pin[vector] = (uint8_t)(pin + 1);
	uint32_t seen = interrupt_count[vector];
	ioapic_route(pin, vector, lapic_id(), flags);
	print("TESTGUEST pwrbtn INFO armed vector=0x%x wait_ms=%lu\n", vector, wait_ms);

	t0 = timer_now_ns();
	int got = irq_wait(vector, seen, wait_ms * 1000000ULL);
	uint64_t ms = (timer_now_ns() - t0) / 1000000;
	uint16_t sts = inw(pm1_sts);
	if (!check(got, "sci arrived on vector 0x%x after %lu ms (count %u -> %u)", vector, ms, seen, interrupt_count[vector])) {
		ioapic_mask(pin);
		return;
	}
	check(sts & PM1_PWRBTN, "pm1_sts=0x%04x has PWRBTN_STS", sts);
	outw(pm1_sts, PM1_PWRBTN);	/* write 1 to clear */
	sts = inw(pm1_sts);
	check(!(sts & PM1_PWRBTN), "PWRBTN_STS cleared by writing 1: pm1_sts=0x%04x", sts);

	/* The line must be low now: unmasked, a level pin still asserted would deliver again at once. */
	seen = interrupt_count[vector];
	ioapic_route(pin, vector, lapic_id(), flags);
	timer_delay_us(100000);
	uint32_t low = ioapic_read((uint8_t)(0x10 + 2 * pin));
	check(interrupt_count[vector] == seen && !(low & (1u << 14)),
	      "sci line dropped: no redelivery in 100 ms after unmasking (count %u -> %u, remote irr %u)", seen,
	      interrupt_count[vector], (low >> 14) & 1);
	ioapic_mask(pin);
	interrupt_mask_pin[vector] = 0;
	outw(pm1_en, 0);
	print("TESTGUEST pwrbtn INFO powering off through s5\n");
}

const struct suite suite_pwrbtn = { "pwrbtn", "ACPI power button: SCI through the I/O APIC, PWRBTN_STS (delay_enable=ms)", run };
