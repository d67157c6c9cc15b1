#include "rtc.h"
#include "../arch/x86.h"

uint8_t cmos_read(uint8_t index) {
	outb(0x70, index & 0x7F);
	return inb(0x71);
}

void cmos_write(uint8_t index, uint8_t value) {
	outb(0x70, index & 0x7F);
	outb(0x71, value);
}

static unsigned from_bcd(uint8_t v, int bcd) { return bcd ? (v >> 4) * 10u + (v & 0xF) : v; }

static void read_raw(uint8_t r[7], uint8_t century_reg) {
	/* Status A bit 7 (UIP): the time registers are being updated, wait it out. */
	for (int i = 0; i < 100000 && (cmos_read(0x0A) & 0x80); i++) cpu_relax();
	r[0] = cmos_read(0x00);
	r[1] = cmos_read(0x02);
	r[2] = cmos_read(0x04);
	r[3] = cmos_read(0x07);
	r[4] = cmos_read(0x08);
	r[5] = cmos_read(0x09);
	r[6] = century_reg ? cmos_read(century_reg) : 0;
}

int rtc_read_time(struct rtc_time *t, uint8_t century_reg) {
	uint8_t a[7], b[7];
	/* Read until two reads agree, so we never mix values from either side of an update. */
	int tries = 0;
	do {
		read_raw(a, century_reg);
		read_raw(b, century_reg);
	} while (++tries < 10 && (a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] != b[3] ||
				  a[4] != b[4] || a[5] != b[5] || a[6] != b[6]));
	uint8_t status_b = cmos_read(0x0B);
	int bcd = !(status_b & 0x04);		/* bit 2: binary mode */
	int hour24 = status_b & 0x02;		/* bit 1: 24-hour mode */
	t->second = from_bcd(b[0], bcd);
	t->minute = from_bcd(b[1], bcd);
	unsigned hour = from_bcd(b[2] & 0x7F, bcd);
	if (!hour24) hour = (hour % 12) + ((b[2] & 0x80) ? 12 : 0);
	t->hour = hour;
	t->day = from_bcd(b[3], bcd);
	t->month = from_bcd(b[4], bcd);
	unsigned century = century_reg ? from_bcd(b[6], bcd) : 20;
	t->year = century * 100 + from_bcd(b[5], bcd);
	return tries < 10;
}
