/**
 * Property tests and fuzzing of the wire protocol with a seeded PRNG (no
 * dependency). The seed is in every test name; rerun one with
 * `TASKWIRE_SEED=<n> npx vitest run test/unit/protocol-fuzz.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, ProtocolError } from '../../src/lib/errors.js';
import { rng as seededRandom } from '../helpers/rng.js';
import {
  Command,
  DEFAULT_MAX_PAYLOAD,
  decodeAll,
  decodeMessage,
  encode,
  FrameDecoder,
  HEADER_BYTES,
  JOB_STATES,
  MAX_STR8_BYTES,
  MessageDecoder,
  U32_MAX,
  type AbandonReason,
  type JobEvent,
  type Message,
  type MessageType,
} from '../../src/lib/protocol.js';

const SEED = Number(process.env['TASKWIRE_SEED'] ?? 0x7a5c3e11) >>> 0;


/** Every message type; a REPLY with `data` travels as REPLY_DATA, its own command byte. */
const MESSAGE_TYPES = Object.keys(Command).filter((c) => c !== 'REPLY_DATA') as MessageType[];
const EVENTS: JobEvent[] = ['done', 'failed', 'progress', 'cancelled'];
const REASONS: AbandonReason[] = ['timeout', 'cancelled', 'lost'];
const CODES = Object.keys(ErrorCode) as ErrorCode[];
/** Text pieces: ASCII, JSON specials, 2-, 3- and 4-byte UTF-8. */
const PIECES = ['a', 'Z', '0', ' ', '"', '\\', '\n', '\u0000', 'é', 'ジ', '€', '🚀', 'sha256', 'job-'];

