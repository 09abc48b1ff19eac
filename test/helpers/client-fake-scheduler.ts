import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import { Connection } from '../../src/lib/connection.js';
import type { ErrorCode } from '../../src/lib/errors.js';
import {
  PROTOCOL_VERSION,
  type JobInfo,
  type JobState,
  type Message,
  type SubmitMessage,
} from '../../src/lib/protocol.js';

/** One connection to the fake, as tests see it. */
export interface FakeSession {
  readonly name: string;
  send(msg: Message): void;
  /** Flushes and half-closes (a graceful close). */
  end(): void;
  destroy(): void;
}

/** A job in the fake's table. */
export interface FakeJob {
  id: number;
  kind: string;
  args: Buffer;
  key: string;
  state: JobState;
  attempt: number;
  result?: Buffer;
  error?: string;
  permanent: boolean;
  createdAt: number;
  /** Sessions waiting for the final EVENT, with whether they want progress. */
  waiters: Map<FakeSession, boolean>;
}

export interface FakeSchedulerOptions {
  /** Sent in WELCOME. Default 1000 ms. */
  heartbeatMs?: number;
  /** Sent in WELCOME. Default 16 MiB. */
  maxPayloadBytes?: number;
  /** HELLO must carry this token. */
  token?: string;
  /** Accept jobs but run none until {@link FakeScheduler.release}. */
  hold?: boolean;
  /** Do not close it when the current test ends (for beforeAll; call close() yourself). */
  manualClose?: boolean;
}

type Outcome = { ok: true; data: Buffer } | { ok: false; message: string; permanent: boolean; attempts: number };

/**
 * A tiny in-process stand-in for the scheduler, for client tests: speaks the
 * real protocol through the real {@link Connection} on a loopback port 0, and
 * "runs" jobs itself, at once (or when released). Kinds: sha256, add,
 * subtract, multiply, divide (1/0 fails permanently), echo (args back),
 * flaky (fails for good after 3 attempts), progress (progress 50% then done).
 * Any other kind stays QUEUED, as with no capable worker.
 *
 * Emits 'message' (msg, session) for every client message but heartbeats.
 */
export class FakeScheduler extends EventEmitter {
  readonly received: Message[] = [];
  readonly jobs = new Map<number, FakeJob>();
  hold: boolean;
  /** When set, every SUBMIT is refused with this code. */
  refuse: ErrorCode | undefined;
  /** When set, replaces the default SUBMIT handling (ACK + run). */
  onSubmit: ((msg: SubmitMessage, session: FakeSession) => void) | undefined;
  /** Held jobs, in submission order. */
  readonly held: FakeJob[] = [];
  /** Sessions that have connected and not closed. */
  readonly sessions = new Set<FakeSession>();
  readonly #server: Server;
  readonly #opts: FakeSchedulerOptions;
  readonly #sockets = new Set<Socket>();
  #nextJobId = 1;

