// PCI configuration-space register offsets and bits (PCI Local Bus 3.0 §6, PCI Express Base §7) used by the bus
// and device models.
export const PCIR_VENDOR = 0x00;
export const PCIR_DEVICE = 0x02;
export const PCIR_COMMAND = 0x04;
export const PCIR_STATUS = 0x06;
export const PCIR_REVID = 0x08;
export const PCIR_PROGIF = 0x09;
export const PCIR_SUBCLASS = 0x0a;
export const PCIR_CLASS = 0x0b;
export const PCIR_CACHELNSZ = 0x0c;
export const PCIR_LATTIMER = 0x0d;
export const PCIR_HDRTYPE = 0x0e;
export const PCIR_BAR0 = 0x10;
export const PCIR_SUBVEND_0 = 0x2c;
export const PCIR_SUBDEV_0 = 0x2e;
export const PCIR_BIOS = 0x30;
export const PCIR_CAP_PTR = 0x34;
export const PCIR_INTLINE = 0x3c;
export const PCIR_INTPIN = 0x3d;

export const PCIM_CMD_PORTEN = 0x0001;
export const PCIM_CMD_MEMEN = 0x0002;
export const PCIM_CMD_BUSMASTEREN = 0x0004;
export const PCIM_CMD_INTxDIS = 0x0400;
export const PCIM_STATUS_INTxSTATE = 0x0008;
export const PCIM_STATUS_CAPPRESENT = 0x0010;
export const PCIM_MFDEV = 0x80;

export const PCIM_BAR_IO_SPACE = 0x1;
export const PCIM_BAR_MEM_64 = 0x4;
export const PCIM_BAR_MEM_PREFETCH = 0x8;
export const PCIM_BIOS_ENABLE = 0x1;

export const PCIY_MSI = 0x05;
export const PCIY_EXPRESS = 0x10;
export const PCIY_MSIX = 0x11;

/** MSI message control bits (PCI 3.0 §6.8.1.3). */
export const PCIM_MSICTRL_MSI_ENABLE = 0x0001;
export const PCIM_MSICTRL_MMC_MASK = 0x000e;
export const PCIM_MSICTRL_MME_MASK = 0x0070;
export const PCIM_MSICTRL_64BIT = 0x0080;

/** MSI-X message control bits (PCI 3.0 §6.8.2.3). */
export const PCIM_MSIXCTRL_MSIX_ENABLE = 0x8000;
export const PCIM_MSIXCTRL_FUNCTION_MASK = 0x4000;
export const MSIX_TABLE_ENTRY_SIZE = 16;
export const PCIM_MSIX_VCTRL_MASK = 0x1;

/** Class codes used by the built-in devices. */
export const PCIC_STORAGE = 0x01;
export const PCIC_NETWORK = 0x02;
export const PCIC_DISPLAY = 0x03;
export const PCIC_SIMPLECOMM = 0x07;
export const PCIC_BRIDGE = 0x06;
export const PCIS_BRIDGE_HOST = 0x00;
export const PCIS_BRIDGE_ISA = 0x01;
export const PCIC_SERIALBUS = 0x0c;
export const PCIC_CRYPTO = 0x10;
