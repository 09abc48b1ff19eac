/**
 * The three rules of DESIGN.md, checked on the state machine alone: a fake
 * journal whose writes the test settles one by one (fail, delay, succeed),
 * a fake monotonic clock and a wall clock that can jump.
 */
import { describe, expect, it, vi } from 'vitest';
import type { JournalRecord } from '../../src/lib/journal-records.js';
import { DEFAULT_RETRIES, type ListPage, type Message, type SubmitMessage } from '../../src/lib/protocol.js';
import { SchedulerCore, type CoreOptions, type JournalPort } from '../../src/lib/scheduler-core.js';
import { FakePeer } from '../helpers/fake-peer.js';


/** A journal whose appends wait until the test settles them, in order. */
class FakeJournal implements JournalPort {
  readonly pending: { record: JournalRecord; done: (err: Error | null) => void }[] = [];
  readonly stored: JournalRecord[] = [];
  append(record: JournalRecord, onDurable: (err: Error | null) => void): void {
    this.pending.push({ record, done: onDurable });
  }
  /** Settles every pending append: stored, or failed with a disk-full error. */
  settle(ok: boolean | ((r: JournalRecord) => boolean)): void {
    for (const p of this.pending.splice(0)) {
      const good = typeof ok === 'boolean' ? ok : ok(p.record);
      if (good) this.stored.push(p.record);
      p.done(good ? null : Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
    }
  }
  types(): string[] {
    return this.pending.map((p) => p.record.type);
  }
}

function setup(opts: CoreOptions & { journal?: FakeJournal } = {}) {
  let mono = 5_000;
  let wall = 1_760_000_000_000;
  const journal = opts.journal;
  const core = new SchedulerCore({
    now: () => mono,
    wallNow: () => wall,
    random: () => 0.5,
    retryBaseMs: 100,
    retryMaxMs: 1000,
    storeRetryMs: 50,
    ...opts,
    journal,
  });
  let requestId = 1;
  const client = (name = 'c') => {
    const peer = new FakePeer();
    const session = core.openClient(name, name, peer);
    return { peer, session };
  };
  const main = client('main');
  const submit = (kind: string, args: string, more: Partial<SubmitMessage> = {}, who = main) => {
    const msg: SubmitMessage = {
      type: 'SUBMIT', requestId: requestId++, kind, args: Buffer.from(args), priority: 0, timeoutMs: 0,
      maxRetries: DEFAULT_RETRIES, estMs: 0, delayMs: 0, key: '', wait: true, progress: false, ...more,
    };
    core.handleClient(who.session, msg);
    return msg.requestId;
  };
  const ackOf = (rid: number, who = main) => who.peer.sent.find((m) => (m.type === 'ACK' || m.type === 'ERROR') && m.requestId === rid);
  const request = (msg: Message, who = main) => {
    core.handleClient(who.session, msg);
    return who.peer.sent.at(-1);
  };
  const worker = (name: string, capabilities: string[], concurrency = 1) => {
    const peer = new FakePeer();
    const session = core.openWorker(name, { type: 'HELLO', version: 1, role: 'worker', name, capabilities, concurrency }, peer);
    return { peer, session };
  };
  const advance = (ms: number) => {
    mono += ms;
    core.tick();
  };
  return {
    core, main, client, submit, ackOf, request, worker, advance, journal: journal!,
    jumpWall: (ms: number) => (wall += ms),
    nextRequestId: () => requestId++,
  };
}

const RESULT = (jobId: number, attempt: number, text = 'ok'): Message => ({ type: 'RESULT', jobId, attempt, result: Buffer.from(text) });

describe('rule 1: nothing is visible before it is durable', () => {
  it('holds back a DONE whose record failed, writes it again, and reports it only once stored', () => {
    const t = setup({ journal: new FakeJournal() });
    const rid = t.submit('k', 'x');
    t.journal.settle(true);
    const id = (t.ackOf(rid) as { jobId: number }).jobId;
    const w = t.worker('W', ['k']);
    const [assign] = w.peer.take('ASSIGN');
    t.core.handleWorker(w.session, RESULT(id, assign!.attempt, 'digest'));
    expect(t.journal.types()).toEqual(['done']);
    t.journal.settle(false); // disk full
    expect(t.main.peer.take('EVENT')).toEqual([]);
    const status = t.request({ type: 'STATUS', requestId: t.nextRequestId(), jobId: id });
    expect(status).toMatchObject({ type: 'REPLY', body: { state: 'RUNNING' } });
    expect(t.core.stats().kinds['k']).toMatchObject({ running: 1, done: 0 });
    // The write is tried again from tick(), with backoff; still failing, still silent.
    t.advance(60);
    expect(t.journal.types()).toEqual(['done']);
    t.journal.settle(false);
    t.advance(60);
    expect(t.journal.types()).toEqual([]); // backing off (100 ms now)
    t.advance(60);
    expect(t.journal.types()).toEqual(['done']);
    expect(t.main.peer.take('EVENT')).toEqual([]);
    t.journal.settle(true); // space is back
    const [event] = t.main.peer.take('EVENT');
    expect(event).toMatchObject({ jobId: id, event: 'done' });
    expect(event!.type === 'EVENT' && event!.data.toString()).toBe('digest');
    expect(t.core.stats().kinds['k']).toMatchObject({ running: 0, done: 1 });
    // The worker's slot was free all along: it answered its attempt.
    expect(w.session.held.size).toBe(0);
  });

  it('answers CANCEL only once its record is durable, and refuses it when the record fails', () => {
    const t = setup({ journal: new FakeJournal() });
    const r1 = t.submit('k', 'queued');
    t.journal.settle(true);
    const id = (t.ackOf(r1) as { jobId: number }).jobId;
    const cancelRid = t.nextRequestId();
    t.core.handleClient(t.main.session, { type: 'CANCEL', requestId: cancelRid, jobId: id });
    expect(t.main.peer.sent.find((m) => m.type === 'REPLY')).toBeUndefined();
    expect(t.journal.types()).toEqual(['cancelled']);
    // Meanwhile it is not dispatched, and still shows QUEUED.
    const w = t.worker('W', ['k']);
    expect(w.peer.take('ASSIGN')).toEqual([]);
    t.journal.settle(false);
    expect(t.main.peer.sent.at(-1)).toMatchObject({ type: 'ERROR', requestId: cancelRid, code: 'JOURNAL_UNAVAILABLE' });
    // Refused: the job carries on and runs.
    t.advance(1);
    const [assign] = w.peer.take('ASSIGN');
    expect(assign).toMatchObject({ jobId: id });
    // A cancel of the running job that is stored: ABANDON goes out, the reply waits for the record.
    const rid2 = t.nextRequestId();
    t.core.handleClient(t.main.session, { type: 'CANCEL', requestId: rid2, jobId: id });
    expect(w.peer.take('ABANDON')).toHaveLength(1);
    expect(t.main.peer.sent.find((m) => m.type === 'REPLY')).toBeUndefined();
    t.journal.settle(true);
    expect(t.main.peer.take('REPLY')).toMatchObject([{ requestId: rid2, body: { state: 'CANCELLED' } }]);
    expect(t.main.peer.take('EVENT')).toMatchObject([{ jobId: id, event: 'cancelled' }]);
  });

  it('re-queues a running job whose cancel record failed (its attempt was abandoned)', () => {
    const t = setup({ journal: new FakeJournal() });
    const rid = t.submit('k', 'x');
    t.journal.settle(true);
    const id = (t.ackOf(rid) as { jobId: number }).jobId;
    const w = t.worker('W', ['k'], 2);
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
    t.core.handleClient(t.main.session, { type: 'CANCEL', requestId: t.nextRequestId(), jobId: id });
    t.journal.settle(false);
    expect(t.main.peer.sent.at(-1)).toMatchObject({ type: 'ERROR', code: 'JOURNAL_UNAVAILABLE' });
    // Attempt 1 was abandoned (still held until answered); attempt 2 goes to the free slot.
    const [again] = w.peer.take('ASSIGN');
    expect(again).toMatchObject({ jobId: id, attempt: 2 });
    t.core.handleWorker(w.session, RESULT(id, 1, 'late')); // the abandoned attempt's answer frees its slot only
    t.core.handleWorker(w.session, RESULT(id, 2, 'right'));
    t.journal.settle(true);
    expect(t.main.peer.take('EVENT')).toMatchObject([{ jobId: id, event: 'done', attempt: 2 }]);
  });

  it('appends no second record for a key whose first submit is not durable; both hear its fate', () => {
    const t = setup({ journal: new FakeJournal() });
    const other = t.client('other');
    const a = t.submit('k', 'x', { key: 'order-1' });
    const b = t.submit('k', 'y', { key: 'order-1' }, other);
    expect(t.journal.types()).toEqual(['submit']);
    t.journal.settle(false);
    expect(t.ackOf(a)).toMatchObject({ type: 'ERROR', code: 'JOURNAL_UNAVAILABLE' });
    expect(t.ackOf(b, other)).toMatchObject({ type: 'ERROR', code: 'JOURNAL_UNAVAILABLE' });
    expect(t.journal.stored).toEqual([]);
    // Again, durable this time: one record, two ACKs for the same job.
    const c = t.submit('k', 'x', { key: 'order-1' });
    const d = t.submit('k', 'y', { key: 'order-1' }, other);
    expect(t.journal.types()).toEqual(['submit']);
    t.journal.settle(true);
    const ackC = t.ackOf(c) as { jobId: number; existing: boolean };
    const ackD = t.ackOf(d, other) as { jobId: number; existing: boolean };
    expect(ackD.jobId).toBe(ackC.jobId);
    expect([ackC.existing, ackD.existing]).toEqual([false, true]);
  });

  it('shows a job whose submit is pending to nobody: STATUS, WATCH, CANCEL, LIST, STATS', () => {
    const t = setup({ journal: new FakeJournal() });
    t.submit('k', 'x');
    const id = 1;
    expect(t.request({ type: 'STATUS', requestId: t.nextRequestId(), jobId: id })).toMatchObject({ type: 'ERROR', code: 'NOT_FOUND' });
    expect(t.request({ type: 'WATCH', requestId: t.nextRequestId(), jobId: id, progress: false })).toMatchObject({ type: 'ERROR', code: 'NOT_FOUND' });
    expect(t.request({ type: 'CANCEL', requestId: t.nextRequestId(), jobId: id })).toMatchObject({ type: 'ERROR', code: 'NOT_FOUND' });
    const list = t.request({ type: 'LIST', requestId: t.nextRequestId(), state: '', kind: '', limit: 0 });
    expect(list).toMatchObject({ type: 'REPLY', body: { jobs: [], total: 0 } });
    expect(t.core.stats().totals).toMatchObject({ queued: 0, submitted: 0 });
    t.journal.settle(false);
    expect(t.core.jobs.size).toBe(0);
  });

  it('after freeze(), dispatches nothing and re-queues a lost worker’s jobs without charging an attempt or writing a record', () => {
    const t = setup({ journal: new FakeJournal() });
    for (let i = 0; i < 3; i++) t.submit('k', String(i), { maxRetries: 0 });
    t.journal.settle(true);
    const w = t.worker('W', ['k'], 1);
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
    t.core.freeze();
    t.core.handleWorker(w.session, RESULT(1, 1)); // a result during the grace is accepted and stored
    expect(t.journal.types()).toEqual(['done']);
    t.journal.settle(true);
    expect(w.peer.take('ASSIGN')).toEqual([]); // frozen: nothing new
    const w2 = t.worker('W2', ['k'], 1);
    expect(w2.peer.take('ASSIGN')).toEqual([]);
    t.core.thaw();
    const [a2] = w.peer.take('ASSIGN');
    t.core.freeze();
    t.core.closeSession(w.session, 'scheduler stopping');
    expect(t.journal.types()).toEqual([]); // no retry or failed record
    const job = t.core.jobs.get(a2!.jobId)!;
    expect(job.state).toBe('QUEUED');
    expect(job.attempts).toBe(0);
  });
});

describe('rule 2: a worker holds a set of (job, attempt), not a bare counter', () => {
  it('gives no credit back for a duplicate or unsolicited RESULT/FAIL', () => {
    const t = setup();
    for (let i = 0; i < 5; i++) t.submit('k', String(i));
    const w = t.worker('W', ['k'], 1);
    const [a] = w.peer.take('ASSIGN');
    // Unsolicited answers for jobs it does not hold, and for a wrong attempt:
    t.core.handleWorker(w.session, RESULT(a!.jobId + 1, 1));
    t.core.handleWorker(w.session, { type: 'FAIL', jobId: a!.jobId + 2, attempt: 1, permanent: false, message: 'x' });
    t.core.handleWorker(w.session, RESULT(a!.jobId, a!.attempt + 7));
    expect(w.peer.take('ASSIGN')).toEqual([]);
    expect(w.session.held.size).toBe(1);
    t.core.handleWorker(w.session, RESULT(a!.jobId, a!.attempt));
    t.core.handleWorker(w.session, RESULT(a!.jobId, a!.attempt)); // duplicate
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
    expect(w.session.held.size).toBe(1);
    expect(t.core.workersInfo()[0]!.running).toBe(1);
  });

  it('keeps an abandoned attempt’s slot until the worker answers it', () => {
    const t = setup();
    t.submit('k', 'slow', { timeoutMs: 100, maxRetries: 1 });
    t.submit('k', 'next');
    const w = t.worker('W', ['k'], 1);
    const [a] = w.peer.take('ASSIGN');
    t.advance(150);
    expect(w.peer.take('ABANDON')).toMatchObject([{ jobId: a!.jobId, reason: 'timeout' }]);
    expect(w.peer.take('ASSIGN')).toEqual([]); // the handler may still be running
    t.core.handleWorker(w.session, { type: 'FAIL', jobId: a!.jobId, attempt: a!.attempt, permanent: false, message: 'abandoned: handler ignored its abort signal' });
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
  });

  it('shows stuck handlers a worker reports', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 2);
    t.core.handleWorker(w.session, { type: 'HEARTBEAT', running: 1, stuck: 1 });
    expect(t.core.workersInfo()[0]).toMatchObject({ stuck: 1, running: 0 });
  });
});

