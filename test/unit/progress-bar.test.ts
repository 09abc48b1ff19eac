import { describe, expect, it } from 'vitest';
import { formatDuration, formatRate, formatSummary, MIN_RATE_MS, ProgressBar, renderProgress } from '../../src/lib/progress-bar.js';

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
    expect(renderProgress({ done: 0, total: 100, elapsedMs: 0, width: 40 })).toBe('  0% [------------]  0/100  --/s  ETA --');
  });

  it('shows no rate and no ETA in the first second (a rate from a few jobs is noise)', () => {
    // The first frame: 73 jobs after 100 ms became "7.3/s ETA 1h54m"-style nonsense.
    const early = renderProgress({ done: 73, total: 50_000, elapsedMs: 100, width: 80 });
    expect(early).toContain('--/s');
    expect(early).toContain('ETA --');
    expect(renderProgress({ done: 73, total: 50_000, elapsedMs: MIN_RATE_MS, width: 80 })).toContain('73/s');
    // An explicit (recent) rate wins over the average.
    expect(renderProgress({ done: 100, total: 200, elapsedMs: 5000, ratePerSec: 50, width: 80 })).toMatch(/50\/s  ETA 2s$/);
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
    expect(renderProgress({ done: 3, elapsedMs: 10, width: 80 })).toBe('3 done  --/s');
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

describe('formatSummary', () => {
  it('says jobs, failed, time and rate', () => {
    expect(formatSummary({ jobs: 10_000, failed: 3, elapsedMs: 12_500 })).toBe('10000 jobs, 3 failed, 12.5s, 800/s');
    expect(formatSummary({ jobs: 1, failed: 0, elapsedMs: 0 })).toBe('1 job, 0 failed, 0.0s, --/s');
    expect(formatSummary({ jobs: 600_000, failed: 0, elapsedMs: 125_000 })).toBe('600000 jobs, 0 failed, 2m05s, 4.8k/s');
  });
});

/** A terminal stand-in: what was written, and the line as a terminal would show it. */
class FakeTerminal {
  columns = 60;
  written = '';
  write(text: string): boolean {
    this.written += text;
    return true;
  }
  /** The visible last line: \r moves to column 0, \x1b[K erases to the end of the line. */
  get screenLine(): string {
    let line: string[] = [];
    let col = 0;
    const text = this.written.slice(this.written.lastIndexOf('\n') + 1);
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '\r') col = 0;
      else if (text.startsWith('\x1b[K', i)) {
        line = line.slice(0, col);
        i += 2;
      } else line[col++] = text[i]!;
    }
    return line.join('');
  }
}

describe('ProgressBar', () => {
  function setup() {
    let now = 0;
    const term = new FakeTerminal();
    const bar = new ProgressBar(term, { now: () => now, intervalMs: 100, rateWindowMs: 5000 });
    return { term, bar, advance: (ms: number) => (now += ms) };
  }

  it('redraws at most every interval, and at completion', () => {
    const { term, bar, advance } = setup();
    bar.update(1, 100);
    const first = term.written;
    advance(50);
    bar.update(2, 100);
    expect(term.written).toBe(first);
    advance(60);
    bar.update(3, 100);
    expect(term.written.length).toBeGreaterThan(first.length);
    const before = term.written.length;
    bar.update(100, 100); // the last one always shows
    expect(term.written.length).toBeGreaterThan(before);
    expect(term.screenLine).toMatch(/^100% /);
  });

  it('keeps a total set in advance (a counted file) while the input is still being read', () => {
    const { term, bar, advance } = setup();
    bar.setTotal(200);
    advance(1500);
    bar.update(50, undefined);
    expect(term.screenLine).toMatch(/^ 25% \[/);
  });

  it('first frame: no rate, no ETA', () => {
    const { term, bar, advance } = setup();
    advance(100);
    bar.update(73, 50_000);
    expect(term.screenLine).toContain('--/s');
    expect(term.screenLine).toContain('ETA --');
  });

  it('a shorter redraw leaves no stale characters', () => {
    const { term, bar, advance } = setup();
    advance(2000);
    bar.update(52_000, undefined); // "52000 done  26k/s"
    advance(200);
    bar.update(52_001, undefined); // the rate shrinks: a shorter line
    expect(term.screenLine).toMatch(/^52001 done {2}[\d.]+k?\/s$/);
    expect(term.written).toContain('\x1b[K');
  });

  it('measures the recent rate, not the average since the start', () => {
    const { bar, advance } = setup();
    // 10 s at 100 jobs/s, then 10 s at 1000 jobs/s.
    let done = 0;
    for (let i = 0; i < 100; i++) {
      advance(100);
      done += 10;
      bar.update(done, undefined);
    }
    for (let i = 0; i < 100; i++) {
      advance(100);
      done += 100;
      bar.update(done, undefined);
    }
    expect(bar.rate()).toBeGreaterThan(900);
    expect(bar.rate()).toBeLessThan(1100);
  });

  it('clear() erases the bar; finish() replaces it with the summary line', () => {
    const { term, bar, advance } = setup();
    advance(500);
    bar.update(5, 10, 1);
    bar.clear();
    expect(term.screenLine).toBe('');
    advance(1500);
    bar.update(10, 10, 2);
    const summary = bar.finish();
    expect(summary).toBe('10 jobs, 2 failed, 2.0s, 5/s');
    expect(term.written.endsWith(`\r\x1b[K${summary}\n`)).toBe(true);
  });
});
