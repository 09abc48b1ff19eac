#!/usr/bin/env node
/**
 * The taskwire scheduler: accepts clients and workers over TCP, and hands
 * their messages to the state machine in src/lib/scheduler-core.ts. This
 * file is the socket layer (handshake, connections, the one timer, the
 * journal's lifecycle) plus the `taskwire-server` CLI.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket, type Server as TlsServer, type TlsOptions } from 'node:tls';
import { ANYONE, Credentials, mayConnect, newToken, principalOf, type Principal } from './lib/auth/credentials.js';
import { readFileSync } from 'node:fs';
import { isMain, parseAddress, UsageError, usageLine } from './lib/cli.js';
import { parseArgv, type OptionTable } from './lib/cli/args.js';
import { defineSchema, loadConfig, printConfig, type LoadedConfig } from './lib/config.js';
import { Connection } from './lib/connection.js';
import { TaskwireError } from './lib/errors.js';
import { HttpServer, type HttpOptions } from './lib/http/http-server.js';
import type { FsyncMode, Journal, JournalFaults } from './lib/journal.js';
import { DEFAULT_MAX_PAYLOAD, encode, PROTOCOL_VERSION, type LimitStats, type Message } from './lib/protocol.js';
import {
  ClientSession,
  SchedulerCore,
  type CoreObserver,
  type CoreOptions,
  type LogLevel,
  type Peer,
  type Session,
  WorkerSession,
} from './lib/scheduler-core.js';
import { VERSION } from './lib/version.js';

/** Options of a {@link Scheduler}; every timing knob is settable so fault tests run in seconds. */
export interface SchedulerOptions
  extends Omit<CoreOptions, 'journal' | 'journalStats' | 'compact' | 'log' | 'serverVersion'> {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 9001; 0 picks a free port. */
  port?: number;
  /** Heartbeat interval both ways; a peer silent for 3 intervals is dropped. Default 1000 ms. */
  heartbeatMs?: number;
  /** A connection that sends no HELLO within this is closed. Default 5000 ms. */
  helloTimeoutMs?: number;
  /** Largest frame payload accepted. Default 16 MiB. */
  maxPayloadBytes?: number;
  /** How often timeouts, delays and retries are checked. Default 20 ms. */
  tickMs?: number;
  /** Clients and workers must present this token in HELLO: one credential, `admin`, with every role. */
  token?: string;
  /**
   * Credentials file (issue 11): a JSON list of `{ name, roles, token_sha256,
   * kinds?, cert_subject? }`. Reloaded by reload() (SIGHUP). Without it and
   * without `token`, everyone may do everything (one trusted network).
   */
  auth?: string;
  /** Serve the protocol over TLS (node:tls); files reloaded by reload() (SIGHUP). */
  tls?: { cert: string; key: string; clientCa?: string };
  /** Connections at most; past it new ones get LIMIT_EXCEEDED. Default 4096. */
  maxConnections?: number;
  /** Connections from one address at most. Default 1024. */
  maxConnectionsPerAddress?: number;
  /** Requests awaiting an answer per client connection; past it the scheduler stops reading that connection until answers go out (it waits, no error). Default 10,000. */
  maxInFlight?: number;
  /** Jobs one connection may wait on (SUBMIT with wait, WATCH); past it LIMIT_EXCEEDED. Default 100,000. */
  maxWaits?: number;
  /** Default 'info': connections and failures. 'debug' logs every job transition. */
  logLevel?: LogLevel;
  /** Where log lines go. Default: stderr. */
  log?: (line: string) => void;
  /** Turns on the journal (durability). Absent: memory only, lost on a crash. */
  dataDir?: string;
  fsync?: FsyncMode;
  compactBytes?: number;
  /** Start even if the journal is corrupt in the middle (truncating there). */
  repair?: boolean;
  /** Fault injection for the journal's writes (tests only). @internal */
  journalFaults?: JournalFaults;
  /**
   * Close a connection with SLOW_CONSUMER when this many bytes wait unsent to
   * it (a peer that does not read). Default 64 MiB.
   */
  maxBufferedBytes?: number;
  /** Stop reading a peer's requests while this many bytes wait unsent to it. Default 8 MiB. */
  readPauseBytes?: number;
  /**
   * Graceful stop: how long running jobs get to finish (their results are
   * stored) after dispatch is frozen. Jobs still running then are queued
   * again at the next start, without an attempt charged. Default 10 s.
   */
  stopGraceMs?: number;
  /**
   * Serve the HTTP API, `/metrics` and the dashboard (docs/HTTP.md). Off
   * when absent. Loopback by default; another address needs `httpToken`.
   */
  http?: HttpOptions;
  /** Token for HTTP requests that change state (`Authorization: Bearer …`). */
  httpToken?: string;
}

/** Largest frame accepted before the handshake: a HELLO is small (DESIGN.md rule 3). */
export const PRE_HELLO_MAX_PAYLOAD = 64 * 1024;

const LEVELS: Record<LogLevel, number> = { silent: 0, error: 1, info: 2, debug: 3 };

/** journal.ts FSYNC_BUCKETS_S, set when the journal module is loaded. */
let FSYNC_BOUNDS: readonly number[] = [];

/** One observer that tells each of `observers` (absent ones skipped); undefined if none. */
function fanOut(...observers: (CoreObserver | undefined)[]): CoreObserver | undefined {
  const list = observers.filter((o): o is CoreObserver => o !== undefined);
  if (list.length <= 1) return list[0];
  return {
    job: (id, kind, state, attempt) => {
      for (const o of list) o.job(id, kind, state, attempt);
    },
    worker: (event, id, name) => {
      for (const o of list) o.worker(event, id, name);
    },
  };
}

