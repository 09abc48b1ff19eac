/**
 * Throwaway certificates for `npm run bench -- --tls`: a CA and a server
 * certificate for localhost / 127.0.0.1, made at run time with the `openssl`
 * binary in a temp dir (like test/helpers/certs.ts) and deleted afterwards.
 * No private key is committed (issue 11).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** File paths of a bench CA and the scheduler's certificate and key. */
export interface BenchPki {
  dir: string;
  /** The CA certificate clients and workers verify the scheduler against. */
  ca: string;
  /** Server certificate (CN localhost, SAN DNS:localhost, IP:127.0.0.1), signed by `ca`. */
  cert: string;
  key: string;
}

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`--tls needs the openssl binary: openssl ${args[0]} failed`, { cause: err });
  }
}

/** Makes the CA and server certificate (P-256 keys, valid one day; ~0.1 s). */
export function makeBenchPki(): BenchPki {
  const dir = mkdtempSync(join(tmpdir(), 'taskwire-bench-pki-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=taskwire bench CA']);
  openssl(dir, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'server.ext']);
  return { dir, ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

/** Deletes what {@link makeBenchPki} made. */
export function removeBenchPki(pki: BenchPki | undefined): void {
  if (pki !== undefined) rmSync(pki.dir, { recursive: true, force: true });
}
