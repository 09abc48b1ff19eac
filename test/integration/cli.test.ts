import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeScheduler } from '../helpers/client-fake-scheduler.js';
import { closedPort } from '../helpers/scheduler.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HELLO_SHA = 'dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `taskwire ARGS` as a child process (`node --import tsx src/client.ts`, the fastest start). */
async function taskwire(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/client.ts', ...args], {
    cwd: ROOT,
    // A stray TASKWIRE_SERVER must not leak in; tests that want it set it.
    env: { ...process.env, TASKWIRE_SERVER: '', TASKWIRE_TOKEN: '', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 25_000,
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  proc.stdin.on('error', () => undefined); // the CLI may exit before reading stdin
  proc.stdin.end(opts.input ?? '');
  const [code] = (await once(proc, 'close')) as [number | null];
  return { code, stdout, stderr };
}


let fake: FakeScheduler;
let server: string[];
let dir: string;

beforeAll(async () => {
  fake = await FakeScheduler.start({ manualClose: true });
  server = ['--server', fake.address];
  dir = mkdtempSync(join(tmpdir(), 'taskwire-cli-'));
});

afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.concurrent('taskwire usage', () => {
  it('--help and help print the usage on stdout and exit 0', async () => {
    for (const args of [['--help'], ['help'], ['-h'], ['help', 'submit'], ['submit', '--help']]) {
      const r = await taskwire(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Usage: taskwire');
      expect(r.stdout).toContain('--server HOST:PORT');
      expect(r.stderr).toBe('');
    }
  });

  it.each([
    ['no command', []],
    ['unknown command', ['frobnicate']],
    ['options before the command', ['--json', 'stats']],
    ['missing job argument', ['submit']],
    ['missing job id', ['status']],
    ['bad job id', ['status', 'abc']],
    ['extra argument', ['wait', '1', '2']],
    ['bad --priority (too big)', ['submit', '--priority', '300', 'x']],
    ['bad --priority (not a number)', ['submit', '--priority', 'high', 'x']],
    ['bad --priority (negative)', ['submit', '--priority', '-1', 'x']],
    ['bad --tier', ['submit', '--tier', 'gold', 'x']],
    ['bad --retries', ['submit', '--retries', '65535', 'x']],
    ['unknown option', ['submit', '--bogus', 'x']],
    ['option without its value', ['submit', 'x', '--kind']],
    ['arithmetic with one operand', ['submit', '--kind', 'add', '1']],
    ['arithmetic with a non-number', ['submit', '--kind', 'add', '1', 'two']],
    ['--file and arguments', ['submit', '--file', 'x.txt', 'y']],
    ['unreadable --file', ['submit', '--file', '/nonexistent/taskwire/lines.txt']],
    ['bad --status', ['jobs', '--status', 'SLEEPING']],
    ['bad --server', ['stats', '--server', 'nowhere']],
  ])('%s: exits 2 with the usage on stderr', async (_name, args) => {
    // Usage errors are found before connecting: this port is never dialled.
    const r = await taskwire([...args, ...(args.includes('--server') ? [] : ['--server', '127.0.0.1:1'])]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^taskwire: /);
    expect(r.stderr).toContain('Usage: taskwire');
    expect(r.stdout).toBe('');
  });

  it('exits 3 naming the address when the scheduler cannot be reached', async () => {
    const port = await closedPort();
    const r = await taskwire(['submit', 'Hello', '--server', `127.0.0.1:${port}`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`taskwire: cannot reach the scheduler at 127.0.0.1:${port} (ECONNREFUSED)\n`);
    expect(r.stdout).toBe('');
  });

  it('takes the address from TASKWIRE_SERVER', async () => {
    const port = await closedPort();
    const r = await taskwire(['stats'], { env: { TASKWIRE_SERVER: `127.0.0.1:${port}` } });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`127.0.0.1:${port}`);
    const ok = await taskwire(['stats'], { env: { TASKWIRE_SERVER: fake.address } });
    expect(ok.code).toBe(0);
  });
});

describe.concurrent('taskwire against a (fake) scheduler', () => {
  it('submit prints the SHA-256 of its argument', async () => {
    const r = await taskwire(['submit', 'Hello, World!', ...server]);
    expect(r).toEqual({ code: 0, stdout: `${HELLO_SHA}\n`, stderr: '' });
  });

  it('submit --kind add 2 3 prints 5; negative operands work', async () => {
    expect(await taskwire(['submit', '--kind', 'add', '2', '3', ...server])).toEqual({ code: 0, stdout: '5\n', stderr: '' });
    expect((await taskwire(['submit', '--kind', 'subtract', '-2', '3', ...server])).stdout).toBe('-5\n');
    expect((await taskwire(['submit', '--kind', 'multiply', ...server, '--', '-2', '-1.5'])).stdout).toBe('3\n');
  });

  it('submit --kind divide 1 0 exits 1 with the failure on stderr', async () => {
    const r = await taskwire(['submit', '--kind', 'divide', '1', '0', ...server]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^taskwire: job \d+ failed: division by zero\n$/);
  });

  it('submit --json prints one JSON object', async () => {
    const ok = await taskwire(['submit', '--json', 'Hello, World!', ...server]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ state: 'DONE', attempt: 1, result: HELLO_SHA });
    const failed = await taskwire(['submit', '--json', '--kind', 'divide', '1', '0', ...server]);
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout)).toMatchObject({ state: 'FAILED', permanent: true, error: 'division by zero' });
  });

  it('submit sends the options', async () => {
    const key = `cli-options-${process.pid}`;
    const r = await taskwire(
      ['submit', '--tier', 'paid', '--timeout', '1500', '--retries', '2', '--est-ms', '30', '--delay', '0', '--key', key, 'opts', ...server],
    );
    expect(r.code).toBe(0);
    const m = fake.receivedOf('SUBMIT').find((s) => s.key === key);
    expect(m).toMatchObject({ priority: 10, timeoutMs: 1500, maxRetries: 2, estMs: 30, delayMs: 0, wait: true });
  });

  it('submit --no-wait prints the job id', async () => {
    const r = await taskwire(['submit', '--no-wait', 'later', ...server]);
    expect(r.code).toBe(0);
    const id = Number(r.stdout.trim());
    expect(Number.isInteger(id) && id > 0).toBe(true);
    expect(fake.jobs.get(id)?.args.toString()).toBe('later');
  });

  it('submit --file: one job per line, results in input order, failures on their line', async () => {
    const file = join(dir, 'mixed.txt');
    writeFileSync(file, '1 2\n3,4\n5 0\n{"a":6,"b":3}\nnonsense\n');
    const r = await taskwire(['submit', '--kind', 'divide', '--file', file, ...server]);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('0.5');
    expect(lines[1]).toBe('0.75');
    expect(lines[2]).toMatch(/^error: job \d+ failed: division by zero$/);
    expect(lines[3]).toMatch(/^error: job \d+ failed: /); // the fake takes only [a, b]
    expect(lines[4]).toMatch(/^error: /);
    expect(lines.length).toBe(6);
    expect(r.stderr).toBe(''); // no progress bar: stderr is not a TTY
  });

  it('submit --file with 10,000 lines returns 10,000 results in order', async () => {
    const inputs = Array.from({ length: 10_000 }, (_, i) => `string ${i}`);
    const file = join(dir, 'many.txt');
    writeFileSync(file, inputs.join('\n') + '\n');
    const r = await taskwire(['submit', '--file', file, ...server]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(inputs.map(sha256).join('\n') + '\n');
  });

  it('submit --file - reads stdin; --json gives line numbers', async () => {
    const r = await taskwire(['submit', '--file', '-', '--json', ...server], { input: 'a\r\nb\n\nc' });
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { line: number; result: string });
    expect(rows.map((x) => [x.line, x.result])).toEqual([
      [1, sha256('a')],
      [2, sha256('b')],
      [3, sha256('')],
      [4, sha256('c')],
    ]);
  });

  it('submit --file --no-wait prints ids only', async () => {
    const r = await taskwire(['submit', '--file', '-', '--no-wait', ...server], { input: 'x\ny\n' });
    expect(r.code).toBe(0);
    const ids = r.stdout.trim().split('\n').map(Number);
    expect(ids).toHaveLength(2);
    expect(ids[1]).toBeGreaterThan(ids[0]!);
  });

  it('status, wait, cancel, jobs, workers, stats, compact', async () => {
    const submitted = await taskwire(['submit', '--json', 'for status', ...server]);
    const { id } = JSON.parse(submitted.stdout) as { id: number };

    const status = await taskwire(['status', String(id), ...server]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^id +${id}\\n`));
    expect(status.stdout).toMatch(/^state +DONE$/m);
    expect(JSON.parse((await taskwire(['status', String(id), '--json', ...server])).stdout)).toMatchObject({ id, state: 'DONE' });

    expect(await taskwire(['wait', String(id), ...server])).toEqual({ code: 0, stdout: `${sha256('for status')}\n`, stderr: '' });

    const missing = await taskwire(['status', '987654', ...server]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('NOT_FOUND');

    const queued = await taskwire(['submit', '--no-wait', '--kind', 'never-runs', 'x', ...server]);
    const queuedId = queued.stdout.trim();
    const cancel = await taskwire(['cancel', queuedId, ...server]);
    expect(cancel).toEqual({ code: 0, stdout: `job ${queuedId} cancelled\n`, stderr: '' });
    expect((await taskwire(['cancel', queuedId, ...server])).code).toBe(1); // INVALID_STATE

    const jobs = await taskwire(['jobs', '--status', 'cancelled', '--kind', 'never-runs', ...server]);
    expect(jobs.code).toBe(0);
    expect(jobs.stdout).toMatch(/^ID +STATE +KIND/);
    expect(jobs.stdout).toContain(`${queuedId}`);
    const jobsJson = JSON.parse((await taskwire(['jobs', '--json', '--limit', '1', ...server])).stdout) as unknown[];
    expect(jobsJson).toHaveLength(1);

    const workers = await taskwire(['workers', ...server]);
    expect(workers.code).toBe(0);
    expect(workers.stdout).toMatch(/fake-worker +1\/4/);

    const stats = await taskwire(['stats', ...server]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toContain('server fake');
    expect(stats.stdout).toMatch(/^sha256 +1 +2 +3 +4 +5/m);
    expect(JSON.parse((await taskwire(['stats', '--json', ...server])).stdout)).toMatchObject({ serverVersion: 'fake' });

    const compact = await taskwire(['compact', ...server]);
    expect(compact.code).toBe(1);
    expect(compact.stderr).toContain('INVALID_STATE');
  });
});
