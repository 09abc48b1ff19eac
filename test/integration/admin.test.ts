/**
 * Operators' requests (ADMIN, PROTOCOL.md §5.8) over real sockets: retry,
 * bulk retry, pause/resume (journaled, survives a restart), purge, drain,
 * disconnect and promote, with their error cases.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { Client } from '../../src/client.js';
import { PermanentError } from '../../src/lib/errors.js';
import { Scheduler } from '../../src/server.js';
import { Worker } from '../../src/worker.js';
import { sha256, tempDir } from '../helpers/journal.js';
import { spawnTs } from '../helpers/process.js';
import { rawConnect } from '../helpers/raw.js';
import { connectClient, startScheduler } from '../helpers/scheduler.js';
import { waitFor } from '../helpers/wait.js';

function startWorker(address: string, opts: Partial<ConstructorParameters<typeof Worker>[0]> = {}): Worker {
  const worker = new Worker({ server: address, concurrency: 4, ...opts });
  onTestFinished(() => worker.destroy());
  return worker;
}

describe('ADMIN requests', () => {
  it('retries a FAILED job as a new attempt series; refuses DONE and live jobs; bulk-retries by kind', async () => {
    const { address } = await startScheduler();
    let failing = true;
    const worker = startWorker(address, { capabilities: ['flaky', 'sha256'] });
    worker.handle('flaky', (args) => {
      if (failing) throw new PermanentError('down');
      return `ok ${String(args)}`;
    });
    await worker.start();
    const client = await connectClient(address);
    const jobs = await Promise.all([1, 2, 3].map((i) => client.enqueue('flaky', String(i))));
    for (const j of jobs) await expect(client.wait(j.id)).rejects.toMatchObject({ permanent: true });
    const done = await client.submit('sha256', 'x');
    await expect(client.retry(done.id)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    await expect(client.retry(999_999)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.admin({ op: 'retry', jobId: -1 } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(client.admin({ op: 'explode' } as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    failing = false;
    const info = await client.retry(jobs[0]!.id);
    expect(info).toMatchObject({ state: 'QUEUED', attempts: 0 });
    expect((await client.wait(jobs[0]!.id)).text()).toBe('ok 1');
    const bulk = await client.retryMany({ state: 'FAILED', kind: 'flaky' });
    expect(bulk).toEqual({ retried: 2, next: 0 });
    expect((await client.wait(jobs[2]!.id)).text()).toBe('ok 3');
    expect((await client.retryMany({ state: 'FAILED' })).retried).toBe(0);
  });

  it('pauses a kind (nothing dispatched, submits accepted) across a restart, then resumes it', async () => {
    const dir = await tempDir();
    const a = new Scheduler({ host: '127.0.0.1', port: 0, dataDir: dir, logLevel: 'silent' });
    const { port } = await a.listen();
    const client = await Client.connect(`127.0.0.1:${port}`);
    expect(await client.pause('sha256')).toEqual({ kind: 'sha256', paused: true });
    const worker = startWorker(`127.0.0.1:${port}`, { capabilities: ['sha256'] });
    await worker.start();
    const job = await client.enqueue('sha256', 'held');
    expect((await client.stats()).kinds['sha256']).toMatchObject({ queued: 1, running: 0 });
    expect((await client.status(job.id)).state).toBe('QUEUED');
    client.destroy();
    await worker.destroy();
    await a.close();

    const b = new Scheduler({ host: '127.0.0.1', port: 0, dataDir: dir, logLevel: 'silent' });
    const { port: port2 } = await b.listen();
    onTestFinished(() => b.destroy());
    const c2 = await connectClient(`127.0.0.1:${port2}`);
    const w2 = startWorker(`127.0.0.1:${port2}`, { capabilities: ['sha256'] });
    await w2.start();
    expect((await c2.stats()).kinds['sha256']).toMatchObject({ queued: 1, running: 0 }); // still paused
    expect(await c2.resume('sha256')).toEqual({ kind: 'sha256', paused: false });
    expect((await c2.wait(job.id)).text()).toBe(sha256('held'));
  });

  it('purges the QUEUED jobs of a kind, delayed ones included, and leaves the others', async () => {
    const { address } = await startScheduler();
    const client = await connectClient(address);
    const ids = (await client.enqueueMany(Array.from({ length: 25_000 }, (_, i) => ({ kind: 'bulk', args: String(i) })))) as { id: number }[];
    const delayed = await client.enqueue('bulk', 'later', { delayMs: 60_000 });
    const other = await client.enqueue('other', 'keep');
    expect(await client.purge('bulk')).toEqual({ kind: 'bulk', purged: 25_001 });
    expect((await client.status(ids[0]!.id)).state).toBe('CANCELLED');
    expect((await client.status(delayed.id)).state).toBe('CANCELLED');
    expect((await client.status(other.id)).state).toBe('QUEUED');
    expect((await client.stats()).kinds['bulk']).toMatchObject({ queued: 0, delayed: 0 });
    expect(await client.purge('nothing-here')).toEqual({ kind: 'nothing-here', purged: 0 });
  });

  it('drains a worker (no new jobs, running ones finish) and disconnects another (its job goes elsewhere)', async () => {
    const { address, port } = await startScheduler();
    const client = await connectClient(address);
    const raw = await rawConnect(port);
    raw.hello('worker', { name: 'raw', capabilities: ['k'], concurrency: 2 });
    await raw.waitFor('WELCOME');
    const first = await client.enqueue('k', '1');
    const a1 = await raw.waitFor('ASSIGN');
    expect((await client.drain('raw')).draining).toBe(true);
    const second = await client.enqueue('k', '2');
    raw.send({ type: 'RESULT', jobId: a1.jobId, attempt: a1.attempt, result: Buffer.from('r1') });
    expect((await client.wait(first.id)).text()).toBe('r1');
    expect((await client.status(second.id)).state).toBe('QUEUED'); // the draining worker took nothing
    await expect(client.drain('nobody')).rejects.toMatchObject({ code: 'NOT_FOUND' });

    const raw2 = await rawConnect(port);
    raw2.hello('worker', { name: 'raw2', capabilities: ['k'], concurrency: 1 });
    await raw2.waitFor('WELCOME');
    await raw2.waitFor('ASSIGN', (m) => m.jobId === second.id);
    const healthy = startWorker(address, { name: 'healthy', capabilities: ['k'] });
    healthy.handle('k', () => 'from healthy');
    await healthy.start();
    await client.disconnect('raw2');
    await raw2.waitClosed();
    const result = await client.wait(second.id);
    expect(result.text()).toBe('from healthy');
    expect(result.attempt).toBe(2);
  });

  it('promotes a delayed job so it runs now', async () => {
    const { address } = await startScheduler();
    const worker = startWorker(address, { capabilities: ['sha256'] });
    await worker.start();
    const client = await connectClient(address);
    const job = await client.enqueue('sha256', 'soon', { delayMs: 3_600_000 });
    await waitFor(async () => (await client.status(job.id)).notBefore !== undefined, 'the job to be delayed');
    const promoted = await client.promote(job.id);
    expect(promoted.notBefore).toBeUndefined();
    expect((await client.wait(job.id)).text()).toBe(sha256('soon'));
    await expect(client.promote(job.id)).rejects.toMatchObject({ code: 'INVALID_STATE' });
  });
});

describe('client hooks', () => {
  it('submit() tells the job id at the ACK, before the result; STATS shows paused kinds', async () => {
    const { address } = await startScheduler();
    const client = await connectClient(address);
    await client.pause('sha256');
    let acked = 0;
    const pending = client.submit('sha256', 'x', { onAck: (id) => (acked = id) });
    await waitFor(() => acked > 0, 'the ACK');
    expect((await client.status(acked)).state).toBe('QUEUED');
    expect((await client.stats()).kinds['sha256']).toMatchObject({ paused: true, queued: 1 });
    const worker = startWorker(address, { capabilities: ['sha256'] });
    await worker.start();
    await client.resume('sha256');
    expect((await pending).id).toBe(acked);
  });
});

describe('FOLLOW', () => {
  it('streams every state change from now on; taskwire jobs --follow prints them until Ctrl-C', async () => {
    const { address } = await startScheduler();
    const watcher = await connectClient(address);
    const seen: string[] = [];
    await watcher.follow((n) => seen.push(`${n.jobId} ${n.state}`), { kind: 'sha256' });
    const client = await connectClient(address);
    const other = await client.enqueue('other', 'not followed');
    const job = await client.enqueue('sha256', 'followed');
    const worker = startWorker(address, { capabilities: ['sha256'] });
    await worker.start();
    await client.wait(job.id);
    await waitFor(() => seen.includes(`${job.id} DONE`), 'the DONE notice');
    expect(seen).toEqual([`${job.id} QUEUED`, `${job.id} RUNNING`, `${job.id} DONE`]);
    expect(seen.some((l) => l.startsWith(`${other.id} `))).toBe(false);

    const cli = spawnTs('src/client.ts', ['--server', address, 'jobs', '--follow', '--kind', 'sha256']);
    await cli.waitForLine(/job/); // the page's footer
    const next = await client.enqueue('sha256', 'seen by the CLI');
    await cli.waitForLine(new RegExp(`^${next.id} sha256 DONE`, 'm'));
    cli.proc.kill('SIGINT');
    expect(await cli.exited).toBe(130);
  });
});
