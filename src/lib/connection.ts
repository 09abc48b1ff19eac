import type { Socket } from 'node:net';
import { ProtocolError, TaskwireError, type ErrorCode } from './errors.js';
import { Heartbeat } from './heartbeat.js';
import { decodeMessage, encode, FrameDecoder, DEFAULT_MAX_PAYLOAD, type Message } from './protocol.js';

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
   * Stop reading from the peer while this many bytes wait to be written to it:
   * a peer that does not read cannot grow our buffers without bound.
   */
  highWaterBytes?: number;
}

const EMPTY_LIST: Buffer[] = [];

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
  #pending: Buffer[] = EMPTY_LIST;
  #pendingBytes = 0;
  #closed = false;
  #failed = false;
  #closeError: Error | undefined;
  #heartbeat: Heartbeat | undefined;
  #paused = false;

  constructor(socket: Socket, handlers: ConnectionHandlers, opts: ConnectionOptions = {}) {
    this.#socket = socket;
    this.#handlers = handlers;
    this.#decoder = new FrameDecoder(opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD);
    this.#highWaterBytes = opts.highWaterBytes ?? 8 * 1024 * 1024;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true); // Nagle would hold small frames for up to 40 ms.
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => {
      this.#closeError ??= err;
    });
    socket.on('drain', () => {
      if (this.#paused) {
        this.#paused = false;
        socket.resume();
      }
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#heartbeat?.stop();
      this.#handlers.onClose(this.#closeError);
    });
  }

  /** True once the socket has closed or a close has been started. */
  get closed(): boolean {
    return this.#closed || this.#failed;
  }

  /** Bytes queued for the peer and not yet handed to the kernel. */
  get writableLength(): number {
    return this.#pendingBytes + this.#socket.writableLength;
  }

  /** Sends a message; batched with the others sent this tick. */
  send(msg: Message): void {
    this.sendRaw(encode(msg));
  }

  /** Sends an already encoded frame; batched with the others sent this tick. */
  sendRaw(frame: Buffer): void {
    if (this.#closed) return;
    if (this.#pending === EMPTY_LIST) {
      this.#pending = [frame];
      process.nextTick(() => this.#flush());
    } else {
      this.#pending.push(frame);
    }
    this.#pendingBytes += frame.length;
  }

  /** Starts heartbeats: ping every `intervalMs`; close if silent for 3 intervals. */
  startHeartbeat(intervalMs: number, load: () => number = () => 0): void {
    this.#heartbeat?.stop();
    this.#heartbeat = new Heartbeat(intervalMs, {
      sendPing: () => this.send({ type: 'HEARTBEAT', running: load() }),
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
  }

  /** Flushes what is queued and half-closes; the peer's FIN completes the close. */
  end(): void {
    if (this.#closed) return;
    this.#heartbeat?.stop();
    this.#flush();
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 2_000).unref();
  }

  /** Closes now, dropping anything unsent. */
  destroy(err?: Error): void {
    if (err !== undefined) this.#closeError ??= err;
    this.#heartbeat?.stop();
    this.#pending = EMPTY_LIST;
    this.#pendingBytes = 0;
    this.#socket.destroy();
  }

  #flush(): void {
    const pending = this.#pending;
    if (pending === EMPTY_LIST) return;
    const bytes = this.#pendingBytes;
    this.#pending = EMPTY_LIST;
    this.#pendingBytes = 0;
    if (this.#closed || this.#socket.destroyed) return;
    // One copy into one buffer beats writev of many tiny chunks.
    this.#socket.write(pending.length === 1 ? pending[0]! : Buffer.concat(pending, bytes));
    if (!this.#paused && this.#socket.writableLength > this.#highWaterBytes) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#failed) return;
    this.#heartbeat?.touch();
    let frames;
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      this.fail(err instanceof ProtocolError ? err : new ProtocolError('BAD_FRAME', String(err)));
      return;
    }
    for (let i = 0; i < frames.length; i++) {
      let msg: Message;
      try {
        msg = decodeMessage(frames[i]!);
      } catch (err) {
        this.fail(err instanceof ProtocolError ? err : new ProtocolError('BAD_FRAME', String(err)));
        return;
      }
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
