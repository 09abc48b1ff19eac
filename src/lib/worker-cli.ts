/**
 * The `taskwire-worker` command line: parsing (settings from the command
 * line, `TASKWIRE_*` and `--config FILE`, see worker-config.ts), and the
 * three ways it runs — a worker process with the built-in kinds or a
 * `--handlers` module, one that runs a command per job (`-c KIND -- CMD
 * ARGS...`, `--shell LINE`, or each kind's `exec` in the config file), and a
 * supervisor of N such processes (`--processes N`). A process keeps one
 * connection to the scheduler, or one more per config-file kind with its own
 * concurrency. `src/worker.ts` loads this module only when run as a program.
 */
import { availableParallelism, hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker, type WorkerLogLevel, type WorkerOptions } from '../worker.js';
import { DEFAULT_SERVER, parseAddress, usageLine, UsageError } from './cli.js';
import { envName } from './config.js';
import { errnoCode, TaskwireError } from './errors.js';
import { checkCommand, execHandler, type ExecCommand } from './exec-handler.js';
import { loadHandlers } from './handlers-module.js';
import { tlsOptionsOf } from './cli/tls-options.js';
import { BUILTIN_KINDS } from './jobs.js';
import type { PoolMessage } from './pool/messages.js';
import { WorkerPool } from './pool/worker-pool.js';
import { assertNever } from './protocol.js';
import { loadWorkerConfig, planConnections, printWorkerConfig, WORKER_SETTINGS, type ConnectionPlan } from './worker-config.js';

const PROGRAM = 'taskwire-worker';

const USAGE = `Usage: taskwire-worker [options]
       taskwire-worker -c KIND[,KIND...] [options] -- COMMAND [ARG...]
       taskwire-worker -c KIND[,KIND...] [options] --shell 'COMMAND LINE'
       taskwire-worker --config FILE [options]

Runs a taskwire worker: connects to the scheduler and runs the jobs it assigns.

Options:
  -s, --server HOST:PORT        scheduler address (default: $TASKWIRE_SERVER, else ${DEFAULT_SERVER})
  -w, --name NAME               worker name (default HOSTNAME-PID; in a pool, NAME-1 ... NAME-N)
  -c, --capabilities KIND...    kinds to run, comma or space separated
                                (default: all of ${BUILTIN_KINDS.join(', ')}, plus --handlers kinds,
                                or the kinds the config file declares)
  -n, --concurrency N           jobs at once (default 4)
  --prefetch N                  jobs the scheduler may send ahead, started as slots free,
                                so no slot idles for a round trip (default max(128, concurrency);
                                0 = off)
  --token TOKEN                 token the scheduler requires (default: $TASKWIRE_TOKEN)
  --tls                         speak TLS (verified against the system CAs, or --tls-ca)
  --tls-ca FILE                 verify the scheduler against this CA (PEM)
  --tls-cert FILE, --tls-key FILE
                                client certificate and key, for mutual TLS
  --tls-servername NAME         name the scheduler certificate must carry
  --tls-insecure                do not verify the scheduler certificate (prints a warning)
  --handlers PATH               a module whose default export (or register export) is called
                                with the worker to register kinds: worker.handle(kind, fn)
  --pool NAME                   pool name "taskwire workers" shows (--processes sets it to
                                the pool's --name)
  --processing-ms MS            emulate work: every job takes MS ms (default 0)
  --fail-rate P                 emulate faults: fail attempts retryably with probability P (0-1)
  --reconnect-base-ms MS        first reconnect delay, doubling with jitter (default 100)
  --reconnect-max-ms MS         largest reconnect delay (default 5000)
  --connect-timeout-ms MS       time for connect plus handshake (default 5000)
  --drain-grace-ms MS           on SIGTERM, let running jobs finish for MS ms (default 30000)
  --abandon-grace-ms MS         after a timeout or cancel, give a handler that ignores it MS ms
                                before its slot is taken back (default 5000)
  --log-level LEVEL             silent | error | info | debug (default info), to stderr
  --config FILE                 settings from a JSON file (below)
  --print-config                print the effective settings (token masked) and exit
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
  SIGHUP replaces the processes one by one (rolling restart; they read --config again);
  SIGTERM drains them all.

Config file: every long option is a key in camelCase, and "kinds" declares the kinds
to serve, each with its own command ("exec": an argument vector, or "shell": a line)
and concurrency (a kind with its own gets its own connection, named NAME/KIND):
  {"server": "127.0.0.1:9001", "concurrency": 4, "processes": 2,
   "kinds": {"resize": {"exec": ["convert", "-", "-resize", "50%", "-"], "concurrency": 2},
             "sha256": {}}}
  A kind without a command is a built-in or --handlers kind. The command line wins over
  TASKWIRE_* variables (TASKWIRE_CONCURRENCY, ...), which win over the file.

Prints "taskwire worker NAME connected to HOST:PORT as SESSION" once connected.
SIGTERM or SIGINT drains (finish running jobs, then exit 0); a second one exits at once.
A scheduler that refuses the token or the protocol version: "cannot connect", exit 1.
`;

