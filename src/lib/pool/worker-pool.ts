/**
 * Worker pools: one supervisor process runs N `taskwire-worker` processes
 * (`taskwire-worker --processes N`, or {@link WorkerPool} for embedders),
 * restarts those that die with exponential backoff and a crash-loop limit,
 * drains them all on close, and replaces them one by one on a rolling
 * restart. The supervisor runs no jobs and no user code: each process is a
 * plain worker with its own connection, named `NAME-1` … `NAME-N`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { backoffDelay } from '../backoff.js';
import { isErrorCode, TaskwireError, type ErrorCode } from '../errors.js';
import { isPoolMessage, type PoolMessage } from './messages.js';

/** Options of a {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Worker processes to keep running, at least 1. */
  processes: number;
  /** Base name: process `i` is `NAME-i` (1-based). Default `${hostname}-${pid}`. */
  name?: string;
  /** The pool name every process reports in its HELLO (`taskwire workers` shows it). Default: `name`. */
  pool?: string;
  /**
   * The `taskwire-worker` command line every process runs (`--server`,
   * `-c`, `--handlers`, `-- CMD ...`, ...), without `--name` (the pool sets
   * it), `--pool` and `--processes`. Pass a token in `env` as `TASKWIRE_TOKEN`
   * rather than here: command lines are visible to every user of the host.
   */
  args?: readonly string[];
  /** Environment of the processes. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** The worker program. Default: this package's `taskwire-worker` entry. */
  entry?: string;
  /** Node options of the processes. Default: this process's, plus `--import tsx` for a `.ts` entry. */
  execArgv?: readonly string[];
  /** First restart delay ceiling; doubles per death in a row, with jitter. Default 500 ms. */
  restartBaseMs?: number;
  /** Largest restart delay. Default 30000 ms. */
  restartMaxMs?: number;
  /** A process that dies this many times within `crashWindowMs` is not restarted again. Default 5. */
  crashLimit?: number;
  /** See `crashLimit`. Default 60000 ms. */
  crashWindowMs?: number;
  /** Rolling restart: how long a new process has to connect before the roll stops. Default 30000 ms. */
  readyTimeoutMs?: number;
  /** `inherit` (default): the processes write to this process's stdout/stderr. */
  stdio?: 'inherit' | 'ignore';
  /** Where the supervisor's log lines go (starts, deaths, restarts, give-ups). Default: nowhere. */
  log?: (line: string) => void;
  /** Randomness in [0, 1) for the restart jitter; injectable for tests. */
  random?: () => number;
}

/** One worker process of a pool, as {@link WorkerPool.processes} shows it. */
export interface PoolProcessInfo {
  name: string;
  /** Undefined while the slot waits to be restarted, or after it gave up. */
  pid: number | undefined;
  /** `starting`: spawned, not yet accepted by the scheduler; `waiting`: restart scheduled; `stopped`: gave up or closed. */
  state: 'starting' | 'ready' | 'waiting' | 'stopped';
  /** Deaths within the crash window. */
  recentDeaths: number;
}

/** Events of a {@link WorkerPool}. */
export interface WorkerPoolEvents {
  /** A process was started. */
  spawn: [info: { name: string; pid: number }];
  /** A process was accepted by the scheduler (its first WELCOME). */
  ready: [info: { name: string; pid: number; sessionId: string }];
  /** A process exited; `expected` when the pool stopped it (close, rolling restart). */
  exit: [info: { name: string; pid: number; code: number | null; signal: NodeJS.Signals | null; expected: boolean }];
  /** A dead process will be started again after `delayMs`. */
  restarting: [info: { name: string; delayMs: number; recentDeaths: number }];
  /** A process will not be restarted again (crash loop, or a refusal no restart can fix). */
  giveup: [info: { name: string; error: TaskwireError }];
  /** Every process has exited and none will be started: after close()/destroy(), or when every slot gave up (`err`). */
  close: [err: TaskwireError | undefined];
}

type PoolState = 'idle' | 'running' | 'closing' | 'closed';

