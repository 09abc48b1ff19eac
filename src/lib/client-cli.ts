/**
 * The `taskwire` command line: submit jobs (one, or one per line of a file
 * or stdin, pipelined, with a progress bar), and query or steer the
 * scheduler (status, wait, cancel, jobs, workers, stats, compact). Runs from
 * `src/client.ts`, the package's `taskwire` bin.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Client, formatAddress, JobResult, type EnqueueResult, type ListOptions, type SubmitItem, type SubmitManyOptions, type SubmitOptions } from '../client.js';
import { DEFAULT_SERVER, parseAddress, parseUint, UsageError } from './cli.js';
import { errnoCode, JobCancelledError, JobFailedError, TaskwireError, toError } from './errors.js';
import { renderProgress } from './progress-bar.js';
import { DEFAULT_RETRIES, JOB_STATES, MAX_STR8_BYTES, U32_MAX, type JobInfo, type JobState, type StatsInfo, type WorkerInfo } from './protocol.js';

/** Kinds whose CLI operands are two numbers sent as JSON `[a, b]`. */
const ARITHMETIC_KINDS: ReadonlySet<string> = new Set(['add', 'subtract', 'multiply', 'divide']);

/** Exit codes of the CLI. */
const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_UNREACHABLE = 3;

const COMMAND_LIST = `Usage: taskwire <command> [options]

Commands:
  submit [ARG...]          run one job and print its result (default kind sha256:
                           the SHA-256 of the ARGs joined by spaces)
  submit --file FILE       one job per line of FILE ("-" = stdin), pipelined;
                           results printed in input order, one per line
  status ID                show a job
  wait ID                  wait for a job and print its result
  cancel ID                cancel a queued or running job
  jobs                     list jobs (--status S, --kind K, --limit N)
  workers                  list connected workers
  stats                    scheduler counters
  compact                  compact the scheduler's journal
  help [COMMAND]           this help
`;

const USAGE = `${COMMAND_LIST}
Options of every command:
  --server HOST:PORT       scheduler address (default: $TASKWIRE_SERVER, else ${DEFAULT_SERVER})
  --token TOKEN            token the scheduler requires (default: $TASKWIRE_TOKEN)
  --json                   machine-readable output (JSON; one object per line for submit)
  -h, --help               help

Options of submit:
  --kind KIND              job kind (default sha256); add, subtract, multiply and
                           divide take two numbers: taskwire submit --kind add 2 3
  --priority N             0-255, higher runs first (default 0)
  --tier paid|free         paid = priority 10, free = 0; --priority wins over it
  --timeout MS             run timeout per attempt (default: the scheduler's)
  --retries N              retries after the first attempt (default: the scheduler's)
  --est-ms MS              estimated run time; shorter jobs run first
  --delay MS               do not start before MS milliseconds from now
  --key KEY                idempotency key: reuse the live job with this key
  --file FILE              one job per line ("-" = stdin)
  --no-wait                queue only and print the job ids
  Negative operands work as is (taskwire submit --kind add -- -2 3 also does).

Options of wait:   --timeout MS   give up waiting after MS milliseconds
Options of jobs:   --status STATE (${JOB_STATES.join(', ')})   --kind KIND   --limit N

Exit status: 0 ok, 1 a job failed or the scheduler refused the request,
2 usage error, 3 the scheduler cannot be reached (or the connection was lost).
`;

/** parseArgs option table entry. */
interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
}

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  server: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const SUBMIT_OPTIONS: Record<string, OptionSpec> = {
  kind: { type: 'string' },
  priority: { type: 'string' },
  tier: { type: 'string' },
  timeout: { type: 'string' },
  retries: { type: 'string' },
  'est-ms': { type: 'string' },
  delay: { type: 'string' },
  key: { type: 'string' },
  file: { type: 'string' },
  'no-wait': { type: 'boolean' },
};

/** Parsed command line of one command. */
interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  json: boolean;
}

/** The streams and environment the CLI uses (see {@link runCli}). */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

/** What a command does once connected; returns the exit code. */
type Action = (client: Client) => Promise<number>;

interface CommandSpec {
  synopsis: string;
  options: Record<string, OptionSpec>;
  /** Validates the command line (throws UsageError) before any connection is made. */
  prepare(p: Parsed, io: CliIo): Action;
}

