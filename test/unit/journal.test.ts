import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished, describe, expect, it } from 'vitest';
import { TaskwireError } from '../../src/lib/errors.js';
import { Journal, JournalCorruptError, type JournalOptions } from '../../src/lib/journal.js';
import {
  decodeBody,
  encodeRecord,
  readRecord,
  RecordEncoder,
  RECORD_HEADER_BYTES,
  segmentHeader,
  SEGMENT_HEADER_BYTES,
  type JournalRecord,
} from '../../src/lib/journal-records.js';
import { ROOT } from '../helpers/process.js';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'taskwire-journal-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Opens a journal, collecting what it replays; closed when the test ends. */
async function openJournal(opts: JournalOptions) {
  const records: JournalRecord[] = [];
  const logs: string[] = [];
  const opened = await Journal.open({ log: (l) => logs.push(l), ...opts }, (r) => records.push(copy(r)));
  onTestFinished(() => opened.journal.close());
  return { ...opened, records, logs };
}

/** Replayed Buffers are views of a read buffer: copy before keeping. */
function copy(r: JournalRecord): JournalRecord {
  if (r.type === 'submit') return { ...r, args: Buffer.from(r.args) };
  if (r.type === 'done') return { ...r, result: Buffer.from(r.result) };
  return { ...r };
}

function append(journal: Journal, r: JournalRecord): Promise<Error | null> {
  return new Promise((resolve) => journal.append(r, resolve));
}

async function expectCode(p: Promise<unknown>, code: string): Promise<TaskwireError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TaskwireError);
  expect((err as TaskwireError).code).toBe(code);
  return err as TaskwireError;
}

const NOW = 1_760_000_000_123;

function submit(id: number, extra: Partial<Extract<JournalRecord, { type: 'submit' }>> = {}): JournalRecord {
  return {
    type: 'submit',
    id,
    kind: 'sha256',
    args: Buffer.from(`payload ${id} ${'x'.repeat(20)}`),
    priority: id % 256,
    timeoutMs: 10_000,
    maxRetries: 3,
    estMs: 0,
    notBefore: 0,
    key: '',
    createdAt: NOW + id,
    ...extra,
  };
}

function done(id: number): JournalRecord {
  return { type: 'done', id, attempts: 1, result: Buffer.from(`result-${id}`), finishedAt: NOW + 1000 + id, worker: 'w1' };
}

const SAMPLES: JournalRecord[] = [
  submit(1),
  submit(2 ** 53 - 1, { createdAt: NOW, key: 'idem-é-🙂', notBefore: NOW + 5, estMs: 123_456, maxRetries: 65_534, priority: 255 }),
  submit(3, { kind: 'k'.repeat(300), args: Buffer.alloc(100_000, 7), key: 'long key '.repeat(20) }),
  submit(4, { args: Buffer.alloc(0) }),
  done(5),
  { type: 'done', id: 6, attempts: 4, result: Buffer.alloc(0), finishedAt: NOW, worker: '' },
  { type: 'failed', id: 7, attempts: 2, error: 'division by zero ✗', permanent: true, finishedAt: NOW, worker: 'wörker' },
  { type: 'failed', id: 8, attempts: 4, error: 'e'.repeat(1000), permanent: false, finishedAt: NOW, worker: 'w' },
  { type: 'cancelled', id: 9, finishedAt: NOW },
  { type: 'retry', id: 10, attempts: 3, notBefore: NOW + 900, error: 'timeout after 10 ms' },
  { type: 'retry', id: 11, attempts: 1, notBefore: 0, error: '' },
  { type: 'meta', nextId: 12_345_678 },
];

/** A segment file: header + the given records. Returns the bytes and each record's start offset. */
function segment(records: JournalRecord[], snapshot = false): { bytes: Buffer; starts: number[] } {
  const parts = [segmentHeader(snapshot)];
  const starts: number[] = [];
  let at = SEGMENT_HEADER_BYTES;
  for (const r of records) {
    const b = encodeRecord(r);
    starts.push(at);
    at += b.length;
    parts.push(b);
  }
  return { bytes: Buffer.concat(parts), starts };
}

