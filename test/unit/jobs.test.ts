import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PermanentError, TaskwireError } from '../../src/lib/errors.js';
import {
  add,
  BUILTIN_HANDLERS,
  BUILTIN_KINDS,
  createBuiltinRegistry,
  divide,
  emulate,
  encodeArgs,
  encodeResult,
  HandlerRegistry,
  multiply,
  parseOperands,
  sha256,
  SIMULATED_FAILURE,
  subtract,
  type Handler,
  type JobContext,
} from '../../src/lib/jobs.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const text = (s: string) => Buffer.from(s, 'utf8');

/** The error `fn` throws (fails the test if it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

function ctx(signal: AbortSignal = new AbortController().signal): JobContext {
  return { jobId: 1, attempt: 1, kind: 'test', signal, progress: () => undefined };
}

describe('sha256', () => {
  it('hashes the raw bytes to lowercase hex', () => {
    expect(sha256(text('Hello, World!'))).toBe('dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f');
    expect(sha256(Buffer.alloc(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('hashes multi-byte UTF-8 and non-UTF-8 bytes exactly as sent', () => {
    for (const input of [text('ünïcödé ✓ 🚀'), Buffer.from([0xff, 0x00, 0xfe]), Buffer.alloc(100_000, 7)]) {
      expect(sha256(input)).toBe(createHash('sha256').update(input).digest('hex'));
    }
  });

  it('hashes a view of a bigger buffer, not the whole buffer', () => {
    const whole = text('xxabcxx');
    expect(sha256(whole.subarray(2, 5))).toBe(sha256(text('abc')));
  });
});

describe('arithmetic', () => {
  it('computes with [a, b] and {"a", "b"} operands', () => {
    expect(add(json([2, 3]))).toBe(5);
    expect(subtract(json([2, 3]))).toBe(-1);
    expect(multiply(json({ a: 4, b: 2.5 }))).toBe(10);
    expect(divide(json([1, 4]))).toBe(0.25);
    expect(divide(json({ a: -9, b: 3 }))).toBe(-3);
    expect(add(json([0.1, 0.2]))).toBe(0.1 + 0.2);
    expect(add(json({ a: 1, b: 2, note: 'extra keys are ignored' }))).toBe(3);
  });

  it('fails division by zero permanently, including by -0', () => {
    for (const args of [json([1, 0]), json([0, 0]), text('[1, -0]')]) {
      const err = thrown(() => divide(args));
      expect(err).toBeInstanceOf(PermanentError);
    }
  });

  const bad: [string, Buffer][] = [
    ['no bytes', Buffer.alloc(0)],
    ['invalid JSON', text('[1, 2')],
    ['a bare number', json(3)],
    ['null', json(null)],
    ['one operand', json([1])],
    ['three operands', json([1, 2, 3])],
    ['a string operand', json(['1', 2])],
    ['a null operand', json([1, null])],
    ['a boolean operand', json({ a: true, b: 1 })],
    ['a missing b', json({ a: 1 })],
    ['an overflowing literal', text('[1e999, 1]')],
    ['a nested array', json([[1], 2])],
    ['invalid UTF-8', Buffer.from([0x5b, 0xff, 0x5d])],
  ];
  for (const [what, args] of bad) {
    it(`rejects ${what} with a PermanentError in every kind`, () => {
      for (const kind of ['add', 'subtract', 'multiply', 'divide'] as const) {
        const err = thrown(() => BUILTIN_HANDLERS[kind](args, ctx()));
        expect(err).toBeInstanceOf(PermanentError);
      }
    });
  }

  it('fails a non-finite result permanently', () => {
    expect(thrown(() => multiply(json([1e308, 10])))).toBeInstanceOf(PermanentError);
    expect(thrown(() => add(json([1.7e308, 1.7e308])))).toBeInstanceOf(PermanentError);
    expect(thrown(() => subtract(json([-1.7e308, 1.7e308])))).toBeInstanceOf(PermanentError);
    expect(thrown(() => divide(json([1e308, 1e-308])))).toBeInstanceOf(PermanentError);
  });

  it('parseOperands returns both operands', () => {
    expect(parseOperands('add', json([-1.5, 2e10]))).toEqual([-1.5, 2e10]);
    expect(parseOperands('add', json({ b: 2, a: 1 }))).toEqual([1, 2]);
  });
});

describe('HandlerRegistry', () => {
  it('holds the built-ins', () => {
    const r = createBuiltinRegistry();
    expect(r.kinds()).toEqual([...BUILTIN_KINDS]);
    expect(r.get('sha256')).toBe(sha256);
    expect(r.get('nope')).toBeUndefined();
  });

  it('registers, replaces and lists kinds in order', () => {
    const r = new HandlerRegistry();
    const a: Handler = () => 'a';
    const b: Handler = () => 'b';
    expect(r.register('x', a).register('y', b)).toBe(r);
    r.register('x', b);
    expect(r.kinds()).toEqual(['x', 'y']);
    expect(r.get('x')).toBe(b);
    expect(r.has('y')).toBe(true);
  });

  it('rejects an empty or over-long kind and a non-function handler', () => {
    const r = new HandlerRegistry();
    expect(thrown(() => r.register('', () => 1))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(thrown(() => r.register('é'.repeat(128), () => 1))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    r.register('k'.repeat(255), () => 1); // exactly the str8 maximum is fine
    expect(thrown(() => r.register('k', 42 as unknown as Handler))).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('encodeArgs / encodeResult', () => {
  it('passes a Buffer through as the same object', () => {
    const b = Buffer.from([1, 2, 3]);
    expect(encodeArgs(b)).toBe(b);
    expect(encodeResult(b)).toBe(b);
  });

  it('sends strings as raw UTF-8, not JSON', () => {
    expect(encodeArgs('héllo')).toEqual(Buffer.from('héllo', 'utf8'));
    expect(encodeResult('héllo')).toEqual(Buffer.from('héllo', 'utf8'));
    expect(encodeArgs('')).toEqual(Buffer.alloc(0));
  });

  it('sends everything else as JSON', () => {
    expect(encodeArgs([2, 3]).toString()).toBe('[2,3]');
    expect(encodeArgs({ a: 1 }).toString()).toBe('{"a":1}');
    expect(encodeArgs(null).toString()).toBe('null');
    expect(encodeResult(5).toString()).toBe('5');
    expect(encodeResult(false).toString()).toBe('false');
    expect(encodeResult({ ok: [1] }).toString()).toBe('{"ok":[1]}');
  });

  it('encodes an undefined result as no bytes, but undefined args are refused', () => {
    expect(encodeResult(undefined).length).toBe(0);
    expect(thrown(() => encodeArgs(undefined))).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('refuses values JSON cannot carry with INVALID_ARGUMENT', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    for (const value of [() => 1, Symbol('s'), 10n, cyclic]) {
      const a = thrown(() => encodeArgs(value));
      expect(a).toBeInstanceOf(TaskwireError);
      expect(a).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(thrown(() => encodeResult(value))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });
});

describe('emulate', () => {
  const echo: Handler = (args) => args.toString();

  it('returns the handler itself when no knob is set', () => {
    expect(emulate(echo, {})).toBe(echo);
    expect(emulate(echo, { processingMs: 0, failRate: 0 })).toBe(echo);
  });

  it('fails retryably with probability failRate, synchronously', () => {
    const draws = [0.1, 0.9];
    const h = emulate(echo, { failRate: 0.5, random: () => draws.shift()! });
    const err = thrown(() => h(text('x'), ctx()));
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(PermanentError);
    expect((err as Error).message).toBe(SIMULATED_FAILURE);
    expect(h(text('x'), ctx())).toBe('x');
  });

  it('waits processingMs, then runs the handler', async () => {
    const h = emulate(echo, { processingMs: 30 });
    const started = performance.now();
    const out = h(text('later'), ctx());
    expect(out).toBeInstanceOf(Promise);
    expect(await out).toBe('later');
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });

  it('stops waiting when the signal aborts', async () => {
    let ran = false;
    const h = emulate(() => (ran = true), { processingMs: 60_000 });
    const controller = new AbortController();
    const out = h(text(''), ctx(controller.signal)) as Promise<unknown>;
    controller.abort();
    await expect(out).rejects.toMatchObject({ name: 'AbortError' });
    expect(ran).toBe(false);
  });
});
