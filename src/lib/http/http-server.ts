/**
 * The HTTP listener (issue 10, docs/HTTP.md): `node:http`, no framework.
 * REST API, OpenAPI document, `/metrics`, `/health`, `/ready`, live events
 * and the dashboard, all views of the core through in-process wire
 * sessions (./core-bridge.ts). Everything is bounded (DESIGN.md rule 3):
 * header size, body size, header and request timeouts, connections,
 * requests in flight, waits, event subscribers and their buffers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { TaskwireError } from '../errors.js';
import type { FsyncHistogram } from '../journal.js';
import type { JournalStats, StatsInfo } from '../protocol.js';
import type { CoreObserver, SchedulerCore } from '../scheduler-core.js';
import { AccessPolicy, isLoopback } from './auth.js';
import { CoreBridge } from './core-bridge.js';
import { DASHBOARD_ROUTES } from './dashboard-assets.js';
import { EventHub, type EventHubOptions } from './live-events.js';
import type { MetricsInput } from './metrics.js';
import { openApiRoute } from './openapi.js';
import { ProcessMetrics } from './process-metrics.js';
import { RateHistory } from './rate-history.js';
import { HttpError, readBody, sendError, sendJson } from './respond.js';
import { Router, type ApiState, type Readiness, type Route } from './router.js';
import { JOB_ROUTES } from './routes-jobs.js';
import { kindViewsOf, OPS_ROUTES } from './routes-ops.js';

/** Settings of the HTTP listener (`new Scheduler({ http: {...} })`, `--http HOST:PORT`). */
export interface HttpOptions {
  /** Default 127.0.0.1. A non-loopback address needs a token (`httpToken`). */
  host?: string;
  /** Default 9002; 0 picks a free port. */
  port?: number;
  /** Largest request body. Default 4 MiB. */
  maxBodyBytes?: number;
  /** Largest request head (request line + headers). Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Time to receive a request's headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request. Default 30 s. */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** Open connections at most; more are closed at once. Default 1024. */
  maxConnections?: number;
  /** Requests handled at once (event streams not counted); more get BUSY (503). Default 256. */
  maxConcurrentRequests?: number;
  /** Longest `?wait=MS`. Default 60 s. */
  maxWaitMs?: number;
  /** Live events: subscriber cap, per-subscriber buffer, flush period. */
  events?: EventHubOptions;
  /** Period of the stats event, ms. Default 1000. */
  statsIntervalMs?: number;
  /** Serve HTTPS with this certificate and key (PEM), as the scheduler's TLS port does (issue 11). */
  tls?: { cert: Buffer; key: Buffer };
}

/** What the scheduler lends the listener once its journal is replayed. */
export interface SchedulerLink {
  core: SchedulerCore;
  version: string;
  /** False while the journal's last write failed. */
  journalHealthy(): boolean;
  /** The journal's fsync histogram and its bucket bounds; null without a journal. */
  fsync(): { histogram: FsyncHistogram; bounds: readonly number[] } | null;
}

/** Default TCP port of the HTTP listener. */
export const DEFAULT_HTTP_PORT = 9002;

/** Every route: operators', jobs', the dashboard and the OpenAPI document. */
export const ROUTES: readonly Route[] = [...OPS_ROUTES, ...JOB_ROUTES, ...DASHBOARD_ROUTES, openApiRoute(() => ROUTES)];

const ROUTER = new Router(ROUTES);

/** Top kinds a stats tick carries (the page asks /api/kinds for more). */
const TICK_KINDS = 100;

/**
 * See the module comment. Created before the journal is replayed (so
 * `/health` answers and `/ready` says "recovering"), given the core with
 * {@link HttpServer.attach} after.
 */
export class HttpServer {
  readonly #opts: HttpOptions;
  readonly #server: Server | HttpsServer;
  readonly #access: AccessPolicy;
  readonly #hub: EventHub;
  readonly #history = new RateHistory();
  readonly #process = new ProcessMetrics();
  readonly #sockets = new Set<Socket>();
  readonly #closing = new AbortController();
  readonly #responses: Record<string, number> = { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  readonly #state: ApiState;
  #link: SchedulerLink | undefined;
  #bridge: CoreBridge | undefined;
  #inFlight = 0;
  #stopping = false;
  #tick: NodeJS.Timeout | undefined;
  #second: NodeJS.Timeout | undefined;
  #address: { host: string; port: number } | undefined;
  #closed: Promise<void> | undefined;

