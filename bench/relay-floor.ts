/**
 * The latency floor of a Node scheduler (issue 9): the same sequential
 * submit-and-wait loop as `npm run bench`'s latency phase, through a relay
 * that does nothing but forward frames. Every hop a taskwire round trip
 * takes is here (client -> relay -> worker -> relay -> client, all Node, all
 * loopback TCP), with none of taskwire's work: what is left is the kernel's
 * loopback and wake-up cost per hop, which no Node scheduler can go below.
 *
 *   producer: sends one frame with a 32-byte input, waits for the answer,
 *             checks it; one in flight.
 *   relay:    cuts each stream into frames (taskwire's 5-byte header,
 *             bench/framing.ts) and writes the complete frames of each read,
 *             unchanged, to the other side in one write.
 *   worker:   answers each frame with one holding the sha256 hex of its payload.
 *
 *   npx tsx bench/relay-floor.ts [--warmup 500] [--n 5000] [--payload-bytes 32] [--json]
 *
 * Prints p50/p90/p99/max/mean in µs and CPU µs per round trip of the relay,
 * the producer and the worker over the measured part. `npm run bench` calls
 * measureRelayFloor in its latency phase. (`--role relay` and `--role worker`
 * are the children; the producer spawns them.)
 */
import { hash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { FrameScanner, HEADER } from './framing.js';
import { entryOf, installCleanup, killAll, spawnNode, type Proc } from './procs.js';
import type { RelayFloorResult } from './report.js';
import { sequentialLoop } from './sequential.js';

/** taskwire's SUBMIT and RESULT command bytes, so the frames look like the real ones. */
const JOB = 0x10;
const RESULT = 0x21;

const SCRIPT = 'bench/relay-floor.ts';

/** `[command][u32 BE length][text as latin1]`: one buffer, one write. */
function frameOf(command: number, text: string): Buffer {
  const f = Buffer.allocUnsafe(HEADER + text.length);
  f[0] = command;
  f.writeUInt32BE(text.length, 1);
  f.write(text, HEADER, 'latin1');
  return f;
}

async function connectTo(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await once(socket, 'connect');
  return socket;
}

// ---------------------------------------------------------------------------
// Relay: the first connection is the worker, the second the producer.

function runRelay(): void {
  let worker: Socket | undefined;
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    // A relay outlives neither side: a killed producer leaves no process behind.
    socket.on('close', () => process.exit(0));
    if (worker === undefined) {
      worker = socket;
      process.stdout.write('relay: worker connected\n');
      return;
    }
    forwardFrames(socket, worker);
    forwardFrames(worker, socket);
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no address');
    process.stdout.write(`relay listening on 127.0.0.1:${addr.port}\n`);
  });
}

/** Writes the complete frames of each read from `from` to `to`, in one write. */
function forwardFrames(from: Socket, to: Socket): void {
  const scanner = new FrameScanner();
  from.on('data', (chunk: Buffer) => {
    const { frames, bytes } = scanner.push(chunk);
    // A copy, as a real scheduler builds the frames it sends (like bench/echo.ts).
    if (frames > 0) to.write(Buffer.from(bytes));
  });
}

// ---------------------------------------------------------------------------
// Worker: a RESULT frame with the sha256 hex of each frame's payload.

async function runWorker(port: number): Promise<void> {
  const socket = await connectTo(port);
  socket.on('close', () => process.exit(0));
  const scanner = new FrameScanner();
  socket.on('data', (chunk: Buffer) => {
    const { frames, bytes } = scanner.push(chunk);
    if (frames === 0) return;
    const answers: Buffer[] = [];
    for (let o = 0; o < bytes.length; ) {
      const end = o + HEADER + bytes.readUInt32BE(o + 1);
      answers.push(frameOf(RESULT, hash('sha256', bytes.subarray(o + HEADER, end), 'hex')));
      o = end;
    }
    socket.write(answers.length === 1 ? answers[0]! : Buffer.concat(answers));
  });
}

// ---------------------------------------------------------------------------
// Producer (this process)


