/**
 * Settings of `taskwire-worker`: its options as a {@link WORKER_SETTINGS}
 * schema for the shared loader (command line > `TASKWIRE_*` > `--config`
 * file > defaults, src/lib/config.ts), plus what only the file can say:
 * `kinds`, the set of kinds one worker (or pool) serves, each with its own
 * command and concurrency.
 *
 * ```json
 * {
 *   "server": "127.0.0.1:9001",
 *   "concurrency": 4,
 *   "kinds": {
 *     "resize": { "exec": ["convert", "-", "-resize", "50%", "-"], "concurrency": 2 },
 *     "sha256": {}
 *   }
 * }
 * ```
 *
 * A kind's own `concurrency` gets it its own connection to the scheduler
 * ({@link planConnections}): the scheduler counts a worker's running jobs per
 * connection and mirrors the start order of its prefetch queue (PROTOCOL.md
 * §5.4), so a limit per kind held back inside one connection would leave
 * jobs counted as running (their timeouts ticking) while they wait, and
 * start them out of the order the scheduler assumes.
 */
import { readFileSync } from 'node:fs';
import { parseAddress } from './cli.js';
import { closest } from './cli/args.js';
import {
  ConfigError,
  defineSchema,
  envName,
  loadConfig,
  MAX_CONFIG_BYTES,
  printConfig,
  type LoadedConfig,
  type Settings,
} from './config.js';
import { checkCommand, type ExecCommand } from './exec-handler.js';
import { BUILTIN_KINDS } from './jobs.js';
import { MAX_STR8_BYTES, U32_MAX } from './protocol.js';

function addressProblem(value: unknown): string | undefined {
  try {
    return parseAddress(String(value)).port === 0 ? 'HOST:PORT with a port from 1 to 65535' : undefined;
  } catch {
    return 'HOST:PORT';
  }
}

const nonEmpty = (value: unknown): string | undefined => (value === '' ? 'a non-empty string' : undefined);

/**
 * Every option of `taskwire-worker` by long name. `kinds` is the one setting
 * with no command-line option and no variable: only a config file can
 * declare it (see {@link loadWorkerConfig}).
 */
export const WORKER_SETTINGS = defineSchema({
  server: { type: 'string', default: '127.0.0.1:9001', help: 'scheduler address', validate: addressProblem },
  name: { type: 'string', help: 'worker name (default HOSTNAME-PID; in a pool, NAME-1 ... NAME-N)', validate: nonEmpty },
  pool: { type: 'string', help: 'pool name shown by "taskwire workers" (a --processes supervisor sets its --name)', validate: nonEmpty },
  capabilities: { type: 'list', help: 'kinds to run (default: every built-in, --handlers or declared kind)' },
  concurrency: { type: 'number', integer: true, min: 1, max: U32_MAX, default: 4, help: 'jobs at once' },
  prefetch: { type: 'number', integer: true, min: 0, max: 1024, help: 'jobs the scheduler may send ahead (default max(128, concurrency))' },
  token: { type: 'string', secret: true, help: 'token the scheduler requires' },
  tls: { type: 'boolean', default: false, help: 'speak TLS to the scheduler (verified against the system CAs, or --tls-ca)' },
  'tls-ca': { type: 'string', help: 'verify the scheduler against this CA (PEM)' },
  'tls-cert': { type: 'string', help: 'client certificate for mutual TLS (PEM)' },
  'tls-key': { type: 'string', help: 'its private key (PEM)' },
  'tls-servername': { type: 'string', help: 'name the scheduler certificate must carry' },
  'tls-insecure': { type: 'boolean', default: false, help: 'do not verify the scheduler certificate (tests only)' },
  handlers: { type: 'string', help: 'a module that registers kinds', validate: nonEmpty },
  'processing-ms': { type: 'number', integer: true, min: 0, default: 0, help: 'emulate work: every job takes MS ms' },
  'fail-rate': { type: 'number', min: 0, max: 1, default: 0, help: 'emulate faults: fail attempts retryably with this probability' },
  'reconnect-base-ms': { type: 'number', integer: true, min: 1, default: 100, help: 'first reconnect delay' },
  'reconnect-max-ms': { type: 'number', integer: true, min: 1, default: 5_000, help: 'largest reconnect delay' },
  'connect-timeout-ms': { type: 'number', integer: true, min: 1, default: 5_000, help: 'time for connect plus handshake' },
  'drain-grace-ms': { type: 'number', integer: true, min: 0, default: 30_000, help: 'on SIGTERM, time running jobs get to finish' },
  'abandon-grace-ms': { type: 'number', integer: true, min: 0, default: 5_000, help: 'time a handler gets to stop after a timeout or cancel' },
  'log-level': { type: 'string', choices: ['silent', 'error', 'info', 'debug'], default: 'info', help: 'log detail, to stderr' },
  shell: { type: 'string', help: 'run this line with /bin/sh -c for every kind', validate: (v) => (String(v).trim() === '' ? 'a command line' : undefined) },
  'kill-grace-ms': { type: 'number', integer: true, min: 0, default: 5_000, help: 'SIGKILL a command this long after SIGTERM' },
  kinds: { type: 'list', help: 'kinds declared in the config file, each with its own exec and concurrency' },
  processes: { type: 'number', integer: true, min: 1, max: 1024, help: 'run N worker processes under a supervisor' },
  'restart-base-ms': { type: 'number', integer: true, min: 1, default: 500, help: 'first restart delay of a pool process' },
  'restart-max-ms': { type: 'number', integer: true, min: 1, default: 30_000, help: 'largest restart delay' },
  'crash-limit': { type: 'number', integer: true, min: 1, default: 5, help: 'deaths within the crash window before giving up' },
  'crash-window-ms': { type: 'number', integer: true, min: 1, default: 60_000, help: 'the crash window' },
  'ready-timeout-ms': { type: 'number', integer: true, min: 1, default: 30_000, help: 'rolling restart: time a new process has to connect' },
  config: { type: 'string', persistent: false, help: 'a JSON file of settings' },
  'print-config': { type: 'boolean', persistent: false, default: false, help: 'print the effective settings and exit' },
  help: { type: 'boolean', persistent: false, default: false, help: 'show this help' },
});