describe('record encoding', () => {
  it('round-trips every record type', () => {
    for (const r of SAMPLES) {
      const bytes = encodeRecord(r);
      const read = readRecord(bytes, 0);
      expect(read.status).toBe('ok');
      if (read.status !== 'ok') continue;
      expect(read.end).toBe(bytes.length);
      expect(read.record).toEqual(r);
    }
  });

  it('encodes many records into one buffer that reads back in order', () => {
    const enc = new RecordEncoder(16); // forces growth
    for (const r of SAMPLES) enc.write(r);
    const buf = enc.bytes();
    const out: JournalRecord[] = [];
    for (let off = 0; off < buf.length; ) {
      const read = readRecord(buf, off);
      if (read.status !== 'ok') throw new Error(`bad record at ${off}`);
      out.push(read.record);
      off = read.end;
    }
    expect(out).toEqual(SAMPLES);
  });

  it('keeps a typical sha256 job small', () => {
    const args = Buffer.from('a'.repeat(32));
    const s = encodeRecord(submit(123_456, { args, createdAt: NOW, priority: 0 })).length;
    const d = encodeRecord({ type: 'done', id: 123_456, attempts: 1, result: Buffer.from('f'.repeat(64)), finishedAt: NOW, worker: 'worker-1' }).length;
    expect(s).toBeLessThan(80);
    expect(d).toBeLessThan(100);
  });

  it('rejects field values it cannot store, leaving the buffer as it was', () => {
    const enc = new RecordEncoder();
    enc.write(submit(1));
    const before = enc.length;
    expect(() => enc.write(submit(-1))).toThrow(TaskwireError);
    expect(() => enc.write(submit(2, { createdAt: 1.5 }))).toThrow(TaskwireError);
    expect(enc.length).toBe(before);
  });

  it('reports short input and bad bodies', () => {
    const bytes = encodeRecord(done(1));
    for (let n = 0; n < bytes.length; n++) expect(readRecord(bytes.subarray(0, n), 0).status).toBe('short');
    expect(readRecord(Buffer.alloc(16), 0).status).toBe('bad'); // zero length: zero-filled space
    const flipped = Buffer.from(bytes);
    flipped[RECORD_HEADER_BYTES + 3]! ^= 0x10;
    expect(readRecord(flipped, 0).status).toBe('bad');
    const body = bytes.subarray(RECORD_HEADER_BYTES);
    expect(decodeBody(Buffer.from([99]), 0, 1)).toBeNull(); // unknown type
    expect(decodeBody(body, 0, body.length - 1)).toBeNull(); // cut short
    // A trailing byte after the last (optional) field:
    const full = encodeRecord({ ...(done(1) as Extract<JournalRecord, { type: 'done' }>), startedAt: NOW }).subarray(RECORD_HEADER_BYTES);
    expect(decodeBody(Buffer.concat([full, Buffer.from([0])]), 0, full.length + 1)).toBeNull();
  });
});