/** Sends one frame at a time through the relay; resolves with the answer's payload. */
function roundTripper(socket: Socket): (input: string) => Promise<string> {
  const scanner = new FrameScanner();
  let pending: { resolve: (payload: string) => void; reject: (err: Error) => void } | undefined;
  socket.on('data', (chunk: Buffer) => {
    // One frame in flight, so one answer per complete read; anything extra makes the result wrong.
    const { frames, bytes } = scanner.push(chunk);
    if (frames === 0) return;
    pending?.resolve(bytes.toString('latin1', HEADER));
    pending = undefined;
  });
  // A relay or worker that dies fails the run instead of leaving it waiting.
  socket.on('close', () => pending?.reject(new Error('the floor relay closed the connection mid round trip')));
  return (input) =>
    new Promise((resolve, reject) => {
      pending = { resolve, reject };
      socket.write(frameOf(JOB, input));
    });
}

export interface RelayFloorOptions {
  warmup: number;
  n: number;
  payloadBytes: number;
}

/**
 * Starts a relay and a worker (fresh processes, loopback port 0), runs
 * `warmup` unmeasured round trips on one input, then `n` measured ones on
 * distinct inputs, and stops both children.
 */
export async function measureRelayFloor(opts: RelayFloorOptions): Promise<RelayFloorResult> {
  const relay = spawnNode('relay', entryOf('tsx', SCRIPT), ['--role', 'relay']);
  let worker: Proc | undefined;
  try {
    const port = (await relay.waitFor(/relay listening on \S+:(\d+)/))[1]!;
    worker = spawnNode('relay-floor worker', entryOf('tsx', SCRIPT), ['--role', 'worker', '--port', port]);
    // The relay takes its first connection for the worker's: the producer connects second.
    await relay.waitFor(/relay: worker connected/);
    const socket = await connectTo(Number(port));
    const r = await measure(roundTripper(socket), opts, relay.pid, worker.pid);
    socket.destroy();
    return r;
  } finally {
    await Promise.all([worker?.kill(), relay.kill()]);
  }
}

async function measure(
  roundTrip: (input: string) => Promise<string>,
  opts: RelayFloorOptions,
  relayPid: number,
  workerPid: number,
): Promise<RelayFloorResult> {
  const { us, verified, cpuUsPerRoundTrip: cpu } = await sequentialLoop(roundTrip, opts, { relay: relayPid, worker: workerPid });
  const cpuUsPerRoundTrip = { relay: cpu['relay']!, producer: cpu['producer']!, worker: cpu['worker']! };
  return { n: opts.n, warmup: opts.warmup, payloadBytes: opts.payloadBytes, verified, us, cpuUsPerRoundTrip };
}

// ---------------------------------------------------------------------------
// Command line

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      port: { type: 'string' },
      warmup: { type: 'string' },
      n: { type: 'string' },
      'payload-bytes': { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (values.role === 'relay') return runRelay();
  if (values.role === 'worker') return runWorker(Number(values.port));
  installCleanup();
  const r = await measureRelayFloor({
    warmup: Number(values.warmup ?? 500),
    n: Number(values.n ?? 5000),
    payloadBytes: Number(values['payload-bytes'] ?? 32),
  });
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ system: 'node relay', ...r })}\n`);
  } else {
    const f = (x: number): string => x.toFixed(0);
    const { us, cpuUsPerRoundTrip: cpu } = r;
    process.stdout.write(
      `do-nothing Node relay sequential submit-and-wait, ${r.n} measured after ${r.warmup} warm-up, ${r.payloadBytes}-byte jobs, ${r.verified}/${r.n} verified\n` +
        `  p50 ${f(us.p50)} µs  p90 ${f(us.p90)} µs  p99 ${f(us.p99)} µs  max ${f(us.max)} µs  mean ${f(us.mean)} µs\n` +
        `  CPU µs per round trip: relay ${cpu.relay}, producer ${cpu.producer}, worker ${cpu.worker}\n`,
    );
  }
  killAll();
  process.exit(r.verified === r.n ? 0 : 1);
}

// Imported by bench/bench.ts: only the function; run as a script: the command line.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    killAll();
    process.stderr.write(`relay-floor: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
