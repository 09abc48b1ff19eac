/**
 * The wire protocol (src/lib/protocol.ts, docs/PROTOCOL.md): every message
 * round-trips, the byte layouts are pinned, malformed input gives typed
 * errors, and the FrameDecoder cuts frames identically whatever the chunking,
 * in linear time and without re-copying. Property tests and the fuzz live in
 * protocol-fuzz.test.ts.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, ProtocolError, TaskwireError } from '../../src/lib/errors.js';
import {
  ACK_FRAME_BYTES,
  assignFrameBytes,
  Command,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_RETRIES,
  decodeAll,
  decodeMessage,
  encode,
  encodeAckInto,
  encodeAssignInto,
  encodeEventInto,
  encodeInto,
  encodeResultInto,
  eventFrameBytes,
  FrameDecoder,
  HEADER_BYTES,
  hotFrameBytes,
  isHotMessage,
  JOB_STATES,
  MAX_STR8_BYTES,
  MessageDecoder,
  PROTOCOL_VERSION,
  U32_MAX,
  type Frame,
  type JobInfo,
  type Message,
  type MessageType,
  type StatsInfo,
  type WorkerInfo,
} from '../../src/lib/protocol.js';

// ---------------------------------------------------------------------------
// Helpers

/** Bytes from hex, ignoring spaces and `|` separators: `hex('01 | 0000 0005')`. */
function hex(text: string): Buffer {
  const clean = text.replace(/[\s|]/g, '');
  if (!/^([0-9a-f]{2})*$/.test(clean)) throw new Error(`bad hex in test: ${text}`);
  return Buffer.from(clean, 'hex');
}

function frameOf(bytes: Buffer): Frame {
  return { command: bytes[0]!, payload: bytes.subarray(HEADER_BYTES) };
}

/** Runs `fn`, expecting a ProtocolError with `code`; returns it. */
function expectProtocolError(fn: () => unknown, code: ErrorCode): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  const err = caught as ProtocolError;
  expect(err.code).toBe(code);
  return err;
}

/** Runs `fn`, expecting the encoder's INVALID_ARGUMENT TaskwireError (a caller bug, not wire input). */
function expectInvalidArgument(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(TaskwireError);
  expect(caught).not.toBeInstanceOf(ProtocolError);
  expect((caught as TaskwireError).code).toBe('INVALID_ARGUMENT');
}

/** Feeds `bytes` to a fresh FrameDecoder cut at `cuts` (sorted offsets); returns every frame. */
function framesSplitAt(bytes: Buffer, cuts: number[], max = DEFAULT_MAX_PAYLOAD): Frame[] {
  const decoder = new FrameDecoder(max);
  const out: Frame[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(...decoder.push(bytes.subarray(start, cut)));
    start = cut;
  }
  expect(decoder.midFrame).toBe(false);
  expect(decoder.bufferedBytes).toBe(0);
  return out;
}

function everyOffset(bytes: Buffer, step: number): number[] {
  const cuts: number[] = [];
  for (let i = step; i < bytes.length; i += step) cuts.push(i);
  return cuts;
}

const MAX_ID = Number.MAX_SAFE_INTEGER; // 2^53 - 1: hi word 0x001fffff
const ASCII_255 = 'k'.repeat(MAX_STR8_BYTES);
const UTF8_255 = 'é'.repeat(127) + '!'; // 127 × 2 + 1 = 255 bytes
const EMOJI_255 = '🚀'.repeat(63) + 'abc'; // 63 × 4 + 3 = 255 bytes
const TEXT = 'naïve ジョブ 🚀 — ok';
const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

const JOB_INFO: JobInfo = {
  id: MAX_ID,
  kind: 'sha256',
  state: 'DONE',
  priority: 255,
  attempts: 2,
  maxRetries: 3,
  timeoutMs: 10_000,
  createdAt: 1_700_000_000_000,
  startedAt: 1_700_000_000_100,
  finishedAt: 1_700_000_000_200,
  worker: 'w-🚀',
  result: 'dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f',
  key: 'order-42',
};
const WORKER_INFO: WorkerInfo = {
  id: 'c2',
  name: 'worker-1',
  capabilities: ['sha256', 'add'],
  concurrency: 4,
  running: 1,
  draining: false,
  connectedAt: 1_700_000_000_000,
  lastHeartbeatAt: 1_700_000_001_000,
  done: 10,
  failed: 1,
};
const STATS_INFO: StatsInfo = {
  uptimeMs: 1234,
  serverVersion: '0.1.0',
  connections: { clients: 1, workers: 2 },
  totals: { queued: 3, running: 1, retained: 10, submitted: 14 },
  kinds: {
    sha256: { queued: 3, running: 1, done: 9, failed: 1, cancelled: 0, oldestQueuedMs: 5, donePerSec: 100, submittedPerSec: 99 },
  },
  journal: { fsync: 'batch', bytes: 4096, recordsReplayed: 0, recoverMs: 1, lastCompactionAt: null, compactions: 0 },
};

type Samples = { [K in MessageType]: Extract<Message, { type: K }>[] } & { REPLY_DATA: Extract<Message, { type: 'REPLY' }>[] };