/**
 * The scheduler, embeddable.
 * @example
 * const scheduler = new Scheduler({ host: '127.0.0.1', port: 0 });
 * const { port } = await scheduler.listen();
 * // ... workers and clients connect to port ...
 * await scheduler.close();
 */
export class Scheduler {
  readonly #opts: SchedulerOptions;
  readonly #server: Server;
  readonly #connections = new Set<Connection>();
  readonly #logLevel: number;
  #core: SchedulerCore | undefined;
  #journal: Journal | undefined;
  #timer: NodeJS.Timeout | undefined;
  #compacting: Promise<void> | undefined;
  /** A compaction requested while one ran; starts when it ends. */
  #compactAgain: Promise<import('./lib/protocol.js').JournalStats> | undefined;
  #closing: Promise<void> | undefined;
  /** During a graceful stop: resolves the wait once no worker holds a job and every outcome is stored. */
  #settled: (() => void) | undefined;
  #nextSession = 1;
  /** Resolvers waiting for the last connection to close. */
  readonly #idle: (() => void)[] = [];
  #address: { host: string; port: number } | undefined;
  /** Credentials (issue 11); undefined = no auth configured. Replaced by reload(). */
  #credentials: Credentials | undefined;
  /**
   * TLS: a tls.Server that takes the connections whose first byte is a TLS
   * ClientHello (it verifies client certificates and sets `authorized`); its
   * certificates are replaced by reload().
   */
  #tls: TlsServer | undefined;
  /** Open connections per remote address (the per-address cap). */
  readonly #perAddress = new Map<string, number>();
  /** TLS connections between accept and the end of their handshake (count against maxConnections). */
  #accepting = 0;
  /** Counters for STATS `limits`. */
  #refused = 0;
  #authFailures = 0;
  /** Recent authentication failures per address (bounded), for the growing delay. */
  readonly #failedFrom = new Map<string, { count: number; at: number }>();
  /** The HTTP listener (`http` option); created in listen(). */
  #http: HttpServer | undefined;

