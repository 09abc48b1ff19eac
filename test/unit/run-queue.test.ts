import { describe, expect, it } from 'vitest';
import { Heap } from '../../src/lib/queue.js';
import { RunQueue } from '../../src/lib/run-queue.js';
import { rng } from '../helpers/rng.js';

interface Item {
  pri: number;
  id: number;
}
const less = (a: Item, b: Item): boolean => (a.pri !== b.pri ? a.pri > b.pri : a.id < b.id);


describe('RunQueue', () => {
  it('pops in the same order as a binary heap, for random pushes and pops', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const random = rng(seed);
      const q = new RunQueue<Item>(less);
      const h = new Heap<Item>(less);
      let id = 0;
      for (let step = 0; step < 2000; step++) {
        if (random() < 0.55) {
          // Mostly in order (same priority, rising id), sometimes a higher or lower priority.
          const r = random();
          // Unique ids; a negative one plays an older job arriving late (a retry).
          const item = { pri: r < 0.8 ? 0 : r < 0.9 ? 5 : -1, id: r < 0.95 ? id++ : -id++ };
          q.push(item);
          h.push(item);
        } else {
          expect(q.peek(), `seed ${seed} step ${step}`).toBe(h.peek());
          expect(q.pop(), `seed ${seed} step ${step}`).toBe(h.pop());
        }
        expect(q.size).toBe(h.size);
      }
      while (h.size > 0) expect(q.pop()).toBe(h.pop());
      expect(q.pop()).toBeUndefined();
      expect(q.size).toBe(0);
    }
  });

  it('keeps in-order pushes in FIFO order across its compaction', () => {
    const q = new RunQueue<Item>(less);
    for (let i = 0; i < 5000; i++) q.push({ pri: 0, id: i });
    for (let i = 0; i < 3000; i++) expect(q.pop()!.id).toBe(i);
    for (let i = 5000; i < 6000; i++) q.push({ pri: 0, id: i });
    expect([...q.values()].map((x) => x.id)).toEqual(Array.from({ length: 3000 }, (_, i) => 3000 + i));
    for (let i = 3000; i < 6000; i++) expect(q.pop()!.id).toBe(i);
    expect(q.peek()).toBeUndefined();
  });

  it('filter drops items from both parts', () => {
    const q = new RunQueue<Item>(less);
    for (let i = 0; i < 10; i++) q.push({ pri: 0, id: i });
    q.push({ pri: 9, id: 100 });
    q.push({ pri: 9, id: 101 });
    q.filter((x) => x.id % 2 === 0);
    expect(q.size).toBe(6);
    expect([q.pop()!.id, q.pop()!.id, q.pop()!.id]).toEqual([100, 0, 2]);
  });
});
