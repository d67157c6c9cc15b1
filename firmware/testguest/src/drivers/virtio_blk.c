/*
 * virtio-blk driver (see virtio_blk.h). Bring-up follows virtio 1.2 §3.1.1 for a legacy
 * device: reset, ACKNOWLEDGE | DRIVER, features, queue PFN, interrupts, DRIVER_OK.
 *
 * Interrupt modes, as the device offers them (bhyve: MSI-X, or MSI with virtio_msix=false;
 * QEMU: MSI-X, or INTx with vectors=0):
 *   MSI-X  queue 0 -> table entry 0 (VIRTIO_MSI_QUEUE_VECTOR), config changes unrouted;
 *   MSI    one message, no vector registers (the config area stays at 0x14);
 *   INTx   level, active low, through an I/O APIC input found by trying: every candidate
 *          input (the interrupt line register, 16-31) gets its own vector, one request is
 *          made, and the input that fired is kept. Ring 0 masks the input on delivery; ring 3
 *          reads ISR (which lowers the line, §4.1.4.5) and unmasks it.
 */
#include "virtio_blk.h"
#include "../arch/trap.h"
#include "../arch/x86.h"
#include "../lib/string.h"
#include "../platform/ioapic.h"
#include "../platform/lapic.h"
#include "../platform/timer.h"

#define MAX_DEVICES 4
#define MAX_SLOTS 32
#define INTX_FIRST_CANDIDATE 16
#define INTX_MAX_PINS 32

static struct virtio_blk devices[MAX_DEVICES];
static int device_count;
/* Vectors are never given back, so each device keeps the ones it took. */
static uint8_t msi_vectors[MAX_DEVICES];
static uint8_t intx_vectors[MAX_DEVICES][INTX_MAX_PINS];

const char *vblk_irq_name(enum vblk_irq irq) {
	switch (irq) {
	case VBLK_IRQ_MSIX: return "msix";
	case VBLK_IRQ_MSI: return "msi";
	case VBLK_IRQ_INTX: return "intx";
	default: return "poll";
	}
}

static int device_index(const struct virtio_blk *b) { return (int)(b - devices); }

static void read_config(struct virtio_blk *b) {
	uint16_t c = virtio_legacy_config_port(&b->t);
	b->capacity = (uint64_t)inl(c + 0) | (uint64_t)inl(c + 4) << 32;
	b->size_max = (b->features & (1u << VIRTIO_BLK_F_SIZE_MAX)) ? inl(c + 8) : 0;
	b->seg_max = (b->features & (1u << VIRTIO_BLK_F_SEG_MAX)) ? inl(c + 12) : 0;
	if (b->features & (1u << VIRTIO_BLK_F_GEOMETRY)) {
		b->cylinders = inw(c + 16);
		b->heads = inb(c + 18);
		b->sectors_per_track = inb(c + 19);
	}
	b->blk_size = (b->features & (1u << VIRTIO_BLK_F_BLK_SIZE)) ? inl(c + 20) : 0;
	if (b->features & (1u << VIRTIO_BLK_F_TOPOLOGY)) {
		b->physical_block_exp = inb(c + 24);
		b->alignment_offset = inb(c + 25);
		b->min_io_size = inw(c + 26);
		b->opt_io_size = inl(c + 28);
	}
	b->writeback = inb(c + 32);
	if (b->features & (1u << VIRTIO_BLK_F_DISCARD)) {
		b->max_discard_sectors = inl(c + 36);
		b->max_discard_seg = inl(c + 40);
		b->discard_sector_alignment = inl(c + 44);
	}
	if (b->features & (1u << VIRTIO_BLK_F_WRITE_ZEROES)) {
		b->max_write_zeroes_sectors = inl(c + 48);
		b->max_write_zeroes_seg = inl(c + 52);
		b->write_zeroes_may_unmap = inb(c + 56);
	}
}

