/**
 * The three rules of DESIGN.md over real loopback sockets: peers that stop
 * (SIGSTOP), peers that do not read, large payloads both ways, floods of
 * cheap requests against a deep queue, a stalled event loop, frames too
 * large before and after the handshake, and a graceful stop.
 */
import { once } from 'node:events';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Client } from '../../src/client.js';
import { HEADER_BYTES, U32_MAX } from '../../src/lib/protocol.js';
import { Worker } from '../../src/worker.js';
import { sha256, tempDir } from '../helpers/journal.js';
import { spawnScheduler, spawnTs } from '../helpers/process.js';
import { rawConnect } from '../helpers/raw.js';
import { connectClient, startScheduler } from '../helpers/scheduler.js';
import { waitFor } from '../helpers/wait.js';

function startWorker(address: string, opts: Partial<ConstructorParameters<typeof Worker>[0]> = {}): Worker {
  const worker = new Worker({ server: address, concurrency: 4, ...opts });
  onTestFinished(() => worker.destroy());
  return worker;
}

describe('rule 2: the core knows who is alive', () => {
  it('hands a SIGSTOPped worker’s job to another within 3-4 heartbeat intervals, and assigns it nothing meanwhile', async () => {
    const heartbeatMs = 300;
    const { address, scheduler } = await startScheduler({ heartbeatMs });
    const client = await connectClient(address);
    const stopped = spawnTs('src/worker.ts', ['--server', address, '--name', 'frozen', '-c', 'sha256', '-n', '1', '--processing-ms', '60000', '--log-level', 'silent']);
    await stopped.waitForLine(/connected/);
    const first = await client.enqueue('sha256', 'held', { retries: 1 });
    await waitFor(() => scheduler.core.stats().kinds['sha256']?.running === 1, 'the job to run on the frozen worker');
    const healthy = startWorker(address, { name: 'healthy', capabilities: ['sha256'], concurrency: 4 });
    await healthy.start();
    const t0 = performance.now();
    stopped.proc.kill('SIGSTOP');
    onTestFinished(() => {
      stopped.proc.kill('SIGKILL');
    });
    // Jobs with no retries, submitted while the frozen worker still looks connected: none may be lost on it.
    const others = await Promise.all(Array.from({ length: 20 }, (_, i) => client.submit('sha256', `o${i}`, { retries: 0 })));
    expect(others.map((r) => r.text())).toEqual(Array.from({ length: 20 }, (_, i) => sha256(`o${i}`)));
    const done = await client.wait(first.id);
    const elapsed = performance.now() - t0;
    expect(done.text()).toBe(sha256('held'));
    expect(done.attempt).toBe(2);
    // 3-4 intervals of silence, then a run (7 allows for a loaded machine); before, it took 3-4 intervals + 2 s.
    expect(elapsed).toBeLessThan(heartbeatMs * 7);
  });

  it('carries 200 jobs of 256 KiB arguments and results both ways with a deep window: nobody is dropped as silent', async () => {
    const { address } = await startScheduler({ heartbeatMs: 100 });
    const worker = startWorker(address, { name: 'echo', capabilities: ['echo'], concurrency: 8 });
    worker.handle('echo', (args) => args);
    await worker.start();
    const client = await connectClient(address);
    const big = (i: number) => Buffer.alloc(256 * 1024, i & 0xff);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => client.submit('echo', big(i))));
    expect(results).toHaveLength(200);
    expect(results.every((r, i) => r.data.length === 256 * 1024 && r.data[0] === (i & 0xff))).toBe(true);
  });

  it('closes a client that does not read with SLOW_CONSUMER, keeps its jobs running and retrievable, and serves the others', async () => {
    const lines: string[] = [];
    const { address, port } = await startScheduler({ maxBufferedBytes: 1024 * 1024, readPauseBytes: 256 * 1024, log: (l) => lines.push(l), logLevel: 'info' });
    const worker = startWorker(address, { name: 'w', capabilities: ['big'], concurrency: 8 });
    worker.handle('big', () => Buffer.alloc(64 * 1024, 7));
    await worker.start();
    const raw = await rawConnect(port);
    raw.hello('client');
    await raw.waitFor('WELCOME');
    raw.socket.pause(); // stops reading from here on
    for (let i = 1; i <= 100; i++) {
      raw.send({ type: 'SUBMIT', requestId: i, kind: 'big', args: Buffer.from(String(i)), priority: 0, timeoutMs: 0, maxRetries: 0xffff, estMs: 0, delayMs: 0, key: `slow-${i}`, wait: true, progress: false });
    }
    await waitFor(() => lines.some((l) => l.includes('SLOW_CONSUMER')), 'the slow client to be closed', 10_000);
    const other = await connectClient(address);
    // Its jobs ran to the end and stay retrievable by id (via its keys).
    const again = await other.enqueue('big', 'ignored', { key: 'slow-100' });
    expect(again.existing).toBe(true);
    expect((await other.wait(again.id)).data.length).toBe(64 * 1024);
    expect(lines.some((l) => l.includes('HEARTBEAT_TIMEOUT'))).toBe(false);
    raw.socket.destroy();
  });

  it('keeps serving heartbeats and running jobs through a flood of STATS and LIST against a deep queue', async () => {
    const { address, port, scheduler } = await startScheduler({ heartbeatMs: 100 });
    const client = await connectClient(address);
    const ids = await client.enqueueMany(Array.from({ length: 100_000 }, (_, i) => ({ kind: 'deep', args: String(i) })));
    expect(ids.length).toBe(100_000);
    // A worker holding a long job: it must not be dropped, its job must not be charged an attempt.
    const raw = await rawConnect(port);
    raw.hello('worker', { capabilities: ['hold'], concurrency: 1 });
    await raw.waitFor('WELCOME');
    const held = await client.enqueue('hold', 'x');
    const assign = await raw.waitFor('ASSIGN');
    const flood = await Client.connect(address);
    onTestFinished(() => flood.destroy());
    const started = performance.now();
    const answers = await Promise.all([
      ...Array.from({ length: 1000 }, () => flood.stats()),
      ...Array.from({ length: 10 }, () => flood.listPage({ limit: U32_MAX })),
    ]);
    const floodMs = performance.now() - started;
    expect(answers).toHaveLength(1010);
    const page = answers.at(-1) as Awaited<ReturnType<Client['listPage']>>;
    expect(page.jobs.length).toBeLessThanOrEqual(1000);
    expect(page.total).toBe(100_001);
    expect(raw.closed).toBe(false);
    raw.send({ type: 'RESULT', jobId: assign.jobId, attempt: assign.attempt, result: Buffer.from('fine') });
    const result = await client.wait(held.id);
    expect(result.attempt).toBe(1);
    expect(scheduler.core.stats().connections.workers).toBe(1);
    expect(floodMs).toBeGreaterThan(0);
  });

  it('does not read a stalled event loop as the peers’ silence', async () => {
    const { address, port, scheduler } = await startScheduler({ heartbeatMs: 100 });
    // A peer that keeps talking and never judges us: only the scheduler's verdict is under test.
    const child = spawnTs('test/helpers/chatty-worker.ts', [String(port), '2500']);
    onTestFinished(() => {
      child.proc.kill('SIGKILL');
    });
    await child.waitForLine(/connected/);
    const client = await connectClient(address);
    const job = await client.enqueue('sha256', 'through the stall');
    await waitFor(() => scheduler.core.stats().kinds['sha256']?.running === 1, 'the job to start');
    // Block this process (the scheduler's loop) for 15 heartbeat intervals; the worker keeps sending.
    const until = performance.now() + 1500;
    while (performance.now() < until) {
      /* busy */
    }
    const result = await client.wait(job.id);
    expect(result.attempt).toBe(1);
    expect(result.text()).toBe(sha256('through the stall'));
    expect(scheduler.core.workersInfo().map((w) => w.name)).toEqual(['chatty']);
  });
});

