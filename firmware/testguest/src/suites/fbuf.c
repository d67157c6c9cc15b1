/*
 * test=fbuf[,hold=S]
 *
 * bhyve's framebuffer (FB5D:40FB): the mode block in BAR0 reads fbsize 32 MiB, the configured
 * width and height and depth 32; the guest then draws the reference pattern over the whole
 * screen through BAR1 and reads a sample of it back. Pixel (x, y) is XRGB8888
 *   red = (x ^ y) * 5, green = x + 3y, blue = 7x + y   (each & 0xFF)
 * with an 8x8 white square at (16, 16), so a host-side VNC snapshot can be compared pixel for
 * pixel (test/devices/fbuf). The suite then holds the screen for up to `hold` seconds (default 0)
 * so a VNC client can take its picture, ending early when a key arrives on the PS/2 keyboard
 * (a VNC KeyEvent through the 8042), whose first scan code it reports. It prints the frame's CRC-32 too.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../lib/cmdline.h"
#include "../lib/crc32.h"
#include "../platform/pci.h"
#include "../platform/timer.h"

static uint32_t pattern(uint32_t x, uint32_t y) {
	if (x >= 16 && x < 24 && y >= 16 && y < 24) return 0x00FFFFFF;
	uint32_t r = ((x ^ y) * 5) & 0xFF, g = (x + 3 * y) & 0xFF, b = (7 * x + y) & 0xFF;
	return r << 16 | g << 8 | b;
}

static void run(const char *options) {
	uint64_t hold = optlist_get_u64(options, "hold", 0);
	struct pci_function *f = pci_find(0xFB5D, 0x40FB, 0);
	if (!check(f != 0, "fbuf device present")) return;
	check(f->class_code == 0x03 && f->subclass == 0x00, "class %02x/%02x", f->class_code, f->subclass);
	if (!check(f->bar[0].size == 128 && f->bar[1].size == (32u << 20), "BAR0 %lu bytes at 0x%lx, BAR1 %lu MiB at 0x%lx",
		   f->bar[0].size, f->bar[0].addr, f->bar[1].size >> 20, f->bar[1].addr))
		return;
	pci_enable(f);
	volatile uint8_t *regs = (volatile uint8_t *)(uintptr_t)f->bar[0].addr;
	uint32_t fbsize = *(volatile uint32_t *)(regs + 0);
	uint16_t width = *(volatile uint16_t *)(regs + 4), height = *(volatile uint16_t *)(regs + 6);
	uint16_t depth = *(volatile uint16_t *)(regs + 8);
	check(fbsize == (32u << 20) && depth == 32, "fbsize %u, depth %u", fbsize, depth);
	if (!check(width >= 640 && height >= 480 && (uint64_t)width * height * 4 <= fbsize, "mode %ux%u", width, height)) return;
	volatile uint32_t *fb = (volatile uint32_t *)(uintptr_t)f->bar[1].addr;
	uint64_t t0 = timer_now_ns();
	for (uint32_t y = 0; y < height; y++)
		for (uint32_t x = 0; x < width; x++) fb[y * width + x] = pattern(x, y);
	uint64_t ns = timer_now_ns() - t0;
	int bad = 0;
	for (uint32_t y = 0; y < height; y += 37)
		for (uint32_t x = 0; x < width; x += 13)
			if (fb[y * width + x] != pattern(x, y)) bad++;
	check(bad == 0, "pattern drawn over %ux%u in %lu us and read back (%d sampled pixels differ)", width, height, ns / 1000, bad);
	uint32_t crc = 0;
	for (uint32_t y = 0; y < height; y++) crc = crc32_update(crc, (const void *)(uintptr_t)(fb + y * width), width * 4u);
	check(1, "frame crc32=0x%08x", crc);
	if (hold) {
		uint64_t end = timer_now_ns() + hold * 1000000000ULL;
		int key = -1;
		while (key < 0 && timer_now_ns() < end) {
			if (inb(0x64) & 1) key = inb(0x60);
			else timer_delay_us(1000);
		}
		if (key >= 0) check(1, "key scancode=0x%02x ended the hold", key);
	}
}

const struct suite suite_fbuf = { "fbuf", "bhyve framebuffer: mode block, a reference pattern drawn through BAR1", run };
