// The network options of a virtio-net function (bhyve_config(5): backend, mac, mtu, type, hostfwd), checked as
// net_backends.c and net_utils.c check them, with bhyve's wording.
import { createHash } from 'node:crypto';
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { ConfigNode, ConfigTree } from '../../src/config/tree.js';

/**
 * `fd` (tsbhyve only, `fd:N`): an open descriptor inherited from the parent, a tap (opened by a privileged
 * launcher) or a SOCK_SEQPACKET/SOCK_DGRAM socket carrying one virtio_net_hdr + frame per record.
 */
export type NetBackendKind = 'tap' | 'netgraph' | 'netmap' | 'slirp' | 'fd';

export interface NetOptions {
  /** the `backend` value as given (tap0, vmnet1, slirp, ...) */
  backend: string;
  kind: NetBackendKind;
  mac: Uint8Array;
  /** advertised through VIRTIO_NET_F_MTU */
  mtu: number;
  /** slirp: the `hostfwd` rules, and whether the guest may reach out (`open`; bhyve's default is restricted) */
  slirp?: { forwards: SlirpForwardRule[]; open: boolean };
}

export interface SlirpForwardRule {
  udp: boolean;
  hostAddr: string;
  hostPort: number;
  guestAddr: string;
  guestPort: number;
}

/**
 * bhyve's slirp `hostfwd` syntax: rules separated by `;`, each `proto:haddr:hport-gaddr:gport` (proto `udp`, anything
 * else TCP); an empty address is any (host) or the guest's DHCP address (guest), an empty port 0.
 */
export function parseHostfwd(value: string): SlirpForwardRule[] {
  return value.split(';').map((rule) => {
    const bad = (why: string): BhyveError => fail(`unable to parse hostfwd rule '${rule}': ${why}`);
    const colon = rule.indexOf(':');
    if (colon < 0) throw bad('Invalid argument');
    const proto = rule.slice(0, colon);
    const rest = rule.slice(colon + 1);
    const dash = rest.indexOf('-');
    if (dash < 0) throw bad('Invalid argument');
    const side = (text: string): { addr: string; port: number } => {
      const c = text.indexOf(':');
      if (c < 0) throw bad('Invalid argument');
      const addr = text.slice(0, c);
      if (addr !== '' && !/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) throw bad('Protocol family not supported');
      const portText = text.slice(c + 1);
      const port = portText === '' ? 0 : Number.parseInt(portText, 10) || 0;
      if (port < 0 || port > 65535) throw bad('Invalid argument');
      return { addr, port };
    };
    const host = side(rest.slice(0, dash));
    const guest = side(rest.slice(dash + 1));
    return { udp: proto === 'udp', hostAddr: host.addr, hostPort: host.port, guestAddr: guest.addr, guestPort: guest.port };
  });
}

/** bhyve's VTNET_MIN_MTU (ETHERMIN) and VTNET_MAX_MTU (65535 minus an Ethernet header). */
export const NET_MIN_MTU = 46;
export const NET_MAX_MTU = 65535 - 14;
export const NET_DEFAULT_MTU = 1500;

const fail = (message: string): BhyveError => new BhyveError(ExitStatus.ERROR, message, false);

/** net_genmac: OUI 00:a0:98 (NetApp) and the first three bytes of MD5("<slot>-<func>-<vmname>"). */
export function defaultMac(slot: number, func: number, vmName: string): Uint8Array {
  const d = createHash('md5').update(`${slot}-${func}-${vmName}`).digest();
  return Uint8Array.from([0x00, 0xa0, 0x98, d[0]!, d[1]!, d[2]!]);
}

/** net_parsemac: six hex octets separated by ':' (ether_aton), not multicast and not all zero. */
export function parseMac(text: string): Uint8Array | undefined {
  const parts = text.split(':');
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) return undefined;
  const mac = Uint8Array.from(parts.map((p) => parseInt(p, 16)));
  if (mac[0]! & 1 || mac.every((b) => b === 0)) return undefined;
  return mac;
}

export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** netbe_init's choice: `type` when set, else the prefix of `backend`. */
export function backendKind(backend: string, type: string | undefined): NetBackendKind | undefined {
  const t = type ?? backend;
  if (/^fd:\d+$/.test(backend) && (type === undefined || type === 'fd')) return 'fd';
  if (/^(tap|vmnet)/.test(t)) return 'tap';
  if (t.startsWith('netgraph')) return 'netgraph';
  if (t.startsWith('netmap') || t.startsWith('vale')) return 'netmap';
  if (t.startsWith('slirp')) return 'slirp';
  return undefined;
}

export function readNetOptions(tree: ConfigTree, node: ConfigNode, slot: number, func: number): NetOptions {
  const backend = tree.getIn(node, 'backend');
  if (backend === undefined || backend === '') throw fail('virtio-net: no backend given (e.g. -s 2,virtio-net,tap0)');
  const kind = backendKind(backend, tree.getIn(node, 'type'));
  if (!kind) throw fail(`backend device ${backend} not found`);
  const macText = tree.getIn(node, 'mac');
  let mac: Uint8Array;
  if (macText === undefined) {
    mac = defaultMac(slot, func, tree.get('name') ?? '');
  } else {
    const m = parseMac(macText);
    if (!m) throw fail(`Invalid MAC ${macText}`);
    mac = m;
  }
  const mtuText = tree.getIn(node, 'mtu');
  let mtu = NET_DEFAULT_MTU;
  if (mtuText !== undefined) {
    // net_parsemtu: strtoul base 0 (decimal, 0x hex or 0 octal), the whole string.
    const n = /^0x[0-9a-f]+$/i.test(mtuText) ? parseInt(mtuText, 16) : /^0[0-7]*$/.test(mtuText) ? parseInt(mtuText, 8) : /^[1-9]\d*$/.test(mtuText) ? Number(mtuText) : NaN;
    if (!(n >= NET_MIN_MTU && n <= NET_MAX_MTU)) throw fail(`invalid MTU '${mtuText}': expected ${NET_MIN_MTU} to ${NET_MAX_MTU}`);
    mtu = n;
  }
  const slirp =
    kind === 'slirp'
      ? { forwards: tree.getIn(node, 'hostfwd') ? parseHostfwd(tree.getIn(node, 'hostfwd')!) : [], open: tree.getBoolInDefault(node, 'open', false) }
      : undefined;
  return { backend, kind, mac, mtu, slirp };
}