describe('replay', () => {
  const RECORDS = [submit(1), submit(2), done(1), { type: 'retry', id: 2, attempts: 1, notBefore: NOW, error: 'x' } as const, submit(3)];

  it('replays what was appended, across reopenings', async () => {
    const dir = await tempDir();
    const a = await openJournal({ dir });
    expect(a.report).toMatchObject({ recordsReplayed: 0, truncatedTailBytes: 0, lastCompactionAt: null });
    for (const r of RECORDS.slice(0, 3)) expect(await append(a.journal, r)).toBeNull();
    await a.journal.close();
    const b = await openJournal({ dir });
    expect(b.records).toEqual(RECORDS.slice(0, 3));
    for (const r of RECORDS.slice(3)) expect(await append(b.journal, r)).toBeNull();
    await b.journal.close();
    const c = await openJournal({ dir });
    expect(c.records).toEqual(RECORDS);
    expect(c.report.recordsReplayed).toBe(RECORDS.length);
    expect(c.report.bytes).toBe(segment(RECORDS).bytes.length);
    expect(c.journal.stats()).toMatchObject({ fsync: 'batch', bytes: c.report.bytes, recordsReplayed: RECORDS.length, compactions: 0 });
  });

  it('recovers the previous records from a journal cut at every byte of its last record', async () => {
    const dir = await tempDir();
    const { bytes, starts } = segment(RECORDS);
    const last = starts[starts.length - 1]!;
    const file = join(dir, 'journal-00000001.log');
    for (let cut = last; cut < bytes.length; cut++) {
      await writeFile(file, bytes.subarray(0, cut));
      const { journal, report, records, logs } = await openJournal({ dir });
      expect(records).toEqual(RECORDS.slice(0, -1));
      expect(report.truncatedTailBytes).toBe(cut - last);
      expect((await stat(file)).size).toBe(last);
      if (cut > last) expect(logs.some((l) => l.includes(String(last)))).toBe(true);
      // It keeps working: an append lands right after the last good record.
      expect(await append(journal, submit(9))).toBeNull();
      await journal.close();
      const again = await openJournal({ dir });
      expect(again.records).toEqual([...RECORDS.slice(0, -1), submit(9)]);
      await again.journal.close();
    }
  });

  it('detects a flipped bit in the middle with its offset, and --repair truncates there', async () => {
    const dir = await tempDir();
    const { bytes, starts } = segment(RECORDS);
    const file = join(dir, 'journal-00000001.log');
    const victim = 2; // a middle record
    for (let at = starts[victim]!; at < starts[victim + 1]!; at++) {
      const bad = Buffer.from(bytes);
      bad[at]! ^= 1 << (at % 8);
      await writeFile(file, bad);
      const err = await expectCode(Journal.open({ dir }, () => undefined), 'JOURNAL_CORRUPT');
      expect(err).toBeInstanceOf(JournalCorruptError);
      expect((err as JournalCorruptError).offset).toBe(starts[victim]);
      expect((err as JournalCorruptError).file).toBe(file);
      // The refused open released the lock and left the file alone.
      expect(await readFile(file)).toEqual(bad);
    }
    const { records, journal } = await openJournal({ dir, repair: true });
    expect(records).toEqual(RECORDS.slice(0, victim));
    expect((await stat(file)).size).toBe(starts[victim]);
    await journal.close();
  });

  it('treats a flipped length that points past the end as corruption when records follow', async () => {
    const dir = await tempDir();
    const { bytes, starts } = segment(RECORDS);
    const bad = Buffer.from(bytes);
    bad.writeUInt32LE(0x00ff_ffff, starts[1]!);
    await writeFile(join(dir, 'journal-00000001.log'), bad);
    const err = await expectCode(Journal.open({ dir }, () => undefined), 'JOURNAL_CORRUPT');
    expect((err as JournalCorruptError).offset).toBe(starts[1]);
  });

  it('starts at the newest snapshot and deletes the segments it supersedes', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'journal-00000001.log'), segment([submit(1), submit(2)]).bytes);
    await writeFile(join(dir, 'journal-00000002.log'), segment([{ type: 'meta', nextId: 3 }, submit(2)], true).bytes);
    await writeFile(join(dir, 'journal-00000003.log'), segment([done(2)]).bytes);
    await writeFile(join(dir, 'journal.tmp'), 'half a snapshot');
    const { records, report } = await openJournal({ dir });
    expect(records).toEqual([{ type: 'meta', nextId: 3 }, submit(2), done(2)]);
    expect(report.lastCompactionAt).not.toBeNull();
    expect((await readdir(dir)).sort()).toEqual(['LOCK', 'journal-00000002.log', 'journal-00000003.log']);
  });

  it('refuses a file that is not a journal segment', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'journal-00000001.log'), 'this is not a journal at all');
    await writeFile(join(dir, 'journal-00000002.log'), segment([submit(1)]).bytes);
    const err = await expectCode(Journal.open({ dir }, () => undefined), 'JOURNAL_CORRUPT');
    expect((err as JournalCorruptError).offset).toBe(0);
  });
});

