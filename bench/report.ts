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
  /**
   * 'defaults': workers started with no tuning flag, fresh processes, no
   * warm-up (what a user gets first); 'journal': the same with a journal
   * (`--data-dir`, `--fsync batch`); 'tuned': `--tuned` (c=64, warm-up);
   * 'custom': `--concurrency`, `--warmup` or `--worker-script` given.
   */
  config: 'defaults' | 'tuned' | 'custom' | 'journal';
  /** 'journal': the first configuration again with a journal (`--data-dir`, this `--fsync`); else null. */
  fsync: 'batch' | null;
  /** Scheduler, workers and client spoke TLS (`--tls`). */
  tls: boolean;
  n: number;
  workers: number;
  /** Concurrency each worker declared (HELLO, as the scheduler's WORKERS reply shows it). */
  concurrency: number;
  /** The `--concurrency` passed to the workers; null: none (the worker's default). */
  concurrencyFlag: number | null;
  /** Prefetch each worker declared (its default; the scheduler sizes the window in use by run time). */
  prefetch: number;
  /** Jobs run before the measured ones, on the same processes. */
  warmup: number;
  window: number;
  payloadBytes: number;
  elapsedMs: number;
  jobsPerSec: number;
  verified: number;
  failed: number;
  wrong: number;
  /** Client, scheduler and worker processes, in that order. */
  cpu: ProcCpu[];
  /** Sum of `cpu[].usPerJob`: the whole system's CPU per job. */
  usPerJobTotal: number;
  /**
   * Cores' worth of busy CPU time the machine spent on anything but the
   * bench's processes while the jobs ran (from /proc/stat; NaN elsewhere):
   * above ~0.1, other work shared the cores and jobs/s is low by about that share.
   */
  otherCores: number;
  schedulerRssBytes: number;
  schedulerPeakRssBytes: number;
}

/** A stretch of a scale point's run: all of it, or the first or the last tenth of a drain. */
export interface ScaleSpan {
  jobs: number;
  elapsedMs: number;
  jobsPerSec: number;
  /** Client, scheduler and the worker processes summed ('workers'), in that order. */
  cpu: ProcCpu[];
  /** Sum of `cpu[].usPerJob`. */
  usPerJobTotal: number;
}

/**
 * One point of the scale phase, on fresh processes (issue 9: per-job cost flat
 * from 0 to 1,000,000 queued jobs and from 1 to 128 worker connections). No
 * target: it is read against the throughput phase's per-job CPU.
 */
export interface ScaleResult extends ScaleSpan {
  /**
   * 'deep-queue': `jobs` queued with the kind paused, then drained by CLI
   * workers at their defaults, the client waiting for every outcome (a WATCH
   * per job); 'many-workers': `jobs` submitted with submitMany to
   * `workerConnections` library workers hosted in `workerProcesses`
   * processes (bench/worker-host.ts).
   */
  point: 'deep-queue' | 'many-workers';
  tls: boolean;
  /** Jobs queued when the clock started: all of them for the deep queue, 0 for many workers. */
  queuedAtStart: number;
  /**
   * Jobs run before, on the same processes (deep queue: `--n`, queued and drained the same way;
   * many workers: 0, cold like the throughput phase's defaults).
   */
  warmupJobs: number;
  workerConnections: number;
  workerProcesses: number;
  /** Concurrency and prefetch each worker connection declared (as the scheduler's WORKERS reply shows them). */
  concurrency: number;
  prefetch: number;
  /** Client window: submissions (many workers) or WATCHes (deep queue) in flight. */
  window: number;
  payloadBytes: number;
  verified: number;
  failed: number;
  wrong: number;
  /** Jobs of the kind the scheduler's STATS counts done at the end, less the warm-up's: must equal `jobs`. */
  doneReported: number;
  /** As in {@link ThroughputResult.otherCores}. */
  otherCores: number;
  schedulerPeakRssBytes: number;
  /** Deep queue: queueing the jobs (enqueueMany, the kind paused), before the clock started. */
  enqueue?: ScaleSpan;
  /** Deep queue of 10 jobs or more: the first and the last tenth of the drain, the queue at its deepest and nearly empty. */
  firstTenth?: ScaleSpan;
  lastTenth?: ScaleSpan;
}

