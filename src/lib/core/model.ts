/**
 * The scheduler core's data model (DESIGN.md "Scale": a million may be
 * queued): jobs and their run records, kinds with their run queues and
 * counters, client and worker sessions, and the small helpers they share.
 * No I/O, no policy: SchedulerCore (src/lib/scheduler-core.ts) decides;
 * this file only holds what it decides about.
 */
import { ANYONE, type Principal } from '../auth/credentials.js';
import type { ErrorCode } from '../errors.js';
import type { AttemptInfo, JobEvent, JobState, Message } from '../protocol.js';
import { RunQueue } from '../run-queue.js';

/** The core's view of a connection: somewhere to send messages. */
export interface Peer {
  send(msg: Message): void;
  /**
   * The same as send() of an ASSIGN, without a message object; `args` may be a latin1 string (a
   * char per byte, how the core keeps small arguments). Optional: without it the core calls send().
   */
  sendAssign?(jobId: number, attempt: number, timeoutMs: number, kind: string, args: Buffer | string): void;
  /** The same as send() of an ACK, without a message object. Optional, like sendAssign. */
  sendAck?(requestId: number, jobId: number, existing: boolean): void;
  /** The same as send() of an EVENT, without a message object. Optional, like sendAssign. */
  sendEvent?(jobId: number, event: JobEvent, attempt: number, pct: number, permanent: boolean, data: Buffer): void;
  /** Bytes waiting to be written to the peer (backpressure). */
  readonly writableLength: number;
  /** Sends ERROR{0, code} and closes the connection (ADMIN disconnect). Absent in tests: the core then only forgets it. */
  fail?(code: ErrorCode, message: string): void;
}

/**
 * Who watches the scheduler (the HTTP layer's live events): told of every
 * visible state change, after it is durable. Called on the hot path, so it
 * must be cheap; absent, it costs one comparison per change.
 */
export interface CoreObserver {
  /** A job's visible state changed. `attempt` is the attempt it is at. */
  job(id: number, kind: string, state: JobState, attempt: number): void;
  /** A worker joined or left. */
  worker(event: 'joined' | 'left', id: string, name: string): void;
}

/** Upper bounds (seconds) of the wait and run time histograms; the last bucket is +Inf. */
export const DURATION_BUCKETS_S: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** A fixed-bucket histogram of durations: O(buckets) per observation, no allocation. */
export class DurationHistogram {
  /** Per bucket (not cumulative); the last is +Inf. */
  readonly counts = new Float64Array(DURATION_BUCKETS_S.length + 1);
  sumSeconds = 0;
  count = 0;

  observeMs(ms: number): void {
    const sec = ms / 1000;
    let i = 0;
    while (i < DURATION_BUCKETS_S.length && sec > DURATION_BUCKETS_S[i]!) i++;
    this.counts[i]!++;
    this.sumSeconds += sec;
    this.count++;
  }
}

export type InternalState = JobState | 'PENDING';

export const RETRY_FLAG = 0x100;
export const PERMANENT_FLAG = 0x200;
export const PRIORITY_MASK = 0xff;

export const MAX_RETRIES_SHIFT = 10;
/**
 * The job's outcome is decided but its journal record is not durable yet
 * (DESIGN.md rule 1): it keeps showing its previous state and counters, is
 * not dispatched, and its waiters hear of it only once the record is stored.
 */
export const FINISHING_FLAG = 1 << 26;
/** The job sits in the delay heap and counts in its kind's `delayed`. */
export const DELAYED_FLAG = 1 << 27;
/**
 * RUNNING, but only prefetched: assigned to a worker that has not started it
 * (PROTOCOL.md §5.4). No run timeout; a lost worker does not charge it.
 */
export const PREFETCHED_FLAG = 1 << 28;
/** Longest error text a LIST item carries (STATUS gives the whole text). */
export const LIST_ERROR_CHARS = 1024;


/**
 * What a job's attempts produced: allocated when it first runs (or finishes),
 * so the many jobs that are only queued do not pay for these fields.
 */
