/**
 * The scheduler's decisions, with no sockets and no timers (STYLE.md "State
 * and time"): it is handed messages and the current time (an injectable
 * clock), and answers by calling `send` on the peers it was given. Queueing
 * order, routing, credits, timeouts, retries, fencing, cancellation,
 * retention and journal replay all live here and are unit-tested without I/O.
 */
import { backoffDelay } from './backoff.js';
import { TaskwireError, type ErrorCode } from './errors.js';
import type { JournalRecord } from './journal-records.js';
import {
  assertNever,
  type HelloMessage,
  type JobEvent,
  type JobInfo,
  type JobState,
  type JournalStats,
  type KindStats,
  type Message,
  type StatsInfo,
  type SubmitMessage,
  type WorkerInfo,
  DEFAULT_RETRIES,
} from './protocol.js';
import { IdMap } from './id-map.js';
import { Deque, Heap } from './queue.js';
import { RunQueue } from './run-queue.js';

/** The core's view of a connection: somewhere to send messages. */
export interface Peer {
  send(msg: Message): void;
  /** Bytes waiting to be written to the peer (backpressure). */
  readonly writableLength: number;
}

/** The core's view of the journal (src/lib/journal.ts implements it). */
export interface JournalPort {
  append(record: JournalRecord, onDurable: (err: Error | null) => void): void;
}

/** Log levels, least to most verbose. */
export type LogLevel = 'silent' | 'error' | 'info' | 'debug';

/** Settings of the scheduler core; every timing knob is here so fault tests run fast. */
export interface CoreOptions {
  /** Run timeout per attempt when SUBMIT says 0. Default 10 s. */
  defaultTimeoutMs?: number;
  /** Retries when SUBMIT says DEFAULT_RETRIES. Default 3. */
  defaultRetries?: number;
  /** Backoff of the first retry; doubles per attempt, with jitter. Default 500 ms. */
  retryBaseMs?: number;
  /** Largest retry backoff. Default 30 s. */
  retryMaxMs?: number;
  /** QUEUED jobs at most; SUBMIT past it gets BUSY. Default 2,000,000. */
  maxQueued?: number;
  /** Finished jobs kept for lookup, at most. Default 100,000. */
  retainCount?: number;
  /** Finished jobs kept for lookup, at most this long. Default 1 hour. */
  retainMs?: number;
  /** Stop assigning to a worker with this many bytes unsent to it. Default 4 MiB. */
  workerHighWaterBytes?: number;
  serverVersion?: string;
  /** Clock, ms. Default Date.now. */
  now?: () => number;
  /** Randomness for backoff jitter. Default Math.random. */
  random?: () => number;
  journal?: JournalPort;
  /** Journal counters for STATS; null without a data directory. */
  journalStats?: () => JournalStats | null;
  /** Runs a compaction (COMPACT request); absent without a data directory. */
  compact?: () => Promise<JournalStats>;
  log?: (level: Exclude<LogLevel, 'silent'>, line: string) => void;
  /** Log every job transition (`debug` lines). Off by default: they cost per job. */
  debug?: boolean;
}

type InternalState = JobState | 'PENDING';

const RETRY_FLAG = 0x100;
const PERMANENT_FLAG = 0x200;
const PRIORITY_MASK = 0xff;

const MAX_RETRIES_SHIFT = 10;

/**
 * What a job's attempts produced: allocated when it first runs (or finishes),
 * so the many jobs that are only queued do not pay for these fields.
 */
export class JobRun {
  /** RUNNING: the worker of the current attempt; after: the worker of the last one. */
  worker: WorkerSession | null = null;
  /** Name of the worker of the last attempt (kept across restarts via the journal). */
  workerName = '';
  /** When the last attempt started (relative ms). */
  startedAt = 0;
  /** DONE/FAILED/CANCELLED: when it finished (relative ms). */
  finishedAt = 0;
  /** DONE: result bytes. FAILED: the error text. */
  outcome: Buffer | string | null = null;
}

/**
 * One job. Kept small on purpose (DESIGN.md: a million may be queued): flags
 * pack priority, maxRetries and two marks; args are held as a latin1 string
 * (one byte per byte, far smaller than a Buffer object); times are ms relative
 * to the core's epoch (small integers, no boxed doubles); everything about
 * attempts lives in a {@link JobRun} allocated on first use.
 */
export class Job {
  /** PENDING: waiting for its journal record to become durable, not yet runnable. */
  state: InternalState = 'QUEUED';
  /** Attempts started so far; the current attempt's number while RUNNING. */
  attempts = 0;
  /** Bits 0-7 priority, 8 RETRY_FLAG, 9 PERMANENT_FLAG, 10-25 maxRetries. */
  flags: number;
  /** QUEUED: not runnable before this (relative ms). */
  notBefore: number;
  /** Client sessions to tell when it finishes. */
  waiters: ClientSession | ClientSession[] | null = null;
  run: JobRun | null = null;

  constructor(
    readonly id: number,
    readonly kind: KindQueue,
    /** Argument bytes as a latin1 string; '' once finished (a retained job keeps its result, not its input). */
    public args: string,
    priority: number,
    readonly timeoutMs: number,
    maxRetries: number,
    readonly estMs: number,
    notBefore: number,
    readonly key: string,
    readonly createdAt: number,
  ) {
    this.flags = (priority & PRIORITY_MASK) | ((maxRetries & 0xffff) << MAX_RETRIES_SHIFT);
    this.notBefore = notBefore;
  }

