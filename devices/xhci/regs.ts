// xHCI register layout, bit fields, TRB types and completion codes (Intel eXtensible Host Controller Interface
// rev 1.2, chapters 5 and 6) as this controller presents them.

/** The BAR0 map: capability, operational, port, extended-capability, doorbell and runtime registers. */
export const CAPLENGTH = 0x20;
export const OP_BASE = CAPLENGTH;
/** Port register sets start at operational base + 0x400 (§5.4.8), 16 bytes each. */
export const PORT_BASE = OP_BASE + 0x400;
export const PORT_STRIDE = 0x10;
/** Ports 1-4 speak USB 3, ports 5-8 USB 2 (bhyve's split of XHCI_MAX_DEVS). */
export const MAX_PORTS = 8;
export const USB3_FIRST_PORT = 1;
export const USB2_FIRST_PORT = 5;
export const PORTS_PER_PROTOCOL = 4;
/** Two Supported Protocol capabilities of 16 bytes each (§7.2). */
export const XECP_BASE = 0x500;
export const XECP_SIZE = 0x20;
export const DB_BASE = 0x800;
export const MAX_SLOTS = 64;
export const RT_BASE = 0x1000;
/** One interrupter; its register set sits at runtime base + 0x20 (§5.5.2). */
export const MAX_INTRS = 1;
export const IR0_BASE = RT_BASE + 0x20;
export const BAR_SIZE = 0x2000;
/** HCSPARAMS2.ERST Max: the event ring may have up to 2^ERST_MAX segments. */
export const ERST_MAX = 2;
export const HCIVERSION = 0x0100;

// Capability register offsets (§5.3)
export const CAP_HCSPARAMS1 = 0x04;
export const CAP_HCSPARAMS2 = 0x08;
export const CAP_HCSPARAMS3 = 0x0c;
export const CAP_HCCPARAMS1 = 0x10;
export const CAP_DBOFF = 0x14;
export const CAP_RTSOFF = 0x18;
export const CAP_HCCPARAMS2 = 0x1c;

// Operational register offsets, relative to OP_BASE (§5.4)
export const OP_USBCMD = 0x00;
export const OP_USBSTS = 0x04;
export const OP_PAGESIZE = 0x08;
export const OP_DNCTRL = 0x14;
export const OP_CRCR_LO = 0x18;
export const OP_CRCR_HI = 0x1c;
export const OP_DCBAAP_LO = 0x30;
export const OP_DCBAAP_HI = 0x34;
export const OP_CONFIG = 0x38;

export const USBCMD_RS = 1 << 0;
export const USBCMD_HCRST = 1 << 1;
export const USBCMD_INTE = 1 << 2;
export const USBCMD_HSEE = 1 << 3;
export const USBCMD_LHCRST = 1 << 7;
export const USBCMD_CSS = 1 << 8;
export const USBCMD_CRS = 1 << 9;
export const USBCMD_EWE = 1 << 10;
export const USBCMD_EU3S = 1 << 11;
/** What software may store in USBCMD; HCRST, LHCRST, CSS and CRS act and read back 0. */
export const USBCMD_STORED = USBCMD_RS | USBCMD_INTE | USBCMD_HSEE | USBCMD_EWE | USBCMD_EU3S;

export const USBSTS_HCH = 1 << 0;
export const USBSTS_HSE = 1 << 2;
export const USBSTS_EINT = 1 << 3;
export const USBSTS_PCD = 1 << 4;
export const USBSTS_SRE = 1 << 10;
export const USBSTS_CNR = 1 << 11;
export const USBSTS_HCE = 1 << 12;
export const USBSTS_RW1C = USBSTS_HSE | USBSTS_EINT | USBSTS_PCD | USBSTS_SRE;

export const CRCR_RCS = 1 << 0;
export const CRCR_CS = 1 << 1;
export const CRCR_CA = 1 << 2;
export const CRCR_CRR = 1 << 3;

// PORTSC bits (§5.4.8)
export const PORTSC_CCS = 1 << 0;
export const PORTSC_PED = 1 << 1;
export const PORTSC_OCA = 1 << 3;
export const PORTSC_PR = 1 << 4;
export const PORTSC_PLS_SHIFT = 5;
export const PORTSC_PLS_MASK = 0xf << PORTSC_PLS_SHIFT;
export const PORTSC_PP = 1 << 9;
export const PORTSC_SPEED_SHIFT = 10;
export const PORTSC_SPEED_MASK = 0xf << PORTSC_SPEED_SHIFT;
export const PORTSC_PIC_MASK = 3 << 14;
export const PORTSC_LWS = 1 << 16;
export const PORTSC_CSC = 1 << 17;
export const PORTSC_PEC = 1 << 18;
export const PORTSC_WRC = 1 << 19;
export const PORTSC_OCC = 1 << 20;
export const PORTSC_PRC = 1 << 21;
export const PORTSC_PLC = 1 << 22;
export const PORTSC_CEC = 1 << 23;
export const PORTSC_CAS = 1 << 24;
export const PORTSC_WAKE_MASK = 7 << 25;
export const PORTSC_DR = 1 << 30;
export const PORTSC_WPR = 1 << 31;
/** The change bits: write 1 to clear, and any of them becoming 1 posts a Port Status Change event (§4.19.2). */
export const PORTSC_CHANGE = PORTSC_CSC | PORTSC_PEC | PORTSC_WRC | PORTSC_OCC | PORTSC_PRC | PORTSC_PLC | PORTSC_CEC;

