/**
 * Helpers every command line of the package shares (`taskwire`,
 * `taskwire-server`, `taskwire-worker`): entry-point detection, usage
 * errors, exit codes and strict parsers for option values. No I/O beyond
 * `isMain`'s realpath.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Default scheduler address of every CLI (overridden by TASKWIRE_SERVER or --server). */
export const DEFAULT_SERVER = '127.0.0.1:9001';

/**
 * Exit statuses of the command lines. A usage error is always 2, so scripts
 * can tell "I called it wrong" from "the job failed".
 */
export const EXIT = {
  OK: 0,
  /** A job failed, or the scheduler refused the request. */
  FAILED: 1,
  /** Wrong command-line use (or a bad config file / environment value). */
  USAGE: 2,
  /** The scheduler cannot be reached, or the connection to it was lost. */
  UNREACHABLE: 3,
  /** A wait ran out of time (`--wait-timeout`, `wait --timeout`); the job goes on. */
  TIMEOUT: 4,
  /** Interrupted by SIGINT (Ctrl-C): 128 + 2, as shells report it. */
  INTERRUPTED: 130,
} as const;

/**
 * True when the module at `url` is the program being run (`node file.js`,
 * `tsx file.ts`, or an npm `.bin` symlink to it). Node 20 has no `import.meta.main`.
 */
export function isMain(url: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(url));
  } catch {
    return false;
  }
}

/** Wrong command-line use: the CLI prints the message (one line) and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * The one line a CLI prints for a usage error, pointing at the help instead
 * of dumping it: `taskwire: missing job ID (see "taskwire status --help")`.
 */
export function usageLine(program: string, message: string, helpCommand: string = program): string {
  return `${program}: ${message} (see "${helpCommand} --help")\n`;
}

/** `1 job`, `2 jobs`, `0 jobs`; `plural(1, 'process', 'processes')`. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Parses `HOST:PORT` (or `[v6]:PORT`, or a bare port). Throws {@link UsageError}. */
export function parseAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`bad address "${text}": expected HOST:PORT`);
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/**
 * Parses a non-negative integer option, written in plain decimal digits
 * (`0x10`, `1e3`, ` 5` and `+5` are refused: an option value is not
 * JavaScript). Returns `fallback` when `text` is undefined. Throws
 * {@link UsageError} naming the option and the allowed range.
 */
export function parseUint(name: string, text: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER, min = 0): number {
  if (text === undefined) return fallback;
  const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

/** Largest magnitude an operand may have and still be exact as a JavaScript number (2^53 - 1). */
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

/**
 * Parses a decimal number as people write it: `2`, `-2`, `+2`, `0.5`, `.5`,
 * `1e3`. Refuses what is not plain decimal (`0x10`, `0b1`, `Infinity`,
 * blanks, `1_000`) and any value beyond ±(2^53 - 1), where a JavaScript
 * number can no longer hold every integer (`9007199254740993` would silently
 * become `…992`). Returns the number, or a message saying what is wrong.
 */
export function parseDecimal(text: string): number | string {
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(text)) return `"${clip(text)}" is not a decimal number`;
  const n = Number(text);
  if (!Number.isFinite(n) || Math.abs(n) > MAX_EXACT) {
    return `${clip(text)} is too large to be exact (numbers must be within ±${MAX_EXACT})`;
  }
  return n;
}

/** At most 40 characters of a value, for messages. */
function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
