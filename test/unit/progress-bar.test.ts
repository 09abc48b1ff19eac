import { describe, expect, it } from 'vitest';
import { formatDuration, formatRate, renderProgress } from '../../src/lib/progress-bar.js';

describe('renderProgress', () => {
  it('shows percentage, bar, count, rate and ETA', () => {
    const line = renderProgress({ done: 2500, total: 10_000, elapsedMs: 2000, width: 60 });
    expect(line).toBe(' 25% [######-------------------]  2500/10000  1.3k/s  ETA 6s');
    expect(line.length).toBe(60);
  });

  it('fills the bar at 100% with ETA 0s', () => {
    const line = renderProgress({ done: 10, total: 10, elapsedMs: 1000, width: 50 });
    expect(line).toMatch(/^100% \[#+\]  10\/10  10\/s  ETA 0s$/);
    expect(line).not.toContain('-');
    expect(line.length).toBe(50);
  });

  it('starts at 0% with an unknown ETA', () => {
    expect(renderProgress({ done: 0, total: 100, elapsedMs: 0, width: 40 })).toBe('  0% [-------------]  0/100  0/s  ETA --');
  });

  it('drops the bar when the terminal is narrow, and never exceeds the width', () => {
    const line = renderProgress({ done: 5, total: 10, elapsedMs: 1000, width: 30 });
    expect(line).toBe(' 50%  5/10  5/s  ETA 1s');
    for (let width = 1; width < 90; width++) {
      expect(renderProgress({ done: 123_456, total: 999_999, elapsedMs: 7_777, width }).length).toBeLessThanOrEqual(width);
    }
  });

  it('shows count and rate only while the total is unknown', () => {
    expect(renderProgress({ done: 300, elapsedMs: 1500, width: 80 })).toBe('300 done  200/s');
  });

  it('treats an empty input as complete and clamps done to total', () => {
    expect(renderProgress({ done: 0, total: 0, elapsedMs: 0, width: 30 })).toMatch(/^100% /);
    expect(renderProgress({ done: 12, total: 10, elapsedMs: 1000, width: 30 })).toContain('10/10');
  });

  it('defaults to 80 columns', () => {
    expect(renderProgress({ done: 1, total: 2, elapsedMs: 1000 }).length).toBe(80);
  });
});

describe('formatRate / formatDuration', () => {
  it('formats rates', () => {
    expect(formatRate(0)).toBe('0');
    expect(formatRate(Number.NaN)).toBe('0');
    expect(formatRate(7.5)).toBe('7.5');
    expect(formatRate(3)).toBe('3');
    expect(formatRate(950.4)).toBe('950');
    expect(formatRate(12_345)).toBe('12.3k');
    expect(formatRate(100_000)).toBe('100k');
    expect(formatRate(1_234_567)).toBe('1.2M');
  });

  it('formats durations, rounding up', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(1)).toBe('1s');
    expect(formatDuration(45_000)).toBe('45s');
    expect(formatDuration(185_000)).toBe('3m05s');
    expect(formatDuration(7_620_000)).toBe('2h07m');
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe('--');
  });
});