/** A scale point in the report: `schedulerRatioToThroughput` = its scheduler µs per job ÷ the defaults' throughput's (absent when that did not run). */
export type ScaleEntry = ScaleResult & { schedulerRatioToThroughput?: number };

export interface LatencyResult {
  n: number;
  payloadBytes: number;
  us: Percentiles;
  verified: number;
  /** CPU µs per measured round trip: the client (`producer`), `scheduler` and `worker`. */
  cpuUsPerRoundTrip: Record<string, number | null>;
  /** The same loop through a do-nothing Node relay, measured just before (bench/relay-floor.ts). */
  floor: RelayFloorResult;
}

/**
 * Sequential round trips producer -> relay -> worker -> relay -> producer, all
 * Node on loopback, the relay only forwarding frames: the kernel's cost per
 * hop, the least a Node scheduler's round trip can take. Always plain TCP.
 */
export interface RelayFloorResult {
  n: number;
  warmup: number;
  payloadBytes: number;
  verified: number;
  us: Percentiles;
  /** CPU per measured round trip of each process, µs. */
  cpuUsPerRoundTrip: { relay: number; producer: number; worker: number };
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

/**
 * One process's CPU profile from `--profile`, summarised like bench/profile-summary.ts does:
 * the main thread's (tsx's loader thread writes a profile of its own, left out).
 */
export interface ProfileSummary {
  /**
   * Its directory under `--profile`, one per process and configuration, numbered in the
   * order the processes started: e.g. `01-scheduler-throughput-defaults`, `04-client-throughput-defaults`.
   */
  dir: string;
  /** The profile summarised: for `bench/profile-summary.ts --fn NAME FILE`. */
  file: string;
  /**
   * Sampled time not idle, ms: for the scheduler and workers, their whole life (start-up
   * included); for the client (the bench itself), only the measured part.
   */
  busyMs: number;
  /** The 8 functions with the most self time (name, file and line), largest first; `sharePct` of `busyMs`. */
  top: { name: string; sharePct: number; ms: number }[];
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
  /** Everything but the echo baseline ran over TLS (`--tls`). */
  tls: boolean;
  /** The plain-TCP echo: never over TLS. */
  baseline: BaselineResult | null;
  /** The first configuration: the defaults, unless `--concurrency` or `--warmup` changed it. */
  throughput: (ThroughputResult & { ratioToBaseline: number }) | null;
  /** The first configuration again with `--data-dir` and `--fsync batch`; `ratioToFirst` = its jobs/s ÷ the first's. */
  journaled: (ThroughputResult & { ratioToBaseline: number; ratioToFirst: number }) | null;
  /** With `--tuned`: concurrency 64 and a warm-up, on fresh processes after the first. */
  tuned: (ThroughputResult & { ratioToBaseline: number }) | null;
  /** A deep queue drained, and many worker connections (the `scale` phase). */
  scale: { deepQueue: ScaleEntry; manyWorkers: ScaleEntry } | null;
  /** `p50RatioToFloor`, `p99RatioToFloor`: taskwire's figure ÷ `floor`'s. */
  latency: (LatencyResult & { p50RatioToBaseline: number; p99RatioToBaseline: number; p50RatioToFloor: number; p99RatioToFloor: number }) | null;
  memory: MemoryResult | null;
  journal: (JournalResult & { ratioToBaseline: Record<string, number> }) | null;
  targets: Target[];
  /** With `--profile`: every process profiled, in `dir` order; empty without it. */
  profiles: ProfileSummary[];
  notes: string[];
}
