/**
 * The operators' part of the REST API (docs/HTTP.md "Kinds", "Workers",
 * "Stats", "Health"): queues per kind with pause/resume/purge, workers
 * with drain/disconnect, counters, the live event stream, `/metrics`,
 * `/health` and `/ready`. Changes go to the core as wire ADMIN requests.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { once } from 'node:events';
import type { KindStats, PauseResult, PurgeResult, StatsInfo, WorkerInfo } from '../protocol.js';
import { METRICS_CONTENT_TYPE, renderMetrics, takeSnapshot } from './metrics.js';
import { nameParam, queryEnum, queryInt } from './params.js';
import { HttpError, sendJson } from './respond.js';
import type { RequestContext, Route } from './router.js';

/** A kind as GET /api/kinds shows it. */
export interface KindView extends KindStats {
  kind: string;
  paused: boolean;
}

/** Every kind of a STATS reply, busiest first (O(kinds log kinds); kinds are bounded). */
export function kindViewsOf(stats: StatsInfo): KindView[] {
  const views = Object.entries(stats.kinds).map(([kind, s]) => ({ kind, ...s, paused: s.paused === true }));
  views.sort((a, b) => b.queued + b.running - (a.queued + a.running) || (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0));
  return views;
}

async function kindViews(ctx: RequestContext): Promise<KindView[]> {
  const { body } = await ctx.state.bridge().shared.reply({ type: 'STATS' });
  return kindViewsOf(body as StatsInfo);
}