  /** Throws INVALID_ARGUMENT for a non-loopback host without a token (issue 10). */
  constructor(opts: HttpOptions, token: string | undefined) {
    const host = opts.host ?? '127.0.0.1';
    if (!isLoopback(host) && (token === undefined || token === '')) {
      throw new TaskwireError(
        'INVALID_ARGUMENT',
        `refusing to serve HTTP on ${host}: it is not a loopback address and no HTTP token is set ` +
          '(give --http-token or TASKWIRE_HTTP_TOKEN, or bind to 127.0.0.1)',
      );
    }
    this.#opts = opts;
    this.#access = new AccessPolicy(token);
    this.#hub = new EventHub(opts.events ?? {}, (state) => this.#history.count(state));
    const serverOpts = {
      maxHeaderSize: opts.maxHeaderBytes ?? 16 * 1024,
      requestTimeout: opts.requestTimeoutMs ?? 30_000,
      headersTimeout: opts.headersTimeoutMs ?? 10_000,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
      noDelay: true,
    };
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#handle(req, res);
    this.#server = opts.tls === undefined ? createServer(serverOpts, handler) : createHttpsServer({ ...serverOpts, ...opts.tls }, handler);
    this.#server.maxConnections = opts.maxConnections ?? 1024;
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('clientError', (err: Error & { code?: string }, socket: Socket) => this.#clientError(err, socket));
    const self = this;
    this.#state = {
      bridge: () => this.#requireBridge(),
      hub: this.#hub,
      history: this.#history,
      readiness: () => this.readiness(),
      metricsInput: () => this.#metricsInput(),
      info: () => this.#info(),
      get maxWaitMs() {
        return self.#opts.maxWaitMs ?? 60_000;
      },
    };
  }

  /** The core's observer for live events and the rate history (wire it into CoreOptions.observer). */
  get observer(): CoreObserver {
    return this.#hub.observer;
  }

  /** The listening address (after listen()). */
  get address(): { host: string; port: number } | undefined {
    return this.#address;
  }

  /** Starts listening; resolves with the real address. */
  async listen(): Promise<{ host: string; port: number }> {
    const host = this.#opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#opts.port ?? DEFAULT_HTTP_PORT, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const addr = this.#server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : (this.#opts.port ?? DEFAULT_HTTP_PORT);
    this.#address = { host, port };
    // The rate history has one-second buckets whatever the stats period is.
    this.#second = setInterval(() => this.#history.sample(), 1000);
    this.#second.unref();
    this.#tick = setInterval(() => this.#onTick(), this.#opts.statsIntervalMs ?? 1000);
    this.#tick.unref();
    return this.#address;
  }

  /** Recovery is over: requests reach the core from now on. */
  attach(link: SchedulerLink): void {
    this.#link = link;
    this.#bridge = new CoreBridge(link.core);
  }

