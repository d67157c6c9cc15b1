// Hostile and broken inputs: each must give a LoaderError with the expected code and a one-line message,
// never a crash or a plan. Images are real toolchain output (or the synthetic bzImage) with one field
// corrupted, so each case isolates one check.
import test from 'tape';
import type { DirectBootInput, LoaderErrorCode } from '../../src/loader/index.js';
import { LoaderError, planDirectBoot } from '../../src/loader/index.js';
import { memoryLayout } from '../../src/vm/memmap.js';
import { bhyveE820 } from './guest-memory.js';
import { syntheticBzImage } from './synthetic.js';
import { buildAoutKernel, buildMultibootElf, buildPvhKernel, toolchainMissing } from './toolchain.js';

const MiB = 2 ** 20;
const missing = toolchainMissing();
const layout = memoryLayout(256 * MiB);
const e820 = bhyveE820(layout.lowmem, layout.highmem);

function input(kernel: Uint8Array, extra: Partial<DirectBootInput> = {}): DirectBootInput {
  return { kernel, layout, e820, ...extra };
}

function expectError(t: test.Test, what: string, code: LoaderErrorCode, pattern: RegExp, inp: DirectBootInput): void {
  try {
    planDirectBoot(inp);
    t.fail(`${what}: planned instead of failing`);
  } catch (e) {
    if (!(e instanceof LoaderError)) {
      t.fail(`${what}: threw ${(e as Error).name}: ${(e as Error).message}`);
      return;
    }
    t.equal(e.code, code, `${what}: code ${code}`);
    t.match(e.message, pattern, `${what}: "${e.message}"`);
    t.notOk(e.message.includes('\n'), `${what}: one-line message`);
  }
}

// ELF64 program header fields (ELF-64 Object File Format, "Program header table entry").
const PH = { type: 0, offset: 8, paddr: 24, filesz: 32, memsz: 40 } as const;

function phdr(elf: Uint8Array, predicate: (dv: DataView, o: number) => boolean): number {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const phoff = Number(dv.getBigUint64(32, true));
  const n = dv.getUint16(56, true);
  for (let i = 0; i < n; i++) if (predicate(dv, phoff + i * 56)) return phoff + i * 56;
  throw new Error('no such program header');
}

function pvhDataPhdr(elf: Uint8Array): number {
  return phdr(elf, (dv, o) => dv.getUint32(o, true) === 1 && dv.getBigUint64(o + PH.paddr, true) === 0x200000n);
}

function patched(bytes: Uint8Array, fn: (dv: DataView) => void): Uint8Array {
  const copy = new Uint8Array(bytes);
  fn(new DataView(copy.buffer));
  return copy;
}

test('hostile bzImage headers', (t) => {
  const good = syntheticBzImage();
  expectError(t, 'bzImage cut after the setup header', 'truncated', /exceed the \d+-byte file/, input(good.subarray(0, 0x300)));
  expectError(t, 'bzImage cut inside the header', 'truncated', /setup header/, input(good.subarray(0, 0x240)));
  expectError(t, 'protocol 2.06', 'unsupported', /2\.6 is older than 2\.12/, input(syntheticBzImage({ version: 0x0206 })));
  expectError(t, 'no 64-bit entry', 'unsupported', /XLF_KERNEL_64/, input(syntheticBzImage({ xloadflags: 0 })));
  expectError(t, 'zImage', 'unsupported', /LOADED_HIGH/, input(syntheticBzImage({ loadflags: 0 })));
  expectError(t, 'bad boot_flag', 'bad-field', /boot_flag/, input(syntheticBzImage({ bootFlag: 0x1234 })));
  expectError(t, 'setup header past 0x290', 'bad-field', /past 0x290/, input(syntheticBzImage({ headerEndByte: 0xa0 })));
  expectError(t, 'kernel_alignment not a power of two', 'bad-field', /kernel_alignment 0x3000/, input(syntheticBzImage({ kernelAlignment: 0x3000 })));
  expectError(t, 'init_size smaller than the kernel', 'bad-field', /init_size/, input(syntheticBzImage({ initSize: 0x100 })));
  expectError(t, 'init_size beyond RAM', 'out-of-ram', /init_size/, input(syntheticBzImage({ initSize: 0xf000_0000 })));
  expectError(t, 'fixed kernel whose pref_address is not RAM', 'out-of-ram', /at 0x20000000/,
    input(syntheticBzImage({ relocatable: 0, prefAddress: 0x2000_0000 })));
  expectError(t, 'command line longer than cmdline_size', 'cmdline-too-long', /17 bytes, the kernel's cmdline_size allows 16/,
    input(syntheticBzImage({ cmdlineSize: 16 }), { cmdline: 'x'.repeat(17) }));
  // 32 MiB guest, kernel at 16..24 MiB: no free run of 16 MiB is left for the initrd.
  const small = memoryLayout(32 * MiB);
  expectError(t, 'initrd that would overlap the kernel', 'out-of-ram', /without overlapping the kernel/, {
    kernel: syntheticBzImage({ initSize: 0x800000 }), initrd: new Uint8Array(16 * MiB), layout: small, e820: bhyveE820(small.lowmem, 0),
  });
  expectError(t, 'initrd above initrd_addr_max only', 'out-of-ram', /below 0x100000/,
    input(syntheticBzImage({ initrdAddrMax: 0xfffff }), { initrd: new Uint8Array(4096) }));
  t.end();
});

