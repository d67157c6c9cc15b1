// fbuf's keys (bhyve's pci_fbuf_parse_config): where the VNC server listens, the initial mode, VGA, wait, password.
// Errors carry bhyve's wording and end the start-up with status 4.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { ConfigNode, ConfigTree } from '../../src/config/tree.js';
import { DEFAULT_RFB_HOST, DEFAULT_RFB_PORT } from './rfb/address.js';

export const COLS_MIN = 640;
export const ROWS_MIN = 480;
export const COLS_MAX = 3840;
export const ROWS_MAX = 2160;
export const COLS_DEFAULT = 1024;
export const ROWS_DEFAULT = 768;
export const RFB_DEFAULT_HOST = DEFAULT_RFB_HOST;
export const RFB_DEFAULT_PORT = DEFAULT_RFB_PORT;

export type VgaMode = 'io' | 'on' | 'off';

export interface FbufOptions {
  host: string;
  port: number;
  width: number;
  height: number;
  vga: VgaMode;
  wait: boolean;
  password?: string;
}

const fail = (msg: string): BhyveError => new BhyveError(ExitStatus.ERROR, msg, false);

/** atoi: leading blanks, a sign, digits; anything else stops it (0 when there are none). */
function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  return m ? Number.parseInt(m[1]!, 10) : 0;
}

/** strtol(value, NULL, 10) stored into a uint16_t, as bhyve keeps the mode registers. */
function u16(s: string): number {
  return atoi(s) & 0xffff;
}

/** `rfb` (preferred) or `tcp`: IPv4:port, [IPv6%zone]:port, or a bare port. */
export function parseRfbAddress(value: string): { host: string; port: number } {
  if (value.startsWith('[')) {
    const close = value.indexOf(']', 1);
    if (close <= 1) throw fail(`fbuf: Invalid IPv6 address: "${value}"`);
    const host = value.slice(1, close);
    const rest = value.slice(close + 1);
    if (rest === '') return { host, port: RFB_DEFAULT_PORT };
    if (!rest.startsWith(':')) throw fail(`fbuf: Invalid IPv6 address: "${value}"`);
    if (rest.length === 1) throw fail(`fbuf: Missing port number: "${value}"`);
    return { host, port: atoi(rest.slice(1)) };
  }
  const colon = value.indexOf(':');
  if (colon < 0) return { host: RFB_DEFAULT_HOST, port: atoi(value) };
  if (colon + 1 === value.length) throw fail(`fbuf: Missing port number: "${value}"`);
  return { host: value.slice(0, colon), port: atoi(value.slice(colon + 1)) };
}

export function readFbufOptions(tree: ConfigTree, node: ConfigNode): FbufOptions {
  const wait = tree.getBoolInDefault(node, 'wait', false);
  const addr = tree.getIn(node, 'rfb') ?? tree.getIn(node, 'tcp');
  const { host, port } = addr !== undefined ? parseRfbAddress(addr) : { host: RFB_DEFAULT_HOST, port: RFB_DEFAULT_PORT };
  if (!(port >= 0 && port <= 65535)) throw fail(`fbuf: Invalid port number: "${addr}"`);
  const vgaValue = tree.getIn(node, 'vga') ?? 'io';
  if (vgaValue !== 'io' && vgaValue !== 'on' && vgaValue !== 'off') throw fail(`fbuf: Invalid vga setting: "${vgaValue}"`);
  const w = tree.getIn(node, 'w');
  const h = tree.getIn(node, 'h');
  const width = w !== undefined ? u16(w) : COLS_DEFAULT;
  const height = h !== undefined ? u16(h) : ROWS_DEFAULT;
  if (width > COLS_MAX || height > ROWS_MAX) throw fail(`fbuf: max resolution is ${COLS_MAX}x${ROWS_MAX}`);
  if (width < COLS_MIN || height < ROWS_MIN) throw fail(`fbuf: minimum resolution is ${COLS_MIN}x${ROWS_MIN}`);
  // bhyve cannot render VGA either ("VGA rendering not enabled"), but then carries on half set up; here it stops.
  if (vgaValue === 'on') throw fail('pci_fbuf: VGA rendering not enabled');
  return { host, port, width, height, vga: vgaValue, wait, password: tree.getIn(node, 'password') };
}
