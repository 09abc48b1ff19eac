/**
 * The baseline peer of `npm run bench`: a raw TCP echo of framed messages.
 * It cuts the stream at frame boundaries (taskwire's 5-byte header framing,
 * bench/framing.ts) and sends the complete frames of each read back in one
 * write — the least any taskwire hop has to do, with nothing else.
 *
 * Prints `echo listening on HOST:PORT` once ready.
 */
import { createServer } from 'node:net';
import { FrameScanner } from './framing.js';

const server = createServer((socket) => {
  socket.setNoDelay(true);
  const scanner = new FrameScanner();
  socket.on('data', (chunk: Buffer) => {
    const { frames, bytes } = scanner.push(chunk);
    // A copy, as a real peer builds its own answer frames.
    if (frames > 0) socket.write(Buffer.from(bytes));
  });
  socket.on('error', () => socket.destroy());
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  process.stdout.write(`echo listening on 127.0.0.1:${addr.port}\n`);
});
