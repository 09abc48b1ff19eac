/**
 * The taskwire wire protocol: frames and messages only. No sockets, timers or
 * policy live here, so other programs can speak taskwire with this module
 * alone (`import { encode, MessageDecoder } from 'taskwire/protocol'`).
 *
 * Frame (docs/PROTOCOL.md §2): `[u8 command][u32 big-endian payload length][payload]`.
 * Integers are big-endian. Job ids are u64 on the wire and must be below 2^53.
 */
import { isUtf8 } from 'node:buffer';
import { ErrorCode, isErrorCode, ProtocolError, TaskwireError } from './errors.js';

export { ErrorCode, ProtocolError, TaskwireError } from './errors.js';

/** The protocol version spoken by this module (HELLO / WELCOME `version`). */
export const PROTOCOL_VERSION = 1;
/** Bytes in a frame header: u8 command + u32 length. */
export const HEADER_BYTES = 5;
/** Default maximum payload a receiver accepts: 16 MiB. */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;
/** Largest value of a u32 field. */
export const U32_MAX = 0xffff_ffff;
/** `maxRetries` value in SUBMIT meaning "use the scheduler's default". */
export const DEFAULT_RETRIES = 0xffff;
/** Longest string in a `str8` field, in UTF-8 bytes. */
export const MAX_STR8_BYTES = 255;

/** Command bytes (docs/PROTOCOL.md §3). */
export const Command = {
  HELLO: 0x01,
  WELCOME: 0x02,
  HEARTBEAT: 0x03,
  GOODBYE: 0x04,
  SUBMIT: 0x10,
  ACK: 0x11,
  EVENT: 0x12,
  WATCH: 0x13,
  FOLLOW: 0x14,
  NOTICE: 0x15,
  ASSIGN: 0x20,
  RESULT: 0x21,
  FAIL: 0x22,
  PROGRESS: 0x23,
  ABANDON: 0x24,
  STATUS: 0x30,
  CANCEL: 0x31,
  LIST: 0x32,
  WORKERS: 0x33,
  STATS: 0x34,
  COMPACT: 0x35,
  ADMIN: 0x36,
  REPLY_DATA: 0x3e,
  REPLY: 0x3f,
  ERROR: 0x7f,
} as const;
export type Command = (typeof Command)[keyof typeof Command];

/** Who is on the other end of a connection. */
export type Role = 'client' | 'worker';
/** Job states (DESIGN.md "Job semantics"). */
export type JobState = 'QUEUED' | 'RUNNING' | 'DONE' | 'FAILED' | 'CANCELLED';
export const JOB_STATES: readonly JobState[] = ['QUEUED', 'RUNNING', 'DONE', 'FAILED', 'CANCELLED'];
/** What an EVENT reports about a job. */
export type JobEvent = 'done' | 'failed' | 'progress' | 'cancelled';
/** Why the scheduler tells a worker to stop an attempt. */
export type AbandonReason = 'timeout' | 'cancelled' | 'lost';

/** One frame as cut from the stream: the command byte and a view of its payload. */
export interface Frame {
  command: number;
  payload: Buffer;
}

/** First frame on every connection, sent by the connecting side (§4.1). */
export interface HelloMessage {
  type: 'HELLO';
  version: number;
  role: Role;
  name: string;
  /** Job kinds a worker runs; empty for clients. */
  capabilities: string[];
  /** Jobs a worker runs at once; 0 for clients. */
  concurrency: number;
  /**
   * Workers: jobs the scheduler may send beyond `concurrency`, which the
   * worker queues and starts, in arrival order, as slots free (§5.4). Absent = 0.
   */
  prefetch?: number;
  /** Workers: the pool it belongs to (`taskwire-worker --processes`), for `workers` listings. */
  pool?: string;
  /** Workers: the machine it runs on (hostname), for `workers` listings. */
  host?: string;
  token?: string;
}
/** The scheduler's answer to HELLO (§4.1). */
export interface WelcomeMessage {
  type: 'WELCOME';
  version: number;
  serverVersion: string;
  heartbeatMs: number;
  maxPayloadBytes: number;
  /** Connection id the scheduler uses in logs and `workers` output. */
  sessionId: string;
}
/**
 * Keep-alive, both ways; `running` is the sender's load (jobs running now).
 * `stuck` (workers): handlers that ignored an ABANDON past the grace and whose
 * slot was given back anyway (§5.4). Optional trailing u32 on the wire; 0 if absent.
 */
export interface HeartbeatMessage {
  type: 'HEARTBEAT';
  running: number;
  stuck?: number;
}
/** Worker: "drain me, assign nothing more". Scheduler: "I am shutting down". */
export interface GoodbyeMessage {
  type: 'GOODBYE';
  reason: string;
}
/** A failure; `requestId` 0 means the connection itself (it closes after). */
export interface ErrorMessage {
  type: 'ERROR';
  requestId: number;
  code: ErrorCode;
  message: string;
}
/** Client → scheduler: queue one job (§5.1). */
export interface SubmitMessage {
  type: 'SUBMIT';
  requestId: number;
  kind: string;
  /** Opaque to the scheduler: JSON by convention, raw UTF-8 for sha256. */
  args: Buffer;
  /** 0–255, higher runs first. */
  priority: number;
  /** Run timeout per attempt; 0 = scheduler default. */
  timeoutMs: number;
  /** Retries after the first attempt; {@link DEFAULT_RETRIES} = scheduler default. */
  maxRetries: number;
  /** Estimated run time; shorter runs first among equal priority. 0 = unknown. */
  estMs: number;
  /** Do not start before this many ms from now. */
  delayMs: number;
  /** Idempotency key; '' = none. */
  key: string;
  /** Send this job's final EVENT to this connection. */
  wait: boolean;
  /** Also send PROGRESS events (only with `wait`). */
  progress: boolean;
}
/** Scheduler → client: the job is queued (durably, with a journal). */
export interface AckMessage {
  type: 'ACK';
  requestId: number;
  jobId: number;
  /** True when an idempotency key matched a live job: `jobId` is that job. */
  existing: boolean;
}
/** Scheduler → client: something happened to a job the client waits on. */
export interface EventMessage {
  type: 'EVENT';
  jobId: number;
  event: JobEvent;
  /** Attempt number the event belongs to (1-based; 0 if it never ran). */
  attempt: number;
  /** Progress percentage (progress events), else 0. */
  pct: number;
  /** For failed: the handler said retrying cannot help. */
  permanent: boolean;
  /** done: the result bytes; failed/progress: a UTF-8 message; cancelled: empty. */
  data: Buffer;
}
/** Client → scheduler: send me the events of an existing job. */
export interface WatchMessage {
  type: 'WATCH';
  requestId: number;
  jobId: number;
  progress: boolean;
}
/**
 * Client → scheduler: tell me every job state change from now on (§5.2),
 * optionally of one kind; answered by ACK (jobId 0), then NOTICEs until the
 * connection closes. A client credential hears of its own jobs only.
 */
