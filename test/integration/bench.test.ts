import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ProfileSummary, RelayFloorResult, Report, ScaleEntry, ScaleResult, ScaleSpan, ThroughputResult } from '../../bench/report.js';
import { spawnTs } from '../helpers/process.js';

/**
 * A smoke run of `npm run bench` (issues 5 and 9): timings are not tests, but
 * the benchmark must keep working — every phase runs, every figure is in the
 * JSON, every result is verified, and it exits 0. The defaults are measured
 * first and as a user gets them; `--tuned` and `--tls` are labelled. The two
 * runs go side by side (timings are not looked at) to keep the file near 10 s.
 */

/** Tiny sizes for every phase: the whole run takes a few seconds. */
const TINY = [
  '--n', '1000',
  '--deep-jobs', '2000',
  '--many-workers', '8',
  '--memory-jobs', '10000',
  '--latency-n', '200',
  '--latency-warmup', '50',
  '--baseline-n', '20000',
  '--journal-n', '2000',
  '--journal-always-n', '100',
  '--json',
];

async function runBench(args: string[]): Promise<Report> {
  const child = spawnTs('bench/bench.ts', [...TINY, ...args]);
  const code = await child.exited;
  expect(code, child.stderr).toBe(0);
  const lines = child.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Report;
}

function positive(x: unknown): void {
  expect(typeof x).toBe('number');
  expect(x as number).toBeGreaterThan(0);
  expect(Number.isFinite(x)).toBe(true);
}

function checkThroughput(tp: (ThroughputResult & { ratioToBaseline: number }) | null | undefined, expected: Partial<ThroughputResult>): void {
  if (!tp) throw new Error('a throughput configuration is missing');
  expect(tp).toMatchObject({ n: 1000, workers: 2, verified: 1000, failed: 0, wrong: 0, ...expected });
  positive(tp.jobsPerSec);
  positive(tp.prefetch);
  expect(tp.cpu.map((c) => c.name)).toEqual(['client', 'scheduler', 'worker 1', 'worker 2']);
  for (const c of tp.cpu) expect(Number.isFinite(c.usPerJob)).toBe(true);
  positive(tp.usPerJobTotal);
}

function checkSpan(span: ScaleSpan | undefined, jobs: number): void {
  if (!span) throw new Error('a scale span is missing');
  expect(span.jobs).toBe(jobs);
  positive(span.jobsPerSec);
  expect(span.cpu.map((c) => c.name)).toEqual(['client', 'scheduler', 'workers']);
  for (const c of span.cpu) expect(c.usPerJob).toBeGreaterThanOrEqual(0);
  expect(Number.isFinite(span.usPerJobTotal)).toBe(true);
}

/** A scale point: every job verified and counted done by the scheduler, its figures there; the ratio to the defaults' throughput when that ran. */
function checkScale(s: ScaleEntry | undefined, expected: Partial<ScaleResult>): void {
  if (!s) throw new Error('a scale point is missing');
  expect(s).toMatchObject({ concurrency: 4, prefetch: 128, failed: 0, wrong: 0, ...expected });
  expect(s.verified).toBe(s.jobs);
  expect(s.doneReported).toBe(s.jobs);
  checkSpan(s, s.jobs);
  positive(s.usPerJobTotal);
  // At this size the scheduler's CPU is a few 10 ms ticks: it may round to 0, never be missing.
  expect(s.schedulerRatioToThroughput).toBeGreaterThanOrEqual(0);
}

function checkFloor(floor: RelayFloorResult): void {
  expect(floor).toMatchObject({ n: 200, warmup: 50, payloadBytes: 32, verified: 200 });
  for (const k of ['p50', 'p99', 'max'] as const) positive(floor.us[k]);
  for (const k of ['relay', 'producer', 'worker'] as const) expect(Number.isFinite(floor.cpuUsPerRoundTrip[k])).toBe(true);
}

