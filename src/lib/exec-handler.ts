/**
 * Workers in any language: a {@link Handler} that runs a command per job
 * (`taskwire-worker -c resize -- convert - -resize 50% -`). The job's
 * arguments go to the command's stdin, its stdout is the result, the tail of
 * its stderr is the error text, and its exit status decides the outcome.
 * Each job runs in its own process group, so a timeout or cancel stops the
 * command and everything it started.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { PermanentError, TaskwireError } from './errors.js';
import type { Handler, JobContext } from './jobs.js';
import { DEFAULT_MAX_PAYLOAD } from './protocol.js';

/** Exit status that means "try again later" (sysexits.h `EX_TEMPFAIL`): a retryable failure. */
export const EX_TEMPFAIL = 75;

/** What a job runs: an argument vector (no shell, nothing re-parsed), or one line for `/bin/sh -c`. */
export type ExecCommand = { argv: readonly string[] } | { shell: string };

/** Options of {@link execHandler}. */
export interface ExecHandlerOptions {
  /** After SIGTERM (timeout, cancel, output too large), SIGKILL the process group this much later. Default 5000 ms. */
  killGraceMs?: number;
  /**
   * Largest stdout accepted, in bytes. Default: the scheduler's limit for a
   * result (`ctx.maxResultBytes`, from WELCOME); more stops the command and
   * fails the attempt permanently.
   */
  maxOutputBytes?: number;
  /** Bytes at the end of stderr kept for the error text. Default 4096. */
  stderrTailBytes?: number;
  /** Lines of that tail in the error text. Default 20. */
  stderrTailLines?: number;
  /**
   * Environment of the command, to which `TASKWIRE_JOB_ID`, `TASKWIRE_ATTEMPT`
   * and `TASKWIRE_KIND` are added. Default: this process's environment
   * without `TASKWIRE_TOKEN` (a job has no business with the worker's secret).
   */
  env?: NodeJS.ProcessEnv;
  /** Working directory of the command. Default: this process's. */
  cwd?: string;
  /** The shell of `{ shell }` commands. Default `/bin/sh`. */
  shellPath?: string;
}

/** Longest error text, in characters (the worker's FAIL message bound). */
const MAX_ERROR_CHARS = 4096;
/** A RESULT frame's payload is the result plus a u64 job id and a u32 attempt. */
const RESULT_OVERHEAD = 12;

/**
 * A handler that runs `command` once per job, in its own process group:
 * - the job's argument bytes are written to its stdin (then closed);
 * - exit 0: its stdout is the result (at most `maxOutputBytes`; more stops
 *   the command and fails the attempt permanently);
 * - exit 75 ({@link EX_TEMPFAIL}): a retryable failure; any other exit code,
 *   or death by a signal: a permanent failure. The error text is the last
 *   lines of its stderr (bounded) after `exit code N`;
 * - when the job's signal aborts (timeout, cancel, link lost, shutdown),
 *   the whole group gets SIGTERM, then SIGKILL after `killGraceMs`; the
 *   handler settles once the command has exited;
 * - processes it leaves behind in its group when it exits get the same.
 * The environment adds `TASKWIRE_JOB_ID`, `TASKWIRE_ATTEMPT` and `TASKWIRE_KIND`.
 * A command that cannot be started (not found, not executable) fails permanently.
 *
 * Throws `INVALID_ARGUMENT` for an empty command or a bad option.
 * @example
 * worker.handle('resize', execHandler({ argv: ['convert', '-', '-resize', '50%', '-'] }));
 * worker.handle('count', execHandler({ shell: 'tr -s " " "\\n" | wc -l' }));
 */
