/**
 * Prefetch with the reference worker over real sockets (PROTOCOL.md §5.4):
 * jobs sent ahead wait on the worker without running past its concurrency,
 * start as slots free, and are given back uncharged when the worker drains.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { Worker } from '../../src/worker.js';
import { connectClient, startScheduler } from '../helpers/scheduler.js';
import { waitFor } from '../helpers/wait.js';

function startWorker(address: string, opts: Partial<ConstructorParameters<typeof Worker>[0]> = {}): Worker {
  const worker = new Worker({ server: address, concurrency: 2, ...opts });
  onTestFinished(() => worker.destroy());
  return worker;
}

describe('prefetch with the reference worker', () => {
  it('never runs more than its concurrency while more jobs wait on it, and each job runs once', async () => {
    const { address, scheduler } = await startScheduler();
    const worker = startWorker(address, { capabilities: ['slow'], concurrency: 2, prefetch: 8 });
    let active = 0;
    let peak = 0;
    let prefetchedSeen = 0;
    const ran: number[] = [];
    worker.handle('slow', async (args) => {
      prefetchedSeen = Math.max(prefetchedSeen, scheduler.core.stats().kinds['slow']?.prefetched ?? 0);
      active++;
      peak = Math.max(peak, active);
      ran.push(Number(args.toString()));
      await new Promise((r) => setImmediate(r));
      active--;
      return 'ok';
    });
    await worker.start();
    const client = await connectClient(address);
    const pending = Array.from({ length: 40 }, (_, i) => client.submit('slow', String(i)));
    const results = await Promise.all(pending);
    expect(results.every((r) => r.text() === 'ok' && r.attempt === 1)).toBe(true);
    expect(peak).toBe(2);
    expect(prefetchedSeen).toBeGreaterThan(0); // jobs did wait on the worker
    expect(ran.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('gives prefetched jobs back when it drains; another worker runs them as attempt 1', async () => {
    const { address, scheduler } = await startScheduler();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const draining = startWorker(address, { name: 'draining', capabilities: ['k'], concurrency: 1, prefetch: 8 });
    draining.handle('k', async () => {
      await gate;
      return 'first';
    });
    await draining.start();
    const client = await connectClient(address);
    const jobs = await Promise.all(Array.from({ length: 5 }, (_, i) => client.enqueue('k', String(i), { retries: 0 })));
    await waitFor(() => scheduler.core.stats().kinds['k']?.prefetched === 4, 'four jobs prefetched on the draining worker');
    // A prefetched job shows QUEUED: it has not started.
    expect((await client.status(jobs[4]!.id)).state).toBe('QUEUED');
    const drained = draining.drain(5_000);
    await waitFor(() => scheduler.core.stats().kinds['k']?.prefetched === 0, 'the prefetched jobs to come back');
    const other = startWorker(address, { name: 'other', capabilities: ['k'], concurrency: 4 });
    other.handle('k', () => 'second');
    await other.start();
    release();
    await drained;
    const results = await Promise.all(jobs.map((j) => client.wait(j.id)));
    expect(results.map((r) => r.text())).toEqual(['first', 'second', 'second', 'second', 'second']);
    expect(results.every((r) => r.attempt === 1)).toBe(true);
  });
});
