/**
 * Microbenchmark of the protocol codec alone (no sockets): encode and
 * decode of the hot-path messages, in ns per message. A quick check of a
 * change to src/lib/protocol.ts before the end-to-end `npm run bench`.
 *
 *   npx tsx bench/codec.ts [--n 1000000]
 */
import { parseArgs } from 'node:util';
import { decodeMessage, encode, FrameDecoder, type Message } from '../src/lib/protocol.js';

const { values } = parseArgs({ options: { n: { type: 'string' } } });
const N = Number(values.n ?? 1_000_000);
const CHUNK = 64 * 1024;

const args = Buffer.from('bench:123456:abcdefghijklmnopqrstu');
const samples: Message[] = [
  { type: 'SUBMIT', requestId: 7, kind: 'sha256', args, priority: 0, timeoutMs: 0, maxRetries: 0xffff, estMs: 0, delayMs: 0, key: '', wait: true, progress: false },
  { type: 'ACK', requestId: 7, jobId: 123_456, existing: false },
  { type: 'ASSIGN', jobId: 123_456, attempt: 1, timeoutMs: 10_000, kind: 'sha256', args },
  { type: 'RESULT', jobId: 123_456, attempt: 1, result: Buffer.alloc(64, 0x61) },
  { type: 'EVENT', jobId: 123_456, event: 'done', attempt: 1, pct: 0, permanent: false, data: Buffer.alloc(64, 0x61) },
];

function time(label: string, n: number, fn: () => void): void {
  fn(); // warm-up
  const t0 = process.hrtime.bigint();
  fn();
  const ns = Number(process.hrtime.bigint() - t0) / n;
  process.stdout.write(`${label.padEnd(28)} ${ns.toFixed(0).padStart(6)} ns/msg\n`);
}

for (const msg of samples) {
  time(`encode ${msg.type}`, N, () => {
    for (let i = 0; i < N; i++) encode(msg);
  });
  const one = encode(msg);
  const stream = Buffer.concat(Array.from({ length: N }, () => one));
  time(`frame+decode ${msg.type}`, N, () => {
    const decoder = new FrameDecoder();
    let count = 0;
    for (let o = 0; o < stream.length; o += CHUNK) {
      const frames = decoder.push(stream.subarray(o, o + CHUNK));
      for (let i = 0; i < frames.length; i++) decodeMessage(frames[i]!);
      count += frames.length;
    }
    if (count !== N) throw new Error(`decoded ${count} of ${N}`);
  });
}
