import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { JobFailedError } from '../../src/lib/errors.js';
import { EX_TEMPFAIL, execHandler, type ExecCommand, type ExecHandlerOptions } from '../../src/lib/exec-handler.js';
import { Worker } from '../../src/worker.js';
import { spawnTs } from '../helpers/process.js';
import { connectClient, startScheduler } from '../helpers/scheduler.js';

/** A worker of concurrency 2 that runs `command` for kind `run`. */
async function execWorker(address: string, command: ExecCommand, opts: ExecHandlerOptions = {}): Promise<Worker> {
  const worker = new Worker({ server: address, name: 'X', concurrency: 2, capabilities: ['run'] });
  onTestFinished(() => worker.destroy());
  worker.handle('run', execHandler(command, opts));
  const ready = once(worker, 'ready', { signal: AbortSignal.timeout(5_000) });
  void worker.start();
  await ready;
  return worker;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'taskwire-exec-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Alive and not a zombie (a killed orphan may wait for a PID 1 that never reaps it). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls a condition with a deadline (no event exists for it). */
async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('execHandler: a command per job', () => {
  it('feeds the args on stdin and returns stdout, with the job in its environment', async () => {
    const { address } = await startScheduler();
    await execWorker(address, {
      shell: 'tr a-z A-Z; printf " %s/%s/%s" "$TASKWIRE_JOB_ID" "$TASKWIRE_ATTEMPT" "$TASKWIRE_KIND"',
    });
    const client = await connectClient(address);
    const r = await client.submit('run', 'hello');
    expect(r.text()).toBe(`HELLO ${r.id}/1/run`);
    // Binary in, binary out, no shell: every byte survives.
    const bytes = Buffer.from([0, 255, 10, 13, 128, 1]);
    const { address: a2 } = await startScheduler();
    await execWorker(a2, { argv: ['cat'] });
    const c2 = await connectClient(a2);
    expect((await c2.submit('run', bytes)).data).toEqual(bytes);
  });

  it('exit 75 is retried; the next attempt can succeed', async () => {
    const { address } = await startScheduler({ retryBaseMs: 5, retryMaxMs: 10 });
    await execWorker(address, {
      argv: ['python3', '-c', `import os, sys\nif os.environ["TASKWIRE_ATTEMPT"] == "1":\n    print("busy, later", file=sys.stderr)\n    sys.exit(${EX_TEMPFAIL})\nprint("ok on", os.environ["TASKWIRE_ATTEMPT"], end="")`],
    });
    const client = await connectClient(address);
    const r = await client.submit('run', '', { retries: 2 });
    expect(r.text()).toBe('ok on 2');
    expect((await client.status(r.id)).attempts).toBe(2);
  });

  it('any other exit code fails permanently, without retry, with the tail of stderr as the error', async () => {
    const { address } = await startScheduler({ retryBaseMs: 5 });
    await execWorker(address, {
      argv: ['python3', '-c', 'import sys\nfor i in range(100): print(f"line {i}", file=sys.stderr)\nsys.exit(3)'],
    });
    const client = await connectClient(address);
    const err = await client.submit('run', '', { retries: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect(err).toMatchObject({ permanent: true, attempts: 1 });
    const message = (err as Error).message;
    expect(message).toContain('exit code 3');
    expect(message).toContain('line 99');
    expect(message).toContain('line 80'); // the last 20 lines
    expect(message).not.toContain('line 79');
  });

  it('a retryable failure that keeps failing ends FAILED after its retries', async () => {
    const { address } = await startScheduler({ retryBaseMs: 5, retryMaxMs: 10 });
    await execWorker(address, { shell: `echo "try again" >&2; exit ${EX_TEMPFAIL}` });
    const client = await connectClient(address);
    const err = await client.submit('run', '', { retries: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ permanent: false, attempts: 2 });
    expect((err as Error).message).toContain('try again');
  });

  it('on timeout, kills the command and everything it started: SIGTERM, then SIGKILL after the grace', async () => {
    const { address } = await startScheduler({ tickMs: 5 });
    const dir = tempDir();
    const pids = join(dir, 'pids');
    // sh, a child sleep, and a grandchild that ignores SIGTERM (only SIGKILL stops it).
    const worker = await execWorker(
      address,
      { shell: `echo $$ >> ${pids}; sleep 100 & echo $! >> ${pids}; (trap '' TERM; sleep 100 & echo $! >> ${pids}; wait) & echo $! >> ${pids}; wait` },
      { killGraceMs: 100 },
    );
    const client = await connectClient(address);
    const job = client.submit('run', '', { timeoutMs: 400, retries: 0 }).catch((e: unknown) => e);
    await until('the command has started its processes', () => {
      try {
        return readFileSync(pids, 'utf8').trim().split('\n').length === 4;
      } catch {
        return false;
      }
    });
    const started = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    expect(started.every(alive)).toBe(true);
    const err = await job;
    expect(err).toMatchObject({ permanent: false, attempts: 1 });
    await until('every process of the job is gone', () => !started.some(alive));
    await until('the slot is free', () => worker.running === 0);
    expect(worker.stuck).toBe(0);
  });

  it('output over the frame limit fails the attempt permanently and stops the command', async () => {
    const { address } = await startScheduler({ maxPayloadBytes: 64 * 1024 });
    const worker = await execWorker(address, { argv: ['yes'] }); // endless output
    const client = await connectClient(address);
    const err = await client.submit('run', '', { timeoutMs: 10_000, retries: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailedError);
    expect(err).toMatchObject({ permanent: true, attempts: 1 });
    expect(worker.connected).toBe(true);
    // Output within the limit is a result (the scheduler must also fit it in its EVENT to the client).
    const { address: a2 } = await startScheduler({ maxPayloadBytes: 64 * 1024 });
    await execWorker(a2, { argv: ['python3', '-c', 'import sys; sys.stdout.write("x" * 60000)'] });
    const c2 = await connectClient(a2);
    expect((await c2.submit('run', '')).data.length).toBe(60_000);
  });

  it('a command that does not read its stdin, or cannot be started, is answered all the same', async () => {
    const { address } = await startScheduler();
    await execWorker(address, { argv: ['echo', 'ignored input'] });
    const client = await connectClient(address);
    expect((await client.submit('run', Buffer.alloc(4 * 1024 * 1024, 'z'))).text()).toBe('ignored input\n');
    const { address: a2 } = await startScheduler();
    await execWorker(a2, { argv: ['/nonexistent/taskwire-test-command'] });
    const c2 = await connectClient(a2);
    await expect(c2.submit('run', '', { retries: 3 })).rejects.toMatchObject({ permanent: true, attempts: 1 });
  });

  it('rejects an empty command with INVALID_ARGUMENT', () => {
    expect(() => execHandler({ argv: [] })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => execHandler({ shell: ' ' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => execHandler({ argv: ['cat'] }, { killGraceMs: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('taskwire-worker -c KIND -- COMMAND', () => {
  it('runs the command after -- for its kinds only, and --shell lines through /bin/sh', async () => {
    const { address } = await startScheduler();
    const argv = spawnTs('src/worker.ts', ['--server', address, '-w', 'ARGV', '-c', 'upper', '--log-level', 'error', '--', 'tr', 'a-z', 'A-Z']);
    const shell = spawnTs('src/worker.ts', ['--server', address, '-w', 'SH', '-c', 'rev', '--log-level', 'error', '--shell', "tr -d '\\n' | rev"]);
    await argv.waitForLine(/taskwire worker ARGV connected/);
    await shell.waitForLine(/taskwire worker SH connected/);
    const client = await connectClient(address);
    const workers = await client.workers();
    expect(workers.map((w) => [w.name, w.capabilities]).sort()).toEqual([
      ['ARGV', ['upper']],
      ['SH', ['rev']],
    ]);
    expect((await client.submit('upper', 'shout')).text()).toBe('SHOUT');
    expect((await client.submit('rev', 'stressed\n')).text()).toBe('desserts');
  });

  it('exits 2 when the command cannot be found', async () => {
    const child = spawnTs('src/worker.ts', ['--server', '127.0.0.1:1', '-c', 'k', '--', 'taskwire-no-such-command-here']);
    expect(await child.exited).toBe(2);
    expect(child.stderr).toMatch(/INVALID_ARGUMENT/);
  });
});