describe('group commit', () => {
  it('covers many concurrent appends with few fsyncs, callbacks after durability in order', async () => {
    const dir = await tempDir();
    const { journal } = await openJournal({ dir, fsync: 'batch' });
    const N = 2000;
    const order: number[] = [];
    const all: Promise<void>[] = [];
    // Appends spread over many event-loop turns, so most arrive while a write+fsync is in flight.
    for (let turn = 0; turn < 20; turn++) {
      for (let i = 0; i < N / 20; i++) {
        const id = turn * (N / 20) + i + 1;
        all.push(
          new Promise((resolve, reject) =>
            journal.append(submit(id), (err) => {
              if (err !== null) reject(err);
              order.push(id);
              resolve();
            }),
          ),
        );
      }
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    const c = journal.counters();
    expect(c.appends).toBe(N);
    expect(c.fsyncs).toBe(c.writes);
    expect(c.fsyncs).toBeLessThanOrEqual(21);
    expect(order).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  });

  it('fsync always: one write and one fsync per record; off: none', async () => {
    const a = await openJournal({ dir: await tempDir(), fsync: 'always' });
    await Promise.all(Array.from({ length: 20 }, (_, i) => append(a.journal, submit(i + 1))));
    expect(a.journal.counters()).toMatchObject({ appends: 20, writes: 20, fsyncs: 20 });
    expect(a.journal.stats().fsync).toBe('always');
    const b = await openJournal({ dir: await tempDir(), fsync: 'off' });
    await Promise.all(Array.from({ length: 20 }, (_, i) => append(b.journal, submit(i + 1))));
    expect(b.journal.counters()).toMatchObject({ appends: 20, fsyncs: 0 });
  });

  it('fails every callback of a failed batch, leaves no partial batch, and recovers', async () => {
    const dir = await tempDir();
    let fail: 'none' | 'short' | 'throw' | 'fsync' = 'none';
    const { journal } = await openJournal({
      dir,
      faults: {
        write: (bytes) => {
          if (fail === 'throw') throw Object.assign(new Error('EIO: i/o error (injected)'), { code: 'EIO' });
          return fail === 'short' ? Math.floor(bytes / 2) : undefined;
        },
        fsync: () => {
          if (fail === 'fsync') throw Object.assign(new Error('EIO: fsync (injected)'), { code: 'EIO' });
        },
      },
    });
    const file = join(dir, 'journal-00000001.log');
    const good = [submit(1), submit(2)];
    expect(await Promise.all(good.map((r) => append(journal, r)))).toEqual([null, null]);
    const durable = (await stat(file)).size;
    let id = 100;
    for (const mode of ['short', 'throw', 'fsync'] as const) {
      fail = mode;
      const errs = await Promise.all([submit(id++), done(1), submit(id++)].map((r) => append(journal, r)));
      for (const e of errs) expect((e as TaskwireError).code).toBe('JOURNAL_UNAVAILABLE');
      expect((await stat(file)).size).toBe(durable);
      expect(journal.stats().bytes).toBe(durable);
    }
    fail = 'none';
    expect(await append(journal, submit(3))).toBeNull();
    expect(journal.counters().failedBatches).toBe(3);
    await journal.close();
    const again = await openJournal({ dir });
    expect(again.records).toEqual([...good, submit(3)]);
    expect(again.report.truncatedTailBytes).toBe(0);
  });

  it('fails appends made after close', async () => {
    const { journal } = await openJournal({ dir: await tempDir() });
    await journal.close();
    expect(((await append(journal, submit(1))) as TaskwireError).code).toBe('JOURNAL_UNAVAILABLE');
    await journal.close(); // idempotent
  });
});

describe('lock', () => {
  it('refuses a directory this process already holds', async () => {
    const dir = await tempDir();
    const { journal } = await openJournal({ dir });
    const err = await expectCode(Journal.open({ dir }, () => undefined), 'JOURNAL_LOCKED');
    expect(err.message).toContain(String(process.pid));
    await journal.close();
    const again = await openJournal({ dir }); // released by close
    await again.journal.close();
  });

  it('refuses a directory held by another live process, naming it and its pid', async () => {
    const dir = await tempDir();
    const script = `
      const { Journal } = await import('./src/lib/journal.ts');
      await Journal.open({ dir: process.argv[1] }, () => {});
      console.log('locked');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    onTestFinished(() => {
      child.kill('SIGKILL');
    });
    await once(child.stdout!, 'data', { signal: AbortSignal.timeout(15_000) });
    const err = await expectCode(Journal.open({ dir }, () => undefined), 'JOURNAL_LOCKED');
    expect(err.message).toContain(String(child.pid));
    expect(err.message).toContain(dir);
    // Once it is killed -9 the lock is stale and taken over.
    child.kill('SIGKILL');
    await once(child, 'exit');
    const { logs, journal } = await openJournal({ dir });
    expect(logs.some((l) => l.includes(String(child.pid)))).toBe(true);
    expect((await readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
    await journal.close();
  });

  it('takes over a stale lock of a dead pid', async () => {
    const dir = await tempDir();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(join(dir, 'LOCK'), `${dead}\n`);
    const { journal, logs } = await openJournal({ dir });
    expect(logs.some((l) => l.includes(String(dead)))).toBe(true);
    await journal.close();
    await expect(stat(join(dir, 'LOCK'))).rejects.toThrow(); // released
  });

  it('reports a data directory it cannot create or write', async () => {
    const dir = await tempDir();
    const file = join(dir, 'a-file');
    await writeFile(file, '');
    await expectCode(Journal.open({ dir: join(file, 'sub') }, () => undefined), 'JOURNAL_UNAVAILABLE');
  });
});

describe('compaction', () => {
  /** A tiny model of the scheduler's live state: submit + final record per live job. */
  class Model {
    readonly jobs = new Map<number, JournalRecord[]>();
    nextId = 1;
    apply(r: JournalRecord): void {
      if (r.type === 'meta') this.nextId = Math.max(this.nextId, r.nextId);
      else if (r.type === 'submit') {
        this.nextId = Math.max(this.nextId, r.id + 1);
        if (!this.jobs.has(r.id)) this.jobs.set(r.id, [r]);
      } else if (r.type !== 'pause') this.jobs.get(r.id)?.push(r);
    }
    /** Drops a finished job, as retention does. */
    evict(id: number): void {
      this.jobs.delete(id);
    }
    *snapshot(): Generator<JournalRecord> {
      yield { type: 'meta', nextId: this.nextId };
      for (const rs of this.jobs.values()) yield* rs;
    }
  }

  it('loses nothing appended during a compaction, shrinks the journal, keeps ids', async () => {
    const dir = await tempDir();
    const { journal } = await openJournal({ dir, compactBytes: 10_000 });
    const model = new Model();
    const put = (r: JournalRecord): Promise<Error | null> => {
      model.apply(r);
      return append(journal, r);
    };
    const acks: Promise<Error | null>[] = [];
    for (let id = 1; id <= 1000; id++) acks.push(put(submit(id)));
    for (let id = 1; id <= 990; id++) acks.push(put(done(id)));
    expect(journal.needsCompaction).toBe(false); // nothing durable yet
    await Promise.all(acks);
    for (let id = 1; id <= 990; id++) model.evict(id);
    const before = journal.stats().bytes;
    expect(journal.needsCompaction).toBe(true);
    // Appends in flight before, during and after the compaction.
    const during: Promise<Error | null>[] = [];
    for (let id = 1001; id <= 1100; id++) during.push(put(submit(id)));
    const compaction = journal.compact([...model.snapshot()]); // the state as of now (the core's snapshot is lazy, and safe so)
    expect(journal.needsCompaction).toBe(false);
    for (let id = 1101; id <= 1200; id++) during.push(put(submit(id)));
    await new Promise((r) => setImmediate(r));
    for (let id = 991; id <= 1000; id++) during.push(put(done(id)));
    await compaction;
    for (let id = 1201; id <= 1300; id++) during.push(put(submit(id)));
    expect(await Promise.all(during)).toEqual(during.map(() => null));
    const after = journal.stats();
    expect(after.compactions).toBe(1);
    expect(after.lastCompactionAt).not.toBeNull();
    expect(after.bytes).toBeLessThan(before / 2);
    await journal.close();

    const replayed = new Model();
    const again = await openJournal({ dir });
    for (const r of again.records) replayed.apply(r);
    expect([...replayed.jobs.keys()].sort((a, b) => a - b)).toEqual([...model.jobs.keys()].sort((a, b) => a - b));
    expect([...replayed.snapshot()]).toEqual([...model.snapshot()].map((r) => r));
    expect(replayed.nextId).toBe(1301);
    expect(again.report.bytes).toBe(after.bytes);
    expect((await readdir(dir)).filter((n) => n.endsWith('.log'))).toHaveLength(2);
  });

  it('keeps ids unique when a compaction dropped every job', async () => {
    const dir = await tempDir();
    const a = await openJournal({ dir });
    for (let id = 1; id <= 5; id++) await append(a.journal, submit(id));
    await a.journal.compact([{ type: 'meta', nextId: 6 }]);
    await a.journal.close();
    const b = await openJournal({ dir });
    expect(b.records).toEqual([{ type: 'meta', nextId: 6 }]);
  });

  it('fails cleanly, keeping every record, when a write fails during it, and can run again', async () => {
    const dir = await tempDir();
    let failing = false;
    const { journal } = await openJournal({
      dir,
      faults: {
        write: () => {
          if (failing) throw Object.assign(new Error('ENOSPC (injected)'), { code: 'ENOSPC' });
        },
      },
    });
    for (let id = 1; id <= 10; id++) await append(journal, submit(id));
    const pending = append(journal, submit(11)); // cut into the old segment at rotation, then fails
    failing = true;
    await expectCode(journal.compact([{ type: 'meta', nextId: 11 }, submit(11)]), 'JOURNAL_UNAVAILABLE');
    expect(((await pending) as TaskwireError).code).toBe('JOURNAL_UNAVAILABLE');
    expect(journal.stats().compactions).toBe(0);
    expect(journal.needsCompaction).toBe(false); // backs off after a failure
    failing = false;
    expect(await append(journal, submit(12))).toBeNull();
    await journal.close();
    const again = await openJournal({ dir });
    expect(again.records.map((r) => (r.type === 'submit' ? r.id : -1))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]);
    await again.journal.compact([{ type: 'meta', nextId: 13 }]);
    await again.journal.close();
    const third = await openJournal({ dir });
    expect(third.records).toEqual([{ type: 'meta', nextId: 13 }]);
    expect((await readdir(dir)).filter((n) => n.endsWith('.log'))).toHaveLength(2);
  });

  it('survives a crash between the rename and the deletion of old segments', async () => {
    // Same files as a crash would leave: the earlier snapshot, the new one, the live segment.
    const dir = await tempDir();
    await writeFile(join(dir, 'journal-00000003.log'), segment([{ type: 'meta', nextId: 2 }, submit(1)], true).bytes);
    await writeFile(join(dir, 'journal-00000004.log'), segment([{ type: 'meta', nextId: 3 }, submit(2)], true).bytes);
    await writeFile(join(dir, 'journal-00000005.log'), segment([done(2)]).bytes);
    const { records } = await openJournal({ dir });
    expect(records).toEqual([{ type: 'meta', nextId: 3 }, submit(2), done(2)]);
  });

  it('truncates a torn header of a freshly rotated segment', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'journal-00000001.log'), segment([submit(1)]).bytes);
    await writeFile(join(dir, 'journal-00000002.log'), segmentHeader(false).subarray(0, 3));
    const { records, journal } = await openJournal({ dir });
    expect(records).toEqual([submit(1)]);
    expect(await append(journal, submit(2))).toBeNull();
    await journal.close();
    expect((await openJournal({ dir })).records).toEqual([submit(1), submit(2)]);
  });
});
