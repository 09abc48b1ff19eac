/**
 * The IPC messages a worker process sends to the {@link WorkerPool} that
 * started it (over the `fork()` channel, JSON). The pool runs no user code
 * and reads nothing else from its processes.
 */

/** The process's worker was accepted by the scheduler for the first time (rolling restarts wait for it). */
export interface PoolReadyMessage {
  type: 'taskwire-worker:ready';
  sessionId: string;
}

/** The process is about to exit for a reason no restart can fix (AUTH_FAILED, BAD_VERSION, a bad capability). */
export interface PoolFatalMessage {
  type: 'taskwire-worker:fatal';
  /** An ErrorCode. */
  code: string;
  message: string;
}

export type PoolMessage = PoolReadyMessage | PoolFatalMessage;

/** True for a well-formed {@link PoolMessage}. */
export function isPoolMessage(value: unknown): value is PoolMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  if (m['type'] === 'taskwire-worker:ready') return typeof m['sessionId'] === 'string';
  if (m['type'] === 'taskwire-worker:fatal') return typeof m['code'] === 'string' && typeof m['message'] === 'string';
  return false;
}
