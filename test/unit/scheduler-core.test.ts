import { describe, expect, it } from 'vitest';
import { SchedulerCore, type CoreOptions } from '../../src/lib/scheduler-core.js';
import { FakePeer } from '../helpers/fake-peer.js';
import type { JournalRecord } from '../../src/lib/journal-records.js';
import { DEFAULT_RETRIES, type Message, type SubmitMessage } from '../../src/lib/protocol.js';

function setup(opts: CoreOptions = {}) {
  let now = 1_000_000;
  const core = new SchedulerCore({ now: () => now, random: () => 0.5, retryBaseMs: 100, retryMaxMs: 1000, ...opts });
  const clientPeer = new FakePeer();
  const client = core.openClient('c1', 'test', clientPeer);
  let requestId = 1;
  const submit = (kind: string, args: string, more: Partial<SubmitMessage> = {}) => {
    const msg: SubmitMessage = {
      type: 'SUBMIT', requestId: requestId++, kind, args: Buffer.from(args), priority: 0, timeoutMs: 0,
      maxRetries: DEFAULT_RETRIES, estMs: 0, delayMs: 0, key: '', wait: true, progress: false, ...more,
    };
    core.handleClient(client, msg);
    const reply = clientPeer.sent.at(-1);
    return reply?.type === 'ACK' && reply.requestId === msg.requestId ? reply.jobId : reply;
  };
  const worker = (name: string, capabilities: string[], concurrency = 1) => {
    const peer = new FakePeer();
    const session = core.openWorker(name, { type: 'HELLO', version: 1, role: 'worker', name, capabilities, concurrency }, peer);
    return { peer, session };
  };
  const advance = (ms: number) => {
    now += ms;
    core.tick();
  };
  return { core, client, clientPeer, submit, worker, advance, request: () => requestId++ };
}

const result = (jobId: number, attempt: number, text: string): Message => ({ type: 'RESULT', jobId, attempt, result: Buffer.from(text) });
const fail = (jobId: number, attempt: number, permanent = false): Message => ({ type: 'FAIL', jobId, attempt, permanent, message: 'boom' });

describe('dispatch to a kind whose workers are all busy (issue 9: a submit does not scan them each time)', () => {
  it('a worker that freed up with nothing to run takes the next submit at once', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 1);
    const a = t.submit('k', 'a') as number;
    const b = t.submit('k', 'b') as number; // W is full: the kind is marked saturated
    const [runA] = w.peer.take('ASSIGN');
    expect(runA!.jobId).toBe(a);
    t.core.handleWorker(w.session, result(a, runA!.attempt, 'ok'));
    const [runB] = w.peer.take('ASSIGN');
    expect(runB!.jobId).toBe(b);
    t.core.handleWorker(w.session, result(b, runB!.attempt, 'ok')); // W idle, nothing queued
    const c = t.submit('k', 'c') as number;
    expect(w.peer.take('ASSIGN').map((m) => m.jobId)).toEqual([c]);
  });

  it('with several kinds and workers, a freed worker of another kind still makes a saturated kind look again', () => {
    const t = setup();
    const w1 = t.worker('W1', ['x', 'y'], 1);
    const w2 = t.worker('W2', ['y'], 1);
    const x1 = t.submit('x', 'x1') as number; // W1
    const y1 = t.submit('y', 'y1') as number; // W2
    t.submit('y', 'y2'); // both full: y saturated
    expect(w1.peer.take('ASSIGN').map((m) => m.jobId)).toEqual([x1]);
    const [runY1] = w2.peer.take('ASSIGN');
    expect(runY1!.jobId).toBe(y1);
    t.core.handleWorker(w2.session, result(y1, runY1!.attempt, 'ok')); // W2 takes y2
    const [runY2] = w2.peer.take('ASSIGN');
    t.core.handleWorker(w1.session, result(x1, 1, 'ok')); // W1 idle: nothing of x or y queued
    const y3 = t.submit('y', 'y3'); // W2 is busy with y2; W1 must get it
    expect(w1.peer.take('ASSIGN').map((m) => m.jobId)).toEqual([y3]);
    expect(runY2).toBeDefined();
  });

  it('a new job goes to the worker with a free slot, not into a busy one’s prefetch queue', () => {
    const t = setup();
    const hello = (name: string) => ({ type: 'HELLO' as const, version: 1, role: 'worker' as const, name, capabilities: ['k'], concurrency: 1, prefetch: 4 });
    const p1 = new FakePeer();
    const p2 = new FakePeer();
    const w1 = t.core.openWorker('W1', hello('W1'), p1);
    const w2 = t.core.openWorker('W2', hello('W2'), p2);
    const a = t.submit('k', 'a') as number;
    const b = t.submit('k', 'b') as number;
    const [runA] = p1.take('ASSIGN');
    const [runB] = p2.take('ASSIGN');
    expect([runA!.jobId, runB!.jobId]).toEqual([a, b]); // one each: both busy now
    t.core.handleWorker(w2, result(b, runB!.attempt, 'ok')); // W2 free again, nothing queued
    const c = t.submit('k', 'c') as number;
    expect(p2.take('ASSIGN').map((m) => m.jobId)).toEqual([c]);
    expect(p1.take('ASSIGN')).toHaveLength(0);
    t.core.handleWorker(w1, result(a, runA!.attempt, 'ok'));
    const d = t.submit('k', 'd') as number; // W1 free, W2 busy
    expect(p1.take('ASSIGN').map((m) => m.jobId)).toEqual([d]);
  });

  it('thaw() dispatches what was submitted while frozen', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 2);
    t.core.freeze();
    const a = t.submit('k', 'a') as number;
    expect(w.peer.take('ASSIGN')).toHaveLength(0);
    t.core.thaw();
    expect(w.peer.take('ASSIGN').map((m) => m.jobId)).toEqual([a]);
  });
});

