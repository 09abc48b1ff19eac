/**
 * Progress line of `taskwire submit --file`. {@link renderProgress} and
 * {@link formatSummary} are pure string rendering; {@link ProgressBar}
 * draws them on a terminal stream (redraws at most every 100 ms, clears what
 * a longer previous line left, prints a summary at the end) with an
 * injectable clock, so all of it is unit-tested without a TTY.
 */

/** Input of {@link renderProgress}. */
export interface ProgressState {
  /** Jobs settled so far. */
  done: number;
  /** Jobs in all; undefined while the input is still being read (no percentage, no ETA). */
  total?: number | undefined;
  /** Time since the first submission. */
  elapsedMs: number;
  /** Columns available; the line never exceeds it. Default 80. */
  width?: number | undefined;
  /**
   * Current rate, jobs/s. Default: the average since the start, but only
   * once {@link MIN_RATE_MS} have passed: before that a rate (and an ETA)
   * from a handful of jobs is noise ("7.3/s ETA 1h54m"), so `--/s` and
   * `ETA --` are shown.
   */
  ratePerSec?: number | undefined;
}

/** No rate or ETA is shown before this much time has passed. */
export const MIN_RATE_MS = 1000;

const MIN_BAR = 10;

/**
 * Renders one progress line: percentage, a bar, count, rate and ETA, e.g.
 * ` 42% [########------------]  4200/10000  1.2k/s  ETA 5s`.
 * With an unknown total it shows the count and rate only. The bar takes
 * whatever width is left and is dropped when fewer than 10 columns remain.
 * @example
 * process.stderr.write('\r' + renderProgress({ done, total, elapsedMs: Date.now() - t0, width: process.stderr.columns }) + '\x1b[K');
 */
export function renderProgress({ done, total, elapsedMs, width = 80, ratePerSec }: ProgressState): string {
  const columns = Math.max(1, Math.floor(width));
  const rate = ratePerSec ?? (elapsedMs >= MIN_RATE_MS ? (done * 1000) / elapsedMs : undefined);
  const rateText = rate === undefined ? '--/s' : `${formatRate(rate)}/s`;
  let line: string;
  if (total === undefined) {
    line = `${done} done  ${rateText}`;
  } else {
    const shown = Math.min(done, total);
    const fraction = total > 0 ? shown / total : 1;
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    const remaining = total - shown;
    const eta =
      remaining === 0 ? 'ETA 0s' : rate !== undefined && rate > 0 ? `ETA ${formatDuration((remaining / rate) * 1000)}` : 'ETA --';
    const tail = `  ${shown}/${total}  ${rateText}  ${eta}`;
    const barWidth = columns - pct.length - 3 - tail.length;
    if (barWidth >= MIN_BAR) {
      const filled = Math.floor(fraction * barWidth);
      line = `${pct} [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]${tail}`;
    } else {
      line = `${pct}${tail}`;
    }
  }
  return line.length > columns ? line.slice(0, columns) : line;
}

/** Input of {@link formatSummary}. */
export interface Summary {
  /** Jobs settled. */
  jobs: number;
  /** Of them, how many did not succeed (failed, refused, bad lines). */
  failed: number;
  elapsedMs: number;
}

/** The line printed when a run ends: `10000 jobs, 3 failed, 12.5s, 800/s`. */
export function formatSummary({ jobs, failed, elapsedMs }: Summary): string {
  const seconds = elapsedMs / 1000;
  const time = seconds < 60 ? `${seconds.toFixed(1)}s` : formatDuration(elapsedMs);
  const rate = elapsedMs > 0 ? `${formatRate((jobs * 1000) / elapsedMs)}/s` : '--/s';
  return `${jobs} ${jobs === 1 ? 'job' : 'jobs'}, ${failed} failed, ${time}, ${rate}`;
}

/** Jobs per second for people: `0`, `7.5`, `950`, `12.3k`, `1.2M`. */
export function formatRate(perSec: number): string {
  if (!Number.isFinite(perSec) || perSec <= 0) return '0';
  if (perSec < 10) return perSec.toFixed(1).replace(/\.0$/, '');
  if (perSec < 1000) return String(Math.round(perSec));
  if (perSec < 1_000_000) return `${(perSec / 1000).toFixed(1).replace(/\.0$/, '')}k`;
  return `${(perSec / 1_000_000).toFixed(1).replace(/\.0$/, '')}M`;
}

/** A duration for people, rounded up to whole seconds: `0s`, `45s`, `3m05s`, `2h07m`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '--';
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(s / 3600);
  return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Where a {@link ProgressBar} draws: a terminal stream (stderr). */
export interface ProgressStream {
  write(text: string): unknown;
  /** Terminal width; 80 when unknown. */
  columns?: number | undefined;
}

