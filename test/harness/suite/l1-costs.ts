// Seconds each nested test file took inside one L1 on this kind of machine (2 cores, two L1s at once, TCG), so the
// runner can balance its L1 batches; only the ratios matter. A file missing here counts as 30 s. Refresh from the
// "took N s in L1" lines npm test prints when files are added or change a lot.
export const l1Costs: Record<string, number> = {
  'test/firmware/virtio-blk-durability.test.ts': 187,
  'test/firmware/virtio-blk.test.ts': 148,
  'test/firmware/nvme.test.ts': 144,
  'test/guest/linux.test.ts': 150,
  'test/firmware/tsbhyve.test.ts': 136,
  'test/devices/virtio-blk/cli.test.ts': 112,
  'test/harness/nested.test.ts': 70,
  'test/guest/bootrom.test.ts': 40,
  'test/devices/virtio-blk/kvm.test.ts': 39,
  'test/firmware/pwrbtn.test.ts': 37,
  'test/loader/kvm.test.ts': 29,
  'test/vm/open.test.ts': 26,
  'test/guest/com-ports.test.ts': 26,
  'test/vm/memory.test.ts': 17,
  'test/vm/rerun.test.ts': 16,
  'test/vm/eventloop.test.ts': 16,
  'test/vm/interrupts.test.ts': 15,
  'test/vm/stop.test.ts': 14,
  'test/vm/run-longmode.test.ts': 14,
  'test/vm/run-realmode.test.ts': 14,
  'test/vm/vcpu.test.ts': 13,
};
