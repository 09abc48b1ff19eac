/**
 * Progress line of `taskwire submit --file`: pure string rendering, no
 * terminal I/O, so it is unit-tested without a TTY. The CLI writes the line
 * to stderr after a `\r`, and only when stderr is a terminal.
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
}

const MIN_BAR = 10;

/**
 * Renders one progress line: percentage, a bar, count, rate and ETA, e.g.
 * ` 42% [########------------]  4200/10000  1.2k/s  ETA 5s`.
 * With an unknown total it shows the count and rate only. The bar takes
 * whatever width is left and is dropped when fewer than 10 columns remain.
 * @example
 * process.stderr.write('\r' + renderProgress({ done, total, elapsedMs: Date.now() - t0, width: process.stderr.columns }));
 */
export function renderProgress({ done, total, elapsedMs, width = 80 }: ProgressState): string {
  const columns = Math.max(1, Math.floor(width));
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const rateText = `${formatRate(rate)}/s`;
  let line: string;
  if (total === undefined) {
    line = `${done} done  ${rateText}`;
  } else {
    const shown = Math.min(done, total);
    const fraction = total > 0 ? shown / total : 1;
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    const remaining = total - shown;
    const eta = remaining === 0 ? 'ETA 0s' : rate > 0 ? `ETA ${formatDuration((remaining / rate) * 1000)}` : 'ETA --';
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
