/**
 * Credentials and roles (issue 11): who may connect, and what each role may
 * send. The file holds SHA-256 digests of tokens, never tokens; a token is
 * checked in constant time against every credential's digest. Pure: no
 * sockets; reading the file is the only I/O.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TaskwireError } from '../errors.js';
import type { MessageType } from '../protocol.js';

/** What a credential may do (PROTOCOL.md §4.5 has the table). */
export type AuthRole = 'client' | 'worker' | 'admin';
export const AUTH_ROLES: readonly AuthRole[] = ['client', 'worker', 'admin'];

/** One credential: a name (logged, and the owner of the jobs it submits), its roles, its kinds. */
export interface Credential {
  readonly name: string;
  readonly roles: ReadonlySet<AuthRole>;
  /** SHA-256 of the token, 32 bytes. */
  readonly digest: Buffer;
  /** Worker role: the only kinds it may register; null = any. */
  readonly kinds: ReadonlySet<string> | null;
  /** Mutual TLS: a verified client certificate with this subject CN is this credential, without a token. */
  readonly subject?: string;
}

/** The principal of a connection after HELLO: a credential, or everyone when no auth is configured. */
export interface Principal {
  /** '' when no auth is configured (every job belongs to nobody, and everybody sees it). */
  readonly name: string;
  readonly roles: ReadonlySet<AuthRole>;
  readonly kinds: ReadonlySet<string> | null;
  /** Sees and acts on every job (admin role, or no auth configured). */
  readonly all: boolean;
}

/** Everyone, when the scheduler has no credentials (one trusted network, as before issue 11). */
export const ANYONE: Principal = { name: '', roles: new Set(AUTH_ROLES), kinds: null, all: true };

/** SHA-256 of a token, as hex (what the credentials file stores). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random token (32 bytes, base64url) and its hash, for `taskwire-server --new-token`. */
export function newToken(): { token: string; sha256: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, sha256: hashToken(token) };
}

function invalid(where: string, message: string): TaskwireError {
  return new TaskwireError('INVALID_ARGUMENT', `${where}: ${message}`);
}

/** The scheduler's credentials. Immutable: a reload builds a new set. */
export class Credentials {
  readonly #list: readonly Credential[];

  constructor(list: readonly Credential[]) {
    const names = new Set<string>();
    for (const c of list) {
      if (names.has(c.name)) throw invalid('credentials', `the name "${c.name}" appears twice`);
      names.add(c.name);
    }
    this.#list = list;
  }

  /** The old `--token`: one credential, `admin`, with every role. */
  static fromToken(token: string): Credentials {
    return new Credentials([{ name: 'admin', roles: new Set(AUTH_ROLES), digest: createHash('sha256').update(token, 'utf8').digest(), kinds: null }]);
  }

