// Can this machine's /dev/kvm boot an unmodified Linux guest? Not under kvm_pvm, the software-assisted
// nested KVM of these build machines: it runs guest user mode natively but emulates guest kernel mode,
// so Linux crawls and stops on emulation failures. Real hardware virtualisation (and the L1 machine
// this harness boots, where kvm_amd runs on emulated SVM) can.
import { access, constants } from 'node:fs/promises';

export interface KvmVerdict {
  runsUnmodifiedLinux: boolean;
  reason: string;
}

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}

/**
 * The verdict and why. TSBHYVE_HOST_KVM=real|pvm overrides the detection (for a machine where it
 * guesses wrong); TSBHYVE_IN_L1=1 is set by the L1 machine's init, whose KVM is kvm_amd.
 */
export async function hostKvmVerdict(env: NodeJS.ProcessEnv = process.env): Promise<KvmVerdict> {
  if (env.TSBHYVE_HOST_KVM === 'real') return { runsUnmodifiedLinux: true, reason: 'TSBHYVE_HOST_KVM=real' };
  if (env.TSBHYVE_HOST_KVM === 'pvm') return { runsUnmodifiedLinux: false, reason: 'TSBHYVE_HOST_KVM=pvm' };
  if (!(await exists('/dev/kvm', constants.R_OK | constants.W_OK))) {
    return { runsUnmodifiedLinux: false, reason: 'no usable /dev/kvm' };
  }
  if (env.TSBHYVE_IN_L1 === '1') return { runsUnmodifiedLinux: true, reason: 'inside the nested-KVM L1 machine' };
  if (await exists('/sys/module/kvm_pvm')) {
    return { runsUnmodifiedLinux: false, reason: 'kvm_pvm is loaded (guest kernel mode is emulated)' };
  }
  return { runsUnmodifiedLinux: true, reason: 'hardware KVM (kvm_intel or kvm_amd)' };
}

export async function hostKvmRunsUnmodifiedLinux(): Promise<boolean> {
  return (await hostKvmVerdict()).runsUnmodifiedLinux;
}
