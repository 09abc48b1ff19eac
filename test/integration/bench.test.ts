import { describe, expect, it } from 'vitest';
import type { Report } from '../../bench/report.js';
import { spawnTs } from '../helpers/process.js';

/**
 * A smoke run of `npm run bench` (issue 5): timings are not tests, but the
 * benchmark must keep working — every phase runs, every figure is in the
 * JSON, every result is verified, and it exits 0.
 */
describe('npm run bench (smoke)', () => {
  it('runs every phase at a tiny size and reports every figure as JSON', { timeout: 60_000 }, async () => {
    const child = spawnTs('bench/bench.ts', [
      '--n', '1000',
      '--warmup', '200',
      '--memory-jobs', '10000',
      '--latency-n', '200',
      '--latency-warmup', '50',
      '--baseline-n', '20000',
      '--journal-n', '2000',
      '--journal-always-n', '100',
      '--json',
    ]);
    const code = await child.exited;
    expect(code, child.stderr).toBe(0);
    const lines = child.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as Report;

    const positive = (x: unknown): void => {
      expect(typeof x).toBe('number');
      expect(x as number).toBeGreaterThan(0);
      expect(Number.isFinite(x)).toBe(true);
    };
    const { baseline, throughput, latency, memory, journal } = r;
    if (!baseline || !throughput || !latency || !memory || !journal) throw new Error(`a phase is missing: ${lines[0]}`);
    positive(baseline.msgsPerSec);
    for (const k of ['p50', 'p99', 'max'] as const) positive(baseline.rttUs[k]);

    expect(throughput).toMatchObject({ n: 1000, workers: 2, concurrency: 64, verified: 1000, failed: 0, wrong: 0 });
    positive(throughput.jobsPerSec);
    positive(throughput.ratioToBaseline);
    expect(throughput.cpu.map((c) => c.name)).toHaveLength(4); // client, scheduler, 2 workers

    expect(latency).toMatchObject({ n: 200, verified: 200 });
    for (const k of ['p50', 'p99', 'max'] as const) positive(latency.us[k]);
    positive(latency.p50RatioToBaseline);
    positive(latency.p99RatioToBaseline);

    expect(memory).toMatchObject({ jobs: 10000, queuedReported: 10000 });
    positive(memory.rssAfterBytes);
    positive(memory.heapAfterBytes);
    expect(Number.isFinite(memory.bytesPerJobRss)).toBe(true);
    expect(Number.isFinite(memory.bytesPerJobHeap)).toBe(true);

    expect(journal.modes.map((m) => m.mode)).toEqual(['memory', 'batch', 'always']);
    for (const m of journal.modes) positive(m.acksPerSec);
    positive(journal.batchRatio);
    for (const mode of ['memory', 'batch', 'always']) positive(journal.ratioToBaseline[mode]);

    expect(r.targets.map((t) => t.name)).toEqual([
      'throughput jobs/s',
      'latency p50 µs',
      'latency p99 µs',
      'bytes per queued job',
      'fsync batch ÷ memory-only',
    ]);
  });
});
