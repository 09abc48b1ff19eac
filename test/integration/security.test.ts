/**
 * Issue 11 over real sockets: TLS (verification, mistakes, mutual TLS,
 * reload), credentials with roles (every message type × every role),
 * ownership (another client's job is NOT_FOUND, keys are scoped), failed
 * authentication, and the limits per connection and per address.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Client } from '../../src/client.js';
import { hashToken } from '../../src/lib/auth/credentials.js';
import { encode, MessageDecoder, PROTOCOL_VERSION, type Message, type MessageType } from '../../src/lib/protocol.js';
import { Worker } from '../../src/worker.js';
import { makePki, removePki, type TestPki } from '../helpers/certs.js';
import { sha256, tempDir } from '../helpers/journal.js';
import { spawnTs } from '../helpers/process.js';
import { rawConnect } from '../helpers/raw.js';
import { startScheduler } from '../helpers/scheduler.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => removePki(pki));

async function connect(address: string, opts: Parameters<typeof Client.connect>[1] = {}): Promise<Client> {
  const c = await Client.connect(address, opts);
  onTestFinished(() => c.destroy());
  return c;
}

function startWorker(address: string, opts: Partial<ConstructorParameters<typeof Worker>[0]> = {}): Worker {
  const w = new Worker({ server: address, concurrency: 2, ...opts });
  onTestFinished(() => w.destroy());
  return w;
}

describe('TLS', () => {
  it('carries jobs for a client and a worker, verified against the test CA', async () => {
    const { address } = await startScheduler({ tls: { cert: pki.serverCert, key: pki.serverKey } });
    const ca = readFileSync(pki.ca);
    const worker = startWorker(address, { tls: { ca }, capabilities: ['sha256'] });
    await worker.start();
    const client = await connect(address, { tls: { ca } });
    expect((await client.submit('sha256', 'over tls')).text()).toBe(sha256('over tls'));
  });

  it('refuses a scheduler signed by another CA, an expired certificate and a certificate for another host', async () => {
    const cases: Array<[string, { cert: string; key: string }, RegExp]> = [
      ['wrong CA', { cert: pki.serverCert, key: pki.serverKey }, /not signed by a trusted CA/],
      ['expired', { cert: pki.expiredCert, key: pki.expiredKey }, /expired/],
      ['wrong host', { cert: pki.wrongHostCert, key: pki.wrongHostKey }, /not for this host name/],
    ];
    for (const [name, tls, why] of cases) {
      const { address } = await startScheduler({ tls });
      const ca = readFileSync(name === 'wrong CA' ? pki.otherCa : pki.ca);
      const err = await Client.connect(address, { tls: { ca } }).then(
        () => undefined,
        (e: unknown) => e as Error & { code: string },
      );
      expect(err?.code, name).toBe('UNREACHABLE');
      expect(err?.message, name).toMatch(why);
    }
  });

  it('tells a plain-TCP client on the TLS port, and a TLS client on a plain port, what they got wrong', async () => {
    const tlsSched = await startScheduler({ tls: { cert: pki.serverCert, key: pki.serverKey } });
    await expect(Client.connect(tlsSched.address)).rejects.toMatchObject({ code: 'BAD_HANDSHAKE', message: expect.stringMatching(/speaks TLS/) });
    const plain = await startScheduler();
    await expect(Client.connect(plain.address, { tls: { ca: readFileSync(pki.ca) } })).rejects.toMatchObject({
      code: 'UNREACHABLE',
      message: expect.stringMatching(/does not speak TLS/),
    });
  });

  it('mutual TLS: refuses a client without a certificate; a certificate whose subject a credential names needs no token', async () => {
    const dir = await tempDir('taskwire-auth-');
    const auth = join(dir, 'auth.json');
    await writeFile(auth, JSON.stringify([{ name: 'ci', roles: ['client'], token_sha256: hashToken('unused'), cert_subject: 'ci-client' }]));
    const { address } = await startScheduler({ tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca }, auth });
    const ca = readFileSync(pki.ca);
    await expect(Client.connect(address, { tls: { ca } })).rejects.toMatchObject({ code: expect.stringMatching(/UNREACHABLE|CLOSED|TIMEOUT/) });
    const client = await connect(address, { tls: { ca, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) } });
    expect((await client.enqueue('k', 'mine')).id).toBeGreaterThan(0);
    await expect(client.stats()).rejects.toMatchObject({ code: 'FORBIDDEN' }); // the "ci" credential is a client
  });

  it('reloads its certificate without dropping connections', async () => {
    const dir = await tempDir('taskwire-tls-');
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(pki.serverCert, cert);
    copyFileSync(pki.serverKey, key);
    const { address, port, scheduler } = await startScheduler({ tls: { cert, key } });
    const ca = readFileSync(pki.ca);
    const before = await connect(address, { tls: { ca } });
    const fingerprint = async (): Promise<string> => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca });
      await new Promise((r) => s.once('secureConnect', r));
      const f = s.getPeerCertificate().fingerprint256;
      s.destroy();
      return f;
    };
    const old = await fingerprint();
    copyFileSync(pki.serverCert2, cert);
    copyFileSync(pki.serverKey2, key);
    scheduler.reload();
    expect(await fingerprint()).not.toBe(old);
    expect((await before.stats()).connections.clients).toBeGreaterThanOrEqual(1); // the old connection still works
  });
});

/** A raw protocol peer with its own decoder, for the role matrix. */
async function rawPeer(port: number, hello: Partial<Extract<Message, { type: 'HELLO' }>>): Promise<{ send(m: Message): void; next(): Promise<Message>; closed: Promise<void>; socket: Socket }> {
  const socket = netConnect(port, '127.0.0.1');
  onTestFinished(() => {
    socket.destroy();
  });
  const decoder = new MessageDecoder();
  const queue: Message[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const m of decoder.push(chunk)) if (m.type !== 'HEARTBEAT' && m.type !== 'ASSIGN') queue.push(m);
    wake?.();
  });
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.on('error', () => undefined);
  await new Promise((r) => socket.once('connect', r));
  socket.write(encode({ type: 'HELLO', version: PROTOCOL_VERSION, role: 'client', name: 'raw', capabilities: [], concurrency: 0, ...hello }));
  return {
    socket,
    closed,
    send: (m) => socket.write(encode(m)),
    async next() {
      const deadline = performance.now() + 5_000;
      while (queue.length === 0) {
        if (performance.now() > deadline) throw new Error('no message within 5 s');
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      return queue.shift()!;
    },
  };
}

