/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** Delay ceiling of the first retry (attempt 0). */
  baseMs?: number;
  /** Largest ceiling, however many attempts. */
  maxMs?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

/**
 * Exponential backoff with "equal jitter": the ceiling doubles per attempt up
 * to `maxMs`, and the delay is drawn from [ceiling/2, ceiling), so many peers
 * retrying at once spread out instead of arriving in lockstep.
 * `attempt` counts from 0.
 */
export function backoffDelay(attempt: number, { baseMs = 100, maxMs = 10_000, random = Math.random }: BackoffOptions = {}): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 52));
  return Math.floor(ceiling / 2 + random() * (ceiling / 2));
}