describe('SchedulerCore ordering and routing', () => {
  it('runs paid before free, then shorter estimates first (DESIGN.md ordering)', () => {
    const t = setup();
    const ids = new Map<number, string>();
    for (const [label, priority, estMs] of [['free-10s', 0, 10_000], ['paid-5s', 10, 5_000], ['free-2s', 0, 2_000], ['paid-3s', 10, 3_000]] as const) {
      ids.set(t.submit('sleep', label, { priority, estMs }) as number, label);
    }
    const w = t.worker('W', ['sleep'], 1);
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      const [assign] = w.peer.take('ASSIGN');
      expect(assign).toBeDefined();
      order.push(ids.get(assign!.jobId)!);
      t.core.handleWorker(w.session, result(assign!.jobId, assign!.attempt, 'ok'));
    }
    expect(order).toEqual(['paid-3s', 'paid-5s', 'free-2s', 'free-10s']);
  });

  it('runs new jobs before retries', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 1);
    const first = t.submit('k', 'first') as number;
    const [a1] = w.peer.take('ASSIGN');
    const second = t.submit('k', 'second') as number; // queued behind the running one
    t.core.handleWorker(w.session, fail(first, a1!.attempt)); // first goes to retry backoff
    const [a2] = w.peer.take('ASSIGN');
    expect(a2!.jobId).toBe(second);
    t.advance(10_000); // backoff over: the retry is runnable now
    const third = t.submit('k', 'third') as number;
    t.core.handleWorker(w.session, result(second, a2!.attempt, 'ok'));
    const [a3] = w.peer.take('ASSIGN');
    expect(a3!.jobId).toBe(third);
    t.core.handleWorker(w.session, result(third, a3!.attempt, 'ok'));
    const [a4] = w.peer.take('ASSIGN');
    expect(a4).toMatchObject({ jobId: first, attempt: 2 });
  });

  it('routes a kind only to workers that declared it', () => {
    const t = setup();
    const w1 = t.worker('W1', ['sha256']);
    const w2 = t.worker('W2', ['sha256', 'resize']);
    for (let i = 0; i < 3; i++) t.submit('resize', `img${i}`);
    expect(w1.peer.take('ASSIGN')).toHaveLength(0);
    expect(w2.peer.take('ASSIGN')).toHaveLength(1);
  });

  it('never assigns more than a worker’s concurrency (credits)', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 3);
    for (let i = 0; i < 10; i++) t.submit('k', String(i));
    const assigns = w.peer.take('ASSIGN');
    expect(assigns).toHaveLength(3);
    t.core.handleWorker(w.session, result(assigns[0]!.jobId, 1, 'x'));
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
    expect(t.core.stats().kinds['k']).toMatchObject({ queued: 6, running: 3, done: 1 });
  });

  it('keeps jobs QUEUED while no capable worker is connected', () => {
    const t = setup();
    const id = t.submit('k', 'x') as number;
    t.advance(60_000);
    expect(t.core.jobInfo(t.core.jobs.get(id)!).state).toBe('QUEUED');
  });
});

