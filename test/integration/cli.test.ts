import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { FakeScheduler } from '../helpers/client-fake-scheduler.js';
import { closedPort } from '../helpers/scheduler.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HELLO_SHA = 'dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f';
const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A clean environment: no stray TASKWIRE_* setting leaks in; tests that want one set it. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TASKWIRE_')) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Starts `taskwire ARGS` as a child process (`node --import tsx src/client.ts`, the fastest start).
 * Killed after 25 s at the latest (concurrent tests cannot use onTestFinished: it would fire for another test).
 */
function start(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/client.ts', ...args], {
    cwd: ROOT,
    env: cleanEnv(env),
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 25_000,
  });
  proc.stdin.on('error', () => undefined); // the CLI may exit before reading stdin
  return proc;
}

/** Runs `taskwire ARGS` to its end. */
async function taskwire(args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const proc = start(args, opts.env);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  proc.stdin.end(opts.input ?? '');
  const [code] = (await once(proc, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** A running CLI whose output the test reads as it comes; killed when the (sequential) test ends. */
function live(args: string[]) {
  const proc = start(args);
  onTestFinished(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const out = { stdout: '', stderr: '' };
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const closed = once(proc, 'close') as Promise<[number | null]>;
  return {
    proc,
    out,
    /** Resolves once stdout holds `n` lines; rejects after `ms` or if the CLI exits first. */
    async lines(n: number, ms = 10_000): Promise<string[]> {
      const signal = AbortSignal.timeout(ms);
      while (out.stdout.split('\n').length - 1 < n) {
        if (proc.exitCode !== null) throw new Error(`exited ${proc.exitCode}: ${out.stderr}`);
        await Promise.race([once(proc.stdout, 'data', { signal }), once(proc, 'exit', { signal })]);
      }
      return out.stdout.split('\n').slice(0, n);
    },
    /** Resolves once stderr matches `re`; rejects after `ms` or if the CLI exits first. */
    async stderrMatch(re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
      const signal = AbortSignal.timeout(ms);
      for (;;) {
        const m = re.exec(out.stderr);
        if (m !== null) return m;
        if (proc.exitCode !== null) throw new Error(`exited ${proc.exitCode}: ${out.stderr}`);
        await Promise.race([once(proc.stderr, 'data', { signal }), once(proc, 'exit', { signal })]);
      }
    },
    async exit(): Promise<number | null> {
      return (await closed)[0];
    },
  };
}

/** The one JSON object a --json run printed. */
function jsonOf(r: Run): Record<string, unknown> {
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
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
  it('--help and help print the usage on stdout and exit 0, from any position', async () => {
    for (const args of [['--help'], ['help'], ['-h'], ['help', 'submit'], ['submit', '--help'], ['--server', 'h:1', 'help', 'jobs'], ['stats', '-h']]) {
      const r = await taskwire(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage: taskwire');
      expect(r.stdout).toContain('--server HOST:PORT');
      expect(r.stderr).toBe('');
    }
    expect((await taskwire(['help', 'jobs'])).stdout).toContain('--after ID');
  });

  it.each([
    ['no command', []],
    ['unknown command', ['frobnicate']],
    ['help for an unknown command', ['help', 'bogus']],
    ['missing job argument', ['submit']],
    ['missing job id', ['status']],
    ['bad job id', ['status', 'abc']],
    ['extra argument', ['wait', '1', '2']],
    ['bad --priority (too big)', ['submit', '--priority', '300', 'x']],
    ['bad --priority (not a number)', ['submit', '--priority', 'high', 'x']],
    ['bad --priority (negative)', ['submit', '--priority', '-1', 'x']],
    ['bad --priority (hex)', ['submit', '--priority', '0x10', 'x']],
    ['bad --tier', ['submit', '--tier', 'gold', 'x']],
    ['bad --retries', ['submit', '--retries', '65535', 'x']],
    ['--timeout 0', ['submit', '--timeout', '0', 'x']],
    ['--wait-timeout 0', ['submit', '--wait-timeout', '0', 'x']],
    ['--wait-timeout with --no-wait', ['submit', '--no-wait', '--wait-timeout', '5', 'x']],
    ['unknown option', ['submit', '--bogus', 'x']],
    ['unknown short option', ['submit', '-n', '3', 'x']],
    ['option without its value', ['submit', 'x', '--kind']],
    ['option whose value looks like an option', ['submit', '--kind', '-n', 'x']],
    ['arithmetic with one operand', ['submit', '--kind', 'add', '1']],
    ['arithmetic with a non-number', ['submit', '--kind', 'add', '1', 'two']],
    ['arithmetic in hex', ['submit', '--kind', 'add', '0x10', '1']],
    ['arithmetic past 2^53', ['submit', '--kind', 'add', '9007199254740993', '0']],
    ['--file and arguments', ['submit', '--file', 'x.txt', 'y']],
    ['unreadable --file', ['submit', '--file', '/nonexistent/taskwire/lines.txt']],
    ['bad --status', ['jobs', '--status', 'SLEEPING']],
    ['bad --limit', ['jobs', '--limit', '0']],
    ['bad --server', ['stats', '--server', 'nowhere']],
    ['--server without a port', ['stats', '--server', 'h:0']],
    ['--at that is not ISO 8601', ['submit', '--at', 'tomorrow', 'x']],
    ['--at and --delay', ['submit', '--at', '2030-01-01T00:00:00Z', '--delay', '5', 'x']],
    ['purge without --yes', ['purge', 'sha256']],
    ['retry without an id', ['retry']],
    ['retry --kind without --failed', ['retry', '5', '--kind', 'add']],
    ['pause without a kind', ['pause']],
  ])('%s: exits 2 with one line on stderr pointing at --help', async (_name, args) => {
    // Usage errors are found before connecting: this port is never dialled.
    const r = await taskwire([...args, ...(args.includes('--server') ? [] : ['--server', '127.0.0.1:1'])]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^taskwire: [^\n]+ \(see "taskwire( \w+)? --help"\)\n$/);
    expect(r.stderr).not.toMatch(/ambiguous|Did you forget|ERR_PARSE_ARGS|TypeError/);
    expect(r.stdout).toBe('');
  });

  it('says "1 argument", not "1 arguments"', async () => {
    const r = await taskwire(['submit', '--kind', 'add', '1', '--server', '127.0.0.1:1']);
    expect(r.stderr).toMatch(/\b1 argument\b/);
  });

  it('with --json, a usage error is one JSON object on stdout', async () => {
    for (const args of [['--json', 'status', 'abc'], ['frobnicate', '--json'], ['submit', '--json', '--bogus']]) {
      const r = await taskwire(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('');
      expect(jsonOf(r)).toMatchObject({ code: 'USAGE', error: expect.any(String) });
    }
  });

  it('exits 3 naming the address when the scheduler cannot be reached (JSON too)', async () => {
    const port = await closedPort();
    const r = await taskwire(['submit', 'Hello', '--server', `127.0.0.1:${port}`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`taskwire: cannot reach the scheduler at 127.0.0.1:${port} (ECONNREFUSED)\n`);
    expect(r.stdout).toBe('');
    const j = await taskwire(['--json', 'stats', '--server', `127.0.0.1:${port}`]);
    expect(j.code).toBe(3);
    expect(jsonOf(j)).toMatchObject({ code: 'UNREACHABLE' });
  });

  it('takes the address from TASKWIRE_SERVER', async () => {
    const port = await closedPort();
    const r = await taskwire(['stats'], { env: { TASKWIRE_SERVER: `127.0.0.1:${port}` } });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`127.0.0.1:${port}`);
    const ok = await taskwire(['stats'], { env: { TASKWIRE_SERVER: fake.address } });
    expect(ok.code).toBe(0);
  });

  it.each([
    ['an HTTP server (answers after our bytes)', 'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n', false],
    ['an SSH server (speaks first)', 'SSH-2.0-OpenSSH_9.6\r\n', true],
    ['a Redis server', '-ERR unknown command\r\n', false],
  ])('says "not a taskwire scheduler" for %s, showing what it sent', async (_name, reply, first) => {
    const sockets = new Set<Socket>();
    const other = createServer((socket: Socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      if (first) socket.write(reply);
      else socket.once('data', () => socket.write(reply));
    });
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    const address = other.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const r = await taskwire(['stats', '--server', `127.0.0.1:${address.port}`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`127.0.0.1:${address.port} is not a taskwire scheduler (it sent "${reply.slice(0, 8)}`);
    expect(r.stderr).not.toContain('FRAME_TOO_LARGE');
    const j = await taskwire(['stats', '--json', '--server', `127.0.0.1:${address.port}`]);
    expect(jsonOf(j)).toMatchObject({ code: 'UNREACHABLE' });
    for (const s of sockets) s.destroy();
    other.close();
  });
});

describe.concurrent('global options and settings', () => {
  it('accepts global options before or after the command', async () => {
    for (const args of [[...server, 'stats'], ['--json', ...server, 'stats'], ['stats', '--json', ...server], [`--server=${fake.address}`, '--json', 'workers'], ['-s', fake.address, 'stats']]) {
      const r = await taskwire(args);
      expect(r.code, args.join(' ')).toBe(0);
    }
    const r = await taskwire(['--json', ...server, 'stats']);
    expect(JSON.parse(r.stdout)).toMatchObject({ serverVersion: 'fake' });
  });

  it('--config FILE: settings from a JSON file; the environment wins over it, the command line over both', async () => {
    const port = await closedPort();
    const file = join(dir, 'client.json');
    writeFileSync(file, JSON.stringify({ server: fake.address, kind: 'add', priority: 7, waitTimeout: 5000 }));
    const r = await taskwire(['--config', file, 'submit', '2', '3']);
    expect(r).toMatchObject({ code: 0, stdout: '5\n' });
    const sent = fake.receivedOf('SUBMIT').find((m) => m.kind === 'add' && m.args.toString() === '[2,3]' && m.priority === 7);
    expect(sent).toBeDefined();
    // TASKWIRE_SERVER beats the file: a closed port, so exit 3.
    expect((await taskwire(['stats', '--config', file], { env: { TASKWIRE_SERVER: `127.0.0.1:${port}` } })).code).toBe(3);
    // --server beats both.
    expect((await taskwire(['stats', '--config', file, ...server], { env: { TASKWIRE_SERVER: `127.0.0.1:${port}` } })).code).toBe(0);
  });

  it('a bad config file or variable is a usage error naming the file, the key and what is allowed', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ server: fake.address, priorty: 3 }));
    const r = await taskwire(['stats', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain('"priorty"');
    const range = join(dir, 'range.json');
    writeFileSync(range, JSON.stringify({ priority: 300 }));
    const r2 = await taskwire(['stats', '--config', range]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('"priority"');
    expect(r2.stderr).toContain('0 to 255');
    const env = await taskwire(['stats'], { env: { TASKWIRE_WINDOW: 'lots' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('TASKWIRE_WINDOW');
  });

  it('--print-config prints the effective settings with the token masked', async () => {
    const r = await taskwire(['--print-config', '--token', 'sekrit-token', '--kind', 'add', 'submit'], { env: { TASKWIRE_SERVER: 'h:9' } });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('sekrit');
    expect(r.stdout).toMatch(/^server +"h:9" +\(environment\)$/m);
    expect(r.stdout).toMatch(/^token +\*+ +\(command line\)$/m);
    expect(r.stdout).toMatch(/^kind +"add" +\(command line\)$/m);
    const j = await taskwire(['--print-config', '--json', '--token', 'sekrit-token']);
    expect(JSON.parse(j.stdout)).toMatchObject({ token: '********', server: '127.0.0.1:9001' });
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

  it('submit --json prints one JSON object, failures included', async () => {
    const ok = await taskwire(['submit', '--json', 'Hello, World!', ...server]);
    expect(ok.code).toBe(0);
    expect(jsonOf(ok)).toMatchObject({ state: 'DONE', attempt: 1, result: HELLO_SHA });
    const failed = await taskwire(['submit', '--json', '--kind', 'divide', '1', '0', ...server]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toBe('');
    expect(jsonOf(failed)).toMatchObject({ state: 'FAILED', permanent: true, error: 'division by zero' });
    const missing = await taskwire(['status', '987654', '--json', ...server]);
    expect(missing.code).toBe(1);
    expect(jsonOf(missing)).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('submit sends the options in one waited SUBMIT (no WATCH: the ACK gives the id)', async () => {
    const key = `cli-options-${process.pid}`;
    const r = await taskwire(['submit', '--tier', 'paid', '--timeout', '1500', '--retries', '2', '--est-ms', '30', '--delay', '0', '--key', key, 'opts', ...server]);
    expect(r.code).toBe(0);
    const sent = fake.receivedOf('SUBMIT').filter((s) => s.key === key);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ wait: true, priority: 10, timeoutMs: 1500, maxRetries: 2, estMs: 30, delayMs: 0 });
    const job = [...fake.jobs.values()].find((j) => j.key === key)!;
    expect(fake.receivedOf('WATCH').some((w) => w.jobId === job.id)).toBe(false);
  });

  it('submit --file sends one waited SUBMIT per line and no WATCH', async () => {
    const marker = `one-request-${process.pid}`;
    const input = Array.from({ length: 50 }, (_, i) => `${marker} ${i}`);
    const r = await taskwire(['submit', '--file', '-', ...server], { input: input.join('\n') + '\n' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(input.map(sha256).join('\n') + '\n');
    const sent = fake.receivedOf('SUBMIT').filter((m) => m.args.toString().startsWith(marker));
    expect(sent).toHaveLength(50);
    expect(sent.every((m) => m.wait)).toBe(true);
    const ids = new Set([...fake.jobs.values()].filter((j) => j.args.toString().startsWith(marker)).map((j) => j.id));
    expect(fake.receivedOf('WATCH').some((w) => ids.has(w.jobId))).toBe(false);
  });

  it('submit --no-wait prints the job id', async () => {
    const r = await taskwire(['submit', '--no-wait', 'later', ...server]);
    expect(r.code).toBe(0);
    const id = Number(r.stdout.trim());
    expect(Number.isInteger(id) && id > 0).toBe(true);
    expect(fake.jobs.get(id)?.args.toString()).toBe('later');
  });

  it('a kind no worker runs: the job id goes to stderr at once; --wait-timeout exits 4', async () => {
    const r = await taskwire(['submit', '--kind', 'nope', '--wait-timeout', '1000', 'x', ...server]);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    const m = /queued as job (\d+); no connected worker runs 'nope'/.exec(r.stderr);
    expect(m).not.toBeNull();
    expect(r.stderr).toContain(`taskwire wait ${m![1]}`);
    expect(fake.jobs.get(Number(m![1]))?.state).toBe('QUEUED');
    // A typo in case gets a hint.
    const typo = await taskwire(['submit', '--kind', 'SHA256', '--wait-timeout', '1000', 'x', ...server]);
    expect(typo.code).toBe(4);
    expect(typo.stderr).toContain("did you mean 'sha256'?");
    const json = await taskwire(['submit', '--json', '--kind', 'nope', '--wait-timeout', '200', 'x', ...server]);
    expect(json.code).toBe(4);
    expect(jsonOf(json)).toMatchObject({ code: 'TIMEOUT', id: expect.any(Number) });
  });

  it('wait --timeout exits 4 and the job goes on', async () => {
    const queued = await taskwire(['submit', '--no-wait', '--kind', 'never-runs', 'x', ...server]);
    const r = await taskwire(['wait', queued.stdout.trim(), '--timeout', '200', ...server]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`taskwire wait ${queued.stdout.trim()}`);
  });

  it('submit --file: one job per line, results in input order, failures on their line', async () => {
    const file = join(dir, 'mixed.txt');
    writeFileSync(file, '1 2\n3,4\n5 0\n{"a":6,"b":3}\n[7, 2]\n');
    const r = await taskwire(['submit', '--kind', 'divide', '--file', file, ...server]);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('0.5');
    expect(lines[1]).toBe('0.75');
    expect(lines[2]).toMatch(/^error: job \d+ failed: division by zero$/);
    expect(lines[3]).toBe('2'); // {"a":6,"b":3}, checked and sent as [6, 3]
    expect(lines[4]).toBe('3.5');
    expect(lines.length).toBe(6);
    expect(r.stderr).toBe(''); // no progress bar: stderr is not a TTY
  });

  it('submit --file checks arithmetic lines on the client and skips blank lines', async () => {
    const marker = 1_234_567.25;
    const input = `${marker} 1\n\nnonsense\n\r\n0x10 1\n9007199254740993 0\n1 2 3\n${marker} 2\n`;
    const r = await taskwire(['submit', '--kind', 'add', '--file', '-', ...server], { input });
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[0]).toBe(String(marker + 1));
    expect(lines[1]).toMatch(/^error: line 3: /);
    expect(lines[2]).toMatch(/^error: line 5: /);
    expect(lines[3]).toMatch(/^error: line 6: .*9007199254740993/);
    expect(lines[4]).toMatch(/^error: line 7: /);
    expect(lines[5]).toBe(String(marker + 2));
    // Bad lines never reach the scheduler.
    const sent = fake.receivedOf('SUBMIT').filter((m) => m.kind === 'add' && m.args.toString().startsWith(`[${marker},`));
    expect(sent).toHaveLength(2);
    expect(fake.receivedOf('SUBMIT').some((m) => m.args.toString().includes('nonsense'))).toBe(false);
    const json = await taskwire(['submit', '--kind', 'add', '--json', '--file', '-', ...server], { input: 'x y\n' });
    expect(JSON.parse(json.stdout)).toMatchObject({ line: 1, state: 'ERROR', code: 'INVALID_ARGUMENT' });
  });

  it('lines are bytes: invalid UTF-8 is hashed as given, like sha256sum', async () => {
    const bytes = Buffer.from([0xff, 0xfe, 0x20, 0x62, 0x61, 0x64]); // printf '\xff\xfe bad'
    const r = await taskwire(['submit', '--file', '-', ...server], { input: Buffer.concat([bytes, Buffer.from('\n')]) });
    expect(r).toEqual({ code: 0, stdout: `${sha256(bytes)}\n`, stderr: '' });
    expect(sha256(bytes)).not.toBe(sha256(bytes.toString('utf8'))); // what U+FFFD replacement would give
  });

  it('a trailing \\r is part of the line (CRLF files hash like sha256sum), a lone \\r line is blank', async () => {
    const r = await taskwire(['submit', '--file', '-', '--json', ...server], { input: 'a\r\nb\n\r\n\nc' });
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { line: number; result: string });
    expect(rows.map((x) => [x.line, x.result])).toEqual([
      [1, sha256('a\r')],
      [2, sha256('b')],
      [5, sha256('c')],
    ]);
  });

  it('submit --file with 10,000 lines returns 10,000 results in order', async () => {
    const inputs = Array.from({ length: 10_000 }, (_, i) => `string ${i}`);
    const file = join(dir, 'many.txt');
    writeFileSync(file, inputs.join('\n') + '\n');
    const r = await taskwire(['submit', '--file', file, '--window', '100', ...server]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(inputs.map(sha256).join('\n') + '\n');
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
    const page = JSON.parse((await taskwire(['jobs', '--json', '--limit', '1', ...server])).stdout) as { jobs: unknown[]; total: number };
    expect(page.jobs).toHaveLength(1);
    expect(page.total).toBeGreaterThan(1);

    const workers = await taskwire(['workers', ...server]);
    expect(workers.code).toBe(0);
    expect(workers.stdout).toMatch(/fake-worker +- +- +1\/4/); // no pool or host from the fake

    const stats = await taskwire(['stats', ...server]);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toContain('server fake');
    expect(stats.stdout).toMatch(/\b\d+ clients?, 0 workers\n/);
    expect(stats.stdout).toMatch(/^sha256 +1 +2 +3 +4 +5/m);
    expect(JSON.parse((await taskwire(['stats', '--json', ...server])).stdout)).toMatchObject({ serverVersion: 'fake' });

    const compact = await taskwire(['compact', ...server]);
    expect(compact.code).toBe(1);
    expect(compact.stderr).toContain('INVALID_STATE');
  });

  it('top prints one snapshot when stdout is not a terminal', async () => {
    const r = await taskwire(['top', ...server]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^taskwire top /);
    expect(r.stdout).toMatch(/^KIND +PAUSED +QUEUED +PREFETCHED +RUNNING +DONE\/S +FAILED\/S +OLDEST$/m);
    expect(r.stdout).toMatch(/^sha256 +- +1 +- +2 /m); // the fake's STATS has no paused or prefetched
    expect(r.stdout).toMatch(/^fake-worker +1\/4 +active +\d+s ago/m);
    expect(r.stdout).not.toContain('\x1b');
  });
});

describe('streaming and stopping early: Ctrl-C, --wait-timeout, a lost scheduler', () => {
  it('submit --file streams: each result is printed as soon as it is done, before the input ends', async () => {
    const cli = live(['submit', '--file', '-', ...server]);
    cli.proc.stdin.write('first\n');
    expect(await cli.lines(1)).toEqual([sha256('first')]);
    cli.proc.stdin.write('second\n');
    expect(await cli.lines(2)).toEqual([sha256('first'), sha256('second')]);
    cli.proc.stdin.end('third\n');
    expect(await cli.exit()).toBe(0);
    expect(cli.out.stdout).toBe([sha256('first'), sha256('second'), sha256('third')].join('\n') + '\n');
  });

  it('Ctrl-C during submit --file prints what finished, the ids of jobs still queued, and exits 130', async () => {
    const held = await FakeScheduler.start({ hold: true });
    const cli = live(['submit', '--file', '-', '--server', held.address]);
    cli.proc.stdin.write('one\ntwo\nthree\n'); // stdin stays open, like an endless producer
    await held.until(() => held.receivedOf('SUBMIT').length === 3, 15_000);
    held.release([held.held[0]!.id]);
    expect(await cli.lines(1)).toEqual([sha256('one')]);
    cli.proc.kill('SIGINT');
    expect(await cli.exit()).toBe(130);
    const [, two, three] = cli.out.stdout.trim().split('\n');
    const ids = [...held.jobs.values()].map((j) => j.id);
    expect(two).toContain(`taskwire wait ${ids[1]}`);
    expect(three).toContain(`taskwire wait ${ids[2]}`);
    expect(cli.out.stderr).toMatch(/interrupted: 1 of 3 jobs finished, 2 still queued or running/);
  });

  it('--wait-timeout on submit --file stops waiting, prints the pending ids, exits 4', async () => {
    const held = await FakeScheduler.start({ hold: true });
    const r = await taskwire(['submit', '--file', '-', '--wait-timeout', '300', '--json', '--server', held.address], { input: 'a\nb\n' });
    expect(r.code).toBe(4);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toEqual([
      expect.objectContaining({ line: 1, id: expect.any(Number), code: 'TIMEOUT' }),
      expect.objectContaining({ line: 2, id: expect.any(Number), code: 'TIMEOUT' }),
    ]);
  });

  it('losing the scheduler mid-submit prints the ids that were acknowledged and exits 3', async () => {
    const held = await FakeScheduler.start({ hold: true });
    const cli = live(['submit', '--file', '-', '--server', held.address]);
    cli.proc.stdin.write('one\ntwo\n');
    await held.until(() => held.receivedOf('SUBMIT').length === 2, 15_000);
    held.release([held.held[0]!.id]);
    expect(await cli.lines(1)).toEqual([sha256('one')]);
    held.dropConnections();
    expect(await cli.exit()).toBe(3);
    const second = cli.out.stdout.trim().split('\n')[1]!;
    const id = [...held.jobs.values()][1]!.id;
    expect(second).toMatch(new RegExp(`^error: lost the connection .*job ${id} was queued \\(taskwire wait ${id}\\)$`));
    expect(cli.out.stderr).toMatch(/lost the connection to the scheduler at /);
  });

  // A kind no worker runs: the notice on stderr shows the CLI has the ACK (the id) before the test acts.
  it('losing the scheduler while one job waits prints its id and exits 3', async () => {
    const held = await FakeScheduler.start({ hold: true });
    const cli = live(['submit', '--kind', 'nope', 'x', '--server', held.address]);
    const [, noticed] = await cli.stderrMatch(/queued as job (\d+);/);
    held.dropConnections();
    expect(await cli.exit()).toBe(3);
    const id = held.held[0]!.id;
    expect(Number(noticed)).toBe(id);
    expect(cli.out.stderr).toContain(`job ${id} was queued (taskwire wait ${id}`);
  });

  it('Ctrl-C while one job waits says the job goes on, and exits 130', async () => {
    const held = await FakeScheduler.start({ hold: true });
    const cli = live(['submit', '--json', '--kind', 'nope', 'x', '--server', held.address]);
    await cli.stderrMatch(/queued as job \d+;/);
    cli.proc.kill('SIGINT');
    expect(await cli.exit()).toBe(130);
    expect(JSON.parse(cli.out.stdout)).toMatchObject({ code: 'INTERRUPTED', id: held.held[0]!.id });
  });

  it('a scheduler that never acknowledges: a lost connection or --wait-timeout says the job may or may not be queued', async () => {
    const silent = await FakeScheduler.start();
    silent.onSubmit = () => undefined; // no ACK, no ERROR
    const cli = live(['submit', 'x', '--server', silent.address]);
    await silent.until(() => silent.receivedOf('SUBMIT').length === 1, 15_000);
    silent.dropConnections();
    expect(await cli.exit()).toBe(3);
    expect(cli.out.stderr).toMatch(/^taskwire: lost the connection to the scheduler at \S+ before it acknowledged the job \(it may or may not be queued\)\n$/);
    const r = await taskwire(['submit', '--json', '--wait-timeout', '300', 'x', '--server', silent.address]);
    expect(r.code).toBe(4);
    const out = jsonOf(r);
    expect(out).toMatchObject({ code: 'TIMEOUT' });
    expect(out).not.toHaveProperty('id');
  });
});