  /**
   * Parses a credentials file: a JSON array of `{ name, roles, token_sha256,
   * kinds? }`. Every mistake names the file, the entry and the field.
   */
  static parse(text: string, where = 'credentials file'): Credentials {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw invalid(where, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!Array.isArray(data)) throw invalid(where, 'must be a JSON array of { name, roles, token_sha256, kinds? }');
    const list = data.map((entry: unknown, i): Credential => {
      const at = `${where}: entry ${i + 1}`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw invalid(at, 'must be an object');
      const e = entry as Record<string, unknown>;
      for (const key of Object.keys(e)) {
        if (!['name', 'roles', 'token_sha256', 'kinds', 'cert_subject'].includes(key)) {
          throw invalid(at, `unknown field "${key}" (allowed: name, roles, token_sha256, kinds, cert_subject)`);
        }
      }
      if (typeof e['name'] !== 'string' || e['name'] === '' || e['name'].length > 200) throw invalid(at, '"name" must be a non-empty string');
      const roles = e['roles'];
      if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r): r is AuthRole => AUTH_ROLES.includes(r as AuthRole))) {
        throw invalid(at, `"roles" must be a non-empty list of ${AUTH_ROLES.join(', ')}`);
      }
      const hex = e['token_sha256'];
      if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/i.test(hex)) {
        throw invalid(at, '"token_sha256" must be the 64 hex digits of a token\'s SHA-256 (taskwire-server --new-token prints one); never the token');
      }
      let kinds: Set<string> | null = null;
      if (e['kinds'] !== undefined) {
        const k = e['kinds'];
        if (!Array.isArray(k) || !k.every((x): x is string => typeof x === 'string' && x !== '')) throw invalid(at, '"kinds" must be a list of job kinds');
        kinds = new Set(k);
      }
      const subject = e['cert_subject'];
      if (subject !== undefined && (typeof subject !== 'string' || subject === '')) throw invalid(at, '"cert_subject" must be a certificate subject CN');
      const c: Credential = { name: e['name'], roles: new Set(roles), digest: Buffer.from(hex, 'hex'), kinds, ...(subject === undefined ? {} : { subject }) };
      return c;
    });
    return new Credentials(list);
  }

  /** Reads and parses a credentials file. */
  static load(path: string): Credentials {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw invalid(`credentials file ${path}`, `cannot be read (${err instanceof Error ? err.message : String(err)})`);
    }
    return Credentials.parse(text, `credentials file ${path}`);
  }

  /** The credential a verified client certificate's subject CN names, if any. */
  bySubject(cn: string): Credential | undefined {
    return this.#list.find((c) => c.subject === cn);
  }

  get size(): number {
    return this.#list.length;
  }

  /** Merges another set (the `--token` admin beside an `--auth` file). */
  with(other: Credentials): Credentials {
    return new Credentials([...this.#list, ...other.#list]);
  }

  /**
   * The credential whose token this is, or undefined. Constant time in the
   * token: its SHA-256 is compared with every digest by timingSafeEqual, and
   * every comparison is made whether or not one already matched.
   */
  verify(token: string | undefined): Credential | undefined {
    const digest = createHash('sha256').update(token ?? '', 'utf8').digest();
    let found: Credential | undefined;
    for (const c of this.#list) {
      if (timingSafeEqual(digest, c.digest) && token !== undefined) found ??= c;
    }
    return found;
  }
}

/** The principal of an authenticated credential. */
export function principalOf(c: Credential): Principal {
  return { name: c.name, roles: c.roles, kinds: c.kinds, all: c.roles.has('admin') };
}

/**
 * Requests each role may send on a connection of each kind (PROTOCOL.md
 * §4.5). `client`: its own jobs; `admin`: everything; a `worker` connection
 * answers jobs it holds and sends nothing else. Handshake and keep-alive
 * frames are allowed to all.
 */
const CLIENT_REQUESTS: ReadonlySet<MessageType> = new Set(['SUBMIT', 'WATCH', 'STATUS', 'CANCEL', 'LIST', 'FOLLOW']);
const ADMIN_REQUESTS: ReadonlySet<MessageType> = new Set(['WORKERS', 'STATS', 'COMPACT', 'ADMIN']);
const WORKER_ANSWERS: ReadonlySet<MessageType> = new Set(['RESULT', 'FAIL', 'PROGRESS']);
const ALWAYS: ReadonlySet<MessageType> = new Set(['HEARTBEAT', 'GOODBYE']);

/** Whether `p` may send `type` on a connection opened with HELLO `connRole`. */
export function mayRequest(p: Principal, connRole: 'client' | 'worker', type: MessageType): boolean {
  if (ALWAYS.has(type)) return true;
  if (connRole === 'worker') {
    if (WORKER_ANSWERS.has(type)) return true;
    // Read-only requests from a worker connection: only an admin's (or anyone's without auth).
    return p.roles.has('admin') && (type === 'STATUS' || type === 'LIST' || type === 'WORKERS' || type === 'STATS');
  }
  if (CLIENT_REQUESTS.has(type)) return p.roles.has('client') || p.roles.has('admin');
  if (ADMIN_REQUESTS.has(type)) return p.roles.has('admin');
  return false;
}

/** Whether `p` may open a connection of this role (HELLO), and register these kinds as a worker. */
export function mayConnect(p: Principal, connRole: 'client' | 'worker', kinds: readonly string[]): string | undefined {
  if (connRole === 'worker') {
    if (!p.roles.has('worker') && !p.roles.has('admin')) return `credential "${p.name}" has no worker role`;
    if (p.kinds !== null) {
      const denied = kinds.filter((k) => !p.kinds!.has(k));
      if (denied.length > 0) return `credential "${p.name}" may not run ${denied.map((k) => `"${k}"`).join(', ')}`;
    }
    return undefined;
  }
  if (!p.roles.has('client') && !p.roles.has('admin')) return `credential "${p.name}" has no client role`;
  return undefined;
}
