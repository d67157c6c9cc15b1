/*
 * test=uart: COM1-COM4 at the PC ports. A present 16550 keeps its scratch register and
 * echoes bytes in loopback mode (MCR bit 4 wires THR to RBR, datasheet §8.6.5); in loopback
 * the modem-control outputs come back as modem-status inputs (MCR DTR/RTS/OUT1/OUT2 ->
 * MSR DSR/CTS/RI/DCD). uarts=N: COM1..COMN must be present and COMN+1..COM4 absent.
 * announce=1: afterwards, each present COM2-COM4 is set to 8N1 and sends one line, so the host can check that
 * output reaches each port's backend.
 */
#include "suite.h"
#include "../arch/x86.h"
#include "../lib/cmdline.h"
#include "../platform/uart.h"

static const uint16_t ports[4] = { COM1_PORT, COM2_PORT, COM3_PORT, COM4_PORT };

/* Returns 1 if every byte echoed; output on this port is stopped while looping back. */
static int loopback(uint16_t base, uint8_t *bad_sent, int *bad_got) {
	static const uint8_t pattern[] = { 0x00, 0x55, 0xAA, 0xFF, 'T', 'G' };
	uint8_t mcr = inb(base + UART_MCR);
	outb(base + UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_RTS);
	while (inb(base + UART_LSR) & UART_LSR_DR) inb(base + UART_RBR_THR);	/* drain */
	int ok = 1;
	for (unsigned i = 0; ok && i < sizeof pattern; i++) {
		outb(base + UART_RBR_THR, pattern[i]);
		int got = -1;
		for (int spin = 0; spin < 1000 && got < 0; spin++) got = uart_getc_nowait(base);
		if (got != pattern[i]) { ok = 0; *bad_sent = pattern[i]; *bad_got = got; }
	}
	outb(base + UART_MCR, mcr);
	return ok;
}

static int modem_lines(uint16_t base, uint8_t *msr_out) {
	uint8_t mcr = inb(base + UART_MCR);
	outb(base + UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_RTS);
	uint8_t msr = inb(base + UART_MSR);
	outb(base + UART_MCR, mcr);
	*msr_out = msr;
	/* DTR -> DSR (bit 5), RTS -> CTS (bit 4); OUT1/OUT2 off -> RI/DCD clear. */
	return (msr & 0xF0) == 0x30;
}

static void run(const char *options) {
	(void)options;
	uint64_t expected = cmdline_get_u64("uarts", 0);
	for (int i = 0; i < 4; i++) {
		uint16_t base = ports[i];
		int present = uart_present(base);
		int must = expected ? (uint64_t)i < expected : i == 0;
		if (expected && !must) {
			check(!present, "com%d at 0x%x absent as expected (scratch reads 0x%02x)", i + 1, base,
			      inb(base + UART_SCR));
			continue;
		}
		if (!present && !must) continue;
		if (!check(present, "com%d at 0x%x scratch register holds 0x5a and 0xa5", i + 1, base)) continue;
		uint8_t sent = 0;
		int got = 0;
		int ok = loopback(base, &sent, &got);
		check(ok, "com%d loopback echoes 6 bytes%s", i + 1, ok ? "" : " (mismatch)");
		if (!ok) check(0, "com%d loopback sent 0x%02x got %d", i + 1, sent, got);
		uint8_t msr = 0;
		int lines_ok = modem_lines(base, &msr);
		check(lines_ok, "com%d loopback modem lines msr=0x%02x", i + 1, msr);
		uint8_t lcr = inb(base + UART_LCR);
		check((lcr & 0x7F) == UART_LCR_8N1 || i != 0, "com%d lcr=0x%02x", i + 1, lcr);
	}
	if (!cmdline_get_u64("announce", 0)) return;
	for (int i = 1; i < 4; i++) {
		if (!uart_present(ports[i])) continue;
		uart_init(ports[i]);
		static const char hello[] = "TESTGUEST uart hello from com";
		for (const char *p = hello; *p; p++) uart_putc(ports[i], *p);
		uart_putc(ports[i], (char)('1' + i));
		uart_putc(ports[i], '\r');
		uart_putc(ports[i], '\n');
		check(1, "com%d announced itself", i + 1);
	}
}

const struct suite suite_uart = { "uart", "COM1-COM4 scratch, loopback and modem lines", run };
