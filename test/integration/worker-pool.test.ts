import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WorkerPool } from '../../src/lib/pool/worker-pool.js';
import { parseWorkerCli, poolProcessArgs } from '../../src/lib/worker-cli.js';
import { spawnTs, type Child } from '../helpers/process.js';
import { closedPort, connectClient, startScheduler } from '../helpers/scheduler.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Resolves with the first match of `re` in the child's stderr (already written or still to come). */
function waitForStderr(child: Child, re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = child.stderr.match(re);
      if (m === null) return false;
      clearTimeout(timer);
      child.proc.stderr!.off('data', onData);
      resolve(m);
      return true;
    };
    const onData = (): void => {
      setImmediate(check); // after the helper's own listener has appended the chunk
    };
    const timer = setTimeout(() => {
      child.proc.stderr!.off('data', onData);
      reject(new Error(`timed out waiting for ${re} on stderr:\n${child.stderr}`));
    }, timeoutMs);
    if (!check()) child.proc.stderr!.on('data', onData);
  });
}

/** Polls a condition the scheduler exposes (there is no event for it), with a deadline. */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Alive and not a zombie (an orphan may wait for a PID 1 that never reaps it). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function spawnPool(address: string, args: string[]): Child {
  return spawnTs('src/worker.ts', ['--server', address, '--log-level', 'info', ...args]);
}

