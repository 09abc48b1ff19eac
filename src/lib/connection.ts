import type { Socket } from 'node:net';
import { ProtocolError, TaskwireError, type ErrorCode } from './errors.js';
import { Heartbeat } from './heartbeat.js';
import {
  ACK_FRAME_BYTES,
  assignFrameBytes,
  encode,
  encodeAckInto,
  encodeAssignInto,
  encodeEventInto,
  encodeResultInto,
  encodeInto,
  encodeSplit,
  FrameDecoder,
  DEFAULT_MAX_PAYLOAD,
  eventFrameBytes,
  HEADER_BYTES,
  hotFrameBytes,
  isHotMessage,
  type JobEvent,
  type Message,
} from './protocol.js';

/** What a {@link Connection} reports to its owner. */
export interface ConnectionHandlers {
  /** One decoded message. A throw here closes the connection with INTERNAL. */
  onMessage(msg: Message): void;
  /** The socket closed; `err` says why when it was not a clean end. Called once. */
  onClose(err: Error | undefined): void;
}

/** Options of a {@link Connection}. */
export interface ConnectionOptions {
  maxPayloadBytes?: number;
  /**
   * Stop reading from the peer while this many bytes wait to be written to
   * it, so a peer that sends requests but does not read the answers cannot
   * grow our buffers. Default: never (clients and workers always read: a
   * consumer that stops reading because of its own output deadlocks with
   * its scheduler). The scheduler sets it.
   */
  highWaterBytes?: number;
  /**
   * Close the connection with SLOW_CONSUMER when more than this many bytes
   * wait to be written to the peer (DESIGN.md rule 2: a peer that does not
   * read gets a bounded buffer, then its own error code). Default: no bound.
   */
  maxBufferedBytes?: number;
  /**
   * Largest payload the peer accepts: a REPLY that would exceed it is
   * answered with ERROR TOO_LARGE instead (DESIGN.md rule 3). Default: no check.
   */
  peerMaxPayloadBytes?: number;
  /** The socket was connected with `onread: reads.onread`: its bytes come from there, not from 'data' events. */
  reads?: DirectReads;
}

/** Reads land in slabs of this size... */
const SLAB_BYTES = 64 * 1024;
/** ...while at least this much of the slab is free; then a new slab. */
const MIN_READ_BYTES = 16 * 1024;

/**
 * Reads of a plain TCP socket handed straight to their consumer: the
 * `onread` option of `net.connect` (issue 9). This skips the stream
 * machinery a 'data' event goes through (push, the flowing-mode bookkeeping,
 * a nextTick per read), about 5–7 µs a read at low load. Each read goes into
 * the unused tail of a 64 KiB slab, so reads do not allocate a buffer each,
 * yet bytes once read are never written again: frames may stay views of
 * them (a prefetched ASSIGN's arguments do). Node's TLS sockets have no
 * `onread`; they keep 'data' events.
 */
export class DirectReads {
  #slab = Buffer.allocUnsafe(SLAB_BYTES);
  #used = 0;
  #sink: ((chunk: Buffer) => void) | undefined = undefined;
  /** Chunks read before the sink was set. */
  #early: Buffer[] = [];
  /** For `net.connect({ ..., onread: reads.onread })`. */
  readonly onread = {
    buffer: (): Buffer => {
      if (SLAB_BYTES - this.#used < MIN_READ_BYTES) {
        this.#slab = Buffer.allocUnsafe(SLAB_BYTES);
        this.#used = 0;
      }
      return this.#slab.subarray(this.#used);
    },
    callback: (n: number, buf: Uint8Array): boolean => {
      this.#used += n;
      const chunk = (buf as Buffer).subarray(0, n);
      if (this.#sink === undefined) this.#early.push(chunk);
      else this.#sink(chunk);
      return true; // false would pause the socket
    },
  };
  /** A look at every chunk before the sink gets it (the client's check of the first reply), until cleared. */
  peek: ((chunk: Buffer) => void) | undefined = undefined;

  /** Where the chunks go from now on (a Connection's decoder); chunks read before are handed over first. */
  set sink(fn: (chunk: Buffer) => void) {
    this.#sink = (chunk) => {
      this.peek?.(chunk);
      fn(chunk);
    };
    const early = this.#early;
    this.#early = [];
    for (const chunk of early) this.#sink(chunk);
  }
}

