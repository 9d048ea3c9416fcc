/**
 * The one HTTP push transport of the synchronizer: a listener that monitoring systems POST to
 * (Alertmanager's webhook, Zabbix media types, collectd's write_http, custom events). It checks
 * the credentials (bearer token or basic auth), bounds the body, parses JSON or NDJSON, lets the
 * source turn each document into changes, and answers only once every change went through the
 * pipeline (settled, as an AMQP message is acked only after its entity was emitted), so a sender
 * that got a 2xx knows its alarms reached entity$; one that got an error can send again.
 *
 * | answer | when                                                                              |
 * |--------|-----------------------------------------------------------------------------------|
 * | 200    | every change applied: `{"applied": n, "results": [{index, action, key?}]}`           |
 * | 400    | the body is not JSON / NDJSON (the line and the parser's reason)                   |
 * | 401    | no or wrong credentials (`WWW-Authenticate` says which kind)                       |
 * | 404    | another path; 405 another method than POST                                        |
 * | 413    | the body is longer than `maxBodyBytes`                                             |
 * | 415    | a content type other than JSON or NDJSON                                           |
 * | 422    | a document the source refused (nothing applied: the field and what was expected), or |
 * |        | records the pipeline refused (the others applied; each refusal with its reason)     |
 * | 503    | the pipeline did not settle in `settleTimeout`, or the source is stopping          |
 */
import { timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { Observable, type SchedulerLike, asyncScheduler } from 'rxjs';
import { type Logger, asError, errorMessage } from './log.js';
import { type Settlement, receivedNow } from './model.js';
import type { OptionReader } from './options.js';
import type { SourceSignal } from './source.js';

export type PushAuth = { kind: 'none' } | { kind: 'bearer'; token: string } | { kind: 'basic'; username: string; password: string };

/** Where and how a push source listens. */
export interface PushOptions {
  host: string;
  port: number;
  /** The one path it answers POSTs on, e.g. `/alertmanager`. */
  path: string;
  auth: PushAuth;
  maxBodyBytes: number;
  /** How long a request waits for its changes to go through the pipeline, ms. */
  settleTimeoutMs: number;
}

/** A document the source cannot use; `field` says where (`alerts[2].labels`), `problem` what was expected. */
export class PushRefusal extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(field ? `${field}: ${problem}` : problem);
    this.name = 'PushRefusal';
  }
}

/** One change a pushed document asks for. */
export interface PushChange<R> {
  action: 'upsert' | 'delete';
  record: R;
  /** What the answer names this change by (an entity key). */
  key?: string;
}

/**
 * A source's part: one parsed document (the whole JSON body, or one NDJSON line) → its changes.
 * Throws PushRefusal (or any Error) for a document it cannot use; `where` prefixes field paths
 * (`''` for a JSON body, `line 3` for NDJSON).
 */
export type PushParser<R> = (doc: unknown, where: string) => PushChange<R>[];

export const DEFAULT_MAX_BODY_BYTES = 1_048_576;

/**
 * Reads the keys every push source shares: `listen` (host:port, required), `path` (default
 * `defaultPath`), `token` or `tokenEnv` (bearer), `username` + `password` (basic), `maxBodyBytes`
 * (default 1 MiB), `settleTimeout` (default 30 s). A bad one is refused with its path.
 */
