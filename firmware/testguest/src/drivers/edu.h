/*
 * QEMU's "edu" teaching device (QEMU docs/specs/edu.rst), PCI 1234:11e8: one 1 MiB MMIO
 * BAR with an ID register, a liveness register, an interrupt raise/acknowledge pair and a
 * small DMA engine with a 4 KiB buffer. Used to exercise MSI and DMA under QEMU with
 * `-device edu`; bhyve has no such device.
 */
#ifndef TESTGUEST_EDU_H
#define TESTGUEST_EDU_H
#include <stdint.h>
#include "driver.h"

enum edu_reg {
	EDU_ID = 0x00,		/* 0xRRrr00ed */
	EDU_LIVENESS = 0x04,	/* reads back the bitwise inverse of what was written */
	EDU_IRQ_STATUS = 0x24,
	EDU_IRQ_RAISE = 0x60,	/* ORs the value into the status and raises the interrupt */
	EDU_IRQ_ACK = 0x64,	/* clears these status bits; the line drops at zero */
	EDU_DMA_SRC = 0x80,
	EDU_DMA_DST = 0x88,
	EDU_DMA_COUNT = 0x90,
	EDU_DMA_CMD = 0x98,
};
#define EDU_DMA_START 0x1
#define EDU_DMA_TO_RAM 0x2	/* direction: device buffer -> RAM */
#define EDU_DMA_IRQ 0x4		/* raise status 0x100 when done */
#define EDU_DMA_IRQ_STATUS 0x100
#define EDU_BUFFER 0x40000	/* device-side address of the 4 KiB DMA buffer */
#define EDU_DMA_LIMIT (1u << 28)	/* default dma_mask: 28 address bits */

struct edu {
	uintptr_t mmio;
	uint32_t id;
};

extern const struct pci_driver edu_driver;
uint32_t edu_read(const struct edu *e, enum edu_reg reg);
void edu_write(const struct edu *e, enum edu_reg reg, uint32_t v);
void edu_write64(const struct edu *e, enum edu_reg reg, uint64_t v);
#endif
