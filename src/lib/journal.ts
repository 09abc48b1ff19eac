/**
 * The scheduler's append-only journal (DESIGN.md "Durability", issue 4): a
 * directory of segment files of CRC-checked records (format in
 * ./journal-records.ts), written with group commit, replayed at start-up,
 * compacted into a snapshot so disk use follows live jobs, not history.
 *
 * Directory layout:
 * ```
 * DIR/LOCK                  pid of the scheduler that owns DIR
 * DIR/journal-00000007.log  a snapshot (header flag): supersedes every lower segment
 * DIR/journal-00000008.log  the live segment, appended to
 * DIR/journal.tmp           a snapshot being written (deleted at start-up)
 * ```
 * Compaction rotates first: records appended from then on go to a new
 * segment while the snapshot is written to `journal.tmp`; once the snapshot
 * and every record of the old segment are durable, the snapshot is renamed
 * over the old segment, the directory fsynced and older segments deleted. A
 * crash at any point leaves either the old segments or the snapshot, never
 * a mix (replay starts at the newest snapshot).
 */
import { open, mkdir, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { errnoCode, TaskwireError, toError } from './errors.js';
import {
  parseSegmentHeader,
  readRecord,
  RecordEncoder,
  RECORD_HEADER_BYTES,
  segmentHeader,
  SEGMENT_HEADER_BYTES,
  type JournalRecord,
} from './journal-records.js';
import type { JournalStats } from './protocol.js';

/**
 * When a record counts as durable, i.e. when `append`'s callback runs (and so
 * when the scheduler sends the ACK or the final EVENT):
 *
 * - `batch` (default): group commit. The callback runs after the record is
 *   written and `fdatasync`ed. Records appended while a write+fsync is in
 *   flight (and every record of the same event-loop turn) share the next
 *   write and the next fsync, so one fsync covers many records. Nothing
 *   acknowledged is lost on a crash or a power cut.
 * - `always`: the same promise, with one write and one fsync per record and
 *   no sharing. It is never safer than `batch` for acknowledged records; it
 *   exists as the textbook baseline (and to measure what group commit buys).
 * - `off`: the callback runs once the record is handed to the OS (`write`),
 *   with no fsync. Survives the scheduler being killed (the OS still has the
 *   data), but a power cut or kernel crash may lose the last seconds of
 *   acknowledged work: the OS decides when it reaches the disk.
 */
export type FsyncMode = 'always' | 'batch' | 'off';

/**
 * Fault injection (tests only): hooks called before each data write and
 * each fsync of the journal, batch or snapshot. They may throw to fail it.
 * @internal
 */
export interface JournalFaults {
  /**
   * Before a write of `bytes` bytes. Throw to fail it with nothing written;
   * return `n < bytes` to write only the first `n` bytes and then fail with
   * ENOSPC, as a filling disk does.
   */
  write?: (bytes: number) => number | void;
  /** Before an fsync; throw to fail it. */
  fsync?: () => void;
}

/** Options of {@link Journal.open}. */
export interface JournalOptions {
  /** Directory of the journal; created if missing. */
  dir: string;
  /** Default 'batch'. See {@link FsyncMode}. */
  fsync?: FsyncMode;
  /** `needsCompaction` turns true past this many bytes on disk (or twice the last snapshot, if larger). Default 64 MiB. */
  compactBytes?: number;
  /** Truncate at corruption in the middle of the journal (losing what follows) instead of refusing to open. */
  repair?: boolean;
  /** Where the journal reports what it did (truncations, repairs, stale locks). */
  log?: (line: string) => void;
  /** @internal */
  faults?: JournalFaults;
}

/** What {@link Journal.open} found and did. */
export interface RecoveryReport {
  /** Valid records passed to `onRecord`. */
  recordsReplayed: number;
  /** Bytes of journal on disk after recovery. */
  bytes: number;
  /** Wall time of the recovery (reading, verifying, replaying), ms. */
  recoverMs: number;
  /** Bytes of torn or corrupt tail cut off (a crash mid-write), 0 normally. */
  truncatedTailBytes: number;
  /** When the newest snapshot was written (its file's mtime, wall ms), null if never compacted. */
  lastCompactionAt: number | null;
}

/** Internal counters, for tests and benchmarks. */
export interface JournalCounters {
  /** Records appended since open. */
  appends: number;
  /** Batch writes attempted (each followed by one fsync unless `off`). */
  writes: number;
  /** fsyncs of batches. */
  fsyncs: number;
  /** Batches whose write or fsync failed. */
  failedBatches: number;
}

/** Upper bounds (seconds) of {@link FsyncHistogram}'s buckets; the last bucket is +Inf. */
export const FSYNC_BUCKETS_S: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Durations of the journal's batch fsyncs (HTTP `/metrics`
 * `taskwire_journal_fsync_seconds`): fixed buckets, O(buckets) per fsync, no
 * allocation. One observation covers every record of the batch (group commit).
 */
