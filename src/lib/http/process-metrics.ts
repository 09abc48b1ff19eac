/**
 * The `process_*` and `nodejs_*` basics of `/metrics`: CPU, memory, open
 * file descriptors, start time, and event-loop lag from
 * `perf_hooks.monitorEventLoopDelay` (reset after each scrape, like
 * prom-client's `nodejs_eventloop_lag_*`).
 */
import { readdir, readFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';

/** Sampling period of the event-loop monitor, ms. */
const RESOLUTION_MS = 20;

/** One reading. Null where the platform cannot tell (no /proc). */
export interface ProcessSample {
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  residentBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  openFds: number | null;
  maxFds: number | null;
  startTimeSeconds: number;
  /** Event-loop delay since the previous reading, seconds (0 when nothing was measured). */
  loopLagMeanSeconds: number;
  loopLagP99Seconds: number;
  loopLagMaxSeconds: number;
}

/** See the module comment. Call {@link ProcessMetrics.close} to stop the loop monitor. */
export class ProcessMetrics {
  readonly #loop: IntervalHistogram;
  #maxFds: Promise<number | null> | undefined;

  constructor() {
    this.#loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.#loop.enable();
  }

  /** Reads the counters now. */
  async sample(): Promise<ProcessSample> {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const loop = this.#loop;
    const measured = loop.count > 0;
    // Each sample is the time between two ticks of a RESOLUTION_MS timer: the lag is what exceeds it.
    const ns = (x: number): number => (measured && Number.isFinite(x) ? Math.max(0, x / 1e9 - RESOLUTION_MS / 1000) : 0);
    const sample: ProcessSample = {
      cpuUserSeconds: cpu.user / 1e6,
      cpuSystemSeconds: cpu.system / 1e6,
      residentBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      openFds: null,
      maxFds: null,
      startTimeSeconds: Math.round(performance.timeOrigin) / 1000,
      loopLagMeanSeconds: ns(loop.mean),
      loopLagP99Seconds: ns(loop.percentile(99)),
      loopLagMaxSeconds: ns(loop.max),
    };
    loop.reset();
    try {
      sample.openFds = (await readdir('/proc/self/fd')).length;
    } catch {
      // Not Linux.
    }
    sample.maxFds = await (this.#maxFds ??= readMaxFds());
    return sample;
  }

  /** Stops the event-loop monitor. */
  close(): void {
    this.#loop.disable();
  }
}

/** The soft limit of open files, from /proc/self/limits. */
async function readMaxFds(): Promise<number | null> {
  try {
    const text = await readFile('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+)/m.exec(text);
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}
