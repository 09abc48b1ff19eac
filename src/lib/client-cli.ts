/**
 * The `taskwire` command line: submit jobs (one, or one per line of a file
 * or stdin, streamed), and query or steer the scheduler (status, wait,
 * cancel, jobs, workers, stats, top, compact). `src/client.ts` (the package's
 * `taskwire` bin) loads this module only when it is run as a program, so the
 * client library never imports the CLI.
 *
 * Conventions: options may come before or after the command; a usage error
 * is one line on stderr and exit 2; with `--json` every outcome, errors
 * included, is one JSON object on stdout. Settings (`--server`, `--token`,
 * submit defaults) also come from `TASKWIRE_*` variables and a `--config`
 * file (src/lib/config.ts).
 */
import { openSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { Client, formatAddress, JobResult, type ConnectOptions, type EnqueueResult, type ListOptions, type SubmitOptions } from '../client.js';
import { DEFAULT_SERVER, EXIT, parseAddress, parseUint, plural, usageLine, UsageError } from './cli.js';
import { defineSchema, loadConfig, printConfig, type LoadedConfig } from './config.js';
import { errnoCode, JobCancelledError, JobFailedError, TaskwireError, toError } from './errors.js';
import { ProgressBar } from './progress-bar.js';
import { DEFAULT_RETRIES, JOB_STATES, MAX_STR8_BYTES, U32_MAX, type JobState, type WorkerInfo } from './protocol.js';
import { findCommand, formatOptions, parseArgv, type OptionTable, type ParsedArgv } from './cli/args.js';
import { formatBytes, formatJob, formatJobPage, formatStats, formatWorkers } from './cli/format.js';
import { countLines, readLines } from './cli/lines.js';
import { ARITHMETIC_KINDS, operandsFromArgv, operandsFromLine } from './cli/operands.js';
import { Output } from './cli/output.js';
import { LineError, StreamSubmitter, type LineArgs, type LineOutcome, type StreamSummary } from './cli/submit-stream.js';
import { runTop } from './cli/top.js';
import { tlsOptionsOf } from './cli/tls-options.js';

/** The streams, environment and stop signal the CLI uses (see {@link runCli}). */
export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  env: NodeJS.ProcessEnv;
  /**
   * Aborted on SIGINT/SIGTERM: a running command stops, reports what it has
   * (finished results, ids of jobs still queued) and exits 130.
   */
  signal?: AbortSignal;
}

/** Most lines of `submit --file` between submitted and printed, by default. */
const DEFAULT_WINDOW = 2000;
/** Most jobs one `jobs` page shows (the scheduler's LIST page limit, PROTOCOL.md §5.6). */
const MAX_PAGE = 1000;
/**
 * How long a job may go unfinished before the CLI checks whether any worker
 * runs its kind (a check at once would race a job that simply finishes).
 */
const NOTICE_DELAY_MS = 200;
/** Default frame limit until the scheduler's WELCOME says otherwise. */
const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Options and settings

const GLOBAL_OPTIONS: OptionTable = {
  server: { type: 'string', short: 's', arg: 'HOST:PORT', help: `scheduler address (default: $TASKWIRE_SERVER, else ${DEFAULT_SERVER})` },
  token: { type: 'string', arg: 'TOKEN', help: 'token the scheduler requires (default: $TASKWIRE_TOKEN)' },
  tls: { type: 'boolean', help: 'speak TLS (verified against the system CAs, or --tls-ca)' },
  'tls-ca': { type: 'string', arg: 'FILE', help: 'verify the scheduler against this CA (PEM)' },
  'tls-cert': { type: 'string', arg: 'FILE', help: 'client certificate for mutual TLS (PEM), with --tls-key' },
  'tls-key': { type: 'string', arg: 'FILE', help: 'its private key (PEM)' },
  'tls-servername': { type: 'string', arg: 'NAME', help: 'name the scheduler certificate must carry' },
  'tls-insecure': { type: 'boolean', help: 'do not verify the scheduler certificate (prints a warning)' },
  config: { type: 'string', arg: 'FILE', help: 'read settings from a JSON file (keys: long options in camelCase)' },
  json: { type: 'boolean', help: 'machine-readable output: every outcome, errors included,\nis one JSON object on stdout' },
  'print-config': { type: 'boolean', help: 'print the effective settings (secrets masked) and exit' },
  help: { type: 'boolean', short: 'h', help: 'help (taskwire help COMMAND: one command)' },
};

const SUBMIT_OPTIONS: OptionTable = {
  kind: { type: 'string', arg: 'KIND', help: 'job kind (default sha256); add, subtract, multiply and\ndivide take two numbers: taskwire submit --kind add 2 3' },
  file: { type: 'string', arg: 'FILE', help: 'one job per line of FILE ("-" = stdin), streamed' },
  priority: { type: 'string', arg: 'N', help: '0-255, higher runs first (default 0)' },
  tier: { type: 'string', arg: 'paid|free', help: 'paid = priority 10, free = 0; --priority wins over it' },
  timeout: { type: 'string', arg: 'MS', help: "run timeout per attempt, 1 or more (default: the scheduler's)" },
  retries: { type: 'string', arg: 'N', help: "retries after the first attempt (default: the scheduler's)" },
  'est-ms': { type: 'string', arg: 'MS', help: 'estimated run time; shorter jobs run first' },
  delay: { type: 'string', arg: 'MS', help: 'do not start before MS milliseconds from now' },
  at: { type: 'string', arg: 'TIME', help: 'do not start before TIME (ISO 8601, e.g. 2030-01-02T03:04:05Z;\nby this machine\'s clock, at most 49 days ahead)' },
  key: { type: 'string', arg: 'KEY', help: 'idempotency key: reuse the live job with this key' },
  'wait-timeout': { type: 'string', arg: 'MS', help: 'stop waiting after MS ms: print the job ids, exit 4\n(the jobs go on)' },
  window: { type: 'string', arg: 'N', help: `--file: most jobs in flight (default ${DEFAULT_WINDOW})` },
  'no-wait': { type: 'boolean', help: 'queue only and print the job ids' },
};

/**
 * Settings: options that may also come from the environment and the config
 * file. Per-invocation options (`--file`, `--key`, `--delay`, `--no-wait`,
 * filters of `jobs`, `wait --timeout`) are command-line only.
 */
