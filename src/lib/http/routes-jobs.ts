/**
 * The jobs part of the REST API (docs/HTTP.md "Jobs"): submit, look up,
 * list, cancel, retry, bulk retry, promote. Each is the wire request of the
 * same name sent to the core through a {@link BridgeSession}, so answers
 * and codes are the wire's. A request that waits (`?wait=MS`) gets its own
 * session, closed when it is answered or its client goes away: a waiter
 * that gave up pins nothing in the core.
 */
import { TaskwireError } from '../errors.js';
import { encodeArgs } from '../jobs.js';
import { DEFAULT_RETRIES, JOB_STATES, LIST_MAX_LIMIT, U32_MAX, type JobInfo, type JobState, type ListPage, type RetryManyResult, type SubmitMessage } from '../protocol.js';
import type { BridgeSession } from './core-bridge.js';
import { argsPreview, jobJson } from './job-json.js';
import { bodyInt, bodyString, jobIdParam, nameParam, queryEnum, queryInt } from './params.js';
import { HttpError, parseJsonObject, sendJson } from './respond.js';
import type { RequestContext, Route } from './router.js';

/** Priorities of the service tiers (the client library's TIER_PRIORITY; DESIGN.md "Job semantics"). */
const TIER_PRIORITY: Readonly<Record<string, number>> = { paid: 10, free: 0 };

/** Largest retries value a SUBMIT carries (u16; 0xffff means "the scheduler's default"). */
const MAX_RETRIES = 0xfffe;

/** The submit fields of a POST /api/jobs body, validated, as wire SUBMIT fields. */
function submitFields(body: Record<string, unknown>): Pick<SubmitMessage, 'kind' | 'args' | 'priority' | 'timeoutMs' | 'maxRetries' | 'estMs' | 'delayMs' | 'key'> {
  const kind = nameParam('"kind"', bodyString(body, 'kind', ''));
  if (body['args'] !== undefined && body['argsBase64'] !== undefined) {
    throw new HttpError('INVALID_ARGUMENT', 'give "args" or "argsBase64", not both');
  }
  let args: Buffer;
  if (body['argsBase64'] !== undefined) {
    const b64 = body['argsBase64'];
    if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 === 1) {
      throw new HttpError('INVALID_ARGUMENT', '"argsBase64" must be base64');
    }
    args = Buffer.from(b64, 'base64');
  } else {
    // The client library's encoding: a string as its UTF-8 bytes, anything else as JSON.
    args = body['args'] === undefined ? Buffer.alloc(0) : encodeArgs(body['args']);
  }
  let priority = 0;
  const tier = body['tier'];
  if (tier !== undefined) {
    if (typeof tier !== 'string' || TIER_PRIORITY[tier] === undefined) throw new HttpError('INVALID_ARGUMENT', '"tier" must be "paid" or "free"');
    priority = TIER_PRIORITY[tier]!;
  }
  priority = bodyInt(body, 'priority', priority, 0, 255);
  const retries = bodyInt(body, 'retries', DEFAULT_RETRIES, 0, MAX_RETRIES);
  return {
    kind,
    args,
    priority,
    timeoutMs: bodyInt(body, 'timeoutMs', 0, 0, U32_MAX),
    maxRetries: retries,
    estMs: bodyInt(body, 'estMs', 0, 0, U32_MAX),
    delayMs: bodyInt(body, 'delayMs', 0, 0, U32_MAX),
    key: bodyString(body, 'key', ''),
  };
}

