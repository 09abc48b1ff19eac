import { createHash } from 'node:crypto';
import { once, type EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { JobFailedError, PermanentError } from '../../src/lib/errors.js';
import { DEFAULT_MAX_PAYLOAD, encode, PROTOCOL_VERSION, type Message } from '../../src/lib/protocol.js';
import { Scheduler } from '../../src/server.js';
import { Worker, type ReconnectInfo, type WorkerOptions } from '../../src/worker.js';
import { spawnTs, type Child } from '../helpers/process.js';
import { RawPeer } from '../helpers/raw.js';
import { connectClient, startScheduler } from '../helpers/scheduler.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function newWorker(address: string, opts: Partial<WorkerOptions> = {}): Worker {
  const worker = new Worker({ server: address, name: 'W', ...opts });
  onTestFinished(() => worker.destroy());
  return worker;
}

async function started(worker: Worker): Promise<Worker> {
  const ready = once(worker, 'ready', { signal: AbortSignal.timeout(5_000) });
  void worker.start();
  await ready;
  return worker;
}


/** Resolves with the first `event` whose payload passes `test`, with a deadline. */
function waitFor<T>(emitter: EventEmitter, event: string, test: (value: T) => boolean = () => true, timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out waiting for "${event}"`));
    }, timeoutMs);
    function listener(value: T): void {
      if (!test(value)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(value);
    }
    emitter.on(event, listener);
  });
}

/** Polls a condition the scheduler exposes (there is no event for it), with a deadline. */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A promise with its resolve function. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function spawnWorker(address: string, args: string[]): Child {
  return spawnTs('src/worker.ts', ['--server', address, '--log-level', 'error', ...args]);
}

describe('Worker, in process', () => {
  it('never runs more handlers at once than its concurrency, and fills every slot', async () => {
    const { address } = await startScheduler();
    const worker = newWorker(address, { concurrency: 3, capabilities: ['hold'] });
    let running = 0;
    let maxRunning = 0;
    let held: (() => void)[] = [];
    let full = deferred();
    worker.handle('hold', async (args) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      if (running === 3) full.resolve();
      await new Promise<void>((resolve) => held.push(resolve));
      running--;
      return args;
    });
    await started(worker);
    const client = await connectClient(address);
    const batch = client.submitMany(Array.from({ length: 12 }, (_, i) => ({ kind: 'hold', args: `job ${i}` })));
    for (let round = 0; round < 4; round++) {
      await full.promise;
      expect(worker.running).toBe(3);
      // A round trip through the scheduler: an ASSIGN over the limit would have been sent by now.
      const w = (await client.workers())[0]!;
      expect(w.running).toBe(3);
      full = deferred();
      const release = held;
      held = [];
      for (const r of release) r();
    }
    const results = await batch;
    expect(results.map((r) => (r instanceof Error ? r : r.text()))).toEqual(Array.from({ length: 12 }, (_, i) => `job ${i}`));
    expect(maxRunning).toBe(3);
  });

  it('streams progress, clamped and de-duplicated, to the client’s onProgress', async () => {
    const { address } = await startScheduler();
    const worker = newWorker(address, { concurrency: 1 });
    worker.handle('steps', async (_args, ctx) => {
      ctx.progress(10, 'started');
      ctx.progress(10, 'started'); // nothing new: not sent again
      await new Promise((resolve) => setImmediate(resolve));
      ctx.progress(42.4, 'rounding');
      ctx.progress(250, 'too far');
      ctx.progress(-3);
      return 'ok';
    });
    await started(worker);
    const client = await connectClient(address);
    const seen: [number, string][] = [];
    const r = await client.submit('steps', '', { onProgress: (pct, message) => seen.push([pct, message]) });
    expect(r.text()).toBe('ok');
    expect(seen).toEqual([
      [10, 'started'],
      [42, 'rounding'],
      [100, 'too far'],
      [0, ''],
    ]);
  });

  it('aborts ctx.signal when the scheduler abandons a timed-out attempt, and frees the slot', async () => {
    const { address } = await startScheduler();
    const worker = newWorker(address, { concurrency: 1 });
    const aborted = deferred();
    let reason: unknown;
    worker.handle('stuck', (_args, ctx) => {
      return new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          reason = ctx.signal.reason;
          aborted.resolve();
          reject(ctx.signal.reason);
        });
      });
    });
    await started(worker);
    const client = await connectClient(address);
    const err = await client.submit('stuck', '', { timeoutMs: 100, retries: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect(err).toMatchObject({ permanent: false, attempts: 1 });
    await aborted.promise;
    expect(reason).toMatchObject({ name: 'AbortError' });
    // concurrency 1: the next job runs only if the abandoned attempt was answered.
    expect((await client.submit('sha256', 'next')).text()).toBe(sha256('next'));
    expect(worker.running).toBe(0);
  });

  it('reconnects with growing backoff to a new scheduler on the same port, resetting after WELCOME', async () => {
    const first = await startScheduler({ heartbeatMs: 200 });
    const worker = newWorker(first.address, { concurrency: 2, reconnectBaseMs: 20, reconnectMaxMs: 80, random: () => 0.5 });
    const aborted = deferred();
    worker.handle('block', (_args, ctx) => new Promise((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => {
        aborted.resolve();
        reject(new Error('aborted'));
      });
    }));
    const attempts: ReconnectInfo[] = [];
    worker.on('reconnecting', (info) => attempts.push(info));
    await started(worker);
    const client = await connectClient(first.address);
    void client.submit('block', '').catch(() => undefined);
    await until('the job runs', () => worker.running === 1);

    const disconnected = waitFor(worker, 'disconnected');
    const thirdTry = waitFor<ReconnectInfo>(worker, 'reconnecting', (i) => i.attempt === 3);
    await first.scheduler.destroy();
    await disconnected;
    await aborted.promise; // the link is gone: the running handler is told to stop
    expect(worker.connected).toBe(false);
    expect(worker.running).toBe(0);
    await thirdTry; // connection refused twice more meanwhile
    // Equal jitter with random() = 0.5: 3/4 of a ceiling that doubles from 20 and stops at 80.
    expect(attempts.slice(0, 3).map((a) => a.delayMs)).toEqual([15, 30, 60]);
    expect(attempts.slice(1).every((a) => a.error !== undefined)).toBe(true);

    const second = new Scheduler({ host: '127.0.0.1', port: first.port, logLevel: 'silent', heartbeatMs: 200 });
    onTestFinished(() => second.destroy());
    const ready = waitFor(worker, 'ready');
    await second.listen();
    await ready;
    const client2 = await connectClient(first.address);
    expect((await client2.submit('sha256', 'again')).text()).toBe(sha256('again'));

    // The counter restarted at WELCOME: the next loss begins again at attempt 1.
    attempts.length = 0;
    const next = waitFor<ReconnectInfo>(worker, 'reconnecting');
    await second.destroy();
    expect(await next).toMatchObject({ attempt: 1, delayMs: 15 });
  });

  it('stops for good when the scheduler refuses its token: start() rejects with AUTH_FAILED, no retry', async () => {
    const { address } = await startScheduler({ token: 's3cret' });
    const worker = newWorker(address, { token: 'wrong', reconnectBaseMs: 1 });
    const retries: ReconnectInfo[] = [];
    worker.on('reconnecting', (info) => retries.push(info));
    const closed = waitFor(worker, 'close');
    await expect(worker.start()).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    await closed;
    expect(retries).toEqual([]);
    expect(worker.connected).toBe(false);
    await worker.drain(); // already stopped: resolves at once
  });

  it('stops for good on BAD_VERSION, and emits error when a later reconnect is refused', async () => {
    // A scheduler that speaks another protocol version answers every HELLO with BAD_VERSION.
    const server = createServer((socket) => {
      socket.once('data', () => {
        socket.end(encode({ type: 'ERROR', requestId: 0, code: 'BAD_VERSION', message: 'version 99 only' }));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const odd = newWorker(`127.0.0.1:${(server.address() as AddressInfo).port}`, { reconnectBaseMs: 1 });
    await expect(odd.start()).rejects.toMatchObject({ code: 'BAD_VERSION' });

    // Accepted first; the scheduler comes back requiring a token: final, reported as 'error'.
    const first = await startScheduler();
    const worker = newWorker(first.address, { reconnectBaseMs: 5, reconnectMaxMs: 10 });
    await started(worker);
    const failed = waitFor<Error>(worker, 'error');
    const closed = waitFor(worker, 'close');
    await first.scheduler.destroy();
    const second = new Scheduler({ host: '127.0.0.1', port: first.port, logLevel: 'silent', token: 's3cret' });
    onTestFinished(() => second.destroy());
    await second.listen();
    expect(await failed).toMatchObject({ code: 'AUTH_FAILED' });
    await closed;
    expect(worker.connected).toBe(false);
  });

  it('gives the slot back when a handler ignores its abort signal past abandonGraceMs, and counts it stuck', async () => {
    const { address } = await startScheduler({ tickMs: 5, heartbeatMs: 50 });
    const worker = newWorker(address, { concurrency: 1, capabilities: ['deaf', 'sha256'], abandonGraceMs: 50 });
    let settle!: () => void;
    let sawAbort = false;
    worker.handle('deaf', (_args, ctx) => {
      ctx.signal.addEventListener('abort', () => (sawAbort = true));
      return new Promise<string>((resolve) => (settle = () => resolve('too late')));
    });
    const stuck = waitFor(worker, 'stuck');
    await started(worker);
    const client = await connectClient(address);
    const err = await client.submit('deaf', '', { timeoutMs: 50, retries: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect(err).toMatchObject({ permanent: false, attempts: 1 });
    // concurrency 1: this runs only once the worker has given the slot back.
    expect((await client.submit('sha256', 'next', { timeoutMs: 5_000 })).text()).toBe(sha256('next'));
    expect(await stuck).toMatchObject({ kind: 'deaf', attempt: 1, stuck: 1 });
    expect(sawAbort).toBe(true);
    expect(worker.stuck).toBe(1);
    expect(worker.running).toBe(0);
    // Every HEARTBEAT carries the count; the scheduler shows it in `workers`.
    await until('the scheduler shows it stuck', async () => (await client.workers())[0]?.stuck === 1);
    settle(); // the late value is dropped, and the handler no longer counts as stuck
    await until('the handler is no longer stuck', () => worker.stuck === 0);
    await until('the scheduler shows it unstuck', async () => (await client.workers())[0]?.stuck === 0);
    expect((await client.submit('sha256', 'still fine')).text()).toBe(sha256('still fine'));
  });

  it('takes its frame limit from WELCOME: a 20 MB job runs when the scheduler allows 32 MiB', async () => {
    const { address } = await startScheduler({ maxPayloadBytes: 32 * 1024 * 1024 });
    const worker = newWorker(address, { concurrency: 1 });
    const disconnected: unknown[] = [];
    worker.on('disconnected', (err) => disconnected.push(err));
    await started(worker);
    const client = await connectClient(address);
    const big = Buffer.alloc(20_000_000, 'a');
    const r = await client.submit('sha256', big, { retries: 0 });
    expect(r.text()).toBe(createHash('sha256').update(big).digest('hex'));
    expect(disconnected).toEqual([]);
    expect(worker.connected).toBe(true);
  });

  it('drain() finishes running jobs and answers them, takes no new ones, and resolves once closed', async () => {
    const { address } = await startScheduler();
    const worker = newWorker(address, { concurrency: 2, capabilities: ['slow'] });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const bothRunning = deferred();
    let running = 0;
    worker.handle('slow', async (args) => {
      if (++running === 2) bothRunning.resolve();
      await gate;
      return args;
    });
    await started(worker);
    const client = await connectClient(address);
    const batch = client.submitMany(['a', 'b', 'c'].map((args) => ({ kind: 'slow', args })));
    await bothRunning.promise;
    let drained = false;
    const closed = waitFor(worker, 'close');
    const drain = worker.drain().then(() => (drained = true));
    await until('the scheduler marks it draining', async () => (await client.workers())[0]?.draining === true);
    expect(drained).toBe(false);
    release();
    await drain;
    await closed;
    expect(worker.connected).toBe(false);
    // 'c' was never assigned to the draining worker: it waits for another one.
    await until('the drained worker is gone', async () => (await client.workers()).length === 0);
    expect((await client.stats()).kinds['slow']).toMatchObject({ done: 2, queued: 1, running: 0 });
    const other = newWorker(address, { name: 'OTHER' });
    other.handle('slow', (args) => args);
    await started(other);
    const results = await batch;
    expect(results.map((r) => (r instanceof Error ? r : r.text()))).toEqual(['a', 'b', 'c']);
    const owners = await Promise.all(results.map(async (r) => (r instanceof Error ? '' : (await client.status(r.id)).worker)));
    expect(owners).toEqual(['W', 'W', 'OTHER']);
  });

  it('after the drain grace, aborts what still runs and fails it retryably', async () => {
    const { address } = await startScheduler({ retryBaseMs: 5 });
    const worker = newWorker(address, { concurrency: 1, capabilities: ['stubborn'] });
    const running = deferred();
    let sawAbort = false;
    worker.handle('stubborn', (_args, ctx) => {
      running.resolve();
      ctx.signal.addEventListener('abort', () => (sawAbort = true));
      return new Promise(() => undefined); // ignores the signal, never settles
    });
    await started(worker);
    const client = await connectClient(address);
    const job = client.submit('stubborn', 'x', { retries: 1 });
    await running.promise;
    await worker.drain(50);
    expect(sawAbort).toBe(true);
    const other = newWorker(address, { name: 'OTHER' });
    other.handle('stubborn', (_args, ctx) => `attempt ${ctx.attempt}`);
    await started(other);
    const r = await job;
    expect(r.text()).toBe('attempt 2');
  });

  it('fails a result larger than the scheduler accepts permanently instead of breaking the link', async () => {
    const { address } = await startScheduler({ maxPayloadBytes: 1024 });
    const worker = newWorker(address);
    worker.handle('huge', () => 'x'.repeat(2000));
    await started(worker);
    const client = await connectClient(address);
    await expect(client.submit('huge', '')).rejects.toMatchObject({ permanent: true, attempts: 1 });
    expect((await client.submit('sha256', 'still connected')).text()).toBe(sha256('still connected'));
    expect(worker.connected).toBe(true);
  });

  it('rejects bad options and capabilities without a handler with INVALID_ARGUMENT', async () => {
    expect(() => new Worker({ server: '127.0.0.1:1', concurrency: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new Worker({ server: 'nonsense' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new Worker({ server: '127.0.0.1:1', failRate: 1.5 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    const worker = new Worker({ server: '127.0.0.1:1', capabilities: ['sha256', 'nope'] });
    await expect(worker.start()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(new Worker({ server: '127.0.0.1:1', capabilities: [] }).start()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('advertises built-ins plus handled kinds by default', async () => {
    const { address } = await startScheduler();
    const worker = newWorker(address);
    worker.handle('extra', () => 1);
    const ready = waitFor<{ capabilities: string[] }>(worker, 'ready');
    void worker.start();
    expect((await ready).capabilities).toEqual(['sha256', 'add', 'subtract', 'multiply', 'divide', 'extra']);
    const client = await connectClient(address);
    expect((await client.workers())[0]!.capabilities).toEqual(['sha256', 'add', 'subtract', 'multiply', 'divide', 'extra']);
  });

  it('destroy() before the first connection stops retrying and resolves start()', async () => {
    const worker = new Worker({ server: '127.0.0.1:1', reconnectBaseMs: 10 });
    const retrying = waitFor(worker, 'reconnecting');
    const start = worker.start();
    await retrying;
    const closed = waitFor(worker, 'close');
    await worker.destroy();
    await start;
    await closed;
    expect(worker.connected).toBe(false);
  });
});

/** A hand-driven scheduler: accepts one worker, answers its HELLO, then the test speaks for it. */
async function rawScheduler(worker: (address: string) => Worker): Promise<{ peer: RawPeer; worker: Worker }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const w = worker(`127.0.0.1:${(server.address() as AddressInfo).port}`);
  const ready = waitFor(w, 'ready');
  const accepted = once(server, 'connection', { signal: AbortSignal.timeout(5_000) });
  void w.start();
  const [socket] = (await accepted) as [Socket];
  onTestFinished(() => {
    socket.destroy();
  });
  const peer = new RawPeer(socket);
  const hello = await peer.waitFor('HELLO');
  expect(hello).toMatchObject({ role: 'worker', version: PROTOCOL_VERSION });
  peer.send({ type: 'WELCOME', version: PROTOCOL_VERSION, serverVersion: 'raw', heartbeatMs: 0, maxPayloadBytes: DEFAULT_MAX_PAYLOAD, sessionId: 'raw1' });
  await ready;
  return { peer, worker: w };
}

const assign = (jobId: number, kind: string, args: string, attempt = 1): Message => ({
  type: 'ASSIGN',
  jobId,
  attempt,
  timeoutMs: 0,
  kind,
  args: Buffer.from(args),
});

describe('Worker against a hand-driven scheduler', () => {
  it('answers every ASSIGN exactly once, echoing the attempt', async () => {
    const abandoned = deferred();
    let finishSlow!: () => void;
    const { peer } = await rawScheduler((address) =>
      newWorker(address, { capabilities: ['sha256', 'divide', 'bad', 'slow'] })
        .handle('bad', () => {
          throw new PermanentError('no');
        })
        .handle('slow', (_args, ctx) => {
          ctx.signal.addEventListener('abort', () => abandoned.resolve());
          return new Promise<string>((resolve) => (finishSlow = () => resolve('late')));
        }),
    );
    peer.send(assign(1, 'sha256', 'a', 4));
    peer.send({ type: 'ABANDON', jobId: 1, attempt: 4, reason: 'timeout' }); // already answered: ignored
    peer.send(assign(2, 'divide', '[1, 0]'));
    peer.send(assign(3, 'bad', ''));
    peer.send(assign(4, 'nope', ''));
    peer.send(assign(5, 'slow', ''));
    peer.send({ type: 'ABANDON', jobId: 5, attempt: 9, reason: 'timeout' }); // another attempt: ignored
    peer.send({ type: 'ABANDON', jobId: 5, attempt: 1, reason: 'cancelled' });
    await abandoned.promise;
    finishSlow();
    peer.send(assign(6, 'sha256', 'b'));
    await peer.waitFor('RESULT', (m) => m.jobId === 6);
    const answers = peer.messages.filter((m) => m.type === 'RESULT' || m.type === 'FAIL');
    expect(answers.map((m) => [m.type, m.jobId, m.attempt, m.type === 'FAIL' ? m.permanent : null])).toEqual([
      ['RESULT', 1, 4, null],
      ['FAIL', 2, 1, true],
      ['FAIL', 3, 1, true],
      ['FAIL', 4, 1, true],
      ['FAIL', 5, 1, false], // abandoned: the handler's late value is not sent as a result
      ['RESULT', 6, 1, null],
    ]);
    expect(answers[0]).toMatchObject({ result: Buffer.from(sha256('a')) });
  });

  it('after ABANDON and the grace, answers the attempt once (retryable) and drops the late settlement', async () => {
    let settle!: () => void;
    const { peer, worker } = await rawScheduler((address) =>
      newWorker(address, { concurrency: 1, capabilities: ['deaf', 'sha256'], abandonGraceMs: 30 }).handle(
        'deaf',
        () => new Promise<string>((resolve) => (settle = () => resolve('late'))),
      ),
    );
    peer.send(assign(1, 'deaf', '', 2));
    await until('the handler runs', () => worker.running === 1);
    peer.send({ type: 'ABANDON', jobId: 1, attempt: 2, reason: 'timeout' });
    peer.send({ type: 'ABANDON', jobId: 1, attempt: 2, reason: 'timeout' }); // repeated: no second grace
    const fail = await peer.waitFor('FAIL', (m) => m.jobId === 1);
    expect(fail).toMatchObject({ attempt: 2, permanent: false });
    expect(worker.stuck).toBe(1);
    expect(worker.running).toBe(0);
    settle();
    peer.send(assign(2, 'sha256', 'after'));
    await peer.waitFor('RESULT', (m) => m.jobId === 2);
    expect(peer.messages.filter((m) => (m.type === 'RESULT' || m.type === 'FAIL') && m.jobId === 1)).toHaveLength(1);
    expect(worker.stuck).toBe(0);
  });

  it('drain: answers an ASSIGN that crossed its GOODBYE before closing', async () => {
    const { peer, worker } = await rawScheduler((address) => newWorker(address, { capabilities: ['sha256'] }));
    const drained = worker.drain();
    await peer.waitFor('GOODBYE');
    const barrier = await peer.waitFor('STATUS');
    // Sent before the scheduler saw the GOODBYE; the barrier's answer comes after it.
    peer.send(assign(7, 'sha256', 'in flight'));
    peer.send({ type: 'ERROR', requestId: barrier.requestId, code: 'NOT_FOUND', message: 'no job 0' });
    const result = await peer.waitFor('RESULT');
    expect(result).toMatchObject({ jobId: 7, attempt: 1, result: Buffer.from(sha256('in flight')) });
    await peer.waitClosed();
    await drained;
  });
});

describe('taskwire-worker CLI', () => {
  it('drains on SIGTERM: running jobs finish, queued ones stay, exit 0', async () => {
    const { address } = await startScheduler();
    const child = spawnWorker(address, ['--name', 'D', '-c', 'sha256', '--concurrency', '4', '--processing-ms', '300']);
    await child.waitForLine(/taskwire worker D connected to 127\.0\.0\.1:\d+/);
    const client = await connectClient(address);
    const inputs = Array.from({ length: 6 }, (_, i) => `drain ${i}`);
    const batch = client.submitMany(inputs.map((args) => ({ kind: 'sha256', args })));
    await until('D runs 4 jobs', async () => (await client.workers())[0]?.running === 4);
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    await until('D is gone', async () => (await client.workers()).length === 0);
    const stats = await client.stats();
    expect(stats.kinds['sha256']).toMatchObject({ done: 4, failed: 0, queued: 2, running: 0 });
    const list = await client.list({ state: 'DONE' });
    expect(list.every((j) => j.worker === 'D' && j.attempts === 1)).toBe(true);
    await started(newWorker(address, { name: 'AFTER', capabilities: ['sha256'] }));
    const results = await batch;
    expect(results.map((r) => (r instanceof Error ? r.message : r.text()))).toEqual(inputs.map(sha256));
  });

  it('-w NAME -c KIND KIND advertises exactly those kinds', async () => {
    const { address } = await startScheduler();
    const child = spawnWorker(address, ['-w', 'W1', '-c', 'add', 'divide', '-n', '3']);
    await child.waitForLine(/taskwire worker W1 connected/);
    const client = await connectClient(address);
    await until('W1 registered', async () => (await client.workers()).length === 1);
    const [w] = await client.workers();
    expect(w).toMatchObject({ name: 'W1', capabilities: ['add', 'divide'], concurrency: 3 });
    expect((await client.submit('divide', [1, 8])).json()).toBe(0.125);
  });

  it('--fail-rate 1 fails every attempt retryably: attempts = retries + 1', async () => {
    const { address } = await startScheduler({ retryBaseMs: 5, retryMaxMs: 10 });
    const child = spawnWorker(address, ['-w', 'FLAKY', '-c', 'sha256', '--fail-rate', '1']);
    await child.waitForLine(/connected/);
    const client = await connectClient(address);
    const err = await client.submit('sha256', 'doomed', { retries: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect(err).toMatchObject({ permanent: false, attempts: 3 });
  });

  it('says "connected" once', async () => {
    const { address } = await startScheduler();
    const child = spawnTs('src/worker.ts', ['--server', address, '-w', 'ONCE']); // default log level: info
    await child.waitForLine(/taskwire worker ONCE connected to 127\.0\.0\.1:\d+ as \S+/);
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(`${child.stdout}${child.stderr}`.match(/connected/g)).toHaveLength(1);
  });

  it('exits 1 with "cannot connect" when the scheduler refuses its token', async () => {
    const { address } = await startScheduler({ token: 's3cret' });
    const child = spawnWorker(address, ['--token', 'wrong', '--reconnect-base-ms', '1']);
    expect(await child.exited).toBe(1);
    expect(child.stderr).toMatch(/^taskwire-worker: cannot connect: .*\(AUTH_FAILED\)$/m);
    expect(child.stdout).toBe('');
  });

  it('exits 2 with usage on stderr for bad command lines, 0 for --help', async () => {
    const bad = [
      ['--concurrency', '0'],
      ['-c', 'sha256', 'nosuchkind'],
      ['--bogus'],
      ['--fail-rate', '2'],
      ['stray-positional'],
      ['--server', 'no-port-here'],
      ['--log-level', 'loud'],
      ['-c'],
      ['-c', 'echo', '--'], // no command after --
      ['--', 'cat'], // a command needs its kinds
      ['-c', 'echo', '--shell', 'cat', '--', 'cat'],
      ['--processes', '0'],
    ];
    const runs = bad.map((args) => spawnTs('src/worker.ts', ['--server', '127.0.0.1:1', ...args]));
    const codes = await Promise.all(runs.map((c) => c.exited));
    expect(codes).toEqual(bad.map(() => 2));
    for (const run of runs) {
      // One line that says what is wrong and where the help is; not the whole usage.
      expect(run.stderr).toMatch(/^taskwire-worker: .+ \(see "taskwire-worker --help"\)\n$/);
      expect(run.stdout).toBe('');
    }
    const help = spawnTs('src/worker.ts', ['--help']);
    expect(await help.exited).toBe(0);
    expect(help.stdout).toMatch(/^Usage: taskwire-worker/);
  });
});
