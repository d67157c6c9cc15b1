#include "uart.h"
#include "../arch/x86.h"

void uart_init(uint16_t base) {
	outb(base + UART_IER, 0);			/* polled: no interrupts */
	outb(base + UART_LCR, UART_LCR_DLAB);
	outb(base + UART_RBR_THR, 1);			/* divisor 1: 115200 baud from 1.8432 MHz */
	outb(base + UART_IER, 0);
	outb(base + UART_LCR, UART_LCR_8N1);
	outb(base + UART_IIR_FCR, 0x07);		/* enable and clear both FIFOs */
	outb(base + UART_MCR, UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2);
}

int uart_present(uint16_t base) {
	outb(base + UART_SCR, 0x5A);
	if (inb(base + UART_SCR) != 0x5A) return 0;
	outb(base + UART_SCR, 0xA5);
	return inb(base + UART_SCR) == 0xA5;
}

void uart_putc(uint16_t base, char c) {
	/* Bounded wait: a missing or wedged UART must not hang the guest. */
	for (int i = 0; i < 100000 && !(inb(base + UART_LSR) & UART_LSR_THRE); i++) cpu_relax();
	outb(base + UART_RBR_THR, (uint8_t)c);
}

int uart_getc_nowait(uint16_t base) {
	if (!(inb(base + UART_LSR) & UART_LSR_DR)) return -1;
	return inb(base + UART_RBR_THR);
}
