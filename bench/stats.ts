/** Small number helpers of the benchmark: percentiles and formatting. */

/** Summary of a set of samples (microseconds). */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of `samples` (sorted in place). */
export function percentiles(samples: Float64Array): Percentiles {
  samples.sort();
  const n = samples.length;
  if (n === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const at = (q: number): number => samples[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += samples[i]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: samples[n - 1]!, mean: sum / n };
}

/** Rounds to `digits` significant digits (keeps JSON readable). */
export function round(x: number, digits = 4): number {
  if (!Number.isFinite(x) || x === 0) return x;
  return Number(x.toPrecision(digits));
}

/** `1234567` -> `1,234,567`. */
export function fmtInt(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : String(x);
}

/** A ratio with two or three significant digits. */
export function fmtRatio(x: number): string {
  if (!Number.isFinite(x)) return '—';
  return x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(2);
}

/** Bytes as B / KiB / MiB. */
export function fmtBytes(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x >= 1024 * 1024) return `${(x / 1024 / 1024).toFixed(1)} MiB`;
  if (x >= 1024) return `${(x / 1024).toFixed(1)} KiB`;
  return `${Math.round(x)} B`;
}