export function readPushOptions(read: OptionReader, defaultPath: string): PushOptions {
  const listen = read.string('listen');
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]*):(\d+)$/.exec(listen);
  if (!m || Number(m[2]) > 65535) read.fail('listen', `expected host:port such as 127.0.0.1:9095, got ${JSON.stringify(listen)}`);
  const path = read.string('path', defaultPath);
  if (!path.startsWith('/')) read.fail('path', `expected a path starting with /, got ${JSON.stringify(path)}`);
  const token = read.optionalString('token');
  const tokenEnv = read.optionalString('tokenEnv');
  const username = read.optionalString('username');
  const password = read.optionalString('password');
  if ((username === undefined) !== (password === undefined)) read.fail(username === undefined ? 'username' : 'password', 'username and password go together');
  if (token !== undefined && tokenEnv !== undefined) read.fail('tokenEnv', 'give token or tokenEnv, not both');
  if ((token ?? tokenEnv) !== undefined && username !== undefined) read.fail('username', 'give a bearer token or basic auth (username, password), not both');
  let auth: PushAuth = { kind: 'none' };
  if (tokenEnv !== undefined) {
    const value = process.env[tokenEnv];
    if (value === undefined || value === '') read.fail('tokenEnv', `the environment variable ${tokenEnv} is not set`);
    auth = { kind: 'bearer', token: value };
  } else if (token !== undefined) auth = { kind: 'bearer', token };
  else if (username !== undefined && password !== undefined) auth = { kind: 'basic', username, password };
  return {
    host: m[1]!.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: Number(m[2]),
    path,
    auth,
    maxBodyBytes: read.number('maxBodyBytes', DEFAULT_MAX_BODY_BYTES, { min: 1, integer: true }),
    settleTimeoutMs: read.duration('settleTimeout', 30_000),
  };
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Whether the request carries the configured credentials. */
function authorized(auth: PushAuth, header: string | undefined): boolean {
  switch (auth.kind) {
    case 'none':
      return true;
    case 'bearer':
      return header !== undefined && /^Bearer /i.test(header) && sameSecret(header.slice(7).trim(), auth.token);
    case 'basic': {
      if (header === undefined || !/^Basic /i.test(header)) return false;
      return sameSecret(Buffer.from(header.slice(6).trim(), 'base64').toString('utf8'), `${auth.username}:${auth.password}`);
    }
    default:
      return false;
  }
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The body, read up to the limit. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new HttpProblem(413, `body of ${declared} bytes is larger than maxBodyBytes (${limit})`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpProblem(413, `body is larger than maxBodyBytes (${limit})`));
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** JSON → one document; NDJSON → one per non-empty line. */
function parseDocuments(body: Buffer, contentType: string): { doc: unknown; where: string }[] {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  const ndjson = type === 'application/x-ndjson' || type === 'application/ndjson' || type === 'application/jsonl' || type === 'application/x-jsonlines';
  // collectd and curl users do not always say JSON: text/plain and no type are read as JSON too.
  if (!ndjson && type !== 'application/json' && type !== '' && type !== 'text/plain' && !type.endsWith('+json')) {
    throw new HttpProblem(415, `content type ${JSON.stringify(type)} is not accepted: send application/json or application/x-ndjson`);
  }
  const text = body.toString('utf8');
  if (!ndjson) {
    try {
      return [{ doc: JSON.parse(text) as unknown, where: '' }];
    } catch (e) {
      throw new HttpProblem(400, `body is not JSON: ${errorMessage(e)}`);
    }
  }
  const docs: { doc: unknown; where: string }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    try {
      docs.push({ doc: JSON.parse(line) as unknown, where: `line ${i + 1}` });
    } catch (e) {
      throw new HttpProblem(400, `line ${i + 1} is not JSON: ${errorMessage(e)}`);
    }
  }
  return docs;
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

export interface PushContext {
  name: string;
  log: Logger;
  scheduler?: SchedulerLike;
}

/**
 * Listens for pushes while subscribed: a cold stream of change observations (each settled by the
 * pipeline) and health.
 *
 * ```
 * POST:      ----p(a,b)----------p(c)-------
 * result:    U---a-b-------------c----------   (U: health up once listening)
 * answer:         └ 200 once a and b settled
 * ```
 *
 * 1. On subscribe it listens on `host:port` and emits health `up`; a listen error (address in
 *    use) errors the stream with the address, so the hub reports it down and retries with backoff.
 * 2. Each accepted POST is parsed and handed to `parse` per document; if any document is refused,
 *    nothing of the request is applied (422 naming the field). Otherwise each change becomes one
 *    change observation stamped with the receive time, emitted in order.
 * 3. The answer waits until every change of the request settled: 200 when all went through, 422
 *    listing the ones the pipeline refused, 503 after `settleTimeoutMs`.
 * 4. Unsubscribing closes the listener; requests still waiting are answered 503.
 */
export function pushReceiver$<R>(options: PushOptions, context: PushContext, parse: PushParser<R>): Observable<SourceSignal<R>> {
  const { name, log, scheduler = asyncScheduler } = context;
  return new Observable<SourceSignal<R>>((subscriber) => {
    const waiting = new Set<() => void>();
    let closed = false;

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== options.path) throw new HttpProblem(404, `nothing here: POST to ${options.path}`);
      if (req.method !== 'POST') throw new HttpProblem(405, `use POST on ${options.path}`, { allow: 'POST' });
      if (!authorized(options.auth, req.headers.authorization)) {
        const challenge = options.auth.kind === 'basic' ? `Basic realm="${name}"` : `Bearer realm="${name}"`;
        throw new HttpProblem(401, options.auth.kind === 'basic' ? 'basic auth required: wrong or missing credentials' : 'bearer token required: wrong or missing Authorization header', {
          'www-authenticate': challenge,
        });
      }
      const body = await readBody(req, options.maxBodyBytes);
      const receivedAt = receivedNow();
      const docs = parseDocuments(body, req.headers['content-type'] ?? '');
      const changes: PushChange<R>[] = [];
      for (const { doc, where } of docs) {
        try {
          for (const c of parse(doc, where)) changes.push(c);
        } catch (e) {
          throw new HttpProblem(422, e instanceof PushRefusal || e instanceof Error ? e.message : String(e));
        }
      }
      if (closed) throw new HttpProblem(503, `${name} is stopping`);
      const at = new Date(scheduler.now()).toISOString();
      const outcomes: (Settlement | undefined)[] = changes.map(() => undefined);
      let open = changes.length;
      const done = new Promise<boolean>((resolve) => {
        if (open === 0) return resolve(true);
        const timer = setTimeout(() => finish(false), options.settleTimeoutMs);
        const finish = (ok: boolean): void => {
          clearTimeout(timer);
          waiting.delete(abort);
          resolve(ok);
        };
        const abort = (): void => finish(false);
        waiting.add(abort);
        changes.forEach((change, i) => {
          subscriber.next({
            kind: 'change',
            source: name,
            action: change.action,
            at,
            record: change.record,
            receivedAt,
            settle: (outcome) => {
              if (outcomes[i] !== undefined) return;
              outcomes[i] = outcome;
              open -= 1;
              if (open === 0) finish(true);
            },
          });
        });
      });
      if (!(await done)) {
        const pending = outcomes.filter((o) => o === undefined).length;
        throw new HttpProblem(503, `${pending} of ${changes.length} changes did not go through the pipeline in time (or ${name} stopped): send again`);
      }
      const results = changes.map((c, i) => {
        const o = outcomes[i]!;
        return { index: i, action: c.action, ...(c.key !== undefined ? { key: c.key } : {}), ...(o.ok ? {} : { refused: o.reason }) };
      });
      const refused = results.filter((r) => r.refused !== undefined).length;
      if (refused > 0) {
        log.warn('pushed records refused', { refused, applied: changes.length - refused });
        reply(res, 422, { error: `${refused} of ${changes.length} records refused (the others were applied)`, applied: changes.length - refused, results });
      } else reply(res, 200, { applied: changes.length, results });
    };

    const server: Server = createServer((req, res) => {
      handle(req, res).catch((e: unknown) => {
        // Not one of ours: a fault, whose stack the log keeps at debug.
        const fault = e instanceof HttpProblem ? undefined : asError(e);
        const problem = fault ? new HttpProblem(500, fault.message) : (e as HttpProblem);
        if (problem.status >= 500 || problem.status === 422 || problem.status === 400) {
          log.warn('push refused', { status: problem.status, path: req.url ?? '', reason: problem.message, ...(fault ? { error: fault } : {}) });
        }
        // 413: the rest of the body is not read; the connection closes after the answer.
        reply(res, problem.status, { error: problem.message }, { ...problem.headers, ...(problem.status === 413 ? { connection: 'close' } : {}) });
      });
    });
    // Bounded: a slow or silent client can't hold a socket for ever.
    server.headersTimeout = 10_000;
    server.requestTimeout = Math.max(30_000, options.settleTimeoutMs + 10_000);
    server.maxHeadersCount = 100;
    server.once('error', (e: Error) => subscriber.error(new Error(`${name}: cannot listen on ${options.host}:${options.port}: ${e.message}`)));
    server.listen(options.port, options.host, () => {
      const address = server.address();
      log.info('listening for pushes', { listen: typeof address === 'object' && address ? `${address.address}:${address.port}` : String(address), path: options.path, auth: options.auth.kind });
      subscriber.next({ kind: 'health', status: 'up' });
    });
    return () => {
      closed = true;
      for (const abort of [...waiting]) abort();
      server.close();
      server.closeIdleConnections();
    };
  });
}