/** At least one sample of every message type (the type makes a missing one a compile error), with edge values. */
const SAMPLES: Samples = {
  HELLO: [
    { type: 'HELLO', version: PROTOCOL_VERSION, role: 'client', name: '', capabilities: [], concurrency: 0 },
    { type: 'HELLO', version: 0xffff, role: 'worker', name: TEXT, capabilities: ['sha256', 'add', '🚀'], concurrency: U32_MAX, token: 's3cret 🔑' },
    { type: 'HELLO', version: 0, role: 'worker', name: 'w', capabilities: ['x'], concurrency: 1, token: '' },
  ],
  WELCOME: [
    { type: 'WELCOME', version: 1, serverVersion: '0.1.0', heartbeatMs: 1000, maxPayloadBytes: DEFAULT_MAX_PAYLOAD, sessionId: 'c1' },
    { type: 'WELCOME', version: 0, serverVersion: '', heartbeatMs: 0, maxPayloadBytes: U32_MAX, sessionId: TEXT },
  ],
  HEARTBEAT: [
    { type: 'HEARTBEAT', running: 0 },
    { type: 'HEARTBEAT', running: U32_MAX },
    { type: 'HEARTBEAT', running: 3, stuck: 2 },
  ],
  GOODBYE: [
    { type: 'GOODBYE', reason: '' },
    { type: 'GOODBYE', reason: 'draining' },
    { type: 'GOODBYE', reason: TEXT.repeat(100) }, // a text tail: no str8 limit
  ],
  ERROR: [
    ...(Object.keys(ErrorCode) as ErrorCode[]).map((code, i): Extract<Message, { type: 'ERROR' }> => ({
      type: 'ERROR',
      requestId: i % 2 === 0 ? 0 : U32_MAX,
      code,
      message: i % 3 === 0 ? '' : `${code} — ${TEXT}`,
    })),
  ],
  SUBMIT: [
    { type: 'SUBMIT', requestId: 0, kind: 'a', args: Buffer.alloc(0), priority: 0, timeoutMs: 0, maxRetries: 0, estMs: 0, delayMs: 0, key: '', wait: false, progress: false },
    {
      type: 'SUBMIT', requestId: U32_MAX, kind: ASCII_255, args: BINARY, priority: 255, timeoutMs: U32_MAX,
      maxRetries: DEFAULT_RETRIES, estMs: U32_MAX, delayMs: U32_MAX, key: EMOJI_255, wait: true, progress: true,
    },
    { type: 'SUBMIT', requestId: 1, kind: UTF8_255, args: Buffer.from(TEXT), priority: 128, timeoutMs: 1, maxRetries: 3, estMs: 1, delayMs: 1, key: UTF8_255, wait: true, progress: false },
    { type: 'SUBMIT', requestId: 2, kind: 'sha256', args: Buffer.from('Hello, World!'), priority: 1, timeoutMs: 0, maxRetries: 0xfffe, estMs: 0, delayMs: 0, key: 'k', wait: false, progress: true },
  ],
  ACK: [
    { type: 'ACK', requestId: 0, jobId: 0, existing: false },
    { type: 'ACK', requestId: U32_MAX, jobId: MAX_ID, existing: true },
    { type: 'ACK', requestId: 1, jobId: U32_MAX, existing: false },
    { type: 'ACK', requestId: 1, jobId: 2 ** 32, existing: false },
  ],
  EVENT: [
    { type: 'EVENT', jobId: 1, event: 'done', attempt: 1, pct: 0, permanent: false, data: Buffer.from('dffd6021') },
    { type: 'EVENT', jobId: MAX_ID, event: 'failed', attempt: U32_MAX, pct: 0, permanent: true, data: Buffer.from(TEXT) },
    { type: 'EVENT', jobId: 0, event: 'progress', attempt: 2, pct: 255, permanent: false, data: Buffer.from('half') },
    { type: 'EVENT', jobId: 2 ** 40 + 3, event: 'cancelled', attempt: 0, pct: 0, permanent: false, data: Buffer.alloc(0) },
    { type: 'EVENT', jobId: 5, event: 'done', attempt: 3, pct: 100, permanent: false, data: BINARY },
  ],
  WATCH: [
    { type: 'WATCH', requestId: 0, jobId: 0, progress: false },
    { type: 'WATCH', requestId: U32_MAX, jobId: MAX_ID, progress: true },
  ],
  ASSIGN: [
    { type: 'ASSIGN', jobId: 0, attempt: 0, timeoutMs: 0, kind: '', args: Buffer.alloc(0) },
    { type: 'ASSIGN', jobId: MAX_ID, attempt: U32_MAX, timeoutMs: U32_MAX, kind: EMOJI_255, args: BINARY },
    { type: 'ASSIGN', jobId: 1, attempt: 1, timeoutMs: 10_000, kind: 'add', args: Buffer.from('[1,2]') },
  ],
  RESULT: [
    { type: 'RESULT', jobId: 0, attempt: 0, result: Buffer.alloc(0) },
    { type: 'RESULT', jobId: MAX_ID, attempt: U32_MAX, result: BINARY },
    { type: 'RESULT', jobId: 1, attempt: 1, result: Buffer.from('dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f') },
  ],
  FAIL: [
    { type: 'FAIL', jobId: 0, attempt: 0, permanent: false, message: '' },
    { type: 'FAIL', jobId: MAX_ID, attempt: U32_MAX, permanent: true, message: `division by zero ${TEXT}` },
    { type: 'FAIL', jobId: 7, attempt: 1, permanent: false, returned: true, message: 'returned: worker draining' },
  ],
  PROGRESS: [
    { type: 'PROGRESS', jobId: 0, attempt: 0, pct: 0, message: '' },
    { type: 'PROGRESS', jobId: MAX_ID, attempt: U32_MAX, pct: 255, message: TEXT },
    { type: 'PROGRESS', jobId: 9, attempt: 1, pct: 100, message: 'done' },
  ],
  ABANDON: [
    { type: 'ABANDON', jobId: 0, attempt: 0, reason: 'timeout' },
    { type: 'ABANDON', jobId: MAX_ID, attempt: U32_MAX, reason: 'cancelled' },
    { type: 'ABANDON', jobId: 7, attempt: 2, reason: 'lost' },
  ],
  STATUS: [
    { type: 'STATUS', requestId: 0, jobId: 0 },
    { type: 'STATUS', requestId: U32_MAX, jobId: MAX_ID },
  ],
  CANCEL: [
    { type: 'CANCEL', requestId: 0, jobId: 0 },
    { type: 'CANCEL', requestId: U32_MAX, jobId: MAX_ID },
  ],
  LIST: [
    { type: 'LIST', requestId: 0, state: '', kind: '', limit: 0 },
    { type: 'LIST', requestId: 9, state: 'DONE', kind: 'k', limit: 5, afterId: 2 ** 53 - 1, order: 'oldest' },
    { type: 'LIST', requestId: 10, state: '', kind: '', limit: 0, afterId: 0, order: 'newest' },
    ...JOB_STATES.map((state, i): Extract<Message, { type: 'LIST' }> => ({
      type: 'LIST', requestId: U32_MAX - i, state, kind: i % 2 === 0 ? ASCII_255 : '🚀', limit: i === 0 ? U32_MAX : i,
    })),
  ],
  WORKERS: [
    { type: 'WORKERS', requestId: 0 },
    { type: 'WORKERS', requestId: U32_MAX },
  ],
  STATS: [
    { type: 'STATS', requestId: 0 },
    { type: 'STATS', requestId: U32_MAX },
  ],
  COMPACT: [
    { type: 'COMPACT', requestId: 0 },
    { type: 'COMPACT', requestId: U32_MAX },
  ],
  FOLLOW: [
    { type: 'FOLLOW', requestId: 1, kind: '' },
    { type: 'FOLLOW', requestId: U32_MAX, kind: ASCII_255 },
  ],
  NOTICE: [
    ...JOB_STATES.map((state, i): Extract<Message, { type: 'NOTICE' }> => ({ type: 'NOTICE', jobId: i === 0 ? MAX_ID : i, state, attempt: i, kind: i % 2 === 0 ? 'sha256' : '🚀' })),
  ],
  ADMIN: [
    { type: 'ADMIN', requestId: 1, body: { op: 'retry', jobId: 2 ** 53 - 1 } },
    { type: 'ADMIN', requestId: U32_MAX, body: { op: 'retryMany', state: 'FAILED', kind: '🚀', limit: 10, afterId: 5 } },
    { type: 'ADMIN', requestId: 3, body: { op: 'purge', kind: ASCII_255 } },
  ],
  REPLY: [
    { type: 'REPLY', requestId: 1, body: JOB_INFO },
    { type: 'REPLY', requestId: 2, body: [JOB_INFO, { ...JOB_INFO, id: 0, state: 'QUEUED', notBefore: 5 }] },
    { type: 'REPLY', requestId: 3, body: [WORKER_INFO] },
    { type: 'REPLY', requestId: 4, body: STATS_INFO },
    { type: 'REPLY', requestId: 0, body: null },
    { type: 'REPLY', requestId: U32_MAX, body: [] },
    { type: 'REPLY', requestId: 5, body: { text: TEXT, nested: { deep: [1, 'two', false, null] } } },
    { type: 'REPLY', requestId: 6, body: 42 },
  ],
  // A REPLY whose bytes travel beside the JSON (§5.5): the same message type, its own command byte.
  REPLY_DATA: [
    { type: 'REPLY', requestId: 7, body: JOB_INFO, data: Buffer.from([0, 0xff, 0xfe, 0x22, 0x5c]) },
    { type: 'REPLY', requestId: U32_MAX, body: null, data: Buffer.alloc(0) },
    { type: 'REPLY', requestId: 8, body: { text: TEXT }, data: Buffer.from(TEXT) },
  ],
};