describe('rule 3: monotonic time, bounded everything', () => {
  it('measures timeouts, delays and backoff on the monotonic clock: wall-clock steps change nothing', () => {
    const t = setup();
    const rid = t.submit('k', 'x', { timeoutMs: 1000 });
    const id = (t.ackOf(rid) as { jobId: number }).jobId;
    t.submit('k', 'later', { delayMs: 500 });
    const w = t.worker('W', ['k'], 2);
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
    t.jumpWall(+5_000); // NTP step forward
    t.advance(10);
    expect(w.peer.take('ABANDON')).toEqual([]);
    expect(w.peer.take('ASSIGN')).toEqual([]); // the delayed job is not due either
    t.jumpWall(-3_600_000); // and an hour back
    t.advance(990);
    expect(w.peer.take('ABANDON')).toMatchObject([{ jobId: id }]);
    expect(w.peer.take('ASSIGN')).toHaveLength(1); // the delayed job, on time
  });

  it('defaults to a monotonic clock: a wall-clock step forward times out nothing', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const core = new SchedulerCore();
      const peer = new FakePeer();
      const client = core.openClient('c', 'c', peer);
      core.handleClient(client, {
        type: 'SUBMIT', requestId: 1, kind: 'k', args: Buffer.from('x'), priority: 0, timeoutMs: 1000,
        maxRetries: DEFAULT_RETRIES, estMs: 0, delayMs: 0, key: '', wait: false, progress: false,
      });
      const w = new FakePeer();
      core.openWorker('w', { type: 'HELLO', version: 1, role: 'worker', name: 'w', capabilities: ['k'], concurrency: 1 }, w);
      expect(w.take('ASSIGN')).toHaveLength(1);
      vi.setSystemTime(Date.now() + 5_000);
      core.tick();
      expect(w.take('ABANDON')).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('takes a closed client off every job it waited on', () => {
    const t = setup();
    const watchers = Array.from({ length: 50 }, (_, i) => t.client(`w${i}`));
    const rid = t.submit('k', 'x');
    const id = (t.ackOf(rid) as { jobId: number }).jobId;
    for (const c of watchers) t.core.handleClient(c.session, { type: 'WATCH', requestId: 1, jobId: id, progress: true });
    expect(Array.isArray(t.core.jobs.get(id)!.waiters) && (t.core.jobs.get(id)!.waiters as unknown[]).length).toBe(51);
    for (const c of watchers) t.core.closeSession(c.session, 'gone');
    expect(t.core.jobs.get(id)!.waiters).toBe(t.main.session);
  });

  it('forgets kinds with no jobs and no workers, and caps the kind table', () => {
    const t = setup({ maxKinds: 3, retainCount: 0 });
    const w = t.worker('W', ['a'], 10);
    t.submit('b', '1');
    t.submit('c', '1');
    expect(t.ackOf(t.submit('d', '1'))).toMatchObject({ type: 'ERROR', code: 'LIMIT_EXCEEDED' });
    expect(() => t.worker('W2', ['e'])).toThrow(expect.objectContaining({ code: 'LIMIT_EXCEEDED' }));
    expect(t.core.kindCount).toBe(3);
    // b's job is cancelled (and not retained): the kind goes; a stays while its worker is there.
    t.request({ type: 'CANCEL', requestId: t.nextRequestId(), jobId: 1 });
    expect(t.core.kindCount).toBe(2);
    t.core.closeSession(w.session, 'bye');
    expect(t.core.kindCount).toBe(1);
    expect(t.ackOf(t.submit('d', '1'))).toMatchObject({ type: 'ACK' });
    expect(Object.keys(t.core.stats().kinds).sort()).toEqual(['c', 'd']);
  });

  it('refuses at submit a job whose ASSIGN no worker could receive', () => {
    const t = setup({ maxPayloadBytes: 1000 });
    expect(t.ackOf(t.submit('k', 'x'.repeat(1000)))).toMatchObject({ type: 'ERROR', code: 'TOO_LARGE' });
    expect(t.ackOf(t.submit('k', 'x'.repeat(900)))).toMatchObject({ type: 'ACK' });
  });

  it('fails an attempt whose result could not be delivered in an EVENT, instead of closing the client', () => {
    const t = setup({ maxPayloadBytes: 1000 });
    t.submit('k', 'x');
    const w = t.worker('W', ['k']);
    const [a] = w.peer.take('ASSIGN');
    t.core.handleWorker(w.session, RESULT(a!.jobId, a!.attempt, 'r'.repeat(990)));
    expect(t.main.peer.take('EVENT')).toMatchObject([{ event: 'failed', permanent: true }]);
  });

  it('pages LIST newest first with a cursor and a total, bounded per request, without results', () => {
    const t = setup({ listScanIds: 50 });
    for (let i = 1; i <= 120; i++) t.submit(i % 2 === 0 ? 'even' : 'odd', String(i));
    const w = t.worker('W', ['even'], 200);
    for (const a of w.peer.take('ASSIGN')) t.core.handleWorker(w.session, RESULT(a.jobId, a.attempt, 'r'.repeat(10_000)));
    const page = (m: Partial<Extract<Message, { type: 'LIST' }>>) =>
      (t.request({ type: 'LIST', requestId: t.nextRequestId(), state: '', kind: '', limit: 0, ...m }) as { body: ListPage }).body;
    const p1 = page({ limit: 10 });
    expect(p1.jobs.map((j) => j.id)).toEqual([120, 119, 118, 117, 116, 115, 114, 113, 112, 111]);
    expect(p1.total).toBe(120);
    expect(p1.next).toBe(111);
    expect(p1.jobs[0]).toMatchObject({ state: 'DONE', resultBytes: 10_000 });
    expect(p1.jobs[0]!.result).toBeUndefined();
    expect(page({ limit: 5, afterId: p1.next }).jobs.map((j) => j.id)).toEqual([110, 109, 108, 107, 106]);
    // A filter that matches little: the page stops after 50 ids looked at, with a cursor.
    const odd = page({ kind: 'odd', state: 'QUEUED', limit: 1000 });
    expect(odd.jobs).toHaveLength(25);
    expect(odd.total).toBe(60);
    expect(odd.next).toBe(71); // ids 120..71 looked at: pass 71 as afterId to go on from 70
    const rest = page({ kind: 'odd', state: 'QUEUED', limit: 1000, afterId: odd.next });
    expect(rest.jobs[0]!.id).toBe(69);
    expect(page({ order: 'oldest', limit: 3 }).jobs.map((j) => j.id)).toEqual([1, 2, 3]);
    expect(page({ limit: 2 ** 32 - 1 }).jobs.length).toBeLessThanOrEqual(50);
  });

  it('answers STATUS with the result as raw bytes beside the JSON', () => {
    const t = setup();
    t.submit('k', 'x');
    const w = t.worker('W', ['k']);
    const [a] = w.peer.take('ASSIGN');
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x22]);
    t.core.handleWorker(w.session, { type: 'RESULT', jobId: a!.jobId, attempt: 1, result: bytes });
    const reply = t.request({ type: 'STATUS', requestId: t.nextRequestId(), jobId: a!.jobId });
    expect(reply).toMatchObject({ type: 'REPLY', body: { state: 'DONE', resultBytes: 4 } });
    expect(reply!.type === 'REPLY' && reply!.data).toEqual(bytes);
  });

  it('keeps STATS counters incremental: oldest wait, delayed and running per kind', () => {
    const t = setup();
    t.submit('k', 'a');
    t.advance(300);
    t.submit('k', 'b', { delayMs: 10_000 });
    const stats = t.core.stats().kinds['k']!;
    expect(stats).toMatchObject({ queued: 2, delayed: 1, running: 0, oldestQueuedMs: 300 });
  });
});

