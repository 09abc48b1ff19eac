import { Heap } from './queue.js';

/**
 * A priority queue ordered by `less` that costs O(1) for items pushed in
 * order. Most jobs of a kind arrive in queue order already (same priority,
 * same estimate, rising ids), and a binary heap would still compare its way
 * down ~log2(n) levels on every pop, touching a job object per level (the
 * scheduler's hottest loop in profiles, docs/PERFORMANCE.md). So items
 * that are not less than the last in-order item go to a FIFO; only the
 * others (a higher priority, a retry's reshuffle) go to a {@link Heap}. The
 * smallest item is the smaller of the two heads. Pure: no timers, no I/O;
 * removal is lazy in the caller, as with {@link Heap}.
 */
export class RunQueue<T> {
  readonly #less: (a: T, b: T) => boolean;
  readonly #heap: Heap<T>;
  /** In order: each item is not less than the one before it. Live from `#head`. */
  #fifo: (T | undefined)[] = [];
  #head = 0;

  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less;
    this.#heap = new Heap(less);
  }

  get size(): number {
    return this.#fifo.length - this.#head + this.#heap.size;
  }

  push(item: T): void {
    const n = this.#fifo.length;
    if (n === this.#head || !this.#less(item, this.#fifo[n - 1]!)) this.#fifo.push(item);
    else this.#heap.push(item);
  }

  /** The smallest item, or undefined when empty. */
  peek(): T | undefined {
    const f = this.#fifo[this.#head];
    const h = this.#heap.peek();
    if (f === undefined) return h;
    if (h === undefined) return f;
    return this.#less(h, f) ? h : f;
  }

  pop(): T | undefined {
    const f = this.#fifo[this.#head];
    const h = this.#heap.peek();
    if (f === undefined) return this.#heap.pop();
    if (h !== undefined && this.#less(h, f)) return this.#heap.pop();
    this.#fifo[this.#head++] = undefined;
    if (this.#head === this.#fifo.length) {
      this.#fifo.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#fifo.length) {
      // Reclaim the dead prefix once it is half the array.
      this.#fifo = this.#fifo.slice(this.#head);
      this.#head = 0;
    }
    return f;
  }

  /** Every item, in no particular order (for stats and snapshots). */
  *values(): IterableIterator<T> {
    for (let i = this.#head; i < this.#fifo.length; i++) yield this.#fifo[i]!;
    yield* this.#heap.values();
  }

  /** Drops the items `keep` rejects; O(n). */
  filter(keep: (item: T) => boolean): void {
    const kept: T[] = [];
    for (let i = this.#head; i < this.#fifo.length; i++) {
      const item = this.#fifo[i]!;
      if (keep(item)) kept.push(item);
    }
    this.#fifo = kept;
    this.#head = 0;
    this.#heap.filter(keep);
  }
}