describe('SchedulerCore failures, timeouts and fencing', () => {
  it('times out an attempt, tells the worker to abandon it, and retries with backoff', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 2);
    const id = t.submit('k', 'x', { timeoutMs: 1000, maxRetries: 1 }) as number;
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
    t.advance(999);
    expect(w.peer.take('ABANDON')).toHaveLength(0);
    t.advance(1);
    expect(w.peer.take('ABANDON')).toEqual([{ type: 'ABANDON', jobId: id, attempt: 1, reason: 'timeout' }]);
    // Backoff with random 0.5: base 100 -> 75 ms.
    t.advance(74);
    expect(w.peer.take('ASSIGN')).toHaveLength(0);
    t.advance(1);
    expect(w.peer.take('ASSIGN')).toMatchObject([{ jobId: id, attempt: 2 }]);
    t.advance(1000);
    expect(w.peer.take('ABANDON')).toHaveLength(1);
    const [event] = t.clientPeer.take('EVENT');
    expect(event).toMatchObject({ jobId: id, event: 'failed', attempt: 2, permanent: false });
    expect(t.core.jobInfo(t.core.jobs.get(id)!)).toMatchObject({ state: 'FAILED', attempts: 2 });
  });

  it('backs off exponentially between retries', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 1);
    const id = t.submit('k', 'x', { maxRetries: 3 }) as number;
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const [a] = w.peer.take('ASSIGN');
      expect(a).toMatchObject({ jobId: id, attempt });
      t.core.handleWorker(w.session, fail(id, attempt));
      let waited = 0;
      while (w.peer.sent.length === 0) {
        t.advance(1);
        waited++;
      }
      delays.push(waited);
    }
    expect(delays).toEqual([75, 150, 300]);
  });

  it('fails a permanent error at once, without retries', () => {
    const t = setup();
    const w = t.worker('W', ['divide'], 1);
    const id = t.submit('divide', '[1,0]') as number;
    t.core.handleWorker(w.session, fail(id, 1, true));
    expect(t.clientPeer.take('EVENT')).toMatchObject([{ jobId: id, event: 'failed', permanent: true, attempt: 1 }]);
  });

  it('ignores a late result from a superseded attempt: DONE exactly once', () => {
    const t = setup();
    const slow = t.worker('SLOW', ['k'], 1);
    const id = t.submit('k', 'x', { timeoutMs: 100 }) as number;
    slow.peer.take('ASSIGN');
    t.advance(100); // attempt 1 times out
    const fast = t.worker('FAST', ['k'], 1);
    t.advance(1000);
    const [a2] = fast.peer.take('ASSIGN');
    expect(a2).toMatchObject({ jobId: id, attempt: 2 });
    t.core.handleWorker(slow.session, result(id, 1, 'late'));
    expect(t.clientPeer.take('EVENT')).toHaveLength(0);
    t.core.handleWorker(fast.session, result(id, 2, 'right'));
    t.core.handleWorker(fast.session, result(id, 2, 'again'));
    const events = t.clientPeer.take('EVENT');
    expect(events).toHaveLength(1);
    expect(events[0]!.data.toString()).toBe('right');
    expect(String(t.core.jobs.get(id)!.outcome)).toBe('right');
  });

  it('hands a lost worker’s jobs to another and counts the loss as a failed attempt', () => {
    const t = setup();
    const w1 = t.worker('W1', ['k'], 5);
    const ids = [t.submit('k', 'a'), t.submit('k', 'b')] as number[];
    expect(w1.peer.take('ASSIGN')).toHaveLength(2);
    const w2 = t.worker('W2', ['k'], 5);
    t.core.closeSession(w1.session, 'heartbeat timeout');
    t.advance(1000);
    const assigns = w2.peer.take('ASSIGN');
    expect(assigns.map((a) => [a.jobId, a.attempt]).sort()).toEqual(ids.map((id) => [id, 2]).sort());
  });

  it('fails a job that kills every worker it touches after its retries', () => {
    const t = setup();
    const id = t.submit('k', 'poison', { maxRetries: 2 }) as number;
    for (let i = 0; i < 3; i++) {
      const w = t.worker(`W${i}`, ['k'], 1);
      t.advance(1000);
      expect(w.peer.take('ASSIGN')).toMatchObject([{ jobId: id, attempt: i + 1 }]);
      t.core.closeSession(w.session, 'crashed');
    }
    expect(t.core.jobInfo(t.core.jobs.get(id)!)).toMatchObject({ state: 'FAILED', attempts: 3 });
  });
});

