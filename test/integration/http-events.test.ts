/**
 * `GET /api/events` (issue 10): job changes after they are durable, worker
 * joins and leaves, a stats tick, a bounded ring (overflow reported as
 * `lost`), a subscriber cap, and a subscriber that does not read is
 * dropped instead of growing the server's memory.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { call, SseReader, startHttpScheduler, startWorker } from '../helpers/http.js';
import { tempDir } from '../helpers/journal.js';
import { connectClient } from '../helpers/scheduler.js';
import { waitFor } from '../helpers/wait.js';

type Row = [number, string, string, number];

function rows(reader: SseReader): Row[] {
  return reader.events.filter((e) => e.event === 'jobs').flatMap((e) => JSON.parse(e.data) as Row[]);
}

describe('GET /api/events', () => {
  it('streams job changes (durable ones only), worker joins and leaves, and a stats tick', async () => {
    const dir = await tempDir();
    const { base, address } = await startHttpScheduler({ dataDir: dir, http: { statsIntervalMs: 50, events: { flushMs: 20 } } });
    const reader = await SseReader.open(base);
    expect(reader.response.headers['content-type']).toMatch(/^text\/event-stream/);
    const hello = await reader.waitFor((e) => e.event === 'hello', 'hello');
    expect(JSON.parse(hello.data)).toMatchObject({ tokenRequired: false, ready: true });
    const worker = await startWorker(address, { name: 'ev-w', capabilities: ['add'] });
    await reader.waitFor((e) => e.event === 'workers' && e.data.includes('"joined"') && e.data.includes('ev-w'), 'worker joined');
    const job = await call<{ id: number }>(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'add', args: [1, 2] } });
    await waitFor(() => rows(reader).some((r) => r[0] === job.json.id && r[2] === 'DONE'), 'DONE row');
    expect(rows(reader).filter((r) => r[0] === job.json.id).map((r) => r[2])).toEqual(['QUEUED', 'RUNNING', 'DONE']);
    const tick = await reader.waitFor((e) => e.event === 'stats' && (JSON.parse(e.data) as { totals: { submitted: number } }).totals.submitted === 1, 'stats tick');
    expect(JSON.parse(tick.data)).toMatchObject({ connections: { workers: 1 }, slots: { total: 4 }, ready: { ready: true }, kinds: [{ kind: 'add', done: 1 }] });
    await worker.destroy();
    await reader.waitFor((e) => e.event === 'workers' && e.data.includes('"left"'), 'worker left');
  });

  it('reports an overflow of its ring as "lost" instead of growing', async () => {
    const { base, address } = await startHttpScheduler({ http: { events: { ringSize: 16, flushMs: 200 } } });
    const reader = await SseReader.open(base);
    await reader.waitFor((e) => e.event === 'hello', 'hello');
    const client = await connectClient(address);
    await client.enqueueMany(Array.from({ length: 100 }, (_, i) => ({ kind: 'bulk', args: String(i) })));
    await reader.waitFor((e) => e.event === 'lost', 'lost');
    const lost = (): number => reader.events.filter((e) => e.event === 'lost').reduce((n, e) => n + (JSON.parse(e.data) as { jobs: number }).jobs, 0);
    await waitFor(() => lost() + rows(reader).length === 100, 'every event sent or counted as lost');
    expect(rows(reader).length).toBeLessThanOrEqual(32); // at most a ring per flush
    expect(rows(reader).at(-1)![0]).toBe(100); // the newest are kept
  });

  it('caps subscribers and drops one that does not read', async () => {
    const { base, address, httpPort } = await startHttpScheduler({
      http: { statsIntervalMs: 10, events: { maxSubscribers: 2, maxBufferedBytes: 64 * 1024, flushMs: 10 } },
    });
    // A subscriber that never reads its socket.
    const stalled = connect(httpPort, '127.0.0.1');
    await once(stalled, 'connect');
    stalled.write('GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    stalled.pause();
    const reader = await SseReader.open(base);
    const third = await call(base, 'GET', '/api/events');
    expect([third.status, (third.json as { error: { code: string } }).error.code]).toEqual([429, 'LIMIT_EXCEEDED']);
    // Lots of events, made large by long kind names (in every job row and stats tick), until
    // the kernel's buffers are full and bytes wait in the server for the stalled one.
    const client = await connectClient(address);
    const closed = once(stalled, 'close');
    const long = 'k'.repeat(200);
    for (let round = 0; ; round++) {
      await client.enqueueMany(Array.from({ length: 2000 }, (_, i) => ({ kind: `${long}${(round * 2000 + i) % 200}`, args: String(i) })));
      const m = await (await fetch(`${base}/metrics`)).text();
      if (stalled.destroyed || /^taskwire_events_subscribers_dropped_total [1-9]/m.test(m)) break;
      if (round > 50) throw new Error('the stalled subscriber was never dropped');
    }
    // The server cut it: reading again, the stalled client finds the end of the stream.
    stalled.resume();
    await closed;
    // (The reading subscriber lives in this busy test process and may be dropped too: not asserted.)
    const again = await SseReader.open(base); // a slot is free again, and events flow to it
    await again.waitFor((e) => e.event === 'stats', 'stats');
  });
});
