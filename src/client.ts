#!/usr/bin/env node
/**
 * The taskwire client library: the {@link Client} class (submit jobs, wait
 * for them, admin requests, pipelined bulk submission over one connection).
 * Executed directly, this file runs the `taskwire` CLI (src/lib/client-cli.ts).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { isMain, parseAddress } from './lib/cli.js';
import { Connection, DirectReads } from './lib/connection.js';
import { connectTls, explainTlsError, type TlsClientOptions } from './lib/tls.js';
import { encodeArgs } from './lib/jobs.js';
import { ClosedError, errnoCode, JobCancelledError, JobFailedError, TaskwireError, toError } from './lib/errors.js';
import { IdMap } from './lib/id-map.js';
import {
  assertNever,
  Command,
  DEFAULT_RETRIES,
  encode,
  hotFrameBytes,
  HEADER_BYTES,
  MAX_STR8_BYTES,
  PROTOCOL_VERSION,
  U32_MAX,
  type AckMessage,
  type AdminRequest,
  type PauseResult,
  type PurgeResult,
  type RetryManyResult,
  type ErrorMessage,
  type EventMessage,
  type JobInfo,
  type JobState,
  type ListPage,
  type NoticeMessage,
  type JournalStats,
  type Message,
  type ReplyMessage,
  type StatsInfo,
  type SubmitMessage,
  type WelcomeMessage,
  type WorkerInfo,
} from './lib/protocol.js';

export type { AdminRequest, JobInfo, JobState, JournalStats, ListPage, PauseResult, PurgeResult, RetryManyResult, StatsInfo, WorkerInfo } from './lib/protocol.js';

// ---------------------------------------------------------------------------
// Public types

/** A scheduler address: `"HOST:PORT"` (or `"[v6]:PORT"`, or a bare port) or its parts. */
export type Address = string | { host: string; port: number };

/** Options of {@link Client.connect}. */
export interface ConnectOptions {
  /** Shown in the scheduler's logs. Default `taskwire-client`. */
  name?: string;
  /** Shared secret, when the scheduler requires one. */
  token?: string;
  /** Time allowed for TCP connect plus handshake. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Speak TLS (issue 11): `true` verifies the scheduler against the system CAs; or give a CA, a client certificate... */
  tls?: boolean | TlsClientOptions;
  /**
   * First request id to use (default 1). Only useful to test id wrap-around.
   * @internal
   */
  firstRequestId?: number;
}

/**
 * Service tier: `paid` maps to priority 10, `free` to priority 0. An explicit
 * `priority` always wins over the tier (DESIGN.md "Job semantics": paid
 * before free is just priority).
 */
export type Tier = 'paid' | 'free';

/** Priority a {@link Tier} maps to when no explicit priority is given. */
export const TIER_PRIORITY: Readonly<Record<Tier, number>> = { paid: 10, free: 0 };

/** Called with progress events of a job (0–100 and the handler's message). */
export type ProgressListener = (pct: number, message: string) => void;

/** Per-job options of {@link Client.submit}, {@link Client.enqueue} and {@link Client.submitMany}. */
export interface SubmitOptions {
  /** 0–255, higher runs first. Default: from `tier`, else 0. */
  priority?: number;
  /** `paid` = priority 10, `free` = 0; ignored when `priority` is given. */
  tier?: Tier;
  /** Run timeout per attempt, ms. Default: the scheduler's (10 s). */
  timeoutMs?: number;
  /** Retries after the first attempt, 0–65534. Default: the scheduler's (3). */
  retries?: number;
  /** Estimated run time, ms; shorter jobs run first among equal priority. */
  estMs?: number;
  /** Do not start the job before this many ms from now. */
  delayMs?: number;
  /** Idempotency key: a live job with the same key is returned instead of a new one. */
  key?: string;
  /**
   * Progress events of the job (only when waiting for it). If the listener
   * throws, the call rejects with that error; the job itself goes on.
   */
  onProgress?: ProgressListener;
  /**
   * {@link Client.submit}: called with the job's id as soon as the scheduler
   * has accepted (ACKed) it, long before the result (the CLI prints ids it
   * may need after a lost connection).
   */
  onAck?: (jobId: number) => void;
}

/** One job of {@link Client.submitMany}. */
export interface SubmitItem {
  kind: string;
  /** Buffer as is, string as UTF-8, anything else as JSON. */
  args: unknown;
  opts?: SubmitOptions;
}

/** Options of {@link Client.submitMany} and {@link Client.enqueueMany}. */
export interface SubmitManyOptions {
  /** Most jobs in flight (submitted, not yet settled) at once. Default 10,000. */
  window?: number;
  /**
   * Called after every settled job with the count so far and, once the input
   * has been read to its end (at once for arrays), the total. A throw stops
   * the submission and rejects the call with it.
   */
  onSettled?: (done: number, total: number | undefined) => void;
}

/** Answer of {@link Client.enqueue}. */
export interface EnqueueResult {
  /** The job's id. */
  id: number;
  /** True when `key` matched a live job, and `id` is that job. */
  existing: boolean;
}

/** Options of {@link Client.wait}. */
export interface WaitOptions {
  /** Give up waiting after this long (rejects with code TIMEOUT; the job goes on). */
  timeoutMs?: number;
  onProgress?: ProgressListener;
}

