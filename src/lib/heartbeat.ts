/** What a {@link Heartbeat} does to its connection; no socket in here. */
export interface HeartbeatHooks {
  /** Send a HEARTBEAT frame to the peer. */
  sendPing(): void;
  /** The peer has been silent for `deadAfter` intervals. Called once. */
  onDead(silentMs: number): void;
}

/**
 * Keep-alive timer logic, both ways (DESIGN.md "Heartbeats"): pings the peer
 * every `intervalMs` and declares it dead after `deadAfter` intervals without
 * any inbound frame. Call {@link touch} on every inbound chunk.
 * The timer is unref'd so an embedder's process can still exit.
 */
export class Heartbeat {
  #lastSeen: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #hooks: HeartbeatHooks;
  readonly #now: () => number;

  constructor(
    readonly intervalMs: number,
    hooks: HeartbeatHooks,
    readonly deadAfter = 3,
    now: () => number = Date.now,
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
    this.#timer = undefined;
  }

  #tick(): void {
    const silentMs = this.#now() - this.#lastSeen;
    if (silentMs >= this.intervalMs * this.deadAfter) {
      this.stop();
      this.#hooks.onDead(silentMs);
      return;
    }
    this.#hooks.sendPing();
  }
}