  constructor(opts: SchedulerOptions = {}) {
    this.#opts = opts;
    this.#loadSecrets();
    this.#logLevel = LEVELS[opts.logLevel ?? 'info'];
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /** The state machine (for tests and embedders that want to look inside). Valid after listen(). */
  get core(): SchedulerCore {
    if (this.#core === undefined) throw new TaskwireError('INVALID_STATE', 'scheduler is not listening');
    return this.#core;
  }

  /** Opens the journal (replaying it), then listens. Resolves with the real address. */
  async listen(): Promise<{ host: string; port: number }> {
    if (this.#address !== undefined) return this.#address;
    const opts = this.#opts;
    // The HTTP listener starts first, so /health answers and /ready says "recovering" during replay.
    // Over TLS, HTTP is HTTPS with the same certificate; without its own token, the wire's admin
    // --token guards its changes (issue 11).
    const httpOpts: HttpOptions | undefined =
      opts.http === undefined ? undefined : opts.tls === undefined ? opts.http : { ...opts.http, tls: { cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) } };
    const http = httpOpts === undefined ? undefined : new HttpServer(httpOpts, opts.httpToken ?? opts.token);
    if (http !== undefined) {
      await http.listen();
      this.#http = http;
    }
    try {
      return await this.#listenWire(http);
    } catch (err) {
      await http?.destroy();
      this.#http = undefined;
      throw err;
    }
  }

  async #listenWire(http: HttpServer | undefined): Promise<{ host: string; port: number }> {
    const opts = this.#opts;
    let journal: Journal | undefined;
    const coreOpts: CoreOptions = {
      ...opts,
      maxPayloadBytes: opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD,
      limitStats: () => this.#limitStats(),
      serverVersion: VERSION,
      log: (level, line) => this.#log(level, line),
      debug: this.#logLevel >= LEVELS.debug,
      observer: fanOut(opts.observer, http?.observer),
    };
    if (opts.dataDir !== undefined) {
      // The core exists before the journal opens so replayed records stream
      // into it (a million-job journal is never held as record objects).
      let opened: Awaited<ReturnType<typeof Journal.open>> | undefined;
      const core = new SchedulerCore({
        ...coreOpts,
        journal: {
          append: (record, onDurable) =>
            opened!.journal.append(record, (err) => {
              this.#journalHealthy = err === null;
              onDurable(err);
            }),
        },
        journalStats: () => opened?.journal.stats() ?? null,
        compact: () => this.compact(),
      });
      // Loaded only when asked for: a memory-only scheduler never touches the disk code.
      const { Journal, FSYNC_BUCKETS_S } = await import('./lib/journal.js');
      FSYNC_BOUNDS = FSYNC_BUCKETS_S;
      opened = await Journal.open(
        {
          dir: opts.dataDir,
          fsync: opts.fsync ?? 'batch',
          compactBytes: opts.compactBytes ?? 64 * 1024 * 1024,
          repair: opts.repair ?? false,
          log: (line) => this.#log('info', line),
          faults: opts.journalFaults,
        },
        (record) => core.replay(record),
      );
      journal = opened.journal;
      const { queued, finished } = core.finishReplay();
      const r = opened.report;
      this.#log(
        'info',
        `journal ${opts.dataDir}: ${r.bytes} bytes, ${r.recordsReplayed} records replayed in ${r.recoverMs} ms ` +
          `(${queued} jobs queued again, ${finished} finished kept), last compaction ` +
          (r.lastCompactionAt === null ? 'never' : new Date(r.lastCompactionAt).toISOString()) +
          (r.truncatedTailBytes > 0 ? `; torn tail of ${r.truncatedTailBytes} bytes truncated` : ''),
      );
      this.#core = core;
    } else {
      this.#core = new SchedulerCore(coreOpts);
    }
    this.#journal = journal;
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(opts.port ?? 9001, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    }).catch(async (err: unknown) => {
      await journal?.close();
      throw err;
    });
    const addr = this.#server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : (opts.port ?? 9001);
    this.#address = { host, port };
    const tickMs = opts.tickMs ?? 20;
    this.#timer = setInterval(this.#tickSoon, tickMs);
    this.#timer.unref();
    http?.attach({
      core: this.#core,
      version: VERSION,
      journalHealthy: () => this.#journalHealthy,
      fsync: () => (journal === undefined ? null : { histogram: journal.fsyncTime, bounds: FSYNC_BOUNDS }),
    });
    return this.#address;
  }

  /** The HTTP listener's address (after listen(), with the `http` option). */
  get httpAddress(): { host: string; port: number } | undefined {
    return this.#http?.address;
  }

  /** False while the journal's last write failed (a full disk): readiness (HTTP `/ready`). True without a journal. */
  get journalHealthy(): boolean {
    return this.#journalHealthy;
  }
  #journalHealthy = true;

  /**
   * Reads the credentials file and TLS certificates again (SIGHUP):
   * connections keep going; new ones use the new files. A file that does
   * not load leaves the current ones in place and is reported.
   */
  reload(): void {
    try {
      this.#loadSecrets();
      this.#log('info', `reloaded${this.#opts.auth !== undefined ? ` ${this.#credentials?.size ?? 0} credential(s)` : ''}${this.#tls !== undefined ? ' and the TLS certificates' : ''}`);
    } catch (err) {
      this.#log('error', `reload failed, keeping the current credentials and certificates: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #loadSecrets(): void {
    const o = this.#opts;
    let creds = o.auth === undefined ? undefined : Credentials.load(o.auth);
    if (o.token !== undefined) creds = creds === undefined ? Credentials.fromToken(o.token) : creds.with(Credentials.fromToken(o.token));
    if (o.tls !== undefined) {
      const read = (what: string, path: string): Buffer => {
        try {
          return readFileSync(path);
        } catch (err) {
          throw new TaskwireError('INVALID_ARGUMENT', `cannot read the TLS ${what} ${path}: ${err instanceof Error ? err.message : String(err)}`);
        }
      };
      const ctx: TlsOptions = { cert: read('certificate', o.tls.cert), key: read('key', o.tls.key) };
      const mutual = o.tls.clientCa !== undefined;
      if (mutual) ctx.ca = read('client CA', o.tls.clientCa!);
      try {
        if (this.#tls === undefined) {
          const server = createTlsServer({ ...ctx, requestCert: mutual, rejectUnauthorized: mutual }, (secure) => {
            const core = this.#core;
            if (core === undefined || this.#closing !== undefined) secure.destroy();
            else this.#open(core, secure);
          });
          server.on('tlsClientError', (err, socket) => {
            this.#log('info', `TLS handshake with ${socket.remoteAddress ?? '?'} failed: ${err.message}`);
          });
          this.#tls = server;
        } else {
          this.#tls.setSecureContext(ctx);
        }
      } catch (err) {
        throw new TaskwireError('INVALID_ARGUMENT', `bad TLS certificate or key: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.#credentials = creds;
  }

  /** Connection limits and refusals (STATS `limits`). */
  #limitStats(): LimitStats {
    return {
      connections: this.#connections.size,
      maxConnections: this.#opts.maxConnections ?? 4096,
      maxConnectionsPerAddress: this.#opts.maxConnectionsPerAddress ?? 1024,
      maxInFlight: this.#opts.maxInFlight ?? 10_000,
      maxWaits: this.#opts.maxWaits ?? 100_000,
      refusedConnections: this.#refused,
      authFailures: this.#authFailures,
      waitsRefused: this.#core?.limitHits ?? 0,
    };
  }

  /** The listening address (after listen()). */
  get address(): { host: string; port: number } | undefined {
    return this.#address;
  }

  /** Compacts the journal now (snapshot of live state + fresh log). */
  async compact(): Promise<import('./lib/protocol.js').JournalStats> {
    const journal = this.#journal;
    if (journal === undefined) throw new TaskwireError('INVALID_STATE', 'no data directory');
    if (this.#compacting !== undefined) {
      // One is running, with a snapshot from before this request: run one more
      // after it (shared by every request that arrives meanwhile).
      this.#compactAgain ??= this.#compacting
        .catch(() => undefined)
        .then(() => {
          this.#compactAgain = undefined;
          return this.compact();
        });
      return this.#compactAgain;
    }
    const started = performance.now();
    const before = journal.stats().bytes;
    this.#compacting = journal.compact(this.core.snapshot()).finally(() => {
      this.#compacting = undefined;
    });
    await this.#compacting;
    this.#log('info', `journal compacted: ${before} -> ${journal.stats().bytes} bytes in ${Math.round(performance.now() - started)} ms`);
    return journal.stats();
  }

  #allClosed(): Promise<void> {
    if (this.#connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Runs the core's tick after the event loop's poll phase, so input already
   * waiting (a RESULT that arrived during a stall) is read before any
   * timeout is judged (DESIGN.md rule 2).
   */
  readonly #tickSoon = (): void => {
    if (this.#tickPending) return;
    this.#tickPending = true;
    setImmediate(this.#tickNow);
  };
  #tickPending = false;
  readonly #tickNow = (): void => {
    this.#tickPending = false;
    this.#tick();
  };

  #tick(): void {
    const core = this.#core;
    if (core === undefined) return;
    core.tick();
    if (this.#settled !== undefined && core.heldCount === 0 && core.unstoredCount === 0) this.#settled();
    const journal = this.#journal;
    if (journal !== undefined && this.#compacting === undefined && this.#closing === undefined && journal.needsCompaction) {
      this.compact().catch((err: unknown) => this.#log('error', `compaction failed: ${String(err)}`));
    }
  }

  #log(level: Exclude<LogLevel, 'silent'>, line: string): void {
    if (LEVELS[level] > this.#logLevel) return;
    const text = `${new Date().toISOString()} ${level.padEnd(5)} ${line}`;
    if (this.#opts.log !== undefined) this.#opts.log(text);
    else process.stderr.write(text + '\n');
  }

  /**
   * A TCP connection arrived. Limits first (connections in all and per
   * address), then, with TLS, a look at the first byte: a TLS ClientHello
   * (0x16) is handed to a TLS socket; anything else is a plain-TCP peer on a
   * TLS port, told so in a plain ERROR frame (issue 11).
   */
  #accept(socket: Socket): void {
    const core = this.#core;
    if (core === undefined || this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '?';
    const maxConnections = this.#opts.maxConnections ?? 4096;
    const perAddress = this.#opts.maxConnectionsPerAddress ?? 1024;
    const fromHere = this.#perAddress.get(address) ?? 0;
    if (this.#connections.size + this.#accepting >= maxConnections || fromHere >= perAddress) {
      this.#refused++;
      const why = fromHere >= perAddress ? `${fromHere} connections from ${address} (max ${perAddress})` : `${maxConnections} connections (the maximum)`;
      this.#log('info', `connection from ${address} refused: ${why}`);
      socket.end(encode({ type: 'ERROR', requestId: 0, code: 'LIMIT_EXCEEDED', message: `too many connections: ${why}` }));
      setTimeout(() => socket.destroy(), 2_000).unref();
      return;
    }
    this.#perAddress.set(address, fromHere + 1);
    socket.once('close', () => {
      const n = (this.#perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.#perAddress.delete(address);
      else this.#perAddress.set(address, n);
    });
    const tls = this.#tls;
    if (tls === undefined) return this.#open(core, socket);
    // Sniff the first byte; the TLS handshake must finish within the hello timeout.
    this.#accepting++;
    let settled = false;
    const timer = setTimeout(() => socket.destroy(), this.#opts.helloTimeoutMs ?? 5_000);
    timer.unref();
    const done = (): void => {
      if (settled) return;
      settled = true;
      this.#accepting--;
      clearTimeout(timer);
    };
    socket.once('close', done);
    socket.on('error', () => undefined);
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first); // the TLS socket reads it back from the buffer (no resume here)
      if (first[0] !== 0x16) {
        done();
        this.#log('info', `plain-TCP connection from ${address} to the TLS port closed`);
        socket.end(encode({ type: 'ERROR', requestId: 0, code: 'BAD_HANDSHAKE', message: 'this scheduler speaks TLS: connect with --tls (tls: true)' }));
        setTimeout(() => socket.destroy(), 2_000).unref();
        return;
      }
      tls.once('secureConnection', done); // (any handshake ending: the counter is approximate, the timer is not)
      tls.emit('connection', socket);
    });
  }

  /** A connection ready for the protocol (plain, or TLS after its handshake). */
  #open(core: SchedulerCore, socket: Socket): void {
    const id = `c${this.#nextSession++}`;
    let session: Session | undefined;
    let rejected = false;
    const opts = this.#opts;
    const maxInFlight = opts.maxInFlight ?? 10_000;
    let inFlight = 0;
    const conn: Connection = new Connection(
      socket,
      {
        onMessage: (msg: Message) => {
          if (session instanceof WorkerSession) return core.handleWorker(session, msg);
          if (session instanceof ClientSession) {
            // Pipelining past the cap waits in the kernel (issue 11): not an error. Every request
            // (all but HEARTBEAT and GOODBYE) gets exactly one ACK, REPLY or ERROR.
            if (msg.type !== 'HEARTBEAT' && msg.type !== 'GOODBYE' && ++inFlight >= maxInFlight) conn.holdInput(true);
            return core.handleClient(session, msg);
          }
          if (rejected) return;
          const next = this.#handshake(core, conn, id, msg, socket, {
            send: (m: Message) => {
              if ((m.type === 'ACK' || m.type === 'REPLY' || m.type === 'ERROR') && m.requestId !== 0) {
                if (--inFlight < maxInFlight) conn.holdInput(false);
              }
              conn.send(m);
            },
            sendAssign: (jobId, attempt, timeoutMs, kind, args) => conn.sendAssign(jobId, attempt, timeoutMs, kind, args),
            sendAck: (requestId, jobId, existing) => {
              if (requestId !== 0 && --inFlight < maxInFlight) conn.holdInput(false);
              conn.sendAck(requestId, jobId, existing);
            },
            sendEvent: (jobId, event, attempt, pct, permanent, data) => conn.sendEvent(jobId, event, attempt, pct, permanent, data),
            get writableLength() {
              return conn.writableLength;
            },
            fail: (code, message) => conn.fail(code, message),
          });
          if (next === 'rejected') rejected = true;
          else session = next;
        },
        // Called at once when the connection fails, ends or half-closes (DESIGN.md rule 2).
        onClose: (err) => {
          clearTimeout(helloTimer);
          this.#connections.delete(conn);
          if (this.#connections.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
          if (session === undefined) {
            if (err !== undefined) this.#log('info', `connection ${id} from ${conn.remote} closed before HELLO: ${err.message}`);
            return;
          }
          const reason = err === undefined ? 'connection closed' : err instanceof TaskwireError ? `${err.code}: ${err.message}` : err.message;
          core.closeSession(session, reason);
          const what = session instanceof WorkerSession ? `worker ${session.name}` : `client ${session.name}`;
          this.#log(err === undefined ? 'info' : 'error', `${what} (${id}) disconnected${err ? `: ${reason}` : ''}`);
        },
      },
      {
        // Until HELLO only a small frame is accepted (raised in #handshake): unauthenticated peers
        // cannot make the scheduler buffer 16 MiB each (DESIGN.md rule 3).
        maxPayloadBytes: Math.min(PRE_HELLO_MAX_PAYLOAD, opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD),
        peerMaxPayloadBytes: opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD,
        highWaterBytes: opts.readPauseBytes ?? 8 * 1024 * 1024,
        maxBufferedBytes: opts.maxBufferedBytes ?? 64 * 1024 * 1024,
      },
    );
    this.#connections.add(conn);
    const helloTimeoutMs = opts.helloTimeoutMs ?? 5_000;
    const helloTimer = setTimeout(() => {
      if (session === undefined && !rejected) conn.fail('BAD_HANDSHAKE', `no HELLO within ${helloTimeoutMs} ms`);
    }, helloTimeoutMs);
    helloTimer.unref();
  }

  /**
   * Who the peer is (issue 11): a verified client certificate whose subject
   * a credential names, else the HELLO's token; ANYONE without credentials.
   */
  #authenticate(token: string | undefined, socket: Socket): Principal | undefined {
    const creds = this.#credentials;
    if (creds === undefined) return ANYONE;
    if (socket instanceof TLSSocket && socket.authorized) {
      const cn = socket.getPeerCertificate().subject?.CN;
      const bySubject = typeof cn === 'string' ? creds.bySubject(cn) : undefined;
      if (bySubject !== undefined && token === undefined) return principalOf(bySubject);
    }
    const c = creds.verify(token);
    return c === undefined ? undefined : principalOf(c);
  }

  /**
   * A failed authentication: logged with the peer's address and the name it
   * gave (never the token), answered AUTH_FAILED and closed — after a delay
   * that doubles with each failure from that address within a minute.
   */
  #refuseAuth(conn: Connection, socket: Socket, name: string, why: string): 'rejected' {
    this.#authFailures++;
    const address = socket.remoteAddress ?? '?';
    const now = performance.now();
    const prev = this.#failedFrom.get(address);
    const count = prev !== undefined && now - prev.at < 60_000 ? prev.count + 1 : 1;
    this.#failedFrom.delete(address);
    this.#failedFrom.set(address, { count, at: now });
    if (this.#failedFrom.size > 10_000) this.#failedFrom.delete(this.#failedFrom.keys().next().value!);
    const delayMs = count <= 1 ? 0 : Math.min(5_000, 100 * 2 ** (count - 2));
    this.#log('info', `authentication failed from ${conn.remote} (name "${name}"): ${why}${delayMs > 0 ? `; answered in ${delayMs} ms (${count} failures)` : ''}`);
    const fail = (): void => conn.fail('AUTH_FAILED', why);
    if (delayMs === 0) fail();
    else setTimeout(fail, delayMs).unref();
    return 'rejected';
  }

  /** PROTOCOL.md §4.1: the first frame must be HELLO; answer WELCOME or ERROR and close. */
  #handshake(core: SchedulerCore, conn: Connection, id: string, msg: Message, socket: Socket, peer: Peer): Session | 'rejected' {
    if (msg.type !== 'HELLO') throw new TaskwireError('BAD_HANDSHAKE', `expected HELLO as the first frame, got ${msg.type}`);
    if (msg.version !== PROTOCOL_VERSION) {
      throw new TaskwireError('BAD_VERSION', `protocol version ${msg.version} is not supported (this scheduler speaks ${PROTOCOL_VERSION})`);
    }
    const principal = this.#authenticate(msg.token, socket);
    if (principal === undefined) return this.#refuseAuth(conn, socket, msg.name, 'missing or wrong token');
    const denied = principal === ANYONE ? undefined : mayConnect(principal, msg.role, msg.capabilities);
    if (denied !== undefined) return this.#refuseAuth(conn, socket, msg.name, denied);
    const heartbeatMs = this.#opts.heartbeatMs ?? 1_000;
    let session: Session;
    conn.setMaxPayloadBytes(this.#opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD);
    const who = principal === ANYONE ? '' : ` as "${principal.name}"`;
    if (msg.role === 'worker') {
      if (msg.capabilities.length === 0) throw new TaskwireError('INVALID_ARGUMENT', 'a worker must declare at least one capability');
      if (msg.concurrency < 1) throw new TaskwireError('INVALID_ARGUMENT', 'a worker must declare a concurrency of at least 1');
      session = core.openWorker(id, msg, conn, () => conn.send(this.#welcome(id, heartbeatMs)), principal);
      this.#log('info', `worker ${msg.name} (${id}) connected from ${conn.remote}${who}: ${msg.capabilities.join(',')} concurrency ${msg.concurrency}`);
    } else {
      conn.send(this.#welcome(id, heartbeatMs));
      session = core.openClient(id, msg.name, peer, principal);
      this.#log('info', `client ${msg.name || id} (${id}) connected from ${conn.remote}${who}`);
    }
    conn.startHeartbeat(heartbeatMs);
    return session;
  }

  #welcome(id: string, heartbeatMs: number): Message {
    return {
      type: 'WELCOME',
      version: PROTOCOL_VERSION,
      serverVersion: VERSION,
      heartbeatMs,
      maxPayloadBytes: this.#opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD,
      sessionId: id,
    };
  }

  /**
   * Graceful stop (DESIGN.md rule 1): stops accepting, freezes dispatch,
   * gives running jobs `stopGraceMs` to finish (their results are accepted
   * and stored), then tells every peer GOODBYE, closes connections, flushes
   * and closes the journal. Jobs still running at the end are queued again
   * at the next start without an attempt charged. Idempotent. Falls back to
   * destroy() when connections do not close within `timeoutMs`.
   */
  close({ timeoutMs = 5_000 }: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#http?.beginClose(); // /ready says "stopping"; reads go on during the grace
      const core = this.#core;
      if (core !== undefined) {
        core.freeze();
        if (core.heldCount > 0 || core.unstoredCount > 0) {
          const graceMs = this.#opts.stopGraceMs ?? 10_000;
          this.#log('info', `stopping: waiting up to ${graceMs} ms for ${core.heldCount} running job(s)`);
          let graceTimer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            this.#settled = resolve;
            graceTimer = setTimeout(resolve, graceMs);
          });
          clearTimeout(graceTimer);
          this.#settled = undefined;
        }
      }
      clearInterval(this.#timer);
      for (const c of this.#connections) {
        c.send({ type: 'GOODBYE', reason: 'scheduler shutting down' });
        c.end();
      }
      const connsClosed = this.#allClosed();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const outcome = await Promise.race([Promise.all([serverClosed, connsClosed]), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') for (const c of this.#connections) c.destroy();
      await this.#http?.close();
      await this.#compacting?.catch(() => undefined);
      await this.#journal?.close();
    })();
    return this.#closing;
  }

  /** Closes every connection now, without goodbyes. Idempotent. */
  destroy(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        clearInterval(this.#timer);
        this.#core?.freeze(); // lost workers' jobs are re-queued at the next start, not charged
        for (const c of this.#connections) c.destroy();
        const http = this.#http?.destroy();
        await new Promise<void>((resolve) => this.#server.close(() => resolve()));
        await http;
        await this.#compacting?.catch(() => undefined);
        await this.#journal?.close();
      })();
    } else {
      for (const c of this.#connections) c.destroy();
      void this.#http?.destroy();
    }
    return this.#closing;
  }
}

// ---------------------------------------------------------------------------
// CLI

const MIB = 1024 * 1024;

/**
 * Every setting of `taskwire-server`: the command line, `TASKWIRE_*`
 * variables and a `--config` JSON file (keys in camelCase), in that order of
 * precedence (src/lib/config.ts).
 */
const SETTINGS = defineSchema({
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  port: { type: 'number', integer: true, min: 0, max: 65535, default: 9001, help: 'port to listen on; 0 picks a free one' },
  'data-dir': { type: 'string', help: 'journal jobs to DIR and recover them after a crash' },
  fsync: { type: 'string', choices: ['batch', 'always', 'off'], help: 'when a job counts as stored (needs --data-dir)' },
  'compact-bytes': { type: 'number', integer: true, min: 4096, default: 64 * MIB, help: 'compact the journal past N bytes' },
  repair: { type: 'boolean', default: false, help: 'start even if the journal is corrupt in the middle' },
  'max-queued': { type: 'number', integer: true, min: 1, default: 2_000_000, help: 'queued jobs at most; past it SUBMIT gets BUSY' },
  'retain-count': { type: 'number', integer: true, min: 0, default: 100_000, help: 'finished jobs kept for lookup' },
  'retain-ms': { type: 'number', integer: true, min: 0, default: 3_600_000, help: '... and for at most this long' },
  'timeout-ms': { type: 'number', integer: true, min: 1, max: 0xffff_ffff, default: 10_000, help: 'default run timeout per attempt' },
  retries: { type: 'number', integer: true, min: 0, max: 0xfffe, default: 3, help: 'default retries after a failed attempt' },
  'retry-base-ms': { type: 'number', integer: true, min: 1, default: 500, help: 'first retry backoff, doubling with jitter' },
  'retry-max-ms': { type: 'number', integer: true, min: 1, default: 30_000, help: 'largest retry backoff' },
  'heartbeat-ms': { type: 'number', integer: true, min: 0, default: 1_000, help: 'heartbeat interval; silent peers dropped after 3' },
  'hello-timeout-ms': { type: 'number', integer: true, min: 1, default: 5_000, help: 'close connections that send no HELLO' },
  'max-payload-bytes': { type: 'number', integer: true, min: 1024, max: 0xffff_ffff, default: 16 * MIB, help: 'largest frame payload' },
  'max-kinds': { type: 'number', integer: true, min: 1, default: 10_000, help: 'distinct job kinds at most' },
  'max-buffered-bytes': { type: 'number', integer: true, min: MIB, default: 64 * MIB, help: 'close a peer that does not read past this (SLOW_CONSUMER)' },
  'stop-grace-ms': { type: 'number', integer: true, min: 0, default: 10_000, help: 'on SIGTERM, how long running jobs get to finish' },
  token: { type: 'string', secret: true, help: 'require this token in every HELLO' },
  auth: { type: 'string', help: 'credentials file: roles and token hashes' },
  'tls-cert': { type: 'string', help: 'serve over TLS with this certificate (PEM)' },
  'tls-key': { type: 'string', help: '... and this private key (PEM)' },
  'tls-client-ca': { type: 'string', help: 'require client certificates signed by this CA (mutual TLS)' },
  'max-connections': { type: 'number', integer: true, min: 1, default: 4096, help: 'connections at most' },
  'max-connections-per-address': { type: 'number', integer: true, min: 1, default: 1024, help: 'connections from one address at most' },
  'max-in-flight': { type: 'number', integer: true, min: 1, default: 10_000, help: 'requests awaiting answers per connection before reading pauses' },
  'max-waits': { type: 'number', integer: true, min: 1, default: 100_000, help: 'jobs one connection may wait on' },
  'new-token': { type: 'boolean', persistent: false, default: false, help: 'print a new random token and its hash, and exit' },
  'token-file': { type: 'string', help: 'read the token from this file (its first line)' },
  http: {
    type: 'string',
    help: 'also serve the HTTP API, /metrics and the dashboard at HOST:PORT',
    validate: (value) => (/^(?:\[[^\]]+\]|[^:]*):\d+$|^\d+$/.test(String(value)) ? undefined : 'HOST:PORT'),
  },
  'http-token': { type: 'string', secret: true, help: 'token for HTTP requests that change state' },
  'log-level': { type: 'string', choices: ['silent', 'error', 'info', 'debug'], default: 'info', help: 'log detail' },
  config: { type: 'string', persistent: false, help: 'a JSON file of settings' },
  'print-config': { type: 'boolean', persistent: false, default: false, help: 'print the effective settings (secrets masked) and exit' },
  help: { type: 'boolean', persistent: false, default: false, help: 'show this help' },
});

const USAGE = `Usage: taskwire-server [options]

Runs the taskwire scheduler.

Options:
  --host HOST               address to listen on (default 127.0.0.1)
  --port PORT               port to listen on; 0 picks a free one (default 9001)
  --data-dir DIR            journal jobs to DIR and recover them after a crash
                            (without it, state is in memory only and lost on a crash)
  --fsync MODE              when a job counts as stored (needs --data-dir):
                            batch (default): ACK after fsync; one fsync covers every
                              record that arrived meanwhile (group commit)
                            always: ACK after fsync, one fsync per record (slow)
                            off: ACK after write, no fsync: survives a crash of the
                              scheduler, not a power cut (the OS decides)
  --compact-bytes N         compact the journal past N bytes (default 67108864)
  --repair                  start even if the journal is corrupt in the middle
  --max-queued N            queued jobs at most; past it SUBMIT gets BUSY (default 2000000)
  --retain-count N          finished jobs kept for lookup (default 100000)
  --retain-ms MS            ... and for at most this long (default 3600000)
  --timeout-ms MS           default run timeout per attempt (default 10000)
  --retries N               default retries after a failed attempt (default 3)
  --retry-base-ms MS        first retry backoff, doubling with jitter (default 500)
  --retry-max-ms MS         largest retry backoff (default 30000)
  --heartbeat-ms MS         heartbeat interval; silent peers dropped after 3 (default 1000)
  --hello-timeout-ms MS     close connections that send no HELLO (default 5000)
  --max-payload-bytes N     largest frame payload (default 16777216)
  --max-kinds N             distinct job kinds at most; kinds with no jobs and no
                            workers are forgotten (default 10000)
  --max-buffered-bytes N    close a peer that does not read once N bytes wait unsent
                            to it, with SLOW_CONSUMER (default 67108864)
  --stop-grace-ms MS        on SIGTERM, let running jobs finish for MS ms; jobs still
                            running are queued again at the next start (default 10000)
  --token TOKEN             require this token in every HELLO (prefer TASKWIRE_TOKEN or
                            --token-file: a command line is visible to every local user)
  --token-file FILE         read the token from FILE (its first line)
  --auth FILE               credentials: a JSON list of {"name", "roles": [client|worker|admin],
                            "token_sha256", "kinds"?, "cert_subject"?}; reloaded on SIGHUP
  --new-token               print a new random token and its SHA-256 (for --auth), and exit
  --tls-cert FILE           serve over TLS with this certificate (PEM); reloaded on SIGHUP
  --tls-key FILE            ... and this private key (PEM)
  --tls-client-ca FILE      require client certificates signed by this CA (mutual TLS)
  --max-connections N       connections at most; more get LIMIT_EXCEEDED (default 4096)
  --max-connections-per-address N
                            connections from one address at most (default 1024)
  --max-in-flight N         requests awaiting an answer per connection; past it the
                            scheduler stops reading that connection for a while (default 10000)
  --max-waits N             jobs one connection may wait on (default 100000)
  --http HOST:PORT          also serve the HTTP API, /metrics and the dashboard there
                            (off by default; port 0 picks a free one; docs/HTTP.md)
  --http-token TOKEN        token for HTTP requests that change state (prefer
                            TASKWIRE_HTTP_TOKEN); required to bind --http to an
                            address that is not loopback
  --log-level LEVEL         silent | error | info | debug (default info)
  --config FILE             settings from a JSON file: every long option is a key in
                            camelCase ({"dataDir": "/var/lib/taskwire", "retries": 5});
                            the command line wins over TASKWIRE_* variables, which win
                            over the file
  --print-config            print the effective settings (secrets masked) and exit
  -h, --help                show this help
`;

/** The command line's options, parsed strictly (one-line errors, exit 2). */
function readArgv(argv: string[]): Record<string, string | boolean | undefined> {
  const table: OptionTable = Object.fromEntries(
    Object.entries(SETTINGS).map(([name, def]) => [name, { type: def.type === 'boolean' ? 'boolean' : 'string', help: def.help ?? '' }]),
  ) as OptionTable;
  const { values, positionals } = parseArgv(argv, { ...table, help: { type: 'boolean', short: 'h', help: 'show this help' } });
  if (positionals.length > 0) {
    throw new UsageError(positionals[0] === 'help' ? 'there is no "help" command' : `unexpected argument "${positionals[0]}"`);
  }
  return values as Record<string, string | boolean | undefined>;
}

/** Settings → scheduler options. Throws UsageError (exit 2) for what cannot work together. */
function toOptions(config: LoadedConfig<typeof SETTINGS>): SchedulerOptions {
  const v = config.values;
  const opts: SchedulerOptions = {
    host: v.host,
    port: v.port,
    maxQueued: v.maxQueued,
    retainCount: v.retainCount,
    retainMs: v.retainMs,
    defaultTimeoutMs: v.timeoutMs,
    defaultRetries: v.retries,
    retryBaseMs: v.retryBaseMs,
    retryMaxMs: v.retryMaxMs,
    heartbeatMs: v.heartbeatMs,
    helloTimeoutMs: v.helloTimeoutMs,
    maxPayloadBytes: v.maxPayloadBytes,
    compactBytes: v.compactBytes,
    maxKinds: v.maxKinds,
    maxBufferedBytes: v.maxBufferedBytes,
    stopGraceMs: v.stopGraceMs,
    repair: v.repair,
    logLevel: v.logLevel,
  };
  if (v.dataDir !== undefined) opts.dataDir = v.dataDir;
  else if (v.fsync !== undefined) throw new UsageError('--fsync needs --data-dir');
  if (v.fsync !== undefined) opts.fsync = v.fsync;
  opts.maxConnections = v.maxConnections;
  opts.maxConnectionsPerAddress = v.maxConnectionsPerAddress;
  opts.maxInFlight = v.maxInFlight;
  opts.maxWaits = v.maxWaits;
  if (v.auth !== undefined) opts.auth = v.auth;
  if ((v.tlsCert === undefined) !== (v.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (v.tlsCert !== undefined && v.tlsKey !== undefined) {
    opts.tls = { cert: v.tlsCert, key: v.tlsKey };
    if (v.tlsClientCa !== undefined) opts.tls.clientCa = v.tlsClientCa;
  } else if (v.tlsClientCa !== undefined) throw new UsageError('--tls-client-ca needs --tls-cert and --tls-key');
  if (v.token !== undefined && v.tokenFile !== undefined) throw new UsageError('give --token or --token-file, not both');
  if (v.token !== undefined) opts.token = v.token;
  if (v.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(v.tokenFile, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --token-file ${v.tokenFile}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const token = text.split(/\r?\n/)[0]!.trim();
    if (token === '') throw new UsageError(`--token-file ${v.tokenFile} is empty`);
    opts.token = token;
  }
  if (v.http !== undefined) {
    opts.http = parseAddress(v.http);
    if (v.httpToken !== undefined) opts.httpToken = v.httpToken;
  } else if (v.httpToken !== undefined && config.sources['http-token'] === 'command line') {
    throw new UsageError('--http-token needs --http');
  }
  return opts;
}

async function main(): Promise<void> {
  let opts: SchedulerOptions;
  try {
    const cli = readArgv(process.argv.slice(2));
    if (cli['help'] === true) {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const file = typeof cli['config'] === 'string' ? cli['config'] : undefined;
    const config = loadConfig(SETTINGS, { cli, env: process.env, file });
    if (config.values.newToken) {
      const { token, sha256 } = newToken();
      process.stdout.write(`token:        ${token}\ntoken_sha256: ${sha256}\n`);
      process.exit(0);
    }
    if (config.values.printConfig) {
      process.stdout.write(printConfig(SETTINGS, config));
      process.exit(0);
    }
    opts = toOptions(config);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(usageLine('taskwire-server', err.message));
    process.exit(2);
  }
  let scheduler: Scheduler;
  let address;
  try {
    scheduler = new Scheduler(opts); // reads the credentials and certificates
    address = await scheduler.listen();
  } catch (err) {
    process.stderr.write(`taskwire-server: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  process.stdout.write(`taskwire scheduler listening on ${address.host}:${address.port}\n`);
  const http = scheduler.httpAddress;
  if (http !== undefined) process.stdout.write(`taskwire http listening on ${http.host}:${http.port}\n`);
  let signals = 0;
  const stop = (signal: string): void => {
    signals++;
    if (signals > 1) {
      void scheduler.destroy().then(() => process.exit(1));
      return;
    }
    process.stderr.write(`taskwire-server: ${signal}, shutting down\n`);
    void scheduler.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Credentials and certificates are read again; connections keep going (issue 11).
  process.on('SIGHUP', () => scheduler.reload());
}

if (isMain(import.meta.url)) void main();
