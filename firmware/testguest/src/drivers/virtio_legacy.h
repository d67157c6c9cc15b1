/*
 * Legacy ("0.9.5") virtio over PCI: the transport bhyve implements (virtio 1.2 §4.1.4.8,
 * legacy interface; virtqueue layout §2.7 with the legacy 4096-byte alignment of the used
 * ring). Registers sit in I/O BAR 0; with MSI-X enabled two vector registers follow at
 * 0x14/0x16 and the device-specific area moves from 0x14 to 0x18.
 */
#ifndef TESTGUEST_VIRTIO_LEGACY_H
#define TESTGUEST_VIRTIO_LEGACY_H
#include <stdint.h>
#include "driver.h"

enum virtio_legacy_reg {
	VIRTIO_HOST_FEATURES = 0x00,
	VIRTIO_GUEST_FEATURES = 0x04,
	VIRTIO_QUEUE_PFN = 0x08,
	VIRTIO_QUEUE_SIZE = 0x0C,
	VIRTIO_QUEUE_SELECT = 0x0E,
	VIRTIO_QUEUE_NOTIFY = 0x10,
	VIRTIO_DEVICE_STATUS = 0x12,
	VIRTIO_ISR_STATUS = 0x13,
	VIRTIO_MSIX_CONFIG_VECTOR = 0x14,
	VIRTIO_MSIX_QUEUE_VECTOR = 0x16,
};
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80
#define VIRTIO_MSI_NO_VECTOR 0xFFFF
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1
/* Transport feature bits (virtio 1.2 §6). */
#define VIRTIO_F_RING_INDIRECT_DESC 28

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq {
	uint16_t size;
	uint16_t index;
	struct virtq_desc *desc;
	volatile uint16_t *avail;	/* flags, idx, ring[size], used_event */
	volatile uint8_t *used;		/* flags, idx, ring[size] of {u32 id, u32 len}, avail_event */
	uint16_t next_avail;
	uint16_t last_used;
	void *mem;		/* the whole ring allocation, kept for re-attaching after a reset */
	uint32_t mem_bytes;
};

struct virtio_legacy {
	struct pci_function *pci;
	uint16_t io;
	uint8_t vector;		/* MSI-X vector of queue 0 (0: MSI-X not in use) */
};

/* Reset, ACKNOWLEDGE|DRIVER, accept no optional features. Returns 0 on success. */
int virtio_legacy_begin(struct virtio_legacy *v, struct pci_function *f);
/* Allocates and registers queue `index`; with `msix_entry` >= 0 routes it to a new vector by MSI-X. */
int virtio_legacy_queue(struct virtio_legacy *v, struct virtq *q, uint16_t index, int msix_entry);
void virtio_legacy_driver_ok(struct virtio_legacy *v);
/* Puts one device-writable buffer on the queue and notifies the device. */
void virtq_post_writable(struct virtio_legacy *v, struct virtq *q, void *buf, uint32_t len);
/* Returns 1 and the written length when the device returned a buffer. */
int virtq_take_used(struct virtq *q, uint32_t *len);
uint8_t virtio_legacy_status(const struct virtio_legacy *v);
/* The device's feature bits (legacy: 32 of them). */
uint32_t virtio_legacy_host_features(const struct virtio_legacy *v);
/* Accepts `wanted & offered` (legacy has no FEATURES_OK step); returns what was accepted. */
uint32_t virtio_legacy_negotiate(struct virtio_legacy *v, uint32_t wanted);
/* Port of the device-specific configuration: 0x18 while MSI-X is enabled, 0x14 otherwise (§4.1.4.8). */
uint16_t virtio_legacy_config_port(const struct virtio_legacy *v);
/* Status 0: the device drops its queues and forgets the features (§2.4). */
void virtio_legacy_reset(struct virtio_legacy *v);
/* After a reset: zeroes the rings of an already allocated queue and registers them again. */
int virtio_legacy_queue_reattach(struct virtio_legacy *v, struct virtq *q);
/* Publishes descriptor chain `head` in the avail ring (no notify). */
void virtq_publish(struct virtq *q, uint16_t head);
/* Notifies the device of queue q unless it asked not to be (VIRTQ_USED_F_NO_NOTIFY, §2.7.10). */
void virtq_kick(struct virtio_legacy *v, struct virtq *q);
/* Takes one used element: returns 1 with its chain head and written length. */
int virtq_take_used_id(struct virtq *q, uint32_t *id, uint32_t *len);
#endif
