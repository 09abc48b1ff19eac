/**
 * The engine of `taskwire submit --file`: one job per input line, pipelined
 * over one connection, outcomes handed out in input order as soon as a job
 * and every job before it have settled. At most `window` lines are between
 * "submitted" and "printed" at any time, and at most `maxHeldBytes` of
 * results wait for an earlier job, so an endless input runs in constant
 * memory: when the window is full the engine stops reading, and the input
 * (a pipe, a file) waits.
 *
 * Each job is one request: a SUBMIT that waits, whose ACK tells the job id
 * (`onAck`) long before the result comes. So when the run stops early —
 * Ctrl-C, `--wait-timeout`, or a lost connection — every line that was
 * acknowledged can be reported with its id (`taskwire wait ID`).
 */
import type { EnqueueResult, JobResult, SubmitOptions } from '../../client.js';
import { TaskwireError } from '../errors.js';
import { isBlank, type InputLine } from './lines.js';

/** What the engine needs of a client (a {@link Client} has it). */
export interface JobPort {
  /** Runs a job; calls `opts.onAck` with its id at the ACK, then settles with its outcome. */
  submit(kind: string, args: unknown, opts?: SubmitOptions): Promise<JobResult>;
  /** Only queues a job (`noWait`). */
  enqueue(kind: string, args: unknown, opts?: SubmitOptions): Promise<EnqueueResult>;
}

/** Why a run ended before its input did. */
export type StopReason = 'interrupted' | 'timeout' | 'lost';

/** A line's job arguments, or why the line cannot be a job. */
export type LineArgs = { ok: true; args: Buffer | string | unknown } | { ok: false; message: string };

/** The outcome of one input line, handed out in input order. */
export interface LineOutcome {
  /** 1-based line number in the input. */
  line: number;
  /** The job's id once the scheduler acknowledged it; 0 before that (or for a line that was not sent). */
  id: number;
  /**
   * The job's result (DONE), its ACK (with `noWait`), or the error it ended
   * with (failed, cancelled, refused, bad line, connection lost).
   * Undefined when the run stopped (interrupt, timeout) before the job finished.
   */
  value: JobResult | EnqueueResult | Error | undefined;
}

/** Options of {@link submitStream}. */
export interface StreamOptions {
  port: JobPort;
  kind: string;
  submitOptions: SubmitOptions;
  /** Only queue: each outcome is the ACK. */
  noWait: boolean;
  /** Most lines between submitted and handed out. */
  window: number;
  /** Most result bytes held for jobs waiting on an earlier one. Default 64 MiB. */
  maxHeldBytes?: number;
  /** Turns a line into job arguments (or a per-line error). */
  lineArgs(line: Buffer): LineArgs;
  /** Receives every outcome, in input order. */
  onOutcome(outcome: LineOutcome): void;
  /** After every settled job: counts so far, and the total once the input has ended. */
  onProgress?(settled: number, failed: number, total: number | undefined): void;
  /** False while the output cannot take more (stdout backpressure): no new line is started. */
  outputReady?(): boolean;
  /** Stops the run: Ctrl-C ('interrupted'). */
  interrupt?: AbortSignal;
  /** Stops the run: `--wait-timeout` ('timeout'). */
  deadline?: AbortSignal;
  /** Lines longer than this are not sent: each is an error on its line (`TOO_LARGE`). */
  maxLineBytes: number;
  /** Told once when the run stops early, before the remaining outcomes are handed out. */
  onStop?(reason: StopReason): void;
}

/** What {@link submitStream} reports when it is done. */
export interface StreamSummary {
  /** Lines that became jobs (or per-line errors): every one was handed out. */
  lines: number;
  done: number;
  failed: number;
  /** Acknowledged jobs whose outcome was not seen (stop); their ids were handed out. */
  unfinished: number;
  /** Lines sent but not acknowledged when the run stopped. */
  unacknowledged: number;
  stop: StopReason | undefined;
}

/** A line that was not sent: too long, or not valid for the kind (the message names the line). */
export class LineError extends TaskwireError {
  override name = 'LineError';
}

