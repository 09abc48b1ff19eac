/**
 * The memory phase's scheduler: the same `Scheduler` class the
 * `taskwire-server` CLI runs, with the CLI's defaults, in a process started
 * with `--expose-gc` so the benchmark can ask for a full GC and then read the
 * heap from inside. Commands, one per stdin line:
 *   `mem`  -> two full GCs, then `mem SEQ {"rss":..,"heapUsed":..,...}` on stdout (SEQ counts from 1).
 *
 * Arguments: `MAX_QUEUED [CERT KEY]` (with a certificate and key: TLS, like `--tls-cert/--tls-key`).
 * Prints `taskwire scheduler listening on HOST:PORT` once ready, like the CLI.
 */
import { createInterface } from 'node:readline';
import { getHeapSpaceStatistics } from 'node:v8';
import { Scheduler } from '../src/server.js';

const [maxQueuedArg, cert, key] = process.argv.slice(2);
const maxQueued = Number(maxQueuedArg ?? 2_000_000);
const tls = cert !== undefined && key !== undefined ? { cert, key } : undefined;
const scheduler = new Scheduler({ host: '127.0.0.1', port: 0, logLevel: 'error', maxQueued, tls });
const { host, port } = await scheduler.listen();
process.stdout.write(`taskwire scheduler listening on ${host}:${port}\n`);

const gc = (globalThis as { gc?: () => void }).gc;
let seq = 0;
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'mem') return;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(getHeapSpaceStatistics().map((sp) => [sp.space_name, sp.physical_space_size]));
  const body = { gc: gc !== undefined, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, spaces };
  process.stdout.write(`mem ${++seq} ${JSON.stringify(body)}\n`);
});
const exit = (): void => void scheduler.destroy().then(() => process.exit(0)); // exit() writes a --cpu-prof profile
process.stdin.on('end', exit);
process.on('SIGTERM', exit);