const ALL: Message[] = Object.values(SAMPLES).flat();

// ---------------------------------------------------------------------------

describe('round trip: decodeMessage(encode(msg)) equals msg', () => {
  it('covers every command byte of the protocol', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(Object.keys(Command).sort());
    expect(new Set(Object.values(Command)).size).toBe(Object.keys(Command).length);
    for (const msg of ALL) expect(encode(msg)[0]).toBe(msg.type === 'REPLY' && msg.data !== undefined ? Command.REPLY_DATA : Command[msg.type]);
  });

  it.each(ALL.map((msg, i) => [`${i} ${msg.type}`, msg] as const))('%s', (_name, msg) => {
    const bytes = encode(msg);
    expect(bytes.readUInt32BE(1)).toBe(bytes.length - HEADER_BYTES);
    expect(decodeMessage(frameOf(bytes))).toStrictEqual(msg);
    expect(decodeAll(bytes)).toStrictEqual([msg]);
    // Whole, byte by byte, and in 3-byte pieces (node-redis decoder.spec style).
    for (const step of [bytes.length, 1, 3]) {
      const frames = framesSplitAt(bytes, everyOffset(bytes, step));
      expect(frames.map(decodeMessage)).toStrictEqual([msg]);
    }
  });

  it('is exact for every ErrorCode, EVENT event, ABANDON reason and LIST state', () => {
    const codes = SAMPLES.ERROR.map((m) => m.code);
    expect(new Set(codes)).toEqual(new Set(Object.keys(ErrorCode)));
    expect(new Set(SAMPLES.EVENT.map((m) => m.event))).toEqual(new Set(['done', 'failed', 'progress', 'cancelled']));
    expect(new Set(SAMPLES.ABANDON.map((m) => m.reason))).toEqual(new Set(['timeout', 'cancelled', 'lost']));
    expect(new Set(SAMPLES.LIST.map((m) => m.state))).toEqual(new Set(['', ...JOB_STATES]));
  });

  it('takes max-length str8 strings in every str8 field (255 bytes, ASCII and multi-byte)', () => {
    for (const s of [ASCII_255, UTF8_255, EMOJI_255]) {
      expect(Buffer.byteLength(s)).toBe(MAX_STR8_BYTES);
      const submit: Message = { ...SAMPLES.SUBMIT[0]!, kind: s, key: s };
      const assign: Message = { ...SAMPLES.ASSIGN[0]!, kind: s };
      const list: Message = { ...SAMPLES.LIST[0]!, kind: s };
      for (const msg of [submit, assign, list]) expect(decodeAll(encode(msg))).toStrictEqual([msg]);
    }
  });

  it('keeps job ids exact up to Number.MAX_SAFE_INTEGER, across the 2^32 word boundary', () => {
    for (const jobId of [0, 1, U32_MAX, 2 ** 32, 2 ** 32 + 1, 2 ** 52 + 7, MAX_ID - 1, MAX_ID]) {
      const msgs: Message[] = [
        { type: 'ACK', requestId: 1, jobId, existing: false },
        { type: 'RESULT', jobId, attempt: 1, result: Buffer.alloc(0) },
        { type: 'STATUS', requestId: 1, jobId },
      ];
      for (const msg of msgs) expect(decodeAll(encode(msg))).toStrictEqual([msg]);
    }
  });

  it('decodes an empty payload as an empty Buffer, never undefined', () => {
    const [msg] = decodeAll(encode({ type: 'RESULT', jobId: 1, attempt: 1, result: Buffer.alloc(0) }));
    expect(msg?.type === 'RESULT' && Buffer.isBuffer(msg.result) && msg.result.length === 0).toBe(true);
  });
});

describe('encodeInto (hot-path messages written in place)', () => {
  it('writes exactly the bytes of encode() at any offset, and reports the size', () => {
    const hot = ALL.filter(isHotMessage);
    expect(new Set(hot.map((m) => m.type))).toEqual(new Set(['SUBMIT', 'ACK', 'ASSIGN', 'RESULT', 'EVENT']));
    for (const msg of hot) {
      const expected = encode(msg);
      expect(hotFrameBytes(msg)).toBe(expected.length);
      const buf = Buffer.alloc(expected.length + 10, 0xee);
      expect(encodeInto(msg, buf, 3)).toBe(3 + expected.length);
      expect(buf.subarray(3, 3 + expected.length).equals(expected)).toBe(true);
      expect([...buf.subarray(0, 3), ...buf.subarray(3 + expected.length)].every((b) => b === 0xee)).toBe(true);
    }
    for (const msg of ALL) if (!isHotMessage(msg)) expect(hotFrameBytes(msg)).toBe(-1);
  });

  it('checks every field before writing anything', () => {
    const bad = [
      { ...SAMPLES.SUBMIT[1]!, delayMs: -1 },
      { ...SAMPLES.SUBMIT[1]!, key: 'k'.repeat(256) },
      { ...SAMPLES.ACK[0]!, jobId: 2 ** 53 },
      { ...SAMPLES.ASSIGN[1]!, timeoutMs: 2 ** 32 },
      { ...SAMPLES.RESULT[1]!, jobId: -1 },
      { ...SAMPLES.EVENT[1]!, pct: 256 },
    ];
    for (const msg of bad) {
      const buf = Buffer.alloc(1024, 0xee);
      expectInvalidArgument(() => encodeInto(msg, buf, 0));
      expect(buf.every((b) => b === 0xee)).toBe(true);
    }
  });
});

