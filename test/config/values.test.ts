// Memory sizes, topology and vCPU pinning as bhyverun resolves them.
import test from 'tape';
import { expandNumber, parseMemsize } from '../../src/config/memsize.js';
import { parseCpuset, resolveTopology, resolveVcpuMaps, checkVcpuLimit } from '../../src/config/topology.js';
import { ConfigTree } from '../../src/config/tree.js';
import { cScanInts } from '../../src/config/cnum.js';

const M = 1n << 20n;
const G = 1n << 30n;

test('memsize: units in either case and the small-number-means-MiB rule', (t) => {
  t.equal(parseMemsize('256M'), 256n * M);
  t.equal(parseMemsize('256m'), 256n * M);
  t.equal(parseMemsize('1G'), G);
  t.equal(parseMemsize('2g'), 2n * G);
  t.equal(parseMemsize('1T'), 1n << 40n);
  t.equal(parseMemsize('4096k'), 4n * M);
  t.equal(parseMemsize('512'), 512n * M, 'a plain number below 1 MiB is MiB');
  t.equal(parseMemsize('1048575'), 1048575n * M);
  t.equal(parseMemsize('1048576'), M, 'a plain number of 1 MiB or more is bytes');
  t.equal(parseMemsize('0x40000000'), G, 'base 0: hex');
  t.equal(parseMemsize('0x10'), 16n * M, 'hex below 1 MiB is MiB too');
  for (const bad of ['', '1X', 'G', '1GB', '-1', '1.5G', '99999999999T']) t.equal(parseMemsize(bad), undefined, bad);
  t.equal(expandNumber('10b'), 10n);
  t.end();
});

test('topology: defaults, product and explicit cpus', (t) => {
  const topo = (kv: Record<string, string>) => {
    const tree = new ConfigTree();
    for (const [k, v] of Object.entries(kv)) tree.set(k, v);
    return resolveTopology(tree);
  };
  t.deepEqual(topo({}), { cpus: 1, sockets: 1, cores: 1, threads: 1 });
  t.deepEqual(topo({ cpus: '4' }), { cpus: 4, sockets: 4, cores: 1, threads: 1 }, 'sockets default to cpus');
  t.deepEqual(topo({ sockets: '2', cores: '4', threads: '2' }), { cpus: 16, sockets: 2, cores: 4, threads: 2 });
  t.deepEqual(topo({ cpus: '8', sockets: '2', cores: '2', threads: '2' }), { cpus: 8, sockets: 2, cores: 2, threads: 2 });
  t.deepEqual(topo({ cpus: '0x10', sockets: '1', cores: '16' }), { cpus: 16, sockets: 1, cores: 16, threads: 1 });
  t.deepEqual(topo({ cpus: '65535' }).cpus, 65535);
  t.throws(() => topo({ cpus: '4', sockets: '3' }), /Topology \(3 sockets, 1 cores, 1 threads\) does not match 4 vCPUs/);
  t.throws(() => topo({ cores: '65535', sockets: '2' }), /Computed number of vCPUs too high: 131070/);
  t.throws(() => topo({ cpus: '0' }), /Invalid value for cpus: '0'/);
  t.throws(() => topo({ threads: '65536' }), /Invalid value for threads: '65536'/);
  t.throws(() => topo({ cores: '2x' }), /Invalid value for cores: '2x'/);
  t.throws(() => checkVcpuLimit(4, 2), /4 vCPUs requested but only 2 available/);
  t.end();
});

test('vcpumaps: lists and ranges per vCPU', (t) => {
  t.deepEqual(parseCpuset(0, '3'), [3]);
  t.deepEqual(parseCpuset(0, '0-3,5'), [0, 1, 2, 3, 5]);
  t.deepEqual(parseCpuset(0, '7,1,1'), [1, 7]);
  t.deepEqual(parseCpuset(0, '0x2-4'), [2, 3, 4]);
  t.throws(() => parseCpuset(1, '3-1'), /Invalid hostcpu range 3-1/);
  t.throws(() => parseCpuset(1, ''), /invalid cpuset for vcpu 1: ''/);
  t.throws(() => parseCpuset(1, '1-2-3'), /invalid cpuset for vcpu 1/);
  t.throws(() => parseCpuset(1, '1;2'), /invalid cpuset for vcpu 1/);
  t.throws(() => parseCpuset(1, '1024'), /hostcpu '1024' outside valid range from 0 to 1023/);
  const tree = new ConfigTree();
  tree.set('vcpu.1.cpuset', '2,3');
  t.deepEqual(resolveVcpuMaps(tree, 3), [undefined, [2, 3], undefined]);
  t.end();
});

test('sscanf %d semantics for slot numbers', (t) => {
  t.deepEqual(cScanInts('1:2:3', '%d:%d:%d'), [1, 2, 3]);
  t.deepEqual(cScanInts('1:2', '%d:%d:%d'), [1, 2]);
  t.deepEqual(cScanInts('3x', '%d'), [3], 'trailing garbage is ignored');
  t.deepEqual(cScanInts(' 4', '%d'), [4], 'leading blanks are skipped');
  t.deepEqual(cScanInts('x', '%d'), []);
  t.deepEqual(cScanInts('-2:1', '%d:%d'), [-2, 1]);
  t.end();
});
