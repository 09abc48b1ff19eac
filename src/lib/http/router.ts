/**
 * Method + path matching for the HTTP API: a fixed table of routes with
 * `:param` segments, matched segment by segment. A path that exists with
 * another method answers 405 with `Allow`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CoreBridge } from './core-bridge.js';
import type { EventHub } from './live-events.js';
import type { MetricsInput } from './metrics.js';
import type { RateHistory } from './rate-history.js';

/** Why the scheduler is not ready: replaying its journal, the journal cannot store records, or stopping. */
export type NotReadyReason = 'recovering' | 'journal_unavailable' | 'stopping';

/** Whether the scheduler can take requests now (`GET /ready`). */
export type Readiness = { ready: true } | { ready: false; reason: NotReadyReason; message: string };

/** What handlers reach of the listener and the scheduler. */
export interface ApiState {
  /** The core's sessions; throws BUSY (503) while the journal is being replayed. */
  bridge(): CoreBridge;
  readonly hub: EventHub;
  readonly history: RateHistory;
  readiness(): Readiness;
  metricsInput(): Promise<MetricsInput>;
  /** Static facts for the dashboard (`GET /api/info`). */
  info(): Record<string, unknown>;
  /** Longest `?wait=` accepted, ms. */
  readonly maxWaitMs: number;
}

/** One request being handled. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Decoded `:param` segments. */
  params: Record<string, string>;
  /** The request body (read, bounded, for mutating routes; empty otherwise). */
  body: Buffer;
  /** Aborted when the listener stops: requests that wait answer at once. */
  signal: AbortSignal;
  state: ApiState;
}

export type Method = 'GET' | 'POST' | 'DELETE';

/** A route of the API. */
export interface Route {
  method: Method;
  /** `/api/jobs/:id`: segments, `:name` captures one. */
  path: string;
  /** Changes state: needs the token (docs/HTTP.md "Security"). */
  mutating: boolean;
  /** One line for docs and the OpenAPI document. */
  summary: string;
  handler(ctx: RequestContext): Promise<void> | void;
}

/** The outcome of matching. */
export type Match =
  | { type: 'route'; route: Route; params: Record<string, string> }
  | { type: 'method'; allowed: Method[] }
  | { type: 'none' };

/** See the module comment. */
export class Router {
  readonly #routes: { route: Route; segments: string[] }[];

  constructor(routes: readonly Route[]) {
    this.#routes = routes.map((route) => ({ route, segments: route.path.split('/').slice(1) }));
  }

  /** Every route, in table order. */
  get routes(): Route[] {
    return this.#routes.map((r) => r.route);
  }

  /** Finds the route for `method` and `pathname` (raw, percent-encoded). Throws URIError on bad escapes. */
  match(method: string, pathname: string): Match {
    const parts = pathname.split('/').slice(1);
    const allowed: Method[] = [];
    for (const { route, segments } of this.#routes) {
      if (segments.length !== parts.length) continue;
      let params: Record<string, string> | undefined = {};
      for (let i = 0; i < segments.length; i++) {
        const seg = segments[i]!;
        const part = parts[i]!;
        if (seg.startsWith(':')) {
          if (part === '') {
            params = undefined;
            break;
          }
          params[seg.slice(1)] = decodeURIComponent(part);
        } else if (seg !== part) {
          params = undefined;
          break;
        }
      }
      if (params === undefined) continue;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { type: 'route', route, params };
      if (!allowed.includes(route.method)) allowed.push(route.method);
    }
    return allowed.length > 0 ? { type: 'method', allowed } : { type: 'none' };
  }
}
