// Host fio on a benchmark's own file: the limit a VMM's disk path is measured against.
import { spawnSync } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';

export interface FioJob {
  file: string;
  rw: 'read' | 'randread' | 'randwrite';
  bs: number;
  iodepth: number;
  engine: 'io_uring' | 'psync';
  direct: boolean;
  seconds: number;
  /** Buffers in huge pages (hugetlbfs), as a guest's RAM is; falls back to malloc when there are none. */
  hugeBuffers?: boolean;
}

export interface FioResult {
  iops: number;
  /** Where fio's buffers were: 'hugetlbfs' or 'malloc' (4 KiB pages). */
  buffers: string;
}

/**
 * A mounted hugetlbfs with room for `bytes` of buffers, or undefined. Large O_DIRECT transfers into 4 KiB pages
 * reach the disk as many small segments, and on some disks (this host's) that alone costs 40% of the throughput,
 * so the host's best is measured with huge-page buffers when the host has them (e.g. after
 * `echo 64 > /proc/sys/vm/nr_hugepages; mount -t hugetlbfs none /mnt/huge`).
 */
export function hugetlbfsWithRoom(bytes: number): string | undefined {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type !== 'hugetlbfs' || !dir) continue;
    try {
      const s = statfsSync(dir);
      // A mount without size= reports no blocks: the limit is then the host's free huge pages.
      const room = s.blocks > 0 ? s.bavail * s.bsize : freeHugePageBytes();
      if (room >= bytes) return dir;
    } catch {
      // not readable: try the next
    }
  }
  return undefined;
}

function freeHugePageBytes(): number {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const free = Number(/^HugePages_Free:\s+(\d+)/m.exec(info)?.[1] ?? 0);
  const kib = Number(/^Hugepagesize:\s+(\d+) kB/m.exec(info)?.[1] ?? 0);
  return free * kib * 1024;
}

/** Runs one fio job; undefined (with the reason on stderr) when fio is missing or fails. */
export function runFio(job: FioJob): FioResult | undefined {
  const bufBytes = job.bs * job.iodepth;
  const huge = job.hugeBuffers ? hugetlbfsWithRoom(bufBytes + (2 << 20)) : undefined;
  const args = [
    '--name=bench', `--filename=${job.file}`, `--rw=${job.rw}`, `--bs=${job.bs}`, `--ioengine=${job.engine}`,
    `--iodepth=${job.iodepth}`, '--numjobs=1', `--runtime=${job.seconds}`, '--time_based', '--output-format=json',
    job.direct ? '--direct=1' : '--invalidate=0',
    ...(huge ? [`--iomem=mmaphuge:${join(huge, `fio-${process.pid}`)}`] : []),
  ];
  const r = spawnSync('fio', args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    process.stderr.write(`fio unavailable (${r.error?.message ?? r.stderr.trim()}); install it with apt-get install fio\n`);
    return undefined;
  }
  const j = JSON.parse(r.stdout).jobs[0];
  return { iops: job.rw === 'randwrite' ? j.write.iops : j.read.iops, buffers: huge ? 'hugetlbfs' : 'malloc' };
}