const COMMANDS: Record<string, CommandSpec> = {
  submit: { synopsis: 'submit [options] [ARG...] | submit --file FILE', options: SUBMIT_OPTIONS, prepare: prepareSubmit },
  status: {
    synopsis: 'status ID',
    options: {},
    prepare: (p, io) => {
      const id = jobIdArg(p);
      return async (c) => {
        const info = await c.status(id);
        write(io, p.json ? JSON.stringify(info) + '\n' : formatJob(info));
        return EXIT_OK;
      };
    },
  },
  wait: {
    synopsis: 'wait ID [--timeout MS]',
    options: { timeout: { type: 'string' } },
    prepare: (p, io) => {
      const id = jobIdArg(p);
      const timeoutMs = optUint(p, 'timeout', U32_MAX);
      return async (c) => {
        const outcome = await settle(c.wait(id, timeoutMs === undefined ? {} : { timeoutMs }));
        return printOutcome(io, p.json, outcome);
      };
    },
  },
  cancel: {
    synopsis: 'cancel ID',
    options: {},
    prepare: (p, io) => {
      const id = jobIdArg(p);
      return async (c) => {
        const info = await c.cancel(id);
        write(io, p.json ? JSON.stringify(info) + '\n' : `job ${info.id} ${info.state.toLowerCase()}\n`);
        return EXIT_OK;
      };
    },
  },
  jobs: {
    synopsis: 'jobs [--status STATE] [--kind KIND] [--limit N]',
    options: { status: { type: 'string' }, kind: { type: 'string' }, limit: { type: 'string' } },
    prepare: (p, io) => {
      noPositionals(p);
      const opts: ListOptions = {};
      const status = optString(p, 'status');
      if (status !== undefined) {
        const state = JOB_STATES.find((s) => s === status.toUpperCase());
        if (state === undefined) throw new UsageError(`--status must be one of ${JOB_STATES.join(', ')}, got "${status}"`);
        opts.state = state;
      }
      const kind = optString(p, 'kind');
      if (kind !== undefined) opts.kind = str8Option('kind', kind);
      const limit = optUint(p, 'limit', U32_MAX);
      if (limit !== undefined) opts.limit = limit;
      return async (c) => {
        const jobs = await c.list(opts);
        write(io, p.json ? JSON.stringify(jobs) + '\n' : formatJobs(jobs));
        return EXIT_OK;
      };
    },
  },
  workers: {
    synopsis: 'workers',
    options: {},
    prepare: (p, io) => {
      noPositionals(p);
      return async (c) => {
        const workers = await c.workers();
        write(io, p.json ? JSON.stringify(workers) + '\n' : formatWorkers(workers));
        return EXIT_OK;
      };
    },
  },
  stats: {
    synopsis: 'stats',
    options: {},
    prepare: (p, io) => {
      noPositionals(p);
      return async (c) => {
        const stats = await c.stats();
        write(io, p.json ? JSON.stringify(stats) + '\n' : formatStats(stats));
        return EXIT_OK;
      };
    },
  },
  compact: {
    synopsis: 'compact',
    options: {},
    prepare: (p, io) => {
      noPositionals(p);
      return async (c) => {
        const journal = await c.compact();
        write(io, p.json ? JSON.stringify(journal) + '\n' : `journal compacted: ${formatBytes(journal.bytes)}, ${journal.compactions} compactions\n`);
        return EXIT_OK;
      };
    },
  },
};