/** Short forms of options. */
const SHORT: Readonly<Record<string, string>> = { server: 's', name: 'w', capabilities: 'c', concurrency: 'n', help: 'h' };

/** The command line's options: every setting but `kinds` (a config file's only). */
const OPTIONS = Object.fromEntries(
  Object.entries(WORKER_SETTINGS)
    .filter(([name]) => name !== 'kinds')
    .map(([name, def]) => [name, { type: def.type === 'boolean' ? 'boolean' : 'string', ...(SHORT[name] === undefined ? {} : { short: SHORT[name] }) }]),
) as Record<string, { type: 'string' | 'boolean'; short?: string }>;

/** Options the supervisor keeps to itself: its processes get their own name and pool, and the token by environment. */
const SUPERVISOR_ONLY: ReadonlySet<string> = new Set([
  'name',
  'pool',
  'token',
  'processes',
  'print-config',
  'restart-base-ms',
  'restart-max-ms',
  'crash-limit',
  'crash-window-ms',
  'ready-timeout-ms',
]);

/** Timing knobs of a pool. */
export interface PoolSettings {
  restartBaseMs: number;
  restartMaxMs: number;
  crashLimit: number;
  crashWindowMs: number;
  readyTimeoutMs: number;
}

/** What a worker process (or a pool of them) runs. */
export interface WorkerRun {
  /** Options of every connection; each {@link ConnectionPlan} sets its name, concurrency and capabilities. */
  options: WorkerOptions;
  /** The connections to keep: one, or one more per config-file kind with its own concurrency. */
  connections: ConnectionPlan[];
  /** The command given on the command line (`--` or `--shell`) for every capability, if any. */
  command: ExecCommand | undefined;
  killGraceMs: number;
  /** Path of a handlers module, as given. */
  handlers: string | undefined;
  /** Set when `processes` was set: run a supervisor of that many processes. Never set in a pool's process. */
  processes: number | undefined;
  pool: PoolSettings;
  logLevel: WorkerLogLevel;
}

/** A parsed `taskwire-worker` command line. */
export type WorkerCli = { action: 'help' } | { action: 'print-config'; text: string } | ({ action: 'run' } & WorkerRun);

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

/** `auto` → the number of CPUs, for `--processes` and `TASKWIRE_PROCESSES` (a config file says a number). */
function autoProcesses(text: string | undefined): string | undefined {
  return text === 'auto' ? String(availableParallelism()) : text;
}

/** Where the parse runs: in a pool's process, pool settings (`processes`, from the file or the environment too) do not apply. */
export interface ParseContext {
  /** True in a process a {@link WorkerPool} started. */
  poolMember?: boolean;
  /** Directory for relative `exec` commands. Default: this process's. */
  cwd?: string;
}

/**
 * Parses the `taskwire-worker` command line, with the environment and the
 * `--config` file it names. Throws {@link UsageError} (a `ConfigError` for
 * a setting that is wrong in the file or the environment).
 */