export class JobRun {
  /** Attempts started so far (Job.attempts). */
  attempts = 0;
  /** Client sessions to tell when it finishes (Job.waiters). */
  waiters: ClientSession | ClientSession[] | null = null;
  /** RUNNING: the worker of the current attempt; after: the worker of the last one. */
  worker: WorkerSession | null = null;
  /** Name of the worker of the last attempt (kept across restarts via the journal). */
  workerName = '';
  /** When the last attempt started (relative ms). */
  startedAt = 0;
  /** DONE/FAILED/CANCELLED: when it finished (relative ms). */
  finishedAt = 0;
  /** DONE: result bytes. FAILED: the error text. Also while FINISHING: the outcome being stored. */
  outcome: Buffer | string | null = null;
  /** FINISHING: the state the job enters once its record is durable. */
  finalState: 'DONE' | 'FAILED' | 'CANCELLED' | null = null;
  /** FINISHING: the failure is permanent (the handler said so). */
  finalPermanent = false;
  /** FINISHING: the journal epoch its final record was appended in; -1 while not appended (a failed write awaiting retry). */
  finalEpoch = -1;
  /** FINISHING: told once the final record is stored (null) or refused (a cancel's error). */
  onStored: ((err: Error | null) => void) | null = null;
  /** Failed attempts, oldest first, at most MAX_HISTORY (the last ones); null until one fails. */
  history: AttemptInfo[] | null = null;
}