describe('hot frames written without a message object (issue 9)', () => {
  it('encodeAssignInto / encodeResultInto / encodeAckInto / encodeEventInto write the bytes of encode()', () => {
    const args = Buffer.from([0, 1, 0x7f, 0x80, 0xc3, 0xa9, 0xff, 0x41]);
    const assign = encode({ type: 'ASSIGN', jobId: 2 ** 40 + 7, attempt: 3, timeoutMs: 1500, kind: 'sha256', args });
    for (const form of [args, args.toString('latin1')]) {
      const buf = Buffer.alloc(assign.length + 2, 0xee);
      expect(assignFrameBytes('sha256', form.length)).toBe(assign.length);
      expect(encodeAssignInto(buf, 1, 2 ** 40 + 7, 3, 1500, 'sha256', form)).toBe(1 + assign.length);
      expect(buf.subarray(1, 1 + assign.length).equals(assign)).toBe(true);
      expect(buf[0]).toBe(0xee);
      expect(buf[buf.length - 1]).toBe(0xee);
    }
    const text = 'héllo ✓ 𝄞';
    const result = encode({ type: 'RESULT', jobId: 9, attempt: 1, result: Buffer.from(text) });
    for (const form of [Buffer.from(text), text]) {
      const buf = Buffer.alloc(result.length);
      expect(encodeResultInto(buf, 0, 9, 1, form, Buffer.byteLength(text))).toBe(result.length);
      expect(buf.equals(result)).toBe(true);
    }
    const ack = encode({ type: 'ACK', requestId: 77, jobId: 2 ** 33, existing: true });
    const ackBuf = Buffer.alloc(ACK_FRAME_BYTES);
    expect(encodeAckInto(ackBuf, 0, 77, 2 ** 33, true)).toBe(ack.length);
    expect(ackBuf.equals(ack)).toBe(true);
    const data = Buffer.from('0123456789abcdef');
    const event = encode({ type: 'EVENT', jobId: 5, event: 'failed', attempt: 2, pct: 0, permanent: true, data });
    const eventBuf = Buffer.alloc(eventFrameBytes(data.length));
    expect(encodeEventInto(eventBuf, 0, 5, 'failed', 2, 0, true, data)).toBe(event.length);
    expect(eventBuf.equals(event)).toBe(true);
  });

  it('check their fields before writing, like encodeInto', () => {
    const buf = Buffer.alloc(256, 0xee);
    expectInvalidArgument(() => encodeAssignInto(buf, 0, -1, 1, 0, 'k', 'x'));
    expectInvalidArgument(() => encodeAssignInto(buf, 0, 1, 1, 0, 'k'.repeat(256), 'x'));
    expectInvalidArgument(() => encodeResultInto(buf, 0, 1, 2 ** 32, 'x', 1));
    expectInvalidArgument(() => encodeAckInto(buf, 0, -1, 1, false));
    expectInvalidArgument(() => encodeEventInto(buf, 0, 1, 'done', 1, 256, false, Buffer.alloc(0)));
    expect(buf.every((b) => b === 0xee)).toBe(true);
  });
});

describe('byte layouts (pinned; docs/PROTOCOL.md §4-§5 must match)', () => {
  const cases: [string, Message, string][] = [
    ['HEARTBEAT', { type: 'HEARTBEAT', running: 3 }, '03 00000004 | 00000003'],
    ['GOODBYE', { type: 'GOODBYE', reason: 'bye' }, '04 00000003 | 627965'],
    [
      'SUBMIT',
      {
        type: 'SUBMIT', requestId: 0x01020304, kind: 'sha256', args: Buffer.from('hi'), priority: 7, timeoutMs: 1000,
        maxRetries: 2, estMs: 50, delayMs: 0x0a0b0c0d, key: 'k1', wait: true, progress: true,
      },
      '10 00000020 | 01020304 | 03 | 07 | 0002 | 000003e8 | 00000032 | 0a0b0c0d | 06 736861323536 | 02 6b31 | 6869',
    ],
    ['SUBMIT wait only', { ...SAMPLES.SUBMIT[0]!, wait: true }, '10 00000017 | 00000000 | 01 | 00 | 0000 | 00000000 | 00000000 | 00000000 | 01 61 | 00'],
    ['SUBMIT progress only', { ...SAMPLES.SUBMIT[0]!, progress: true }, '10 00000017 | 00000000 | 02 | 00 | 0000 | 00000000 | 00000000 | 00000000 | 01 61 | 00'],
    ['ACK', { type: 'ACK', requestId: 1, jobId: 2 ** 32 + 5, existing: true }, '11 0000000d | 00000001 | 00000001 00000005 | 01'],
    ['ACK max id', { type: 'ACK', requestId: U32_MAX, jobId: MAX_ID, existing: false }, '11 0000000d | ffffffff | 001fffff ffffffff | 00'],
    [
      'EVENT failed',
      { type: 'EVENT', jobId: 7, event: 'failed', attempt: 3, pct: 0, permanent: true, data: Buffer.from('boom') },
      '12 00000013 | 0000000000000007 | 02 | 01 | 00 | 00000003 | 626f6f6d',
    ],
    ['EVENT done', { ...SAMPLES.EVENT[0]!, data: Buffer.alloc(0) }, '12 0000000f | 0000000000000001 | 01 | 00 | 00 | 00000001'],
    ['EVENT progress', { ...SAMPLES.EVENT[2]!, data: Buffer.alloc(0) }, '12 0000000f | 0000000000000000 | 03 | 00 | ff | 00000002'],
    ['EVENT cancelled', SAMPLES.EVENT[3]!, '12 0000000f | 0000010000000003 | 04 | 00 | 00 | 00000000'],
    ['WATCH', { type: 'WATCH', requestId: 9, jobId: 7, progress: true }, '13 0000000d | 00000009 | 0000000000000007 | 01'],
    [
      'ASSIGN',
      { type: 'ASSIGN', jobId: 7, attempt: 2, timeoutMs: 10_000, kind: 'add', args: Buffer.from('[1,2]') },
      '20 00000019 | 0000000000000007 | 00000002 | 00002710 | 03 616464 | 5b312c325d',
    ],
    ['RESULT', { type: 'RESULT', jobId: 7, attempt: 2, result: Buffer.from('3') }, '21 0000000d | 0000000000000007 | 00000002 | 33'],
    ['FAIL', { type: 'FAIL', jobId: 7, attempt: 2, permanent: true, message: 'x' }, '22 0000000e | 0000000000000007 | 00000002 | 01 | 78'],
    ['PROGRESS', { type: 'PROGRESS', jobId: 7, attempt: 2, pct: 50, message: 'half' }, '23 00000011 | 0000000000000007 | 00000002 | 32 | 68616c66'],
    ['ABANDON timeout', { type: 'ABANDON', jobId: 7, attempt: 2, reason: 'timeout' }, '24 0000000d | 0000000000000007 | 00000002 | 01'],
    ['ABANDON cancelled', { type: 'ABANDON', jobId: 7, attempt: 2, reason: 'cancelled' }, '24 0000000d | 0000000000000007 | 00000002 | 02'],
    ['ABANDON lost', { type: 'ABANDON', jobId: 7, attempt: 2, reason: 'lost' }, '24 0000000d | 0000000000000007 | 00000002 | 03'],
    ['STATUS', { type: 'STATUS', requestId: 5, jobId: 7 }, '30 0000000c | 00000005 | 0000000000000007'],
    ['CANCEL', { type: 'CANCEL', requestId: 5, jobId: 7 }, '31 0000000c | 00000005 | 0000000000000007'],
    [
      'LIST',
      { type: 'LIST', requestId: 5, state: 'DONE', kind: 'add', limit: 10 },
      '32 00000011 | 00000005 | 0000000a | 04 444f4e45 | 03 616464',
    ],
    ['WORKERS', { type: 'WORKERS', requestId: 5 }, '33 00000004 | 00000005'],
    ['STATS', { type: 'STATS', requestId: 5 }, '34 00000004 | 00000005'],
    ['COMPACT', { type: 'COMPACT', requestId: 5 }, '35 00000004 | 00000005'],
    ['REPLY', { type: 'REPLY', requestId: 5, body: { ok: true } }, '3f 0000000f | 00000005 | 7b226f6b223a747275657d'],
    [
      'ERROR',
      { type: 'ERROR', requestId: 0, code: 'NOT_FOUND', message: 'no job 7' },
      '7f 00000016 | 00000000 | 09 4e4f545f464f554e44 | 6e6f206a6f622037',
    ],
  ];
  it.each(cases)('%s', (_name, msg, expected) => {
    expect(encode(msg).toString('hex')).toBe(hex(expected).toString('hex'));
    expect(decodeMessage(frameOf(hex(expected)))).toStrictEqual(msg);
  });

  it('HELLO and WELCOME carry one JSON object (token only when set)', () => {
    const hello: Message = { type: 'HELLO', version: 1, role: 'worker', name: 'w1', capabilities: ['sha256'], concurrency: 4, token: 't' };
    const bytes = encode(hello);
    expect(bytes[0]).toBe(0x01);
    expect(JSON.parse(bytes.subarray(HEADER_BYTES).toString('utf8'))).toStrictEqual({
      version: 1, role: 'worker', name: 'w1', capabilities: ['sha256'], concurrency: 4, token: 't',
    });
    const noToken = encode({ ...hello, token: undefined });
    expect(noToken.subarray(HEADER_BYTES).toString('utf8')).not.toContain('token');
    const welcome = encode(SAMPLES.WELCOME[0]!);
    expect(welcome[0]).toBe(0x02);
    expect(JSON.parse(welcome.subarray(HEADER_BYTES).toString('utf8'))).toStrictEqual({
      version: 1, serverVersion: '0.1.0', heartbeatMs: 1000, maxPayloadBytes: DEFAULT_MAX_PAYLOAD, sessionId: 'c1',
    });
  });

  it('JSON key order in HELLO/WELCOME does not matter', () => {
    const text = '{"concurrency":2,"capabilities":["a"],"name":"n","role":"worker","version":1}';
    const payload = Buffer.from(text);
    expect(decodeMessage({ command: 0x01, payload })).toStrictEqual({
      type: 'HELLO', version: 1, role: 'worker', name: 'n', capabilities: ['a'], concurrency: 2,
    });
  });
});

