/**
 * The `taskwire-worker` command line: parsing, and the three ways it runs —
 * one worker with the built-in kinds or a `--handlers` module, one worker
 * that runs a command per job (`-c KIND -- CMD ARGS...` or `--shell LINE`),
 * and a supervisor of N such processes (`--processes N`).
 * `src/worker.ts` loads this module only when run as a program.
 */
import { availableParallelism, hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker, type WorkerLogLevel, type WorkerOptions } from '../worker.js';
import { DEFAULT_SERVER, parseAddress, parseUint, UsageError } from './cli.js';
import { errnoCode, TaskwireError } from './errors.js';
import { checkCommand, execHandler, type ExecCommand } from './exec-handler.js';
import { loadHandlers } from './handlers-module.js';
import { BUILTIN_KINDS } from './jobs.js';
import type { PoolMessage } from './pool/messages.js';
import { WorkerPool } from './pool/worker-pool.js';
import { U32_MAX } from './protocol.js';

const PROGRAM = 'taskwire-worker';

const USAGE = `Usage: taskwire-worker [options]
       taskwire-worker -c KIND[,KIND...] [options] -- COMMAND [ARG...]
       taskwire-worker -c KIND[,KIND...] [options] --shell 'COMMAND LINE'

Runs a taskwire worker: connects to the scheduler and runs the jobs it assigns.

Options:
  -s, --server HOST:PORT        scheduler address (default: $TASKWIRE_SERVER, else ${DEFAULT_SERVER})
  -w, --name NAME               worker name (default HOSTNAME-PID; in a pool, NAME-1 ... NAME-N)
  -c, --capabilities KIND...    kinds to run, comma or space separated
                                (default: all of ${BUILTIN_KINDS.join(', ')}, plus --handlers kinds)
  -n, --concurrency N           jobs at once (default 4)
  --prefetch N                  jobs the scheduler may send ahead, started as slots free,
                                so no slot idles for a round trip (default max(32, concurrency);
                                0 = off)
  --token TOKEN                 token the scheduler requires (default: $TASKWIRE_TOKEN)
  --handlers PATH               a module whose default export (or register export) is called
                                with the worker to register kinds: worker.handle(kind, fn)
  --processing-ms MS            emulate work: every job takes MS ms (default 0)
  --fail-rate P                 emulate faults: fail attempts retryably with probability P (0-1)
  --reconnect-base-ms MS        first reconnect delay, doubling with jitter (default 100)
  --reconnect-max-ms MS         largest reconnect delay (default 5000)
  --connect-timeout-ms MS       time for connect plus handshake (default 5000)
  --drain-grace-ms MS           on SIGTERM, let running jobs finish for MS ms (default 30000)
  --abandon-grace-ms MS         after a timeout or cancel, give a handler that ignores it MS ms
                                before its slot is taken back (default 5000)
  --log-level LEVEL             silent | error | info | debug (default info), to stderr
  -h, --help                    show this help

A command per job (every -c kind runs it):
  -- COMMAND [ARG...]           run COMMAND without a shell; nothing after -- is re-parsed
  --shell LINE                  run LINE with /bin/sh -c (for pipelines)
  --kill-grace-ms MS            on timeout or cancel: SIGTERM to the job's process group,
                                SIGKILL MS ms later (default 5000)
  The job's arguments are its stdin, its stdout the result; exit 0 = done, 75 = retry,
  anything else = failed (the end of stderr is the error). Environment: TASKWIRE_JOB_ID,
  TASKWIRE_ATTEMPT, TASKWIRE_KIND.

Worker pool:
  --processes N|auto            run N worker processes under this one (auto: one per CPU);
                                a process that dies is restarted with backoff
  --restart-base-ms MS          first restart delay, doubling with jitter (default 500)
  --restart-max-ms MS           largest restart delay (default 30000)
  --crash-limit K               stop restarting a process that died K times ... (default 5)
  --crash-window-ms MS          ... within MS ms (default 60000)
  --ready-timeout-ms MS         rolling restart: time a new process has to connect (default 30000)
  SIGHUP replaces the processes one by one (rolling restart); SIGTERM drains them all.

Prints "taskwire worker NAME connected to HOST:PORT as SESSION" once connected.
SIGTERM or SIGINT drains (finish running jobs, then exit 0); a second one exits at once.
A scheduler that refuses the token or the protocol version: "cannot connect", exit 1.
`;

