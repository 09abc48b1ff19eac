import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Client, JobResult, nextRequestId, type ConnectOptions, type SubmitItem } from '../../src/client.js';
import { ClosedError, JobCancelledError, JobFailedError, TaskwireError } from '../../src/lib/errors.js';
import { DEFAULT_RETRIES, U32_MAX } from '../../src/lib/protocol.js';
import { FakeScheduler, type FakeSchedulerOptions } from '../helpers/client-fake-scheduler.js';
import { shuffled } from '../helpers/rng.js';
import { closedPort, startScheduler } from '../helpers/scheduler.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function setup(opts: FakeSchedulerOptions = {}, connectOpts: ConnectOptions = {}) {
  const fake = await FakeScheduler.start(opts);
  const client = await Client.connect(fake.address, connectOpts);
  onTestFinished(() => client.destroy());
  return { fake, client };
}

/** The rejection of `p` (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`rejected with a non-Error: ${String(err)}`);
  }
  throw new Error('expected a rejection');
}



describe('Client.connect', () => {
  it('handshakes as a client and exposes the WELCOME', async () => {
    const { fake, client } = await setup({ heartbeatMs: 1234 }, { name: 'tester' });
    expect(client.welcome).toMatchObject({ type: 'WELCOME', heartbeatMs: 1234, serverVersion: 'fake' });
    expect(fake.receivedOf('HELLO')).toEqual([
      { type: 'HELLO', version: 1, role: 'client', name: 'tester', capabilities: [], concurrency: 0 },
    ]);
  });

  it('rejects with UNREACHABLE, the socket error as cause, when nothing listens', async () => {
    const port = await closedPort();
    const err = await rejection(Client.connect(`127.0.0.1:${port}`));
    expect(err).toBeInstanceOf(TaskwireError);
    expect(err).toMatchObject({ code: 'UNREACHABLE', cause: { code: 'ECONNREFUSED' } });
  });

  it('rejects with UNREACHABLE when the peer never answers HELLO', async () => {
    const server = createServer((socket) => socket.on('error', () => undefined));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const sockets: Socket[] = [];
    server.on('connection', (s) => sockets.push(s));
    onTestFinished(() => {
      for (const s of sockets) s.destroy();
      server.close();
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const err = await rejection(Client.connect({ host: '127.0.0.1', port: address.port }, { connectTimeoutMs: 50 }));
    expect(err).toMatchObject({ code: 'UNREACHABLE', cause: { code: 'TIMEOUT' } });
  });

  it("rejects with the scheduler's code when it refuses the handshake", async () => {
    const fake = await FakeScheduler.start({ token: 'sesame' });
    await expect(Client.connect(fake.address)).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    const client = await Client.connect(fake.address, { token: 'sesame' });
    onTestFinished(() => client.destroy());
    expect(fake.receivedOf('HELLO').at(-1)).toMatchObject({ token: 'sesame' });
  });

  it('rejects a malformed address with INVALID_ARGUMENT', async () => {
    await expect(Client.connect('no-port-here')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('Client.submit', () => {
  it('resolves with the result of a job', async () => {
    const { client } = await setup();
    const r = await client.submit('sha256', 'Hello, World!');
    expect(r).toBeInstanceOf(JobResult);
    expect(r.text()).toBe('dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f');
    expect(r.attempt).toBe(1);
    expect(r.id).toBeGreaterThan(0);
    expect((await client.submit('add', [2, 3])).json<number>()).toBe(5);
    expect((await client.submit('echo', Buffer.from([0, 1, 255]))).data).toEqual(Buffer.from([0, 1, 255]));
    expect((await client.submit('echo', { a: [1, 'x'] })).json()).toEqual({ a: [1, 'x'] });
  });

  it('rejects with JobFailedError carrying permanent and attempts', async () => {
    const { client } = await setup();
    const permanent = await rejection(client.submit('divide', [1, 0]));
    expect(permanent).toBeInstanceOf(JobFailedError);
    expect(permanent).toMatchObject({ permanent: true, attempts: 1 });
    const transient = await rejection(client.submit('flaky', 'x'));
    expect(transient).toBeInstanceOf(JobFailedError);
    expect(transient).toMatchObject({ permanent: false, attempts: 3 });
    expect((transient as JobFailedError).jobId).toBeGreaterThan(0);
  });

  it("rejects with the scheduler's error code (BUSY, INVALID_ARGUMENT)", async () => {
    const { fake, client } = await setup();
    fake.refuse = 'BUSY';
    const busy = await rejection(client.submit('sha256', 'x'));
    expect(busy).toBeInstanceOf(TaskwireError);
    expect(busy).toMatchObject({ code: 'BUSY' });
    fake.refuse = 'JOURNAL_UNAVAILABLE';
    await expect(client.enqueue('sha256', 'x')).rejects.toMatchObject({ code: 'JOURNAL_UNAVAILABLE' });
    fake.refuse = undefined;
    await expect(client.submit('', 'x')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    // The connection is still fine.
    expect((await client.submit('add', [1, 1])).json()).toBe(2);
  });

  it('maps options onto SUBMIT: tier, priority, retries, timeouts, key', async () => {
    const { fake, client } = await setup();
    await client.submit('sha256', 'a');
    await client.submit('sha256', 'b', { tier: 'paid', timeoutMs: 500, retries: 2, estMs: 7, delayMs: 9, key: 'k1' });
    await client.submit('sha256', 'c', { tier: 'free' });
    await client.submit('sha256', 'd', { tier: 'paid', priority: 3 });
    const submits = fake.receivedOf('SUBMIT');
    expect(submits.map((m) => m.priority)).toEqual([0, 10, 0, 3]);
    expect(submits[0]).toMatchObject({ timeoutMs: 0, maxRetries: DEFAULT_RETRIES, estMs: 0, delayMs: 0, key: '', wait: true, progress: false });
    expect(submits[1]).toMatchObject({ timeoutMs: 500, maxRetries: 2, estMs: 7, delayMs: 9, key: 'k1' });
    expect(submits[1]!.args.toString()).toBe('b');
  });

  it('rejects bad options locally with INVALID_ARGUMENT, sending nothing', async () => {
    const { fake, client } = await setup({ maxPayloadBytes: 1024 });
    await expect(client.submit('sha256', 'x', { priority: 256 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(client.submit('sha256', 'x', { retries: DEFAULT_RETRIES })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(client.submit('sha256', 'x'.repeat(2000))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(client.submit('x'.repeat(256), 'x')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(fake.receivedOf('SUBMIT')).toEqual([]);
    expect((await client.submit('sha256', 'ok')).text()).toBe(sha256('ok'));
    // At the limit exactly: 22 fixed bytes (str8 lengths included), kind "sha256", no key, 996 of args = 1024.
    expect((await client.submit('sha256', 'y'.repeat(996))).text()).toBe(sha256('y'.repeat(996)));
    await expect(client.submit('sha256', 'y'.repeat(997))).rejects.toThrow(/1025 bytes exceeds the scheduler's maximum of 1024/);
    expect(fake.receivedOf('SUBMIT')).toHaveLength(2);
  });

  it('reports progress to onProgress', async () => {
    const { fake, client } = await setup();
    const seen: Array<[number, string]> = [];
    const r = await client.submit('progress', 'p', { onProgress: (pct, message) => seen.push([pct, message]) });
    expect(r.text()).toBe('p');
    expect(seen).toEqual([[50, 'halfway']]);
    expect(fake.receivedOf('SUBMIT')[0]).toMatchObject({ wait: true, progress: true });
  });

  it('pipelines 1,000 submits and matches answers that arrive out of order', async () => {
    const { fake, client } = await setup({ hold: true });
    const inputs = Array.from({ length: 1000 }, (_, i) => `input ${i}`);
    const pending = inputs.map((s) => client.submit('sha256', s));
    await fake.until(() => fake.held.length === 1000);
    expect(client.pending).toBe(1000);
    fake.release(shuffled([...fake.jobs.keys()], 42));
    const results = await Promise.all(pending);
    expect(results.map((r) => r.text())).toEqual(inputs.map(sha256));
    expect(new Set(results.map((r) => r.id)).size).toBe(1000);
    expect(client.pending).toBe(0);
  });

  it('matches ACKs that come back in a different order than the requests', async () => {
    const { fake, client } = await setup();
    const submits: Array<{ requestId: number; args: Buffer }> = [];
    let reply: ((i: number) => void) | undefined;
    fake.onSubmit = (msg, session) => {
      submits.push({ requestId: msg.requestId, args: Buffer.from(msg.args) });
      reply = (i) => {
        const s = submits[i]!;
        const jobId = 1000 + i;
        session.send({ type: 'ACK', requestId: s.requestId, jobId, existing: false });
        session.send({ type: 'EVENT', jobId, event: 'done', attempt: 1, pct: 0, permanent: false, data: s.args });
      };
    };
    const pending = Array.from({ length: 100 }, (_, i) => client.submit('echo', `n${i}`));
    await fake.until(() => submits.length === 100);
    for (let i = 99; i >= 0; i--) reply!(i);
    const results = await Promise.all(pending);
    expect(results.map((r) => r.text())).toEqual(Array.from({ length: 100 }, (_, i) => `n${i}`));
    expect(results.map((r) => r.id)).toEqual(Array.from({ length: 100 }, (_, i) => 1000 + i));
  });
});

describe('Client.submitMany', () => {
  it('keeps input order, with failures as Error entries', async () => {
    const { client } = await setup();
    const items: SubmitItem[] = Array.from({ length: 300 }, (_, i) =>
      i % 10 === 3 ? { kind: 'divide', args: [i, 0] } : { kind: 'add', args: [i, 1] },
    );
    const results = await client.submitMany(items);
    expect(results).toHaveLength(300);
    results.forEach((r, i) => {
      if (i % 10 === 3) {
        expect(r).toBeInstanceOf(JobFailedError);
        expect(r).toMatchObject({ permanent: true });
      } else {
        expect(r).toBeInstanceOf(JobResult);
        expect((r as JobResult).json()).toBe(i + 1);
      }
    });
  });

  it('keeps input order when outcomes arrive shuffled, never exceeding the window', async () => {
    const { fake, client } = await setup({ hold: true });
    const inputs = Array.from({ length: 200 }, (_, i) => `line ${i}`);
    let maxHeld = 0;
    fake.on('message', () => {
      maxHeld = Math.max(maxHeld, fake.held.length);
    });
    const settled: number[] = [];
    const run = client.submitMany(
      inputs.map((args) => ({ kind: 'sha256', args })),
      { window: 50, onSettled: (done) => settled.push(done) },
    );
    for (let round = 0; round < 4; round++) {
      await fake.until(() => fake.held.length === 50);
      fake.release(shuffled(fake.held.map((j) => j.id), round));
    }
    const results = await run;
    expect(maxHeld).toBe(50);
    expect(results.map((r) => (r instanceof Error ? r : r.text()))).toEqual(inputs.map(sha256));
    expect(settled).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it('takes async iterables, and reports the total once the input ends', async () => {
    const { client } = await setup();
    async function* lines() {
      for (let i = 0; i < 25; i++) yield { kind: 'sha256', args: `l${i}` };
    }
    const calls: Array<[number, number | undefined]> = [];
    const results = await client.submitMany(lines(), { window: 4, onSettled: (d, t) => calls.push([d, t]) });
    expect(results.map((r) => (r instanceof Error ? r : r.text()))).toEqual(
      Array.from({ length: 25 }, (_, i) => sha256(`l${i}`)),
    );
    expect(calls.at(-1)).toEqual([25, 25]);
  });

  it('gives arrays their total from the start', async () => {
    const { client } = await setup();
    const totals = new Set<number | undefined>();
    await client.submitMany([{ kind: 'add', args: [1, 2] }, { kind: 'add', args: [3, 4] }], { onSettled: (_d, t) => totals.add(t) });
    expect([...totals]).toEqual([2]);
  });

  it('puts refused and locally invalid items in their slots', async () => {
    const { fake, client } = await setup();
    const items: SubmitItem[] = [
      { kind: 'add', args: [1, 1] },
      { kind: 'add', args: [1, 1], opts: { priority: 999 } },
      { kind: '', args: 'x' },
      { kind: 'add', args: [2, 2] },
    ];
    const results = await client.submitMany(items);
    expect(results[0]).toBeInstanceOf(JobResult);
    expect(results[1]).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(results[2]).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((results[3] as JobResult).json()).toBe(4);
    expect(fake.receivedOf('SUBMIT')).toHaveLength(3);
  });

  it('rejects when onSettled throws', async () => {
    const { client } = await setup();
    const boom = new Error('listener bug');
    const err = await rejection(
      client.submitMany([{ kind: 'add', args: [1, 1] }], {
        onSettled: () => {
          throw boom;
        },
      }),
    );
    expect(err).toBe(boom);
  });

  it('enqueueMany returns ids in input order', async () => {
    const { fake, client } = await setup({ hold: true });
    const acks = await client.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ kind: 'sha256', args: `${i}` })));
    expect(acks.map((a) => (a instanceof Error ? a : a.id))).toEqual(fake.receivedOf('SUBMIT').map((_m, i) => i + 1));
    expect(fake.receivedOf('SUBMIT').every((m) => !m.wait)).toBe(true);
  });
});

describe('Client.enqueue / wait', () => {
  it('enqueue resolves on ACK; a live key returns the existing job', async () => {
    const { fake, client } = await setup();
    const first = await client.enqueue('never-runs', 'x', { key: 'order-7' });
    expect(first).toEqual({ id: 1, existing: false });
    expect(await client.enqueue('never-runs', 'x', { key: 'order-7' })).toEqual({ id: 1, existing: true });
    expect(fake.receivedOf('SUBMIT').map((m) => m.wait)).toEqual([false, false]);
  });

  it('wait() returns the outcome of a finished job at once', async () => {
    const { client } = await setup();
    const done = await client.submit('sha256', 'w');
    const r = await client.wait(done.id);
    expect(r.text()).toBe(sha256('w'));
    const failed = await rejection(client.submit('divide', [1, 0]));
    const jobId = (failed as JobFailedError).jobId;
    await expect(client.wait(jobId)).rejects.toMatchObject({ name: 'JobFailedError', permanent: true });
  });

  it('wait() follows a job to its end, and several waiters all get it', async () => {
    const { fake, client } = await setup({ hold: true });
    const { id } = await client.enqueue('sha256', 'later');
    const a = client.wait(id);
    const b = client.wait(id);
    await fake.until(() => fake.receivedOf('WATCH').length === 2);
    fake.release();
    expect((await a).text()).toBe(sha256('later'));
    expect((await b).text()).toBe(sha256('later'));
    expect(client.pending).toBe(0);
  });

  it('wait() rejects with NOT_FOUND for an unknown job', async () => {
    const { client } = await setup();
    await expect(client.wait(424242)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('wait({ timeoutMs }) rejects with TIMEOUT and forgets the waiter', async () => {
    const { client } = await setup();
    const { id } = await client.enqueue('never-runs', 'x');
    await expect(client.wait(id, { timeoutMs: 20 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(client.pending).toBe(0);
  });
});

describe('admin requests', () => {
  it('status, cancel, list, workers, stats, compact', async () => {
    const { client } = await setup();
    const done = await client.submit('sha256', 's');
    expect(await client.status(done.id)).toMatchObject({ id: done.id, state: 'DONE', result: sha256('s') });
    await expect(client.status(999)).rejects.toMatchObject({ code: 'NOT_FOUND' });

    const waiting = client.submit('never-runs', 'x');
    const [queued] = await client.list({ state: 'QUEUED' });
    expect(queued).toMatchObject({ kind: 'never-runs', state: 'QUEUED' });
    expect((await client.cancel(queued!.id)).state).toBe('CANCELLED');
    const cancelled = await rejection(waiting);
    expect(cancelled).toBeInstanceOf(JobCancelledError);
    expect(cancelled).toMatchObject({ jobId: queued!.id });
    await expect(client.cancel(done.id)).rejects.toMatchObject({ code: 'INVALID_STATE' });

    expect((await client.list({ kind: 'sha256' })).map((j) => j.id)).toEqual([done.id]);
    expect((await client.list({ limit: 1 })).length).toBe(1);
    expect((await client.workers())[0]).toMatchObject({ name: 'fake-worker' });
    expect((await client.stats()).serverVersion).toBe('fake');
    await expect(client.compact()).rejects.toMatchObject({ code: 'INVALID_STATE' });
  });
});

describe('request ids', () => {
  it('are u32, start at 1, skip 0 and wrap', async () => {
    expect(nextRequestId(1)).toBe(2);
    expect(nextRequestId(U32_MAX - 1)).toBe(U32_MAX);
    expect(nextRequestId(U32_MAX)).toBe(1);
    expect(nextRequestId(0)).toBe(1);

    const { fake, client } = await setup({}, { firstRequestId: U32_MAX - 1 });
    await Promise.all([client.stats(), client.stats(), client.stats()]);
    expect(fake.receivedOf('STATS').map((m) => m.requestId)).toEqual([U32_MAX - 1, U32_MAX, 1]);
  });

  it('start at 1 by default', async () => {
    const { fake, client } = await setup();
    await client.stats();
    await client.submit('add', [1, 2]);
    expect(fake.received.filter((m) => 'requestId' in m).map((m) => ('requestId' in m ? m.requestId : -1))).toEqual([1, 2]);
  });
});

describe('closing', () => {
  it('rejects pending calls with CLOSED when the scheduler drops the connection', async () => {
    const { fake, client } = await setup({ hold: true });
    const one = client.submit('sha256', 'a');
    const many = client.submitMany([{ kind: 'sha256', args: 'b' }, { kind: 'sha256', args: 'c' }]);
    const watch = rejection(client.wait(1));
    await fake.until(() => fake.held.length === 3 && fake.receivedOf('WATCH').length === 1);
    fake.dropConnections();
    const err = await rejection(one);
    expect(err).toBeInstanceOf(ClosedError);
    expect(err).toMatchObject({ code: 'CLOSED' });
    expect(await many).toEqual([expect.objectContaining({ code: 'CLOSED' }), expect.objectContaining({ code: 'CLOSED' })]);
    expect(await watch).toMatchObject({ code: 'CLOSED' });
    expect(client.closed).toBe(true);
    await expect(client.stats()).rejects.toMatchObject({ code: 'CLOSED' });
    expect((await client.submitMany([{ kind: 'sha256', args: 'd' }]))[0]).toMatchObject({ code: 'CLOSED' });
  });

  it('close() lets calls in flight settle, refuses new ones, then ends', async () => {
    const { fake, client } = await setup({ hold: true });
    const pending = [client.submit('sha256', 'a'), client.submit('sha256', 'b')];
    await fake.until(() => fake.held.length === 2);
    const closing = client.close();
    expect(client.close()).toBe(closing);
    await expect(client.submit('sha256', 'c')).rejects.toMatchObject({ code: 'CLOSED' });
    fake.release();
    expect((await Promise.all(pending)).map((r) => r.text())).toEqual([sha256('a'), sha256('b')]);
    await closing;
    expect(client.closed).toBe(true);
  });

  it('close({ timeoutMs }) gives up on calls that do not settle', async () => {
    const { client } = await setup();
    const stuck = rejection(client.submit('never-runs', 'x'));
    await client.enqueue('sha256', 'sync point'); // the SUBMIT before it has been ACKed
    await client.close({ timeoutMs: 20 });
    expect(await stuck).toMatchObject({ code: 'CLOSED' });
  });

  it('destroy() rejects pending calls with CLOSED at once', async () => {
    const { client } = await setup();
    const stuck = client.submit('never-runs', 'x');
    client.destroy();
    await expect(stuck).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('a GOODBYE becomes the cause of the CLOSED rejections', async () => {
    const { fake, client } = await setup();
    const stuck = client.submit('never-runs', 'x');
    await fake.until(() => fake.receivedOf('SUBMIT').length === 1);
    // Play a scheduler shutting down: GOODBYE, then a graceful close.
    for (const session of fake.sessions) {
      session.send({ type: 'GOODBYE', reason: 'shutting down' });
      session.end();
    }
    const err = await rejection(stuck);
    expect(err).toMatchObject({ code: 'CLOSED', cause: { code: 'SHUTTING_DOWN' } });
    await expect(client.stats()).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('against the real Scheduler (no worker needed)', () => {
  async function real(opts: Parameters<typeof startScheduler>[0] = {}) {
    const { scheduler, address } = await startScheduler(opts);
    const client = await Client.connect(address);
    onTestFinished(() => client.destroy());
    return { scheduler, client };
  }

  it('enqueue, idempotency keys, status, list, cancel, wait, stats, workers, compact', async () => {
    const { client } = await real();
    const a = await client.enqueue('sha256', 'a', { tier: 'paid' });
    expect(a.existing).toBe(false);
    const k1 = await client.enqueue('sha256', 'b', { key: 'invoice-1' });
    expect(await client.enqueue('sha256', 'b', { key: 'invoice-1' })).toEqual({ id: k1.id, existing: true });
    expect(await client.status(a.id)).toMatchObject({ id: a.id, kind: 'sha256', state: 'QUEUED', priority: 10 });
    expect((await client.list({ state: 'QUEUED' })).map((j) => j.id).sort()).toEqual([a.id, k1.id].sort());

    const waiting = client.wait(a.id);
    const cancelled = await client.cancel(a.id);
    expect(cancelled.state).toBe('CANCELLED');
    const err = await rejection(waiting);
    expect(err).toBeInstanceOf(JobCancelledError);
    await expect(client.cancel(a.id)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    await expect(client.wait(a.id)).rejects.toBeInstanceOf(JobCancelledError);

    await expect(client.status(987_654)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.wait(987_654)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await client.stats()).totals.submitted).toBe(2);
    expect(await client.workers()).toEqual([]);
    await expect(client.compact()).rejects.toMatchObject({ code: 'INVALID_STATE' });
  });

  it('BUSY when the queue is full, and the connection stays usable', async () => {
    const { client } = await real({ maxQueued: 2 });
    const acks = await client.enqueueMany(Array.from({ length: 4 }, (_, i) => ({ kind: 'sha256', args: `${i}` })));
    expect(acks.slice(0, 2).map((a) => a instanceof Error)).toEqual([false, false]);
    expect(acks[2]).toMatchObject({ code: 'BUSY' });
    expect(acks[3]).toMatchObject({ code: 'BUSY' });
    await expect(client.submit('sha256', 'more')).rejects.toMatchObject({ code: 'BUSY' });
    expect((await client.stats()).totals.queued).toBe(2);
  });

  it('a scheduler shutting down rejects pending calls with CLOSED (cause SHUTTING_DOWN)', async () => {
    const { scheduler, client } = await real();
    const pending = rejection(client.submit('sha256', 'never runs: no worker'));
    await client.status((await client.enqueue('sha256', 'sync')).id); // the SUBMIT above is ACKed by now
    await scheduler.close();
    const err = await pending;
    expect(err).toMatchObject({ code: 'CLOSED', cause: { code: 'SHUTTING_DOWN' } });
    expect(client.closed).toBe(true);
  });
});