const SETTINGS = defineSchema({
  server: { type: 'string', default: DEFAULT_SERVER, help: 'scheduler address', validate: addressProblem },
  token: { type: 'string', secret: true, help: 'token the scheduler requires' },
  tls: { type: 'boolean', default: false, help: 'speak TLS' },
  'tls-ca': { type: 'string', help: 'CA to verify the scheduler against' },
  'tls-cert': { type: 'string', help: 'client certificate (mutual TLS)' },
  'tls-key': { type: 'string', help: 'client key (mutual TLS)' },
  'tls-servername': { type: 'string', help: 'name the scheduler certificate must carry' },
  'tls-insecure': { type: 'boolean', default: false, help: 'do not verify the scheduler certificate' },
  json: { type: 'boolean', default: false, help: 'JSON output' },
  kind: { type: 'string', default: 'sha256', help: 'submit: job kind', validate: str8Problem },
  priority: { type: 'number', integer: true, min: 0, max: 255, help: 'submit: priority' },
  tier: { type: 'string', choices: ['paid', 'free'], help: 'submit: tier' },
  timeout: { type: 'number', integer: true, min: 1, max: U32_MAX, help: 'submit: run timeout per attempt, ms' },
  retries: { type: 'number', integer: true, min: 0, max: DEFAULT_RETRIES - 1, help: 'submit: retries' },
  'est-ms': { type: 'number', integer: true, min: 0, max: U32_MAX, help: 'submit: estimated run time, ms' },
  'wait-timeout': { type: 'number', integer: true, min: 1, max: U32_MAX, help: 'submit: wait at most this long, ms' },
  window: { type: 'number', integer: true, min: 1, max: 1_000_000, default: DEFAULT_WINDOW, help: 'submit --file: jobs in flight' },
});
type Settings = LoadedConfig<typeof SETTINGS>['values'];

/** Settings every command takes from the command line. */
const GLOBAL_SETTINGS = ['server', 'token', 'json', 'tls', 'tls-ca', 'tls-cert', 'tls-key', 'tls-servername', 'tls-insecure'] as const;
/** Settings `submit` takes from its command line. */
const SUBMIT_SETTINGS = ['kind', 'priority', 'tier', 'timeout', 'retries', 'est-ms', 'wait-timeout', 'window'] as const;

function addressProblem(value: unknown): string | undefined {
  try {
    parseAddress(String(value));
    return undefined;
  } catch {
    return 'HOST:PORT';
  }
}

function str8Problem(value: unknown): string | undefined {
  const n = Buffer.byteLength(String(value));
  return n === 0 || n > MAX_STR8_BYTES ? `1 to ${MAX_STR8_BYTES} bytes of text` : undefined;
}

// ---------------------------------------------------------------------------
// Commands

/** What a command does once connected; returns the exit code. */
type Action = (client: Client) => Promise<number>;

/** Everything a command sees while it checks its command line. */
interface Ctx {
  parsed: ParsedArgv;
  settings: Settings;
  io: CliIo;
  json: boolean;
  /** The address dialled (for messages). */
  address: string;
}

interface CommandSpec {
  /** Short form for the command list. */
  brief: string;
  synopsis: string;
  summary: string;
  options: OptionTable;
  /** Options of this command that are settings (see {@link SETTINGS}). */
  settings?: readonly string[];
  /** Text after the options in `taskwire help COMMAND`. */
  notes?: string;
  /** Validates the command line (throws UsageError) before any connection is made. */
  prepare(ctx: Ctx): Action;
}

