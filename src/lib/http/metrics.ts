/**
 * `GET /metrics` in the Prometheus text exposition format 0.0.4 (docs/HTTP.md
 * "Metrics"). A scrape copies the counters out of the core in one pass
 * (O(kinds), no job is looked at: DESIGN.md rule 3), then renders family by
 * family in chunks, so the server can write them with the event loop free
 * in between even at the kind limit.
 */
import type { FsyncHistogram } from '../journal.js';
import type { JournalStats } from '../protocol.js';
import { DURATION_BUCKETS_S, type DurationHistogram, type SchedulerCore } from '../scheduler-core.js';
import type { ProcessSample } from './process-metrics.js';

/** The content type of the exposition format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Kinds rendered per chunk. */
const KINDS_PER_CHUNK = 500;

/** A histogram's numbers, copied. */
interface HistogramCopy {
  counts: Float64Array;
  sumSeconds: number;
  count: number;
}

function copyHistogram(h: DurationHistogram | FsyncHistogram): HistogramCopy {
  return { counts: h.counts.slice(), sumSeconds: h.sumSeconds, count: h.count };
}

/** One kind's counters at scrape time. */
interface KindSample {
  name: string;
  submitted: number;
  done: number;
  failed: number;
  cancelled: number;
  attemptsFailedError: number;
  attemptsFailedTimeout: number;
  attemptsFailedLost: number;
  queued: number;
  running: number;
  prefetched: number;
  delayed: number;
  paused: boolean;
  workers: number;
  oldestQueuedSeconds: number;
  wait: HistogramCopy;
  run: HistogramCopy;
}

/** What the HTTP layer itself reports. */
export interface HttpSample {
  /** Open HTTP connections. */
  connections: number;
  /** Requests being handled now. */
  inFlight: number;
  /** Answers sent, by status class ("2xx" ...). */
  responses: Readonly<Record<string, number>>;
  /** In-process client sessions of the HTTP layer (counted as clients by the core). */
  sessions: number;
  subscribers: number;
  subscribersDropped: number;
}

/** Where a scrape reads from. */
export interface MetricsInput {
  core: SchedulerCore;
  version: string;
  journalHealthy: boolean;
  journalStats: JournalStats | null;
  /** The journal's fsync histogram and its bucket bounds (journal.ts FSYNC_BUCKETS_S); null without a journal. */
  fsync: { histogram: FsyncHistogram; bounds: readonly number[] } | null;
  http: HttpSample;
  process: ProcessSample;
}

/** Everything a scrape shows, copied at one instant. */
export interface MetricsSnapshot {
  version: string;
  kinds: KindSample[];
  retained: number;
  clients: number;
  workers: number;
  busySlots: number;
  freeSlots: number;
  drainingWorkers: number;
  stuckHandlers: number;
  journalHealthy: boolean;
  journal: JournalStats | null;
  fsync: (HistogramCopy & { bounds: readonly number[] }) | null;
  http: HttpSample;
  process: ProcessSample;
}

/** Copies the counters (O(kinds + workers)). */
export function takeSnapshot(input: MetricsInput): MetricsSnapshot {
  const { core } = input;
  const stats = core.stats().kinds; // oldest queued age per kind, from the heads of the run queues
  const kinds: KindSample[] = [];
  for (const k of core.kinds()) {
    kinds.push({
      name: k.name,
      submitted: k.submitted,
      done: k.done,
      failed: k.failed,
      cancelled: k.cancelled,
      attemptsFailedError: k.attemptsFailedError,
      attemptsFailedTimeout: k.attemptsFailedTimeout,
      attemptsFailedLost: k.attemptsFailedLost,
      queued: k.queued,
      running: k.running,
      prefetched: k.prefetched,
      delayed: k.delayed,
      paused: k.paused,
      workers: k.workers.length,
      oldestQueuedSeconds: (stats[k.name]?.oldestQueuedMs ?? 0) / 1000,
      wait: copyHistogram(k.waitTime),
      run: copyHistogram(k.runTime),
    });
  }
  let busy = 0;
  let slots = 0;
  let draining = 0;
  let stuck = 0;
  for (const w of core.workerSessions()) {
    busy += w.started;
    slots += w.concurrency;
    if (w.draining) draining++;
    stuck += w.stuck;
  }
  const totals = core.totals;
  return {
    version: input.version,
    kinds,
    retained: totals.retained,
    clients: Math.max(0, totals.clients - input.http.sessions),
    workers: totals.workers,
    busySlots: busy,
    freeSlots: Math.max(0, slots - busy),
    drainingWorkers: draining,
    stuckHandlers: stuck,
    journalHealthy: input.journalHealthy,
    journal: input.journalStats,
    fsync: input.fsync === null ? null : { ...copyHistogram(input.fsync.histogram), bounds: input.fsync.bounds },
    http: input.http,
    process: input.process,
  };
}

/** A label value escaped for the text format: backslash, double quote and newline. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A sample value: integers as is, NaN and infinities spelled as Prometheus does. */
function num(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  return String(x);
}

