// The USB tablet (`slot.N.device=tablet`): a HID pointer with absolute X/Y in 0..0x7fff, three buttons and a
// wheel, as bhyve's usb_mouse.c presents it (vendor FB5D, product 0001, strings "BHYVE" / "HID Tablet", one
// interrupt IN endpoint 0x81 of 8 bytes, a 6-byte report: buttons, X and Y little-endian, wheel). It answers the
// standard requests of USB 2.0 chapter 9 and the HID 1.11 class requests; the xHC moves the bytes.
//
// Unlike bhyve, which attaches it to a USB 3 port with a bcdUSB 3.0 device descriptor and a high-speed port
// speed, this tablet is a plain high-speed USB 2.0 device (bcdUSB 2.00, 64-byte EP0) on a USB 2 port, so what
// the guest sees is consistent with the port's protocol.

/** USB 2.0 §9.3: the 8-byte SETUP packet. */
export interface SetupPacket {
  bmRequestType: number;
  bRequest: number;
  wValue: number;
  wIndex: number;
  wLength: number;
}

export function parseSetup(b: Uint8Array): SetupPacket {
  return {
    bmRequestType: b[0]!,
    bRequest: b[1]!,
    wValue: b[2]! | (b[3]! << 8),
    wIndex: b[4]! | (b[5]! << 8),
    wLength: b[6]! | (b[7]! << 8),
  };
}

/** What a device does with a control request: data for the IN stage (at most wLength bytes), done, or STALL. */
export type ControlResult = { kind: 'in'; data: Uint8Array } | { kind: 'ok' } | { kind: 'stall' };

/** A USB device behind one root-hub port. */
export interface UsbDevice {
  readonly name: string;
  /** Port speed ID (§7.2.2.1.1 default IDs) and the protocol of the port it needs. */
  readonly speed: number;
  readonly usbMajor: 2 | 3;
  /** Bus reset (port reset, Reset Device): address 0, unconfigured. */
  reset(): void;
  setAddress(address: number): void;
  /** A control transfer's request; `out` is the OUT data stage, when there is one. */
  control(setup: SetupPacket, out?: Uint8Array): ControlResult;
  /** An IN transfer on endpoint `ep` (1-15): the next packet, or undefined to NAK. */
  takeIn(ep: number): Uint8Array | undefined;
  /** Whether an IN transfer on `ep` has data waiting. */
  hasIn(ep: number): boolean;
  /** Whether endpoint `ep` (1-15) exists in direction `dirIn`. */
  hasEndpoint(ep: number, dirIn: boolean): boolean;
  /** The controller's hook: data became available on IN endpoint `ep`. */
  onData?: (ep: number) => void;
}

// Request types and codes (USB 2.0 tables 9-2 to 9-5, HID 1.11 §7.2)
const DIR_IN = 0x80;
const TYPE_MASK = 0x60;
const TYPE_STANDARD = 0x00;
const TYPE_CLASS = 0x20;
const RECIP_MASK = 0x1f;
const RECIP_DEVICE = 0;
const RECIP_INTERFACE = 1;
const RECIP_ENDPOINT = 2;
const GET_STATUS = 0;
const CLEAR_FEATURE = 1;
const SET_FEATURE = 3;
const SET_ADDRESS = 5;
const GET_DESCRIPTOR = 6;
const SET_DESCRIPTOR = 7;
const GET_CONFIGURATION = 8;
const SET_CONFIGURATION = 9;
const GET_INTERFACE = 10;
const SET_INTERFACE = 11;
const HID_GET_REPORT = 0x01;
const HID_GET_IDLE = 0x02;
const HID_GET_PROTOCOL = 0x03;
const HID_SET_REPORT = 0x09;
const HID_SET_IDLE = 0x0a;
const HID_SET_PROTOCOL = 0x0b;
const DESC_DEVICE = 1;
const DESC_CONFIG = 2;
const DESC_STRING = 3;
const DESC_HID = 0x21;
const DESC_REPORT = 0x22;
const FEATURE_REMOTE_WAKEUP = 1;
const FEATURE_ENDPOINT_HALT = 0;