describe('credentials and roles', () => {
  const TOKENS = { alice: 'alice-token', bob: 'bob-token', adder: 'adder-token', root: 'root-token' };
  async function authScheduler() {
    const dir = await tempDir('taskwire-auth-');
    const auth = join(dir, 'auth.json');
    await writeFile(
      auth,
      JSON.stringify([
        { name: 'alice', roles: ['client'], token_sha256: hashToken(TOKENS.alice) },
        { name: 'bob', roles: ['client'], token_sha256: hashToken(TOKENS.bob) },
        { name: 'adder', roles: ['worker'], token_sha256: hashToken(TOKENS.adder), kinds: ['add'] },
        { name: 'root', roles: ['admin'], token_sha256: hashToken(TOKENS.root) },
      ]),
    );
    const lines: string[] = [];
    const started = await startScheduler({ auth, log: (l) => lines.push(l), logLevel: 'info' });
    return { ...started, auth, lines };
  }

  it('walks every message type × every role: allowed ones are served, the others FORBIDDEN (or close, for a role they break)', async () => {
    const { port } = await authScheduler();
    const requests: Array<[MessageType, (rid: number) => Message]> = [
      ['SUBMIT', (rid) => ({ type: 'SUBMIT', requestId: rid, kind: 'add', args: Buffer.from('[1,2]'), priority: 0, timeoutMs: 0, maxRetries: 0xffff, estMs: 0, delayMs: 0, key: '', wait: false, progress: false })],
      ['WATCH', (rid) => ({ type: 'WATCH', requestId: rid, jobId: 999, progress: false })],
      ['STATUS', (rid) => ({ type: 'STATUS', requestId: rid, jobId: 999 })],
      ['CANCEL', (rid) => ({ type: 'CANCEL', requestId: rid, jobId: 999 })],
      ['LIST', (rid) => ({ type: 'LIST', requestId: rid, state: '', kind: '', limit: 1 })],
      ['WORKERS', (rid) => ({ type: 'WORKERS', requestId: rid })],
      ['STATS', (rid) => ({ type: 'STATS', requestId: rid })],
      ['COMPACT', (rid) => ({ type: 'COMPACT', requestId: rid })],
      ['ADMIN', (rid) => ({ type: 'ADMIN', requestId: rid, body: { op: 'pause', kind: 'x' } })],
    ];
    // client: its own jobs; admin: everything. (A NOT_FOUND or INVALID_STATE answer means "allowed".)
    const expected: Record<'client' | 'admin', Record<string, 'ok' | 'FORBIDDEN'>> = {
      client: { SUBMIT: 'ok', WATCH: 'ok', STATUS: 'ok', CANCEL: 'ok', LIST: 'ok', WORKERS: 'FORBIDDEN', STATS: 'FORBIDDEN', COMPACT: 'FORBIDDEN', ADMIN: 'FORBIDDEN' },
      admin: { SUBMIT: 'ok', WATCH: 'ok', STATUS: 'ok', CANCEL: 'ok', LIST: 'ok', WORKERS: 'ok', STATS: 'ok', COMPACT: 'ok', ADMIN: 'ok' },
    };
    for (const [role, token] of [['client', TOKENS.alice], ['admin', TOKENS.root]] as const) {
      const p = await rawPeer(port, { token });
      expect((await p.next()).type).toBe('WELCOME');
      let rid = 1;
      for (const [type, build] of requests) {
        p.send(build(rid));
        const answer = await p.next();
        const got = answer.type === 'ERROR' && answer.code === 'FORBIDDEN' ? 'FORBIDDEN' : 'ok';
        expect(`${role} ${type} ${got}`).toBe(`${role} ${type} ${expected[role][type]}`);
        rid++;
      }
    }
    // A worker connection: answers only; any client request is FORBIDDEN, and registering a kind
    // its credential does not allow is refused at HELLO.
    const w = await rawPeer(port, { role: 'worker', capabilities: ['add'], concurrency: 1, token: TOKENS.adder });
    expect((await w.next()).type).toBe('WELCOME');
    for (const [type, build] of requests.filter(([t]) => ['STATUS', 'LIST', 'WORKERS', 'STATS'].includes(t))) {
      w.send(build(7));
      expect(await w.next(), type).toMatchObject({ type: 'ERROR', code: 'FORBIDDEN' });
    }
    w.send(requests[0]![1](8)); // SUBMIT from a worker connection breaks the protocol: closed
    expect(await w.next()).toMatchObject({ type: 'ERROR', requestId: 0, code: 'BAD_HANDSHAKE' });
    // Roles a credential lacks, at HELLO:
    const sha = await rawPeer(port, { role: 'worker', capabilities: ['sha256'], concurrency: 1, token: TOKENS.adder });
    expect(await sha.next()).toMatchObject({ type: 'ERROR', code: 'AUTH_FAILED' });
    const clientAsWorker = await rawPeer(port, { role: 'worker', capabilities: ['add'], concurrency: 1, token: TOKENS.alice });
    expect(await clientAsWorker.next()).toMatchObject({ type: 'ERROR', code: 'AUTH_FAILED' });
    const workerAsClient = await rawPeer(port, { token: TOKENS.adder });
    expect(await workerAsClient.next()).toMatchObject({ type: 'ERROR', code: 'AUTH_FAILED' });
  });

  it('keeps clients apart: B cannot see, watch, cancel or key-collide with A’s jobs, and gets what an unknown id gets', async () => {
    const { address } = await authScheduler();
    const alice = await connect(address, { token: TOKENS.alice });
    const bob = await connect(address, { token: TOKENS.bob });
    const root = await connect(address, { token: TOKENS.root });
    const job = await alice.enqueue('add', [1, 2], { key: 'order-1' });
    const unknown = 987_654;
    for (const id of [job.id, unknown]) {
      await expect(bob.status(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(bob.wait(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(bob.cancel(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    }
    const bobs = await bob.enqueue('add', [5, 5], { key: 'order-1' });
    expect(bobs.existing).toBe(false);
    expect(bobs.id).not.toBe(job.id);
    expect((await bob.list()).map((j) => j.id)).toEqual([bobs.id]);
    expect((await alice.list()).map((j) => j.id)).toEqual([job.id]);
    expect((await root.list()).map((j) => j.id).sort()).toEqual([job.id, bobs.id].sort());
    expect((await root.status(job.id)).state).toBe('QUEUED');
    const worker = startWorker(address, { token: TOKENS.adder, capabilities: ['add'] });
    await worker.start();
    expect((await alice.wait(job.id)).json()).toBe(3);
  });

  it('answers AUTH_FAILED, logs the address and name but never the token, and slows down repeated failures', async () => {
    const { address, lines } = await authScheduler();
    await expect(Client.connect(address, { token: 'guess-1', name: 'intruder' })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    const t0 = performance.now();
    await expect(Client.connect(address, { token: 'guess-2', name: 'intruder' })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    await expect(Client.connect(address, { token: 'guess-3', name: 'intruder' })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250); // 100 ms, then 200 ms
    const logged = lines.filter((l) => l.includes('authentication failed'));
    expect(logged).toHaveLength(3);
    expect(logged[0]).toContain('127.0.0.1');
    expect(logged[0]).toContain('intruder');
    expect(lines.join('\n')).not.toMatch(/guess-/);
  });

  it('keeps secrets out of argv and logs when given by environment or file', async () => {
    const dir = await tempDir('taskwire-argv-');
    const auth = join(dir, 'auth.json');
    await writeFile(auth, JSON.stringify([{ name: 'root', roles: ['admin'], token_sha256: hashToken('env-secret-token') }]));
    const child = spawnTs('src/server.ts', ['--port', '0', '--auth', auth, '--log-level', 'info'], { TASKWIRE_TOKEN: 'another-env-token' });
    const m = await child.waitForLine(/listening on ([\d.]+):(\d+)/);
    const cmdline = readFileSync(`/proc/${child.proc.pid}/cmdline`, 'utf8');
    expect(cmdline).not.toMatch(/secret|env-token/);
    const c = await connect(`${m[1]}:${m[2]}`, { token: 'env-secret-token' });
    expect((await c.stats()).connections.clients).toBe(1);
    const c2 = await connect(`${m[1]}:${m[2]}`, { token: 'another-env-token' });
    expect((await c2.stats()).connections.clients).toBe(2);
    await expect(Client.connect(`${m[1]}:${m[2]}`, { token: 'wrong-token-xyz' })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    child.proc.kill('SIGTERM');
    await child.exited;
    expect(child.stderr).not.toMatch(/env-secret-token|another-env-token|wrong-token-xyz/);
  });
});

describe('limits per connection and per address', () => {
  it('refuses connections past the per-address cap with LIMIT_EXCEEDED while another address is served', async () => {
    const { port, address, scheduler } = await startScheduler({ maxConnectionsPerAddress: 50 });
    const sockets: Socket[] = [];
    onTestFinished(() => {
      for (const s of sockets) s.destroy();
    });
    const answers = await Promise.all(
      Array.from({ length: 500 }, async () => {
        const s = netConnect(port, '127.0.0.1');
        sockets.push(s);
        s.on('error', () => undefined);
        const decoder = new MessageDecoder();
        return new Promise<string>((resolve) => {
          s.on('data', (chunk: Buffer) => {
            for (const m of decoder.push(chunk)) if (m.type === 'ERROR') resolve(m.code);
          });
          s.on('close', () => resolve('closed'));
          setTimeout(() => resolve('kept'), 1_000).unref();
        });
      }),
    );
    const counts: Record<string, number> = {};
    for (const a of answers) counts[a] = (counts[a] ?? 0) + 1;
    expect(counts).toEqual({ LIMIT_EXCEEDED: 450, kept: 50 });
    // Another loopback address is not affected: it is welcomed.
    const other = await new Promise<Socket>((resolve, reject) => {
      const sock = netConnect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' }, () => resolve(sock));
      sock.once('error', reject);
    });
    sockets.push(other);
    const decoder = new MessageDecoder();
    const welcome = new Promise<string>((resolve) => other.on('data', (chunk: Buffer) => {
      for (const m of decoder.push(chunk)) resolve(m.type);
    }));
    other.write(encode({ type: 'HELLO', version: PROTOCOL_VERSION, role: 'client', name: 'other', capabilities: [], concurrency: 0 }));
    expect(await welcome).toBe('WELCOME');
    expect(scheduler.core.stats().limits?.refusedConnections).toBe(450);
    void address;
  });

  it('holds pipelined requests past the in-flight cap (they wait, no error) and refuses waits past the cap', async () => {
    const { address } = await startScheduler({ maxInFlight: 8, maxWaits: 5 });
    const client = await connect(address);
    const ids = await Promise.all(Array.from({ length: 5 }, (_, i) => client.enqueue('k', String(i))));
    const statuses = await Promise.all(Array.from({ length: 200 }, (_, i) => client.status(ids[i % 5]!.id)));
    expect(statuses).toHaveLength(200);
    const waits = ids.map((j) => client.wait(j.id).catch(() => undefined));
    await expect(client.submit('k', 'one too many')).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    void waits;
  });
});

describe('TLS from the command line', () => {
  it('taskwire-worker --tls --tls-ca runs jobs from a TLS scheduler; --tls-insecure warns', async () => {
    const { address } = await startScheduler({ tls: { cert: pki.serverCert, key: pki.serverKey } });
    const worker = spawnTs('src/worker.ts', ['--server', address, '-c', 'sha256', '--tls', '--tls-ca', pki.ca, '--log-level', 'error']);
    await worker.waitForLine(/connected/);
    const client = await connect(address, { tls: { ca: readFileSync(pki.ca) } });
    expect((await client.submit('sha256', 'cli tls')).text()).toBe(sha256('cli tls'));
    const insecure = spawnTs('src/worker.ts', ['--server', address, '-c', 'sha256', '--tls-insecure', '--log-level', 'error']);
    await insecure.waitForLine(/connected/);
    expect(insecure.stderr).toMatch(/warning: --tls-insecure/);
  });
});

describe('TLS from the taskwire CLI', () => {
  it('taskwire --tls --tls-ca submits to a TLS scheduler; a wrong CA is a one-line error', async () => {
    const { address } = await startScheduler({ tls: { cert: pki.serverCert, key: pki.serverKey } });
    const worker = startWorker(address, { tls: { ca: readFileSync(pki.ca) }, capabilities: ['sha256'] });
    await worker.start();
    const ok = spawnTs('src/client.ts', ['--server', address, '--tls', '--tls-ca', pki.ca, 'submit', 'Hello']);
    expect(await ok.exited).toBe(0);
    expect(ok.stdout.trim()).toBe(sha256('Hello'));
    const bad = spawnTs('src/client.ts', ['--server', address, '--tls', '--tls-ca', pki.otherCa, 'submit', 'Hello']);
    expect(await bad.exited).toBe(3);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/not signed by a trusted CA/);
  });
});

describe('HTTP over TLS', () => {
  it('serves the HTTP listener as HTTPS with the scheduler certificate; the wire token guards its changes', async () => {
    const { scheduler } = await startScheduler({ tls: { cert: pki.serverCert, key: pki.serverKey }, http: { host: '127.0.0.1', port: 0 }, token: 'wire-admin' });
    const { port } = scheduler.httpAddress!;
    const https = await import('node:https');
    const request = (method: string, path: string, headers: Record<string, string> = {}) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port, path, method, ca: readFileSync(pki.ca), headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    expect(await request('GET', '/health')).toBe(200);
    expect(await request('POST', '/api/kinds/k/pause')).toBe(401);
    expect(await request('POST', '/api/kinds/k/pause', { authorization: 'Bearer wire-admin' })).toBe(200);
  });
});

describe('credentials reload', () => {
  it('reads the credentials file again on reload() (SIGHUP) without dropping connections', async () => {
    const dir = await tempDir('taskwire-auth-');
    const auth = join(dir, 'auth.json');
    await writeFile(auth, JSON.stringify([{ name: 'old', roles: ['admin'], token_sha256: hashToken('old-token') }]));
    const { address, scheduler } = await startScheduler({ auth });
    const kept = await connect(address, { token: 'old-token' });
    await expect(Client.connect(address, { token: 'new-token' })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    await writeFile(auth, JSON.stringify([{ name: 'new', roles: ['admin'], token_sha256: hashToken('new-token') }]));
    scheduler.reload();
    const fresh = await connect(address, { token: 'new-token' });
    expect((await fresh.stats()).connections.clients).toBe(2);
    expect((await kept.stats()).connections.clients).toBe(2); // the old connection goes on
    await expect(Client.connect(address, { token: 'old-token' })).rejects.toMatchObject({ code: 'AUTH_FAILED' });
    // A broken file keeps the current credentials.
    await writeFile(auth, '{ not json');
    scheduler.reload();
    expect((await connect(address, { token: 'new-token' })).closed).toBe(false);
  });
});