describe('taskwire-worker --processes N', () => {
  it('restarts a process killed with SIGKILL under load: no job lost, none DONE twice', async () => {
    const { address } = await startScheduler();
    const pool = spawnPool(address, ['-w', 'POOL', '--processes', '3', '-c', 'sha256', '-n', '4', '--processing-ms', '15', '--restart-base-ms', '20']);
    await pool.waitForLine(/taskwire worker pool POOL: 3 process\(es\) ready/);
    const victim = Number((await waitForStderr(pool, /POOL-2 started \(pid (\d+)\)/))[1]);
    const client = await connectClient(address);
    expect((await client.workers()).map((w) => w.name).sort()).toEqual(['POOL-1', 'POOL-2', 'POOL-3']);

    const inputs = Array.from({ length: 300 }, (_, i) => `pool job ${i}`);
    const batch = client.submitMany(inputs.map((args) => ({ kind: 'sha256', args })));
    await until('the load runs on POOL-2', async () => (await client.workers()).some((w) => w.name === 'POOL-2' && w.running > 0));
    process.kill(victim, 'SIGKILL');
    const restarted = Number((await waitForStderr(pool, new RegExp(`POOL-2 started \\(pid (?!${victim}\\))(\\d+)\\)`)))[1]);
    expect(restarted).not.toBe(victim);
    expect(pool.stderr).toMatch(/POOL-2 died \(signal SIGKILL\); restarting in \d+ ms/);

    const results = await batch;
    expect(results.map((r) => (r instanceof Error ? r.message : r.text()))).toEqual(inputs.map(sha256));
    // Exactly once: 300 DONE in the scheduler's count, not one more; nothing failed for good.
    expect((await client.stats()).kinds['sha256']).toMatchObject({ done: 300, failed: 0, queued: 0, running: 0 });
    await until('POOL-2 is back', async () => (await client.workers()).filter((w) => w.name === 'POOL-2').length === 1);
    expect(pool.proc.exitCode).toBe(null);
  });

  it('"taskwire workers" shows the pool and the host of each process', async () => {
    const { address } = await startScheduler();
    const pool = spawnPool(address, ['-w', 'TAG', '--processes', '2', '-c', 'sha256']);
    await pool.waitForLine(/taskwire worker pool TAG: 2 process\(es\) ready/);
    const client = await connectClient(address);
    expect((await client.workers()).map((w) => [w.name, w.pool, w.host]).sort()).toEqual([
      ['TAG-1', 'TAG', hostname()],
      ['TAG-2', 'TAG', hostname()],
    ]);
    // --pool names the pool apart from the processes.
    const named = spawnPool(address, ['-w', 'NAMED', '--pool', 'thumbnails', '--processes', '2', '-c', 'sha256']);
    await named.waitForLine(/pool NAMED: 2 process\(es\) ready/);
    const pools = (await client.workers()).filter((w) => w.name.startsWith('NAMED-')).map((w) => w.pool);
    expect(pools).toEqual(['thumbnails', 'thumbnails']);
  });

  it('stops restarting a crash-looping handlers module and exits 1 with the reason', async () => {
    const port = await closedPort(); // the crash comes before any scheduler would matter
    const pool = spawnPool(`127.0.0.1:${port}`, [
      '-w', 'LOOP', '--processes', '2', '--handlers', './test/fixtures/crashing-handlers.mjs',
      '--crash-limit', '2', '--crash-window-ms', '60000', '--restart-base-ms', '10', '--restart-max-ms', '20',
    ]);
    expect(await pool.exited).toBe(1);
    expect(pool.stderr).toMatch(/bug in the handlers module/); // the processes' own stderr comes through
    expect(pool.stderr).toMatch(/^taskwire-worker: LOOP-1 died 2 times within 60000 ms \(last: exit code 1\); not restarting it$/m);
    expect(pool.stderr).toMatch(/^taskwire-worker: LOOP-2 died 2 times within 60000 ms/m);
    expect(pool.stderr).toMatch(/^taskwire-worker: pool LOOP stopped: every process gave up \(LIMIT_EXCEEDED\)$/m);
    expect(pool.stderr.match(/LOOP-1 started/g)).toHaveLength(2);
  });

  it('drains every process on SIGTERM: running jobs finish, queued ones stay, exit 0', async () => {
    const { address } = await startScheduler();
    const pool = spawnPool(address, ['-w', 'DR', '--processes', '2', '-c', 'sha256', '-n', '2', '--processing-ms', '400']);
    await pool.waitForLine(/pool DR: 2 process\(es\) ready/);
    const client = await connectClient(address);
    const inputs = Array.from({ length: 7 }, (_, i) => `drain ${i}`);
    const batch = client.submitMany(inputs.map((args) => ({ kind: 'sha256', args })));
    await until('both processes run 2 jobs', async () => (await client.workers()).every((w) => w.running === 2));
    pool.proc.kill('SIGTERM');
    expect(await pool.exited).toBe(0);
    expect(pool.stderr.match(/draining \(2 job\(s\) running\)/g)).toHaveLength(2);
    expect(pool.stderr).not.toMatch(/restarting in/);
    await until('the pool is gone', async () => (await client.workers()).length === 0);
    expect((await client.stats()).kinds['sha256']).toMatchObject({ done: 4, failed: 0, queued: 3, running: 0 });
    const list = await client.list({ state: 'DONE' });
    expect(list.every((j) => j.attempts === 1)).toBe(true); // drained, not charged
    // The rest wait for the next worker.
    const after = spawnPool(address, ['-w', 'AFTER', '-c', 'sha256']);
    await after.waitForLine(/connected/);
    const results = await batch;
    expect(results.map((r) => (r instanceof Error ? r.message : r.text()))).toEqual(inputs.map(sha256));
  });

  it('SIGHUP replaces the processes one by one without losing or repeating a job', async () => {
    const { address } = await startScheduler();
    const pool = spawnPool(address, ['-w', 'ROLL', '--processes', '2', '-c', 'sha256', '-n', '4', '--processing-ms', '10']);
    await pool.waitForLine(/pool ROLL: 2 process\(es\) ready/);
    const client = await connectClient(address);
    const first = (await client.workers()).map((w) => w.id).sort();
    const inputs = Array.from({ length: 200 }, (_, i) => `roll ${i}`);
    const batch = client.submitMany(inputs.map((args) => ({ kind: 'sha256', args })));
    await until('the load runs', async () => ((await client.stats()).kinds['sha256']?.done ?? 0) > 0);
    pool.proc.kill('SIGHUP');
    await waitForStderr(pool, /rolling restart done/);
    const results = await batch;
    expect(results.map((r) => (r instanceof Error ? r.message : r.text()))).toEqual(inputs.map(sha256));
    expect((await client.stats()).kinds['sha256']).toMatchObject({ done: 200, failed: 0, running: 0 });
    await until('two new sessions', async () => {
      const now = (await client.workers()).map((w) => w.id);
      return now.length === 2 && now.every((id) => !first.includes(id));
    });
    expect(pool.stderr).not.toMatch(/restarting in/); // replaced, not crashed
    const attempts = (await client.list({ state: 'DONE', limit: 1000 })).map((j) => j.attempts);
    expect(attempts.every((a) => a === 1)).toBe(true);
  });

  it('SIGTERM during a rolling restart lets the process already draining finish its job', async () => {
    const { address } = await startScheduler();
    const pool = spawnPool(address, ['-w', 'HUP', '--processes', '1', '-c', 'sha256', '-n', '1', '--processing-ms', '1000']);
    await pool.waitForLine(/pool HUP: 1 process\(es\) ready/);
    const client = await connectClient(address);
    const job = client.submit('sha256', 'long');
    await until('the job runs', async () => (await client.workers())[0]?.running === 1);
    pool.proc.kill('SIGHUP');
    await waitForStderr(pool, /HUP-1: SIGTERM, draining \(1 job\(s\) running\)/); // the old one, once the new one is ready
    pool.proc.kill('SIGTERM');
    expect(await pool.exited).toBe(0);
    expect(pool.stderr).not.toMatch(/again, exiting now/); // no second SIGTERM reached the draining one
    const r = await job;
    expect(r.text()).toBe(sha256('long'));
    expect((await client.status(r.id)).attempts).toBe(1);
  });

  it('its processes drain and exit by themselves when the supervisor is killed with SIGKILL', async () => {
    const { address } = await startScheduler();
    const pool = spawnPool(address, ['-w', 'ORPHAN', '--processes', '2', '-c', 'sha256']);
    await pool.waitForLine(/pool ORPHAN: 2 process\(es\) ready/);
    const pids = [1, 2].map((i) => Number(pool.stderr.match(new RegExp(`ORPHAN-${i} started \\(pid (\\d+)\\)`))![1]));
    const client = await connectClient(address);
    expect((await client.workers()).length).toBe(2);
    pool.proc.kill('SIGKILL');
    await until('both processes have exited', () => !pids.some(alive));
    await until('the scheduler has no workers left', async () => (await client.workers()).length === 0);
  });

  it('loads a --handlers module (path relative to the working directory) in single-process mode too', async () => {
    const { address } = await startScheduler();
    const child = spawnTs('src/worker.ts', ['--server', address, '-w', 'H', '--log-level', 'error', '--handlers', './test/fixtures/upper-handlers.mjs', '-c', 'upper']);
    await child.waitForLine(/taskwire worker H connected/);
    const client = await connectClient(address);
    expect((await client.submit('upper', 'quiet')).text()).toBe('QUIET');
    // A kind the module does not register: a usage error, exit 2.
    const bad = spawnTs('src/worker.ts', ['--server', address, '--handlers', './test/fixtures/upper-handlers.mjs', '-c', 'lower']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr).toMatch(/INVALID_ARGUMENT/);
  });
});