/** Options of {@link ProgressBar}. */
export interface ProgressBarOptions {
  /** Monotonic clock in ms. Default `performance.now()`. */
  now?: () => number;
  /** Least time between two redraws. Default 100 ms. */
  intervalMs?: number;
  /** The rate is measured over about this much recent time. Default 5 s. */
  rateWindowMs?: number;
}

/** Samples kept for the recent rate: a fixed ring, so a run of any length holds the same memory. */
const RATE_SAMPLES = 32;

/**
 * A progress bar on a terminal. Each redraw is `\r` + the line + `\x1b[K`
 * (erase to the end of the line), so a shorter line never leaves stale
 * characters behind ("26k/s/s"). The rate is the recent one (over the last
 * few seconds), not the average since the start, and none is shown in the
 * first second. `finish()` replaces the bar with a summary line.
 * @example
 * const bar = new ProgressBar(process.stderr);
 * bar.update(done, total, failed);   // after every settled job; throttled
 * bar.clear();                        // before writing to the same terminal
 * bar.finish();                       // "10000 jobs, 3 failed, 12.5s, 800/s"
 */
export class ProgressBar {
  readonly #stream: ProgressStream;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #rateWindowMs: number;
  readonly #startedAt: number;
  #drawnAt = -Infinity;
  #shown = false;
  #done = 0;
  #failed = 0;
  #total: number | undefined;
  /** Ring of (time, done) samples, one per redraw at most. */
  readonly #sampleAt = new Float64Array(RATE_SAMPLES);
  readonly #sampleDone = new Float64Array(RATE_SAMPLES);
  #samples = 0;

  constructor(stream: ProgressStream, opts: ProgressBarOptions = {}) {
    this.#stream = stream;
    this.#now = opts.now ?? (() => performance.now());
    this.#intervalMs = opts.intervalMs ?? 100;
    this.#rateWindowMs = opts.rateWindowMs ?? 5000;
    this.#startedAt = this.#now();
  }

  /**
   * Records progress and redraws if the last redraw is at least the interval
   * old (or the run is complete). An undefined `total` keeps the one known
   * from {@link setTotal}.
   */
  update(done: number, total: number | undefined, failed = 0): void {
    this.#done = done;
    this.#total = total ?? this.#total;
    this.#failed = failed;
    const now = this.#now();
    if (now - this.#drawnAt < this.#intervalMs && done !== total) return;
    this.#draw(now);
  }

  /** Sets the total once it is known (end of input). */
  setTotal(total: number): void {
    this.#total = total;
  }

  /** Erases the bar (if drawn), e.g. before other output goes to the same terminal; the next update redraws it. */
  clear(): void {
    if (!this.#shown) return;
    this.#stream.write('\r\x1b[K');
    this.#shown = false;
    this.#drawnAt = -Infinity;
  }

  /** Erases the bar and writes the summary line (see {@link formatSummary}). Returns the summary. */
  finish(): string {
    const summary = formatSummary({ jobs: this.#done, failed: this.#failed, elapsedMs: this.#now() - this.#startedAt });
    this.#stream.write(`${this.#shown ? '\r\x1b[K' : ''}${summary}\n`);
    this.#shown = false;
    return summary;
  }

  /** Jobs/s over the recent window; undefined until {@link MIN_RATE_MS} have passed. */
  rate(now = this.#now()): number | undefined {
    if (now - this.#startedAt < MIN_RATE_MS) return undefined;
    // From the oldest sample inside the window; if every sample is older, from the newest one.
    let fromAt = this.#startedAt;
    let fromDone = 0;
    const n = Math.min(this.#samples, RATE_SAMPLES);
    for (let k = n; k >= 1; k--) {
      const i = (this.#samples - k) % RATE_SAMPLES;
      const at = this.#sampleAt[i]!;
      if (at >= now) break;
      fromAt = at;
      fromDone = this.#sampleDone[i]!;
      if (now - at <= this.#rateWindowMs) break;
    }
    const span = now - fromAt;
    return span > 0 ? ((this.#done - fromDone) * 1000) / span : undefined;
  }

  #draw(now: number): void {
    // One sample per ~window/RATE_SAMPLES, so the ring spans the whole window.
    const last = this.#samples === 0 ? -Infinity : this.#sampleAt[(this.#samples - 1) % RATE_SAMPLES]!;
    if (now - last >= this.#rateWindowMs / RATE_SAMPLES) {
      const i = this.#samples % RATE_SAMPLES;
      this.#sampleAt[i] = now;
      this.#sampleDone[i] = this.#done;
      this.#samples++;
    }
    this.#drawnAt = now;
    this.#shown = true;
    const width = Math.max(20, (this.#stream.columns || 80) - 1);
    const line = renderProgress({ done: this.#done, total: this.#total, elapsedMs: now - this.#startedAt, width, ratePerSec: this.rate(now) });
    this.#stream.write(`\r${line}\x1b[K`);
  }
}