/** Effective settings of `taskwire-worker`. */
export type WorkerSettings = Settings<typeof WORKER_SETTINGS>;

/** One kind declared in the config file's `kinds`. */
export interface KindSpec {
  /** Run once per job (`exec` or `shell`); undefined: the built-in or `--handlers` handler. */
  command: ExecCommand | undefined;
  /** Its own limit, on its own connection; undefined: it shares the worker's `concurrency`. */
  concurrency: number | undefined;
}

/** What {@link loadWorkerConfig} returns: the loader's result plus the declared kinds. */
export interface WorkerConfig extends LoadedConfig<typeof WORKER_SETTINGS> {
  /** The file's `kinds`, in file order; undefined when it declares none. */
  kinds: ReadonlyMap<string, KindSpec> | undefined;
}

/** Input of {@link loadWorkerConfig}. */
export interface WorkerConfigInput {
  /** Command-line options by long name (strings, booleans), as for `loadConfig`. */
  cli: Readonly<Record<string, string | boolean | undefined>>;
  env: Readonly<Record<string, string | undefined>>;
  /** `--config FILE`, if given. */
  file: string | undefined;
  /** For looking up `exec` commands (default: this process's). */
  cwd?: string;
}

const KIND_KEYS = ['exec', 'shell', 'concurrency'] as const;
const KINDS_EXAMPLE = '{"resize": {"exec": ["convert", "-", "-resize", "50%", "-"], "concurrency": 2}, "sha256": {}}';

/**
 * The worker's effective settings (see {@link WORKER_SETTINGS}), with the
 * config file's `kinds` checked strictly: each entry an object of `exec`
 * (a non-empty array of strings, run without a shell, and found on PATH),
 * or `shell` (one line for /bin/sh -c), and `concurrency` (an integer from 1);
 * a kind without a command must be built in unless `handlers` is set.
 * `capabilities`, when set, picks some of the declared kinds; a command for
 * every kind (`shell`, or `-- COMMAND` as `cliCommand`) cannot be combined
 * with them. Throws {@link ConfigError} naming the file, the key
 * (`kinds.resize.exec`) and what is allowed.
 */
