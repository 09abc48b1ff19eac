import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Heartbeat } from '../../src/lib/heartbeat.js';

describe('Heartbeat', () => {
  let clock = 0;
  beforeEach(() => {
    vi.useFakeTimers();
    clock = 0;
  });
  afterEach(() => vi.useRealTimers());

  const make = (paused = () => false) => {
    const pings: number[] = [];
    const dead: number[] = [];
    const hb = new Heartbeat(100, { sendPing: () => pings.push(clock), onDead: (ms) => dead.push(ms), isPaused: paused }, 3, () => clock);
    hb.start();
    return { hb, pings, dead };
  };
  const advance = (ms: number) => {
    clock += ms;
    vi.advanceTimersByTime(ms);
  };

  it('pings every interval and declares the peer dead after 3 silent intervals', () => {
    const { pings, dead } = make();
    advance(250);
    expect(pings).toHaveLength(2);
    advance(100);
    vi.runOnlyPendingTimers(); // the verdict is confirmed in a setImmediate, after the poll phase
    expect(dead).toHaveLength(1);
    expect(dead[0]).toBeGreaterThanOrEqual(300);
  });

  it('keeps a peer alive that spoke', () => {
    const { hb, dead } = make();
    for (let i = 0; i < 10; i++) {
      advance(100);
      hb.touch();
    }
    vi.runOnlyPendingTimers();
    expect(dead).toEqual([]);
  });

  it('does not count time the peer’s input was paused by us', () => {
    let paused = true;
    const { dead } = make(() => paused);
    advance(1000);
    vi.runOnlyPendingTimers();
    expect(dead).toEqual([]);
    paused = false;
    advance(300);
    vi.runOnlyPendingTimers();
    expect(dead).toHaveLength(1);
  });

  it('reads input already waiting before a verdict: a late tick after a stall is not silence', () => {
    const { hb, dead } = make();
    // The loop was blocked for 2 s: the interval fires late; the peer's bytes sit unread in the kernel.
    clock += 2000;
    vi.advanceTimersByTime(100); // the timer phase runs the (late) tick
    hb.touch(); // the poll phase reads the peer's heartbeat
    vi.runOnlyPendingTimers(); // the check phase confirms nothing
    expect(dead).toEqual([]);
  });
});
