import { describe, expect, it } from 'vitest';
import { JobResult, type EnqueueResult, type SubmitOptions } from '../../src/client.js';
import { ClosedError, JobFailedError, TaskwireError } from '../../src/lib/errors.js';
import { readLines } from '../../src/lib/cli/lines.js';
import { LineError, StreamSubmitter, type JobPort, type LineOutcome, type StreamOptions } from '../../src/lib/cli/submit-stream.js';

/**
 * A scripted client: a job is one waited submit, acknowledged (onAck) at once
 * or when the test says so, and finished when the test says so.
 */
class FakePort implements JobPort {
  nextId = 1;
  readonly submitted: Array<{ id: number; args: unknown }> = [];
  /** Calls by method: the engine must make one per job. */
  readonly calls = { submit: 0, enqueue: 0 };
  readonly #waiters = new Map<number, { resolve: (r: JobResult) => void; reject: (e: Error) => void }>();
  readonly #acks: Array<{ ack: () => void; reject: (e: Error) => void }> = [];
  /** When true, ACKs wait for ack(). */
  holdAcks = false;
  /** Called after every submit (the test's hook to react). */
  onSubmit: (() => void) | undefined;

  submit(_kind: string, args: unknown, opts?: SubmitOptions): Promise<JobResult> {
    this.calls.submit++;
    const id = this.#record(args);
    return new Promise((resolve, reject) => {
      // As the client: the ACK comes later (a later tick), tells the id, and the job is then waited for.
      const ack = (): void => {
        this.#waiters.set(id, { resolve, reject });
        opts?.onAck?.(id);
      };
      if (this.holdAcks) this.#acks.push({ ack, reject });
      else queueMicrotask(ack);
    });
  }