/**
 * Runs the `taskwire` CLI on `argv` (without node and script) and returns
 * the exit code; never calls `process.exit`.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let address = '';
  try {
    const args = argv.map(escapeNegative);
    const name = args[0];
    if (name === undefined) throw new UsageError('missing command');
    if (name === 'help' || name === '--help' || name === '-h') {
      const topic = args[1] !== undefined && Object.hasOwn(COMMANDS, args[1]) ? COMMANDS[args[1]] : undefined;
      write(io, topic === undefined ? USAGE : `Usage: taskwire ${topic.synopsis}\n\n${USAGE}`);
      return EXIT_OK;
    }
    if (name.startsWith('-')) throw new UsageError(`expected a command before the options, got "${name}"`);
    const spec = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown command "${name}"`);
    const parsed = parseCommandLine(args.slice(1), spec.options);
    if (parsed.values['help'] === true) {
      write(io, `Usage: taskwire ${spec.synopsis}\n\n${USAGE}`);
      return EXIT_OK;
    }
    const server = optString(parsed, 'server') ?? (io.env['TASKWIRE_SERVER'] || DEFAULT_SERVER);
    const { host, port } = parseAddress(server);
    address = formatAddress(host, port);
    const token = optString(parsed, 'token') ?? (io.env['TASKWIRE_TOKEN'] || undefined);
    const action = spec.prepare(parsed, io);
    const client = await Client.connect({ host, port }, token === undefined ? { name: 'taskwire-cli' } : { name: 'taskwire-cli', token });
    try {
      return await action(client);
    } finally {
      await client.close({ timeoutMs: 1000 });
    }
  } catch (err) {
    return reportError(io, err, address);
  }
}

/** Prints an error the way the CLI reports it, and returns its exit code. */
function reportError(io: CliIo, err: unknown, address: string): number {
  if (err instanceof UsageError) {
    io.stderr.write(`taskwire: ${err.message}\n\n${COMMAND_LIST}\nRun "taskwire --help" for the options.\n`);
    return EXIT_USAGE;
  }
  const code = exitCodeOf(err);
  if (err instanceof TaskwireError && (err.code === 'CLOSED' || err.code === 'HEARTBEAT_TIMEOUT')) {
    io.stderr.write(`taskwire: lost the connection to the scheduler at ${address}: ${err.message}\n`);
  } else if (err instanceof TaskwireError && err.code === 'UNREACHABLE') {
    io.stderr.write(`taskwire: ${err.message}\n`);
  } else {
    io.stderr.write(`taskwire: ${describeError(err)}\n`);
  }
  return code;
}

function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT_USAGE;
  if (err instanceof TaskwireError && (err.code === 'UNREACHABLE' || err.code === 'CLOSED' || err.code === 'HEARTBEAT_TIMEOUT')) {
    return EXIT_UNREACHABLE;
  }
  return EXIT_FAILED;
}

