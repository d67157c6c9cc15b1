// Typed surface of the addon's virtio-console data path (native/virtio/console_napi.cc).
import { nativeVirtio } from '../virtio-blk/native.js';

export interface ConsolePortSpec {
  name: string;
  /** the unix-domain socket the device listens on */
  path: string;
  /** announce it as a console (the guest makes it an hvc) */
  console?: boolean;
}

export interface ConsoleQueueSpec {
  size: number;
  pfn: number;
  notifyFd: number;
  interruptFd?: number;
}

export interface ConsoleStart {
  /** indexed by queue number; null for a queue the driver did not set up */
  queues: Array<ConsoleQueueSpec | null>;
  multiport?: boolean;
  eventIdx?: boolean;
  indirect?: boolean;
  useIsr?: boolean;
}

export interface ConsolePortStats {
  name: string;
  /** a host client is connected */
  connected: boolean;
  /** the driver sent PORT_READY */
  ready: boolean;
  /** the driver's last PORT_OPEN said a guest program has it open */
  guestOpen: boolean;
}

export interface ConsoleStats {
  rxBytes: number;
  txBytes: number;
  txDiscarded: number;
  badChains: number;
  ctrlIn: number;
  ctrlOut: number;
  ctrlErrors: number;
  ctrlDropped: number;
  connects: number;
  refused: number;
  interrupts: number;
  queueError: string | null;
  ports: ConsolePortStats[];
}

export const CONSOLE_EVENT_INTERRUPT = 1;
export const CONSOLE_EVENT_NEEDS_RESET = 2;
export const CONSOLE_EVENT_CONNECT = 3;
export const CONSOLE_EVENT_DISCONNECT = 4;

export interface NativeConsoleDevice {
  start(memory: object, cfg: ConsoleStart): void;
  stop(): void;
  resetGuest(): void;
  close(): void;
  takeIsr(): number;
  stats(): ConsoleStats;
}

export function newConsoleDevice(ports: ConsolePortSpec[], onEvent: (kind: number, arg: number) => void): NativeConsoleDevice {
  const addon = nativeVirtio() as unknown as {
    ConsoleDevice: new (ports: ConsolePortSpec[], onEvent: (kind: number, arg: number) => void) => NativeConsoleDevice;
  };
  return new addon.ConsoleDevice(ports, onEvent);
}