const COMMANDS: Record<string, CommandSpec> = {
  submit: {
    brief: 'submit ARG... | --file FILE',
    synopsis: 'submit [options] ARG... | submit --file FILE [options]',
    summary: 'run a job and print its result (default kind sha256: the SHA-256 of the ARGs joined by spaces)',
    options: SUBMIT_OPTIONS,
    settings: SUBMIT_SETTINGS,
    notes:
      'ARGs are taken as UTF-8 text (the command line reaches programs already decoded);\n' +
      'for arbitrary bytes use --file: a line is exactly the bytes between two newlines,\n' +
      'hashed as given (a trailing \\r is kept, as sha256sum keeps it); blank lines are skipped.\n' +
      'With --file, results are printed in input order as soon as each job and all before it\n' +
      'are done; Ctrl-C prints what finished (and the ids of jobs still running) and exits 130.\n' +
      'Negative operands work as is: taskwire submit --kind add -2 3.\n',
    prepare: prepareSubmit,
  },
  status: {
    brief: 'status ID',
    synopsis: 'status ID',
    summary: 'show a job',
    options: {},
    prepare: ({ parsed, io, json }) => {
      const id = jobIdArg(parsed);
      return async (c) => {
        const info = await c.status(id);
        write(io, json ? JSON.stringify(info) + '\n' : formatJob(info));
        return EXIT.OK;
      };
    },
  },
  wait: {
    brief: 'wait ID',
    synopsis: 'wait ID [--timeout MS]',
    summary: 'wait for a job and print its result',
    options: { timeout: { type: 'string', arg: 'MS', help: 'give up after MS milliseconds (exit 4; the job goes on)' } },
    prepare: ({ parsed, io, json, address }) => {
      const id = jobIdArg(parsed);
      const timeoutMs = optUint(parsed, 'timeout', U32_MAX, 1);
      return async (c) => {
        const outcome = await untilStopped(settle(c.wait(id, timeoutMs === undefined ? {} : { timeoutMs })), io.signal);
        return printJobOutcome(io, json, address, id, outcome, timeoutMs);
      };
    },
  },
  cancel: {
    brief: 'cancel ID',
    synopsis: 'cancel ID',
    summary: 'cancel a queued or running job',
    options: {},
    prepare: ({ parsed, io, json }) => {
      const id = jobIdArg(parsed);
      return async (c) => {
        const info = await c.cancel(id);
        write(io, json ? JSON.stringify(info) + '\n' : `job ${info.id} ${info.state.toLowerCase()}\n`);
        return EXIT.OK;
      };
    },
  },
  jobs: {
    brief: 'jobs',
    synopsis: 'jobs [--status STATE] [--kind KIND] [--limit N] [--after ID] [--oldest] [--follow]',
    summary: 'list jobs, newest first, a page at a time',
    options: {
      status: { type: 'string', arg: 'STATE', help: `only jobs in STATE (${JOB_STATES.join(', ')})` },
      kind: { type: 'string', arg: 'KIND', help: 'only jobs of KIND' },
      limit: { type: 'string', arg: 'N', help: `jobs per page, 1-${MAX_PAGE} (default 100)` },
      after: { type: 'string', arg: 'ID', help: 'the page after job ID (the footer says which)' },
      oldest: { type: 'boolean', help: 'oldest first' },
      follow: { type: 'boolean', help: 'then print every state change as it happens (of --kind,\nin --status) until Ctrl-C' },
    },
    prepare: ({ parsed, io, json }) => {
      noPositionals(parsed);
      const opts: ListOptions = { order: parsed.values['oldest'] === true ? 'oldest' : 'newest' };
      let more = 'taskwire jobs';
      const status = optString(parsed, 'status');
      if (status !== undefined) {
        const state = JOB_STATES.find((s) => s === status.toUpperCase());
        if (state === undefined) throw new UsageError(`--status must be one of ${JOB_STATES.join(', ')}, got "${status}"`);
        opts.state = state as JobState;
        more += ` --status ${state}`;
      }
      const kind = optString(parsed, 'kind');
      if (kind !== undefined) {
        opts.kind = str8Option('kind', kind);
        more += ` --kind ${shellWord(kind)}`;
      }
      const limit = optUint(parsed, 'limit', MAX_PAGE, 1);
      if (limit !== undefined) {
        opts.limit = limit;
        more += ` --limit ${limit}`;
      }
      if (opts.order === 'oldest') more += ' --oldest';
      const after = optUint(parsed, 'after', Number.MAX_SAFE_INTEGER, 1);
      if (after !== undefined) opts.afterId = after;
      const follow = parsed.values['follow'] === true;
      return async (c) => {
        if (follow) {
          // Subscribe before listing, so no change falls between the page and the stream.
          await c.follow(
            (n) => {
              if (opts.state !== undefined && n.state !== opts.state) return;
              write(io, json ? JSON.stringify(n) + '\n' : `${n.jobId} ${n.kind} ${n.state}${n.attempt > 0 ? ` (attempt ${n.attempt})` : ''}\n`);
            },
            opts.kind === undefined ? {} : { kind: opts.kind },
          );
        }
        const page = await c.listPage(opts);
        write(io, json ? JSON.stringify(page) + '\n' : formatJobPage(page, Date.now(), more));
        if (!follow) return EXIT.OK;
        const stopped = await untilStopped(c.closedPromise(), io.signal);
        return stopped === STOPPED ? EXIT.INTERRUPTED : EXIT.UNREACHABLE;
      };
    },
  },
  workers: {
    brief: 'workers',
    synopsis: 'workers',
    summary: 'list connected workers',
    options: {},
    prepare: ({ parsed, io, json }) => {
      noPositionals(parsed);
      return async (c) => {
        const workers = await c.workers();
        write(io, json ? JSON.stringify(workers) + '\n' : formatWorkers(workers, Date.now()));
        return EXIT.OK;
      };
    },
  },
  stats: {
    brief: 'stats',
    synopsis: 'stats',
    summary: 'scheduler counters',
    options: {},
    prepare: ({ parsed, io, json }) => {
      noPositionals(parsed);
      return async (c) => {
        const stats = await c.stats();
        write(io, json ? JSON.stringify(stats) + '\n' : formatStats(stats));
        return EXIT.OK;
      };
    },
  },
  top: {
    brief: 'top',
    synopsis: 'top [--interval MS]',
    summary: 'live view of queues and workers (q or Ctrl-C quits); one snapshot when not on a terminal',
    options: { interval: { type: 'string', arg: 'MS', help: 'refresh period, 100 or more (default 1000)' } },
    prepare: ({ parsed, io, json }) => {
      noPositionals(parsed);
      if (json) throw new UsageError('top has no --json output; use stats --json and workers --json');
      const intervalMs = optUint(parsed, 'interval', U32_MAX, 100) ?? 1000;
      return async (c) => {
        await runTop(c, io, io.signal === undefined ? { intervalMs } : { intervalMs, signal: io.signal });
        return EXIT.OK;
      };
    },
  },
  retry: {
    brief: 'retry ID | --failed',
    synopsis: 'retry ID | retry --failed|--cancelled [--kind KIND] [--limit N]',
    summary: 'run a FAILED or CANCELLED job again; --failed: every failed job (of KIND)',
    options: {
      failed: { type: 'boolean', help: 'retry FAILED jobs, newest first' },
      cancelled: { type: 'boolean', help: 'retry CANCELLED jobs, newest first' },
      kind: { type: 'string', arg: 'KIND', help: 'with --failed/--cancelled: only jobs of KIND' },
      limit: { type: 'string', arg: 'N', help: 'with --failed/--cancelled: at most N jobs (default: all)' },
    },
    prepare: ({ parsed, io, json }) => {
      const failed = parsed.values['failed'] === true;
      const cancelled = parsed.values['cancelled'] === true;
      if (!failed && !cancelled) {
        for (const name of ['kind', 'limit']) if (parsed.values[name] !== undefined) throw new UsageError(`--${name} goes with --failed or --cancelled`);
        const id = jobIdArg(parsed);
        return async (c) => {
          const info = await c.retry(id);
          write(io, json ? JSON.stringify(info) + '\n' : `job ${info.id} ${info.state.toLowerCase()} again\n`);
          return EXIT.OK;
        };
      }
      if (failed && cancelled) throw new UsageError('give --failed or --cancelled, not both');
      noPositionals(parsed);
      const kind = optString(parsed, 'kind');
      if (kind !== undefined) str8Option('kind', kind);
      const limit = optUint(parsed, 'limit', Number.MAX_SAFE_INTEGER, 1) ?? Infinity;
      const state = failed ? 'FAILED' : 'CANCELLED';
      return async (c) => {
        // The scheduler retries a bounded slice per request (PROTOCOL.md §5.8); walk the cursor.
        let retried = 0;
        let afterId: number | undefined;
        do {
          const page = await c.retryMany({ state, ...(kind === undefined ? {} : { kind }), limit: Math.min(1000, limit - retried), ...(afterId === undefined ? {} : { afterId }) });
          retried += page.retried;
          afterId = page.next;
        } while (afterId > 0 && retried < limit && io.signal?.aborted !== true);
        write(io, json ? JSON.stringify({ state, kind, retried }) + '\n' : `${plural(retried, `${state.toLowerCase()} job`)} queued again\n`);
        return EXIT.OK;
      };
    },
  },
  pause: {
    brief: 'pause KIND',
    synopsis: 'pause KIND',
    summary: 'stop dispatching jobs of KIND (submits still queue; kept across restarts)',
    options: {},
    prepare: ({ parsed, io, json }) => {
      const kind = kindArg(parsed);
      return async (c) => {
        const r = await c.pause(kind);
        write(io, json ? JSON.stringify(r) + '\n' : `${r.kind} paused\n`);
        return EXIT.OK;
      };
    },
  },
  resume: {
    brief: 'resume KIND',
    synopsis: 'resume KIND',
    summary: 'dispatch jobs of a paused KIND again',
    options: {},
    prepare: ({ parsed, io, json }) => {
      const kind = kindArg(parsed);
      return async (c) => {
        const r = await c.resume(kind);
        write(io, json ? JSON.stringify(r) + '\n' : `${r.kind} resumed\n`);
        return EXIT.OK;
      };
    },
  },
  purge: {
    brief: 'purge KIND --yes',
    synopsis: 'purge KIND --yes',
    summary: 'cancel every queued job of KIND',
    options: { yes: { type: 'boolean', help: 'yes, cancel them (required: there is no undo)' } },
    prepare: ({ parsed, io, json }) => {
      const kind = kindArg(parsed);
      if (parsed.values['yes'] !== true) throw new UsageError(`purge cancels every queued ${kind} job; add --yes to confirm`);
      return async (c) => {
        const r = await c.purge(kind);
        write(io, json ? JSON.stringify(r) + '\n' : `${plural(r.purged, `queued ${r.kind} job`)} cancelled\n`);
        return EXIT.OK;
      };
    },
  },
  drain: {
    brief: 'drain WORKER',
    synopsis: 'drain WORKER',
    summary: 'a worker (id or name) finishes its running jobs and takes no new ones',
    options: {},
    prepare: ({ parsed, io, json }) => {
      const worker = nameArg(parsed, 'WORKER');
      return async (c) => {
        const w = await c.drain(worker);
        write(io, json ? JSON.stringify(w) + '\n' : `worker ${w.name} draining (${w.running} running)\n`);
        return EXIT.OK;
      };
    },
  },
  promote: {
    brief: 'promote ID',
    synopsis: 'promote ID',
    summary: 'a delayed or backing-off job runs now',
    options: {},
    prepare: ({ parsed, io, json }) => {
      const id = jobIdArg(parsed);
      return async (c) => {
        const info = await c.promote(id);
        write(io, json ? JSON.stringify(info) + '\n' : `job ${info.id} promoted\n`);
        return EXIT.OK;
      };
    },
  },
  compact: {
    brief: 'compact',
    synopsis: 'compact',
    summary: "compact the scheduler's journal",
    options: {},
    prepare: ({ parsed, io, json }) => {
      noPositionals(parsed);
      return async (c) => {
        const journal = await c.compact();
        write(io, json ? JSON.stringify(journal) + '\n' : `journal compacted: ${formatBytes(journal.bytes)}, ${plural(journal.compactions, 'compaction')}\n`);
        return EXIT.OK;
      };
    },
  },
};

