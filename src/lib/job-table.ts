const PAGE_BITS = 10;
const PAGE_SIZE = 1 << PAGE_BITS;

interface Page<T> {
  items: (T | undefined)[];
  count: number;
}

/**
 * Jobs by id. Ids are handed out in order, so instead of a hash map (about 40
 * bytes an entry) this keeps fixed pages of 1,024 slots (8 bytes a slot),
 * dropping a page when its last job leaves. Live jobs cluster by id (they
 * finish and expire roughly in submission order), so pages stay dense.
 */
export class JobTable<T extends { readonly id: number }> {
  readonly #pages = new Map<number, Page<T>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): T | undefined {
    const page = this.#pages.get(Math.floor(id / PAGE_SIZE));
    return page === undefined ? undefined : page.items[id % PAGE_SIZE];
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds a job; replaces one with the same id. */
  set(job: T): void {
    const key = Math.floor(job.id / PAGE_SIZE);
    let page = this.#pages.get(key);
    if (page === undefined) {
      page = { items: new Array<T | undefined>(PAGE_SIZE).fill(undefined), count: 0 };
      this.#pages.set(key, page);
    }
    const slot = job.id % PAGE_SIZE;
    if (page.items[slot] === undefined) {
      page.count++;
      this.#size++;
    }
    page.items[slot] = job;
  }

  delete(id: number): boolean {
    const key = Math.floor(id / PAGE_SIZE);
    const page = this.#pages.get(key);
    if (page === undefined) return false;
    const slot = id % PAGE_SIZE;
    if (page.items[slot] === undefined) return false;
    page.items[slot] = undefined;
    this.#size--;
    if (--page.count === 0) this.#pages.delete(key);
    return true;
  }

  /** Every job, in id order. */
  *values(): IterableIterator<T> {
    const keys = [...this.#pages.keys()].sort((a, b) => a - b);
    for (const key of keys) {
      const page = this.#pages.get(key);
      if (page === undefined) continue;
      for (const item of page.items) if (item !== undefined) yield item;
    }
  }
}