describe('rule 3: bounded frames', () => {
  it('accepts only a small frame before HELLO', async () => {
    const { port } = await startScheduler();
    const raw = await rawConnect(port);
    const header = Buffer.alloc(HEADER_BYTES);
    header[0] = 0x01; // HELLO
    header.writeUInt32BE(1024 * 1024, 1);
    raw.socket.write(header);
    const err = await raw.waitFor('ERROR');
    expect(err.code).toBe('FRAME_TOO_LARGE');
    await raw.waitClosed();
  });

  it('answers a STATUS too large for the client with TOO_LARGE, not a frame it would refuse; LIST carries no results', async () => {
    const maxPayloadBytes = 1024 * 1024;
    const { address, port } = await startScheduler({ maxPayloadBytes });
    const raw = await rawConnect(port);
    raw.hello('worker', { capabilities: ['k'], concurrency: 2 });
    await raw.waitFor('WELCOME');
    const client = await connectClient(address);
    const failing = await client.enqueue('k', 'x', { retries: 0 });
    const a1 = await raw.waitFor('ASSIGN', (m) => m.jobId === failing.id);
    // 900 KB of quotes: JSON doubles every one of them.
    raw.send({ type: 'FAIL', jobId: a1.jobId, attempt: a1.attempt, permanent: true, message: '"'.repeat(900_000) });
    await expect(client.wait(failing.id)).rejects.toMatchObject({ permanent: true });
    await expect(client.status(failing.id)).rejects.toMatchObject({ code: 'TOO_LARGE' });
    const binary = await client.enqueue('k', 'y');
    const a2 = await raw.waitFor('ASSIGN', (m) => m.jobId === binary.id);
    const bytes = Buffer.alloc(900_000, 0xff); // not UTF-8: as JSON text it would be 6x larger
    raw.send({ type: 'RESULT', jobId: a2.jobId, attempt: a2.attempt, result: bytes });
    await client.wait(binary.id);
    const info = await client.status(binary.id);
    expect(info.resultData).toEqual(bytes);
    const page = await client.listPage({});
    expect(page.jobs.map((j) => j.id)).toEqual([binary.id, failing.id]);
    expect(page.jobs[0]).toMatchObject({ resultBytes: 900_000 });
    expect(page.jobs[0]!.result).toBeUndefined();
    expect(page.jobs[1]!.error!.length).toBeLessThan(2000);
  });
});