/** Most failed attempts a job remembers (STATUS `history`). */
export const MAX_HISTORY = 16;
/** Longest error text kept per failed attempt. */
export const HISTORY_ERROR_CHARS = 2048;

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
  /** Bits 0-7 priority, 8 RETRY_FLAG, 9 PERMANENT_FLAG, 10-25 maxRetries. */
  flags: number;
  /** QUEUED: not runnable before this (relative ms). */
  notBefore: number;
  run: JobRun | null = null;

  constructor(
    readonly id: number,
    readonly kind: KindQueue,
    /**
     * Argument bytes: a latin1 string when small (one byte per byte, far less
     * memory than a Buffer object), the Buffer itself from ARGS_BUFFER_BYTES
     * on (sent to workers as it is, no copy); '' once DONE.
     */
    public args: string | Buffer,
    priority: number,
    /** Run timeout and estimate, shared by every job with the same pair (see specOf). */
    readonly spec: JobSpec,
    maxRetries: number,
    notBefore: number,
    readonly createdAt: number,
    /** Idempotency key and owner, when either is set (most jobs have neither). */
    readonly extra: JobExtra | null,
  ) {
    this.flags = (priority & PRIORITY_MASK) | ((maxRetries & 0xffff) << MAX_RETRIES_SHIFT);
    this.notBefore = notBefore;
  }

  /** Attempts started so far; the current attempt's number while RUNNING. (In `run`: 0 for a job never assigned.) */
  get attempts(): number {
    return this.run === null ? 0 : this.run.attempts;
  }
  set attempts(n: number) {
    if (n !== 0 || this.run !== null) this.#run().attempts = n;
  }
  /** Client sessions to tell when it finishes. (In `run`, allocated by the first waiter.) */
  get waiters(): ClientSession | ClientSession[] | null {
    return this.run === null ? null : this.run.waiters;
  }
  set waiters(w: ClientSession | ClientSession[] | null) {
    if (w !== null || this.run !== null) this.#run().waiters = w;
  }

  get timeoutMs(): number {
    return this.spec.timeoutMs;
  }
  get estMs(): number {
    return this.spec.estMs;
  }
  /** Idempotency key; '' = none. */
  get key(): string {
    return this.extra === null ? '' : this.extra.key;
  }
  /** The credential that submitted it ('' without auth): only it (and admins) can see it (issue 11). */
  get owner(): string {
    return this.extra === null ? '' : this.extra.owner;
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

/** A job's run timeout and estimate: one shared object per distinct pair (most jobs use the defaults). */
export interface JobSpec {
  readonly timeoutMs: number;
  readonly estMs: number;
}

/** What few jobs have: an idempotency key, an owner (issue 11). */
export interface JobExtra {
  readonly key: string;
  readonly owner: string;
}

/** Specs by "timeoutMs/estMs", bounded: past it, a spec is made per job (still correct, just not shared). */
export const SPECS = new Map<string, JobSpec>();
export const MAX_SPECS = 4096;

/** The shared spec of a (timeout, estimate) pair: 16 bytes a job saved (issue 9: memory per queued job). */
export function specOf(timeoutMs: number, estMs: number): JobSpec {
  const k = `${timeoutMs}/${estMs}`;
  let spec = SPECS.get(k);
  if (spec === undefined) {
    spec = { timeoutMs, estMs };
    if (SPECS.size < MAX_SPECS) SPECS.set(k, spec);
  }
  return spec;
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
  /**
   * The core's credit epoch when a scan of `workers` last found none with credit: until the epoch
   * moves (a worker is left with credit it could not use), a new job need not scan them again.
   */
  saturatedAt = -1;
  /** QUEUED jobs whose submit is durable (runnable or delayed). */
  queued = 0;
  /** QUEUED jobs waiting for a delay or backoff (included in `queued`). */
  delayed = 0;
  /** RUNNING jobs a worker has started. */
  running = 0;
  /** RUNNING jobs sent to a worker ahead of time, not started yet. */
  prefetched = 0;
  /** Jobs of this kind in the job table in any state (PENDING to retained): the kind is forgotten at 0 with no workers. */
  live = 0;
  /** Finished jobs still retained, by state (LIST totals). */
  retainedDone = 0;
  retainedFailed = 0;
  retainedCancelled = 0;
  done = 0;
  failed = 0;
  cancelled = 0;
  submitted = 0;
  /** Nothing of the kind is dispatched (ADMIN pause; journaled). A paused kind is never forgotten. */
  paused = false;
  /** In the core's set of kinds that may have runnable jobs. */
  runnable = false;
  /** Failed attempts by reason (metrics). */
  attemptsFailedError = 0;
  attemptsFailedTimeout = 0;
  attemptsFailedLost = 0;
  /** Time from runnable to start, and run time, of every attempt (metrics). */
  readonly waitTime = new DurationHistogram();
  readonly runTime = new DurationHistogram();
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
  /** Jobs this session waits on: on close it is taken off each (DESIGN.md rule 3). */
  readonly waits = new Set<Job>();
  /** FOLLOW: the kind it follows ('' = all); null when it does not. */
  follows: string | null = null;
  constructor(
    readonly id: string,
    readonly name: string,
    readonly peer: Peer,
    /** Who it is: what it may send and which jobs it sees (issue 11). Everyone without auth. */
    readonly principal: Principal = ANYONE,
  ) {}
}

/** A connected worker and its credit (DESIGN.md "Routing"). */
export class WorkerSession {
  /** Its kinds as a set (dispatch over the runnable kinds checks membership). */
  readonly kindSet: ReadonlySet<KindQueue>;
  /** Jobs whose current attempt is assigned to this worker, started or prefetched (run timeouts: started ones). */
  readonly running = new Set<Job>();
  /**
   * What the worker holds: job id → attempt × 2 + (1 if started), for every
   * ASSIGN not yet answered, abandoned attempts still winding down included
   * (DESIGN.md rule 2). Its size is the worker's used credit; only an answer
   * for an attempt in here frees credit, and only a started one frees a slot.
   */
  readonly held = new Map<number, number>();
  /** Held attempts that started (the worker's busy slots, at most `concurrency`). */
  started = 0;
  /**
   * Prefetched jobs in the order they were sent, `prefetchQueue[prefetchHead, prefetchTail)`: the
   * worker starts them in this order (lazy removal). The array is reused, not regrown, per batch.
   */
  prefetchQueue: (Job | undefined)[] = [];
  prefetchHead = 0;
  prefetchTail = 0;
  /** Jobs it accepts beyond `concurrency` (HELLO `prefetch`). */
  prefetch = 0;
  /** What it gets ahead now, sized by its jobs' run time (#observeRun); all it declared until one has run. */
  prefetchNow = 0;
  /** Its jobs' run time, ms, smoothed; -1 until one has run. */
  avgRunMs = -1;
  /** From HELLO, for listings: its pool and host ('' if not said). */
  pool = '';
  host = '';
  /** Its credential (issue 11): an admin's worker connection may also send read-only requests. */
  principal: Principal = ANYONE;
  draining = false;
  closed = false;
  /** Load the worker reported in its last heartbeat. */
  reportedLoad = 0;
  /** Handlers the worker gave up on after an ABANDON (its last heartbeat). */
  stuck = 0;
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
    this.kindSet = new Set(kinds);
  }
}

export type Session = ClientSession | WorkerSession;

export const EMPTY = Buffer.alloc(0);

/** The state others see: a job prefetched on a worker has not started, so it is still QUEUED. */
export function visibleState(job: Job): JobState {
  if (job.state === 'PENDING') return 'QUEUED';
  if (job.state === 'RUNNING' && (job.flags & PREFETCHED_FLAG) !== 0) return 'QUEUED';
  return job.state;
}

/** Arguments from this size on are kept as a Buffer (see Job.args). */
export const ARGS_BUFFER_BYTES = 1024;

/** A job's own copy of argument bytes that are a view of a socket chunk or a read buffer. */
export function ownArgs(view: Buffer): string | Buffer {
  if (view.length === 0) return '';
  return view.length < ARGS_BUFFER_BYTES ? view.toString('latin1') : Buffer.from(view);
}

/** A job's argument bytes as a Buffer (no copy when they are one). */
export function argsBuffer(args: string | Buffer): Buffer {
  if (typeof args !== 'string') return args;
  return args.length === 0 ? EMPTY : Buffer.from(args, 'latin1');
}

export function isFinal(job: Job): boolean {
  return job.state === 'DONE' || job.state === 'FAILED' || job.state === 'CANCELLED';
}