  get priority(): number {
    return this.flags & PRIORITY_MASK;
  }
  get maxRetries(): number {
    return (this.flags >>> MAX_RETRIES_SHIFT) & 0xffff;
  }
  #run(): JobRun {
    return (this.run ??= new JobRun());
  }
  get worker(): WorkerSession | null {
    return this.run === null ? null : this.run.worker;
  }
  set worker(w: WorkerSession | null) {
    const run = this.#run();
    run.worker = w;
    if (w !== null) run.workerName = w.name;
  }
  get startedAt(): number {
    return this.run === null ? 0 : this.run.startedAt;
  }
  set startedAt(t: number) {
    this.#run().startedAt = t;
  }
  get finishedAt(): number {
    return this.run === null ? 0 : this.run.finishedAt;
  }
  set finishedAt(t: number) {
    this.#run().finishedAt = t;
  }
  get outcome(): Buffer | string | null {
    return this.run === null ? null : this.run.outcome;
  }
  set outcome(o: Buffer | string | null) {
    if (o !== null || this.run !== null) this.#run().outcome = o;
  }
}

/**
 * Queue order inside a kind (DESIGN.md): new before retries, higher priority
 * first, shorter estimated run time first, older (lower id) first.
 */
export function runsBefore(a: Job, b: Job): boolean {
  const ra = a.flags & RETRY_FLAG;
  const rb = b.flags & RETRY_FLAG;
  if (ra !== rb) return ra < rb;
  const pa = a.flags & PRIORITY_MASK;
  const pb = b.flags & PRIORITY_MASK;
  if (pa !== pb) return pa > pb;
  if (a.estMs !== b.estMs) return a.estMs < b.estMs;
  return a.id < b.id;
}

/** Everything about one job kind: its runnable jobs, its workers, its counters. */
export class KindQueue {
  /** Runnable QUEUED jobs (and lazily skipped cancelled ones); O(1) for jobs that arrive in order. */
  readonly heap = new RunQueue<Job>(runsBefore);
  readonly workers: WorkerSession[] = [];
  /** Round-robin position in `workers`. */
  cursor = 0;
  queued = 0;
  running = 0;
  done = 0;
  failed = 0;
  cancelled = 0;
  submitted = 0;
  /** Rates (per second), smoothed; see SchedulerCore.tick. */
  donePerSec = 0;
  submittedPerSec = 0;
  #lastDone = 0;
  #lastSubmitted = 0;

  constructor(readonly name: string) {}

