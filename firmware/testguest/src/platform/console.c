#include "console.h"
#include "uart.h"
#include "timer.h"

void console_init(void) { uart_init(COM1_PORT); }

void console_putc(char c) {
	if (c == '\n') uart_putc(COM1_PORT, '\r');
	uart_putc(COM1_PORT, c);
}

void console_write(const char *s) {
	while (*s) console_putc(*s++);
}

int console_getc(void) {
	int c;
	/*
	 * Pause between polls without exiting: back-to-back LSR reads keep QEMU's vCPU thread
	 * holding its global lock, and its main loop then never delivers the typed input.
	 */
	while ((c = uart_getc_nowait(COM1_PORT)) < 0) timer_delay_us(500);
	return c;
}
