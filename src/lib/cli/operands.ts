/**
 * Operands of the arithmetic kinds (`add`, `subtract`, `multiply`,
 * `divide`), checked on the client so that a typo is reported at once, on
 * its line, instead of failing as a job: two plain decimal numbers, exact
 * as JavaScript numbers (see {@link parseDecimal}).
 */
import { parseDecimal, plural } from '../cli.js';

/** Kinds whose operands are two numbers sent as JSON `[a, b]`. */
export const ARITHMETIC_KINDS: ReadonlySet<string> = new Set(['add', 'subtract', 'multiply', 'divide']);

/** Two operands, or what is wrong with them (one line, no trailing period). */
export type Operands = { ok: true; value: [number, number] } | { ok: false; message: string };

/** Operands from the command line (`taskwire submit --kind add 2 3`). */
export function operandsFromArgv(kind: string, args: readonly string[]): Operands {
  if (args.length !== 2) return { ok: false, message: `--kind ${kind} takes two numbers, got ${plural(args.length, 'argument')}` };
  return pair(kind, args[0]!, args[1]!);
}

/**
 * Operands from one `--file` line: two numbers separated by blanks or one
 * comma (`2 3`, `2,3`, `2, 3`), or JSON `[a, b]` / `{"a": a, "b": b}` as
 * the worker takes it. Blanks around the line (a `\r` included) are ignored.
 */
export function operandsFromLine(kind: string, line: Buffer): Operands {
  const text = line.toString('utf8').trim();
  if (text.startsWith('[') || text.startsWith('{')) return fromJson(kind, text);
  const parts = text.split(/\s*,\s*|\s+/);
  if (parts.length !== 2) {
    return { ok: false, message: `--kind ${kind} takes two numbers per line, got ${JSON.stringify(clip(text))}` };
  }
  return pair(kind, parts[0]!, parts[1]!);
}

function pair(kind: string, a: string, b: string): Operands {
  const x = parseDecimal(a);
  if (typeof x === 'string') return { ok: false, message: `--kind ${kind}: ${x}` };
  const y = parseDecimal(b);
  if (typeof y === 'string') return { ok: false, message: `--kind ${kind}: ${y}` };
  return { ok: true, value: [x, y] };
}

function fromJson(kind: string, text: string): Operands {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, message: `--kind ${kind}: not valid JSON: ${JSON.stringify(clip(text))}` };
  }
  let a: unknown;
  let b: unknown;
  if (Array.isArray(v) && v.length === 2) [a, b] = v;
  else if (typeof v === 'object' && v !== null && !Array.isArray(v)) ({ a, b } = v as { a?: unknown; b?: unknown });
  if (typeof a !== 'number' || typeof b !== 'number') {
    return { ok: false, message: `--kind ${kind} takes [a, b] or {"a": a, "b": b} with two numbers, got ${JSON.stringify(clip(text))}` };
  }
  // JSON.parse has already rounded: anything past 2^53 may not be what was written.
  for (const n of [a, b]) {
    if (Math.abs(n) > Number.MAX_SAFE_INTEGER) {
      return { ok: false, message: `--kind ${kind}: ${n} is too large to be exact (numbers must be within ±${Number.MAX_SAFE_INTEGER})` };
    }
  }
  return { ok: true, value: [a, b] };
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
