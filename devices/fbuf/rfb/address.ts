// Where the VNC server listens by default, as bhyve's (the `rfb=` / `tcp=` forms are parsed with bhyve's rules and
// wording in devices/fbuf/options.ts).

export interface ListenAddress {
  host: string;
  port: number;
}

export const DEFAULT_RFB_HOST = '127.0.0.1';
export const DEFAULT_RFB_PORT = 5900;