/** One of the N places in the pool. */
class Slot {
  /** The process serving this slot; undefined while a restart is pending or after a give-up. */
  proc: ChildProcess | undefined = undefined;
  ready = false;
  /** Monotonic times of deaths within the crash window. */
  deaths: number[] = [];
  /** Deaths since the last ready: the backoff exponent. */
  inARow = 0;
  timer: NodeJS.Timeout | undefined = undefined;
  /** Set once the slot will not be restarted. */
  gaveUp: TaskwireError | undefined = undefined;
  /** A final refusal the current process reported before exiting (no restart can fix it). */
  fatal: TaskwireError | undefined = undefined;
  /** Ever ready (for start()). */
  everReady = false;

  constructor(
    readonly index: number,
    readonly name: string,
  ) {}
}

/** What the pool knows about one live process. */
interface Proc {
  slot: Slot;
  /** The pool stopped it on purpose (close, rolling restart): its exit is not a death. */
  retiring: boolean;
  /** SIGTERM sent (it drains): a second one would make it exit at once, dropping its jobs. */
  termSent: boolean;
  exited: Promise<void>;
  /** Called by its first ready message (with its session id), or with '' when the pool stops it. */
  onReady: ((sessionId: string) => void) | undefined;
}

/** The default worker program: `src/worker.ts` under tsx, `dist/worker.js` when built. */
function defaultEntry(): string {
  const self = fileURLToPath(import.meta.url);
  return join(dirname(self), '..', '..', `worker${extname(self)}`);
}

/**
 * Runs N worker processes under this one and keeps them running: a process
 * that dies is started again after an exponential backoff with jitter,
 * unless it died `crashLimit` times within `crashWindowMs` (or reported a
 * refusal no restart can fix, like a wrong token): then its slot stops, and
 * when every slot has stopped the pool closes with that error.
 * {@link close} drains every process (SIGTERM: running jobs finish);
 * {@link restart} replaces them one by one, each only after its successor is
 * connected, so no job is lost and capacity never drops by more than one.
 * Processes are started in their own process group and drain by themselves
 * if the supervisor dies.
 *
 * @example
 * const pool = new WorkerPool({
 *   processes: 4,
 *   name: 'img',
 *   args: ['--server', 'sched:9001', '--handlers', './handlers.js', '-n', '8'],
 *   log: (line) => console.error(line),
 * });
 * await pool.start(); // every process connected once
 * process.on('SIGHUP', () => void pool.restart());
 * process.on('SIGTERM', () => void pool.close());
 */
