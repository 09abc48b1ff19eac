/**
 * Jobs finished per second over the last ten minutes (the dashboard's chart):
 * two fixed rings of 600 one-second buckets, filled by the core's observer
 * (O(1) per job) and closed by the HTTP layer's one-second tick.
 */
import type { JobState } from '../protocol.js';

/** Seconds of history kept. */
export const RATE_HISTORY_SECONDS = 600;

/** JSON form: per-second counts, oldest first. */
export interface RateHistoryJson {
  intervalMs: number;
  done: number[];
  failed: number[];
}

/** See the module comment. */
export class RateHistory {
  readonly #done = new Uint32Array(RATE_HISTORY_SECONDS);
  readonly #failed = new Uint32Array(RATE_HISTORY_SECONDS);
  /** Buckets filled so far (up to the capacity). */
  #size = 0;
  /** Next bucket to fill. */
  #head = 0;
  #doneNow = 0;
  #failedNow = 0;
  /** Seconds closed so far (the dashboard adds a point when it changes). */
  #seconds = 0;
  #last = { done: 0, failed: 0 };

  /** A job reached `state` (called from the observer). */
  count(state: JobState): void {
    if (state === 'DONE') this.#doneNow++;
    else if (state === 'FAILED') this.#failedNow++;
  }

  /** Closes the current second (call once a second); returns its counts. */
  sample(): { done: number; failed: number } {
    const done = this.#doneNow;
    const failed = this.#failedNow;
    this.#done[this.#head] = done;
    this.#failed[this.#head] = failed;
    this.#head = (this.#head + 1) % RATE_HISTORY_SECONDS;
    if (this.#size < RATE_HISTORY_SECONDS) this.#size++;
    this.#doneNow = 0;
    this.#failedNow = 0;
    this.#seconds++;
    this.#last = { done, failed };
    return this.#last;
  }

  /** The last closed second: its number (from 1; 0 before the first) and counts. */
  last(): { second: number; done: number; failed: number } {
    return { second: this.#seconds, ...this.#last };
  }

  /** Every closed second, oldest first. */
  toJSON(): RateHistoryJson {
    const done: number[] = [];
    const failed: number[] = [];
    const start = (this.#head - this.#size + RATE_HISTORY_SECONDS) % RATE_HISTORY_SECONDS;
    for (let i = 0; i < this.#size; i++) {
      const j = (start + i) % RATE_HISTORY_SECONDS;
      done.push(this.#done[j]!);
      failed.push(this.#failed[j]!);
    }
    return { intervalMs: 1000, done, failed };
  }
}
