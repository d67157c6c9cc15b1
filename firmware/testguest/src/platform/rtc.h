/*
 * MC146818-style RTC and CMOS RAM behind ports 0x70 (index; bit 7 masks NMI) and 0x71.
 * Registers 0-9 hold the time, 0x0A-0x0D the status registers; the PC BIOS convention
 * keeps memory sizes at 0x34/0x35 (RAM 16 MiB-4 GiB in 64 KiB units) and 0x5B-0x5D
 * (RAM above 4 GiB in 64 KiB units), which bhyve and QEMU both fill in.
 */
#ifndef TESTGUEST_RTC_H
#define TESTGUEST_RTC_H
#include <stdint.h>

struct rtc_time {
	unsigned year, month, day, hour, minute, second;
};

uint8_t cmos_read(uint8_t index);
void cmos_write(uint8_t index, uint8_t value);
/* Reads a consistent time (waits out an update in progress), decoding BCD and 12-hour mode. */
int rtc_read_time(struct rtc_time *t, uint8_t century_reg);
#endif
