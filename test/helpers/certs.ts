/**
 * Short-lived test certificates made at run time with the `openssl` binary
 * (Debian ships it) in a temp dir: no private key is committed (issue 11).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  ca: string;
  /** localhost / 127.0.0.1, signed by `ca`. */
  serverCert: string;
  serverKey: string;
  /** A second valid server certificate (a reload swaps to it). */
  serverCert2: string;
  serverKey2: string;
  /** Expired yesterday. */
  expiredCert: string;
  expiredKey: string;
  /** Valid, but for other.example only. */
  wrongHostCert: string;
  wrongHostKey: string;
  /** A client certificate with subject CN "ci-client", signed by `ca`. */
  clientCert: string;
  clientKey: string;
  /** Another CA, and a server certificate signed by it. */
  otherCa: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ca(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=${name}`]);
}

function leaf(dir: string, name: string, signer: string, cn: string, san: string | undefined, days: number, usage: 'server' | 'client'): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `${san === undefined ? '' : `subjectAltName=${san}\n`}extendedKeyUsage=${usage === 'server' ? 'serverAuth' : 'clientAuth'}\n`);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.crt`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', String(days), '-extfile', ext]);
}

/** Makes a CA and the certificates the TLS tests need (about 0.3 s); `removePki` deletes them. */
export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'taskwire-pki-'));
  ca(dir, 'ca');
  ca(dir, 'other-ca');
  leaf(dir, 'server', 'ca', 'localhost', 'DNS:localhost,IP:127.0.0.1', 1, 'server');
  leaf(dir, 'server2', 'ca', 'localhost', 'DNS:localhost,IP:127.0.0.1', 1, 'server');
  leaf(dir, 'expired', 'ca', 'localhost', 'DNS:localhost,IP:127.0.0.1', -1, 'server');
  leaf(dir, 'wronghost', 'ca', 'other.example', 'DNS:other.example', 1, 'server');
  leaf(dir, 'client', 'ca', 'ci-client', undefined, 1, 'client');
  const p = (f: string): string => join(dir, f);
  return {
    dir,
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    serverCert2: p('server2.crt'),
    serverKey2: p('server2.key'),
    expiredCert: p('expired.crt'),
    expiredKey: p('expired.key'),
    wrongHostCert: p('wronghost.crt'),
    wrongHostKey: p('wronghost.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.crt'),
  };
}

/** Deletes the certificates and keys of {@link makePki}. */
export function removePki(pki: TestPki | undefined): void {
  if (pki !== undefined) rmSync(pki.dir, { recursive: true, force: true });
}
