import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';

/** The environment without TASKWIRE_* settings, so help texts show their defaults. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TASKWIRE_')) env[k] = v;
  return env;
}

describe('README agrees with --help', () => {
  /** Long options a program's help lists. */
  async function helpOptions(script: string, args: string[]): Promise<Set<string>> {
    const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
    await once(proc, 'close');
    return new Set(text.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []);
  }

  it.concurrent('every option in the --help of taskwire, taskwire-server and taskwire-worker is in README.md', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const programs: Array<[string, string, string[]]> = [
      ['taskwire', 'src/client.ts', ['--help']],
      ['taskwire-server', 'src/server.ts', ['--help']],
      ['taskwire-worker', 'src/worker.ts', ['--help']],
    ];
    const missing: string[] = [];
    for (const [name, script, args] of programs) {
      for (const option of await helpOptions(script, args)) {
        if (!new RegExp(`(?<![\\w-])${option}(?![\\w-])`).test(readme)) missing.push(`${name} ${option}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