describe('rule 1: a graceful stop never charges a job an attempt', () => {
  it('lets a running job finish and stores it, and re-queues a longer one uncharged', async () => {
    const dir = await tempDir();
    const first = await spawnScheduler(['--data-dir', dir, '--stop-grace-ms', '1500']);
    const worker = spawnTs('src/worker.ts', ['--server', first.address, '--name', 'w', '-c', 'sha256', '-n', '2', '--processing-ms', '800', '--log-level', 'silent', '--reconnect-max-ms', '200']);
    onTestFinished(() => {
      worker.proc.kill('SIGKILL');
    });
    await worker.waitForLine(/connected/);
    const client = await Client.connect(first.address);
    const short = await client.enqueue('sha256', 'short', { retries: 0 });
    await waitFor(async () => (await client.status(short.id)).state === 'RUNNING', 'the short job to start');
    const exited = once(first.child.proc, 'exit');
    first.child.proc.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    client.destroy();

    const second = await spawnScheduler(['--data-dir', dir, '--stop-grace-ms', '100']);
    const c2 = await Client.connect(second.address);
    onTestFinished(() => c2.destroy());
    const info = await c2.status(short.id);
    expect(info).toMatchObject({ state: 'DONE', attempts: 1 });
    // A job longer than the grace: still running at the stop, so queued again with no attempt charged.
    const w2 = spawnTs('src/worker.ts', ['--server', second.address, '--name', 'w2', '-c', 'sha256', '-n', '1', '--processing-ms', '5000', '--log-level', 'silent']);
    onTestFinished(() => {
      w2.proc.kill('SIGKILL');
    });
    await w2.waitForLine(/connected/);
    const long = await c2.enqueue('sha256', 'long', { retries: 0 });
    await waitFor(async () => (await c2.status(long.id)).state === 'RUNNING', 'the long job to start');
    const exited2 = once(second.child.proc, 'exit');
    second.child.proc.kill('SIGTERM');
    expect((await exited2)[0]).toBe(0);
    c2.destroy();
    w2.proc.kill('SIGKILL');

    const third = await spawnScheduler(['--data-dir', dir]);
    onTestFinished(() => {
      third.child.proc.kill('SIGKILL');
    });
    const c3 = await Client.connect(third.address);
    onTestFinished(() => c3.destroy());
    expect(await c3.status(long.id)).toMatchObject({ state: 'QUEUED', attempts: 0 });
    const w3 = startWorker(third.address, { capabilities: ['sha256'] });
    await w3.start();
    expect((await c3.wait(long.id)).text()).toBe(sha256('long'));
  });
});


describe('frame limits come from WELCOME', () => {
  it('a client takes the scheduler’s limit: a 20 MB result with --max-payload-bytes 32 MiB arrives', async () => {
    const { address, port } = await startScheduler({ maxPayloadBytes: 32 * 1024 * 1024 });
    const raw = await rawConnect(port);
    raw.hello('worker', { capabilities: ['big'], concurrency: 1 });
    await raw.waitFor('WELCOME');
    const client = await connectClient(address);
    const job = await client.enqueue('big', 'x');
    const a = await raw.waitFor('ASSIGN');
    raw.send({ type: 'RESULT', jobId: a.jobId, attempt: a.attempt, result: Buffer.alloc(20_000_000, 1) });
    expect((await client.wait(job.id)).data.length).toBe(20_000_000);
  });
});
