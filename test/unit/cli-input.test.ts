import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDecimal, parseUint, plural, UsageError } from '../../src/lib/cli.js';
import { closest, findCommand, parseArgv, type OptionTable } from '../../src/lib/cli/args.js';
import { countLines, isBlank, readLines, type InputLine } from '../../src/lib/cli/lines.js';
import { operandsFromArgv, operandsFromLine } from '../../src/lib/cli/operands.js';
import { rng as makeRng } from '../helpers/rng.js';

const OPTIONS: OptionTable = {
  server: { type: 'string', help: '' },
  kind: { type: 'string', help: '' },
  key: { type: 'string', help: '' },
  json: { type: 'boolean', help: '' },
  help: { type: 'boolean', short: 'h', help: '' },
};

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n'); // one line
    return message;
  }
  throw new Error('expected a UsageError');
}

describe('parseArgv', () => {
  it('reads --opt value, --opt=value, flags, short flags and positionals in any order', () => {
    const p = parseArgv(['x', '--kind', 'add', '--json', 'y', '--server=h:1', '-h'], OPTIONS);
    expect(p.values).toEqual({ kind: 'add', json: true, server: 'h:1', help: true });
    expect(p.positionals).toEqual(['x', 'y']);
  });

  it('takes negative numbers and "-" as operands, and everything after "--"', () => {
    const p = parseArgv(['-2', '-.5', '-1e3', '-', '--', '--json', '-x'], OPTIONS);
    expect(p.positionals).toEqual(['-2', '-.5', '-1e3', '-', '--json', '-x']);
    expect(p.values).toEqual({});
    expect(parseArgv(['--kind', '-3'], OPTIONS).values.kind).toBe('-3');
    expect(parseArgv(['--key=-abc'], OPTIONS).values.key).toBe('-abc');
  });

  it('says what is wrong in one line of its own (no Node parser prose)', () => {
    expect(usage(() => parseArgv(['--bogus'], OPTIONS))).toMatch(/^unknown option --bogus$/);
    expect(usage(() => parseArgv(['--kinf', 'x'], OPTIONS))).toContain('did you mean --kind?');
    expect(usage(() => parseArgv(['-n'], OPTIONS))).toMatch(/^unknown option -n$/);
    expect(usage(() => parseArgv(['x', '--kind'], OPTIONS))).toMatch(/^--kind needs a value/);
    const ambiguous = usage(() => parseArgv(['--key', '-n'], OPTIONS));
    expect(ambiguous).toContain('--key=-n');
    expect(ambiguous).not.toMatch(/ambiguous|Did you forget/);
    expect(usage(() => parseArgv(['--json=yes'], OPTIONS))).toMatch(/^--json takes no value$/);
  });

  it('finds the command word among global options and their values', () => {
    expect(findCommand(['--server', 'h:1', 'stats'], OPTIONS)).toBe(2);
    expect(findCommand(['--json', 'stats', '--kind', 'x'], OPTIONS)).toBe(1);
    expect(findCommand(['--server=h:1', 'stats'], OPTIONS)).toBe(1);
    expect(findCommand(['--kind', 'stats', 'submit'], OPTIONS)).toBe(2); // "stats" is --kind's value
    expect(findCommand(['--json'], OPTIONS)).toBe(-1);
    expect(findCommand(['--', 'stats'], OPTIONS)).toBe(-1);
  });

  it('suggests only close names', () => {
    expect(closest('sever', ['server', 'kind'])).toBe('server');
    expect(closest('zzzzzz', ['server', 'kind'])).toBeUndefined();
  });
});

describe('numbers', () => {
  it('parseUint takes plain decimal digits only, in range', () => {
    expect(parseUint('n', '42', 0)).toBe(42);
    expect(parseUint('n', undefined, 7)).toBe(7);
    for (const bad of ['0x10', '1e3', ' 5', '+5', '-1', '', '1.0', '12345678901234567']) {
      expect(() => parseUint('n', bad, 0)).toThrow(UsageError);
    }
    expect(() => parseUint('n', '0', 0, 10, 1)).toThrow(UsageError);
    expect(() => parseUint('n', '11', 0, 10)).toThrow(UsageError);
  });

  it('parseDecimal refuses hex, blanks, Infinity and numbers past 2^53', () => {
    expect(parseDecimal('2')).toBe(2);
    expect(parseDecimal('-2.5')).toBe(-2.5);
    expect(parseDecimal('.5')).toBe(0.5);
    expect(parseDecimal('+1e3')).toBe(1000);
    expect(parseDecimal('9007199254740991')).toBe(9007199254740991);
    for (const bad of ['0x10', '0b1', '0o7', 'Infinity', 'NaN', '', ' 1', '1_000', '1,5', '9007199254740993', '-9007199254740992', '1e400']) {
      expect(typeof parseDecimal(bad)).toBe('string');
    }
  });

  it('plural', () => {
    expect(plural(1, 'argument')).toBe('1 argument');
    expect(plural(0, 'argument')).toBe('0 arguments');
    expect(plural(2, 'process', 'processes')).toBe('2 processes');
  });
});