export interface FollowMessage {
  type: 'FOLLOW';
  requestId: number;
  /** '' = every kind. */
  kind: string;
}
/** Scheduler → client (after FOLLOW): a job changed state. */
export interface NoticeMessage {
  type: 'NOTICE';
  jobId: number;
  state: JobState;
  /** The attempt it is at (0 before the first). */
  attempt: number;
  kind: string;
}
/** Scheduler → worker: run this attempt of a job. */
export interface AssignMessage {
  type: 'ASSIGN';
  jobId: number;
  attempt: number;
  timeoutMs: number;
  kind: string;
  args: Buffer;
}
/** Worker → scheduler: the attempt succeeded. */
export interface ResultMessage {
  type: 'RESULT';
  jobId: number;
  attempt: number;
  result: Buffer;
}
/** Worker → scheduler: the attempt failed. */
export interface FailMessage {
  type: 'FAIL';
  jobId: number;
  attempt: number;
  permanent: boolean;
  message: string;
  /**
   * The worker gives back a prefetched job it never started (a drain): the
   * scheduler queues it again without charging an attempt (§5.4). Wire: the
   * permanent byte is 2.
   */
  returned?: boolean;
}
/** Worker → scheduler: progress of a running attempt. */
export interface ProgressMessage {
  type: 'PROGRESS';
  jobId: number;
  attempt: number;
  pct: number;
  message: string;
}
/** Scheduler → worker: stop this attempt, its outcome no longer counts. */
export interface AbandonMessage {
  type: 'ABANDON';
  jobId: number;
  attempt: number;
  reason: AbandonReason;
}
/** Client → scheduler: the state of one job; answered by REPLY {@link JobInfo}. */
export interface StatusMessage {
  type: 'STATUS';
  requestId: number;
  jobId: number;
}
/** Client → scheduler: cancel a queued or running job; answered by REPLY {@link JobInfo}. */
export interface CancelMessage {
  type: 'CANCEL';
  requestId: number;
  jobId: number;
}
/**
 * Client → scheduler: one page of jobs; answered by REPLY {@link ListPage}
 * (§5.6). Pages are bounded: `limit` at most {@link LIST_MAX_LIMIT}, and one
 * request looks at a bounded number of ids, so a page may hold fewer jobs
 * than asked and still have a `next` cursor.
 */
export interface ListMessage {
  type: 'LIST';
  requestId: number;
  /** '' = any state. */
  state: JobState | '';
  /** '' = any kind. */
  kind: string;
  /** Jobs per page; 0 = 100; capped at {@link LIST_MAX_LIMIT}. */
  limit: number;
  /** Cursor: only jobs after this id in the page order (below it for newest-first); 0 = from the start. */
  afterId?: number;
  /** Default 'newest' (highest id first). */
  order?: 'newest' | 'oldest';
}
/** Client → scheduler: connected workers; answered by REPLY `WorkerInfo[]`. */
export interface WorkersMessage {
  type: 'WORKERS';
  requestId: number;
}
/** Client → scheduler: counters; answered by REPLY {@link StatsInfo}. */
export interface StatsMessage {
  type: 'STATS';
  requestId: number;
}
/** Client → scheduler: compact the journal now; answered by REPLY. */
export interface CompactMessage {
  type: 'COMPACT';
  requestId: number;
}
/**
 * Client → scheduler: an operator's request (§5.8), `[u32 requestId][json]`;
 * answered by REPLY or ERROR. The JSON object names the operation in `op`.
 */
export interface AdminMessage {
  type: 'ADMIN';
  requestId: number;
  body: AdminRequest;
}
/** The operations of ADMIN (§5.8). */
export type AdminRequest =
  /** A FAILED or CANCELLED job runs again as a new attempt series → JobInfo. */
  | { op: 'retry'; jobId: number }
  /** Up to `limit` (default 1,000, max 10,000) jobs in `state`, newest first → {@link RetryManyResult}. */
  | { op: 'retryMany'; state: 'FAILED' | 'CANCELLED'; kind?: string; limit?: number; afterId?: number }
  /** Nothing of the kind is dispatched (submits are still accepted) → {@link PauseResult}. */
  | { op: 'pause'; kind: string }
  | { op: 'resume'; kind: string }
  /** Cancels every QUEUED job of the kind → {@link PurgeResult}. */
  | { op: 'purge'; kind: string }
  /** The worker (id or name) finishes its running jobs and takes no new ones → WorkerInfo. */
  | { op: 'drain'; worker: string }
  /** Closes the worker's connection now; its jobs go back as after a crash → WorkerInfo. */
  | { op: 'disconnect'; worker: string }
  /** A delayed or backing-off job becomes runnable now → JobInfo. */
  | { op: 'promote'; jobId: number };
/** REPLY body of ADMIN retryMany. */
export interface RetryManyResult {
  retried: number;
  /** Cursor for the next call (`afterId`); 0 when every matching job was looked at. */
  next: number;
}
/** REPLY body of ADMIN pause/resume. */
export interface PauseResult {
  kind: string;
  paused: boolean;
}
/** REPLY body of ADMIN purge. */
export interface PurgeResult {
  kind: string;
  purged: number;
}
/**
 * Scheduler → client: the JSON answer to an admin request. `data` carries
 * bytes that JSON would escape (a STATUS reply's result, §5.5): sent as
 * REPLY_DATA, `[u32 requestId][u32 jsonBytes][json][data]`.
 */
export interface ReplyMessage {
  type: 'REPLY';
  requestId: number;
  body: unknown;
  data?: Buffer;
}

/** Every message of the protocol, discriminated by `type`. */
export type Message =
  | HelloMessage
  | WelcomeMessage
  | HeartbeatMessage
  | GoodbyeMessage
  | ErrorMessage
  | SubmitMessage
  | AckMessage
  | EventMessage
  | WatchMessage
  | FollowMessage
  | NoticeMessage
  | AssignMessage
  | ResultMessage
  | FailMessage
  | ProgressMessage
  | AbandonMessage
  | StatusMessage
  | CancelMessage
  | ListMessage
  | WorkersMessage
  | StatsMessage
  | CompactMessage
  | AdminMessage
  | ReplyMessage;
export type MessageType = Message['type'];

/** REPLY body of STATUS and CANCEL, and the items of LIST. */
export interface JobInfo {
  id: number;
  kind: string;
  state: JobState;
  priority: number;
  attempts: number;
  maxRetries: number;
  timeoutMs: number;
  /** Wall-clock ms. */
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** Name of the worker running (or that ran) the last attempt. */
  worker?: string;
  /**
   * DONE: the result as UTF-8 text. Filled in by the client library from the
   * STATUS reply's binary data (never sent as JSON; LIST items carry only `resultBytes`).
   */
  result?: string;
  /** DONE: the result's raw bytes (STATUS/CANCEL through the client library). */
  resultData?: Buffer;
  /** DONE: size of the result in bytes. */
  resultBytes?: number;
  /** FAILED: the last error. */
  error?: string;
  key?: string;
  /** QUEUED jobs waiting for a delay or a retry backoff: wall-clock ms they become runnable. */
  notBefore?: number;
  /** STATUS: the failed attempts, oldest first (the last 16). */
  history?: AttemptInfo[];
}
/** Most jobs one LIST page returns. */
export const LIST_MAX_LIMIT = 1000;

