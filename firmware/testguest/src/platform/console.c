#include "console.h"
#include "uart.h"
#include "../arch/x86.h"

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
	while ((c = uart_getc_nowait(COM1_PORT)) < 0) cpu_relax();
	return c;
}
