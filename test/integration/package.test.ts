import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';

/** Runs `node ...args` from the repo root; resolves with its exit code and output. */
function node(args: string[], timeoutMs = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`node ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// `npm install` / `npm ci` build dist/ (the prepare script); this checks what a user of the package gets.
describe.skipIf(!existsSync(`${ROOT}dist/index.js`))('the built package', () => {
  it('exports the classes from "taskwire" and the codec from "taskwire/protocol"', async () => {
    const r = await node([
      '--input-type=module',
      '-e',
      `const m = await import('taskwire'); const p = await import('taskwire/protocol');
       console.log([typeof m.Client, typeof m.Worker, typeof m.Scheduler, typeof m.PermanentError, typeof p.encode, typeof p.FrameDecoder].join(' '));`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('function function function function function function');
  });

  it('runs scheduler, worker and client from dist/ without tsx', async () => {
    const script = `
      import { spawn } from 'node:child_process';
      import { once } from 'node:events';
      const server = spawn(process.execPath, ['dist/server.js', '--port', '0', '--log-level', 'error']);
      const [line] = await once(server.stdout, 'data');
      const address = String(line).match(/listening on (\\S+)/)[1];
      const worker = spawn(process.execPath, ['dist/worker.js', '--server', address, '-c', 'sha256']);
      await once(worker.stdout, 'data');
      const client = spawn(process.execPath, ['dist/client.js', 'submit', '--server', address, 'Hello, World!']);
      let out = '';
      client.stdout.on('data', (d) => (out += d));
      const [code] = await once(client, 'exit');
      worker.kill('SIGKILL');
      server.kill('SIGKILL');
      console.log(code, out.trim());`;
    const r = await node(['--input-type=module', '-e', script]);
    expect(r.stdout.trim()).toBe(`0 ${createHash('sha256').update('Hello, World!').digest('hex')}`);
  });
});