const OPTIONS = {
  server: { type: 'string', short: 's' },
  name: { type: 'string', short: 'w' },
  capabilities: { type: 'string', short: 'c' },
  concurrency: { type: 'string', short: 'n' },
  prefetch: { type: 'string' },
  token: { type: 'string' },
  handlers: { type: 'string' },
  'processing-ms': { type: 'string' },
  'fail-rate': { type: 'string' },
  'reconnect-base-ms': { type: 'string' },
  'reconnect-max-ms': { type: 'string' },
  'connect-timeout-ms': { type: 'string' },
  'drain-grace-ms': { type: 'string' },
  'abandon-grace-ms': { type: 'string' },
  'log-level': { type: 'string' },
  shell: { type: 'string' },
  'kill-grace-ms': { type: 'string' },
  processes: { type: 'string' },
  'restart-base-ms': { type: 'string' },
  'restart-max-ms': { type: 'string' },
  'crash-limit': { type: 'string' },
  'crash-window-ms': { type: 'string' },
  'ready-timeout-ms': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Options the supervisor keeps to itself: its processes get their own name, and the token by environment. */
const SUPERVISOR_ONLY: ReadonlySet<string> = new Set([
  'name',
  'token',
  'processes',
  'restart-base-ms',
  'restart-max-ms',
  'crash-limit',
  'crash-window-ms',
  'ready-timeout-ms',
]);

const LOG_LEVELS: readonly WorkerLogLevel[] = ['silent', 'error', 'info', 'debug'];

/** Timing knobs of a pool. */
export interface PoolSettings {
  restartBaseMs: number;
  restartMaxMs: number;
  crashLimit: number;
  crashWindowMs: number;
  readyTimeoutMs: number;
}

/** A parsed `taskwire-worker` command line. */
export type WorkerCli =
  | { help: true }
  | {
      help: false;
      options: WorkerOptions;
      /** Run per job by every capability. */
      command: ExecCommand | undefined;
      killGraceMs: number;
      /** Path of a handlers module, as given. */
      handlers: string | undefined;
      /** Set when `--processes` was given: run a supervisor of that many processes. */
      processes: number | undefined;
      pool: PoolSettings;
      logLevel: WorkerLogLevel;
    };

/** `-c add divide` → `-c add,divide`: the values after a list flag, up to the next option. */
function joinListValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    out.push(arg);
    if (arg === '-c' || arg === '--capabilities') {
      const values: string[] = [];
      while (i + 1 < argv.length && !argv[i + 1]!.startsWith('-')) values.push(argv[++i]!);
      if (values.length > 0) out.push(values.join(','));
    }
  }
  return out;
}

/** Options before `--`, and the command after it (undefined without `--`). */
function splitCommand(argv: readonly string[]): [string[], string[] | undefined] {
  const i = argv.indexOf('--');
  return i === -1 ? [joinListValues(argv), undefined] : [joinListValues(argv.slice(0, i)), argv.slice(i + 1)];
}

