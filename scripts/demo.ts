/**
 * `npm run demo`: the real thing, end to end. Starts a scheduler and three
 * worker processes with different capabilities, submits strings and
 * arithmetic through the client library (a division by zero, a job that times
 * out and is retried, a paid/free mix), prints what happened to each job, and
 * shuts everything down. The scheduler also serves the HTTP API and the
 * dashboard (docs/HTTP.md); its URL is printed first. `npm run demo -- --keep`
 * leaves everything running afterwards, to look around the dashboard (Ctrl-C
 * stops it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Client, type JobInfo, type SubmitOptions } from '../src/client.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const children: ChildProcess[] = [];

/** Starts `node --import tsx <script> ...args`; resolves with the first stdout line matching `re`. */
async function start(label: string, script: string, args: string[], re: RegExp): Promise<RegExpMatchArray> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start within 20 s:\n${err}`)), 20_000);
    child.stdout!.on('data', (d: string) => {
      out += d;
      const m = out.match(re);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${code ?? signal}) before it was ready:\n${err}`));
    });
  });
}

async function stopAll(): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = once(c, 'exit');
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }),
  );
}

interface DemoJob {
  kind: string;
  args: unknown;
  label: string;
  opts?: SubmitOptions;
}

const JOBS: DemoJob[] = [
  { kind: 'sha256', args: 'Hello, World!', label: '"Hello, World!"' },
  { kind: 'sha256', args: 'taskwire', label: '"taskwire"' },
  { kind: 'sha256', args: 'naïve café ☕', label: '"naïve café ☕"' },
  { kind: 'add', args: [2, 3], label: '2 + 3' },
  { kind: 'subtract', args: [10, 4.5], label: '10 - 4.5' },
  { kind: 'multiply', args: [6, 7], label: '6 * 7' },
  { kind: 'divide', args: [22, 7], label: '22 / 7' },
  { kind: 'divide', args: [1, 0], label: '1 / 0' },
  { kind: 'report', args: 'Q3', label: 'report Q3', opts: { timeoutMs: 500, retries: 2 } },
  ...['free-10s', 'paid-5s', 'free-2s', 'paid-3s'].map((name) => ({
    kind: 'sha256',
    args: name,
    label: `"${name}"`,
    opts: { tier: name.startsWith('paid') ? ('paid' as const) : ('free' as const), estMs: Number.parseInt(name.slice(5), 10) * 1000 },
  })),
];

function cell(text: string, width: number): string {
  return text.length > width ? text.slice(0, width - 1) + '…' : text.padEnd(width);
}

function row(info: JobInfo, job: DemoJob, outcome: string): string {
  const wait = info.startedAt !== undefined ? `${info.startedAt - info.createdAt} ms` : '-';
  const run = info.startedAt !== undefined && info.finishedAt !== undefined ? `${info.finishedAt - info.startedAt} ms` : '-';
  const tier = job.opts?.tier ?? '';
  return [
    cell(String(info.id), 4),
    cell(info.kind, 9),
    cell(job.label, 16),
    cell(tier, 5),
    cell(info.state, 9),
    cell(outcome, 40),
    cell(info.worker ?? '-', 7),
    cell(String(info.attempts), 8),
    cell(wait, 9),
    run,
  ].join(' ');
}

async function main(): Promise<void> {
  process.stderr.write('starting a scheduler and three workers...\n');
  const m = await start(
    'scheduler',
    'src/server.ts',
    ['--port', '0', '--http', '127.0.0.1:0', '--log-level', 'error', '--retry-base-ms', '100'],
    /taskwire scheduler listening on (\S+):(\d+)\ntaskwire http listening on (\S+):(\d+)/,
  );
  const address = `${m[1]}:${m[2]}`;
  dashboard = `http://${m[3]}:${m[4]}/`;
  process.stderr.write(`dashboard: ${dashboard}\n`);
  const ready = /taskwire worker \S+ connected/;
  await Promise.all([
    start('W1', 'src/worker.ts', ['--server', address, '-w', 'W1', '-c', 'sha256', 'add', 'subtract', '--concurrency', '4'], ready),
    start('W2', 'src/worker.ts', ['--server', address, '-w', 'W2', '-c', 'sha256', 'multiply', 'divide', '--concurrency', '4', '--processing-ms', '30'], ready),
    start('W3', 'scripts/demo-worker.ts', [address, 'W3'], ready),
  ]);
  process.stderr.write(`scheduler on ${address}; workers W1 (sha256 add subtract), W2 (sha256 multiply divide), W3 (report sha256, embedded)\n\n`);

  const client = await Client.connect(address, { name: 'demo' });
  const outcomes = await Promise.all(
    JOBS.map(async (job) => {
      const acked = await client.enqueue(job.kind, job.args, job.opts);
      try {
        const r = await client.wait(acked.id);
        return { id: acked.id, outcome: r.text() };
      } catch (err) {
        return { id: acked.id, outcome: `error: ${err instanceof Error ? err.message : String(err)}` };
      }
    }),
  );
  const header = ['job ', 'kind     ', 'input           ', 'tier ', 'status   ', 'result'.padEnd(40), 'worker ', 'attempts', 'wait     ', 'run'];
  process.stdout.write(header.join(' ') + '\n');
  for (let i = 0; i < JOBS.length; i++) {
    const { id, outcome } = outcomes[i]!;
    process.stdout.write(row(await client.status(id), JOBS[i]!, outcome) + '\n');
  }
  const stats = await client.stats();
  const t = stats.totals;
  process.stdout.write(`\nscheduler: ${stats.connections.workers} workers, ${t.submitted} submitted, ${t.queued} queued, ${t.running} running\n`);
  await client.close();
}

let dashboard = '';

try {
  await main();
  if (process.argv.includes('--keep')) {
    process.stderr.write(`\ndashboard: ${dashboard}  (everything keeps running; Ctrl-C stops it)\n`);
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  }
  await stopAll();
  process.stderr.write(`\nall processes stopped.${dashboard === '' ? '' : ` (the dashboard was at ${dashboard})`}\n`);
} catch (err) {
  process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await stopAll();
  process.exitCode = 1;
}
