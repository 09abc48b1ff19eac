/**
 * `taskwire top`: a live view of the scheduler, redrawn every second — per
 * kind whether it is paused, queued, prefetched (sent ahead to a worker, not
 * started), running, done/s, failed/s and the oldest queued job's age; per
 * worker its load and heartbeat age. On a terminal it takes the
 * alternate screen, hides the cursor and reads keys raw; `q` or Ctrl-C
 * quits and puts the terminal back as it was. When stdout is not a terminal
 * it prints one snapshot and returns.
 */
import { plural } from '../cli.js';
import type { StatsInfo, WorkerInfo } from '../protocol.js';
import { age, formatDurationMs, table } from './format.js';
import { formatRate } from '../progress-bar.js';

/** One refresh: what the scheduler said, and when (monotonic ms for rates, wall ms for ages). */
export interface TopSample {
  atMs: number;
  wallMs: number;
  stats: StatsInfo;
  workers: WorkerInfo[];
}

/** What `top` needs of a client. */
export interface TopSource {
  stats(): Promise<StatsInfo>;
  workers(): Promise<WorkerInfo[]>;
}

/** The terminal `top` draws on. */
export interface TopTerminal {
  stdout: { write(text: string): unknown; isTTY?: boolean | undefined; columns?: number | undefined; rows?: number | undefined };
  stdin: {
    isTTY?: boolean | undefined;
    setRawMode?: (mode: boolean) => unknown;
    on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
    off(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
    resume(): unknown;
    pause(): unknown;
  };
}

/** Per second from two counter readings; '-' without a previous reading. */
function perSec(cur: number, prev: number | undefined, seconds: number): string {
  if (prev === undefined || seconds <= 0) return '-';
  return formatRate(Math.max(0, cur - prev) / seconds);
}

/**
 * Renders one frame. With `prev`, done/s and failed/s are measured between
 * the two samples; without it, done/s is the scheduler's own recent rate and
 * failed/s is unknown ('-'). PAUSED comes right after KIND, so a narrow
 * terminal cuts other columns first; PAUSED and PREFETCHED are '-' when the
 * scheduler does not report them (an older version).
 */
export function renderTop(cur: TopSample, prev: TopSample | undefined, width = 80): string {
  const s = cur.stats;
  const seconds = prev === undefined ? 0 : (cur.atMs - prev.atMs) / 1000;
  const clock = new Date(cur.wallMs).toISOString().slice(11, 19);
  let out =
    `taskwire top  ${clock}  server ${s.serverVersion}, up ${formatDurationMs(s.uptimeMs)}, ` +
    `${plural(s.connections.clients, 'client')}, ${plural(s.connections.workers, 'worker')}\n` +
    `queued ${s.totals.queued}  running ${s.totals.running}  retained ${s.totals.retained}  submitted ${s.totals.submitted}\n\n`;
  const kinds = Object.keys(s.kinds).sort();
  out +=
    kinds.length === 0
      ? 'no job kinds yet\n'
      : table(
          ['KIND', 'PAUSED', 'QUEUED', 'PREFETCHED', 'RUNNING', 'DONE/S', 'FAILED/S', 'OLDEST'],
          kinds.map((kind) => {
            const k = s.kinds[kind]!;
            const p = prev?.stats.kinds[kind];
            return [
              kind,
              k.paused === undefined ? '-' : k.paused ? 'yes' : 'no',
              String(k.queued),
              k.prefetched === undefined ? '-' : String(k.prefetched),
              String(k.running),
              prev === undefined ? formatRate(k.donePerSec) : perSec(k.done, p?.done ?? 0, seconds),
              perSec(k.failed, prev === undefined ? undefined : (p?.failed ?? 0), seconds),
              k.oldestQueuedMs > 0 ? age(k.oldestQueuedMs) : '',
            ];
          }),
        );
  out += '\n';
  const workers = [...cur.workers].sort((a, b) => a.name.localeCompare(b.name));
  out +=
    workers.length === 0
      ? 'no workers connected\n'
      : table(
          ['WORKER', 'RUNNING', 'STATE', 'HEARTBEAT', 'DONE', 'FAILED', 'KINDS'],
          workers.map((w) => [
            w.name,
            `${w.running}/${w.concurrency}`,
            w.draining ? 'draining' : 'active',
            `${age(cur.wallMs - w.lastHeartbeatAt)} ago`,
            String(w.done),
            String(w.failed),
            w.capabilities.join(','),
          ]),
        );
  // Never wrap: a wrapped line would scroll the frame.
  return out
    .split('\n')
    .map((line) => (line.length > width ? line.slice(0, width) : line))
    .join('\n');
}

/** Fetches one sample. */
export async function sample(source: TopSource): Promise<TopSample> {
  const [stats, workers] = await Promise.all([source.stats(), source.workers()]);
  return { atMs: performance.now(), wallMs: Date.now(), stats, workers };
}

const ENTER_SCREEN = '\x1b[?1049h\x1b[?25l'; // alternate screen, hide cursor
const LEAVE_SCREEN = '\x1b[?25h\x1b[?1049l'; // show cursor, back to the normal screen

/**
 * Runs the live view until `q`, Ctrl-C (a raw-mode key, not a signal) or
 * `signal`; the terminal is restored on every way out, errors included.
 * Without a TTY on stdout, prints one snapshot. Rejects with the client's
 * error if a refresh fails (the terminal is restored first).
 */
export async function runTop(source: TopSource, term: TopTerminal, opts: { intervalMs: number; signal?: AbortSignal }): Promise<void> {
  const { stdout, stdin } = term;
  if (stdout.isTTY !== true) {
    stdout.write(renderTop(await sample(source), undefined, Number.MAX_SAFE_INTEGER));
    return;
  }
  let quit = false;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    quit = true;
    wake?.();
  };
  const onKey = (chunk: Buffer | string): void => {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    if (/[qQ\x03\x04]/.test(text)) stop(); // q, Ctrl-C, Ctrl-D
  };
  const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  opts.signal?.addEventListener('abort', stop, { once: true });
  stdout.write(ENTER_SCREEN);
  try {
    if (raw) stdin.setRawMode!(true);
    stdin.on('data', onKey);
    stdin.resume();
    let prev: TopSample | undefined;
    while (!quit && opts.signal?.aborted !== true) {
      const cur = await sample(source);
      if (quit) break;
      const frame = renderTop(cur, prev, Math.max(20, stdout.columns ?? 80));
      const lines = frame.split('\n');
      const rows = Math.max(1, (stdout.rows ?? lines.length) - 1);
      // Home, each line then erase its rest, erase below: no flicker, no stale characters.
      stdout.write('\x1b[H' + lines.slice(0, rows).join('\x1b[K\n') + '\x1b[K\x1b[J');
      prev = cur;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, opts.intervalMs);
        wake = done;
        function done(): void {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        }
      });
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    stdin.off('data', onKey);
    if (raw) stdin.setRawMode!(false);
    stdin.pause();
    stdout.write(LEAVE_SCREEN);
  }
}
