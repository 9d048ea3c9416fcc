/**
 * TLS trust and client certificates, read once for every transport: the `tls:` block of a REST
 * source or broker, and OpenStack's clouds.yaml `cacert`/`cert`/`key`/`verify` and OS_* variables.
 * The transports apply them in one place each: src/http.ts (an https.Agent) and src/amqp.ts (the
 * socket options of amqps).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { errorMessage } from './log.js';
import { ConfigError, type OptionReader } from './options.js';

/** PEM contents (never paths): the transports hand them to Node's TLS as they are. */
export interface TlsOptions {
  /** Trusted CA certificates; absent: Node's default trust (plus NODE_EXTRA_CA_CERTS). */
  ca?: string;
  /** Client certificate (mutual TLS); goes with `key`. */
  cert?: string;
  key?: string;
  /** The name the server's certificate must carry, when it differs from the host connected to. */
  servername?: string;
  /** Do not verify the server's certificate. Never the default; warned about at start. */
  insecure?: boolean;
}

/** Reads a PEM file; a missing or unreadable one is a config error at `path`. */
export function readPem(file: string, dir: string, path: string, what: string): string {
  const full = resolve(dir, file);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (e) {
    throw new ConfigError(path, `cannot read the ${what} file ${full}: ${errorMessage(e)}`);
  }
  if (!text.includes('-----BEGIN ')) throw new ConfigError(path, `${full} is not a PEM file (no -----BEGIN line)`);
  return text;
}

/**
 * The `tls:` block at `key` (default `tls`): `{ca, cert, key, servername, insecure}`, each of
 * ca/cert/key a PEM file path (relative to the config file) or inline PEM text. Undefined when
 * absent. `cert` and `key` go together.
 */
export function readTlsOptions(read: OptionReader, key = 'tls', options: { servername?: boolean } = {}): TlsOptions | undefined {
  const tls = read.optionalObject(key);
  if (!tls) return undefined;
  const pem = (field: string, what: string): string | undefined => {
    const v = tls.optionalString(field);
    if (v === undefined) return undefined;
    return v.includes('-----BEGIN ') ? v : readPem(v, tls.dir, tls.at(field), what);
  };
  const ca = pem('ca', 'CA certificate');
  const cert = pem('cert', 'client certificate');
  const privateKey = pem('key', 'client key');
  if ((cert === undefined) !== (privateKey === undefined)) tls.fail(cert === undefined ? 'cert' : 'key', 'cert and key go together (mutual TLS)');
  const servername = options.servername === false ? undefined : tls.optionalString('servername');
  const insecure = tls.boolean('insecure', false);
  tls.done();
  return {
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(privateKey !== undefined ? { key: privateKey } : {}),
    ...(servername !== undefined ? { servername } : {}),
    ...(insecure ? { insecure } : {}),
  };
}

/** The options of Node's `tls.connect` / `https.Agent` for these settings. */
export function nodeTlsOptions(tls: TlsOptions | undefined): { ca?: string; cert?: string; key?: string; servername?: string; rejectUnauthorized: boolean } {
  return {
    ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls?.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls?.key !== undefined ? { key: tls.key } : {}),
    ...(tls?.servername !== undefined ? { servername: tls.servername } : {}),
    rejectUnauthorized: tls?.insecure !== true,
  };
}

/** The warning every transport logs once at start when verification is off. */
export const INSECURE_WARNING = 'TLS certificate verification is OFF (insecure: true): anyone on the path can read and change this traffic, credentials included';