/** Every option of every command: to find the command word among options and their values. */
const ALL_OPTIONS: OptionTable = Object.assign({}, GLOBAL_OPTIONS, ...Object.values(COMMANDS).map((c) => c.options));

// ---------------------------------------------------------------------------
// Help

const EXIT_TEXT = `Exit status: 0 ok, 1 a job failed or the scheduler refused the request, 2 usage error,
3 the scheduler cannot be reached (or the connection was lost), 4 --wait-timeout or
wait --timeout ran out, 130 interrupted (Ctrl-C).
`;

const SETTINGS_TEXT = `Settings: --server, --token, --json and submit's --kind, --priority, --tier, --timeout,
--retries, --est-ms, --wait-timeout and --window can also be set by environment variables
(TASKWIRE_SERVER, TASKWIRE_WAIT_TIMEOUT, ...) and a --config FILE ({"server": "h:9001",
"waitTimeout": 5000}); the command line wins over the environment, the environment over the file.
`;

function commandHelp(name: string, spec: CommandSpec): string {
  let out = `Usage: taskwire ${spec.synopsis}\n\n${spec.summary}\n`;
  if (Object.keys(spec.options).length > 0) out += `\nOptions:\n${formatOptions(spec.options)}`;
  if (spec.notes !== undefined) out += `\n${spec.notes}`;
  out += `\nGlobal options (before or after the command):\n${formatOptions(GLOBAL_OPTIONS)}`;
  if (spec.settings !== undefined || name === 'submit') out += `\n${SETTINGS_TEXT}`;
  return out;
}

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

function fullHelp(): string {
  const column = 32;
  let out = 'Usage: taskwire <command> [options]   (options may come before or after the command)\n\nCommands:\n';
  const entries: Array<[string, string]> = Object.values(COMMANDS).map((c) => [c.brief, c.summary]);
  entries.push(['help [COMMAND]', "this help, or one command's"]);
  for (const [brief, summary] of entries) {
    const [first, ...more] = wrap(summary, 78 - column);
    out += `  ${brief.padEnd(column - 2)}${first}\n`;
    for (const line of more) out += `${' '.repeat(column)}${line}\n`;
  }
  out += `\nGlobal options:\n${formatOptions(GLOBAL_OPTIONS)}`;
  for (const [name, spec] of Object.entries(COMMANDS)) {
    if (Object.keys(spec.options).length > 0) out += `\nOptions of ${name}:\n${formatOptions(spec.options)}`;
  }
  return `${out}\n${COMMANDS['submit']!.notes}\n${SETTINGS_TEXT}\n${EXIT_TEXT}`;
}

// ---------------------------------------------------------------------------
// Running