/** Filter of {@link Client.list}. */
export interface ListOptions {
  state?: JobState;
  kind?: string;
  /** Most jobs returned; default (0): the scheduler's, 100; at most 1,000 a page. */
  limit?: number;
  /** Cursor: the `next` of the previous page. */
  afterId?: number;
  /** Default 'newest' (highest id first). */
  order?: 'newest' | 'oldest';
}

/** Options of {@link Client.close}. */
export interface CloseOptions {
  /** Destroy the connection if calls are still pending after this long. Default: wait. */
  timeoutMs?: number;
}

/** The outcome of a job that finished: its id, the attempt that succeeded and the result bytes. */
export class JobResult {
  constructor(
    readonly id: number,
    readonly attempt: number,
    readonly data: Buffer,
  ) {}

  /** The result as UTF-8 text (sha256: the hex digest). */
  text(): string {
    return this.data.toString('utf8');
  }

  /** The result parsed as JSON (arithmetic kinds: a number). Throws on invalid JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.data.toString('utf8')) as T;
  }
}

/** The next request id after `id`: u32, wraps from 2^32-1 to 1, never 0 (contract: 0 means the connection). */
/** A STATUS/CANCEL reply's result travels as bytes beside the JSON (PROTOCOL.md §5.5). */
function withResult(body: unknown, data: Buffer): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const info = body as JobInfo;
  const bytes = Buffer.from(data); // a copy: the frame is a view of the socket chunk
  info.resultData = bytes;
  info.result = bytes.toString('utf8');
  return info;
}

export function nextRequestId(id: number): number {
  return id >= U32_MAX || id < 1 ? 1 : id + 1;
}

/** `host:port`, with brackets for IPv6. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---------------------------------------------------------------------------
// Pending requests

/** What a pending record is waiting for. */
const OP_REPLY = 0; // admin request: REPLY or ERROR
const OP_ACK = 1; // enqueue: ACK or ERROR
const OP_JOB = 2; // submit with wait, or watch: ACK then the job's final EVENT
type Op = typeof OP_REPLY | typeof OP_ACK | typeof OP_JOB;

/**
 * One call waiting for an answer. Registered under its request id until the
 * ACK/REPLY/ERROR; OP_JOB records then move to the job map under the job id
 * until the final EVENT. Either `batch` (bulk submission, no promise per job)
 * or the callbacks are set. One fixed shape, so the hot path stays monomorphic.
 */
/** A SUBMIT payload's bytes besides its arguments, at most: 22 fixed (the str8 lengths included), kind and key up to 255 each. */
const SUBMIT_MAX_FIXED_BYTES = 22 + 2 * MAX_STR8_BYTES;

class Pending {
  /** Valid once ACKed (OP_JOB). */
  jobId = 0;
  /** OP_JOB: told the job id at the ACK ({@link SubmitOptions.onAck}). */
  onAck: ((jobId: number) => void) | undefined = undefined;
  /** Another waiter on the same job (the scheduler sends one EVENT per connection). */
  next: Pending | undefined = undefined;
  /** Local wait deadline (wait({ timeoutMs })). */
  timer: NodeJS.Timeout | undefined = undefined;
  constructor(
    readonly op: Op,
    readonly requestId: number,
    readonly onJob: ((result: JobResult) => void) | undefined,
    readonly onValue: ((value: unknown) => void) | undefined,
    readonly onError: ((err: Error) => void) | undefined,
    readonly jobBatch: Batch<JobResult> | undefined,
    readonly ackBatch: Batch<EnqueueResult> | undefined,
    readonly index: number,
    readonly onProgress: ProgressListener | undefined,
  ) {}
}

/** State of one submitMany / enqueueMany call. */
class Batch<T> {
  /** One entry per submitted job, `undefined` until it settles (all have settled once drained). */
  readonly results: Array<T | Error | undefined> = [];
  inFlight = 0;
  settled = 0;
  /** Known once the input is exhausted (at once for arrays). */
  total: number | undefined;
  /** First error thrown by onSettled; stops the batch. */
  error: Error | undefined;
  #wake: (() => void) | undefined;
  #draining = false;
  readonly #onSettled: SubmitManyOptions['onSettled'];

  constructor(
    readonly window: number,
    onSettled: SubmitManyOptions['onSettled'],
  ) {
    this.#onSettled = onSettled;
  }

