/**
 * A worker process that never judges the scheduler: it sends a HEARTBEAT
 * every 20 ms whatever happens and answers each ASSIGN with the args'
 * sha256 after `HOLD_MS`. For tests where the scheduler's own process
 * stalls (only the scheduler's judgement is under test).
 * Usage: tsx test/helpers/chatty-worker.ts PORT HOLD_MS
 */
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { encode, MessageDecoder, PROTOCOL_VERSION } from '../../src/lib/protocol.js';

const port = Number(process.argv[2]);
const holdMs = Number(process.argv[3] ?? 0);
const socket = connect(port, '127.0.0.1');
const decoder = new MessageDecoder();
socket.on('connect', () => {
  socket.write(encode({ type: 'HELLO', version: PROTOCOL_VERSION, role: 'worker', name: 'chatty', capabilities: ['sha256'], concurrency: 1 }));
  setInterval(() => socket.write(encode({ type: 'HEARTBEAT', running: 0 })), 20);
});
socket.on('data', (chunk: Buffer) => {
  for (const m of decoder.push(chunk)) {
    if (m.type === 'WELCOME') process.stdout.write('connected\n');
    if (m.type === 'ASSIGN') {
      const result = Buffer.from(createHash('sha256').update(m.args).digest('hex'));
      setTimeout(() => socket.write(encode({ type: 'RESULT', jobId: m.jobId, attempt: m.attempt, result })), holdMs);
    }
  }
});
socket.on('close', () => process.exit(0));
