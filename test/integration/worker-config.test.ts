import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError } from '../../src/lib/config.js';
import { parseWorkerCli, type WorkerCli } from '../../src/lib/worker-cli.js';
import { spawnTs } from '../helpers/process.js';
import { connectClient, startScheduler } from '../helpers/scheduler.js';
import { waitFor } from '../helpers/wait.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** An environment with no TASKWIRE_* settings, and the PATH on which `exec` commands are looked up. */
const ENV: NodeJS.ProcessEnv = { PATH: process.env['PATH'] };

/** Writes `content` (JSON unless a string) to a config file in a fresh directory, removed after the test. */
function configFile(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'taskwire-worker-config-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'worker.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

function run(cli: WorkerCli): Extract<WorkerCli, { action: 'run' }> {
  if (cli.action !== 'run') throw new Error(`expected a run, got ${cli.action}`);
  return cli;
}

/** The ConfigError a parse throws. */
function configError(argv: string[], env: NodeJS.ProcessEnv = ENV): ConfigError {
  try {
    parseWorkerCli(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`no error for ${argv.join(' ')}`);
}

describe('taskwire-worker --config FILE', () => {
  it('takes every option from its camelCase key; command line > TASKWIRE_* > file > defaults', () => {
    const file = configFile({
      server: '127.0.0.1:7001',
      name: 'FROM-FILE',
      concurrency: 3,
      prefetch: 8,
      drainGraceMs: 10,
      logLevel: 'debug',
      capabilities: ['add', 'divide'],
      processingMs: 5,
      failRate: 0.5,
    });
    const cli = run(parseWorkerCli(['--config', file, '-n', '9'], { ...ENV, TASKWIRE_CONCURRENCY: '5', TASKWIRE_PREFETCH: '16', TASKWIRE_SERVER: '' }));
    expect(cli.options).toMatchObject({
      server: { host: '127.0.0.1', port: 7001 }, // an empty variable counts as unset: the file's
      name: 'FROM-FILE',
      concurrency: 9, // command line over TASKWIRE_CONCURRENCY over the file
      prefetch: 16, // environment over the file
      drainGraceMs: 10,
      logLevel: 'debug',
      processingMs: 5,
      failRate: 0.5,
      reconnectBaseMs: 100, // default
    });
    expect(cli.connections).toEqual([{ name: 'FROM-FILE', concurrency: 9, capabilities: ['add', 'divide'], commands: new Map() }]);
    expect(cli.processes).toBe(undefined);
  });

  it('kinds: each with its own command; one with its own concurrency gets a connection of its own', () => {
    const file = configFile({
      name: 'K',
      concurrency: 6,
      kinds: {
        upper: { exec: ['sh', '-c', 'tr a-z A-Z'], concurrency: 2 },
        rev: { shell: "tr -d '\\n' | rev" },
        sha256: {},
      },
    });
    const cli = run(parseWorkerCli(['--config', file], ENV));
    expect(cli.connections).toEqual([
      { name: 'K', concurrency: 6, capabilities: ['rev', 'sha256'], commands: new Map([['rev', { shell: "tr -d '\\n' | rev" }]]) },
      { name: 'K/upper', concurrency: 2, capabilities: ['upper'], commands: new Map([['upper', { argv: ['sh', '-c', 'tr a-z A-Z'] }]]) },
    ]);
    // --capabilities picks some of them; a single connection keeps the plain name.
    const some = run(parseWorkerCli(['--config', file, '-c', 'upper'], ENV));
    expect(some.connections.map((c) => [c.name, c.concurrency, c.capabilities])).toEqual([['K', 2, ['upper']]]);
  });

  it('in a process of a pool, processes from the file or the environment do not apply', () => {
    const file = configFile({ processes: 3, restartBaseMs: 50 });
    expect(run(parseWorkerCli(['--config', file], ENV)).processes).toBe(3);
    expect(run(parseWorkerCli(['--config', file], { ...ENV, TASKWIRE_PROCESSES: '2' })).processes).toBe(2);
    expect(run(parseWorkerCli(['--config', file], { ...ENV, TASKWIRE_PROCESSES: '2' }, { poolMember: true })).processes).toBe(undefined);
  });

  it('a wrong setting is a ConfigError naming the file (or variable), the key and what is allowed', () => {
    const cases: Array<[content: unknown, key: string, allowed: RegExp]> = [
      [{ concurency: 3 }, 'concurency', /concurrency/], // unknown key: the allowed ones are listed
      [{ concurrency: '3' }, 'concurrency', /integer/], // wrong type: no "3" for 3
      [{ concurrency: 0 }, 'concurrency', /from 1 to/], // out of range
      [{ logLevel: 'loud' }, 'logLevel', /silent, error, info, debug/],
      [{ server: 'nohost' }, 'server', /HOST:PORT/],
      [{ kinds: [] }, 'kinds', /object/],
      [{ kinds: {} }, 'kinds', /at least one/],
      [{ kinds: { k: 'cat' } }, 'kinds.k', /object/],
      [{ kinds: { k: { exe: ['cat'] } } }, 'kinds.k.exe', /exec/],
      [{ kinds: { k: { exec: 'tr a-z A-Z' } } }, 'kinds.k.exec', /array/],
      [{ kinds: { k: { exec: [] } } }, 'kinds.k.exec', /non-empty/],
      [{ kinds: { k: { exec: ['cat', 3] } } }, 'kinds.k.exec', /strings/],
      [{ kinds: { k: { exec: ['taskwire-no-such-command-here'] } } }, 'kinds.k.exec', /taskwire-no-such-command-here/],
      [{ kinds: { k: { exec: ['cat'], shell: 'cat' } } }, 'kinds.k', /not both/],
      [{ kinds: { k: { shell: ' ' } } }, 'kinds.k.shell', /command line/],
      [{ kinds: { k: { exec: ['cat'], concurrency: 1.5 } } }, 'kinds.k.concurrency', /integer/],
      [{ kinds: { nosuchkind: {} } }, 'kinds.nosuchkind', /exec/], // no command and not built in
      [{ kinds: { upper: { exec: ['cat'] } }, shell: 'cat' }, 'kinds', /exec/], // a command for every kind, and kinds
      [{ kinds: { upper: { exec: ['cat'] } }, capabilities: ['sha256'] }, 'capabilities', /upper/],
    ];
    for (const [content, key, allowed] of cases) {
      const file = configFile(content);
      const err = configError(['--config', file]);
      expect({ key: err.key, where: err.where }).toEqual({ key, where: `config file ${file}` });
      expect(err.message).toContain(file);
      expect(err.message).toContain(`"${key}"`);
      expect(err.message).toMatch(allowed);
    }
    // Not JSON, not an object, not there: the file is named.
    for (const text of ['{"concurrency": 3', '[1]']) expect(configError(['--config', configFile(text)]).where).toMatch(/^config file /);
    expect(configError(['--config', '/nonexistent/worker.json']).message).toContain('/nonexistent/worker.json');
    // A variable is named too; kinds come from a file only.
    expect(configError([], { ...ENV, TASKWIRE_CONCURRENCY: 'four' })).toMatchObject({ where: 'environment TASKWIRE_CONCURRENCY' });
    expect(configError([], { ...ENV, TASKWIRE_KINDS: 'upper' })).toMatchObject({ where: 'environment TASKWIRE_KINDS' });
    // A kind with no command is fine when a handlers module may register it.
    expect(run(parseWorkerCli(['--config', configFile({ handlers: './h.js', kinds: { mine: {} } })], ENV)).connections[0]!.capabilities).toEqual(['mine']);
  });

  it('as a program: a bad file is one line and exit 2; --print-config shows sources and kinds, the token masked', async () => {
    const bad = configFile({ kinds: { upper: { exec: 'tr a-z A-Z' } } });
    const child = spawnTs('src/worker.ts', ['--config', bad]);
    expect(await child.exited).toBe(2);
    expect(child.stderr).toMatch(/^taskwire-worker: config file \S+worker\.json: key "kinds\.upper\.exec": .+ \(see "taskwire-worker --help"\)\n$/);

    const file = configFile({ token: 's3cret-token', concurrency: 3, kinds: { upper: { exec: ['sh', '-c', 'tr a-z A-Z'], concurrency: 2 }, sha256: {} } });
    const print = spawnTs('src/worker.ts', ['--config', file, '--print-config', '--prefetch', '7'], { TASKWIRE_LOG_LEVEL: 'error' });
    expect(await print.exited).toBe(0);
    expect(print.stdout).not.toContain('s3cret-token');
    expect(print.stdout).toMatch(/^token +\*{8} +\(file .+\)$/m);
    expect(print.stdout).toMatch(/^concurrency +3 +\(file .+\)$/m);
    expect(print.stdout).toMatch(/^prefetch +7 +\(command line\)$/m);
    expect(print.stdout).toMatch(/^log-level +"error" +\(environment\)$/m);
    expect(print.stdout).toMatch(/^kinds +upper,sha256 +\(file .+\)$/m);
    expect(print.stdout).toMatch(/^kinds\.upper +exec \["sh","-c","tr a-z A-Z"\], concurrency 2/m);
  });

  it('end to end: one config-file worker serves an exec kind (own concurrency) and a built-in kind', async () => {
    const { address } = await startScheduler();
    const file = configFile({
      server: address,
      name: 'CF',
      logLevel: 'error',
      kinds: { upper: { exec: ['sh', '-c', 'sleep 0.05; tr a-z A-Z'], concurrency: 2 }, sha256: {} },
    });
    const worker = spawnTs('src/worker.ts', ['--config', file]);
    await worker.waitForLine(/taskwire worker CF connected/);
    await worker.waitForLine(/taskwire worker CF\/upper connected/);
    const client = await connectClient(address);
    const workers = await client.workers();
    expect(workers.map((w) => [w.name, w.capabilities, w.concurrency, w.pool, w.host]).sort()).toEqual([
      ['CF', ['sha256'], 4, '', hostname()],
      ['CF/upper', ['upper'], 2, '', hostname()],
    ]);
    const words = Array.from({ length: 12 }, (_, i) => `word ${i}`);
    let mostUpper = 0;
    const watching = (async () => {
      for (let done = false; !done; ) {
        const ws = await client.workers();
        mostUpper = Math.max(mostUpper, ws.find((w) => w.name === 'CF/upper')?.running ?? 0);
        done = ((await client.stats()).kinds['upper']?.done ?? 0) === words.length;
      }
    })();
    const [uppers, hashes] = await Promise.all([
      client.submitMany(words.map((args) => ({ kind: 'upper', args }))),
      client.submitMany(words.map((args) => ({ kind: 'sha256', args }))),
    ]);
    await watching;
    expect(uppers.map((r) => (r instanceof Error ? r.message : r.text()))).toEqual(words.map((w) => w.toUpperCase()));
    expect(hashes.map((r) => (r instanceof Error ? r.message : r.text()))).toEqual(words.map(sha256));
    expect(mostUpper).toBe(2); // its own limit, on its own connection
    worker.proc.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  });

  it('a pool reads the file in every process: processes and kinds from it, pool name on every connection', async () => {
    const { address } = await startScheduler();
    const file = configFile({
      server: address,
      name: 'PF',
      processes: 2,
      restartBaseMs: 20,
      kinds: { upper: { exec: ['tr', 'a-z', 'A-Z'], concurrency: 1 }, sha256: {} },
    });
    const pool = spawnTs('src/worker.ts', ['--config', file, '--log-level', 'error']);
    await pool.waitForLine(/taskwire worker pool PF: 2 process\(es\) ready/);
    const client = await connectClient(address);
    await waitFor(async () => (await client.workers()).length === 4, 'four connections');
    const workers = await client.workers();
    expect(workers.map((w) => [w.name, w.capabilities, w.pool]).sort()).toEqual([
      ['PF-1', ['sha256'], 'PF'],
      ['PF-1/upper', ['upper'], 'PF'],
      ['PF-2', ['sha256'], 'PF'],
      ['PF-2/upper', ['upper'], 'PF'],
    ]);
    expect((await client.submit('upper', 'pooled')).text()).toBe('POOLED');
    expect((await client.submit('sha256', 'pooled')).text()).toBe(sha256('pooled'));
    pool.proc.kill('SIGTERM');
    expect(await pool.exited).toBe(0);
  });
});
