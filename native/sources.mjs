// The one list of the addon's C++ sources, read by both CMakeLists.txt and binding.gyp.
// Every .cc under native/ is built, except the backends of other operating systems.
import { readdirSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const skip = process.platform === 'freebsd' ? ['native/vmm/kvm'] : ['native/vmm/freebsd'];

function walk(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const rel = relative(root, p).split('\\').join('/');
    if (skip.some((s) => rel === s || rel.startsWith(s + '/'))) continue;
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.cc')) out.push(rel);
  }
  return out;
}
const sep = process.argv[2] === '--cmake' ? ';' : ' ';
process.stdout.write(walk(join(root, 'native')).sort().join(sep));
