import type { Message } from '../../src/lib/protocol.js';
import type { Peer } from '../../src/lib/scheduler-core.js';

/** A peer that records what the core sends it (state-machine tests, no sockets). */
export class FakePeer implements Peer {
  sent: Message[] = [];
  writableLength = 0;
  send(msg: Message): void {
    this.sent.push(msg);
  }
  /** Removes and returns the messages of one type, in order. */
  take<T extends Message['type']>(type: T): Extract<Message, { type: T }>[] {
    const out = this.sent.filter((m): m is Extract<Message, { type: T }> => m.type === type);
    this.sent = this.sent.filter((m) => m.type !== type);
    return out;
  }
}
