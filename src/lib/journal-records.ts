/**
 * The journal's records and their binary encoding (no I/O: src/lib/journal.ts
 * does the files). Layout, all integers little-endian:
 *
 * ```
 * segment file = header (8 bytes) + record*
 * header       = "TWJL" | u8 version (1) | u8 flags (bit 0: snapshot) | u16 0
 * record       = u32 bodyLength | u32 crc32(body) | body
 * body         = u8 type | fields of that type, in order:
 *   1 submit     id, kind$, args#, u8 priority, timeoutMs, maxRetries, estMs, notBefore, key$, createdAt, [owner$]
 *   2 done       id, attempts, result#, finishedAt, worker$, [startedAt]
 *   3 failed     id, attempts, u8 permanent, error$, finishedAt, worker$, [startedAt]
 *   4 cancelled  id, finishedAt
 *   5 retry      id, attempts, notBefore, error$
 *   6 meta       nextId
 *   7 pause      kind$, u8 paused
 *   8 revive     id, createdAt
 *   9 promote    id
 * ```
 * `[x]`: a trailing field older journals lack (read as 0 when absent).
 * Unmarked integers are unsigned LEB128 varints (up to 2^53 - 1); `x$` is a
 * varint byte length + UTF-8, `x#` a varint byte length + raw bytes. Times are
 * wall-clock ms since the Unix epoch (0 where "none"). A varint costs one byte
 * below 128, so a typical sha256 job (32-byte args, 64-byte hex result) takes
 * about 160 bytes: ~70 for its submit record and ~90 for its done record.
 *
 * The CRC covers the body only; a corrupt length is caught because the body
 * it frames then fails its CRC. A length of 0 is never valid (every body has a
 * type byte), so zero-filled space reads as corruption, not as records.
 */
import zlib from 'node:zlib';
import { TaskwireError } from './errors.js';

/** A job was accepted (written before its ACK). */
export interface SubmitRecord {
  type: 'submit';
  id: number;
  kind: string;
  args: Buffer;
  priority: number;
  timeoutMs: number;
  maxRetries: number;
  estMs: number;
  /** Wall ms before which it may not run; 0 = at once. */
  notBefore: number;
  /** Idempotency key; '' = none. */
  key: string;
  /** Wall ms. */
  createdAt: number;
  /** The credential that submitted it (issue 11); absent or '' without auth. */
  owner?: string;
}

/** A job finished with a result (written before its final EVENT). */
export interface DoneRecord {
  type: 'done';
  id: number;
  attempts: number;
  result: Buffer;
  finishedAt: number;
  worker: string;
  /** Wall ms the last attempt started; 0 if unknown (older journals). */
  startedAt?: number;
}

/** A job failed for good. */
export interface FailedRecord {
  type: 'failed';
  id: number;
  attempts: number;
  error: string;
  permanent: boolean;
  finishedAt: number;
  worker: string;
  /** Wall ms the last attempt started; 0 if unknown (older journals). */
  startedAt?: number;
}

/** A job was cancelled. */
export interface CancelledRecord {
  type: 'cancelled';
  id: number;
  finishedAt: number;
}

/** An attempt failed and the job waits for a retry; `attempts` survive a restart. */
export interface RetryRecord {
  type: 'retry';
  id: number;
  attempts: number;
  notBefore: number;
  error: string;
}

/**
 * Scheduler-wide state a snapshot must carry: the next job id, so ids stay
 * unique across restarts even after a compaction dropped every job.
 */
export interface MetaRecord {
  type: 'meta';
  nextId: number;
}

/** A kind was paused (nothing of it is dispatched) or resumed; survives restarts. */
export interface PauseRecord {
  type: 'pause';
  kind: string;
  paused: boolean;
}

/** A FAILED or CANCELLED job was queued again as a new attempt series (RETRY). */
export interface ReviveRecord {
  type: 'revive';
  id: number;
  /** Wall ms: when it was queued again. */
  createdAt: number;
}