export function loadWorkerConfig(input: WorkerConfigInput, cliCommand?: ExecCommand): WorkerConfig {
  const kindsVar = envName('kinds');
  if ((input.env[kindsVar] ?? '') !== '') {
    throw new ConfigError(
      `environment ${kindsVar}`,
      kindsVar,
      `environment ${kindsVar}: kinds are declared in a config file ("kinds": {...}); for a list of kinds to run, use ${envName('capabilities')}`,
    );
  }
  const rawKinds = input.file === undefined ? undefined : kindsInFile(input.file);
  // config.ts has no object-valued settings: it checks every other key of the file, and is
  // handed `kinds` as already set (its names) so that it neither reads nor rejects the object.
  const cli = { ...input.cli, kinds: rawKinds === undefined ? undefined : [] };
  const loaded = loadConfig(WORKER_SETTINGS, { cli, env: input.env, file: input.file });
  let kinds: Map<string, KindSpec> | undefined;
  if (rawKinds !== undefined) {
    const where = `config file ${input.file}`;
    kinds = parseKinds(rawKinds, where, { env: input.env, cwd: input.cwd, handlers: loaded.values.handlers !== undefined });
    loaded.values.kinds = [...kinds.keys()];
    loaded.sources.kinds = 'file';
    const command = cliCommand ?? (loaded.values.shell === undefined ? undefined : { shell: loaded.values.shell });
    if (command !== undefined) {
      const what = cliCommand !== undefined ? 'a command after --' : `shell (${loaded.sources.shell === 'file' ? 'in the same file' : loaded.sources.shell})`;
      throw new ConfigError(where, 'kinds', `${where}: key "kinds" cannot be combined with ${what}: give each kind its own "exec" or "shell"`);
    }
    const chosen = loaded.values.capabilities;
    if (chosen !== undefined) {
      const stray = chosen.find((k) => !kinds!.has(k));
      if (stray !== undefined) {
        const source = loaded.sources.capabilities;
        const from = source === 'file' ? where : source === 'environment' ? `environment ${envName('capabilities')}` : '--capabilities';
        const label = source === 'file' ? `${where}: key "capabilities"` : from;
        throw new ConfigError(from, 'capabilities', `${label}: "${stray}" is not one of the kinds ${where} declares (${[...kinds.keys()].join(', ')})`);
      }
    }
  }
  return { ...loaded, kinds };
}

