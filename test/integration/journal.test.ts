/**
 * Durability (issue 4) end to end: schedulers are separate processes killed
 * with SIGKILL, restarted on the same data directory; workers and clients
 * ride through. The disk-full test injects write errors in-process.
 */
import { EventEmitter, once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Client, type EnqueueResult } from '../../src/client.js';
import { TaskwireError } from '../../src/lib/errors.js';
import type { JournalFaults } from '../../src/lib/journal.js';
import { waitFor } from '../helpers/wait.js';
import { CountingWorker, rng, sha256, tempDir } from '../helpers/journal.js';
import { spawnScheduler, spawnTs, type Child } from '../helpers/process.js';
import { startScheduler } from '../helpers/scheduler.js';

async function connectClient(address: string): Promise<Client> {
  const client = await Client.connect(address);
  return client;
}

/** Connects, retrying while the scheduler is down (UNREACHABLE), up to a deadline. */
async function connectRetry(address: () => string, deadlineMs = 20_000): Promise<Client> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await Client.connect(address(), { connectTimeoutMs: 2_000 });
    } catch (err) {
      if (!(err instanceof TaskwireError) || err.code !== 'UNREACHABLE' || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20)); // reconnect backoff, not synchronisation
    }
  }
}

async function kill9(child: Child): Promise<void> {
  child.proc.kill('SIGKILL');
  await child.exited;
}

function codeOf(err: unknown): string {
  return err instanceof TaskwireError ? err.code : String(err);
}

describe('journal: crash recovery', () => {
  it('recovers 10,000 queued jobs after kill -9; all finish once with correct results', async () => {
    const dir = await tempDir();
    const first = await spawnScheduler(['--data-dir', dir]);
    const client = await connectClient(first.address);
    const N = 10_000;
    const args = Array.from({ length: N }, (_, i) => `job-${i}`);
    const acks = await client.enqueueMany(args.map((a) => ({ kind: 'sha256', args: a })));
    const ids = acks.map((a) => {
      if (a instanceof Error) throw a;
      return a.id;
    });
    expect(new Set(ids).size).toBe(N);
    client.destroy();
    await kill9(first.child);

    const second = await spawnScheduler(['--data-dir', dir]);
    const workers = [new CountingWorker(second.port, 16), new CountingWorker(second.port, 16)];
    await Promise.all(workers.map((w) => w.start()));
    const c2 = await connectClient(second.address);
    const results = await Promise.all(ids.map((id) => c2.wait(id)));
    results.forEach((r, i) => expect(r.text()).toBe(sha256(args[i]!)));
    for (const a of args) {
      expect((workers[0]!.executions.get(a) ?? 0) + (workers[1]!.executions.get(a) ?? 0)).toBe(1);
    }
    const stats = await c2.stats();
    expect(stats.journal?.recordsReplayed).toBe(N);
    // Ids go on from where they were: no reuse after a restart.
    const next = await c2.enqueue('sha256', 'after restart');
    expect(next.id).toBeGreaterThan(Math.max(...ids));
    await c2.close();
  });

  it('keeps every acknowledged job through repeated kill -9 under load; resubmits by key create no duplicates', async () => {
    const seed = Number(process.env.TASKWIRE_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`journal chaos seed ${seed} (TASKWIRE_SEED=${seed} to replay)`);
    const random = rng(seed);
    const dir = await tempDir();
    let sched = await spawnScheduler(['--data-dir', dir]);
    const port = sched.port;
    const address = `127.0.0.1:${port}`;
    const worker = new CountingWorker(port, 8);
    await worker.start();

    const N = 4000;
    const KILLS = 3;
    const thresholds = Array.from({ length: KILLS }, (_, k) => Math.floor(((k + 0.2 + 0.6 * random()) * N) / (KILLS + 1)));
    const items = Array.from({ length: N }, (_, i) => ({ kind: 'sha256', args: `chaos-${i}`, opts: { key: `key-${i}` } }));
    const acked = new Map<number, number>(); // item index -> job id
    const errorCodes = new Set<string>();
    const progress = new EventEmitter();

    const submitter = (async () => {
      let todo = items.map((_, i) => i);
      let client = await connectRetry(() => address);
      while (todo.length > 0) {
        const chunk = todo.slice(0, 100);
        const res = await client.enqueueMany(chunk.map((i) => items[i]!));
        const failed: number[] = [];
        let broken = false;
        res.forEach((r: EnqueueResult | Error, j) => {
          const i = chunk[j]!;
          if (r instanceof Error) {
            errorCodes.add(codeOf(r));
            failed.push(i);
            broken = true;
            return;
          }
          const before = acked.get(i);
          // The same key must always name the same job, across every restart.
          if (before !== undefined) expect(r.id).toBe(before);
          acked.set(i, r.id);
        });
        todo = [...failed, ...todo.slice(chunk.length)];
        progress.emit('acked', acked.size);
        if (broken || client.closed) {
          client.destroy();
          client = await connectRetry(() => address);
        }
      }
      return client;
    })();

    const killer = (async () => {
      for (let k = 0; k < KILLS; k++) {
        while (acked.size < thresholds[k]!) await once(progress, 'acked', { signal: AbortSignal.timeout(30_000) });
        await new Promise((r) => setTimeout(r, random() * 15)); // a random moment, mid-batch
        await kill9(sched.child);
        sched = await spawnScheduler(['--data-dir', dir, '--port', String(port)]);
      }
    })();

    const [client] = await Promise.all([submitter, killer]);
    expect(acked.size).toBe(N);
    // The client saw clear connection errors, nothing else.
    for (const code of errorCodes) expect(['CLOSED', 'UNREACHABLE']).toContain(code);
    const ids = items.map((_, i) => acked.get(i)!);
    expect(new Set(ids).size).toBe(N);
    const results = await Promise.all(ids.map((id) => client.wait(id)));
    results.forEach((r, i) => expect(r.text()).toBe(sha256(items[i]!.args)));
    // Exactly one job per key, DONE; at-least-once execution: a job running (or whose result was
    // not yet durable) at a kill may run again, every job ran at least once.
    for (const it of items) expect(worker.executions.get(it.args) ?? 0).toBeGreaterThanOrEqual(1);
    const statuses = await Promise.all(ids.slice(0, 200).map((id) => client.status(id)));
    for (const s of statuses) expect(s.state).toBe('DONE');
    console.log(`journal chaos: ${KILLS} kills, ${worker.total - N} extra executions, client errors ${[...errorCodes].join(',') || 'none'}`);
    await client.close();
  });

  it('refuses a second scheduler on the same directory', async () => {
    const dir = await tempDir();
    const first = await spawnScheduler(['--data-dir', dir]);
    const refused = spawnTs('src/server.ts', ['--port', '0', '--data-dir', dir]);
    expect(await refused.exited).toBe(1);
    expect(refused.stderr).toContain(dir);
    expect(refused.stderr).toContain(String(first.child.proc.pid));
    // The first one still works.
    const client = await connectClient(first.address);
    expect((await client.stats()).journal?.fsync).toBe('batch');
    await client.close();
  });
});

