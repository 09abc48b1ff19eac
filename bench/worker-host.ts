/**
 * The scale phase's worker host: many worker connections in one process.
 * Issue 9's 128 worker connections as 128 Node processes would swamp a small
 * machine's memory and take seconds to start; a few hosts of many
 * connections each put the same load on the scheduler. Each connection is a
 * library `Worker` set up as `taskwire-worker -c sha256 --log-level error`
 * sets up its one: the built-in sha256 handler, the default concurrency and
 * prefetch, errors to stderr.
 *
 * Arguments: `HOST:PORT CONNECTIONS NAME [CA]` (with a CA file: TLS, verified
 * against it, like `--tls --tls-ca CA`). Connections are named NAME-1 ... NAME-N.
 * Prints `worker host NAME ready: N connections` once every one is connected.
 */
import { readFileSync } from 'node:fs';
import { Worker, type WorkerOptions } from '../src/worker.js';

const [server, countArg, name, ca] = process.argv.slice(2);
const count = Number(countArg);
if (server === undefined || name === undefined || !Number.isInteger(count) || count < 1) {
  process.stderr.write('usage: worker-host.ts HOST:PORT CONNECTIONS NAME [CA]\n');
  process.exit(2);
}
const log = (line: string): void => void process.stderr.write(line + '\n');
const workers = Array.from({ length: count }, (_, i) => {
  const opts: WorkerOptions = { server, name: `${name}-${i + 1}`, capabilities: ['sha256'], log, logLevel: 'error' };
  if (ca !== undefined) opts.tls = { ca: readFileSync(ca) };
  return new Worker(opts);
});
// A refusal after start() resolved (a reconnect refused): the figures would be short of connections.
for (const w of workers) {
  w.on('error', (err) => {
    log(`${w.name}: ${err.message}`);
    process.exit(1);
  });
}
await Promise.all(workers.map((w) => w.start()));
process.stdout.write(`worker host ${name} ready: ${count} connections\n`);
// exit() writes a --cpu-prof profile; the bench sends SIGTERM for that with --profile.
process.on('SIGTERM', () => void Promise.all(workers.map((w) => w.destroy())).then(() => process.exit(0)));