export class FsyncHistogram {
  /** Per bucket (not cumulative), bounds {@link FSYNC_BUCKETS_S}; the last is +Inf. */
  readonly counts = new Float64Array(FSYNC_BUCKETS_S.length + 1);
  sumSeconds = 0;
  count = 0;

  /** Records one fsync that took `seconds`. */
  observe(seconds: number): void {
    let i = 0;
    while (i < FSYNC_BUCKETS_S.length && seconds > FSYNC_BUCKETS_S[i]!) i++;
    this.counts[i]!++;
    this.sumSeconds += seconds;
    this.count++;
  }
}

/** Corruption in the middle of the journal: valid records follow a bad one. */
export class JournalCorruptError extends TaskwireError {
  override name = 'JournalCorruptError';
  constructor(
    /** The segment file. */
    readonly file: string,
    /** Byte offset of the first bad record in `file`. */
    readonly offset: number,
    message: string,
  ) {
    super('JOURNAL_CORRUPT', message);
  }
}

type Callback = (err: Error | null) => void;

/** An open segment file. `size` is durable bytes: the next batch is written there. */
interface Segment {
  gen: number;
  path: string;
  handle: FileHandle | null;
  size: number;
  /** A failed write may have left bytes past `size`: truncate before the next write. */
  dirty: boolean;
}

/** Records cut for one write (+ one fsync). `seg` null: the live segment at write time. */
interface Batch {
  data: Buffer;
  callbacks: Callback[];
  seg: Segment | null;
}

const SEGMENT_RE = /^journal-(\d+)\.log$/;
const TMP_NAME = 'journal.tmp';
const LOCK_NAME = 'LOCK';
const READ_CHUNK_BYTES = 16 * 1024 * 1024;
/** Pending-batch buffers above this are not reused (a burst of big payloads). */
const MAX_REUSED_BUFFER = 8 * 1024 * 1024;
/** Snapshot records are encoded in slices of this many ms of CPU, the event loop running between them. */
const SNAPSHOT_SLICE_MS = 8;
/** Snapshot bytes are written to disk in chunks of about this size. */
const SNAPSHOT_CHUNK_BYTES = 4 * 1024 * 1024;
/** After a failed compaction, `needsCompaction` stays false this long. */
const COMPACTION_RETRY_MS = 10_000;
/** A LOCK file without a readable pid is taken as stale once this old. */
const EMPTY_LOCK_STALE_MS = 10_000;

/** Data directories locked by this process (process.kill(pid, 0) cannot tell them apart). */
const heldLocks = new Set<string>();

function segmentName(gen: number): string {
  return `journal-${String(gen).padStart(8, '0')}.log`;
}

function unavailable(what: string, err: unknown): TaskwireError {
  const e = toError(err);
  return new TaskwireError('JOURNAL_UNAVAILABLE', `${what}: ${e.message}`, { cause: e });
}

function diskFull(): Error {
  return Object.assign(new Error('ENOSPC: no space left on device (injected)'), { code: 'ENOSPC' });
}

/** fsync of a directory, so a rename or a new file in it survives a power cut. */
async function fsyncDir(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await open(dir, 'r');
    await h.sync();
  } catch (err) {
    // Some platforms (Windows) and filesystems cannot fsync a directory.
    const code = errnoCode(toError(err));
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    await h?.close();
  }
}

function pidAlive(pid: number, dir: string): boolean {
  if (pid === process.pid) return heldLocks.has(dir);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(toError(err)) === 'EPERM'; // exists, owned by someone else
  }
}

