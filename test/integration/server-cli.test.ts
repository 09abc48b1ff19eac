/**
 * `taskwire-server`'s command line: help on stdout, one-line usage errors
 * (exit 2), a config file whose mistakes name the key, TASKWIRE_* variables,
 * --print-config with secrets masked, and a token from a file (never argv).
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client } from '../../src/client.js';
import { tempDir } from '../helpers/journal.js';
import { spawnTs } from '../helpers/process.js';

async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawnTs('src/server.ts', args, env);
  const code = await child.exited;
  return { code, stdout: child.stdout, stderr: child.stderr };
}

describe('taskwire-server command line', () => {
  it('prints help on stdout; usage errors are one line and exit 2', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: taskwire-server');
    expect(help.stderr).toBe('');
    for (const args of [['--bogus'], ['help'], ['--port', 'x'], ['--fsync', 'always'], ['--retries', '-1']]) {
      const r = await run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stdout).toBe('');
    }
  });

  it('reads a config file (camelCase keys), lets TASKWIRE_* and the command line override it, masks secrets', async () => {
    const dir = await tempDir('taskwire-config-');
    const file = join(dir, 'server.json');
    await writeFile(file, JSON.stringify({ retries: 7, heartbeatMs: 250, token: 'from-file', logLevel: 'error' }));
    const r = await run(['--config', file, '--print-config', '--log-level', 'debug'], { TASKWIRE_RETRIES: '9' });
    expect(r.code).toBe(0);
    const line = (key: string) => r.stdout.split('\n').find((l) => l.startsWith(`${key} `)) ?? '';
    expect(line('retries')).toMatch(/9\s+\(environment\)/);
    expect(line('heartbeat-ms')).toMatch(/250\s+\(file /);
    expect(line('log-level')).toMatch(/debug.*\(command line\)/);
    expect(line('token')).toContain('********');
    expect(r.stdout).not.toContain('from-file');
    await writeFile(file, JSON.stringify({ retries: 'seven' }));
    const bad = await run(['--config', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('retries');
    expect(bad.stderr).toContain(file);
    await writeFile(file, JSON.stringify({ tokn: 'x' }));
    const unknown = await run(['--config', file]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('"tokn"');
  });

  it('takes the token from --token-file, so it is not in argv', async () => {
    const dir = await tempDir('taskwire-token-');
    const file = join(dir, 'token');
    await writeFile(file, 's3cret-from-file\n');
    const child = spawnTs('src/server.ts', ['--port', '0', '--token-file', file, '--log-level', 'error']);
    const m = await child.waitForLine(/listening on ([\d.]+):(\d+)/);
    expect(readFileSync(`/proc/${child.proc.pid}/cmdline`, 'utf8')).not.toContain('s3cret');
    await expect(Client.connect(`${m[1]}:${m[2]}`, { token: 'wrong' })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    const client = await Client.connect(`${m[1]}:${m[2]}`, { token: 's3cret-from-file' });
    expect((await client.stats()).connections.clients).toBe(1);
    client.destroy();
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);
  });
});