export const TABLET_VENDOR = 0xfb5d;
export const TABLET_PRODUCT = 0x0001;
export const TABLET_INTR_EP = 1;
/** Reports the tablet keeps while no transfer is posted; older ones are dropped first. */
export const TABLET_QUEUE = 16;
/** The largest absolute coordinate (the report descriptor's logical maximum). */
export const TABLET_MAX = 0x7fff;

const STRINGS = ['', 'BHYVE', 'HID Tablet', '01', 'HID Tablet Device'];

/** HID 1.11 report descriptor: 3 buttons + 5 bits padding, X and Y as 16-bit absolute 0..0x7fff, a relative wheel. */
export const TABLET_REPORT_DESCRIPTOR = Uint8Array.from([
  0x05, 0x01, // usage page: generic desktop
  0x09, 0x02, // usage: mouse
  0xa1, 0x01, // collection: application
  0x09, 0x01, //   usage: pointer
  0xa1, 0x00, //   collection: physical
  0x05, 0x09, //     usage page: buttons
  0x19, 0x01, //     usage minimum 1
  0x29, 0x03, //     usage maximum 3
  0x15, 0x00, //     logical minimum 0
  0x25, 0x01, //     logical maximum 1
  0x75, 0x01, //     report size 1
  0x95, 0x03, //     report count 3
  0x81, 0x02, //     input: data, variable, absolute
  0x75, 0x05, //     report size 5
  0x95, 0x01, //     report count 1
  0x81, 0x03, //     input: constant (padding)
  0x05, 0x01, //     usage page: generic desktop
  0x09, 0x30, //     usage: X
  0x09, 0x31, //     usage: Y
  0x35, 0x00, //     physical minimum 0
  0x46, 0xff, 0x7f, // physical maximum 0x7fff
  0x15, 0x00, //     logical minimum 0
  0x26, 0xff, 0x7f, // logical maximum 0x7fff
  0x75, 0x10, //     report size 16
  0x95, 0x02, //     report count 2
  0x81, 0x02, //     input: data, variable, absolute
  0x05, 0x01, //     usage page: generic desktop
  0x09, 0x38, //     usage: wheel
  0x35, 0x00, //     physical minimum 0
  0x45, 0x00, //     physical maximum 0
  0x15, 0x81, //     logical minimum -127
  0x25, 0x7f, //     logical maximum 127
  0x75, 0x08, //     report size 8
  0x95, 0x01, //     report count 1
  0x81, 0x06, //     input: data, variable, relative
  0xc0, //   end collection
  0xc0, // end collection
]);

const le16 = (v: number): [number, number] => [v & 0xff, (v >> 8) & 0xff];

export const TABLET_DEVICE_DESCRIPTOR = Uint8Array.from([
  18, DESC_DEVICE, ...le16(0x0200), 0, 0, 0, 64, ...le16(TABLET_VENDOR), ...le16(TABLET_PRODUCT), ...le16(0), 1, 2, 3, 1,
]);

/** Configuration 1: one HID boot-mouse interface with its HID descriptor and the interrupt IN endpoint. */
export const TABLET_CONFIG_DESCRIPTOR = Uint8Array.from([
  9, DESC_CONFIG, ...le16(34), 1, 1, 4, 0xa0, 0, // bus powered, remote wakeup
  9, 4, 0, 0, 1, 3, 1, 2, 0, // interface 0: HID, boot subclass, mouse protocol
  9, DESC_HID, ...le16(0x0111), 0, 1, DESC_REPORT, ...le16(TABLET_REPORT_DESCRIPTOR.length),
  7, 5, 0x80 | TABLET_INTR_EP, 3, ...le16(8), 10, // interrupt IN, 8 bytes, bInterval 10
]);

function stringDescriptor(index: number): Uint8Array | undefined {
  if (index === 0) return Uint8Array.from([4, DESC_STRING, 0x09, 0x04]); // US English
  const s = STRINGS[index];
  if (s === undefined || s === '') return undefined;
  const b = new Uint8Array(2 + 2 * s.length);
  b[0] = b.length;
  b[1] = DESC_STRING;
  for (let i = 0; i < s.length; i++) b[2 + 2 * i] = s.charCodeAt(i);
  return b;
}

