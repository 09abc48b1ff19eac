/**
 * Input lines of `taskwire submit --file`, as bytes. A line is exactly the
 * bytes between two `\n` (0x0A): nothing is decoded, so invalid UTF-8
 * reaches the job unchanged, and a trailing `\r` is kept, as `sha256sum`
 * would keep it. Memory is bounded: at most one line (up to `maxLineBytes`)
 * is held beyond the chunk being read; a longer line is reported as such and
 * skipped, never buffered.
 */
import { open } from 'node:fs/promises';

/** One line of input. */
export interface InputLine {
  /** 1-based line number in the input. */
  number: number;
  /**
   * The line's bytes without its `\n`. A view into the read chunk: valid
   * until the next line is requested (copy it to keep it). Empty when
   * `tooLong` is set.
   */
  bytes: Buffer;
  /** The line was longer than `maxLineBytes` (its length so far is `length`); it was skipped. */
  tooLong: boolean;
  /** Length of the line in bytes (whole, even when skipped). */
  length: number;
}

const EMPTY = Buffer.alloc(0);

/**
 * Splits a byte stream into lines. The final line need not end with `\n`;
 * an input ending with `\n` has no empty last line.
 * @example
 * for await (const line of readLines(process.stdin, 1 << 20)) console.log(line.number, line.bytes.length);
 */
export async function* readLines(input: AsyncIterable<Buffer | string>, maxLineBytes: number): AsyncGenerator<InputLine> {
  let parts: Buffer[] = [];
  let partBytes = 0;
  let length = 0; // of the current line, including skipped bytes
  let tooLong = false;
  let number = 0;
  for await (const raw of input) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      const piece = end - start;
      length += piece;
      if (!tooLong && length > maxLineBytes) {
        tooLong = true;
        parts = [];
        partBytes = 0;
      }
      if (nl < 0) {
        // Keep a copy of the unfinished line: the chunk itself is not pinned.
        if (!tooLong && piece > 0) {
          parts.push(Buffer.from(chunk.subarray(start, end)));
          partBytes += piece;
        }
        break;
      }
      number++;
      let bytes: Buffer;
      if (tooLong) bytes = EMPTY;
      else if (partBytes === 0) bytes = chunk.subarray(start, end);
      else {
        parts.push(chunk.subarray(start, end));
        bytes = Buffer.concat(parts, partBytes + piece); // once per line that spans chunks
      }
      yield { number, bytes, tooLong, length };
      parts = [];
      partBytes = 0;
      length = 0;
      tooLong = false;
      start = nl + 1;
    }
  }
  if (length > 0 || tooLong) {
    number++;
    const bytes = tooLong ? EMPTY : partBytes === 0 ? EMPTY : parts.length === 1 ? parts[0]! : Buffer.concat(parts, partBytes);
    yield { number, bytes, tooLong, length };
  }
}

/** True for a line with no content: empty, or a lone `\r` (a blank line of a CRLF file). Such lines are skipped. */
export function isBlank(bytes: Buffer): boolean {
  return bytes.length === 0 || (bytes.length === 1 && bytes[0] === 13);
}

/**
 * Counts the non-blank lines of a file by reading it once in 1 MiB blocks
 * (constant memory), for a progress bar that knows its total. Returns
 * undefined if the file cannot be read as a regular file (a FIFO, /dev/stdin).
 */
export async function countLines(path: string, signal?: AbortSignal): Promise<number | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
    if (!(await handle.stat()).isFile()) return undefined;
    const block = Buffer.allocUnsafe(1 << 20);
    let count = 0;
    let lineBytes = 0; // of the current line so far
    let lastByte = -1; // the current line's last byte, if it has one
    for (;;) {
      if (signal?.aborted === true) return undefined;
      const { bytesRead } = await handle.read(block, 0, block.length, null);
      if (bytesRead === 0) break;
      const view = block.subarray(0, bytesRead);
      let start = 0;
      for (;;) {
        const nl = view.indexOf(10, start);
        if (nl < 0) {
          if (bytesRead > start) {
            lineBytes += bytesRead - start;
            lastByte = view[bytesRead - 1]!;
          }
          break;
        }
        const n = lineBytes + (nl - start);
        const last = nl > start ? view[nl - 1]! : lastByte;
        if (n > 1 || (n === 1 && last !== 13)) count++;
        lineBytes = 0;
        lastByte = -1;
        start = nl + 1;
      }
    }
    if (lineBytes > 1 || (lineBytes === 1 && lastByte !== 13)) count++;
    return count;
  } catch {
    return undefined;
  } finally {
    await handle?.close();
  }
}
