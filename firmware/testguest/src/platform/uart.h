/*
 * 16550 UART (PC16550D datasheet). Register offsets from the base port; polled I/O only.
 */
#ifndef TESTGUEST_UART_H
#define TESTGUEST_UART_H
#include <stdint.h>

#define COM1_PORT 0x3F8
#define COM2_PORT 0x2F8
#define COM3_PORT 0x3E8
#define COM4_PORT 0x2E8

enum uart_reg {
	UART_RBR_THR = 0,	/* receive buffer / transmit holding (DLAB=0) */
	UART_IER = 1,
	UART_IIR_FCR = 2,
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
};
#define UART_LCR_DLAB 0x80
#define UART_LCR_8N1 0x03
#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10
#define UART_LSR_DR 0x01
#define UART_LSR_THRE 0x20

/* Programs 115200 8N1 with FIFOs on; does not probe. */
void uart_init(uint16_t base);
/* True when the scratch register holds what is written (an absent port reads 0xFF). */
int uart_present(uint16_t base);
void uart_putc(uint16_t base, char c);
/* Returns -1 when no byte is waiting. */
int uart_getc_nowait(uint16_t base);
#endif
