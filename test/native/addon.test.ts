// The addon builds during npm install and loads from build/Release.
import test from 'tape';
import { loadAddon, EXPECTED_ADDON_VERSION } from '../../src/native.js';

test('native addon loads and reports its version', (t) => {
  const v = loadAddon().version();
  t.equal(v.addon, EXPECTED_ADDON_VERSION, 'addon version matches the TypeScript side');
  t.ok(v.napi >= 8, 'built against N-API 8 or later');
  t.equal(v.backend, process.platform === 'linux' ? 'kvm' : process.platform === 'freebsd' ? 'vmm' : 'none', 'backend matches the OS');
  t.end();
});
