// A strict reader for the parts of an ELF executable a loader needs: the file header, the program headers
// and notes (System V gABI, "ELF Header", "Program Header", "Note Section"; ELF-64 Object File Format).
// Only little-endian x86 (EM_386, EM_X86_64) executables are accepted. Nothing is trusted: every table
// and every segment is checked to lie inside the file.
import { readU16, readU32, readU64Number, readU8, slice } from './bytes.js';
import { LoaderError, hex } from './errors.js';

export const ELF_MAGIC = 0x464c457f; // "\x7fELF" read little-endian
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
const EM_386 = 3;
const EM_X86_64 = 62;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
const SHT_NOTE = 7;
/** e_phnum == PN_XNUM means the real count is elsewhere; no kernel needs that many segments. */
const PN_XNUM = 0xffff;

export interface ElfSegment {
  type: number;
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

export interface ElfImage {
  is64: boolean;
  entry: number;
  segments: ElfSegment[];
}

export function isElf(file: Uint8Array): boolean {
  return file.length >= 4 && new DataView(file.buffer, file.byteOffset, 4).getUint32(0, true) === ELF_MAGIC;
}

export function parseElf(file: Uint8Array): ElfImage {
  if (!isElf(file)) throw new LoaderError('unknown-format', 'not an ELF file');
  const cls = readU8(file, 4, 'ELF e_ident[EI_CLASS]');
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw new LoaderError('bad-field', `ELF class ${cls} is neither 32- nor 64-bit`);
  const is64 = cls === ELFCLASS64;
  if (readU8(file, 5, 'ELF e_ident[EI_DATA]') !== ELFDATA2LSB) throw new LoaderError('unsupported', 'ELF file is not little-endian');
  const ehsize = is64 ? 64 : 52;
  slice(file, 0, ehsize, 'ELF header');
  const type = readU16(file, 16, 'ELF e_type');
  if (type !== ET_EXEC && type !== ET_DYN) throw new LoaderError('unsupported', `ELF e_type ${type} is not an executable`);
  const machine = readU16(file, 18, 'ELF e_machine');
  if (machine !== EM_386 && machine !== EM_X86_64) throw new LoaderError('unsupported', `ELF e_machine ${machine} is not x86`);
  const entry = is64 ? readU64Number(file, 24, 'ELF e_entry') : readU32(file, 24, 'ELF e_entry');
  const phoff = is64 ? readU64Number(file, 32, 'ELF e_phoff') : readU32(file, 28, 'ELF e_phoff');
  const phentsize = readU16(file, is64 ? 54 : 42, 'ELF e_phentsize');
  const phnum = readU16(file, is64 ? 56 : 44, 'ELF e_phnum');
  const minEnt = is64 ? 56 : 32;
  if (phnum === 0) throw new LoaderError('bad-field', 'ELF file has no program headers');
  if (phnum === PN_XNUM) throw new LoaderError('unsupported', 'ELF e_phnum is PN_XNUM (extended numbering)');
  if (phentsize < minEnt) throw new LoaderError('bad-field', `ELF e_phentsize ${phentsize} is smaller than ${minEnt}`);
  slice(file, phoff, phnum * phentsize, `ELF program header table (${phnum} x ${phentsize} bytes at ${hex(phoff)})`);

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    const what = `ELF program header ${i}`;
    const seg: ElfSegment = is64
      ? {
          type: readU32(file, o, what), offset: readU64Number(file, o + 8, `${what} p_offset`),
          vaddr: readU64Number(file, o + 16, `${what} p_vaddr`), paddr: readU64Number(file, o + 24, `${what} p_paddr`),
          filesz: readU64Number(file, o + 32, `${what} p_filesz`), memsz: readU64Number(file, o + 40, `${what} p_memsz`),
          align: readU64Number(file, o + 48, `${what} p_align`),
        }
      : {
          type: readU32(file, o, what), offset: readU32(file, o + 4, `${what} p_offset`),
          vaddr: readU32(file, o + 8, `${what} p_vaddr`), paddr: readU32(file, o + 12, `${what} p_paddr`),
          filesz: readU32(file, o + 16, `${what} p_filesz`), memsz: readU32(file, o + 20, `${what} p_memsz`),
          align: readU32(file, o + 28, `${what} p_align`),
        };
    if (seg.type === PT_LOAD || seg.type === PT_NOTE) {
      if (seg.filesz > seg.memsz) {
        throw new LoaderError('bad-field', `${what}: p_filesz ${hex(seg.filesz)} is larger than p_memsz ${hex(seg.memsz)}`);
      }
      slice(file, seg.offset, seg.filesz, `${what} data (${hex(seg.filesz)} bytes at file offset ${hex(seg.offset)})`);
    }
    segments.push(seg);
  }
  return { is64, entry, segments };
}