/** A connection-level failure: every later job would fail the same way. */
function isConnectionLoss(err: Error): boolean {
  return err instanceof TaskwireError && (err.code === 'CLOSED' || err.code === 'HEARTBEAT_TIMEOUT' || err.code === 'SHUTTING_DOWN');
}

/** One entry of the window ring; reused, so a run of any length allocates the same slots. */
class Slot {
  seq = -1;
  line = 0;
  /** Set by the ACK, before the job settles. */
  id = 0;
  settled = false;
  value: JobResult | EnqueueResult | Error | undefined = undefined;
  bytes = 0;
  /**
   * The run's submit options plus this slot's `onAck`, built once: a job
   * allocates no options object. An ACK never comes after its job settled
   * (it precedes the EVENT; a rejection before it means none will come), so
   * the hook needs no sequence check to tell one use of the slot from the next.
   */
  readonly submitOptions: SubmitOptions;

  constructor(base: SubmitOptions) {
    this.submitOptions = {
      ...base,
      onAck: (jobId) => {
        if (!this.settled) this.id = jobId;
      },
    };
  }
}

/**
 * Runs the lines of an input as jobs (see the module comment).
 * @example
 * const submitter = new StreamSubmitter({ port: client, kind: 'sha256', submitOptions: {}, noWait: false,
 *   window: 10_000, maxLineBytes: 1 << 24, lineArgs: (line) => ({ ok: true, args: line }),
 *   onOutcome: (o) => console.log(o.line, o.value) });
 * const summary = await submitter.run(readLines(process.stdin, 1 << 24));
 */
export class StreamSubmitter {
  readonly #o: StreamOptions;
  readonly #ring: Slot[];
  readonly #maxHeld: number;
  /** Next sequence number to start / to hand out. */
  #next = 0;
  #head = 0;
  #held = 0;
  #done = 0;
  #failed = 0;
  #total: number | undefined;
  #stop: StopReason | undefined;
  #finished = false;
  #wake: (() => void) | undefined;
  #allOut: (() => void) | undefined;

  constructor(o: StreamOptions) {
    this.#o = o;
    this.#ring = Array.from({ length: o.window }, () => new Slot(o.submitOptions));
    this.#maxHeld = o.maxHeldBytes ?? 64 * 1024 * 1024;
  }

