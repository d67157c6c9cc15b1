// Builds tiny real kernels with the host's GNU assembler and linker into a temporary directory, so the
// loader tests run on images a real toolchain produced. Addresses the tests check come from `nm`, not
// from the loader's own ELF reader.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BuiltKernel {
  bytes: Uint8Array;
  /** symbol name -> address, from nm */
  symbols: Map<string, number>;
  /** the raw bytes of named output sections (objcopy -O binary -j NAME) */
  section(name: string): Uint8Array;
}

/** Why kernels cannot be built here, or undefined when as/ld/nm/objcopy all run. */
export function toolchainMissing(): string | undefined {
  for (const tool of ['as', 'ld', 'nm', 'objcopy']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Assembles `asm` (GNU as syntax) and links it with `script`; `bits` picks elf_i386 or elf_x86_64. */
export function buildKernel(asm: string, script: string, bits: 32 | 64): BuiltKernel {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-loader-'));
  try {
    writeFileSync(join(dir, 'k.S'), asm);
    writeFileSync(join(dir, 'k.ld'), script);
    run('as', [bits === 32 ? '--32' : '--64', 'k.S', '-o', 'k.o'], dir);
    run('ld', ['-m', bits === 32 ? 'elf_i386' : 'elf_x86_64', '-nostdlib', '--build-id=none', '-z', 'max-page-size=0x1000',
      '-z', 'noexecstack', '-T', 'k.ld', 'k.o', '-o', 'k.elf'], dir);
    const symbols = new Map<string, number>();
    for (const line of run('nm', ['k.elf'], dir).split('\n')) {
      const m = /^([0-9a-f]+) \S (\S+)$/.exec(line.trim());
      if (m) symbols.set(m[2]!, parseInt(m[1]!, 16));
    }
    const sections = new Map<string, Uint8Array>();
    for (const name of ['.text', '.data', '.multiboot']) {
      try {
        run('objcopy', ['-O', 'binary', '-j', name, 'k.elf', `s${name}.bin`], dir);
        sections.set(name, new Uint8Array(readFileSync(join(dir, `s${name}.bin`))));
      } catch {
        // the section does not exist in this kernel
      }
    }
    return {
      bytes: new Uint8Array(readFileSync(join(dir, 'k.elf'))),
      symbols,
      section(name) {
        const s = sections.get(name);
        if (!s) throw new Error(`section ${name} was not built`);
        return s;
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Links like buildKernel, then flattens the image with objcopy -O binary (for the a.out kludge). */
export function buildFlatKernel(asm: string, script: string): { bytes: Uint8Array; symbols: Map<string, number> } {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-loader-'));
  try {
    writeFileSync(join(dir, 'k.S'), asm);
    writeFileSync(join(dir, 'k.ld'), script);
    run('as', ['--32', 'k.S', '-o', 'k.o'], dir);
    run('ld', ['-m', 'elf_i386', '-nostdlib', '--build-id=none', '-z', 'noexecstack', '-T', 'k.ld', 'k.o', '-o', 'k.elf'], dir);
    run('objcopy', ['-O', 'binary', 'k.elf', 'k.bin'], dir);
    const symbols = new Map<string, number>();
    for (const line of run('nm', ['k.elf'], dir).split('\n')) {
      const m = /^([0-9a-f]+) \S (\S+)$/.exec(line.trim());
      if (m) symbols.set(m[2]!, parseInt(m[1]!, 16));
    }
    return { bytes: new Uint8Array(readFileSync(join(dir, 'k.bin'))), symbols };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// A PVH kernel: the Xen PHYS32_ENTRY note, code at 1 MiB, data and bss at 2 MiB.
const PVH_SCRIPT = `ENTRY(pvh_start)
SECTIONS {
  . = 0x100000;
  .text : { *(.text*) }
  .note : { *(.note*) }
  . = 0x200000;
  .data : { *(.data*) }
  .bss : { bss_start = .; *(.bss*) bss_end = .; }
}
`;

function pvhAsm(descBytes: 4 | 8): string {
  return `
.section .note.Xen, "a", @note
.align 4
.long 4
.long ${descBytes}
.long 18
.asciz "Xen"
.align 4
${descBytes === 8 ? '.quad pvh_start' : '.long pvh_start'}
.text
.code32
.globl pvh_start
pvh_start:
  # Report over port 0x500 (dwords): start_info magic, 4 command-line bytes, 4 .data bytes, a bss dword,
  # a value through the stack; then halt with interrupts off.
  mov $0x500, %dx
  mov (%ebx), %eax
  out %eax, %dx
  mov 24(%ebx), %esi
  mov (%esi), %eax
  out %eax, %dx
  mov marker, %eax
  out %eax, %dx
  mov bss_start, %eax
  out %eax, %dx
  push $0x12345678
  pop %eax
  out %eax, %dx
1: hlt
  jmp 1b
.data
.globl marker
marker: .ascii "TSBHYVE-PVH-DATA"
.bss
.space 0x3000
`;
}

export function buildPvhKernel(bits: 32 | 64): BuiltKernel {
  return buildKernel(pvhAsm(bits === 64 ? 8 : 4), PVH_SCRIPT, bits);
}

// A Multiboot ELF32 kernel: header in its own section first, page-align + memory-info flags.
const MB_ELF_SCRIPT = `ENTRY(mb_start)
SECTIONS {
  . = 0x100000;
  .multiboot : { *(.multiboot) }
  .text : { *(.text*) }
  . = 0x300000;
  .data : { *(.data*) }
  .bss : { bss_start = .; *(.bss*) bss_end = .; }
}
`;

const MB_ELF_ASM = `
.section .multiboot, "a"
.align 4
.long 0x1BADB002
.long 0x00000003
.long -(0x1BADB002 + 0x00000003)
.text
.code32
.globl mb_start
mb_start:
  # Report over port 0x500: eax (the loader magic), the info flags, 4 command-line bytes, 4 .data bytes,
  # a bss dword; then halt with interrupts off.
  mov $0x500, %dx
  out %eax, %dx
  mov (%ebx), %eax
  out %eax, %dx
  mov 16(%ebx), %esi
  mov (%esi), %eax
  out %eax, %dx
  mov marker, %eax
  out %eax, %dx
  mov bss_start, %eax
  out %eax, %dx
1: hlt
  jmp 1b
.data
.globl marker
marker: .ascii "TSBHYVE-MB-DATA"
.bss
.space 0x2000
`;

export function buildMultibootElf(): BuiltKernel {
  return buildKernel(MB_ELF_ASM, MB_ELF_SCRIPT, 32);
}

// A flat binary with the a.out kludge: the header names load, end, bss end and entry addresses.
const AOUT_SCRIPT = `ENTRY(start)
SECTIONS {
  . = 0x400000;
  .text : { *(.text*) }
  .data : { *(.data*) load_end = .; }
  .bss : { *(.bss*) }
  bss_end = .;
}
`;

const AOUT_ASM = `
.text
.code32
.globl start
start:
  jmp entry
.align 4
.globl mb_header
mb_header:
.long 0x1BADB002
.long 0x00010003
.long -(0x1BADB002 + 0x00010003)
.long mb_header
.long start
.long load_end
.long bss_end
.long entry
.globl entry
entry:
  mov $0x500, %dx
  out %eax, %dx
  mov (%ebx), %eax
  out %eax, %dx
  mov 16(%ebx), %esi
  mov (%esi), %eax
  out %eax, %dx
  mov marker, %eax
  out %eax, %dx
  mov load_end, %eax
  out %eax, %dx
1: hlt
  jmp 1b
.data
.globl marker
marker: .ascii "TSBHYVE-AOUT-DATA"
.bss
.space 0x1800
`;

export function buildAoutKernel(): { bytes: Uint8Array; symbols: Map<string, number> } {
  return buildFlatKernel(AOUT_ASM, AOUT_SCRIPT);
}
