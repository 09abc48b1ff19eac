/**
 * The `taskwire` CLI against a real scheduler and worker (in this process,
 * port 0): argument bytes through the real sha256 handler, `jobs` paging,
 * `top`, and the operator commands (retry, pause, resume, purge, drain,
 * promote, --at).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Client } from '../../src/client.js';
import { PermanentError } from '../../src/lib/errors.js';
import { delayUntil } from '../../src/lib/client-cli.js';
import { UsageError } from '../../src/lib/cli.js';
import { Worker } from '../../src/worker.js';
import { ROOT } from '../helpers/process.js';
import { connectClient, startScheduler } from '../helpers/scheduler.js';

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `taskwire ARGS` as a child process to its end (killed after 25 s at the latest). */
async function taskwire(args: string[], input: string | Buffer = ''): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TASKWIRE_')) env[k] = v;
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/client.ts', ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'], timeout: 25_000 });
  proc.stdin.on('error', () => undefined);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  proc.stdin.end(input);
  const [code] = (await once(proc, 'close')) as [number | null];
  return { code, stdout, stderr };
}

async function startWorker(
  address: string,
  opts: Partial<ConstructorParameters<typeof Worker>[0]> = {},
  handlers: Record<string, (args: Buffer) => unknown> = {},
): Promise<Worker> {
  const worker = new Worker({ server: address, concurrency: 4, ...opts });
  for (const [kind, handler] of Object.entries(handlers)) worker.handle(kind, handler);
  onTestFinished(() => worker.destroy());
  const ready = once(worker, 'ready', { signal: AbortSignal.timeout(5_000) });
  void worker.start();
  await ready;
  return worker;
}

/** A scheduler with one built-in worker, and a library client for checking. */
async function setup() {
  const { address, scheduler } = await startScheduler();
  const worker = await startWorker(address, { name: 'live-w' });
  const client = await connectClient(address);
  return { address, scheduler, worker, client, server: ['--server', address] };
}

/** Polls a condition the scheduler exposes (there is no event for it), with a deadline. */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

