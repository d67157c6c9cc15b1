/*
 * The interactive shell. Commands are one word plus arguments; output is plain text.
 * A command is one function and one line in the table below.
 */
#include "shell.h"
#include "../bench/bench.h"
#include "../lib/print.h"
#include "../lib/string.h"
#include "../platform/acpi.h"
#include "../platform/console.h"
#include "../platform/pages.h"
#include "../platform/pci.h"
#include "../platform/power.h"
#include "../platform/start_info.h"
#include "../platform/timer.h"
#include "../suites/suite.h"
#include "../drivers/driver.h"
#include "../drivers/virtio_blk.h"
#include "../lib/crc32.h"

struct command {
	const char *name;
	const char *help;
	void (*run)(const char *args);
};

static const struct command commands[];

static void cmd_help(const char *args) {
	(void)args;
	for (int i = 0; commands[i].name; i++) print("  %-10s %s\n", commands[i].name, commands[i].help);
}

static void cmd_lspci(const char *args) {
	(void)args;
	for (int i = 0; i < pci_function_count; i++) {
		const struct pci_function *f = &pci_functions[i];
		print("%02x:%02x.%x %04x:%04x class %02x%02x%02x irq pin %u line %u driver %s\n", f->bus, f->dev, f->fn,
		      f->vendor, f->device, f->class_code, f->subclass, f->prog_if, f->irq_pin, f->irq_line,
		      f->driver ? f->driver->name : "-");
		for (int b = 0; b < f->bar_count; b++)
			if (f->bar[b].size)
				print("    bar%d %s 0x%lx size 0x%lx%s\n", b, f->bar[b].is_io ? "io " : f->bar[b].is_64 ? "m64" : "m32",
				      f->bar[b].addr, f->bar[b].size, f->bar[b].prefetchable ? " prefetchable" : "");
	}
}

static void cmd_acpi(const char *args) {
	(void)args;
	if (!acpi.found) { print("no RSDP found\n"); return; }
	print("RSDP 0x%lx rev %u oem %s (%s); %s 0x%lx\n", acpi.rsdp_paddr, acpi.rsdp_revision, acpi.oem_id,
	      acpi.rsdp_source, acpi.root_is_xsdt ? "XSDT" : "RSDT", acpi.root_paddr);
	for (int i = 0; i < acpi.table_count; i++)
		print("  %s 0x%lx len %u%s\n", acpi.tables[i].signature, acpi.tables[i].paddr, acpi.tables[i].length,
		      acpi.tables[i].checksum_ok ? "" : " BAD CHECKSUM");
	print("  DSDT 0x%lx len %u; \\_S5 %s %u\n", acpi.dsdt.paddr, acpi.dsdt.length, acpi.s5_found ? "=" : "not found,",
	      acpi.s5_slp_typ_a);
	print("  PM1a_EVT 0x%x PM1a_CNT 0x%x PM_TMR 0x%x SCI %u reset %u:0x%lx=0x%x\n", acpi.pm1a_evt, acpi.pm1a_cnt,
	      acpi.pm_tmr, acpi.sci_irq, acpi.reset_reg.space, acpi.reset_reg.address, acpi.reset_value);
	print("  CPUs %d, LAPIC 0x%x, IOAPIC 0x%x, ECAM 0x%lx buses %u-%u, HPET 0x%lx\n", acpi.cpu_count, acpi.lapic_paddr,
	      acpi.ioapic_paddr, acpi.ecam_paddr, acpi.ecam_bus_start, acpi.ecam_bus_end, acpi.hpet_paddr);
}

static void cmd_mem(const char *args) {
	(void)args;
	const struct hvm_memmap_entry *e;
	int n = start_info_memmap(&e);
	for (int i = 0; i < n; i++)
		print("  0x%016lx-0x%016lx type %u\n", e[i].addr, e[i].addr + e[i].size, e[i].type);
	print("page allocator: from 0x%lx, %lu KiB free; tsc %lu Hz (%s)\n", pages_region_start(), pages_free_bytes() >> 10,
	      tsc_hz, tsc_reference);
}

static void cmd_test(const char *args) {
	const struct suite *s = suite_find(args);
	if (!s) { print("unknown suite '%s'\n", args); return; }
	suite_run(s, "");
}

static void cmd_bench(const char *args) { bench_run_spec(args); }
static void cmd_poweroff(const char *args) { (void)args; power_off(); }
static void cmd_reboot(const char *args) {
	(void)args;
	power_reset_fadt();
	power_reset_cf9();
	print("reset ignored\n");
}