/** Waits until `session` hears the final EVENT of the job it waits on, `waitMs` pass, or the client goes away. */
function outcomeOrTimeout(ctx: RequestContext, finished: Promise<void>, waitMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, waitMs);
    timer.unref();
    ctx.res.once('close', done);
    ctx.signal.addEventListener('abort', done, { once: true });
    void finished.then(done);
    function done(): void {
      clearTimeout(timer);
      ctx.res.off('close', done);
      ctx.signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** A promise that resolves at the first final EVENT this (dedicated) session hears. */
function finalEvent(session: BridgeSession): Promise<void> {
  return new Promise<void>((resolve) => {
    session.onEvent((ev) => {
      if (ev.event !== 'progress') resolve();
    });
  });
}

/** STATUS of a job, as the API shows it (with its result and an arguments preview). */
async function jobView(ctx: RequestContext, session: BridgeSession, jobId: number): Promise<Record<string, unknown>> {
  const { body, data } = await session.reply({ type: 'STATUS', jobId });
  const info = body as JobInfo;
  // The core drops a DONE job's arguments (docs/PERFORMANCE.md); others keep them. The job is
  // visible (STATUS answered), so its record is durable: reading its bytes shows nothing early.
  const job = ctx.state.bridge().core.jobs.get(jobId);
  const args = job === undefined || info.state === 'DONE' ? null : argsPreview(job.args);
  return jobJson(info, data, args);
}

/** Runs `fn` with a session of its own when `waitMs` > 0 (closed after), else the shared one. */
async function withSession<T>(ctx: RequestContext, waitMs: number, fn: (s: BridgeSession) => Promise<T>): Promise<T> {
  const bridge = ctx.state.bridge();
  if (waitMs === 0) return fn(bridge.shared);
  const session = bridge.open();
  try {
    return await fn(session);
  } finally {
    session.close('HTTP request answered');
  }
}

async function submit(ctx: RequestContext): Promise<void> {
  const waitMs = queryInt(ctx.url.searchParams, 'wait', 0, 0, ctx.state.maxWaitMs);
  const fields = submitFields(parseJsonObject(ctx.req, ctx.body));
  await withSession(ctx, waitMs, async (session) => {
    const finished = waitMs > 0 ? finalEvent(session) : undefined; // before SUBMIT: the EVENT may follow the ACK at once
    const ack = await session.request({ type: 'SUBMIT', ...fields, wait: waitMs > 0, progress: false });
    if (ack.type !== 'ACK') throw new TaskwireError('INTERNAL', 'SUBMIT answered without an ACK');
    if (finished !== undefined) await outcomeOrTimeout(ctx, finished, waitMs);
    if (ctx.res.destroyed) return;
    const view = await jobView(ctx, session, ack.jobId);
    view['existing'] = ack.existing;
    // 201 exactly when a wire SUBMIT is ACKed as a new job: after its record is durable (DESIGN.md rule 1).
    sendJson(ctx.res, ack.existing ? 200 : 201, view, { Location: `/api/jobs/${ack.jobId}` });
  });
}

async function getJob(ctx: RequestContext): Promise<void> {
  const jobId = jobIdParam(ctx.params['id']!);
  const waitMs = queryInt(ctx.url.searchParams, 'wait', 0, 0, ctx.state.maxWaitMs);
  await withSession(ctx, waitMs, async (session) => {
    if (waitMs > 0) {
      const finished = finalEvent(session);
      await session.request({ type: 'WATCH', jobId, progress: false });
      await outcomeOrTimeout(ctx, finished, waitMs);
      if (ctx.res.destroyed) return;
    }
    sendJson(ctx.res, 200, await jobView(ctx, session, jobId));
  });
}

async function getResult(ctx: RequestContext): Promise<void> {
  const jobId = jobIdParam(ctx.params['id']!);
  const { body, data } = await ctx.state.bridge().shared.reply({ type: 'STATUS', jobId });
  const info = body as JobInfo;
  if (info.state !== 'DONE') throw new HttpError('INVALID_STATE', `job ${jobId} is ${info.state}: only a DONE job has a result`);
  const bytes = data ?? Buffer.alloc(0);
  ctx.res.writeHead(200, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': bytes.length,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  });
  ctx.res.end(bytes);
}

async function listJobs(ctx: RequestContext): Promise<void> {
  const q = ctx.url.searchParams;
  const state = queryEnum<JobState | ''>(q, 'state', ['', ...JOB_STATES], '');
  const kind = q.get('kind') ?? '';
  if (kind !== '') nameParam('"kind"', kind);
  const { body } = await ctx.state.bridge().shared.reply({
    type: 'LIST',
    state,
    kind,
    limit: queryInt(q, 'limit', 50, 1, LIST_MAX_LIMIT),
    afterId: queryInt(q, 'after', 0, 0, Number.MAX_SAFE_INTEGER),
    order: queryEnum<'newest' | 'oldest'>(q, 'order', ['newest', 'oldest'], 'newest'),
  });
  const page = body as ListPage;
  sendJson(ctx.res, 200, { jobs: page.jobs.map((j) => jobJson(j)), total: page.total, next: page.next });
}

async function cancelJob(ctx: RequestContext): Promise<void> {
  const jobId = jobIdParam(ctx.params['id']!);
  const { body } = await ctx.state.bridge().shared.reply({ type: 'CANCEL', jobId });
  sendJson(ctx.res, 200, jobJson(body as JobInfo));
}

async function retryJob(ctx: RequestContext): Promise<void> {
  const jobId = jobIdParam(ctx.params['id']!);
  const { body } = await ctx.state.bridge().shared.reply({ type: 'ADMIN', body: { op: 'retry', jobId } });
  sendJson(ctx.res, 200, jobJson(body as JobInfo));
}

async function promoteJob(ctx: RequestContext): Promise<void> {
  const jobId = jobIdParam(ctx.params['id']!);
  const { body } = await ctx.state.bridge().shared.reply({ type: 'ADMIN', body: { op: 'promote', jobId } });
  sendJson(ctx.res, 200, jobJson(body as JobInfo));
}

async function retryMany(ctx: RequestContext): Promise<void> {
  const q = ctx.url.searchParams;
  const state = queryEnum<'FAILED' | 'CANCELLED'>(q, 'state', ['FAILED', 'CANCELLED'], 'FAILED');
  const kind = q.get('kind') ?? '';
  if (kind !== '') nameParam('"kind"', kind);
  const { body } = await ctx.state.bridge().shared.reply({
    type: 'ADMIN',
    body: {
      op: 'retryMany',
      state,
      ...(kind === '' ? {} : { kind }),
      limit: queryInt(q, 'limit', 1000, 1, 10_000),
      afterId: queryInt(q, 'after', 0, 0, Number.MAX_SAFE_INTEGER),
    },
  });
  sendJson(ctx.res, 200, body as RetryManyResult);
}

/** The jobs routes, static paths before `:id` ones. */
export const JOB_ROUTES: readonly Route[] = [
  { method: 'POST', path: '/api/jobs', mutating: true, summary: 'Submit a job (201 once durable; ?wait=MS waits for its outcome)', handler: submit },
  { method: 'GET', path: '/api/jobs', mutating: false, summary: 'One page of jobs, newest first, with the total', handler: listJobs },
  { method: 'POST', path: '/api/jobs/retry', mutating: true, summary: 'Retry FAILED (or CANCELLED) jobs in bulk; returns how many', handler: retryMany },
  { method: 'GET', path: '/api/jobs/:id', mutating: false, summary: 'A job: state, attempts, worker, times, error, result (?wait=MS)', handler: getJob },
  { method: 'DELETE', path: '/api/jobs/:id', mutating: true, summary: 'Cancel a QUEUED or RUNNING job', handler: cancelJob },
  { method: 'GET', path: '/api/jobs/:id/result', mutating: false, summary: "A DONE job's result as raw bytes", handler: getResult },
  { method: 'POST', path: '/api/jobs/:id/retry', mutating: true, summary: 'Run a FAILED or CANCELLED job again as a new attempt series', handler: retryJob },
  { method: 'POST', path: '/api/jobs/:id/promote', mutating: true, summary: 'Make a delayed or backing-off job runnable now', handler: promoteJob },
];
