/**
 * What the latency measurements share (bench.ts, relay-floor.ts,
 * beanstalkd-latency.ts): the job inputs, and the sequential
 * submit-and-wait loop with its warm-up, checks and CPU accounting, so the
 * three systems are measured by exactly the same loop.
 */
import { hash } from 'node:crypto';
import { cpuOf } from './procs.js';
import { percentiles, round, type Percentiles } from './stats.js';

const PAD = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A `bytes`-long ASCII job input, distinct per `i`: `bench:<i>:` padded with a fixed pattern. */
export function makeInput(i: number, bytes: number): string {
  const head = `bench:${i}:`;
  if (head.length >= bytes) return head;
  return head + PAD.repeat(Math.ceil((bytes - head.length) / PAD.length)).slice(0, bytes - head.length);
}

export interface SequentialResult {
  us: Percentiles;
  verified: number;
  /** CPU µs per measured round trip: this process as `producer`, and each of `peers` by name (null without a pid). */
  cpuUsPerRoundTrip: Record<string, number | null>;
}

/**
 * `warmup` unmeasured round trips of one input, then `n` measured ones of
 * distinct inputs, one at a time; every answer must be the input's sha256
 * hex (a wrong warm-up answer throws, a wrong measured one is not counted as
 * verified). `peers` are the other processes whose CPU time to report.
 */
export async function sequentialLoop(
  roundTrip: (input: string) => Promise<string>,
  opts: { warmup: number; n: number; payloadBytes: number },
  peers: Record<string, number | undefined>,
): Promise<SequentialResult> {
  const warmInput = makeInput(7, opts.payloadBytes);
  const warmExpected = hash('sha256', warmInput, 'hex');
  for (let i = 0; i < opts.warmup; i++) {
    const r = await roundTrip(warmInput);
    if (r !== warmExpected) throw new Error(`warm-up: wrong result ${r}`);
  }
  const inputs = Array.from({ length: opts.n }, (_, i) => makeInput(i, opts.payloadBytes));
  const expected = inputs.map((s) => hash('sha256', s, 'hex'));
  const samples = new Float64Array(opts.n);
  let verified = 0;
  const names = Object.keys(peers);
  const before = names.map((name) => (peers[name] === undefined ? undefined : cpuOf(peers[name]!)));
  const self0 = process.cpuUsage();
  for (let i = 0; i < opts.n; i++) {
    const t0 = process.hrtime.bigint();
    const r = await roundTrip(inputs[i]!);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
    if (r === expected[i]) verified++;
  }
  const self = process.cpuUsage(self0);
  const cpuUsPerRoundTrip: Record<string, number | null> = { producer: round((self.user + self.system) / opts.n, 3) };
  names.forEach((name, i) => {
    const a = before[i];
    if (a === undefined) {
      cpuUsPerRoundTrip[name] = null;
      return;
    }
    const b = cpuOf(peers[name]!);
    cpuUsPerRoundTrip[name] = round(((b.userMs + b.sysMs - a.userMs - a.sysMs) * 1000) / opts.n, 3);
  });
  return { us: percentiles(samples), verified, cpuUsPerRoundTrip };
}
