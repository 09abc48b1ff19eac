/**
 * Buffered, backpressure-aware stdout for streamed results: many small
 * lines become one `write` per tick (or per 64 KiB), and a stream that
 * cannot keep up (a slow pipe) is reported through {@link Output.ready}
 * so the producer stops instead of queueing results in memory.
 */

/** The part of a writable stream {@link Output} uses. */
export interface OutputStream {
  write(text: string, callback?: (err?: Error | null) => void): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** Text buffered before a write is forced. */
const FLUSH_BYTES = 64 * 1024;

/** Batched writer for one stream. */
export class Output {
  readonly #stream: OutputStream;
  readonly #beforeWrite: (() => void) | undefined;
  #buffer = '';
  #scheduled = false;
  #blocked = false;
  /** Called when a blocked stream has drained. */
  onDrain: (() => void) | undefined;

  /** `beforeWrite` runs before each write (e.g. erase a progress bar on the same terminal). */
  constructor(stream: OutputStream, beforeWrite?: () => void) {
    this.#stream = stream;
    this.#beforeWrite = beforeWrite;
  }

  /** False while the stream has more queued than it wants: produce nothing new until `onDrain`. */
  ready(): boolean {
    return !this.#blocked;
  }

  /** Queues text; it is written by the end of this tick (sooner past 64 KiB). */
  write(text: string): void {
    this.#buffer += text;
    if (this.#buffer.length >= FLUSH_BYTES) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what is buffered now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#buffer === '') return;
    this.#beforeWrite?.();
    const text = this.#buffer;
    this.#buffer = '';
    if (!this.#stream.write(text) && !this.#blocked) {
      this.#blocked = true;
      this.#stream.once('drain', () => {
        this.#blocked = false;
        this.onDrain?.();
      });
    }
  }

  /** Flushes and resolves once the stream has taken everything written. */
  end(): Promise<void> {
    this.flush();
    return new Promise((resolve) => {
      this.#stream.write('', () => resolve());
    });
  }
}
