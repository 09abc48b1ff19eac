/**
 * Sequential submit-and-wait latency through beanstalkd, with the same kind
 * of Node client loop as `npm run bench`'s latency phase (issue 9): one
 * producer (this process) and one worker process, both Node, talking
 * beanstalkd's text protocol over node:net (no dependency).
 *
 *   producer: put a 32-byte job into tube `jobs`, reserve its result from a
 *             reply tube, delete it; one job at a time.
 *   worker:   reserve from `jobs`, sha256 hex of the body, put it into the
 *             reply tube, delete the job.
 *
 * Commands that are ready in the same turn of the event loop go out in one
 * write (beanstalkd answers pipelined commands in order): the producer's
 * `delete` of the previous reply + `put` + `reserve` is one write per round
 * trip, like taskwire's one SUBMIT frame; the worker's `put` + `delete` +
 * next `reserve` is one write per job, like taskwire's RESULT frame.
 *
 * Start beanstalkd yourself (`beanstalkd -l 127.0.0.1 -p PORT`), then:
 *
 *   npx tsx bench/beanstalkd-latency.ts --server 127.0.0.1:PORT [--warmup 500] [--n 5000]
 *       [--payload-bytes 32] [--server-pid PID] [--json]
 *
 * Prints p50/p90/p99/max/mean in µs; with `--server-pid`, also CPU µs per
 * round trip of beanstalkd, the producer and the worker over the measured part.
 * (`--role worker` is the worker child; the producer spawns it.)
 */
import { hash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { entryOf, installCleanup, killAll, spawnNode } from './procs.js';
import { sequentialLoop } from './sequential.js';

const { values } = parseArgs({
  options: {
    server: { type: 'string' },
    role: { type: 'string' },
    tube: { type: 'string' },
    reply: { type: 'string' },
    warmup: { type: 'string' },
    n: { type: 'string' },
    'payload-bytes': { type: 'string' },
    'server-pid': { type: 'string' },
    json: { type: 'boolean' },
  },
});

const [host, portText] = (values.server ?? '127.0.0.1:11300').split(':');
const port = Number(portText);
const JOB_TUBE = values.tube ?? 'jobs';

/** A reserved job: its id and body (latin1). */
interface Reserved {
  id: string;
  body: string;
}

/** What an answer line must look like, and whether a body follows (RESERVED). */
interface Waiter {
  ok: string;
  resolve: (v: Reserved | string) => void;
  reject: (e: Error) => void;
}

const LF = 0x0a;

/**
 * A minimal beanstalkd client: commands are queued and written together at the
 * end of the current microtask queue; answers are matched to commands in order.
 */
class Beanstalk {
  readonly #socket: Socket;
  readonly #waiters: Waiter[] = [];
  #head = 0;
  #out = '';
  #flushQueued = false;
  #buf: Buffer = Buffer.alloc(0);

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#failAll(err));
    socket.on('close', () => this.#failAll(new Error('beanstalkd closed the connection')));
  }

  static connect(h: string, p: number): Promise<Beanstalk> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: h, port: p }, () => {
        s.off('error', reject);
        resolve(new Beanstalk(s));
      });
      s.once('error', reject);
    });
  }

  use(tube: string): Promise<string> {
    return this.#cmd(`use ${tube}\r\n`, 'USING') as Promise<string>;
  }
  watch(tube: string): Promise<string> {
    return this.#cmd(`watch ${tube}\r\n`, 'WATCHING') as Promise<string>;
  }
  ignore(tube: string): Promise<string> {
    return this.#cmd(`ignore ${tube}\r\n`, 'WATCHING') as Promise<string>;
  }
  /** `put` (priority 0, no delay, TTR 60 s) of a latin1 body; resolves with the job id. */
  put(body: string): Promise<string> {
    return this.#cmd(`put 0 0 60 ${body.length}\r\n${body}\r\n`, 'INSERTED') as Promise<string>;
  }
  reserve(): Promise<Reserved> {
    return this.#cmd('reserve\r\n', 'RESERVED') as Promise<Reserved>;
  }
  delete(id: string): Promise<string> {
    return this.#cmd(`delete ${id}\r\n`, 'DELETED') as Promise<string>;
  }
  close(): void {
    this.#socket.destroy();
  }

  #cmd(text: string, ok: string): Promise<Reserved | string> {
    this.#out += text;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => {
        this.#flushQueued = false;
        const out = this.#out;
        this.#out = '';
        this.#socket.write(out, 'latin1');
      });
    }
    return new Promise((resolve, reject) => this.#waiters.push({ ok, resolve, reject }));
  }

  #onData(chunk: Buffer): void {
    let buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let at = 0;
    for (;;) {
      const nl = buf.indexOf(LF, at);
      if (nl < 0) break;
      const line = buf.toString('latin1', at, nl - 1); // without \r\n
      let body: string | undefined;
      let next = nl + 1;
      if (line.startsWith('RESERVED ')) {
        const bytes = Number(line.slice(line.lastIndexOf(' ') + 1));
        if (buf.length < next + bytes + 2) break; // the body is not all here yet
        body = buf.toString('latin1', next, next + bytes);
        next += bytes + 2;
      }
      at = next;
      const w = this.#waiters[this.#head];
      if (w === undefined) throw new Error(`beanstalkd: unexpected answer "${line}"`);
      this.#waiters[this.#head++] = undefined as unknown as Waiter;
      if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
        this.#waiters.splice(0, this.#head);
        this.#head = 0;
      }
      const sp = line.indexOf(' ');
      const word = sp < 0 ? line : line.slice(0, sp);
      if (word !== w.ok) {
        w.reject(new Error(`beanstalkd: expected ${w.ok}, got "${line}"`));
      } else if (body !== undefined) {
        w.resolve({ id: line.slice(sp + 1, line.lastIndexOf(' ')), body });
      } else {
        w.resolve(sp < 0 ? '' : line.slice(sp + 1));
      }
    }
    this.#buf = at >= buf.length ? Buffer.alloc(0) : buf.subarray(at);
  }

  #failAll(err: Error): void {
    for (let i = this.#head; i < this.#waiters.length; i++) this.#waiters[i]?.reject(err);
    this.#waiters.length = 0;
    this.#head = 0;
  }
}

