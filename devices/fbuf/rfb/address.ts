// bhyve's fbuf listen address (`rfb=` / `tcp=`, bhyve_config(5)): "IPv4:port", "[IPv6%zone]:port", or a bare
// port on 127.0.0.1. The default is 127.0.0.1:5900.

export interface ListenAddress {
  host: string;
  port: number;
}

export const DEFAULT_RFB_HOST = '127.0.0.1';
export const DEFAULT_RFB_PORT = 5900;

export class RfbAddressError extends Error {
  override readonly name = 'RfbAddressError';
}

function parsePort(s: string, whole: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) > 65535) throw new RfbAddressError(`invalid rfb port in ${JSON.stringify(whole)}`);
  return Number(s);
}

export function parseRfbAddress(value: string): ListenAddress {
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(value);
  if (v6 !== null) return { host: v6[1]!, port: parsePort(v6[2]!, value) };
  const colon = value.lastIndexOf(':');
  if (colon < 0) return { host: DEFAULT_RFB_HOST, port: parsePort(value, value) };
  const host = value.slice(0, colon);
  if (host === '' || host.includes(':')) throw new RfbAddressError(`invalid rfb address ${JSON.stringify(value)} (IPv6 needs [addr]:port)`);
  return { host, port: parsePort(value.slice(colon + 1), value) };
}
