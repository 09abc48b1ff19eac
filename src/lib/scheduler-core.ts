/**
 * The scheduler's decisions, with no sockets and no timers (STYLE.md "State
 * and time"): it is handed messages and the current time (an injectable
 * clock), and answers by calling `send` on the peers it was given. Queueing
 * order, routing, credits, timeouts, retries, fencing, cancellation,
 * retention and journal replay all live here and are unit-tested without I/O.
 */
import { ANYONE, mayRequest, type Principal } from './auth/credentials.js';
import { backoffDelay } from './backoff.js';
import { TaskwireError, type ErrorCode } from './errors.js';
import type { JournalRecord } from './journal-records.js';
import {
  assertNever,
  DEFAULT_MAX_PAYLOAD,
  LIST_MAX_LIMIT,
  MAX_STR8_BYTES,
  type HelloMessage,
  type AdminMessage,
  type ListMessage,
  type LimitStats,
  type ListPage,
  type JobEvent,
  type JobInfo,
  type AttemptInfo,
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
import {
  argsBuffer,
  ClientSession,
  DELAYED_FLAG,
  EMPTY,
  FINISHING_FLAG,
  HISTORY_ERROR_CHARS,
  isFinal,
  Job,
  JobRun,
  KindQueue,
  LIST_ERROR_CHARS,
  MAX_HISTORY,
  ownArgs,
  PERMANENT_FLAG,
  PREFETCHED_FLAG,
  RETRY_FLAG,
  runsBefore,
  specOf,
  visibleState,
  WorkerSession,
  type CoreObserver,
  type JobSpec,
  type Peer,
  type Session,
} from './core/model.js';

// The data model's public names, for the importers of this module.
export {
  argsBuffer,
  ClientSession,
  DURATION_BUCKETS_S,
  DurationHistogram,
  Job,
  JobRun,
  KindQueue,
  runsBefore,
  WorkerSession,
} from './core/model.js';
export type { CoreObserver, JobExtra, JobSpec, Peer, Session } from './core/model.js';

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
  /**
   * Monotonic clock, ms, for every duration (timeouts, delays, backoff,
   * heartbeat ages): DESIGN.md rule 3. Default `performance.now`.
   */
  now?: () => number;
  /** Wall clock, ms: only for times shown to people and written to the journal. Default Date.now. */
  wallNow?: () => number;
  /** Distinct job kinds at most (queued, running or declared by a worker); past it SUBMIT/HELLO get LIMIT_EXCEEDED. Default 10,000. */
  maxKinds?: number;
  /** Largest frame payload peers accept (WELCOME announces it); a SUBMIT whose ASSIGN would exceed it gets TOO_LARGE. Default 16 MiB. */
  maxPayloadBytes?: number;
  /** Job ids one LIST request looks at, at most (it then answers with a cursor). Default 100,000. */
  listScanIds?: number;
  /** First retry delay of a final record the journal failed to store; doubles up to 5 s. Default 100 ms. */
  storeRetryMs?: number;
  /** Runs `fn` soon, after pending I/O (long operations such as a purge go in slices). Default setImmediate. */
  defer?: (fn: () => void) => void;
  /** Told of every visible change (HTTP live events). */
  observer?: CoreObserver;
  /** Jobs one client connection may wait on (SUBMIT wait, WATCH); past it LIMIT_EXCEEDED. Default 100,000. */
  maxWaits?: number;
  /** The server's connection limits for STATS. */
  limitStats?: () => LimitStats;
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

/** A SUBMIT that reused the key of a job whose own submit is not durable yet: answered with it. */
interface KeyWaiter {
  s: ClientSession;
  requestId: number;
  wait: boolean;
  progress: boolean;
}

/** Most jobs a worker may take beyond its concurrency, whatever it asks. */
const MAX_PREFETCH = 1024;
/** Work sent ahead to a worker, in ms of its jobs' run time (see #observeRun). */
const PREFETCH_AHEAD_MS = 10;
/** Bytes of an ASSIGN payload besides the kind and the args (protocol.ts hotFrameBytes). */
const ASSIGN_FIXED_BYTES = 17 + 1;
/** Bytes of an EVENT payload besides the data. */
const EVENT_FIXED_BYTES = 15;
const STORE_RETRY_MAX_MS = 5_000;

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
  /** Later SUBMITs with the key of a PENDING job, answered when its record settles. */
  readonly #keyWaiters = new Map<Job, KeyWaiter[]>();
  readonly #workers = new Set<WorkerSession>();
  /** Client sessions that sent FOLLOW. */
  readonly #followers = new Set<ClientSession>();
  /** Kinds whose run queue may hold runnable jobs (a superset: emptied kinds leave it lazily). */
  readonly #runnable = new Set<KindQueue>();
  /** FINISHING jobs whose final record failed to store: written again from tick(). */
  #unstored: Job[] = [];
  #storeRetryAt = 0;
  #storeRetryDelay: number;
  /** Bumped when a compaction snapshot starts: which side of it a record was appended on. */
  #journalEpoch = 0;
  /** Set by freeze(): nothing is dispatched, a lost worker's jobs are not charged. */
  #frozen = false;
  /**
   * Moves whenever a worker is left with credit it could not use (#dispatchWorker found nothing
   * runnable for it) or credit comes back to all (thaw): see KindQueue.saturatedAt. Every other
   * way a worker regains credit (an answer, a HELLO) goes through #dispatchWorker.
   */
  #creditEpoch = 0;
  /**
   * Workers with a slot free (`started < concurrency`), in all: at 0 no scan for an idle slot is
   * needed, the first worker with prefetch room takes a job (issue 9: 128 busy workers).
   */
  #idleWorkers = 0;
  #clients = 0;
  #queued = 0;
  /** Jobs whose submit record is not durable yet (invisible, but they count against maxQueued). */
  #pending = 0;
  #running = 0;
  /** Jobs prefetched on some worker (not started). */
  #prefetched = 0;
  #submitted = 0;
  #nextId = 1;
  #lastSample: number;
  /** Wall-clock ms at the core's start: relative time t is wall time `epoch + t`. */
  readonly epoch: number;
  /** Monotonic clock reading at the core's start. */
  readonly #monoEpoch: number;

  readonly #defaultTimeoutMs: number;
  readonly #defaultRetries: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #maxQueued: number;
  readonly #retainCount: number;
  readonly #retainMs: number;
  readonly #workerHighWaterBytes: number;
  readonly #maxKinds: number;
  readonly #maxPayloadBytes: number;
  readonly #listScanIds: number;
  readonly #storeRetryMs: number;
  readonly #maxWaits: number;
  /** The spec of a job that says neither timeout nor estimate (most): no lookup per submit. */
  readonly #defaultSpec: JobSpec;
  readonly #serverVersion: string;
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #journal: JournalPort | undefined;
  readonly #defer: (fn: () => void) => void;
  readonly #observer: CoreObserver | undefined;
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
    this.#maxKinds = opts.maxKinds ?? 10_000;
    this.#maxPayloadBytes = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD;
    this.#listScanIds = opts.listScanIds ?? 100_000;
    this.#storeRetryMs = opts.storeRetryMs ?? 100;
    this.#maxWaits = opts.maxWaits ?? 100_000;
    this.#defaultSpec = specOf(this.#defaultTimeoutMs, 0);
    this.#storeRetryDelay = this.#storeRetryMs;
    this.#serverVersion = opts.serverVersion ?? '0.0.0';
    this.#clock = opts.now ?? (() => performance.now());
    this.#cacheClock = opts.now === undefined;
    this.#random = opts.random ?? Math.random;
    this.#journal = opts.journal;
    this.#defer = opts.defer ?? ((fn) => void setImmediate(fn));
    this.#observer = opts.observer;
    this.#debug = opts.debug ?? false;
    this.epoch = Math.floor((opts.wallNow ?? Date.now)());
    this.#monoEpoch = this.#clock();
    this.#lastSample = 0;
  }

  /**
   * Current time, whole ms since the core started (monotonic; small integers, not boxed doubles).
   * With the default clock it is read once per event-loop callback (issue 9: a job used to read
   * it four times): the reading is kept until the microtask queue next drains, i.e. while the
   * synchronous work of one socket read, timer or immediate runs. An injected clock is read
   * every time (tests move it between calls).
   */
  #now(): number {
    if (this.#turnNow >= 0) return this.#turnNow;
    const t = Math.floor(this.#clock() - this.#monoEpoch);
    if (this.#cacheClock) {
      this.#turnNow = t;
      queueMicrotask(this.#forgetNow);
    }
    return t;
  }
  #turnNow = -1;
  readonly #cacheClock: boolean;
  readonly #forgetNow = (): void => {
    this.#turnNow = -1;
  };

  #log(level: 'error' | 'info' | 'debug', line: string): void {
    this.#opts.log?.(level, line);
  }

  /** The queue of a kind, created on first use; LIMIT_EXCEEDED past maxKinds (DESIGN.md rule 3). */
  #kind(name: string): KindQueue {
    let k = this.#kinds.get(name);
    if (k === undefined) {
      if (this.#kinds.size >= this.#maxKinds) {
        throw new TaskwireError('LIMIT_EXCEEDED', `too many job kinds: ${this.#kinds.size} exist (max ${this.#maxKinds}); kinds with no jobs and no workers are forgotten`);
      }
      k = new KindQueue(name);
      this.#kinds.set(name, k);
    }
    return k;
  }

  /** Forgets a kind that has no job and no worker left, so the kind table cannot only grow. */
  #maybeForget(k: KindQueue): void {
    if (k.live === 0 && k.workers.length === 0 && !k.paused && this.#kinds.get(k.name) === k) {
      this.#kinds.delete(k.name);
      this.#runnable.delete(k); // (bounded by the kinds that exist)
      k.runnable = false;
    }
  }

  /** Number of QUEUED jobs (durable ones: what STATS shows). */
  get queuedCount(): number {
    return this.#queued;
  }

  /** Every kind known now, with its counters and histograms (metrics; read only). */
  kinds(): IterableIterator<KindQueue> {
    return this.#kinds.values();
  }

  /** Totals across kinds (metrics): QUEUED and RUNNING jobs, finished jobs retained, clients connected. */
  get totals(): { queued: number; running: number; retained: number; submitted: number; clients: number; workers: number } {
    return { queued: this.#queued, running: this.#running, retained: this.#retained.size, submitted: this.#submitted, clients: this.#clients, workers: this.#workers.size };
  }

  /** Connected workers (metrics; read only). */
  workerSessions(): IterableIterator<WorkerSession> {
    return this.#workers.values();
  }

  /** Number of distinct kinds known now. */
  get kindCount(): number {
    return this.#kinds.size;
  }

  /** Attempts workers hold now (running or winding down after an ABANDON). */
  get heldCount(): number {
    let n = 0;
    for (const w of this.#workers) n += w.held.size;
    return n;
  }

  /** Final records not yet durable (FINISHING jobs), including those waiting for a retry of the write. */
  get unstoredCount(): number {
    return this.#unstored.length;
  }

  // -------------------------------------------------------------------------
  // Sessions

  openClient(id: string, name: string, peer: Peer, principal: Principal = ANYONE): ClientSession {
    this.#clients++;
    return new ClientSession(id, name, peer, principal);
  }

  /** A worker completed its handshake. Throws LIMIT_EXCEEDED when its kinds do not fit the kind table. */
  openWorker(id: string, hello: HelloMessage, peer: Peer, beforeDispatch?: () => void, principal: Principal = ANYONE): WorkerSession {
    const names = [...new Set(hello.capabilities)];
    const fresh = names.filter((n) => !this.#kinds.has(n)).length;
    if (this.#kinds.size + fresh > this.#maxKinds) {
      throw new TaskwireError('LIMIT_EXCEEDED', `too many job kinds: ${this.#kinds.size} exist, this worker adds ${fresh} (max ${this.#maxKinds})`);
    }
    const kinds = names.map((k) => this.#kind(k));
    const w = new WorkerSession(id, hello.name, peer, kinds, hello.concurrency, this.#now());
    w.prefetch = Math.min(hello.prefetch ?? 0, MAX_PREFETCH);
    w.prefetchNow = w.prefetch; // until its jobs' run time is known (then #observeRun sizes it)
    w.principal = principal;
    w.pool = (hello.pool ?? '').slice(0, 200);
    w.host = (hello.host ?? '').slice(0, 200);
    for (const k of kinds) k.workers.push(w);
    this.#workers.add(w);
    if (w.concurrency > 0) this.#idleWorkers++;
    beforeDispatch?.(); // the WELCOME goes out before the first ASSIGN
    this.#observer?.worker('joined', w.id, w.name);
    this.#dispatchWorker(w);
    return w;
  }

  /**
   * A connection is gone (failed, ended, half-closed or closed): the core
   * hears it at once (DESIGN.md rule 2). A client is taken off every job it
   * waits on. A lost worker counts as a failed attempt of every job it held
   * (DESIGN.md "Heartbeats"), so a job that kills workers ends FAILED —
   * except after freeze(), when a stopping scheduler re-queues them uncharged.
   */
  closeSession(s: Session, reason: string): void {
    if (s.closed) return;
    s.closed = true;
    if (s instanceof ClientSession) {
      this.#clients--;
      this.#followers.delete(s);
      for (const job of s.waits) this.#removeWaiter(job, s);
      s.waits.clear();
      s.progressJobs = null;
      return;
    }
    this.#workers.delete(s);
    this.#observer?.worker('left', s.id, s.name);
    for (const k of s.kinds) {
      const i = k.workers.indexOf(s);
      if (i >= 0) k.workers.splice(i, 1);
    }
    const lost = [...s.running];
    s.running.clear();
    s.held.clear();
    if (s.started < s.concurrency) this.#idleWorkers--;
    s.started = 0;
    s.prefetchQueue = [];
    s.prefetchHead = s.prefetchTail = 0;
    let requeued = false;
    for (const job of lost) {
      // A prefetched job never started there: queued again, no attempt charged.
      if (this.#frozen || (job.flags & PREFETCHED_FLAG) !== 0) {
        this.#requeueUncharged(job);
        requeued = true;
      } else {
        job.kind.attemptsFailedLost++;
        this.#attemptFailed(job, `worker ${s.name} lost: ${reason}`, false);
      }
    }
    // Re-queued jobs go to the other workers now, not at the next event.
    if (requeued && !this.#frozen) for (const k of s.kinds) this.#dispatchKind(k);
    for (const k of s.kinds) this.#maybeForget(k);
  }

  /** A message from a client (after the handshake). Throws TaskwireError for role violations. */
  handleClient(s: ClientSession, msg: Message): void {
    if (!s.principal.all && !mayRequest(s.principal, 'client', msg.type)) return this.#forbidden(s.peer, msg);
    switch (msg.type) {
      case 'SUBMIT':
        return this.#submit(s, msg);
      case 'WATCH':
        return this.#watch(s, msg.requestId, msg.jobId, msg.progress);
      case 'STATUS': {
        const job = this.#visible(msg.jobId, s.principal);
        if (job === undefined) return this.#notFound(s.peer, msg.requestId, msg.jobId);
        return s.peer.send(this.#statusReply(msg.requestId, job));
      }
      case 'CANCEL':
        return this.#cancel(s.peer, msg.requestId, msg.jobId, s.principal);
      case 'LIST':
        return s.peer.send({ type: 'REPLY', requestId: msg.requestId, body: this.list(msg, s.principal) });
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
      case 'ADMIN':
        return this.#admin(s.peer, msg);
      case 'FOLLOW':
        return this.#follow(s, msg.requestId, msg.kind);
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
      case 'NOTICE':
        throw new TaskwireError('BAD_HANDSHAKE', `${msg.type} is not allowed from a client`);
      default:
        return assertNever(msg);
    }
  }

  /** A message from a worker (after the handshake). Throws TaskwireError for role violations. */
  handleWorker(w: WorkerSession, msg: Message): void {
    switch (msg.type) {
      case 'RESULT': {
        // DESIGN.md rule 2: only an answer for an attempt the worker holds frees a slot.
        if (!this.#release(w, msg.jobId, msg.attempt)) return this.#ignoredAnswer(w, 'result', msg.jobId, msg.attempt);
        const job = this.jobs.get(msg.jobId);
        if (job !== undefined && w.running.has(job) && job.attempts === msg.attempt) {
          w.running.delete(job);
          if (msg.result.length + EVENT_FIXED_BYTES > this.#maxPayloadBytes) {
            w.failed++;
            this.#attemptFailed(job, `result of ${msg.result.length} bytes is too large to deliver (max payload ${this.#maxPayloadBytes})`, true);
          } else {
            w.done++;
            if ((job.flags & PREFETCHED_FLAG) === 0) {
              const ran = this.#now() - job.startedAt;
              job.kind.runTime.observeMs(ran);
              this.#observeRun(w, ran);
            }
            this.#finish(job, 'DONE', Buffer.from(msg.result)); // a copy: the frame is a view of the socket chunk
          }
        }
        this.#dispatchWorker(w);
        return;
      }
      case 'FAIL': {
        if (!this.#release(w, msg.jobId, msg.attempt)) return this.#ignoredAnswer(w, 'failure', msg.jobId, msg.attempt);
        const job = this.jobs.get(msg.jobId);
        if (job !== undefined && w.running.has(job) && job.attempts === msg.attempt) {
          w.running.delete(job);
          if (msg.returned === true) {
            // Given back before it started (a draining worker): queued again, uncharged.
            this.#requeueUncharged(job);
            this.#dispatchKind(job.kind);
          } else {
            w.failed++;
            job.kind.attemptsFailedError++;
            if ((job.flags & PREFETCHED_FLAG) === 0) this.#observeRun(w, this.#now() - job.startedAt);
            this.#attemptFailed(job, msg.message, msg.permanent);
          }
        }
        this.#dispatchWorker(w);
        return;
      }
      case 'PROGRESS': {
        const job = this.jobs.get(msg.jobId);
        if (job === undefined || !w.running.has(job) || job.attempts !== msg.attempt) return;
        this.#notifyProgress(job, msg.pct, msg.message);
        return;
      }
      case 'HEARTBEAT':
        w.reportedLoad = msg.running;
        w.stuck = msg.stuck ?? 0;
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
        // Read-only requests: harmless from a worker without auth; with auth, only an admin's (issue 11).
        if (w.principal !== ANYONE && !mayRequest(w.principal, 'worker', msg.type)) return this.#forbidden(w.peer, msg);
        this.handleClient(new ClientSession(w.id, w.name, w.peer, w.principal), msg);
        return;
      case 'SUBMIT':
      case 'WATCH':
      case 'CANCEL':
      case 'COMPACT':
      case 'ADMIN':
      case 'FOLLOW':
      case 'NOTICE':
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

  /**
   * Frees the worker's credit for (job, attempt) if it holds that attempt;
   * if the attempt had started, its slot too, and the worker starts its next
   * prefetched job (the scheduler mirrors that: PROTOCOL.md §5.4).
   */
  #release(w: WorkerSession, jobId: number, attempt: number): boolean {
    const v = w.held.get(jobId);
    if (v === undefined || Math.floor(v / 2) !== attempt) return false;
    w.held.delete(jobId);
    if (v % 2 === 1) {
      if (w.started-- === w.concurrency) this.#idleWorkers++;
      this.#startNext(w);
    }
    return true;
  }

  /** The worker had a slot free: it starts the oldest prefetched job still assigned to it. */
  #startNext(w: WorkerSession): void {
    const q = w.prefetchQueue;
    while (w.prefetchHead < w.prefetchTail && w.started < w.concurrency) {
      const job = q[w.prefetchHead]!;
      q[w.prefetchHead++] = undefined;
      if (!w.running.has(job) || (job.flags & PREFETCHED_FLAG) === 0) continue; // revoked, cancelled or lost meanwhile
      w.held.set(job.id, job.attempts * 2 + 1);
      if (++w.started === w.concurrency) this.#idleWorkers--;
      this.#started(job, this.#now());
    }
    if (w.prefetchHead === w.prefetchTail) {
      // Empty: start again at 0, keeping the array (no regrowth per batch).
      w.prefetchHead = w.prefetchTail = 0;
    } else if (w.prefetchHead > 1024 && w.prefetchHead * 2 > w.prefetchTail) {
      w.prefetchQueue = q.slice(w.prefetchHead, w.prefetchTail);
      w.prefetchTail -= w.prefetchHead;
      w.prefetchHead = 0;
    }
  }

  /** A job's attempt starts on its worker now: its run timeout and run time count from here. */
  #started(job: Job, now: number): void {
    const kind = job.kind;
    if ((job.flags & PREFETCHED_FLAG) !== 0) {
      job.flags &= ~PREFETCHED_FLAG;
      kind.prefetched--;
      this.#prefetched--;
    }
    job.startedAt = now;
    kind.waitTime.observeMs(now - (job.notBefore > job.createdAt ? job.notBefore : job.createdAt));
    kind.running++;
    this.#running++;
    this.#notify(job, 'RUNNING');
  }

  /**
   * Sizes what the worker gets ahead from how long its jobs run (PROTOCOL.md
   * §5.4): about PREFETCH_AHEAD_MS of work beyond its slots, never more than
   * it declared, at least nothing. Fast jobs get a deep queue (a slot never
   * waits a round trip), slow ones at most one ahead per slot, so a late
   * urgent job waits behind little.
   */
  #observeRun(w: WorkerSession, ranMs: number): void {
    w.avgRunMs = w.avgRunMs < 0 ? ranMs : w.avgRunMs + (ranMs - w.avgRunMs) / 16;
    const ahead = Math.ceil((w.concurrency * PREFETCH_AHEAD_MS) / Math.max(w.avgRunMs, 0.01));
    w.prefetchNow = Math.min(w.prefetch, Math.max(ahead, w.avgRunMs > PREFETCH_AHEAD_MS ? 0 : w.concurrency));
  }

  /** A RUNNING job leaves its worker (outcome, retry, re-queue): off the started or prefetched counters. */
  #unassign(job: Job): void {
    const kind = job.kind;
    if ((job.flags & PREFETCHED_FLAG) !== 0) {
      job.flags &= ~PREFETCHED_FLAG;
      kind.prefetched--;
      this.#prefetched--;
    } else {
      kind.running--;
      this.#running--;
    }
  }

  #ignoredAnswer(w: WorkerSession, what: string, jobId: number, attempt: number): void {
    if (this.#debug) this.#log('debug', `ignored ${what} for job ${jobId} attempt ${attempt} from ${w.name}: not an attempt it holds`);
  }

  /**
   * A job `who` may see: its submit is durable (PENDING jobs answer
   * NOT_FOUND, DESIGN.md rule 1), and it is theirs unless they see all: a
   * job of another credential answers exactly as an id never issued (issue 11).
   */
  #visible(jobId: number, who: Principal = ANYONE): Job | undefined {
    const job = this.jobs.get(jobId);
    if (job === undefined || job.state === 'PENDING') return undefined;
    return who.all || job.owner === who.name ? job : undefined;
  }

  /** A request the connection's credential may not send: FORBIDDEN, the connection stays. */
  #forbidden(peer: Peer, msg: Message): void {
    const requestId = 'requestId' in msg ? msg.requestId : 0;
    if (requestId === 0) throw new TaskwireError('FORBIDDEN', `${msg.type} is not allowed for this credential`);
    this.#error(peer, requestId, 'FORBIDDEN', `${msg.type} is not allowed for this credential`);
  }

  /** Idempotency keys are scoped per credential (issue 11): another's key never returns their job. */
  #keyOf(owner: string, key: string): string {
    return owner === '' ? key : `${owner}\u0000${key}`;
  }

  // -------------------------------------------------------------------------
  // Submit and dispatch

  #submit(s: ClientSession, m: SubmitMessage): void {
    if (m.kind === '') return this.#error(s.peer, m.requestId, 'INVALID_ARGUMENT', 'kind must not be empty');
    if (m.wait && s.waits.size >= this.#maxWaits) return this.#tooManyWaits(s, m.requestId);
    const owner = s.principal.name;
    const scopedKey = m.key === '' ? '' : this.#keyOf(owner, m.key);
    if (m.key !== '') {
      const existing = this.#keys.get(scopedKey);
      if (existing !== undefined && existing.state === 'PENDING') {
        // Its record is not durable yet: answer with it once it is (or with its error). No second record.
        const list = this.#keyWaiters.get(existing);
        const kw = { s, requestId: m.requestId, wait: m.wait, progress: m.progress };
        if (list === undefined) this.#keyWaiters.set(existing, [kw]);
        else list.push(kw);
        return;
      }
      if (existing !== undefined) {
        s.peer.send({ type: 'ACK', requestId: m.requestId, jobId: existing.id, existing: true });
        if (m.wait) this.#addWaiter(existing, s, m.progress);
        return;
      }
    }
    // PROTOCOL.md §5.1: a job whose ASSIGN no worker could receive is refused now, not failed later.
    const assignBytes = ASSIGN_FIXED_BYTES + Buffer.byteLength(m.kind) + m.args.length;
    if (assignBytes > this.#maxPayloadBytes) {
      return this.#error(s.peer, m.requestId, 'TOO_LARGE', `arguments of ${m.args.length} bytes would make an ASSIGN of ${assignBytes} bytes (max payload ${this.#maxPayloadBytes})`);
    }
    if (this.#queued + this.#pending >= this.#maxQueued) {
      return this.#error(s.peer, m.requestId, 'BUSY', `queue full: ${this.#queued + this.#pending} jobs queued (max ${this.#maxQueued})`);
    }
    let kind: KindQueue;
    try {
      kind = this.#kind(m.kind);
    } catch (err) {
      if (err instanceof TaskwireError) return this.#error(s.peer, m.requestId, err.code, err.message);
      throw err;
    }
    const now = this.#now();
    const job = new Job(
      this.#nextId++,
      kind,
      ownArgs(m.args), // a copy: the frame is a view of the socket chunk
      m.priority,
      m.timeoutMs === 0 && m.estMs === 0 ? this.#defaultSpec : specOf(m.timeoutMs === 0 ? this.#defaultTimeoutMs : m.timeoutMs, m.estMs),
      m.maxRetries === DEFAULT_RETRIES ? this.#defaultRetries : m.maxRetries,
      m.delayMs === 0 ? 0 : now + m.delayMs,
      now,
      m.key === '' && owner === '' ? null : { key: m.key, owner },
    );
    this.jobs.set(job.id, job);
    if (m.key !== '') this.#keys.set(scopedKey, job);
    kind.live++;
    const journal = this.#journal;
    if (journal === undefined) {
      this.#accepted(job);
      // ASSIGN first, so the worker starts one write sooner (docs/PERFORMANCE.md); the ACK is still
      // flushed in this tick, long before the job's EVENT can exist.
      this.#makeRunnable(job, now);
      this.#ack(s.peer, m.requestId, job.id);
      if (m.wait) this.#addWaiter(job, s, m.progress);
      return;
    }
    // DESIGN.md rule 1: invisible (PENDING) until the record is durable, then acknowledged.
    job.state = 'PENDING';
    this.#pending++;
    // The record is encoded before append() returns: the frame's view of the args serves, no copy.
    journal.append(this.#submitRecord(job, m.args), (err) => {
      this.#pending--;
      const waiters = this.#keyWaiters.get(job);
      if (waiters !== undefined) this.#keyWaiters.delete(job);
      if (err !== null) {
        this.jobs.delete(job.id);
        if (job.key !== '' && this.#keys.get(scopedKey) === job) this.#keys.delete(scopedKey);
        kind.live--;
        this.#maybeForget(kind);
        this.#log('error', `job ${job.id} not accepted: ${err.message}`);
        const text = `job not accepted, the journal could not store it: ${err.message}`;
        this.#error(s.peer, m.requestId, 'JOURNAL_UNAVAILABLE', text);
        if (waiters !== undefined) for (const kw of waiters) this.#error(kw.s.peer, kw.requestId, 'JOURNAL_UNAVAILABLE', text);
        return;
      }
      job.state = 'QUEUED';
      this.#accepted(job);
      this.#ack(s.peer, m.requestId, job.id);
      if (m.wait) this.#addWaiter(job, s, m.progress);
      if (waiters !== undefined) {
        for (const kw of waiters) {
          if (kw.s.closed) continue;
          kw.s.peer.send({ type: 'ACK', requestId: kw.requestId, jobId: job.id, existing: true });
          if (kw.wait) this.#addWaiter(job, kw.s, kw.progress);
        }
      }
      this.#makeRunnable(job, this.#now());
    });
  }

  /** ACK of a new job (the hot path: no message object when the peer can write one directly). */
  #ack(peer: Peer, requestId: number, jobId: number): void {
    if (peer.sendAck !== undefined) peer.sendAck(requestId, jobId, false);
    else peer.send({ type: 'ACK', requestId, jobId, existing: false });
  }

  /** A submit became visible: count it. */
  #accepted(job: Job): void {
    const kind = job.kind;
    kind.submitted++;
    kind.queued++;
    this.#submitted++;
    this.#queued++;
    this.#notify(job, 'QUEUED');
  }

  /** A QUEUED job enters its kind's heap, or the delay heap if not yet due. */
  #makeRunnable(job: Job, now: number): void {
    if (this.#debug) this.#log('debug', `job ${job.id} ${job.kind.name} QUEUED`);
    if (job.notBefore > now) {
      this.#pushDelayed(job);
      return;
    }
    this.#enqueue(job);
    this.#dispatchKind(job.kind);
  }

  #pushDelayed(job: Job): void {
    if ((job.flags & DELAYED_FLAG) === 0) {
      job.flags |= DELAYED_FLAG;
      job.kind.delayed++;
    }
    this.#delayed.push(job);
  }

  /** The job left the delay heap (or finished while in it): no longer counted as delayed. */
  #undelay(job: Job): void {
    if ((job.flags & DELAYED_FLAG) === 0) return;
    job.flags &= ~DELAYED_FLAG;
    job.kind.delayed--;
  }

  #hasCredit(w: WorkerSession): boolean {
    return (
      !this.#frozen &&
      !w.closed &&
      !w.draining &&
      w.held.size < w.concurrency + w.prefetchNow &&
      w.peer.writableLength < this.#workerHighWaterBytes
    );
  }

  /** Assigns runnable jobs of one kind while some worker of it has credit. */
  #dispatchKind(k: KindQueue): void {
    const workers = k.workers;
    const n = workers.length;
    if (n === 0 || k.paused) return;
    // Every worker of it was full at the last scan and none has been left with credit since: a
    // submit to a busy kind costs O(1), not a look at each of its workers (issue 9: 128 workers).
    if (k.saturatedAt === this.#creditEpoch) return;
    while (k.heap.size > 0) {
      // A worker with an idle slot first; only then one that would queue it (prefetch).
      let chosen: WorkerSession | undefined;
      let queuing: WorkerSession | undefined;
      let queuingAt = 0;
      const anyIdle = this.#idleWorkers > 0;
      for (let i = 0; i < n; i++) {
        const w = workers[(k.cursor + i) % n]!;
        if (!this.#hasCredit(w)) continue;
        if (w.started < w.concurrency) {
          chosen = w;
          k.cursor = (k.cursor + i + 1) % n;
          break;
        }
        if (queuing === undefined) {
          queuing = w;
          queuingAt = i;
          if (!anyIdle) break; // no worker anywhere has a free slot: this one queues it
        }
      }
      if (chosen === undefined && queuing !== undefined) {
        chosen = queuing;
        k.cursor = (k.cursor + queuingAt + 1) % n;
      }
      if (chosen === undefined) {
        k.saturatedAt = this.#creditEpoch;
        return;
      }
      const job = this.#popRunnable(k);
      if (job === undefined) return;
      this.#assign(job, chosen);
    }
  }

  /**
   * Fills one worker's free credit with the best jobs among its kinds. A
   * worker with an idle slot and nothing runnable takes back prefetched jobs
   * that wait on other workers (PROTOCOL.md §5.4): a deep prefetch never lets
   * one worker hoard jobs while another idles.
   */
  #dispatchWorker(w: WorkerSession): void {
    const kinds = w.kinds;
    let stole = false;
    while (this.#hasCredit(w)) {
      let best: Job | undefined;
      if (kinds.length <= this.#runnable.size) {
        for (let i = 0; i < kinds.length; i++) {
          const k = kinds[i]!;
          if (k.paused) continue;
          const head = this.#peekRunnable(k);
          if (head !== undefined && (best === undefined || runsBefore(head, best))) best = head;
        }
      } else {
        // A worker of many kinds looks only at the kinds that have runnable jobs (issue 9: dispatch
        // cost must not grow with the kinds a worker declares).
        for (const k of this.#runnable) {
          if (k.paused || !w.kindSet.has(k)) continue;
          const head = this.#peekRunnable(k);
          if (head === undefined) {
            this.#runnable.delete(k);
            k.runnable = false;
          }
          else if (best === undefined || runsBefore(head, best)) best = head;
        }
      }
      if (best === undefined) {
        if (stole || this.#prefetched === 0 || w.started >= w.concurrency || this.#steal(w) === 0) {
          this.#creditEpoch++; // w is left with credit: kinds marked saturated must look again
          return;
        }
        stole = true;
        continue;
      }
      best.kind.heap.pop();
      this.#assign(best, w);
    }
  }

  /**
   * Revokes up to `w`'s idle slots' worth of prefetched jobs from the heads
   * of other workers' queues — the jobs they would start next, so the queue
   * order holds across workers — and queues them again, uncharged; the
   * revoked worker gets ABANDON `lost` and answers it.
   */
  #steal(w: WorkerSession): number {
    let want = w.concurrency - w.started;
    let stolen = 0;
    for (const v of this.#workers) {
      if (v === w) continue;
      const q = v.prefetchQueue;
      // Look at a bounded head only (DESIGN.md rule 3); dead entries are skipped by #startNext.
      for (let i = v.prefetchHead, looked = 0; i < v.prefetchTail && looked < 64 && want > 0; i++, looked++) {
        const job = q[i]!;
        if (!v.running.has(job) || (job.flags & PREFETCHED_FLAG) === 0) continue;
        if (job.kind.paused || !w.kinds.includes(job.kind)) continue;
        v.running.delete(job); // still held (not started) until v answers the ABANDON
        v.peer.send({ type: 'ABANDON', jobId: job.id, attempt: job.attempts, reason: 'lost' });
        this.#requeueUncharged(job);
        stolen++;
        want--;
      }
      if (want === 0) break;
    }
    return stolen;
  }

  /** Dispatches every kind (after freeze() is lifted, for tests and embedders). */
  #dispatchAll(): void {
    for (const k of this.#kinds.values()) this.#dispatchKind(k);
  }

  /** A QUEUED job enters its kind's run queue; the kind is then among the runnable ones. */
  #enqueue(job: Job): void {
    const k = job.kind;
    k.heap.push(job);
    if (!k.runnable) {
      k.runnable = true;
      this.#runnable.add(k);
    }
  }

  #peekRunnable(k: KindQueue): Job | undefined {
    for (;;) {
      const head = k.heap.peek();
      if (head === undefined || (head.state === 'QUEUED' && (head.flags & FINISHING_FLAG) === 0)) return head;
      k.heap.pop(); // cancelled (or being cancelled) while queued: removed lazily
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
    kind.queued--;
    this.#queued--;
    w.running.add(job);
    if (w.started < w.concurrency) {
      w.held.set(job.id, job.attempts * 2 + 1);
      if (++w.started === w.concurrency) this.#idleWorkers--;
      this.#started(job, this.#now());
    } else {
      // Prefetched (PROTOCOL.md §5.4): the worker starts it when one of its slots frees.
      w.held.set(job.id, job.attempts * 2);
      job.flags |= PREFETCHED_FLAG;
      kind.prefetched++;
      this.#prefetched++;
      const q = w.prefetchQueue;
      if (w.prefetchTail < q.length) q[w.prefetchTail] = job;
      else q.push(job);
      w.prefetchTail++;
    }
    const peer = w.peer;
    if (peer.sendAssign !== undefined) peer.sendAssign(job.id, job.attempts, job.timeoutMs, kind.name, job.args);
    else peer.send({ type: 'ASSIGN', jobId: job.id, attempt: job.attempts, timeoutMs: job.timeoutMs, kind: kind.name, args: argsBuffer(job.args) });
    if (this.#debug) this.#log('debug', `job ${job.id} assigned to ${w.name} (attempt ${job.attempts})`);
  }

  // -------------------------------------------------------------------------
  // Outcomes

  /** The current attempt failed (error, timeout or lost worker): retry with backoff, or fail for good. */
  #attemptFailed(job: Job, reason: string, permanent: boolean): void {
    if ((job.flags & PREFETCHED_FLAG) === 0) {
      const now = this.#now();
      job.kind.runTime.observeMs(now - job.startedAt);
      const run = job.run!;
      const h = (run.history ??= []);
      if (h.length >= MAX_HISTORY) h.shift();
      h.push({
        attempt: job.attempts,
        worker: run.workerName,
        startedAt: this.epoch + run.startedAt,
        finishedAt: this.epoch + now,
        error: reason.length > HISTORY_ERROR_CHARS ? reason.slice(0, HISTORY_ERROR_CHARS) + '…' : reason,
      });
    }
    if (permanent || job.attempts > job.maxRetries) {
      this.#finish(job, 'FAILED', reason, permanent);
      return;
    }
    const kind = job.kind;
    this.#unassign(job);
    const now = this.#now();
    const delay = backoffDelay(job.attempts - 1, { baseMs: this.#retryBaseMs, maxMs: this.#retryMaxMs, random: this.#random });
    job.state = 'QUEUED';
    job.flags |= RETRY_FLAG;
    job.notBefore = now + delay;
    kind.queued++;
    this.#queued++;
    this.#pushDelayed(job);
    // A lost retry record costs only the attempt count after a crash (the job replays as queued).
    this.#journal?.append(
      { type: 'retry', id: job.id, attempts: job.attempts, notBefore: this.epoch + job.notBefore, error: reason },
      this.#logJournalError,
    );
    this.#notify(job, 'QUEUED');
    this.#log('info', `job ${job.id} attempt ${job.attempts} failed (${reason}); retry in ${delay} ms`);
  }

  /** A RUNNING job whose worker went away while the scheduler stops: queued again, no attempt charged. */
  #requeueUncharged(job: Job): void {
    const kind = job.kind;
    this.#unassign(job);
    job.state = 'QUEUED';
    job.attempts--;
    kind.queued++;
    this.#queued++;
    this.#enqueue(job);
  }

  readonly #logJournalError = (err: Error | null): void => {
    if (err !== null) this.#log('error', `journal write failed: ${err.message}`);
  };

  /**
   * Decides a job's outcome (from RUNNING, or CANCELLED from QUEUED). The
   * caller has taken it off its worker's running set. With a journal the job
   * is FINISHING until the record is durable (DESIGN.md rule 1): nothing
   * shows the outcome before then. A DONE/FAILED record that fails to store
   * is written again (with backoff) until it is stored: the job stays
   * RUNNING to everyone meanwhile, and a crash before then runs it again
   * (README "Durability"). A cancel whose record fails is refused instead.
   */
  #finish(
    job: Job,
    state: 'DONE' | 'FAILED' | 'CANCELLED',
    outcome: Buffer | string | null,
    permanent = false,
    onStored: ((err: Error | null) => void) | null = null,
  ): void {
    const run = (job.run ??= new JobRun());
    run.outcome = outcome;
    run.finishedAt = this.#now();
    const journal = this.#journal;
    if (journal === undefined) {
      this.#commitFinish(job, state, permanent);
      onStored?.(null);
      return;
    }
    job.flags |= FINISHING_FLAG;
    run.finalState = state;
    run.finalPermanent = permanent;
    run.onStored = onStored;
    this.#storeFinal(job);
  }

  /** Appends a FINISHING job's final record; commits on success, retries or reverts on failure. */
  #storeFinal(job: Job): void {
    const run = job.run!;
    run.finalEpoch = this.#journalEpoch;
    this.#journal!.append(this.#finalRecord(job, run.finalState!, run.finalPermanent), (err) => {
      if ((job.flags & FINISHING_FLAG) === 0) return;
      if (err === null) {
        this.#storeRetryDelay = this.#storeRetryMs;
        const state = run.finalState!;
        const onStored = run.onStored;
        job.flags &= ~FINISHING_FLAG;
        run.finalState = null;
        run.onStored = null;
        this.#commitFinish(job, state, run.finalPermanent);
        onStored?.(null);
        return;
      }
      run.finalEpoch = -1;
      if (run.finalState === 'CANCELLED') {
        this.#revertCancel(job, err);
        return;
      }
      this.#log('error', `job ${job.id} ${run.finalState}, but its record could not be stored (${err.message}); writing it again`);
      if (this.#unstored.length === 0) this.#storeRetryAt = this.#now() + this.#storeRetryDelay;
      this.#unstored.push(job);
    });
  }

  /** A cancel whose record failed: refused, and the job carries on (re-queued if its attempt was abandoned). */
  #revertCancel(job: Job, err: Error): void {
    const run = job.run!;
    const onStored = run.onStored;
    job.flags &= ~FINISHING_FLAG;
    run.finalState = null;
    run.onStored = null;
    run.outcome = null;
    if (job.state === 'RUNNING') {
      // Its worker was told to ABANDON: the attempt is over, the job runs again.
      const kind = job.kind;
      this.#unassign(job);
      job.state = 'QUEUED';
      kind.queued++;
      this.#queued++;
    }
    this.#makeRunnable(job, this.#now());
    this.#log('error', `cancel of job ${job.id} refused: ${err.message}`);
    onStored?.(err);
  }

  /** Moves a job to its final state, once durable (or at once without a journal), and tells its waiters. */
  #commitFinish(job: Job, state: 'DONE' | 'FAILED' | 'CANCELLED', permanent: boolean): void {
    const kind = job.kind;
    if (job.state === 'RUNNING') {
      this.#unassign(job);
    } else if (job.state === 'QUEUED') {
      kind.queued--;
      this.#queued--;
      this.#undelay(job);
    }
    job.state = state;
    // Finished jobs are retained for lookup (100,000 by default): a DONE one without its arguments,
    // so that memory does not grow with the payload size (docs/PERFORMANCE.md). FAILED and CANCELLED
    // keep them: ADMIN retry runs them again.
    if (state === 'DONE') job.args = '';
    if (permanent) job.flags |= PERMANENT_FLAG;
    if (state === 'DONE') {
      kind.done++;
      kind.retainedDone++;
    } else if (state === 'FAILED') {
      kind.failed++;
      kind.retainedFailed++;
    } else {
      kind.cancelled++;
      kind.retainedCancelled++;
    }
    this.#retained.push(job);
    this.#notify(job, state);
    if (state === 'FAILED') this.#log('info', `job ${job.id} FAILED after ${job.attempts} attempt(s): ${String(job.outcome)}`);
    else if (state === 'CANCELLED') this.#log('info', `job ${job.id} CANCELLED`);
    else if (this.#debug) this.#log('debug', `job ${job.id} ${state}`);
    this.#notifyFinal(job, permanent);
    this.#evict(this.#now());
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
    s.waits.delete(job);
    s.progressJobs?.delete(job.id);
    this.#finalEvent(s.peer, job, permanent);
  }

  /** Sends a finished job's final EVENT to `peer` (no message object when the peer can write one directly). */
  #finalEvent(peer: Peer, job: Job, permanent: boolean): void {
    const event: JobEvent = job.state === 'DONE' ? 'done' : job.state === 'FAILED' ? 'failed' : 'cancelled';
    const o = job.outcome;
    const data = o === null ? EMPTY : typeof o === 'string' ? Buffer.from(o) : o;
    if (peer.sendEvent !== undefined) peer.sendEvent(job.id, event, job.attempts, 0, permanent, data);
    else peer.send({ type: 'EVENT', jobId: job.id, event, attempt: job.attempts, pct: 0, permanent, data });
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
      this.#finalEvent(s.peer, job, job.state === 'FAILED' && this.#wasPermanent(job));
      return;
    }
    if (s.closed) return;
    if (progress) (s.progressJobs ??= new Set()).add(job.id);
    s.waits.add(job);
    const w = job.waiters;
    if (w === null) job.waiters = s;
    else if (w instanceof ClientSession) job.waiters = w === s ? w : [w, s];
    else if (!w.includes(s)) w.push(s);
  }

  #removeWaiter(job: Job, s: ClientSession): void {
    const w = job.waiters;
    if (w === s) job.waiters = null;
    else if (Array.isArray(w)) {
      const i = w.indexOf(s);
      if (i >= 0) w.splice(i, 1);
      if (w.length === 1) job.waiters = w[0]!;
      else if (w.length === 0) job.waiters = null;
    }
  }

  #wasPermanent(job: Job): boolean {
    return (job.flags & PERMANENT_FLAG) !== 0;
  }

  #watch(s: ClientSession, requestId: number, jobId: number, progress: boolean): void {
    const job = this.#visible(jobId, s.principal);
    if (job === undefined) return this.#notFound(s.peer, requestId, jobId);
    if (s.waits.size >= this.#maxWaits && !s.waits.has(job)) return this.#tooManyWaits(s, requestId);
    s.peer.send({ type: 'ACK', requestId, jobId, existing: true });
    this.#addWaiter(job, s, progress);
  }

  #cancel(peer: Peer, requestId: number, jobId: number, who: Principal): void {
    // A PENDING job has not been acknowledged to anyone yet: it does not exist for others.
    const job = this.#visible(jobId, who);
    if (job === undefined) return this.#notFound(peer, requestId, jobId);
    if (job.state === 'DONE' || job.state === 'FAILED' || job.state === 'CANCELLED') {
      return this.#error(peer, requestId, 'INVALID_STATE', `job ${jobId} is already ${job.state}`);
    }
    if ((job.flags & FINISHING_FLAG) !== 0) {
      return this.#error(peer, requestId, 'INVALID_STATE', `job ${jobId} is finishing (its outcome is being stored)`);
    }
    if (job.state === 'RUNNING') {
      const w = job.worker!;
      w.running.delete(job); // still held until the worker answers the ABANDON
      w.peer.send({ type: 'ABANDON', jobId: job.id, attempt: job.attempts, reason: 'cancelled' });
    }
    this.#finish(job, 'CANCELLED', null, false, (err) => {
      if (err === null) peer.send({ type: 'REPLY', requestId, body: this.jobInfo(job) });
      else this.#error(peer, requestId, 'JOURNAL_UNAVAILABLE', `job ${job.id} not cancelled, the journal could not store it: ${err.message}`);
    });
  }

  /** FOLLOW (PROTOCOL.md §5.2): every state change from now on, as NOTICEs. */
  #follow(s: ClientSession, requestId: number, kind: string): void {
    s.follows = kind;
    this.#followers.add(s);
    s.peer.send({ type: 'ACK', requestId, jobId: 0, existing: false });
  }

  /** A visible state change: the observer (HTTP live events) and FOLLOWers hear of it. */
  #notify(job: Job, state: JobState): void {
    this.#observer?.job(job.id, job.kind.name, state, job.attempts);
    if (this.#followers.size === 0) return;
    let notice: Message | undefined;
    for (const s of this.#followers) {
      if (s.follows !== '' && s.follows !== job.kind.name) continue;
      if (!s.principal.all && job.owner !== s.principal.name) continue;
      notice ??= { type: 'NOTICE', jobId: job.id, state, attempt: job.attempts, kind: job.kind.name };
      s.peer.send(notice);
    }
  }

  #tooManyWaits(s: ClientSession, requestId: number): void {
    this.#limitHits++;
    this.#error(s.peer, requestId, 'LIMIT_EXCEEDED', `this connection already waits on ${s.waits.size} jobs (max ${this.#maxWaits}); wait on fewer at once, or use another connection`);
  }

  /** Requests refused by a limit (waits per connection); the server adds its own (connections). */
  get limitHits(): number {
    return this.#limitHits;
  }
  #limitHits = 0;

  #notFound(peer: Peer, requestId: number, jobId: number): void {
    this.#error(peer, requestId, 'NOT_FOUND', `no job ${jobId} (never submitted, or its result has expired)`);
  }

  #error(peer: Peer, requestId: number, code: ErrorCode, message: string): void {
    peer.send({ type: 'ERROR', requestId, code, message });
  }

  // -------------------------------------------------------------------------
  // Operators' requests (ADMIN, PROTOCOL.md §5.8). Each change is journaled
  // and answered once durable (DESIGN.md rule 1); long ones go in slices.

  #admin(peer: Peer, m: AdminMessage): void {
    const rid = m.requestId;
    const b = m.body as Record<string, unknown>;
    const bad = (what: string): void => this.#error(peer, rid, 'INVALID_ARGUMENT', `ADMIN ${String(b['op'])}: ${what}`);
    const jobId = (): number | undefined => {
      const id = b['jobId'];
      return typeof id === 'number' && Number.isSafeInteger(id) && id > 0 ? id : undefined;
    };
    const text = (name: string): string | undefined => {
      const v = b[name];
      return typeof v === 'string' && v !== '' && Buffer.byteLength(v) <= MAX_STR8_BYTES ? v : undefined;
    };
    switch (b['op']) {
      case 'retry': {
        const id = jobId();
        if (id === undefined) return bad('"jobId" must be a positive integer');
        return this.#retry(peer, rid, id);
      }
      case 'retryMany': {
        const state = b['state'];
        if (state !== 'FAILED' && state !== 'CANCELLED') return bad('"state" must be FAILED or CANCELLED');
        const kind = b['kind'] === undefined ? '' : text('kind');
        if (kind === undefined) return bad('"kind" must be a job kind');
        const limit = b['limit'] === undefined ? 1000 : b['limit'];
        if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 10_000) return bad('"limit" must be 1 to 10000');
        const afterId = b['afterId'] === undefined ? 0 : b['afterId'];
        if (typeof afterId !== 'number' || !Number.isSafeInteger(afterId) || afterId < 0) return bad('"afterId" must be a job id');
        return this.#retryMany(peer, rid, state, kind, limit, afterId);
      }
      case 'pause':
      case 'resume': {
        const kind = text('kind');
        if (kind === undefined) return bad('"kind" must be a job kind');
        return this.#pause(peer, rid, kind, b['op'] === 'pause');
      }
      case 'purge': {
        const kind = text('kind');
        if (kind === undefined) return bad('"kind" must be a job kind');
        return this.#purge(peer, rid, kind);
      }
      case 'drain':
      case 'disconnect': {
        const name = text('worker');
        if (name === undefined) return bad('"worker" must be a worker id or name');
        const w = this.#findWorker(name);
        if (w === undefined) return this.#error(peer, rid, 'NOT_FOUND', `no connected worker "${name}"`);
        if (b['op'] === 'drain') {
          w.draining = true;
          this.#log('info', `worker ${w.name} draining (asked by an operator)`);
          return peer.send({ type: 'REPLY', requestId: rid, body: this.#workerInfo(w, this.#now()) });
        }
        const info = this.#workerInfo(w, this.#now());
        this.#log('info', `worker ${w.name} disconnected by an operator`);
        if (w.peer.fail !== undefined) w.peer.fail('SHUTTING_DOWN', 'disconnected by an operator');
        else this.closeSession(w, 'disconnected by an operator');
        return peer.send({ type: 'REPLY', requestId: rid, body: info });
      }
      case 'promote': {
        const id = jobId();
        if (id === undefined) return bad('"jobId" must be a positive integer');
        return this.#promote(peer, rid, id);
      }
      default:
        return bad('unknown operation (retry, retryMany, pause, resume, purge, drain, disconnect, promote)');
    }
  }

  #findWorker(idOrName: string): WorkerSession | undefined {
    let byName: WorkerSession | undefined;
    for (const w of this.#workers) {
      if (w.id === idOrName) return w;
      if (w.name === idOrName) byName ??= w;
    }
    return byName;
  }

  /** Appends `record` (or not, without a journal) and calls `then` once it is durable. */
  #store(record: JournalRecord, then: (err: Error | null) => void): void {
    if (this.#journal === undefined) then(null);
    else this.#journal.append(record, then);
  }

  #retry(peer: Peer, rid: number, id: number): void {
    const job = this.#visible(id);
    if (job === undefined) return this.#notFound(peer, rid, id);
    if ((job.flags & FINISHING_FLAG) !== 0) return this.#error(peer, rid, 'INVALID_STATE', `job ${id} is changing state; try again`);
    if (job.state !== 'FAILED' && job.state !== 'CANCELLED') {
      return this.#error(peer, rid, 'INVALID_STATE', `job ${id} is ${job.state}: only FAILED and CANCELLED jobs can be retried`);
    }
    this.#revive(job, (err) => {
      if (err === null) peer.send({ type: 'REPLY', requestId: rid, body: this.jobInfo(job) });
      else this.#error(peer, rid, 'JOURNAL_UNAVAILABLE', `job ${id} not retried, the journal could not store it: ${err.message}`);
    });
  }

  /** Queues a FAILED or CANCELLED job again as a new attempt series, once the record is durable. */
  #revive(job: Job, then: (err: Error | null) => void): void {
    job.flags |= FINISHING_FLAG; // a state change is being stored: no other operation meanwhile
    const now = this.#now();
    this.#store({ type: 'revive', id: job.id, createdAt: this.epoch + now }, (err) => {
      job.flags &= ~FINISHING_FLAG;
      if (err !== null || !isFinal(job)) return then(err ?? new TaskwireError('INVALID_STATE', 'the job changed meanwhile'));
      this.#unfinish(job);
      job.state = 'QUEUED';
      job.notBefore = this.#now(); // its wait is counted from now
      this.#accepted(job);
      this.#submitted--; // not a new submit
      job.kind.submitted--;
      this.#log('info', `job ${job.id} queued again by an operator`);
      then(null); // the answer shows it QUEUED, as it is before any dispatch
      this.#makeRunnable(job, this.#now());
    });
  }

  /** Undoes what a finished job counts in (retained counters), for a revive. */
  #unfinish(job: Job): void {
    const kind = job.kind;
    if (job.state === 'DONE') kind.retainedDone--;
    else if (job.state === 'FAILED') kind.retainedFailed--;
    else if (job.state === 'CANCELLED') kind.retainedCancelled--;
    job.attempts = 0;
    job.flags &= ~(RETRY_FLAG | PERMANENT_FLAG);
    if (job.run !== null) {
      job.run.outcome = null;
      job.run.finishedAt = 0;
      job.run.history = null; // a new attempt series
    }
  }

  #retryMany(peer: Peer, rid: number, state: 'FAILED' | 'CANCELLED', kind: string, limit: number, afterId: number): void {
    // Newest first from the cursor, looking at a bounded number of ids (DESIGN.md rule 3).
    const lowest = this.#lowestId();
    let id = afterId === 0 ? this.#nextId - 1 : Math.min(afterId - 1, this.#nextId - 1);
    let budget = this.#listScanIds;
    const picked: Job[] = [];
    let next = 0;
    for (; id >= lowest && id > 0; id--) {
      if (picked.length >= limit || budget-- <= 0) {
        next = id + 1;
        break;
      }
      const job = this.jobs.get(id);
      if (job === undefined || job.state !== state || (job.flags & FINISHING_FLAG) !== 0) continue;
      if (kind !== '' && job.kind.name !== kind) continue;
      picked.push(job);
    }
    if (picked.length === 0) return peer.send({ type: 'REPLY', requestId: rid, body: { retried: 0, next } });
    let left = picked.length;
    let retried = 0;
    let firstError: Error | null = null;
    for (const job of picked) {
      this.#revive(job, (err) => {
        if (err === null) retried++;
        else firstError ??= err;
        if (--left > 0) return;
        if (retried === 0 && firstError !== null) {
          return this.#error(peer, rid, 'JOURNAL_UNAVAILABLE', `no job retried, the journal could not store it: ${firstError.message}`);
        }
        peer.send({ type: 'REPLY', requestId: rid, body: { retried, next } });
      });
    }
  }

  #pause(peer: Peer, rid: number, name: string, paused: boolean): void {
    let kind: KindQueue;
    try {
      kind = this.#kind(name); // pausing a kind nobody submitted yet holds its jobs from the start
    } catch (err) {
      if (err instanceof TaskwireError) return this.#error(peer, rid, err.code, err.message);
      throw err;
    }
    kind.live++; // kept while the record is written
    this.#store({ type: 'pause', kind: name, paused }, (err) => {
      kind.live--;
      if (err !== null) {
        this.#maybeForget(kind);
        return this.#error(peer, rid, 'JOURNAL_UNAVAILABLE', `kind ${name} not ${paused ? 'paused' : 'resumed'}: ${err.message}`);
      }
      kind.paused = paused;
      this.#log('info', `kind ${name} ${paused ? 'paused' : 'resumed'} by an operator`);
      peer.send({ type: 'REPLY', requestId: rid, body: { kind: name, paused } });
      if (!paused) {
        this.#dispatchKind(kind);
        this.#maybeForget(kind);
      }
    });
  }

  /**
   * Cancels every QUEUED job of a kind, in slices of 10,000 with the event
   * loop free between them; answers once every cancel record is stored.
   */
  #purge(peer: Peer, rid: number, name: string): void {
    const kind = this.#kinds.get(name);
    if (kind === undefined) return peer.send({ type: 'REPLY', requestId: rid, body: { kind: name, purged: 0 } });
    let cancelled = 0; // cancels started
    let settled = 0; // ... whose record is stored or refused
    let stored = 0;
    let cutting = true;
    let failed: Error | null = null;
    const reply = (): void => {
      if (cutting || settled < cancelled) return;
      if (stored === 0 && failed !== null) {
        return this.#error(peer, rid, 'JOURNAL_UNAVAILABLE', `nothing purged, the journal could not store it: ${failed.message}`);
      }
      this.#log('info', `kind ${name}: ${stored} queued job(s) purged by an operator`);
      peer.send({ type: 'REPLY', requestId: rid, body: { kind: name, purged: stored } });
    };
    const storedOne = (err: Error | null): void => {
      settled++;
      if (err === null) stored++;
      else failed ??= err;
      reply();
    };
    const cancel = (job: Job): void => {
      cancelled++;
      this.#finish(job, 'CANCELLED', null, false, storedOne);
    };
    const slice = (): void => {
      for (let n = 0; n < 10_000; n++) {
        const job = this.#popRunnable(kind);
        if (job === undefined) {
          if (kind.delayed > 0) {
            for (const d of [...this.#delayed.values()]) {
              if (d.kind === kind && d.state === 'QUEUED' && (d.flags & FINISHING_FLAG) === 0) cancel(d);
            }
          }
          cutting = false;
          return reply();
        }
        cancel(job);
      }
      this.#defer(slice);
    };
    slice();
  }

  #promote(peer: Peer, rid: number, id: number): void {
    const job = this.#visible(id);
    if (job === undefined) return this.#notFound(peer, rid, id);
    if (job.state !== 'QUEUED' || (job.flags & DELAYED_FLAG) === 0 || (job.flags & FINISHING_FLAG) !== 0) {
      return this.#error(peer, rid, 'INVALID_STATE', `job ${id} is not waiting for a delay or a retry backoff`);
    }
    this.#store({ type: 'promote', id }, (err) => {
      if (err !== null) return this.#error(peer, rid, 'JOURNAL_UNAVAILABLE', `job ${id} not promoted: ${err.message}`);
      if (job.state === 'QUEUED' && (job.flags & DELAYED_FLAG) !== 0) {
        this.#undelay(job); // its entry in the delay heap is skipped when it comes up
        job.notBefore = this.#now();
        this.#enqueue(job);
        this.#dispatchKind(job.kind);
      }
      peer.send({ type: 'REPLY', requestId: rid, body: this.jobInfo(job) });
    });
  }

  // -------------------------------------------------------------------------
  // Stopping

  /**
   * Graceful stop, step 1 (DESIGN.md rule 1): assign nothing more; answers
   * for running attempts are still accepted and stored. From now on a worker
   * that goes away has its jobs re-queued without an attempt charged.
   */
  freeze(): void {
    this.#frozen = true;
  }

  /** Undoes freeze() (a stop that was called off; tests). */
  thaw(): void {
    this.#frozen = false;
    this.#creditEpoch++; // every worker may have credit again
    this.#dispatchAll();
  }

  get frozen(): boolean {
    return this.#frozen;
  }

  // -------------------------------------------------------------------------
  // Time

  /**
   * Advances time: enforces run timeouts, releases delayed jobs and retries
   * whose time has come, writes again final records that failed, expires old
   * finished jobs, samples rates. The server calls it from one timer; tests
   * call it with a fake clock.
   */
  tick(): void {
    const now = this.#now();
    for (const w of this.#workers) {
      if (w.running.size === 0) continue;
      for (const job of w.running) {
        // A prefetched job has not started: its run timeout is not running (PROTOCOL.md §5.4).
        if ((job.flags & PREFETCHED_FLAG) !== 0 || now - job.startedAt < job.timeoutMs) continue;
        w.running.delete(job); // held until the worker answers the ABANDON
        w.peer.send({ type: 'ABANDON', jobId: job.id, attempt: job.attempts, reason: 'timeout' });
        job.kind.attemptsFailedTimeout++;
        this.#attemptFailed(job, `timeout after ${job.timeoutMs} ms`, false);
      }
    }
    let touched: Set<KindQueue> | undefined;
    for (;;) {
      const head = this.#delayed.peek();
      if (head === undefined || head.notBefore > now) break;
      this.#delayed.pop();
      if ((head.flags & DELAYED_FLAG) === 0 || head.state !== 'QUEUED') continue; // finished meanwhile, or a stale entry
      this.#undelay(head);
      if ((head.flags & FINISHING_FLAG) !== 0) continue; // being cancelled: re-pushed if the cancel fails
      this.#enqueue(head);
      (touched ??= new Set()).add(head.kind);
    }
    if (touched !== undefined) for (const k of touched) this.#dispatchKind(k);
    if (this.#unstored.length > 0 && now >= this.#storeRetryAt) {
      const again = this.#unstored;
      this.#unstored = [];
      this.#storeRetryDelay = Math.min(STORE_RETRY_MAX_MS, this.#storeRetryDelay * 2);
      this.#storeRetryAt = now + this.#storeRetryDelay;
      for (const job of again) if ((job.flags & FINISHING_FLAG) !== 0) this.#storeFinal(job);
    }
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
      if (!isFinal(head)) {
        retained.shift(); // queued again by ADMIN retry since: no longer retained
        continue;
      }
      if (retained.size <= this.#retainCount && now - head.finishedAt < this.#retainMs) return;
      retained.shift();
      this.jobs.delete(head.id);
      if (head.key !== '') {
        const k = this.#keyOf(head.owner, head.key);
        if (this.#keys.get(k) === head) this.#keys.delete(k);
      }
      const kind = head.kind;
      if (head.state === 'DONE') kind.retainedDone--;
      else if (head.state === 'FAILED') kind.retainedFailed--;
      else kind.retainedCancelled--;
      kind.live--;
      this.#maybeForget(kind);
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
        const kind = this.#kinds.get(r.kind) ?? new KindQueue(r.kind); // replay is not refused for maxKinds
        this.#kinds.set(r.kind, kind);
        const job = new Job(
          r.id,
          kind,
          ownArgs(r.args),
          r.priority,
          specOf(r.timeoutMs, r.estMs),
          r.maxRetries,
          r.notBefore === 0 ? 0 : r.notBefore - this.epoch,
          r.createdAt - this.epoch,
          r.key === '' && (r.owner ?? '') === '' ? null : { key: r.key, owner: r.owner ?? '' },
        );
        job.state = 'PENDING'; // becomes QUEUED in finishReplay
        this.jobs.set(job.id, job);
        if (r.key !== '') this.#keys.set(this.#keyOf(job.owner, r.key), job);
        kind.submitted++;
        kind.live++;
        this.#submitted++;
        return;
      }
      case 'retry': {
        const job = this.jobs.get(r.id);
        if (job === undefined || job.state !== 'PENDING') return;
        if (r.error !== '') {
          const h = ((job.run ??= new JobRun()).history ??= []);
          if (h.length >= MAX_HISTORY) h.shift();
          h.push({ attempt: r.attempts, worker: '', startedAt: 0, finishedAt: 0, error: r.error });
        }
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
        if (r.type === 'done') job.args = ''; // as in #commitFinish: a DONE job keeps its result, not its input
        const run = (job.run ??= new JobRun());
        run.finishedAt = r.finishedAt - this.epoch;
        if (r.type !== 'cancelled') {
          run.workerName = r.worker;
          if (r.startedAt !== undefined && r.startedAt > 0) run.startedAt = r.startedAt - this.epoch;
        }
        if (r.type === 'done') {
          job.state = 'DONE';
          job.attempts = r.attempts;
          run.outcome = Buffer.from(r.result); // a copy: replayed buffers are views of a read buffer
          kind.done++;
          kind.retainedDone++;
        } else if (r.type === 'failed') {
          job.state = 'FAILED';
          job.attempts = r.attempts;
          run.outcome = r.error;
          if (r.permanent) job.flags |= PERMANENT_FLAG;
          kind.failed++;
          kind.retainedFailed++;
        } else {
          job.state = 'CANCELLED';
          kind.cancelled++;
          kind.retainedCancelled++;
        }
        this.#retained.push(job);
        return;
      }
      case 'meta':
        if (r.nextId > this.#nextId) this.#nextId = r.nextId;
        return;
      case 'pause': {
        const kind = this.#kinds.get(r.kind) ?? new KindQueue(r.kind);
        this.#kinds.set(r.kind, kind);
        kind.paused = r.paused;
        return;
      }
      case 'revive': {
        const job = this.jobs.get(r.id);
        if (job === undefined || !isFinal(job)) return;
        this.#unfinish(job);
        job.state = 'PENDING';
        job.notBefore = r.createdAt - this.epoch;
        return;
      }
      case 'promote': {
        const job = this.jobs.get(r.id);
        if (job !== undefined && job.state === 'PENDING') job.notBefore = 0;
        return;
      }
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
      if (job.notBefore > now) this.#pushDelayed(job);
      else this.#enqueue(job);
    }
    this.#evict(now);
    return { queued, finished: this.#retained.size };
  }

  /**
   * Records that rebuild the live state, for compaction. Lazy: the journal
   * reads it in slices while the scheduler keeps serving (DESIGN.md rule 3),
   * so each job is described as it is when reached. That is safe because
   * the journal starts the snapshot (first record) at the instant it
   * rotates segments: everything appended later is in the new segment and
   * replays after the snapshot (replay is idempotent), jobs created later
   * are not visited (ids from `#nextId` on), and a final record is included
   * only if it was appended before that instant (whose durability the
   * compaction requires) — never a cancel that may yet be refused.
   */
  *snapshot(): Generator<JournalRecord> {
    const epoch = ++this.#journalEpoch;
    const end = this.#nextId;
    // Ids stay unique across restarts even when every job was dropped (issue 4).
    yield { type: 'meta', nextId: end };
    for (const k of [...this.#kinds.values()]) if (k.paused) yield { type: 'pause', kind: k.name, paused: true };
    const first = this.jobs.values().next();
    let id = first.done === true ? end : first.value.id;
    for (; id < end; id++) {
      const job = this.jobs.get(id);
      if (job === undefined) continue;
      yield this.#submitRecord(job);
      const run = job.run;
      if (job.state === 'DONE' || job.state === 'FAILED' || job.state === 'CANCELLED') {
        yield this.#finalRecord(job, job.state, this.#wasPermanent(job));
      } else if (run !== null && run.finalState !== null && run.finalEpoch >= 0 && run.finalEpoch < epoch) {
        yield this.#finalRecord(job, run.finalState, run.finalPermanent);
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

  #submitRecord(job: Job, args: Buffer = argsBuffer(job.args)): JournalRecord {
    const r: JournalRecord = {
      type: 'submit',
      id: job.id,
      kind: job.kind.name,
      args,
      priority: job.priority,
      timeoutMs: job.timeoutMs,
      maxRetries: job.maxRetries,
      estMs: job.estMs,
      notBefore: job.notBefore === 0 ? 0 : this.epoch + job.notBefore,
      key: job.key,
      createdAt: this.epoch + job.createdAt,
    };
    if (job.owner !== '') r.owner = job.owner;
    return r;
  }

  #finalRecord(job: Job, state: 'DONE' | 'FAILED' | 'CANCELLED', permanent: boolean): JournalRecord {
    const run = job.run;
    const finishedAt = this.epoch + (run?.finishedAt ?? 0);
    const worker = run?.workerName ?? '';
    const startedAt = job.attempts > 0 && run !== null ? this.epoch + run.startedAt : undefined;
    const o = run?.outcome ?? null;
    if (state === 'DONE') {
      const r: JournalRecord = { type: 'done', id: job.id, attempts: job.attempts, result: Buffer.isBuffer(o) ? o : EMPTY, finishedAt, worker };
      if (startedAt !== undefined) r.startedAt = startedAt;
      return r;
    }
    if (state === 'FAILED') {
      const r: JournalRecord = { type: 'failed', id: job.id, attempts: job.attempts, error: String(o ?? ''), permanent, finishedAt, worker };
      if (startedAt !== undefined) r.startedAt = startedAt;
      return r;
    }
    return { type: 'cancelled', id: job.id, finishedAt };
  }

  // -------------------------------------------------------------------------
  // Reports

  /** What STATUS, CANCEL and LIST say of a job (without the result bytes: see #statusReply). */
  jobInfo(job: Job): JobInfo {
    const state = visibleState(job);
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
    const run = job.run;
    if (job.attempts > 0 && run !== null && run.startedAt !== 0) info.startedAt = this.epoch + run.startedAt;
    const finished = job.state === 'DONE' || job.state === 'FAILED' || job.state === 'CANCELLED';
    if (finished) info.finishedAt = this.epoch + job.finishedAt;
    if (run !== null && run.workerName !== '') info.worker = run.workerName;
    const o = job.outcome;
    if (job.state === 'DONE' && Buffer.isBuffer(o)) info.resultBytes = o.length;
    if (job.state === 'FAILED' && typeof o === 'string') info.error = o;
    if (job.key !== '') info.key = job.key;
    if (job.state === 'QUEUED' && job.notBefore > this.#now()) info.notBefore = this.epoch + job.notBefore;
    return info;
  }

  /** STATUS/CANCEL answer: JSON info plus the result as raw bytes (PROTOCOL.md §5.5), never escaped JSON. */
  #statusReply(requestId: number, job: Job): Message {
    const body = this.jobInfo(job);
    const history = job.run?.history;
    if (history !== null && history !== undefined && history.length > 0) body.history = history;
    const o = job.outcome;
    if (job.state === 'DONE' && Buffer.isBuffer(o)) return { type: 'REPLY', requestId, body, data: o };
    return { type: 'REPLY', requestId, body };
  }

  /**
   * One page of jobs (PROTOCOL.md §5.6): newest first unless asked, from the
   * cursor, at most LIST_MAX_LIMIT items and `listScanIds` ids looked at;
   * items carry the result's size, not the result. `total` counts every
   * visible job matching the filter, from counters (O(kinds)).
   */
  list(m: Pick<ListMessage, 'state' | 'kind' | 'limit'> & Partial<Pick<ListMessage, 'afterId' | 'order'>>, who: Principal = ANYONE): ListPage {
    const limit = Math.min(m.limit === 0 ? 100 : m.limit, LIST_MAX_LIMIT);
    const newest = m.order !== 'oldest';
    const afterId = m.afterId ?? 0;
    const jobs: JobInfo[] = [];
    const lowest = this.#lowestId();
    let id: number;
    if (newest) id = afterId === 0 ? this.#nextId - 1 : Math.min(afterId - 1, this.#nextId - 1);
    else id = Math.max(afterId + 1, lowest);
    let budget = this.#listScanIds;
    const kindFilter = m.kind;
    const stateFilter = m.state;
    let next = 0;
    while (newest ? id >= lowest && id > 0 : id < this.#nextId) {
      if (jobs.length >= limit || budget-- <= 0) {
        next = newest ? id + 1 : id - 1;
        break;
      }
      const job = this.jobs.get(id);
      id += newest ? -1 : 1;
      if (job === undefined || job.state === 'PENDING') continue;
      if (!who.all && job.owner !== who.name) continue;
      if (kindFilter !== '' && job.kind.name !== kindFilter) continue;
      if (stateFilter !== '' && visibleState(job) !== stateFilter) continue;
      const info = this.jobInfo(job);
      if (info.error !== undefined && info.error.length > LIST_ERROR_CHARS) info.error = info.error.slice(0, LIST_ERROR_CHARS) + '…';
      jobs.push(info);
    }
    // A client credential's total is the jobs it can see in this scan's range: counters are kept per kind, not per owner.
    const total = who.all ? this.#countMatching(stateFilter, kindFilter) : jobs.length + (next === 0 ? 0 : 1);
    return { jobs, total, next };
  }

  #lowestId(): number {
    const first = this.jobs.values().next();
    return first.done === true ? this.#nextId : first.value.id;
  }

  #countMatching(state: JobState | '', kind: string): number {
    const count = (k: KindQueue): number => {
      switch (state) {
        case '':
          return k.queued + k.prefetched + k.running + k.retainedDone + k.retainedFailed + k.retainedCancelled;
        case 'QUEUED':
          return k.queued + k.prefetched;
        case 'RUNNING':
          return k.running;
        case 'DONE':
          return k.retainedDone;
        case 'FAILED':
          return k.retainedFailed;
        case 'CANCELLED':
          return k.retainedCancelled;
        default:
          return assertNever(state);
      }
    };
    if (kind !== '') {
      const k = this.#kinds.get(kind);
      return k === undefined ? 0 : count(k);
    }
    let n = 0;
    for (const k of this.#kinds.values()) n += count(k);
    return n;
  }

  workersInfo(): WorkerInfo[] {
    const now = this.#now();
    return [...this.#workers].map((w) => this.#workerInfo(w, now));
  }

  #workerInfo(w: WorkerSession, now: number): WorkerInfo {
    return {
      id: w.id,
      name: w.name,
      capabilities: w.kinds.map((k) => k.name),
      concurrency: w.concurrency,
      running: w.started,
      prefetched: w.held.size - w.started,
      prefetch: w.prefetch,
      pool: w.pool,
      host: w.host,
      draining: w.draining,
      connectedAt: this.epoch + w.connectedAt,
      lastHeartbeatAt: this.epoch + w.lastHeartbeatAt,
      heartbeatAgeMs: Math.max(0, Math.round(now - w.lastHeartbeatAt)),
      stuck: w.stuck,
      done: w.done,
      failed: w.failed,
    };
  }

  /**
   * Counters, O(kinds) (DESIGN.md rule 3). `oldestQueuedMs` is the wait of
   * the job next in line, as Sidekiq's queue latency: the older of the two
   * heads of the kind's run queue, measured from when it became runnable.
   */
  stats(): StatsInfo {
    const now = this.#now();
    const kinds: Record<string, KindStats> = {};
    for (const k of this.#kinds.values()) {
      const head = this.#peekRunnable(k);
      let oldestQueuedMs = 0;
      if (head !== undefined) {
        const since = head.notBefore > 0 ? head.notBefore : head.createdAt;
        oldestQueuedMs = Math.max(0, Math.round(now - since));
      }
      kinds[k.name] = {
        queued: k.queued,
        running: k.running,
        prefetched: k.prefetched,
        delayed: k.delayed,
        done: k.done,
        failed: k.failed,
        cancelled: k.cancelled,
        oldestQueuedMs,
        donePerSec: Math.round(k.donePerSec),
        submittedPerSec: Math.round(k.submittedPerSec),
        workers: k.workers.length,
        paused: k.paused,
      };
    }
    const out: StatsInfo = {
      uptimeMs: Math.round(now),
      serverVersion: this.#serverVersion,
      connections: { clients: this.#clients, workers: this.#workers.size },
      totals: { queued: this.#queued, running: this.#running, retained: this.#retained.size, submitted: this.#submitted },
      kinds,
      journal: this.#opts.journalStats?.() ?? null,
    };
    const limits = this.#opts.limitStats?.();
    if (limits !== undefined) out.limits = limits;
    return out;
  }
}