/** Parses the `taskwire-worker` command line. Throws {@link UsageError}. */
export function parseWorkerCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): WorkerCli {
  const [head, commandArgv] = splitCommand(argv);
  let parsed;
  try {
    parsed = parseArgs({ args: head, allowPositionals: false, options: OPTIONS });
  } catch (err) {
    // node:util parseArgs throws TypeError (ERR_PARSE_ARGS_*) for unknown options and missing values;
    // its messages run over several lines and talk about "ambiguous" arguments: say it plainly.
    const text = err instanceof Error ? err.message : String(err);
    const missing = /^Option '([^']+)' argument is ambiguous/.exec(text) ?? /^Option '([^']+)' argument missing/.exec(text);
    if (missing !== null) throw new UsageError(`${/--[\w-]+/.exec(missing[1]!)?.[0] ?? missing[1]!} needs a value`);
    const unknown = /^Unknown option '([^']+)'/.exec(text);
    if (unknown !== null) throw new UsageError(`unknown option ${unknown[1]!}`);
    throw new UsageError(text.split('\n')[0]!);
  }
  const v = parsed.values;
  if (v.help === true) return { help: true };
  const server = parseAddress(v.server ?? (env['TASKWIRE_SERVER'] || DEFAULT_SERVER));
  if (server.port === 0) throw new UsageError('--server needs a port from 1 to 65535');
  const options: WorkerOptions = {
    server,
    concurrency: parseUint('concurrency', v.concurrency, 4, U32_MAX),
    processingMs: parseUint('processing-ms', v['processing-ms'], 0),
    reconnectBaseMs: parseUint('reconnect-base-ms', v['reconnect-base-ms'], 100),
    reconnectMaxMs: parseUint('reconnect-max-ms', v['reconnect-max-ms'], 5_000),
    connectTimeoutMs: parseUint('connect-timeout-ms', v['connect-timeout-ms'], 5_000),
    drainGraceMs: parseUint('drain-grace-ms', v['drain-grace-ms'], 30_000),
    abandonGraceMs: parseUint('abandon-grace-ms', v['abandon-grace-ms'], 5_000),
  };
  if (options.concurrency === 0) throw new UsageError('--concurrency must be at least 1');
  if (v.prefetch !== undefined) options.prefetch = parseUint('prefetch', v.prefetch, 0, 1024);
  if (options.reconnectBaseMs === 0 || options.reconnectMaxMs === 0 || options.connectTimeoutMs === 0) {
    throw new UsageError('--reconnect-base-ms, --reconnect-max-ms and --connect-timeout-ms must be at least 1');
  }
  if (v.name !== undefined) {
    if (v.name === '') throw new UsageError('--name must not be empty');
    options.name = v.name;
  }

  let command: ExecCommand | undefined;
  if (commandArgv !== undefined) {
    if (commandArgv.length === 0 || commandArgv[0] === '') throw new UsageError('no command after --');
    if (v.shell !== undefined) throw new UsageError('give either --shell LINE or -- COMMAND, not both');
    command = { argv: commandArgv };
  } else if (v.shell !== undefined) {
    if (v.shell.trim() === '') throw new UsageError('--shell needs a command line');
    command = { shell: v.shell };
  }
  if (command !== undefined && v.handlers !== undefined) throw new UsageError('give either --handlers or a command, not both');
  if (v.handlers === '') throw new UsageError('--handlers needs a module path');

  if (v.capabilities !== undefined) {
    const kinds = [...new Set(v.capabilities.split(',').map((k) => k.trim()).filter((k) => k !== ''))];
    if (kinds.length === 0) throw new UsageError('--capabilities needs at least one kind');
    // With a command every listed kind runs it; a handlers module is checked once loaded.
    if (command === undefined && v.handlers === undefined) {
      const builtin: readonly string[] = BUILTIN_KINDS;
      const unknown = kinds.filter((k) => !builtin.includes(k));
      if (unknown.length > 0) {
        throw new UsageError(`unknown capability "${unknown[0]}": this worker runs ${BUILTIN_KINDS.join(', ')} (or use --handlers, or -- COMMAND)`);
      }
    }
    options.capabilities = kinds;
  } else if (command !== undefined) {
    throw new UsageError('a command needs the kinds it runs: -c KIND -- COMMAND');
  }
  if (v['fail-rate'] !== undefined) {
    const text = v['fail-rate'];
    const p = Number(text);
    if (text.trim() === '' || !(p >= 0 && p <= 1)) throw new UsageError(`--fail-rate must be a number from 0 to 1, got "${text}"`);
    options.failRate = p;
  }
  const token = v.token ?? (env['TASKWIRE_TOKEN'] || undefined);
  if (token !== undefined) options.token = token;
  const level = v['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level must be silent, error, info or debug, got "${level}"`);
  options.logLevel = level as WorkerLogLevel;

  let processes: number | undefined;
  if (v.processes !== undefined) {
    processes = v.processes === 'auto' ? availableParallelism() : parseUint('processes', v.processes, 1, 1024);
    if (processes === 0) throw new UsageError('--processes must be at least 1 (or auto)');
  }
  const pool: PoolSettings = {
    restartBaseMs: parseUint('restart-base-ms', v['restart-base-ms'], 500),
    restartMaxMs: parseUint('restart-max-ms', v['restart-max-ms'], 30_000),
    crashLimit: parseUint('crash-limit', v['crash-limit'], 5),
    crashWindowMs: parseUint('crash-window-ms', v['crash-window-ms'], 60_000),
    readyTimeoutMs: parseUint('ready-timeout-ms', v['ready-timeout-ms'], 30_000),
  };
  if (Object.values(pool).some((n) => n === 0)) {
    throw new UsageError('--restart-base-ms, --restart-max-ms, --crash-limit, --crash-window-ms and --ready-timeout-ms must be at least 1');
  }
  return {
    help: false,
    options,
    command,
    killGraceMs: parseUint('kill-grace-ms', v['kill-grace-ms'], 5_000),
    handlers: v.handlers,
    processes,
    pool,
    logLevel: level as WorkerLogLevel,
  };
}