  private constructor(opts: FakeSchedulerOptions) {
    super();
    this.#opts = opts;
    this.hold = opts.hold ?? false;
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /** Starts a fake on 127.0.0.1 port 0; closed when the test ends (unless `manualClose`). */
  static async start(opts: FakeSchedulerOptions = {}): Promise<FakeScheduler> {
    const fake = new FakeScheduler(opts);
    fake.#server.listen(0, '127.0.0.1');
    await once(fake.#server, 'listening');
    if (opts.manualClose !== true) onTestFinished(() => fake.close());
    return fake;
  }

  get port(): number {
    const a = this.#server.address();
    if (a === null || typeof a === 'string') throw new Error('not listening');
    return a.port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Messages of one type received so far. */
  receivedOf<T extends Message['type']>(type: T): Array<Extract<Message, { type: T }>> {
    return this.received.filter((m): m is Extract<Message, { type: T }> => m.type === type);
  }

  /** Resolves once `check()` holds, re-checked after every received message; rejects after `timeoutMs`. */
  async until(check: () => boolean, timeoutMs = 5000): Promise<void> {
    if (check()) return;
    const signal = AbortSignal.timeout(timeoutMs);
    while (!check()) await once(this, 'message', { signal });
  }

  /** Runs held jobs now, in the given order of job ids (default: submission order). */
  release(order?: number[]): void {
    const ids = order ?? this.held.map((j) => j.id);
    const byId = new Map(this.held.map((j) => [j.id, j]));
    this.held.length = 0;
    for (const id of ids) {
      const job = byId.get(id);
      if (job !== undefined) this.#run(job);
    }
  }

  /** Drops every client connection at once (RST-like destroy). */
  dropConnections(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    let hello = false;
    let name = '?';
    const session: FakeSession = {
      get name() {
        return name;
      },
      send: (msg) => conn.send(msg),
      end: () => conn.end(),
      destroy: () => conn.destroy(),
    };
    this.sessions.add(session);
    const conn = new Connection(socket, {
      onMessage: (msg) => {
        if (msg.type === 'HEARTBEAT') return;
        this.received.push(msg);
        if (!hello) {
          if (msg.type !== 'HELLO') return conn.fail('BAD_HANDSHAKE', 'HELLO first');
          if (this.#opts.token !== undefined && msg.token !== this.#opts.token) {
            return conn.fail('AUTH_FAILED', 'missing or wrong token');
          }
          hello = true;
          name = msg.name;
          const heartbeatMs = this.#opts.heartbeatMs ?? 1000;
          conn.send({
            type: 'WELCOME',
            version: PROTOCOL_VERSION,
            serverVersion: 'fake',
            heartbeatMs,
            maxPayloadBytes: this.#opts.maxPayloadBytes ?? 16 * 1024 * 1024,
            sessionId: `s${this.#sockets.size}`,
          });
          conn.startHeartbeat(heartbeatMs);
        } else {
          this.#handle(msg, session);
        }
        this.emit('message', msg, session);
      },
      onClose: () => {
        this.sessions.delete(session);
        for (const job of this.jobs.values()) job.waiters.delete(session);
      },
    });
  }

  #handle(msg: Message, s: FakeSession): void {
    switch (msg.type) {
      case 'SUBMIT': {
        if (this.onSubmit !== undefined) return this.onSubmit(msg, s);
        if (this.refuse !== undefined) {
          return s.send({ type: 'ERROR', requestId: msg.requestId, code: this.refuse, message: `refused: ${this.refuse}` });
        }
        if (msg.kind === '') {
          return s.send({ type: 'ERROR', requestId: msg.requestId, code: 'INVALID_ARGUMENT', message: 'kind must not be empty' });
        }
        if (msg.key !== '') {
          const live = [...this.jobs.values()].find((j) => j.key === msg.key && (j.state === 'QUEUED' || j.state === 'RUNNING'));
          if (live !== undefined) {
            if (msg.wait) live.waiters.set(s, msg.progress);
            return s.send({ type: 'ACK', requestId: msg.requestId, jobId: live.id, existing: true });
          }
        }
        const job: FakeJob = {
          id: this.#nextJobId++,
          kind: msg.kind,
          args: Buffer.from(msg.args),
          key: msg.key,
          state: 'QUEUED',
          attempt: 0,
          permanent: false,
          createdAt: Date.now(),
          waiters: new Map(),
        };
        if (msg.wait) job.waiters.set(s, msg.progress);
        this.jobs.set(job.id, job);
        s.send({ type: 'ACK', requestId: msg.requestId, jobId: job.id, existing: false });
        if (this.hold) this.held.push(job);
        else this.#run(job);
        return;
      }
      case 'WATCH': {
        const job = this.jobs.get(msg.jobId);
        if (job === undefined) return this.#notFound(s, msg.requestId, msg.jobId);
        s.send({ type: 'ACK', requestId: msg.requestId, jobId: job.id, existing: true });
        if (job.state === 'QUEUED' || job.state === 'RUNNING') job.waiters.set(s, msg.progress);
        else this.#sendFinal(job, [s]);
        return;
      }
      case 'STATUS': {
        const job = this.jobs.get(msg.jobId);
        if (job === undefined) return this.#notFound(s, msg.requestId, msg.jobId);
        // The result travels as bytes beside the JSON (REPLY_DATA, PROTOCOL.md §5.5).
        if (job.result !== undefined) return s.send({ type: 'REPLY', requestId: msg.requestId, body: info(job), data: job.result });
        return s.send({ type: 'REPLY', requestId: msg.requestId, body: info(job) });
      }
      case 'CANCEL': {
        const job = this.jobs.get(msg.jobId);
        if (job === undefined) return this.#notFound(s, msg.requestId, msg.jobId);
        if (job.state !== 'QUEUED' && job.state !== 'RUNNING') {
          return s.send({ type: 'ERROR', requestId: msg.requestId, code: 'INVALID_STATE', message: `job ${job.id} is ${job.state}` });
        }
        job.state = 'CANCELLED';
        const i = this.held.indexOf(job);
        if (i >= 0) this.held.splice(i, 1);
        s.send({ type: 'REPLY', requestId: msg.requestId, body: info(job) });
        this.#sendFinal(job, [...job.waiters.keys()]);
        return;
      }
      case 'LIST': {
        const matching = [...this.jobs.values()]
          .filter((j) => (msg.state === '' || j.state === msg.state) && (msg.kind === '' || j.kind === msg.kind))
          .reverse(); // newest first, as the scheduler (PROTOCOL.md §5.6)
        const jobs = matching.slice(0, msg.limit === 0 ? 100 : msg.limit).map(info);
        return s.send({ type: 'REPLY', requestId: msg.requestId, body: { jobs, total: matching.length, next: 0 } });
      }
      case 'WORKERS':
        return s.send({
          type: 'REPLY',
          requestId: msg.requestId,
          body: [
            {
              id: 'w1',
              name: 'fake-worker',
              capabilities: ['sha256', 'add'],
              concurrency: 4,
              running: 1,
              draining: false,
              connectedAt: Date.now() - 5000,
              lastHeartbeatAt: Date.now(),
              done: 7,
              failed: 1,
            },
          ],
        });
      case 'STATS':
        return s.send({
          type: 'REPLY',
          requestId: msg.requestId,
          body: {
            uptimeMs: 61_000,
            serverVersion: 'fake',
            connections: { clients: this.#sockets.size, workers: 0 },
            totals: { queued: 0, running: 0, retained: this.jobs.size, submitted: this.jobs.size },
            kinds: {
              sha256: { queued: 1, running: 2, done: 3, failed: 4, cancelled: 5, oldestQueuedMs: 0, donePerSec: 9.6, submittedPerSec: 10 },
            },
            journal: null,
          },
        });
      case 'COMPACT':
        return s.send({ type: 'ERROR', requestId: msg.requestId, code: 'INVALID_STATE', message: 'no data directory' });
      default:
        return;
    }
  }

  #notFound(s: FakeSession, requestId: number, jobId: number): void {
    s.send({ type: 'ERROR', requestId, code: 'NOT_FOUND', message: `no job ${jobId}` });
  }

  #run(job: FakeJob): void {
    if (job.state !== 'QUEUED') return;
    const outcome = execute(job.kind, job.args);
    if (outcome === undefined) return; // no "worker" for this kind: stays queued
    job.state = 'RUNNING';
    job.attempt = outcome.ok ? 1 : outcome.attempts;
    if (job.kind === 'progress') {
      for (const [s, progress] of job.waiters) {
        if (progress) s.send({ type: 'EVENT', jobId: job.id, event: 'progress', attempt: 1, pct: 50, permanent: false, data: Buffer.from('halfway') });
      }
    }
    if (outcome.ok) {
      job.state = 'DONE';
      job.result = outcome.data;
    } else {
      job.state = 'FAILED';
      job.error = outcome.message;
      job.permanent = outcome.permanent;
    }
    this.#sendFinal(job, [...job.waiters.keys()]);
  }

  #sendFinal(job: FakeJob, sessions: FakeSession[]): void {
    job.waiters.clear();
    for (const s of sessions) {
      if (job.state === 'DONE') {
        s.send({ type: 'EVENT', jobId: job.id, event: 'done', attempt: job.attempt, pct: 0, permanent: false, data: job.result ?? Buffer.alloc(0) });
      } else if (job.state === 'FAILED') {
        s.send({ type: 'EVENT', jobId: job.id, event: 'failed', attempt: job.attempt, pct: 0, permanent: job.permanent, data: Buffer.from(job.error ?? '') });
      } else if (job.state === 'CANCELLED') {
        s.send({ type: 'EVENT', jobId: job.id, event: 'cancelled', attempt: job.attempt, pct: 0, permanent: false, data: Buffer.alloc(0) });
      }
    }
  }
}

