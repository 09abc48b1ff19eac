import { describe, expect, it } from 'vitest';
import { decodeAll, encode } from '../../src/lib/protocol.js';

describe('protocol smoke', () => {
  it('round-trips a SUBMIT', () => {
    const msg = {
      type: 'SUBMIT', requestId: 7, kind: 'sha256', args: Buffer.from('Hello'), priority: 3,
      timeoutMs: 0, maxRetries: 2, estMs: 5, delayMs: 0, key: 'k', wait: true, progress: false,
    } as const;
    expect(decodeAll(encode(msg))).toEqual([msg]);
  });
});