/** REPLY body of LIST. */
export interface ListPage {
  jobs: JobInfo[];
  /** Jobs matching the state and kind filter in all (not only this page). */
  total: number;
  /** Cursor for the next page (pass as `afterId`); 0 when there is none. */
  next: number;
}
/** One failed attempt of a job (STATUS `history`). Times are 0 when unknown (recovered from the journal). */
export interface AttemptInfo {
  attempt: number;
  worker: string;
  startedAt: number;
  finishedAt: number;
  error: string;
}
/** Items of the WORKERS reply. */
export interface WorkerInfo {
  id: string;
  name: string;
  capabilities: string[];
  concurrency: number;
  running: number;
  draining: boolean;
  connectedAt: number;
  lastHeartbeatAt: number;
  /** Ms since the worker's last heartbeat (monotonic, so a wall-clock step does not skew it). */
  heartbeatAgeMs?: number;
  /** Handlers the worker gave up on after an ABANDON (they ignored their signal). */
  stuck?: number;
  /** Jobs sent to it and not started yet (its prefetch queue), and how many it accepts. */
  prefetched?: number;
  prefetch?: number;
  /** From its HELLO: the pool it belongs to and the machine it runs on ('' if not said). */
  pool?: string;
  host?: string;
  done: number;
  failed: number;
}
/** Per-kind counters in the STATS reply. */
export interface KindStats {
  /** QUEUED jobs, delayed ones included. */
  queued: number;
  running: number;
  /** QUEUED jobs waiting for a delay or a retry backoff. */
  delayed?: number;
  /** Sent to a worker ahead of time, not started yet (counted apart from `running`). */
  prefetched?: number;
  /** Workers connected that run this kind. */
  workers?: number;
  /** Nothing of the kind is dispatched (ADMIN pause). */
  paused?: boolean;
  done: number;
  failed: number;
  cancelled: number;
  /** How long the job next in line has waited since it became runnable, ms (0 if none). */
  oldestQueuedMs: number;
  /** Jobs finished per second over the last few seconds. */
  donePerSec: number;
  submittedPerSec: number;
}
/** REPLY body of STATS. */
export interface StatsInfo {
  uptimeMs: number;
  serverVersion: string;
  connections: { clients: number; workers: number };
  totals: { queued: number; running: number; retained: number; submitted: number };
  kinds: Record<string, KindStats>;
  journal: JournalStats | null;
  /** Connection and request limits, and how often each refused (issue 11); absent from an embedded core. */
  limits?: LimitStats;
}
/** STATS `limits`. */
export interface LimitStats {
  connections: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  maxInFlight: number;
  maxWaits: number;
  /** Connections refused by maxConnections or maxConnectionsPerAddress (LIMIT_EXCEEDED). */
  refusedConnections: number;
  /** HELLOs refused with AUTH_FAILED. */
  authFailures: number;
  /** SUBMIT/WATCH refused by maxWaits (LIMIT_EXCEEDED). */
  waitsRefused: number;
}
/** Journal counters inside STATS (null without a data directory). */
export interface JournalStats {
  fsync: 'always' | 'batch' | 'off';
  bytes: number;
  recordsReplayed: number;
  recoverMs: number;
  lastCompactionAt: number | null;
  compactions: number;
}

// ---------------------------------------------------------------------------
// Framing

/**
 * Cuts a byte stream into frames. Feed it chunks as they arrive, of any size
 * and split anywhere; each `push` returns the frames the chunk completes.
 * Payloads are views into the input where possible (copy what you keep long).
 * A declared length above `maxPayloadBytes` throws `FRAME_TOO_LARGE` right
 * after the 5-byte header, before any payload is buffered. After a throw the
 * decoder refuses further input.
 */
export class FrameDecoder {
  /**
   * Unconsumed input is `#chunks[#head]` onwards: an index, because `shift()`
   * is O(n) on a long list (a payload trickled in tiny chunks was quadratic).
   */
  #chunks: Buffer[] = [];
  #head = 0;
  /** Bytes of `#chunks[#head]` already consumed (an offset, so no view is cut per header). */
  #offset = 0;
  /** Bytes received and not yet consumed. */
  #buffered = 0;
  /** Valid between a complete header and its complete payload. */
  #command = -1;
  #length = 0;
  #failed = false;

  /**
   * Largest payload accepted. Settable: a scheduler starts a connection with a
   * small limit until HELLO, and peers adopt the limit WELCOME announces.
   */
  maxPayloadBytes: number;