describe('replay and snapshots', () => {
  it('counts replayed submits and keeps startedAt before finishedAt after a restart', () => {
    const journal = new FakeJournal();
    const t = setup({ journal });
    t.submit('k', 'x');
    journal.settle(true);
    const w = t.worker('W', ['k']);
    const [a] = w.peer.take('ASSIGN');
    t.advance(250);
    t.core.handleWorker(w.session, RESULT(a!.jobId, 1));
    journal.settle(true);
    const again = new SchedulerCore({ now: () => 0, wallNow: () => 1_760_000_000_000 + 1_000 });
    for (const r of journal.stored) again.replay(r);
    again.finishReplay();
    const info = again.jobInfo(again.jobs.get(a!.jobId)!);
    expect(info.startedAt).toBeDefined();
    expect(info.startedAt!).toBeLessThanOrEqual(info.finishedAt!);
    expect(info.finishedAt! - info.startedAt!).toBe(250);
    expect(again.stats().totals.submitted).toBe(1);
  });

  it('puts a pending outcome in a snapshot only if its record was appended before the snapshot began', () => {
    const journal = new FakeJournal();
    const t = setup({ journal });
    for (let i = 0; i < 2; i++) t.submit('k', String(i));
    journal.settle(true);
    const w = t.worker('W', ['k'], 2);
    const [a1, a2] = w.peer.take('ASSIGN');
    t.core.handleWorker(w.session, RESULT(a1!.jobId, 1)); // appended before the snapshot starts
    const snap = t.core.snapshot();
    const first = snap.next(); // the journal takes the first record at the instant it rotates
    t.core.handleWorker(w.session, RESULT(a2!.jobId, 1)); // appended after: in the new segment
    const records = [first.value as JournalRecord, ...snap];
    const finals = records.filter((r) => r.type === 'done').map((r) => r.id);
    expect(finals).toEqual([a1!.jobId]);
  });
});

