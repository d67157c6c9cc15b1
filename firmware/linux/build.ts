// Builds the Linux test guest image and prints where it is.
// Usage: node --import tsx firmware/linux/build.ts   -> prints the kernel and initrd paths (JSON)
import { linuxGuestImage } from './guest-image.js';

const image = linuxGuestImage();
process.stdout.write(JSON.stringify(image, null, 2) + '\n');