/** A delayed or backing-off job was made runnable now (PROMOTE). */
export interface PromoteRecord {
  type: 'promote';
  id: number;
}

/** Every record the journal stores. */
export type JournalRecord =
  | SubmitRecord
  | DoneRecord
  | FailedRecord
  | CancelledRecord
  | RetryRecord
  | MetaRecord
  | PauseRecord
  | ReviveRecord
  | PromoteRecord;

/** Bytes before each record body: u32 length + u32 CRC32. */
export const RECORD_HEADER_BYTES = 8;
/** Bytes of a segment file's header. */
export const SEGMENT_HEADER_BYTES = 8;
/** Largest body accepted when reading (a length above it is corruption). */
export const MAX_RECORD_BYTES = 1024 * 1024 * 1024;
/** Segment format version written in the header. */
export const SEGMENT_VERSION = 1;
/** Header flag: the segment is a snapshot and supersedes every lower-numbered segment. */
export const SEGMENT_FLAG_SNAPSHOT = 1;

const MAGIC = 0x4c4a5754; // "TWJL" read as u32 LE

const TYPE_SUBMIT = 1;
const TYPE_DONE = 2;
const TYPE_FAILED = 3;
const TYPE_CANCELLED = 4;
const TYPE_RETRY = 5;
const TYPE_META = 6;
const TYPE_PAUSE = 7;
const TYPE_REVIVE = 8;
const TYPE_PROMOTE = 9;

function tableCrc32(): (data: Uint8Array) => number {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return (data) => {
    let c = -1;
    for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    return (c ^ -1) >>> 0;
  };
}

/** CRC-32 (IEEE): `zlib.crc32` where Node has it (20.15+), else a table. */
export const crc32: (data: Uint8Array) => number =
  typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) : tableCrc32();

/** The 8-byte header of a segment file. */
export function segmentHeader(snapshot: boolean): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  b.writeUInt32LE(MAGIC, 0);
  b[4] = SEGMENT_VERSION;
  b[5] = snapshot ? SEGMENT_FLAG_SNAPSHOT : 0;
  return b;
}

/** Parses a segment header: its flags, or null when it is not one of ours. */
export function parseSegmentHeader(b: Buffer): { snapshot: boolean } | null {
  if (b.length < SEGMENT_HEADER_BYTES || b.readUInt32LE(0) !== MAGIC || b[4] !== SEGMENT_VERSION) return null;
  return { snapshot: (b[5]! & SEGMENT_FLAG_SNAPSHOT) !== 0 };
}

function badValue(field: string, v: number): never {
  throw new TaskwireError('INVALID_ARGUMENT', `journal record field ${field} must be a non-negative safe integer, got ${v}`);
}

/**
 * Appends encoded records to one growing buffer (no per-record allocation:
 * STYLE.md "Hot paths allocate little"). `take()` hands the bytes over and
 * starts a fresh buffer.
 */
export class RecordEncoder {
  #buf: Buffer;
  #len = 0;
  readonly #initialBytes: number;

