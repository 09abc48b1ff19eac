import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { StatsInfo, WorkerInfo } from '../../src/lib/protocol.js';
import { renderTop, runTop, type TopSample, type TopSource } from '../../src/lib/cli/top.js';

function stats(done: number, failed: number): StatsInfo {
  return {
    uptimeMs: 65_000,
    serverVersion: '1.2.3',
    connections: { clients: 1, workers: 2 },
    totals: { queued: 7, running: 3, retained: 40, submitted: 50 },
    kinds: {
      sha256: { queued: 5, prefetched: 3, running: 2, paused: false, done, failed, cancelled: 0, oldestQueuedMs: 12_000, donePerSec: 42, submittedPerSec: 50 },
      add: { queued: 2, prefetched: 0, running: 1, paused: true, done: 1, failed: 0, cancelled: 0, oldestQueuedMs: 0, donePerSec: 0, submittedPerSec: 0 },
    },
    journal: null,
  };
}

const WALL = Date.UTC(2025, 0, 2, 3, 4, 5);
const WORKERS: WorkerInfo[] = [
  { id: 'c2', name: 'w-b', capabilities: ['add'], concurrency: 2, running: 1, draining: true, connectedAt: WALL - 60_000, lastHeartbeatAt: WALL - 3000, done: 1, failed: 0 },
  { id: 'c1', name: 'w-a', capabilities: ['sha256', 'add'], concurrency: 4, running: 2, draining: false, connectedAt: WALL - 60_000, lastHeartbeatAt: WALL - 1000, done: 9, failed: 1 },
];

function at(atMs: number, done: number, failed: number): TopSample {
  return { atMs, wallMs: WALL + atMs, stats: stats(done, failed), workers: WORKERS };
}

describe('renderTop', () => {
  it('shows per kind paused, queued, prefetched, running, done/s, failed/s, oldest age, and per worker load and heartbeat age', () => {
    const frame = renderTop(at(2000, 130, 4), at(0, 100, 2), 200);
    expect(frame).toMatch(/^taskwire top +03:04:07 +server 1\.2\.3, up 1m05s, 1 client, 2 workers$/m);
    expect(frame).toMatch(/^KIND +PAUSED +QUEUED +PREFETCHED +RUNNING +DONE\/S +FAILED\/S +OLDEST$/m);
    expect(frame).toMatch(/^sha256 +no +5 +3 +2 +15 +1 +12s$/m); // (130-100)/2 s, (4-2)/2 s
    expect(frame).toMatch(/^add +yes +2 +0 +1 +0 +0$/m);
    expect(frame).toMatch(/^WORKER +RUNNING +STATE +HEARTBEAT/m);
    expect(frame).toMatch(/^w-a +2\/4 +active +3s ago +9 +1 +sha256,add$/m);
    expect(frame).toMatch(/^w-b +1\/2 +draining +5s ago/m);
    expect(frame.indexOf('w-a')).toBeLessThan(frame.indexOf('w-b'));
  });

  it('without a previous sample, done/s is the scheduler\'s and failed/s unknown', () => {
    expect(renderTop(at(0, 100, 2), undefined, 200)).toMatch(/^sha256 +no +5 +3 +2 +42 +- +12s$/m);
  });

  it("shows '-' for paused and prefetched when the scheduler does not report them (an older version)", () => {
    const old = stats(100, 2);
    const { paused: _paused, prefetched: _prefetched, ...sha256 } = old.kinds['sha256']!;
    const frame = renderTop({ atMs: 0, wallMs: WALL, stats: { ...old, kinds: { sha256 } }, workers: WORKERS }, undefined, 200);
    expect(frame).toMatch(/^sha256 +- +5 +- +2 +42 +- +12s$/m);
  });

  it('fits every kind column in 80 columns', () => {
    const frame = renderTop(at(0, 100, 2), undefined, 80);
    expect(frame).toMatch(/^KIND +PAUSED +QUEUED +PREFETCHED +RUNNING +DONE\/S +FAILED\/S +OLDEST$/m);
    expect(frame).toMatch(/^sha256 +no +5 +3 +2 +42 +- +12s$/m);
  });

  it('never writes a line wider than the terminal', () => {
    for (const line of renderTop(at(0, 1, 1), undefined, 30).split('\n')) expect(line.length).toBeLessThanOrEqual(30);
  });

  it('says so when there are no kinds or workers', () => {
    const empty: TopSample = { atMs: 0, wallMs: WALL, stats: { ...stats(0, 0), kinds: {} }, workers: [] };
    const frame = renderTop(empty, undefined);
    expect(frame).toContain('no job kinds yet');
    expect(frame).toContain('no workers connected');
  });
});