/** The 6-byte input report. */
export interface TabletReport {
  /** bit 0 left, bit 1 right, bit 2 middle */
  buttons: number;
  x: number;
  y: number;
  /** -1, 0 or 1 */
  wheel: number;
}

export function encodeReport(r: TabletReport): Uint8Array {
  return Uint8Array.from([r.buttons & 7, ...le16(r.x), ...le16(r.y), r.wheel & 0xff]);
}

export class UsbTablet implements UsbDevice {
  readonly name = 'tablet';
  readonly speed = 3; // high speed
  readonly usbMajor = 2 as const;
  address = 0;
  configuration = 0;
  idle = 0;
  /** HID protocol: 1 = report (the default after reset, HID 1.11 §7.2.6), 0 = boot */
  protocol = 1;
  remoteWakeup = false;
  private last: TabletReport = { buttons: 0, x: 0, y: 0, wheel: 0 };
  private readonly queue: TabletReport[] = [];
  /** reports dropped because the guest did not take them in time */
  dropped = 0;
  onData?: (ep: number) => void;

  reset(): void {
    this.address = 0;
    this.configuration = 0;
    this.idle = 0;
    this.protocol = 1;
    this.remoteWakeup = false;
    this.queue.length = 0;
  }

  setAddress(address: number): void {
    this.address = address & 0x7f;
  }

  /**
   * A pointer event in framebuffer coordinates, as a VNC server receives it (RFB PointerEvent button mask: bit 0
   * left, 1 middle, 2 right, 3 wheel up, 4 wheel down). Coordinates are scaled to 0..0x7fff over width x height.
   */
  pointer(buttonMask: number, x: number, y: number, width: number, height: number): void {
    if (!(width > 0 && height > 0) || !Number.isFinite(x) || !Number.isFinite(y)) return;
    const scale = (v: number, size: number): number => Math.min(TABLET_MAX, Math.max(0, Math.floor((v * 0x8000) / size)));
    const buttons = (buttonMask & 1) | ((buttonMask & 4) >> 1) | ((buttonMask & 2) << 1);
    const wheel = buttonMask & 8 ? 1 : buttonMask & 16 ? -1 : 0;
    const r: TabletReport = { buttons, x: scale(x, width), y: scale(y, height), wheel };
    this.last = { ...r, wheel: 0 };
    // A move that changes nothing but the position replaces a queued move, so a slow guest sees the latest position
    // without losing button changes.
    const tail = this.queue[this.queue.length - 1];
    if (tail && tail.buttons === r.buttons && tail.wheel === 0 && r.wheel === 0) {
      this.queue[this.queue.length - 1] = r;
    } else {
      if (this.queue.length >= TABLET_QUEUE) {
        this.queue.shift();
        this.dropped++;
      }
      this.queue.push(r);
    }
    this.onData?.(TABLET_INTR_EP);
  }

  /** The reports waiting for the guest (oldest first). */
  pendingReports(): readonly TabletReport[] {
    return this.queue;
  }

  hasEndpoint(ep: number, dirIn: boolean): boolean {
    return ep === TABLET_INTR_EP && dirIn;
  }

  hasIn(ep: number): boolean {
    return ep === TABLET_INTR_EP && this.configuration !== 0 && this.queue.length > 0;
  }

  takeIn(ep: number): Uint8Array | undefined {
    if (!this.hasIn(ep)) return undefined;
    return encodeReport(this.queue.shift()!);
  }

