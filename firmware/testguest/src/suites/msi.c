/*
 * test=msi: message-signalled interrupts and DMA through the driver framework, on QEMU's
 * edu device (run QEMU with -device edu). Checks: the driver bound, the MSI capability
 * programs and an interrupt raised by the device arrives at the chosen vector, and a DMA
 * round trip RAM -> device -> RAM copies a pattern and signals completion by MSI.
 */
#include "suite.h"
#include "../drivers/edu.h"
#include "../lib/string.h"
#include "../platform/lapic.h"
#include "../arch/trap.h"

static int dma(const struct edu *e, uint64_t ram, uint32_t device_addr, uint32_t len, uint32_t cmd, uint8_t vector) {
	uint32_t seen = interrupt_count[vector];
	edu_write64(e, EDU_DMA_SRC, cmd & EDU_DMA_TO_RAM ? device_addr : ram);
	edu_write64(e, EDU_DMA_DST, cmd & EDU_DMA_TO_RAM ? ram : device_addr);
	edu_write64(e, EDU_DMA_COUNT, len);
	edu_write64(e, EDU_DMA_CMD, cmd | EDU_DMA_START | EDU_DMA_IRQ);
	int ok = irq_wait(vector, seen, 1000000000ULL);
	edu_write(e, EDU_IRQ_ACK, EDU_DMA_IRQ_STATUS);
	return ok;
}

static void run(const char *options) {
	(void)options;
	struct pci_function *f = driver_device("edu", 0);
	if (!check(f != 0, "edu device bound to its driver (QEMU -device edu)")) return;
	const struct edu *e = f->driver_state;
	edu_write(e, EDU_LIVENESS, 0x12345678);
	uint32_t inv = edu_read(e, EDU_LIVENESS);
	check(inv == ~0x12345678u, "edu %02x:%02x.%x id=0x%08x liveness 0x12345678 -> 0x%08x", f->bus, f->dev, f->fn, e->id,
	      inv);

	uint8_t vector = irq_vector_alloc();
	int enabled = pci_msi_enable(f, vector, lapic_id());
	if (!check(enabled, "msi capability at 0x%x programmed: vector 0x%x to apic %u",
		   pci_find_capability(f, PCI_CAP_MSI), vector, lapic_id())) return;
	uint32_t seen = interrupt_count[vector];
	edu_write(e, EDU_IRQ_RAISE, 0x1);
	int got = irq_wait(vector, seen, 1000000000ULL);
	uint32_t status = edu_read(e, EDU_IRQ_STATUS);
	edu_write(e, EDU_IRQ_ACK, status);
	check(got && status == 0x1, "device-raised interrupt arrived by msi (status 0x%x, count %u -> %u)", status, seen,
	      interrupt_count[vector]);

	uint8_t *out = dma_alloc(4096), *back = dma_alloc(4096);
	if (!check(out && back && (uintptr_t)back + 4096 <= EDU_DMA_LIMIT, "dma buffers at %p and %p below the 28-bit mask",
		   (void *)out, (void *)back)) return;
	/*
	 * 2 KiB, not the whole 4 KiB buffer: QEMU 7.2's edu rejects a transfer that ends exactly
	 * at the buffer's end (an off-by-one in its range check) with a fatal hardware error.
	 */
	enum { LEN = 2048 };
	for (int i = 0; i < LEN; i++) out[i] = (uint8_t)(i * 7 + 3);
	int to_dev = dma(e, (uint64_t)(uintptr_t)out, EDU_BUFFER, LEN, 0, vector);
	int to_ram = dma(e, (uint64_t)(uintptr_t)back, EDU_BUFFER, LEN, EDU_DMA_TO_RAM, vector);
	check(to_dev && to_ram && memcmp(out, back, LEN) == 0,
	      "dma round trip of %d bytes RAM -> device -> RAM, completions by msi (%d, %d)", LEN, to_dev, to_ram);
	pci_msi_disable(f);
}

const struct suite suite_msi = { "msi", "MSI delivery and DMA through the driver framework (QEMU -device edu)", run };