describe('arithmetic operands', () => {
  it('from the command line: exactly two decimal numbers', () => {
    expect(operandsFromArgv('add', ['2', '-3'])).toEqual({ ok: true, value: [2, -3] });
    const one = operandsFromArgv('add', ['1']);
    expect(one.ok).toBe(false);
    expect(!one.ok && one.message).toMatch(/\b1 argument\b/);
    expect(operandsFromArgv('add', ['0x10', '1']).ok).toBe(false);
    expect(operandsFromArgv('add', ['9007199254740993', '0']).ok).toBe(false);
  });

  it.each([
    ['1 2', [1, 2]],
    ['3,4', [3, 4]],
    ['  5 ,  -6 \r', [5, -6]],
    ['7\t8', [7, 8]],
    ['[1.5, 2]', [1.5, 2]],
    ['{"a": 6, "b": 3}', [6, 3]],
  ])('from a line: %j', (line, value) => {
    expect(operandsFromLine('divide', Buffer.from(line))).toEqual({ ok: true, value });
  });

  it.each(['nonsense', '1', '1 2 3', '0x10 1', '1,,2', '[1]', '{"a": 1}', '[9007199254740993, 0]', '9007199254740993 0', '{"a": "1", "b": 2}', '[1, 2'])(
    'refuses the line %j',
    (line) => {
      expect(operandsFromLine('add', Buffer.from(line)).ok).toBe(false);
    },
  );
});

async function* chunks(parts: Array<Buffer | string>): AsyncGenerator<Buffer | string> {
  for (const p of parts) yield p;
}

async function collect(input: AsyncIterable<Buffer | string>, max = 1 << 20): Promise<Array<Omit<InputLine, 'bytes'> & { bytes: string }>> {
  const out = [];
  for await (const l of readLines(input, max)) out.push({ ...l, bytes: l.bytes.toString('latin1') });
  return out;
}

describe('readLines', () => {
  it('splits bytes on \\n only: invalid UTF-8 and \\r are kept as given', async () => {
    const input = Buffer.from([0xff, 0xfe, 0x20, 0x62, 0x0a, 0x61, 0x0d, 0x0a, 0x0a, 0x63]);
    const lines = await collect(chunks([input]));
    expect(lines.map((l) => [l.number, l.bytes])).toEqual([
      [1, '\xff\xfe b'],
      [2, 'a\r'],
      [3, ''],
      [4, 'c'],
    ]);
  });

  it('gives the same lines whatever the chunking (whole, byte by byte, random splits)', async () => {
    const text = Buffer.from('alpha\nbeta\r\n\n\xff\xfe\ngamma delta\nlast', 'latin1');
    const expected = await collect(chunks([text]));
    const bytes = await collect(chunks([...text].map((b) => Buffer.from([b]))));
    expect(bytes).toEqual(expected);
    const seed = Date.now() >>> 0;
    const rng = makeRng(seed);
    for (let round = 0; round < 50; round++) {
      const parts: Buffer[] = [];
      for (let at = 0; at < text.length; ) {
        const n = 1 + Math.floor(rng() * 8);
        parts.push(text.subarray(at, at + n));
        at += n;
      }
      expect(await collect(chunks(parts)), `seed ${seed}`).toEqual(expected);
    }
  });

  it('has no empty last line after a final newline, and yields nothing for empty input', async () => {
    expect((await collect(chunks(['a\nb\n']))).map((l) => l.bytes)).toEqual(['a', 'b']);
    expect(await collect(chunks([]))).toEqual([]);
    expect(await collect(chunks(['']))).toEqual([]);
  });

  it('skips a line longer than the bound without buffering it, and goes on', async () => {
    const lines = await collect(chunks(['ok\n', 'x'.repeat(6), 'y'.repeat(6), '\nnext\n', 'z'.repeat(20)]), 10);
    expect(lines.map((l) => [l.number, l.bytes, l.tooLong, l.length])).toEqual([
      [1, 'ok', false, 2],
      [2, '', true, 12],
      [3, 'next', false, 4],
      [4, '', true, 20],
    ]);
  });

  it('isBlank: empty or a lone \\r', () => {
    expect(isBlank(Buffer.from(''))).toBe(true);
    expect(isBlank(Buffer.from('\r'))).toBe(true);
    expect(isBlank(Buffer.from(' '))).toBe(false);
    expect(isBlank(Buffer.from('\r\r'))).toBe(false);
  });
});

describe('countLines', () => {
  const dir = mkdtempSync(join(tmpdir(), 'taskwire-lines-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts the lines readLines would submit (blank ones excluded)', async () => {
    const cases = ['a\nb\n', 'a\nb', '\n\n', 'a\r\n\r\nb\r\n', '', 'x'.repeat(3 << 20) + '\ny\n'];
    for (const [i, text] of cases.entries()) {
      const path = join(dir, `f${i}`);
      writeFileSync(path, text);
      let expected = 0;
      for await (const l of readLines(chunks([text]), 1 << 30)) if (!isBlank(l.bytes)) expected++;
      expect(await countLines(path), JSON.stringify(text.slice(0, 20))).toBe(expected);
    }
  });

  it('returns undefined for what is not a regular file', async () => {
    expect(await countLines(dir)).toBeUndefined();
    expect(await countLines(join(dir, 'missing'))).toBeUndefined();
  });
});
