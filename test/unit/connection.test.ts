import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/lib/connection.js';
import { encode, type Message } from '../../src/lib/protocol.js';

const open: Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.destroy();
});

/** A loopback socket pair on port 0: [ours, theirs]. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const theirs = connect(port, '127.0.0.1');
  const [ours] = await accepted;
  server.close();
  open.push(ours, theirs);
  return [ours, theirs];
}

/** Reads exactly `n` bytes from `socket`. */
async function read(socket: Socket, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    chunks.push(chunk);
    got += chunk.length;
  }
  return Buffer.concat(chunks);
}

describe('Connection hot-path senders (issue 9)', () => {
  it('write exactly the frames send() writes for the same messages, in call order, small and large', async () => {
    const [ours, theirs] = await socketPair();
    const conn = new Connection(ours, { onMessage: () => {}, onClose: () => {} });
    const smallArgs = Buffer.from([0x00, 0x7f, 0x80, 0xe9, 0xff]);
    const bigArgs = Buffer.alloc(20_000, 0xfe); // past the batch buffer: the fallback path
    const bigText = 'é'.repeat(9_000);
    const expected: Message[] = [
      { type: 'ACK', requestId: 1, jobId: 10, existing: false },
      { type: 'ASSIGN', jobId: 10, attempt: 1, timeoutMs: 30_000, kind: 'sha256', args: smallArgs },
      { type: 'RESULT', jobId: 10, attempt: 1, result: Buffer.from('d✓ne') },
      { type: 'HEARTBEAT', running: 3 },
      { type: 'EVENT', jobId: 10, event: 'done', attempt: 1, pct: 0, permanent: false, data: Buffer.from('abc') },
      { type: 'ASSIGN', jobId: 11, attempt: 2, timeoutMs: 5, kind: 'k', args: bigArgs },
      { type: 'RESULT', jobId: 11, attempt: 2, result: Buffer.from(bigText) },
      { type: 'EVENT', jobId: 12, event: 'failed', attempt: 3, pct: 0, permanent: true, data: Buffer.alloc(10_000, 0x61) },
    ];
    conn.sendAck(1, 10, false);
    conn.sendAssign(10, 1, 30_000, 'sha256', smallArgs.toString('latin1'));
    conn.sendResult(10, 1, 'd✓ne', Buffer.byteLength('d✓ne'));
    conn.send({ type: 'HEARTBEAT', running: 3 });
    conn.sendEvent(10, 'done', 1, 0, false, Buffer.from('abc'));
    conn.sendAssign(11, 2, 5, 'k', bigArgs.toString('latin1'));
    conn.sendResult(11, 2, bigText, Buffer.byteLength(bigText));
    conn.sendEvent(12, 'failed', 3, 0, true, Buffer.alloc(10_000, 0x61));
    const want = Buffer.concat(expected.map((m) => encode(m)));
    const got = await read(theirs, want.length);
    expect(got.length).toBe(want.length);
    expect(got.equals(want)).toBe(true);
  });

  it('an invalid field throws before anything is queued, and the frames around it still go out', async () => {
    const [ours, theirs] = await socketPair();
    const conn = new Connection(ours, { onMessage: () => {}, onClose: () => {} });
    conn.sendAck(1, 1, true);
    expect(() => conn.sendAssign(-1, 1, 0, 'k', 'x')).toThrow(/job id/);
    expect(() => conn.sendResult(1, 2 ** 32, 'x', 1)).toThrow(/attempt/);
    conn.sendAck(2, 2, false);
    const want = Buffer.concat([encode({ type: 'ACK', requestId: 1, jobId: 1, existing: true }), encode({ type: 'ACK', requestId: 2, jobId: 2, existing: false })]);
    expect((await read(theirs, want.length)).equals(want)).toBe(true);
  });
});
