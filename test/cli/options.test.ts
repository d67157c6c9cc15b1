// Each bhyve option and what it writes into the tree (or, for -f, next to it).
import test from 'tape';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandLine } from '../../src/cli/parse.js';
import { ListingRequested, HelpRequested } from '../../src/config/errors.js';
import { pciEmulationNames } from '../../devices/registry.js';
import { cli } from './run-cli.js';

const parse = (line: string) => parseCommandLine(line === '' ? ['vm'] : [...line.split(' '), 'vm'], () => {});
const get = (line: string, key: string) => parse(line).tree.getRaw(key);

test('flags: each single-letter option sets its key', (t) => {
  const expect: Array<[string, string, string | undefined]> = [
    ['-a', 'x86.x2apic', 'false'],
    ['-x', 'x86.x2apic', 'true'],
    ['-C', 'memory.guest_in_core', 'true'],
    ['-D', 'destroy_on_poweroff', 'true'],
    ['-e', 'x86.strictio', 'true'],
    ['-H', 'x86.vmexit_on_hlt', 'true'],
    ['-P', 'x86.vmexit_on_pause', 'true'],
    ['-S', 'memory.wired', 'true'],
    ['-u', 'rtc.use_localtime', 'false'],
    ['-W', 'virtio_msix', 'false'],
    ['-w', 'x86.strictmsr', 'false'],
    ['-Y', 'x86.mptable', 'false'],
    ['-U 11111111-2222-3333-4444-555555555555', 'uuid', '11111111-2222-3333-4444-555555555555'],
    ['-K us.kbd', 'keyboard.layout', 'us.kbd'],
    ['-m 2G', 'memory.size', '2G'],
  ];
  for (const [opt, key, value] of expect) t.equal(get(opt, key), value, `${opt} -> ${key}=${value}`);
  t.end();
});

test('-A and -I are accepted and change nothing', (t) => {
  t.equal(parse('-A -I').tree.dump(), parse('').tree.dump());
  t.end();
});

test('grouped flags and attached arguments', (t) => {
  const a = parse('-AHPw -c2 -m512M').tree;
  t.equal(a.getRaw('x86.vmexit_on_hlt'), 'true');
  t.equal(a.getRaw('x86.strictmsr'), 'false');
  t.equal(a.getRaw('cpus'), '2');
  t.equal(a.getRaw('memory.size'), '512M');
  t.end();
});

test('-c: counts and topologies', (t) => {
  const tree = (o: string) => parse(`-c ${o}`).tree;
  t.equal(tree('4').getRaw('cpus'), '4');
  t.equal(tree('cpus=4,sockets=2,cores=2').dump().match(/^(cpus|sockets|cores|threads)=.*$/gm)?.join(' '), 'cpus=4 sockets=2 cores=2');
  t.equal(tree('sockets=2,threads=2').getRaw('cpus'), undefined, 'cpus left for calc_topology');
  const empty = parseCommandLine(['-c', '', 'vm'], () => {}).tree;
  t.deepEqual(
    ['sockets', 'cores', 'threads', 'cpus'].map((k) => empty.getRaw(k)),
    ['1', '1', '1', '1'],
    '-c "" sets everything to 1',
  );
  t.end();
});

test('-p appends host CPUs to vcpu.N.cpuset in order', (t) => {
  const tree = parse('-p 0:2 -p 0:3 -p 1:5 -p 1:0x1').tree;
  t.equal(tree.getRaw('vcpu.0.cpuset'), '2,3');
  t.equal(tree.getRaw('vcpu.1.cpuset'), '5,0', 'sscanf %d reads 0x1 as 0');
  t.equal(parse('-p 2:7junk').tree.getRaw('vcpu.2.cpuset'), '7', 'trailing text after the host CPU is dropped');
  t.end();
});

test('-G: wait flag, address and port', (t) => {
  const tree = parse('-G w127.0.0.1:1234').tree;
  t.equal(tree.getRaw('gdb.wait'), 'true');
  t.equal(tree.getRaw('gdb.address'), '127.0.0.1');
  t.equal(tree.getRaw('gdb.port'), '1234');
  const v6 = parse('-G [::1]:5555').tree;
  t.equal(v6.getRaw('gdb.address'), '[::1]');
  t.equal(v6.getRaw('gdb.port'), '5555');
  t.equal(parse('-G 4444').tree.getRaw('gdb.address'), undefined);
  t.end();
});

