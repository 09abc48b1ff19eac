/**
 * The OpenAPI 3.1 document of the HTTP API, served at `/api/openapi.json`.
 * Paths come from the route table itself, so a route cannot be served and
 * not documented (a test checks every route has its entry in OPERATIONS).
 */
import { VERSION } from '../version.js';
import type { Route } from './router.js';

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json, description: string): Json => ({ description, content: { 'application/json': { schema } } });
const query = (name: string, description: string, schema: Json): Json => ({ name, in: 'query', required: false, description, schema });
const int = (min: number, max?: number): Json => (max === undefined ? { type: 'integer', minimum: min } : { type: 'integer', minimum: min, maximum: max });
const JOB_STATE: Json = { type: 'string', enum: ['QUEUED', 'RUNNING', 'DONE', 'FAILED', 'CANCELLED'] };
const ERR = (description: string): Json => json(ref('Error'), description);

const SCHEMAS: Json = {
  Error: {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: { type: 'string', description: 'A stable code of the wire protocol (docs/PROTOCOL.md §6): NOT_FOUND, INVALID_ARGUMENT, INVALID_STATE, BUSY, TOO_LARGE, JOURNAL_UNAVAILABLE, LIMIT_EXCEEDED, AUTH_FAILED, SHUTTING_DOWN, ...' },
          message: { type: 'string', description: 'For people; may change.' },
        },
      },
    },
  },
  SubmitRequest: {
    type: 'object',
    required: ['kind'],
    properties: {
      kind: { type: 'string', minLength: 1, description: 'Job kind (at most 255 UTF-8 bytes).' },
      args: { description: 'Arguments: a string is sent as its UTF-8 bytes, any other JSON value as JSON text.' },
      argsBase64: { type: 'string', contentEncoding: 'base64', description: 'Arguments as raw bytes (instead of args).' },
      priority: int(0, 255),
      tier: { type: 'string', enum: ['paid', 'free'], description: 'paid = priority 10, free = 0; priority wins if both are given.' },
      timeoutMs: { ...int(0, 0xffff_ffff), description: 'Run timeout per attempt; 0 = the scheduler default.' },
      retries: { ...int(0, 0xfffe), description: 'Retries after the first attempt; absent = the scheduler default.' },
      estMs: { ...int(0, 0xffff_ffff), description: 'Estimated run time: shorter runs first among equal priority.' },
      delayMs: { ...int(0, 0xffff_ffff), description: 'Do not start before this many ms from now.' },
      key: { type: 'string', description: 'Idempotency key: a second submit with it answers 200 with the first job.' },
    },
  },
  Job: {
    type: 'object',
    required: ['id', 'kind', 'state', 'priority', 'attempts', 'maxRetries', 'timeoutMs', 'createdAt'],
    properties: {
      id: int(1),
      kind: { type: 'string' },
      state: JOB_STATE,
      priority: int(0, 255),
      attempts: { ...int(0), description: 'Attempts started (the current one while RUNNING).' },
      maxRetries: int(0),
      timeoutMs: int(0),
      createdAt: { type: 'integer', description: 'Wall-clock ms.' },
      startedAt: { type: 'integer', description: 'Start of the last attempt, wall-clock ms.' },
      finishedAt: { type: 'integer', description: 'Wall-clock ms.' },
      worker: { type: 'string', description: 'Worker of the last attempt.' },
      error: { type: 'string', description: 'FAILED: the last error.' },
      key: { type: 'string' },
      notBefore: { type: 'integer', description: 'QUEUED and waiting for a delay or backoff: when it becomes runnable, wall-clock ms.' },
      resultBytes: { type: 'integer', description: 'DONE: size of the result.' },
      result: {
        type: 'object',
        description: 'DONE (single job answers): text when the bytes are UTF-8 (json too when that parses), else base64.',
        properties: { bytes: int(0), text: { type: 'string' }, json: {}, base64: { type: 'string' } },
      },
      args: {
        type: ['object', 'null'],
        description: 'Single job answers: a preview of the first 4096 bytes of the arguments (null once DONE: they are not kept).',
        properties: { bytes: int(0), text: { type: 'string' }, hex: { type: 'string' }, truncated: { type: 'boolean' } },
      },
      existing: { type: 'boolean', description: 'POST /api/jobs: an idempotency key matched an existing job.' },
    },
  },
  JobPage: {
    type: 'object',
    required: ['jobs', 'total', 'next'],
    properties: {
      jobs: { type: 'array', items: ref('Job') },
      total: { type: 'integer', description: 'Jobs matching the filter in all.' },
      next: { type: 'integer', description: 'Cursor for the next page (?after=); 0 when there is none.' },
    },
  },
  Kind: {
    type: 'object',
    properties: {
      kind: { type: 'string' },
      queued: int(0),
      delayed: int(0),
      running: int(0),
      done: int(0),
      failed: int(0),
      cancelled: int(0),
      oldestQueuedMs: int(0),
      donePerSec: int(0),
      submittedPerSec: int(0),
      workers: int(0),
      paused: { type: 'boolean' },
    },
  },
  Worker: {
    type: 'object',
    properties: {
      id: { type: 'string' },
      name: { type: 'string' },
      capabilities: { type: 'array', items: { type: 'string' } },
      concurrency: int(1),
      running: int(0),
      draining: { type: 'boolean' },
      connectedAt: { type: 'integer' },
      lastHeartbeatAt: { type: 'integer' },
      heartbeatAgeMs: int(0),
      stuck: int(0),
      done: int(0),
      failed: int(0),
      runningJobs: { type: 'array', description: 'GET /api/workers/{id} only.', items: { type: 'object', properties: { id: int(1), kind: { type: 'string' }, attempt: int(1), startedAt: { type: 'integer' } } } },
      abandonedJobs: { type: 'array', description: 'GET /api/workers/{id} only: attempts it was told to abandon and has not answered.', items: int(1) },
    },
  },
};

