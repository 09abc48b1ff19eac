/**
 * Who may change things over HTTP (docs/HTTP.md "Security"). With a token,
 * mutating requests carry `Authorization: Bearer TOKEN`, compared in
 * constant time (sha256 digests of both, then `timingSafeEqual`, so neither
 * the length nor the content leaks through timing). Without a token the
 * listener must be on loopback, and then only a same-origin request to a
 * loopback host name may change things: a web page on another site (CSRF)
 * or a DNS-rebound name cannot.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { HttpError } from './respond.js';

/** True for 127.0.0.0/8, ::1, ::ffff:127.x and `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** The host name of a Host header value (`name:port`, `[v6]:port`), lower-cased. */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The access rule of one listener. */
export class AccessPolicy {
  readonly #tokenDigest: Buffer | null;

  /** `token` undefined or '': none configured (allowed on loopback only; the listener checks that). */
  constructor(token: string | undefined) {
    this.#tokenDigest = token === undefined || token === '' ? null : digest(token);
  }

  /** True when mutating requests need a token. */
  get tokenRequired(): boolean {
    return this.#tokenDigest !== null;
  }

  /** True when `headers` carry the right bearer token (constant time). */
  hasToken(headers: IncomingHttpHeaders): boolean {
    if (this.#tokenDigest === null) return false;
    const auth = headers.authorization;
    if (auth === undefined || !/^bearer /i.test(auth)) return false;
    return timingSafeEqual(digest(auth.slice(7).trim()), this.#tokenDigest);
  }

  /**
   * Throws AUTH_FAILED unless a request may read (only the Host check
   * without a token: a DNS-rebound page could otherwise read job data).
   */
  checkRead(headers: IncomingHttpHeaders): void {
    if (this.#tokenDigest !== null) return;
    const host = headers.host;
    if (host === undefined || !isLoopback(hostName(host))) {
      throw new HttpError('AUTH_FAILED', 'this listener has no token: requests must name a loopback host', 403);
    }
  }

  /** Throws AUTH_FAILED unless a request may change things. */
  checkWrite(headers: IncomingHttpHeaders): void {
    if (this.#tokenDigest !== null) {
      if (headers.authorization === undefined) {
        throw new HttpError('AUTH_FAILED', 'this request changes state: send Authorization: Bearer <token>', 401, {
          'WWW-Authenticate': 'Bearer realm="taskwire"',
        });
      }
      if (!this.hasToken(headers)) throw new HttpError('AUTH_FAILED', 'wrong token', 403);
      return;
    }
    this.checkRead(headers);
    const site = headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw new HttpError('AUTH_FAILED', 'cross-site requests may not change state', 403);
    }
    const origin = headers.origin;
    if (origin !== undefined && origin !== 'null') {
      let originHost: string;
      try {
        originHost = new URL(origin).host.toLowerCase();
      } catch {
        throw new HttpError('AUTH_FAILED', 'bad Origin header', 403);
      }
      if (originHost !== (headers.host ?? '').toLowerCase()) {
        throw new HttpError('AUTH_FAILED', 'cross-origin requests may not change state', 403);
      }
    } else if (origin === 'null') {
      throw new HttpError('AUTH_FAILED', 'opaque-origin requests may not change state', 403);
    }
  }
}