/**
 * Runs the `taskwire` CLI on `argv` (without node and script) and returns
 * the exit code; never calls `process.exit`.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  // Known before parsing, so that even a usage error comes out as JSON.
  const jsonWanted = argv.slice(0, argv.indexOf('--') >>> 0).includes('--json') || /^(1|true|yes|on)$/i.test(io.env['TASKWIRE_JSON'] ?? '');
  let json = jsonWanted;
  let address = '';
  let helpCommand = 'taskwire';
  let client: Client | undefined;
  try {
    const at = findCommand(argv, ALL_OPTIONS);
    const name = at < 0 ? undefined : argv[at]!;
    const rest = at < 0 ? argv : [...argv.slice(0, at), ...argv.slice(at + 1)];
    if (name === 'help') {
      const { positionals } = parseArgv(rest, GLOBAL_OPTIONS);
      const topic = positionals[0];
      if (positionals.length > 1) throw new UsageError(`help takes one command, got ${positionals.length}`);
      if (topic === undefined) return writeHelp(io, fullHelp());
      const spec = Object.hasOwn(COMMANDS, topic) ? COMMANDS[topic] : undefined;
      if (spec === undefined) throw new UsageError(`no command "${topic}"; commands: ${Object.keys(COMMANDS).join(', ')}`);
      return writeHelp(io, commandHelp(topic, spec));
    }
    const spec = name === undefined ? undefined : Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (name !== undefined && spec === undefined) {
      throw new UsageError(`unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}, help`);
    }
    if (spec !== undefined) helpCommand = `taskwire ${name}`;
    const parsed = parseArgv(rest, spec === undefined ? GLOBAL_OPTIONS : { ...GLOBAL_OPTIONS, ...spec.options });
    if (parsed.values['help'] === true) return writeHelp(io, spec === undefined ? fullHelp() : commandHelp(name!, spec));
    const config = loadSettings(parsed, spec, io);
    json = config.values.json;
    if (parsed.values['print-config'] === true) {
      write(io, printConfig(SETTINGS, config, { json }));
      return EXIT.OK;
    }
    if (spec === undefined) throw new UsageError('missing command');
    const { host, port } = parseAddress(config.values.server);
    if (port === 0) throw new UsageError(`--server needs a port from 1 to 65535, got "${config.values.server}"`);
    address = formatAddress(host, port);
    const action = spec.prepare({ parsed, settings: config.values, io, json, address });
    const token = config.values.token;
    const v = config.values;
    const connectOpts: ConnectOptions = token === undefined ? { name: 'taskwire-cli' } : { name: 'taskwire-cli', token };
    const tls = tlsOptionsOf(v, 'taskwire', (line) => io.stderr.write(line));
    if (tls !== undefined) connectOpts.tls = tls;
    const connecting = Client.connect({ host, port }, connectOpts);
    const connected = await untilStopped(connecting, io.signal);
    if (connected === STOPPED) {
      void connecting.then((c) => c.destroy(), () => undefined);
      return report(io, json, new Interrupted('interrupted while connecting'), address);
    }
    client = connected;
    return await action(client);
  } catch (err) {
    if (err instanceof UsageError) {
      if (json) write(io, JSON.stringify({ code: 'USAGE', error: err.message }) + '\n');
      else io.stderr.write(usageLine('taskwire', err.message, helpCommand));
      return EXIT.USAGE;
    }
    return report(io, json, toError(err), address);
  } finally {
    if (client !== undefined) {
      // After a stop or a --wait-timeout, jobs we no longer wait for would hold a graceful close open.
      if (io.signal?.aborted === true || client.pending > 0) client.destroy();
      else await client.close({ timeoutMs: 1000 });
    }
  }
}

function writeHelp(io: CliIo, text: string): number {
  write(io, text);
  return EXIT.OK;
}

/** Effective settings: this command's options > TASKWIRE_* > --config file > defaults. */
function loadSettings(parsed: ParsedArgv, spec: CommandSpec | undefined, io: CliIo): LoadedConfig<typeof SETTINGS> {
  const names = new Set<string>([...GLOBAL_SETTINGS, ...(spec?.settings ?? [])]);
  const cli: Record<string, string | boolean> = {};
  for (const name of names) {
    const v = parsed.values[name];
    if (v !== undefined) cli[name] = v;
  }
  const file = optString(parsed, 'config');
  return loadConfig(SETTINGS, { cli, env: io.env, file });
}

/** A command stopped by SIGINT/SIGTERM. */
class Interrupted extends Error {
  override name = 'Interrupted';
}

/** Prints a command's error (JSON object on stdout with --json, else one line on stderr); returns the exit code. */
function report(io: CliIo, json: boolean, err: Error, address: string, extra: Record<string, unknown> = {}): number {
  const code = exitCodeOf(err);
  if (json) {
    write(io, JSON.stringify({ ...extra, code: codeOf(err), error: err.message }) + '\n');
    return code;
  }
  if (err instanceof TaskwireError && (err.code === 'CLOSED' || err.code === 'HEARTBEAT_TIMEOUT')) {
    io.stderr.write(`taskwire: lost the connection to the scheduler at ${address}: ${err.message}\n`);
  } else if (err instanceof TaskwireError && err.code === 'UNREACHABLE') {
    io.stderr.write(`taskwire: ${err.message}\n`);
  } else {
    io.stderr.write(`taskwire: ${describeError(err)}\n`);
  }
  return code;
}

function codeOf(err: Error): string {
  if (err instanceof Interrupted) return 'INTERRUPTED';
  if (err instanceof TaskwireError) return err.code;
  if (err instanceof JobFailedError) return 'FAILED';
  if (err instanceof JobCancelledError) return 'CANCELLED';
  return 'INTERNAL';
}

function exitCodeOf(err: Error): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  if (err instanceof Interrupted) return EXIT.INTERRUPTED;
  if (err instanceof TaskwireError) {
    if (err.code === 'UNREACHABLE' || err.code === 'CLOSED' || err.code === 'HEARTBEAT_TIMEOUT' || err.code === 'SHUTTING_DOWN') return EXIT.UNREACHABLE;
    if (err.code === 'TIMEOUT') return EXIT.TIMEOUT;
  }
  return EXIT.FAILED;
}

/** One line about an error: `job 12 failed: division by zero`, `queue full (BUSY)`. */
function describeError(err: Error): string {
  if (err instanceof JobFailedError) return `job ${err.jobId} failed: ${err.message}`;
  if (err instanceof JobCancelledError) return err.message;
  // Our own messages say it all; the code is for the scheduler's answers.
  if (err instanceof LineError || (err instanceof TaskwireError && err.code === 'TIMEOUT')) return err.message;
  if (err instanceof TaskwireError) return `${err.message} (${err.code})`;
  return err.message;
}

const STOPPED: unique symbol = Symbol('stopped');