  constructor(initialBytes = 64 * 1024) {
    this.#initialBytes = initialBytes;
    this.#buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Bytes encoded and not yet taken. */
  get length(): number {
    return this.#len;
  }

  /** The encoded bytes so far (a view, valid until the next call). */
  bytes(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }

  /** Hands over the encoded bytes and starts again with a fresh buffer. */
  take(): Buffer {
    const out = this.#buf.subarray(0, this.#len);
    this.#buf = Buffer.allocUnsafe(this.#initialBytes);
    this.#len = 0;
    return out;
  }

  /** Forgets everything encoded after `length` (used when an encode throws half-way). */
  truncate(length: number): void {
    if (length < this.#len) this.#len = length;
  }

  /** Encodes one record (header + body). Returns its size in bytes. Throws on a bad field value. */
  write(r: JournalRecord): number {
    const start = this.#len;
    try {
      this.#ensure(RECORD_HEADER_BYTES + maxBodyBytes(r));
      let o = start + RECORD_HEADER_BYTES;
      switch (r.type) {
        case 'submit':
          this.#buf[o++] = TYPE_SUBMIT;
          o = this.#uint(o, r.id, 'id');
          o = this.#str(o, r.kind);
          o = this.#bytes(o, r.args);
          this.#buf[o++] = r.priority & 0xff;
          o = this.#uint(o, r.timeoutMs, 'timeoutMs');
          o = this.#uint(o, r.maxRetries, 'maxRetries');
          o = this.#uint(o, r.estMs, 'estMs');
          o = this.#uint(o, r.notBefore, 'notBefore');
          o = this.#str(o, r.key);
          o = this.#uint(o, r.createdAt, 'createdAt');
          if (r.owner !== undefined && r.owner !== '') o = this.#str(o, r.owner);
          break;
        case 'done':
          this.#buf[o++] = TYPE_DONE;
          o = this.#uint(o, r.id, 'id');
          o = this.#uint(o, r.attempts, 'attempts');
          o = this.#bytes(o, r.result);
          o = this.#uint(o, r.finishedAt, 'finishedAt');
          o = this.#str(o, r.worker);
          if (r.startedAt !== undefined) o = this.#uint(o, r.startedAt, 'startedAt');
          break;
        case 'failed':
          this.#buf[o++] = TYPE_FAILED;
          o = this.#uint(o, r.id, 'id');
          o = this.#uint(o, r.attempts, 'attempts');
          this.#buf[o++] = r.permanent ? 1 : 0;
          o = this.#str(o, r.error);
          o = this.#uint(o, r.finishedAt, 'finishedAt');
          o = this.#str(o, r.worker);
          if (r.startedAt !== undefined) o = this.#uint(o, r.startedAt, 'startedAt');
          break;
        case 'cancelled':
          this.#buf[o++] = TYPE_CANCELLED;
          o = this.#uint(o, r.id, 'id');
          o = this.#uint(o, r.finishedAt, 'finishedAt');
          break;
        case 'retry':
          this.#buf[o++] = TYPE_RETRY;
          o = this.#uint(o, r.id, 'id');
          o = this.#uint(o, r.attempts, 'attempts');
          o = this.#uint(o, r.notBefore, 'notBefore');
          o = this.#str(o, r.error);
          break;
        case 'meta':
          this.#buf[o++] = TYPE_META;
          o = this.#uint(o, r.nextId, 'nextId');
          break;
        case 'pause':
          this.#buf[o++] = TYPE_PAUSE;
          o = this.#str(o, r.kind);
          this.#buf[o++] = r.paused ? 1 : 0;
          break;
        case 'revive':
          this.#buf[o++] = TYPE_REVIVE;
          o = this.#uint(o, r.id, 'id');
          o = this.#uint(o, r.createdAt, 'createdAt');
          break;
        case 'promote':
          this.#buf[o++] = TYPE_PROMOTE;
          o = this.#uint(o, r.id, 'id');
          break;
        default:
          return assertNeverRecord(r);
      }
      const bodyStart = start + RECORD_HEADER_BYTES;
      const buf = this.#buf;
      buf.writeUInt32LE(o - bodyStart, start);
      buf.writeUInt32LE(crc32(buf.subarray(bodyStart, o)), start + 4);
      this.#len = o;
      return o - start;
    } catch (err) {
      this.#len = start;
      throw err;
    }
  }

  #ensure(extra: number): void {
    const need = this.#len + extra;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  #uint(o: number, v: number, field: string): number {
    if (!(v >= 0 && Number.isSafeInteger(v))) badValue(field, v);
    const buf = this.#buf;
    while (v >= 0x80) {
      buf[o++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[o++] = v;
    return o;
  }

  #str(o: number, s: string): number {
    const buf = this.#buf;
    if (s.length === 0) {
      buf[o] = 0;
      return o + 1;
    }
    if (s.length < 43) {
      // At most 3 UTF-8 bytes per UTF-16 unit: 42 * 3 = 126 < 128, so a 1-byte length.
      const n = buf.write(s, o + 1, 'utf8');
      buf[o] = n;
      return o + 1 + n;
    }
    const n = Buffer.byteLength(s, 'utf8');
    o = this.#uint(o, n, 'string length');
    return o + buf.write(s, o, 'utf8');
  }

  #bytes(o: number, b: Buffer): number {
    o = this.#uint(o, b.length, 'bytes length');
    b.copy(this.#buf, o);
    return o + b.length;
  }
}

/** An upper bound of a record body's encoded size. */
function maxBodyBytes(r: JournalRecord): number {
  // type byte + up to 8 varints/bytes of 8 bytes each, plus variable parts.
  const fixed = 1 + 10 * 8;
  switch (r.type) {
    case 'submit':
      return fixed + 3 * r.kind.length + r.args.length + 3 * r.key.length + 3 * (r.owner?.length ?? 0);
    case 'done':
      return fixed + r.result.length + 3 * r.worker.length;
    case 'failed':
      return fixed + 3 * r.error.length + 3 * r.worker.length;
    case 'retry':
      return fixed + 3 * r.error.length;
    case 'pause':
      return fixed + 3 * r.kind.length;
    case 'cancelled':
    case 'meta':
    case 'revive':
    case 'promote':
      return fixed;
    default:
      return assertNeverRecord(r);
  }
}

function assertNeverRecord(r: never): never {
  throw new TaskwireError('INTERNAL', `unknown journal record ${JSON.stringify(r)}`);
}

/** Encodes one record into a new Buffer (header + body). For tests and tools; the journal uses {@link RecordEncoder}. */
export function encodeRecord(r: JournalRecord): Buffer {
  const enc = new RecordEncoder(256);
  enc.write(r);
  return Buffer.from(enc.bytes());
}

// Decoder state: a module-level cursor instead of closures, so decoding a
// record allocates only the record (replay of a million records is hot).
const EMPTY_BUFFER = Buffer.alloc(0);
let dBuf: Buffer = EMPTY_BUFFER;
let dPos = 0;
let dEnd = 0;
/** Set when a field runs past the end or a varint is malformed. */
let dBad = false;

function dU8(): number {
  if (dPos >= dEnd) {
    dBad = true;
    return 0;
  }
  return dBuf[dPos++]!;
}

function dUint(): number {
  // Fast path: one-byte varint.
  if (dPos < dEnd) {
    const b = dBuf[dPos]!;
    if (b < 0x80) {
      dPos++;
      return b;
    }
  }
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (dPos >= dEnd) break;
    const b = dBuf[dPos++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (Number.isSafeInteger(v)) return v;
      break;
    }
    mul *= 0x80;
  }
  dBad = true;
  return 0;
}

function dLength(): number {
  const n = dUint();
  if (n > dEnd - dPos) {
    dBad = true;
    return 0;
  }
  return n;
}

function dBytes(): Buffer {
  const n = dLength();
  const b = dBuf.subarray(dPos, dPos + n);
  dPos += n;
  return b;
}

let lastKindBytes: Buffer = EMPTY_BUFFER;
let lastKind = '';

function dStr(): string {
  const n = dLength();
  if (n === 0) return '';
  const s = dBuf.toString('utf8', dPos, dPos + n);
  dPos += n;
  return s;
}

/** Like dStr, but remembers the last value: job kinds repeat from record to record. */
function dKind(): string {
  const n = dLength();
  if (n === 0) return '';
  const start = dPos;
  dPos += n;
  if (n === lastKindBytes.length && dBuf.compare(lastKindBytes, 0, n, start, start + n) === 0) return lastKind;
  lastKindBytes = Buffer.from(dBuf.subarray(start, start + n));
  lastKind = lastKindBytes.toString('utf8');
  return lastKind;
}

/**
 * Decodes one record body (without its 8-byte header). Returns null when the
 * body does not parse (unknown type, fields running past the end, trailing
 * bytes). `args` and `result` are views into `buf`: copy them to keep them
 * beyond the buffer's life.
 */
export function decodeBody(buf: Buffer, start: number, end: number): JournalRecord | null {
  dBuf = buf;
  dPos = start;
  dEnd = end;
  dBad = false;
  let r: JournalRecord;
  switch (dU8()) {
    case TYPE_SUBMIT: {
      const id = dUint();
      const kind = dKind();
      const args = dBytes();
      const priority = dU8();
      const timeoutMs = dUint();
      const maxRetries = dUint();
      const estMs = dUint();
      const notBefore = dUint();
      const key = dStr();
      const createdAt = dUint();
      r = { type: 'submit', id, kind, args, priority, timeoutMs, maxRetries, estMs, notBefore, key, createdAt };
      if (dPos < dEnd) r.owner = dStr();
      break;
    }
    case TYPE_DONE: {
      const id = dUint();
      const attempts = dUint();
      const result = dBytes();
      const finishedAt = dUint();
      const worker = dStr();
      r = { type: 'done', id, attempts, result, finishedAt, worker };
      if (dPos < dEnd) r.startedAt = dUint();
      break;
    }
    case TYPE_FAILED: {
      const id = dUint();
      const attempts = dUint();
      const flags = dU8();
      if (flags > 1) dBad = true;
      const error = dStr();
      const finishedAt = dUint();
      const worker = dStr();
      r = { type: 'failed', id, attempts, error, permanent: flags === 1, finishedAt, worker };
      if (dPos < dEnd) r.startedAt = dUint();
      break;
    }
    case TYPE_CANCELLED: {
      const id = dUint();
      const finishedAt = dUint();
      r = { type: 'cancelled', id, finishedAt };
      break;
    }
    case TYPE_RETRY: {
      const id = dUint();
      const attempts = dUint();
      const notBefore = dUint();
      const error = dStr();
      r = { type: 'retry', id, attempts, notBefore, error };
      break;
    }
    case TYPE_META:
      r = { type: 'meta', nextId: dUint() };
      break;
    case TYPE_PAUSE: {
      const kind = dKind();
      const flag = dU8();
      if (flag > 1) dBad = true;
      r = { type: 'pause', kind, paused: flag === 1 };
      break;
    }
    case TYPE_REVIVE: {
      const id = dUint();
      r = { type: 'revive', id, createdAt: dUint() };
      break;
    }
    case TYPE_PROMOTE:
      r = { type: 'promote', id: dUint() };
      break;
    default:
      return null;
  }
  const ok = !dBad && dPos === dEnd;
  dBuf = EMPTY_BUFFER; // do not pin the caller's buffer
  return ok ? r : null;
}

/** What {@link readRecord} found at an offset. */
export type ReadResult =
  /** A whole, valid record; the next one starts at `end`. */
  | { status: 'ok'; record: JournalRecord; end: number }
  /** The buffer ends inside the record (a torn tail, or read more). */
  | { status: 'short' }
  /** Bad length, CRC mismatch, or a body that does not parse. */
  | { status: 'bad' };

/** Reads and verifies the record starting at `offset` of `buf` (`buf` may end anywhere). */
export function readRecord(buf: Buffer, offset: number): ReadResult {
  if (buf.length - offset < RECORD_HEADER_BYTES) return { status: 'short' };
  const length = buf.readUInt32LE(offset);
  if (length === 0 || length > MAX_RECORD_BYTES) return { status: 'bad' };
  const bodyStart = offset + RECORD_HEADER_BYTES;
  const end = bodyStart + length;
  if (end > buf.length) return { status: 'short' };
  if (crc32(buf.subarray(bodyStart, end)) !== buf.readUInt32LE(offset + 4)) return { status: 'bad' };
  const record = decodeBody(buf, bodyStart, end);
  return record === null ? { status: 'bad' } : { status: 'ok', record, end };
}
