/**
 * `taskwire-worker --handlers ./my-handlers.js`: a module of the user's that
 * registers job kinds on a worker. Loaded in every worker process (one
 * process, or each process of a pool), before the worker connects.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TaskwireError } from './errors.js';
import type { Handler } from './jobs.js';

/** What a handlers module is given: the worker (a `Worker`), of which it needs `handle()` at least. */
export interface HandlersTarget {
  handle(kind: string, handler: Handler): unknown;
}

/**
 * The function a handlers module exports, as its default export or as
 * `register`. It may be async; the worker connects once it has settled.
 * @example
 * // my-handlers.js
 * export default function register(worker) {
 *   worker.handle('upper', (args) => args.toString('utf8').toUpperCase());
 * }
 */
export type RegisterHandlers<T extends HandlersTarget = HandlersTarget> = (worker: T) => unknown;

/**
 * Imports the module at `path` (resolved against `cwd`) and calls its
 * default export, or its `register` export, with `worker`. Throws
 * `INVALID_ARGUMENT` when it exports neither; errors thrown by the import or
 * by the function propagate, wrapped with the path (`cause` is the original).
 */
export async function loadHandlers<T extends HandlersTarget>(path: string, worker: T, cwd: string = process.cwd()): Promise<void> {
  const url = pathToFileURL(resolve(cwd, path)).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new TaskwireError('INVALID_ARGUMENT', `cannot load handlers module ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const register = typeof mod['default'] === 'function' ? mod['default'] : mod['register'];
  if (typeof register !== 'function') {
    throw new TaskwireError('INVALID_ARGUMENT', `handlers module ${path} exports neither a default function nor register(worker)`);
  }
  try {
    await (register as RegisterHandlers<T>)(worker);
  } catch (err) {
    throw new TaskwireError('INVALID_ARGUMENT', `handlers module ${path} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
