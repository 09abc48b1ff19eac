import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Client } from '../../src/client.js';
import { JobFailedError } from '../../src/lib/errors.js';
import { PermanentError } from '../../src/lib/errors.js';
import { Worker } from '../../src/worker.js';
import { spawnScheduler, spawnTs, type Child } from '../helpers/process.js';
import { connectClient, startScheduler } from '../helpers/scheduler.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

async function startWorker(address: string, opts: Partial<ConstructorParameters<typeof Worker>[0]> = {}): Promise<Worker> {
  const worker = new Worker({ server: address, concurrency: 4, ...opts });
  onTestFinished(() => worker.destroy());
  const ready = once(worker, 'ready', { signal: AbortSignal.timeout(5_000) });
  void worker.start();
  await ready;
  return worker;
}


/** Polls a condition the scheduler exposes (there is no event for it), with a deadline. */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function spawnWorker(address: string, args: string[]): Child {
  return spawnTs('src/worker.ts', ['--server', address, ...args]);
}

describe('end to end, in process', () => {
  it('runs 1,000 sha256 jobs over 3 workers with correct hashes', async () => {
    const { address } = await startScheduler();
    for (const name of ['W1', 'W2', 'W3']) await startWorker(address, { name, capabilities: ['sha256'] });
    const client = await connectClient(address);
    const inputs = Array.from({ length: 1000 }, (_, i) => `string number ${i} ✓`);
    const results = await client.submitMany(inputs.map((args) => ({ kind: 'sha256', args })));
    expect(results.map((r) => (r instanceof Error ? r : r.text()))).toEqual(inputs.map(sha256));
    const workers = await client.workers();
    expect(workers.map((w) => w.done).reduce((a, b) => a + b, 0)).toBe(1000);
    expect(workers.every((w) => w.done > 0)).toBe(true);
  });

  it('runs the arithmetic kinds and fails division by zero permanently', async () => {
    const { address } = await startScheduler();
    await startWorker(address, { name: 'W', capabilities: ['add', 'subtract', 'multiply', 'divide'] });
    const client = await connectClient(address);
    expect((await client.submit('add', [2, 3])).json()).toBe(5);
    expect((await client.submit('subtract', [2, 3])).json()).toBe(-1);
    expect((await client.submit('multiply', { a: 4, b: 2.5 })).json()).toBe(10);
    expect((await client.submit('divide', [1, 4])).json()).toBe(0.25);
    const err = await client.submit('divide', [1, 0]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect(err).toMatchObject({ permanent: true, attempts: 1 });
  });

  it('routes a kind only to the worker that declared it', async () => {
    const { address } = await startScheduler();
    await startWorker(address, { name: 'W1', capabilities: ['sha256'] });
    await startWorker(address, { name: 'W2', capabilities: ['sha256', 'add'] });
    const client = await connectClient(address);
    const results = await client.submitMany(Array.from({ length: 50 }, (_, i) => ({ kind: 'add', args: [i, 1] })));
    for (const r of results) {
      if (r instanceof Error) throw r;
      expect((await client.status(r.id)).worker).toBe('W2');
    }
  });

  it('times out, retries with backoff, and reports the attempts', async () => {
    const { address } = await startScheduler({ retryBaseMs: 20 });
    const worker = new Worker({ server: address, name: 'W', concurrency: 2 });
    const seen: number[] = [];
    worker.handle('flaky', async (_args, ctx) => {
      seen.push(ctx.attempt);
      if (ctx.attempt < 3) {
        await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      }
      return 'third time lucky';
    });
    onTestFinished(() => worker.destroy());
    const ready = once(worker, 'ready', { signal: AbortSignal.timeout(5_000) });
    void worker.start();
    await ready;
    const client = await connectClient(address);
    const r = await client.submit('flaky', '', { timeoutMs: 100, retries: 3 });
    expect(r.text()).toBe('third time lucky');
    expect(r.attempt).toBe(3);
    expect(seen).toEqual([1, 2, 3]);
  });

  it('fails a handler’s PermanentError at once and other errors after the retries', async () => {
    const { address } = await startScheduler({ retryBaseMs: 5 });
    const worker = new Worker({ server: address, name: 'W', concurrency: 2 });
    worker.handle('bad', () => {
      throw new PermanentError('bad input');
    });
    worker.handle('broken', () => {
      throw new Error('still broken');
    });
    onTestFinished(() => worker.destroy());
    const ready = once(worker, 'ready', { signal: AbortSignal.timeout(5_000) });
    void worker.start();
    await ready;
    const client = await connectClient(address);
    await expect(client.submit('bad', '')).rejects.toMatchObject({ permanent: true, attempts: 1 });
    await expect(client.submit('broken', '', { retries: 2 })).rejects.toMatchObject({ permanent: false, attempts: 3 });
  });

  it('cancels queued and running jobs', async () => {
    const { address } = await startScheduler();
    const worker = new Worker({ server: address, name: 'W', concurrency: 1 });
    let aborted = false;
    worker.handle('block', (_args, ctx) => new Promise((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => {
        aborted = true;
        reject(new Error('aborted'));
      });
    }));
    onTestFinished(() => worker.destroy());
    const ready = once(worker, 'ready', { signal: AbortSignal.timeout(5_000) });
    void worker.start();
    await ready;
    const client = await connectClient(address);
    const running = client.submit('block', '1');
    const queued = client.submit('block', '2');
    running.catch(() => undefined);
    queued.catch(() => undefined);
    const jobs = await (async () => {
      for (;;) {
        const list = await client.list({ kind: 'block' });
        if (list.length === 2 && list.some((j) => j.state === 'RUNNING')) return list;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const runningId = jobs.find((j) => j.state === 'RUNNING')!.id;
    const queuedId = jobs.find((j) => j.state === 'QUEUED')!.id;
    expect((await client.cancel(queuedId)).state).toBe('CANCELLED');
    expect((await client.cancel(runningId)).state).toBe('CANCELLED');
    await expect(running).rejects.toMatchObject({ name: 'JobCancelledError' });
    await expect(queued).rejects.toMatchObject({ name: 'JobCancelledError' });
    await until('the handler saw the abort', () => aborted);
    await expect(client.cancel(runningId)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    await expect(client.status(987_654)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('holds a delayed job until its time', async () => {
    const { address } = await startScheduler();
    await startWorker(address, { name: 'W', capabilities: ['sha256'] });
    const client = await connectClient(address);
    const started = Date.now();
    const r = await client.submit('sha256', 'later', { delayMs: 300 });
    const info = await client.status(r.id);
    expect(info.startedAt! - info.createdAt).toBeGreaterThanOrEqual(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('returns the first job for a repeated idempotency key', async () => {
    const { address } = await startScheduler();
    const client = await connectClient(address);
    const a = await client.enqueue('sha256', 'x', { key: 'order-42' });
    const b = await client.enqueue('sha256', 'y', { key: 'order-42' });
    expect(b).toEqual({ id: a.id, existing: true });
    expect((await client.stats()).totals.submitted).toBe(1);
  });

  it('answers BUSY past --max-queued', async () => {
    const { address } = await startScheduler({ maxQueued: 3 });
    const client = await connectClient(address);
    for (let i = 0; i < 3; i++) await client.enqueue('sha256', String(i));
    await expect(client.enqueue('sha256', 'one too many')).rejects.toMatchObject({ code: 'BUSY' });
  });

  it('runs queued jobs paid before free, then shorter estimates first', async () => {
    const { address } = await startScheduler();
    const client = await connectClient(address);
    const labels = ['free-10s', 'paid-5s', 'free-2s', 'paid-3s'];
    const ids: number[] = [];
    for (const label of labels) {
      const tier = label.startsWith('paid') ? 'paid' : 'free';
      const estMs = Number.parseInt(label.slice(5), 10) * 1000;
      ids.push((await client.enqueue('order', label, { tier, estMs })).id);
    }
    const seen: string[] = [];
    const worker = new Worker({ server: address, name: 'W', concurrency: 1 });
    worker.handle('order', (args) => {
      seen.push(args.toString('utf8'));
      return '';
    });
    onTestFinished(() => worker.destroy());
    void worker.start();
    for (const id of ids) await client.wait(id, { timeoutMs: 5_000 });
    expect(seen).toEqual(['paid-3s', 'paid-5s', 'free-2s', 'free-10s']);
  });

  it('streams progress to a client that asked for it', async () => {
    const { address } = await startScheduler();
    const worker = new Worker({ server: address, name: 'W', concurrency: 1 });
    worker.handle('steps', (_args, ctx) => {
      ctx.progress(50, 'half way');
      return 'done';
    });
    onTestFinished(() => worker.destroy());
    const ready = once(worker, 'ready', { signal: AbortSignal.timeout(5_000) });
    void worker.start();
    await ready;
    const client = await connectClient(address);
    const progress: [number, string][] = [];
    await client.submit('steps', '', { onProgress: (pct, message) => progress.push([pct, message]) });
    expect(progress).toEqual([[50, 'half way']]);
  });
});

describe('end to end, separate processes', () => {
  it('kill -9 of a worker mid-batch: every job still finishes exactly once', async () => {
    const { address } = await startScheduler({ heartbeatMs: 100, retryBaseMs: 10 });
    const workers = ['A', 'B', 'C'].map((name) =>
      spawnWorker(address, ['--name', name, '--capabilities', 'sha256', '--concurrency', '2', '--processing-ms', '100']),
    );
    const client = await connectClient(address);
    await until('3 workers connected', async () => (await client.workers()).length === 3);
    const inputs = Array.from({ length: 30 }, (_, i) => `slow job ${i}`);
    const batch = client.submitMany(inputs.map((args) => ({ kind: 'sha256', args })));
    await until('A holds jobs', async () => (await client.workers()).some((w) => w.name === 'A' && w.running > 0));
    workers[0]!.proc.kill('SIGKILL');
    const results = await batch;
    expect(results.map((r) => (r instanceof Error ? r.message : r.text()))).toEqual(inputs.map(sha256));
    const stats = await client.stats();
    expect(stats.kinds['sha256']).toMatchObject({ done: 30, failed: 0, queued: 0, running: 0 });
    expect((await client.workers()).map((w) => w.name).sort()).toEqual(['B', 'C']);
  });

  it('SIGSTOP a worker: its jobs finish elsewhere, its late results are ignored', async () => {
    const { address } = await startScheduler({ heartbeatMs: 100, retryBaseMs: 10 });
    const stopped = spawnWorker(address, ['--name', 'STOPPED', '-c', 'sha256', '--concurrency', '4', '--processing-ms', '300']);
    const client = await connectClient(address);
    await until('STOPPED connected', async () => (await client.workers()).length === 1);
    const inputs = Array.from({ length: 8 }, (_, i) => `frozen ${i}`);
    const batch = client.submitMany(inputs.map((args) => ({ kind: 'sha256', args })));
    await until('STOPPED holds 4 jobs', async () => (await client.workers())[0]?.running === 4);
    stopped.proc.kill('SIGSTOP');
    onTestFinished(() => {
      stopped.proc.kill('SIGCONT');
    });
    spawnWorker(address, ['--name', 'HEALTHY', '-c', 'sha256', '--concurrency', '4']);
    const results = await batch;
    expect(results.map((r) => (r instanceof Error ? r.message : r.text()))).toEqual(inputs.map(sha256));
    stopped.proc.kill('SIGCONT');
    // Let the stopped worker wake up, find its link gone, and come back.
    await until('STOPPED reconnected', async () => (await client.workers()).some((w) => w.name === 'STOPPED'));
    const stats = await client.stats();
    expect(stats.kinds['sha256']).toMatchObject({ done: 8, running: 0 });
    for (const r of results) {
      if (r instanceof Error) throw r;
      const info = await client.status(r.id);
      expect(info.state).toBe('DONE');
      expect(info.worker).toBe('HEALTHY');
    }
  });

  it('restarting the scheduler: workers reconnect on their own and serve new jobs', async () => {
    const first = await spawnScheduler(['--heartbeat-ms', '200']);
    const port = first.port;
    spawnWorker(first.address, ['--name', 'W', '-c', 'sha256', '--reconnect-base-ms', '50', '--reconnect-max-ms', '200']);
    let client = await Client.connect(first.address);
    await until('W connected', async () => (await client.workers()).length === 1);
    expect((await client.submit('sha256', 'before')).text()).toBe(sha256('before'));
    client.destroy();
    first.child.proc.kill('SIGKILL');
    await first.child.exited;
    const second = await spawnScheduler(['--port', String(port), '--heartbeat-ms', '200']);
    client = await connectClient(second.address);
    await until('W reconnected', async () => (await client.workers()).length === 1, 15_000);
    expect((await client.submit('sha256', 'after')).text()).toBe(sha256('after'));
  });
});
