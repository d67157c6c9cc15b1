// What this machine's /dev/kvm can do, and why not when it cannot. One answer for tsbhyve's start-up
// message, the demo and the test runner (which sends guest tests into the nested-KVM L1 when the host
// cannot run them), so they never disagree.
//
// Three levels, because kvm_pvm sits between "none" and "hardware":
// - no usable /dev/kvm: nothing boots (absent, no permission, or a PVM host whose kvm_pvm did not bind);
// - kvm_pvm: small guests run (it runs guest user mode natively and emulates kernel mode), an unmodified
//   Linux kernel does not (it crawls and stops on emulation failures);
// - hardware KVM (kvm_intel/kvm_amd, also the L1's kvm_amd on emulated SVM): everything runs.
import { accessSync, constants, existsSync, closeSync, openSync } from 'node:fs';

export type KvmHostLevel = 'none' | 'pvm' | 'hardware';

export type KvmUnusableCause = 'absent' | 'permission' | 'pvm-unbound' | 'open-failed';

export interface KvmHostStatus {
  level: KvmHostLevel;
  /** Set when level is 'none'. */
  cause?: KvmUnusableCause;
  /** One line a person can act on, e.g. "/dev/kvm is absent (no KVM module is loaded)". */
  reason: string;
}

export interface KvmHostProbe {
  /** Defaults to the process environment; TSBHYVE_HOST_KVM=none|pvm|hardware overrides the probe. */
  env?: NodeJS.ProcessEnv;
  /** The device to try (default /dev/kvm); tests point it elsewhere. */
  device?: string;
  /** Where kernel modules show up (default /sys/module). */
  sysModule?: string;
}

const OVERRIDES: Record<string, KvmHostStatus> = {
  none: { level: 'none', cause: 'absent', reason: 'TSBHYVE_HOST_KVM=none' },
  pvm: { level: 'pvm', reason: 'TSBHYVE_HOST_KVM=pvm' },
  hardware: { level: 'hardware', reason: 'TSBHYVE_HOST_KVM=hardware' },
  // The older spelling the harness used.
  real: { level: 'hardware', reason: 'TSBHYVE_HOST_KVM=real' },
};

/** Probes /dev/kvm without creating a VM: existence, permission, and which KVM module provides it. */
export function kvmHostStatus(probe: KvmHostProbe = {}): KvmHostStatus {
  const env = probe.env ?? process.env;
  const device = probe.device ?? '/dev/kvm';
  const sysModule = probe.sysModule ?? '/sys/module';
  const forced = env.TSBHYVE_HOST_KVM;
  if (forced && OVERRIDES[forced]) return OVERRIDES[forced]!;
  const pvmLoaded = existsSync(`${sysModule}/kvm_pvm`);

  if (!existsSync(device)) {
    if (pvmLoaded) {
      return {
        level: 'none',
        cause: 'pvm-unbound',
        reason: `${device} is absent: this kernel is itself a PVM guest and its kvm_pvm module did not bind`,
      };
    }
    return { level: 'none', cause: 'absent', reason: `${device} is absent (is a KVM module loaded?)` };
  }
  try {
    accessSync(device, constants.R_OK | constants.W_OK);
    closeSync(openSync(device, 'r+'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      return { level: 'none', cause: 'permission', reason: `no permission to open ${device} (join its group, usually kvm)` };
    }
    return { level: 'none', cause: 'open-failed', reason: `cannot open ${device}: ${(e as Error).message}` };
  }
  // Inside the nested-KVM L1 the module is kvm_amd on emulated SVM: hardware-like.
  if (env.TSBHYVE_IN_L1 === '1') return { level: 'hardware', reason: 'inside the nested-KVM L1 (kvm_amd on emulated SVM)' };
  if (pvmLoaded) return { level: 'pvm', reason: 'kvm_pvm: guest kernel mode is emulated, unmodified Linux does not boot' };
  return { level: 'hardware', reason: 'hardware KVM (kvm_intel or kvm_amd)' };
}

/** What a guest needs of the host's KVM: 'kvm' for small guests, 'linux' for an unmodified Linux kernel. */
export type KvmNeed = 'kvm' | 'linux';

/** Whether the host meets `need`. */
export function kvmHostMeets(status: KvmHostStatus, need: KvmNeed): boolean {
  return need === 'kvm' ? status.level !== 'none' : status.level === 'hardware';
}
