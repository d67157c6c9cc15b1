/*
 * QEMU fw_cfg, port interface (QEMU docs/specs/fw_cfg.rst): a 16-bit selector written to
 * 0x510, then bytes read from 0x511. Item 0x0000 is the signature "QEMU", 0x0005 the CPU
 * count, 0x0019 the file directory (big-endian count, then 64-byte entries).
 * bhyve offers it with lpc.fwcfg=qemu.
 */
#ifndef TESTGUEST_FWCFG_H
#define TESTGUEST_FWCFG_H
#include <stddef.h>
#include <stdint.h>

#define FWCFG_SELECTOR_PORT 0x510
#define FWCFG_DATA_PORT 0x511
#define FWCFG_SIGNATURE 0x0000
#define FWCFG_ID 0x0001
#define FWCFG_NB_CPUS 0x0005
#define FWCFG_FILE_DIR 0x0019

struct fwcfg_file {
	uint32_t size;
	uint16_t select;
	char name[56];
};

int fwcfg_present(void);
void fwcfg_read(uint16_t selector, void *buf, size_t len);
/* Looks a file up in the directory; returns 1 and fills *out when found. */
int fwcfg_find_file(const char *name, struct fwcfg_file *out);
/* Calls fn for each directory entry. */
void fwcfg_each_file(void (*fn)(const struct fwcfg_file *f, void *ctx), void *ctx);
#endif