  /** Wakes the reader (more room: a slot handed out, the output drained, a stop). */
  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /**
   * Resolves when every line of `input` has been handed out, or once the
   * run stopped (then every line already started is handed out too, finished
   * or not). Call once.
   */
  async run(input: AsyncIterable<InputLine>): Promise<StreamSummary> {
    const stopped = new Promise<void>((resolve) => {
      this.#allOut = resolve;
    });
    const onInterrupt = (): void => this.#halt('interrupted');
    const onDeadline = (): void => this.#halt('timeout');
    if (this.#o.interrupt?.aborted === true) onInterrupt();
    if (this.#o.deadline?.aborted === true) onDeadline();
    this.#o.interrupt?.addEventListener('abort', onInterrupt, { once: true });
    this.#o.deadline?.addEventListener('abort', onDeadline, { once: true });
    const reading = this.#read(input).then(() => {
      this.#total = this.#next;
      this.#o.onProgress?.(this.#done + this.#failed, this.#failed, this.#total);
      this.#maybeAllOut();
    });
    // A stop must not wait for the input: stdin may be idle for ever.
    await Promise.race([stopped, reading.then(() => stopped)]);
    this.#o.interrupt?.removeEventListener('abort', onInterrupt);
    this.#o.deadline?.removeEventListener('abort', onDeadline);
    let unfinished = 0;
    let unacknowledged = 0;
    // After a stop, hand out the rest as it stands: finished, acknowledged, or only sent.
    for (; this.#head < this.#next; this.#head++) {
      const slot = this.#ring[this.#head % this.#o.window]!;
      if (!slot.settled) {
        if (slot.id > 0) unfinished++;
        else unacknowledged++;
      }
      this.#o.onOutcome({ line: slot.line, id: slot.id, value: slot.settled ? slot.value : undefined });
      slot.seq = -1; // late answers for this slot are ignored
    }
    this.#finished = true;
    return { lines: this.#next, done: this.#done, failed: this.#failed, unfinished, unacknowledged, stop: this.#stop };
  }

  async #read(input: AsyncIterable<InputLine>): Promise<void> {
    for await (const line of input) {
      if (this.#stop !== undefined) return;
      if (!line.tooLong && isBlank(line.bytes)) continue;
      while (
        this.#stop === undefined &&
        (this.#next - this.#head >= this.#o.window || this.#held > this.#maxHeld || this.#o.outputReady?.() === false)
      ) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
      if (this.#stop !== undefined) return;
      this.#start(line);
    }
  }

  #start(line: InputLine): void {
    const seq = this.#next++;
    const slot = this.#ring[seq % this.#o.window]!;
    slot.seq = seq;
    slot.line = line.number;
    slot.id = 0;
    slot.settled = false;
    slot.value = undefined;
    slot.bytes = 0;
    if (line.tooLong) {
      this.#settle(slot, seq, new LineError('TOO_LARGE', `line ${line.number} is ${line.length} bytes; the most a job takes is ${this.#o.maxLineBytes}`));
      return;
    }
    const parsed = this.#o.lineArgs(line.bytes);
    if (!parsed.ok) {
      this.#settle(slot, seq, new LineError('INVALID_ARGUMENT', `line ${line.number}: ${parsed.message}`));
      return;
    }
    const { port, kind } = this.#o;
    const onError = (err: Error): void => this.#settle(slot, seq, err);
    // The line's bytes are a view of the input chunk: submit() and enqueue() encode them into the frame at once.
    if (this.#o.noWait) {
      port.enqueue(kind, parsed.args, this.#o.submitOptions).then((ack) => {
        if (slot.seq === seq) slot.id = ack.id;
        this.#settle(slot, seq, ack);
      }, onError);
      return;
    }
    port.submit(kind, parsed.args, slot.submitOptions).then((result) => this.#settle(slot, seq, result), onError);
  }

  #settle(slot: Slot, seq: number, value: JobResult | EnqueueResult | Error): void {
    if (slot.seq !== seq || slot.settled || this.#finished) return;
    slot.settled = true;
    slot.value = value;
    if (value instanceof Error) {
      this.#failed++;
      if (isConnectionLoss(value)) this.#halt('lost');
    } else {
      this.#done++;
      if ('data' in value) {
        slot.bytes = value.data.length;
        this.#held += slot.bytes;
      }
    }
    this.#o.onProgress?.(this.#done + this.#failed, this.#failed, this.#total);
    if (seq === this.#head) this.#handOut();
  }

  /** Hands out every settled slot at the head of the window, in order. */
  #handOut(): void {
    if (this.#stop === 'interrupted' || this.#stop === 'timeout') return; // run() hands out the rest
    while (this.#head < this.#next) {
      const slot = this.#ring[this.#head % this.#o.window]!;
      if (!slot.settled) break;
      this.#held -= slot.bytes;
      const { line, id, value } = slot;
      slot.value = undefined; // do not pin the result until the slot is reused
      this.#head++;
      this.#o.onOutcome({ line, id, value });
    }
    this.wake();
    this.#maybeAllOut();
  }

  /** Resolves run() once the input has ended and everything was handed out. */
  #maybeAllOut(): void {
    if (this.#total !== undefined && this.#head === this.#next) this.#allOut?.();
  }

  #halt(reason: StopReason): void {
    if (this.#stop !== undefined) return;
    this.#stop = reason;
    this.#o.onStop?.(reason);
    this.wake();
    if (reason === 'interrupted' || reason === 'timeout') {
      this.#allOut?.(); // do not wait for jobs that may take hours
      return;
    }
    // A lost connection settles every pending job at once (CLOSED); the timer only guards against one that does not.
    this.#total ??= this.#next;
    this.#maybeAllOut();
    setTimeout(() => this.#allOut?.(), 2000).unref();
  }
}