/** One line about an error: `job 12 failed: division by zero`, `queue full (BUSY)`. */
function describeError(err: unknown): string {
  if (err instanceof JobFailedError) return `job ${err.jobId} failed: ${err.message}`;
  if (err instanceof JobCancelledError) return err.message;
  if (err instanceof TaskwireError) return `${err.message} (${err.code})`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** `-2`, `-.5`: a negative number, not an option. NUL cannot occur in argv, so the escape is unambiguous. */
function escapeNegative(arg: string): string {
  return /^-\.?\d/.test(arg) ? `\0${arg}` : arg;
}

function unescape(arg: string): string {
  return arg.startsWith('\0') ? arg.slice(1) : arg;
}

function parseCommandLine(args: string[], options: Record<string, OptionSpec>): Parsed {
  let result;
  try {
    result = parseArgs({ args, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    // node:util parseArgs throws TypeError ERR_PARSE_ARGS_* for unknown options and missing values.
    throw new UsageError(toError(err).message);
  }
  const values: Record<string, string | boolean | undefined> = {};
  for (const [k, v] of Object.entries(result.values)) {
    values[k] = typeof v === 'string' ? unescape(v) : typeof v === 'boolean' ? v : undefined;
  }
  return { values, positionals: result.positionals.map(unescape), json: values['json'] === true };
}

function optString(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

function optUint(p: Parsed, name: string, max: number): number | undefined {
  const v = optString(p, name);
  return v === undefined ? undefined : parseUint(name, v, 0, max);
}

function str8Option(name: string, value: string): string {
  if (Buffer.byteLength(value) > MAX_STR8_BYTES) throw new UsageError(`--${name} is longer than ${MAX_STR8_BYTES} bytes`);
  if (value === '') throw new UsageError(`--${name} must not be empty`);
  return value;
}

function noPositionals(p: Parsed): void {
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument "${p.positionals[0]}"`);
}

function jobIdArg(p: Parsed): number {
  const [text, extra] = p.positionals;
  if (text === undefined) throw new UsageError('missing job ID');
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  const id = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(id)) throw new UsageError(`bad job ID "${text}": expected a non-negative integer`);
  return id;
}

function parseNumber(text: string): number | undefined {
  const n = Number(text);
  return text.trim() === '' || !Number.isFinite(n) ? undefined : n;
}

/** Operands of an arithmetic job from the command line. Throws UsageError. */
function arithmeticArgs(kind: string, operands: string[]): [number, number] {
  if (operands.length !== 2) throw new UsageError(`--kind ${kind} takes two numbers, got ${operands.length} arguments`);
  const a = parseNumber(operands[0]!);
  const b = parseNumber(operands[1]!);
  if (a === undefined || b === undefined) {
    throw new UsageError(`--kind ${kind} takes two numbers, got "${operands[0]}" and "${operands[1]}"`);
  }
  return [a, b];
}

/**
 * Arguments of one `--file` line: for arithmetic kinds two numbers separated by
 * blanks or a comma become `[a, b]`; any other line goes as is (JSON such as
 * `{"a":1,"b":2}` works, and a bad line fails as a job, on its own line).
 */
function lineArgs(kind: string, line: string): unknown {
  if (!ARITHMETIC_KINDS.has(kind)) return line;
  const parts = line.trim().split(/[\s,]+/);
  if (parts.length === 2) {
    const a = parseNumber(parts[0]!);
    const b = parseNumber(parts[1]!);
    if (a !== undefined && b !== undefined) return [a, b];
  }
  return line;
}

function prepareSubmit(p: Parsed, io: CliIo): Action {
  const kind = str8Option('kind', optString(p, 'kind') ?? 'sha256');
  const opts: SubmitOptions = {};
  const priority = optUint(p, 'priority', 255);
  if (priority !== undefined) opts.priority = priority;
  const tier = optString(p, 'tier');
  if (tier !== undefined) {
    if (tier !== 'paid' && tier !== 'free') throw new UsageError(`--tier must be "paid" or "free", got "${tier}"`);
    opts.tier = tier;
  }
  const timeoutMs = optUint(p, 'timeout', U32_MAX);
  if (timeoutMs !== undefined) opts.timeoutMs = timeoutMs;
  const retries = optUint(p, 'retries', DEFAULT_RETRIES - 1);
  if (retries !== undefined) opts.retries = retries;
  const estMs = optUint(p, 'est-ms', U32_MAX);
  if (estMs !== undefined) opts.estMs = estMs;
  const delayMs = optUint(p, 'delay', U32_MAX);
  if (delayMs !== undefined) opts.delayMs = delayMs;
  const key = optString(p, 'key');
  if (key !== undefined) opts.key = str8Option('key', key);
  const noWait = p.values['no-wait'] === true;
  const file = optString(p, 'file');

  if (file !== undefined) {
    if (p.positionals.length > 0) throw new UsageError('give job arguments or --file, not both');
    if (key !== undefined) throw new UsageError('--key applies to one job; it cannot be used with --file');
    const lines = file === '-' ? readLines(io.stdin) : readFileLines(file);
    return (c) => submitFile(c, io, p.json, kind, opts, lines, noWait);
  }

  if (p.positionals.length === 0) throw new UsageError('missing job argument (or --file FILE)');
  // sha256 and other kinds take text: several arguments are joined by spaces, like echo.
  const args = ARITHMETIC_KINDS.has(kind) ? arithmeticArgs(kind, p.positionals) : p.positionals.join(' ');
  if (noWait) {
    return async (c) => {
      const ack = await c.enqueue(kind, args, opts);
      write(io, p.json ? JSON.stringify({ id: ack.id, existing: ack.existing }) + '\n' : `${ack.id}\n`);
      return EXIT_OK;
    };
  }
  return async (c) => printOutcome(io, p.json, await settle(c.submit(kind, args, opts)));
}

/** A job outcome as a value: the result or the error it failed with. */
async function settle(promise: Promise<JobResult>): Promise<JobResult | Error> {
  try {
    return await promise;
  } catch (err) {
    // Connection and server errors other than job outcomes are the command's error.
    if (err instanceof JobFailedError || err instanceof JobCancelledError) return err;
    throw err;
  }
}

function printOutcome(io: CliIo, json: boolean, outcome: JobResult | Error): number {
  if (json) {
    write(io, JSON.stringify(outcomeJson(outcome)) + '\n');
    return outcome instanceof Error ? exitCodeOf(outcome) : EXIT_OK;
  }
  if (outcome instanceof Error) return reportError(io, outcome, '');
  write(io, outcome.text() + '\n');
  return EXIT_OK;
}

/** One job's outcome for `--json`. */
function outcomeJson(outcome: JobResult | EnqueueResult | Error, line?: number): Record<string, unknown> {
  const base: Record<string, unknown> = line === undefined ? {} : { line };
  if (outcome instanceof JobResult) {
    return { ...base, id: outcome.id, state: 'DONE', attempt: outcome.attempt, result: outcome.text() };
  }
  if (outcome instanceof JobFailedError) {
    return { ...base, id: outcome.jobId, state: 'FAILED', attempts: outcome.attempts, permanent: outcome.permanent, error: outcome.message };
  }
  if (outcome instanceof JobCancelledError) return { ...base, id: outcome.jobId, state: 'CANCELLED' };
  if (outcome instanceof Error) {
    return { ...base, state: 'ERROR', code: outcome instanceof TaskwireError ? outcome.code : 'INTERNAL', error: outcome.message };
  }
  return { ...base, id: outcome.id, existing: outcome.existing };
}

/** Lines of a file, read whole (so the total, and an ETA, are known). Throws UsageError. */
function readFileLines(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read --file ${path}: ${errnoCode(toError(err)) ?? toError(err).message}`);
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop(); // the newline ending the last line
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.endsWith('\r')) lines[i] = line.slice(0, -1);
  }
  return lines;
}

/** Lines of a stream as they arrive (stdin may be endless: no total until its end). */
async function* readLines(input: NodeJS.ReadableStream): AsyncGenerator<string> {
  input.setEncoding('utf8');
  let rest = '';
  for await (const chunk of input as AsyncIterable<string>) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const line of parts) yield line.endsWith('\r') ? line.slice(0, -1) : line;
  }
  if (rest !== '') yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
}

