/**
 * The `--tls*` options `taskwire` and `taskwire-worker` share (issue 11):
 * settings → the client library's TLS options, with one-line usage errors
 * and the warning `--tls-insecure` owes its user.
 */
import { UsageError } from '../cli.js';
import { tlsFromFiles, type TlsClientOptions } from '../tls.js';

/** The TLS settings of a program (camelCase, as the config loader returns them). */
export interface TlsSettings {
  tls: boolean;
  tlsCa?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsServername?: string | undefined;
  tlsInsecure: boolean;
}

/** TLS options when any `--tls*` setting asks for TLS, else undefined. Throws UsageError. */
export function tlsOptionsOf(v: TlsSettings, program: string, warn: (line: string) => void): TlsClientOptions | undefined {
  if (!v.tls && v.tlsCa === undefined && v.tlsCert === undefined && !v.tlsInsecure) return undefined;
  if ((v.tlsCert === undefined) !== (v.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  let opts: TlsClientOptions;
  try {
    opts = tlsFromFiles({
      ...(v.tlsCa === undefined ? {} : { ca: v.tlsCa }),
      ...(v.tlsCert === undefined ? {} : { cert: v.tlsCert }),
      ...(v.tlsKey === undefined ? {} : { key: v.tlsKey }),
      ...(v.tlsServername === undefined ? {} : { servername: v.tlsServername }),
      insecure: v.tlsInsecure,
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (v.tlsInsecure) warn(`${program}: warning: --tls-insecure: the scheduler certificate is not verified\n`);
  return opts;
}