describe('prefetch (PROTOCOL.md §5.4)', () => {
  const prefetching = (t: ReturnType<typeof setup>, name: string, kinds: string[], concurrency: number, prefetch: number) => {
    const peer = new FakePeer();
    const session = t.core.openWorker(name, { type: 'HELLO', version: 1, role: 'worker', name, capabilities: kinds, concurrency, prefetch }, peer);
    return { peer, session };
  };

  it('sends up to concurrency + prefetch jobs, and runs no timeout for a job not started yet', () => {
    const t = setup();
    for (let i = 0; i < 5; i++) t.submit('k', String(i), { timeoutMs: 100, maxRetries: 1 });
    const w = prefetching(t, 'W', ['k'], 1, 2);
    const assigns = w.peer.take('ASSIGN');
    expect(assigns.map((a) => a.jobId)).toEqual([1, 2, 3]);
    expect(t.core.stats().kinds['k']).toMatchObject({ running: 1, prefetched: 2, queued: 2 });
    t.advance(80);
    t.core.handleWorker(w.session, RESULT(1, 1)); // job 2 starts now, on the worker and in the scheduler's model
    // Its jobs take 80 ms: more than the ~10 ms of work sent ahead, so one ahead is enough now (job 3).
    expect(w.peer.take('ASSIGN').map((a) => a.jobId)).toEqual([]);
    expect(w.session.prefetchNow).toBe(1);
    t.advance(80); // job 2 has run 80 ms, jobs 3 and 4 have not started: no timeout
    expect(w.peer.take('ABANDON')).toEqual([]);
    t.advance(30); // job 2 now ran 110 ms
    expect(w.peer.take('ABANDON')).toMatchObject([{ jobId: 2, reason: 'timeout' }]);
  });

  it('sizes what it sends ahead by how long the worker’s jobs run: deep for fast jobs, one for slow ones', () => {
    const t = setup();
    for (let i = 0; i < 300; i++) t.submit('k', String(i));
    const w = prefetching(t, 'W', ['k'], 2, 128);
    let assigns = w.peer.take('ASSIGN');
    expect(assigns).toHaveLength(130);
    // Fast jobs (0 ms here): the worker keeps all it declared.
    for (const a of assigns.slice(0, 20)) t.core.handleWorker(w.session, RESULT(a.jobId, a.attempt));
    expect(w.session.prefetchNow).toBe(128);
    assigns = w.peer.take('ASSIGN');
    // Slow jobs (a second each): one ahead in all.
    for (const a of assigns.slice(0, 2)) void a;
    for (let i = 0; i < 40; i++) {
      const running = [...w.session.running].find((j) => (j.flags & (1 << 28)) === 0)!;
      t.advance(1000);
      t.core.handleWorker(w.session, RESULT(running.id, running.attempts));
    }
    expect(w.session.prefetchNow).toBe(1);
  });

  it('hands a lost worker’s prefetched jobs to an idle worker at once', () => {
    const t = setup();
    for (let i = 0; i < 4; i++) t.submit('k', String(i));
    const a = prefetching(t, 'A', ['k'], 1, 8);
    const b = prefetching(t, 'B', ['k'], 1, 8);
    // B stole A's next job when it connected; A still holds two prefetched ones.
    a.peer.take('ASSIGN');
    b.peer.take('ASSIGN');
    t.core.handleWorker(b.session, RESULT([...b.session.running][0]!.id, 1));
    b.peer.take('ASSIGN');
    const before = b.session.held.size;
    t.core.closeSession(a.session, 'gone');
    expect(b.session.held.size).toBeGreaterThan(before);
  });

  it('queues a lost worker’s prefetched jobs again without charging an attempt', () => {
    const t = setup();
    for (let i = 0; i < 3; i++) t.submit('k', String(i), { maxRetries: 0 });
    const w = prefetching(t, 'W', ['k'], 1, 4);
    expect(w.peer.take('ASSIGN')).toHaveLength(3);
    t.core.closeSession(w.session, 'gone');
    const [started, p1, p2] = [1, 2, 3].map((id) => t.core.jobs.get(id)!);
    expect(started!.state).toBe('FAILED'); // it had started: the loss is charged (retries 0)
    expect([p1!.state, p1!.attempts, p2!.state, p2!.attempts]).toEqual(['QUEUED', 0, 'QUEUED', 0]);
  });

  it('cancels a prefetched job: ABANDON reaches the worker, its answer frees the credit but no slot', () => {
    const t = setup();
    for (let i = 0; i < 3; i++) t.submit('k', String(i));
    const w = prefetching(t, 'W', ['k'], 1, 2);
    w.peer.take('ASSIGN');
    t.request({ type: 'CANCEL', requestId: t.nextRequestId(), jobId: 3 });
    expect(w.peer.take('ABANDON')).toMatchObject([{ jobId: 3, reason: 'cancelled' }]);
    expect(t.core.jobs.get(3)!.state).toBe('CANCELLED');
    t.core.handleWorker(w.session, { type: 'FAIL', jobId: 3, attempt: 1, permanent: false, message: 'abandoned: cancelled' });
    expect(w.session.started).toBe(1);
    t.core.handleWorker(w.session, RESULT(1, 1));
    expect(t.core.stats().kinds['k']).toMatchObject({ running: 1, prefetched: 0 }); // job 2 started; 3 is gone
    expect(w.session.started).toBe(1);
  });

  it('starts a backlog in queue order across two workers with deep prefetch, and an idle worker takes back what another hoards', () => {
    const t = setup();
    const A = prefetching(t, 'A', ['k'], 1, 16);
    for (let i = 0; i < 6; i++) t.submit('k', `low${i}`, { priority: 0 });
    // A holds all six (one started, five queued on it).
    expect(A.peer.take('ASSIGN')).toHaveLength(6);
    const B = prefetching(t, 'B', ['k'], 1, 16);
    // B is idle with nothing runnable: it takes back the job A would start next.
    expect(A.peer.take('ABANDON')).toMatchObject([{ jobId: 2, reason: 'lost' }]);
    expect(B.peer.take('ASSIGN')).toMatchObject([{ jobId: 2, attempt: 1 }]);
    expect(t.core.jobs.get(2)!.attempts).toBe(1); // uncharged: attempt 1 again, on B
    // A's late answer to the revoked attempt frees its credit and nothing else.
    t.core.handleWorker(A.session, { type: 'FAIL', jobId: 2, attempt: 1, permanent: false, message: 'abandoned: lost' });
    expect(t.core.jobs.get(2)!.state).toBe('RUNNING');
    t.core.handleWorker(B.session, RESULT(2, 1, 'from B'));
    expect(String(t.core.jobs.get(2)!.outcome)).toBe('from B');

    // A backlog that exists before dispatch starts in priority order across both workers.
    const t2 = setup();
    for (let i = 0; i < 4; i++) t2.submit('k', `low${i}`, { priority: 0 });
    for (let i = 0; i < 4; i++) t2.submit('k', `high${i}`, { priority: 9 });
    const C = prefetching(t2, 'C', ['k'], 1, 8);
    const D = prefetching(t2, 'D', ['k'], 1, 8);
    const startOrder: string[] = [];
    const args = new Map<number, string>();
    for (const a of [...C.peer.take('ASSIGN'), ...D.peer.take('ASSIGN')]) args.set(a.jobId, a.args.toString());
    const PREFETCHED = 1 << 28;
    const isStarted = (j: { state: string; flags: number }) => j.state === 'RUNNING' && (j.flags & PREFETCHED) === 0;
    const running = () => [...t2.core.jobs.values()].filter((j) => isStarted(j) && !startOrder.includes(args.get(j.id)!));
    for (let round = 0; round < 8 && startOrder.length < 8; round++) {
      for (const j of running()) startOrder.push(args.get(j.id)!);
      for (const [w, peer] of [[C.session, C.peer], [D.session, D.peer]] as const) {
        const mine = [...w.running].find(isStarted);
        if (mine !== undefined) t2.core.handleWorker(w, RESULT(mine.id, mine.attempts));
        for (const a of peer.take('ASSIGN')) args.set(a.jobId, a.args.toString());
      }
    }
    expect(startOrder).toHaveLength(8);
    expect(startOrder.slice(0, 4).every((s) => s.startsWith('high'))).toBe(true);
    expect(startOrder.slice(4).every((s) => s.startsWith('low'))).toBe(true);
  });
});