/** The bytes of a segment that come from the file (its first p_filesz bytes). */
export function segmentData(file: Uint8Array, seg: ElfSegment): Uint8Array {
  return slice(file, seg.offset, seg.filesz, 'ELF segment');
}

/** Parses a run of notes: namesz, descsz, type, then name and desc, each padded to `align` bytes. */
function parseNotes(data: Uint8Array, align: number, where: string): ElfNote[] {
  const notes: ElfNote[] = [];
  const pad = (n: number): number => Math.ceil(n / align) * align;
  let o = 0;
  while (o + 12 <= data.length) {
    const namesz = readU32(data, o, `${where} note namesz`);
    const descsz = readU32(data, o + 4, `${where} note descsz`);
    const type = readU32(data, o + 8, `${where} note type`);
    const nameOff = o + 12;
    const descOff = nameOff + pad(namesz);
    const next = descOff + pad(descsz);
    if (next > data.length) throw new LoaderError('truncated', `${where}: note at offset ${hex(o)} runs past the end of its ${data.length}-byte area`);
    const nameBytes = data.subarray(nameOff, nameOff + namesz);
    const nul = nameBytes.indexOf(0);
    const name = new TextDecoder('latin1').decode(nul >= 0 ? nameBytes.subarray(0, nul) : nameBytes);
    notes.push({ name, type, desc: data.subarray(descOff, descOff + descsz) });
    o = next;
  }
  return notes;
}

/**
 * All notes of the file: from PT_NOTE segments, or, when there are none, from SHT_NOTE sections
 * (section headers are only read in that case, and checked like program headers).
 */
export function elfNotes(file: Uint8Array, image: ElfImage): ElfNote[] {
  const notes: ElfNote[] = [];
  const noteSegs = image.segments.filter((s) => s.type === PT_NOTE);
  for (const s of noteSegs) {
    notes.push(...parseNotes(segmentData(file, s), s.align === 8 ? 8 : 4, `PT_NOTE at ${hex(s.offset)}`));
  }
  if (noteSegs.length > 0) return notes;
  const is64 = image.is64;
  const shoff = is64 ? readU64Number(file, 40, 'ELF e_shoff') : readU32(file, 32, 'ELF e_shoff');
  const shentsize = readU16(file, is64 ? 58 : 46, 'ELF e_shentsize');
  const shnum = readU16(file, is64 ? 60 : 48, 'ELF e_shnum');
  if (shoff === 0 || shnum === 0) return notes;
  const minEnt = is64 ? 64 : 40;
  if (shentsize < minEnt) throw new LoaderError('bad-field', `ELF e_shentsize ${shentsize} is smaller than ${minEnt}`);
  slice(file, shoff, shnum * shentsize, `ELF section header table (${shnum} x ${shentsize} bytes at ${hex(shoff)})`);
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    const what = `ELF section header ${i}`;
    if (readU32(file, o + 4, `${what} sh_type`) !== SHT_NOTE) continue;
    const off = is64 ? readU64Number(file, o + 24, `${what} sh_offset`) : readU32(file, o + 16, `${what} sh_offset`);
    const size = is64 ? readU64Number(file, o + 32, `${what} sh_size`) : readU32(file, o + 20, `${what} sh_size`);
    const align = is64 ? readU64Number(file, o + 48, `${what} sh_addralign`) : readU32(file, o + 32, `${what} sh_addralign`);
    notes.push(...parseNotes(slice(file, off, size, `${what} data`), align === 8 ? 8 : 4, `note section ${i}`));
  }
  return notes;
}

/**
 * Claims and writes every PT_LOAD segment at its physical address (p_paddr), zero-filling p_memsz beyond
 * p_filesz. Segments with p_memsz 0 occupy nothing and are skipped. Returns the loaded ranges.
 */
export function loadSegments(
  file: Uint8Array, image: ElfImage, put: (gpa: number, size: number, data: Uint8Array, what: string) => void,
): { base: number; size: number }[] {
  const loaded: { base: number; size: number }[] = [];
  image.segments.forEach((s, i) => {
    if (s.type !== PT_LOAD || s.memsz === 0) return;
    if (!Number.isSafeInteger(s.paddr + s.memsz)) throw new LoaderError('bad-field', `ELF segment ${i}: p_paddr + p_memsz overflows`);
    put(s.paddr, s.memsz, segmentData(file, s), `ELF segment ${i}`);
    loaded.push({ base: s.paddr, size: s.memsz });
  });
  if (loaded.length === 0) throw new LoaderError('bad-field', 'ELF file has no PT_LOAD segment with contents');
  return loaded;
}