  control(s: SetupPacket, _out?: Uint8Array): ControlResult {
    const type = s.bmRequestType & TYPE_MASK;
    const recip = s.bmRequestType & RECIP_MASK;
    const dirIn = (s.bmRequestType & DIR_IN) !== 0;
    const reply = (data: Uint8Array): ControlResult => (dirIn ? { kind: 'in', data: data.subarray(0, s.wLength) } : { kind: 'stall' });
    const done = (): ControlResult => (dirIn ? { kind: 'stall' } : { kind: 'ok' });
    if (type === TYPE_STANDARD) {
      switch (s.bRequest) {
        case GET_STATUS:
          if (!dirIn) return { kind: 'stall' };
          if (recip === RECIP_DEVICE) return reply(Uint8Array.from([this.remoteWakeup ? 2 : 0, 0]));
          if (recip === RECIP_INTERFACE && s.wIndex === 0) return reply(Uint8Array.from([0, 0]));
          if (recip === RECIP_ENDPOINT && (s.wIndex & 0x7f) <= 1) return reply(Uint8Array.from([0, 0]));
          return { kind: 'stall' };
        case CLEAR_FEATURE:
        case SET_FEATURE:
          if (recip === RECIP_DEVICE && s.wValue === FEATURE_REMOTE_WAKEUP) {
            this.remoteWakeup = s.bRequest === SET_FEATURE;
            return done();
          }
          if (recip === RECIP_ENDPOINT && s.wValue === FEATURE_ENDPOINT_HALT && (s.wIndex & 0x7f) <= 1) return done();
          return { kind: 'stall' };
        case SET_ADDRESS:
          // The xHC sends SET_ADDRESS itself for Address Device (xHCI §4.6.5); software must not.
          return { kind: 'stall' };
        case GET_DESCRIPTOR:
          return this.descriptor(s, recip, dirIn);
        case SET_DESCRIPTOR:
          return { kind: 'stall' };
        case GET_CONFIGURATION:
          return recip === RECIP_DEVICE ? reply(Uint8Array.from([this.configuration])) : { kind: 'stall' };
        case SET_CONFIGURATION:
          if (recip !== RECIP_DEVICE || (s.wValue & 0xff) > 1 || dirIn) return { kind: 'stall' };
          this.configuration = s.wValue & 0xff;
          return { kind: 'ok' };
        case GET_INTERFACE:
          return recip === RECIP_INTERFACE && s.wIndex === 0 && this.configuration ? reply(Uint8Array.from([0])) : { kind: 'stall' };
        case SET_INTERFACE:
          return recip === RECIP_INTERFACE && s.wIndex === 0 && s.wValue === 0 && !dirIn ? { kind: 'ok' } : { kind: 'stall' };
        default:
          return { kind: 'stall' };
      }
    }
    if (type === TYPE_CLASS && recip === RECIP_INTERFACE && (s.wIndex & 0xff) === 0) {
      switch (s.bRequest) {
        case HID_GET_REPORT:
          // Input report (type 1), the only report ID (0).
          if (s.wValue !== 0x0100) return { kind: 'stall' };
          return reply(encodeReport(this.last));
        case HID_SET_REPORT:
          return done();
        case HID_GET_IDLE:
          return reply(Uint8Array.from([this.idle]));
        case HID_SET_IDLE:
          if (dirIn) return { kind: 'stall' };
          this.idle = s.wValue >> 8;
          return { kind: 'ok' };
        case HID_GET_PROTOCOL:
          return reply(Uint8Array.from([this.protocol]));
        case HID_SET_PROTOCOL:
          if (dirIn || s.wValue > 1) return { kind: 'stall' };
          this.protocol = s.wValue;
          return { kind: 'ok' };
        default:
          return { kind: 'stall' };
      }
    }
    return { kind: 'stall' };
  }

  private descriptor(s: SetupPacket, recip: number, dirIn: boolean): ControlResult {
    if (!dirIn) return { kind: 'stall' };
    const kind = s.wValue >> 8;
    const index = s.wValue & 0xff;
    let d: Uint8Array | undefined;
    if (recip === RECIP_DEVICE) {
      if (kind === DESC_DEVICE && index === 0) d = TABLET_DEVICE_DESCRIPTOR;
      else if (kind === DESC_CONFIG && index === 0) d = TABLET_CONFIG_DESCRIPTOR;
      else if (kind === DESC_STRING) d = stringDescriptor(index);
    } else if (recip === RECIP_INTERFACE && s.wIndex === 0) {
      if (kind === DESC_REPORT) d = TABLET_REPORT_DESCRIPTOR;
      else if (kind === DESC_HID) d = TABLET_CONFIG_DESCRIPTOR.subarray(18, 27);
    }
    return d ? { kind: 'in', data: d.subarray(0, s.wLength) } : { kind: 'stall' };
  }
}