/* Turns off every interrupt path of the function before a mode is chosen. */
static void interrupts_off(struct virtio_blk *b) {
	struct pci_function *f = b->t.pci;
	pci_msix_disable(f);
	pci_msi_disable(f);
	if (b->intx_pin >= 0) ioapic_mask(b->intx_pin);
	for (int p = 0; p < INTX_MAX_PINS; p++) {
		uint8_t v = intx_vectors[device_index(b)][p];
		if (v) { ioapic_mask(p); interrupt_mask_pin[v] = 0; }
	}
}

static int intx_candidate(const struct virtio_blk *b, int pin) {
	return pin >= INTX_FIRST_CANDIDATE || pin == b->t.pci->irq_line;
}

/*
 * Finds the I/O APIC input of INTx: routes every candidate to its own vector, makes one
 * GET_ID request, and keeps the input whose vector fired.
 */
static int intx_find_pin(struct virtio_blk *b) {
	int idx = device_index(b);
	int pins = ioapic_pin_count();
	if (pins > INTX_MAX_PINS) pins = INTX_MAX_PINS;
	uint32_t before[INTX_MAX_PINS];
	b->irq_flags = IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW;	/* PCI INTx (PCI 3.0 §2.2.6) */
	for (int p = 0; p < pins; p++) {
		if (!intx_candidate(b, p)) continue;
		if (!intx_vectors[idx][p] && !(intx_vectors[idx][p] = irq_vector_alloc())) return -1;
		uint8_t v = intx_vectors[idx][p];
		interrupt_mask_pin[v] = (uint8_t)(p + 1);
		before[p] = interrupt_count[v];
		ioapic_route(p, v, lapic_id(), b->irq_flags);
	}
	static uint8_t id[VIRTIO_BLK_ID_BYTES] __attribute__((aligned(64)));
	b->irq = VBLK_IRQ_POLL;	/* while searching, vblk_request must not wait for an interrupt */
	int st = vblk_request(b, VIRTIO_BLK_T_GET_ID, 0, id, sizeof id, 1000000000ULL, 0);
	b->irq = VBLK_IRQ_INTX;
	int found = -1;
	uint64_t t0 = timer_now_ns();
	while (found < 0 && st != VBLK_TIMEOUT && timer_now_ns() - t0 < 1000000000ULL) {
		for (int p = 0; p < pins && found < 0; p++)
			if (intx_candidate(b, p) && interrupt_count[intx_vectors[idx][p]] != before[p]) found = p;
		cpu_relax();
	}
	for (int p = 0; p < pins; p++)
		if (intx_candidate(b, p) && p != found) {
			ioapic_mask(p);
			interrupt_mask_pin[intx_vectors[idx][p]] = 0;
		}
	if (found < 0) return -1;
	b->intx_pin = found;
	b->vector = intx_vectors[idx][found];
	(void)inb(b->t.io + VIRTIO_ISR_STATUS);	/* lowers the line */
	ioapic_route(found, b->vector, lapic_id(), b->irq_flags);
	return 0;
}

static int setup_interrupts(struct virtio_blk *b, enum vblk_irq want) {
	struct pci_function *f = b->t.pci;
	int idx = device_index(b);
	if (want == VBLK_IRQ_MSIX && pci_msix_table_size(f) == 0) want = VBLK_IRQ_MSI;
	if (want == VBLK_IRQ_MSI && !pci_find_capability(f, PCI_CAP_MSI)) want = VBLK_IRQ_INTX;
	b->irq = want;
	if (want == VBLK_IRQ_POLL || want == VBLK_IRQ_INTX) {
		pci_cfg_write16(f, PCI_COMMAND, pci_cfg_read16(f, PCI_COMMAND) & ~PCI_COMMAND_INTX_DISABLE);
		return 0;	/* INTx's input is found after DRIVER_OK */
	}
	if (!msi_vectors[idx] && !(msi_vectors[idx] = irq_vector_alloc())) return -1;
	b->vector = msi_vectors[idx];
	if (want == VBLK_IRQ_MSIX) {
		if (!pci_msix_enable(f, 0, b->vector, lapic_id())) return -1;
		outw(b->t.io + VIRTIO_MSIX_CONFIG_VECTOR, VIRTIO_MSI_NO_VECTOR);
		outw(b->t.io + VIRTIO_QUEUE_SELECT, 0);
		outw(b->t.io + VIRTIO_MSIX_QUEUE_VECTOR, 0);
		/* §4.1.4.8: reads back NO_VECTOR when the device could not take the mapping. */
		return inw(b->t.io + VIRTIO_MSIX_QUEUE_VECTOR) == 0 ? 0 : -1;
	}
	return pci_msi_enable(f, b->vector, lapic_id()) ? 0 : -1;
}

