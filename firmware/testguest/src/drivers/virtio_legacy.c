#include "virtio_legacy.h"
#include "../arch/x86.h"
#include "../lib/string.h"
#include "../platform/lapic.h"

static void barrier(void) { __asm__ volatile("" ::: "memory"); }

uint8_t virtio_legacy_status(const struct virtio_legacy *v) { return inb(v->io + VIRTIO_DEVICE_STATUS); }

int virtio_legacy_begin(struct virtio_legacy *v, struct pci_function *f) {
	const struct pci_bar *bar = &f->bar[0];
	if (!bar->is_io || !bar->addr) return -1;
	v->pci = f;
	v->io = (uint16_t)bar->addr;
	v->vector = 0;
	pci_enable(f);
	outb(v->io + VIRTIO_DEVICE_STATUS, 0);	/* reset */
	outb(v->io + VIRTIO_DEVICE_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	outb(v->io + VIRTIO_DEVICE_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	(void)inl(v->io + VIRTIO_HOST_FEATURES);
	outl(v->io + VIRTIO_GUEST_FEATURES, 0);
	return 0;
}

int virtio_legacy_queue(struct virtio_legacy *v, struct virtq *q, uint16_t index, int msix_entry) {
	outw(v->io + VIRTIO_QUEUE_SELECT, index);
	uint16_t size = inw(v->io + VIRTIO_QUEUE_SIZE);
	if (!size || (size & (size - 1))) return -1;
	uint32_t ring_bytes = 16u * size + 6u + 2u * size;
	uint32_t used_off = (ring_bytes + 4095) & ~4095u;
	uint32_t total = used_off + ((6u + 8u * size + 4095) & ~4095u);
	uint8_t *mem = dma_alloc(total);
	if (!mem) return -1;
	q->size = size;
	q->index = index;
	q->desc = (struct virtq_desc *)mem;
	q->avail = (volatile uint16_t *)(mem + 16u * size);
	q->used = mem + used_off;
	q->next_avail = 0;
	q->last_used = 0;
	q->mem = mem;
	q->mem_bytes = total;
	if (msix_entry >= 0) {
		uint8_t vector = irq_vector_alloc();
		if (!vector || !pci_msix_enable(v->pci, (uint16_t)msix_entry, vector, lapic_id())) return -1;
		outw(v->io + VIRTIO_MSIX_CONFIG_VECTOR, VIRTIO_MSI_NO_VECTOR);
		outw(v->io + VIRTIO_MSIX_QUEUE_VECTOR, (uint16_t)msix_entry);
		/* §4.1.4.8: the device reads back NO_VECTOR if it could not take the mapping. */
		if (inw(v->io + VIRTIO_MSIX_QUEUE_VECTOR) != (uint16_t)msix_entry) return -1;
		v->vector = vector;
	}
	outl(v->io + VIRTIO_QUEUE_PFN, (uint32_t)((uintptr_t)mem >> 12));
	return 0;
}

void virtio_legacy_driver_ok(struct virtio_legacy *v) {
	outb(v->io + VIRTIO_DEVICE_STATUS,
	     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
}

void virtq_post_writable(struct virtio_legacy *v, struct virtq *q, void *buf, uint32_t len) {
	uint16_t d = q->next_avail % q->size;
	q->desc[d].addr = (uint64_t)(uintptr_t)buf;
	q->desc[d].len = len;
	q->desc[d].flags = VIRTQ_DESC_F_WRITE;
	q->desc[d].next = 0;
	q->avail[2 + d] = d;
	barrier();	/* the descriptor and ring entry before the index (x86 keeps store order) */
	q->avail[1] = ++q->next_avail;
	barrier();
	outw(v->io + VIRTIO_QUEUE_NOTIFY, q->index);
}

int virtq_take_used(struct virtq *q, uint32_t *len) {
	uint16_t used_idx = *(volatile uint16_t *)(q->used + 2);
	if (used_idx == q->last_used) return 0;
	barrier();
	uint16_t slot = q->last_used % q->size;
	*len = *(volatile uint32_t *)(q->used + 4 + 8u * slot + 4);
	q->last_used++;
	return 1;
}

uint32_t virtio_legacy_host_features(const struct virtio_legacy *v) { return inl(v->io + VIRTIO_HOST_FEATURES); }

uint32_t virtio_legacy_negotiate(struct virtio_legacy *v, uint32_t wanted) {
	uint32_t accepted = wanted & inl(v->io + VIRTIO_HOST_FEATURES);
	outl(v->io + VIRTIO_GUEST_FEATURES, accepted);
	return accepted;
}

uint16_t virtio_legacy_config_port(const struct virtio_legacy *v) {
	uint8_t cap = pci_find_capability(v->pci, PCI_CAP_MSIX);
	int msix_on = cap && (pci_cfg_read16(v->pci, cap + 2) & 0x8000);
	return (uint16_t)(v->io + (msix_on ? 0x18 : 0x14));
}

void virtio_legacy_reset(struct virtio_legacy *v) { outb(v->io + VIRTIO_DEVICE_STATUS, 0); }

int virtio_legacy_queue_reattach(struct virtio_legacy *v, struct virtq *q) {
	if (!q->mem) return -1;
	memset(q->mem, 0, q->mem_bytes);
	q->next_avail = 0;
	q->last_used = 0;
	outw(v->io + VIRTIO_QUEUE_SELECT, q->index);
	if (inw(v->io + VIRTIO_QUEUE_SIZE) != q->size) return -1;
	outl(v->io + VIRTIO_QUEUE_PFN, (uint32_t)((uintptr_t)q->mem >> 12));
	return 0;
}

void virtq_publish(struct virtq *q, uint16_t head) {
	q->avail[2 + q->next_avail % q->size] = head;
	barrier();	/* the ring entry before the index */
	q->avail[1] = ++q->next_avail;
}

void virtq_kick(struct virtio_legacy *v, struct virtq *q) {
	/* The index store must be visible before the flag is read (a full fence: store-load order). */
	__asm__ volatile("mfence" ::: "memory");
	if (!(*(volatile uint16_t *)q->used & VIRTQ_USED_F_NO_NOTIFY)) outw(v->io + VIRTIO_QUEUE_NOTIFY, q->index);
}

int virtq_take_used_id(struct virtq *q, uint32_t *id, uint32_t *len) {
	uint16_t used_idx = *(volatile uint16_t *)(q->used + 2);
	if (used_idx == q->last_used) return 0;
	barrier();
	uint16_t slot = q->last_used % q->size;
	*id = *(volatile uint32_t *)(q->used + 4 + 8u * slot);
	*len = *(volatile uint32_t *)(q->used + 4 + 8u * slot + 4);
	q->last_used++;
	return 1;
}