/** `promise`, or {@link STOPPED} as soon as `signal` aborts (the promise goes on). */
function untilStopped<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof STOPPED> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve(STOPPED);
  return new Promise<T | typeof STOPPED>((resolve, reject) => {
    const onAbort = (): void => resolve(STOPPED);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

// ---------------------------------------------------------------------------
// Argument helpers

function optString(p: ParsedArgv, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

function optUint(p: ParsedArgv, name: string, max: number, min = 0): number | undefined {
  const v = optString(p, name);
  return v === undefined ? undefined : parseUint(name, v, 0, max, min);
}

function str8Option(name: string, value: string): string {
  if (value === '') throw new UsageError(`--${name} must not be empty`);
  if (Buffer.byteLength(value) > MAX_STR8_BYTES) throw new UsageError(`--${name} is longer than ${MAX_STR8_BYTES} bytes`);
  return value;
}

function noPositionals(p: ParsedArgv): void {
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument "${p.positionals[0]}"`);
}

/** The one positional of `pause KIND`, `drain WORKER`. */
function nameArg(p: ParsedArgv, what: string): string {
  const [name, extra] = p.positionals;
  if (name === undefined) throw new UsageError(`missing ${what}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (name === '' || Buffer.byteLength(name) > MAX_STR8_BYTES) throw new UsageError(`${what} must be 1 to ${MAX_STR8_BYTES} bytes`);
  return name;
}

function kindArg(p: ParsedArgv): string {
  return nameArg(p, 'KIND');
}

function jobIdArg(p: ParsedArgv): number {
  const [text, extra] = p.positionals;
  if (text === undefined) throw new UsageError('missing job ID');
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  const id = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) throw new UsageError(`bad job ID "${text}": expected a positive integer`);
  return id;
}

/** A word as the shell would need it, for commands we print. */
function shellWord(s: string): string {
  return /^[\w.,:/=+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function write(io: CliIo, text: string): void {
  if (text !== '') io.stdout.write(text);
}

// ---------------------------------------------------------------------------
// submit

/**
 * `--at TIME` as a delay from now. The wire carries a delay (u32 ms), so the
 * time is read by this machine's clock; a time in the past means "now".
 */
export function delayUntil(text: string, nowMs: number): number {
  // Date.parse is lenient ("1", "May 5"): take only ISO 8601 dates and times.
  const iso = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
  const t = iso.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(t)) throw new UsageError(`--at takes an ISO 8601 time like 2030-01-02T03:04:05Z, got "${text}"`);
  const delay = Math.max(0, Math.ceil(t - nowMs));
  if (delay > U32_MAX) throw new UsageError(`--at ${text} is more than ${Math.floor(U32_MAX / 86_400_000)} days ahead`);
  return delay;
}

/** Submit options from the settings (command line, environment, config file). */
function submitOptions(s: Settings, p: ParsedArgv): SubmitOptions {
  const opts: SubmitOptions = {};
  if (s.priority !== undefined) opts.priority = s.priority;
  if (s.tier !== undefined) opts.tier = s.tier;
  if (s.timeout !== undefined) opts.timeoutMs = s.timeout;
  if (s.retries !== undefined) opts.retries = s.retries;
  if (s.estMs !== undefined) opts.estMs = s.estMs;
  const delayMs = optUint(p, 'delay', U32_MAX);
  if (delayMs !== undefined) opts.delayMs = delayMs;
  const at = optString(p, 'at');
  if (at !== undefined) {
    if (delayMs !== undefined) throw new UsageError('give --delay or --at, not both');
    opts.delayMs = delayUntil(at, Date.now());
  }
  const key = optString(p, 'key');
  if (key !== undefined) opts.key = str8Option('key', key);
  return opts;
}

function prepareSubmit(ctx: Ctx): Action {
  const { parsed: p, settings: s, io, json, address } = ctx;
  const kind = s.kind;
  const opts = submitOptions(s, p);
  const noWait = p.values['no-wait'] === true;
  const waitTimeoutMs = s.waitTimeout;
  if (noWait && waitTimeoutMs !== undefined && p.values['wait-timeout'] !== undefined) {
    throw new UsageError('--wait-timeout has nothing to wait for with --no-wait');
  }
  const file = optString(p, 'file');
  if (file !== undefined) {
    if (p.positionals.length > 0) throw new UsageError('give job arguments or --file, not both');
    if (opts.key !== undefined) throw new UsageError('--key applies to one job; it cannot be used with --file');
    let input: NodeJS.ReadableStream;
    if (file === '-') input = io.stdin;
    else {
      let fd: number;
      try {
        fd = openSync(file, 'r');
      } catch (err) {
        throw new UsageError(`cannot read --file ${file} (${errnoCode(toError(err)) ?? toError(err).message})`);
      }
      input = createReadStream('', { fd, highWaterMark: 256 * 1024 });
    }
    return (c) =>
      submitFile(c, io, { json, address, kind, opts, noWait, window: s.window, waitTimeoutMs: noWait ? undefined : waitTimeoutMs, input, path: file === '-' ? undefined : file });
  }
  if (p.positionals.length === 0) throw new UsageError('missing job argument (or --file FILE)');
  let args: unknown;
  if (ARITHMETIC_KINDS.has(kind)) {
    const operands = operandsFromArgv(kind, p.positionals);
    if (!operands.ok) throw new UsageError(operands.message);
    args = operands.value;
  } else {
    // sha256 and other kinds take text: several arguments are joined by spaces, like echo.
    args = p.positionals.join(' ');
  }
  return (c) => submitOne(c, io, { json, address, kind, args, opts, noWait, waitTimeoutMs });
}

/** Names of connected workers' kinds, to tell a user that nobody runs theirs. */
function noWorkerNotice(workers: readonly WorkerInfo[], kind: string): string | undefined {
  if (workers.some((w) => !w.draining && w.capabilities.includes(kind))) return undefined;
  const similar = [...new Set(workers.flatMap((w) => w.capabilities))].find((k) => k.toLowerCase() === kind.toLowerCase());
  return `no connected worker runs '${kind}'${similar === undefined ? '' : ` (did you mean '${similar}'?)`}`;
}

interface OneJob {
  json: boolean;
  address: string;
  kind: string;
  args: unknown;
  opts: SubmitOptions;
  noWait: boolean;
  waitTimeoutMs: number | undefined;
}

/**
 * One job, one request: a SUBMIT that waits. Its ACK tells the job id
 * (`onAck`) long before the result, so the id can be printed when no worker
 * runs the kind, on --wait-timeout, on Ctrl-C and when the connection is lost.
 * --wait-timeout counts from the submit: it also bounds a scheduler that never ACKs.
 */
async function submitOne(c: Client, io: CliIo, job: OneJob): Promise<number> {
  const { json, address } = job;
  if (job.noWait) return enqueueOne(c, io, job);
  let id = 0;
  let finished = false;
  let notice: NodeJS.Timeout | undefined;
  const onAck = (jobId: number): void => {
    id = jobId;
    // A job that has not finished shortly: tell its id if nobody can run it.
    notice = setTimeout(() => {
      void c.workers().then(
        (workers) => {
          const why = finished ? undefined : noWorkerNotice(workers, job.kind);
          if (why !== undefined) io.stderr.write(`taskwire: queued as job ${id}; ${why}\n`);
        },
        () => undefined,
      );
    }, Math.min(NOTICE_DELAY_MS, (job.waitTimeoutMs ?? Infinity) / 2));
  };
  const running = settle(c.submit(job.kind, job.args, { ...job.opts, onAck }));
  // Stop at Ctrl-C or when --wait-timeout runs out, whichever comes first (io.signal tells which).
  const stop = new AbortController();
  const onStop = (): void => stop.abort();
  if (io.signal?.aborted === true) stop.abort();
  io.signal?.addEventListener('abort', onStop, { once: true });
  const deadline = job.waitTimeoutMs === undefined ? undefined : setTimeout(onStop, job.waitTimeoutMs);
  let outcome: JobResult | Error | typeof STOPPED;
  try {
    outcome = await untilStopped(running, stop.signal);
  } finally {
    finished = true;
    clearTimeout(notice);
    clearTimeout(deadline);
    io.signal?.removeEventListener('abort', onStop);
  }
  const timedOut = outcome === STOPPED && io.signal?.aborted !== true;
  if (id === 0) {
    // Ended before the ACK: the job may or may not be queued, and nobody knows its id.
    if (timedOut) {
      return report(io, json, new TaskwireError('TIMEOUT', `the scheduler did not acknowledge the job within ${job.waitTimeoutMs} ms (it may or may not be queued)`), address);
    }
    if (outcome === STOPPED) return report(io, json, new Interrupted('interrupted before the scheduler acknowledged the job'), address);
    if (outcome instanceof TaskwireError && exitCodeOf(outcome) === EXIT.UNREACHABLE) return reportLostBeforeAck(io, json, address, outcome);
  }
  return printJobOutcome(io, json, address, id, timedOut ? new TaskwireError('TIMEOUT', `--wait-timeout of ${job.waitTimeoutMs} ms ran out`) : outcome, job.waitTimeoutMs);
}

/** The connection was lost before the scheduler ACKed a job; returns the exit code. */
function reportLostBeforeAck(io: CliIo, json: boolean, address: string, cause: TaskwireError): number {
  const lost = new TaskwireError(cause.code, `lost the connection to the scheduler at ${address} before it acknowledged the job (it may or may not be queued)`, { cause });
  if (json) return report(io, json, lost, address);
  io.stderr.write(`taskwire: ${lost.message}\n`);
  return EXIT.UNREACHABLE;
}

/** `submit --no-wait`: queue the job and print its id. */
async function enqueueOne(c: Client, io: CliIo, job: OneJob): Promise<number> {
  const { json, address } = job;
  let ack: EnqueueResult | typeof STOPPED;
  try {
    ack = await untilStopped(c.enqueue(job.kind, job.args, job.opts), io.signal);
  } catch (err) {
    const e = toError(err);
    if (e instanceof TaskwireError && exitCodeOf(e) === EXIT.UNREACHABLE) return reportLostBeforeAck(io, json, address, e);
    throw e;
  }
  if (ack === STOPPED) return report(io, json, new Interrupted('interrupted before the scheduler acknowledged the job'), address);
  write(io, json ? JSON.stringify({ id: ack.id, existing: ack.existing }) + '\n' : `${ack.id}\n`);
  return EXIT.OK;
}

/** A job outcome as a value: the result, or the error it ended with. Other errors reject. */
async function settle(promise: Promise<JobResult>): Promise<JobResult | Error> {
  try {
    return await promise;
  } catch (err) {
    const e = toError(err);
    // Job outcomes, and the ways a wait can end without one.
    if (e instanceof JobFailedError || e instanceof JobCancelledError) return e;
    if (e instanceof TaskwireError && (e.code === 'TIMEOUT' || e.code === 'CLOSED' || e.code === 'HEARTBEAT_TIMEOUT' || e.code === 'SHUTTING_DOWN')) return e;
    throw e;
  }
}

/** Prints the outcome of a waited-for job (submit, wait); returns the exit code. */
function printJobOutcome(io: CliIo, json: boolean, address: string, id: number, outcome: JobResult | Error | typeof STOPPED, timeoutMs: number | undefined): number {
  if (outcome instanceof JobResult) {
    write(io, json ? JSON.stringify(resultJson(outcome)) + '\n' : outcome.text() + '\n');
    return EXIT.OK;
  }
  if (outcome instanceof JobFailedError || outcome instanceof JobCancelledError) {
    if (json) {
      write(io, JSON.stringify(jobErrorJson(outcome)) + '\n');
      return EXIT.FAILED;
    }
    return report(io, false, outcome, address);
  }
  let err: Error;
  if (outcome === STOPPED) err = new Interrupted(`interrupted; job ${id} was not cancelled and goes on (taskwire wait ${id})`);
  else if (outcome instanceof TaskwireError && outcome.code === 'TIMEOUT') {
    err = new TaskwireError('TIMEOUT', `job ${id} did not finish within ${timeoutMs} ms; it goes on (taskwire wait ${id})`);
  } else if (outcome instanceof TaskwireError && exitCodeOf(outcome) === EXIT.UNREACHABLE) {
    err = new TaskwireError(outcome.code, `lost the connection to the scheduler at ${address}; job ${id} was queued (taskwire wait ${id} picks it up)`);
    if (!json) {
      io.stderr.write(`taskwire: ${err.message}\n`);
      return EXIT.UNREACHABLE;
    }
  } else err = outcome;
  return report(io, json, err, address, { id });
}

function resultJson(r: JobResult): Record<string, unknown> {
  return { id: r.id, state: 'DONE', attempt: r.attempt, result: r.text() };
}

function jobErrorJson(e: JobFailedError | JobCancelledError): Record<string, unknown> {
  if (e instanceof JobFailedError) return { id: e.jobId, state: 'FAILED', attempts: e.attempts, permanent: e.permanent, error: e.message };
  return { id: e.jobId, state: 'CANCELLED' };
}

// ---------------------------------------------------------------------------
// submit --file

interface FileJobs {
  json: boolean;
  address: string;
  kind: string;
  opts: SubmitOptions;
  noWait: boolean;
  window: number;
  waitTimeoutMs: number | undefined;
  input: NodeJS.ReadableStream;
  /** The file's path (undefined for stdin): its lines are counted for the progress bar's total. */
  path: string | undefined;
}

/** Job arguments of one line: the bytes as given, or `[a, b]` for arithmetic kinds. */
function lineArgsOf(kind: string): (line: Buffer) => LineArgs {
  if (!ARITHMETIC_KINDS.has(kind)) return (line) => ({ ok: true, args: line });
  return (line) => {
    const operands = operandsFromLine(kind, line);
    return operands.ok ? { ok: true, args: operands.value } : { ok: false, message: operands.message };
  };
}

async function submitFile(c: Client, io: CliIo, job: FileJobs): Promise<number> {
  const { json, address, kind } = job;
  const bar = io.stderr.isTTY === true ? new ProgressBar(io.stderr) : undefined;
  // The bar and the results share a terminal: erase the bar before results are written.
  const output = new Output(io.stdout, bar !== undefined && io.stdout.isTTY === true ? () => bar.clear() : undefined);
  const countAbort = new AbortController();
  if (bar !== undefined && job.path !== undefined) {
    void countLines(job.path, countAbort.signal).then((n) => {
      if (n !== undefined) bar.setTotal(n);
    });
  }
  let anyDone = false;
  const notice = setTimeout(() => {
    void c.workers().then(
      (workers) => {
        const why = anyDone ? undefined : noWorkerNotice(workers, kind);
        if (why === undefined) return;
        bar?.clear();
        io.stderr.write(`taskwire: ${why}; its jobs stay queued until one connects\n`);
      },
      () => undefined,
    );
  }, NOTICE_DELAY_MS);
  const maxLineBytes = c.welcome?.maxPayloadBytes || DEFAULT_MAX_LINE_BYTES;
  const stopText = (o: LineOutcome, stop: StreamSummary['stop']): [string, string] => {
    const pending = o.id > 0 ? `job ${o.id} has not finished (taskwire wait ${o.id})` : `line ${o.line} was not acknowledged by the scheduler`;
    return stop === 'timeout'
      ? ['TIMEOUT', `--wait-timeout of ${job.waitTimeoutMs} ms ran out; ${pending}`]
      : ['INTERRUPTED', `interrupted; ${pending}`];
  };
  let stop: StreamSummary['stop'];
  const submitter = new StreamSubmitter({
    port: c,
    kind,
    submitOptions: job.opts,
    noWait: job.noWait,
    window: job.window,
    maxLineBytes,
    lineArgs: lineArgsOf(kind),
    outputReady: () => output.ready(),
    onProgress: (settled, failed, total) => {
      if (settled > failed) anyDone = true;
      bar?.update(settled, total, failed);
    },
    interrupt: io.signal,
    deadline: job.waitTimeoutMs === undefined ? undefined : AbortSignal.timeout(job.waitTimeoutMs),
    onStop: (reason) => {
      stop = reason;
    },
    onOutcome: (o) => output.write(formatLine(o, json, address, stop, stopText)),
  });
  output.onDrain = () => submitter.wake();
  let summary: StreamSummary;
  try {
    summary = await submitter.run(readLines(job.input as AsyncIterable<Buffer>, maxLineBytes));
  } finally {
    clearTimeout(notice);
    countAbort.abort();
  }
  await output.end();
  if (summary.stop !== undefined) (job.input as { destroy?: () => void }).destroy?.();
  if (bar !== undefined) {
    bar.update(summary.done + summary.failed, summary.lines, summary.failed);
    bar.finish();
  }
  const finished = `${summary.done} of ${plural(summary.lines, 'job')} finished`;
  const left =
    (summary.unfinished > 0 ? `, ${summary.unfinished} still queued or running (their ids are on stdout: taskwire wait ID)` : '') +
    (summary.unacknowledged > 0 ? `, ${summary.unacknowledged} sent but not acknowledged` : '');
  switch (summary.stop) {
    case 'interrupted':
      if (!json) io.stderr.write(`taskwire: interrupted: ${finished}${left}\n`);
      return EXIT.INTERRUPTED;
    case 'timeout':
      if (!json) io.stderr.write(`taskwire: --wait-timeout of ${job.waitTimeoutMs} ms ran out: ${finished}${left}\n`);
      return EXIT.TIMEOUT;
    case 'lost':
      if (!json) io.stderr.write(`taskwire: lost the connection to the scheduler at ${address}: ${finished}; jobs that were queued are listed with their ids on stdout (taskwire wait ID)\n`);
      return EXIT.UNREACHABLE;
    case undefined:
      return summary.failed > 0 ? EXIT.FAILED : EXIT.OK;
  }
}

/** One output line of `submit --file`. */
function formatLine(
  o: LineOutcome,
  json: boolean,
  address: string,
  stop: StreamSummary['stop'],
  stopText: (o: LineOutcome, stop: StreamSummary['stop']) => [string, string],
): string {
  const v = o.value;
  if (json) {
    const base: Record<string, unknown> = { line: o.line };
    if (o.id > 0) base['id'] = o.id;
    let body: Record<string, unknown>;
    if (v === undefined) {
      const [code, error] = stopText(o, stop);
      body = { state: 'ERROR', code, error };
    } else if (v instanceof JobResult) body = resultJson(v);
    else if (v instanceof JobFailedError || v instanceof JobCancelledError) body = jobErrorJson(v);
    else if (v instanceof Error) body = { state: 'ERROR', code: codeOf(v), error: lineError(o, v, address) };
    else body = { id: v.id, existing: v.existing };
    return JSON.stringify({ ...base, ...body }) + '\n';
  }
  if (v === undefined) return `error: ${stopText(o, stop)[1]}\n`;
  if (v instanceof JobResult) return v.text() + '\n';
  if (v instanceof Error) return `error: ${lineError(o, v, address)}\n`;
  return `${v.id}\n`;
}

function lineError(o: LineOutcome, err: Error, address: string): string {
  if (err instanceof TaskwireError && exitCodeOf(err) === EXIT.UNREACHABLE) {
    return o.id > 0
      ? `lost the connection to ${address}; job ${o.id} was queued (taskwire wait ${o.id})`
      : `lost the connection to ${address} before line ${o.line} was acknowledged`;
  }
  return describeError(err);
}

// ---------------------------------------------------------------------------

/** Runs the `taskwire` CLI on this process's argv and exits with its status. */
export async function main(): Promise<void> {
  // `taskwire ... | head`: a reader that goes away is not an error worth a stack trace.
  process.stdout.on('error', (err) => {
    if (errnoCode(err) === 'EPIPE') process.exit(EXIT.OK);
    throw err;
  });
  const stop = new AbortController();
  const onSignal = (): void => {
    if (stop.signal.aborted) process.exit(EXIT.INTERRUPTED); // a second Ctrl-C: now
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const code = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    signal: stop.signal,
  });
  // Let what was written reach the pipe before exiting.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}
