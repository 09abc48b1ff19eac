/**
 * The worst event-loop stall one request can cause (DESIGN.md rule 3): a
 * scheduler with a journal and QUEUED jobs (default 1,000,000), then each
 * request type alone while the loop's delay is sampled every ms.
 * Usage: tsx scripts/stall-probe.ts [JOBS]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Client } from '../src/client.js';
import { Scheduler } from '../src/server.js';

const jobs = Number(process.argv[2] ?? 1_000_000);
const dir = await mkdtemp(join(tmpdir(), 'taskwire-stall-'));
const scheduler = new Scheduler({ host: '127.0.0.1', port: 0, dataDir: dir, logLevel: 'silent', compactBytes: 1 << 40 });
const { port } = await scheduler.listen();
const client = await Client.connect(`127.0.0.1:${port}`);
const t0 = performance.now();
const chunk = 50_000;
for (let i = 0; i < jobs; i += chunk) {
  await client.enqueueMany(Array.from({ length: Math.min(chunk, jobs - i) }, (_, j) => ({ kind: `k${(i + j) % 10}`, args: `job-${i + j}` })));
}
process.stdout.write(`${jobs} jobs queued in ${Math.round(performance.now() - t0)} ms\n`);

const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
async function probe(name: string, run: () => Promise<unknown>): Promise<void> {
  await new Promise((r) => setTimeout(r, 50));
  h.reset();
  const start = performance.now();
  await run();
  const took = performance.now() - start;
  await new Promise((r) => setTimeout(r, 20));
  process.stdout.write(`${name.padEnd(34)} answered in ${took.toFixed(1).padStart(8)} ms, worst loop delay ${(h.max / 1e6).toFixed(1).padStart(7)} ms\n`);
}
await probe('nothing (idle, 200 ms: GC, timers)', () => new Promise((r) => setTimeout(r, 200)));
await probe('STATS', () => client.stats());
await probe('1,000 pipelined STATS', () => Promise.all(Array.from({ length: 1000 }, () => client.stats())));
await probe('LIST limit 2^32-1', () => client.listPage({ limit: 2 ** 32 - 1 }));
await probe('LIST state=FAILED (matches none)', () => client.listPage({ state: 'FAILED', limit: 1000 }));
await probe('LIST oldest first, kind k3', () => client.listPage({ kind: 'k3', order: 'oldest', limit: 1000 }));
await probe('STATUS', () => client.status(jobs / 2));
await probe('CANCEL', () => client.cancel(jobs / 2));
await probe('WORKERS', () => client.workers());
await probe('SUBMIT', () => client.enqueue('k1', 'one more'));
await probe('COMPACT (snapshot of every job)', () => client.compact());
client.destroy();
await scheduler.destroy();
await rm(dir, { recursive: true, force: true });