describe('encode rejects out-of-range fields with INVALID_ARGUMENT', () => {
  const submit = SAMPLES.SUBMIT[0]!;
  it('str8 longer than 255 bytes (ASCII and multi-byte)', () => {
    for (const s of ['k'.repeat(256), 'é'.repeat(128), '🚀'.repeat(64)]) {
      expect(Buffer.byteLength(s)).toBe(256);
      expectInvalidArgument(() => encode({ ...submit, kind: s }));
      expectInvalidArgument(() => encode({ ...submit, key: s }));
      expectInvalidArgument(() => encode({ type: 'ASSIGN', jobId: 1, attempt: 1, timeoutMs: 0, kind: s, args: Buffer.alloc(0) }));
      expectInvalidArgument(() => encode({ type: 'LIST', requestId: 1, state: '', kind: s, limit: 0 }));
    }
  });

  it('u32 fields outside 0..2^32-1 or not integers', () => {
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expectInvalidArgument(() => encode({ ...submit, requestId: bad }));
      expectInvalidArgument(() => encode({ ...submit, timeoutMs: bad }));
      expectInvalidArgument(() => encode({ ...submit, estMs: bad }));
      expectInvalidArgument(() => encode({ ...submit, delayMs: bad }));
      expectInvalidArgument(() => encode({ type: 'HEARTBEAT', running: bad }));
      expectInvalidArgument(() => encode({ type: 'RESULT', jobId: 1, attempt: bad, result: Buffer.alloc(0) }));
      expectInvalidArgument(() => encode({ type: 'LIST', requestId: 1, state: '', kind: '', limit: bad }));
      expectInvalidArgument(() => encode({ type: 'ERROR', requestId: bad, code: 'INTERNAL', message: '' }));
      expectInvalidArgument(() => encode({ type: 'HELLO', version: 1, role: 'worker', name: 'w', capabilities: ['a'], concurrency: bad }));
      expectInvalidArgument(() => encode({ ...SAMPLES.WELCOME[0]!, heartbeatMs: bad }));
      expectInvalidArgument(() => encode({ ...SAMPLES.WELCOME[0]!, maxPayloadBytes: bad }));
    }
  });

  it('u8 / u16 fields past their width', () => {
    expectInvalidArgument(() => encode({ ...submit, priority: 256 }));
    expectInvalidArgument(() => encode({ ...submit, maxRetries: 0x10000 }));
    expectInvalidArgument(() => encode({ type: 'PROGRESS', jobId: 1, attempt: 1, pct: 256, message: '' }));
    expectInvalidArgument(() => encode({ ...SAMPLES.EVENT[0]!, pct: 256 }));
    expectInvalidArgument(() => encode({ type: 'HELLO', version: 0x10000, role: 'client', name: '', capabilities: [], concurrency: 0 }));
    expectInvalidArgument(() => encode({ ...SAMPLES.WELCOME[0]!, version: 0x10000 }));
  });

  it('job ids that are negative, fractional or 2^53 and above', () => {
    for (const bad of [-1, 0.5, 2 ** 53, 2 ** 64, Number.NaN]) {
      expectInvalidArgument(() => encode({ type: 'ACK', requestId: 1, jobId: bad, existing: false }));
      expectInvalidArgument(() => encode({ type: 'ASSIGN', jobId: bad, attempt: 1, timeoutMs: 0, kind: 'a', args: Buffer.alloc(0) }));
      expectInvalidArgument(() => encode({ type: 'CANCEL', requestId: 1, jobId: bad }));
    }
  });
});