function info(job: FakeJob): JobInfo {
  const out: JobInfo = {
    id: job.id,
    kind: job.kind,
    state: job.state,
    priority: 0,
    attempts: job.attempt,
    maxRetries: 3,
    timeoutMs: 10_000,
    createdAt: job.createdAt,
  };
  if (job.result !== undefined) out.resultBytes = job.result.length;
  if (job.error !== undefined) out.error = job.error;
  if (job.key !== '') out.key = job.key;
  return out;
}

function operands(args: Buffer): [number, number] | undefined {
  let v: unknown;
  try {
    v = JSON.parse(args.toString('utf8'));
  } catch {
    return undefined;
  }
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'number') return [v[0], v[1]];
  return undefined;
}

function execute(kind: string, args: Buffer): Outcome | undefined {
  const num = (n: number): Outcome => ({ ok: true, data: Buffer.from(JSON.stringify(n)) });
  const bad: Outcome = { ok: false, message: 'expected two numbers', permanent: true, attempts: 1 };
  switch (kind) {
    case 'sha256':
      return { ok: true, data: Buffer.from(createHash('sha256').update(args).digest('hex')) };
    case 'echo':
    case 'progress':
      return { ok: true, data: args };
    case 'flaky':
      return { ok: false, message: 'boom', permanent: false, attempts: 3 };
    case 'add':
    case 'subtract':
    case 'multiply':
    case 'divide': {
      const ab = operands(args);
      if (ab === undefined) return bad;
      const [a, b] = ab;
      if (kind === 'add') return num(a + b);
      if (kind === 'subtract') return num(a - b);
      if (kind === 'multiply') return num(a * b);
      if (b === 0) return { ok: false, message: 'division by zero', permanent: true, attempts: 1 };
      return num(a / b);
    }
    default:
      return undefined;
  }
}
