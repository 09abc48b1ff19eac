/**
 * Human-readable output of the `taskwire` CLI: tables of jobs, workers and
 * counters. Pure functions of their input (and `now`), no I/O.
 */
import { plural } from '../cli.js';
import type { JobInfo, ListPage, StatsInfo, WorkerInfo } from '../protocol.js';

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd() + '\n';
  return line(header) + rows.map(line).join('');
}

/** Time since wall-clock `ms` for people: `4s`, `3m`, `2h`, `5d`; '' when unknown. */
export function ago(ms: number | undefined, now: number): string {
  if (ms === undefined) return '';
  return age(now - ms);
}

/** A duration as one unit: `4s`, `3m`, `2h`, `5d`. */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** `59s`, `3m05s`, `2h07m` (rounded down). */
export function formatDurationMs(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `512 B`, `1.5 KiB`, `3.2 MiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function isoTime(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

/** One job, a field per line (`taskwire status`). */
export function formatJob(j: JobInfo): string {
  const rows: Array<[string, string | undefined]> = [
    ['id', String(j.id)],
    ['kind', j.kind],
    ['state', j.state],
    ['priority', String(j.priority)],
    ['attempts', `${j.attempts} (max retries ${j.maxRetries})`],
    ['timeout', `${j.timeoutMs} ms`],
    ['created', isoTime(j.createdAt)],
    ['not before', isoTime(j.notBefore)],
    ['started', isoTime(j.startedAt)],
    ['finished', isoTime(j.finishedAt)],
    ['worker', j.worker],
    ['key', j.key],
    ['result', j.result],
    ['error', j.error],
  ];
  return rows
    .filter((r): r is [string, string] => r[1] !== undefined && r[1] !== '')
    .map(([k, v]) => `${k.padEnd(11)}${v}\n`)
    .join('');
}

/**
 * One page of jobs (`taskwire jobs`) and a footer: how many match in all,
 * how many this page did not show, and the command for the next page.
 * `more` is the command line that repeats the listing without `--after`.
 */
export function formatJobPage(page: ListPage, now: number, more: string): string {
  const { jobs, total, next } = page;
  if (jobs.length === 0) return total === 0 ? 'no jobs\n' : `no jobs on this page; ${plural(total, 'job')} match in all\n`;
  const body = table(
    ['ID', 'STATE', 'KIND', 'PRI', 'ATTEMPTS', 'AGE', 'RESULT', 'WORKER'],
    jobs.map((j) => [
      String(j.id),
      j.state,
      j.kind,
      String(j.priority),
      String(j.attempts),
      ago(j.createdAt, now),
      j.resultBytes === undefined ? '' : formatBytes(j.resultBytes),
      j.worker ?? '',
    ]),
  );
  const notShown = Math.max(0, total - jobs.length);
  const footer =
    notShown === 0
      ? `${plural(total, 'job')}\n`
      : `${jobs.length} of ${plural(total, 'job')} shown, ${notShown} not shown` +
        (next > 0 ? `; next page: ${more} --after ${next}\n` : '\n');
  return body + footer;
}

/** Connected workers (`taskwire workers`). */
export function formatWorkers(workers: readonly WorkerInfo[], now: number): string {
  if (workers.length === 0) return 'no workers connected\n';
  return table(
    ['ID', 'NAME', 'POOL', 'HOST', 'RUNNING', 'DONE', 'FAILED', 'STATE', 'UP', 'KINDS'],
    workers.map((w) => [
      w.id,
      w.name,
      w.pool === undefined || w.pool === '' ? '-' : w.pool,
      w.host === undefined || w.host === '' ? '-' : w.host,
      `${w.running}/${w.concurrency}`,
      String(w.done),
      String(w.failed),
      w.draining ? 'draining' : 'active',
      ago(w.connectedAt, now),
      w.capabilities.join(','),
    ]),
  );
}

/** The scheduler's counters (`taskwire stats`). */
export function formatStats(s: StatsInfo): string {
  let out =
    `server ${s.serverVersion}, up ${formatDurationMs(s.uptimeMs)}, ` +
    `${plural(s.connections.clients, 'client')}, ${plural(s.connections.workers, 'worker')}\n` +
    `queued ${s.totals.queued}, running ${s.totals.running}, retained ${s.totals.retained}, submitted ${s.totals.submitted}\n`;
  const kinds = Object.entries(s.kinds);
  if (kinds.length > 0) {
    out +=
      '\n' +
      table(
        ['KIND', 'QUEUED', 'RUNNING', 'DONE', 'FAILED', 'CANCELLED', 'OLDEST', 'DONE/S', 'SUBMIT/S'],
        kinds.map(([kind, k]) => [
          kind,
          String(k.queued),
          String(k.running),
          String(k.done),
          String(k.failed),
          String(k.cancelled),
          k.oldestQueuedMs > 0 ? formatDurationMs(k.oldestQueuedMs) : '',
          String(Math.round(k.donePerSec)),
          String(Math.round(k.submittedPerSec)),
        ]),
      );
  }
  const j = s.journal;
  out +=
    j === null
      ? '\njournal: none (state in memory only)\n'
      : `\njournal: fsync ${j.fsync}, ${formatBytes(j.bytes)}, ${plural(j.compactions, 'compaction')}` +
        (j.lastCompactionAt === null ? '' : `, last ${new Date(j.lastCompactionAt).toISOString()}`) +
        `, replayed ${plural(j.recordsReplayed, 'record')} in ${j.recoverMs} ms\n`;
  return out;
}
