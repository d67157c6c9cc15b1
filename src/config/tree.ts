// The bhyve_config(5) tree: dotted paths, internal nodes without values, string leaves.
//
// It keeps bhyve's exact behaviour because `-o config.dump=1` output and `-k` files must round-trip with bhyve:
// - children stay in insertion order; replacing a value removes and re-adds it, so it moves to the end of its
//   parent (libnv appends new pairs at the tail);
// - a path through an existing leaf, or a value over an existing node, is an error (exit 4);
// - `%(path)` references are expanded on read, never in the dump, at most 16 levels deep; a backslash escapes
//   the next character.
import { ConfigError } from './errors.js';

export type Warn = (message: string) => void;

const defaultWarn: Warn = (m) => {
  process.stderr.write(`tsbhyve: ${m}\n`);
};

/** An internal node of the tree. Leaves are plain strings. */
export class ConfigNode {
  readonly children = new Map<string, ConfigNode | string>();
}

const MAX_EXPANSION_DEPTH = 16;

export class ConfigTree {
  readonly root = new ConfigNode();
  warn: Warn;

  constructor(warn: Warn = defaultWarn) {
    this.warn = warn;
  }

  // --- nodes -------------------------------------------------------------------------------------------

  private lookup(parent: ConfigNode, path: string, create: boolean): ConfigNode | undefined {
    let node = parent;
    const parts = path.split('.');
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      if (name === '') throw new ConfigError(`Invalid configuration node: ${path}`);
      const child = node.children.get(name);
      if (child instanceof ConfigNode) {
        node = child;
      } else if (child !== undefined) {
        throw new ConfigError(
          `Configuration node ${path} is a child of existing variable ${parts.slice(0, i + 1).join('.')}`,
        );
      } else if (create) {
        const created = new ConfigNode();
        node.children.set(name, created);
        node = created;
      } else {
        return undefined;
      }
    }
    return node;
  }

  /** create_config_node: the node at `path`, creating missing nodes on the way. */
  createNode(path: string): ConfigNode {
    return this.lookup(this.root, path, true)!;
  }

  /** find_config_node: the node at `path`, or undefined if any part is missing. */
  findNode(path: string): ConfigNode | undefined {
    return this.lookup(this.root, path, false);
  }

  createRelativeNode(parent: ConfigNode, path: string): ConfigNode {
    return this.lookup(parent, path, true)!;
  }

  findRelativeNode(parent: ConfigNode | undefined, path: string): ConfigNode | undefined {
    return parent ? this.lookup(parent, path, false) : undefined;
  }

  // --- values ------------------------------------------------------------------------------------------

  /** set_config_value_node: set a leaf directly under `parent` (no dots allowed in `name`). */
  setIn(parent: ConfigNode, name: string, value: string): void {
    if (name.includes('.')) throw new ConfigError(`Invalid config node name ${name}`);
    const existing = parent.children.get(name);
    if (existing instanceof ConfigNode) {
      throw new ConfigError(`Attempting to add value ${value} to existing node ${name}`);
    }
    // Delete first so a replaced value moves to the end, as libnv does.
    parent.children.delete(name);
    parent.children.set(name, value);
  }

  /** set_config_value: set the leaf at a dotted path, creating intermediate nodes. */
  set(path: string, value: string): void {
    const dot = path.lastIndexOf('.');
    const parent = dot < 0 ? this.root : this.createNode(path.slice(0, dot));
    const name = dot < 0 ? path : path.slice(dot + 1);
    if (name === '') throw new ConfigError(`Invalid configuration node: ${path}`);
    if (parent.children.get(name) instanceof ConfigNode) {
      throw new ConfigError(`Attempting to add value ${value} to existing node ${path}`);
    }
    this.setIn(parent, name, value);
  }

  setBool(path: string, value: boolean): void {
    this.set(path, value ? 'true' : 'false');
  }

  setBoolIn(parent: ConfigNode, name: string, value: boolean): void {
    this.setIn(parent, name, value ? 'true' : 'false');
  }

  /** Set a leaf only if it is absent (bhyve's set_config_value_node_if_unset). */
  setInIfUnset(parent: ConfigNode, name: string, value: string): void {
    if (!parent.children.has(name)) this.setIn(parent, name, value);
  }

  /** The stored value at `path` without expansion, or undefined. */
  getRaw(path: string): string | undefined {
    const dot = path.lastIndexOf('.');
    let parent: ConfigNode | undefined = this.root;
    let name = path;
    if (dot >= 0) {
      try {
        parent = this.findNode(path.slice(0, dot));
      } catch {
        return undefined;
      }
      name = path.slice(dot + 1);
    }
    if (!parent) return undefined;
    const v = parent.children.get(name);
    if (v instanceof ConfigNode) {
      this.warn(`Attempting to fetch value of node ${path}`);
      return undefined;
    }
    return v;
  }

  /** get_config_value: the value at `path` with `%(path)` references expanded. */
  get(path: string): string | undefined {
    const raw = this.getRaw(path);
    return raw === undefined ? undefined : this.expand(raw);
  }

  /** get_config_value_node: a leaf under `parent`, expanded. */
  getIn(parent: ConfigNode | undefined, name: string): string | undefined {
    if (name.includes('.')) throw new ConfigError(`Invalid config node name ${name}`);
    if (!parent) return undefined;
    const v = parent.children.get(name);
    if (v instanceof ConfigNode) {
      this.warn(`Attempt to fetch value of node ${name}`);
      return undefined;
    }
    return v === undefined ? undefined : this.expand(v);
  }

  getBool(path: string): boolean {
    const v = this.get(path);
    if (v === undefined) throw new ConfigError(`Failed to fetch boolean variable ${path}`);
    return parseConfigBool(path, v);
  }

  getBoolDefault(path: string, def: boolean): boolean {
    const v = this.get(path);
    return v === undefined ? def : parseConfigBool(path, v);
  }

  getBoolInDefault(parent: ConfigNode | undefined, name: string, def: boolean): boolean {
    const v = this.getIn(parent, name);
    return v === undefined ? def : parseConfigBool(name, v);
  }

  /** Expand `%(path)` references and backslash escapes in a raw value. */
  expand(value: string): string {
    // bhyve only runs the expander (and so only honours backslashes) when the value holds a '%'.
    if (!value.includes('%')) return value;
    return this.expandAt(value, 0);
  }

  private expandAt(value: string, depth: number): string {
    let out = '';
    let i = 0;
    while (i < value.length) {
      const c = value[i]!;
      if (c === '%') {
        if (depth >= MAX_EXPANSION_DEPTH) {
          this.warn('Too many recursive references in configuration value');
          out += '%';
          i++;
          continue;
        }
        const close = value[i + 1] === '(' && i + 2 < value.length ? value.indexOf(')', i + 2) : -1;
        if (close < 0) {
          this.warn(`Invalid reference in configuration value "${value}"`);
          out += '%';
          i++;
          continue;
        }
        const ref = value.slice(i + 2, close);
        i = close + 1;
        if (ref === '') {
          this.warn(`Empty reference in configuration value "${value}"`);
          continue;
        }
        const target = this.getRaw(ref);
        if (target === undefined) this.warn(`Failed to fetch referenced configuration variable ${ref}`);
        else out += this.expandAt(target, depth + 1);
      } else if (c === '\\') {
        i++;
        if (i >= value.length) {
          this.warn(`Trailing \\ in configuration value "${value}"`);
          break;
        }
        out += value[i];
        i++;
      } else {
        out += c;
        i++;
      }
    }
    return out;
  }

  // --- whole tree --------------------------------------------------------------------------------------

  /** Every leaf as [dotted path, raw value], depth first in insertion order (the dump order). */
  leaves(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    const walk = (prefix: string, node: ConfigNode): void => {
      for (const [name, child] of node.children) {
        if (child instanceof ConfigNode) walk(`${prefix}${name}.`, child);
        else out.push([`${prefix}${name}`, child]);
      }
    };
    walk('', this.root);
    return out;
  }

  /** What `-o config.dump=1` prints: `path=value` lines, unexpanded, no escaping. */
  dump(): string {
    return this.leaves()
      .map(([k, v]) => `${k}=${v}\n`)
      .join('');
  }
}

/** bhyve's boolean spellings: true/on/yes (any case) and 1; false/off/no and 0. Anything else exits 4. */
export function parseConfigBool(name: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === 'true' || v === 'on' || v === 'yes' || value === '1') return true;
  if (v === 'false' || v === 'off' || v === 'no' || value === '0') return false;
  throw new ConfigError(`Invalid value ${value} for boolean variable ${name}`);
}
