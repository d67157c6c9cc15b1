// Can this machine's /dev/kvm boot an unmodified Linux guest? The answer comes from src/vm/kvm-host.ts, the
// one probe that tsbhyve, the demo and the test runner share: not under kvm_pvm (guest kernel mode is
// emulated) nor without a usable /dev/kvm; yes on hardware KVM and inside the L1 this harness boots.
import { kvmHostMeets, kvmHostStatus } from '../../../src/vm/kvm-host.js';

export interface KvmVerdict {
  runsUnmodifiedLinux: boolean;
  reason: string;
}

/** TSBHYVE_HOST_KVM=none|pvm|hardware overrides the probe; TSBHYVE_IN_L1=1 is set by the L1 machine's init. */
export async function hostKvmVerdict(env: NodeJS.ProcessEnv = process.env): Promise<KvmVerdict> {
  const status = kvmHostStatus({ env });
  return { runsUnmodifiedLinux: kvmHostMeets(status, 'linux'), reason: status.reason };
}

export async function hostKvmRunsUnmodifiedLinux(): Promise<boolean> {
  return (await hostKvmVerdict()).runsUnmodifiedLinux;
}
