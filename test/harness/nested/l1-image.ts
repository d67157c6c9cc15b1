// The L1 machine's image: Debian's generic kernel (the cloud flavour lacks the 9p modules) with kvm,
// kvm_amd and the virtio-9p modules, busybox, and l1-init.sh as /init. Cached under .cache/nested/l1/.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage, type ImageSpec, type LinuxImage } from '../../../firmware/linux/image.js';

const here = dirname(fileURLToPath(import.meta.url));

export const l1ImageSpec: ImageSpec = {
  cacheDir: 'nested/l1',
  kernelSeries: '6.1.0',
  kernelFlavour: 'amd64',
  // virtio_blk + ext4 (crc32c is its soft dependency, not in modules.dep): the scratch disk at /var/tmp (O_DIRECT and hole punching, which tmpfs lacks).
  modules: ['virtio_pci', '9pnet_virtio', '9p', 'kvm', 'kvm_amd', 'virtio_blk', 'crc32c_generic', 'ext4'],
  // For network tests of the VMM in L1 (tap devices, vhost); harmless when unused.
  optionalModules: ['tun', 'vhost_net'],
  // L2 guests need no nested virtualisation of their own; leaving it off keeps kvm_amd simpler.
  moduleParams: { kvm_amd: 'nested=0' },
  initScript: join(here, 'l1-init.sh'),
  unpackedKernel: true,
};

export function l1Image(): LinuxImage {
  return buildImage(l1ImageSpec);
}