/**
 * The command line of each process of a pool: `argv` without the options
 * only the supervisor uses (`--processes`, the pool's timings, `--name`,
 * which the pool sets per process, and `--token`, passed by environment).
 */
export function poolProcessArgs(argv: readonly string[]): string[] {
  const [head, command] = splitCommand(argv);
  const { tokens } = parseArgs({ args: head, options: OPTIONS, allowPositionals: true, strict: false, tokens: true });
  const drop = new Set<number>();
  for (const t of tokens) {
    if (t.kind !== 'option' || !SUPERVISOR_ONLY.has(t.name)) continue;
    drop.add(t.index);
    if (t.value !== undefined && !t.inlineValue) drop.add(t.index + 1);
  }
  const kept = head.filter((_, i) => !drop.has(i));
  return command === undefined ? kept : [...kept, '--', ...command];
}

function describe(err: unknown): string {
  if (err instanceof TaskwireError) return `${err.message} (${err.code})`;
  if (err instanceof Error) return errnoCode(err) ?? err.message;
  return String(err);
}

/** The pool that forked us, if any (IPC channel): told when we are ready, or why we cannot run. */
function tellPool(msg: PoolMessage, then?: () => void): void {
  if (process.send === undefined || !process.connected) {
    then?.();
    return;
  }
  process.send(msg, undefined, {}, () => then?.());
}