test('-l: COM ports, boot ROM, VARS, lpc options, TPM, pc-testdev', (t) => {
  const t1 = parse('-l COM2,/dev/nmdm0A -l com3,tcp=127.0.0.1:4321 -l com4,stdio').tree;
  t.equal(t1.getRaw('lpc.com2.path'), '/dev/nmdm0A', 'names match without regard to case');
  t.equal(t1.getRaw('lpc.com3.path'), 'tcp=127.0.0.1:4321');
  t.equal(t1.getRaw('lpc.com4.path'), 'stdio');
  const t2 = parse('-l bootrom,/rom.fd,/vars.fd').tree;
  t.equal(t2.getRaw('bootrom'), '/rom.fd');
  t.equal(t2.getRaw('bootvars'), '/vars.fd');
  const t3 = parse('-l bootrom,/rom.fd,fwcfg=qemu').tree;
  t.equal(t3.getRaw('bootvars'), undefined);
  t.ok(t3.dump().includes('lpc.fwcfg=qemu\n'), 'fwcfg=qemu replaces lpc.fwcfg');
  const t4 = parse('-l com1,stdio -l bootrom,/rom.fd,/vars.fd,fwcfg=qemu').tree;
  t.deepEqual(
    t4.leaves().filter(([k]) => k.startsWith('lpc.')),
    [
      ['lpc.com1.path', 'stdio'],
      ['lpc.fwcfg', 'qemu'],
    ],
    'the replaced lpc.fwcfg moves to the end of lpc',
  );
  const t5 = parse('-l tpm,swtpm,/var/run/swtpm.sock').tree;
  t.deepEqual(t5.leaves().filter(([k]) => k.startsWith('tpm.')), [
    ['tpm.type', 'swtpm'],
    ['tpm.path', '/var/run/swtpm.sock'],
    ['tpm.version', '2.0'],
  ]);
  t.equal(parse('-l tpm,passthru,/dev/tpm0,version=1.2').tree.getRaw('tpm.version'), '1.2');
  t.equal(parse('-l pc-testdev').tree.getRaw('lpc.pc-testdev'), 'true');
  t.end();
});

test('-o lpc.bootrom is copied to bootrom with a deprecation warning', (t) => {
  const warnings: string[] = [];
  const { tree } = parseCommandLine(['-o', 'lpc.bootrom=/rom.fd', 'vm'], (m) => warnings.push(m));
  t.equal(tree.getRaw('bootrom'), '/rom.fd');
  t.deepEqual(warnings, ["lpc.bootrom is deprecated, use '-o bootrom' instead"]);
  t.end();
});

test('-o and -k apply in command-line order; later values win', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-opt-'));
  const f = join(dir, 'vm.conf');
  writeFileSync(f, '# comment\n\nmemory.size=2G\ncpus=2\nname=fromfile\nkey=a=b,c\n');
  const tree = parseCommandLine(['-m', '1G', '-k', f, '-o', 'cpus=4'], () => {}).tree;
  t.equal(tree.getRaw('memory.size'), '2G');
  t.equal(tree.getRaw('cpus'), '4');
  t.equal(tree.getRaw('name'), 'fromfile', 'the name can come from -k');
  t.equal(tree.getRaw('key'), 'a=b,c', 'a value keeps further = and ,');
  const crlf = join(dir, 'crlf.conf');
  writeFileSync(crlf, 'a=1\r\n');
  t.equal(parseCommandLine(['-k', crlf, 'vm'], () => {}).tree.getRaw('a'), '1\r', 'nothing but the newline is trimmed');
  t.end();
});

test('-n: NUMA domains', (t) => {
  const tree = parse('-n id=0,size=4G,cpus=0-1 -n id=1,cpus=2-3,size=4G,domain_policy=prefer:0').tree;
  t.deepEqual(tree.leaves().filter(([k]) => k.startsWith('domains.')), [
    ['domains.0.size', '4G'],
    ['domains.0.cpus', '0-1'],
    ['domains.1.size', '4G'],
    ['domains.1.domain_policy', 'prefer:0'],
    ['domains.1.cpus', '2-3'],
  ]);
  t.end();
});

test('-f: fw_cfg items stay out of the tree', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-fw-'));
  writeFileSync(join(dir, 'blob'), Buffer.from([1, 2, 3]));
  const r = parseCommandLine(['-f', 'name=opt/a,string=hello', '-f', `opt/b,file=${join(dir, 'blob')}`, 'vm'], () => {});
  t.deepEqual(r.fwcfgFiles.map((f) => [f.name, [...f.data]]), [
    ['opt/a', [...Buffer.from('hello\0')]],
    ['opt/b', [1, 2, 3]],
  ]);
  t.notOk(r.tree.dump().includes('opt/'), 'not in the dump');
  t.end();
});

test('-s help / -l help: any prefix of "help" lists the registry', (t) => {
  for (const arg of ['help', 'hel', 'h', '']) {
    t.throws(() => parseCommandLine(['-s', arg, 'vm']), (e: unknown) => e instanceof ListingRequested, `-s "${arg}"`);
  }
  t.throws(() => parseCommandLine(['-h']), (e: unknown) => e instanceof HelpRequested);
  t.end();
});

test('-s help and -l help print one name per line and exit 0', async (t) => {
  const s = await cli('-s', 'help');
  t.equal(s.status, 0);
  t.deepEqual(s.stdout.trimEnd().split('\n'), pciEmulationNames());
  t.ok(s.stdout.startsWith('hostbridge\namd_hostbridge\nlpc\nahci\nahci-hd\nahci-cd\nnvme\nvirtio-blk\n'), 'bhyve order');
  const l = await cli('-l', 'he');
  t.equal(l.status, 0);
  t.equal(l.stdout, 'bootrom\ncom1\ncom2\ncom3\ncom4\ntpm\npc-testdev\n');
  const h = await cli('-h');
  t.equal(h.status, 0);
  t.match(h.stderr, /^Usage: tsbhyve \[-aCDeHhPSuWwxY\]/);
  t.end();
});

test('options after the VM name are operands (POSIX getopt), so bhyve prints usage', async (t) => {
  const r = await cli('vm', '-c', '2');
  t.equal(r.status, 1);
  const dd = parseCommandLine(['-c', '2', '--', 'vm'], () => {});
  t.equal(dd.tree.getRaw('name'), 'vm', '"--" ends the options');
  t.end();
});
