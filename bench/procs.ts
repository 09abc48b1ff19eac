/**
 * Child processes of the benchmark: spawned from the repository root, their
 * stdout watched for a "ready" line, and always killed when the benchmark
 * ends — normally, on an error, or on SIGINT/SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (bench/..). */
export const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** How entry points are run: TypeScript through tsx (default), or the compiled dist/. */
export type Runtime = 'tsx' | 'dist';

/** A running child process. */
export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything printed on stdout so far. */
  stdout: string;
  /** The last 64 KiB of stderr, for error messages. */
  stderr: string;
  /** Resolves with the first stdout match of `re` (already printed or still to come). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Writes a line to the child's stdin (only if spawned with `stdin: true`). */
  writeLine(line: string): void;
  /**
   * Stops the child and resolves when it has exited: SIGKILL by default; with
   * `graceMs`, SIGTERM first (so `--cpu-prof` can write its profile) and
   * SIGKILL only if it is still running after that long.
   */
  kill(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();

/** Kills every child still running. Synchronous, so it also works from an `exit` handler. */
export function killAll(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

let installed = false;

/** Makes sure children die with the benchmark: on exit, SIGINT, SIGTERM and uncaught errors. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killAll();
      process.stderr.write(`\nbench: ${signal}, children killed\n`);
      process.exit(130);
    });
  }
}

/** Spawns `node [nodeArgs] <entry> [args]` from the repository root. */
export function spawnNode(
  name: string,
  entry: string[],
  args: string[],
  opts: { stdin?: boolean; env?: NodeJS.ProcessEnv } = {},
): Proc {
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: [opts.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`cannot spawn ${name}`);
  live.add(child);
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  const proc: Proc = {
    name,
    child,
    pid: child.pid,
    stdout: '',
    stderr: '',
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = proc.stdout.match(re);
          if (m !== null) {
            done();
            resolve(m);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before printing ${re}; stderr:\n${proc.stderr}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no ${re} within ${timeoutMs} ms; stdout:\n${proc.stdout}\nstderr:\n${proc.stderr}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    writeLine(line) {
      child.stdin?.write(line + '\n');
    },
    kill(graceMs) {
      if (child.exitCode !== null || child.signalCode !== null) {
        live.delete(child);
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        child.once('exit', () => {
          clearTimeout(timer);
          live.delete(child);
          resolve();
        });
        if (graceMs === undefined) {
          child.kill('SIGKILL');
        } else {
          child.kill('SIGTERM');
          timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        }
      });
    },
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    proc.stdout += d;
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    proc.stderr = (proc.stderr + d).slice(-65536);
  });
  child.stdin?.on('error', () => undefined);
  child.on('exit', () => {
    live.delete(child);
    wake();
  });
  return proc;
}

/** Node arguments that run a TypeScript entry point (`src/server.ts`) under the chosen runtime. */
export function entryOf(runtime: Runtime, tsPath: string, nodeArgs: string[] = []): string[] {
  if (runtime === 'dist') return [...nodeArgs, tsPath.replace(/^src\//, 'dist/').replace(/\.ts$/, '.js')];
  return [...nodeArgs, '--import', 'tsx', tsPath];
}

/** Resident set size of a process, bytes (VmRSS in /proc/PID/status); NaN where /proc is missing. */
export function rssOf(pid: number): number {
  return procStatusKb(pid, 'VmRSS') * 1024;
}

/** Peak resident set size of a process, bytes (VmHWM). */
export function peakRssOf(pid: number): number {
  return procStatusKb(pid, 'VmHWM') * 1024;
}

function procStatusKb(pid: number, field: string): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m === null ? NaN : Number(m[1]);
  } catch {
    return NaN;
  }
}

/** CPU time a process has used so far, ms (user, system); NaN where /proc is missing. */
export function cpuOf(pid: number): { userMs: number; sysMs: number } {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // USER_HZ is 100 on Linux.
    return { userMs: Number(fields[11]) * 10, sysMs: Number(fields[12]) * 10 };
  } catch {
    return { userMs: NaN, sysMs: NaN };
  }
}
