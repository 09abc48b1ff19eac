/**
 * Job handlers: the {@link HandlerRegistry} a worker looks kinds up in, the
 * built-in kinds (`sha256`, `add`, `subtract`, `multiply`, `divide`), the
 * endpoints' byte conventions for arguments and results, and the emulation
 * knobs (processing time, random failures) used to exercise the system.
 * No sockets here: every function is testable on its own.
 */
import { hash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { PermanentError, TaskwireError } from './errors.js';
import { MAX_STR8_BYTES } from './protocol.js';

/** What a handler learns about the attempt it runs. Valid until the handler settles. */
export interface JobContext {
  /** The job's id (stable across attempts). */
  readonly jobId: number;
  /** 1-based attempt number. */
  readonly attempt: number;
  readonly kind: string;
  /**
   * Aborted when the outcome no longer counts: the attempt timed out or was
   * cancelled (ABANDON), the link to the scheduler was lost, or the worker
   * is shutting down. Long-running handlers should watch it and stop.
   */
  readonly signal: AbortSignal;
  /** Reports progress, 0–100 (clamped, rounded), to clients that asked for it. */
  progress(pct: number, message?: string): void;
  /**
   * Largest result, in bytes, the scheduler accepts on this connection (its
   * frame limit from WELCOME, less the RESULT header). A bigger result fails
   * the attempt permanently. Absent outside a worker (a hand-made context).
   */
  readonly maxResultBytes?: number;
}

/**
 * A job handler. `args` are the job's argument bytes (a view: copy what you
 * keep after returning). The return value (or what the promise resolves to)
 * becomes the result by {@link encodeResult}. Throw a {@link PermanentError}
 * when retrying cannot help; any other throw is retried by the scheduler.
 */
export type Handler = (args: Buffer, ctx: JobContext) => unknown;

/** The kinds every worker can run without registering anything. */
export const BUILTIN_KINDS = ['sha256', 'add', 'subtract', 'multiply', 'divide'] as const;
export type BuiltinKind = (typeof BUILTIN_KINDS)[number];

/** Kind names travel as str8 fields: 1 to 255 bytes of UTF-8. */
function checkKind(kind: string): void {
  if (typeof kind !== 'string' || kind === '') throw new TaskwireError('INVALID_ARGUMENT', 'a job kind must be a non-empty string');
  const bytes = Buffer.byteLength(kind);
  if (bytes > MAX_STR8_BYTES) {
    throw new TaskwireError('INVALID_ARGUMENT', `job kind is ${bytes} bytes of UTF-8; the maximum is ${MAX_STR8_BYTES}`);
  }
}

/**
 * Handlers by job kind. A worker advertises the registry's kinds (or a
 * subset) and looks every ASSIGN up here.
 * @example
 * const registry = createBuiltinRegistry();
 * registry.register('upper', (args) => args.toString('utf8').toUpperCase());
 */
export class HandlerRegistry {
  readonly #handlers = new Map<string, Handler>();

  /** Adds or replaces the handler of `kind`. Throws `INVALID_ARGUMENT` for a bad kind or handler. */
  register(kind: string, handler: Handler): this {
    checkKind(kind);
    if (typeof handler !== 'function') throw new TaskwireError('INVALID_ARGUMENT', `handler of "${kind}" must be a function`);
    this.#handlers.set(kind, handler);
    return this;
  }

  /** The handler of `kind`, if any. */
  get(kind: string): Handler | undefined {
    return this.#handlers.get(kind);
  }

  has(kind: string): boolean {
    return this.#handlers.has(kind);
  }

  /** Every registered kind, in registration order. */
  kinds(): string[] {
    return [...this.#handlers.keys()];
  }
}

// ---------------------------------------------------------------------------
// Built-in kinds

/** `sha256`: args are the text (raw UTF-8 bytes, hashed as they are); result is the lowercase hex digest. */
export function sha256(args: Buffer): string {
  return hash('sha256', args, 'hex');
}

/** Shows at most 60 characters of bad arguments in an error message. */
function preview(args: Buffer): string {
  const text = args.toString('utf8', 0, Math.min(args.length, 64));
  return text.length > 60 || args.length > 64 ? `${JSON.stringify(text.slice(0, 60))}...` : JSON.stringify(text);
}

/**
 * The two operands of an arithmetic job: JSON `[a, b]` or `{"a": a, "b": b}`,
 * two finite numbers. Throws {@link PermanentError}.
 */
export function parseOperands(kind: string, args: Buffer): [number, number] {
  let value: unknown;
  try {
    value = JSON.parse(args.toString('utf8'));
  } catch {
    throw new PermanentError(`${kind} expects JSON [a, b] or {"a": a, "b": b}, got ${args.length === 0 ? 'no arguments' : preview(args)}`);
  }
  let a: unknown;
  let b: unknown;
  if (Array.isArray(value)) {
    if (value.length === 2) [a, b] = value;
  } else if (typeof value === 'object' && value !== null) {
    a = (value as Record<string, unknown>)['a'];
    b = (value as Record<string, unknown>)['b'];
  }
  if (typeof a !== 'number' || typeof b !== 'number' || !Number.isFinite(a) || !Number.isFinite(b)) {
    throw new PermanentError(`${kind} expects two finite numbers as [a, b] or {"a": a, "b": b}, got ${preview(args)}`);
  }
  return [a, b];
}

function finite(kind: string, a: number, b: number, result: number): number {
  if (!Number.isFinite(result)) throw new PermanentError(`${kind} of ${a} and ${b} is not a finite number`);
  return result;
}

/** `add`: `a + b`. Throws {@link PermanentError} for bad operands or a non-finite sum. */
export function add(args: Buffer): number {
  const [a, b] = parseOperands('add', args);
  return finite('add', a, b, a + b);
}

/** `subtract`: `a - b`. */
export function subtract(args: Buffer): number {
  const [a, b] = parseOperands('subtract', args);
  return finite('subtract', a, b, a - b);
}

/** `multiply`: `a * b`. */
export function multiply(args: Buffer): number {
  const [a, b] = parseOperands('multiply', args);
  return finite('multiply', a, b, a * b);
}

/** `divide`: `a / b`. Division by zero is a {@link PermanentError}. */
export function divide(args: Buffer): number {
  const [a, b] = parseOperands('divide', args);
  if (b === 0) throw new PermanentError('division by zero');
  return finite('divide', a, b, a / b);
}

/** The built-in handlers by kind. */
export const BUILTIN_HANDLERS: Readonly<Record<BuiltinKind, Handler>> = { sha256, add, subtract, multiply, divide };

/** A new registry holding the built-in kinds ({@link BUILTIN_KINDS}). */
export function createBuiltinRegistry(): HandlerRegistry {
  const registry = new HandlerRegistry();
  for (const kind of BUILTIN_KINDS) registry.register(kind, BUILTIN_HANDLERS[kind]);
  return registry;
}

// ---------------------------------------------------------------------------
// Byte conventions (contract "Args/results")

const EMPTY = Buffer.alloc(0);

/**
 * Job arguments to bytes: Buffer as is, string as raw UTF-8, anything else
 * as JSON. Throws `INVALID_ARGUMENT` for values JSON cannot carry
 * (`undefined`, functions, symbols, BigInt, cycles).
 */
export function encodeArgs(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return json('job arguments', value);
}

/**
 * A handler's return value to result bytes: Buffer as is, string as UTF-8,
 * `undefined` as no bytes, anything else as JSON. Throws `INVALID_ARGUMENT`
 * for values JSON cannot carry.
 */
export function encodeResult(value: unknown): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value === undefined) return EMPTY;
  if (Buffer.isBuffer(value)) return value;
  return json('a job result', value);
}