describe('npm run bench (smoke)', () => {
  // One test, two runs side by side: spawnTs ties its cleanup to the running test, which
  // concurrent tests would confuse.
  it('runs every phase at a tiny size, the defaults first and cold, plain with --tuned and again with --tls', { timeout: 60_000 }, async () => {
    const [r, t] = await Promise.all([runBench(['--tuned']), runBench(['--tls', '--skip', 'baseline'])]);
    const { baseline, throughput, tuned, latency, memory, journal } = r;
    if (!baseline || !throughput || !latency || !memory || !journal) throw new Error(`a phase is missing: ${JSON.stringify(r)}`);
    expect(r.tls).toBe(false);
    positive(baseline.msgsPerSec);
    for (const k of ['p50', 'p99', 'max'] as const) positive(baseline.rttUs[k]);

    // The defaults: no --concurrency passed, so the worker's own default (4) is what it declared; no warm-up.
    checkThroughput(throughput, { config: 'defaults', tls: false, concurrency: 4, concurrencyFlag: null, warmup: 0 });
    positive(throughput.ratioToBaseline);
    checkThroughput(tuned, { config: 'tuned', tls: false, concurrency: 64, concurrencyFlag: 64, warmup: 10_000 });
    positive(tuned!.ratioToBaseline);
    // The defaults again with a journal (--data-dir, --fsync batch), every result verified.
    checkThroughput(r.journaled, { config: 'journal', fsync: 'batch', tls: false, concurrency: 4, concurrencyFlag: null, warmup: 0 });
    positive(r.journaled!.ratioToFirst);
    expect(throughput.fsync).toBeNull();

    // Scale: a deep queue drained (after a warm-up of --n jobs, its tenths and its queueing
    // measured too), and --many-workers connections in --workers processes.
    const deep = r.scale?.deepQueue;
    checkScale(deep, { point: 'deep-queue', tls: false, jobs: 2000, queuedAtStart: 2000, warmupJobs: 1000, workerConnections: 2, workerProcesses: 2 });
    checkSpan(deep!.enqueue, 2000);
    checkSpan(deep!.firstTenth, 200);
    checkSpan(deep!.lastTenth, 200);
    checkScale(r.scale?.manyWorkers, { point: 'many-workers', tls: false, jobs: 1000, queuedAtStart: 0, warmupJobs: 0, workerConnections: 8, workerProcesses: 2 });
    expect(r.scale!.manyWorkers.firstTenth).toBeUndefined();

    expect(latency).toMatchObject({ n: 200, verified: 200 });
    for (const k of ['p50', 'p99', 'max'] as const) positive(latency.us[k]);
    positive(latency.p50RatioToBaseline);
    positive(latency.p99RatioToBaseline);
    // The floor: the same loop through a do-nothing Node relay, with the same warm-up and N.
    checkFloor(latency.floor);
    positive(latency.p50RatioToFloor);
    positive(latency.p99RatioToFloor);

    expect(memory).toMatchObject({ jobs: 10000, queuedReported: 10000 });
    positive(memory.rssAfterBytes);
    positive(memory.heapAfterBytes);
    expect(Number.isFinite(memory.bytesPerJobRss)).toBe(true);
    expect(Number.isFinite(memory.bytesPerJobHeap)).toBe(true);

    expect(journal.modes.map((m) => m.mode)).toEqual(['memory', 'batch', 'always']);
    for (const m of journal.modes) positive(m.acksPerSec);
    positive(journal.batchRatio);
    for (const mode of ['memory', 'batch', 'always']) positive(journal.ratioToBaseline[mode]);

    expect(r.profiles).toEqual([]);
    expect(r.targets.map((t) => t.name)).toEqual([
      'throughput jobs/s',
      'CPU µs per job',
      'latency p99 µs',
      'bytes per queued job',
      'fsync batch ÷ memory-only, end to end',
    ]);

    // --tls: every scheduler phase over TLS (the echo baseline, plain TCP, skipped here).
    expect(t.tls).toBe(true);
    expect(t.baseline).toBeNull();
    checkThroughput(t.throughput, { config: 'defaults', tls: true, concurrency: 4, concurrencyFlag: null, warmup: 0 });
    expect(t.tuned).toBeNull();
    checkScale(t.scale?.deepQueue, { point: 'deep-queue', tls: true, jobs: 2000 });
    checkScale(t.scale?.manyWorkers, { point: 'many-workers', tls: true, jobs: 1000, workerConnections: 8 });
    expect(t.latency).toMatchObject({ n: 200, verified: 200 });
    checkFloor(t.latency!.floor);
    expect(t.memory).toMatchObject({ jobs: 10000, queuedReported: 10000 });
    expect(t.journal?.modes.map((m) => m.mode)).toEqual(['memory', 'batch', 'always']);
  });

  it('with --profile, summarises the profile of the scheduler, each worker and the client of every throughput configuration', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'taskwire-bench-profile-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const r = await runBench(['--skip', 'baseline,scale,latency,memory,journal', '--profile', dir]);
    // Numbered in the order the processes started: the scheduler, its workers, then the client's measured part.
    expect(r.profiles.map((p) => p.dir)).toEqual([
      '01-scheduler-throughput-defaults',
      '02-throughput-defaults-w1',
      '03-throughput-defaults-w2',
      '04-client-throughput-defaults',
      '05-scheduler-throughput-journal',
      '06-throughput-journal-w1',
      '07-throughput-journal-w2',
      '08-client-throughput-journal',
    ]);
    for (const p of r.profiles) checkProfile(p);
    expect(r.profiles[3]!.file).toBe(join(dir, '04-client-throughput-defaults', 'client.cpuprofile'));
  });
});

/** A process's profile summary: its file there, some busy time, and its top functions, largest first. */
function checkProfile(p: ProfileSummary): void {
  expect(existsSync(p.file), p.file).toBe(true);
  positive(p.busyMs);
  expect(p.top.length).toBeGreaterThan(0);
  expect(p.top.length).toBeLessThanOrEqual(8);
  for (const t of p.top) {
    expect(t.name).not.toBe('');
    expect(t.sharePct).toBeGreaterThan(0);
    expect(t.sharePct).toBeLessThanOrEqual(100);
  }
  const ms = p.top.map((t) => t.ms);
  expect(ms).toEqual([...ms].sort((a, b) => b - a));
}
