// POSIX getopt(3) as FreeBSD's libc implements it: options end at the first non-option argument or "--",
// flags may be grouped ("-AHP"), an option's argument may be attached ("-c2") or the next word ("-c 2").

export type GetoptItem =
  | { kind: 'option'; option: string; arg?: string }
  /** an unknown option or a missing argument; `message` is what getopt prints to stderr */
  | { kind: 'error'; option: string; message: string };

export interface GetoptResult {
  items: GetoptItem[];
  /** the operands after the options */
  operands: string[];
}

/**
 * Parses argv (without the program name) against an optstring such as "aehc:s:". Stops at the first error,
 * as bhyve calls usage() on it.
 */
export function getopt(argv: readonly string[], optstring: string): GetoptResult {
  const takesArg = new Map<string, boolean>();
  for (let i = 0; i < optstring.length; i++) {
    const c = optstring[i]!;
    if (c === ':') continue;
    takesArg.set(c, optstring[i + 1] === ':');
  }
  const items: GetoptItem[] = [];
  let i = 0;
  while (i < argv.length) {
    const word = argv[i]!;
    if (word === '--') {
      i++;
      break;
    }
    if (word.length < 2 || word[0] !== '-') break;
    for (let j = 1; j < word.length; j++) {
      const c = word[j]!;
      const needs = takesArg.get(c);
      if (needs === undefined) {
        items.push({ kind: 'error', option: c, message: `illegal option -- ${c}` });
        return { items, operands: argv.slice(i + 1) };
      }
      if (!needs) {
        items.push({ kind: 'option', option: c });
        continue;
      }
      if (j + 1 < word.length) {
        items.push({ kind: 'option', option: c, arg: word.slice(j + 1) });
      } else if (i + 1 < argv.length) {
        i++;
        items.push({ kind: 'option', option: c, arg: argv[i]! });
      } else {
        items.push({ kind: 'error', option: c, message: `option requires an argument -- ${c}` });
        return { items, operands: [] };
      }
      break;
    }
    i++;
  }
  return { items, operands: argv.slice(i) };
}