test('hostile ELF / PVH kernels', { skip: missing !== undefined }, (t) => {
  const pvh = buildPvhKernel(64).bytes;
  const data = pvhDataPhdr(pvh);
  expectError(t, 'segment past the end of RAM', 'out-of-ram', /not inside guest RAM/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.paddr, 0x2000_0000n, true))));
  expectError(t, 'segment straddling the top of RAM', 'out-of-ram', /not inside guest RAM/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.paddr, BigInt(layout.lowmem - 0x1000), true))));
  expectError(t, 'segment above 4 GiB', 'out-of-ram', /above 4 GiB/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.paddr, 0x1_0000_0000n, true))));
  expectError(t, 'segment with an address near 2^64', 'bad-field', /p_paddr/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.paddr, 0xffff_ffff_ffff_0000n, true))));
  expectError(t, 'p_filesz > p_memsz', 'bad-field', /p_filesz 0x10 is larger than p_memsz 0x8/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.memsz, 8n, true))));
  expectError(t, 'p_offset past the end of the file', 'truncated', /file offset 0x100000/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.offset, 0x100000n, true))));
  expectError(t, 'huge p_filesz', 'truncated', /ELF program header/,
    input(patched(pvh, (dv) => { dv.setBigUint64(data + PH.filesz, 0x7fff_0000n, true); dv.setBigUint64(data + PH.memsz, 0x7fff_0000n, true); })));
  expectError(t, 'huge e_phnum', 'truncated', /program header table \(65534 x 56/,
    input(patched(pvh, (dv) => dv.setUint16(56, 0xfffe, true))));
  expectError(t, 'e_phnum = PN_XNUM', 'unsupported', /PN_XNUM/, input(patched(pvh, (dv) => dv.setUint16(56, 0xffff, true))));
  expectError(t, 'e_phentsize too small', 'bad-field', /e_phentsize 8/, input(patched(pvh, (dv) => dv.setUint16(54, 8, true))));
  expectError(t, 'ELF header cut short', 'truncated', /ELF header/, input(pvh.subarray(0, 40)));
  expectError(t, 'big-endian ELF', 'unsupported', /little-endian/, input(patched(pvh, (dv) => dv.setUint8(5, 2))));
  expectError(t, 'not x86', 'unsupported', /e_machine 40/, input(patched(pvh, (dv) => dv.setUint16(18, 40, true))));

  const note = phdr(pvh, (dv, o) => dv.getUint32(o, true) === 4);
  const noteOff = Number(new DataView(pvh.buffer).getBigUint64(note + PH.offset, true));
  expectError(t, 'note with a huge namesz', 'truncated', /note at offset 0x0 runs past/,
    input(patched(pvh, (dv) => dv.setUint32(noteOff, 0xffff_fff0, true))));
  expectError(t, 'PVH entry note of 2 bytes', 'bad-field', /2-byte descriptor/,
    input(patched(pvh, (dv) => dv.setUint32(noteOff + 4, 2, true))));
  expectError(t, 'PVH entry above 4 GiB', 'bad-field', /above 4 GiB/,
    input(patched(pvh, (dv) => dv.setUint32(noteOff + 16 + 4, 1, true))));
  expectError(t, 'PVH entry outside the segments', 'bad-field', /outside every loaded segment/,
    input(patched(pvh, (dv) => dv.setUint32(noteOff + 16, 0x50_0000, true))));
  expectError(t, 'segment on the BIOS tables area', 'overlap', /BIOS tables area/, {
    kernel: patched(pvh, (dv) => dv.setBigUint64(data + PH.paddr, 0xf8000n, true)), layout,
    e820: [{ base: 0, length: 0x100000, type: 1 }, { base: 0x100000, length: layout.lowmem - 0x100000, type: 1 }],
  });
  expectError(t, 'segment on the loader command line', 'overlap', /overlaps command line/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.paddr, 0x20000n, true))));
  expectError(t, 'two segments on top of each other', 'overlap', /ELF segment \d+ .* overlaps ELF segment/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.paddr, 0x100010n, true))));
  expectError(t, 'segment inside the VGA hole', 'out-of-ram', /not inside guest RAM/,
    input(patched(pvh, (dv) => dv.setBigUint64(data + PH.paddr, 0xb8000n, true))));
  expectError(t, 'command line over the loader area', 'cmdline-too-long', /65536 bytes/,
    input(pvh, { cmdline: 'a'.repeat(65536) }));
  expectError(t, 'NUL inside the command line', 'bad-input', /NUL/, input(pvh, { cmdline: 'a\0b' }));
  expectError(t, 'initrd larger than RAM', 'out-of-ram', /initrd/, input(pvh, { initrd: new Uint8Array(300 * MiB) }));
  t.end();
});