// Sequential: the scheduler helpers register onTestFinished, which concurrent tests cannot share.
describe('taskwire against a real scheduler', () => {
  it('hashes argument bytes as given: invalid UTF-8 from --file like sha256sum, argv as UTF-8', async () => {
    const { server } = await setup();
    const bytes = Buffer.from([0xff, 0xfe, 0x20, 0x62, 0x61, 0x64]); // printf '\xff\xfe bad'
    const r = await taskwire(['submit', '--file', '-', ...server], Buffer.concat([bytes, Buffer.from('\n')]));
    expect(r).toEqual({ code: 0, stdout: `${sha256(bytes)}\n`, stderr: '' });
    const argv = await taskwire(['submit', 'héllo', 'wörld', ...server]);
    expect(argv.stdout).toBe(`${sha256(Buffer.from('héllo wörld', 'utf8'))}\n`);
  });

  it('jobs: newest first, a page at a time, with a footer saying how many were not shown', async () => {
    const { client, server } = await setup();
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client.enqueue('paging', `p${i}`)).id); // no worker runs it: stays queued
    const first = await taskwire(['jobs', '--kind', 'paging', '--limit', '2', ...server]);
    expect(first.code).toBe(0);
    const idsOf = (out: string): number[] => out.split('\n').filter((l) => /^\d+ +[A-Z]+ /.test(l)).map((l) => Number(l.split(/ +/)[0]));
    const rows = idsOf(first.stdout);
    expect(rows).toEqual([ids[4], ids[3]]);
    const footer = /2 of 5 jobs shown, 3 not shown; next page: taskwire jobs --kind paging --limit 2 --after (\d+)/.exec(first.stdout);
    expect(footer).not.toBeNull();
    const second = await taskwire(['jobs', '--kind', 'paging', '--limit', '2', '--after', footer![1]!, ...server]);
    expect(idsOf(second.stdout)).toEqual([ids[2], ids[1]]);
    const oldest = JSON.parse((await taskwire(['jobs', '--kind', 'paging', '--oldest', '--limit', '1', '--json', ...server])).stdout) as {
      jobs: Array<{ id: number }>;
      total: number;
    };
    expect(oldest.jobs.map((j) => j.id)).toEqual([ids[0]]);
    expect(oldest.total).toBe(5);
    const all = await taskwire(['jobs', '--kind', 'paging', ...server]);
    expect(all.stdout).toMatch(/^5 jobs$/m);
  });

  it('top prints one snapshot of kinds (paused or not) and workers when stdout is not a terminal', async () => {
    const { client, server } = await setup();
    await client.submit('sha256', 'warm');
    await client.enqueue('stuck-kind', 'x');
    await client.pause('stuck-kind');
    const r = await taskwire(['top', ...server]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^KIND +PAUSED +QUEUED +PREFETCHED +RUNNING /m);
    expect(r.stdout).toMatch(/^sha256 +no +0 +0 +0 /m);
    expect(r.stdout).toMatch(/^stuck-kind +yes +1 +0 +0 /m);
    expect(r.stdout).toMatch(/^live-w +0\/4 +active +\d+s ago +1 +0 +sha256,/m);
  });

  it('pause and resume a kind; purge --yes cancels its queued jobs', async () => {
    const { client, server } = await setup();
    expect((await taskwire(['pause', 'add', ...server])).stdout).toBe('add paused\n');
    const queued = await client.enqueue('add', [1, 2]);
    const add2 = await client.enqueue('add', [3, 4]);
    // Paused: the worker gets nothing. (The job would be DONE within milliseconds otherwise.)
    await taskwire(['stats', ...server]);
    expect((await client.status(queued.id)).state).toBe('QUEUED');
    expect(await taskwire(['resume', 'add', '--json', ...server])).toMatchObject({ code: 0, stdout: '{"kind":"add","paused":false}\n' });
    expect((await client.wait(queued.id)).json()).toBe(3);
    expect((await client.wait(add2.id)).json()).toBe(7);

    const a = await client.enqueue('nobody-runs', 'a');
    await client.enqueue('nobody-runs', 'b');
    const refused = await taskwire(['purge', 'nobody-runs', ...server]);
    expect(refused.code).toBe(2);
    expect((await client.status(a.id)).state).toBe('QUEUED');
    expect((await taskwire(['purge', 'nobody-runs', '--yes', ...server])).stdout).toBe('2 queued nobody-runs jobs cancelled\n');
    expect((await client.status(a.id)).state).toBe('CANCELLED');
  });

  it('retry ID and retry --failed run failed jobs again', async () => {
    let fail = true;
    const { client, server, address } = await setup();
    await startWorker(address, { name: 'flaky-w', capabilities: ['flaky'] }, {
      flaky: () => {
        if (fail) throw new PermanentError('not yet');
        return 'ok';
      },
    });
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const { id } = await client.enqueue('flaky', `f${i}`);
      ids.push(id);
      await expect(client.wait(id)).rejects.toThrow('not yet');
    }
    fail = false;
    const one = await taskwire(['retry', String(ids[0]), ...server]);
    expect(one.code).toBe(0);
    expect((await client.wait(ids[0]!)).text()).toBe('ok');
    const many = await taskwire(['retry', '--failed', '--kind', 'flaky', ...server]);
    expect(many).toMatchObject({ code: 0, stdout: '2 failed jobs queued again\n' });
    expect((await client.wait(ids[2]!)).text()).toBe('ok');
    // A job that is not FAILED or CANCELLED cannot be retried: the scheduler's code, exit 1.
    const again = await taskwire(['retry', String(ids[0]), '--json', ...server]);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ code: 'INVALID_STATE' });
  });

  it('submit --at queues a delayed job; promote runs it now', async () => {
    const { client, server } = await setup();
    const at = new Date(Date.now() + 3_600_000).toISOString();
    const r = await taskwire(['submit', '--no-wait', '--at', at, 'later', ...server]);
    expect(r.code).toBe(0);
    const id = Number(r.stdout.trim());
    const info = await client.status(id);
    expect(info.state).toBe('QUEUED');
    expect(Math.abs((info.notBefore ?? 0) - Date.parse(at))).toBeLessThan(5_000);
    expect((await taskwire(['promote', String(id), ...server])).code).toBe(0);
    expect((await client.wait(id)).text()).toBe(sha256('later'));
  });

  it('drain WORKER: the worker takes no new jobs', async () => {
    const { server, address } = await setup();
    const r = await taskwire(['drain', 'live-w', ...server]);
    expect(r).toMatchObject({ code: 0, stdout: 'worker live-w draining (0 running)\n' });
    const check = await Client.connect(address);
    onTestFinished(() => check.destroy());
    await until('the worker shows as draining', async () => (await check.workers()).some((w) => w.name === 'live-w' && w.draining));
    const missing = await taskwire(['drain', 'no-such-worker', '--json', ...server]);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('delayUntil (--at)', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  it('is the delay from now to an ISO time, never negative', () => {
    expect(delayUntil('2030-01-01T00:00:05Z', now)).toBe(5000);
    expect(delayUntil('2030-01-01T01:00:00+01:00', now)).toBe(0);
    expect(delayUntil('2029-12-31T00:00:00Z', now)).toBe(0);
    expect(delayUntil('2030-01-02', now)).toBe(86_400_000);
  });

  it('refuses what is not ISO 8601, or too far ahead for the wire', () => {
    for (const bad of ['tomorrow', '1', 'May 5', '2030-13-45T00:00:00Z', '2031-01-01T00:00:00Z']) {
      expect(() => delayUntil(bad, now), bad).toThrow(UsageError);
    }
  });
});