function header(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

function histogramLines(name: string, labels: string, h: HistogramCopy, bounds: readonly number[]): string {
  const sep = labels === '' ? '' : ',';
  let out = '';
  let cumulative = 0;
  for (let i = 0; i < h.counts.length; i++) {
    cumulative += h.counts[i]!;
    const le = i < bounds.length ? num(bounds[i]!) : '+Inf';
    out += `${name}_bucket{${labels}${sep}le="${le}"} ${num(cumulative)}\n`;
  }
  const braces = labels === '' ? '' : `{${labels}}`;
  out += `${name}_sum${braces} ${num(h.sumSeconds)}\n${name}_count${braces} ${num(h.count)}\n`;
  return out;
}

/** A per-kind family: its header, then one or more lines per kind, in chunks. */
function* perKind(
  kinds: KindSample[],
  name: string,
  type: 'counter' | 'gauge' | 'histogram',
  help: string,
  lines: (k: KindSample, kind: string) => string,
): Generator<string> {
  let out = header(name, type, help);
  for (let i = 0; i < kinds.length; i++) {
    const k = kinds[i]!;
    out += lines(k, `kind="${escapeLabel(k.name)}"`);
    if ((i + 1) % KINDS_PER_CHUNK === 0) {
      yield out;
      out = '';
    }
  }
  if (out !== '') yield out;
}

/**
 * The exposition text, in chunks (each a whole number of lines; a family's
 * lines stay together, as the format requires).
 */
export function* renderMetrics(s: MetricsSnapshot): Generator<string> {
  const k = s.kinds;
  yield header('taskwire_info', 'gauge', 'Version of the scheduler (always 1).') + `taskwire_info{version="${escapeLabel(s.version)}"} 1\n`;
  yield* perKind(k, 'taskwire_jobs_submitted_total', 'counter', 'Jobs accepted (durably, with a journal), by kind.', (x, l) => `taskwire_jobs_submitted_total{${l}} ${x.submitted}\n`);
  yield* perKind(
    k,
    'taskwire_jobs_finished_total',
    'counter',
    'Jobs that reached a final state, by kind and outcome.',
    (x, l) =>
      `taskwire_jobs_finished_total{${l},outcome="done"} ${x.done}\n` +
      `taskwire_jobs_finished_total{${l},outcome="failed"} ${x.failed}\n` +
      `taskwire_jobs_finished_total{${l},outcome="cancelled"} ${x.cancelled}\n`,
  );
  yield* perKind(
    k,
    'taskwire_job_attempts_failed_total',
    'counter',
    'Attempts that failed, by kind and reason (error from the handler, run timeout, worker lost).',
    (x, l) =>
      `taskwire_job_attempts_failed_total{${l},reason="error"} ${x.attemptsFailedError}\n` +
      `taskwire_job_attempts_failed_total{${l},reason="timeout"} ${x.attemptsFailedTimeout}\n` +
      `taskwire_job_attempts_failed_total{${l},reason="worker_lost"} ${x.attemptsFailedLost}\n`,
  );
  yield* perKind(k, 'taskwire_jobs_queued', 'gauge', 'QUEUED jobs (delayed ones included), by kind.', (x, l) => `taskwire_jobs_queued{${l}} ${x.queued}\n`);
  yield* perKind(k, 'taskwire_jobs_running', 'gauge', 'RUNNING jobs a worker has started, by kind.', (x, l) => `taskwire_jobs_running{${l}} ${x.running}\n`);
  yield* perKind(k, 'taskwire_jobs_prefetched', 'gauge', 'Jobs sent to a worker ahead of time, not started yet (they show QUEUED), by kind.', (x, l) => `taskwire_jobs_prefetched{${l}} ${x.prefetched}\n`);
  yield* perKind(k, 'taskwire_jobs_delayed', 'gauge', 'QUEUED jobs waiting for a delay or a retry backoff, by kind.', (x, l) => `taskwire_jobs_delayed{${l}} ${x.delayed}\n`);
  yield* perKind(k, 'taskwire_kind_paused', 'gauge', '1 while the kind is paused (nothing dispatched).', (x, l) => `taskwire_kind_paused{${l}} ${x.paused ? 1 : 0}\n`);
  yield* perKind(k, 'taskwire_kind_workers', 'gauge', 'Connected workers able to run the kind.', (x, l) => `taskwire_kind_workers{${l}} ${x.workers}\n`);
  yield* perKind(k, 'taskwire_queue_oldest_age_seconds', 'gauge', 'How long the job next in line has waited since it became runnable.', (x, l) => `taskwire_queue_oldest_age_seconds{${l}} ${num(x.oldestQueuedSeconds)}\n`);
  yield* perKind(k, 'taskwire_job_wait_seconds', 'histogram', 'Time from runnable (submit, delay or backoff over) to start, per attempt.', (x, l) => histogramLines('taskwire_job_wait_seconds', l, x.wait, DURATION_BUCKETS_S));
  yield* perKind(k, 'taskwire_job_run_seconds', 'histogram', 'Run time of each attempt that ended (done, failed, timed out or lost).', (x, l) => histogramLines('taskwire_job_run_seconds', l, x.run, DURATION_BUCKETS_S));

  let out = '';
  out += header('taskwire_jobs_retained', 'gauge', 'Finished jobs kept for lookup.') + `taskwire_jobs_retained ${s.retained}\n`;
  out += header('taskwire_workers_connected', 'gauge', 'Connected workers.') + `taskwire_workers_connected ${s.workers}\n`;
  out +=
    header('taskwire_worker_slots', 'gauge', 'Job slots of connected workers (their concurrency), busy or free.') +
    `taskwire_worker_slots{state="busy"} ${s.busySlots}\ntaskwire_worker_slots{state="free"} ${s.freeSlots}\n`;
  out += header('taskwire_workers_draining', 'gauge', 'Connected workers that take no new jobs.') + `taskwire_workers_draining ${s.drainingWorkers}\n`;
  out += header('taskwire_worker_stuck_handlers', 'gauge', 'Handlers that ignored an abandon, as workers last reported.') + `taskwire_worker_stuck_handlers ${s.stuckHandlers}\n`;
  out +=
    header('taskwire_connections', 'gauge', 'Open connections by role (client and worker: wire protocol; http: the HTTP listener).') +
    `taskwire_connections{role="client"} ${s.clients}\ntaskwire_connections{role="worker"} ${s.workers}\ntaskwire_connections{role="http"} ${s.http.connections}\n`;
  out += header('taskwire_journal_healthy', 'gauge', '0 while the journal cannot store records (a full disk); 1 otherwise.') + `taskwire_journal_healthy ${s.journalHealthy ? 1 : 0}\n`;
  if (s.journal !== null) {
    out += header('taskwire_journal_bytes', 'gauge', 'Size of the journal on disk.') + `taskwire_journal_bytes ${s.journal.bytes}\n`;
    out += header('taskwire_journal_compactions_total', 'counter', 'Journal compactions since start.') + `taskwire_journal_compactions_total ${s.journal.compactions}\n`;
  }
  if (s.fsync !== null) {
    out += header('taskwire_journal_fsync_seconds', 'histogram', 'Duration of each journal fsync (one covers a batch of records).');
    out += histogramLines('taskwire_journal_fsync_seconds', '', s.fsync, s.fsync.bounds);
  }
  out += header('taskwire_http_requests_in_flight', 'gauge', 'HTTP requests being handled.') + `taskwire_http_requests_in_flight ${s.http.inFlight}\n`;
  out += header('taskwire_http_responses_total', 'counter', 'HTTP answers sent, by status class.');
  for (const [cls, n] of Object.entries(s.http.responses)) out += `taskwire_http_responses_total{status="${cls}"} ${n}\n`;
  out += header('taskwire_events_subscribers', 'gauge', 'Open /api/events streams.') + `taskwire_events_subscribers ${s.http.subscribers}\n`;
  out += header('taskwire_events_subscribers_dropped_total', 'counter', 'Event streams dropped because the reader fell behind.') + `taskwire_events_subscribers_dropped_total ${s.http.subscribersDropped}\n`;

  const p = s.process;
  out += header('process_cpu_user_seconds_total', 'counter', 'User CPU time spent.') + `process_cpu_user_seconds_total ${num(p.cpuUserSeconds)}\n`;
  out += header('process_cpu_system_seconds_total', 'counter', 'System CPU time spent.') + `process_cpu_system_seconds_total ${num(p.cpuSystemSeconds)}\n`;
  out += header('process_cpu_seconds_total', 'counter', 'User and system CPU time spent.') + `process_cpu_seconds_total ${num(p.cpuUserSeconds + p.cpuSystemSeconds)}\n`;
  out += header('process_resident_memory_bytes', 'gauge', 'Resident memory size.') + `process_resident_memory_bytes ${p.residentBytes}\n`;
  out += header('process_heap_bytes', 'gauge', 'V8 heap in use.') + `process_heap_bytes ${p.heapUsedBytes}\n`;
  if (p.openFds !== null) out += header('process_open_fds', 'gauge', 'Open file descriptors.') + `process_open_fds ${p.openFds}\n`;
  if (p.maxFds !== null) out += header('process_max_fds', 'gauge', 'Limit of open file descriptors.') + `process_max_fds ${p.maxFds}\n`;
  out += header('process_start_time_seconds', 'gauge', 'Start time of the process since the Unix epoch.') + `process_start_time_seconds ${num(p.startTimeSeconds)}\n`;
  out += header('nodejs_eventloop_lag_seconds', 'gauge', 'Mean event-loop delay since the previous scrape.') + `nodejs_eventloop_lag_seconds ${num(p.loopLagMeanSeconds)}\n`;
  out += header('nodejs_eventloop_lag_p99_seconds', 'gauge', '99th percentile of the event-loop delay since the previous scrape.') + `nodejs_eventloop_lag_p99_seconds ${num(p.loopLagP99Seconds)}\n`;
  out += header('nodejs_eventloop_lag_max_seconds', 'gauge', 'Largest event-loop delay since the previous scrape.') + `nodejs_eventloop_lag_max_seconds ${num(p.loopLagMaxSeconds)}\n`;
  yield out;
}
