// SMBIOS tables as bhyve builds them (smbiostbl.c), per DMTF DSP0134: a 32-bit (2.x) entry point at 0xF1000
// followed by the structure table: BIOS (type 0), System (1), Baseboard (2), Chassis (3), one Processor (4)
// per socket, Physical Memory Array (16), Memory Device (17), Memory Array Mapped Address (19) per RAM
// range, System Boot (32) and End-of-Table (127). The whole must end before the ACPI tables at 0xF2400.
import { createHash } from 'node:crypto';
import { ACPI_BASE, HIGHMEM_BASE, SMBIOS_BASE, type MemoryLayout } from '../vm/memmap.js';

/** The bios.*, system.*, board.* and chassis.* config keys, with bhyve_config(5)'s defaults. */
export const SMBIOS_DEFAULTS = {
  'bios.vendor': 'BHYVE',
  'bios.version': '14.0',
  'bios.release_date': '10/17/2021',
  'system.manufacturer': 'FreeBSD',
  'system.product_name': 'BHYVE',
  'system.version': '1.0',
  'system.serial_number': 'None',
  'system.sku': 'None',
  'system.family_name': 'Virtual Machine',
  'board.manufacturer': 'FreeBSD',
  'board.product_name': 'BHYVE',
  'board.version': '1.0',
  'board.serial_number': 'None',
  'board.asset_tag': 'None',
  'board.location': 'None',
  'chassis.manufacturer': 'FreeBSD',
  'chassis.version': '1.0',
  'chassis.serial_number': 'None',
  'chassis.asset_tag': 'None',
  'chassis.sku': 'None',
} as const;

export type SmbiosKey = keyof typeof SMBIOS_DEFAULTS;
export type SmbiosStrings = Partial<Record<SmbiosKey, string>>;

export interface SmbiosInput {
  memory: MemoryLayout;
  sockets: number;
  cores: number;
  threads: number;
  strings?: SmbiosStrings;
  /** The guest UUID: the `uuid` config value, or one derived with smbiosUuidFromName(). */
  uuid: string;
}

export class SmbiosError extends Error {
  override name = 'SmbiosError';
}

/** bhyve advertises SMBIOS 2.6 in its entry point; structure lengths follow the newer layouts it fills. */
export const SMBIOS_MAJOR = 2;
export const SMBIOS_MINOR = 6;
const ENTRY_POINT_SIZE = 0x1f;
/** Room between SMBIOS_BASE and the ACPI tables. */
export const SMBIOS_MAX_LENGTH = ACPI_BASE - SMBIOS_BASE;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The UUID bhyve derives when no `uuid` is configured: MD5 over the VM name and the host name, the latter
 * as bhyve hashes it — its whole MAXHOSTNAMELEN (256-byte) buffer; bhyve leaves the bytes after the name's
 * NUL uninitialised, here they are zero. Version 3 and the RFC 4122 variant are then set in place.
 */
export function smbiosUuidFromName(vmName: string, hostname: string): string {
  const host = Buffer.alloc(256);
  host.write(hostname.slice(0, 255), 'utf8');
  const d = createHash('md5').update(vmName, 'utf8').update(host).digest();
  d[6] = (d[6]! & 0x0f) | 0x30;
  d[8] = (d[8]! & 0x3f) | 0x80;
  // bhyve copies the digest bytes unchanged into the structure; report them as the UUID those bytes
  // decode to under SMBIOS's little-endian field rule, so that encoding it again gives the same bytes.
  return uuidFromSmbiosBytes(d);
}

/** SMBIOS 2.6+ stores the first three UUID fields little-endian (DSP0134 §7.2.1), as uuid_enc_le does. */
export function uuidToSmbiosBytes(uuid: string): Buffer {
  if (!UUID_RE.test(uuid)) throw new SmbiosError(`invalid UUID '${uuid}'`);
  const hex = Buffer.from(uuid.replace(/-/g, ''), 'hex');
  const out = Buffer.from(hex);
  out.writeUInt32LE(hex.readUInt32BE(0), 0);
  out.writeUInt16LE(hex.readUInt16BE(4), 4);
  out.writeUInt16LE(hex.readUInt16BE(6), 6);
  return out;
}