const EMPTY_LIST: Buffer[] = [];

/**
 * Flushes due at the end of this event-loop turn's I/O: every connection
 * that queued frames while the poll phase handled its ready sockets is
 * written once, in one `setImmediate` for all of them. Frames decided in
 * response to several reads (RESULTs from two workers, SUBMITs from many
 * clients) then share one write syscall per connection — at low concurrency
 * that is most of the cost per job — and a lone frame still goes out in
 * the same turn, never held back for a timer.
 */
let dueFlushes: (() => void)[] = [];
let flushQueued = false;
function runFlushes(): void {
  flushQueued = false;
  const due = dueFlushes;
  dueFlushes = [];
  for (let i = 0; i < due.length; i++) due[i]!();
}
function scheduleFlush(flush: () => void): void {
  dueFlushes.push(flush);
  if (!flushQueued) {
    flushQueued = true;
    setImmediate(runFlushes);
  }
}
/** A tick's frames up to this size are copied into one buffer for one write. */
const CONCAT_MAX_BYTES = 64 * 1024;
/** Frames this big are written as they are (writev), never copied into a batch. */
const BIG_FRAME_BYTES = 16 * 1024;
/** Hot-path frames up to this size are encoded straight into the batch buffer. */
const ARENA_MAX_FRAME_BYTES = 8 * 1024;
/** Batch buffers are sized to the traffic: from 2 KiB (an idle connection) to 64 KiB. */
const ARENA_MIN_BYTES = 2 * 1024;
const ARENA_MAX_BYTES = 64 * 1024;

/**
 * Socket ↔ decoder glue shared by scheduler, worker and client: decodes
 * inbound frames, batches outbound ones (all frames sent during one tick go
 * out in one `write`, and a lone frame is written in the same tick, never
 * held back), applies backpressure, and runs the heartbeat.
 */
export class Connection {
  readonly remote: string;
  readonly #socket: Socket;
  readonly #handlers: ConnectionHandlers;
  readonly #decoder: FrameDecoder;
  readonly #highWaterBytes: number;
  readonly #maxBufferedBytes: number;
  readonly #peerMaxPayloadBytes: number;
  #gone = false;
  /** Frames queued for the next write, in order. */
  #pending: Buffer[] = EMPTY_LIST;
  #pendingBytes = 0;
  /**
   * Where hot-path frames are encoded in place (no Buffer per frame). Bytes
   * `[#outStart, #outEnd)` are queued and not yet in `#pending`; bytes before
   * `#outStart` belong to writes already made and are never touched again.
   */
  #out: Buffer | undefined;
  #outStart = 0;
  #outEnd = 0;
  /** Bytes queued since the last flush (sizes the next batch buffer). */
  #tickBytes = 0;
  /** A queued buffer is BIG_FRAME_BYTES or more: written as it is (writev), never concatenated. */
  #bigPending = false;
  #flushScheduled = false;
  readonly #flushNow = (): void => this.#flush();
  #closed = false;
  #failed = false;
  #closeError: Error | undefined;
  #heartbeat: Heartbeat | undefined;
  #paused = false;
  /** Input held by the owner (too many requests in flight): not read until released. */
  #held = false;

  constructor(socket: Socket, handlers: ConnectionHandlers, opts: ConnectionOptions = {}) {
    this.#socket = socket;
    this.#handlers = handlers;
    this.#decoder = new FrameDecoder(opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD);
    this.#highWaterBytes = opts.highWaterBytes ?? Infinity;
    this.#maxBufferedBytes = opts.maxBufferedBytes ?? Infinity;
    this.#peerMaxPayloadBytes = opts.peerMaxPayloadBytes ?? Infinity;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true); // Nagle would hold small frames for up to 40 ms.
    if (opts.reads !== undefined) opts.reads.sink = (chunk) => this.#onData(chunk);
    else socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => {
      this.#closeError ??= err;
    });
    socket.on('drain', () => {
      if (this.#paused) {
        this.#paused = false;
        if (!this.#held) socket.resume();
      }
    });
    // The peer half-closed: it will send nothing more, so for its owner it is gone now (DESIGN.md rule 2).
    socket.on('end', () => this.#goneNow());
    socket.on('close', () => {
      this.#closed = true;
      this.#heartbeat?.stop();
      this.#goneNow();
    });
  }

  /** Tells the owner, once, that this connection is over: at the first of fail, end, destroy, the peer's FIN, or close. */
  #goneNow(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#handlers.onClose(this.#closeError);
  }

