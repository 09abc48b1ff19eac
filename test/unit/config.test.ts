import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { UsageError } from '../../src/lib/cli.js';
import { camelCase, ConfigError, defineSchema, describeAllowed, envName, loadConfig, MAX_CONFIG_BYTES, printConfig } from '../../src/lib/config.js';

const SCHEMA = defineSchema({
  server: { type: 'string', default: '127.0.0.1:9001', help: 'scheduler address', validate: (v) => (/^[^:]*:\d+$/.test(String(v)) ? undefined : 'HOST:PORT') },
  token: { type: 'string', secret: true },
  concurrency: { type: 'number', integer: true, min: 1, max: 1024, default: 4 },
  'fail-rate': { type: 'number', min: 0, max: 1, default: 0 },
  'log-level': { type: 'string', choices: ['error', 'info', 'debug'], default: 'info' },
  capabilities: { type: 'list', default: ['sha256'] },
  verbose: { type: 'boolean', default: false },
  'data-dir': { type: 'string' },
  config: { type: 'string', persistent: false },
});

const dir = mkdtempSync(join(tmpdir(), 'taskwire-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(content: unknown): string {
  const path = join(dir, `c${n++}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** The ConfigError `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toBeInstanceOf(UsageError); // every CLI exits 2 for it
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('uses the defaults when nothing is set, and leaves options without one undefined', () => {
    const c = loadConfig(SCHEMA);
    expect(c.values).toEqual({
      server: '127.0.0.1:9001',
      token: undefined,
      concurrency: 4,
      failRate: 0,
      logLevel: 'info',
      capabilities: ['sha256'],
      verbose: false,
      dataDir: undefined,
      config: undefined,
    });
    expect(c.sources.server).toBe('default');
    expect(c.sources.token).toBe('unset');
  });

  it('types the values from the schema', () => {
    const c = loadConfig(SCHEMA);
    expectTypeOf(c.values.concurrency).toEqualTypeOf<number>();
    expectTypeOf(c.values.logLevel).toEqualTypeOf<'error' | 'info' | 'debug'>();
    expectTypeOf(c.values.token).toEqualTypeOf<string | undefined>();
    expectTypeOf(c.values.capabilities).toEqualTypeOf<string[]>();
    expectTypeOf(c.values.verbose).toEqualTypeOf<boolean>();
  });

  it('precedence: command line > environment > file > default, per option', () => {
    const path = file({ server: 'file:1', concurrency: 2, logLevel: 'debug', token: 'from-file', verbose: true });
    const c = loadConfig(SCHEMA, {
      cli: { server: 'cli:1' },
      env: { TASKWIRE_SERVER: 'env:1', TASKWIRE_CONCURRENCY: '3' },
      file: path,
    });
    expect(c.values.server).toBe('cli:1');
    expect(c.values.concurrency).toBe(3);
    expect(c.values.logLevel).toBe('debug');
    expect(c.values.token).toBe('from-file');
    expect(c.values.verbose).toBe(true);
    expect(c.values.failRate).toBe(0);
    expect(c.sources).toMatchObject({ server: 'command line', concurrency: 'environment', 'log-level': 'file', 'fail-rate': 'default' });
    expect(c.file).toBe(path);
  });

  it('maps kebab-case names to camelCase keys and TASKWIRE_SCREAMING_SNAKE variables', () => {
    expect(camelCase('log-level')).toBe('logLevel');
    expect(camelCase('retry-base-ms')).toBe('retryBaseMs');
    expect(envName('log-level')).toBe('TASKWIRE_LOG_LEVEL');
    expect(envName('data-dir', 'X_')).toBe('X_DATA_DIR');
    const c = loadConfig(SCHEMA, { env: { TASKWIRE_LOG_LEVEL: 'error', TASKWIRE_DATA_DIR: '/d' }, file: file({ failRate: 0.5 }) });
    expect(c.values).toMatchObject({ logLevel: 'error', dataDir: '/d', failRate: 0.5 });
  });

  it('treats empty environment variables as unset', () => {
    expect(loadConfig(SCHEMA, { env: { TASKWIRE_SERVER: '' } }).values.server).toBe('127.0.0.1:9001');
  });

  it('parses command-line and environment text by type', () => {
    const c = loadConfig(SCHEMA, {
      cli: { concurrency: '16', 'fail-rate': '.25', capabilities: ['add,divide', 'multiply'], verbose: true },
      env: { TASKWIRE_LOG_LEVEL: 'debug' },
    });
    expect(c.values).toMatchObject({ concurrency: 16, failRate: 0.25, capabilities: ['add', 'divide', 'multiply'], verbose: true });
    for (const [text, value] of [['1', true], ['yes', true], ['ON', true], ['0', false], ['false', false], ['no', false]] as const) {
      expect(loadConfig(SCHEMA, { env: { TASKWIRE_VERBOSE: text } }).values.verbose).toBe(value);
    }
    expect(loadConfig(SCHEMA, { env: { TASKWIRE_CAPABILITIES: 'add, divide' } }).values.capabilities).toEqual(['add', 'divide']);
  });

  it('a command-line false wins over the environment', () => {
    expect(loadConfig(SCHEMA, { cli: { verbose: false }, env: { TASKWIRE_VERBOSE: '1' } }).values.verbose).toBe(false);
  });

  it('keeps command-line-only options out of the file and the environment', () => {
    expect(loadConfig(SCHEMA, { env: { TASKWIRE_CONFIG: 'x.json' } }).values.config).toBeUndefined();
    const e = configError(() => loadConfig(SCHEMA, { file: file({ config: 'other.json' }) }));
    expect(e.key).toBe('config');
    expect(loadConfig(SCHEMA, { cli: { config: 'a.json' } }).values.config).toBe('a.json');
  });

  it('does not share the default list between loads', () => {
    const a = loadConfig(SCHEMA).values.capabilities;
    a.push('x');
    expect(loadConfig(SCHEMA).values.capabilities).toEqual(['sha256']);
  });
});

describe('loadConfig errors name the source, the key and what is allowed', () => {
  it('an unknown file key, suggesting the camelCase form of a kebab key', () => {
    const path = file({ server: 'h:1', concurency: 3 });
    const e = configError(() => loadConfig(SCHEMA, { file: path }));
    expect(e.where).toBe(`config file ${path}`);
    expect(e.key).toBe('concurency');
    expect(e.message).toContain(path);
    expect(e.message).toContain('"concurency"');
    expect(e.message).toContain('concurrency'); // the allowed keys are listed
    const kebab = configError(() => loadConfig(SCHEMA, { file: file({ 'log-level': 'info' }) }));
    expect(kebab.message).toContain('"logLevel"');
  });

  it.each([
    ['a number given as a string', { concurrency: '8' }, 'concurrency', 'an integer from 1 to 1024'],
    ['out of range', { concurrency: 0 }, 'concurrency', 'an integer from 1 to 1024'],
    ['not an integer', { concurrency: 1.5 }, 'concurrency', 'an integer'],
    ['a fraction out of range', { failRate: 2 }, 'failRate', 'a number from 0 to 1'],
    ['not one of the choices', { logLevel: 'loud' }, 'logLevel', 'one of error, info, debug'],
    ['a boolean given as a string', { verbose: 'true' }, 'verbose', 'true or false'],
    ['a list given as a string', { capabilities: 'add' }, 'capabilities', 'a JSON array of strings'],
    ['a list of non-strings', { capabilities: [1] }, 'capabilities', 'a list of strings'],
    ['a string given as a number', { server: 9001 }, 'server', 'a string'],
    ['a custom check', { server: 'nowhere' }, 'server', 'HOST:PORT'],
    ['null', { dataDir: null }, 'dataDir', 'a string'],
  ])('file: %s', (_name, content, key, allowed) => {
    const path = file(content);
    const e = configError(() => loadConfig(SCHEMA, { file: path }));
    expect(e.where).toBe(`config file ${path}`);
    expect(e.key).toBe(key);
    expect(e.message).toContain(path);
    expect(e.message).toContain(`"${key}"`);
    expect(e.message).toContain(allowed);
  });

  it.each([
    ['TASKWIRE_CONCURRENCY', '0x10', 'an integer from 1 to 1024'],
    ['TASKWIRE_CONCURRENCY', '1e3', 'an integer'],
    ['TASKWIRE_CONCURRENCY', '99999', 'an integer from 1 to 1024'],
    ['TASKWIRE_FAIL_RATE', 'half', 'a number from 0 to 1'],
    ['TASKWIRE_LOG_LEVEL', 'INFO', 'one of error, info, debug'],
    ['TASKWIRE_VERBOSE', 'maybe', 'true or false'],
  ])('environment %s=%s', (name, value, allowed) => {
    const e = configError(() => loadConfig(SCHEMA, { env: { [name]: value } }));
    expect(e.where).toBe(`environment ${name}`);
    expect(e.message).toContain(name);
    expect(e.message).toContain(allowed);
  });

  it('command line', () => {
    const e = configError(() => loadConfig(SCHEMA, { cli: { concurrency: '-1' } }));
    expect(e.where).toBe('--concurrency');
    expect(e.message).toMatch(/^--concurrency: /);
    expect(e.message).toContain('an integer from 1 to 1024');
  });

  it('never shows a secret in an error', () => {
    const strict = defineSchema({ token: { type: 'string', secret: true, validate: (v) => (String(v).length >= 8 ? undefined : 'at least 8 characters') } });
    const e = configError(() => loadConfig(strict, { env: { TASKWIRE_TOKEN: 'hunter2' } }));
    expect(e.message).not.toContain('hunter2');
    expect(e.message).toContain('at least 8 characters');
  });

  it('a missing, unreadable, non-JSON, non-object or oversized file', () => {
    const missing = join(dir, 'missing.json');
    expect(configError(() => loadConfig(SCHEMA, { file: missing })).message).toContain('ENOENT');
    expect(configError(() => loadConfig(SCHEMA, { file: dir })).message).toContain(dir);
    expect(configError(() => loadConfig(SCHEMA, { file: file('{"server": ') })).message).toMatch(/not valid JSON/);
    expect(configError(() => loadConfig(SCHEMA, { file: file('["server"]') })).message).toMatch(/JSON object/);
    expect(configError(() => loadConfig(SCHEMA, { file: file(' '.repeat(MAX_CONFIG_BYTES + 1)) })).message).toMatch(/larger than/);
  });
});

describe('printConfig', () => {
  it('shows every setting with its source, secrets masked', () => {
    const path = file({ token: 's3cret-token', concurrency: 8 });
    const c = loadConfig(SCHEMA, { file: path, env: { TASKWIRE_LOG_LEVEL: 'debug' }, cli: { server: 'h:1' } });
    const text = printConfig(SCHEMA, c);
    expect(text).not.toContain('s3cret');
    expect(text).toMatch(/^token +\*{8} +\(file .*c\d+\.json\)$/m);
    expect(text).toMatch(/^server +"h:1" +\(command line\)$/m);
    expect(text).toMatch(/^concurrency +8 +\(file /m);
    expect(text).toMatch(/^log-level +"debug" +\(environment\)$/m);
    expect(text).toMatch(/^capabilities +sha256 +\(default\)$/m);
    expect(text).toMatch(/^data-dir +\(not set\)$/m);
    expect(text).not.toMatch(/^config/m); // command-line only
  });

  it('as JSON: a config file with secrets masked, loadable again', () => {
    const c = loadConfig(SCHEMA, { env: { TASKWIRE_TOKEN: 'tok', TASKWIRE_CONCURRENCY: '9' } });
    const json = JSON.parse(printConfig(SCHEMA, c, { json: true })) as Record<string, unknown>;
    expect(json).toMatchObject({ token: '********', concurrency: 9, logLevel: 'info', capabilities: ['sha256'] });
    expect(json).not.toHaveProperty('dataDir');
    const again = loadConfig(SCHEMA, { file: file(json) });
    expect(again.values.concurrency).toBe(9);
  });
});

describe('describeAllowed', () => {
  it('says what a definition allows', () => {
    expect(describeAllowed({ type: 'number', integer: true, min: 1 })).toBe('an integer of at least 1');
    expect(describeAllowed({ type: 'number', max: 5 })).toBe('a number of at most 5');
    expect(describeAllowed({ type: 'number' })).toBe('a number');
    expect(describeAllowed({ type: 'list', choices: ['a', 'b'] })).toBe('a list of a, b');
  });
});