/** The `kinds` value of a config file, if it has one. Anything unreadable is left to `loadConfig` to report. */
function kindsInFile(path: string): unknown {
  let parsed: unknown;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_CONFIG_BYTES) return undefined;
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !Object.hasOwn(parsed, 'kinds')) return undefined;
  return (parsed as Record<string, unknown>)['kinds'];
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** Checks the file's `kinds` object. Throws {@link ConfigError}. */
export function parseKinds(
  raw: unknown,
  where: string,
  opts: { env?: Readonly<Record<string, string | undefined>>; cwd?: string | undefined; handlers?: boolean } = {},
): Map<string, KindSpec> {
  const fail = (key: string, allowed: string, got?: unknown): never => {
    throw new ConfigError(where, key, `${where}: key "${key}": ${allowed}${got === undefined ? '' : `, got ${shown(got)}`}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('kinds', `expected an object of kinds, like ${KINDS_EXAMPLE}`, raw);
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length === 0) fail('kinds', `expected at least one kind, like ${KINDS_EXAMPLE}`);
  const builtin: readonly string[] = BUILTIN_KINDS;
  const kinds = new Map<string, KindSpec>();
  for (const [kind, entry] of entries) {
    const key = `kinds.${kind}`;
    if (kind === '' || Buffer.byteLength(kind) > MAX_STR8_BYTES) fail(key, `a kind is 1 to ${MAX_STR8_BYTES} bytes of UTF-8`);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      fail(key, `expected an object with any of ${KIND_KEYS.join(', ')} ({} for a built-in or --handlers kind)`, entry);
    }
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if ((KIND_KEYS as readonly string[]).includes(k)) continue;
      const near = closest(k, KIND_KEYS);
      fail(`${key}.${k}`, `unknown key${near === undefined ? '' : ` (did you mean "${near}"?)`}; allowed: ${KIND_KEYS.join(', ')}`);
    }
    let command: ExecCommand | undefined;
    if (e['exec'] !== undefined) {
      const argv = e['exec'];
      if (typeof argv === 'string') {
        fail(`${key}.exec`, 'expected the command as a JSON array of strings (nothing is split or re-parsed; for a command line, use "shell")', argv);
      }
      if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a): a is string => typeof a === 'string') || argv[0] === '') {
        fail(`${key}.exec`, 'expected the command as a non-empty JSON array of strings, like ["convert", "-", "-resize", "50%", "-"]', argv);
      }
      if ((argv as string[]).some((a) => a.includes('\0'))) fail(`${key}.exec`, 'arguments cannot contain NUL characters');
      command = { argv: [...(argv as string[])] };
    }
    if (e['shell'] !== undefined) {
      if (command !== undefined) fail(key, 'give "exec" or "shell", not both');
      const line = e['shell'];
      if (typeof line !== 'string' || line.trim() === '') fail(`${key}.shell`, 'expected a command line (a non-empty string) for /bin/sh -c', line);
      command = { shell: line as string };
    }
    if (command !== undefined) {
      const which = 'argv' in command ? 'exec' : 'shell';
      try {
        checkCommand(command, { env: opts.env ?? process.env, cwd: opts.cwd ?? process.cwd() });
      } catch (err) {
        fail(`${key}.${which}`, `cannot run it: ${err instanceof Error ? err.message : String(err)}`);
      }
    } else if (opts.handlers !== true && !builtin.includes(kind)) {
      fail(key, `no built-in kind "${kind}" (built-in: ${BUILTIN_KINDS.join(', ')}): give it "exec" or "shell", or register it with a handlers module`);
    }
    let concurrency: number | undefined;
    if (e['concurrency'] !== undefined) {
      const n = e['concurrency'];
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > U32_MAX) fail(`${key}.concurrency`, `expected an integer from 1 to ${U32_MAX}`, n);
      concurrency = n as number;
    }
    kinds.set(kind, { command, concurrency });
  }
  return kinds;
}

/** One connection to the scheduler that a worker process keeps. */
export interface ConnectionPlan {
  /** Its worker name. */
  name: string;
  concurrency: number;
  /** Kinds it advertises; undefined: every kind registered (built-ins and `--handlers`). */
  capabilities: string[] | undefined;
  /** Commands of those kinds that run one (the rest use registered handlers). */
  commands: Map<string, ExecCommand>;
}

/**
 * The connections one worker process keeps. Without declared kinds: one,
 * named `name`, running `command` (if any) for every capability. With them:
 * one named `name` for the chosen kinds that share `concurrency`, and one
 * per kind with its own concurrency; when there is more than one
 * connection, those are named `NAME/KIND`.
 */
export function planConnections(opts: {
  name: string;
  concurrency: number;
  capabilities: string[] | undefined;
  command: ExecCommand | undefined;
  kinds: ReadonlyMap<string, KindSpec> | undefined;
}): ConnectionPlan[] {
  if (opts.kinds === undefined) {
    const commands = new Map<string, ExecCommand>();
    if (opts.command !== undefined) for (const kind of opts.capabilities ?? []) commands.set(kind, opts.command);
    return [{ name: opts.name, concurrency: opts.concurrency, capabilities: opts.capabilities, commands }];
  }
  const chosen = opts.capabilities ?? [...opts.kinds.keys()];
  const sharing = chosen.filter((kind) => opts.kinds!.get(kind)!.concurrency === undefined);
  const groups: Array<{ suffix: string; concurrency: number; kinds: string[] }> = [];
  if (sharing.length > 0) groups.push({ suffix: '', concurrency: opts.concurrency, kinds: sharing });
  for (const kind of chosen) {
    const own = opts.kinds.get(kind)!.concurrency;
    if (own !== undefined) groups.push({ suffix: `/${kind}`, concurrency: own, kinds: [kind] });
  }
  return groups.map((g) => {
    const commands = new Map<string, ExecCommand>();
    for (const kind of g.kinds) {
      const command = opts.kinds!.get(kind)!.command;
      if (command !== undefined) commands.set(kind, command);
    }
    return { name: groups.length === 1 ? opts.name : opts.name + g.suffix, concurrency: g.concurrency, capabilities: g.kinds, commands };
  });
}

/** {@link printConfig} for the worker, with a line per declared kind. */
export function printWorkerConfig(config: WorkerConfig): string {
  let out = printConfig(WORKER_SETTINGS, config);
  if (config.kinds === undefined) return out;
  const rows = [...config.kinds].map(([kind, spec]): [string, string] => {
    const run = spec.command === undefined ? 'built-in or --handlers handler' : 'argv' in spec.command ? `exec ${JSON.stringify(spec.command.argv)}` : `shell ${JSON.stringify(spec.command.shell)}`;
    const limit = spec.concurrency === undefined ? `shares concurrency ${config.values.concurrency}` : `concurrency ${spec.concurrency} (own connection)`;
    return [`kinds.${kind}`, `${run}, ${limit}`];
  });
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  for (const [k, v] of rows) out += `${k.padEnd(width)}${v}\n`;
  return out;
}
