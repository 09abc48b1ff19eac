/**
 * Settings of every taskwire program from four sources, with one precedence
 * (highest first): the command line, the environment (`TASKWIRE_*`), a JSON
 * config file (`--config FILE`), the defaults. A program describes its
 * options once, as a {@link ConfigSchema}; {@link loadConfig} returns the
 * effective values, and which source each came from. Anything wrong (an
 * unknown key, a wrong type, a value out of range) is a {@link ConfigError}
 * naming where it came from, the key, and what is allowed: a setting is
 * never silently ignored or coerced.
 *
 * Naming: an option `--log-level` is the file key `logLevel`, the
 * environment variable `TASKWIRE_LOG_LEVEL`, and `values.logLevel`.
 *
 * @example
 * const SCHEMA = defineSchema({
 *   server: { type: 'string', default: '127.0.0.1:9001', help: 'scheduler address' },
 *   token: { type: 'string', secret: true, help: 'shared secret' },
 *   concurrency: { type: 'number', integer: true, min: 1, max: 1024, default: 4, help: 'jobs at once' },
 *   'log-level': { type: 'string', choices: ['error', 'info', 'debug'], default: 'info', help: 'log detail' },
 *   capabilities: { type: 'list', default: ['sha256'], help: 'kinds to run' },
 * });
 * // cli: the options as the command line gave them (strings, booleans, string lists), by long name.
 * const config = loadConfig(SCHEMA, { cli: { concurrency: '8' }, env: process.env, file: '/etc/taskwire/worker.json' });
 * config.values.concurrency;   // 8 (number), from the command line
 * config.values.logLevel;      // 'error' | 'info' | 'debug'
 * config.values.token;         // string | undefined: no default
 * process.stdout.write(printConfig(SCHEMA, config)); // token shown as ********
 */
import { readFileSync } from 'node:fs';
import { UsageError } from './cli.js';
import { errnoCode } from './errors.js';

/** Value types an option can have. `list` is a list of strings (comma-separated on the command line and in the environment). */
export type OptionType = 'string' | 'number' | 'boolean' | 'list';

/** One option of a program, keyed by its long name in kebab-case. */
export interface OptionDef {
  type: OptionType;
  /** One line for help and `printConfig`. */
  help?: string;
  /** Used when no source sets the option; without it the value is `undefined`. */
  default?: string | number | boolean | readonly string[];
  /** `number`: whole numbers only. */
  integer?: boolean;
  /** `number`: inclusive bounds. */
  min?: number;
  max?: number;
  /** `string` (and each item of a `list`): the allowed values. */
  choices?: readonly string[];
  /** Never printed in clear (tokens, passwords): {@link printConfig} shows `********`. */
  secret?: boolean;
  /**
   * False: the option exists on the command line only, neither in the file
   * nor the environment (`--config` itself, one-shot flags like `--file`).
   */
  persistent?: boolean;
  /**
   * Extra check after the type and range checks: returns what is allowed
   * (e.g. `"HOST:PORT"`) when `value` is wrong, else undefined.
   */
  validate?: (value: string | number | boolean | readonly string[]) => string | undefined;
}

/** A program's options by long name (kebab-case). Declare it with {@link defineSchema} to keep the literal types. */
export type ConfigSchema = Readonly<Record<string, OptionDef>>;

/** `log-level` → `logLevel`. */
export type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

type BaseValue<D extends OptionDef> = D['type'] extends 'number'
  ? number
  : D['type'] extends 'boolean'
    ? boolean
    : D['type'] extends 'list'
      ? string[]
      : D extends { choices: readonly (infer C)[] }
        ? C
        : string;

/** The effective settings of a schema: camelCase keys; `undefined` where an option has no default and was not set. */
export type Settings<S extends ConfigSchema> = {
  -readonly [K in keyof S & string as CamelCase<K>]: S[K] extends { default: unknown } ? BaseValue<S[K]> : BaseValue<S[K]> | undefined;
};

/** Where an effective value came from. */
export type Source = 'command line' | 'environment' | 'file' | 'default' | 'unset';

/** The result of {@link loadConfig}. */
export interface LoadedConfig<S extends ConfigSchema> {
  values: Settings<S>;
  /** Source of every option, by long (kebab-case) name. */
  sources: Record<keyof S & string, Source>;
  /** The config file read, if any. */
  file: string | undefined;
}

/** Input of {@link loadConfig}. */
export interface LoadOptions {
  /**
   * The command line's options by long name, as the parser returned them:
   * strings (parsed here by the option's type), booleans for flags, and
   * string arrays for repeated list options. `undefined` = not given.
   */
  cli?: Readonly<Record<string, string | boolean | readonly string[] | undefined>>;
  /** The environment (default: none). Empty variables count as unset. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Path of the JSON config file (`--config FILE`); none when undefined. */
  file?: string | undefined;
  /** Prefix of environment variables. Default `TASKWIRE_`. */
  envPrefix?: string;
}

