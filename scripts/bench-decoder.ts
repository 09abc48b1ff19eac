/**
 * `npx tsx scripts/bench-decoder.ts [--frames N] [--large N] [--chunk BYTES] [--runs N]`:
 * decoder throughput (issue 2), next to a plain `Buffer.copy` of the same
 * bytes in the same chunks as the baseline.
 *
 * - small: N (default 1,000,000) ASSIGN frames of 60 bytes (a sha256 job with
 *   32 bytes of args), arriving in 64 KiB chunks, as from a socket;
 * - large: RESULT frames with 1 MiB payloads (default 64 of them), same chunks.
 *
 * Each case runs `--runs` times (round-robin within its group) after a
 * warm-up; the best run is reported.
 */
import { parseArgs } from 'node:util';
import { decodeMessage, encode, FrameDecoder, MessageDecoder, type Message } from '../src/lib/protocol.js';

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '1000000' },
    large: { type: 'string', default: '64' },
    chunk: { type: 'string', default: String(64 * 1024) },
    runs: { type: 'string', default: '10' },
  },
});
const SMALL_FRAMES = Number(values.frames);
const LARGE_FRAMES = Number(values.large);
const CHUNK_BYTES = Number(values.chunk);
const RUNS = Number(values.runs);

/** One stream of `count` copies of `msg`, cut into CHUNK_BYTES views. */
function stream(msg: Message, count: number): { chunks: Buffer[]; bytes: number; frameBytes: number } {
  const frame = encode(msg);
  const all = Buffer.allocUnsafe(frame.length * count);
  for (let i = 0; i < count; i++) frame.copy(all, i * frame.length);
  const chunks: Buffer[] = [];
  for (let o = 0; o < all.length; o += CHUNK_BYTES) chunks.push(all.subarray(o, o + CHUNK_BYTES));
  return { chunks, bytes: all.length, frameBytes: frame.length };
}

interface Row {
  name: string;
  ms: number;
  bytes: number;
  frames: number;
}
const rows: Row[] = [];

/**
 * Times every case of a group RUNS times, round-robin (so GC and allocator
 * state are shared fairly), after one warm-up each; keeps each case's best.
 * A case returns the number of frames it saw, which must be `count`.
 */
function measure(label: string, msg: Message, count: number, allocBaseline = false): void {
  const { chunks, bytes, frameBytes } = stream(msg, count);
  const sink = Buffer.allocUnsafe(bytes);
  const cases: [string, () => number][] = [
    [
      'Buffer.copy baseline',
      () => {
        let o = 0;
        for (const c of chunks) o += c.copy(sink, o);
        return count;
      },
    ],
  ];
  if (allocBaseline) {
    // The decoder's one copy of a big payload goes into fresh memory: allocUnsafe + copy per frame is its floor.
    cases.push([
      'allocUnsafe + Buffer.copy baseline',
      () => {
        let o = 0;
        for (let f = 0; f < count; f++) {
          const out = Buffer.allocUnsafe(frameBytes);
          let filled = 0;
          while (filled < frameBytes) {
            const c = chunks[Math.floor(o / CHUNK_BYTES)]!;
            const start = o % CHUNK_BYTES;
            const n = Math.min(c.length - start, frameBytes - filled);
            c.copy(out, filled, start, start + n);
            filled += n;
            o += n;
          }
        }
        return count;
      },
    ]);
  }
  cases.push(
    [
      'FrameDecoder',
      () => {
        const d = new FrameDecoder();
        let n = 0;
        for (const c of chunks) n += d.push(c).length;
        return n;
      },
    ],
    [
      'FrameDecoder + decodeMessage',
      () => {
        const d = new FrameDecoder();
        let n = 0;
        for (const c of chunks) {
          const frames = d.push(c);
          for (let i = 0; i < frames.length; i++) if (decodeMessage(frames[i]!).type !== msg.type) throw new Error('bad');
          n += frames.length;
        }
        return n;
      },
    ],
    [
      'MessageDecoder',
      () => {
        const d = new MessageDecoder();
        let n = 0;
        for (const c of chunks) n += d.push(c).length;
        return n;
      },
    ],
  );
  const bestMs = cases.map(() => Infinity);
  for (let run = -1; run < RUNS; run++) {
    cases.forEach(([, fn], i) => {
      const t = process.hrtime.bigint();
      const n = fn();
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (n !== count) throw new Error(`${label} ${cases[i]![0]}: ${n} frames, expected ${count}`);
      if (run >= 0) bestMs[i] = Math.min(bestMs[i]!, ms); // run -1 is the warm-up
    });
  }
  cases.forEach(([name], i) => rows.push({ name: `${label}: ${name}`, ms: bestMs[i]!, bytes, frames: count }));
  process.stderr.write(`${label}: ${count} frames of ${frameBytes} bytes, ${(bytes / 2 ** 20).toFixed(1)} MiB in ${chunks.length} chunks\n`);
}

measure(
  'small',
  { type: 'ASSIGN', jobId: 123_456, attempt: 1, timeoutMs: 10_000, kind: 'sha256', args: Buffer.from('job-1'.padEnd(32, '.')) },
  SMALL_FRAMES,
);
measure('large', { type: 'RESULT', jobId: 1, attempt: 1, result: Buffer.alloc(1024 * 1024 - 12, 0x61) }, LARGE_FRAMES, true);

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const header = ['case', 'MB/s', 'frames/s', 'ms'];
const table = rows.map((r) => [r.name, fmt(r.bytes / 1e6 / (r.ms / 1000)), fmt(r.frames / (r.ms / 1000)), fmt(r.ms, 1)]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(`node ${process.version}, ${CHUNK_BYTES}-byte chunks, best of ${RUNS}`);
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of table) console.log(line(row));