export function uuidFromSmbiosBytes(b: Uint8Array): string {
  const src = Buffer.from(b);
  const be = Buffer.from(src);
  be.writeUInt32BE(src.readUInt32LE(0), 0);
  be.writeUInt16BE(src.readUInt16LE(4), 4);
  be.writeUInt16BE(src.readUInt16LE(6), 6);
  const h = be.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** One structure: the formatted area (header included) and its string set. */
interface Structure {
  formatted: Buffer;
  strings: string[];
}

function structure(type: number, length: number, handle: number, fill: (b: Buffer) => void, strings: string[] = []): Structure {
  const b = Buffer.alloc(length);
  b.writeUInt8(type, 0);
  b.writeUInt8(length, 1);
  b.writeUInt16LE(handle, 2);
  fill(b);
  for (const s of strings) {
    if (s.length === 0 || s.includes('\0')) throw new SmbiosError(`SMBIOS strings must be non-empty and NUL-free: ${JSON.stringify(s)}`);
  }
  return { formatted: b, strings };
}

function encode(s: Structure): Buffer {
  // The string set ends with an extra NUL; a structure without strings ends with two NULs.
  const tail = s.strings.length === 0 ? Buffer.alloc(2) : Buffer.concat([...s.strings.map((x) => Buffer.from(`${x}\0`, 'latin1')), Buffer.alloc(1)]);
  return Buffer.concat([s.formatted, tail]);
}

const MiB = 1024 * 1024;

/** The entry point and structure table as one image for `base` (0xF1000). */
export function buildSmbios(input: SmbiosInput, base = SMBIOS_BASE): Buffer {
  const str = (k: SmbiosKey): string => input.strings?.[k] ?? SMBIOS_DEFAULTS[k];
  const { lowmem, highmem } = input.memory;
  for (const [k, v] of [
    ['sockets', input.sockets],
    ['cores', input.cores],
    ['threads', input.threads],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new SmbiosError(`bad ${k} count ${v}`);
  }
  const uuid = uuidToSmbiosBytes(input.uuid);
  const list: Structure[] = [];
  let handle = 0;
  const next = (): number => ++handle;

  // Type 0, BIOS Information (§7.1): ISA, PCI, shadowing, CD boot, EDD; ACPI; BBS and "virtual machine".
  list.push(
    structure(0, 0x18, next(), (b) => {
      b.writeUInt8(1, 4);
      b.writeUInt8(2, 5);
      b.writeUInt16LE(0xf000, 6); // BIOS starting segment
      b.writeUInt8(3, 8);
      b.writeUInt8(0, 9); // ROM size: 64 KiB
      b.writeBigUInt64LE(0x10n | 0x80n | 0x1000n | 0x8000n | 0x80000n, 10);
      b.writeUInt8(0x01, 18);
      b.writeUInt8(0x01 | 0x10, 19);
      b.writeUInt8(0, 20);
      b.writeUInt8(0, 21);
      b.writeUInt8(0xff, 22); // no embedded controller firmware
      b.writeUInt8(0xff, 23);
    }, [str('bios.vendor'), str('bios.version'), str('bios.release_date')]),
  );
  // Type 1, System Information (§7.2): wake-up type "power switch".
  list.push(
    structure(1, 0x1b, next(), (b) => {
      b.writeUInt8(1, 4);
      b.writeUInt8(2, 5);
      b.writeUInt8(3, 6);
      b.writeUInt8(4, 7);
      uuid.copy(b, 8);
      b.writeUInt8(0x06, 24);
      b.writeUInt8(5, 25);
      b.writeUInt8(6, 26);
    }, [str('system.manufacturer'), str('system.product_name'), str('system.version'), str('system.serial_number'), str('system.sku'), str('system.family_name')]),
  );
  // Type 2, Baseboard (§7.3): a hosting board, motherboard type. bhyve stores 3 in the chassis handle
  // field (a chassis-type constant, not a handle); here it points at the real type 3 handle.
  const chassisHandle = handle + 2;
  list.push(
    structure(2, 0x0f, next(), (b) => {
      b.writeUInt8(1, 4);
      b.writeUInt8(2, 5);
      b.writeUInt8(3, 6);
      b.writeUInt8(4, 7);
      b.writeUInt8(5, 8);
      b.writeUInt8(0x01, 9); // hosting board
      b.writeUInt8(6, 10);
      b.writeUInt16LE(chassisHandle, 11);
      b.writeUInt8(0x0a, 13); // motherboard
      b.writeUInt8(0, 14);
    }, [str('board.manufacturer'), str('board.product_name'), str('board.version'), str('board.serial_number'), str('board.asset_tag'), str('board.location')]),
  );
  // Type 3, System Enclosure (§7.4): type unknown, states safe, no security.
  list.push(
    structure(3, 0x16, next(), (b) => {
      b.writeUInt8(1, 4);
      b.writeUInt8(0x02, 5);
      b.writeUInt8(2, 6);
      b.writeUInt8(3, 7);
      b.writeUInt8(4, 8);
      b.writeUInt8(0x03, 9);
      b.writeUInt8(0x03, 10);
      b.writeUInt8(0x03, 11);
      b.writeUInt8(0x03, 12);
      b.writeUInt8(5, 21);
    }, [str('chassis.manufacturer'), str('chassis.version'), str('chassis.serial_number'), str('chassis.asset_tag'), str('chassis.sku')]),
  );
  // Type 4, Processor (§7.5), one per socket: central processor, family "other", populated and enabled,
  // no cache structures, 64-bit capable. Counts above 254 are "unknown" (0) in the 8-bit fields.
  const threadsPerSocket = input.cores * input.threads;
  for (let s = 0; s < input.sockets; s++) {
    list.push(
      structure(4, 0x2a, next(), (b) => {
        b.writeUInt8(7, 4); // socket designation: the 7th string
        b.writeUInt8(0x03, 5);
        b.writeUInt8(0x01, 6);
        b.writeUInt8(2, 7);
        b.writeUInt8(3, 16);
        b.writeUInt8(0x40 | 0x01, 24);
        b.writeUInt8(0x06, 25); // upgrade: none
        b.writeUInt16LE(0xffff, 26);
        b.writeUInt16LE(0xffff, 28);
        b.writeUInt16LE(0xffff, 30);
        b.writeUInt8(4, 32);
        b.writeUInt8(5, 33);
        b.writeUInt8(6, 34);
        b.writeUInt8(input.cores > 254 ? 0 : input.cores, 35);
        b.writeUInt8(0, 36); // enabled cores: unknown, as bhyve
        b.writeUInt8(threadsPerSocket > 254 ? 0 : threadsPerSocket, 37);
        b.writeUInt16LE(0x04, 38);
        b.writeUInt16LE(0x01, 40);
      }, [' ', ' ', ' ', 'None', 'None', 'None', `CPU #${s}`]),
    );
  }
  const total = lowmem + highmem;
  // Type 16, Physical Memory Array (§7.17): capacity in the 64-bit extended field. bhyve counts one
  // device per RAM range.
  const arrayHandle = next();
  list.push(
    structure(16, 0x17, arrayHandle, (b) => {
      b.writeUInt8(0x03, 4); // system board
      b.writeUInt8(0x03, 5); // system memory
      b.writeUInt8(0x03, 6); // no error correction
      b.writeUInt32LE(0x8000_0000, 7);
      b.writeUInt16LE(0xffff, 11); // no error detected (bhyve's value)
      b.writeUInt16LE(highmem > 0 ? 2 : 1, 13);
      b.writeBigUInt64LE(BigInt(total), 15);
    }),
  );
  // Type 17, Memory Device (§7.18): one device holding all guest RAM. Sizes up to 32767 KiB use the
  // KiB form, up to 32766 MiB the MiB form, beyond that the extended size field.
  const kib = Math.floor(total / 1024);
  const mib = Math.min(Math.floor(total / MiB), 0x7fff_ffff);
  list.push(
    structure(17, 0x28, next(), (b) => {
      b.writeUInt16LE(arrayHandle, 4);
      b.writeUInt16LE(0xffff, 6); // no error detected
      b.writeUInt16LE(64, 8);
      b.writeUInt16LE(64, 10);
      if (kib <= 0x7fff) b.writeUInt16LE(0x8000 | kib, 12);
      else if (mib < 0x7fff) b.writeUInt16LE(mib, 12);
      else {
        b.writeUInt16LE(0x7fff, 12);
        b.writeUInt32LE(mib, 28);
      }
      b.writeUInt8(0x02, 14); // form factor unknown
      b.writeUInt8(0, 15);
      b.writeUInt8(1, 16);
      b.writeUInt8(2, 17);
      b.writeUInt8(0x02, 18); // type unknown
      b.writeUInt16LE(0x0004, 19); // type detail unknown
      b.writeUInt8(3, 23);
      b.writeUInt8(4, 24);
      b.writeUInt8(5, 25);
      b.writeUInt8(6, 26);
    }, [' ', ' ', ' ', 'None', 'None', 'None']),
  );
  // Type 19, Memory Array Mapped Address (§7.20), one per RAM range, in the 64-bit extended fields. The
  // ending address is inclusive in the spec; bhyve stores the exclusive end, here it is end - 1.
  const ranges = [{ base: 0, size: lowmem }, ...(highmem > 0 ? [{ base: HIGHMEM_BASE, size: highmem }] : [])];
  for (const r of ranges) {
    list.push(
      structure(19, 0x1f, next(), (b) => {
        b.writeUInt32LE(0xffff_ffff, 4);
        b.writeUInt32LE(0xffff_ffff, 8);
        b.writeUInt16LE(arrayHandle, 12);
        b.writeUInt8(1, 14);
        b.writeBigUInt64LE(BigInt(r.base), 15);
        b.writeBigUInt64LE(BigInt(r.base + r.size - 1), 23);
      }),
    );
  }
  // Type 32, System Boot Information (§7.33): no errors detected.
  list.push(structure(32, 0x0b, next(), () => {}));
  list.push(structure(127, 4, next(), () => {}));

  const encoded = list.map(encode);
  const table = Buffer.concat(encoded);
  const size = ENTRY_POINT_SIZE + table.length;
  if (size > SMBIOS_MAX_LENGTH) {
    throw new SmbiosError(`SMBIOS tables need ${size} bytes, only ${SMBIOS_MAX_LENGTH} fit below the ACPI tables`);
  }

  // 32-bit entry point (§5.2.1): "_SM_" part with its checksum over 0x1F bytes, and the "_DMI_" intermediate
  // part (offsets 0x10-0x1E) with its own checksum.
  const ep = Buffer.alloc(ENTRY_POINT_SIZE);
  ep.write('_SM_', 0, 'latin1');
  ep.writeUInt8(ENTRY_POINT_SIZE, 5);
  ep.writeUInt8(SMBIOS_MAJOR, 6);
  ep.writeUInt8(SMBIOS_MINOR, 7);
  ep.writeUInt16LE(Math.max(...encoded.map((e) => e.length)), 8);
  ep.writeUInt8(0, 10); // entry point revision 0
  ep.write('_DMI_', 0x10, 'latin1');
  ep.writeUInt16LE(table.length, 0x16);
  ep.writeUInt32LE(base + ENTRY_POINT_SIZE, 0x18);
  ep.writeUInt16LE(list.length, 0x1c);
  ep.writeUInt8((SMBIOS_MAJOR << 4) | SMBIOS_MINOR, 0x1e);
  const sum = (from: number, to: number): number => {
    let s = 0;
    for (let i = from; i < to; i++) s = (s + ep[i]!) & 0xff;
    return s;
  };
  ep.writeUInt8((0x100 - sum(0x10, 0x1f)) & 0xff, 0x15);
  ep.writeUInt8((0x100 - sum(0, 0x1f)) & 0xff, 4);
  return Buffer.concat([ep, table]);
}
