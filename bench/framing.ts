/**
 * The baseline's own framing: `[u8 command][u32 BE length][payload]`, the
 * same bytes as taskwire's, but only scanned for frame boundaries (no
 * objects per frame). Deliberately independent of src/lib/protocol.ts, so
 * the baseline does not move when taskwire's decoder changes.
 */

/** Header bytes of a frame. */
export const HEADER = 5;

/**
 * Splits a byte stream at frame boundaries. `push` returns the complete
 * frames of the stream so far as one buffer (a view when possible) and how
 * many frames it holds; a partial frame waits for the next chunk.
 */
export class FrameScanner {
  #tail: Buffer | undefined;

  push(chunk: Buffer): { frames: number; bytes: Buffer } {
    const buf = this.#tail === undefined ? chunk : Buffer.concat([this.#tail, chunk]);
    let o = 0;
    let frames = 0;
    while (buf.length - o >= HEADER) {
      const end = o + HEADER + buf.readUInt32BE(o + 1);
      if (end > buf.length) break;
      o = end;
      frames++;
    }
    this.#tail = o === buf.length ? undefined : Buffer.from(buf.subarray(o));
    return { frames, bytes: buf.subarray(0, o) };
  }
}

/** One frame with `payloadBytes` bytes of `fill`. */
export function makeFrame(command: number, payloadBytes: number, fill: number): Buffer {
  const f = Buffer.alloc(HEADER + payloadBytes, fill);
  f[0] = command;
  f.writeUInt32BE(payloadBytes, 1);
  return f;
}
