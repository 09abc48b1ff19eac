/** What a {@link Heartbeat} does to its connection; no socket in here. */
export interface HeartbeatHooks {
  /** Send a HEARTBEAT frame to the peer. */
  sendPing(): void;
  /** The peer has been silent for `deadAfter` intervals. Called once. */
  onDead(silentMs: number): void;
  /**
   * True while we stopped reading the peer (our own backpressure): what it
   * sent waits unread in the kernel, so it is not silent (DESIGN.md rule 2).
   */
  isPaused?(): boolean;
}

/** The monotonic clock (DESIGN.md rule 3: a wall-clock step must not drop a live peer). */
const monotonicNow = (): number => performance.now();

/**
 * Keep-alive timer logic, both ways (DESIGN.md "Heartbeats"): pings the peer
 * every `intervalMs` and declares it dead after `deadAfter` intervals without
 * any inbound frame. Call {@link touch} on every inbound chunk.
 *
 * Silence is judged fairly: time spent with the peer's input paused by us
 * does not count, and a verdict is confirmed only after the event loop has
 * read what is already waiting on the socket (a `setImmediate` runs after
 * the poll phase), so a late timer after a stalled loop never mistakes
 * unread input for silence. The timer is unref'd so an embedder's process
 * can still exit.
 */
export class Heartbeat {
  #lastSeen: number;
  #timer: NodeJS.Timeout | undefined;
  #verdict: NodeJS.Immediate | undefined;
  readonly #hooks: HeartbeatHooks;
  readonly #now: () => number;

  constructor(
    readonly intervalMs: number,
    hooks: HeartbeatHooks,
    readonly deadAfter = 3,
    now: () => number = monotonicNow,
  ) {
    this.#hooks = hooks;
    this.#now = now;
    this.#lastSeen = now();
  }

  /** Starts pinging; idempotent. An interval of 0 disables heartbeats. */
  start(): void {
    if (this.#timer !== undefined || this.intervalMs <= 0) return;
    this.#lastSeen = this.#now();
    this.#timer = setInterval(() => this.#tick(), this.intervalMs);
    this.#timer.unref();
  }

  /** The peer said something: it is alive. */
  touch(): void {
    this.#lastSeen = this.#now();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#verdict !== undefined) clearImmediate(this.#verdict);
    this.#timer = undefined;
    this.#verdict = undefined;
  }

  #silentMs(): number {
    if (this.#hooks.isPaused?.() === true) this.#lastSeen = this.#now();
    return this.#now() - this.#lastSeen;
  }

  #tick(): void {
    // Ping even when the peer looks silent: after a stall of both ends (one process), each must
    // have said something before the other's verdict is confirmed.
    this.#hooks.sendPing();
    if (this.#silentMs() >= this.intervalMs * this.deadAfter) {
      if (this.#verdict !== undefined) return;
      // Confirm after a full poll phase: input already waiting is read first. Two hops, because
      // frames written this turn (the peer's own late ping, in one process) go out in a check-phase
      // immediate of their own; the second hop runs after the next poll has read them.
      this.#verdict = setImmediate(() => {
        this.#verdict = setImmediate(() => {
          this.#verdict = undefined;
          if (this.#timer === undefined) return;
          const silentMs = this.#silentMs();
          if (silentMs < this.intervalMs * this.deadAfter) return;
          this.stop();
          this.#hooks.onDead(silentMs);
        });
      });
    }
  }
}
