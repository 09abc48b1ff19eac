/**
 * `GET /api/events`: Server-Sent Events from the core's observer (docs/HTTP.md
 * "Live events"). The observer runs on the hot path, so it only writes into
 * a fixed ring of typed arrays, and only while someone listens; a timer
 * turns what arrived into one `jobs` event per flush, shared by every
 * subscriber. Memory is bounded twice: the ring (an overflow becomes a
 * `lost` event, never growth) and each subscriber's socket buffer (a
 * subscriber that does not read is dropped, never buffered for).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JOB_STATES, type JobState } from '../protocol.js';
import type { CoreObserver } from '../scheduler-core.js';
import { HttpError } from './respond.js';

/** Settings of an {@link EventHub}. */
export interface EventHubOptions {
  /** Subscribers at most; more get LIMIT_EXCEEDED (429). Default 64. */
  maxSubscribers?: number;
  /** A subscriber with more than this many bytes unsent is dropped. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** How often job events are sent, ms. Default 250. */
  flushMs?: number;
  /** Job events kept between two flushes, at most; the excess is reported as `lost`. Default 4096. */
  ringSize?: number;
}

const WORKER_EVENTS_MAX = 256;

/** See the module comment. */
export class EventHub {
  readonly #subscribers = new Set<ServerResponse>();
  readonly #maxSubscribers: number;
  readonly #maxBufferedBytes: number;
  readonly #flushMs: number;
  readonly #ringSize: number;
  readonly #ids: Float64Array;
  readonly #attempts: Uint32Array;
  readonly #states: Uint8Array;
  readonly #kinds: string[];
  /** Job events written since start / sent since start. */
  #written = 0;
  #flushed = 0;
  #workerEvents: { event: 'joined' | 'left'; id: string; name: string }[] = [];
  #workerEventsLost = 0;
  #timer: NodeJS.Timeout | undefined;
  #dropped = 0;
  #closed = false;
  /** Also told of every job change, listeners or not (the rate history). */
  readonly #onJob: (state: JobState) => void;

  /** The core's observer (CoreOptions.observer): O(1), no allocation per job. */
  readonly observer: CoreObserver;

  constructor(opts: EventHubOptions, onJob: (state: JobState) => void) {
    this.#maxSubscribers = opts.maxSubscribers ?? 64;
    this.#maxBufferedBytes = opts.maxBufferedBytes ?? 1024 * 1024;
    this.#flushMs = opts.flushMs ?? 250;
    this.#ringSize = opts.ringSize ?? 4096;
    this.#ids = new Float64Array(this.#ringSize);
    this.#attempts = new Uint32Array(this.#ringSize);
    this.#states = new Uint8Array(this.#ringSize);
    this.#kinds = new Array<string>(this.#ringSize).fill('');
    this.#onJob = onJob;
    this.observer = {
      job: (id, kind, state, attempt) => {
        this.#onJob(state);
        if (this.#subscribers.size === 0) return;
        const i = this.#written % this.#ringSize;
        this.#ids[i] = id;
        this.#attempts[i] = attempt;
        this.#states[i] = JOB_STATES.indexOf(state);
        this.#kinds[i] = kind;
        this.#written++;
      },
      worker: (event, id, name) => {
        if (this.#subscribers.size === 0) return;
        if (this.#workerEvents.length >= WORKER_EVENTS_MAX) {
          this.#workerEvents.shift();
          this.#workerEventsLost++;
        }
        this.#workerEvents.push({ event, id, name });
      },
    };
  }

  /** Subscribers now. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Subscribers dropped for not reading, since start. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Starts an event stream on `res`; throws LIMIT_EXCEEDED past the subscriber cap. */
  subscribe(req: IncomingMessage, res: ServerResponse, hello: unknown): void {
    if (this.#closed) throw new HttpError('SHUTTING_DOWN', 'the HTTP listener is stopping');
    if (this.#subscribers.size >= this.#maxSubscribers) {
      throw new HttpError('LIMIT_EXCEEDED', `too many event subscribers (max ${this.#maxSubscribers})`);
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      Connection: 'keep-alive',
    });
    req.socket.setNoDelay(true);
    if (this.#subscribers.size === 0) {
      // Nothing was recorded while nobody listened: start from now.
      this.#flushed = this.#written;
      this.#workerEvents = [];
      this.#workerEventsLost = 0;
    }
    this.#subscribers.add(res);
    res.on('close', () => this.#remove(res));
    this.#write(res, `retry: 2000\nevent: hello\ndata: ${JSON.stringify(hello)}\n\n`);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.flush(), this.#flushMs);
      this.#timer.unref();
    }
  }

  #remove(res: ServerResponse): void {
    if (!this.#subscribers.delete(res)) return;
    if (this.#subscribers.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Writes `chunk` to one subscriber; drops it if it has too much unsent (DESIGN.md rule 3). */
  #write(res: ServerResponse, chunk: string): void {
    if (res.destroyed) return this.#remove(res);
    if (res.writableLength > this.#maxBufferedBytes) {
      this.#dropped++;
      this.#remove(res);
      res.destroy();
      return;
    }
    res.write(chunk);
  }

  /** Sends one event to every subscriber. */
  broadcast(event: string, json: string): void {
    if (this.#subscribers.size === 0) return;
    const chunk = `event: ${event}\ndata: ${json}\n\n`;
    for (const res of this.#subscribers) this.#write(res, chunk);
  }

  /** Sends what the observer recorded since the last flush (job batch, worker events, losses). */
  flush(): void {
    if (this.#subscribers.size === 0) return;
    let chunk = '';
    const pending = this.#written - this.#flushed;
    if (pending > 0) {
      const lost = Math.max(0, pending - this.#ringSize);
      const rows: (string | number)[][] = [];
      for (let n = this.#flushed + lost; n < this.#written; n++) {
        const i = n % this.#ringSize;
        rows.push([this.#ids[i]!, this.#kinds[i]!, JOB_STATES[this.#states[i]!]!, this.#attempts[i]!]);
      }
      this.#flushed = this.#written;
      if (lost > 0) chunk += `event: lost\ndata: ${JSON.stringify({ jobs: lost })}\n\n`;
      chunk += `event: jobs\ndata: ${JSON.stringify(rows)}\n\n`;
    }
    if (this.#workerEvents.length > 0) {
      if (this.#workerEventsLost > 0) chunk += `event: lost\ndata: ${JSON.stringify({ workers: this.#workerEventsLost })}\n\n`;
      chunk += `event: workers\ndata: ${JSON.stringify(this.#workerEvents)}\n\n`;
      this.#workerEvents = [];
      this.#workerEventsLost = 0;
    }
    if (chunk === '') return;
    for (const res of this.#subscribers) this.#write(res, chunk);
  }

  /** Ends every stream (the listener stops); later subscribes are refused. */
  close(): void {
    this.#closed = true;
    this.flush();
    for (const res of this.#subscribers) res.end();
    this.#subscribers.clear();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
