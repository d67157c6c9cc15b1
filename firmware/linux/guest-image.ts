// The Linux guest that device tests boot: Debian's cloud kernel (the quickest to boot) and a busybox
// initramfs with the virtio drivers and e2fsprogs, whose /init runs a test script and powers off.
// Boot it with `console=ttyS0 quiet` (under KVM every console character costs an exit).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { appendTo, cpioArchive, type CpioEntry } from './cpio.js';
import { buildImage, type ImageSpec, type LinuxImage } from './image.js';

const here = dirname(fileURLToPath(import.meta.url));

export const guestImageSpec: ImageSpec = {
  cacheDir: 'linux-guest',
  kernelSeries: '6.1.0',
  kernelFlavour: 'cloud-amd64',
  modules: ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_console', 'virtio_rng'],
  // Present in the generic flavour only; listed so switching flavour brings them along.
  optionalModules: ['ahci', 'e1000', 'xhci_pci', 'nvme'],
  initScript: join(here, 'init.sh'),
  // QEMU boots the ELF through PVH: no decompression, and no emulated CGA text console (see bzimage.ts).
  unpackedKernel: true,
  programs: [
    {
      package: 'e2fsprogs',
      // busybox sh runs its own applets before searching PATH, and it has a mke2fs applet: tests call
      // mkfs.ext4 / fsck.ext4 (no applet has those names) or the full /sbin path.
      paths: ['sbin/mke2fs', 'sbin/mkfs.ext4', 'sbin/e2fsck', 'sbin/fsck.ext4', 'sbin/tune2fs', 'sbin/dumpe2fs'],
      libraryPackages: ['libext2fs2', 'libcom-err2', 'libblkid1', 'libuuid1', 'libc6'],
    },
  ],
};

/**
 * The base kernel command line for the guest; append test-specific words. mitigations=off: the test
 * guest runs nothing untrusted, and the speculation barriers cost exits under nested virtualisation.
 * cryptomgr.notests: the crypto self-tests were the slowest initcall (1.8 s of a 5-8 s nested boot).
 */
export const guestCmdline = 'console=ttyS0 quiet panic=-1 mitigations=off cryptomgr.notests';

/** Builds (or reuses) the guest image. */
export function linuxGuestImage(): LinuxImage {
  return buildImage(guestImageSpec);
}

/**
 * The same guest on Debian's generic kernel, for the drivers the cloud flavour leaves out: ahci (SATA disks and
 * ATAPI drives through libata), the SCSI disk and CD-ROM drivers above it, ISO 9660 and ext4, and USB (xHCI, HID).
 */
export const genericGuestImageSpec: ImageSpec = {
  ...guestImageSpec,
  cacheDir: 'linux-guest-generic',
  kernelFlavour: 'amd64',
  // ext4 is a module here (built into the cloud kernel); crc32c is its soft dependency, not in modules.dep.
  // xhci_pci, usbhid, hid_generic and evdev: bhyve's USB tablet as a Linux input device.
  modules: [...guestImageSpec.modules, 'ahci', 'sd_mod', 'sr_mod', 'isofs', 'crc32c_generic', 'ext4', 'xhci_pci', 'usbhid', 'hid_generic', 'evdev'],
  optionalModules: [],
};

export function linuxGenericGuestImage(): LinuxImage {
  return buildImage(genericGuestImageSpec);
}

/**
 * Writes an initramfs that is the guest image plus `script` as /test.sh, so the guest runs it
 * without anything on the command line. Returns `out`.
 */
export function initrdWithTestScript(image: LinuxImage, script: string, out: string): string {
  appendTo(image.initrd, testScriptEntries(script), out);
  return out;
}

/** The archive to put after the image's initramfs (byte concatenation) to give the guest `script`. */
export function testScriptArchive(script: string): Buffer {
  return cpioArchive(testScriptEntries(script));
}

function testScriptEntries(script: string): CpioEntry[] {
  return [{ kind: 'file', path: 'test.sh', data: script, mode: 0o755 }];
}

