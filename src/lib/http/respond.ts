/**
 * HTTP answers and request bodies: JSON responses, the error body
 * `{ "error": { "code", "message" } }` with the wire protocol's stable codes
 * (docs/HTTP.md "Errors"), the HTTP status each code maps to, and bounded
 * body reading. No routing and no policy here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TaskwireError, type ErrorCode } from '../errors.js';

/**
 * An error answered to an HTTP client: a stable code plus, where the code
 * alone does not decide it, the HTTP status (401 vs 403, 405, 429 vs 503).
 */
export class HttpError extends TaskwireError {
  override name = 'HttpError';
  constructor(
    code: ErrorCode,
    message: string,
    /** Overrides {@link statusOf}(code). */
    readonly status?: number,
    /** Extra response headers (Allow, WWW-Authenticate, Retry-After). */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(code, message);
  }
}

/** The HTTP status of an error code (docs/HTTP.md "Errors"). */
export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'NOT_FOUND':
      return 404;
    case 'INVALID_ARGUMENT':
    case 'BAD_FRAME':
    case 'TRUNCATED_PAYLOAD':
    case 'BAD_HANDSHAKE':
    case 'BAD_VERSION':
    case 'UNKNOWN_COMMAND':
      return 400;
    case 'AUTH_FAILED':
      return 401;
    case 'FORBIDDEN':
      return 403;
    case 'INVALID_STATE':
      return 409;
    case 'TOO_LARGE':
    case 'FRAME_TOO_LARGE':
      return 413;
    case 'LIMIT_EXCEEDED':
      return 429;
    case 'BUSY':
    case 'JOURNAL_UNAVAILABLE':
    case 'JOURNAL_LOCKED':
    case 'SHUTTING_DOWN':
    case 'CLOSED':
    case 'SLOW_CONSUMER':
    case 'HEARTBEAT_TIMEOUT':
    case 'UNREACHABLE':
      return 503;
    case 'TIMEOUT':
      return 504;
    case 'JOURNAL_CORRUPT':
    case 'INTERNAL':
      return 500;
    default: {
      const never: never = code;
      return never;
    }
  }
}

/** Headers every answer carries: no sniffing, no caching of live data. */
const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-store',
} as const;

/** Sends `body` as JSON with `status`. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...COMMON_HEADERS,
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Sends the error body of `err`; anything not a TaskwireError is INTERNAL (500) without its details. */
export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    // A streamed answer (metrics, SSE) cannot change its status any more: cut it.
    res.destroy();
    return;
  }
  if (err instanceof TaskwireError) {
    const status = err instanceof HttpError && err.status !== undefined ? err.status : statusOf(err.code);
    const headers: Record<string, string> = err instanceof HttpError && err.headers !== undefined ? { ...err.headers } : {};
    if (err.code === 'BUSY' && headers['Retry-After'] === undefined) headers['Retry-After'] = '1';
    sendJson(res, status, { error: { code: err.code, message: err.message } }, headers);
    return;
  }
  // Never a stack trace to the client (issue 10).
  sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
}

/** Sends a fixed text asset (the dashboard) with its content type and security headers. */
export function sendAsset(res: ServerResponse, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(200, {
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-cache',
    ...headers,
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * Reads a request body of at most `maxBytes`: a larger Content-Length is
 * refused before anything is read, a body that grows past it while
 * streaming is cut (TOO_LARGE). Chunks are kept in a list and copied once.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(new HttpError('TOO_LARGE', `request body of ${declared} bytes is over the limit of ${maxBytes}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        req.resume(); // discard the rest; the connection is closed after the answer
        reject(new HttpError('TOO_LARGE', `request body is over the limit of ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new HttpError('INVALID_ARGUMENT', `request body could not be read: ${err.message}`));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * Parses a JSON object body. An empty body is `{}`; a body needs
 * `Content-Type: application/json` (a cross-site form cannot send that
 * without a CORS preflight, which this server never grants).
 */
export function parseJsonObject(req: IncomingMessage, body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpError('INVALID_ARGUMENT', `request body must be application/json, got "${type || 'no content type'}"`, 415);
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError('INVALID_ARGUMENT', `request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError('INVALID_ARGUMENT', 'request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
