import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A child process running one of our entry points under tsx, with its output collected. */
export interface Child {
  proc: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the first stdout line matching `re` (already printed or still to come). */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
}

/** Spawns `node --import tsx <script> ...args` from the repo root; killed when the test ends. */
export function spawnTs(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const child: Child = {
    proc,
    stdout: '',
    stderr: '',
    exited: once(proc, 'exit').then(([code, signal]) => (code ?? signal) as number | string),
    async waitForLine(re, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = child.stdout.match(re);
        if (m !== null) return m;
        if (proc.exitCode !== null || proc.signalCode !== null) {
          throw new Error(`${script} exited (${proc.exitCode ?? proc.signalCode}) before printing ${re}; stderr:\n${child.stderr}`);
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${re} from ${script}; stdout:\n${child.stdout}\nstderr:\n${child.stderr}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, left);
          function done(): void {
            clearTimeout(t);
            proc.stdout!.off('data', done);
            proc.off('exit', done);
            resolve();
          }
          proc.stdout!.on('data', done);
          proc.on('exit', done);
        });
      }
    },
  };
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (child.stdout += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (child.stderr += d));
  onTestFinished(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return child;
}

/** Starts `taskwire-server` as a child process; resolves once it prints its port. */
export async function spawnScheduler(args: string[] = []): Promise<{ child: Child; port: number; address: string }> {
  const child = spawnTs('src/server.ts', ['--port', '0', '--log-level', 'error', ...args]);
  const m = await child.waitForLine(/taskwire scheduler listening on ([\d.]+):(\d+)/);
  const port = Number(m[2]);
  return { child, port, address: `127.0.0.1:${port}` };
}