export function parseWorkerCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, ctx: ParseContext = {}): WorkerCli {
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
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v['help'] === true) return { action: 'help' };

  let command: ExecCommand | undefined;
  if (commandArgv !== undefined) {
    if (commandArgv.length === 0 || commandArgv[0] === '') throw new UsageError('no command after --');
    if (v['shell'] !== undefined) throw new UsageError('give either --shell LINE or -- COMMAND, not both');
    command = { argv: commandArgv };
  }
  const cli = { ...v, processes: autoProcesses(v['processes'] as string | undefined) };
  const processesVar = envName('processes');
  const environment = { ...env, [processesVar]: autoProcesses(env[processesVar]) };
  const file = typeof v['config'] === 'string' ? v['config'] : undefined;
  const config = loadWorkerConfig({ cli, env: environment, file, cwd: ctx.cwd }, command);
  const s = config.values;
  if (s.printConfig) return { action: 'print-config', text: printWorkerConfig(config) };

  if (command === undefined && s.shell !== undefined) command = { shell: s.shell };
  if (command !== undefined && s.handlers !== undefined) throw new UsageError('give either --handlers or a command, not both');
  let capabilities: string[] | undefined;
  if (s.capabilities !== undefined) {
    capabilities = [...new Set(s.capabilities)];
    if (capabilities.length === 0) throw new UsageError('--capabilities needs at least one kind');
    // With a command every listed kind runs it; a handlers module is checked once loaded; declared kinds were checked.
    if (command === undefined && s.handlers === undefined && config.kinds === undefined) {
      const builtin: readonly string[] = BUILTIN_KINDS;
      const unknown = capabilities.filter((k) => !builtin.includes(k));
      if (unknown.length > 0) {
        throw new UsageError(`unknown capability "${unknown[0]}": this worker runs ${BUILTIN_KINDS.join(', ')} (or use --handlers, or -- COMMAND)`);
      }
    }
  } else if (command !== undefined) {
    throw new UsageError('a command needs the kinds it runs: -c KIND -- COMMAND');
  }

  const logLevel: WorkerLogLevel = s.logLevel;
  const options: WorkerOptions = {
    server: parseAddress(s.server),
    concurrency: s.concurrency,
    processingMs: s.processingMs,
    failRate: s.failRate,
    reconnectBaseMs: s.reconnectBaseMs,
    reconnectMaxMs: s.reconnectMaxMs,
    connectTimeoutMs: s.connectTimeoutMs,
    drainGraceMs: s.drainGraceMs,
    abandonGraceMs: s.abandonGraceMs,
    logLevel,
  };
  if (s.prefetch !== undefined) options.prefetch = s.prefetch;
  if (s.name !== undefined) options.name = s.name;
  if (s.pool !== undefined) options.pool = s.pool;
  if (s.token !== undefined) options.token = s.token;
  const tls = tlsOptionsOf(s, 'taskwire-worker', (line) => process.stderr.write(line));
  if (tls !== undefined) options.tls = tls;
  const connections = planConnections({
    name: s.name ?? `${hostname()}-${process.pid}`,
    concurrency: s.concurrency,
    capabilities,
    command,
    kinds: config.kinds,
  });
  return {
    action: 'run',
    options,
    connections,
    command,
    killGraceMs: s.killGraceMs,
    handlers: s.handlers,
    processes: ctx.poolMember === true ? undefined : s.processes,
    pool: {
      restartBaseMs: s.restartBaseMs,
      restartMaxMs: s.restartMaxMs,
      crashLimit: s.crashLimit,
      crashWindowMs: s.crashWindowMs,
      readyTimeoutMs: s.readyTimeoutMs,
    },
    logLevel,
  };
}

