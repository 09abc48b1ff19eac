import { describe, expect, it } from 'vitest';
import { IdMap } from '../../src/lib/id-map.js';

/** A seeded generator, so a failure replays. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 0x1_0000_0000;
  };
}

describe('IdMap', () => {
  it('behaves as a Map under random set/get/delete/clear, across pages', () => {
    for (const pageSize of [1, 4, 64]) {
      const random = rng(pageSize);
      const m = new IdMap<string>(pageSize);
      const ref = new Map<number, string>();
      let next = 0;
      for (let step = 0; step < 20_000; step++) {
        const r = random();
        if (r < 0.45) {
          // Mostly ids in order (how request and job ids come), sometimes an old or far one.
          const id = random() < 0.9 ? next++ : Math.floor(random() * (next + 1000));
          m.set(id, `v${step}`);
          ref.set(id, `v${step}`);
        } else if (r < 0.9) {
          const id = Math.floor(random() * (next + 10));
          expect(m.delete(id)).toBe(ref.delete(id));
        } else if (r < 0.999) {
          const id = Math.floor(random() * (next + 10));
          expect(m.get(id)).toBe(ref.get(id));
          expect(m.has(id)).toBe(ref.has(id));
        } else {
          m.clear();
          ref.clear();
        }
        expect(m.size).toBe(ref.size);
      }
      expect([...m.values()]).toEqual([...ref.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]));
    }
  });

  it('one entry at a time (a sequential client): each id is found, then gone, across page reuse', () => {
    const m = new IdMap<number>(64);
    for (let id = 1; id <= 1000; id++) {
      expect(m.get(id - 1)).toBeUndefined();
      m.set(id, id * 2);
      expect(m.get(id)).toBe(id * 2);
      expect(m.size).toBe(1);
      expect(m.delete(id)).toBe(true);
      expect(m.get(id)).toBeUndefined();
      expect(m.delete(id)).toBe(false);
      expect(m.size).toBe(0);
    }
    expect([...m.values()]).toEqual([]);
  });
});
