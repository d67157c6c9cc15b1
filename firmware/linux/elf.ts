// Just enough of ELF64 (little-endian) to read what an image builder needs from kernel modules and
// programs: the .modinfo strings of a .ko (its dependencies) and the DT_NEEDED entries of a dynamic
// executable or library (the shared objects to copy beside it).

export class ElfError extends Error {
  override name = 'ElfError';
}

interface Section {
  name: string;
  type: number;
  offset: number;
  size: number;
  link: number;
}

const SHT_DYNAMIC = 6;
const DT_NULL = 0n;
const DT_NEEDED = 1n;

function sections(buf: Buffer): Section[] {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new ElfError('not an ELF file');
  if (buf[4] !== 2 || buf[5] !== 1) throw new ElfError('only little-endian ELF64 is supported');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  if (shoff === 0 || shoff + shnum * shentsize > buf.length) throw new ElfError('section table out of range');
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    raw.push({
      nameOff: buf.readUInt32LE(at),
      type: buf.readUInt32LE(at + 4),
      offset: Number(buf.readBigUInt64LE(at + 0x18)),
      size: Number(buf.readBigUInt64LE(at + 0x20)),
      link: buf.readUInt32LE(at + 0x28),
    });
  }
  const names = raw[shstrndx];
  if (!names) throw new ElfError('no section name table');
  return raw.map((s) => ({
    name: cString(buf, names.offset + s.nameOff),
    type: s.type,
    offset: s.offset,
    size: s.size,
    link: s.link,
  }));
}

function cString(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end < 0 ? buf.length : end);
}

function sectionBytes(buf: Buffer, s: Section): Buffer {
  if (s.offset + s.size > buf.length) throw new ElfError(`section ${s.name} out of range`);
  return buf.subarray(s.offset, s.offset + s.size);
}

/** The key=value strings of a kernel module's .modinfo section (a key may repeat, e.g. alias). */
export function modinfo(buf: Buffer): Array<[string, string]> {
  const s = sections(buf).find((x) => x.name === '.modinfo');
  if (!s) throw new ElfError('no .modinfo section (not a kernel module?)');
  const out: Array<[string, string]> = [];
  for (const item of sectionBytes(buf, s).toString('latin1').split('\0')) {
    const eq = item.indexOf('=');
    if (eq > 0) out.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  return out;
}

/** The shared objects a dynamically linked ELF names in DT_NEEDED; empty for a static one. */
export function neededLibraries(buf: Buffer): string[] {
  const all = sections(buf);
  const dyn = all.find((x) => x.type === SHT_DYNAMIC);
  if (!dyn) return [];
  const strtab = all[dyn.link];
  if (!strtab) throw new ElfError('.dynamic has no string table');
  const bytes = sectionBytes(buf, dyn);
  const out: string[] = [];
  for (let at = 0; at + 16 <= bytes.length; at += 16) {
    const tag = bytes.readBigInt64LE(at);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) out.push(cString(buf, strtab.offset + Number(bytes.readBigUInt64LE(at + 8))));
  }
  return out;
}
