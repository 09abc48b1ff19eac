/**
 * A bare-bones sha256 worker for the benchmark (`--worker-script
 * bench/mini-worker.ts`): the protocol and nothing else — no handler
 * registry, no AbortSignals, no reconnects. It bounds what the real worker
 * (src/worker.ts) costs on top of the wire, and lets the scheduler and the
 * client be profiled on their own. Same command line and ready line as
 * `taskwire-worker`:
 *
 *   node --import tsx bench/mini-worker.ts --server H:P --name W -c sha256 --concurrency N [--tls --tls-ca FILE]
 */
import { hash } from 'node:crypto';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { parseAddress } from '../src/lib/cli.js';
import { Connection } from '../src/lib/connection.js';
import { PROTOCOL_VERSION, type Message } from '../src/lib/protocol.js';
import { connectTls, tlsFromFiles } from '../src/lib/tls.js';

const { values } = parseArgs({
  options: {
    server: { type: 'string' },
    name: { type: 'string' },
    c: { type: 'string', short: 'c' },
    concurrency: { type: 'string' },
    'log-level': { type: 'string' }, // accepted for the same command line; this worker logs errors only
    tls: { type: 'boolean' },
    'tls-ca': { type: 'string' },
  },
});
const { host, port } = parseAddress(values.server ?? '127.0.0.1:9001');
const name = values.name ?? 'mini-worker';
const concurrency = Number(values.concurrency ?? 64);

const tlsCa = values['tls-ca'];
const socket = values.tls === true ? connectTls(host, port, tlsFromFiles(tlsCa === undefined ? {} : { ca: tlsCa })) : connect({ host, port });
let running = 0;
const conn = new Connection(socket, {
  onMessage(msg: Message) {
    switch (msg.type) {
      case 'WELCOME':
        conn.startHeartbeat(msg.heartbeatMs, () => running);
        process.stdout.write(`taskwire worker ${name} connected to ${host}:${port}\n`);
        return;
      case 'ASSIGN': {
        const result = Buffer.from(hash('sha256', msg.args, 'hex'), 'latin1');
        conn.send({ type: 'RESULT', jobId: msg.jobId, attempt: msg.attempt, result });
        return;
      }
      case 'ABANDON':
        return; // answered already: every job finishes synchronously
      case 'ERROR':
        process.stderr.write(`mini-worker: ${msg.code}: ${msg.message}\n`);
        return;
      default:
        return;
    }
  },
  onClose(err) {
    if (err !== undefined) process.stderr.write(`mini-worker: closed: ${err.message}\n`);
    process.exit(0);
  },
});
conn.send({ type: 'HELLO', version: PROTOCOL_VERSION, role: 'worker', name, capabilities: [values.c ?? 'sha256'], concurrency });
process.on('SIGTERM', () => process.exit(0));
