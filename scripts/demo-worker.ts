/**
 * The demo's third worker: taskwire embedded in a program that registers its
 * own job kind. `report` stands for a slow job whose first attempt hangs
 * (say, a stuck upstream call): the scheduler times it out, the handler sees
 * `ctx.signal` abort and stops, and the retry succeeds.
 *
 * Usage: tsx scripts/demo-worker.ts HOST:PORT NAME
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from '../src/worker.js';

const [server = '127.0.0.1:9001', name = 'W3'] = process.argv.slice(2);

const worker = new Worker({ server, name, capabilities: ['report', 'sha256'], concurrency: 2 });
worker.handle('report', async (args, ctx) => {
  ctx.progress(10, 'collecting');
  if (ctx.attempt === 1) {
    // Hangs until the scheduler's timeout aborts it.
    await new Promise<never>((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => reject(new Error('stopped: attempt abandoned')), { once: true });
    });
  }
  await sleep(20, undefined, { signal: ctx.signal });
  ctx.progress(100, 'written');
  return `report for ${args.toString('utf8')} (attempt ${ctx.attempt})`;
});
worker.once('ready', () => process.stdout.write(`taskwire worker ${name} connected to ${server}\n`));
process.on('SIGTERM', () => {
  void worker.drain().then(() => process.exit(0));
});
void worker.start();
