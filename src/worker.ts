#!/usr/bin/env node
/**
 * The taskwire worker: connects to a scheduler, runs the jobs it is
 * assigned with the handlers of a {@link HandlerRegistry}, answers every
 * attempt exactly once, and reconnects with backoff when the link drops.
 * Executed directly, this file runs the `taskwire-worker` CLI.
 */
import { EventEmitter } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { backoffDelay } from './lib/backoff.js';
import { isMain, parseAddress } from './lib/cli.js';
import { Connection, DirectReads } from './lib/connection.js';
import { connectTls, explainTlsError, type TlsClientOptions } from './lib/tls.js';
import { errnoCode, PermanentError, TaskwireError } from './lib/errors.js';
import {
  createBuiltinRegistry,
  emulate,
  encodeResult,
  HandlerRegistry,
  type Handler,
  type JobContext,
} from './lib/jobs.js';
import {
  assertNever,
  DEFAULT_MAX_PAYLOAD,
  PROTOCOL_VERSION,
  U32_MAX,
  type AbandonMessage,
  type AssignMessage,
  type Message,
  type WelcomeMessage,
} from './lib/protocol.js';

export type { Handler, JobContext } from './lib/jobs.js';

/** Log verbosity: `info` = connections and drains, `debug` also every failed job. */
export type WorkerLogLevel = 'silent' | 'error' | 'info' | 'debug';
const LEVELS: Record<WorkerLogLevel, number> = { silent: 0, error: 1, info: 2, debug: 3 };

/** Options of a {@link Worker}. */
export interface WorkerOptions {
  /** Scheduler address: `"HOST:PORT"` (or `"[v6]:PORT"`) or its parts. */
  server: string | { host: string; port: number };
  /** Shown in the scheduler's `workers` list. Default `${hostname}-${pid}`. */
  name?: string;
  /** The pool this worker belongs to, shown in `workers` listings (a `WorkerPool` sets its name). Default: none. */
  pool?: string;
  /** The machine it runs on, shown in `workers` listings. Default `os.hostname()`. */
  host?: string;
  /**
   * Kinds to advertise. Default: every kind registered when a connection is
   * made (the built-ins plus those added with {@link Worker.handle}). Each
   * must have a handler, else start() rejects with `INVALID_ARGUMENT`.
   */
  capabilities?: string[];
  /** Most jobs run at once (the scheduler never assigns more). Default 4. */
  concurrency?: number;
  /**
   * Jobs the scheduler may send ahead, beyond `concurrency`: they wait here,
   * not started (no timeout runs), and start in arrival order as slots free,
   * so a slot never idles for a round trip (PROTOCOL.md §5.4). Default
   * max(128, concurrency); 0 turns it off.
   */
  prefetch?: number;
  /** Shared secret, when the scheduler requires one. */
  token?: string;
  /** Speak TLS (issue 11): `true` verifies the scheduler against the system CAs; or give a CA, a client certificate... */
  tls?: boolean | TlsClientOptions;
  /** First reconnect delay ceiling; doubles per failed attempt, with jitter. Default 100 ms. */
  reconnectBaseMs?: number;
  /** Largest reconnect delay. Default 5000 ms. */
  reconnectMaxMs?: number;
  /** Time allowed for TCP connect plus handshake before the attempt counts as failed. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How long {@link Worker.drain} lets running jobs finish by default. Default 30000 ms. */
  drainGraceMs?: number;
  /**
   * After the scheduler abandons an attempt (timeout, cancel), how long its
   * handler may take to settle once its signal is aborted. Past it the worker
   * gives the slot back anyway (a retryable FAIL), counts the handler in
   * {@link Worker.stuck} and logs it at `error`. Default 5000 ms.
   */
  abandonGraceMs?: number;
  /** Emulation: every job takes this long before its handler runs. Default 0. */
  processingMs?: number;
  /** Emulation: probability in [0, 1] that an attempt fails retryably ("simulated failure"). Default 0. */
  failRate?: number;
  /** Randomness in [0, 1) for reconnect jitter and `failRate`; injectable for tests. */
  random?: () => number;
  /** Where log lines go. Default: nowhere (watch the events instead). */
  log?: (line: string) => void;
  /** Default `info`. */
  logLevel?: WorkerLogLevel;
}

/** Payload of the `ready` event. */
export interface ReadyInfo {
  /** The scheduler's id for this connection (its logs and `workers` output). */
  sessionId: string;
  serverVersion: string;
  heartbeatMs: number;
  /** Kinds advertised on this connection. */
  capabilities: string[];
}

/** Payload of the `reconnecting` event. */
export interface ReconnectInfo {
  /** Consecutive failed connections so far (1 = the first retry); reset by a WELCOME. */
  attempt: number;
  delayMs: number;
  /** Why the last connection ended or failed, if known. */
  error: Error | undefined;
}

/**
 * Events of a {@link Worker}. Link failures are reported by `disconnected`
 * and `reconnecting` and retried; only a final refusal is an `error`.
 */