/** Takes DIR/LOCK (DESIGN.md: two schedulers must never share a directory). */
async function acquireLock(dir: string, log: (line: string) => void): Promise<void> {
  const lockPath = join(dir, LOCK_NAME);
  for (let attempt = 0; ; attempt++) {
    let h: FileHandle | undefined;
    try {
      if (heldLocks.has(dir)) throw Object.assign(new Error('locked by this process'), { code: 'EEXIST' });
      h = await open(lockPath, 'wx');
      await h.writeFile(`${process.pid}\n`);
      await h.sync();
      heldLocks.add(dir);
      return;
    } catch (err) {
      const e = toError(err);
      if (errnoCode(e) !== 'EEXIST') throw unavailable(`data directory ${dir} is not writable`, e);
      if (attempt >= 3) throw unavailable(`cannot take the lock ${lockPath}`, e);
      let text = '';
      let mtimeMs = Date.now();
      try {
        text = await readFile(lockPath, 'utf8');
        mtimeMs = (await stat(lockPath)).mtimeMs;
      } catch (readErr) {
        if (errnoCode(toError(readErr)) === 'ENOENT') continue; // released meanwhile: try again
        throw unavailable(`cannot read the lock ${lockPath}`, readErr);
      }
      const pid = Number.parseInt(text.trim(), 10);
      const known = Number.isSafeInteger(pid) && pid > 0;
      const alive = known ? pidAlive(pid, dir) : Date.now() - mtimeMs < EMPTY_LOCK_STALE_MS;
      if (alive) {
        throw new TaskwireError(
          'JOURNAL_LOCKED',
          `data directory ${dir} is in use by another scheduler (pid ${known ? pid : 'unknown'}, lock file ${lockPath}); ` +
            'two schedulers must not share a directory. If no scheduler runs there, delete the lock file.',
        );
      }
      log(`journal: taking over the stale lock of ${known ? `dead pid ${pid}` : 'an unknown process'} in ${dir}`);
      try {
        await unlink(lockPath);
      } catch (unlinkErr) {
        if (errnoCode(toError(unlinkErr)) !== 'ENOENT') throw unavailable(`cannot remove the stale lock ${lockPath}`, unlinkErr);
      }
    } finally {
      await h?.close();
    }
  }
}

async function releaseLock(dir: string): Promise<void> {
  if (!heldLocks.delete(dir)) return;
  const lockPath = join(dir, LOCK_NAME);
  try {
    if (Number.parseInt((await readFile(lockPath, 'utf8')).trim(), 10) === process.pid) await unlink(lockPath);
  } catch {
    // Already gone: nothing to release.
  }
}

/** Finds the first whole, valid record at or after `from` in `buf`, or -1. Used to tell a torn tail from corruption. */
function findValidRecord(buf: Buffer, from: number): number {
  for (let i = from; i + RECORD_HEADER_BYTES < buf.length; i++) {
    const length = buf.readUInt32LE(i);
    if (length === 0 || i + RECORD_HEADER_BYTES + length > buf.length) continue;
    if (readRecord(buf, i).status === 'ok') return i;
  }
  return -1;
}

/** Where the replay of one segment stopped. */
type SegmentEnd = { kind: 'clean'; size: number } | { kind: 'bad'; offset: number; size: number };

/**
 * The journal. Open it with {@link Journal.open} (which replays it), then
 * `append` records; the callback runs once the record is durable (see
 * {@link FsyncMode}) or with an error if it could not be made so.
 * @example
 * const { journal, report } = await Journal.open({ dir: '/var/lib/taskwire' }, (r) => core.replay(r));
 * journal.append({ type: 'cancelled', id: 7, finishedAt: Date.now() }, (err) => { ... });
 * await journal.close();
 */
export class Journal {
  readonly #dir: string;
  readonly #mode: FsyncMode;
  readonly #compactBytes: number;
  readonly #log: (line: string) => void;
  readonly #faults: JournalFaults | undefined;
  /** The live segment (appends go here). */
  #seg: Segment;
  /** Older segments still on disk (the last snapshot, or ones a failed compaction left). */
  #older: Segment[];
  /** Set while a rotation opens the next segment: unassigned batches wait for it. */
  #segOpening: Promise<void> | null = null;
  /** Records appended and not yet cut into a batch. */
  readonly #enc = new RecordEncoder();
  #encCallbacks: Callback[] = [];
  /** Batches cut and waiting to be written, in order. */
  readonly #ready: Batch[] = [];
  /** The batch being written and fsynced; valid while #draining. */
  #inFlight: Batch | null = null;
  #draining: Promise<void> | null = null;
  #kickScheduled = false;
  #compaction: Promise<void> | null = null;
  #closing: Promise<void> | null = null;
  #compactRetryAt = 0;
  /** Bytes of the newest snapshot (compaction threshold is at least twice this). */
  #baseBytes: number;
  #compactions = 0;
  #lastCompactionAt: number | null;
  readonly #report: RecoveryReport;
  readonly #counters: JournalCounters = { appends: 0, writes: 0, fsyncs: 0, failedBatches: 0 };
  /** How long each batch fsync took (metrics). */
  readonly fsyncTime = new FsyncHistogram();