/** One page (`?limit=&offset=`) of a list that is bounded already (kinds and workers are capped), with its total. */
function sendSlice(ctx: RequestContext, key: 'kinds' | 'workers', all: readonly unknown[]): void {
  const q = ctx.url.searchParams;
  const limit = queryInt(q, 'limit', 100, 1, 1000);
  const offset = queryInt(q, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
  sendJson(ctx.res, 200, { [key]: all.slice(offset, offset + limit), total: all.length });
}

async function listKinds(ctx: RequestContext): Promise<void> {
  sendSlice(ctx, 'kinds', await kindViews(ctx));
}

async function getKind(ctx: RequestContext): Promise<void> {
  const name = nameParam('kind', ctx.params['kind']!);
  const view = (await kindViews(ctx)).find((k) => k.kind === name);
  if (view === undefined) throw new HttpError('NOT_FOUND', `no kind "${name}" (no job and no worker has it)`);
  sendJson(ctx.res, 200, view);
}

async function pauseKind(ctx: RequestContext, op: 'pause' | 'resume'): Promise<void> {
  const kind = nameParam('kind', ctx.params['kind']!);
  const { body } = await ctx.state.bridge().shared.reply({ type: 'ADMIN', body: { op, kind } });
  sendJson(ctx.res, 200, body as PauseResult);
}

async function purgeKind(ctx: RequestContext): Promise<void> {
  const kind = nameParam('kind', ctx.params['kind']!);
  const q = ctx.url.searchParams;
  queryEnum(q, 'state', ['QUEUED'], 'QUEUED'); // only QUEUED jobs can be purged
  if (q.get('confirm') !== kind) {
    throw new HttpError('INVALID_ARGUMENT', `purging cancels every QUEUED job of "${kind}": repeat the kind as ?confirm=${encodeURIComponent(kind)}`);
  }
  const { body } = await ctx.state.bridge().shared.reply({ type: 'ADMIN', body: { op: 'purge', kind } });
  sendJson(ctx.res, 200, body as PurgeResult);
}

async function workerInfos(ctx: RequestContext): Promise<WorkerInfo[]> {
  const { body } = await ctx.state.bridge().shared.reply({ type: 'WORKERS' });
  return body as WorkerInfo[];
}

async function listWorkers(ctx: RequestContext): Promise<void> {
  sendSlice(ctx, 'workers', await workerInfos(ctx));
}

async function getWorker(ctx: RequestContext): Promise<void> {
  const key = nameParam('worker', ctx.params['id']!);
  const all = await workerInfos(ctx);
  const info = all.find((w) => w.id === key) ?? all.find((w) => w.name === key);
  if (info === undefined) throw new HttpError('NOT_FOUND', `no connected worker "${key}"`);
  const core = ctx.state.bridge().core;
  // The jobs it runs now: bounded by its concurrency.
  const running: { id: number; kind: string; attempt: number; startedAt: number }[] = [];
  const abandoned: number[] = [];
  for (const w of core.workerSessions()) {
    if (w.id !== info.id) continue;
    for (const job of w.running) running.push({ id: job.id, kind: job.kind.name, attempt: job.attempts, startedAt: core.epoch + job.startedAt });
    const current = new Set(running.map((r) => r.id));
    for (const id of w.held.keys()) if (!current.has(id)) abandoned.push(id);
  }
  sendJson(ctx.res, 200, { ...info, runningJobs: running, abandonedJobs: abandoned });
}

async function workerOp(ctx: RequestContext, op: 'drain' | 'disconnect'): Promise<void> {
  const worker = nameParam('worker', ctx.params['id']!);
  const { body } = await ctx.state.bridge().shared.reply({ type: 'ADMIN', body: { op, worker } });
  sendJson(ctx.res, 200, body as WorkerInfo);
}

async function stats(ctx: RequestContext): Promise<void> {
  const { body } = await ctx.state.bridge().shared.reply({ type: 'STATS' });
  sendJson(ctx.res, 200, { ...(body as StatsInfo), ready: ctx.state.readiness().ready });
}

function history(ctx: RequestContext): void {
  sendJson(ctx.res, 200, ctx.state.history.toJSON());
}

function info(ctx: RequestContext): void {
  sendJson(ctx.res, 200, ctx.state.info());
}

function events(ctx: RequestContext): void {
  ctx.state.bridge(); // 503 before recovery ends
  ctx.state.hub.subscribe(ctx.req, ctx.res, { ...ctx.state.info(), ready: ctx.state.readiness().ready });
}

/** Writes the exposition text chunk by chunk, yielding the event loop between chunks and waiting for drain. */
async function metrics(ctx: RequestContext): Promise<void> {
  const snapshot = takeSnapshot(await ctx.state.metricsInput());
  const res = ctx.res;
  res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  let first = true;
  for (const chunk of renderMetrics(snapshot)) {
    if (res.destroyed) return;
    if (!first) await nextTurn();
    first = false;
    if (!res.write(chunk)) await once(res, 'drain');
  }
  res.end();
}

function health(ctx: RequestContext): void {
  sendJson(ctx.res, 200, { status: 'ok' });
}

function ready(ctx: RequestContext): void {
  const r = ctx.state.readiness();
  if (r.ready) sendJson(ctx.res, 200, { ready: true });
  else sendJson(ctx.res, 503, { ready: false, reason: r.reason, message: r.message });
}

/** The operators' routes. */
export const OPS_ROUTES: readonly Route[] = [
  { method: 'GET', path: '/health', mutating: false, summary: 'Liveness: 200 while the process serves', handler: health },
  { method: 'GET', path: '/ready', mutating: false, summary: 'Readiness: 503 while recovering, the journal is unavailable, or stopping', handler: ready },
  { method: 'GET', path: '/metrics', mutating: false, summary: 'Prometheus text exposition format 0.0.4', handler: metrics },
  { method: 'GET', path: '/api/info', mutating: false, summary: 'Server version and whether changes need a token', handler: info },
  { method: 'GET', path: '/api/stats', mutating: false, summary: 'Counters (the wire STATS reply) and readiness', handler: stats },
  { method: 'GET', path: '/api/stats/history', mutating: false, summary: 'Jobs done and failed per second, last 10 minutes', handler: history },
  { method: 'GET', path: '/api/events', mutating: false, summary: 'Server-Sent Events: job changes, worker joins/leaves, stats each second', handler: events },
  { method: 'GET', path: '/api/kinds', mutating: false, summary: 'Queues per kind, busiest first (paged)', handler: listKinds },
  { method: 'GET', path: '/api/kinds/:kind', mutating: false, summary: 'One kind', handler: getKind },
  { method: 'POST', path: '/api/kinds/:kind/pause', mutating: true, summary: 'Dispatch nothing of the kind (journaled)', handler: (ctx) => pauseKind(ctx, 'pause') },
  { method: 'POST', path: '/api/kinds/:kind/resume', mutating: true, summary: 'Dispatch the kind again (journaled)', handler: (ctx) => pauseKind(ctx, 'resume') },
  { method: 'DELETE', path: '/api/kinds/:kind/jobs', mutating: true, summary: 'Cancel every QUEUED job of the kind (?confirm=KIND)', handler: purgeKind },
  { method: 'GET', path: '/api/workers', mutating: false, summary: 'Connected workers (paged)', handler: listWorkers },
  { method: 'GET', path: '/api/workers/:id', mutating: false, summary: 'One worker (id or name), with the jobs it runs', handler: getWorker },
  { method: 'POST', path: '/api/workers/:id/drain', mutating: true, summary: 'The worker finishes its jobs and takes no new ones', handler: (ctx) => workerOp(ctx, 'drain') },
  { method: 'DELETE', path: '/api/workers/:id', mutating: true, summary: 'Disconnect the worker now; its jobs go back as after a crash', handler: (ctx) => workerOp(ctx, 'disconnect') },
];