describe('decodeMessage rejects malformed payloads with a typed ProtocolError', () => {
  it('UNKNOWN_COMMAND for a command byte outside the protocol', () => {
    const known = new Set<number>(Object.values(Command));
    for (let c = 0; c < 256; c++) {
      if (known.has(c)) continue;
      expectProtocolError(() => decodeMessage({ command: c, payload: Buffer.alloc(16) }), 'UNKNOWN_COMMAND');
    }
  });

  it('TRUNCATED_PAYLOAD for every cut inside a fixed-layout field', () => {
    const fixedBytes: Partial<Record<MessageType, number>> = {
      SUBMIT: 22, ACK: 13, EVENT: 15, WATCH: 13, ASSIGN: 17, RESULT: 12, FAIL: 13, PROGRESS: 13, ABANDON: 13,
      STATUS: 12, CANCEL: 12, LIST: 10, WORKERS: 4, STATS: 4, COMPACT: 4, HEARTBEAT: 4, ERROR: 5, REPLY: 4,
    };
    for (const [type, fixed] of Object.entries(fixedBytes)) {
      const msg = SAMPLES[type as MessageType][0]!;
      const { command, payload } = frameOf(encode(msg));
      for (let cut = 0; cut < fixed; cut++) {
        expectProtocolError(() => decodeMessage({ command, payload: payload.subarray(0, cut) }), 'TRUNCATED_PAYLOAD');
      }
    }
  });

  it('TRUNCATED_PAYLOAD when a str8 length runs past the payload', () => {
    const bytes = encode({ type: 'ASSIGN', jobId: 1, attempt: 1, timeoutMs: 0, kind: 'sha256', args: Buffer.alloc(0) });
    bytes[HEADER_BYTES + 16] = 7; // kind length 7, only 6 bytes follow
    expectProtocolError(() => decodeMessage(frameOf(bytes)), 'TRUNCATED_PAYLOAD');
    const list = encode({ type: 'LIST', requestId: 1, state: '', kind: '', limit: 0 });
    list[HEADER_BYTES + 9] = 1; // kind length 1, nothing follows
    expectProtocolError(() => decodeMessage(frameOf(list)), 'TRUNCATED_PAYLOAD');
  });

  it('BAD_FRAME for trailing bytes after a fixed layout', () => {
    for (const msg of [SAMPLES.ACK[0]!, SAMPLES.WATCH[0]!, SAMPLES.ABANDON[0]!, SAMPLES.STATUS[0]!, SAMPLES.CANCEL[0]!, SAMPLES.LIST[1]!, SAMPLES.WORKERS[0]!, SAMPLES.STATS[0]!, SAMPLES.COMPACT[0]!, SAMPLES.HEARTBEAT[2]!]) {
      // (LIST and HEARTBEAT have optional trailers: the samples carry them, so one more byte is trailing.)
      const { command, payload } = frameOf(encode(msg));
      expectProtocolError(() => decodeMessage({ command, payload: Buffer.concat([payload, Buffer.from([0])]) }), 'BAD_FRAME');
    }
  });

  it('BAD_FRAME for unknown EVENT codes, ABANDON reasons and LIST states', () => {
    for (const code of [0, 5, 0xff]) {
      const ev = encode(SAMPLES.EVENT[0]!);
      ev[HEADER_BYTES + 8] = code;
      expectProtocolError(() => decodeMessage(frameOf(ev)), 'BAD_FRAME');
    }
    for (const code of [0, 4, 0xff]) {
      const ab = encode(SAMPLES.ABANDON[0]!);
      ab[HEADER_BYTES + 12] = code;
      expectProtocolError(() => decodeMessage(frameOf(ab)), 'BAD_FRAME');
    }
    const payload = Buffer.from(hex('00000001 00000000 04 646f6e65 00')); // state "done": states are upper case
    expectProtocolError(() => decodeMessage({ command: Command.LIST, payload }), 'BAD_FRAME');
  });

  it('BAD_FRAME for a job id of 2^53 or more', () => {
    for (const hi of ['00200000', 'ffffffff']) {
      const payload = hex(`00000001 ${hi} 00000000 00`);
      expectProtocolError(() => decodeMessage({ command: Command.ACK, payload }), 'BAD_FRAME');
    }
    expect(decodeMessage({ command: Command.ACK, payload: hex('00000001 001fffff ffffffff 00') })).toMatchObject({ jobId: MAX_ID });
  });

  it('BAD_FRAME for a str8 that is not valid UTF-8 (identifiers must re-encode to the same bytes)', () => {
    for (const bad of ['ff', 'c3', 'e282', 'eda080' /* a UTF-16 surrogate */, 'c0af' /* overlong */]) {
      const kind = hex(bad);
      const payload = Buffer.concat([hex('0000000000000001 00000001 00000000'), Buffer.from([kind.length]), kind]);
      expectProtocolError(() => decodeMessage({ command: Command.ASSIGN, payload }), 'BAD_FRAME');
    }
  });

  it('BAD_FRAME for JSON payloads that do not parse or lack fields', () => {
    const json = (command: number, text: string): Frame => ({ command, payload: Buffer.from(text) });
    const ok = { version: 1, role: 'worker', name: 'w', capabilities: ['a'], concurrency: 1 };
    const bad: unknown[] = [
      [], null, 'x', 1,
      { ...ok, version: -1 }, { ...ok, version: 1.5 }, { ...ok, version: '1' }, { ...ok, version: 0x10000 },
      { ...ok, role: 'admin' }, { ...ok, name: 5 }, { ...ok, capabilities: 'a' }, { ...ok, capabilities: [1] },
      { ...ok, concurrency: -1 }, { ...ok, concurrency: 2 ** 32 }, { ...ok, token: 5 }, { ...ok, token: null },
    ];
    for (const key of Object.keys(ok)) {
      const copy: Record<string, unknown> = { ...ok };
      delete copy[key];
      bad.push(copy);
    }
    for (const body of bad) expectProtocolError(() => decodeMessage(json(Command.HELLO, JSON.stringify(body))), 'BAD_FRAME');
    for (const text of ['', '{', '{"version":1,}', '\u00ff']) {
      expectProtocolError(() => decodeMessage(json(Command.HELLO, text)), 'BAD_FRAME');
      expectProtocolError(() => decodeMessage(json(Command.WELCOME, text)), 'BAD_FRAME');
    }
    const welcome = { version: 1, serverVersion: 'x', heartbeatMs: 1000, maxPayloadBytes: 10, sessionId: 's' };
    for (const key of Object.keys(welcome)) {
      const copy: Record<string, unknown> = { ...welcome };
      delete copy[key];
      expectProtocolError(() => decodeMessage(json(Command.WELCOME, JSON.stringify(copy))), 'BAD_FRAME');
    }
    expectProtocolError(() => decodeMessage(json(Command.WELCOME, JSON.stringify({ ...welcome, heartbeatMs: -5 }))), 'BAD_FRAME');
    expectProtocolError(() => decodeMessage(json(Command.WELCOME, JSON.stringify({ ...welcome, maxPayloadBytes: 2 ** 32 }))), 'BAD_FRAME');
    expectProtocolError(() => decodeMessage({ command: Command.REPLY, payload: hex('00000001 7b') }), 'BAD_FRAME');
    expectProtocolError(() => decodeMessage({ command: Command.REPLY, payload: hex('00000001') }), 'BAD_FRAME'); // empty JSON
  });

  it('surfaces an ERROR code it does not know as INTERNAL, keeping the code in the message', () => {
    const payload = Buffer.concat([hex('00000003'), Buffer.from([11]), Buffer.from('NEW_FEATURE'), Buffer.from('details')]);
    const msg = decodeMessage({ command: Command.ERROR, payload });
    expect(msg).toMatchObject({ type: 'ERROR', requestId: 3, code: 'INTERNAL' });
    expect(msg.type === 'ERROR' && msg.message.includes('NEW_FEATURE')).toBe(true);
  });

  it('treats any non-1 flag byte as false, and ignores unknown SUBMIT flag bits', () => {
    const ack = encode({ type: 'ACK', requestId: 1, jobId: 1, existing: true });
    ack[HEADER_BYTES + 12] = 2;
    expect(decodeMessage(frameOf(ack))).toMatchObject({ existing: false });
    const submit = encode(SAMPLES.SUBMIT[0]!);
    submit[HEADER_BYTES + 4] = 0xfd; // wait, not progress, junk bits
    expect(decodeMessage(frameOf(submit))).toMatchObject({ wait: true, progress: false });
  });
});

