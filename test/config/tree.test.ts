// The bhyve_config(5) tree rules: order, replacement, leaf/node conflicts, expansion, booleans.
import test from 'tape';
import { ConfigTree, parseConfigBool } from '../../src/config/tree.js';
import { ConfigError } from '../../src/config/errors.js';
import { defaultConfigTree } from '../../src/config/defaults.js';

const quiet = (): { tree: ConfigTree; warnings: string[] } => {
  const warnings: string[] = [];
  return { tree: new ConfigTree((m) => warnings.push(m)), warnings };
};

test('tree: leaves keep insertion order and a replaced value moves to the end of its parent', (t) => {
  const { tree } = quiet();
  tree.set('a', '1');
  tree.set('n.x', '2');
  tree.set('n.y', '3');
  tree.set('b', '4');
  t.equal(tree.dump(), 'a=1\nn.x=2\nn.y=3\nb=4\n');
  tree.set('n.x', '5');
  tree.set('a', '6');
  t.equal(tree.dump(), 'n.y=3\nn.x=5\nb=4\na=6\n', 'replaced leaves moved to the end of their own parent');
  t.deepEqual(tree.leaves()[0], ['n.y', '3']);
  t.end();
});

test('tree: bhyve 15 defaults in their order', (t) => {
  const tree = defaultConfigTree();
  t.equal(
    tree.dump(),
    'acpi_tables=true\nacpi_tables_in_memory=true\nmemory.size=256M\nx86.strictmsr=true\nx86.verbosemsr=false\nlpc.fwcfg=bhyve\n',
  );
  t.end();
});

test('tree: leaf/node conflicts and empty components are errors', (t) => {
  const { tree } = quiet();
  tree.set('a', '1');
  t.throws(() => tree.set('a.b', '2'), /Configuration node a is a child of existing variable a/);
  tree.set('x.y.z', '1');
  t.throws(() => tree.set('x.y.z.w', '2'), /Configuration node x\.y\.z is a child of existing variable x\.y\.z/);
  t.throws(() => tree.set('x.y', '2'), /Attempting to add value 2 to existing node x\.y/);
  t.throws(() => tree.set('p..q', '1'), /Invalid configuration node: p\./);
  t.throws(() => tree.set('.q', '1'), /Invalid configuration node/);
  t.throws(() => tree.setIn(tree.root, 'a.b', '1'), /Invalid config node name a\.b/);
  try {
    tree.set('a.c', '1');
  } catch (e) {
    t.ok(e instanceof ConfigError && e.status === 4, 'conflicts carry exit status 4');
  }
  t.end();
});

test('tree: %(path) expansion on read, never in the dump', (t) => {
  const { tree, warnings } = quiet();
  tree.set('disk', '/vm/%(name)/disk.img');
  tree.set('name', 'guest');
  t.equal(tree.get('disk'), '/vm/guest/disk.img');
  t.equal(tree.getRaw('disk'), '/vm/%(name)/disk.img');
  t.ok(tree.dump().includes('disk=/vm/%(name)/disk.img'), 'the dump is raw');
  tree.set('nested', '%(disk)!');
  t.equal(tree.get('nested'), '/vm/guest/disk.img!', 'references expand recursively');
  tree.set('missing', 'x%(nope)y');
  t.equal(tree.get('missing'), 'xy');
  t.ok(warnings.some((w) => w.includes('Failed to fetch referenced configuration variable nope')));
  tree.set('bad', '50%');
  t.equal(tree.get('bad'), '50%', 'a lone % stays literal');
  tree.set('esc', '\\%(name) and %(name)');
  t.equal(tree.get('esc'), '%(name) and guest', 'a backslash escapes the next character');
  tree.set('plain', 'a\\b');
  t.equal(tree.get('plain'), 'a\\b', 'without a % the value is returned untouched');
  tree.set('empty', '%()x');
  t.equal(tree.get('empty'), 'x');
  t.end();
});

test('tree: expansion stops at depth 16', (t) => {
  const { tree, warnings } = quiet();
  tree.set('loop', 'L%(loop)');
  const v = tree.get('loop')!;
  t.equal(v, 'L'.repeat(17) + '%(loop)', 'sixteen nested expansions, then the reference is kept literally');
  t.ok(warnings.some((w) => w.includes('Too many recursive references')));
  t.end();
});

test('tree: booleans as bhyve reads them', (t) => {
  for (const v of ['true', 'TRUE', 'on', 'Yes', '1']) t.equal(parseConfigBool('k', v), true, v);
  for (const v of ['false', 'Off', 'NO', '0']) t.equal(parseConfigBool('k', v), false, v);
  t.throws(() => parseConfigBool('k', 'maybe'), /Invalid value maybe for boolean variable k/);
  t.throws(() => parseConfigBool('k', '2'), /Invalid value 2/);
  const { tree } = quiet();
  t.equal(tree.getBoolDefault('absent', true), true);
  t.throws(() => tree.getBool('absent'), /Failed to fetch boolean variable absent/);
  t.end();
});

test('tree: reading a node as a value warns and yields nothing', (t) => {
  const { tree, warnings } = quiet();
  tree.set('n.x', '1');
  t.equal(tree.get('n'), undefined);
  t.ok(warnings.some((w) => w.includes('Attempting to fetch value of node n')));
  t.equal(tree.get('n.x.y'), undefined, 'a path through a leaf reads as absent');
  t.end();
});