/** Per route (`METHOD /path`): parameters, body and answers beyond the defaults. */
const OPERATIONS: Record<string, Json> = {
  'GET /health': { responses: { '200': json({ type: 'object' }, 'The process serves.') } },
  'GET /ready': {
    responses: {
      '200': json({ type: 'object' }, 'Ready.'),
      '503': json({ type: 'object', properties: { ready: { const: false }, reason: { enum: ['recovering', 'journal_unavailable', 'stopping'] }, message: { type: 'string' } } }, 'Not ready, with the reason.'),
    },
  },
  'GET /metrics': { responses: { '200': { description: 'Prometheus text format 0.0.4.', content: { 'text/plain': { schema: { type: 'string' } } } } } },
  'GET /api/info': { responses: { '200': json({ type: 'object' }, 'Version, whether a token is required, limits.') } },
  'GET /api/stats': { responses: { '200': json({ type: 'object' }, 'The wire STATS reply plus `ready`.') } },
  'GET /api/stats/history': { responses: { '200': json({ type: 'object', properties: { intervalMs: { type: 'integer' }, done: { type: 'array', items: { type: 'integer' } }, failed: { type: 'array', items: { type: 'integer' } } } }, 'Per-second counts, oldest first.') } },
  'GET /api/events': { responses: { '200': { description: 'text/event-stream: events hello, jobs ([id, kind, state, attempt] rows), workers, stats, lost.', content: { 'text/event-stream': { schema: { type: 'string' } } } }, '429': ERR('Too many subscribers.') } },
  'GET /api/kinds': { parameters: [query('limit', 'Kinds per page', int(1, 1000)), query('offset', 'Kinds to skip', int(0))], responses: { '200': json({ type: 'object', properties: { kinds: { type: 'array', items: ref('Kind') }, total: { type: 'integer' } } }, 'Kinds, busiest first.') } },
  'GET /api/kinds/:kind': { responses: { '200': json(ref('Kind'), 'The kind.'), '404': ERR('Unknown kind.') } },
  'POST /api/kinds/:kind/pause': { responses: { '200': json({ type: 'object', properties: { kind: { type: 'string' }, paused: { type: 'boolean' } } }, 'Paused (durably).') } },
  'POST /api/kinds/:kind/resume': { responses: { '200': json({ type: 'object', properties: { kind: { type: 'string' }, paused: { type: 'boolean' } } }, 'Resumed (durably).') } },
  'DELETE /api/kinds/:kind/jobs': {
    parameters: [
      { name: 'confirm', in: 'query', required: true, description: 'The kind again.', schema: { type: 'string' } },
      query('state', 'Only QUEUED', { type: 'string', enum: ['QUEUED'] }),
    ],
    responses: { '200': json({ type: 'object', properties: { kind: { type: 'string' }, purged: { type: 'integer' } } }, 'How many were cancelled.'), '400': ERR('No or wrong confirm.') },
  },
  'GET /api/workers': { parameters: [query('limit', 'Workers per page', int(1, 1000)), query('offset', 'Workers to skip', int(0))], responses: { '200': json({ type: 'object', properties: { workers: { type: 'array', items: ref('Worker') }, total: { type: 'integer' } } }, 'Connected workers.') } },
  'GET /api/workers/:id': { responses: { '200': json(ref('Worker'), 'The worker.'), '404': ERR('No such worker connected.') } },
  'POST /api/workers/:id/drain': { responses: { '200': json(ref('Worker'), 'Draining.') } },
  'DELETE /api/workers/:id': { responses: { '200': json(ref('Worker'), 'The worker as it was when cut.') } },
  'POST /api/jobs': {
    parameters: [query('wait', 'Wait up to this many ms for the outcome', int(0))],
    requestBody: { required: true, content: { 'application/json': { schema: ref('SubmitRequest') } } },
    responses: {
      '201': json(ref('Job'), 'Queued, durably (with a journal): the wire ACK. With ?wait, the job as it is when it finished or the wait ran out.'),
      '200': json(ref('Job'), 'An idempotency key matched an existing job.'),
      '413': ERR('Body or arguments too large.'),
      '503': ERR('Queue full (BUSY) or journal unavailable.'),
    },
  },
  'GET /api/jobs': {
    parameters: [
      query('state', 'Only jobs in this state', JOB_STATE),
      query('kind', 'Only jobs of this kind', { type: 'string' }),
      query('after', 'Cursor: the `next` of the previous page', int(0)),
      query('limit', 'Jobs per page (default 50)', int(1, 1000)),
      query('order', 'newest (default) or oldest first', { type: 'string', enum: ['newest', 'oldest'] }),
    ],
    responses: { '200': json(ref('JobPage'), 'One page.') },
  },
  'POST /api/jobs/retry': {
    parameters: [
      query('state', 'FAILED (default) or CANCELLED', { type: 'string', enum: ['FAILED', 'CANCELLED'] }),
      query('kind', 'Only this kind', { type: 'string' }),
      query('limit', 'At most this many (default 1000)', int(1, 10_000)),
      query('after', 'Cursor from a previous call', int(0)),
    ],
    responses: { '200': json({ type: 'object', properties: { retried: { type: 'integer' }, next: { type: 'integer' } } }, 'How many were queued again.') },
  },
  'GET /api/jobs/:id': { parameters: [query('wait', 'Wait up to this many ms for the outcome', int(0))], responses: { '200': json(ref('Job'), 'The job.'), '404': ERR('Unknown or expired id.') } },
  'DELETE /api/jobs/:id': { responses: { '200': json(ref('Job'), 'Cancelled (durably).'), '409': ERR('Already finished.') } },
  'GET /api/jobs/:id/result': { responses: { '200': { description: 'The result bytes.', content: { 'application/octet-stream': { schema: { type: 'string', contentEncoding: 'binary' } } } }, '409': ERR('Not DONE.') } },
  'POST /api/jobs/:id/retry': { responses: { '200': json(ref('Job'), 'Queued again (durably).'), '409': ERR('Not FAILED or CANCELLED.') } },
  'POST /api/jobs/:id/promote': { responses: { '200': json(ref('Job'), 'Runnable now.'), '409': ERR('Not waiting for a delay or backoff.') } },
  'GET /': { responses: { '200': { description: 'The dashboard.', content: { 'text/html': { schema: { type: 'string' } } } } } },
  'GET /assets/dashboard.js': { responses: { '200': { description: 'Dashboard script.', content: { 'text/javascript': { schema: { type: 'string' } } } } } },
  'GET /assets/dashboard.css': { responses: { '200': { description: 'Dashboard style.', content: { 'text/css': { schema: { type: 'string' } } } } } },
  'GET /api/openapi.json': { responses: { '200': json({ type: 'object' }, 'This document.') } },
};