describe('FrameDecoder', () => {
  const stream = Buffer.concat(ALL.map(encode));

  it('cuts the same frames whatever the chunking: whole, 1 byte at a time, many chunk sizes', () => {
    const whole = new FrameDecoder().push(stream);
    expect(whole.map(decodeMessage)).toStrictEqual(ALL);
    for (const step of [1, 2, 4, 5, 6, 7, 13, 64, 1000, 65_536]) {
      const frames = framesSplitAt(stream, everyOffset(stream, step));
      expect(frames.length).toBe(ALL.length);
      expect(frames).toStrictEqual(whole);
    }
  });

  it('splits one frame across many chunks and returns it from the chunk that completes it', () => {
    const bytes = encode({ type: 'RESULT', jobId: 1, attempt: 1, result: Buffer.alloc(100_000, 7) });
    const decoder = new FrameDecoder();
    let fed = 0;
    for (const size of [1, 4, 1, 999, 50_000]) {
      expect(decoder.push(bytes.subarray(fed, fed + size))).toEqual([]);
      fed += size;
      // The 5 header bytes are consumed as soon as they are complete.
      expect(decoder.bufferedBytes).toBe(fed < HEADER_BYTES ? fed : fed - HEADER_BYTES);
      expect(decoder.midFrame).toBe(true);
    }
    const frames = decoder.push(bytes.subarray(fed));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.payload.equals(bytes.subarray(HEADER_BYTES))).toBe(true);
    expect(decoder.bufferedBytes).toBe(0);
    expect(decoder.midFrame).toBe(false);
  });

  it('returns many frames from one chunk as views of it (no copy)', () => {
    const frames = new FrameDecoder().push(stream);
    for (const f of frames) if (f.payload.length > 0) expect(f.payload.buffer).toBe(stream.buffer);
  });

  it('ignores empty chunks and handles empty payloads between frames', () => {
    const hb = encode({ type: 'GOODBYE', reason: '' });
    expect(hb.length).toBe(HEADER_BYTES);
    const decoder = new FrameDecoder();
    expect(decoder.push(Buffer.alloc(0))).toEqual([]);
    expect(decoder.midFrame).toBe(false);
    const frames = decoder.push(Buffer.concat([hb, hb, hb]));
    expect(frames).toHaveLength(3);
    for (const f of frames) expect(f).toEqual({ command: Command.GOODBYE, payload: Buffer.alloc(0) });
  });

  it('decodeAll rejects a stream ending inside a frame (header or payload)', () => {
    const bytes = encode(SAMPLES.ASSIGN[2]!);
    for (const cut of [1, 4, HEADER_BYTES, bytes.length - 1]) {
      expectProtocolError(() => decodeAll(bytes.subarray(0, cut)), 'TRUNCATED_PAYLOAD');
    }
    expect(decodeAll(Buffer.alloc(0))).toEqual([]);
  });
});

describe('payload size limit', () => {
  const header = (length: number, command: number = Command.RESULT): Buffer => {
    const h = Buffer.alloc(HEADER_BYTES);
    h[0] = command;
    h.writeUInt32BE(length, 1);
    return h;
  };

  it('rejects an oversized length after exactly 5 header bytes, before any payload', () => {
    for (const length of [DEFAULT_MAX_PAYLOAD + 1, U32_MAX]) {
      const decoder = new FrameDecoder();
      const h = header(length);
      for (let i = 0; i < HEADER_BYTES - 1; i++) expect(decoder.push(h.subarray(i, i + 1))).toEqual([]);
      expectProtocolError(() => decoder.push(h.subarray(HEADER_BYTES - 1)), 'FRAME_TOO_LARGE');
      expect(decoder.bufferedBytes).toBe(0); // nothing kept
    }
  });

  it('rejects it in the same push when payload bytes follow the header, and for an unknown command too', () => {
    const decoder = new FrameDecoder(10);
    expectProtocolError(() => decoder.push(Buffer.concat([header(11, 0xee), Buffer.alloc(11)])), 'FRAME_TOO_LARGE');
    // Frames before the oversized one in the same chunk are lost with the connection; the error is what counts.
    const d2 = new FrameDecoder(10);
    expectProtocolError(() => d2.push(Buffer.concat([encode({ type: 'HEARTBEAT', running: 0 }), header(11)])), 'FRAME_TOO_LARGE');
  });

  it('accepts a payload of exactly the maximum (default and custom)', () => {
    const d = new FrameDecoder();
    expect(d.push(header(DEFAULT_MAX_PAYLOAD))).toEqual([]);
    expect(d.midFrame).toBe(true);
    const small = new FrameDecoder(10);
    const frames = small.push(Buffer.concat([header(10), Buffer.alloc(10, 1)]));
    expect(frames).toHaveLength(1);
    expectProtocolError(() => small.push(header(11)), 'FRAME_TOO_LARGE');
    const zero = new FrameDecoder(0);
    expect(zero.push(header(0))).toHaveLength(1);
    expectProtocolError(() => zero.push(header(1)), 'FRAME_TOO_LARGE');
  });

  it('decodeAll honours a custom maximum', () => {
    const bytes = encode({ type: 'RESULT', jobId: 1, attempt: 1, result: Buffer.alloc(20) });
    expect(decodeAll(bytes, 32)).toHaveLength(1);
    expectProtocolError(() => decodeAll(bytes, 31), 'FRAME_TOO_LARGE');
  });

  it('refuses all further input after an error (FrameDecoder and MessageDecoder)', () => {
    const decoder = new FrameDecoder(4);
    expectProtocolError(() => decoder.push(header(5)), 'FRAME_TOO_LARGE');
    const good = encode({ type: 'HEARTBEAT', running: 1 });
    expectProtocolError(() => decoder.push(good), 'BAD_FRAME');
    expectProtocolError(() => decoder.push(Buffer.alloc(0)), 'BAD_FRAME');

    const md = new MessageDecoder(4);
    expectProtocolError(() => md.push(header(5)), 'FRAME_TOO_LARGE');
    expectProtocolError(() => md.push(good), 'BAD_FRAME');

    // A frame that cuts fine but does not decode also ends a MessageDecoder.
    const md2 = new MessageDecoder();
    expectProtocolError(() => md2.push(Buffer.concat([header(0, 0x00), good])), 'UNKNOWN_COMMAND');
    expectProtocolError(() => md2.push(good), 'BAD_FRAME');
  });

  it('MessageDecoder yields messages across chunks until then', () => {
    const md = new MessageDecoder();
    const bytes = Buffer.concat(ALL.map(encode));
    const out: Message[] = [];
    for (let i = 0; i < bytes.length; i += 11) out.push(...md.push(bytes.subarray(i, i + 11)));
    expect(out).toStrictEqual(ALL);
    expect(md.bufferedBytes).toBe(0);
  });
});

