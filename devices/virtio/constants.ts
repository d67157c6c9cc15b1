// Numbers shared by every virtio device: the legacy PCI register file (virtio 1.2 §4.1.4.8), device status
// bits (§2.1), transport feature bits (§6) and bhyve's PCI identity for virtio functions.

/** PCI vendor of every virtio function (§4.1.2). */
export const VIRTIO_VENDOR = 0x1af4;
/** Transitional device IDs are 0x1000 + (type - 1) for the legacy types (§4.1.2.3); subsystem ID = type. */
export const VIRTIO_TYPE_BLOCK = 2;
export const VIRTIO_DEV_BLOCK = 0x1001;

// Legacy register file in BAR0 (§4.1.4.8), byte offsets and widths.
export const VIRTIO_PCI_HOST_FEATURES = 0; // u32, read-only
export const VIRTIO_PCI_GUEST_FEATURES = 4; // u32
export const VIRTIO_PCI_QUEUE_PFN = 8; // u32: the queue's guest-physical address >> 12
export const VIRTIO_PCI_QUEUE_NUM = 12; // u16, read-only: size of the selected queue (0 = absent)
export const VIRTIO_PCI_QUEUE_SEL = 14; // u16
export const VIRTIO_PCI_QUEUE_NOTIFY = 16; // u16, write-only: queue index
export const VIRTIO_PCI_STATUS = 18; // u8
export const VIRTIO_PCI_ISR = 19; // u8, read clears
/** Present only while MSI-X is enabled (§4.1.4.8): the vector for configuration changes and per queue. */
export const VIRTIO_MSI_CONFIG_VECTOR = 20; // u16
export const VIRTIO_MSI_QUEUE_VECTOR = 22; // u16
/** Device-specific configuration starts here with MSI-X enabled, at 20 without. */
export const VIRTIO_CONFIG_OFFSET_MSIX = 24;
export const VIRTIO_CONFIG_OFFSET_NOMSIX = 20;
/** "no vector" for the MSI-X vector registers (§4.1.5.1.2). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;
/** The legacy queue address unit and ring alignment (§4.1.5.1.4.1 / §2.7.2 legacy). */
export const VIRTIO_PCI_QUEUE_ADDR_SHIFT = 12;

// ISR status bits (§4.1.4.5).
export const VIRTIO_PCI_ISR_QUEUE = 1;
export const VIRTIO_PCI_ISR_CONFIG = 2;

// Device status bits (§2.1).
export const VIRTIO_STATUS_ACKNOWLEDGE = 1;
export const VIRTIO_STATUS_DRIVER = 2;
export const VIRTIO_STATUS_DRIVER_OK = 4;
export const VIRTIO_STATUS_FEATURES_OK = 8;
export const VIRTIO_STATUS_NEEDS_RESET = 0x40;
export const VIRTIO_STATUS_FAILED = 0x80;

// Transport feature bits a legacy device can offer (§6).
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;

/** A feature bit as a mask of the (legacy, 32-bit) feature word. */
export const bit = (n: number): number => (1 << n) >>> 0;
