import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Default scheduler address of every CLI (overridden by TASKWIRE_SERVER or --server). */
export const DEFAULT_SERVER = '127.0.0.1:9001';

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

/** Wrong command-line use: the CLI prints the message and its usage, and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
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

/** Parses a non-negative integer option. Throws {@link UsageError}. */
export function parseUint(name: string, text: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < 0 || n > max) {
    throw new UsageError(`--${name} must be an integer from 0 to ${max}, got "${text}"`);
  }
  return n;
}