describe('no quadratic buffering', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Spies on every way to copy bytes; returns a function giving the bytes copied so far. */
  function countCopies(): () => { bytes: number; concats: number } {
    const copy = vi.spyOn(Buffer.prototype, 'copy');
    const set = vi.spyOn(Uint8Array.prototype, 'set');
    const concat = vi.spyOn(Buffer, 'concat');
    const from = vi.spyOn(Buffer, 'from');
    return () => {
      let bytes = 0;
      copy.mock.calls.forEach((args, i) => {
        const src = copy.mock.contexts[i] as Buffer;
        const [target, targetStart = 0, sourceStart = 0, sourceEnd = src.length] = args as [Uint8Array, number?, number?, number?];
        bytes += Math.max(0, Math.min(sourceEnd - sourceStart, target.length - targetStart));
      });
      for (const [src] of set.mock.calls) bytes += (src as ArrayLike<number>).length;
      for (const [list] of concat.mock.calls) for (const b of list) bytes += b.length;
      for (const [src] of from.mock.calls) if (typeof src === 'object' && src !== null && 'length' in src) bytes += Number(src.length);
      return { bytes, concats: concat.mock.calls.length };
    };
  }

  it('copies a 16 MiB payload arriving in 64 KiB chunks exactly once', () => {
    const payloadBytes = DEFAULT_MAX_PAYLOAD - 12;
    const bytes = encode({ type: 'RESULT', jobId: 1, attempt: 1, result: Buffer.alloc(payloadBytes, 0xab) });
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 64 * 1024) chunks.push(bytes.subarray(i, i + 64 * 1024));
    expect(chunks.length).toBeGreaterThan(250);
    const decoder = new FrameDecoder();
    const copied = countCopies();
    const frames: Frame[] = [];
    for (const chunk of chunks) frames.push(...decoder.push(chunk));
    const { bytes: copiedBytes, concats } = copied();
    vi.restoreAllMocks();
    expect(frames).toHaveLength(1);
    expect(frames[0]!.payload.length).toBe(DEFAULT_MAX_PAYLOAD);
    expect(concats).toBe(0);
    expect(copiedBytes).toBe(DEFAULT_MAX_PAYLOAD); // one copy into the payload buffer, nothing per chunk
    expect(frames[0]!.payload.equals(bytes.subarray(HEADER_BYTES))).toBe(true);
  });

  it('copies nothing when many small frames arrive in one chunk', () => {
    const one = encode(SAMPLES.ASSIGN[2]!);
    const big = Buffer.concat(Array.from({ length: 10_000 }, () => one));
    const copied = countCopies();
    const frames = new FrameDecoder().push(big);
    const { bytes } = copied();
    vi.restoreAllMocks();
    expect(frames).toHaveLength(10_000);
    expect(bytes).toBe(0);
  });

  /** Best of 3 runs of `fn`, in ms. */
  function bestMs(fn: () => void): number {
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      fn();
      best = Math.min(best, performance.now() - t);
    }
    return best;
  }

  /**
   * Time to decode one input `factor` times as large, over the time to decode
   * the small one `factor` times: the same bytes and frames either way, so
   * ~1 when linear (a little more: the big run's objects outlive young-gen GC)
   * and ~`factor` when quadratic.
   */
  function growthRatio(make: (scale: number) => Buffer, decode: (b: Buffer) => void, factor: number): number {
    const small = make(1);
    const large = make(factor);
    decode(small); // warm up the JIT
    decode(large);
    const tLarge = bestMs(() => decode(large));
    const tSmall = bestMs(() => {
      for (let i = 0; i < factor; i++) decode(small);
    });
    return tLarge / tSmall;
  }

  it('decodes N small frames from one chunk in time linear in N (320k vs 16 x 20k frames)', () => {
    const one = encode(SAMPLES.ASSIGN[2]!);
    const ratio = growthRatio(
      (scale) => Buffer.concat(Array.from({ length: 20_000 * scale }, () => one)),
      (b) => {
        const frames = new FrameDecoder().push(b);
        if (frames.length * one.length !== b.length) throw new Error('lost frames');
      },
      16,
    );
    expect(ratio).toBeLessThan(8); // quadratic: ~16
  });

  it('buffers a payload trickled in 1-byte chunks in linear time (256 KiB vs 16 x 16 KiB)', () => {
    const ratio = growthRatio(
      (scale) => encode({ type: 'RESULT', jobId: 1, attempt: 1, result: Buffer.alloc(16 * 1024 * scale, 1) }),
      (b) => {
        const d = new FrameDecoder();
        let n = 0;
        for (let i = 0; i < b.length; i++) n += d.push(b.subarray(i, i + 1)).length;
        if (n !== 1) throw new Error('no frame');
      },
      16,
    );
    // An O(n) shift() per consumed chunk made this quadratic: ~16 here (and ~2 minutes for 512 KiB).
    expect(ratio).toBeLessThan(8);
  });
});

describe('docs/PROTOCOL.md worked example', () => {
  /** The exchange the doc walks through; its hex must decode to exactly these messages. */
  const exchange: Message[] = [
    { type: 'HELLO', version: 1, role: 'client', name: 'cli', capabilities: [], concurrency: 0 },
    { type: 'WELCOME', version: 1, serverVersion: '0.1.0', heartbeatMs: 1000, maxPayloadBytes: 16_777_216, sessionId: 'c1' },
    { type: 'HELLO', version: 1, role: 'worker', name: 'w1', capabilities: ['sha256'], concurrency: 4 },
    { type: 'WELCOME', version: 1, serverVersion: '0.1.0', heartbeatMs: 1000, maxPayloadBytes: 16_777_216, sessionId: 'c2' },
    {
      type: 'SUBMIT', requestId: 1, kind: 'sha256', args: Buffer.from('Hello, World!'), priority: 0, timeoutMs: 0,
      maxRetries: DEFAULT_RETRIES, estMs: 0, delayMs: 0, key: '', wait: true, progress: false,
    },
    { type: 'ACK', requestId: 1, jobId: 1, existing: false },
    { type: 'ASSIGN', jobId: 1, attempt: 1, timeoutMs: 10_000, kind: 'sha256', args: Buffer.from('Hello, World!') },
    { type: 'RESULT', jobId: 1, attempt: 1, result: Buffer.from('dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f') },
    {
      type: 'EVENT', jobId: 1, event: 'done', attempt: 1, pct: 0, permanent: false,
      data: Buffer.from('dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f'),
    },
  ];

  it('shows the bytes encode() produces, frame by frame', () => {
    const doc = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
    // Every ```frame block: lines of hex byte pairs, then `#` and an annotation.
    const blocks = [...doc.matchAll(/```frame\n([\s\S]*?)```/g)].map((m) =>
      Buffer.from(
        m[1]!
          .split('\n')
          .map((line) => line.split('#')[0]!.trim())
          .filter((bytes) => bytes !== '')
          .map((bytes) => {
            expect(bytes).toMatch(/^[0-9a-f]{2}( [0-9a-f]{2})*$/);
            return bytes.replace(/ /g, '');
          })
          .join(''),
        'hex',
      ),
    );
    expect(blocks).toHaveLength(exchange.length);
    blocks.forEach((bytes, i) => {
      expect(bytes.toString('hex')).toBe(encode(exchange[i]!).toString('hex'));
    });
    expect(decodeAll(Buffer.concat(blocks))).toStrictEqual(exchange);
  });
});