describe('attempt history', () => {
  it('keeps every failed attempt (worker, times, error) and shows it in STATUS', () => {
    const t = setup();
    const rid = t.submit('k', 'x', { maxRetries: 5, timeoutMs: 500 });
    const id = (t.ackOf(rid) as { jobId: number }).jobId;
    const a = t.worker('A', ['k']);
    expect(a.peer.take('ASSIGN')).toMatchObject([{ attempt: 1 }]);
    t.core.handleWorker(a.session, { type: 'FAIL', jobId: id, attempt: 1, permanent: false, message: 'disk full' });
    t.advance(5000); // backoff over
    expect(a.peer.take('ASSIGN')).toMatchObject([{ attempt: 2 }]);
    t.core.closeSession(a.session, 'bye'); // attempt 2 lost with its worker
    const b = t.worker('B', ['k']);
    t.advance(5000);
    expect(b.peer.take('ASSIGN')).toMatchObject([{ attempt: 3 }]);
    t.advance(600); // attempt 3 times out
    t.core.handleWorker(b.session, { type: 'FAIL', jobId: id, attempt: 3, permanent: false, message: 'abandoned: timeout' });
    t.advance(5000);
    expect(b.peer.take('ASSIGN')).toMatchObject([{ attempt: 4 }]);
    t.core.handleWorker(b.session, RESULT(id, 4, 'done'));
    const reply = t.request({ type: 'STATUS', requestId: t.nextRequestId(), jobId: id });
    const history = (reply as { body: { history?: { attempt: number; worker: string; error: string }[] } }).body.history!;
    expect(history.map((h) => [h.attempt, h.worker])).toEqual([
      [1, 'A'],
      [2, 'A'],
      [3, 'B'],
    ]);
    expect(history[0]!.error).toBe('disk full');
    expect(history[1]!.error).toMatch(/lost/);
    expect(history[2]!.error).toMatch(/timeout/);
  });
});

describe('dispatch over many kinds', () => {
  it('a worker of 1,000 kinds gets the best runnable job among the few kinds that have any', () => {
    const t = setup();
    const kinds = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    const w = t.worker('W', kinds, 1);
    t.submit('k500', 'low', { priority: 1 });
    t.submit('k7', 'high', { priority: 9 });
    t.submit('k999', 'mid', { priority: 5 });
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [a] = w.peer.take('ASSIGN');
      order.push(a!.args.toString());
      t.core.handleWorker(w.session, RESULT(a!.jobId, a!.attempt));
    }
    // The first was assigned as it arrived (the worker was idle); the other two by priority.
    expect(order).toEqual(['low', 'high', 'mid']);
  });
});