export interface WorkerEvents {
  /** The scheduler accepted us (WELCOME); jobs may arrive now. */
  ready: [info: ReadyInfo];
  /** A connection that had been ready closed; running jobs were aborted. */
  disconnected: [err: Error | undefined];
  /** A new connection attempt is scheduled. */
  reconnecting: [info: ReconnectInfo];
  /**
   * The scheduler refused the HELLO with a code it will not change its mind
   * about (`AUTH_FAILED`, `BAD_VERSION`): the worker stops for good. Emitted
   * only when `start()` had already resolved (a later reconnect was refused);
   * a refusal of the first connection rejects `start()` instead.
   */
  error: [err: TaskwireError];
  /** A handler ignored its abort signal past `abandonGraceMs`; its slot was given back. */
  stuck: [info: StuckInfo];
  /** The worker has stopped for good (after drain(), destroy() or a final refusal). */
  close: [];
}

/** Payload of the `stuck` event. */
export interface StuckInfo {
  jobId: number;
  attempt: number;
  kind: string;
  /** Handlers stuck now, this one included ({@link Worker.stuck}). */
  stuck: number;
}

/** HELLO refusals that no retry can fix (PROTOCOL.md §6): the worker gives up on them. */
const FINAL_REFUSALS: ReadonlySet<string> = new Set(['AUTH_FAILED', 'BAD_VERSION']);

/** Request id of the STATUS that tells a draining worker the scheduler has seen its GOODBYE. */
const DRAIN_BARRIER_ID = 1;
/**
 * Bytes a result needs around it on its way: the scheduler passes it to
 * clients in an EVENT (15 bytes before the data), a little more than the
 * RESULT's own 12, so a result fits both frames (PROTOCOL.md §5.7).
 */
const RESULT_OVERHEAD = 15;
/** Longest failure or progress message sent, in characters. */
const MAX_MESSAGE_CHARS = 4096;

type State = 'idle' | 'running' | 'draining' | 'stopped';

/** One connection attempt and what runs on it. */
class Session {
  /** Valid once TCP has connected. */
  conn: Connection | undefined = undefined;
  /** Valid once the scheduler has accepted us. */
  welcome: WelcomeMessage | undefined = undefined;
  /**
   * Jobs whose handler returned a promise that has not settled, by job id.
   * Attempts of one job (a re-assignment after an ABANDON whose handler is
   * still running) are chained through `Job.next`. Synchronous handlers
   * never get here: they are answered in the turn they ran.
   */
  readonly jobs = new Map<number, Job>();
  /** Jobs in `jobs`: this connection's load, reported in heartbeats. */
  running = 0;
  /**
   * Prefetched ASSIGNs waiting for a slot, in arrival order (from `queueHead`):
   * started as slots free, in the order the scheduler mirrors (PROTOCOL.md §5.4).
   */
  queue: (AssignMessage | undefined)[] = [];
  queueHead = 0;
  /** Live entries of `queue` (an abandoned one leaves a hole). */
  queued = 0;
  /** False once answers can no longer be delivered (link lost, scheduler said goodbye). */
  open = true;
  /** Why the connection ended: a connection-level ERROR, the scheduler's GOODBYE, or a socket error. */
  error: Error | undefined = undefined;
  /** Largest result the scheduler accepts (from WELCOME). */
  maxResultBytes = DEFAULT_MAX_PAYLOAD - RESULT_OVERHEAD;
  /** Draining: the scheduler has answered the request sent after our GOODBYE, so no ASSIGN is in flight. */
  barrierPassed = false;
  ending = false;
  /** Connect + handshake deadline; cleared by WELCOME or close. */
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly socket: Socket,
    /** Handler of each advertised kind (emulation applied). */
    readonly handlers: ReadonlyMap<string, Handler>,
    readonly capabilities: string[],
  ) {}
}

/**
 * One attempt of a job: the handler's {@link JobContext}. Kept small: the
 * AbortController is made only if the handler reads `signal`.
 */
class Job implements JobContext {
  #controller: AbortController | undefined = undefined;
  /** Set once the attempt has been told to stop (ABANDON, link loss, shutdown). */
  abortReason: string | undefined = undefined;
  /** An answer was sent, or will never be (the link is gone). */
  answered = false;
  /** In `session.jobs`. */
  tracked = false;
  /** Another attempt of the same job in `session.jobs`. */
  next: Job | undefined = undefined;
  /** Valid after an ABANDON: gives the slot back if the handler outlives the abandon grace. */
  graceTimer: NodeJS.Timeout | undefined = undefined;
  /** The handler outlived the abandon grace and has not settled yet (counted in `Worker.stuck`). */
  stuck = false;
  #lastPct = -1;
  #lastMessage = '';

  constructor(
    readonly session: Session,
    readonly jobId: number,
    readonly attempt: number,
    readonly kind: string,
  ) {}

  /** Largest result the scheduler accepts on this connection (from WELCOME). */
  get maxResultBytes(): number {
    return this.session.maxResultBytes;
  }

  get signal(): AbortSignal {
    let c = this.#controller;
    if (c === undefined) {
      c = this.#controller = new AbortController();
      if (this.abortReason !== undefined) c.abort(this.#reasonError());
    }
    return c.signal;
  }

  /** Aborts the signal (once). */
  abort(reason: string): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.#controller?.abort(this.#reasonError());
  }