/**
 * A setting that is wrong: `where` is `config file PATH`, `environment
 * TASKWIRE_X` or `--x`; `key` the file key or option name. A
 * {@link UsageError}, so every CLI reports it on one line and exits 2.
 */
export class ConfigError extends UsageError {
  override name = 'ConfigError';
  constructor(
    readonly where: string,
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

/** Largest config file read (a config file is a few hundred bytes; a bigger one is a mistake). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Identity, typed so that `choices` and `default` keep their literal types (`as const` without writing it). */
export function defineSchema<const S extends ConfigSchema>(schema: S): S {
  return schema;
}

/** `log-level` → `logLevel`. */
export function camelCase<K extends string>(name: K): CamelCase<K> {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase()) as CamelCase<K>;
}

/** `log-level` → `TASKWIRE_LOG_LEVEL` (with the default prefix). */
export function envName(name: string, prefix = 'TASKWIRE_'): string {
  return prefix + name.replace(/-/g, '_').toUpperCase();
}

/**
 * Effective settings of `schema`: each option from the command line, else
 * the environment, else the file, else its default. Throws
 * {@link ConfigError} for an unreadable or invalid file, an unknown file
 * key (with the closest known one), a value of the wrong type, out of range
 * or not among the choices — naming the source, the key and what is allowed.
 */
export function loadConfig<S extends ConfigSchema>(schema: S, opts: LoadOptions = {}): LoadedConfig<S> {
  const prefix = opts.envPrefix ?? 'TASKWIRE_';
  const fileValues = opts.file === undefined ? undefined : readConfigFile(schema, opts.file);
  const values: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  for (const [name, def] of Object.entries(schema)) {
    const key = camelCase(name);
    const persistent = def.persistent !== false;
    const cliValue = opts.cli?.[name];
    const envVar = envName(name, prefix);
    const envValue = persistent ? opts.env?.[envVar] : undefined;
    let value: unknown;
    let source: Source;
    if (cliValue !== undefined) {
      value = fromText(def, `--${name}`, name, cliValue);
      source = 'command line';
    } else if (envValue !== undefined && envValue !== '') {
      value = fromText(def, `environment ${envVar}`, envVar, envValue);
      source = 'environment';
    } else if (fileValues !== undefined && Object.hasOwn(fileValues, key)) {
      value = fromJson(def, `config file ${opts.file}`, key, fileValues[key]);
      source = 'file';
    } else if (def.default !== undefined) {
      value = Array.isArray(def.default) ? [...(def.default as readonly string[])] : def.default;
      source = 'default';
    } else {
      value = undefined;
      source = 'unset';
    }
    values[key] = value;
    sources[name] = source;
  }
  // The shape is built key by key from the schema above; TypeScript cannot follow that mapping.
  return { values: values as Settings<S>, sources: sources as Record<keyof S & string, Source>, file: opts.file };
}

/**
 * The effective settings for people, one per line with its source, secrets
 * masked: `server         127.0.0.1:9001   (default)`. With `json`, a JSON
 * object in the config file's own format (camelCase keys, secrets as
 * `"********"`, unset options left out), so it can be saved and edited.
 */
export function printConfig<S extends ConfigSchema>(schema: S, config: LoadedConfig<S>, opts: { json?: boolean } = {}): string {
  const values = config.values as Record<string, unknown>;
  const sources = config.sources as Record<string, Source>;
  const shown: Array<[string, string, string]> = [];
  const json: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(schema)) {
    if (def.persistent === false) continue;
    const key = camelCase(name);
    const value = values[key];
    const source = sources[name] ?? 'unset';
    if (value === undefined) {
      shown.push([name, '(not set)', '']);
      continue;
    }
    const masked = def.secret === true ? '********' : value;
    json[key] = masked;
    const text = Array.isArray(masked) ? masked.join(',') : typeof masked === 'string' && def.secret !== true ? JSON.stringify(masked) : String(masked);
    shown.push([name, text, `(${source === 'file' ? `file ${config.file}` : source})`]);
  }
  if (opts.json === true) return JSON.stringify(json, null, 2) + '\n';
  const width = Math.max(...shown.map(([n]) => n.length)) + 2;
  const valueWidth = Math.min(40, Math.max(...shown.map(([, v]) => v.length)) + 2);
  return shown.map(([n, v, s]) => `${n.padEnd(width)}${v.padEnd(valueWidth)}${s}`.trimEnd() + '\n').join('');
}

/** The keys of `schema` allowed in a file, in camelCase. */
function fileKeys(schema: ConfigSchema): string[] {
  return Object.entries(schema)
    .filter(([, def]) => def.persistent !== false)
    .map(([name]) => camelCase(name));
}

