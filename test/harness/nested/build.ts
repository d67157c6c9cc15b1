// Builds (or finds in the cache) the images the nested harness boots, and prints where they are.
// Usage: node --import tsx test/harness/nested/build.ts   (e.g. to warm the cache before a test run)
import { linuxGenericGuestImage, linuxGuestImage } from '../../../firmware/linux/guest-image.js';
import { l1Image } from './l1-image.js';

process.stdout.write(JSON.stringify({ l1: l1Image(), guest: linuxGuestImage(), genericGuest: linuxGenericGuestImage() }, null, 2) + '\n');