int vblk_setup(struct virtio_blk *b, enum vblk_irq irq) {
	interrupts_off(b);
	b->intx_pin = -1;
	virtio_legacy_reset(&b->t);
	outb(b->t.io + VIRTIO_DEVICE_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	outb(b->t.io + VIRTIO_DEVICE_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	b->host_features = virtio_legacy_host_features(&b->t);
	uint32_t wanted = 1u << VIRTIO_BLK_F_SIZE_MAX | 1u << VIRTIO_BLK_F_SEG_MAX | 1u << VIRTIO_BLK_F_GEOMETRY |
			  1u << VIRTIO_BLK_F_RO | 1u << VIRTIO_BLK_F_BLK_SIZE | 1u << VIRTIO_BLK_F_FLUSH |
			  1u << VIRTIO_BLK_F_TOPOLOGY | 1u << VIRTIO_BLK_F_DISCARD | 1u << VIRTIO_BLK_F_WRITE_ZEROES |
			  1u << VIRTIO_F_RING_INDIRECT_DESC;
	b->features = virtio_legacy_negotiate(&b->t, wanted);
	if (b->q.mem ? virtio_legacy_queue_reattach(&b->t, &b->q) : virtio_legacy_queue(&b->t, &b->q, 0, -1)) goto failed;
	if (setup_interrupts(b, irq)) goto failed;
	read_config(b);
	b->slots = b->q.size / 4 < MAX_SLOTS ? b->q.size / 4 : MAX_SLOTS;
	if (b->slots < 1) goto failed;
	b->desc_per_slot = b->q.size / b->slots;
	if (b->irq == VBLK_IRQ_POLL) b->q.avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	virtio_legacy_driver_ok(&b->t);
	if (b->irq == VBLK_IRQ_INTX && intx_find_pin(b)) return -1;
	return 0;
failed:
	outb(b->t.io + VIRTIO_DEVICE_STATUS, VIRTIO_STATUS_FAILED);
	return -1;
}

int vblk_submit(struct virtio_blk *b, int slot, uint32_t type, uint64_t sector, void *data, uint32_t len) {
	if (slot < 0 || slot >= b->slots) return -1;
	uint16_t first = vblk_slot_desc(b, slot), d = first;
	uint16_t last = (uint16_t)(first + b->desc_per_slot - 1);
	struct virtq_desc *desc = b->q.desc;
	b->headers[slot].type = type;
	b->headers[slot].reserved = 0;
	b->headers[slot].sector = sector;
	b->status[slot] = VIRTIO_BLK_S_PENDING;
	desc[d] = (struct virtq_desc){ (uint64_t)(uintptr_t)&b->headers[slot], sizeof b->headers[slot], VIRTQ_DESC_F_NEXT,
				       (uint16_t)(d + 1) };
	d++;
	uint16_t data_flags = VIRTQ_DESC_F_NEXT;
	if (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID) data_flags |= VIRTQ_DESC_F_WRITE;
	uint32_t piece_max = b->size_max ? b->size_max : len;
	uint32_t pieces = 0;
	for (uint32_t off = 0; off < len; pieces++) {
		uint32_t n = len - off < piece_max ? len - off : piece_max;
		if (d == last || (b->seg_max && pieces == b->seg_max)) return -1;	/* too many pieces for the slot */
		desc[d] = (struct virtq_desc){ (uint64_t)(uintptr_t)data + off, n, data_flags, (uint16_t)(d + 1) };
		d++;
		off += n;
	}
	desc[d] = (struct virtq_desc){ (uint64_t)(uintptr_t)&b->status[slot], 1, VIRTQ_DESC_F_WRITE, 0 };
	virtq_publish(&b->q, first);
	return 0;
}

void vblk_kick(struct virtio_blk *b) { virtq_kick(&b->t, &b->q); }

int vblk_reap(struct virtio_blk *b) {
	uint32_t id, len;
	if (!virtq_take_used_id(&b->q, &id, &len)) return -1;
	/* A head that is not a slot's first descriptor is the device's mistake; report it as slot 0's. */
	if (id % (uint32_t)b->desc_per_slot || id / (uint32_t)b->desc_per_slot >= (uint32_t)b->slots) return 0;
	return (int)(id / (uint32_t)b->desc_per_slot);
}

uint32_t vblk_irq_count(const struct virtio_blk *b) { return b->vector ? interrupt_count[b->vector] : 0; }

int vblk_wait_irq(struct virtio_blk *b, uint32_t seen, uint64_t timeout_ns) {
	if (b->irq == VBLK_IRQ_POLL || !b->vector) return 0;
	int got = irq_wait(b->vector, seen, timeout_ns);
	if (b->irq == VBLK_IRQ_INTX && b->intx_pin >= 0) {
		(void)inb(b->t.io + VIRTIO_ISR_STATUS);	/* reading ISR lowers INTx */
		ioapic_route(b->intx_pin, b->vector, lapic_id(), b->irq_flags);
	}
	return got;
}

int vblk_request(struct virtio_blk *b, uint32_t type, uint64_t sector, void *data, uint32_t len, uint64_t timeout_ns,
		 int *by_irq) {
	if (b->irq == VBLK_IRQ_INTX && b->intx_pin >= 0) {
		/* Completions reaped by polling left the line up and its input masked: lower and unmask. */
		(void)inb(b->t.io + VIRTIO_ISR_STATUS);
		ioapic_route(b->intx_pin, b->vector, lapic_id(), b->irq_flags);
	}
	uint32_t seen = vblk_irq_count(b);
	if (by_irq) *by_irq = 0;
	if (vblk_submit(b, 0, type, sector, data, len)) return VBLK_TIMEOUT;
	vblk_kick(b);
	uint64_t t0 = timer_now_ns();
	for (;;) {
		if (vblk_reap(b) == 0) break;
		if (timer_now_ns() - t0 > timeout_ns) return VBLK_TIMEOUT;
		cpu_relax();
	}
	if (b->irq != VBLK_IRQ_POLL) {
		int got = vblk_wait_irq(b, seen, 1000000000ULL);
		if (by_irq) *by_irq = got;
	}
	return b->status[0];
}

static int match(const struct pci_function *f) { return f->vendor == 0x1AF4 && f->device == 0x1001; }

static int probe(struct pci_function *f) {
	if (device_count == MAX_DEVICES) return -1;
	struct virtio_blk *b = &devices[device_count];
	memset(b, 0, sizeof *b);
	b->intx_pin = -1;
	if (virtio_legacy_begin(&b->t, f) != 0) return -1;
	uint8_t *page = dma_alloc(4096);
	if (!page) return -1;
	b->headers = (struct vblk_header *)page;
	b->segments = (struct vblk_segment *)(page + 1024);
	b->status = page + 2048;
	device_count++;
	f->driver_state = b;
	/* The best interrupt the device offers; suites may choose another with vblk_setup. */
	return vblk_setup(b, VBLK_IRQ_MSIX);
}

const struct pci_driver virtio_blk_driver = { "virtio-blk", match, probe };