  #reasonError(): DOMException {
    return new DOMException(`job ${this.jobId} attempt ${this.attempt} abandoned: ${this.abortReason}`, 'AbortError');
  }

  progress(pct: number, message = ''): void {
    const s = this.session;
    if (this.answered || this.abortReason !== undefined || !s.open || s.conn === undefined) return;
    const p = Number.isFinite(pct) ? Math.min(100, Math.max(0, Math.round(pct))) : 0;
    const text = typeof message === 'string' ? message.slice(0, MAX_MESSAGE_CHARS) : String(message);
    if (p === this.#lastPct && text === this.#lastMessage) return; // nothing new to tell
    this.#lastPct = p;
    this.#lastMessage = text;
    s.conn.send({ type: 'PROGRESS', jobId: this.jobId, attempt: this.attempt, pct: p, message: text });
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function errorMessage(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS)}...` : text;
}

function describe(err: Error | undefined): string {
  if (err === undefined) return 'connection closed';
  if (err instanceof TaskwireError) return `${err.message} (${err.code})`;
  return errnoCode(err) ?? err.message;
}

/**
 * A taskwire worker, embeddable. Runs the built-in kinds plus any added with
 * {@link handle}; at most `concurrency` jobs at once. Every ASSIGN gets
 * exactly one answer (RESULT or FAIL). When the link drops, running handlers
 * are aborted (the scheduler re-queues their jobs) and the worker reconnects
 * with exponential backoff and jitter until {@link drain} or {@link destroy}.
 *
 * Link failures surface as `disconnected` and `reconnecting` events (and log
 * lines), and are retried. A scheduler that refuses the HELLO with
 * `AUTH_FAILED` or `BAD_VERSION` will not change its mind: the worker stops,
 * and `start()` rejects with that error (or `error` is emitted, when it came
 * on a later reconnect). A handler that ignores its abort signal after an
 * ABANDON has its slot given back after `abandonGraceMs` ({@link stuck}).
 *
 * @example
 * const worker = new Worker({ server: '127.0.0.1:9001', concurrency: 8 });
 * worker.handle('resize', async (args, ctx) => {
 *   ctx.progress(50, 'decoded');
 *   return await resize(args, { signal: ctx.signal });
 * });
 * worker.on('ready', ({ sessionId }) => console.log('connected as', sessionId));
 * await worker.start();
 * process.on('SIGTERM', () => void worker.drain());
 */
export class Worker extends EventEmitter<WorkerEvents> {
  /** Name advertised to the scheduler. */
  readonly name: string;
  /** Scheduler address, `host:port`. */
  readonly address: string;
  readonly concurrency: number;
  /** Jobs accepted ahead of time beyond `concurrency` (see {@link WorkerOptions.prefetch}). */
  readonly prefetch: number;
  readonly #host: string;
  readonly #port: number;
  /** Sent in HELLO for listings (not the scheduler's host: that is `#host`). */
  readonly #pool: string | undefined;
  readonly #machine: string;
  readonly #registry: HandlerRegistry = createBuiltinRegistry();
  readonly #capabilities: readonly string[] | undefined;
  readonly #token: string | undefined;
  readonly #tls: TlsClientOptions | undefined;
  readonly #reconnectBaseMs: number;
  readonly #reconnectMaxMs: number;
  readonly #connectTimeoutMs: number;
  readonly #drainGraceMs: number;
  readonly #abandonGraceMs: number;
  readonly #processingMs: number;
  readonly #failRate: number;
  readonly #random: () => number;
  readonly #log: ((line: string) => void) | undefined;
  readonly #logLevel: number;
  #state: State = 'idle';
  /** The current connection attempt, if any. */
  #session: Session | undefined;
  /** Consecutive failed connections; reset by WELCOME. */
  #attempts = 0;
  /** Connections the scheduler has accepted so far. */
  #connections = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #started: Promise<void> | undefined;
  #resolveStarted: (() => void) | undefined;
  #rejectStarted: ((err: Error) => void) | undefined;
  /** Handlers that outlived the abandon grace and have not settled yet, across connections. */
  #stuck = 0;
  #stopped: Promise<void> | undefined;
  #resolveStopped: (() => void) | undefined;

  /** Throws `INVALID_ARGUMENT` for a bad address or option. */
  constructor(opts: WorkerOptions) {
    super();
    let host: string;
    let port: number;
    try {
      ({ host, port } = typeof opts.server === 'string' ? parseAddress(opts.server) : opts.server);
    } catch (err) {
      throw new TaskwireError('INVALID_ARGUMENT', err instanceof Error ? err.message : String(err), { cause: err });
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TaskwireError('INVALID_ARGUMENT', `bad port ${port}`);
    this.#host = host;
    this.#port = port;
    this.address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    this.name = opts.name ?? `${hostname()}-${process.pid}`;
    this.#pool = opts.pool;
    this.#machine = opts.host ?? hostname();
    this.concurrency = opts.concurrency ?? 4;
    checkInt('concurrency', this.concurrency, 1, U32_MAX);
    this.prefetch = opts.prefetch ?? Math.max(128, this.concurrency);
    checkInt('prefetch', this.prefetch, 0, 1024);
    this.#capabilities = opts.capabilities === undefined ? undefined : [...opts.capabilities];
    this.#token = opts.token;
    this.#tls = opts.tls === true ? {} : opts.tls === false ? undefined : opts.tls;
    this.#reconnectBaseMs = opts.reconnectBaseMs ?? 100;
    this.#reconnectMaxMs = opts.reconnectMaxMs ?? 5_000;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    this.#drainGraceMs = opts.drainGraceMs ?? 30_000;
    this.#abandonGraceMs = opts.abandonGraceMs ?? 5_000;
    this.#processingMs = opts.processingMs ?? 0;
    checkInt('reconnectBaseMs', this.#reconnectBaseMs, 1);
    checkInt('reconnectMaxMs', this.#reconnectMaxMs, 1);
    checkInt('connectTimeoutMs', this.#connectTimeoutMs, 1);
    checkInt('drainGraceMs', this.#drainGraceMs, 0);
    checkInt('abandonGraceMs', this.#abandonGraceMs, 0);
    checkInt('processingMs', this.#processingMs, 0);
    this.#failRate = opts.failRate ?? 0;
    if (!(this.#failRate >= 0 && this.#failRate <= 1)) {
      throw new TaskwireError('INVALID_ARGUMENT', `failRate must be from 0 to 1, got ${this.#failRate}`);
    }
    this.#random = opts.random ?? Math.random;
    this.#log = opts.log;
    this.#logLevel = opts.log === undefined ? 0 : LEVELS[opts.logLevel ?? 'info'];
  }

  /**
   * Adds (or replaces) the handler of `kind`. A kind added after a
   * connection is made is advertised from the next connection on.
   * Throws `INVALID_ARGUMENT` for an empty or over-long kind.
   */
  handle(kind: string, handler: Handler): this {
    this.#registry.register(kind, handler);
    return this;
  }

  /** True while a connection is open and accepted by the scheduler. */
  get connected(): boolean {
    return this.#session?.welcome !== undefined && this.#session.open;
  }

  /** Jobs whose handler is still running on the current connection (synchronous handlers never count). */
  get running(): number {
    return this.#session?.running ?? 0;
  }

  /**
   * Handlers that ignored their abort signal for longer than `abandonGraceMs`
   * after an ABANDON, and have not settled since. Their slots were given back,
   * but they still hold whatever they hold: a leak to look into. Reported to
   * the scheduler in every HEARTBEAT.
   */
  get stuck(): number {
    return this.#stuck;
  }

  /**
   * Connects, and keeps reconnecting until {@link drain} or {@link destroy}.
   * Resolves at the first `ready` (WELCOME), or when the worker is stopped
   * before that; never rejects for link failures (they are retried).
   * Rejects with `INVALID_ARGUMENT` when a configured capability has no
   * handler, and with `AUTH_FAILED` or `BAD_VERSION` when the scheduler
   * refuses the HELLO (final: the worker stops). Idempotent.
   */
  start(): Promise<void> {
    if (this.#started !== undefined) return this.#started;
    if (this.#state !== 'idle') return (this.#started = Promise.resolve());
    try {
      this.#handlersNow();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#state = 'running';
    this.#started = new Promise((resolve, reject) => {
      this.#resolveStarted = resolve;
      this.#rejectStarted = reject;
    });
    this.#connect();
    return this.#started;
  }

  /**
   * Graceful stop: sends GOODBYE (the scheduler assigns nothing more), lets
   * running jobs finish and answers them, then ends the connection. After
   * `graceMs` (default `drainGraceMs`), handlers still running are aborted
   * and failed retryably ("abandoned: worker shutting down"). No reconnect
   * afterwards. Resolves once the connection has closed. Idempotent.
   */
  drain(graceMs: number = this.#drainGraceMs): Promise<void> {
    if (this.#stopped !== undefined) return this.#stopped;
    this.#stopped = new Promise((resolve) => {
      this.#resolveStopped = resolve;
    });
    this.#state = 'draining';
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const s = this.#session;
    if (s === undefined) {
      this.#finish();
    } else if (s.welcome === undefined || s.conn === undefined || !s.open) {
      // Nothing runs before WELCOME; a link that is already going away finishes by itself.
      if (s.welcome === undefined) s.socket.destroy();
    } else {
      this.#logAt('info', `draining: ${s.running} job(s) running, grace ${graceMs} ms`);
      s.conn.send({ type: 'GOODBYE', reason: 'worker draining' });
      // Prefetched jobs never started here: give them back now (queued again elsewhere, uncharged).
      for (let i = s.queueHead; i < s.queue.length; i++) {
        const q = s.queue[i];
        if (q === undefined) continue;
        s.conn.send({ type: 'FAIL', jobId: q.jobId, attempt: q.attempt, permanent: false, returned: true, message: 'returned: worker draining' });
      }
      s.queue = [];
      s.queueHead = 0;
      s.queued = 0;
      // Its answer comes after every ASSIGN the scheduler sent before it saw the GOODBYE.
      s.conn.send({ type: 'STATUS', requestId: DRAIN_BARRIER_ID, jobId: 0 });
      this.#graceTimer = setTimeout(() => this.#graceExpired(s), graceMs);
    }
    return this.#stopped;
  }

  /**
   * Hard stop: aborts running handlers (the scheduler re-queues their jobs),
   * closes the connection without answering, never reconnects. Resolves once
   * the socket has closed. Idempotent; also cuts a drain short.
   */
  destroy(): Promise<void> {
    this.#stopped ??= new Promise((resolve) => {
      this.#resolveStopped = resolve;
    });
    if (this.#state === 'stopped') return this.#stopped;
    this.#state = 'stopped';
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    const s = this.#session;
    if (s === undefined) {
      this.#finish();
    } else {
      this.#abortAll(s, 'worker destroyed');
      if (s.conn !== undefined) s.conn.destroy();
      else s.socket.destroy();
    }
    return this.#stopped;
  }

  // -------------------------------------------------------------------------
  // Connection lifecycle

  /** Handlers of the kinds to advertise now. Throws INVALID_ARGUMENT. */
  #handlersNow(): Map<string, Handler> {
    const kinds = this.#capabilities ?? this.#registry.kinds();
    if (kinds.length === 0) throw new TaskwireError('INVALID_ARGUMENT', 'a worker needs at least one capability');
    const emulation = { processingMs: this.#processingMs, failRate: this.#failRate, random: this.#random };
    const handlers = new Map<string, Handler>();
    for (const kind of kinds) {
      const handler = this.#registry.get(kind);
      if (handler === undefined) throw new TaskwireError('INVALID_ARGUMENT', `capability "${kind}" has no handler`);
      handlers.set(kind, emulate(handler, emulation));
    }
    return handlers;
  }

  #connect(): void {
    const handlers = this.#handlersNow();
    const tls = this.#tls;
    // Plain TCP reads go straight to the connection (no stream 'data' events, issue 9).
    let reads: DirectReads | undefined;
    let socket: Socket;
    if (tls === undefined) {
      reads = new DirectReads();
      socket = netConnect({ host: this.#host, port: this.#port, onread: reads.onread });
    } else {
      socket = connectTls(this.#host, this.#port, tls);
    }
    const s = new Session(socket, handlers, [...handlers.keys()]);
    this.#session = s;
    const timeoutMs = this.#connectTimeoutMs;
    s.timer = setTimeout(() => {
      const err = new TaskwireError('TIMEOUT', `no WELCOME from ${this.address} within ${timeoutMs} ms`);
      s.error ??= err;
      if (s.conn !== undefined) s.conn.destroy(err);
      else socket.destroy(err);
    }, timeoutMs);
    const onEarlyError = (err: Error): void => {
      s.error ??= tls === undefined ? err : explainTlsError(this.address, err);
    };
    const onEarlyClose = (): void => this.#onClose(s, undefined);
    socket.on('error', onEarlyError);
    socket.once('close', onEarlyClose);
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      socket.off('error', onEarlyError);
      socket.off('close', onEarlyClose);
      const conn = new Connection(
        socket,
        {
          onMessage: (msg) => this.#onMessage(s, msg),
          onClose: (err) => this.#onClose(s, err),
        },
        { reads },
      );
      s.conn = conn;
      const hello: Message = {
        type: 'HELLO',
        version: PROTOCOL_VERSION,
        role: 'worker',
        name: this.name,
        capabilities: s.capabilities,
        concurrency: this.concurrency,
      };
      if (this.prefetch > 0) hello.prefetch = this.prefetch;
      if (this.#pool !== undefined) hello.pool = this.#pool;
      hello.host = this.#machine;
      if (this.#token !== undefined) hello.token = this.#token;
      conn.send(hello);
    });
  }

  #onWelcome(s: Session, msg: WelcomeMessage): void {
    const conn = s.conn!;
    if (s.welcome !== undefined) {
      conn.fail('BAD_HANDSHAKE', 'WELCOME after the handshake');
      return;
    }
    clearTimeout(s.timer);
    s.timer = undefined;
    s.welcome = msg;
    if (msg.maxPayloadBytes > 0) {
      // Both ways: our results may be that large, and so may the ASSIGNs it sends (PROTOCOL.md §4.1).
      s.maxResultBytes = msg.maxPayloadBytes - RESULT_OVERHEAD;
      conn.setMaxPayloadBytes(msg.maxPayloadBytes);
    }
    conn.startHeartbeat(msg.heartbeatMs, () => ({ running: s.running, stuck: this.#stuck }));
    // The first connection is announced by whoever started us (the CLI prints one line); log reconnections.
    const level = this.#connections++ === 0 ? 'debug' : 'info';
    this.#attempts = 0; // DESIGN: reset on WELCOME, not on TCP connect
    this.#logAt(level, `connected to ${this.address} as ${msg.sessionId}: ${s.capabilities.join(',')} concurrency ${this.concurrency}`);
    this.#settleStarted();
    this.emit('ready', {
      sessionId: msg.sessionId,
      serverVersion: msg.serverVersion,
      heartbeatMs: msg.heartbeatMs,
      capabilities: s.capabilities,
    });
  }

  #onClose(s: Session, err: Error | undefined): void {
    clearTimeout(s.timer);
    s.timer = undefined;
    if (this.#session === s) this.#session = undefined;
    const wasReady = s.welcome !== undefined;
    const reason = s.error ?? err;
    if (wasReady && s.running > 0) this.#logAt('info', `aborting ${s.running} running job(s): link to the scheduler lost`);
    this.#abortAll(s, 'lost');
    if (wasReady) {
      if (this.#state === 'running') this.#logAt('error', `disconnected from ${this.address}: ${describe(reason)}`);
      this.emit('disconnected', reason);
    }
    if (this.#state === 'running' && reason instanceof TaskwireError && FINAL_REFUSALS.has(reason.code)) {
      // The scheduler will not change its mind: retrying would only hammer it for ever.
      this.#stopped ??= Promise.resolve();
      this.#finish(reason);
      return;
    }
    if (this.#state !== 'running') {
      this.#finish();
      return;
    }
    const attempt = ++this.#attempts;
    const delayMs = backoffDelay(attempt - 1, { baseMs: this.#reconnectBaseMs, maxMs: this.#reconnectMaxMs, random: this.#random });
    this.#logAt('info', `reconnecting to ${this.address} in ${delayMs} ms (attempt ${attempt})${wasReady ? '' : `: ${describe(reason)}`}`);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state === 'running') this.#connect();
    }, delayMs);
    this.emit('reconnecting', { attempt, delayMs, error: reason });
  }

  /** Resolves (or, given `err`, rejects) a pending start(). True if it was pending. */
  #settleStarted(err?: Error): boolean {
    const resolve = this.#resolveStarted;
    const reject = this.#rejectStarted;
    this.#resolveStarted = this.#rejectStarted = undefined;
    if (resolve === undefined || reject === undefined) return false;
    if (err === undefined) resolve();
    else reject(err);
    return true;
  }

  /** The worker has stopped for good; `fatal` is a final refusal, reported as start()'s rejection or `error`. */
  #finish(fatal?: TaskwireError): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    this.#state = 'stopped';
    const wasStarting = this.#settleStarted(fatal);
    // Reported once: by start()'s rejection while it is pending, else as 'error'.
    if (fatal !== undefined && !wasStarting) this.emit('error', fatal);
    const stopped = this.#resolveStopped;
    this.#resolveStopped = undefined;
    stopped?.();
    if (stopped !== undefined || fatal !== undefined) this.emit('close');
  }

  /** Aborts every running handler of `s`; their outcomes will not be sent. */
  #abortAll(s: Session, reason: string): void {
    s.open = false;
    if (s.running === 0) return;
    const jobs = [...s.jobs.values()];
    s.jobs.clear();
    s.running = 0;
    for (const head of jobs) {
      for (let j: Job | undefined = head; j !== undefined; j = j.next) {
        j.tracked = false;
        j.answered = true;
        clearTimeout(j.graceTimer);
        j.abort(reason);
      }
    }
  }

  // -------------------------------------------------------------------------
  // Inbound

  #onMessage(s: Session, msg: Message): void {
    switch (msg.type) {
      case 'ASSIGN':
        this.#onAssign(s, msg);
        return;
      case 'ABANDON':
        this.#onAbandon(s, msg);
        return;
      case 'HEARTBEAT':
        return; // any inbound frame already counts as a sign of life
      case 'WELCOME':
        this.#onWelcome(s, msg);
        return;
      case 'GOODBYE':
        // The scheduler is shutting down and closes the link; what runs can no longer be delivered.
        s.error ??= new TaskwireError('SHUTTING_DOWN', `scheduler said goodbye: ${msg.reason}`);
        this.#abortAll(s, 'scheduler shutting down');
        return;
      case 'ERROR':
        if (msg.requestId === 0) {
          // Connection-level: the scheduler closes the link after it (e.g. AUTH_FAILED on HELLO).
          s.error ??= new TaskwireError(msg.code, msg.message);
          // A final refusal is reported once, by start()'s rejection or the 'error' event.
          if (!FINAL_REFUSALS.has(msg.code)) this.#logAt('error', `scheduler ${this.address} refused the connection: ${msg.message} (${msg.code})`);
        } else if (msg.requestId === DRAIN_BARRIER_ID) {
          this.#onBarrier(s);
        }
        return;
      case 'REPLY':
        if (msg.requestId === DRAIN_BARRIER_ID) this.#onBarrier(s);
        return;
      case 'HELLO':
      case 'SUBMIT':
      case 'ACK':
      case 'EVENT':
      case 'WATCH':
      case 'RESULT':
      case 'FAIL':
      case 'PROGRESS':
      case 'STATUS':
      case 'CANCEL':
      case 'LIST':
      case 'WORKERS':
      case 'STATS':
      case 'COMPACT':
      case 'ADMIN':
      case 'FOLLOW':
      case 'NOTICE':
        s.conn!.fail('BAD_HANDSHAKE', `a worker does not accept ${msg.type}`);
        return;
      default:
        assertNever(msg);
    }
  }

  /**
   * The hot path. A handler that returns a plain value is answered in this
   * same turn: no promise, no AbortController, no map entry, no timer.
   */
  #onAssign(s: Session, msg: AssignMessage): void {
    if (s.running >= this.concurrency || s.queued > 0) {
      if (this.#state === 'draining') {
        // Not started, and we are leaving: give it back (the scheduler queues it again, uncharged).
        s.conn!.send({ type: 'FAIL', jobId: msg.jobId, attempt: msg.attempt, permanent: false, returned: true, message: 'returned: worker draining' });
        return;
      }
      // Prefetched: kept as decoded. Its args are a view of a socket chunk, which Node allocates per
      // read and nothing reuses; the prefetch window bounds the chunks held this way.
      s.queue.push(msg);
      s.queued++;
      return;
    }
    this.#run(s, msg);
  }

  /** Starts prefetched jobs while slots are free (after an answer freed one). */
  #startQueued(s: Session): void {
    while (s.queueHead < s.queue.length && s.running < this.concurrency && s.open) {
      const msg = s.queue[s.queueHead];
      s.queue[s.queueHead++] = undefined;
      if (msg === undefined) continue; // abandoned while it waited
      s.queued--;
      this.#run(s, msg);
    }
    if (s.queueHead === s.queue.length) {
      s.queue.length = 0;
      s.queueHead = 0;
    }
  }

  #run(s: Session, msg: AssignMessage): void {
    const handler = s.handlers.get(msg.kind);
    if (handler === undefined) {
      // The scheduler routes only advertised kinds; answer anyway, so the slot is freed.
      s.conn!.send({ type: 'FAIL', jobId: msg.jobId, attempt: msg.attempt, permanent: true, message: `no handler for kind "${msg.kind}"` });
      return;
    }
    const job = new Job(s, msg.jobId, msg.attempt, msg.kind);
    let value: unknown;
    try {
      value = handler(msg.args, job);
    } catch (err) {
      this.#failed(job, err);
      return;
    }
    if (!isThenable(value)) {
      this.#succeeded(job, value);
      return;
    }
    this.#track(job);
    Promise.resolve(value).then(
      (v) => this.#succeeded(job, v),
      (err: unknown) => this.#failed(job, err),
    );
  }

  #onAbandon(s: Session, msg: AbandonMessage): void {
    // A prefetched job not started yet: drop it and answer at once (PROTOCOL.md §5.4).
    for (let i = s.queueHead; i < s.queue.length; i++) {
      const q = s.queue[i];
      if (q !== undefined && q.jobId === msg.jobId && q.attempt === msg.attempt) {
        s.queue[i] = undefined;
        s.queued--;
        s.conn!.send({ type: 'FAIL', jobId: msg.jobId, attempt: msg.attempt, permanent: false, message: `abandoned: ${msg.reason}` });
        return;
      }
    }
    // Not found: already answered (a synchronous handler, or the answer crossed the ABANDON).
    for (let j = s.jobs.get(msg.jobId); j !== undefined; j = j.next) {
      if (j.attempt === msg.attempt) {
        if (j.abortReason !== undefined) return; // a second ABANDON: the grace already runs
        this.#logAt('debug', `job ${msg.jobId} attempt ${msg.attempt} abandoned: ${msg.reason}`);
        j.abort(msg.reason);
        const job = j;
        j.graceTimer = setTimeout(() => this.#abandonGraceExpired(job), this.#abandonGraceMs);
        j.graceTimer.unref();
        return;
      }
    }
  }

  /**
   * The handler ignored its aborted signal for the whole grace: give the slot
   * back (the scheduler frees it only when we answer the attempt it holds),
   * and remember the handler as stuck until it settles, if ever.
   */
  #abandonGraceExpired(job: Job): void {
    job.graceTimer = undefined;
    if (!job.tracked || job.answered) return;
    this.#untrack(job);
    job.answered = true;
    job.stuck = true;
    this.#stuck++;
    const s = job.session;
    this.#logAt(
      'error',
      `job ${job.jobId} (${job.kind}) attempt ${job.attempt}: handler ignored its abort signal for ${this.#abandonGraceMs} ms; ` +
        `slot given back, ${this.#stuck} handler(s) stuck`,
    );
    if (s.open) this.#sendFail(job, false, `abandoned: handler ignored its abort signal for ${this.#abandonGraceMs} ms`);
    this.emit('stuck', { jobId: job.jobId, attempt: job.attempt, kind: job.kind, stuck: this.#stuck });
    if (s.queued > 0) this.#startQueued(s);
    if (this.#state === 'draining') this.#maybeEndDrain(s);
  }

  /** A handler settled: if it had been given up as stuck, it is not any more. */
  #unstick(job: Job): void {
    job.stuck = false;
    this.#stuck--;
    this.#logAt('info', `job ${job.jobId} (${job.kind}) attempt ${job.attempt}: stuck handler settled at last; ${this.#stuck} still stuck`);
  }

  #onBarrier(s: Session): void {
    s.barrierPassed = true;
    this.#maybeEndDrain(s);
  }

  // -------------------------------------------------------------------------
  // Answers

  #succeeded(job: Job, value: unknown): void {
    if (job.tracked) this.#untrack(job);
    if (job.stuck) this.#unstick(job);
    if (job.answered) return;
    job.answered = true;
    const s = job.session;
    if (s.open) {
      if (job.abortReason !== undefined) {
        this.#sendFail(job, false, `abandoned: ${job.abortReason}`);
      } else {
        // A string result (sha256's hex, say) is written into the frame as UTF-8, no Buffer between.
        let result: Buffer | string | undefined;
        try {
          result = typeof value === 'string' ? value : encodeResult(value);
        } catch (err) {
          this.#sendFail(job, true, errorMessage(err));
        }
        if (result !== undefined) {
          const bytes = typeof result === 'string' ? utf8Bytes(result) : result.length;
          if (bytes > s.maxResultBytes) {
            this.#sendFail(job, true, `result of ${bytes} bytes exceeds the scheduler's maximum payload`);
          } else {
            s.conn!.sendResult(job.jobId, job.attempt, result, bytes);
          }
        }
      }
    }
    if (s.queued > 0) this.#startQueued(s);
    if (this.#state === 'draining') this.#maybeEndDrain(s);
  }

  #failed(job: Job, err: unknown): void {
    if (job.tracked) this.#untrack(job);
    if (job.stuck) this.#unstick(job);
    if (job.answered) return;
    job.answered = true;
    const s = job.session;
    if (s.open) {
      if (job.abortReason !== undefined) {
        this.#sendFail(job, false, `abandoned: ${job.abortReason}`);
      } else {
        this.#sendFail(job, err instanceof PermanentError, errorMessage(err));
      }
    }
    if (s.queued > 0) this.#startQueued(s);
    if (this.#state === 'draining') this.#maybeEndDrain(s);
  }

  #sendFail(job: Job, permanent: boolean, message: string): void {
    if (this.#logLevel >= LEVELS.debug) {
      this.#logAt('debug', `job ${job.jobId} (${job.kind}) attempt ${job.attempt} failed${permanent ? ' permanently' : ''}: ${message}`);
    }
    job.session.conn!.send({ type: 'FAIL', jobId: job.jobId, attempt: job.attempt, permanent, message });
  }

  #track(job: Job): void {
    const s = job.session;
    job.tracked = true;
    s.running++;
    const head = s.jobs.get(job.jobId);
    if (head !== undefined) job.next = head;
    s.jobs.set(job.jobId, job);
  }

  #untrack(job: Job): void {
    const s = job.session;
    job.tracked = false;
    if (job.graceTimer !== undefined) {
      clearTimeout(job.graceTimer);
      job.graceTimer = undefined;
    }
    s.running--;
    const head = s.jobs.get(job.jobId);
    if (head === job) {
      if (job.next === undefined) s.jobs.delete(job.jobId);
      else s.jobs.set(job.jobId, job.next);
    } else {
      for (let j = head; j !== undefined; j = j.next) {
        if (j.next === job) {
          j.next = job.next;
          break;
        }
      }
    }
    job.next = undefined;
  }

  // -------------------------------------------------------------------------
  // Draining

  #maybeEndDrain(s: Session): void {
    if (this.#state !== 'draining' || this.#session !== s || s.ending) return;
    if (!s.barrierPassed || s.running > 0) return;
    s.ending = true;
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    this.#logAt('info', 'drained: every job answered, closing');
    s.conn!.end();
  }

  #graceExpired(s: Session): void {
    this.#graceTimer = undefined;
    if (this.#state !== 'draining' || this.#session !== s || s.ending) return;
    if (s.running > 0) {
      this.#logAt('info', `drain grace over: abandoning ${s.running} job(s)`);
      const jobs = [...s.jobs.values()];
      s.jobs.clear();
      s.running = 0;
      for (const head of jobs) {
        for (let j: Job | undefined = head; j !== undefined; j = j.next) {
          j.tracked = false;
          j.answered = true;
          clearTimeout(j.graceTimer);
          j.abort('worker shutting down');
          if (s.open) this.#sendFail(j, false, 'abandoned: worker shutting down');
        }
      }
    }
    s.ending = true;
    s.conn!.end();
  }

  #logAt(level: Exclude<WorkerLogLevel, 'silent'>, line: string): void {
    if (LEVELS[level] > this.#logLevel || this.#log === undefined) return;
    this.#log(`${new Date().toISOString()} ${level.padEnd(5)} worker ${this.name}: ${line}`);
  }
}

function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TaskwireError('INVALID_ARGUMENT', `${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/** UTF-8 byte length of `s`; short ASCII (hex digests, numbers) without a call into C++. */
function utf8Bytes(s: string): number {
  if (s.length > 128) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

// ---------------------------------------------------------------------------
// CLI: loaded only when this file is the program, so the library never imports it.

if (isMain(import.meta.url)) {
  void import('./lib/worker-cli.js').then(({ main }) => main(process.argv.slice(2)));
}
