// A minimal bzImage built field by field from boot.rst, for tests that must not depend on a download
// and for hostile variants of single header fields.
export interface SyntheticBzOptions {
  version?: number;
  setupSects?: number;
  payload?: number;
  loadflags?: number;
  xloadflags?: number;
  kernelAlignment?: number;
  relocatable?: number;
  prefAddress?: number;
  initSize?: number;
  initrdAddrMax?: number;
  cmdlineSize?: number;
  headerEndByte?: number;
  bootFlag?: number;
}

export function syntheticBzImage(o: SyntheticBzOptions = {}): Uint8Array {
  const setupSects = o.setupSects ?? 1;
  const payload = o.payload ?? 0x2000;
  const file = new Uint8Array((setupSects + 1) * 512 + payload);
  const dv = new DataView(file.buffer);
  file[0x1f1] = setupSects;
  dv.setUint32(0x1f4, payload / 16, true); // syssize
  dv.setUint16(0x1fe, o.bootFlag ?? 0xaa55, true);
  file[0x200] = 0xeb; // jmp short
  file[0x201] = o.headerEndByte ?? 0x6a; // header ends at 0x26c
  dv.setUint32(0x202, 0x53726448, true); // "HdrS"
  dv.setUint16(0x206, o.version ?? 0x020f, true);
  file[0x211] = o.loadflags ?? 0x01;
  dv.setUint32(0x214, 0x100000, true);
  dv.setUint32(0x22c, o.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(0x230, o.kernelAlignment ?? 0x200000, true);
  file[0x234] = o.relocatable ?? 1;
  file[0x235] = 21;
  dv.setUint16(0x236, o.xloadflags ?? 0x3, true);
  dv.setUint32(0x238, o.cmdlineSize ?? 2047, true);
  dv.setBigUint64(0x258, BigInt(o.prefAddress ?? 0x1000000), true);
  dv.setUint32(0x260, o.initSize ?? 0x400000, true);
  for (let i = 0; i < payload; i++) file[(setupSects + 1) * 512 + i] = (i * 7 + 3) & 0xff;
  return file;
}