async function submitFile(
  client: Client,
  io: CliIo,
  json: boolean,
  kind: string,
  opts: SubmitOptions,
  lines: string[] | AsyncIterable<string>,
  noWait: boolean,
): Promise<number> {
  const items: Iterable<SubmitItem> | AsyncIterable<SubmitItem> = Array.isArray(lines)
    ? lines.map((line) => ({ kind, args: lineArgs(kind, line), opts }))
    : (async function* () {
        for await (const line of lines) yield { kind, args: lineArgs(kind, line), opts };
      })();
  const progress = io.stderr.isTTY === true ? progressReporter(io.stderr) : undefined;
  const manyOpts: SubmitManyOptions = progress === undefined ? {} : { onSettled: progress.update };
  const results: Array<JobResult | EnqueueResult | Error> = noWait
    ? await client.enqueueMany(items, manyOpts)
    : await client.submitMany(items, manyOpts);
  progress?.done();
  let code = EXIT_OK;
  let out = '';
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    if (r instanceof Error) code = Math.max(code, exitCodeOf(r));
    if (json) out += JSON.stringify(outcomeJson(r, i + 1)) + '\n';
    else if (r instanceof JobResult) out += r.text() + '\n';
    else if (r instanceof Error) out += `error: ${describeError(r)}\n`;
    else out += `${r.id}\n`;
    if (out.length > 1 << 16) {
      write(io, out);
      out = '';
    }
  }
  write(io, out);
  if (code === EXIT_UNREACHABLE) io.stderr.write(`taskwire: lost the connection to the scheduler at ${client.address}\n`);
  return code;
}

/** Progress bar on a TTY, redrawn at most every 100 ms. */
function progressReporter(stream: NodeJS.WriteStream): { update: (done: number, total: number | undefined) => void; done: () => void } {
  const startedAt = Date.now();
  let drawnAt = startedAt; // first draw after 100 ms: an instant rate from one job is noise
  let shown = false;
  return {
    update: (done, total) => {
      const now = Date.now();
      if (now - drawnAt < 100 && done !== total) return;
      drawnAt = now;
      shown = true;
      const width = Math.max(20, (stream.columns || 80) - 1);
      stream.write(`\r${renderProgress({ done, total, elapsedMs: now - startedAt, width })}`);
    },
    done: () => {
      if (shown) stream.write('\r\x1b[K');
    },
  };
}

