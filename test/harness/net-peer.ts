// The host end of the test guest's virtio-net suite, run inside the test's network namespace (`ip netns exec NS
// node --import tsx test/harness/net-peer.ts GUEST_IP LOCAL_IP`): waits for the guest's "TESTGUEST-HELLO" on UDP
// port 9999, flushes the neighbour table and pings it with busybox (so the kernel asks for its MAC by ARP), has datagrams of several sizes echoed from port 7 (compared byte for byte;
// the kernel drops any with a bad checksum), ends with "TESTGUEST-QUIT" and prints one JSON line of results.
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';

const [guest, local] = process.argv.slice(2) as [string, string];

function receive(sock: Socket, timeoutMs: number): Promise<{ msg: Buffer; from: string } | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      sock.removeListener('message', on);
      resolve(undefined);
    }, timeoutMs);
    const on = (msg: Buffer, rinfo: { address: string }): void => {
      clearTimeout(timer);
      sock.removeListener('message', on);
      resolve({ msg, from: rinfo.address });
    };
    sock.on('message', on);
  });
}

const result: Record<string, unknown> = {};
const hello = createSocket('udp4');
await new Promise<void>((r) => hello.bind(9999, local, r));
const h = await receive(hello, 90_000);
hello.close();
result.hello = h ? h.msg.toString('latin1') : null;
result.helloFrom = h?.from ?? null;

if (h) {
  // The guest's own ARP request taught the kernel its address; forget it so the ping has to ask.
  spawnSync('ip', ['neigh', 'flush', 'all'], { stdio: 'ignore' });
  const ping = spawnSync('busybox', ['ping', '-c', '3', '-W', '5', guest], { encoding: 'utf8', timeout: 30_000 });
  result.ping = { status: ping.status, received: /(\d+) packets received/.exec(ping.stdout)?.[1] ?? null };

  const echo = createSocket('udp4');
  await new Promise<void>((r) => echo.bind(0, local, r));
  const echoes: Array<{ size: number; ok: boolean }> = [];
  for (const size of [1, 100, 1000, 1472]) {
    const data = Buffer.alloc(size, 0);
    for (let i = 0; i < size; i++) data[i] = (i * 7 + size) & 0xff;
    let ok = false;
    for (let attempt = 0; attempt < 3 && !ok; attempt++) {
      echo.send(data, 7, guest);
      const got = await receive(echo, 3000);
      ok = got !== undefined && got.msg.equals(data);
    }
    echoes.push({ size, ok });
  }
  result.echoes = echoes;
  echo.send(Buffer.from('TESTGUEST-QUIT'), 7, guest);
  const q = await receive(echo, 5000);
  result.quitEchoed = q?.msg.toString('latin1') === 'TESTGUEST-QUIT';
  echo.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