describe('WorkerPool (embedded)', () => {
  it('gives up at once on a refusal no restart can fix: start() rejects, close carries the error', async () => {
    const { address } = await startScheduler({ token: 's3cret' });
    const pool = new WorkerPool({
      processes: 2,
      name: 'AUTH',
      args: ['--server', address, '--log-level', 'silent'],
      env: { ...process.env, TASKWIRE_TOKEN: 'wrong' },
      stdio: 'ignore',
      restartBaseMs: 10,
      crashLimit: 5,
    });
    onTestFinished(() => pool.destroy());
    const giveups: string[] = [];
    pool.on('giveup', ({ name, error }) => giveups.push(`${name} ${error.code}`));
    const closed = once(pool, 'close', { signal: AbortSignal.timeout(10_000) });
    await expect(pool.start()).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    const [err] = (await closed) as [Error | undefined];
    expect(err).toMatchObject({ code: 'AUTH_FAILED' });
    expect(giveups.sort()).toEqual(['AUTH-1 AUTH_FAILED', 'AUTH-2 AUTH_FAILED']); // one death each, no crash loop
    expect(pool.processes.every((p) => p.state === 'stopped' && p.recentDeaths === 1)).toBe(true);
  });

  it('close() drains and resolves once every process has exited; options are checked', async () => {
    const { address } = await startScheduler();
    const pool = new WorkerPool({ processes: 2, name: 'EMB', args: ['--server', address, '--log-level', 'silent'], stdio: 'ignore' });
    onTestFinished(() => pool.destroy());
    const exits: boolean[] = [];
    pool.on('exit', ({ expected }) => exits.push(expected));
    await pool.start();
    expect(pool.processes.map((p) => [p.name, p.state])).toEqual([
      ['EMB-1', 'ready'],
      ['EMB-2', 'ready'],
    ]);
    const client = await connectClient(address);
    expect((await client.workers()).map((w) => [w.name, w.pool]).sort()).toEqual([
      ['EMB-1', 'EMB'],
      ['EMB-2', 'EMB'],
    ]);
    await pool.close();
    expect(exits).toEqual([true, true]);
    expect(() => new WorkerPool({ processes: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new WorkerPool({ processes: 1, args: ['--name', 'x'] })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new WorkerPool({ processes: 1, args: ['--pool=x'] })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('--processes auto is one process per CPU', () => {
    const cli = parseWorkerCli(['--processes', 'auto'], {});
    expect(cli.action === 'run' && cli.processes).toBe(availableParallelism());
  });

  it('poolProcessArgs keeps what every process needs and drops what only the supervisor uses', () => {
    expect(
      poolProcessArgs([
        '-s', 'h:1', '--processes', '3', '-w', 'N', '--pool', 'P', '--token=t', '-c', 'a', 'b', '--crash-limit', '2', '-n4', '--config', 'w.json',
        '--', 'cmd', '--processes', '9',
      ]),
    ).toEqual(['-s', 'h:1', '-c', 'a,b', '-n4', '--config', 'w.json', '--', 'cmd', '--processes', '9']);
  });
});
