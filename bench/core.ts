/**
 * Microbenchmark of the scheduler's state machine alone (no sockets, no
 * codec): SUBMIT -> ASSIGN -> RESULT -> EVENT through SchedulerCore with
 * fake peers, in ns per job. A quick check of a change to
 * src/lib/scheduler-core.ts before the end-to-end `npm run bench`.
 *
 *   npx tsx bench/core.ts [--n 1000000] [--window 10000] [--concurrency 128]
 */
import { parseArgs } from 'node:util';
import type { AssignMessage, Message } from '../src/lib/protocol.js';
import { SchedulerCore, type Peer } from '../src/lib/scheduler-core.js';

const { values } = parseArgs({ options: { n: { type: 'string' }, window: { type: 'string' }, concurrency: { type: 'string' } } });
const N = Number(values.n ?? 1_000_000);
const WINDOW = Number(values.window ?? 10_000);
const CONCURRENCY = Number(values.concurrency ?? 128);

class FakePeer implements Peer {
  writableLength = 0;
  assigns: AssignMessage[] = [];
  acks = 0;
  events = 0;
  send(msg: Message): void {
    if (msg.type === 'ASSIGN') this.assigns.push(msg);
    else if (msg.type === 'ACK') this.acks++;
    else if (msg.type === 'EVENT') this.events++;
  }
}

function run(n: number): number {
  const core = new SchedulerCore({ retainCount: 100_000 });
  const clientPeer = new FakePeer();
  const workerPeer = new FakePeer();
  const client = core.openClient('c1', 'bench', clientPeer);
  const worker = core.openWorker(
    'w1',
    { type: 'HELLO', version: 1, role: 'worker', name: 'w1', capabilities: ['sha256'], concurrency: CONCURRENCY },
    workerPeer,
  );
  const args = Buffer.from('bench:123456:abcdefghijklmnopqrstu');
  const result = Buffer.alloc(64, 0x61);
  let submitted = 0;
  let requestId = 1;
  const t0 = process.hrtime.bigint();
  while (clientPeer.events < n) {
    // The client keeps WINDOW jobs in flight; the worker answers what it was given.
    while (submitted < n && submitted - clientPeer.events < WINDOW) {
      core.handleClient(client, {
        type: 'SUBMIT', requestId: requestId++, kind: 'sha256', args, priority: 0, timeoutMs: 0,
        maxRetries: 0xffff, estMs: 0, delayMs: 0, key: '', wait: true, progress: false,
      });
      submitted++;
    }
    const assigns = workerPeer.assigns;
    workerPeer.assigns = [];
    for (const a of assigns) core.handleWorker(worker, { type: 'RESULT', jobId: a.jobId, attempt: a.attempt, result });
  }
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (clientPeer.acks !== n) throw new Error(`acks ${clientPeer.acks} != ${n}`);
  return ns;
}

run(Math.min(N, 200_000)); // warm-up
for (let i = 0; i < 3; i++) process.stdout.write(`core: ${run(N).toFixed(0)} ns/job (submit, assign, result, event)\n`);