  constructor(maxPayloadBytes: number = DEFAULT_MAX_PAYLOAD) {
    this.maxPayloadBytes = maxPayloadBytes;
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Feeds one chunk and returns every frame it completes. Throws {@link ProtocolError}. */
  push(chunk: Buffer): Frame[] {
    this.feed(chunk);
    const frames: Frame[] = [];
    while (this.#cut()) frames.push({ command: this.#frameCommand, payload: this.#frameBuf.subarray(this.#frameStart, this.#frameEnd) });
    return frames;
  }

  /**
   * Feeds one chunk without cutting it: {@link nextMessage} then decodes the
   * frames it completes, one by one. Throws {@link ProtocolError} after a failure.
   */
  feed(chunk: Buffer): void {
    if (this.#failed) throw new ProtocolError('BAD_FRAME', 'decoder already failed');
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * Cuts and decodes the next complete frame, or returns undefined when none
   * is complete. The connections' hot path: a frame that sits in one chunk is
   * decoded where it lies, with no Frame object or payload view (issue 9).
   * Throws {@link ProtocolError} like {@link push} and {@link decodeMessage}.
   */
  nextMessage(): Message | undefined {
    if (!this.#cut()) return undefined;
    return decodeAt(this.#frameCommand, this.#frameBuf, this.#frameStart, this.#frameEnd);
  }

  /** The frame {@link #cut} found: its command and where its payload lies. */
  #frameCommand = 0;
  #frameBuf: Buffer = EMPTY;
  #frameStart = 0;
  #frameEnd = 0;

  /** Consumes the next complete frame, if there is one, into the #frame* fields. */
  #cut(): boolean {
    if (this.#command < 0) {
      if (this.#buffered < HEADER_BYTES) return false;
      let command: number;
      let length: number;
      const first = this.#chunks[this.#head]!;
      const off = this.#offset;
      if (first.length - off >= HEADER_BYTES) {
        // Hot path: the header sits in one chunk; read it in place.
        command = first[off]!;
        length = first.readUInt32BE(off + 1);
        this.#advance(first, off, HEADER_BYTES);
      } else {
        const head = this.#take(HEADER_BYTES);
        command = head[0]!;
        length = head.readUInt32BE(1);
      }
      if (length > this.maxPayloadBytes) {
        // PROTOCOL.md §2: rejected before any payload is buffered.
        this.#failed = true;
        this.#chunks = [];
        this.#head = 0;
        this.#offset = 0;
        this.#buffered = 0;
        throw new ProtocolError(
          'FRAME_TOO_LARGE',
          `frame payload of ${length} bytes exceeds the maximum of ${this.maxPayloadBytes}`,
        );
      }
      this.#command = command;
      this.#length = length;
    }
    const n = this.#length;
    if (this.#buffered < n) return false;
    this.#frameCommand = this.#command;
    this.#command = -1;
    const first = n === 0 ? EMPTY : this.#chunks[this.#head]!;
    const off = this.#offset;
    if (n === 0) {
      this.#frameBuf = EMPTY;
      this.#frameStart = this.#frameEnd = 0;
    } else if (first.length - off >= n) {
      this.#frameBuf = first;
      this.#frameStart = off;
      this.#frameEnd = off + n;
      this.#advance(first, off, n);
    } else {
      this.#frameBuf = this.#take(n);
      this.#frameStart = 0;
      this.#frameEnd = n;
    }
    return true;
  }

  /** True when a frame has started but not finished (a peer that hangs mid-frame). */
  get midFrame(): boolean {
    return this.#buffered > 0 || this.#command >= 0;
  }

  /** Consumes `n` bytes that sit in `first` (= `#chunks[#head]`) from `off`. */
  #advance(first: Buffer, off: number, n: number): void {
    this.#buffered -= n;
    if (first.length - off === n) {
      this.#dropHead();
    } else {
      this.#offset = off + n;
    }
  }

  /** Drops the fully consumed head chunk in O(1) amortised: the list is compacted once half of it is dead. */
  #dropHead(): void {
    const chunks = this.#chunks;
    this.#offset = 0;
    if (++this.#head === chunks.length) {
      chunks.length = 0; // reused: no new list per chunk
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= chunks.length) {
      this.#chunks = chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Removes `n` buffered bytes: a view when they sit in one chunk, else one copy. */
  #take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.#chunks[this.#head]!;
    const off = this.#offset;
    if (first.length - off >= n) {
      this.#advance(first, off, n);
      return first.subarray(off, off + n);
    }
    this.#buffered -= n;
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const chunk = this.#chunks[this.#head]!;
      const start = this.#offset;
      const have = chunk.length - start;
      const wanted = n - o;
      if (have <= wanted) {
        chunk.copy(out, o, start);
        o += have;
        this.#dropHead();
      } else {
        chunk.copy(out, o, start, start + wanted);
        this.#offset = start + wanted;
        o += wanted;
      }
    }
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * A {@link FrameDecoder} that also decodes each frame into a {@link Message}.
 * @example
 * const decoder = new MessageDecoder();
 * socket.on('data', (chunk) => { for (const msg of decoder.push(chunk)) handle(msg); });
 */
export class MessageDecoder {
  readonly #frames: FrameDecoder;
  constructor(maxPayloadBytes: number = DEFAULT_MAX_PAYLOAD) {
    this.#frames = new FrameDecoder(maxPayloadBytes);
  }
  get bufferedBytes(): number {
    return this.#frames.bufferedBytes;
  }
  #failed = false;
  /**
   * Feeds one chunk; returns the messages it completes. Throws {@link ProtocolError};
   * after a throw it refuses further input, like {@link FrameDecoder}.
   */
  push(chunk: Buffer): Message[] {
    if (this.#failed) throw new ProtocolError('BAD_FRAME', 'decoder already failed');
    try {
      const frames = this.#frames.push(chunk);
      const out: Message[] = new Array(frames.length);
      for (let i = 0; i < frames.length; i++) out[i] = decodeMessage(frames[i]!);
      return out;
    } catch (err) {
      this.#failed = true;
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------
// Field codecs

const EVENT_CODES: Record<JobEvent, number> = { done: 1, failed: 2, progress: 3, cancelled: 4 };
const EVENT_NAMES: (JobEvent | undefined)[] = [undefined, 'done', 'failed', 'progress', 'cancelled'];
const ABANDON_CODES: Record<AbandonReason, number> = { timeout: 1, cancelled: 2, lost: 3 };
const ABANDON_NAMES: (AbandonReason | undefined)[] = [undefined, 'timeout', 'cancelled', 'lost'];

const COMMAND_NAMES = new Map<number, string>(Object.entries(Command).map(([name, byte]) => [byte, name]));

/** The name of a command byte, or `0xNN` for an unknown one (for logs and errors). */
export function commandName(command: number): string {
  return COMMAND_NAMES.get(command) ?? `0x${command.toString(16).padStart(2, '0')}`;
}

function invalid(message: string): TaskwireError {
  return new TaskwireError('INVALID_ARGUMENT', message);
}

function checkUint(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw invalid(`${name} must be an integer from 0 to ${max}, got ${value}`);
  }
}

function str8Bytes(name: string, value: string): number {
  const n = isShortAscii(value) ? value.length : Buffer.byteLength(value);
  if (n > MAX_STR8_BYTES) throw invalid(`${name} is ${n} bytes of UTF-8; the maximum is ${MAX_STR8_BYTES}`);
  return n;
}

function frame(command: number, payloadBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + payloadBytes);
  buf[0] = command;
  buf.writeUInt32BE(payloadBytes, 1);
  return buf;
}

function checkU64(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(`job id must be a safe non-negative integer, got ${value}`);
}

function writeU64(buf: Buffer, value: number, offset: number): number {
  checkU64(value);
  const hi = Math.floor(value / 0x1_0000_0000);
  buf.writeUInt32BE(hi, offset);
  buf.writeUInt32BE(value - hi * 0x1_0000_0000, offset + 4);
  return offset + 8;
}

/** True for a string of at most 64 ASCII characters (job kinds, nearly always): its UTF-8 is its char codes. */
function isShortAscii(value: string): boolean {
  if (value.length > 64) return false;
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return false;
  return true;
}

function writeStr8(buf: Buffer, value: string, bytes: number, offset: number): number {
  buf[offset] = bytes;
  if (bytes === value.length && bytes <= 64) {
    // ASCII (a UTF-8 length equal to the UTF-16 length means no char above 0x7f): no call into C++.
    for (let i = 0; i < bytes; i++) buf[offset + 1 + i] = value.charCodeAt(i);
  } else if (bytes > 0) {
    buf.write(value, offset + 1, bytes, 'utf8');
  }
  return offset + 1 + bytes;
}

function jsonFrame(command: number, requestId: number | undefined, body: unknown): Buffer {
  const text = JSON.stringify(body) ?? 'null';
  const bytes = Buffer.byteLength(text);
  const head = requestId === undefined ? 0 : 4;
  const buf = frame(command, head + bytes);
  if (requestId !== undefined) buf.writeUInt32BE(requestId, HEADER_BYTES);
  buf.write(text, HEADER_BYTES + head, bytes, 'utf8');
  return buf;
}

/**
 * Short strings decoded recently, by a hash of their bytes: a job kind comes
 * with every SUBMIT and ASSIGN, and comparing its few bytes is cheaper than
 * decoding (and allocating) the same string again.
 */
const TEXT_CACHE_SLOTS = 16;
const TEXT_CACHE_MAX_BYTES = 32;
const textCacheBytes: (Buffer | undefined)[] = new Array<Buffer | undefined>(TEXT_CACHE_SLOTS).fill(undefined);
const textCacheText: string[] = new Array<string>(TEXT_CACHE_SLOTS).fill('');

/** `buf.toString('utf8', start, start + n)`, from the cache when the same bytes were seen lately. n > 0. */
function cachedText(buf: Buffer, start: number, n: number): string {
  if (n > TEXT_CACHE_MAX_BYTES) return strictText(buf, start, n);
  const slot = (n + buf[start]! * 7 + buf[start + n - 1]! * 13) & (TEXT_CACHE_SLOTS - 1);
  const cached = textCacheBytes[slot];
  if (cached !== undefined && cached.length === n) {
    let i = 0;
    while (i < n && cached[i] === buf[start + i]) i++;
    if (i === n) return textCacheText[slot]!;
  }
  const text = strictText(buf, start, n);
  textCacheBytes[slot] = Buffer.from(buf.subarray(start, start + n));
  textCacheText[slot] = text;
  return text;
}

/**
 * A str8 field's text, which must be valid UTF-8 (PROTOCOL.md §1): invalid
 * bytes would decode to U+FFFD and re-encode differently, or past 255 bytes.
 */
function strictText(buf: Buffer, start: number, n: number): string {
  let ascii = true;
  for (let i = start; i < start + n; i++) {
    if (buf[i]! > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (!ascii && !isUtf8(buf.subarray(start, start + n))) {
    throw new ProtocolError('BAD_FRAME', 'a str8 field is not valid UTF-8');
  }
  return buf.toString('utf8', start, start + n);
}

/**
 * Reads fixed fields off a payload, `buf[start, limit)`; every overrun is a
 * TRUNCATED_PAYLOAD ProtocolError. One instance is reused by {@link decodeAt}.
 */
class Reader {
  buf: Buffer = EMPTY;
  command = 0;
  start = 0;
  offset = 0;
  limit = 0;
  reset(buf: Buffer, command: number, start: number, limit: number): this {
    this.buf = buf;
    this.command = command;
    this.start = this.offset = start;
    this.limit = limit;
    return this;
  }
  need(n: number): void {
    if (this.offset + n > this.limit) {
      throw new ProtocolError(
        'TRUNCATED_PAYLOAD',
        `${commandName(this.command)} payload of ${this.limit - this.start} bytes is too short`,
      );
    }
  }
  u8(): number {
    this.need(1);
    return this.buf[this.offset++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const hi = this.buf.readUInt32BE(this.offset);
    const lo = this.buf.readUInt32BE(this.offset + 4);
    this.offset += 8;
    if (hi > 0x1f_ffff) throw new ProtocolError('BAD_FRAME', `${commandName(this.command)}: job id is 2^53 or more`);
    return hi * 0x1_0000_0000 + lo;
  }
  str8(): string {
    const n = this.u8();
    this.need(n);
    const s = n === 0 ? '' : cachedText(this.buf, this.offset, n);
    this.offset += n;
    return s;
  }
  /** True while unread bytes remain (optional trailing fields). */
  more(): boolean {
    return this.offset < this.limit;
  }
  /** The rest of the payload as a view. */
  rest(): Buffer {
    const out = this.offset === this.limit ? EMPTY : this.buf.subarray(this.offset, this.limit);
    this.offset = this.limit;
    return out;
  }
  restText(): string {
    let s: string;
    try {
      s = this.offset === this.limit ? '' : this.buf.toString('utf8', this.offset, this.limit);
    } catch (err) {
      // Only past buffer.constants.MAX_STRING_LENGTH (~512 MiB, a raised maxPayloadBytes): still a ProtocolError.
      throw new ProtocolError('BAD_FRAME', `${commandName(this.command)}: text too long`, { cause: err });
    }
    this.offset = this.limit;
    return s;
  }
  json(): unknown {
    const text = this.restText();
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new ProtocolError('BAD_FRAME', `${commandName(this.command)}: payload is not valid JSON`, { cause: err });
    }
  }
  end(): void {
    if (this.offset !== this.limit) {
      throw new ProtocolError(
        'BAD_FRAME',
        `${commandName(this.command)} has ${this.limit - this.offset} trailing bytes`,
      );
    }
  }
}

function jsonObject(command: number, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('BAD_FRAME', `${commandName(command)}: payload must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function field<T>(command: number, obj: Record<string, unknown>, name: string, check: (v: unknown) => v is T): T {
  const v = obj[name];
  if (!check(v)) throw new ProtocolError('BAD_FRAME', `${commandName(command)}: field "${name}" is missing or of the wrong type`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
// JSON numbers get the same ranges encode() enforces, so whatever decodes re-encodes.
const isU16 = (v: unknown): v is number => isUint(v) && v <= 0xffff;
const isU32 = (v: unknown): v is number => isUint(v) && v <= U32_MAX;
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isRole = (v: unknown): v is Role => v === 'client' || v === 'worker';

// ---------------------------------------------------------------------------
// encode / decodeMessage

/** The hot-path messages: fixed binary layouts that {@link encodeInto} can write in place. */
export type HotMessage = SubmitMessage | AckMessage | AssignMessage | ResultMessage | EventMessage;

/** True for the messages {@link encodeInto} writes. */
export function isHotMessage(msg: Message): msg is HotMessage {
  const t = msg.type;
  return t === 'SUBMIT' || t === 'ACK' || t === 'ASSIGN' || t === 'RESULT' || t === 'EVENT';
}

/**
 * Size of the frame {@link encode} makes of `msg` if it is a hot-path message
 * (SUBMIT, ACK, ASSIGN, RESULT, EVENT), else -1. Throws `INVALID_ARGUMENT`
 * for an over-long str8 field, like encode().
 */
export function hotFrameBytes(msg: Message): number {
  switch (msg.type) {
    case 'SUBMIT':
      return HEADER_BYTES + 22 + str8Bytes('kind', msg.kind) + str8Bytes('key', msg.key) + msg.args.length;
    case 'ACK':
      return HEADER_BYTES + 13;
    case 'ASSIGN':
      return HEADER_BYTES + 17 + str8Bytes('kind', msg.kind) + msg.args.length;
    case 'RESULT':
      return HEADER_BYTES + 12 + msg.result.length;
    case 'EVENT':
      return HEADER_BYTES + 15 + msg.data.length;
    default:
      return -1;
  }
}

/**
 * Writes a hot-path message as a frame into `buf` at `offset` — the same
 * bytes as {@link encode} — and returns the offset after it, so a connection
 * can batch frames in one buffer without a Buffer per frame. Every field is
 * checked before anything is written (`INVALID_ARGUMENT`); a frame that does
 * not fit is a RangeError.
 */
export function encodeInto(msg: HotMessage, buf: Buffer, offset: number): number {
  switch (msg.type) {
    case 'SUBMIT': {
      checkUint('requestId', msg.requestId, U32_MAX);
      checkUint('priority', msg.priority, 255);
      checkUint('maxRetries', msg.maxRetries, 0xffff);
      checkUint('timeoutMs', msg.timeoutMs, U32_MAX);
      checkUint('estMs', msg.estMs, U32_MAX);
      checkUint('delayMs', msg.delayMs, U32_MAX);
      const kindBytes = str8Bytes('kind', msg.kind);
      const keyBytes = str8Bytes('key', msg.key);
      let o = frameHead(buf, offset, Command.SUBMIT, 22 + kindBytes + keyBytes + msg.args.length);
      buf.writeUInt32BE(msg.requestId, o);
      buf[o + 4] = (msg.wait ? 1 : 0) | (msg.progress ? 2 : 0);
      buf[o + 5] = msg.priority;
      buf.writeUInt16BE(msg.maxRetries, o + 6);
      buf.writeUInt32BE(msg.timeoutMs, o + 8);
      buf.writeUInt32BE(msg.estMs, o + 12);
      buf.writeUInt32BE(msg.delayMs, o + 16);
      o = writeStr8(buf, msg.kind, kindBytes, o + 20);
      o = writeStr8(buf, msg.key, keyBytes, o);
      buf.set(msg.args, o);
      return o + msg.args.length;
    }
    case 'ACK':
      return encodeAckInto(buf, offset, msg.requestId, msg.jobId, msg.existing);
    case 'ASSIGN':
      return encodeAssignInto(buf, offset, msg.jobId, msg.attempt, msg.timeoutMs, msg.kind, msg.args);
    case 'RESULT':
      return encodeResultInto(buf, offset, msg.jobId, msg.attempt, msg.result, msg.result.length);
    case 'EVENT':
      return encodeEventInto(buf, offset, msg.jobId, msg.event, msg.attempt, msg.pct, msg.permanent, msg.data);
    default:
      return assertNever(msg);
  }
}

/** Size of an ACK frame. */
export const ACK_FRAME_BYTES = HEADER_BYTES + 13;

/** Writes an ACK frame at `offset` without a message object, like {@link encodeInto}; returns the offset after it. */
export function encodeAckInto(buf: Buffer, offset: number, requestId: number, jobId: number, existing: boolean): number {
  checkUint('requestId', requestId, U32_MAX);
  checkU64(jobId);
  const o = frameHead(buf, offset, Command.ACK, 13);
  buf.writeUInt32BE(requestId, o);
  writeU64(buf, jobId, o + 4);
  buf[o + 12] = existing ? 1 : 0;
  return o + 13;
}

/** Size of an EVENT frame with `dataBytes` of data. */
export function eventFrameBytes(dataBytes: number): number {
  return HEADER_BYTES + 15 + dataBytes;
}

/** Writes an EVENT frame at `offset` without a message object, like {@link encodeInto}; returns the offset after it. */
export function encodeEventInto(buf: Buffer, offset: number, jobId: number, event: JobEvent, attempt: number, pct: number, permanent: boolean, data: Buffer): number {
  checkU64(jobId);
  checkUint('attempt', attempt, U32_MAX);
  checkUint('pct', pct, 255);
  const o = frameHead(buf, offset, Command.EVENT, 15 + data.length);
  writeU64(buf, jobId, o);
  buf[o + 8] = EVENT_CODES[event];
  buf[o + 9] = permanent ? 1 : 0;
  buf[o + 10] = pct;
  buf.writeUInt32BE(attempt, o + 11);
  buf.set(data, o + 15);
  return o + 15 + data.length;
}

/** Size of an ASSIGN frame of `kind` with `argsBytes` of arguments (throws INVALID_ARGUMENT for an over-long kind). */
export function assignFrameBytes(kind: string, argsBytes: number): number {
  return HEADER_BYTES + 17 + str8Bytes('kind', kind) + argsBytes;
}

/**
 * Writes an ASSIGN frame at `offset` without a message object, like
 * {@link encodeInto}; `args` may also be a latin1 string (one char per byte:
 * how a scheduler can keep small arguments), written without a Buffer.
 * Returns the offset after the frame.
 */
export function encodeAssignInto(buf: Buffer, offset: number, jobId: number, attempt: number, timeoutMs: number, kind: string, args: Buffer | string): number {
  checkU64(jobId);
  checkUint('attempt', attempt, U32_MAX);
  checkUint('timeoutMs', timeoutMs, U32_MAX);
  const kindBytes = str8Bytes('kind', kind);
  let o = frameHead(buf, offset, Command.ASSIGN, 17 + kindBytes + args.length);
  writeU64(buf, jobId, o);
  buf.writeUInt32BE(attempt, o + 8);
  buf.writeUInt32BE(timeoutMs, o + 12);
  o = writeStr8(buf, kind, kindBytes, o + 16);
  if (typeof args === 'string') buf.write(args, o, 'latin1');
  else buf.set(args, o);
  return o + args.length;
}

/**
 * Writes a RESULT frame at `offset` without a message object, like
 * {@link encodeInto}; `result` may also be a string, written as its UTF-8
 * bytes (`resultBytes` of them: `Buffer.byteLength(result)`). Returns the
 * offset after the frame.
 */
export function encodeResultInto(buf: Buffer, offset: number, jobId: number, attempt: number, result: Buffer | string, resultBytes: number): number {
  checkU64(jobId);
  checkUint('attempt', attempt, U32_MAX);
  const o = frameHead(buf, offset, Command.RESULT, 12 + resultBytes);
  writeU64(buf, jobId, o);
  buf.writeUInt32BE(attempt, o + 8);
  if (typeof result !== 'string') buf.set(result, o + 12);
  else if (buf.write(result, o + 12, resultBytes, 'utf8') !== resultBytes) throw new RangeError('resultBytes is not the byte length of the result');
  return o + 12 + resultBytes;
}

/**
 * A hot-path message as two buffers: the frame up to its trailing bytes
 * field (args, result or data), and that field itself, not copied. For
 * large payloads a connection writes both with one writev instead of
 * copying the payload into a frame (issue 9: bytes cross the scheduler with
 * one copy, the one that takes them off the socket).
 */
export function encodeSplit(msg: HotMessage): [Buffer, Buffer] {
  let body: Buffer;
  let empty: HotMessage;
  switch (msg.type) {
    case 'SUBMIT':
    case 'ASSIGN':
      body = msg.args;
      empty = { ...msg, args: EMPTY_PAYLOAD };
      break;
    case 'RESULT':
      body = msg.result;
      empty = { ...msg, result: EMPTY_PAYLOAD };
      break;
    case 'EVENT':
      body = msg.data;
      empty = { ...msg, data: EMPTY_PAYLOAD };
      break;
    case 'ACK':
      return [encode(msg), EMPTY_PAYLOAD];
    default:
      return assertNever(msg);
  }
  const head = Buffer.allocUnsafe(hotFrameBytes(empty));
  encodeInto(empty, head, 0);
  head.writeUInt32BE(head.length - HEADER_BYTES + body.length, 1);
  return [head, body];
}
const EMPTY_PAYLOAD = Buffer.alloc(0);

/** Writes a frame header at `offset` after checking the whole frame fits; returns the payload offset. */
function frameHead(buf: Buffer, offset: number, command: number, payloadBytes: number): number {
  if (offset + HEADER_BYTES + payloadBytes > buf.length) {
    throw new RangeError(`frame of ${HEADER_BYTES + payloadBytes} bytes does not fit at offset ${offset} of ${buf.length}`);
  }
  buf[offset] = command;
  buf.writeUInt32BE(payloadBytes, offset + 1);
  return offset + HEADER_BYTES;
}

/**
 * Encodes one message as a complete frame. The exact inverse of
 * {@link decodeMessage}. Throws `INVALID_ARGUMENT` for out-of-range fields.
 */
export function encode(msg: Message): Buffer {
  switch (msg.type) {
    case 'SUBMIT':
    case 'ACK':
    case 'ASSIGN':
    case 'RESULT':
    case 'EVENT': {
      const buf = Buffer.allocUnsafe(hotFrameBytes(msg));
      encodeInto(msg, buf, 0);
      return buf;
    }
    case 'FAIL': {
      checkUint('attempt', msg.attempt, U32_MAX);
      const bytes = Buffer.byteLength(msg.message);
      const buf = frame(Command.FAIL, 13 + bytes);
      writeU64(buf, msg.jobId, HEADER_BYTES);
      buf.writeUInt32BE(msg.attempt, HEADER_BYTES + 8);
      buf[HEADER_BYTES + 12] = msg.returned === true ? 2 : msg.permanent ? 1 : 0;
      buf.write(msg.message, HEADER_BYTES + 13, bytes, 'utf8');
      return buf;
    }
    case 'PROGRESS': {
      checkUint('attempt', msg.attempt, U32_MAX);
      checkUint('pct', msg.pct, 255);
      const bytes = Buffer.byteLength(msg.message);
      const buf = frame(Command.PROGRESS, 13 + bytes);
      writeU64(buf, msg.jobId, HEADER_BYTES);
      buf.writeUInt32BE(msg.attempt, HEADER_BYTES + 8);
      buf[HEADER_BYTES + 12] = msg.pct;
      buf.write(msg.message, HEADER_BYTES + 13, bytes, 'utf8');
      return buf;
    }
    case 'ABANDON': {
      checkUint('attempt', msg.attempt, U32_MAX);
      const buf = frame(Command.ABANDON, 13);
      writeU64(buf, msg.jobId, HEADER_BYTES);
      buf.writeUInt32BE(msg.attempt, HEADER_BYTES + 8);
      buf[HEADER_BYTES + 12] = ABANDON_CODES[msg.reason];
      return buf;
    }
    case 'WATCH': {
      checkUint('requestId', msg.requestId, U32_MAX);
      const buf = frame(Command.WATCH, 13);
      buf.writeUInt32BE(msg.requestId, HEADER_BYTES);
      writeU64(buf, msg.jobId, HEADER_BYTES + 4);
      buf[HEADER_BYTES + 12] = msg.progress ? 1 : 0;
      return buf;
    }
    case 'STATUS':
    case 'CANCEL': {
      checkUint('requestId', msg.requestId, U32_MAX);
      const buf = frame(msg.type === 'STATUS' ? Command.STATUS : Command.CANCEL, 12);
      buf.writeUInt32BE(msg.requestId, HEADER_BYTES);
      writeU64(buf, msg.jobId, HEADER_BYTES + 4);
      return buf;
    }
    case 'LIST': {
      checkUint('requestId', msg.requestId, U32_MAX);
      checkUint('limit', msg.limit, U32_MAX);
      const stateBytes = str8Bytes('state', msg.state);
      const kindBytes = str8Bytes('kind', msg.kind);
      // The cursor and order are an optional trailer (§5.6): absent, the page starts at the newest job.
      const paged = msg.afterId !== undefined || msg.order !== undefined;
      const afterId = msg.afterId ?? 0;
      checkUint('afterId', afterId, Number.MAX_SAFE_INTEGER);
      const buf = frame(Command.LIST, 10 + stateBytes + kindBytes + (paged ? 9 : 0));
      buf.writeUInt32BE(msg.requestId, HEADER_BYTES);
      buf.writeUInt32BE(msg.limit, HEADER_BYTES + 4);
      let o = writeStr8(buf, msg.state, stateBytes, HEADER_BYTES + 8);
      o = writeStr8(buf, msg.kind, kindBytes, o);
      if (paged) {
        buf.writeUInt32BE(Math.floor(afterId / 0x1_0000_0000), o);
        buf.writeUInt32BE(afterId >>> 0, o + 4);
        buf[o + 8] = msg.order === 'oldest' ? 1 : 0;
      }
      return buf;
    }
    case 'ADMIN':
      checkUint('requestId', msg.requestId, U32_MAX);
      return jsonFrame(Command.ADMIN, msg.requestId, msg.body);
    case 'FOLLOW': {
      checkUint('requestId', msg.requestId, U32_MAX);
      const kindBytes = str8Bytes('kind', msg.kind);
      const buf = frame(Command.FOLLOW, 5 + kindBytes);
      buf.writeUInt32BE(msg.requestId, HEADER_BYTES);
      writeStr8(buf, msg.kind, kindBytes, HEADER_BYTES + 4);
      return buf;
    }
    case 'NOTICE': {
      checkU64(msg.jobId);
      checkUint('attempt', msg.attempt, U32_MAX);
      const kindBytes = str8Bytes('kind', msg.kind);
      const buf = frame(Command.NOTICE, 14 + kindBytes);
      writeU64(buf, msg.jobId, HEADER_BYTES);
      buf[HEADER_BYTES + 8] = JOB_STATES.indexOf(msg.state) + 1;
      buf.writeUInt32BE(msg.attempt, HEADER_BYTES + 9);
      writeStr8(buf, msg.kind, kindBytes, HEADER_BYTES + 13);
      return buf;
    }
    case 'WORKERS':
    case 'STATS':
    case 'COMPACT': {
      checkUint('requestId', msg.requestId, U32_MAX);
      const buf = frame(Command[msg.type], 4);
      buf.writeUInt32BE(msg.requestId, HEADER_BYTES);
      return buf;
    }
    case 'HEARTBEAT': {
      checkUint('running', msg.running, U32_MAX);
      const stuck = msg.stuck ?? 0;
      checkUint('stuck', stuck, U32_MAX);
      const buf = frame(Command.HEARTBEAT, stuck === 0 ? 4 : 8);
      buf.writeUInt32BE(msg.running, HEADER_BYTES);
      if (stuck !== 0) buf.writeUInt32BE(stuck, HEADER_BYTES + 4);
      return buf;
    }
    case 'GOODBYE': {
      const bytes = Buffer.byteLength(msg.reason);
      const buf = frame(Command.GOODBYE, bytes);
      buf.write(msg.reason, HEADER_BYTES, bytes, 'utf8');
      return buf;
    }
    case 'ERROR': {
      checkUint('requestId', msg.requestId, U32_MAX);
      const codeBytes = str8Bytes('code', msg.code);
      const bytes = Buffer.byteLength(msg.message);
      const buf = frame(Command.ERROR, 5 + codeBytes + bytes);
      buf.writeUInt32BE(msg.requestId, HEADER_BYTES);
      const o = writeStr8(buf, msg.code, codeBytes, HEADER_BYTES + 4);
      buf.write(msg.message, o, bytes, 'utf8');
      return buf;
    }
    case 'REPLY': {
      checkUint('requestId', msg.requestId, U32_MAX);
      if (msg.data === undefined) return jsonFrame(Command.REPLY, msg.requestId, msg.body);
      const json = Buffer.from(JSON.stringify(msg.body));
      const buf = frame(Command.REPLY_DATA, 8 + json.length + msg.data.length);
      buf.writeUInt32BE(msg.requestId, HEADER_BYTES);
      buf.writeUInt32BE(json.length, HEADER_BYTES + 4);
      json.copy(buf, HEADER_BYTES + 8);
      msg.data.copy(buf, HEADER_BYTES + 8 + json.length);
      return buf;
    }
    case 'HELLO': {
      checkUint('version', msg.version, 0xffff);
      checkUint('concurrency', msg.concurrency, U32_MAX);
      const body: Record<string, unknown> = {
        version: msg.version,
        role: msg.role,
        name: msg.name,
        capabilities: msg.capabilities,
        concurrency: msg.concurrency,
      };
      if (msg.prefetch !== undefined) {
        checkUint('prefetch', msg.prefetch, U32_MAX);
        body['prefetch'] = msg.prefetch;
      }
      if (msg.pool !== undefined) body['pool'] = msg.pool;
      if (msg.host !== undefined) body['host'] = msg.host;
      if (msg.token !== undefined) body['token'] = msg.token;
      return jsonFrame(Command.HELLO, undefined, body);
    }
    case 'WELCOME': {
      checkUint('version', msg.version, 0xffff);
      checkUint('heartbeatMs', msg.heartbeatMs, U32_MAX);
      checkUint('maxPayloadBytes', msg.maxPayloadBytes, U32_MAX);
      const { type: _type, ...body } = msg;
      return jsonFrame(Command.WELCOME, undefined, body);
    }
    default:
      return assertNever(msg);
  }
}

/**
 * Decodes one frame into a {@link Message}. Throws {@link ProtocolError}
 * (`UNKNOWN_COMMAND`, `TRUNCATED_PAYLOAD`, `BAD_FRAME`) for anything else.
 */
export function decodeMessage(f: Frame): Message {
  return decodeAt(f.command, f.payload, 0, f.payload.length);
}

/** The reader {@link decodeAt} reuses (decoding is synchronous and never nested). */
const READER = new Reader();

/** Decodes the payload `buf[start, end)` of a frame with `command`; {@link decodeMessage} without a Frame. */
function decodeAt(command: number, buf: Buffer, start: number, end: number): Message {
  const r = READER.reset(buf, command, start, end);
  let msg: Message;
  switch (command) {
    case Command.SUBMIT: {
      const requestId = r.u32();
      const flags = r.u8();
      const priority = r.u8();
      const maxRetries = r.u16();
      const timeoutMs = r.u32();
      const estMs = r.u32();
      const delayMs = r.u32();
      const kind = r.str8();
      const key = r.str8();
      return {
        type: 'SUBMIT',
        requestId,
        kind,
        args: r.rest(),
        priority,
        timeoutMs,
        maxRetries,
        estMs,
        delayMs,
        key,
        wait: (flags & 1) !== 0,
        progress: (flags & 2) !== 0,
      };
    }
    case Command.ACK:
      msg = { type: 'ACK', requestId: r.u32(), jobId: r.u64(), existing: r.u8() === 1 };
      break;
    case Command.ASSIGN: {
      const jobId = r.u64();
      const attempt = r.u32();
      const timeoutMs = r.u32();
      const kind = r.str8();
      return { type: 'ASSIGN', jobId, attempt, timeoutMs, kind, args: r.rest() };
    }
    case Command.RESULT: {
      const jobId = r.u64();
      const attempt = r.u32();
      return { type: 'RESULT', jobId, attempt, result: r.rest() };
    }
    case Command.EVENT: {
      const jobId = r.u64();
      const code = r.u8();
      const event = EVENT_NAMES[code];
      if (event === undefined) throw new ProtocolError('BAD_FRAME', `EVENT: unknown event code ${code}`);
      const permanent = r.u8() === 1;
      const pct = r.u8();
      const attempt = r.u32();
      return { type: 'EVENT', jobId, event, attempt, pct, permanent, data: r.rest() };
    }
    case Command.FAIL: {
      const jobId = r.u64();
      const attempt = r.u32();
      const how = r.u8();
      const fail: FailMessage = { type: 'FAIL', jobId, attempt, permanent: how === 1, message: r.restText() };
      if (how === 2) fail.returned = true;
      return fail;
    }
    case Command.PROGRESS: {
      const jobId = r.u64();
      const attempt = r.u32();
      const pct = r.u8();
      return { type: 'PROGRESS', jobId, attempt, pct, message: r.restText() };
    }
    case Command.ABANDON: {
      const jobId = r.u64();
      const attempt = r.u32();
      const code = r.u8();
      const reason = ABANDON_NAMES[code];
      if (reason === undefined) throw new ProtocolError('BAD_FRAME', `ABANDON: unknown reason code ${code}`);
      msg = { type: 'ABANDON', jobId, attempt, reason };
      break;
    }
    case Command.WATCH:
      msg = { type: 'WATCH', requestId: r.u32(), jobId: r.u64(), progress: r.u8() === 1 };
      break;
    case Command.STATUS:
      msg = { type: 'STATUS', requestId: r.u32(), jobId: r.u64() };
      break;
    case Command.CANCEL:
      msg = { type: 'CANCEL', requestId: r.u32(), jobId: r.u64() };
      break;
    case Command.LIST: {
      const requestId = r.u32();
      const limit = r.u32();
      const state = r.str8();
      if (state !== '' && !(JOB_STATES as readonly string[]).includes(state)) {
        throw new ProtocolError('BAD_FRAME', `LIST: unknown state "${state}"`);
      }
      const kind = r.str8();
      msg = { type: 'LIST', requestId, limit, state: state as JobState | '', kind };
      if (r.more()) {
        msg.afterId = r.u64();
        const flags = r.u8();
        if (flags > 1) throw new ProtocolError('BAD_FRAME', `LIST: unknown flags ${flags}`);
        msg.order = flags === 1 ? 'oldest' : 'newest';
      }
      break;
    }
    case Command.WORKERS:
      msg = { type: 'WORKERS', requestId: r.u32() };
      break;
    case Command.STATS:
      msg = { type: 'STATS', requestId: r.u32() };
      break;
    case Command.COMPACT:
      msg = { type: 'COMPACT', requestId: r.u32() };
      break;
    case Command.FOLLOW: {
      const requestId = r.u32();
      msg = { type: 'FOLLOW', requestId, kind: r.str8() };
      break;
    }
    case Command.NOTICE: {
      const jobId = r.u64();
      const code = r.u8();
      const state = JOB_STATES[code - 1];
      if (state === undefined) throw new ProtocolError('BAD_FRAME', `NOTICE: unknown state code ${code}`);
      const attempt = r.u32();
      msg = { type: 'NOTICE', jobId, state, attempt, kind: r.str8() };
      break;
    }
    case Command.ADMIN: {
      const requestId = r.u32();
      const body = jsonObject(command, r.json());
      if (typeof body['op'] !== 'string') throw new ProtocolError('BAD_FRAME', 'ADMIN: field "op" must be a string');
      // The operation's own fields are checked by the scheduler (INVALID_ARGUMENT, the connection stays).
      return { type: 'ADMIN', requestId, body: body as AdminRequest };
    }
    case Command.HEARTBEAT:
      msg = { type: 'HEARTBEAT', running: r.u32() };
      if (r.more()) msg.stuck = r.u32();
      break;
    case Command.GOODBYE:
      return { type: 'GOODBYE', reason: r.restText() };
    case Command.ERROR: {
      const requestId = r.u32();
      const code = r.str8();
      const message = r.restText();
      // A code from a newer peer still surfaces, as INTERNAL with the code in the text.
      return isErrorCode(code)
        ? { type: 'ERROR', requestId, code, message }
        : { type: 'ERROR', requestId, code: 'INTERNAL', message: `${code}: ${message}` };
    }
    case Command.REPLY:
      return { type: 'REPLY', requestId: r.u32(), body: r.json() };
    case Command.REPLY_DATA: {
      const requestId = r.u32();
      const jsonBytes = r.u32();
      r.need(jsonBytes);
      const body = new Reader().reset(buf, command, r.offset, r.offset + jsonBytes).json();
      r.offset += jsonBytes;
      return { type: 'REPLY', requestId, body, data: r.rest() };
    }
    case Command.HELLO: {
      const c = command;
      const o = jsonObject(c, r.json());
      const token = o['token'];
      if (token !== undefined && typeof token !== 'string') {
        throw new ProtocolError('BAD_FRAME', 'HELLO: field "token" must be a string');
      }
      const hello: HelloMessage = {
        type: 'HELLO',
        version: field(c, o, 'version', isU16),
        role: field(c, o, 'role', isRole),
        name: field(c, o, 'name', isString),
        capabilities: field(c, o, 'capabilities', isStringArray),
        concurrency: field(c, o, 'concurrency', isU32),
      };
      if (o['prefetch'] !== undefined) hello.prefetch = field(c, o, 'prefetch', isU32);
      if (o['pool'] !== undefined) hello.pool = field(c, o, 'pool', isString);
      if (o['host'] !== undefined) hello.host = field(c, o, 'host', isString);
      if (token !== undefined) hello.token = token;
      return hello;
    }
    case Command.WELCOME: {
      const c = command;
      const o = jsonObject(c, r.json());
      return {
        type: 'WELCOME',
        version: field(c, o, 'version', isU16),
        serverVersion: field(c, o, 'serverVersion', isString),
        heartbeatMs: field(c, o, 'heartbeatMs', isU32),
        maxPayloadBytes: field(c, o, 'maxPayloadBytes', isU32),
        sessionId: field(c, o, 'sessionId', isString),
      };
    }
    default:
      throw new ProtocolError('UNKNOWN_COMMAND', `unknown command ${commandName(command)}`);
  }
  r.end();
  return msg;
}

/** Decodes a whole buffer of complete frames (tests, tools). Throws on a partial tail. */
export function decodeAll(bytes: Buffer, maxPayloadBytes = DEFAULT_MAX_PAYLOAD): Message[] {
  const decoder = new FrameDecoder(maxPayloadBytes);
  const messages = decoder.push(bytes).map(decodeMessage);
  if (decoder.midFrame) throw new ProtocolError('TRUNCATED_PAYLOAD', 'input ends inside a frame');
  return messages;
}

/** Compile-time exhaustiveness check for `switch (msg.type)`. */
export function assertNever(x: never): never {
  throw new Error(`unhandled ${JSON.stringify(x)}`);
}