test('hostile Multiboot images', { skip: missing !== undefined }, (t) => {
  const mb = buildMultibootElf();
  const hdr = Buffer.from(mb.bytes).indexOf(Buffer.from([0x02, 0xb0, 0xad, 0x1b]));
  expectError(t, 'bad checksum', 'bad-checksum', /magic \+ flags \+ checksum is not 0/,
    input(patched(mb.bytes, (dv) => dv.setUint32(hdr + 8, dv.getUint32(hdr + 8, true) + 1, true))));
  expectError(t, 'unknown required flag', 'unsupported', /requires flags 0x8/, input(patched(mb.bytes, (dv) => {
    dv.setUint32(hdr + 4, 0xb, true);
    dv.setUint32(hdr + 8, (-(0x1badb002 + 0xb)) >>> 0, true);
  })));

  const aout = buildAoutKernel();
  const at = aout.symbols.get('mb_header')! - aout.symbols.get('start')!;
  expectError(t, 'a.out load_end_addr past the file', 'truncated', /load_end_addr needs/,
    input(patched(aout.bytes, (dv) => dv.setUint32(at + 20, aout.symbols.get('start')! + 0x10000, true))));
  expectError(t, 'a.out load_addr above header_addr', 'bad-field', /load_addr .* is above header_addr/,
    input(patched(aout.bytes, (dv) => dv.setUint32(at + 16, aout.symbols.get('mb_header')! + 4, true))));
  expectError(t, 'a.out load_addr before the file start', 'bad-field', /before the start of the file/,
    input(patched(aout.bytes, (dv) => dv.setUint32(at + 16, aout.symbols.get('start')! - 0x1000, true))));
  expectError(t, 'a.out bss_end_addr below load_end_addr', 'bad-field', /bss_end_addr/,
    input(patched(aout.bytes, (dv) => dv.setUint32(at + 24, aout.symbols.get('start')! + 8, true))));
  expectError(t, 'a.out entry outside the image', 'bad-field', /entry_addr/,
    input(patched(aout.bytes, (dv) => dv.setUint32(at + 28, 0x10, true))));
  expectError(t, 'a.out image past RAM', 'out-of-ram', /not inside guest RAM/, input(patched(aout.bytes, (dv) => {
    for (const f of [12, 16, 20, 24, 28]) dv.setUint32(at + f, dv.getUint32(at + f, true) - 0x400000 + 0x2000_0000, true);
  })));
  expectError(t, 'multiboot image that is neither ELF nor flag 16', 'unsupported', /not ELF/,
    input(patched(aout.bytes, (dv) => {
      dv.setUint32(at + 4, 0x3, true);
      dv.setUint32(at + 8, (-(0x1badb002 + 0x3)) >>> 0, true);
    })));
  t.end();
});

test('unknown formats and bad caller input', { skip: missing !== undefined }, (t) => {
  expectError(t, 'empty file', 'unknown-format', /empty/, input(new Uint8Array(0)));
  expectError(t, 'random bytes', 'unknown-format', /not a bzImage, a PVH ELF or a Multiboot image/,
    input(new Uint8Array(16384).map((_, i) => (i * 2654435761) >>> 24)));
  const plainElf = patched(buildPvhKernel(64).bytes, (dv) => {
    // turn the note segment into PT_NULL and drop section headers: a plain ELF
    const phoff = Number(dv.getBigUint64(32, true));
    for (let i = 0; i < dv.getUint16(56, true); i++) if (dv.getUint32(phoff + i * 56, true) === 4) dv.setUint32(phoff + i * 56, 0, true);
    dv.setBigUint64(40, 0n, true);
  });
  expectError(t, 'ELF without PVH note or Multiboot header', 'unknown-format', /neither a PVH entry note/, input(plainElf));
  const pvh = buildPvhKernel(64).bytes;
  expectError(t, 'E820 with 200 entries', 'bad-input', /200 entries/, {
    kernel: pvh, layout, e820: Array.from({ length: 200 }, (_, i) => ({ base: i * 0x1000, length: 0x1000, type: 1 })),
  });
  expectError(t, 'E820 RAM past the layout', 'bad-input', /not backed by guest RAM/, {
    kernel: pvh, layout, e820: [{ base: 0x100000, length: 2 ** 30, type: 1 }],
  });
  expectError(t, 'overlapping E820 entries', 'bad-input', /overlaps the previous entry/, {
    kernel: pvh, layout, e820: [{ base: 0, length: 0x200000, type: 1 }, { base: 0x100000, length: 0x100000, type: 2 }],
  });
  expectError(t, 'E820 with a fractional length', 'bad-input', /not a valid range/, {
    kernel: pvh, layout, e820: [{ base: 0, length: 0.5, type: 1 }],
  });
  expectError(t, 'RSDP address not a number', 'bad-input', /RSDP/, input(pvh, { rsdpAddress: -1 }));
  t.end();
});
