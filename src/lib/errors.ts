/**
 * Stable error codes. The code in an `ERROR` frame is the code thrown on the
 * other side: `err.code === 'NOT_FOUND'` holds across the wire.
 * Every code is documented in docs/PROTOCOL.md §6.
 */
export const ErrorCode = {
  /** A frame or payload that does not parse. */
  BAD_FRAME: 'BAD_FRAME',
  /** A declared payload length above the receiver's maximum. */
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  /** A command byte the receiver does not know. */
  UNKNOWN_COMMAND: 'UNKNOWN_COMMAND',
  /** A payload shorter than its command's fixed layout. */
  TRUNCATED_PAYLOAD: 'TRUNCATED_PAYLOAD',
  /** HELLO missing, repeated, or a message not allowed for the connection's role. */
  BAD_HANDSHAKE: 'BAD_HANDSHAKE',
  /** Protocol version not supported. */
  BAD_VERSION: 'BAD_VERSION',
  /** Token missing or wrong. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** No job with that id (never existed, or its result has expired). */
  NOT_FOUND: 'NOT_FOUND',
  /** The queue is full (`--max-queued`); retry later. */
  BUSY: 'BUSY',
  /** A request field out of range (empty kind, bad JSON, ...). */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** The operation does not apply to the job's current state. */
  INVALID_STATE: 'INVALID_STATE',
  /** The journal could not make a record durable (disk full, I/O error). */
  JOURNAL_UNAVAILABLE: 'JOURNAL_UNAVAILABLE',
  /** (Start-up, not on the wire.) The data directory is locked by another running scheduler. */
  JOURNAL_LOCKED: 'JOURNAL_LOCKED',
  /** (Start-up, not on the wire.) The journal is corrupt in the middle; `--repair` truncates it there. */
  JOURNAL_CORRUPT: 'JOURNAL_CORRUPT',
  /** The peer stayed silent for too long. */
  HEARTBEAT_TIMEOUT: 'HEARTBEAT_TIMEOUT',
  /** The peer did not read what was sent to it: more than the bound is buffered for it. */
  SLOW_CONSUMER: 'SLOW_CONSUMER',
  /** A request or its answer would exceed a frame limit (the receiver's or the worker's). */
  TOO_LARGE: 'TOO_LARGE',
  /** A configured bound was reached (kinds, connections, watches); the message names it. */
  LIMIT_EXCEEDED: 'LIMIT_EXCEEDED',
  /** The connection's credential may not send this request (roles, issue 11); the connection stays. */
  FORBIDDEN: 'FORBIDDEN',
  /** The scheduler is shutting down. */
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  /** The connection closed before an answer arrived. */
  CLOSED: 'CLOSED',
  /** A local wait ran out of time. */
  TIMEOUT: 'TIMEOUT',
  /** Could not connect to the scheduler. */
  UNREACHABLE: 'UNREACHABLE',
  /** Unexpected failure inside the scheduler. */
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = keyof typeof ErrorCode;

/** True if `code` is one of the stable {@link ErrorCode}s. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ErrorCode, code);
}

/** Base class of every error taskwire throws; `code` is stable, the message is for people. */
export class TaskwireError extends Error {
  override name = 'TaskwireError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Malformed input on the wire. After one, the connection is closed. */
export class ProtocolError extends TaskwireError {
  override name = 'ProtocolError';
}

/** A pending call was rejected because the connection closed or was destroyed. */
export class ClosedError extends TaskwireError {
  override name = 'ClosedError';
  constructor(message = 'connection closed', options?: ErrorOptions) {
    super('CLOSED', message, options);
  }
}

/**
 * A job that failed for good, as seen by a client waiting on it.
 * `permanent` is true when the handler said retrying cannot help.
 */
export class JobFailedError extends Error {
  override name = 'JobFailedError';
  constructor(
    readonly jobId: number,
    message: string,
    readonly attempts: number,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

/** A job that was cancelled before it finished, as seen by a client waiting on it. */
export class JobCancelledError extends Error {
  override name = 'JobCancelledError';
  constructor(readonly jobId: number) {
    super(`job ${jobId} was cancelled`);
  }
}

/**
 * Thrown by a job handler when retrying cannot help (bad arguments, division
 * by zero): the job fails at once, without retries.
 */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/** `err` itself when it is an Error, else an Error carrying its text. */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The errno-style `code` of a Node error (`ECONNREFUSED`, `EPIPE`, ...), if any. */
export function errnoCode(err: Error): string | undefined {
  const code: unknown = 'code' in err ? err.code : undefined;
  return typeof code === 'string' ? code : undefined;
}