// ---------------------------------------------------------------------------
// Worker: reserve, sha256 hex, put the result into the reply tube, delete.

async function runWorker(replyTube: string): Promise<void> {
  const bs = await Beanstalk.connect(host!, port);
  await Promise.all([bs.watch(JOB_TUBE), bs.ignore('default'), bs.use(replyTube)]);
  process.stdout.write('beanstalkd worker ready\n');
  process.on('SIGTERM', () => process.exit(0));
  let job = await bs.reserve();
  for (;;) {
    bs.put(hash('sha256', job.body, 'hex')).catch(fatal);
    bs.delete(job.id).catch(fatal);
    job = await bs.reserve(); // the three commands leave in one write
  }
}

// ---------------------------------------------------------------------------
// Producer: put, wait for the result in the reply tube, delete it.


async function runProducer(): Promise<void> {
  installCleanup();
  const warmup = Number(values.warmup ?? 500);
  const n = Number(values.n ?? 5000);
  const bytes = Number(values['payload-bytes'] ?? 32);
  const serverPid = values['server-pid'] === undefined ? undefined : Number(values['server-pid']);
  const replyTube = values.reply ?? `results-${process.pid}`;

  const worker = spawnNode('beanstalkd worker', entryOf('tsx', 'bench/beanstalkd-latency.ts'), [
    '--role', 'worker', '--server', `${host}:${port}`, '--tube', JOB_TUBE, '--reply', replyTube,
  ]);
  await worker.waitFor(/beanstalkd worker ready/);
  const bs = await Beanstalk.connect(host!, port);
  await Promise.all([bs.use(JOB_TUBE), bs.watch(replyTube), bs.ignore('default')]);

  let pendingDelete: string | undefined;
  const roundTrip = async (input: string): Promise<string> => {
    // The previous reply's delete goes out in the same write as this put and reserve.
    if (pendingDelete !== undefined) bs.delete(pendingDelete).catch(fatal);
    bs.put(input).catch(fatal);
    const r = await bs.reserve();
    pendingDelete = r.id;
    return r.body;
  };

  const { us, verified, cpuUsPerRoundTrip: cpu } = await sequentialLoop(roundTrip, { warmup, n, payloadBytes: bytes }, { server: serverPid, worker: worker.pid });
  const cpuUs = { server: cpu['server'] ?? null, producer: cpu['producer'], worker: cpu['worker'] };
  if (pendingDelete !== undefined) await bs.delete(pendingDelete);
  bs.close();
  await worker.kill();

  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ system: 'beanstalkd', n, warmup, payloadBytes: bytes, verified, us, cpuUsPerRoundTrip: cpuUs })}\n`);
  } else {
    const f = (x: number): string => x.toFixed(0);
    process.stdout.write(
      `beanstalkd sequential submit-and-wait, ${n} measured after ${warmup} warm-up, ${bytes}-byte jobs, ${verified}/${n} verified\n` +
        `  p50 ${f(us.p50)} µs  p90 ${f(us.p90)} µs  p99 ${f(us.p99)} µs  max ${f(us.max)} µs  mean ${f(us.mean)} µs\n` +
        `  CPU µs per round trip: beanstalkd ${cpuUs.server ?? '—'}, producer ${cpuUs.producer}, worker ${cpuUs.worker}\n`,
    );
  }
  if (verified !== n) process.exitCode = 1;
}

function fatal(err: unknown): never {
  killAll();
  process.stderr.write(`beanstalkd-latency: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

(values.role === 'worker' ? runWorker(values.reply ?? 'results') : runProducer()).then(
  () => {
    killAll();
    if (values.role !== 'worker') process.exit();
  },
  fatal,
);
