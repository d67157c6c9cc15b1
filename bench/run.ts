// npm run bench: every benchmark, each printing its table of figures and ratios. The guest benches (boot, exits,
// the test guest's pio, virtio-blk, nvme and ahci) need KVM: on a host without a usable /dev/kvm they all run inside one
// nested-KVM L1 (test/harness/nested), tsbhyve and its QEMU+KVM peer side by side there, and their titles say
// "nested (TCG L1)". The no-VM benches (bench/virtio-blk, bench/nvme, bench/ahci) run on the host either way.
// Usage: node --import tsx bench/run.ts [guest|host]   (default: both)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kvmHostStatus } from '../src/vm/kvm-host.js';
import { L1Error, runInL1 } from '../test/harness/nested/l1.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const guestBenches = ['bench/boot/run.ts', 'bench/exits/run.ts', 'bench/testguest/pio.ts', 'bench/testguest/virtio-blk.ts', 'bench/testguest/nvme.ts', 'bench/testguest/ahci.ts', 'bench/testguest/virtio-net.ts'];
const hostBenches = ['bench/virtio-blk/run.ts', 'bench/nvme/run.ts', 'bench/ahci/run.ts', 'bench/fbuf/encode.ts'];
const which = process.argv[2] ?? 'all';

let failed = 0;
const runHere = (file: string) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
};

if (which !== 'host') {
  const kvm = kvmHostStatus();
  if (kvm.level !== 'none') {
    for (const f of guestBenches) runHere(f);
  } else {
    console.log(`bench: ${kvm.reason}; the guest benches run inside one nested-KVM L1 (QEMU TCG), with QEMU+KVM as the peer there`);
    const command = guestBenches.map((f) => `node --import tsx ${f} || failed=1`).join('\n');
    try {
      const r = await runInL1(`failed=0\n${command}\nexit $failed`, {
        timeoutMs: 3 * 3600_000,
        cwd: root,
        onLine: (l) => console.log(l.text),
      });
      if (r.status !== 0) failed++;
    } catch (e) {
      if (!(e instanceof L1Error)) throw e;
      console.error(`bench: ${e.message}\n${e.console.split('\n').slice(-30).join('\n')}`);
      failed++;
    }
  }
}
if (which !== 'guest') for (const f of hostBenches) runHere(f);
process.exit(failed > 0 ? 1 : 0);