  private constructor(
    dir: string,
    opts: JournalOptions,
    seg: Segment,
    older: Segment[],
    baseBytes: number,
    report: RecoveryReport,
  ) {
    this.#dir = dir;
    this.#mode = opts.fsync ?? 'batch';
    this.#compactBytes = opts.compactBytes ?? 64 * 1024 * 1024;
    this.#log = opts.log ?? (() => undefined);
    this.#faults = opts.faults;
    this.#seg = seg;
    this.#older = older;
    this.#baseBytes = baseBytes;
    this.#report = report;
    this.#lastCompactionAt = report.lastCompactionAt;
  }

  /**
   * Opens (creating if needed) and locks the journal in `opts.dir`, and
   * replays it: `onRecord` gets every valid record in order (its Buffers are
   * views of a read buffer; copy what you keep). A torn or corrupt tail is
   * truncated and logged; corruption in the middle throws
   * {@link JournalCorruptError} (code JOURNAL_CORRUPT) with the file and byte
   * offset, unless `repair`. A directory locked by a live scheduler throws
   * JOURNAL_LOCKED; one that cannot be written, JOURNAL_UNAVAILABLE.
   */
  static async open(opts: JournalOptions, onRecord: (record: JournalRecord) => void): Promise<{ journal: Journal; report: RecoveryReport }> {
    const started = performance.now();
    const dir = resolve(opts.dir);
    const log = opts.log ?? (() => undefined);
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw unavailable(`cannot create data directory ${dir}`, err);
    }
    await acquireLock(dir, log);
    try {
      return await Journal.#recover(dir, opts, log, onRecord, started);
    } catch (err) {
      await releaseLock(dir);
      throw err;
    }
  }

  static async #recover(
    dir: string,
    opts: JournalOptions,
    log: (line: string) => void,
    onRecord: (record: JournalRecord) => void,
    started: number,
  ): Promise<{ journal: Journal; report: RecoveryReport }> {
    const names = await readdir(dir);
    if (names.includes(TMP_NAME)) {
      await unlink(join(dir, TMP_NAME));
      log(`journal: removed ${TMP_NAME} left by an interrupted compaction`);
    }
    const gens = names
      .map((n) => SEGMENT_RE.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    // Replay starts at the newest snapshot: it supersedes every lower segment.
    const headers = new Map<number, { snapshot: boolean } | null>();
    const sizes = new Map<number, number>();
    let first = 0;
    let lastCompactionAt: number | null = null;
    for (let i = 0; i < gens.length; i++) {
      const path = join(dir, segmentName(gens[i]!));
      const h = await open(path, 'r');
      try {
        const st = await h.stat();
        sizes.set(gens[i]!, st.size);
        const head = Buffer.alloc(SEGMENT_HEADER_BYTES);
        const { bytesRead } = await h.read(head, 0, SEGMENT_HEADER_BYTES, 0);
        const parsed = bytesRead < SEGMENT_HEADER_BYTES ? null : parseSegmentHeader(head);
        headers.set(gens[i]!, parsed);
        if (parsed?.snapshot === true) {
          first = i;
          lastCompactionAt = Math.round(st.mtimeMs);
        }
      } finally {
        await h.close();
      }
    }
    const superseded = gens.slice(0, first);
    const live = gens.slice(first);

    let recordsReplayed = 0;
    let truncatedTailBytes = 0;
    const segments: Segment[] = [];
    for (let i = 0; i < live.length; i++) {
      const gen = live[i]!;
      const path = join(dir, segmentName(gen));
      const fileSize = sizes.get(gen)!;
      const isLast = i === live.length - 1;
      if (headers.get(gen) === null) {
        if (fileSize < SEGMENT_HEADER_BYTES && isLast) {
          // Created by a rotation that crashed before its header was durable: start it again.
          await Journal.#writeHeader(path, false);
          log(`journal: ${segmentName(gen)} had a torn header; rewritten`);
          truncatedTailBytes += fileSize;
          segments.push({ gen, path, handle: null, size: SEGMENT_HEADER_BYTES, dirty: false });
          continue;
        }
        if (opts.repair !== true) {
          throw new JournalCorruptError(path, 0, `journal file ${path} has no valid header (byte 0); start with --repair to reset it, losing its records`);
        }
        await Journal.#writeHeader(path, false);
        log(`journal: REPAIRED ${path}: bad header at byte 0, reset (${fileSize} bytes dropped)`);
        segments.push({ gen, path, handle: null, size: SEGMENT_HEADER_BYTES, dirty: false });
        continue;
      }
      let count = 0;
      const end = await Journal.#replaySegment(path, fileSize, (r) => {
        count++;
        onRecord(r);
      });
      recordsReplayed += count;
      let size = end.size;
      if (end.kind === 'bad') {
        const rest = await readFile(path);
        let validAfter = findValidRecord(rest, end.offset + 1) >= 0;
        for (let j = i + 1; j < live.length && !validAfter; j++) {
          validAfter = await Journal.#hasValidRecord(join(dir, segmentName(live[j]!)));
        }
        if (validAfter) {
          if (opts.repair !== true) {
            throw new JournalCorruptError(
              path,
              end.offset,
              `journal file ${path} is corrupt at byte ${end.offset} (a bad record followed by valid ones); ` +
                'start with --repair to truncate it there, losing the records after it',
            );
          }
          log(`journal: REPAIRED ${path}: corrupt record at byte ${end.offset}; truncated there, ${end.size - end.offset} bytes dropped`);
        } else {
          // A crash in the middle of a write (DESIGN.md "Durability"): nothing after it was acknowledged.
          log(`journal: torn tail in ${path} at byte ${end.offset}: ${end.size - end.offset} bytes truncated`);
          truncatedTailBytes += end.size - end.offset;
        }
        const h = await open(path, 'r+');
        try {
          await h.truncate(end.offset);
          await h.sync();
        } finally {
          await h.close();
        }
        size = end.offset;
      }
      segments.push({ gen, path, handle: null, size, dirty: false });
    }
    for (const gen of superseded) {
      await unlink(join(dir, segmentName(gen)));
      log(`journal: deleted ${segmentName(gen)}, superseded by a snapshot`);
    }
    let seg = segments.pop();
    if (seg === undefined) {
      const gen = 1;
      const path = join(dir, segmentName(gen));
      await Journal.#writeHeader(path, false);
      await fsyncDir(dir);
      seg = { gen, path, handle: null, size: SEGMENT_HEADER_BYTES, dirty: false };
    }
    seg.handle = await open(seg.path, 'r+');
    const baseBytes = first < gens.length && headers.get(gens[first]!)?.snapshot === true ? (segments[0]?.size ?? seg.size) : 0;
    const bytes = segments.reduce((n, s) => n + s.size, seg.size);
    const report: RecoveryReport = {
      recordsReplayed,
      bytes,
      recoverMs: Math.round(performance.now() - started),
      truncatedTailBytes,
      lastCompactionAt,
    };
    return { journal: new Journal(dir, opts, seg, segments, baseBytes, report), report };
  }

  static async #writeHeader(path: string, snapshot: boolean): Promise<void> {
    const h = await open(path, 'w');
    try {
      await h.write(segmentHeader(snapshot), 0, SEGMENT_HEADER_BYTES, 0);
      await h.sync();
    } finally {
      await h.close();
    }
  }

  /** Reads one segment's records in order, calling `onRecord`; stops at the end or at the first bad record. */
  static async #replaySegment(path: string, fileSize: number, onRecord: (r: JournalRecord) => void): Promise<SegmentEnd> {
    const h = await open(path, 'r');
    try {
      let buf = Buffer.alloc(0);
      /** File offset of buf[0]. */
      let base = SEGMENT_HEADER_BYTES;
      let off = 0;
      for (;;) {
        const r = readRecord(buf, off);
        if (r.status === 'ok') {
          onRecord(r.record);
          off = r.end;
          continue;
        }
        const at = base + off;
        if (r.status === 'bad') return { kind: 'bad', offset: at, size: fileSize };
        // Short: the record goes past what is buffered. Read on, unless it goes past the file.
        if (at === fileSize) return { kind: 'clean', size: fileSize };
        let need = RECORD_HEADER_BYTES;
        if (buf.length - off >= RECORD_HEADER_BYTES) need += buf.readUInt32LE(off);
        if (at + need > fileSize) return { kind: 'bad', offset: at, size: fileSize };
        // A fresh buffer per read: records handed out may keep views of the old one.
        const carried = buf.length - off;
        const size = Math.min(fileSize - at, Math.max(READ_CHUNK_BYTES, need));
        const next = Buffer.allocUnsafe(size);
        buf.copy(next, 0, off);
        let filled = carried;
        while (filled < size) {
          const { bytesRead } = await h.read(next, filled, size - filled, at + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        buf = filled === size ? next : next.subarray(0, filled);
        base = at;
        off = 0;
        if (filled < need) return { kind: 'bad', offset: at, size: at + filled }; // the file shrank under us
      }
    } finally {
      await h.close();
    }
  }

  static async #hasValidRecord(path: string): Promise<boolean> {
    const data = await readFile(path);
    return parseSegmentHeader(data) !== null && findValidRecord(data, SEGMENT_HEADER_BYTES) >= 0;
  }

  // -------------------------------------------------------------------------
  // Appending

  /**
   * Appends one record. `onDurable(null)` runs once it is durable (see
   * {@link FsyncMode}); `onDurable(err)` (code JOURNAL_UNAVAILABLE) if its
   * batch could not be written or fsynced — nothing of that batch stays in
   * the file, and later appends are tried again. Callbacks run in append order.
   */
  append(record: JournalRecord, onDurable: (err: Error | null) => void): void {
    if (this.#closing !== null) {
      process.nextTick(onDurable, new TaskwireError('JOURNAL_UNAVAILABLE', 'the journal is closed'));
      return;
    }
    this.#enc.write(record);
    this.#counters.appends++;
    if (this.#mode === 'always') {
      // One record, one write, one fsync.
      this.#ready.push({ data: Buffer.from(this.#enc.bytes()), callbacks: [onDurable], seg: null });
      this.#enc.truncate(0);
    } else {
      this.#encCallbacks.push(onDurable);
    }
    if (this.#draining === null && !this.#kickScheduled) {
      this.#kickScheduled = true;
      // setImmediate, not nextTick: every record of this event-loop turn (all
      // the SUBMITs of all sockets read in it) joins the first batch.
      setImmediate(this.#kick);
    }
  }

  readonly #kick = (): void => {
    this.#kickScheduled = false;
    if (this.#draining !== null) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = null;
      if (this.#hasPending() && !this.#kickScheduled) {
        this.#kickScheduled = true;
        setImmediate(this.#kick);
      }
    });
  };

  #hasPending(): boolean {
    return this.#ready.length > 0 || this.#enc.length > 0;
  }

  /** Cuts everything appended so far into one batch. */
  #cut(seg: Segment | null): Batch {
    const data = this.#enc.length > MAX_REUSED_BUFFER ? this.#enc.take() : Buffer.from(this.#enc.bytes());
    this.#enc.truncate(0);
    const callbacks = this.#encCallbacks;
    this.#encCallbacks = [];
    return { data, callbacks, seg };
  }

  /** Writes batches one at a time (one write + one fsync each) until none are left. */
  async #drain(): Promise<void> {
    for (;;) {
      let batch = this.#ready.shift();
      if (batch === undefined) {
        if (this.#enc.length === 0) return;
        batch = this.#cut(null);
      }
      this.#inFlight = batch;
      let seg = batch.seg;
      if (seg === null) {
        while (this.#segOpening !== null) await this.#segOpening;
        seg = this.#seg;
      }
      const err = await this.#writeBatch(seg, batch.data);
      this.#inFlight = null;
      let thrown: unknown;
      for (const cb of batch.callbacks) {
        try {
          cb(err);
        } catch (e) {
          thrown ??= e;
        }
      }
      // A throwing callback is a bug in the caller: surface it, but only after every callback ran.
      if (thrown !== undefined) process.nextTick(() => { throw thrown; });
    }
  }

  /** One write + one fsync at the segment's durable end. On failure, truncates back so no half batch stays. */
  async #writeBatch(seg: Segment, data: Buffer): Promise<Error | null> {
    const h = seg.handle!;
    this.#counters.writes++;
    try {
      if (seg.dirty) {
        await h.truncate(seg.size);
        seg.dirty = false;
      }
      seg.dirty = true;
      await this.#writeAll(h, data, seg.size);
      if (this.#mode !== 'off') {
        this.#faults?.fsync?.();
        this.#counters.fsyncs++;
        const t0 = performance.now();
        await h.datasync();
        this.fsyncTime.observe((performance.now() - t0) / 1000);
      }
      seg.dirty = false;
      seg.size += data.length;
      return null;
    } catch (e) {
      this.#counters.failedBatches++;
      const err = unavailable('journal write failed', e);
      this.#log(`journal: ${err.message}; ${data.length} bytes not stored`);
      try {
        await h.truncate(seg.size);
        seg.dirty = false;
      } catch (truncErr) {
        this.#log(`journal: cannot truncate ${seg.path} back to ${seg.size} bytes (will retry): ${toError(truncErr).message}`);
      }
      return err;
    }
  }

  async #writeAll(h: FileHandle, data: Buffer, position: number): Promise<void> {
    let length = data.length;
    let failAfter = false;
    const limit = this.#faults?.write?.(length);
    if (typeof limit === 'number' && limit < length) {
      length = Math.max(0, limit);
      failAfter = true;
    }
    let done = 0;
    while (done < length) {
      const { bytesWritten } = await h.write(data, done, length - done, position + done);
      done += bytesWritten;
    }
    if (failAfter) throw diskFull();
  }

  // -------------------------------------------------------------------------
  // Compaction

  /**
   * True when the journal has grown past `compactBytes` (and past twice the
   * last snapshot, so a large live state does not compact in a loop), no
   * compaction runs, and none failed in the last 10 s. Cheap: checked every tick.
   */
  get needsCompaction(): boolean {
    return (
      this.#compaction === null &&
      this.#closing === null &&
      this.bytes > Math.max(this.#compactBytes, 2 * this.#baseBytes, 4096) &&
      performance.now() >= this.#compactRetryAt
    );
  }

  /** Bytes of journal on disk (every segment). */
  get bytes(): number {
    let n = this.#seg.size;
    for (const s of this.#older) n += s.size;
    return n;
  }

  /**
   * Replaces the journal with `snapshot` (records that rebuild the live
   * state) plus the records appended from now on. The first record is taken
   * in this call, at the instant the segments rotate; the rest are read in
   * slices of a few ms while appends keep flowing (to the new segment), so a
   * lazy snapshot must stay correct when every record appended after this
   * call is replayed after it (SchedulerCore.snapshot explains how).
   * Fails with JOURNAL_UNAVAILABLE (leaving the journal as it was, still
   * valid) if the snapshot, or any record appended before the call, cannot
   * be made durable.
   */
  compact(snapshot: Iterable<JournalRecord>): Promise<void> {
    if (this.#closing !== null) return Promise.reject(new TaskwireError('INVALID_STATE', 'the journal is closed'));
    if (this.#compaction !== null) return Promise.reject(new TaskwireError('INVALID_STATE', 'a compaction is already running'));
    // 1. Start the snapshot now (its first record is taken in this call, so the
    //    caller can mark this instant); the rest is read in slices below.
    const records = snapshot[Symbol.iterator]();
    const first = records.next();
    // 2. Rotate: what was appended so far belongs to the old segment; what comes next, to a new one.
    const old = this.#seg;
    if (this.#enc.length > 0) this.#ready.push(this.#cut(old));
    const barriers: Promise<Error | null>[] = [];
    const barrier = (b: Batch): void => {
      barriers.push(new Promise((res) => b.callbacks.push(res)));
    };
    for (const b of this.#ready) {
      if (b.seg === null) b.seg = old;
      barrier(b);
    }
    if (this.#inFlight !== null) barrier(this.#inFlight);
    const next: Segment = { gen: old.gen + 1, path: join(this.#dir, segmentName(old.gen + 1)), handle: null, size: 0, dirty: false };
    let opened!: () => void;
    this.#segOpening = new Promise((res) => (opened = res));
    const p = this.#runCompaction(old, next, first, records, barriers, opened);
    this.#compaction = p.then(
      () => {
        this.#compaction = null;
      },
      () => {
        this.#compaction = null;
      },
    );
    return p;
  }

  async #runCompaction(
    old: Segment,
    next: Segment,
    first: IteratorResult<JournalRecord>,
    records: Iterator<JournalRecord>,
    barriers: Promise<Error | null>[],
    opened: () => void,
  ): Promise<void> {
    const tmp = join(this.#dir, TMP_NAME);
    try {
      try {
        await Journal.#writeHeader(next.path, false);
        await fsyncDir(this.#dir);
        next.handle = await open(next.path, 'r+');
        next.size = SEGMENT_HEADER_BYTES;
        this.#older.push(old);
        this.#seg = next;
      } finally {
        this.#segOpening = null;
        opened();
      }
      let snapshotBytes = 0;
      const h = await open(tmp, 'w');
      try {
        const header = segmentHeader(true);
        await this.#writeAll(h, header, 0);
        snapshotBytes = header.length;
        // DESIGN.md rule 3: the snapshot is built in slices of a few ms, the
        // event loop serving peers between them (a 2 M-job state is seconds of work).
        const enc = new RecordEncoder(1024 * 1024);
        let r = first;
        while (r.done !== true) {
          const sliceEnd = performance.now() + SNAPSHOT_SLICE_MS;
          let n = 0;
          while (r.done !== true) {
            enc.write(r.value);
            r = records.next();
            if ((++n & 255) === 0 && (enc.length >= SNAPSHOT_CHUNK_BYTES || performance.now() >= sliceEnd)) break;
          }
          if (enc.length >= SNAPSHOT_CHUNK_BYTES || r.done === true) {
            const chunk = enc.take();
            await this.#writeAll(h, chunk, snapshotBytes);
            snapshotBytes += chunk.length;
          } else {
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
        }
        this.#faults?.fsync?.();
        await h.sync();
      } finally {
        await h.close();
      }
      const errors = (await Promise.all(barriers)).filter((e) => e !== null);
      if (errors.length > 0) throw errors[0];
      // 3. Commit: the snapshot replaces the old segment, atomically.
      await rename(tmp, old.path);
      await fsyncDir(this.#dir);
      await old.handle?.close();
      old.handle = null;
      old.size = snapshotBytes;
      for (const s of this.#older) {
        if (s.gen < old.gen) {
          await s.handle?.close();
          await unlink(s.path);
        }
      }
      await fsyncDir(this.#dir);
      this.#older = [old];
      this.#baseBytes = snapshotBytes;
      this.#compactions++;
      this.#lastCompactionAt = Date.now();
    } catch (err) {
      this.#compactRetryAt = performance.now() + COMPACTION_RETRY_MS;
      await unlink(tmp).catch(() => undefined);
      // The old segment stays (with its records); close its handle once its last batch is written.
      void Promise.all(barriers).then(async () => {
        if (this.#seg !== old) {
          await old.handle?.close();
          old.handle = null;
        }
      });
      throw err instanceof TaskwireError ? err : unavailable('journal compaction failed', err);
    }
  }

  // -------------------------------------------------------------------------
  // Reports and shutdown

  /** Counters for STATS (protocol.ts JournalStats). */
  stats(): JournalStats {
    return {
      fsync: this.#mode,
      bytes: this.bytes,
      recordsReplayed: this.#report.recordsReplayed,
      recoverMs: this.#report.recoverMs,
      lastCompactionAt: this.#lastCompactionAt,
      compactions: this.#compactions,
    };
  }

  /** Internal counters (appends, writes, fsyncs, failed batches), for tests and benchmarks. */
  counters(): JournalCounters {
    return { ...this.#counters };
  }

  /** The directory (absolute). */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Writes what is pending (callbacks run as usual), waits for a running
   * compaction, closes the files and releases the lock. Later appends fail
   * with JOURNAL_UNAVAILABLE. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#compaction;
      while (this.#draining !== null || this.#hasPending()) {
        if (this.#draining === null) this.#kick();
        await this.#draining;
      }
      for (const s of [...this.#older, this.#seg]) {
        await s.handle?.close();
        s.handle = null;
      }
      await releaseLock(this.#dir);
    })();
    return this.#closing;
  }
}