  /** Whether the scheduler takes requests (`GET /ready`). */
  readiness(): Readiness {
    if (this.#stopping) return { ready: false, reason: 'stopping', message: 'the scheduler is shutting down' };
    const link = this.#link;
    if (link === undefined) return { ready: false, reason: 'recovering', message: 'the scheduler is replaying its journal' };
    if (!link.journalHealthy()) {
      return { ready: false, reason: 'journal_unavailable', message: 'the journal cannot store records (its last write failed)' };
    }
    return { ready: true };
  }

  /** Graceful stop, step 1: `/ready` answers 503 and changes are refused; reads go on. */
  beginClose(): void {
    this.#stopping = true;
  }

  /**
   * Stops: no new connections, event streams ended, waiting requests
   * answered now, then idle connections closed; connections still busy
   * after `timeoutMs` are cut. Idempotent.
   */
  close({ timeoutMs = 2_000 }: { timeoutMs?: number } = {}): Promise<void> {
    this.#closed ??= (async () => {
      this.#stopping = true;
      clearInterval(this.#tick);
      clearInterval(this.#second);
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#hub.close();
      this.#closing.abort();
      this.#server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      });
      await Promise.race([closed, timedOut]);
      clearTimeout(timer);
      this.#server.closeAllConnections();
      for (const s of this.#sockets) s.destroy();
      await closed;
      this.#bridge?.close();
      this.#process.close();
    })();
    return this.#closed;
  }

  /** Cuts every connection now. Idempotent. */
  destroy(): Promise<void> {
    this.#server.closeAllConnections();
    for (const s of this.#sockets) s.destroy();
    return this.close({ timeoutMs: 0 });
  }

  #requireBridge(): CoreBridge {
    if (this.#bridge === undefined) throw new HttpError('BUSY', 'the scheduler is replaying its journal; try again shortly');
    return this.#bridge;
  }

  #info(): Record<string, unknown> {
    return {
      serverVersion: this.#link?.version ?? '',
      tokenRequired: this.#access.tokenRequired,
      limits: { maxBodyBytes: this.#maxBodyBytes, maxWaitMs: this.#state.maxWaitMs },
    };
  }

  get #maxBodyBytes(): number {
    return this.#opts.maxBodyBytes ?? 4 * 1024 * 1024;
  }

  async #metricsInput(): Promise<MetricsInput> {
    const link = this.#link;
    const bridge = this.#requireBridge();
    const process = await this.#process.sample();
    return {
      core: bridge.core,
      version: link!.version,
      journalHealthy: link!.journalHealthy(),
      journalStats: bridge.core.stats().journal,
      fsync: link!.fsync(),
      http: {
        connections: this.#sockets.size,
        inFlight: this.#inFlight,
        responses: this.#responses,
        sessions: bridge.openSessions,
        subscribers: this.#hub.subscribers,
        subscribersDropped: this.#hub.dropped,
      },
      process,
    };
  }

  /** With listeners: flush job events and send a stats tick (`rate`: the last closed second). */
  #onTick(): void {
    if (this.#hub.subscribers === 0 || this.#bridge === undefined) return;
    const rate = this.#history.last();
    this.#hub.flush();
    const core = this.#bridge.core;
    const stats: StatsInfo = core.stats();
    const kinds = kindViewsOf(stats);
    let busy = 0;
    let slots = 0;
    for (const w of core.workerSessions()) {
      busy += w.started;
      slots += w.concurrency;
    }
    const journal: JournalStats | null = stats.journal;
    this.#hub.broadcast(
      'stats',
      JSON.stringify({
        uptimeMs: stats.uptimeMs,
        totals: stats.totals,
        connections: { ...stats.connections, clients: Math.max(0, stats.connections.clients - this.#bridge.openSessions) },
        slots: { busy, total: slots },
        journal,
        journalHealthy: this.#link?.journalHealthy() ?? true,
        ready: this.readiness(),
        rate,
        kinds: kinds.slice(0, TICK_KINDS),
        kindCount: kinds.length,
      }),
    );
  }

  /** A request Node could not parse (or that timed out): a JSON error, then close. */
  #clientError(err: Error & { code?: string }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    let status = 400;
    let reason = 'Bad Request';
    let code = 'INVALID_ARGUMENT';
    let message = 'malformed HTTP request';
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      reason = 'Request Header Fields Too Large';
      code = 'TOO_LARGE';
      message = `request head is over the limit of ${this.#opts.maxHeaderBytes ?? 16 * 1024} bytes`;
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      reason = 'Request Timeout';
      code = 'TIMEOUT';
      message = 'the request took too long to arrive';
    }
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.once('finish', () => {
      const cls = `${Math.floor(res.statusCode / 100)}xx`;
      if (this.#responses[cls] !== undefined) this.#responses[cls]++;
      // Stopping: a connection whose last answer just went out is idle now.
      if (this.#closed !== undefined) setImmediate(() => this.#server.closeIdleConnections());
    });
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendError(res, new HttpError('INVALID_ARGUMENT', 'bad request target'));
    }
    let match;
    try {
      match = ROUTER.match(req.method ?? 'GET', url.pathname);
    } catch {
      return sendError(res, new HttpError('INVALID_ARGUMENT', 'bad percent-encoding in the path'));
    }
    if (match.type === 'none') return sendError(res, new HttpError('NOT_FOUND', `no route ${url.pathname}`));
    if (match.type === 'method') {
      return sendError(res, new HttpError('INVALID_ARGUMENT', `${req.method ?? ''} is not allowed here`, 405, { Allow: match.allowed.join(', ') }));
    }
    const { route, params } = match;
    const stream = route.path === '/api/events';
    if (stream && req.method === 'HEAD') {
      return sendError(res, new HttpError('INVALID_ARGUMENT', 'HEAD is not allowed here', 405, { Allow: 'GET' }));
    }
    if (!stream) {
      if (this.#inFlight >= (this.#opts.maxConcurrentRequests ?? 256)) {
        return sendError(res, new HttpError('BUSY', 'too many HTTP requests at once; try again shortly'));
      }
      this.#inFlight++;
      res.once('close', () => this.#inFlight--);
    }
    try {
      if (route.mutating) this.#access.checkWrite(req.headers);
      else this.#access.checkRead(req.headers);
      if (route.mutating && this.#stopping) throw new HttpError('SHUTTING_DOWN', 'the scheduler is shutting down');
      let body: Buffer = EMPTY;
      if (route.mutating) {
        try {
          body = await readBody(req, this.#maxBodyBytes);
        } catch (err) {
          res.setHeader('Connection', 'close'); // the rest of the body is not read
          throw err;
        }
      }
      await route.handler({ req, res, url, params, body, signal: this.#closing.signal, state: this.#state });
    } catch (err) {
      sendError(res, err);
    }
  }
}

const EMPTY = Buffer.alloc(0);
