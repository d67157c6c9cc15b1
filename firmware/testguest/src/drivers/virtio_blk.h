/*
 * virtio block device (virtio 1.2 §5.2) over the legacy PCI transport, ID 1af4:1001 as
 * bhyve's virtio-blk and QEMU's virtio-blk-pci,disable-modern=on present it.
 *
 * Requests (§5.2.6): a device-readable header {le32 type, le32 reserved, le64 sector}, the
 * data (device-writable for IN and GET_ID, device-readable otherwise; DISCARD and
 * WRITE_ZEROES carry {le64 sector, le32 num_sectors, le32 flags} segments), and a
 * device-writable status byte. Sectors are always 512 bytes, whatever blk_size says.
 *
 * Slots: request s uses descriptors [s * desc_per_slot, (s + 1) * desc_per_slot) and its own
 * header and status byte, so up to `slots` requests are in flight at once.
 */
#ifndef TESTGUEST_VIRTIO_BLK_H
#define TESTGUEST_VIRTIO_BLK_H
#include <stdint.h>
#include "virtio_legacy.h"

/* Feature bits (§5.2.3; legacy numbering is the same for these). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_WZ_UNMAP 1
#define VIRTIO_BLK_SECTOR 512u
/* The status a slot holds until the device writes it: none of OK/IOERR/UNSUPP. */
#define VIRTIO_BLK_S_PENDING 0xEE
/* vblk_request's result when no completion arrived in time. */
#define VBLK_TIMEOUT (-1)

struct vblk_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct vblk_segment {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

enum vblk_irq { VBLK_IRQ_POLL, VBLK_IRQ_MSIX, VBLK_IRQ_MSI, VBLK_IRQ_INTX };

struct virtio_blk {
	struct virtio_legacy t;
	struct virtq q;
	uint32_t host_features, features;
	/* Configuration (§5.2.4), read after interrupts are set up (the layout moves with MSI-X). */
	uint64_t capacity;
	uint32_t size_max, seg_max, blk_size;
	uint16_t cylinders;
	uint8_t heads, sectors_per_track;
	uint8_t physical_block_exp, alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint32_t max_discard_sectors, max_discard_seg, discard_sector_alignment;
	uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	/* Interrupts. */
	enum vblk_irq irq;
	uint8_t vector;		/* MSI-X/MSI vector, or the INTx vector once its pin is known */
	int intx_pin;		/* I/O APIC input of INTx, -1 before it was found */
	uint32_t irq_flags;	/* I/O APIC flags of the INTx pin */
	/* Request slots. */
	int slots, desc_per_slot;
	struct vblk_header *headers;
	volatile uint8_t *status;
	struct vblk_segment *segments;	/* one per slot for DISCARD/WRITE_ZEROES */
};

extern const struct pci_driver virtio_blk_driver;
const char *vblk_irq_name(enum vblk_irq irq);

/*
 * Resets the device and brings it up again: features, queue 0 (its memory reused), the
 * interrupt mode `irq` (falls back MSI-X -> MSI -> INTx when the device lacks one), the
 * configuration, DRIVER_OK. Returns 0 on success.
 */
int vblk_setup(struct virtio_blk *b, enum vblk_irq irq);
/* Fills slot `slot` with a request and publishes it (no notify). `len` bytes of data at `data`. */
int vblk_submit(struct virtio_blk *b, int slot, uint32_t type, uint64_t sector, void *data, uint32_t len);
void vblk_kick(struct virtio_blk *b);
/* Takes one completion; returns its slot, or -1 when none is there. */
int vblk_reap(struct virtio_blk *b);
/*
 * One request in slot 0, waited for (used ring polled) and, unless polling, its interrupt
 * too. Returns the status byte or VBLK_TIMEOUT. *by_irq (may be NULL) says whether the
 * interrupt arrived.
 */
int vblk_request(struct virtio_blk *b, uint32_t type, uint64_t sector, void *data, uint32_t len, uint64_t timeout_ns,
		 int *by_irq);
/* Waits for the interrupt after `seen` (INTx: reads ISR to drop the line and unmasks). Returns 1 if it came. */
int vblk_wait_irq(struct virtio_blk *b, uint32_t seen, uint64_t timeout_ns);
uint32_t vblk_irq_count(const struct virtio_blk *b);
/* The descriptor index of slot `slot`'s first descriptor. */
static inline uint16_t vblk_slot_desc(const struct virtio_blk *b, int slot) { return (uint16_t)(slot * b->desc_per_slot); }
#endif