  settle(index: number, value: T | Error): void {
    this.results[index] = value;
    this.inFlight--;
    this.settled++;
    if (this.#onSettled !== undefined && this.error === undefined) {
      try {
        this.#onSettled(this.settled, this.total);
      } catch (err) {
        this.error = toError(err);
      }
    }
    const wake = this.#wake;
    if (wake !== undefined && (this.#draining ? this.inFlight === 0 : this.inFlight < this.window)) {
      this.#wake = undefined;
      wake();
    }
  }

  /** Resolves when there is room in the window. */
  room(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Resolves when every job submitted has settled (the input is exhausted). */
  drained(): Promise<void> {
    this.#draining = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }
}

function isAsyncIterable<T>(x: Iterable<T> | AsyncIterable<T>): x is AsyncIterable<T> {
  return typeof (x as Partial<AsyncIterable<T>>)[Symbol.asyncIterator] === 'function';
}

/** Result views smaller than this are copied, so a kept result does not pin a whole socket chunk. */
const COPY_BELOW_BYTES = 4096;

// ---------------------------------------------------------------------------
// Client

/**
 * A connection to a taskwire scheduler. Many calls may be in flight at once;
 * they are pipelined over the one connection and matched by request id (and
 * job id for job outcomes). The client does not reconnect: when the
 * connection drops, pending calls reject with {@link ClosedError} (`CLOSED`)
 * and so do later ones; connect a new client.
 *
 * @example
 * const client = await Client.connect('127.0.0.1:9001');
 * const r = await client.submit('sha256', 'Hello, World!');
 * console.log(r.text()); // dffd6021...
 * const sums = await client.submitMany([1, 2, 3].map((n) => ({ kind: 'add', args: [n, n] })));
 * await client.close();
 */
export class Client {
  /** `host:port` of the scheduler, as used in messages. */
  readonly address: string;
  readonly #conn: Connection;
  /** Pending calls by request id, then (OP_JOB, once ACKed) by job id: both handed out in order. */
  readonly #requests = new IdMap<Pending>();
  readonly #jobs = new IdMap<Pending>();
  readonly #closed: Promise<void>;
  #nextRequestId: number;
  /** True once request ids have wrapped past 2^32-1. */
  #wrapped = false;
  /** Valid after the handshake. */
  #welcome: WelcomeMessage | undefined;
  #handshake: ((err: Error | undefined) => void) | undefined;
  /** Set when the socket has closed: every later call rejects with it. */
  #closedError: ClosedError | undefined;
  /** Why the connection is closing: a connection-level ERROR or GOODBYE from the scheduler. */
  #closeReason: Error | undefined;
  #closing = false;
  #closeTimer: NodeJS.Timeout | undefined;
  #resolveClosed!: () => void;

  private constructor(socket: Socket, address: string, opts: ConnectOptions, handshake: (err: Error | undefined) => void, reads: DirectReads | undefined) {
    this.address = address;
    this.#nextRequestId = nextRequestId((opts.firstRequestId ?? 1) - 1);
    this.#handshake = handshake;
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#conn = new Connection(
      socket,
      {
        onMessage: (msg) => this.#onMessage(msg),
        onClose: (err) => this.#onClose(err),
      },
      { reads },
    );
    const hello: Message = {
      type: 'HELLO',
      version: PROTOCOL_VERSION,
      role: 'client',
      name: opts.name ?? 'taskwire-client',
      capabilities: [],
      concurrency: 0,
    };
    if (opts.token !== undefined) hello.token = opts.token;
    this.#conn.send(hello);
  }

  /**
   * Connects to a scheduler and completes the handshake.
   * Rejects with `UNREACHABLE` (message naming the address, `cause` the socket
   * error) when the scheduler cannot be reached or does not answer within
   * `connectTimeoutMs`, or with the scheduler's code (`AUTH_FAILED`,
   * `BAD_VERSION`, ...) when it refuses the connection.
   */
  static connect(address: Address, opts: ConnectOptions = {}): Promise<Client> {
    let host: string;
    let port: number;
    try {
      ({ host, port } = typeof address === 'string' ? parseAddress(address) : address);
    } catch (err) {
      return Promise.reject(new TaskwireError('INVALID_ARGUMENT', toError(err).message, { cause: err }));
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return Promise.reject(new TaskwireError('INVALID_ARGUMENT', `bad port ${port}`));
    }
    const label = formatAddress(host, port);
    const timeoutMs = opts.connectTimeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      let settled = false;
      let client: Client | undefined;
      const tls = opts.tls === true ? {} : opts.tls === false ? undefined : opts.tls;
      // Plain TCP reads go straight to the connection (no stream 'data' events, issue 9).
      let reads: DirectReads | undefined;
      let socket: Socket;
      if (tls === undefined) {
        reads = new DirectReads();
        socket = netConnect({ host, port, onread: reads.onread });
      } else {
        socket = connectTls(host, port, tls);
      }
      const finish = (err: Error | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.off('error', onSocketError);
        if (err === undefined && client !== undefined) {
          resolve(client);
        } else {
          socket.destroy();
          reject(err);
        }
      };
      const onSocketError = (err: Error): void => finish(tls === undefined ? unreachable(label, err) : explainTlsError(label, err));
      const timer = setTimeout(
        () => finish(unreachable(label, new TaskwireError('TIMEOUT', `no answer within ${timeoutMs} ms`))),
        timeoutMs,
      );
      // Another service on the port (HTTP, SSH, Redis...) answers with bytes that are not a
      // WELCOME or ERROR frame: say so, rather than the decoder's FRAME_TOO_LARGE (PROTOCOL.md §4.1).
      const onFirstData = (chunk: Buffer): void => {
        if (isHandshakeReply(chunk)) return;
        finish(new TaskwireError('UNREACHABLE', `${label} is not a taskwire scheduler (it sent ${showBytes(chunk)})`, {
          cause: new TaskwireError('BAD_HANDSHAKE', 'the first frame is not WELCOME or ERROR'),
        }));
      };
      socket.once('error', onSocketError);
      if (reads === undefined) {
        socket.once('data', onFirstData);
      } else {
        reads.peek = (chunk) => {
          reads.peek = undefined;
          onFirstData(chunk);
        };
      }
      socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
        client = new Client(socket, label, opts, finish, reads);
      });
    });
  }

  /** The scheduler's WELCOME (server version, heartbeat interval, max payload). */
  get welcome(): WelcomeMessage | undefined {
    return this.#welcome;
  }

  /** Requests awaiting an answer plus jobs awaiting their outcome. */
  get pending(): number {
    return this.#requests.size + this.#jobs.size;
  }

  /** True once the connection has closed. */
  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  /**
   * Submits a job and waits for its outcome. Resolves with the result;
   * rejects with {@link JobFailedError} (`permanent`, `attempts`),
   * {@link JobCancelledError}, or a {@link TaskwireError} with the
   * scheduler's code (`BUSY`, `INVALID_ARGUMENT`, `JOURNAL_UNAVAILABLE`, ...).
   * @example
   * const sum = (await client.submit('add', [2, 3], { tier: 'paid' })).json<number>(); // 5
   */
  submit(kind: string, args: unknown, opts?: SubmitOptions): Promise<JobResult> {
    return new Promise((resolve, reject) => {
      const requestId = this.#takeRequestId();
      let submit: SubmitMessage;
      try {
        submit = this.#submitMessage(requestId, kind, args, opts, true);
      } catch (err) {
        reject(err);
        return;
      }
      const p = new Pending(OP_JOB, requestId, resolve, undefined, reject, undefined, undefined, 0, opts?.onProgress);
      if (opts?.onAck !== undefined) p.onAck = opts.onAck;
      this.#sendPending(p, submit);
    });
  }

  /** Queues a job without waiting for it; resolves once the scheduler has accepted it. */
  enqueue(kind: string, args: unknown, opts?: SubmitOptions): Promise<EnqueueResult> {
    return new Promise((resolve, reject) => {
      const requestId = this.#takeRequestId();
      let submit: SubmitMessage;
      try {
        submit = this.#submitMessage(requestId, kind, args, opts, false);
      } catch (err) {
        reject(err);
        return;
      }
      const onValue = (v: unknown): void => resolve(v as EnqueueResult);
      this.#sendPending(new Pending(OP_ACK, requestId, undefined, onValue, reject, undefined, undefined, 0, undefined), submit);
    });
  }

  /**
   * Waits for an existing job's outcome (at once if it has finished), like
   * {@link submit}. Rejects with `NOT_FOUND` for an unknown or expired id, or
   * `TIMEOUT` when `timeoutMs` passes first.
   */
  wait(jobId: number, opts: WaitOptions = {}): Promise<JobResult> {
    return new Promise((resolve, reject) => {
      const requestId = this.#takeRequestId();
      let frame: Buffer;
      try {
        frame = encode({ type: 'WATCH', requestId, jobId, progress: opts.onProgress !== undefined });
      } catch (err) {
        reject(err);
        return;
      }
      const p = new Pending(OP_JOB, requestId, resolve, undefined, reject, undefined, undefined, 0, opts.onProgress);
      if (opts.timeoutMs !== undefined && this.#closedError === undefined && !this.#closing) {
        p.timer = setTimeout(() => this.#expire(p, opts.timeoutMs ?? 0), opts.timeoutMs);
      }
      this.#sendPending(p, frame);
    });
  }

  /** The state of one job. Rejects with `NOT_FOUND`. */
  status(jobId: number): Promise<JobInfo> {
    return this.#request<JobInfo>((requestId) => ({ type: 'STATUS', requestId, jobId }));
  }

  /**
   * Cancels a queued or running job; resolves with its info (state CANCELLED).
   * Rejects with `NOT_FOUND`, or `INVALID_STATE` if it has already finished.
   */
  cancel(jobId: number): Promise<JobInfo> {
    return this.#request<JobInfo>((requestId) => ({ type: 'CANCEL', requestId, jobId }));
  }

  /** Lists one page of jobs (newest first by default), optionally by state and kind. */
  async list(opts: ListOptions = {}): Promise<JobInfo[]> {
    return (await this.listPage(opts)).jobs;
  }

  /**
   * One page of jobs with the total that match and the cursor of the next
   * page (PROTOCOL.md §5.6). Items carry `resultBytes`, not the result: ask
   * `status(id)` for that.
   */
  listPage(opts: ListOptions = {}): Promise<ListPage> {
    return this.#request<ListPage>((requestId) => ({
      type: 'LIST',
      requestId,
      state: opts.state ?? '',
      kind: opts.kind ?? '',
      limit: opts.limit ?? 0,
      afterId: opts.afterId ?? 0,
      order: opts.order ?? 'newest',
    }));
  }

  /** The workers connected to the scheduler. */
  workers(): Promise<WorkerInfo[]> {
    return this.#request<WorkerInfo[]>((requestId) => ({ type: 'WORKERS', requestId }));
  }

  /** The scheduler's counters. */
  stats(): Promise<StatsInfo> {
    return this.#request<StatsInfo>((requestId) => ({ type: 'STATS', requestId }));
  }

  /** Compacts the scheduler's journal now. Rejects with `INVALID_STATE` when it has no data directory. */
  compact(): Promise<JournalStats> {
    return this.#request<JournalStats>((requestId) => ({ type: 'COMPACT', requestId }));
  }

  /**
   * Follows every job state change from now on (optionally of one kind; a
   * client credential hears of its own jobs only): `onNotice` is called for
   * each, until the connection closes. Resolves once the scheduler has
   * accepted it. One follower per connection (a second call replaces it).
   */
  async follow(onNotice: (notice: NoticeMessage) => void, opts: { kind?: string } = {}): Promise<void> {
    this.#onNotice = onNotice;
    await this.#request<unknown>((requestId) => ({ type: 'FOLLOW', requestId, kind: opts.kind ?? '' }), OP_ACK);
  }
  #onNotice: ((notice: NoticeMessage) => void) | undefined;

  /** Settles when the connection closes (for a follower that waits on nothing else). */
  closedPromise(): Promise<void> {
    return (this.#closedPromise ??= new Promise<void>((resolve) => {
      if (this.closed) resolve();
      else this.#onClosed.push(resolve);
    }));
  }
  #closedPromise: Promise<void> | undefined;
  readonly #onClosed: (() => void)[] = [];

  /** An operator's request (PROTOCOL.md §5.8); the typed methods below are shorthands. */
  admin<T = unknown>(body: AdminRequest): Promise<T> {
    return this.#request<T>((requestId) => ({ type: 'ADMIN', requestId, body }));
  }

  /** Runs a FAILED or CANCELLED job again, as a new attempt series. `INVALID_STATE` for any other state. */
  retry(jobId: number): Promise<JobInfo> {
    return this.admin<JobInfo>({ op: 'retry', jobId });
  }

  /**
   * Runs again up to `limit` (default 1,000) FAILED or CANCELLED jobs, newest
   * first; call again with `afterId: result.next` until `next` is 0.
   */
  retryMany(opts: { state?: 'FAILED' | 'CANCELLED'; kind?: string; limit?: number; afterId?: number } = {}): Promise<RetryManyResult> {
    const body: AdminRequest = { op: 'retryMany', state: opts.state ?? 'FAILED' };
    if (opts.kind !== undefined) body.kind = opts.kind;
    if (opts.limit !== undefined) body.limit = opts.limit;
    if (opts.afterId !== undefined) body.afterId = opts.afterId;
    return this.admin<RetryManyResult>(body);
  }

  /** Stops dispatching jobs of a kind (submits are still accepted); survives restarts. */
  pause(kind: string): Promise<PauseResult> {
    return this.admin<PauseResult>({ op: 'pause', kind });
  }

  /** Undoes {@link pause}. */
  resume(kind: string): Promise<PauseResult> {
    return this.admin<PauseResult>({ op: 'resume', kind });
  }

  /** Cancels every QUEUED job of a kind; resolves with how many. */
  purge(kind: string): Promise<PurgeResult> {
    return this.admin<PurgeResult>({ op: 'purge', kind });
  }

  /** A worker (id or name) finishes its running jobs and takes no new ones. */
  drain(worker: string): Promise<WorkerInfo> {
    return this.admin<WorkerInfo>({ op: 'drain', worker });
  }

  /** Closes a worker's connection now; its jobs go back to the queue as after a crash. */
  disconnect(worker: string): Promise<WorkerInfo> {
    return this.admin<WorkerInfo>({ op: 'disconnect', worker });
  }

  /** A delayed or backing-off job runs now. */
  promote(jobId: number): Promise<JobInfo> {
    return this.admin<JobInfo>({ op: 'promote', jobId });
  }

  /**
   * Submits many jobs pipelined over this connection, at most `window` in
   * flight, and waits for all of them. Results come back in input order; a
   * job that fails (or is refused, e.g. `BUSY`) is an `Error` entry, so this
   * never rejects for a single job. This is the throughput path: no promise
   * or closure per job.
   * @example
   * const out = await client.submitMany(lines.map((l) => ({ kind: 'sha256', args: l })));
   * for (const r of out) console.log(r instanceof Error ? `error: ${r.message}` : r.text());
   */
  async submitMany(
    items: Iterable<SubmitItem> | AsyncIterable<SubmitItem>,
    opts: SubmitManyOptions = {},
  ): Promise<Array<JobResult | Error>> {
    const batch = new Batch<JobResult>(windowOf(opts), opts.onSettled);
    return this.#pipeline(batch, items, (item, index) => this.#submitOne(item, index, batch, undefined));
  }

  /**
   * Like {@link submitMany} but only queues the jobs (SUBMIT without wait):
   * each entry is the ACK `{ id, existing }` or an `Error`.
   */
  async enqueueMany(
    items: Iterable<SubmitItem> | AsyncIterable<SubmitItem>,
    opts: SubmitManyOptions = {},
  ): Promise<Array<EnqueueResult | Error>> {
    const batch = new Batch<EnqueueResult>(windowOf(opts), opts.onSettled);
    return this.#pipeline(batch, items, (item, index) => this.#submitOne(item, index, undefined, batch));
  }

  /**
   * Closes gracefully: calls made from now on reject with `CLOSED`, calls in
   * flight are allowed to settle, then the connection is ended. With
   * `timeoutMs`, whatever is still pending by then is rejected with
   * `CLOSED` and the connection destroyed. Idempotent; resolves once the
   * socket has closed.
   */
  close(opts: CloseOptions = {}): Promise<void> {
    if (this.#closing || this.#closedError !== undefined) return this.#closed;
    this.#closing = true;
    if (this.pending === 0) {
      this.#conn.end();
    } else if (opts.timeoutMs !== undefined) {
      const ms = opts.timeoutMs;
      this.#closeTimer = setTimeout(() => this.destroy(new ClosedError(`close() timed out after ${ms} ms`)), ms);
    }
    return this.#closed;
  }

  /** Closes at once; pending calls reject with {@link ClosedError} (cause: `err` if given). */
  destroy(err?: Error): void {
    this.#closing = true;
    this.#closeReason ??= err ?? new ClosedError('destroyed by the client');
    this.#conn.destroy(err);
  }

  // -------------------------------------------------------------------------

  #takeRequestId(): number {
    let id = this.#nextRequestId;
    // Only after a wrap can an id still be in use (a very old request); skip it.
    if (this.#wrapped) while (this.#requests.has(id)) id = nextRequestId(id);
    const next = nextRequestId(id);
    if (next < id) this.#wrapped = true;
    this.#nextRequestId = next;
    return id;
  }

  /**
   * Builds a SUBMIT. Throws INVALID_ARGUMENT for bad options or an oversized payload. The
   * connection encodes it straight into its batch buffer (no frame Buffer per job, issue 9).
   */
  #submitMessage(requestId: number, kind: string, args: unknown, opts: SubmitOptions | undefined, wait: boolean): SubmitMessage {
    let priority = 0;
    let timeoutMs = 0;
    let maxRetries = DEFAULT_RETRIES;
    let estMs = 0;
    let delayMs = 0;
    let key = '';
    let progress = false;
    if (opts !== undefined) {
      if (opts.priority !== undefined) priority = opts.priority;
      else if (opts.tier !== undefined) {
        const p = TIER_PRIORITY[opts.tier];
        if (p === undefined) throw new TaskwireError('INVALID_ARGUMENT', `tier must be "paid" or "free", got "${String(opts.tier)}"`);
        priority = p;
      }
      if (opts.retries !== undefined) {
        // 0xffff on the wire means "the scheduler's default" (protocol.ts DEFAULT_RETRIES).
        if (opts.retries === DEFAULT_RETRIES) {
          throw new TaskwireError('INVALID_ARGUMENT', `retries must be an integer from 0 to ${DEFAULT_RETRIES - 1}`);
        }
        maxRetries = opts.retries;
      }
      timeoutMs = opts.timeoutMs ?? 0;
      estMs = opts.estMs ?? 0;
      delayMs = opts.delayMs ?? 0;
      key = opts.key ?? '';
      progress = wait && opts.onProgress !== undefined;
    }
    const msg: SubmitMessage = {
      type: 'SUBMIT',
      requestId,
      kind,
      args: encodeArgs(args),
      priority,
      timeoutMs,
      maxRetries,
      estMs,
      delayMs,
      key,
      wait,
      progress,
    };
    // The scheduler would close the whole connection with FRAME_TOO_LARGE. The exact size is only
    // worked out when the arguments come near the limit (kind and key are at most 255 bytes each).
    const max = this.#welcome?.maxPayloadBytes ?? 0;
    if (max > 0 && msg.args.length + SUBMIT_MAX_FIXED_BYTES > max) {
      const payloadBytes = hotFrameBytes(msg) - HEADER_BYTES;
      if (payloadBytes > max) {
        throw new TaskwireError('INVALID_ARGUMENT', `job payload of ${payloadBytes} bytes exceeds the scheduler's maximum of ${max}`);
      }
    }
    return msg;
  }

  /**
   * Sends `out` (an encoded frame, or a SUBMIT the connection encodes) and registers `p` under its
   * request id; rejects `p` instead if the client is closed or the message does not encode.
   */
  #sendPending(p: Pending, out: Buffer | SubmitMessage): void {
    const closedError = this.#refusal();
    if (closedError !== undefined) {
      this.#reject(p, closedError);
      return;
    }
    if (Buffer.isBuffer(out)) {
      this.#conn.sendRaw(out);
    } else {
      try {
        this.#conn.send(out); // checks every field before queueing a byte
      } catch (err) {
        this.#reject(p, toError(err));
        return;
      }
    }
    this.#requests.set(p.requestId, p);
  }

  /** The error a new call gets, if the client no longer takes calls. */
  #refusal(): ClosedError | undefined {
    if (this.#closedError !== undefined) return this.#closedError;
    if (this.#closing) return new ClosedError(`client to ${this.address} is closing`);
    return undefined;
  }

  #request<T>(build: (requestId: number) => Message, op: Op = OP_REPLY): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const requestId = this.#takeRequestId();
      let frame: Buffer;
      try {
        frame = encode(build(requestId));
      } catch (err) {
        reject(err);
        return;
      }
      // REPLY bodies are the scheduler's JSON, typed by protocol.ts (JobInfo, WorkerInfo, ...).
      const onValue = (v: unknown): void => resolve(v as T);
      this.#sendPending(new Pending(op, requestId, undefined, onValue, reject, undefined, undefined, 0, undefined), frame);
    });
  }

  async #pipeline<T>(
    batch: Batch<T>,
    items: Iterable<SubmitItem> | AsyncIterable<SubmitItem>,
    submitOne: (item: SubmitItem, index: number) => void,
  ): Promise<Array<T | Error>> {
    if (Array.isArray(items)) batch.total = items.length;
    let n = 0;
    if (isAsyncIterable(items)) {
      for await (const item of items) {
        if (batch.inFlight >= batch.window) await batch.room();
        if (batch.error !== undefined) break;
        submitOne(item, n++);
      }
    } else {
      for (const item of items) {
        if (batch.inFlight >= batch.window) await batch.room();
        if (batch.error !== undefined) break;
        submitOne(item, n++);
      }
    }
    batch.total = n;
    if (batch.error === undefined) await batch.drained();
    if (batch.error !== undefined) throw batch.error;
    // Drained: every entry has settled, none is undefined any more.
    return batch.results as Array<T | Error>;
  }

  #submitOne(
    item: SubmitItem,
    index: number,
    jobBatch: Batch<JobResult> | undefined,
    ackBatch: Batch<EnqueueResult> | undefined,
  ): void {
    // push, not `length = index + 1`: growing an array by its length setter is several times slower.
    if (jobBatch !== undefined) {
      jobBatch.results.push(undefined);
      jobBatch.inFlight++;
    } else if (ackBatch !== undefined) {
      ackBatch.results.push(undefined);
      ackBatch.inFlight++;
    }
    const requestId = this.#takeRequestId();
    const p = new Pending(
      jobBatch !== undefined ? OP_JOB : OP_ACK,
      requestId,
      undefined,
      undefined,
      undefined,
      jobBatch,
      ackBatch,
      index,
      item.opts?.onProgress,
    );
    let submit: SubmitMessage;
    try {
      submit = this.#submitMessage(requestId, item.kind, item.args, item.opts, jobBatch !== undefined);
    } catch (err) {
      this.#reject(p, toError(err));
      return;
    }
    this.#sendPending(p, submit);
  }

  // -------------------------------------------------------------------------
  // Inbound

  #onMessage(msg: Message): void {
    switch (msg.type) {
      case 'EVENT':
        this.#onEvent(msg);
        return;
      case 'ACK':
        this.#onAck(msg);
        return;
      case 'REPLY':
        this.#onReply(msg);
        return;
      case 'ERROR':
        this.#onError(msg);
        return;
      case 'NOTICE':
        this.#onNotice?.(msg);
        return;
      case 'HEARTBEAT':
        return; // any inbound frame already counts as a sign of life
      case 'GOODBYE':
        // The scheduler is shutting down and will close the connection.
        this.#closeReason ??= new TaskwireError('SHUTTING_DOWN', `scheduler said goodbye: ${msg.reason}`);
        return;
      case 'WELCOME': {
        const handshake = this.#handshake;
        if (handshake === undefined) {
          this.#conn.fail('BAD_HANDSHAKE', 'WELCOME after the handshake');
          return;
        }
        this.#handshake = undefined;
        this.#welcome = msg;
        // The scheduler's limit is the one both ways (PROTOCOL.md §4.1): a result it may send is one we accept.
        this.#conn.setMaxPayloadBytes(msg.maxPayloadBytes);
        this.#conn.startHeartbeat(msg.heartbeatMs);
        handshake(undefined);
        return;
      }
      case 'HELLO':
      case 'SUBMIT':
      case 'WATCH':
      case 'ASSIGN':
      case 'RESULT':
      case 'FAIL':
      case 'PROGRESS':
      case 'ABANDON':
      case 'STATUS':
      case 'CANCEL':
      case 'LIST':
      case 'WORKERS':
      case 'STATS':
      case 'COMPACT':
      case 'ADMIN':
      case 'FOLLOW':
        this.#conn.fail('BAD_HANDSHAKE', `a client does not accept ${msg.type}`);
        return;
      default:
        assertNever(msg);
    }
  }

  #onAck(msg: AckMessage): void {
    const p = this.#requests.get(msg.requestId);
    if (p === undefined) return; // a wait() that timed out locally
    this.#requests.delete(msg.requestId);
    if (p.op === OP_JOB) {
      // PROTOCOL: the ACK of a job always precedes its EVENTs on the connection.
      p.jobId = msg.jobId;
      const head = this.#jobs.get(msg.jobId);
      if (head === undefined) {
        this.#jobs.set(msg.jobId, p);
      } else {
        p.next = head.next;
        head.next = p;
      }
      p.onAck?.(msg.jobId);
      return;
    }
    const value: EnqueueResult = { id: msg.jobId, existing: msg.existing };
    if (p.op === OP_ACK) {
      if (p.ackBatch !== undefined) p.ackBatch.settle(p.index, value);
      else p.onValue?.(value);
    } else {
      this.#reject(p, new TaskwireError('BAD_FRAME', `ACK to a request that expects a REPLY`));
    }
    this.#afterSettle();
  }

  #onEvent(msg: EventMessage): void {
    if (msg.event === 'progress') {
      let message: string | undefined;
      for (let p = this.#jobs.get(msg.jobId); p !== undefined; p = p.next) {
        if (p.onProgress === undefined) continue;
        message ??= msg.data.toString('utf8');
        try {
          p.onProgress(msg.pct, message);
        } catch (err) {
          this.#unlinkJob(p);
          this.#reject(p, toError(err));
          this.#afterSettle();
        }
      }
      return;
    }
    let p = this.#jobs.get(msg.jobId);
    if (p === undefined) return; // nobody waits (any more) for this job
    this.#jobs.delete(msg.jobId);
    switch (msg.event) {
      case 'done': {
        const data = msg.data.length < COPY_BELOW_BYTES ? Buffer.from(msg.data) : msg.data;
        const result = new JobResult(msg.jobId, msg.attempt, data);
        for (; p !== undefined; p = p.next) {
          if (p.timer !== undefined) clearTimeout(p.timer);
          if (p.jobBatch !== undefined) p.jobBatch.settle(p.index, result);
          else p.onJob?.(result);
        }
        break;
      }
      case 'failed': {
        const err = new JobFailedError(msg.jobId, msg.data.toString('utf8'), msg.attempt, msg.permanent);
        for (; p !== undefined; p = p.next) this.#reject(p, err);
        break;
      }
      case 'cancelled': {
        const err = new JobCancelledError(msg.jobId);
        for (; p !== undefined; p = p.next) this.#reject(p, err);
        break;
      }
      default:
        assertNever(msg.event);
    }
    this.#afterSettle();
  }

  #onReply(msg: ReplyMessage): void {
    const p = this.#requests.get(msg.requestId);
    if (p === undefined) return;
    this.#requests.delete(msg.requestId);
    if (p.op === OP_REPLY) p.onValue?.(msg.data === undefined ? msg.body : withResult(msg.body, msg.data));
    else this.#reject(p, new TaskwireError('BAD_FRAME', 'REPLY to a request that expects an ACK'));
    this.#afterSettle();
  }

  #onError(msg: ErrorMessage): void {
    const err = new TaskwireError(msg.code, msg.message);
    if (msg.requestId === 0) {
      // Connection-level (contract): the scheduler closes the connection after it.
      const handshake = this.#handshake;
      if (handshake !== undefined) {
        this.#handshake = undefined;
        handshake(err);
      }
      this.#closeReason ??= err;
      return;
    }
    const p = this.#requests.get(msg.requestId);
    if (p === undefined) return;
    this.#requests.delete(msg.requestId);
    this.#reject(p, err);
    this.#afterSettle();
  }

  #onClose(err: Error | undefined): void {
    for (const resolve of this.#onClosed.splice(0)) resolve();
    const handshake = this.#handshake;
    if (handshake !== undefined) {
      this.#handshake = undefined;
      handshake(unreachable(this.address, this.#closeReason ?? err ?? new Error('connection closed during the handshake')));
    }
    const cause = this.#closeReason ?? err;
    const closed = new ClosedError(
      cause === undefined
        ? `connection to ${this.address} closed`
        : `connection to ${this.address} closed: ${cause.message}`,
      cause === undefined ? undefined : { cause },
    );
    this.#closedError = closed;
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    const requests = [...this.#requests.values()];
    const jobs = [...this.#jobs.values()];
    this.#requests.clear();
    this.#jobs.clear();
    for (const p of requests) this.#reject(p, closed);
    for (const head of jobs) {
      for (let p: Pending | undefined = head; p !== undefined; p = p.next) this.#reject(p, closed);
    }
    this.#resolveClosed();
  }

  /** Settles `p` with an error (batch entry or promise rejection). */
  #reject(p: Pending, err: Error): void {
    if (p.timer !== undefined) clearTimeout(p.timer);
    if (p.jobBatch !== undefined) p.jobBatch.settle(p.index, err);
    else if (p.ackBatch !== undefined) p.ackBatch.settle(p.index, err);
    else p.onError?.(err);
  }

  /** A wait() ran out of time: forget the waiter (the job goes on). */
  #expire(p: Pending, timeoutMs: number): void {
    p.timer = undefined;
    if (this.#requests.get(p.requestId) === p) this.#requests.delete(p.requestId);
    else if (!this.#unlinkJob(p)) return;
    this.#reject(p, new TaskwireError('TIMEOUT', `job ${p.jobId || '?'} did not finish within ${timeoutMs} ms`));
    this.#afterSettle();
  }

  /** Removes `p` from its job's waiter list; false if it was not there. */
  #unlinkJob(p: Pending): boolean {
    const head = this.#jobs.get(p.jobId);
    if (head === undefined) return false;
    if (head === p) {
      if (p.next === undefined) this.#jobs.delete(p.jobId);
      else this.#jobs.set(p.jobId, p.next);
      return true;
    }
    for (let q = head; q.next !== undefined; q = q.next) {
      if (q.next === p) {
        q.next = p.next;
        return true;
      }
    }
    return false;
  }

  /** After a settle: a graceful close ends the connection once nothing is pending. */
  #afterSettle(): void {
    if (this.#closing && this.#closedError === undefined && this.#requests.size === 0 && this.#jobs.size === 0) {
      this.#conn.end();
    }
  }
}

function windowOf(opts: SubmitManyOptions): number {
  const window = opts.window ?? 10_000;
  if (!Number.isInteger(window) || window < 1) {
    throw new TaskwireError('INVALID_ARGUMENT', `window must be a positive integer, got ${window}`);
  }
  return window;
}

/** Largest WELCOME or ERROR payload a scheduler sends during the handshake; more means another protocol. */
const MAX_HANDSHAKE_PAYLOAD = 64 * 1024;

/** Whether the first bytes from the peer can start a WELCOME or ERROR frame (`[u8 command][u32 length]`). */
function isHandshakeReply(chunk: Buffer): boolean {
  if (chunk.length === 0) return true;
  if (chunk[0] !== Command.WELCOME && chunk[0] !== Command.ERROR) return false;
  return chunk.length < HEADER_BYTES || chunk.readUInt32BE(1) <= MAX_HANDSHAKE_PAYLOAD;
}

/** Up to 40 bytes for a message, printable ASCII as is: `"HTTP/1.1 400 Bad Request\r\n…"`. */
function showBytes(chunk: Buffer): string {
  const head = chunk.subarray(0, 40);
  let text = '';
  for (const b of head) text += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : b === 0x0d ? '\\r' : b === 0x0a ? '\\n' : `\\x${b.toString(16).padStart(2, '0')}`;
  return `"${text}${chunk.length > head.length ? '…' : ''}"`;
}

function unreachable(address: string, cause: Error): TaskwireError {
  const why = errnoCode(cause) ?? cause.message;
  return new TaskwireError('UNREACHABLE', `cannot reach the scheduler at ${address} (${why})`, { cause });
}

// The `taskwire` CLI lives in its own module, loaded only when this file is run.
// (Not a top-level await: the CLI imports this module, which must finish loading first.)
if (isMain(import.meta.url)) void import('./lib/client-cli.js').then(({ main }) => main());