/* The next space-separated word of *p (NUL-terminated in place), "" at the end. */
static char *next_word(char **p) {
	char *s = *p;
	while (*s == ' ') s++;
	char *w = s;
	while (*s && *s != ' ') s++;
	if (*s) *s++ = '\0';
	*p = s;
	return w;
}

/*
 * disk read LBA            one sector of the first virtio-blk disk: status, CRC-32, the first 64 bytes
 * disk write LBA PATTERN   the sector filled with PATTERN repeated
 */
static void cmd_disk(const char *args) {
	static char line[128];
	static uint8_t *sector;
	struct pci_function *f = driver_device("virtio-blk", 0);
	if (!f) { print("no virtio-blk disk\n"); return; }
	struct virtio_blk *b = f->driver_state;
	if (!sector) sector = dma_alloc(VIRTIO_BLK_SECTOR);
	size_t n = strlen(args) < sizeof line - 1 ? strlen(args) : sizeof line - 1;
	memcpy(line, args, n);
	line[n] = '\0';
	char *p = line;
	char *op = next_word(&p), *lba_text = next_word(&p), *pattern = next_word(&p);
	uint64_t lba;
	if (!parse_u64(lba_text, strlen(lba_text), &lba)) { print("usage: disk read LBA | disk write LBA PATTERN\n"); return; }
	if (strcmp(op, "read") == 0) {
		int st = vblk_request(b, VIRTIO_BLK_T_IN, lba, sector, VIRTIO_BLK_SECTOR, 5000000000ULL, 0);
		print("disk read lba=%lu status=%d crc32=%08x\n", lba, st, crc32_update(0, sector, VIRTIO_BLK_SECTOR));
		for (int row = 0; row < 4 && st == VIRTIO_BLK_S_OK; row++) {
			print("  %03x:", row * 16);
			for (int i = 0; i < 16; i++) print(" %02x", sector[row * 16 + i]);
			print("  ");
			for (int i = 0; i < 16; i++) {
				uint8_t c = sector[row * 16 + i];
				print("%c", c >= 0x20 && c < 0x7F ? c : '.');
			}
			print("\n");
		}
	} else if (strcmp(op, "write") == 0 && *pattern) {
		size_t len = strlen(pattern);
		for (uint32_t i = 0; i < VIRTIO_BLK_SECTOR; i++) sector[i] = (uint8_t)pattern[i % len];
		int st = vblk_request(b, VIRTIO_BLK_T_OUT, lba, sector, VIRTIO_BLK_SECTOR, 5000000000ULL, 0);
		print("disk write lba=%lu status=%d\n", lba, st);
	} else {
		print("usage: disk read LBA | disk write LBA PATTERN\n");
	}
}

static const struct command commands[] = {
	{ "help", "this list", cmd_help },
	{ "lspci", "PCI functions, BARs and bound drivers", cmd_lspci },
	{ "acpi", "ACPI tables and the FADT/MADT/MCFG/HPET facts used", cmd_acpi },
	{ "mem", "PVH memory map and allocator state", cmd_mem },
	{ "test", "test <suite>: run a test suite", cmd_test },
	{ "bench", "bench <device>[,<workload>][,k=v]: run a benchmark", cmd_bench },
	{ "disk", "disk read LBA | disk write LBA PATTERN: one sector of the virtio-blk disk", cmd_disk },
	{ "poweroff", "ACPI S5", cmd_poweroff },
	{ "reboot", "reset through the FADT reset register", cmd_reboot },
	{ 0, 0, 0 },
};

static size_t read_line(char *buf, size_t size) {
	size_t len = 0;
	for (;;) {
		int c = console_getc();
		if (c == '\r' || c == '\n') { console_write("\n"); break; }
		if ((c == 0x7F || c == 0x08) && len) { len--; console_write("\b \b"); continue; }
		if (c >= 0x20 && c < 0x7F && len + 1 < size) { buf[len++] = (char)c; console_putc((char)c); }
	}
	buf[len] = '\0';
	return len;
}

void shell_run(void) {
	char line[128];
	print("testguest shell; 'help' lists commands\n");
	for (;;) {
		print("testguest> ");
		read_line(line, sizeof line);
		char *p = line;
		while (*p == ' ') p++;
		if (!*p) continue;
		char *args = p;
		while (*args && *args != ' ') args++;
		if (*args) *args++ = '\0';
		while (*args == ' ') args++;
		int found = 0;
		for (int i = 0; commands[i].name && !found; i++)
			if (strcmp(commands[i].name, p) == 0) { commands[i].run(args); found = 1; }
		if (!found) print("unknown command '%s'; try 'help'\n", p);
	}
}