/** Reads and checks the shape of a config file: a JSON object whose keys are all known. */
function readConfigFile(schema: ConfigSchema, path: string): Record<string, unknown> {
  const where = `config file ${path}`;
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_CONFIG_BYTES) throw new ConfigError(where, '', `${where}: larger than ${MAX_CONFIG_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = err instanceof Error ? (errnoCode(err) ?? err.message) : String(err);
    throw new ConfigError(where, '', `cannot read ${where} (${code})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(where, '', `${where} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(where, '', `${where} must hold a JSON object of settings, like {"server": "127.0.0.1:9001"}`);
  }
  const allowed = fileKeys(schema);
  for (const key of Object.keys(parsed)) {
    if (allowed.includes(key)) continue;
    const camel = camelCase(key);
    const hint = key !== camel && allowed.includes(camel) ? ` (keys are camelCase: "${camel}")` : '';
    throw new ConfigError(where, key, `${where}: unknown key "${key}"${hint}; allowed: ${allowed.join(', ')}`);
  }
  return parsed as Record<string, unknown>;
}

/** What `def` allows, for messages: `an integer from 1 to 1024`, `one of error, info, debug`. */
export function describeAllowed(def: OptionDef): string {
  switch (def.type) {
    case 'boolean':
      return 'true or false';
    case 'list':
      return def.choices === undefined ? 'a list of strings' : `a list of ${def.choices.join(', ')}`;
    case 'string':
      return def.choices === undefined ? 'a string' : `one of ${def.choices.join(', ')}`;
    case 'number': {
      const what = def.integer === true ? 'an integer' : 'a number';
      if (def.min !== undefined && def.max !== undefined) return `${what} from ${def.min} to ${def.max}`;
      if (def.min !== undefined) return `${what} of at least ${def.min}`;
      if (def.max !== undefined) return `${what} of at most ${def.max}`;
      return what;
    }
  }
}

function fail(where: string, key: string, def: OptionDef, shown: string, allowed = describeAllowed(def)): never {
  const label = where.startsWith('--') ? where : `${where}${where.startsWith('config file') ? `: key "${key}"` : ''}`;
  throw new ConfigError(where, key, `${label}: expected ${allowed}, got ${shown}`);
}

/** Parses a command-line or environment value (text) by the option's type. */
function fromText(def: OptionDef, where: string, key: string, raw: string | boolean | readonly string[]): string | number | boolean | string[] {
  let value: string | number | boolean | string[];
  if (def.type === 'boolean') {
    if (typeof raw === 'boolean') value = raw;
    else if (typeof raw === 'string' && /^(1|true|yes|on)$/i.test(raw)) value = true;
    else if (typeof raw === 'string' && /^(0|false|no|off)$/i.test(raw)) value = false;
    else fail(where, key, def, JSON.stringify(raw), 'true or false (1/0, yes/no, on/off)');
  } else if (typeof raw === 'boolean') {
    fail(where, key, def, 'no value');
  } else if (def.type === 'list') {
    const parts = typeof raw === 'string' ? [raw] : raw;
    value = parts.flatMap((p) => p.split(/[\s,]+/)).filter((p) => p !== '');
  } else if (typeof raw !== 'string') {
    fail(where, key, def, JSON.stringify(raw));
  } else if (def.type === 'number') {
    const ok = def.integer === true ? /^[+-]?\d{1,16}$/.test(raw) : /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(raw);
    if (!ok) fail(where, key, def, JSON.stringify(raw));
    value = Number(raw);
  } else {
    value = raw;
  }
  return check(def, where, key, value);
}

/** Checks a config-file value: JSON types must match (no "8" for 8). */
function fromJson(def: OptionDef, where: string, key: string, raw: unknown): string | number | boolean | string[] {
  const shown = JSON.stringify(raw) ?? String(raw);
  switch (def.type) {
    case 'boolean':
      if (typeof raw !== 'boolean') fail(where, key, def, shown);
      return check(def, where, key, raw);
    case 'number':
      if (typeof raw !== 'number') fail(where, key, def, shown);
      return check(def, where, key, raw);
    case 'string':
      if (typeof raw !== 'string') fail(where, key, def, shown);
      return check(def, where, key, raw);
    case 'list':
      if (!Array.isArray(raw) || !raw.every((x): x is string => typeof x === 'string')) fail(where, key, def, shown, `${describeAllowed(def)} (a JSON array of strings)`);
      return check(def, where, key, [...raw]);
  }
}

/** Range, integer, choices and custom checks, for every source alike. */
function check(def: OptionDef, where: string, key: string, value: string | number | boolean | string[]): string | number | boolean | string[] {
  const shown = JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || (def.integer === true && !Number.isSafeInteger(value))) fail(where, key, def, shown);
    if ((def.min !== undefined && value < def.min) || (def.max !== undefined && value > def.max)) fail(where, key, def, shown);
  }
  if (def.choices !== undefined) {
    const items = Array.isArray(value) ? value : [value];
    const bad = items.find((x) => typeof x !== 'string' || !def.choices!.includes(x));
    if (bad !== undefined) fail(where, key, def, JSON.stringify(bad));
  }
  const problem = def.validate?.(value);
  if (problem !== undefined) fail(where, key, def, def.secret === true ? 'a bad value' : shown, problem);
  return value;
}