  enqueue(_kind: string, args: unknown): Promise<EnqueueResult> {
    this.calls.enqueue++;
    return Promise.resolve({ id: this.#record(args), existing: false });
  }

  #record(args: unknown): number {
    const id = this.nextId++;
    this.submitted.push({ id, args: Buffer.isBuffer(args) ? Buffer.from(args).toString('latin1') : args });
    queueMicrotask(() => this.onSubmit?.());
    return id;
  }

  get waiting(): number[] {
    return [...this.#waiters.keys()];
  }

  finish(id: number, text = `r${id}`): void {
    const w = this.#waiters.get(id);
    if (w === undefined) throw new Error(`job ${id} is not waited for`);
    this.#waiters.delete(id);
    w.resolve(new JobResult(id, 1, Buffer.from(text)));
  }

  fail(id: number, message = 'boom'): void {
    const w = this.#waiters.get(id)!;
    this.#waiters.delete(id);
    w.reject(new JobFailedError(id, message, 1, true));
  }

  /** The connection drops: every pending call rejects with CLOSED, as the client does. */
  drop(): void {
    for (const w of this.#waiters.values()) w.reject(new ClosedError('connection closed'));
    this.#waiters.clear();
    for (const a of this.#acks.splice(0)) a.reject(new ClosedError('connection closed'));
  }

  ack(n = Infinity): void {
    for (const a of this.#acks.splice(0, n)) a.ack();
  }

  /** The scheduler refuses the next held job instead of acknowledging it. */
  refuse(code: 'BUSY' | 'INVALID_ARGUMENT' = 'BUSY'): void {
    this.#acks.shift()?.reject(new TaskwireError(code, 'refused'));
  }
}

/** An input the test feeds line by line, ending when told. */
class Feed implements AsyncIterable<Buffer> {
  readonly #queue: Buffer[] = [];
  #ended = false;
  #wake: (() => void) | undefined;
  push(text: string): void {
    this.#queue.push(Buffer.from(text, 'latin1'));
    this.#wake?.();
  }
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = this.#queue.shift();
      if (chunk !== undefined) yield chunk;
      else if (this.#ended) return;
      else await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}

async function* lines(n: number, from = 0): AsyncGenerator<Buffer> {
  for (let i = from; i < from + n; i++) yield Buffer.from(`line ${i}\n`);
}

function setup(over: Partial<StreamOptions> = {}) {
  const port = new FakePort();
  const outcomes: LineOutcome[] = [];
  const opts: StreamOptions = {
    port,
    kind: 'sha256',
    submitOptions: {},
    noWait: false,
    window: 4,
    maxLineBytes: 1024,
    lineArgs: (line) => ({ ok: true, args: line }),
    onOutcome: (o) => outcomes.push(o),
    ...over,
  };
  return { port, outcomes, submitter: new StreamSubmitter(opts) };
}

/** Resolves once `check()` holds, re-checked every macrotask; rejects after `ms`. */
async function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('condition not reached');
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const text = (o: LineOutcome): string => (o.value instanceof JobResult ? o.value.text() : o.value instanceof Error ? `error ${o.value.name}` : String(o.value));

describe('StreamSubmitter', () => {
  it('hands outcomes out in input order as soon as a job and all before it are done', async () => {
    const { port, outcomes, submitter } = setup();
    const feed = new Feed();
    const run = submitter.run(readLines(feed, 1024));
    feed.push('a\nb\nc\n');
    await until(() => port.waiting.length === 3);
    port.finish(2);
    port.finish(3);
    await until(() => port.waiting.length === 1);
    expect(outcomes).toEqual([]); // line 1 is not done: nothing may be printed yet
    port.finish(1);
    await until(() => outcomes.length === 3);
    expect(outcomes.map((o) => [o.line, o.id, text(o)])).toEqual([
      [1, 1, 'r1'],
      [2, 2, 'r2'],
      [3, 3, 'r3'],
    ]);
    // Streaming: a line that arrives later is printed when it is done, before the input ends.
    feed.push('d\n');
    await until(() => port.waiting.length === 1);
    port.finish(4);
    await until(() => outcomes.length === 4);
    feed.end();
    expect(await run).toMatchObject({ lines: 4, done: 4, failed: 0, stop: undefined });
  });

  it('never has more than `window` lines between submitted and printed', async () => {
    const { port, outcomes, submitter } = setup({ window: 4 });
    let maxInFlight = 0;
    port.onSubmit = () => {
      maxInFlight = Math.max(maxInFlight, port.submitted.length - outcomes.length);
    };
    const run = submitter.run(readLines(lines(50), 1024));
    await until(() => port.waiting.length === 4);
    // The window is full and its head is not done: nothing more is read or sent.
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(port.submitted).toHaveLength(4);
    // Finishing jobs out of order behind the head still does not open the window.
    port.finish(4);
    port.finish(3);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(port.submitted).toHaveLength(4);
    while (outcomes.length < 50) {
      const [first] = port.waiting.sort((a, b) => a - b);
      if (first !== undefined) port.finish(first);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const summary = await run;
    expect(summary.lines).toBe(50);
    expect(maxInFlight).toBeLessThanOrEqual(4);
    expect(outcomes.map((o) => o.line)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    // Reused slots carry each job's own id (from its ACK).
    expect(outcomes.map((o) => o.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('one request per job: a waited submit, whose ACK tells the id before the result', async () => {
    const { port, outcomes, submitter } = setup();
    port.holdAcks = true;
    const run = submitter.run(readLines(lines(3), 1024));
    await until(() => port.submitted.length === 3);
    expect(port.waiting).toEqual([]);
    port.ack();
    await until(() => port.waiting.length === 3);
    for (const id of [1, 2, 3]) port.finish(id);
    await run;
    expect(port.calls).toEqual({ submit: 3, enqueue: 0 });
    expect(outcomes.map((o) => [o.line, o.id, text(o)])).toEqual([
      [1, 1, 'r1'],
      [2, 2, 'r2'],
      [3, 3, 'r3'],
    ]);
  });

  it('a job refused before its ACK is an error on its line without an id; the run goes on', async () => {
    const { port, outcomes, submitter } = setup();
    port.holdAcks = true;
    const run = submitter.run(readLines(lines(3), 1024));
    await until(() => port.submitted.length === 3);
    port.ack(1);
    port.refuse('BUSY');
    port.ack(1);
    await until(() => port.waiting.length === 2);
    port.finish(1);
    port.finish(3);
    expect(await run).toMatchObject({ lines: 3, done: 2, failed: 1, stop: undefined });
    expect(outcomes.map((o) => [o.line, o.id, (o.value as TaskwireError).code ?? text(o)])).toEqual([
      [1, 1, 'r1'],
      [2, 0, 'BUSY'],
      [3, 3, 'r3'],
    ]);
  });

  it('stops reading while held results exceed the byte bound', async () => {
    const { port, outcomes, submitter } = setup({ window: 100, maxHeldBytes: 10 });
    const run = submitter.run(readLines(lines(20), 1024));
    await until(() => port.waiting.length === 20);
    // 2..4 finish with 6 bytes each while 1 is pending: 18 bytes held > 10.
    for (const id of [2, 3, 4]) port.finish(id, '123456');
    expect(port.submitted).toHaveLength(20);
    port.finish(1);
    await until(() => outcomes.length === 4);
    for (let id = 5; id <= 20; id++) port.finish(id);
    await run;
    expect(outcomes).toHaveLength(20);
  });

  it('waits for the output to drain before starting more lines', async () => {
    let ready = false;
    const { port, submitter } = setup({ window: 100, outputReady: () => ready });
    const run = submitter.run(readLines(lines(3), 1024));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(port.submitted).toHaveLength(0);
    ready = true;
    submitter.wake();
    await until(() => port.waiting.length === 3);
    for (const id of [1, 2, 3]) port.finish(id);
    await run;
  });

  it('skips blank lines, turns bad and over-long lines into errors on their line without sending them', async () => {
    const { port, outcomes, submitter } = setup({
      lineArgs: (line) => (line.toString() === 'bad' ? { ok: false, message: 'not a number' } : { ok: true, args: line }),
      maxLineBytes: 5,
    });
    const feed = new Feed();
    feed.push('ok\n\n\r\nbad\n123456789\nfine\r\n');
    feed.end();
    const run = submitter.run(readLines(feed, 5));
    await until(() => port.waiting.length === 2);
    port.finish(1);
    port.finish(2);
    const summary = await run;
    expect(port.submitted.map((s) => s.args)).toEqual(['ok', 'fine\r']);
    expect(outcomes.map((o) => [o.line, text(o)])).toEqual([
      [1, 'r1'],
      [4, 'error LineError'],
      [5, 'error LineError'],
      [6, 'r2'],
    ]);
    expect((outcomes[1]!.value as LineError).code).toBe('INVALID_ARGUMENT');
    expect((outcomes[2]!.value as LineError).code).toBe('TOO_LARGE');
    expect(summary).toMatchObject({ lines: 4, done: 2, failed: 2 });
  });

  it('a failed job is an error on its line; the others go on', async () => {
    const { port, outcomes, submitter } = setup();
    const run = submitter.run(readLines(lines(3), 1024));
    await until(() => port.waiting.length === 3);
    port.fail(2);
    port.finish(1);
    port.finish(3);
    expect(await run).toMatchObject({ done: 2, failed: 1, stop: undefined });
    expect(outcomes.map(text)).toEqual(['r1', 'error JobFailedError', 'r3']);
  });

  it('on interrupt hands out what finished and, in order, the ids of jobs still pending — without waiting for input', async () => {
    const interrupt = new AbortController();
    const stops: string[] = [];
    const { port, outcomes, submitter } = setup({ interrupt: interrupt.signal, onStop: (r) => stops.push(r) });
    port.holdAcks = true;
    const feed = new Feed(); // stdin that stays open and idle
    const run = submitter.run(readLines(feed, 1024));
    feed.push('a\nb\nc\n');
    await until(() => port.submitted.length === 3);
    port.ack(2); // c is sent but not acknowledged
    await until(() => port.waiting.length === 2);
    port.finish(1);
    await until(() => outcomes.length === 1);
    interrupt.abort();
    const summary = await run;
    expect(stops).toEqual(['interrupted']);
    expect(summary).toMatchObject({ lines: 3, done: 1, unfinished: 1, unacknowledged: 1, stop: 'interrupted' });
    expect(outcomes.map((o) => [o.line, o.id, o.value === undefined ? 'pending' : text(o)])).toEqual([
      [1, 1, 'r1'],
      [2, 2, 'pending'],
      [3, 0, 'pending'],
    ]);
    port.finish(2); // a late answer changes nothing
    expect(outcomes).toHaveLength(3);
  });

  it('a deadline stops the run the same way, as "timeout"', async () => {
    const deadline = new AbortController();
    const { port, outcomes, submitter } = setup({ deadline: deadline.signal });
    const run = submitter.run(readLines(lines(2), 1024));
    await until(() => port.waiting.length === 2);
    port.finish(2);
    deadline.abort();
    expect(await run).toMatchObject({ stop: 'timeout', unfinished: 1, done: 1 });
    expect(outcomes.map((o) => [o.id, o.value === undefined])).toEqual([
      [1, true],
      [2, false],
    ]);
  });

  it('a lost connection stops reading; acknowledged jobs keep their ids, the rest are marked unacknowledged', async () => {
    const { port, outcomes, submitter } = setup({ window: 10 });
    port.holdAcks = true;
    const feed = new Feed();
    const run = submitter.run(readLines(feed, 1024));
    feed.push('a\nb\nc\n');
    await until(() => port.submitted.length === 3);
    port.ack(2);
    await until(() => port.waiting.length === 2);
    port.finish(1);
    port.drop();
    const summary = await run;
    expect(summary.stop).toBe('lost');
    expect(outcomes.map((o) => [o.line, o.id, (o.value as TaskwireError).code ?? 'ok'])).toEqual([
      [1, 1, 'ok'],
      [2, 2, 'CLOSED'],
      [3, 0, 'CLOSED'],
    ]);
    feed.push('d\n'); // nothing more is sent
    feed.end();
    expect(port.submitted).toHaveLength(3);
  });

  it('with noWait hands out the ACKs', async () => {
    const { port, outcomes, submitter } = setup({ noWait: true });
    const summary = await submitter.run(readLines(lines(3), 1024));
    expect(summary).toMatchObject({ lines: 3, done: 3 });
    expect(port.calls).toEqual({ submit: 0, enqueue: 3 });
    expect(outcomes.map((o) => o.id)).toEqual([1, 2, 3]);
    expect(outcomes.map((o) => o.value)).toEqual([
      { id: 1, existing: false },
      { id: 2, existing: false },
      { id: 3, existing: false },
    ]);
  });

  it('reports progress with the total once the input has ended', async () => {
    const progress: Array<[number, number, number | undefined]> = [];
    const { port, submitter } = setup({ onProgress: (s, f, t) => progress.push([s, f, t]) });
    const run = submitter.run(readLines(lines(2), 1024));
    await until(() => port.waiting.length === 2);
    port.finish(1);
    port.fail(2);
    await run;
    expect(progress.at(-1)).toEqual([2, 1, 2]);
  });
});
