import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { Connection } from '../../src/lib/connection.js';
import { PROTOCOL_VERSION, type Message } from '../../src/lib/protocol.js';

/** A temporary directory, removed when the test ends. */
export async function tempDir(prefix = 'taskwire-journal-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export { rng } from './rng.js';

/**
 * A minimal sha256 worker speaking the protocol directly, which counts how
 * often each job (by its args) is executed — what "none twice" is checked
 * against. Reconnects (every 20 ms) while the scheduler is down, so it
 * rides through `kill -9` and restarts on the same port. Stopped when the
 * test ends.
 */
export class CountingWorker {
  /** Executions per job args (args are unique per job in these tests). */
  readonly executions = new Map<string, number>();
  #conn: Connection | undefined;
  #stopped = false;
  #port: number;
  #ready: (() => void) | undefined;

  constructor(
    port: number,
    readonly concurrency = 8,
  ) {
    this.#port = port;
    onTestFinished(() => this.stop());
  }

  /** Total executions. */
  get total(): number {
    let n = 0;
    for (const c of this.executions.values()) n += c;
    return n;
  }

  /** Connects; resolves on the first WELCOME. */
  start(): Promise<void> {
    return new Promise((resolve) => {
      this.#ready = resolve;
      this.#connect();
    });
  }

  /** Points later reconnections at another port (a scheduler restarted elsewhere). */
  set port(port: number) {
    this.#port = port;
  }

  stop(): void {
    this.#stopped = true;
    this.#conn?.destroy();
  }

  #connect(): void {
    if (this.#stopped) return;
    const socket: Socket = connect(this.#port, '127.0.0.1');
    const conn = new Connection(socket, {
      onMessage: (msg) => this.#onMessage(conn, msg),
      onClose: () => {
        if (this.#conn === conn) this.#conn = undefined;
        if (!this.#stopped) setTimeout(() => this.#connect(), 20).unref();
      },
    });
    this.#conn = conn;
    conn.send({
      type: 'HELLO',
      version: PROTOCOL_VERSION,
      role: 'worker',
      name: 'counting-worker',
      capabilities: ['sha256'],
      concurrency: this.concurrency,
    });
  }

  #onMessage(conn: Connection, msg: Message): void {
    switch (msg.type) {
      case 'WELCOME':
        conn.startHeartbeat(msg.heartbeatMs);
        this.#ready?.();
        this.#ready = undefined;
        return;
      case 'ASSIGN': {
        const text = msg.args.toString('utf8');
        this.executions.set(text, (this.executions.get(text) ?? 0) + 1);
        conn.send({ type: 'RESULT', jobId: msg.jobId, attempt: msg.attempt, result: Buffer.from(sha256(text)) });
        return;
      }
      default:
        return;
    }
  }
}