/**
 * The command line of each process of a pool: `argv` without the options
 * only the supervisor uses (`--processes`, the pool's timings, `--name` and
 * `--pool`, which the pool sets per process, and `--token`, passed by
 * environment). `--config` stays: each process reads the file itself.
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

/** Runs this process's worker connections until they have drained. */
async function runWorker(cli: WorkerRun): Promise<void> {
  const log = (line: string): void => void process.stderr.write(line + '\n');
  const workers = cli.connections.map((plan) => {
    const opts: WorkerOptions = { ...cli.options, name: plan.name, concurrency: plan.concurrency, log };
    if (plan.capabilities !== undefined) opts.capabilities = plan.capabilities;
    return new Worker(opts);
  });
  let gaveUp = false;
  /** No restart can fix this: tell the pool (if any), print, exit. */
  const giveUp = (err: unknown, exitCode: number, prefix: string): void => {
    if (gaveUp) return;
    gaveUp = true;
    const code = err instanceof TaskwireError ? err.code : 'INTERNAL';
    process.stderr.write(`${PROGRAM}: ${prefix}${describe(err)}\n`);
    tellPool({ type: 'taskwire-worker:fatal', code, message: err instanceof Error ? err.message : String(err) }, () => process.exit(exitCode));
  };
  if (cli.command !== undefined) {
    // Config-file commands were checked while parsing (the error names the key); this one is the command line's.
    try {
      checkCommand(cli.command);
    } catch (err) {
      giveUp(err, 2, '');
      return;
    }
  }
  cli.connections.forEach((plan, i) => {
    for (const [kind, command] of plan.commands) workers[i]!.handle(kind, execHandler(command, { killGraceMs: cli.killGraceMs }));
  });
  if (cli.handlers !== undefined) {
    // A crash here is not final for a pool: the file may be mid-deploy; the crash-loop limit bounds it.
    try {
      for (const worker of workers) await loadHandlers(cli.handlers, worker);
    } catch (err) {
      process.stderr.write(`${PROGRAM}: ${describe(err)}\n`);
      process.exit(1);
    }
  }
  // One "connected" line per connection (the library logs only reconnections at info);
  // the pool hears once every connection is up.
  const sessions: string[] = [];
  for (const worker of workers) {
    worker.once('ready', ({ sessionId }) => {
      process.stdout.write(`taskwire worker ${worker.name} connected to ${worker.address} as ${sessionId}\n`);
      sessions.push(sessionId);
      if (sessions.length === workers.length) tellPool({ type: 'taskwire-worker:ready', sessionId: sessions.join(',') });
    });
    // A final refusal on a later reconnect (a first one rejects start()).
    worker.on('error', (err) => giveUp(err, 1, 'cannot connect: '));
  }
  let signals = 0;
  // In a pool, several processes write to one stderr: say which one speaks.
  const me = process.send === undefined ? PROGRAM : `${PROGRAM} ${cli.options.name ?? workers[0]!.name}`;
  const stop = (why: string): void => {
    if (++signals > 1) {
      process.stderr.write(`${me}: ${why} again, exiting now\n`);
      for (const worker of workers) void worker.destroy();
      process.exit(1);
    }
    const running = workers.reduce((n, w) => n + w.running, 0);
    process.stderr.write(`${me}: ${why}, draining (${running} job(s) running)\n`);
    void Promise.all(workers.map((w) => w.drain())).then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Forked by a pool whose supervisor is gone: nobody will stop or restart us, so drain and leave.
  if (process.send !== undefined) process.on('disconnect', () => stop('supervisor gone'));
  await Promise.all(
    workers.map((worker) =>
      worker.start().catch((err: unknown) => {
        if (err instanceof TaskwireError && err.code === 'INVALID_ARGUMENT') giveUp(err, 2, '');
        else giveUp(err, 1, 'cannot connect: ');
      }),
    ),
  );
}

/** Runs a supervisor of `cli.processes` workers until they have all exited. */
async function runPool(cli: WorkerRun, argv: readonly string[]): Promise<void> {
  const name = cli.options.name ?? `${hostname()}-${process.pid}`;
  const env = { ...process.env };
  if (cli.options.token !== undefined) env['TASKWIRE_TOKEN'] = cli.options.token;
  const info = cli.logLevel === 'info' || cli.logLevel === 'debug';
  const pool = new WorkerPool({
    processes: cli.processes!,
    name,
    pool: cli.options.pool ?? name,
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
    // Forked by a WorkerPool (an IPC channel): a process of a pool never starts a pool of its own.
    cli = parseWorkerCli(argv, process.env, { poolMember: process.send !== undefined });
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(usageLine(PROGRAM, err.message));
    process.exit(2);
  }
  switch (cli.action) {
    case 'help':
      process.stdout.write(USAGE);
      return process.exit(0);
    case 'print-config':
      process.stdout.write(cli.text);
      return process.exit(0);
    case 'run':
      if (cli.processes !== undefined) await runPool(cli, argv);
      else await runWorker(cli);
      return;
    default:
      assertNever(cli);
  }
}