export function execHandler(command: ExecCommand, opts: ExecHandlerOptions = {}): Handler {
  const [file, args] = commandLine(command, opts.shellPath ?? '/bin/sh');
  const killGraceMs = opts.killGraceMs ?? 5_000;
  const tailBytes = opts.stderrTailBytes ?? 4096;
  const tailLines = opts.stderrTailLines ?? 20;
  checkInt('killGraceMs', killGraceMs, 0);
  checkInt('stderrTailBytes', tailBytes, 0);
  checkInt('stderrTailLines', tailLines, 0);
  if (opts.maxOutputBytes !== undefined) checkInt('maxOutputBytes', opts.maxOutputBytes, 0);
  const baseEnv = opts.env ?? withoutToken(process.env);
  const settings: RunSettings = { file, args, killGraceMs, tailBytes, tailLines, baseEnv, cwd: opts.cwd, maxOutputBytes: opts.maxOutputBytes };
  return (input, ctx) => run(settings, input, ctx);
}

/** The executable and its arguments for `command`. Throws INVALID_ARGUMENT when empty. */
function commandLine(command: ExecCommand, shellPath: string): [string, string[]] {
  if ('shell' in command) {
    if (command.shell.trim() === '') throw new TaskwireError('INVALID_ARGUMENT', 'the shell command line is empty');
    return [shellPath, ['-c', command.shell]];
  }
  const [file, ...args] = command.argv;
  if (file === undefined || file === '') throw new TaskwireError('INVALID_ARGUMENT', 'the command is empty');
  return [file, args];
}

/**
 * Checks that the program of `command` can be run from here: an executable
 * file at its path, or one found on `PATH`. Throws `INVALID_ARGUMENT` naming
 * it, so a worker fails at start-up instead of failing every job.
 */
export function checkCommand(command: ExecCommand, { env = process.env, cwd = process.cwd(), shellPath = '/bin/sh' }: { env?: NodeJS.ProcessEnv; cwd?: string; shellPath?: string } = {}): void {
  const [file] = commandLine(command, shellPath);
  const candidates = file.includes('/')
    ? [isAbsolute(file) ? file : resolvePath(cwd, file)]
    : (env['PATH'] ?? '').split(delimiter).filter((dir) => dir !== '').map((dir) => join(resolvePath(cwd, dir), file));
  for (const path of candidates) {
    try {
      accessSync(path, fsConstants.X_OK);
      return;
    } catch {
      // not here
    }
  }
  throw new TaskwireError('INVALID_ARGUMENT', file.includes('/') ? `${file} is not an executable file` : `command not found on PATH: ${file}`);
}

function withoutToken(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy['TASKWIRE_TOKEN'];
  return copy;
}

interface RunSettings {
  file: string;
  args: string[];
  killGraceMs: number;
  tailBytes: number;
  tailLines: number;
  baseEnv: NodeJS.ProcessEnv;
  cwd: string | undefined;
  maxOutputBytes: number | undefined;
}