/** Port link states (§5.4.8 PLS). */
export const PLS_U0 = 0;
export const PLS_U3 = 3;
export const PLS_DISABLED = 4;
export const PLS_RXDETECT = 5;
export const PLS_POLLING = 7;
export const PLS_RESUME = 15;

/** Default protocol speed IDs (§7.2.2.1.1). */
export const SPEED_FULL = 1;
export const SPEED_LOW = 2;
export const SPEED_HIGH = 3;
export const SPEED_SUPER = 4;

// Interrupter registers, relative to the interrupter's base (§5.5.2)
export const IR_IMAN = 0x00;
export const IR_IMOD = 0x04;
export const IR_ERSTSZ = 0x08;
export const IR_ERSTBA_LO = 0x10;
export const IR_ERSTBA_HI = 0x14;
export const IR_ERDP_LO = 0x18;
export const IR_ERDP_HI = 0x1c;
export const IMAN_IP = 1 << 0;
export const IMAN_IE = 1 << 1;
export const ERDP_EHB = 1 << 3;

// TRB types (§6.4.6, table 6-91)
export const TRB_NORMAL = 1;
export const TRB_SETUP = 2;
export const TRB_DATA = 3;
export const TRB_STATUS = 4;
export const TRB_ISOCH = 5;
export const TRB_LINK = 6;
export const TRB_EVENT_DATA = 7;
export const TRB_NOOP = 8;
export const TRB_ENABLE_SLOT = 9;
export const TRB_DISABLE_SLOT = 10;
export const TRB_ADDRESS_DEVICE = 11;
export const TRB_CONFIGURE_EP = 12;
export const TRB_EVALUATE_CONTEXT = 13;
export const TRB_RESET_EP = 14;
export const TRB_STOP_EP = 15;
export const TRB_SET_TR_DEQUEUE = 16;
export const TRB_RESET_DEVICE = 17;
export const TRB_NOOP_CMD = 23;
export const TRB_TRANSFER_EVENT = 32;
export const TRB_COMMAND_COMPLETION = 33;
export const TRB_PORT_STATUS_CHANGE = 34;
export const TRB_HOST_CONTROLLER = 37;

// TRB control-word flags (§6.4.1)
export const TRB_CYCLE = 1 << 0;
export const TRB_TC = 1 << 1; // Link: toggle cycle
export const TRB_ENT = 1 << 1;
export const TRB_ISP = 1 << 2;
export const TRB_CH = 1 << 4;
export const TRB_IOC = 1 << 5;
export const TRB_IDT = 1 << 6;
export const TRB_BEI = 1 << 9;
export const TRB_BSR = 1 << 9; // Address Device: block SET_ADDRESS
export const TRB_DC = 1 << 9; // Configure Endpoint: deconfigure
export const TRB_DIR_IN = 1 << 16; // Data/Status stage direction

// Completion codes (§6.4.5, table 6-90)
export const CC = {
  SUCCESS: 1,
  DATA_BUFFER: 2,
  USB_TRANSACTION: 4,
  TRB: 5,
  STALL: 6,
  RESOURCE: 7,
  NO_SLOTS: 9,
  SLOT_NOT_ENABLED: 11,
  EP_NOT_ENABLED: 12,
  SHORT_PACKET: 13,
  PARAMETER: 17,
  CONTEXT_STATE: 19,
  EVENT_RING_FULL: 21,
  COMMAND_RING_STOPPED: 24,
  COMMAND_ABORTED: 25,
  STOPPED: 26,
  STOPPED_LENGTH_INVALID: 27,
  INVALID_STREAM_ID: 34,
} as const;
export type CompletionCode = (typeof CC)[keyof typeof CC];

// Context fields (§6.2): slot states and endpoint states and types
export const SLOT_ENABLED = 0;
export const SLOT_DEFAULT = 1;
export const SLOT_ADDRESSED = 2;
export const SLOT_CONFIGURED = 3;
export const EP_DISABLED = 0;
export const EP_RUNNING = 1;
export const EP_HALTED = 2;
export const EP_STOPPED = 3;
export const EP_ERROR = 4;
export const EPT_ISOCH_OUT = 1;
export const EPT_CONTROL = 4;
export const EPT_ISOCH_IN = 5;
export const EPT_INTERRUPT_IN = 7;
/** With 32-byte contexts (HCCPARAMS1.CSZ = 0): an input context is the control context + slot + 31 endpoints. */
export const CTX_SIZE = 32;
export const INPUT_CTX_SIZE = 33 * CTX_SIZE;
export const DEVICE_CTX_SIZE = 32 * CTX_SIZE;

/** Guest-driven work is bounded: TRBs (Link TRBs included) taken from one ring per doorbell or wake-up. */
export const RING_BUDGET = 256;
/** TRBs one TD may span (a TD longer than this is a TRB Error). */
export const TD_MAX_TRBS = 64;