function write(io: CliIo, text: string): void {
  if (text !== '') io.stdout.write(text);
}

// ---------------------------------------------------------------------------
// Human-readable tables

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd() + '\n';
  return line(header) + rows.map(line).join('');
}

function ago(ms: number | undefined, now: number): string {
  if (ms === undefined) return '';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

function formatDurationMs(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function isoTime(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

function formatJob(j: JobInfo): string {
  const rows: Array<[string, string | undefined]> = [
    ['id', String(j.id)],
    ['kind', j.kind],
    ['state', j.state],
    ['priority', String(j.priority)],
    ['attempts', `${j.attempts} (max retries ${j.maxRetries})`],
    ['timeout', `${j.timeoutMs} ms`],
    ['created', isoTime(j.createdAt)],
    ['not before', isoTime(j.notBefore)],
    ['started', isoTime(j.startedAt)],
    ['finished', isoTime(j.finishedAt)],
    ['worker', j.worker],
    ['key', j.key],
    ['result', j.result],
    ['error', j.error],
  ];
  return rows
    .filter((r): r is [string, string] => r[1] !== undefined && r[1] !== '')
    .map(([k, v]) => `${k.padEnd(11)}${v}\n`)
    .join('');
}

function formatJobs(jobs: JobInfo[]): string {
  if (jobs.length === 0) return 'no jobs\n';
  const now = Date.now();
  return table(
    ['ID', 'STATE', 'KIND', 'PRI', 'ATTEMPTS', 'AGE', 'WORKER'],
    jobs.map((j) => [String(j.id), j.state, j.kind, String(j.priority), String(j.attempts), ago(j.createdAt, now), j.worker ?? '']),
  );
}

function formatWorkers(workers: WorkerInfo[]): string {
  if (workers.length === 0) return 'no workers connected\n';
  const now = Date.now();
  return table(
    ['ID', 'NAME', 'RUNNING', 'DONE', 'FAILED', 'STATE', 'UP', 'KINDS'],
    workers.map((w) => [
      w.id,
      w.name,
      `${w.running}/${w.concurrency}`,
      String(w.done),
      String(w.failed),
      w.draining ? 'draining' : 'active',
      ago(w.connectedAt, now),
      w.capabilities.join(','),
    ]),
  );
}

function formatStats(s: StatsInfo): string {
  let out =
    `server ${s.serverVersion}, up ${formatDurationMs(s.uptimeMs)}, ` +
    `${s.connections.clients} clients, ${s.connections.workers} workers\n` +
    `queued ${s.totals.queued}, running ${s.totals.running}, retained ${s.totals.retained}, submitted ${s.totals.submitted}\n`;
  const kinds = Object.entries(s.kinds);
  if (kinds.length > 0) {
    out +=
      '\n' +
      table(
        ['KIND', 'QUEUED', 'RUNNING', 'DONE', 'FAILED', 'CANCELLED', 'OLDEST', 'DONE/S', 'SUBMIT/S'],
        kinds.map(([kind, k]) => [
          kind,
          String(k.queued),
          String(k.running),
          String(k.done),
          String(k.failed),
          String(k.cancelled),
          k.oldestQueuedMs > 0 ? formatDurationMs(k.oldestQueuedMs) : '',
          String(Math.round(k.donePerSec)),
          String(Math.round(k.submittedPerSec)),
        ]),
      );
  }
  const j = s.journal;
  out += j === null
    ? '\njournal: none (state in memory only)\n'
    : `\njournal: fsync ${j.fsync}, ${formatBytes(j.bytes)}, ${j.compactions} compactions` +
      (j.lastCompactionAt === null ? '' : `, last ${new Date(j.lastCompactionAt).toISOString()}`) +
      `, replayed ${j.recordsReplayed} records in ${j.recoverMs} ms\n`;
  return out;
}

/** Runs the `taskwire` CLI on this process's argv and exits with its status. */
export async function main(): Promise<void> {
  // `taskwire ... | head`: a reader that goes away is not an error worth a stack trace.
  process.stdout.on('error', (err) => {
    if (errnoCode(err) === 'EPIPE') process.exit(EXIT_OK);
    throw err;
  });
  const code = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  });
  // Let what was written reach the pipe before exiting.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

