// Network namespaces for the networking tests: each test makes its own (ip netns add), with a tap that has an
// address on the host side, runs tsbhyve and its peers inside it with `ip netns exec`, and deletes it afterwards,
// so no traffic leaves the namespace. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the tun driver.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

let made = 0;

export interface NetNs {
  readonly name: string;
  /** argv prefix that runs a command inside the namespace */
  exec(argv: string[]): string[];
  /** runs `ip ...` inside the namespace (throws on failure) */
  ip(...args: string[]): string;
  /** a persistent tap in the namespace, up, with `cidr` on the host side */
  addTap(name: string, cidr: string): void;
  delete(): void;
}

/** Why network namespace tests cannot run here, or undefined when they can. */
export function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const ip = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (ip.status !== 0 || !/iproute2/.test(ip.stdout)) return 'iproute2 (ip) is not installed (busybox ip has no netns)';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun (the tun driver is not loaded)';
  return undefined;
}

export function makeNetNs(prefix: string): NetNs {
  const name = `${prefix}-${process.pid}-${made++}`;
  execFileSync('ip', ['netns', 'add', name]);
  const ns: NetNs = {
    name,
    exec: (argv) => ['ip', 'netns', 'exec', name, ...argv],
    ip: (...args) => execFileSync('ip', ['netns', 'exec', name, 'ip', ...args], { encoding: 'utf8' }),
    addTap(tap, cidr) {
      ns.ip('tuntap', 'add', 'dev', tap, 'mode', 'tap', 'vnet_hdr');
      ns.ip('addr', 'add', cidr, 'dev', tap);
      ns.ip('link', 'set', tap, 'up');
    },
    delete() {
      spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
    },
  };
  ns.ip('link', 'set', 'lo', 'up');
  return ns;
}