describe('SchedulerCore client requests', () => {
  it('cancels queued and running jobs; finished ones answer INVALID_STATE', () => {
    const t = setup();
    const queued = t.submit('k', 'q') as number;
    const req = t.request();
    t.core.handleClient(t.client, { type: 'CANCEL', requestId: req, jobId: queued });
    expect(t.clientPeer.take('REPLY')).toMatchObject([{ requestId: req, body: { id: queued, state: 'CANCELLED' } }]);
    expect(t.clientPeer.take('EVENT')).toMatchObject([{ jobId: queued, event: 'cancelled' }]);
    const w = t.worker('W', ['k'], 1);
    expect(w.peer.take('ASSIGN')).toHaveLength(0); // the cancelled job is never assigned
    const running = t.submit('k', 'r') as number;
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
    t.core.handleClient(t.client, { type: 'CANCEL', requestId: t.request(), jobId: running });
    expect(w.peer.take('ABANDON')).toEqual([{ type: 'ABANDON', jobId: running, attempt: 1, reason: 'cancelled' }]);
    // The slot frees only when the worker answers the abandoned attempt.
    t.submit('k', 'next');
    expect(w.peer.take('ASSIGN')).toHaveLength(0);
    t.core.handleWorker(w.session, fail(running, 1));
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
    const again = t.request();
    t.core.handleClient(t.client, { type: 'CANCEL', requestId: again, jobId: running });
    expect(t.clientPeer.take('ERROR')).toMatchObject([{ requestId: again, code: 'INVALID_STATE' }]);
  });

  it('answers NOT_FOUND for unknown ids', () => {
    const t = setup();
    for (const type of ['STATUS', 'CANCEL'] as const) {
      t.core.handleClient(t.client, { type, requestId: 42, jobId: 999 });
      expect(t.clientPeer.take('ERROR')).toMatchObject([{ requestId: 42, code: 'NOT_FOUND' }]);
    }
    t.core.handleClient(t.client, { type: 'WATCH', requestId: 43, jobId: 999, progress: false });
    expect(t.clientPeer.take('ERROR')).toMatchObject([{ requestId: 43, code: 'NOT_FOUND' }]);
  });

  it('holds delayed jobs until their time', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 1);
    t.submit('k', 'later', { delayMs: 500 });
    t.advance(499);
    expect(w.peer.take('ASSIGN')).toHaveLength(0);
    t.advance(1);
    expect(w.peer.take('ASSIGN')).toHaveLength(1);
  });

  it('returns the first job for a repeated idempotency key', () => {
    const t = setup();
    const first = t.submit('k', 'x', { key: 'order-1' });
    const second = t.submit('k', 'y', { key: 'order-1' });
    expect(second).toBe(first);
    expect(t.core.stats().totals.submitted).toBe(1);
  });

  it('answers BUSY past maxQueued', () => {
    const t = setup({ maxQueued: 2 });
    t.submit('k', '1');
    t.submit('k', '2');
    expect(t.submit('k', '3')).toMatchObject({ type: 'ERROR', code: 'BUSY' });
  });

  it('keeps finished jobs bounded by count and age', () => {
    const t = setup({ retainCount: 2, retainMs: 10_000 });
    const w = t.worker('W', ['k'], 10);
    const ids = [1, 2, 3].map((i) => t.submit('k', String(i)) as number);
    for (const a of w.peer.take('ASSIGN')) t.core.handleWorker(w.session, result(a.jobId, a.attempt, 'ok'));
    expect(t.core.jobs.has(ids[0]!)).toBe(false);
    expect(t.core.jobs.has(ids[1]!)).toBe(true);
    t.advance(10_000);
    expect(t.core.jobs.size).toBe(0);
  });

  it('sends the result at once when WATCH names a finished job', () => {
    const t = setup();
    const w = t.worker('W', ['k'], 1);
    const id = t.submit('k', 'x', { wait: false }) as number;
    const [a] = w.peer.take('ASSIGN');
    t.core.handleWorker(w.session, result(id, a!.attempt, 'answer'));
    t.clientPeer.sent = [];
    t.core.handleClient(t.client, { type: 'WATCH', requestId: 9, jobId: id, progress: false });
    expect(t.clientPeer.sent.map((m) => m.type)).toEqual(['ACK', 'EVENT']);
  });

  it('refuses worker messages from a client', () => {
    const t = setup();
    expect(() => t.core.handleClient(t.client, result(1, 1, 'x'))).toThrow(expect.objectContaining({ code: 'BAD_HANDSHAKE' }));
  });
});