  /** True once the socket has closed or a close has been started. */
  get closed(): boolean {
    return this.#closed || this.#failed;
  }

  /**
   * Stops (true) or resumes (false) reading the peer: the owner's
   * backpressure, e.g. too many requests awaiting answers. Pipelined
   * requests wait in the kernel; the peer is not judged silent meanwhile.
   */
  holdInput(hold: boolean): void {
    if (hold === this.#held) return;
    this.#held = hold;
    if (hold) this.#socket.pause();
    else if (!this.#paused) this.#socket.resume();
  }

  /** Largest frame payload accepted from the peer from now on (WELCOME's limit, or the post-HELLO limit). */
  setMaxPayloadBytes(n: number): void {
    this.#decoder.maxPayloadBytes = n;
  }

  /** Bytes queued for the peer and not yet handed to the kernel. */
  get writableLength(): number {
    return this.#pendingBytes + this.#socket.writableLength;
  }

  /** Sends a message; batched with the others sent this tick. Throws INVALID_ARGUMENT like encode(). */
  send(msg: Message): void {
    if (this.#closed) return;
    if (!isHotMessage(msg)) {
      const frame = encode(msg);
      if (frame.length - HEADER_BYTES > this.#peerMaxPayloadBytes && msg.type === 'REPLY') {
        // Never send what the peer would refuse (and close over): answer this one request with an error.
        return this.send({
          type: 'ERROR',
          requestId: msg.requestId,
          code: 'TOO_LARGE',
          message: `the answer is ${frame.length - HEADER_BYTES} bytes, over the ${this.#peerMaxPayloadBytes}-byte frame limit`,
        });
      }
      return this.sendRaw(frame);
    }
    const n = hotFrameBytes(msg);
    if (n > ARENA_MAX_FRAME_BYTES) {
      if (n < BIG_FRAME_BYTES) return this.sendRaw(encode(msg));
      // A large payload is written as it is, beside its header: no copy (issue 9).
      const [head, body] = encodeSplit(msg);
      this.sendRaw(head);
      this.sendRaw(body);
      return;
    }
    // encodeInto checks every field before writing, so a throw leaves the batch intact.
    this.#outEnd = encodeInto(msg, this.#room(n), this.#outEnd);
    this.#queued(n);
  }

  /**
   * Sends an ASSIGN without a message object (the scheduler's hot path, issue 9): the same bytes
   * as send(), and `args` may be a latin1 string (one char per byte), written as it is.
   */
  sendAssign(jobId: number, attempt: number, timeoutMs: number, kind: string, args: Buffer | string): void {
    if (this.#closed) return;
    const n = assignFrameBytes(kind, args.length);
    if (n > ARENA_MAX_FRAME_BYTES) {
      const bytes = typeof args === 'string' ? Buffer.from(args, 'latin1') : args;
      return this.send({ type: 'ASSIGN', jobId, attempt, timeoutMs, kind, args: bytes });
    }
    this.#outEnd = encodeAssignInto(this.#room(n), this.#outEnd, jobId, attempt, timeoutMs, kind, args);
    this.#queued(n);
  }

  /**
   * Sends a RESULT without a message object (a worker's hot path, issue 9): the same bytes as
   * send(), and `result` may be a string, written as its UTF-8 bytes (`resultBytes` of them).
   */
  sendResult(jobId: number, attempt: number, result: Buffer | string, resultBytes: number): void {
    if (this.#closed) return;
    const n = HEADER_BYTES + 12 + resultBytes;
    if (n > ARENA_MAX_FRAME_BYTES) {
      const bytes = typeof result === 'string' ? Buffer.from(result, 'utf8') : result;
      return this.send({ type: 'RESULT', jobId, attempt, result: bytes });
    }
    this.#outEnd = encodeResultInto(this.#room(n), this.#outEnd, jobId, attempt, result, resultBytes);
    this.#queued(n);
  }

  /** Sends an ACK without a message object (the scheduler's hot path): the same bytes as send(). */
  sendAck(requestId: number, jobId: number, existing: boolean): void {
    if (this.#closed) return;
    this.#outEnd = encodeAckInto(this.#room(ACK_FRAME_BYTES), this.#outEnd, requestId, jobId, existing);
    this.#queued(ACK_FRAME_BYTES);
  }

  /** Sends an EVENT without a message object (the scheduler's hot path): the same bytes as send(). */
  sendEvent(jobId: number, event: JobEvent, attempt: number, pct: number, permanent: boolean, data: Buffer): void {
    if (this.#closed) return;
    const n = eventFrameBytes(data.length);
    if (n > ARENA_MAX_FRAME_BYTES) return this.send({ type: 'EVENT', jobId, event, attempt, pct, permanent, data });
    this.#outEnd = encodeEventInto(this.#room(n), this.#outEnd, jobId, event, attempt, pct, permanent, data);
    this.#queued(n);
  }

  /** The batch buffer, with room for `n` more bytes at `#outEnd` (a new one when full). */
  #room(n: number): Buffer {
    const out = this.#out;
    if (out !== undefined && this.#outEnd + n <= out.length) return out;
    this.#seal();
    const size = Math.min(ARENA_MAX_BYTES, Math.max(ARENA_MIN_BYTES, 4 * (this.#tickBytes + n)));
    this.#outStart = this.#outEnd = 0;
    return (this.#out = Buffer.allocUnsafe(size));
  }

  /** Sends an already encoded frame; batched with the others sent this tick. */
  sendRaw(frame: Buffer): void {
    if (this.#closed) return;
    this.#seal();
    if (frame.length >= BIG_FRAME_BYTES) this.#bigPending = true;
    if (this.#pending === EMPTY_LIST) this.#pending = [frame];
    else this.#pending.push(frame);
    this.#queued(frame.length);
  }

  #queued(bytes: number): void {
    this.#pendingBytes += bytes;
    this.#tickBytes += bytes;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      scheduleFlush(this.#flushNow);
    }
  }

  /** Moves the frames encoded in `#out` since the last seal to `#pending` (a view, no copy). */
  #seal(): void {
    if (this.#outEnd === this.#outStart) return;
    const view = this.#out!.subarray(this.#outStart, this.#outEnd);
    this.#outStart = this.#outEnd;
    if (this.#pending === EMPTY_LIST) this.#pending = [view];
    else this.#pending.push(view);
  }

  /** Starts heartbeats: ping every `intervalMs`; close if silent for 3 intervals. */
  startHeartbeat(intervalMs: number, load: () => number | { running: number; stuck: number } = () => 0): void {
    this.#heartbeat?.stop();
    this.#heartbeat = new Heartbeat(intervalMs, {
      sendPing: () => {
        const l = load();
        this.send(typeof l === 'number' ? { type: 'HEARTBEAT', running: l } : { type: 'HEARTBEAT', running: l.running, stuck: l.stuck });
      },
      // A peer whose input we paused (our own backpressure) is not silent.
      isPaused: () => this.#paused || this.#held,
      onDead: (silentMs) =>
        this.fail(
          new TaskwireError('HEARTBEAT_TIMEOUT', `peer ${this.remote} silent for ${silentMs} ms`),
        ),
    });
    this.#heartbeat.start();
  }

  /**
   * Sends `ERROR{requestId: 0, code}` and closes this connection only
   * (PROTOCOL.md §6). Further input is ignored.
   */
  fail(err: TaskwireError): void;
  fail(code: ErrorCode, message: string): void;
  fail(errOrCode: TaskwireError | ErrorCode, message?: string): void {
    if (this.#failed || this.#closed) return;
    const err = typeof errOrCode === 'string' ? new TaskwireError(errOrCode, message ?? errOrCode) : errOrCode;
    this.#failed = true;
    this.#closeError ??= err;
    this.#heartbeat?.stop();
    this.send({ type: 'ERROR', requestId: 0, code: err.code, message: err.message });
    this.#flush();
    this.#socket.end();
    // A peer that never reads our FIN must not hold the socket forever.
    setTimeout(() => this.#socket.destroy(), 2_000).unref();
    this.#goneNow();
  }

  /** Flushes what is queued and half-closes; the peer's FIN completes the close. */
  end(): void {
    if (this.#closed) return;
    this.#heartbeat?.stop();
    this.#flush();
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 2_000).unref();
    this.#goneNow();
  }

  /** Closes now, dropping anything unsent. */
  destroy(err?: Error): void {
    if (err !== undefined) this.#closeError ??= err;
    this.#heartbeat?.stop();
    this.#goneNow();
    this.#pending = EMPTY_LIST;
    this.#pendingBytes = 0;
    this.#out = undefined;
    this.#outStart = this.#outEnd = 0;
    this.#socket.destroy();
  }

  #flush(): void {
    this.#flushScheduled = false;
    this.#tickBytes = 0;
    this.#seal();
    const pending = this.#pending;
    if (pending === EMPTY_LIST) return;
    const bytes = this.#pendingBytes;
    const big = this.#bigPending;
    this.#pending = EMPTY_LIST;
    this.#pendingBytes = 0;
    this.#bigPending = false;
    if (this.#closed || this.#socket.destroyed) return;
    const socket = this.#socket;
    if (pending.length === 1) {
      socket.write(pending[0]!);
    } else if (bytes <= CONCAT_MAX_BYTES && !big) {
      // One copy into one buffer beats writev of many tiny chunks.
      socket.write(Buffer.concat(pending, bytes));
    } else {
      // Big frames go out as they are, small ones between them still merged: one writev under
      // cork. Copying megabytes of payload to save a syscall does not pay (docs/PERFORMANCE.md).
      socket.cork();
      let run: Buffer[] = [];
      let runBytes = 0;
      for (const frame of pending) {
        if (frame.length < BIG_FRAME_BYTES) {
          run.push(frame);
          runBytes += frame.length;
          continue;
        }
        if (run.length > 0) {
          socket.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
          run = [];
          runBytes = 0;
        }
        socket.write(frame);
      }
      if (run.length > 0) socket.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
      socket.uncork();
    }
    if (this.#socket.writableLength > this.#maxBufferedBytes && !this.#failed) {
      // DESIGN.md rule 2: past the bound, its own error code, never HEARTBEAT_TIMEOUT. The ERROR
      // cannot reach a peer that does not read; it is there for one that reads again later.
      this.fail(new TaskwireError('SLOW_CONSUMER', `peer ${this.remote} does not read: ${this.#socket.writableLength} bytes unsent (max ${this.#maxBufferedBytes})`));
      return;
    }
    if (!this.#paused && this.#socket.writableLength > this.#highWaterBytes) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#failed) return;
    this.#heartbeat?.touch();
    const decoder = this.#decoder;
    try {
      decoder.feed(chunk);
    } catch (err) {
      this.fail(err instanceof ProtocolError ? err : new ProtocolError('BAD_FRAME', String(err)));
      return;
    }
    for (;;) {
      let msg: Message | undefined;
      try {
        msg = decoder.nextMessage();
      } catch (err) {
        this.fail(err instanceof ProtocolError ? err : new ProtocolError('BAD_FRAME', String(err)));
        return;
      }
      if (msg === undefined) return;
      try {
        this.#handlers.onMessage(msg);
      } catch (err) {
        const wrapped =
          err instanceof TaskwireError ? err : new TaskwireError('INTERNAL', `internal error: ${String(err)}`, { cause: err });
        this.fail(wrapped);
        return;
      }
      if (this.#failed) return;
    }
  }
}
