/**
 * The HTTP API over real sockets (issue 10, docs/HTTP.md): every endpoint,
 * its error cases with their stable codes, the token rules, the bounds, and
 * the durability rule (an HTTP answer shows only what the journal stored).
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/lib/errors.js';
import { ROUTES } from '../../src/lib/http/http-server.js';
import { undocumentedRoutes } from '../../src/lib/http/openapi.js';
import { Scheduler } from '../../src/server.js';
import { call, startHttpScheduler, startWorker, type ErrorBody } from '../helpers/http.js';
import { tempDir } from '../helpers/journal.js';
import { spawnTs } from '../helpers/process.js';
import { connectClient } from '../helpers/scheduler.js';
import { waitFor } from '../helpers/wait.js';

interface JobBody {
  id: number;
  kind: string;
  state: string;
  attempts: number;
  worker?: string;
  error?: string;
  existing?: boolean;
  resultBytes?: number;
  result?: { bytes: number; text?: string; json?: unknown; base64?: string };
  args?: { bytes: number; text?: string; hex?: string; truncated: boolean } | null;
}
interface PageBody {
  jobs: JobBody[];
  total: number;
  next: number;
}

const code = (r: { json: unknown }): string | undefined => (r.json as ErrorBody | undefined)?.error?.code;

describe('HTTP API', () => {
  it('serves /health, /ready, /api/info and an OpenAPI 3.1 document naming every route', async () => {
    const { base } = await startHttpScheduler();
    expect((await call(base, 'GET', '/health')).status).toBe(200);
    const ready = await call(base, 'GET', '/ready');
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ ready: true });
    const info = await call(base, 'GET', '/api/info');
    expect(info.json).toMatchObject({ tokenRequired: false });
    const doc = await call<{ openapi: string; paths: Record<string, Record<string, unknown>> }>(base, 'GET', '/api/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.json.openapi).toBe('3.1.0');
    expect(undocumentedRoutes(ROUTES)).toEqual([]);
    for (const r of ROUTES) {
      expect(doc.json.paths[r.path.replace(/:([a-z]+)/gi, '{$1}')]?.[r.method.toLowerCase()], `${r.method} ${r.path}`).toBeDefined();
    }
    const missing = await call(base, 'GET', '/api/nope');
    expect([missing.status, code(missing)]).toEqual([404, 'NOT_FOUND']);
    const method = await call(base, 'PUT', '/api/jobs');
    expect([method.status, code(method)]).toEqual([405, 'INVALID_ARGUMENT']);
    expect(method.headers.get('allow')).toBe('POST, GET');
  });

  it('submits (201 once acknowledged), waits for the outcome, looks up, lists with paging, and reads results', async () => {
    const { base, address } = await startHttpScheduler();
    await startWorker(address, { capabilities: ['add', 'sha256', 'echo'] }, { echo: (args) => args });
    const done = await call<JobBody>(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'add', args: [2, 3] } });
    expect(done.status).toBe(201);
    expect(done.headers.get('location')).toBe(`/api/jobs/${done.json.id}`);
    expect(done.json).toMatchObject({ kind: 'add', state: 'DONE', attempts: 1, existing: false, result: { bytes: 1, text: '5', json: 5 }, args: null });

    // Raw bytes in, raw bytes out.
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe]);
    const bin = await call<JobBody>(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'echo', argsBase64: bytes.toString('base64') } });
    expect(bin.json.state).toBe('DONE');
    expect(bin.json.result).toEqual({ bytes: 5, base64: bytes.toString('base64') });
    const raw = await fetch(`${base}/api/jobs/${bin.json.id}/result`);
    expect(raw.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await raw.arrayBuffer())).toEqual(bytes);

    // An idempotency key answers 200 with the first job.
    const k1 = await call<JobBody>(base, 'POST', '/api/jobs', { body: { kind: 'sha256', args: 'abc', key: 'k-1' } });
    const k2 = await call<JobBody>(base, 'POST', '/api/jobs', { body: { kind: 'sha256', args: 'abc', key: 'k-1' } });
    expect([k1.status, k2.status, k2.json.id, k2.json.existing]).toEqual([201, 200, k1.json.id, true]);

    const one = await call<JobBody>(base, 'GET', `/api/jobs/${done.json.id}`);
    expect(one.json).toMatchObject({ id: done.json.id, state: 'DONE', result: { json: 5 } });
    const waited = await call<JobBody>(base, 'GET', `/api/jobs/${k1.json.id}?wait=5000`);
    expect(waited.json.state).toBe('DONE');

    for (let i = 0; i < 5; i++) await call(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'add', args: [i, i] } });
    const p1 = await call<PageBody>(base, 'GET', '/api/jobs?kind=add&limit=4');
    expect(p1.json.total).toBe(6);
    expect(p1.json.jobs.map((j) => j.id)).toEqual([...p1.json.jobs.map((j) => j.id)].sort((a, b) => b - a)); // newest first
    expect(p1.json.jobs).toHaveLength(4);
    expect(p1.json.jobs[0]).not.toHaveProperty('result'); // pages carry sizes, not results
    const p2 = await call<PageBody>(base, 'GET', `/api/jobs?kind=add&limit=4&after=${p1.json.next}`);
    expect(p2.json.jobs).toHaveLength(2);
    expect(p2.json.next).toBe(0);
    const oldest = await call<PageBody>(base, 'GET', '/api/jobs?kind=add&order=oldest&limit=1&state=DONE');
    expect(oldest.json.jobs[0]!.id).toBe(done.json.id);

    for (const bad of ['/api/jobs?state=DONNE', '/api/jobs?limit=1001', '/api/jobs?limit=x', '/api/jobs?order=up', '/api/jobs/abc', '/api/jobs/0']) {
      const r = await call(base, 'GET', bad);
      expect([bad, r.status, code(r)]).toEqual([bad, 400, 'INVALID_ARGUMENT']);
    }
    const unknown = await call(base, 'GET', '/api/jobs/999999');
    expect([unknown.status, code(unknown)]).toEqual([404, 'NOT_FOUND']);
    const notDone = await call<JobBody>(base, 'POST', '/api/jobs', { body: { kind: 'nobody-runs-this', args: 'x' } });
    const noResult = await call(base, 'GET', `/api/jobs/${notDone.json.id}/result`);
    expect([noResult.status, code(noResult)]).toEqual([409, 'INVALID_STATE']);
  });

  it('refuses bad submits with 4xx and the wire codes, never a crash', async () => {
    const { base, scheduler } = await startHttpScheduler({ http: { maxBodyBytes: 1024 }, maxQueued: 2 });
    const cases: [string, Parameters<typeof call>[3], number, string][] = [
      ['bad JSON', { raw: '{"kind":', headers: { 'content-type': 'application/json' } }, 400, 'INVALID_ARGUMENT'],
      ['not an object', { body: [1, 2] }, 400, 'INVALID_ARGUMENT'],
      ['no kind', { body: { args: 1 } }, 400, 'INVALID_ARGUMENT'],
      ['kind too long', { body: { kind: 'k'.repeat(256) } }, 400, 'INVALID_ARGUMENT'],
      ['priority out of range', { body: { kind: 'a', priority: 256 } }, 400, 'INVALID_ARGUMENT'],
      ['bad tier', { body: { kind: 'a', tier: 'gold' } }, 400, 'INVALID_ARGUMENT'],
      ['args and argsBase64', { body: { kind: 'a', args: 1, argsBase64: 'AA==' } }, 400, 'INVALID_ARGUMENT'],
      ['bad base64', { body: { kind: 'a', argsBase64: '@@@' } }, 400, 'INVALID_ARGUMENT'],
      ['not JSON content', { raw: 'kind=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, 'INVALID_ARGUMENT'],
      ['oversized body', { body: { kind: 'a', args: 'x'.repeat(2000) } }, 413, 'TOO_LARGE'],
    ];
    for (const [what, opts, status, c] of cases) {
      const r = await call(base, 'POST', '/api/jobs', opts);
      expect([what, r.status, code(r)]).toEqual([what, status, c]);
      expect(r.text).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    }
    // A chunked body that grows past the limit is cut too.
    const chunked = await fetch(`${base}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('{"kind":"a","args":"' + 'y'.repeat(4000) + '"}'));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(((await chunked.json()) as ErrorBody).error.code).toBe('TOO_LARGE');
    // Queue full: BUSY, 503 with Retry-After.
    await call(base, 'POST', '/api/jobs', { body: { kind: 'a' } });
    await call(base, 'POST', '/api/jobs', { body: { kind: 'a' } });
    const busy = await call(base, 'POST', '/api/jobs', { body: { kind: 'a' } });
    expect([busy.status, code(busy), busy.headers.get('retry-after')]).toEqual([503, 'BUSY', '1']);
    expect((await call(base, 'GET', '/health')).status).toBe(200);
    expect(scheduler.core.totals.queued).toBe(2);
  });

  it('cancels, retries one and in bulk, refuses to retry DONE; promotes a delayed job', async () => {
    const { base, address } = await startHttpScheduler();
    let failing = true;
    await startWorker(address, { capabilities: ['flaky', 'add'] }, {
      flaky: (args) => {
        if (failing) throw new PermanentError('down');
        return `ok ${String(args)}`;
      },
    });
    const queued = await call<JobBody>(base, 'POST', '/api/jobs', { body: { kind: 'nobody', args: 'q' } });
    expect(queued.json.state).toBe('QUEUED');
    expect(queued.json.args).toEqual({ bytes: 1, text: 'q', truncated: false });
    const cancelled = await call<JobBody>(base, 'DELETE', `/api/jobs/${queued.json.id}`);
    expect([cancelled.status, cancelled.json.state]).toEqual([200, 'CANCELLED']);
    const again = await call(base, 'DELETE', `/api/jobs/${queued.json.id}`);
    expect([again.status, code(again)]).toEqual([409, 'INVALID_STATE']);
    expect(code(await call(base, 'DELETE', '/api/jobs/424242'))).toBe('NOT_FOUND');

    const done = await call<JobBody>(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'add', args: [1, 1] } });
    const retryDone = await call(base, 'POST', `/api/jobs/${done.json.id}/retry`);
    expect([retryDone.status, code(retryDone)]).toEqual([409, 'INVALID_STATE']);

    const failed = await Promise.all([1, 2, 3].map((i) => call<JobBody>(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'flaky', args: String(i) } })));
    for (const f of failed) expect(f.json).toMatchObject({ state: 'FAILED', error: 'down' });
    failing = false;
    const one = await call<JobBody>(base, 'POST', `/api/jobs/${failed[0]!.json.id}/retry`);
    expect([one.status, one.json.state]).toEqual([200, 'QUEUED']);
    expect((await call<JobBody>(base, 'GET', `/api/jobs/${failed[0]!.json.id}?wait=5000`)).json.result?.text).toBe('ok 1');
    const bulk = await call(base, 'POST', '/api/jobs/retry?state=FAILED&kind=flaky');
    expect(bulk.json).toEqual({ retried: 2, next: 0 });
    expect((await call<JobBody>(base, 'GET', `/api/jobs/${failed[2]!.json.id}?wait=5000`)).json.state).toBe('DONE');
    expect(code(await call(base, 'POST', '/api/jobs/retry?state=DONE'))).toBe('INVALID_ARGUMENT');

    const delayed = await call<JobBody>(base, 'POST', '/api/jobs', { body: { kind: 'add', args: [4, 4], delayMs: 600_000 } });
    expect(delayed.json.state).toBe('QUEUED');
    const promoted = await call(base, 'POST', `/api/jobs/${delayed.json.id}/promote`);
    expect(promoted.status).toBe(200);
    expect((await call<JobBody>(base, 'GET', `/api/jobs/${delayed.json.id}?wait=5000`)).json.result?.json).toBe(8);
    expect(code(await call(base, 'POST', `/api/jobs/${delayed.json.id}/promote`))).toBe('INVALID_STATE');
  });

  it('pauses and resumes a kind, purges only with ?confirm=KIND, lists kinds', async () => {
    const { base, address } = await startHttpScheduler();
    const pause = await call(base, 'POST', '/api/kinds/add/pause');
    expect([pause.status, pause.json]).toEqual([200, { kind: 'add', paused: true }]);
    await startWorker(address, { capabilities: ['add'] });
    const held = await call<JobBody>(base, 'POST', '/api/jobs?wait=200', { body: { kind: 'add', args: [1, 2] } });
    expect(held.json.state).toBe('QUEUED'); // the wait ran out: nothing dispatched
    const kinds = await call<{ kinds: { kind: string; paused: boolean; queued: number; workers: number }[]; total: number }>(base, 'GET', '/api/kinds');
    expect(kinds.json.kinds.find((k) => k.kind === 'add')).toMatchObject({ paused: true, queued: 1, workers: 1 });
    expect((await call(base, 'GET', '/api/kinds/add')).json).toMatchObject({ kind: 'add', paused: true });
    expect(code(await call(base, 'GET', '/api/kinds/nope'))).toBe('NOT_FOUND');
    expect((await call(base, 'POST', '/api/kinds/add/resume')).json).toEqual({ kind: 'add', paused: false });
    expect((await call<JobBody>(base, 'GET', `/api/jobs/${held.json.id}?wait=5000`)).json.state).toBe('DONE');

    for (let i = 0; i < 3; i++) await call(base, 'POST', '/api/jobs', { body: { kind: 'idle kind/"x"', args: i } });
    const path = `/api/kinds/${encodeURIComponent('idle kind/"x"')}/jobs`;
    const noConfirm = await call(base, 'DELETE', path);
    expect([noConfirm.status, code(noConfirm)]).toEqual([400, 'INVALID_ARGUMENT']);
    const wrongConfirm = await call(base, 'DELETE', `${path}?confirm=other`);
    expect(code(wrongConfirm)).toBe('INVALID_ARGUMENT');
    expect(code(await call(base, 'DELETE', `${path}?state=RUNNING&confirm=${encodeURIComponent('idle kind/"x"')}`))).toBe('INVALID_ARGUMENT');
    const purged = await call(base, 'DELETE', `${path}?state=QUEUED&confirm=${encodeURIComponent('idle kind/"x"')}`);
    expect([purged.status, purged.json]).toEqual([200, { kind: 'idle kind/"x"', purged: 3 }]);
  });

  it('lists workers, shows one with its running jobs, drains and disconnects it', async () => {
    const { base, address } = await startHttpScheduler();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await startWorker(address, { name: 'w-http', capabilities: ['slow'], concurrency: 2, prefetch: 0 }, { slow: () => gate.then(() => 'ok') });
    const job = await call<JobBody>(base, 'POST', '/api/jobs', { body: { kind: 'slow' } });
    await waitFor(async () => (await call<JobBody>(base, 'GET', `/api/jobs/${job.json.id}`)).json.state === 'RUNNING', 'job running');
    const list = await call<{ workers: { id: string; name: string }[]; total: number }>(base, 'GET', '/api/workers');
    expect(list.json.total).toBe(1);
    const w = await call<{ id: string; runningJobs: { id: number }[]; concurrency: number }>(base, 'GET', '/api/workers/w-http');
    expect(w.json).toMatchObject({ name: 'w-http', concurrency: 2, runningJobs: [{ id: job.json.id, kind: 'slow', attempt: 1 }] });
    expect((await call(base, 'GET', `/api/workers/${w.json.id}`)).status).toBe(200);
    expect(code(await call(base, 'GET', '/api/workers/nobody'))).toBe('NOT_FOUND');
    expect((await call(base, 'POST', '/api/workers/w-http/drain')).json).toMatchObject({ name: 'w-http', draining: true });
    release();
    expect((await call<JobBody>(base, 'GET', `/api/jobs/${job.json.id}?wait=5000`)).json.state).toBe('DONE');
    const cut = await call(base, 'DELETE', '/api/workers/w-http');
    expect(cut.status).toBe(200);
    await waitFor(async () => (await call<{ total: number }>(base, 'GET', '/api/workers')).json.total === 0, 'worker gone');
    expect(code(await call(base, 'POST', '/api/workers/w-http/drain'))).toBe('NOT_FOUND');
  });

  it('needs the token for changes when one is set; without one, refuses cross-site and non-loopback hosts', async () => {
    const { base } = await startHttpScheduler({ httpToken: 's3cret' });
    const missing = await call(base, 'POST', '/api/jobs', { body: { kind: 'a' } });
    expect([missing.status, code(missing)]).toEqual([401, 'AUTH_FAILED']);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await call(base, 'POST', '/api/jobs', { body: { kind: 'a' }, token: 's3cre' });
    expect([wrong.status, code(wrong)]).toEqual([403, 'AUTH_FAILED']);
    for (const [m, p] of [['DELETE', '/api/jobs/1'], ['POST', '/api/jobs/1/retry'], ['POST', '/api/jobs/retry'], ['POST', '/api/kinds/a/pause'], ['DELETE', '/api/kinds/a/jobs?confirm=a'], ['POST', '/api/workers/w/drain'], ['DELETE', '/api/workers/w']] as const) {
      expect([m, p, code(await call(base, m, p))]).toEqual([m, p, 'AUTH_FAILED']);
    }
    const ok = await call(base, 'POST', '/api/jobs', { body: { kind: 'a' }, token: 's3cret' });
    expect(ok.status).toBe(201);
    expect((await call(base, 'GET', '/api/jobs')).status).toBe(200); // reads are open
    expect((await call(base, 'GET', '/api/info')).json).toMatchObject({ tokenRequired: true });

    const open = await startHttpScheduler();
    const cross = await call(open.base, 'POST', '/api/jobs', { body: { kind: 'a' }, headers: { origin: 'http://evil.example' } });
    expect([cross.status, code(cross)]).toEqual([403, 'AUTH_FAILED']);
    const site = await call(open.base, 'POST', '/api/jobs', { body: { kind: 'a' }, headers: { 'sec-fetch-site': 'cross-site' } });
    expect(code(site)).toBe('AUTH_FAILED');
    const same = await call(open.base, 'POST', '/api/jobs', { body: { kind: 'a' }, headers: { origin: open.base } });
    expect(same.status).toBe(201);
    // DNS rebinding: a page on another name that resolves to 127.0.0.1.
    const rebound = await rawHttp(open.httpPort, 'GET /api/jobs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
    expect(rebound).toMatch(/^HTTP\/1.1 403/);
    expect(rebound).toContain('"AUTH_FAILED"');

    await expect(new Scheduler({ host: '127.0.0.1', port: 0, logLevel: 'silent', http: { host: '0.0.0.0', port: 0 } }).listen()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('bounds requests: malformed HTTP and oversized headers get a JSON 4xx; a flood of requests gets BUSY', async () => {
    const { base, httpPort, scheduler } = await startHttpScheduler({ http: { maxHeaderBytes: 2048, maxConcurrentRequests: 1 } });
    const garbage = await rawHttp(httpPort, 'HELLO THERE\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1.1 400/);
    expect(garbage).toContain('"INVALID_ARGUMENT"');
    const big = await rawHttp(httpPort, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(4096)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1.1 431/);
    expect(big).toContain('"TOO_LARGE"');
    // One request waits; with a cap of one, the next is refused at once.
    const waiting = call(base, 'POST', '/api/jobs?wait=3000', { body: { kind: 'nobody' } });
    await waitFor(() => scheduler.core.totals.queued === 1, 'the waiting submit');
    const refused = await call(base, 'GET', '/api/stats');
    expect([refused.status, code(refused)]).toEqual([503, 'BUSY']);
    await scheduler.close({ timeoutMs: 1000 }); // answers the waiting request now
    expect((await waiting).status).toBe(201);
  });

  it('a waiter that gives up pins nothing: its session leaves the core', async () => {
    const { base, scheduler } = await startHttpScheduler();
    const before = scheduler.core.totals.clients;
    const r = await call<JobBody>(base, 'POST', '/api/jobs?wait=100', { body: { kind: 'nobody' } });
    expect([r.status, r.json.state]).toEqual([201, 'QUEUED']);
    const g = await call<JobBody>(base, 'GET', `/api/jobs/${r.json.id}?wait=50`);
    expect(g.json.state).toBe('QUEUED');
    // A client that goes away while waiting.
    const ac = new AbortController();
    const gone = fetch(`${base}/api/jobs/${r.json.id}?wait=60000`, { signal: ac.signal }).catch(() => 'aborted');
    await waitFor(() => scheduler.core.totals.clients === before + 1, 'the waiting session');
    ac.abort();
    expect(await gone).toBe('aborted');
    await waitFor(() => scheduler.core.totals.clients === before, 'the session closed');
    expect(code(await call(base, 'GET', '/api/jobs/1?wait=999999999'))).toBe('INVALID_ARGUMENT');
  });

  it('answers only what the journal stored: a failing journal gives JOURNAL_UNAVAILABLE and /ready 503', async () => {
    const dir = await tempDir();
    let failing = false;
    const { base } = await startHttpScheduler({
      dataDir: dir,
      journalFaults: {
        write: () => {
          if (failing) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        },
      },
    });
    expect((await call(base, 'POST', '/api/jobs', { body: { kind: 'a', args: 1 } })).status).toBe(201);
    failing = true;
    const refused = await call(base, 'POST', '/api/jobs', { body: { kind: 'a', args: 2 } });
    expect([refused.status, code(refused)]).toEqual([503, 'JOURNAL_UNAVAILABLE']);
    const ready = await call(base, 'GET', '/ready');
    expect([ready.status, ready.json]).toMatchObject([503, { ready: false, reason: 'journal_unavailable' }]);
    const list = await call<PageBody>(base, 'GET', '/api/jobs');
    expect(list.json.total).toBe(1); // the refused job is nowhere
    failing = false;
    expect((await call(base, 'POST', '/api/jobs', { body: { kind: 'a', args: 3 } })).status).toBe(201);
    expect((await call(base, 'GET', '/ready')).status).toBe(200);
  });

  it('says "stopping" on /ready and refuses changes during a graceful stop', async () => {
    const { base, address, scheduler } = await startHttpScheduler({ stopGraceMs: 5_000 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await startWorker(address, { capabilities: ['slow'], prefetch: 0 }, { slow: () => gate.then(() => 'ok') });
    const job = await call<JobBody>(base, 'POST', '/api/jobs', { body: { kind: 'slow' } });
    await waitFor(() => scheduler.core.totals.running === 1, 'job running');
    const closing = scheduler.close();
    const ready = await call(base, 'GET', '/ready');
    expect([ready.status, ready.json]).toMatchObject([503, { reason: 'stopping' }]);
    const refused = await call(base, 'POST', '/api/jobs', { body: { kind: 'slow' } });
    expect([refused.status, code(refused)]).toEqual([503, 'SHUTTING_DOWN']);
    expect((await call<JobBody>(base, 'GET', `/api/jobs/${job.json.id}`)).json.state).toBe('RUNNING'); // reads go on
    release();
    await closing;
    await expect(fetch(`${base}/health`)).rejects.toThrow();
  });

  it('CLI: --http prints the second stdout line; a non-loopback --http without a token refuses to start', async () => {
    const ok = spawnTs('src/server.ts', ['--port', '0', '--http', '127.0.0.1:0', '--log-level', 'error']);
    const m = await ok.waitForLine(/taskwire http listening on ([\d.]+):(\d+)\n/);
    expect(ok.stdout.split('\n')[1]).toMatch(/^taskwire http listening on 127\.0\.0\.1:\d+$/);
    expect((await call(`http://127.0.0.1:${m[2]}`, 'GET', '/health')).status).toBe(200);
    const refused = spawnTs('src/server.ts', ['--port', '0', '--http', '0.0.0.0:0'], { TASKWIRE_HTTP_TOKEN: '' });
    expect(await refused.exited).toBe(1);
    expect(refused.stderr).toMatch(/not a loopback address/);
  });

  it('reports stats and the rate history', async () => {
    const { base, address } = await startHttpScheduler({ http: { statsIntervalMs: 50 } });
    await startWorker(address, { capabilities: ['add'] });
    await call(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'add', args: [1, 2] } });
    const stats = await call<{ totals: { submitted: number }; ready: boolean; kinds: Record<string, unknown> }>(base, 'GET', '/api/stats');
    expect(stats.json).toMatchObject({ totals: { submitted: 1 }, ready: true });
    await waitFor(async () => (await call<{ done: number[] }>(base, 'GET', '/api/stats/history')).json.done.some((n) => n === 1), 'a second with one done job');
    const client = await connectClient(address);
    expect((await client.stats()).kinds['add']).toMatchObject({ done: 1 }); // the wire agrees
  });
});

/** Sends raw bytes to the HTTP port; resolves with everything the server answered before closing. */
async function rawHttp(port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(text);
  let out = '';
  socket.setEncoding('utf8').on('data', (d: string) => (out += d));
  await Promise.race([once(socket, 'close'), new Promise((resolve) => setTimeout(resolve, 3_000))]);
  socket.destroy();
  return out;
}