/** Runs one worker until it has drained. */
async function runWorker(cli: Extract<WorkerCli, { help: false }>): Promise<void> {
  const worker = new Worker({ ...cli.options, log: (line) => process.stderr.write(line + '\n') });
  /** No restart can fix this: tell the pool (if any), print, exit. */
  const giveUp = (err: unknown, exitCode: number, prefix: string): void => {
    const code = err instanceof TaskwireError ? err.code : 'INTERNAL';
    process.stderr.write(`${PROGRAM}: ${prefix}${describe(err)}\n`);
    tellPool({ type: 'taskwire-worker:fatal', code, message: err instanceof Error ? err.message : String(err) }, () => process.exit(exitCode));
  };
  if (cli.command !== undefined) {
    try {
      checkCommand(cli.command);
    } catch (err) {
      giveUp(err, 2, '');
      return;
    }
    const handler = execHandler(cli.command, { killGraceMs: cli.killGraceMs });
    for (const kind of cli.options.capabilities ?? []) worker.handle(kind, handler);
  }
  if (cli.handlers !== undefined) {
    // A crash here is not final for a pool: the file may be mid-deploy; the crash-loop limit bounds it.
    try {
      await loadHandlers(cli.handlers, worker);
    } catch (err) {
      process.stderr.write(`${PROGRAM}: ${describe(err)}\n`);
      process.exit(1);
    }
  }
  // The one "connected" line (the library logs only reconnections at info).
  worker.once('ready', ({ sessionId }) => {
    process.stdout.write(`taskwire worker ${worker.name} connected to ${worker.address} as ${sessionId}\n`);
    tellPool({ type: 'taskwire-worker:ready', sessionId });
  });
  // A final refusal on a later reconnect (a first one rejects start()).
  worker.on('error', (err) => giveUp(err, 1, 'cannot connect: '));
  let signals = 0;
  // In a pool, several processes write to one stderr: say which one speaks.
  const me = process.send === undefined ? PROGRAM : `${PROGRAM} ${worker.name}`;
  const stop = (why: string): void => {
    if (++signals > 1) {
      process.stderr.write(`${me}: ${why} again, exiting now\n`);
      void worker.destroy();
      process.exit(1);
    }
    process.stderr.write(`${me}: ${why}, draining (${worker.running} job(s) running)\n`);
    void worker.drain().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Forked by a pool whose supervisor is gone: nobody will stop or restart us, so drain and leave.
  if (process.send !== undefined) process.on('disconnect', () => stop('supervisor gone'));
  try {
    await worker.start();
  } catch (err) {
    if (err instanceof TaskwireError && err.code === 'INVALID_ARGUMENT') giveUp(err, 2, '');
    else giveUp(err, 1, 'cannot connect: ');
  }
}

/** Runs a supervisor of `cli.processes` workers until they have all exited. */
async function runPool(cli: Extract<WorkerCli, { help: false }>, argv: readonly string[]): Promise<void> {
  const name = cli.options.name ?? `${hostname()}-${process.pid}`;
  const env = { ...process.env };
  if (cli.options.token !== undefined) env['TASKWIRE_TOKEN'] = cli.options.token;
  const info = cli.logLevel === 'info' || cli.logLevel === 'debug';
  const pool = new WorkerPool({
    processes: cli.processes!,
    name,
    args: poolProcessArgs(argv),
    env,
    ...cli.pool,
    log: info ? (line) => process.stderr.write(line + '\n') : undefined,
  });
  pool.on('giveup', ({ error }) => process.stderr.write(`${PROGRAM}: ${error.message}\n`));
  pool.on('close', (err) => {
    if (err !== undefined) {
      process.stderr.write(`${PROGRAM}: pool ${name} stopped: every process gave up (${err.code})\n`);
      process.exit(1);
    }
    process.exit(0);
  });
  let signals = 0;
  const stop = (signal: string): void => {
    if (++signals > 1) {
      process.stderr.write(`${PROGRAM}: ${signal} again, stopping every process now\n`);
      void pool.destroy();
      return;
    }
    process.stderr.write(`${PROGRAM}: ${signal}, draining ${pool.size} process(es)\n`);
    void pool.close();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    process.stderr.write(`${PROGRAM}: SIGHUP, rolling restart of ${pool.size} process(es)\n`);
    pool.restart().catch((err: unknown) => process.stderr.write(`${PROGRAM}: ${describe(err)}\n`));
  });
  try {
    await pool.start();
    process.stdout.write(`taskwire worker pool ${name}: ${pool.size} process(es) ready\n`);
  } catch {
    // Every process gave up: 'close' reports it and exits.
  }
}

/** Runs the `taskwire-worker` CLI. The only place that calls `process.exit` (with the pool's 'close'). */
export async function main(argv: readonly string[]): Promise<void> {
  let cli: WorkerCli;
  try {
    cli = parseWorkerCli(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${PROGRAM}: ${err.message} (see "${PROGRAM} --help")\n`);
    process.exit(2);
  }
  if (cli.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (cli.processes !== undefined) await runPool(cli, argv);
  else await runWorker(cli);
}
