/**
 * `/metrics` (issue 10): the Prometheus text format 0.0.4, checked by
 * `promtool check metrics` (Debian package `prometheus`; that one assertion
 * is skipped, loudly, when promtool is missing), label escaping, histogram
 * shape, and the journal's fsync histogram.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { escapeLabel } from '../../src/lib/http/metrics.js';
import { call, startHttpScheduler, startWorker } from '../helpers/http.js';
import { tempDir } from '../helpers/journal.js';

/** promtool from PATH, or undefined. */
function promtool(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir !== '' && existsSync(`${dir}/promtool`)) return `${dir}/promtool`;
  }
  return undefined;
}

function runPromtool(bin: string, text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

/** The value of the sample line `name{labels}` (labels as written), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const WEIRD = 'we"ird\\kind\nnext';

describe('GET /metrics', () => {
  it('is valid exposition text (promtool) with every documented family, escaped labels and cumulative histograms', async () => {
    const dir = await tempDir();
    const { base, address } = await startHttpScheduler({ dataDir: dir, retryBaseMs: 1 });
    let calls = 0;
    await startWorker(address, { capabilities: ['add', 'flaky'] }, {
      flaky: () => {
        if (calls++ === 0) throw new Error('transient');
        return 'ok';
      },
    });
    for (let i = 0; i < 3; i++) expect((await call(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'add', args: [i, 1] } })).status).toBe(201);
    expect((await call<{ state: string }>(base, 'POST', '/api/jobs?wait=5000', { body: { kind: 'flaky' } })).json.state).toBe('DONE');
    await call(base, 'POST', '/api/jobs', { body: { kind: WEIRD } });
    await call(base, 'POST', '/api/kinds/add/pause');

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();

    for (const family of [
      'taskwire_jobs_submitted_total',
      'taskwire_jobs_finished_total',
      'taskwire_job_attempts_failed_total',
      'taskwire_jobs_queued',
      'taskwire_jobs_running',
      'taskwire_jobs_delayed',
      'taskwire_queue_oldest_age_seconds',
      'taskwire_job_wait_seconds',
      'taskwire_job_run_seconds',
      'taskwire_workers_connected',
      'taskwire_worker_slots',
      'taskwire_connections',
      'taskwire_journal_fsync_seconds',
      'taskwire_journal_bytes',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text, family).toContain(`# TYPE ${family} `);
    }
    expect(sample(text, 'taskwire_jobs_submitted_total{kind="add"}')).toBe(3);
    expect(sample(text, 'taskwire_jobs_finished_total{kind="add",outcome="done"}')).toBe(3);
    expect(sample(text, 'taskwire_job_attempts_failed_total{kind="flaky",reason="error"}')).toBe(1);
    expect(sample(text, 'taskwire_kind_paused{kind="add"}')).toBe(1);
    expect(sample(text, 'taskwire_workers_connected')).toBe(1);
    expect(sample(text, 'taskwire_worker_slots{state="free"}')).toBe(4);
    expect(sample(text, 'taskwire_connections{role="worker"}')).toBe(1);
    expect(sample(text, 'taskwire_connections{role="client"}')).toBe(0); // the HTTP layer's own sessions are not clients
    expect(sample(text, 'taskwire_connections{role="http"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'taskwire_journal_bytes')).toBeGreaterThan(0);
    expect(sample(text, 'taskwire_journal_fsync_seconds_count')).toBeGreaterThan(0);
    // Escaping (text format 0.0.4): backslash, quote and newline.
    expect(escapeLabel(WEIRD)).toBe('we\\"ird\\\\kind\\nnext');
    expect(sample(text, `taskwire_jobs_queued{kind="${escapeLabel(WEIRD)}"}`)).toBe(1);
    // Histogram: cumulative buckets ending in +Inf = _count; flaky ran two attempts.
    const buckets = text.split('\n').filter((l) => l.startsWith('taskwire_job_run_seconds_bucket{kind="flaky",'));
    const counts = buckets.map((l) => Number(l.split(' ')[1]));
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(buckets.at(-1)).toMatch(/le="\+Inf"\} 2$/);
    expect(sample(text, 'taskwire_job_run_seconds_count{kind="flaky"}')).toBe(2);
    expect(sample(text, 'taskwire_job_wait_seconds_count{kind="add"}')).toBe(3);

    const bin = promtool();
    if (bin === undefined) {
      console.warn('\n*** SKIPPED: promtool not found (apt-get install prometheus); /metrics was NOT checked by promtool ***\n');
    } else {
      const check = await runPromtool(bin, text);
      expect(check.output).toBe('');
      expect(check.code).toBe(0);
    }
  });

  it('needs no token, renders many kinds in chunks, and answers while jobs flow', async () => {
    const { base, scheduler } = await startHttpScheduler({ httpToken: 't' });
    // 1,200 kinds: more than one rendering chunk per family.
    for (let i = 0; i < 1200; i += 200) {
      await Promise.all(Array.from({ length: 200 }, (_, j) => call(base, 'POST', '/api/jobs', { body: { kind: `k${i + j}` }, token: 't' })));
    }
    expect(scheduler.core.kindCount).toBe(1200);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text.split('\n').filter((l) => l.startsWith('taskwire_jobs_queued{')).length).toBe(1200);
    expect(text.match(/^# TYPE taskwire_jobs_queued /gm)).toHaveLength(1); // one family, lines together
    const bin = promtool();
    if (bin !== undefined) expect((await runPromtool(bin, text)).code).toBe(0);
  });
});
