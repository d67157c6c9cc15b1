// Boots the Linux test guest with a script (inside L1 where the host's KVM cannot run Linux) and exits
// with the script's status. For trying a guest test by hand.
// Usage: node --import tsx test/harness/nested/guest.ts [--cpus N] [--mem MIB] [--disk MIB]... -- <script>
import { parseArgs } from 'node:util';
import { runLinuxGuests } from './linux-guests.js';

const { values, positionals } = parseArgs({
  options: {
    cpus: { type: 'string', default: '1' },
    mem: { type: 'string', default: '256' },
    disk: { type: 'string', multiple: true, default: [] },
    timeout: { type: 'string', default: '120' },
  },
  allowPositionals: true,
});
if (positionals.length === 0) {
  process.stderr.write('usage: guest.ts [--cpus N] [--mem MIB] [--disk MIB]... [--timeout S] -- <script>\n');
  process.exit(2);
}

const run = await runLinuxGuests(
  [{ name: 'guest', script: positionals.join(' '), cpus: Number(values.cpus), memMiB: Number(values.mem), disks: values.disk.map(Number) }],
  { guestTimeoutSec: Number(values.timeout), onLine: (l) => process.stdout.write(l.text + '\n') },
);
const g = run.guests[0]!;
const s = (ms: number | null | undefined) => (ms == null ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);
process.stderr.write(
  `[guest] on ${run.where} (${run.reason}); L1 ready ${s(run.l1ReadyMs)}; guest init ${s(g.initMs)} ` +
    `(kernel ${s(g.kernelMs)}), total ${s(g.totalMs)}; status ${g.status ?? 'none'}, VMM status ${g.vmmStatus ?? 'none'}\n`,
);
process.exit(g.status ?? 125);
