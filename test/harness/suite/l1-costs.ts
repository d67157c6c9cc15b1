// Seconds each nested test file took inside one L1 on this kind of machine (2 cores, two L1s at once, TCG), so the
// runner can balance its L1 batches; only the ratios matter. A file missing here counts as 30 s. Refresh from the
// "took N s in L1" lines npm test prints when files are added or change a lot.
export const l1Costs: Record<string, number> = {
  'test/firmware/tsbhyve.test.ts': 276,
  // measured with three L1s at once (an extra one beside a full run): high, which the balance tolerates
  'test/firmware/ahci.test.ts': 300,
  'test/firmware/ahci-durability.test.ts': 260,
  'test/firmware/nvme.test.ts': 230,
  'test/firmware/virtio-blk-durability.test.ts': 194,
  'test/devices/virtio-blk/cli.test.ts': 182,
  'test/firmware/virtio-blk.test.ts': 156,
  'test/firmware/nvme-durability.test.ts': 155,
  'test/guest/linux-ahci.test.ts': 155,
  'test/firmware/pwrbtn.test.ts': 99,
  'test/guest/linux-nvme.test.ts': 49,
  'test/guest/linux.test.ts': 48,
  'test/harness/nested.test.ts': 45,
  'test/guest/bootrom.test.ts': 36,
  'test/devices/virtio-blk/kvm.test.ts': 35,
  'test/vm/open.test.ts': 34,
  'test/loader/kvm.test.ts': 27,
  'test/guest/com-ports.test.ts': 24,
  'test/vm/run-realmode.test.ts': 19,
  'test/vm/memory.test.ts': 17,
  'test/vm/interrupts.test.ts': 16,
  'test/vm/vcpu.test.ts': 16,
  'test/vm/eventloop.test.ts': 15,
  'test/vm/rerun.test.ts': 15,
  'test/vm/run-longmode.test.ts': 15,
  'test/vm/stop.test.ts': 14,
};
