import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { onTestFinished } from 'vitest';
import type { SchedulerOptions } from '../../src/server.js';
import { Worker, type WorkerOptions } from '../../src/worker.js';
import { startScheduler } from './scheduler.js';

/** An answer of the HTTP API; `json` is the body parsed (typed by the caller; undefined if not JSON). */
export interface HttpAnswer<T> {
  status: number;
  headers: Headers;
  text: string;
  json: T;
}

/** The error body of the API. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** A scheduler with its HTTP listener on a free loopback port; destroyed when the test ends. */
export async function startHttpScheduler(opts: Partial<SchedulerOptions> = {}) {
  const { http, ...rest } = opts;
  const s = await startScheduler({ ...rest, http: { host: '127.0.0.1', port: 0, ...http } });
  const addr = s.scheduler.httpAddress!;
  const base = `http://127.0.0.1:${addr.port}`;
  return { ...s, base, httpPort: addr.port };
}

/** fetch() with a JSON body and the body read; never throws for an HTTP status. */
export async function call<T = ErrorBody & Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  opts: { body?: unknown; raw?: string | Buffer; headers?: Record<string, string>; token?: string } = {},
): Promise<HttpAnswer<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  let body: string | Buffer | undefined;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  } else if (opts.raw !== undefined) {
    body = opts.raw;
  }
  if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
  const res = await fetch(base + path, { method, headers, body, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json: json as T };
}

/** A worker with built-in handlers (and `extra` ones), started; destroyed when the test ends. */
export async function startWorker(address: string, opts: Partial<WorkerOptions> = {}, handlers: Record<string, (args: unknown) => unknown> = {}): Promise<Worker> {
  const worker = new Worker({ server: address, concurrency: 4, ...opts });
  for (const [kind, fn] of Object.entries(handlers)) worker.handle(kind, fn);
  onTestFinished(() => worker.destroy());
  await worker.start();
  return worker;
}

/** One Server-Sent Event. */
export interface SseEvent {
  event: string;
  data: string;
}

/** A raw `GET /api/events` reader: collects events; closed when the test ends. */
export class SseReader {
  readonly events: SseEvent[] = [];
  readonly response: IncomingMessage;
  #buffer = '';
  #waiters: (() => void)[] = [];
  ended = false;

  private constructor(response: IncomingMessage) {
    this.response = response;
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      this.#buffer += chunk;
      for (;;) {
        const end = this.#buffer.indexOf('\n\n');
        if (end < 0) break;
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length > 0) this.events.push({ event, data: data.join('\n') });
      }
      this.#wake();
    });
    const end = (): void => {
      this.ended = true;
      this.#wake();
    };
    response.on('end', end);
    response.on('close', end);
    response.on('error', end);
  }

  /** Connects; resolves once the response head arrived. */
  static async open(base: string, path = '/api/events'): Promise<SseReader> {
    const req = httpRequest(base + path, { headers: { accept: 'text/event-stream' } });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    const reader = new SseReader(res);
    onTestFinished(() => {
      req.destroy();
    });
    return reader;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves with the first event matching `pred` (already received or still to come). */
  async waitFor(pred: (e: SseEvent) => boolean, what: string, timeoutMs = 5_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(pred);
      if (found !== undefined) return found;
      if (this.ended) throw new Error(`event stream ended before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves once the stream has ended (the server dropped or closed it). */
  async waitEnded(timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the event stream to end');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
