/**
 * `npx tsx scripts/journal-bench.ts [--jobs N] [--recover N]`: the durability
 * numbers of issue 4.
 *
 * 1. Submit throughput: jobs/s acknowledged, pipelined (Client.enqueueMany,
 *    window 10,000) into a scheduler in a separate process, with no data
 *    directory, `--fsync off`, `--fsync batch` and `--fsync always`.
 * 2. Journal bytes per job (a sha256 job with 32 bytes of input): queued
 *    (submit record only) and finished (submit + done records).
 * 3. Recovery time of a journal of N jobs (default 1,000,000), queued and
 *    finished: the time `Scheduler.listen()` spends opening, verifying and
 *    replaying it into the scheduler's state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '../src/client.js';
import { Journal } from '../src/lib/journal.js';
import { Scheduler } from '../src/server.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '200000' },
    'always-jobs': { type: 'string', default: '5000' },
    recover: { type: 'string', default: '1000000' },
  },
});
const JOBS = Number(values.jobs);
const ALWAYS_JOBS = Number(values['always-jobs']);
const RECOVER = Number(values.recover);

/** 32 bytes of sha256 input per job. */
function input(i: number): string {
  return `job-${i}`.padEnd(32, '.');
}

async function startScheduler(args: string[]): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts', '--port', '0', '--log-level', 'error', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  const m = await new Promise<RegExpMatchArray>((resolve, reject) => {
    child.stdout!.on('data', (d: string) => {
      out += d;
      const found = out.match(/listening on ([\d.]+):(\d+)/);
      if (found !== null) resolve(found);
    });
    child.once('exit', (code) => reject(new Error(`scheduler exited (${code})`)));
  });
  return { child, address: `${m[1]}:${m[2]}` };
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function submitThroughput(label: string, args: string[], jobs: number): Promise<void> {
  const { child, address } = await startScheduler(args);
  const client = await Client.connect(address);
  const items = Array.from({ length: jobs }, (_, i) => ({ kind: 'sha256', args: input(i) }));
  // Warm-up (JIT), not counted.
  await client.enqueueMany(items.slice(0, Math.min(2000, jobs)));
  const started = performance.now();
  const acks = await client.enqueueMany(items, { window: 10_000 });
  const ms = performance.now() - started;
  const failed = acks.filter((a) => a instanceof Error).length;
  const stats = await client.stats();
  console.log(
    `submit ${label.padEnd(16)} ${Math.round((jobs / ms) * 1000)
      .toString()
      .padStart(8)} jobs/s acknowledged (${jobs} jobs in ${Math.round(ms)} ms${failed ? `, ${failed} refused` : ''})` +
      (stats.journal ? `, journal ${stats.journal.bytes} bytes` : ''),
  );
  await client.close();
  await stop(child);
}

async function bytesPerJob(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'taskwire-bench-'));
  const n = 10_000;
  try {
    const { journal } = await Journal.open({ dir }, () => undefined);
    const now = Date.now();
    for (let i = 1; i <= n; i++) {
      journal.append(
        { type: 'submit', id: 1_000_000 + i, kind: 'sha256', args: Buffer.from(input(i)), priority: 0, timeoutMs: 10_000, maxRetries: 3, estMs: 0, notBefore: 0, key: '', createdAt: now },
        () => undefined,
      );
    }
    await new Promise<void>((r) => journal.append({ type: 'meta', nextId: 1 }, () => r()));
    const queued = journal.stats().bytes;
    for (let i = 1; i <= n; i++) {
      const result = Buffer.from(createHash('sha256').update(input(i)).digest('hex'));
      journal.append({ type: 'done', id: 1_000_000 + i, attempts: 1, result, finishedAt: now, worker: 'worker-1' }, () => undefined);
    }
    await new Promise<void>((r) => journal.append({ type: 'meta', nextId: 1 }, () => r()));
    const finished = journal.stats().bytes;
    await journal.close();
    console.log(`journal bytes per job: ${(queued / n).toFixed(1)} queued (submit record), ${(finished / n).toFixed(1)} finished (submit + done, 64-char hex result)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function recovery(n: number, finished: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'taskwire-bench-'));
  try {
    const { journal } = await Journal.open({ dir, fsync: 'off' }, () => undefined);
    const now = Date.now();
    for (let i = 1; i <= n; i++) {
      journal.append(
        { type: 'submit', id: i, kind: 'sha256', args: Buffer.from(input(i)), priority: 0, timeoutMs: 10_000, maxRetries: 3, estMs: 0, notBefore: 0, key: '', createdAt: now },
        () => undefined,
      );
      if (finished) {
        journal.append({ type: 'done', id: i, attempts: 1, result: Buffer.from('f'.repeat(64)), finishedAt: now, worker: 'worker-1' }, () => undefined);
      }
      if (i % 100_000 === 0) await new Promise((r) => setImmediate(r));
    }
    await journal.close();
    const lines: string[] = [];
    const scheduler = new Scheduler({ port: 0, dataDir: dir, retainCount: n, log: (l) => lines.push(l) });
    const started = performance.now();
    await scheduler.listen();
    const ms = performance.now() - started;
    const stats = scheduler.core.stats();
    console.log(
      `recover ${n} ${finished ? 'finished' : 'queued'} jobs: ${Math.round(ms)} ms to listening ` +
        `(journal ${stats.journal!.bytes} bytes, ${stats.journal!.recordsReplayed} records, ` +
        `reported recoverMs ${stats.journal!.recoverMs}; ${stats.totals.queued} queued, ${stats.totals.retained} finished kept; ` +
        `heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB)`,
    );
    await scheduler.destroy();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await submitThroughput('memory only', [], JOBS);
const dir = await mkdtemp(join(tmpdir(), 'taskwire-bench-'));
try {
  for (const mode of ['off', 'batch'] as const) {
    await submitThroughput(`--fsync ${mode}`, ['--data-dir', join(dir, mode), '--fsync', mode], JOBS);
  }
  await submitThroughput('--fsync always', ['--data-dir', join(dir, 'always'), '--fsync', 'always'], ALWAYS_JOBS);
} finally {
  await rm(dir, { recursive: true, force: true });
}
await bytesPerJob();
await recovery(RECOVER, false);
await recovery(RECOVER, true);