class Rng {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = seededRandom(seed);
  }
  float(): number {
    return this.#next();
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }
  bool(): boolean {
    return this.#next() < 0.5;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** 0..max, with the edges (0, 1, max-1, max) often. */
  uint(max: number): number {
    const r = this.int(8);
    if (r === 0) return 0;
    if (r === 1) return 1;
    if (r === 2) return max;
    if (r === 3) return max - 1;
    return this.int(max + 1);
  }
  jobId(): number {
    const r = this.int(6);
    if (r === 0) return 0;
    if (r === 1) return Number.MAX_SAFE_INTEGER;
    if (r === 2) return U32_MAX + this.int(2);
    return this.int(0x20_0000) * 0x1_0000_0000 + this.int(0x1_0000_0000);
  }
  bytes(maxLength: number): Buffer {
    const n = this.bool() ? this.int(Math.min(8, maxLength + 1)) : this.int(maxLength + 1);
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A string of at most `maxBytes` UTF-8 bytes. */
  text(maxBytes: number): string {
    let s = '';
    let bytes = 0;
    const target = this.int(4) === 0 ? maxBytes : this.int(Math.min(maxBytes, 40) + 1);
    for (let i = 0; i < 400; i++) {
      const p = this.pick(PIECES);
      const n = Buffer.byteLength(p);
      if (bytes + n > target) continue;
      s += p;
      bytes += n;
      if (bytes === target) break;
    }
    return s;
  }
  json(depth = 0): unknown {
    const r = this.int(depth >= 3 ? 4 : 6);
    if (r === 0) return null;
    if (r === 1) return this.bool();
    if (r === 2) return this.bool() ? this.int(1e9) - 5e8 : this.float() * 1000 - 500;
    if (r === 3) return this.text(30);
    if (r === 4) return Array.from({ length: this.int(4) }, () => this.json(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = this.int(4); i > 0; i--) o[this.text(10)] = this.json(depth + 1);
    return o;
  }
}

/** A random, valid, canonical message of any type (what encode accepts and decode returns). */
function randomMessage(rng: Rng, type: MessageType = rng.pick(MESSAGE_TYPES)): Message {
  const str8 = (): string => rng.text(MAX_STR8_BYTES);
  switch (type) {
    case 'HELLO': {
      const m: Message = {
        type, version: rng.uint(0xffff), role: rng.pick(['client', 'worker'] as const), name: rng.text(60),
        capabilities: Array.from({ length: rng.int(4) }, () => rng.text(20)), concurrency: rng.uint(U32_MAX),
      };
      if (rng.bool()) m.token = rng.text(40);
      return m;
    }
    case 'WELCOME':
      return {
        type, version: rng.uint(0xffff), serverVersion: rng.text(12), heartbeatMs: rng.uint(U32_MAX),
        maxPayloadBytes: rng.uint(U32_MAX), sessionId: rng.text(8),
      };
    case 'HEARTBEAT':
      return { type, running: rng.uint(U32_MAX) };
    case 'GOODBYE':
      return { type, reason: rng.text(300) };
    case 'ERROR':
      return { type, requestId: rng.uint(U32_MAX), code: rng.pick(CODES), message: rng.text(80) };
    case 'SUBMIT':
      return {
        type, requestId: rng.uint(U32_MAX), kind: str8(), args: rng.bytes(64), priority: rng.uint(255),
        timeoutMs: rng.uint(U32_MAX), maxRetries: rng.uint(0xffff), estMs: rng.uint(U32_MAX), delayMs: rng.uint(U32_MAX),
        key: str8(), wait: rng.bool(), progress: rng.bool(),
      };
    case 'ACK':
      return { type, requestId: rng.uint(U32_MAX), jobId: rng.jobId(), existing: rng.bool() };
    case 'EVENT':
      return {
        type, jobId: rng.jobId(), event: rng.pick(EVENTS), attempt: rng.uint(U32_MAX), pct: rng.uint(255),
        permanent: rng.bool(), data: rng.bytes(64),
      };
    case 'WATCH':
      return { type, requestId: rng.uint(U32_MAX), jobId: rng.jobId(), progress: rng.bool() };
    case 'ASSIGN':
      return { type, jobId: rng.jobId(), attempt: rng.uint(U32_MAX), timeoutMs: rng.uint(U32_MAX), kind: str8(), args: rng.bytes(64) };
    case 'RESULT':
      return { type, jobId: rng.jobId(), attempt: rng.uint(U32_MAX), result: rng.bytes(64) };
    case 'FAIL': {
      const m: Message = { type, jobId: rng.jobId(), attempt: rng.uint(U32_MAX), permanent: rng.bool(), message: rng.text(80) };
      if (!m.permanent && rng.bool()) m.returned = true;
      return m;
    }
    case 'PROGRESS':
      return { type, jobId: rng.jobId(), attempt: rng.uint(U32_MAX), pct: rng.uint(255), message: rng.text(40) };
    case 'ABANDON':
      return { type, jobId: rng.jobId(), attempt: rng.uint(U32_MAX), reason: rng.pick(REASONS) };
    case 'STATUS':
    case 'CANCEL':
      return { type, requestId: rng.uint(U32_MAX), jobId: rng.jobId() };
    case 'LIST': {
      const m: Message = { type, requestId: rng.uint(U32_MAX), state: rng.pick(['', ...JOB_STATES] as const), kind: str8(), limit: rng.uint(U32_MAX) };
      if (rng.bool()) {
        m.afterId = rng.jobId();
        m.order = rng.pick(['newest', 'oldest'] as const);
      }
      return m;
    }
    case 'WORKERS':
    case 'STATS':
    case 'COMPACT':
      return { type, requestId: rng.uint(U32_MAX) };
    case 'FOLLOW':
      return { type, requestId: rng.uint(U32_MAX), kind: rng.bool() ? '' : str8() };
    case 'NOTICE':
      return { type, jobId: rng.jobId(), state: rng.pick(JOB_STATES), attempt: rng.uint(U32_MAX), kind: str8() };
    case 'ADMIN':
      return rng.bool()
        ? { type, requestId: rng.uint(U32_MAX), body: { op: 'retry', jobId: rng.jobId() } }
        : { type, requestId: rng.uint(U32_MAX), body: { op: 'pause', kind: str8() } };
    case 'REPLY':
      return rng.bool()
        ? { type, requestId: rng.uint(U32_MAX), body: rng.json() }
        : { type, requestId: rng.uint(U32_MAX), body: rng.json(), data: rng.bytes(64) };
  }
}

/** Cuts `bytes` into chunks at random points: sometimes none, sometimes byte by byte, sometimes empty chunks. */
function randomChunks(rng: Rng, bytes: Buffer): Buffer[] {
  const mode = rng.int(5);
  if (mode === 0) return [bytes];
  if (mode === 1) return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
  const cuts = new Set<number>();
  const n = rng.int(Math.min(bytes.length, 64) + 1);
  for (let i = 0; i < n; i++) cuts.add(rng.int(bytes.length + 1));
  const sorted = [...cuts].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const cut of [...sorted, bytes.length]) {
    chunks.push(bytes.subarray(start, cut)); // may be empty: the decoder must not care
    start = cut;
  }
  return chunks;
}

describe(`property: random message sequences, split anywhere, decode to themselves (seed ${SEED})`, () => {
  it('holds for 500 sequences through MessageDecoder, FrameDecoder + decodeMessage, and feed + nextMessage', () => {
    const rng = new Rng(SEED);
    const seen = new Set<MessageType>();
    let total = 0;
    for (let seq = 0; seq < 500; seq++) {
      const messages = Array.from({ length: 1 + rng.int(30) }, () => randomMessage(rng));
      const bytes = Buffer.concat(messages.map(encode));

      const md = new MessageDecoder();
      const viaMessages: Message[] = [];
      for (const chunk of randomChunks(rng, bytes)) viaMessages.push(...md.push(chunk));
      expect(viaMessages, `sequence ${seq}`).toStrictEqual(messages);
      expect(md.bufferedBytes).toBe(0);

      const fd = new FrameDecoder();
      const viaFrames: Message[] = [];
      for (const chunk of randomChunks(rng, bytes)) for (const f of fd.push(chunk)) viaFrames.push(decodeMessage(f));
      expect(viaFrames, `sequence ${seq}`).toStrictEqual(messages);
      expect(fd.midFrame).toBe(false);

      // The connections' path: feed() then nextMessage(), decoding where frames lie.
      const fm = new FrameDecoder();
      const viaNext: Message[] = [];
      for (const chunk of randomChunks(rng, bytes)) {
        fm.feed(chunk);
        for (let m = fm.nextMessage(); m !== undefined; m = fm.nextMessage()) viaNext.push(m);
      }
      expect(viaNext, `sequence ${seq}`).toStrictEqual(messages);
      expect(fm.midFrame).toBe(false);

      for (const m of messages) seen.add(m.type);
      total += messages.length;
    }
    expect(seen.size).toBe(MESSAGE_TYPES.length); // every type was exercised
    expect(total).toBeGreaterThan(5000);
  });

  it('random messages of every type survive encode → decode one by one (2,000 per type)', () => {
    const rng = new Rng(SEED ^ 0x9e3779b9);
    for (const type of MESSAGE_TYPES) {
      for (let i = 0; i < 2000; i++) {
        const msg = randomMessage(rng, type);
        const bytes = encode(msg);
        expect(bytes.readUInt32BE(1)).toBe(bytes.length - HEADER_BYTES);
        expect(decodeMessage({ command: bytes[0]!, payload: bytes.subarray(HEADER_BYTES) })).toStrictEqual(msg);
      }
    }
  });
});

/** The codes malformed wire input may produce. */
const WIRE_CODES = new Set<string>(['BAD_FRAME', 'FRAME_TOO_LARGE', 'UNKNOWN_COMMAND', 'TRUNCATED_PAYLOAD']);

/** Applies 1-4 random mutations to a valid encoding whose frames start at `starts`. */
function mutate(rng: Rng, input: Buffer, starts: number[]): Buffer {
  let b = Buffer.from(input);
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const at = rng.int(b.length + 1);
    switch (rng.int(8)) {
      case 0: // bit flip
        if (b.length > 0) b[at % b.length]! ^= 1 << rng.int(8);
        break;
      case 1: // random byte
        if (b.length > 0) b[at % b.length] = rng.int(256);
        break;
      case 2: // truncate
        b = b.subarray(0, at);
        break;
      case 3: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(16), b.subarray(at)]);
        break;
      case 4: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(16)))]);
        break;
      case 5: {
        // change a frame's length field: off by one, zero, huge, random
        const start = rng.pick(starts);
        if (start + HEADER_BYTES > b.length) break;
        const length = b.readUInt32BE(start + 1);
        const choices = [0, length - 1, length + 1, length + 1 + rng.int(64), U32_MAX, DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PAYLOAD + 1, rng.int(2 ** 32)];
        b.writeUInt32BE(Math.max(0, Math.min(U32_MAX, rng.pick(choices))), start + 1);
        break;
      }
      case 6: {
        // change a frame's command byte (to a known one, or anything)
        const start = rng.pick(starts);
        if (start < b.length) b[start] = rng.bool() ? rng.pick(Object.values(Command)) : rng.int(256);
        break;
      }
      default: {
        // duplicate a slice
        const end = Math.min(b.length, at + rng.int(32));
        b = Buffer.concat([b.subarray(0, end), b.subarray(at, end), b.subarray(end)]);
      }
    }
  }
  return b;
}