  /** Updates the smoothed rates from the counters; `dtMs` since the last call. */
  sampleRates(dtMs: number): void {
    const a = 0.5;
    const done = ((this.done + this.failed - this.#lastDone) * 1000) / dtMs;
    const submitted = ((this.submitted - this.#lastSubmitted) * 1000) / dtMs;
    this.donePerSec = a * done + (1 - a) * this.donePerSec;
    this.submittedPerSec = a * submitted + (1 - a) * this.submittedPerSec;
    this.#lastDone = this.done + this.failed;
    this.#lastSubmitted = this.submitted;
  }
}

/** A connected client. */
export class ClientSession {
  closed = false;
  /** Waiters that asked for progress events, by job id. */
  progressJobs: Set<number> | null = null;
  constructor(
    readonly id: string,
    readonly name: string,
    readonly peer: Peer,
  ) {}
}

/** A connected worker and its credit (DESIGN.md "Routing"). */
export class WorkerSession {
  /** Jobs whose current attempt runs on this worker. */
  readonly running = new Set<Job>();
  /** ASSIGNs not yet answered (includes abandoned attempts still winding down). */
  outstanding = 0;
  draining = false;
  closed = false;
  /** Load the worker reported in its last heartbeat. */
  reportedLoad = 0;
  lastHeartbeatAt: number;
  done = 0;
  failed = 0;
  constructor(
    readonly id: string,
    readonly name: string,
    readonly peer: Peer,
    readonly kinds: KindQueue[],
    readonly concurrency: number,
    readonly connectedAt: number,
  ) {
    this.lastHeartbeatAt = connectedAt;
  }
}

export type Session = ClientSession | WorkerSession;

const EMPTY = Buffer.alloc(0);

/** The scheduler's state machine. See the module comment. */
export class SchedulerCore {
  /** Jobs by id, in pages of 1,024 slots (ids are dense): 8 bytes a job instead of a hash entry. */
  readonly jobs = new IdMap<Job>(1024);
  readonly #kinds = new Map<string, KindQueue>();
  /** QUEUED jobs waiting for a delay or a retry backoff, by notBefore. */
  readonly #delayed = new Heap<Job>((a, b) => a.notBefore < b.notBefore);
  /** Finished jobs in finishing order, for retention. */
  readonly #retained = new Deque<Job>();
  /** Idempotency keys of live and retained jobs. */
  readonly #keys = new Map<string, Job>();
  readonly #workers = new Set<WorkerSession>();
  #clients = 0;
  #queued = 0;
  #running = 0;
  #submitted = 0;
  #nextId = 1;
  #lastSample: number;
  readonly epoch: number;

  readonly #defaultTimeoutMs: number;
  readonly #defaultRetries: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #maxQueued: number;
  readonly #retainCount: number;
  readonly #retainMs: number;
  readonly #workerHighWaterBytes: number;
  readonly #serverVersion: string;
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #journal: JournalPort | undefined;
  /** Whether per-job `debug` lines are wanted (checked before building them). */
  readonly #debug: boolean;
  readonly #opts: CoreOptions;

  constructor(opts: CoreOptions = {}) {
    this.#opts = opts;
    this.#defaultTimeoutMs = opts.defaultTimeoutMs ?? 10_000;
    this.#defaultRetries = opts.defaultRetries ?? 3;
    this.#retryBaseMs = opts.retryBaseMs ?? 500;
    this.#retryMaxMs = opts.retryMaxMs ?? 30_000;
    this.#maxQueued = opts.maxQueued ?? 2_000_000;
    this.#retainCount = opts.retainCount ?? 100_000;
    this.#retainMs = opts.retainMs ?? 3_600_000;
    this.#workerHighWaterBytes = opts.workerHighWaterBytes ?? 4 * 1024 * 1024;
    this.#serverVersion = opts.serverVersion ?? '0.0.0';
    this.#clock = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#journal = opts.journal;
    this.#debug = opts.debug ?? false;
    this.epoch = this.#clock();
    this.#lastSample = 0;
  }

  /** Current time, relative to the epoch. */
  #now(): number {
    return this.#clock() - this.epoch;
  }

  #log(level: 'error' | 'info' | 'debug', line: string): void {
    this.#opts.log?.(level, line);
  }

  #kind(name: string): KindQueue {
    let k = this.#kinds.get(name);
    if (k === undefined) {
      k = new KindQueue(name);
      this.#kinds.set(name, k);
    }
    return k;
  }

  /** Number of QUEUED (and journal-pending) jobs. */
  get queuedCount(): number {
    return this.#queued;
  }

  // -------------------------------------------------------------------------
  // Sessions

  openClient(id: string, name: string, peer: Peer): ClientSession {
    this.#clients++;
    return new ClientSession(id, name, peer);
  }

  openWorker(id: string, hello: HelloMessage, peer: Peer): WorkerSession {
    const kinds = [...new Set(hello.capabilities)].map((k) => this.#kind(k));
    const w = new WorkerSession(id, hello.name, peer, kinds, hello.concurrency, this.#now());
    for (const k of kinds) k.workers.push(w);
    this.#workers.add(w);
    this.#dispatchWorker(w);
    return w;
  }

  /**
   * A connection ended. A lost worker counts as a failed attempt of every job
   * it held (DESIGN.md "Heartbeats"), so a job that kills workers ends FAILED.
   */
  closeSession(s: Session, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    if (s instanceof ClientSession) {
      this.#clients--;
      return;
    }
    this.#workers.delete(s);
    for (const k of s.kinds) {
      const i = k.workers.indexOf(s);
      if (i >= 0) k.workers.splice(i, 1);
    }
    const lost = [...s.running];
    s.running.clear();
    for (const job of lost) {
      this.#attemptFailed(job, `worker ${s.name} lost: ${reason}`, false);
    }
  }

  /** A message from a client (after the handshake). Throws TaskwireError for role violations. */
  handleClient(s: ClientSession, msg: Message): void {
    switch (msg.type) {
      case 'SUBMIT':
        return this.#submit(s, msg);
      case 'WATCH':
        return this.#watch(s, msg.requestId, msg.jobId, msg.progress);
      case 'STATUS': {
        const job = this.jobs.get(msg.jobId);
        if (job === undefined) return this.#notFound(s.peer, msg.requestId, msg.jobId);
        return s.peer.send({ type: 'REPLY', requestId: msg.requestId, body: this.jobInfo(job) });
      }
      case 'CANCEL':
        return this.#cancel(s.peer, msg.requestId, msg.jobId);
      case 'LIST':
        return s.peer.send({ type: 'REPLY', requestId: msg.requestId, body: this.list(msg.state, msg.kind, msg.limit) });
      case 'WORKERS':
        return s.peer.send({ type: 'REPLY', requestId: msg.requestId, body: this.workersInfo() });
      case 'STATS':
        return s.peer.send({ type: 'REPLY', requestId: msg.requestId, body: this.stats() });
      case 'COMPACT': {
        const compact = this.#opts.compact;
        if (compact === undefined) {
          return this.#error(s.peer, msg.requestId, 'INVALID_STATE', 'this scheduler has no data directory, so no journal to compact');
        }
        compact().then(
          (body) => s.peer.send({ type: 'REPLY', requestId: msg.requestId, body }),
          (err: unknown) => this.#error(s.peer, msg.requestId, 'JOURNAL_UNAVAILABLE', `compaction failed: ${String(err)}`),
        );
        return;
      }
      case 'HEARTBEAT':
      case 'GOODBYE':
        return;
      case 'HELLO':
      case 'WELCOME':
      case 'ERROR':
      case 'ACK':
      case 'EVENT':
      case 'ASSIGN':
      case 'RESULT':
      case 'FAIL':
      case 'PROGRESS':
      case 'ABANDON':
      case 'REPLY':
        throw new TaskwireError('BAD_HANDSHAKE', `${msg.type} is not allowed from a client`);
      default:
        return assertNever(msg);
    }
  }

  /** A message from a worker (after the handshake). Throws TaskwireError for role violations. */
  handleWorker(w: WorkerSession, msg: Message): void {
    switch (msg.type) {
      case 'RESULT': {
        this.#answered(w);
        const job = this.jobs.get(msg.jobId);
        if (job !== undefined && job.state === 'RUNNING' && job.worker === w && job.attempts === msg.attempt) {
          w.running.delete(job);
          w.done++;
          this.#finish(job, 'DONE', Buffer.from(msg.result));
        } else {
          if (this.#debug) this.#log('debug', `ignored late result for job ${msg.jobId} attempt ${msg.attempt} from ${w.name}`);
        }
        this.#dispatchWorker(w);
        return;
      }
      case 'FAIL': {
        this.#answered(w);
        const job = this.jobs.get(msg.jobId);
        if (job !== undefined && job.state === 'RUNNING' && job.worker === w && job.attempts === msg.attempt) {
          w.running.delete(job);
          w.failed++;
          this.#attemptFailed(job, msg.message, msg.permanent);
        } else {
          if (this.#debug) this.#log('debug', `ignored late failure of job ${msg.jobId} attempt ${msg.attempt} from ${w.name}`);
        }
        this.#dispatchWorker(w);
        return;
      }
      case 'PROGRESS': {
        const job = this.jobs.get(msg.jobId);
        if (job === undefined || job.state !== 'RUNNING' || job.worker !== w || job.attempts !== msg.attempt) return;
        this.#notifyProgress(job, msg.pct, msg.message);
        return;
      }
      case 'HEARTBEAT':
        w.reportedLoad = msg.running;
        w.lastHeartbeatAt = this.#now();
        return;
      case 'GOODBYE':
        w.draining = true;
        this.#log('info', `worker ${w.name} draining${msg.reason ? `: ${msg.reason}` : ''}`);
        return;
      case 'STATUS':
      case 'STATS':
      case 'WORKERS':
      case 'LIST':
        // Read-only admin requests are harmless from a worker.
        this.handleClient(new ClientSession(w.id, w.name, w.peer), msg);
        return;
      case 'SUBMIT':
      case 'WATCH':
      case 'CANCEL':
      case 'COMPACT':
      case 'HELLO':
      case 'WELCOME':
      case 'ERROR':
      case 'ACK':
      case 'EVENT':
      case 'ASSIGN':
      case 'ABANDON':
      case 'REPLY':
        throw new TaskwireError('BAD_HANDSHAKE', `${msg.type} is not allowed from a worker`);
      default:
        return assertNever(msg);
    }
  }

  #answered(w: WorkerSession): void {
    // A worker answers every ASSIGN exactly once (PROTOCOL.md §5); clamp against a buggy one.
    if (w.outstanding > 0) w.outstanding--;
  }

  // -------------------------------------------------------------------------
  // Submit and dispatch

  #submit(s: ClientSession, m: SubmitMessage): void {
    if (m.kind === '') return this.#error(s.peer, m.requestId, 'INVALID_ARGUMENT', 'kind must not be empty');
    if (m.key !== '') {
      const existing = this.#keys.get(m.key);
      if (existing !== undefined && existing.state === 'PENDING' && this.#journal !== undefined) {
        // Its record is not durable yet: ACK only once it is. Callbacks run in append order, so this
        // one (a duplicate record; replay ignores it) runs after the first, which decides the job's fate.
        this.#journal.append(this.#submitRecord(existing), () => {
          if (this.jobs.get(existing.id) !== existing || existing.state === 'PENDING') {
            return this.#error(s.peer, m.requestId, 'JOURNAL_UNAVAILABLE', 'job not accepted, the journal could not store it');
          }
          s.peer.send({ type: 'ACK', requestId: m.requestId, jobId: existing.id, existing: true });
          if (m.wait) this.#addWaiter(existing, s, m.progress);
        });
        return;
      }
      if (existing !== undefined) {
        s.peer.send({ type: 'ACK', requestId: m.requestId, jobId: existing.id, existing: true });
        if (m.wait) this.#addWaiter(existing, s, m.progress);
        return;
      }
    }
    if (this.#queued >= this.#maxQueued) {
      return this.#error(s.peer, m.requestId, 'BUSY', `queue full: ${this.#queued} jobs queued (max ${this.#maxQueued})`);
    }
    const now = this.#now();
    const kind = this.#kind(m.kind);
    const job = new Job(
      this.#nextId++,
      kind,
      m.args.length === 0 ? '' : m.args.toString('latin1'), // a copy: the frame is a view of the socket chunk
      m.priority,
      m.timeoutMs === 0 ? this.#defaultTimeoutMs : m.timeoutMs,
      m.maxRetries === DEFAULT_RETRIES ? this.#defaultRetries : m.maxRetries,
      m.estMs,
      m.delayMs === 0 ? 0 : now + m.delayMs,
      m.key,
      now,
    );
    this.jobs.set(job.id, job);
    if (m.key !== '') this.#keys.set(m.key, job);
    if (m.wait) this.#addWaiter(job, s, m.progress);
    kind.submitted++;
    kind.queued++;
    this.#submitted++;
    this.#queued++;
    const journal = this.#journal;
    if (journal === undefined) {
      // ASSIGN first, so the worker starts one write sooner (docs/PERFORMANCE.md); the ACK is still
      // flushed in this tick, long before the job's EVENT can exist.
      this.#makeRunnable(job, now);
      s.peer.send({ type: 'ACK', requestId: m.requestId, jobId: job.id, existing: false });
      return;
    }
    // DESIGN.md "Durability": acknowledged only once the record is durable.
    job.state = 'PENDING';
    journal.append(this.#submitRecord(job), (err) => {
      if (job.state !== 'PENDING') return;
      if (err !== null) {
        this.jobs.delete(job.id);
        if (job.key !== '' && this.#keys.get(job.key) === job) this.#keys.delete(job.key);
        kind.queued--;
        kind.submitted--;
        this.#queued--;
        this.#log('error', `job ${job.id} not accepted: ${err.message}`);
        this.#error(s.peer, m.requestId, 'JOURNAL_UNAVAILABLE', `job not accepted, the journal could not store it: ${err.message}`);
        return;
      }
      job.state = 'QUEUED';
      s.peer.send({ type: 'ACK', requestId: m.requestId, jobId: job.id, existing: false });
      this.#makeRunnable(job, this.#now());
    });
  }

  /** A QUEUED job enters its kind's heap, or the delay heap if not yet due. */
  #makeRunnable(job: Job, now: number): void {
    if (this.#debug) this.#log('debug', `job ${job.id} ${job.kind.name} QUEUED`);
    if (job.notBefore > now) {
      this.#delayed.push(job);
      return;
    }
    job.kind.heap.push(job);
    this.#dispatchKind(job.kind);
  }

  #hasCredit(w: WorkerSession): boolean {
    return !w.draining && w.outstanding < w.concurrency && w.peer.writableLength < this.#workerHighWaterBytes;
  }

