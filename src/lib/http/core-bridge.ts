/**
 * The HTTP layer as a client of the core (DESIGN.md "Operating surfaces":
 * the HTTP API is a view of the wire protocol). Every request goes to
 * `SchedulerCore.handleClient` as the wire message a TCP client would send,
 * and the answer (ACK, REPLY, ERROR, EVENT) comes back through a {@link Peer}
 * of ours. So an HTTP answer shows exactly what a wire answer would, after
 * the journal made it durable (DESIGN.md rule 1), with the same codes.
 */
import { TaskwireError } from '../errors.js';
import type {
  AdminMessage,
  CancelMessage,
  EventMessage,
  ListMessage,
  Message,
  StatsMessage,
  StatusMessage,
  SubmitMessage,
  WatchMessage,
  WorkersMessage,
} from '../protocol.js';
import type { ClientSession, Peer, SchedulerCore } from '../scheduler-core.js';

type WithoutRequestId<T> = T extends unknown ? Omit<T, 'requestId'> : never;

/** A client request as sent on the wire, without its request id (the session numbers it). */
export type CoreRequest = WithoutRequestId<
  SubmitMessage | StatusMessage | CancelMessage | ListMessage | WorkersMessage | StatsMessage | WatchMessage | AdminMessage
>;

/** The core's answer to one request: an ACK (SUBMIT, WATCH) or a REPLY. An ERROR rejects with its code. */
export type CoreAnswer =
  | { type: 'ACK'; jobId: number; existing: boolean }
  | { type: 'REPLY'; body: unknown; data: Buffer | undefined };

interface Pending {
  resolve(answer: CoreAnswer): void;
  reject(err: Error): void;
}

/**
 * One in-process client session. Requests are matched to answers by
 * request id; EVENTs (a job this session waits on) go to the listener set
 * with {@link BridgeSession.onEvent}. Closing it takes it off every job it
 * waits on, in the core (so a waiter that gave up pins nothing).
 */
export class BridgeSession implements Peer {
  /** Nothing is ever buffered: answers are handed over synchronously. */
  readonly writableLength = 0;
  readonly #core: SchedulerCore;
  readonly #session: ClientSession;
  readonly #pending = new Map<number, Pending>();
  readonly #onClose: () => void;
  #nextId = 1;
  #listener: ((event: EventMessage) => void) | null = null;

  constructor(core: SchedulerCore, id: string, onClose: () => void) {
    this.#core = core;
    this.#onClose = onClose;
    this.#session = core.openClient(id, 'http', this);
  }

  /** True once closed: further requests reject with CLOSED. */
  get closed(): boolean {
    return this.#session.closed;
  }

  /** The core's side (Peer): an answer or an event for this session. */
  send(msg: Message): void {
    switch (msg.type) {
      case 'ACK':
        return this.#settle(msg.requestId, { type: 'ACK', jobId: msg.jobId, existing: msg.existing });
      case 'REPLY':
        return this.#settle(msg.requestId, { type: 'REPLY', body: msg.body, data: msg.data });
      case 'ERROR': {
        const err = new TaskwireError(msg.code, msg.message);
        if (msg.requestId !== 0) return this.#settle(msg.requestId, err);
        for (const p of this.#pending.values()) p.reject(err);
        this.#pending.clear();
        return;
      }
      case 'EVENT':
        this.#listener?.(msg);
        return;
      default:
        return; // nothing else is sent to a client session
    }
  }

  #settle(requestId: number, outcome: CoreAnswer | Error): void {
    const p = this.#pending.get(requestId);
    if (p === undefined) return;
    this.#pending.delete(requestId);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  /** Sends one request to the core; resolves with its ACK or REPLY, rejects with the ERROR's code. */
  request(req: CoreRequest): Promise<CoreAnswer> {
    if (this.#session.closed) return Promise.reject(new TaskwireError('CLOSED', 'the HTTP session is closed'));
    const requestId = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_ffff ? 1 : this.#nextId + 1;
    return new Promise<CoreAnswer>((resolve, reject) => {
      this.#pending.set(requestId, { resolve, reject });
      try {
        this.#core.handleClient(this.#session, { ...req, requestId });
      } catch (err) {
        this.#pending.delete(requestId);
        reject(err instanceof Error ? err : new TaskwireError('INTERNAL', String(err)));
      }
    });
  }

  /** Sends a request answered by REPLY and returns its body (and data). */
  async reply(req: CoreRequest): Promise<{ body: unknown; data: Buffer | undefined }> {
    const answer = await this.request(req);
    if (answer.type !== 'REPLY') throw new TaskwireError('INTERNAL', `expected a REPLY to ${req.type}, got ${answer.type}`);
    return answer;
  }

  /** Where EVENTs for jobs this session waits on go (one listener; a waiting request owns its session). */
  onEvent(listener: ((event: EventMessage) => void) | null): void {
    this.#listener = listener;
  }

  /** Leaves the core: every wait is dropped there; pending requests reject with CLOSED. Idempotent. */
  close(reason: string): void {
    if (this.#session.closed) return;
    this.#core.closeSession(this.#session, reason);
    this.#listener = null;
    const err = new TaskwireError('CLOSED', `HTTP session closed: ${reason}`);
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#onClose();
  }
}

/**
 * The HTTP layer's sessions with one core: a shared one for requests
 * answered at once, and a short-lived one per request that waits for a job
 * (`?wait=MS`), closed when that request is answered or gives up.
 */
export class CoreBridge {
  readonly core: SchedulerCore;
  readonly #shared: BridgeSession;
  #open = 0;
  #next = 1;

  constructor(core: SchedulerCore) {
    this.core = core;
    this.#shared = this.open();
  }

  /** The long-lived session for requests answered without waiting. */
  get shared(): BridgeSession {
    return this.#shared;
  }

  /** Sessions open now (they count as clients in the core; `/metrics` tells them apart). */
  get openSessions(): number {
    return this.#open;
  }

  /** A new session; the caller closes it. */
  open(): BridgeSession {
    this.#open++;
    return new BridgeSession(this.core, `http${this.#next++}`, () => this.#open--);
  }

  /** Closes the shared session (the listener is stopping). */
  close(): void {
    this.#shared.close('HTTP listener closed');
  }
}
