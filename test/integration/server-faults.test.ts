import { describe, expect, it } from 'vitest';
import { Command, DEFAULT_RETRIES, type SubmitMessage } from '../../src/lib/protocol.js';
import { rawConnect, type RawPeer } from '../helpers/raw.js';
import { startScheduler } from '../helpers/scheduler.js';

const submit = (requestId: number, args: string): SubmitMessage => ({
  type: 'SUBMIT', requestId, kind: 'echo', args: Buffer.from(args), priority: 0, timeoutMs: 0,
  maxRetries: DEFAULT_RETRIES, estMs: 0, delayMs: 0, key: '', wait: true, progress: false,
});

/** A well-behaved client and worker pair that keeps jobs flowing while a bad peer misbehaves. */
async function healthyPair(port: number) {
  const worker = await rawConnect(port);
  worker.hello('worker', { capabilities: ['echo'], concurrency: 4 });
  await worker.waitFor('WELCOME');
  worker.socket.on('data', () => {
    for (const m of worker.messages.splice(0)) {
      if (m.type === 'ASSIGN') worker.send({ type: 'RESULT', jobId: m.jobId, attempt: m.attempt, result: m.args });
    }
  });
  const client = await rawConnect(port);
  client.hello('client');
  await client.waitFor('WELCOME');
  return { client, worker };
}

async function roundTrip(client: RawPeer, requestId: number): Promise<void> {
  client.send(submit(requestId, `job-${requestId}`));
  const ack = await client.waitFor('ACK', (m) => m.requestId === requestId);
  const event = await client.waitFor('EVENT', (m) => m.jobId === ack.jobId);
  expect(event.event).toBe('done');
  expect(event.data.toString()).toBe(`job-${requestId}`);
}

describe('scheduler: bad peers are closed with an ERROR, everyone else carries on', () => {
  const cases: [string, (bad: RawPeer) => void, string][] = [
    // 'G' then "ET /" read as a length of 1.1 GB.
    ['an HTTP request', (bad) => bad.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), 'FRAME_TOO_LARGE'],
    ['garbage bytes', (bad) => bad.socket.write(Buffer.from([0xde, 0, 0, 0, 3, 0xad, 0xbe, 0xef])), 'UNKNOWN_COMMAND'],
    ['an oversized length header', (bad) => bad.socket.write(Buffer.from([Command.SUBMIT, 0xff, 0xff, 0xff, 0xff])), 'FRAME_TOO_LARGE'],
    ['an unknown command', (bad) => bad.socket.write(Buffer.from([0x6e, 0, 0, 0, 0])), 'UNKNOWN_COMMAND'],
    ['a truncated payload', (bad) => bad.socket.write(Buffer.from([Command.STATUS, 0, 0, 0, 2, 0, 1])), 'TRUNCATED_PAYLOAD'],
    ['a SUBMIT before HELLO', (bad) => bad.send(submit(1, 'x')), 'BAD_HANDSHAKE'],
    ['a wrong protocol version', (bad) => bad.hello('client', { version: 99 }), 'BAD_VERSION'],
  ];
  for (const [name, misbehave, code] of cases) {
    it(`${name} -> ERROR ${code}`, async () => {
      const { port } = await startScheduler();
      const { client } = await healthyPair(port);
      await roundTrip(client, 1);
      const bad = await rawConnect(port);
      misbehave(bad);
      const error = await bad.waitFor('ERROR');
      expect(error).toMatchObject({ requestId: 0, code });
      await bad.waitClosed();
      await roundTrip(client, 2);
    });
  }

  it('closes a connection that never says HELLO', async () => {
    const { port } = await startScheduler({ helloTimeoutMs: 200 });
    const { client } = await healthyPair(port);
    const silent = await rawConnect(port);
    const error = await silent.waitFor('ERROR');
    expect(error.code).toBe('BAD_HANDSHAKE');
    await silent.waitClosed();
    await roundTrip(client, 1);
  });

  it('closes a peer that sends half a frame and hangs, by heartbeat', async () => {
    const { port } = await startScheduler({ heartbeatMs: 50 });
    const { client } = await healthyPair(port);
    const hung = await rawConnect(port);
    hung.autoPong = false;
    hung.hello('client');
    await hung.waitFor('WELCOME');
    hung.socket.write(Buffer.from([Command.SUBMIT, 0, 0, 0, 40, 1, 2]));
    const error = await hung.waitFor('ERROR');
    expect(error.code).toBe('HEARTBEAT_TIMEOUT');
    await roundTrip(client, 1);
  });

  it('refuses a wrong token with AUTH_FAILED', async () => {
    const { port } = await startScheduler({ token: 'sesame' });
    const bad = await rawConnect(port);
    bad.hello('client', { token: 'guess' });
    expect((await bad.waitFor('ERROR')).code).toBe('AUTH_FAILED');
    const good = await rawConnect(port);
    good.hello('client', { token: 'sesame' });
    await good.waitFor('WELCOME');
  });
});