function json(what: string, value: unknown): Buffer {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new TaskwireError('INVALID_ARGUMENT', `${what} cannot be sent as JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (text === undefined) throw new TaskwireError('INVALID_ARGUMENT', `${what} of type ${typeof value} cannot be sent as JSON`);
  return Buffer.from(text, 'utf8');
}

// ---------------------------------------------------------------------------
// Emulation (testing and benchmarks)

/** Knobs of {@link emulate}. */
export interface EmulationOptions {
  /** Every job takes this long before its handler runs (a timer that honours the AbortSignal). */
  processingMs?: number;
  /** Probability in [0, 1] that an attempt fails retryably with "simulated failure". */
  failRate?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

/** Message of the retryable failures {@link emulate} injects. */
export const SIMULATED_FAILURE = 'simulated failure';

/**
 * Wraps `handler` to emulate a real workload: wait `processingMs` (rejecting
 * at once if the job's signal aborts), then fail retryably with probability
 * `failRate`, else run the handler. With neither knob set, returns `handler`
 * itself; with only `failRate`, the wrapper stays synchronous.
 */
export function emulate(handler: Handler, { processingMs = 0, failRate = 0, random = Math.random }: EmulationOptions): Handler {
  if (processingMs <= 0 && failRate <= 0) return handler;
  const run: Handler = (args, ctx) => {
    if (failRate > 0 && random() < failRate) throw new Error(SIMULATED_FAILURE);
    return handler(args, ctx);
  };
  if (processingMs <= 0) return run;
  return (args, ctx) => {
    // The args view may pin a socket chunk across the wait: fine for an emulation.
    return delay(processingMs, undefined, { signal: ctx.signal }).then(() => run(args, ctx));
  };
}