describe('SchedulerCore journal', () => {
  it('acknowledges a submit only once its record is durable, and refuses it on a journal error', () => {
    const pending: [JournalRecord, (err: Error | null) => void][] = [];
    const t = setup({ journal: { append: (r, cb) => pending.push([r, cb]) } });
    t.submit('k', 'x');
    expect(t.clientPeer.take('ACK')).toHaveLength(0);
    pending.shift()![1](null);
    expect(t.clientPeer.take('ACK')).toHaveLength(1);
    t.submit('k', 'y');
    pending.shift()![1](new Error('ENOSPC'));
    expect(t.clientPeer.take('ERROR')).toMatchObject([{ code: 'JOURNAL_UNAVAILABLE' }]);
    expect(t.core.stats().totals.queued).toBe(1);
  });

  it('does not let a job be cancelled before its submit is acknowledged', () => {
    const pending: [JournalRecord, (err: Error | null) => void][] = [];
    const t = setup({ journal: { append: (r, cb) => pending.push([r, cb]) } });
    t.submit('k', 'x');
    const jobId = (pending[0]![0] as { id: number }).id;
    const requestId = t.request();
    t.core.handleClient(t.client, { type: 'CANCEL', requestId, jobId });
    expect(t.clientPeer.take('ERROR')).toMatchObject([{ requestId, code: 'NOT_FOUND' }]);
    pending.shift()![1](null);
    expect(t.clientPeer.take('ACK')).toMatchObject([{ jobId }]);
    t.core.handleClient(t.client, { type: 'CANCEL', requestId: t.request(), jobId });
    expect(pending.shift()![0]).toMatchObject({ type: 'cancelled', id: jobId });
  });

  it('rebuilds the same state from a snapshot', () => {
    const records: JournalRecord[] = [];
    const t = setup({ journal: { append: (r, cb) => { records.push(r); cb(null); } } });
    const w = t.worker('W', ['k'], 1);
    const done = t.submit('k', 'a') as number;
    t.core.handleWorker(w.session, result(done, 1, 'A'));
    const running = t.submit('k', 'b') as number;
    const queued = t.submit('k', 'c', { key: 'kc', priority: 7 }) as number;
    const replayed = new SchedulerCore({ now: () => 2_000_000 });
    for (const r of t.core.snapshot()) replayed.replay(r);
    expect(replayed.finishReplay()).toEqual({ queued: 2, finished: 1 });
    const info = (id: number) => replayed.jobInfo(replayed.jobs.get(id)!);
    expect(info(done)).toMatchObject({ state: 'DONE', resultBytes: 1 });
    expect(info(running)).toMatchObject({ state: 'QUEUED', attempts: 1 });
    expect(info(queued)).toMatchObject({ state: 'QUEUED', key: 'kc', priority: 7 });
    // The log replayed after the snapshot repeats records: applying them again changes nothing.
    for (const r of records) replayed.replay(r);
    expect(info(done)).toMatchObject({ state: 'DONE', resultBytes: 1 });
    // New ids continue after the replayed ones.
    const peer = new FakePeer();
    const c = replayed.openClient('c', 'c', peer);
    replayed.handleClient(c, { type: 'SUBMIT', requestId: 1, kind: 'k', args: Buffer.alloc(0), priority: 0, timeoutMs: 0, maxRetries: 0, estMs: 0, delayMs: 0, key: '', wait: false, progress: false });
    expect(peer.sent[0]).toMatchObject({ type: 'ACK', jobId: queued + 1 });
  });
});
