/**
 * A small, strict command-line parser for the `taskwire` CLI. It replaces
 * `node:util` `parseArgs` so that every message is ours and one line long
 * (Node's "Option '-n' argument is ambiguous. Did you forget…" is not for
 * users), negative numbers are operands (`submit --kind add -2 3`), and
 * options may come before or after the command (`taskwire --json stats`).
 */
import { UsageError } from '../cli.js';

/** One option of a command. Names are the long names, kebab-case, without `--`. */
export interface OptionSpec {
  /** `string` takes a value (`--kind add` or `--kind=add`); `boolean` does not. */
  type: 'string' | 'boolean';
  /** One-letter alias (`h` for `-h`). */
  short?: string;
  /** Shown in the help after the name (`MS`, `HOST:PORT`). */
  arg?: string;
  /** One line (or a few, joined by `\n`) for the help. */
  help: string;
}

/** Option tables by long name. */
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** What {@link parseArgv} found. */
export interface ParsedArgv {
  /** Options given, by long name: the last value wins for repeated string options. */
  values: Record<string, string | boolean>;
  positionals: string[];
}

/** `-2`, `-.5`, `-1e3`: a negative number, an operand rather than an option. */
export function isNegativeNumber(arg: string): boolean {
  return /^-(?:\d|\.\d)/.test(arg);
}

/** True for `--x`, `-x`: an option token (not `-`, not a negative number). */
function isOption(arg: string): boolean {
  return arg.length > 1 && arg.startsWith('-') && !isNegativeNumber(arg);
}

/**
 * Parses `args` against `options`. Throws {@link UsageError} with a one-line
 * message for an unknown option (suggesting a close one), a missing value, a
 * value given to a flag, or a value that looks like an option
 * (`--key -x`: write `--key=-x`).
 */
export function parseArgv(args: readonly string[], options: OptionTable): ParsedArgv {
  const values: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(options)) if (spec.short !== undefined) byShort.set(spec.short, name);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!isOption(arg)) {
      positionals.push(arg);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else {
      const long = arg.length === 2 ? byShort.get(arg[1]!) : undefined;
      if (long === undefined) throw new UsageError(`unknown option ${arg}`);
      name = long;
    }
    const spec = Object.hasOwn(options, name) ? options[name] : undefined;
    if (spec === undefined) {
      const near = closest(name, Object.keys(options));
      throw new UsageError(`unknown option --${name}${near === undefined ? '' : ` (did you mean --${near}?)`}`);
    }
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    if (inline !== undefined) {
      values[name] = inline;
      continue;
    }
    const next = args[i + 1];
    if (next === undefined) throw new UsageError(`--${name} needs a value${spec.arg === undefined ? '' : ` (${spec.arg})`}`);
    if (isOption(next)) {
      throw new UsageError(`--${name} needs a value; to give one that starts with "-", write --${name}=${next}`);
    }
    values[name] = next;
    i++;
  }
  return { values, positionals };
}

/**
 * Index of the command word in `args`: the first token that is neither an
 * option nor the value of one (value-taking options are those of `options`,
 * the union of every command's), or -1.
 */
export function findCommand(args: readonly string[], options: OptionTable): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return -1;
    if (!isOption(arg)) return i;
    if (arg.startsWith('--') && !arg.includes('=')) {
      const spec = Object.hasOwn(options, arg.slice(2)) ? options[arg.slice(2)] : undefined;
      if (spec?.type === 'string') i++; // skip its value
    } else if (arg.length === 2) {
      const spec = Object.values(options).find((o) => o.short === arg[1]);
      if (spec?.type === 'string') i++; // `-s HOST:PORT`: skip its value too
    }
  }
  return -1;
}

/** Help lines for an option table: `  --kind KIND   job kind…`. */
export function formatOptions(options: OptionTable, indent = 2, column = 27): string {
  let out = '';
  for (const [name, spec] of Object.entries(options)) {
    const head = `${' '.repeat(indent)}${spec.short === undefined ? '' : `-${spec.short}, `}--${name}${spec.arg === undefined ? '' : ` ${spec.arg}`}`;
    const lines = spec.help.split('\n');
    out += head.length + 2 > column ? `${head}\n${' '.repeat(column)}${lines[0]}\n` : `${head.padEnd(column)}${lines[0]}\n`;
    for (const line of lines.slice(1)) out += `${' '.repeat(column)}${line}\n`;
  }
  return out;
}

/** The name in `names` nearest to `name` by edit distance, if it is close (at most 2 edits). */
export function closest(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of names) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance, O(a·b) with one row; only for short option names. */
function editDistance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Math.max(a.length, b.length);
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