/** One job: spawn, feed stdin, collect stdout and the stderr tail, and settle on exit. */
function run(cfg: RunSettings, input: Buffer, ctx: JobContext): Promise<Buffer> {
  const signal = ctx.signal;
  if (signal.aborted) return Promise.reject(signal.reason);
  const maxOutput = cfg.maxOutputBytes ?? ctx.maxResultBytes ?? DEFAULT_MAX_PAYLOAD - RESULT_OVERHEAD;
  return new Promise<Buffer>((resolve, reject) => {
    const child = spawn(cfg.file, cfg.args, {
      // Its own process group (setsid): the group can be signalled as one, and a
      // Ctrl-C aimed at the worker's terminal does not hit the jobs directly.
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      cwd: cfg.cwd,
      env: { ...cfg.baseEnv, TASKWIRE_JOB_ID: String(ctx.jobId), TASKWIRE_ATTEMPT: String(ctx.attempt), TASKWIRE_KIND: ctx.kind },
    });
    const pid = child.pid;
    let out: Buffer[] = [];
    let outBytes = 0;
    let errTail: Buffer = Buffer.alloc(0);
    /** Why we stopped it, if we did: then its exit status is ours, not its verdict. */
    let stopped: 'aborted' | 'too-large' | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;

    const killGroup = (sig: NodeJS.Signals): void => {
      if (pid === undefined) return;
      try {
        process.kill(-pid, sig);
      } catch {
        // ESRCH: the group is empty already.
      }
    };
    /** SIGTERM to the group now, SIGKILL after the grace (unless it is empty by then). */
    const terminate = (): void => {
      killGroup('SIGTERM');
      if (killTimer !== undefined) return;
      killTimer = setTimeout(() => killGroup('SIGKILL'), cfg.killGraceMs);
      killTimer.unref();
    };
    const onAbort = (): void => {
      stopped ??= 'aborted';
      terminate();
    };
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      settle();
    };

    signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err: NodeJS.ErrnoException) => {
      // Spawning failed (ENOENT, EACCES): nothing ran, no 'exit' follows.
      if (pid === undefined) finish(() => reject(new PermanentError(`cannot run ${cfg.file}: ${err.code ?? err.message}`)));
    });
    child.stdin.on('error', () => undefined); // EPIPE: the command does not read its input; its exit status tells.
    child.stdin.end(input);
    child.stdout.on('data', (chunk: Buffer) => {
      if (stopped === 'too-large') return;
      if (outBytes + chunk.length > maxOutput) {
        stopped = 'too-large';
        out = [];
        child.stdout.destroy(); // it will see EPIPE/SIGPIPE if it writes on
        terminate();
        return;
      }
      out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      errTail = keepTail(errTail, chunk, cfg.tailBytes);
    });
    child.on('exit', () => {
      // Whatever it left running in its group is part of this job, which is over.
      terminate();
    });
    child.on('close', (code: number | null, sig: NodeJS.Signals | null) => {
      if (killTimer !== undefined && pid !== undefined && groupGone(pid)) {
        clearTimeout(killTimer); // nothing left to kill: never signal a recycled group id
        killTimer = undefined;
      }
      if (pid === undefined) return;
      finish(() => {
        if (stopped === 'aborted') return reject(signal.reason);
        if (stopped === 'too-large') {
          return reject(new PermanentError(`output exceeds ${maxOutput} bytes, the largest result the scheduler accepts: the command was stopped`));
        }
        if (code === 0) return resolve(outBytes === 0 ? Buffer.alloc(0) : Buffer.concat(out, outBytes));
        const what = code !== null ? `exit code ${code}${code === EX_TEMPFAIL ? ' (temporary failure)' : ''}` : `killed by ${sig ?? 'a signal'}`;
        const message = errorText(what, errTail, cfg.tailLines);
        reject(code === EX_TEMPFAIL ? new Error(message) : new PermanentError(message));
      });
    });
  });
}

/** True when no process is left in group `pgid`. */
function groupGone(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The last `max` bytes of `tail` + `chunk`, as a copy that pins no socket or pipe chunk. */
function keepTail(tail: Buffer, chunk: Buffer, max: number): Buffer {
  if (max === 0) return tail;
  if (chunk.length >= max) return Buffer.from(chunk.subarray(chunk.length - max));
  const keep = Math.min(tail.length, max - chunk.length);
  return Buffer.concat([tail.subarray(tail.length - keep), chunk]);
}

/** `exit code 1: <last lines of stderr>`, within {@link MAX_ERROR_CHARS}. */
function errorText(what: string, tail: Buffer, maxLines: number): string {
  let text = tail.toString('utf8').replace(/^\uFFFD+/, '').trimEnd();
  if (maxLines === 0) text = '';
  const lines = text.split('\n');
  if (lines.length > maxLines) text = lines.slice(-maxLines).join('\n');
  if (text === '') return what;
  const room = MAX_ERROR_CHARS - what.length - 2;
  if (text.length > room) text = text.slice(text.length - room);
  return `${what}: ${text}`;
}

function checkInt(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new TaskwireError('INVALID_ARGUMENT', `${name} must be an integer ≥ ${min}, got ${value}`);
}
