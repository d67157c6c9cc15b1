/*
 * test=rtc: CMOS memory-size bytes against the PVH memory map, a sane and ticking clock.
 * bhyve (amd64/rtc.c) and QEMU both store (lowmem - 16 MiB) / 64 KiB at 0x34/0x35 and
 * highmem / 64 KiB at 0x5B-0x5D.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../lib/cmdline.h"
#include "../platform/acpi.h"
#include "../platform/rtc.h"
#include "../platform/start_info.h"
#include "../platform/timer.h"

static void check_memory_bytes(void) {
	uint64_t low, high;
	memmap_ram_split(&low, &high);
	uint32_t cmos_low = cmos_read(0x34) | (uint32_t)cmos_read(0x35) << 8;
	uint32_t cmos_high = cmos_read(0x5B) | (uint32_t)cmos_read(0x5C) << 8 | (uint32_t)cmos_read(0x5D) << 16;
	uint64_t want_low = low > (16u << 20) ? (low - (16u << 20)) >> 16 : 0;
	if (want_low > 0xFFFF) want_low = 0xFFFF;
	check(cmos_low == want_low, "cmos 0x34/0x35=0x%04x (lowmem_end 0x%lx -> 0x%04lx)", cmos_low, low, want_low);
	check(cmos_high == (high >> 16), "cmos 0x5b-0x5d=0x%06x (highmem 0x%lx -> 0x%06lx)", cmos_high, high, high >> 16);
}

static void run(const char *options) {
	(void)options;
	check_memory_bytes();
	uint8_t d = cmos_read(0x0D);
	check(d & 0x80, "status D valid RAM and time (VRT) reg=0x%02x", d);
	uint8_t century_reg = acpi.century;
	if (century_reg) {
		uint8_t c = cmos_read(century_reg);
		check(c == 0x20 || c == 20, "century register 0x%02x = 0x%02x", century_reg, c);
	}
	struct rtc_time t;
	int stable = rtc_read_time(&t, century_reg);
	check(stable && t.year >= 2020 && t.year < 2100 && t.month >= 1 && t.month <= 12 && t.day >= 1 && t.day <= 31 &&
	      t.hour < 24 && t.minute < 60 && t.second < 60,
	      "time %04u-%02u-%02uT%02u:%02u:%02u status_b=0x%02x", t.year, t.month, t.day, t.hour, t.minute, t.second,
	      cmos_read(0x0B));
	/* The seconds register must advance within about 1.2 s of wall time. */
	uint64_t start = timer_now_ns();
	struct rtc_time u = t;
	while (u.second == t.second && timer_now_ns() - start < 1200000000ULL) rtc_read_time(&u, century_reg);
	check(u.second != t.second, "clock ticks: second %u -> %u after %lu ms", t.second, u.second,
	      (timer_now_ns() - start) / 1000000);
}

const struct suite suite_rtc = { "rtc", "CMOS memory bytes, clock sanity and ticking", run };