export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  readonly name: string;
  /** Reported by every process as its pool (`WorkerInfo.pool`). */
  readonly pool: string;
  readonly size: number;
  readonly #args: readonly string[];
  readonly #env: NodeJS.ProcessEnv | undefined;
  readonly #entry: string;
  readonly #execArgv: string[];
  readonly #restartBaseMs: number;
  readonly #restartMaxMs: number;
  readonly #crashLimit: number;
  readonly #crashWindowMs: number;
  readonly #readyTimeoutMs: number;
  readonly #stdio: 'inherit' | 'ignore';
  readonly #log: ((line: string) => void) | undefined;
  readonly #random: () => number;
  readonly #slots: Slot[];
  readonly #procs = new Map<ChildProcess, Proc>();
  #state: PoolState = 'idle';
  #started: Promise<void> | undefined;
  #settleStarted: ((err?: Error) => void) | undefined;
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;
  #rolling: Promise<void> | undefined;
  #rollAgain = false;
  /** Why the pool closed by itself (every slot gave up); valid once closing. */
  #closeError: TaskwireError | undefined;

  /** Throws `INVALID_ARGUMENT` for a bad option. */
  constructor(opts: WorkerPoolOptions) {
    super();
    this.size = opts.processes;
    checkInt('processes', this.size, 1, 4096);
    this.name = opts.name ?? `${hostname()}-${process.pid}`;
    if (this.name === '') throw new TaskwireError('INVALID_ARGUMENT', 'name must not be empty');
    this.pool = opts.pool ?? this.name;
    if (this.pool === '') throw new TaskwireError('INVALID_ARGUMENT', 'pool must not be empty');
    this.#args = [...(opts.args ?? [])];
    for (const arg of this.#args) {
      if (arg === '--') break;
      if (/^(--name|-w|--pool|--processes)(=|$)/.test(arg)) {
        throw new TaskwireError('INVALID_ARGUMENT', `args must not set ${arg}: the pool sets the names`);
      }
    }
    this.#env = opts.env;
    this.#entry = opts.entry ?? defaultEntry();
    this.#execArgv = [...(opts.execArgv ?? defaultExecArgv(this.#entry))];
    this.#restartBaseMs = opts.restartBaseMs ?? 500;
    this.#restartMaxMs = opts.restartMaxMs ?? 30_000;
    this.#crashLimit = opts.crashLimit ?? 5;
    this.#crashWindowMs = opts.crashWindowMs ?? 60_000;
    this.#readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
    checkInt('restartBaseMs', this.#restartBaseMs, 1);
    checkInt('restartMaxMs', this.#restartMaxMs, 1);
    checkInt('crashLimit', this.#crashLimit, 1);
    checkInt('crashWindowMs', this.#crashWindowMs, 1);
    checkInt('readyTimeoutMs', this.#readyTimeoutMs, 1);
    this.#stdio = opts.stdio ?? 'inherit';
    this.#log = opts.log;
    this.#random = opts.random ?? Math.random;
    this.#slots = Array.from({ length: this.size }, (_, i) => new Slot(i + 1, `${this.name}-${i + 1}`));
  }

  /** Every slot, in order. */
  get processes(): PoolProcessInfo[] {
    return this.#slots.map((s) => ({
      name: s.name,
      pid: s.proc?.pid,
      state: s.gaveUp !== undefined || this.#state === 'closed' ? 'stopped' : s.proc === undefined ? 'waiting' : s.ready ? 'ready' : 'starting',
      recentDeaths: s.deaths.length,
    }));
  }

  /**
   * Starts every process. Resolves once each has been accepted by the
   * scheduler (like `Worker.start()`, it waits for a scheduler that is not
   * up yet), or when the pool is closed first; rejects when every slot gave
   * up before that. Idempotent.
   */
  start(): Promise<void> {
    if (this.#started !== undefined) return this.#started;
    if (this.#state !== 'idle') return (this.#started = Promise.resolve());
    this.#state = 'running';
    this.#started = new Promise<void>((resolve, reject) => {
      this.#settleStarted = (err) => (err === undefined ? resolve() : reject(err));
    });
    for (const slot of this.#slots) slot.proc = this.#spawn(slot);
    return this.#started;
  }

  /**
   * Graceful stop: no more restarts, SIGTERM to every process (each drains:
   * running jobs finish, within its `--drain-grace-ms`). Resolves once all
   * have exited. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#stopAll('SIGTERM');
    return this.#closed;
  }

  /** Hard stop: SIGKILL to every process; resolves once all have exited. Also cuts a close() short. */
  destroy(): Promise<void> {
    this.#closed ??= new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#stopAll('SIGKILL');
    return this.#closed;
  }

  /**
   * Rolling restart: for each slot in turn, starts a new process, waits until
   * the scheduler has accepted it, then SIGTERMs the old one (it drains) and
   * waits for it to exit. Stops early (rejects) when a new process dies or is
   * not ready within `readyTimeoutMs`; the old one then keeps running. A call
   * during a roll makes one more roll follow it.
   */
  restart(): Promise<void> {
    if (this.#state !== 'running') return Promise.resolve();
    if (this.#rolling !== undefined) {
      this.#rollAgain = true;
      return this.#rolling;
    }
    const roll = async (): Promise<void> => {
      do {
        this.#rollAgain = false;
        this.#logLine('rolling restart');
        for (const slot of this.#slots) {
          if (this.#state !== 'running') return;
          await this.#replace(slot);
        }
        this.#logLine('rolling restart done');
      } while (this.#rollAgain && this.#state === 'running');
    };
    this.#rolling = roll().finally(() => {
      this.#rolling = undefined;
    });
    return this.#rolling;
  }

  // -------------------------------------------------------------------------

  #spawn(slot: Slot): ChildProcess {
    const proc = fork(this.#entry, [...this.#args, '--name', slot.name, '--pool', this.pool], {
      execArgv: this.#execArgv,
      env: this.#env ?? process.env,
      // Own process group: a Ctrl-C at the terminal reaches the supervisor only, which
      // forwards one SIGTERM; the processes would otherwise get two and stop at once.
      detached: true,
      stdio: this.#stdio === 'inherit' ? ['ignore', 'inherit', 'inherit', 'ipc'] : ['ignore', 'ignore', 'ignore', 'ipc'],
      serialization: 'json',
    });
    let resolveExit!: () => void;
    const p: Proc = { slot, retiring: false, termSent: false, exited: new Promise((resolve) => (resolveExit = resolve)), onReady: undefined };
    this.#procs.set(proc, p);
    proc.on('message', (msg: unknown) => {
      if (isPoolMessage(msg)) this.#onMessage(proc, p, msg);
    });
    proc.on('error', (err) => {
      // Spawn failure (no 'exit' follows) or a failed IPC send.
      if (proc.pid === undefined) {
        this.#logLine(`${slot.name}: cannot start: ${err.message}`);
        this.#onExit(proc, p, null, null);
        resolveExit();
      }
    });
    proc.on('exit', (code, signal) => {
      this.#onExit(proc, p, code, signal);
      resolveExit();
    });
    if (proc.pid !== undefined) {
      this.#logLine(`${slot.name} started (pid ${proc.pid})`);
      this.emit('spawn', { name: slot.name, pid: proc.pid });
    }
    return proc;
  }

  #onMessage(proc: ChildProcess, p: Proc, msg: PoolMessage): void {
    const slot = p.slot;
    switch (msg.type) {
      case 'taskwire-worker:ready': {
        const first = p.onReady;
        p.onReady = undefined;
        first?.(msg.sessionId);
        if (slot.proc === proc && !slot.ready) {
          slot.ready = true;
          slot.inARow = 0; // like a reconnect, the backoff restarts once a process got going
          slot.everReady = true;
          this.emit('ready', { name: slot.name, pid: proc.pid!, sessionId: msg.sessionId });
          this.#maybeStarted();
        }
        return;
      }
      case 'taskwire-worker:fatal':
        if (slot.proc === proc) slot.fatal = new TaskwireError(toCode(msg.code), msg.message);
        return;
    }
  }

  #onExit(proc: ChildProcess, p: Proc, code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.#procs.delete(proc)) return;
    const slot = p.slot;
    const expected = p.retiring || this.#state !== 'running';
    this.emit('exit', { name: slot.name, pid: proc.pid ?? 0, code, signal, expected });
    if (slot.proc === proc) {
      slot.proc = undefined;
      slot.ready = false;
      if (!expected) this.#died(slot, code, signal);
    }
    if (this.#state === 'closing' && this.#procs.size === 0) this.#finish(undefined);
  }

  /** An unexpected death: restart with backoff, or give the slot up. */
  #died(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    const how = code !== null ? `exit code ${code}` : `signal ${signal ?? '?'}`;
    const now = performance.now();
    slot.deaths.push(now);
    while (slot.deaths.length > 0 && now - slot.deaths[0]! > this.#crashWindowMs) slot.deaths.shift();
    const fatal = slot.fatal;
    slot.fatal = undefined;
    if (fatal !== undefined) {
      return this.#giveUp(slot, new TaskwireError(fatal.code, `${slot.name} cannot run: ${fatal.message} (${fatal.code}); not restarting it`, { cause: fatal }));
    }
    if (slot.deaths.length >= this.#crashLimit) {
      return this.#giveUp(
        slot,
        new TaskwireError('LIMIT_EXCEEDED', `${slot.name} died ${slot.deaths.length} times within ${this.#crashWindowMs} ms (last: ${how}); not restarting it`),
      );
    }
    const delayMs = backoffDelay(slot.inARow++, { baseMs: this.#restartBaseMs, maxMs: this.#restartMaxMs, random: this.#random });
    this.#logLine(`${slot.name} died (${how}); restarting in ${delayMs} ms`);
    this.emit('restarting', { name: slot.name, delayMs, recentDeaths: slot.deaths.length });
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (this.#state === 'running' && slot.proc === undefined) slot.proc = this.#spawn(slot);
    }, delayMs);
  }

  #giveUp(slot: Slot, error: TaskwireError): void {
    slot.gaveUp = error;
    this.#logLine(error.message);
    this.emit('giveup', { name: slot.name, error });
    if (this.#slots.every((s) => s.gaveUp !== undefined)) {
      const all = new TaskwireError(error.code, `every process of pool ${this.name} stopped; the last: ${error.message}`, { cause: error });
      this.#state = 'closing';
      this.#stopAll('SIGTERM', all); // none should be left, but a roll may have one starting
    } else {
      this.#maybeStarted();
    }
  }

  /** start() resolves once every slot that has not given up has been ready. */
  #maybeStarted(): void {
    if (this.#settleStarted === undefined) return;
    if (!this.#slots.every((s) => s.everReady || s.gaveUp !== undefined)) return;
    const settle = this.#settleStarted;
    this.#settleStarted = undefined;
    settle();
  }

  #stopAll(signal: NodeJS.Signals, err?: TaskwireError): void {
    if (this.#state === 'closed') return;
    this.#closeError ??= err;
    const wasIdle = this.#state === 'idle';
    this.#state = 'closing';
    for (const slot of this.#slots) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    for (const [proc, p] of this.#procs) {
      p.retiring = true;
      p.onReady?.(''); // a roll waiting on it gives up at once
      this.#signal(proc, p, signal);
    }
    if (wasIdle || this.#procs.size === 0) this.#finish(this.#closeError);
  }

  #finish(err: TaskwireError | undefined): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    err ??= this.#closeError;
    const settle = this.#settleStarted;
    this.#settleStarted = undefined;
    settle?.(err);
    this.#closed ??= Promise.resolve();
    const resolve = this.#resolveClosed;
    this.#resolveClosed = undefined;
    resolve?.();
    this.emit('close', err);
  }

  /** One step of a rolling restart. */
  async #replace(slot: Slot): Promise<void> {
    const old = slot.proc;
    if (old === undefined || slot.gaveUp !== undefined) return; // waiting for a restart: it starts fresh anyway
    const fresh = this.#spawn(slot);
    const p = this.#procs.get(fresh);
    if (p === undefined) throw new TaskwireError('INTERNAL', `${slot.name}: the new process could not be started`);
    let sessionId = '';
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.#readyTimeoutMs);
      p.onReady = (id) => {
        clearTimeout(timer);
        sessionId = id;
        resolve(this.#procs.has(fresh) && this.#state === 'running');
      };
      void p.exited.then(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!ready) {
      p.retiring = true;
      this.#signal(fresh, p, 'SIGKILL');
      await p.exited;
      if (this.#state !== 'running') return;
      const err = new TaskwireError('TIMEOUT', `rolling restart stopped: the new ${slot.name} was not ready within ${this.#readyTimeoutMs} ms; the old one keeps running`);
      this.#logLine(err.message);
      throw err;
    }
    const before = this.#procs.get(old);
    if (before === undefined) {
      // The old one died meanwhile (and may be waiting for a restart): the new one takes its place.
      clearTimeout(slot.timer);
      slot.timer = undefined;
    } else {
      before.retiring = true;
    }
    slot.proc = fresh;
    slot.ready = true;
    slot.inARow = 0;
    slot.everReady = true;
    this.emit('ready', { name: slot.name, pid: fresh.pid!, sessionId });
    if (before !== undefined) {
      this.#signal(old, before, 'SIGTERM');
      await before.exited;
    }
  }

  /** Sends `signal` to a live process; a SIGTERM only once (it is draining already). */
  #signal(proc: ChildProcess, p: Proc, signal: NodeJS.Signals): void {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    if (signal === 'SIGTERM') {
      if (p.termSent) return;
      p.termSent = true;
    }
    proc.kill(signal);
  }

  #logLine(line: string): void {
    this.#log?.(`${new Date().toISOString()} info  pool ${this.name}: ${line}`);
  }
}

/** This process's Node options, plus the tsx loader when the entry is TypeScript and none is there. */
function defaultExecArgv(entry: string): string[] {
  const argv = [...process.execArgv];
  if (entry.endsWith('.ts') && !argv.some((a) => a.includes('tsx'))) argv.push('--import', 'tsx');
  return argv;
}

function toCode(code: string): ErrorCode {
  return isErrorCode(code) ? code : 'INTERNAL';
}

function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TaskwireError('INVALID_ARGUMENT', `${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
}