describe('journal: failing disk', () => {
  it('answers JOURNAL_UNAVAILABLE instead of a false ACK, keeps serving, and recovers', async () => {
    const dir = await tempDir();
    let fault: 'none' | 'enospc' | 'short' = 'none';
    const faults: JournalFaults = {
      write: (bytes) => {
        if (fault === 'enospc') throw Object.assign(new Error('ENOSPC: no space left on device (injected)'), { code: 'ENOSPC' });
        return fault === 'short' ? Math.floor(bytes / 3) : undefined;
      },
    };
    const a = await startScheduler({ dataDir: dir, journalFaults: faults });
    const client = await connectClient(a.address);
    const before = await Promise.all(Array.from({ length: 50 }, (_, i) => client.enqueue('sha256', `early-${i}`)));

    for (const mode of ['enospc', 'short'] as const) {
      fault = mode;
      const refused = await Promise.all(
        Array.from({ length: 5 }, (_, i) => client.enqueue('sha256', `refused-${mode}-${i}`).then(() => 'ACK', codeOf)),
      );
      expect(refused).toEqual(Array(5).fill('JOURNAL_UNAVAILABLE'));
    }
    // A duplicate key arriving while the first SUBMIT is not yet durable shares its fate: no early ACK.
    const twins = await Promise.all([1, 2].map(() => client.enqueue('sha256', 'twin', { key: 'twin' }).then(() => 'ACK', codeOf)));
    expect(twins).toEqual(['JOURNAL_UNAVAILABLE', 'JOURNAL_UNAVAILABLE']);
    // Still serving: reads work, and acknowledged jobs run; but no outcome is reported before it is
    // stored (DESIGN.md rule 1): the jobs stay RUNNING while their records cannot be written.
    const stats = await client.stats();
    expect(stats.totals.queued).toBe(50);
    const worker = new CountingWorker(a.port, 8);
    await worker.start();
    let reported = 0;
    const waits = before.map((b) => client.wait(b.id).then((r) => (reported++, r)));
    await waitFor(() => worker.total >= 50, 'every early job to run');
    await waitFor(async () => (await client.stats()).totals.running === 50, 'all 50 outcomes to be held back');
    expect(reported).toBe(0);
    expect((await client.status(before[0]!.id)).state).toBe('RUNNING');

    fault = 'none'; // space is back: the held outcomes are written again, then reported
    const early = await Promise.all(waits);
    early.forEach((r, i) => expect(r.text()).toBe(sha256(`early-${i}`)));
    expect(worker.total).toBe(50); // not run twice
    const late = await client.enqueue('sha256', 'late');
    const [t1, t2] = await Promise.all([1, 2].map(() => client.enqueue('sha256', 'twin', { key: 'twin' })));
    expect(t2!.id).toBe(t1!.id);
    expect([t1!.existing, t2!.existing]).toEqual([false, true]);
    await client.wait(t1!.id);
    expect((await client.wait(late.id)).text()).toBe(sha256('late'));
    await client.close();
    worker.stop();
    await a.scheduler.destroy();

    // After a restart, everything acknowledged is there (done, or queued again if its result was lost).
    const b = await startScheduler({ dataDir: dir });
    const w2 = new CountingWorker(b.port, 8);
    await w2.start();
    const c2 = await connectClient(b.address);
    for (const [i, ack] of before.entries()) expect((await c2.wait(ack.id)).text()).toBe(sha256(`early-${i}`));
    expect((await c2.wait(late.id)).text()).toBe(sha256('late'));
    const all = await c2.list({ limit: 1000 });
    expect(all.map((j) => j.id).sort((x, y) => x - y)).toEqual([...before.map((x) => x.id), late.id, t1!.id].sort((x, y) => x - y));
    await c2.close();
  });
});

