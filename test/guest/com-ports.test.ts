// test-needs: kvm
// COM1-COM4 under a real guest: COM1 on stdio, COM2-COM4 on ptys (the tty backend). The test guest's uart
// suite checks every port from inside and, with announce=1, sends one line on each of COM2-COM4, which must come
// out of that port's pty.
import test from 'tape';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { testguestPath, tsbhyveSkipReason } from '../../firmware/testguest/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ptyPair = `${root}test/platform/isa/fixtures/pty-pair.py`;
const skip = tsbhyveSkipReason();
if (skip) console.log(`# skipping COM port guest test: ${skip}`);

interface Pty {
  proc: ChildProcessWithoutNullStreams;
  path: string;
  output: () => string;
}

/** A pty pair held open by a small python relay; resolves with the slave's path once it is printed. */
function openPty(): Promise<Pty> {
  return new Promise((resolve, reject) => {
    const proc = spawn('python3', [ptyPair]);
    let out = '';
    let path: string | undefined;
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (path === undefined && out.includes('\n')) {
        path = out.slice(0, out.indexOf('\n'));
        out = out.slice(out.indexOf('\n') + 1);
        resolve({ proc, path, output: () => out });
      }
    });
    proc.on('error', reject);
  });
}

test('guest: COM1-COM4 are present; COM2-COM4 output reaches tty backends', { skip, timeout: 120_000 }, async (t) => {
  const ptys = await Promise.all([openPty(), openPty(), openPty()]);
  try {
    const r = spawnSync(
      process.execPath,
      [
        `${root}bin/tsbhyve.js`, '-c', '1', '-m', '256M', '-s', '0,hostbridge', '-s', '31,lpc',
        '-l', 'com1,stdio', '-l', `com2,${ptys[0]!.path}`, '-l', `com3,${ptys[1]!.path}`, '-l', `com4,${ptys[2]!.path}`,
        '-o', `boot.kernel=${testguestPath()}`, '-o', 'boot.cmdline=test=uart announce=1 uarts=4', 'comvm',
      ],
      { encoding: 'latin1', timeout: 90_000 },
    );
    t.equal(r.status, 1, 'the guest powered off');
    t.ok(/TESTGUEST uart DONE pass=\d+ fail=0/.test(r.stdout), 'the uart suite passed for all four ports');
    await new Promise((res) => setTimeout(res, 200));
    ptys.forEach((p, i) => {
      t.ok(p.output().includes(`TESTGUEST uart hello from com${i + 2}`), `COM${i + 2}'s line came out of its pty`);
    });
  } finally {
    for (const p of ptys) p.proc.kill();
  }
});
