/**
 * TLS for clients and workers (issue 11): one way to open a verified TLS
 * connection to a scheduler, and one way to explain the usual mistakes
 * (TLS to a plain port, an untrusted or expired certificate, a wrong host).
 * node:tls only.
 */
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { readFileSync } from 'node:fs';
import { TaskwireError } from './errors.js';

/** TLS settings of a client or worker. Certificate verification is on unless `insecure`. */
export interface TlsClientOptions {
  /** CA certificate(s) to verify the scheduler with (PEM). Default: the system store. */
  ca?: string | Buffer;
  /** Client certificate and key (PEM), for a scheduler that requires mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name the scheduler's certificate must carry. Default: the host connected to. */
  servername?: string;
  /** Skip certificate verification (tests only; the CLIs print a warning). */
  insecure?: boolean;
}

/** Opens a TLS connection; its 'secureConnect' event is the moment to speak. */
export function connectTls(host: string, port: number, opts: TlsClientOptions): TLSSocket {
  const o: ConnectionOptions = { host, port, rejectUnauthorized: opts.insecure !== true };
  if (opts.ca !== undefined) o.ca = opts.ca;
  if (opts.cert !== undefined) o.cert = opts.cert;
  if (opts.key !== undefined) o.key = opts.key;
  // An IP address is not a valid SNI name; certificates for 127.0.0.1 carry it as an IP SAN.
  const servername = opts.servername ?? (/^[\d.]+$|:/.test(host) ? undefined : host);
  if (servername !== undefined) o.servername = servername;
  return tlsConnect(o);
}

/** TLS options from files (the CLIs' `--tls-ca`, `--tls-cert`, `--tls-key`). */
export function tlsFromFiles(files: { ca?: string; cert?: string; key?: string; servername?: string; insecure?: boolean }): TlsClientOptions {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new TaskwireError('INVALID_ARGUMENT', `cannot read the TLS ${what} ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const o: TlsClientOptions = {};
  if (files.ca !== undefined) o.ca = read('CA', files.ca);
  if (files.cert !== undefined) o.cert = read('certificate', files.cert);
  if (files.key !== undefined) o.key = read('key', files.key);
  if (files.servername !== undefined) o.servername = files.servername;
  if (files.insecure === true) o.insecure = true;
  return o;
}

/**
 * Names the likely mistake behind a TLS failure, in one line: the usual
 * OpenSSL codes are not for people.
 */
export function explainTlsError(label: string, err: Error): TaskwireError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  let why: string;
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNKNOWN_PROTOCOL|RECORD_LAYER_FAILURE|EPROTO/.test(code + err.message)) {
    why = `${label} does not speak TLS (a plain scheduler?): drop --tls, or start the scheduler with --tls-cert/--tls-key`;
  } else if (/CERT_HAS_EXPIRED/.test(code)) {
    why = `the certificate of ${label} has expired`;
  } else if (/ERR_TLS_CERT_ALTNAME_INVALID/.test(code)) {
    why = `the certificate of ${label} is not for this host name (${err.message}); use --tls-servername NAME`;
  } else if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_SIGNATURE_FAILURE|DEPTH_ZERO/.test(code)) {
    why = `the certificate of ${label} is not signed by a trusted CA (${code}); give the CA with --tls-ca FILE`;
  } else if (/CERTIFICATE_REQUIRED|ALERT_BAD_CERTIFICATE|SSLV3_ALERT|TLSV13_ALERT/.test(code + err.message)) {
    why = `${label} refused our TLS client certificate (missing or not trusted): give --tls-cert and --tls-key`;
  } else {
    why = `TLS with ${label} failed: ${err.message}`;
  }
  return new TaskwireError('UNREACHABLE', why, { cause: err });
}