describe('journal: compaction', () => {
  it('compacts under load without losing anything; the size drops; survives kill -9 after', async () => {
    const dir = await tempDir();
    let sched = await spawnScheduler(['--data-dir', dir, '--retain-count', '300']);
    const port = sched.port;
    const address = `127.0.0.1:${port}`;
    const worker = new CountingWorker(port, 8);
    await worker.start();
    const client = await connectClient(address);

    // Phase 1: finished jobs pile up (and are dropped by retention) while compactions run.
    const N1 = 4000;
    const compactions: Promise<{ bytes: number }>[] = [];
    let maxBytes = 0;
    const results = await client.submitMany(
      Array.from({ length: N1 }, (_, i) => ({ kind: 'sha256', args: `c1-${i}` })),
      {
        window: 500,
        onSettled: (n) => {
          if (n % 1000 === 0) {
            compactions.push(
              client.stats().then((s) => {
                maxBytes = Math.max(maxBytes, s.journal!.bytes);
                return client.compact();
              }),
            );
          }
        },
      },
    );
    results.forEach((r, i) => {
      if (r instanceof Error) throw r;
      expect(r.text()).toBe(sha256(`c1-${i}`));
    });
    await Promise.all(compactions);
    const s1 = await client.stats();
    maxBytes = Math.max(maxBytes, s1.journal!.bytes);
    const compacted = await client.compact();
    expect(compacted.compactions).toBeGreaterThanOrEqual(2);
    expect(compacted.bytes).toBeLessThan(maxBytes / 2);

    // Phase 2: queued jobs (no worker) must survive a compaction that runs while more arrive.
    worker.stop();
    const queuedArgs = Array.from({ length: 3000 }, (_, i) => `c2-${i}`);
    const firstHalf = client.enqueueMany(queuedArgs.slice(0, 1500).map((a) => ({ kind: 'sha256', args: a })));
    const compaction = client.compact();
    const secondHalf = client.enqueueMany(queuedArgs.slice(1500).map((a) => ({ kind: 'sha256', args: a })));
    const acks = [...(await firstHalf), ...(await secondHalf)].map((a) => {
      if (a instanceof Error) throw a;
      return a.id;
    });
    await compaction;
    const lastDone = results[results.length - 1] as { id: number };
    client.destroy();
    await kill9(sched.child);

    sched = await spawnScheduler(['--data-dir', dir, '--port', String(port)]);
    const w2 = new CountingWorker(port, 8);
    await w2.start();
    const c2 = await connectClient(address);
    const after = await Promise.all(acks.map((id) => c2.wait(id)));
    after.forEach((r, i) => expect(r.text()).toBe(sha256(queuedArgs[i]!)));
    for (const a of queuedArgs) expect(w2.executions.get(a)).toBe(1);
    // Finished jobs kept by retention are still DONE, and none of phase 1 ran again.
    expect((await c2.status(lastDone.id)).state).toBe('DONE');
    expect(w2.total).toBe(queuedArgs.length);
    await c2.close();
  });

  it('compacts on its own past --compact-bytes and keeps ids unique when every job was dropped', async () => {
    const dir = await tempDir();
    const a = await startScheduler({ dataDir: dir, compactBytes: 20_000, retainCount: 0, tickMs: 5 });
    const worker = new CountingWorker(a.port, 8);
    await worker.start();
    const client = await connectClient(a.address);
    const out = await client.submitMany(Array.from({ length: 1500 }, (_, i) => ({ kind: 'sha256', args: `auto-${i}` })));
    const maxId = Math.max(...out.map((r) => (r instanceof Error ? 0 : r.id)));
    expect(maxId).toBe(1500);
    // The journal is far past 20 kB now: the scheduler's tick starts a compaction on its own.
    let stats = (await client.stats()).journal!;
    for (const deadline = Date.now() + 10_000; stats.compactions === 0 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 10)); // polling STATS with a deadline
      stats = (await client.stats()).journal!;
    }
    expect(stats.compactions).toBeGreaterThanOrEqual(1);
    expect(stats.lastCompactionAt).not.toBeNull();
    await client.compact(); // every job has been dropped: the snapshot holds only the next id
    await client.close();
    worker.stop();
    await a.scheduler.destroy();

    const b = await startScheduler({ dataDir: dir });
    const c2 = await connectClient(b.address);
    expect((await c2.stats()).journal!.bytes).toBeLessThan(100);
    const next = await c2.enqueue('sha256', 'next');
    expect(next.id).toBe(maxId + 1);
    await c2.close();
  });
});