/** A fake TTY: records writes and raw-mode switches; emits keys. */
class FakeTty extends EventEmitter {
  isTTY = true;
  columns = 100;
  rows = 40;
  out = '';
  raw: boolean[] = [];
  paused = true;
  write(text: string): boolean {
    this.out += text;
    return true;
  }
  setRawMode(mode: boolean): this {
    this.raw.push(mode);
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
}

function source(onFrame?: (n: number) => void): TopSource & { calls: number } {
  const s = {
    calls: 0,
    stats: async () => {
      s.calls++;
      queueMicrotask(() => onFrame?.(s.calls));
      return stats(s.calls * 10, 0);
    },
    workers: async () => WORKERS,
  };
  return s;
}

describe('runTop', () => {
  it('prints one snapshot when stdout is not a terminal', async () => {
    const stdout = new FakeTty();
    stdout.isTTY = false;
    const stdin = new FakeTty();
    await runTop(source(), { stdout, stdin }, { intervalMs: 1000 });
    expect(stdout.out).toMatch(/^KIND +PAUSED +QUEUED +PREFETCHED +RUNNING /m);
    expect(stdout.out).toMatch(/^add +yes +2 +0 +1 /m);
    expect(stdout.out).not.toContain('\x1b'); // no escape sequences in a pipe
    expect(stdin.raw).toEqual([]);
  });

  it('on a terminal: redraws, quits on q, and restores raw mode, cursor and screen', async () => {
    const stdout = new FakeTty();
    const stdin = new FakeTty();
    const src = source((n) => {
      if (n === 3) stdin.emit('data', Buffer.from('q'));
    });
    await runTop(src, { stdout, stdin }, { intervalMs: 1 });
    expect(src.calls).toBe(3);
    // The live view has the same columns (each line ends in erase-to-end-of-line).
    expect(stdout.out).toMatch(/KIND +PAUSED +QUEUED +PREFETCHED +RUNNING +DONE\/S +FAILED\/S +OLDEST\x1b\[K/);
    expect(stdout.out).toMatch(/add +yes +2 +0 +1 +0 +0\x1b\[K/);
    expect(stdin.raw).toEqual([true, false]);
    expect(stdin.paused).toBe(true);
    expect(stdout.out.startsWith('\x1b[?1049h\x1b[?25l')).toBe(true);
    expect(stdout.out.endsWith('\x1b[?25h\x1b[?1049l')).toBe(true);
    expect(stdin.listenerCount('data')).toBe(0);
  });

  it('quits on Ctrl-C (a key in raw mode) and on the abort signal', async () => {
    const stdout = new FakeTty();
    const stdin = new FakeTty();
    const ctrlC = runTop(source((n) => n === 1 && stdin.emit('data', '\x03')), { stdout, stdin }, { intervalMs: 60_000 });
    await ctrlC; // would hang for a minute if the key did not wake the wait
    expect(stdin.raw).toEqual([true, false]);
    const stop = new AbortController();
    const stdin2 = new FakeTty();
    const run = runTop(source((n) => n === 2 && stop.abort()), { stdout: new FakeTty(), stdin: stdin2 }, { intervalMs: 1, signal: stop.signal });
    await run;
    expect(stdin2.raw).toEqual([true, false]);
  });

  it('restores the terminal when a refresh fails', async () => {
    const stdout = new FakeTty();
    const stdin = new FakeTty();
    const failing: TopSource = {
      stats: () => Promise.reject(new Error('connection closed')),
      workers: async () => [],
    };
    await expect(runTop(failing, { stdout, stdin }, { intervalMs: 1 })).rejects.toThrow('connection closed');
    expect(stdin.raw).toEqual([true, false]);
    expect(stdout.out.endsWith('\x1b[?25h\x1b[?1049l')).toBe(true);
  });
});