  /** Assigns runnable jobs of one kind while some worker of it has credit. */
  #dispatchKind(k: KindQueue): void {
    const workers = k.workers;
    const n = workers.length;
    if (n === 0) return;
    while (k.heap.size > 0) {
      let chosen: WorkerSession | undefined;
      for (let i = 0; i < n; i++) {
        const w = workers[(k.cursor + i) % n]!;
        if (this.#hasCredit(w)) {
          chosen = w;
          k.cursor = (k.cursor + i + 1) % n;
          break;
        }
      }
      if (chosen === undefined) return;
      const job = this.#popRunnable(k);
      if (job === undefined) return;
      this.#assign(job, chosen);
    }
  }

  /** Fills one worker's free credit with the best jobs among its kinds. */
  #dispatchWorker(w: WorkerSession): void {
    const kinds = w.kinds;
    while (this.#hasCredit(w)) {
      let best: Job | undefined;
      for (let i = 0; i < kinds.length; i++) {
        const head = this.#peekRunnable(kinds[i]!);
        if (head !== undefined && (best === undefined || runsBefore(head, best))) best = head;
      }
      if (best === undefined) return;
      best.kind.heap.pop();
      this.#assign(best, w);
    }
  }

  #peekRunnable(k: KindQueue): Job | undefined {
    for (;;) {
      const head = k.heap.peek();
      if (head === undefined || head.state === 'QUEUED') return head;
      k.heap.pop(); // cancelled while queued: removed lazily
    }
  }

  #popRunnable(k: KindQueue): Job | undefined {
    const job = this.#peekRunnable(k);
    if (job !== undefined) k.heap.pop();
    return job;
  }

  #assign(job: Job, w: WorkerSession): void {
    const kind = job.kind;
    job.state = 'RUNNING';
    job.attempts++;
    job.worker = w;
    job.startedAt = this.#now();
    kind.queued--;
    kind.running++;
    this.#queued--;
    this.#running++;
    w.outstanding++;
    w.running.add(job);
    w.peer.send({
      type: 'ASSIGN',
      jobId: job.id,
      attempt: job.attempts,
      timeoutMs: job.timeoutMs,
      kind: kind.name,
      args: job.args.length === 0 ? EMPTY : Buffer.from(job.args, 'latin1'),
    });
    if (this.#debug) this.#log('debug', `job ${job.id} RUNNING on ${w.name} (attempt ${job.attempts})`);
  }

  // -------------------------------------------------------------------------
  // Outcomes

  /** The current attempt failed (error, timeout or lost worker): retry with backoff, or fail for good. */
  #attemptFailed(job: Job, reason: string, permanent: boolean): void {
    const kind = job.kind;
    kind.running--;
    this.#running--;
    if (permanent || job.attempts > job.maxRetries) {
      this.#finish(job, 'FAILED', reason, permanent, true);
      return;
    }
    const now = this.#now();
    const delay = backoffDelay(job.attempts - 1, { baseMs: this.#retryBaseMs, maxMs: this.#retryMaxMs, random: this.#random });
    job.state = 'QUEUED';
    job.flags |= RETRY_FLAG;
    job.notBefore = now + delay;
    kind.queued++;
    this.#queued++;
    this.#delayed.push(job);
    this.#journal?.append(
      { type: 'retry', id: job.id, attempts: job.attempts, notBefore: this.epoch + job.notBefore, error: reason },
      this.#logJournalError,
    );
    this.#log('info', `job ${job.id} attempt ${job.attempts} failed (${reason}); retry in ${delay} ms`);
  }

  readonly #logJournalError = (err: Error | null): void => {
    if (err !== null) this.#log('error', `journal write failed: ${err.message}`);
  };

  /**
   * Moves a job to a final state. `wasCounted`: the job was RUNNING and
   * `#attemptFailed` already took it off the running counters.
   */
  #finish(job: Job, state: 'DONE' | 'FAILED' | 'CANCELLED', outcome: Buffer | string | null, permanent = false, wasCounted = false): void {
    const kind = job.kind;
    if (job.state === 'RUNNING' && !wasCounted) {
      kind.running--;
      this.#running--;
    } else if (job.state === 'QUEUED' || job.state === 'PENDING') {
      kind.queued--;
      this.#queued--;
    }
    job.state = state;
    job.outcome = outcome;
    // Finished jobs are retained for lookup (100,000 by default): without their arguments, that
    // memory does not grow with the payload size (docs/PERFORMANCE.md).
    job.args = '';
    job.finishedAt = this.#now();
    if (permanent) job.flags |= PERMANENT_FLAG;
    if (state === 'DONE') kind.done++;
    else if (state === 'FAILED') kind.failed++;
    else kind.cancelled++;
    this.#retained.push(job);
    if (state === 'FAILED') this.#log('info', `job ${job.id} FAILED after ${job.attempts} attempt(s): ${String(outcome)}`);
    else if (this.#debug) this.#log('debug', `job ${job.id} ${state}`);
    const journal = this.#journal;
    if (journal === undefined) {
      this.#notifyFinal(job, permanent);
    } else {
      // Tell waiters only once the outcome is durable, so a crash cannot un-finish a job they saw finish.
      journal.append(this.#finalRecord(job, permanent), (err) => {
        if (err !== null) this.#logJournalError(err);
        this.#notifyFinal(job, permanent);
      });
    }
    this.#evict(job.finishedAt);
  }

  #notifyFinal(job: Job, permanent: boolean): void {
    const waiters = job.waiters;
    if (waiters === null) return;
    job.waiters = null;
    if (waiters instanceof ClientSession) {
      this.#sendFinal(waiters, job, permanent);
    } else {
      for (const s of waiters) this.#sendFinal(s, job, permanent);
    }
  }

  #sendFinal(s: ClientSession, job: Job, permanent: boolean): void {
    if (s.closed) return;
    s.progressJobs?.delete(job.id);
    s.peer.send(this.#finalEvent(job, permanent));
  }

  #finalEvent(job: Job, permanent: boolean): Message {
    const event: JobEvent = job.state === 'DONE' ? 'done' : job.state === 'FAILED' ? 'failed' : 'cancelled';
    const o = job.outcome;
    const data = o === null ? EMPTY : typeof o === 'string' ? Buffer.from(o) : o;
    return { type: 'EVENT', jobId: job.id, event, attempt: job.attempts, pct: 0, permanent, data };
  }

  #notifyProgress(job: Job, pct: number, message: string): void {
    const waiters = job.waiters;
    if (waiters === null) return;
    const list = waiters instanceof ClientSession ? [waiters] : waiters;
    for (const s of list) {
      if (s.closed || s.progressJobs === null || !s.progressJobs.has(job.id)) continue;
      s.peer.send({
        type: 'EVENT',
        jobId: job.id,
        event: 'progress',
        attempt: job.attempts,
        pct: Math.min(255, pct),
        permanent: false,
        data: Buffer.from(message),
      });
    }
  }

  #addWaiter(job: Job, s: ClientSession, progress: boolean): void {
    if (job.state === 'DONE' || job.state === 'FAILED' || job.state === 'CANCELLED') {
      // Already finished: answer at once (after the ACK, which the caller sent first).
      s.peer.send(this.#finalEvent(job, job.state === 'FAILED' && this.#wasPermanent(job)));
      return;
    }
    if (progress) (s.progressJobs ??= new Set()).add(job.id);
    const w = job.waiters;
    if (w === null) job.waiters = s;
    else if (w instanceof ClientSession) job.waiters = w === s ? w : [w, s];
    else if (!w.includes(s)) w.push(s);
  }

  #wasPermanent(job: Job): boolean {
    return (job.flags & PERMANENT_FLAG) !== 0;
  }

  #watch(s: ClientSession, requestId: number, jobId: number, progress: boolean): void {
    const job = this.jobs.get(jobId);
    if (job === undefined) return this.#notFound(s.peer, requestId, jobId);
    s.peer.send({ type: 'ACK', requestId, jobId, existing: true });
    this.#addWaiter(job, s, progress);
  }

  #cancel(peer: Peer, requestId: number, jobId: number): void {
    const job = this.jobs.get(jobId);
    // A PENDING job has not been acknowledged to anyone yet: it cannot be cancelled (its SUBMIT must get its ACK).
    if (job === undefined || job.state === 'PENDING') return this.#notFound(peer, requestId, jobId);
    if (job.state === 'DONE' || job.state === 'FAILED' || job.state === 'CANCELLED') {
      return this.#error(peer, requestId, 'INVALID_STATE', `job ${jobId} is already ${job.state}`);
    }
    if (job.state === 'RUNNING') {
      const w = job.worker!;
      w.running.delete(job);
      w.peer.send({ type: 'ABANDON', jobId: job.id, attempt: job.attempts, reason: 'cancelled' });
    }
    this.#finish(job, 'CANCELLED', null);
    this.#log('info', `job ${job.id} CANCELLED`);
    peer.send({ type: 'REPLY', requestId, body: this.jobInfo(job) });
  }

  #notFound(peer: Peer, requestId: number, jobId: number): void {
    this.#error(peer, requestId, 'NOT_FOUND', `no job ${jobId} (never submitted, or its result has expired)`);
  }

  #error(peer: Peer, requestId: number, code: ErrorCode, message: string): void {
    peer.send({ type: 'ERROR', requestId, code, message });
  }

  // -------------------------------------------------------------------------
  // Time

  /**
   * Advances time: enforces run timeouts, releases delayed jobs and retries
   * whose time has come, expires old finished jobs, samples rates. The server
   * calls it from one timer; tests call it with a fake clock.
   */
  tick(): void {
    const now = this.#now();
    for (const w of this.#workers) {
      if (w.running.size === 0) continue;
      for (const job of w.running) {
        if (now - job.startedAt < job.timeoutMs) continue;
        w.running.delete(job);
        w.peer.send({ type: 'ABANDON', jobId: job.id, attempt: job.attempts, reason: 'timeout' });
        this.#attemptFailed(job, `timeout after ${job.timeoutMs} ms`, false);
      }
    }
    const touched = new Set<KindQueue>();
    for (;;) {
      const head = this.#delayed.peek();
      if (head === undefined || head.notBefore > now) break;
      this.#delayed.pop();
      if (head.state !== 'QUEUED') continue;
      head.kind.heap.push(head);
      touched.add(head.kind);
    }
    for (const k of touched) this.#dispatchKind(k);
    this.#evict(now);
    const dt = now - this.#lastSample;
    if (dt >= 1000) {
      this.#lastSample = now;
      for (const k of this.#kinds.values()) k.sampleRates(dt);
    }
  }

  /** Drops finished jobs beyond the retention count or age (DESIGN.md: memory stays flat). */
  #evict(now: number): void {
    const retained = this.#retained;
    for (;;) {
      const head = retained.peek();
      if (head === undefined) return;
      if (retained.size <= this.#retainCount && now - head.finishedAt < this.#retainMs) return;
      retained.shift();
      this.jobs.delete(head.id);
      if (head.key !== '' && this.#keys.get(head.key) === head) this.#keys.delete(head.key);
    }
  }

  // -------------------------------------------------------------------------
  // Journal replay and snapshots

  /** Applies one replayed journal record. Idempotent: records may repeat after a compaction. */
  replay(r: JournalRecord): void {
    switch (r.type) {
      case 'submit': {
        if (r.id >= this.#nextId) this.#nextId = r.id + 1;
        if (this.jobs.has(r.id)) return;
        const kind = this.#kind(r.kind);
        const job = new Job(
          r.id,
          kind,
          r.args.toString('latin1'),
          r.priority,
          r.timeoutMs,
          r.maxRetries,
          r.estMs,
          r.notBefore === 0 ? 0 : r.notBefore - this.epoch,
          r.key,
          r.createdAt - this.epoch,
        );
        job.state = 'PENDING'; // becomes QUEUED in finishReplay
        this.jobs.set(job.id, job);
        if (r.key !== '') this.#keys.set(r.key, job);
        kind.submitted++;
        return;
      }
      case 'retry': {
        const job = this.jobs.get(r.id);
        if (job === undefined || job.state !== 'PENDING') return;
        job.attempts = Math.max(job.attempts, r.attempts);
        job.flags |= RETRY_FLAG;
        job.notBefore = r.notBefore === 0 ? 0 : r.notBefore - this.epoch;
        return;
      }
      case 'done':
      case 'failed':
      case 'cancelled': {
        const job = this.jobs.get(r.id);
        if (job === undefined || job.state !== 'PENDING') return;
        const kind = job.kind;
        job.args = ''; // as in #finish: a finished job keeps its result, not its input
        job.finishedAt = r.finishedAt - this.epoch;
        if (r.type !== 'cancelled') job.run!.workerName = r.worker;
        if (r.type === 'done') {
          job.state = 'DONE';
          job.attempts = r.attempts;
          job.outcome = Buffer.from(r.result); // a copy: replayed buffers are views of a read buffer
          kind.done++;
        } else if (r.type === 'failed') {
          job.state = 'FAILED';
          job.attempts = r.attempts;
          job.outcome = r.error;
          if (r.permanent) job.flags |= PERMANENT_FLAG;
          kind.failed++;
        } else {
          job.state = 'CANCELLED';
          kind.cancelled++;
        }
        this.#retained.push(job);
        return;
      }
      case 'meta':
        if (r.nextId > this.#nextId) this.#nextId = r.nextId;
        return;
      default:
        return assertNever(r);
    }
  }

  /**
   * Ends replay: jobs that were queued or running at the crash are queued
   * again (a running one as a new attempt), in their order.
   */
  finishReplay(): { queued: number; finished: number } {
    const now = this.#now();
    let queued = 0;
    for (const job of this.jobs.values()) {
      if (job.state !== 'PENDING') continue;
      job.state = 'QUEUED';
      job.kind.queued++;
      this.#queued++;
      queued++;
      if (job.notBefore > now) this.#delayed.push(job);
      else job.kind.heap.push(job);
    }
    this.#evict(now);
    return { queued, finished: this.#retained.size };
  }

  /** Records describing the live state, for compaction; consumed synchronously. */
  *snapshot(): Generator<JournalRecord> {
    // Ids stay unique across restarts even when every job was dropped (issue 4).
    yield { type: 'meta', nextId: this.#nextId };
    for (const job of this.jobs.values()) {
      yield this.#submitRecord(job);
      if (job.state === 'DONE' || job.state === 'FAILED' || job.state === 'CANCELLED') {
        yield this.#finalRecord(job, this.#wasPermanent(job));
      } else if (job.attempts > 0) {
        yield {
          type: 'retry',
          id: job.id,
          attempts: job.attempts,
          notBefore: job.state === 'QUEUED' && job.notBefore > 0 ? this.epoch + job.notBefore : 0,
          error: '',
        };
      }
    }
  }

  #submitRecord(job: Job): JournalRecord {
    return {
      type: 'submit',
      id: job.id,
      kind: job.kind.name,
      args: Buffer.from(job.args, 'latin1'),
      priority: job.priority,
      timeoutMs: job.timeoutMs,
      maxRetries: job.maxRetries,
      estMs: job.estMs,
      notBefore: job.notBefore === 0 ? 0 : this.epoch + job.notBefore,
      key: job.key,
      createdAt: this.epoch + job.createdAt,
    };
  }

  #finalRecord(job: Job, permanent: boolean): JournalRecord {
    const finishedAt = this.epoch + job.finishedAt;
    const worker = job.run?.workerName ?? '';
    if (job.state === 'DONE') {
      const o = job.outcome;
      return { type: 'done', id: job.id, attempts: job.attempts, result: Buffer.isBuffer(o) ? o : EMPTY, finishedAt, worker };
    }
    if (job.state === 'FAILED') {
      return { type: 'failed', id: job.id, attempts: job.attempts, error: String(job.outcome ?? ''), permanent, finishedAt, worker };
    }
    return { type: 'cancelled', id: job.id, finishedAt };
  }

  // -------------------------------------------------------------------------
  // Reports

  jobInfo(job: Job): JobInfo {
    const state: JobState = job.state === 'PENDING' ? 'QUEUED' : job.state;
    const info: JobInfo = {
      id: job.id,
      kind: job.kind.name,
      state,
      priority: job.priority,
      attempts: job.attempts,
      maxRetries: job.maxRetries,
      timeoutMs: job.timeoutMs,
      createdAt: this.epoch + job.createdAt,
    };
    if (job.attempts > 0 && job.state !== 'QUEUED') info.startedAt = this.epoch + job.startedAt;
    if (job.state === 'DONE' || job.state === 'FAILED' || job.state === 'CANCELLED') {
      info.finishedAt = this.epoch + job.finishedAt;
    }
    if (job.run !== null && job.run.workerName !== '') info.worker = job.run.workerName;
    const o = job.outcome;
    if (job.state === 'DONE' && Buffer.isBuffer(o)) info.result = o.toString('utf8');
    if (job.state === 'FAILED' && typeof o === 'string') info.error = o;
    if (job.key !== '') info.key = job.key;
    if (job.state === 'QUEUED' && job.notBefore > this.#now()) info.notBefore = this.epoch + job.notBefore;
    return info;
  }

  list(state: JobState | '', kind: string, limit: number): JobInfo[] {
    const max = limit === 0 ? 100 : limit;
    const out: JobInfo[] = [];
    for (const job of this.jobs.values()) {
      if (out.length >= max) break;
      const s = job.state === 'PENDING' ? 'QUEUED' : job.state;
      if (state !== '' && s !== state) continue;
      if (kind !== '' && job.kind.name !== kind) continue;
      out.push(this.jobInfo(job));
    }
    return out;
  }

  workersInfo(): WorkerInfo[] {
    return [...this.#workers].map((w) => ({
      id: w.id,
      name: w.name,
      capabilities: w.kinds.map((k) => k.name),
      concurrency: w.concurrency,
      running: w.outstanding,
      draining: w.draining,
      connectedAt: this.epoch + w.connectedAt,
      lastHeartbeatAt: this.epoch + w.lastHeartbeatAt,
      done: w.done,
      failed: w.failed,
    }));
  }

  stats(): StatsInfo {
    const now = this.#now();
    const kinds: Record<string, KindStats> = {};
    for (const k of this.#kinds.values()) {
      let oldest = Infinity;
      for (const job of k.heap.values()) {
        if (job.state === 'QUEUED' && job.createdAt < oldest) oldest = job.createdAt;
      }
      kinds[k.name] = {
        queued: k.queued,
        running: k.running,
        done: k.done,
        failed: k.failed,
        cancelled: k.cancelled,
        oldestQueuedMs: oldest === Infinity ? 0 : now - oldest,
        donePerSec: Math.round(k.donePerSec),
        submittedPerSec: Math.round(k.submittedPerSec),
      };
    }
    return {
      uptimeMs: now,
      serverVersion: this.#serverVersion,
      connections: { clients: this.#clients, workers: this.#workers.size },
      totals: { queued: this.#queued, running: this.#running, retained: this.#retained.size, submitted: this.#submitted },
      kinds,
      journal: this.#opts.journalStats?.() ?? null,
    };
  }
}