/** The `METHOD /path` key of a route in OPERATIONS. */
export function operationKey(route: Route): string {
  return `${route.method} ${route.path}`;
}

/** True when every route has an OPERATIONS entry (tests). */
export function undocumentedRoutes(routes: readonly Route[]): string[] {
  return routes.map(operationKey).filter((k) => OPERATIONS[k] === undefined);
}

/** Builds the document from the route table. */
export function openApiDocument(routes: readonly Route[]): Json {
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    const path = route.path.replace(/:([a-z]+)/gi, '{$1}');
    const pathParams = [...route.path.matchAll(/:([a-z]+)/gi)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const op = OPERATIONS[operationKey(route)] ?? {};
    const extra = (op['parameters'] as Json[] | undefined) ?? [];
    const responses: Json = {
      ...(op['responses'] as Json | undefined),
      '400': ERR('Bad request (INVALID_ARGUMENT).'),
      ...(route.mutating ? { '401': ERR('Token missing (AUTH_FAILED).'), '403': ERR('Wrong token or cross-site request (AUTH_FAILED).') } : {}),
    };
    const operation: Json = {
      summary: route.summary,
      operationId: `${route.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[^a-zA-Z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`,
      parameters: [...pathParams, ...extra],
      responses,
    };
    if (op['requestBody'] !== undefined) operation['requestBody'] = op['requestBody'];
    if (route.mutating) operation['security'] = [{ bearer: [] }];
    (paths[path] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'taskwire HTTP API',
      version: VERSION,
      description: 'A view of the taskwire wire protocol: every answer reflects durable state, errors carry the wire codes. See docs/HTTP.md.',
    },
    paths,
    components: {
      schemas: SCHEMAS,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'The --http-token; needed for changes when one is set.' } },
    },
  };
}

/** The route serving the document (`routes` read lazily: the table includes this route). */
export function openApiRoute(routes: () => readonly Route[]): Route {
  let cached: string | undefined;
  return {
    method: 'GET',
    path: '/api/openapi.json',
    mutating: false,
    summary: 'This OpenAPI 3.1 document',
    handler: (ctx) => {
      cached ??= JSON.stringify(openApiDocument(routes()));
      ctx.res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
      ctx.res.end(cached);
    },
  };
}
