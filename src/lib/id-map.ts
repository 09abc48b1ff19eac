/** Default slots per page: small, for the client's few thousand in-flight requests. */
const DEFAULT_PAGE_SIZE = 64;

interface Page<V> {
  items: (V | undefined)[];
  count: number;
}

/**
 * A map from integer ids (0 to 2^53) to values, for ids handed out in order
 * (request ids, job ids): fixed pages of 64 slots instead of a hash entry
 * per key, so the client's per-request bookkeeping is an array store rather
 * than a hash-table insert and delete (about 3× cheaper, docs/PERFORMANCE.md).
 * Scattered ids cost a 64-slot page each. The Map methods the client uses,
 * with Map semantics; `undefined` is not a storable value. Iteration is in
 * id order.
 */
export class IdMap<V> {
  readonly #pages = new Map<number, Page<V>>();
  readonly #pageSize: number;
  #size = 0;
  /** The page looked up last (ids come in order, so nearly always the one wanted next). */
  #lastKey = -1;
  #lastPage: Page<V> | undefined = undefined;
  /** A page that emptied, kept for the next new page: one request at a time must not allocate a page each. */
  #spare: Page<V> | undefined = undefined;

  /**
   * @param pageSize slots per page: larger pages cost less per entry when
   *   ids are dense (the scheduler's job table uses 1,024: 8 bytes a slot
   *   against about 40 for a hash entry), smaller ones waste less when sparse.
   */
  constructor(pageSize = DEFAULT_PAGE_SIZE) {
    this.#pageSize = pageSize;
  }

  get size(): number {
    return this.#size;
  }

  #page(key: number): Page<V> | undefined {
    if (key === this.#lastKey) return this.#lastPage;
    const page = this.#pages.get(key);
    if (page !== undefined) {
      this.#lastKey = key;
      this.#lastPage = page;
    }
    return page;
  }

  get(id: number): V | undefined {
    const page = this.#page(Math.floor(id / this.#pageSize));
    return page === undefined ? undefined : page.items[id % this.#pageSize];
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  set(id: number, value: V): this {
    const key = Math.floor(id / this.#pageSize);
    let page = this.#page(key);
    if (page === undefined) {
      page = this.#spare ?? { items: new Array<V | undefined>(this.#pageSize).fill(undefined), count: 0 };
      this.#spare = undefined;
      this.#pages.set(key, page);
      this.#lastKey = key;
      this.#lastPage = page;
    }
    const slot = id % this.#pageSize;
    if (page.items[slot] === undefined) {
      page.count++;
      this.#size++;
    }
    page.items[slot] = value;
    return this;
  }

  delete(id: number): boolean {
    const key = Math.floor(id / this.#pageSize);
    const page = this.#page(key);
    if (page === undefined) return false;
    const slot = id % this.#pageSize;
    if (page.items[slot] === undefined) return false;
    page.items[slot] = undefined;
    this.#size--;
    if (--page.count === 0) {
      // Empty (every slot undefined again): out of the map, kept as the spare.
      this.#pages.delete(key);
      if (key === this.#lastKey) {
        this.#lastKey = -1;
        this.#lastPage = undefined;
      }
      this.#spare = page;
    }
    return true;
  }

  clear(): void {
    this.#pages.clear();
    this.#size = 0;
    this.#lastKey = -1;
    this.#lastPage = undefined;
  }

  /** Every value, in id order. */
  *values(): IterableIterator<V> {
    const keys = [...this.#pages.keys()].sort((a, b) => a - b);
    for (const key of keys) {
      const page = this.#pages.get(key);
      if (page === undefined) continue;
      for (const item of page.items) if (item !== undefined) yield item;
    }
  }
}
