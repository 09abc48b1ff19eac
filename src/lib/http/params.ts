/**
 * Validation of query parameters, path segments and JSON fields: each
 * helper returns the value or throws INVALID_ARGUMENT naming the field, so
 * handlers read as a list of fields.
 */
import { MAX_STR8_BYTES } from '../protocol.js';
import { HttpError } from './respond.js';

/** An integer in [min, max] from a query string value; `fallback` when absent or empty. */
export function queryInt(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const text = query.get(name);
  if (text === null || text === '') return fallback;
  if (!/^\d+$/.test(text)) throw new HttpError('INVALID_ARGUMENT', `query parameter "${name}" must be an integer from ${min} to ${max}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new HttpError('INVALID_ARGUMENT', `query parameter "${name}" must be an integer from ${min} to ${max}`);
  }
  return n;
}

/** One of `allowed` from a query string value; `fallback` when absent or empty. */
export function queryEnum<T extends string>(query: URLSearchParams, name: string, allowed: readonly T[], fallback: T): T {
  const text = query.get(name);
  if (text === null || text === '') return fallback;
  if (!(allowed as readonly string[]).includes(text)) {
    throw new HttpError('INVALID_ARGUMENT', `query parameter "${name}" must be one of ${allowed.filter((a) => a !== '').join(', ')}`);
  }
  return text as T;
}

/** A job id from a path segment. */
export function jobIdParam(text: string): number {
  const n = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new HttpError('INVALID_ARGUMENT', `"${text.slice(0, 40)}" is not a job id`);
  return n;
}

/** A job kind or worker name from the path or query: non-empty, at most 255 UTF-8 bytes (PROTOCOL.md str8). */
export function nameParam(what: string, text: string): string {
  if (text === '' || Buffer.byteLength(text) > MAX_STR8_BYTES) {
    throw new HttpError('INVALID_ARGUMENT', `${what} must be 1 to ${MAX_STR8_BYTES} bytes`);
  }
  return text;
}

/** An optional integer field of a JSON body, in [min, max]. */
export function bodyInt(body: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new HttpError('INVALID_ARGUMENT', `"${name}" must be an integer from ${min} to ${max}`);
  }
  return v;
}

/** An optional string field of a JSON body, at most `maxBytes` UTF-8 bytes. */
export function bodyString(body: Record<string, unknown>, name: string, fallback: string, maxBytes = MAX_STR8_BYTES): string {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string' || Buffer.byteLength(v) > maxBytes) {
    throw new HttpError('INVALID_ARGUMENT', `"${name}" must be a string of at most ${maxBytes} bytes`);
  }
  return v;
}
