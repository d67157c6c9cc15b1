#include "fwcfg.h"
#include "../arch/x86.h"
#include "../lib/string.h"

void fwcfg_read(uint16_t selector, void *buf, size_t len) {
	uint8_t *p = buf;
	outw(FWCFG_SELECTOR_PORT, selector);
	for (size_t i = 0; i < len; i++) p[i] = inb(FWCFG_DATA_PORT);
}

int fwcfg_present(void) {
	char sig[4];
	fwcfg_read(FWCFG_SIGNATURE, sig, 4);
	return memcmp(sig, "QEMU", 4) == 0;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

void fwcfg_each_file(void (*fn)(const struct fwcfg_file *f, void *ctx), void *ctx) {
	uint8_t raw[64];
	outw(FWCFG_SELECTOR_PORT, FWCFG_FILE_DIR);
	for (int i = 0; i < 4; i++) raw[i] = inb(FWCFG_DATA_PORT);
	uint32_t count = be32(raw);
	if (count > 4096) return;	/* an absent device reads all ones */
	for (uint32_t n = 0; n < count; n++) {
		/* The selector stays put, so consecutive reads walk the directory. */
		for (int i = 0; i < 64; i++) raw[i] = inb(FWCFG_DATA_PORT);
		struct fwcfg_file f;
		f.size = be32(raw);
		f.select = (uint16_t)(raw[4] << 8 | raw[5]);
		memcpy(f.name, raw + 8, 56);
		f.name[55] = '\0';
		fn(&f, ctx);
	}
}

struct find_ctx {
	const char *name;
	struct fwcfg_file *out;
	int found;
};

static void match(const struct fwcfg_file *f, void *ctx) {
	struct find_ctx *c = ctx;
	if (!c->found && strcmp(f->name, c->name) == 0) { *c->out = *f; c->found = 1; }
}

int fwcfg_find_file(const char *name, struct fwcfg_file *out) {
	struct find_ctx c = { name, out, 0 };
	fwcfg_each_file(match, &c);
	return c.found;
}
