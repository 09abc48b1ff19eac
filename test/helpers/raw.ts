import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import { encode, MessageDecoder, PROTOCOL_VERSION, type Message } from '../../src/lib/protocol.js';

/**
 * A bare protocol peer for tests: writes whatever bytes it is told (valid or
 * not) and collects decoded messages, so fault paths can be driven by hand.
 */
export class RawPeer {
  readonly messages: Message[] = [];
  closed = false;
  /** Answer the scheduler's heartbeats (a live peer); false plays a hung one. */
  autoPong = true;
  readonly #decoder = new MessageDecoder();
  #waiters: (() => void)[] = [];

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const m of this.#decoder.push(chunk)) {
        if (m.type === 'HEARTBEAT') {
          if (this.autoPong) this.send({ type: 'HEARTBEAT', running: 0 });
          continue;
        }
        this.messages.push(m);
      }
      this.#wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  send(msg: Message): void {
    this.socket.write(encode(msg));
  }

  hello(role: 'client' | 'worker', extra: Partial<Extract<Message, { type: 'HELLO' }>> = {}): void {
    this.send({ type: 'HELLO', version: PROTOCOL_VERSION, role, name: `raw-${role}`, capabilities: [], concurrency: 0, ...extra });
  }

  /** Resolves with the first message matching `pred` (already received or still to come). */
  async waitFor<T extends Message['type']>(type: T, pred: (m: Extract<Message, { type: T }>) => boolean = () => true, timeoutMs = 5_000): Promise<Extract<Message, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((m): m is Extract<Message, { type: T }> => m.type === type && pred(m as Extract<Message, { type: T }>));
      if (found !== undefined) return found;
      if (this.closed) throw new Error(`connection closed before ${type}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${type}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves when the peer has closed the connection. */
  async waitClosed(timeoutMs = 5_000): Promise<void> {
    if (this.closed) return;
    await once(this.socket, 'close', { signal: AbortSignal.timeout(timeoutMs) });
  }
}

/** Connects a {@link RawPeer} to a local port; destroyed when the test ends. */
export async function rawConnect(port: number): Promise<RawPeer> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect', { signal: AbortSignal.timeout(5_000) });
  onTestFinished(() => {
    socket.destroy();
  });
  return new RawPeer(socket);
}
