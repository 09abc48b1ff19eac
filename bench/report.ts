/**
 * The shape of `npm run bench -- --json` (one object on stdout). All times
 * are microseconds or milliseconds as named, rates per second, sizes bytes.
 */
import type { Percentiles } from './stats.js';

export interface BaselineResult {
  messages: number;
  payloadBytes: number;
  msgsPerSec: number;
  rttUs: Percentiles;
  rttSamples: number;
}

export interface ProcCpu {
  name: string;
  cpuMs: number;
  /** Share of `cpuMs` spent in the kernel (syscalls, loopback TCP), 0–1. */
  sysShare: number;
  /** CPU time over wall time (1.0 = one full core). */
  cores: number;
  /** CPU time per job, µs: less sensitive than jobs/s to other load on the machine. */
  usPerJob: number;
}

export interface ThroughputResult {
  n: number;
  workers: number;
  concurrency: number;
  window: number;
  payloadBytes: number;
  elapsedMs: number;
  jobsPerSec: number;
  verified: number;
  failed: number;
  wrong: number;
  cpu: ProcCpu[];
  schedulerRssBytes: number;
  schedulerPeakRssBytes: number;
}

export interface LatencyResult {
  n: number;
  payloadBytes: number;
  us: Percentiles;
  verified: number;
}

export interface MemoryResult {
  jobs: number;
  payloadBytes: number;
  /** Jobs the scheduler's STATS says are queued (minus the warm-up's): must equal `jobs`. */
  queuedReported: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  peakRssBytes: number;
  heapBeforeBytes: number;
  heapAfterBytes: number;
  externalAfterBytes: number;
  /** V8 young generation, committed bytes, at the two readings (a fixed cost, not per job). */
  newSpaceBeforeBytes: number;
  newSpaceAfterBytes: number;
  /** Jobs queued before the "before" reading (warm-up); they stay queued. */
  warmupJobs: number;
  /** (RSS after - RSS before) / jobs, both after a full GC: the headline figure. */
  bytesPerJobRss: number;
  /** (heapUsed after - before) / jobs: what the JS objects take. */
  bytesPerJobHeap: number;
  enqueuePerSec: number;
}

export interface JournalModeResult {
  mode: 'memory' | 'batch' | 'always';
  jobs: number;
  acksPerSec: number;
  elapsedMs: number;
}

export interface JournalResult {
  skipped?: string;
  modes: JournalModeResult[];
  /** batch ÷ memory-only. */
  batchRatio: number;
}

export interface Target {
  name: string;
  target: string;
  value: number;
  ok: boolean;
}

export interface Report {
  /**
   * `loadAvg1m`: the 1-minute load average when the run started; `busyAtStart`: the share of
   * CPU time other work used in the half second before the run (0–1).
   */
  machine: { cpus: number; cpuModel: string; memoryBytes: number; node: string; platform: string; loadAvg1m: number; busyAtStart: number };
  options: Record<string, unknown>;
  durationMs: number;
  baseline: BaselineResult | null;
  throughput: (ThroughputResult & { ratioToBaseline: number }) | null;
  latency: (LatencyResult & { p50RatioToBaseline: number; p99RatioToBaseline: number }) | null;
  memory: MemoryResult | null;
  journal: (JournalResult & { ratioToBaseline: Record<string, number> }) | null;
  targets: Target[];
  notes: string[];
}