describe(`fuzz: malformed input yields messages or ProtocolError, nothing else (seed ${SEED})`, () => {
  it('20,000 random and mutated inputs, in well under 5 s', { timeout: 20_000 }, () => {
    const rng = new Rng(SEED ^ 0x51f15eed);
    const outcomes = new Map<string, number>();
    const count = (key: string): void => void outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    let decoded = 0;

    /** A decoded message is well-formed: it re-encodes, and that encoding is canonical. */
    const checkMessage = (m: Message): void => {
      decoded++;
      const bytes = encode(m); // a decoded message must always be encodable
      const again = decodeMessage({ command: bytes[0]!, payload: bytes.subarray(HEADER_BYTES) });
      expect(encode(again).equals(bytes)).toBe(true);
    };
    const checkError = (err: unknown): void => {
      if (!(err instanceof ProtocolError) || !WIRE_CODES.has(err.code)) {
        throw new Error(`not a wire ProtocolError: ${String(err)}`, { cause: err });
      }
      count(err.code);
    };

    const started = performance.now();
    for (let i = 0; i < 20_000; i++) {
      let input: Buffer;
      const kind = rng.int(10);
      if (kind < 2) {
        input = rng.bytes(96); // noise
      } else if (kind < 3) {
        // a plausible header over noise
        const body = rng.bytes(64);
        const header = Buffer.alloc(HEADER_BYTES);
        header[0] = rng.pick(Object.values(Command));
        header.writeUInt32BE(rng.bool() ? body.length : rng.int(128), 1);
        input = Buffer.concat([header, body]);
      } else {
        const messages = Array.from({ length: 1 + rng.int(4) }, () => randomMessage(rng));
        const frames = messages.map(encode);
        const starts: number[] = [];
        let offset = 0;
        for (const f of frames) {
          starts.push(offset);
          offset += f.length;
        }
        input = mutate(rng, Buffer.concat(frames), starts);
      }
      const max = rng.bool() ? DEFAULT_MAX_PAYLOAD : 1 + rng.int(256);
      const way = rng.int(3);
      try {
        if (way === 0) {
          const md = new MessageDecoder(max);
          try {
            for (const chunk of randomChunks(rng, input)) for (const m of md.push(chunk)) checkMessage(m);
          } catch (err) {
            checkError(err);
            // After an error the decoder refuses everything.
            expect(() => md.push(Buffer.from([1]))).toThrow(ProtocolError);
            continue;
          }
        } else if (way === 1) {
          const fd = new FrameDecoder(max);
          for (const chunk of randomChunks(rng, input)) {
            for (const f of fd.push(chunk)) {
              expect(f.payload.length).toBeLessThanOrEqual(max);
              checkMessage(decodeMessage(f));
            }
          }
          expect(fd.bufferedBytes).toBeLessThanOrEqual(input.length);
        } else {
          for (const m of decodeAll(input, max)) checkMessage(m);
        }
        count('ok');
      } catch (err) {
        checkError(err);
      }
    }
    const elapsedMs = performance.now() - started;
    expect(elapsedMs).toBeLessThan(5_000);
    // The fuzz really exercised both sides: plenty of messages, and every wire error code.
    expect(decoded).toBeGreaterThan(5_000);
    expect(outcomes.get('ok') ?? 0).toBeGreaterThan(1_000);
    for (const code of WIRE_CODES) expect(outcomes.get(code) ?? 0, code).toBeGreaterThan(50);
  });
});
